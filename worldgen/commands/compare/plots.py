"""The comparison report's pictures, drawn with PIL alone: line charts, a strip of frames, the loop closure.

Every PNG is written atomically; photos are reduced to a palette (`PHOTO_COLORS`), charts are exact.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from worldgen.core.images import save_png_u8, thumbnail
from worldgen.core.plots import Series, line_plot
from worldgen.core.metrics import PSNR_CAP_DB
from worldgen.pipeline.recording import FlightRecord
from worldgen.pipeline.scoring import MODES

PHOTO_COLORS = 128
"""Palette size of the report's pictures (frame strips, loop-closure views): about a third of the bytes."""
COLORS = {"persistent": (31, 119, 180), "per-frame": (230, 120, 20), "ground truth": (110, 110, 110)}


def frame_strip(rows: list[tuple[str, list[np.ndarray]]], ts: list[int], width: int = 96) -> np.ndarray:
    """A contact sheet: one row per (label, frames), the frames at indices `ts` as thumbnails (longer side `width`)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=11)
    thumbs = [[thumbnail(frames[t], width) for t in ts] for _, frames in rows]
    th, tw = thumbs[0][0].shape[:2]
    lw, pad = 80, 3
    img = Image.new("RGB", (lw + len(ts) * (tw + pad), 16 + len(rows) * (th + pad)), "white")
    d = ImageDraw.Draw(img)
    for j, t in enumerate(ts):
        d.text((lw + j * (tw + pad) + 2, 2), f"t={t}", fill="black", font=font)
    for i, (label, _) in enumerate(rows):
        y = 16 + i * (th + pad)
        d.text((2, y + th // 2 - 6), label, fill="black", font=font)
        for j in range(len(ts)):
            img.paste(Image.fromarray(thumbs[i][j]), (lw + j * (tw + pad), y))
    return np.asarray(img)


def make_plots(out: Path, metrics: dict, records: dict[str, FlightRecord], gt_frames: list[np.ndarray] | None,
               floor: list[float] | None) -> dict[str, str]:
    """Write the report's PNGs under out/plots; returns name -> relative path."""
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    T = len(records["persistent"].frames)
    ts = list(range(T))
    made = {}

    def lines(key: str, cap: bool = False) -> list[Series]:
        out_ = []
        for m in MODES:
            ys = metrics[m]["series"][key]
            ys = [min(y, PSNR_CAP_DB) if cap and y is not None and not math.isnan(y) else y for y in ys]
            out_.append(Series(m, ts, ys, COLORS[m]))
        return out_

    cap_note = f"identical frames (infinite PSNR) drawn at {PSNR_CAP_DB:.0f} dB"
    # revisits: per pose
    pairs = metrics["pairs"]
    if pairs:
        ser = []
        for m in MODES:
            rv = metrics[m]["revisits"]
            ser.append(Series(m, [r["t1"] for r in rv], [min(r["psnr"], PSNR_CAP_DB) for r in rv], COLORS[m]))
        line_plot(plots / "revisit.png", "Revisit consistency: the same pose visited twice (higher is better)",
                  "frame of the first visit (second visit: T-1-t on a retrace)", "PSNR, dB", ser, note=cap_note)
        made["revisit"] = "plots/revisit.png"
    # flicker
    fl = lines("flicker_psnr", cap=True)
    if floor is not None:
        capped = [min(y, PSNR_CAP_DB) if not math.isnan(y) else y for y in floor]
        fl.append(Series("ground truth (same metric)", ts, capped, COLORS["ground truth"], dashed=True))
    line_plot(plots / "flicker.png", "Flicker: frame t-1 reprojected into t vs frame t (higher is steadier)",
              "frame t", "PSNR, dB", fl, note=cap_note)
    made["flicker"] = "plots/flicker.png"
    # fidelity
    if gt_frames is not None:
        line_plot(plots / "fidelity_psnr.png", "Fidelity: frame vs procedural ground truth (higher is better)",
                  "frame t", "PSNR, dB", lines("fidelity_psnr", cap=True))
        line_plot(plots / "fidelity_ssim.png", "Fidelity: SSIM vs ground truth (higher is better)", "frame t", "SSIM",
                  lines("fidelity_ssim"))
        made["fidelity_psnr"] = "plots/fidelity_psnr.png"
        made["fidelity_ssim"] = "plots/fidelity_ssim.png"
        if any(not math.isnan(v) for m in MODES for v in metrics[m]["series"]["fidelity_lpips"]):
            line_plot(plots / "fidelity_lpips.png", "Fidelity: LPIPS vs ground truth (lower is better)", "frame t",
                      "LPIPS", lines("fidelity_lpips"))
            made["fidelity_lpips"] = "plots/fidelity_lpips.png"
    # cost
    line_plot(plots / "cost_ms.png", "Time per frame (render + refine + lift + sky)", "frame t", "ms",
              [Series(m, ts[1:], records[m].ms_total[1:], COLORS[m]) for m in MODES], ymin=0)
    g = []
    for m in MODES:
        g.append(Series(f"{m}: in the world", ts, records[m].gaussians, COLORS[m]))
        g.append(Series(f"{m}: in view", ts, records[m].gaussians_in_view, COLORS[m], dashed=True))
    line_plot(plots / "gaussians.png", "Gaussians in the world (solid) and in view (dashed)", "frame t", "Gaussians", g,
              ymin=0)
    mem = [Series(f"{m}: Gaussian tensors", ts, records[m].world_mb, COLORS[m]) for m in MODES]
    mem += [Series(f"{m}: process RSS", ts, records[m].rss_mb, COLORS[m], dashed=True) for m in MODES]
    line_plot(plots / "memory.png", "Memory (process RSS is shared: the flights run one after the other)", "frame t",
              "MB", mem, ymin=0)
    made.update(cost_ms="plots/cost_ms.png", gaussians="plots/gaussians.png", memory="plots/memory.png")
    # pictures: loop closure and a strip
    pf, qf = records["persistent"].frames, records["per-frame"].frames
    thumb_w = min(128, pf[0].shape[1])
    loop_rows = [("input", [pf[0]]), ("persistent", [pf[-1]]), ("per-frame", [qf[-1]])]
    views = [np.pad(thumbnail(f[0], thumb_w), ((0, 0), (0, 4), (0, 0)), constant_values=255) for _, f in loop_rows]
    save_png_u8(plots / "loop_closure.png", np.concatenate(views, 1), colors=PHOTO_COLORS, optimize=True)
    made["loop_closure"] = "plots/loop_closure.png"
    pick = sorted(set(round(i * (T - 1) / 6) for i in range(7)))
    rows = [("persistent", pf), ("per-frame", qf)] + ([("ground truth", gt_frames)] if gt_frames is not None else [])
    strip = frame_strip(rows, pick, width=min(96, pf[0].shape[1]))
    save_png_u8(plots / "frames.png", strip, colors=PHOTO_COLORS, optimize=True)
    made["frames"] = "plots/frames.png"
    return made
