"""Generation speed: frames/s and per-stage milliseconds of both generators over one flight.

    .venv/bin/python scripts/bench_generate.py [--device cpu|cuda] [--size 256x256] [--frames 60]
        [--modes persistent per-frame] [--path autopilot] [--image worldgen/examples/example.png]

Uses the bundled example (its true depth and intrinsics) unless --image is given. Prints one table
row per mode: frames/s over the loop (frame 0 excluded), ms per frame for each stage, Gaussians at
the end and peak memory. The first CUDA run includes gsplat's one-off kernel compile in setup, not
in the loop figures.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import torch

from worldgen.commands.fly import FlyConfig, run
from worldgen.pipeline.config import PhotoConfig, PipelineConfig

EXAMPLE = "worldgen/examples/example.png"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--path", default="autopilot")
    ap.add_argument("--modes", nargs="+", default=["persistent", "per-frame"])
    ap.add_argument("--image", default=EXAMPLE)
    ap.add_argument("--refiner", default="classical", help="classical, learned or a weights FILE.pt")
    ap.add_argument("--warmup", type=int, default=1, help="short untimed runs first (gsplat compile, allocator)")
    args = ap.parse_args()
    photo = PhotoConfig()
    if args.image == EXAMPLE:
        photo = PhotoConfig(depth="worldgen/examples/example_depth.npy", camera="worldgen/examples/example.json")
    dev = "cuda" if (args.device == "auto" and torch.cuda.is_available()) else ("cpu" if args.device == "auto" else args.device)
    card = torch.cuda.get_device_name() if dev == "cuda" else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"# {time.strftime('%Y-%m-%d')}  device={dev} ({card})  torch {torch.__version__}  size={args.size}  frames={args.frames}  path={args.path}  refiner={args.refiner}")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.warmup):
            run(FlyConfig(image=args.image, photo=photo, pipeline=PipelineConfig(size=args.size, device=dev, refiner=args.refiner), frames=3,
                          path="forward", out=f"{tmp}/w", progress=False, video=False, overwrite=True))
        rows = []
        for mode in args.modes:
            info = run(FlyConfig(image=args.image, photo=photo, pipeline=PipelineConfig(size=args.size, device=dev, refiner=args.refiner),
                                 frames=args.frames, path=args.path, mode=mode, out=f"{tmp}/{mode}", progress=False,
                                 video=False))
            rows.append((mode, info))
    stages = sorted({k for _, i in rows for k in i["ms_per_frame"]})
    print(f"{'mode':<11} {'gen f/s':>8} {'all f/s':>8} " + " ".join(f"{s + ' ms':>10}" for s in stages) + f" {'Gaussians':>10} {'peak MB':>8}")
    for mode, i in rows:
        mem = i.get("peak_cuda_mb", i["peak_rss_mb"])
        print(f"{mode:<11} {i['generate_frames_per_second']:8.2f} {i['frames_per_second']:8.2f} "
              + " ".join(f"{i['ms_per_frame'].get(s, 0):10.1f}" for s in stages) + f" {i['gaussians']:>10,} {mem:8.0f}")
    print("gen f/s: path + generator step; all f/s: the whole loop incl. PNG encoding (overlapped on a writer thread).")
    print("Stages overlap: 'fit' runs inside 'lift'.")


if __name__ == "__main__":
    main()
