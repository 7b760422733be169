"""Browse a saved world: `worldgen view RUN_DIR|WORLD.ply`.

A run directory (what `worldgen fly` writes) holds `world.ply`, and usually `cameras.json` (the
camera path: per frame width, height, fx, fy, cx, cy, c2w) and `frames/NNNNN.png` (shown as
thumbnails in the path's frustums). A bare `.ply` can be any standard 3D Gaussian Splatting file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viewer.app import (FRUSTUM_LINE_PX, SplatDisplay, default_frustum_scale, path_frustum_scale, set_initial_view,
                        view_from_camera, view_of_bounds, world_bounds)
from viewer.splats import DISPLAY_BUDGET, frustum_pose
from worldgen.core.camera import Camera
from worldgen.core.images import thumbnail
from worldgen.core.io import UserInputError
from worldgen.core.scene import GaussianScene, SceneFileError

MAX_FRUSTUMS = 300
"""At most this many frustums are drawn for a path (evenly spaced frames; the first and last always)."""


@dataclass
class SavedWorld:
    """A world loaded for browsing.

    Attributes:
        scene: the Gaussians (on the CPU).
        ply: the PLY file it came from.
        cameras: the camera path (empty for a bare PLY), one Camera per frame.
        frames_dir: the run's `frames/` directory, or None.
    """

    scene: GaussianScene
    ply: Path
    cameras: list[Camera] = field(default_factory=list)
    frames_dir: Path | None = None

    def frame_image(self, t: int) -> np.ndarray | None:
        """uint8 [H, W, 3] of frames/{t:05d}.png, or None when there is none (or it is unreadable)."""
        if self.frames_dir is None:
            return None
        p = self.frames_dir / f"{t:05d}.png"
        if not p.is_file():
            return None
        from PIL import Image

        try:
            with Image.open(p) as im:
                return np.asarray(im.convert("RGB"))
        except OSError:
            return None


def load_cameras(path: Path) -> list[Camera]:
    """Cameras of a `cameras.json` ({"frames": [{width, height, fx, fy, cx, cy, c2w}, ...]});
    UserInputError with one line for a malformed file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise UserInputError(f"cannot read {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise UserInputError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, list):
        raise UserInputError(f"{path}: expected an object with a 'frames' list")
    cams = []
    for i, d in enumerate(frames):
        try:
            cam = Camera.from_dict(d)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise UserInputError(
                f"{path}: frame {i} is not a camera (width, height, fx, fy, cx, cy, c2w 4x4): {e}") from None
        if not bool(np.isfinite(cam.c2w.numpy()).all()) or cam.fy <= 0:
            raise UserInputError(f"{path}: frame {i} has a non-finite pose or a non-positive focal length")
        cams.append(cam)
    return cams


def load_world(path: str | Path) -> SavedWorld:
    """A run directory or a PLY file -> SavedWorld; UserInputError with one line when it is neither."""
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"no such run directory or PLY file: {p}")
    if p.is_dir():
        ply = p / "world.ply"
        if not ply.is_file():
            raise UserInputError(f"{p} is not a run directory (no world.ply in it)")
        cams = load_cameras(p / "cameras.json") if (p / "cameras.json").is_file() else []
        frames = p / "frames" if (p / "frames").is_dir() else None
    else:
        ply, cams, frames = p, [], None
    try:
        scene = GaussianScene.load_ply(ply)
    except SceneFileError as e:
        raise UserInputError(str(e)) from None
    return SavedWorld(scene=scene, ply=ply, cameras=cams, frames_dir=frames)


class BrowseApp:
    """The browse-mode scene and panel on a running viser server.

    Shows `world`'s Gaussians (decimated above `budget`), its camera path as frustums with
    thumbnails, and a panel with the counts and a "go to frame" slider. New tabs start at the
    photo's view (the path's first camera, slightly behind) or, for a bare PLY, looking along +z
    at the whole world.
    """

    def __init__(self, server, world: SavedWorld, budget: int = DISPLAY_BUDGET):
        self.server, self.world = server, world
        self.display = SplatDisplay(server, budget=budget)
        self.display.sync(world.scene)
        self.frustums = self._add_path()
        self._add_panel()
        self._set_view()

    # ------------------------------------------------------------------ scene
    def _frustum_frames(self) -> list[int]:
        n = len(self.world.cameras)
        if n <= MAX_FRUSTUMS:
            return list(range(n))
        return sorted(set(np.linspace(0, n - 1, MAX_FRUSTUMS).round().astype(int).tolist()))

    def _add_path(self) -> list:
        cams = self.world.cameras
        if not cams:
            return []
        scale = path_frustum_scale(np.stack([c.position.numpy() for c in cams]), self.world.scene)
        handles = []
        for t in self._frustum_frames():
            pose = frustum_pose(cams[t])
            img = self.world.frame_image(t)
            handles.append(self.server.scene.add_camera_frustum(
                f"/path/frame_{t:05d}", fov=pose.fov, aspect=pose.aspect, scale=scale, thickness=FRUSTUM_LINE_PX,
                thickness_units="screen",
                color=(255, 120, 0) if t == 0 else (60, 60, 60), image=None if img is None else thumbnail(img),
                wxyz=pose.wxyz, position=pose.position))
        return handles

    def _set_view(self) -> None:
        scene = self.world.scene
        lo, hi = world_bounds(scene)
        extent = float(np.linalg.norm(hi - lo)) or 1.0
        if self.world.cameras:  # behind and above the photo's camera, looking along its view
            pose = frustum_pose(self.world.cameras[0])
            dist = max(default_frustum_scale(scene, pose.position) / 0.04, 1e-6)  # median distance to the world
            pos, look = view_from_camera(pose, distance=0.6 * dist, back=0.3 * dist)
            pos = pos + np.array([0.0, -0.15 * dist, 0.0])  # world up is -y
            set_initial_view(self.server, pos, look, fov=pose.fov, near=1e-3 * dist, far=1e3 * dist + extent)
        else:
            fov = np.deg2rad(60.0)
            pos, look = view_of_bounds(lo, hi, fov)
            set_initial_view(self.server, pos, look, fov=fov, near=1e-3 * extent, far=1e2 * extent)

    # ------------------------------------------------------------------ panel
    def _add_panel(self) -> None:
        gui = self.server.gui
        w = self.world
        gui.add_markdown(f"**worldgen** · `{w.ply}`")
        self.info = gui.add_markdown(self._info())
        if len(w.cameras) > 1:
            slider = gui.add_slider("Go to frame", min=0, max=len(w.cameras) - 1, step=1, initial_value=0)

            @slider.on_update
            def _(event) -> None:
                pose = frustum_pose(w.cameras[int(slider.value)])
                clients = [event.client] if event.client is not None else list(self.server.get_clients().values())
                for client in clients:
                    with client.atomic():
                        client.camera.wxyz = pose.wxyz
                        client.camera.position = pose.position

    def _info(self) -> str:
        w = self.world
        lines = [f"{len(w.scene):,} Gaussians · {len(w.cameras)} cameras", self.display.status_line()]
        return "\n\n".join(lines)
