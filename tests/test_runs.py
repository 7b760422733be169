"""Run folders you can trust: re-runs, --overwrite, one writer at a time, SIGINT / SIGTERM / kill -9, a disk
that fills mid-flight or while the end is written, --resume giving the uninterrupted run's frames, stale temp files,
and nothing unbounded up front (the disk estimate counts what a run writes)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.full_disk import FullFile, no_space
from worldgen.cli import entrypoint
from worldgen.commands.fly import END_FILES, FlyConfig, disk_need, run
from worldgen.core.camera import Camera
from worldgen.pipeline.config import PipelineConfig
from worldgen.pipeline.paths import make_path

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--size", "48x32", "--no-progress"]


def cli(argv, capsys):
    with pytest.raises(SystemExit) as e:
        entrypoint(argv)
    err = capsys.readouterr().err
    return e.value.code, [ln for ln in err.strip().splitlines() if ln.strip()]


def one_line_error(code, lines, *words):
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("worldgen: error:"), lines
    for w in words:
        assert w in lines[0], lines


def fly_process(photo, out, *args) -> subprocess.Popen:
    """`worldgen fly` in a process of its own (what a user runs), writing to `out`."""
    cmd = [sys.executable, "-m", "worldgen.cli", "fly", str(photo), *SMALL, "--out", str(out), *args]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(cond, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    t0 = time.time()
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"the flight ended first (status {proc.returncode}): {proc.stderr.read()}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.05)


def checkpointed(out: Path, at_least: int):
    """True once run.json says a checkpoint after frame >= at_least was written."""
    def cond() -> bool:
        try:
            info = json.loads((out / "run.json").read_text())
        except (OSError, ValueError):
            return False
        return info["status"] == "running" and info["frames"] - 1 >= at_least
    return cond


def frames_of(out: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted((out / "frames").glob("*.png"))]


def assert_complete_outputs(out: Path, n: int) -> None:
    """Everything a run writes, for the same n frames, and no temp file."""
    assert len(list((out / "frames").glob("*.png"))) == n
    assert len(json.loads((out / "cameras.json").read_text())["frames"]) == n
    info = json.loads((out / "run.json").read_text())
    assert info["frames"] == n
    assert (out / "video.mp4").stat().st_size > 500 and (out / "world.ply").stat().st_size > 1000
    assert (out / "sky.png").is_file() and (out / "state" / "checkpoint.pt").is_file()
    assert not [p for p in out.rglob(".*")], "temp files left"


def test_rerun_refuses_a_used_folder_and_overwrite_replaces_it(photo, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["fly", str(photo), *SMALL, "--path", "forward", "--out", str(out)]
    entrypoint(base + ["--frames", "5"])
    before = (out / "world.ply").stat().st_mtime_ns
    code, lines = cli(base + ["--frames", "3"], capsys)
    one_line_error(code, lines, "holds a run already", "--resume", "--overwrite")
    assert (out / "world.ply").stat().st_mtime_ns == before and len(frames_of(out)) == 5  # untouched
    entrypoint(base + ["--frames", "3", "--overwrite"])
    assert_complete_outputs(out, 3)  # no stale frames 3 and 4 from the first run
    (out / "notes.txt").write_text("mine")
    code, lines = cli(base + ["--frames", "3", "--overwrite"], capsys)
    one_line_error(code, lines, "notes.txt")
    assert (out / "notes.txt").is_file() and len(frames_of(out)) == 3  # nothing deleted


def test_a_folder_of_someone_elses_files_is_not_called_a_run(photo, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"x")
    code, lines = cli(["fly", str(photo), *SMALL, "--path", "forward", "--frames", "3", "--out", str(out)], capsys)
    one_line_error(code, lines, "'holiday.jpg', which no run writes")
    assert "run already" not in lines[0] and "--resume" not in lines[0]  # it would offer what cannot work
    assert sorted(p.name for p in out.iterdir()) == ["holiday.jpg"]


def test_a_replayed_config_never_inherits_overwrite_or_resume(photo, tmp_path, capsys):
    """config.json records --overwrite; `--config` of it into another used folder must not clear that folder."""
    first, victim = tmp_path / "first", tmp_path / "victim"
    base = ["fly", str(photo), *SMALL, "--path", "forward", "--frames", "3"]
    entrypoint(base + ["--out", str(first)])
    entrypoint(base + ["--out", str(first), "--overwrite"])
    assert json.loads((first / "config.json").read_text())["overwrite"] is True
    entrypoint(base + ["--out", str(victim)])
    before = (victim / "world.ply").stat().st_mtime_ns
    code, lines = cli(["fly", "--config", str(first / "config.json"), "--out", str(victim)], capsys)
    one_line_error(code, lines, "holds a run already")
    assert (victim / "world.ply").stat().st_mtime_ns == before
    entrypoint(["fly", "--resume", str(first), "--frames", "4"])  # a saved --overwrite does not block --resume
    assert_complete_outputs(first, 4)


def test_overwrite_deletes_nothing_when_part_of_the_old_run_cannot_be_deleted(photo, tmp_path, capsys, monkeypatch):
    """A folder this process may not delete from (seen as another user; the suite may run as root, so os.access is
    told so) is found before anything is deleted: one line, the old run whole."""
    out = tmp_path / "run"
    base = ["fly", str(photo), *SMALL, "--path", "forward", "--frames", "3", "--out", str(out)]
    entrypoint(base)
    real_access = os.access
    monkeypatch.setattr("worldgen.core.runfolder.os.access",
                        lambda p, mode: False if Path(p) == out / "state" else real_access(p, mode))
    code, lines = cli(base + ["--overwrite"], capsys)
    one_line_error(code, lines, "no permission to delete", "state")
    assert_complete_outputs(out, 3)


def test_resume_over_damaged_chunk_files_is_one_line(photo, tmp_path, capsys):
    """A chunk file cut short, or of another shape, is found when the run resumes (one line naming it), not as a
    traceback when the flight pages it back."""
    out = tmp_path / "run"
    entrypoint(["fly", str(photo), *SMALL, "--path", "forward", "--frames", "6", "--out", str(out)])
    chunks = sorted((out / "state" / "chunks").glob("*.npy"))
    assert len(chunks) >= 2, "the flight paged no chunks out: nothing to damage"
    np.save(chunks[-1], np.zeros((3, 5), np.float32))
    code, lines = cli(["fly", "--resume", str(out), "--frames", "8"], capsys)
    one_line_error(code, lines, "saved state is damaged", chunks[-1].name)
    chunks[0].write_bytes(chunks[0].read_bytes()[:100])
    code, lines = cli(["fly", "--resume", str(out), "--frames", "8"], capsys)
    one_line_error(code, lines, "saved state is damaged")


def test_resume_without_its_frames_or_cameras_is_one_line_and_changes_nothing(photo, tmp_path, capsys):
    """A run folder whose frames/ (or camera lines) went since its checkpoint cannot go on: one line naming what is
    missing, before anything of the folder changes (it was a traceback after config.json had been rewritten)."""
    import shutil

    out = tmp_path / "run"
    entrypoint(["fly", str(photo), *SMALL, "--path", "forward", "--frames", "4", "--out", str(out)])
    config = (out / "config.json").read_bytes()
    cams = (out / "cameras.jsonl").read_text()
    (out / "cameras.jsonl").write_text("".join(cams.splitlines(keepends=True)[:2]))
    code, lines = cli(["fly", "--resume", str(out), "--frames", "6"], capsys)
    one_line_error(code, lines, "cameras.jsonl holds 2 cameras", "needs 4")
    (out / "cameras.jsonl").write_text(cams)
    shutil.rmtree(out / "frames")
    code, lines = cli(["fly", "--resume", str(out), "--frames", "6"], capsys)
    one_line_error(code, lines, "frames/00000.png is missing")
    assert (out / "config.json").read_bytes() == config and (out / "cameras.jsonl").read_text() == cams


def test_resume_keeps_the_frames_of_a_path_whose_poses_depend_on_them(photo, tmp_path, capsys):
    """A loop's poses depend on its length (it returns home at its last frame): resuming one with another --frames
    is one line, and the folder stays as it was; a forward flight may grow."""
    out = tmp_path / "run"
    entrypoint(["fly", str(photo), *SMALL, "--path", "loop", "--frames", "4", "--out", str(out)])
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    code, lines = cli(["fly", "--resume", str(out), "--frames", "6"], capsys)
    one_line_error(code, lines, "--frames cannot change when resuming a loop path")
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before


@pytest.mark.timeout(300)  # nothing is built up front for a billion frames (an eager build would hang here)
def test_input_errors_leave_no_output_folder(photo, tmp_path, capsys):
    bad_json = tmp_path / "deep.json"
    bad_json.write_text("[" * 100_000 + "]" * 100_000)
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"keyframes": [{"position": [0, 0, 0], "look_at": [0, 0, 1]},
                                              {"position": [1e300, 0, 1], "look_at": [0, 0, 2]}]}))
    cases = {
        "missing photo": (["fly", str(tmp_path / "nope.png")], ["no such image"]),
        "nested keyframes": (["fly", str(photo), "--path", str(bad_json)], ["nested too deeply"]),
        "huge keyframes": (["fly", str(photo), "--path", str(huge)], ["too large"]),
        "endless loop": (["fly", str(photo), "--path", "loop", "--frames", "1000000000"], ["needs about", "fewer --frames"]),
    }
    for name, (argv, words) in cases.items():
        out = tmp_path / name.replace(" ", "_") / "run"
        code, lines = cli(argv + [*SMALL, "--out", str(out)], capsys)
        one_line_error(code, lines, *words)
        assert not out.parent.exists(), f"{name}: left {out.parent}"


@pytest.mark.timeout(120)
def test_paths_make_poses_lazily():
    cam = Camera.from_fov(60, 48, 32)
    tracemalloc.start()
    for kind in ("loop", "forward"):
        path = make_path(kind, cam, 1.0, 1_000_000_000)
        assert torch.isfinite(path.pose(500_000_000)).all()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20  # no pose list is built
    loop = make_path("loop", cam, 1.0, 1_000_000_000)
    assert torch.equal(loop.pose(999_999_999), cam.c2w)  # it still closes exactly


def test_second_writer_refused_and_sigterm_ends_the_run_cleanly(photo, tmp_path, capsys):
    out = tmp_path / "run"
    proc = fly_process(photo, out, "--path", "forward", "--frames", "400", "--checkpoint-every", "2")
    try:
        wait_for(checkpointed(out, 2), proc)
        for extra in ([], ["--overwrite"]):
            code, lines = cli(["fly", str(photo), *SMALL, "--out", str(out), *extra], capsys)
            one_line_error(code, lines, "in use by another worldgen run")
        code, lines = cli(["fly", "--resume", str(out)], capsys)
        one_line_error(code, lines, "in use")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "--resume" in err.strip().splitlines()[-1]
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "interrupted (SIGTERM)" and 3 <= info["frames"] < 400
    assert_complete_outputs(out, info["frames"])


def test_sigint_ends_the_run_cleanly(photo, tmp_path):
    out = tmp_path / "run"
    proc = fly_process(photo, out, "--path", "forward", "--frames", "400", "--checkpoint-every", "2")
    try:
        wait_for(checkpointed(out, 2), proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "interrupted (SIGINT)"
    assert_complete_outputs(out, info["frames"])


def test_kill_9_then_resume_gives_the_uninterrupted_frames(photo, tmp_path, capsys):
    frames = 16
    args = ["--path", "autopilot", "--frames", str(frames), "--checkpoint-every", "3"]
    whole = tmp_path / "whole"
    run(FlyConfig(image=str(photo), frames=frames, path="autopilot", pipeline=PipelineConfig(size="48x32"),
                  out=str(whole), progress=False, checkpoint_every=3))
    out = tmp_path / "killed"
    proc = fly_process(photo, out, *args)
    try:
        wait_for(checkpointed(out, 6), proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert not (out / "world.ply").exists()  # killed mid-flight: only the checkpoint and its frames
    assert [p for p in out.glob(".video*.mp4")], "kill -9 leaves the video stream's temp file"
    (out / "frames" / ".00099.png.abc.tmp").write_bytes(b"x")  # and another stale temp file
    code, lines = cli(["fly", "--resume", str(out), "--path", "forward"], capsys)
    one_line_error(code, lines, "--path differs")  # a resumed run is the run it was
    entrypoint(["fly", "--resume", str(out)])
    assert_complete_outputs(out, frames)  # stale temp files gone, everything written
    for t, (a, b) in enumerate(zip(frames_of(whole), frames_of(out))):
        np.testing.assert_array_equal(a, b, err_msg=f"frame {t} differs after the resume")
    assert (whole / "world.ply").read_bytes() == (out / "world.ply").read_bytes()
    assert json.loads((whole / "cameras.json").read_text()) == json.loads((out / "cameras.json").read_text())
    sessions = json.loads((out / "run.json").read_text())["sessions"]
    assert len(sessions) == 2 and sessions[1]["first_frame"] >= 7

    code, lines = cli(["fly", "--resume", str(out)], capsys)
    one_line_error(code, lines, "nothing to resume")
    entrypoint(["fly", "--resume", str(out), "--frames", str(frames + 3)])  # an autopilot flight can grow
    assert_complete_outputs(out, frames + 3)


def test_resume_needs_a_run_folder(tmp_path, capsys):
    code, lines = cli(["fly", "--resume", str(tmp_path / "none")], capsys)
    one_line_error(code, lines, "no such run folder")
    (tmp_path / "empty").mkdir()
    code, lines = cli(["fly", "--resume", str(tmp_path / "empty")], capsys)
    one_line_error(code, lines, "not a run folder")
    code, lines = cli(["fly", "--resume", str(tmp_path / "empty"), "--out", str(tmp_path / "x")], capsys)
    one_line_error(code, lines, "drop --out")


def test_outputs_stream_while_flying(photo, tmp_path):
    """cameras.jsonl grows frame by frame; the video is only ever a temp file until the end."""
    seen = []

    def on_frame(t, frame, gen):
        out = tmp_path / "run"
        seen.append((t, (out / "video.mp4").exists(), len(list((out / "frames").glob("*.png")))))

    info = run(FlyConfig(image=str(photo), frames=6, path="forward", pipeline=PipelineConfig(size="48x32"),
                         out=str(tmp_path / "run"), progress=False, checkpoint_every=2), on_frame=on_frame)
    assert [s[0] for s in seen] == list(range(6)) and not any(s[1] for s in seen)
    assert info["status"] == "complete"
    lines = (tmp_path / "run" / "cameras.jsonl").read_text().splitlines()
    assert [json.loads(ln) for ln in lines] == json.loads((tmp_path / "run" / "cameras.json").read_text())["frames"]
    assert os.path.getsize(tmp_path / "run" / "video.mp4") > 500


def test_frames_per_second_counts_the_frames_after_frame_0(photo, tmp_path):
    """run.json's frames/s is the frames flown after frame 0 (the photo, set up before the loop's clock starts) over
    the loop's seconds: a 6-frame flight's frames/s times its loop seconds is 5 frames."""
    info = run(FlyConfig(image=str(photo), frames=6, path="forward", pipeline=PipelineConfig(size="48x32"),
                         out=str(tmp_path / "run"), progress=False))
    assert info["frames_per_second"] * info["loop_seconds"] == pytest.approx(5, abs=0.05)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["frames_per_second"] == info["frames_per_second"]


class _Crash(BaseException):
    """Stands for a process dying mid-flight (not an Exception: the run cannot clean up after it)."""


@pytest.mark.parametrize("mode", ["per-frame", "persistent"])
def test_resume_after_a_crash_gives_the_uninterrupted_frames_in_process(photo, tmp_path, mode):
    def cfg(out, **kw):
        return FlyConfig(image=str(photo), frames=9, path="autopilot", mode=mode, out=str(out), progress=False,
                         checkpoint_every=3, pipeline=PipelineConfig(size="48x32"), **kw)

    run(cfg(tmp_path / "whole"))

    def crash(t, frame, gen):
        if t == 5:
            raise _Crash

    with pytest.raises(_Crash):
        run(cfg(tmp_path / "crashed"), on_frame=crash)
    assert json.loads((tmp_path / "crashed" / "run.json").read_text())["frames"] == 4  # the checkpoint at frame 3
    info = run(cfg(tmp_path / "crashed", resume=str(tmp_path / "crashed")))
    assert info["status"] == "complete" and info["sessions"][1]["first_frame"] == 4
    for t, (a, b) in enumerate(zip(frames_of(tmp_path / "whole"), frames_of(tmp_path / "crashed"))):
        np.testing.assert_array_equal(a, b, err_msg=f"{mode}: frame {t} differs after the resume")
    assert_complete_outputs(tmp_path / "crashed", 9)


def _disk_fills(where: str, out: Path, monkeypatch) -> None:
    """Make the disk under run folder `out` fill at `where`: the write there fails with ENOSPC, as on a full disk."""
    import worldgen.commands.fly.outputs as outputs
    import worldgen.core.io as wio

    if where == "frame":  # frame 7's PNG, on its writer thread (the flight hears of it a frame later)
        real_png = outputs.save_png_u8
        monkeypatch.setattr(outputs, "save_png_u8", lambda path, img, *a, **k: no_space() if int(Path(path).stem) >= 7
                            else real_png(path, img, *a, **k))
    elif where == "chunk file":  # every chunk file once the first checkpoint is in, after part of it is written
        real_save = np.save

        def save(f, arr, *a, **k):
            if "chunks" in Path(str(getattr(f, "name", ""))).parts and (out / "state" / "checkpoint.pt").exists():
                f.write(b"\x93NUMPY\x01\x00" + b" " * 40)
                no_space()
            return real_save(f, arr, *a, **k)

        monkeypatch.setattr(np, "save", save)
    elif where == "checkpoint":  # the third commit's checkpoint.pt (torch.save into it said "enforce fail", no cause)
        real_write, calls = wio.atomic_write, []  # (what core.io.save_torch writes through)

        @contextlib.contextmanager
        def write(path, *a, **k):
            with real_write(path, *a, **k) as f:
                calls.append(Path(path).name)
                yield FullFile(f) if calls.count("checkpoint.pt") == 3 and calls[-1] == "checkpoint.pt" else f

        monkeypatch.setattr(wio, "atomic_write", write)


def _fly_until_the_disk_fills(photo, tmp_path, capsys, monkeypatch, fill) -> tuple[Path, Path, int]:
    """Fly the 10-frame autopilot flight whole (into tmp_path/whole), then again into tmp_path/full while `fill(out,
    monkeypatch)` makes its disk fill: asserts exit 1 and the one line (a full disk, the last checkpoint, how to
    resume) and returns (whole, out, frames in out's checkpoint)."""
    from worldgen.pipeline.checkpoint import load

    # (an autopilot this fast grows the world between checkpoints, so later checkpoints write chunk files)
    args = [*SMALL, "--path", "autopilot", "--speed", "0.1", "--frames", "10", "--checkpoint-every", "3"]
    whole, out = tmp_path / "whole", tmp_path / "full"
    entrypoint(["fly", str(photo), *args, "--out", str(whole)])
    with monkeypatch.context() as m:
        fill(out, m)
        code, lines = cli(["fly", str(photo), *args, "--out", str(out)], capsys)
    assert code == 1 and len(lines) == 1 and lines[0].startswith("worldgen: error: "), lines
    done = int(load(out)["t"]) + 1
    for words in ("No space left on device", f"last checkpoint (after frame {done - 1})",
                  f"worldgen fly --resume {out}"):
        assert words in lines[0], lines
    return whole, out, done


def _resume_gives_the_whole_flight(whole: Path, out: Path, where: str, done: int) -> None:
    """`fly --resume out` completes it into `whole`'s 10 frames, its second session starting at frame `done`."""
    entrypoint(["fly", "--resume", str(out)])
    assert_complete_outputs(out, 10)
    for t, (a, b) in enumerate(zip(frames_of(whole), frames_of(out), strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"{where}: frame {t} differs after the resume")
    info = json.loads((out / "run.json").read_text())
    assert info["sessions"][1]["first_frame"] == done and info["status"] == "complete" and "error" not in info


@pytest.mark.parametrize("where", ["frame", "chunk file", "checkpoint"])
def test_a_full_disk_mid_flight_is_one_line_and_resume_continues(photo, tmp_path, capsys, monkeypatch, where):
    """A disk that fills mid-flight: exit 1 and one line saying so and how to go on; the folder keeps its last
    checkpoint and the frames up to it (run.json says it stopped, and why), nothing cut short under a final name (no temp file, every chunk file whole)
    and no world.ply of frames past the checkpoint; once there is space, `--resume` continues it into the
    uninterrupted flight's frames and world."""
    whole, out, done = _fly_until_the_disk_fills(photo, tmp_path, capsys, monkeypatch,
                                                 lambda out, m: _disk_fills(where, out, m))
    info = json.loads((out / "run.json").read_text())  # the checkpoint's frames, marked stopped (it said "running")
    assert 1 <= done < 10 and info["frames"] == done and info["status"] == "stopped"
    assert "No space left on device" in info["error"] and info["sessions"][-1]["status"] == "stopped"
    assert not [p for p in out.rglob(".*")], "temp files left"
    assert all((out / "frames" / f"{t:05d}.png").is_file() for t in range(done))
    for chunk in (out / "state" / "chunks").glob("*"):
        rows = np.load(chunk)
        assert rows.dtype == np.float32 and rows.ndim == 2 and rows.shape[1] == 14, chunk.name
    assert not [name for name in END_FILES if (out / name).exists()]  # (the end's: test_a_full_disk_while_the_end_...)

    _resume_gives_the_whole_flight(whole, out, where, done)
    assert (whole / "world.ply").read_bytes() == (out / "world.ply").read_bytes()


def _end_fails(where: str, out: Path, monkeypatch) -> None:
    """Make the disk under run folder `out` fill as the flight's end (after its last frame) writes `where`: that write
    fails with ENOSPC after its first bytes, as on a full disk."""
    import worldgen.commands.fly.outputs as outputs
    import worldgen.core.io as wio
    from worldgen.core.images import VideoWriter

    if where == "video.mp4":  # ffmpeg could not write the stream's index: its temp file goes, nothing is renamed
        def close(self):
            self.abort()
            no_space()

        monkeypatch.setattr(VideoWriter, "close", close)
        return
    real_write, calls = wio.atomic_write, []
    # which write of the file is the end's: the 4th checkpoint (after frames 0, 3 and 6 the flight's, then the end's),
    # the run.json written once sky.png is there (the checkpoints' come before it), else the first (only the end's)
    the_end = {"checkpoint.pt": lambda: calls.count("checkpoint.pt") == 4, "run.json": (out / "sky.png").exists}

    @contextlib.contextmanager
    def write(path, *a, **k):
        name = Path(path).name
        calls.append(name)
        with real_write(path, *a, **k) as f:
            yield FullFile(f, room=64) if name == where and the_end.get(name, lambda: True)() else f

    monkeypatch.setattr(wio, "atomic_write", write)  # (what save_torch, write_ply, save_png and run.json write through)
    monkeypatch.setattr(outputs, "atomic_write", write)  # (cameras.json)


@pytest.mark.parametrize("where", ["checkpoint.pt", "video.mp4", "cameras.json", "world.ply", "sky.png", "run.json"])
def test_a_full_disk_while_the_end_is_written_leaves_no_end_files_and_resume_writes_them(photo, tmp_path, capsys,
                                                                                         monkeypatch, where):
    """A disk that fills while the flight's end is written (after the last frame: the final checkpoint, then
    video.mp4, cameras.json, world.ply, sky.png, run.json): exit 1 and one line; none of the end's files is left (no
    video of every frame beside an earlier checkpoint), run.json says "stopped" and why, and the checkpoint holds every
    frame (the one before stands where its own commit failed); `--resume` then writes the uninterrupted flight's
    outputs (writing only the end where the checkpoint holds every frame)."""
    whole, out, done = _fly_until_the_disk_fills(photo, tmp_path, capsys, monkeypatch,
                                                 lambda out, m: _end_fails(where, out, m))
    assert done == (7 if where == "checkpoint.pt" else 10)
    info = json.loads((out / "run.json").read_text())
    assert info["frames"] == done and info["status"] == "stopped" and info["sessions"][-1]["status"] == "stopped"
    assert "No space left on device" in info["error"]
    assert not [name for name in END_FILES if (out / name).exists()]
    assert not [p for p in out.rglob(".*")], "temp files left"

    _resume_gives_the_whole_flight(whole, out, where, done)
    for name in ("world.ply", "sky.png", "cameras.json"):
        assert (whole / name).read_bytes() == (out / name).read_bytes(), name
    code, lines = cli(["fly", "--resume", str(out)], capsys)
    one_line_error(code, lines, "nothing to resume")  # (its end written, the run is done)


def test_a_resumed_flight_stopped_mid_way_leaves_no_earlier_end_beside_its_checkpoint(photo, tmp_path, capsys,
                                                                                       monkeypatch):
    """A finished 5-frame flight flown on to 10 (`--resume --frames 10`) whose disk fills at frame 7: the first
    session's video.mp4, cameras.json, world.ply and sky.png (5 frames) do not stay beside the newer checkpoint; the
    next `--resume` writes the uninterrupted 10-frame flight's."""
    from worldgen.pipeline.checkpoint import load

    args = [*SMALL, "--path", "autopilot", "--speed", "0.1", "--checkpoint-every", "3"]
    whole, out = tmp_path / "whole", tmp_path / "on"
    entrypoint(["fly", str(photo), *args, "--frames", "10", "--out", str(whole)])
    entrypoint(["fly", str(photo), *args, "--frames", "5", "--out", str(out)])
    assert all((out / name).exists() for name in END_FILES)
    with monkeypatch.context() as m:
        _disk_fills("frame", out, m)
        code, lines = cli(["fly", "--resume", str(out), "--frames", "10"], capsys)
    assert code == 1 and len(lines) == 1 and "No space left on device" in lines[0], lines
    done = int(load(out)["t"]) + 1
    assert 5 < done < 10 and json.loads((out / "run.json").read_text())["status"] == "stopped"
    assert not [name for name in END_FILES if (out / name).exists()]

    entrypoint(["fly", "--resume", str(out), "--frames", "10"])
    assert_complete_outputs(out, 10)
    for t, (a, b) in enumerate(zip(frames_of(whole), frames_of(out), strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"frame {t} differs after the resumes")
    for name in ("world.ply", "cameras.json"):
        assert (whole / name).read_bytes() == (out / name).read_bytes(), name


def test_a_video_encoder_that_stops_is_one_line_and_leaves_no_video(tmp_path, monkeypatch):
    """ffmpeg on a full disk: a frame written to it fails (imageio says "Broken pipe" and ffmpeg's command line,
    over several lines), or it ends quietly without writing the index MP4 players need. Either is one OSError line
    (ENOSPC when the disk is out of room), and no video.mp4 appears; a whole stream is renamed into place."""
    import shutil
    import types

    from worldgen.core import images

    frame = np.zeros((32, 48, 3), np.uint8)
    free = {"bytes": 0}
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: types.SimpleNamespace(free=free["bytes"]))

    w = images.VideoWriter(tmp_path / "a.mp4", 15)
    w.append(frame)
    w._w.append_data = lambda _f: (_ for _ in ()).throw(OSError("[Errno 32] Broken pipe\n\nFFMPEG COMMAND:\nffmpeg"))
    with pytest.raises(OSError) as e:
        w.append(frame)
    assert e.value.errno == errno.ENOSPC and "\n" not in str(e.value) and str(w.tmp) in str(e.value)
    w.abort()

    w = images.VideoWriter(tmp_path / "b.mp4", 15)
    for _ in range(3):
        w.append(frame)
    close = w._w.close

    def close_without_index():
        close()
        data = w.tmp.read_bytes()
        w.tmp.write_bytes(data[: data.index(b"moov") - 4])  # the stream as ffmpeg leaves it when the disk is full

    w._w.close = close_without_index
    free["bytes"] = 2**40  # (a disk with room: the encoder merely stopped)
    with pytest.raises(OSError) as e:
        w.close()
    assert e.value.errno == errno.EPIPE and "video encoder (ffmpeg) stopped" in str(e.value)
    assert "\n" not in str(e.value)
    assert not any(tmp_path.iterdir())  # neither video, nor a temp file

    images.write_video(tmp_path / "c.mp4", [frame] * 3, 15)
    assert images.mp4_complete(tmp_path / "c.mp4") and [p.name for p in tmp_path.iterdir()] == ["c.mp4"]


def _made_up_frame(t: int, camera: Camera):
    """Frame t of a made-up flight: a flat grey of 40 (t + 1) levels, z-depth t + 2 everywhere."""
    from worldgen.core.frame import Frame

    H, W = camera.height, camera.width
    return Frame(torch.full((H, W, 3), 40 * (t + 1) / 255), torch.full((H, W), t + 2.0),
                 torch.zeros(H, W, dtype=torch.bool), camera)


def test_resumed_outputs_hold_each_frame_once_in_order(tmp_path):
    """A run killed after its checkpoint at frame 2 left frames 0-4 (PNGs, depth maps, camera lines) and half a
    camera line. Resumed after frame 2, `RunOutputs` first cuts frames/, depth/ and cameras.jsonl back to frames 0-2;
    then frames 3 and 4 come again. The video (decoded) holds the five frames once each, in order, each its own flat
    grey; each depth map is its own frame's; cameras.json lists the five cameras."""
    import imageio.v2 as imageio

    from worldgen.commands.fly.outputs import RunOutputs

    out = tmp_path / "run"
    out.mkdir()
    cams = [Camera.from_fov(50.0 + t, 48, 32) for t in range(5)]
    killed = RunOutputs(out, fps=15, video=True, depth_maps=True)
    for t in range(5):
        killed.add(t, _made_up_frame(t, cams[t]), cams[t])
    killed.flush()
    killed.abort()
    with open(out / "cameras.jsonl", "a", encoding="utf-8") as f:
        f.write('{"width": 48, "hei')  # cut by the kill

    resumed = RunOutputs(out, fps=15, video=True, depth_maps=True, start=3)
    names = [f"{t:05d}" for t in range(3)]
    assert sorted(p.stem for p in (out / "frames").iterdir()) == names
    assert sorted(p.stem for p in (out / "depth").iterdir()) == names
    assert len((out / "cameras.jsonl").read_text().splitlines()) == 3
    for t in (3, 4):
        resumed.add(t, _made_up_frame(t, cams[t]), cams[t])
    resumed.finish()

    with imageio.get_reader(out / "video.mp4") as r:
        greys = [float(np.asarray(f, np.float64).mean()) for f in r]
    assert greys == pytest.approx([40.0 * (t + 1) for t in range(5)], abs=4)
    for t in range(5):
        assert np.load(out / "depth" / f"{t:05d}.npy").tolist() == np.full((32, 48), t + 2.0).tolist(), t
    assert json.loads((out / "cameras.json").read_text())["frames"] == [c.to_dict() for c in cams]
    assert not [p for p in out.rglob(".*")], "temp files left"


def _disk_used(folder: Path) -> int:
    """Bytes of disk the files under `folder` take (whole blocks, as free space counts them)."""
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("mode", ["persistent", "per-frame"])
def test_the_disk_estimate_covers_what_a_flight_writes(photo, tmp_path, mode):
    """`disk_need`, checked against the free space before a flight, counts what the run really writes: the folder's
    size on disk at every frame and at the end stays under it (and within a few times of it), where the frames alone
    (all the check counted until 2026-12-05) are far less: the sky dome's state and the world are most of it."""
    out, used, sky = tmp_path / "run", [], []
    cfg = FlyConfig(image=str(photo), frames=12, path="forward", mode=mode, pipeline=PipelineConfig(size="48x32"),
                    out=str(out), progress=False, checkpoint_every=3, depth_maps=True)

    def on_frame(t, frame, gen):
        used.append(_disk_used(out))
        sky.append(gen.sky.width * gen.sky.height)

    run(cfg, on_frame=on_frame)
    peak = max(used + [_disk_used(out)])
    need = disk_need(cfg, 48, 32, sky[0])
    assert peak <= need <= 5 * peak, (peak, need)
    frames_only = 12 * (0.5 * 48 * 32 * 3 + 48 * 32 * 4 + 128 + 0.05 * 48 * 32 * 3)
    assert 5 * frames_only < peak
    assert disk_need(cfg, 48, 32, sky[0], start=6) < need  # a resumed run counts the frames still to come


def test_a_resumed_flights_disk_estimate_counts_the_world_still_to_grow():
    """A resumed persistent flight needs room for what its frames still to come write, the world's growth among it:
    each frame fewer to fly needs at least that frame's new Gaussians in state/chunks/ (WORLD_GROWTH of its pixels,
    each `PACKED_COLUMNS` float32) less, the same for every frame; frame 0's world is on disk already once a run
    resumes (a fresh run counts a frame's pixels of Gaussians more)."""
    from worldgen.commands.fly import WORLD_GROWTH
    from worldgen.core.scene import PACKED_COLUMNS

    cfg = FlyConfig(image="x.png", frames=100, mode="persistent", pipeline=PipelineConfig(size="48x32"))
    px, sky = 48 * 32, 10_000
    need = [disk_need(cfg, 48, 32, sky, start=s) for s in range(100)]
    step = need[1] - need[2]
    assert step >= WORLD_GROWTH * px * 4 * PACKED_COLUMNS
    assert need[50] - need[51] == pytest.approx(step) and need[98] - need[99] == pytest.approx(step)
    assert need[0] - need[1] >= step + px * 4 * PACKED_COLUMNS


def test_a_failed_checkpoint_commit_is_not_lost_on_its_thread(photo, tmp_path, monkeypatch):
    """Checkpoints commit on a writer thread; a commit that fails (disk full) fails the run."""
    import worldgen.pipeline.checkpoint as checkpoint

    def disk_full(path, obj):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_torch", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run(FlyConfig(image=str(photo), frames=6, path="forward", pipeline=PipelineConfig(size="48x32"),
                      out=str(tmp_path / "run"), progress=False, checkpoint_every=2))
    assert not (tmp_path / "run" / "state" / "checkpoint.pt").exists()


def test_after_a_failed_commit_no_checkpoint_is_taken(photo, tmp_path, monkeypatch):
    """A commit that failed may have left its sky or chunk files unsynced: later saves refuse (the
    failure is sticky), so no checkpoint ever names them."""
    import worldgen.pipeline.checkpoint as checkpoint

    calls = []
    real = checkpoint.save_torch

    def flaky(path, obj):
        calls.append(path)
        if len(calls) == 1:  # the first commit fails, later ones would succeed
            raise OSError(5, "Input/output error")
        real(path, obj)

    monkeypatch.setattr(checkpoint, "save_torch", flaky)
    with pytest.raises(OSError, match="Input/output"):
        run(FlyConfig(image=str(photo), frames=6, path="forward", pipeline=PipelineConfig(size="48x32"),
                      out=str(tmp_path / "run"), progress=False, checkpoint_every=2))
    assert len(calls) == 1 and not (tmp_path / "run" / "state" / "checkpoint.pt").exists()


def test_a_checkpoint_is_a_host_copy_that_shares_nothing():
    """The writer thread gets copies on the host: changing the flight's tensors and arrays afterwards does not
    reach them (and on CUDA no device tensor reaches that thread: tests/test_graphs.py)."""
    from worldgen.pipeline.checkpoint import host_copy

    t, a = torch.arange(4.0, requires_grad=True), np.zeros(3)
    src = {"t": t, "nested": [a, (t * 2, 7)], "name": "x", "n": 3}
    c = host_copy(src)
    with torch.no_grad():
        t += 1
    a += 1
    assert c["t"].tolist() == [0, 1, 2, 3] and not c["t"].requires_grad and c["t"].device.type == "cpu"
    assert c["nested"][0].tolist() == [0, 0, 0] and isinstance(c["nested"][1], tuple)
    assert c["nested"][1][0].tolist() == [0, 2, 4, 6] and c["name"] == "x" and c["n"] == 3


def test_an_odd_sized_frame_loses_its_last_row_and_column_in_the_video(tmp_path):
    """H.264 in yuv420p needs even sides. A 33 x 47 frame goes into the video as 32 x 46, its pixels where they were
    (imageio's own answer, a resize to 34 x 48, moved and blurred every pixel): the decoded video's size, and a sharp
    vertical edge at column 20 still there."""
    import imageio.v2 as imageio

    from worldgen.core import images

    frame = np.zeros((33, 47, 3), np.uint8)
    frame[:, 20:] = 200
    images.write_video(tmp_path / "odd.mp4", [frame] * 3, 15)
    with imageio.get_reader(tmp_path / "odd.mp4") as r:
        got = r.get_data(0)
    assert got.shape == (32, 46, 3)
    row = got[16, :, 1].astype(int)
    assert abs(row[16]) <= 8 and abs(row[18] - 0) <= 30 and abs(row[22] - 200) <= 30 and abs(row[26] - 200) <= 8
