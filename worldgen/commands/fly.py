"""`worldgen fly`: one photo -> a flythrough video, its frames, the camera path and the 3D world.

Files written to --out (each atomically: temp file, then rename):
  frames/NNNNN.png   the generated frames (frame 0 is the input photo at the working size)
  video.mp4          the frames as H.264 video
  world.ply          the persistent Gaussian world (standard 3D Gaussian Splatting layout)
  cameras.json       per frame: width, height, fx, fy, cx, cy, c2w (OpenCV axes, camera-to-world)
  config.json        the resolved configuration
  run.json           timings per stage, Gaussian count, peak memory
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import tyro

from worldgen.core.camera import Camera
from worldgen.core.frame import Frame
from worldgen.core.io import UserInputError, atomic_write_text, check_writable_dir

@dataclass(frozen=True)
class FlyConfig:
    """Fly into a photo: generate frames along a camera path, keeping (or not) a 3D world."""

    image: tyro.conf.Positional[str]
    """Input photo (any size and aspect; RGB, RGBA or grayscale; EXIF orientation respected)."""
    depth: str | None = None
    """Depth or disparity map for the photo (.npy, .npz or 16-bit .png); default: the built-in landscape prior."""
    depth_kind: Literal["depth", "disparity"] = "depth"
    """What the --depth file holds: z-depth, or disparity (1/depth; 0 = sky)."""
    camera: str | None = None
    """JSON with the photo's intrinsics (fx, fy, cx, cy, width, height; top level or under "intrinsics"); overrides --fov."""
    fov: float = 60.0
    """Horizontal field of view of the photo, degrees."""
    path: str = "autopilot"
    """Camera path: forward, loop, autopilot, or a keyframes FILE.json (see docs/paths.md)."""
    frames: int = 60
    """Number of frames, including frame 0 (the photo)."""
    size: str = "auto"
    """Working size WxH (the photo is centre-cropped to its aspect); auto: longer side 256."""
    speed: float = 0.02
    """Camera speed per frame, as a fraction of the photo's lower-quartile scene depth."""
    mode: Literal["persistent", "per-frame"] = "persistent"
    """persistent: keep the 3D world; per-frame: the classic memoryless baseline."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: cuda (gsplat renderer) when available, else cpu (pure-PyTorch renderer)."""
    out: str = "runs/latest"
    """Output directory."""
    fps: int = 15
    """Frame rate of video.mp4."""
    video: bool = True
    """Write video.mp4 (needs imageio-ffmpeg)."""
    progress: bool = True
    """Show a progress bar."""


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserInputError("--device cuda was asked for, but CUDA is not available on this machine")
    return torch.device(device)


def working_size(size: str, width: int, height: int) -> tuple[int, int]:
    """(W, H) for the run: 'auto' keeps the photo's aspect with the longer side 256 (even sizes)."""
    from worldgen.core.images import parse_size

    if size == "auto":
        s = 256 / max(width, height)
        return max(16, 2 * round(width * s / 2)), max(16, 2 * round(height * s / 2))
    return parse_size(size)


def load_camera_json(path: str) -> dict:
    try:
        d = json.loads(Path(path).read_text())
        d = d.get("intrinsics", d)  # worldgen's example files nest them
        return {k: float(d[k]) for k in ("fx", "fy", "cx", "cy", "width", "height")}
    except FileNotFoundError:
        raise UserInputError(f"no such camera file: {path}") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise UserInputError(f"camera file {path} must be JSON with fx, fy, cx, cy, width, height ({type(e).__name__}: {e})") from None


def first_frame(cfg: FlyConfig, device: torch.device) -> Frame:
    """Load the photo (and depth), resize to the working size, and build frame 0 at the origin."""
    from worldgen.pipeline.depth import FileDepth, LandscapePrior
    from worldgen.core.images import center_crop_resize, load_image

    depth_source = FileDepth(cfg.depth, cfg.depth_kind) if cfg.depth else None  # read before the image work
    rgb_full = load_image(cfg.image)
    H0, W0 = rgb_full.shape[:2]
    if depth_source is not None:
        depth_source.check_size(W0, H0)
    W, H = working_size(cfg.size, W0, H0)
    rgb = center_crop_resize(rgb_full, W, H)
    if cfg.camera:
        c = load_camera_json(cfg.camera)
        if (int(c["width"]), int(c["height"])) != (W0, H0):
            raise UserInputError(f"camera file {cfg.camera} is for {int(c['width'])}x{int(c['height'])}, the image is {W0}x{H0}")
        K = torch.tensor([[c["fx"], 0, c["cx"]], [0, c["fy"], c["cy"]], [0, 0, 1]], dtype=torch.float32)
        # Centre crop to the working aspect keeps the focal length; then scale.
        crop_w, crop_h = (H0 * W / H, H0) if W0 / H0 > W / H else (W0, W0 * H / W)
        K2 = K.clone()
        K2[0, 2] -= (W0 - crop_w) / 2
        K2[1, 2] -= (H0 - crop_h) / 2
        camera = Camera(K=K2, c2w=torch.eye(4), width=round(crop_w), height=round(crop_h)).resized(W, H)
    else:
        if not 1.0 <= cfg.fov <= 170.0:
            raise UserInputError(f"--fov must be between 1 and 170 degrees, got {cfg.fov}")
        camera = Camera.from_fov(cfg.fov, W, H)
    estimator = depth_source if depth_source is not None else LandscapePrior()
    depth, sky = estimator(rgb, camera)
    if bool(sky.all()):
        raise UserInputError(f"{cfg.image}: the whole image is sky (no finite depth), nothing to fly into")
    return Frame(rgb=rgb, depth=depth, sky=sky, camera=camera).to(device)


def scene_scale(frame: Frame) -> float:
    """A length unit for camera speeds: the lower quartile of the frame's non-sky depths (the near
    ground, whatever far backdrop the photo has)."""
    d = frame.depth[~frame.sky & torch.isfinite(frame.depth)]
    return float(torch.quantile(d.float().cpu(), 0.25)) if d.numel() else 1.0


def write_video(path: Path, frames_u8: list, fps: int) -> None:
    """H.264 MP4 of uint8 frames [H, W, 3], written atomically."""
    import imageio.v2 as imageio

    try:
        import imageio_ffmpeg  # noqa: F401  (imageio silently picks another writer without it)
    except ImportError:
        raise UserInputError("writing video.mp4 needs the imageio-ffmpeg package; install it or pass --no-video") from None

    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.mp4")
    try:
        with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, macro_block_size=2, pixelformat="yuv420p",
                                ffmpeg_log_level="error") as w:
            for f in frames_u8:
                w.append_data(f)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def peak_memory() -> dict:
    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def run(cfg: FlyConfig, on_frame=None) -> dict:
    """Run a flight; returns run.json's content. `on_frame(t, frame, generator)` is called per frame."""
    from tqdm import tqdm

    from refine.classical import ClassicalRefiner
    from renderers import get_renderer
    from worldgen.pipeline.generator import GeneratorConfig, make_generator
    from worldgen.core.images import save_png_u8, to_uint8
    from worldgen.pipeline.paths import make_path

    if cfg.frames < 2:
        raise UserInputError(f"--frames must be at least 2, got {cfg.frames}")
    if cfg.fps < 1:
        raise UserInputError(f"--fps must be positive, got {cfg.fps}")
    out = check_writable_dir(cfg.out)
    device = resolve_device(cfg.device)
    t_start = time.perf_counter()
    frame0 = first_frame(cfg, device)
    scale = scene_scale(frame0)
    path = make_path(cfg.path, frame0.camera, scale, cfg.frames, speed=cfg.speed)
    renderer = get_renderer(device.type)
    gen = make_generator(cfg.mode, frame0, renderer, ClassicalRefiner(), GeneratorConfig())
    t_setup = time.perf_counter() - t_start

    (out / "frames").mkdir(exist_ok=True)
    cams = [frame0.camera.to("cpu").to_dict()]
    video: list | None = [] if cfg.video else None
    # PNG encoding runs on a writer thread (zlib releases the GIL) so it overlaps generation.
    writer = ThreadPoolExecutor(max_workers=2)
    pending = []

    def emit(t: int, rgb: torch.Tensor) -> None:
        img = to_uint8(rgb)
        if video is not None:
            video.append(img)
        pending.append(writer.submit(save_png_u8, out / "frames" / f"{t:05d}.png", img))

    emit(0, frame0.rgb)
    if on_frame:
        on_frame(0, frame0, gen)
    frame = frame0
    gen_s = path_s = 0.0
    t_loop = time.perf_counter()
    bar = tqdm(range(1, cfg.frames), desc=f"fly ({cfg.mode}, {renderer.name})", unit="frame", disable=not cfg.progress, dynamic_ncols=True)
    try:
        for t in bar:
            t0 = time.perf_counter()
            pose = path.pose(t, frame)
            if not torch.isfinite(pose).all():
                raise RuntimeError(f"camera path produced a non-finite pose at frame {t}")
            path_s += time.perf_counter() - t0
            frame = gen.step(frame0.camera.with_pose(pose.to(device)))
            gen_s += time.perf_counter() - t0
            emit(t, frame.rgb)
            cams.append(frame.camera.to("cpu").to_dict())
            bar.set_postfix(gaussians=len(gen.scene))
            if on_frame:
                on_frame(t, frame, gen)
        for f in pending:
            f.result()  # re-raise any write error
    finally:
        writer.shutdown(wait=True)
    loop_s = time.perf_counter() - t_loop

    if cfg.video:
        write_video(out / "video.mp4", video, cfg.fps)
    gen.scene.save_ply(out / "world.ply")
    atomic_write_text(out / "cameras.json", json.dumps({"convention": "OpenCV axes, c2w camera-to-world, pixel centres at +0.5", "frames": cams}, indent=1))
    atomic_write_text(out / "config.json", json.dumps(dataclasses.asdict(cfg), indent=2))
    stats = gen.stats()
    info = {
        "mode": cfg.mode,
        "renderer": renderer.name,
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




def _command():
    from worldgen.cli import Command

    return Command(FlyConfig, main)


COMMAND = _command()
