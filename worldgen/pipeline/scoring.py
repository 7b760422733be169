"""Scoring two flights from the same input: loop closure, revisits, flicker, fidelity, cost; who wins.

Each generator flies the path once; that one flight serves every metric:
  loop closure   PSNR / SSIM of the frame on returning to the input's pose against the input;
  revisits       frames at the same pose (a retraced path goes out and comes back through the same
                 poses): PSNR / SSIM / MAE between the two visits, per pose;
  flicker        frame t-1 reprojected into t with its own depth and the known poses, against frame t
                 (worldgen.core.metrics.flicker), over time;
  3D consistency TSED (worldgen.core.tsed): the share of consecutive frame pairs whose SIFT matches agree
                 with the known relative pose (median symmetric epipolar distance below T_error = 2 px at
                 256 px, scaled with the image's longer side, and at least 10 matches); per pair, the
                 median distance and the number of matches;
  fidelity       (procedural inputs only) PSNR / SSIM (and LPIPS where its weights are on disk) of every
                 frame against the procedural renderer's ground truth at the same pose;
  cost           milliseconds per frame by stage, Gaussians in the world and in view, memory, over time.
Loop closure, revisits and TSED are scored on the 8-bit frames; flicker and fidelity on the float frames.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from worldgen.core.camera import Camera
from worldgen.core.io import UserInputError
from worldgen.core.metrics import (PSNR_CAP_DB, capped_mean_psnr, flicker, make_lpips, psnr, revisit_error,
                                   revisit_pairs, same_pose, ssim)
from worldgen.core.images import to_uint8
from worldgen.core.tsed import MAX_FEATURES, MIN_MATCHES, RATIO, TsedTracker, error_threshold, tsed_share
from worldgen.pipeline.config import PipelineConfig
from worldgen.pipeline.flight import Replay
from worldgen.pipeline.paths import make_path
from worldgen.pipeline.recording import FlightRecord, record_flight
from worldgen.pipeline.refiners import pipeline_refiner
from worldgen.pipeline.sources import GroundTruth, Source, scene_scale

MODES = ("persistent", "per-frame")
"""The two generators a comparison flies, in the order it flies them."""


def _float_image(img: np.ndarray) -> Tensor:
    """uint8 [H, W, 3] -> float32 [H, W, 3] in [0, 1]."""
    return torch.from_numpy(img).float() / 255.0


def ground_truth_flicker(gt: GroundTruth, poses: Tensor, camera: Camera) -> list[float]:
    """Flicker PSNR (dB) of the ground-truth frames themselves along `poses` [T, 4, 4] (nan at t = 0): what
    the metric gives a perfectly consistent but sharp, aliased flight (resampling, view-dependent shading)."""
    out = [math.nan]
    prev = gt(camera.with_pose(poses[0]))
    for t in range(1, poses.shape[0]):
        cur = gt(camera.with_pose(poses[t]))
        out.append(flicker(prev.rgb, prev.depth, prev.camera, cur.rgb, cur.camera).psnr)
        prev = cur
    return out


def ground_truth_tsed(gt: GroundTruth, poses: Tensor, camera: Camera) -> dict:
    """TSED figures of the ground-truth frames themselves along `poses` [T, 4, 4]: what the metric gives a
    perfectly consistent flight of this world (SIFT finds too few matches on smooth terrain, some on the sky).
    Returns {"tsed", "tsed_median_sed", "tsed_matches_mean", "series": {"tsed_sed", "tsed_matches"}} (T values)."""
    tracker = TsedTracker()
    seds, matches = [], []
    for t in range(poses.shape[0]):
        cam = camera.with_pose(poses[t])
        pair = tracker(to_uint8(gt(cam).rgb), cam)
        seds.append(pair.median_sed if pair is not None else math.nan)
        matches.append(pair.matches if pair is not None else math.nan)
    threshold = error_threshold(camera.width, camera.height)
    return {"tsed": tsed_share(seds[1:], matches[1:], threshold), "tsed_median_sed": _median(seds[1:]),
            "tsed_matches_mean": _mean(matches[1:]), "series": {"tsed_sed": seds, "tsed_matches": matches}}


_HIGHER_BETTER = {"psnr": True, "ssim": True, "mae": False, "lpips": False, "ms": False, "share": True, "px": False}


def _mean(values) -> float:
    v = [x for x in values if x is not None and not math.isnan(x)]
    return sum(v) / len(v) if v else math.nan


def _median(values) -> float:
    v = [x for x in values if x is not None and not math.isnan(x)]
    return float(np.median(v)) if v else math.nan


def tsed_summary(rec: FlightRecord) -> dict:
    """TSED of a flight at the default thresholds (see worldgen.core.tsed), the median over pairs of their
    median SED (px), the mean number of matches per pair, and T_error (px) at this frame size; nan where not
    measured."""
    H, W = rec.frames[0].shape[:2]
    threshold = error_threshold(W, H)
    seds, matches = rec.tsed_sed[1:], rec.tsed_matches[1:]
    measured = any(not math.isnan(n) for n in matches)
    return {"tsed": tsed_share(seds, matches, threshold) if measured else math.nan,
            "tsed_median_sed": _median(seds), "tsed_matches_mean": _mean(matches), "tsed_threshold_px": threshold}


def score(rec: FlightRecord, pairs: list[tuple[int, int]]) -> dict:
    """Summary and per-pair figures of one flight (JSON-ready; nan where a figure does not apply)."""
    frames = rec.frames
    T = len(frames)
    closes = same_pose(rec.poses[0], rec.poses[-1]) and T > 1
    loop = {"t": T - 1, "psnr": math.nan, "ssim": math.nan}
    if closes:
        a, b = _float_image(frames[0]), _float_image(frames[-1])
        loop.update(psnr=psnr(b, a), ssim=ssim(b, a))
    revisits = []
    for t1, t2 in pairs:
        s = revisit_error(_float_image(frames[t1]), _float_image(frames[t2]))
        revisits.append({"t1": t1, "t2": t2, "psnr": s.psnr, "ssim": s.ssim, "mae": s.mae})
    steps = max(T - 1, 1)
    ms_by_stage = {k: sum(v[1:]) / steps for k, v in sorted(rec.ms.items())}
    total = sum(rec.ms_total[1:]) / steps
    summary = {
        "loop_closure_psnr": loop["psnr"],
        "loop_closure_ssim": loop["ssim"],
        "revisit_psnr": capped_mean_psnr([r["psnr"] for r in revisits]),
        "revisit_ssim": _mean(r["ssim"] for r in revisits),
        "revisit_mae": _mean(r["mae"] for r in revisits),
        "flicker_psnr": capped_mean_psnr(rec.flicker_psnr[1:]),
        "flicker_mae": _mean(rec.flicker_mae[1:]),
        **tsed_summary(rec),
        "fidelity_psnr": capped_mean_psnr(rec.fidelity_psnr[1:]),
        "fidelity_ssim": _mean(rec.fidelity_ssim[1:]),
        "fidelity_lpips": _mean(rec.fidelity_lpips[1:]),
        "ms_per_frame": total,
        "frames_per_second": 1000.0 / total if total > 0 else math.nan,
        "ms_by_stage": ms_by_stage,
        "setup_ms": rec.setup_ms,
        "gaussians_final": rec.gaussians[-1],
        "gaussians_in_view_mean": _mean(rec.gaussians_in_view[1:]),
        "world_mb_final": rec.world_mb[-1],
        "rss_mb_max": max(rec.rss_mb),
        "cuda_mb_max": max(rec.cuda_mb),
    }
    keys = ("ms_total", "gaussians", "gaussians_in_view", "world_mb", "rss_mb", "cuda_mb", "flicker_psnr",
            "flicker_mae", "flicker_coverage", "fidelity_psnr", "fidelity_ssim", "fidelity_lpips", "tsed_sed",
            "tsed_matches")
    series = {k: getattr(rec, k) for k in keys}
    series["ms_by_stage"] = rec.ms
    return {"summary": summary, "loop_closure": loop, "revisits": revisits, "series": series}


# (summary key, label, unit, kind) in report order; kind picks "higher is better" and the tie margin.
HEADLINE = [
    ("loop_closure_psnr", "loop closure PSNR", "dB", "psnr"),
    ("loop_closure_ssim", "loop closure SSIM", "", "ssim"),
    ("revisit_psnr", "revisit PSNR (mean over poses)", "dB", "psnr"),
    ("revisit_ssim", "revisit SSIM", "", "ssim"),
    ("flicker_psnr", "flicker: reprojected t-1 vs t, PSNR", "dB", "psnr"),
    ("flicker_mae", "flicker: reprojected t-1 vs t, MAE", "", "mae"),
    ("tsed", "3D consistency: TSED (share of consecutive pairs agreeing with the cameras)", "share", "share"),
    ("tsed_median_sed", "3D consistency: median epipolar distance of SIFT matches", "px", "px"),
    ("fidelity_psnr", "fidelity vs ground truth, PSNR", "dB", "psnr"),
    ("fidelity_ssim", "fidelity vs ground truth, SSIM", "", "ssim"),
    ("fidelity_lpips", "fidelity vs ground truth, LPIPS", "", "lpips"),
    ("ms_per_frame", "time per frame", "ms", "ms"),
]


def winner(kind: str, a: float, b: float) -> str:
    """'persistent' if value a is better than the per-frame value b, 'per-frame' if worse, 'tie' within
    a small margin (0.1 dB PSNR, 0.002 SSIM, 0.01 of a share (TSED), 2 % MAE/LPIPS, 5 % time, 5 % or 0.05 px
    of distances), 'n/a' if either is missing."""
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return "n/a"
    a, b = min(a, PSNR_CAP_DB) if kind == "psnr" else a, min(b, PSNR_CAP_DB) if kind == "psnr" else b
    margin = {"psnr": 0.1, "ssim": 0.002, "share": 0.01}.get(kind)
    diff = a - b if _HIGHER_BETTER[kind] else b - a
    tol = margin if margin is not None else (0.02 if kind in ("mae", "lpips") else 0.05) * max(abs(a), abs(b))
    if kind == "px":
        tol = max(tol, 0.05)  # SIFT's own localisation noise: hundredths of a pixel are no difference
    return "tie" if abs(diff) <= tol else ("persistent" if diff > 0 else "per-frame")


def format_value(v, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 100 and unit == ""):
        return f"{int(v):,}"
    if isinstance(v, float) and math.isinf(v):
        return "∞ (identical)"
    if unit == "dB":
        return f"{v:.2f} dB"
    if unit == "share":
        return f"{100 * v:.0f} %"
    if unit == "px":
        return f"{v:.2f} px"
    if unit == "ms":
        return f"{v:,.0f} ms" if v >= 100 else f"{v:.1f} ms"
    return f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"


def verdicts(summaries: dict, lpips_note: str, has_truth: bool) -> tuple[dict, list[str]]:
    """Per headline metric the winner, and one plain sentence each (saying so where persistent loses)."""
    p, q = summaries["persistent"], summaries["per-frame"]
    wins, lines = {}, []
    for key, label, unit, kind in HEADLINE:
        w = winner(kind, p[key], q[key])
        wins[key] = w
        if w == "n/a":
            if key.startswith("fidelity") and not has_truth:
                continue
            if key == "fidelity_lpips":
                lines.append(f"{label}: not measured ({lpips_note.split(' (')[0]}).")
            elif key.startswith("loop_closure"):
                lines.append(f"{label}: not measured (the path does not return to the input's pose).")
            elif key.startswith("revisit"):
                lines.append(f"{label}: not measured (the path passes no pose twice; use --retrace).")
            elif key.startswith("tsed"):
                lines.append(f"{label}: not measured (no consecutive pair had SIFT matches).")
            continue
        vals = f"persistent {format_value(p[key], unit)}, per-frame {format_value(q[key], unit)}"
        if w == "persistent":
            lines.append(f"Persistent wins {label}: {vals}.")
        elif w == "per-frame":
            lines.append(f"Persistent does NOT win {label}: per-frame is better ({vals}).")
        else:
            lines.append(f"{label}: a tie ({vals}).")
    return wins, lines


def versus_verdicts(refiners: tuple[str, str], a: dict[str, dict], b: dict[str, dict]) -> list[str]:
    """One sentence per mode (MODES order) saying which of two refiners wins TSED there (ties and missing
    values as `winner` has them).

    Args:
        refiners: the two refiners' names (a's, then b's).
        a, b: mode -> summary (`score()["summary"]`) of each refiner's flights along the same poses.
    """
    lines = []
    for mode in MODES:
        x, y = a[mode]["tsed"], b[mode]["tsed"]
        w = winner("share", x, y)
        vals = f"{refiners[0]} {format_value(x, 'share')}, {refiners[1]} {format_value(y, 'share')}"
        if w == "n/a":
            lines.append(f"{mode.capitalize()} flights: no TSED winner, not measured on every flight ({vals}).")
        elif w == "tie":
            lines.append(f"{mode.capitalize()} flights: the refiners tie on TSED ({vals}).")
        else:
            best = refiners[0] if w == "persistent" else refiners[1]  # winner() names a's side "persistent"
            lines.append(f"{mode.capitalize()} flights: {best} wins TSED ({vals}).")
    return lines


def evaluate(source: Source, pipeline: PipelineConfig = PipelineConfig(), *, path: str = "loop", frames: int = 33,
             retrace: bool = True, progress: bool = False, lpips: bool = True, poses: Tensor | None = None
             ) -> tuple[dict, dict[str, FlightRecord], GroundTruth | None]:
    """Fly both generators from `source` along one path and score them.

    The persistent flight goes first; on a reactive path (autopilot) it steers, and the per-frame flight
    replays its poses. Renderer, refiner, generator settings, speed and autopilot come from `pipeline`.

    `poses` [T, 4, 4] (camera-to-world, T = `frames`, pose 0 the input's), when given, are flown by both
    generators instead of building `path` (then `path` and `retrace` are not used): e.g. another refiner's
    persistent flight, so that two refiners are scored along exactly the same cameras.

    Returns (metrics, records, ground truth or None). `metrics` is metrics.json's content minus the run
    description: {"renderer", "refiner", "scene_scale", "pairs", "lpips", "tsed" (its settings), "persistent":
    score(), "per-frame": score(), "ground_truth_flicker_psnr", "wins", "verdicts"}.
    """
    from renderers import get_renderer

    if frames < 3:
        raise UserInputError(f"--frames must be at least 3, got {frames}")
    if poses is not None and tuple(poses.shape) != (frames, 4, 4):
        raise ValueError(f"poses must be [{frames}, 4, 4] (frames, 4, 4), got {tuple(poses.shape)}")
    frame0 = source.frame0
    dev = frame0.rgb.device
    renderer = get_renderer(dev.type)
    refiner = pipeline_refiner(pipeline, dev)
    scale = scene_scale(frame0)
    cam_path = Replay(poses) if poses is not None else make_path(
        path, frame0.camera, scale, frames, speed=pipeline.speed, retrace=retrace, autopilot=pipeline.autopilot)
    gt = GroundTruth(source.world) if source.world is not None else None
    metric, lpips_note = make_lpips(dev) if (lpips and gt is not None) else (None, "LPIPS: not needed")
    if gt is None:
        lpips_note = "LPIPS: only with ground truth"
    fly = dict(renderer=renderer, refiner=refiner, config=pipeline.generator, gt=gt, lpips=metric, progress=progress)
    records = {"persistent": record_flight("persistent", source, cam_path, frames, **fly)}
    poses = records["persistent"].poses  # reactive paths: the per-frame baseline replays the same poses
    records["per-frame"] = record_flight("per-frame", source, Replay(poses), frames, **fly)
    pairs = revisit_pairs(poses)
    scores = {m: score(records[m], pairs) for m in MODES}
    floor = ground_truth_flicker(gt, poses, frame0.camera.to("cpu")) if gt is not None else None
    wins, lines = verdicts({m: scores[m]["summary"] for m in MODES}, lpips_note, gt is not None)
    W, H = frame0.camera.width, frame0.camera.height
    tsed = {"threshold_px": error_threshold(W, H), "min_matches": MIN_MATCHES, "max_features": MAX_FEATURES,
            "ratio": RATIO, "mutual": True}
    metrics = {"renderer": renderer.name, "refiner": refiner.name, "refiner_weights": getattr(refiner, "weights", None),
               "scene_scale": scale, "pairs": pairs,
               "lpips": lpips_note, "tsed": tsed, **scores, "ground_truth_flicker_psnr": floor,
               "ground_truth_tsed": ground_truth_tsed(gt, poses, frame0.camera.to("cpu")) if gt is not None else None,
               "wins": wins, "verdicts": lines}
    return metrics, records, gt
