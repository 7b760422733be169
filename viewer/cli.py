"""`worldgen view` and `worldgen live`: the viser web viewer's subcommands.

The `worldgen` CLI imports this module to build its parser: viser and the viewer's own modules are
imported inside the mains. LiveConfig nests the same photo and pipeline settings as `worldgen fly`
(so `--preset` and `--config` work here too).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Annotated, Literal

import tyro

from worldgen.commands import Command
from worldgen.core.config import bad, check
from worldgen.pipeline.config import PhotoConfig, PipelineConfig

_FLAT = tyro.conf.arg(name="")  # nested settings whose options carry no prefix

DEFAULT_BUDGET = 2_000_000  # = viewer.splats.DISPLAY_BUDGET (not imported here: keeps this module light)


@dataclass(frozen=True)
class ViewConfig:
    """Browse a saved world in the browser: its Gaussians and, for a run directory, its camera path."""

    world: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR|WORLD.ply")]
    """A run directory (with world.ply, cameras.json, frames/) or any 3D Gaussian Splatting .ply file."""
    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0 exposes the viewer to your network: anyone there can watch)."""
    port: int = 8080
    """Port to listen on, 0..65535 (the next free one is taken if it is busy; the URL printed is the real one)."""
    budget: int = DEFAULT_BUDGET
    """Most Gaussians sent to the browser; bigger worlds are shown decimated (the file is never changed)."""

    def validate(self) -> None:
        if self.budget <= 0:
            raise bad("budget", "must be positive", self.budget)
        if not 0 <= self.port <= 65535:
            raise bad("port", "must be 0..65535", self.port)


@dataclass(frozen=True)
class LiveConfig:
    """Generate while you watch: the persistent world grows in 3D beside the per-frame baseline."""

    image: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="IMAGE")]
    """Input photo (any size and aspect; RGB, RGBA or grayscale)."""
    photo: Annotated[PhotoConfig, _FLAT] = field(default_factory=PhotoConfig)
    """The photo's depth and intrinsics."""
    path: Literal["autopilot", "forward", "loop"] = "autopilot"
    """Camera path to start with (switchable in the panel; steering takes over as 'manual')."""
    loop_frames: int = 120
    """Length of one loop (the loop path returns to where it started after this many frames)."""
    frames: int = 0
    """Pause after this many frames (0: endless)."""
    max_fps: float = 0.0
    """Upper limit on generated frames per second (0: as fast as the machine goes)."""
    push_every: int = 4
    """Send the world's new Gaussians to the browser every this many frames."""
    budget: int = DEFAULT_BUDGET
    """Most Gaussians shown in the browser; above it the display is decimated (the exported world never is)."""
    paused: bool = False
    """Start paused (press play or step in the panel)."""
    pipeline: Annotated[PipelineConfig, _FLAT] = field(default_factory=PipelineConfig)
    """Working size, device, speed, refiner, and the generator's, refiners' and autopilot's settings."""
    out: str = "runs/live"
    """Where the export button writes world.ply and cameras.json: a new folder, or an earlier live export's (a
    folder holding anything else, a fly run's, is refused before the server starts)."""
    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0 exposes the viewer to your network: anyone there can watch, and
    without --read-only steer and export too)."""
    port: int = 8080
    """Port to listen on, 0..65535 (the next free one is taken if it is busy; the URL printed is the real one)."""
    read_only: bool = False
    """Show the flight without any controls (no play/pause, steering, path, speed or export): for
    viewers on a shared network. Generation runs as --paused and --frames say; Ctrl+C stops it."""

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise bad("port", "must be 0..65535", self.port)
        if self.read_only and self.paused:
            raise bad("paused", "cannot go with --read-only (nobody could press play)", True)
        if self.push_every < 1:
            raise bad("push_every", "must be at least 1", self.push_every)
        if self.budget < 1:
            raise bad("budget", "must be positive", self.budget)
        if self.frames < 0:
            raise bad("frames", "must not be negative", self.frames)
        if self.max_fps < 0:
            raise bad("max_fps", "must not be negative", self.max_fps)
        if self.loop_frames < 2:
            raise bad("loop_frames", "must be at least 2", self.loop_frames)
        if not (math.isfinite(self.pipeline.speed) and self.pipeline.speed > 0):
            raise bad("speed", "must be a positive number", self.pipeline.speed)


def _serve_until_interrupted(server, url: str, what: str, before_stop=None) -> None:
    """Print the URL, serve until Ctrl+C, SIGTERM (or any exception), then stop `before_stop()` and the server.

    SIGINT and SIGTERM are set here to raise KeyboardInterrupt: a process started in the background
    by a shell inherits SIGINT ignored, and Python then never turns it into KeyboardInterrupt. The
    main thread waits in short sleeps: the kernel may hand the signal to another thread (the
    generator's, viser's, torch's), and Python then runs the handler only when the main thread next
    wakes; one long sleep left a Ctrl+C unanswered for up to an hour (seen once in CI)."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:  # all inside: a signal that lands right after the print still stops the server
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, interrupt)
        print(f"worldgen: {what} at {url}  (Ctrl+C to stop)", flush=True)
        while True:
            time.sleep(0.2)
    finally:
        if before_stop is not None:
            before_stop()
        server.stop()


def view_main(cfg: ViewConfig) -> None:
    """Load the world (UserInputError for bad paths, before any server starts), serve it until Ctrl+C."""
    import sys

    from viewer.app import check_listen_address, exposure_warning, listening_urls, start_server
    from viewer.browse import BrowseApp, load_world, print_notes
    check(cfg)
    local = check_listen_address(cfg.host, cfg.port)  # before loading: a bad --host or --port fails at once
    world = load_world(cfg.world)
    print_notes(world)
    server = start_server(cfg.host, cfg.port)
    try:
        app = BrowseApp(server, world, budget=cfg.budget)
    except BaseException:
        server.stop()
        raise
    if not local:
        print(exposure_warning(cfg.host, server.get_port(), "watch this world"), file=sys.stderr, flush=True)
    _serve_until_interrupted(server, listening_urls(server), f"viewing {world.ply} ({len(world.scene):,} Gaussians)",
                             before_stop=app.stop)


def live_main(cfg: LiveConfig) -> None:
    """Build both generators from the photo (bad input fails here, before any server starts: --out too, where the
    export button writes), then serve and generate until Ctrl+C."""
    import sys

    from viewer.app import check_listen_address, exposure_warning, listening_urls, start_server
    from viewer.live import LiveApp, LiveEngine, check_export_dir

    check(cfg)
    local = check_listen_address(cfg.host, cfg.port)  # before the generators are built
    if not cfg.read_only:  # (a read-only panel has no export)
        check_export_dir(cfg.out)
    engine = LiveEngine.from_config(cfg)
    server = start_server(cfg.host, cfg.port)
    try:
        app = LiveApp(server, engine, push_every=cfg.push_every, budget=cfg.budget, out_dir=cfg.out,
                      max_fps=cfg.max_fps, stop_after=cfg.frames, read_only=cfg.read_only)
    except BaseException:
        server.stop()
        raise
    if not local:
        can = "watch the flight (read-only)" if cfg.read_only else \
            "watch, steer the flight and export the world (--read-only lets them only watch)"
        print(exposure_warning(cfg.host, server.get_port(), can), file=sys.stderr, flush=True)
    app.start(playing=not cfg.paused)
    _serve_until_interrupted(server, listening_urls(server), "generating live" + (" (read-only)" if cfg.read_only else ""),
                             before_stop=app.stop)


VIEW = Command(ViewConfig, view_main)
LIVE = Command(LiveConfig, live_main)
