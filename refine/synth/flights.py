"""Drone-like camera paths over a `World`: forward flight, smooth turns, climbs and descents.

Besides drone flights (`make_flight`): walks on the forest floor of a standing-tree world (`make_walk`) and
flights low along the floor of a gorge world (`make_gorge_flight`, refine/synth/gorge.py).

A flight is seeded like the world. Heading is a smooth sum of sinusoids; altitude follows the
terrain ahead (a forward-looking maximum of the surface under a disc around the path, smoothed)
plus a seeded clearance, and is finally clamped so the camera always stays at least
`min_clearance` above every surface point (ground, tree crowns or water) within `radius` of it.

Conventions: worldgen/core/camera.py -- c2w poses with OpenCV axes, world up = -y (altitude = -y).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
from torch import Tensor

from refine.synth.gorge import centreline, gorge_spec, gorge_world, half_width
from refine.synth.march import Field
from refine.synth.render import surface_height
from refine.synth.terrain import World
from refine.synth.trees import standing_world, winter_world
from refine.synth.trees import tree_specs, trees_at
from worldgen.core.camera import Camera


@dataclass
class Flight:
    """A camera path.

    Attributes:
        c2w: [T, 4, 4] float32 camera-to-world poses (OpenCV axes), on the CPU.
        K: [3, 3] float32 pixel intrinsics shared by all frames (pixel centres at +0.5).
        width, height: image size W, H.
        params: JSON-ready flight parameters (clearance, speed, fov, pitch, ...).
    """

    c2w: Tensor
    K: Tensor
    width: int
    height: int
    params: dict

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def camera(self, i: int) -> Camera:
        """The Camera of frame i."""
        return Camera(K=self.K, c2w=self.c2w[i], width=self.width, height=self.height)

    def cameras(self) -> list[Camera]:
        return [self.camera(i) for i in range(len(self))]


def poses_from_angles(pos: Tensor, yaw: Tensor, pitch: Tensor, roll: Tensor) -> Tensor:
    """Camera-to-world [T, 4, 4] from positions [T, 3] and angles [T] (radians).

    yaw: heading about world up, 0 = looking along +z, positive turns towards +x.
    pitch: positive looks down. roll: positive rotates the image clockwise (right side down).
    """
    cp, sp = torch.cos(pitch), torch.sin(pitch)
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    f = torch.stack([cp * sy, sp, cp * cy], -1)
    r0 = torch.stack([cy, torch.zeros_like(cy), -sy], -1)
    d0 = torch.linalg.cross(f, r0)
    cr, sr = torch.cos(roll)[:, None], torch.sin(roll)[:, None]
    r = cr * r0 + sr * d0
    d = -sr * r0 + cr * d0
    T = pos.shape[0]
    c2w = torch.zeros(T, 4, 4, dtype=torch.float32)
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = r, d, f, pos
    c2w[:, 3, 3] = 1.0
    return c2w


def _ring_max(world: World, x: Tensor, z: Tensor, radius: float, trees: bool = True) -> Tensor:
    """Max surface height [T] over the centre and 16 points on 2 rings of `radius` around (x, z) [T]
    (with standing trees and `trees`: plus the tallest tree where the forest density is not 0)."""
    xs, zs = [x], [z]
    for rr in (0.5 * radius, radius):
        for k in range(8):
            a = 2 * math.pi * k / 8 + (0.4 if rr == radius else 0.0)
            xs.append(x + rr * math.cos(a))
            zs.append(z + rr * math.sin(a))
    X, Z = torch.stack(xs).to(world.device), torch.stack(zs).to(world.device)
    h = surface_height(world, X, Z)
    if world.standing and trees:
        forest = Field(world).parts(X.reshape(-1), Z.reshape(-1))[1].reshape(X.shape)
        h = h + max(sp.top_max for sp in tree_specs(world)) * (forest > 1e-3)
    return h.max(0).values.cpu()


def make_flight(world: World, frames: int, width: int, height: int, seed: int | None = None) -> Flight:
    """A seeded drone flight of `frames` poses over `world` (seed defaults to the world's).

    The camera is never below the rendered surface: altitude >= surface + min_clearance within
    `radius` metres of every pose (see Flight.params). Returns poses on the CPU.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    seed = world.seed if seed is None else seed
    rng = random.Random(f"worldgen-flight-{seed}")
    clim = world.climate
    lo, hi = {"alpine": (80, 900), "coast": (45, 350), "desert": (60, 500), "forest": (50, 400), "tundra": (50, 450)}[clim]
    clearance = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    speed = clearance * rng.uniform(0.008, 0.03) + rng.uniform(0.2, 1.0)  # m per frame
    fov = rng.uniform(50.0, 78.0)
    pitch0 = math.radians(rng.uniform(3.0, 16.0) + 6.0 * min(1.0, clearance / 600))
    min_clear = max(6.0, 0.35 * clearance)
    radius = max(12.0, 0.4 * min_clear + 10.0)
    look = int(min(400, max(10, math.ceil(max(2.5 * clearance, 150.0) / speed))))
    n = frames + look

    # start: pick among candidate spots by climate
    cand = torch.rand(96, 2, generator=torch.Generator().manual_seed(rng.randrange(2**31))) * (world.coarse.shape[0] * world.cell)
    hc = surface_height(world, cand[:, 0].to(world.device), cand[:, 1].to(world.device)).cpu()
    gc = torch.tensor([0.0])
    if world.water:
        from refine.synth.render import _Field  # ground (not water) height at the candidates

        gc = _Field(world).ground(cand[:, 0].to(world.device), cand[:, 1].to(world.device)).cpu()
    if clim == "coast":
        good = (gc > -60) & (gc < 80)
    elif world.water and rng.random() < 0.5:
        good = (gc > -20) & (gc < 0.35 * float(hc.max()) + 20)  # near lakes and low valleys
    else:
        good = hc > float(hc.min()) + 0.1 * (float(hc.max()) - float(hc.min()))
    ids = good.nonzero().squeeze(1)
    pick = int(ids[rng.randrange(len(ids))]) if len(ids) else rng.randrange(96)
    x0, z0 = float(cand[pick, 0]), float(cand[pick, 1])

    # heading: smooth turns
    i = torch.arange(n, dtype=torch.float64)
    yaw = torch.full((n,), rng.uniform(0, 2 * math.pi), dtype=torch.float64)
    for _ in range(3):
        period = rng.uniform(120.0, 700.0)
        amp = math.radians(rng.uniform(5.0, 40.0)) * min(1.0, period / 300)
        yaw = yaw + amp * torch.sin(2 * math.pi * i / period + rng.uniform(0, 2 * math.pi))
    yaw = yaw + math.radians(rng.uniform(-0.08, 0.08)) * i  # slow constant turn
    step = torch.stack([torch.sin(yaw), torch.cos(yaw)], -1) * speed
    xz = torch.cumsum(step, 0) - step[0] + torch.tensor([x0, z0], dtype=torch.float64)
    x = xz[:, 0].float()
    z = xz[:, 1].float()

    # altitude: follow the terrain ahead, smoothly, never below the clamp
    need = _ring_max(world, x, z, radius).double()
    ahead = torch.stack([need[min(j, n - 1) :][: max(1, look)].max() for j in range(n)])
    sig = max(2.0, look / 4)
    kr = int(3 * sig)
    kk = torch.exp(-0.5 * (torch.arange(-kr, kr + 1, dtype=torch.float64) / sig) ** 2)
    kk = kk / kk.sum()
    padded = torch.cat([ahead[:1].expand(kr), ahead, ahead[-1:].expand(kr)])
    smooth = torch.nn.functional.conv1d(padded[None, None], kk[None, None])[0, 0]
    wobble = 1 + 0.15 * torch.sin(2 * math.pi * i / rng.uniform(150, 500) + rng.uniform(0, 6.3))
    alt = smooth + clearance * wobble
    alt = torch.maximum(alt, need + min_clear)[:frames]

    # attitude: pitch down a little (less when climbing), bank into turns
    ds = speed
    climb = torch.zeros(frames, dtype=torch.float64)
    if frames > 1:
        climb[:-1] = torch.atan((alt[1:] - alt[:-1]) / ds)
        climb[-1] = climb[-2] if frames > 2 else 0.0
    pitch = pitch0 - 0.5 * climb + math.radians(1.5) * torch.sin(2 * math.pi * i[:frames] / rng.uniform(90, 300))
    dyaw = torch.gradient(yaw)[0][:frames] if n > 1 else torch.zeros(frames, dtype=torch.float64)
    roll = (dyaw * rng.uniform(8.0, 25.0)).clamp(-math.radians(6), math.radians(6))
    pos = torch.stack([x[:frames].double(), -alt, z[:frames].double()], -1).float()
    c2w = poses_from_angles(pos, yaw[:frames].float(), pitch.float(), roll.float())
    cam = Camera.from_fov(fov, width, height)
    params = {
        "seed": seed,
        "clearance_m": round(clearance, 2),
        "min_clearance_m": round(min_clear, 2),
        "clearance_radius_m": round(radius, 2),
        "speed_m_per_frame": round(speed, 3),
        "fov_x_deg": round(fov, 2),
        "pitch_deg": round(math.degrees(pitch0), 2),
    }
    return Flight(c2w=c2w, K=cam.K, width=width, height=height, params=params)


def _walk_blocked(world: World, field: Field, x: Tensor, z: Tensor, eye: Tensor) -> Tensor:
    """[T] bool: a camera at (x, z) [T], altitude eye [T], is within 0.5 m of a trunk or 0.4 m of a
    crown (the 3 x 3 tree cells around each point, in every layer)."""
    hit = torch.zeros(x.shape, dtype=torch.bool, device=x.device)
    for spec in tree_specs(world):
        ix0 = torch.floor((x - spec.offset) / spec.cell).long()
        iz0 = torch.floor((z - spec.offset) / spec.cell).long()
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                tr = trees_at(spec, field, ix0 + di, iz0 + dj)
                rho = torch.sqrt((x - tr.x) ** 2 + (z - tr.z) ** 2)
                trunk = rho < tr.r + 0.5
                crown = (rho < tr.rx + 0.4) & (eye > tr.cy - tr.ry - 0.4)
                hit |= tr.present & (trunk | crown)
    return hit


def make_walk(world: World, frames: int, width: int, height: int, seed: int | None = None) -> Flight:
    """A seeded walk on the forest floor of a standing-tree world (`refine.synth.trees.standing_world`):
    the camera 1.2-2.4 m above the ground (smoothed), 0.1-0.5 m per frame, looking level to 20 degrees
    up, along a gently turning line that passes no closer than 0.5 m to a trunk and stays under the
    crowns. Starts in forest where it can (density > 0.3), elsewhere on open ground. Returns poses on the
    CPU, like `make_flight` (params: eye height, speed, fov, pitch; `walk`: True)."""
    if not world.standing:
        raise ValueError("make_walk needs a world with standing trees (refine.synth.trees.standing_world)")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    seed = world.seed if seed is None else seed
    rng = random.Random(f"worldgen-walk-{seed}")
    field = Field(world)
    dev = world.device
    speed = rng.uniform(0.1, 0.5)
    eye = rng.uniform(1.2, 2.4)
    fov = rng.uniform(50.0, 78.0)
    pitch0 = math.radians(rng.uniform(-20.0, 4.0))  # positive looks down
    extent = world.coarse.shape[0] * world.cell
    i = torch.arange(frames, dtype=torch.float64)
    best = None
    for attempt in range(48):
        cand = torch.rand(64, 2, generator=torch.Generator().manual_seed(rng.randrange(2**31))) * extent
        parts = field.parts(cand[:, 0].to(dev), cand[:, 1].to(dev))
        ground = field.ground(cand[:, 0].to(dev), cand[:, 1].to(dev)).cpu()
        forest = parts[1].cpu()
        good = ground > 0.5 if world.water else torch.ones_like(ground, dtype=torch.bool)
        if attempt < 32:
            good &= forest > 0.3
        ids = good.nonzero().squeeze(1)
        if not len(ids):
            continue
        j = int(ids[rng.randrange(len(ids))])
        yaw = rng.uniform(0, 2 * math.pi) + math.radians(rng.uniform(2.0, 12.0)) * torch.sin(
            2 * math.pi * i / rng.uniform(40.0, 160.0) + rng.uniform(0, 6.3))
        step = torch.stack([torch.sin(yaw), torch.cos(yaw)], -1) * speed
        xz = torch.cumsum(step, 0) - step[0] + cand[j].double()
        x, z = xz[:, 0].float().to(dev), xz[:, 1].float().to(dev)
        g = _ring_max(world, x, z, 0.6, trees=False).to(dev)  # the ground within 0.6 m
        kr = 6
        gpad = torch.cat([g[:1].expand(kr), g, g[-1:].expand(kr)])
        smooth = torch.nn.functional.avg_pool1d(gpad[None, None], 2 * kr + 1, stride=1)[0, 0]
        alt = torch.maximum(smooth + eye, g + 0.8)
        blocked = int(_walk_blocked(world, field, x, z, alt).sum())
        if best is None or blocked < best[0]:
            best = (blocked, x.cpu(), z.cpu(), alt.cpu(), yaw)
        if blocked == 0:
            break
    if best is None:
        raise ValueError(f"world {world.seed}: no place to walk (all water?)")
    _, x, z, alt, yaw = best
    pitch = pitch0 + math.radians(1.0) * torch.sin(2 * math.pi * i / rng.uniform(30.0, 90.0))
    roll = torch.full((frames,), math.radians(rng.uniform(-1.5, 1.5)), dtype=torch.float64)
    return _low_flight(x, z, alt, yaw, pitch, roll, fov, width, height,
                       {"seed": seed, "walk": True, **_low_params(eye, speed, fov, pitch0), "near_trees": best[0]})


def _low_params(eye: float, speed: float, fov: float, pitch0: float) -> dict:
    """The params a walk and a gorge flight share (rounded for JSON)."""
    return {"eye_height_m": round(eye, 2), "speed_m_per_frame": round(speed, 3), "fov_x_deg": round(fov, 2),
            "pitch_deg": round(math.degrees(pitch0), 2)}


def _low_flight(x: Tensor, z: Tensor, alt: Tensor, yaw: Tensor, pitch: Tensor, roll: Tensor, fov: float,
                width: int, height: int, params: dict) -> Flight:
    """A Flight from per-frame ground position x, z [T], altitude alt [T] (m, up positive) and yaw, pitch,
    roll [T] (radians, `poses_from_angles`), on the CPU, with a pinhole of horizontal field of view `fov`
    degrees."""
    pos = torch.stack([x.double().cpu(), -alt.double().cpu(), z.double().cpu()], -1).float()
    c2w = poses_from_angles(pos, yaw.float().cpu(), pitch.float().cpu(), roll.float().cpu())
    cam = Camera.from_fov(fov, width, height)
    return Flight(c2w=c2w, K=cam.K, width=width, height=height, params=params)


def make_gorge_flight(world: World, frames: int, width: int, height: int, seed: int | None = None,
                      face_wall: bool = False, across: bool = False) -> Flight:
    """A seeded flight low along the floor of a gorge world (`refine.synth.gorge.gorge_world`).

    The camera follows the canyon's centreline (`refine.synth.gorge.centreline`), one way or the other,
    offset to one side by up to a third of the floor's half-width, 0.1-0.5 m per frame (along the path),
    1-4 m above the floor (the surface, water included: smoothed, and never less than 0.5 m above any
    surface point within 1 m). It looks at the point of its own path 8-30 m ahead (so a bend brings the far
    wall into view), pitched from 12 degrees up to 6 degrees down, with a little roll. Returns poses on the
    CPU like `make_flight` (c2w [frames, 4, 4], OpenCV axes, world up = -y; params: eye height, speed, fov,
    pitch, the canyon's floor half-width and wall height; `gorge`: True).

    face_wall: the same path (the same positions), but the camera turned 55-85 degrees toward one wall (either
    side) and pitched from 10 degrees up to 4 degrees down, so the wall fills the frame's top edge as a photo
    taken facing a cliff shows it (crystal_falls), where the along-canyon view has a strip of sky (in two thirds
    of the eval set's gorge frames the top eighth is at least half sky; 2026-12-04, seventh session). Its draws
    come from a second generator, so the flight without it is unchanged; params `faces_wall_deg` (signed).

    across (with or without face_wall): facing the wall as face_wall does (the same turn), but from across the floor:
    the path moved to the other side of the centreline, 45-90 % of the way to the floor's edge, and pitched 4 to 16
    degrees down, so the floor the wall stands on fills the frame's lower part, bright and near,
    under the dark wall (crystal_falls: its pool and gravel, which every network trained with wall-facing gorge
    flights called farther than the cliff, 2026-12-05). Its draws follow face_wall's on the second generator;
    params `faces_wall_deg` and `across_floor` (the share of the way to the edge)."""
    if not world.gorge:
        raise ValueError("make_gorge_flight needs a gorge world (refine.synth.gorge.gorge_world)")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    seed = world.seed if seed is None else seed
    rng = random.Random(f"worldgen-gorge-flight-{seed}")
    spec = gorge_spec(world.seed, world.coarse.shape[0])
    speed = rng.uniform(0.1, 0.5)  # as a walk's: clips' strides are set from speed and depth (refine/train/data.py)
    eye = rng.uniform(1.0, 4.0)
    fov = rng.uniform(50.0, 78.0)
    pitch0 = math.radians(rng.uniform(-12.0, 6.0))  # positive looks down
    ahead = max(1, round(rng.uniform(8.0, 30.0) / speed))  # frames to the point looked at
    way = rng.choice([-1.0, 1.0])
    side = rng.uniform(-1.0 / 3, 1.0 / 3)
    z0 = rng.uniform(0.0, spec.period)
    n = frames + ahead
    face_wall = face_wall or across
    extra = {}
    if face_wall:
        wall_rng = random.Random(f"worldgen-gorge-wall-{seed}")
        turn = wall_rng.choice([-1.0, 1.0]) * wall_rng.uniform(55.0, 85.0)
        lift = math.radians(wall_rng.uniform(-10.0, 4.0))  # positive looks down
        extra = {"faces_wall_deg": round(turn, 1)}
        if across:  # stand on the other side of the floor: turning by +turn from the way along +z looks toward +x
            far = wall_rng.uniform(0.45, 0.9)
            side = -math.copysign(far, turn) * way
            lift = math.radians(wall_rng.uniform(4.0, 16.0))
            extra["across_floor"] = round(far, 3)
    # the path: equal steps of arc length along the centreline (z by inverting the arc length on a dense grid)
    dense = torch.linspace(0.0, n * speed, 8 * n + 2, dtype=torch.float64)
    zd = z0 + way * dense
    slope = centreline(spec, zd)[1]
    dsdz = torch.sqrt(1 + slope * slope)  # arc length per metre of z
    arc = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(0.5 * (dsdz[1:] + dsdz[:-1]) * dense.diff(), 0)])
    s_i = torch.arange(n, dtype=torch.float64) * speed
    k = torch.searchsorted(arc, s_i).clamp(1, len(arc) - 1)
    f = ((s_i - arc[k - 1]) / (arc[k] - arc[k - 1]).clamp_min(1e-12)).clamp(0, 1)
    zp = zd[k - 1] + (zd[k] - zd[k - 1]) * f
    cx, cs = centreline(spec, zp)
    xp = cx + side * (half_width(spec, zp) - spec.wobble) * torch.sqrt(1 + cs * cs)
    yaw = torch.atan2(xp[ahead:] - xp[:frames], zp[ahead:] - zp[:frames])
    x, z = xp[:frames].float(), zp[:frames].float()
    dev = world.device
    g = _ring_max(world, x.to(dev), z.to(dev), 1.0, trees=False).double()  # the surface within 1 m
    kr = max(2, min(12, round(3.0 / speed)))
    gpad = torch.cat([g[:1].expand(kr), g, g[-1:].expand(kr)])
    smooth = torch.nn.functional.avg_pool1d(gpad[None, None], 2 * kr + 1, stride=1)[0, 0]
    alt = torch.maximum(smooth + eye, g + 0.5)
    i = torch.arange(frames, dtype=torch.float64)
    pitch = pitch0 + math.radians(1.5) * torch.sin(2 * math.pi * i / rng.uniform(30.0, 90.0) + rng.uniform(0, 6.3))
    roll = torch.full((frames,), math.radians(rng.uniform(-2.0, 2.0)), dtype=torch.float64)
    if face_wall:
        yaw = yaw + math.radians(turn)
        pitch = pitch - pitch0 + lift
        pitch0 = lift
    return _low_flight(x, z, alt, yaw, pitch, roll, fov, width, height,
                       {"seed": seed, "gorge": True, **_low_params(eye, speed, fov, pitch0),
                        "floor_half_width_m": round(spec.width, 2), "wall_height_m": round(spec.wall, 1), **extra})


def make_gorge_wall_flight(world: World, frames: int, width: int, height: int, seed: int | None = None) -> Flight:
    """`make_gorge_flight(..., face_wall=True)`: low along a gorge's floor, facing one of its walls."""
    return make_gorge_flight(world, frames, width, height, seed, face_wall=True)


def make_gorge_across_flight(world: World, frames: int, width: int, height: int, seed: int | None = None) -> Flight:
    """`make_gorge_flight(..., across=True)`: low over a gorge's floor, facing one of its walls from across the floor."""
    return make_gorge_flight(world, frames, width, height, seed, across=True)


FLIGHT_KINDS = ("drone", "walk", "winter", "gorge", "gorge_wall", "gorge_across")
"""What `kind_flight` flies: drone flights over the world, walks on its forest floor among standing trees
(trees.py), the same walks on a snowy floor (`winter_world`), or low along the floor of its gorge twin (gorge.py),
looking along the canyon or at one of its walls (from near the centreline, or from across the floor)."""

FLIGHT_MAKERS = {"drone": make_flight, "walk": make_walk, "winter": make_walk, "gorge": make_gorge_flight,
                 "gorge_wall": make_gorge_wall_flight, "gorge_across": make_gorge_across_flight}
"""The flight maker of each kind, called on that kind's world (`kind_world`)."""


TWIN_OF = {"drone": "drone", "walk": "walk", "winter": "walk", "gorge": "gorge", "gorge_wall": "gorge",
           "gorge_across": "gorge"}
"""The twin world (`kind_world` of the kind named here) each kind's flight flies, a winter walk's before its snow:
the one place a new kind says whose world it shares (refine/train/data.py caches the twins by it)."""


def kind_world(world: World, kind: str) -> World:
    """The world a flight of `kind` (FLIGHT_KINDS) flies: `world` itself, its standing-tree twin (in winter:
    `winter_world` of it) or its gorge twin (for the three gorge kinds; `TWIN_OF`)."""
    if kind not in TWIN_OF:
        raise ValueError(f"unknown flight kind {kind!r} (one of {', '.join(FLIGHT_KINDS)})")
    twin = {"drone": lambda: world, "walk": lambda: standing_world(world), "gorge": lambda: gorge_world(world)}
    base = twin[TWIN_OF[kind]]()
    return winter_world(base) if kind == "winter" else base


def kind_flight(world: World, kind: str, frames: int, width: int, height: int,
                seed: int | None = None) -> tuple[World, Flight]:
    """`kind_world(world, kind)` and a flight of `kind` over it (FLIGHT_MAKERS). Shapes as `make_flight`."""
    twin = kind_world(world, kind)
    return twin, FLIGHT_MAKERS[kind](twin, frames, width, height, seed)
