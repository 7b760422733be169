"""Benchmark the renderer backends: milliseconds per render for random scenes of small Gaussians.

    python scripts/bench_renderer.py                     # CPU, torch backend, small N
    python scripts/bench_renderer.py --device cuda --max-n 16000000   # GPU: gsplat and torch backends

Scenes: N Gaussians in front of the camera (z in [2, 10]), spread over a frustum slightly wider than
the view, isotropic-ish with on-screen standard deviations of about 0.5-1 px at 256 px width (twice
that at 512), opacities in [0.05, 0.95]. Timings are medians after warm-up (CUDA synchronised).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from renderers import GsplatRenderer, Renderer, TorchRenderer  # noqa: E402
from worldgen.core.camera import Camera  # noqa: E402
from renderers.bench import FOV_X_DEG, random_scene, time_render  # noqa: E402

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--max-n", type=int, default=None, help="largest N (default 100k on CPU, 1M on CUDA)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="square resolutions")
    ap.add_argument("--backends", nargs="+", choices=["torch", "gsplat"], default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for, but torch.cuda.is_available() is False")
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    max_n = args.max_n or (1_000_000 if cuda else 100_000)
    ns = [n for n in (10_000, 50_000, 100_000, 1_000_000, 4_000_000, 16_000_000) if n <= max_n]
    backends = args.backends or (["gsplat", "torch"] if cuda else ["torch"])
    repeats = args.repeats or (20 if cuda else 5)
    renderers: dict[str, Renderer] = {"torch": TorchRenderer(), "gsplat": GsplatRenderer()}

    dev = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {dev}; torch {torch.__version__}")
    print(f"{'backend':<8} {'N':>10} {'resolution':>10} {'ms/render':>10}")
    for n in ns:
        scene = random_scene(n, args.device)
        for size in args.sizes:
            camera = Camera.from_fov(FOV_X_DEG, size, size).to(args.device)
            for b in backends:
                if b == "torch" and n > (4_000_000 if cuda else 1_000_000):
                    continue  # the pure-PyTorch path needs too much memory/time there
                ms = time_render(renderers[b], scene, camera, repeats, warmup=2 if not cuda else 3)
                print(f"{b:<8} {n:>10,} {f'{size}x{size}':>10} {ms:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
