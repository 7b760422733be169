"""Pinhole cameras: the one camera convention of worldgen.

Conventions (stated once here; every other module imports them rather than re-deriving):

- Camera axes are OpenCV's: +x right, +y down, +z forward. World "up" is -y.
- A pose is camera-to-world (`c2w`, 4x4, float32). World-to-camera (`w2c`) is its inverse and is
  what gsplat calls `viewmats`.
- Intrinsics `K` are in pixels. Pixel (row i, column j) has its centre at (u, v) = (j + 0.5, i + 0.5),
  so a centred principal point is (W / 2, H / 2).
- Depth is z-depth (distance along +z, not along the ray), float32; sky has depth +inf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Camera:
    """One pinhole view.

    Attributes:
        K: [3, 3] float32 pixel intrinsics (fx, fy, cx, cy), pixel centres at +0.5.
        c2w: [4, 4] float32 camera-to-world pose, OpenCV axes.
        width: image width W in pixels.
        height: image height H in pixels.
    """

    K: Tensor
    c2w: Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        if tuple(self.K.shape) != (3, 3) or tuple(self.c2w.shape) != (4, 4):
            raise ValueError(f"Camera needs K [3,3] and c2w [4,4], got {tuple(self.K.shape)} and {tuple(self.c2w.shape)}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"Camera size must be positive, got {self.width}x{self.height}")

    # ------------------------------------------------------------------ construction
    @staticmethod
    def from_fov(fov_x_deg: float, width: int, height: int, c2w: Tensor | None = None) -> "Camera":
        """A camera with square pixels, centred principal point and horizontal field of view `fov_x_deg`."""
        if not 0.0 < fov_x_deg < 180.0:
            raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_x_deg}")
        fx = 0.5 * width / math.tan(math.radians(fov_x_deg) / 2)
        K = torch.tensor([[fx, 0.0, width / 2], [0.0, fx, height / 2], [0.0, 0.0, 1.0]], dtype=torch.float32)
        if c2w is None:
            c2w = torch.eye(4, dtype=torch.float32)
        return Camera(K=K, c2w=c2w.to(torch.float32), width=width, height=height)

    # ------------------------------------------------------------------ properties
    @property
    def fx(self) -> float:
        return float(self.K[0, 0])

    @property
    def fy(self) -> float:
        return float(self.K[1, 1])

    @property
    def w2c(self) -> Tensor:
        """[4, 4] world-to-camera (gsplat's `viewmats`)."""
        return rigid_inverse(self.c2w)

    @property
    def position(self) -> Tensor:
        """[3] camera centre in world coordinates."""
        return self.c2w[:3, 3]

    @property
    def rotation(self) -> Tensor:
        """[3, 3] camera-to-world rotation; its columns are the camera's x (right), y (down), z (forward) axes."""
        return self.c2w[:3, :3]

    @property
    def fov_x_deg(self) -> float:
        return math.degrees(2 * math.atan(self.width / (2 * self.fx)))

    @property
    def device(self) -> torch.device:
        return self.c2w.device

    # ------------------------------------------------------------------ transforms
    def to(self, device: torch.device | str) -> "Camera":
        return Camera(K=self.K.to(device), c2w=self.c2w.to(device), width=self.width, height=self.height)

    def with_pose(self, c2w: Tensor) -> "Camera":
        """Same intrinsics and size, another camera-to-world pose [4, 4]."""
        return Camera(K=self.K, c2w=c2w.to(self.K.device, torch.float32), width=self.width, height=self.height)

    def resized(self, width: int, height: int) -> "Camera":
        """Same pose and field of view at another resolution (intrinsics scaled per axis)."""
        sx, sy = width / self.width, height / self.height
        K = self.K.clone()
        K[0] *= sx
        K[1] *= sy
        K[2] = torch.tensor([0.0, 0.0, 1.0], dtype=K.dtype, device=K.device)
        return Camera(K=K, c2w=self.c2w, width=width, height=height)

    # ------------------------------------------------------------------ geometry
    def pixel_grid(self) -> Tensor:
        """[H, W, 2] pixel-centre coordinates (u, v) = (j + 0.5, i + 0.5)."""
        dev = self.K.device
        v, u = torch.meshgrid(
            torch.arange(self.height, device=dev, dtype=torch.float32) + 0.5,
            torch.arange(self.width, device=dev, dtype=torch.float32) + 0.5,
            indexing="ij",
        )
        return torch.stack([u, v], dim=-1)

    def rays_cam(self) -> Tensor:
        """[H, W, 3] camera-space ray directions with z = 1 (so `rays_cam * depth` are camera points)."""
        uv = self.pixel_grid()
        x = (uv[..., 0] - self.K[0, 2]) / self.K[0, 0]
        y = (uv[..., 1] - self.K[1, 2]) / self.K[1, 1]
        return torch.stack([x, y, torch.ones_like(x)], dim=-1)

    def rays_world(self) -> Tensor:
        """[H, W, 3] unit-length world-space ray directions through each pixel centre."""
        d = self.rays_cam() @ self.rotation.T
        return d / d.norm(dim=-1, keepdim=True)

    def unproject(self, depth: Tensor) -> Tensor:
        """World points [H, W, 3] of a z-depth map [H, W] (inf depth gives inf/nan points: mask first)."""
        if tuple(depth.shape) != (self.height, self.width):
            raise ValueError(f"depth is {tuple(depth.shape)}, camera is {self.height}x{self.width}")
        pts_cam = self.rays_cam() * depth[..., None]
        return pts_cam @ self.rotation.T + self.position

    def world_to_camera(self, points: Tensor) -> Tensor:
        """Camera-space points [..., 3] of world points [..., 3]."""
        R = self.rotation
        return (points - self.position) @ R

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """Project world points [..., 3]; returns pixel coords uv [..., 2] and z-depth [...]."""
        pc = self.world_to_camera(points)
        z = pc[..., 2]
        zs = z.clamp_min(1e-8)
        u = self.K[0, 0] * pc[..., 0] / zs + self.K[0, 2]
        v = self.K[1, 1] * pc[..., 1] / zs + self.K[1, 2]
        return torch.stack([u, v], dim=-1), z

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        """JSON-ready: width, height, fx, fy, cx, cy, c2w (row-major 4x4 list)."""
        return {
            "width": self.width,
            "height": self.height,
            "fx": float(self.K[0, 0]),
            "fy": float(self.K[1, 1]),
            "cx": float(self.K[0, 2]),
            "cy": float(self.K[1, 2]),
            "c2w": [[float(x) for x in row] for row in self.c2w.cpu().tolist()],
        }

    @staticmethod
    def from_dict(d: dict) -> "Camera":
        K = torch.tensor([[d["fx"], 0.0, d["cx"]], [0.0, d["fy"], d["cy"]], [0.0, 0.0, 1.0]], dtype=torch.float32)
        return Camera(K=K, c2w=torch.tensor(d["c2w"], dtype=torch.float32), width=int(d["width"]), height=int(d["height"]))


def rigid_inverse(T: Tensor) -> Tensor:
    """Inverse of rigid transforms [..., 4, 4] (rotation + translation), exact to float rounding."""
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    out = torch.zeros_like(T)
    Rt = R.transpose(-1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1.0
    return out


def look_at(position: Tensor, target: Tensor, up: Tensor | None = None) -> Tensor:
    """Camera-to-world [4, 4] at `position` [3] looking at `target` [3], OpenCV axes.

    `up` is the world up direction (default -y, worldgen's convention); the camera's +y (down) axis
    is made as close as possible to -up.
    """
    if up is None:
        up = torch.tensor([0.0, -1.0, 0.0], dtype=position.dtype, device=position.device)
    z = target - position
    z = z / z.norm().clamp_min(1e-12)
    x = torch.linalg.cross(-up, z)  # right = down x forward
    if x.norm() < 1e-6:  # looking straight up or down: pick any right vector
        x = torch.linalg.cross(torch.tensor([0.0, 0.0, 1.0], dtype=z.dtype, device=z.device), z)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    c2w = torch.eye(4, dtype=position.dtype, device=position.device)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, position
    return c2w


def quat_to_rotmat(q: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] of quaternions [..., 4] in wxyz order (normalised here)."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(q.shape[:-1] + (3, 3))


def rotmat_to_quat(R: Tensor) -> Tensor:
    """Unit quaternions [..., 4] (wxyz, w >= 0) of rotation matrices [..., 3, 3]."""
    m = R
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Four candidate solutions; pick per element the numerically safest (largest pivot).
    cands = torch.stack(
        [
            torch.stack([1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
            torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
        ],
        dim=-2,
    )  # [..., 4, 4]
    pivots = torch.stack([1 + tr, 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], 1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1)
    best = pivots.argmax(-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)
