"""A tiny real flight for the export and viewer tests: the bundled example, flown on the CPU."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "worldgen" / "examples"


def tiny_flight(out: Path, frames: int = 8, size: str = "96x64", path: str = "autopilot") -> Path:
    """Fly the bundled example into `out` (frames/, cameras.json, world.ply, sky.png)."""
    from worldgen.commands.fly import FlyConfig, run
    from worldgen.pipeline.config import PhotoConfig, PipelineConfig

    cfg = FlyConfig(image=str(EXAMPLE / "example.png"),
                    photo=PhotoConfig(depth=str(EXAMPLE / "example_depth.npy"), camera=str(EXAMPLE / "example.json")),
                    pipeline=PipelineConfig(size=size, device="cpu"), path=path, frames=frames, out=str(out),
                    video=False, progress=False)
    run(cfg)
    return out
