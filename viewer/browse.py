"""Browse a saved world: `worldgen view RUN_DIR|WORLD.ply`.

A run directory (what `worldgen fly` writes) holds `world.ply`, and usually `cameras.json` (the
camera path: per frame width, height, fx, fy, cx, cy, c2w) and `frames/NNNNN.png` (shown as
thumbnails in the path's frustums). A `.ply` given directly picks up the same files when they lie
beside it, and `sky.png` (the sky dome, see worldgen/pipeline/sky.py) from either place becomes the background.
A bare `.ply` can be any standard 3D Gaussian Splatting file.

New tabs open at the flight's first camera (exactly its pose and vertical field of view), or, with
no cameras, framed on the world's densest region (viewer/framing.py). The world is streamed to the
browser in chunks from a background thread, in file order (worldgen writes Gaussians in the order
the flight created them, so what the first camera sees arrives first), so the page and its panel
respond at once however large the world.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from viewer.app import FRUSTUM_LINE_PX, SplatDisplay, path_frustum_scale, set_initial_view
from viewer.framing import View, view_at_camera, view_of_densest
from viewer.splats import DISPLAY_BUDGET, frustum_pose
from worldgen.core.camera import Camera
from worldgen.core.images import thumbnail
from worldgen.core.io import UserInputError
from worldgen.core.scene import GaussianScene, SceneFileError
from worldgen.pipeline.export.rundir import load_cameras  # noqa: F401  (re-exported: its home is the export package)

MAX_FRUSTUMS = 20
"""At most this many frustums are drawn for a path (evenly spaced frames; the first and last always):
seen from the first camera, the path runs through the middle of the view."""
FRUSTUM_SIZE = 0.25
"""Frustum depth, in median steps between consecutive cameras."""
STREAM_CHUNK = 250_000
"""Gaussians per streamed chunk (more for worlds so large that chunks would exceed the display's limit)."""


@dataclass
class SavedWorld:
    """A world loaded for browsing.

    Attributes:
        scene: the Gaussians (on the CPU).
        ply: the PLY file it came from.
        cameras: the camera path (empty for a bare PLY), one Camera per frame.
        frames_dir: the run's `frames/` directory, or None.
        sky: the sky dome (worldgen.pipeline.sky.SkyDome) from `sky.png`, or None.
        notes: warnings for the user (e.g. an unreadable sky.png, shown without sky).
    """

    scene: GaussianScene
    ply: Path
    cameras: list[Camera] = field(default_factory=list)
    frames_dir: Path | None = None
    sky: object | None = None
    notes: list[str] = field(default_factory=list)

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


def load_world(path: str | Path) -> SavedWorld:
    """A run directory or a PLY file (with cameras.json, frames/ and sky.png beside it when there are)
    -> SavedWorld; UserInputError with one line when it is neither."""
    p = Path(path)
    if not p.exists():
        raise UserInputError(f"no such run directory or PLY file: {p}")
    if p.is_dir():
        ply = p / "world.ply"
        if not ply.is_file():
            raise UserInputError(f"{p} is not a run directory (no world.ply in it)")
    else:
        ply = p
    folder = ply.parent
    cams = load_cameras(folder / "cameras.json") if (folder / "cameras.json").is_file() else []
    frames = folder / "frames" if cams and (folder / "frames").is_dir() else None
    try:
        scene = GaussianScene.load_ply(ply)
    except SceneFileError as e:
        raise UserInputError(str(e)) from None
    sky, notes = None, []
    if (folder / "sky.png").is_file():
        from worldgen.pipeline.sky import SkyDome

        try:
            sky = SkyDome.load_png(folder / "sky.png")
        except UserInputError as e:
            notes.append(f"{e}; showing the world without its sky")
    return SavedWorld(scene=scene, ply=ply, cameras=cams, frames_dir=frames, sky=sky, notes=notes)


class BrowseApp:
    """The browse-mode scene and panel on a running viser server.

    Shows `world`'s Gaussians (streamed; decimated above `budget`), its camera path as a line and
    frustums with thumbnails, the sky dome as background, and a panel with the counts, a frame slider
    that moves every tab to that frame's pose, and playback of the path. See the module docstring.
    """

    def __init__(self, server, world: SavedWorld, budget: int = DISPLAY_BUDGET, chunk: int = STREAM_CHUNK):
        self.server, self.world = server, world
        self.display = SplatDisplay(server, budget=budget)
        self.chunk = max(1, int(chunk))
        self.streamed = threading.Event()
        self._stop = threading.Event()
        self._player: threading.Thread | None = None
        self._lock = threading.Lock()
        self._inside: dict[int, object] = {}  # client id -> its wireframe shadowing the frustum it stands in
        self._path_visible = True
        self.path_handles = self._add_path()
        self.view = self._set_view()
        self._add_panel()
        self.sky = None
        if world.sky is not None:
            from viewer.sky_view import SkyBackground

            self.sky = SkyBackground(server, world.sky)
        n = len(world.scene)
        self._step = max(self.chunk, math.ceil(n / max(1, self.display.max_chunks - 1)))
        self.display.sync(world.scene.subset(slice(0, min(self._step, n))), total=n)  # the first chunk now
        self.info.content = self._info()
        self._streamer = threading.Thread(target=self._stream, name="worldgen-stream", daemon=True)
        self._streamer.start()

    # ------------------------------------------------------------------ scene
    def _stream(self) -> None:
        """Send the rest of the world in chunks of `_step` Gaussians, decimated for the whole world's size."""
        scene, n = self.world.scene, len(self.world.scene)
        try:
            for end in range(2 * self._step, n + self._step, self._step):
                if self._stop.is_set():
                    return
                self.display.sync(scene.subset(slice(0, min(end, n))), total=n)
                self.info.content = self._info()
        finally:
            self.streamed.set()
            if not self._stop.is_set():
                self.info.content = self._info()

    def wait_streamed(self, timeout: float | None = None) -> bool:
        """True once every Gaussian has been sent (waits at most `timeout` seconds)."""
        return self.streamed.wait(timeout)

    def _frustum_frames(self) -> list[int]:
        n = len(self.world.cameras)
        if n <= MAX_FRUSTUMS:
            return list(range(n))
        return sorted(set(np.linspace(0, n - 1, MAX_FRUSTUMS).round().astype(int).tolist()))

    def _add_path(self) -> list:
        cams = self.world.cameras
        if not cams:
            return []
        centres = np.stack([c.position.numpy() for c in cams])
        scale = FRUSTUM_SIZE * path_frustum_scale(centres, self.world.scene)
        handles = []
        if len(cams) > 1:
            handles.append(self.server.scene.add_line_segments(
                "/path/line", points=np.stack([centres[:-1], centres[1:]], 1).astype(np.float32),
                colors=(255, 120, 0), thickness=2.0, thickness_units="screen"))
        self._frustum_scale = scale
        self._drawn = set(self._frustum_frames())
        for t in sorted(self._drawn):
            img = self.world.frame_image(t)
            handles.append(self._add_frustum(self.server.scene, t, None if img is None else thumbnail(img)))
        self.server.on_client_connect(lambda client: self._stand_in(client, 0))
        return handles

    def _add_frustum(self, scene_api, t: int, image: np.ndarray | None):
        pose = frustum_pose(self.world.cameras[t])
        return scene_api.add_camera_frustum(
            f"/path/frame_{t:05d}", fov=pose.fov, aspect=pose.aspect, scale=self._frustum_scale,
            thickness=FRUSTUM_LINE_PX, thickness_units="screen", color=(255, 120, 0) if t == 0 else (60, 60, 60),
            image=image, wxyz=pose.wxyz, position=pose.position, visible=self._path_visible)

    def _stand_in(self, client, t: int) -> None:
        """A tab standing at frame t sees that frame's frustum without its thumbnail (which would cover
        its view): a wireframe for this tab alone shadows the shared frustum (viser's client scope)."""
        with self._lock:
            old = self._inside.pop(client.client_id, None)
            if old is not None:
                old.remove()
            if t in self._drawn:
                self._inside[client.client_id] = self._add_frustum(client.scene, t, None)

    def _set_view(self) -> View:
        """New tabs start at camera 0 (exactly), or framed on the densest region of a world with no path."""
        scene = self.world.scene
        view = view_at_camera(self.world.cameras[0], scene) if self.world.cameras else view_of_densest(scene)
        if self.world.sky is not None:
            # viser draws its background image on a plane 1 unit in front of the camera (so near < 1), and
            # with far / near above about 1e5 its splats render blurred (seen in headless Chromium).
            near = min(view.near, 0.5)
            view = dataclasses.replace(view, near=near, far=min(view.far, 1e5 * near))
        set_initial_view(self.server, view.position, view.look_at, fov=view.fov, near=view.near, far=view.far)
        self.server.initial_camera.up = tuple(float(x) for x in view.up)
        return view

    # ------------------------------------------------------------------ panel
    def _add_panel(self) -> None:
        gui = self.server.gui
        w = self.world
        gui.add_markdown(f"**worldgen** · `{w.ply}`")
        self.info = gui.add_markdown(self._info())
        self.slider = self.play_button = self.fps = None
        if w.cameras:
            show = gui.add_checkbox("Show camera path", initial_value=True)

            @show.on_update
            def _(event) -> None:
                self._path_visible = bool(show.value)
                with self._lock:
                    for h in [*self.path_handles, *self._inside.values()]:
                        h.visible = self._path_visible

        if len(w.cameras) > 1:
            self.slider = gui.add_slider("Frame", min=0, max=len(w.cameras) - 1, step=1, initial_value=0)
            self.play_button = gui.add_button("Play path")
            self.fps = gui.add_slider("Playback fps", min=1, max=60, step=1, initial_value=15)

            @self.slider.on_update
            def _(event) -> None:
                self.go_to(int(self.slider.value), [event.client] if event.client is not None else None)

            @self.play_button.on_click
            def _(event) -> None:
                if self.playing:
                    self.pause()
                else:
                    self.play()

    def _info(self) -> str:
        w = self.world
        lines = [f"{len(w.scene):,} Gaussians · {len(w.cameras)} cameras", self.display.status_line()]
        if not self.streamed.is_set() and self.display.sent_upto < len(w.scene):
            lines.append(f"Streaming: {self.display.sent_upto:,} of {len(w.scene):,} sent …")
        return "\n\n".join(lines)

    # ------------------------------------------------------------------ path
    def go_to(self, t: int, clients=None) -> None:
        """Move `clients` (default: every tab) to frame t's camera: its pose and vertical field of view."""
        cam = self.world.cameras[t]
        pose = frustum_pose(cam)
        for client in clients if clients is not None else list(self.server.get_clients().values()):
            self._stand_in(client, t)
            with client.atomic():
                client.camera.wxyz = pose.wxyz
                client.camera.position = pose.position
                client.camera.fov = pose.fov

    @property
    def playing(self) -> bool:
        return self._player is not None and self._player.is_alive()

    def play(self, fps: float | None = None) -> None:
        """Play the path from the slider's frame (from 0 when at the end), one frame per 1/fps s, to the end."""
        if self.slider is None or self.playing:
            return
        if int(self.slider.value) >= len(self.world.cameras) - 1:
            self.slider.value = 0
        self._pause = threading.Event()
        self.play_button.label = "Pause"

        def run() -> None:
            try:
                while not self._pause.is_set() and not self._stop.is_set():
                    t = int(self.slider.value)
                    if t >= len(self.world.cameras) - 1:
                        break
                    self._pause.wait(1.0 / float(fps or self.fps.value))
                    if not self._pause.is_set():
                        self.slider.value = t + 1  # moves every tab (slider callback)
            finally:
                self.play_button.label = "Play path"

        self._player = threading.Thread(target=run, name="worldgen-play", daemon=True)
        self._player.start()

    def pause(self) -> None:
        if self.playing:
            self._pause.set()
            self._player.join(timeout=5)

    def stop(self) -> None:
        """End the streaming and playback threads."""
        self._stop.set()
        self.pause()
        self._streamer.join(timeout=10)


def print_notes(world: SavedWorld) -> None:
    for note in world.notes:
        print(f"worldgen: warning: {note}", file=sys.stderr)
