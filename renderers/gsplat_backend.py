"""gsplat backend (CUDA only): `gsplat.rasterization` behind the `Renderer` protocol.

gsplat is imported lazily inside `render`, and only for CUDA tensors: on a machine without CUDA,
calling gsplat tries to compile its CUDA extension and fails, so this backend refuses to run there.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldgen.core.interfaces import Render
from worldgen.core.camera import Camera
from worldgen.core.scene import GaussianScene


class _ZeroNonFiniteRows(torch.autograd.Function):
    """Identity forward; backward zeroes the rows of the gradient that are not finite and adds their count
    to `counter` (a 0-dim int64 tensor on the same device; no synchronisation)."""

    @staticmethod
    def forward(ctx, x: Tensor, counter: Tensor) -> Tensor:
        ctx.counter = counter
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g: Tensor):
        bad = ~torch.isfinite(g).all(dim=-1)  # [N]
        ctx.counter.add_(bad.sum())
        return torch.where(bad[:, None], torch.zeros_like(g), g), None


def zero_nonfinite_grad_rows(x: Tensor, counter: Tensor) -> Tensor:
    """x [N, C] unchanged; in the backward pass a row whose gradient is not finite gets none (zeros) and
    is counted in `counter` (0-dim int64, same device). gsplat's rasterizer backward returns NaN for a few
    Gaussians now and then (gsplat issues #248, #455); training over gsplat renders (still-photo steps,
    refine/train/photos.py) would otherwise drop the whole step."""
    return _ZeroNonFiniteRows.apply(x, counter)


class GsplatRenderer:
    """`gsplat.rasterization` (packed=False, eps2d=0.3, classic mode, render_mode="RGB+ED").

    Args:
        eps2d: screen-space blur added to the 2D covariance diagonal (px^2), gsplat's default 0.3.
    """

    name = "gsplat"

    def __init__(self, eps2d: float = 0.3) -> None:
        self.eps2d = eps2d
        self._zeroed: Tensor | None = None  # Gaussians whose non-finite gradient was zeroed (training)

    def take_zeroed_grad_rows(self) -> int:
        """Gaussians (counted once per render they were in) whose gradient from gsplat was not finite and was
        zeroed since the last call (`zero_nonfinite_grad_rows`); reading it waits for the device."""
        n = 0 if self._zeroed is None else int(self._zeroed)
        self._zeroed = None
        return n

    def render(
        self,
        scene: GaussianScene,
        camera: Camera,
        width: int | None = None,
        height: int | None = None,
        features: Tensor | None = None,  # [N, C]
        eps2d: float | None = None,  # screen-space blur (px^2) for this call; None: the renderer's own
    ) -> Render:
        """Render `scene` (on a CUDA device) from `camera`, resized to width x height if given.

        Returns Render(rgb [H, W, 3] premultiplied (no background), depth [H, W] expected z-depth
        (0 where alpha = 0), alpha [H, W], features [H, W, C] or None), float32 on the scene's device.
        """
        if scene.device.type != "cuda" or not torch.cuda.is_available():
            raise ValueError(f"GsplatRenderer needs a scene on a CUDA device, got {scene.device}; use TorchRenderer")
        if features is not None and (features.dim() != 2 or features.shape[0] != len(scene)):
            raise ValueError(f"features must be [N, C] with N = {len(scene)}, got {tuple(features.shape)}")
        if (width is not None and width != camera.width) or (height is not None and height != camera.height):
            camera = camera.resized(width or camera.width, height or camera.height)
        W, H = camera.width, camera.height
        dev = scene.device
        n_feat = 0 if features is None else features.shape[1]
        if len(scene) == 0:  # gsplat's kernels are not meant for empty inputs
            z = torch.zeros(H, W, device=dev)
            feats = z[..., None].repeat(1, 1, n_feat) if n_feat else None
            return Render(z[..., None].repeat(1, 1, 3), z, z.clone(), feats)

        from gsplat import rasterization  # lazy: importing is fine anywhere, calling needs CUDA

        colors = scene.colors if features is None else torch.cat([scene.colors, features.to(scene.colors)], dim=1)
        means = scene.means
        if torch.is_grad_enabled() and (means.requires_grad or colors.requires_grad):
            if self._zeroed is None:
                self._zeroed = torch.zeros((), dtype=torch.int64, device=dev)
            means = zero_nonfinite_grad_rows(means, self._zeroed) if means.requires_grad else means
            colors = zero_nonfinite_grad_rows(colors, self._zeroed) if colors.requires_grad else colors
        out, alpha, _ = rasterization(
            means=means,  # [N, 3] world
            quats=scene.quats,  # [N, 4] wxyz (gsplat normalises)
            scales=scene.scales(),  # [N, 3]
            opacities=scene.opacities(),  # [N]
            colors=colors,  # [N, 3 + C]
            viewmats=camera.w2c.to(dev)[None],  # [1, 4, 4] world-to-camera
            Ks=camera.K.to(dev)[None],  # [1, 3, 3]
            width=W,
            height=H,
            near_plane=0.01,
            far_plane=1e10,
            eps2d=self.eps2d if eps2d is None else eps2d,
            packed=False,
            rasterize_mode="classic",
            render_mode="RGB+ED",
        )
        out, alpha = out[0], alpha[0, ..., 0]  # [H, W, 3 + C + 1], [H, W]
        depth = torch.where(alpha > 0, out[..., -1], torch.zeros_like(alpha))
        return Render(
            rgb=out[..., :3],
            depth=depth,
            alpha=alpha,
            features=out[..., 3:-1] if n_feat else None,
        )
