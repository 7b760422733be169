"""Render the bundled demo input: worldgen/examples/example.{png,json} and example_depth.npy.

    .venv/bin/python scripts/make_example.py [--seed S] [--frame I] [--size 384x256] [--out worldgen/examples]

example.png        the first frame of a synthetic flight (sRGB, 8 bit)
example_depth.npy  float32 [H, W] z-depth in metres, +inf for sky (exact for the rendered geometry)
example.json       seed, climate, intrinsics (fx, fy, cx, cy, width, height; pixel centres at +0.5),
                   c2w (camera-to-world 4x4, OpenCV axes, world up = -y), the flight's next poses
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from refine.synth import make_flight, make_world, render_views
from worldgen.core.config import check_at_least_option, check_seed_option
from worldgen.core.images import parse_size, to_uint8
from worldgen.core.io import UserInputError, atomic_write, atomic_write_text

# A seed from the demo range (see refine/synth/splits.py): never used for training or evaluation.
DEFAULT_SEED = 3_000_210


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--frame", type=int, default=0, help="which frame of the flight to use")
    ap.add_argument("--size", default="384x256")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "worldgen" / "examples")
    args = ap.parse_args()
    try:  # (one line before anything is rendered or written)
        check_seed_option(args, "seed")
        check_at_least_option(args, "frame", 0)
        W, H = parse_size(args.size)
    except UserInputError as e:
        sys.exit(f"make_example: {e}")
    world = make_world(args.seed)
    flight = make_flight(world, args.frame + 30, W, H)
    idx = list(range(args.frame, args.frame + 30))
    r = render_views(world, flight.c2w[args.frame : args.frame + 1], flight.K, W, H)
    rgb = to_uint8(r.rgb[0])
    depth = r.depth[0].cpu().numpy().astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    with atomic_write(args.out / "example.png") as f:
        f.write(buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, depth)
    with atomic_write(args.out / "example_depth.npy") as f:
        f.write(buf.getvalue())
    K = flight.K
    meta = {
        "seed": args.seed,
        "frame": args.frame,
        "climate": world.climate,
        "world": world.describe(),
        "flight": flight.params,
        "intrinsics": {
            "fx": float(K[0, 0]), "fy": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
            "width": W, "height": H,
        },
        "c2w": flight.c2w[args.frame].tolist(),
        "next_c2w": [flight.c2w[i].tolist() for i in idx[1:]],
        "conventions": "OpenCV camera axes (+x right, +y down, +z forward), camera-to-world pose, world up = -y, "
        "pixel centres at +0.5, depth = float32 z-depth in metres with +inf for sky",
        "made_by": "scripts/make_example.py",
    }
    atomic_write_text(args.out / "example.json", json.dumps(meta, indent=1) + "\n")
    for name in ("example.png", "example_depth.npy", "example.json"):
        (args.out / name).chmod(0o644)  # package data: readable by everyone
    sky = float(np.isinf(depth).mean())
    fin = depth[np.isfinite(depth)]
    print(f"wrote {args.out}: seed {args.seed} ({world.climate}), {W}x{H}, sky {sky:.0%}, "
          f"depth {fin.min():.1f}..{fin.max():.1f} m")


if __name__ == "__main__":
    main()
