"""A tiny real flight for the export and viewer tests: the bundled example, flown on the CPU."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "worldgen" / "examples"


def tiny_flight(out: Path, frames: int = 8, size: str = "96x64", path: str = "autopilot") -> Path:
    """Fly the bundled example into `out` (frames/, cameras.json, world.ply) and save its sky dome as sky.png."""
    from worldgen.fly import FlyConfig, run

    cfg = FlyConfig(image=str(EXAMPLE / "example.png"), depth=str(EXAMPLE / "example_depth.npy"),
                    camera=str(EXAMPLE / "example.json"), path=path, frames=frames, size=size, out=str(out),
                    video=False, progress=False, device="cpu")
    held = {}
    run(cfg, on_frame=lambda t, frame, gen: held.__setitem__("gen", gen))
    held["gen"].sky.save_png(out / "sky.png")
    return out
