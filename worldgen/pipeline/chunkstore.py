"""Where the paged world keeps the chunks that left the working set: host memory, or files on disk.

A chunk is stored as its Gaussians' packed rows (`GaussianScene.pack`: float32 [n, 14], exact), under
a *reference* the store hands out (`put`, or `put_many` for the chunks that leave together) and later
reads back (`read`). Chunk files on disk are never overwritten: each `put` or `put_many` makes a new file
(`put_many`: one file for all its chunks, each referenced as `FILE:START:STOP`, its rows of the file), so a
checkpoint that names a file can always read it back; `retain` deletes the files no longer named (after a
checkpoint is committed, or when resuming from one).
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
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

    def put_many(self, items: list[tuple[int, np.ndarray]]) -> list[str]:
        """`put` for each (key, rows) of `items`; their references, in order."""
        return [self.put(key, rows) for key, rows in items]

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


_CHUNK_FILE = re.compile(r"^[0-9a-f]{16}-(\d{8})\.npy$")  # KEY-SERIAL.npy (put_many: the first chunk's key)


def _file_of(ref: str) -> str:
    """The chunk file a reference names: `FILE` or `FILE:START:STOP`."""
    return ref.split(":", 1)[0]


class DiskStore:
    """Chunks as .npy files in `folder` (created if needed): `KEY-SERIAL.npy`, float32 [n, 14].

    Files are written without fsync when a chunk leaves (cheap), on a writer thread of their own: the
    flight never waits for the disk while it pages (`background`; a chunk being written is read back
    from memory). The chunks written or read last stay in memory too, up to `cache_mb` (so a chunk
    that comes back soon after it left is not read from disk). `sync_files` (the checkpoint's commit, on
    its own thread) waits for the files it is given to be written, then makes them durable; a failed
    write is raised by the next `put`, `flush`, `sync_files` or `read` of it. `persistent` is True: a
    chunk read back into the working set keeps its file, so a chunk that leaves again unchanged costs
    no write.
    """

    persistent = True
    MAX_PENDING = 256
    """File writes queued at most (a `put` or a `put_many` each); `put` waits for the oldest beyond that (bounds
    the memory they hold, together with the page-outs' sizes: the working set at most)."""

    def __init__(self, folder: str | os.PathLike, serial: int = 0, cache_mb: float = 256.0,
                 background: bool = True) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.serial = int(serial)
        self._unsynced: list[Path] = []
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()  # name -> rows, least recently used first
        self._cache_bytes, self._cache_cap = 0, int(cache_mb * 2**20)
        self._lock = threading.Lock()  # guards _writing and _error (the writer and commit threads read them)
        self._writing: dict[str, Future] = {}  # name -> its write, until done
        self._error: BaseException | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worldgen-chunks") if background else None

    def put(self, key: int, rows: np.ndarray) -> str:
        # a copy of its own: the caller's array may be a slice of a far larger one (which the cache would keep
        # alive) or be reused; read-only, since `read` hands out this very array
        rows = np.array(rows, dtype=np.float32, order="C", copy=True)
        name = self._submit(key, rows)
        self._remember(name, rows)
        return name

    def put_many(self, items: list[tuple[int, np.ndarray]]) -> list[str]:
        """Store the chunks of `items` [(key, rows [n, 14])] in ONE new file (their rows one after the other);
        returns their references (`FILE:START:STOP`), in order. One file write for all the chunks that leave
        together: a file per chunk made the writer thread, which needs the interpreter for every file, the
        flight's bottleneck (up to 9 ms per frame at 512x512 on an H200 late in a 10,000-frame flight)."""
        if not items:
            return []
        # each chunk a copy of its own for the memory cache (a view would keep the whole file's rows alive, beyond
        # what `cache_mb` counts), and their concatenation for the file (held only until it is written)
        parts = [np.array(np.asarray(r, dtype=np.float32).reshape(-1, PACKED_COLUMNS), order="C", copy=True)
                 for _, r in items]
        name = self._submit(items[0][0], np.concatenate(parts))
        refs, start = [], 0
        for part in parts:
            stop = start + len(part)
            ref = f"{name}:{start}:{stop}"
            part.flags.writeable = False
            self._remember(ref, part)
            refs.append(ref)
            start = stop
        return refs

    def _submit(self, key: int, rows: np.ndarray) -> str:
        """Write `rows` (made read-only: `read` hands them out) to a new file, on the writer thread; its name."""
        self._raise_failed()
        self.serial += 1
        name = f"{key:016x}-{self.serial:08d}.npy"
        path = self.folder / name
        rows.flags.writeable = False
        if self._pool is None:
            _write_rows(path, rows)
        else:
            oldest = self._oldest_write() if len(self._writing) >= self.MAX_PENDING else None
            if oldest is not None:
                self._raise_failed(oldest)  # waits for it
            fut = self._pool.submit(_write_rows, path, rows)
            with self._lock:
                self._writing[name] = fut
            fut.add_done_callback(lambda f, name=name: self._written(name, f))
        self._unsynced.append(path)
        return name

    def _open(self, ref: str, mmap: str | None) -> tuple[np.ndarray, tuple[int, int] | None]:
        """(the rows of chunk `ref`'s file, memory-mapped when `ref` is a span of it or `mmap` is "r"; the span or None).
        ValueError (one line naming the file) for a file that is missing, cut short or not float32 [n, 14]."""
        name, *span = ref.split(":")
        path = self.folder / name
        try:
            rows = np.load(path, allow_pickle=False, mmap_mode="r" if span else mmap)
        except (OSError, ValueError) as e:
            raise ValueError(f"chunk file {path} cannot be read: {' '.join(str(e).split())}") from None
        if rows.ndim != 2 or rows.shape[1] != PACKED_COLUMNS or rows.dtype != np.float32:
            raise ValueError(f"chunk file {path} is not float32 [n, {PACKED_COLUMNS}]")
        if not span:
            return rows, None
        start, stop = int(span[0]), int(span[1])
        if not 0 <= start <= stop <= rows.shape[0]:
            raise ValueError(f"chunk file {path} has {rows.shape[0]} rows, not rows {start}:{stop}")
        return rows, (start, stop)

    def check(self, ref: str) -> None:
        """ValueError (one line) unless chunk `ref`'s file can be read (its header and size; no rows are read): for a
        store opened over files on disk (a resumed run), before any is needed."""
        self._open(ref, mmap="r")

    def read(self, ref: str) -> np.ndarray:
        """The rows of chunk `ref` (read-only: from memory when it is there, as it always is while being written)."""
        rows = self._cache.get(ref)
        if rows is not None:
            self._cache.move_to_end(ref)
            self._trim(keep=ref)
            return rows
        rows, span = self._open(ref, mmap=None)
        if span:  # one chunk of a file of several
            rows = np.array(rows[span[0]:span[1]])
        rows.flags.writeable = False
        self._remember(ref, rows)
        return rows

    def release(self, ref: str) -> None:
        pass  # files go only in `retain`: the last checkpoint may still name this one

    def flush(self) -> None:
        """Wait until every chunk file put so far is written (re-raises a failed write)."""
        with self._lock:
            pending = list(self._writing.values())
        for fut in pending:
            self._raise_failed(fut)  # waits for it
        self._raise_failed()
        self._trim()

    def close(self) -> None:
        """`flush`, then stop the writer thread (a later `put` writes on the caller's thread)."""
        try:
            self.flush()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def sync(self) -> None:
        """fsync every chunk file written since the last call, and the folder."""
        self.sync_files(self.take_unsynced())

    def take_unsynced(self) -> list[Path]:
        """The chunk files put since the last `sync` or `take_unsynced` (the caller makes them durable
        with `sync_files`, e.g. on another thread while the flight goes on)."""
        taken, self._unsynced = self._unsynced, []
        return taken

    def sync_files(self, paths: list[Path]) -> None:
        """Wait for `paths` to be written, then fsync them (those still there) and the folder. Safe on
        another thread while the store is in use."""
        with self._lock:
            pending = [self._writing.get(p.name) for p in paths]
        for fut in pending:
            if fut is not None:
                self._raise_failed(fut)  # waits for it: a failed write fails the checkpoint that names it
        self._raise_failed()  # (or any earlier failed write)
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
        if upto is None:
            self.flush()
        else:  # a file of serial <= upto still being written would appear after the deletion
            with self._lock:
                pending = [f for n, f in self._writing.items() if int(n[17:25]) <= upto]
            for fut in pending:
                fut.exception()
        files = {_file_of(r) for r in refs}
        for path in self.folder.iterdir():
            if path.name in files:
                continue
            chunk = _CHUNK_FILE.match(path.name)
            if upto is None:
                if chunk or path.name.startswith("."):
                    path.unlink(missing_ok=True)
            elif chunk and int(chunk.group(1)) <= upto:
                path.unlink(missing_ok=True)
        if upto is None:
            self._unsynced = [p for p in self._unsynced if p.name in files]
            for name in [n for n in self._cache if n not in refs]:
                self._cache_bytes -= self._cache.pop(name).nbytes

    @property
    def bytes(self) -> int:
        """Host memory held by chunks kept in memory (the cache, and those being written)."""
        return self._cache_bytes

    # ------------------------------------------------------------------ internals
    def _remember(self, name: str, rows: np.ndarray) -> None:
        """Keep `rows` in memory (then `_trim`)."""
        if name not in self._cache:
            self._cache[name] = rows
            self._cache_bytes += rows.nbytes
        self._trim(keep=name)

    def _trim(self, keep: str | None = None) -> None:
        """Forget the least recently used chunks beyond `cache_mb`, never one being written (`read` serves
        those from here) nor `keep`. On the flight's thread only (put, read, flush)."""
        if self._cache_bytes <= self._cache_cap:
            return
        with self._lock:
            busy = set(self._writing)
        for old in list(self._cache):
            if self._cache_bytes <= self._cache_cap:
                break
            if _file_of(old) not in busy and old != keep:
                self._cache_bytes -= self._cache.pop(old).nbytes

    def _written(self, name: str, fut: Future) -> None:
        """On the writer thread, when `name` is written (or failed)."""
        with self._lock:
            self._writing.pop(name, None)
            if fut.exception() is not None and self._error is None:
                self._error = fut.exception()

    def _oldest_write(self) -> Future | None:
        with self._lock:
            return next(iter(self._writing.values()), None)

    def _raise_failed(self, fut: Future | None = None) -> None:
        """Raise OSError if a write failed: `fut` (waited for) or any earlier one. (A future's waiters wake
        before its done-callbacks run, so `fut`'s own failure is read from it, not from `_error`.)"""
        err = fut.exception() if fut is not None else None
        with self._lock:
            if err is not None and self._error is None:
                self._error = err
            err = self._error
        if err is not None:
            raise OSError(f"writing a chunk file in {self.folder} failed: {err}") from err


def _write_rows(path: Path, rows: np.ndarray) -> None:
    """Write chunk file `path` (no fsync: `DiskStore.sync_files` does that); a write that fails (a full disk)
    deletes what it wrote, so no chunk file is ever cut short under its name (a kill -9 may still leave one, which
    no checkpoint names: `retain` deletes it)."""
    try:
        with open(path, "wb") as f:
            np.save(f, rows)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
