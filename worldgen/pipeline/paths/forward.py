"""`ForwardPath`: straight ahead at constant speed."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from worldgen.core.camera import Camera
from worldgen.core.frame import Frame
from worldgen.core.io import UserInputError
from worldgen.pipeline.paths.base import CameraPath


class ForwardPath(CameraPath):
    """Straight flight along the start camera's forward (+z) axis at constant speed.

    pose(t) keeps the start rotation; position = start position + t * speed * scale * z_start.
    (If the photo's camera is pitched, the flight follows that pitch.)

    Args:
        start: the photo's Camera.
        scale: world length of one scene unit.
        num_frames: total frames T (>= 1).
        speed: scene units per frame (default 0.02).
    """

    def __init__(self, start: Camera, scale: float, num_frames: int, *, speed: float = 0.02) -> None:
        super().__init__(start, scale, num_frames)
        if not math.isfinite(speed):
            raise UserInputError(f"forward path: speed must be a finite number, got {speed}")
        self.speed = float(speed)

    def pose(self, t: int, prev: Frame | None = None) -> Tensor:
        t = self._check_t(t)
        if t == 0:
            return self._start32()
        T = self._start64()
        T[:3, 3] = T[:3, 3] + (t * self.speed * self.scale) * T[:3, 2]
        return self._out(T)
