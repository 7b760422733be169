"""Depth (and sky) for the first frame: the backends of `worldgen.core.interfaces.DepthEstimator`.

Every backend maps an RGB image [H, W, 3] in [0, 1] plus its Camera to
`(depth [H, W] float32 z-depth with +inf sky, sky [H, W] bool)`, on the image's device.

Backends (`make_depth_estimator` turns a `--depth-model` spec into one; `--depth FILE` wins over it):
- `FileDepth`: the user's own depth or disparity map (.npy, .npz, 16-bit .png).
- `LearnedDepth` ("learned", "learned-fidelity", or a weights FILE.pt): the project's own depth network
  (refine/depthnet.py): log-depth up to a constant and a sky mask.
- `LandscapePrior` ("prior"): a built-in prior with no weights: sky detection, and a ground plane
  below the horizon (camera 1 unit above flat ground), far things at a fixed far depth.
- `TransformersDepth` ("transformers:NAME"): a Hugging Face depth model (e.g. Depth Anything V2) from
  a local folder or the local cache; never downloads.

The two networks know depth only up to scale; `metric_depth` is the one rule that gives it units.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from worldgen.core.camera import Camera
from worldgen.core.fill import detect_sky, fill_far
from worldgen.core.images import center_crop_resize, load_depth_file, to_uint8
from worldgen.core.io import UserInputError

MEDIAN_DEPTH = 10.0
"""Units of the median non-sky depth of a photo whose depth a network gave up to scale (`metric_depth`)."""

DEPTH_MODELS = ("learned", "learned-fidelity", "prior")
"""`--depth-model` names `make_depth_estimator` knows, besides a weights FILE.pt and transformers:NAME."""


def metric_depth(log_depth: Tensor, sky: Tensor, median_depth: float = MEDIAN_DEPTH) -> Tensor:
    """The one metric-scale rule for depth known only up to scale: z-depth [H, W] float32 whose median
    over the non-sky pixels is `median_depth` units, +inf at sky.

    log_depth: [H, W] log z-depth up to an additive constant (a disparity map d is `-log(d)`);
    sky: [H, W] bool. A single photo cannot tell its own scale, and nothing downstream needs it: the
    refiners are scale-invariant (but for the classical refiner's fixed far depth of an empty view),
    and a flight's speed, the autopilot's clearances and every other length are multiples of the
    photo's lower-quartile depth (`sources.scene_scale`). So any fixed rule would do; this one keeps
    numbers readable (the landscape prior's camera stands 1 unit above its
    ground, so its median depth is of the same order). Used by `LearnedDepth` and `TransformersDepth`.
    """
    solid = ~sky & torch.isfinite(log_depth)
    ref = log_depth[solid].median() if solid.any() else log_depth.new_zeros(())
    depth = (torch.exp(log_depth - ref) * median_depth).float()
    return torch.where(sky, torch.full_like(depth, math.inf), depth)


class LandscapePrior:
    """Weight-free landscape depth: sky detection + ground plane below the horizon.

    The camera is taken as level, `camera_height` units above flat ground; the horizon is the
    principal-point row (lowered to the bottom of the detected sky where the sky reaches lower).
    Ground depth at row v is h * fy / (v - v_horizon); non-sky pixels at or above the horizon take
    `far` units (a backdrop of distant hills).
    """

    def __init__(self, camera_height: float = 1.0, far: float = 60.0):
        self.camera_height = camera_height
        self.far = far

    def __call__(self, rgb: Tensor, camera: Camera) -> tuple[Tensor, Tensor]:
        H, W, _ = rgb.shape
        sky = detect_sky(rgb)
        v = torch.arange(H, dtype=torch.float32, device=rgb.device) + 0.5
        v_h = float(camera.K[1, 2])
        if sky.any():
            # If sky pixels reach below the principal row in most columns, the horizon is lower.
            lowest = torch.where(sky, v[:, None].expand(H, W), torch.zeros(H, W)).amax(0)
            v_h = max(v_h, float(lowest[lowest > 0].median()) if (lowest > 0).any() else v_h)
        dv = v - v_h
        ground = torch.where(dv > 0, self.camera_height * camera.fy / dv.clamp_min(1e-6), torch.full_like(v, math.inf))
        depth = ground.clamp(max=self.far)[:, None].expand(H, W).clone()
        depth[sky] = math.inf
        return depth, sky


class FileDepth:
    """Depth from the user's file, aligned with the input image.

    The file must have the input image's size (before `--size` resizing; it is then centre-cropped and
    resized like the image), or the working size (`worldgen depth` writes that one).
    NaN, zero and negative values are masked and filled from their farther neighbours; +inf (or
    disparity 0) marks sky.
    """

    def __init__(self, path: str, kind: str = "depth", png_scale: float = 1000.0):
        self.path = path
        self.raw = load_depth_file(path, kind=kind, png_scale=png_scale)  # fail early, before any work

    def check_size(self, image_wh: tuple[int, int], working_wh: tuple[int, int]) -> None:
        """UserInputError unless the file is the image's size (W, H) or the working size (W, H)."""
        h, w = self.raw.shape
        if (w, h) not in (tuple(image_wh), tuple(working_wh)):
            raise UserInputError(f"depth file {self.path} is {w}x{h} but the image is {image_wh[0]}x{image_wh[1]} "
                                 f"(working size {working_wh[0]}x{working_wh[1]})")

    def __call__(self, rgb: Tensor, camera: Camera) -> tuple[Tensor, Tensor]:
        H, W, _ = rgb.shape
        d = self.raw
        if tuple(d.shape) != (H, W):
            d = center_crop_resize(d[..., None], W, H, mode="nearest")[..., 0]
        return clean_depth(d)


def clean_depth(depth: Tensor) -> tuple[Tensor, Tensor]:
    """Mask invalid depth [H, W] (NaN, <= 0) and fill it; +inf becomes sky.

    Returns (depth [H, W] with +inf only at sky, sky [H, W] bool). Raises UserInputError when no
    pixel holds a usable depth.
    """
    sky = torch.isposinf(depth)
    valid = torch.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise UserInputError("the depth map has no valid (finite, positive) value")
    if (~valid & ~sky).any():
        disp = torch.where(valid, 1.0 / depth.clamp_min(1e-12), torch.zeros_like(depth))
        filled = fill_far(disp, valid)
        depth = torch.where(valid, depth, 1.0 / filled.clamp_min(1e-6))
        depth[sky] = math.inf
    return depth.float(), sky


class LearnedDepth:
    """The project's own depth network (refine/depthnet.py, weights refine/weights/depth.pt).

    The network predicts log z-depth up to a constant and a sky logit at the image's own size (it is
    fully convolutional); depth gets its units from `metric_depth`, sky is the network's mask
    (logit > 0, grown through connected pixels of logit > `sky_grow`: `refine.depthnet.SKY_GROW`).
    Runs on `device` (bf16 autocast on CUDA); returns tensors on the image's device. `flip`, `sky_clear`: two
    variants that scripts/eval_depth.py can measure and flights do not use (`LearnedDepthModel`).
    """

    def __init__(self, weights: str | None = None, device: torch.device | str = "cpu", sky_grow: float | None = None,
                 flip: bool = False, sky_clear: float | None = None):
        from refine.depthnet import DEFAULT_DEPTH_WEIGHTS, SKY_GROW, LearnedDepthModel

        self.weights = str(weights or DEFAULT_DEPTH_WEIGHTS)
        try:
            self.model = LearnedDepthModel.load(self.weights, device, SKY_GROW if sky_grow is None else sky_grow, flip,
                                                sky_clear)
        except ValueError as e:
            raise UserInputError(str(e)) from None

    def __call__(self, rgb: Tensor, camera: Camera) -> tuple[Tensor, Tensor]:
        log_depth, sky = self.model(rgb)
        return metric_depth(log_depth, sky).to(rgb.device), sky.to(rgb.device)


class TransformersDepth:
    """A Hugging Face `transformers` depth model (`--depth-model transformers:NAME`), from a local
    folder NAME or the local Hugging Face cache only (never downloads).

    Relative models (Depth Anything, DPT) predict disparity up to scale and shift; the shift is taken
    as 0 (disparity proportional to 1 / depth). Models whose config says `depth_estimation_type ==
    "metric"` predict depth. Either way `metric_depth` gives the units (so every backend that knows
    depth only up to scale follows the same rule). Sky: `detect_sky`, or zero disparity.
    """

    def __init__(self, model: str = "depth-anything/Depth-Anything-V2-Small-hf", device: torch.device | str = "cpu"):
        try:
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation
            from transformers.utils import logging as hf_logging
        except ImportError:
            raise UserInputError("--depth-model transformers:NAME needs `pip install transformers`") from None
        hf_logging.disable_progress_bar()  # worldgen says what it loaded in its own words
        try:
            self.processor = AutoImageProcessor.from_pretrained(model, local_files_only=True)
            self.model = AutoModelForDepthEstimation.from_pretrained(model, local_files_only=True).to(device).eval()
        except Exception:  # noqa: BLE001  (missing, partial or foreign files all mean "not usable here")
            where = (f"folder {model} holds no depth model transformers can load" if Path(model).is_dir() else
                     f"depth model {model} is not a local folder nor in the local Hugging Face cache")
            raise UserInputError(f"{where} (worldgen never downloads); use --depth FILE or --depth-model "
                                 "learned") from None
        self.metric = getattr(self.model.config, "depth_estimation_type", "relative") == "metric"
        self.device = torch.device(device)

    @torch.no_grad()
    def __call__(self, rgb: Tensor, camera: Camera) -> tuple[Tensor, Tensor]:
        H, W, _ = rgb.shape
        inputs = self.processor(images=to_uint8(rgb), return_tensors="pt").to(self.device)
        pred = self.model(**inputs).predicted_depth  # [1, h, w]: relative disparity, or metric depth
        pred = F.interpolate(pred[:, None].float(), size=(H, W), mode="bilinear", align_corners=False)[0, 0].cpu()
        floor = 1e-6 * float(pred.max().clamp_min(1e-30))  # relative: the model's units are its own
        if self.metric:
            log_depth = torch.log(pred.clamp_min(floor))
            sky = detect_sky(rgb.cpu())
        else:
            log_depth = -torch.log(pred.clamp_min(floor))
            sky = detect_sky(rgb.cpu()) | (pred <= 0)
        return metric_depth(log_depth, sky).to(rgb.device), sky.to(rgb.device)


def depth_model_problem(spec: str) -> str | None:
    """Why `spec` names no depth model `make_depth_estimator` can build (None if it names one); checked
    when a config is validated, so a bad --depth-model fails before anything is written."""
    import importlib.util
    from pathlib import Path

    from refine.depthnet import SHIPPED_DEPTH_WEIGHTS

    if spec in SHIPPED_DEPTH_WEIGHTS:
        if not SHIPPED_DEPTH_WEIGHTS[spec].is_file():
            return f"{spec} needs the shipped weights {SHIPPED_DEPTH_WEIGHTS[spec]}, which are missing"
        return None
    if spec in DEPTH_MODELS:
        return None
    if spec.startswith("transformers:"):
        if not spec.split(":", 1)[1]:
            return "transformers:NAME needs a model NAME (a local folder or a Hugging Face model id in the local cache)"
        if importlib.util.find_spec("transformers") is None:
            return "transformers:NAME needs `pip install transformers`"
        return None
    if spec.endswith(".pt"):
        return None if Path(spec).is_file() else f"names a weights file that does not exist ({spec})"
    return f"must be one of {', '.join(DEPTH_MODELS)}, a depth weights FILE.pt or transformers:NAME"


def make_depth_estimator(spec: str, device: torch.device | str = "cpu", sky_grow: float | None = None):
    """The `DepthEstimator` named by `spec`, ready to run on `device`.

    spec: "learned" (the shipped network, refine/weights/depth.pt), "learned-fidelity" (the shipped network nearer the
    procedural truth, refine/weights/depth-fidelity.pt), a depth weights FILE.pt (or a depth training checkpoint),
    "prior" (the weight-free landscape prior) or "transformers:NAME". sky_grow: the learned network's sky
    hysteresis (None: `refine.depthnet.SKY_GROW`; the other backends ignore it). Raises UserInputError
    (one line) for a bad spec or unusable weights.
    """
    problem = depth_model_problem(spec)
    if problem is not None:
        raise UserInputError(f"--depth-model {problem}, got {spec!r}")
    if spec == "prior":
        return LandscapePrior()
    if spec.startswith("transformers:"):
        return TransformersDepth(spec.split(":", 1)[1], device)
    from refine.depthnet import SHIPPED_DEPTH_WEIGHTS

    return LearnedDepth(str(SHIPPED_DEPTH_WEIGHTS.get(spec, spec)), device, sky_grow)
