"""The slow, literal transcription of gsplat's kernels: the oracle the fast path is tested against.

Kept apart from the production renderer (renderers/torch_backend.py), as gsplat keeps its PyTorch
twins in `_torch_impl.py`. Per-Gaussian projection in float64 and per-tile rasterisation with gsplat's
16x16 tiles and its running float32 transmittance: for tests on tiny images only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from renderers.torch_backend import (ALPHA_MAX, ALPHA_MIN, EPS2D, EXTEND_MAX, FAR_PLANE, NEAR_PLANE, T_MIN, Projected,
                                     _check_features, _finish, _frustum_limits, _scene_inputs)
from worldgen.core.camera import Camera, quat_to_rotmat
from worldgen.core.interfaces import Render
from worldgen.core.scene import GaussianScene

TILE_SIZE = 16  # gsplat's tile size


def rasterize_reference(proj: Projected, attrs: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """Slow, literal transcription of gsplat's forward kernel, for tests on tiny images.

    Bins Gaussians into 16x16 tiles by their radius boxes (as gsplat's `isect_tiles`), sorts each
    tile's list by depth, and lets every pixel of the tile walk that list front to back with a running
    float32 transmittance product (as each CUDA thread does; here the tile's pixels move in lockstep).
    Same inputs and outputs as `rasterize`: out [H, W, D] and alpha [H, W].
    """
    W, H = width, height
    D = attrs.shape[1]
    out = torch.zeros(H, W, D, dtype=torch.float32)
    alpha_img = torch.zeros(H, W, dtype=torch.float32)
    m2 = proj.means2d.detach().cpu().float()
    con = proj.conics.detach().cpu().float()
    op = proj.opacities.detach().cpu().float()
    rad = proj.radii.cpu().float()
    z = proj.depths.detach().cpu().float()
    at = attrs.detach().cpu().float()
    tiles_x, tiles_y = math.ceil(W / TILE_SIZE), math.ceil(H / TILE_SIZE)
    # gsplat's tile range of each box: [floor((u - r) / 16), ceil((u + r) / 16)), clipped to the grid.
    t0 = torch.floor((m2 - rad) / TILE_SIZE).clamp_min(0)
    t1 = torch.minimum(torch.ceil((m2 + rad) / TILE_SIZE), torch.tensor([tiles_x, tiles_y], dtype=torch.float32))
    for ty in range(tiles_y):
        for tx in range(tiles_x):
            hits = [i for i in range(len(proj)) if t0[i, 0] <= tx < t1[i, 0] and t0[i, 1] <= ty < t1[i, 1]]
            hits.sort(key=lambda i: (float(z[i]), i))  # depth, then index (gsplat's stable radix sort)
            # The tile's pixels walk the list in lockstep, like the CUDA threads of one block.
            ii, jj = torch.meshgrid(
                torch.arange(ty * TILE_SIZE, min(H, (ty + 1) * TILE_SIZE)),
                torch.arange(tx * TILE_SIZE, min(W, (tx + 1) * TILE_SIZE)),
                indexing="ij",
            )
            px, py = jj.float() + 0.5, ii.float() + 0.5  # pixel centres
            T = torch.ones(px.shape)
            done = torch.zeros(px.shape, dtype=torch.bool)
            acc = torch.zeros(*px.shape, D)
            for i in hits:
                dx, dy = m2[i, 0] - px, m2[i, 1] - py
                a, b, c = con[i]
                sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
                alpha = torch.clamp_max(op[i] * torch.exp(-sigma), ALPHA_MAX)
                active = ~done & (sigma >= 0) & (alpha >= ALPHA_MIN)
                next_T = T * (1 - alpha)
                finish = active & (next_T <= T_MIN)  # exclusive: this Gaussian is not composited
                done |= finish
                use = active & ~finish
                acc += torch.where(use, alpha * T, 0.0)[..., None] * at[i]
                T = torch.where(use, next_T, T)
            out[ii, jj] = acc
            alpha_img[ii, jj] = 1 - T
    return out, alpha_img


def project_gaussians_reference(
    means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, camera: Camera, eps2d: float = EPS2D
) -> Projected:
    """Slow per-Gaussian transcription of gsplat's projection (for tests): same contract as `project_gaussians`."""
    W, H = camera.width, camera.height
    K, w2c = camera.K.double(), camera.w2c.double()
    R, t = w2c[:3, :3], w2c[:3, 3]
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    lxn, lxp, lyn, lyp = _frustum_limits(K, W, H)
    rows = []
    for i in range(means.shape[0]):
        mc = R @ means[i].double() + t
        if not NEAR_PLANE <= float(mc[2]) <= FAR_PLANE:
            continue
        Rq = quat_to_rotmat(quats[i].double())
        S = torch.diag(scales[i].double())
        cov_c = R @ (Rq @ S @ S @ Rq.T) @ R.T
        x, y, zc = (float(v) for v in mc)
        txc = zc * min(lxp, max(-lxn, x / zc))
        tyc = zc * min(lyp, max(-lyn, y / zc))
        J = torch.tensor([[fx / zc, 0.0, -fx * txc / zc**2], [0.0, fy / zc, -fy * tyc / zc**2]], dtype=torch.float64)
        cov2d = J @ cov_c @ J.T + eps2d * torch.eye(2, dtype=torch.float64)
        if float(torch.det(cov2d)) <= 0:
            continue
        o = float(opacities[i])
        if o < ALPHA_MIN:
            continue
        extend = min(EXTEND_MAX, math.sqrt(2 * math.log(o / ALPHA_MIN)))
        rx, ry = math.ceil(extend * math.sqrt(cov2d[0, 0])), math.ceil(extend * math.sqrt(cov2d[1, 1]))
        u, v = fx * x / zc + cx, fy * y / zc + cy
        if rx <= 0 and ry <= 0 or u + rx <= 0 or u - rx >= W or v + ry <= 0 or v - ry >= H:
            continue
        inv = torch.linalg.inv(cov2d)
        rows.append((i, u, v, zc, float(inv[0, 0]), float(inv[0, 1]), float(inv[1, 1]), o, rx, ry))
    f = lambda k, dt=torch.float32: torch.tensor([r[k] for r in rows], dtype=dt)  # noqa: E731
    if not rows:
        e = torch.zeros(0)
        return Projected(e.long(), e.view(0, 2), e, e.view(0, 3), e, e.view(0, 2).long())
    return Projected(
        f(0, torch.int64),
        torch.stack([f(1), f(2)], -1),
        f(3),
        torch.stack([f(4), f(5), f(6)], -1),
        f(7),
        torch.stack([f(8, torch.int64), f(9, torch.int64)], -1),
    )


def render_reference(
    scene: GaussianScene, camera: Camera, features: Tensor | None = None, eps2d: float = EPS2D
) -> Render:
    """`TorchRenderer.render` computed by the slow reference projection and rasteriser (tests only, tiny images)."""
    _check_features(scene, features)
    means, quats, scales, opac, colors = (t.detach().cpu() for t in _scene_inputs(scene))
    proj = project_gaussians_reference(means, quats, scales, opac, camera.to("cpu"), eps2d)
    parts = [colors[proj.ids]] + ([features.detach().cpu()[proj.ids]] if features is not None else [])
    attrs = torch.cat(parts + [proj.depths[:, None]], dim=1).float()
    out, alpha = rasterize_reference(proj, attrs, camera.width, camera.height)
    return _finish(out, alpha, None if features is None else features.shape[1])
