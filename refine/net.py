"""The project's networks: one small U-Net with a global code, fully convolutional.

`RefinerNet` (the learned refiner) and `DepthNet` (the photo's depth) are two instances of `UNet`.

It sees the rendered view at a new pose (colour, coverage, disparity, footprint, the sky dome and
the ray's elevation; `refine/learned.py` assembles those channels) and predicts, per pixel, an
RGB residual, a normalised log-disparity and a sky logit. `refine/learned.py` turns that into a
Frame, keeping what the world already holds.

Design (why it looks like this):
- Infinite Nature uses a SPADE generator at 160x256 and InfiniteNature-Zero a CoModGAN-style
  encoder-decoder with a global style code at 128^2. Both are far above our budget (<= 5 ms at 512^2
  on one H200, <= 0.3 s at 256^2 on 2 CPU cores), so this is a 5-level U-Net (full, 1/2 .. 1/16
  resolution) with residual blocks, and a global code (mean-pooled bottleneck -> MLP -> per-channel
  scale and bias on the decoder, the "co-modulation" idea in its cheapest form) so large holes and
  the sky can use the whole image's context.
- Any size and aspect: inputs are padded to a multiple of 16 inside `forward` and cropped back.
- No normalisation layers (per-image statistics would leak between covered and hole pixels);
  residual branches start at zero, so a fresh network is a smooth function of its inputs.

Tensors: `[B, C, H, W]` float; see `RefinerNet.forward`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IN_CHANNELS = 11
"""Input channels, assembled by refine.learned.view_inputs (their order is documented there)."""
OUT_CHANNELS = 5
"""Output channels: residuals of RGB (3), log-disparity (1) and the sky logit (1)."""


@dataclass(frozen=True)
class RefinerNetConfig:
    """Width and depth of a U-Net (saved with its weights)."""

    widths: tuple[int, ...] = (16, 32, 64, 128, 192)
    """Channels at full, 1/2, 1/4, 1/8 and 1/16 resolution."""
    bottleneck_blocks: int = 2
    """Residual blocks at the coarsest level (receptive field for large holes)."""
    global_code: int = 64
    """Size of the global code (mean-pooled bottleneck -> MLP) that modulates the decoder; 0 = off."""


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


class ResBlock(nn.Module):
    """x + conv(act(conv(act(x)))), the second conv zero-initialised (a fresh block is the identity)."""

    def __init__(self, c: int):
        super().__init__()
        self.c1 = _conv(c, c)
        self.c2 = _conv(c, c)
        nn.init.zeros_(self.c2.weight)
        nn.init.zeros_(self.c2.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.c2(F.silu(self.c1(F.silu(x))))


class UNet(nn.Module):
    """`forward(x [B, in_channels, H, W]) -> [B, out_channels, H, W]` (any H, W >= 1)."""

    def __init__(self, in_channels: int, out_channels: int, config: RefinerNetConfig = RefinerNetConfig()):
        super().__init__()
        self.config = config
        self.in_channels, self.out_channels = in_channels, out_channels
        w = config.widths
        self.levels = len(w)
        self.stem = _conv(in_channels, w[0])
        self.down = nn.ModuleList([_conv(w[i], w[i + 1], 3, stride=2) for i in range(self.levels - 1)])
        self.enc = nn.ModuleList([ResBlock(w[i + 1]) for i in range(self.levels - 1)])
        self.mid = nn.Sequential(*[ResBlock(w[-1]) for _ in range(config.bottleneck_blocks)])
        self.up_in = nn.ModuleList([_conv(w[i + 1] + w[i], w[i]) for i in range(self.levels - 1)])
        self.up_out = nn.ModuleList([_conv(w[i], w[i]) for i in range(self.levels - 1)])
        g = config.global_code
        if g:
            self.code = nn.Sequential(nn.Linear(w[-1], g), nn.SiLU(), nn.Linear(g, g), nn.SiLU())
            # one (scale, bias) per decoder channel and level, from the global code; zero-init = no modulation
            self.film = nn.ModuleList([nn.Linear(g, 2 * w[i]) for i in range(self.levels - 1)])
            for f in self.film:
                nn.init.zeros_(f.weight)
                nn.init.zeros_(f.bias)
        self.head = _conv(w[0], out_channels)
        nn.init.zeros_(self.head.weight)  # a fresh network outputs zeros ("no change" for the refiner)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, in_channels, H, W]. Returns [B, out_channels, H, W]."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        H, W = x.shape[-2:]
        m = 2 ** (self.levels - 1)
        ph, pw = (-H) % m, (-W) % m
        if ph or pw:  # replicate-pad to a multiple of 16 so every level halves exactly
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        h = self.stem(x)
        skips = [h]
        for down, enc in zip(self.down, self.enc):
            h = enc(down(F.silu(h)))
            skips.append(h)
        h = self.mid(h)
        code = self.code(h.mean(dim=(2, 3))) if self.config.global_code else None
        for i in reversed(range(self.levels - 1)):
            h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
            h = self.up_in[i](F.silu(torch.cat([h, skips[i]], dim=1)))
            if code is not None:
                scale, bias = self.film[i](code)[:, :, None, None].chunk(2, dim=1)
                h = h * (1 + scale) + bias
            h = h + self.up_out[i](F.silu(h))
        out = self.head(F.silu(h))
        return out[..., :H, :W]


class RefinerNet(UNet):
    """The refiner: x [B, 11, H, W] (refine.learned.view_inputs) -> [B, 5, H, W]: residuals of the
    classical refiner's RGB (0-2), log-disparity (3) and sky logit (4)."""

    def __init__(self, config: RefinerNetConfig = RefinerNetConfig()):
        super().__init__(IN_CHANNELS, OUT_CHANNELS, config)


class DepthNet(UNet):
    """The photo's depth: rgb [B, 3, H, W] in [0, 1] -> [B, 2, H, W]: channel 0 log-depth up to an
    additive constant (depth up to scale), 1 sky logit (refine/depthnet.py)."""

    def __init__(self, config: RefinerNetConfig = RefinerNetConfig()):
        super().__init__(3, 2, config)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- weights files (refiner and depth)
def save_net_blob(path, net: nn.Module, fmt: str, extra: dict | None = None, meta: dict | None = None,
                  half: bool = True) -> None:
    """Write `net`'s weights (float16 unless `half` is False) as {"format": fmt, "net_config",
    "state_dict", "meta", **extra}, atomically (`worldgen.core.io.save_torch`: a full disk is an OSError and leaves
    `path` as it was). `net.config` is a dataclass."""
    from dataclasses import asdict

    from worldgen.core.io import save_torch

    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu() for k, v in net.state_dict().items()}
    blob = {"format": fmt, "net_config": asdict(net.config), "state_dict": state, "meta": meta or {}, **(extra or {})}
    save_torch(path, blob)


def load_net_blob(path, fmt: str, what: str, checkpoint_key: str, make_net) -> tuple[nn.Module, dict]:
    """(network in float32, its blob) from a weights file written by `save_net_blob`, or from a
    training checkpoint that holds one under `checkpoint_key`. `make_net(RefinerNetConfig)` builds
    the network. ValueError with a one-line reason naming `what` ("refiner weights", ...) for a
    missing, unreadable or foreign file, a damaged one (its "net_config" or "state_dict" missing or
    ill-typed, a weight NaN or infinite), or weights that do not fit their network."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such {what} file: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (pickle, zip and torch errors all mean "not a weights file")
        raise ValueError(f"{path} is not a worldgen {what} file ({type(e).__name__})") from None
    if isinstance(blob, dict) and isinstance(blob.get(checkpoint_key), dict):
        blob = blob[checkpoint_key]  # a training checkpoint holds the weights under this key
    if not isinstance(blob, dict) or blob.get("format") != fmt:
        raise ValueError(f"{path} is not a worldgen {what} file (format {fmt!r} expected)")
    config = _net_config(blob.get("net_config"))
    if config is None:
        raise ValueError(f"{path} is a damaged {what} file: its 'net_config' is missing or not a network's settings "
                         f"(widths: 1..{_MAX_LEVELS} ints in 1..{_MAX_WIDTH}; bottleneck_blocks: 0..{_MAX_BLOCKS}; "
                         f"global_code: 0..{_MAX_WIDTH})")
    state = blob.get("state_dict")
    if not (isinstance(state, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                            for k, v in state.items())):
        raise ValueError(f"{path} is a damaged {what} file: its 'state_dict' is missing or not a dict of tensors")
    try:
        with torch.device("meta"):  # the shapes the config implies, without memory (a damaged config may be huge)
            expected = {k: tuple(v.shape) for k, v in make_net(config).state_dict().items()}
    except (RuntimeError, ValueError, TypeError, OverflowError) as e:
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path} is a damaged {what} file: its 'net_config' builds no network ({reason})") from None
    misfit = _misfit(expected, {k: tuple(v.shape) for k, v in state.items()})
    if misfit:
        raise ValueError(f"{path}: weights do not fit the network they describe ({misfit})")
    nonfinite = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if nonfinite is not None:
        raise ValueError(f"{path} is a damaged {what} file: weight {nonfinite!r} holds NaN or infinite values")
    net = make_net(config)
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as e:
        reason = " ".join(str(e).split())
        raise ValueError(f"{path}: weights do not fit the network they describe ({reason[:200]})") from None
    return net, blob


_MAX_LEVELS = 8
"""Most U-Net levels (`RefinerNetConfig.widths` entries) a weights file may describe (5 are used)."""
_MAX_BLOCKS = 64
"""Most bottleneck blocks a weights file may describe (2 are used)."""
_MAX_WIDTH = 65536
"""Most channels per level (and global code size) a weights file may describe (192 are used)."""


def _net_config(nc) -> RefinerNetConfig | None:
    """The RefinerNetConfig that a weights file's "net_config" (a dict, as `save_net_blob` writes it) describes, or
    None when it is not a dict of RefinerNetConfig's fields with sane values (widths: 1.._MAX_LEVELS ints in
    1.._MAX_WIDTH; bottleneck_blocks: an int in 0.._MAX_BLOCKS; global_code: an int in 0.._MAX_WIDTH). A field it
    lacks takes RefinerNetConfig's default."""
    from dataclasses import fields

    if not isinstance(nc, dict) or not set(nc) <= {f.name for f in fields(RefinerNetConfig)}:
        return None
    is_int = lambda v, lo, hi=_MAX_WIDTH: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi  # noqa: E731
    widths = nc.get("widths", RefinerNetConfig.widths)
    if not (isinstance(widths, (list, tuple)) and 1 <= len(widths) <= _MAX_LEVELS
            and all(is_int(w, 1) for w in widths)):
        return None
    blocks, code = (nc.get(k, getattr(RefinerNetConfig, k)) for k in ("bottleneck_blocks", "global_code"))
    if not (is_int(blocks, 0, _MAX_BLOCKS) and is_int(code, 0)):
        return None
    return RefinerNetConfig(**{**nc, "widths": tuple(widths)})


def _misfit(expected: dict[str, tuple], found: dict[str, tuple]) -> str:
    """'' when the parameter shapes `found` in a weights file are those `expected` of its network (name -> shape),
    else a short reason: the first missing, unexpected or differently shaped parameter."""
    missing = [k for k in expected if k not in found]
    if missing:
        return f"{len(missing)} of its weights missing, e.g. {missing[0]!r}"
    extra = [k for k in found if k not in expected]
    if extra:
        return f"{len(extra)} weights it does not have, e.g. {extra[0]!r}"
    k = next((k for k in expected if expected[k] != found[k]), None)
    return "" if k is None else f"{k!r} has shape {list(found[k])}, the network's is {list(expected[k])}"
