"""A run folder as `worldgen fly` (or the live viewer's export) writes it, read for exporting and viewing.

Layout: `cameras.json` ({"frames": [{width, height, fx, fy, cx, cy, c2w}, ...]}, OpenCV axes,
camera-to-world, pixel centres at +0.5), `world.ply` (3D Gaussian Splatting layout),
`frames/NNNNN.png` (the refined frames), optionally `depth/NNNNN.npy` (float32 z-depth [H, W],
+inf = sky) and `sky.png` (the sky dome, equirectangular; see worldgen/pipeline/sky.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from worldgen.core.camera import Camera
from worldgen.core.io import UserInputError


def load_cameras(path: str | Path) -> list[Camera]:
    """Cameras of a `cameras.json` ({"frames": [{width, height, fx, fy, cx, cy, c2w}, ...]});
    UserInputError with one line for a missing or malformed file, or a camera whose c2w, cx or cy is not
    finite or whose fx or fy is not finite and positive."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserInputError(f"no such camera file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserInputError(f"cannot read {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise UserInputError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, list):
        raise UserInputError(f"{path}: expected an object with a 'frames' list")
    cams = []
    for i, d in enumerate(frames):
        try:
            cam = Camera.from_dict(d)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise UserInputError(
                f"{path}: frame {i} is not a camera (width, height, fx, fy, cx, cy, c2w 4x4): {e}") from None
        if not bool(np.isfinite(cam.c2w.numpy()).all()):
            raise UserInputError(f"{path}: frame {i} has a non-finite pose (c2w)")
        if not all(math.isfinite(v) and v > 0 for v in (cam.fx, cam.fy)):  # (NaN > 0 is False)
            raise UserInputError(f"{path}: frame {i} has focal length fx={cam.fx:g}, fy={cam.fy:g}; "
                                 "both must be finite and positive")
        cx, cy = (float(cam.host()[0][r, 2]) for r in (0, 1))
        if not (math.isfinite(cx) and math.isfinite(cy)):
            raise UserInputError(f"{path}: frame {i} has a non-finite principal point (cx={cx:g}, cy={cy:g})")
        cams.append(cam)
    return cams


@dataclass(frozen=True)
class RunDir:
    """A run folder, checked: it exists and holds a readable `cameras.json` with at least one camera.

    Attributes:
        root: the folder.
        cameras: one Camera per frame (CPU), frame t is cameras[t].
    """

    root: Path
    cameras: list[Camera]

    @staticmethod
    def open(path: str | Path) -> "RunDir":
        """UserInputError (one line) for a missing folder, a file, or a folder without cameras.json (a run another
        writer holds, a flight under way, is said to be in use)."""
        root = Path(path)
        if not root.exists():
            raise UserInputError(f"no such run directory: {root}")
        if not root.is_dir():
            raise UserInputError(f"{root} is not a run directory (a folder written by `worldgen fly`)")
        if not (root / "cameras.json").is_file():
            from worldgen.core.runfolder import check_not_in_use

            check_not_in_use(root)  # a flight under way (or resumed) writes cameras.json at its end: say that instead
            raise UserInputError(f"{root} has no cameras.json (not a run directory written by `worldgen fly`?)")
        cams = load_cameras(root / "cameras.json")
        if not cams:
            raise UserInputError(f"{root / 'cameras.json'} lists no frames")
        return RunDir(root=root, cameras=cams)

    def __len__(self) -> int:
        return len(self.cameras)

    # ------------------------------------------------------------------ files
    @property
    def ply(self) -> Path:
        return self.root / "world.ply"

    @property
    def sky_png(self) -> Path:
        return self.root / "sky.png"

    def frame_path(self, t: int) -> Path:
        return self.root / "frames" / f"{t:05d}.png"

    def depth_path(self, t: int) -> Path:
        return self.root / "depth" / f"{t:05d}.npy"

    def require_ply(self) -> Path:
        if not self.ply.is_file():
            raise UserInputError(f"{self.root} has no world.ply")
        return self.ply

    def require_frames(self) -> None:
        """UserInputError naming the first frame image that is missing."""
        for t in range(len(self)):
            if not self.frame_path(t).is_file():
                raise UserInputError(f"{self.frame_path(t)} is missing (cameras.json lists {len(self)} frames)")

    def load_scene(self, device="cpu"):
        """The world's Gaussians (GaussianScene); UserInputError for a missing or unreadable world.ply."""
        from worldgen.core.scene import GaussianScene, SceneFileError

        try:
            return GaussianScene.load_ply(self.require_ply(), device=device)
        except SceneFileError as e:
            raise UserInputError(str(e)) from None

    def frame_rgb(self, t: int) -> np.ndarray:
        """uint8 [H, W, 3] of frames/NNNNN.png, checked against camera t's size."""
        from PIL import Image, UnidentifiedImageError

        p = self.frame_path(t)
        try:
            with Image.open(p) as im:
                rgb = np.asarray(im.convert("RGB"))
        except FileNotFoundError:
            raise UserInputError(f"{p} is missing (cameras.json lists {len(self)} frames)") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise UserInputError(f"{p} is not a readable image ({e})") from None
        cam = self.cameras[t]
        if rgb.shape[:2] != (cam.height, cam.width):
            raise UserInputError(f"{p} is {rgb.shape[1]}x{rgb.shape[0]}, camera {t} is {cam.width}x{cam.height}")
        return rgb
