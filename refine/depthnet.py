"""The built-in depth network: a photo -> depth up to scale, and a sky mask.

`DepthNet` (refine/net.py) maps rgb [B, 3, H, W] in [0, 1] to a log-depth map that is right up to
an additive constant (depth up to a global scale) and a sky logit. It is trained on procedural
frames with exact depth (train seeds only) and self-supervised consistency on real photos
(refine/train/depth.py).

Why log-depth up to scale rather than MiDaS's disparity up to scale *and shift*: a 3D world needs
the shift (it decides how far the mountains are behind the trees), and exact procedural depth lets
the network learn it; only the global scale of a single photo is unknowable. The pipeline turns
the prediction into units with one stated rule (worldgen/pipeline/depth.py, `metric_depth`).

Images: rgb [B, 3, H, W] float in [0, 1]; any size (padded inside the U-Net).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from refine.net import DepthNet, RefinerNetConfig, load_net_blob, save_net_blob
from worldgen.core.fill import detect_sky, grow_region

DEPTH_FORMAT = "worldgen-depth/1"
DEFAULT_DEPTH_WEIGHTS = Path(__file__).resolve().parent / "weights" / "depth.pt"
FIDELITY_DEPTH_WEIGHTS = Path(__file__).resolve().parent / "weights" / "depth-fidelity.pt"
"""The weights of `--depth-model learned-fidelity` (since 2026-12-05, eighth session): the shipped network trained
15,151 steps further on forest-floor walks, gorges and clouds with the real photos' layout and sky held to it
(refine/weights/depth-fidelity.json). Nearer the procedural truth everywhere held out (the walks and gorges most:
trees and walls stand up), and its 300-frame flights over the real photos keep their detail and colour less often
than with `learned` (a cliff read as near is flown into), so it is a choice, not the default. It is also the
checkpoint a continuation of that run starts from."""
SHIPPED_DEPTH_WEIGHTS = {"learned": DEFAULT_DEPTH_WEIGHTS, "learned-fidelity": FIDELITY_DEPTH_WEIGHTS}
"""The shipped depth networks by their `--depth-model` name."""
DEPTH_NET = RefinerNetConfig(widths=(24, 48, 96, 160, 256), bottleneck_blocks=3, global_code=64)
"""The shipped depth network's shape."""
SKY_GROW = -3.0
"""Sky hysteresis of `LearnedDepthModel`: pixels whose sky logit is > 0 seed the sky, and it grows through the
pixels connected to them whose logit is > SKY_GROW. The network trained on procedural skies is unsure of real
clouds and overcast (logits between -4 and 0 where a photo's sky is cloudy); a plain threshold lower than 0
would also take the unsure rock and trunks that touch no sure sky. Chosen on held-out procedural frames and the
14 photos of ../shared/data/real (BENCHMARKS.md, 2026-12-03 ninth session): drone-frame sky IoU 0.963 -> 0.957,
forest-floor walks 0.26 -> 0.40, winter walks 0.23 -> 0.39, gorges 0.41 -> 0.55."""


def predict(net: DepthNet, rgb: Tensor) -> tuple[Tensor, Tensor]:
    """rgb [B, 3, H, W] in [0, 1] -> (log-depth [B, H, W] up to a constant, sky logit [B, H, W])."""
    y = net(rgb * 2 - 1).float()
    return y[:, 0], y[:, 1]


class LearnedDepthModel:
    """The depth network ready to run: `(rgb [H, W, 3] in [0, 1]) -> (log-depth [H, W], sky [H, W] bool)`.

    Runs at the image's size in channels_last (bf16 autocast on CUDA; 5.1 -> 3.2 ms at 512x512 on one H200, 110 ->
    86 ms at 256x256 on 2 CPU cores: scripts/bench_nets.py, 2026-12-04). The log-depth is defined up to a constant.
    The sky mask is the network's sky logit read with hysteresis: > 0 seeds it, and it takes every pixel connected
    to a seed whose logit is > `sky_grow` (`SKY_GROW`; 0: logit > 0 alone, the mask before 2026-12-03).
    Two variants for scripts/eval_depth.py, tried 2026-12-04 and not used by flights (BENCHMARKS.md, eighth session):
    `sky_clear` (a logit <= 0; None: off): sky by colour (`detect_sky`: bright, smooth, connected to the top
    border) joins the mask where the network's logit is above it, also where it touches none of the network's
    sure sky; `flip`: the log-depth and sky logit averaged over the image and its
    mirror image (twice the cost)."""

    def __init__(self, net: DepthNet, device: torch.device | str = "cpu", sky_grow: float = SKY_GROW,
                 flip: bool = False, sky_clear: float | None = None):
        if not sky_grow <= 0:
            raise ValueError(f"sky_grow must be <= 0 (a logit below the seeds' 0), got {sky_grow}")
        if sky_clear is not None and not sky_clear <= 0:
            raise ValueError(f"sky_clear must be <= 0 (a logit below the seeds' 0) or None, got {sky_clear}")
        self.device = torch.device(device)
        self.net = net.to(self.device).eval().to(memory_format=torch.channels_last)
        self.sky_grow = float(sky_grow)
        self.flip = bool(flip)
        self.sky_clear = None if sky_clear is None else float(sky_clear)

    @staticmethod
    def load(path: str | Path = DEFAULT_DEPTH_WEIGHTS, device: torch.device | str = "cpu",
             sky_grow: float = SKY_GROW, flip: bool = False, sky_clear: float | None = None) -> "LearnedDepthModel":
        net, _ = load_depth_weights(path)
        return LearnedDepthModel(net, device, sky_grow, flip, sky_clear)

    @torch.no_grad()
    def __call__(self, rgb: Tensor) -> tuple[Tensor, Tensor]:
        log_depth, sky = self.batch(rgb.permute(2, 0, 1)[None])
        return log_depth[0], sky[0]

    @torch.no_grad()
    def batch(self, rgb: Tensor) -> tuple[Tensor, Tensor]:
        """A batch at once: rgb [B, 3, H, W] in [0, 1] -> (log-depth [B, H, W] float32, sky [B, H, W] bool)."""
        log_depth, sky_logit = self.logits(rgb)
        sky = sky_mask(sky_logit, self.sky_grow)
        if self.sky_clear is not None:  # clear sky by colour where the network is not sure it is not sky
            clear = torch.stack([detect_sky(im.permute(1, 2, 0).to(self.device).float()) for im in rgb])
            sky |= clear & (sky_logit > self.sky_clear)
        return log_depth, sky

    @torch.no_grad()
    def logits(self, rgb: Tensor) -> tuple[Tensor, Tensor]:
        """rgb [B, 3, H, W] in [0, 1] -> (log-depth [B, H, W], sky logit [B, H, W]), float32 on `device`."""
        x = rgb.to(self.device).float().contiguous(memory_format=torch.channels_last)
        if self.flip:
            x = torch.cat([x, x.flip(-1)])
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            log_depth, sky_logit = predict(self.net, x)
        if self.flip:
            B = x.shape[0] // 2
            log_depth = (log_depth[:B].float() + log_depth[B:].float().flip(-1)) / 2
            sky_logit = (sky_logit[:B].float() + sky_logit[B:].float().flip(-1)) / 2
        return log_depth.float().contiguous(), sky_logit.float().contiguous()


def sky_mask(sky_logit: Tensor, grow: float = SKY_GROW) -> Tensor:
    """Sky [..., H, W] bool from sky logits [..., H, W]: logit > 0, grown through connected pixels whose
    logit is > `grow` (<= 0; 0 gives logit > 0 alone). See `SKY_GROW`."""
    seed = sky_logit > 0
    if grow >= 0:
        return seed
    return grow_region(seed, sky_logit > grow)


def save_depth_weights(path: str | Path, net: DepthNet, meta: dict | None = None, half: bool = True) -> None:
    """Write the depth network's weights (float16 unless `half` is False) with its shape and `meta`, atomically."""
    save_net_blob(path, net, DEPTH_FORMAT, meta=meta, half=half)


def load_depth_weights(path: str | Path) -> tuple[DepthNet, dict]:
    """(network in float32, meta) from a depth weights file or a depth training checkpoint;
    ValueError with a one-line reason otherwise."""
    net, blob = load_net_blob(path, DEPTH_FORMAT, "depth weights", "depth", DepthNet)
    return net, dict(blob.get("meta", {}))
