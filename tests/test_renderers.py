"""Renderers: the pure-PyTorch backend against hand-computed cases and its slow gsplat transcription,
and (on a GPU machine) against gsplat itself."""

from __future__ import annotations

import math

import pytest
import torch

from renderers import GsplatRenderer, Render, TorchRenderer, get_renderer
from renderers.torch_backend import ALPHA_MIN
from renderers.torch_reference import render_reference
from worldgen.core.camera import Camera, look_at
from worldgen.core.scene import GaussianScene, inverse_sigmoid

FOV = 60.0


def make_scene(means, sigmas, opacities, colors, quats=None) -> GaussianScene:
    """Isotropic Gaussians: means [N, 3], sigmas [N] (world units), opacities [N], colors [N, 3]."""
    means = torch.as_tensor(means, dtype=torch.float32).reshape(-1, 3)
    n = means.shape[0]
    sig = torch.as_tensor(sigmas, dtype=torch.float32).reshape(n)
    q = torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1) if quats is None else torch.as_tensor(quats, dtype=torch.float32)
    return GaussianScene(
        means=means,
        quats=q,
        log_scales=sig.log()[:, None].repeat(1, 3),
        opacity_logits=torch.logit(torch.as_tensor(opacities, dtype=torch.float32).reshape(n).double()).float(),
        colors=torch.as_tensor(colors, dtype=torch.float32).reshape(n, 3),
    )


def random_scene(n: int, seed: int) -> GaussianScene:
    """Seeded mix of small, large, anisotropic, partly off-screen and a few behind-camera Gaussians."""
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(n, generator=g) * 6 + 1.5
    xy = (torch.rand(n, 2, generator=g) - 0.5) * 1.6 * z[:, None]  # some beyond the 60 deg view
    means = torch.cat([xy, z[:, None]], 1)
    means[: n // 50, 2] *= -1  # behind the camera
    log_s = torch.empty(n, 3).uniform_(math.log(0.005), math.log(0.4), generator=g)
    return GaussianScene(
        means=means,
        quats=torch.randn(n, 4, generator=g),
        log_scales=log_s,
        opacity_logits=inverse_sigmoid(torch.rand(n, generator=g) * 0.99 + 0.005),
        colors=torch.rand(n, 3, generator=g),
    )


def assert_render_close(a: Render, b: Render, atol: float) -> None:
    for name in ("rgb", "alpha", "depth", "features"):
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            assert x is None and y is None, name
            continue
        assert x.shape == y.shape, name
        err = (x - y).abs().max().item()
        tol = atol * (1 + y.abs().max().item()) if name == "depth" else atol  # depth is in scene units
        assert err <= tol, f"{name}: max abs diff {err:.3g} > {tol:.3g}"


# ---------------------------------------------------------------------------------------- basics
def test_empty_scene_renders_zeros():
    cam = Camera.from_fov(FOV, 20, 12)
    r = TorchRenderer().render(GaussianScene.empty(), cam, features=torch.zeros(0, 4))
    assert r.rgb.shape == (12, 20, 3) and r.depth.shape == (12, 20) and r.alpha.shape == (12, 20)
    assert r.features.shape == (12, 20, 4)
    for t in (r.rgb, r.depth, r.alpha, r.features):
        assert t.dtype == torch.float32 and not t.any()


@pytest.mark.parametrize("opacity, peak", [(0.8, 0.8), (0.99995, 0.999)])  # 0.999 is gsplat's alpha cap
def test_single_gaussian_lands_on_its_pixel(opacity, peak):
    W, H = 32, 24
    cam = Camera.from_fov(FOV, W, H)
    fx = cam.fx
    z, sigma_px = 4.0, 1.5
    # Centre exactly on pixel (row 7, col 21): u = 21.5, v = 7.5.
    u, v = 21.5, 7.5
    x, y = (u - W / 2) / fx * z, (v - H / 2) / fx * z
    scene = make_scene([x, y, z], [sigma_px * z / fx], [opacity], [0.2, 0.6, 1.0])
    r = TorchRenderer().render(scene, cam)
    i, j = divmod(int(r.alpha.argmax()), W)
    assert (i, j) == (7, 21)
    assert r.alpha[7, 21].item() == pytest.approx(peak, abs=1e-6)
    assert r.rgb[7, 21].tolist() == pytest.approx([0.2 * peak, 0.6 * peak, 1.0 * peak], abs=1e-6)
    # Expected depth of one Gaussian is its z wherever it is visible, 0 elsewhere.
    seen = r.alpha > 0
    assert torch.allclose(r.depth[seen], torch.full_like(r.depth[seen], z), atol=1e-5)
    assert (r.depth[~seen] == 0).all() and (~seen).any()
    # One pixel to the right: alpha = opacity exp(-0.5 conic_xx) with the EWA covariance J (s^2 I) J^T + 0.3 I,
    # J the perspective Jacobian at (x, y, z): cov = (f s / z)^2 [[1 + tx^2, tx ty], [tx ty, 1 + ty^2]] + 0.3 I.
    tx, ty = x / z, y / z
    cxx, cyy, cxy = sigma_px**2 * (1 + tx * tx) + 0.3, sigma_px**2 * (1 + ty * ty) + 0.3, sigma_px**2 * tx * ty
    conic_xx = cyy / (cxx * cyy - cxy * cxy)
    assert r.alpha[7, 22].item() == pytest.approx(min(opacity * math.exp(-0.5 * conic_xx), 0.999), rel=1e-5)
    # Beyond gsplat's opacity-aware radius nothing is drawn (and alpha < 1/255 pixels are skipped).
    radius_x = math.ceil(math.sqrt(2 * math.log(opacity * 255)) * math.sqrt(cxx))
    assert r.alpha[7, 21 + radius_x + 1 :].abs().max() == 0 and r.alpha[7, 21 + radius_x - 1] > 0
    assert r.alpha[(r.alpha > 0)].min() >= ALPHA_MIN * 0.999


def test_front_gaussian_dominates_regardless_of_storage_order():
    cam = Camera.from_fov(FOV, 16, 16)
    s = 2.0 * 4 / cam.fx  # 2 px at z = 4
    front = ([0.0, 0.0, 2.0], s / 2, 0.9, [1.0, 0.0, 0.0])
    back = ([0.0, 0.0, 4.0], s, 0.9, [0.0, 0.0, 1.0])
    renders = []
    for order in ([front, back], [back, front]):
        scene = make_scene(*[[g[k] for g in order] for k in range(4)])
        renders.append(TorchRenderer().render(scene, cam))
    a, b = renders
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.alpha, b.alpha) and torch.equal(a.depth, b.depth)
    # Both centred between pixels (7, 7) .. (8, 8); both have the same alpha there (same pixel sigma).
    al = a.alpha[7, 7].item()
    a1 = 1 - math.sqrt(1 - al)  # each Gaussian's alpha at that pixel: 1 - (1 - a1)^2 = al
    red, blue = a.rgb[7, 7, 0].item(), a.rgb[7, 7, 2].item()
    assert red == pytest.approx(a1, rel=1e-5) and blue == pytest.approx(a1 * (1 - a1), rel=1e-5)
    assert red > blue
    assert a.depth[7, 7].item() == pytest.approx((a1 * 2 + a1 * (1 - a1) * 4) / al, rel=1e-5)


def test_features_composite_like_colour():
    scene = random_scene(150, seed=3)
    cam = Camera.from_fov(FOV, 40, 30)
    feats = torch.cat([scene.colors, torch.randn(len(scene), 2, generator=torch.Generator().manual_seed(0))], 1)
    r = TorchRenderer().render(scene, cam, features=feats)
    assert r.features.shape == (30, 40, 5)
    assert torch.allclose(r.features[..., :3], r.rgb, atol=1e-6)  # same weights as the colour channels
    plain = TorchRenderer().render(scene, cam)
    assert plain.features is None and torch.allclose(plain.rgb, r.rgb, atol=1e-6)
    with pytest.raises(ValueError, match="features"):
        TorchRenderer().render(scene, cam, features=torch.zeros(3, 2))


def test_transmittance_stops_before_reaching_1e_minus_4():
    # Five Gaussians stacked on one pixel centre, front to back; one-hot features read each one's weight.
    # Opacity 0.95: T = 0.05, 0.0025, 1.25e-4, then the 4th would give 6.25e-6 <= 1e-4 -> the pixel stops
    # *before* it (gsplat does not composite it), and the 5th, whose alpha (0.05) alone would keep T above
    # 1e-4, is not composited either: the pixel is done, not just skipping.
    cam = Camera.from_fov(FOV, 9, 9)  # pixel (4, 4) has its centre on the optical axis
    zs = [2.0, 3.0, 4.0, 5.0, 6.0]
    ops = [0.95, 0.95, 0.95, 0.95, 0.05]
    scene = make_scene([[0.0, 0.0, z] for z in zs], [0.5 * z / cam.fx for z in zs], ops, [[1.0, 1.0, 1.0]] * 5)
    perm = torch.tensor([3, 0, 4, 2, 1])  # storage order must not matter
    scene = scene.subset(perm)
    r = TorchRenderer().render(scene, cam, features=torch.eye(5)[perm])
    w = r.features[4, 4].tolist()
    assert w == pytest.approx([0.95, 0.05 * 0.95, 0.0025 * 0.95, 0.0, 0.0], abs=1e-6)
    assert r.alpha[4, 4].item() == pytest.approx(1 - 0.05**3, abs=1e-6)
    assert r.depth[4, 4].item() == pytest.approx(sum(wi * z for wi, z in zip(w, zs)) / r.alpha[4, 4].item(), rel=1e-5)


def test_behind_camera_and_nearer_than_near_plane_are_invisible():
    cam = Camera.from_fov(FOV, 16, 12)
    # Huge Gaussians that would cover the whole image if they were projected.
    scene = make_scene([[0.0, 0.0, -3.0], [0.0, 0.0, 0.005]], [3.0, 1.0], [0.99, 0.99], [[1.0, 1.0, 1.0]] * 2)
    r = TorchRenderer().render(scene, cam)
    assert not r.alpha.any() and not r.rgb.any() and not r.depth.any()
    # Turning the camera around makes the first one visible.
    turned = cam.with_pose(look_at(torch.zeros(3), torch.tensor([0.0, 0.0, -1.0])))
    assert TorchRenderer().render(scene, turned).alpha.min() > 0.5


def test_resizing_matches_a_resized_camera():
    scene = random_scene(200, seed=5)
    cam = Camera.from_fov(FOV, 24, 18)
    r = TorchRenderer().render(scene, cam, width=48, height=36)
    direct = TorchRenderer().render(scene, cam.resized(48, 36))
    assert r.rgb.shape == (36, 48, 3) and r.alpha.shape == (36, 48)
    assert torch.equal(r.rgb, direct.rgb) and torch.equal(r.depth, direct.depth)
    # A single Gaussian's pixel position doubles with the resolution.
    one = make_scene([[0.3, -0.2, 3.0]], [0.01], [0.9], [[1.0, 1.0, 1.0]])
    small, big = TorchRenderer().render(one, cam), TorchRenderer().render(one, cam, width=48, height=36)

    def uv(alpha):  # alpha-weighted centroid of pixel centres, (row, col)
        ij = torch.stack(torch.meshgrid(torch.arange(alpha.shape[0]), torch.arange(alpha.shape[1]), indexing="ij"), -1)
        return ((ij.float() + 0.5) * alpha[..., None]).sum((0, 1)) / alpha.sum()

    assert torch.allclose(uv(big.alpha), 2 * uv(small.alpha), atol=0.05)


# ------------------------------------------------------------------- fast path vs the reference
@pytest.mark.parametrize("max_pairs", [1 << 23, 2000])  # one chunk, and many depth-ordered chunks
def test_fast_path_matches_slow_reference(max_pairs):
    scene = random_scene(400, seed=11)
    # Add an opaque clump so that some pixels hit the T <= 1e-4 stop rule.
    clump = make_scene(
        torch.tensor([[0.2, 0.1, 3.0]]) + 0.05 * torch.randn(40, 3, generator=torch.Generator().manual_seed(1)),
        [0.08] * 40, [0.97] * 40, torch.rand(40, 3, generator=torch.Generator().manual_seed(2)),
    )
    scene.append(clump)
    # And two large opaque Gaussians in front of part of the view: there every pixel stops early (and
    # with many chunks, whole tiles are skipped).
    scene.append(make_scene([[-0.2, 0.0, 1.0], [-0.1, 0.1, 1.1]], [0.5, 0.5], [0.995, 0.995], [[0.9, 0.8, 0.1]] * 2))
    c2w = look_at(torch.tensor([0.3, -0.2, -0.5]), torch.tensor([0.0, 0.0, 4.0]))
    cam = Camera.from_fov(FOV, 40, 30, c2w=c2w)
    feats = torch.randn(len(scene), 2, generator=torch.Generator().manual_seed(4))
    fast = TorchRenderer(max_pairs=max_pairs).render(scene, cam, features=feats)
    ref = render_reference(scene, cam, features=feats)
    assert (ref.alpha > 0.999).any()  # some pixels reach the T <= 1e-4 stop rule
    # Both are float32 implementations of the same formulas but in different arithmetic (reference:
    # float64 projection, direct quadratic form, running float32 product for T; fast: float32
    # projection, the quadratic form expanded around 4x4 tile centres, float64 log-sum for T), so they
    # differ by float32 rounding only: ~1e-6 of the values. 2e-5 leaves room for accumulation over
    # ~50 Gaussians per pixel but would catch any wrong, missing or misordered Gaussian (>= 1/255 each).
    assert_render_close(fast, ref, atol=2e-5)


def test_gradients_match_finite_differences():
    scene = random_scene(60, seed=8)
    params = (scene.means, scene.quats, scene.log_scales, scene.opacity_logits, scene.colors)
    params = tuple(t.double().requires_grad_() for t in params)
    cam = Camera.from_fov(FOV, 16, 12)
    cam = Camera(cam.K.double(), cam.c2w.double(), 16, 12)

    def loss(means, quats, log_scales, opacity_logits, colors):
        r = TorchRenderer().render(GaussianScene(means, quats, log_scales, opacity_logits, colors), cam)
        return r.rgb.sum() + r.alpha.sum() + 0.1 * r.depth.sum()

    assert torch.autograd.gradcheck(loss, params, eps=1e-6, atol=1e-4, rtol=1e-3, fast_mode=True)


# ---------------------------------------------------------------------------------- selection
def test_a_non_finite_gradient_row_into_gsplat_is_zeroed_and_counted():
    """gsplat's backward sometimes returns NaN for a few Gaussians: those rows get no gradient (and are
    counted), the others keep theirs exactly; the forward value is unchanged. (The wrapper itself is
    plain PyTorch, so it is tested here on the CPU; GsplatRenderer applies it only with autograd on.)"""
    from renderers.gsplat_backend import zero_nonfinite_grad_rows

    x = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], requires_grad=True)
    counter = torch.zeros((), dtype=torch.int64)
    y = zero_nonfinite_grad_rows(x, counter)
    assert torch.equal(y, x)
    # row 0: d sqrt(u)/du at u = 0 is inf (a NaN after the chain rule's 0 * inf); rows 1, 2: finite
    (y[:, 0].sqrt().sum() * 0 + y[:, 0].sqrt().sum() + (y ** 2).sum()).backward()
    assert int(counter) == 1
    assert torch.equal(x.grad[0], torch.zeros(2))
    assert torch.allclose(x.grad[1:], torch.tensor([[4 + 1 / (2 * math.sqrt(2)), 6.0], [8 + 0.25, 10.0]]))


def test_get_renderer_picks_by_device():
    assert isinstance(get_renderer("torch"), TorchRenderer)
    assert isinstance(get_renderer("cpu"), TorchRenderer)
    if torch.cuda.is_available():
        assert isinstance(get_renderer("auto"), GsplatRenderer)
        assert isinstance(get_renderer("cuda"), GsplatRenderer)
    else:
        assert isinstance(get_renderer("auto"), TorchRenderer)
        for name in ("gsplat", "cuda", "cuda:0"):
            with pytest.raises(ValueError, match="CUDA"):
                get_renderer(name)
        with pytest.raises(ValueError, match="CUDA"):
            GsplatRenderer().render(GaussianScene.empty(), Camera.from_fov(FOV, 8, 8))
    with pytest.raises(ValueError, match="unknown"):
        get_renderer("vulkan-please")


# ---------------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (gsplat cannot run on CPU)")
def test_gsplat_and_torch_backends_agree_on_gpu():
    scene = random_scene(2000, seed=21).to("cuda")
    cam = Camera.from_fov(FOV, 128, 96, c2w=look_at(torch.tensor([0.1, -0.3, -0.5]), torch.tensor([0.0, 0.0, 4.0])))
    feats = torch.randn(len(scene), 3, generator=torch.Generator().manual_seed(0)).cuda()
    g = GsplatRenderer().render(scene, cam, features=feats)
    t = TorchRenderer().render(scene, cam, features=feats)
    # Same rules in float32, but gsplat uses fast-math (__expf) and a different summation order, and a
    # pixel sitting exactly on the 1/255 or T <= 1e-4 thresholds may flip between them (one Gaussian's
    # contribution, rare). So: mean abs diff tiny, and the 99th percentile still small.
    for name in ("rgb", "alpha", "features"):
        d = (getattr(g, name) - getattr(t, name)).abs()
        assert d.mean().item() < 1e-3, name
        assert d.flatten().float().quantile(0.99).item() < 1e-2, name
    both = (g.alpha > 0.5) & (t.alpha > 0.5)
    assert ((g.depth - t.depth).abs()[both] / g.depth[both]).mean().item() < 1e-3
