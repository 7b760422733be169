"""File helpers: atomic writes, JSON, camera files, and the one error type the CLI turns into a one-line message."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


class UserInputError(Exception):
    """Bad input from the user (missing/corrupt file, wrong size, impossible path, unwritable output).

    The CLI prints `worldgen: error: <message>` and exits with code 2; no traceback.
    """


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success rename it over `path`, on error delete it.

    A crash therefore never leaves a half-written file at `path`. A folder that cannot take the file is a
    UserInputError, unless its disk is full (ENOSPC, EDQUOT: the machine's, not the input's; the OSError stands).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise UserInputError(f"cannot write to {path.parent}: {e.strerror or e}") from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append `text` (UTF-8) to the file at `path`, made if missing, whole or not at all: a write that fails (a full
    disk) cuts the file back to what it held and raises, so a log of lines (a training run's log.jsonl, which a
    resumed run appends to) never keeps half a line."""
    data = memoryview(text.encode("utf-8"))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data):]
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def check_writable_dir(path: str | os.PathLike) -> Path:
    """`path` as an output folder, checked before a command works: UserInputError (one line) unless it is a folder,
    or could be made as one, that this process may write in (a hidden probe file is made and deleted at once in the
    folder, or in its nearest existing parent). Creates nothing: a command makes its folder when it writes its first
    output (`atomic_write` makes missing parents), so one that fails before leaves no empty folder behind."""
    path = probe = Path(path)
    try:
        if path.exists():
            if not path.is_dir():
                raise UserInputError(f"output directory {path} is a file, not a directory")
            probe = path
        else:
            probe = path.parent
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
            if not probe.is_dir():
                raise UserInputError(f"output directory {path} cannot be made: {probe} is a file, not a directory")
        fd, tmp = tempfile.mkstemp(prefix=".probe.", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        where = "" if probe == path else f" (in {probe}, where it would be made)"
        raise UserInputError(f"output directory {path} is not writable: {e.strerror or e}{where}") from None
    return path


def os_error_line(e: OSError) -> str:
    """One line for an OSError that reached a command's top (a full disk, a name too long, a file gone mid-run):
    what the system said and the file it said it of."""
    what = e.strerror or str(e) or type(e).__name__
    return f"{what}: {e.filename}" if e.filename else what


def check_output_file(path: str | os.PathLike, suffixes: tuple[str, ...] = (), option: str = "--out") -> Path:
    """`path` as a file a command may write when its work is done, checked before the work (a script's figures
    come after minutes of flights): not a folder, one of `suffixes` (lower case, with the dot) when given, and a
    folder that takes files, or could be made to (made only when the file is written); else UserInputError naming
    `option`."""
    p = Path(path)
    if p.is_dir():
        raise UserInputError(f"{option} {p} is a directory; give a file name")
    if suffixes and p.suffix.lower() not in suffixes:
        raise UserInputError(f"{option} {p}: the name must end in {' or '.join(suffixes)}")
    check_writable_dir(p.parent)
    return p


def json_ready(x):
    """A copy of `x` that `json.dumps` writes as strict JSON: floats rounded to 6 places, inf/-inf as
    "inf"/"-inf", nan as null, tensors and numpy values as lists and numbers, tuples as lists, paths
    as strings (recursively)."""
    if isinstance(x, float):
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return round(x, 6)
    if isinstance(x, dict):
        return {str(k): json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_ready(v) for v in x]
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    if hasattr(x, "tolist"):  # torch tensors, numpy arrays and scalars
        return json_ready(x.tolist())
    return x


CAMERAS_CONVENTION = "OpenCV axes, c2w camera-to-world, pixel centres at +0.5"


def save_cameras_json(path: str | os.PathLike, cameras: list[dict]) -> None:
    """Write a camera path, atomically: `{"convention": ..., "frames": cameras}` with one
    `Camera.to_dict()` (width, height, fx, fy, cx, cy, c2w) per frame (what `worldgen view` reads)."""
    atomic_write_text(path, json.dumps({"convention": CAMERAS_CONVENTION, "frames": cameras}, indent=1))


def save_npy(path: str | os.PathLike, array) -> None:
    """Write a numpy array as .npy, atomically."""
    import numpy as np

    with atomic_write(path) as f:
        np.save(f, array)


def save_torch(path: str | os.PathLike, obj) -> None:
    """Write `obj` with `torch.save` (checkpoints, weights files), atomically: serialised in memory first, then
    written to a temp file renamed over `path`. torch.save into a file turns the OSError of a failed write (a full
    disk) into a RuntimeError that names neither the file nor the cause ("enforce fail at inline_container.cc"); here
    that write is the OSError itself (one line at the CLI, exit 1), `path` keeps what it held and no temp file stays.
    Costs a second copy of the file's bytes in memory while it is written."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_write(path) as f:
        f.write(buf.getbuffer())
