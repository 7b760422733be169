"""Training of the built-in depth network (refine/depthnet.py), on the refiner's machinery.

    python -m refine.train depth --preset train-depth-h200 --out runs/depth      (also under torchrun)

Data: single frames of the same GPU-side procedural flight cache (refine/train/data.py, train seeds
only), each step with a random crop, aspect and flip, and the degradations real photos have
(exposure, contrast, white balance, saturation, gamma, haze, blur, sensor noise, vignetting, JPEG).
Optionally, real landscape photos (a folder of images; never evaluated on) add a self-supervised
term: the network's prediction for an augmented view (colour changes, flip) must agree, up to scale,
with its own prediction for the clean view (a stop-gradient teacher); with `layout_from`, also
with a frozen earlier network's coarse layout (cell means of log-depth, up to scale).

Losses (depth only up to scale: see refine/depthnet.py): scale-invariant L1 on log-depth (the
per-image mean log ratio removed), a multi-scale gradient-matching term on the same residual (sharp
depth edges, as MiDaS), and binary cross-entropy on the sky mask.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from refine.depthnet import DEPTH_FORMAT, DEPTH_NET, load_depth_weights, predict, save_depth_weights
from refine.net import DepthNet, RefinerNetConfig, count_parameters
from refine.train.common import (
    Dist,
    GpuMonitor,
    TrainingFolder,
    check_steps_left,
    cut_log,
    check_photo_folder,
    learning_rate,
    load_photos,
    load_training_checkpoint,
    other_network,
    resume_source,
    save_png,
    step_seed,
    stopped,
    time_is_up,
    write_curves,
)
from refine.train.config import DataConfig, OptimConfig, at_least, check_net, shares
from refine.train.data import FlightCache
from worldgen.core.config import bad, check, check_seed
from worldgen.core.device import to_device
from worldgen.core.io import append_text

CKPT_FORMAT = "worldgen-train-depth/1"
SIZES = ((256, 256), (256, 192), (192, 256), (224, 224), (288, 160))
"""Output sizes (W, H) of the training crops; one per step (all scaled by DepthTrainConfig.size / 256)."""


@dataclass(frozen=True)
class DepthTrainConfig:
    """Train the built-in depth network on procedural frames (+ optional real-photo consistency)."""

    out: str = "runs/train-depth"
    steps: int = 6000
    batch: int = 24
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    resume: bool = True
    max_minutes: float = 0.0
    deadline: float = 0.0
    """Stop (with a checkpoint) before the step that would end past this Unix time (judged by the longest step of
    this run after its first); 0 = none (for runs that must end inside a time-limited call)."""
    stop_after: int = 0
    """Stop (with a checkpoint) after this many steps in this process; 0 = run to `steps`."""
    checkpoint_every: int = 250
    log_every: int = 20
    sample_every: int = 250
    size: int = 256
    """Scale of the training crops (SIZES are for 256)."""
    photos: str | None = None
    """Folder of real photos for the self-supervised consistency term (None: off)."""
    photo_batch: int = 8
    photo_weight: float = 0.2
    photo_start: int = 500
    """Step from which the consistency term is on (the teacher must know something first)."""
    teacher_ema: float = 0.999
    """The consistency term's teacher is an exponential moving average of the network's weights with
    this decay per step (mean teacher), started from the network when the term comes on and at
    every run start from a compact checkpoint; 0: the network itself (how the shipped 3,111 steps
    were trained). A teacher that is the student chases the student's own mistakes on real photos,
    where nothing else anchors it."""
    layout_from: str | None = None
    """Depth weights (a weights file or a depth training checkpoint, e.g. refine/weights/depth.pt) whose
    predictions on the real photos anchor the network's coarse layout there (`layout_weight`); None: off.
    Why: trained on forest-floor walks, the network learnt upright trunks and canopy gaps, and also drew
    false near/far bands and whole inversions on real photos without trees (crystal_falls: the ground in
    front called far), which the consistency term, anchored to nothing but itself, cannot undo
    (docs/depth.md). The anchor knows only what a drone-trained network knows, and only coarsely."""
    layout_weight: float = 0.5
    layout_sky: float = 0.0
    """Weight of the sky anchor on the real photos: the network's sky logits there must match the `layout_from`
    network's sky (binary cross-entropy with its sigmoid), so training on procedural skies cannot take the real
    photos' sky away. Why: the clouds network continued 9,000 -> 14,000 (2026-12-04, fifth session) got better
    procedural depth and sky, but on real photos called the bright overcast sky between trees solid (Creek's sky
    share 0.24 -> 0.00, shady_patch's 0.16 -> 0.03), and those flights lost their colour (shady_patch dE 6.6 -> 19):
    the consistency term's sky teacher is the network itself, anchored to nothing on the photos. 0: off."""
    layout_sky_mode: Literal["bce", "logit"] = "bce"
    """How the sky anchor compares: "bce", cross-entropy with the anchor's sigmoid (its floor is the anchor's own
    entropy, ~0.21 on the photos); "logit", L1 between the two networks' sky logits, each clamped to
    +-`SKY_LOGIT_CLAMP` (floor 0). Why: with "bce" (2026-12-04, sixth session) the photos' sky sat at that floor
    (0.218 against 0.214) and yet step 15,000 lost a third of the real photos' grown sky (scripts/depth_sheet.py:
    shady_patch 0.163 -> 0.000): the grown sky lies in logits between the hysteresis threshold (-3) and 0, where the
    cross-entropy pulls weakly (its gradient per pixel is sigmoid(s) - sigmoid(a): 0.10 for a logit -2 turned -4);
    the logits' L1 pulls with 1 wherever the two networks differ."""
    layout_cell: int = 16
    """The layout anchor compares the two networks' log-depths averaged over cells of this many pixels (of
    the photo crop, over the anchor's ground pixels; the global scale removed as in si_log): a tree
    standing up changes a cell little, a ground called far changes many."""
    ground_order_weight: float = 0.0
    """Weight of the ground-order term on the real photos (`ground_order_term`): in a landscape photo the ground
    comes nearer going down the frame's lower five eighths, and a network that calls it farther has turned the
    photo upside down (every walks network did so on crystal_falls, whose bright water and gravel the walks'
    floors never showed; the layout anchor at 0.5 did not stop it, at 2.0 it leaned the trees back). A hinge only
    on that order, so it costs a correct prediction and standing trees nothing. 0: off."""
    shading: float = 0.0
    """Share of the procedural training frames lit by a smooth random gain field (`shading`); 0 = off (how every
    run before 2026-12-03 was trained: their random streams stay as they were). Why: on forest-floor walks a bright
    patch between dark trunks is far sky, and every walks network then called crystal_falls' bright pool below its dark
    rock wall far; lighting the photo unevenly moves that (a probe of 2026-12-03, docs/depth.md: its ground_order
    0.77 falls to 0.24-0.35 with the lower 40 % darkened or the upper 60 % brightened, and is 0 with the brightness
    inverted). Light that varies across the frame makes brightness alone no cue for distance."""
    shading_stops: float = 1.0
    """Largest standard deviation of the gain field, in stops (each frame draws its own from 0 to this)."""
    clouds: float = 0.0
    """Share of the procedural training frames whose sky gets procedural clouds (`clouds`: scattered to overcast,
    white to dark grey, down to the horizon); 0 = off (how every run before 2026-12-03, ninth session, was trained:
    their random streams stay as they were). Why: the procedural skies are clear or hazy, and the network calls the
    cloudy and overcast skies of real photos solid (logits -4 to 0: NissiBeach2, Brudslojan, gray_pier), so flights
    lift them as a shell and fly into it (docs/depth.md, "The sky of real photos")."""
    standing_trees: float = 0.0
    """Share of the training frames into which upright trees are pasted (`standing_trees`: billboards at
    one depth standing on the ground, which the procedural flights never show from the side); 0 = off
    (how the shipped 3,111 steps were trained)."""
    skip_loss_above: float = 5.0
    """A step whose loss is not finite or above this is skipped on every process (no update; the log
    counts `skipped`). The loss is 0.1-0.9 in a healthy run; continuing the shipped run past step 3,300
    on one H200, single batches of the photo term reached 1e3-1e19 and, with only gradient clipping
    between them and the weights, the network diverged within 1,500 steps (docs/depth.md)."""
    gradient_weight: float = 0.5
    sky_weight: float = 0.3
    net: RefinerNetConfig = DEPTH_NET
    data: DataConfig = field(default_factory=lambda: DataConfig(flights=48, frames=24, flights_per_world=2,
                                                                refresh_every=25, refresh_flights=2))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-4, warmup=200, betas=(0.9, 0.99)))

    def validate(self) -> None:
        """ValueError (one line; `worldgen.core.config.check` names the option) for settings the run could not
        keep: counts and sizes below 1, shares outside [0, 1], negative or non-finite weights and times, and the
        real-photo terms without --photos."""
        at_least(self, "steps batch checkpoint_every log_every photo_batch layout_cell", 1)
        at_least(self, "size", 16)
        at_least(self, "sample_every stop_after max_minutes deadline photo_start photo_weight layout_weight layout_sky "
                       "ground_order_weight shading_stops gradient_weight sky_weight", 0)
        shares(self, "shading standing_trees clouds")
        check_seed(self, "seed")
        if not (isinstance(self.teacher_ema, (int, float)) and 0 <= self.teacher_ema < 1):
            raise bad("teacher_ema", "must be in [0, 1)", self.teacher_ema)
        if math.isnan(self.skip_loss_above):
            raise bad("skip_loss_above", "must be a number", self.skip_loss_above)
        check_net(self)
        if self.layout_from and not self.photos:
            raise ValueError("--layout-from anchors the layout on the real photos: give --photos DIR too")
        if self.layout_sky_mode not in ("bce", "logit"):
            raise bad("layout_sky_mode", "must be bce or logit", self.layout_sky_mode)
        if self.layout_sky > 0 and not self.layout_from:
            raise ValueError("--layout-sky anchors the real photos' sky to another network's: "
                             "give --layout-from FILE too")
        if self.ground_order_weight > 0 and not self.photos:
            raise ValueError("--ground-order-weight holds the real photos' ground below: give --photos DIR too")


# ----------------------------------------------------------------------------- augmentation
def random_crops(rgb: Tensor, depth: Tensor, out_wh: tuple[int, int], gen: torch.Generator,
                 min_scale: float = 0.45) -> tuple[Tensor, Tensor]:
    """Random crops (area share min_scale..1, any aspect) with random left-right flips, resized to out_wh.

    rgb [B, 3, H, W] (bilinear), depth [B, 1, H, W] (nearest, so sky stays +inf). Returns both at (Wo, Ho)."""
    B = rgb.shape[0]
    dev = rgb.device
    Wo, Ho = out_wh
    s = torch.sqrt(min_scale + (1 - min_scale) * torch.rand(B, generator=gen))  # side share
    aspect = (Wo / Ho) / (rgb.shape[-1] / rgb.shape[-2])
    sx = (s * math.sqrt(aspect)).clamp(max=1.0)
    sy = (s / math.sqrt(aspect)).clamp(max=1.0)
    cx = (1 - sx) * (2 * torch.rand(B, generator=gen) - 1)
    cy = (1 - sy) * (2 * torch.rand(B, generator=gen) - 1)
    flip = torch.where(torch.rand(B, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = sy, cy
    grid = F.affine_grid(to_device(theta, dev), [B, 3, Ho, Wo], align_corners=False)
    r = F.grid_sample(rgb, grid, mode="bilinear", padding_mode="border", align_corners=False)
    d = F.grid_sample(depth, grid, mode="nearest", padding_mode="border", align_corners=False)
    return r, d


def photometric(rgb: Tensor, gen: torch.Generator, depth: Tensor | None = None) -> Tensor:
    """Random exposure, contrast, white balance, saturation, gamma, haze (where depth is given), blur,
    vignetting and sensor noise, per image of rgb [B, 3, H, W] in [0, 1]."""
    B, _, H, W = rgb.shape
    dev = rgb.device
    u = lambda lo, hi, *shape: to_device(lo + (hi - lo) * torch.rand(B, *shape, generator=gen), dev)  # noqa: E731
    p = lambda prob: to_device(torch.rand(B, generator=gen) < prob, dev)[:, None, None, None]  # noqa: E731
    x = rgb * u(0.65, 1.35, 1, 1, 1) * u(0.9, 1.1, 3, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * u(0.7, 1.3, 1, 1, 1) + mean
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * u(0.5, 1.4, 1, 1, 1) + grey
    x = x.clamp(0, 1) ** u(0.75, 1.3, 1, 1, 1)
    if depth is not None:  # extra aerial haze towards a light grey-blue
        vis = torch.exp(u(math.log(300.0), math.log(20000.0), 1, 1, 1))
        d = torch.where(torch.isfinite(depth), depth, torch.full_like(depth, 1e9))
        haze = (1 - torch.exp(-d / vis)) * u(0.0, 0.8, 1, 1, 1)
        colour = torch.stack([u(0.6, 0.85), u(0.7, 0.9), u(0.8, 1.0)], 1)[:, :, None, None]
        x = torch.where(p(0.35), x * (1 - haze) + colour * haze, x)
    sigma = u(0.3, 1.4)
    k = torch.arange(-3, 4, device=dev, dtype=x.dtype)
    g = torch.exp(-0.5 * (k[None] / sigma[:, None]) ** 2)
    g = g / g.sum(1, keepdim=True)  # [B, 7]
    xb = x.reshape(1, B * 3, H, W)
    gx = g.repeat_interleave(3, 0)[:, None, None, :]
    gy = g.repeat_interleave(3, 0)[:, None, :, None]
    xb = F.conv2d(F.pad(xb, (3, 3, 0, 0), mode="replicate"), gx, groups=B * 3)
    xb = F.conv2d(F.pad(xb, (0, 0, 3, 3), mode="replicate"), gy, groups=B * 3).reshape(B, 3, H, W)
    x = torch.where(p(0.3), xb, x)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H, device=dev), torch.linspace(-1, 1, W, device=dev), indexing="ij")
    vig = 1 - u(0.0, 0.35, 1, 1, 1) * (xx ** 2 + yy ** 2) / 2
    x = torch.where(p(0.3), x * vig, x)
    # (drawn where x lives, from a generator seeded by `gen`: a [24, 3, 256, 256] draw on the CPU cost ~18 ms a step)
    noise_gen = torch.Generator(device=dev).manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
    noise = torch.randn(x.shape, generator=noise_gen, device=dev, dtype=x.dtype) * u(0.0, 0.03, 1, 1, 1)
    x = torch.where(p(0.5), x + noise, x)
    return x.clamp(0, 1)


def shading(rgb: Tensor, gen: torch.Generator, prob: float = 0.5, stops: float = 1.0,
            cells: tuple[int, int] = (2, 5)) -> Tensor:
    """Uneven light: each image of rgb [B, 3, H, W] in [0, 1] is, with probability `prob`, multiplied by a smooth
    random gain 2 ** (s * n(y, x)), where n is a normal random field on a c x c grid of nodes (c drawn once a batch
    from `cells`, inclusive) upsampled bicubically to H x W and scaled to zero mean and unit standard deviation, and
    s ~ U(0, stops) per image; then clipped to [0, 1]. Its draws come from `gen` (CPU), the arithmetic runs where rgb
    is. Ramps, bright and dark blotches at the scale of whole objects, never texture (a 2 x 2 grid is a ramp)."""
    B, _, H, W = rgb.shape
    c = int(torch.randint(cells[0], cells[1] + 1, (1,), generator=gen))
    nodes = torch.randn(B, 1, c, c, generator=gen)
    s = torch.rand(B, 1, 1, 1, generator=gen) * stops
    on = (torch.rand(B, generator=gen) < prob)[:, None, None, None]
    field = F.interpolate(nodes.to(rgb.device), size=(H, W), mode="bicubic", align_corners=True)
    field = (field - field.mean(dim=(2, 3), keepdim=True)) / field.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    gain = torch.exp2(s.to(rgb.device) * field)
    return torch.where(on.to(rgb.device), (rgb * gain).clamp(0, 1), rgb)


def clouds(rgb: Tensor, depth: Tensor, gen: torch.Generator, prob: float = 0.5) -> Tensor:
    """Procedural clouds in the sky of rgb [B, 3, H, W] in [0, 1], where depth [B, 1, H, W] is +inf, each image with
    probability `prob`; everything else unchanged (the sky's depth and mask stay what they are: sky).

    The cloud field is value noise of four octaves (random normal grids of 3-6 x 2-4 nodes doubling each octave,
    upsampled bicubically; wider than high, as clouds seen from below), normalised per image; a coverage c ~ U(0.1,
    1) turns it into an opacity (a logistic edge at the field's (1 - c) normal quantile, softness drawn per image), so
    draws run from scattered cumulus to an overcast ceiling. The clouds are white to dark grey (a base brightness
    U(0.45, 1) and a slight warm or cool tint), darker where the field is deepest (the bellies of thick clouds),
    over the frame's own sky colour. Draws come from `gen` (CPU); the arithmetic runs where rgb is."""
    B, _, H, W = rgb.shape
    dev = rgb.device
    on = (torch.rand(B, generator=gen) < prob)
    field = torch.zeros(B, 1, H, W, device=dev)
    cy, cx = int(torch.randint(2, 5, (1,), generator=gen)), int(torch.randint(3, 7, (1,), generator=gen))
    for octave in range(4):
        nodes = to_device(torch.randn(B, 1, cy << octave, cx << octave, generator=gen), dev)
        field = field + 0.5 ** octave * F.interpolate(nodes, size=(H, W), mode="bicubic", align_corners=True)
    field = (field - field.mean(dim=(2, 3), keepdim=True)) / field.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
    u = lambda lo, hi: to_device(lo + (hi - lo) * torch.rand(B, 1, 1, 1, generator=gen), dev)  # noqa: E731
    cover = u(0.1, 1.0)
    edge = math.sqrt(2.0) * torch.erfinv((1 - 2 * cover).clamp(-0.999, 0.999))  # the field's (1 - c) quantile
    alpha = torch.sigmoid((field - edge) * u(1.5, 8.0)) * u(0.7, 1.0)
    depth_in = (field - edge).clamp_min(0) / (field.amax(dim=(2, 3), keepdim=True) - edge).clamp_min(1e-3)
    tint = torch.cat([u(0.95, 1.05), u(0.97, 1.03), u(0.95, 1.05)], 1)
    cloud = (u(0.45, 1.0) * (1 - u(0.0, 0.5) * depth_in) * tint).clamp(0, 1)
    sky = ~torch.isfinite(depth) & to_device(on, dev)[:, None, None, None]
    return torch.where(sky, rgb * (1 - alpha) + cloud * alpha, rgb)


# The quantisation tables of the JPEG standard (ITU-T T.81, Annex K), luminance and chrominance, row-major 8 x 8.
_JPEG_LUMA = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
              14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
              49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
_JPEG_CHROMA = (17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
                47, 66, 99, 99, 99, 99, 99, 99) + (99,) * 32


def _dct8(device: torch.device, dtype: torch.dtype) -> Tensor:
    """[8, 8] orthonormal DCT-II matrix D (coefficients = D @ block @ D.T)."""
    k = torch.arange(8, dtype=torch.float64)
    d = torch.cos(math.pi * (2 * k[None] + 1) * k[:, None] / 16) * math.sqrt(2 / 8)
    d[0] /= math.sqrt(2)
    return to_device(d, device, dtype)


def _blocks_quantised(x: Tensor, tables: Tensor, d: Tensor) -> Tensor:
    """x [B, C, H, W] (H, W multiples of 8, values -128..127) through 8x8 DCT, rounding to multiples of
    tables [B, 1, 8, 8] and back."""
    B, C, H, W = x.shape
    b = x.reshape(B, C, H // 8, 8, W // 8, 8).permute(0, 1, 2, 4, 3, 5)  # [B, C, h, w, 8, 8]
    t = tables[:, :, None, None]  # [B, 1, 1, 1, 8, 8]
    coef = torch.round(d @ b @ d.T / t) * t
    return (d.T @ coef @ d).permute(0, 1, 2, 4, 3, 5).reshape(B, C, H, W)


def jpeg(rgb: Tensor, gen: torch.Generator, prob: float = 0.3) -> Tensor:
    """A JPEG round trip (quality 30..90, 4:2:0 chroma) of a random share `prob` of the images in rgb [B, 3, H, W]
    in [0, 1], simulated where rgb lives: YCbCr, 2x2 chroma averaging, 8x8 DCT quantised with the standard's
    tables scaled to the quality as libjpeg scales them, back to RGB (tests/test_depth.py holds it to a real
    encoder). The training step's only per-image CPU work was this round trip through torchvision's encoder
    (~15 ms a step of 24 images at 256x256 on the CPU, while the GPU waited)."""
    B, _, H, W = rgb.shape
    pick = torch.rand(B, generator=gen) < prob
    quality = torch.randint(30, 91, (B,), generator=gen).double()
    if not bool(pick.any()):
        return rgb
    dev, dt = rgb.device, torch.float32
    idx = to_device(torch.nonzero(pick).squeeze(1), dev)  # (made on the host, uploaded without a wait)
    x = rgb.index_select(0, idx).to(dt) * 255
    q = quality[pick]
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q)  # libjpeg's quality -> percent scaling of the tables
    base = torch.tensor([_JPEG_LUMA, _JPEG_CHROMA], dtype=torch.float64)  # [2, 64]
    tables = to_device(((base[None] * scale[:, None, None] + 50) // 100).clamp(1, 255).reshape(-1, 2, 8, 8), dev, dt)
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    Hp, Wp = -(-H // 16) * 16, -(-W // 16) * 16
    pad = lambda t: F.pad(t, (0, Wp - W, 0, Hp - H), mode="replicate")  # noqa: E731
    d = _dct8(dev, dt)
    y = _blocks_quantised(pad(y) - 128, tables[:, 0:1], d) + 128
    c = F.avg_pool2d(pad(torch.cat([cb, cr], 1)), 2)  # [n, 2, Hp/2, Wp/2], multiples of 8
    c = _blocks_quantised(c, tables[:, 1:2], d)
    c = F.interpolate(c, scale_factor=2, mode="bilinear", align_corners=False)
    y, cb, cr = y[..., :H, :W], c[:, 0:1, :H, :W], c[:, 1:2, :H, :W]
    back = torch.cat([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
    out = rgb.clone()
    out.index_copy_(0, idx, (back.round().clamp(0, 255) / 255).to(rgb.dtype))
    return out


def standing_trees(rgb: Tensor, depth: Tensor, gen: torch.Generator, prob: float = 0.5,
                   trees: tuple[int, int] = (3, 24), near_share: float = 0.1,
                   fov_x_deg: float = 64.0) -> tuple[Tensor, Tensor]:
    """Paste upright trees into a random share `prob` of the frames: rgb [B, 3, H, W] in [0, 1],
    depth [B, 1, H, W] (z-depth in metres, +inf sky). Returns both, changed where a tree stands.

    Why: the procedural flights look down from 45-900 m and never at a trunk from the side, so the
    depth network learned no upright objects: on photos taken among trees it lifts each trunk as a
    ramp leaning away (misty_pines: z 32 at the top of a trunk, 11 at its foot; docs/depth.md), and
    flights over those photos climb forever. A tree here is a billboard at one z-depth: a trunk
    (0.3-1.2 m wide, 6-30 m tall) standing on a ground pixel of the frame, the depth there, with a
    conifer (triangle) or broadleaf (ellipse) crown, sized by a nominal focal length
    (`fov_x_deg`), textured with bark stripes and leaf noise, and drawn only where it is nearer than
    what it covers (so the depth map stays one opaque world: nearer trees hide farther ones, sky and
    far ground are hidden by trees). Its depth is constant up the trunk: that is what stands a tree up."""
    B, _, H, W = rgb.shape
    dev = rgb.device
    fx = 0.5 * W / math.tan(math.radians(fov_x_deg) / 2)
    rgb, depth = rgb.clone(), depth.clone()
    yy = torch.arange(H, device=dev, dtype=torch.float32)[None, :, None]  # [1, H, 1]
    xx = torch.arange(W, device=dev, dtype=torch.float32)[None, None, :]  # [1, 1, W]
    for b in range(B):
        if float(torch.rand((), generator=gen)) >= prob:
            continue
        d = depth[b, 0]
        ground = (torch.isfinite(d) & (d > 0)).flatten()
        if not bool(ground.any()):
            continue
        K = int(torch.randint(trees[0], trees[1] + 1, (1,), generator=gen))
        # bases: random ground pixels (on the CPU generator: the draw does not depend on the device)
        w_base = ground.float().cpu()
        idx = torch.multinomial(w_base, K, replacement=True, generator=gen)
        vb, ub = (idx // W).float(), (idx % W).float()
        z = d.flatten()[to_device(idx, dev)].float().cpu()
        r = lambda lo, hi: lo + (hi - lo) * torch.rand(K, generator=gen)  # noqa: E731
        # a share of the trees stand a little in front of the nearest ground of their column, their
        # feet below the frame: the photo taken among trees, trunks from the bottom edge up
        near = torch.rand(K, generator=gen) < near_share
        ub = torch.where(near, torch.randint(W, (K,), generator=gen).float(), ub)
        col_near = torch.where(torch.isfinite(d) & (d > 0), d, torch.full_like(d, math.inf)).amin(0).float().cpu()  # [W]
        z_col = col_near[ub.long()]
        z_col = torch.where(torch.isfinite(z_col), z_col, z)
        z = torch.where(near, z_col * r(0.4, 0.95), z)
        vb = torch.where(near, H * r(1.0, 1.4), vb)
        height = r(6.0, 30.0) * fx / z  # px
        trunk_w = (r(0.3, 1.2) * fx / z).clamp_min(1.0)
        crown_w = r(2.5, 9.0) * fx / z
        crown_h = height * r(0.35, 0.8)
        conifer = torch.rand(K, generator=gen) < 0.6
        bark = torch.stack([r(0.10, 0.30), r(0.08, 0.22), r(0.06, 0.16)], 1)
        leaf = torch.stack([r(0.03, 0.16), r(0.07, 0.26), r(0.03, 0.12)], 1)
        to = lambda t: to_device(t, dev)[:, None, None]  # noqa: E731  [K] -> [K, 1, 1]
        top = to(vb - height)
        dx = xx - to(ub)  # [K, 1, W] columns from each trunk's axis (uploaded once)
        trunk = dx.abs() <= to(trunk_w / 2)
        trunk = trunk & (yy >= top) & (yy <= to(vb))
        rel = (yy - top) / to(crown_h).clamp_min(1.0)  # 0 at the top of the crown, 1 at its foot
        half = to(crown_w / 2)
        tri = (rel >= 0) & (rel <= 1) & (dx.abs() <= half * rel)
        ell = ((rel - 0.5) * 2) ** 2 + (dx / half.clamp_min(0.5)) ** 2 <= 1
        crown = torch.where(to(conifer), tri, ell)
        zk = to(z).expand(K, H, W)
        inf = torch.full_like(zk, math.inf)
        zt_crown = torch.where(crown, zk, inf)
        zt = torch.minimum(torch.where(trunk, zk, inf), zt_crown)  # [K, H, W]
        znear, k_near = zt.min(0)  # the nearest tree at each pixel
        paint = torch.isfinite(znear) & ~(d <= znear)  # nearer than what is there (sky: +inf)
        if not bool(paint.any()):
            continue
        is_crown = torch.gather(torch.isfinite(zt_crown), 0, k_near[None])[0]
        # texture: bark stripes (noise along x only) and leaf blotches (2D noise), per image
        stripes = F.interpolate(to_device(torch.rand(1, 1, 1, max(2, W // 2), generator=gen), dev), size=(1, W),
                                mode="bilinear", align_corners=False)[0, 0]
        blotch = F.interpolate(to_device(torch.rand(1, 1, max(2, H // 3), max(2, W // 3), generator=gen), dev),
                               size=(H, W), mode="bilinear", align_corners=False)[0, 0]
        fine = to_device(torch.rand(H, W, generator=gen), dev)
        leaf, bark = to_device(leaf, dev), to_device(bark, dev)
        base = torch.where(is_crown[None], leaf.T[:, k_near], bark.T[:, k_near])  # [3, H, W]
        shade = torch.where(is_crown, 0.55 + 0.6 * blotch + 0.25 * fine, 0.6 + 0.6 * stripes.expand(H, W) + 0.15 * fine)
        colour = (base * shade[None]).clamp(0, 1)
        rgb[b] = torch.where(paint[None], colour, rgb[b])
        depth[b, 0] = torch.where(paint, znear.to(depth.dtype), d)
    return rgb, depth


# ----------------------------------------------------------------------------- losses
def si_log_l1(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Scale-invariant L1 of log-depths pred, target [B, H, W] over valid [B, H, W]: mean |r - mean(r)|,
    r = pred - target, the mean taken per image (its global scale removed)."""
    v = valid.float()
    n = v.sum(dim=(1, 2)).clamp_min(1.0)
    r = torch.where(valid, pred - target, torch.zeros_like(pred))
    r = r - (r.sum(dim=(1, 2)) / n)[:, None, None]
    return ((r.abs() * v).sum(dim=(1, 2)) / n).mean()


def gradient_matching(pred: Tensor, target: Tensor, valid: Tensor, scales: int = 4) -> Tensor:
    """MiDaS-style multi-scale gradient matching of the log-depth residual [B, H, W] over valid pixels."""
    total = pred.new_zeros(())
    r = torch.where(valid, pred - target, torch.zeros_like(pred))
    v = valid.float()
    for k in range(scales):
        s = 2 ** k
        rr, vv = r[:, ::s, ::s], v[:, ::s, ::s]
        mx = vv[:, :, 1:] * vv[:, :, :-1]
        my = vv[:, 1:] * vv[:, :-1]
        gx = (rr[:, :, 1:] - rr[:, :, :-1]).abs() * mx
        gy = (rr[:, 1:] - rr[:, :-1]).abs() * my
        total = total + (gx.sum() + gy.sum()) / (mx.sum() + my.sum()).clamp_min(1.0)
    return total / scales


def depth_losses(net, rgb: Tensor, depth: Tensor, cfg: DepthTrainConfig, autocast: bool) -> dict[str, Tensor]:
    """Supervised terms for rgb [B, 3, H, W] and true depth [B, 1, H, W] (+inf sky)."""
    with torch.autocast(device_type=rgb.device.type, dtype=torch.bfloat16, enabled=autocast):
        log_d, sky_logit = predict(net, rgb)
    log_d, sky_logit = log_d.float(), sky_logit.float()
    d = depth[:, 0]
    valid = torch.isfinite(d) & (d > 0)
    target = torch.log(torch.where(valid, d, torch.ones_like(d)))
    return {"si_log": si_log_l1(log_d, target, valid), "gradient": gradient_matching(log_d, target, valid),
            "sky": F.binary_cross_entropy_with_logits(sky_logit, (~valid).float())}


def cell_means(log_d: Tensor, valid: Tensor, cell: int) -> tuple[Tensor, Tensor]:
    """Means of log_d [B, H, W] over the valid [B, H, W] pixels of each cell x cell block: (means, cell
    valid) [B, H // cell, W // cell]; a cell is valid when at least half of its pixels are."""
    v = valid.float()[:, None]
    n = F.avg_pool2d(v, cell)
    m = F.avg_pool2d(log_d[:, None] * v, cell) / n.clamp_min(1e-6)
    return m[:, 0], n[:, 0] >= 0.5


def order_bands(log_d: Tensor, solid: Tensor, start: float = 0.375, bands: int = 5) -> tuple[Tensor, Tensor]:
    """The bands `ground_order` compares: the rows from `start` of the height down cut into `bands` bands; returns
    (mean log-depth over each band's solid pixels [B, bands] (0 where it has none), whether it has any [B, bands]).
    log_d, solid [B, H, W] (solid: not sky)."""
    H = log_d.shape[1]
    a0 = int(start * H)
    edges = [a0 + round(i * (H - a0) / bands) for i in range(bands + 1)]
    means, ok = [], []
    for r0, r1 in zip(edges[:-1], edges[1:]):
        v = solid[:, r0:r1].float()
        n = v.sum(dim=(1, 2))
        means.append((log_d[:, r0:r1] * v).sum(dim=(1, 2)) / n.clamp_min(1.0))
        ok.append(n > 0)
    return torch.stack(means, 1), torch.stack(ok, 1)


def ground_order(log_d: Tensor, solid: Tensor, start: float = 0.375, bands: int = 5, margin: float = 0.1) -> Tensor:
    """How far the ground fails to come nearer going down a whole landscape photo: the rows from `start` of the
    height down are cut into `bands` bands; for each pair of neighbouring bands, relu(lower band's mean log-depth
    over its solid pixels - upper band's - margin); summed over the pairs, mean over the images. log_d, solid
    [B, H, W] (solid: not sky). 0 for a landscape the right way up at any scale, with trunks standing near in the
    middle rows, or with nothing solid to compare; the rows above `start` (canopy overhead may be nearer than the
    ground ahead) are free. On the 14 photos of ../shared/data/real (whole, 256x256) the shipped network scores 0
    on all, the walks networks 0.94-1.03 on crystal_falls (its ground called farther than its rock wall) and 0 on
    the rest; on the 66 training photos the shipped network is above 0 on 3 (at most 0.43, a night sky)."""
    return bands_order(*order_bands(log_d, solid, start, bands), margin)


def bands_order(means: Tensor, ok: Tensor, margin: float = 0.1) -> Tensor:
    """`ground_order` from `order_bands`' output (means, ok [B, bands]): the mean over the batch of the summed
    relu(lower band - upper band - margin) over neighbouring bands that both have solid pixels; a scalar."""
    steps = F.relu(means[:, 1:] - means[:, :-1] - margin) * (ok[:, 1:] & ok[:, :-1]).to(means.dtype)
    return steps.sum(dim=1).mean()


def ground_order_term(net, photos: list[Tensor], n: int, out_wh: tuple[int, int], gen: torch.Generator,
                      autocast: bool) -> Tensor:
    """`ground_order` of the network's prediction on n whole photos (random ones of `photos`, each [3, h, w],
    resized to out_wh, randomly mirrored, with `photometric`'s degradations): whole, because a crop of the
    canopy alone has no ground to order."""
    Wo, Ho = out_wh
    picks = [photos[int(torch.randint(len(photos), (1,), generator=gen))] for _ in range(n)]
    x = torch.cat([F.interpolate(p[None], size=(Ho, Wo), mode="bilinear", align_corners=False, antialias=True)
                   for p in picks])
    if bool(torch.rand((), generator=gen) < 0.5):
        x = x.flip(-1)
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=autocast):
        log_d, sky = predict(net, photometric(x, gen))
    return ground_order(log_d.float(), sky.float() < 0)


SKY_LOGIT_CLAMP = 6.0
"""The sky anchor's "logit" mode compares sky logits clamped to +-this: beyond it both networks are sure (sigmoid
0.0025 / 0.9975) and need not agree on how sure."""


def photo_consistency(net, photos: Tensor, gen: torch.Generator, autocast: bool, teacher=None,
                      layout=None, cell: int = 16, sky_mode: Literal["bce", "logit"] = "bce") -> dict[str, Tensor]:
    """Self-supervised terms on real photos [B, 3, H, W]. "photo": an augmented (colour, flip) view's
    prediction must match the teacher's on the clean view (no gradient; `teacher` None: the network
    itself), up to scale; sky by cross-entropy with the teacher's sky. "layout" (when `layout`, a frozen
    depth network, is given): the same prediction's cell means (`cell_means`) must match `layout`'s over
    its ground pixels, up to scale (scale-invariant L1 of log-depth, as si_log); "layout_sky": its sky logits
    must match `layout`'s sky, per pixel (`sky_mode` "bce": binary cross-entropy with the sigmoid of `layout`'s
    logits; "logit": mean |clamp(s) - clamp(a)| of the logits clamped to +-SKY_LOGIT_CLAMP; the caller weights it
    with `layout_sky`)."""
    with torch.no_grad(), torch.autocast(device_type=photos.device.type, dtype=torch.bfloat16, enabled=autocast):
        t_log, t_sky = predict(net if teacher is None else teacher, photos)
        a_log, a_sky = predict(layout, photos) if layout is not None else (None, None)
    aug = photometric(photos, gen)
    flip = bool(torch.rand((), generator=gen) < 0.5)
    if flip:
        aug = aug.flip(-1)
    with torch.autocast(device_type=photos.device.type, dtype=torch.bfloat16, enabled=autocast):
        s_log, s_sky = predict(net, aug)
    if flip:
        s_log, s_sky = s_log.flip(-1), s_sky.flip(-1)
    solid = t_sky.float() < 0
    terms = {"photo": si_log_l1(s_log.float(), t_log.float(), solid) + 0.3 * F.binary_cross_entropy_with_logits(
        s_sky.float(), torch.sigmoid(t_sky.float()))}
    if layout is not None:
        ground = a_sky.float() < 0
        s_cells, _ = cell_means(s_log.float(), ground, cell)
        a_cells, ok = cell_means(a_log.float(), ground, cell)
        terms["layout"] = si_log_l1(s_cells, a_cells, ok)
        if sky_mode == "logit":
            c = SKY_LOGIT_CLAMP
            terms["layout_sky"] = (s_sky.float().clamp(-c, c) - a_sky.float().clamp(-c, c)).abs().mean()
        else:
            terms["layout_sky"] = F.binary_cross_entropy_with_logits(s_sky.float(), torch.sigmoid(a_sky.float()))
    return terms


def photo_batch(photos: list[Tensor], n: int, out_wh: tuple[int, int], gen: torch.Generator) -> Tensor:
    """n random crops (with random scale) of random photos, resized to out_wh: [n, 3, Ho, Wo]."""
    crops = []
    for _ in range(n):
        img = photos[int(torch.randint(len(photos), (1,), generator=gen))]
        depth = torch.ones_like(img[:1])
        r, _ = random_crops(img[None], depth[None], out_wh, gen, min_scale=0.2)
        crops.append(r[0])
    return torch.stack(crops)


# ----------------------------------------------------------------------------- the loop
def _frozen_copy(net: torch.nn.Module) -> torch.nn.Module:
    """A copy of `net` that takes no gradients (the mean teacher)."""
    import copy

    teacher = copy.deepcopy(net)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def train_depth(cfg: DepthTrainConfig) -> dict:
    """Run (or resume) depth training; returns the summary written to train.json.

    Bad settings (`check`: one line naming the option), a missing photo folder and an output path that
    cannot be a folder raise before anything is written; the run folder is locked for the whole run (a
    second writer fails at once), and a run that fails before its first checkpoint in a folder it made
    removes it again (refine/train/common.py TrainingFolder). A checkpoint in `cfg.out` that is not one,
    or holds a network of other `--net` settings, is a ValueError of one line. A write that fails (a full disk) is
    an OSError of one line saying which checkpoint stands (`common.stopped`): the run resumes from it (a run whose
    checkpoint has all its steps but whose end failed writes its end from it: `common.check_steps_left`). Under
    torchrun every process stops with it (`Dist.writes`): rank 0 with that line, the others with one saying that
    rank 0 could not write."""
    check(cfg)
    if cfg.photos:
        check_photo_folder(cfg.photos)
    dd = Dist(cfg.device)
    try:
        with TrainingFolder(cfg.out, dd) as folder:
            return _train_depth(cfg, dd, folder)
    except OSError as e:
        raise stopped(e, cfg.out, CKPT_FORMAT, "train-depth", cfg.steps, cfg.resume) from e


def _train_depth(cfg: DepthTrainConfig, dd: Dist, folder: TrainingFolder) -> dict:
    """`train_depth` in its (locked) run folder."""
    dev = dd.device
    cuda = dev.type == "cuda"
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    net = DepthNet(cfg.net).to(dev)
    if cuda:  # (cuDNN's own layout: no NCHW <-> NHWC transposes around each convolution, ~550 kernels a step)
        net = net.to(memory_format=torch.channels_last)
    teacher = None  # the consistency term's mean teacher (made when the term comes on)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas)
    start, cursor, history, elapsed0 = 0, None, [], 0.0
    ckpt = out / "checkpoint.pt"
    src = resume_source(out)
    if cfg.resume and src.is_file():
        blob = load_training_checkpoint(src, CKPT_FORMAT)
        try:
            state = {k: v.float() if v.is_floating_point() else v for k, v in blob["depth"]["state_dict"].items()}
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{src} is not a worldgen training checkpoint: it lacks {e}") from None
        try:
            net.load_state_dict(state)
        except RuntimeError:
            raise other_network(src) from None
        if blob["opt"] is not None:
            opt.load_state_dict(blob["opt"])
        start, cursor, history, elapsed0 = blob["step"], blob["cursor"], blob["history"], blob["elapsed_seconds"]
        if blob.get("teacher") is not None:
            teacher = _frozen_copy(net)
            teacher.load_state_dict(blob["teacher"])
    if not check_steps_left(cfg.out, start, cfg.steps, "depth.pt", dd):  # (before the data cache is filled)
        if dd.main:  # all steps in the checkpoint, the end's files not (a full disk at the end): the end, no training
            print(f"all {start:,} steps are in {src}; writing the run's end (depth.pt, curves, train.json)", flush=True)
        return _end(out, dd, net, cfg, start, history, {
            "seconds_this_run": 0.0, "cache_fill_seconds": 0.0,
            "data_frames_per_second": history[-1].get("data_frames_per_second") if history else None})
    if dd.main:  # steps logged after the checkpoint (a run stopped between two) are trained and logged again
        with dd.writes():
            cut_log(out, start)
    dd.stop_if_unwritten()  # (before the data cache is filled)
    cache = FlightCache(cfg.data, dev, dd.rank, dd.world)
    t_fill = time.perf_counter()
    cache.fill(cursor)
    fill_s = time.perf_counter() - t_fill
    photos = load_photos(cfg.photos, dev) if cfg.photos else None
    layout = None  # the frozen network anchoring the layout on the photos
    if cfg.layout_from and photos is not None:
        layout = _frozen_copy(load_depth_weights(cfg.layout_from)[0]).to(dev).eval()
        if cuda:
            layout = layout.to(memory_format=torch.channels_last)
    monitor = GpuMonitor(dev)
    if dd.main:
        print(f"depth net {count_parameters(net):,} parameters; {dd.world} process(es) on {dev}; cache filled in "
              f"{fill_s:.1f} s; {len(photos) if photos else 0} real photos; from step {start}", flush=True)
    params = list(net.parameters())

    def save(path: Path, step: int, compact: bool) -> None:
        from worldgen.core.io import save_torch

        # compact (the copy that travels): float16 weights, no optimiser state and no teacher (a
        # resumed run starts new Adam moments and a new mean teacher); full: everything, bit-exact.
        state = {"format": DEPTH_FORMAT, "net_config": dataclasses.asdict(cfg.net), "meta": {},
                 "state_dict": {k: (v.half() if compact and v.is_floating_point() else v).detach().cpu()
                                for k, v in net.state_dict().items()}}
        blob = {"format": CKPT_FORMAT, "step": step, "depth": state, "opt": None if compact else opt.state_dict(),
                "teacher": None if compact or teacher is None else teacher.state_dict(),
                "cursor": cache.cursor, "history": history, "config": dataclasses.asdict(cfg),
                "elapsed_seconds": elapsed0 + time.perf_counter() - t_run}
        save_torch(path, blob)  # (a full disk: an OSError, the file at `path` as it was)

    t_run = t_log = time.perf_counter()
    acc: dict[str, float | torch.Tensor] = {}  # sums over the log interval (tensors on the device)
    n_acc = n_ok = 0  # steps in this log interval, and those not skipped
    step = start
    longest = 0.0  # wall seconds of the longest step after the first: the deadline stops one such step early
    while step < cfg.steps:
        t_step = time.perf_counter()
        seed = step_seed(cfg.seed, dd.rank, step)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        if cfg.data.refresh_every and step > 0 and step % cfg.data.refresh_every == 0:
            cache.refresh()
        W0, H0 = SIZES[int(torch.randint(len(SIZES), (1,), generator=gen))]
        wh = (16 * round(W0 * cfg.size / 256 / 16), 16 * round(H0 * cfg.size / 256 / 16))
        slots = torch.randint(cfg.data.flights, (cfg.batch,), generator=gen)
        frames = torch.randint(cfg.data.frames, (cfg.batch,), generator=gen)
        slots, frames = to_device(slots, dev), to_device(frames, dev)
        rgb = cache.rgb[slots, frames].permute(0, 3, 1, 2).float() / 255
        depth = cache.depth[slots, frames][:, None]
        rgb, depth = random_crops(rgb, depth, wh, gen)
        if cfg.standing_trees > 0:
            rgb, depth = standing_trees(rgb, depth, gen, prob=cfg.standing_trees)
        if cfg.clouds > 0:
            rgb = clouds(rgb, depth, gen, prob=cfg.clouds)
        rgb = photometric(rgb, gen, depth)
        if cfg.shading > 0:
            rgb = shading(rgb, gen, prob=cfg.shading, stops=cfg.shading_stops)
        rgb = jpeg(rgb, gen)
        for g in opt.param_groups:
            g["lr"] = learning_rate(cfg, cfg.optim.lr, step)
        terms = depth_losses(net, rgb, depth, cfg, cuda)
        loss = terms["si_log"] + cfg.gradient_weight * terms["gradient"] + cfg.sky_weight * terms["sky"]
        if photos is not None and step >= cfg.photo_start:
            if teacher is None and cfg.teacher_ema > 0:
                teacher = _frozen_copy(net)
            terms.update(photo_consistency(net, photo_batch(photos, cfg.photo_batch, wh, gen), gen, cuda, teacher,
                                           layout, max(1, cfg.layout_cell * cfg.size // 256), cfg.layout_sky_mode))
            loss = loss + cfg.photo_weight * terms["photo"] + cfg.layout_weight * terms.get("layout", 0.0) \
                + cfg.layout_sky * terms.get("layout_sky", 0.0)
            if cfg.ground_order_weight > 0:
                terms["order"] = ground_order_term(net, photos, cfg.photo_batch, wh, gen, cuda)
                loss = loss + cfg.ground_order_weight * terms["order"]
        opt.zero_grad(set_to_none=True)
        value = float(loss.detach())
        if dd.any(not (math.isfinite(value) and value <= cfg.skip_loss_above)):
            acc["skipped"] = acc.get("skipped", 0.0) + 1.0  # logged as the share of skipped steps
        else:
            loss.backward()
            dd.mean_grads(params)
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
            opt.step()
            if teacher is not None:
                with torch.no_grad():
                    for pt, p in zip(teacher.parameters(), net.parameters()):
                        pt.lerp_(p, 1.0 - cfg.teacher_ema)
            for k, v in {**terms, "loss": loss, "grad_norm": gnorm}.items():  # the steps taken, summed on the
                acc[k] = acc.get(k, 0.0) + v.detach().double()  # device: read back once per log interval, not per step
            n_ok += 1
        n_acc += 1
        step += 1
        if dd.main and cfg.sample_every and (step % cfg.sample_every == 0 or step == cfg.steps):
            with dd.writes():  # (a failure: every process stops at `over` below)
                (out / "samples").mkdir(exist_ok=True)  # (made with the first sample: a failed start leaves none)
                save_png(out / "samples" / f"step_{step:06d}.png", depth_sample(net, rgb[:4], depth[:4], cuda))
        if step % cfg.log_every == 0 or step == cfg.steps:
            now = time.perf_counter()
            rec = dd.mean({k: float(v) / (n_acc if k == "skipped" else max(n_ok, 1)) for k, v in acc.items()})
            rec = {"step": step, **{k: round(v, 5) for k, v in sorted(rec.items())},
                   "steps_per_second": round(n_acc / (now - t_log), 3),
                   "data_frames_per_second": round(cache.data_frames_per_second, 1)}
            util = monitor.take()
            if util is not None:
                rec["gpu_util"] = round(util, 1)
            history.append(rec)
            if dd.main:
                with dd.writes():
                    append_text(out / "log.jsonl", json.dumps(rec) + "\n")  # (a full disk leaves no half line)
                    print("depth", json.dumps(rec), flush=True)
            acc, n_acc, n_ok, t_log = {}, 0, 0, now
        # (also where every process stops when a sample or log line above failed on rank 0: Dist.writes)
        if step - start > 1:  # (the first step pays the device's warm-up)
            longest = max(longest, time.perf_counter() - t_step)
        over = dd.any(time_is_up(cfg, t_run, ahead=longest)) or (cfg.stop_after > 0 and step - start >= cfg.stop_after)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps or over:
            if dd.main:
                with dd.writes():
                    save(ckpt, step, compact=False)
                    save(out / "checkpoint-compact.pt", step, compact=True)
                    folder.saved()
            dd.stop_if_unwritten()
        if over:
            break
    monitor.stop()
    return _end(out, dd, net, cfg, step, history, {
        "seconds_this_run": round(time.perf_counter() - t_run, 1), "cache_fill_seconds": round(fill_s, 1),
        "data_frames_per_second": round(cache.data_frames_per_second, 1)})


def _end(out: Path, dd: Dist, net, cfg: DepthTrainConfig, step: int, history: list[dict], run: dict) -> dict:
    """The end of a run at `step` (rank 0 writes): depth.pt, the curves and train.json (last: `common.end_written`),
    whose summary (returned) takes the run's figures `run` (seconds, cache). Also what a rerun writes when a run's
    end failed after its last checkpoint (`check_steps_left`), from that checkpoint: `net` and `history` then are its
    own, so depth.pt is the file the run's own end would have written. Every process returns once rank 0 has written
    the end, or all stop when it could not (`Dist.stop_if_unwritten`)."""
    summary = {"steps_done": step, "steps_target": cfg.steps, "processes": dd.world, "device": str(dd.device),
               "parameters": count_parameters(net), **run, "config": dataclasses.asdict(cfg)}
    if dd.main:
        from worldgen.core.io import atomic_write_text

        with dd.writes():
            save_depth_weights(out / "depth.pt", net, meta={"steps": step, "train_config": dataclasses.asdict(cfg)})
            write_curves(out, history, "depth training losses",
                         ("si_log", "gradient", "sky", "photo", "layout", "layout_sky", "order"))
            atomic_write_text(out / "train.json", json.dumps(summary, indent=2))
    dd.stop_if_unwritten()  # (else the other processes would return as if the end were written)
    return summary


@torch.no_grad()
def depth_sample(net, rgb: Tensor, depth: Tensor, autocast: bool):
    """uint8 image: per row rgb | predicted disparity | true disparity (each normalised to its own range)."""
    with torch.autocast(device_type=rgb.device.type, dtype=torch.bfloat16, enabled=autocast):
        log_d, sky = predict(net, rgb)
    rows = []
    for i in range(rgb.shape[0]):
        p = torch.exp(-log_d[i].float())
        p = torch.where(sky[i] > 0, torch.zeros_like(p), p)
        t = torch.where(torch.isfinite(depth[i, 0]), 1 / depth[i, 0].clamp_min(1e-6), torch.zeros_like(p))
        norm = lambda x: (x / x.flatten().quantile(0.98).clamp_min(1e-12)).clamp(0, 1)[None].expand(3, -1, -1)  # noqa: E731
        rows.append(torch.cat([rgb[i].float(), norm(p), norm(t)], dim=2))
    img = torch.cat(rows, dim=1)
    return (img.permute(1, 2, 0) * 255 + 0.5).to(torch.uint8).cpu().numpy()

