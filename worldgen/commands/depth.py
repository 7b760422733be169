"""`worldgen depth`: the depth a flight would start from, as files to inspect, edit and pass back.

    worldgen depth IMAGE [--depth-model learned|learned-fidelity|prior|FILE.pt|transformers:NAME] [--size WxH]
                         --out FILE.npy

Writes (each atomically: temp file, then rename):
  FILE.npy   z-depth [H, W] float32 at the working size (+inf = sky), exactly frame 0's depth in
             `worldgen fly IMAGE` with the same options: the same centre crop and size rules
             (pipeline/sources.first_frame). `worldgen fly IMAGE --depth FILE.npy` flies from it.
  FILE.png   the same depth as a coloured disparity picture (blue far .. red near, black sky).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro

from worldgen.commands import Command
from worldgen.core.config import bad, check
from worldgen.core.device import resolve_device
from worldgen.core.images import disparity_colors, parse_size, save_png_u8
from worldgen.core.io import UserInputError, check_writable_dir, save_npy
from worldgen.pipeline.config import PhotoConfig
from worldgen.pipeline.sources import first_frame

_FLAT = tyro.conf.arg(name="")  # nested settings whose options carry no prefix


@dataclass(frozen=True)
class DepthConfig:
    """Estimate a photo's depth as a flight starts from it: z-depth FILE.npy (+inf sky) and FILE.png."""

    image: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="IMAGE")]
    """Input photo (any size and aspect; RGB, RGBA or grayscale; EXIF orientation respected)."""
    out: str
    """Output z-depth FILE.npy; the coloured disparity picture goes beside it as FILE.png."""
    photo: Annotated[PhotoConfig, _FLAT] = field(default_factory=PhotoConfig)
    """How the depth is estimated (--depth-model) and the photo's intrinsics (the prior needs them)."""
    size: str = "auto"
    """Working size WxH (the photo is centre-cropped to its aspect), as for `worldgen fly`; auto: the
    photo's aspect with the longer side --auto-side."""
    auto_side: int = 256
    """Longer side of the working size when --size is auto."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the depth network runs: auto picks cuda when available."""

    def validate(self) -> None:
        if not self.out.endswith(".npy"):
            raise bad("out", "must name a .npy file", self.out)
        if self.size != "auto":
            parse_size(self.size)  # raises its own one-line UserInputError
        if not 16 <= self.auto_side <= 8192:
            raise bad("auto_side", "must be between 16 and 8192", self.auto_side)


def main(cfg: DepthConfig) -> None:
    """Estimate, then write FILE.npy and FILE.png; prints one line saying what was written."""
    check(cfg)
    out = Path(cfg.out)
    check_writable_dir(out.parent)
    for target in (out, out.with_suffix(".png")):
        if target.is_dir():
            raise UserInputError(f"{target} is a directory; --out must name a file FILE.npy (FILE.png goes beside it)")
    frame0 = first_frame(cfg.image, cfg.photo, cfg.size, resolve_device(cfg.device), cfg.auto_side)
    depth = frame0.depth.detach().float().cpu()
    save_png_u8(out.with_suffix(".png"), disparity_colors(depth))
    save_npy(out, depth.numpy())
    solid = depth[~frame0.sky.cpu()]
    print(f"{out}: z-depth {depth.shape[1]}x{depth.shape[0]} from {cfg.photo.depth or cfg.photo.depth_model}, "
          f"sky {100 * float(frame0.sky.float().mean()):.1f} %, median non-sky depth {float(solid.median()):.3g}; "
          f"picture {out.with_suffix('.png')}")


COMMAND = Command(DepthConfig, main)
