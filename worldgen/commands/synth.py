"""`worldgen synth`: render procedural drone flights with exact depth and poses (ACID layout).

    worldgen synth --sequences N --frames T --size WxH --seed S --out DIR [--preview]

Sequence i is the world and flight of seed S + i (see refine/synth/splits.py for which seeds are
for training, evaluation and demos). Output layout: refine/synth/acid.py.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from worldgen.core.io import UserInputError, atomic_write, atomic_write_text, check_writable_dir


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


def parse_size(size: str) -> tuple[int, int]:
    """(W, H) from "WxH"; raises UserInputError with one clear line otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(size))
    if not m:
        raise UserInputError(f"--size must look like WxH (e.g. 256x256), got {size!r}")
    W, H = int(m.group(1)), int(m.group(2))
    if not (8 <= W <= 8192 and 8 <= H <= 8192):
        raise UserInputError(f"--size {W}x{H} is out of range: width and height must be 8..8192 pixels")
    return W, H


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserInputError(f"--device {name!r} is not a torch device (try auto, cpu or cuda)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"--device {name} asked for CUDA, but no CUDA GPU is available here")
    return dev


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
    """Render cfg.sequences flights into cfg.out (ACID layout), with a progress bar."""
    from tqdm import tqdm

    from refine.synth import make_flight, make_world, render_views
    from refine.synth.acid import format_camera_file, frame_timestamps, write_frame_files
    from refine.synth.splits import check_range

    W, H = parse_size(cfg.size)
    if cfg.sequences < 1 or cfg.frames < 1:
        raise UserInputError(f"--sequences and --frames must be >= 1, got {cfg.sequences} and {cfg.frames}")
    if cfg.seed < 0:
        raise UserInputError(f"--seed must be >= 0, got {cfg.seed}")
    try:
        split = check_range(cfg.seed, cfg.sequences)
    except ValueError as e:
        raise UserInputError(str(e)) from None
    dev = _device(cfg.device)
    out = check_writable_dir(cfg.out)
    resolved = {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(cfg).items()}
    atomic_write_text(out / "synth_config.json", json.dumps({**resolved, "split": split, "resolved_device": str(dev)}, indent=1) + "\n")

    batch = 32 if dev.type == "cuda" else 4
    firsts: list[np.ndarray] = []
    index = []
    bar = tqdm(total=cfg.sequences * cfg.frames, unit="frame", desc="synth")
    for k in range(cfg.sequences):
        seed = cfg.seed + k
        name = sequence_name(seed)
        world = make_world(seed, device=dev)
        flight = make_flight(world, cfg.frames, W, H)
        ts = frame_timestamps(cfg.frames)
        for a in range(0, cfg.frames, batch):
            b = min(cfg.frames, a + batch)
            r = render_views(world, flight.c2w[a:b], flight.K, W, H)
            for j in range(b - a):
                write_frame_files(out / name, int(ts[a + j]), r.rgb[j], r.depth[j], r.sky[j])
                if a + j == 0 and cfg.preview:
                    firsts.append((r.rgb[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy())
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
        buf = io.BytesIO()
        Image.fromarray(contact_sheet(firsts)).save(buf, format="PNG")
        with atomic_write(out / "preview.png") as f:
            f.write(buf.getvalue())
    print(f"wrote {cfg.sequences} sequence(s) x {cfg.frames} frame(s) at {W}x{H} to {out}" + (f" (preview: {out / 'preview.png'})" if cfg.preview else ""))


def entrypoint() -> None:
    """Stand-alone entry (the `worldgen synth` subcommand is wired by worldgen/cli.py)."""
    import tyro

    main(tyro.cli(SynthConfig))


if __name__ == "__main__":
    entrypoint()


def _command():
    from worldgen.cli import Command

    return Command(SynthConfig, main)


COMMAND = _command()
