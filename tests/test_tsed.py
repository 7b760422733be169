"""TSED (worldgen/core/tsed.py): SIFT keypoint positions, the known-pose fundamental matrix and its
conventions, and the consistent / inconsistent verdict on a rendered textured scene."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from worldgen.core.camera import Camera
from worldgen.core.tsed import (PairSED, TsedTracker, error_threshold, fundamental_matrix, match_features,
                                pair_sed, pose_distance, sift_features, symmetric_epipolar_distance, tsed_share)

import cv2  # noqa: E402,F401  (a declared dependency: a broken install fails here instead of skipping)


def yawed(c2w: torch.Tensor, deg: float) -> torch.Tensor:
    """c2w [4, 4] turned by `deg` about world up (-y), in place of its position."""
    a = math.radians(deg)
    R = torch.tensor([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])
    out = c2w.clone()
    out[:3, :3] = R @ out[:3, :3]
    return out


# ------------------------------------------------------------------ a textured 3D scene, rendered exactly
_PLANES = (  # (axis, offset, texture axes): the ground y = +1 (world up is -y), a far wall, a left wall
    (1, 1.0, (0, 2)),
    (2, 8.0, (0, 1)),
    (0, -2.5, (2, 1)),
)


def _texture(seed: int) -> torch.Tensor:
    return torch.rand(1, 1, 96, 96, generator=torch.Generator().manual_seed(seed))


def render_scene(cam: Camera, ss: int = 2) -> np.ndarray:
    """uint8 [H, W, 3] view of three noise-textured planes (grey sky where none is hit), ray-cast at
    `ss` x `ss` samples per pixel through the camera's pixel grid (pixel centres at +0.5) and averaged."""
    big = cam.resized(cam.width * ss, cam.height * ss)
    d = big.rays_cam() @ big.rotation.T  # [H, W, 3] world directions
    o = big.position
    best = torch.full(d.shape[:2], math.inf)
    img = torch.full(d.shape[:2], 0.8)
    for axis, offset, (sa, ta) in _PLANES:
        t = (offset - o[axis]) / d[..., axis]
        t = torch.where(t > 1e-6, t, torch.full_like(t, math.inf))
        p = o + d * t.clamp(max=1e6)[..., None]
        grid = torch.stack([torch.remainder(p[..., sa] / 6.0, 1.0), torch.remainder(p[..., ta] / 6.0, 1.0)], -1) * 2 - 1
        val = 0.15 + 0.7 * F.grid_sample(_texture(axis), grid[None], mode="bicubic", align_corners=False)[0, 0]
        hit = t < best
        img, best = torch.where(hit, val, img), torch.where(hit, t, best)
    img = F.avg_pool2d(img[None, None], ss)[0, 0]
    return np.repeat((img.clamp(0, 1) * 255).round().to(torch.uint8).numpy()[..., None], 3, 2)


@pytest.fixture(scope="module")
def moving_pair():
    """Two 128 px views of the scene: the second 0.4 forward, 0.15 right, 0.05 up and turned 4 degrees."""
    c0 = Camera.from_fov(70.0, 128, 128)
    p1 = yawed(torch.eye(4), 4.0)
    p1[:3, 3] = torch.tensor([0.15, -0.05, 0.4])
    c1 = c0.with_pose(p1)
    return c0, sift_features(render_scene(c0)), c1, sift_features(render_scene(c1))


# ------------------------------------------------------------------ tests
def test_keypoints_are_in_worldgen_pixel_convention():
    """A Gaussian blob centred at (u, v) in worldgen's pixel coordinates (centres at +0.5) is found at (u, v):
    fails for OpenCV's integer-centred keypoints (-0.5) and for its default upscaling (+0.25)."""
    H = W = 96
    v, u = np.mgrid[0:H, 0:W] + 0.5
    centres = [(20.5, 24.5), (60.0, 30.25), (35.75, 70.5), (72.5, 68.0)]
    img = np.full((H, W), 40.0)
    for cu, cv in centres:
        img += 180 * np.exp(-((u - cu) ** 2 + (v - cv) ** 2) / (2 * 3.0**2))
    f = sift_features(img.round().astype(np.uint8))
    for c in centres:
        d = np.abs(f.uv - c).max(1)
        assert d.min() < 0.1, (c, f.uv[d.argmin()])


def test_fundamental_matrix_of_projected_points():
    """World points projected by two cameras satisfy x_b^T F x_a = 0 (SED ~ 0); a 2 degree error does not."""
    g = torch.Generator().manual_seed(3)
    pts = torch.rand(200, 3, generator=g) * torch.tensor([8.0, 4.0, 10.0]) + torch.tensor([-4.0, -2.0, 3.0])
    ca = Camera.from_fov(60.0, 160, 120, c2w=yawed(torch.eye(4), -3.0))
    pb = yawed(torch.eye(4), 7.0)
    pb[:3, 3] = torch.tensor([0.6, -0.2, 0.9])
    cb = ca.with_pose(pb)
    ua, _ = ca.project(pts)
    ub, _ = cb.project(pts)
    ua, ub = ua.double().numpy(), ub.double().numpy()
    Fm = fundamental_matrix(ca, cb)
    assert np.abs(symmetric_epipolar_distance(Fm, ua, ub)).max() < 1e-3  # float32 projections
    assert np.median(symmetric_epipolar_distance(fundamental_matrix(cb, ca), ua, ub)) > 1.0  # order matters
    assert np.median(pose_distance(ca, cb.with_pose(yawed(pb, 2.0)), ua, ub)) > 1.0


def test_distances_are_the_mean_of_both_directions_in_pixels():
    """SED is the mean of x_b's pixel distance to x_a's epipolar line in b and x_a's to x_b's line in a, and the
    no-baseline transfer distance the mean of |H x_a - x_b| and |x_a - H^-1 x_b|: with focal lengths 100 and 200
    px the two directions differ (2 px and 4 px; 2.5 px and 5 px), so neither one alone nor one twice passes."""
    def cam(f: float, x: float = 0.0) -> Camera:
        c2w = torch.eye(4)
        c2w[0, 3] = x
        K = torch.tensor([[f, 0.0, 100.0], [0.0, f, 100.0], [0.0, 0.0, 1.0]])
        return Camera(K=K, c2w=c2w, width=200, height=200)

    ca, cb = cam(100.0), cam(200.0, x=1.0)  # a baseline along x: epipolar lines are rows
    # x_a's line in b is v = 200 * 0.305 + 100 = 161 (x_b 4 px off it); x_b's line in a is v = 132.5 (x_a 2 px off)
    ua, ub = np.array([[120.5, 130.5]]), np.array([[150.0, 165.0]])
    sed = symmetric_epipolar_distance(fundamental_matrix(ca, cb), ua, ub)
    assert sed[0] == pytest.approx(3.0, abs=1e-4)
    # one position: H maps (u, v) to (2u - 100, 2v - 100); x_b is (3, 4) px from H x_a = (140, 160)
    d = pose_distance(ca, cam(200.0), np.array([[120.0, 130.0]]), np.array([[143.0, 164.0]]))
    assert d[0] == pytest.approx(0.5 * (5.0 + 2.5), abs=1e-4)


def test_true_pose_is_consistent_and_a_wrong_one_is_not(moving_pair):
    c0, a, c1, b = moving_pair
    T = error_threshold(128, 128)
    true = pair_sed(a, c0, b, c1)
    assert true.matches >= 10
    assert true.median_sed < 0.3 and true.consistent(T)
    off = pair_sed(a, c0, b, c1.with_pose(yawed(c1.c2w, 3.0)))  # 3 degrees of yaw
    assert off.matches == true.matches and off.median_sed > 2.0 and not off.consistent(T)
    # conventions: world-to-camera taken for camera-to-world, or the pair's order reversed
    assert pair_sed(a, c0.with_pose(c0.w2c), b, c1.with_pose(c1.w2c)).median_sed > 2.0
    assert pair_sed(a, c1, b, c0).median_sed > 2.0


def test_pure_rotation_uses_the_homography():
    """Same position, 6 degrees of yaw: no baseline, so the matches are checked through the rotation."""
    c0 = Camera.from_fov(70.0, 128, 128)
    c2 = c0.with_pose(yawed(torch.eye(4), 6.0))
    a, b = sift_features(render_scene(c0)), sift_features(render_scene(c2))
    good = pair_sed(a, c0, b, c2)
    assert good.matches >= 20 and good.median_sed < 0.2
    assert pair_sed(a, c0, b, c0.with_pose(yawed(torch.eye(4), 3.0))).median_sed > 2.0


def test_tracker_scores_consecutive_pairs(moving_pair):
    c0, _, c1, _ = moving_pair
    tr = TsedTracker()
    assert tr(render_scene(c0), c0) is None
    p = tr(render_scene(c1), c1)
    assert p.matches >= 10 and p.median_sed < 0.3


def test_matching_ratio_test_and_mutual():
    """Noisy twins match one to one; ambiguous descriptors (each twice) fail Lowe's ratio test; with `mutual`, a
    match a -> b is kept only where a is also b's nearest neighbour (two of a's keypoints wanting one of b's)."""
    rng = np.random.default_rng(0)
    desc = rng.uniform(0, 100, (50, 128)).astype(np.float32)
    uv = rng.uniform(0, 100, (50, 2))
    from worldgen.core.tsed import Features

    a = Features(uv, desc)
    b = Features(uv[::-1].copy(), desc[::-1] + rng.normal(0, 1, desc.shape).astype(np.float32))
    ua, ub = match_features(a, b)
    assert len(ua) == 50 and np.allclose(ua, ub)  # every descriptor finds its noisy twin
    twins = Features(np.concatenate([uv, uv + 1]), np.concatenate([desc, desc]))  # each twice: ambiguous
    assert len(match_features(a, twins)[0]) == 0
    # a0 and a1 both pass the ratio test to b0 (b1 is far), but b0's nearest in a is a0: mutual keeps one match
    d0 = desc[0]
    pair = Features(uv[:2], np.stack([d0 + 1.0, d0 + 3.0]))
    one = Features(uv[2:4], np.stack([d0, d0 + 90.0]))
    ua, ub = match_features(pair, one)
    assert len(ua) == 1 and np.allclose(ua, uv[:1]) and np.allclose(ub, uv[2:3])
    assert len(match_features(pair, one, mutual=False)[0]) == 2
    assert len(match_features(Features(np.zeros((0, 2)), np.zeros((0, 128), np.float32)), b)[0]) == 0


def test_threshold_and_share():
    assert error_threshold(256, 256) == 2.0 and error_threshold(128, 96) == 1.0 and error_threshold(384, 512) == 4.0
    seds, n = [0.5, 1.5, 3.0, math.nan, 0.2], [20, 20, 20, 0, 5]
    assert tsed_share(seds, n, 2.0) == pytest.approx(2 / 5)  # 5 matches are too few
    assert tsed_share(seds, n, 2.0, min_matches=5) == pytest.approx(3 / 5)
    assert math.isnan(tsed_share([], [], 2.0))
    assert not PairSED(0, math.nan).consistent(100.0)


def test_missing_opencv_is_one_line(monkeypatch):
    import builtins

    from worldgen.core.io import UserInputError
    from worldgen.core.tsed import sift_detector

    real = builtins.__import__

    def no_cv2(name, *args, **kw):
        if name == "cv2":
            raise ImportError("No module named 'cv2'")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_cv2)
    with pytest.raises(UserInputError, match="opencv-python-headless") as e:
        sift_detector()
    assert "\n" not in str(e.value)
