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
from worldgen.core.frame import Frame

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
    band = pos.round().long()[ok]
    rgb = frame.rgb.reshape(-1, 3)[ok].float()
    sums = torch.zeros(ANCHOR_BANDS, 3, device=rgb.device).index_add_(0, band, rgb)
    counts = torch.zeros(ANCHOR_BANDS, device=rgb.device).index_add_(0, band, torch.ones_like(band, dtype=torch.float32))
    # bands without ground: linear between the nearest bands that have some, held beyond them
    return fill_between(sums / counts.clamp_min(1)[:, None], counts > 0).contiguous()


def anchor_colour(table: Tensor, rel_elev_deg: Tensor) -> Tensor:
    """The anchor colour [..., 3] at elevations relative to the horizon `rel_elev_deg` [...] (degrees) from
    an anchor `table` [ANCHOR_BANDS, 3] (linear between band centres, held beyond the ends). Never reads
    the device (it can be captured in a CUDA graph)."""
    pos = ((ANCHOR_TOP_DEG - rel_elev_deg) / ANCHOR_STEP_DEG).clamp(0, ANCHOR_BANDS - 1)
    lo = pos.floor().long().clamp(max=ANCHOR_BANDS - 2)
    t = (pos - lo.float())[..., None]
    return table[lo] * (1 - t) + table[lo + 1] * t
