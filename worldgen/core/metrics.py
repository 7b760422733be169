"""Image and consistency metrics of generated flights.

Images are float [H, W, 3] in [0, 1]; masks are bool [H, W]. Camera conventions are worldgen's
(worldgen/core/camera.py): OpenCV axes, camera-to-world poses, pixel centres at +0.5, z-depth with sky = +inf.

- `psnr`, `ssim`, `mae`: the usual per-image scores (PSNR is +inf for identical images); `ssim_map` is SSIM's
  batched, differentiable per-pixel map (the refiner's training loss uses it).
- `reproject`, `flicker`: temporal consistency. Frame t-1 is forward-warped into frame t's camera with
  its own depth and the known poses (z-buffered, nearest pixel; sky, at infinity, moves with the
  rotation only), then compared with frame t where the warp lands. A perfectly consistent flight
  scores zero error up to the nearest-pixel resampling of the warp.
- `revisit_pairs`, `revisit_error`: a path that passes the same pose twice should show the same
  frame twice.
- `rgb_to_lab`, `lab_stats`, `colour_distance`, `colour_drift`: how far a flight's colours have moved from the photo's
  (CIELAB, D65 white; mean and std per channel).
- `spectral_slope`: the slope of an image's radially averaged power spectrum in log-log; natural
  images sit near -2 (scale invariance), blur makes it steeper, noise flattens it toward 0. It tells
  invented scenery from noise where a detail-energy ratio counts both as detail.
- `LPIPS` / `lpips_status`: the learned perceptual metric, only where its weights are already on
  disk (it never downloads: torchvision's AlexNet weights are fetched from the internet otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from worldgen.core.camera import Camera

PSNR_CAP_DB = 60.0
"""PSNR values are capped here before averaging (identical frames have infinite PSNR)."""


def _check_pair(a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape or a.dim() != 3 or a.shape[-1] != 3:
        raise ValueError(f"images must both be [H, W, 3], got {tuple(a.shape)} and {tuple(b.shape)}")


def psnr(a: Tensor, b: Tensor, mask: Tensor | None = None) -> float:
    """Peak signal-to-noise ratio in dB of a, b [H, W, 3] in [0, 1] (over mask [H, W] if given).

    +inf if equal there; nan if the mask is empty.
    """
    d2 = (a.float() - b.float()).pow(2).mean(-1)
    mse = float(d2[mask].mean() if mask is not None else d2.mean())
    if math.isnan(mse):
        return math.nan
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def mae(a: Tensor, b: Tensor, mask: Tensor | None = None) -> float:
    """Mean absolute error of a, b [H, W, 3] in [0, 1] over channels and pixels (mask [H, W] if given).

    nan if the mask is empty.
    """
    d = (a.float() - b.float()).abs().mean(-1)
    return float(d[mask].mean() if mask is not None else d.mean())


def ssim_map(x: Tensor, y: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Per-pixel structural similarity [B, C, H, W] of images x, y [B, C, H, W] in [0, 1], differentiable.

    Wang et al. 2004: Gaussian window (reflect-padded, so the map keeps the image's size), C1=0.01^2, C2=0.03^2,
    each channel on its own. The window shrinks (keeping it odd) for images smaller than it.
    """
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"images must both be [B, C, H, W], got {tuple(x.shape)} and {tuple(y.shape)}")
    b, c, h, w = x.shape
    window = max(3, min(window, 2 * (min(h, w) // 2) - 1))
    r = torch.arange(window, dtype=torch.float32, device=x.device) - (window - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = (g / g.sum()).to(x.dtype)
    k = (g[:, None] * g[None, :])[None, None]
    blur = lambda t: F.conv2d(F.pad(t.reshape(b * c, 1, h, w), [window // 2] * 4, mode="reflect"), k)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.reshape(b, c, h, w)


def ssim(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Structural similarity (ssim_map's mean) of a, b [H, W, 3] in [0, 1]: 1 for identical images."""
    _check_pair(a, b)
    x, y = a.float().permute(2, 0, 1)[None], b.float().permute(2, 0, 1)[None]  # [1, 3, H, W]
    return float(ssim_map(x, y, window, sigma).mean())


def capped_mean_psnr(values: list[float]) -> float:
    """Mean of PSNR values (dB) with each capped at PSNR_CAP_DB and nan values skipped (nan if none)."""
    v = [min(x, PSNR_CAP_DB) for x in values if not math.isnan(x)]
    return sum(v) / len(v) if v else math.nan


# ============================================================================ reprojection / flicker
@torch.no_grad()
def reproject(rgb: Tensor, depth: Tensor, src: Camera, dst: Camera) -> tuple[Tensor, Tensor]:
    """Forward-warp an image seen by `src` into camera `dst`, using its own depth.

    Each source pixel centre is lifted with its z-depth (world point = src.unproject), projected into
    `dst`, and lands on the destination pixel that contains the projection (nearest pixel: pixel j
    covers u in [j, j + 1)). Where several land on one pixel, the nearest (smallest z in `dst`) wins.
    Sky pixels (depth +inf) are directions at infinity: they move with the rotation only, and lose to
    any finite surface. Pixels with NaN, zero or negative depth, and points behind `dst`, are dropped.

    Args:
        rgb: [H, W, 3] source image (any float values; only copied).
        depth: [H, W] source z-depth, +inf for sky.
        src: the source Camera (width W, height H).
        dst: the destination Camera (its own width W' and height H').

    Returns:
        warped: [H', W', 3] the warped image, 0 where nothing landed.
        valid: [H', W'] bool, True where a source pixel landed.
    """
    H, W = src.height, src.width
    if tuple(rgb.shape) != (H, W, 3) or tuple(depth.shape) != (H, W):
        raise ValueError(f"reproject: rgb must be [{H}, {W}, 3] and depth [{H}, {W}], "
                         f"got {tuple(rgb.shape)}, {tuple(depth.shape)}")
    dev = rgb.device
    src, dst = src.to(dev), dst.to(dev)
    depth = depth.float()
    rays = src.rays_cam()  # [H, W, 3], z = 1
    sky = torch.isposinf(depth)
    solid = torch.isfinite(depth) & (depth > 0)
    # Camera-space coordinates in dst: points for solid pixels, directions for sky.
    d_src = depth.where(solid, torch.ones_like(depth))
    pts_world = (rays * d_src[..., None]) @ src.rotation.T + src.position  # [H, W, 3]
    pc_solid = dst.world_to_camera(pts_world)  # [H, W, 3]
    pc_sky = (rays @ src.rotation.T) @ dst.rotation  # directions: rotation only
    pc = torch.where(sky[..., None], pc_sky, pc_solid).reshape(-1, 3)
    keep = (solid | sky).reshape(-1) & (pc[:, 2] > 1e-6)
    z = pc[:, 2].clamp_min(1e-6)
    u = dst.K[0, 0] * pc[:, 0] / z + dst.K[0, 2]
    v = dst.K[1, 1] * pc[:, 1] / z + dst.K[1, 2]
    Hd, Wd = dst.height, dst.width
    keep &= torch.isfinite(u) & torch.isfinite(v) & (u >= 0) & (u < Wd) & (v >= 0) & (v < Hd)
    src_ids = keep.nonzero().squeeze(1)
    warped = torch.zeros(Hd * Wd, 3, dtype=rgb.dtype, device=dev)
    valid = torch.zeros(Hd * Wd, dtype=torch.bool, device=dev)
    if src_ids.numel():
        tgt = v[src_ids].floor().long().clamp(0, Hd - 1) * Wd + u[src_ids].floor().long().clamp(0, Wd - 1)
        key = torch.where(sky.reshape(-1)[src_ids], torch.full_like(z[src_ids], math.inf), z[src_ids])
        zmin = torch.full((Hd * Wd,), math.inf, device=dev).scatter_reduce(0, tgt, key, "amin", include_self=True)
        win = key == zmin[tgt]  # nearest surface per target (sky wins only where no surface lands)
        best = torch.full((Hd * Wd,), -1, dtype=torch.long, device=dev)
        best = best.scatter_reduce(0, tgt[win], src_ids[win], "amax", include_self=True)  # ties: any one
        valid = best >= 0
        warped[valid] = rgb.reshape(-1, 3)[best[valid]]
    return warped.reshape(Hd, Wd, 3), valid.reshape(Hd, Wd)


@dataclass(frozen=True)
class FlickerScore:
    """Temporal error of one frame against its predecessor warped into it.

    Attributes:
        psnr: dB over the pixels the warp reached (+inf: no change; nan: none reached).
        mae: mean absolute error over those pixels, in [0, 1] units.
        coverage: fraction of frame t's pixels the warp reached.
    """

    psnr: float
    mae: float
    coverage: float


def flicker(prev_rgb: Tensor, prev_depth: Tensor, prev_camera: Camera, rgb: Tensor, camera: Camera) -> FlickerScore:
    """Flicker of frame t: frame t-1 (rgb [H, W, 3], z-depth [H, W] with +inf sky, its Camera)
    reprojected into frame t's `camera` (see `reproject`) against frame t's rgb [H', W', 3]."""
    warped, valid = reproject(prev_rgb, prev_depth, prev_camera, camera)
    rgb = rgb.to(warped.device)
    if not bool(valid.any()):
        return FlickerScore(math.nan, math.nan, 0.0)
    return FlickerScore(psnr(warped, rgb, valid), mae(warped, rgb, valid), float(valid.float().mean()))


# ============================================================================ revisits
def same_pose(a: Tensor, b: Tensor, tol: float = 1e-5) -> bool:
    """True if camera-to-world poses a, b [4, 4] agree: rotation entries within `tol`, positions
    within `tol` relative to their magnitude (at least `tol` absolute)."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    rot = float((a[:3, :3] - b[:3, :3]).abs().max())
    pos = float((a[:3, 3] - b[:3, 3]).norm())
    return rot <= tol and pos <= tol * max(1.0, float(a[:3, 3].norm()))


def revisit_pairs(poses: Tensor, min_gap: int = 2, tol: float = 1e-5) -> list[tuple[int, int]]:
    """Pairs (t1, t2), t1 < t2, of frames of a flight that share a pose (see `same_pose`).

    Each later frame t2 is paired with the earliest t1 <= t2 - min_gap at the same pose (so a camera
    standing still for a frame or two is not a revisit). Sorted by t2.

    Args:
        poses: [T, 4, 4] camera-to-world poses of the flight.
        min_gap: the least number of frames between the two visits.
        tol: pose tolerance (see `same_pose`).
    """
    if poses.dim() != 3 or tuple(poses.shape[1:]) != (4, 4):
        raise ValueError(f"poses must be [T, 4, 4], got {tuple(poses.shape)}")
    P = poses.detach().double().cpu()
    pairs = []
    for t2 in range(P.shape[0]):
        for t1 in range(t2 - min_gap + 1):
            if same_pose(P[t1], P[t2], tol):
                pairs.append((t1, t2))
                break
    return pairs


@dataclass(frozen=True)
class PairScore:
    """Agreement of two images: PSNR (dB, +inf if identical), SSIM (1 if identical), MAE (0 if identical)."""

    psnr: float
    ssim: float
    mae: float


def revisit_error(first: Tensor, second: Tensor) -> PairScore:
    """How far the second visit's frame [H, W, 3] is from the first visit's [H, W, 3] at the same pose."""
    _check_pair(first, second)
    return PairScore(psnr(first, second), ssim(first, second), mae(first, second))


# ============================================================================ LPIPS (offline only)
def rgb_to_lab(rgb: Tensor) -> Tensor:
    """CIELAB [..., 3] (L in 0..100, a and b about -128..127; D65 white) of sRGB rgb [..., 3] in [0, 1]."""
    c = rgb.double().clamp(0, 1)
    lin = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = torch.tensor([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                      [0.0193339, 0.1191920, 0.9503041]], dtype=torch.float64, device=rgb.device)
    xyz = lin @ m.T / torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64, device=rgb.device)
    d = 6 / 29
    f = torch.where(xyz > d**3, xyz.clamp_min(1e-12) ** (1 / 3), xyz / (3 * d * d) + 4 / 29)
    lab = torch.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)
    return lab.to(rgb.dtype if rgb.is_floating_point() else torch.float32)


def lab_stats(rgb: Tensor) -> Tensor:
    """[6]: mean L, a, b then std L, a, b over the pixels of rgb [H, W, 3] in [0, 1]."""
    lab = rgb_to_lab(rgb).reshape(-1, 3).double()
    return torch.cat([lab.mean(0), lab.std(0, correction=0)])


def colour_distance(reference: Tensor, stats: Tensor) -> dict[str, float]:
    """How far colour statistics `stats` [6] (`lab_stats`, or their mean over frames) are from
    `reference` [6]: `mean_de` is the distance of the mean colours (CIE76 delta E), `std_de` the same
    for the per-channel spreads, `drift` the length of the whole 6-vector difference, and `a`, `b` the
    mean chroma shifts (positive a: toward red/magenta, negative: toward green; positive b: toward
    yellow)."""
    d = stats.double() - reference.double()
    return {"mean_de": float(d[:3].norm()), "std_de": float(d[3:].norm()), "drift": float(d.norm()),
            "a": float(d[1]), "b": float(d[2])}


def colour_drift(reference: Tensor, frames: list[Tensor]) -> dict[str, float]:
    """`colour_distance` of the frames' mean `lab_stats` (each frame [H, W, 3] in [0, 1]) from those of
    `reference` (the photo's view)."""
    return colour_distance(lab_stats(reference), torch.stack([lab_stats(f) for f in frames]).mean(0))


def horizon_bend(sky: Tensor) -> float:
    """How much the ground rises at the frame's sides: the share of sky in the middle third of the columns
    minus that in the outer thirds, from the sky mask sky [H, W] (bool, True = sky). 0 for a level horizon
    (at any height), > 0 for a bowl (ground curving up to the sides, sky only above the middle), < 0 for a
    dome; nan for a frame without sky or all sky (the horizon is not in it)."""
    share = sky.float().mean(0)  # [W]: the sky's share of each column
    if not 0 < float(share.mean()) < 1:
        return math.nan
    W = share.shape[0]
    third = W // 3
    middle = share[third:W - third].mean()
    sides = torch.cat([share[:third], share[W - third:]]).mean()
    return float(middle - sides)


def spectral_slope(grey: Tensor, f_lo: float = 4.0, f_hi_share: float = 0.25) -> float:
    """Slope of log power against log spatial frequency of grey [H, W] (float): the radially
    averaged power spectrum (mean removed, Hann window) fitted by least squares over frequencies from
    `f_lo` cycles per image to `f_hi_share` of the sampling rate's cycles per image. About -2 for
    natural images, 0 for white noise, below -3 for strongly blurred images; nan for a flat image."""
    g = grey.double()
    H, W = g.shape
    win = torch.hann_window(H, periodic=False, dtype=torch.float64)[:, None] * \
        torch.hann_window(W, periodic=False, dtype=torch.float64)[None, :]
    p = torch.fft.fftshift(torch.fft.fft2((g - g.mean()) * win)).abs() ** 2
    fy = torch.arange(H, dtype=torch.float64) - H // 2
    fx = torch.arange(W, dtype=torch.float64) - W // 2
    r = torch.sqrt(fy[:, None] ** 2 * (W / H) ** 2 + fx[None, :] ** 2)  # cycles per image along the width
    f_hi = f_hi_share * W
    rings = torch.arange(math.ceil(f_lo), math.floor(f_hi) + 1, dtype=torch.float64)
    idx = torch.round(r).long()
    power = torch.zeros(int(idx.max()) + 1, dtype=torch.float64).index_add_(0, idx.flatten(), p.flatten())
    count = torch.zeros_like(power).index_add_(0, idx.flatten(), torch.ones_like(p.flatten()))
    ring_power = power[rings.long()] / count[rings.long()].clamp_min(1)
    ok = ring_power > 1e-20
    if int(ok.sum()) < 3:
        return math.nan
    x, y = rings[ok].log(), ring_power[ok].log()
    x = x - x.mean()
    return float((x * (y - y.mean())).sum() / (x * x).sum())


def _alexnet_checkpoint() -> str:
    """Where torchvision keeps AlexNet's ImageNet weights once downloaded (torch hub cache)."""
    import os

    import torch.hub

    name = "alexnet-owt-7be5be79.pth"
    try:
        from torchvision.models import AlexNet_Weights

        name = os.path.basename(AlexNet_Weights.IMAGENET1K_V1.url)
    except ImportError:
        pass
    return os.path.join(torch.hub.get_dir(), "checkpoints", name)


def lpips_status() -> str | None:
    """None if LPIPS (AlexNet) can be computed offline here; otherwise the reason, one line.

    LPIPS needs the `lpips` package (which ships its own linear layers) and torchvision's pretrained
    AlexNet weights in the torch hub cache; neither is ever downloaded by worldgen.
    """
    import importlib.util
    import os

    if importlib.util.find_spec("lpips") is None:
        return "LPIPS: weights unavailable (the lpips package is not installed)"
    ckpt = _alexnet_checkpoint()
    if not os.path.isfile(ckpt):
        return (f"LPIPS: weights unavailable (torchvision AlexNet weights not in {ckpt}; "
                "worldgen does not download them)")
    return None


class LPIPSUnavailable(RuntimeError):
    """LPIPS cannot be computed offline on this machine (the message says why)."""


class LPIPS:
    """Learned perceptual distance (Zhang et al. 2018, AlexNet variant), 0 for identical images.

    Raises LPIPSUnavailable at construction if the weights are not already on disk (see `lpips_status`).

    Args:
        device: where the network runs.
    """

    def __init__(self, device: torch.device | str = "cpu"):
        reason = lpips_status()
        if reason is not None:
            raise LPIPSUnavailable(reason)
        import lpips

        try:
            self.net = lpips.LPIPS(net="alex", verbose=False).to(device).eval()
        except (OSError, RuntimeError) as e:  # a truncated cache file, or a network attempt that failed
            raise LPIPSUnavailable(f"LPIPS: weights unavailable ({type(e).__name__}: {e})") from None
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, a: Tensor, b: Tensor) -> float:
        """LPIPS distance of a, b [H, W, 3] in [0, 1] (lower is closer)."""
        _check_pair(a, b)
        x = a.float().permute(2, 0, 1)[None].to(self.device) * 2 - 1  # [1, 3, H, W] in [-1, 1]
        y = b.float().permute(2, 0, 1)[None].to(self.device) * 2 - 1
        return float(self.net(x, y).mean())


def make_lpips(device: torch.device | str = "cpu") -> tuple[LPIPS | None, str]:
    """(an LPIPS metric, "LPIPS: available") or (None, "LPIPS: weights unavailable (...)"). Never downloads."""
    try:
        return LPIPS(device), "LPIPS: available (AlexNet)"
    except LPIPSUnavailable as e:
        return None, str(e)
