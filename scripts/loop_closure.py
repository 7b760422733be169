"""Loop closure: fly out and back to the photo in both modes; print how close the last frame is to it.

    .venv/bin/python scripts/loop_closure.py PHOTO [--frames 40] [--size 256x256] [--fov 90] [--refiner classical|learned|FILE.pt]

The persistent world should end within PSNR >= 30 dB of the input; the per-frame baseline, which
remembers nothing, ends far from it.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace

from worldgen.commands.fly import FlyConfig, run
from worldgen.core.metrics import psnr, ssim
from worldgen.pipeline.config import PhotoConfig, PipelineConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--fov", type=float, default=90.0, help="horizontal FOV of the photo (the shared cube faces are 90)")
    ap.add_argument("--depth", default=None)
    ap.add_argument("--camera", default=None)
    ap.add_argument("--speed", type=float, default=0.02)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--refiner", default="classical", help="classical | learned | FILE.pt")
    ap.add_argument("--min-px", type=float, default=None,
                    help="the world's level of detail (--pipeline.generator.world.min-px; default: its default)")
    args = ap.parse_args()
    print(f"{'mode':<11} {'PSNR dB':>8} {'SSIM':>6} {'frames/s':>9} {'Gaussians':>10} {'resident':>9} {'paged in/out':>13}")
    pipeline = PipelineConfig(size=args.size, speed=args.speed, device=args.device, refiner=args.refiner)
    if args.min_px is not None:
        world = replace(pipeline.generator.world, min_px=args.min_px)
        pipeline = replace(pipeline, generator=replace(pipeline.generator, world=world))
    print(f"# min_px={pipeline.generator.world.min_px}")
    for mode in ("persistent", "per-frame"):
        seen = {}

        def keep(t, frame, gen):
            seen[t] = frame.rgb.detach().cpu()

        with tempfile.TemporaryDirectory() as out:
            cfg = FlyConfig(image=args.image, photo=PhotoConfig(depth=args.depth, camera=args.camera, fov=args.fov),
                            path="loop", frames=args.frames, mode=mode, out=out, progress=False, video=False,
                            pipeline=pipeline)
            info = run(cfg, on_frame=keep)
        first, last = seen[0], seen[args.frames - 1]
        moves = f"{info.get('chunks_paged_in', 0):,}/{info.get('chunks_paged_out', 0):,}"
        print(f"{mode:<11} {psnr(last, first):8.2f} {ssim(last, first):6.3f} {info['frames_per_second']:9.2f} "
              f"{info['gaussians']:>10,} {info.get('gaussians_resident', info['gaussians']):>9,} {moves:>13}")


if __name__ == "__main__":
    main()
