"""The learned refiner: RenderedView -> network -> Frame, keeping what the world already holds.

Inputs (`view_inputs`, 13 channels, in this order, all `[B, 1 or 3, H, W]`):
    0-2  the scene's colour, un-premultiplied (rgb / alpha; 0 where alpha < 1e-3)
    3    the scene's alpha (coverage)
    4    normalised log-disparity: log(1/depth) - ref, where ref is the alpha-weighted mean of the
         covered pixels' log-disparity (so the network never sees the scene's units); 0 uncovered
    5    log2 of the rendered footprint (Gaussian size in pixels), clipped to [-2, 4], / 4; 0 uncovered
    6-8  the sky dome's colour times its known-mask
    9    the sky dome's known-mask
    10   sin(elevation) of the pixel's ray (world up = -y)
    11   (elevation - the photo's horizon elevation) / 30 degrees, clipped to [-2, 2]
    12   uniform noise in [-1, 1] (texture for what has to be invented)

Outputs (`RefinerNet`): an RGB residual, a normalised log-disparity and a sky logit per pixel.

Composition (`compose`, the same in training and inference), with
    k_a  = clamp((alpha - hole_alpha) / (keep_alpha - hole_alpha), 0, 1)   covered
    k_f  = clamp((detail_px - footprint) / (detail_px - sharp_px), 0, 1)   sharp enough
    keep = k_a * k_f
- colour: keep * scene colour + (1 - keep) * (base + residual), base = the scene over the known sky.
  Covered, well-resolved pixels are returned exactly (the world is not repainted: loop closure);
  holes are generated; blurry close-ups (footprint > sharp_px) are re-synthesised.
- sky: uncovered pixels (alpha < hole_alpha) with a positive sky logit; their colour is the dome's
  where it has seen that direction (rotation-only, so it stays put), the network's elsewhere.
- depth (log-disparity): k_a * rendered + (1 - k_a) * (network + s), where s is the alpha-weighted
  mean of (rendered - network) over covered pixels: Infinite Nature's log-space rescaling, which
  anchors generated depth to the world's scale so the persistent world does not drift.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from refine.net import IN_CHANNELS, RefinerNet, RefinerNetConfig
from worldgen.frame import Frame, RenderedView

WEIGHTS_FORMAT = "worldgen-refiner/1"
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "refiner.pt"


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
    noise: bool = True
    """Feed a noise channel (off: zeros; for deterministic tests of the composition)."""


@dataclass
class ViewBatch:
    """B rendered views stacked channel-first (all [B, C, H, W] float32 on one device).

    Attributes:
        scene_rgb: [B, 3, H, W] un-premultiplied scene colour (0 where alpha < 1e-3).
        rgb_p: [B, 3, H, W] premultiplied scene colour.
        alpha: [B, 1, H, W].
        ld_in: [B, 1, H, W] rendered log-disparity (0 where alpha < 1e-3).
        ref: [B, 1, 1, 1] reference log-disparity (alpha-weighted mean over covered pixels).
        keep_a, keep: [B, 1, H, W] coverage weight and coverage x sharpness weight (see module doc).
        sky_rgb: [B, 3, H, W] sky dome colour (0 where unknown); sky_known: [B, 1, H, W].
    """

    scene_rgb: Tensor
    rgb_p: Tensor
    alpha: Tensor
    ld_in: Tensor
    ref: Tensor
    keep_a: Tensor
    keep: Tensor
    sky_rgb: Tensor
    sky_known: Tensor


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
                generator: torch.Generator | None = None) -> tuple[Tensor, ViewBatch]:
    """Stack B rendered views (same size, one device) into the network's input [B, 13, H, W].

    `generator` draws the noise channel (None: the global RNG). Returns (inputs, ViewBatch)."""
    cfg = config
    cf = lambda t: t.permute(2, 0, 1)  # noqa: E731  [H, W, C] -> [C, H, W]
    rgb_p = torch.stack([cf(v.rgb) for v in views])
    alpha = torch.stack([v.alpha for v in views])[:, None]
    depth = torch.stack([v.depth for v in views])[:, None]
    fp = torch.stack([v.footprint if v.footprint is not None else torch.zeros_like(v.alpha) for v in views])[:, None]
    sky_known = torch.stack([v.sky_known for v in views])[:, None]
    sky_rgb = torch.stack([cf(v.sky_rgb) for v in views]) * (sky_known > 0)
    elev = torch.stack([_elevation_deg(v) for v in views])[:, None]
    horizon = torch.tensor([v.horizon_elev_deg for v in views], device=alpha.device, dtype=alpha.dtype)[:, None, None, None]

    seen = alpha > 1e-3
    scene_rgb = torch.where(seen, rgb_p / alpha.clamp_min(1e-3), torch.zeros_like(rgb_p)).clamp(0, 1)
    ld_in = torch.where(seen & (depth > 0), -torch.log(depth.clamp_min(1e-12)), torch.zeros_like(depth))
    w = torch.where(alpha >= cfg.hole_alpha, alpha, torch.zeros_like(alpha))
    wsum = w.sum(dim=(1, 2, 3), keepdim=True)
    ref = torch.where(wsum > 0, (w * ld_in).sum(dim=(1, 2, 3), keepdim=True) / wsum.clamp_min(1e-12), torch.zeros_like(wsum))
    ld_norm = torch.where(seen, (ld_in - ref).clamp(-4, 4), torch.zeros_like(ld_in))
    log_fp = torch.where(seen, torch.log2(fp.clamp_min(0.25)).clamp(-2, 4) / 4, torch.zeros_like(fp))
    noise = (torch.rand(alpha.shape, generator=generator, device=alpha.device) * 2 - 1) if cfg.noise else torch.zeros_like(alpha)
    x = torch.cat([
        scene_rgb, alpha, ld_norm, log_fp, sky_rgb, sky_known,
        torch.sin(torch.deg2rad(elev)), ((elev - horizon) / 30.0).clamp(-2, 2), noise,
    ], dim=1)
    assert x.shape[1] == IN_CHANNELS

    keep_a = ((alpha - cfg.hole_alpha) / (cfg.keep_alpha - cfg.hole_alpha)).clamp(0, 1)
    has_fp = torch.tensor([v.footprint is not None for v in views], device=alpha.device)[:, None, None, None]
    keep_f = torch.where(has_fp, ((cfg.detail_px - fp) / (cfg.detail_px - cfg.sharp_px)).clamp(0, 1), torch.ones_like(fp))
    batch = ViewBatch(scene_rgb=scene_rgb, rgb_p=rgb_p, alpha=alpha, ld_in=ld_in, ref=ref, keep_a=keep_a,
                      keep=keep_a * keep_f, sky_rgb=sky_rgb, sky_known=sky_known)
    return x, batch


def compose(batch: ViewBatch, out: Tensor, config: LearnedRefinerConfig = LearnedRefinerConfig()) -> Composed:
    """Combine the network's output [B, 5, H, W] with the views (see the module docstring)."""
    b = batch
    out = out.float()
    base = b.rgb_p + (1 - b.alpha) * b.sky_known * b.sky_rgb
    net_rgb = base + out[:, 0:3]
    rgb_obj = b.keep * b.scene_rgb + (1 - b.keep) * net_rgb
    sky_col = b.sky_known * b.sky_rgb + (1 - b.sky_known) * net_rgb
    rgb_sky = b.rgb_p + (1 - b.alpha) * sky_col
    sky_logit = out[:, 4:5]
    sky = (sky_logit > 0) & (b.alpha < config.hole_alpha)
    rgb = torch.where(sky, rgb_sky, rgb_obj).clamp(0, 1)

    net_ld = out[:, 3:4] + b.ref
    w = b.keep_a
    wsum = w.sum(dim=(1, 2, 3), keepdim=True)
    shift = torch.where(wsum > 0, (w * (b.ld_in - net_ld)).sum(dim=(1, 2, 3), keepdim=True) / wsum.clamp_min(1e-12),
                        torch.zeros_like(wsum))
    log_disp = b.keep_a * b.ld_in + (1 - b.keep_a) * (net_ld + shift)
    return Composed(rgb=rgb, log_disp=log_disp, sky=sky, sky_logit=sky_logit, net_log_disp=net_ld + shift)


class LearnedRefiner:
    """`Refiner` backed by a trained `RefinerNet` (bf16 autocast on CUDA, float32 on CPU).

    Args:
        net: the network (moved to `device`, eval mode).
        config: how its output is composed with the view.
        device: where it runs (the views' device).
        seed: seed of the noise channel (the same flight gives the same frames).
        name: shown in run.json.
    """

    def __init__(self, net: RefinerNet, config: LearnedRefinerConfig = LearnedRefinerConfig(),
                 device: torch.device | str = "cpu", seed: int = 0, name: str = "learned"):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.config = config
        self.name = name
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(seed)

    @staticmethod
    def load(path: str | Path = DEFAULT_WEIGHTS, device: torch.device | str = "cpu", seed: int = 0) -> "LearnedRefiner":
        """Load weights written by `save_weights` (or a training checkpoint). ValueError with a
        one-line reason for a missing or foreign file."""
        net, cfg, _meta = load_weights(path)
        name = "learned" if Path(path).resolve() == DEFAULT_WEIGHTS else f"learned:{Path(path).name}"
        return LearnedRefiner(net, cfg, device, seed=seed, name=name)

    @torch.no_grad()
    def __call__(self, view: RenderedView) -> Frame:
        x, batch = view_inputs([view], self.config, self._gen)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            out = self.net(x)
        return compose(batch, out, self.config).frames([view])[0]


def save_weights(path: str | Path, net: RefinerNet, config: LearnedRefinerConfig, meta: dict | None = None,
                 half: bool = True) -> None:
    """Write the network's weights (float16 unless `half` is False) with both configs and `meta`,
    atomically (temp file, then rename)."""
    from worldgen.io import atomic_write

    state = {k: (v.half() if half and v.is_floating_point() else v).cpu() for k, v in net.state_dict().items()}
    blob = {"format": WEIGHTS_FORMAT, "net_config": asdict(net.config), "refiner_config": asdict(config),
            "state_dict": state, "meta": meta or {}}
    with atomic_write(Path(path)) as f:
        torch.save(blob, f)


def load_weights(path: str | Path) -> tuple[RefinerNet, LearnedRefinerConfig, dict]:
    """(network in float32, composition config, meta) from a weights file or a training checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such refiner weights file: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (pickle, zip and torch errors all mean "not a weights file")
        raise ValueError(f"{path} is not a worldgen refiner weights file ({type(e).__name__})") from None
    if isinstance(blob, dict) and "refiner" in blob and isinstance(blob["refiner"], dict):
        blob = blob["refiner"]  # a training checkpoint holds one under "refiner"
    if not isinstance(blob, dict) or blob.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path} is not a worldgen refiner weights file (format {WEIGHTS_FORMAT!r} expected)")
    nc = dict(blob["net_config"])
    nc["widths"] = tuple(nc["widths"])
    net = RefinerNet(RefinerNetConfig(**nc))
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit the network they describe ({str(e).splitlines()[0]})") from None
    return net, LearnedRefinerConfig(**blob["refiner_config"]), dict(blob.get("meta", {}))
