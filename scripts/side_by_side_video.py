"""One video of several flights side by side (e.g. the README's classical vs learned flight).

    python scripts/side_by_side_video.py RUN_A RUN_B [...] --labels "classical" "learned" \
        --out docs/flight.mp4 [--fps 10] [--scale 1]

Each RUN is a `worldgen fly` run folder; its frames/00000.png... are read one at a time (all runs
must have the same frame size; the video is as long as the shortest run). The labels name the panels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from worldgen.core.images import side_by_side, write_video

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--labels", nargs="+", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--fps", type=int, default=10)
    ap.add_argument("--scale", type=int, default=1)
    a = ap.parse_args()
    lists = [sorted((Path(r) / "frames").glob("*.png")) for r in a.runs]
    if not all(lists):
        raise SystemExit("side_by_side_video: every run folder needs frames/*.png")
    labels = a.labels or [Path(r).name for r in a.runs]
    if len(labels) != len(a.runs):
        raise SystemExit("side_by_side_video: give one label per run")
    n = min(len(x) for x in lists)

    def frames():
        for t in range(n):
            panels = [np.asarray(Image.open(x[t]).convert("RGB")) for x in lists]
            img = side_by_side(panels, labels=[f"{lab}  t={t}" if i == 0 else lab for i, lab in enumerate(labels)],
                               scale=a.scale)
            yield img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2]  # even size for H.264

    write_video(a.out, frames(), a.fps)
    print(f"{a.out}: {n} frames, {n / a.fps:.1f} s at {a.fps} fps")


if __name__ == "__main__":
    main()
