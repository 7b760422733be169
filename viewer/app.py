"""Pieces both viewer modes share: the server, the initial view, and a growing splat display.

Scene tree (viser names are paths):
    /world/splats/chunk_NNNN   the world's Gaussians, in chunks (a growing world adds chunks)
    /path/frame_NNNNN          camera frustums along the path (thumbnails when known)

World convention (worldgen's): OpenCV camera axes, world up is -y; the viewer's scene up is set
to -y so orbiting feels right.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch

from viewer.splats import DISPLAY_BUDGET, FrustumPose, keep_fraction, splat_arrays, world_bounds
from worldgen.core.scene import GaussianScene


def check_listen_address(host: str, port: int) -> bool:
    """UserInputError (one line) unless this machine can listen on `host` at all (a name that
    resolves to one of its addresses, or a wildcard) and `port` is 0..65535; True if every address
    `host` stands for is a loopback one (only this machine can connect). Binds a free port to check,
    so it never waits on a network."""
    import ipaddress
    import socket

    from worldgen.core.io import UserInputError

    if isinstance(port, bool) or not 0 <= int(port) <= 65535:
        raise UserInputError(f"--port must be 0..65535, got {port}")
    try:
        infos = socket.getaddrinfo(host or None, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise UserInputError(f"--host {host!r} is not an address of this machine ({getattr(e, 'strerror', None) or e})") from None
    family, _, _, _, addr = infos[0]
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((addr[0], 0))
    except OSError as e:
        raise UserInputError(f"--host {host}: this machine cannot listen there ({e.strerror or e}); "
                             "use 127.0.0.1, 0.0.0.0 or one of its own addresses") from None

    def loopback(a: str) -> bool:
        try:
            return ipaddress.ip_address(a.split("%")[0]).is_loopback
        except ValueError:
            return False

    return all(loopback(info[4][0]) for info in infos)


def exposure_warning(host: str, port: int, can: str) -> str:
    """The one-line warning printed when a viewer listens beyond this machine."""
    return (f"worldgen: warning: listening on {host} (not a loopback address): anyone who can reach this machine "
            f"on port {port} can {can}")


def listening_urls(server) -> str:
    """The URL the server really listens on; for a wildcard host also the ones to open it with
    (this machine, and its name on the network)."""
    import socket

    host, port = server.get_host(), server.get_port()
    if host in ("0.0.0.0", "", "::"):
        shown = f"[{host}]" if ":" in host else (host or "0.0.0.0")
        return (f"http://{shown}:{port} (all interfaces: http://127.0.0.1:{port} here, "
                f"http://{socket.gethostname()}:{port} from the network)")
    return server_url(server)


def start_server(host: str = "127.0.0.1", port: int = 8080, label: str = "worldgen"):
    """Start a viser server (returns `viser.ViserServer`). viser moves to the next free port when
    `port` is taken, and `port=0` asks the OS for one: read the port actually bound with
    `server.get_port()` (or `server_url`). UserInputError (one line, before any server thread starts:
    viser would hang) for a port outside 0..65535 or a host this machine cannot listen on."""
    import viser

    check_listen_address(host, port)
    server = viser.ViserServer(host=host, port=port, label=label, verbose=False)
    server.scene.set_up_direction("-y")
    return server


def server_url(server) -> str:
    """http URL of a running viser server (IPv6 hosts bracketed)."""
    host = server.get_host()
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{server.get_port()}"


def set_initial_view(server, position: np.ndarray, look_at: np.ndarray, fov: float | None = None,
                     near: float | None = None, far: float | None = None) -> None:
    """Where new tabs (and "reset view") look from: `position` [3] towards `look_at` [3], world up -y;
    `fov` vertical in radians."""
    cam = server.initial_camera
    cam.position = tuple(float(x) for x in position)
    cam.look_at = tuple(float(x) for x in look_at)
    cam.up = (0.0, -1.0, 0.0)
    if fov is not None:
        cam.fov = float(fov)
    if near is not None:
        cam.near = float(near)
    if far is not None:
        cam.far = float(far)


def view_from_camera(pose: FrustumPose, distance: float, back: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(position [3], look_at [3]) for a view `back` units behind camera `pose` looking along its +z
    at a point `distance` units ahead."""
    from viewer.splats import c2w_from_wxyz_position

    T = c2w_from_wxyz_position(pose.wxyz, pose.position)
    z = T[:3, 2]
    pos = T[:3, 3] - back * z
    return pos, T[:3, 3] + distance * z


def view_of_bounds(lo: np.ndarray, hi: np.ndarray, fov: float) -> tuple[np.ndarray, np.ndarray]:
    """(position [3], look_at [3]) looking along world +z (worldgen's forward) at the box [lo, hi],
    from far enough that it fills a view of vertical field of view `fov` (radians)."""
    centre = (lo + hi) / 2
    half = np.maximum((hi - lo) / 2, 1e-6)
    # Distance so that the box's x/y half-extent fits the view, plus its own half-depth.
    dist = float(max(half[0], half[1]) / math.tan(fov / 2) + half[2])
    return centre - np.array([0.0, 0.0, dist]), centre


class SplatDisplay:
    """Shows a (growing) GaussianScene in viser, in chunks, within a display budget.

    `sync(scene)` sends the Gaussians added since the last sync as one new chunk (so a growing
    world costs only its growth). Above `budget` Gaussians the display is decimated (see
    `viewer.splats.decimation_mask`): the kept fraction steps down by factors of sqrt(2), so the shown
    count stays between budget / sqrt(2) and budget and a full resend happens only at a step.
    A world that shrank, or more than `max_chunks` chunks, also triggers one resend as a single chunk.
    The world itself is never modified.

    Thread-safe: `sync` may be called from a generation thread while GUI callbacks read the counts.
    """

    def __init__(self, server, budget: int = DISPLAY_BUDGET, max_chunks: int = 48, root: str = "/world/splats"):
        if budget <= 0:
            raise ValueError(f"display budget must be positive, got {budget}")
        self.server, self.budget, self.max_chunks, self.root = server, int(budget), int(max_chunks), root
        self._handles: list = []
        self._serial = 0
        self.sent_upto = 0  # Gaussians [0, sent_upto) of the world have been sent
        self.shown = 0  # how many of them are displayed (fewer when decimated)
        self.fraction = 1.0
        self._lock = threading.Lock()

    @property
    def decimated(self) -> bool:
        return self.fraction < 1.0

    def _fraction_for(self, total: int) -> float:
        f = keep_fraction(total, self.budget)
        if f >= 1.0:
            return 1.0
        k = math.ceil(-2.0 * math.log2(f) - 1e-9)  # smallest half-octave step at or below f
        return 2.0 ** (-k / 2.0)

    def _add_chunk(self, scene: GaussianScene, start: int, end: int, fraction: float):
        arr = splat_arrays(scene, start, end, fraction)
        self._serial += 1
        if len(arr) == 0:
            return None, 0
        h = self.server.scene.add_gaussian_splats(
            f"{self.root}/chunk_{self._serial:04d}", centers=arr.centers, covariances=arr.covariances,
            rgbs=arr.rgbs, opacities=arr.opacities)
        return h, len(arr)

    def sync(self, scene: GaussianScene, total: int | None = None) -> int:
        """Show what `scene` gained since the last call; returns how many Gaussians were sent now.
        `total`: the size the world will reach (a world streamed in growing prefixes), so that the
        decimation is chosen once for it instead of stepping down, with a resend, as the prefix grows."""
        with self._lock:
            n = len(scene)
            fraction = self._fraction_for(max(n, total or 0))
            resend = n < self.sent_upto or fraction != self.fraction or len(self._handles) >= self.max_chunks
            if resend:
                h, shown = self._add_chunk(scene, 0, n, fraction)  # add first, then drop old: no flash
                for old in self._handles:
                    old.remove()
                self._handles = [h] if h is not None else []
                self.sent_upto, self.shown, self.fraction = n, shown, fraction
                return shown
            if n == self.sent_upto:
                return 0
            h, shown = self._add_chunk(scene, self.sent_upto, n, fraction)
            if h is not None:
                self._handles.append(h)
            self.sent_upto, self.shown = n, self.shown + shown
            return shown

    def status_line(self) -> str:
        """One markdown line: how many Gaussians are shown, and whether the display is decimated."""
        with self._lock:
            if self.decimated:
                return (f"**Display decimated**: showing {self.shown:,} of {self.sent_upto:,} Gaussians "
                        f"(browser budget {self.budget:,}); the saved world keeps all of them.")
            return f"Showing all {self.shown:,} Gaussians."


def default_frustum_scale(scene: GaussianScene, origin: np.ndarray) -> float:
    """A frustum size that reads well in this world: 4% of the median distance from `origin` [3]
    to the Gaussians (1.0 for an empty world)."""
    m = scene.means.detach().float().cpu()
    if m.shape[0] == 0:
        return 1.0
    if m.shape[0] > 100_000:
        m = m[:: m.shape[0] // 100_000]
    d = (m - torch.as_tensor(origin, dtype=torch.float32)).norm(dim=1)
    d = d[torch.isfinite(d)]
    return float(0.04 * d.median()) if d.numel() and float(d.median()) > 0 else 1.0


def path_frustum_scale(positions: np.ndarray, scene: GaussianScene) -> float:
    """Frustum size for a camera path with camera centres `positions` [T, 3]: the median step between
    consecutive cameras (so neighbours barely overlap), or `default_frustum_scale` for a path that
    does not move."""
    if len(positions) >= 2:
        steps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
        steps = steps[np.isfinite(steps) & (steps > 0)]
        if steps.size:
            return float(np.median(steps))
    return default_frustum_scale(scene, positions[0] if len(positions) else np.zeros(3))


FRUSTUM_LINE_PX = 1.5
"""Frustum line thickness, screen pixels."""


__all__ = [
    "check_listen_address", "exposure_warning", "listening_urls", "start_server", "server_url",
    "set_initial_view", "view_from_camera", "view_of_bounds",
    "SplatDisplay", "default_frustum_scale", "path_frustum_scale", "world_bounds",
]
