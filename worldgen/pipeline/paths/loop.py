"""`LoopPath`: out and back to the photo's pose (a forward ellipse, or a retraced straight line)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from worldgen.core.camera import Camera, pose_matrix, yaw_about_down
from worldgen.core.frame import Frame
from worldgen.core.io import UserInputError
from worldgen.pipeline.paths.base import F64, CameraPath
from worldgen.pipeline.paths.forward import ForwardPath
from worldgen.pipeline.paths.retrace import RetracePath


def _interp1d(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation of samples (xp [M] increasing, fp [M]) at x [...]."""
    i = torch.searchsorted(xp, x.clamp(xp[0], xp[-1])).clamp(1, xp.numel() - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    w = ((x - x0) / (x1 - x0).clamp_min(1e-300)).clamp(0.0, 1.0)
    return f0 + w * (f1 - f0)


class LoopPath(CameraPath):
    """An out-and-back flight that ends exactly at the start pose (the photo's view).

    Default (`retrace=False`): a horizontal ellipse in the plane of the start camera's forward and
    right axes, touching the start position, `depth` deep along the view direction and `width * depth`
    wide. The camera leaves sideways-forward on the right, flies out, crosses over at the far end and
    comes back on the left, arriving at the start moving to the right. The frames are spaced at
    constant speed along the curve (arc-length parametrised), and the curve's length is set by the
    speed: depth follows from `speed * (T - 1)`.

    The look direction is eased so the camera always looks *into* the scene: it aims (by a yaw about
    world up, no roll) at a point on the start view axis `lookahead * depth` beyond the far end of the
    loop. On the way out it looks roughly where it flies; on the way back it flies backwards while
    still looking forward, so the frames show the generated world (and finally the photo's view
    again) rather than unseen space behind the start camera. The camera never goes behind the start
    position, so the last frames look at the photo's content from (nearly) the photo's position.
    `pose(T-1)` returns the start pose bit for bit; the step into it is as long as the others.

    `retrace=True`: straight out along the forward axis for the first half, then back through the
    same poses reversed (frames t and T-1-t are identical), looking forward throughout. This is the
    path the revisit-consistency benchmark needs.

    Args:
        start: the photo's Camera (roll-free if the poses should be roll-free).
        scale: world length of one scene unit.
        num_frames: total frames T (>= 2).
        speed: scene units per frame along the path (default 0.02).
        width: ellipse width as a fraction of its depth (default 0.5; smaller is narrower but turns more sharply
            at the two ends, where the direction of motion swings round; 0 is a straight out-and-back).
        lookahead: look target beyond the far end, as a fraction of the depth (default 1.0).
        retrace: out and back along the same straight line instead of the ellipse.
    """

    def __init__(
        self,
        start: Camera,
        scale: float,
        num_frames: int,
        *,
        speed: float = 0.02,
        width: float = 0.5,
        lookahead: float = 1.0,
        retrace: bool = False,
    ) -> None:
        super().__init__(start, scale, num_frames, min_frames=2)
        for name, v in (("speed", speed), ("width", width), ("lookahead", lookahead)):
            if not (math.isfinite(v) and v >= 0):
                raise UserInputError(f"loop path: {name} must be a non-negative number, got {v}")
        self.speed, self.width, self.lookahead = float(speed), float(width), float(lookahead)
        self.retrace = bool(retrace)
        # Poses are made one at a time (a flight of a billion frames allocates nothing up front).
        if self.retrace:
            out = ForwardPath(start, scale, (self.num_frames - 1) // 2 + 1, speed=self.speed)
            self._retraced = RetracePath(out, self.num_frames)
        else:
            self._ellipse_table()

    def _ellipse_table(self) -> None:
        """The unit-depth ellipse's arc-length table (8193 samples) and the loop's depth."""
        # Unit-depth ellipse: forward offset a = (1 - cos phi) / 2, right offset b = (width / 2) sin phi.
        phi = torch.linspace(0.0, 2 * math.pi, 8193, dtype=F64)
        a_u, b_u = 0.5 * (1 - torch.cos(phi)), 0.5 * self.width * torch.sin(phi)
        seg = torch.hypot(a_u.diff(), b_u.diff())
        self._phi = phi
        self._arc = torch.cat([torch.zeros(1, dtype=F64), seg.cumsum(0)])  # [M] arc length of the unit loop
        self._depth = self.speed * self.scale * (self.num_frames - 1) / float(self._arc[-1])  # world units

    def _ellipse_pose(self, t: int) -> Tensor:
        T, arc = self.num_frames, self._arc
        s = torch.tensor(t, dtype=F64) / (T - 1) * arc[-1]
        ph = _interp1d(s, arc, self._phi)
        a, b = 0.5 * (1 - torch.cos(ph)), 0.5 * self.width * torch.sin(ph)  # unit-depth offsets
        yaw = torch.atan2(-b, (1.0 + self.lookahead) - a)  # towards the look target, right turn > 0
        S = self._start64()
        p0, R0 = S[:3, 3], S[:3, :3]
        f, r = R0[:, 2], R0[:, 0]
        p = p0 + self._depth * (float(a) * f + float(b) * r)
        return self._out(pose_matrix(yaw_about_down(float(yaw)) @ R0, p))

    def pose(self, t: int, prev: Frame | None = None) -> Tensor:
        t = self._check_t(t)
        if t == 0 or t == self.num_frames - 1:  # closure: the start pose exactly (not merely to rounding)
            return self._start32()
        return self._retraced.pose(t) if self.retrace else self._ellipse_pose(t)
