"""`worldgen synth`: render procedural drone flights with exact depth and poses (ACID layout).

    worldgen synth --sequences N --frames T --size WxH --seed S --out DIR [--preview] [--walk | --winter | --gorge [--face-wall]]

`--walk`: walks on the forest floor among standing trees (refine/synth/trees.py) instead of drone flights;
`--winter`: the same walks on a snowy forest floor; `--gorge`: flights low along the floor of each world's gorge twin
(refine/synth/gorge.py), with `--face-wall` facing one of its walls.

Sequence i is the world and flight of seed S + i (see refine/synth/splits.py for which seeds are
for training, evaluation and demos). Output layout: refine/synth/acid.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worldgen.commands import Command
from worldgen.core.config import bad, check, check_seed
from worldgen.core.device import resolve_device
from worldgen.core.images import parse_size, save_png_u8, to_uint8
from worldgen.core.io import UserInputError, atomic_write_text
from worldgen.core.runfolder import OutputFolder


@dataclass
class SynthConfig:
    """Render synthetic nature flights (RGB, z-depth, sky mask, poses) in the ACID layout."""

    sequences: int = 4
    """Number of sequences; sequence i uses world seed `seed + i`."""
    frames: int = 30
    """Frames per sequence."""
    size: str = "256x256"
    """Frame size as WxH pixels, e.g. 256x256 or 384x256."""
    seed: int = 0
    """First seed. Train 0..999999; eval 1000000..1000999 (never train on these); demo 3000000..3000999."""
    out: Path = Path("runs/synth")
    """Output folder: <seq>.txt camera files and <seq>/ frame folders (PNG, _depth.npy, _sky.png)."""
    preview: bool = False
    """Also write OUT/preview.png, a contact sheet of every sequence's first frame."""
    device: str = "auto"
    """Torch device for rendering: auto (CUDA when available), cpu, cuda, cuda:1, ..."""
    walk: bool = False
    """Walks on the forest floor (eye height, among standing trees: trunks and crowns as 3D objects)
    instead of drone flights over the same worlds."""
    winter: bool = False
    """Walks (as --walk) on a forest floor under snow: dark trunks on bright ground."""
    gorge: bool = False
    """Flights low along the floor of a winding canyon (each world's gorge twin: dark rock walls, a bright
    floor) instead of drone flights."""
    face_wall: bool = False
    """With --gorge: the same flights turned 55-85 degrees toward one wall, so the wall fills the
    frame's top edge (refine.synth.flights.make_gorge_flight face_wall)."""
    across: bool = False
    """With --gorge: facing a wall (as --face-wall) from across the floor, pitched 4-16 degrees down, so the
    floor under the wall fills the frame's lower part (refine.synth.flights.make_gorge_flight across)."""

    def kind(self) -> str:
        """The flight kind these options ask for (refine.synth.FLIGHT_KINDS)."""
        if self.winter or self.walk:
            return "winter" if self.winter else "walk"
        if self.gorge:
            return "gorge_across" if self.across else "gorge_wall" if self.face_wall else "gorge"
        return "drone"

    def validate(self) -> None:
        parse_size(self.size, min_side=8)  # raises its own one-line UserInputError
        if self.sequences < 1:
            raise bad("sequences", "must be >= 1", self.sequences)
        if self.frames < 1:
            raise bad("frames", "must be >= 1", self.frames)
        check_seed(self, "seed", self.sequences)
        if self.gorge and (self.walk or self.winter):
            raise bad("gorge", "and --walk / --winter are two kinds of flight; choose one")
        if self.face_wall and not self.gorge:
            raise bad("face_wall", "faces a gorge's wall: give --gorge too")
        if self.across and not self.gorge:
            raise bad("across", "faces a gorge's wall from across its floor: give --gorge too")


def contact_sheet(images: list[np.ndarray], cols: int | None = None, pad: int = 2) -> np.ndarray:
    """Grid of equally sized uint8 images [H, W, 3] -> one uint8 image, `cols` per row (default ~sqrt)."""
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    n = len(images)
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    H, W = images[0].shape[:2]
    sheet = np.full((rows * H + (rows + 1) * pad, cols * W + (cols + 1) * pad, 3), 255, np.uint8)
    for k, im in enumerate(images):
        r, c = divmod(k, cols)
        y, x = pad + r * (H + pad), pad + c * (W + pad)
        sheet[y : y + H, x : x + W] = im
    return sheet


def sequence_name(seed: int) -> str:
    """Sequence id of a seed (also the camera-file stem)."""
    return f"synth_{seed:08d}"


def main(cfg: SynthConfig) -> None:
    """Render cfg.sequences flights into cfg.out (ACID layout), with a progress bar. --out has one writer and is
    refused if it holds anything synth does not write; an earlier synth output there is replaced whole."""
    from refine.synth.splits import check_range

    check(cfg)
    W, H = parse_size(cfg.size, min_side=8)
    try:
        split = check_range(cfg.seed, cfg.sequences)
    except ValueError as e:
        raise UserInputError(str(e)) from None
    dev = resolve_device(cfg.device)
    with OutputFolder(cfg.out, owns=_synth_output, command="synth") as folder:
        folder.replace_earlier()
        _render(cfg, folder.path, W, H, split, dev)


def _synth_output(name: str) -> bool:
    """Whether a top-level name in --out is one `worldgen synth` writes (an earlier set it replaces whole)."""
    return name in ("synth_config.json", "index.json", "preview.png") or name.startswith("synth_")


def _render(cfg: SynthConfig, out: Path, W: int, H: int, split: str, dev) -> None:
    """Render the flights into the locked, emptied folder `out`."""
    from tqdm import tqdm

    from refine.synth import kind_flight, make_world, render_views
    from refine.synth.acid import format_camera_file, frame_timestamps, write_frame_files

    resolved = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(cfg).items()}
    atomic_write_text(out / "synth_config.json", json.dumps({**resolved, "split": split, "resolved_device": str(dev)}, indent=1) + "\n")

    batch = 32 if dev.type == "cuda" else 4
    firsts: list[np.ndarray] = []
    index = []
    bar = tqdm(total=cfg.sequences * cfg.frames, unit="frame", desc="synth")
    for k in range(cfg.sequences):
        seed = cfg.seed + k
        name = sequence_name(seed)
        kind = cfg.kind()
        world, flight = kind_flight(make_world(seed, device=dev), kind, cfg.frames, W, H)
        ts = frame_timestamps(cfg.frames)
        for a in range(0, cfg.frames, batch):
            b = min(cfg.frames, a + batch)
            r = render_views(world, flight.c2w[a:b], flight.K, W, H)
            for j in range(b - a):
                write_frame_files(out / name, int(ts[a + j]), r.rgb[j], r.depth[j], r.sky[j])
                if a + j == 0 and cfg.preview:
                    firsts.append(to_uint8(r.rgb[0]))
            bar.update(b - a)
            bar.set_postfix_str(f"{name} {world.climate}")
        meta = {"seed": seed, "split": split, "world": world.describe(), "flight": flight.params, "width": W, "height": H}
        atomic_write_text(out / name / "meta.json", json.dumps(meta, indent=1) + "\n")
        # the camera file last: a sequence is listed by loaders only once all its frames exist
        atomic_write_text(out / f"{name}.txt", format_camera_file(f"synth://worldgen/seed/{seed}", ts, flight.K, flight.c2w, W, H))
        index.append({"name": name, "seed": seed, "climate": world.climate, "frames": cfg.frames})
    bar.close()
    atomic_write_text(out / "index.json", json.dumps({"split": split, "sequences": index}, indent=1) + "\n")
    if cfg.preview:
        save_png_u8(out / "preview.png", contact_sheet(firsts), optimize=True)
    print(f"wrote {cfg.sequences} sequence(s) x {cfg.frames} frame(s) at {W}x{H} to {out}" + (f" (preview: {out / 'preview.png'})" if cfg.preview else ""))


COMMAND = Command(SynthConfig, main)
