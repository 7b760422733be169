"""Checkpoints of a flight: everything needed to continue it as if it had never stopped.

A checkpoint after frame t holds the generator (its clock, frame t, its world: the working set's
order and a table of chunks whose Gaussians are in chunk files, and its stage times), the sky dome,
the path's state (the autopilot's heading, pitch, climb, ...), every random number generator (torch's,
numpy's, Python's, and any `torch.Generator` the refiner owns, such as the learned refiner's noise)
and the caller's own data. Continuing from it gives the frames an uninterrupted flight gives (bit for
bit on the CPU).

Files, in a run folder's `state/` (`STATE_DIR`):
    checkpoint.pt          the checkpoint (torch.save of plain data; written to a temp file and renamed,
                           so it is always the last complete one)
    sky-VERSION.npy        the sky dome (rewritten only when the dome changed since the last checkpoint)
    chunks/KEY-SERIAL.npy  the world's chunks (`worldgen.pipeline.chunkstore.DiskStore`; one file per page-out)
Files the committed checkpoint does not name are deleted after each commit, and when resuming.
"""

from __future__ import annotations

import copy
import hashlib
import random
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldgen.core.frame import Frame
from worldgen.core.io import UserInputError, atomic_write_text, save_npy, save_torch
from worldgen.pipeline.chunkstore import DiskStore
from worldgen.pipeline.world import PagedWorld

STATE_DIR = "state"
CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = "worldgen-flight-checkpoint-1"


def frame_digest(frame: Frame) -> str:
    """sha256 of a frame's pixels, depth, sky and camera (to tell that a resumed run starts from the same photo)."""
    h = hashlib.sha256()
    for t in (frame.rgb, frame.depth, frame.sky, frame.camera.K, frame.camera.c2w):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def use_disk_chunks(generator, run_dir: str | Path) -> None:
    """Page the generator's world (if it pages) into `run_dir/state/chunks/` instead of host memory;
    call before the first step."""
    world = generator.world
    if isinstance(world, PagedWorld):
        if any(r is not None for r in world.ref):
            raise RuntimeError("the world has stored chunks already; choose its store before the first step")
        world.store = DiskStore(Path(run_dir) / STATE_DIR / "chunks")


# ---------------------------------------------------------------------------- random numbers
def rng_state(refiner: Any) -> dict:
    """Every random number generator a flight may draw from: torch (CPU and CUDA), numpy, Python and
    the refiner's own `torch.Generator`s (attributes holding one, e.g. LearnedRefiner._gen)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *[float(x) for x in np_state[2:]]],
        "python": random.getstate(),
        "refiner": {k: v.get_state() for k, v in vars(refiner).items() if isinstance(v, torch.Generator)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, refiner: Any) -> None:
    """Put back an `rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), int(n[2]), int(n[3]), float(n[4])))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    gens = {k: v for k, v in vars(refiner).items() if isinstance(v, torch.Generator)}
    if set(gens) != set(state["refiner"]):
        raise ValueError(f"the refiner's random generators {sorted(gens)} differ from the checkpoint's "
                         f"{sorted(state['refiner'])}")
    for k, g in gens.items():
        g.set_state(state["refiner"][k])


# ---------------------------------------------------------------------------- plain data <-> torch.save
def host_copy(x: Any) -> Any:
    """A copy of plain data that shares nothing with `x` and holds no device memory: tensors (any device)
    -> detached CPU copies, numpy arrays copied, dicts / lists / tuples recursively, anything else
    deep-copied."""
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", copy=True)
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, dict):
        return {k: host_copy(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # a named tuple
        return type(x)(*(host_copy(v) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(host_copy(v) for v in x)
    return copy.deepcopy(x)


def _to_saved(x: Any) -> Any:
    """numpy arrays -> tensors, recursively (torch.load(weights_only=True) reads tensors, not numpy)."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, dict):
        return {k: _to_saved(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_saved(v) for v in x)
    return x


def _world_from_saved(x: Any) -> Any:
    """tensors -> numpy arrays, recursively (the world and generator checkpoints are numpy)."""
    if isinstance(x, torch.Tensor):
        return x.numpy()
    if isinstance(x, dict):
        return {k: _world_from_saved(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_world_from_saved(v) for v in x]
    return x


# ---------------------------------------------------------------------------- save / load
class Checkpointer:
    """Writes the checkpoints of one flight into `run_dir/state/`.

    `save` takes the state on the calling thread (the device's tensors copied to the host, the new
    chunk files written) and commits it on a writer thread: the fsyncs of the chunk files, the sky
    file, `checkpoint.pt` (atomically) and the deletion of the files the new checkpoint no longer names.
    The flight goes on meanwhile (at 512x512 a commit is ~1 s of disk for 7 M new Gaussians); the
    next `save`, `wait` or `close` waits for it. Until it is done the previous checkpoint stands (its
    files are deleted only after the new one is renamed into place), so a kill -9 at any moment leaves
    one complete checkpoint.

    Args:
        run_dir: the run folder (its lock held by the caller).
        generator: the flight's generator (its world pages into state/chunks/: `use_disk_chunks`).
        path: the flight's CameraPath (or any pilot with `state_dict`).
        refiner: the generator's refiner (its random generators are saved).
        frame0_digest: `frame_digest` of frame 0.
    """

    def __init__(self, run_dir: str | Path, generator, path, refiner, frame0_digest: str):
        self.dir = Path(run_dir) / STATE_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.generator, self.path, self.refiner, self.digest = generator, path, refiner, frame0_digest
        self._sky_version: int | None = None  # version of the dome in the last sky file
        self._sky_file: str | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worldgen-checkpoint")
        self._commit_pending: Future | None = None
        self._failed: BaseException | None = None  # a commit that failed: no later checkpoint is taken

    def save(self, t: int, extra: dict, then_write: tuple[Path, str] | None = None) -> None:
        """Checkpoint the flight after frame t (every output of frames <= t must be on disk already);
        `extra` is the caller's plain data (numbers, strings, lists, dicts); `then_write` = (path,
        text) is written atomically once the checkpoint is committed (run.json: what it says is then
        always resumable). Returns once the state is taken; the commit runs on the writer thread
        (`wait` for it). Re-raises a failed earlier commit, for good: after one no checkpoint is taken
        any more (its sky file or chunk files may never have been made durable)."""
        if self._failed is not None:
            raise self._failed
        self.wait()
        gen = self.generator
        if gen.t != t:
            raise ValueError(f"checkpoint at frame {t}, but the generator is at frame {gen.t}")
        sky = None
        version = gen.sky_version  # (one read from the device)
        if self._sky_version != version or self._sky_file is None:
            name = f"sky-{version:08d}.npy"
            sky = (name, gen.sky.state())
            self._sky_version, self._sky_file = version, name
        world = gen.world
        paged = isinstance(world, PagedWorld) and isinstance(world.store, DiskStore)
        state = gen.checkpoint(durable=not paged)
        # a host copy, taken here: the flight may change anything it shares once we return, and the writer
        # thread must never touch the device (a device-to-host copy there synchronises, which fails while the
        # flight warms up a CUDA graph under the process-wide sync debug mode: worldgen/core/graphs.py)
        blob = host_copy({"format": FORMAT, "t": t, "frame0": self.digest, "generator": state,
                          "sky_file": self._sky_file, "path": self.path.state_dict(), "rng": rng_state(self.refiner),
                          "extra": extra})
        chunks = None
        if paged:
            chunks = (world.store, world.store.take_unsynced(), {r for r in world.ref if r is not None}, world.store.serial)
        self._commit_pending = self._writer.submit(self._commit, blob, sky, chunks, self._sky_file, then_write)

    def _commit(self, blob: dict, sky, chunks, keep_sky: str, then_write: tuple[Path, str] | None) -> None:
        """On the writer thread: make the checkpoint's files durable, rename it into place, delete
        what it no longer names."""
        if sky is not None:
            save_npy(self.dir / sky[0], sky[1])
        if chunks is not None:
            store, unsynced, refs, serial = chunks
            store.sync_files(unsynced)
        save_torch(self.dir / CHECKPOINT_FILE, _to_saved(blob))  # (in memory first: a full disk is an OSError)
        if chunks is not None:
            store.retain(refs, upto=serial)  # files made after this checkpoint was taken stay
        self._delete_skies_but(keep_sky)
        if then_write is not None:
            atomic_write_text(*then_write)

    def wait(self) -> None:
        """Wait until the last `save` is committed (re-raises its failure)."""
        pending, self._commit_pending = self._commit_pending, None
        if pending is not None:
            try:
                pending.result()
            except BaseException as e:
                self._failed = e
                raise

    def close(self) -> None:
        """Wait for the last commit (re-raising its failure), stop the writer thread, and let the world's
        chunk store finish its writes (a run must not leave a thread writing into its folder)."""
        try:
            self.wait()
        finally:
            self._writer.shutdown(wait=True)
            store = getattr(self.generator.world, "store", None)
            if isinstance(store, DiskStore):
                store.close()

    def _collect(self, keep_sky: str) -> None:
        if isinstance(self.generator.world, PagedWorld):
            self.generator.world.collect_garbage()
        self._delete_skies_but(keep_sky)

    def _delete_skies_but(self, keep: str) -> None:
        for p in self.dir.glob("sky-*.npy"):
            if p.name != keep:
                p.unlink(missing_ok=True)

    def restore(self, blob: dict) -> int:
        """Put the generator, the path and the random generators back where `load(...)`'s `blob` left
        them; returns its frame t (the flight continues at t + 1)."""
        if blob["frame0"] != self.digest:
            raise UserInputError(f"cannot resume {self.dir.parent}: its photo (or depth, or camera) differs from "
                                 "the one the run started from")
        try:
            sky = np.load(self.dir / blob["sky_file"], allow_pickle=False)
            self.generator.restore(_world_from_saved(blob["generator"]), sky)
            world = self.generator.world
            if isinstance(world, PagedWorld) and isinstance(world.store, DiskStore):
                for ref in {r for r in world.ref if r is not None}:  # now, not when the flight pages them back
                    world.store.check(ref)
        except (OSError, ValueError) as e:
            raise UserInputError(f"cannot resume {self.dir.parent}: its saved state is damaged "
                                 f"({' '.join(str(e).split())}); --overwrite starts the run again") from None
        self._sky_version, self._sky_file = int(blob["generator"]["sky_version"]), blob["sky_file"]
        self.path.load_state_dict(blob["path"])
        set_rng_state(blob["rng"], self.refiner)
        self._collect(keep_sky=self._sky_file)
        return int(blob["t"])


def load(run_dir: str | Path) -> dict:
    """The checkpoint in `run_dir/state/` (as saved: tensors, numbers, strings); UserInputError (one
    line) if there is none or it is not readable."""
    path = Path(run_dir) / STATE_DIR / CHECKPOINT_FILE
    if not path.is_file():
        raise UserInputError(f"{run_dir} has no checkpoint to resume from ({STATE_DIR}/{CHECKPOINT_FILE} is missing)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  (zip, pickle and torch errors all mean "not a checkpoint")
        raise UserInputError(f"{path} is not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise UserInputError(f"{path} is not a worldgen flight checkpoint (format {FORMAT!r} expected)")
    return blob
