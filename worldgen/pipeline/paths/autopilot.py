"""`AutopilotPath`: auto-cruise, steering from the previous frame's depth and sky (Infinite Nature's)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from worldgen.core.camera import Camera, horizontal_basis, world_up
from worldgen.core.config import bad, check
from worldgen.core.frame import Frame
from worldgen.core.graphs import GraphCache, graphs_enabled
from worldgen.core.io import UserInputError
from worldgen.pipeline.paths.base import F64, CameraPath


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
    max_clearance: float = 0.0
    """Highest the camera may climb above the ground ahead (the lowest quarter of the points below the camera
    seen within twice `lookahead` ahead), in scene units; what this ceiling forbids to climb over in the corridor
    is flown round when a heading within `max_avoid_deg` is free. 0 (the default): no ceiling. Over trunks
    under a roof of crowns it keeps the camera under them and round the trunks (tests/test_paths.py); over real
    forest photos, whose trees the depth network lifts as one leaning surface, 0.5 traded the climb over them
    for flights into that surface or circling inside it (docs/paths.md), so it is off."""
    max_climb_deg: float = 25.0
    """Steepest climb of the flight path."""
    max_descent_deg: float = 4.0
    """Steepest (gentle) descent of the flight path."""
    max_turn_deg: float = 1.5
    """Largest yaw change per frame."""
    max_avoid_deg: float = 30.0
    """Widest heading change searched for a free way round what the ceiling (`max_clearance`) forbids to
    climb over (trees ahead). 0: no search (the openness rule alone steers)."""
    max_pitch_deg: float = 25.0
    """Largest look pitch down."""
    max_pitch_up_deg: float = 10.0
    """Largest look pitch up. Little sky in the frame says "look up" to the horizon rule, but under
    trees or beside a cliff the sky is hidden, not below the frame: over real forest photos a 25 degree
    limit had the camera staring up the trunks it flew towards. A start pitch above this comes down
    at `max_pitch_rate_deg` per frame."""
    max_pitch_rate_deg: float = 1.5
    """Largest look pitch change per frame."""
    turn_gain: float = 3.0
    """How strongly an openness difference between the image halves turns the camera."""
    smoothing: float = 0.85
    """Exponential smoothing of look and move directions: weight of the previous value (0 = none)."""
    steer_width: int = 64
    """Steer from the previous frame reduced to at most this many pixels across (blocks keep their
    nearest depth, so the climb stays conservative); steering needs only the coarse layout. At least
    STEER_WIDTH_MIN: the yaw rule compares the openness of the left and right halves of the reduced frame."""

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise bad(f.name, "must be a non-negative number", v)
        if not 0 <= self.horizon <= 1:
            raise bad("horizon", "must be in [0, 1]", self.horizon)
        if not 0 <= self.smoothing < 1:
            raise bad("smoothing", "must be in [0, 1)", self.smoothing)
        if not (isinstance(self.steer_width, int) and self.steer_width >= STEER_WIDTH_MIN):
            raise bad("steer_width", f"must be a whole number of pixels, at least {STEER_WIDTH_MIN} (steering compares "
                      "the left and right halves of the reduced frame)", self.steer_width)


STEER_WIDTH_MIN = 2
"""Smallest `AutopilotConfig.steer_width`: the yaw rule compares the mean openness of the left and right halves of
the reduced frame (W // 2 columns each), so it needs 2 columns; at 1 (or 0) both halves are empty, their means NaN,
and so is the pose. `_coarse_maps` keeps 2 columns and 1 row for any frame size."""


class AutopilotPath(CameraPath):
    """Auto-cruise: steer from the previous frame's depth and sky mask, at constant speed, roll-free.

    At each frame t >= 1 the autopilot reads `prev` (the refined frame t-1, rendered at pose t-1):
    - look pitch: the horizon (estimated as the sky fraction of the image; sky on top) is pulled
      towards `horizon` of the image height from the top: too much sky -> look down, too little -> up;
      clamped to `max_pitch_deg` down and `max_pitch_up_deg` up, and `max_pitch_rate_deg` per frame;
    - yaw: turns towards the image half that is more open (openness = 1 for sky, exp(-disparity *
      scale) elsewhere, averaged over the band around the horizon), up to `max_turn_deg` per frame;
    - climb: the non-sky pixels are lifted to 3D with their depth; for the points in the corridor
      ahead (`lookahead` long, `corridor` half-wide, along the move direction) the flight path angle
      that would pass each point `altitude` above it is atan2(height of point above camera + altitude,
      distance ahead); the flight path takes the largest (climbs early for hills, descends gently at
      most `max_descent_deg` when everything is far below, or when no ground is seen at all); with
      `max_clearance` > 0 (off by default) never more than that above the ground ahead (the lowest quarter
      of the points below the camera within twice `lookahead`), so trees ahead are flown under, not over,
      and what that ceiling forbids to climb over in the corridor is flown round: the yaw turns towards the
      nearest free heading (`_free_heading`);
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
    _STATE = ("_t", "_p", "_yaw", "_pitch", "_turn", "_move_yaw", "_gamma", "_last")

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
        bad_names = sorted(set(overrides) - fields)
        if bad_names:
            allowed = ", ".join(sorted(fields))
            raise UserInputError(f"autopilot: unknown option {bad_names[0]!r} (allowed: speed, {allowed})")
        config = dataclasses.replace(config, **overrides)
        check(config, prefix="autopilot.")
        self.speed, self.config = float(speed), config
        S = self._start64()
        f, r = horizontal_basis(S[:3, :3])  # heading 0 and its right, [3] each
        self._f, self._r = f.numpy().copy(), r.numpy().copy()
        self._reset()

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        S = self._start64()
        self._t = 0
        self._p = S[:3, 3].clone()  # [3] world position (float64 tensor: the checkpointed state)
        self._yaw = 0.0  # look heading, radians from the start heading, right > 0
        self._pitch = math.asin(max(-1.0, min(1.0, float(S[:3, 2] @ world_up(F64)))))  # look elevation, up > 0
        self._pitch = max(-math.radians(89.0), min(math.radians(89.0), self._pitch))
        self._turn = 0.0  # yaw change per frame
        self._move_yaw = 0.0  # heading of motion
        self._gamma = 0.0  # flight path angle, climb > 0
        self._last = self._start32()

    # The path's arithmetic is on a few numbers a frame: numpy, not torch, whose per-operation dispatch (about
    # 10 us on the GPU machines' hosts, over 150 operations a frame) made the path a tenth of a 512x512 frame.
    def _heading(self, yaw: float) -> np.ndarray:
        """float64 [3] horizontal unit direction of `yaw` (radians from the start heading, right > 0)."""
        return math.cos(yaw) * self._f + math.sin(yaw) * self._r

    def _rotation(self) -> np.ndarray:
        """float64 [3, 3] roll-free camera-to-world rotation of the current look yaw and pitch."""
        z = math.cos(self._pitch) * self._heading(self._yaw) + math.sin(self._pitch) * _UP
        x = math.cos(self._yaw) * self._r - math.sin(self._yaw) * self._f  # horizontal right
        y = np.cross(z, x)
        return np.stack([x, y, z], axis=1)

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
        move = math.cos(self._gamma) * self._heading(self._move_yaw) + math.sin(self._gamma) * _UP  # [3] unit
        p = self._p.numpy() + step * move
        self._p = torch.from_numpy(p)
        self._t = t
        T = np.eye(4)
        T[:3, :3] = self._rotation()
        T[:3, 3] = p
        self._last = torch.from_numpy(T.astype(np.float32))
        return self._last.clone()

    def _steer(self, prev: Frame) -> None:
        """Update turn rate, look pitch and flight path angle from frame t-1."""
        c, s = self.config, self.config.smoothing
        K, c2w, sky, depth = _coarse_maps(prev, c.steer_width)
        H, W = sky.shape
        # The rest is small-array arithmetic: numpy avoids torch's per-op thread start-up, which on
        # many-core machines costs more than the arithmetic itself.
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            valid = np.isfinite(depth) & (depth > 0) & ~sky  # ground/objects with a usable depth
            disp = np.where(valid, self.scale / np.maximum(depth, 1e-12), 0.0)  # [H, W] scene units

        # Look pitch: move the horizon (sky fraction, sky on top) towards `horizon` from the top.
        fy, cy = float(K[1, 1]), float(K[1, 2])
        h_now = float(sky.mean())
        delta = math.atan((h_now * H - cy) / fy) - math.atan((c.horizon * H - cy) / fy)  # > 0: look down
        change = -(1 - s) * delta
        rate = math.radians(c.max_pitch_rate_deg)
        before = self._pitch
        self._pitch += max(-rate, min(rate, change))
        up = math.radians(min(c.max_pitch_deg, c.max_pitch_up_deg))
        if self._pitch > up:  # above the upward limit: no higher, and back down gradually
            self._pitch = max(up, min(self._pitch, before - rate))
        self._pitch = max(-math.radians(c.max_pitch_deg), self._pitch)

        # Yaw: towards the more open half of the band around the horizon.
        r0 = int(max(0.0, c.horizon - 0.25) * H)
        r1 = max(r0 + 1, int(math.ceil(min(1.0, c.horizon + 0.35) * H)))
        open_ = np.where(sky, 1.0, np.where(valid, np.exp(-disp), 0.5))[r0:r1]
        left, right = float(open_[:, : W // 2].mean()), float(open_[:, W - W // 2 :].mean())
        lim = math.radians(c.max_turn_deg)
        target_turn = lim * math.tanh(c.turn_gain * (right - left))

        # Climb: pass every point of the corridor ahead `altitude` above it.
        gamma_target = -math.radians(c.max_descent_deg)
        if valid.any():
            rays = _rays_cam(K, H, W)  # [H, W, 3], z = 1
            pts_cam = rays[valid] * depth[valid][:, None]  # [M, 3]
            rel = pts_cam @ c2w[:3, :3].T + (c2w[:3, 3] - self._p.numpy())  # [M, 3] relative to the camera now
            height = rel @ _UP  # [M] above the camera
            hd = self._heading(self._move_yaw)
            ahead = rel @ hd
            side = rel @ np.cross(-_UP, hd)
            inside = (ahead > 1e-3 * self.scale) & (ahead < c.lookahead * self.scale)
            inside &= np.abs(side) < c.corridor * self.scale
            if inside.any():
                need = np.arctan2(height[inside] + c.altitude * self.scale, ahead[inside])
                gamma_target = float(need.max())
            if c.max_clearance > 0:  # the ceiling: at most max_clearance over the ground ahead
                front = ahead > 1e-3 * self.scale
                below = front & (ahead < 2 * c.lookahead * self.scale) & (height < 0)
                if below.sum() >= 8:
                    ground = float(np.quantile(height[below], 0.25))
                    ceiling = math.atan2(ground + c.max_clearance * self.scale, c.lookahead * self.scale)
                    gamma_target = min(gamma_target, ceiling)
                    # What the ceiling forbids to pass over is flown round: steer to the nearest free heading.
                    blocked = front & (ahead < c.lookahead * self.scale)
                    blocked &= np.arctan2(height + c.altitude * self.scale, ahead) > ceiling
                    if blocked.any() and c.max_avoid_deg > 0:
                        free = _free_heading(ahead[blocked], side[blocked], c.corridor * self.scale, lim,
                                             c.max_avoid_deg)
                        if free is not None:
                            target_turn = free
        self._turn = s * self._turn + (1 - s) * target_turn
        gamma_target = max(-math.radians(c.max_descent_deg), min(math.radians(c.max_climb_deg), gamma_target))
        k = (1 - s) * 2 if gamma_target > self._gamma else (1 - s)
        self._gamma += min(1.0, k) * (gamma_target - self._gamma)


_UP = np.array([0.0, -1.0, 0.0])  # world up (-y), float64


def _free_heading(ahead: np.ndarray, side: np.ndarray, half_width: float, max_turn: float,
                  max_avoid_deg: float) -> float | None:
    """Turn rate (radians per frame, right > 0) towards the heading nearest straight on whose corridor is free.

    ahead, side: [M] the blocking points relative to the camera along the move heading and to its right (world
    units; the points the climb's ceiling forbids to pass over). A candidate heading b (evenly spaced at most
    2.5 degrees apart over +-max_avoid_deg, straight on among them) is blocked by any point ahead along it whose
    distance from its line is < half_width. Returns None when straight on is free (the openness rule steers),
    and when no heading is free: a wall all round (a forest photo's trees lifted as one surface) is flown
    through under the ceiling, not circled in; else a full-rate turn towards the free heading nearest straight
    on."""
    k = math.ceil(max_avoid_deg / 2.5)
    b = np.radians(np.linspace(-max_avoid_deg, max_avoid_deg, 2 * k + 1))  # [K], b[k] = 0
    sb, cb = np.sin(b)[:, None], np.cos(b)[:, None]
    along = ahead[None] * cb + side[None] * sb  # [K, M]
    off = np.abs(side[None] * cb - ahead[None] * sb)
    blocked = ((along > 0) & (off < half_width)).any(1)  # [K]
    if not blocked[len(b) // 2] or blocked.all():
        return None
    free = np.flatnonzero(~blocked)
    return max_turn * math.copysign(1.0, float(b[free[np.argmin(np.abs(b[free]))]]))


def _coarse_maps(frame: Frame, max_width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`frame` reduced by an integer factor to at most `max_width` pixels across (but at least STEER_WIDTH_MIN
    across and 1 high, whatever `max_width` and the frame's aspect), as the steering reads it, all
    float64 numpy on the host: K [3, 3] and c2w [4, 4] of the coarse view (from the camera's host copy), sky
    [h, w] bool and depth [h, w] (`_pool_maps`, read from the device in one copy: one wait). K is that of
    `Camera.resized` (tests/test_paths.py checks it bit for bit)."""
    K, c2w = frame.camera.host()
    W0, H0 = frame.camera.width, frame.camera.height
    # at least 2 columns (the yaw rule compares the halves) and 1 row (a very wide frame: 2048x16 with 64 across
    # would reduce to 64x0), so such a frame keeps more than max_width columns
    f = max(1, min(math.ceil(W0 / max(1, max_width)), W0 // STEER_WIDTH_MIN, H0))
    h, w = H0 // f, W0 // f
    both = _pool_maps(frame, f, h, w).cpu().numpy()
    if f == 1:
        return K, c2w, both[0] > 0.5, both[1].astype(np.float64)
    # `Camera.resized` of the (w * f) x (h * f) camera to w x h, in float32 as it computes
    Ks = K.astype(np.float32)
    Ks[0] *= np.float32(w / (w * f))
    Ks[1] *= np.float32(h / (h * f))
    Ks[2] = (0.0, 0.0, 1.0)
    return Ks.astype(np.float64), c2w, both[0] > 0.5, both[1].astype(np.float64)


def _rays_cam(K: np.ndarray, H: int, W: int) -> np.ndarray:
    """[H, W, 3] float64 camera-space rays with z = 1 through the pixel centres (`Camera.rays_cam`, float32 as
    it computes)."""
    K32 = K.astype(np.float32)
    v, u = np.meshgrid(np.arange(H, dtype=np.float32) + np.float32(0.5), np.arange(W, dtype=np.float32) + np.float32(0.5),
                       indexing="ij")
    x = (u - K32[0, 2]) / K32[0, 0]
    y = (v - K32[1, 2]) / K32[1, 1]
    return np.stack([x, y, np.ones_like(x)], axis=-1).astype(np.float64)


_GRAPHS = GraphCache(max_graphs=2)


def _pool_maps(frame: Frame, f: int, h: int, w: int) -> Tensor:
    """[2, h, w] in the depth's dtype on the frame's device: `frame` in f x f blocks, sky (1 where most of the block is sky, else
    0) and z-depth (the block's nearest; inf where it has none). On CUDA one graph replay (worldgen/core/graphs.py)
    instead of some twenty operations a frame."""
    def pool(sky: Tensor, depth: Tensor) -> Tensor:
        if f == 1:
            return torch.stack([sky.to(depth.dtype), depth])
        sky, depth = sky[: h * f, : w * f], depth[: h * f, : w * f]
        valid = torch.isfinite(depth) & (depth > 0) & ~sky
        disp = torch.where(valid, 1.0 / depth.clamp_min(1e-12), torch.zeros_like(depth))
        disp = torch.nn.functional.max_pool2d(disp[None, None], f)[0, 0]
        sky_s = torch.nn.functional.avg_pool2d(sky[None, None].to(depth.dtype), f)[0, 0] > 0.5
        depth_s = torch.where(disp > 0, 1.0 / disp.clamp_min(1e-12), torch.full_like(disp, math.inf))
        return torch.stack([sky_s.to(depth.dtype), depth_s])

    sky, depth = frame.sky.detach(), frame.depth.detach()
    if depth.is_cuda and graphs_enabled():
        return _GRAPHS.run(("autopilot", f, h, w), [sky, depth], lambda st: lambda: (pool(*st),))[0]
    return pool(sky, depth)
