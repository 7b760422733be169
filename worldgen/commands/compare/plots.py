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
from worldgen.core.tsed import tsed_share
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


TSED_CURVE = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
"""Multiples of T_error at which the report's TSED curve is drawn."""


def tsed_plots(plots: Path, metrics: dict, ts: list[int]) -> dict[str, str]:
    """plots/tsed_sed.png (median SED per consecutive pair, with T_error), tsed_matches.png (SIFT matches per
    pair, with T_matches) and tsed_curve.png (TSED against the threshold); returns name -> relative path."""
    threshold = metrics["tsed"]["threshold_px"]
    min_matches = metrics["tsed"]["min_matches"]
    gt = metrics.get("ground_truth_tsed")
    cap = 5 * threshold
    gray = COLORS["ground truth"]

    def series(key: str, capped: bool) -> list[Series]:
        rows = [(m, metrics[m]["series"][key], COLORS[m], False) for m in MODES]
        if gt is not None:
            rows.append(("ground truth (same metric)", gt["series"][key], gray, True))
        out = []
        for label, ys, color, dashed in rows:
            ys = [None if y is None else (min(y, cap) if capped else y) for y in ys]
            out.append(Series(label, ts[1:], ys[1:], color, dashed))
        return out

    sed = series("tsed_sed", True) + [Series(f"T_error = {threshold:.2f} px", [ts[1], ts[-1]], [threshold] * 2,
                                             (200, 40, 40), dashed=True)]
    line_plot(plots / "tsed_sed.png", "Median epipolar distance of SIFT matches, frames t-1 and t (lower is better)",
              "frame t", "median SED, px", sed, ymin=0, note=f"values above {cap:.1f} px drawn at {cap:.1f} px")
    matches = series("tsed_matches", False) + [Series(f"T_matches = {min_matches}", [ts[1], ts[-1]],
                                                      [min_matches] * 2, (200, 40, 40), dashed=True)]
    line_plot(plots / "tsed_matches.png", "SIFT matches between frames t-1 and t (ratio test, mutual)", "frame t",
              "matches", matches, ymin=0)
    xs = [k * threshold for k in TSED_CURVE]
    curve = []
    rows = [(m, metrics[m]["series"], COLORS[m], False) for m in MODES]
    if gt is not None:
        rows.append(("ground truth (same metric)", gt["series"], gray, True))
    for label, ser, color, dashed in rows:
        seds = [math.nan if y is None else y for y in ser["tsed_sed"][1:]]
        n = [math.nan if y is None else y for y in ser["tsed_matches"][1:]]
        curve.append(Series(label, xs, [tsed_share(seds, n, x, min_matches) for x in xs], color, dashed))
    line_plot(plots / "tsed_curve.png", "TSED: share of consistent pairs against the threshold T_error (higher is "
              "better)", "T_error, px", "share of pairs", curve, ymin=0, note=f"default T_error {threshold:.2f} px")
    return {"tsed_sed": "plots/tsed_sed.png", "tsed_matches": "plots/tsed_matches.png",
            "tsed_curve": "plots/tsed_curve.png"}


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
    made.update(tsed_plots(plots, metrics, ts))
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
