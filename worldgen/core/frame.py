"""`Frame`: one RGBD view with its sky mask and camera — what the loop passes between stages."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from worldgen.core.camera import Camera


@dataclass
class Frame:
    """One view.

    Attributes:
        rgb: [H, W, 3] float32 in [0, 1].
        depth: [H, W] float32 z-depth; +inf where sky.
        sky: [H, W] bool, True for sky pixels.
        camera: the view's Camera (its width/height equal W/H).
    """

    rgb: Tensor
    depth: Tensor
    sky: Tensor
    camera: Camera

    def __post_init__(self) -> None:
        H, W = self.camera.height, self.camera.width
        if tuple(self.rgb.shape) != (H, W, 3):
            raise ValueError(f"Frame.rgb must be [{H}, {W}, 3], got {tuple(self.rgb.shape)}")
        if tuple(self.depth.shape) != (H, W) or tuple(self.sky.shape) != (H, W):
            raise ValueError(f"Frame.depth and .sky must be [{H}, {W}], got {tuple(self.depth.shape)}, {tuple(self.sky.shape)}")

    @property
    def disparity(self) -> Tensor:
        """[H, W] 1 / depth (0 for sky)."""
        return torch.where(torch.isfinite(self.depth) & (self.depth > 0), 1.0 / self.depth.clamp_min(1e-12), torch.zeros_like(self.depth))

    def to(self, device: torch.device | str) -> "Frame":
        return Frame(self.rgb.to(device), self.depth.to(device), self.sky.to(device), self.camera.to(device))


@dataclass
class GroundTexture:
    """The first frame's ground detail by elevation (worldgen/core/anchor.py: `ground_texture` builds it,
    `texture_transfer` lays it over a view).

    Attributes:
        detail: [H0, W0, 3] float32, the frame's high-frequency layer (`detail_layer`), 0 off the ground
            (sky, no depth).
        index: [bins, samples] int64 (anchor.TEXTURE_BINS, TEXTURE_SAMPLES), flat pixel indices
            (row * W0 + col) of ground pixels whose elevation relative to the horizon falls in each bin
            (bin i centred at anchor.ANCHOR_TOP_DEG - i * anchor.TEXTURE_STEP_DEG; bins without ground
            borrow the nearest bin's).
        energy: [bins] float32, the mean absolute grey detail of the ground in each bin (the same
            borrowing).
    """

    detail: Tensor
    index: Tensor
    energy: Tensor

    def tensors(self) -> list[Tensor]:
        return [self.detail, self.index, self.energy]


@dataclass
class RenderedView:
    """What the refiner sees at a new pose: the scene's render and the sky dome's, unrefined.

    Attributes:
        camera: the new view's Camera.
        rgb: [H, W, 3] the scene's colour, premultiplied by alpha (no background).
        alpha: [H, W] the scene's accumulated opacity.
        depth: [H, W] the scene's expected z-depth (meaningful where alpha > 0).
        footprint: [H, W] the scene's Gaussians' size in pixels (un-premultiplied), or None.
        sky_rgb: [H, W, 3] the sky dome's colour (meaningful where sky_known > 0).
        sky_known: [H, W] in [0, 1], how much of the sky dome was observed in that direction.
        horizon_elev_deg: world elevation (degrees) above which uncovered pixels may be taken for
            sky even where the dome is blank (from the first frame's sky; 90 = never).
        ground_anchor: [ANCHOR_BANDS, 3] the first frame's ground colour by elevation relative to
            the horizon (worldgen/core/anchor.py), or None.
        ground_texture: the first frame's ground detail by elevation (`GroundTexture`,
            worldgen/core/anchor.py), or None.
        fine_share: [H, W] in [0, 1], the share of the pixel's opacity drawn by Gaussians no larger than the
            lift's `detail_px` (worldgen/pipeline/lift.py), or None.
    """

    camera: Camera
    rgb: Tensor
    alpha: Tensor
    depth: Tensor
    footprint: Tensor | None
    sky_rgb: Tensor
    sky_known: Tensor
    horizon_elev_deg: float = 90.0
    ground_anchor: Tensor | None = None
    ground_texture: GroundTexture | None = None
    fine_share: Tensor | None = None
