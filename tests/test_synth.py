"""Tests of the procedural nature-flight renderer (refine/synth) and `worldgen synth`.

Small worlds (grid 128) and 64x64 frames so the file runs in seconds on 2 CPU cores. The depth
tests run at every quality level (refine.synth.render.QUALITY) and with the cheap FAST settings.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from refine.synth import make_flight, make_world, render_views
from refine.synth.acid import AcidClips, list_sequences, read_camera_file, write_sequence
import refine.synth.march as march_mod
from refine.synth.render import QUALITY, RenderSettings, march_rays, surface_height
from refine.synth.splits import SPLITS, check_range, split_of
from worldgen.core.camera import Camera
from worldgen.core.io import UserInputError
from worldgen.commands.synth import SynthConfig, main
from worldgen.core.images import parse_size

S = 64
GRID = 128
# cheaper but geometrically identical to the defaults (shadows and reflections only change colour)
FAST = RenderSettings(shadow_steps=8, reflect_steps=8)


@pytest.fixture(scope="module")
def worlds():
    """Three small worlds of different climates: trees, water and mountains all appear."""
    return {c: make_world(11, climate=c, grid=GRID) for c in ("forest", "coast", "alpine")}


@pytest.fixture(scope="module")
def renders(worlds):
    """Per climate: a 4-frame flight and its 64x64 renders with FAST settings."""
    return {c: _render(w, frames=4) for c, w in worlds.items()}


@pytest.fixture(scope="module", params=list(QUALITY))
def quality_renders(request, worlds):
    """Per quality level: (name, per climate a 4-frame flight and its 64x64 renders)."""
    s = RenderSettings.preset(request.param)
    return request.param, {c: _render(w, frames=4, settings=s) for c, w in worlds.items()}


def _render(world, frames=2, settings=FAST, size=S):
    fl = make_flight(world, frames, size, size)
    return fl, render_views(world, fl.c2w, fl.K, size, size, settings)


def _bilinear(img: torch.Tensor, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample img [H, W] at pixel coords uv [N, 2] (centres at +0.5); also the 2x2 neighbourhood [N, 4]."""
    H, W = img.shape
    x = uv[:, 0] - 0.5
    y = uv[:, 1] - 0.5
    x0 = x.floor().long().clamp(0, W - 2)
    y0 = y.floor().long().clamp(0, H - 2)
    fx = (x - x0).clamp(0, 1)
    fy = (y - y0).clamp(0, 1)
    n = torch.stack([img[y0, x0], img[y0, x0 + 1], img[y0 + 1, x0], img[y0 + 1, x0 + 1]], -1)
    top = n[:, 0] * (1 - fx) + n[:, 1] * fx
    bot = n[:, 2] * (1 - fx) + n[:, 3] * fx
    return top * (1 - fy) + bot * fy, n


def _reproject(world, fl, r, a=0, b=3):
    """Points of frame a's depth [N, 3], their uv [N, 2] and z [N] in frame b, and the in-view mask [N]."""
    cam0 = Camera(K=fl.K, c2w=fl.c2w[a], width=S, height=S)
    cam1 = Camera(K=fl.K, c2w=fl.c2w[b], width=S, height=S)
    d0 = r.depth[a]
    ok0 = torch.isfinite(d0)
    assert ok0.float().mean() > 0.3, "test flight sees too little ground"
    pts = cam0.unproject(torch.where(ok0, d0, torch.zeros_like(d0)))[ok0]  # [N, 3] world
    uv, z = cam1.project(pts)
    inside = (z > 0) & (uv[:, 0] > 0.5) & (uv[:, 0] < S - 0.5) & (uv[:, 1] > 0.5) & (uv[:, 1] < S - 0.5)
    return pts, uv, z, inside, cam1


@pytest.mark.parametrize("quality", list(QUALITY))
@pytest.mark.parametrize("climate", ["coast", "alpine"])
def test_depth_reprojects_into_next_depth_map(worlds, climate, quality):
    """Unproject frame t's depth, reproject with the known poses: frame t+k's depth map agrees (< 1%)."""
    # bare ground (forest density 0): crowns are smaller than a 64x64 pixel, so interpolating a
    # depth map across them says nothing; the sub-pixel test below covers crowns
    world = dataclasses.replace(worlds[climate], coarse=worlds[climate].coarse.clone())
    world.coarse[..., 1] = 0.0
    fl, r = _render(world, frames=4, settings=RenderSettings.preset(quality))
    _, uv, z, inside, _ = _reproject(world, fl, r, 0, 3)  # 3 frames apart: visible parallax
    # inverse depth is affine in pixel coordinates on a plane: interpolate it, not depth; compare only
    # where the 2x2 neighbourhood is smooth (no silhouette, no tree crown between the samples)
    inv, nb = _bilinear(1.0 / r.depth[3], uv[inside])
    nb_depth = 1.0 / nb
    smooth = torch.isfinite(nb_depth).all(-1) & ((nb_depth.max(-1).values / nb_depth.min(-1).values) < 1.05)
    assert smooth.sum() > 0.25 * inside.sum(), "too few comparable pixels"
    z_pred = 1.0 / inv[smooth]
    rel = ((z[inside][smooth] - z_pred) / z_pred).abs()
    assert torch.quantile(rel, 0.5) < 1e-3
    # the odd point hidden in frame t+3 (occluded) may differ; everything else agrees to < 1%
    assert (rel < 0.01).float().mean() > 0.97


@pytest.mark.parametrize("climate", ["forest", "coast", "alpine"])
def test_depth_reprojects_exactly_subpixel(worlds, quality_renders, climate):
    """The ray of frame t+k through a reprojected point meets the surface at that very point.

    Stricter than comparing with the depth map (no interpolation between pixels), so it holds on
    tree crowns too: frame t's depth is the true distance to the geometry frame t+k sees.
    """
    world = worlds[climate]
    fl, r = quality_renders[1][climate]
    pts, _uv, _z, inside, cam1 = _reproject(world, fl, r, 0, 3)
    pts = pts[inside]
    d = pts - cam1.position
    dist = d.norm(dim=-1)
    t = march_rays(world, cam1.position.expand_as(d), d / dist[:, None])
    rel = ((t - dist) / dist).abs()
    visible = t > dist * 0.99  # else something in front hides the point in frame t+k
    assert visible.float().mean() > 0.9
    # a ray grazing a crown tip far away may step over it (minimum step grows with distance)
    assert (rel[visible] < 0.01).float().mean() > 0.97
    assert torch.quantile(rel[visible], 0.5) < 1e-4


def test_depth_lies_on_the_surface(worlds, quality_renders):
    """Every non-sky pixel's 3D point is on the rendered height field (depth is exact, not estimated)."""
    for c, world in worlds.items():
        fl, r = quality_renders[1][c]
        cam = Camera(K=fl.K, c2w=fl.c2w[0], width=S, height=S)
        ok = torch.isfinite(r.depth[0])
        p = cam.unproject(torch.where(ok, r.depth[0], torch.zeros_like(r.depth[0])))[ok]
        h = surface_height(world, p[:, 0], p[:, 2])
        err = (-p[:, 1] - h).abs()
        dist = (p - cam.position).norm(dim=-1)
        rel = err / dist
        assert torch.quantile(rel, 0.5) < 1e-5
        # rays that graze the crowns all the way to the horizon may run out of march steps and be
        # accepted close to (not on) the surface: allow that for 0.5% of pixels
        assert torch.quantile(rel, 0.995) < 1e-4, f"{c}: points off the surface by up to {float(err.max()):.3f} m"


def test_sky_mask_iff_depth_inf(quality_renders):
    for _, r in quality_renders[1].values():
        assert r.depth.dtype == torch.float32
        assert torch.equal(r.sky, torch.isinf(r.depth))
        assert not torch.isnan(r.depth).any()
        assert (r.depth[~r.sky] > 0).all()
        assert r.sky.any() and (~r.sky).any(), "a flight frame shows both sky and ground"
        assert r.rgb.shape == (4, S, S, 3) and r.rgb.min() >= 0 and r.rgb.max() <= 1


def test_same_seed_same_pixels():
    a = make_world(7, grid=GRID)
    b = make_world(7, grid=GRID)
    assert torch.equal(a.coarse, b.coarse) and torch.equal(a.fine, b.fine) and a.atmosphere == b.atmosphere
    for q in QUALITY:
        fa, ra = _render(a, frames=2, size=32, settings=RenderSettings.preset(q))
        fb, rb = _render(b, frames=2, size=32, settings=RenderSettings.preset(q))
        assert torch.equal(fa.c2w, fb.c2w)
        assert torch.equal(ra.rgb, rb.rgb) and torch.equal(ra.depth, rb.depth), q
    c = make_world(8, grid=GRID)
    assert not torch.equal(a.coarse, c.coarse)


def test_quality_levels_share_exact_depth(renders, quality_renders):
    """Quality levels change colour only: depth and sky mask equal those of FAST bit for bit."""
    name, qr = quality_renders
    for c, (_, r) in qr.items():
        assert torch.equal(r.depth, renders[c][1].depth), f"{name}/{c}"
        assert torch.equal(r.sky, renders[c][1].sky), f"{name}/{c}"


def test_quality_presets():
    assert RenderSettings.preset("full") == RenderSettings()
    t = RenderSettings.preset("training", compile=True)
    assert t.compile and t.reflect_steps == 0 and t.shadow_steps == RenderSettings().shadow_steps
    assert RenderSettings.preset("geometry").shadow_steps == 0
    with pytest.raises(ValueError, match="training"):
        RenderSettings.preset("ultra")


def test_views_render_the_same_alone_batched_or_chunked(worlds):
    """A pixel depends only on its own ray: batching and chunking (max_rays) change nothing."""
    world = worlds["coast"]
    fl = make_flight(world, 3, 32, 32)
    s = RenderSettings.preset("full")
    together = render_views(world, fl.c2w, fl.K, 32, 32, s)
    chunked = render_views(world, fl.c2w, fl.K, 32, 32, dataclasses.replace(s, max_rays=32 * 32 + 5))
    alone = render_views(world, fl.c2w[1:2], fl.K, 32, 32, s)
    for r, sl in ((chunked, slice(0, 3)), (alone, slice(1, 2))):
        assert torch.equal(r.sky, together.sky[sl])
        torch.testing.assert_close(r.depth, together.depth[sl], rtol=1e-6, atol=0)
        torch.testing.assert_close(r.rgb, together.rgb[sl], rtol=0, atol=1e-5)


def test_grid_lookup_conventions():
    """Texel (i, j) sits at world (x, z) = (j, i) * cell; bilinear in between; periodic both ways."""
    g = torch.arange(16.0).reshape(1, 4, 4)  # [C, N, N], value = 4 i + j
    grids = march_mod._wrap_pad(g)[None]
    cell = 2.0
    scale = torch.tensor(2.0 / (cell * 4)).view(1, 1, 1)
    xz = torch.tensor([[0, 0], [2, 0], [0, 2], [1, 0], [6, 6], [8, 0], [-2, 0], [7, 0], [3, -1]], dtype=torch.float32)
    got = march_mod._sample(grids, scale, xz)[0, 0]
    # (3, -1): j = 1.5, i = -0.5 -> rows 3 and 0 (wrapped), columns 1 and 2
    want = torch.tensor([0.0, 1.0, 4.0, 0.5, 15.0, 0.0, 3.0, 1.5, 0.25 * (13 + 14 + 1 + 2)])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)


def test_field_matches_the_documented_height_formula():
    """h = height + rough * detail + forest * crowns, at coarse texel centres (also fine texel centres)."""
    world = make_world(5, climate="forest", grid=GRID)
    field = march_mod.Field(world)
    i = torch.tensor([0, 3, 17, 100])
    j = torch.tensor([5, 64, 2, 127])
    x, z = j * world.cell, i * world.cell  # coarse texel centres are also fine texel centres
    r = world.fine_cell / world.cell
    fi, fj = (i / r).round().long() % world.fine.shape[0], (j / r).round().long() % world.fine.shape[0]
    c, f = world.coarse[i, j], world.fine[fi, fj]
    h = c[:, 0] + c[:, 2] * f[:, 0] + c[:, 1] * f[:, 1]
    torch.testing.assert_close(field.ground(x.float(), z.float()), h, rtol=0, atol=1e-3)
    period = world.cell * world.coarse.shape[0]
    torch.testing.assert_close(field.ground(x.float() + period, z.float() - 3 * period), h, rtol=0, atol=2e-3)


def test_speculative_march_is_as_good_in_far_fewer_iterations(worlds):
    """Speculative steps (RenderSettings.spec) miss no more than the plain march, in far fewer iterations.

    Both are compared with a careful march (smaller steps): a grazing ray far away may step over a
    crown tip either way (~5% of these 48x48 pixels, which are tens of metres wide out there).
    """
    world = worlds["forest"]
    fl = make_flight(world, 2, 48, 48)
    plain, spec = {}, {}
    a = render_views(world, fl.c2w, fl.K, 48, 48, RenderSettings.preset("geometry", spec=1), stats=plain)
    b = render_views(world, fl.c2w, fl.K, 48, 48, RenderSettings.preset("geometry"), stats=spec)
    careful_s = RenderSettings.preset("geometry", spec=1, k=0.2, lip=12, steps=3000)
    careful = render_views(world, fl.c2w, fl.K, 48, 48, careful_s)
    assert spec["iterations"] * 2 < plain["iterations"]

    def missed(r):
        both = ~r.sky & ~careful.sky
        rel = ((r.depth - careful.depth).abs() / careful.depth)[both]
        return float(((rel > 1e-4).sum() + (r.sky != careful.sky).sum()) / r.sky.numel())

    assert missed(a) < 0.1 and missed(b) <= missed(a) + 0.01


def test_secant_refinement_matches_long_bisection(worlds):
    """Regula falsi (default) lands on the same crossing as 30 bisections."""
    world = worlds["alpine"]
    fl = make_flight(world, 1, 48, 48)
    a = render_views(world, fl.c2w, fl.K, 48, 48, RenderSettings.preset("geometry", bisect=30, secant=0))
    b = render_views(world, fl.c2w, fl.K, 48, 48, RenderSettings.preset("geometry"))
    assert torch.equal(a.sky, b.sky)
    rel = ((a.depth - b.depth).abs() / a.depth)[~a.sky]
    assert torch.quantile(rel, 0.5) < 1e-6 and torch.quantile(rel, 0.99) < 1e-4


def test_stats_report_stages_and_counters(worlds):
    world = worlds["coast"]
    fl, _ = _render(world, frames=1)
    st = {}
    render_views(world, fl.c2w[:1], fl.K, S, S, RenderSettings.preset("full"), stats=st)
    for k in ("march_s", "shadows_s", "reflections_s", "shading_s"):
        assert st[k] > 0, k
    assert st["rays"] == S * S and st["points"] >= st["rays"] and 0 < st["refined"] <= st["rays"]
    assert 8 <= st["iterations"] <= RenderSettings().steps


def _use_compiler(monkeypatch, compiler) -> None:
    """Make the march / shadow kernels compile with `compiler` (a stand-in for torch.compile), from scratch."""
    for k in (march_mod.K_MARCH, march_mod.K_SPEC, march_mod.K_SHADOW):
        monkeypatch.setattr(k, "compiled", None)
        monkeypatch.setattr(k, "failed", False)
    monkeypatch.setattr(torch, "compile", compiler)


def test_compile_failure_falls_back_to_eager(worlds, monkeypatch):
    """compile=True where torch.compile fails: one warning, then the same pixels as eager."""
    world = worlds["coast"]
    fl = make_flight(world, 1, 32, 32)
    ref = render_views(world, fl.c2w, fl.K, 32, 32, RenderSettings.preset("training"))
    monkeypatch.setattr(march_mod, "COMPILE_DEVICES", ("cuda", "cpu"))

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no compiler here")

    _use_compiler(monkeypatch, no_compiler)
    with pytest.warns(UserWarning, match="torch.compile of march_chunk failed"):
        r = render_views(world, fl.c2w, fl.K, 32, 32, RenderSettings.preset("training", compile=True))
    assert march_mod.K_MARCH.failed
    assert torch.equal(r.depth, ref.depth) and torch.equal(r.rgb, ref.rgb)


@pytest.mark.gpu
def test_cuda_render_matches_cpu_and_compiled_matches_eager():
    """On the GPU: eager CUDA agrees with the CPU, and compile=True (torch.compile) with eager CUDA."""
    import warnings

    cpu_world = make_world(11, climate="forest", grid=GRID)
    world = cpu_world.to("cuda")
    fl = make_flight(cpu_world, 4, S, S)
    s = RenderSettings.preset("training")
    ref = render_views(cpu_world, fl.c2w, fl.K, S, S, s)
    eager = render_views(world, fl.c2w, fl.K, S, S, s)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a compiler failure must not pass silently here
        comp = render_views(world, fl.c2w, fl.K, S, S, dataclasses.replace(s, compile=True))
    for a, b in ((ref, eager), (eager, comp)):
        a = type(a)(a.rgb.cpu(), a.depth.cpu(), a.sky.cpu())
        b = type(b)(b.rgb.cpu(), b.depth.cpu(), b.sky.cpu())
        assert (a.sky == b.sky).float().mean() > 0.995
        both = ~a.sky & ~b.sky
        rel = ((a.depth - b.depth).abs() / a.depth)[both]
        assert (rel < 1e-4).float().mean() > 0.98  # float rounding may flip a grazing ray past a crown tip
        assert ((a.rgb - b.rgb).abs() < 0.02).float().mean() > 0.98


@pytest.mark.gpu
def test_big_batch_fits_on_the_gpu():
    """256 views at 256x256 (16.8M rays) at training quality in one call, within 40 GiB."""
    world = make_world(3_000_006, device="cuda")
    fl = make_flight(world, 256, 256, 256)
    torch.cuda.reset_peak_memory_stats()
    r = render_views(world, fl.c2w, fl.K, 256, 256, RenderSettings.preset("training"))
    assert r.depth.shape == (256, 256, 256) and torch.isfinite(r.depth).any()
    assert torch.cuda.max_memory_allocated() < 40 * 2**30


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_cameras_never_below_terrain(seed):
    world = make_world(seed, grid=GRID)
    fl = make_flight(world, 120, S, S)
    pos = fl.c2w[:, :3, 3]
    # check at every pose and densely in between (the camera moves in straight segments)
    s = torch.linspace(0, 1, 9)[:-1]
    dense = (pos[:-1, None] * (1 - s[:, None]) + pos[1:, None] * s[:, None]).reshape(-1, 3)
    dense = torch.cat([dense, pos[-1:]])
    ground = surface_height(world, dense[:, 0], dense[:, 2])
    altitude = -dense[:, 1]  # world up is -y
    assert (altitude - ground).min() > 3.0, f"clearance {float((altitude - ground).min()):.2f} m"
    # poses are proper rotations
    R = fl.c2w[:, :3, :3]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand_as(R), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(len(fl)), atol=1e-5)
    # the camera flies forward, horizon roughly level (down axis has a positive world-down part)
    assert (R[:, 1, 1] > 0.5).all()


def test_acid_round_trip(tmp_path, renders):
    fl, r = renders["coast"]
    c2w, rgb, depth, sky = fl.c2w[:3], r.rgb[:3], r.depth[:3], r.sky[:3]
    txt = write_sequence(tmp_path, "seq_a", rgb, depth, sky, c2w, fl.K, meta={"seed": 11})
    cf = read_camera_file(txt)
    assert cf.url.startswith("synth://")
    assert len(cf) == 3 and (cf.timestamps[1:] > cf.timestamps[:-1]).all()
    assert torch.allclose(cf.c2w(), c2w.double(), atol=1e-6, rtol=0)
    assert torch.allclose(cf.K(S, S)[0], fl.K, atol=1e-5)
    # the training loader reads the same thing back
    ds = AcidClips(tmp_path, clip_len=2, stride=1)
    assert len(ds) == 2
    item = ds[1]
    assert item["has_depth"] and item["name"] == "seq_a" and item["start"] == 1
    assert torch.allclose(item["c2w"], c2w[1:3], atol=1e-6, rtol=0)
    assert torch.equal(item["depth"], depth[1:3])
    assert torch.equal(item["sky"], sky[1:3])
    assert (item["rgb"] - rgb[1:3]).abs().max() <= 0.5 / 255 + 1e-6
    # resized loading keeps intrinsics consistent and depth nearest-sampled
    small = AcidClips(tmp_path, clip_len=1, size=(32, 32))[0]
    assert small["rgb"].shape == (1, 32, 32, 3)
    assert torch.allclose(small["K"][0, 0, 0], fl.K[0, 0] / 2)


def test_loader_reads_real_acid_format(tmp_path):
    """A RealEstate10K/ACID camera file with jpg frames and no depth loads with has_depth False."""
    from PIL import Image

    lines = ["https://www.youtube.com/watch?v=abc"]
    for k, ts in enumerate((33366667, 33400000)):
        w2c = [1, 0, 0, 0.1 * k, 0, 1, 0, 0, 0, 0, 1, -0.5 * k]
        lines.append(f"{ts} 0.5 0.888 0.5 0.5 0 0 " + " ".join(str(v) for v in w2c))
        (tmp_path / "0a1b2c").mkdir(exist_ok=True)
        Image.fromarray(np.full((18, 32, 3), 100 + k, np.uint8)).save(tmp_path / "0a1b2c" / f"{ts}.jpg")
    (tmp_path / "0a1b2c.txt").write_text("\n".join(lines) + "\n")
    seqs = list_sequences(tmp_path)
    assert [s.name for s in seqs] == ["0a1b2c"]
    item = AcidClips(tmp_path, clip_len=2)[0]
    assert not item["has_depth"] and torch.isnan(item["depth"]).all()
    assert torch.allclose(item["K"][0, 0, 0], torch.tensor(16.0)) and torch.allclose(item["K"][0, 1, 1], torch.tensor(0.888 * 18))
    assert torch.allclose(item["c2w"][1, :3, 3], torch.tensor([-0.1, 0.0, 0.5]))


def test_bad_camera_file(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("url\n1 2 3\n")
    with pytest.raises(UserInputError, match="19"):
        read_camera_file(p)


def test_splits_are_fixed_and_disjoint():
    assert SPLITS["eval"] == range(1_000_000, 1_001_000)
    assert split_of(999_999) == "train" and split_of(1_000_000) == "eval" and split_of(3_000_000) == "demo"
    names = list(SPLITS)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not set(SPLITS[a]) & set(SPLITS[b])
    assert check_range(0, 1000) == "train"
    with pytest.raises(ValueError, match="straddle"):
        check_range(999_990, 20)


def test_cli_writes_sequences_and_preview(tmp_path):
    out = tmp_path / "synth"
    main(SynthConfig(sequences=1, frames=2, size="32x24", seed=5, out=out, preview=True, device="cpu"))
    seqs = list_sequences(out)
    assert len(seqs) == 1 and len(seqs[0].cameras) == 2
    frame, has_depth = seqs[0].frame(1)
    assert has_depth and frame.rgb.shape == (24, 32, 3)
    assert torch.equal(frame.sky, torch.isinf(frame.depth))
    assert (out / "preview.png").exists()
    cfg = json.loads((out / "synth_config.json").read_text())
    assert cfg["split"] == "train" and cfg["size"] == "32x24"


def test_cli_replaces_its_own_output_whole_and_refuses_others(tmp_path):
    out = tmp_path / "synth"
    main(SynthConfig(sequences=1, frames=1, size="16x16", seed=5, out=out, device="cpu"))
    main(SynthConfig(sequences=1, frames=1, size="16x16", seed=7, out=out, device="cpu"))
    assert [s.name for s in list_sequences(out)] == ["synth_00000007"]  # no stale sequence 5 beside the index
    assert not (out / "synth_00000005").exists()
    run = tmp_path / "fly_run"
    run.mkdir()
    (run / "world.ply").write_bytes(b"ply")
    with pytest.raises(UserInputError, match="world.ply"):
        main(SynthConfig(sequences=1, frames=1, size="16x16", out=run, device="cpu"))
    assert [p.name for p in run.iterdir()] == ["world.ply"]


@pytest.mark.parametrize("bad", ["abc", "64", "64x", "0x64", "64x-3"])
def test_cli_rejects_bad_size(bad):
    with pytest.raises(UserInputError, match="size"):
        parse_size(bad, min_side=8)


def test_cli_rejects_unwritable_out_and_split_mixing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserInputError):
        main(SynthConfig(sequences=1, frames=1, size="16x16", out=blocker / "sub", device="cpu"))
    with pytest.raises(UserInputError, match="eval"):
        main(SynthConfig(sequences=10, frames=1, size="16x16", seed=999_995, out=tmp_path / "o", device="cpu"))
    assert parse_size(" 384x256 ") == (384, 256)
    assert parse_size("16X8", min_side=8) == (16, 8)
    with pytest.raises(UserInputError, match="out of range"):
        parse_size("16X8")  # the generators' smallest side is 16


def test_compiled_kernels_run_one_iteration_per_call(worlds, monkeypatch):
    """compile=True drives each march / shadow chunk as n calls of a one-iteration graph, carrying the state
    between them: with an identity 'compiler' the pixels are the eager ones bit for bit, and every call is n=1."""
    world = worlds["coast"]
    fl = make_flight(world, 1, 32, 32)
    ref = render_views(world, fl.c2w, fl.K, 32, 32, RenderSettings.preset("training"))
    monkeypatch.setattr(march_mod, "COMPILE_DEVICES", ("cuda", "cpu"))
    calls: dict[str, list[int]] = {}

    def identity_compiler(fn, **kwargs):
        def run(*args):
            calls.setdefault(fn.__name__, []).append(args[-1])
            return fn(*args)

        return run

    _use_compiler(monkeypatch, identity_compiler)
    r = render_views(world, fl.c2w, fl.K, 32, 32, RenderSettings.preset("training", compile=True))
    assert set(calls) == {"march_chunk", "march_chunk_spec", "shadow_chunk"}
    assert all(n == 1 for ns in calls.values() for n in ns)
    assert len(calls["march_chunk"]) >= 8  # (the first chunk alone is 8 iterations)
    assert torch.equal(r.depth, ref.depth) and torch.equal(r.rgb, ref.rgb)


def test_compiled_kernels_see_no_per_world_python_numbers(worlds, monkeypatch):
    """torch.compile guards on the value of every Python number a graph is given: a number that differs between
    worlds (the shadows' h_max once did) would rebuild the graph for every new world of a training run. The
    numbers each kernel receives (beyond its geometry and the trailing n) must be the same for every world."""
    monkeypatch.setattr(march_mod, "COMPILE_DEVICES", ("cuda", "cpu"))
    seen: dict[str, set] = {}

    def recording_compiler(fn, **kwargs):
        def run(*args):
            nums = tuple(a for a in args[1:-1] if isinstance(a, (int, float)))
            seen.setdefault(fn.__name__, set()).add(nums)
            return fn(*args)

        return run

    _use_compiler(monkeypatch, recording_compiler)
    for world in (worlds["coast"], worlds["alpine"]):
        fl = make_flight(world, 1, 16, 16)
        render_views(world, fl.c2w, fl.K, 16, 16, RenderSettings.preset("training", compile=True))
    assert worlds["coast"].h_max != worlds["alpine"].h_max
    assert set(seen) == {"march_chunk", "march_chunk_spec", "shadow_chunk"}
    assert all(len(v) == 1 for v in seen.values()), seen
