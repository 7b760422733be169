
import torch
from torch import Tensor

from worldgen.core.camera import Camera, look_at
from worldgen.core.fill import box_mean, fill_far, push_pull
from worldgen.pipeline.sky import SkyDome


def test_push_pull_keeps_known_and_fills_smoothly():
    x = torch.linspace(0, 1, 32)
    ramp = x[None, :, None].expand(16, 32, 1).contiguous()
    known = torch.zeros(16, 32)
    known[:, :8] = 1
    known[:, 24:] = 1
    out = push_pull(ramp, known)
    assert torch.equal(out[known > 0], ramp[known > 0])
    mid = out[:, 8:24, 0]
    assert (mid >= 0).all() and (mid <= 1).all()
    assert (mid.mean(0)[1:] >= mid.mean(0)[:-1] - 1e-3).all()  # stays roughly monotone across the gap
    # and interpolates between the two sides (0.042 off the ramp today), not one flat colour across the gap
    assert float((out - ramp)[:, 8:24].abs().max()) < 0.08
    assert float(mid.mean(0)[-1] - mid.mean(0)[0]) > 0.4


def test_box_mean_is_a_replicate_padded_average_pool():
    """The summed-area box filter equals avg_pool2d over the replicate-padded image, for windows
    narrower and wider than the image (the sky dome's 25-degree fade is hundreds of texels)."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(23, 41, generator=g) > 0.6).float()
    for r in (0, 1, 5, 30):
        ref = F.avg_pool2d(F.pad(x[None, None], (r, r, r, r), mode="replicate"), 2 * r + 1, stride=1)[0, 0]
        got = box_mean(x, r)
        assert got.shape == x.shape
        assert torch.allclose(got, ref, atol=1e-6), r


def test_fill_far_continues_the_background():
    disp = torch.full((20, 20), 0.1)  # far background
    disp[:, :8] = 1.0  # near foreground on the left
    valid = torch.ones(20, 20, dtype=torch.bool)
    valid[:, 8:12] = False  # disocclusion hole at the boundary
    out = fill_far(disp, valid)
    assert torch.allclose(out[:, 8:12], torch.full((20, 4), 0.1))
    assert torch.equal(out[valid], disp[valid])


def test_sky_dome_persists_and_depends_on_rotation_only():
    cam = Camera.from_fov(60, 64, 48)
    dome = SkyDome.for_camera(cam)
    rgb = torch.rand(48, 64, 3)
    mask = torch.zeros(48, 64, dtype=torch.bool)
    mask[:20] = True
    dome.update(cam, rgb, mask)
    out, known = dome.render(cam)
    # Same view: the sky comes back close to what was written (texture slightly finer than pixels).
    inner = known[2:18, 2:-2] > 0.99
    assert inner.float().mean() > 0.9
    assert (out[2:18, 2:-2][inner] - rgb[2:18, 2:-2][inner]).abs().mean() < 0.2
    assert known[30:].max() == 0  # never-seen directions stay unknown
    moved = cam.with_pose(torch.eye(4) + torch.tensor([[0, 0, 0, 5.0], [0, 0, 0, -3.0], [0, 0, 0, 7.0], [0, 0, 0, 0]]))
    out2, known2 = dome.render(moved)
    assert torch.equal(out2, out) and torch.equal(known2, known)
    # First observation wins: writing other colours later changes nothing already seen.
    dome.update(cam, torch.zeros(48, 64, 3), mask)
    assert torch.equal(dome.render(cam)[0], out)
    # Turning around shows unseen sky.
    back = cam.with_pose(look_at(torch.zeros(3), torch.tensor([0.0, 0.0, -1.0])))
    assert dome.render(back)[1].max() == 0


def test_sky_dome_gives_a_smooth_sky_back_exactly_without_the_ground_and_across_the_azimuth_seam():
    """A smooth sky written from a view comes back from that view to float precision (image -> texels -> image
    resample the same points), with no trace of the ground below it (a texel is written only where all four
    pixels it reads are sky), and so does a view straddling the texture's azimuth seam (looking along -z, an odd
    width: the middle column's rays cross it), where the wrap-around columns must hold the other edge's texels."""
    for forward, W in ((1.0, 64), (-1.0, 63)):
        cam = Camera.from_fov(60, W, 48, look_at(torch.zeros(3), torch.tensor([0.0, 0.0, forward])))
        dome = SkyDome.for_camera(cam)
        yy, xx = torch.meshgrid(torch.arange(48.0), torch.arange(float(W)), indexing="ij")
        sky_rgb = torch.stack([0.2 + 0.6 * xx / W, 0.3 + 0.5 * yy / 48, torch.full_like(xx, 0.9)], -1)
        mask = torch.zeros(48, W, dtype=torch.bool)
        mask[:20] = True
        rgb = torch.where(mask[..., None], sky_rgb, torch.zeros_like(sky_rgb))  # black ground below row 20
        dome.update(cam, rgb, mask)
        out, known = dome.render(cam)
        assert float(known[1:19, 1:-1].min()) > 0.999, forward  # the whole sky, the seam included
        full = known > 0.999
        assert float((out[full] - sky_rgb[full]).abs().max()) < 1e-3, forward  # the sky as written
        assert float((out[known > 0][:, 2] - 0.9).abs().max()) < 1e-4, forward  # (constant blue) no black ground
        assert float(known[20:].max()) == 0.0, forward


def _frame_with_sky():
    """A 64x48 frame, 60 degrees wide, looking at the horizon: its top 20 rows are sky."""
    from worldgen.core.frame import Frame

    cam = Camera.from_fov(60, 64, 48)
    g = torch.Generator().manual_seed(3)
    rgb = torch.rand(48, 64, 3, generator=g) * 0.2 + 0.4
    sky = torch.zeros(48, 64, dtype=torch.bool)
    sky[:20] = True
    rgb[:20] = torch.tensor([0.5, 0.6, 0.9])
    depth = torch.where(sky, torch.full((48, 64), float("inf")), torch.full((48, 64), 8.0))
    return Frame(rgb=rgb, depth=depth, sky=sky, camera=cam)


def test_sky_dome_completion_fills_every_direction_above_the_horizon_and_keeps_what_was_seen():
    frame = _frame_with_sky()
    dome = SkyDome.for_camera(frame.camera)
    dome.update(frame.camera, frame.rgb, frame.sky)
    seen = dome.weight > 0
    before = dome.color.clone()
    n = dome.complete(horizon_elev_deg=2.0)
    rows_el = 90.0 - (torch.arange(dome.height) + 0.5) * 180.0 / dome.height
    above = rows_el > 2.0
    assert n > 0 and bool((dome.weight[above] > 0).all())  # no unseen sky is left above the horizon
    assert float(dome.weight[rows_el < 1.0].max()) == 0.0  # below it nothing is invented
    assert torch.equal(dome.color[:, seen], before[:, seen])  # seen texels keep their colour
    # behind the camera the sky exists now, in the seen sky's colours (not black, not a smear)
    back = frame.camera.with_pose(look_at(torch.zeros(3), torch.tensor([0.0, 0.0, -1.0])))
    rgb, known = dome.render(back)
    assert float(known[:10].min()) > 0.99
    assert (rgb[:10] - torch.tensor([0.5, 0.6, 0.9])).abs().max() < 0.05


def test_both_generators_complete_the_sky_at_the_start():
    """The persistent generator used to absorb frame 0 without completing the dome (only the
    per-frame baseline's rebuild did), so its unseen sky was smeared out of the frame's top rows."""
    from renderers import get_renderer
    from worldgen.pipeline.generator import GeneratorConfig, make_generator
    from worldgen.pipeline.refiners import make_refiner

    frame = _frame_with_sky()
    for mode in ("persistent", "per-frame"):
        gen = make_generator(mode, frame, get_renderer("cpu"), make_refiner("classical"), GeneratorConfig())
        assert gen.sky.observed_fraction > 0.3, mode  # the upper hemisphere (minus a sliver), not one view's worth
        off = make_generator(mode, frame, get_renderer("cpu"), make_refiner("classical"),
                             GeneratorConfig(sky_complete=False))
        assert off.sky.observed_fraction < 0.1, mode


def test_horizon_is_where_the_sky_comes_lowest_not_the_top_of_a_cliff():
    """A cliff over the right 70 % of the frame hides the sky down to row 8; on the left the sky
    reaches row 20 (the far hills). The horizon must be the left's, or the dome leaves a band of
    unknown directions between the two that the fill turns into a flat wall."""
    from worldgen.core.frame import Frame
    from worldgen.pipeline.generator import horizon_elevation_deg

    cam = Camera.from_fov(60, 64, 48)
    sky = torch.zeros(48, 64, dtype=torch.bool)
    sky[:20, :19] = True
    sky[:8, 19:] = True
    depth = torch.where(sky, torch.full((48, 64), float("inf")), torch.full((48, 64), 8.0))
    frame = Frame(rgb=torch.rand(48, 64, 3), depth=depth, sky=sky, camera=cam)
    elev = cam.ray_elevation_deg()
    left, cliff = elev[19, :19], elev[7, 19:]  # the lowest sky pixel's elevation in each column
    h = horizon_elevation_deg(frame)
    assert float(left.min()) - 1.01 <= h <= float(left.max()) - 1.0 and h < float(cliff.min()) - 5
    old = horizon_elevation_deg(frame, 0.5)  # the old rule: the cliff's top
    assert float(cliff.min()) - 1.01 <= old <= float(cliff.max()) - 1.0
    assert horizon_elevation_deg(Frame(rgb=frame.rgb, depth=torch.full((48, 64), 8.0),
                                       sky=torch.zeros_like(sky), camera=cam)) == 90.0


def test_sky_completion_is_not_set_by_a_few_texels_at_the_edge_of_the_seen_sky():
    """The zenith is filled from the seen sky's profile: a handful of dark texels in the highest seen
    row (branches at the photo's top edge) must not paint the whole zenith dark."""
    dome = SkyDome(texels_per_degree=1.0)
    el = 90.0 - (torch.arange(dome.height) + 0.5) * 180.0 / dome.height
    band = (el > 5) & (el < 40)
    dome._tex[0, :3, band, 1:-1] = 0.8
    dome._tex[0, 3, band, 1:-1] = 1.0
    top = int(torch.nonzero(el >= 40).max())  # the row just above the band: 3 dark texels
    dome._tex[0, :3, top, 1:4] = 0.1
    dome._tex[0, 3, top, 1:4] = 1.0
    dome.complete(horizon_elev_deg=2.0)
    zenith = dome.color[:, el > 60]
    assert float(zenith.mean()) > 0.7, float(zenith.mean())  # the seen sky's colour, not the edge's


def test_sky_writes_visit_every_texel_the_view_reaches():
    """`update` visits only a window of texels computed on the host from the camera (no read from the
    device); it must write exactly what a write over the whole dome writes, for views across the azimuth
    seam, at the zenith and the nadir, rolled, and wide or narrow."""
    import math

    from worldgen.core.camera import pose_matrix

    g = torch.Generator().manual_seed(3)
    views = [(0.0, 0.0, 0.0, 60), (math.pi, 0.1, 0.0, 60), (-math.pi + 0.05, -0.2, 0.3, 90), (0.7, 1.45, 0.0, 60),
             (2.0, -1.5, 0.2, 60), (1.0, 0.9, 0.4, 110), (-2.5, 0.4, -0.6, 30), (3.1, 1.2, 1.0, 75)]
    for yaw, pitch, roll, fov in views:
        # yaw about world down (+y), then pitch up (about the camera's x), then roll (about its z)
        cy, sy, cp, sp, cr, sr = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch), math.cos(roll), math.sin(roll)
        Ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=torch.float64)
        Rx = torch.tensor([[1, 0, 0], [0, cp, sp], [0, -sp, cp]], dtype=torch.float64)
        Rz = torch.tensor([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]], dtype=torch.float64)
        R = (Ry @ Rx @ Rz).float()
        cam = Camera.from_fov(fov, 40, 30, pose_matrix(R, torch.zeros(3)))
        rgb = torch.rand(30, 40, 3, generator=g)
        mask = torch.rand(30, 40, generator=g) > 0.2
        domes = [SkyDome(texels_per_degree=1.0) for _ in range(3)]
        domes[0]._tex[0, 3, ::7, 1:-1:5] = 1.0  # some texels observed already: they stay
        for d in domes[1:]:
            d._tex.copy_(domes[0]._tex)
        y0, x0, h, w = domes[0]._view_window(cam)
        assert 0 <= y0 and y0 + h <= domes[0].height and 0 <= x0 < domes[0].width and 0 < w <= domes[0].width
        rows, cols = torch.arange(y0, y0 + h), torch.remainder(torch.arange(x0, x0 + w), domes[0].width)
        n_window = domes[0]._write(cam, rgb, mask, rows, cols)  # the window (as the CUDA graph writes)
        n_box = domes[1].update(cam, rgb, mask)  # the sky pixels' box (as eager writes)
        n_all = domes[2]._write(cam, rgb, mask, slice(0, domes[2].height), slice(0, domes[2].width))  # everything
        assert int(n_all) > 0 and int(n_window) == int(n_all) == int(n_box), (yaw, pitch, roll, fov)
        assert torch.equal(domes[0]._tex, domes[2]._tex) and torch.equal(domes[1]._tex, domes[2]._tex), (yaw, pitch, roll, fov)


def test_grow_region_floods_connected_pixels_only_and_each_image_alone():
    from worldgen.core.fill import grow_region

    allowed = torch.zeros(2, 3, 9, 9, dtype=torch.bool)
    allowed[..., 0, :] = True  # a path along the top row ...
    allowed[..., :, 8] = True  # ... down the right edge ...
    allowed[..., 8, 1:] = True  # ... back along the bottom row ...
    allowed[..., 7, 0] = True  # ... and one diagonal step up (8-connected)
    allowed[..., 4, 3] = True  # an island
    seed = torch.zeros_like(allowed)
    seed[0, :, 0, 0] = True
    seed[1, 2, 4, 4] = True  # a seed outside what is allowed grows nothing
    grown = grow_region(seed, allowed)
    assert grown.shape == allowed.shape
    island = torch.zeros(9, 9, dtype=torch.bool)
    island[4, 3] = True
    assert torch.equal(grown[0, 0], allowed[0, 0] & ~island) and torch.equal(grown[0, 1], grown[0, 0])
    assert not grown[1].any()
    assert torch.equal(grow_region(seed, allowed, check_every=1), grown)  # how often it tests: no matter


def _cloudy_dome(rock: bool = False) -> tuple[SkyDome, Tensor]:
    """A dome (2 texels per degree) that has seen a 60 x 30 degree window of cloudy sky (blue with white puffs,
    blurred noise) 5 to 35 degrees up; with `rock`, a dark block inside it that the sky mask let in."""
    dome = SkyDome(texels_per_degree=2.0)
    el = 90.0 - (torch.arange(dome.height) + 0.5) * 180.0 / dome.height
    az = (torch.arange(dome.width) + 0.5) * 360.0 / dome.width - 180.0
    rows = (el > 5) & (el < 35)
    cols = az.abs() < 30
    g = torch.Generator().manual_seed(5)
    noise = torch.rand(1, 1, int(rows.sum()), int(cols.sum()), generator=g)
    for _ in range(3):  # soft puffs, as clouds are at the dome's resolution
        noise = torch.nn.functional.avg_pool2d(noise, 7, 1, 3, count_include_pad=False)
    noise = noise[0, 0]
    puff = ((noise - noise.mean()) / noise.std() * 0.4 + 0.3).clamp(0, 1)  # [h, w] white where the noise is high
    blue, white = torch.tensor([0.35, 0.5, 0.85]), torch.tensor([0.95, 0.95, 0.97])
    seen = blue[:, None, None] * (1 - puff) + white[:, None, None] * puff  # [3, h, w]
    if rock:
        seen[:, 5:25, 10:40] = 0.08
    r0, c0 = int(torch.nonzero(rows)[0]), int(torch.nonzero(cols)[0])
    dome._tex[0, :3, r0:r0 + seen.shape[1], 1 + c0:1 + c0 + seen.shape[2]] = seen
    dome._tex[0, 3, r0:r0 + seen.shape[1], 1 + c0:1 + c0 + seen.shape[2]] = 1.0
    return dome, el


def _variation(x: Tensor) -> float:
    """Mean |colour - its row's mean| of a [3, h, w] block."""
    return float((x - x.mean(2, keepdim=True)).abs().mean())


def test_sky_completion_generates_clouds_round_the_dome_not_a_flat_profile():
    """Unseen sky far from the seen window used to be the seen sky's mean colour per elevation, flat all round
    the dome (the viewer's background a featureless band); it is now quilted from the seen clouds."""
    dome, el = _cloudy_dome()
    seen_cols = dome.weight[int(torch.nonzero(el < 20)[0])] > 0
    seen = dome.color[:, (el > 5) & (el < 35)][:, :, seen_cols]
    dome.complete(horizon_elev_deg=2.0)
    az = (torch.arange(dome.width) + 0.5) * 360.0 / dome.width - 180.0
    behind = dome.color[:, (el > 8) & (el < 32)][:, :, az.abs() > 120]  # half a turn away from the seen window
    assert _variation(behind) > 0.5 * _variation(seen), (_variation(behind), _variation(seen))
    zenith = dome.color[:, el > 82]
    assert _variation(zenith) < 0.01  # no squeezed patches at the pole
    again, _ = _cloudy_dome()
    again.complete(horizon_elev_deg=2.0)
    assert torch.equal(again.color, dome.color)  # the same seen sky and seed give the same sky
    other, _ = _cloudy_dome()
    other.complete(horizon_elev_deg=2.0, seed=1)
    assert not torch.equal(other.color, dome.color)
    flat, _ = _cloudy_dome()
    flat.complete(horizon_elev_deg=2.0, fade_deg=25.0, tile_deg=0.0)  # the rule until 2026-12-05
    assert _variation(flat.color[:, (el > 8) & (el < 32)][:, :, az.abs() > 120]) < 0.01


def test_sky_completion_does_not_copy_what_the_sky_mask_let_in():
    """A dark block inside the seen sky (a rock the sky mask took for sky) must not be quilted round the dome."""
    dome, el = _cloudy_dome(rock=True)
    dome.complete(horizon_elev_deg=2.0)
    az = (torch.arange(dome.width) + 0.5) * 360.0 / dome.width - 180.0
    behind = dome.color[:, (el > 8) & (el < 32)][:, :, az.abs() > 90]
    assert float(behind.mean(0).min()) > 0.25, float(behind.mean(0).min())  # nothing near the rock's 0.08


def test_sky_quilting_copies_no_vertical_edge_and_lays_flat_windows_flat():
    """Two flat halves of seen sky (blue on the left, paler on the right): the windows across the edge between them
    hold vertical structure (as a trunk in fog does) and are not copied; every other window is flat and, its own mean
    taken out, lays nothing, so the quilted sky is flat (not blotched by the halves' means, not striped by the edge)."""
    dome = SkyDome(texels_per_degree=2.0)
    el = 90.0 - (torch.arange(dome.height) + 0.5) * 180.0 / dome.height
    az = (torch.arange(dome.width) + 0.5) * 360.0 / dome.width - 180.0
    rows = (el > 5) & (el < 35)
    for cols, colour in ((az.abs() < 30) & (az < 0), [0.3, 0.45, 0.8]), ((az.abs() < 30) & (az >= 0), [0.5, 0.6, 0.85]):
        m = rows[:, None] & cols[None, :]
        dome._tex[0, :3, :, 1:-1][:, m] = torch.tensor(colour)[:, None]
        dome._tex[0, 3, :, 1:-1][m] = 1.0
    dome.complete(horizon_elev_deg=2.0)
    behind = dome.color[:, (el > 8) & (el < 32)][:, :, az.abs() > 120]
    assert _variation(behind) < 0.003, _variation(behind)
