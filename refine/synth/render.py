"""Batched torch ray marching of a `World` height field -> rgb, exact z-depth and sky mask.

All rays of all requested views are marched together (one tensor of R = B*H*W rays), with a fixed
maximum number of steps and no per-pixel Python: each step is a handful of vectorised ops, so the
same code runs on CPU (tests, 64x64) and GPU (datasets, many views per call).

Marching: from the camera, a ray advances by `k * gap` where gap is its height above the surface
(ground or water), with a minimum step growing with distance; finished rays are compacted away
every few steps. A crossing found between two samples is refined by bisection, so the returned
depth is that of the same surface in every view to about 1e-5 relative -- the depth is exact for
the rendered geometry, which is what makes multi-view tests and training targets possible.

Shading: materials by altitude, slope and noise (grass, forest crowns, rock, sand, snow), sun with
soft ray-marched shadows and cloud shadows, sky ambient, water with Fresnel, reflections of sky
and terrain (a second march), depth-tinted shallows and foam, aerial perspective (height fog plus
chromatic thin air, tinted by the sky), sky with gradient, sun and a cloud layer; ACES tone map.

Conventions: worldgen/core/camera.py (OpenCV axes, c2w, pixel centres at +0.5, world up = -y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from refine.synth.terrain import World
from worldgen.core.camera import Camera
from worldgen.core.frame import Frame


@dataclass(frozen=True)
class RenderSettings:
    """Quality knobs of the ray marcher (defaults: dataset quality).

    Attributes:
        steps: maximum march steps per primary ray.
        bisect: bisection steps refining each crossing (interval shrinks by 2^bisect).
        k: step = k * height gap above the smooth envelope (< 1 because terrain slopes).
        lip: slope bound (Lipschitz constant) of crowns and relief: step >= gap / lip below the envelope.
        far: rays travelling further than this (m) count as sky.
        shadow_steps: steps of the soft-shadow march towards the sun (0 = no shadows).
        reflect_steps: steps of the water-reflection march (0 = reflect the sky only).
        compact_every: remove finished rays from the working set every this many steps.
    """

    steps: int = 640
    bisect: int = 14
    k: float = 0.45
    lip: float = 6.0
    far: float = 40000.0
    shadow_steps: int = 40
    reflect_steps: int = 56
    compact_every: int = 8


@dataclass
class SynthRender:
    """Rendered views (all on the world's device).

    Attributes:
        rgb: [B, H, W, 3] float32 in [0, 1] (sRGB-encoded, ready to save).
        depth: [B, H, W] float32 z-depth in metres, +inf where sky.
        sky: [B, H, W] bool, True where the ray met no ground or water (depth == inf there).
    """

    rgb: Tensor
    depth: Tensor
    sky: Tensor


# ---------------------------------------------------------------------------------------------
# lookups


def _bilerp(flat: Tensor, n: int, u: Tensor, v: Tensor) -> Tensor:
    """Bilinear periodic lookup of a grid stored as flat [n*n, C] (n a power of two).

    u, v: [...] coordinates in texels (texel (i, j) at u = j, v = i). Returns [..., C].
    """
    u0 = torch.floor(u)
    v0 = torch.floor(v)
    fu = (u - u0)[..., None]
    fv = (v - v0)[..., None]
    m = n - 1
    i0 = u0.long() & m
    j0 = v0.long() & m
    i1 = (i0 + 1) & m
    j1 = (j0 + 1) & m
    r0 = j0 * n
    r1 = j1 * n
    a = flat[r0 + i0]
    b = flat[r0 + i1]
    c = flat[r1 + i0]
    d = flat[r1 + i1]
    return (a + (b - a) * fu) + ((c + (d - c) * fu) - (a + (b - a) * fu)) * fv


class _Field:
    """The world's grids flattened once for fast lookups."""

    def __init__(self, world: World):
        self.w = world
        self.n = world.coarse.shape[0]
        self.m = world.fine.shape[0]
        self.p = world.tex.shape[0]
        self.coarse = world.coarse.reshape(-1, 3)
        self.fine = world.fine.reshape(-1, 2)
        self.tex = world.tex.reshape(-1, 1)
        self.inv_cell = 1.0 / world.cell
        self.inv_fine = 1.0 / world.fine_cell
        self.canopy_max = float(world.fine[..., 1].max())

    def parts(self, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Ground components at world (x, z) [R]: (base height incl. relief, forest, canopy, rough)."""
        c = _bilerp(self.coarse, self.n, x * self.inv_cell, z * self.inv_cell)
        f = _bilerp(self.fine, self.m, x * self.inv_fine, z * self.inv_fine)
        base = c[:, 0] + c[:, 2] * f[:, 0]
        return base, c[:, 1], c[:, 1] * f[:, 1], c[:, 2]

    def ground(self, x: Tensor, z: Tensor) -> Tensor:
        """Ground height (m above water) [R] at world (x, z) [R]: terrain + relief + tree crowns."""
        c = _bilerp(self.coarse, self.n, x * self.inv_cell, z * self.inv_cell)
        f = _bilerp(self.fine, self.m, x * self.inv_fine, z * self.inv_fine)
        return c[:, 0] + c[:, 2] * f[:, 0] + c[:, 1] * f[:, 1]

    def surface_env(self, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """(surface height [R], smooth upper envelope [R]) at (x, z) [R].

        The envelope (terrain + full relief + tallest crowns) is >= the surface everywhere and has
        terrain-like slopes, so rays above it can take big steps; below it they step carefully.
        """
        c = _bilerp(self.coarse, self.n, x * self.inv_cell, z * self.inv_cell)
        f = _bilerp(self.fine, self.m, x * self.inv_fine, z * self.inv_fine)
        g = c[:, 0] + c[:, 2] * f[:, 0] + c[:, 1] * f[:, 1]
        env = c[:, 0] + c[:, 2] + c[:, 1] * self.canopy_max
        if self.w.water:
            return g.clamp_min(0.0), env.clamp_min(0.0)
        return g, env

    def surface(self, x: Tensor, z: Tensor) -> Tensor:
        """Height [R] of what a ray meets: max(ground, 0) where the world has water."""
        g = self.ground(x, z)
        return g.clamp_min(0.0) if self.w.water else g

    def noise(self, x: Tensor, z: Tensor, scale: float | Tensor, offset: float = 0.0) -> Tensor:
        """Periodic fractal noise [R] (about -1..1) with texels of `scale` metres (a float or [R])."""
        s = 1.0 / scale
        return _bilerp(self.tex, self.p, x * s + offset, z * s + 0.37 * offset)[:, 0]


def surface_height(world: World, x: Tensor, z: Tensor) -> Tensor:
    """Height (m, world up = -y) of the rendered surface at world (x, z) [...]: ground, or water at 0.

    The same function the marcher intersects, so `y = -surface_height` lies on the rendered
    geometry; flights use it to keep the camera above the ground.
    """
    shape = x.shape
    return _Field(world).surface(x.reshape(-1), z.reshape(-1)).reshape(shape)


# ---------------------------------------------------------------------------------------------
# marching


def _march(field: _Field, o: Tensor, d: Tensor, steps: int, s: RenderSettings, t0: float, far: float) -> Tensor:
    """Distance [R] along unit rays d [R, 3] from o [R, 3] to the surface (+inf: none before `far`)."""
    R = o.shape[0]
    dev = o.device
    out_lo = torch.full((R,), math.inf, device=dev)
    out_hi = torch.full((R,), math.inf, device=dev)
    ids = torch.arange(R, device=dev)
    oo, dd = o, d
    t = torch.full((R,), t0, device=dev)
    tp = t.clone()
    lo = torch.full((R,), math.inf, device=dev)
    hi = torch.full((R,), math.inf, device=dev)
    active = torch.ones(R, dtype=torch.bool, device=dev)
    h_max = field.w.h_max
    for it in range(steps):
        x = oo[:, 0] + t * dd[:, 0]
        alt = -(oo[:, 1] + t * dd[:, 1])
        z = oo[:, 2] + t * dd[:, 2]
        surf, env = field.surface_env(x, z)
        gap = alt - surf
        hit = active & (gap < 0)
        lo = torch.where(hit, tp, lo)
        hi = torch.where(hit, t, hi)
        escaped = (t > far) | ((dd[:, 1] < 0) & (alt > h_max))
        active = active & ~hit & ~escaped
        # above the envelope: terrain-like slopes; inside the crown/relief layer: slopes up to `lip`
        # (with a minimum step growing with distance; smaller inside the layer so crowns are not skipped)
        above = alt > env
        min_step = torch.where(above, 0.05 + 0.004 * t, 0.02 + 0.0008 * t)
        step = torch.maximum(torch.maximum(s.k * (alt - env), gap / s.lip), min_step)
        tp = torch.where(active, t, tp)
        t = torch.where(active, t + step, t)
        last = it == steps - 1
        if (it + 1) % s.compact_every == 0 or last:
            if last:  # out of steps: accept the current point if it is close to the surface
                close = active & (gap < 0.02 * t + 1.0)
                lo = torch.where(close, tp, lo)
                hi = torch.where(close, t, hi)
                active = torch.zeros_like(active)
            done = ~active
            out_lo[ids[done]] = lo[done]
            out_hi[ids[done]] = hi[done]
            keep = active.nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            ids, oo, dd, t, tp, lo, hi, active = (
                ids[keep], oo[keep], dd[keep], t[keep], tp[keep], lo[keep], hi[keep], active[keep]
            )
    # bisection of the bracketed crossings
    hit_ids = torch.isfinite(out_hi).nonzero().squeeze(1)
    result = torch.full((R,), math.inf, device=dev)
    if hit_ids.numel() == 0:
        return result
    a, b = out_lo[hit_ids], out_hi[hit_ids]
    oh, dh = o[hit_ids], d[hit_ids]
    for _ in range(s.bisect):
        mid = 0.5 * (a + b)
        p = oh + mid[:, None] * dh
        below = -p[:, 1] - field.surface(p[:, 0], p[:, 2]) < 0
        b = torch.where(below, mid, b)
        a = torch.where(below, a, mid)
    result[hit_ids] = 0.5 * (a + b)
    return result


def _soft_shadow(field: _Field, p: Tensor, sun: Tensor, steps: int) -> Tensor:
    """Sun visibility [M] in [0, 1] from points p [M, 3] (penumbra from the closest miss)."""
    M = p.shape[0]
    res = torch.ones(M, device=p.device)
    if steps <= 0 or M == 0:
        return res
    t = torch.full((M,), 1.5, device=p.device)
    sx, sy, sz = float(sun[0]), float(sun[1]), float(sun[2])
    h_max = field.w.h_max
    for _ in range(steps):
        alt = -(p[:, 1] + t * sy)
        gap = alt - field.surface(p[:, 0] + t * sx, p[:, 2] + t * sz)
        res = torch.minimum(res, (10.0 * gap / t).clamp_max(1.0))
        above = alt > h_max
        t = torch.where(above, t, t + torch.clamp(0.5 * gap, min=0.3 + 0.03 * t, max=200.0 + 0.2 * t))
    res = res.clamp(0, 1)
    return res * res * (3 - 2 * res)


# ---------------------------------------------------------------------------------------------
# sky, haze and materials


def _vec(c, dev) -> Tensor:
    return torch.tensor(c, dtype=torch.float32, device=dev)


def _smooth(a: float, b: float, x: Tensor) -> Tensor:
    t = ((x - a) / (b - a)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def _sky_base(world: World, d: Tensor, halo: bool = True) -> Tensor:
    """Clear-sky radiance [M, 3] in unit directions d [M, 3] (no sun disk, no clouds; `halo`: the
    narrow glow around the sun, left out where the sun's image is drawn another way)."""
    a = world.atmosphere
    dev = d.device
    sun = _vec(a.sun_dir, dev)
    up = -d[:, 1]
    mu = (d @ sun).clamp(-1, 1)
    h = up.clamp(0, 1)
    t = h.pow(0.5)[:, None]
    col = _vec(a.horizon, dev) * (1 - t) + _vec(a.zenith, dev) * t
    below = (-up).clamp(0, 1)[:, None]
    col = col * (1 - 0.35 * _smooth(0.0, 0.3, below))
    sun_el = -a.sun_dir[1]
    low = max(0.0, 1.0 - sun_el / 0.35)
    mup = mu.clamp_min(0)
    glow = (0.12 + 0.45 * low) * mup.pow(4) * (1 - h).pow(3)
    if halo:
        glow = glow + 0.12 * mup.pow(32) + 0.25 * mup.pow(256)
    return col + _vec(a.sun_color, dev) * glow[:, None]


def _cloud_density(field: _Field, x: Tensor, z: Tensor) -> Tensor:
    a = field.w.atmosphere
    if a.cloud_cover <= 0:
        return torch.zeros_like(x)
    n = field.noise(x, z, a.cloud_scale * 6.0, 11.0) + 0.5 * field.noise(x, z, a.cloud_scale * 1.7, 47.0)
    n = n * 0.8 + 0.5
    c = 1.0 - a.cloud_cover
    return _smooth(c - 0.15, c + 0.35, n)


def _sky(field: _Field, o: Tensor, d: Tensor, sun_disk: bool = True) -> Tensor:
    """Sky radiance [M, 3] seen from o [M, 3] in unit directions d [M, 3], with clouds; with the sun
    disk and halo unless `sun_disk` is False (reflections, where the glitter term draws the sun)."""
    w = field.w
    a = w.atmosphere
    dev = d.device
    col = _sky_base(w, d, halo=sun_disk)
    sun = _vec(a.sun_dir, dev)
    mu = d @ sun
    if sun_disk:
        disk = _smooth(math.cos(math.radians(0.9)), math.cos(math.radians(0.55)), mu)
        col = col + _vec(a.sun_color, dev) * (30.0 * disk)[:, None]
    if a.cloud_cover > 0:
        up = -d[:, 1]
        o_alt = -o[:, 1]
        ok = (up > 0.005) & (o_alt < a.cloud_alt)
        tc = torch.where(ok, (a.cloud_alt - o_alt) / up.clamp_min(0.005), torch.zeros_like(up))
        cx = o[:, 0] + tc * d[:, 0]
        cz = o[:, 2] + tc * d[:, 2]
        dens = _cloud_density(field, cx, cz) * ok
        fade = torch.exp(-tc / 60000.0) * _smooth(0.005, 0.08, up)
        dens = dens * fade
        lit = _vec(a.sun_color, dev) * (0.32 + 0.5 * mu.clamp_min(0).pow(6))[:, None] + _vec(a.zenith, dev) * 0.9
        lit = lit * (1.05 - 0.45 * _cloud_density(field, cx + 150 * sun[0], cz + 150 * sun[2]))[:, None]
        hz = _sky_base(w, torch.stack([d[:, 0], torch.zeros_like(up) - 0.02, d[:, 2]], -1))
        lit = lit * (1 - _smooth(0.0, 1.0, 1 - up.clamp(0, 1) ** 0.4))[:, None] * 0.6 + hz * 0.4 + lit * 0.0
        col = col * (1 - dens[:, None]) + lit * dens[:, None]
    return col


def _fog(world: World, o: Tensor, d: Tensor, t: Tensor, col: Tensor) -> Tensor:
    """Aerial perspective: radiance [M, 3] of `col` [M, 3] seen through t [M] metres of air."""
    a = world.atmosphere
    dev = d.device
    up = -d[:, 1]
    o_alt = (-o[:, 1]).clamp_min(0.0)
    od = torch.zeros_like(t)
    if a.haze > 0:
        b = 1.0 / a.haze_height
        x = b * up * t
        frac = torch.where(x.abs() > 1e-4, (1 - torch.exp(-x)) / torch.where(x.abs() > 1e-4, x, torch.ones_like(x)), 1 - 0.5 * x)
        od = a.haze * torch.exp(-b * o_alt) * t * frac
    air = a.air * t
    beta = _vec((0.55, 0.85, 1.35), dev)
    T = torch.exp(-(od[:, None] + air[:, None] * beta))
    dh = torch.stack([d[:, 0], (d[:, 1]).clamp(-0.02, 0.0) - 0.01, d[:, 2]], -1)
    dh = dh / dh.norm(dim=-1, keepdim=True)
    fog_col = _sky_base(world, dh)
    return col * T + fog_col * (1 - T)


def _shade_ground(field: _Field, p: Tensor, d: Tensor, fp: Tensor, shadows: int) -> Tensor:
    """Radiance [M, 3] of ground points p [M, 3] seen along d [M, 3]; fp [M] pixel footprint (m)."""
    w = field.w
    pal, a = w.palette, w.atmosphere
    dev = p.device
    x, z = p[:, 0], p[:, 2]
    base, forest, canopy, _rough = field.parts(x, z)
    # normal of the full surface, differences over about a pixel footprint
    e = fp.clamp(0.25, 8.0)
    hx = (field.ground(x + e, z) - field.ground(x - e, z)) / (2 * e)
    hz = (field.ground(x, z + e) - field.ground(x, z - e)) / (2 * e)
    inv = torch.rsqrt(1 + hx * hx + hz * hz)
    n = torch.stack([-hx * inv, -inv, -hz * inv], -1)
    n_up = inv
    alt = base

    fade1 = (1 - fp / 3.0).clamp(0, 1)
    n1 = field.noise(x, z, 0.9, 3.0) * fade1
    n2 = field.noise(x, z, 9.0, 5.0)
    n3 = field.noise(x, z, 70.0, 7.0)
    n4 = field.noise(x, z, 600.0, 9.0)
    V = lambda c: _vec(c, dev)

    # ground cover: grass, dry grass, dirt
    dry = _smooth(-0.35, 0.45, n4 + 0.6 * n3 + 0.2 * n2)[:, None]
    col = V(pal.grass) * (1 - dry) + V(pal.grass_dry) * dry
    n15 = field.noise(x, z, 3.1, 17.0) * (1 - fp / 8.0).clamp(0, 1)
    col = col * (1 + 0.3 * n1 + 0.3 * n15 + 0.25 * n2)[:, None]
    dirt = _smooth(0.25, 0.6, n3 * 0.7 + n2 * 0.5)[:, None] * 0.5
    col = col * (1 - dirt) + V(pal.dirt) * dirt
    if pal.dunes > 0:  # desert floor: sand with ripples
        sandy = _smooth(-0.3, 0.2, n4 + 0.3 * n3)[:, None] * pal.dunes
        col = col * (1 - sandy) + V(pal.sand) * (1 + 0.15 * n2)[:, None] * sandy

    # rock: steep ground and bare heights; strata bands in layered climates
    steep = 1 - n_up
    rock_w = _smooth(0.16, 0.32, steep + 0.12 * n2 + 0.05 * n1)
    bare = 0.85 if w.climate == "alpine" else 0.3
    rock_w = torch.maximum(rock_w, _smooth(pal.tree_line * 1.05, pal.tree_line * 1.5 + 10, alt + 120 * n3) * bare)
    band = 0.5 + 0.5 * torch.sin(alt / 9.0 + 2.5 * n3 + 0.7 * n2)
    rcol = V(pal.rock) * (1 - band * pal.strata)[:, None] + V(pal.rock_alt) * (band * pal.strata)[:, None]
    rcol = rcol * (0.75 + 0.3 * n1 + 0.25 * n2)[:, None]
    col = col * (1 - rock_w[:, None]) + rcol * rock_w[:, None]

    # beaches and lake shores
    if w.water:
        sand_w = 1 - _smooth(pal.beach * 0.6, pal.beach * 1.3, alt + 1.5 * n2 + 3 * n3)
        sand_w = sand_w * (1 - _smooth(0.3, 0.55, steep))
        col = col * (1 - sand_w[:, None]) + V(pal.sand) * (1 + 0.1 * n2)[:, None] * sand_w[:, None]

    # snow: above the snow line on gentle enough slopes; tundra patches everywhere
    snow_w = _smooth(pal.snow_line - 60, pal.snow_line + 60, alt + 250 * n3 + 60 * n2)
    if pal.snow_patches > 0:
        snow_w = torch.maximum(snow_w, _smooth(1 - pal.snow_patches, 1.15 - pal.snow_patches, 0.5 + n3 * 0.8 + 0.4 * n2))
    snow_w = snow_w * _smooth(0.55, 0.8, n_up + 0.1 * n2)
    col = col * (1 - snow_w[:, None]) + V(pal.snow) * (0.92 + 0.08 * n1)[:, None] * snow_w[:, None]

    # tree crowns
    tree = _smooth(0.5, 2.0, canopy)[:, None]
    tn = field.noise(x, z, 4.0, 13.0)
    mixc = _smooth(-0.2, 0.4, tn + 0.5 * n3)[:, None]
    tcol = V(pal.forest) * (1 - mixc) + V(pal.forest_alt) * mixc
    tcol = tcol * (0.8 + 0.35 * tn + 0.2 * n1)[:, None]
    col = col * (1 - tree) + tcol * tree
    # occlusion: low in the canopy and the floor between crowns are dark
    top = 8.0 + 10.0 * forest
    ao = 1 - forest * (1 - (canopy / top).clamp(0, 1)) * 0.7
    # under water the floor is wet and dark
    if w.water:
        col = torch.where((alt < 0)[:, None], col * 0.6, col)

    sun = V(a.sun_dir)
    ndl = (n @ sun).clamp_min(0)
    vis = torch.ones_like(ndl)
    lit_any = ndl > 0
    if shadows > 0 and bool(lit_any.any()):
        idx = lit_any.nonzero().squeeze(1)
        q = p[idx] + n[idx] * 0.3
        vis[idx] = _soft_shadow(field, q, sun, shadows)
    if a.cloud_cover > 0:
        s_up = max(-a.sun_dir[1], 0.05)
        tc = ((a.cloud_alt - alt) / s_up).clamp_min(0)
        cd = _cloud_density(field, x + tc * sun[0], z + tc * sun[2])
        vis = vis * (1 - 0.75 * cd)
    sky_amb = V(a.zenith) * 0.55 + V(a.horizon) * 0.45
    amb = sky_amb * ((0.55 + 0.45 * n_up) * ao)[:, None] * 1.1
    bounce = V(a.sun_color) * V(pal.grass) * (0.5 * (1 - n_up) * max(-a.sun_dir[1], 0.0))[:, None]
    light = V(a.sun_color) * (ndl * vis)[:, None] + amb + bounce
    rad = col * light
    # a little sheen on snow towards the sun
    if float(snow_w.max()) > 0:
        h = sun - d
        h = h / h.norm(dim=-1, keepdim=True)
        spec = (n * h).sum(-1).clamp_min(0).pow(30) * 0.08 * snow_w * vis
        rad = rad + V(a.sun_color) * spec[:, None]
    return rad


def _shade_water(field: _Field, o: Tensor, p: Tensor, d: Tensor, fp: Tensor, t: Tensor, s: RenderSettings) -> Tensor:
    """Radiance [M, 3] of water points p [M, 3] (on h = 0) seen from o along d [M, 3]."""
    w = field.w
    pal, a = w.palette, w.atmosphere
    dev = p.device
    x, z = p[:, 0], p[:, 2]
    # wave normal from noise gradients, calmer with distance (sub-pixel waves average out)
    amp = 0.07 + 0.08 * (1 - (fp / 1.5).clamp(0, 1))
    gx = torch.zeros_like(x)
    gz = torch.zeros_like(x)
    for sc, wgt, off in ((2.2, 1.0, 21.0), (7.0, 0.7, 31.0), (23.0, 0.5, 41.0)):
        e = sc * 0.5
        fade = (1 - fp / (sc * 1.5)).clamp(0, 1) if sc < 20 else torch.ones_like(fp)
        gx = gx + wgt * fade * (field.noise(x + e, z, sc, off) - field.noise(x - e, z, sc, off)) / (2 * e) * sc
        gz = gz + wgt * fade * (field.noise(x, z + e, sc, off) - field.noise(x, z - e, sc, off)) / (2 * e) * sc
    n = torch.stack([-gx * amp, -torch.ones_like(x), -gz * amp], -1)
    n = n / n.norm(dim=-1, keepdim=True)
    cos_i = -(d * n).sum(-1)
    cos_i = cos_i.clamp(0.0, 1.0)
    fres = 0.02 + 0.98 * (1 - cos_i).pow(5)
    r = d + 2 * cos_i[:, None] * n
    r = torch.stack([r[:, 0], torch.minimum(r[:, 1], torch.full_like(r[:, 1], -0.004)), r[:, 2]], -1)
    r = r / r.norm(dim=-1, keepdim=True)
    q = p + torch.tensor([0.0, -0.05, 0.0], device=dev)
    refl = _sky(field, q, r, sun_disk=False)  # the sun's image is the glitter term below
    if s.reflect_steps > 0:
        tr = _march(field, q, r, s.reflect_steps, s, 0.5, s.far * 0.5)
        hit = torch.isfinite(tr).nonzero().squeeze(1)
        if hit.numel() > 0:
            ph = q[hit] + tr[hit, None] * r[hit]
            c = _shade_ground(field, ph, r[hit], fp[hit] + tr[hit] * 0.002, 0)
            refl[hit] = _fog(w, q[hit], r[hit], tr[hit], c)
    # refraction: the floor seen through the water column, absorbed per colour
    floor = field.ground(x, z)
    depth_w = (-floor).clamp_min(0.0)
    path = depth_w / cos_i.clamp_min(0.25) * 1.3
    T = torch.exp(-path[:, None] * _vec(pal.water_absorb, dev))
    sun = _vec(a.sun_dir, dev)
    light = _vec(a.sun_color, dev) * max(-a.sun_dir[1], 0.0) + (_vec(a.zenith, dev) * 0.6 + _vec(a.horizon, dev) * 0.4)
    floor_col = _vec(pal.sand, dev) * 0.8 * light
    scatter = _vec(pal.water_deep, dev) * light * 1.4
    refr = floor_col * T + scatter * (1 - T)
    # foam on the shore line
    foam = (1 - _smooth(0.05, 0.6, depth_w + 0.3 * field.noise(x, z, 1.3, 61.0))) * 0.8
    refr = refr * (1 - foam[:, None]) + light * 0.75 * foam[:, None]
    # sun glitter: microfacet (Beckmann) lobe of the wave slopes about the mean (flat) normal; its
    # roughness grows with the footprint, which stretches it into a glitter path towards the sun
    up = torch.tensor([0.0, -1.0, 0.0], device=dev)
    hv = sun - d
    hv = hv / hv.norm(dim=-1, keepdim=True)
    ch = (hv @ up).clamp(1e-3, 1.0)
    alpha = 0.05 + 0.06 * (fp / (fp + 3.0))
    tan2 = (1 - ch * ch) / (ch * ch)
    D = torch.exp(-tan2 / (alpha * alpha)) / (math.pi * alpha * alpha * ch.pow(4))
    cos_v = (-d[:, 1]).clamp_min(0.02)
    fh = 0.02 + 0.98 * (1 - (hv @ sun).clamp(0, 1)).pow(5)
    gscale = fp.clamp_min(0.4) * 1.5  # glints about a pixel wide at every distance
    glint = (field.noise(x, z, gscale, 71.0) * 3.5 - 0.3).clamp(0, 1)
    sparkle = 0.08 + 0.92 * glint
    spec = (D * fh / (4 * cos_v.clamp_min(0.15)) * max(-a.sun_dir[1], 0.0)).clamp_max(2.5) * sparkle * 0.6
    col = refl * fres[:, None] + refr * (1 - fres[:, None]) + _vec(a.sun_color, dev) * spec[:, None]
    return col


def _tonemap(x: Tensor) -> Tensor:
    """ACES filmic curve (Narkowicz fit), then sRGB-like gamma; [..., 3] -> [0, 1]."""
    x = x.clamp_min(0)
    y = (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14)
    return y.clamp(0, 1).pow(1 / 2.2)


# ---------------------------------------------------------------------------------------------
# public API


@torch.no_grad()
def render_views(
    world: World,
    c2w: Tensor,
    K: Tensor,
    width: int,
    height: int,
    settings: RenderSettings | None = None,
) -> SynthRender:
    """Render B views of `world` at once.

    Args:
        world: the landscape (its device is used).
        c2w: [B, 4, 4] camera-to-world poses, OpenCV axes (+x right, +y down, +z forward).
        K: [B, 3, 3] or [3, 3] pixel intrinsics, pixel centres at +0.5.
        width, height: image size W, H.
        settings: quality knobs (default RenderSettings()).

    Returns:
        SynthRender with rgb [B, H, W, 3] in [0, 1], z-depth [B, H, W] (inf = sky), sky [B, H, W].
    """
    s = settings or RenderSettings()
    dev = world.device
    c2w = c2w.to(dev, torch.float32)
    if c2w.dim() == 2:
        c2w = c2w[None]
    B = c2w.shape[0]
    K = K.to(dev, torch.float32)
    if K.dim() == 2:
        K = K[None].expand(B, 3, 3)
    field = _Field(world)
    # camera-space rays with z = 1, per view: [B, H, W, 3]
    vv, uu = torch.meshgrid(
        torch.arange(height, device=dev, dtype=torch.float32) + 0.5,
        torch.arange(width, device=dev, dtype=torch.float32) + 0.5,
        indexing="ij",
    )
    xc = (uu[None] - K[:, 0, 2, None, None]) / K[:, 0, 0, None, None]
    yc = (vv[None] - K[:, 1, 2, None, None]) / K[:, 1, 1, None, None]
    dc = torch.stack([xc, yc, torch.ones_like(xc)], -1)  # [B, H, W, 3]
    norm = dc.norm(dim=-1)  # |d_cam| with z = 1: z-depth = t / norm
    dw = torch.einsum("bij,bhwj->bhwi", c2w[:, :3, :3], dc / norm[..., None])
    o = c2w[:, None, None, :3, 3].expand(B, height, width, 3)
    d = dw.reshape(-1, 3).contiguous()
    o = o.reshape(-1, 3).contiguous()
    t = _march(field, o, d, s.steps, s, 0.3, s.far)
    sky = ~torch.isfinite(t)
    pix = 1.0 / K[:, 0, 0]  # radians per pixel, per view
    pix = pix[:, None, None].expand(B, height, width).reshape(-1)

    rad = torch.zeros(o.shape[0], 3, device=dev)
    sky_ids = sky.nonzero().squeeze(1)
    if sky_ids.numel():
        rad[sky_ids] = _sky(field, o[sky_ids], d[sky_ids])
    hit_ids = (~sky).nonzero().squeeze(1)
    if hit_ids.numel():
        th = t[hit_ids]
        oh, dh = o[hit_ids], d[hit_ids]
        p = oh + th[:, None] * dh
        fp = th * pix[hit_ids] / (-dh[:, 1]).abs().clamp_min(0.25)
        is_water = torch.zeros_like(th, dtype=torch.bool)
        if world.water:
            is_water = field.ground(p[:, 0], p[:, 2]) < 0
        col = torch.zeros_like(p)
        g = (~is_water).nonzero().squeeze(1)
        if g.numel():
            col[g] = _shade_ground(field, p[g], dh[g], fp[g], s.shadow_steps)
        wi = is_water.nonzero().squeeze(1)
        if wi.numel():
            col[wi] = _shade_water(field, oh[wi], p[wi], dh[wi], fp[wi], th[wi], s)
        rad[hit_ids] = _fog(world, oh, dh, th, col)
    rgb = _tonemap(rad * world.atmosphere.exposure).reshape(B, height, width, 3)
    depth = (t.reshape(B, height, width) / norm).to(torch.float32)
    depth = torch.where(sky.reshape(B, height, width), torch.full_like(depth, math.inf), depth)
    return SynthRender(rgb=rgb, depth=depth, sky=sky.reshape(B, height, width))


@torch.no_grad()
def march_rays(world: World, o: Tensor, d: Tensor, settings: RenderSettings | None = None) -> Tensor:
    """Distance [R] along unit world rays d [R, 3] from origins o [R, 3] to the surface (+inf: sky).

    The primary-ray march of `render_views`, exposed for arbitrary (e.g. sub-pixel) rays.
    """
    s = settings or RenderSettings()
    dev = world.device
    return _march(_Field(world), o.to(dev, torch.float32), d.to(dev, torch.float32), s.steps, s, 0.3, s.far)


def render_frame(world: World, camera: Camera, settings: RenderSettings | None = None) -> Frame:
    """Render one `Camera` view of `world` as a worldgen `Frame` (rgb [H, W, 3], depth [H, W], sky [H, W])."""
    r = render_views(world, camera.c2w[None], camera.K, camera.width, camera.height, settings)
    return Frame(rgb=r.rgb[0], depth=r.depth[0], sky=r.sky[0], camera=camera.to(world.device))
