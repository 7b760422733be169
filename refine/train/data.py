"""Training data made inside the run: procedural flights rendered on the training device, held in a
ring cache there, and cut into clips.

The cache holds `flights` flights of `frames` frames (rgb uint8, z-depth float32 with +inf sky,
poses, intrinsics). Flight number i (a running count per process) is a pure function of (seed_start,
rank, world_size, i), so the cache at any training step is known from the number of flights made so
far (the data cursor): a resumed run rebuilds exactly the cache it had. Every `refresh_every` steps
the oldest `refresh_flights` flights are replaced by new ones.

Worlds come from the train split only (refine/synth/splits.py); a seed outside it is refused. A share
`walks` of the flights (which ones: a hash of the flight number) are walks on the forest floor of the
same world with standing trees (refine/synth/trees.py) instead of drone flights (a share `winter` of those on a
snowy floor), and a share `gorges` flights low along the floor of the world's gorge twin
(refine/synth/gorge.py; a share `gorge_walls` of those facing a wall, a share `gorge_across` of these from across the
floor). A share `colour.share` of the clips get one
random colour change for all their frames (`colour_remap`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from refine.synth import FLIGHT_MAKERS, TWIN_OF, RenderSettings, kind_world, make_world, render_views, winter_world
from refine.synth.splits import split_of
from refine.train.config import ColourJitterConfig, DataConfig

_MIRROR = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))


@dataclass
class ClipBatch:
    """B clips of L = steps + 1 frames (on the cache's device).

    Attributes:
        rgb: [B, L, H, W, 3] float32 in [0, 1].
        depth: [B, L, H, W] float32 z-depth, +inf = sky.
        c2w: [B, L, 4, 4] camera-to-world (OpenCV axes).
        K: [B, 3, 3] pixel intrinsics.
        info: per clip: flight number, start, stride, flipped, colour change (`colour_remap`'s parameters or None).
    """

    rgb: Tensor
    depth: Tensor
    c2w: Tensor
    K: Tensor
    info: list[dict]


def colour_matrix(hue_deg: float, saturation: float, gains: tuple[float, float, float]) -> Tensor:
    """[3, 3] M with rgb' = M @ rgb: a rotation of the hue by `hue_deg` about the grey axis (1, 1, 1) (greys stay
    grey), then saturation (grey + s (rgb - grey), grey = the channel mean), then per-channel `gains`."""
    u = torch.full((3,), 3 ** -0.5, dtype=torch.float64)
    t = math.radians(hue_deg)
    cross = torch.tensor([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]], dtype=torch.float64)
    rot = math.cos(t) * torch.eye(3, dtype=torch.float64) + math.sin(t) * cross + (1 - math.cos(t)) * torch.outer(u, u)
    sat = saturation * torch.eye(3, dtype=torch.float64) + (1 - saturation) / 3 * torch.ones(3, 3, dtype=torch.float64)
    return (torch.diag(torch.tensor(gains, dtype=torch.float64)) @ sat @ rot).float()


def colour_remap(rgb: Tensor, cfg: ColourJitterConfig, gen: torch.Generator) -> tuple[Tensor, dict | None]:
    """One clip's random colour change (`ColourJitterConfig`), drawn from the CPU generator `gen`.

    Args:
        rgb: [..., 3] float in [0, 1] (all frames of one clip: they get the same change).
    Returns:
        (rgb' [..., 3] in [0, 1], the parameters drawn), or (rgb itself, None) for a clip left as it is. With
        cfg.share 0 nothing is drawn from `gen`.
    """
    if cfg.share <= 0 or float(torch.rand((), generator=gen)) >= cfg.share:
        return rgb, None
    r = torch.rand(6, generator=gen, dtype=torch.float64).tolist()
    logu = lambda lo, hi, x: math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * x)  # noqa: E731
    wb = 1 + cfg.white_balance
    params = {"hue_deg": (2 * r[0] - 1) * cfg.hue_deg, "saturation": logu(*cfg.saturation, r[1]),
              "gains": tuple(logu(1 / wb, wb, x) for x in r[2:5]), "gamma": logu(*cfg.gamma, r[5])}
    M = colour_matrix(params["hue_deg"], params["saturation"], params["gains"]).to(rgb.device)
    return (rgb @ M.T).clamp(0, 1) ** params["gamma"], params


def settings_for(quality: str, compile: bool = False) -> RenderSettings:
    """RenderSettings of a quality name: a refine/synth QUALITY level ("full", "training", "geometry");
    "fast" (no shadows or reflections) is "geometry". compile: the renderer's torch.compile'd loops (CUDA only)."""
    return RenderSettings.preset("geometry" if quality == "fast" else quality, compile=compile)


class FlightCache:
    """Ring cache of rendered procedural flights on `device` (see the module docstring).

    Args:
        cfg: DataConfig.
        device: where flights are rendered and kept.
        rank, world_size: this process's share of the world seeds (rank r takes worlds r, r + n, ...).
    """

    def __init__(self, cfg: DataConfig, device: torch.device, rank: int = 0, world_size: int = 1):
        self.cfg, self.device, self.rank, self.world_size = cfg, device, rank, world_size
        N, L, H, W = cfg.flights, cfg.frames, cfg.height, cfg.width
        self.rgb = torch.zeros(N, L, H, W, 3, dtype=torch.uint8, device=device)
        self.depth = torch.zeros(N, L, H, W, dtype=torch.float32, device=device)
        self.c2w = torch.zeros(N, L, 4, 4, dtype=torch.float32, device=device)
        self.K = torch.zeros(N, 3, 3, dtype=torch.float32, device=device)
        self.speed = torch.zeros(N, dtype=torch.float64)  # metres per frame of each flight (CPU)
        self.q25 = torch.zeros(N, L, dtype=torch.float64)  # lower-quartile depth of each frame (CPU)
        self.cursor = 0  # flights made so far (the next flight's number)
        self.frames_rendered = 0
        self.render_seconds = 0.0
        self.world_seconds = 0.0
        self._seed: int | None = None  # the world made last, and its twins by kind (made when a flight needs one)
        self._twins: dict[str, object] = {}

    # ------------------------------------------------------------------ making flights
    def world_seed(self, flight: int) -> int:
        w = flight // self.cfg.flights_per_world
        seed = self.cfg.seed_start + w * self.world_size + self.rank
        if split_of(seed) != "train":
            raise ValueError(f"training world seed {seed} is outside the train split (refine/synth/splits.py)")
        return seed

    def _kind_hash(self, flight: int) -> int:
        """0..9999: which kind flight number `flight` is (walks take the lowest `walks` share, gorges the next)."""
        h = (flight * 2654435761 + self.rank * 40503 + self.cfg.seed_start * 97) & 0xFFFFFFFF
        h = ((h >> 16) ^ h) * 0x45D9F3B & 0xFFFFFFFF
        return ((h >> 16) ^ h) % 10000

    def is_walk(self, flight: int) -> bool:
        """Flight number `flight` is a forest-floor walk (a share DataConfig.walks of them, by a hash)."""
        if self.cfg.walks <= 0:
            return False
        return self._kind_hash(flight) < self.cfg.walks * 10000

    def is_gorge(self, flight: int) -> bool:
        """Flight number `flight` flies along a gorge's floor (a share DataConfig.gorges of them, by the same hash
        as `is_walk`, never a walk: with gorges 0 the walks and drone flights are those of a run without gorges)."""
        if self.cfg.gorges <= 0:
            return False
        return self.cfg.walks * 10000 <= self._kind_hash(flight) < (self.cfg.walks + self.cfg.gorges) * 10000

    def is_winter(self, flight: int) -> bool:
        """Walk number `flight` (when `is_walk`) is on a snowy floor (a share DataConfig.winter of the walks, by a
        second hash, so the walks themselves are those of a run without winter)."""
        if self.cfg.winter <= 0:
            return False
        return self._kind_hash(flight + 1_000_003) < self.cfg.winter * 10000

    def is_gorge_wall(self, flight: int) -> bool:
        """Gorge flight number `flight` (when `is_gorge`) faces a wall (a share DataConfig.gorge_walls of the gorges,
        by a third hash, so the gorges themselves are those of a run without it)."""
        if self.cfg.gorge_walls <= 0:
            return False
        return self._kind_hash(flight + 2_000_029) < self.cfg.gorge_walls * 10000

    def is_gorge_across(self, flight: int) -> bool:
        """Wall-facing gorge flight number `flight` (when `is_gorge_wall`) faces its wall from across the floor (a
        share DataConfig.gorge_across of them, by a fourth hash, so the wall-facing flights are those of a run
        without it)."""
        if self.cfg.gorge_across <= 0:
            return False
        return self._kind_hash(flight + 3_000_017) < self.cfg.gorge_across * 10000

    def kind(self, flight: int) -> str:
        """The kind (refine.synth.FLIGHT_KINDS) of flight number `flight`."""
        if self.is_walk(flight):
            return "winter" if self.is_winter(flight) else "walk"
        if self.is_gorge(flight):
            if self.is_gorge_wall(flight):
                return "gorge_across" if self.is_gorge_across(flight) else "gorge_wall"
            return "gorge"
        return "drone"

    def _world_for(self, seed: int, kind: str):
        """World `seed`'s twin for a flight of `kind`, the world and its twins made once per seed (a winter walk's
        is the walks' twin with a snowy floor: no grid is copied)."""
        if self._seed != seed:
            t0 = time.perf_counter()
            self._seed, self._twins = seed, {"drone": make_world(seed, grid=self.cfg.world_grid, device=self.device)}
            self._sync()
            self.world_seconds += time.perf_counter() - t0
        base = TWIN_OF[kind]
        if base not in self._twins:
            t0 = time.perf_counter()
            self._twins[base] = kind_world(self._twins["drone"], base)
            self._sync()
            self.world_seconds += time.perf_counter() - t0
        return winter_world(self._twins[base]) if kind == "winter" else self._twins[base]

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def make(self, flight: int) -> None:
        """Render flight number `flight` into its slot (flight % flights)."""
        cfg = self.cfg
        seed = self.world_seed(flight)
        kind = self.kind(flight)
        world = self._world_for(seed, kind)
        k = flight % cfg.flights_per_world
        fl = FLIGHT_MAKERS[kind](world, cfg.frames, cfg.width, cfg.height, seed=seed + 100_000_000 * k)
        slot = flight % cfg.flights
        t0 = time.perf_counter()
        settings = settings_for(cfg.quality, cfg.compile)
        for a in range(0, cfg.frames, cfg.render_batch):
            b = min(cfg.frames, a + cfg.render_batch)
            r = render_views(world, fl.c2w[a:b], fl.K, cfg.width, cfg.height, settings)
            self.rgb[slot, a:b] = (r.rgb * 255 + 0.5).clamp(0, 255).to(torch.uint8)
            self.depth[slot, a:b] = r.depth
        self._sync()
        self.render_seconds += time.perf_counter() - t0
        self.frames_rendered += cfg.frames
        self.c2w[slot] = fl.c2w.to(self.device)
        self.K[slot] = fl.K.to(self.device)
        self.speed[slot] = float(fl.params["speed_m_per_frame"])
        d = self.depth[slot].reshape(cfg.frames, -1)
        q = []
        for f in range(cfg.frames):
            finite = d[f][torch.isfinite(d[f])]
            q.append(float(torch.quantile(finite[:: max(1, finite.numel() // 4096)], 0.25)) if finite.numel() else 0.0)
        self.q25[slot] = torch.tensor(q, dtype=torch.float64)

    def fill(self, cursor: int | None = None) -> None:
        """Make the cache hold flights [cursor - flights, cursor) (default: the first `flights`)."""
        n = self.cfg.flights
        cursor = n if cursor is None else max(cursor, n)
        for f in range(cursor - n, cursor):
            self.make(f)
        self.cursor = cursor

    def refresh(self) -> int:
        """Replace the oldest `refresh_flights` flights with new ones; returns how many were made."""
        for _ in range(self.cfg.refresh_flights):
            self.make(self.cursor)
            self.cursor += 1
        return self.cfg.refresh_flights

    @property
    def data_frames_per_second(self) -> float:
        """Procedural frames rendered per second of rendering and world making."""
        return self.frames_rendered / max(self.render_seconds + self.world_seconds, 1e-9)

    # ------------------------------------------------------------------ clips
    def sample(self, batch: int, length: int, gen: torch.Generator) -> ClipBatch:
        """`batch` clips of `length` frames: random flight, stride (from DataConfig.speed) and start.

        `gen` is a CPU torch.Generator (the caller seeds it per step)."""
        cfg = self.cfg
        rgb, depth, c2w, K, info = [], [], [], [], []
        for _ in range(batch):
            slot = int(torch.randint(cfg.flights, (1,), generator=gen))
            lo, hi = math.log(cfg.speed[0]), math.log(cfg.speed[1])
            frac = math.exp(lo + (hi - lo) * float(torch.rand((), generator=gen)))
            longest = max(1, min(cfg.max_stride, (cfg.frames - 1) // max(length - 1, 1)))
            q = float(self.q25[slot, 0]) or 1.0
            stride = int(min(longest, max(1, round(frac * q / max(float(self.speed[slot]), 1e-6)))))
            span = (length - 1) * stride
            start = int(torch.randint(cfg.frames - span, (1,), generator=gen))
            idx = torch.arange(start, start + span + 1, stride, device=self.device)
            flip = cfg.flip and bool(torch.rand((), generator=gen) < 0.5)
            r = self.rgb[slot, idx].float() / 255
            d = self.depth[slot, idx]
            p = self.c2w[slot, idx]
            k = self.K[slot].clone()
            if flip:  # mirror world x and image columns together: c2w' = M c2w M, cx' = W - cx
                M = _MIRROR.to(self.device)
                r, d = r.flip(-2), d.flip(-1)
                p = M @ p @ M
                k[0, 2] = cfg.width - k[0, 2]
            r, colour = colour_remap(r, cfg.colour, gen)
            rgb.append(r)
            depth.append(d)
            c2w.append(p)
            K.append(k)
            info.append({"flight": int(self.cursor - cfg.flights + (slot - self.cursor) % cfg.flights),
                         "start": start, "stride": stride, "flip": flip, "colour": colour})
        return ClipBatch(torch.stack(rgb), torch.stack(depth), torch.stack(c2w), torch.stack(K), info)
