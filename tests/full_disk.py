"""A full disk, for tests: the OSError a write on it raises, and a file object that fills after its first bytes."""

from __future__ import annotations

import errno
import os


def no_space(*_args, **_kwargs):
    """Raise what a write on a full disk raises (any arguments: it stands in for any writing function)."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullFile:
    """`f` (an open file) on a disk with `room` bytes left: a write beyond them writes what fits, then raises ENOSPC."""

    def __init__(self, f, room: int = 1000):
        self.f, self.room = f, room

    def write(self, data):
        if len(data) > self.room:
            self.f.write(data[:self.room] if isinstance(data, str) else bytes(memoryview(data)[:self.room]))
            self.room = 0
            no_space()
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)
