"""Hole filling with image pyramids (push-pull), used by the classical refiner, depth and sky; and
`fill_between` for rows of a table (the sky's colour profile, the ground colour anchor); flood fills
(`grow_region`) and the colour sky heuristic (`detect_sky`) for sky masks.

Push-pull: average the known values down a pyramid (weighted by their confidence), then fill each
level's unknown pixels from the coarser level on the way up. Known pixels keep their values exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def push_pull(values: Tensor, weights: Tensor, min_size: int = 1) -> Tensor:
    """Fill unknown pixels of `values` [H, W, C] from known ones.

    Args:
        values: [H, W, C] float; arbitrary where weights == 0.
        weights: [H, W] float in [0, 1]; 0 = unknown, 1 = known. Pixels with weight 1 are returned
            unchanged; pixels in (0, 1) blend with the fill.
        min_size: stop the pyramid at this size.
    Returns:
        [H, W, C] filled values (pixels with no known value anywhere stay 0).
    """
    x = values.permute(2, 0, 1)[None]  # [1, C, H, W]
    w = weights.to(values.dtype)[None, None]
    x = torch.where(w > 0, x, torch.zeros_like(x))
    return _push_pull(x * w, w, min_size)[0].permute(1, 2, 0).contiguous()


def _push_pull(xw: Tensor, w: Tensor, min_size: int) -> Tensor:
    """Recursive core on premultiplied values xw [1, C, H, W] and weights w [1, 1, H, W]."""
    H, W = w.shape[-2:]
    if min(H, W) <= min_size:
        return xw / w.clamp_min(1e-8)
    # Push: 2x2 sums (padding odd sizes by replication keeps weights honest).
    ph, pw = H % 2, W % 2
    if ph or pw:
        xw_p = F.pad(xw, (0, pw, 0, ph), mode="replicate")
        w_p = F.pad(w, (0, pw, 0, ph), mode="replicate")
    else:
        xw_p, w_p = xw, w
    xw_c = F.avg_pool2d(xw_p, 2) * 4
    w_c = F.avg_pool2d(w_p, 2) * 4
    # Coarse confidence saturates at 1 as soon as the children hold one fully known pixel's worth.
    conf_c = w_c.clamp(max=1.0)
    val_c = xw_c / w_c.clamp_min(1e-8)
    coarse = _push_pull(val_c * conf_c, conf_c, min_size)  # [1, C, H/2, W/2] fully filled
    up = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)[..., :H, :W]
    val = xw / w.clamp_min(1e-8)
    wc = w.clamp(0.0, 1.0)
    return wc * val + (1 - wc) * up


def fill_far(disparity: Tensor, valid: Tensor) -> Tensor:
    """Fill invalid pixels of a disparity map [H, W] with the *farthest* nearby value.

    Disocclusion holes open behind foreground objects, so they should continue the background
    (smaller disparity), not blend foreground into background. The pyramid takes the minimum
    valid disparity when going down, then fills each level's holes from the coarser level.
    Returns [H, W]; valid pixels unchanged.
    """
    big = torch.finfo(disparity.dtype).max
    d = torch.where(valid, disparity, torch.full_like(disparity, big))[None, None]
    levels = [d]
    while min(levels[-1].shape[-2:]) > 1:
        cur = levels[-1]
        ph, pw = cur.shape[-2] % 2, cur.shape[-1] % 2
        if ph or pw:
            cur = F.pad(cur, (0, pw, 0, ph), value=big)
        levels.append(-F.max_pool2d(-cur, 2))
    filled = levels[-1]
    filled = torch.where(filled >= big, torch.zeros_like(filled), filled)
    for lev in reversed(levels[:-1]):
        up = F.interpolate(filled, size=lev.shape[-2:], mode="nearest")
        filled = torch.where(lev >= big, up, lev)
    # Smooth only the filled region a little so blocky pyramid steps don't become terraces.
    out = filled[0, 0]
    sm = F.avg_pool2d(F.pad(filled, (2, 2, 2, 2), mode="replicate"), 5, stride=1)[0, 0]
    return torch.where(valid, disparity, torch.minimum(out, sm))


def box_mean(x: Tensor, radius: int) -> Tensor:
    """Mean of `x` [H, W] over the (2 radius + 1)^2 window around each pixel, the image extended by
    replicating its border (= `avg_pool2d` of the replicate-padded image, kernel 2 radius + 1,
    stride 1), in O(1) per pixel from a summed-area table (float64, so wide windows stay exact).
    Returns [H, W] in x's dtype."""
    k = 2 * radius + 1
    p = F.pad(x[None, None].double(), (radius, radius, radius, radius), mode="replicate")[0, 0]
    s = F.pad(p.cumsum(0).cumsum(1), (1, 0, 1, 0))  # [H + 2r + 1, W + 2r + 1], s[i, j] = sum p[:i, :j]
    win = s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]
    return (win / (k * k)).to(x.dtype)


def fill_between(values: Tensor, known: Tensor) -> Tensor:
    """values [N, C] with every row replaced by the linear interpolation between the nearest rows where
    known [N] (bool) is True, before and after it (held constant beyond the first and last known row;
    known rows come back exactly). Needs at least one known row; reads their indices from the device."""
    idx = torch.nonzero(known).flatten()
    r = torch.arange(known.shape[0], device=values.device)
    pos = torch.searchsorted(idx, r).clamp(1, max(len(idx) - 1, 1))
    lo, hi = idx[(pos - 1).clamp(min=0)], idx[pos.clamp(max=len(idx) - 1)]
    span = (hi - lo).clamp_min(1).float()
    t = ((r - lo).float() / span).clamp(0, 1)[:, None]
    return values[lo] * (1 - t) + values[hi] * t


def grow_region(seed: Tensor, allowed: Tensor, check_every: int = 8) -> Tensor:
    """The pixels of `allowed` 8-connected to a pixel of `seed & allowed` (a flood fill).

    seed, allowed: bool [..., H, W] (any leading batch shape; each image grows on its own).
    Returns bool [..., H, W]. Grows one pixel a pass (3x3 max-pool) until nothing changes, testing for
    that every `check_every` passes (a test waits for the device); at most H * W passes in all.
    Used for sky masks that must hang together: `detect_sky` (candidates reached from the top row) and
    the depth network's hysteresis (`refine.depthnet.LearnedDepthModel`).
    """
    H, W = allowed.shape[-2:]
    shape = allowed.shape
    ok = allowed.reshape(-1, 1, H, W)
    region = (seed.expand(shape).reshape(-1, 1, H, W) & ok).float()
    okf = ok.float()
    for _round in range(0, H * W, check_every):
        before = region
        for _pass in range(check_every):
            region = F.max_pool2d(region, 3, stride=1, padding=1) * okf
        if torch.equal(region, before):
            break
    return (region > 0).reshape(shape)


def detect_sky(rgb: Tensor, max_row_frac: float = 0.75) -> Tensor:
    """Heuristic sky mask [H, W] bool of an RGB image [H, W, 3] in [0, 1] (no weights).

    Sky candidates are bright, smooth pixels that are blue-ish, or near-white / grey (clouds,
    overcast), or warm (sunset glow); the mask keeps only candidates connected to the top border,
    above `max_row_frac` of the height. The landscape prior's sky (worldgen/pipeline/depth.py), and
    the depth network's `sky_clear` variant (refine/depthnet.py).
    """
    H, W, _ = rgb.shape
    r, g, b = rgb.unbind(-1)
    lum = 0.299 * r + 0.587 * g + 0.114 * b
    mx, mn = rgb.max(-1).values, rgb.min(-1).values
    sat = (mx - mn) / mx.clamp_min(1e-6)
    blue = (b >= r - 0.02) & (b >= g - 0.08) & (lum > 0.25)
    grey = (sat < 0.25) & (lum > 0.45)
    warm = (lum > 0.55) & (r > b) & (sat < 0.6)  # sunset glow
    # Local smoothness: gradient magnitude of luminance (sky is smooth; foliage and rock are not).
    gx = F.pad((lum[:, 1:] - lum[:, :-1]).abs(), (0, 1))
    gy = F.pad((lum[1:] - lum[:-1]).abs(), (0, 0, 0, 1))
    grad = F.avg_pool2d((gx + gy)[None, None], 5, stride=1, padding=2)[0, 0]
    cand = (blue | grey | warm) & (grad < 0.04)
    rows = torch.arange(H, device=rgb.device)[:, None].expand(H, W)
    cand &= rows < max_row_frac * H
    # Flood fill from the top row through the candidates.
    sky = grow_region(cand & (rows == 0), cand)
    return sky
