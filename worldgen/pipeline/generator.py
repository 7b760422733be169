"""Render -> refine -> repeat: the persistent generator and the classic per-frame baseline.

Both share renderer, refiner, lifting and sky; they differ in one thing only:

- `PersistentGenerator` keeps every Gaussian it ever lifted (and every sky texel it ever saw), and
  lifts from each refined frame only what the world lacks. Its world pages chunks the camera cannot
  see out of the working set the renderer draws (`worldgen.pipeline.world.PagedWorld`), so the cost
  of a frame does not grow with the length of the flight.
- `PerFrameGenerator` (Infinite Nature's setting) has no memory: before each step its world and sky
  are rebuilt from the previous refined frame alone.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from worldgen.core.anchor import ground_anchor, ground_texture
from worldgen.core.camera import Camera
from worldgen.core.config import bad
from worldgen.core.frame import Frame, RenderedView
from worldgen.core.interfaces import Refiner, Renderer
from worldgen.core.scene import GaussianScene
from worldgen.pipeline.lift import LiftConfig, footprint_px, lift, lift_mask
from worldgen.pipeline.sky import SkyDome
from worldgen.pipeline.world import PagedWorld, World, WorldConfig, scene_unit

_SKY_EPOCH = 10**10  # sky_version = rebuilds * _SKY_EPOCH + observed texels (a dome has at most 4096 x 2048)


@dataclass(frozen=True)
class GeneratorConfig:
    """How the generators render, lift and remember (worldgen/pipeline/generator.py)."""

    lift: LiftConfig = field(default_factory=LiftConfig)
    """How refined pixels become Gaussians."""
    fit_iters_first: int = 3
    """Colour-fitting passes when a world is built from one frame (frame 0; every step of the
    per-frame baseline), so that world reproduces its frame."""
    fit_iters: int = 0
    """Colour-fitting passes for Gaussians lifted later (each costs one more render per frame;
    they fill holes and add detail from an already-rendered frame, where fitting gains little)."""
    eps2d: float = 0.1
    """Screen-space blur (px^2) the renderer adds to each Gaussian; gsplat's default 0.3 blurs
    pixel-sized Gaussians visibly, so worldgen renders with less."""
    sky_write_alpha: float = 0.05
    """Sky pixels whose scene alpha is below this are written into the sky dome."""
    sky_complete: bool = True
    """Complete the sky dome above the photo's horizon once the world is built from a frame (frame 0;
    every step of the per-frame baseline), from the sky seen so far (SkyDome.complete): unseen sky is
    then seen through rotation only, never smeared out of the frame's top rows."""
    horizon_quantile: float = 0.1
    """The photo's horizon (below it, uncovered pixels are not sky and the dome is not completed) is
    this quantile over image columns of the lowest sky pixel's elevation. The median (0.5, before
    2026-12-01) put it at the top of whatever stood in front of the sky over half the image (a
    cliff, a forest edge: 29 degrees on pink_sunrise, whose sea horizon is at 5), and everything the
    camera turned to between the two became a flat wall of hole fill."""
    world: WorldConfig = field(default_factory=WorldConfig)
    """How the persistent world pages chunks out of the working set and back."""

    def validate(self) -> None:
        for name in ("fit_iters_first", "fit_iters"):
            if not getattr(self, name) >= 0:
                raise bad(name, "must not be negative", getattr(self, name))
        if not self.eps2d >= 0:
            raise bad("eps2d", "must not be negative", self.eps2d)
        if not 0 <= self.sky_write_alpha <= 1:
            raise bad("sky_write_alpha", "must be in [0, 1]", self.sky_write_alpha)
        if not 0 <= self.horizon_quantile <= 1:
            raise bad("horizon_quantile", "must be in [0, 1]", self.horizon_quantile)


def horizon_elevation_deg(frame: Frame, quantile: float = 0.1) -> float:
    """World elevation (degrees) below which uncovered pixels are not taken for sky: the `quantile`
    (0..1) over the image columns that show sky of their lowest sky pixel's elevation in `frame`,
    minus 1 degree (90 when it has no sky)."""
    if not frame.sky.any():
        return 90.0
    elev = frame.camera.ray_elevation_deg()
    low = torch.where(frame.sky, elev, torch.full_like(elev, math.inf)).amin(0)
    low = low[torch.isfinite(low)]
    return float(torch.quantile(low.double(), quantile)) - 1.0


class _Timer:
    """Per-stage wall-clock timer; on CUDA it synchronises around each stage (off: no syncs). Either way
    each stage is a `stage:NAME` range in torch.profiler traces."""

    def __init__(self, sink: dict[str, list[float]], device: torch.device, enabled: bool = True):
        self.sink, self.cuda, self.enabled = sink, device.type == "cuda", enabled

    def __call__(self, name: str):
        timer = self
        if not self.enabled:  # still a labelled range for torch.profiler (scripts/profile_generate.py); ~1 us
            return torch.profiler.record_function(f"stage:{name}")

        class _Ctx:
            def __enter__(self):
                if timer.cuda:
                    torch.cuda.synchronize()
                self.rf = torch.profiler.record_function(f"stage:{name}")
                self.rf.__enter__()
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                if timer.cuda:
                    torch.cuda.synchronize()
                timer.sink[name].append(time.perf_counter() - self.t0)
                self.rf.__exit__(*exc)

        return _Ctx()


class Generator:
    """Shared machinery. Subclasses decide what the world remembers.

    Attributes (besides the arguments):
        first: frame 0; prev: the latest frame; t: frames generated after frame 0; world: the world
        (a `World`, or a `PagedWorld` for the persistent generator); scene: its working set, what the
        renderer sees; sky: the sky dome; last_added: Gaussians the latest step added (the last ones
        of `scene`); timings: seconds per stage, one entry per call since `take_stage_seconds`.

    Args:
        first: frame 0 (the photo with its depth, sky mask and camera), on the working device.
        renderer: a `Renderer` for that device.
        refiner: a `Refiner`.
        config: GeneratorConfig.
    """

    mode = "base"

    def __init__(self, first: Frame, renderer: Renderer, refiner: Refiner, config: GeneratorConfig = GeneratorConfig(),
                 time_stages: bool = True):
        self.renderer = renderer
        self.refiner = refiner
        self.config = config
        self.device = first.rgb.device
        self.world = self._make_world(first)
        self.sky = SkyDome.for_camera(first.camera)
        self._sky_rebuilds = 0  # (sky_version)
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.stage_totals: dict[str, float] = defaultdict(float)
        self._time = _Timer(self.timings, self.device, enabled=time_stages)
        self.t = 0
        self.first = first
        self.prev = first
        self.last_added = 0
        self.horizon_elev_deg = horizon_elevation_deg(first, config.horizon_quantile)
        self.ground_anchor = ground_anchor(first, self.horizon_elev_deg)  # the photo's ground colour by elevation
        self.ground_texture = ground_texture(first, self.horizon_elev_deg)  # ... and its detail
        self._absorb(first, None, config.fit_iters_first)
        self._complete_sky()

    @property
    def sky_version(self) -> int:
        """A number that names the sky dome's content (checkpoints rewrite the dome's file only when it
        changes): the rebuilds so far and the texels observed; between rebuilds texels are only ever
        added, never changed. Reading it waits for the device (a checkpoint's business, not a step's)."""
        return self._sky_rebuilds * _SKY_EPOCH + self.sky.observed_texels

    @property
    def timed(self) -> bool:
        """Whether the stage timers are on (on CUDA they synchronise around each stage)."""
        return self._time.enabled

    def _make_world(self, first: Frame) -> World:
        return World(self.device)

    @property
    def scene(self) -> GaussianScene:
        """The working set of the world: what the renderer sees."""
        return self.world.scene

    @scene.setter
    def scene(self, value: GaussianScene) -> None:
        self.world.scene = value

    # -------------------------------------------------------------- pieces
    def render_view(self, camera: Camera) -> RenderedView:
        """Render the world (scene + sky) at `camera`, unrefined."""
        with self._time("render"):
            fp = footprint_px(self.scene, camera)  # [N, 1]
            # (the size, and whether it is fine enough for the lift: its mean alone is dominated by the coarse
            # Gaussians behind a layer of fine ones, and the lift would lift the same pixels again every frame)
            features = torch.cat([fp, (fp <= self.config.lift.detail_px).to(fp.dtype)], 1)
            r = self.renderer.render(self.scene, camera, features=features, eps2d=self.config.eps2d)
            a = r.alpha.clamp_min(1e-6)
            footprint = r.features[..., 0] / a if r.features is not None else None
            fine = (r.features[..., 1] / a).clamp(0, 1) if r.features is not None else None
        with self._time("sky"):
            sky_rgb, sky_known = self.sky.render(camera)
        return RenderedView(camera, r.rgb, r.alpha, r.depth, footprint, sky_rgb, sky_known, self.horizon_elev_deg,
                            self.ground_anchor, self.ground_texture, fine)

    def _absorb(self, frame: Frame, view: RenderedView | None, fit_iters: int) -> int:
        """Lift what the world lacks from `frame` and write its new sky; returns Gaussians added."""
        cfg = self.config
        with self._time("lift"):
            mask = lift_mask(frame, None if view is None else view.alpha, None if view is None else view.footprint, cfg.lift,
                             None if view is None else view.rgb, None if view is None else view.fine_share)
            if view is not None:
                left_out = self.world.left_out(frame.camera)  # the world is there, only not drawn (a budget)
                if left_out is not None:
                    mask = mask & ~left_out
            new = lift(frame, mask, cfg.lift)  # its size is read once, there
            n_new = len(new)
            if n_new:
                self.world.add(new, self.t)
                self._fit_colours(frame, mask, len(self.scene) - n_new, fit_iters)  # the new ones are last
        self.last_added = n_new
        with self._time("sky"):
            write = frame.sky if view is None else frame.sky & (view.alpha < cfg.sky_write_alpha)
            self.sky.update(frame.camera, frame.rgb.detach(), write)  # the dome is memory, not a gradient path
        return n_new

    def _fit_colours(self, frame: Frame, mask: torch.Tensor, start: int, iters: int) -> None:
        """Adjust the colours of Gaussians [start:] (lifted from `frame` at `mask`) so the world's
        render at frame.camera reproduces frame.rgb there (Gaussians overlap, so their colours are
        deconvolved by a few fixed-point passes: c += target - render at each Gaussian's own pixel).

        The correction is computed without gradients; when the colours carry an autograd graph
        (training unrolls the generator), it is added as a constant, so gradients still reach the
        frame the colours were lifted from."""
        if iters <= 0:
            return
        lifted = self.scene.colors
        with torch.no_grad():
            fitted = lifted.detach().clone()
            for _ in range(iters):
                with self._time("fit"):
                    self.scene.colors = fitted
                    r = self.renderer.render(self.scene, frame.camera, eps2d=self.config.eps2d)
                    shown = r.rgb / r.alpha.clamp_min(1e-6)[..., None]
                    resid = (frame.rgb.detach() - shown)[mask]
                    # deconvolved colours may leave [0, 1]
                    fitted[start:] = (fitted[start:] + resid).clamp(-0.5, 1.5)
        self.scene.colors = lifted + (fitted - lifted.detach()) if lifted.requires_grad else fitted

    def _rebuild_from(self, frame: Frame, fit_iters: int) -> None:
        self.world.reset()
        self.sky.reset()
        self._sky_rebuilds += 1
        self._absorb(frame, None, fit_iters)
        self._complete_sky()

    def _complete_sky(self) -> None:
        """Complete the dome above the photo's horizon from the sky seen so far (GeneratorConfig.sky_complete):
        once at the start of both generators, and at every rebuild of the per-frame baseline."""
        if self.config.sky_complete:
            with self._time("sky"):
                self.sky.complete(self.horizon_elev_deg)

    # -------------------------------------------------------------- the loop
    def step(self, camera: Camera) -> Frame:
        """Generate the next frame at `camera`: render the world there, refine, remember."""
        view = self.begin_step(camera)
        with self._time("refine"):
            frame = self.refiner(view)
        self.end_step(frame, view)
        return frame

    def begin_step(self, camera: Camera) -> RenderedView:
        """The first half of `step`: advance the clock and render the world at `camera`, unrefined.
        (Training refines the views of several generators in one batch, then calls `end_step`.)"""
        self.t += 1
        self._before_step(camera)
        return self.render_view(camera)

    def end_step(self, frame: Frame, view: RenderedView) -> None:
        """The second half of `step`: remember the refined `frame` of `view`."""
        self._after_step(frame, view)
        self.prev = frame

    def _before_step(self, camera: Camera) -> None:
        pass

    def _after_step(self, frame: Frame, view: RenderedView) -> None:
        pass

    def take_stage_seconds(self) -> dict[str, float]:
        """Seconds per stage since the last call (added to `stage_totals`; `timings` is emptied, so it
        stays small however long the flight)."""
        out = {k: sum(v) for k, v in self.timings.items() if v}
        for k, v in out.items():
            self.stage_totals[k] += v
        self.timings.clear()
        return out

    def stats(self) -> dict:
        """Mean seconds per stage per frame, the world's size (whole, and in the working set)."""
        steps = max(self.t, 1)
        totals = dict(self.stage_totals)
        for k, v in self.timings.items():
            totals[k] = totals.get(k, 0.0) + sum(v)
        return {
            **self.world.stats(),
            "sky_observed_fraction": round(self.sky.observed_fraction, 4),
            "seconds_per_frame": {k: v / steps for k, v in totals.items()},
        }

    # -------------------------------------------------------------- checkpoints
    def checkpoint(self, durable: bool = True) -> dict:
        """The generator's state after its latest step, as plain data (numpy arrays, numbers): the
        clock, the latest frame, the world (`World.checkpoint(durable)`) and the stage times. The sky
        dome is apart (`sky.state()`, large; it changes only when `sky_version` does)."""
        p = self.prev
        return {"mode": self.mode, "t": self.t, "sky_version": self.sky_version,
                "prev": {"rgb": p.rgb.detach().cpu().numpy(), "depth": p.depth.detach().cpu().numpy(),
                         "sky": p.sky.cpu().numpy(), "c2w": p.camera.host()[1].astype(np.float32)},
                "world": self.world.checkpoint(durable), "stage_totals": dict(self.stage_totals),
                "last_added": self.last_added}

    def restore(self, state: dict, sky) -> None:
        """Return to a `checkpoint()` of a generator built from the same frame 0 and config; `sky` is
        the dome's `state()` at that checkpoint."""
        if state["mode"] != self.mode:
            raise ValueError(f"checkpoint is of a {state['mode']} generator, not {self.mode}")
        p, dev = state["prev"], self.device
        # the pose from the host, as the flight gave it: the camera then inverts it on the host as the flight's did (an
        # inverse computed on the device differs in the last bits, and the per-frame generator renders at that camera)
        camera = self.first.camera.with_pose(torch.as_tensor(p["c2w"]).cpu())
        self.prev = Frame(torch.as_tensor(p["rgb"]).to(dev), torch.as_tensor(p["depth"]).to(dev),
                          torch.as_tensor(p["sky"]).to(dev), camera)
        self.t, self.last_added = int(state["t"]), int(state["last_added"])
        self._sky_rebuilds = int(state["sky_version"]) // _SKY_EPOCH
        self.world.restore(state["world"])
        self.sky.load_state(sky)
        self.timings.clear()
        self.stage_totals = defaultdict(float, {k: float(v) for k, v in state["stage_totals"].items()})


class PersistentGenerator(Generator):
    """Keeps the world: each refined frame adds only what the world lacks (holes, finer detail)."""

    mode = "persistent"

    def _make_world(self, first: Frame) -> World:
        return PagedWorld(self.config.world, scene_unit(first), self.device)

    def _before_step(self, camera: Camera) -> None:
        with self._time("page"):  # bring in what this step may see; trim what it long has not
            self.world.prepare(camera, self.t)

    def _after_step(self, frame: Frame, view: RenderedView) -> None:
        self._absorb(frame, view, self.config.fit_iters)


class PerFrameGenerator(Generator):
    """The classic baseline (Infinite Nature): the world is rebuilt from the previous frame alone."""

    mode = "per-frame"

    def _before_step(self, camera: Camera) -> None:
        if self.t > 1:  # frame 0's world is already built
            self._rebuild_from(self.prev, fit_iters=self.config.fit_iters_first)


def make_generator(mode: str, first: Frame, renderer: Renderer, refiner: Refiner, config: GeneratorConfig = GeneratorConfig(),
                   time_stages: bool = True) -> Generator:
    """`mode` is 'persistent' or 'per-frame'; `time_stages` False skips the per-stage timers (and their
    CUDA synchronisations), as training does."""
    classes = {"persistent": PersistentGenerator, "per-frame": PerFrameGenerator}
    if mode not in classes:
        raise ValueError(f"mode must be one of {sorted(classes)}, got {mode!r}")
    return classes[mode](first, renderer, refiner, config, time_stages)
