"""The photo's ground colour by elevation: the anchor that keeps generated ground from drifting in colour.

A flight invents ground strip by strip at the edge of what the world holds; each strip starts from
its neighbours (the hole fill) and the refiner adds a little, and the world keeps it. A small bias
per strip adds up: over real photos fields turned saturated blue or yellow-green within 60 frames
(docs/refiner.md). The anchor is the first frame's mean ground colour in bands of elevation relative
to its horizon (distance, for open ground: far ground is hazier than near ground); the learned
refiner's composition pulls the low frequencies of what it generates a fraction of the way towards
the anchor at the pixel's elevation (refine/learned.py, `LearnedRefinerConfig.anchor`), which bounds
the drift instead of letting it accumulate.

Table layout: [ANCHOR_BANDS, 3] float32 RGB in [0, 1]; band i is centred at
(ANCHOR_TOP_DEG - i * ANCHOR_STEP_DEG) degrees of elevation relative to the horizon; colours between
band centres are interpolated linearly, beyond the ends held.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldgen.core.fill import fill_between
from worldgen.core.frame import Frame, GroundTexture

ANCHOR_TOP_DEG = 20.0
ANCHOR_STEP_DEG = 4.0
ANCHOR_BANDS = 16  # +20 .. -40 degrees around the horizon


def ground_anchor(frame: Frame, horizon_elev_deg: float) -> Tensor | None:
    """[ANCHOR_BANDS, 3] mean colour of `frame`'s ground (non-sky pixels with a finite depth) per band of
    elevation relative to `horizon_elev_deg` (the layout above; bands without ground take the nearest band
    that has some, interpolated between two), on the frame's device; None when the frame has no ground.
    Reads the device (once per flight)."""
    ok = (~frame.sky & torch.isfinite(frame.depth)).reshape(-1)
    if not bool(ok.any()):
        return None
    rel = frame.camera.ray_elevation_deg().reshape(-1) - float(horizon_elev_deg)
    pos = ((ANCHOR_TOP_DEG - rel) / ANCHOR_STEP_DEG).clamp(0, ANCHOR_BANDS - 1)
    return band_means(frame.rgb.reshape(-1, 3)[ok].float(), pos.round().long()[ok], ANCHOR_BANDS).contiguous()


def band_means(rgb: Tensor, band: Tensor, bands: int) -> Tensor:
    """[bands, 3] mean of the colours `rgb` [N, 3] in each band (`band` [N], long, 0..bands-1); a band without
    any: linear between the nearest bands that have some, held beyond them (`fill_between`). Needs N >= 1."""
    sums = torch.zeros(bands, 3, device=rgb.device).index_add_(0, band, rgb)
    counts = torch.zeros(bands, device=rgb.device).index_add_(0, band, torch.ones_like(band, dtype=torch.float32))
    return fill_between(sums / counts.clamp_min(1)[:, None], counts > 0)


def anchor_colour(table: Tensor, rel_elev_deg: Tensor) -> Tensor:
    """The anchor colour [..., 3] at elevations relative to the horizon `rel_elev_deg` [...] (degrees) from
    an anchor `table` [ANCHOR_BANDS, 3] (linear between band centres, held beyond the ends). Never reads
    the device (it can be captured in a CUDA graph)."""
    pos = ((ANCHOR_TOP_DEG - rel_elev_deg) / ANCHOR_STEP_DEG).clamp(0, ANCHOR_BANDS - 1)
    lo = pos.floor().long().clamp(max=ANCHOR_BANDS - 2)
    t = (pos - lo.float())[..., None]
    return table[lo] * (1 - t) + table[lo + 1] * t


# ---------------------------------------------------------------------------------------------- texture
# The detail twin of the colour anchor: the photo's own high frequencies, by elevation, for ground the
# flight generates. A refiner that cannot invent detail leaves generated ground smooth, and the world keeps
# the smear (issues 9 and 11: detail at frame 200 fell to 5-25 % of the photo's over real photos).
TEXTURE_STEP_DEG = 2.0
TEXTURE_BINS = 32  # +20 .. -42 degrees around the horizon, as the colour bands
TEXTURE_SAMPLES = 64  # source patches per bin
TEXTURE_TILE = 16  # pixels per side of a copied patch


def detail_layer(rgb: Tensor) -> Tensor:
    """[..., H, W, C] -> the same minus its blur (a 5 x 5 box twice, edges replicated): the band of detail
    that smoothing, stretching and push-pull fills lose first."""
    F = torch.nn.functional
    x = rgb.movedim(-1, -3).reshape(-1, 1, *rgb.shape[-3:-1])
    for _ in range(2):
        x = F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), 5, 1)
    return rgb - x.reshape(*rgb.shape[:-3], rgb.shape[-1], *rgb.shape[-3:-1]).movedim(-3, -1)


def ground_texture(frame: Frame, horizon_elev_deg: float, seed: int = 0) -> GroundTexture | None:
    """`GroundTexture` of `frame`'s ground (non-sky pixels with a finite depth, at least one tile from the
    frame's border where the frame allows it), source patches drawn with `seed`; None when the frame has
    no ground. Reads the device (once per flight)."""
    H, W = frame.camera.height, frame.camera.width
    ground = ~frame.sky & torch.isfinite(frame.depth)
    if not bool(ground.any()):
        return None
    detail = torch.where(ground[..., None], detail_layer(frame.rgb.float()), torch.zeros_like(frame.rgb, dtype=torch.float32))
    rel = frame.camera.ray_elevation_deg() - float(horizon_elev_deg)
    band = ((ANCHOR_TOP_DEG - rel) / TEXTURE_STEP_DEG).round().long().clamp(0, TEXTURE_BINS - 1).reshape(-1)
    inner = torch.zeros_like(ground)
    m = TEXTURE_TILE // 2
    if H > 2 * m and W > 2 * m:
        inner[m:H - m, m:W - m] = True
    src = ground & inner if bool((ground & inner).any()) else ground
    ok, okg = src.reshape(-1), ground.reshape(-1)
    grey = detail.abs().mean(-1).reshape(-1)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    index = torch.zeros(TEXTURE_BINS, TEXTURE_SAMPLES, dtype=torch.long)
    energy = torch.zeros(TEXTURE_BINS)
    have = torch.zeros(TEXTURE_BINS, dtype=torch.bool)
    band_c, ok_c, okg_c, grey_c = band.cpu(), ok.cpu(), okg.cpu(), grey.cpu()
    for b in range(TEXTURE_BINS):
        pix = (ok_c & (band_c == b)).nonzero().squeeze(1)
        if pix.numel() == 0:
            continue
        have[b] = True
        index[b] = pix[torch.randint(pix.numel(), (TEXTURE_SAMPLES,), generator=gen)]
        energy[b] = grey_c[okg_c & (band_c == b)].mean()
    near = _nearest_true(have)
    return GroundTexture(detail.contiguous(), index[near].to(frame.rgb.device).contiguous(),
                         energy[near].to(frame.rgb.device).contiguous())


def _nearest_true(mask: Tensor) -> Tensor:
    """[N] bool (at least one True) -> [N] int64, for each position the nearest True one (the lower on ties)."""
    pos = torch.arange(mask.numel())
    src = pos[mask]
    return src[(pos[:, None] - src[None]).abs().argmin(1)]


def texture_transfer(tex: GroundTexture, rel_elev_deg: Tensor, choice: Tensor) -> tuple[Tensor, Tensor]:
    """The photo's detail laid over a view: (detail [H, W, 3], target energy [H, W]).

    The view is cut into TEXTURE_TILE-pixel tiles; each tile copies a patch of `tex.detail` centred on one of
    its bin's source pixels (the bin of the elevation at the tile's centre), mirrored at the source's borders;
    the pick is `choice` [H, W] in [-1, 1] read at the tile's centre (the refiner's noise channel, so a flight
    is reproducible). `rel_elev_deg` [H, W]: each pixel's elevation relative to the photo's horizon; the
    energy is the bin's at each pixel. Static shapes, never reads the device (CUDA-graph safe)."""
    H, W = rel_elev_deg.shape
    H0, W0 = tex.detail.shape[:2]
    dev = rel_elev_deg.device
    T = TEXTURE_TILE
    r = torch.arange(H, device=dev)
    c = torch.arange(W, device=dev)
    rc = ((r // T) * T + T // 2).clamp(max=H - 1)  # [H] row of each pixel's tile centre
    cc = ((c // T) * T + T // 2).clamp(max=W - 1)  # [W]
    e_c = rel_elev_deg[rc][:, cc]  # [H, W] elevation at the tile centre
    bins = ((ANCHOR_TOP_DEG - e_c) / TEXTURE_STEP_DEG).round().long().clamp(0, TEXTURE_BINS - 1)
    k = ((choice[rc][:, cc] + 1) * (TEXTURE_SAMPLES / 2)).long().clamp(0, TEXTURE_SAMPLES - 1)
    src = tex.index[bins, k]  # [H, W] flat source pixel of the tile's centre
    sr = src // W0 + (r - rc)[:, None]
    sc = src % W0 + (c - cc)[None, :]
    sr = (H0 - 1) - ((H0 - 1) - sr.abs()).abs()  # mirrored at the borders (one fold is enough: T < H0)
    sc = (W0 - 1) - ((W0 - 1) - sc.abs()).abs()
    detail = tex.detail[sr.clamp(0, H0 - 1), sc.clamp(0, W0 - 1)]
    pix_bins = ((ANCHOR_TOP_DEG - rel_elev_deg) / TEXTURE_STEP_DEG).round().long().clamp(0, TEXTURE_BINS - 1)
    return detail, tex.energy[pix_bins]
