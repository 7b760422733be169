"""Run folders you can trust: one writer at a time, no mixing of runs, no stale temp files.

A run folder (`worldgen fly --out DIR`) holds the outputs of one flight. The rules:

- **One writer.** `RunLock` takes an exclusive `flock` on the folder itself for the whole run; a
  second writer (another run, a resume, an overwrite) fails at once with one line. The kernel drops
  the lock when the process ends, however it ends (kill -9 included), so a lock is never stale.
- **No mixing.** A folder that holds anything is a used folder: a new run refuses it unless it
  resumes the run there, or clears it first (`clear_run`, which deletes only what runs write and
  refuses folders holding anything else).
- **No stale temp files.** Every file is written to a hidden temp file and renamed; a killed run can
  leave such temp files, and `remove_temp_files` deletes them before the folder is used again.
- **Nothing left by a failed start.** `io.check_writable_dir` checks the folder could be made
  and written without making it; `make_out_dir` makes it and says which directory it created, so a run that
  fails before its first frame removes it again.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from pathlib import Path

from worldgen.core.io import UserInputError, check_writable_dir

RUN_ENTRIES = frozenset({"frames", "depth", "state", "video.mp4", "world.ply", "sky.png", "cameras.json",
                         "cameras.jsonl", "config.json", "run.json"})
"""Names a run writes at the top of its folder (anything else is not ours to delete)."""

OUTPUT_MARKERS = frozenset({"run.json", "cameras.jsonl",  # fly
                            "synth_config.json",  # synth
                            "train.json", "checkpoint-compact.pt",  # train, train-depth
                            "worldgen_export.json"})  # export --nerfstudio
"""Names that mark a folder as the output folder of a worldgen command that holds its folder (fly, synth, train,
export --nerfstudio), names no other program is likely to write. Another command puts no files there
(`output_marker`): they would mix into that output, and its command would then refuse the folder as holding what it
does not write. A `config.json` marks one only beside what fly or compare writes with it (`CONFIG_COMPANIONS`):
a folder of the user's own with a config.json in it is not refused for that."""
CONFIG_COMPANIONS = frozenset({"frames", "state", "metrics.json", "video.mp4", "world.ply", "sky.png"})
"""Names that, beside a config.json, mark a fly or compare output folder (see OUTPUT_MARKERS)."""


def is_temp_file(name: str) -> bool:
    """True for the hidden temp files worldgen writes before renaming (`.NAME.XXXX.tmp`,
    `.STEM.tmpPID.mp4`, `.probe.XXXX`)."""
    return name.startswith(".") and (".tmp" in name or name.startswith(".probe."))


def make_out_dir(path: str | os.PathLike) -> Path | None:
    """Make `path` (and missing parents); returns the top-most directory this call created (None if
    `path` existed), which a run that fails before its first frame removes again."""
    path = Path(path)
    top = None
    for p in reversed([path, *path.parents]):
        if not p.exists():
            top = p
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserInputError(f"output directory {path} cannot be made: {e.strerror or e}") from None
    return top


def remove_made_dir(top: Path | None, out: str | os.PathLike) -> None:
    """Undo `make_out_dir` for a run that failed before its first frame: clear run folder `out` of a
    run's outputs, then remove the empty directories from `out` up to `top` (the one it made; None:
    nothing was made, nothing is removed). A folder holding anything else is left alone."""
    if top is None:
        return
    out = Path(out)
    if out.is_dir() and not foreign_entries(out):
        clear_run(out)
    p = out
    while True:
        try:
            p.rmdir()
        except OSError:
            return
        if p == top or p == p.parent:
            return
        p = p.parent


def make_and_lock(path: str | os.PathLike) -> "tuple[Path | None, RunLock]":
    """`make_out_dir(path)`, then a `RunLock` on it: (the top-most directory made, or None; the held lock). A
    folder this made is removed again when the lock cannot be taken (another writer: one line)."""
    made = make_out_dir(path)
    try:
        return made, RunLock(path)
    except BaseException:
        remove_made_dir(made, path)
        raise


def entries(path: str | os.PathLike) -> list[str]:
    """Sorted names in folder `path` (empty if it does not exist)."""
    path = Path(path)
    return sorted(os.listdir(path)) if path.is_dir() else []


def output_marker(path: str | os.PathLike) -> str | None:
    """The first name in folder `path` that marks it as a worldgen command's output folder (`OUTPUT_MARKERS`, or a
    config.json beside one of `CONFIG_COMPANIONS`: a run folder of fly, compare, synth, train, ...), or None (also for
    a folder that does not exist)."""
    names = entries(path)
    marker = next((n for n in names if n in OUTPUT_MARKERS), None)
    if marker is None and "config.json" in names and any(n in CONFIG_COMPANIONS for n in names):
        marker = "config.json"
    return marker


class RunLock:
    """An exclusive lock on run folder `path` (an existing directory) until `release()` (or the end of
    a `with` block, or of the process). UserInputError at once if another writer holds it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise UserInputError(f"cannot open run folder {self.path}: {e.strerror or e}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._fd)
            self._fd = None
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UserInputError(f"run folder {self.path} is in use by another worldgen run "
                                     "(one writer at a time; wait for it or choose another --out)") from None
            raise UserInputError(f"cannot lock run folder {self.path}: {e.strerror or e}") from None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def check_not_in_use(path: str | os.PathLike) -> None:
    """UserInputError (RunLock's one line) if another writer holds run folder `path` now (a folder
    that does not exist is free). Only a first look: the writer takes the lock itself."""
    if Path(path).is_dir():
        RunLock(path).release()


def foreign_entries(path: str | os.PathLike, known=RUN_ENTRIES) -> list[str]:
    """Names in folder `path` that its writer does not write: neither in `known` (a collection of names, or a
    predicate name -> bool; default: what a fly run writes) nor temp files."""
    owns = known if callable(known) else known.__contains__
    return [n for n in entries(path) if not owns(n) and not is_temp_file(n)]


def check_clearable(path: str | os.PathLike) -> None:
    """UserInputError (one line) if run folder `path` holds anything a run does not write, or anything this
    process may not delete."""
    foreign = foreign_entries(path)
    if foreign:
        raise UserInputError(f"--overwrite clears only run folders, and {path} holds {foreign[0]!r}, which no run "
                             "writes; remove it yourself or choose another --out")
    for name in entries(path):
        blocked = _undeletable(Path(path) / name)
        if blocked is not None:
            raise UserInputError(f"--overwrite cannot clear {path}: no permission to delete in {blocked}")


def _undeletable(path: Path) -> Path | None:
    """The first folder under (or at) `path`, or `path`'s own parent, that this process may not delete entries from
    (write and search permission), or None: what deleting `path` would trip over half-way."""
    if not os.access(path.parent, os.W_OK | os.X_OK):
        return path.parent
    if path.is_dir() and not path.is_symlink():
        for root, dirs, _files in os.walk(path):
            if not os.access(root, os.W_OK | os.X_OK):
                return Path(root)
            dirs[:] = [d for d in dirs if not Path(root, d).is_symlink()]
    return None


def clear_run(path: str | os.PathLike) -> None:
    """Delete a run's outputs from folder `path` (hold its `RunLock`). UserInputError, deleting
    nothing, if the folder holds anything a run does not write or anything this process may not delete; one
    line, too, if deleting fails half-way all the same (the folder then holds part of the old run, and says so)."""
    path = Path(path)
    check_clearable(path)
    try:
        _delete_entries(path)
    except OSError as e:
        raise UserInputError(f"--overwrite could not clear {path} (part of the old run is gone, part is left): "
                             f"{e.strerror or e}: {e.filename}") from None


def _delete_entries(path: Path) -> None:
    for name in entries(path):
        p = path / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def remove_temp_files(path: str | os.PathLike) -> int:
    """Delete worldgen's temp files anywhere under run folder `path` (left by a killed run); returns
    how many."""
    n = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            if is_temp_file(f):
                Path(root, f).unlink(missing_ok=True)
                n += 1
    return n


def check_output_folder(path: str | os.PathLike, owns, command: str, option: str = "--out") -> Path:
    """`OutputFolder`'s first look at `path`, making and locking nothing (for a command that checks its output
    before long work, or before it serves): UserInputError (one line, naming `option`) for a file, a place this
    process cannot write, a folder another writer holds (`RunLock`), or one holding a name `command` does not write
    (owns(name) -> bool, for top-level names; temp files aside). Returns `path` as a Path."""
    path = check_writable_dir(path)
    check_not_in_use(path)
    _refuse_foreign(path, owns, command, option)
    return path


def _refuse_foreign(path: Path, owns, command: str, option: str) -> None:
    foreign = foreign_entries(path, owns)
    if foreign:
        raise UserInputError(f"{path} holds {foreign[0]!r}, which `worldgen {command}` does not write "
                             f"(another command's folder?); choose another {option}")


class OutputFolder:
    """The output folder of a command that rewrites its own outputs whole (`worldgen compare`'s report, `worldgen
    synth`'s flights, `worldgen export --nerfstudio`, `worldgen live`'s export), under the run-folder rules: one
    writer (a `RunLock` from construction to `close`), no mixing (a folder holding anything the command does not
    write is refused, in one line: `check_output_folder`; its own earlier outputs are deleted by `replace_earlier`,
    called just before the first write, so a new report never sits beside an old one's plots), nothing left by a
    failed start (a folder this made is removed again if the command fails before `replace_earlier`).

        with OutputFolder(cfg.out, owns=lambda name: ..., command="compare") as out:
            ...                    # checks, the work: out.path is locked, nothing of it changed yet
            out.replace_earlier()  # then write into out.path
    """

    def __init__(self, path: str | os.PathLike, owns, command: str, option: str = "--out"):
        """owns(name) -> bool: whether a top-level name in the folder is one the command writes; `option`: the
        command's option that names the folder (for the one-line refusals)."""
        self.owns, self.command, self.option = owns, command, option
        self.path = check_output_folder(path, owns, command, option)
        self._made, self._lock = make_and_lock(self.path)
        self._writing = False
        try:
            # another writer may have filled it between the first look and the lock
            _refuse_foreign(self.path, owns, command, option)
        except BaseException:
            self.close(failed=True)
            raise

    def replace_earlier(self) -> None:
        """Delete the command's earlier outputs (and stale temp files) from the folder; from now on a failure leaves
        what was written so far, and the folder is kept."""
        self._writing = True
        try:
            _delete_entries(self.path)
        except OSError as e:
            raise UserInputError(f"cannot clear the earlier outputs in {self.path}: {e.strerror or e}: "
                                 f"{e.filename}") from None

    def close(self, failed: bool = False) -> None:
        if failed and not self._writing:
            remove_made_dir(self._made, self.path)
        self._lock.release()

    def __enter__(self) -> "OutputFolder":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(failed=exc_type is not None)
