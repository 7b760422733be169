"""Frames per second of the procedural nature renderer (refine/synth) at 256x256.

    .venv/bin/python scripts/bench_synth.py --device cuda [--size 256x256] [--batch 64] [--frames 256]

Renders `frames` poses of a few seeded flights in batches of `batch` views (all rays of a batch
are marched together), after a warm-up batch, with device synchronisation around the timed part.
World generation is reported separately (once per sequence, not per frame). Full dataset quality:
shadows, reflections, clouds, the default RenderSettings.
"""

from __future__ import annotations

import argparse
import time

import torch

from refine.synth import RenderSettings, make_flight, make_world, render_views


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--batch", type=int, default=None, help="views per render call (default 64 on cuda, 2 on cpu)")
    ap.add_argument("--frames", type=int, default=None, help="timed frames per world (default 256 cuda, 4 cpu)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[3_000_001, 3_000_006, 3_000_013], help="worlds (one per climate-ish)")
    ap.add_argument("--fast", action="store_true", help="no shadows or reflections (geometry-only speed)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    W, H = (int(v) for v in args.size.lower().split("x"))
    gpu = dev.type == "cuda"
    batch = args.batch or (64 if gpu else 2)
    frames = args.frames or (256 if gpu else 4)
    settings = RenderSettings(shadow_steps=0, reflect_steps=0) if args.fast else RenderSettings()
    if not gpu:
        torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"device {dev} ({torch.cuda.get_device_name(dev) if gpu else f'{torch.get_num_threads()} CPU threads'}), "
          f"{W}x{H}, batch {batch}, {'fast' if args.fast else 'full'} quality")
    total_frames, total_s = 0, 0.0
    for seed in args.seeds:
        t0 = time.perf_counter()
        world = make_world(seed, device=dev)
        _sync(dev)
        t_world = time.perf_counter() - t0
        flight = make_flight(world, frames + batch, W, H)
        render_views(world, flight.c2w[:batch], flight.K, W, H, settings)  # warm-up
        _sync(dev)
        t0 = time.perf_counter()
        for a in range(batch, batch + frames, batch):
            b = min(batch + frames, a + batch)
            r = render_views(world, flight.c2w[a:b], flight.K, W, H, settings)
        _sync(dev)
        dt = time.perf_counter() - t0
        total_frames += frames
        total_s += dt
        print(f"  seed {seed} ({world.climate:6s}): {frames / dt:8.1f} frames/s   world generation {t_world:.2f} s   "
              f"sky {float(r.sky.float().mean()):.0%}")
    print(f"mean: {total_frames / total_s:.1f} frames/s at {W}x{H} on {dev}")


if __name__ == "__main__":
    main()
