"""Frames per second of the procedural nature renderer (refine/synth), per quality level and batch size.

    .venv/bin/python scripts/bench_synth.py --device cuda                       # all quality levels
    .venv/bin/python scripts/bench_synth.py --device cuda --quality training --batch 64 128 256 --compile
    .venv/bin/python scripts/bench_synth.py --device cpu                        # small CPU defaults

For each world (`--seeds`), quality (`--quality`, keys of refine.synth.render.QUALITY) and batch size,
renders `--frames` poses of the world's flight in batches (all rays of a batch are marched
together) after one warm-up batch, with device synchronisation around the timed part, and prints
frames/s. A second, separately timed pass (`--split`, on by default) renders the same frames with
per-stage timing (march / shadows / reflections / shading; the device is synchronised between
stages, so that pass is a little slower) and march counters: iterations per batch and points
evaluated per primary ray. World generation is reported separately (once per world, not per frame).
`--compile` sets RenderSettings.compile (torch.compile'd march kernels, CUDA only; the first batch
compiles them, which the warm-up absorbs). Peak GPU memory per batch size is printed on CUDA.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from refine.synth import make_flight, make_world, render_views
from refine.synth.render import QUALITY, RenderSettings
from worldgen.core.config import check_at_least_option, check_seed_option
from worldgen.core.images import parse_size
from worldgen.core.io import UserInputError

STAGES = ("march", "shadows", "reflections", "shading")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _run(world, flight, W: int, H: int, batch: int, frames: int, s: RenderSettings, stats: dict | None) -> float:
    """Seconds to render frames [batch, batch + frames) of the flight in batches of `batch`."""
    dev = world.device
    _sync(dev)
    t0 = time.perf_counter()
    for a in range(batch, batch + frames, batch):
        b = min(batch + frames, a + batch)
        render_views(world, flight.c2w[a:b], flight.K, W, H, s, stats=stats)
    _sync(dev)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", default=None, help="WxH (default 256x256 on cuda, 64x64 on cpu)")
    ap.add_argument("--batch", type=int, nargs="+", default=None, help="views per call (64 128 256 cuda, 4 cpu)")
    ap.add_argument("--frames", type=int, default=None, help="timed frames per world and setting (512 cuda, 8 cpu)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[3_000_001, 3_000_006, 3_000_013], help="worlds")
    ap.add_argument("--quality", nargs="+", default=list(QUALITY), choices=list(QUALITY))
    ap.add_argument("--compile", action="store_true", help="RenderSettings.compile: torch.compile'd kernels (CUDA)")
    ap.add_argument("--no-split", dest="split", action="store_false", help="skip the per-stage timing pass")
    ap.add_argument("--fast", action="store_true", help="old flag: same as --quality geometry")
    args = ap.parse_args()
    dev = torch.device(args.device)
    gpu = dev.type == "cuda"
    try:  # (one line before any world is made)
        check_seed_option(args, "seeds")
        check_at_least_option(args, "batch", 1)
        check_at_least_option(args, "frames", 1)
        W, H = parse_size(args.size or ("256x256" if gpu else "64x64"))
    except UserInputError as e:
        sys.exit(f"bench_synth: {e}")
    batches = args.batch or ([64, 128, 256] if gpu else [4])
    frames = args.frames or (512 if gpu else 8)
    qualities = ["geometry"] if args.fast else args.quality
    name = torch.cuda.get_device_name(dev) if gpu else f"{torch.get_num_threads()} CPU threads"
    print(f"device {dev} ({name}), torch {torch.__version__}, {W}x{H}, {frames} frames per world and setting, "
          f"compile={args.compile}, {time.strftime('%Y-%m-%d')}")
    worlds = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        world = make_world(seed, device=dev)
        _sync(dev)
        t_world = time.perf_counter() - t0
        flight = make_flight(world, frames + max(batches), W, H)
        worlds.append((world, flight))
        print(f"  world {seed} ({world.climate}): generated in {t_world:.2f} s")
    header = "quality   batch   frames/s (" + " / ".join(w.climate for w, _ in worlds) + ")   mean"
    if args.split:
        header += "   | split % " + "/".join(STAGES) + " | iters/batch  points/ray"
    if gpu:
        header += " | peak GiB"
    print(header)
    for q in qualities:
        s = RenderSettings.preset(q, compile=args.compile)
        for batch in batches:
            fps, tot_f, tot_s = [], 0, 0.0
            split = dict.fromkeys(STAGES, 0.0)
            its = pts = rays = calls = 0
            if gpu:
                torch.cuda.reset_peak_memory_stats(dev)
            for world, flight in worlds:
                render_views(world, flight.c2w[:batch], flight.K, W, H, s)  # warm-up (and compile)
                dt = _run(world, flight, W, H, batch, frames, s, None)
                fps.append(frames / dt)
                tot_f += frames
                tot_s += dt
                if args.split:
                    st: dict = {}
                    _run(world, flight, W, H, batch, frames, s, st)
                    for k in STAGES:
                        split[k] += st.get(f"{k}_s", 0.0)
                    its += st["iterations"]
                    pts += st["points"]
                    rays += st["rays"]
                    calls += -(-frames // batch)
            line = f"{q:9s} {batch:5d}   " + " / ".join(f"{v:7.1f}" for v in fps) + f"   {tot_f / tot_s:7.1f}"
            if args.split:
                total = sum(split.values()) or 1.0
                line += "   | " + "/".join(f"{100 * split[k] / total:.0f}" for k in STAGES)
                line += f" | {its / calls:7.0f}  {pts / rays:6.1f}"
            if gpu:
                line += f" | {torch.cuda.max_memory_allocated(dev) / 2**30:.1f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
