"""A pure-PyTorch Gaussian rasteriser that follows gsplat's rules (CPU, and any torch device).

It reproduces `gsplat.rasterization(..., packed=False, eps2d=0.3, near_plane=0.01, far_plane=1e10,
radius_clip=0, rasterize_mode="classic", render_mode="RGB+ED")` of gsplat 1.5.3:

Projection (gsplat's `ProjectionEWA3DGSFused.cu` / `persp_proj`):
    - camera-space mean `t = R_w2c @ mean + t_w2c`; culled unless `near <= t.z <= far`;
    - 3D covariance `R(q) S S R(q)^T` (q wxyz, normalised; S = diag(scales));
    - EWA: `cov2d = J R_w2c cov3d R_w2c^T J^T` with the perspective Jacobian evaluated at the mean,
      whose x/z and y/z are clamped to the frustum widened by 30 % of tan(fov/2) on each side
      (for a centred principal point: +-1.3 tan(fov/2));
    - `cov2d += eps2d * I` (0.3 px^2 of screen-space blur), culled if det(cov2d) <= 0;
    - opacity-aware radius: culled if opacity < 1/255, else
      `extend = min(3.33, sqrt(2 ln(255 opacity)))`, `radius = ceil(extend * sqrt(diag(cov2d)))`;
    - culled if the box `mean2d +- radius` lies entirely outside the image.
Rasterisation (gsplat's `RasterizeToPixels3DGSFwd.cu`), per pixel centre p = (j + 0.5, i + 0.5):
    - Gaussians in increasing z (ties: lower index first, gsplat's stable radix sort);
    - `sigma = 0.5 (a dx^2 + c dy^2) + b dx dy` with conic (a, b, c) = cov2d^-1, d = mean2d - p;
    - `alpha = min(0.999, opacity exp(-sigma))`, skipped if alpha < 1/255;
    - front-to-back `C += c alpha T`, `T *= 1 - alpha`, and the pixel stops *before* the Gaussian
      that would make `T <= 1e-4` (that Gaussian is not composited, nor any behind it);
    - outputs: colour channels (premultiplied, no background), alpha = 1 - T, and expected depth
      `sum(w z) / alpha` (0 where alpha = 0).

Tiles. gsplat tests a Gaussian at every pixel of every 16x16 tile its radius box touches. The box
contains every pixel where alpha >= 1/255 (it bounds the ellipse on which `opacity exp(-sigma) =
1/255`, and the radius is rounded up), so the alpha test fails outside the box whatever the tiles:
the tile size never changes what a pixel receives. The fast path uses 4x4 tiles (3-4x fewer
evaluations than 16x16 for small Gaussians); `renderers/torch_reference.py` keeps gsplat's
literal 16x16 tiles, and the tests check that both agree.

Fast path (`rasterize`), fully vectorised, no per-pixel sort:
    1. Gaussians sorted by depth (stable); (Gaussian, 4x4 tile) intersections for every tile the
       Gaussian's pixel box touches, stably sorted by tile, so depth order holds within a tile;
    2. `sigma - ln(opacity)` of all 16 pixels of all intersections as one [16, NI] matrix product
       (the quadratic form expanded around each tile's centre), alpha >= 1/255 selected row by row:
       the resulting (pixel, Gaussian) pairs come out grouped by pixel, front to back in each pixel;
    3. transmittance as a segmented cumulative sum of log(1 - alpha) in float64 (the cumsum minus its
       value at the start of the pixel's segment). The sum runs over *all* of a pixel's pairs, so it
       only decreases, and gsplat's stop rule is simply "log T after the pair > log 1e-4";
    4. per-pixel sums of `w * channels` as a sparse (pixels x Gaussians) @ [M, D] product (or
       `torch.segment_reduce` when gradients are needed).
Gaussians are processed in depth-ordered chunks (bounded memory), each pixel's log-transmittance
carried from chunk to chunk. Deviation from gsplat: its `sigma < 0` skip (only reachable through
rounding, the conic being positive definite) is not reproduced.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from worldgen.core.interfaces import Render
from worldgen.core.camera import Camera, quat_to_rotmat
from worldgen.core.scene import GaussianScene

EPS2D = 0.3  # gsplat default: px^2 added to the 2D covariance diagonal
NEAR_PLANE = 0.01  # gsplat default near plane (camera z)
FAR_PLANE = 1e10  # gsplat default far plane (camera z)
ALPHA_MIN = 1.0 / 255.0  # gsplat ALPHA_THRESHOLD: smaller alphas are skipped
ALPHA_MAX = 0.999  # gsplat caps each Gaussian's alpha here
T_MIN = 1e-4  # a pixel stops before the Gaussian that would make T <= T_MIN
EXTEND_MAX = 3.33  # gsplat's radius in standard deviations, before the opacity-aware bound
FRUSTUM_MARGIN = 0.3  # the Jacobian's x/z, y/z are clamped 30 % of tan(fov/2) beyond the image
_TILE = 4  # the fast path's tile size (see "Tiles" above: the tile size does not change the result)

_LOG_T_MIN = math.log(T_MIN)
_NEG_LOG_ALPHA_MIN = -math.log(ALPHA_MIN)  # alpha >= 1/255  <=>  sigma - ln(opacity) <= ln 255


@dataclass
class Projected:
    """Screen-space Gaussians that survived culling (M of them), in increasing scene index.

    Attributes:
        ids: [M] int64 indices into the scene's N Gaussians.
        means2d: [M, 2] pixel coordinates (u, v) of the projected centres (pixel centres at +0.5).
        depths: [M] camera z of the centres.
        conics: [M, 3] (a, b, c): the inverse of the blurred 2D covariance [[a, b], [b, c]].
        opacities: [M] opacities in (0, 1].
        radii: [M, 2] int64 box half-sizes in pixels (x, y), gsplat's opacity-aware radii.
    """

    ids: Tensor
    means2d: Tensor
    depths: Tensor
    conics: Tensor
    opacities: Tensor
    radii: Tensor

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def _frustum_limits(K: Tensor, width: int, height: int) -> tuple[float, float, float, float]:
    """gsplat's clamp range for x/z and y/z in the Jacobian: (lim_x_neg, lim_x_pos, lim_y_neg, lim_y_pos)."""
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    return (
        cx / fx + FRUSTUM_MARGIN * tan_fovx,
        (width - cx) / fx + FRUSTUM_MARGIN * tan_fovx,
        cy / fy + FRUSTUM_MARGIN * tan_fovy,
        (height - cy) / fy + FRUSTUM_MARGIN * tan_fovy,
    )


def _opacity_extend(opacities: Tensor) -> Tensor:
    """[M] gsplat's box half-size in standard deviations: min(3.33, sqrt(2 ln(opacity / (1/255))))."""
    return torch.sqrt(2.0 * torch.log(opacities / ALPHA_MIN)).clamp_max(EXTEND_MAX)


def project_gaussians(
    means: Tensor,  # [N, 3] world
    quats: Tensor,  # [N, 4] wxyz (normalised here)
    scales: Tensor,  # [N, 3] standard deviations (activated, not log)
    opacities: Tensor,  # [N] in (0, 1] (activated, not logits)
    camera: Camera,
    eps2d: float = EPS2D,
    near_plane: float = NEAR_PLANE,
    far_plane: float = FAR_PLANE,
) -> Projected:
    """EWA-project N Gaussians into `camera` and cull them exactly as gsplat 1.5.3 does.

    Returns the M survivors (see `Projected`). Differentiable in means, quats, scales and opacities
    (radii and culling are not, as in gsplat).
    """
    W, H = camera.width, camera.height
    K = camera.K.to(means.device, means.dtype)
    w2c = camera.w2c.to(means.device, means.dtype)
    Rw, tw = w2c[:3, :3], w2c[:3, 3]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    lxn, lxp, lyn, lyp = _frustum_limits(K, W, H)

    # 1. Near/far culling on the cheapest quantity first (scenes hold millions, most out of view).
    z_all = means @ Rw[2] + tw[2]  # [N]
    ids = torch.nonzero((z_all >= near_plane) & (z_all <= far_plane)).squeeze(1)
    # 2. A conservative screen test (never culls what gsplat keeps): the x std of the projection is
    #    at most |J row| * max scale, |J row| <= f/z * sqrt(1 + lim^2) because x/z is clamped to lim.
    pc = means.index_select(0, ids) @ Rw.T + tw  # [M', 3] camera space
    with torch.no_grad():
        z = pc[:, 2]
        u, v = fx * pc[:, 0] / z + cx, fy * pc[:, 1] / z + cy
        smax = scales.index_select(0, ids).max(dim=1).values if ids.numel() else z
        sq = math.sqrt(eps2d)
        rx = EXTEND_MAX * (fx / z * math.sqrt(1 + max(lxn, lxp) ** 2) * smax + sq) + 1
        ry = EXTEND_MAX * (fy / z * math.sqrt(1 + max(lyn, lyp) ** 2) * smax + sq) + 1
        on = (u + rx > 0) & (u - rx < W) & (v + ry > 0) & (v - ry < H) & (opacities.index_select(0, ids) >= ALPHA_MIN)
        on = torch.nonzero(on).squeeze(1)
    ids, pc = ids.index_select(0, on), pc.index_select(0, on)

    # 3. Exact projection of the candidates.
    x, y, z = pc.unbind(-1)
    rz = 1.0 / z
    tx = z * (x * rz).clamp(-lxn, lxp)  # gsplat clamps the Jacobian to the (widened) frustum
    ty = z * (y * rz).clamp(-lyn, lyp)
    # M_c = R_w2c R(q) S, so cov_c = M_c M_c^T; J M_c has rows T0, T1 and cov2d = [[T0.T0, T0.T1], [., T1.T1]].
    Mc = Rw @ (quat_to_rotmat(quats[ids]) * scales[ids][:, None, :])  # [M, 3, 3]
    j00, j02 = fx * rz, -fx * tx * rz * rz
    j11, j12 = fy * rz, -fy * ty * rz * rz
    T0 = j00[:, None] * Mc[:, 0] + j02[:, None] * Mc[:, 2]  # [M, 3]
    T1 = j11[:, None] * Mc[:, 1] + j12[:, None] * Mc[:, 2]
    cxx = (T0 * T0).sum(-1) + eps2d
    cxy = (T0 * T1).sum(-1)
    cyy = (T1 * T1).sum(-1) + eps2d
    det = cxx * cyy - cxy * cxy
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)
    op = opacities[ids]

    with torch.no_grad():
        extend = _opacity_extend(op)
        rad_x = torch.ceil(extend * cxx.clamp_min(0).sqrt())
        rad_y = torch.ceil(extend * cyy.clamp_min(0).sqrt())
        mx, my = means2d[:, 0], means2d[:, 1]
        keep = (
            (det > 0)
            & (op >= ALPHA_MIN)
            & ((rad_x > 0) | (rad_y > 0))  # gsplat: radius <= radius_clip (0) in both axes is culled
            & (mx + rad_x > 0) & (mx - rad_x < W) & (my + rad_y > 0) & (my - rad_y < H)
        )
        k = torch.nonzero(keep).squeeze(1)
    det_k = det[k]
    conics = torch.stack([cyy[k] / det_k, -cxy[k] / det_k, cxx[k] / det_k], dim=-1)
    radii = torch.stack([rad_x[k], rad_y[k]], dim=-1).long()
    return Projected(ids[k], means2d[k], z[k], conics, op[k], radii)


def rasterize(
    proj: Projected,
    attrs: Tensor,  # [M, D] per-Gaussian channels composited like colour (colour, features, depth...)
    width: int,
    height: int,
    max_pairs: int = 1 << 23,
) -> tuple[Tensor, Tensor]:
    """Composite projected Gaussians front to back with gsplat's rules (fast, vectorised).

    Args:
        proj: M projected Gaussians (`project_gaussians`).
        attrs: [M, D] channels per Gaussian.
        width, height: image size W, H.
        max_pairs: about this many (Gaussian, pixel) candidate pairs are held at once (memory bound);
            the result does not depend on it.

    Returns:
        out: [H, W, D] sum over Gaussians of attrs * alpha * T (premultiplied, no background).
        alpha: [H, W] 1 - final transmittance.
    """
    W, H, B = width, height, _TILE
    tiles_x, tiles_y = -(-W // B), -(-H // B)
    n_tiles = tiles_x * tiles_y
    dev, D = attrs.device, attrs.shape[1]
    # Pixels are kept in (pixel-in-tile k, tile t) order, row k * n_tiles + t, on a canvas of whole tiles.
    # Channel D is the blending weight itself: its sum is alpha = 1 - T over composited Gaussians.
    out = torch.zeros(B * B * n_tiles, D + 1, device=dev, dtype=attrs.dtype)
    # Per-pixel log of the product of (1 - alpha) over *all* pairs seen so far, composited or not:
    # it only decreases, so "composited" is exactly "log T after the pair > log 1e-4".
    log_T = torch.zeros(B * B * n_tiles, device=dev, dtype=torch.float64)
    M = len(proj)
    if M > 0:
        order = torch.argsort(proj.depths.detach(), stable=True)  # front to back, ties by index
        gauss = torch.cat([proj.means2d - 0.5, proj.conics, proj.opacities[:, None]], dim=1)[order]  # [M, 6]
        attrs = torch.cat([attrs, torch.ones_like(attrs[:, :1])], dim=1)[order]  # [M, D + 1]
        with torch.no_grad():
            # Each Gaussian's pixel box (columns j with |j + 0.5 - u| <= radius_x, rows alike, clipped to
            # the image) and the range of tiles it touches.
            rad = proj.radii[order].to(gauss.dtype)
            m2 = gauss[:, :2].detach() + 0.5
            size = torch.tensor([W, H], device=dev, dtype=m2.dtype)
            lo = torch.ceil(m2 - rad - 0.5).clamp_min(0).minimum(size).long()
            hi = torch.floor(m2 + rad - 0.5).minimum(size - 1).long()
            empty = (hi < lo).any(dim=1)
            tile_lo = torch.div(lo, B, rounding_mode="floor")  # [M, 2] first tile column, row
            tile_n = torch.div(hi, B, rounding_mode="floor") - tile_lo + 1  # [M, 2]
            n_isect = torch.where(empty, 0, tile_n[:, 0] * tile_n[:, 1])  # [M] tiles per Gaussian
            # Depth-ordered chunks of about max_pairs candidate pairs (a larger Gaussian forms its own chunk).
            csum = torch.cumsum(n_isect, 0) * (B * B)
            n_chunks = int(csum[-1]) // max_pairs + 1
            targets = torch.arange(1, n_chunks + 1, device=dev) * max_pairs
            bounds = torch.searchsorted(csum, targets, right=True).tolist() + [M]
            # Canvas pixels outside the image (right/bottom tile overhang) count as done.
            outside = torch.ones(tiles_y * B, tiles_x * B, dtype=torch.bool, device=dev)
            outside[:H, :W] = False
            outside = outside.view(tiles_y, B, tiles_x, B).permute(1, 3, 0, 2).reshape(B * B, n_tiles)
        start, tile_done = 0, None
        for stop in bounds:
            if stop > start:
                sl = slice(start, stop)
                _composite_chunk(
                    gauss[sl], attrs[sl], tile_lo[sl], tile_n[sl], n_isect[sl], tiles_x, out, log_T, tile_done,
                    start > 0, stop == M,
                )
                start = stop
                if stop < M:  # like gsplat's early exit: skip tiles whose pixels have all stopped
                    with torch.no_grad():
                        tile_done = ((log_T.view(B * B, n_tiles) <= _LOG_T_MIN) | outside).all(dim=0)
    # (k = ky * B + kx, t = ty * tiles_x + tx) -> (ty * B + ky, tx * B + kx), then crop the canvas.
    out = out.view(B, B, tiles_y, tiles_x, D + 1).permute(2, 0, 3, 1, 4).reshape(tiles_y * B, tiles_x * B, D + 1)
    out = out[:H, :W]
    return out[..., :D], out[..., D]


def _composite_chunk(
    gauss: Tensor,  # [m, 6] depth-sorted (u - 0.5, v - 0.5, conic a, b, c, opacity)
    attrs: Tensor,  # [m, D + 1]
    tile_lo: Tensor,  # [m, 2] int64 first tile column, row of each Gaussian
    tile_n: Tensor,  # [m, 2] int64 tile columns, rows of each Gaussian
    n_isect: Tensor,  # [m] int64 tiles of each Gaussian
    tiles_x: int,
    out: Tensor,  # [B * B * n_tiles, D + 1] accumulated in place, rows k * n_tiles + t
    log_T: Tensor,  # [B * B * n_tiles] float64 log transmittance of all earlier pairs, updated in place
    tile_done: Tensor | None,  # [n_tiles] bool: tiles whose pixels have all stopped (None: none)
    carry: bool,  # whether earlier chunks exist (log_T may be non-zero)
    last: bool,  # whether this is the last chunk (log_T need not be updated)
) -> None:
    """Composite m depth-sorted Gaussians, all behind everything composited before, into `out`."""
    dev, B = gauss.device, _TILE
    m, n_pix = gauss.shape[0], out.shape[0]
    n_tiles = n_pix // (B * B)
    NI = int(n_isect.sum())
    if NI == 0:
        return
    with torch.no_grad():
        # (Gaussian, tile) intersections, sorted by tile; the stable sort keeps depth order within a tile.
        gid = torch.repeat_interleave(torch.arange(m, device=dev), n_isect, output_size=NI)  # [NI]
        first = torch.cumsum(n_isect, 0) - n_isect
        ints = torch.cat([tile_lo, tile_n[:, :1], first[:, None]], dim=1).index_select(0, gid)  # [NI, 4]
        local = torch.arange(NI, device=dev) - ints[:, 3]
        row = torch.div(local, ints[:, 2], rounding_mode="floor")
        tx = ints[:, 0] + local - row * ints[:, 2]
        ty = ints[:, 1] + row
        tile = ty * tiles_x + tx
        del ints, local, row, tx, ty
        perm = torch.sort(tile.to(torch.int32) if n_tiles < 2**31 else tile, stable=True).indices
        if tile_done is not None:
            perm = perm[~tile_done.index_select(0, tile.index_select(0, perm))]
        tile, gid = tile.index_select(0, perm), gid.index_select(0, perm)
        NI = tile.shape[0]
        if NI == 0:
            return
        # Pixel coordinates of each tile's centre.
        t = torch.arange(n_tiles, device=dev)
        centres = torch.stack([t % tiles_x, torch.div(t, tiles_x, rounding_mode="floor")], 1) * B + 0.5 * (B - 1)
        centre = centres.to(gauss.dtype).index_select(0, tile)  # [NI, 2]
    # sigma - ln(opacity) at the tile's B*B pixels as one matrix product: with (u, v) the mean
    # relative to the tile's centre and (e, f) a pixel's offset from it (|e|, |f| <= 1.5),
    # 0.5 (a (u-e)^2 + c (v-f)^2) + b (u-e)(v-f) = q(u, v) - e (a u + b v) - f (c v + b u) + q(e, f).
    # Centring keeps every term small where alpha >= 1/255 (the conic's eigenvalues are <= 1/eps2d).
    p = gauss.index_select(0, gid)  # [NI, 6]
    half = 0.5 * (B - 1)
    u = p[:, 0] - centre[:, 0]
    v = p[:, 1] - centre[:, 1]
    ca, cb, cc = p[:, 2], p[:, 3], p[:, 4]
    coef = torch.stack(
        [0.5 * (ca * u * u + cc * v * v) + cb * u * v - torch.log(p[:, 5]), -(ca * u + cb * v), -(cc * v + cb * u),
         0.5 * ca, 0.5 * cc, cb],
        dim=1,
    )  # [NI, 6]
    k = torch.arange(B * B, device=dev)
    e = (k % B).to(p.dtype) - half  # [B*B] pixel column offset from the tile centre
    f = torch.div(k, B, rounding_mode="floor").to(p.dtype) - half  # [B*B] row offset
    basis = torch.stack([torch.ones_like(e), e, f, e * e, f * f, e * f], dim=1)  # [B*B, 6]
    s = basis @ coef.T  # [B*B, NI] sigma - ln(opacity) of pixel k of each intersection; alpha = exp(-s)
    with torch.no_grad():
        # Pairs with alpha >= 1/255, row by row: ordered by (pixel-in-tile, tile, depth), i.e. every
        # pixel's pairs are contiguous and front to back.
        hit = s <= _NEG_LOG_ALPHA_MIN
        rows = [torch.nonzero(hit[j]).squeeze(1) for j in range(B * B)]  # intersections hit by pixel j
        pix = torch.cat([tile.index_select(0, n) + j * n_tiles for j, n in enumerate(rows)])  # [Q] non-decreasing
        g = gid.index_select(0, torch.cat(rows))  # [Q] Gaussian of each pair
        npix = torch.bincount(pix, minlength=n_pix)  # [n_pix] pairs per pixel
        seg_start = torch.cumsum(npix, 0) - npix  # [n_pix] index of each pixel's first pair
        seg_first = seg_start.index_select(0, pix)  # [Q]
    a = torch.exp(-torch.cat([s[j].index_select(0, n) for j, n in enumerate(rows)])).clamp_max(ALPHA_MAX)  # [Q]
    log1m = torch.log1p(-a)
    log1m64 = log1m.to(torch.float64)
    cs_excl = torch.cumsum(log1m64, 0) - log1m64  # float64: the sum runs over the whole chunk
    log_T_before = cs_excl - cs_excl.index_select(0, seg_first)  # log T in front of each pair (this chunk)
    if carry:
        log_T_before = log_T_before + log_T.index_select(0, pix)
    log_T_before = log_T_before.to(a.dtype)
    with torch.no_grad():
        keep = (log_T_before + log1m) > _LOG_T_MIN  # log T after the pair: gsplat stops before T <= 1e-4
    w = torch.where(keep, a * torch.exp(log_T_before), 0.0)  # [Q] blending weights alpha * T
    if w.requires_grad or attrs.requires_grad:
        out += torch.segment_reduce(attrs.index_select(0, g) * w[:, None], "sum", lengths=npix)
    else:  # the same sums as a sparse (pixels x Gaussians) @ attrs product: much faster on CPU
        crow = torch.cat([seg_start, seg_start.new_full((1,), pix.shape[0])])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            S = torch.sparse_csr_tensor(crow, g, w, size=(n_pix, m), check_invariants=False)
            out += S @ attrs
    if not last:
        log_T += torch.segment_reduce(log1m64, "sum", lengths=npix)


def _scene_inputs(scene: GaussianScene) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Activated scene values: means [N,3], quats [N,4] wxyz, scales [N,3], opacities [N], colors [N,3]."""
    return scene.means, scene.quats, scene.scales(), scene.opacities(), scene.colors


def _check_features(scene: GaussianScene, features: Tensor | None) -> None:
    if features is not None and (features.dim() != 2 or features.shape[0] != len(scene)):
        raise ValueError(f"features must be [N, C] with N = {len(scene)}, got {tuple(features.shape)}")


def _finish(out: Tensor, alpha: Tensor, n_feat: int | None) -> Render:
    """Split [H, W, 3 + C + 1] (rgb, features, z) into a Render; depth = sum(w z) / alpha, 0 where alpha = 0."""
    depth = out[..., -1] / alpha.clamp_min(1e-10)
    feats = out[..., 3:-1] if n_feat is not None else None
    return Render(rgb=out[..., :3], depth=depth, alpha=alpha, features=feats)


class TorchRenderer:
    """Pure-PyTorch backend of the `Renderer` protocol (any device; gsplat's rules, see the module docstring).

    Args:
        eps2d: screen-space blur added to the 2D covariance diagonal (px^2), gsplat's default 0.3.
        max_pairs: bound on (Gaussian, pixel) pairs held in memory at once (speed/memory trade-off only).
    """

    name = "torch"

    def __init__(self, eps2d: float = EPS2D, max_pairs: int = 1 << 23) -> None:
        self.eps2d = eps2d
        self.max_pairs = max_pairs

    def render(
        self,
        scene: GaussianScene,
        camera: Camera,
        width: int | None = None,
        height: int | None = None,
        features: Tensor | None = None,  # [N, C]
        eps2d: float | None = None,  # screen-space blur (px^2) for this call; None: the renderer's own
    ) -> Render:
        """Render `scene` from `camera` (resized to width x height if given).

        Returns Render(rgb [H, W, 3] premultiplied, depth [H, W] expected z (0 where alpha = 0),
        alpha [H, W], features [H, W, C] or None), on the scene's device, float32. Differentiable
        when the inputs require grad; otherwise runs under no_grad.
        """
        _check_features(scene, features)
        if (width is not None and width != camera.width) or (height is not None and height != camera.height):
            camera = camera.resized(width or camera.width, height or camera.height)
        camera = camera.to(scene.device)
        inputs = [scene.means, scene.quats, scene.log_scales, scene.opacity_logits, scene.colors]
        if features is not None:
            inputs.append(features)
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
        with torch.set_grad_enabled(needs_grad):
            means, quats, scales, opac, colors = _scene_inputs(scene)
            proj = project_gaussians(means, quats, scales, opac, camera, self.eps2d if eps2d is None else eps2d)
            parts = [colors[proj.ids]]
            if features is not None:
                parts.append(features[proj.ids].to(colors.dtype))
            attrs = torch.cat(parts + [proj.depths[:, None]], dim=1)
            out, alpha = rasterize(proj, attrs, camera.width, camera.height, self.max_pairs)
            return _finish(out, alpha, None if features is None else features.shape[1])
