"""TSED: 3D consistency of consecutive generated frames, measured with SIFT and the known cameras.

The thresholded symmetric epipolar distance (after Yu et al., ICCV 2023), with no learned weights:

1. SIFT keypoints (OpenCV's `cv2.SIFT`, at most `max_features` per frame, with precise upscaling of
   the first octave: OpenCV's default upscaling shifts every keypoint by +0.25 px) are detected on the
   grey 8-bit image of each frame (ITU-R 601 luma, `cv2.COLOR_RGB2GRAY`).
2. The keypoints of frames t-1 and t are matched by descriptor (L2): a match a -> b is kept when its
   distance is below `ratio` (0.75) times that of a's second-nearest neighbour in t (Lowe's ratio
   test) and, with `mutual`, a is also b's nearest neighbour in t-1.
3. The fundamental matrix F comes from the *known* cameras, not from the matches: with the relative
   pose X_b = R X_a + t (R = R_b^T R_a, t = R_b^T (c_a - c_b) from the camera-to-world poses),
   F = K_b^-T [t]x R K_a^-1, so that x_b^T F x_a = 0 for homogeneous pixel coordinates x = (u, v, 1)
   in worldgen's convention (pixel centres at +0.5; OpenCV's keypoints put them at integers, so
   +0.5 is added to every keypoint).
4. Each match's symmetric epipolar distance is the mean of the distances, in pixels, of each point to
   the epipolar line of the other: SED = (d(x_b, F x_a) + d(x_a, F^T x_b)) / 2. Without a baseline
   (the two cameras at one position) there are no epipolar lines; every match must then follow the
   rotation's homography H = K_b R K_a^-1, and SED is the symmetric transfer distance
   (|x_b - H x_a| + |x_a - H^-1 x_b|) / 2 instead (points at infinity obey H in either case).
5. The pair is consistent when it has at least `min_matches` (10) matches and their median SED is
   below T_error pixels. T_error is 2.0 px at 256 px and scales linearly with the image's longer side
   (`error_threshold`: 1.0 px at 128, 4.0 px at 512), so that the same angular disagreement passes or
   fails at every resolution.

TSED = the share of consecutive pairs that are consistent. A flight whose frames show one static 3D
world from the cameras flown scores 1 wherever its frames have texture to match; content that swims
or jumps from one frame to the next fails the epipolar constraint (slow drift over many frames does
not: consecutive pairs only). The per-pair median SED and match counts
are kept as series, so any other threshold can be applied afterwards (`tsed_share`).

OpenCV (`opencv-python-headless`) is a dependency; where it is missing or its build lacks SIFT,
`sift_detector` raises `SiftUnavailable`, a one-line `UserInputError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from worldgen.core.camera import Camera
from worldgen.core.io import UserInputError

MAX_FEATURES = 2000
"""SIFT keypoints kept per frame (the strongest): bounds the brute-force matching, quadratic in the count."""
RATIO = 0.75
"""Lowe's ratio test: a match is kept when its descriptor distance < RATIO x the second-nearest one's."""
MIN_MATCHES = 10
"""T_matches: a pair with fewer matches is not consistent (too little evidence)."""
ERROR_PX_AT_256 = 2.0
"""T_error at a longer image side of 256 px; `error_threshold` scales it with the image size."""


class SiftUnavailable(UserInputError):
    """OpenCV's SIFT cannot be used here (the message says why, in one line)."""


def sift_detector(max_features: int = MAX_FEATURES):
    """A `cv2.SIFT` keeping the `max_features` strongest keypoints; SiftUnavailable if OpenCV or SIFT is missing."""
    try:
        import cv2
    except ImportError as e:
        raise SiftUnavailable("TSED needs OpenCV's SIFT: the opencv-python-headless package is not importable "
                              f"({e}); `pip install -e .` installs it") from None
    try:  # precise upscaling (OpenCV >= 4.8) maps index x to 2x: without it keypoints sit +0.25 px off
        return cv2.SIFT_create(nfeatures=max_features, enable_precise_upscale=True)
    except (AttributeError, TypeError, cv2.error) as e:
        raise SiftUnavailable(f"TSED needs OpenCV's SIFT with precise upscaling (opencv-python-headless >= 4.8); "
                              f"OpenCV {cv2.__version__} has none ({type(e).__name__})") from None


def error_threshold(width: int, height: int, at_256: float = ERROR_PX_AT_256) -> float:
    """T_error in pixels for a W x H image: `at_256` x max(W, H) / 256 (linear in the image size)."""
    return at_256 * max(width, height) / 256.0


# ============================================================================ features and matches
@dataclass(frozen=True)
class Features:
    """SIFT features of one image.

    Attributes:
        uv: [N, 2] float64 keypoint positions (u, v) in pixels, worldgen's convention (pixel centres at +0.5).
        desc: [N, 128] float32 descriptors.
    """

    uv: np.ndarray
    desc: np.ndarray

    def __len__(self) -> int:
        return self.uv.shape[0]


def sift_features(img: np.ndarray, detector=None) -> Features:
    """SIFT keypoints and descriptors of an 8-bit image.

    Args:
        img: [H, W, 3] uint8 RGB (or [H, W] uint8 grey).
        detector: a `sift_detector()` to reuse (one is made otherwise).
    """
    import cv2

    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"sift_features needs a uint8 [H, W, 3] or [H, W] image, got {img.dtype} {img.shape}")
    detector = detector or sift_detector()
    grey = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    kps, desc = detector.detectAndCompute(grey, None)
    if not kps or desc is None:
        return Features(np.zeros((0, 2)), np.zeros((0, 128), np.float32))
    uv = np.array([k.pt for k in kps], np.float64) + 0.5  # OpenCV: pixel centres at integers
    return Features(uv, desc.astype(np.float32))


def match_features(a: Features, b: Features, ratio: float = RATIO,
                   mutual: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Descriptor matches from a to b (brute force, L2): Lowe's ratio test (nearest < ratio x second nearest),
    and with `mutual` also a's keypoint is b's nearest neighbour in a. Returns (uv_a [M, 2], uv_b [M, 2])."""
    import cv2

    empty = np.zeros((0, 2))
    if len(a) == 0 or len(b) < 2:
        return empty, empty
    bf = cv2.BFMatcher(cv2.NORM_L2)
    ia, ib = [], []
    for m in bf.knnMatch(a.desc, b.desc, k=2):
        if len(m) == 2 and m[0].distance < ratio * m[1].distance:
            ia.append(m[0].queryIdx)
            ib.append(m[0].trainIdx)
    ia, ib = np.array(ia, np.int64), np.array(ib, np.int64)
    if mutual and ia.size:
        back = np.full(len(b), -1, np.int64)  # b's nearest neighbour in a
        for m in bf.match(b.desc, a.desc):
            back[m.queryIdx] = m.trainIdx
        keep = back[ib] == ia
        ia, ib = ia[keep], ib[keep]
    return a.uv[ia], b.uv[ib]


# ============================================================================ epipolar geometry
def relative_pose(cam_a: Camera, cam_b: Camera) -> tuple[np.ndarray, np.ndarray]:
    """(R [3, 3], t [3]) float64 with X_b = R X_a + t for camera-space points of a and b (c2w poses)."""
    Pa, Pb = (c.c2w.detach().cpu().double().numpy() for c in (cam_a, cam_b))
    Ra, Rb, ca, cb = Pa[:3, :3], Pb[:3, :3], Pa[:3, 3], Pb[:3, 3]
    return Rb.T @ Ra, Rb.T @ (ca - cb)


def _intrinsics(cam: Camera) -> np.ndarray:
    return cam.K.detach().cpu().double().numpy()


def fundamental_matrix(cam_a: Camera, cam_b: Camera) -> np.ndarray:
    """[3, 3] float64 F with x_b^T F x_a = 0 for pixel coordinates x = (u, v, 1) (pixel centres at +0.5)
    of one world point seen by `cam_a` and by `cam_b`. Zero when the cameras share their position."""
    R, t = relative_pose(cam_a, cam_b)
    tx = np.array([[0.0, -t[2], t[1]], [t[2], 0.0, -t[0]], [-t[1], t[0], 0.0]])
    return np.linalg.inv(_intrinsics(cam_b)).T @ tx @ R @ np.linalg.inv(_intrinsics(cam_a))


def _homogeneous(uv: np.ndarray) -> np.ndarray:
    return np.concatenate([uv, np.ones((uv.shape[0], 1))], 1)


def symmetric_epipolar_distance(F: np.ndarray, uv_a: np.ndarray, uv_b: np.ndarray) -> np.ndarray:
    """[M] SED in pixels of matches uv_a, uv_b [M, 2]: (d(x_b, line F x_a) + d(x_a, line F^T x_b)) / 2."""
    xa, xb = _homogeneous(uv_a), _homogeneous(uv_b)
    la, lb = xa @ F.T, xb @ F  # epipolar lines in b of the points of a, and in a of those of b [M, 3]
    r = np.abs((xb * la).sum(1))  # |x_b^T F x_a|
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.5 * (r / np.hypot(la[:, 0], la[:, 1]) + r / np.hypot(lb[:, 0], lb[:, 1]))


def transfer_distance(H: np.ndarray, uv_a: np.ndarray, uv_b: np.ndarray) -> np.ndarray:
    """[M] symmetric transfer distance in pixels through homography H (x_b ~ H x_a) of uv_a, uv_b [M, 2]."""

    def apply(M, uv):
        x = _homogeneous(uv) @ M.T
        with np.errstate(divide="ignore", invalid="ignore"):
            return x[:, :2] / x[:, 2:]

    fwd = np.linalg.norm(apply(H, uv_a) - uv_b, axis=1)
    back = np.linalg.norm(apply(np.linalg.inv(H), uv_b) - uv_a, axis=1)
    return 0.5 * (fwd + back)


def _no_baseline(cam_a: Camera, cam_b: Camera, tol: float = 1e-5) -> bool:
    """True if the two camera centres coincide to `tol` relative to their distance from the origin."""
    ca, cb = (c.c2w.detach().cpu().double().numpy()[:3, 3] for c in (cam_a, cam_b))
    return float(np.linalg.norm(ca - cb)) <= tol * max(1.0, float(np.linalg.norm(ca)), float(np.linalg.norm(cb)))


def pose_distance(cam_a: Camera, cam_b: Camera, uv_a: np.ndarray, uv_b: np.ndarray) -> np.ndarray:
    """[M] how far matches uv_a [M, 2] (seen by cam_a) and uv_b [M, 2] (cam_b) are from agreeing with the two
    cameras, in pixels: the SED, or the symmetric transfer distance when the cameras share a position."""
    if _no_baseline(cam_a, cam_b):
        R, _ = relative_pose(cam_a, cam_b)
        H = _intrinsics(cam_b) @ R @ np.linalg.inv(_intrinsics(cam_a))
        return transfer_distance(H, uv_a, uv_b)
    return symmetric_epipolar_distance(fundamental_matrix(cam_a, cam_b), uv_a, uv_b)


# ============================================================================ pairs and flights
@dataclass(frozen=True)
class PairSED:
    """Epipolar agreement of one frame pair with its cameras.

    Attributes:
        matches: number of SIFT matches.
        median_sed: median SED of the matches in pixels (nan without matches).
    """

    matches: int
    median_sed: float

    def consistent(self, max_error: float, min_matches: int = MIN_MATCHES) -> bool:
        """At least `min_matches` matches and a median SED below `max_error` pixels."""
        return self.matches >= min_matches and self.median_sed < max_error


def pair_sed(a: Features, cam_a: Camera, b: Features, cam_b: Camera, ratio: float = RATIO,
             mutual: bool = True) -> PairSED:
    """Match the features of two frames and measure the matches against the cameras (see the module docstring)."""
    uv_a, uv_b = match_features(a, b, ratio, mutual)
    if uv_a.shape[0] == 0:
        return PairSED(0, math.nan)
    d = pose_distance(cam_a, cam_b, uv_a, uv_b)
    return PairSED(int(uv_a.shape[0]), float(np.median(d)))


class TsedTracker:
    """Consecutive-pair SED along a flight, detecting each frame's SIFT features once.

    `tracker(img, camera)` with frame t's uint8 image [H, W, 3] and Camera returns the PairSED of
    (t-1, t), or None for the first frame.
    """

    def __init__(self, max_features: int = MAX_FEATURES, ratio: float = RATIO, mutual: bool = True):
        self.detector = sift_detector(max_features)
        self.ratio, self.mutual = ratio, mutual
        self._prev: tuple[Features, Camera] | None = None

    def __call__(self, img: np.ndarray, camera: Camera) -> PairSED | None:
        cur = (sift_features(img, self.detector), camera.to("cpu"))
        prev, self._prev = self._prev, cur
        if prev is None:
            return None
        return pair_sed(prev[0], prev[1], cur[0], cur[1], self.ratio, self.mutual)


def tsed_share(median_seds: list[float], matches: list[int], max_error: float,
               min_matches: int = MIN_MATCHES) -> float:
    """TSED: the share of pairs (one median SED in px and one match count each; nan entries count as
    inconsistent) with at least `min_matches` matches and a median SED below `max_error`; nan if no pairs."""
    if not median_seds:
        return math.nan
    ok = [PairSED(int(n), float(s)).consistent(max_error, min_matches) for s, n in zip(median_seds, matches)]
    return sum(ok) / len(ok)
