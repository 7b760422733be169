"""Geometry core of the procedural renderer: grid lookups, ray marching, root refinement, shadows.

Everything here is a short, fixed sequence of whole-tensor ops per march iteration, because on a
GPU the eager renderer is launch-bound (each torch op costs ~10-20 us of host time whatever its
size): the cost of a batch is about (ops per iteration) x (iterations) + shading, nearly
independent of the number of rays. So:

- lookups are one `grid_sample` for the coarse and the fine grid together (bilinear, periodic
  through a one-texel wrap pad), not per-corner gathers;
- the march state is (t, t_prev) per ray: a ray that finished (crossed the surface or left the
  scene) keeps its state, so "active" needs no bookkeeping and finished rays are dropped only every
  `compact_every` iterations (one host sync each);
- after `spec_after` iterations the few rays left test 2, 4, ... up to `spec` points per iteration
  (speculative steps, each certified by the safe step of the point before), which cuts the long
  tail of grazing rays from hundreds of iterations to a few dozen;
- crossings are refined by regula falsi (Illinois): 6 steps instead of 14 bisections.

`RenderSettings.compile` runs the loops below as torch.compile'd kernels on CUDA (`_Kernel`).

The surface is exactly the function `Field.surface` (also `render.surface_height`): a crossing is
refined to where the ray meets that function, so depth is exact for the rendered geometry.

Conventions: world up = -y (altitude = -y), x and z span the ground, distances in metres.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from refine.synth.terrain import World


@functools.lru_cache(maxsize=4096)
def const(values: float | tuple[float, ...], device: torch.device) -> Tensor:
    """A float32 constant (0-d or 1-d) on `device`, made once: `torch.tensor(..., device=cuda)` copies
    from pageable host memory, which synchronises the device every time. Never modify the result."""
    return torch.tensor(values, dtype=torch.float32).to(device)


def _wrap_pad(g: Tensor) -> Tensor:
    """[C, N, N] periodic grid -> [C, N + 1, N + 1] with row/column N = row/column 0."""
    return F.pad(g[None], (0, 1, 0, 1), mode="circular")[0]


def _sample(grids: Tensor, scale: Tensor, xz: Tensor) -> Tensor:
    """Bilinear periodic lookup of G grids at the same world points.

    grids: [G, C, N + 1, N + 1] wrap-padded (texel (i, j) at world (x, z) = (j, i) * cell).
    scale: [G, 1, 1] = 2 / (cell * N), the grid's period mapped to a span of 2.
    xz: [R, 2] world (x, z). Returns [G, C, R].
    """
    # one period -> [0, 2), then [-1, 1) for grid_sample with align_corners (pixel N = pixel 0)
    g = torch.remainder(xz[None] * scale, 2.0).sub_(1.0)  # [G, R, 2]
    out = F.grid_sample(grids, g[:, None], mode="bilinear", padding_mode="border", align_corners=True)
    return out[:, :, 0]


class Field:
    """The world's grids prepared for fast lookups (on the world's device).

    Channels: coarse (c0 height, c2 roughness, c1 forest, env = c0 + c2 + c1 * canopy_max) and fine
    (f0 relief, f1 crown height). The ground is h = c0 + c2 * f0 + c1 * f1 (see terrain.py); env >= h
    everywhere, a smooth upper envelope with terrain-like slopes.
    """

    def __init__(self, world: World):
        self.w = world
        c, f = world.coarse, world.fine
        self.n, self.m = c.shape[0], f.shape[0]
        self.canopy_max = float(f[..., 1].max())
        self.water = world.water
        self.h_max = world.h_max
        dev = c.device
        env = c[..., 0] + c[..., 2] + c[..., 1] * self.canopy_max
        if world.water:  # rays meet max(ground, 0): so must the envelope (interpolating >= 0 values stays >= 0)
            env = env.clamp_min(0.0)
        coarse = _wrap_pad(torch.stack([c[..., 0], c[..., 2], c[..., 1], env], 0))  # [4, n+1, n+1]
        fine = _wrap_pad(torch.stack([f[..., 0], f[..., 1]], 0))  # [2, m+1, m+1]
        sc = 2.0 / (world.cell * self.n)
        sf = 2.0 / (world.fine_cell * self.m)
        if self.n == self.m:  # one grid_sample call for both grids
            fine4 = torch.cat([fine, torch.zeros_like(fine)], 0)
            self.grids = [torch.stack([coarse, fine4], 0).contiguous()]
            self.scales = [const((sc, sf), dev).view(2, 1, 1)]
        else:
            self.grids = [coarse[None].contiguous(), fine[None].contiguous()]
            self.scales = [const((v,), dev).view(1, 1, 1) for v in (sc, sf)]
        self.geo: Geo = (tuple(self.grids), tuple(self.scales), self.water)
        p = world.tex.shape[0]
        self.p = p
        self.tex = _wrap_pad(world.tex[None])[None].contiguous()  # [1, 1, p+1, p+1]

    # -- lookups ------------------------------------------------------------------------------

    def sample(self, xz: Tensor) -> tuple[Tensor, Tensor]:
        """Coarse [4, R] (c0, c2, c1, env) and fine [2+, R] (f0, f1) channels at world xz [R, 2]."""
        if len(self.grids) == 1:
            out = _sample(self.grids[0], self.scales[0], xz)
            return out[0], out[1]
        return _sample(self.grids[0], self.scales[0], xz)[0], _sample(self.grids[1], self.scales[1], xz)[0]

    def surface_env_xz(self, xz: Tensor) -> tuple[Tensor, Tensor]:
        """(surface height [R], envelope [R]) at world xz [R, 2]: what a ray meets, and a bound >= it."""
        return _lookup(self.geo, xz)

    def surface_xz(self, xz: Tensor) -> Tensor:
        """Height [R] of what a ray meets at world xz [R, 2]: ground, or max(ground, 0) with water."""
        return _lookup(self.geo, xz)[0]

    def ground_xz(self, xz: Tensor) -> Tensor:
        """Ground height [R] (m above water, water not clamped) at world xz [R, 2]."""
        return self.ground_forest_xz(xz)[0]

    def ground_forest_xz(self, xz: Tensor) -> tuple[Tensor, Tensor]:
        """(ground height [R] as `ground_xz`, forest density [R] 0..1) at world xz [R, 2], one lookup."""
        c, f = self.sample(xz)
        return torch.addcmul(torch.addcmul(c[0], c[1], f[0]), c[2], f[1]), c[2]

    def ground(self, x: Tensor, z: Tensor) -> Tensor:
        """Ground height [R] at world (x, z) [R]: terrain + relief + tree crowns (water not clamped)."""
        return self.ground_xz(torch.stack([x, z], -1))

    def surface(self, x: Tensor, z: Tensor) -> Tensor:
        """Height [R] of what a ray meets at (x, z) [R]: max(ground, 0) where the world has water."""
        return self.surface_xz(torch.stack([x, z], -1))

    def parts(self, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Ground components at world (x, z) [R]: (base height incl. relief, forest, canopy, rough)."""
        c, f = self.sample(torch.stack([x, z], -1))
        return torch.addcmul(c[0], c[1], f[0]), c[2], c[2] * f[1], c[1]

    def noise(self, pts: list[tuple[Tensor, Tensor, float | Tensor, float]]) -> Tensor:
        """Periodic fractal noise (about -1..1) of the world's texture, several patterns in one lookup.

        pts: per pattern (x [R], z [R], scale, offset): world points, texels of `scale` metres (a
        float or [R]), pattern shifted by (offset, 0.37 * offset) texels. Returns [len(pts), R].
        """
        s2 = 2.0 / self.p  # texels -> a span of 2 per period
        cols = [torch.stack([x * (s2 / sc) + off * s2, z * (s2 / sc) + 0.37 * off * s2], -1) for x, z, sc, off in pts]
        g = torch.stack(cols, 0)  # [S, R, 2]
        g = torch.remainder(g, 2.0).sub_(1.0)
        return F.grid_sample(self.tex, g[None], mode="bilinear", padding_mode="border", align_corners=True)[0, 0]


# ---------------------------------------------------------------------------------------------
# pure tensor functions (what the optional torch.compile path compiles)

Geo = tuple  # (grids: tuple[Tensor, ...], scales: tuple[Tensor, ...], water: bool), see Field.geo


def _lookup(geo: Geo, xz: Tensor) -> tuple[Tensor, Tensor]:
    """(surface height [R], envelope [R]) at world xz [R, 2]."""
    grids, scales, water = geo
    if len(grids) == 1:
        out = _sample(grids[0], scales[0], xz)
        c, f = out[0], out[1]
    else:
        c, f = _sample(grids[0], scales[0], xz)[0], _sample(grids[1], scales[1], xz)[0]
    g = torch.addcmul(torch.addcmul(c[0], c[1], f[0]), c[2], f[1])
    if water:
        g = g.clamp_min(0.0)
    return g, c[3]


def _step(geo: Geo, o: Tensor, d: Tensor, t: Tensor, k: float, lip: float) -> tuple[Tensor, Tensor]:
    """Evaluate points o + t d (o, d [..., 3] broadcast with t [...]): (-gap, safe step), both [...].

    -gap > 0: below the surface. Step: k * (height above the envelope) above it, gap / lip (slope
    bound of crowns and relief) inside the crown/relief layer, and at least a minimum that grows
    with distance (0.05 m + 0.004 t above the envelope, 0.02 m + 0.0008 t inside the layer).
    """
    p = torch.addcmul(o, t[..., None], d)
    surf, env = _lookup(geo, p[..., 0::2].reshape(-1, 2))
    py = p[..., 1]
    ngap = py + surf.view(t.shape)  # altitude = -y, so -gap = y + surface
    q = py + env.view(t.shape)  # -(height above the envelope)
    step = torch.maximum(q * -k, ngap * (-1.0 / lip))
    above = q < 0
    lo = torch.addcmul(torch.where(above, 0.05, 0.02), t, torch.where(above, 0.004, 0.0008))
    return ngap, torch.maximum(step, lo)


def march_chunk(geo: Geo, o: Tensor, d: Tensor, t: Tensor, tp: Tensor, k: float, lip: float, n: int):
    """n march iterations of rays o, d [R, 3] at t [R] (previous sample tp [R]) -> (t, tp, -gap at t).

    A ray below the surface at t stays put (its crossing is bracketed by [tp, t]).
    """
    ngap = t
    for _ in range(n):
        ngap, step = _step(geo, o, d, t, k, lip)
        above = ngap <= 0
        tp = torch.where(above, t, tp)
        t = torch.addcmul(t, step, above)
    return t, tp, ngap


def march_chunk_spec(geo: Geo, o: Tensor, d: Tensor, t: Tensor, tp: Tensor, coef: Tensor, k: float, lip: float, n: int):
    """n speculative march iterations: K = len(coef) points t + coef * sigma per ray (coef = 0..K-1,
    sigma = 0.9 x the ray's last step).

    Point i > 0 counts only if point i - 1 was above the surface and its own safe step reaches
    point i, so a ray only ever moves by certified steps (as in `march_chunk`); it moves to the last
    point reached and then by that point's step. Returns (t, tp, -gap at t) like `march_chunk`.
    """
    ngap = t
    for _ in range(n):
        sigma = (t - tp) * 0.9
        tk = torch.addcmul(t[:, None], sigma[:, None], coef)  # [R, K]
        ng, step = _step(geo, o[:, None], d[:, None], tk, k, lip)
        ok = (ng <= 0) & (step >= sigma[:, None])  # may go on to the next point
        r = torch.cumprod(ok[:, :-1].to(torch.uint8), 1).sum(1, keepdim=True)  # [R, 1] last point reached
        v = torch.stack([step, ng], -1).gather(1, r[..., None].expand(-1, 1, 2))[:, 0]  # [R, 2]
        step_r, ngap = v[:, 0], v[:, 1]
        t_r = torch.addcmul(t, sigma, r[:, 0])
        above = ngap <= 0
        tp = torch.where(above, t_r, torch.where(r[:, 0] > 0, t_r - sigma, tp))
        t = torch.addcmul(t_r, step_r, above)
    return t, tp, ngap


def _ngap(geo: Geo, o: Tensor, d: Tensor, t: Tensor) -> Tensor:
    """-gap [H] (> 0: below the surface) at o + t d (o, d [H, 3], t [H])."""
    p = torch.addcmul(o, t[:, None], d)
    return p[:, 1] + _lookup(geo, p[:, 0::2])[0]


def refine(geo: Geo, o: Tensor, d: Tensor, a: Tensor, b: Tensor, bisect: int, secant: int) -> Tensor:
    """Where rays o + t d ([H, 3]) cross the surface inside brackets a < b [H] (above at a, below at b).

    `bisect` bisections, then `secant` regula-falsi steps (Illinois: an end kept twice in a row has
    its value halved, so both ends converge), then the linear root of the final bracket. Returns t [H].
    """
    fa = _ngap(geo, o, d, a)
    fb = _ngap(geo, o, d, b)
    for _ in range(bisect):
        c = 0.5 * (a + b)
        fc = _ngap(geo, o, d, c)
        below = fc > 0
        a, fa = torch.where(below, a, c), torch.where(below, fa, fc)
        b, fb = torch.where(below, c, b), torch.where(below, fc, fb)
    side = torch.zeros_like(a)
    for _ in range(secant):
        c = torch.lerp(b, a, (fb / (fb - fa)).clamp(0.0, 1.0))  # fa <= 0 < fb
        fc = _ngap(geo, o, d, c)
        below = fc > 0
        fa = torch.where(below & (side > 0), fa * 0.5, fa)
        fb = torch.where(~below & (side < 0), fb * 0.5, fb)
        a, fa = torch.where(below, a, c), torch.where(below, fa, fc)
        b, fb = torch.where(below, c, b), torch.where(below, fc, fb)
        side = below.to(a.dtype) * 2 - 1
    return torch.lerp(b, a, (fb / (fb - fa)).clamp(0.0, 1.0))


def shadow_chunk(
    geo: Geo, p: Tensor, sun: Tensor, t: Tensor, res: Tensor, lims: Tensor, h_max: Tensor, n: int
):
    """n steps of the soft-shadow march from p [M, 3] towards unit `sun` [3]: (t, res) [M].

    res: the largest -gap / distance seen so far (penumbra: closest miss). Step: half the gap,
    between 0.3 m + 0.03 t and 200 m + 0.2 t. Rays above h_max (0-d tensor: as a Python float, torch.compile
    would guard on its value and rebuild the graph for every new world) stop.
    """
    lo0, lo1, hi0, hi1 = lims  # (0.3, 0.03, 200, 0.2) as device scalars
    for _ in range(n):
        q = torch.addcmul(p, t[:, None], sun)
        ngap = q[:, 1] + _lookup(geo, q[:, 0::2])[0]  # -gap
        res = torch.maximum(res, ngap / t)
        step = torch.clamp(ngap * -0.5, min=torch.addcmul(lo0, t, lo1), max=torch.addcmul(hi0, t, hi1))
        t = torch.addcmul(t, step, q[:, 1] >= -h_max)
    return t, res


# ---------------------------------------------------------------------------------------------
# optional torch.compile (CUDA only, opt-in)


COMPILE_DEVICES = ("cuda",)  # where `compile=True` takes effect (tests add "cpu" to check the traced code)


class _Kernel:
    """A chunk of a march, `fn(geo, a, b, x, y, ..., n) -> (x', y', ...)`: n iterations whose first two outputs
    are the state its 4th and 5th arguments carry into the next iteration. Run eagerly (the n iterations
    inside), or, when asked, as a torch.compile'd single iteration called n times (falls back to eager if
    compiling fails). One iteration per graph: a graph of eight unrolled iterations took ~8x as long to
    build (19 s for one, ~3 min for eight on this project's 2-core CPU; four graphs of eight had not been
    built after 200 s on an H200, 2026-12-04), while one iteration already fuses its ~20 ops."""

    def __init__(self, fn):
        self.fn = fn
        self.compiled = None
        self.failed = False

    def __call__(self, use_compile: bool, *args):
        if use_compile and not self.failed and args[-1] >= 1:
            try:
                if self.compiled is None:
                    self.compiled = torch.compile(self.fn, dynamic=True)
                head = list(args[:-1])
                for _ in range(args[-1]):
                    out = self.compiled(*head, 1)
                    head[3], head[4] = out[0], out[1]
                return out
            except Exception as e:  # noqa: BLE001 -- any compiler failure: warn once, run eagerly
                self.failed = True
                msg = " ".join(str(e).split())
                msg = msg if len(msg) < 600 else f"{msg[:200]} ... {msg[-400:]}"
                name = self.fn.__name__
                warnings.warn(f"worldgen: torch.compile of {name} failed, using eager ops ({type(e).__name__}: {msg})")
        return self.fn(*args)


K_MARCH = _Kernel(march_chunk)
K_SPEC = _Kernel(march_chunk_spec)
K_SHADOW = _Kernel(shadow_chunk)
# (`refine` runs eagerly always: once per batch, on the hit rays only, where launches cost little)


# ---------------------------------------------------------------------------------------------
# drivers


@dataclass(frozen=True)
class MarchParams:
    """How `march` steps (see RenderSettings for each knob)."""

    steps: int = 640
    k: float = 0.45
    lip: float = 6.0
    compact_every: int = 8
    spec: int = 32
    spec_after: int = 32
    bisect: int = 0
    secant: int = 6
    compile: bool = False


def spec_points(mp: MarchParams, it: int) -> int:
    """Points per ray per iteration from iteration `it` on: 1 before `spec_after`, then doubling
    every `compact_every` iterations (2, 4, 8, ...) up to `spec` (about as fast as rays finish, so
    the points evaluated per iteration stay roughly constant). Depends on `it` only: every ray is
    marched the same way whatever else is in the batch."""
    if mp.spec <= 1 or it < mp.spec_after:
        return 1
    return min(mp.spec, 2 << ((it - mp.spec_after) // mp.compact_every))


def march(
    field: Field, o: Tensor, d: Tensor, mp: MarchParams, t0: float, far: float, stats: dict | None = None
) -> Tensor:
    """Distance [R] along unit rays d [R, 3] from o [R, 3] to the surface (+inf: none before `far`).

    Every `compact_every` iterations, finished rays are removed (one host sync). A ray still
    marching after `steps` iterations counts as a hit at its last point if that is close to the
    surface (not refined), else as sky. stats (optional): adds iterations, points evaluated, rays.
    """
    R = o.shape[0]
    dev = o.device
    geo = field.geo
    cc = mp.compile and dev.type in COMPILE_DEVICES
    o_all, d_all = o, d
    h_top = field.h_max
    alt0 = -o[:, 1]
    rate = -d[:, 1]  # altitude gained per metre along the ray
    # rays from above the highest surface start where they come down to it; rising rays end there
    t_start = torch.where((alt0 > h_top) & (rate < 0), (alt0 - h_top) / (-rate).clamp_min(1e-12), 0.0).clamp_min(t0)
    never = torch.where((alt0 > h_top) & (rate == 0), -1.0, math.inf)  # level rays above everything: done
    t_end = torch.where(rate > 0, (h_top - alt0) / rate.clamp_min(1e-12), never)
    t_end = t_end.clamp_max(far)
    out = torch.full((R, 2), math.inf, device=dev)  # per ray [lo, hi]: bracket of the crossing
    ids = torch.arange(R, device=dev)
    coefs = {}
    t, tp = t_start, t_start.clone()
    it = n_points = 0
    while it < mp.steps:
        n = min(mp.compact_every, mp.steps - it)
        K = spec_points(mp, it)
        if K > 1:
            if K not in coefs:
                coefs[K] = torch.arange(K, device=dev, dtype=torch.float32)
            t, tp, ngap = K_SPEC(cc, geo, o, d, t, tp, coefs[K], mp.k, mp.lip, n)
            n_points += n * K * t.shape[0]
        else:
            t, tp, ngap = K_MARCH(cc, geo, o, d, t, tp, mp.k, mp.lip, n)
            n_points += n * t.shape[0]
        it += n
        hit = ngap > 0
        done = hit | (t > t_end)
        val = torch.where((hit & (tp <= t_end))[:, None], torch.stack([tp, t], 1), math.inf)
        if it >= mp.steps:  # out of steps: a point close to the surface is accepted as it is
            close = ~done & (ngap > -(0.02 * t + 1.0))
            val = torch.where(close[:, None], t[:, None].expand(-1, 2), val)
            done = torch.ones_like(done)
        out[ids] = val
        keep = (~done).nonzero().squeeze(1)  # host sync
        if keep.numel() == 0:
            break
        if keep.numel() < t.shape[0]:
            ids, o, d, t, tp, t_end = ids[keep], o[keep], d[keep], t[keep], tp[keep], t_end[keep]
    bracketed = out[:, 0] < out[:, 1]
    result = out[:, 1].clone()  # unbracketed: +inf (miss) or the accepted point
    hid = bracketed.nonzero().squeeze(1)
    if stats is not None:
        stats["iterations"] = stats.get("iterations", 0) + it
        stats["points"] = stats.get("points", 0) + n_points
        stats["rays"] = stats.get("rays", 0) + R
        stats["refined"] = stats.get("refined", 0) + int(hid.numel())
    if hid.numel():
        result[hid] = refine(geo, o_all[hid], d_all[hid], out[hid, 0], out[hid, 1], mp.bisect, mp.secant)
    return result


def soft_shadow(
    field: Field, p: Tensor, sun: tuple[float, float, float], steps: int, use_compile: bool = False
) -> Tensor:
    """Sun visibility [M] in [0, 1] from points p [M, 3] towards unit `sun` (penumbra from the closest miss)."""
    M = p.shape[0]
    if steps <= 0 or M == 0:
        return torch.ones(M, device=p.device)
    sun_t = const(tuple(sun), p.device)
    lims = const((0.3, 0.03, 200.0, 0.2), p.device)
    h_max = const(float(field.h_max), p.device)  # (a tensor: a float would be a compile guard, see shadow_chunk)
    t = torch.full((M,), 1.5, device=p.device)
    res = torch.full((M,), -0.1, device=p.device)  # -10 * res <= 1
    cc = use_compile and p.device.type in COMPILE_DEVICES
    for a in range(0, steps, 8):  # chunks of 8 steps (compiled: one graph of one step, called 8 times)
        t, res = K_SHADOW(cc, field.geo, p, sun_t, t, res, lims, h_max, min(8, steps - a))
    v = (-10.0 * res).clamp(0, 1)
    return v * v * (3 - 2 * v)
