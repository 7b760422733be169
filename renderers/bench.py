"""Benchmark helpers shared by scripts/bench_renderer.py and `worldgen bench`: random scenes of small
Gaussians and a synchronised render timer."""

from __future__ import annotations

import math
import statistics
import time

import torch

from worldgen.core.interfaces import Renderer
from worldgen.core.camera import Camera
from worldgen.core.scene import GaussianScene, inverse_sigmoid

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
