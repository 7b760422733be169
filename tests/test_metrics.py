"""Metrics on constructed cases with known answers: scores, reprojection / flicker, revisits, LPIPS offline."""

import math

import pytest
import torch

from worldgen.core.camera import Camera, look_at
from worldgen.core.metrics import (
    PSNR_CAP_DB,
    capped_mean_psnr,
    flicker,
    make_lpips,
    mae,
    psnr,
    reproject,
    revisit_error,
    revisit_pairs,
    same_pose,
    ssim,
    ssim_map,
)
from worldgen.pipeline.paths import make_path


def textured(h=32, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(h, w, 3, generator=g) * 0.8 + 0.1


# ----------------------------------------------------------------------------- image scores
def test_identical_images_score_perfectly():
    a = textured()
    assert psnr(a, a) == math.inf
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert mae(a, a) == 0.0
    s = revisit_error(a, a.clone())
    assert (s.psnr, s.mae) == (math.inf, 0.0) and s.ssim == pytest.approx(1.0, abs=1e-6)


def test_known_offset_and_noise_give_the_expected_error():
    a = textured()
    b = a + 0.1  # MSE 0.01 -> 20 dB exactly; MAE 0.1
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-4)
    assert mae(a, b) == pytest.approx(0.1, abs=1e-6)
    g = torch.Generator().manual_seed(3)
    flat = torch.full((256, 256, 3), 0.5)
    noisy = flat + 0.05 * torch.randn(flat.shape, generator=g)  # sigma 0.05 -> 26.02 dB, MAE 0.05*sqrt(2/pi)
    assert psnr(flat, noisy) == pytest.approx(-20 * math.log10(0.05), abs=0.05)
    assert mae(flat, noisy) == pytest.approx(0.05 * math.sqrt(2 / math.pi), rel=0.01)
    # SSIM: symmetric, and falls with the amount of noise
    n1 = textured() + 0.02 * torch.randn(32, 48, 3, generator=g)
    n2 = textured() + 0.2 * torch.randn(32, 48, 3, generator=g)
    assert ssim(a, n1) == pytest.approx(ssim(n1, a), abs=1e-6)
    assert 1.0 > ssim(a, n1) > ssim(a, n2)


def test_ssim_map_is_batched_and_differentiable():
    """The training loss's SSIM map: one image of a batch scores as `ssim` scores it alone, and its gradient
    moves a noisy image toward the clean one."""
    g = torch.Generator().manual_seed(5)
    a = torch.stack([textured(seed=1), textured(seed=2)]).permute(0, 3, 1, 2)  # [2, 3, 32, 48]
    b = (a + 0.1 * torch.randn(a.shape, generator=g)).clamp(0, 1).requires_grad_(True)
    m = ssim_map(b, a)
    assert m.shape == a.shape
    for i in range(2):
        assert float(m[i].mean()) == pytest.approx(ssim(b[i].detach().permute(1, 2, 0), a[i].permute(1, 2, 0)), abs=1e-6)
    (1 - m.mean()).backward()
    stepped = (b - 0.5 * b.grad / b.grad.abs().max()).detach()
    assert float(ssim_map(stepped, a).mean()) > float(m.mean())
    with pytest.raises(ValueError):
        ssim_map(a[0], a[0])


def test_masked_scores_and_capped_mean():
    a = textured()
    b = a.clone()
    b[:, :10] += 0.5
    mask = torch.zeros(32, 48, dtype=torch.bool)
    mask[:, 10:] = True
    assert psnr(a, b, mask) == math.inf and mae(a, b, mask) == 0.0
    assert math.isnan(psnr(a, b, torch.zeros_like(mask)))
    assert capped_mean_psnr([math.inf, 20.0, math.nan]) == pytest.approx((PSNR_CAP_DB + 20.0) / 2)
    assert math.isnan(capped_mean_psnr([math.nan]))


# ----------------------------------------------------------------------------- reprojection
def moved(cam: Camera, dx=0.0, dy=0.0, dz=0.0) -> Camera:
    c2w = cam.c2w.clone()
    c2w[:3, 3] += torch.tensor([dx, dy, dz])
    return cam.with_pose(c2w)


def test_reproject_to_the_same_camera_is_the_identity():
    cam = Camera.from_fov(60, 48, 32)
    rgb = textured()
    depth = torch.rand(32, 48) * 5 + 1
    depth[:5] = math.inf  # sky rows
    warped, valid = reproject(rgb, depth, cam, cam)
    assert bool(valid.all()) and torch.equal(warped, rgb)
    assert flicker(rgb, depth, cam, rgb, cam).psnr == math.inf


def test_plane_with_integer_pixel_motion_has_zero_flicker():
    """A textured fronto-parallel plane at z = 5; the camera moves right by exactly 3 pixels' worth."""
    W, H, z, k = 48, 32, 5.0, 3
    cam0 = Camera.from_fov(60, W, H)
    tex = textured(H, W + k)  # the plane's texture, one texel per pixel of the first view (plus margin)
    prev = tex[:, :W]
    cam1 = moved(cam0, dx=k * z / cam0.fx)  # content shifts left by k px
    cur = tex[:, k : k + W]
    depth = torch.full((H, W), z)
    s = flicker(prev, depth, cam0, cur, cam1)
    assert s.psnr == math.inf and s.mae == 0.0
    assert s.coverage == pytest.approx((W - k) / W)
    # A wrong pose (no motion) is caught: large error.
    assert flicker(prev, depth, cam0, cur, cam0).mae > 0.1


def test_subpixel_motion_on_a_ramp_gives_the_known_error():
    """Nearest-pixel warping of a linear ramp moved by a quarter pixel errs by slope * 1/4 everywhere."""
    W, H, z, slope = 48, 32, 4.0, 0.01
    cam0 = Camera.from_fov(60, W, H)
    cols = torch.arange(W, dtype=torch.float32)
    prev = (0.2 + slope * cols)[None, :, None].expand(H, W, 3).contiguous()
    cam1 = moved(cam0, dx=0.25 * z / cam0.fx)
    cur = (0.2 + slope * (cols + 0.25))[None, :, None].expand(H, W, 3).contiguous()
    s = flicker(prev, torch.full((H, W), z), cam0, cur, cam1)
    assert s.mae == pytest.approx(slope * 0.25, rel=1e-3)
    assert s.coverage == pytest.approx(1.0)


def ground_view(cam: Camera, height=1.0):
    """Exact render of a flat ground plane y = height (world, +y down) with a smooth texture, sky above."""
    rays = cam.rays_cam() @ cam.rotation.T  # [H, W, 3] world directions, scaled so camera z = 1
    o = cam.position
    t = (height - o[1]) / rays[..., 1]
    hit = t > 0
    p = o + t[..., None] * rays
    col = torch.stack([0.5 + 0.3 * torch.sin(p[..., 0] * 2), 0.5 + 0.3 * torch.cos(p[..., 2] * 2),
                       torch.full_like(t, 0.4)], -1)
    rgb = torch.where(hit[..., None], col, torch.tensor([0.6, 0.7, 0.9]))
    depth = torch.where(hit, t, torch.full_like(t, math.inf))  # rays have camera z = 1, so t is z-depth
    return rgb, depth


def test_ground_plane_flight_reprojects_consistently():
    """A smooth ground plane seen from two known poses (looking down, moving in and turning): the error
    is resampling only; a wrong pose gives a large one. (The view avoids the horizon: the warp is
    nearest-pixel, so a sharp sky/ground edge would add one-pixel errors along it.)"""
    W, H = 96, 64
    c0 = Camera.from_fov(60, W, H, look_at(torch.tensor([0.0, 0.0, 0.0]), torch.tensor([0.0, 3.0, 3.0])))
    c1 = Camera.from_fov(60, W, H, look_at(torch.tensor([0.1, -0.05, 0.4]), torch.tensor([0.3, 3.0, 3.3])))
    rgb0, d0 = ground_view(c0)
    rgb1, _ = ground_view(c1)
    assert bool(torch.isfinite(d0).all())
    good = flicker(rgb0, d0, c0, rgb1, c1)
    bad = flicker(rgb0, d0, c0, rgb1, c0)
    assert good.coverage > 0.4  # moving in magnifies: some pixels of frame t receive no pixel of t-1
    assert good.psnr > 45 and good.mae < 0.003
    assert bad.mae > 10 * good.mae


def test_nearest_surface_wins_and_sky_loses():
    W, H = 48, 32
    cam0 = Camera.from_fov(60, W, H)
    rgb = torch.zeros(H, W, 3)
    depth = torch.full((H, W), 10.0)
    rgb[10:20, 20:30] = 1.0  # a near square at z = 2 in front of a far wall at z = 10
    depth[10:20, 20:30] = 2.0
    rgb[:4] = 0.5  # sky rows on top
    depth[:4] = math.inf
    cam1 = moved(cam0, dx=-0.1)  # the near square moves right by fx * 0.1 / 2 px, the wall by a fifth of that
    warped, valid = reproject(rgb, depth, cam0, cam1)
    shift = round(cam0.fx * 0.1 / 2)
    assert bool((warped[12:18, 20 + shift + 1 : 30 + shift - 1] == 1.0).all())  # the square covers the wall
    assert bool((warped[:3, 5:40] == 0.5).all())  # sky stays put under pure translation
    assert not bool(valid[12:18, 20:21].all())  # a disocclusion hole opened behind the square's left edge


def test_reproject_checks_shapes():
    cam = Camera.from_fov(60, 48, 32)
    with pytest.raises(ValueError, match="reproject"):
        reproject(torch.zeros(32, 47, 3), torch.ones(32, 48), cam, cam)


# ----------------------------------------------------------------------------- revisits
def test_revisit_pairs_of_a_retrace_loop():
    cam = Camera.from_fov(60, 48, 32)
    poses = make_path("loop", cam, 2.0, 9, retrace=True).poses()
    assert revisit_pairs(poses) == [(3, 5), (2, 6), (1, 7), (0, 8)]
    even = make_path("loop", cam, 2.0, 8, retrace=True).poses()  # middle two frames share a pose: gap 1, not a revisit
    assert revisit_pairs(even) == [(2, 5), (1, 6), (0, 7)]
    assert revisit_pairs(make_path("forward", cam, 2.0, 6).poses()) == []
    assert same_pose(poses[0], poses[0] + 1e-7) and not same_pose(poses[0], poses[1])
    with pytest.raises(ValueError):
        revisit_pairs(poses[0])


def test_a_camera_standing_still_pairs_each_frame_once_with_the_earliest_visit():
    """A camera that stands still for five frames: each frame from t = 2 on is one revisit, paired with frame 0 (the
    earliest visit at least two frames back), never once per earlier frame at that pose."""
    pose = make_path("forward", Camera.from_fov(60, 48, 32), 2.0, 2).poses()[1]
    assert revisit_pairs(pose.expand(5, 4, 4)) == [(0, 2), (0, 3), (0, 4)]


def test_revisit_error_compares_the_two_visits():
    """The second visit 0.1 brighter than the first: MAE 0.1 and 20 dB between them (not the first visit against
    itself), SSIM below 1."""
    a = textured()
    s = revisit_error(a, a + 0.1)
    assert s.mae == pytest.approx(0.1, abs=1e-6) and s.psnr == pytest.approx(20.0, abs=1e-4) and s.ssim < 1.0


# ----------------------------------------------------------------------------- LPIPS
def test_lpips_without_weights_says_so_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache

    def no_network(*a, **k):
        raise AssertionError("LPIPS tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    metric, status = make_lpips("cpu")
    assert metric is None
    assert status.startswith("LPIPS: weights unavailable")


def test_lab_matches_reference_values_and_drift_sees_a_colour_cast():
    from worldgen.core.metrics import colour_drift, rgb_to_lab

    lab = rgb_to_lab(torch.tensor([[1.0, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 0], [0.5, 0.5, 0.5]]))
    want = torch.tensor([[100, 0, 0], [53.24, 80.09, 67.20], [87.73, -86.18, 83.18], [0, 0, 0], [53.39, 0, 0]])
    assert torch.allclose(lab, want, atol=0.02)
    g = torch.Generator().manual_seed(0)
    photo = 0.2 + 0.6 * torch.rand(32, 32, 3, generator=g)
    same = colour_drift(photo, [photo.flip(0), photo.flip(1)])  # the same colours elsewhere in the frame
    assert same["drift"] < 1e-6
    green = photo.clone()
    green[..., 1] = (green[..., 1] + 0.3).clamp(max=1)  # neon-green snow
    cast = colour_drift(photo, [green])
    assert cast["a"] < -15 and cast["mean_de"] > 15 and cast["drift"] >= cast["mean_de"]


def test_spectral_slope_tells_natural_texture_from_noise_and_blur():
    from worldgen.core.metrics import spectral_slope

    g = torch.Generator().manual_seed(0)
    n = 128
    white = torch.rand(n, n, generator=g)
    # 1/f amplitude noise: power ~ f^-2, what natural images show
    f = torch.fft.fftfreq(n)
    radius = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2).clamp_min(1.0 / n)
    spec = torch.fft.fft2(torch.randn(n, n, generator=g)) / radius
    natural = torch.fft.ifft2(spec).real
    blurred = natural[None, None]
    for _ in range(3):
        blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(blurred, (2, 2, 2, 2), mode="replicate"), 5,
                                                 stride=1)
    assert abs(spectral_slope(white)) < 0.3
    assert -2.4 < spectral_slope(natural) < -1.6
    assert spectral_slope(blurred[0, 0]) < -3.5
    assert math.isnan(spectral_slope(torch.full((64, 64), 0.5)))


def test_horizon_bend_tells_a_bowl_from_a_level_horizon():
    from worldgen.core.metrics import horizon_bend

    H, W = 60, 90
    rows = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W)
    cols = torch.arange(W, dtype=torch.float32)[None, :].expand(H, W)
    for level in (10, 30, 50):
        assert abs(horizon_bend(rows < level)) < 1e-6  # level, at any height
    tilted = rows < 20 + 0.2 * cols  # a rolled horizon: the middle is the mean of the sides
    assert abs(horizon_bend(tilted)) < 0.01
    bowl = rows < 40 - 0.01 * (cols - W / 2) ** 2  # ground rising to both sides
    assert horizon_bend(bowl) > 0.1 and horizon_bend(~bowl & (rows < 45)) < -0.1  # and a dome the other way
    assert math.isnan(horizon_bend(torch.zeros(H, W, dtype=torch.bool)))
    assert math.isnan(horizon_bend(torch.ones(H, W, dtype=torch.bool)))
