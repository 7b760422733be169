"""What viser needs from worldgen objects: splat arrays, display decimation, camera frustums.

Conversions happen here, once, at the edge between worldgen and the browser:

- Gaussians: viser's `add_gaussian_splats` takes centres (N, 3), covariances (N, 3, 3) (it sends
  their upper triangle as float16), colours (N, 3) in [0, 1] and opacities (N, 1) in [0, 1]; the
  covariance is R diag(s^2) R^T from worldgen's wxyz quaternions and activated scales. worldgen's
  fitted colours may leave [0, 1] slightly and are clamped for display only.
- Cameras: viser's cameras and frustums use worldgen's axes (OpenCV: +x right, +y down, +z forward)
  and take camera-to-world as `wxyz` + `position`; a frustum's `fov` is *vertical*, in radians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from worldgen.core.camera import Camera, quat_to_rotmat, rotmat_to_quat
from worldgen.core.scene import GaussianScene

DISPLAY_BUDGET = 2_000_000
"""Default most Gaussians sent to a browser; bigger worlds are shown decimated (never saved so)."""

_GOLDEN = 0.6180339887498949


@dataclass
class SplatArrays:
    """One batch of Gaussians in viser's layout (numpy, float32).

    Attributes:
        centers: [N, 3] world positions.
        covariances: [N, 3, 3] world covariances R diag(s^2) R^T.
        rgbs: [N, 3] colours in [0, 1].
        opacities: [N, 1] opacities in [0, 1].
    """

    centers: np.ndarray
    covariances: np.ndarray
    rgbs: np.ndarray
    opacities: np.ndarray

    def __len__(self) -> int:
        return int(self.centers.shape[0])


def keep_fraction(total: int, budget: int) -> float:
    """Fraction of `total` Gaussians to display so that about `budget` are shown (1.0 if within)."""
    if budget <= 0:
        raise ValueError(f"display budget must be positive, got {budget}")
    return 1.0 if total <= budget else budget / total


def decimation_mask(indices: torch.Tensor, fraction: float) -> torch.Tensor:
    """[M] bool: which Gaussians (by their global index, [M] int64) a decimated display keeps.

    Deterministic and independent of batching: Gaussian i is kept iff frac(i * golden ratio) <
    fraction, a low-discrepancy choice that spreads the kept ones evenly over the world's growth
    order (and so over space). fraction >= 1 keeps all.
    """
    if fraction >= 1.0:
        return torch.ones(indices.shape, dtype=torch.bool)
    phase = torch.frac(indices.to(torch.float64) * _GOLDEN)
    return phase < fraction


def splat_arrays(scene: GaussianScene, start: int = 0, end: int | None = None, fraction: float = 1.0) -> SplatArrays:
    """viser arrays for Gaussians [start:end] of `scene`, decimated to `fraction` (see `decimation_mask`).

    A decimated display enlarges each kept Gaussian by 1/sqrt(fraction) along every axis, so that
    the surface the (mostly flat) Gaussians cover stays covered; the saved world is never touched.
    Non-finite Gaussians are dropped.
    """
    end = len(scene) if end is None else end
    sl = slice(start, end)
    with torch.no_grad():
        means = scene.means[sl].detach().float().cpu()  # [M, 3]
        scales = scene.log_scales[sl].detach().float().cpu().exp()  # [M, 3]
        quats = scene.quats[sl].detach().float().cpu()  # [M, 4] wxyz
        rgbs = scene.colors[sl].detach().float().cpu().clamp(0.0, 1.0)  # [M, 3]
        opac = torch.sigmoid(scene.opacity_logits[sl].detach().float().cpu())  # [M]
        keep = decimation_mask(torch.arange(start, end, dtype=torch.int64), fraction)
        keep &= torch.isfinite(means).all(1) & torch.isfinite(scales).all(1) & torch.isfinite(quats).all(1)
        keep &= torch.isfinite(rgbs).all(1) & torch.isfinite(opac)
        means, scales, quats, rgbs, opac = means[keep], scales[keep], quats[keep], rgbs[keep], opac[keep]
        if fraction < 1.0:
            scales = scales / math.sqrt(fraction)
        R = quat_to_rotmat(quats)  # [M, 3, 3]
        cov = (R * scales[:, None, :].square()) @ R.transpose(1, 2)  # [M, 3, 3] = R S^2 R^T
        cov = cov.clamp(-6.0e4, 6.0e4)  # float16 range (viser sends covariances as float16)
    return SplatArrays(
        centers=np.ascontiguousarray(means.numpy(), dtype=np.float32),
        covariances=np.ascontiguousarray(cov.numpy(), dtype=np.float32),
        rgbs=np.ascontiguousarray(rgbs.numpy(), dtype=np.float32),
        opacities=np.ascontiguousarray(opac[:, None].numpy(), dtype=np.float32),
    )


@dataclass(frozen=True)
class FrustumPose:
    """A worldgen Camera in viser's terms.

    Attributes:
        fov: vertical field of view, radians.
        aspect: width / height.
        wxyz: [4] camera-to-world rotation quaternion (OpenCV axes, w >= 0).
        position: [3] camera centre in world coordinates.
    """

    fov: float
    aspect: float
    wxyz: np.ndarray
    position: np.ndarray


def frustum_pose(camera: Camera) -> FrustumPose:
    """viser frustum/camera parameters of `camera` (same OpenCV axes; only the encoding changes)."""
    c2w = camera.c2w.detach().double().cpu()
    fov = 2.0 * math.atan(camera.height / (2.0 * camera.fy))
    wxyz = rotmat_to_quat(c2w[:3, :3]).numpy()
    return FrustumPose(fov=fov, aspect=camera.width / camera.height, wxyz=wxyz, position=c2w[:3, 3].numpy().copy())


def world_bounds(scene: GaussianScene, lo: float = 0.02, hi: float = 0.98) -> tuple[np.ndarray, np.ndarray]:
    """Robust axis-aligned bounds (the lo and hi quantiles per axis) of the Gaussians' centres: two [3] arrays.

    An empty scene gives the unit cube around the origin.
    """
    m = scene.means.detach().float().cpu()
    m = m[torch.isfinite(m).all(1)]
    if m.shape[0] == 0:
        return -np.ones(3), np.ones(3)
    if m.shape[0] > 200_000:  # quantiles of a sample are plenty
        m = m[torch.randperm(m.shape[0], generator=torch.Generator().manual_seed(0))[:200_000]]
    q = torch.quantile(m.double(), torch.tensor([lo, hi], dtype=torch.float64), dim=0)
    return q[0].numpy(), q[1].numpy()


def c2w_from_wxyz_position(wxyz: np.ndarray, position: np.ndarray) -> np.ndarray:
    """[4, 4] float64 camera-to-world of viser's (wxyz [4], position [3]) — the inverse of `frustum_pose`."""
    T = np.eye(4)
    T[:3, :3] = quat_to_rotmat(torch.as_tensor(np.asarray(wxyz, dtype=np.float64))).numpy()
    T[:3, 3] = np.asarray(position, dtype=np.float64)
    return T
