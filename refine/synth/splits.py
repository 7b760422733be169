"""Fixed seed ranges of the synthetic data: which worlds train, which evaluate, which are demos.

A world (terrain, climate, sun, haze) and its flight are functions of one integer seed, so a split
is a range of seeds. The ranges are fixed here, once, and never change:

    train  [0, 1_000_000)             training data of the refiner and depth networks
    eval   [1_000_000, 1_001_000)     evaluation / benchmark ground truth; NEVER used for training
    demo   [3_000_000, 3_001_000)     bundled examples, docs, contact sheets

Seeds outside these ranges are "unassigned": fine for experiments, never reported as results.
`worldgen synth` refuses a run whose seeds straddle two splits, so a training set cannot silently
run into the evaluation range.
"""

from __future__ import annotations

SPLITS: dict[str, range] = {
    "train": range(1_000_000),
    "eval": range(1_000_000, 1_001_000),
    "demo": range(3_000_000, 3_001_000),
}


def split_of(seed: int) -> str:
    """Name of the split holding `seed` ("train", "eval", "demo"), or "unassigned"."""
    for name, r in SPLITS.items():
        if seed in r:
            return name
    return "unassigned"


def seeds(split: str, n: int | None = None, start: int = 0) -> range:
    """The seeds of `split` (all of them, or `n` from offset `start`); raises ValueError past its end."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    r = SPLITS[split]
    if n is None:
        return r[start:]
    if start < 0 or n < 0 or start + n > len(r):
        raise ValueError(f"split {split!r} has {len(r)} seeds; asked for {n} from offset {start}")
    return r[start : start + n]


def check_range(first: int, count: int) -> str:
    """Split of seeds first .. first+count-1; raises ValueError if they straddle splits."""
    a, b = split_of(first), split_of(first + count - 1)
    if a != b or any(split_of(s) != a for s in (r.start for r in SPLITS.values()) if first <= s < first + count):
        raise ValueError(
            f"seeds {first}..{first + count - 1} straddle the {a!r} and {b!r} splits "
            f"(eval seeds {SPLITS['eval'].start}..{SPLITS['eval'].stop - 1} are never for training)"
        )
    return a
