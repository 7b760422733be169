"""How sensitive TSED is on real generated frames: one flight, scored with its true cameras and with every
other frame's camera turned by a small yaw error (so every consecutive pair disagrees by exactly that).

    python scripts/tsed_check.py [--synthetic 1000000 | --photo FILE --fov 90] [--mode persistent]
        [--frames 17] [--size 128x128] [--path autopilot] [--refiner classical] [--yaw 0 0.25 0.5 1 2]

Prints a markdown table: yaw error (degrees), TSED at the default T_error, the median over pairs of the
median symmetric epipolar distance (px), and the mean SIFT matches per pair. The 0 row is what
`worldgen compare` reports for this flight; the others show what a camera disagreement of that size does
(a frame that swims by that much against the world would read the same).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def yawed(c2w: torch.Tensor, deg: float) -> torch.Tensor:
    """c2w [4, 4] turned by `deg` about its own camera y axis (world up for a level camera)."""
    a = math.radians(deg)
    R = torch.tensor([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])
    out = c2w.clone()
    out[:3, :3] = out[:3, :3] @ R
    return out


def main() -> None:
    from renderers import get_renderer
    from worldgen.core.config import check_seed_option
    from worldgen.core.tsed import error_threshold, pair_sed, sift_detector, sift_features, tsed_share
    from worldgen.pipeline.config import PhotoConfig, PipelineConfig
    from worldgen.pipeline.paths import make_path
    from worldgen.pipeline.recording import record_flight
    from worldgen.pipeline.refiners import make_refiner
    from worldgen.pipeline.sources import photo_source, scene_scale, synthetic_source, working_size

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", type=int, default=None)
    ap.add_argument("--photo", default=None)
    ap.add_argument("--fov", type=float, default=90.0)
    ap.add_argument("--mode", default="persistent", choices=["persistent", "per-frame"])
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--size", default="128x128")
    ap.add_argument("--path", default="autopilot")
    ap.add_argument("--refiner", default="classical")
    ap.add_argument("--yaw", nargs="*", type=float, default=[0.0, 0.25, 0.5, 1.0, 2.0])
    args = ap.parse_args()
    check_seed_option(args, "synthetic")  # (before the flight; a bad --photo is one line too, from photo_source)
    dev = torch.device("cpu")
    if args.photo:
        source = photo_source(args.photo, PhotoConfig(fov=args.fov), args.size, dev)
    else:
        W, H = working_size(args.size, 1, 1)
        source = synthetic_source(1_000_000 if args.synthetic is None else args.synthetic, W, H, dev)
    p = PipelineConfig()
    cam0 = source.frame0.camera
    path = make_path(args.path, cam0, scene_scale(source.frame0), args.frames, speed=p.speed, retrace=False,
                     autopilot=p.autopilot)
    rec = record_flight(args.mode, source, path, args.frames, renderer=get_renderer("cpu"),
                        refiner=make_refiner(args.refiner, dev), config=p.generator)
    T = error_threshold(cam0.width, cam0.height)
    detector = sift_detector()
    feats = [sift_features(f, detector) for f in rec.frames]
    print(f"{source.name}, {args.mode}, {args.refiner}, {args.path}, {len(rec.frames)} frames at "
          f"{cam0.width}x{cam0.height}, T_error {T:.2f} px")
    print("| yaw error, deg | TSED | median SED, px | matches/pair |\n|---|---|---|---|")
    for deg in args.yaw:
        cams = [cam0.with_pose(yawed(rec.poses[t], deg * (t % 2))).to("cpu") for t in range(len(rec.frames))]
        pairs = [pair_sed(feats[t - 1], cams[t - 1], feats[t], cams[t]) for t in range(1, len(feats))]
        seds, n = [q.median_sed for q in pairs], [q.matches for q in pairs]
        finite = [s for s in seds if not math.isnan(s)]
        print(f"| {deg:g} | {tsed_share(seds, n, T):.2f} | {statistics.median(finite) if finite else math.nan:.2f} | "
              f"{statistics.mean(n):.1f} |")


if __name__ == "__main__":
    from worldgen.core.io import UserInputError

    try:
        main()
    except UserInputError as e:  # a bad --synthetic seed, --photo or --size: one line, not a traceback
        sys.exit(f"tsed_check: {e}")
