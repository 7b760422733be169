"""The torch device a run uses, what machine it is, and how much memory the process holds."""

from __future__ import annotations

import datetime
import os
import platform
import resource

import numpy as np
import torch

from worldgen.core.io import UserInputError


def resolve_device(name: str) -> torch.device:
    """The device for `--device NAME`: "auto" (CUDA when available, else the CPU), "cpu", "cuda",
    "cuda:1", ...; UserInputError for a name torch does not know or for CUDA on a machine without it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserInputError(f"--device {name!r} is not a torch device (try auto, cpu or cuda)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"--device {name} was asked for, but CUDA is not available on this machine")
    return dev


def machine_description(device: torch.device) -> dict:
    """JSON-ready: CPU, cores, torch threads, GPU name, torch version, date (UTC)."""
    d = {"cpu": platform.processor() or platform.machine(), "cpu_cores": os.cpu_count(),
         "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
         "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        if names:
            d["cpu"] = names[0]
    except OSError:
        pass
    if device.type == "cuda":
        d["gpu"] = torch.cuda.get_device_name(device)
    return d


def dispatch_us(device: torch.device, ops: int = 3000) -> float:
    """Microseconds the host spends per small PyTorch operation on `device`: `ops` in-place adds on a
    one-element tensor in 6 batches, each ended by one wait; the median of the last 5 batches (the first
    warms up). What a loop of many small kernels is bound by
    when the GPU is mostly idle. Benchmarks print it beside frames/s, so that runs on hosts of different
    speed can be compared (about 2 ms of host time; not for timed tests)."""
    import statistics
    import time

    x = torch.zeros(1, device=device)
    runs = []
    for _ in range(6):
        t0 = time.perf_counter()
        for _ in range(ops // 6):
            x.add_(1.0)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        runs.append((time.perf_counter() - t0) / (ops // 6) * 1e6)
    return round(statistics.median(runs[1:]), 2)  # (the first run warms up)


def peak_memory() -> dict:
    """JSON-ready peak memory of this process so far: resident set (MB) and, with CUDA, allocated (MB)."""
    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def rss_mb() -> float:
    """Current resident memory of this process, MB (Linux /proc; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def to_host(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """`tensors` on the CPU (any shapes and dtypes, detached), read from GPUs with one wait per device in
    all (each `.cpu()` waits on its own): the copies are queued without blocking on each device's current
    stream, then those streams are synchronised. Tensors already on the CPU come back detached, not copied."""
    devices = {t.device for t in tensors if t.device.type == "cuda"}
    out = tuple(t.detach().to("cpu", non_blocking=True) if t.device.type == "cuda" else t.detach() for t in tensors)
    for dev in devices:
        torch.cuda.current_stream(dev).synchronize()
    return out


def to_device(t: torch.Tensor | np.ndarray, device: torch.device | str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`t` (a host tensor or numpy array, any shape) as a tensor on `device` (cast to `dtype` if given). To a GPU
    it goes through pinned memory without waiting: a copy from ordinary (pageable) host memory first waits for
    everything already queued on the device, one stall of the flight per small upload. Tensors that need a
    gradient, or already on a device, take the plain `.to`."""
    x = torch.as_tensor(t)
    if dtype is not None:
        x = x.to(dtype)
    device = torch.device(device)
    if device.type == "cuda" and x.device.type == "cpu" and not x.requires_grad:
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)
