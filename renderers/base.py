"""The renderer interface every backend implements.

`render(scene, camera, width=None, height=None, features=None) -> Render`.
Backends composite Gaussians front to back with gsplat's rules (see renderers/torch_backend.py).
Conventions: camera OpenCV axes, c2w pose, pixel centres at +0.5 (worldgen/camera.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import Tensor

from worldgen.camera import Camera
from worldgen.scene import GaussianScene


@dataclass
class Render:
    """What a renderer returns for one view (all on the scene's device, float32).

    Attributes:
        rgb: [H, W, 3] composited colour (no background: premultiplied by alpha).
        depth: [H, W] expected z-depth, sum(w_i z_i) / alpha; 0 where alpha == 0.
        alpha: [H, W] accumulated opacity in [0, 1].
        features: [H, W, C] extra per-Gaussian channels composited like colour (premultiplied), or None.
    """

    rgb: Tensor
    depth: Tensor
    alpha: Tensor
    features: Tensor | None = None


class Renderer(Protocol):
    name: str

    def render(
        self,
        scene: GaussianScene,
        camera: Camera,
        width: int | None = None,
        height: int | None = None,
        features: Tensor | None = None,  # [N, C] extra channels per Gaussian
        eps2d: float | None = None,  # screen-space blur (px^2) for this call; None: the renderer's own
    ) -> Render: ...
