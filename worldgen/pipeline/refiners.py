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


COMPOSITION = ("anchor", "texture", "sharp_px", "detail_px", "flip_average")
"""`LearnedRefinerConfig` fields a spec may override after a "+": "learned-fidelity+anchor=0.3+texture=0.5"
(numbers; flip_average 0 or 1), so one command can fly or score compositions of the same weights side by side."""


def _split_spec(spec: str) -> tuple[str, dict[str, float], str | None]:
    """(name, overrides, why the overrides are wrong or None) of a spec "NAME[+KEY=VALUE...]"."""
    name, *parts = spec.split("+")
    overrides: dict[str, float] = {}
    for part in parts:
        key, _, value = part.partition("=")
        if key not in COMPOSITION or not value:
            return name, overrides, "overrides are " + ", ".join(f"+{k}=X" for k in COMPOSITION)
        if key in overrides:
            return name, overrides, f"override +{key} is given twice"
        try:
            overrides[key] = float(value)
        except ValueError:
            return name, overrides, f"override {part!r} is not a number"
    from refine.learned import COMPOSITION_RANGES  # (the values each override may take; flip_average 0 or 1)

    for key, value in overrides.items():
        lo, hi = COMPOSITION_RANGES.get(key, (0.0, 1.0))
        if not lo <= value <= hi or (key == "flip_average" and value not in (0.0, 1.0)):
            return name, overrides, (f"override +{key} must be 0 or 1" if key == "flip_average"
                                     else f"override +{key} must be between {lo:g} and {hi:g}")
    sharp, detail = overrides.get("sharp_px"), overrides.get("detail_px")
    if sharp is not None and detail is not None and not 0 < sharp < detail:
        return name, overrides, "needs 0 < sharp_px < detail_px"
    if overrides and name == "classical":
        return name, overrides, "only a learned refiner has a composition to override"
    return name, overrides, None


def parse_refiner_spec(spec: str) -> tuple[str, dict[str, float]]:
    """("learned-fidelity", {"texture": 0.2}) from "learned-fidelity+texture=0.2": the refiner's name (or weights
    path) and its composition overrides (`COMPOSITION`). Raises UserInputError (one line) for an unknown key, a
    value that is not a number, footprints out of order (0 < sharp_px < detail_px) or overrides of "classical"."""
    name, overrides, wrong = _split_spec(spec)
    if wrong is not None:
        raise UserInputError(f"--refiner {wrong}, got {spec!r}")
    return name, overrides


def refiner_spec_problem(spec: str) -> str | None:
    """Why `spec` names no refiner `make_refiner` can build (None if it names one); checked when a
    config is validated, so a bad --refiner fails before anything is written."""
    from pathlib import Path

    name, _, wrong = _split_spec(spec)
    if wrong is not None:
        return wrong
    if name in SHIPPED and not shipped_weights(name).is_file():
        return f"{name} needs the shipped weights {shipped_weights(name)}, which are missing"
    if name in REFINERS:
        return None
    if name.endswith(".pt"):
        return None if Path(name).is_file() else f"names a weights file that does not exist ({name})"
    return (f"must be one of {', '.join(REFINERS)} or a weights FILE.pt (a learned one + KEY=VALUE overrides its "
            "composition)")


def make_refiner(spec: str, device: torch.device | str = "cpu", *,
                 classical: ClassicalRefinerConfig | None = None, anchor: float | None = None,
                 texture: float | None = None, seed: int = 0) -> Refiner:
    """The refiner named by `spec`, ready to run on `device`.

    Args:
        spec: "classical" (push-pull hole filling, no weights), "learned" (the shipped network,
            refine/weights/refiner.pt, composed as saved with it: colour and detail anchors on, for flights
            over photos), "learned-fidelity" (refine/weights/refiner-fidelity.pt, the network trained further for
            fidelity, without the anchors, `refine.learned.FIDELITY`: closest to ground truth) or the path of a
            weights file / training checkpoint; any of these but "classical" may end in composition overrides,
            "+KEY=VALUE" for the KEYs of `COMPOSITION` (e.g. "learned-fidelity+anchor=0.3").
        device: where it runs (the classical refiner runs wherever its input is).
        classical: settings of the classical refiner (default: ClassicalRefinerConfig()).
        anchor: the learned refiner's colour anchor (`LearnedRefinerConfig.anchor`), instead of the one
            saved with its weights or given in `spec` (None: those); not used by the classical refiner.
        texture: the learned refiner's detail anchor (`LearnedRefinerConfig.texture`), likewise.
        seed: seed of the learned refiner's noise input (`LearnedRefiner`); the classical refiner has none.

    Raises UserInputError (one line) for an unknown spec or an unreadable weights file.
    """
    name, spec_overrides = parse_refiner_spec(spec)
    if name == "classical":
        return ClassicalRefiner(classical or ClassicalRefinerConfig())
    problem = refiner_spec_problem(spec)
    if problem is not None:
        raise UserInputError(f"--refiner {problem}, got {spec!r}")
    from refine.learned import FIDELITY, LearnedRefiner

    try:
        refiner = LearnedRefiner.load(shipped_weights(name) if name in SHIPPED else name, device, seed)
    except ValueError as e:
        raise UserInputError(str(e)) from None
    overrides = dict(FIDELITY) if name == "learned-fidelity" else {}
    overrides.update(spec_overrides)
    overrides.update({k: float(v) for k, v in (("anchor", anchor), ("texture", texture)) if v is not None})
    if "flip_average" in overrides:
        overrides["flip_average"] = bool(overrides["flip_average"])
    if overrides:
        cfg = dataclasses.replace(refiner.config, **overrides)
        if not 0 < cfg.sharp_px < cfg.detail_px:
            raise UserInputError(f"--refiner needs 0 < sharp_px < detail_px (here {cfg.sharp_px} / {cfg.detail_px}), "
                                 f"got {spec!r}")
        refiner.config = cfg
    return refiner


def pipeline_refiner(pipeline, device: torch.device | str = "cpu") -> Refiner:
    """`make_refiner` with the settings of a `PipelineConfig` (worldgen/pipeline/config.py): --refiner,
    --classical-refiner.*, --refiner-anchor, --refiner-texture and --refiner-seed."""
    return make_refiner(pipeline.refiner, device, classical=pipeline.classical_refiner, anchor=pipeline.refiner_anchor,
                        texture=pipeline.refiner_texture, seed=pipeline.refiner_seed)
