"""`KeyframePath`: a smooth (C1) flight through keyframe poses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from worldgen.core.camera import (Camera, look_rotation, pose_matrix, quat_conjugate, quat_log, quat_multiply,
                                  quat_exp, quat_slerp, quat_to_rotmat, rotmat_to_quat, world_up)
from worldgen.core.frame import Frame
from worldgen.core.io import UserInputError
from worldgen.pipeline.paths.base import F64, CameraPath
from worldgen.pipeline.paths.keyframes_json import keyframe_poses, read_keyframe_file


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
        kf = kf.detach().to("cpu", F64)
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
        angle = torch.stack([2 * quat_log(quat_multiply(quat_conjugate(q[k]), q[k + 1])).norm() for k in range(K - 1)])
        cost = torch.maximum(chord, float(turn_length) * angle)
        self.frames = self._share_frames(cost, self.num_frames)  # [K] int frame of each keyframe
        self.keyframe_frames = self.frames[1:] if prepend else self.frames
        self._pos, self._q = pos, q
        self._tangents = self._position_tangents(pos, chord)
        self._s_out, self._s_in = self._squad_controls(q)
        self._kf = kf
        self.roll_free = bool(((kf[:, :3, 0] @ world_up(F64)).abs() < 1e-6).all())

    # ------------------------------------------------------------------ construction from files
    @classmethod
    def from_json(cls, path: str | Path, start_camera: Camera, scale: float, num_frames: int) -> "KeyframePath":
        """Read keyframes from a JSON file (format in docs/paths.md); bad files raise UserInputError."""
        data, name = read_keyframe_file(path)
        return cls.from_dict(data, start_camera, scale, num_frames, source=name)

    @classmethod
    def from_dict(
        cls, data: Any, start_camera: Camera, scale: float, num_frames: int, *, source: str = "keyframes"
    ) -> "KeyframePath":
        """Keyframes from parsed JSON (see `keyframes_json.keyframe_poses` for the format and units)."""
        return cls(start_camera, scale, num_frames, keyframe_poses(data, start_camera, scale, source=source))

    # ------------------------------------------------------------------ setup helpers
    def _same_pose(self, A: Tensor, B: Tensor) -> bool:
        return bool((A[:3, 3] - B[:3, 3]).norm() <= 1e-6 * self.scale and (A[:3, :3] - B[:3, :3]).abs().max() <= 1e-6)

    @staticmethod
    def _share_frames(cost: Tensor, T: int) -> list[int]:
        """Frame index [K] of each keyframe: 0 and T-1 at the ends, strictly increasing, spaced by cost."""
        K = cost.numel() + 1
        total = float(cost.sum())
        cum = torch.cat([torch.zeros(1, dtype=F64), cost.cumsum(0)])
        ideal = cum / total * (T - 1) if total > 1e-12 else torch.linspace(0, T - 1, K, dtype=F64)
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
        h = torch.tensor(self.frames, dtype=F64).diff()  # [K-1] frames per segment
        vel = (pos[1:] - pos[:-1]) / h[:, None]  # [K-1, 3] mean velocity of each segment
        m = torch.zeros(K, 3, dtype=F64)
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
            a = quat_log(quat_multiply(quat_conjugate(q[k]), q[k + 1])) if k < K - 1 else None
            b = -quat_log(quat_multiply(quat_conjugate(q[k]), q[k - 1])) if k > 0 else None
            if a is None or b is None:
                continue  # ends: angular velocity = the chord's, which makes s = q
            w = (h[k - 1] * a / h[k] + h[k] * b / h[k - 1]) / (h[k - 1] + h[k])
            s_out[k] = quat_multiply(q[k], quat_exp((h[k] * w - a) / 2))
            s_in[k] = quat_multiply(q[k], quat_exp((b - h[k - 1] * w) / 2))
        return s_out, s_in

    # ------------------------------------------------------------------ evaluation
    def pose(self, t: int, prev: Frame | None = None) -> Tensor:
        t = self._check_t(t)
        if t == 0:
            return self._start32()
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
        qa = quat_slerp(q0, q1, u)
        qb = quat_slerp(self._s_out[k], self._s_in[k + 1], u)
        R = quat_to_rotmat(quat_slerp(qa, qb, 2 * u * (1 - u)))
        if self.roll_free:  # spherical interpolation of two level cameras can tilt the horizon: re-level
            R = look_rotation(R[:, 2])
        return self._out(pose_matrix(R, p))
