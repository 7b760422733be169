"""Generate while you watch: `worldgen live IMAGE`.

Two parts:

- `LiveEngine` (no viser in it): the persistent generator and the per-frame baseline, built from the
  same frame 0, driven along the *same* poses by one pilot (a worldgen path — autopilot, forward,
  loop — or manual steering, which takes over from the path). The autopilot reads the persistent
  generator's frames. One `step()` makes one frame of each.
- `LiveApp`: the viser scene and panel on top of an engine. Generation runs in a background thread
  that never waits for a browser; tabs come and go (several may watch one server), and the GUI
  (shared by all tabs) only sets flags the thread reads. After each frame the thread updates the
  side-by-side image, the stats and a camera frustum; every `push_every` frames it sends the
  world's new Gaussians as one more splat chunk (`viewer.app.SplatDisplay`).

Poses follow worldgen's conventions: OpenCV camera axes, camera-to-world 4x4, world up -y.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from worldgen.core.camera import Camera, horizontal_basis, look_at, world_up, yaw_about_down
from worldgen.core.config import check
from worldgen.core.frame import Frame
from worldgen.core.images import side_by_side, thumbnail
from worldgen.core.io import UserInputError, os_error_line, save_cameras_json
from worldgen.core.runfolder import OutputFolder, check_output_folder
from worldgen.core.scene import GaussianScene
from worldgen.pipeline.flight import Flight
from worldgen.pipeline.paths import AutopilotConfig, make_path

PATH_MODES = ("autopilot", "forward", "loop", "manual")
"""What drives the camera: a worldgen path from the current pose, or manual steering."""

ENDLESS = 10**9
"""Frame count given to the endless paths (forward, autopilot); they are rebuilt on every mode change."""

TURN_STEP_DEG = 5.0
"""Yaw per turn press (right > 0)."""
PITCH_STEP_DEG = 3.0
"""Look-pitch change per pitch press (up > 0); the look elevation is kept within +-MAX_PITCH_DEG."""
MAX_PITCH_DEG = 80.0
CLIMB_STEP = 0.05
"""Height change per climb press, in scene units (multiples of the photo's lower-quartile depth)."""

LIVE_EXPORTS = frozenset({"world.ply", "cameras.json"})
"""What "Export world" writes into `worldgen live --out` (a folder holding anything else is refused: a fly run's,
someone's files)."""


def check_export_dir(out: str | Path) -> Path:
    """`worldgen live --out`, checked before the server starts (creating nothing; the folder is made and held only
    while an export writes it: `LiveEngine.export`): UserInputError (one line) for a file, a place this process
    cannot write, a folder another worldgen command holds, or one holding anything but an earlier live export
    (`LIVE_EXPORTS`: a fly run's folder, say)."""
    return check_output_folder(out, LIVE_EXPORTS.__contains__, "live")


@dataclass
class LiveStep:
    """One generated step.

    Attributes:
        t: frame index (frame 0 is the photo).
        camera: the pose both generators rendered from.
        persistent: the persistent generator's frame (rgb [H, W, 3] in [0, 1], depth, sky).
        baseline: the per-frame baseline's frame at the same camera.
        seconds: wall time of this step (both generators).
        gaussians: the persistent world's size after the step.
    """

    t: int
    camera: Camera
    persistent: Frame
    baseline: Frame
    seconds: float
    gaussians: int


class LiveEngine:
    """Both generators, one pilot. Thread-safe: `step`, `steer`, `set_mode`, `set_speed`, `export`
    and `snapshot` may be called from any thread (they serialise on `self.lock`).

    The engine is the pilot of a `worldgen.pipeline.flight.Flight` of both generators (the persistent
    one leads, so the autopilot reads its frames): `pose(t, prev)` gives the next pose.

    Args:
        frame0: the photo as frame 0 (rgb, depth, sky, camera at the origin pose), on the working device.
        persistent: a PersistentGenerator built from frame0.
        baseline: a PerFrameGenerator built from frame0.
        scale: world length of one scene unit (`worldgen.pipeline.sources.scene_scale(frame0)`).
        mode: one of PATH_MODES to start with.
        speed: camera speed, scene units per frame.
        loop_frames: frames per loop in "loop" mode (>= 2).
        autopilot: tuning of the autopilot (default AutopilotConfig()).
    """

    def __init__(self, frame0: Frame, persistent, baseline, scale: float, mode: str = "autopilot",
                 speed: float = 0.02, loop_frames: int = 120, autopilot: AutopilotConfig | None = None):
        if mode not in PATH_MODES:
            raise UserInputError(f"path mode must be one of {', '.join(PATH_MODES)}, got {mode!r}")
        if not (math.isfinite(speed) and speed > 0):
            raise UserInputError(f"--speed must be a positive number, got {speed}")
        if loop_frames < 2:
            raise UserInputError(f"--loop-frames must be at least 2, got {loop_frames}")
        self.frame0, self.persistent, self.baseline = frame0, persistent, baseline
        self.scale, self.speed, self.loop_frames = float(scale), float(speed), int(loop_frames)
        self.autopilot = autopilot or AutopilotConfig()
        self.lock = threading.RLock()
        self.t = 0
        self.cameras: list[Camera] = [frame0.camera.to("cpu")]
        self._flight = Flight((persistent, baseline), self)
        next(self._flight)  # step 0 is frame 0 itself
        # What the browser shows: the whole persistent world on the host, grown by each step's new
        # Gaussians (the generator's own world pages chunks it cannot see out of its working set).
        self.shown = persistent.world.full_scene().to("cpu")
        self.last = LiveStep(0, frame0.camera, frame0, frame0, 0.0, persistent.world.size)
        self._c2w = frame0.camera.c2w.detach().to("cpu", torch.float64)  # [4, 4] current pose
        self._next_c2w = self._c2w
        self._pending = [0.0, 0.0, 0.0]  # queued manual turn (rad), pitch (rad), climb (scene units)
        self.mode = mode
        self._path, self._path_t0 = None, 0
        self._new_path()

    @staticmethod
    def from_config(cfg) -> "LiveEngine":
        """Build frame 0 and both generators from a `viewer.cli.LiveConfig` (UserInputError for bad input)."""
        from renderers import get_renderer
        from worldgen.core.device import resolve_device
        from worldgen.pipeline.generator import PerFrameGenerator, PersistentGenerator
        from worldgen.pipeline.refiners import pipeline_refiner
        from worldgen.pipeline.sources import first_frame, scene_scale

        check(cfg)
        p = cfg.pipeline
        device = resolve_device(p.device)
        frame0 = first_frame(cfg.image, cfg.photo, p.size, device, p.auto_side)
        def refiner():
            return pipeline_refiner(p, device)

        persistent = PersistentGenerator(frame0, get_renderer(device.type), refiner(), p.generator)
        baseline = PerFrameGenerator(frame0, get_renderer(device.type), refiner(), p.generator)
        return LiveEngine(frame0, persistent, baseline, scene_scale(frame0), mode=cfg.path, speed=p.speed,
                          loop_frames=cfg.loop_frames, autopilot=p.autopilot)

    # ------------------------------------------------------------------ pilot
    def _start_camera(self) -> Camera:
        return self.frame0.camera.to("cpu").with_pose(self._c2w.float())

    def _new_path(self) -> None:
        """A fresh path of the current mode starting at the current pose (manual needs none)."""
        self._path_t0 = self.t
        if self.mode == "manual":
            self._path = None
        elif self.mode == "loop":
            self._path = make_path("loop", self._start_camera(), self.scale, self.loop_frames, speed=self.speed)
        else:
            self._path = make_path(self.mode, self._start_camera(), self.scale, ENDLESS, speed=self.speed,
                                   autopilot=self.autopilot)

    def set_mode(self, mode: str) -> None:
        """Switch what drives the camera (one of PATH_MODES); the new path starts at the current pose."""
        if mode not in PATH_MODES:
            raise ValueError(f"path mode must be one of {PATH_MODES}, got {mode!r}")
        with self.lock:
            if mode != self.mode:
                self.mode = mode
                self._new_path()

    def set_speed(self, speed: float) -> None:
        """Camera speed in scene units per frame (> 0); the current path restarts from the current pose."""
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be positive, got {speed}")
        with self.lock:
            if speed != self.speed:
                self.speed = float(speed)
                self._new_path()

    def steer(self, turn_deg: float = 0.0, pitch_deg: float = 0.0, climb: float = 0.0) -> None:
        """Queue a manual correction for the next frame (turn right > 0, pitch up > 0, climb up > 0 in
        scene units) and hand the camera to manual steering."""
        with self.lock:
            self.set_mode("manual")
            self._pending[0] += math.radians(turn_deg)
            self._pending[1] += math.radians(pitch_deg)
            self._pending[2] += climb

    def _manual_pose(self) -> torch.Tensor:
        """[4, 4] float64 next pose under manual steering: apply the queued turn, pitch and climb,
        then fly `speed` scene units along the look direction. Roll-free (x axis horizontal)."""
        turn, pitch, climb = self._pending
        self._pending = [0.0, 0.0, 0.0]
        R, p = self._c2w[:3, :3], self._c2w[:3, 3]
        up = world_up(torch.float64)
        elev = math.asin(max(-1.0, min(1.0, float(R[:, 2] @ up))))
        heading = yaw_about_down(turn) @ horizontal_basis(R)[0]  # right turn > 0
        lim = math.radians(MAX_PITCH_DEG)
        elev = max(-lim, min(lim, elev + pitch))
        fwd = math.cos(elev) * heading + math.sin(elev) * up
        p = p + (climb * self.scale) * up + (self.speed * self.scale) * fwd
        return look_at(p, p + fwd, up)

    def pose(self, t: int, prev: Frame | None = None) -> torch.Tensor:
        """[4, 4] float64 camera-to-world for frame t = self.t + 1 (the Flight's pilot interface); `prev`
        is the persistent generator's frame t - 1, which the autopilot steers from."""
        if self.mode == "manual":
            c2w = self._manual_pose()
        else:
            k = t - self._path_t0
            if k >= self._path.num_frames:  # a loop came home: fly it again from here
                self._new_path()
                k = 1
            c2w = self._path.pose(k, prev).detach().to("cpu", torch.float64)
        self._next_c2w = c2w
        return c2w

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def step(self) -> LiveStep:
        """Generate frame t + 1 with both generators at the same pose; returns it."""
        with self.lock:
            t0 = time.perf_counter()
            step = next(self._flight)
            self.t = step.t
            self._c2w = self._next_c2w
            self.cameras.append(step.camera.to("cpu"))
            scene, k = self.persistent.scene, self.persistent.last_added
            if k:
                self.shown.append(scene.subset(torch.arange(len(scene) - k, len(scene), device=scene.device)).to("cpu"))
            self.last = LiveStep(step.t, step.camera, step.frames[0], step.frames[1], time.perf_counter() - t0,
                                 self.persistent.world.size)
            return self.last

    def snapshot(self) -> GaussianScene:
        """A copy of the whole persistent world as it is now, paged-out chunks included (safe to save
        while generation goes on)."""
        with self.lock:
            return self.persistent.world.full_scene()

    def export(self, out_dir: str | Path) -> Path:
        """Write the whole persistent world (never decimated) to out_dir/world.ply and the path so far to
        out_dir/cameras.json, so `worldgen view out_dir` opens it; returns the PLY path. The folder is held while it
        is written (OutputFolder: one writer; a folder holding anything but an earlier export is refused in one
        line); each file is written atomically, cameras.json last, and a write that fails removes both (a new world
        beside old cameras is no export)."""
        with OutputFolder(out_dir, owns=LIVE_EXPORTS.__contains__, command="live") as folder:
            with self.lock:
                scene = self.snapshot()
                cams = [c.to_dict() for c in self.cameras]
            folder.replace_earlier()
            ply = folder.path / "world.ply"
            try:
                scene.save_ply(ply)
                save_cameras_json(folder.path / "cameras.json", cams)
            except BaseException:
                for name in LIVE_EXPORTS:
                    (folder.path / name).unlink(missing_ok=True)
                raise
        return ply


PANEL_IMAGE_WIDTH = 400
"""Small frames are enlarged (integer factor) to at least this width in the panel."""


def panel_image(persistent: torch.Tensor, baseline: torch.Tensor, gap: int = 4) -> np.ndarray:
    """uint8 [f*H, f*(2W + gap), 3]: the persistent and per-frame frames [H, W, 3] side by side on a white
    gap, enlarged by the smallest integer factor f >= 1 that makes the image >= PANEL_IMAGE_WIDTH wide."""
    f = max(1, math.ceil(PANEL_IMAGE_WIDTH / (2 * persistent.shape[1] + gap)))
    return side_by_side([persistent, baseline], gap=gap, scale=f)


class LiveApp:
    """The live viewer on a running viser server, driving `engine` from a background thread.

    Args:
        server: a `viser.ViserServer`.
        engine: the LiveEngine to drive.
        push_every: send new Gaussians to the browser every this many frames.
        budget: most Gaussians shown in the browser (decimated above; exports never are).
        out_dir: where "Export world" writes.
        max_fps: generation rate limit (0: none).
        stop_after: pause when this many frames exist beyond frame 0 (0: never).
        read_only: a panel without controls (frames and figures only), for watchers on a network.
    """

    def __init__(self, server, engine: LiveEngine, push_every: int = 4, budget: int = 2_000_000,
                 out_dir: str | Path = "runs/live", max_fps: float = 0.0, stop_after: int = 0,
                 read_only: bool = False):
        from viewer.app import SplatDisplay, default_frustum_scale, set_initial_view, view_from_camera
        from viewer.splats import frustum_pose

        self.server, self.engine = server, engine
        self.push_every, self.out_dir = int(push_every), Path(out_dir)
        self.max_fps, self.stop_after = float(max_fps), int(stop_after)
        self.read_only = bool(read_only)
        self.display = SplatDisplay(server, budget=budget)
        self._playing = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._steps_asked = 0
        self._ask_lock = threading.Lock()
        self._times: deque[tuple[float, int]] = deque(maxlen=16)
        self._thread: threading.Thread | None = None
        self._frustums: list = []
        self.error: str | None = None
        self.exported: Path | None = None
        cam0 = engine.frame0.camera.to("cpu")
        pose0 = frustum_pose(cam0)
        dist = default_frustum_scale(engine.persistent.scene, pose0.position) / 0.04  # median distance to the world
        self.frustum_scale = engine.speed * engine.scale  # one step: neighbouring frustums barely overlap
        pos, look = view_from_camera(pose0, distance=0.6 * dist, back=0.3 * dist)
        pos = pos + np.array([0.0, -0.15 * dist, 0.0])  # a little above (world up is -y): the path is seen from behind
        set_initial_view(server, pos, look, fov=pose0.fov, near=1e-3 * dist, far=1e3 * dist)
        self._build_panel()
        self._publish(engine.last, push=True)

    # ------------------------------------------------------------------ panel
    def _build_panel(self) -> None:
        import viser

        gui = self.server.gui
        gui.configure_theme(control_width="large")
        gui.add_markdown("**worldgen live** · persistent world vs per-frame baseline")
        self.frames_image = gui.add_image(panel_image(self.engine.frame0.rgb, self.engine.frame0.rgb),
                                          label="left: persistent · right: per-frame", format="png")
        self.stats = gui.add_markdown("")
        self.play_button = self.export_note = None
        if self.read_only:  # watchers only: no control reaches the engine from the page
            gui.add_markdown("*Read-only: the flight is steered from where it was started.*")
            return
        with gui.add_folder("Flight"):
            self.play_button = gui.add_button("Pause" if self._playing.is_set() else "Play",
                                              icon=viser.Icon.PLAYER_PLAY, hint="P")
            self.step_button = gui.add_button("Step", icon=viser.Icon.PLAYER_TRACK_NEXT, hint="N: one frame")
            self.mode_dropdown = gui.add_dropdown("Path", PATH_MODES, initial_value=self.engine.mode)
            self.speed_slider = gui.add_slider("Camera speed", min=0.002, max=0.1, step=0.002,
                                               initial_value=min(max(self.engine.speed, 0.002), 0.1))
            self.fps_slider = gui.add_slider("Max frames/s", min=0.0, max=30.0, step=0.5,
                                             initial_value=float(self.max_fps), hint="0: unlimited")
        with gui.add_folder("Steer (takes over from the path)"):
            turns = gui.add_button_group("Turn (J / L)", ("◀ left", "right ▶"))
            pitch = gui.add_button_group("Pitch (I / K)", ("▲ up", "▼ down"))
            climb = gui.add_button_group("Climb (R / F)", ("rise", "sink"))
        with gui.add_folder("World"):
            self.export_button = gui.add_button("Export world (PLY)", icon=viser.Icon.DOWNLOAD)
            self.export_note = gui.add_markdown(f"Writes `{self.out_dir / 'world.ply'}` and `cameras.json`.")

        self.play_button.on_click(lambda _: self.toggle_play())
        self.step_button.on_click(lambda _: self.ask_step())
        self.mode_dropdown.on_update(lambda _: self.engine.set_mode(self.mode_dropdown.value))
        self.speed_slider.on_update(lambda _: self.engine.set_speed(float(self.speed_slider.value)))
        self.fps_slider.on_update(lambda _: setattr(self, "max_fps", float(self.fps_slider.value)))
        turns.on_click(lambda e: self.steer(turn_deg=TURN_STEP_DEG * (-1 if e.target.value.startswith("◀") else 1)))
        pitch.on_click(lambda e: self.steer(pitch_deg=PITCH_STEP_DEG * (1 if e.target.value.startswith("▲") else -1)))
        climb.on_click(lambda e: self.steer(climb=CLIMB_STEP if e.target.value == "rise" else -CLIMB_STEP))
        self.export_button.on_click(lambda _: self.export())

        keys = [("J", "Turn left", dict(turn_deg=-TURN_STEP_DEG)), ("L", "Turn right", dict(turn_deg=TURN_STEP_DEG)),
                ("I", "Pitch up", dict(pitch_deg=PITCH_STEP_DEG)), ("K", "Pitch down", dict(pitch_deg=-PITCH_STEP_DEG)),
                ("R", "Rise", dict(climb=CLIMB_STEP)), ("F", "Sink", dict(climb=-CLIMB_STEP))]
        for key, label, kw in keys:
            gui.add_command(label, hotkey=key).on_trigger(lambda _, kw=kw: self.steer(**kw))
        gui.add_command("Play / pause", hotkey="P").on_trigger(lambda _: self.toggle_play())
        gui.add_command("Step one frame", hotkey="N").on_trigger(lambda _: self.ask_step())

    # ------------------------------------------------------------------ controls (any thread)
    def steer(self, turn_deg: float = 0.0, pitch_deg: float = 0.0, climb: float = 0.0) -> None:
        """Manual steering: queued for the next frame; the path selector shows 'manual'."""
        self.engine.steer(turn_deg, pitch_deg, climb)
        if self.mode_dropdown.value != "manual":
            self.mode_dropdown.value = "manual"

    def toggle_play(self) -> None:
        self.set_playing(not self._playing.is_set())

    def set_playing(self, playing: bool) -> None:
        if playing:
            self._playing.set()
        else:
            self._playing.clear()
        if self.play_button is not None:
            self.play_button.label = "Pause" if playing else "Play"
        self._wake.set()

    @property
    def playing(self) -> bool:
        return self._playing.is_set()

    def ask_step(self) -> None:
        """One more frame (also while paused)."""
        with self._ask_lock:
            self._steps_asked += 1
        self._wake.set()

    def export(self) -> Path | None:
        """Save the whole world (see `LiveEngine.export`) and say where in the panel."""
        try:
            ply = self.engine.export(self.out_dir)
        except (UserInputError, OSError) as e:
            if self.export_note is not None:
                why = os_error_line(e) if isinstance(e, OSError) else str(e)
                self.export_note.content = f"**Export failed**: {why}"
            return None
        self.exported = ply.resolve()
        n = self.engine.last.gaussians
        if self.export_note is not None:
            self.export_note.content = f"Exported {n:,} Gaussians (frame {self.engine.t}) to `{self.exported}`"
        return self.exported

    # ------------------------------------------------------------------ the generation thread
    def start(self, playing: bool = True) -> None:
        """Start the background generation thread (playing or paused)."""
        self.set_playing(playing)
        self._thread = threading.Thread(target=self._run, name="worldgen-live", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the generation thread (after the frame in progress)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _take_step_request(self) -> bool:
        with self._ask_lock:
            if self._steps_asked:
                self._steps_asked -= 1
                return True
        return False

    def _run(self) -> None:
        while not self._stop.is_set():
            if not (self._playing.is_set() or self._take_step_request()):
                self._wake.wait(0.25)
                self._wake.clear()
                continue
            t_start = time.perf_counter()
            try:
                self.step_once()
            except Exception as e:  # keep serving; show the failure and pause
                self.error = f"{type(e).__name__}: {e}"
                self.set_playing(False)
                self.stats.content = self._stats_text()
                continue
            if self.stop_after and self.engine.t >= self.stop_after:
                self.set_playing(False)
            if self.max_fps > 0:
                rest = 1.0 / self.max_fps - (time.perf_counter() - t_start)
                if rest > 0:
                    self._stop.wait(rest)

    def step_once(self) -> LiveStep:
        """Generate one frame and show it (the thread's body; tests call it directly on a paused app)."""
        step = self.engine.step()
        self._times.append((time.perf_counter(), step.t))
        self._publish(step, push=step.t % self.push_every == 0)
        return step

    def flush_world(self) -> None:
        """Send any Gaussians not yet shown (e.g. when pausing between pushes)."""
        self.display.sync(self.engine.shown)
        self.stats.content = self._stats_text()

    # ------------------------------------------------------------------ showing a step
    def _fps(self) -> float:
        if len(self._times) < 2:
            return 0.0
        (t0, f0), (t1, f1) = self._times[0], self._times[-1]
        return (f1 - f0) / max(t1 - t0, 1e-9)

    def _stats_text(self) -> str:
        e = self.engine
        lines = [
            f"**Frame** {e.t} · **Gaussians** {e.last.gaussians:,} · **{self._fps():.2f} frames/s** · "
            f"path: {e.mode}",
            self.display.status_line(),
        ]
        if self.error:
            lines.append(f"**Generation stopped**: {self.error}")
        return "\n\n".join(lines)

    def _publish(self, step: LiveStep, push: bool) -> None:
        from viewer.app import FRUSTUM_LINE_PX
        from viewer.splats import frustum_pose

        self.frames_image.image = panel_image(step.persistent.rgb, step.baseline.rgb)
        pose = frustum_pose(step.camera.to("cpu"))
        if self._frustums:
            self._frustums[-1].color = (70, 70, 70)
        self._frustums.append(self.server.scene.add_camera_frustum(
            f"/path/frame_{step.t:05d}", fov=pose.fov, aspect=pose.aspect, scale=self.frustum_scale,
            thickness=FRUSTUM_LINE_PX, thickness_units="screen", color=(255, 120, 0),
            image=thumbnail(step.persistent.rgb, 48), wxyz=pose.wxyz, position=pose.position))
        if push or not self.playing:
            self.display.sync(self.engine.shown)
        self.stats.content = self._stats_text()
