"""Choosing the refiner: the one place a `--refiner` spec becomes a `Refiner`."""

from __future__ import annotations

import dataclasses

import torch

from refine.classical import ClassicalRefiner, ClassicalRefinerConfig
from worldgen.core.interfaces import Refiner
from worldgen.core.io import UserInputError

SHIPPED = ("learned", "learned-fidelity")
"""The names of the shipped weights: refine/weights/refiner.pt as composed in the file (the default), and
refine/weights/refiner-fidelity.pt without anchors (`shipped_weights`)."""
REFINERS = ("classical", *SHIPPED)
"""Refiner names `make_refiner` knows (besides a weights file's path)."""


def shipped_weights(spec: str):
    """The weights file (Path) of a shipped refiner name (one of SHIPPED)."""
    from refine.learned import SHIPPED_WEIGHTS

    return SHIPPED_WEIGHTS[spec]


def refiner_spec_problem(spec: str) -> str | None:
    """Why `spec` names no refiner `make_refiner` can build (None if it names one); checked when a
    config is validated, so a bad --refiner fails before anything is written."""
    from pathlib import Path

    if spec in SHIPPED and not shipped_weights(spec).is_file():
        return f"{spec} needs the shipped weights {shipped_weights(spec)}, which are missing"
    if spec in REFINERS:
        return None
    if spec.endswith(".pt"):
        return None if Path(spec).is_file() else f"names a weights file that does not exist ({spec})"
    return f"must be one of {', '.join(REFINERS)} or a weights FILE.pt"


def make_refiner(spec: str, device: torch.device | str = "cpu", *,
                 classical: ClassicalRefinerConfig | None = None, anchor: float | None = None,
                 texture: float | None = None) -> Refiner:
    """The refiner named by `spec`, ready to run on `device`.

    Args:
        spec: "classical" (push-pull hole filling, no weights), "learned" (the shipped network,
            refine/weights/refiner.pt, composed as saved with it: colour and detail anchors on, for flights
            over photos), "learned-fidelity" (refine/weights/refiner-fidelity.pt, the network trained further for
            fidelity, without the anchors, `refine.learned.FIDELITY`: closest to ground truth) or the path of a
            weights file / training checkpoint.
        device: where it runs (the classical refiner runs wherever its input is).
        classical: settings of the classical refiner (default: ClassicalRefinerConfig()).
        anchor: the learned refiner's colour anchor (`LearnedRefinerConfig.anchor`), instead of the one
            saved with its weights (None: the saved one); not used by the classical refiner.
        texture: the learned refiner's detail anchor (`LearnedRefinerConfig.texture`), likewise.

    Raises UserInputError (one line) for an unknown spec or an unreadable weights file.
    """
    if spec == "classical":
        return ClassicalRefiner(classical or ClassicalRefinerConfig())
    problem = refiner_spec_problem(spec)
    if problem is not None:
        raise UserInputError(f"--refiner {problem}, got {spec!r}")
    from refine.learned import FIDELITY, LearnedRefiner

    try:
        refiner = LearnedRefiner.load(shipped_weights(spec) if spec in SHIPPED else spec, device)
    except ValueError as e:
        raise UserInputError(str(e)) from None
    overrides = {}
    if spec == "learned-fidelity":
        overrides.update(FIDELITY)
    overrides.update({k: float(v) for k, v in (("anchor", anchor), ("texture", texture)) if v is not None})
    if overrides:
        refiner.config = dataclasses.replace(refiner.config, **overrides)
    return refiner


def pipeline_refiner(pipeline, device: torch.device | str = "cpu") -> Refiner:
    """`make_refiner` with the settings of a `PipelineConfig` (worldgen/pipeline/config.py): --refiner,
    --classical-refiner.*, --refiner-anchor and --refiner-texture."""
    return make_refiner(pipeline.refiner, device, classical=pipeline.classical_refiner, anchor=pipeline.refiner_anchor,
                        texture=pipeline.refiner_texture)
