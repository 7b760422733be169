"""The learned refiner: RenderedView -> network -> Frame, on top of the classical refiner.

The network corrects the classical refiner (refine/classical.py: push-pull colour, far-side depth,
dome and horizon sky) instead of painting holes from nothing: a fresh network (zero head) IS the
classical refiner, so any training that lowers the loss improves on it, and an under-trained
network can never paint black holes or curtains (seen with the first design, which painted holes
from a black base: docs/refiner.md).

Inputs (`view_inputs`, 11 channels, in this order, all `[B, 1 or 3, H, W]`):
    0-2  the classical refiner's colour (the scene where covered, dome / push-pull elsewhere)
    3    the scene's alpha (coverage)
    4    the classical log-disparity (rendered where covered, the far side of the hole elsewhere)
         minus ref, the alpha-weighted mean over covered pixels (no units reach the network); 0 sky
    5    log2 of the rendered footprint (Gaussian size in pixels), clipped to [-2, 4], / 4; 0 uncovered
    6    the classical sky mask
    7    the sky dome's known-mask
    8    sin(elevation) of the pixel's ray (world up = -y)
    9    (elevation - the photo's horizon elevation) / 30 degrees, clipped to [-2, 2]
    10   uniform noise in [-1, 1] (texture for what has to be invented)

Outputs (`RefinerNet`): an RGB residual, a log-disparity residual and a sky-logit residual.

Composition (`compose`, the same in training and inference), with
    k_a  = clamp((alpha - hole_alpha) / (keep_alpha - hole_alpha), 0, 1)   covered
    k_f  = clamp((detail_px - footprint) / (detail_px - sharp_px), 0, 1)   sharp enough
    keep = k_a * k_f
- colour: keep * scene colour + (1 - keep) * (classical colour + residual). Covered, well-resolved
  pixels are returned exactly (the world is not repainted: loop closure); holes and blurry
  close-ups (footprint > sharp_px) are the classical answer corrected by the network; on covered
  blurry pixels only the residual's detail counts (`pin_covered`: its 8x8-block mean is dropped, the
  world's mean colour stays).
- sky: uncovered pixels above the photo's horizon elevation whose logit (network + 4 for classical sky,
  - 4 otherwise) is positive, and every uncovered pixel the sky dome has already seen (the dome stores
  only sky; until 2026-12-02 the network could add sky below the horizon too, and such sky, once in the
  dome, stayed sky for good). Sky pixels
  the classical refiner also calls sky take its colour (the dome's where it knows the direction,
  rotation-only so the sky stays put; else its fill above the horizon): the sky is the sky
  component's, the network only moves its boundary (and colours sky it adds elsewhere).
- colour anchor (`anchor` > 0 and a view with `ground_anchor`): on generated ground (weight (1 - k_a),
  not sky) the colour's local mean (a ~24-pixel window over generated ground only) moves `anchor` of the
  way towards the photo's ground colour at the pixel's elevation relative to the horizon; detail is
  untouched. It bounds the colour drift of ground generated from ground generated before.
- detail anchor (`texture` > 0 and a view with `ground_texture`): generated ground (weight (1 - keep),
  not sky) whose local detail falls short of the photo's at its elevation gets the photo's own detail,
  copied in 16-pixel patches from frame 0's ground at that elevation, for the missing share (in
  quadrature: sqrt(1 - (local / photo's)^2)).
- depth (log-disparity): k_a * rendered + (1 - k_a) * (classical + min(residual, log max_nearer)):
  generated pixels continue the far side of their hole and may come at most `max_nearer` times
  nearer, so new content never becomes a wall in front of the camera that the world would keep.
  (Infinite Nature rescales its network's disparity to the rendered one in log space; anchoring to
  the classical fill does the same job per hole.)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from refine.classical import ClassicalRefiner, ClassicalRefinerConfig
from refine.graphed import graphs_wanted, refine_graphed
from refine.net import IN_CHANNELS, RefinerNet, load_net_blob, save_net_blob
from worldgen.core.anchor import anchor_colour, detail_layer, texture_transfer
from worldgen.core.config import bad, check
from worldgen.core.io import UserInputError
from worldgen.core.frame import Frame, RenderedView
from worldgen.core.graphs import GraphCache

WEIGHTS_FORMAT = "worldgen-refiner/2"
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "refiner.pt"
"""The default refiner's weights (`--refiner learned`), composed with the colour and detail anchors saved in them:
the operating point for flights over photos."""
FIDELITY_WEIGHTS = Path(__file__).resolve().parent / "weights" / "refiner-fidelity.pt"
"""The weights of `--refiner learned-fidelity` (since 2026-12-02, fifth session): the same network trained further for
fidelity to ground truth (minus the mean PSNR added to its loss), composed as `FIDELITY` (unless --refiner-anchor or
--refiner-texture say otherwise). Closest to the truth on procedural flights; over long flights on real photos its
anchored composition drifts in colour and speckles, so it is not the default (refine/weights/refiner-fidelity.json)."""
SHIPPED_WEIGHTS = {"learned": DEFAULT_WEIGHTS, "learned-fidelity": FIDELITY_WEIGHTS}
"""The shipped refiner names and their weights files (worldgen/pipeline/refiners.py turns a --refiner name into one)."""
FIDELITY = {"anchor": 0.0, "texture": 0.0, "sharp_px": 2.0, "detail_px": 4.0, "flip_average": True}
"""The composition of `--refiner learned-fidelity` (worldgen/pipeline/refiners.py): no colour and detail anchors,
and covered pixels kept as the world draws them up to a footprint of 2 px (re-synthesised fully from 4 px).
The anchors pull generated ground towards the photo's statistics, which keeps long flights over real photos detailed
and in the photo's colours but costs PSNR against ground truth: detail that is not the truth's adds its energy to the
error (the perception-distortion trade-off). Without them the output is the network's own estimate, the closest to
the truth; `learned` (the default weights' saved composition, with the anchors) is the default for flights over
photos. Keeping the world's colour up to 2 px instead of 1 (2026-12-02, sixth session; CPU, held-out 256^2, 64 steps)
raised persistent steps 33-64 from 30.73 / 0.8053 to 30.79 / 0.8082 (forward, PSNR / SSIM) and from 29.85 / 0.7838
to 29.94 / 0.7865 (autopilot) and changed no other cell by more than 0.01 dB: the network's residual on a slightly
blurry covered pixel cost more structure than it restored (BENCHMARKS.md). `flip_average` (2026-12-03, second
session; chosen on train seeds, -0.01 to +0.05 dB there) took held-out autopilot persistent steps 1-8 from 34.41 to
34.52 dB against the classical 34.44 (PSNR higher in 10 of 12 cells, mean +0.03 dB; the other two -0.001 dB), for
twice the network: 0.148 s a frame at 256^2 on 2 CPU cores against 0.104 (BENCHMARKS.md)."""


COMPOSITION_RANGES = {"anchor": (0.0, 1.0), "texture": (0.0, 4.0), "sharp_px": (0.25, 64.0), "detail_px": (0.25, 64.0)}
"""The values the composition's numbers may take (inf and nan are out of every range): checked for every config
(`LearnedRefinerConfig.validate`: training's --refiner.* options, a weights file's saved composition) and for the
overrides of a --refiner spec (worldgen/pipeline/refiners.py)."""


@dataclass(frozen=True)
class LearnedRefinerConfig:
    """How the network's output is composed with the rendered view (saved with the weights)."""

    hole_alpha: float = 0.5
    """Pixels with less scene alpha than this are sky or generated."""
    keep_alpha: float = 0.95
    """Pixels with at least this alpha (and a sharp footprint) keep the world's colour and depth."""
    sharp_px: float = 1.0
    """Covered pixels whose footprint (Gaussian std in pixels) is at most this are kept exactly."""
    detail_px: float = 2.0
    """... and from this footprint on they are fully re-synthesised (match LiftConfig.detail_px)."""
    max_nearer: float = 1.5
    """Generated (uncovered) pixels may be at most this much nearer than the far side of their hole
    (the classical refiner's depth): new content never becomes a wall in front of the camera that
    the persistent world would then keep."""
    sky_prior: float = 4.0
    """Sky logit added for the classical refiner's sky (subtracted elsewhere)."""
    noise: bool = True
    """Feed a noise channel (off: zeros; for deterministic tests of the composition)."""
    max_shift: float = 0.0
    """Bound on the colour residual's low-frequency part (its 8x8-block mean, soft-clipped with tanh)
    in holes; on covered pixels (re-synthesised because they are blurry) the low-frequency part is
    dropped, so their colour stays the world's and only detail is added. 0 = unbounded and not
    pinned (how the weights up to step 2818 were trained). Why: over real photos the unbounded
    network shifted the colour of blurry close-ups a little every frame, the world kept each shift,
    and within 50 frames snow had become neon green (docs/refiner.md)."""
    pin_covered: bool = True
    """Covered pixels (re-synthesised because they are blurry) take only the residual's high frequencies:
    the low-frequency part (the 8x8-block mean) is dropped there even when `max_shift` is 0, so the
    world's mean colour is never repainted, only sharpened. With step 3180 on held-out flights (CPU,
    128^2, 32 steps, 2026-12-01): +1.5 dB forward and +0.9 dB autopilot on the smooth seed 1,000,002,
    within 0.03 dB on the two others (BENCHMARKS.md). False: how every step up to 3609 was trained."""
    max_detail: float = 0.0
    """Bound on the residual's high-frequency part (what is left after the block mean), soft-clipped
    with tanh; 0 = unbounded."""
    anchor: float = 0.35
    """Colour anchor, 0..1: the low frequencies of generated ground (uncovered, not sky) move this
    fraction of the way towards the photo's ground colour at the pixel's elevation relative to the
    horizon (`RenderedView.ground_anchor`, worldgen/core/anchor.py) every time they are generated, so
    a small colour bias per generated strip stays bounded (about bias / anchor) instead of adding up
    strip after strip. 0 = off. Steps up to 3609 were trained without it; with step 3180, 0.3 took
    200-frame flights over the 14 real photos from colour dE median 17.3 to 10.2 (hf_ratio 0.18 to 0.25,
    mostly the world's Gaussians seen up close, not new detail; BENCHMARKS.md, 2026-12-01 night). 0.35 since
    2026-12-04 (fourth session; 0.3 before): with step 4957 the strength at which every real photo's colour stays
    within dE 10 and held-out flights stay within 1 dB of `learned-fidelity` (BENCHMARKS.md); the shipped
    weights are saved with it (scripts/recompose.py). `--refiner-anchor` overrides it."""
    texture: float = 1.0
    """Detail anchor, >= 0: generated ground (uncovered or blurry, not sky) whose local detail (mean
    |grey - blur|, about 15 pixels wide) is below the photo's at the same elevation gets the photo's own
    detail, copied patch by patch (16 pixels) from frame 0's ground at that elevation
    (`RenderedView.ground_texture`, worldgen/core/anchor.py), times this and times the missing share
    sqrt(1 - (local / photo's)^2): independent detail adds in quadrature, so that share brings the local
    detail up to the photo's (the share 1 - local / photo's, until 2026-12-02, reached about 0.8 of it). Not
    learned: it keeps the world from smoothing out where the network does not invent detail. 200-frame
    flights over the 14 real photos with step 3180 (2026-12-01, linear share): hf_ratio median 0.31 -> 0.61;
    300-frame flights (2026-12-02): linear 0.68 -> quadrature 0.90 (10 of 14 >= 0.8), colour dE median 11.6
    -> 10.1; held-out procedural (128x128, forward, steps 1-8 / 9-32) 35.30 / 31.69 -> 34.86 / 31.24 dB,
    nearly all on the smooth seed (BENCHMARKS.md). Steps up to 3822 were trained without it. 0 = off;
    `--refiner-texture` overrides it."""
    flip_average: bool = False
    """Run the network on the view and on its mirror image (one batch of two) and average the two outputs,
    mirrored back, before composing (test-time augmentation: the network's left-right asymmetric errors
    cancel; twice the network's time). Inference only; training never sets it."""

    def validate(self) -> None:
        for name, (lo, hi) in COMPOSITION_RANGES.items():
            v = getattr(self, name)
            if not (math.isfinite(v) and lo <= v <= hi):
                raise bad(name, f"must be between {lo:g} and {hi:g}", v)
        if not self.sharp_px < self.detail_px:
            raise bad("detail_px", f"must exceed sharp_px ({self.sharp_px:g})", self.detail_px)
        if not (0 <= self.hole_alpha < self.keep_alpha <= 1):
            raise bad("keep_alpha", f"must exceed hole_alpha ({self.hole_alpha:g}) and be at most 1", self.keep_alpha)
        if not (math.isfinite(self.max_nearer) and self.max_nearer >= 1):
            raise bad("max_nearer", "must be at least 1", self.max_nearer)
        for name in ("sky_prior", "max_shift", "max_detail"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise bad(name, "must be a non-negative number", v)


@dataclass
class ViewBatch:
    """B rendered views stacked channel-first (all [B, C, H, W] float32 on one device).

    Attributes:
        scene_rgb: [B, 3, H, W] un-premultiplied scene colour (0 where alpha < 1e-3).
        alpha: [B, 1, H, W].
        ld_in: [B, 1, H, W] rendered log-disparity (0 where alpha < 1e-3).
        ref: [B, 1, 1, 1] reference log-disparity (alpha-weighted mean over covered pixels).
        keep_a, keep: [B, 1, H, W] coverage weight and coverage x sharpness weight (see module doc).
        base_rgb: [B, 3, H, W] the classical refiner's colour.
        ground_rgb: [B, 3, H, W] the classical refiner's hole fill at every pixel (ClassicalResult.ground_rgb).
        base_ld: [B, 1, H, W] the classical log-disparity (far side of the hole where uncovered).
        base_sky: [B, 1, H, W] bool, the classical sky.
        sky_known: [B, 1, H, W] the dome's known-mask.
        anchor_rgb: [B, 3, H, W] the photo's ground colour at each pixel's elevation (`ground_anchor`),
            or None when a view has no anchor.
        texture, texture_energy: [B, 3, H, W] the photo's detail laid over the view and [B, 1, H, W] its
            energy at each pixel's elevation (`texture_transfer`), or None (config.texture 0, or a view
            without `ground_texture`).
        above_horizon: [B, 1, H, W] bool, the pixel's ray above the photo's horizon elevation (input channel
            9 > 0): the only place the network may add sky (None: anywhere).
    """

    scene_rgb: Tensor
    alpha: Tensor
    ld_in: Tensor
    ref: Tensor
    keep_a: Tensor
    keep: Tensor
    base_rgb: Tensor
    ground_rgb: Tensor
    base_ld: Tensor
    base_sky: Tensor
    sky_known: Tensor
    anchor_rgb: Tensor | None = None
    texture: Tensor | None = None
    texture_energy: Tensor | None = None
    above_horizon: Tensor | None = None


@dataclass
class Composed:
    """The refined frames of a batch (channel-first, differentiable).

    Attributes:
        rgb: [B, 3, H, W] in [0, 1].
        log_disp: [B, 1, H, W] log(1 / depth) (meaningless where sky).
        sky: [B, 1, H, W] bool.
        sky_logit: [B, 1, H, W] the network's sky logit.
        net_log_disp: [B, 1, H, W] the network's own log-disparity (before keeping the rendered one).
    """

    rgb: Tensor
    log_disp: Tensor
    sky: Tensor
    sky_logit: Tensor
    net_log_disp: Tensor

    def depth(self) -> Tensor:
        """[B, H, W] z-depth, +inf where sky."""
        d = torch.exp(-self.log_disp[:, 0])
        return torch.where(self.sky[:, 0], torch.full_like(d, math.inf), d)

    def frames(self, views: Sequence[RenderedView]) -> list[Frame]:
        """One Frame per view (rgb [H, W, 3], depth [H, W], sky [H, W]); keeps the autograd graph."""
        depth = self.depth()
        rgb = self.rgb.permute(0, 2, 3, 1)
        return [Frame(rgb=rgb[i], depth=depth[i], sky=self.sky[i, 0], camera=v.camera) for i, v in enumerate(views)]


def _elevation_deg(view: RenderedView) -> Tensor:
    """[H, W] world elevation (degrees) of each pixel's ray (world up = -y)."""
    dirs = view.camera.rays_world()
    return torch.rad2deg(torch.asin((-dirs[..., 1]).clamp(-1, 1)))


def view_inputs(views: Sequence[RenderedView], config: LearnedRefinerConfig = LearnedRefinerConfig(),
                generator: torch.Generator | None = None, noise: Tensor | None = None) -> tuple[Tensor, ViewBatch]:
    """Stack B rendered views (same size, one device) into the network's input [B, 11, H, W].

    Runs the classical refiner on each view (without gradients: it is the base the network
    corrects). The noise channel is `noise` [B, 1, H, W] in [-1, 1] when given, else drawn with
    `generator` (None: the global RNG); zeros when config.noise is off. Never waits for the device
    (no tensors from Python lists), so inference can be captured as a CUDA graph. Returns
    (inputs, ViewBatch)."""
    cfg = config
    classical = ClassicalRefiner(ClassicalRefinerConfig(hole_alpha=cfg.hole_alpha))
    with torch.no_grad():
        base = [classical.refine(v) for v in views]
    cf = lambda t: t.permute(2, 0, 1)  # noqa: E731  [H, W, C] -> [C, H, W]
    rgb_p = torch.stack([cf(v.rgb) for v in views])
    alpha = torch.stack([v.alpha for v in views])[:, None]
    depth = torch.stack([v.depth for v in views])[:, None]
    fp = torch.stack([v.footprint if v.footprint is not None else torch.zeros_like(v.alpha) for v in views])[:, None]
    sky_known = torch.stack([v.sky_known for v in views])[:, None]
    elev = torch.stack([_elevation_deg(v) for v in views])[:, None]
    horizon = torch.cat([torch.full((1, 1, 1, 1), float(v.horizon_elev_deg), device=alpha.device, dtype=alpha.dtype)
                         for v in views])
    base_rgb = torch.stack([cf(f.frame.rgb) for f in base])
    ground_rgb = torch.stack([cf(f.ground_rgb) for f in base])
    base_sky = torch.stack([f.frame.sky for f in base])[:, None]
    far_disp = torch.stack([f.far_disparity for f in base])[:, None]

    seen = alpha > 1e-3
    covered = alpha >= cfg.hole_alpha
    scene_rgb = torch.where(seen, rgb_p / alpha.clamp_min(1e-3), torch.zeros_like(rgb_p)).clamp(0, 1)
    ld_in = torch.where(seen & (depth > 0), -torch.log(depth.clamp_min(1e-12)), torch.zeros_like(depth))
    w = torch.where(covered, alpha, torch.zeros_like(alpha))
    wsum = w.sum(dim=(1, 2, 3), keepdim=True)
    ref = torch.where(wsum > 0, (w * ld_in).sum(dim=(1, 2, 3), keepdim=True) / wsum.clamp_min(1e-12), torch.zeros_like(wsum))
    base_ld = torch.where(covered, ld_in, torch.log(far_disp.clamp_min(1e-12)))
    ld_norm = torch.where(base_sky, torch.zeros_like(base_ld), (base_ld - ref).clamp(-4, 4))
    log_fp = torch.where(seen, torch.log2(fp.clamp_min(0.25)).clamp(-2, 4) / 4, torch.zeros_like(fp))
    if not cfg.noise:
        noise = torch.zeros_like(alpha)
    elif noise is None:
        noise = torch.rand(alpha.shape, generator=generator, device=alpha.device) * 2 - 1
    x = torch.cat([
        base_rgb, alpha, ld_norm, log_fp, base_sky.float(), sky_known,
        torch.sin(torch.deg2rad(elev)), ((elev - horizon) / 30.0).clamp(-2, 2), noise,
    ], dim=1)
    assert x.shape[1] == IN_CHANNELS

    keep_a = ((alpha - cfg.hole_alpha) / (cfg.keep_alpha - cfg.hole_alpha)).clamp(0, 1)
    keep_f = ((cfg.detail_px - fp) / (cfg.detail_px - cfg.sharp_px)).clamp(0, 1)
    if any(v.footprint is None for v in views):  # no footprint: nothing is too blurry to keep
        keep_f = torch.cat([keep_f[i:i + 1] if v.footprint is not None else torch.ones_like(fp[i:i + 1])
                            for i, v in enumerate(views)])
    anchor_rgb = None
    if cfg.anchor > 0 and all(v.ground_anchor is not None for v in views):
        anchor_rgb = torch.stack([anchor_colour(v.ground_anchor, e[0] - float(v.horizon_elev_deg)).permute(2, 0, 1)
                                  for v, e in zip(views, elev)])
    texture = texture_energy = None
    if cfg.texture > 0 and all(v.ground_texture is not None for v in views):
        laid = [texture_transfer(v.ground_texture, e[0] - float(v.horizon_elev_deg), n[0])
                for v, e, n in zip(views, elev, noise)]
        texture = torch.stack([d.permute(2, 0, 1) for d, _ in laid])
        texture_energy = torch.stack([en for _, en in laid])[:, None]
    batch = ViewBatch(scene_rgb=scene_rgb, alpha=alpha, ld_in=ld_in, ref=ref, keep_a=keep_a, keep=keep_a * keep_f,
                      base_rgb=base_rgb, ground_rgb=ground_rgb, base_ld=base_ld, base_sky=base_sky, sky_known=sky_known,
                      anchor_rgb=anchor_rgb, texture=texture, texture_energy=texture_energy,
                      above_horizon=elev > horizon)
    return x, batch


def bounded_residual(res: Tensor, config: LearnedRefinerConfig, covered: Tensor | None = None) -> Tensor:
    """The colour residual [B, 3, H, W] with its low-frequency part (8x8-block means, bilinearly
    upsampled) soft-clipped to +-`max_shift` and the rest to +-`max_detail` (tanh; 0 = no bound).
    `covered` [B, 1, H, W] in [0, 1] (the coverage weight keep_a) scales the low-frequency part by
    1 - covered when `max_shift` > 0 or `pin_covered`. Identity when both bounds are 0 and nothing is
    pinned; near-identity for residuals well inside the bounds on uncovered pixels."""
    pin = covered is not None and (config.max_shift > 0 or config.pin_covered)
    if config.max_shift <= 0 and config.max_detail <= 0 and not pin:
        return res
    H, W = res.shape[-2:]
    low = torch.nn.functional.adaptive_avg_pool2d(res, (max(1, H // 8), max(1, W // 8)))
    low = torch.nn.functional.interpolate(low, size=(H, W), mode="bilinear", align_corners=False)
    high = res - low

    def soft(x: Tensor, bound: float) -> Tensor:
        return bound * torch.tanh(x / bound) if bound > 0 else x

    low = soft(low, config.max_shift)
    if pin:
        low = low * (1 - covered)
    return low + soft(high, config.max_detail)


def anchor_pull(rgb: Tensor, anchor: Tensor, weight: Tensor) -> Tensor:
    """weight * (anchor - the local mean of rgb), [B, 3, H, W]: the local mean is over `weight` [B, 1, H, W]
    (generated ground) in a window of about 24 pixels (means of 8 x 8 blocks, a 3 x 3 box over them,
    upsampled bilinearly), so only low frequencies move and neither sky nor the world's own pixels bias
    it; 0 where the window holds no weight. Never reads the device."""
    F = torch.nn.functional
    H, W = rgb.shape[-2:]
    cells = (max(1, H // 8), max(1, W // 8))
    num = F.avg_pool2d(F.adaptive_avg_pool2d(rgb * weight, cells), 3, 1, 1, count_include_pad=False)
    den = F.avg_pool2d(F.adaptive_avg_pool2d(weight, cells), 3, 1, 1, count_include_pad=False)
    low = F.interpolate(num / den.clamp_min(1e-4), size=(H, W), mode="bilinear", align_corners=False)
    have = (F.interpolate(den, size=(H, W), mode="bilinear", align_corners=False) > 1e-3).float()
    return weight * have * (anchor - low)


def local_detail(rgb: Tensor) -> Tensor:
    """[B, 3, H, W] -> [B, 1, H, W]: the mean |grey detail| (`detail_layer` of the channel mean) in a
    15-pixel window (edges not padded in)."""
    grey = rgb.mean(1, keepdim=True)
    d = detail_layer(grey.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).abs()
    return torch.nn.functional.avg_pool2d(d, 15, 1, 7, count_include_pad=False)


def compose(batch: ViewBatch, out: Tensor, config: LearnedRefinerConfig = LearnedRefinerConfig()) -> Composed:
    """Combine the network's output [B, 5, H, W] with the views (see the module docstring)."""
    b = batch
    out = out.float()
    sky_logit = out[:, 4:5] + config.sky_prior * (2 * b.base_sky.float() - 1)
    dome = b.sky_known > 0.5
    net_sky = sky_logit > 0
    if b.above_horizon is not None:  # new sky only above the photo's horizon, as the classical refiner's (below it, a
        net_sky = net_sky & b.above_horizon  # hole the network took for sky went into the dome and stayed sky for good)
    sky = (net_sky | dome) & (b.alpha < config.hole_alpha)
    # Uncovered pixels the network calls ground where the classical refiner says sky start from the classical
    # hole fill, not from its sky colour (ground painted sky-blue would be lifted into the world and kept).
    base = torch.where(b.base_sky & ~sky, b.ground_rgb, b.base_rgb)
    rgb = b.keep * b.scene_rgb + (1 - b.keep) * (base + bounded_residual(out[:, 0:3], config, b.keep_a))
    ground = (~sky).float()
    if config.anchor > 0 and b.anchor_rgb is not None:  # generated ground: its low frequencies towards the photo's
        rgb = rgb + config.anchor * anchor_pull(rgb, b.anchor_rgb, (1 - b.keep_a) * ground)
    if config.texture > 0 and b.texture is not None:  # generated ground short of the photo's detail: the photo's
        # independent detail adds in quadrature (mean |detail| goes with its standard deviation): the share of the
        # photo's detail that brings local detail l up to the photo's E is sqrt(1 - (l / E)^2), not 1 - l / E
        # (a rule, not learned: no gradient through the share, whose slope is unbounded where l reaches E)
        short = (local_detail(rgb) / b.texture_energy.clamp_min(1e-4)).detach()
        missing = (1 - short.square()).clamp(0, 1).sqrt()
        rgb = rgb + config.texture * (1 - b.keep) * ground * missing * b.texture
    # Sky colour is the sky component's (the dome where it knows the direction, else the classical
    # horizon fill): the network decides where sky is, not what it looks like. (A residual there made
    # the sky at the dome's edge 12 dB worse on held-out flights: docs/refiner.md.)
    rgb = torch.where(sky & (dome | (b.base_sky > 0.5)), b.base_rgb, rgb).clamp(0, 1)
    net_ld = b.base_ld + out[:, 3:4]
    gen_ld = b.base_ld + torch.clamp(out[:, 3:4], max=math.log(config.max_nearer))
    log_disp = b.keep_a * b.ld_in + (1 - b.keep_a) * gen_ld
    return Composed(rgb=rgb, log_disp=log_disp, sky=sky, sky_logit=sky_logit, net_log_disp=net_ld)


class LearnedRefiner:
    """`Refiner` backed by a trained `RefinerNet` (bf16 autocast on CUDA, float32 and channels_last on CPU: 59 -> 47 ms
    a 256x256 view on 2 cores, scripts/bench_nets.py 2026-12-04; on CUDA channels_last gained nothing at 512x512).

    Args:
        net: the network (moved to `device`, eval mode).
        config: how its output is composed with the view.
        device: where it runs (the views' device).
        seed: seed of the noise channel (the same flight gives the same frames).
        name: shown in run.json.

    `weights` is the file it was loaded from (None when built from a network in memory), recorded beside the name in
    run.json and the compare report's metrics (a name's weights change when new ones ship).
    """

    def __init__(self, net: RefinerNet, config: LearnedRefinerConfig = LearnedRefinerConfig(),
                 device: torch.device | str = "cpu", seed: int = 0, name: str = "learned"):
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.net = net.to(self.device).eval().to(memory_format=self.memory_format)
        self.config = config
        self.name = name
        self.weights: str | None = None
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(seed)
        self._graphs = GraphCache(keep_functions=False)  # its graphs read only this refiner's state

    @staticmethod
    def load(path: str | Path = DEFAULT_WEIGHTS, device: torch.device | str = "cpu", seed: int = 0) -> "LearnedRefiner":
        """Load weights written by `save_weights` (or a training checkpoint). ValueError with a
        one-line reason for a missing or foreign file."""
        net, cfg, _meta = load_weights(path)
        shipped = {file: name for name, file in SHIPPED_WEIGHTS.items()}
        name = shipped.get(Path(path).resolve(), f"learned:{Path(path).name}")
        refiner = LearnedRefiner(net, cfg, device, seed=seed, name=name)
        refiner.weights = str(path)
        return refiner

    @torch.no_grad()
    def __call__(self, view: RenderedView) -> Frame:
        """The refined Frame of `view` (on CUDA: replayed as a CUDA graph, refine/graphed.py)."""
        H, W = view.alpha.shape
        noise = torch.rand((1, 1, H, W), generator=self._gen, device=self.device) * 2 - 1  # as view_inputs draws it
        if graphs_wanted(view):
            return refine_graphed(self._graphs, view, self._frame_tensors, (noise,))
        rgb, depth, sky = self._frame_tensors(view, noise)
        return Frame(rgb=rgb, depth=depth, sky=sky, camera=view.camera)

    def _frame_tensors(self, view: RenderedView, noise: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(rgb [H, W, 3], depth [H, W], sky [H, W]) of `view` refined with the noise channel `noise` [1, 1, H, W]."""
        x, batch = view_inputs([view], self.config, noise=noise)
        x = x.contiguous(memory_format=self.memory_format)
        # no autocast weight cache: a cached cast would be captured as a stale constant
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda",
                            cache_enabled=False):
            if self.config.flip_average:
                both = self.net(torch.cat([x, x.flip(-1)]))
                out = (both[:1] + both[1:].flip(-1)) / 2
            else:
                out = self.net(x)
        c = compose(batch, out.contiguous(), self.config)
        return c.rgb[0].permute(1, 2, 0), c.depth()[0], c.sky[0, 0]


def save_weights(path: str | Path, net: RefinerNet, config: LearnedRefinerConfig, meta: dict | None = None,
                 half: bool = True) -> None:
    """Write the network's weights (float16 unless `half` is False) with both configs and `meta`,
    atomically (temp file, then rename)."""
    save_net_blob(path, net, WEIGHTS_FORMAT, {"refiner_config": asdict(config)}, meta, half)


def load_weights(path: str | Path) -> tuple[RefinerNet, LearnedRefinerConfig, dict]:
    """(network in float32, composition config, meta) from a weights file or a training checkpoint;
    ValueError with a one-line reason otherwise (also for a saved composition out of range, e.g. an anchor of 5
    given to training before its options were checked)."""
    net, blob = load_net_blob(path, WEIGHTS_FORMAT, "refiner weights", "refiner", RefinerNet)
    try:
        cfg = LearnedRefinerConfig(**blob["refiner_config"])
        check(cfg, prefix="refiner_config.")
    except (TypeError, UserInputError) as e:
        raise ValueError(f"{path}: its saved composition is not usable: {e}") from None
    return net, cfg, dict(blob.get("meta", {}))
