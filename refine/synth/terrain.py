"""Seeded procedural worlds: fractal height fields, climates, materials, water, sky and haze.

A `World` is a handful of small periodic grids plus scalar parameters; `refine/synth/render.py`
ray-marches it. Everything random comes from the seed (Python `random.Random` for scalars, a CPU
`torch.Generator` for grids), so one seed gives the same world bit for bit, on any device the grids
are later moved to.

World conventions (worldgen's, see worldgen/core/camera.py): x and z span the ground plane, world up is
-y, so a point of height h (metres above the water level) has y = -h. Water, where a world has
any, is the plane h = 0. All grids are periodic (the world tiles seamlessly), texel (i, j) of a
grid with cell size c has its centre at (x, z) = (j * c, i * c).

The ground height at (x, z) is

    h = coarse.height + coarse.rough * fine.detail + coarse.forest * fine.canopy

that is a large-scale fractal terrain (metres), a small-scale rock/soil relief scaled by a
roughness map, and tree crowns scaled by a forest-density map.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

CLIMATES = ("alpine", "coast", "desert", "forest", "tundra")

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Atmosphere:
    """Sun, sky and haze of a world (linear RGB radiance, arbitrary but consistent units).

    Attributes:
        sun_dir: unit world vector towards the sun (world up is -y, so sun_dir[1] < 0 by day).
        sun_color: radiance of direct sunlight on a surface facing the sun.
        zenith: sky radiance straight up.
        horizon: sky radiance at the horizon (away from the sun).
        haze: height-fog extinction (1/m) at the water level (h = 0).
        haze_height: scale height (m) of the height fog.
        air: uniform thin-air extinction (1/m) at green; blue scatters more (aerial perspective).
        cloud_cover: fraction of the cloud layer covered, 0..1.
        cloud_alt: height (m) of the cloud layer.
        cloud_scale: metres per cloud-texture texel (bigger = bigger clouds).
        exposure: multiplier before tone mapping.
    """

    sun_dir: RGB
    sun_color: RGB
    zenith: RGB
    horizon: RGB
    haze: float
    haze_height: float
    air: float
    cloud_cover: float
    cloud_alt: float
    cloud_scale: float
    exposure: float


@dataclass(frozen=True)
class Palette:
    """Material albedos (linear RGB) and the altitudes (m above water) where materials change.

    `cliffs`: ground higher than this is bare rock whatever its slope (a gorge's walls and ledges,
    refine/synth/gorge.py); 1e9 (off) in every other world.
    `floor_snow`: share (0-1) of a standing world's forest floor under snow (trees.py `winter_world`: dark
    trunks on bright snow); 0 (none) in every other world.
    """

    grass: RGB
    grass_dry: RGB
    forest: RGB
    forest_alt: RGB
    rock: RGB
    rock_alt: RGB
    sand: RGB
    snow: RGB
    dirt: RGB
    water_deep: RGB
    water_absorb: RGB
    snow_line: float
    tree_line: float
    beach: float
    strata: float
    snow_patches: float
    dunes: float
    cliffs: float = 1e9
    floor_snow: float = 0.0


@dataclass
class World:
    """One seeded landscape (all tensors float32 on one device, all grids periodic).

    Attributes:
        seed: the seed it was made from.
        climate: one of CLIMATES.
        coarse: [N, N, 3] per texel: ground height (m), forest density (0..1), rock roughness (m).
        cell: metres per coarse texel.
        fine: [M, M, 2] per texel: detail relief (unitless, about -1..1), tree-crown height (m).
        fine_cell: metres per fine texel.
        tex: [P, P] periodic fractal noise (about -1..1) for material, wave and cloud patterns.
        water: True if the plane h = 0 is water.
        h_max: upper bound of the ground height (m), crowns and relief included.
        h_min: lower bound of the ground height (m).
        conifer: crowns are cones (True) or domes (False).
        atmosphere: sun, sky, haze.
        palette: materials.
        standing: the trees stand as 3D trunks and crowns (refine/synth/trees.py, `standing_world`)
            instead of crown bumps of the height field (fine[..., 1] is then 0).
        gorge: the height field is one winding canyon (refine/synth/gorge.py, `gorge_world`), flown
            along its floor by `refine.synth.flights.make_gorge_flight`.
    """

    seed: int
    climate: str
    coarse: Tensor
    cell: float
    fine: Tensor
    fine_cell: float
    tex: Tensor
    water: bool
    h_max: float
    h_min: float
    conifer: bool
    atmosphere: Atmosphere
    palette: Palette
    standing: bool = False
    gorge: bool = False

    @property
    def device(self) -> torch.device:
        return self.coarse.device

    def to(self, device: torch.device | str) -> World:
        return replace(self, coarse=self.coarse.to(device), fine=self.fine.to(device), tex=self.tex.to(device))

    def describe(self) -> dict:
        """JSON-ready summary (seed, climate, sun, haze, ...) for sequence metadata."""
        a = self.atmosphere
        sun_el = math.degrees(math.asin(max(-1.0, min(1.0, -a.sun_dir[1]))))
        return {
            "seed": self.seed,
            "climate": self.climate,
            "water": self.water,
            "sun_elevation_deg": round(sun_el, 2),
            "haze_per_m": a.haze,
            "air_per_m": a.air,
            "cloud_cover": round(a.cloud_cover, 3),
            "terrain_cell_m": self.cell,
            "height_range_m": [round(self.h_min, 1), round(self.h_max, 1)],
            **({"standing_trees": True} if self.standing else {}),
            **({"gorge": True} if self.gorge else {}),
        }


# ---------------------------------------------------------------------------------------------
# periodic noise on grids


def _rand_grid(p: int, gen: torch.Generator) -> Tensor:
    """[p, p] uniform values in [-1, 1]."""
    return torch.rand(p, p, generator=gen, dtype=torch.float32) * 2 - 1


def _upsample_periodic(g: Tensor, n: int) -> Tensor:
    """Bicubic upsampling of a periodic grid [p, p] to [n, n] (n a multiple of p), still periodic."""
    p = g.shape[0]
    if p == n:
        return g.clone()
    s = n // p
    pad = 2
    reps = 1 + 2 * math.ceil(pad / p)  # tile (not pad) so tiny grids wrap too
    big = g.tile(reps, reps)
    o = (reps // 2) * p - pad
    x = big[o : o + p + 2 * pad, o : o + p + 2 * pad][None, None]
    x = F.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False)
    c = pad * s
    return x[0, 0, c : c + n, c : c + n]


def _grad_sq(h: Tensor, cell: float) -> Tensor:
    """Squared slope |grad h|^2 [N, N] of a periodic height grid [N, N].

    Per axis the larger of the forward and backward differences, so sharp crests and pits count
    as steep (a central difference would call them flat).
    """
    fx = (torch.roll(h, -1, 1) - h) / cell
    bx = (h - torch.roll(h, 1, 1)) / cell
    fz = (torch.roll(h, -1, 0) - h) / cell
    bz = (h - torch.roll(h, 1, 0)) / cell
    return torch.maximum(fx * fx, bx * bx) + torch.maximum(fz * fz, bz * bz)


def _blur3(x: Tensor) -> Tensor:
    """3x3 box blur of a periodic grid [N, N]."""
    y = (torch.roll(x, 1, 0) + x + torch.roll(x, -1, 0)) / 3
    return (torch.roll(y, 1, 1) + y + torch.roll(y, -1, 1)) / 3


def fbm(
    n: int,
    gen: torch.Generator,
    p_lo: int,
    p_hi: int,
    *,
    gain: float = 0.5,
    ridged: bool = False,
    erosion: float = 0.0,
    amp_m: float = 1.0,
    cell: float = 1.0,
) -> Tensor:
    """Periodic fractal noise [n, n], octaves of p_lo..p_hi random values per side (powers of two).

    `ridged` sums (1 - |noise|)^2 octaves weighted by the octave above (sharp crests, the ridged
    multifractal). `erosion` > 0 damps each octave by 1 / (1 + erosion * slope^2) of the sum so far,
    with slopes measured in m/m for a result of amplitude `amp_m` on cells of `cell` metres: steep
    flanks stay smooth and valleys fill, the cheap look of eroded terrain. Output roughly in [-1, 1]
    (ridged: [0, 1]) times `amp_m`.
    """
    total = torch.zeros(n, n)
    weight = torch.ones(n, n)
    amp, norm, p = 1.0, 0.0, p_lo
    while p <= min(p_hi, n):
        o = _upsample_periodic(_rand_grid(p, gen), n)
        if ridged:
            o = (1.0 - o.abs()).clamp_min(0) ** 2
            o = o * weight
            weight = (o * 2.0).clamp(0, 1)
        if erosion > 0 and p > p_lo:
            o = o * _blur3(1.0 / (1.0 + erosion * _grad_sq(total * amp_m / max(norm, 1e-6), cell)))
        total = total + amp * o
        norm += amp
        amp *= gain
        p *= 2
    return total / norm * amp_m


def _warp_periodic(h: Tensor, wx: Tensor, wz: Tensor) -> Tensor:
    """Sample periodic [N, N] grid `h` at (j + wx, i + wz) texels (bilinear), result [N, N]."""
    n = h.shape[0]
    pad = math.ceil(max(float(wx.abs().max()), float(wz.abs().max()))) + 2
    hp = F.pad(h[None, None], (pad, pad, pad, pad), mode="circular")
    ii, jj = torch.meshgrid(torch.arange(n, dtype=torch.float32), torch.arange(n, dtype=torch.float32), indexing="ij")
    size = n + 2 * pad
    gx = (jj + pad + wx) / (size - 1) * 2 - 1
    gz = (ii + pad + wz) / (size - 1) * 2 - 1
    grid = torch.stack([gx, gz], -1)[None]
    return F.grid_sample(hp, grid, mode="bilinear", align_corners=True)[0, 0]


def _smoothstep(a: float, b: float, x: Tensor) -> Tensor:
    t = ((x - a) / (b - a)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def _quantile(x: Tensor, q: float) -> float:
    v = x.flatten()[::7].sort().values
    return float(v[min(len(v) - 1, max(0, int(q * (len(v) - 1))))])


# ---------------------------------------------------------------------------------------------
# climates


def _sun_and_sky(rng: random.Random, climate: str) -> Atmosphere:
    r = rng.random()
    if r < 0.3:
        el = rng.uniform(4.0, 13.0)  # golden hour
    elif r < 0.72:
        el = rng.uniform(13.0, 35.0)
    else:
        el = rng.uniform(35.0, 62.0)
    az = rng.uniform(0, 2 * math.pi)
    e, a = math.radians(el), az
    sun_dir = (math.cos(e) * math.sin(a), -math.sin(e), math.cos(e) * math.cos(a))
    # air mass (Kasten-Young) and a chromatic optical depth: low sun turns orange
    m = 1.0 / (math.sin(e) + 0.50572 * (el + 6.07995) ** -1.6364)
    beta = (0.035, 0.085, 0.19)
    bright = 2.8
    sun_color = tuple(bright * math.exp(-b * m) for b in beta)
    day = 0.35 + 0.65 * min(1.0, max(0.0, (math.sin(e) + 0.02) / 0.45))
    low = max(0.0, 1.0 - el / 18.0) ** 1.5
    zenith = (0.075 * day, 0.20 * day, 0.52 * day)
    horizon = [0.50 * day, 0.62 * day, 0.78 * day]
    warm = (0.95 * day, 0.62 * day, 0.42 * day)
    horizon = tuple(h * (1 - 0.55 * low) + w * 0.55 * low for h, w in zip(horizon, warm))
    if climate == "desert":
        horizon = (horizon[0] * 1.08, horizon[1] * 1.0, horizon[2] * 0.88)
    if climate == "tundra":
        horizon = (horizon[0] * 1.0, horizon[1] * 1.02, horizon[2] * 1.05)
    vis_km = {"alpine": (60, 220), "coast": (25, 120), "desert": (40, 150), "forest": (25, 110), "tundra": (40, 160)}[climate]
    vis = math.exp(rng.uniform(math.log(vis_km[0]), math.log(vis_km[1]))) * 1000
    fog_km = rng.choice([0.0, 0.0, 0.0, 0.0, rng.uniform(6.0, 15.0), rng.uniform(10.0, 40.0)])
    haze = 3.0 / (fog_km * 1000) if fog_km > 0 else 0.0
    cloud_cover = rng.choice([0.0, rng.uniform(0.05, 0.35), rng.uniform(0.2, 0.55), rng.uniform(0.35, 0.75)])
    return Atmosphere(
        sun_dir=sun_dir,
        sun_color=sun_color,
        zenith=zenith,
        horizon=horizon,
        haze=haze,
        haze_height=rng.uniform(60.0, 400.0),
        air=3.0 / vis,
        cloud_cover=cloud_cover,
        cloud_alt=0.0,  # set once the terrain height is known
        cloud_scale=rng.uniform(10.0, 28.0),
        exposure=0.8,
    )


def _jitter(rng: random.Random, c: RGB, s: float = 0.12) -> RGB:
    k = rng.uniform(1 - s, 1 + s)
    return tuple(max(0.0, v * k * rng.uniform(1 - s / 2, 1 + s / 2)) for v in c)


def _palette(rng: random.Random, climate: str, h_top: float) -> Palette:
    j = lambda c, s=0.12: _jitter(rng, c, s)
    if climate == "alpine":
        return Palette(
            grass=j((0.085, 0.13, 0.035)), grass_dry=j((0.19, 0.17, 0.075)), forest=j((0.022, 0.05, 0.025)),
            forest_alt=j((0.035, 0.06, 0.03)), rock=j((0.20, 0.19, 0.18)), rock_alt=j((0.13, 0.12, 0.115)),
            sand=j((0.30, 0.27, 0.22)), snow=(0.70, 0.73, 0.78), dirt=j((0.14, 0.11, 0.08)),
            water_deep=(0.004, 0.018, 0.025), water_absorb=(0.45, 0.11, 0.08),
            snow_line=h_top * rng.uniform(0.45, 0.75), tree_line=h_top * rng.uniform(0.25, 0.42), beach=2.0,
            strata=0.15, snow_patches=0.0, dunes=0.0,
        )
    if climate == "coast":
        lush = rng.random() < 0.6
        return Palette(
            grass=j((0.09, 0.15, 0.04) if lush else (0.20, 0.18, 0.08)), grass_dry=j((0.23, 0.20, 0.09)),
            forest=j((0.028, 0.065, 0.025)), forest_alt=j((0.04, 0.065, 0.025)), rock=j((0.24, 0.22, 0.19)),
            rock_alt=j((0.30, 0.26, 0.20)), sand=j((0.62, 0.53, 0.38), 0.08), snow=(0.70, 0.73, 0.78),
            dirt=j((0.2, 0.15, 0.1)), water_deep=(0.003, 0.02, 0.035), water_absorb=(0.38, 0.07, 0.05),
            snow_line=1e9, tree_line=h_top * rng.uniform(0.6, 1.2), beach=rng.uniform(2.0, 6.0),
            strata=0.2, snow_patches=0.0, dunes=0.0,
        )
    if climate == "desert":
        red = rng.random() < 0.6
        return Palette(
            grass=j((0.22, 0.17, 0.09)), grass_dry=j((0.33, 0.25, 0.15)), forest=j((0.08, 0.09, 0.04)),
            forest_alt=j((0.10, 0.10, 0.05)), rock=j((0.40, 0.19, 0.10) if red else (0.36, 0.28, 0.19)),
            rock_alt=j((0.28, 0.13, 0.07) if red else (0.45, 0.37, 0.26)), sand=j((0.42, 0.27, 0.14), 0.08),
            snow=(0.70, 0.73, 0.78), dirt=j((0.30, 0.19, 0.11)), water_deep=(0.006, 0.025, 0.03),
            water_absorb=(0.35, 0.08, 0.06), snow_line=1e9, tree_line=h_top * 0.3, beach=1.5,
            strata=rng.uniform(0.5, 1.0), snow_patches=0.0, dunes=rng.uniform(0.3, 1.0),
        )
    if climate == "forest":
        autumn = rng.random() < 0.25
        return Palette(
            grass=j((0.08, 0.14, 0.035)), grass_dry=j((0.15, 0.16, 0.05)),
            forest=j((0.03, 0.07, 0.022)), forest_alt=j((0.16, 0.07, 0.02) if autumn else (0.05, 0.09, 0.03)),
            rock=j((0.18, 0.17, 0.15)), rock_alt=j((0.12, 0.11, 0.10)), sand=j((0.30, 0.26, 0.18)),
            snow=(0.70, 0.73, 0.78), dirt=j((0.12, 0.09, 0.06)), water_deep=(0.004, 0.015, 0.015),
            water_absorb=(0.5, 0.16, 0.12), snow_line=1e9, tree_line=h_top * rng.uniform(0.8, 1.3), beach=1.0,
            strata=0.1, snow_patches=0.0, dunes=0.0,
        )
    return Palette(  # tundra
        grass=j((0.10, 0.11, 0.05)), grass_dry=j((0.20, 0.15, 0.08)), forest=j((0.03, 0.05, 0.03)),
        forest_alt=j((0.05, 0.06, 0.035)), rock=j((0.17, 0.17, 0.16)), rock_alt=j((0.11, 0.105, 0.10)),
        sand=j((0.30, 0.28, 0.23)), snow=(0.68, 0.72, 0.78), dirt=j((0.15, 0.12, 0.09)),
        water_deep=(0.004, 0.016, 0.026), water_absorb=(0.42, 0.1, 0.07),
        snow_line=h_top * rng.uniform(0.6, 1.0), tree_line=h_top * rng.uniform(0.1, 0.3), beach=1.5,
        strata=0.1, snow_patches=rng.uniform(0.02, 0.15), dunes=0.0,
    )


def _terrain(rng: random.Random, gen: torch.Generator, climate: str, n: int, cell: float) -> tuple[Tensor, float]:
    """Large-scale ground height [n, n] in metres (water level still to be chosen), and the water quantile."""
    lo = 2 if n >= 512 else 1

    def oct(p: int) -> int:  # octave counts are defined for n = 1024 and scaled with the grid
        return max(1, p * n // 1024)

    style = rng.random()
    if climate == "alpine":
        base = fbm(n, gen, oct(4), oct(32), amp_m=rng.uniform(250, 500))
        mtn = fbm(n, gen, oct(4), oct(256), ridged=True, gain=0.52, erosion=2.5, amp_m=rng.uniform(1500, 2600), cell=cell)
        mask = _smoothstep(-0.5, 0.35, fbm(n, gen, lo, oct(8)))
        hills = fbm(n, gen, oct(16), oct(512), erosion=3.0, amp_m=140, cell=cell)
        h = base + mtn * (0.35 + 0.65 * mask) + hills
        water_q = rng.choice([0.0, rng.uniform(0.02, 0.1)])
    elif climate == "coast":
        base = fbm(n, gen, lo, oct(16), amp_m=rng.uniform(250, 420))
        mtn = fbm(n, gen, oct(4), oct(256), ridged=True, erosion=3.0, amp_m=rng.uniform(150, 700), cell=cell)
        hills = fbm(n, gen, oct(8), oct(512), erosion=2.0, amp_m=rng.uniform(60, 150), cell=cell)
        h = base + mtn * _smoothstep(-0.1, 0.3, base / 400) + hills
        water_q = rng.uniform(0.3, 0.62)
    elif climate == "desert":
        base = fbm(n, gen, lo, oct(16), amp_m=rng.uniform(100, 250))
        mtn = fbm(n, gen, oct(4), oct(256), ridged=True, erosion=1.0, amp_m=rng.uniform(250, 600), cell=cell)
        hills = fbm(n, gen, oct(16), oct(512), erosion=1.0, amp_m=60, cell=cell)
        h = base + mtn * _smoothstep(-0.3, 0.3, fbm(n, gen, lo, oct(8))) + hills
        if style < 0.65:  # mesas: flat tops, steep cliffs
            step = rng.uniform(40, 110)
            k = torch.floor(h / step)
            f = h / step - k
            mesa = (k + _smoothstep(0.72, 0.95, f)) * step
            h = h + (mesa - h) * rng.uniform(0.7, 0.95)
        water_q = rng.choice([0.0, 0.0, 0.0, rng.uniform(0.01, 0.05)])
    elif climate == "forest":
        base = fbm(n, gen, lo, oct(16), amp_m=rng.uniform(120, 300))
        hills = fbm(n, gen, oct(8), oct(512), erosion=3.0, amp_m=rng.uniform(120, 300), cell=cell)
        mtn = fbm(n, gen, oct(4), oct(256), ridged=True, erosion=2.0, amp_m=rng.uniform(0, 700), cell=cell)
        h = base + hills + mtn * _smoothstep(0.0, 0.5, fbm(n, gen, lo, oct(8)))
        water_q = rng.uniform(0.04, 0.16)
    else:  # tundra
        base = fbm(n, gen, lo, oct(16), amp_m=rng.uniform(80, 200))
        hills = fbm(n, gen, oct(16), oct(512), erosion=2.0, amp_m=rng.uniform(40, 120), cell=cell)
        mtn = fbm(n, gen, oct(4), oct(256), ridged=True, erosion=2.5, amp_m=rng.uniform(0, 1200), cell=cell)
        h = base + hills + mtn * _smoothstep(0.0, 0.5, fbm(n, gen, lo, oct(8)))
        water_q = rng.uniform(0.08, 0.22)

    # river valleys: carve along the zero set of a low-frequency field
    if climate != "coast" or style < 0.5:
        r = fbm(n, gen, oct(4), oct(64))
        width = rng.uniform(0.03, 0.08)
        depth = rng.uniform(30, 120) * (2.0 if climate == "alpine" else 1.0)
        h = h - depth * torch.exp(-((r / width) ** 2)) * _smoothstep(-0.2, 0.4, fbm(n, gen, lo, oct(4)))

    # domain warp: bends ridges and coastlines away from the noise lattice
    wamp = rng.uniform(6, 18) * n / 1024
    wx = fbm(n, gen, oct(4), oct(32)) * wamp * 2
    wz = fbm(n, gen, oct(4), oct(32)) * wamp * 2
    h = _warp_periodic(h, wx, wz)
    return h, water_q


def _canopy(rng: random.Random, gen: torch.Generator, m: int, fine_cell: float, conifer: bool) -> Tensor:
    """Tree-crown heights [m, m] (m, 0 between crowns) on a jittered grid of trees (periodic)."""
    spacing = rng.uniform(5.0, 8.0)
    nc = max(4, 2 ** round(math.log2(m * fine_cell / spacing)))
    ct = m / nc  # texels per tree cell
    jit = torch.rand(nc, nc, 2, generator=gen) * 0.8 + 0.1
    tall = torch.rand(nc, nc, generator=gen)
    present = torch.rand(nc, nc, generator=gen) > rng.uniform(0.05, 0.3)
    h_lo, h_hi = (10.0, 26.0) if conifer else (9.0, 20.0)
    th = (h_lo + (h_hi - h_lo) * tall) * present
    rad = (0.5 if conifer else 0.62) * ct * (0.75 + 0.5 * tall)
    ii, jj = torch.meshgrid(torch.arange(m, dtype=torch.float32) + 0.0, torch.arange(m, dtype=torch.float32), indexing="ij")
    ci, cj = torch.floor(ii / ct).long(), torch.floor(jj / ct).long()
    out = torch.zeros(m, m)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            ni, nj = ci + di, cj + dj
            wi, wj = ni % nc, nj % nc
            pz = (ni.float() + jit[wi, wj, 0]) * ct
            px = (nj.float() + jit[wi, wj, 1]) * ct
            d = torch.sqrt((ii - pz) ** 2 + (jj - px) ** 2) / rad[wi, wj]
            if conifer:
                prof = (1 - d).clamp_min(0) ** 1.1
            else:
                prof = (1 - d * d).clamp_min(0).sqrt()
            out = torch.maximum(out, th[wi, wj] * prof)
    return out


def make_world(seed: int, climate: str | None = None, grid: int = 1024, device: torch.device | str = "cpu") -> World:
    """Build the world of `seed` (the climate is drawn from the seed unless given).

    Args:
        seed: any int; same seed (and grid) -> the same world bit for bit.
        climate: one of CLIMATES, or None to draw it from the seed.
        grid: coarse height-grid size N (power of two, >= 64); 1024 for datasets, 256 for quick tests.
        device: where the world's tensors live (generation itself always runs on the CPU).

    Returns:
        World with coarse [N, N, 3], fine [M, M, 2] (M = min(1024, 2N)), tex [512, 512].
    """
    if grid < 64 or grid & (grid - 1):
        raise ValueError(f"grid must be a power of two >= 64, got {grid}")
    rng = random.Random(f"worldgen-synth-{seed}")
    gen = torch.Generator().manual_seed(seed % (2**63))
    if climate is None:
        climate = rng.choices(CLIMATES, weights=(0.24, 0.24, 0.16, 0.2, 0.16))[0]
    elif climate not in CLIMATES:
        raise ValueError(f"unknown climate {climate!r}; choose one of {', '.join(CLIMATES)}")
    n = grid
    cell = {"alpine": 16.0, "coast": 10.0, "desert": 10.0, "forest": 9.0, "tundra": 12.0}[climate] * 1024 / n
    cell = min(cell, {"alpine": 32.0}.get(climate, 24.0))
    h, water_q = _terrain(rng, gen, climate, n, cell)
    water = water_q > 0
    level = _quantile(h, water_q) if water else _quantile(h, 0.02) - 2.0
    h = h - level
    if climate == "coast":  # flatten the sea floor a little: shallow shelves, clearer water
        h = torch.where(h < 0, h * 0.6, h)
    h_top = float(h.max())
    atm = _sun_and_sky(rng, climate)
    pal = _palette(rng, climate, max(h_top, 50.0))

    # forest density: climate x altitude x slope x patches
    slope = _grad_sq(h, cell).sqrt()
    density = {"alpine": 0.75, "coast": 0.55, "desert": 0.12, "forest": 0.97, "tundra": 0.35}[climate]
    patches = fbm(n, gen, max(2, n // 128), max(4, n // 8))
    noise_alt = fbm(n, gen, max(2, n // 64), max(4, n // 4)) * 0.15 * max(h_top, 50.0)
    forest = _smoothstep(-0.45 + (1 - density) * 0.9, -0.2 + (1 - density) * 0.9, patches)
    forest = forest * _smoothstep(pal.beach + 1.0, pal.beach + 8.0, h)
    forest = forest * (1 - _smoothstep(pal.tree_line * 0.85, pal.tree_line, h + noise_alt))
    forest = forest * (1 - _smoothstep(0.55, 0.95, slope))
    if climate == "desert":
        forest = forest * _smoothstep(0.0, 30.0, -h + pal.beach + 40.0) * 0.6  # only near low ground
    # roughness (m) of the fine relief: rock on steep and high ground
    rough = 0.8 + 4.0 * _smoothstep(0.3, 0.9, slope) + 1.5 * _smoothstep(pal.tree_line, pal.tree_line * 1.3 + 1, h)
    if climate == "desert":
        rough = rough * 0.7
    rough = torch.where(h < 0, rough * 0.4, rough)
    coarse = torch.stack([h, forest, rough], -1).contiguous()

    m = min(1024, 2 * n)
    fine_cell = 0.75 * 1024 / m
    detail = fbm(m, gen, 8 * m // 1024 or 1, m, ridged=False, gain=0.55)
    detail = detail / detail.abs().max().clamp_min(1e-6)
    conifer = climate in ("alpine", "tundra") or (climate == "forest" and rng.random() < 0.5)
    canopy = _canopy(rng, gen, m, fine_cell, conifer)
    fine = torch.stack([detail, canopy], -1).contiguous()
    tex = fbm(512, gen, 4, 512, gain=0.6)
    tex = (tex - tex.mean()) / (tex.std() * 2.5)

    h_max = h_top + float(rough.max()) + float(canopy.max()) + 1.0
    h_min = float(h.min()) - float(rough.max()) - 1.0
    cloud_alt = max(h_top, 200.0) + rng.uniform(600.0, 2500.0)
    atm = replace(atm, cloud_alt=cloud_alt)
    world = World(
        seed=seed, climate=climate, coarse=coarse, cell=cell, fine=fine, fine_cell=fine_cell, tex=tex,
        water=water, h_max=h_max, h_min=h_min, conifer=conifer, atmosphere=atm, palette=pal,
    )
    return world.to(device)
