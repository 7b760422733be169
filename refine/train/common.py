"""Training machinery shared by the refiner and the depth network: processes (torchrun), the run
folder (one writer, nothing left by a failed start), checkpoints, the still photos, GPU utilisation, the learning-rate
schedule, per-step seeds, images and curves."""

from __future__ import annotations

import contextlib
import math
import os
import threading
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor


class Dist:
    """This process's place in a torchrun job (rank 0 of 1 without one)."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        want_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for, but CUDA is not available on this machine")
        # More processes than GPUs share them round-robin (their Python work then overlaps on each
        # GPU); NCCL cannot put two ranks on one GPU, so such jobs average gradients through gloo.
        ngpu = torch.cuda.device_count() if want_cuda else 0
        self.device = torch.device(f"cuda:{local % ngpu}") if want_cuda else torch.device("cpu")
        if want_cuda:
            torch.cuda.set_device(self.device)
        self.nccl = want_cuda and int(os.environ.get("LOCAL_WORLD_SIZE", "1")) <= ngpu
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.nccl else "gloo")
        self.unwritten: Exception | None = None  # rank 0's failed write, until the others hear of it (`writes`)

    def _reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum `t` over processes (through the host when the backend is gloo)."""
        if self.nccl or t.device.type == "cpu":
            dist.all_reduce(t)
            return t
        h = t.cpu()
        dist.all_reduce(h)
        return h.to(t.device)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean_grads(self, params: list[torch.nn.Parameter]) -> None:
        """Average gradients over processes (one all-reduce of all of them, flattened)."""
        if self.world == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = self._reduce(torch.cat([g.reshape(-1) for g in grads])) / self.world
        i = 0
        for p, g in zip(params, grads):
            n = g.numel()
            p.grad = flat[i:i + n].view_as(p).clone()
            i += n

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each key's mean over the processes that logged it. Processes may log different keys (a
        still-photo step's terms depend on the kind of path each process drew), so the keys are
        gathered first; every process must call this at the same step (it is a collective)."""
        if self.world == 1:
            return values
        gathered: list[list[str] | None] = [None] * self.world
        dist.all_gather_object(gathered, sorted(values))
        keys = sorted(set().union(*gathered))
        if not keys:
            return {}
        rows = [[values.get(k, 0.0), 1.0 if k in values else 0.0] for k in keys]
        t = self._reduce(torch.tensor(rows, dtype=torch.float64, device=self.device))
        return {k: s / n for k, (s, n) in zip(keys, t.tolist()) if n > 0}

    def any(self, flag: bool) -> bool:
        """Whether `flag` holds in any process (`flag` itself on one process). A collective: every process calls it
        at the same point. Its all-reduce also tells every process whether a write of rank 0's failed (`writes`):
        then all of them stop here, rank 0 raising its own error, the others an OSError of one line saying that
        rank 0 could not write (they used to wait for rank 0 in their next collective until torchrun ended them)."""
        if self.world == 1:
            return flag
        t = self._reduce(torch.tensor([1.0 if flag else 0.0, 0.0 if self.unwritten is None else 1.0],
                                      device=self.device))
        hit, failed = t.tolist()
        if failed > 0:
            e, self.unwritten = self.unwritten, None
            raise e or OSError("rank 0 could not write in the run folder (its line says why)")
        return hit > 0

    @contextlib.contextmanager
    def writes(self):
        """Around a write of rank 0's in the run folder (a checkpoint, a log line, a sample, the end's files). On one
        process nothing more: an error (an OSError of a full disk; a UserInputError of a folder that no longer takes
        files) leaves the block and goes up as raised. Under torchrun rank 0 keeps it instead (the rest of the block
        is skipped) and goes on to the next `any` or `stop_if_unwritten`, where every process stops with it; raising
        it at once would leave the others waiting for rank 0 in that collective. (KeyboardInterrupt and the like go
        up at once: torchrun ends every rank then.)"""
        if self.world == 1:
            yield
            return
        try:
            yield
        except Exception as e:  # noqa: BLE001 (any error: each would leave the others waiting)
            self.unwritten = self.unwritten or e

    def stop_if_unwritten(self) -> None:
        """Every process stops here if a write of rank 0's failed (`writes`; as in `any`), for writes that no `any`
        of the loop follows soon (a checkpoint, the end's files). A collective; nothing on one process."""
        self.any(False)


TRAIN_OUTPUTS = ("log.jsonl", "samples", "loss.png", "psnr.png", "detail.png", "photo.png")
"""What a training run writes in its folder before its first checkpoint (removed again when the run fails
before that checkpoint in a folder it made)."""


TRAIN_ENTRIES = TRAIN_OUTPUTS + ("checkpoint.pt", "checkpoint-compact.pt", "refiner.pt", "depth.pt", "train.json")
"""Every name a training run (the refiner's or the depth network's) writes at the top of its folder: a folder
holding anything else is another command's (a fly run, a user's files), and training refuses it."""


def cut_log(out: str | os.PathLike, step: int) -> int:
    """Drop the lines of `out`/log.jsonl logged after training step `step` (the checkpoint a run resumes from): a run
    stopped between checkpoints (kill -9, a full disk) logged steps its resumed run trains and logs again, which
    would then appear twice. Lines that are not JSON records with a "step" go too. Rewritten atomically, only when
    something goes; returns the number of lines dropped (0 where there is no log)."""
    import json

    from worldgen.core.io import atomic_write_text

    path = Path(out) / "log.jsonl"
    try:
        lines = path.read_text().splitlines(keepends=True)
    except FileNotFoundError:
        return 0

    def keep(line: str) -> bool:
        try:
            rec = json.loads(line)
            return isinstance(rec, dict) and int(rec["step"]) <= step
        except (ValueError, KeyError, TypeError):
            return False

    kept = [line if line.endswith("\n") else line + "\n" for line in lines if keep(line)]
    if len(kept) < len(lines):
        atomic_write_text(path, "".join(kept))
    return len(lines) - len(kept)


def resume_source(out: str | os.PathLike) -> Path:
    """The checkpoint a training run in folder `out` resumes from: checkpoint.pt (full: bit-exact) when there is
    one, else checkpoint-compact.pt (the copy that travels); the path may not exist (then the run starts afresh)."""
    full = Path(out) / "checkpoint.pt"
    return full if full.is_file() else Path(out) / "checkpoint-compact.pt"


def stopped(e: OSError, out: str | os.PathLike, fmt: str, command: str, steps: int, resume: bool = True) -> OSError:
    """The one line for an OSError that stopped a training run in its folder `out` (a full disk): what the system
    said, and what of the run stands: the checkpoint (of format `fmt`) a rerun of `worldgen COMMAND` resumes from
    (`resume_source`) and its step, or none (the run starts again). Checkpoints are written atomically
    (`worldgen.core.io.save_torch`), so the one on disk is the last complete one."""
    from worldgen.core.io import os_error_line

    src = resume_source(out)
    try:
        step = int(load_training_checkpoint(src, fmt)["step"]) if src.is_file() else None
    except (ValueError, KeyError, TypeError):  # (not one: a rerun says so in its own line)
        step = None
    again = f"`worldgen {command} --out {out}` with the same settings{'' if resume else ' but --resume'}"
    if step is None:
        stands = f"no checkpoint of the run in {out} stands: once there is space, {again} starts it again"
    elif step >= steps:  # (the end's files are what failed: a rerun writes them without training, check_steps_left)
        stands = (f"the run in {out} has all its {step:,} steps in its last checkpoint, {src.name}, but not all the "
                  f"files its end writes: once there is space, {again} writes them ({src.name} also loads as its "
                  "weights)")
    else:
        stands = (f"the run in {out} stands at its last checkpoint, {src.name} (step {step:,}): once there is space, "
                  f"{again} resumes from it")
    return OSError(e.errno, f"{os_error_line(e)}; {stands}")


def end_written(out: str | os.PathLike, weights: str) -> bool:
    """Whether the files the end of the run in folder `out` writes are there for its last checkpoint
    (`resume_source`): its weights file `weights` (refiner.pt, depth.pt) and train.json, the end's last file (after
    the weights and the curves), each no older than the checkpoint. A run whose end failed (a full disk) lacks one of
    them, or still holds those of an earlier, shorter run into the same folder."""
    ckpt = resume_source(out)
    if not ckpt.is_file():
        return False
    made = ckpt.stat().st_mtime_ns
    return all((Path(out) / name).is_file() and (Path(out) / name).stat().st_mtime_ns >= made
               for name in (weights, "train.json"))


def check_steps_left(out: str | os.PathLike, start: int, steps: int, weights: str, dd: Dist) -> bool:
    """Whether the run in `out`, resumed at step `start`, has steps left of `steps` to train. When its checkpoint
    holds exactly `steps` but the end's files are not written for it (`end_written`: the end failed, e.g. on a full
    disk), False: the run writes its end (weights file `weights`, curves, train.json) from the checkpoint without
    training. Otherwise, with nothing left to train, UserInputError (one line). Every process of `dd` gets rank 0's
    answer (a collective: call it in all of them)."""
    if start < steps:
        return True
    if dd.any(dd.main and start == steps and not end_written(out, weights)):
        return False
    from worldgen.core.io import UserInputError

    raise UserInputError(f"{out} is at step {start} already (of --steps {steps}); nothing to train "
                         "(a larger --steps goes on from it)")


class TrainingFolder:
    """The run folder `out` of a training run, for the run's duration (a `with` block): checked and made
    (`worldgen.core.io.check_writable_dir`, `worldgen.core.runfolder.make_out_dir`: one line for a file or an
    unwritable place) and locked (RunLock: a second writer fails at once with one line) by the process that writes
    it (rank 0 of `dd`; other torchrun processes only read it); a folder holding names no training run writes
    (`TRAIN_ENTRIES`) is refused with one line. Under torchrun every process learns whether rank 0 got the
    folder (one collective), so when it did not, all of them stop with one line instead of waiting in their
    first collective for torchrun to end them. A run that fails before `saved()` (its first checkpoint) in a
    folder it made removes what it wrote and the folder again (remove_made_dir)."""

    def __init__(self, out: str | os.PathLike, dd: Dist):
        self.out, self.dd, self.main = Path(out), dd, dd.main
        self.made = None
        self.lock = None
        self._saved = False

    def __enter__(self) -> "TrainingFolder":
        from worldgen.core.io import UserInputError
        from worldgen.core.io import check_writable_dir
        from worldgen.core.runfolder import make_and_lock

        refused = None
        if self.main:
            try:
                check_writable_dir(self.out)
                self._check_foreign()
                self.made, self.lock = make_and_lock(self.out)
                self._check_foreign()  # (filled between the first look and the lock)
            except UserInputError as e:
                refused = e
        if self.dd.any(refused is not None):
            raise refused or UserInputError(f"{self.out}: rank 0 could not take the run folder (its line says why)")
        return self

    def _check_foreign(self) -> None:
        from worldgen.core.io import UserInputError
        from worldgen.core.runfolder import foreign_entries

        foreign = foreign_entries(self.out, TRAIN_ENTRIES)
        if foreign:
            if self.lock is not None:
                self.lock.release()
                self.lock = None
            raise UserInputError(f"{self.out} holds {foreign[0]!r}, which a training run does not write (another "
                                 "command's folder?); choose another --out")

    def saved(self) -> None:
        """Mark the run's first checkpoint written: from now on a failure leaves the folder as it is."""
        self._saved = True

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.lock is None:
            return
        try:
            if exc_type is not None and not self._saved and self.made is not None:
                self._remove_outputs()
        finally:
            self.lock.release()

    def _remove_outputs(self) -> None:
        import shutil

        from worldgen.core.runfolder import is_temp_file, remove_made_dir

        for name in TRAIN_OUTPUTS:
            p = self.out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists() or p.is_symlink():
                p.unlink(missing_ok=True)
        for p in self.out.iterdir() if self.out.is_dir() else ():
            if is_temp_file(p.name) and p.is_file():
                p.unlink(missing_ok=True)
        remove_made_dir(self.made, self.out)


def load_training_checkpoint(path: Path, fmt: str) -> dict:
    """The training checkpoint at `path` (a dict of format `fmt`); ValueError (one line naming the file)
    for anything else: not a torch file, another format, cut short."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001  (pickle, zip and torch errors alike)
        text = " ".join(str(e).split()) or type(e).__name__
        raise ValueError(f"{path} is not a worldgen training checkpoint: {text[:200]}") from None
    if not isinstance(blob, dict) or blob.get("format") != fmt:
        found = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise ValueError(f"{path} is not a worldgen training checkpoint: format {found!r}, {fmt!r} expected")
    return blob


def other_network(path: Path, detail: str = "") -> ValueError:
    """The error (one line) for the checkpoint at `path` whose network does not fit the configured one (--net)."""
    detail = f" ({' '.join(detail.split())[:160]})" if detail else ""
    return ValueError(f"the checkpoint in {path.parent} ({path.name}) was trained with other network settings"
                      f"{detail}; choose another --out or the same --net settings")


PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def check_photo_folder(folder: str, option: str = "--photos") -> None:
    """ValueError (one line naming `option`) unless `folder` is a readable folder holding at least one photo
    (.jpg/.png/.webp); reads no image."""
    p = Path(folder)
    if not p.exists():
        raise ValueError(f"{option} {folder}: no such folder")
    if not p.is_dir():
        raise ValueError(f"{option} {folder} is a file, not a folder of photos")
    try:
        names = [q.name for q in p.iterdir() if q.suffix.lower() in PHOTO_SUFFIXES]
    except OSError as e:
        raise ValueError(f"{option} {folder} cannot be read: {e.strerror or e}") from None
    if not names:
        raise ValueError(f"no photos (.jpg/.png/.webp) in {folder}")


def load_photos(folder: str, device: torch.device, max_side: int = 512) -> list[Tensor]:
    """Every image in `folder` as rgb [3, h, w] in [0, 1] on `device`, longer side at most max_side.
    ValueError (one line) for a folder that is missing, holds no photo, or holds one that cannot be read (damaged,
    or too large: PIL's decompression-bomb limit)."""
    from PIL import Image, ImageOps

    from worldgen.core.images import too_large_image_line

    check_photo_folder(folder, "photo folder")
    out = []
    for p in sorted(Path(folder).iterdir()):
        if p.suffix.lower() not in PHOTO_SUFFIXES:
            continue
        try:
            img = ImageOps.exif_transpose(Image.open(p)).convert("RGB")
        except Image.DecompressionBombError as e:  # (not an OSError)
            raise ValueError(f"photo {too_large_image_line(p, e)}") from None
        except (OSError, ValueError) as e:  # (PIL's UnidentifiedImageError is an OSError)
            raise ValueError(f"photo {p} cannot be read: {' '.join(str(e).split())}") from None
        img.thumbnail((max_side, max_side), Image.LANCZOS)
        out.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div(255).to(device))
    if not out:
        raise ValueError(f"no photos (.jpg/.png/.webp) in {folder}")
    return out


class GpuMonitor:
    """Samples the GPU's utilisation (NVML) every `period` seconds in a background thread."""

    def __init__(self, device: torch.device, period: float = 0.5):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = None
        if device.type != "cuda":
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        except Exception:  # noqa: BLE001  (no NVML: no utilisation figures)
            return

        def loop():
            while not self._stop.wait(period):
                self.samples.append(float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu))

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def take(self) -> float | None:
        """Mean utilisation (%) since the last call, or None without samples."""
        s, self.samples = self.samples, []
        return sum(s) / len(s) if s else None

    def stop(self) -> None:
        self._stop.set()


def time_is_up(cfg, t_run: float, now_wall: float | None = None, ahead: float = 0.0) -> bool:
    """True once `cfg.max_minutes` of this run have passed or the wall clock reached `cfg.deadline`, or would have
    `ahead` seconds from now (the time of the next step: a run whose steps take a minute must stop a minute before
    its deadline, or the call that runs it is killed mid-step and its last checkpoint is lost; 2026-12-05, ninth
    session)."""
    import time

    now_wall = time.time() if now_wall is None else now_wall
    return (cfg.max_minutes > 0 and time.perf_counter() - t_run + ahead > 60 * cfg.max_minutes) or (
        cfg.deadline > 0 and now_wall + ahead > cfg.deadline)


def learning_rate(cfg, base: float, step: int) -> float:
    """Linear warm-up over cfg.optim.warmup steps, then cosine decay to 10 % of `base` at cfg.steps (at
    cfg.optim.hold_from when that is set, holding 10 % after it)."""
    if step < cfg.optim.warmup:
        return base * (step + 1) / cfg.optim.warmup
    end = cfg.optim.hold_from or cfg.steps
    p = min(1.0, (step - cfg.optim.warmup) / max(1, end - cfg.optim.warmup))
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def step_seed(seed: int, rank: int, step: int) -> int:
    """A 63-bit seed for (run seed, rank, step), so any step can be replayed on its own."""
    x = (seed * 1_000_003 + rank) * 2_147_483_629 + step
    x ^= x >> 31
    return (x * 0x9E3779B97F4A7C15) % (2**63 - 1)


def save_png(path: Path, img) -> None:
    from PIL import Image

    from worldgen.core.io import atomic_write

    with atomic_write(path) as f:
        Image.fromarray(img).save(f, format="PNG")


def write_curves(out: Path, history: list[dict], title: str, keys: tuple[str, ...]) -> None:
    """loss.png (the logged terms `keys`) and, when logged, psnr.png (learned and classical refiner vs truth),
    detail.png (their finest-band detail over the truth's where the network may change the colour) and
    photo.png (the still-photo steps' terms: the photo critic's hinge loss, 2 = chance, and the refiner's)."""
    from worldgen.core.plots import Series, line_plot

    if not history:
        return
    xs = [h["step"] for h in history]
    colors = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
    keys = [k for k in keys if k in history[-1]]
    line_plot(out / "loss.png", title, "step", "loss",
              [Series(k, xs, [h.get(k, float("nan")) for h in history], colors[i % len(colors)]) for i, k in enumerate(keys)],
              ymin=0.0)
    photo = [h for h in history if "photo_disc" in h or "photo_colour" in h]  # (photo steps may run without a critic)
    if photo:
        names = [k for k in ("photo_disc", "photo_adversarial", "photo_l1", "photo_colour", "photo_colour_generated",
                             "photo_band_energy") if any(k in h for h in photo)]
        line_plot(out / "photo.png", "still-photo steps (photo_disc: the critic's hinge loss, 2 = chance)", "step", "loss",
                  [Series(k, [h["step"] for h in photo], [h.get(k, float("nan")) for h in photo], colors[i])
                   for i, k in enumerate(names)])
    if "psnr_refined" not in history[-1]:
        return
    line_plot(out / "psnr.png", "last supervised step vs truth", "step", "PSNR (dB)",
              [Series("refined", xs, [h.get("psnr_refined", float("nan")) for h in history], colors[0]),
               Series("classical refiner", xs, [h.get("psnr_classical", float("nan")) for h in history], colors[1], dashed=True)])
    if "detail_refined" not in history[-1]:
        return
    has = [h for h in history if "detail_refined" in h]
    line_plot(out / "detail.png", "detail where the network may change the colour (1 = as much as the truth)",
              "step", "detail / truth's",
              [Series("refined", [h["step"] for h in has], [h["detail_refined"] for h in has], colors[0]),
               Series("classical refiner", [h["step"] for h in has], [h["detail_classical"] for h in has], colors[1],
                      dashed=True)])
