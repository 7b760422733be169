"""`worldgen fly`: one photo -> a flythrough video, its frames, the camera path and the 3D world.

Files written to --out (each atomically: temp file, then rename):
  frames/NNNNN.png   the generated frames (frame 0 is the input photo at the working size)
  video.mp4          the frames as H.264 video
  world.ply          the persistent Gaussian world (standard 3D Gaussian Splatting layout)
  sky.png            the sky dome, equirectangular (worldgen view shows it as the background)
  depth/NNNNN.npy    with --depth-maps: each refined frame's z-depth, float32, +inf = sky (for export)
  cameras.json       per frame: width, height, fx, fy, cx, cy, c2w (OpenCV axes, camera-to-world)
  config.json        the whole resolved configuration (`worldgen fly --config config.json` replays the run)
  run.json           timings per stage, Gaussian count, peak memory
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Literal

import tyro

from worldgen.commands import Command
from worldgen.core.config import bad, check, to_dict
from worldgen.core.device import peak_memory, resolve_device
from worldgen.core.images import save_png_u8, to_uint8, write_video
from worldgen.core.io import atomic_write_text, check_writable_dir, save_cameras_json, save_npy
from worldgen.pipeline.config import PhotoConfig, PipelineConfig
from worldgen.pipeline.flight import Flight
from worldgen.pipeline.generator import make_generator
from worldgen.pipeline.paths import make_path
from worldgen.pipeline.refiners import make_refiner
from worldgen.pipeline.sources import first_frame, scene_scale

_FLAT = tyro.conf.arg(name="")  # nested settings whose options carry no prefix


@dataclass(frozen=True)
class FlyConfig:
    """Fly into a photo: generate frames along a camera path, keeping (or not) a 3D world."""

    image: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="IMAGE")]
    """Input photo (any size and aspect; RGB, RGBA or grayscale; EXIF orientation respected)."""
    photo: Annotated[PhotoConfig, _FLAT] = field(default_factory=PhotoConfig)
    """The photo's depth and intrinsics."""
    path: str = "autopilot"
    """Camera path: forward, loop, autopilot, or a keyframes FILE.json (see docs/paths.md)."""
    frames: int = 60
    """Number of frames, including frame 0 (the photo)."""
    mode: Literal["persistent", "per-frame"] = "persistent"
    """persistent: keep the 3D world; per-frame: the classic memoryless baseline."""
    pipeline: Annotated[PipelineConfig, _FLAT] = field(default_factory=PipelineConfig)
    """Working size, device, speed, refiner, and the generator's, refiners' and autopilot's settings."""
    out: str = "runs/latest"
    """Output directory."""
    fps: int = 15
    """Frame rate of video.mp4."""
    video: bool = True
    """Write video.mp4 (needs imageio-ffmpeg)."""
    depth_maps: bool = False
    """Also write depth/NNNNN.npy: each refined frame's z-depth (float32, +inf for sky), which
    `worldgen export` then uses instead of re-rendering the world."""
    progress: bool = True
    """Show a progress bar."""

    def validate(self) -> None:
        if self.frames < 2:
            raise bad("frames", "must be at least 2", self.frames)
        if self.fps < 1:
            raise bad("fps", "must be positive", self.fps)


def run(cfg: FlyConfig, on_frame=None) -> dict:
    """Run a flight; returns run.json's content. `on_frame(t, frame, generator)` is called per frame."""
    from tqdm import tqdm

    from renderers import get_renderer

    check(cfg)
    p = cfg.pipeline
    out = check_writable_dir(cfg.out)
    device = resolve_device(p.device)
    t_start = time.perf_counter()
    frame0 = first_frame(cfg.image, cfg.photo, p.size, device, p.auto_side)
    scale = scene_scale(frame0)
    path = make_path(cfg.path, frame0.camera, scale, cfg.frames, speed=p.speed, autopilot=p.autopilot)
    renderer = get_renderer(device.type)
    refiner = make_refiner(p.refiner, device, classical=p.classical_refiner)
    gen = make_generator(cfg.mode, frame0, renderer, refiner, p.generator)
    t_setup = time.perf_counter() - t_start

    (out / "frames").mkdir(exist_ok=True)
    if cfg.depth_maps:
        (out / "depth").mkdir(exist_ok=True)
    cams = []
    video: list | None = [] if cfg.video else None
    # PNG encoding runs on a writer thread (zlib releases the GIL) so it overlaps generation.
    writer = ThreadPoolExecutor(max_workers=2)
    pending = []
    gen_s = path_s = 0.0
    t_loop = time.perf_counter()
    steps = tqdm(Flight(gen, path, cfg.frames), total=cfg.frames, desc=f"fly ({cfg.mode}, {renderer.name})",
                 unit="frame", disable=not cfg.progress, dynamic_ncols=True)
    try:
        for step in steps:
            img = to_uint8(step.frame.rgb)
            if video is not None:
                video.append(img)
            pending.append(writer.submit(save_png_u8, out / "frames" / f"{step.t:05d}.png", img))
            if cfg.depth_maps:
                pending.append(writer.submit(save_npy, out / "depth" / f"{step.t:05d}.npy",
                                             step.frame.depth.detach().float().cpu().numpy()))
            cams.append(step.camera.to("cpu").to_dict())
            path_s += step.pilot_seconds
            gen_s += step.pilot_seconds + step.seconds[0]
            steps.set_postfix(gaussians=len(gen.scene))
            if on_frame:
                on_frame(step.t, step.frame, gen)
            if step.t == 0:
                t_loop = time.perf_counter()  # the loop's time starts once frame 0 is out
        for f in pending:
            f.result()  # re-raise any write error
    finally:
        writer.shutdown(wait=True)
    loop_s = time.perf_counter() - t_loop

    if cfg.video:
        write_video(out / "video.mp4", video, cfg.fps)
    gen.scene.save_ply(out / "world.ply")
    gen.sky.save_png(out / "sky.png")
    save_cameras_json(out / "cameras.json", cams)
    atomic_write_text(out / "config.json", json.dumps(to_dict(cfg), indent=2))
    stats = gen.stats()
    info = {
        "mode": cfg.mode,
        "renderer": renderer.name,
        "refiner": refiner.name,
        "device": str(device),
        "frames": cfg.frames,
        "size": [frame0.camera.width, frame0.camera.height],
        "scene_scale": scale,
        "setup_seconds": round(t_setup, 3),
        "loop_seconds": round(loop_s, 3),
        "frames_per_second": round((cfg.frames - 1) / max(loop_s, 1e-9), 3),
        "generate_frames_per_second": round((cfg.frames - 1) / max(gen_s, 1e-9), 3),
        "gaussians": stats["gaussians"],
        "sky_observed_fraction": stats["sky_observed_fraction"],
        "ms_per_frame": {"path": round(1000 * path_s / max(cfg.frames - 1, 1), 2),
                         **{k: round(1000 * v, 2) for k, v in stats["seconds_per_frame"].items()}},
        **peak_memory(),
    }
    atomic_write_text(out / "run.json", json.dumps(info, indent=2))
    return info


def main(cfg: FlyConfig) -> None:
    info = run(cfg)
    print(f"wrote {cfg.out}: {info['frames']} frames at {info['size'][0]}x{info['size'][1]}, "
          f"{info['gaussians']:,} Gaussians, {info['frames_per_second']:.2f} frames/s ({info['renderer']})")


COMMAND = Command(FlyConfig, main)
