"""Lifting: turn a refined RGBD frame into new Gaussians, only where the scene lacks them.

A pixel becomes a Gaussian when it is not sky, has a finite depth, and either the scene does not
cover it (rendered alpha below `hole_alpha`) or the scene's Gaussians there are coarser than
`detail_px` pixels (the camera came closer than they were made for, so the refined frame holds finer
detail). Each new Gaussian is a disc facing the camera, centred on the pixel's unprojected point,
with a standard deviation of `sigma_px` pixels at its depth: its size follows its pixel footprint,
so no Gaussian spans a depth discontinuity (at discontinuities it is shrunk further).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from worldgen.camera import Camera, rotmat_to_quat
from worldgen.frame import Frame
from worldgen.scene import GaussianScene, inverse_sigmoid


@dataclass(frozen=True)
class LiftConfig:
    sigma_px: float = 0.5
    """Standard deviation of a new Gaussian, in pixels of the frame it is lifted from."""
    flatness: float = 0.35
    """Thickness along the viewing ray relative to the in-plane size (discs facing the camera)."""
    opacity: float = 0.98
    """Opacity of new Gaussians."""
    hole_alpha: float = 0.5
    """Pixels the scene covers with less than this rendered alpha are lifted."""
    detail_px: float = 2.0
    """Pixels where the scene's Gaussians are larger than this (std, in pixels) get finer Gaussians."""
    edge_ratio: float = 1.1
    """A pixel whose depth differs from a neighbour's by more than this ratio sits on a discontinuity."""
    edge_shrink: float = 0.6
    """Size factor for Gaussians on depth discontinuities."""


def footprint_px(scene: GaussianScene, camera: Camera) -> Tensor:
    """[N, 1] each Gaussian's largest standard deviation in pixels as seen by `camera` (0 behind it)."""
    z = camera.world_to_camera(scene.means)[:, 2]
    s = scene.log_scales.amax(-1).exp()
    return torch.where(z > 1e-6, s * camera.fx / z.clamp_min(1e-6), torch.zeros_like(z))[:, None]


def lift_mask(frame: Frame, alpha: Tensor | None, footprint: Tensor | None, cfg: LiftConfig) -> Tensor:
    """[H, W] bool: the pixels of `frame` to turn into Gaussians.

    Args:
        frame: the refined frame.
        alpha: [H, W] the scene's rendered alpha at this view (None: the scene is empty).
        footprint: [H, W] the scene's rendered footprint in pixels, un-premultiplied (None: skip the detail test).
    """
    ok = ~frame.sky & torch.isfinite(frame.depth) & (frame.depth > 0)
    if alpha is None:
        return ok
    need = alpha < cfg.hole_alpha
    if footprint is not None:
        need |= footprint > cfg.detail_px
    return ok & need


def depth_edges(depth: Tensor, ratio: float) -> Tensor:
    """[H, W] bool: pixels whose z-depth [H, W] differs from a 4-neighbour's by more than `ratio`."""
    d = torch.where(torch.isfinite(depth), depth, torch.full_like(depth, 1e10)).clamp_min(1e-6)[None, None]
    mx = F.max_pool2d(F.pad(d, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    mn = -F.max_pool2d(F.pad(-d, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return ((mx / d > ratio) | (d / mn > ratio))[0, 0]


def lift(frame: Frame, mask: Tensor, birth: int, cfg: LiftConfig) -> GaussianScene:
    """New Gaussians [M = mask.sum()] for the pixels of `frame` selected by `mask` [H, W] bool."""
    cam = frame.camera
    pts = cam.unproject(torch.where(mask, frame.depth, torch.ones_like(frame.depth)))[mask]  # [M, 3]
    depth = frame.depth[mask]
    shrink = torch.where(depth_edges(frame.depth, cfg.edge_ratio)[mask], cfg.edge_shrink, 1.0)
    sigma = cfg.sigma_px * depth / cam.fx * shrink  # world units
    s = sigma.log()
    log_scales = torch.stack([s, s, s + torch.log(torch.tensor(cfg.flatness))], dim=-1)
    m = pts.shape[0]
    quat = rotmat_to_quat(cam.rotation)[None].expand(m, 4).contiguous()  # local z along the viewing axis
    return GaussianScene(
        means=pts.contiguous(),
        quats=quat,
        log_scales=log_scales,
        opacity_logits=torch.full((m,), float(inverse_sigmoid(cfg.opacity)), device=pts.device),
        colors=frame.rgb[mask].contiguous(),
        birth=torch.full((m,), birth, dtype=torch.int32, device=pts.device),
    )
