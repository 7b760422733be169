"""Camera paths: where the camera is at frame t of a flight.

The generator drives a path one frame at a time::

    path = make_path("autopilot", start_camera, scale, num_frames)
    for t in range(path.num_frames):
        c2w = path.pose(t, prev)          # [4, 4] camera-to-world for frame t
        prev = generator.step(start_camera.with_pose(c2w))

Conventions (those of `worldgen.core.camera`): OpenCV camera axes (+x right, +y down, +z forward), world
up is -y, poses are camera-to-world 4x4 float32 on the start camera's device. Lengths are measured
in *scene units*: one unit is `scale` world units, where `scale` is a length the generator takes from
the first frame (the median depth of its non-sky pixels). So `speed=0.02` moves 0.02 * scale world
units per frame, and a flight of 500 frames at that speed covers about ten "typical depths" of the
photo, whatever the photo's metric scale.

Every path starts at the photo's camera: `pose(0)` is the start camera's `c2w`, bit for bit.

Paths:
    ForwardPath   straight along the start camera's +z axis at constant speed.
    LoopPath      out and back to the start pose (a forward ellipse, or `retrace=True`).
    KeyframePath  smooth interpolation of keyframes (Python objects or a JSON file, docs/paths.md).
    AutopilotPath steers from the previous frame's depth and sky mask (Infinite Nature's auto-cruise).
    RetracePath   any path out for the first half, then the same poses in reverse.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from worldgen.core.camera import Camera, quat_to_rotmat, rotmat_to_quat
from worldgen.core.frame import Frame
from worldgen.core.io import UserInputError

__all__ = [
    "CameraPath",
    "ForwardPath",
    "LoopPath",
    "RetracePath",
    "KeyframePath",
    "AutopilotConfig",
    "AutopilotPath",
    "make_path",
    "PATH_KINDS",
]

PATH_KINDS = ("forward", "loop", "autopilot")
"""Built-in path names accepted by `make_path` (besides a path to a `.json` keyframe file)."""

_F64 = torch.float64


def _up(dtype: torch.dtype = _F64) -> Tensor:
    """[3] world up, -y (worldgen's convention)."""
    return torch.tensor([0.0, -1.0, 0.0], dtype=dtype)


def _down(dtype: torch.dtype = _F64) -> Tensor:
    """[3] world down, +y."""
    return torch.tensor([0.0, 1.0, 0.0], dtype=dtype)


def _yaw_about_down(angle: float) -> Tensor:
    """[3, 3] rotation by `angle` radians about world down (+y): positive turns +z towards +x (a right turn)."""
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=_F64)


def _pose(R: Tensor, p: Tensor) -> Tensor:
    """[4, 4] float64 camera-to-world from rotation [3, 3] and position [3]."""
    T = torch.eye(4, dtype=_F64)
    T[:3, :3] = R
    T[:3, 3] = p
    return T


def _horizontal_basis(R0: Tensor) -> tuple[Tensor, Tensor]:
    """Horizontal forward and right unit vectors [3] of a camera rotation [3, 3] (float64).

    Forward is the camera's +z projected onto the ground plane (perpendicular to world up); right is
    down x forward, so (right, down, forward) is a right-handed OpenCV frame. A camera looking straight
    up or down falls back to its -y (up in the image) as forward.
    """
    up = _up()
    f = R0[:, 2] - (R0[:, 2] @ up) * up
    if f.norm() < 1e-6:
        f = -R0[:, 1] - (-R0[:, 1] @ up) * up
    f = f / f.norm()
    r = torch.linalg.cross(_down(), f)
    return f, r / r.norm()


def _interp1d(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation of samples (xp [M] increasing, fp [M]) at x [...]."""
    i = torch.searchsorted(xp, x.clamp(xp[0], xp[-1])).clamp(1, xp.numel() - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    w = ((x - x0) / (x1 - x0).clamp_min(1e-300)).clamp(0.0, 1.0)
    return f0 + w * (f1 - f0)


# =============================================================================== interface
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
        if not bool(torch.isfinite(start.c2w).all()):
            raise ValueError("start camera pose has non-finite entries")
        self.start = start
        self.scale = scale
        self.num_frames = int(num_frames)

    @abstractmethod
    def pose(self, t: int, prev: Frame | None = None) -> Tensor:
        """[4, 4] float32 camera-to-world pose (OpenCV axes) of frame t, on the start camera's device.

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

    # ------------------------------------------------------------------ helpers for subclasses
    def _check_t(self, t: int) -> int:
        if isinstance(t, bool) or int(t) != t or not 0 <= t < self.num_frames:
            raise IndexError(f"frame {t} is outside this path's 0..{self.num_frames - 1}")
        return int(t)

    def _out(self, T: Tensor) -> Tensor:
        """float64 [4, 4] -> float32 on the start camera's device."""
        return T.to(device=self.start.device, dtype=torch.float32)

    def _start64(self) -> Tensor:
        return self.start.c2w.detach().to("cpu", _F64)


# =============================================================================== forward
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
            return self.start.c2w.detach().clone().to(torch.float32)
        T = self._start64()
        T[:3, 3] = T[:3, 3] + (t * self.speed * self.scale) * T[:3, 2]
        return self._out(T)


# =============================================================================== retrace
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
        self._recorded: list[Tensor] = [base.start.c2w.detach().clone().to(torch.float32)]  # outbound poses

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


# =============================================================================== loop
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
        if self.retrace:
            out = ForwardPath(start, scale, (self.num_frames - 1) // 2 + 1, speed=self.speed)
            self._poses = RetracePath(out, self.num_frames).poses()
        else:
            self._poses = self._ellipse_poses()
        # Closure: first and last frames are the start pose exactly (not merely to rounding).
        self._poses[0] = self.start.c2w.detach().to(torch.float32)
        self._poses[-1] = self.start.c2w.detach().to(torch.float32)

    def _ellipse_poses(self) -> Tensor:
        T = self.num_frames
        # Unit-depth ellipse: forward offset a = (1 - cos phi) / 2, right offset b = (width / 2) sin phi.
        phi = torch.linspace(0.0, 2 * math.pi, 8193, dtype=_F64)
        a_u, b_u = 0.5 * (1 - torch.cos(phi)), 0.5 * self.width * torch.sin(phi)
        seg = torch.hypot(a_u.diff(), b_u.diff())
        arc = torch.cat([torch.zeros(1, dtype=_F64), seg.cumsum(0)])  # [M] arc length of the unit loop
        depth = self.speed * self.scale * (T - 1) / float(arc[-1])  # world units
        s = torch.arange(T, dtype=_F64) / (T - 1) * arc[-1]
        ph = _interp1d(s, arc, phi)
        a, b = 0.5 * (1 - torch.cos(ph)), 0.5 * self.width * torch.sin(ph)  # [T] unit-depth offsets
        yaw = torch.atan2(-b, (1.0 + self.lookahead) - a)  # towards the look target, right turn > 0

        S = self._start64()
        p0, R0 = S[:3, 3], S[:3, :3]
        f, r = R0[:, 2], R0[:, 0]
        poses = torch.empty(T, 4, 4, dtype=_F64)
        for t in range(T):
            p = p0 + depth * (float(a[t]) * f + float(b[t]) * r)
            poses[t] = _pose(_yaw_about_down(float(yaw[t])) @ R0, p)
        return poses.to(device=self.start.device, dtype=torch.float32)

    def pose(self, t: int, prev: Frame | None = None) -> Tensor:
        return self._poses[self._check_t(t)].clone()


# =============================================================================== quaternions (wxyz, float64)
def _qmul(p: Tensor, q: Tensor) -> Tensor:
    pw, px, py, pz = p.unbind(-1)
    qw, qx, qy, qz = q.unbind(-1)
    return torch.stack(
        [
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ],
        -1,
    )


def _qconj(q: Tensor) -> Tensor:
    return q * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=q.dtype)


def _qlog(q: Tensor) -> Tensor:
    """Rotation vector [3] (axis * angle / 2, i.e. the quaternion log) of a unit quaternion [4]."""
    if q[0] < 0:
        q = -q
    v = q[1:]
    n = v.norm()
    if n < 1e-12:
        return v.clone()
    return v / n * torch.atan2(n, q[0])


def _qexp(v: Tensor) -> Tensor:
    """Unit quaternion [4] of a pure quaternion [3] (inverse of _qlog)."""
    n = v.norm()
    if n < 1e-12:
        return torch.cat([torch.ones(1, dtype=v.dtype), v])
    return torch.cat([torch.cos(n).reshape(1), torch.sin(n) * v / n])


def _slerp(p: Tensor, q: Tensor, u: float) -> Tensor:
    """Shortest-arc spherical interpolation of unit quaternions [4]; u in [0, 1]."""
    if (p * q).sum() < 0:
        q = -q
    return _qmul(p, _qexp(u * _qlog(_qmul(_qconj(p), q))))


# =============================================================================== keyframes
class KeyframePath(CameraPath):
    """A smooth flight through keyframe poses (from Python, or a JSON file: see docs/paths.md).

    Timing: each keyframe gets an integer frame. Frames are shared out among the segments between
    consecutive keyframes in proportion to each segment's cost = max(chord length, `turn_length` x
    rotation angle in radians) (so camera speed is about constant along the path, and turns on the
    spot get frames too). Every keyframe is hit exactly at its frame (`keyframe_frames`).

    Interpolation, C1 in time (velocity and angular velocity continuous at keyframes):
    - positions: cubic Hermite spline with non-uniform Catmull-Rom tangents (knots at the keyframe
      frames); a keyframe next to a segment of zero length gets a zero tangent (no overshoot);
    - rotations: squad (spherical cubic) with control quaternions chosen from the same non-uniform
      finite differences, so angular velocity matches across keyframes.

    Roll: if every keyframe is roll-free (camera x axis horizontal, as `look_at` keyframes are), the
    interpolated cameras are made roll-free too (squad's view direction is kept, its x axis levelled);
    keyframes with roll are interpolated as given.

    The flight starts at the photo's camera: if the first keyframe is not the start pose, the start
    pose is put in front of it as an extra keyframe (`keyframe_frames` then lists the frames of the
    given keyframes only, the first one > 0).

    Args:
        start: the photo's Camera.
        scale: world length of one scene unit.
        num_frames: total frames T; must be at least the number of keyframes (with the start).
        keyframes: camera-to-world poses [K, 4, 4] or a sequence of [4, 4] in *world* coordinates
            (use `from_json`/`from_dict` for scene units), K >= 2 (K >= 1 if the start is prepended).
        turn_length: scene units one radian of rotation counts for when sharing out frames (0.5).
    """

    def __init__(
        self,
        start: Camera,
        scale: float,
        num_frames: int,
        keyframes: Tensor | Sequence[Tensor],
        *,
        turn_length: float = 0.5,
    ) -> None:
        super().__init__(start, scale, num_frames, min_frames=2)
        kf = torch.stack([torch.as_tensor(k) for k in keyframes]) if not isinstance(keyframes, Tensor) else keyframes
        kf = kf.detach().to("cpu", _F64)
        if kf.ndim != 3 or kf.shape[1:] != (4, 4) or kf.shape[0] < 1:
            raise ValueError(f"keyframes must be [K, 4, 4] camera-to-world poses, got {tuple(kf.shape)}")
        S = self._start64()
        prepend = not self._same_pose(kf[0], S)
        if prepend:
            kf = torch.cat([S[None], kf])
        else:
            kf[0] = S
        if kf.shape[0] < 2:
            raise UserInputError("a keyframe path needs at least 2 keyframes")
        K = kf.shape[0]
        if self.num_frames < K:
            raise UserInputError(f"{K} keyframes need at least {K} frames, got num_frames={self.num_frames}")

        pos = kf[:, :3, 3]  # [K, 3]
        q = rotmat_to_quat(kf[:, :3, :3])  # [K, 4] wxyz
        for k in range(1, K):  # one hemisphere, so consecutive slerps take the short arc
            if (q[k] * q[k - 1]).sum() < 0:
                q[k] = -q[k]
        chord = (pos[1:] - pos[:-1]).norm(dim=-1) / self.scale  # [K-1] scene units
        angle = torch.stack([2 * _qlog(_qmul(_qconj(q[k]), q[k + 1])).norm() for k in range(K - 1)])
        cost = torch.maximum(chord, float(turn_length) * angle)
        self.frames = self._share_frames(cost, self.num_frames)  # [K] int frame of each keyframe
        self.keyframe_frames = self.frames[1:] if prepend else self.frames
        self._pos, self._q = pos, q
        self._tangents = self._position_tangents(pos, chord)
        self._s_out, self._s_in = self._squad_controls(q)
        self._kf = kf
        self.roll_free = bool(((kf[:, :3, 0] @ _up()).abs() < 1e-6).all())

    # ------------------------------------------------------------------ construction from files
    @classmethod
    def from_json(cls, path: str | Path, start_camera: Camera, scale: float, num_frames: int) -> "KeyframePath":
        """Read keyframes from a JSON file (format in docs/paths.md); bad files raise UserInputError."""
        path = Path(path)
        name = path.name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserInputError(f"keyframe file not found: {path}") from None
        except UnicodeDecodeError:
            raise UserInputError(f"{name}: not a UTF-8 text file") from None
        except OSError as e:
            raise UserInputError(f"cannot read keyframe file {path}: {e.strerror or e}") from None

        def no_constants(c: str) -> Any:
            m = re.search(r"(?<![\w\"])-?" + c + r"(?![\w\"])", text)
            at = f" at line {text.count(chr(10), 0, m.start()) + 1}" if m else ""
            raise UserInputError(f"{name}: {c}{at} is not allowed (keyframe numbers must be finite)")

        try:
            data = json.loads(text, parse_constant=no_constants)
        except json.JSONDecodeError as e:
            raise UserInputError(f"{name}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
        return cls.from_dict(data, start_camera, scale, num_frames, source=name)

    @classmethod
    def from_dict(
        cls, data: Any, start_camera: Camera, scale: float, num_frames: int, *, source: str = "keyframes"
    ) -> "KeyframePath":
        """Keyframes from parsed JSON (`{"units": ..., "keyframes": [...]}` or a bare list of keyframes).

        Scene units: positions/targets are multiples of `scale` in the start camera's frame (x right,
        y down, z forward), quaternions are rotations relative to the start camera. World units:
        world coordinates and world camera-to-world rotations. Errors raise UserInputError with one
        line naming `source` and the keyframe.
        """
        units = "scene"
        if isinstance(data, dict):
            extra = sorted(set(data) - {"units", "keyframes"})
            if extra:
                raise UserInputError(f"{source}: unknown top-level key {extra[0]!r} (allowed: 'units', 'keyframes')")
            if "keyframes" not in data:
                raise UserInputError(f"{source}: missing top-level key 'keyframes' (a list of keyframes)")
            units = data.get("units", "scene")
            if units not in ("scene", "world"):
                raise UserInputError(f"{source}: 'units' must be \"scene\" or \"world\", got {units!r}")
            items = data["keyframes"]
        else:
            items = data
        if not isinstance(items, list):
            raise UserInputError(f"{source}: expected a list of keyframes, got {_json_type(items)}")
        if len(items) < 2:
            raise UserInputError(f"{source}: needs at least 2 keyframes, got {len(items)}")

        S = start_camera.c2w.detach().to("cpu", _F64)
        R0, p0 = S[:3, :3], S[:3, 3]
        to_world = (lambda x: p0 + R0 @ (float(scale) * x)) if units == "scene" else (lambda x: x)
        poses = []
        for i, item in enumerate(items):
            where = f"{source}: keyframe {i}"
            if not isinstance(item, dict):
                raise UserInputError(f"{where}: must be an object with 'position' and 'look_at' or 'quat'")
            extra = sorted(set(item) - {"position", "look_at", "quat"})
            if extra:
                raise UserInputError(f"{where}: unknown key {extra[0]!r} (allowed: 'position', 'look_at', 'quat')")
            if "position" not in item:
                raise UserInputError(f"{where}: missing 'position' [x, y, z]")
            p = to_world(_numbers(item["position"], 3, f"{where}: 'position'"))
            if ("look_at" in item) == ("quat" in item):
                raise UserInputError(f"{where}: give exactly one of 'look_at' [x, y, z] or 'quat' [w, x, y, z]")
            if "look_at" in item:
                target = to_world(_numbers(item["look_at"], 3, f"{where}: 'look_at'"))
                R = _look_rotation(target - p)
                if R is None:
                    raise UserInputError(f"{where}: 'look_at' must differ from 'position'")
            else:
                qv = _numbers(item["quat"], 4, f"{where}: 'quat'")
                if qv.norm() < 1e-8:
                    raise UserInputError(f"{where}: 'quat' must not be all zeros")
                R = quat_to_rotmat(qv)
                if units == "scene":
                    R = R0 @ R
            poses.append(_pose(R, p))
        return cls(start_camera, scale, num_frames, torch.stack(poses))

    # ------------------------------------------------------------------ setup helpers
    def _same_pose(self, A: Tensor, B: Tensor) -> bool:
        return bool((A[:3, 3] - B[:3, 3]).norm() <= 1e-6 * self.scale and (A[:3, :3] - B[:3, :3]).abs().max() <= 1e-6)

    @staticmethod
    def _share_frames(cost: Tensor, T: int) -> list[int]:
        """Frame index [K] of each keyframe: 0 and T-1 at the ends, strictly increasing, spaced by cost."""
        K = cost.numel() + 1
        total = float(cost.sum())
        cum = torch.cat([torch.zeros(1, dtype=_F64), cost.cumsum(0)])
        ideal = cum / total * (T - 1) if total > 1e-12 else torch.linspace(0, T - 1, K, dtype=_F64)
        frames = [int(round(float(x))) for x in ideal]
        frames[0], frames[-1] = 0, T - 1
        for k in range(1, K):  # at least one frame per segment ...
            frames[k] = max(frames[k], frames[k - 1] + 1)
        for k in range(K - 2, -1, -1):  # ... without running past the end
            frames[k] = min(frames[k], frames[k + 1] - 1)
        return frames

    def _position_tangents(self, pos: Tensor, chord: Tensor) -> Tensor:
        """[K, 3] velocities (world units per frame) at the keyframes: non-uniform Catmull-Rom."""
        K = pos.shape[0]
        h = torch.tensor(self.frames, dtype=_F64).diff()  # [K-1] frames per segment
        vel = (pos[1:] - pos[:-1]) / h[:, None]  # [K-1, 3] mean velocity of each segment
        m = torch.zeros(K, 3, dtype=_F64)
        still = chord < 1e-9
        for k in range(K):
            if k == 0 or k == K - 1:
                j = 0 if k == 0 else K - 2
                m[k] = 0.0 if still[j] else vel[j]
            elif not (still[k - 1] or still[k]):
                m[k] = (h[k] * vel[k - 1] + h[k - 1] * vel[k]) / (h[k - 1] + h[k])
        return m

    def _squad_controls(self, q: Tensor) -> tuple[Tensor, Tensor]:
        """Outgoing and incoming squad control quaternions [K, 4] matching the angular velocity at each keyframe.

        In body coordinates at keyframe k, with a = log(q_k^-1 q_k+1) (outgoing chord), b = -log(q_k^-1 q_k-1)
        (incoming chord) and segment lengths h (frames), the angular velocity is the non-uniform finite
        difference w = (h_k-1 a / h_k + h_k b / h_k-1) / (h_k-1 + h_k). squad's derivative at the segment
        start is a + 2 log(q^-1 s_out) and at the segment end b - 2 log(q^-1 s_in); both are set to h w.
        """
        K = q.shape[0]
        h = [float(self.frames[k + 1] - self.frames[k]) for k in range(K - 1)]
        s_out, s_in = q.clone(), q.clone()
        for k in range(K):
            a = _qlog(_qmul(_qconj(q[k]), q[k + 1])) if k < K - 1 else None
            b = -_qlog(_qmul(_qconj(q[k]), q[k - 1])) if k > 0 else None
            if a is None or b is None:
                continue  # ends: angular velocity = the chord's, which makes s = q
            w = (h[k - 1] * a / h[k] + h[k] * b / h[k - 1]) / (h[k - 1] + h[k])
            s_out[k] = _qmul(q[k], _qexp((h[k] * w - a) / 2))
            s_in[k] = _qmul(q[k], _qexp((b - h[k - 1] * w) / 2))
        return s_out, s_in

    # ------------------------------------------------------------------ evaluation
    def pose(self, t: int, prev: Frame | None = None) -> Tensor:
        t = self._check_t(t)
        if t == 0:
            return self.start.c2w.detach().clone().to(torch.float32)
        k = max(j for j in range(len(self.frames) - 1) if self.frames[j] <= t)
        t0, t1 = self.frames[k], self.frames[k + 1]
        if t == t1:
            return self._out(self._kf[k + 1])
        h = float(t1 - t0)
        u = (t - t0) / h
        u2, u3 = u * u, u * u * u
        p = (
            (2 * u3 - 3 * u2 + 1) * self._pos[k]
            + (u3 - 2 * u2 + u) * h * self._tangents[k]
            + (-2 * u3 + 3 * u2) * self._pos[k + 1]
            + (u3 - u2) * h * self._tangents[k + 1]
        )
        q0, q1 = self._q[k], self._q[k + 1]
        qa = _slerp(q0, q1, u)
        qb = _slerp(self._s_out[k], self._s_in[k + 1], u)
        R = quat_to_rotmat(_slerp(qa, qb, 2 * u * (1 - u)))
        if self.roll_free:  # spherical interpolation of two level cameras can tilt the horizon: re-level
            R = _look_rotation(R[:, 2])
        return self._out(_pose(R, p))


def _json_type(x: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(x), "a number"
    )


def _numbers(x: Any, n: int, where: str) -> Tensor:
    """[n] float64 of a JSON list of n finite numbers, or UserInputError naming `where`."""
    ok = (
        isinstance(x, list)
        and len(x) == n
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in x)
    )
    if not ok:
        got = json.dumps(x) if not isinstance(x, (dict, list)) or len(json.dumps(x)) < 60 else _json_type(x)
        raise UserInputError(f"{where} must be {n} finite numbers, got {got}")
    return torch.tensor(x, dtype=_F64)


def _look_rotation(forward: Tensor) -> Tensor | None:
    """[3, 3] roll-free camera-to-world rotation whose +z is `forward` [3] (None if `forward` ~ 0)."""
    n = forward.norm()
    if n < 1e-12:
        return None
    z = forward / n
    x = torch.linalg.cross(_down(), z)
    if x.norm() < 1e-6:  # straight up or down: any horizontal right axis
        x = torch.tensor([1.0, 0.0, 0.0], dtype=_F64)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    return torch.stack([x, y, z], dim=1)


# =============================================================================== autopilot
@dataclass(frozen=True)
class AutopilotConfig:
    """Tuning of `AutopilotPath`. Lengths are in scene units (multiples of `scale`), angles in degrees."""

    horizon: float = 0.35
    """Where the horizon should sit, as a fraction of the image height from the top (the sky fraction)."""
    altitude: float = 0.2
    """Height to keep above the highest terrain seen in the corridor ahead (a level photo camera over
    flat ground sits about 0.2 scene units up, since its median depth is about 5 heights)."""
    lookahead: float = 1.5
    """Length of the corridor ahead whose terrain sets the climb."""
    corridor: float = 0.3
    """Half-width of that corridor."""
    max_climb_deg: float = 25.0
    """Steepest climb of the flight path."""
    max_descent_deg: float = 4.0
    """Steepest (gentle) descent of the flight path."""
    max_turn_deg: float = 1.5
    """Largest yaw change per frame."""
    max_pitch_deg: float = 25.0
    """Largest look pitch up or down."""
    max_pitch_rate_deg: float = 1.5
    """Largest look pitch change per frame."""
    turn_gain: float = 3.0
    """How strongly an openness difference between the image halves turns the camera."""
    smoothing: float = 0.85
    """Exponential smoothing of look and move directions: weight of the previous value (0 = none)."""
    steer_width: int = 64
    """Steer from the previous frame reduced to at most this many pixels across (blocks keep their
    nearest depth, so the climb stays conservative); steering needs only the coarse layout."""


class AutopilotPath(CameraPath):
    """Auto-cruise: steer from the previous frame's depth and sky mask, at constant speed, roll-free.

    At each frame t >= 1 the autopilot reads `prev` (the refined frame t-1, rendered at pose t-1):
    - look pitch: the horizon (estimated as the sky fraction of the image; sky on top) is pulled
      towards `horizon` of the image height from the top: too much sky -> look down, too little -> up;
      clamped to +-`max_pitch_deg` and `max_pitch_rate_deg` per frame;
    - yaw: turns towards the image half that is more open (openness = 1 for sky, exp(-disparity *
      scale) elsewhere, averaged over the band around the horizon), up to `max_turn_deg` per frame;
    - climb: the non-sky pixels are lifted to 3D with their depth; for the points in the corridor
      ahead (`lookahead` long, `corridor` half-wide, along the move direction) the flight path angle
      that would pass each point `altitude` above it is atan2(height of point above camera + altitude,
      distance ahead); the flight path takes the largest (climbs early for hills, descends gently at
      most `max_descent_deg` when everything is far below, or when no ground is seen at all);
    - smoothing: turn rate, look pitch, move heading and flight path angle are exponentially smoothed
      (`smoothing`), except that climbing reacts twice as fast as descending (safety first).
    Position advances by exactly `speed * scale` per frame along the move direction. The camera x axis
    stays horizontal (zero roll); frames with all sky, no sky, or NaN depth are handled (NaN depth
    pixels count as unknown). If `prev` is None for t >= 1 the camera coasts on its current state.

    pose(0) is the start pose; later poses are roll-free even if the start camera had roll.
    `pose` must be called for t = 0, 1, 2, ... in order (t = 0 restarts the flight).

    Args:
        start: the photo's Camera.
        scale: world length of one scene unit.
        num_frames: total frames T (>= 1).
        speed: scene units per frame (default 0.02).
        config: AutopilotConfig (defaults above); keyword overrides of its fields are also accepted.
    """

    reactive = True

    def __init__(
        self,
        start: Camera,
        scale: float,
        num_frames: int,
        *,
        speed: float = 0.02,
        config: AutopilotConfig | None = None,
        **overrides: float,
    ) -> None:
        super().__init__(start, scale, num_frames)
        if not (math.isfinite(speed) and speed > 0):
            raise UserInputError(f"autopilot: speed must be a positive number, got {speed}")
        config = config or AutopilotConfig()
        fields = {f.name for f in dataclasses.fields(AutopilotConfig)}
        bad = sorted(set(overrides) - fields)
        if bad:
            raise UserInputError(f"autopilot: unknown option {bad[0]!r} (allowed: speed, {', '.join(sorted(fields))})")
        config = dataclasses.replace(config, **overrides)
        for f in fields:
            v = getattr(config, f)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise UserInputError(f"autopilot: {f} must be a non-negative number, got {v}")
        if not 0 <= config.horizon <= 1 or not 0 <= config.smoothing < 1:
            raise UserInputError("autopilot: horizon must be in [0, 1] and smoothing in [0, 1)")
        self.speed, self.config = float(speed), config
        S = self._start64()
        self._f, self._r = _horizontal_basis(S[:3, :3])  # heading 0 and its right, [3] each
        self._reset()

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        S = self._start64()
        self._t = 0
        self._p = S[:3, 3].clone()  # [3] world position
        self._yaw = 0.0  # look heading, radians from the start heading, right > 0
        self._pitch = math.asin(max(-1.0, min(1.0, float(S[:3, 2] @ _up()))))  # look elevation, up > 0
        self._pitch = max(-math.radians(89.0), min(math.radians(89.0), self._pitch))
        self._turn = 0.0  # yaw change per frame
        self._move_yaw = 0.0  # heading of motion
        self._gamma = 0.0  # flight path angle, climb > 0
        self._last = self.start.c2w.detach().clone().to(torch.float32)

    def _heading(self, yaw: float) -> Tensor:
        return math.cos(yaw) * self._f + math.sin(yaw) * self._r

    def _rotation(self) -> Tensor:
        """[3, 3] roll-free camera-to-world rotation of the current look yaw and pitch."""
        z = math.cos(self._pitch) * self._heading(self._yaw) + math.sin(self._pitch) * _up()
        x = math.cos(self._yaw) * self._r - math.sin(self._yaw) * self._f  # horizontal right
        y = torch.linalg.cross(z, x)
        return torch.stack([x, y, z], dim=1)

    # ------------------------------------------------------------------ stepping
    def pose(self, t: int, prev: Frame | None = None) -> Tensor:
        t = self._check_t(t)
        if t == 0:
            self._reset()
            return self._last.clone()
        if t == self._t:
            return self._last.clone()
        if t != self._t + 1:
            raise ValueError(f"AutopilotPath.pose must be called for t = 0, 1, 2, ... in order ({t} after {self._t})")
        if prev is not None:
            self._steer(prev)
        c = self.config
        s = c.smoothing
        self._yaw += self._turn
        self._move_yaw = s * self._move_yaw + (1 - s) * self._yaw
        step = self.speed * self.scale
        move = math.cos(self._gamma) * self._heading(self._move_yaw) + math.sin(self._gamma) * _up()  # [3] unit
        self._p = self._p + step * move
        self._t = t
        self._last = self._out(_pose(self._rotation(), self._p))
        return self._last.clone()

    def _steer(self, prev: Frame) -> None:
        """Update turn rate, look pitch and flight path angle from frame t-1."""
        c, s = self.config, self.config.smoothing
        cam, sky_t, depth_t = _coarse_view(prev, c.steer_width)
        H, W = cam.height, cam.width
        # The rest is small-array arithmetic: numpy avoids torch's per-op thread start-up, which on
        # many-core machines costs more than the arithmetic itself.
        sky = sky_t.detach().cpu().numpy().astype(bool)
        depth = depth_t.detach().cpu().numpy().astype(np.float64)
        K = cam.K.detach().cpu().numpy().astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            valid = np.isfinite(depth) & (depth > 0) & ~sky  # ground/objects with a usable depth
            disp = np.where(valid, self.scale / np.maximum(depth, 1e-12), 0.0)  # [H, W] scene units

        # Look pitch: move the horizon (sky fraction, sky on top) towards `horizon` from the top.
        fy, cy = float(K[1, 1]), float(K[1, 2])
        h_now = float(sky.mean())
        delta = math.atan((h_now * H - cy) / fy) - math.atan((c.horizon * H - cy) / fy)  # > 0: look down
        change = -(1 - s) * delta
        lim = math.radians(c.max_pitch_rate_deg)
        self._pitch += max(-lim, min(lim, change))
        lim = math.radians(c.max_pitch_deg)
        self._pitch = max(-lim, min(lim, self._pitch))

        # Yaw: towards the more open half of the band around the horizon.
        r0 = int(max(0.0, c.horizon - 0.25) * H)
        r1 = max(r0 + 1, int(math.ceil(min(1.0, c.horizon + 0.35) * H)))
        open_ = np.where(sky, 1.0, np.where(valid, np.exp(-disp), 0.5))[r0:r1]
        left, right = float(open_[:, : W // 2].mean()), float(open_[:, W - W // 2 :].mean())
        lim = math.radians(c.max_turn_deg)
        target_turn = lim * math.tanh(c.turn_gain * (right - left))
        self._turn = s * self._turn + (1 - s) * target_turn

        # Climb: pass every point of the corridor ahead `altitude` above it.
        gamma_target = -math.radians(c.max_descent_deg)
        if valid.any():
            rays = cam.rays_cam().detach().cpu().numpy().astype(np.float64)  # [H, W, 3], z = 1
            pts_cam = rays[valid] * depth[valid][:, None]  # [M, 3]
            c2w = cam.c2w.detach().cpu().numpy().astype(np.float64)
            rel = pts_cam @ c2w[:3, :3].T + (c2w[:3, 3] - self._p.numpy())  # [M, 3] relative to the camera now
            height = rel @ _up().numpy()  # [M] above the camera
            hd = self._heading(self._move_yaw).numpy()
            ahead = rel @ hd
            side = rel @ np.cross(_down().numpy(), hd)
            inside = (ahead > 1e-3 * self.scale) & (ahead < c.lookahead * self.scale)
            inside &= np.abs(side) < c.corridor * self.scale
            if inside.any():
                need = np.arctan2(height[inside] + c.altitude * self.scale, ahead[inside])
                gamma_target = float(need.max())
        gamma_target = max(-math.radians(c.max_descent_deg), min(math.radians(c.max_climb_deg), gamma_target))
        k = (1 - s) * 2 if gamma_target > self._gamma else (1 - s)
        self._gamma += min(1.0, k) * (gamma_target - self._gamma)


def _coarse_view(frame: Frame, max_width: int) -> tuple[Camera, Tensor, Tensor]:
    """(camera, sky [h, w] bool, depth [h, w]) of `frame` reduced by an integer factor to at most
    `max_width` pixels across: a block is sky if most of it is, and keeps its nearest depth."""
    cam = frame.camera
    f = max(1, math.ceil(cam.width / max(1, max_width)))
    if f == 1:
        return cam, frame.sky, frame.depth
    h, w = cam.height // f, cam.width // f
    sky = frame.sky[: h * f, : w * f]
    depth = frame.depth[: h * f, : w * f]
    valid = torch.isfinite(depth) & (depth > 0) & ~sky
    disp = torch.where(valid, 1.0 / depth.clamp_min(1e-12), torch.zeros_like(depth))
    disp = torch.nn.functional.max_pool2d(disp[None, None], f)[0, 0]
    sky_s = torch.nn.functional.avg_pool2d(sky[None, None].float(), f)[0, 0] > 0.5
    depth_s = torch.where(disp > 0, 1.0 / disp.clamp_min(1e-12), torch.full_like(disp, math.inf))
    small = Camera(K=cam.K, c2w=cam.c2w, width=w * f, height=h * f).resized(w, h)
    return small, sky_s, depth_s


# =============================================================================== factory
def make_path(kind: str, start: Camera, scale: float, num_frames: int, **opts: Any) -> CameraPath:
    """The path named by `kind` ("forward" | "loop" | "autopilot" | path to a `.json` keyframe file).

    `opts` are the chosen path's keyword options (e.g. speed=0.03; for the autopilot also the
    AutopilotConfig fields). `speed` is accepted by every kind; a keyframe file ignores it (its
    timing comes from `num_frames`). `retrace=True` is accepted by every kind: the loop retraces a straight
    line; any other path flies its first half and comes back through the same poses.
    Unknown kinds and options raise UserInputError with one line.
    """
    if not isinstance(kind, str) or not kind:
        raise UserInputError(f"unknown path {kind!r}: expected forward, loop, autopilot or a .json keyframe file")
    opts = dict(opts)
    retrace = bool(opts.pop("retrace", False))
    if kind == "loop":
        return _construct(LoopPath, kind, start, scale, num_frames, {**opts, "retrace": retrace})
    n = (num_frames - 1) // 2 + 1 if retrace and num_frames >= 1 else num_frames
    if kind == "forward":
        base = _construct(ForwardPath, kind, start, scale, n, opts)
    elif kind == "autopilot":
        base = AutopilotPath(start, scale, n, **opts)
    elif kind.lower().endswith(".json"):
        opts.pop("speed", None)  # timing comes from the frame count; accepted so callers can pass it to any kind
        if opts:
            raise UserInputError(f"keyframe path {kind}: takes no options, got {sorted(opts)[0]!r}")
        base = KeyframePath.from_json(kind, start, scale, n)
    else:
        raise UserInputError(f"unknown path {kind!r}: expected forward, loop, autopilot or a .json keyframe file")
    return RetracePath(base, num_frames) if retrace else base


def _construct(cls: type, kind: str, start: Camera, scale: float, num_frames: int, opts: dict) -> CameraPath:
    import inspect

    allowed = [p.name for p in inspect.signature(cls).parameters.values() if p.kind == p.KEYWORD_ONLY]
    bad = sorted(set(opts) - set(allowed))
    if bad:
        raise UserInputError(f"{kind} path: unknown option {bad[0]!r} (allowed: {', '.join(allowed)})")
    return cls(start, scale, num_frames, **opts)
