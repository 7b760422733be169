"""Image metrics on float images [H, W, 3] in [0, 1] (optionally masked)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(a: Tensor, b: Tensor, mask: Tensor | None = None) -> float:
    """Peak signal-to-noise ratio in dB of a, b [H, W, 3] in [0, 1] (over mask [H, W] if given); inf if equal."""
    d2 = (a.float() - b.float()).pow(2).mean(-1)
    mse = float(d2[mask].mean() if mask is not None else d2.mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def ssim(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Structural similarity (Wang et al. 2004, Gaussian window, C1=0.01^2, C2=0.03^2) of a, b [H, W, 3]."""
    x, y = a.float().permute(2, 0, 1)[:, None], b.float().permute(2, 0, 1)[:, None]  # [3, 1, H, W]
    r = torch.arange(window, dtype=torch.float32) - (window - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = (g / g.sum()).to(x.device)
    k = (g[:, None] * g[None, :])[None, None]
    blur = lambda t: F.conv2d(F.pad(t, [window // 2] * 4, mode="reflect"), k)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())
