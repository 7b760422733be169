"""Gorges (refine/synth/gorge.py, flights.py make_gorge_flight): a canyon with walls that rise on both sides and
converge, a floor brighter than the walls, exact depth, determinism, and nothing changed where gorges are off;
and how the flight cache picks drone flights, walks, winter walks and gorges."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from refine.synth import make_flight, make_world, render_views
from refine.synth.flights import FLIGHT_MAKERS, make_gorge_flight
from refine.synth.gorge import gorge_spec, gorge_world
from refine.synth.render import RenderSettings, surface_height
from refine.synth.splits import split_of
from worldgen.core.camera import Camera

S = 48  # frame size
SEEDS = (11, 222, 3033)  # train-split worlds
GRID = 256  # the gorge's tile: 256 texels of 1.2-1.8 m (the default 1024 only makes it larger)
GEOMETRY = RenderSettings.preset("geometry")  # no shadows: the hardest case for dark walls


@pytest.fixture(scope="module")
def gorges():
    """{seed: (gorge world, flight of 3 frames, SynthRender of frames 0 and 2)} for SEEDS."""
    out = {}
    for seed in SEEDS:
        assert split_of(seed) == "train"
        w = gorge_world(make_world(seed, grid=128), grid=GRID)
        fl = make_gorge_flight(w, 3, S, S)
        out[seed] = (w, fl, render_views(w, fl.c2w[[0, 2]], fl.K, S, S, GEOMETRY))
    return out


def _points(fl, i: int, depth: torch.Tensor) -> torch.Tensor:
    """World points [S, S, 3] of frame i's pixels at z-depth `depth` [S, S] (inf where sky)."""
    cam = Camera(K=fl.K, c2w=fl.c2w[i], width=S, height=S)
    d = cam.rays_world()  # [S, S, 3] unit
    fwd = fl.c2w[i, :3, 2]
    return cam.position + d * (depth / (d @ fwd))[..., None]


def test_gorge_frames_have_near_walls_rising_on_both_sides_and_a_floor_coming_nearer_going_down(gorges):
    rock = []
    for seed, (w, fl, r) in gorges.items():
        for k, i in enumerate((0, 2)):
            depth, sky = r.depth[k], r.sky[k]
            upper = slice(0, S // 2)
            left, right = ~sky[upper, : S // 3], ~sky[upper, -(S // 3) :]
            # rock, not sky, fills most of the upper half's left and right thirds (one side may open at a bend)
            sides = 0.5 * float(left.float().mean() + right.float().mean())
            assert sides > 0.5 and left.float().mean() > 0.25 and right.float().mean() > 0.25, (seed, i)
            rock.append(sides)
            # ... and rises well above the camera on both sides
            alt = -_points(fl, i, depth)[..., 1]
            cam_alt = float(-fl.c2w[i, 1, 3])
            for part in (slice(0, S // 3), slice(S - S // 3, S)):
                a = alt[upper, part][~sky[upper, part]]
                assert float(a.max()) > cam_alt + 10.0, (seed, i)
            # the walls converge: the middle of the upper half looks farther than its sides
            mid = depth[upper, S // 3 : S - S // 3]
            sides = torch.cat([depth[upper, : S // 3], depth[upper, -(S // 3) :]], 1)
            assert float(mid.median()) > float(sides.median()), (seed, i)
            # the floor straight ahead comes nearer going down the lower half (not upside down)
            col = depth[S // 2 + 4 :, S // 2 - 2 : S // 2 + 2].median(1).values
            assert torch.isfinite(col).all() and float(col[-1]) < float(col[0]) / 2, (seed, i)
            assert (col[1:] <= col[:-1] * 1.05).float().mean() > 0.9, (seed, i)
    assert sum(rock) / len(rock) > 0.65, rock


def test_gorge_floor_is_brighter_than_its_walls(gorges):
    ratios = []
    for seed, (w, fl, r) in gorges.items():
        spec = gorge_spec(w.seed, GRID)
        for k, i in enumerate((0, 2)):
            alt = -_points(fl, i, r.depth[k])[..., 1]
            lum = (r.rgb[k] ** 2.2) @ torch.tensor([0.2126, 0.7152, 0.0722])  # about linear luminance
            seen = ~r.sky[k]
            floor = seen & (alt < spec.bar + 0.8)  # the floor: gravel bars, stream and wash
            wall = seen & (alt > spec.bar + 4.0)
            assert floor.sum() > S * S // 10 and wall.sum() > S * S // 10, (seed, i)
            ratios.append(float(lum[floor].mean() / lum[wall].mean()))
    # sometimes barely (GorgeSpec.floor_lum / rock_lum: 1.3-9), and a wall in full sun may outshine the floor
    assert sum(ratios) / len(ratios) > 2.0 and sum(x > 1.0 for x in ratios) >= len(ratios) - 1, ratios


def test_gorge_depth_is_exact_and_the_camera_flies_low_above_the_floor(gorges):
    for seed, (w, fl, r) in gorges.items():
        for k, i in enumerate((0, 2)):
            p = _points(fl, i, r.depth[k])[~r.sky[k]]
            h = surface_height(w, p[:, 0], p[:, 2])
            rel = (-p[:, 1] - h).abs() / (p - fl.c2w[i, :3, 3]).norm(dim=-1)
            # as tests/test_synth.py: on the surface, but for a few grazing rays refined less closely
            assert torch.quantile(rel, 0.5) < 1e-5 and torch.quantile(rel, 0.995) < 1e-4, seed
        pos = fl.c2w[:, :3, 3]
        eye = -pos[:, 1] - surface_height(w, pos[:, 0], pos[:, 2])
        assert (eye > 0.5).all() and (eye < 5.0).all(), (seed, eye)
        assert fl.params["gorge"] is True and w.describe()["gorge"] is True


def test_gorge_worlds_and_flights_are_functions_of_the_seed(gorges):
    seed = SEEDS[0]
    w0, fl0, r0 = gorges[seed]
    w1 = gorge_world(make_world(seed, grid=128), grid=GRID)
    for f in ("coarse", "fine", "tex"):
        assert torch.equal(getattr(w0, f), getattr(w1, f)), f
    assert w0.palette == w1.palette and w0.atmosphere == w1.atmosphere
    fl1 = make_gorge_flight(w1, 3, S, S)
    assert torch.equal(fl0.c2w, fl1.c2w) and torch.equal(fl0.K, fl1.K)
    r1 = render_views(w1, fl1.c2w[[0, 2]], fl1.K, S, S, GEOMETRY)
    assert torch.equal(r0.depth, r1.depth) and torch.equal(r0.rgb, r1.rgb)
    # other seeds, other gorges
    other = gorges[SEEDS[1]][0]
    assert not torch.equal(w0.coarse, other.coarse)
    assert gorge_spec(seed, GRID) != gorge_spec(SEEDS[1], GRID)


def test_make_gorge_flight_refuses_a_world_that_is_no_gorge():
    w = make_world(5, grid=128)
    with pytest.raises(ValueError, match="gorge world"):
        make_gorge_flight(w, 3, S, S)
    assert "gorge" not in w.describe() and w.palette.cliffs >= 1e8  # ordinary worlds: no cliffs material


def test_a_gorge_twin_leaves_the_world_and_its_drone_flights_as_they_were():
    w = make_world(7, grid=128)
    before = (w.coarse.clone(), w.fine.clone(), w.palette, w.atmosphere)
    fl0 = make_flight(w, 3, 32, 24)
    r0 = render_views(w, fl0.c2w, fl0.K, 32, 24, GEOMETRY)
    g = gorge_world(w, grid=128)
    assert g.gorge and not w.gorge and gorge_world(g) is g
    assert torch.equal(w.coarse, before[0]) and torch.equal(w.fine, before[1])
    assert (w.palette, w.atmosphere) == before[2:]
    fl1 = make_flight(w, 3, 32, 24)
    r1 = render_views(w, fl1.c2w, fl1.K, 32, 24, GEOMETRY)
    assert torch.equal(fl0.c2w, fl1.c2w) and torch.equal(r0.rgb, r1.rgb) and torch.equal(r0.depth, r1.depth)


def test_data_config_gorges_is_a_share_that_fits_beside_walks():
    from refine.train.config import DataConfig
    from worldgen.core.config import ConfigValueError

    assert DataConfig().gorges == 0.0
    DataConfig(gorges=1.0).validate()
    DataConfig(walks=0.35, gorges=0.65).validate()
    for kw in ({"gorges": -0.1}, {"gorges": 1.5}, {"gorges": float("nan")}, {"walks": 0.6, "gorges": 0.5}):
        with pytest.raises(ConfigValueError, match="gorges"):
            DataConfig(**kw).validate()


def test_flight_cache_kinds_gorges_and_winter_take_their_share_and_leave_the_rest():
    """With gorges and winter at 0 every cached flight is the walk or drone flight `is_walk` names, flown over the
    world it names; a share of gorges takes flights from the drone flights only (the walks stay the same flights),
    and winter only changes the floor of a share of the walks (same poses, same depth, brighter)."""
    from refine.synth import make_walk, standing_world, winter_world
    from refine.train.config import DataConfig
    from refine.train.data import FlightCache

    base = DataConfig(width=24, height=24, flights=4, frames=3, flights_per_world=2, refresh_every=0,
                      world_grid=128, seed_start=500_000, walks=0.5, quality="fast")
    cpu = torch.device("cpu")
    a = FlightCache(base, cpu)
    assert not any(a.is_gorge(i) or a.is_winter(i) for i in range(200))
    a.fill()
    for i in range(base.flights):
        seed = a.world_seed(i)
        world = make_world(seed, grid=128)
        fly = make_walk if a.is_walk(i) else make_flight
        world = standing_world(world) if a.is_walk(i) else world
        want = fly(world, 3, 24, 24, seed=seed + 100_000_000 * (i % base.flights_per_world))
        assert torch.equal(a.c2w[i], want.c2w), i
    c = FlightCache(dataclasses.replace(base, gorges=0.4), cpu)
    kinds = [(c.is_walk(i), c.is_gorge(i)) for i in range(400)]
    assert [k[0] for k in kinds] == [a.is_walk(i) for i in range(400)]  # the same walks
    assert not any(wk and gg for wk, gg in kinds)
    assert 0.3 < sum(g for _, g in kinds) / 400 < 0.5
    d = FlightCache(dataclasses.replace(base, winter=0.5), cpu)
    snowy = [i for i in range(200) if d.is_winter(i)]
    assert 0.35 < len(snowy) / 200 < 0.65
    kinds4 = {("winter" if d.is_winter(i) else "walk") if d.is_walk(i) else "drone" for i in range(base.flights)}
    assert kinds4 == {"drone", "walk", "winter"}  # this cache holds each kind
    d.fill()
    assert torch.equal(d.c2w, a.c2w) and torch.equal(d.depth, a.depth)  # winter repaints, it does not move
    for i in range(base.flights):
        changed = not torch.equal(d.rgb[i], a.rgb[i])
        assert changed == (d.is_walk(i) and d.is_winter(i)), i
    w = standing_world(make_world(11, grid=128))
    assert winter_world(w).palette.floor_snow >= 0.6 and w.palette.floor_snow == 0
    with pytest.raises(ValueError, match="standing"):
        winter_world(make_world(11, grid=128))


def test_a_wall_facing_gorge_flight_keeps_the_path_and_fills_the_frame_top_with_rock(gorges):
    """face_wall turns the same flight (same positions, same along-canyon flight unchanged) toward a wall: the top
    eighth of the frame, at least a quarter sky on average in the along-canyon views here, is rock, and the median
    depth is nearer (the wall, not the canyon's far end)."""
    along, facing, nearer = [], [], 0
    for seed, (w, fl, r) in gorges.items():
        fw = make_gorge_flight(w, 3, S, S, face_wall=True)
        assert torch.equal(make_gorge_flight(w, 3, S, S).c2w, fl.c2w)  # the flight without it is unchanged
        assert torch.equal(fw.c2w[:, :3, 3], fl.c2w[:, :3, 3]) and torch.equal(fw.K, fl.K)  # the same path
        assert not torch.allclose(fw.c2w[:, :3, :3], fl.c2w[:, :3, :3], atol=0.1)
        assert 55.0 <= abs(fw.params["faces_wall_deg"]) <= 85.0 and "faces_wall_deg" not in fl.params
        assert torch.equal(FLIGHT_MAKERS["gorge_wall"](w, 3, S, S).c2w, fw.c2w)  # the cache's kind "gorge_wall"
        rw = render_views(w, fw.c2w[[0, 2]], fw.K, S, S, GEOMETRY)
        along.append(float(r.sky[:, : S // 8].float().mean()))
        facing.append(float(rw.sky[:, : S // 8].float().mean()))
        nearer += float(rw.depth[~rw.sky].median()) < float(r.depth[~r.sky].median())
    assert sum(along) / len(along) > 0.2, along
    assert max(facing) < 0.1, facing
    assert nearer >= 2


def test_the_flight_cache_turns_a_share_of_the_gorges_to_their_walls_and_leaves_the_rest():
    from refine.train.config import DataConfig
    from refine.train.data import FlightCache
    from worldgen.core.config import ConfigValueError

    base = DataConfig(width=24, height=24, flights=4, frames=3, world_grid=128, seed_start=500_000, walks=0.35,
                      gorges=0.4, quality="fast")
    cpu = torch.device("cpu")
    a, b = FlightCache(base, cpu), FlightCache(dataclasses.replace(base, gorge_walls=0.5), cpu)
    n = 600
    assert [a.is_gorge(i) for i in range(n)] == [b.is_gorge(i) for i in range(n)]  # the same gorges
    assert [a.is_walk(i) for i in range(n)] == [b.is_walk(i) for i in range(n)]
    assert {a.kind(i) for i in range(n)} == {"drone", "walk", "gorge"}
    kinds = [b.kind(i) for i in range(n)]
    walls = [i for i in range(n) if kinds[i] == "gorge_wall"]
    assert all(b.is_gorge(i) for i in walls)
    share = len(walls) / sum(b.is_gorge(i) for i in range(n))
    assert 0.35 < share < 0.65, share
    assert all(k == a.kind(i) for i, k in enumerate(kinds) if k != "gorge_wall")
    for bad_share in (-0.1, 1.5, float("nan")):
        with pytest.raises(ConfigValueError, match="gorge_walls"):
            dataclasses.replace(base, gorge_walls=bad_share).validate()
    # and the cache flies it: the wall-facing flight of the world's gorge twin (kind_flight's), rendered
    from refine.synth import kind_flight

    c = FlightCache(dataclasses.replace(base, flights=1, frames=2, walks=0.0, gorges=1.0, gorge_walls=1.0), cpu)
    assert c.kind(0) == "gorge_wall"
    c.make(0)
    seed = c.world_seed(0)
    _, want = kind_flight(make_world(seed, grid=128), "gorge_wall", 2, 24, 24, seed=seed)
    assert "faces_wall_deg" in want.params and torch.equal(c.c2w[0], want.c2w)
    assert torch.isfinite(c.depth[0]).float().mean() > 0.5  # mostly rock and floor


def test_worldgen_synth_face_wall_needs_gorge():
    from worldgen.commands.synth import SynthConfig
    from worldgen.core.config import ConfigValueError

    with pytest.raises(ConfigValueError, match="face_wall|face-wall"):
        SynthConfig(out="x", face_wall=True).validate()
    SynthConfig(out="x", gorge=True, face_wall=True).validate()
    with pytest.raises(ConfigValueError, match="across"):
        SynthConfig(out="x", across=True).validate()
    SynthConfig(out="x", gorge=True, across=True).validate()


@pytest.mark.gpu
def test_a_gorge_flight_on_the_gpu_matches_the_cpu():
    """A gorge world made on CUDA flies the same poses (on the CPU) and renders what the CPU renders (the flight
    once mixed a CUDA altitude with CPU positions)."""
    cpu = gorge_world(make_world(11, grid=128), grid=GRID)
    gpu = gorge_world(make_world(11, grid=128, device="cuda"), grid=GRID)
    a, b = make_gorge_flight(cpu, 3, S, S), make_gorge_flight(gpu, 3, S, S)
    assert b.c2w.device.type == "cpu" and torch.allclose(a.c2w, b.c2w, atol=1e-4)
    ra = render_views(cpu, a.c2w, a.K, S, S, GEOMETRY)
    rb = render_views(gpu, a.c2w, a.K, S, S, GEOMETRY)
    assert (ra.sky == rb.sky.cpu()).float().mean() > 0.99
    both = ~ra.sky & ~rb.sky.cpu()
    assert ((ra.depth - rb.depth.cpu()).abs() / ra.depth)[both].median() < 1e-4


def test_an_across_gorge_flight_faces_the_wall_from_the_far_side_with_the_floor_below_it(gorges):
    """across: the same turn toward a wall as face_wall, from the other side of the centreline and pitched down, so
    the floor fills the frame's lower part, nearer than the wall above it (crystal_falls: a pool and gravel under a
    cliff); face_wall's flights are unchanged by it."""
    floor_near = 0
    for seed, (w, fl, r) in gorges.items():
        fw = make_gorge_flight(w, 2, S, S, face_wall=True)
        fa = make_gorge_flight(w, 2, S, S, across=True)
        assert torch.equal(make_gorge_flight(w, 2, S, S, face_wall=True).c2w, fw.c2w)
        assert fa.params["faces_wall_deg"] == fw.params["faces_wall_deg"] and 0.45 <= fa.params["across_floor"] <= 0.9
        assert torch.equal(FLIGHT_MAKERS["gorge_across"](w, 2, S, S).c2w, fa.c2w)
        # the camera moved across the centreline, away from the wall it looks at: its offset from the centre-line
        # flight's position points against its look direction (both horizontal)
        look = fa.c2w[0, :3, 2][[0, 2]]
        moved = (fa.c2w[0, :3, 3] - fl.c2w[0, :3, 3])[[0, 2]]
        assert float(moved @ look) < 0, (seed, moved, look)
        # pitched down: the look direction's y (world up = -y) is positive, more than face_wall's at least by 4 deg
        assert float(fa.c2w[0, 1, 2]) > math.sin(math.radians(3.0))
        ra = render_views(w, fa.c2w[:1], fa.K, S, S, GEOMETRY)
        d, ground = ra.depth[0], ~ra.sky[0]
        bottom, top = d[-S // 4:][ground[-S // 4:]], d[: S // 4][ground[: S // 4]]
        floor_near += bottom.numel() > 0 and top.numel() > 0 and float(bottom.median()) < 0.8 * float(top.median())
    assert floor_near >= 2, floor_near


def test_the_flight_cache_stands_a_share_of_the_wall_facing_gorges_across_the_floor():
    from refine.train.config import DataConfig
    from refine.train.data import FlightCache
    from worldgen.core.config import ConfigValueError

    base = DataConfig(width=24, height=24, flights=4, frames=3, world_grid=128, seed_start=500_000, walks=0.35,
                      gorges=0.4, gorge_walls=0.5, quality="fast")
    cpu = torch.device("cpu")
    a, b = FlightCache(base, cpu), FlightCache(dataclasses.replace(base, gorge_across=0.6), cpu)
    n = 800
    ka, kb = [a.kind(i) for i in range(n)], [b.kind(i) for i in range(n)]
    assert "gorge_across" not in ka
    across = [i for i in range(n) if kb[i] == "gorge_across"]
    assert all(ka[i] == "gorge_wall" for i in across)  # taken from the wall-facing flights only
    assert all(x == y for x, y in zip(ka, kb) if y != "gorge_across")
    share = len(across) / sum(k == "gorge_wall" for k in ka)
    assert 0.45 < share < 0.75, share
    with pytest.raises(ConfigValueError, match="gorge_across"):
        dataclasses.replace(base, gorge_across=1.5).validate()
    c = FlightCache(dataclasses.replace(base, flights=1, frames=2, walks=0.0, gorges=1.0, gorge_walls=1.0,
                                        gorge_across=1.0), cpu)
    assert c.kind(0) == "gorge_across"
    c.make(0)
    assert torch.isfinite(c.depth[0]).float().mean() > 0.5  # mostly rock and floor
