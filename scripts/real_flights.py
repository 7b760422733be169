"""Long autopilot flights over real photos: does the world keep its detail, and is the sky clean?

    python scripts/real_flights.py PHOTO [PHOTO ...] [--refiners classical learned] [--frames 201]
        [--size 256x256] [--fov 90] [--depth-model ...] [--sheet docs/real_flights.png] [--marks 0 50 ...]
        [--out FILE.json] [--autopilot NAME=VALUE ...]

Per photo and refiner (persistent mode), it prints:
- hf_ratio: high-frequency energy of the lower half of frame T-1 over frame 0's. The energy is
  mean |I - blur(I)| of the grey image, blur = a 5x5 box filter applied twice (the learned-refiner
  issue's measure). Stretched streaks and blur drive it towards 0; detail that keeps being invented
  keeps it near 1.
- sky_streaks: over the pixels the frame calls sky, mean |horizontal gradient| / mean |vertical
  gradient| of the grey image (about 1 for a smooth or cloudy sky; vertical streaks, the push-pull
  smear of unseen sky, make it large). Mean over the last 50 frames.
- colour drift: how far the colours of the last 100 frames are from frame 0's (the photo's view), in
  CIELAB: `mean_de` (delta E of the mean colour), `drift` (mean and std of L, a, b together), and the
  chroma shifts a (negative: greener) and b (positive: yellower); worldgen/core/metrics.py.
  `ground_dE`: the same delta E over the pixels each frame calls ground (not sky) only, and `sky_share` the
  share of sky in frame 0 and over the last 100 frames: the whole-frame figure moves when a flight ends looking
  at more ground or more sky than the photo shows (blue sky against beige rock weighs ~30 delta E), `ground_dE`
  only when the ground's own colours move.
- slope_0, slope_T: the spectral slope (worldgen/core/metrics.py spectral_slope) of the lower half of
  frames 0 and T-1: natural images sit near -2; blur makes it steeper, noise flatter. A high hf_ratio
  with a slope far below -2 is fine-grained noise over a blurred frame, not invented scenery.
- bowl: `horizon_bend` (worldgen/core/metrics.py) of the frames' sky masks, mean over the last 50 frames that
  show a horizon: the share of sky in the middle third of the columns minus the outer thirds'. 0 for a level
  horizon, > 0 when the generated ground curves up to the frame's sides (the forest flights' bowls).
- reach: the straight distance from the first camera position to the last over the length of the way flown
  (1: straight on; near 0: circling).
- wall: share of the last 100 frames whose centre (the middle half of the rows and columns) has a median z-depth
  below a tenth of frame 0's: the camera pressed into a surface, its frame one close-up texture (which hf_ratio
  counts as detail).
- fps: generated frames per second.
--autopilot changes AutopilotConfig fields for the flights (e.g. max_clearance=0.5; docs/paths.md).
The sheet shows frames 0, T/4, T/2, 3T/4 and T-1 (or --marks) of every flight, one row per photo and refiner.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worldgen.core.anchor import detail_layer  # noqa: E402
from worldgen.core.io import atomic_write_text, os_error_line  # noqa: E402


def grey(rgb: torch.Tensor) -> torch.Tensor:
    """[H, W] luminance of rgb [H, W, 3] in [0, 1]."""
    return (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114).float()


def hf_energy(rgb: torch.Tensor) -> float:
    """mean |I - blur(I)| over the lower half of the grey image (blur: 5x5 box, twice, replicate padding)."""
    d = detail_layer(grey(rgb)[..., None])[..., 0].abs()
    return float(d[d.shape[0] // 2:].mean())


def sky_streaks(rgb: torch.Tensor, sky: torch.Tensor) -> float:
    """Mean |d/dx| over mean |d/dy| of the grey image on sky pixels (nan with fewer than 64 of them)."""
    g = grey(rgb)
    gx = (g[:-1, 1:] - g[:-1, :-1]).abs()
    gy = (g[1:, :-1] - g[:-1, :-1]).abs()
    m = sky[:-1, :-1] & sky[:-1, 1:] & sky[1:, :-1]
    if int(m.sum()) < 64:
        return float("nan")
    return float(gx[m].mean() / gy[m].mean().clamp_min(1e-4))


def fly(photo: str, refiner: str, frames: int, size: str, fov: float, depth_model: str | None, device: str,
        marks: list[int] | None = None, autopilot: dict | None = None, sky_grow: float | None = None,
        refiner_seed: int = 0):
    from worldgen.commands.fly import FlyConfig, run
    from worldgen.core.metrics import colour_distance, horizon_bend, lab_stats, spectral_slope
    from worldgen.pipeline.config import PhotoConfig, PipelineConfig

    from worldgen.pipeline.paths import AutopilotConfig

    kept, hf, streaks, bends, lab, slopes = {}, [], [], [], {"ref": None, "sum": 0.0, "n": 0}, {}
    ground = {"ref": None, "sum": 0.0, "n": 0}  # lab_stats of the ground (not sky) pixels, as `lab` of all of them
    sky_share = []
    where = []  # [3] camera positions (world)
    centre = []  # median z-depth of each frame's centre (non-sky; inf when all sky)
    marks = {0, frames // 4, frames // 2, 3 * frames // 4, frames - 1} if not marks else {t for t in marks if t < frames}

    def on_frame(t, frame, gen):
        rgb = frame.rgb.detach().cpu()
        hf.append(hf_energy(rgb))
        if t in (0, frames - 1):
            g = grey(rgb)
            slopes[t] = spectral_slope(g[g.shape[0] // 2:])
        sky = frame.sky.cpu()
        sky_share.append(float(sky.float().mean()))
        if t == 0:
            lab["ref"] = lab_stats(rgb)
            ground["ref"] = lab_stats(rgb[~sky]) if (~sky).any() else None
        elif t >= frames - 100:
            lab["sum"], lab["n"] = lab["sum"] + lab_stats(rgb), lab["n"] + 1
            if (~sky).any():
                ground["sum"], ground["n"] = ground["sum"] + lab_stats(rgb[~sky]), ground["n"] + 1
        streaks.append(sky_streaks(rgb, sky))
        bends.append(horizon_bend(sky))
        where.append(frame.camera.position.detach().double().cpu())
        d = frame.depth.detach().cpu()
        H, W = d.shape
        c = d[H // 4:H - H // 4, W // 4:W - W // 4]
        c = c[torch.isfinite(c)]
        centre.append(float(c.median()) if c.numel() else float("inf"))
        if t in marks:
            kept[t] = (rgb.clamp(0, 1) * 255 + 0.5).byte().numpy()

    photo_cfg = PhotoConfig(fov=fov, **({} if depth_model is None else {"depth_model": depth_model}),
                            **({} if sky_grow is None else {"sky_grow": sky_grow}))
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        info = run(FlyConfig(image=photo, photo=photo_cfg, path="autopilot", frames=frames, out=out, progress=False,
                             video=False, pipeline=PipelineConfig(size=size, refiner=refiner, device=device,
                                                                   refiner_seed=refiner_seed,
                                                                   autopilot=AutopilotConfig(**(autopilot or {})))),
                   on_frame=on_frame)
    tail = [s for s in streaks[-50:] if s == s]
    bend = [b for b in bends[-50:] if b == b]
    colour = colour_distance(lab["ref"], lab["sum"] / lab["n"]) if lab["n"] else {}
    ground_colour = (colour_distance(ground["ref"], ground["sum"] / ground["n"])
                     if ground["n"] and ground["ref"] is not None else {})
    # reach: how far the flight got, as a share of the way it flew (1: straight on; near 0: circling)
    steps = sum(float((b - a).norm()) for a, b in zip(where[:-1], where[1:]))
    reach = float((where[-1] - where[0]).norm()) / steps if steps > 0 else float("nan")
    # (nan when frame 0's centre is all sky: nothing to be pressed into)
    wall = float(np.mean([c < 0.1 * centre[0] for c in centre[-100:]])) if math.isfinite(centre[0]) else float("nan")
    return {"hf_ratio": hf[-1] / max(hf[0], 1e-9), "hf_series": hf, "colour": colour, "ground_colour": ground_colour,
            "sky_share": [sky_share[0], float(np.mean(sky_share[-100:]))],
            "slope_0": slopes.get(0, float("nan")), "slope_T": slopes.get(frames - 1, float("nan")),
            "sky_streaks": float(np.mean(tail)) if tail else float("nan"),
            "bowl": float(np.mean(bend)) if bend else float("nan"), "bowl_series": bends, "reach": reach, "wall": wall,
            "fps": info["generate_frames_per_second"], "frames": [kept[t] for t in sorted(kept)], "marks": sorted(kept)}


def sheet(rows: list[tuple[str, list[np.ndarray]]], marks: list[int], path: Path) -> None:
    from PIL import Image, ImageDraw, ImageFont

    from worldgen.core.images import thumbnail

    th = [[thumbnail(f, 160) for f in fr] for _, fr in rows]
    h, w = th[0][0].shape[:2]
    lw, pad = 190, 3
    img = Image.new("RGB", (lw + len(marks) * (w + pad), 16 + len(rows) * (h + pad)), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=11)
    for j, t in enumerate(marks):
        d.text((lw + j * (w + pad) + 2, 2), f"frame {t}", fill="black", font=font)
    for i, (label, _) in enumerate(rows):
        y = 16 + i * (h + pad)
        for k, part in enumerate(label.split("\n")):
            d.text((2, y + h // 2 - 12 + 13 * k), part, fill="black", font=font)
        for j, f in enumerate(th[i]):
            img.paste(Image.fromarray(f), (lw + j * (w + pad), y))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, optimize=True)


def ref_name(ref: str) -> str:
    """A --refiners entry as a short name: a weights file's stem, composition overrides kept
    ("runs/x/c.pt+texture=0.5" -> "c+texture=0.5"; a bare stem would cut "learned+texture=0.5" at its dot)."""
    name, plus, rest = ref.partition("+")
    return Path(name).stem + plus + rest


def _label(photo: str, ref: str, hf: float) -> str:
    """A contact-sheet row's label: photo, refiner and hf_ratio."""
    return f"{Path(photo).stem[:28]}\n{ref_name(ref)}: hf {hf:.2f}"


def _check_args(a) -> None:
    """UserInputError (one line) for options that would fail only after the flights: a size, device, mark or
    output that cannot be used."""
    from worldgen.core.config import check_at_least_option
    from worldgen.core.device import resolve_device
    from worldgen.core.images import parse_size
    from worldgen.core.io import UserInputError, check_output_file

    parse_size(a.size)
    resolve_device(a.device)
    check_at_least_option(a, "frames", 2)
    if a.marks and not all(0 <= m < a.frames for m in a.marks):
        raise UserInputError(f"--marks must lie in 0..{a.frames - 1} (--frames {a.frames}), got {a.marks}")
    if not a.sheet_from:
        check_output_file(a.out, (".json",), "--out")
    if a.sheet:
        check_output_file(a.sheet, (".jpg", ".jpeg", ".png"), "--sheet")
    if a.frames_dir and Path(a.frames_dir).exists() and not Path(a.frames_dir).is_dir():
        raise UserInputError(f"--frames-dir {a.frames_dir} is a file, not a folder")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", nargs="+")
    ap.add_argument("--refiners", nargs="+", default=["classical", "learned"])
    ap.add_argument("--frames", type=int, default=201)
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--fov", type=float, default=90.0)
    ap.add_argument("--depth-model", default=None)
    ap.add_argument("--sky-grow", type=float, default=None,
                    help="the learned depth network's sky hysteresis (PhotoConfig.sky_grow; 0: the mask before "
                         "2026-12-03)")
    ap.add_argument("--refiner-seed", type=int, default=0,
                    help="seed of the learned refiner's noise (PipelineConfig.refiner_seed); a second seed tells "
                         "a difference between two candidates from the chance of one flight")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--sheet", default=None)
    ap.add_argument("--marks", type=int, nargs="+", default=None,
                    help="frames shown on the sheet (default: 0, T/4, T/2, 3T/4 and T-1)")
    ap.add_argument("--autopilot", nargs="+", default=[], metavar="NAME=VALUE",
                    help="AutopilotConfig fields to change for these flights (e.g. max_clearance=0)")
    ap.add_argument("--out", default="runs/real_flights.json")
    ap.add_argument("--frames-dir", default=None,
                    help="also keep each flight's sheet frames here (PHOTO_REFINER.npz), so runs split over "
                         "processes can share one sheet (--sheet-from)")
    ap.add_argument("--sheet-from", default=None,
                    help="make --sheet from the frames kept in this folder (for the photos and refiners given) "
                         "and fly nothing")
    a = ap.parse_args()
    _check_args(a)
    autopilot = {}
    for item in a.autopilot:
        name, _, value = item.partition("=")
        try:
            autopilot[name] = float(value)
        except ValueError:
            raise SystemExit(f"real_flights: --autopilot {item!r}: expected NAME=NUMBER")
    from worldgen.pipeline.paths import AutopilotConfig

    fields = {f.name for f in dataclasses.fields(AutopilotConfig)}
    if set(autopilot) - fields:
        raise SystemExit(f"real_flights: --autopilot: no such option {sorted(set(autopilot) - fields)[0]!r} "
                         f"(AutopilotConfig has {', '.join(sorted(fields))})")
    rows, results = [], []
    marks = None
    if a.sheet_from:
        for photo in a.photos:
            for ref in a.refiners:
                f = Path(a.sheet_from) / f"{Path(photo).stem}_{ref_name(ref)}.npz"
                if not f.is_file():
                    raise SystemExit(f"real_flights: no kept frames {f}")
                z = np.load(f)
                marks = [int(t) for t in z["marks"]]
                rows.append((_label(photo, ref, float(z["hf_ratio"])), list(z["frames"])))
        sheet(rows, marks, Path(a.sheet))
        print(f"sheet: {a.sheet}")
        return
    print(f"{'photo':<32} {'refiner':<12} {'hf_ratio':>9} {'sky_streaks':>12} {'mean_dE':>8} {'drift':>6} "
          f"{'a':>6} {'b':>6} {'ground_dE':>9} {'sky_share':>11} {'slope_0':>7} {'slope_T':>7} {'bowl':>6} "
          f"{'reach':>6} {'wall':>5} {'frames/s':>9}")
    for photo in a.photos:
        for ref in a.refiners:
            t0 = time.perf_counter()
            r = fly(photo, ref, a.frames, a.size, a.fov, a.depth_model, a.device, a.marks, autopilot, a.sky_grow,
                    a.refiner_seed)
            marks = r.pop("marks")
            if a.frames_dir:
                Path(a.frames_dir).mkdir(parents=True, exist_ok=True)
                np.savez_compressed(Path(a.frames_dir) / f"{Path(photo).stem}_{ref_name(ref)}.npz",
                                    frames=np.stack(r["frames"]), marks=np.array(marks), hf_ratio=r["hf_ratio"])
            rows.append((_label(photo, ref, r["hf_ratio"]), r.pop("frames")))
            results.append({"photo": Path(photo).name, "refiner": ref, **r})
            c = {"mean_de": float("nan"), "drift": float("nan"), "a": float("nan"), "b": float("nan"), **r["colour"]}
            print(f"{Path(photo).stem[:32]:<32} {ref_name(ref):<12} {r['hf_ratio']:9.3f} {r['sky_streaks']:12.2f} "
                  f"{c['mean_de']:8.1f} {c['drift']:6.1f} {c['a']:6.1f} {c['b']:6.1f} "
                  f"{r['ground_colour'].get('mean_de', float('nan')):9.1f} "
                  f"{r['sky_share'][0]:5.2f}>{r['sky_share'][1]:5.2f} "
                  f"{r['slope_0']:7.2f} {r['slope_T']:7.2f} {r['bowl']:6.3f} {r['reach']:6.2f} {r['wall']:5.2f} "
                  f"{r['fps']:9.2f}   ({time.perf_counter() - t0:.0f} s)", flush=True)
            atomic_write_text(a.out, json.dumps({"date": time.strftime("%Y-%m-%d"), "frames": a.frames,
                                                 "size": a.size, "results": results}))
    if a.sheet:
        sheet(rows, marks, Path(a.sheet))
        print(f"sheet: {a.sheet}")


if __name__ == "__main__":
    from worldgen.core.io import UserInputError

    try:
        main()
    except UserInputError as e:  # e.g. a README among the photos: one line, not a traceback
        print(f"real_flights: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # the machine's (a full disk): one line
        print(f"real_flights: {os_error_line(e)}", file=sys.stderr)
        sys.exit(1)
