"""`worldgen compare`: the persistent generator against the per-frame baseline, on the same input,
camera path, renderer and refiner, with the figures that tell them apart (worldgen/pipeline/scoring.py).

    worldgen compare PHOTO [--fov 90] [--path loop] [--frames 33] [--size 128x128] [--out DIR]
    worldgen compare --synthetic 1000000 [...]      # a procedural world: exact depth and ground truth
    worldgen compare PHOTO --refiner learned --versus-refiner classical [...]   # two refiners, same poses

A reactive path (autopilot) is steered by the persistent flight; the per-frame flight replays its poses.
With --versus-refiner, both modes are flown again with that second refiner along exactly the persistent
flight's poses, and metrics.json ("versus") and report.html compare the two refiners (video and plots
show the main --refiner only).

Files written to --out (each atomically):
  video.mp4      side by side, labelled: persistent | per-frame (| ground truth with --synthetic)
  metrics.json   per-step series, per-revisit scores, summaries and verdicts; "versus": the second
                 refiner's summaries and TSED verdicts (null without --versus-refiner)
  report.html    one page with PNG plots (no scripts; readable offline)
  plots/*.png    the plots, the loop-closure views and a strip of frames
  config.json    the whole resolved configuration (`--config` replays it)
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import tyro
from torch import Tensor

from worldgen.commands import Command
from worldgen.commands.compare.plots import make_plots
from worldgen.commands.compare.report import write_report
from worldgen.core.config import bad, check, check_seed, to_dict
from worldgen.core.device import machine_description, resolve_device
from worldgen.core.images import side_by_side, to_uint8, write_video
from worldgen.core.io import UserInputError, atomic_write_text, json_ready
from worldgen.core.runfolder import OutputFolder
from worldgen.pipeline.config import PhotoConfig, PipelineConfig
from worldgen.pipeline.recording import FlightRecord
from worldgen.pipeline.refiners import refiner_spec_problem
from worldgen.pipeline.scoring import MODES, evaluate, versus_verdicts
from worldgen.pipeline.sources import Source, photo_source, synthetic_source, working_size

_FLAT = tyro.conf.arg(name="")  # nested settings whose options carry no prefix


@dataclass(frozen=True)
class CompareConfig:
    """Compare the persistent generator with the per-frame baseline (Infinite Nature) on one input."""

    image: tyro.conf.Positional[Annotated[str | None, tyro.conf.arg(metavar="IMAGE")]] = None
    """Input photo (as for `worldgen fly`); or give --synthetic instead."""
    synthetic: int | None = None
    """Procedural world seed instead of a photo: exact depth, and ground truth for fidelity. Held-out
    evaluation seeds are 1000000..1000999 (refine/synth/splits.py)."""
    photo: Annotated[PhotoConfig, _FLAT] = field(default_factory=PhotoConfig)
    """The photo's depth and intrinsics (photo only; the cube faces in ../shared/data/real are 90 degrees)."""
    path: str = "loop"
    """Camera path: loop, autopilot, forward, or a keyframes FILE.json."""
    retrace: bool = True
    """Fly the path's first half out and come back through the same poses, ending at the input's pose
    (one flight then gives loop closure and revisits). loop with --no-retrace is the ellipse."""
    frames: int = 33
    """Frames per flight, including frame 0 (the input). Odd numbers make every retraced pose a revisit."""
    pipeline: Annotated[PipelineConfig, _FLAT] = field(default_factory=PipelineConfig)
    """Working size (auto: a photo's aspect, a procedural world square), device, speed, refiner, generator."""
    versus_refiner: str | None = None
    """A second refiner (classical, learned, learned-fidelity or a weights FILE.pt; not --refiner's) to fly both
    modes again along the same poses, compared with --refiner in metrics.json and the report (e.g. TSED)."""
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

    def validate(self) -> None:
        if (self.image is None) == (self.synthetic is None):
            raise UserInputError("give either an input photo or --synthetic SEED (exactly one)")
        if self.synthetic is not None:  # a procedural world brings its own exact depth and camera
            check_seed(self, "synthetic")
            for name in ("depth", "camera"):
                if getattr(self.photo, name) is not None:
                    raise UserInputError(f"--{name} is for a photo; --synthetic {self.synthetic} brings its own")
        if self.frames < 3:
            raise bad("frames", "must be at least 3", self.frames)
        if self.fps < 1:
            raise bad("fps", "must be positive", self.fps)
        if not (math.isfinite(self.pipeline.speed) and self.pipeline.speed > 0):
            raise bad("speed", "must be a positive number", self.pipeline.speed)
        if self.versus_refiner is not None:
            problem = refiner_spec_problem(self.versus_refiner)
            if problem:
                raise bad("versus_refiner", problem, self.versus_refiner)
            if self.versus_refiner == self.pipeline.refiner:
                raise bad("versus_refiner", "must name another refiner than --refiner", self.versus_refiner)


def source_from_config(cfg: CompareConfig, device: torch.device) -> Source:
    """The input named by `cfg`: the photo, or procedural world --synthetic (square, auto-side, when --size is auto)."""
    p = cfg.pipeline
    if cfg.synthetic is not None:
        W, H = (p.auto_side, p.auto_side) if p.size == "auto" else working_size(p.size, 1, 1)
        return synthetic_source(cfg.synthetic, W, H, device)
    return photo_source(cfg.image, cfg.photo, p.size, device, p.auto_side)


def side_by_side_video(out: Path, records: dict[str, FlightRecord], gt_frames: list[np.ndarray] | None,
                       fps: int) -> None:
    """out/video.mp4: per frame, persistent | per-frame (| ground truth), labelled, each panel >= 200 px wide."""
    frames = []
    for t in range(len(records["persistent"].frames)):
        panels = [records[m].frames[t] for m in MODES] + ([gt_frames[t]] if gt_frames is not None else [])
        labels = [f"persistent  t={t}", "per-frame"] + (["ground truth"] if gt_frames is not None else [])
        img = side_by_side(panels, labels=labels, scale=max(1, math.ceil(200 / panels[0].shape[1])))
        frames.append(img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2])  # even size for H.264
    write_video(out / "video.mp4", frames, fps)


def fly_versus(source: Source, cfg: CompareConfig, poses: Tensor, main: dict) -> dict:
    """Both modes flown again with `cfg.versus_refiner` along `poses` [T, 4, 4] (camera-to-world: the main
    refiner's persistent flight), scored against the main refiner's `main` metrics (`evaluate`'s).

    Returns metrics.json's "versus": {"refiner": its name, "persistent": summary, "per-frame": summary,
    "verdicts": one sentence per mode on which refiner wins TSED}.
    """
    pipeline = dataclasses.replace(cfg.pipeline, refiner=cfg.versus_refiner)
    metrics, _, _ = evaluate(source, pipeline, frames=cfg.frames, progress=cfg.progress, poses=poses)
    summaries = {m: metrics[m]["summary"] for m in MODES}
    lines = versus_verdicts((main["refiner"], metrics["refiner"]), {m: main[m]["summary"] for m in MODES}, summaries)
    return {"refiner": metrics["refiner"], **summaries, "verdicts": lines}


COMPARE_OUTPUTS = frozenset({"config.json", "metrics.json", "report.html", "video.mp4", "plots"})
"""The names `worldgen compare` writes at the top of its --out (the module docstring's list)."""


def run(cfg: CompareConfig) -> dict:
    """Run the comparison described by `cfg`; writes the files listed in the module docstring and
    returns metrics.json's content (with inf/nan as in the file: "inf" / null). --out is held by one writer for
    the whole run, refused if it holds anything compare does not write, and its earlier report replaced whole
    (worldgen/core/runfolder.py OutputFolder)."""
    check(cfg)
    with OutputFolder(cfg.out, owns=COMPARE_OUTPUTS.__contains__, command="compare") as folder:
        return _run(cfg, folder)


def _run(cfg: CompareConfig, folder: OutputFolder) -> dict:
    out = folder.path
    device = resolve_device(cfg.pipeline.device)
    t_start = time.perf_counter()
    source = source_from_config(cfg, device)
    metrics, records, gt = evaluate(source, cfg.pipeline, path=cfg.path, frames=cfg.frames, retrace=cfg.retrace,
                                    progress=cfg.progress)
    poses = records["persistent"].poses
    metrics["versus"] = fly_versus(source, cfg, poses, metrics) if cfg.versus_refiner is not None else None
    gt_frames = None
    if gt is not None:  # every pose was rendered for fidelity already: these come from its cache
        cam = source.frame0.camera.to("cpu")
        gt_frames = [to_uint8(gt(cam.with_pose(p)).rgb) for p in poses]
    cfg_dict = to_dict(cfg)
    size = [source.frame0.camera.width, source.frame0.camera.height]
    run_info = {"source": source.info, "frames": cfg.frames, "size": size,
                "machine": machine_description(device), "device": str(device)}
    folder.replace_earlier()
    plots = make_plots(out, metrics, records, gt_frames, metrics["ground_truth_flicker_psnr"])
    if cfg.video:
        side_by_side_video(out, records, gt_frames, cfg.fps)
    run_info["seconds"] = round(time.perf_counter() - t_start, 2)
    doc = json_ready({"run": run_info, "config": cfg_dict, **metrics, "poses": poses})
    atomic_write_text(out / "metrics.json", json.dumps(doc, indent=1))
    atomic_write_text(out / "config.json", json.dumps(cfg_dict, indent=2))
    title = cfg.title or f"Persistent vs per-frame: {source.name}"
    write_report(out, title, cfg_dict, run_info, metrics, plots, cfg.credit)
    return doc


def main(cfg: CompareConfig) -> None:
    doc = run(cfg)
    print(f"wrote {cfg.out}: report.html, metrics.json{', video.mp4' if cfg.video else ''}")
    for line in doc["verdicts"] + (doc["versus"]["verdicts"] if doc["versus"] else []):
        print("  " + line)


COMMAND = Command(CompareConfig, main)
