"""Depth (and sky) for the first frame: the backends of `worldgen.core.interfaces.DepthEstimator`.

Every backend maps an RGB image [H, W, 3] in [0, 1] plus its Camera to
`(depth [H, W] float32 z-depth with +inf sky, sky [H, W] bool)`.

Backends:
- `FileDepth`: the user's own depth or disparity map (.npy, .npz, 16-bit .png).
- `LandscapePrior`: a built-in prior with no weights: sky detection, and a ground plane below the
  horizon (camera 1 unit above flat ground), far things at a fixed far depth.
- `TransformersDepth`: a Hugging Face depth model (e.g. Depth Anything V2) when its weights are
  already in the local cache; never downloads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from worldgen.core.camera import Camera
from worldgen.core.fill import fill_far
from worldgen.core.images import center_crop_resize, load_depth_file
from worldgen.core.io import UserInputError


def detect_sky(rgb: Tensor, max_row_frac: float = 0.75) -> Tensor:
    """Heuristic sky mask [H, W] bool of an RGB image [H, W, 3] in [0, 1].

    Sky candidates are bright, smooth pixels that are blue-ish, or near-white / grey (clouds,
    overcast); the mask keeps only candidates connected to the top border, above `max_row_frac`
    of the height.
    """
    H, W, _ = rgb.shape
    r, g, b = rgb.unbind(-1)
    lum = 0.299 * r + 0.587 * g + 0.114 * b
    mx, mn = rgb.max(-1).values, rgb.min(-1).values
    sat = (mx - mn) / mx.clamp_min(1e-6)
    blue = (b >= r - 0.02) & (b >= g - 0.08) & (lum > 0.25)
    grey = (sat < 0.25) & (lum > 0.45)
    warm = (lum > 0.55) & (r > b) & (sat < 0.6)  # sunset glow
    # Local smoothness: gradient magnitude of luminance (sky is smooth; foliage and rock are not).
    gx = F.pad((lum[:, 1:] - lum[:, :-1]).abs(), (0, 1))
    gy = F.pad((lum[1:] - lum[:-1]).abs(), (0, 0, 0, 1))
    grad = F.avg_pool2d((gx + gy)[None, None], 5, stride=1, padding=2)[0, 0]
    cand = (blue | grey | warm) & (grad < 0.04)
    rows = torch.arange(H, device=rgb.device)[:, None].expand(H, W)
    cand &= rows < max_row_frac * H
    # Flood fill from the top row through candidates (vectorised dilation until stable).
    sky = cand & (rows == 0)
    kernel_pass = lambda m: F.max_pool2d(m[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0  # noqa: E731
    for _ in range(2 * (H + W)):
        grown = kernel_pass(sky) & cand
        if torch.equal(grown, sky):
            break
        sky = grown
    return sky


class LandscapePrior:
    """Weight-free landscape depth: sky detection + ground plane below the horizon.

    The camera is taken as level, `camera_height` units above flat ground; the horizon is the
    principal-point row (lowered to the bottom of the detected sky where the sky reaches lower).
    Ground depth at row v is h * fy / (v - v_horizon); non-sky pixels at or above the horizon take
    `far` units (a backdrop of distant hills).
    """

    def __init__(self, camera_height: float = 1.0, far: float = 60.0):
        self.camera_height = camera_height
        self.far = far

    def __call__(self, rgb: Tensor, camera: Camera) -> tuple[Tensor, Tensor]:
        H, W, _ = rgb.shape
        sky = detect_sky(rgb)
        v = torch.arange(H, dtype=torch.float32, device=rgb.device) + 0.5
        v_h = float(camera.K[1, 2])
        if sky.any():
            # If sky pixels reach below the principal row in most columns, the horizon is lower.
            lowest = torch.where(sky, v[:, None].expand(H, W), torch.zeros(H, W)).amax(0)
            v_h = max(v_h, float(lowest[lowest > 0].median()) if (lowest > 0).any() else v_h)
        dv = v - v_h
        ground = torch.where(dv > 0, self.camera_height * camera.fy / dv.clamp_min(1e-6), torch.full_like(v, math.inf))
        depth = ground.clamp(max=self.far)[:, None].expand(H, W).clone()
        depth[sky] = math.inf
        return depth, sky


class FileDepth:
    """Depth from the user's file, aligned with the input image.

    The file must have the input image's size (before `--size` resizing), or the working size.
    NaN, zero and negative values are masked and filled from their farther neighbours; +inf (or
    disparity 0) marks sky.
    """

    def __init__(self, path: str, kind: str = "depth", png_scale: float = 1000.0):
        self.path = path
        self.raw = load_depth_file(path, kind=kind, png_scale=png_scale)  # fail early, before any work

    def check_size(self, width: int, height: int) -> None:
        h, w = self.raw.shape
        if (w, h) != (width, height):
            raise UserInputError(f"depth file {self.path} is {w}x{h} but the image is {width}x{height}")

    def __call__(self, rgb: Tensor, camera: Camera) -> tuple[Tensor, Tensor]:
        H, W, _ = rgb.shape
        d = self.raw
        if tuple(d.shape) != (H, W):
            d = center_crop_resize(d[..., None], W, H, mode="nearest")[..., 0]
        return clean_depth(d)


def clean_depth(depth: Tensor) -> tuple[Tensor, Tensor]:
    """Mask invalid depth [H, W] (NaN, <= 0) and fill it; +inf becomes sky.

    Returns (depth [H, W] with +inf only at sky, sky [H, W] bool). Raises UserInputError when no
    pixel holds a usable depth.
    """
    sky = torch.isposinf(depth)
    valid = torch.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise UserInputError("the depth map has no valid (finite, positive) value")
    if (~valid & ~sky).any():
        disp = torch.where(valid, 1.0 / depth.clamp_min(1e-12), torch.zeros_like(depth))
        filled = fill_far(disp, valid)
        depth = torch.where(valid, depth, 1.0 / filled.clamp_min(1e-6))
        depth[sky] = math.inf
    return depth.float(), sky


class TransformersDepth:
    """A Hugging Face `transformers` depth model, from the local cache only (never downloads).

    Relative depth models return disparity-like maps; they are scaled so the median non-sky depth
    is `median_depth` units. Sky comes from `detect_sky` (and zero disparity).
    """

    def __init__(self, model: str = "depth-anything/Depth-Anything-V2-Small-hf", median_depth: float = 10.0, device: str = "cpu"):
        try:
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation
        except ImportError:
            raise UserInputError("the 'transformers' depth backend needs `pip install transformers`") from None
        try:
            self.processor = AutoImageProcessor.from_pretrained(model, local_files_only=True)
            self.model = AutoModelForDepthEstimation.from_pretrained(model, local_files_only=True).to(device).eval()
        except Exception:
            raise UserInputError(f"depth model {model} is not in the local Hugging Face cache (worldgen never downloads); use --depth FILE or the built-in prior") from None
        self.median_depth = median_depth
        self.device = device

    @torch.no_grad()
    def __call__(self, rgb: Tensor, camera: Camera) -> tuple[Tensor, Tensor]:
        H, W, _ = rgb.shape
        inputs = self.processor(images=(rgb.cpu().numpy() * 255).astype("uint8"), return_tensors="pt").to(self.device)
        pred = self.model(**inputs).predicted_depth  # [1, h, w] relative disparity
        disp = F.interpolate(pred[None], size=(H, W), mode="bilinear", align_corners=False)[0, 0].cpu().float()
        sky = detect_sky(rgb) | (disp <= 0)
        disp = disp.clamp_min(1e-6)
        scale = float(disp[~sky].median()) * self.median_depth if (~sky).any() else 1.0
        depth = scale / disp
        depth[sky] = math.inf
        return depth, sky
