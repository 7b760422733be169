"""The world a flight builds, seen from above and from the side, per depth model (learned vs prior).

    .venv/bin/python scripts/depth_world_views.py [PHOTO ...] [--frames 100] [--size 128x96] [--fov 90]
                                                  [--models learned prior FILE.pt] [--out docs/depth_world.jpg]

For each photo and depth model (`--models`, default learned and prior), flies `--frames` frames as `worldgen fly PHOTO
--fov F --size WxH --frames N --refiner classical` does (autopilot, persistent), then draws
the Gaussian centres of the world it kept with their colours in two orthographic views: from above
(x right, forward z up the picture; higher points drawn over lower ones) and from the side (forward
z to the right, up up; nearer-to-the-path points drawn over farther ones). Extents are per panel:
the 97th percentile of forward distance from the start. A flat backdrop shows up as an arc (top) and
a vertical line (side); a world that stands up shows spread, hills and trees.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from refine.classical import ClassicalRefinerConfig  # noqa: E402
from renderers import get_renderer  # noqa: E402
from worldgen.core.images import save_figure_u8, side_by_side, to_uint8  # noqa: E402
from worldgen.pipeline.config import PhotoConfig  # noqa: E402
from worldgen.pipeline.flight import Flight  # noqa: E402
from worldgen.pipeline.generator import GeneratorConfig, make_generator  # noqa: E402
from worldgen.pipeline.paths import AutopilotConfig, make_path  # noqa: E402
from worldgen.pipeline.refiners import make_refiner  # noqa: E402
from worldgen.pipeline.sources import first_frame, scene_scale  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
DEFAULT_PHOTOS = [str(REAL / "polyhaven_pink_sunrise_posx.png"), str(REAL / "humus_Brudslojan_posx.jpg")]


def fly_world(photo: str, model: str, frames: int, size: str, fov: float) -> tuple[np.ndarray, ...]:
    """(means [N, 3], colours [N, 3] in [0, 1], camera positions [T, 3]) of the world after the flight."""
    cpu = torch.device("cpu")
    frame0 = first_frame(photo, PhotoConfig(depth_model=model, fov=fov), size, cpu)
    path = make_path("autopilot", frame0.camera, scene_scale(frame0), frames, speed=0.02, autopilot=AutopilotConfig())
    gen = make_generator("persistent", frame0, get_renderer("cpu"),
                         make_refiner("classical", cpu, classical=ClassicalRefinerConfig()), GeneratorConfig())
    cams = []
    with torch.no_grad():
        for step in Flight(gen, path, frames):
            cams.append(step.camera.c2w[:3, 3].cpu().numpy())
    world = gen.world.full_scene()  # paged-out chunks included (gen.scene is only the working set)
    return world.means.cpu().numpy(), world.colors.clamp(0, 1).cpu().numpy(), np.array(cams)


def splat(u: np.ndarray, v: np.ndarray, order: np.ndarray, colors: np.ndarray, size: int) -> np.ndarray:
    """uint8 [size, size, 3]: points at pixel (u, v) (floats, may fall outside), drawn in `order`, on white."""
    img = np.full((size, size, 3), 255, np.uint8)
    for du, dv in ((0, 0), (1, 0), (0, 1), (1, 1)):  # 2x2 dots
        iu, iv = np.floor(u).astype(int) + du, np.floor(v).astype(int) + dv
        ok = (iu >= 0) & (iu < size) & (iv >= 0) & (iv < size)
        idx = order[ok[order]]
        img[iv[idx], iu[idx]] = to_uint8(colors[idx])  # later points overwrite earlier ones
    return img


def views(means: np.ndarray, colors: np.ndarray, cams: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(top, side) pictures. World axes: x right, y down (up is -y), z forward (the photo's camera)."""
    rel = means - cams[0]
    reach = max(float(np.percentile(rel[:, 2], 97)), 1e-6)
    s = (size - 8) / (1.1 * reach)
    # top: x -> u (centred), z -> v (up the picture); higher (smaller y) drawn last
    top = splat(size / 2 + rel[:, 0] * s, size - 4 - rel[:, 2] * s, np.argsort(-rel[:, 1]), colors, size)
    # side: z -> u, up (-y) -> v (centred at the camera's height); nearer to the path (smaller |x|) drawn last
    side = splat(4 + rel[:, 2] * s, size / 2 + rel[:, 1] * s, np.argsort(-np.abs(rel[:, 0])), colors, size)
    c = cams - cams[0]
    for img, pts in ((top, np.stack([size / 2 + c[:, 0] * s, size - 4 - c[:, 2] * s], 1)),
                     (side, np.stack([4 + c[:, 2] * s, size / 2 + c[:, 1] * s], 1))):
        d = ImageDraw.Draw(pil := Image.fromarray(img))
        d.line([tuple(p) for p in pts], fill=(220, 0, 0), width=2)  # the camera path
        img[:] = np.asarray(pil)
    return top, side


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", nargs="*", default=DEFAULT_PHOTOS)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", default="128x96")
    ap.add_argument("--fov", type=float, default=90.0)
    ap.add_argument("--panel", type=int, default=240)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--models", nargs="+", default=["learned", "prior"],
                    help="--depth-model specs: learned, learned-fidelity, prior, a depth weights FILE.pt "
                         "(labelled by its name)")
    ap.add_argument("--out", default="docs/depth_world.jpg")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for photo in args.photos:
        panels, labels = [], []
        for model in args.models:
            means, colors, cams = fly_world(photo, model, args.frames, args.size, args.fov)
            top, side = views(means, colors, cams, args.panel)
            panels += [top, side]
            name = Path(model).stem if model.endswith(".pt") else model
            labels += [f"{name}: from above", f"{name}: from the side"]
            print(f"{Path(photo).stem} {name}: {len(means)} Gaussians", flush=True)
        rows.append(side_by_side(panels, labels=labels, gap=4))
        title = Image.new("RGB", (rows[-1].shape[1], 18), (255, 255, 255))
        ImageDraw.Draw(title).text((4, 2), Path(photo).stem, fill=(0, 0, 0), font=ImageFont.load_default(size=13))
        rows[-1] = np.concatenate([np.asarray(title), rows[-1]], 0)
    save_figure_u8(args.out, np.concatenate(rows, 0))
    print(args.out)


if __name__ == "__main__":
    main()
