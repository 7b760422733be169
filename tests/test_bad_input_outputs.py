"""Outputs that cannot go wrong: `depth --out` never replaces an input or someone else's file and stays out of run
folders; a failed command leaves no new folder; `export --nerfstudio` and live's export hold their folder and replace
their own earlier outputs whole; an output folder under a file says so (tiny sizes, the prior depth, few frames)."""

from __future__ import annotations

import shutil
import threading
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.flights import tiny_flight
from tests.test_configs import cli_run as cli  # (exit status, stdout, stderr) of `worldgen ARGV`
from worldgen.core.camera import Camera
from worldgen.core.io import UserInputError, check_writable_dir, save_cameras_json
from worldgen.core.runfolder import RunLock
from worldgen.core.scene import GaussianScene

PRIOR = ["--depth-model", "prior", "--size", "32x24"]


def one_line_error(code, err: str, *says: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("worldgen: error: "), err
    for s in says:
        assert s in lines[0], (s, err)


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def flight(tmp_path_factory) -> Path:
    return tiny_flight(tmp_path_factory.mktemp("outputs") / "run", frames=4, size="32x24", path="forward")


def fake_run(folder: Path) -> Path:
    """What a fly run folder holds at its top (no flight needed to be refused)."""
    (folder / "frames").mkdir(parents=True)
    for name in ("config.json", "run.json", "cameras.json"):
        (folder / name).write_text("{}")
    (folder / "sky.png").write_bytes(b"the run's sky")
    return folder


# ----------------------------------------------------------------------------- 1. worldgen depth --out
def test_depth_never_replaces_an_input_or_someone_elses_picture(photo, tmp_path, capsys):
    before = photo.read_bytes()
    code, _, err = cli(["depth", str(photo), *PRIOR, "--out", str(photo.with_suffix(".npy"))], capsys)
    one_line_error(code, err, "would overwrite the input file")
    assert photo.read_bytes() == before and not photo.with_suffix(".npy").exists()

    depth_in = tmp_path / "mine.npy"  # a --depth input is an input too
    np.save(depth_in, np.full((24, 32), 5.0, np.float32))
    code, _, err = cli(["depth", str(photo), "--depth", str(depth_in), "--size", "32x24", "--out", str(depth_in)],
                       capsys)
    one_line_error(code, err, "would overwrite the input file")

    (tmp_path / "pic.png").write_bytes(b"someone's picture")  # FILE.png without FILE.npy: not an earlier output
    code, _, err = cli(["depth", str(photo), *PRIOR, "--out", str(tmp_path / "pic.npy")], capsys)
    one_line_error(code, err, "no earlier `worldgen depth` output")
    assert (tmp_path / "pic.png").read_bytes() == b"someone's picture" and not (tmp_path / "pic.npy").exists()

    out = tmp_path / "d.npy"  # the same --out again replaces both files
    for size, shape in (("32x24", (24, 32)), ("48x36", (36, 48))):
        code, _, err = cli(["depth", str(photo), "--depth-model", "prior", "--size", size, "--out", str(out)], capsys)
        assert code == 0, err
        assert np.load(out).shape == shape
        from PIL import Image

        assert np.asarray(Image.open(out.with_suffix(".png"))).shape[:2] == shape
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files, no probes


def test_depth_stays_out_of_run_folders_and_folders_in_use(photo, tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    before = listing(run)
    for name, says in (("sky.npy", "sky.png exists"), ("x.npy", "is a worldgen output folder")):
        code, _, err = cli(["depth", str(photo), *PRIOR, "--out", str(run / name)], capsys)
        one_line_error(code, err, says)
    assert listing(run) == before

    mine = tmp_path / "mine"  # a folder of the user's own with a config.json in it is not a run folder
    mine.mkdir()
    (mine / "config.json").write_text("{}")
    code, _, err = cli(["depth", str(photo), *PRIOR, "--out", str(mine / "x.npy")], capsys)
    assert code == 0 and (mine / "x.npy").is_file() and (mine / "x.png").is_file(), err
    (mine / "metrics.json").write_text("{}")  # ... beside what compare writes with it, it is
    code, _, err = cli(["depth", str(photo), *PRIOR, "--out", str(mine / "y.npy")], capsys)
    one_line_error(code, err, "is a worldgen output folder")

    busy = tmp_path / "busy"  # a folder another worldgen command writes (a flight under way)
    busy.mkdir()
    with RunLock(busy):
        code, _, err = cli(["depth", str(photo), *PRIOR, "--out", str(busy / "x.npy")], capsys)
    one_line_error(code, err, "in use")
    assert not list(busy.iterdir())


# ----------------------------------------------------------------------------- 2. no folder left by a failure
def test_failed_commands_leave_no_new_folder(tmp_path, capsys):
    check_writable_dir(tmp_path / "probe" / "sub")  # a check creates nothing
    assert not (tmp_path / "probe").exists()

    text = tmp_path / "text.jpg"
    text.write_text("not a picture")
    code, _, err = cli(["depth", str(text), "--out", str(tmp_path / "new1" / "sub" / "x.npy")], capsys)
    one_line_error(code, err, "not an image file")
    assert not (tmp_path / "new1").exists()

    noframes = tmp_path / "noframes"  # a run whose cameras.json lists frames that are not there
    noframes.mkdir()
    save_cameras_json(noframes / "cameras.json", [Camera.from_fov(60.0, 32, 24).to_dict()] * 3)
    for option, target in (("--mesh", tmp_path / "new2" / "sub" / "x.glb"), ("--nerfstudio", tmp_path / "new3" / "ns")):
        code, _, err = cli(["export", str(noframes), option, str(target)], capsys)
        one_line_error(code, err, "is missing")
        assert not (tmp_path / target.relative_to(tmp_path).parts[0]).exists(), option


# ----------------------------------------------------------------------------- 3. export --nerfstudio
def test_nerfstudio_export_replaces_an_earlier_export_whole_and_holds_its_folder(flight, tmp_path):
    from worldgen.pipeline.export.nerfstudio import export_nerfstudio
    from worldgen.pipeline.export.rundir import RunDir

    short = tmp_path / "short"  # the same run cut to its first 2 frames
    shutil.copytree(flight, short)
    cams = RunDir.open(flight).cameras
    save_cameras_json(short / "cameras.json", [c.to_dict() for c in cams[:2]])
    for t in (2, 3):
        (short / "frames" / f"{t:05d}.png").unlink()
    depth = lambda t: torch.full((24, 32), 3.0)  # noqa: E731

    out = tmp_path / "ns"
    assert export_nerfstudio(RunDir.open(flight), depth, out)["frames"] == 4
    assert export_nerfstudio(RunDir.open(short), depth, out)["frames"] == 2
    assert sorted(p.name for p in (out / "images").iterdir()) == ["00000.png", "00001.png"]
    assert sorted(p.name for p in (out / "depths").iterdir()) == ["00000.npy", "00001.npy"]
    export_nerfstudio(RunDir.open(short), None, out)  # no depth this time: none of the last export's stays
    assert not (out / "depths").exists()

    before = listing(out)
    with RunLock(out):  # one writer
        with pytest.raises(UserInputError, match="in use"):
            export_nerfstudio(RunDir.open(flight), depth, out)
    (out / "notes.txt").write_text("mine")  # foreign content: refused, nothing touched
    with pytest.raises(UserInputError, match="holds 'notes.txt'"):
        export_nerfstudio(RunDir.open(flight), depth, out)
    assert listing(out) == {**before, "notes.txt": b"mine"}


def test_an_output_folder_kept_once_written_and_refused_when_filled_before_its_lock(tmp_path, monkeypatch):
    """`OutputFolder` (compare's, synth's, export --nerfstudio's): a command that fails once it has begun writing keeps
    the folder it made and what it wrote (compare's config.json and video.mp4 among it); a foreign file that another
    program put in the folder between the first look and the lock is refused in one line, the file left, the lock
    given back."""
    from worldgen.core import runfolder
    from worldgen.core.runfolder import OutputFolder

    owns = {"config.json", "video.mp4", "report.html"}.__contains__
    out = tmp_path / "new" / "cmp"
    with pytest.raises(RuntimeError, match="the plots failed"):
        with OutputFolder(out, owns=owns, command="compare") as folder:
            folder.replace_earlier()
            (out / "config.json").write_text("{}")
            (out / "video.mp4").write_bytes(b"a video")
            raise RuntimeError("the plots failed")
    assert listing(out) == {"config.json": b"{}", "video.mp4": b"a video"}

    real = runfolder.make_and_lock

    def filled_first(path):
        (Path(path) / "notes.txt").write_text("mine")  # another program, just before the lock
        return real(path)

    monkeypatch.setattr(runfolder, "make_and_lock", filled_first)
    with pytest.raises(UserInputError, match="holds 'notes.txt', which `worldgen compare` does not write") as e:
        OutputFolder(out, owns=owns, command="compare")
    assert "\n" not in str(e.value) and (out / "notes.txt").read_text() == "mine"
    RunLock(out).release()  # not held any more


# ----------------------------------------------------------------------------- 4. worldgen live --out
def test_live_out_is_checked_before_serving(tmp_path):
    from viewer.live import check_export_dir

    run = fake_run(tmp_path / "run")
    with pytest.raises(UserInputError, match="does not write"):
        check_export_dir(run)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserInputError, match="is a file, not a directory"):
        check_export_dir(tmp_path / "file")
    busy = tmp_path / "busy"
    busy.mkdir()
    with RunLock(busy), pytest.raises(UserInputError, match="in use"):
        check_export_dir(busy)
    check_export_dir(tmp_path / "new" / "live")  # a new folder: fine, and not made
    assert not (tmp_path / "new").exists()


def test_live_export_writes_into_a_folder_it_holds(tmp_path, monkeypatch):
    import viewer.live as live

    scene = GaussianScene(torch.zeros(3, 3), torch.tensor([[1.0, 0, 0, 0]] * 3), torch.full((3, 3), -2.0),
                          torch.zeros(3), torch.full((3, 3), 0.5))
    engine = types.SimpleNamespace(lock=threading.RLock(), snapshot=lambda: scene,
                                   cameras=[Camera.from_fov(60.0, 32, 24)])
    export = lambda out: live.LiveEngine.export(engine, out)  # noqa: E731

    run = fake_run(tmp_path / "run")
    before = listing(run)
    with pytest.raises(UserInputError, match="does not write"):
        export(run)  # a fly run's world is not overwritten
    assert listing(run) == before

    out = tmp_path / "live"
    assert export(out) == out / "world.ply"
    assert sorted(p.name for p in out.iterdir()) == ["cameras.json", "world.ply"]
    with RunLock(out), pytest.raises(UserInputError, match="in use"):
        export(out)

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(live, "save_cameras_json", full_disk)
    with pytest.raises(OSError):
        export(out)
    assert not list(out.iterdir())  # no new world beside the old cameras


# ----------------------------------------------------------------------------- 5. messages
def test_an_output_folder_that_is_a_file_is_called_a_file(tmp_path, monkeypatch):
    from worldgen.commands import bench

    (tmp_path / "good.jpg").write_bytes(b"a photo")
    with pytest.raises(UserInputError, match="good.jpg is a file, not a directory"):
        check_writable_dir(tmp_path / "good.jpg")
    with pytest.raises(UserInputError, match="cannot be made: .*good.jpg is a file, not a directory"):
        check_writable_dir(tmp_path / "good.jpg" / "sub")
    monkeypatch.setattr(bench, "make_plan", lambda *a, **k: pytest.fail("the benchmark started"))
    with pytest.raises(UserInputError, match="output directory .*good.jpg is a file, not a directory"):
        bench.run(bench.BenchConfig(device="cpu", out=str(tmp_path / "good.jpg" / "b.json")))


# ----------------------------------------------------------------------------- fly --overwrite of its own inputs
def test_overwrite_refuses_a_run_folder_that_holds_the_flights_own_input(photo, tmp_path, capsys):
    """`fly --overwrite` clears the run folder before it reads its inputs: a photo, --depth, --camera or --path JSON
    file inside that folder would be deleted first (the audit's `--depth RUN/depth/00000.npy --out RUN --overwrite`).
    One line; the folder stays as it was."""
    run = tmp_path / "run"
    code, _, err = cli(["fly", str(photo), *PRIOR, "--frames", "2", "--depth-maps", "--out", str(run)], capsys)
    assert code == 0, err
    depth = sorted((run / "depth").iterdir())[0]
    before = listing(run)
    inside = run / "frames" / "00000.png"
    cases = ((["fly", str(photo), "--depth", str(depth)], "--depth"), (["fly", str(inside)], "IMAGE"),
             (["fly", str(photo), "--camera", str(run / "cameras.json")], "--camera"),
             (["fly", str(photo), "--path", str(run / "config.json")], "--path"))
    for argv, says in cases:
        code, _, err = cli([*argv, *PRIOR, "--frames", "2", "--out", str(run), "--overwrite"], capsys)
        one_line_error(code, err, says, "--overwrite would clear first")
        assert listing(run) == before


def test_a_run_being_written_is_in_use_not_a_folder_without_cameras(tmp_path):
    """Exporting a run while its flight (or `fly --resume`) writes it: cameras.json comes at the end, so the folder
    has none yet; the one line says the folder is in use, not that it is no run."""
    from worldgen.pipeline.export.rundir import RunDir

    run = tmp_path / "run"
    (run / "frames").mkdir(parents=True)
    with RunLock(run):
        with pytest.raises(UserInputError, match="in use"):
            RunDir.open(run)
    with pytest.raises(UserInputError, match="has no cameras.json"):
        RunDir.open(run)
