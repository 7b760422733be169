"""The keyframe file format (docs/paths.md): read and validate it into camera-to-world poses.

Every problem is a UserInputError of one line naming the file and the keyframe.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from worldgen.core.camera import Camera, look_rotation, pose_matrix, quat_to_rotmat
from worldgen.core.io import UserInputError

F64 = torch.float64
MAX_COORDINATE = 1e6
"""Largest size of a keyframe number: positions and targets beyond a million units are typos (and
their squares would overflow the path maths)."""
MAX_FILE_BYTES = 64 * 2**20
"""Largest keyframe file read."""


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
    big = [v for v in x if abs(v) > MAX_COORDINATE]
    if big:
        raise UserInputError(f"{where}: {big[0]:g} is too large (keyframe numbers must be within +-{MAX_COORDINATE:g})")
    return torch.tensor(x, dtype=F64)



def read_keyframe_file(path: str | Path) -> tuple[Any, str]:
    """(parsed JSON, file name) of a keyframe file; UserInputError for a missing, unreadable or invalid file
    (NaN and Infinity included: keyframe numbers must be finite)."""
    path = Path(path)
    name = path.name
    try:
        if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
            raise UserInputError(f"{name}: {path.stat().st_size / 2**20:.0f} MB is too large for a keyframe file "
                                 f"(at most {MAX_FILE_BYTES // 2**20} MB)")
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
    except RecursionError:
        raise UserInputError(f"{name}: JSON nested too deeply (a keyframe file is a list of keyframe objects)") from None
    return data, name


def keyframe_poses(data: Any, start_camera: Camera, scale: float, *, source: str = "keyframes") -> Tensor:
    """[K, 4, 4] float64 camera-to-world poses, world coordinates, of parsed keyframe JSON.

    `data` is `{"units": ..., "keyframes": [...]}` or a bare list of keyframes. Scene units:
    positions/targets are multiples of `scale` in the start camera's frame (x right, y down, z forward),
    quaternions (wxyz) are rotations relative to the start camera. World units: world coordinates and
    world camera-to-world rotations. Errors raise UserInputError with one line naming `source` and the
    keyframe.
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

    S = torch.from_numpy(start_camera.host()[1].copy())  # float64, on the host
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
            R = look_rotation(target - p)
            if R is None:
                raise UserInputError(f"{where}: 'look_at' must differ from 'position'")
        else:
            qv = _numbers(item["quat"], 4, f"{where}: 'quat'")
            if qv.norm() < 1e-8:
                raise UserInputError(f"{where}: 'quat' must not be all zeros")
            R = quat_to_rotmat(qv)
            if units == "scene":
                R = R0 @ R
        poses.append(pose_matrix(R, p))
    return torch.stack(poses)
