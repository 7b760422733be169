"""Average the weights of several compact training checkpoints of one network (the refiner or the depth network).

    python scripts/average_weights.py refine/weights/refiner-fidelity.pt runs/rf2/refiner-9427.pt \
        --out runs/rf2/refiner-avg.pt [--mix 0.5 0.5]
    python scripts/average_weights.py refine/weights/depth.pt runs/d/checkpoint-compact.pt --out runs/d/avg.pt

A weighted mean of the network's floating-point tensors (integer buffers are taken from the last file);
everything else (step, data cursor, loss history, discriminator, composition) is the last file's, so a training run can
go on from the result. The refiner's `meta` is the union of the sources' (the later file's winning on a shared key) and
records the sources in `meta["averaged_from"]` ([{file, step, mix}]). The files must hold the same network
(`net_config`; the network is the checkpoint's "refiner" entry, or its "depth" entry for a depth training
checkpoint). Writes through a temporary file; bad input is one line and exit code 2.
Used for `learned-fidelity` (2026-12-03: the mean of steps 8731 and 9427, chosen on train seeds).
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worldgen.core.io import UserInputError, save_torch  # noqa: E402


def _load(path: str) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserInputError(f"no such checkpoint: {path}") from None
    except Exception as e:  # noqa: BLE001  (pickle, zip and torch errors all mean "not a checkpoint")
        raise UserInputError(f"cannot read {path} as a checkpoint: {type(e).__name__}") from None
    if not isinstance(ckpt, dict) or _net_key(ckpt) is None:
        raise UserInputError(f"{path} is not a refiner or depth training checkpoint (no network state_dict)")
    return ckpt


def _net_key(ckpt: dict) -> str | None:
    """The entry of a training checkpoint that holds its network ("refiner" or "depth"), or None."""
    for k in ("refiner", "depth"):
        if isinstance(ckpt.get(k), dict) and "state_dict" in ckpt[k]:
            return k
    return None


def average(paths: list[str], mix: list[float]) -> dict:
    """The last checkpoint of `paths` with its network's weights replaced by sum_i mix_i * weights_i (mix sums to 1).

    Floating tensors are averaged in float32 and stored in the last file's dtype; others are the last file's."""
    if len(paths) < 2 or len(mix) != len(paths):
        raise UserInputError("give two or more checkpoints and, with --mix, one weight per checkpoint")
    if any(m < 0 for m in mix) or abs(sum(mix) - 1.0) > 1e-6:
        raise UserInputError(f"--mix must be non-negative and sum to 1, got {mix}")
    ckpts = [_load(p) for p in paths]
    key = _net_key(ckpts[-1])
    last = ckpts[-1][key]
    for p, c in zip(paths, ckpts):
        if _net_key(c) != key or c[key].get("net_config") != last.get("net_config") or \
                c[key]["state_dict"].keys() != last["state_dict"].keys():
            raise UserInputError(f"{p} holds another network than {paths[-1]}")
    out = copy.deepcopy(ckpts[-1])
    state = {}
    for k, v in last["state_dict"].items():
        if v.is_floating_point():
            acc = sum(m * c[key]["state_dict"][k].float() for m, c in zip(mix, ckpts))
            state[k] = acc.to(v.dtype)
        else:
            state[k] = v
    out[key]["state_dict"] = state
    meta = {}
    for c in ckpts:  # the sources' notes, the later file's winning on a shared key
        meta.update(c[key].get("meta") or {})
    meta["averaged_from"] = [{"file": Path(p).name, "step": c.get("step"), "mix": m}
                             for p, c, m in zip(paths, ckpts, mix)]
    out[key]["meta"] = meta
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+", help="compact (or full) refiner training checkpoints")
    ap.add_argument("--mix", type=float, nargs="+", default=None, help="one weight each (default: equal)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    mix = a.mix if a.mix is not None else [1.0 / len(a.checkpoints)] * len(a.checkpoints)
    out = average(a.checkpoints, mix)
    try:
        save_torch(a.out, out)
    except OSError as e:
        raise UserInputError(f"cannot write {a.out}: {e.strerror}") from None
    print(f"{a.out}: " + " + ".join(f"{m:g} x {Path(p).name} (step {s['step']})"
                                    for p, m, s in zip(a.checkpoints, mix, out[_net_key(out)]["meta"]["averaged_from"])))


if __name__ == "__main__":
    try:
        main()
    except UserInputError as e:
        print(f"average_weights: {e}", file=sys.stderr)
        sys.exit(2)
