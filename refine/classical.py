"""A classical refiner with no weights: composite the sky, fill holes with image pyramids.

- Pixels the scene covers (alpha >= hole_alpha) keep the scene's colour (rgb / alpha) and depth.
- Uncovered pixels are sky where the sky dome has seen that direction, or where they look above the
  horizon; their colour is the scene's remainder composited over the sky (filled from the nearest
  known sky where the dome has gaps), depth +inf.
- The rest are disocclusion holes: their disparity continues the *farther* side of the hole
  (fill_far) and their colour comes from covered pixels on that side (push-pull).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from refine.graphed import graphs_wanted, refine_graphed
from worldgen.core.config import bad
from worldgen.core.fill import fill_far, push_pull
from worldgen.core.frame import Frame, RenderedView
from worldgen.core.graphs import GraphCache


@dataclass(frozen=True)
class ClassicalRefinerConfig:
    """The classical refiner's settings."""

    hole_alpha: float = 0.5
    """Pixels with less scene alpha than this are sky or holes."""
    background_slack: float = 1.15
    """Hole colours come from covered pixels with disparity below slack x the filled (far) disparity."""

    def validate(self) -> None:
        if not 0 <= self.hole_alpha <= 1:
            raise bad("hole_alpha", "must be in [0, 1]", self.hole_alpha)
        if not self.background_slack >= 1:
            raise bad("background_slack", "must be at least 1", self.background_slack)


@dataclass
class ClassicalResult:
    """The classical refiner's frame, and the far-side disparity it continued holes with.

    Attributes:
        frame: the refined Frame.
        far_disparity: [H, W] disparity of covered pixels, and of the far side of the hole elsewhere
            (what holes' depth continues; 1e-3 everywhere when nothing is covered).
        ground_rgb: [H, W, 3] in [0, 1]: what a hole gets (the background side's push-pull fill, or the sky's
            when nothing is covered) at every pixel, sky included: the colour for an uncovered pixel that
            another judge (the learned refiner's sky mask) calls ground where this refiner says sky.
    """

    frame: Frame
    far_disparity: torch.Tensor
    ground_rgb: torch.Tensor


class ClassicalRefiner:
    name = "classical"

    def __init__(self, config: ClassicalRefinerConfig = ClassicalRefinerConfig()):
        self.config = config
        self._graphs = GraphCache(keep_functions=False)  # its graphs read only this refiner's state

    def __call__(self, view: RenderedView) -> Frame:
        """The refined Frame of `view` (on CUDA without autograd: replayed as a CUDA graph, refine/graphed.py)."""
        if graphs_wanted(view):
            return refine_graphed(self._graphs, view, self._frame_tensors)
        return self.refine(view).frame

    def _frame_tensors(self, view: RenderedView) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.refine(view).frame
        return f.rgb, f.depth, f.sky

    def refine(self, view: RenderedView) -> ClassicalResult:
        """Refine `view`; also returns the far-side disparity (the learned refiner builds on both)."""
        cfg = self.config
        alpha = view.alpha
        covered = alpha >= cfg.hole_alpha
        scene_rgb = view.rgb / alpha.clamp_min(1e-6)[..., None]
        elev = view.camera.ray_elevation_deg()
        sky = ~covered & ((view.sky_known > 0.5) | (elev > view.horizon_elev_deg))
        holes = ~covered & ~sky

        # Every choice below is a `torch.where` on a 0-dim tensor, never a Python `if` on a value read
        # from the device: the refiner never waits for the GPU, so it can be captured as a CUDA graph
        # (refine/graphed.py). The fills it does not need cost a few pyramid passes.
        any_covered = covered.any()

        # Sky colour: the dome where known, extended across its gaps from the nearest known sky; when
        # this view has seen nothing of the sky yet, the image's own colours continued.
        dome_seen = (view.sky_known > 0).any()
        sky_fill = push_pull(torch.where(dome_seen, view.sky_rgb, scene_rgb),
                             torch.where(dome_seen, view.sky_known, covered.float()))
        sky_rgb = torch.where(sky.any(), sky_fill, view.sky_rgb)

        # Depth: covered pixels keep theirs; holes continue the far side (nothing covered: no depth
        # to continue, holes go far away).
        disp = torch.where(covered, 1.0 / view.depth.clamp_min(1e-6), torch.zeros_like(alpha))
        disp_f = fill_far(disp, covered)  # = disp where covered
        depth = torch.where(covered, view.depth, 1.0 / disp_f.clamp_min(1e-6))
        depth = torch.where(sky, torch.full_like(depth, math.inf), depth)
        depth = torch.where(holes & ~any_covered, torch.full_like(depth, 1e3), depth)

        # Colour of holes: push-pull from covered background-side pixels (the sky's fill when nothing
        # is covered): those no nearer than slack x the far disparity of the holes around them (the holes'
        # filled disparity carried out over the covered pixels), so a near object's edge does not bleed into
        # the hole it leaves. (Until 2026-12-05 the test read each covered pixel's own disparity, so every
        # covered pixel passed: the fill took the near side's colour as much as the far side's.)
        hole_far = push_pull(disp_f[..., None], holes.float())[..., 0]  # [H, W]: = disp_f on holes
        bg_side = covered & (disp <= cfg.background_slack * hole_far + 1e-9)
        hole_fill = push_pull(scene_rgb, torch.where(bg_side.any(), bg_side, covered).float())
        hole_fill = torch.where(any_covered, hole_fill, sky_rgb)
        rgb = torch.where(covered[..., None], scene_rgb, view.rgb + (1 - alpha)[..., None] * sky_rgb)
        rgb = torch.where(holes[..., None], hole_fill, rgb)
        disp_f = torch.where(any_covered, disp_f, torch.full_like(disp_f, 1e-3))
        frame = Frame(rgb=rgb.clamp(0, 1), depth=depth, sky=sky, camera=view.camera)
        return ClassicalResult(frame, disp_f, hole_fill.clamp(0, 1))
