"""Lifting: turn a refined RGBD frame into new Gaussians, only where the scene lacks them.

A pixel becomes a Gaussian when it is not sky, has a finite depth, and either the scene does not
cover it (rendered alpha below `hole_alpha`) or less than half of it is drawn by Gaussians of at most
`detail_px` pixels (the camera came closer than they were made for) and the refined frame holds detail
the render lacks (its colour differs from the render by more than `detail_change`). Each new Gaussian is a flat disc on the local surface, centred on the pixel's unprojected
point, spanning `sigma_px` times the pixel's footprint on that surface: its size follows its pixel
footprint, so no Gaussian spans a depth discontinuity (on discontinuities it is a smaller disc
facing the camera).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from worldgen.core.camera import Camera, quat_z_axes, rotmat_to_quat
from worldgen.core.config import bad
from worldgen.core.frame import Frame
from worldgen.core.graphs import GraphCache, camera_inputs, graphs_enabled, static_camera
from worldgen.core.scene import GaussianScene, inverse_sigmoid


@dataclass(frozen=True)
class LiftConfig:
    """How refined pixels become Gaussians (worldgen/pipeline/lift.py)."""

    sigma_px: float = 0.45
    """Standard deviation of a new Gaussian, in pixels of the frame it is lifted from (with the
    renderer's eps2d = 0.1 px^2, neighbours overlap enough to leave no gaps, little enough to keep
    the frame sharp)."""
    flatness: float = 0.35
    """Thickness along the viewing ray relative to the in-plane size (discs facing the camera)."""
    opacity: float = 0.98
    """Opacity of new Gaussians."""
    hole_alpha: float = 0.5
    """Pixels the scene covers with less than this rendered alpha are lifted."""
    detail_px: float = 2.0
    """Pixels drawn less than half by Gaussians of at most this size (std, in pixels) get finer Gaussians ..."""
    detail_change: float = 0.02
    """... where the refined colour differs from the scene's own render by more than this (largest
    channel, 0..1): a refiner that returns the render (the classical one on covered pixels) adds no
    detail, and finer Gaussians of the same blur would only grow the world (at 512x512, 4 % of the
    pixels per frame while the autopilot came down towards the ground). 0: every such pixel."""
    edge_ratio: float = 1.1
    """A pixel whose depth differs from a neighbour's by more than this ratio sits on a discontinuity."""
    edge_shrink: float = 0.6
    """Size factor for Gaussians on depth discontinuities."""
    max_stretch: float = 4.0
    """Largest in-plane size of a surface-aligned Gaussian, in fronto-parallel pixel sizes (grazing views)."""

    def validate(self) -> None:
        for name in ("sigma_px", "flatness", "detail_px", "edge_shrink"):
            if not getattr(self, name) > 0:
                raise bad(name, "must be positive", getattr(self, name))
        if not 0 < self.opacity < 1:
            raise bad("opacity", "must be between 0 and 1 (exclusive)", self.opacity)
        if not 0 <= self.hole_alpha <= 1:
            raise bad("hole_alpha", "must be in [0, 1]", self.hole_alpha)
        if not 0 <= self.detail_change <= 1:
            raise bad("detail_change", "must be in [0, 1]", self.detail_change)
        if not self.edge_ratio > 1:
            raise bad("edge_ratio", "must be greater than 1", self.edge_ratio)
        if not self.max_stretch >= 1:
            raise bad("max_stretch", "must be at least 1", self.max_stretch)


def footprint_px(scene: GaussianScene, camera: Camera) -> Tensor:
    """[N, 1] each Gaussian's projected size in pixels as seen by `camera` (0 behind it).

    The size is the geometric mean of the projected in-plane standard deviations of the (flat)
    Gaussian: sqrt(s_x s_y |cos theta| / cos alpha) fx / z, with theta between its normal (local z)
    and the view ray, alpha between the view ray and the optical axis (a pinhole's area
    foreshortening; fronto-parallel discs project at s fx / z anywhere in the image). Every frame
    computes it for the whole working set, so it is written in few operations (about 35; the loop is
    bound by their dispatch on the GPU).
    """
    c2w = camera.c2w
    rel = scene.means - c2w[:3, 3]  # [N, 3]
    z = rel @ c2w[:3, 2]  # [N] along the optical axis
    dist = rel.norm(dim=-1).clamp_min(1e-12)
    n_q2, q2 = quat_z_axes(scene.quats)  # the normal times |q|^2, |q|^2
    cos_t = (torch.linalg.vecdot(n_q2, rel) / (q2.clamp_min(1e-24) * dist)).abs().clamp_min(0.05)
    cos_a = (z / dist).clamp_min(0.05)
    s = (scene.log_scales[:, :2].sum(-1) * 0.5).exp() * (cos_t / cos_a).sqrt()
    return torch.where(z > 1e-6, s * camera.fx / z.clamp_min(1e-6), 0.0)[:, None]


def lift_mask(frame: Frame, alpha: Tensor | None, footprint: Tensor | None, cfg: LiftConfig,
              rendered: Tensor | None = None, fine_share: Tensor | None = None) -> Tensor:
    """[H, W] bool: the pixels of `frame` to turn into Gaussians.

    Args:
        frame: the refined frame.
        alpha: [H, W] the scene's rendered alpha at this view (None: the scene is empty).
        footprint: [H, W] the scene's rendered footprint in pixels, un-premultiplied (None: skip the detail test).
        rendered: [H, W, 3] the scene's render at this view, premultiplied by alpha (None: every pixel
            with coarse Gaussians gets finer ones; else only those whose refined colour differs from
            the render by more than `cfg.detail_change`).
        fine_share: [H, W] the share of the pixel's alpha drawn by Gaussians of at most `cfg.detail_px`
            (`RenderedView.fine_share`). Given, a pixel is coarse where that share is below one half, not
            where the mean footprint exceeds detail_px: a pixel drawn 80 % by fine Gaussians in front of a
            20-px one has a mean footprint of ~5 px, and was lifted again every frame.
    """
    ok = ~frame.sky & torch.isfinite(frame.depth) & (frame.depth > 0)
    if alpha is None:
        return ok
    need = alpha < cfg.hole_alpha
    if footprint is not None:
        coarse = footprint > cfg.detail_px if fine_share is None else fine_share < 0.5
        if rendered is not None and cfg.detail_change > 0:
            shown = rendered / alpha.clamp_min(1e-6)[..., None]
            coarse &= (frame.rgb.detach() - shown).abs().amax(-1) > cfg.detail_change
        need |= coarse
    return ok & need


def depth_edges(depth: Tensor, ratio: float) -> Tensor:
    """[H, W] bool: pixels whose z-depth [H, W] differs from a 4-neighbour's by more than `ratio`."""
    d = torch.where(torch.isfinite(depth), depth, torch.full_like(depth, 1e10)).clamp_min(1e-6)[None, None]
    mx = F.max_pool2d(F.pad(d, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    mn = -F.max_pool2d(F.pad(-d, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return ((mx / d > ratio) | (d / mn > ratio))[0, 0]


def _surface_steps(points: Tensor, depth: Tensor, edges: Tensor) -> tuple[Tensor, Tensor]:
    """Per-pixel world steps to the right and down neighbours on the same surface.

    points [H, W, 3], depth [H, W]; returns du, dv [H, W, 3]: of the forward and backward
    differences, the one with the smaller depth change (so steps never cross a discontinuity).
    """
    def pick(fwd: Tensor, bwd: Tensor, dz_f: Tensor, dz_b: Tensor) -> Tensor:
        return torch.where((dz_f <= dz_b)[..., None], fwd, bwd)

    P = points
    big = torch.full_like(depth, float("inf"))
    fx = torch.cat([P[:, 1:] - P[:, :-1], P[:, -1:] - P[:, -2:-1]], dim=1)
    bx = torch.cat([P[:, 1:2] - P[:, :1], P[:, 1:] - P[:, :-1]], dim=1)
    zfx = torch.cat([(depth[:, 1:] - depth[:, :-1]).abs(), big[:, :1]], dim=1)
    zbx = torch.cat([big[:, :1], (depth[:, 1:] - depth[:, :-1]).abs()], dim=1)
    fy = torch.cat([P[1:] - P[:-1], P[-1:] - P[-2:-1]], dim=0)
    by = torch.cat([P[1:2] - P[:1], P[1:] - P[:-1]], dim=0)
    zfy = torch.cat([(depth[1:] - depth[:-1]).abs(), big[:1]], dim=0)
    zby = torch.cat([big[:1], (depth[1:] - depth[:-1]).abs()], dim=0)
    return pick(fx, bx, zfx, zbx), pick(fy, by, zfy, zby)


def _pixel_surfaces(cam: Camera, depth: Tensor, cfg: LiftConfig) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Per pixel of a z-depth map [H, W] seen by `cam`: (points [H, W, 3] keeping the autograd path to
    `depth`, the same points detached, their depth [H, W] (1 where not finite), du, dv [H, W, 3]
    steps to the neighbours on the same surface, edges [H, W] bool)."""
    finite_depth = torch.where(torch.isfinite(depth) & (depth > 0), depth, torch.ones_like(depth))
    P = cam.unproject(finite_depth)
    # Orientation and size are derived quantities: computed without gradients.
    Pd, fd = P.detach(), finite_depth.detach()
    edges = depth_edges(depth.detach(), cfg.edge_ratio)
    du, dv = _surface_steps(Pd, fd, edges)
    return P, Pd, fd, du, dv, edges


def _shapes(cam: Camera, pts: Tensor, depth: Tensor, du: Tensor, dv: Tensor, edge: Tensor,
            cfg: LiftConfig) -> tuple[Tensor, Tensor]:
    """(quats [M, 4], log_scales [M, 3]) of the Gaussians at M points `pts` [M, 3] (z-depth [M],
    surface steps du, dv [M, 3], on a discontinuity `edge` [M]) seen by `cam`."""
    m = pts.shape[0]
    base = depth / cam.fx  # fronto-parallel pixel size at this depth [M]
    # Surface frame: t1 along du, n = du x dv facing the camera, t2 = n x t1.
    n = torch.linalg.cross(du, dv)
    n_norm = n.norm(dim=-1, keepdim=True)
    to_cam = cam.position - pts
    n = n / n_norm.clamp_min(1e-20)
    n = torch.where(((n * to_cam).sum(-1, keepdim=True) < 0), -n, n)
    t1 = du / du.norm(dim=-1, keepdim=True).clamp_min(1e-20)
    t2 = torch.linalg.cross(n, t1)
    s1 = du.norm(dim=-1)
    s2 = (dv * t2).sum(-1).abs()
    ok = ~edge & (n_norm[:, 0] > 0) & torch.isfinite(n).all(-1) & (s1 > 0) & (s2 > 0)
    cap = cfg.max_stretch * base
    s1 = torch.minimum(s1, cap)
    s2 = torch.minimum(s2, cap)
    # Fallback: camera-facing disc (camera axes), shrunk on discontinuities.
    R_cam = cam.rotation[None].expand(m, 3, 3)
    R_surf = torch.stack([t1, t2, n], dim=-1)  # columns: local x, y, z axes in world
    R = torch.where(ok[:, None, None], R_surf, R_cam)
    shrink = torch.where(edge, cfg.edge_shrink, 1.0)
    sx = torch.where(ok, s1, base * shrink) * cfg.sigma_px
    sy = torch.where(ok, s2, base * shrink) * cfg.sigma_px
    sz = torch.minimum(sx, sy) * cfg.flatness
    log_scales = torch.stack([sx, sy, sz], dim=-1).clamp_min(1e-12).log()
    return rotmat_to_quat(R).contiguous(), log_scales


_GRAPHS = GraphCache()


def _dense_graphed(frame: Frame, cfg: LiftConfig) -> tuple[Tensor, Tensor, Tensor]:
    """(means [H W, 3], quats [H W, 4], log_scales [H W, 3]) of a Gaussian at every pixel of `frame`
    (on CUDA, no autograd), replayed from a CUDA graph (worldgen/core/graphs.py): the graph's own outputs,
    which the next replay overwrites (the caller picks its pixels from them at once)."""
    cam_inputs, cam_key = camera_inputs(frame.camera)
    key = ("lift", cfg, cam_key)

    def build(static: list[Tensor]):
        cam, (depth,) = static_camera(frame.camera, static)

        def run() -> tuple[Tensor, Tensor, Tensor]:
            P, _Pd, fd, du, dv, edges = _pixel_surfaces(cam, depth, cfg)
            pts = P.reshape(-1, 3)
            quats, log_scales = _shapes(cam, pts, fd.reshape(-1), du.reshape(-1, 3), dv.reshape(-1, 3),
                                        edges.reshape(-1), cfg)
            return pts, quats, log_scales

        return run

    return _GRAPHS.run(key, cam_inputs + [frame.depth], build, fresh=False)


def lift(frame: Frame, mask: Tensor, cfg: LiftConfig) -> GaussianScene:
    """New Gaussians [M = mask.sum()] for the pixels of `frame` selected by `mask` [H, W] bool.

    Each Gaussian lies on the local surface (normal from the depth map's neighbours on the same
    side of any discontinuity), its in-plane axes spanning `sigma_px` times the pixel's footprint on
    that surface (stretch capped at `max_stretch` for grazing views); on discontinuities and where
    the surface cannot be estimated, it is a small disc facing the camera. Only `means` and `colors`
    keep an autograd path to the frame (training). On CUDA without autograd the per-pixel geometry
    is one CUDA graph (every pixel, then the masked ones are picked: one synchronisation in all).
    """
    cam = frame.camera
    idx = mask.reshape(-1).nonzero().squeeze(1)  # [M]
    m = idx.shape[0]
    if m == 0:
        return GaussianScene.empty(frame.depth.device)
    grad = torch.is_grad_enabled() and (frame.depth.requires_grad or frame.rgb.requires_grad)
    if frame.depth.is_cuda and not grad and graphs_enabled():
        means, quats, log_scales = (x[idx] for x in _dense_graphed(frame, cfg))
    else:
        P, Pd, fd, du, dv, edges = _pixel_surfaces(cam, frame.depth, cfg)
        means = P.reshape(-1, 3)[idx]  # the only geometry that keeps an autograd path to the frame's depth
        quats, log_scales = _shapes(cam, Pd.reshape(-1, 3)[idx], fd.reshape(-1)[idx], du.reshape(-1, 3)[idx],
                                    dv.reshape(-1, 3)[idx], edges.reshape(-1)[idx], cfg)
    return GaussianScene(
        means=means.contiguous(),
        quats=quats,
        log_scales=log_scales,
        opacity_logits=torch.full((m,), float(inverse_sigmoid(cfg.opacity)), device=frame.depth.device),
        colors=frame.rgb.reshape(-1, 3)[idx].contiguous(),
    )
