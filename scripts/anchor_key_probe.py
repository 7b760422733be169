"""Which key should the colour anchor look the photo's ground colour up by: elevation, or distance?

    OMP_NUM_THREADS=1 .venv/bin/python scripts/anchor_key_probe.py [--seeds 1000000 1000001 1000002] [--paths forward autopilot]

The learned refiner's colour anchor (worldgen/core/anchor.py) pulls generated ground towards the first frame's mean
ground colour at the same elevation relative to the horizon: the same distance while the camera keeps its height over
flat ground, another distance once it climbs, descends or the ground rises. On held-out procedural flights the anchor
costs `learned` most of its late-step PSNR on the smooth tundra world (BENCHMARKS.md, 2026-12-03 sixth). This probe
asks, with the truth alone (no refiner in the score): over the ground pixels of later frames, how far is the truth's
local mean colour (15-pixel box) from the anchor looked up by elevation (`ground_anchor`, as shipped) and from one
looked up by the ray's distance (the first frame's mean ground colour in bands of log distance, the same band count,
linear between bands, held beyond the ends)? Mean absolute difference in 8-bit levels per step range. The camera
follows the flight a push-pull refiner makes (the eval's own paths). Figures: BENCHMARKS.md, 2026-12-03 sixth.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worldgen.core.anchor import ANCHOR_BANDS, anchor_colour, band_means, ground_anchor  # noqa: E402
from worldgen.core.config import check_at_least_option, check_seed_option  # noqa: E402
from worldgen.core.images import parse_size  # noqa: E402
from worldgen.core.io import UserInputError  # noqa: E402

RANGES = ((1, 8), (9, 32), (33, 64))


def ray_distance(frame) -> torch.Tensor:
    """[H, W] distance along each pixel's ray of a Frame's z-depth (inf where the depth is)."""
    return frame.depth * frame.camera.rays_cam().norm(dim=-1)


def distance_table(frame) -> tuple[torch.Tensor, float, float]:
    """([ANCHOR_BANDS, 3] mean ground colour per band of log distance, lo, hi of the bands' log-distance range)."""
    ok = ~frame.sky & torch.isfinite(frame.depth)
    logd = ray_distance(frame)[ok].log()
    lo, hi = float(logd.quantile(0.01)), float(logd.quantile(0.99))
    pos = ((logd - lo) / max(hi - lo, 1e-6) * (ANCHOR_BANDS - 1)).clamp(0, ANCHOR_BANDS - 1)
    return band_means(frame.rgb[ok].float(), pos.round().long(), ANCHOR_BANDS), lo, hi


def by_distance(table: torch.Tensor, lo: float, hi: float, dist: torch.Tensor) -> torch.Tensor:
    """[..., 3] the table's colour at distances `dist` [...] (linear between band centres, held beyond the ends)."""
    pos = ((dist.log() - lo) / max(hi - lo, 1e-6) * (ANCHOR_BANDS - 1)).clamp(0, ANCHOR_BANDS - 1)
    i = pos.floor().long().clamp(max=ANCHOR_BANDS - 2)
    t = (pos - i.float())[..., None]
    return table[i] * (1 - t) + table[i + 1] * t


def local_mean(rgb: torch.Tensor) -> torch.Tensor:
    """[H, W, 3] -> its 15-pixel box mean (edges not padded in)."""
    x = rgb.permute(2, 0, 1)[None]
    return F.avg_pool2d(x, 15, 1, 7, count_include_pad=False)[0].permute(1, 2, 0)


def probe(seed: int, path_kind: str, frames: int, size: tuple[int, int]) -> dict:
    from renderers import get_renderer
    from worldgen.pipeline.config import PipelineConfig
    from worldgen.pipeline.flight import Flight
    from worldgen.pipeline.generator import horizon_elevation_deg, make_generator
    from worldgen.pipeline.paths import make_path
    from worldgen.pipeline.refiners import make_refiner
    from worldgen.pipeline.sources import GroundTruth, scene_scale, synthetic_source

    W, H = size
    src = synthetic_source(seed, W, H, torch.device("cpu"))
    gt = GroundTruth(src.world)
    p = PipelineConfig()
    f0 = src.frame0
    horizon = horizon_elevation_deg(f0, p.generator.horizon_quantile)
    elev_table = ground_anchor(f0, horizon)
    dist_table, lo, hi = distance_table(f0)
    path = make_path(path_kind, f0.camera, scene_scale(f0), frames, speed=p.speed, autopilot=p.autopilot)
    gen = make_generator("persistent", f0, get_renderer("cpu"), make_refiner("classical"), p.generator)
    err = {"elevation": [], "distance": []}
    with torch.no_grad():
        for step in Flight(gen, path, frames):
            if step.t == 0:
                continue
            truth = gt(step.camera)
            ok = ~truth.sky & torch.isfinite(truth.depth)
            if not bool(ok.any()):
                err["elevation"].append(math.nan)
                err["distance"].append(math.nan)
                continue
            target = local_mean(truth.rgb.float())[ok]
            rel = step.camera.ray_elevation_deg() - horizon
            a_elev = anchor_colour(elev_table, rel)[ok]
            a_dist = by_distance(dist_table, lo, hi, ray_distance(truth))[ok]
            err["elevation"].append(float((a_elev - target).abs().mean()))
            err["distance"].append(float((a_dist - target).abs().mean()))
    return err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1000000, 1000001, 1000002])
    ap.add_argument("--paths", nargs="+", default=["forward", "autopilot"])
    ap.add_argument("--frames", type=int, default=65)
    ap.add_argument("--size", default="256x256")
    args = ap.parse_args()
    try:  # (one line and exit 2 before any flight)
        check_seed_option(args, "seeds")
        check_at_least_option(args, "frames", 2)
        W, H = parse_size(args.size)
    except UserInputError as e:
        sys.exit(f"anchor_key_probe.py: {e}")
    print("| seed | path | key | " + " | ".join(f"steps {a}-{b}: mean abs. difference (8-bit)" for a, b in RANGES) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in RANGES) + " |")
    for seed in args.seeds:
        for kind in args.paths:
            err = probe(seed, kind, args.frames, (W, H))
            for key, series in err.items():
                cells = []
                for a, b in RANGES:
                    vals = [v for v in series[a - 1:b] if not math.isnan(v)]
                    m = sum(vals) / len(vals) if vals else math.nan
                    cells.append(f"{255 * m:.2f}")
                print(f"| {seed} | {kind} | {key} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
