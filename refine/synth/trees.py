"""Standing trees: trunks and crowns as real 3D objects, for views from the forest floor.

A `World`'s trees are normally tree-crown bumps of its height field (terrain.py): right from a drone,
but from the ground a height field has no trunks and no sky under the crowns, so the project's
frames never showed what most forest photos show -- upright trunks at one depth from bottom to top,
crowns overhead with sky between them. The depth network learned instead that higher in the image
is farther, and over real forest photos the trees lean back as ramps (issue 10).

`standing_world(world)` is the same landscape with the crown bumps removed from the height field and
trees standing on it instead: one tree per cell of a square grid (`TreeSpec.cell` metres) where a
hash of the cell says so with the probability of the world's forest density there. A tree is a
vertical cylinder (the trunk, from 1 m below its ground point up into the crown) and an ellipsoid
(the crown: a cone with its base disc in conifer worlds, an ellipsoid in broadleaf ones). Each tree lies inside
its own cell (the jitter keeps a crown radius from the cell's sides), so a ray meets trees cell by
cell in the order it crosses cells (a 2D DDA over the grid) and the first hit found is the nearest:
`trace` is exact for this geometry, with no marching. Two layers of trees on grids offset from
each other (the canopy, and younger trees on a finer grid) let crowns overlap and trunks stand at
every distance. Every tree property is a function of its
cell's integer coordinates and the world's seed (an integer hash), so a tree is the same in every
view, batch and device, and depth stays exact for multi-view tests and training targets.

Conventions: worldgen/core/camera.py (world up = -y: altitude = -y); lengths in metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from refine.synth.march import Field
from refine.synth.terrain import World

_MASK = 0xFFFFFFFF


@dataclass(frozen=True)
class TreeSpec:
    """The standing trees of one world (all lengths in metres).

    Attributes:
        cell: side of the square grid cells; at most one tree per cell.
        density: probability of a tree in a cell is density x the world's forest density there.
        height: range of tree heights (ground to crown top).
        trunk: range of trunk radii.
        crown_r: crown radius as a share of the tree height (capped by the cell: see `crown_cap`).
        crown_h: crown half-height as a share of the tree height (a cone is twice this tall).
        conifer: cone crowns (True) or ellipsoids.
        salt: seed of the hash (from the world's seed).
        offset: the grid's origin (metres, along x and z), so that layers' cells do not line up.
    """

    cell: float
    density: float
    height: tuple[float, float]
    trunk: tuple[float, float]
    crown_r: tuple[float, float]
    crown_h: tuple[float, float]
    conifer: bool
    salt: int
    offset: float = 0.0

    @property
    def crown_cap(self) -> float:
        """Largest crown radius: the tree must stay inside its cell (0.42 of the side)."""
        return 0.42 * self.cell

    @property
    def top_max(self) -> float:
        return self.height[1]


def tree_specs(world: World) -> tuple[TreeSpec, TreeSpec]:
    """The two layers of trees `standing_world` puts in `world` (a function of its seed and climate):
    the canopy, and younger trees on a finer grid offset from it, so crowns overlap and trunks stand
    at every distance."""
    import random

    rng = random.Random(f"worldgen-trees-{world.seed}")
    con = world.conifer
    cell = rng.uniform(5.0, 8.0) if con else rng.uniform(6.0, 9.5)
    h = (rng.uniform(9.0, 14.0), rng.uniform(18.0, 28.0)) if con else (rng.uniform(7.0, 11.0), rng.uniform(14.0, 22.0))
    canopy = TreeSpec(
        cell=cell, density=rng.uniform(0.65, 0.95), height=h, trunk=(0.12, rng.uniform(0.3, 0.5)),
        crown_r=(0.14, 0.22) if con else (0.24, 0.34), crown_h=(0.33, 0.42) if con else (0.2, 0.28),
        conifer=con, salt=rng.randrange(1 << 30),
    )
    young = replace(canopy, cell=cell * rng.uniform(0.6, 0.8), density=canopy.density * rng.uniform(0.35, 0.7),
                    height=(0.4 * h[0], 0.65 * h[1]), trunk=(0.06, 0.2), salt=rng.randrange(1 << 30),
                    offset=cell * rng.uniform(0.3, 0.7))
    return canopy, young


def standing_world(world: World) -> World:
    """`world` with its tree-crown bumps taken out of the height field and standing trees instead
    (World.standing True; `render_views` then traces them). The terrain, materials and sky are the same."""
    if world.standing:
        return world
    fine = world.fine.clone()
    fine[..., 1] = 0.0
    return replace(world, fine=fine, standing=True)


def winter_world(world: World) -> World:
    """A standing-tree world (`standing_world`) in winter: 60-100 % of its forest floor under snow (a function of
    the world's seed), so that trunks stand dark against a bright ground, as in a photo of a snowy pine wood --
    the scene every depth network so far read with bright meaning far (Creek, docs/depth.md). Crowns keep their
    colour; only `Palette.floor_snow` changes (render.py draws the snow)."""
    if not world.standing:
        raise ValueError("winter_world needs a world with standing trees (standing_world)")
    share = 0.6 + 0.4 * ((world.seed * 2654435761 + 12345) % 10007) / 10006
    return replace(world, palette=replace(world.palette, floor_snow=share))


# ------------------------------------------------------------------------------------ the trees


def _hashes(ix: Tensor, iz: Tensor, salt: int, n: int) -> list[Tensor]:
    """n uniform [0, 1) float32 tensors of int64 cell coordinates (any shape), the same on every device:
    one full mix of (ix, iz, salt), then one xorshift-multiply round per output."""
    h = ((ix * 73856093) ^ (iz * 19349663) ^ ((salt * 83492791) & _MASK)) & _MASK
    for _ in range(2):
        h = ((h >> 16) ^ h) * 0x45D9F3B & _MASK
    out = []
    for k in range(n):
        g = (h ^ ((k + 1) * 0x9E3779B9 & _MASK)) * 0x45D9F3B & _MASK
        g = (g >> 16) ^ g
        out.append((g & 0xFFFFFF).to(torch.float32) / float(1 << 24))
    return out


@dataclass
class Trees:
    """The trees of cells (ix, iz) [R] (see `trees_at`); all [R] float32 unless said.

    Attributes:
        present: [R] bool, a tree stands in the cell.
        x, z: trunk axis. ground: altitude of the trunk's ground point.
        r: trunk radius. cy: altitude of the crown centre. rx, ry: crown radius and half-height.
        tint: 0..1 per-tree colour variation.
    """

    present: Tensor
    x: Tensor
    z: Tensor
    ground: Tensor
    r: Tensor
    cy: Tensor
    rx: Tensor
    ry: Tensor
    tint: Tensor


def trees_at(spec: TreeSpec, field: Field, ix: Tensor, iz: Tensor) -> Trees:
    """The tree of each cell (ix, iz) [R] int64 (present or not)."""
    u = _hashes(ix, iz, spec.salt, 8)
    lerp = lambda r, t: r[0] + (r[1] - r[0]) * t  # noqa: E731
    height = lerp(spec.height, u[3])
    rx = (lerp(spec.crown_r, u[4]) * height).clamp(max=spec.crown_cap)
    ry = lerp(spec.crown_h, u[5]) * height
    m = rx + 0.05  # the crown stays inside the cell
    x = spec.offset + (ix.to(torch.float32) * spec.cell) + m + (spec.cell - 2 * m) * u[1]
    z = spec.offset + (iz.to(torch.float32) * spec.cell) + m + (spec.cell - 2 * m) * u[2]
    ground, forest = field.ground_forest_xz(torch.stack([x, z], -1))
    present = (u[0] < spec.density * forest) & (ground > 0.5 if field.water else torch.ones_like(forest, dtype=torch.bool))
    r = lerp(spec.trunk, u[6]) * (0.6 + 0.4 * height / spec.height[1])
    return Trees(present=present, x=x, z=z, ground=ground, r=r, cy=ground + height - ry, rx=rx, ry=ry, tint=u[7])


@dataclass
class TreeHit:
    """Where rays meet standing trees (all [R]).

    Attributes:
        t: distance along the ray (+inf: no tree before the limit).
        part: 0 none, 1 trunk, 2 crown, 3 a conifer crown's base disc (int64).
        normal: [R, 3] unit outward normal (world axes).
        tint: the tree's colour variation 0..1.
        local: [R, 2] (angle around the trunk axis in metres of bark, altitude above the tree's ground)
            for bark and foliage patterns.
    """

    t: Tensor
    part: Tensor
    normal: Tensor
    tint: Tensor
    local: Tensor


def _ellipsoid(tr: Trees, px: Tensor, pz: Tensor, alt: Tensor, dx: Tensor, dz: Tensor, da: Tensor,
               t_lo: Tensor) -> Tensor:
    """Nearest t >= t_lo [R] (+inf: none) of rays (origin offset px, pz from the axis, altitude alt;
    direction dx, dz and da = altitude per metre) with the crown ellipsoid (rx, ry, rx) around cy."""
    qx, qy, qz = px / tr.rx, (alt - tr.cy) / tr.ry, pz / tr.rx
    ex, ey, ez = dx / tr.rx, da / tr.ry, dz / tr.rx
    a = ex * ex + ey * ey + ez * ez
    b = qx * ex + qy * ey + qz * ez
    c = qx * qx + qy * qy + qz * qz - 1.0
    disc = b * b - a * c
    t = (-b - disc.clamp_min(0).sqrt()) / a
    return torch.where((disc > 0) & (t >= t_lo), t, torch.full_like(t, math.inf))


def _cone(tr: Trees, px: Tensor, pz: Tensor, alt: Tensor, dx: Tensor, dz: Tensor, da: Tensor,
          t_lo: Tensor) -> tuple[Tensor, Tensor]:
    """As `_ellipsoid` for a conifer's crown: a cone with its apex at cy + ry and a base disc of radius
    rx at cy - ry (the disc is what a camera under the tree sees). Also returns [R] bool: the hit is on
    the disc."""
    inf = torch.full_like(px, math.inf)
    apex = tr.cy + tr.ry
    k = tr.rx / (2 * tr.ry)
    u0 = apex - alt  # depth below the apex at t = 0; u(t) = u0 - t da
    k2 = k * k
    a = dx * dx + dz * dz - k2 * da * da
    b = 2 * (px * dx + pz * dz + k2 * u0 * da)
    c = px * px + pz * pz - k2 * u0 * u0
    disc = b * b - 4 * a * c
    root = disc.clamp_min(0).sqrt()
    safe_a = torch.where(a.abs() > 1e-12, a, torch.full_like(a, 1e-12))
    best = inf
    for t in ((-b - root) / (2 * safe_a), (-b + root) / (2 * safe_a)):
        u = u0 - t * da
        ok = (disc >= 0) & (t >= t_lo) & (u >= 0) & (u <= 2 * tr.ry)
        best = torch.minimum(best, torch.where(ok, t, inf))
    safe_da = torch.where(da.abs() > 1e-9, da, torch.ones_like(da))
    tb = (apex - 2 * tr.ry - alt) / safe_da  # the base disc
    qx, qz = px + tb * dx, pz + tb * dz
    ok = (da.abs() > 1e-9) & (tb >= t_lo) & (qx * qx + qz * qz <= tr.rx * tr.rx)
    tb = torch.where(ok, tb, inf)
    return torch.minimum(best, tb), tb < best


def _hit_cells(spec: TreeSpec, field: Field, o: Tensor, d: Tensor, ix: Tensor, iz: Tensor, t_lo: Tensor):
    """Nearest hit (t [R], part [R] as TreeHit.part, tree Trees) of rays o, d [R, 3] with the tree of cell
    (ix, iz), t >= t_lo."""
    tr = trees_at(spec, field, ix, iz)
    inf = torch.full_like(t_lo, math.inf)
    # trunk: vertical cylinder around (x, z), altitude from ground - 1 to the crown centre
    px, pz = o[:, 0] - tr.x, o[:, 2] - tr.z
    dx, dz = d[:, 0], d[:, 2]
    a = (dx * dx + dz * dz).clamp_min(1e-12)
    b = px * dx + pz * dz
    cc = px * px + pz * pz - tr.r * tr.r
    disc = b * b - a * cc
    t1 = (-b - disc.clamp_min(0).sqrt()) / a
    alt1 = -(o[:, 1] + t1 * d[:, 1])
    ok1 = tr.present & (disc > 0) & (t1 >= t_lo) & (alt1 >= tr.ground - 1.0) & (alt1 <= tr.cy)
    t_trunk = torch.where(ok1, t1, inf)
    if spec.conifer:
        t_crown, disc = _cone(tr, px, pz, -o[:, 1], dx, dz, -d[:, 1], t_lo)
    else:
        t_crown, disc = _ellipsoid(tr, px, pz, -o[:, 1], dx, dz, -d[:, 1], t_lo), None
    t_crown = torch.where(tr.present, t_crown, inf)
    crown = t_crown < t_trunk
    t = torch.minimum(t_trunk, t_crown)
    crown_part = 2 if disc is None else torch.where(disc, 3, 2)
    part = torch.where(torch.isfinite(t), torch.where(crown, crown_part, 1), 0)
    return t, part, tr


def trace_layer(spec: TreeSpec, field: Field, o: Tensor, d: Tensor, t_max: Tensor, cells: int = 64,
                t_min: float = 0.0) -> TreeHit:
    """First tree of one layer along rays o, d [R, 3] (d unit) between t_min and t_max [R] (+inf allowed).

    Walks the layer's grid cell by cell along each ray's horizontal projection (at most `cells` cells:
    trees farther away along the ground are not drawn; 64 cells are 250-600 m). Exact: the first hit
    found is the nearest, because a tree never leaves its cell. Returns TreeHit ([R] each)."""
    R = o.shape[0]
    dev = o.device
    s = spec.cell
    ix = torch.floor((o[:, 0] - spec.offset) / s).long()
    iz = torch.floor((o[:, 2] - spec.offset) / s).long()
    dx, dz = d[:, 0], d[:, 2]
    step_x = torch.where(dx >= 0, 1, -1)
    step_z = torch.where(dz >= 0, 1, -1)
    big = torch.full_like(dx, math.inf)
    safe_dx = torch.where(dx.abs() > 1e-9, dx, torch.ones_like(dx))
    safe_dz = torch.where(dz.abs() > 1e-9, dz, torch.ones_like(dz))
    next_x = (ix + (step_x > 0).long()).to(torch.float32) * s + spec.offset
    next_z = (iz + (step_z > 0).long()).to(torch.float32) * s + spec.offset
    tmx = torch.where(dx.abs() > 1e-9, (next_x - o[:, 0]) / safe_dx, big)
    tmz = torch.where(dz.abs() > 1e-9, (next_z - o[:, 2]) / safe_dz, big)
    tdx = torch.where(dx.abs() > 1e-9, s / safe_dx.abs(), big)
    tdz = torch.where(dz.abs() > 1e-9, s / safe_dz.abs(), big)
    best_t = torch.full((R,), math.inf, device=dev)
    best_part = torch.zeros(R, dtype=torch.long, device=dev)
    best_ix, best_iz = ix.clone(), iz.clone()
    # the rays still walking, compacted: float columns (o 0-2, d 3-5, tmx 6, tmz 7, tdx 8, tdz 9, t_max 10)
    # and integer columns (ray index 0, ix 1, iz 2, step_x 3, step_z 4); two gathers an iteration
    F = torch.cat([o, d, torch.stack([tmx, tmz, tdx, tdz, t_max.to(o.dtype)], 1)], 1)
    L = torch.stack([torch.arange(R, device=dev), ix, iz, step_x.long(), step_z.long()], 1)
    t_lo = torch.full((R,), float(t_min), device=dev)
    for k in range(cells):
        if L.shape[0] == 0:
            break
        idx = L[:, 0]
        t, part, _ = _hit_cells(spec, field, F[:, 0:3], F[:, 3:6], L[:, 1], L[:, 2], t_lo[: L.shape[0]])
        hit = (t < F[:, 10]) & (part > 0)
        hi = idx[hit]
        best_t[hi], best_part[hi] = t[hit], part[hit]
        best_ix[hi], best_iz[hi] = L[hit, 1], L[hit, 2]
        # step to the next cell
        gx = F[:, 6] < F[:, 7]
        t_enter = torch.where(gx, F[:, 6], F[:, 7])
        L[:, 1] = torch.where(gx, L[:, 1] + L[:, 3], L[:, 1])
        L[:, 2] = torch.where(gx, L[:, 2], L[:, 2] + L[:, 4])
        F[:, 6] = torch.where(gx, F[:, 6] + F[:, 8], F[:, 6])
        F[:, 7] = torch.where(gx, F[:, 7], F[:, 7] + F[:, 9])
        go = ~hit & (t_enter < F[:, 10]) & torch.isfinite(t_enter)
        F, L = F[go], L[go]
    # normals and pattern coordinates at the hits
    normal = torch.zeros(R, 3, device=dev)
    local = torch.zeros(R, 2, device=dev)
    tint = torch.zeros(R, device=dev)
    h = (best_part > 0).nonzero().squeeze(1)
    if h.numel():
        tr = trees_at(spec, field, best_ix[h], best_iz[h])
        p = o[h] + best_t[h, None] * d[h]
        px, pz = p[:, 0] - tr.x, p[:, 2] - tr.z
        alt = -p[:, 1]
        trunk = best_part[h] == 1
        rr = torch.sqrt(px * px + pz * pz).clamp_min(1e-6)
        n_trunk = torch.stack([px / rr, torch.zeros_like(px), pz / rr], -1)
        if spec.conifer:  # the cone's side, or its base disc (facing down)
            k = tr.rx / (2 * tr.ry)
            base = best_part[h] == 3
            n_side = torch.stack([px / rr, k * torch.ones_like(px), pz / rr], -1)  # outward and up (-y)
            n_side = torch.stack([n_side[:, 0], -n_side[:, 1], n_side[:, 2]], -1)
            n_crown = torch.where(base[:, None], torch.tensor([0.0, 1.0, 0.0], device=dev), n_side)
        else:
            gy = (alt - tr.cy) / (tr.ry * tr.ry)
            n_crown = torch.stack([px / (tr.rx * tr.rx), -gy, pz / (tr.rx * tr.rx)], -1)
        n_crown = n_crown / n_crown.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        normal[h] = torch.where(trunk[:, None], n_trunk, n_crown)
        local[h] = torch.stack([torch.atan2(pz, px) * torch.where(trunk, tr.r, tr.rx), alt - tr.ground], -1)
        tint[h] = tr.tint
    return TreeHit(t=best_t, part=best_part, normal=normal, tint=tint, local=local)


def trace(specs: tuple[TreeSpec, ...], field: Field, o: Tensor, d: Tensor, t_max: Tensor, cells: int = 64,
          t_min: float = 0.0) -> TreeHit:
    """The nearest standing tree of any layer (`trace_layer` each) along rays o, d [R, 3]; TreeHit ([R] each).
    Each layer walks only up to the nearest hit of the layers before it."""
    best = None
    for spec in specs:
        limit = t_max if best is None else torch.minimum(t_max, best.t)
        hit = trace_layer(spec, field, o, d, limit, cells, t_min)
        if best is None:
            best = hit
            continue
        near = hit.t < best.t
        best = TreeHit(t=torch.where(near, hit.t, best.t), part=torch.where(near, hit.part, best.part),
                       normal=torch.where(near[:, None], hit.normal, best.normal),
                       tint=torch.where(near, hit.tint, best.tint), local=torch.where(near[:, None], hit.local, best.local))
    return best


def occluded(specs: tuple[TreeSpec, ...], field: Field, p: Tensor, d: Tensor, cells: int = 12) -> Tensor:
    """[R] bool: the ray from points p [R, 3] along unit d [R, 3] (e.g. towards the sun) meets a tree
    within `cells` grid cells of any layer (the trees' shadows)."""
    t_max = torch.full((p.shape[0],), math.inf, device=p.device)
    return trace(specs, field, p, d, t_max, cells=cells, t_min=0.05).part > 0
