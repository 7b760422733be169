"""`worldgen compare`: the persistent generator against the per-frame baseline, on the same input,
camera path, renderer and refiner, with the figures that tell them apart.

    worldgen compare PHOTO [--fov 90] [--path loop] [--frames 33] [--size 128x128] [--out DIR]
    worldgen compare --synthetic 1000000 [...]      # a procedural world: exact depth and ground truth

Each generator flies the path once; that one flight serves every metric:
  loop closure   PSNR / SSIM of the frame on returning to the input's pose against the input;
  revisits       frames at the same pose (the default path goes out and comes back through the same
                 poses): PSNR / SSIM / MAE between the two visits, per pose;
  flicker        frame t-1 reprojected into t with its own depth and the known poses, against frame t
                 (worldgen.core.metrics.flicker), over time;
  fidelity       (--synthetic only) PSNR / SSIM (and LPIPS where its weights are on disk) of every frame
                 against the procedural renderer's ground truth at the same pose;
  cost           milliseconds per frame by stage, Gaussians in the world and in view, memory, over time.
A reactive path (autopilot) is steered by the persistent flight; the per-frame flight replays its poses.

Files written to --out (each atomically):
  video.mp4      side by side, labelled: persistent | per-frame (| ground truth with --synthetic)
  metrics.json   per-step series, per-revisit scores, summaries and verdicts
  report.html    one page with PNG plots (no scripts; readable offline)
  plots/*.png    the plots, the loop-closure views and a strip of frames
  config.json    the resolved configuration
Frames are kept in memory as 8-bit images (what the video shows); loop closure and revisits are
scored on those; flicker and fidelity on the float frames.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import json
import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from typing_extensions import Annotated

from worldgen.core.camera import Camera
from worldgen.cli import Command
from worldgen.core.frame import Frame
from worldgen.core.io import UserInputError, atomic_write, atomic_write_text, check_writable_dir
from worldgen.core.metrics import (
    PSNR_CAP_DB,
    capped_mean_psnr,
    flicker,
    make_lpips,
    psnr,
    revisit_error,
    revisit_pairs,
    same_pose,
    ssim,
)

try:
    import tyro

    _Positional = tyro.conf.Positional
    _Arg = tyro.conf.arg
except ImportError:  # tyro is a dependency; this only keeps the module importable without it
    _Positional = Annotated  # type: ignore[assignment]
    _Arg = lambda **kw: None  # noqa: E731

MODES = ("persistent", "per-frame")


@dataclass(frozen=True)
class CompareConfig:
    """Compare the persistent generator with the per-frame baseline (Infinite Nature) on one input."""

    image: _Positional[Annotated[str | None, _Arg(metavar="IMAGE")]] = None  # type: ignore[valid-type]
    """Input photo (as for `worldgen fly`); or give --synthetic instead."""
    synthetic: int | None = None
    """Procedural world seed instead of a photo: exact depth, and ground truth for fidelity. Held-out
    evaluation seeds are 1000000..1000999 (refine/synth/splits.py)."""
    depth: str | None = None
    """Photo only: depth or disparity map (.npy, .npz or 16-bit .png); default: the built-in landscape prior."""
    depth_kind: Literal["depth", "disparity"] = "depth"
    """Photo only: what the --depth file holds."""
    camera: str | None = None
    """Photo only: JSON with the photo's intrinsics (fx, fy, cx, cy, width, height); overrides --fov."""
    fov: float = 60.0
    """Photo only: horizontal field of view, degrees (the cube faces in ../shared/data/real are 90)."""
    path: str = "loop"
    """Camera path: loop, autopilot, forward, or a keyframes FILE.json."""
    retrace: bool = True
    """Fly the path's first half out and come back through the same poses, ending at the input's pose
    (one flight then gives loop closure and revisits). loop with --no-retrace is the ellipse."""
    frames: int = 33
    """Frames per flight, including frame 0 (the input). Odd numbers make every retraced pose a revisit."""
    size: str = "auto"
    """Working size WxH; auto: a photo's longer side 256, a procedural world 256x256."""
    speed: float = 0.02
    """Camera speed per frame, as a fraction of the input's lower-quartile scene depth."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: cuda (gsplat renderer) when available, else cpu (pure-PyTorch renderer)."""
    out: str = "runs/compare"
    """Output directory."""
    fps: int = 10
    """Frame rate of video.mp4."""
    video: bool = True
    """Write video.mp4."""
    title: str | None = None
    """Report title; default: the input's name."""
    credit: str | None = None
    """Credit line for the input shown in the report (e.g. the photo's author and licence)."""
    progress: bool = True
    """Show progress bars."""


# ============================================================================ inputs
@dataclass
class Source:
    """What both generators start from.

    Attributes:
        frame0: the input Frame (rgb [H, W, 3], depth [H, W] with +inf sky, sky [H, W], camera), on the device.
        name: short name of the input (file stem, or synth_<seed>).
        world: the procedural World (ground truth at any pose), or None for a photo.
        info: JSON-ready description (file, fov; or seed, split, climate, flight parameters).
    """

    frame0: Frame
    name: str
    world: object | None = None
    info: dict = field(default_factory=dict)


def photo_source(image: str, size: str, device: torch.device, *, fov: float = 60.0, depth: str | None = None,
                 depth_kind: str = "depth", camera: str | None = None) -> Source:
    """Frame 0 of a photo exactly as `worldgen fly` builds it (centre crop, resize, depth prior or file)."""
    from worldgen.commands.fly import FlyConfig, first_frame

    fcfg = FlyConfig(image=image, depth=depth, depth_kind=depth_kind, camera=camera,  # type: ignore[arg-type]
                     fov=fov, size=size)
    frame0 = first_frame(fcfg, device)
    info = {"kind": "photo", "file": os.path.basename(image), "fov_x_deg": round(frame0.camera.fov_x_deg, 3),
            "depth": os.path.basename(depth) if depth else "landscape prior"}
    return Source(frame0=frame0, name=Path(image).stem, world=None, info=info)


def synthetic_source(seed: int, width: int, height: int, device: torch.device) -> Source:
    """Frame 0 of procedural world `seed`: its flight's first pose, rendered with exact depth and sky.

    Raises UserInputError for a negative seed.
    """
    from refine.synth import make_flight, make_world, render_frame
    from refine.synth.splits import split_of

    if seed < 0:
        raise UserInputError(f"--synthetic must be a seed >= 0, got {seed}")
    world = make_world(seed, device=device)
    flight = make_flight(world, 1, width, height, seed)
    frame0 = render_frame(world, flight.camera(0))
    info = {"kind": "synthetic", "seed": seed, "split": split_of(seed), "climate": world.climate,
            "flight": flight.params}
    return Source(frame0=frame0.to(device), name=f"synth_{seed}", world=world, info=info)


def source_from_config(cfg: CompareConfig, device: torch.device) -> Source:
    """The input named by `cfg` (exactly one of image / --synthetic); UserInputError otherwise."""
    from worldgen.commands.fly import working_size

    if (cfg.image is None) == (cfg.synthetic is None):
        raise UserInputError("give either an input photo or --synthetic SEED (exactly one)")
    if cfg.synthetic is not None:
        W, H = (256, 256) if cfg.size == "auto" else working_size(cfg.size, 1, 1)
        return synthetic_source(cfg.synthetic, W, H, device)
    return photo_source(cfg.image, cfg.size, device, fov=cfg.fov, depth=cfg.depth, depth_kind=cfg.depth_kind,
                        camera=cfg.camera)


class GroundTruth:
    """Procedural ground truth at any camera, rendered once per distinct pose (cached on the CPU)."""

    def __init__(self, world):
        self.world = world
        self._cache: dict[bytes, Frame] = {}

    def __call__(self, camera: Camera) -> Frame:
        """The exact Frame (rgb [H, W, 3], z-depth [H, W], sky [H, W]) of `camera`, on the CPU."""
        from refine.synth import render_frame

        key = camera.c2w.detach().cpu().numpy().astype(np.float32).tobytes() + camera.K.detach().cpu().numpy().tobytes()
        if key not in self._cache:
            self._cache[key] = render_frame(self.world, camera.to(self.world.device)).to("cpu")
        return self._cache[key]


# ============================================================================ flying
def gaussians_in_view(means: Tensor, camera: Camera) -> int:
    """How many Gaussian centres (means [N, 3], world) project inside `camera`'s image in front of it."""
    if means.shape[0] == 0:
        return 0
    uv, z = camera.to(means.device).project(means)
    inside = (z > 1e-6) & (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] >= 0) & (uv[:, 1] < camera.height)
    return int(inside.sum())


def _rss_mb() -> float:
    """Current resident memory of this process, MB (Linux /proc; else the peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _u8(rgb: Tensor) -> np.ndarray:
    """[H, W, 3] float in [0, 1] -> uint8 numpy (rounded), on the CPU."""
    return (rgb.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def _f32(img: np.ndarray) -> Tensor:
    return torch.from_numpy(img).float() / 255.0


@dataclass
class FlightRecord:
    """One generator's flight and its per-step figures (index t = frame; t = 0 is the input).

    Attributes:
        mode: "persistent" or "per-frame".
        poses: [T, 4, 4] camera-to-world poses flown (CPU).
        frames: T uint8 images [H, W, 3].
        setup_ms: building frame 0's world.
        ms: stage -> T values (0 at t = 0); ms_total: T wall-clock step times.
        gaussians, gaussians_in_view: T counts (after each step; in view of that step's camera).
        world_mb: T sizes of the Gaussian tensors; rss_mb: T process resident sizes; cuda_mb: T (CUDA only).
        flicker_psnr, flicker_mae, flicker_coverage: T values (nan at t = 0).
        fidelity_psnr, fidelity_ssim, fidelity_lpips: T values against ground truth (nan where none).
    """

    mode: str
    poses: Tensor
    frames: list
    setup_ms: float
    ms: dict
    ms_total: list
    gaussians: list
    gaussians_in_view: list
    world_mb: list
    rss_mb: list
    cuda_mb: list
    flicker_psnr: list
    flicker_mae: list
    flicker_coverage: list
    fidelity_psnr: list
    fidelity_ssim: list
    fidelity_lpips: list


def _world_mb(scene) -> float:
    return sum(getattr(scene, f.name).nbytes for f in dataclasses.fields(scene)) / 2**20


def fly(mode: str, source: Source, path, *, renderer, refiner, gt: GroundTruth | None = None, lpips=None,
        progress: bool = False) -> FlightRecord:
    """Fly one generator along `path` and record every per-step figure.

    Args:
        mode: "persistent" or "per-frame".
        source: the input (its frame0 and device are used).
        path: a CameraPath (reactive ones are steered by this flight's frames) or poses [T, 4, 4] to replay.
        renderer, refiner: shared by both generators.
        gt: ground truth for fidelity (procedural inputs), or None.
        lpips: an LPIPS metric (worldgen.core.metrics.LPIPS) or None.
        progress: show a progress bar.
    """
    from tqdm import tqdm

    from worldgen.pipeline.generator import GeneratorConfig, make_generator

    frame0 = source.frame0
    dev = frame0.rgb.device
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    replay = isinstance(path, Tensor)
    T = path.shape[0] if replay else path.num_frames
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    sync()
    t0 = time.perf_counter()
    gen = make_generator(mode, frame0, renderer, refiner, GeneratorConfig())
    sync()
    setup_ms = 1000 * (time.perf_counter() - t0)
    nan = math.nan
    rec = FlightRecord(mode=mode, poses=torch.zeros(T, 4, 4), frames=[_u8(frame0.rgb)], setup_ms=setup_ms, ms={},
                       ms_total=[0.0], gaussians=[len(gen.scene)],
                       gaussians_in_view=[gaussians_in_view(gen.scene.means, frame0.camera)],
                       world_mb=[_world_mb(gen.scene)], rss_mb=[_rss_mb()],
                       cuda_mb=[torch.cuda.memory_allocated() / 2**20 if cuda else 0.0],
                       flicker_psnr=[nan], flicker_mae=[nan], flicker_coverage=[nan],
                       fidelity_psnr=[nan], fidelity_ssim=[nan], fidelity_lpips=[nan])
    rec.poses[0] = frame0.camera.c2w.detach().cpu()
    prev = frame0
    with torch.no_grad():
        for t in tqdm(range(1, T), desc=f"compare: {mode}", unit="frame", disable=not progress, dynamic_ncols=True):
            c2w = path[t] if replay else path.pose(t, prev)
            if not bool(torch.isfinite(c2w).all()):
                raise RuntimeError(f"camera path produced a non-finite pose at frame {t}")
            camera = frame0.camera.with_pose(c2w.to(dev))
            before = {k: len(v) for k, v in gen.timings.items()}
            sync()
            ts = time.perf_counter()
            frame = gen.step(camera)
            sync()
            rec.ms_total.append(1000 * (time.perf_counter() - ts))
            for k, v in gen.timings.items():
                rec.ms.setdefault(k, [0.0] * t).append(1000 * sum(v[before.get(k, 0):]))
            for k in rec.ms:
                if len(rec.ms[k]) < t + 1:
                    rec.ms[k].append(0.0)
            rec.poses[t] = c2w.detach().cpu()
            rec.frames.append(_u8(frame.rgb))
            rec.gaussians.append(len(gen.scene))
            rec.gaussians_in_view.append(gaussians_in_view(gen.scene.means, camera))
            rec.world_mb.append(_world_mb(gen.scene))
            rec.rss_mb.append(_rss_mb())
            rec.cuda_mb.append(torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0)
            f = flicker(prev.rgb, prev.depth, prev.camera, frame.rgb, frame.camera)
            rec.flicker_psnr.append(f.psnr)
            rec.flicker_mae.append(f.mae)
            rec.flicker_coverage.append(f.coverage)
            if gt is not None:
                truth = gt(camera)
                rgb = frame.rgb.detach().float().cpu()
                rec.fidelity_psnr.append(psnr(rgb, truth.rgb))
                rec.fidelity_ssim.append(ssim(rgb, truth.rgb))
                rec.fidelity_lpips.append(lpips(rgb, truth.rgb) if lpips is not None else nan)
            else:
                rec.fidelity_psnr.append(nan)
                rec.fidelity_ssim.append(nan)
                rec.fidelity_lpips.append(nan)
            prev = frame
    return rec


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


# ============================================================================ scoring
_HIGHER_BETTER = {"psnr": True, "ssim": True, "mae": False, "lpips": False, "ms": False}


def _mean(values) -> float:
    v = [x for x in values if x is not None and not math.isnan(x)]
    return sum(v) / len(v) if v else math.nan


def score(rec: FlightRecord, pairs: list[tuple[int, int]]) -> dict:
    """Summary and per-pair figures of one flight (JSON-ready; nan where a figure does not apply)."""
    frames = rec.frames
    T = len(frames)
    closes = same_pose(rec.poses[0], rec.poses[-1]) and T > 1
    loop = {"t": T - 1, "psnr": math.nan, "ssim": math.nan}
    if closes:
        a, b = _f32(frames[0]), _f32(frames[-1])
        loop.update(psnr=psnr(b, a), ssim=ssim(b, a))
    revisits = []
    for t1, t2 in pairs:
        s = revisit_error(_f32(frames[t1]), _f32(frames[t2]))
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
            "flicker_mae", "flicker_coverage", "fidelity_psnr", "fidelity_ssim", "fidelity_lpips")
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
    ("fidelity_psnr", "fidelity vs ground truth, PSNR", "dB", "psnr"),
    ("fidelity_ssim", "fidelity vs ground truth, SSIM", "", "ssim"),
    ("fidelity_lpips", "fidelity vs ground truth, LPIPS", "", "lpips"),
    ("ms_per_frame", "time per frame", "ms", "ms"),
]


def winner(kind: str, a: float, b: float) -> str:
    """'persistent' if value a is better than the per-frame value b, 'per-frame' if worse, 'tie' within
    a small margin (0.1 dB PSNR, 0.002 SSIM, 2 % MAE/LPIPS, 5 % time), 'n/a' if either is missing."""
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return "n/a"
    a, b = min(a, PSNR_CAP_DB) if kind == "psnr" else a, min(b, PSNR_CAP_DB) if kind == "psnr" else b
    margin = {"psnr": 0.1, "ssim": 0.002}.get(kind)
    diff = a - b if _HIGHER_BETTER[kind] else b - a
    tol = margin if margin is not None else (0.02 if kind in ("mae", "lpips") else 0.05) * max(abs(a), abs(b))
    return "tie" if abs(diff) <= tol else ("persistent" if diff > 0 else "per-frame")


def _fmt(v, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 100 and unit == ""):
        return f"{int(v):,}"
    if isinstance(v, float) and math.isinf(v):
        return "∞ (identical)"
    if unit == "dB":
        return f"{v:.2f} dB"
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
            continue
        vals = f"persistent {_fmt(p[key], unit)}, per-frame {_fmt(q[key], unit)}"
        if w == "persistent":
            lines.append(f"Persistent wins {label}: {vals}.")
        elif w == "per-frame":
            lines.append(f"Persistent does NOT win {label}: per-frame is better ({vals}).")
        else:
            lines.append(f"{label}: a tie ({vals}).")
    return wins, lines


def evaluate(source: Source, *, path: str = "loop", frames: int = 33, speed: float = 0.02, retrace: bool = True,
             progress: bool = False, lpips: bool = True) -> tuple[dict, dict[str, FlightRecord], GroundTruth | None]:
    """Fly both generators from `source` along one path and score them.

    Returns (metrics, records, ground truth or None). `metrics` is metrics.json's content minus the run
    description: {"renderer", "refiner", "scene_scale", "pairs", "lpips", "persistent": score(),
    "per-frame": score(), "ground_truth_flicker_psnr", "wins", "verdicts"}.
    """
    from refine.classical import ClassicalRefiner
    from renderers import get_renderer
    from worldgen.commands.fly import scene_scale
    from worldgen.pipeline.paths import make_path

    if frames < 3:
        raise UserInputError(f"--frames must be at least 3, got {frames}")
    frame0 = source.frame0
    dev = frame0.rgb.device
    renderer = get_renderer(dev.type)
    refiner = ClassicalRefiner()
    scale = scene_scale(frame0)
    cam_path = make_path(path, frame0.camera, scale, frames, speed=speed, retrace=retrace)
    gt = GroundTruth(source.world) if source.world is not None else None
    metric, lpips_note = make_lpips(dev) if (lpips and gt is not None) else (None, "LPIPS: not needed")
    if gt is None:
        lpips_note = "LPIPS: only with ground truth"
    records = {"persistent": fly("persistent", source, cam_path, renderer=renderer, refiner=refiner, gt=gt,
                                 lpips=metric, progress=progress)}
    poses = records["persistent"].poses  # reactive paths: the per-frame baseline replays the same poses
    records["per-frame"] = fly("per-frame", source, poses, renderer=renderer, refiner=refiner, gt=gt, lpips=metric,
                               progress=progress)
    pairs = revisit_pairs(poses)
    scores = {m: score(records[m], pairs) for m in MODES}
    floor = ground_truth_flicker(gt, poses, frame0.camera.to("cpu")) if gt is not None else None
    wins, lines = verdicts({m: scores[m]["summary"] for m in MODES}, lpips_note, gt is not None)
    metrics = {"renderer": renderer.name, "refiner": refiner.name, "scene_scale": scale, "pairs": pairs,
               "lpips": lpips_note, **scores, "ground_truth_flicker_psnr": floor, "wins": wins, "verdicts": lines}
    return metrics, records, gt


# ============================================================================ plots (PIL, no dependencies)
PHOTO_COLORS = 128
"""Palette size of the report's pictures (frame strips, loop-closure views): about a third of the bytes."""
COLORS = {"persistent": (31, 119, 180), "per-frame": (230, 120, 20), "ground truth": (110, 110, 110)}


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
    _save_png(path, np.asarray(img))


def _save_png(path: Path, arr: np.ndarray, colors: int | None = None) -> None:
    """Write uint8 [H, W, 3] as PNG, atomically; `colors`: reduce to a palette of that many (smaller files)."""
    from PIL import Image

    img = Image.fromarray(arr)
    if colors:
        img = img.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    with atomic_write(path) as f:
        img.save(f, format="PNG", optimize=True)


def _label_panel(img: np.ndarray, text: str, scale: int) -> np.ndarray:
    """Upscale a uint8 [H, W, 3] image by `scale` (nearest) and put a label bar above it."""
    from PIL import Image, ImageDraw, ImageFont

    big = np.repeat(np.repeat(img, scale, 0), scale, 1)
    bar = Image.new("RGB", (big.shape[1], 18), (20, 20, 20))
    d = ImageDraw.Draw(bar)
    d.text((4, 2), text, fill="white", font=ImageFont.load_default(size=12))
    return np.concatenate([np.asarray(bar), big], 0)


def side_by_side(panels: list[tuple[str, np.ndarray]], t: int) -> np.ndarray:
    """One labelled video frame [H', W', 3] uint8: the panels (label, image [H, W, 3]) left to right."""
    h, w = panels[0][1].shape[:2]
    scale = max(1, math.ceil(200 / w))
    gap = np.full((h * scale + 18, 4, 3), 255, np.uint8)
    cols = []
    for i, (label, img) in enumerate(panels):
        cols.append(_label_panel(img, f"{label}  t={t}" if i == 0 else label, scale))
        cols.append(gap)
    out = np.concatenate(cols[:-1], 1)
    return out[: out.shape[0] // 2 * 2, : out.shape[1] // 2 * 2]  # even size for H.264


def _thumb(img: np.ndarray, width: int) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    if w <= width:
        return img
    return np.asarray(Image.fromarray(img).resize((width, max(1, round(h * width / w))), Image.LANCZOS))


def frame_strip(rows: list[tuple[str, list[np.ndarray]]], ts: list[int], width: int = 96) -> np.ndarray:
    """A contact sheet: one row per (label, frames), the frames at indices `ts`, thumbnails `width` wide."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=11)
    thumbs = [[_thumb(frames[t], width) for t in ts] for _, frames in rows]
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
    views = [np.pad(_thumb(f[0], thumb_w), ((0, 0), (0, 4), (0, 0)), constant_values=255) for _, f in loop_rows]
    _save_png(plots / "loop_closure.png", np.concatenate(views, 1), colors=PHOTO_COLORS)
    made["loop_closure"] = "plots/loop_closure.png"
    pick = sorted(set(round(i * (T - 1) / 6) for i in range(7)))
    rows = [("persistent", pf), ("per-frame", qf)] + ([("ground truth", gt_frames)] if gt_frames is not None else [])
    _save_png(plots / "frames.png", frame_strip(rows, pick, width=min(96, pf[0].shape[1])), colors=PHOTO_COLORS)
    made["frames"] = "plots/frames.png"
    return made


# ============================================================================ report
def _json_ready(x):
    """Replace inf/nan (not JSON) by "inf"/"-inf"/None, recursively; tensors and numpy become lists."""
    if isinstance(x, float):
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return round(x, 6)
    if isinstance(x, dict):
        return {str(k): _json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_ready(v) for v in x]
    if isinstance(x, Tensor):
        return _json_ready(x.tolist())
    if isinstance(x, np.generic):
        return _json_ready(x.item())
    return x


def machine_description(device: torch.device) -> dict:
    """JSON-ready: CPU, cores, torch threads, GPU name, torch version, date (UTC)."""
    d = {"cpu": platform.processor() or platform.machine(), "cpu_cores": os.cpu_count(),
         "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
         "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        if names:
            d["cpu"] = names[0]
    except OSError:
        pass
    if device.type == "cuda":
        d["gpu"] = torch.cuda.get_device_name(device)
    return d


_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; max-width: 900px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
tr.win td:last-child { color: #1f77b4; font-weight: bold; }
tr.lose td:last-child { color: #c0392b; font-weight: bold; }
figure { margin: 1em 0; } img { max-width: 100%; }
figcaption { color: #555; font-size: 13px; } .small { color: #666; font-size: 12px; } li.neg { color: #c0392b; }
"""

_FLICKER_TEXT = """Frame t−1 is forward-warped into frame t's camera with its own depth and the known poses
(z-buffered, nearest pixel; sky by rotation only) and compared with frame t where the warp lands. Read it with care:
the per-frame baseline's frame t <em>is</em> frame t−1 re-rendered from the new pose (plus filled holes), so
step-to-step agreement is its strong suit by construction, and its drift shows over longer spans (revisits, loop
closure) instead. The metric also rewards blur: sharp edges and fine texture cost dB under sub-pixel motion even in
a perfectly consistent world"""

_COST_ROWS = (("frames_per_second", "frames per second"), ("setup_ms", "setup (world of frame 0), ms"),
              ("gaussians_final", "Gaussians in the world at the end"),
              ("gaussians_in_view_mean", "Gaussians in view (mean)"),
              ("world_mb_final", "Gaussian tensors at the end, MB"),
              ("rss_mb_max", "process RSS (max so far), MB"), ("cuda_mb_max", "CUDA memory (peak), MB"))


def write_report(out: Path, title: str, cfg_dict: dict, run_info: dict, metrics: dict, plots: dict[str, str],
                 credit: str | None) -> None:
    """report.html: headline table, verdicts, one section per metric with its plot, cost table, credits."""
    e = html.escape
    p, q = metrics["persistent"]["summary"], metrics["per-frame"]["summary"]
    has_truth = "fidelity_psnr" in plots
    rows = []
    for key, label, unit, _ in HEADLINE:
        if key.startswith("fidelity") and not has_truth:
            continue
        w = metrics["wins"][key]
        cls = {"persistent": "win", "per-frame": "lose"}.get(w, "")
        cells = "".join(f"<td>{e(c)}</td>" for c in (label, _fmt(p[key], unit), _fmt(q[key], unit), w))
        rows.append(f"<tr class='{cls}'>{cells}</tr>")
    stages = sorted(set(p["ms_by_stage"]) | set(q["ms_by_stage"]))
    cost = [(s, _fmt(p["ms_by_stage"].get(s, 0.0), "ms"), _fmt(q["ms_by_stage"].get(s, 0.0), "ms")) for s in stages]
    cost.append(("total per frame", _fmt(p["ms_per_frame"], "ms"), _fmt(q["ms_per_frame"], "ms")))
    cost += [(lab, _fmt(p[k]), _fmt(q[k])) for k, lab in _COST_ROWS]
    cost_rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in cost)

    def fig(name: str, caption: str) -> str:
        if name not in plots:
            return ""
        return f"<figure><img src='{e(plots[name])}' alt='{e(name)}'><figcaption>{caption}</figcaption></figure>"

    closes = not math.isnan(metrics["persistent"]["loop_closure"]["psnr"])
    src, machine = run_info["source"], run_info["machine"]
    if src.get("kind") == "synthetic":
        about = (f"procedural world, seed {src['seed']} ({e(src['split'])} split), climate {e(src['climate'])}; "
                 "exact depth; ground truth rendered at every pose")
    else:
        about = (f"photo <code>{e(src['file'])}</code>, horizontal FOV {src['fov_x_deg']:.1f}°, "
                 f"depth: {e(src['depth'])}")
    path = f"<code>{e(cfg_dict['path'])}</code>"
    if cfg_dict.get("retrace"):
        path += " (retraced: out and back through the same poses)"
    credit_html = f"<p class='small'>Input credit: {e(credit)}</p>" if credit else ""
    verdict_items = "".join(f"<li class='{'neg' if 'NOT' in v else ''}'>{e(v)}</li>" for v in metrics["verdicts"])
    floor_text = " — the dashed line is the same metric on the ground-truth frames" if has_truth else ""
    fidelity_head = ("<h2>Fidelity</h2><p>Every frame against the procedural renderer's ground truth at the same pose "
                     f"(PSNR, SSIM; {e(metrics['lpips'])}).</p>") if has_truth else ""
    strip_caption = "Frames along the flight: persistent, per-frame" + (", ground truth." if has_truth else ".")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>{_CSS}</style></head><body>
<h1>{e(title)}</h1>
<p>Persistent (keeps the 3D Gaussian world) vs per-frame (Infinite Nature's memoryless loop: the world is rebuilt
from the previous frame at every step). Same input, path, renderer (<code>{e(metrics['renderer'])}</code>) and
refiner (<code>{e(metrics['refiner'])}</code>). Input: {about}. Path: {path}, {run_info['frames']} frames at
{run_info['size'][0]}×{run_info['size'][1]}, speed {cfg_dict['speed']} scene units per frame.</p>
{credit_html}
<h2>Headline</h2>
<table><tr><th>metric</th><th>persistent</th><th>per-frame</th><th>better</th></tr>{''.join(rows)}</table>
<ul>{verdict_items}</ul>
<p class="small">PSNR means are over frames with each value capped at {PSNR_CAP_DB:.0f} dB (identical frames are ∞).
{e(metrics['lpips'])}.</p>
{fig('frames', strip_caption)}
<h2>Loop closure</h2>
<p>The last frame is rendered at the input's own pose{'' if closes else ' (not on this path)'}; it is scored
against the input. A world that remembers returns to the photo; a memoryless one has drifted.</p>
{fig('loop_closure', 'Input | persistent on return | per-frame on return.')}
<h2>Revisit consistency</h2>
<p>{len(metrics['pairs'])} poses are visited twice on this path. For each, the two visits' frames are compared
(PSNR, SSIM, MAE in metrics.json).</p>
{fig('revisit', 'Per pose, by the frame of its first visit; the far end of the path is revisited soonest.')}
<h2>Flicker</h2>
<p>{_FLICKER_TEXT}{floor_text}.</p>
{fig('flicker', 'Flicker PSNR over time (higher is steadier).')}
{fidelity_head}
{fig('fidelity_psnr', 'PSNR against ground truth per frame.')}
{fig('fidelity_ssim', 'SSIM against ground truth per frame.')}
{fig('fidelity_lpips', 'LPIPS against ground truth per frame.')}
<h2>Cost</h2>
<p>Milliseconds per frame by stage (means over the flight, from the generator's own stage timers), wall-clock on
{e(machine.get('gpu') or machine['cpu'])} ({machine['torch_threads']} torch threads), {e(machine['date'])}.
On a shared machine these times are noisy. The stages overlap ('fit', the colour fitting of new Gaussians, runs inside
'lift'); the total is the measured time of the whole step.</p>
<table><tr><th>stage</th><th>persistent</th><th>per-frame</th></tr>{cost_rows}</table>
{fig('cost_ms', 'Wall-clock time per step.')}
{fig('gaussians', 'Gaussians in the world and in view (centre inside the image, in front of the camera).')}
{fig('memory', 'Memory over time.')}
<h2>Run</h2>
<p class="small">worldgen compare, {e(machine['date'])}; config: <code>{e(json.dumps(cfg_dict))}</code></p>
{credit_html}
</body></html>
"""
    atomic_write_text(out / "report.html", page)


def write_video(out: Path, records: dict[str, FlightRecord], gt_frames: list[np.ndarray] | None, fps: int) -> None:
    """video.mp4: per frame, persistent | per-frame (| ground truth), labelled."""
    from worldgen.commands.fly import write_video as _write

    frames = []
    for t in range(len(records["persistent"].frames)):
        panels = [(m, records[m].frames[t]) for m in MODES]
        if gt_frames is not None:
            panels.append(("ground truth", gt_frames[t]))
        frames.append(side_by_side(panels, t))
    _write(out / "video.mp4", frames, fps)


def run(cfg: CompareConfig) -> dict:
    """Run the comparison described by `cfg`; writes the files listed in the module docstring and
    returns metrics.json's content (with inf/nan as in the file: "inf" / null)."""
    from worldgen.commands.fly import resolve_device

    if cfg.frames < 3:
        raise UserInputError(f"--frames must be at least 3, got {cfg.frames}")
    if cfg.fps < 1:
        raise UserInputError(f"--fps must be positive, got {cfg.fps}")
    if not (math.isfinite(cfg.speed) and cfg.speed > 0):
        raise UserInputError(f"--speed must be a positive number, got {cfg.speed}")
    out = check_writable_dir(cfg.out)
    device = resolve_device(cfg.device)
    t_start = time.perf_counter()
    source = source_from_config(cfg, device)
    metrics, records, gt = evaluate(source, path=cfg.path, frames=cfg.frames, speed=cfg.speed, retrace=cfg.retrace,
                                       progress=cfg.progress)
    gt_frames = None
    if gt is not None:  # every pose was rendered for fidelity already: these come from its cache
        cam = source.frame0.camera.to("cpu")
        gt_frames = [_u8(gt(cam.with_pose(p)).rgb) for p in records["persistent"].poses]
    cfg_dict = dataclasses.asdict(cfg)
    size = [source.frame0.camera.width, source.frame0.camera.height]
    run_info = {"source": source.info, "frames": cfg.frames, "size": size,
                "machine": machine_description(device), "device": str(device)}
    plots = make_plots(out, metrics, records, gt_frames, metrics["ground_truth_flicker_psnr"])
    if cfg.video:
        write_video(out, records, gt_frames, cfg.fps)
    run_info["seconds"] = round(time.perf_counter() - t_start, 2)
    doc = _json_ready({"run": run_info, "config": cfg_dict, **metrics,
                       "poses": records["persistent"].poses})
    atomic_write_text(out / "metrics.json", json.dumps(doc, indent=1))
    atomic_write_text(out / "config.json", json.dumps(cfg_dict, indent=2))
    title = cfg.title or f"Persistent vs per-frame: {source.name}"
    write_report(out, title, cfg_dict, run_info, metrics, plots, cfg.credit)
    return doc


def main(cfg: CompareConfig) -> None:
    doc = run(cfg)
    print(f"wrote {cfg.out}: report.html, metrics.json{', video.mp4' if cfg.video else ''}")
    for line in doc["verdicts"]:
        print("  " + line)


COMMAND = Command(CompareConfig, main)
