"""Soak test: one long `worldgen fly` (outputs streamed to a run folder, the world paged), figures per tenth.

    .venv/bin/python scripts/soak.py                      # GPU: 10,000 frames at 512x512; CPU: 2,000 at 128x128
    .venv/bin/python scripts/soak.py --device cpu --frames 200 --size 128x128 --out /tmp/soak
    .venv/bin/python scripts/soak.py --refiner learned --json soak.json

Flies the bundled example (its true depth and intrinsics) along the autopilot with `worldgen fly`'s own
`run` (frames, video, cameras and checkpoints written as in any run), and prints for each tenth of
the flight: wall-clock ms per frame (everything: generation, paging, the writers' back-pressure,
checkpoints) and the generator's ms per frame (its stages: render, refine, lift, sky, page), Gaussians
in the working set (what the renderer draws; now and its peak in that tenth) and in the whole world, the chunks paged in and out,
host memory (resident set now) and, on CUDA, GPU memory (allocated now, and the peak in that tenth).
At the end it checks the soak's goals: the last tenth within 1.2x the second tenth's ms per frame,
GPU memory flat after the first tenth (peak within 10 % of the second tenth's), and frames/s.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from worldgen.commands.fly import FlyConfig, run
from worldgen.core.device import dispatch_us, machine_description, rss_mb
from worldgen.pipeline.config import PhotoConfig, PipelineConfig

EX = "worldgen/examples/example"
STAGES = ("render", "refine", "lift", "sky", "page")  # 'fit' runs inside 'lift'


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--frames", type=int, default=None, help="default: 10000 on CUDA, 2000 on the CPU")
    ap.add_argument("--size", default=None, help="default: 512x512 on CUDA, 128x128 on the CPU")
    ap.add_argument("--refiner", default="classical", help="classical, learned or a weights FILE.pt")
    ap.add_argument("--path", default="autopilot")
    ap.add_argument("--out", default=None, help="run folder (default: a temp folder, deleted at the end)")
    ap.add_argument("--checkpoint-every", type=int, default=500)
    ap.add_argument("--no-video", action="store_true", help="skip video.mp4 (frames are still written)")
    ap.add_argument("--json", default=None, help="also write the table as JSON here")
    ap.add_argument("--stage-times", action="store_true",
                    help="fly with the stage timers (a GPU synchronisation around each stage: gen ms/f is known, "
                         "but the flight is slower on the GPU: 50.4 against 58.4 frames/s, BENCHMARKS.md)")
    ap.add_argument("--min-px", type=float, default=None,
                    help="the world's level of detail (--pipeline.generator.world.min-px; default: its default)")
    ap.add_argument("--max-resident", type=int, default=None,
                    help="the working set's budget in Gaussians (--pipeline.generator.world.max-resident; default: none)")
    ap.add_argument("--refiner-texture", type=float, default=None,
                    help="the learned refiner's detail anchor (--pipeline.refiner-texture; default: the weights' own, 1)")
    args = ap.parse_args()
    dev = "cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device)
    cuda = dev == "cuda"
    frames = args.frames or (10_000 if cuda else 2_000)
    size = args.size or ("512x512" if cuda else "128x128")
    tenth = max(1, -(-(frames - 1) // 10))  # frames 1..frames-1 in ten rows (the last may be shorter)
    pipeline = PipelineConfig(size=size, device=dev, refiner=args.refiner, refiner_texture=args.refiner_texture)
    world = pipeline.generator.world
    if args.min_px is not None:
        world = replace(world, min_px=args.min_px)
    if args.max_resident is not None:
        world = replace(world, max_resident=args.max_resident)
    pipeline = replace(pipeline, generator=replace(pipeline.generator, world=world))
    min_px, max_resident = world.min_px, world.max_resident
    machine = machine_description(torch.device(dev))
    machine["dispatch_us"] = dispatch_us(torch.device(dev))  # the host's speed at small ops (the loop's bound)
    print(f"# soak {time.strftime('%Y-%m-%d')}  device={dev} ({machine.get('gpu', machine['cpu'])}, "
          f"{machine['cpu_cores']} cores, torch {torch.__version__}, {platform.python_version()})  "
          f"size={size} frames={frames:,} path={args.path} refiner={args.refiner} min_px={min_px} "
          f"max_resident={max_resident} refiner_texture={args.refiner_texture} stage_times={args.stage_times} "
          f"dispatch_us={machine['dispatch_us']}", flush=True)

    rows: list[dict] = []
    mark = {"t": 0, "wall": time.perf_counter(), "stages": {}, "moves": (0, 0)}
    header = (f"{'frames':>13} {'wall ms/f':>9} {'gen ms/f':>8} {'working set':>12} {'ws peak':>10} {'world':>12} {'in/out':>11} "
              f"{'host MB':>8}" + (f" {'GPU MB':>8} {'GPU peak':>8}" if cuda else ""))
    print(header, flush=True)

    def on_frame(t: int, frame, gen) -> None:
        if t == 0:  # setup (frame 0's world, and gsplat's first compile) is not a frame
            mark.update(wall=time.perf_counter(), stages=dict(gen.stage_totals))
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            return
        mark["ws_peak"] = max(mark.get("ws_peak", 0), len(gen.scene))
        if t % tenth and t != frames - 1:
            return
        now = time.perf_counter()
        n = t - mark["t"]
        totals = dict(gen.stage_totals)
        gen_s = sum(totals.get(k, 0.0) - mark["stages"].get(k, 0.0) for k in STAGES)
        w = gen.world
        moves = (getattr(w, "paged_in", 0), getattr(w, "paged_out", 0))
        row = {"first": mark["t"] + 1, "last": t, "wall_ms": 1000 * (now - mark["wall"]) / n,
               "gen_ms": round(1000 * gen_s / n, 3) if totals else None,  # None: stage times off
               "working_set": len(gen.scene), "working_set_peak": mark.pop("ws_peak"), "world": w.size,
               "paged_in": moves[0] - mark["moves"][0], "paged_out": moves[1] - mark["moves"][1], "host_mb": rss_mb()}
        if totals:  # each stage's ms per frame over the tenth (stage times on)
            row["stage_ms"] = {k: round(1000 * (v - mark["stages"].get(k, 0.0)) / n, 3) for k, v in sorted(totals.items())}
        if cuda:
            torch.cuda.synchronize()
            row["gpu_mb"] = torch.cuda.memory_allocated() / 2**20
            row["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
            torch.cuda.reset_peak_memory_stats()
        rows.append(row)
        gen_ms = "-" if row["gen_ms"] is None else f"{row['gen_ms']:.1f}"
        print(f"{row['first']:>6,}-{t:<6,} {row['wall_ms']:9.1f} {gen_ms:>8} {row['working_set']:>12,} {row['working_set_peak']:>10,} "
              f"{row['world']:>12,} {row['paged_in']:>5,}/{row['paged_out']:<5,} {row['host_mb']:8.0f}"
              + (f" {row['gpu_mb']:8.0f} {row['gpu_peak_mb']:8.0f}" if cuda else "")
              + ("  " + " ".join(f"{k} {v:.2f}" for k, v in row["stage_ms"].items()) if "stage_ms" in row else ""), flush=True)
        mark.update(t=t, wall=now, stages=totals, moves=moves)

    photo = PhotoConfig(depth=f"{EX}_depth.npy", camera=f"{EX}.json")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or str(Path(tmp) / "soak")
        info = run(FlyConfig(image=f"{EX}.png", photo=photo, path=args.path, frames=frames,
                             pipeline=pipeline, out=out, stage_times=args.stage_times, progress=False,
                             video=not args.no_video, checkpoint_every=args.checkpoint_every,
                             overwrite=args.out is not None), on_frame=on_frame)
    fps = info["frames_per_second"]
    # frames/s while flying: frames 1.. over the rows' wall time (checkpoints included; frame 0's
    # setup and the final world.ply, which grows with the world, are not)
    frames_made = sum(r["last"] - r["first"] + 1 for r in rows)
    flying_fps = frames_made / max(sum(r["wall_ms"] * (r["last"] - r["first"] + 1) for r in rows) / 1000, 1e-9)
    print(f"# {info['frames']:,} frames, {flying_fps:.2f} frames/s while flying (checkpoints included), "
          f"{fps:.2f} frames/s over the whole loop (the final world.ply included), world {info['gaussians']:,} Gaussians "
          f"({info['gaussians_resident']:,} in the working set at the end), peak host {info['peak_rss_mb']:.0f} MB"
          + (f", peak GPU {info['peak_cuda_mb']:.0f} MB" if cuda else ""))
    if len(rows) >= 3:
        ratio = rows[-1]["wall_ms"] / rows[1]["wall_ms"]
        print(f"# last tenth / second tenth, wall ms per frame: {ratio:.2f} (goal <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'})")
        if cuda:
            flat = max(r["gpu_peak_mb"] for r in rows[1:]) / rows[1]["gpu_peak_mb"]
            print(f"# GPU peak after the first tenth / second tenth's: {flat:.2f} (goal <= 1.1: {'met' if flat <= 1.1 else 'NOT met'})")
            print(f"# sustained frames/s while flying: {flying_fps:.1f} (goal >= 60: {'met' if flying_fps >= 60 else 'NOT met'})")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "size": size, "frames": frames,
                                               "refiner": args.refiner, "refiner_texture": args.refiner_texture,
                                               "min_px": min_px, "max_resident": max_resident,
                                               "stage_times": args.stage_times, "flying_frames_per_second": flying_fps,
                                               "rows": rows, "run": info}, indent=1))


if __name__ == "__main__":
    main()
