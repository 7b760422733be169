"""`worldgen train` and `worldgen train-depth` on bad input: one line on stderr and a non-zero exit, never a
traceback; one writer per run folder; nothing left behind by a failed start (the audit of 2026-12-03)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.full_disk import FullFile
from worldgen.cli import entrypoint
from worldgen.core.runfolder import RunLock

TR = ["train", "--preset", "train-refiner-tiny", "--device", "cpu"]
TD = ["train-depth", "--preset", "train-depth-tiny", "--device", "cpu"]


def cli_run(argv, capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `worldgen ARGV` (0 when it returns)."""
    try:
        entrypoint([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code, err, *says) -> str:
    """The single `worldgen: error:` line of a failed command (asserting that it is one and says `says`)."""
    lines = err.strip().splitlines()
    assert code not in (0, None), err
    assert len(lines) == 1 and lines[0].startswith("worldgen: error: "), err
    assert "Traceback" not in err
    for s in says:
        assert s in lines[0], lines[0]
    return lines[0]


def photos(folder, n=2, bad=False):
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(g.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    if bad:
        (folder / "broken.png").write_text("not a png")
    return folder


@pytest.mark.parametrize("cmd", [TR, TD], ids=["train", "train-depth"])
def test_a_second_writer_is_refused_at_once(tmp_path, capsys, cmd):
    out = tmp_path / "busy"
    out.mkdir()
    with RunLock(out):
        code, _, err = cli_run([*cmd, "--steps", "2", "--out", out], capsys)
    one_line_error(code, err, "is in use by another worldgen run")
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("cmd", [TR, TD], ids=["train", "train-depth"])
def test_an_output_path_that_is_a_file(tmp_path, capsys, cmd):
    f = tmp_path / "afile"
    f.write_text("x")
    code, _, err = cli_run([*cmd, "--steps", "2", "--out", f], capsys)
    one_line_error(code, err, "is a file, not a directory")
    assert f.read_text() == "x"


@pytest.mark.parametrize("cmd, args, says", [
    (TR, ["--batch", "0"], "--batch"),
    (TR, ["--net.widths", "0", "-3"], "--net.widths"),
    (TR, ["--steps", "0"], "--steps"),
    (TR, ["--steps", "-5"], "--steps"),
    (TR, ["--data.walks", "7"], "--data.walks"),
    (TR, ["--unroll.per-frame", "nan"], "--unroll.per-frame"),
    (TR, ["--loss.rgb", "inf"], "--loss.rgb"),
    (TR, ["--checkpoint-every", "0"], "--checkpoint-every"),
    (TD, ["--batch", "0"], "--batch"),
    (TD, ["--steps", "-5"], "--steps"),
    (TD, ["--net.widths", "0"], "--net.widths"),
    (TD, ["--data.walks", "7"], "--data.walks"),
    (TD, ["--shading", "-1"], "--shading"),
    (TD, ["--ground-order-weight", "nan"], "--ground-order-weight"),
    (TD, ["--photo-weight", "-1"], "--photo-weight"),
    (TD, ["--teacher-ema", "1.5"], "--teacher-ema"),
], ids=lambda v: " ".join(v) if isinstance(v, list) and v and v[0].startswith("--") else None)
def test_bad_settings_are_one_line_naming_the_option_before_anything_is_made(tmp_path, capsys, cmd, args, says):
    out = tmp_path / "run"
    code, _, err = cli_run([*cmd, "--steps", "2", *args, "--out", out], capsys)
    one_line_error(code, err, says)
    assert not out.exists()


def test_the_presets_still_pass_the_checks():
    from configs.train import TRAIN_PRESETS
    from worldgen.core.config import check

    for preset in TRAIN_PRESETS.values():  # (some need --photos DIR from the command line)
        try:
            check(preset.config)
        except ValueError as e:
            assert "give --photos DIR too" in str(e)


def test_photo_folders_that_are_missing_or_files(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for argv, says in [
        (["train", "--preset", "train-refiner-photos-tiny", "--device", "cpu", "--photos.folder", tmp_path / "nope"],
         "--photos.folder"),
        ([*TD, "--photos", tmp_path / "nope"], "no such folder"),
        ([*TD, "--photos", afile], "is a file, not a folder"),
        ([*TD, "--photos", tmp_path], "no photos"),
    ]:
        code, _, err = cli_run([*argv, "--steps", "2", "--out", tmp_path / "run"], capsys)
        one_line_error(code, err, says)
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("cmd", [TR, TD], ids=["train", "train-depth"])
def test_a_checkpoint_that_is_not_one_is_named(tmp_path, capsys, cmd):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pt").write_text("hello\n")
    code, _, err = cli_run([*cmd, "--steps", "2", "--out", out], capsys)
    one_line_error(code, err, f"{out / 'checkpoint.pt'} is not a worldgen training checkpoint: ")
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]  # no empty samples/


@pytest.mark.parametrize("cmd, other", [(TR, ["--net.widths", "8", "16", "32", "64", "96"]),
                                        (TD, ["--net.widths", "8", "16"])], ids=["train", "train-depth"])
def test_resuming_with_other_network_settings(tmp_path, capsys, cmd, other):
    out = tmp_path / "tok"
    code, _, err = cli_run([*cmd, "--steps", "1", "--out", out], capsys)
    assert code == 0, err
    assert (out / "checkpoint.pt").is_file() and any((out / "samples").iterdir())  # samples/ made with the first
    before = (out / "checkpoint.pt").read_bytes()
    code, _, err = cli_run([*cmd, "--steps", "2", *other, "--out", out], capsys)
    one_line_error(code, err, "was trained with other network settings", "--net")
    assert (out / "checkpoint.pt").read_bytes() == before


def test_a_failed_start_removes_the_folder_it_made(tmp_path, capsys):
    """train-depth reads its photos after making the run folder: a photo it cannot read is one line, and the
    folders it made (OUT and its missing parents) are gone again."""
    out = tmp_path / "new" / "run"
    code, _, err = cli_run([*TD, "--steps", "2", "--photos", photos(tmp_path / "ph", bad=True), "--out", out], capsys)
    one_line_error(code, err, "broken.png cannot be read")
    assert not (tmp_path / "new").exists()


def test_a_run_that_dies_before_its_first_checkpoint_leaves_no_folder(tmp_path, capsys, monkeypatch):
    """log.jsonl and samples/ written before the first checkpoint go with the folder the run made; a run that
    fails in a folder that was there keeps the folder."""
    from refine.train import trainer

    def boom(*a, **k):
        raise ValueError("disk on fire")

    monkeypatch.setattr(trainer, "save_checkpoint", boom)
    out = tmp_path / "new" / "run"
    code, _, err = cli_run([*TR, "--steps", "2", "--log-every", "1", "--sample-every", "1", "--out", out], capsys)
    one_line_error(code, err, "disk on fire")
    assert not (tmp_path / "new").exists()


def test_a_folder_of_another_command_is_refused_and_left_as_it_was(tmp_path, capsys):
    """Both trainings refuse an --out that holds names no training run writes (a fly run's frames, a user's file):
    one line naming one, and the folder as it was (they used to write their checkpoints and logs into it)."""
    out = tmp_path / "fly-run"
    (out / "frames").mkdir(parents=True)
    (out / "world.ply").write_bytes(b"ply")
    for argv in (TR, TD):
        code, _, err = cli_run([*argv, "--steps", "2", "--out", out], capsys)
        one_line_error(code, err, "holds 'frames'", "another command's folder")
        assert sorted(p.name for p in out.iterdir()) == ["frames", "world.ply"]


def test_a_composition_out_of_range_is_refused_before_training(tmp_path, capsys):
    """--refiner.anchor 5 (the range is 0..1, as for --refiner-anchor) is one line before anything is written; it
    used to train and save weights that flew with an anchor of 5."""
    out = tmp_path / "run"
    for option, value, says in (("--refiner.anchor", "5", "anchor must be between 0 and 1"),
                                ("--refiner.detail-px", "0.5", "must exceed sharp_px")):
        code, _, err = cli_run([*TR, "--steps", "2", option, value, "--out", out], capsys)
        one_line_error(code, err, says)
    assert not out.exists()


def test_a_finished_run_given_the_same_steps_says_so_at_once(tmp_path, capsys):
    """--steps at or below the step a run's checkpoint holds: one line before the data cache is filled (it used to
    fill it, minutes on a real preset, and then do nothing)."""
    out = tmp_path / "run"
    code, _, err = cli_run([*TR, "--steps", "2", "--out", out], capsys)
    assert code == 0, err
    before = sorted(p.name for p in out.iterdir())
    code, _, err = cli_run([*TR, "--steps", "2", "--out", out], capsys)
    one_line_error(code, err, "is at step 2 already (of --steps 2); nothing to train")
    assert sorted(p.name for p in out.iterdir()) == before


def _disk_fills_at(monkeypatch, nth: int, out, name: str = "checkpoint.pt") -> dict:
    """Make the `nth` atomic write of a file called `name` (a checkpoint.pt, or one of the run's end: refiner.pt,
    depth.pt, loss.png, train.json) fail as on a full disk: part of the file is written (to its temp file), then
    ENOSPC. Returns what the failing call saw: the file `out/name` on disk before it (None: none)."""
    import contextlib
    from pathlib import Path

    import worldgen.core.io as wio

    real, calls, seen = wio.atomic_write, [], {}

    @contextlib.contextmanager
    def write(path, *a, **k):
        with real(path, *a, **k) as f:
            calls.append(Path(path).name)
            if calls[-1] == name and calls.count(name) == nth:
                seen["before"] = (out / name).read_bytes() if (out / name).is_file() else None
                yield FullFile(f)
            else:
                yield f

    monkeypatch.setattr(wio, "atomic_write", write)
    return seen


@pytest.mark.parametrize("cmd", [TR, TD], ids=["train", "train-depth"])
def test_a_full_disk_at_a_checkpoint_is_one_line_and_the_run_resumes_from_the_last(tmp_path, capsys, monkeypatch,
                                                                                   cmd):
    """A disk that fills while a checkpoint is written: exit 1 and one line saying so and which checkpoint stands
    (torch.save into the file said "enforce fail at inline_container.cc" in a traceback, and could leave the file
    cut short under its name); that checkpoint is the one before, whole, no temp file stays, and the same command
    resumes from it once there is space."""
    from refine.train.common import load_training_checkpoint
    from refine.train.depth import CKPT_FORMAT as DEPTH_CKPT
    from refine.train.trainer import CKPT_FORMAT as REFINER_CKPT

    fmt = REFINER_CKPT if cmd is TR else DEPTH_CKPT
    out = tmp_path / "run"
    argv = [*cmd, "--steps", "4", "--checkpoint-every", "2", "--log-every", "1", "--sample-every", "2", "--out", out]
    with monkeypatch.context() as m:
        seen = _disk_fills_at(m, 2, out)  # the checkpoint of step 4
        code, _, err = cli_run(argv, capsys)
    assert code == 1, err
    one_line_error(code, err, "No space left on device",
                   f"the run in {out} stands at its last checkpoint, checkpoint.pt (step 2)",
                   f"`worldgen {cmd[0]} --out {out}` with the same settings resumes from it")
    assert not [p for p in out.rglob(".*")], "temp files left"
    assert (out / "checkpoint.pt").read_bytes() == seen["before"]
    for name in ("checkpoint.pt", "checkpoint-compact.pt"):
        assert load_training_checkpoint(out / name, fmt)["step"] == 2, name
    assert not {"train.json", "refiner.pt", "depth.pt"} & {p.name for p in out.iterdir()}

    code, text, err = cli_run(argv, capsys)  # there is space again
    assert code == 0, err
    assert "from step 2" in text and load_training_checkpoint(out / "checkpoint.pt", fmt)["step"] == 4


@pytest.mark.parametrize("cmd, fails, earlier", [(TR, "refiner.pt", False), (TD, "train.json", False),
                                                (TR, "train.json", True), (TD, "depth.pt", True)],
                         ids=["train", "train-depth-at-train.json", "train-over-an-earlier-end",
                              "train-depth-over-an-earlier-end"])
def test_a_full_disk_at_the_end_is_finished_by_the_same_command(tmp_path, capsys, monkeypatch, cmd, fails, earlier):
    """A disk that fills at the end of a run, after its last checkpoint (which holds all the steps): one line saying
    so, and the same command then writes the end's files from that checkpoint without training (it said "nothing to
    train" and the run could not be finished) -- also where the folder holds the end of an earlier, shorter run
    (older than the checkpoint). The weights file is the one an uninterrupted run writes; once the end is written,
    the same command again has nothing to train."""
    import json

    from refine.depthnet import load_depth_weights
    from refine.learned import load_weights

    weights, load = ("refiner.pt", load_weights) if cmd is TR else ("depth.pt", load_depth_weights)
    argv = [*cmd, "--checkpoint-every", "2", "--log-every", "1", "--sample-every", "2"]
    first = [["--steps", "2"]] if earlier else []  # a finished 2-step run, which the 4-step one goes on from
    last = ["--steps", "4" if earlier else "2"]
    whole, out = tmp_path / "whole", tmp_path / "run"
    for folder in (whole, out):
        for a in first:
            code, _, err = cli_run([*argv, *a, "--out", folder], capsys)
            assert code == 0, err
    code, _, err = cli_run([*argv, *last, "--out", whole], capsys)
    assert code == 0, err
    with monkeypatch.context() as m:
        _disk_fills_at(m, 1, out, fails)
        code, _, err = cli_run([*argv, *last, "--out", out], capsys)
    assert code == 1, err
    one_line_error(code, err, "No space left on device",
                   f"the run in {out} has all its {last[1]} steps in its last checkpoint, checkpoint.pt",
                   f"`worldgen {cmd[0]} --out {out}` with the same settings writes them")
    assert not [p for p in out.rglob(".*")], "temp files left"
    ckpt = (out / "checkpoint.pt").read_bytes()

    code, text, err = cli_run([*argv, *last, "--out", out], capsys)  # there is space again
    assert code == 0, err
    assert "writing the run's end" in text and "from step" not in text, text
    assert (out / "checkpoint.pt").read_bytes() == ckpt  # (no training)
    assert json.loads((out / "train.json").read_text())["steps_done"] == int(last[1])
    mine, theirs = load(out / weights)[0].state_dict(), load(whole / weights)[0].state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert (out / "loss.png").is_file()

    code, _, err = cli_run([*argv, *last, "--out", out], capsys)
    one_line_error(code, err, f"is at step {last[1]} already (of --steps {last[1]}); nothing to train")


def test_a_full_disk_at_the_first_checkpoint_says_no_checkpoint_stands(tmp_path, capsys, monkeypatch):
    """Failing at its first checkpoint, a run has nothing to resume from: the line says so (the folder it made is
    gone again, as for any failure before the first checkpoint)."""
    out = tmp_path / "new" / "run"
    _disk_fills_at(monkeypatch, 1, out)
    code, _, err = cli_run([*TR, "--steps", "2", "--out", out], capsys)
    assert code == 1, err
    one_line_error(code, err, "No space left on device", f"no checkpoint of the run in {out} stands",
                   f"`worldgen train --out {out}` with the same settings starts it again")
    assert not (tmp_path / "new").exists()


def test_a_log_line_is_appended_whole_or_not_at_all(tmp_path, monkeypatch):
    """log.jsonl takes each logged step as one appended line (core.io.append_text); a disk that fills part way
    through a line cuts the file back, so the log a resumed run appends to never holds half a line."""
    import errno
    import json
    import os

    from worldgen.core.io import append_text

    log = tmp_path / "log.jsonl"
    append_text(log, json.dumps({"step": 1}) + "\n")
    real, calls = os.write, []

    def fills(fd, data):  # the first write is cut short, the next finds no room
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, bytes(data[:4]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(os, "write", fills)
        with pytest.raises(OSError, match="No space left"):
            append_text(log, json.dumps({"step": 2, "loss": 0.5}) + "\n")
    assert len(calls) == 2 and log.read_text() == '{"step": 1}\n'
    append_text(log, json.dumps({"step": 2}) + "\n")
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2]


def _folder_worker(rank: int, port: int, out: str, queue) -> None:
    """One process of a two-process gloo job entering the run folder `out` (held by the test)."""
    import os

    import torch.distributed

    from refine.train.common import Dist, TrainingFolder
    from worldgen.core.io import UserInputError

    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    dd = Dist("cpu")
    try:
        with TrainingFolder(out, dd):
            queue.put((rank, "entered"))
    except UserInputError as e:
        queue.put((rank, str(e)))
    torch.distributed.destroy_process_group()


def test_under_torchrun_every_rank_stops_when_rank_0_cannot_take_the_folder(tmp_path):
    """Only rank 0 locks; the others must hear that it failed rather than wait in their first collective."""
    import socket

    import torch.multiprocessing as mp

    out = tmp_path / "run"
    out.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with RunLock(out):  # another writer holds it
        procs = [ctx.Process(target=_folder_worker, args=(r, port, str(out), queue)) for r in range(2)]
        for p in procs:
            p.start()
        got = dict(queue.get(timeout=120) for _ in procs)
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0
    assert "entered" not in got.values()
    assert "is in use by another worldgen run" in got[0], got[0]
    assert "rank 0 could not take the run folder" in got[1]


@pytest.mark.parametrize("cmd", [TR, TD], ids=["train", "train-depth"])
def test_a_resumed_run_logs_each_step_once(tmp_path, capsys, cmd):
    """A run stopped between two checkpoints (kill -9, a full disk) had logged steps past its last checkpoint, which
    the resumed run trains and logs again: log.jsonl keeps each step once, the resumed run's (`cut_log`)."""
    import json

    out = tmp_path / "run"
    argv = [*cmd, "--checkpoint-every", "2", "--log-every", "1", "--sample-every", "2", "--out", out]
    code, _, err = cli_run([*argv, "--steps", "4"], capsys)
    assert code == 0, err
    with open(out / "log.jsonl", "a") as f:  # what the stopped run had logged after its checkpoint at step 4
        f.write(json.dumps({"step": 5, "stale": True}) + "\n" + json.dumps({"step": 6, "stale": True}) + "\n{\"ste")
    code, _, err = cli_run([*argv, "--steps", "6"], capsys)
    assert code == 0, err
    recs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5, 6] and not any("stale" in r for r in recs), recs


def _full_disk_worker(rank: int, port: int, argv: list[str], out, name: str, nth: int, queue,
                      refused: bool = False) -> None:
    """One process of a two-process gloo run of `worldgen ARGV` in folder `out`, whose disk fills at rank 0's `nth`
    write of a file called `name` (`_disk_fills_at`; `refused`: that write is refused with a UserInputError instead,
    as `atomic_write` refuses a folder that no longer takes files); puts (rank, exit status, stderr)."""
    import contextlib
    import io
    import os

    import torch.distributed

    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)  # (two processes on the test machine's cores)
    if rank == 0 and refused:
        from pathlib import Path

        import worldgen.core.io as wio

        real, calls = wio.atomic_write, []

        def write(path, *a, **k):
            calls.append(Path(path).name)
            if calls[-1] == name and calls.count(name) == nth:
                raise wio.UserInputError(f"{path}: the folder takes no files")
            return real(path, *a, **k)

        pytest.MonkeyPatch().setattr(wio, "atomic_write", write)
    elif rank == 0:
        _disk_fills_at(pytest.MonkeyPatch(), nth, out, name)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            entrypoint(argv)
            code = 0
        except SystemExit as e:
            code = e.code
    queue.put((rank, code, err.getvalue()))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _two_ranks(argv: list[str], out, name: str, nth: int, refused: bool = False) -> dict:
    """`worldgen ARGV` as two gloo processes (`_full_disk_worker`: rank 0's `nth` write of `name` fails); returns
    {rank: (exit status, stderr)}. A process that hangs fails the test after 60 s (queue.Empty) and is killed."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_full_disk_worker, args=(r, port, argv, out, name, nth, queue, refused))
             for r in range(2)]
    for p in procs:
        p.start()
    try:
        got = {r: (code, err) for r, code, err in (queue.get(timeout=60) for _ in procs)}
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    return got


@pytest.mark.parametrize("cmd, name, nth, stands", [
    (TR, "checkpoint.pt", 2, "stands at its last checkpoint, checkpoint.pt (step 1)"),
    (TR, "refiner.pt", 1, "has all its 3 steps in its last checkpoint, checkpoint.pt"),
    (TD, "step_000002.png", 1, "stands at its last checkpoint, checkpoint.pt (step 1)"),
    (TD, "depth.pt", 1, "has all its 3 steps in its last checkpoint, checkpoint.pt"),
], ids=["train-at-a-checkpoint", "train-at-the-end", "train-depth-at-a-sample", "train-depth-at-the-end"])
def test_under_torchrun_a_full_disk_on_rank_0_stops_every_rank(tmp_path, cmd, name, nth, stands):
    """Two gloo processes, whose rank 0 (the only writer) meets a full disk: at a checkpoint, at a sample grid (told
    at the step's `over`) or at the end's weights. Every process stops at once, rank 0 with the line of one process,
    the other with one saying that rank 0 could not write, and the same resumable state. The others used to wait
    for rank 0 in their next collective (the refiner's end: its barrier) until torchrun's timeout; the depth
    network's other processes returned from its end as if it were written."""
    out = tmp_path / "run"
    argv = [str(a) for a in [*cmd, "--steps", "3", "--checkpoint-every", "1", "--log-every", "1", "--sample-every",
                             "2", "--out", out]]
    got = _two_ranks(argv, out, name, nth)
    again = f"`worldgen {cmd[0]} --out {out}` with the same settings"
    one_line_error(*got[0], "No space left on device", stands, again)
    one_line_error(*got[1], "rank 0 could not write in the run folder", stands, again)
    assert not [p for p in out.rglob(".*")], "temp files left"


def test_under_torchrun_any_error_of_rank_0s_writes_stops_every_rank(tmp_path):
    """As above with an error other than an OSError (a UserInputError: a folder that no longer takes files) at rank
    0's second checkpoint: rank 0 says its own line, the other that rank 0 could not write; neither waits."""
    out = tmp_path / "run"
    argv = [str(a) for a in [*TR, "--steps", "3", "--checkpoint-every", "1", "--log-every", "1", "--out", out]]
    got = _two_ranks(argv, out, "checkpoint.pt", 2, refused=True)
    one_line_error(*got[0], "the folder takes no files")
    one_line_error(*got[1], "rank 0 could not write in the run folder")


def test_the_deadline_stops_a_run_one_step_early():
    """A step that would end past the deadline is not started: a call killed mid-step loses its last checkpoint."""
    import time
    from types import SimpleNamespace

    from refine.train.common import time_is_up

    cfg = SimpleNamespace(max_minutes=0.0, deadline=1000.0)
    assert not time_is_up(cfg, time.perf_counter(), now_wall=900.0)
    assert not time_is_up(cfg, time.perf_counter(), now_wall=900.0, ahead=99.0)
    assert time_is_up(cfg, time.perf_counter(), now_wall=900.0, ahead=101.0)
    assert time_is_up(cfg, time.perf_counter(), now_wall=1001.0)
    limited = SimpleNamespace(max_minutes=1.0, deadline=0.0)  # one minute, 30 s of it gone
    t_run = time.perf_counter() - 30.0
    assert not time_is_up(limited, t_run, ahead=20.0) and time_is_up(limited, t_run, ahead=40.0)
    assert not time_is_up(SimpleNamespace(max_minutes=0.0, deadline=0.0), t_run, ahead=1e9)  # no limit set
