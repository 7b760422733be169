"""Refiners against procedural ground truth: PSNR, SSIM and depth AbsRel per step range.

    python scripts/eval_refiner.py --refiners classical learned [FILE.pt ...] --seeds 1000000 1000001
        [--paths forward autopilot] [--frames 65] [--size 256x256] [--device cpu|cuda] [--out FILE.json]
        [--baseline FILE.json] [--baseline-refiner classical]
    python scripts/eval_refiner.py --compare RUN.json --baseline FILE.json   (no flights: compare two result files)
    python scripts/eval_refiner.py --tune --seeds 500101 500202 --refiners learned-fidelity learned-fidelity+texture=0.3
        (a composition override per refiner, +anchor=X / +texture=X; --tune flies train seeds instead, so a
        composition is chosen without looking at the eval seeds)

For each eval seed (refine/synth/splits.py: 1,000,000..1,000,999; never trained on), path, refiner and
mode (persistent, per-frame), the generator flies `frames` frames from the world's first frame (exact
depth) and every generated frame is scored against the world rendered at the same pose:
    PSNR / SSIM of the colour;
    AbsRel = mean |d - d*| / d* of z-depth over pixels that are ground in both (sky excluded);
    sky agreement = share of pixels whose sky / ground label matches.
Figures are averaged over the step ranges 1-8, 9-32, 33-64 (and all). Prints a markdown table and
writes the per-step series to --out. Autopilot paths depend on the frames, so each refiner and mode
flies (and is scored on) its own poses.

Against a baseline (the `--baseline-refiner` of this run, else of `--baseline FILE.json`, e.g. the committed
docs/eval/classical_256x256_65.json, so a GPU call need not fly the classical refiner again): for every other
refiner, per path x mode x step range, the mean over the seeds both have, to four decimals, and how many cells
it wins (PSNR and SSIM higher, AbsRel lower: the learned-refiner issue's criterion), then the PSNR difference
per seed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worldgen.core.io import UserInputError, atomic_write, os_error_line  # noqa: E402
from worldgen.pipeline.refiners import make_refiner  # noqa: E402

RANGES = ((1, 8), (9, 32), (33, 64))


def fly_and_score(seed: int, path_kind: str, refiner_spec: str, mode: str, frames: int, size: tuple[int, int],
                  device: torch.device, gt_cache: dict) -> dict:
    from renderers import get_renderer
    from worldgen.core.metrics import psnr, ssim
    from worldgen.pipeline.config import PipelineConfig
    from worldgen.pipeline.flight import Flight
    from worldgen.pipeline.generator import make_generator
    from worldgen.pipeline.paths import make_path
    from worldgen.pipeline.sources import GroundTruth, scene_scale, synthetic_source

    W, H = size
    key = (seed, W, H)
    if key not in gt_cache:
        src = synthetic_source(seed, W, H, device)
        gt_cache[key] = (src, GroundTruth(src.world))
    src, gt = gt_cache[key]
    p = PipelineConfig()
    path = make_path(path_kind, src.frame0.camera, scene_scale(src.frame0), frames, speed=p.speed, autopilot=p.autopilot)
    gen = make_generator(mode, src.frame0, get_renderer(device.type), make_refiner(refiner_spec, device), p.generator)
    series = {"psnr": [], "ssim": [], "absrel": [], "sky_agree": []}
    with torch.no_grad():
        for step in Flight(gen, path, frames):
            if step.t == 0:
                continue
            truth = gt(step.camera)
            rgb = step.frame.rgb.detach().float().cpu()
            depth = step.frame.depth.detach().float().cpu()
            series["psnr"].append(psnr(rgb, truth.rgb))
            series["ssim"].append(ssim(rgb, truth.rgb))
            both = torch.isfinite(depth) & torch.isfinite(truth.depth) & (truth.depth > 0)
            rel = ((depth - truth.depth).abs() / truth.depth)[both]
            series["absrel"].append(float(rel.mean()) if rel.numel() else math.nan)
            series["sky_agree"].append(float((step.frame.sky.cpu() == truth.sky).float().mean()))
    return series


def summarise(series: dict) -> dict:
    out = {}
    n = len(series["psnr"])
    for lo, hi in RANGES + ((1, n),):
        if lo > n:
            continue
        name = f"{lo}-{min(hi, n)}" if (lo, hi) != (1, n) else "all"
        out[name] = {}
        for k, v in series.items():
            vals = [x for x in v[lo - 1:hi] if not math.isnan(x)]
            out[name][k] = sum(vals) / len(vals) if vals else math.nan
    return out


def cell_means(results: list[dict], spec: str, flights: set[tuple] | None = None) -> dict:
    """{(path, mode, range): {psnr, ssim, absrel}} of refiner `spec` over the (seed, path, mode) `flights` (None: all
    its flights): per cell the mean over its flights of the range's mean, in the order the results were flown."""
    rows = [r for r in results
            if r["refiner"] == spec and (flights is None or (r["seed"], r["path"], r["mode"]) in flights)]
    out = {}
    for path_kind, mode in dict.fromkeys((r["path"], r["mode"]) for r in rows):
        for lo, hi in RANGES:
            k = f"{lo}-{hi}"
            vals = [r["summary"][k] for r in rows if (r["path"], r["mode"]) == (path_kind, mode) and k in r["summary"]]
            if vals:
                out[(path_kind, mode, k)] = {q: sum(v[q] for v in vals) / len(vals) for q in ("psnr", "ssim", "absrel")}
    return out


def compare(results: list[dict], base: list[dict], base_spec: str) -> list[str]:
    """Lines comparing every refiner of `results` but `base_spec` with `base_spec`'s results in `base`, on the
    (seed, path, mode) flights both have: per cell both means and the wins (PSNR and SSIM higher, AbsRel lower)."""
    lines = []
    for spec in dict.fromkeys(r["refiner"] for r in results if r["refiner"] != base_spec):
        mine = {(r["seed"], r["path"], r["mode"]) for r in results if r["refiner"] == spec}
        theirs = {(r["seed"], r["path"], r["mode"]) for r in base if r["refiner"] == base_spec}
        shared = mine & theirs
        if not shared:
            lines.append(f"{spec}: no flight in common with the baseline {base_spec}")
            continue
        seeds = sorted({k[0] for k in shared})
        a, b = cell_means(results, spec, shared), cell_means(base, base_spec, shared)
        wins = {"psnr": 0, "ssim": 0, "absrel": 0}
        cells = [k for k in a if k in b]
        lines.append(f"\n{spec} against {base_spec} ({len(shared)} flights in common, seeds {seeds}; "
                     f"PSNR / SSIM / AbsRel, * = {spec} better)")
        for k in cells:
            better = {"psnr": a[k]["psnr"] > b[k]["psnr"], "ssim": a[k]["ssim"] > b[k]["ssim"],
                      "absrel": a[k]["absrel"] < b[k]["absrel"]}
            for q, w in better.items():
                wins[q] += w
            mark = lambda q, v, f: f"{v:{f}}{'*' if better[q] else ' '}"  # noqa: E731
            lines.append(f"  {k[0]:9s} {k[1]:10s} {k[2]:>5s}  " + " / ".join(
                mark(q, a[k][q], f) for q, f in (("psnr", ".2f"), ("ssim", ".4f"), ("absrel", ".4f")))
                + f"   vs {b[k]['psnr']:.2f} / {b[k]['ssim']:.4f} / {b[k]['absrel']:.4f}")
        lines.append(f"  wins of {len(cells)} cells: PSNR {wins['psnr']}, SSIM {wins['ssim']}, AbsRel {wins['absrel']}")
        for seed in seeds:
            own = {k for k in shared if k[0] == seed}
            a1, b1 = cell_means(results, spec, own), cell_means(base, base_spec, own)
            lines.append(f"  seed {seed} PSNR difference: " + "  ".join(
                f"{k[0][:4]}/{k[1][:4]}/{k[2]} {a1[k]['psnr'] - b1[k]['psnr']:+.2f}"
                for k in cells if k in a1 and k in b1))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--refiners", nargs="+", default=["classical", "learned"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1_000_000, 1_000_001, 1_000_002])
    ap.add_argument("--paths", nargs="+", default=["forward", "autopilot"])
    ap.add_argument("--modes", nargs="+", default=["persistent", "per-frame"])
    ap.add_argument("--frames", type=int, default=65, help="frames including frame 0 (65: steps 1-64)")
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default="runs/eval_refiner.json")
    ap.add_argument("--baseline", default=None, help="a result file of this script holding the baseline refiner")
    ap.add_argument("--baseline-refiner", default="classical")
    ap.add_argument("--tune", action="store_true",
                    help="allow train seeds (500000..): to choose a composition without looking at the eval seeds")
    ap.add_argument("--compare", default=None, metavar="RUN.json",
                    help="compare this result file with --baseline; no flights")
    a = ap.parse_args()
    from refine.synth.splits import split_of
    from worldgen.core.config import check_at_least_option
    from worldgen.core.device import resolve_device
    from worldgen.core.images import parse_size
    from worldgen.core.io import check_output_file

    W, H = parse_size(a.size)
    check_at_least_option(a, "frames", 2)
    for option, given, known in (("--paths", a.paths, ("forward", "autopilot")),
                                 ("--modes", a.modes, ("persistent", "per-frame"))):
        if set(given) - set(known):
            raise UserInputError(f"{option}: {sorted(set(given) - set(known))[0]!r} is not one of {', '.join(known)}")

    def read(path: str) -> dict:
        try:
            blob = json.loads(Path(path).read_text())
            if not isinstance(blob, dict) or not isinstance(blob["results"], list):
                raise ValueError("not a result file of this script")
            return blob
        except (OSError, ValueError, KeyError, TypeError) as e:
            sys.exit(f"eval_refiner: cannot read results from {path}: {e}")

    def same_setting(blob: dict, other: dict, name: str) -> None:
        """Exit with one line unless `blob` was flown at `other`'s size and frames (missing keys are not checked)."""
        for key in ("size", "frames"):
            if key in blob and key in other and blob[key] != other[key]:
                sys.exit(f"eval_refiner: {name} has {key} {blob[key]}, the results compared have {other[key]}")

    base_blob = read(a.baseline) if a.baseline else None
    base = base_blob["results"] if base_blob else None
    if a.compare:
        if base is None:
            sys.exit("eval_refiner: --compare needs --baseline FILE.json")
        run = read(a.compare)
        same_setting(base_blob, run, a.baseline)
        print("\n".join(compare(run["results"], base, a.baseline_refiner)))
        return
    if base_blob is not None:
        same_setting(base_blob, {"size": [W, H], "frames": a.frames}, a.baseline)

    bad = [s for s in a.seeds if split_of(s) != ("train" if a.tune else "eval")]
    if bad:
        sys.exit(f"eval_refiner: seeds {bad} are not " + ("train seeds (--tune)" if a.tune
                                                           else "evaluation seeds (1000000..1000999)"))
    device = resolve_device(a.device)
    check_output_file(a.out, (".json",), "--out")  # (before the flights, not after them)
    for spec in a.refiners:  # every spec resolves (weights exist, overrides fit) before the first flight
        make_refiner(spec, device)
    results, gt_cache = [], {}
    for seed in a.seeds:
        for path_kind in a.paths:
            for mode in a.modes:
                for spec in a.refiners:
                    t0 = time.perf_counter()
                    s = fly_and_score(seed, path_kind, spec, mode, a.frames, (W, H), device, gt_cache)
                    results.append({"seed": seed, "path": path_kind, "mode": mode, "refiner": spec, "series": s,
                                    "summary": summarise(s)})
                    print(f"seed {seed} {path_kind:9s} {mode:10s} {spec:12s} {time.perf_counter() - t0:6.1f} s  "
                          + "  ".join(f"{r}: {v['psnr']:.2f} dB {v['ssim']:.3f} {v['absrel']:.3f}"
                                      for r, v in results[-1]["summary"].items()), flush=True)
                    with atomic_write(a.out, "w") as f:  # (rewritten after each flight; never half-written)
                        json.dump({"date": time.strftime("%Y-%m-%d"), "device": str(device), "size": [W, H],
                                   "frames": a.frames, "results": results}, f)
    # markdown: mean over seeds per (path, mode, refiner, range)
    print("\n| path | mode | refiner | " + " | ".join(f"steps {lo}-{hi} PSNR / SSIM / AbsRel" for lo, hi in RANGES) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in RANGES) + " |")
    means = {spec: cell_means(results, spec) for spec in a.refiners}
    for path_kind in a.paths:
        for mode in a.modes:
            for spec in a.refiners:
                ms = [means[spec].get((path_kind, mode, f"{lo}-{hi}")) for lo, hi in RANGES]
                cells = ["-" if m is None else f"{m['psnr']:.2f} / {m['ssim']:.3f} / {m['absrel']:.3f}" for m in ms]
                print(f"| {path_kind} | {mode} | {spec} | " + " | ".join(cells) + " |")
    if a.baseline_refiner in a.refiners or base is not None:
        print("\n".join(compare(results, results if a.baseline_refiner in a.refiners else base, a.baseline_refiner)))


if __name__ == "__main__":
    try:
        main()
    except UserInputError as e:  # e.g. a --refiners FILE that is not a weights file: one line, not a traceback
        sys.exit(f"eval_refiner: {e}")
    except OSError as e:  # the machine's (a full disk): one line
        sys.exit(f"eval_refiner: {os_error_line(e)}")
