"""Zero the refiner network's colour-residual output (the head's RGB rows) in a weights file or training checkpoint.

The learned refiner's colour is the classical refiner's plus the network's residual (refine/learned.py), so with
those rows zeroed the colour is exactly the classical refiner's while the network's sky and depth outputs are kept:
the starting point of a fine-tuning run that may only improve on push-pull colour (the fidelity run of 2026-12-02,
configs/train.py `train-refiner-h200-fidelity`). Everything else in the file (step, data cursor, history, critic)
is kept, so `worldgen train` resumes from it as from the original.

    python scripts/reset_colour_residual.py refine/weights/refiner.pt runs/fid/checkpoint-compact.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refine.net import OUT_CHANNELS  # noqa: E402
from worldgen.core.io import UserInputError, os_error_line, save_torch  # noqa: E402

RGB_ROWS = slice(0, 3)  # refine/net.py: outputs 0-2 are the RGB residual, 3 log-disparity, 4 sky logit


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="refiner weights or training checkpoint (.pt)")
    ap.add_argument("dst", type=Path, help="where to write the copy with the colour residual zeroed")
    a = ap.parse_args(argv)
    try:
        blob = torch.load(a.src, map_location="cpu", weights_only=False)
        sd = blob["refiner"]["state_dict"] if "refiner" in blob else blob["state_dict"]
        w, b = sd["head.weight"], sd["head.bias"]
    except (OSError, RuntimeError, KeyError, TypeError) as e:
        print(f"error: {a.src} is not a refiner weights file or checkpoint ({e})", file=sys.stderr)
        return 1
    if w.shape[0] != OUT_CHANNELS:
        print(f"error: {a.src}: the head has {w.shape[0]} outputs, {OUT_CHANNELS} expected (RGB, log-disparity, sky)",
              file=sys.stderr)
        return 1
    before = float(w[RGB_ROWS].abs().sum() + b[RGB_ROWS].abs().sum())
    w[RGB_ROWS] = 0
    b[RGB_ROWS] = 0
    if blob.get("opt_g") is not None:  # a full checkpoint: its Adam moments would move the rows off zero at once
        blob["opt_g"] = None
    try:
        save_torch(a.dst, blob)  # (atomically: a full disk leaves no cut-short file under dst)
    except UserInputError as e:  # a folder that cannot take it
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the machine's (a full disk)
        print(f"error: cannot write {a.dst}: {os_error_line(e)}", file=sys.stderr)
        return 1
    print(f"{a.dst}: colour-residual rows zeroed (their absolute sum was {before:.3f}); "
          f"step {blob.get('step', '?')} kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
