"""Does a depth network turn landscape photos upside down? `ground_order` per photo, for one or more weights files.

    .venv/bin/python scripts/ground_order.py PHOTO_DIR refine/weights/depth.pt runs/x/depth.pt [--bands]

Each photo is read whole, resized to 256 x 256 (as the ground-order training term sees it), and put through each
network (`refine.depthnet.predict`); the score is `refine.train.depth.ground_order` over its non-sky pixels: 0 when
the ground comes nearer going down the lower five eighths of the frame, above 0 by how far it goes the other way
(docs/depth.md). `--bands` also prints the five bands' mean log-depth (top band first), which shows where the order
breaks. The figures of BENCHMARKS.md 2026-12-02 ninth and 2026-12-03 were made so (crystal_falls 0.77 for the walks +
order network, 0 for the shipped one).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refine.depthnet import load_depth_weights, predict  # noqa: E402
from refine.train.depth import bands_order, order_bands  # noqa: E402
from worldgen.core.images import load_image  # noqa: E402
from worldgen.core.io import UserInputError  # noqa: E402

EXTS = (".jpg", ".jpeg", ".png", ".webp")
SIDE = 256


def score(net, path: Path) -> tuple[float, list[float]]:
    """(ground_order, band means) of one photo for one network, on the CPU at 256 x 256."""
    rgb = load_image(path).permute(2, 0, 1)[None]  # [1, 3, H, W]
    x = F.interpolate(rgb, size=(SIDE, SIDE), mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        log_d, sky = predict(net, x)
    solid = sky.float() < 0
    means, ok = order_bands(log_d.float(), solid)  # (the bands once: the score is made from them)
    return float(bands_order(means, ok)), [float(m) if o else float("nan") for m, o in zip(means[0], ok[0])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photos", help="a folder of photos (or one photo)")
    ap.add_argument("weights", nargs="+", help="depth weights files (refine/weights/depth.pt, a run's depth.pt)")
    ap.add_argument("--bands", action="store_true", help="also print the five bands' mean log-depth")
    args = ap.parse_args()
    torch.set_num_threads(1)
    src = Path(args.photos)
    if not src.exists():
        sys.exit(f"ground_order: no such photo or folder: {src}")
    photos = sorted(p for p in src.iterdir() if p.suffix.lower() in EXTS) if src.is_dir() else [src]
    if not photos:
        sys.exit(f"ground_order: no photos ({', '.join(EXTS)}) in {src}")
    try:
        nets = []
        for w in args.weights:
            if not Path(w).is_file():
                raise UserInputError(f"no such weights file: {w}")
            try:
                nets.append(load_depth_weights(w)[0].eval())
            except ValueError as e:  # a foreign or damaged file: load_net_blob's one-line reason
                raise UserInputError(str(e)) from None
        print(f"{'photo':32s} " + " ".join(f"{Path(w).stem[:14]:>14s}" for w in args.weights))
        for p in photos:
            rows = [score(n, p) for n in nets]
            print(f"{p.stem[:32]:32s} " + " ".join(f"{r[0]:14.3f}" for r in rows), flush=True)
            if args.bands:
                for w, (_, b) in zip(args.weights, rows):
                    print(f"  {Path(w).stem[:28]:28s} bands " + " ".join(f"{v:+.2f}" for v in b))
    except UserInputError as e:
        sys.exit(f"ground_order: {e}")


if __name__ == "__main__":
    main()
