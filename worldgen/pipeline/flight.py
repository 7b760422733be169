"""The flight loop, written once: render -> refine -> repeat along a pilot's poses.

`Flight` is an iterator of `FlightStep`s. Step 0 is frame 0 itself (the photo); each later step asks
the pilot for the next pose (a reactive pilot, such as the autopilot, reads the lead generator's
previous frame), checks it, and steps every generator at that one camera, timing each (CUDA
synchronised). `worldgen fly`, `worldgen compare`, `worldgen live` and training all fly through it:

    flight = Flight(generator, path, num_frames=60)
    for step in flight:          # step.t = 0, 1, ..., 59
        use(step.frame)

Gradients: the loop neither enables nor disables them; wrap it in `torch.no_grad()` when they are not
needed. Conventions: poses are camera-to-world 4x4 (OpenCV axes), as everywhere in worldgen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from worldgen.core.camera import Camera
from worldgen.core.frame import Frame
from worldgen.pipeline.generator import Generator


class Pilot(Protocol):
    """Where the camera goes next (every `CameraPath` is one)."""

    def pose(self, t: int, prev: Frame | None = None) -> Tensor:
        """[4, 4] camera-to-world pose of frame t, asked for t = 1, 2, ... in order; `prev` is the
        lead generator's frame t-1."""
        ...


class Replay:
    """A pilot that flies recorded poses [T, 4, 4] (camera-to-world) again, e.g. the poses a reactive
    path took in another generator's flight."""

    def __init__(self, poses: Tensor):
        if poses.dim() != 3 or tuple(poses.shape[1:]) != (4, 4):
            raise ValueError(f"poses must be [T, 4, 4], got {tuple(poses.shape)}")
        self.poses = poses
        self.num_frames = int(poses.shape[0])

    def pose(self, t: int, prev: Frame | None = None) -> Tensor:
        return self.poses[t]


@dataclass
class FlightStep:
    """One step of a flight.

    Attributes:
        t: frame index (0 is the photo).
        camera: the camera every generator rendered from at this step.
        frames: each generator's refined frame, in the order the generators were given.
        seconds: each generator's step time, wall clock (0 at t = 0); on CUDA synchronised around the
            step only when the generators time their stages (`Generator.timed`); else the time to
            issue the step's work, which the GPU may still be running.
        stage_seconds: each generator's time per stage in this step ("render", "sky", "refine",
            "lift", "fit"; from its own stage timers; empty at t = 0).
        pilot_seconds: time the pilot took to choose this step's pose (0 at t = 0).
    """

    t: int
    camera: Camera
    frames: tuple[Frame, ...]
    seconds: tuple[float, ...]
    stage_seconds: tuple[dict[str, float], ...]
    pilot_seconds: float

    @property
    def frame(self) -> Frame:
        """The lead (first) generator's frame."""
        return self.frames[0]


class Flight(Iterator[FlightStep]):
    """Fly `generators` (one, or several side by side at the same poses) along `pilot`'s poses.

    Args:
        generators: a Generator, or a sequence of them built from the same frame 0 and not stepped yet.
            The first one leads: a reactive pilot reads its frames.
        pilot: where the camera goes (a `CameraPath`, a `Replay`, or any `Pilot`).
        num_frames: frames including frame 0 (the iteration stops there); None: endless.

    Raises RuntimeError (from `next`) if the pilot gives a non-finite pose. An exception inside a step
    leaves the flight usable: the next `next` tries the same frame again. `restore` continues a flight
    from a checkpoint (the generators and the pilot restored to the same frame).
    """

    def __init__(self, generators: Generator | Sequence[Generator], pilot: Pilot, num_frames: int | None = None):
        self.generators = (generators,) if isinstance(generators, Generator) else tuple(generators)
        if not self.generators:
            raise ValueError("a flight needs at least one generator")
        if any(g.t != 0 for g in self.generators):
            raise ValueError("a flight starts from generators that have not stepped yet")
        self.pilot = pilot
        self.num_frames = num_frames
        self.frame0 = self.generators[0].first
        self.t = 0  # the next step to produce
        self._prev = self.frame0
        # synchronise around each step only to time it: the waits keep the CPU from preparing the next
        # frame while the GPU finishes this one (2 of the ~16 waits per frame of an untimed flight)
        self._cuda = self.frame0.rgb.device.type == "cuda" and any(g.timed for g in self.generators)

    def restore(self, t: int, prev: Frame) -> None:
        """Continue after frame `t` (the next step is t + 1): the generators and the pilot must already
        be where they were after step t, and `prev` is the lead generator's frame t."""
        if any(g.t != t for g in self.generators):
            raise ValueError(f"restore at frame {t}: the generators are at frames {[g.t for g in self.generators]}")
        self.t, self._prev = t + 1, prev

    def _sync(self) -> None:
        if self._cuda:
            torch.cuda.synchronize()

    def __next__(self) -> FlightStep:
        t = self.t
        if self.num_frames is not None and t >= self.num_frames:
            raise StopIteration
        if t == 0:
            n = len(self.generators)
            step = FlightStep(0, self.frame0.camera, (self.frame0,) * n, (0.0,) * n, ({},) * n, 0.0)
            self.t = 1
            return step
        t0 = time.perf_counter()
        with torch.profiler.record_function("stage:path"):
            pose = self.pilot.pose(t, self._prev)
        on_host = pose.device.type == "cpu" and not pose.requires_grad  # (numpy: no torch dispatch a frame)
        if not (np.isfinite(pose.numpy()).all() if on_host else bool(torch.isfinite(pose).all())):
            raise RuntimeError(f"camera path produced a non-finite pose at frame {t}")
        camera = self.frame0.camera.with_pose(pose)
        pilot_s = time.perf_counter() - t0
        frames, seconds, stages = [], [], []
        for gen in self.generators:
            gen.take_stage_seconds()  # whatever ran between steps is not this step's
            self._sync()
            ts = time.perf_counter()
            frames.append(gen.step(camera))
            self._sync()
            seconds.append(time.perf_counter() - ts)
            stages.append(gen.take_stage_seconds())
        self._prev = frames[0]
        self.t = t + 1
        return FlightStep(t, camera, tuple(frames), tuple(seconds), tuple(stages), pilot_s)
