"""Where a refiner wins or loses against another: PSNR per kind of pixel, on the same rendered views.

    python scripts/refiner_regions.py --refiners classical learned [FILE.pt ...] [--seeds 11 222 3333]
        [--paths forward autopilot] [--frames 33] [--size 256x256] [--device cpu|cuda] [--json FILE]

One persistent flight per seed and path, led by the first refiner (its frames go into the world and
steer the autopilot); at every step the same rendered view goes to every refiner, and each refined
frame is scored against the procedural ground truth at that pose, per region of the view:
    kept      covered (alpha >= 0.95) and sharp (footprint <= 1 px): the learned refiner returns the world's colour
    blurry    covered (alpha >= 0.5) but not kept: close-ups the learned refiner may re-synthesise
    holes     uncovered (alpha < 0.5) and ground in the truth: disocclusions and new ground
    sky       uncovered and sky in the truth
    (covered pixels that are sky in the truth count in none)
PSNR per region pools the squared error of all steps. Default seeds are from the train split (this is a
diagnostic for choosing what to change; scripts/eval_refiner.py scores the eval split).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REGIONS = ("kept", "blurry", "holes", "sky")


def regions(view, truth_sky: torch.Tensor) -> dict[str, torch.Tensor]:
    """[H, W] bool masks of the regions above for a RenderedView and the truth's sky [H, W]."""
    a = view.alpha
    fp = view.footprint if view.footprint is not None else torch.zeros_like(a)
    covered = a >= 0.5
    kept = (a >= 0.95) & (fp <= 1.0) & ~truth_sky
    return {"kept": kept, "blurry": covered & ~kept & ~truth_sky, "holes": ~covered & ~truth_sky,
            "sky": ~covered & truth_sky}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--refiners", nargs="+", default=["classical", "learned"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 222, 3333])
    ap.add_argument("--paths", nargs="+", default=["forward", "autopilot"])
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from worldgen.core.config import check_at_least_option, check_seed_option
    from worldgen.core.images import parse_size
    from worldgen.core.io import UserInputError, atomic_write_text, check_output_file

    try:  # (one line before any refiner is loaded or world flown)
        check_seed_option(args, "seeds")
        check_at_least_option(args, "frames", 2)
        W, H = parse_size(args.size)
        if args.json:
            check_output_file(args.json, (".json",), "--json")
    except UserInputError as e:
        sys.exit(f"refiner_regions: {e}")

    from refine.synth.splits import split_of
    from renderers import get_renderer
    from worldgen.pipeline.config import PipelineConfig
    from worldgen.pipeline.generator import make_generator
    from worldgen.pipeline.paths import make_path
    from worldgen.pipeline.refiners import make_refiner
    from worldgen.pipeline.sources import GroundTruth, scene_scale, synthetic_source

    if any(split_of(s) == "eval" for s in args.seeds):
        print("note: eval seeds given; do not tune on what they show", file=sys.stderr)
    dev = torch.device(args.device)
    refiners = {spec: make_refiner(spec, dev) for spec in args.refiners}
    lead = args.refiners[0]
    sse = {(r, g): 0.0 for r in args.refiners for g in REGIONS}
    count = {g: 0 for g in REGIONS}
    p = PipelineConfig()
    with torch.no_grad():
        for seed in args.seeds:
            src = synthetic_source(seed, W, H, dev)
            gt = GroundTruth(src.world)
            for kind in args.paths:
                path = make_path(kind, src.frame0.camera, scene_scale(src.frame0), args.frames, speed=p.speed,
                                 autopilot=p.autopilot)
                gen = make_generator("persistent", src.frame0, get_renderer(dev.type), refiners[lead], p.generator,
                                     time_stages=False)
                prev = src.frame0
                path.pose(0, prev)
                for t in range(1, args.frames):
                    camera = src.frame0.camera.with_pose(path.pose(t, prev))
                    view = gen.begin_step(camera)
                    truth = gt(camera)
                    masks = {g: m.cpu() for g, m in regions(view, truth.sky.to(view.alpha.device)).items()}
                    frames = {r: ref(view) for r, ref in refiners.items()}
                    for r, f in frames.items():
                        err = ((f.rgb.float().cpu() - truth.rgb) ** 2).mean(-1)  # [H, W]
                        for g, m in masks.items():
                            sse[(r, g)] += float(err[m].sum())
                    for g, m in masks.items():
                        count[g] += int(m.sum())
                    gen.end_step(frames[lead], view)
                    prev = frames[lead]
                print(f"# seed {seed} {kind}: done", flush=True)

    total = sum(count.values())
    rows = {}
    print(f"\n{'region':<8} {'share':>7} " + " ".join(f"{Path(r).name:>14}" for r in args.refiners))
    for g in REGIONS:
        n = max(count[g], 1)
        ps = {r: (10 * math.log10(1.0 / max(sse[(r, g)] / n, 1e-12)) if count[g] else math.nan) for r in args.refiners}
        rows[g] = {"share": count[g] / max(total, 1), "psnr": ps}
        print(f"{g:<8} {100 * count[g] / max(total, 1):6.1f}% " + " ".join(f"{ps[r]:14.2f}" for r in args.refiners))
    allp = {r: 10 * math.log10(1.0 / max(sum(sse[(r, g)] for g in REGIONS) / max(total, 1), 1e-12)) for r in args.refiners}
    print(f"{'all':<8} {'100.0%':>7} " + " ".join(f"{allp[r]:14.2f}" for r in args.refiners))
    if args.json:
        atomic_write_text(args.json, json.dumps({"args": vars(args), "regions": rows, "all": allp}, indent=1))


if __name__ == "__main__":
    main()
