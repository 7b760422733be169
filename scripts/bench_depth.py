"""Time of the photo's depth on this machine: the built-in network (and the prior) per photo.

    .venv/bin/python scripts/bench_depth.py [--sizes 256 512] [--threads 2] [--repeats 5] [--device cpu]

Per size: one warm-up call, then `--repeats` calls of `LearnedDepth` (what `--depth-model learned`
runs once per flight: the network at the working size + the metric-scale rule) and of the landscape
prior, on a random image; prints the median wall time and the median process CPU time per call, the
time to load the weights, and the load average of the machine (a shared machine inflates wall time).
On CUDA the calls are synchronised (bf16 autocast, as the pipeline runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worldgen.core.camera import Camera  # noqa: E402
from worldgen.pipeline.depth import LandscapePrior, LearnedDepth  # noqa: E402


def timed(fn, repeats: int, device: torch.device) -> tuple[float, float]:
    """(median wall seconds, median process CPU seconds) of fn() over `repeats` calls after one warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t, c = time.perf_counter(), time.process_time()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    device = torch.device(args.device)
    t = time.perf_counter()
    learned = LearnedDepth(device=device)
    load_s = time.perf_counter() - t
    prior = LandscapePrior()
    result = {"device": str(device), "torch_threads": torch.get_num_threads(), "load_seconds": round(load_s, 3),
              "date": time.strftime("%Y-%m-%d"), "load_average_before": [round(x, 2) for x in os.getloadavg()],
              "sizes": {}}
    for s in args.sizes:
        rgb = torch.rand(s, s, 3, generator=torch.Generator().manual_seed(s))
        cam = Camera.from_fov(60.0, s, s)
        lw, lc = timed(lambda: learned(rgb, cam), args.repeats, device)
        pw, pc = timed(lambda: prior(rgb, cam), args.repeats, torch.device("cpu"))
        result["sizes"][f"{s}x{s}"] = {"learned_wall_s": round(lw, 3), "learned_cpu_s": round(lc, 3),
                                       "prior_wall_s": round(pw, 3), "prior_cpu_s": round(pc, 3)}
        print(f"{s}x{s}: learned {lw:.3f} s wall ({lc:.3f} s CPU), prior {pw:.3f} s wall ({pc:.3f} s CPU)", flush=True)
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
