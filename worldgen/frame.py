"""`Frame`: one RGBD view with its sky mask and camera — what the loop passes between stages."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from worldgen.camera import Camera


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
