import math

import torch

from refine.classical import ClassicalRefiner
from worldgen.core.camera import Camera
from worldgen.core.frame import Frame, RenderedView
from worldgen.pipeline.lift import LiftConfig, depth_edges, footprint_px, lift, lift_mask


def frame_with_step(h=24, w=32) -> Frame:
    """Near wall (depth 2) on the left half, far wall (depth 10) on the right, sky on top rows."""
    cam = Camera.from_fov(60, w, h)
    depth = torch.full((h, w), 10.0)
    depth[:, : w // 2] = 2.0
    sky = torch.zeros(h, w, dtype=torch.bool)
    sky[:4] = True
    depth[sky] = math.inf
    return Frame(torch.rand(h, w, 3), depth, sky, cam)


def test_lift_makes_pixel_sized_gaussians_and_never_sky():
    """One Gaussian per non-sky pixel: centred on its unprojected point, with that pixel's colour and the
    configured opacity, a flat disc (thickness `flatness` of its smaller in-plane size), sigma_px pixels across
    (smaller on depth edges), never bridging a discontinuity."""
    f = frame_with_step()
    cfg = LiftConfig()
    mask = lift_mask(f, None, None, cfg)
    assert not mask[:4].any() and mask[4:].all()
    g = lift(f, mask, cfg)
    assert len(g) == int(mask.sum())
    # Centres sit on the unprojected pixels, coloured as those pixels, all at the configured opacity.
    assert torch.allclose(g.means, f.camera.unproject(torch.where(mask, f.depth, 1.0))[mask], atol=1e-5)
    assert torch.equal(g.colors, f.rgb[mask])
    assert torch.allclose(g.opacities(), torch.full((len(g),), cfg.opacity), atol=1e-6)
    s = g.log_scales.exp()
    assert torch.allclose(s[:, 2], s[:, :2].amin(-1) * cfg.flatness, rtol=1e-5)  # flat: thin along the normal
    # Size follows the pixel footprint: sigma_px pixels at the Gaussian's depth (smaller on edges).
    fp = footprint_px(g, f.camera)[:, 0]
    edges = depth_edges(f.depth, cfg.edge_ratio)[mask]
    assert torch.allclose(fp[~edges], torch.full_like(fp[~edges], cfg.sigma_px), rtol=1e-4)
    assert (fp[edges] < cfg.sigma_px).all()
    # None bridges the discontinuity: every 3-sigma extent is under an eighth of the 8-unit gap.
    assert (g.log_scales.exp().amax(-1) * 3 < 1.0).all()


def test_lifted_ground_lies_flat_on_the_ground_with_its_stretch_capped():
    """Pixels of a ground plane seen at a slant become discs on the plane (normal along the plane's, towards the
    camera), stretched along the slant by the footprint but never beyond `max_stretch` fronto-parallel pixels."""
    from worldgen.core.camera import quat_to_rotmat

    h, w = 96, 128  # (tall enough for ground rows off the depth edges: next rows' depths within edge_ratio)
    cam = Camera.from_fov(60, w, h)
    v = torch.arange(h, dtype=torch.float32) + 0.5
    depth = (cam.fy * 1.0 / (v - h / 2)).clamp(min=0)[:, None].repeat(1, w)  # ground 1 unit below the camera
    sky = torch.zeros(h, w, dtype=torch.bool)
    sky[: h // 2 + 1] = True  # at and above the horizon
    depth[sky] = math.inf
    f = Frame(torch.rand(h, w, 3), depth, sky, cam)
    cfg = LiftConfig()
    mask = lift_mask(f, None, None, cfg)
    g = lift(f, mask, cfg)
    inner = ~depth_edges(f.depth, cfg.edge_ratio)[mask]  # (the row next to the sky is an edge)
    assert int(inner.sum()) > 2000
    normal = quat_to_rotmat(g.quats)[:, :, 2][inner]  # the discs' local z axis
    assert torch.allclose(normal, torch.tensor([0.0, -1.0, 0.0]).expand_as(normal), atol=1e-4)  # up, to the camera
    base = f.depth[mask][inner] / cam.fx  # a fronto-parallel pixel at that depth
    s = g.log_scales.exp()[inner]
    assert (s[:, :2].amax(-1) <= cfg.max_stretch * base * cfg.sigma_px * (1 + 1e-4)).all()
    assert (s[:, :2].amax(-1) > 2.0 * base * cfg.sigma_px).any()  # (grazing rows do reach the cap)


def test_lift_mask_takes_only_what_the_scene_lacks():
    f = frame_with_step()
    alpha = torch.ones(24, 32)
    alpha[10:14, 10:20] = 0.0  # a hole
    footprint = torch.full((24, 32), 0.6)
    footprint[20:, :] = 3.5  # coarse Gaussians up close
    m = lift_mask(f, alpha, footprint, LiftConfig())
    expected = torch.zeros(24, 32, dtype=torch.bool)
    expected[10:14, 10:20] = True
    expected[20:] = True
    assert torch.equal(m, expected)


def test_finer_gaussians_only_where_the_refiner_added_detail():
    """Coarse Gaussians up close get finer ones only where the refined colour differs from the render:
    a refiner that returns the render there adds nothing to the world."""
    f = frame_with_step()
    alpha = torch.ones(24, 32)
    footprint = torch.full((24, 32), 3.5)  # everything coarse
    rendered = f.rgb * alpha[..., None]  # the render is what the refiner returned ...
    assert not lift_mask(f, alpha, footprint, LiftConfig(), rendered).any()
    changed = f.rgb.clone()
    changed[5:9, 5:9] = (changed[5:9, 5:9] + 0.1).clamp(0, 1) - 0.05  # ... but here it added detail
    g = Frame(changed, f.depth, f.sky, f.camera)
    m = lift_mask(g, alpha, footprint, LiftConfig(), rendered)
    expected = torch.zeros(24, 32, dtype=torch.bool)
    expected[5:9, 5:9] = True
    assert torch.equal(m, expected)
    assert torch.equal(lift_mask(f, alpha, footprint, LiftConfig(detail_change=0.0), rendered), ~f.sky)  # the old rule


def test_a_pixel_mostly_drawn_by_fine_gaussians_is_not_lifted_again():
    """Fine Gaussians lifted over a coarse one draw most of the pixel but not all of it, so the pixel's mean
    footprint stays above detail_px: judged by it, the same pixels were lifted again every frame (a real-photo
    flight re-lifted up to 27,000 of 65,536 pixels a frame). Judged by the share drawn by fine Gaussians, only
    pixels the fine ones do not yet draw are lifted. The renderer's share is checked on a real render."""
    from renderers import TorchRenderer
    from worldgen.core.scene import GaussianScene, inverse_sigmoid
    from worldgen.pipeline.generator import GeneratorConfig, make_generator

    f = frame_with_step()
    alpha = torch.ones(24, 32)
    changed = Frame((f.rgb + 0.1).clamp(0, 1), f.depth, f.sky, f.camera)  # the refiner changed every pixel
    footprint = torch.full((24, 32), 5.0)  # mean footprint: 80 % at 1 px in front of 20 % at 21 px
    fine = torch.full((24, 32), 0.8)
    fine[:, 24:] = 0.3  # here the fine Gaussians draw less than half
    m = lift_mask(changed, alpha, footprint, LiftConfig(), f.rgb, fine)
    assert torch.equal(m, ~f.sky & (torch.arange(32) >= 24))
    assert torch.equal(lift_mask(changed, alpha, footprint, LiftConfig(), f.rgb), ~f.sky)  # the mean footprint's rule

    # RenderedView.fine_share from a render: a 40-px Gaussian behind a layer of pixel-sized ones
    cam = Camera.from_fov(60, 32, 24)
    gen = make_generator("persistent", f, TorchRenderer(), refiner=lambda v: None, config=GeneratorConfig(),
                         time_stages=False)
    n = 24 * 32
    front = cam.unproject(torch.full((24, 32), 5.0))  # one Gaussian per pixel, at depth 5
    px = 5.0 / cam.fx  # one pixel at depth 5, world units
    fine_g = GaussianScene(front.reshape(n, 3), torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                           torch.full((n, 3), math.log(0.45 * px)), torch.full((n,), float(inverse_sigmoid(0.6))),
                           torch.rand(n, 3))
    big = GaussianScene(cam.unproject(torch.full((24, 32), 6.0))[12:13, 16].reshape(1, 3),
                        torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), math.log(40 * 6.0 / cam.fx)),
                        torch.full((1,), float(inverse_sigmoid(0.98))), torch.rand(1, 3))
    gen.scene = GaussianScene.empty()  # (only rendered here)
    gen.scene.append(big)
    gen.scene.append(fine_g)
    v = gen.render_view(cam)
    centre = v.fine_share[6:18, 8:24]
    assert (centre > 0.5).all() and (v.footprint[6:18, 8:24] > 2.0).all()  # fine by share, coarse by the mean


def view_from(frame: Frame, alpha: torch.Tensor, sky_known: torch.Tensor, horizon=90.0) -> RenderedView:
    rgb = frame.rgb * alpha[..., None]
    depth = torch.where(torch.isfinite(frame.depth), frame.depth, torch.zeros_like(frame.depth))
    return RenderedView(frame.camera, rgb, alpha, depth, None, torch.full_like(frame.rgb, 0.7) * sky_known[..., None], sky_known, horizon)


def test_refiner_keeps_covered_pixels_and_fills_holes_from_the_background():
    f = frame_with_step()
    alpha = torch.ones(24, 32)
    alpha[:4] = 0.0  # sky region, seen before
    alpha[8:20, 16:20] = 0.0  # disocclusion hole right of the near wall
    sky_known = torch.zeros(24, 32)
    sky_known[:4] = 1.0
    out = ClassicalRefiner()(view_from(f, alpha, sky_known))
    covered = alpha > 0.5
    assert torch.allclose(out.rgb[covered], f.rgb[covered], atol=1e-5)  # untouched
    assert out.sky[:4].all() and not out.sky[4:].any()
    assert torch.allclose(out.rgb[:4], torch.full((4, 32, 3), 0.7))
    hole = out.depth[8:20, 16:20]
    assert torch.allclose(hole, torch.full_like(hole, 10.0), rtol=1e-3)  # continues the far wall
    assert torch.isfinite(out.depth[4:]).all() and torch.isposinf(out.depth[:4]).all()


def test_hole_colour_comes_from_the_far_side_not_the_near_wall():
    """A red near wall and a green far wall: the disocclusion between them is painted green (the near wall's
    colour bled into the hole before 2026-12-05: about 31 % red)."""
    f = frame_with_step()
    rgb = torch.zeros(24, 32, 3)
    rgb[:, :16, 0] = 1.0  # near wall red
    rgb[:, 16:, 1] = 1.0  # far wall green
    f = Frame(rgb, f.depth, f.sky, f.camera)
    alpha = torch.ones(24, 32)
    alpha[:4] = 0.0
    alpha[8:20, 16:20] = 0.0
    sky_known = torch.zeros(24, 32)
    sky_known[:4] = 1.0
    out = ClassicalRefiner()(view_from(f, alpha, sky_known))
    hole = out.rgb[8:20, 16:20]
    assert float(hole[..., 0].max()) < 0.05 and float(hole[..., 1].min()) > 0.95


def test_refiner_takes_unseen_directions_above_the_horizon_for_sky():
    f = frame_with_step()
    alpha = torch.ones(24, 32)
    alpha[:6] = 0.0
    alpha[14:18, 4:8] = 0.0  # a hole below the horizon stays ground
    out = ClassicalRefiner()(view_from(f, alpha, torch.zeros(24, 32), horizon=0.0))
    elev_top = -f.camera.rays_world()[0, 16, 1]
    assert elev_top > 0 and out.sky[:6].all()
    assert float(-f.camera.rays_world()[14, 4, 1]) < 0 and not out.sky[14:18, 4:8].any()
    assert torch.isfinite(out.depth[14:18, 4:8]).all()


def test_sky_fallbacks_semi_transparent_edges_and_views_with_nothing_covered():
    """Covered pixels with alpha < 1 show the scene's own colour (rgb / alpha); sky pixels the scene covers partly
    are the scene composited over the sky (rgb + (1 - alpha) sky); with no dome yet, the sky continues the image's
    own covered colours; with nothing covered, holes take the sky's colour and go 1000 away (no far side)."""
    f = frame_with_step()
    f = Frame(torch.full((24, 32, 3), 0.3), f.depth, f.sky, f.camera)
    alpha = torch.ones(24, 32)
    alpha[:4] = 0.0
    alpha[4:6] = 0.3  # a thin semi-transparent edge against the known sky
    alpha[6:8] = 0.6  # covered, not opaque
    sky_known = torch.zeros(24, 32)
    sky_known[:6] = 1.0
    out = ClassicalRefiner()(view_from(f, alpha, sky_known))
    assert out.sky[4:6].all()
    assert torch.allclose(out.rgb[4:6], torch.full((2, 32, 3), 0.3 * 0.3 + 0.7 * 0.7), atol=1e-5)
    assert not out.sky[6:8].any() and torch.allclose(out.rgb[6:8], torch.full((2, 32, 3), 0.3), atol=1e-5)
    alpha = torch.ones(24, 32)
    alpha[:6] = 0.0  # open sky above the horizon, unseen by the (empty) dome
    out = ClassicalRefiner()(view_from(f, alpha, torch.zeros(24, 32), horizon=0.0))
    assert out.sky[:6].all() and torch.allclose(out.rgb[:6], torch.full((6, 32, 3), 0.3), atol=1e-4)
    sky_known = torch.zeros(24, 32)
    sky_known[:4] = 1.0
    out = ClassicalRefiner()(view_from(f, torch.zeros(24, 32), sky_known))  # nothing covered; horizon at 90 deg
    assert out.sky[:4].all() and not out.sky[4:].any()
    assert torch.allclose(out.rgb[4:], torch.full((20, 32, 3), 0.7), atol=1e-4)  # the sky's colour
    assert torch.equal(out.depth[4:], torch.full((20, 32), 1e3))
