"""The built-in depth network: a photo -> depth up to scale, and a sky mask.

`DepthNet` (refine/net.py) maps rgb [B, 3, H, W] in [0, 1] to a log-depth map that is right up to
an additive constant (depth up to a global scale) and a sky logit. It is trained on procedural
frames with exact depth (train seeds only) and self-supervised consistency on real photos
(refine/train/depth.py).

Why log-depth up to scale rather than MiDaS's disparity up to scale *and shift*: a 3D world needs
the shift (it decides how far the mountains are behind the trees), and exact procedural depth lets
the network learn it; only the global scale of a single photo is unknowable. The pipeline turns
the prediction into units with one stated rule (worldgen/depth.py, `metric_depth`).

Images: rgb [B, 3, H, W] float in [0, 1]; any size (padded inside the U-Net).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor

from refine.net import DepthNet, RefinerNetConfig

DEPTH_FORMAT = "worldgen-depth/1"
DEFAULT_DEPTH_WEIGHTS = Path(__file__).resolve().parent / "weights" / "depth.pt"
DEPTH_NET = RefinerNetConfig(widths=(24, 48, 96, 160, 256), bottleneck_blocks=3, global_code=64)
"""The shipped depth network's shape."""


def predict(net: DepthNet, rgb: Tensor) -> tuple[Tensor, Tensor]:
    """rgb [B, 3, H, W] in [0, 1] -> (log-depth [B, H, W] up to a constant, sky logit [B, H, W])."""
    y = net(rgb * 2 - 1).float()
    return y[:, 0], y[:, 1]


class LearnedDepthModel:
    """The depth network ready to run: `(rgb [H, W, 3] in [0, 1]) -> (log-depth [H, W], sky [H, W] bool)`.

    Runs at the image's size (bf16 autocast on CUDA). The log-depth is defined up to a constant."""

    def __init__(self, net: DepthNet, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()

    @staticmethod
    def load(path: str | Path = DEFAULT_DEPTH_WEIGHTS, device: torch.device | str = "cpu") -> "LearnedDepthModel":
        net, _ = load_depth_weights(path)
        return LearnedDepthModel(net, device)

    @torch.no_grad()
    def __call__(self, rgb: Tensor) -> tuple[Tensor, Tensor]:
        x = rgb.to(self.device).permute(2, 0, 1)[None].float()
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            log_depth, sky_logit = predict(self.net, x)
        return log_depth[0].float(), sky_logit[0] > 0


def save_depth_weights(path: str | Path, net: DepthNet, meta: dict | None = None, half: bool = True) -> None:
    """Write the depth network's weights (float16 unless `half` is False) with its shape and `meta`, atomically."""
    from worldgen.core.io import atomic_write

    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu() for k, v in net.state_dict().items()}
    with atomic_write(Path(path)) as f:
        torch.save({"format": DEPTH_FORMAT, "net_config": asdict(net.config), "state_dict": state, "meta": meta or {}}, f)


def load_depth_weights(path: str | Path) -> tuple[DepthNet, dict]:
    """(network in float32, meta) from a depth weights file or a depth training checkpoint;
    ValueError with a one-line reason otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such depth weights file: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (pickle, zip and torch errors all mean "not a weights file")
        raise ValueError(f"{path} is not a worldgen depth weights file ({type(e).__name__})") from None
    if isinstance(blob, dict) and isinstance(blob.get("depth"), dict):
        blob = blob["depth"]  # a training checkpoint holds one under "depth"
    if not isinstance(blob, dict) or blob.get("format") != DEPTH_FORMAT:
        raise ValueError(f"{path} is not a worldgen depth weights file (format {DEPTH_FORMAT!r} expected)")
    nc = dict(blob["net_config"])
    nc["widths"] = tuple(nc["widths"])
    net = DepthNet(RefinerNetConfig(**nc))
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()})
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit the network they describe ({str(e).splitlines()[0]})") from None
    return net, dict(blob.get("meta", {}))
