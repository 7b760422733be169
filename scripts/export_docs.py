"""Remake the viewer-framing and mesh-export images in docs/ (CPU, a few minutes; needs chromium).

    .venv/bin/python scripts/export_docs.py [--run runs/x] [--frames 100]

1. Flies the bundled example (autopilot, 256x160) into RUN unless RUN/world.ply exists, and saves the
   flight's sky dome as RUN/sky.png (`SkyDome.save_png`; `worldgen fly` does not write it yet).
2. `worldgen export RUN --mesh RUN/world.glb`.
3. docs/view_first_camera.jpg: `worldgen view RUN/world.ply` (cameras.json and sky.png beside it) as a
   new tab opens it, 1024x768 headless Chromium.
4. docs/export_mesh.jpg: RUN/world.glb loaded by viser's glTF loader (three.js), seen from camera 0
   (converted to the GLB's +y-up frame).
Prints the fraction of non-background pixels of each image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fly(run: Path, frames: int) -> None:
    from worldgen.commands.fly import FlyConfig, run as fly_run
    from worldgen.pipeline.config import PhotoConfig, PipelineConfig

    ex = ROOT / "worldgen" / "examples"
    cfg = FlyConfig(image=str(ex / "example.png"),
                    photo=PhotoConfig(depth=str(ex / "example_depth.npy"), camera=str(ex / "example.json")),
                    pipeline=PipelineConfig(size="256x160"), path="autopilot", frames=frames, out=str(run), progress=False,
                    overwrite=True)
    info = fly_run(cfg)
    print(f"flew {run}: {info['frames']} frames, {info['gaussians']:,} Gaussians; sky.png saved")


def coverage(img: np.ndarray, background=(255, 255, 255)) -> float:
    """Fraction of pixels that differ from the viewer's empty background by more than 12 levels."""
    return float((np.abs(img.astype(int) - np.array(background)).max(-1) > 12).mean())


def snap(server, out: Path, settle: float) -> np.ndarray:
    """A 1024x768 screenshot of the viewer `server` serves, written to `out` as its suffix says (Chromium writes
    PNG; the docs keep JPEG, a fifth of the bytes), returned as uint8 [H, W, 3]."""
    from viewer.snapshot import snapshot
    from worldgen.core.images import save_figure_u8

    png = out.with_name(out.stem + ".snapshot.png")
    try:
        img = snapshot(server, png, size=(1024, 768), settle=settle)
        save_figure_u8(out, img)
    finally:
        png.unlink(missing_ok=True)
    return img


def view_shot(run: Path, out: Path) -> None:
    from viewer.app import start_server
    from viewer.browse import BrowseApp, load_world

    server = start_server("127.0.0.1", 0)
    try:
        app = BrowseApp(server, load_world(run / "world.ply"))
        app.wait_streamed(120)
        img = snap(server, out, settle=10.0)
    finally:
        server.stop()
    print(f"{out}: {coverage(img):.1%} of the view differs from the empty background")


def mesh_shot(run: Path, glb: Path, out: Path) -> None:
    import math

    from viewer.app import start_server
    from viewer.framing import view_at_camera
    from worldgen.pipeline.export.mesh import WORLD_TO_YUP
    from worldgen.pipeline.export.rundir import RunDir

    cams = RunDir.open(run).cameras
    from worldgen.core.scene import GaussianScene

    view = view_at_camera(cams[0], GaussianScene.load_ply(run / "world.ply"))
    server = start_server("127.0.0.1", 0)
    try:
        server.scene.set_up_direction("+y")
        # Lighting that does not wait for an HDRI to arrive (renders were otherwise lit either way).
        server.scene.configure_environment_map(None, environment_intensity=0.0)
        server.scene.configure_default_lights(enabled=True, cast_shadow=False)
        server.scene.add_glb("/mesh", glb.read_bytes())
        ic = server.initial_camera
        ic.position = tuple(WORLD_TO_YUP @ view.position)
        ic.look_at = tuple(WORLD_TO_YUP @ view.look_at)
        ic.up = tuple(WORLD_TO_YUP @ view.up)
        ic.fov, ic.near, ic.far = view.fov, view.near, view.far
        img = snap(server, out, settle=15.0)
    finally:
        server.stop()
    print(f"{out}: {coverage(img):.1%} of the view differs from the empty background "
          f"(camera 0, vertical fov {math.degrees(view.fov):.1f} deg)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/x")
    ap.add_argument("--frames", type=int, default=100)
    a = ap.parse_args()
    run = Path(a.run)
    if not (run / "world.ply").is_file() or not (run / "sky.png").is_file():
        fly(run, a.frames)
    glb = run / "world.glb"
    if not glb.is_file():
        from worldgen.cli import entrypoint

        try:
            entrypoint(["export", str(run), "--mesh", str(glb)])
        except SystemExit as e:
            if e.code:
                raise
    docs = ROOT / "docs"
    view_shot(run, docs / "view_first_camera.jpg")
    mesh_shot(run, glb, docs / "export_mesh.jpg")


if __name__ == "__main__":
    main()
