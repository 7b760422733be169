"""The three interfaces the pipeline is built on: `Renderer`, `Refiner`, `DepthEstimator`.

Backends live outside the core (renderers/, refine/, worldgen/pipeline/depth.py) and implement
these protocols; nothing here imports them. Conventions are those of worldgen/core/camera.py:
OpenCV camera axes, camera-to-world poses, pixel centres at +0.5, z-depth with sky = +inf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import Tensor

from worldgen.core.camera import Camera
from worldgen.core.frame import Frame, RenderedView
from worldgen.core.scene import GaussianScene


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
    """Composites Gaussians front to back with gsplat's rules (see renderers/torch_backend.py)."""

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


class Refiner(Protocol):
    """A rendered view with holes and blur in, a complete Frame out."""

    name: str

    def __call__(self, view: RenderedView) -> Frame:
        """Fill holes, sharpen, fix depth. Returns a Frame of view.camera's size with rgb [H, W, 3] in
        [0, 1], depth [H, W] (+inf where sky) and sky [H, W] bool."""
        ...


class DepthEstimator(Protocol):
    """Depth (and sky) for the first frame."""

    def __call__(self, rgb: Tensor, camera: Camera) -> tuple[Tensor, Tensor]:
        """rgb [H, W, 3] in [0, 1] -> (depth [H, W] float32, +inf for sky; sky [H, W] bool)."""
        ...
