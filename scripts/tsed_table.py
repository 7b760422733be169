"""TSED figures of several `worldgen compare` runs side by side (e.g. one run per --refiner), as markdown.

    python scripts/tsed_table.py runs/cmp_classical runs/cmp_learned [...] [--thresholds 1 2 4]

Reads each DIR/metrics.json and prints one row per run and mode (persistent, per-frame, and the
ground truth's own figures on procedural inputs): the input, the refiner, TSED at the run's default
T_error (2 px at 256 px, scaled with the image size), TSED at other multiples of it (--thresholds),
the median over pairs of the median symmetric epipolar distance, and the mean SIFT matches per pair.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _nan(v) -> float:
    return math.nan if v is None else float(v)


def rows_of(doc: dict, multiples: list[float]) -> list[list[str]]:
    from worldgen.core.tsed import tsed_share

    src = doc["run"]["source"]
    name = f"synthetic {src['seed']}" if src.get("kind") == "synthetic" else src["file"]
    W, H = doc["run"]["size"]
    T = doc["tsed"]["threshold_px"]
    n_min = doc["tsed"]["min_matches"]
    modes = [(m, doc[m]["series"]) for m in ("persistent", "per-frame")]
    if doc.get("ground_truth_tsed"):
        modes.append(("ground truth", doc["ground_truth_tsed"]["series"]))
    out = []
    for mode, ser in modes:
        seds = [_nan(v) for v in ser["tsed_sed"][1:]]
        n = [_nan(v) for v in ser["tsed_matches"][1:]]
        finite = [v for v in seds if not math.isnan(v)]
        med = statistics.median(finite) if finite else math.nan
        good = [v for v in n if not math.isnan(v)]
        shares = [tsed_share(seds, n, k * T, n_min) for k in [1.0] + multiples]
        out.append([name, f"{W}x{H}", doc["refiner"], mode, str(len(seds))] + [f"{s:.2f}" for s in shares]
                   + [f"{med:.2f}", f"{sum(good) / len(good):.1f}" if good else "n/a"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="output directories of worldgen compare")
    ap.add_argument("--thresholds", nargs="*", type=float, default=[0.5, 2.0],
                    help="more multiples of the default T_error to show TSED at")
    args = ap.parse_args()
    head = ["input", "size", "refiner", "mode", "pairs", "TSED"] + [f"TSED @{k:g}x" for k in args.thresholds] + [
        "median SED, px", "matches/pair"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in args.runs:
        path = Path(d) / "metrics.json"
        if not path.is_file():
            sys.exit(f"tsed_table: error: no {path}")
        for row in rows_of(json.loads(path.read_text()), args.thresholds):
            lines.append("| " + " | ".join(row) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
