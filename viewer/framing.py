"""Where a viewer tab starts looking from: a flight's first camera, or a bare world's densest region.

Poses are worldgen's (OpenCV camera axes, camera-to-world, world up -y); viser's initial camera takes
a position, a look-at point, an up direction and a *vertical* field of view in radians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from worldgen.core.camera import Camera
from worldgen.core.scene import GaussianScene

_SAMPLE = 200_000


@dataclass(frozen=True)
class View:
    """An initial view.

    Attributes:
        position: [3] camera centre (world).
        look_at: [3] point the orbit controls turn around (on the view axis).
        up: [3] unit up direction of the image (the camera's -y axis for a worldgen camera).
        fov: vertical field of view, radians.
        near, far: clipping distances.
    """

    position: np.ndarray
    look_at: np.ndarray
    up: np.ndarray
    fov: float
    near: float
    far: float


def _centres(scene: GaussianScene) -> np.ndarray:
    """float64 [M, 3] finite Gaussian centres, an even seeded subsample of at most 200,000."""
    m = scene.means.detach().float().cpu()
    m = m[torch.isfinite(m).all(1)]
    if m.shape[0] > _SAMPLE:
        m = m[torch.randperm(m.shape[0], generator=torch.Generator().manual_seed(0))[:_SAMPLE]]
    return m.double().numpy()


def view_at_camera(camera: Camera, scene: GaussianScene) -> View:
    """The view of `camera` itself: same centre, axis, roll and vertical field of view. The look-at
    point is the median depth of the Gaussians the camera sees (so orbiting turns around the middle
    of its view); near is a fraction of the nearest of them, far reaches past the farthest."""
    c2w = camera.c2w.detach().double().cpu().numpy()
    pos, forward, up = c2w[:3, 3], c2w[:3, 2], -c2w[:3, 1]
    fov = 2.0 * math.atan(camera.height / (2.0 * camera.fy))
    pts = _centres(scene)
    depth = None
    if len(pts):
        uv, z = camera.to("cpu").project(torch.from_numpy(pts).float())
        uv, z = uv.numpy(), z.numpy()
        seen = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] <= camera.width) & (uv[:, 1] >= 0) & (uv[:, 1] <= camera.height)
        if seen.sum() >= 10:
            depth = z[seen]
    if depth is None:  # nothing in view: fall back on distances to the whole world
        depth = np.linalg.norm(pts - pos, axis=1) if len(pts) else np.array([1.0])
    dist = float(np.median(depth)) or 1.0
    near = max(1e-6, 0.25 * float(np.percentile(depth, 1)))
    far = 2.0 * float(depth.max()) + dist
    return View(position=pos, look_at=pos + dist * forward, up=up, fov=fov, near=near, far=far)


def densest_point(points: np.ndarray, cells: int = 32) -> tuple[np.ndarray, float]:
    """(centre [3], radius) of the densest region of points [M, 3]: the peak of their counts on a grid
    of `cells` per axis over the 2-98 % bounds, smoothed over 3x3x3 cells, refined to the median of the
    points within two cells of it; radius = the 90th percentile of those points' distance to the centre."""
    lo, hi = np.percentile(points, 2, axis=0), np.percentile(points, 98, axis=0)
    span = np.maximum(hi - lo, 1e-9)
    idx = np.clip(((points - lo) / span * cells).astype(np.int64), 0, cells - 1)
    counts = np.zeros((cells + 2,) * 3)
    np.add.at(counts, tuple((idx + 1).T), 1.0)
    shifts = [(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)]
    smooth = sum(np.roll(counts, s, (0, 1, 2)) for s in shifts)
    peak = np.array(np.unravel_index(np.argmax(smooth[1:-1, 1:-1, 1:-1]), (cells,) * 3))
    centre = lo + (peak + 0.5) / cells * span
    cell = float(np.linalg.norm(span / cells))
    near = points[np.linalg.norm(points - centre, axis=1) <= 2.0 * cell]
    if len(near) >= 10:
        centre = np.median(near, axis=0)
    d = np.linalg.norm(near - centre, axis=1) if len(near) else np.array([cell])
    return centre, max(float(np.percentile(d, 90)), 0.02 * cell)


def view_of_densest(scene: GaussianScene, fov_deg: float = 60.0) -> View:
    """A view along world +z (worldgen's forward, up -y) that frames the densest region of `scene`:
    a sphere of its radius around its centre fits the vertical field of view `fov_deg`."""
    fov = math.radians(fov_deg)
    pts = _centres(scene)
    if len(pts) == 0:
        centre, radius = np.zeros(3), 1.0
    else:
        centre, radius = densest_point(pts)
    dist = radius / math.sin(fov / 2)
    pos = centre - np.array([0.0, 0.0, dist])
    extent = float(np.linalg.norm(np.ptp(pts, axis=0))) if len(pts) else 1.0
    return View(position=pos, look_at=centre, up=np.array([0.0, -1.0, 0.0]), fov=fov,
                near=max(1e-6, 1e-3 * dist), far=10.0 * (extent + dist))
