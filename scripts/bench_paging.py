"""Paging with chunk files written on the flight's thread or on the store's own (DiskStore `background`).

    .venv/bin/python scripts/bench_paging.py [--gaussians 300000] [--moves 30] [--repeats 2]

A PagedWorld over random Gaussians (10 units spread, chunks of 6 units) is flown back and forth between two
cameras 80 units apart; each step first adds 2,000 new Gaussians (so the chunks it pages out are dirty and
must be written), then `prepare`s the working set. Prints ms per step and the chunk moves for each setting,
alternating the settings `--repeats` times (the disk's page cache and write-back make single runs noisy).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worldgen.core.camera import Camera, look_at  # noqa: E402
from worldgen.core.scene import GaussianScene  # noqa: E402
from worldgen.pipeline.chunkstore import DiskStore  # noqa: E402
from worldgen.pipeline.world import PagedWorld, WorldConfig  # noqa: E402


def scene(n: int, seed: int) -> GaussianScene:
    g = torch.Generator().manual_seed(seed)
    return GaussianScene(torch.randn(n, 3, generator=g) * 10.0, torch.randn(n, 4, generator=g),
                         torch.randn(n, 3, generator=g) * 0.3 - 3.0, torch.randn(n, generator=g), torch.rand(n, 3, generator=g))


def camera(z: float) -> Camera:
    c2w = look_at(torch.tensor([0.0, 0.0, z], dtype=torch.float64), torch.tensor([0.0, 0.0, 3 * z], dtype=torch.float64))
    return Camera.from_fov(60, 64, 48, c2w.float())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaussians", type=int, default=300_000)
    ap.add_argument("--moves", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    for _ in range(args.repeats):
        for background in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                store = DiskStore(Path(tmp) / "chunks", background=background)
                w = PagedWorld(WorldConfig(chunk_size=6.0, keep_radius=3.0, linger=1, min_px=0), 1.0, "cpu", store=store)
                w.add(scene(args.gaussians, 0), 0)
                t0 = time.perf_counter()
                for i in range(args.moves):
                    w.add(scene(2000, i + 1), 2 * i + 1)
                    w.prepare(camera(-40.0 if i % 2 else 40.0), 2 * i + 3)
                dt = time.perf_counter() - t0
                store.close()
                print(f"writes {'on the store thread' if background else 'on the flight thread'}: "
                      f"{1000 * dt / args.moves:.1f} ms per step, chunk moves in / out {w.paged_in} / {w.paged_out}", flush=True)


if __name__ == "__main__":
    main()
