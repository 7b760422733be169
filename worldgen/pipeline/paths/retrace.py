"""`RetracePath`: any path out for the first half of a flight, then the same poses in reverse."""

from __future__ import annotations

import torch
from torch import Tensor

from worldgen.core.frame import Frame
from worldgen.pipeline.paths.base import CameraPath


class RetracePath(CameraPath):
    """Out along `base` for the first half of the flight, then back through the same poses reversed.

    pose(t) = base.pose(k) with k = min(t, T-1-t), so frames t and T-1-t share a pose exactly and the
    last frame is the start pose. (The revisit-consistency benchmark relies on this.) For even T the
    two middle frames are the same pose. For a reactive base (autopilot), the outbound poses are
    recorded as they are flown and replayed on the way back; `prev` is only passed on the way out.

    Args:
        base: the outbound path; needs at least floor((T-1)/2) + 1 frames.
        num_frames: total frames T (>= 1).
    """

    def __init__(self, base: CameraPath, num_frames: int) -> None:
        super().__init__(base.start, base.scale, num_frames)
        self.reactive = base.reactive
        self.turn_frame = (self.num_frames - 1) // 2
        if base.num_frames < self.turn_frame + 1:
            raise ValueError(f"retrace over {num_frames} frames needs a base of >= {self.turn_frame + 1} frames")
        self.base = base
        self._recorded: list[Tensor] = [base._start32()]  # outbound poses

    def state_dict(self) -> dict:
        return {"base": self.base.state_dict(), "recorded": [p.clone() for p in self._recorded]}

    def load_state_dict(self, state: dict) -> None:
        self.base.load_state_dict(state["base"])
        self._recorded = [torch.as_tensor(p).clone() for p in state["recorded"]]

    def pose(self, t: int, prev: Frame | None = None) -> Tensor:
        t = self._check_t(t)
        k = min(t, self.num_frames - 1 - t)
        if not self.base.reactive:
            return self.base.pose(k, None)
        if t <= self.turn_frame:
            c2w = self.base.pose(t, prev)
            self._recorded[t:] = [c2w.clone()]
            return c2w
        if k >= len(self._recorded):
            raise ValueError("RetracePath with a reactive base must be called for t = 0, 1, 2, ... in order")
        return self._recorded[k].clone()
