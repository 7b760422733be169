"""The `CameraPath` interface: where the camera is at frame t of a flight.

Conventions (those of worldgen/core/camera.py): OpenCV camera axes (+x right, +y down, +z forward),
world up is -y, poses are camera-to-world 4x4 float32 on the host (CPU). Lengths are in
*scene units*: one unit is `scale` world units, a length taken from the first frame (the lower
quartile of its non-sky depths), so speeds mean the same whatever the photo's metric scale. Path
maths runs in float64 on the CPU.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import Tensor

from worldgen.core.camera import Camera
from worldgen.core.frame import Frame
from worldgen.core.io import UserInputError

F64 = torch.float64
"""Paths compute in float64 and hand out float32 poses."""


class CameraPath(ABC):
    """A flight of `num_frames` camera poses, asked for one frame at a time.

    Attributes:
        start: the photo's Camera; `pose(0)` equals `start.c2w` exactly.
        scale: world length of one scene unit (> 0), e.g. the median non-sky depth of frame 0.
        num_frames: total frames T, including frame 0.
        reactive: True if poses depend on the frames passed as `prev` (then `pose` must be called
            for t = 0, 1, 2, ... in order); False if the whole path is known in advance (`poses()`).
    """

    reactive: bool = False

    def __init__(self, start: Camera, scale: float, num_frames: int, *, min_frames: int = 1) -> None:
        if not isinstance(start, Camera):
            raise TypeError(f"start must be a worldgen Camera, got {type(start).__name__}")
        scale = float(scale)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive finite length, got {scale}")
        if isinstance(num_frames, bool) or int(num_frames) != num_frames or num_frames < min_frames:
            raise UserInputError(f"{type(self).__name__} needs at least {min_frames} frames, got {num_frames}")
        if not np.isfinite(start.host()[1]).all():
            raise ValueError("start camera pose has non-finite entries")
        self.start = start
        self.scale = scale
        self.num_frames = int(num_frames)

    @abstractmethod
    def pose(self, t: int, prev: Frame | None = None) -> Tensor:
        """[4, 4] float32 camera-to-world pose (OpenCV axes) of frame t, on the host (CPU): paths compute
        on the host, and `Camera.with_pose` takes the pose to the camera's device (keeping the host copy).

        Args:
            t: frame index, 0 <= t < num_frames. Reactive paths must be called for t = 0, 1, 2, ...
               in order (asking again for the latest t returns the same pose).
            prev: the refined frame t-1 (None at t = 0). Only reactive paths look at it.
        """

    def camera(self, t: int, prev: Frame | None = None) -> Camera:
        """The start camera (same intrinsics and size) moved to `pose(t, prev)`."""
        return self.start.with_pose(self.pose(t, prev))

    def poses(self) -> Tensor:
        """[T, 4, 4] all poses of a non-reactive path (for previews and `cameras.json`)."""
        if self.reactive:
            raise RuntimeError(f"{type(self).__name__} depends on the generated frames; call pose(t, prev) in order")
        return torch.stack([self.pose(t, None) for t in range(self.num_frames)])

    # ------------------------------------------------------------------ checkpoints
    _STATE: tuple[str, ...] = ()
    """Attributes that change as a reactive path is flown (what `state_dict` saves)."""

    def state_dict(self) -> dict:
        """What a checkpoint needs to continue this path after the latest `pose` call (tensors are
        copied; empty for paths whose poses depend on t alone)."""
        return {k: (v.clone() if isinstance(v, Tensor) else v) for k, v in ((k, getattr(self, k)) for k in self._STATE)}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a `state_dict()` of the same path (built with the same arguments)."""
        missing = sorted(set(self._STATE) - set(state))
        if missing:
            raise ValueError(f"{type(self).__name__} state lacks {missing[0]!r}")
        for k in self._STATE:
            v = state[k]
            setattr(self, k, v.clone() if isinstance(v, Tensor) else v)

    # ------------------------------------------------------------------ helpers for subclasses
    def _check_t(self, t: int) -> int:
        if isinstance(t, bool) or int(t) != t or not 0 <= t < self.num_frames:
            raise IndexError(f"frame {t} is outside this path's 0..{self.num_frames - 1}")
        return int(t)

    def _out(self, T: Tensor) -> Tensor:
        """float64 [4, 4] -> float32, on the host."""
        return T.to(device="cpu", dtype=torch.float32)

    def _start64(self) -> Tensor:
        """[4, 4] float64 start pose, on the host."""
        return torch.from_numpy(self.start.host()[1].copy())

    def _start32(self) -> Tensor:
        """[4, 4] float32 start pose (the start camera's own values), on the host: frame 0's pose."""
        return torch.from_numpy(self.start.host()[1].astype(np.float32))
