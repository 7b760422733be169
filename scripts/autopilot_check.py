"""Autopilot over the bundled example: fly N frames and check the camera never enters the ground.

    .venv/bin/python scripts/autopilot_check.py [--frames 500] [--size 96x64] [--mode persistent]

The example is a frame of the procedural world of a known seed, so the true terrain height under
the camera is known: clearance = camera height - surface height (world up is -y). Prints the
minimum clearance (metres and in units of the flight's scene scale) and exits 1 if it ever drops
to zero or below.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

import torch

from refine.synth.render import surface_height
from refine.synth.terrain import make_world
from worldgen.commands.fly import FlyConfig, run
from worldgen.pipeline.config import PhotoConfig, PipelineConfig

EX = "worldgen/examples/example"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--size", default="96x64")
    ap.add_argument("--mode", default="persistent")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    meta = json.loads(open(f"{EX}.json").read())
    world = make_world(meta["seed"], climate=meta.get("climate"))
    c2w0 = torch.tensor(meta["c2w"], dtype=torch.float32)
    positions = []

    def keep(t, frame, gen):
        positions.append((c2w0 @ frame.camera.c2w.cpu())[:3, 3])  # run's world = example camera 0 frame

    with tempfile.TemporaryDirectory() as out:
        photo = PhotoConfig(depth=f"{EX}_depth.npy", camera=f"{EX}.json")
        info = run(FlyConfig(image=f"{EX}.png", photo=photo, path="autopilot", frames=args.frames, mode=args.mode,
                             pipeline=PipelineConfig(size=args.size, device=args.device), out=out,
                             progress=True, video=False), on_frame=keep)
    p = torch.stack(positions)
    ground = surface_height(world, p[:, 0], p[:, 2])
    clearance = -p[:, 1] - ground
    travelled = (p[1:] - p[:-1]).norm(dim=-1).sum()
    worst = int(clearance.argmin())
    print(f"{args.frames} autopilot frames ({args.mode}, {args.size}): min clearance {float(clearance.min()):.1f} m "
          f"at frame {worst} ({float(clearance.min()) / info['scene_scale']:.3f} scene units), "
          f"median {float(clearance.median()):.1f} m, travelled {float(travelled):.0f} m, "
          f"{info['generate_frames_per_second']:.2f} frames/s")
    return 0 if bool((clearance > 0).all()) else 1


if __name__ == "__main__":
    sys.exit(main())
