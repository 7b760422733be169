"""Render cost of forest-floor walks (standing trees) against drone flights, per frame and per stage.

    .venv/bin/python scripts/bench_walks.py [--seeds 1000016 1000020] [--frames 4] [--size 256] [--threads 1]

For each eval world: `make_flight` over the world and `make_walk` in its `standing_world`, both rendered with
`render_views` at the given quality levels; prints seconds per frame and the walk's per-stage seconds
(trees = the tree trace, shadows = soft shadows plus the trees' shadows, march = the terrain march).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refine.synth import make_flight, make_walk, make_world, render_views, standing_world  # noqa: E402
from refine.train.data import settings_for  # noqa: E402
from worldgen.core.config import check_at_least_option, check_seed_option  # noqa: E402
from worldgen.core.io import UserInputError  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1000016, 1000020])
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--qualities", nargs="+", default=["fast", "training"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    try:  # (one line before any world is made)
        check_seed_option(args, "seeds")
        for field, least in (("frames", 1), ("size", 16), ("threads", 1)):
            check_at_least_option(args, field, least)
    except UserInputError as e:
        sys.exit(f"bench_walks: {e}")
    torch.set_num_threads(args.threads)
    n, S = args.frames, args.size
    for seed in args.seeds:
        world = make_world(seed, device=args.device)
        standing = standing_world(world)
        flight, walk = make_flight(world, n, S, S), make_walk(standing, n, S, S)
        for q in args.qualities:
            render_views(world, flight.c2w[:1], flight.K, S, S, settings_for(q))  # warm-up
            t = time.perf_counter()
            render_views(world, flight.c2w, flight.K, S, S, settings_for(q), stats={})
            drone = (time.perf_counter() - t) / n
            stats: dict = {}
            t = time.perf_counter()
            render_views(standing, walk.c2w, walk.K, S, S, settings_for(q), stats=stats)
            walked = (time.perf_counter() - t) / n
            stages = ", ".join(f"{k[:-2]} {v / n:.2f}" for k, v in stats.items() if k.endswith("_s"))
            print(f"world {seed} ({world.climate}), {q}, {S}x{S}: drone {drone:.2f} s/frame, walk {walked:.2f} "
                  f"s/frame ({stages})", flush=True)


if __name__ == "__main__":
    main()
