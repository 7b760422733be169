"""How `worldgen view` copes with a large world: load, first chunk, full stream, and how quickly the
server answers while it streams (CPU; no browser needed, optional headless-Chromium snapshot).

    .venv/bin/python scripts/bench_view_stream.py [--gaussians 5000000] [--budget 2000000] [--snapshot out.png]

A synthetic world (a noisy terrain sheet of N flat Gaussians, one camera looking over it) is written
to a temporary PLY and opened exactly as `worldgen view` opens a file. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def terrain(n: int) -> "GaussianScene":  # noqa: F821
    from worldgen.core.scene import GaussianScene

    g = torch.Generator().manual_seed(0)
    side = int(math.sqrt(n))
    x = (torch.rand(n, generator=g) - 0.5) * 2000
    z = torch.rand(n, generator=g) * 2000 + 50
    y = 40 + 20 * torch.sin(x / 90) * torch.cos(z / 70)  # world up is -y: ground 20-60 units below the camera
    means = torch.stack([x, y, z], 1)
    s = 2000 / side
    return GaussianScene(means=means, quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1),
                         log_scales=torch.log(torch.tensor([s, 0.1 * s, s])).repeat(n, 1),
                         opacity_logits=torch.full((n,), 3.0), colors=torch.rand(n, 3, generator=g))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaussians", type=int, default=5_000_000)
    ap.add_argument("--budget", type=int, default=2_000_000)
    ap.add_argument("--snapshot", default=None)
    a = ap.parse_args()

    from viewer.app import server_url, start_server
    from viewer.browse import BrowseApp, load_world
    from worldgen.core.camera import Camera, look_at

    out = {"gaussians": a.gaussians, "budget": a.budget}
    with tempfile.TemporaryDirectory() as tmp:
        ply = Path(tmp) / "world.ply"
        terrain(a.gaussians).save_ply(ply)
        cam = Camera.from_fov(60, 256, 160, look_at(torch.tensor([0.0, 0.0, 0.0]), torch.tensor([0.0, 40.0, 300.0])))
        (Path(tmp) / "cameras.json").write_text(json.dumps({"frames": [cam.to_dict()]}))
        out["ply_mb"] = round(ply.stat().st_size / 1e6, 1)
        t0 = time.perf_counter()
        world = load_world(ply)
        out["load_s"] = round(time.perf_counter() - t0, 2)
        server = start_server("127.0.0.1", 0)
        url = server_url(server) + "/"
        latencies, stop = [], threading.Event()

        def probe() -> None:  # the page's HTTP latency while the world streams
            while not stop.is_set():
                t = time.perf_counter()
                with urllib.request.urlopen(url, timeout=30) as r:
                    r.read()
                latencies.append(time.perf_counter() - t)
                time.sleep(0.05)

        try:
            t0 = time.perf_counter()
            app = BrowseApp(server, world, budget=a.budget)
            out["panel_ready_s"] = round(time.perf_counter() - t0, 2)  # first chunk sent, panel built
            th = threading.Thread(target=probe, daemon=True)
            th.start()
            app.wait_streamed()
            out["streamed_s"] = round(time.perf_counter() - t0, 2)
            stop.set()
            th.join()
            out["shown"] = app.display.shown
            out["chunks"] = len(app.display._handles)
            out["http_latency_ms_while_streaming"] = {
                "median": round(1000 * sorted(latencies)[len(latencies) // 2], 1),
                "max": round(1000 * max(latencies), 1), "requests": len(latencies)}
            if a.snapshot:
                from viewer.snapshot import snapshot

                t0 = time.perf_counter()
                snapshot(server, a.snapshot, size=(1024, 768), settle=20.0, timeout=600)
                out["snapshot_s"] = round(time.perf_counter() - t0, 1)
        finally:
            server.stop()
    out["peak_rss_mb"] = round(__import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
