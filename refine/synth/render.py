"""Batched torch ray marching of a `World` height field -> rgb, exact z-depth and sky mask.

All rays of all requested views are marched together (one tensor of R = B*H*W rays) with no
per-pixel Python, so the same code runs on CPU (tests, 64x64) and GPU (datasets, training data
made on the fly, hundreds of views per call). The geometry core (lookups, march, refinement, soft
shadows) is `refine/synth/march.py`: a ray advances by a safe step from its height above the
surface, finished rays are compacted away every few steps, and each crossing is refined so the
returned depth is that of the same surface in every view (about 1e-6 relative) -- the depth is exact
for the rendered geometry, which is what makes multi-view tests and training targets possible.

Shading: materials by altitude, slope and noise (grass, forest crowns, rock, sand, snow), sun with
soft ray-marched shadows and cloud shadows, sky ambient, water with Fresnel, reflections of sky
and terrain (a second march), depth-tinted shallows and foam, aerial perspective (height fog plus
chromatic thin air, tinted by the sky), sky with gradient, sun and a cloud layer; ACES tone map.

Quality levels (`QUALITY`, `RenderSettings.preset`): "full" (datasets), "training" (on-the-fly
training data: water reflects the sky only) and "geometry" (no shadows, sky-only reflections);
all give the same exact depth and sky mask.

Conventions: worldgen/core/camera.py (OpenCV axes, c2w, pixel centres at +0.5, world up = -y).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from refine.synth.march import Field, MarchParams, const, march, soft_shadow
from refine.synth.terrain import World
from refine.synth.trees import TreeHit, occluded, trace, tree_specs
from worldgen.core.camera import Camera
from worldgen.core.frame import Frame

_Field = Field  # the name flights.py and older code import


@dataclass(frozen=True)
class RenderSettings:
    """Quality and speed knobs of the ray marcher (defaults: dataset quality, "full").

    None of them changes the geometry a ray meets, so depth stays exact at every setting; `steps`,
    `k`, `lip` and `spec` change which thin features (a crown tip far away) a grazing ray may step over.

    Attributes:
        steps: maximum march iterations per primary ray.
        bisect: bisection steps refining each crossing, before the `secant` steps.
        k: step = k * height above the smooth envelope (< 1 because terrain slopes).
        lip: slope bound (Lipschitz constant) of crowns and relief: step >= gap / lip below the envelope.
        far: rays travelling further than this (m) count as sky.
        shadow_steps: steps of the soft-shadow march towards the sun (0 = no shadows).
        reflect_steps: march iterations of the water-reflection rays (0 = reflect the sky only).
        compact_every: remove finished rays from the working set every this many iterations (a host sync each).
        secant: regula-falsi (Illinois) steps refining each crossing (depth to ~1e-7 relative with 6).
        spec: after `spec_after` iterations, rays still marching test 2, 4, ... up to this many points
            per iteration (speculative steps, each certified by the safe step of the point before;
            1 = off): far fewer iterations for the grazing rays that make the long tail.
        spec_after: iteration from which `spec` applies (best a multiple of compact_every).
        compile: on CUDA, run the march and shadow loops as torch.compile'd kernels, one graph per
            iteration (a few fused kernels instead of ~25 small ones): 2.8x eager at training quality,
            1,051 frames/s at 256x256 on one H200 after ~1 min of compiling (docs/synth.md). Opt-in;
            ignored on CPU; falls back to eager ops (with a warning) if compiling fails.
        max_rays: render at most this many primary rays at once (views are split into chunks),
            bounding memory; results do not depend on it.
    """

    steps: int = 640
    bisect: int = 0
    k: float = 0.45
    lip: float = 6.0
    far: float = 40000.0
    shadow_steps: int = 40
    reflect_steps: int = 56
    compact_every: int = 8
    secant: int = 6
    spec: int = 8
    spec_after: int = 48
    compile: bool = False
    max_rays: int = 1 << 24

    @staticmethod
    def preset(name: str, **overrides) -> RenderSettings:
        """The settings of quality level `name` (a key of QUALITY), with fields replaced by `overrides`."""
        if name not in QUALITY:
            raise ValueError(f"unknown quality {name!r}; choose one of {', '.join(QUALITY)}")
        return replace(QUALITY[name][1], **overrides)

    def march_params(self, steps: int | None = None) -> MarchParams:
        return MarchParams(
            steps=self.steps if steps is None else steps, k=self.k, lip=self.lip, compact_every=self.compact_every,
            spec=self.spec, spec_after=self.spec_after, bisect=self.bisect, secant=self.secant, compile=self.compile,
        )


QUALITY: dict[str, tuple[str, RenderSettings]] = {
    "full": ("dataset quality: 40-step soft shadows, water reflects sky and terrain", RenderSettings()),
    "training": (
        "training data made on the fly: as full but water reflects the sky only (>= 42 dB PSNR to full)",
        RenderSettings(reflect_steps=0),
    ),
    "geometry": (
        "no shadows, water reflects the sky only: exact depth and sky mask, plainest colour",
        RenderSettings(shadow_steps=0, reflect_steps=0),
    ),
}


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


class _Clock:
    """Per-stage wall time (device-synchronised) into a stats dict; does nothing without one."""

    def __init__(self, stats: dict | None, dev: torch.device):
        self.stats, self.dev = stats, dev
        self.cur: str | None = None
        self.t0 = 0.0

    def _switch(self, name: str | None) -> str | None:
        if self.dev.type == "cuda":
            torch.cuda.synchronize(self.dev)
        now = time.perf_counter()
        if self.cur is not None:
            key = f"{self.cur}_s"
            self.stats[key] = self.stats.get(key, 0.0) + now - self.t0
        prev, self.cur, self.t0 = self.cur, name, now
        return prev

    @contextmanager
    def stage(self, name: str):
        if self.stats is None:
            yield
            return
        prev = self._switch(name)
        try:
            yield
        finally:
            self._switch(prev)


def surface_height(world: World, x: Tensor, z: Tensor) -> Tensor:
    """Height (m, world up = -y) of the rendered surface at world (x, z) [...]: ground, or water at 0.

    The same function the marcher intersects, so `y = -surface_height` lies on the rendered
    geometry; flights use it to keep the camera above the ground.
    """
    shape = x.shape
    return Field(world).surface(x.reshape(-1), z.reshape(-1)).reshape(shape)


# ---------------------------------------------------------------------------------------------
# sky, haze and materials


def _vec(c, dev) -> Tensor:
    """Constant [3] (or [n]) float32 vector on dev, cached (no device sync after the first use)."""
    return const(tuple(c), torch.device(dev))


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


def _cloud_pts(world: World, x: Tensor, z: Tensor) -> list:
    """The two noise patterns of the cloud layer at (x, z) [M] (for Field.noise)."""
    s = world.atmosphere.cloud_scale
    return [(x, z, s * 6.0, 11.0), (x, z, s * 1.7, 47.0)]


def _cloud_density(world: World, na: Tensor, nb: Tensor) -> Tensor:
    """Cloud density [M] in 0..1 from the two patterns of `_cloud_pts` ([M] each)."""
    n = (na + 0.5 * nb) * 0.8 + 0.5
    c = 1.0 - world.atmosphere.cloud_cover
    return _smooth(c - 0.15, c + 0.35, n)


def _sky(field: Field, o: Tensor, d: Tensor, sun_disk: bool = True) -> Tensor:
    """Sky radiance [M, 3] seen from o [M, 3] in unit directions d [M, 3], with clouds; with the sun
    disk and halo unless `sun_disk` is False (reflections, where the glitter term draws the sun)."""
    w = field.w
    a = w.atmosphere
    dev = d.device
    col = _sky_base(w, d, halo=sun_disk)
    sun = a.sun_dir
    mu = d @ _vec(sun, dev)
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
        nz = field.noise(_cloud_pts(w, cx, cz) + _cloud_pts(w, cx + 150 * sun[0], cz + 150 * sun[2]))
        dens = _cloud_density(w, nz[0], nz[1]) * ok
        fade = torch.exp(-tc / 60000.0) * _smooth(0.005, 0.08, up)
        dens = dens * fade
        lit = _vec(a.sun_color, dev) * (0.32 + 0.5 * mu.clamp_min(0).pow(6))[:, None] + _vec(a.zenith, dev) * 0.9
        lit = lit * (1.05 - 0.45 * _cloud_density(w, nz[2], nz[3]))[:, None]
        hz = _sky_base(w, torch.stack([d[:, 0], torch.zeros_like(up) - 0.02, d[:, 2]], -1))
        lit = lit * (1 - _smooth(0.0, 1.0, 1 - up.clamp(0, 1) ** 0.4))[:, None] * 0.6 + hz * 0.4
        col = col * (1 - dens[:, None]) + lit * dens[:, None]
    return col


def _sky_ambient(world: World, dev) -> Tensor:
    """[3] the sky's ambient light (a mix of its zenith and horizon colours)."""
    a = world.atmosphere
    return _vec(a.zenith, dev) * 0.55 + _vec(a.horizon, dev) * 0.45


def _fog(world: World, o: Tensor, d: Tensor, t: Tensor, col: Tensor) -> Tensor:
    """Aerial perspective: radiance [M, 3] of `col` [M, 3] seen through t [M] metres of air."""
    a = world.atmosphere
    dev = d.device
    up = -d[:, 1]
    o_alt = (-o[:, 1]).clamp_min(0.0)
    air = (a.air * t)[:, None] * _vec((0.55, 0.85, 1.35), dev)
    if a.haze > 0:
        b = 1.0 / a.haze_height
        x = b * up * t
        small = x.abs() <= 1e-4
        frac = torch.where(small, 1 - 0.5 * x, -torch.expm1(-x) / torch.where(small, torch.ones_like(x), x))
        air = air + (a.haze * torch.exp(-b * o_alt) * t * frac)[:, None]
    T = torch.exp(-air)
    dh = torch.stack([d[:, 0], (d[:, 1]).clamp(-0.02, 0.0) - 0.01, d[:, 2]], -1)
    dh = dh / dh.norm(dim=-1, keepdim=True)
    fog_col = _sky_base(world, dh)
    return torch.lerp(fog_col, col, T)


def _shade_ground(
    field: Field, p: Tensor, d: Tensor, fp: Tensor, shadows: int, clock: _Clock, use_compile: bool = False
) -> Tensor:
    """Radiance [M, 3] of ground points p [M, 3] seen along d [M, 3]; fp [M] pixel footprint (m)."""
    w = field.w
    pal, a = w.palette, w.atmosphere
    dev = p.device
    M = p.shape[0]
    x, z = p[:, 0], p[:, 2]
    # one lookup: the point and 4 neighbours about a pixel footprint away (normal of the full surface)
    e = fp.clamp(0.25, 8.0)
    xz = torch.stack([x, z], -1)
    off = torch.stack([e, torch.zeros_like(e)], -1)
    c, f = field.sample(torch.cat([xz, xz + off, xz - off, xz + off.flip(-1), xz - off.flip(-1)]))
    base = torch.addcmul(c[0, :M], c[1, :M], f[0, :M])
    forest = c[2, :M]
    canopy = forest * f[1, :M]
    g = torch.addcmul(torch.addcmul(c[0, M:], c[1, M:], f[0, M:]), c[2, M:], f[1, M:]).view(4, M)
    hx = (g[0] - g[1]) / (2 * e)
    hz = (g[2] - g[3]) / (2 * e)
    inv = torch.rsqrt(1 + hx * hx + hz * hz)
    n = torch.stack([-hx * inv, -inv, -hz * inv], -1)
    n_up = inv
    alt = base

    pts = [(x, z, sc, off) for sc, off in ((0.9, 3.0), (9.0, 5.0), (70.0, 7.0), (600.0, 9.0), (3.1, 17.0), (4.0, 13.0))]
    sun = a.sun_dir
    if a.cloud_cover > 0:  # cloud shadow: the cloud layer where the sun ray from p crosses it
        tc = ((a.cloud_alt - alt) / max(-sun[1], 0.05)).clamp_min(0)
        pts += _cloud_pts(w, x + tc * sun[0], z + tc * sun[2])
    nz = field.noise(pts)
    n1 = nz[0] * (1 - fp / 3.0).clamp(0, 1)
    n2, n3, n4 = nz[1], nz[2], nz[3]
    n15 = nz[4] * (1 - fp / 8.0).clamp(0, 1)
    tn = nz[5]
    V = lambda c: _vec(c, dev)

    # ground cover: grass, dry grass, dirt
    dry = _smooth(-0.35, 0.45, n4 + 0.6 * n3 + 0.2 * n2)[:, None]
    col = torch.lerp(V(pal.grass), V(pal.grass_dry), dry)
    col = col * (1 + 0.3 * n1 + 0.3 * n15 + 0.25 * n2)[:, None]
    dirt = _smooth(0.25, 0.6, n3 * 0.7 + n2 * 0.5)[:, None] * 0.5
    col = torch.lerp(col, V(pal.dirt).expand_as(col), dirt)
    if pal.dunes > 0:  # desert floor: sand with ripples
        sandy = _smooth(-0.3, 0.2, n4 + 0.3 * n3)[:, None] * pal.dunes
        col = torch.lerp(col, V(pal.sand) * (1 + 0.15 * n2)[:, None], sandy)

    # rock: steep ground and bare heights; strata bands in layered climates
    steep = 1 - n_up
    rock_w = _smooth(0.16, 0.32, steep + 0.12 * n2 + 0.05 * n1)
    bare = 0.85 if w.climate == "alpine" else 0.3
    rock_w = torch.maximum(rock_w, _smooth(pal.tree_line * 1.05, pal.tree_line * 1.5 + 10, alt + 120 * n3) * bare)
    band = 0.5 + 0.5 * torch.sin(alt / 9.0 + 2.5 * n3 + 0.7 * n2)
    rcol = torch.lerp(V(pal.rock), V(pal.rock_alt), (band * pal.strata)[:, None])
    rcol = rcol * (0.75 + 0.3 * n1 + 0.25 * n2)[:, None]
    if pal.cliffs < 1e8:  # a gorge's walls and ledges (refine/synth/gorge.py): rock above `cliffs` whatever the slope,
        # with blotches (~5 m) and grain (~0.8 m) projected on the walls' vertical planes (the patterns above, laid
        # out in x and z, streak down a steep face)
        rock_w = torch.maximum(rock_w, _smooth(pal.cliffs, pal.cliffs + 2.5, alt + 1.2 * n2 + 0.4 * n1))
        cz = field.noise([(z, alt, 0.05, 81.0), (x, alt, 0.05, 83.0), (z, alt, 0.008, 85.0), (x, alt, 0.008, 87.0)])
        ax, az = n[:, 0].abs(), n[:, 2].abs()
        wsum = (ax + az).clamp_min(1e-6)
        blot = (ax * cz[0] + az * cz[1]) / wsum
        grain = (ax * cz[2] + az * cz[3]) / wsum * (1 - fp / 0.4).clamp(0, 1)
        rcol = rcol * (1 + 0.5 * blot + 0.35 * grain).clamp_min(0.25)[:, None]
    col = torch.lerp(col, rcol, rock_w[:, None])

    # beaches and lake shores
    if w.water:
        sand_w = 1 - _smooth(pal.beach * 0.6, pal.beach * 1.3, alt + 1.5 * n2 + 3 * n3)
        sand_w = sand_w * (1 - _smooth(0.3, 0.55, steep))
        col = torch.lerp(col, V(pal.sand) * (1 + 0.1 * n2)[:, None], sand_w[:, None])

    # snow: above the snow line on gentle enough slopes; tundra patches everywhere
    snowy = pal.snow_line < 1e8 or pal.snow_patches > 0
    if snowy:
        snow_w = _smooth(pal.snow_line - 60, pal.snow_line + 60, alt + 250 * n3 + 60 * n2)
        if pal.snow_patches > 0:
            patches = _smooth(1 - pal.snow_patches, 1.15 - pal.snow_patches, 0.5 + n3 * 0.8 + 0.4 * n2)
            snow_w = torch.maximum(snow_w, patches)
        snow_w = snow_w * _smooth(0.55, 0.8, n_up + 0.1 * n2)
        col = torch.lerp(col, V(pal.snow) * (0.92 + 0.08 * n1)[:, None], snow_w[:, None])

    # tree crowns
    tree = _smooth(0.5, 2.0, canopy)[:, None]
    mixc = _smooth(-0.2, 0.4, tn + 0.5 * n3)[:, None]
    tcol = torch.lerp(V(pal.forest), V(pal.forest_alt), mixc)
    tcol = tcol * (0.8 + 0.35 * tn + 0.2 * n1)[:, None]
    col = torch.lerp(col, tcol, tree)
    if w.standing:  # the forest floor under standing trees: leaf litter, needles and moss in patches
        litter = torch.lerp(V(pal.dirt), V(pal.forest_alt) * 0.8, _smooth(-0.3, 0.5, n15 + 0.5 * n2)[:, None])
        litter = litter * (0.7 + 0.45 * n1 + 0.25 * n15)[:, None]
        under = _smooth(0.15, 0.6, forest)
        col = torch.lerp(col, litter, (under * _smooth(-0.6, 0.2, n3 + 0.4 * n2))[:, None])
        # winding paths (~1.5 m wide) and bare patches of light gravel, sand and rock on gentle ground: a real
        # forest floor is not uniformly dark, and a network that only saw dark floors under trees read a bright
        # ground at the frame's foot as far (crystal_falls, docs/depth.md)
        # one lookup for the floor's patterns: paths ~40 m, patches ~8 m, grain ~10 cm; leaves ~30 and ~8 cm
        pz = field.noise([(x, z, 0.4, 61.0), (x, z, 0.08, 67.0), (x, z, 0.001, 71.0),
                          (x, z, 0.003, 51.0), (x, z, 0.0008, 53.0)])
        bare = torch.maximum(1 - _smooth(0.04, 0.1, pz[0].abs()), _smooth(0.45, 0.7, pz[1] + 0.3 * n3))
        grain = 1 + 0.35 * pz[2] * (1 - fp / 0.1).clamp(0, 1)
        gravel = torch.lerp(V(pal.sand), V(pal.rock), _smooth(-0.4, 0.4, pz[1] + n2)[:, None]) * grain[:, None]
        col = torch.lerp(col, gravel, (bare * under * _smooth(0.75, 0.9, n_up))[:, None])
        # seen from eye height the ground needs detail of leaves and tufts: patterns of about 30 and 8 cm
        # (the texture's features are ~100 texels wide), faded out where a pixel covers more than that
        fa, fb = (1 - fp / 0.3).clamp(0, 1), (1 - fp / 0.08).clamp(0, 1)
        col = col * (1 + 0.5 * pz[3] * fa + 0.35 * pz[4] * fb).clamp_min(0.2)[:, None]
        if pal.floor_snow > 0:  # a winter floor (trees.py winter_world): snow in drifts (~8 m), litter where it thins
            cover = _smooth(1 - pal.floor_snow, 1.2 - pal.floor_snow, 0.5 + 0.6 * pz[1] + 0.3 * n2)
            cover = cover * _smooth(0.55, 0.8, n_up)
            scol = V(pal.snow) * (0.9 + 0.1 * n1 + 0.04 * pz[3] * fa)[:, None]
            col = torch.lerp(col, scol, cover[:, None])
    # occlusion: low in the canopy and the floor between crowns are dark
    top = 8.0 + 10.0 * forest
    # (under standing trees the sky is seen between crowns, and cameras down there expose for the shade)
    ao = 1 - forest * (1 - (canopy / top).clamp(0, 1)) * (0.35 if w.standing else 0.7)
    # under water the floor is wet and dark
    if w.water:
        col = col * torch.where(alt < 0, 0.6, 1.0)[:, None]

    sun_v = V(sun)
    ndl = (n @ sun_v).clamp_min(0)
    vis = torch.ones_like(ndl)
    if shadows > 0:
        with clock.stage("shadows"):
            idx = (ndl > 0).nonzero().squeeze(1)
            if idx.numel():
                vis[idx] = soft_shadow(field, p[idx] + 0.3 * n[idx], sun, shadows, use_compile)
    if a.cloud_cover > 0:
        vis = vis * (1 - 0.75 * _cloud_density(w, nz[6], nz[7]))
    if w.standing and shadows > 0:  # the standing trees' shadows (crowns let a little light through)
        with clock.stage("shadows"):
            idx = (ndl > 0).nonzero().squeeze(1)
            if idx.numel():
                sun_d = sun_v.expand(idx.numel(), 3)
                vis[idx] = vis[idx] * torch.where(occluded(tree_specs(w), field, p[idx], sun_d), 0.2, 1.0)
    amb = _sky_ambient(w, dev) * ((0.55 + 0.45 * n_up) * ao)[:, None] * 1.1
    bounce = V(a.sun_color) * V(pal.grass) * (0.5 * (1 - n_up) * max(-sun[1], 0.0))[:, None]
    light = V(a.sun_color) * (ndl * vis)[:, None] + amb + bounce
    rad = col * light
    if snowy:  # a little sheen on snow towards the sun
        h = sun_v - d
        h = h / h.norm(dim=-1, keepdim=True)
        spec = (n * h).sum(-1).clamp_min(0).pow(30) * 0.08 * snow_w * vis
        rad = rad + V(a.sun_color) * spec[:, None]
    return rad


def _shade_water(field: Field, o: Tensor, p: Tensor, d: Tensor, fp: Tensor, s: RenderSettings, clock: _Clock) -> Tensor:
    """Radiance [M, 3] of water points p [M, 3] (on h = 0) seen from o along d [M, 3]."""
    w = field.w
    pal, a = w.palette, w.atmosphere
    dev = p.device
    x, z = p[:, 0], p[:, 2]
    # wave normal from noise gradients, calmer with distance (sub-pixel waves average out); all the
    # noise of this function in one lookup
    amp = 0.07 + 0.08 * (1 - (fp / 1.5).clamp(0, 1))
    waves = ((2.2, 1.0, 21.0), (7.0, 0.7, 31.0), (23.0, 0.5, 41.0))
    pts = []
    for sc, _, off in waves:
        e = sc * 0.5
        pts += [(x + e, z, sc, off), (x - e, z, sc, off), (x, z + e, sc, off), (x, z - e, sc, off)]
    gscale = fp.clamp_min(0.4) * 1.5  # glints about a pixel wide at every distance
    pts += [(x, z, 1.3, 61.0), (x, z, gscale, 71.0)]
    nz = field.noise(pts)
    gx = torch.zeros_like(x)
    gz = torch.zeros_like(x)
    for i, (sc, wgt, _) in enumerate(waves):
        fade = wgt * (1 - fp / (sc * 1.5)).clamp(0, 1) if sc < 20 else wgt
        gx = gx + fade * (nz[4 * i] - nz[4 * i + 1])
        gz = gz + fade * (nz[4 * i + 2] - nz[4 * i + 3])  # (n(+e) - n(-e)) / (2e) * sc with e = sc / 2
    n = torch.stack([-gx * amp, -torch.ones_like(x), -gz * amp], -1)
    n = n / n.norm(dim=-1, keepdim=True)
    cos_i = -(d * n).sum(-1)
    cos_i = cos_i.clamp(0.0, 1.0)
    fres = 0.02 + 0.98 * (1 - cos_i).pow(5)
    r = d + 2 * cos_i[:, None] * n
    r = torch.stack([r[:, 0], r[:, 1].clamp_max(-0.004), r[:, 2]], -1)
    r = r / r.norm(dim=-1, keepdim=True)
    q = p + _vec((0.0, -0.05, 0.0), dev)
    refl = _sky(field, q, r, sun_disk=False)  # the sun's image is the glitter term below
    if s.reflect_steps > 0:
        with clock.stage("reflections"):
            tr = march(field, q, r, s.march_params(s.reflect_steps), 0.5, s.far * 0.5)
            hit = torch.isfinite(tr).nonzero().squeeze(1)
            if hit.numel() > 0:
                ph = torch.addcmul(q[hit], tr[hit, None], r[hit])
                c = _shade_ground(field, ph, r[hit], fp[hit] + tr[hit] * 0.002, 0, clock)
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
    refr = torch.lerp(scatter, floor_col, T)
    # foam on the shore line
    foam = (1 - _smooth(0.05, 0.6, depth_w + 0.3 * nz[12])) * 0.8
    refr = torch.lerp(refr, light * 0.75, foam[:, None])
    # sun glitter: microfacet (Beckmann) lobe of the wave slopes about the mean (flat) normal; its
    # roughness grows with the footprint, which stretches it into a glitter path towards the sun
    hv = sun - d
    hv = hv / hv.norm(dim=-1, keepdim=True)
    ch = (-hv[:, 1]).clamp(1e-3, 1.0)
    alpha = 0.05 + 0.06 * (fp / (fp + 3.0))
    tan2 = (1 - ch * ch) / (ch * ch)
    D = torch.exp(-tan2 / (alpha * alpha)) / (math.pi * alpha * alpha * ch.pow(4))
    cos_v = (-d[:, 1]).clamp_min(0.02)
    fh = 0.02 + 0.98 * (1 - (hv @ sun).clamp(0, 1)).pow(5)
    glint = (nz[13] * 3.5 - 0.3).clamp(0, 1)
    sparkle = 0.08 + 0.92 * glint
    spec = (D * fh / (4 * cos_v.clamp_min(0.15)) * max(-a.sun_dir[1], 0.0)).clamp_max(2.5) * sparkle * 0.6
    return torch.lerp(refr, refl, fres[:, None]) + _vec(a.sun_color, dev) * spec[:, None]


def _shade_trees(field: Field, p: Tensor, d: Tensor, hit: TreeHit, shadows: int, clock: _Clock) -> Tensor:
    """Radiance [M, 3] of standing-tree points p [M, 3] seen along d [M, 3]; `hit` the TreeHit of
    these M rays (bark on trunks, clumped foliage on crowns, sun with the trees' shadows unless
    `shadows` is 0, sky light dimmed under the canopy)."""
    w = field.w
    pal, a = w.palette, w.atmosphere
    dev = p.device
    V = lambda c: _vec(c, dev)  # noqa: E731
    n, part, tint, loc = hit.normal, hit.part, hit.tint, hit.local
    trunk = (part == 1)[:, None]
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    # (the texture's features are about 100 texels wide: a scale of 0.005 m per texel gives 0.5-m clumps)
    nz = field.noise([
        (loc[:, 0], loc[:, 1] * 0.1, 0.0015, 21.0),  # bark: vertical streaks
        (loc[:, 0], loc[:, 1], 0.006, 23.0),  # bark: patches
        # foliage: leaf clumps, the sum of three planar projections (no direction is special)
        (x, z, 0.004, 31.0), (x, y, 0.004, 33.0), (z, y, 0.004, 35.0),
        (x - y, z + 0.3 * y, 0.025, 37.0),  # foliage: larger clumps
        (x, y, 0.005, 41.0), (z, y, 0.005, 43.0), (x, z, 0.005, 45.0),  # the clumps' tilt (lighting)
    ])
    bark = torch.lerp(V(pal.dirt) * 0.55, V(pal.rock) * 0.45, tint[:, None])
    bark = bark * (0.75 + 0.35 * nz[0] + 0.2 * nz[1])[:, None]
    leaf = torch.lerp(V(pal.forest), V(pal.forest_alt), _smooth(0.2, 0.8, tint + 0.3 * nz[5])[:, None])
    clump = 0.5 + 0.8 * (nz[2] + nz[3] + nz[4]) + 0.5 * nz[5]
    leaf = leaf * (0.3 + 0.9 * clump.clamp(0, 1.3))[:, None]
    if w.conifer:  # whorls of branches: bands down the cone
        leaf = leaf * (0.85 + 0.15 * torch.sin(loc[:, 1] * (2 * math.pi / 1.2) + 2.0 * nz[5]))[:, None]
    col = torch.where(trunk, bark, leaf)
    # leaf clumps face every way: tilt the crown's normal by the clump pattern
    tilt = torch.stack([nz[6], nz[7], nz[8]], -1) * 1.5
    n = torch.where(trunk, n, n + tilt)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    n_up = -n[:, 1]
    sun_v = V(a.sun_dir)
    ndl = n @ sun_v
    # foliage scatters light round its edge (wrapped diffuse); bark is plain Lambert
    diffuse = torch.where(trunk[:, 0], ndl.clamp_min(0), ((ndl + 0.45) / 1.45).clamp_min(0))
    vis = torch.ones_like(ndl)
    if shadows > 0:
        with clock.stage("shadows"):
            idx = (diffuse > 0).nonzero().squeeze(1)
            if idx.numel():
                blocked = occluded(tree_specs(w), field, p[idx] + 0.05 * n[idx], sun_v.expand(idx.numel(), 3))
                vis[idx] = torch.where(blocked, 0.2, 1.0)
    inner = torch.where(trunk[:, 0], torch.full_like(n_up, 0.75), 0.5 + 0.4 * (0.5 + 0.5 * n_up))
    light = V(a.sun_color) * (diffuse * vis)[:, None] + _sky_ambient(w, dev) * (inner * 0.9)[:, None]
    return col * light


def _tonemap(x: Tensor) -> Tensor:
    """ACES filmic curve (Narkowicz fit), then sRGB-like gamma; [..., 3] -> [0, 1]."""
    x = x.clamp_min(0)
    y = (x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14)
    return y.clamp(0, 1).pow(1 / 2.2)


# ---------------------------------------------------------------------------------------------
# public API


def _shade(field: Field, o: Tensor, d: Tensor, t: Tensor, pix: Tensor, s: RenderSettings, clock: _Clock,
           trees: TreeHit | None = None) -> Tensor:
    """Linear radiance [R, 3] of rays o, d [R, 3] that met the surface at t [R] (inf = sky); pix [R] rad/pixel.
    `trees`: where rays met a standing tree first (its t replaces the ground's)."""
    world = field.w
    dev = o.device
    rad = torch.zeros(o.shape[0], 3, device=dev)
    if trees is not None:
        on = (trees.part > 0).nonzero().squeeze(1)
        if on.numel():
            sub = TreeHit(*(getattr(trees, k)[on] for k in ("t", "part", "normal", "tint", "local")))
            oh, dh = o[on], d[on]
            col = _shade_trees(field, torch.addcmul(oh, sub.t[:, None], dh), dh, sub, s.shadow_steps, clock)
            rad[on] = _fog(world, oh, dh, sub.t, col)
            t = t.clone()
            t[on] = math.nan  # neither sky nor ground below
    sky = torch.isinf(t)
    sky_ids = sky.nonzero().squeeze(1)
    if sky_ids.numel():
        rad[sky_ids] = _sky(field, o[sky_ids], d[sky_ids])
    hit_ids = torch.isfinite(t).nonzero().squeeze(1)
    if hit_ids.numel():
        th = t[hit_ids]
        oh, dh = o[hit_ids], d[hit_ids]
        p = torch.addcmul(oh, th[:, None], dh)
        fp = th * pix[hit_ids] / (-dh[:, 1]).abs().clamp_min(0.25)
        if world.water:
            is_water = field.ground(p[:, 0], p[:, 2]) < 0
            g = (~is_water).nonzero().squeeze(1)
            wi = is_water.nonzero().squeeze(1)
        else:
            g, wi = None, hit_ids[:0]
        if g is None:
            col = _shade_ground(field, p, dh, fp, s.shadow_steps, clock, s.compile)
        else:
            col = torch.zeros_like(p)
            if g.numel():
                col[g] = _shade_ground(field, p[g], dh[g], fp[g], s.shadow_steps, clock, s.compile)
            if wi.numel():
                col[wi] = _shade_water(field, oh[wi], p[wi], dh[wi], fp[wi], s, clock)
        rad[hit_ids] = _fog(world, oh, dh, th, col)
    return rad


@torch.no_grad()
def render_views(
    world: World,
    c2w: Tensor,
    K: Tensor,
    width: int,
    height: int,
    settings: RenderSettings | None = None,
    *,
    stats: dict | None = None,
) -> SynthRender:
    """Render B views of `world` at once.

    Args:
        world: the landscape (its device is used).
        c2w: [B, 4, 4] (or [4, 4]) camera-to-world poses, OpenCV axes (+x right, +y down, +z forward).
        K: [B, 3, 3] or [3, 3] pixel intrinsics, pixel centres at +0.5.
        width, height: image size W, H.
        settings: quality knobs (default RenderSettings(), the "full" quality; see QUALITY).
        stats: if a dict, it receives per-stage seconds (`march_s`, `shadows_s`, `reflections_s`,
            `shading_s`; the device is synchronised around each stage, which costs a little) and
            march counters (`iterations`, `points`, `rays`, `refined`).

    Returns:
        SynthRender with rgb [B, H, W, 3] in [0, 1], z-depth [B, H, W] (inf = sky), sky [B, H, W].
        Every pixel depends only on its own ray, so a view renders the same alone or in any batch.
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
    field = Field(world)
    clock = _Clock(stats, dev)
    per = max(1, s.max_rays // max(1, width * height))  # views per chunk
    parts = []
    for a in range(0, B, per):
        b = min(B, a + per)
        parts.append(_render_chunk(field, c2w[a:b], K[a:b], width, height, s, clock, stats))
    if len(parts) == 1:
        return parts[0]
    return SynthRender(*(torch.cat([getattr(p, k) for p in parts]) for k in ("rgb", "depth", "sky")))


def _render_chunk(
    field: Field, c2w: Tensor, K: Tensor, width: int, height: int, s: RenderSettings, clock: _Clock, stats: dict | None
) -> SynthRender:
    """render_views for one chunk of views (c2w [B, 4, 4], K [B, 3, 3])."""
    dev = c2w.device
    B = c2w.shape[0]
    with clock.stage("shading"):
        # camera-space rays with z = 1, per view: [B, H, W, 3]; world directions without a matmul,
        # so each ray is computed the same way whatever the batch
        vv = torch.arange(height, device=dev, dtype=torch.float32) + 0.5
        uu = torch.arange(width, device=dev, dtype=torch.float32) + 0.5
        xc = (uu[None, None, :] - K[:, 0, 2, None, None]) / K[:, 0, 0, None, None]  # [B, 1, W]
        yc = (vv[None, :, None] - K[:, 1, 2, None, None]) / K[:, 1, 1, None, None]  # [B, H, 1]
        norm = torch.sqrt(xc * xc + yc * yc + 1.0)  # [B, H, W] |d_cam| with z = 1: z-depth = t / norm
        Rm = c2w[:, None, None, :3, :3]
        dw = (Rm[..., 0] * xc[..., None] + Rm[..., 1] * yc[..., None] + Rm[..., 2]) / norm[..., None]
        d = dw.reshape(-1, 3).contiguous()
        o = c2w[:, None, None, :3, 3].expand(B, height, width, 3).reshape(-1, 3).contiguous()
    with clock.stage("march"):
        t = march(field, o, d, s.march_params(), 0.3, s.far, stats)
    trees = None
    if field.w.standing:
        with clock.stage("trees"):
            trees = trace(tree_specs(field.w), field, o, d, torch.where(torch.isfinite(t), t, s.far))
            t = torch.where(trees.part > 0, trees.t, t)
    with clock.stage("shading"):
        pix = (1.0 / K[:, 0, 0])[:, None, None].expand(B, height, width).reshape(-1)  # radians per pixel
        rad = _shade(field, o, d, t, pix, s, clock, trees)
        rgb = _tonemap(rad * field.w.atmosphere.exposure).reshape(B, height, width, 3)
        sky = ~torch.isfinite(t).reshape(B, height, width)
        depth = torch.where(sky, math.inf, t.reshape(B, height, width) / norm)
    return SynthRender(rgb=rgb, depth=depth, sky=sky)


@torch.no_grad()
def march_rays(world: World, o: Tensor, d: Tensor, settings: RenderSettings | None = None) -> Tensor:
    """Distance [R] along unit world rays d [R, 3] from origins o [R, 3] to the surface (+inf: sky).

    The primary-ray march of `render_views` (standing trees included), exposed for arbitrary (e.g.
    sub-pixel) rays.
    """
    s = settings or RenderSettings()
    dev = world.device
    field = Field(world)
    o, d = o.to(dev, torch.float32), d.to(dev, torch.float32)
    t = march(field, o, d, s.march_params(), 0.3, s.far)
    if world.standing:
        trees = trace(tree_specs(world), field, o, d, torch.where(torch.isfinite(t), t, s.far))
        t = torch.where(trees.part > 0, trees.t, t)
    return t


def render_frame(world: World, camera: Camera, settings: RenderSettings | None = None) -> Frame:
    """Render one `Camera` view of `world` as a worldgen `Frame` (rgb [H, W, 3], depth [H, W], sky [H, W])."""
    r = render_views(world, camera.c2w[None], camera.K, camera.width, camera.height, settings)
    return Frame(rgb=r.rgb[0], depth=r.depth[0], sky=r.sky[0], camera=camera.to(world.device))
