"""Recording a flight: every per-step figure a comparison or a benchmark needs, from one `Flight`.

Frames are kept as 8-bit images (what a video shows); flicker and fidelity are measured on the float
frames as they are generated, TSED (SIFT matches of consecutive frames against the known cameras,
worldgen.core.tsed) on the 8-bit frames, detecting each frame's features once.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from worldgen.core.camera import Camera
from worldgen.core.device import rss_mb
from worldgen.core.images import to_uint8
from worldgen.core.interfaces import Refiner, Renderer
from worldgen.core.metrics import flicker, psnr, ssim
from worldgen.core.tsed import TsedTracker
from worldgen.pipeline.flight import Flight, Pilot
from worldgen.pipeline.generator import GeneratorConfig, make_generator
from worldgen.pipeline.sources import GroundTruth, Source


def gaussians_in_view(means: Tensor, camera: Camera) -> int:
    """How many Gaussian centres (means [N, 3], world) project inside `camera`'s image in front of it."""
    if means.shape[0] == 0:
        return 0
    uv, z = camera.to(means.device).project(means)
    inside = (z > 1e-6) & (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] >= 0) & (uv[:, 1] < camera.height)
    return int(inside.sum())


def world_mb(scene) -> float:
    """Size of a GaussianScene's tensors, MB."""
    return sum(getattr(scene, f.name).nbytes for f in dataclasses.fields(scene)) / 2**20


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
        tsed_sed, tsed_matches: T values for the pair (t-1, t): the median symmetric epipolar distance of
            its SIFT matches (px) and their number (nan at t = 0, and everywhere when not measured).
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
    tsed_sed: list = dataclasses.field(default_factory=list)
    tsed_matches: list = dataclasses.field(default_factory=list)


def record_flight(mode: str, source: Source, pilot: Pilot, num_frames: int, *, renderer: Renderer, refiner: Refiner,
                  config: GeneratorConfig = GeneratorConfig(), gt: GroundTruth | None = None, lpips=None,
                  progress: bool = False, tsed: bool = True) -> FlightRecord:
    """Build one generator from `source` and fly it for `num_frames` frames (frame 0 included),
    recording every per-step figure.

    Args:
        mode: "persistent" or "per-frame".
        source: the input (its frame0 and device are used).
        pilot: a CameraPath (reactive ones are steered by this flight's frames) or a `Replay` of poses.
        num_frames: T, including frame 0.
        renderer, refiner, config: what the generator is built from.
        gt: ground truth for fidelity (procedural inputs), or None.
        lpips: an LPIPS metric (worldgen.core.metrics.LPIPS) or None.
        progress: show a progress bar.
        tsed: measure TSED's per-pair figures (SIFT on every frame; a few ms per frame at 256 px).
            Raises SiftUnavailable (one line) before flying if OpenCV's SIFT is missing.
    """
    from tqdm import tqdm

    tracker = TsedTracker() if tsed else None
    frame0 = source.frame0
    cuda = frame0.rgb.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    gen = make_generator(mode, frame0, renderer, refiner, config)
    if cuda:
        torch.cuda.synchronize()
    setup_ms = 1000 * (time.perf_counter() - t0)
    nan = math.nan
    rec = FlightRecord(mode=mode, poses=torch.zeros(num_frames, 4, 4), frames=[], setup_ms=setup_ms, ms={},
                       ms_total=[], gaussians=[], gaussians_in_view=[], world_mb=[], rss_mb=[], cuda_mb=[],
                       flicker_psnr=[], flicker_mae=[], flicker_coverage=[], fidelity_psnr=[], fidelity_ssim=[],
                       fidelity_lpips=[])
    prev = frame0
    steps = Flight(gen, pilot, num_frames)
    with torch.no_grad():
        for step in tqdm(steps, total=num_frames, desc=f"compare: {mode}", unit="frame", disable=not progress,
                         dynamic_ncols=True):
            t, frame = step.t, step.frame
            rec.poses[t] = torch.from_numpy(step.camera.host()[1].astype(np.float32))  # read once per camera
            rec.frames.append(to_uint8(frame.rgb))
            pair = tracker(rec.frames[-1], step.camera) if tracker is not None else None
            rec.tsed_sed.append(pair.median_sed if pair is not None else nan)
            rec.tsed_matches.append(pair.matches if pair is not None else nan)
            rec.ms_total.append(1000 * step.seconds[0])
            for k, v in step.stage_seconds[0].items():
                rec.ms.setdefault(k, [0.0] * t).append(1000 * v)
            for k in rec.ms:
                if len(rec.ms[k]) < t + 1:
                    rec.ms[k].append(0.0)
            rec.gaussians.append(gen.world.size)  # the whole world (the working set may be smaller)
            rec.gaussians_in_view.append(gaussians_in_view(gen.scene.means, step.camera))
            rec.world_mb.append(world_mb(gen.scene))
            rec.rss_mb.append(rss_mb())
            rec.cuda_mb.append((torch.cuda.max_memory_allocated() if t else torch.cuda.memory_allocated()) / 2**20
                               if cuda else 0.0)
            if t == 0:
                for key in ("flicker_psnr", "flicker_mae", "flicker_coverage", "fidelity_psnr", "fidelity_ssim",
                            "fidelity_lpips"):
                    getattr(rec, key).append(nan)
                continue
            f = flicker(prev.rgb, prev.depth, prev.camera, frame.rgb, frame.camera)
            rec.flicker_psnr.append(f.psnr)
            rec.flicker_mae.append(f.mae)
            rec.flicker_coverage.append(f.coverage)
            if gt is not None:
                truth = gt(step.camera)
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
