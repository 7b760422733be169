"""Line charts drawn with PIL alone (the comparison report's plots, the training curves)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worldgen.core.images import save_png_u8


@dataclass
class Series:
    """One line of a plot: xs, ys (nan breaks the line), colour, dashed or not."""

    label: str
    xs: list
    ys: list
    color: tuple
    dashed: bool = False


def _nice_ticks(lo: float, hi: float, n: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [lo, hi], about n of them (whole numbers only if `integer`)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = max((hi - lo) / n, 1.0) if integer else (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _tick_label(v: float) -> str:
    if abs(v) >= 1e6:
        return f"{v / 1e6:g}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:g}k"
    return f"{v:.4g}"


def _dashed(d, pts: list[tuple[float, float]], color: tuple, on: float = 6.0, off: float = 4.0) -> None:
    """Draw a dashed polyline through `pts` (pixel coordinates)."""
    phase = 0.0  # distance into the current on+off period
    for (xa, ya), (xb, yb) in zip(pts, pts[1:]):
        length = math.hypot(xb - xa, yb - ya)
        pos = 0.0
        while pos < length:
            in_on = phase < on
            step = min((on - phase) if in_on else (on + off - phase), length - pos)
            if in_on:
                f0, f1 = pos / length, (pos + step) / length
                a = (xa + f0 * (xb - xa), ya + f0 * (yb - ya))
                b = (xa + f1 * (xb - xa), ya + f1 * (yb - ya))
                d.line([a, b], fill=color, width=2)
            pos += step
            phase = (phase + step) % (on + off)


def line_plot(path: Path, title: str, xlabel: str, ylabel: str, series: list[Series], *, size=(640, 300),
              note: str | None = None, ymin: float | None = None) -> None:
    """Draw a line chart (title, legend, axes, ticks, grid) into PNG `path`, written atomically.

    Non-finite y values break the line; series with few points also get dots.
    """
    from PIL import Image, ImageDraw, ImageFont

    W, H = size
    font = ImageFont.load_default(size=12)
    small = ImageFont.load_default(size=11)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # legend entries flow left to right under the title
    L, R, B = 62, 14, 54
    legend, x, y = [], L, 26
    for s in series:
        w = 26 + probe.textlength(s.label, font=small) + 14
        if x + w > W - R and x > L:
            x, y = L, y + 15
        legend.append((s, x, y))
        x += w
    Tm = y + 22
    H = H + (Tm - 48)  # taller by the legend's extra rows
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    d.text((L, 7), title, fill="black", font=font)
    if note:
        d.text((W - R - d.textlength(note, font=small), H - 16), note, fill=(120, 120, 120), font=small)
    for s, lx, ly in legend:
        if s.dashed:
            _dashed(d, [(lx, ly + 7), (lx + 20, ly + 7)], s.color, on=5, off=3)
        else:
            d.line([(lx, ly + 7), (lx + 20, ly + 7)], fill=s.color, width=3)
        d.text((lx + 26, ly), s.label, fill="black", font=small)
    pts = [(x, y) for s in series for x, y in zip(s.xs, s.ys)
           if y is not None and math.isfinite(y) and math.isfinite(x)]
    if not pts:
        d.text((L, H // 2), "no data", fill="gray", font=font)
    else:
        x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
        y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
        if ymin is not None:
            y0 = min(y0, ymin)
        if x1 == x0:
            x0, x1 = x0 - 1, x1 + 1
        pad = 0.06 * (y1 - y0) if y1 > y0 else max(abs(y0) * 0.1, 1.0)
        y0, y1 = (y0 - pad if ymin is None else y0), y1 + pad
        px = lambda x: L + (x - x0) / (x1 - x0) * (W - L - R)  # noqa: E731
        py = lambda y: H - B - (y - y0) / (y1 - y0) * (H - B - Tm)  # noqa: E731
        for yt in _nice_ticks(y0, y1):
            d.line([(L, py(yt)), (W - R, py(yt))], fill=(228, 228, 228))
            lab = _tick_label(yt)
            d.text((L - 6 - d.textlength(lab, font=small), py(yt) - 7), lab, fill="black", font=small)
        integer_x = all(float(x).is_integer() for x, _ in pts)
        for xt in _nice_ticks(x0, x1, 8, integer=integer_x):
            d.line([(px(xt), H - B), (px(xt), H - B + 4)], fill="black")
            lab = _tick_label(xt)
            d.text((px(xt) - d.textlength(lab, font=small) / 2, H - B + 6), lab, fill="black", font=small)
        d.rectangle([L, Tm, W - R, H - B], outline="black")
        for s in series:
            segs, seg = [], []
            for x, y in zip(s.xs, s.ys):
                if y is None or not math.isfinite(y):
                    if seg:
                        segs.append(seg)
                    seg = []
                else:
                    seg.append((px(x), py(y)))
            if seg:
                segs.append(seg)
            for sg in segs:
                if s.dashed:
                    _dashed(d, sg, s.color)
                elif len(sg) > 1:
                    d.line(sg, fill=s.color, width=2, joint="curve")
                if len(s.xs) <= 60:
                    for (u, v) in sg:
                        d.ellipse([u - 2, v - 2, u + 2, v + 2], fill=s.color)
    d.text((L + (W - L - R) / 2 - d.textlength(xlabel, font=small) / 2, H - 31), xlabel, fill="black", font=small)
    lab = Image.new("RGB", (int(d.textlength(ylabel, font=small)) + 4, 14), "white")
    ImageDraw.Draw(lab).text((2, 0), ylabel, fill="black", font=small)
    lab = lab.rotate(90, expand=True)
    img.paste(lab, (4, Tm + (H - B - Tm) // 2 - lab.height // 2))
    save_png_u8(path, np.asarray(img), optimize=True)


