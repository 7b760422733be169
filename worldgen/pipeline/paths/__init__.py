"""Camera paths: where the camera is at frame t of a flight.

The generator drives a path one frame at a time::

    path = make_path("autopilot", start_camera, scale, num_frames)
    for t in range(path.num_frames):
        c2w = path.pose(t, prev)          # [4, 4] camera-to-world for frame t
        prev = generator.step(start_camera.with_pose(c2w))

Conventions (those of `worldgen.core.camera`): OpenCV camera axes (+x right, +y down, +z forward), world
up is -y, poses are camera-to-world 4x4 float32 on the host (CPU; `Camera.with_pose` takes them to the
device and keeps the host copy). Lengths are measured
in *scene units*: one unit is `scale` world units, where `scale` is a length the generator takes from
the first frame (the lower quartile of its non-sky depths). So `speed=0.02` moves 0.02 * scale world
units per frame, and a flight of 500 frames at that speed covers about ten "typical depths" of the
photo, whatever the photo's metric scale.

Every path starts at the photo's camera: `pose(0)` is the start camera's `c2w`, bit for bit.

One module per kind (`base.py` holds the `CameraPath` interface):
    forward.py    ForwardPath: straight along the start camera's +z axis at constant speed.
    loop.py       LoopPath: out and back to the start pose (a forward ellipse, or `retrace=True`).
    keyframes.py  KeyframePath: smooth interpolation of keyframes (Python objects or a JSON file);
                  keyframes_json.py reads and checks the file format (docs/paths.md).
    autopilot.py  AutopilotPath: steers from the previous frame's depth and sky mask (Infinite
                  Nature's auto-cruise), tuned by AutopilotConfig.
    retrace.py    RetracePath: any path out for the first half, then the same poses in reverse.
"""

from __future__ import annotations

from typing import Any

from worldgen.core.camera import Camera
from worldgen.core.io import UserInputError
from worldgen.pipeline.paths.autopilot import AutopilotConfig, AutopilotPath
from worldgen.pipeline.paths.base import CameraPath
from worldgen.pipeline.paths.forward import ForwardPath
from worldgen.pipeline.paths.keyframes import KeyframePath
from worldgen.pipeline.paths.loop import LoopPath
from worldgen.pipeline.paths.retrace import RetracePath

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


def make_path(kind: str, start: Camera, scale: float, num_frames: int, *, autopilot: AutopilotConfig | None = None,
              **opts: Any) -> CameraPath:
    """The path named by `kind` ("forward" | "loop" | "autopilot" | path to a `.json` keyframe file).

    `opts` are the chosen path's keyword options (e.g. speed=0.03; for the autopilot also the
    AutopilotConfig fields). `speed` is accepted by every kind; a keyframe file ignores it (its
    timing comes from `num_frames`). `retrace=True` is accepted by every kind: the loop retraces a straight
    line; any other path flies its first half and comes back through the same poses.
    `autopilot` tunes the autopilot (other kinds ignore it, so callers can pass their config's).
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
        base = AutopilotPath(start, scale, n, config=autopilot, **opts)
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
