"""Gorges: one narrow winding canyon with steep, dark rock walls and a bright floor, flown low along its floor.

Why: the drone flights over rolling terrain (terrain.py) teach that the bright, hazy part of a frame is far
and the dark ground at its foot near, and the forest-floor walks (trees.py) that a bright patch between dark
shapes is far sky. A photo taken in a gorge (crystal_falls: bright water and pale gravel at the bottom under
dark rock walls that rise on both sides and close the view) is then read upside down. A gorge frame shows the
opposite: the bright floor is the nearest thing in the lower half, the dark walls at the sides are near and
converge with distance, sky is a strip between them, and a bend closes the far end with a wall.

`gorge_world(world)` is a new `World` with the same seed, climate, conifers and texture as `world`
(World.gorge True) whose height field is one canyon on its own fine grid (1.2-1.8 m texels, so that walls
can be steep), made with the existing machinery: the renderer marches this height field like any other, so
depth is exact. The walls are rock (render.py's materials: steep ground, and everything above
`Palette.cliffs`), the floor sand and gravel (the palette's sand, grass and soil turned to gravel and
brightened, its rock darkened: `GorgeSpec.floor_lum`, `rock_lum`), and water, where the gorge has it, is
the plane h = 0 as everywhere. The sky is one of the world's climate, mostly with the sun high enough to
light the floor, its azimuth turned along the canyon (`GorgeSpec.sun_turn`).

Geometry (metres above the water level, world up = -y; P = grid x cell, the period of the tile):

    centreline     x = c(z) = x0 + sum_k a_k sin(2 pi n_k z / P + phi_k)       (n_k integers: periodic)
    lateral        u = wrap_P(x - c(z)) / sqrt(1 + c'(z)^2)                    (~ distance to the centreline)
    half-width     w(z) of the floor, smooth and periodic
    wall coord.    e = (|u| + wobble(x, z) - w(z)) / run(z, side),  e <= 0 on the floor, 1 at the rim
    height         h = floor(x, z) + H(z, side) g(clamp(e, 0, 1)) + plateau(x, z) s(e) + bulges(x, z) s'(e)

with g(e) = e + b sin(2 pi m e) / (2 pi m) (benches: g(0) = 0, g(1) = 1, 0 <= g' <= 1 + b) and
run = H (1 + b) / slope, so the walls are never steeper than `slope` (1.8-3.2 m/m, 61-73 degrees) before
rock relief (`rough_wall` metres of the fine detail grid), vertical ribs and bulges make the faces rugged.
That is steeper than the marcher's safe step assumes (about 1 / RenderSettings.k), but a wall is no thin
feature: a step past its face lands in the rock behind it, where the crossing is bracketed and refined as
everywhere (depth as from a march with k = 0.08 to 1e-4 but for 0-3 grazing rays in 8,000, which meet a
farther part of the same surface: fewer than over the drone worlds' tree crowns). Where the two sides'
heights differ (`asym`), the difference fades out halfway to the next canyon of the tile, so the height
field is continuous everywhere. The floor is gravel bars `bar` metres above the water
with a stream winding over it (the full width in some worlds: a pool from wall to wall), or a dry wash
where the world has no water. The plateau behind the rims carries the world's forest (crown bumps) in some
worlds, so tree tops stand on the skyline.

Every property is a function of the world's seed and the grid size (`gorge_spec`: Python `random.Random`
for scalars, a CPU `torch.Generator` for grids), so a gorge is the same in every view, batch and device.
Random floor half-widths (2.5-25 m), wall heights (25-200 m, at least 3.5 x (half-width + 3 m), the two
sides different), bends (straight to S-bends whose outer wall closes the view), benches, wall and floor
brightness (the floor's sand 0.14-0.6, 1.3 to 9 times the walls' rock: sometimes barely brighter), water
or a dry wash, and the sun, so that "gorge" is no shortcut to one depth layout.

Conventions: worldgen/core/camera.py (world up = -y: altitude = -y); x and z span the ground; metres.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from refine.synth.terrain import RGB, World, _canopy, _smoothstep, _sun_and_sky, fbm

Waves = tuple[tuple[float, int, float], ...]  # (amplitude, whole cycles per tile, phase in radians)


@dataclass(frozen=True)
class GorgeSpec:
    """The canyon of one gorge world (lengths in metres; see the module docstring for the formulas).

    Attributes:
        grid: texels per side of the coarse and the fine grid (N).
        cell: metres per coarse texel (the fine grid's texels are half as wide).
        x0: the centreline's mean x.
        bends: centreline waves (amplitude m, cycles per tile, phase): c(z) = x0 + sum a sin(2 pi n z / P + phi).
        width: mean floor half-width w.
        width_var: relative waves of the half-width: w(z) = width (1 + sum ...).
        wall: mean wall height H above the floor.
        wall_var: relative waves of the wall height along z.
        asym: the right wall (u > 0) is wall (1 + asym) high, the left one wall (1 - asym).
        slope: steepest wall slope (m/m), benches included.
        benches: (depth b in [0, 0.8], count m) of the benches (ledges) up each wall.
        wobble: amplitude of the noise shifting the wall foot in and out (buttresses and bays).
        flutes: amplitude of the finer shift that depends on z only (per side): grooves and ribs running
            straight up the walls.
        rough_floor, rough_wall: amplitude of the fine relief on the floor and on the walls.
        water: the floor holds water (plane h = 0) between gravel bars.
        bar: height of the floor (gravel bars) above the water or the dry wash's bed.
        stream: half-width of the stream (or dry wash) as a share of the floor half-width (1: wall to wall).
        stream_depth: depth of the stream bed below the water (or of the wash below the bars).
        meander: (share of the free floor, cycles per tile, phase) of the stream's swing about the centreline.
        forest: forest density on the plateau (0: bare rims).
        rock_lum, floor_lum: luminance of the walls' rock and of the floor's sand (linear albedo).
        sun_turn: sun azimuth from the canyon's mean axis (+z), radians.
        exposure: the camera's exposure (World.atmosphere.exposure) in the gorge.
    """

    grid: int
    cell: float
    x0: float
    bends: Waves
    width: float
    width_var: Waves
    wall: float
    wall_var: Waves
    asym: float
    slope: float
    benches: tuple[float, int]
    wobble: float
    flutes: float
    rough_floor: float
    rough_wall: float
    water: bool
    bar: float
    stream: float
    stream_depth: float
    meander: tuple[float, int, float]
    forest: float
    rock_lum: float
    floor_lum: float
    sun_turn: float
    exposure: float

    @property
    def period(self) -> float:
        """P: the tile's side in metres (the world repeats every P along x and z)."""
        return self.grid * self.cell


def gorge_spec(seed: int, grid: int = 1024) -> GorgeSpec:
    """The canyon of the gorge world of `seed` on a grid x grid tile (a pure function of both)."""
    if grid < 128 or grid & (grid - 1):
        raise ValueError(f"gorge grid must be a power of two >= 128, got {grid}")
    rng = random.Random(f"worldgen-gorge-{seed}")  # (the same draws on every grid: only whole cycles differ)
    cell = rng.uniform(1.2, 1.8)
    P = grid * cell

    def cycles(lo: float, hi: float) -> int:  # whole cycles per tile of a wave about lo..hi metres long
        return max(1, round(P / rng.uniform(lo, hi)))

    # bends: a main wave of 150-700 m (straight to winding) and two smaller ones
    straight = rng.random() < 0.2
    bends = []
    for k in range(3):
        n = cycles(150.0 / 1.6**k, 700.0 / 1.6**k)
        steep = rng.uniform(0.0, 0.25 if straight else 0.95) / 1.5**k  # the wave's steepest dx/dz
        bends.append((steep * P / (2 * math.pi * n), n, rng.uniform(0, 2 * math.pi)))
    width = math.exp(rng.uniform(math.log(2.5), math.log(25.0)))
    width_var = tuple((rng.uniform(0.0, 0.2), cycles(60.0, 300.0), rng.uniform(0, 2 * math.pi)) for _ in range(2))
    wall = math.exp(rng.uniform(math.log(25.0), math.log(150.0)))
    wall = min(200.0, max(wall, (width + 3.0) * rng.uniform(3.5, 7.0)))  # narrow: walls well above the floor's width
    wall_var = tuple((rng.uniform(0.0, 0.2), cycles(80.0, 400.0), rng.uniform(0, 2 * math.pi)) for _ in range(2))
    water = rng.random() < 0.65
    floor_lum = math.exp(rng.uniform(math.log(0.14), math.log(0.6)))
    rock_lum = min(0.16, max(0.02, floor_lum / math.exp(rng.uniform(math.log(1.3), math.log(9.0)))))
    side = math.pi if rng.random() < 0.5 else 0.0
    meander = (rng.uniform(0.0, 0.8), cycles(50.0, 250.0), rng.uniform(0, 2 * math.pi))
    return GorgeSpec(
        grid=grid, cell=cell, x0=rng.uniform(0, P), bends=tuple(bends), width=width,
        width_var=width_var, wall=wall, wall_var=wall_var, asym=rng.uniform(0.0, 0.35),
        slope=rng.uniform(1.8, 3.2), benches=(rng.choice([0.0, rng.uniform(0.2, 0.8)]), rng.randint(1, 4)),
        wobble=min(0.15 * width, rng.uniform(1.0, 5.0)), flutes=min(0.1 * width, rng.uniform(0.3, 2.0)),
        rough_floor=rng.uniform(0.12, 0.5), rough_wall=rng.uniform(1.5, 5.0), water=water, bar=rng.uniform(0.3, 1.2),
        stream=rng.choice([1.0, rng.uniform(0.25, 0.8), rng.uniform(0.25, 0.8)]),
        stream_depth=rng.uniform(0.4, 2.0) if water else rng.uniform(0.2, 0.6),
        meander=meander,
        forest=rng.choice([0.0, rng.uniform(0.4, 0.95)]), rock_lum=rock_lum, floor_lum=floor_lum,
        sun_turn=side + rng.uniform(-1.0, 1.0) * rng.uniform(0.1, 1.3), exposure=0.8 * rng.uniform(1.0, 1.6),
    )


def _waves(terms: Waves, z: Tensor, period: float) -> tuple[Tensor, Tensor]:
    """(sum a sin(2 pi n z / P + phi), its derivative in z), both shaped like z (any shape)."""
    v = torch.zeros_like(z)
    dv = torch.zeros_like(z)
    for a, n, phi in terms:
        w = 2 * math.pi * n / period
        v = v + a * torch.sin(w * z + phi)
        dv = dv + a * w * torch.cos(w * z + phi)
    return v, dv


def centreline(spec: GorgeSpec, z: Tensor) -> tuple[Tensor, Tensor]:
    """The canyon's centreline at z [...] (metres): (x [...], dx/dz [...]); periodic in z with spec.period."""
    v, dv = _waves(spec.bends, z, spec.period)
    return v + spec.x0, dv


def half_width(spec: GorgeSpec, z: Tensor) -> Tensor:
    """Floor half-width w(z) [...] (metres, >= 0.6 x spec.width) at z [...]."""
    v, _ = _waves(spec.width_var, z, spec.period)
    return spec.width * (1.0 + v)


def stream_centre(spec: GorgeSpec, z: Tensor) -> Tensor:
    """x [...] of the stream's (or dry wash's) middle at z [...]: it swings over the floor the stream leaves free."""
    c, _ = centreline(spec, z)
    w = half_width(spec, z)
    share, n, phi = spec.meander
    free = (w * (1.0 - spec.stream)).clamp_min(0.0)
    return c + share * free * torch.sin(2 * math.pi * n * z / spec.period + phi)


def lateral(spec: GorgeSpec, x: Tensor, cx: Tensor, slope: Tensor) -> Tensor:
    """Signed distance [...] (about; metres, > 0 towards +x) of points at x [...] from a line that crosses their
    z at x = cx [...] with slope dx/dz = slope [...] (broadcast together), x wrapped to the nearest period."""
    P = spec.period
    return (torch.remainder(x - cx + 0.5 * P, P) - 0.5 * P) / torch.sqrt(1.0 + slope * slope)


def _lum(c: RGB) -> float:
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]


def _scaled(c: RGB, lum: float) -> RGB:
    k = lum / max(_lum(c), 1e-4)
    return tuple(min(0.95, v * k) for v in c)


def gorge_world(world: World, grid: int = 1024) -> World:
    """The gorge twin of `world` (World.gorge True): same seed, climate, conifers and texture, and a height
    field that is one canyon winding along +z (`gorge_spec(world.seed, grid)`; see the module docstring), its
    own materials and sun. coarse [grid, grid, 3] and fine [grid, grid, 2] grids with texels of spec.cell and
    spec.cell / 2 metres, on `world`'s device; `world` itself is not changed. Made on the CPU in 0.5-0.8 s at
    grid 1024 (one thread)."""
    if world.gorge:
        return world
    spec = gorge_spec(world.seed, grid)
    rng = random.Random(f"worldgen-gorge-grids-{world.seed}")
    gen = torch.Generator().manual_seed((world.seed * 7919 + 17) % (2**63))
    N, cell, P = grid, spec.cell, spec.period
    s = N // 64  # noise lattice points per tile for features of about 64 texels (~100 m)
    zz = (torch.arange(N, dtype=torch.float64) * cell)[:, None]  # texel (i, j) at (x, z) = (j, i) * cell
    xx = (torch.arange(N, dtype=torch.float64) * cell)[None, :]
    c, dc = centreline(spec, zz)
    u = lateral(spec, xx, c, dc)  # [N, N]
    w = half_width(spec, zz)
    # +1 on the right wall (u > 0), -1 on the left, fading to 0 halfway to the next canyon (|u| = P / 2), so the
    # height field stays continuous there (at u = 0 the jump is harmless: e < 0 on the floor)
    side = torch.sign(u) * _smoothstep(0.0, 1.0, (0.5 * P - u.abs()) / (0.25 * P))
    wv, _ = _waves(spec.wall_var, zz, P)
    H = spec.wall * (1.0 + wv) * (1.0 + spec.asym * side)
    b, m = spec.benches
    run = H * (1.0 + b) / spec.slope
    wobble = fbm(N, gen, s, 8 * s).double() * spec.wobble
    ribs = fbm(N, gen, 16 * s, N).double() * spec.flutes  # a column of it per side: a function of z only
    wobble = wobble + 0.5 * (1 + side) * ribs[:, :1] + 0.5 * (1 - side) * ribs[:, N // 2 : N // 2 + 1]
    e = (u.abs() + wobble - w) / run
    ec = e.clamp(0.0, 1.0)
    g = ec + b * torch.sin(2 * math.pi * m * ec) / (2 * math.pi * m)
    plateau = fbm(N, gen, max(1, s // 2), 4 * s).double() * 0.3 * spec.wall
    bulges = fbm(N, gen, 2 * s, 32 * s, gain=0.65).double() * min(6.0, 0.08 * spec.wall)
    walls = H * g + plateau * _smoothstep(1.0, 2.5, e) + bulges * _smoothstep(0.0, 0.15, e)

    # the floor: gravel bars `bar` above the water (or the dry wash's bed), the stream winding over it
    lumps = fbm(N, gen, 4 * s, 32 * s).double() * 0.3
    v = lateral(spec, xx, stream_centre(spec, zz), dc)
    ws = spec.stream * w
    channel = 1.0 - _smoothstep(0.0, 1.0, (v.abs() - 0.6 * ws) / (0.5 * ws + 1.0))
    floor = spec.bar + lumps - (spec.bar + spec.stream_depth + lumps) * channel
    h = (floor + walls).float()

    wall_w = _smoothstep(0.0, 0.25, e).float()
    rough = spec.rough_floor + (spec.rough_wall - spec.rough_floor) * wall_w
    rough = torch.where(h < 0, rough * 0.5, rough)
    patches = fbm(N, gen, s, 16 * s)
    forest = spec.forest * _smoothstep(1.05, 1.5, e).float() * _smoothstep(-0.3, 0.1, patches)
    coarse = torch.stack([h, forest, rough], -1).contiguous()

    fine_cell = 0.5 * cell
    detail = fbm(N, gen, max(1, 8 * N // 1024), N, gain=0.68)  # rougher than terrain.py's 0.55: rugged rock faces
    detail = detail / detail.abs().max().clamp_min(1e-6)
    canopy = _canopy(rng, gen, N, fine_cell, world.conifer) if spec.forest > 0 else torch.zeros(N, N)
    fine = torch.stack([detail, canopy], -1).contiguous()

    pal = world.palette
    mix = lambda a, b_, t: tuple((1 - t) * p + t * q for p, q in zip(a, b_))  # noqa: E731
    sand = mix(pal.sand, (_lum(pal.sand),) * 3, rng.uniform(0.0, 0.7))  # sand towards grey gravel
    # the floor's plants turned (partly) to gravel, about as bright as its sand: the floor is brighter than the rock
    gravel = rng.uniform(0.4, 1.0)
    grass = _scaled(mix(pal.grass, sand, gravel), spec.floor_lum * rng.uniform(0.8, 1.0))
    grass_dry = _scaled(mix(pal.grass_dry, sand, gravel), spec.floor_lum * rng.uniform(0.85, 1.1))
    pal = replace(
        pal, grass=grass, grass_dry=grass_dry, cliffs=spec.bar + rng.uniform(1.5, 4.0),
        rock=_scaled(pal.rock, spec.rock_lum), rock_alt=_scaled(pal.rock_alt, spec.rock_lum * rng.uniform(0.7, 1.25)),
        sand=_scaled(sand, spec.floor_lum), dirt=_scaled(pal.dirt, spec.floor_lum * rng.uniform(0.5, 0.9)),
        beach=rng.uniform(3.0, 6.0), dunes=rng.uniform(0.6, 1.0), strata=rng.uniform(0.0, 1.0),
        snow_line=1e9, snow_patches=0.0, tree_line=1e4,
        # stained water (less cyan over the pale floor) in some gorges
        water_absorb=mix(pal.water_absorb, (0.32, 0.2, 0.42), rng.uniform(0.0, 1.0)),
        water_deep=mix(pal.water_deep, (0.012, 0.02, 0.01), rng.uniform(0.0, 1.0)),
    )
    # the sky: the world's, or (three gorges in four) one with the sun at least 30 degrees up, so that light
    # reaches the floor; the sun then turned to `sun_turn` from the canyon's axis
    a = world.atmosphere
    if rng.random() < 0.75:
        sky_rng = random.Random(f"worldgen-gorge-sky-{world.seed}")
        for _ in range(64):
            a = _sun_and_sky(sky_rng, world.climate)
            if -a.sun_dir[1] > math.sin(math.radians(30.0)):
                break
        a = replace(a, cloud_alt=world.atmosphere.cloud_alt)
    el = math.asin(max(-1.0, min(1.0, -a.sun_dir[1])))
    az = spec.sun_turn
    sun_dir = (math.cos(el) * math.sin(az), -math.sin(el), math.cos(el) * math.cos(az))
    h_top = float(h.max())
    atm = replace(a, sun_dir=sun_dir, exposure=spec.exposure, cloud_alt=max(a.cloud_alt, h_top + 600.0))
    out = World(
        seed=world.seed, climate=world.climate, coarse=coarse, cell=cell, fine=fine, fine_cell=fine_cell,
        tex=world.tex.cpu(), water=spec.water, h_max=h_top + float(rough.max()) + float(canopy.max()) + 1.0,
        h_min=float(h.min()) - float(rough.max()) - 1.0, conifer=world.conifer, atmosphere=atm, palette=pal,
        gorge=True,
    )
    return out.to(world.device)

