"""Change the composition saved with a learned refiner's weights (what `--refiner FILE.pt` and `learned` use).

A learned refiner's file holds the network and its composition (refine/learned.py `LearnedRefinerConfig`: the colour
and detail anchors, the footprints, flip averaging): the rules that turn the network's outputs into a frame. They
are not trained, so the shipped default can be recomposed without retraining, as `--refiner learned+anchor=0.35`
flies it for one run. This writes the same file (or a copy) with the overrides saved, atomically; the network,
step, data cursor and history are kept, so `worldgen train` resumes from it as from the original.

    python scripts/recompose.py refine/weights/refiner.pt anchor=0.35 [--out COPY.pt]

KEY=VALUE as after a "+" in a --refiner spec (worldgen/pipeline/refiners.py COMPOSITION, checked the same way).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refine.learned import LearnedRefinerConfig, load_weights  # noqa: E402
from worldgen.core.io import UserInputError, check_output_file, save_torch  # noqa: E402
from worldgen.pipeline.refiners import parse_refiner_spec  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path, help="learned refiner weights or training checkpoint (.pt)")
    ap.add_argument("changes", nargs="+", metavar="KEY=VALUE", help="e.g. anchor=0.35 texture=1")
    ap.add_argument("--out", type=Path, default=None, help="write a copy here instead of replacing WEIGHTS")
    a = ap.parse_args(argv)
    spec = "learned+" + "+".join(a.changes)
    try:
        _, changes = parse_refiner_spec(spec)
        if a.out is not None:
            check_output_file(a.out, (".pt",), "--out")
    except UserInputError as e:  # (the spec's message, said of the KEY=VALUE arguments given here)
        print("error: " + str(e).removeprefix("--refiner ").replace(f"got {spec!r}", f"got {' '.join(a.changes)!r}"),
              file=sys.stderr)
        return 2
    try:
        load_weights(a.weights)  # (a missing, corrupt or other file: ValueError or OSError, one line)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    blob = torch.load(a.weights, map_location="cpu", weights_only=False)
    saved = (blob["refiner"] if "refiner" in blob else blob)["refiner_config"]
    defaults = asdict(LearnedRefinerConfig())  # (a file saved before a field existed composes with its default)
    before = {k: saved.get(k, defaults[k]) for k in changes}
    for key, value in changes.items():
        saved[key] = bool(value) if isinstance(defaults[key], bool) else value
    out = a.out or a.weights
    try:
        save_torch(out, blob)
    except (UserInputError, OSError) as e:
        print(f"error: cannot write {out}: {getattr(e, 'strerror', None) or e}", file=sys.stderr)
        return 1
    print(f"{out}: composition " + ", ".join(f"{k} {before[k]} -> {saved[k]}" for k in changes) +
          f"; step {blob.get('step', '?')} kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
