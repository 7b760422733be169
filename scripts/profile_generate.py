"""Where a flight's frame time goes: torch.profiler over a window of `worldgen fly`'s own loop.

    .venv/bin/python scripts/profile_generate.py --device cuda --size 512x512 --refiner learned \
        --frames 260 --window 200 260 [--trace trace.json]

Flies the bundled example (autopilot, persistent, no video, no stage timers: the loop as a soak runs
it) and profiles frames window[0]+1..window[1]-1. Prints frames/s of the unprofiled stretch before
the window, then, for the window: wall time per frame, the host-device synchronisations per frame
(the calls that block the CPU until the GPU catches up: cudaStreamSynchronize, cudaDeviceSynchronize,
blocking copies), CUDA kernel launches per frame, the operators with the most self CPU time and the
most GPU time, and per stage (`stage:NAME` ranges) operators, launches, synchronisations and self
CPU time. The loop is CPU-bound where self CPU time per frame is near the wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch
from torch.profiler import ProfilerActivity, profile

from worldgen.commands.fly import FlyConfig, run
from worldgen.core.device import dispatch_us
from worldgen.pipeline.config import PhotoConfig, PipelineConfig

EX = "worldgen/examples/example"
SYNC_NAMES = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", default="512x512")
    ap.add_argument("--refiner", default="learned")
    ap.add_argument("--frames", type=int, default=260)
    ap.add_argument("--window", type=int, nargs=2, default=[200, 260])
    ap.add_argument("--mode", default="persistent")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--trace", default=None, help="also write a Chrome trace of the window here")
    ap.add_argument("--stage-times", action="store_true", help="fly with the stage timers (a sync around each stage)")
    ap.add_argument("--switch-interval", type=float, default=None,
                    help="sys.setswitchinterval(S): how long a thread waiting for the GIL waits before it asks for it")
    ap.add_argument("--stage-ops", default=None, metavar="STAGE",
                    help="also list the operators run directly in this stage (e.g. other), most frequent first")
    ap.add_argument("--no-png", action="store_true", help="do not encode the frames (isolates the writer threads' cost)")
    args = ap.parse_args()
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    if args.no_png:
        import worldgen.commands.fly.outputs as outputs
        outputs.save_png_u8 = lambda path, img: None
    a, b = args.window
    if not 0 < a < b <= args.frames:
        ap.error("--window A B needs 0 < A < B <= --frames")
    cuda = args.device == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    state: dict = {"prof": None, "t_mark": None}

    def on_frame(t: int, frame, gen) -> None:
        if t == 1:
            state["t_first"] = time.perf_counter()
        if t == a:
            if cuda:
                torch.cuda.synchronize()
            now = time.perf_counter()
            print(f"# host: {dispatch_us(torch.device(args.device))} us per small op (worldgen.core.device.dispatch_us)")
            print(f"# frames 1..{a - 1} unprofiled: {(a - 1) / (now - state['t_first']):.1f} frames/s, "
                  f"working set {len(gen.scene):,} of {gen.world.size:,} Gaussians", flush=True)
            state["prof"] = profile(activities=acts, record_shapes=False)
            state["prof"].__enter__()
            state["t_mark"] = time.perf_counter()
        if t == b - 1 and state["prof"] is not None:
            if cuda:
                torch.cuda.synchronize()
            wall = time.perf_counter() - state["t_mark"]
            state["prof"].__exit__(None, None, None)
            state["wall"] = wall

    photo = PhotoConfig(depth=f"{EX}_depth.npy", camera=f"{EX}.json")
    with tempfile.TemporaryDirectory() as tmp:
        run(FlyConfig(image=f"{EX}.png", photo=photo, path="autopilot", frames=args.frames, mode=args.mode,
                      pipeline=PipelineConfig(size=args.size, device=args.device, refiner=args.refiner),
                      out=f"{tmp}/run", stage_times=args.stage_times, progress=False, video=False), on_frame=on_frame)
    prof = state["prof"]
    n = b - 1 - a
    ev = prof.key_averages()
    syncs = sum(e.count for e in ev if e.key in SYNC_NAMES)
    memcpy = sum(e.count for e in ev if e.key in ("cudaMemcpyAsync", "cudaMemcpy"))
    launches = sum(e.count for e in ev if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"))
    print(f"# window: frames {a + 1}..{b - 1} ({n} frames), {1000 * state['wall'] / n:.2f} ms/frame wall with the profiler on")
    print(f"# per frame: {syncs / n:.1f} synchronisations, {memcpy / n:.1f} memcpy calls, {launches / n:.0f} kernel launches "
          "(a CUDA graph's replay counts as none)")
    print(ev.table(sort_by="self_cpu_time_total", row_limit=args.top))
    if cuda:
        print(ev.table(sort_by="self_cuda_time_total", row_limit=args.top))
    # per stage (the `stage:NAME` ranges of the generator, the pilot and the outputs): operators,
    # kernel launches, synchronisations and self CPU time per frame; and the operators that synchronise
    per: dict = {}

    def empty() -> dict:
        return {"ops": 0, "launch": 0, "sync": 0, "cpu_us": 0.0, "wait_us": 0.0}

    sync_ops: dict = {}
    waits: dict = {}
    names: dict = {}
    for e in prof.events():
        if e.name.startswith("stage:"):  # the stage's own Python and numpy time (outside any operator)
            d = per.setdefault(e.name[6:], empty())
            d["cpu_us"] += e.self_cpu_time_total
            continue
        stage, p, op = "other", e.cpu_parent, None
        while p is not None:
            if p.name.startswith("stage:"):
                stage = p.name[6:]
                break
            if p.name.startswith("aten::") or p.name.startswith("gsplat"):
                op = p.name
            p = p.cpu_parent
        d = per.setdefault(stage, empty())
        top_op = e.cpu_parent is None or e.cpu_parent.name.startswith("stage:")
        if top_op and not e.name.startswith("cuda"):
            d["ops"] += 1
            if stage == args.stage_ops:
                names[e.name] = names.get(e.name, 0) + 1
        if e.name in ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC"):
            d["launch"] += 1
        if e.name in SYNC_NAMES:
            d["sync"] += 1
            key = (stage, op or "?")
            sync_ops[key] = sync_ops.get(key, 0) + 1
            waits[key] = waits.get(key, 0.0) + e.cpu_time_total
        if e.name in SYNC_NAMES or e.name in ("cudaMemcpyAsync", "cudaMemcpy"):
            d["wait_us"] += e.cpu_time_total  # the host blocked until the GPU got there (or the copy ran)
        d["cpu_us"] += e.self_cpu_time_total
    # (self CPU: the stage's operators and its own Python and numpy time; it includes the time blocked in
    # synchronisations and copies: `waits` is that share, the time the host could spend preparing other
    # work if the GPU were not behind at that point)
    print(f"# per stage and frame: {'stage':<10} {'top ops':>8} {'launches':>9} {'syncs':>6} {'self CPU ms':>11} {'waits ms':>9}")
    for stage, d in sorted(per.items(), key=lambda kv: -kv[1]["cpu_us"]):
        print(f"#                      {stage:<10} {d['ops'] / n:8.0f} {d['launch'] / n:9.0f} {d['sync'] / n:6.1f} "
              f"{d['cpu_us'] / 1000 / n:11.2f} {d['wait_us'] / 1000 / n:9.2f}")
    if sync_ops:
        print("# synchronising operators (stage, outermost aten op): count and ms blocked per frame")
        for (stage, op), c in sorted(sync_ops.items(), key=lambda kv: -kv[1])[:args.top]:
            print(f"#   {stage:<10} {op:<40} {c / n:6.2f} {waits[(stage, op)] / 1000 / n:7.2f}")
    if names:
        print(f"# operators run directly in stage {args.stage_ops}: count per frame")
        for name, c in sorted(names.items(), key=lambda kv: -kv[1])[:args.top]:
            print(f"#   {name:<50} {c / n:8.2f}")
    if args.trace:
        prof.export_chrome_trace(args.trace)


if __name__ == "__main__":
    main()
