"""`worldgen depth`: the depth a flight would start from, as files to inspect, edit and pass back.

    worldgen depth IMAGE [--depth-model learned|learned-fidelity|prior|FILE.pt|transformers:NAME] [--size WxH]
                         --out FILE.npy

Writes (each atomically: temp file, then rename):
  FILE.npy   z-depth [H, W] float32 at the working size (+inf = sky), exactly frame 0's depth in
             `worldgen fly IMAGE` with the same options: the same centre crop and size rules
             (pipeline/sources.first_frame). `worldgen fly IMAGE --depth FILE.npy` flies from it.
  FILE.png   the same depth as a coloured disparity picture (blue far .. red near, black sky).

No half pair, no strays: the folder is held (the run folders' `RunLock`) while the two are written, and a write
that fails after the picture was replaced removes both (a new picture beside an old depth is no pair); a folder this
made is removed again. Refused before any work, in one line: FILE.npy or FILE.png that is an input (the photo, a
--depth file); a FILE.png without FILE.npy (not an earlier output of this command: someone's picture); a folder
another command holds (a flight under way) or a worldgen output folder (a run of fly, compare, synth, train:
`runfolder.output_marker`: names only worldgen writes, or a config.json beside a run's outputs), whose command would
refuse it later for the stray files. Re-running into an earlier FILE.npy + FILE.png replaces both.
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
from worldgen.core.runfolder import check_not_in_use, make_and_lock, output_marker, remove_made_dir
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


def check_out(inputs: list[str], out: Path, held: bool = False) -> None:
    """UserInputError (one line) unless `depth --out` FILE.npy (`out`) and FILE.png beside it may be written for
    input files `inputs` (the photo, a --depth file; the module docstring's refusals), creating nothing. Checked
    before the work and again with the folder held by this process (`held`: its lock is then not looked at)."""
    png = out.with_suffix(".png")
    for target in (out, png):
        if target.is_dir():
            raise UserInputError(f"{target} is a directory; --out must name a file FILE.npy "
                                 "(FILE.png goes beside it)")
    folder = check_writable_dir(out.parent)
    if not held:
        check_not_in_use(folder)
    for target in (out, png):
        for f in inputs:
            if target.exists() and Path(f).exists() and target.samefile(f):
                raise UserInputError(f"--out {out} would overwrite the input file {f} (with {target.name}); "
                                     "choose another --out")
    if png.exists() and not out.exists():
        raise UserInputError(f"--out {out}: {png} exists and is no earlier `worldgen depth` output (no {out.name} "
                             "beside it); choose another --out")
    marker = output_marker(folder)
    if marker is not None:
        raise UserInputError(f"--out {out}: {folder} is a worldgen output folder (it holds {marker!r}), where the "
                             "depth files would mix into its outputs; choose another folder")


def main(cfg: DepthConfig) -> None:
    """Estimate, then write FILE.npy and FILE.png; prints one line saying what was written."""
    check(cfg)
    out = Path(cfg.out)
    png = out.with_suffix(".png")
    inputs = [f for f in (cfg.image, cfg.photo.depth) if f]
    check_out(inputs, out)
    frame0 = first_frame(cfg.image, cfg.photo, cfg.size, resolve_device(cfg.device), cfg.auto_side)
    depth = frame0.depth.detach().float().cpu()
    made, lock = make_and_lock(out.parent)
    with lock:
        try:
            check_out(inputs, out, held=True)  # (another command may have used the folder during the work)
            save_png_u8(png, disparity_colors(depth))
            try:
                save_npy(out, depth.numpy())
            except BaseException:
                png.unlink(missing_ok=True)  # the new picture beside the old (or no) depth is no pair: neither stays
                out.unlink(missing_ok=True)
                raise
        except BaseException:
            remove_made_dir(made, out.parent)
            raise
    solid = depth[~frame0.sky.cpu()]
    print(f"{out}: z-depth {depth.shape[1]}x{depth.shape[0]} from {cfg.photo.depth or cfg.photo.depth_model}, "
          f"sky {100 * float(frame0.sky.float().mean()):.1f} %, median non-sky depth {float(solid.median()):.3g}; "
          f"picture {png}")


COMMAND = Command(DepthConfig, main)
