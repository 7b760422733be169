"""The completed sky dome of each photo's flight, seen round the start: the rule before 2026-12-05 against now.

    .venv/bin/python scripts/sky_domes.py [PHOTO ...] [--size 256x256] [--out docs/sky_domes.jpg]

For each photo (default: every photo of ../shared/data/real/), builds the persistent generator's start as
`worldgen fly PHOTO --size WxH` does (the learned depth, the photo's horizon, the dome at twice the view's pixel
density) and completes the dome twice: with the rule until 2026-12-05 (`complete(fade_deg=25, tile_deg=0)`: the seen
sky's elevation profile and its variation fading out over 25 degrees) and as now (the defaults: its variation
quilted round the dome, `quilt_sky`). Draws, per photo, three views of each dome (70-degree field of view, 10 degrees
up; yaw 0 = the photo's direction, 90, 180) and prints per photo and rule the sky's variation (mean |colour - its
row's mean| over 8-bit levels) in the seen window and in the completed dome more than 45 degrees of azimuth away from
it (5 to 40 degrees up), and the time the completion took.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw  # noqa: E402

from refine.classical import ClassicalRefinerConfig  # noqa: E402
from renderers import get_renderer  # noqa: E402
from worldgen.core.camera import Camera, look_at  # noqa: E402
from worldgen.pipeline.config import PhotoConfig  # noqa: E402
from worldgen.pipeline.generator import GeneratorConfig, make_generator  # noqa: E402
from worldgen.pipeline.refiners import make_refiner  # noqa: E402
from worldgen.pipeline.sky import SkyDome  # noqa: E402
from worldgen.pipeline.sources import first_frame  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def real_photos(script: str) -> list[str]:
    """Every photo of ../shared/data/real/ (sorted), the scripts' default; exits with one line naming `script` where
    that folder is not there (a clone elsewhere: give the photos)."""
    if not REAL.is_dir():
        sys.exit(f"{script}: error: no photos given, and {REAL} (the default) is not there")
    return sorted(str(p) for p in REAL.iterdir() if p.suffix in (".jpg", ".png"))


RULES = {"before": {"fade_deg": 25.0, "tile_deg": 0.0}, "now": {}}
YAWS = (0, 90, 180)


def seen_dome(photo: str, size: str) -> tuple[SkyDome, float]:
    """(the dome as the generator's start has seen it, not completed; the photo's horizon elevation in degrees)."""
    cpu = torch.device("cpu")
    frame0 = first_frame(photo, PhotoConfig(), size, cpu)
    gen = make_generator("persistent", frame0, get_renderer("cpu"),
                         make_refiner("classical", cpu, classical=ClassicalRefinerConfig()),
                         GeneratorConfig(sky_complete=False))
    return gen.sky, float(gen.horizon_elev_deg)


def variation(dome: SkyDome, mask: torch.Tensor) -> float:
    """Mean |colour - its row's mean over `mask`| over the texels of `mask` [Hs, Ws], in 8-bit levels."""
    col = dome.color
    m = mask.float()
    row_mean = (col * m).sum(2, keepdim=True) / m.sum(1).clamp_min(1)[None, :, None]
    return float(((col - row_mean).abs().mean(0) * m).sum() / m.sum().clamp_min(1)) * 255


def views(dome: SkyDome) -> np.ndarray:
    """[H, 3 W, 3] float: the dome at the three yaws (black where it holds nothing)."""
    tiles = []
    for yaw in YAWS:
        y, p = math.radians(yaw), math.radians(10)
        d = torch.tensor([math.sin(y) * math.cos(p), -math.sin(p), math.cos(y) * math.cos(p)])
        rgb, known = dome.render(Camera.from_fov(70, 192, 112).with_pose(look_at(torch.zeros(3), d)))
        tiles.append(np.pad((rgb * known[..., None]).numpy(), ((2, 2), (2, 2), (0, 0)), constant_values=1.0))
    return np.concatenate(tiles, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photos", nargs="*")
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--out", default="docs/sky_domes.jpg")
    a = ap.parse_args()
    a.photos = a.photos or real_photos("sky_domes")
    rows = []
    print(f"{'photo':<34} {'seen':>6} {'before':>7} {'now':>6}   (variation, 8-bit levels)   complete: before / now")
    for photo in a.photos:
        dome, horizon = seen_dome(photo, a.size)
        seen = dome.weight > 0
        el = 90.0 - (torch.arange(dome.height) + 0.5) * 180.0 / dome.height
        az = (torch.arange(dome.width) + 0.5) * 360.0 / dome.width - 180.0
        seen_az = az[seen.any(0)]
        centre = math.degrees(math.atan2(float(torch.deg2rad(seen_az).sin().mean()),
                                         float(torch.deg2rad(seen_az).cos().mean())))
        half = float(((seen_az - centre + 180) % 360 - 180).abs().max()) if seen_az.numel() else 0.0
        away = ((az - centre + 180) % 360 - 180).abs() > half + 45
        band = (el > max(5.0, horizon + 1)) & (el < 40)
        far = band[:, None] & away[None, :]
        out, times, row = {}, {}, []
        for rule, kw in RULES.items():
            d = SkyDome(texels_per_degree=dome.width / 360.0)
            d._tex.copy_(dome._tex)
            t = time.perf_counter()
            d.complete(horizon, **kw)
            times[rule] = time.perf_counter() - t
            out[rule] = variation(d, far)
            row.append(views(d))
            row.append(np.ones((row[-1].shape[0], 12, 3)))
        print(f"{Path(photo).stem[:34]:<34} {variation(dome, seen & band[:, None]):6.1f} {out['before']:7.1f} "
              f"{out['now']:6.1f}   {'':28} {times['before'] * 1000:5.0f} / {times['now'] * 1000:4.0f} ms")
        rows.append(np.concatenate(row[:-1], 1))
    img = Image.fromarray((np.concatenate(rows, 0).clip(0, 1) * 255).astype(np.uint8))
    head = Image.new("RGB", (img.width, 22), "white")
    draw = ImageDraw.Draw(head)
    draw.text((4, 5), "before 2026-12-05 (profile, variation faded): yaw 0 / 90 / 180", fill="black")
    draw.text((img.width // 2 + 8, 5), "now (variation quilted from the seen sky): yaw 0 / 90 / 180", fill="black")
    sheet = Image.new("RGB", (img.width, img.height + 22), "white")
    sheet.paste(head, (0, 0))
    sheet.paste(img, (0, 22))
    draw = ImageDraw.Draw(sheet)
    for i, photo in enumerate(a.photos):  # the photo's name in each row's last tile (sky or black there)
        y = 22 + i * (img.height // len(a.photos)) + 4
        draw.text((img.width - 190, y), Path(photo).stem[:30], fill="white", stroke_width=1, stroke_fill="black")
    sheet.save(a.out, quality=82)
    print(f"wrote {a.out} ({len(a.photos)} photos)")


if __name__ == "__main__":
    main()
