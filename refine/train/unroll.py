"""One training sample = the real generator loop unrolled over a procedural clip.

For each clip: frame 0 is the clip's first true frame (rgb, exact depth, sky), a persistent or
per-frame generator is built on it with the project's own renderer, lifting and sky dome
(worldgen.generator), and the network refines the generators' views step after step. All B clips
advance together, so each step's B views go through the network as one batch. The first `warm`
steps run without gradients (so the network also sees worlds it has built over longer flights);
the next T steps are supervised by the true frames, with gradients through all of them (the
renderer is differentiable in the Gaussians' means and colours, which are lifted from the
network's previous outputs).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from refine.learned import Composed, LearnedRefinerConfig, ViewBatch, compose, view_inputs
from refine.train.data import ClipBatch
from worldgen.core.camera import Camera
from worldgen.core.frame import Frame
from worldgen.pipeline.generator import GeneratorConfig, make_generator


@dataclass
class StepResult:
    """One supervised step of all clips: what the network made, what it saw, and the truth.

    Attributes:
        out: Composed refined frames (rgb [B, 3, H, W], log_disp, sky, ...).
        views: ViewBatch of the rendered inputs.
        gt_rgb: [B, 3, H, W]; gt_depth: [B, 1, H, W] (+inf sky); gt_sky: [B, 1, H, W] bool.
        x: [B, 11, H, W] the network's input (refine.learned.view_inputs), noise channel included.
    """

    out: Composed
    views: ViewBatch
    gt_rgb: Tensor
    gt_depth: Tensor
    gt_sky: Tensor
    x: Tensor | None = None


class GradProbe:
    """Which stages of an unroll received non-finite gradients in the backward pass (diagnosis).

    `watch(stage, tensor)` hooks a tensor that requires grad; after `backward`, `bad` holds the stages
    ("world", "render", "input", "net_out", "composed") where some gradient was not finite. Reading
    the gradient's finiteness waits for the device at every hook: for diagnosis only."""

    STAGES = ("world", "render", "input", "net_out", "composed")

    def __init__(self):
        self.bad: set[str] = set()

    def watch(self, stage: str, *tensors: Tensor | None) -> None:
        for t in tensors:
            if t is not None and t.requires_grad:
                t.register_hook(lambda g, s=stage: self.bad.add(s) if not bool(torch.isfinite(g).all()) else None)


def unroll(net, clips: ClipBatch, modes: list[str], warm: int, steps: int, renderer,
           refiner_cfg: LearnedRefinerConfig, gen_cfg: GeneratorConfig = GeneratorConfig(),
           autocast: bool = False, grad_through_world: bool = True, train: bool = True,
           probe: GradProbe | None = None) -> list[StepResult]:
    """Run the generators over `clips` (L >= warm + steps + 1 frames) and return the T supervised steps.

    Args:
        net: the RefinerNet (or a wrapper with the same call).
        modes: per clip, "persistent" or "per-frame".
        warm: unsupervised steps first (no gradients).
        steps: supervised steps T.
        renderer: the project's Renderer for the clips' device.
        autocast: run the network in bfloat16 (CUDA).
        grad_through_world: False builds the worlds without gradients (each step's loss then trains
            only that step's network pass).
        train: False runs everything without gradients (the replay buffer's fills,
            refine/train/replay.py); the results then carry no graph.
        probe: a GradProbe to hook the supervised steps' tensors into (None: no hooks).
    """
    B, L, H, W = clips.depth.shape
    if L < warm + steps + 1:
        raise ValueError(f"clips have {L} frames, need warm + steps + 1 = {warm + steps + 1}")
    dev = clips.depth.device
    cams = [[Camera(K=clips.K[b], c2w=clips.c2w[b, t], width=W, height=H) for t in range(L)] for b in range(B)]
    gens = []
    for b in range(B):
        d0 = clips.depth[b, 0]
        first = Frame(rgb=clips.rgb[b, 0], depth=d0, sky=~torch.isfinite(d0), camera=cams[b][0])
        gens.append(make_generator(modes[b], first, renderer, refiner=None, config=gen_cfg, time_stages=False))
    results = []
    amp = torch.autocast(device_type=dev.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    for t in range(1, warm + steps + 1):
        grad = t > warm and train
        with torch.set_grad_enabled(grad and grad_through_world):
            views = [g.begin_step(cams[b][t]) for b, g in enumerate(gens)]
            if probe is not None and grad:
                for g in gens:  # the Gaussians this step's render drew
                    probe.watch("world", g.scene.means, g.scene.colors)
            x, vb = view_inputs(views, refiner_cfg)
        with torch.set_grad_enabled(grad):
            with amp:
                y = net(x)
            out = compose(vb, y, refiner_cfg)
        if probe is not None and grad:
            for v in views:
                probe.watch("render", v.rgb, v.alpha, v.depth)
            probe.watch("input", x)
            probe.watch("net_out", y)
            probe.watch("composed", out.rgb, out.log_disp)
        with torch.set_grad_enabled(grad and grad_through_world):
            frames = out.frames(views)
            for g, f, v in zip(gens, frames if grad_through_world else [_detached(f) for f in frames], views):
                g.end_step(f, v)
        if t > warm:
            d = clips.depth[:, t, None]
            results.append(StepResult(out, vb, clips.rgb[:, t].permute(0, 3, 1, 2), d, ~torch.isfinite(d), x))
    return results


def _detached(f: Frame) -> Frame:
    return Frame(rgb=f.rgb.detach(), depth=f.depth.detach(), sky=f.sky, camera=f.camera)


def log_disparity(depth: Tensor) -> Tensor:
    """log(1 / depth) of a z-depth tensor (0 where depth is not finite and positive)."""
    ok = torch.isfinite(depth) & (depth > 0)
    return torch.where(ok, -torch.log(torch.where(ok, depth, torch.ones_like(depth))), torch.zeros_like(depth))


def critic_input(rgb: Tensor, log_disp: Tensor, sky: Tensor, ref: Tensor) -> Tensor:
    """What the discriminator sees [B, 4, H, W]: colour and tanh((log-disparity - ref) / 2), -1 for sky."""
    d = torch.tanh((log_disp - ref) / 2)
    return torch.cat([rgb, torch.where(sky, -torch.ones_like(d), d)], dim=1)


def reconstruction_losses(r: StepResult, refiner_cfg: LearnedRefinerConfig,
                          ssim_grad: bool = True) -> dict[str, Tensor]:
    """Per-step supervised terms (see LossConfig): rgb, mse, neg_psnr (minus the mean PSNR, dB), ssim (1 - SSIM),
    laplacian, detail, colour, disparity, net_disparity, sky. `ssim_grad` False computes ssim without a graph (for the
    log only, when its weight is 0: its eleven-tap convolutions are not free).

    `detail` and `colour` count where the composition lets the network change the colour (1 - keep)."""
    from refine.losses import colour_moments_l1, detail_energy_l1, laplacian_l1, masked_mean
    from worldgen.core.metrics import ssim_map

    o = r.out
    gt_ld = log_disparity(r.gt_depth)
    solid = ~r.gt_sky
    uncovered = r.views.alpha < refiner_cfg.hole_alpha
    err = o.rgb - r.gt_rgb
    mse = err.square().flatten(1).mean(1)  # [B] per frame
    grad = ssim_grad and torch.is_grad_enabled()
    with torch.autocast(o.rgb.device.type, enabled=False), torch.set_grad_enabled(grad):
        ssim = ssim_map(o.rgb.float(), r.gt_rgb.float()).mean()  # (float32: SSIM's variances cancel in bf16)
    return {
        "rgb": err.abs().mean(),
        "mse": mse.mean(),
        "neg_psnr": (10 / math.log(10)) * mse.clamp_min(1e-6).log().mean(),
        "ssim": 1 - ssim,
        "laplacian": laplacian_l1(o.rgb, r.gt_rgb),
        "detail": detail_energy_l1(o.rgb, r.gt_rgb, 1 - r.views.keep),
        "colour": colour_moments_l1(o.rgb, r.gt_rgb, 1 - r.views.keep),
        "disparity": masked_mean((o.log_disp - gt_ld).abs(), solid & ~o.sky),
        "net_disparity": masked_mean((o.net_log_disp - gt_ld).abs(), solid),
        "sky": masked_mean(F.binary_cross_entropy_with_logits(o.sky_logit, r.gt_sky.float(), reduction="none"), uncovered),
    }


@torch.no_grad()
def detail_ratio(a: Tensor, b: Tensor, weight: Tensor) -> float:
    """Finest-band detail of a over that of b [B, 3, H, W], where weight [B, 1, H, W] is set (the
    pixels the network may change): 1 = as much texture as the truth, below 1 = blurrier."""
    from refine.losses import detail_energy

    w = weight.float()
    ea, eb = detail_energy(a, 1)[0], detail_energy(b, 1)[0]
    return float((ea * w).sum() / (eb * w).sum().clamp_min(1e-8))


@torch.no_grad()
def psnr(a: Tensor, b: Tensor) -> float:
    """Mean PSNR (dB) of images a, b [B, 3, H, W] in [0, 1] (each image's MSE floored at 1e-10)."""
    mse = ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((-10 * torch.log10(mse)).mean())


def sample_grid(results: list[StepResult], clip: int = 0) -> "torch.Tensor":
    """uint8 [rows * H, 4 * W, 3]: for one clip, per supervised step a row
    rendered input (scene colour, holes black) | classical refiner | learned refiner | truth."""
    rows = []
    for r in results:
        v = r.views
        shown = (v.scene_rgb * v.alpha)[clip]
        row = torch.cat([shown, v.base_rgb[clip], r.out.rgb[clip], r.gt_rgb[clip]], dim=2)  # [3, H, 4W]
        rows.append(row)
    img = torch.cat(rows, dim=1).detach().float().clamp(0, 1)
    return (img.permute(1, 2, 0) * 255 + 0.5).to(torch.uint8).cpu()

