"""Do flights toward distant things approach them? Median non-sky depth along a forward flight.

    .venv/bin/python scripts/depth_approach.py [PHOTO ...] [--frames 500] [--size 128x96] [--fov 90]
                                               [--depth-models learned prior] [--speeds 0.02 0.005]
                                               [--every 50] [--json out.json]

For each photo, `--depth-model` and `--speed`, flies `--frames` frames straight ahead (`--path
forward`; the speed is per frame, in units of the photo's lower-quartile depth, 0.02 being fly's
default) in persistent mode with the classical refiner on the CPU, exactly as `worldgen fly PHOTO
--fov F --path forward --size WxH --speed S --refiner classical --depth-model M` does (the same
pipeline pieces, without writing files), and prints every `--every` frames the median z-depth of the
refined frame's non-sky pixels and the distance flown, both in units of frame 0's median non-sky
depth. Approaching what is ahead makes the median fall; a backdrop that recedes as fast as the camera
flies (or is regenerated at the same distance) keeps it level. A straight path does not avoid
terrain: once the camera has flown past what it was approaching, the figures stop meaning much.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refine.classical import ClassicalRefinerConfig  # noqa: E402
from renderers import get_renderer  # noqa: E402
from worldgen.pipeline.config import PhotoConfig  # noqa: E402
from worldgen.pipeline.flight import Flight  # noqa: E402
from worldgen.pipeline.generator import GeneratorConfig, make_generator  # noqa: E402
from worldgen.pipeline.paths import make_path  # noqa: E402
from worldgen.pipeline.refiners import make_refiner  # noqa: E402
from worldgen.pipeline.sources import first_frame, scene_scale  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
DEFAULT_PHOTOS = [str(REAL / "polyhaven_gray_pier_negz.png")]


def median_depth(frame) -> float:
    d = frame.depth[~frame.sky & torch.isfinite(frame.depth)]
    return float(d.median()) if d.numel() else float("nan")


def approach(photo: str, model: str, frames: int, size: str, every: int, fov: float, speed: float) -> list[dict]:
    """Rows {t, median, flown, gaussians} every `every` frames (and the last), lengths in frame 0's median."""
    cpu = torch.device("cpu")
    frame0 = first_frame(photo, PhotoConfig(depth_model=model, fov=fov), size, cpu)
    scale = scene_scale(frame0)
    path = make_path("forward", frame0.camera, scale, frames, speed=speed)
    gen = make_generator("persistent", frame0, get_renderer("cpu"), make_refiner("classical", cpu,
                         classical=ClassicalRefinerConfig()), GeneratorConfig())
    unit = median_depth(frame0)
    rows = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for step in Flight(gen, path, frames):
            if step.t % every == 0 or step.t == frames - 1:
                flown = float((step.camera.c2w[:3, 3] - frame0.camera.c2w[:3, 3].to(step.camera.c2w)).norm())
                rows.append({"t": step.t, "median": round(median_depth(step.frame) / unit, 4),
                             "flown": round(flown / unit, 4), "gaussians": gen.world.size,
                             "seconds": round(time.perf_counter() - t0, 1)})
                print(f"  {Path(photo).stem} {model:8s} speed {speed} t={step.t:4d} "
                      f"median depth {rows[-1]['median']:.3f}  "
                      f"flown {rows[-1]['flown']:.3f}  gaussians {rows[-1]['gaussians']}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", nargs="*", default=DEFAULT_PHOTOS)
    ap.add_argument("--frames", type=int, default=500)
    ap.add_argument("--size", default="128x96")
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--fov", type=float, default=90.0, help="horizontal field of view (../shared/data/real: 90)")
    ap.add_argument("--depth-models", nargs="+", default=["learned", "prior"])
    ap.add_argument("--speeds", type=float, nargs="+", default=[0.02])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = {"frames": args.frames, "size": args.size, "path": "forward", "fov": args.fov, "refiner": "classical",
           "unit": "frame 0's median non-sky depth", "date": time.strftime("%Y-%m-%d"), "flights": {}}
    for photo in args.photos:
        for speed in args.speeds:
            for model in args.depth_models:
                out["flights"][f"{Path(photo).stem}/{model}/speed {speed}"] = approach(
                    photo, model, args.frames, args.size, args.every, args.fov, speed)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
