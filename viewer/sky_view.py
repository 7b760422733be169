"""The saved sky dome as the viewer's background, seen through each tab's camera.

viser's background image (`set_background_image`) is a flat picture behind the scene, so each tab
gets its own: whenever its camera moves, the dome is rendered for that camera's rotation and field of
view (the sky is at infinity: translation never changes it) and sent to that tab alone. Renders are
coalesced per tab: while one is being made, only the newest camera pose waits.

Texels the flight never saw are filled for display only: each elevation row takes the mean of its
observed texels, and rows with none take the nearest row that has some (the sky's colour varies
mostly with elevation).
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from worldgen.core.camera import Camera
from worldgen.pipeline.sky import SkyDome


def filled_for_display(dome: SkyDome) -> SkyDome:
    """A copy of `dome` with every texel known (see the module docstring); an unobserved dome is mid-grey."""
    out = SkyDome(texels_per_degree=dome.width / 360.0, device="cpu")
    out.width, out.height = dome.width, dome.height
    col = dome.color.detach().cpu().clone()  # [3, Hs, Ws]
    w = dome.weight.detach().cpu() > 0  # [Hs, Ws]
    rows = w.any(1)
    if not bool(rows.any()):
        col[:] = 0.5
    else:
        mean = (col * w).sum(2) / w.sum(1).clamp_min(1)  # [3, Hs] per-row mean of observed texels
        known = torch.nonzero(rows)[:, 0]
        nearest = known[(torch.arange(dome.height)[:, None] - known[None]).abs().argmin(1)]  # [Hs]
        fill = mean[:, nearest][:, :, None].expand_as(col)
        col = torch.where(w[None], col, fill)
    out._tex = torch.zeros(1, 4, out.height, out.width + 2)
    out._tex[0, :3, :, 1:-1] = col
    out._tex[0, 3] = 1.0
    out._tex[..., 0] = out._tex[..., out.width]
    out._tex[..., out.width + 1] = out._tex[..., 1]
    return out


def camera_for_view(wxyz: np.ndarray, fov: float, aspect: float, height: int) -> Camera:
    """A worldgen Camera with viser's rotation `wxyz` (camera-to-world, OpenCV axes), vertical field of
    view `fov` (radians), width / height `aspect`, and `height` pixel rows; square pixels, centred."""
    from worldgen.core.camera import quat_to_rotmat

    H = max(8, int(height))
    W = max(8, int(round(H * aspect)))
    fy = 0.5 * H / np.tan(0.5 * fov)
    K = torch.tensor([[fy, 0.0, W / 2], [0.0, fy, H / 2], [0.0, 0.0, 1.0]], dtype=torch.float32)
    c2w = torch.eye(4)
    c2w[:3, :3] = quat_to_rotmat(torch.as_tensor(np.asarray(wxyz, dtype=np.float32)))
    return Camera(K=K, c2w=c2w, width=W, height=H)


def sky_image(dome: SkyDome, camera: Camera) -> np.ndarray:
    """uint8 [H, W, 3]: the (filled) dome seen by `camera`."""
    rgb, _ = dome.render(camera)
    return (rgb.clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)


class SkyBackground:
    """Keeps every tab's background showing `dome` (see the module docstring).

    Args:
        server: a running viser server.
        dome: the saved sky (unobserved texels are filled for display).
        rows: pixel rows of the background images (the browser stretches them to the canvas).
    """

    def __init__(self, server, dome: SkyDome, rows: int = 360):
        self.dome = filled_for_display(dome)
        self.rows = int(rows)
        self.sent = 0  # background images sent, all tabs
        self._lock = threading.Lock()
        self._busy: set[int] = set()
        self._latest: dict[int, object] = {}
        server.on_client_connect(self._connect)

    def _connect(self, client) -> None:
        client.camera.on_update(lambda cam: self.request(client))
        self.request(client)

    def request(self, client) -> None:
        """Render this tab's background for its current camera (or, if one is being rendered, after it)."""
        cid = client.client_id
        with self._lock:
            self._latest[cid] = client
            if cid in self._busy:
                return
            self._busy.add(cid)
        try:
            while True:
                with self._lock:
                    c = self._latest.pop(cid, None)
                    if c is None:
                        self._busy.discard(cid)
                        return
                cam = c.camera
                try:
                    view = camera_for_view(cam.wxyz, cam.fov, cam.aspect, min(self.rows, cam.image_height or self.rows))
                except (AssertionError, ZeroDivisionError):  # no camera state from this tab yet
                    continue
                c.scene.set_background_image(sky_image(self.dome, view), format="jpeg", jpeg_quality=85)
                self.sent += 1
        except BaseException:
            with self._lock:
                self._busy.discard(cid)
            raise
