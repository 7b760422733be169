"""Benchmark the renderer backends: milliseconds per render for random scenes of small Gaussians.

    python scripts/bench_renderer.py                     # CPU, torch backend, small N
    python scripts/bench_renderer.py --device cuda --max-n 16000000   # GPU: gsplat and torch backends

Scenes: N Gaussians in front of the camera (z in [2, 10]), spread over a frustum slightly wider than
the view, isotropic-ish with on-screen standard deviations of about 0.5-1 px at 256 px width (twice
that at 512), opacities in [0.05, 0.95]. Timings are medians after warm-up (CUDA synchronised).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from renderers import GsplatRenderer, Renderer, TorchRenderer  # noqa: E402
from worldgen.camera import Camera  # noqa: E402
from worldgen.scene import GaussianScene, inverse_sigmoid  # noqa: E402

FOV_X_DEG = 60.0


def random_scene(n: int, device: str, seed: int = 0, sigma_px: tuple[float, float] = (0.5, 1.0)) -> GaussianScene:
    """N small random Gaussians in front of an identity camera (sizes in pixels at 256 px width)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(n, generator=g) * 8 + 2
    tan_half = math.tan(math.radians(FOV_X_DEG) / 2)
    x = (torch.rand(n, generator=g) * 2 - 1) * 1.1 * tan_half * z
    y = (torch.rand(n, generator=g) * 2 - 1) * 1.1 * tan_half * z
    f256 = 128 / tan_half  # focal length in px at 256 px width
    s_px = torch.empty(n).uniform_(*sigma_px, generator=g)
    log_s = (s_px * z / f256).log()[:, None] + 0.2 * torch.randn(n, 3, generator=g)
    return GaussianScene(
        means=torch.stack([x, y, z], -1),
        quats=torch.randn(n, 4, generator=g),
        log_scales=log_s,
        opacity_logits=inverse_sigmoid(torch.rand(n, generator=g) * 0.9 + 0.05),
        colors=torch.rand(n, 3, generator=g),
        birth=torch.zeros(n, dtype=torch.int32),
    ).to(device)


def time_render(renderer: Renderer, scene: GaussianScene, camera: Camera, repeats: int, warmup: int) -> float:
    """Median milliseconds per render."""
    cuda = scene.device.type == "cuda"
    times = []
    with torch.no_grad():
        for k in range(warmup + repeats):
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            renderer.render(scene, camera)
            if cuda:
                torch.cuda.synchronize()
            if k >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


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
