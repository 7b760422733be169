"""Where a depth-training step's time goes: torch.profiler over a window of `worldgen train-depth`'s own loop.

    python3 scripts/profile_depth_train.py --from refine/weights/depth.pt --skip 40 --steps 40 -- \
        --preset train-depth-h200-clouds --photos .carry/photos --data.flights 4

Runs `worldgen train-depth` with the options after `--` in a temporary run folder (continuing from the compact
checkpoint `--from`, when given), skips `--skip` steps, then profiles `--steps` steps (a step ends at the
optimiser's step). Prints for the window: wall time per step, the host-device synchronisations per step (the
calls that block the CPU until the GPU catches up: cudaStreamSynchronize and the like), memcpy calls and kernel
launches per step, the operators with the most self CPU time and the most GPU time, and per function of the
training code (the innermost frame under refine/) the operators' self CPU time, launches and synchronisations.
The step is host-bound where self CPU time per step is near the wall time. (On the H200 with torch 2.11, 2026-12-04,
the operators came back without their Python frames, all under "(no refine/ frame)"; on the CPU they are linked.)
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, schedule

SYNC_NAMES = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
LAUNCH_NAMES = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="start", default=None, help="a compact depth checkpoint to continue from")
    ap.add_argument("--skip", type=int, default=40)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("rest", nargs=argparse.REMAINDER, help="-- then worldgen train-depth's options")
    args = ap.parse_args()
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    cuda = torch.cuda.is_available()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    marks: list[float] = []
    prof = profile(activities=acts, with_stack=True,
                   schedule=schedule(wait=args.skip, warmup=2, active=args.steps, repeat=1))
    step = torch.optim.Adam.step

    def counted(self, *a, **k):  # the training step's end: the profiler's step
        out = step(self, *a, **k)
        if cuda and len(marks) in (args.skip + 2, args.skip + 2 + args.steps):  # the window's ends: the GPU caught up
            torch.cuda.synchronize()
        marks.append(time.perf_counter())
        prof.step()
        return out

    from worldgen.cli import entrypoint

    torch.optim.Adam.step = counted
    try:
        with tempfile.TemporaryDirectory() as tmp, prof:
            out = Path(tmp) / "run"
            out.mkdir()
            if args.start:
                shutil.copy(args.start, out / "checkpoint-compact.pt")
            try:
                entrypoint(["train-depth", *rest, "--out", str(out), "--stop-after", str(args.skip + args.steps + 4),
                            "--checkpoint-every", "100000", "--sample-every", "0"])
            except SystemExit:
                pass
    finally:
        torch.optim.Adam.step = step
    a = args.skip + 2
    n = args.steps
    if len(marks) < a + n + 1:
        raise SystemExit(f"profile_depth_train.py: the run took {len(marks)} steps, fewer than the window needs")
    wall = (marks[a + n] - marks[a]) / n
    ev = prof.key_averages()
    count = lambda names: sum(e.count for e in ev if e.key in names)  # noqa: E731
    print(f"# window: {n} steps, {1000 * wall:.1f} ms/step wall with the profiler on ({1 / wall:.1f} steps/s)")
    memcpy = count(("cudaMemcpyAsync", "cudaMemcpy"))
    print(f"# per step: {count(SYNC_NAMES) / n:.1f} synchronisations, {memcpy / n:.1f} memcpy calls, "
          f"{count(LAUNCH_NAMES) / n:.0f} kernel launches")
    print(ev.table(sort_by="self_cpu_time_total", row_limit=args.top))
    if cuda:
        # (the GPU's own time is this table's "Self CUDA time total" over the window: divide by the steps; on the
        # H200 38.7 ms a step of a ~55-70 ms step unprofiled, 2026-12-04; summing the rows here double counts)
        print(ev.table(sort_by="self_cuda_time_total", row_limit=args.top))
    per: dict[str, list[float]] = {}
    for e in prof.events():
        frame, p = "(no refine/ frame)", e  # the innermost frame of the training code, the event itself included
        while p is not None:
            if "refine/" in p.name and ".py(" in p.name:
                frame = p.name
                break
            p = p.cpu_parent
        d = per.setdefault(frame, [0.0, 0, 0])
        d[0] += e.self_cpu_time_total
        d[1] += e.name in LAUNCH_NAMES
        d[2] += e.name in SYNC_NAMES
    print(f"# per step, by the innermost refine/ frame: {'self CPU ms':>11} {'launches':>9} {'syncs':>6}")
    for frame, (cpu, launches, syncs) in sorted(per.items(), key=lambda kv: -kv[1][0])[:args.top * 2]:
        print(f"#   {cpu / 1000 / n:8.2f} {launches / n:9.1f} {syncs / n:6.2f}  {frame}")


if __name__ == "__main__":
    main()
