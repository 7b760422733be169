"""`worldgen fly`: one photo -> a flythrough video, its frames, the camera path and the 3D world.

Files written to --out (each atomically: temp file, then rename; see docs/architecture.md, "Run folders"):
  frames/NNNNN.png   the generated frames (frame 0 is the input photo at the working size), as they come
  video.mp4          the frames as H.264 video (encoded as they come; renamed into place at the end)
  world.ply          the whole Gaussian world (standard 3D Gaussian Splatting layout), at the end
  sky.png            the sky dome, equirectangular (worldgen view shows it as the background)
  depth/NNNNN.npy    with --depth-maps: each refined frame's z-depth, float32, +inf = sky (for export)
  cameras.jsonl      one camera per line, appended as the frames come
  cameras.json       per frame: width, height, fx, fy, cx, cy, c2w (OpenCV axes, camera-to-world), at the end
  config.json        the whole resolved configuration (`worldgen fly --config config.json` replays the run)
  run.json           status (running / complete / interrupted / failed / stopped), frames, timings per stage,
                     Gaussians (whole world and working set), memory; rewritten at every checkpoint
  state/             the last checkpoint (`worldgen fly --resume DIR` continues from it) and the world's
                     chunks (the world pages chunks the camera cannot see out of memory, into here)

One writer per folder (a lock); a used folder is refused unless --resume or --overwrite; SIGINT and
SIGTERM stop after the frame in progress and write everything above for the frames made so far. A write that
fails (a full disk) stops the flight at once with one line: the folder keeps its last checkpoint and the frames up
to it (`--resume` continues once there is space; run.json says "stopped" and why, where the disk still takes it), and
nothing cut short under a final name. The end commits the checkpoint of every frame first, then writes video.mp4,
cameras.json, world.ply, sky.png and run.json; an end that does not finish deletes those four (none claims a flight
run.json does not call ended), and `--resume` writes the end from that checkpoint. The disk's free space is checked up
front against what the whole flight will write (`disk_need`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro

from worldgen.commands import Command
from worldgen.core.config import bad, check, to_dict
from worldgen.core.device import peak_memory, resolve_device, rss_mb
from worldgen.core.io import UserInputError, atomic_write_text, check_writable_dir, os_error_line
from worldgen.core.runfolder import (check_clearable, check_not_in_use, clear_run, entries,
                                     foreign_entries, make_and_lock, remove_made_dir, remove_temp_files)
from worldgen.core.scene import write_ply
from worldgen.pipeline import checkpoint
from worldgen.pipeline.config import PhotoConfig, PipelineConfig
from worldgen.pipeline.flight import Flight
from worldgen.pipeline.generator import make_generator
from worldgen.pipeline.paths import make_path
from worldgen.pipeline.refiners import pipeline_refiner
from worldgen.pipeline.sources import first_frame, scene_scale

_FLAT = tyro.conf.arg(name="")  # nested settings whose options carry no prefix

RESUME_MAY_CHANGE = frozenset({"frames", "progress", "checkpoint_every", "resume", "overwrite", "out"})
"""Options a resumed run may give differently from its config.json (--frames only for paths whose poses
do not depend on the flight's length: forward and autopilot)."""


@dataclass(frozen=True)
class FlyConfig:
    """Fly into a photo: generate frames along a camera path, keeping (or not) a 3D world."""

    image: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="IMAGE")]
    """Input photo (any size and aspect; RGB, RGBA or grayscale; EXIF orientation respected)."""
    photo: Annotated[PhotoConfig, _FLAT] = field(default_factory=PhotoConfig)
    """The photo's depth and intrinsics."""
    path: str = "autopilot"
    """Camera path: forward, loop, autopilot, or a keyframes FILE.json (see docs/paths.md)."""
    frames: int = 60
    """Number of frames, including frame 0 (the photo)."""
    mode: Literal["persistent", "per-frame"] = "persistent"
    """persistent: keep the 3D world; per-frame: the classic memoryless baseline."""
    pipeline: Annotated[PipelineConfig, _FLAT] = field(default_factory=PipelineConfig)
    """Working size, device, speed, refiner, and the generator's, refiners' and autopilot's settings."""
    out: str = "runs/latest"
    """Output directory (a run folder: one run, one writer; a used one is refused without --resume or --overwrite)."""
    fps: int = 15
    """Frame rate of video.mp4."""
    video: bool = True
    """Write video.mp4 (needs imageio-ffmpeg)."""
    depth_maps: bool = False
    """Also write depth/NNNNN.npy: each refined frame's z-depth (float32, +inf for sky), which
    `worldgen export` then uses instead of re-rendering the world."""
    progress: bool = True
    """Show a progress bar."""
    stage_times: bool = True
    """Time each generator stage (render, refine, lift, sky, page: run.json's ms_per_frame). On CUDA
    this synchronises the GPU around every stage; off, the CPU queues the next stage's work while the
    GPU runs (faster) and run.json reports only the path's and the whole step's time."""
    checkpoint_every: int = 100
    """Checkpoint the flight into state/ every this many frames (and after frame 0, and at the end), so
    `--resume` can continue it; 0: only after frame 0 and at the end."""
    resume: str | None = None
    """Continue the run in this folder from its last checkpoint: `worldgen fly --resume DIR` (its
    config.json gives every setting; --frames may grow a forward or autopilot flight)."""
    overwrite: bool = False
    """Clear --out first if it holds a run (only a folder of worldgen's outputs is cleared)."""

    def validate(self) -> None:
        if self.frames < 2:
            raise bad("frames", "must be at least 2", self.frames)
        if self.fps < 1:
            raise bad("fps", "must be positive", self.fps)
        if self.checkpoint_every < 0:
            raise bad("checkpoint_every", "must not be negative", self.checkpoint_every)
        if self.resume is not None and self.overwrite:
            raise bad("overwrite", "cannot go with --resume (one continues the run, the other clears it)", True)


class StopSignals:
    """Inside `with`: SIGINT and SIGTERM ask the flight to stop after the frame in progress (`signum`
    says which came); a second one stops at once (KeyboardInterrupt). Only in the main thread."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict = {}

    def _handle(self, signum, _frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\nworldgen: {signal.Signals(signum).name}: stopping after this frame and writing the run "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _option(path: list[str]) -> str:
    keys = path[1:] if path and path[0] in ("photo", "pipeline") else path
    return "--" + ".".join(keys).replace("_", "-")


def _first_difference(a, b, path: list[str]) -> list[str] | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if not path and k in RESUME_MAY_CHANGE:
                continue
            d = _first_difference(a.get(k), b.get(k), path + [k])
            if d is not None:
                return d
        return None
    return None if a == b else path


def _check_resume(cfg: FlyConfig, out: Path) -> dict:
    """The run's checkpoint, after checking that `cfg` continues the run in `out` unchanged and has something to do:
    frames to fly, or the end to write (a checkpoint of all cfg.frames frames whose end did not finish:
    `_end_written`)."""
    if Path(cfg.resume).resolve() != out.resolve():
        raise UserInputError(f"--resume {cfg.resume} continues the run in its own folder; --out {cfg.out} differs")
    try:
        saved = json.loads((out / "config.json").read_text())
    except FileNotFoundError:
        raise UserInputError(f"{out} is not a run folder (no config.json)") from None
    except (OSError, ValueError) as e:
        raise UserInputError(f"{out}/config.json is not readable ({type(e).__name__})") from None
    diff = _first_difference(saved, to_dict(cfg), [])
    if diff is not None:
        raise UserInputError(f"--resume continues the run as it was set up: {_option(diff)} differs from its "
                             "config.json (start a new run to change it)")
    blob = checkpoint.load(out)
    done = int(blob["t"]) + 1
    from worldgen.commands.fly.outputs import resume_gap

    gap = resume_gap(out, done)
    if gap is not None:  # (before anything of the folder is changed)
        raise UserInputError(gap)
    if cfg.frames != saved.get("frames") and cfg.path not in ("forward", "autopilot"):
        raise UserInputError(f"--frames cannot change when resuming a {cfg.path} path (its poses depend on it)")
    if cfg.frames < done or (cfg.frames == done and _end_written(out)):  # (else it writes the end: no frame to fly)
        raise UserInputError(f"{out} holds {done} frames already (of --frames {cfg.frames}); "
                             "nothing to resume (a larger --frames flies on along a forward or autopilot path)")
    return blob


WORLD_GROWTH = 0.1
"""Gaussians a persistent flight's world gains per frame, as a share of the frame's pixels, in the disk estimate
(`disk_need`): rounded up from the fastest growth measured, 8.6 % (a 200-frame forward flight over the bundled
example at 96x64; under 1 % in its first 40 frames), 8.4 % (300-frame flights of the learned refiner over textured
real photos at 256²) and 5.3 % (the 512² 10,000-frame soak; BENCHMARKS.md)."""


def disk_need(cfg: FlyConfig, width: int, height: int, sky_texels: int, start: int = 0) -> float:
    """Bytes that frames `start` .. cfg.frames - 1 of a flight at `width` x `height` write into its run folder, at
    most at once, for a sky dome of `sky_texels` texels (`SkyDome.width * height`). The rule, with P = width * height
    (rounded up from 96x64 and 128x96 flights over the bundled example, measured file by file):

    - per frame: its PNG (0.7 of 3 bytes a pixel; 0.47-0.61 measured), its part of video.mp4 (0.1 of 3 bytes a
      pixel; 0.06-0.1), with --depth-maps its depth map (4 bytes a pixel + 128), its two camera lines (cameras.jsonl
      and cameras.json: 512 bytes; 215 each measured), and in persistent mode the world's growth: WORLD_GROWTH * P
      Gaussians, each 56 bytes in state/chunks/ (`PACKED_COLUMNS` float32), 8 in checkpoint.pt (its chunk, in the
      old and the new one while a commit runs) and 68 in world.ply (`PLY_COLUMNS` float32);
    - once: the world of frame 0 (P Gaussians, as above; 0.85 P measured; per-frame mode's whole world is P
      Gaussians, in checkpoint.pt twice and in world.ply), the sky dome twice (state/sky-*.npy, 16 bytes a texel: a
      commit writes the new file before it deletes the old; 8.2 MB at 96x64) and sky.png (4 bytes a texel at most),
      the latest frame in checkpoint.pt twice (20 bytes a pixel; 17 measured), and 64 KiB for config.json and
      run.json.

    A resumed run (`start` frames made) counts only the frames to come, but world.ply whole (the new one is written
    beside the old)."""
    from worldgen.core.scene import PACKED_COLUMNS, PLY_COLUMNS

    px, n = width * height, cfg.frames - start
    per_frame = 0.7 * 3 * px + (0.1 * 3 * px if cfg.video else 0) + (4 * px + 128 if cfg.depth_maps else 0) + 512
    chunk, ply = 4 * PACKED_COLUMNS, 4 * PLY_COLUMNS
    if cfg.mode == "persistent":
        new = WORLD_GROWTH * px * n + (px if start == 0 else 0)
        world = new * (chunk + 8) + (WORLD_GROWTH * px * (cfg.frames - 1) + px) * ply
    else:
        world = px * (2 * chunk + ply)
    return n * per_frame + world + sky_texels * (2 * 16 + 4) + 2 * 20 * px + 64 * 2**10


def _check_fits(cfg: FlyConfig, width: int, height: int, sky_texels: int, out: Path, start: int) -> None:
    """UserInputError (one line) if what frames `start` .. cfg.frames - 1 write (`disk_need`) will not fit in the
    free space of `out`'s disk."""
    need = disk_need(cfg, width, height, sky_texels, start)
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free == 0:  # (a full disk, or no disk at all: /proc, a read-only mount)
        raise UserInputError(f"output directory {out}: {probe} has no free space for files")
    if need > free:
        what = (f"the {cfg.frames - start:,} frames still to fly at {width}x{height} need" if start else
                f"a flight of {cfg.frames:,} frames at {width}x{height} needs")
        raise UserInputError(f"{what} about {_bytes(need)} (frames, world, checkpoints), but {probe} has "
                             f"{_bytes(free)} free; fly fewer --frames")


def _bytes(b: float) -> str:
    """A size for a message: MB below a GiB, else GB (TB from a TiB), binary units."""
    if b >= 2**40:
        return f"{b / 2**40:,.1f} TB"
    return f"{b / 2**30:,.1f} GB" if b >= 2**30 else f"{b / 2**20:,.1f} MB"


def _stopped(e: OSError, out: Path) -> OSError:
    """The one line for an OSError that stopped a flight in its run folder (a full disk, the folder gone): what the
    system said, and what of the run stands: its last checkpoint, which `--resume` continues, or none (then the run
    starts again). The checkpoint is read from `out` (the last one committed is the one on disk)."""
    try:
        done = int(checkpoint.load(out)["t"]) + 1
    except UserInputError:  # none (or not readable)
        done = 0
    if done:
        stands = (f"the run in {out} stands at its last checkpoint (after frame {done - 1:,}): once there is "
                  f"space, `worldgen fly --resume {out}` continues it")
    else:
        stands = f"the run in {out} has no checkpoint yet: once there is space, --overwrite starts it again"
    _mark_stopped(out, os_error_line(e))
    return OSError(e.errno, f"{os_error_line(e)}; {stands}")


def _mark_stopped(out: Path, why: str) -> None:
    """Best effort: run.json (which follows the last checkpoint and says "running" until the flight ends) says the
    flight stopped and why, the rest of it unchanged (its frames are the checkpoint's). Left as it is where it cannot be
    read or rewritten (the disk that stopped the flight may not take even this small file)."""
    try:
        info = json.loads((out / "run.json").read_text())
        info.update(status="stopped", error=why)
        if info.get("sessions"):
            info["sessions"][-1]["status"] = "stopped"
        atomic_write_text(out / "run.json", json.dumps(info, indent=2))
    except (OSError, ValueError, AttributeError, TypeError):
        pass


END_FILES = ("video.mp4", "cameras.json", "world.ply", "sky.png")
"""What only the end of a flight writes: files for the frames of its final checkpoint, which claim the flight ended
there (`_remove_end_files`)."""


def _end_written(out: Path) -> bool:
    """Whether the flight in run folder `out` wrote its end (END_FILES, then run.json): its run.json is readable and
    says how the flight ended, neither "running" (what the checkpoints write) nor "stopped" (`_mark_stopped`)."""
    try:
        return json.loads((out / "run.json").read_text()).get("status") not in ("running", "stopped")
    except (OSError, ValueError, AttributeError):
        return False


def _remove_end_files(out: Path) -> None:
    """Best effort: delete END_FILES from run folder `out`, for an end that did not finish (a full disk, a second
    signal), and as a resumed session begins (an earlier session's end describes fewer frames than the checkpoints to
    come). Left, they would claim a flight the folder's run.json says has not ended there; deleted, they lose
    nothing: `--resume` writes them again from the checkpoint, which the end commits first, and the frames (the
    video is re-encoded from frames/, lossless PNGs)."""
    for name in END_FILES:
        with contextlib.suppress(OSError):
            (out / name).unlink(missing_ok=True)


def _occupied(out: Path) -> UserInputError:
    """The one-line refusal for a non-empty `--out` without --resume or --overwrite."""
    foreign = foreign_entries(out)
    if foreign:
        return UserInputError(f"{out} holds {foreign[0]!r}, which no run writes; choose another --out (or an empty "
                              "folder)")
    return UserInputError(f"{out} holds a run already; --resume {out} continues it, --overwrite replaces it, "
                          "or choose another --out")


def run(cfg: FlyConfig, on_frame=None) -> dict:
    """Run (or, with `cfg.resume`, continue) a flight; returns run.json's content. `on_frame(t, frame,
    generator)` is called per frame, inside the flight's `torch.inference_mode()`: its tensors may be read and
    copied, but not changed in place or used in autograd outside that mode. Bad input raises UserInputError
    before anything is written (a flight that would not fit on `out`'s disk included: `disk_need`); a write that
    fails mid-flight (a full disk) raises an OSError of one line that says what of the run stands."""
    check(cfg)
    out = check_writable_dir(cfg.out)
    check_not_in_use(out)  # before any other complaint about the folder
    start = 0
    if cfg.resume is not None:
        start = int(_check_resume(cfg, out)["t"]) + 1
    elif entries(out) and not cfg.overwrite:
        raise _occupied(out)
    elif cfg.overwrite:
        check_clearable(out)
        _check_inputs_outside(cfg, out)
    import torch

    # A flight computes no gradients: in inference mode each torch operation also skips autograd's version
    # and view bookkeeping, about 15 % of its host cost, and the loop is bound by the host (BENCHMARKS.md).
    with torch.inference_mode():
        return _run(cfg, out, on_frame, start)


def _check_inputs_outside(cfg: FlyConfig, out: Path) -> None:
    """UserInputError (one line) when a file the flight reads (the photo, --depth, --camera, a --path JSON) lies in
    run folder `out`, which --overwrite is about to clear: the flight would delete its own input first."""
    folder = out.resolve()
    for option, f in (("IMAGE", cfg.image), ("--depth", cfg.photo.depth), ("--camera", cfg.photo.camera),
                      ("--path", cfg.path if str(cfg.path).endswith(".json") else None)):
        if f and folder in Path(f).resolve().parents:
            raise UserInputError(f"{option} {f} lies in {out}, which --overwrite would clear first; copy it out of "
                                 "the run folder (or choose another --out)")


def _run(cfg: FlyConfig, out: Path, on_frame, start: int) -> dict:
    """`run` from its first tensor on (in inference mode); `start`: frames a resumed run has made (for the disk
    estimate). An OSError once the flight has begun writing (a full disk) is one line saying what of the run
    stands (`_stopped`)."""
    from renderers import get_renderer

    p = cfg.pipeline
    device = resolve_device(p.device)
    t_start = time.perf_counter()
    frame0 = first_frame(cfg.image, cfg.photo, p.size, device, p.auto_side)
    scale = scene_scale(frame0)
    path = make_path(cfg.path, frame0.camera, scale, cfg.frames, speed=p.speed, autopilot=p.autopilot)
    renderer = get_renderer(device.type)
    refiner = pipeline_refiner(p, device)
    gen = make_generator(cfg.mode, frame0, renderer, refiner, p.generator, time_stages=cfg.stage_times)
    _check_fits(cfg, frame0.camera.width, frame0.camera.height, gen.sky.width * gen.sky.height, out, start)
    made, lock = make_and_lock(out)
    with lock:
        started = [False]
        try:
            return _fly(cfg, out, frame0, scale, path, renderer, refiner, gen, t_start, on_frame, started)
        except OSError as e:
            if not started[0]:
                remove_made_dir(made, out)
                raise
            raise _stopped(e, out) from e
        except BaseException:
            if not started[0]:
                remove_made_dir(made, out)
            raise


def _fly(cfg: FlyConfig, out: Path, frame0, scale, path, renderer, refiner, gen, t_start, on_frame, started) -> dict:
    """The flight itself, in a locked run folder."""
    import torch
    from tqdm import tqdm

    from worldgen.commands.fly.outputs import RunOutputs

    if cfg.resume is None and entries(out):  # another run may have filled it since the first look
        if not cfg.overwrite:
            raise _occupied(out)
        clear_run(out)
    remove_temp_files(out)
    checkpoint.use_disk_chunks(gen, out)
    ck = checkpoint.Checkpointer(out, gen, path, refiner, checkpoint.frame_digest(frame0))
    flight = Flight(gen, path, cfg.frames)
    start, sessions = 0, []
    if cfg.resume is not None:
        start = ck.restore(checkpoint.load(out)) + 1  # under the lock: the checkpoint as it is now
        try:
            sessions = json.loads((out / "run.json").read_text()).get("sessions", [])
        except (OSError, ValueError):
            sessions = []
        # An earlier session's end (a signal stopped it, or a shorter --frames) describes the frames it ended at;
        # this session's checkpoints would soon hold more, so they go now and this session's end writes them anew.
        _remove_end_files(out)
    atomic_write_text(out / "config.json", json.dumps(to_dict(cfg), indent=2))
    outputs = RunOutputs(out, fps=cfg.fps, video=cfg.video, depth_maps=cfg.depth_maps, start=start)
    started[0] = True
    if start:
        flight.restore(start - 1, gen.prev)
    setup_s = time.perf_counter() - t_start
    sessions = sessions + [{"first_frame": start}]
    status, failure, last = "complete", None, start - 1
    steps_s = path_s = 0.0
    t_loop, timed_from = time.perf_counter(), start - 1  # frames after `timed_from` count in frames/s
    bar = tqdm(total=cfg.frames, initial=start, desc=f"fly ({cfg.mode}, {renderer.name})", unit="frame",
               disable=not cfg.progress, dynamic_ncols=True)

    def info(state: str) -> dict:
        stats = gen.stats()
        loop_s = time.perf_counter() - t_loop
        n = max(last - timed_from, 0)
        sessions[-1].update(last_frame=last, status=state)
        return {
            "status": state, "mode": cfg.mode, "renderer": renderer.name, "refiner": refiner.name,
            "refiner_weights": getattr(refiner, "weights", None), "device": str(frame0.rgb.device), "frames": last + 1, "frames_requested": cfg.frames,
            "size": [frame0.camera.width, frame0.camera.height], "scene_scale": scale,
            "setup_seconds": round(setup_s, 3), "loop_seconds": round(loop_s, 3),
            "frames_per_second": round(n / max(loop_s, 1e-9), 3),
            "generate_frames_per_second": round(n / max(steps_s + path_s, 1e-9), 3),
            **{k: v for k, v in stats.items() if k not in ("seconds_per_frame",)},
            "ms_per_frame": {"path": round(1000 * path_s / max(n, 1), 2), "step": round(1000 * steps_s / max(n, 1), 2),
                             **{k: round(1000 * v, 2) for k, v in stats["seconds_per_frame"].items()}},
            "rss_mb": round(rss_mb(), 1), **peak_memory(), "sessions": sessions,
        }

    def save_checkpoint() -> None:
        outputs.flush()
        # run.json follows the checkpoint's commit (on its writer thread): the frames it names can be resumed
        ck.save(last, {"frames": last + 1}, then_write=(out / "run.json", json.dumps(info("running"), indent=2)))

    def abandon() -> None:
        """Stop writing at once: the video's temp file goes, the last checkpoint stands (a commit under way finishes,
        or fails and the one before stands)."""
        bar.close()
        outputs.abort()
        with contextlib.suppress(Exception):
            ck.close()

    with StopSignals() as stop:
        try:
            for step in flight:
                with torch.profiler.record_function("stage:outputs"):
                    outputs.add(step.t, step.frame, step.camera)
                last = step.t
                if step.t == 0:
                    t_loop, timed_from = time.perf_counter(), 0  # the loop's time starts once frame 0 is out
                else:
                    path_s += step.pilot_seconds
                    steps_s += step.seconds[0]
                bar.update(1)
                bar.set_postfix(gaussians=gen.world.size, working_set=len(gen.scene))
                if on_frame:
                    on_frame(step.t, step.frame, gen)
                if stop.signum is not None:
                    status = f"interrupted ({signal.Signals(stop.signum).name})"
                    break
                every = cfg.checkpoint_every
                if step.t == 0 or (every and step.t % every == 0 and step.t < cfg.frames - 1):
                    save_checkpoint()
        except Exception as e:  # write what was made, then report the failure
            if isinstance(e, OSError):  # the disk or the folder failed (a full disk): writing the end would fail too,
                abandon()               # or leave a world.ply and video of frames past the checkpoint beside it
                raise
            status, failure = "failed", e
        except BaseException:  # KeyboardInterrupt (a second signal): stop at once
            abandon()
            raise
        finally:
            bar.close()
        try:
            ck.wait()  # a commit that failed (a full disk) stops the run here, before the end's files go beside it
            if gen.t == last:  # every step done: the end is a checkpoint too (--resume with more --frames), committed
                save_checkpoint()  # before any file that claims these frames: an end cut short then leaves a
                ck.wait()          # checkpoint that holds them, and `--resume` writes the end from it (_check_resume)
            outputs.finish()
            write_ply(out / "world.ply", gen.world.parts(), gen.world.size)
            gen.sky.save_png(out / "sky.png")
            ck.close()  # (the chunk store's writes are done before run.json says so)
            result = info(status)
            if failure is not None:
                result["error"] = f"{type(failure).__name__}: {failure}"
            if stop.signum is not None:
                result["signal"] = int(stop.signum)
            atomic_write_text(out / "run.json", json.dumps(result, indent=2))
        except BaseException:
            abandon()
            _remove_end_files(out)
            raise
    if failure is not None:
        raise failure
    return result


def main(cfg: FlyConfig) -> None:
    info = run(cfg)
    if "signal" in info:
        print(f"worldgen: {info['status']} after {info['frames']} frames; wrote {cfg.out} "
              f"(`worldgen fly --resume {cfg.out}` continues)", file=sys.stderr)
        sys.exit(128 + info["signal"])
    print(f"wrote {cfg.out}: {info['frames']} frames at {info['size'][0]}x{info['size'][1]}, "
          f"{info['gaussians']:,} Gaussians ({info['gaussians_resident']:,} in the working set), "
          f"{info['frames_per_second']:.2f} frames/s ({info['renderer']})")


COMMAND = Command(FlyConfig, main)
