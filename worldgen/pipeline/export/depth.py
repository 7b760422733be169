"""Per-frame z-depth of a run: the saved `depth/NNNNN.npy` when the run has it, else world.ply
re-rendered at the frame's camera.

`worldgen fly` does not save per-frame depth (yet); re-rendering the final world at each camera
gives the depth the world has there, with the same renderer and screen-space blur as the flight.
Pixels the world covers with opacity below `min_alpha` are sky / nothing: +inf, as everywhere in
worldgen (z-depth, float32, OpenCV camera, pixel centres at +0.5).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from worldgen.pipeline.export.rundir import RunDir
from worldgen.core.io import UserInputError


class FrameDepths:
    """depth(t) -> [H, W] float32 z-depth of frame t (+inf = sky / nothing), on the CPU.

    Args:
        run: the run folder.
        source: "auto" (a saved depth file where there is one, a render elsewhere), "files" (saved files
            only; UserInputError when one is missing) or "render" (always re-render world.ply).
        device: where to render ("cpu", "cuda", or "auto": CUDA when available).
        min_alpha: rendered pixels with accumulated opacity below this are +inf.
    """

    def __init__(self, run: RunDir, source: str = "auto", device: str = "auto", min_alpha: float = 0.5):
        if source not in ("auto", "files", "render"):
            raise ValueError(f"unknown depth source {source!r}")
        self.run, self.source, self.min_alpha = run, source, float(min_alpha)
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        self._scene = None
        self._renderer = None
        self.rendered = 0  # how many frames were rendered (the rest were read)
        if source == "files":
            missing = [t for t in range(len(run)) if not run.depth_path(t).is_file()]
            if missing:
                raise UserInputError(f"--depth-source files: {run.depth_path(missing[0])} is missing "
                                     f"({len(missing)} of {len(run)} frames have no depth file)")

    def __call__(self, t: int) -> Tensor:
        cam = self.run.cameras[t]
        path = self.run.depth_path(t)
        if self.source != "render" and path.is_file():
            try:
                d = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise UserInputError(f"{path} is not a readable .npy depth map ({e})") from None
            if d.shape != (cam.height, cam.width) or not np.issubdtype(d.dtype, np.floating):
                raise UserInputError(f"{path}: expected float depth of shape ({cam.height}, {cam.width}), "
                                     f"got {d.dtype} {d.shape}")
            d = d.astype(np.float32)
            d[~(d > 0)] = np.inf  # NaN, zero and negative: no depth
            return torch.from_numpy(d)
        return self.render(t)

    def render(self, t: int) -> Tensor:
        """Frame t's depth from world.ply re-rendered at camera t: [H, W] float32, +inf where alpha < min_alpha."""
        if self._scene is None:
            from renderers import get_renderer
            from worldgen.pipeline.generator import GeneratorConfig

            self._scene = self.run.load_scene(self.device)
            self._renderer = get_renderer(self.device.type)
            self._eps2d = GeneratorConfig().eps2d  # the flight's screen-space blur
        cam = self.run.cameras[t].to(self.device)
        with torch.no_grad():
            r = self._renderer.render(self._scene, cam, eps2d=self._eps2d)
        self.rendered += 1
        depth = torch.where(r.alpha >= self.min_alpha, r.depth, torch.full_like(r.depth, float("inf")))
        return depth.float().cpu()
