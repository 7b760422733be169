"""The algorithm's config tree, shared by every command that flies (fly, compare, live, training).

`PipelineConfig` is what a named preset sets (configs/): the working size, the device, the camera
speed, which refiner, and the nested settings of the generator (and its lifting), the refiners and
the autopilot. `PhotoConfig` says how a photo becomes frame 0. Commands nest both without a prefix,
so the options read `--size`, `--refiner`, `--generator.lift.sigma-px`, `--autopilot.altitude`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from refine.classical import ClassicalRefinerConfig
from refine.depthnet import SKY_GROW
from worldgen.core.config import bad, check_seed
from worldgen.core.images import parse_size
from worldgen.pipeline.depth import depth_model_problem
from worldgen.pipeline.generator import GeneratorConfig
from worldgen.pipeline.paths import AutopilotConfig
from worldgen.pipeline.refiners import refiner_spec_problem


@dataclass(frozen=True)
class PhotoConfig:
    """A photo's depth and intrinsics (frame 0 of a flight)."""

    depth: str | None = None
    """Depth or disparity map for the photo (.npy, .npz or 16-bit .png); without it, --depth-model estimates it."""
    depth_model: str = "learned"
    """How the photo's depth is estimated when no --depth is given: learned (the built-in depth network),
    learned-fidelity (the built-in network trained further: nearer the truth on procedural forests and gorges,
    trees and walls stand up; over real photos its flights keep detail and colour less often),
    prior (a ground plane and a far backdrop, no weights), a depth weights FILE.pt, or transformers:NAME
    (a Hugging Face depth model from a local folder or the local cache, e.g.
    transformers:depth-anything/Depth-Anything-V2-Small-hf)."""
    sky_grow: float = SKY_GROW
    """Sky of the learned depth network (--depth-model learned, learned-fidelity or FILE.pt): pixels whose sky
    logit is > 0 seed the sky, which takes every connected pixel whose logit is > this (<= 0; 0: logit > 0 alone). Real
    clouds and overcast, which the network trained on procedural skies is unsure of, then count as sky
    when they touch sure sky (refine/depthnet.py SKY_GROW)."""
    depth_kind: Literal["depth", "disparity"] = "depth"
    """What the --depth file holds: z-depth, or disparity (1/depth; 0 = sky)."""
    camera: str | None = None
    """JSON with the photo's intrinsics (fx, fy, cx, cy, width, height; top level or under "intrinsics");
    overrides --fov."""
    fov: float = 60.0
    """Horizontal field of view of the photo, degrees (used without --camera)."""

    def validate(self) -> None:
        if self.camera is None and not 1.0 <= self.fov <= 170.0:
            raise bad("fov", "must be between 1 and 170 degrees", self.fov)
        problem = depth_model_problem(self.depth_model)
        if problem:
            raise bad("depth_model", problem, self.depth_model)
        if not (math.isfinite(self.sky_grow) and self.sky_grow <= 0):
            raise bad("sky_grow", "must be a finite logit <= 0", self.sky_grow)


@dataclass(frozen=True)
class PipelineConfig:
    """Working size, device, camera speed, refiner, and the generator's, refiners' and autopilot's settings."""

    size: str = "auto"
    """Working size WxH (the photo is centre-cropped to its aspect); auto: the photo's aspect with the
    longer side --auto-side."""
    auto_side: int = 256
    """Longer side of the working size when --size is auto (even sizes, at least 16)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: cuda (gsplat renderer) when available, else cpu (pure-PyTorch renderer)."""
    speed: float = 0.02
    """Camera speed per frame, as a fraction of the photo's lower-quartile scene depth."""
    refiner: str = "learned"
    """Which refiner completes each rendered view: learned (the shipped network, refine/weights/refiner.pt,
    with its colour and detail anchors), learned-fidelity (refine/weights/refiner-fidelity.pt: the network
    trained further for fidelity, without the anchors: closest to procedural ground truth; over long flights on
    photos its detail fades and its generated ground drifts in colour),
    classical (push-pull, no weights: the baseline) or a weights FILE.pt; a learned one may end in composition
    overrides, e.g. learned-fidelity+anchor=0.3+texture=1 (worldgen/pipeline/refiners.py COMPOSITION). Learned since 2026-12-01: over
    300-frame flights on real photos it keeps 0.815 of the photo's detail at frame 300 (median; colour anchor 0.35
    since 2026-12-04) where the classical refiner lets it fade; on held-out procedural flights learned-fidelity
    leads the classical refiner in all 12 PSNR cells and learned is 0.3-0.6 dB behind the classical one
    (BENCHMARKS.md, docs/refiner.md)."""
    refiner_anchor: float | None = None
    """The learned refiner's colour anchor, 0..1 (how far generated ground is pulled towards the photo's
    ground colour at its elevation each time it is generated; refine/learned.py); None: the weights' own."""
    refiner_texture: float | None = None
    """The learned refiner's detail anchor, 0..4 (how much of the photo's own detail at its elevation is laid
    over generated ground that lacks detail; refine/learned.py); None: the weights' own."""
    refiner_seed: int = 0
    """Seed of the learned refiner's noise input: the same photo, path and seed give the same flight, another seed
    other generated detail (the classical refiner draws no noise). Over 300-frame flights on real photos seed 1
    against 0 moved the detail kept at frame 300 by up to 0.3 on 3 of 14 photos (BENCHMARKS.md, 2026-12-04 eighth)."""
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    """How the generators render, lift and remember."""
    classical_refiner: ClassicalRefinerConfig = field(default_factory=ClassicalRefinerConfig)
    """Settings of the classical refiner."""
    autopilot: AutopilotConfig = field(default_factory=AutopilotConfig)
    """Tuning of the autopilot path."""

    def validate(self) -> None:
        if self.size != "auto":
            parse_size(self.size)  # raises its own one-line UserInputError
        if not 16 <= self.auto_side <= 8192:
            raise bad("auto_side", "must be between 16 and 8192", self.auto_side)
        if not (math.isfinite(self.speed) and abs(self.speed) <= 1):
            # 1 = the photo's lower-quartile depth per frame: already a jump past most of what it shows
            raise bad("speed", "must be a number between -1 and 1", self.speed)
        problem = refiner_spec_problem(self.refiner)
        if problem:
            raise bad("refiner", problem, self.refiner)
        if self.refiner_anchor is not None and not 0 <= self.refiner_anchor <= 1:
            raise bad("refiner_anchor", "must be between 0 and 1", self.refiner_anchor)
        if self.refiner_texture is not None and not 0 <= self.refiner_texture <= 4:
            raise bad("refiner_texture", "must be between 0 and 4", self.refiner_texture)
        if self.refiner.split("+")[0] == "classical":
            for name in ("refiner_anchor", "refiner_texture"):
                if getattr(self, name) is not None:
                    raise bad(name, "is a learned refiner's composition; --refiner classical has none",
                              getattr(self, name))
        check_seed(self, "refiner_seed")
