"""Where a flight starts: frame 0 from a photo (or a procedural world), and the scene's length unit.

A photo becomes frame 0 by a centre crop to the working size, then a depth estimator (the user's
depth file, or the `--depth-model`, by default the built-in depth network); a procedural world
(refine/synth) renders frame 0 with exact depth and gives ground truth at any later pose.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from worldgen.core.camera import Camera
from worldgen.core.config import check, check_seed_option
from worldgen.core.frame import Frame
from worldgen.core.images import center_crop_resize, load_image, parse_size
from worldgen.core.io import UserInputError
from worldgen.pipeline.config import PhotoConfig
from worldgen.pipeline.depth import FileDepth, make_depth_estimator


def working_size(size: str, width: int, height: int, auto_side: int = 256) -> tuple[int, int]:
    """(W, H) for the run: 'auto' keeps the photo's aspect (width x height) with the longer side
    `auto_side` (even sizes, at least 16); otherwise `size` is 'WxH'."""
    if size == "auto":
        s = auto_side / max(width, height)
        return max(16, 2 * round(width * s / 2)), max(16, 2 * round(height * s / 2))
    return parse_size(size)


def load_camera_json(path: str) -> dict:
    """fx, fy, cx, cy, width, height (floats) of a camera JSON file (top level, or under "intrinsics"), checked: a
    positive finite focal length and size, the principal point finite and within the image's own extent either
    side of it (a wider one is a file in other units); else UserInputError."""
    try:
        d = json.loads(Path(path).read_text())
        d = d.get("intrinsics", d)  # worldgen's example files nest them
        c = {k: float(d[k]) for k in ("fx", "fy", "cx", "cy", "width", "height")}
    except FileNotFoundError:
        raise UserInputError(f"no such camera file: {path}") from None
    except (IsADirectoryError, NotADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise UserInputError(f"cannot read camera file {path}: {getattr(e, 'strerror', None) or e}") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserInputError(f"camera file {path} must be JSON with fx, fy, cx, cy, width, height ({type(e).__name__}: {e})") from None
    for k in ("fx", "fy", "width", "height"):
        if not (math.isfinite(c[k]) and c[k] > 0):
            raise UserInputError(f"camera file {path}: {k} must be a positive number, got {c[k]:g}")
    for k, side in (("cx", c["width"]), ("cy", c["height"])):
        if not (math.isfinite(c[k]) and -side <= c[k] <= 2 * side):
            raise UserInputError(f"camera file {path}: {k} must lie within -{side:g}..{2 * side:g} pixels, got {c[k]:g}")
    return c


def first_frame(image: str, photo: PhotoConfig, size: str, device: torch.device, auto_side: int = 256) -> Frame:
    """Frame 0 of a photo at the identity pose: load it (and its depth), centre-crop and resize it to
    the working size (`size`, see `working_size`), intrinsics from `photo.camera` or `photo.fov`.

    Depth: the `photo.depth` file (the photo's own size, or the working size: what `worldgen depth`
    writes), else the `photo.depth_model` estimator run on `device` at the working size."""
    check(photo)
    depth_source = FileDepth(photo.depth, photo.depth_kind) if photo.depth else None  # read before the image work
    rgb_full = load_image(image)
    H0, W0 = rgb_full.shape[:2]
    W, H = working_size(size, W0, H0, auto_side)
    if depth_source is not None:
        depth_source.check_size((W0, H0), (W, H))
    rgb = center_crop_resize(rgb_full, W, H)
    if photo.camera:
        c = load_camera_json(photo.camera)
        if (int(c["width"]), int(c["height"])) != (W0, H0):
            raise UserInputError(f"camera file {photo.camera} is for {int(c['width'])}x{int(c['height'])}, the image is {W0}x{H0}")
        K = torch.tensor([[c["fx"], 0, c["cx"]], [0, c["fy"], c["cy"]], [0, 0, 1]], dtype=torch.float32)
        # Centre crop to the working aspect keeps the focal length; then scale.
        crop_w, crop_h = (H0 * W / H, H0) if W0 / H0 > W / H else (W0, W0 * H / W)
        K2 = K.clone()
        K2[0, 2] -= (W0 - crop_w) / 2
        K2[1, 2] -= (H0 - crop_h) / 2
        camera = Camera(K=K2, c2w=torch.eye(4), width=round(crop_w), height=round(crop_h)).resized(W, H)
    else:
        camera = Camera.from_fov(photo.fov, W, H)
    estimator = (depth_source if depth_source is not None
                 else make_depth_estimator(photo.depth_model, device, photo.sky_grow))
    depth, sky = estimator(rgb, camera)
    broken = ~sky & ~(torch.isfinite(depth) & (depth > 0))  # (a file's depth is cleaned already: FileDepth)
    if bool(broken.any()):  # a network whose weights diverged gives NaN: the flight would start from nothing
        raise UserInputError(f"--depth-model {photo.depth_model}: no usable depth at {int(broken.sum())} of "
                             f"{broken.numel()} pixels (NaN, inf or <= 0 outside the sky): broken weights? "
                             "(--depth-model prior, or --depth FILE, flies without it)")
    if bool(sky.all()):
        raise UserInputError(f"{image}: the whole image is sky (no finite depth), nothing to fly into")
    return Frame(rgb=rgb, depth=depth, sky=sky, camera=camera).to(device)


def scene_scale(frame: Frame) -> float:
    """A length unit for camera speeds: the lower quartile of the frame's non-sky depths (the near
    ground, whatever far backdrop the photo has)."""
    d = frame.depth[~frame.sky & torch.isfinite(frame.depth)]
    return float(torch.quantile(d.float().cpu(), 0.25)) if d.numel() else 1.0


@dataclass
class Source:
    """What a flight (or both generators of a comparison) starts from.

    Attributes:
        frame0: the input Frame (rgb [H, W, 3], depth [H, W] with +inf sky, sky [H, W], camera), on the device.
        name: short name of the input (file stem, or synth_<seed>).
        world: the procedural World (ground truth at any pose), or None for a photo.
        info: JSON-ready description (file, fov; or seed, split, climate, flight parameters).
    """

    frame0: Frame
    name: str
    world: object | None = None
    info: dict = field(default_factory=dict)


def photo_source(image: str, photo: PhotoConfig, size: str, device: torch.device, auto_side: int = 256) -> Source:
    """A photo as a Source: frame 0 exactly as `first_frame` builds it."""
    frame0 = first_frame(image, photo, size, device, auto_side)
    info = {"kind": "photo", "file": os.path.basename(image), "fov_x_deg": round(frame0.camera.fov_x_deg, 3),
            "depth": os.path.basename(photo.depth) if photo.depth else f"--depth-model {photo.depth_model}"}
    return Source(frame0=frame0, name=Path(image).stem, world=None, info=info)


def synthetic_source(seed: int, width: int, height: int, device: torch.device) -> Source:
    """Frame 0 of procedural world `seed`: its flight's first pose, rendered with exact depth and sky.

    Raises UserInputError for a seed outside 0 .. SEED_MAX, naming it as --synthetic (`check_seed_option`; commands
    refuse it first, in their options' `check_seed`; this is for scripts that pass a seed of their own).
    """
    from refine.synth import make_flight, make_world, render_frame
    from refine.synth.splits import split_of

    check_seed_option(SimpleNamespace(synthetic=seed), "synthetic")
    world = make_world(seed, device=device)
    flight = make_flight(world, 1, width, height, seed)
    frame0 = render_frame(world, flight.camera(0))
    info = {"kind": "synthetic", "seed": seed, "split": split_of(seed), "climate": world.climate,
            "flight": flight.params}
    return Source(frame0=frame0.to(device), name=f"synth_{seed}", world=world, info=info)


class GroundTruth:
    """Procedural ground truth at any camera, rendered once per distinct pose (cached on the CPU)."""

    def __init__(self, world):
        self.world = world
        self._cache: dict[bytes, Frame] = {}

    def __call__(self, camera: Camera) -> Frame:
        """The exact Frame (rgb [H, W, 3], z-depth [H, W], sky [H, W]) of `camera`, on the CPU."""
        from refine.synth import render_frame

        K, c2w = camera.host()  # (no read from the device per call)
        key = c2w.astype(np.float32).tobytes() + K.astype(np.float32).tobytes()
        if key not in self._cache:
            self._cache[key] = render_frame(self.world, camera.to(self.world.device)).to("cpu")
        return self._cache[key]
