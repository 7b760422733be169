"""Choosing the refiner: the one place a `--refiner` spec becomes a `Refiner`."""

from __future__ import annotations

import torch

from refine.classical import ClassicalRefiner, ClassicalRefinerConfig
from worldgen.core.interfaces import Refiner
from worldgen.core.io import UserInputError

REFINERS = ("classical",)
"""Refiner names `make_refiner` knows."""


def refiner_spec_problem(spec: str) -> str | None:
    """Why `spec` names no refiner `make_refiner` can build (None if it names one); checked when a
    config is validated, so a bad --refiner fails before anything is written."""
    if spec in REFINERS:
        return None
    return f"must be one of {', '.join(REFINERS)}"


def make_refiner(spec: str, device: torch.device | str = "cpu", *,
                 classical: ClassicalRefinerConfig | None = None) -> Refiner:
    """The refiner named by `spec`, ready to run on `device`.

    Args:
        spec: "classical" (push-pull hole filling, no weights).
        device: where it runs (the classical refiner runs wherever its input is).
        classical: settings of the classical refiner (default: ClassicalRefinerConfig()).

    Raises UserInputError (one line) for an unknown spec.
    """
    if spec == "classical":
        return ClassicalRefiner(classical or ClassicalRefinerConfig())
    raise UserInputError(f"--refiner {refiner_spec_problem(spec)}, got {spec!r}")
