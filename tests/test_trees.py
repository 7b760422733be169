"""Standing trees (refine/synth/trees.py): exact geometry, upright trunks, walks that keep clear of them."""

from __future__ import annotations

import math

import pytest
import torch

from refine.synth import make_flight, make_walk, make_world, render_views, standing_world
from refine.synth.march import Field
from refine.synth.render import RenderSettings, march_rays, surface_height
from refine.synth.trees import _hit_cells, trace, trace_layer, tree_specs
from worldgen.core.camera import Camera

W, H = 48, 40


@pytest.fixture(scope="module")
def forests():
    """Two small standing-tree worlds: a broadleaf and a conifer one."""
    out = {}
    for seed in range(40):
        w = make_world(seed, climate="forest", grid=128)
        kind = "conifer" if w.conifer else "broadleaf"
        out.setdefault(kind, standing_world(w))
        if len(out) == 2:
            return out
    raise AssertionError("no conifer and broadleaf forest among 40 seeds")


def _rays(fl, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """World rays (o [R, 3], unit d [R, 3]) of frame i's pixel centres, row-major."""
    cam = Camera(K=fl.K, c2w=fl.c2w[i], width=fl.width, height=fl.height)
    d = cam.rays_world().reshape(-1, 3)
    return cam.position.expand_as(d).contiguous(), d


def test_standing_world_keeps_the_ground_and_removes_the_crown_bumps(forests):
    w = forests["broadleaf"]
    plain = make_world(w.seed, climate="forest", grid=128)
    f0, f1 = Field(plain), Field(w)
    xz = torch.rand(2000, 2, generator=torch.Generator().manual_seed(0)) * 128 * plain.cell
    base0, forest0, canopy0, _ = f0.parts(xz[:, 0], xz[:, 1])
    assert float(canopy0.max()) > 3.0  # the plain world has crown bumps here
    g1 = f1.ground(xz[:, 0], xz[:, 1])
    assert torch.equal(g1, base0)  # the standing world's ground is the plain one without them
    assert w.describe()["standing_trees"] is True and "standing_trees" not in plain.describe()


@pytest.mark.parametrize("kind", ["broadleaf", "conifer"])
def test_trace_finds_the_nearest_tree(forests, kind):
    """The DDA's first hit is the nearest over every cell around the ray (brute force)."""
    w = forests[kind]
    field = Field(w)
    fl = make_walk(w, 2, W, H, seed=5)
    o, d = _rays(fl, 0)
    t_max = torch.full((o.shape[0],), 60.0)
    nearest = torch.full((o.shape[0],), math.inf)
    for spec in tree_specs(w):
        hit = trace_layer(spec, field, o, d, t_max, cells=64)
        assert (hit.part == 1).any() and (hit.part >= 2).any()
        n = int(math.ceil(60.0 / spec.cell)) + 1
        ix0 = int(math.floor((float(o[0, 0]) - spec.offset) / spec.cell))
        iz0 = int(math.floor((float(o[0, 2]) - spec.offset) / spec.cell))
        best = torch.full((o.shape[0],), math.inf)
        for i in range(ix0 - n, ix0 + n + 1):
            for j in range(iz0 - n, iz0 + n + 1):
                ci = torch.full((o.shape[0],), i, dtype=torch.long)
                cj = torch.full((o.shape[0],), j, dtype=torch.long)
                t, part, _ = _hit_cells(spec, field, o, d, ci, cj, torch.zeros(o.shape[0]))
                best = torch.minimum(best, torch.where(part > 0, t, math.inf))
        best = torch.where(best < t_max, best, math.inf)
        assert torch.equal(torch.isfinite(best), hit.part > 0)
        assert torch.equal(best[hit.part > 0], hit.t[hit.part > 0])
        nearest = torch.minimum(nearest, best)
    hit = trace(tree_specs(w), field, o, d, t_max)
    assert torch.equal(hit.t, nearest)  # the layers together: the nearest of either
    p = o + hit.t[:, None] * d
    on = hit.part > 0
    assert (hit.normal[on].norm(dim=-1) - 1).abs().max() < 1e-4
    assert ((hit.normal[on] * d[on]).sum(-1) < 1e-3).all()  # normals face the ray that hit them (to grazing)
    assert torch.isfinite(p[on]).all()


@pytest.mark.parametrize("kind", ["broadleaf", "conifer"])
def test_trunks_stand_upright_at_one_depth(forests, kind):
    """What the drone flights never showed: a trunk's pixels, from its foot up, share one depth, while the
    ground's depth grows towards the horizon (the signal for upright trees, issue 10)."""
    w = forests[kind]
    fl = make_walk(w, 1, 64, 96, seed=11)
    r = render_views(w, fl.c2w, fl.K, 64, 96, RenderSettings.preset("geometry"))
    o, d = _rays(fl, 0)
    hit = trace(tree_specs(w), Field(w), o, d, torch.full((o.shape[0],), 1e4))
    z = r.depth[0]
    z_hit = (hit.t * (d @ fl.c2w[0, :3, 2])).reshape(96, 64)
    trunk = (hit.part == 1).reshape(96, 64) & ((z_hit - z).abs() < 1e-3 * z)  # the trunk is what the pixel shows
    tree = hit.tint.reshape(96, 64)  # a per-tree hash: tells trunks apart
    runs = 0
    for c in range(64):
        for tint in tree[trunk[:, c], c].unique():
            rows = (trunk[:, c] & (tree[:, c] == tint)).nonzero().squeeze(1)
            if len(rows) < 6:
                continue
            zr = z[rows, c]  # one trunk's pixels in one column, from its foot (or what hides it) up
            assert float((zr.max() - zr.min()) / zr.median()) < 0.1, (c, zr)
            runs += 1
    assert runs >= 2  # the walk's view has trunks tall enough to judge
    assert not r.sky[0, -1].any() and r.sky[0].any()  # ground at the bottom, sky somewhere between crowns


@pytest.mark.parametrize("kind", ["broadleaf", "conifer"])
def test_depth_with_trees_reprojects_exactly(forests, kind):
    """Frame 0's depth is the true distance to what frame k sees (trunks and crowns included)."""
    w = forests[kind]
    fl = make_walk(w, 5, W, H, seed=3)
    r = render_views(w, fl.c2w[[0, 4]], fl.K, W, H, RenderSettings.preset("geometry"))
    cam0 = Camera(K=fl.K, c2w=fl.c2w[0], width=W, height=H)
    cam1 = Camera(K=fl.K, c2w=fl.c2w[4], width=W, height=H)
    ok = torch.isfinite(r.depth[0])
    pts = cam0.unproject(torch.where(ok, r.depth[0], torch.zeros_like(r.depth[0])))[ok]
    dvec = pts - cam1.position
    dist = dvec.norm(dim=-1)
    t = march_rays(w, cam1.position.expand_as(dvec), dvec / dist[:, None], RenderSettings.preset("geometry"))
    rel = ((t - dist) / dist).abs()
    visible = t > dist * 0.99
    assert visible.float().mean() > 0.8
    assert torch.quantile(rel[visible], 0.5) < 1e-4
    assert (rel[visible] < 0.01).float().mean() > 0.97


def test_a_view_renders_the_same_alone_or_in_a_batch(forests):
    w = forests["conifer"]
    fl = make_walk(w, 3, W, H, seed=8)
    both = render_views(w, fl.c2w, fl.K, W, H, RenderSettings.preset("training"))
    alone = render_views(w, fl.c2w[2:], fl.K, W, H, RenderSettings.preset("training"))
    assert torch.equal(both.depth[2], alone.depth[0])  # the geometry is exact; shading's matmuls round by batch
    torch.testing.assert_close(both.rgb[2], alone.rgb[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["broadleaf", "conifer"])
def test_walks_keep_clear_of_trunks_and_under_the_crowns(forests, kind):
    w = forests[kind]
    specs, field = tree_specs(w), Field(w)
    for seed in range(6):
        fl = make_walk(w, 30, W, H, seed=seed)
        assert fl.params["walk"] and fl.params["near_trees"] == 0
        pos = fl.c2w[:, :3, 3]
        alt = -pos[:, 1]
        ground = surface_height(w, pos[:, 0], pos[:, 2])
        assert ((alt - ground) > 0.7).all() and ((alt - ground) < 3.5).all()  # eye height over the ground
        # 16 horizontal rays and one straight up from every pose: no tree closer than 0.45 m
        ang = torch.arange(16) * (2 * math.pi / 16)
        dirs = torch.cat([torch.stack([ang.cos(), torch.zeros(16), ang.sin()], -1), torch.tensor([[0.0, -1.0, 0.0]])])
        o = pos[:, None].expand(-1, 17, 3).reshape(-1, 3)
        d = dirs[None].expand(len(pos), -1, -1).reshape(-1, 3)
        hit = trace(specs, field, o.contiguous(), d.contiguous(), torch.full((o.shape[0],), 50.0))
        assert (hit.t > 0.45).all()
        if kind == "conifer":  # camera never inside a crown: looking up meets the crown's underside, or sky
            up = hit.t.reshape(len(pos), 17)[:, -1]
            assert (up > 0.3).all()


def test_drone_flights_over_standing_trees_stay_above_them(forests):
    w = forests["broadleaf"]
    specs, field = tree_specs(w), Field(w)
    fl = make_flight(w, 40, W, H, seed=1)
    pos = fl.c2w[:, :3, 3]
    down = torch.tensor([[0.0, 1.0, 0.0]]).expand(len(pos), 3).contiguous()
    hit = trace(specs, field, pos.contiguous(), down, torch.full((len(pos),), 1e4), cells=2)
    assert (hit.t > 5.0).all()  # nothing within 5 m below the camera: it flies over the crowns


def test_flight_cache_mixes_walks_and_flights_reproducibly():
    from refine.train.config import DataConfig
    from refine.train.data import FlightCache

    cfg = DataConfig(width=32, height=32, flights=6, frames=6, flights_per_world=2, refresh_every=0,
                     world_grid=128, seed_start=500_000, walks=0.5, quality="fast")
    a, b = FlightCache(cfg, torch.device("cpu")), FlightCache(cfg, torch.device("cpu"))
    walks = [a.is_walk(i) for i in range(6)]
    assert any(walks) and not all(walks)
    a.fill()
    b.fill()
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.depth, b.depth)
    for i, walk in enumerate(walks):  # walks go at eye height, drone flights at 30 m or more
        pos = a.c2w[i, :, :3, 3]
        world = make_world(a.world_seed(i), grid=128)
        eye = (-pos[:, 1] - surface_height(world, pos[:, 0], pos[:, 2])).min()
        assert (eye < 3.5) == walk, (i, walk, float(eye))
    assert not any(FlightCache(DataConfig(walks=0.0), torch.device("cpu")).is_walk(i) for i in range(50))


def test_synth_cli_writes_forest_floor_walks(tmp_path):
    import json

    from refine.synth.acid import list_sequences
    from worldgen.commands.synth import SynthConfig, main

    out = tmp_path / "walks"
    main(SynthConfig(sequences=1, frames=2, size="32x24", seed=5, out=out, device="cpu", walk=True))
    seq = list_sequences(out)[0]
    meta = json.loads((out / "synth_00000005" / "meta.json").read_text())
    assert meta["flight"]["walk"] and meta["world"]["standing_trees"]
    frame, has_depth = seq.frame(0)
    assert has_depth and float(frame.depth[torch.isfinite(frame.depth)].median()) < 200  # among things, not over them


def test_a_winter_walk_is_the_same_walk_on_a_bright_floor(forests):
    """winter_world changes the floor's colour only: the same poses and depth, and the ground brighter."""
    from refine.synth import winter_world

    w = forests["conifer"]
    snow = winter_world(w)
    a, b = make_walk(w, 3, W, H, seed=4), make_walk(snow, 3, W, H, seed=4)
    assert torch.equal(a.c2w, b.c2w)
    s = RenderSettings.preset("geometry")
    ra, rb = render_views(w, a.c2w, a.K, W, H, s), render_views(snow, a.c2w, a.K, W, H, s)
    assert torch.equal(ra.depth, rb.depth) and torch.equal(ra.sky, rb.sky)
    lum = lambda r: r.rgb.mean(-1)  # noqa: E731
    # the lower quarter of the frames (mostly floor) is clearly brighter, and never darker anywhere
    low = slice(3 * H // 4, H)
    assert float(lum(rb)[:, low].mean()) > 1.5 * float(lum(ra)[:, low].mean())
    assert float((lum(rb) - lum(ra)).min()) > -1e-4
