"""Contact sheet of the photo's depth backends on real photos: photo | learned disparity | prior disparity.

    .venv/bin/python scripts/depth_sheet.py [--photos ../shared/data/real] [--out docs/depth_real.jpg]
    .venv/bin/python scripts/depth_sheet.py --models learned runs/x/depth.pt prior --out /tmp/cmp.png  (weights side by side)
    .venv/bin/python scripts/depth_sheet.py --models learned@0 learned --out /tmp/sky.jpg  (MODEL@G: sky grown to logit G)

Every image of the folder goes through `first_frame` exactly as `worldgen fly PHOTO --fov 90` would
(working size: longer side `--side`), once with `--depth-model learned` and once with `--depth-model
prior`; each depth is drawn with `disparity_colors` (log-disparity, blue far .. red near, black sky,
each map scaled to its own 2nd..98th percentile); each photo's sky share per model is printed. The photos themselves
stay outside the repository; only the sheet is committed. `--cols` triplets per row.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worldgen.core.images import disparity_colors, save_figure_u8, side_by_side, thumbnail, to_uint8  # noqa: E402
from worldgen.pipeline.config import PhotoConfig  # noqa: E402
from worldgen.pipeline.sources import first_frame  # noqa: E402

EXTS = (".jpg", ".jpeg", ".png", ".webp")


def photo_config(model: str, fov: float) -> PhotoConfig:
    """PhotoConfig of a --models entry: a depth model, or MODEL@G (the learned network's sky grown to logit G)."""
    name, _, grow = model.partition("@")
    return PhotoConfig(depth_model=name, fov=fov, **({"sky_grow": float(grow)} if grow else {}))


def label(model: str) -> str:
    """A --models entry as the sheet names it: a weights file by its stem, keeping any @G."""
    name, at, grow = model.partition("@")
    return (Path(name).stem if name.endswith(".pt") else name) + at + grow


def triplet(path: Path, side: int, thumb: int, fov: float, models: list[str]) -> np.ndarray:
    """uint8 [h + 18, (1 + len(models)) w + gaps, 3]: photo | one disparity per depth model, labelled."""
    cpu = torch.device("cpu")
    frames = {m: first_frame(str(path), photo_config(m, fov), "auto", cpu, side) for m in models}
    photo = thumbnail(to_uint8(frames[models[0]].rgb), thumb)
    maps = [thumbnail(disparity_colors(frames[m].depth), thumb) for m in models]
    name = path.stem.replace("polyhaven_", "").replace("humus_", "")[:24]
    labels = [label(m) for m in models]
    print(f"{name:<24} sky share: " + "  ".join(f"{lab} {float(frames[m].sky.float().mean()):.3f}"
                                                 for lab, m in zip(labels, models)), flush=True)
    return side_by_side([photo, *maps], labels=[name, *labels], gap=3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default="../shared/data/real")
    ap.add_argument("--out", default="docs/depth_real.jpg")
    ap.add_argument("--side", type=int, default=256, help="longer side of the working size (as fly's --auto-side)")
    ap.add_argument("--thumb", type=int, default=176, help="longer side of each picture on the sheet")
    ap.add_argument("--fov", type=float, default=90.0, help="horizontal field of view of the photos (cube faces: 90)")
    ap.add_argument("--cols", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=["learned", "prior"],
                    help="depth models to show side by side (learned, learned-fidelity, prior, a weights FILE.pt, "
                         "transformers:NAME; MODEL@G: the learned network with PhotoConfig.sky_grow G)")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    paths = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in EXTS)
    if not paths:
        sys.exit(f"no photos in {args.photos}")
    tiles = [triplet(p, args.side, args.thumb, args.fov, args.models) for p in paths]
    h, w = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, h - t.shape[0]), (0, w - t.shape[1]), (0, 0)), constant_values=255) for t in tiles]
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % args.cols)
    rows = [np.concatenate(sum(([t, np.full((h, 10, 3), 255, np.uint8)] for t in tiles[i:i + args.cols]), [])[:-1], 1)
            for i in range(0, len(tiles), args.cols)]
    sheet = np.concatenate(sum(([r, np.full((6, r.shape[1], 3), 255, np.uint8)] for r in rows), [])[:-1], 0)
    save_figure_u8(args.out, sheet)
    print(f"{args.out}: {len(paths)} photos, {sheet.shape[1]}x{sheet.shape[0]}")


if __name__ == "__main__":
    main()
