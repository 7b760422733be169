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

import numpy as np
import torch
from torch import Tensor

from worldgen.core.device import to_device


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

    def host(self) -> tuple[np.ndarray, np.ndarray]:
        """(K [3, 3], c2w [4, 4]) as float64 numpy arrays on the host: the camera's own float32 values.

        Read from the device at most once per camera (one copy for both; on a GPU every read waits for
        the device) and kept; a camera made by `with_pose` from a pose on the host, or by `to` from a
        camera that has them, gets them without any read. Cameras are values: their K and c2w are not
        changed in place, so the copy stays true. Read-only arrays."""
        h = self.__dict__.get("_host")
        if h is None:
            if self.K.device == self.c2w.device:
                both = torch.cat([self.K.detach().reshape(-1), self.c2w.detach().reshape(-1)]).to("cpu", torch.float64)
                h = _host_pair(both[:9].numpy().reshape(3, 3), both[9:].numpy().reshape(4, 4))
            else:  # (a graph's camera may keep K on the host and c2w on the GPU)
                h = _host_pair(*(t.detach().to("cpu", torch.float64).numpy() for t in (self.K, self.c2w)))
            object.__setattr__(self, "_host", h)
        return h

    def host_w2c(self) -> np.ndarray:
        """float64 [4, 4] world-to-camera from the `host()` copy (kept: computed once per camera). Read-only."""
        w2c = self.__dict__.get("_host_w2c")
        if w2c is None:
            w2c = _rigid_inverse_host(self.host()[1])
            object.__setattr__(self, "_host_w2c", w2c)
        return w2c

    def _host_if_free(self) -> tuple[np.ndarray, np.ndarray] | None:
        """`host()` when it needs no read from a device (kept already, or the tensors are on the CPU), else None."""
        h = self.__dict__.get("_host")
        if h is None and self.K.device.type == "cpu" and self.c2w.device.type == "cpu":
            h = self.host()
        return h

    def _given_host(self, K: np.ndarray, c2w: np.ndarray) -> "Camera":
        object.__setattr__(self, "_host", _host_pair(K, c2w))
        return self

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
        return float(self.host()[0][0, 0])

    @property
    def fy(self) -> float:
        return float(self.host()[0][1, 1])

    @property
    def w2c(self) -> Tensor:
        """[4, 4] world-to-camera (gsplat's `viewmats`); a camera made by `with_pose` from a pose on the host
        has it already (inverted on the host, uploaded with the pose)."""
        w2c = self.__dict__.get("_w2c")
        return rigid_inverse(self.c2w) if w2c is None else w2c

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
        """The same camera on `device` (its `host()` copy comes along; to the CPU it is made from that copy,
        without reading the device, unless the pose or intrinsics carry gradients)."""
        h = self._host_if_free()
        if (h is not None and torch.device(device).type == "cpu" and self.K.device.type != "cpu"
                and not (self.K.requires_grad or self.c2w.requires_grad)):
            K, c2w = (torch.from_numpy(a.astype(np.float32)) for a in h)
        else:
            K, c2w = self.K.to(device), self.c2w.to(device)
        cam = Camera(K=K, c2w=c2w, width=self.width, height=self.height)
        return cam if h is None else cam._given_host(*h)

    def with_pose(self, c2w: Tensor) -> "Camera":
        """Same intrinsics and size, another camera-to-world pose [4, 4]. A pose given on the host (as
        the paths compute them) is kept as the new camera's `host()` copy, so the flight's page test,
        checks and records never wait for the device to read it back."""
        h = self._host_if_free() if c2w.device.type == "cpu" and not c2w.requires_grad else None
        if h is None:
            pose = to_device(c2w, self.K.device, torch.float32)  # from the host: without waiting for the device
            return Camera(K=self.K, c2w=pose, width=self.width, height=self.height)
        # from the host: the pose and its inverse in one upload (the renderer and the page test read w2c every frame)
        c2w64 = c2w.detach().to(torch.float32).to(torch.float64).numpy()
        w2c64 = _rigid_inverse_host(c2w64)
        both = to_device(np.stack([c2w64, w2c64]).astype(np.float32), self.K.device)
        cam = Camera(K=self.K, c2w=both[0], width=self.width, height=self.height)._given_host(h[0], c2w64)
        object.__setattr__(cam, "_host_w2c", w2c64)
        object.__setattr__(cam, "_w2c", both[1])
        return cam

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

    def ray_elevation_deg(self) -> Tensor:
        """[H, W] elevation of each pixel's ray in degrees above the horizontal (world up is -y)."""
        d = self.rays_world()
        return torch.rad2deg(torch.asin((-d[..., 1]).clamp(-1, 1)))

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
        K, c2w = self.host()
        return {
            "width": self.width,
            "height": self.height,
            "fx": float(K[0, 0]),
            "fy": float(K[1, 1]),
            "cx": float(K[0, 2]),
            "cy": float(K[1, 2]),
            "c2w": c2w.tolist(),
        }

    @staticmethod
    def from_dict(d: dict) -> "Camera":
        K = torch.tensor([[d["fx"], 0.0, d["cx"]], [0.0, d["fy"], d["cy"]], [0.0, 0.0, 1.0]], dtype=torch.float32)
        return Camera(K=K, c2w=torch.tensor(d["c2w"], dtype=torch.float32), width=int(d["width"]), height=int(d["height"]))


def _rigid_inverse_host(T: np.ndarray) -> np.ndarray:
    """float64 [4, 4] read-only inverse of a rigid transform T [4, 4] (numpy: R^T, -R^T t)."""
    inv = np.eye(4)
    inv[:3, :3] = T[:3, :3].T
    inv[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    inv.flags.writeable = False
    return inv


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


def world_up(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """[3] the world up direction, -y (worldgen's convention)."""
    return torch.tensor([0.0, -1.0, 0.0], dtype=dtype, device=device)


def world_down(dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """[3] the world down direction, +y."""
    return torch.tensor([0.0, 1.0, 0.0], dtype=dtype, device=device)


def look_rotation(forward: Tensor, up: Tensor | None = None) -> Tensor | None:
    """[3, 3] roll-free camera-to-world rotation (OpenCV axes) whose +z is `forward` [3]; None if forward ~ 0.

    The camera's x axis (right) is horizontal, `down x forward` with down = -up (`up` defaults to
    world up, -y); looking straight along `up` there is no horizontal right, and world +x is used.
    Columns are the camera's x (right), y (down), z (forward) axes in world coordinates.
    """
    n = forward.norm()
    if n < 1e-12:
        return None
    down = world_down(forward.dtype, forward.device) if up is None else -up
    z = forward / n
    x = torch.linalg.cross(down, z)  # right = down x forward
    if x.norm() < 1e-6:  # straight up or down: any horizontal right axis
        x = torch.tensor([1.0, 0.0, 0.0], dtype=z.dtype, device=z.device)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    return torch.stack([x, y, z], dim=1)


def look_at(position: Tensor, target: Tensor, up: Tensor | None = None) -> Tensor:
    """Camera-to-world [4, 4] at `position` [3] looking at `target` [3], OpenCV axes, no roll.

    `up` is the world up direction (default -y, worldgen's convention); the camera's +y (down) axis
    is made as close as possible to -up (see `look_rotation`). `target` must differ from `position`.
    """
    R = look_rotation(target - position, up)
    if R is None:
        raise ValueError("look_at: target must differ from position")
    c2w = torch.eye(4, dtype=position.dtype, device=position.device)
    c2w[:3, :3], c2w[:3, 3] = R, position
    return c2w


def pose_matrix(R: Tensor, position: Tensor) -> Tensor:
    """[4, 4] camera-to-world of a rotation [3, 3] and a position [3] (dtype and device of R)."""
    T = torch.eye(4, dtype=R.dtype, device=R.device)
    T[:3, :3] = R
    T[:3, 3] = position
    return T


def horizontal_basis(R: Tensor) -> tuple[Tensor, Tensor]:
    """Horizontal forward and right unit vectors [3] of a camera-to-world rotation R [3, 3].

    Forward is the camera's +z projected onto the ground plane (perpendicular to world up); right is
    down x forward, so (right, down, forward) is a right-handed OpenCV frame. A camera looking straight
    up or down falls back to its -y (up in the image) as forward.
    """
    up = world_up(R.dtype, R.device)
    f = R[:, 2] - (R[:, 2] @ up) * up
    if f.norm() < 1e-6:
        f = -R[:, 1] - (-R[:, 1] @ up) * up
    f = f / f.norm()
    r = torch.linalg.cross(world_down(R.dtype, R.device), f)
    return f, r / r.norm()


def yaw_about_down(angle: float, dtype: torch.dtype = torch.float64) -> Tensor:
    """[3, 3] rotation by `angle` radians about world down (+y): positive turns +z towards +x (a right turn)."""
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=dtype)


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


def _normal_form(q: Tensor) -> Tensor:
    """[16, 4]: the outer product q q^T [..., 4, 4] of a wxyz quaternion, flattened and multiplied by this, gives
    the rotation's third column (the local z axis) times |q|^2 and, last, |q|^2 itself."""
    f = torch.zeros(4, 4, 4, dtype=q.dtype, device=q.device)  # [i, j, out]: the coefficient of q_i q_j
    w, x, y, z = range(4)
    for i, j in ((x, z), (z, x), (w, y), (y, w)):
        f[i, j, 0] = 1  # 2 (xz + wy)
    for i, j, c in ((y, z, 1), (z, y, 1), (w, x, -1), (x, w, -1)):
        f[i, j, 1] = c  # 2 (yz - wx)
    for i, c in ((w, 1), (x, -1), (y, -1), (z, 1)):
        f[i, i, 2] = c  # w^2 - x^2 - y^2 + z^2
        f[i, i, 3] = 1  # |q|^2
    return f.reshape(16, 4)


_NORMAL_FORMS: dict[tuple, Tensor] = {}


def quat_z_axes(q: Tensor) -> tuple[Tensor, Tensor]:
    """(the local z axis [N, 3] of quaternions q [N, 4] (wxyz, not necessarily unit) times |q|^2, and |q|^2 [N]):
    `quat_to_rotmat(q)[:, :, 2] * |q|^2`, in four operations instead of some forty (a frame's footprint
    test reads the axes of every Gaussian in view: on the GPU its cost is the operations' dispatch). For
    quaternions of ordinary size (float32: |q| well within 1e-10..1e10); a zero quaternion has no axis (zeros)."""
    key = (q.dtype, q.device)
    form = _NORMAL_FORMS.get(key)
    if form is None:
        with torch.inference_mode(False):  # a normal tensor, usable in autograd later, whatever mode made it
            form = _NORMAL_FORMS[key] = _normal_form(q)
    out = (q[:, :, None] * q[:, None, :]).reshape(-1, 16) @ form  # [N, 4]
    return out[:, :3], out[:, 3]


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



def quat_multiply(p: Tensor, q: Tensor) -> Tensor:
    """Hamilton product p q of quaternions [..., 4] (wxyz)."""
    pw, px, py, pz = p.unbind(-1)
    qw, qx, qy, qz = q.unbind(-1)
    return torch.stack(
        [
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ],
        -1,
    )


def quat_conjugate(q: Tensor) -> Tensor:
    """Conjugate (the inverse, for unit quaternions) of quaternions [..., 4] (wxyz)."""
    return q * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=q.dtype, device=q.device)


def quat_log(q: Tensor) -> Tensor:
    """Rotation vector [3] (axis * angle / 2, i.e. the quaternion log) of a unit quaternion [4] (wxyz)."""
    if q[0] < 0:
        q = -q
    v = q[1:]
    n = v.norm()
    if n < 1e-12:
        return v.clone()
    return v / n * torch.atan2(n, q[0])


def quat_exp(v: Tensor) -> Tensor:
    """Unit quaternion [4] (wxyz) of a pure quaternion [3] (the inverse of `quat_log`)."""
    n = v.norm()
    if n < 1e-12:
        return torch.cat([torch.ones(1, dtype=v.dtype, device=v.device), v])
    return torch.cat([torch.cos(n).reshape(1), torch.sin(n) * v / n])


def quat_slerp(p: Tensor, q: Tensor, u: float) -> Tensor:
    """Shortest-arc spherical interpolation of unit quaternions [4] (wxyz); u in [0, 1]."""
    if (p * q).sum() < 0:
        q = -q
    return quat_multiply(p, quat_exp(u * quat_log(quat_multiply(quat_conjugate(p), q))))


def _host_pair(K: np.ndarray, c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Read-only float64 copies of (K, c2w), for `Camera.host`."""
    K, c2w = np.array(K, np.float64), np.array(c2w, np.float64)
    K.flags.writeable = c2w.flags.writeable = False
    return K, c2w
