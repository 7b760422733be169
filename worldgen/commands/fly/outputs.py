"""What `worldgen fly` writes as it flies, streamed: memory stays flat however long the flight.

- frames/NNNNN.png (and depth/NNNNN.npy): encoded on writer threads as the frames come, each file
  atomically; at most `MAX_IN_FLIGHT` frames wait for a writer (the flight waits for them otherwise).
- video.mp4: each frame goes to the encoder when it is made (`VideoWriter`, its own thread, in order);
  the stream lives in a hidden temp file until `finish` renames it. Resuming re-encodes the frames
  already on disk (lossless PNGs: the same pixels) before the new ones.
- cameras.jsonl: one line per frame, appended as the frames come (`flush` makes it durable before
  each checkpoint; a resume cuts it back to the checkpoint's frame). `finish` writes cameras.json
  (what `worldgen view` and `worldgen export` read) from it, atomically.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from worldgen.core.camera import Camera
from worldgen.core.frame import Frame
from worldgen.core.images import VideoWriter, save_png_u8, to_uint8
from worldgen.core.io import CAMERAS_CONVENTION, UserInputError, atomic_write, save_npy

MAX_IN_FLIGHT = 8
"""Frames that may wait for the PNG writers and the video encoder before the flight waits for them."""


def frame_name(t: int) -> str:
    return f"{t:05d}"


def resume_gap(out: Path, n: int) -> str | None:
    """Why run folder `out` cannot go on after frame n - 1 (a camera line or a frame PNG of 0 .. n - 1 missing:
    a folder whose files were moved or deleted since its checkpoint), or None. Reads only."""
    path = Path(out) / "cameras.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.is_file() else []
    have = sum(ln.endswith("\n") for ln in lines)
    if have < n:
        return f"{out}/cameras.jsonl holds {have} cameras, its checkpoint needs {n}: the run cannot go on"
    missing = [t for t in range(n) if not (Path(out) / "frames" / f"{frame_name(t)}.png").is_file()]
    if missing:
        return f"{out}/frames/{frame_name(missing[0])}.png is missing, its checkpoint needs it: the run cannot go on"
    return None


class RunOutputs:
    """The streamed outputs of one flight in run folder `out` (its lock held by the caller).

    Args:
        out: the run folder.
        fps: video frame rate; video: write video.mp4; depth_maps: write depth/NNNNN.npy.
        start: frames already made (a resumed run): frames/, depth/ and cameras.jsonl are cut back to
            frames 0 .. start-1, and those frames are encoded into the video first.
    """

    def __init__(self, out: Path, *, fps: int, video: bool, depth_maps: bool, start: int = 0):
        self.out, self.depth_maps, self.frames = Path(out), depth_maps, int(start)
        (self.out / "frames").mkdir(exist_ok=True)
        if depth_maps:
            (self.out / "depth").mkdir(exist_ok=True)
        self._cut_back(start)
        self._cams = open(self.out / "cameras.jsonl", "a", encoding="utf-8")
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="worldgen-png")
        self._enc = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worldgen-video")
        self._slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self._pending: list[Future] = []
        self.video = VideoWriter(self.out / "video.mp4", fps) if video else None
        if self.video is not None:
            for t in range(start):  # a resumed run: the frames so far, from their lossless PNGs
                from PIL import Image

                with Image.open(self.out / "frames" / f"{frame_name(t)}.png") as im:
                    self.video.append(np.asarray(im.convert("RGB")))

    # ------------------------------------------------------------------ resume
    def _cut_back(self, n: int) -> None:
        """Remove frames >= n from frames/, depth/ and cameras.jsonl (a run resumed after frame n - 1); what
        `resume_gap` would name is a UserInputError, raised before anything is removed."""
        gap = resume_gap(self.out, n)
        if gap is not None:
            raise UserInputError(gap)
        for sub in ("frames", "depth"):
            d = self.out / sub
            if d.is_dir():
                for p in d.iterdir():
                    stem = p.name.split(".")[0]
                    if not stem.isdigit() or int(stem) >= n:
                        p.unlink(missing_ok=True)
        path = self.out / "cameras.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.exists() else []
        complete = [ln for ln in lines if ln.endswith("\n")]
        if len(lines) != n:
            with atomic_write(path, "w") as f:
                f.writelines(complete[:n])

    # ------------------------------------------------------------------ frames
    def _wait(self, fut: Future) -> None:
        fut.add_done_callback(lambda _f: self._slots.release())

    def add(self, t: int, frame: Frame, camera: Camera) -> None:
        """Queue frame t's files and append its camera (frames come in order: t = 0, 1, 2, ...)."""
        if t != self.frames:
            raise ValueError(f"frame {t} given after {self.frames} frames")
        img = to_uint8(frame.rgb)
        name = frame_name(t)
        self._slots.acquire()
        fut = self._pool.submit(save_png_u8, self.out / "frames" / f"{name}.png", img)
        self._wait(fut)
        self._pending.append(fut)
        if self.depth_maps:
            depth = frame.depth.detach().float().cpu().numpy()
            self._slots.acquire()
            fut = self._pool.submit(save_npy, self.out / "depth" / f"{name}.npy", depth)
            self._wait(fut)
            self._pending.append(fut)
        if self.video is not None:
            self._slots.acquire()
            fut = self._enc.submit(self.video.append, img)
            self._wait(fut)
            self._pending.append(fut)
        self._cams.write(json.dumps(camera.to("cpu").to_dict()) + "\n")
        self.frames += 1
        self._reap()

    def _reap(self) -> None:
        """Drop finished writes (re-raising the first failure)."""
        still = []
        for f in self._pending:
            if f.done():
                f.result()
            else:
                still.append(f)
        self._pending = still

    def flush(self) -> None:
        """Wait until every frame so far is on disk (PNGs, depth maps) and cameras.jsonl is durable."""
        for f in self._pending:
            f.result()
        self._pending = []
        self._cams.flush()
        os.fsync(self._cams.fileno())

    # ------------------------------------------------------------------ the end
    def finish(self) -> None:
        """Flush, close the video (renamed to video.mp4) and write cameras.json from cameras.jsonl."""
        try:
            self.flush()
        finally:
            self._pool.shutdown(wait=True)
            self._enc.shutdown(wait=True)
            self._cams.close()
        if self.video is not None:
            if self.frames:
                self.video.close()
            else:
                self.video.abort()
        self.write_cameras_json()

    def abort(self) -> None:
        """Stop writing: wait for queued files, delete the unfinished video stream."""
        for ex in (self._pool, self._enc):
            ex.shutdown(wait=True, cancel_futures=True)
        if not self._cams.closed:
            self._cams.close()
        if self.video is not None:
            self.video.abort()

    def write_cameras_json(self) -> None:
        """cameras.json (`{"convention": ..., "frames": [...]}`), streamed from cameras.jsonl, atomically."""
        src = self.out / "cameras.jsonl"
        with atomic_write(self.out / "cameras.json", "w") as f, open(src, encoding="utf-8") as lines:
            f.write(json.dumps({"convention": CAMERAS_CONVENTION})[:-1] + ', "frames": [\n')
            first = True
            for ln in lines:
                if not ln.endswith("\n"):
                    break  # a line cut by a kill: not a camera
                f.write(("" if first else ",\n") + ln.rstrip("\n"))
                first = False
            f.write("\n]}\n")
