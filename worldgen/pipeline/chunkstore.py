"""Where the paged world keeps the chunks that left the working set: host memory, or files on disk.

A chunk is stored as its Gaussians' packed rows (`GaussianScene.pack`: float32 [n, 14], exact), under
a *reference* the store hands out (`put`) and later reads back (`read`). Chunk files on disk are never
overwritten: each `put` makes a new file, so a checkpoint that names a file can always read it back;
`retain` deletes the files no longer named (after a checkpoint is committed, or when resuming from one).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from worldgen.core.scene import PACKED_COLUMNS


class MemoryStore:
    """Chunks held as numpy arrays in host memory (for flights without a run folder). A chunk's rows
    are released when it returns to the working set (`persistent` is False: the world then writes the
    chunk again when it leaves)."""

    persistent = False

    def __init__(self) -> None:
        self._rows: dict[str, np.ndarray] = {}
        self._serial = 0

    def put(self, key: int, rows: np.ndarray) -> str:
        self._serial += 1
        ref = f"{key:016x}-{self._serial}"
        self._rows[ref] = np.ascontiguousarray(rows, dtype=np.float32)
        return ref

    def read(self, ref: str) -> np.ndarray:
        return self._rows[ref]

    def release(self, ref: str) -> None:
        self._rows.pop(ref, None)

    def retain(self, refs: set[str]) -> None:
        for ref in [r for r in self._rows if r not in refs]:
            del self._rows[ref]

    @property
    def bytes(self) -> int:
        """Host memory held by stored chunks."""
        return sum(a.nbytes for a in self._rows.values())


_CHUNK_FILE = re.compile(r"^[0-9a-f]{16}-(\d{8})\.npy$")  # KEY-SERIAL.npy


class DiskStore:
    """Chunks as .npy files in `folder` (created if needed): `KEY-SERIAL.npy`, float32 [n, 14].

    Files are written without fsync when a chunk leaves (cheap); `sync()` makes every file written
    since the last call durable, and is called before a checkpoint that names them is committed.
    `persistent` is True: a chunk read back into the working set keeps its file, so a chunk that
    leaves again unchanged costs no write.
    """

    persistent = True

    def __init__(self, folder: str | os.PathLike, serial: int = 0) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.serial = int(serial)
        self._unsynced: list[Path] = []

    def put(self, key: int, rows: np.ndarray) -> str:
        self.serial += 1
        name = f"{key:016x}-{self.serial:08d}.npy"
        path = self.folder / name
        with open(path, "wb") as f:
            np.save(f, np.ascontiguousarray(rows, dtype=np.float32))
        self._unsynced.append(path)
        return name

    def read(self, ref: str) -> np.ndarray:
        rows = np.load(self.folder / ref, allow_pickle=False)
        if rows.ndim != 2 or rows.shape[1] != PACKED_COLUMNS or rows.dtype != np.float32:
            raise ValueError(f"chunk file {self.folder / ref} is not float32 [n, {PACKED_COLUMNS}]")
        return rows

    def release(self, ref: str) -> None:
        pass  # files go only in `retain`: the last checkpoint may still name this one

    def sync(self) -> None:
        """fsync every chunk file written since the last call, and the folder."""
        self.sync_files(self.take_unsynced())

    def take_unsynced(self) -> list[Path]:
        """The chunk files written since the last `sync` or `take_unsynced` (the caller makes them
        durable with `sync_files`, e.g. on another thread while the flight goes on)."""
        taken, self._unsynced = self._unsynced, []
        return taken

    def sync_files(self, paths: list[Path]) -> None:
        """fsync `paths` (those still there) and the folder. Touches no state of the store: safe on
        another thread while the store is in use."""
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def retain(self, refs: set[str], upto: int | None = None) -> None:
        """Delete every chunk file (and stray temp file) in the folder that `refs` does not name. With
        `upto`, only chunk files of serial <= upto (no temp files, no store state): what a checkpoint
        taken at serial `upto` no longer needs, safe on another thread while newer files are written."""
        for path in self.folder.iterdir():
            if path.name in refs:
                continue
            chunk = _CHUNK_FILE.match(path.name)
            if upto is None:
                if chunk or path.name.startswith("."):
                    path.unlink(missing_ok=True)
            elif chunk and int(chunk.group(1)) <= upto:
                path.unlink(missing_ok=True)
        if upto is None:
            self._unsynced = [p for p in self._unsynced if p.name in refs]

    @property
    def bytes(self) -> int:
        """Host memory held by stored chunks (none: they are on disk)."""
        return 0
