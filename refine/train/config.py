"""Training configuration: nested dataclasses (tyro turns them into `worldgen train` options).

Presets for real runs live in `configs/`; the defaults here are the GPU run's values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Literal

from refine.learned import LearnedRefinerConfig
from refine.net import RefinerNetConfig
from worldgen.core.config import bad, check_seed


def at_least(cfg, names: str, low: float) -> None:
    """`bad` (one line naming the option) unless each field of `cfg` in `names` (space-separated, dotted
    for nested ones: "net.widths") is a finite number >= `low` (a tuple: each of its numbers)."""
    for name in names.split():
        v = cfg
        for part in name.split("."):
            v = getattr(v, part)
        xs = v if isinstance(v, (tuple, list)) else (v,)
        if not xs or not all(isinstance(x, (int, float)) and math.isfinite(x) and x >= low for x in xs):
            finite = all(isinstance(x, (int, float)) and math.isfinite(x) for x in xs)
            what = ("finite numbers " if not finite else "numbers ") if isinstance(v, (tuple, list)) else (
                "a finite number " if not finite else "")
            raise bad(name, f"must be {what}>= {low:g}", v)


def shares(cfg, names: str) -> None:
    """`bad` (one line naming the option) unless each field of `cfg` in `names` is a share in [0, 1]."""
    for name in names.split():
        v = getattr(cfg, name)
        if not (isinstance(v, (int, float)) and 0 <= v <= 1):
            raise bad(name, "must be a share in [0, 1]", v)


def check_net(cfg) -> None:
    """`bad` for a `net` (RefinerNetConfig) field of `cfg` that no network could be built with."""
    at_least(cfg, "net.widths", 1)
    at_least(cfg, "net.bottleneck_blocks net.global_code", 0)


@dataclass(frozen=True)
class ColourJitterConfig:
    """One random colour change per training clip, the same for all its frames (the truth and the first frame the
    flight starts from alike): hue rotation about the grey axis, saturation, white balance, gamma. The procedural
    worlds have one palette (green-brown ground, blue-grey haze); a network that learned it paints it into real
    photos (the fidelity network: magenta and blue fields over misty_pines, docs/refiner.md), where one that must
    take its colours from the frame it is given cannot."""

    share: float = 0.0
    """Share of the clips that are remapped (0: none, how every run up to 2026-12-03 was trained; the draws are
    then skipped, so the clips of earlier runs are unchanged)."""
    hue_deg: float = 45.0
    """Hue rotation, uniform in +-hue_deg degrees."""
    saturation: tuple[float, float] = (0.6, 1.6)
    """Saturation factor (log-uniform): grey + s * (rgb - grey)."""
    white_balance: float = 0.2
    """Per-channel gain, log-uniform in [1 / (1 + wb), 1 + wb]."""
    gamma: tuple[float, float] = (0.7, 1.4)
    """Exponent applied after the matrix (log-uniform): darker or brighter mid-tones."""

    def validate(self) -> None:
        shares(self, "share")
        at_least(self, "hue_deg white_balance", 0)
        at_least(self, "saturation gamma", 1e-6)


@dataclass(frozen=True)
class DataConfig:
    """Procedural flights rendered inside the run and held on the training device (a ring cache)."""

    width: int = 256
    """Frame width W of the training flights."""
    height: int = 256
    """Frame height H."""
    flights: int = 32
    """Flights held in the cache."""
    frames: int = 40
    """Frames per flight (clips are drawn from these with a random start and stride)."""
    flights_per_world: int = 2
    """Flights drawn over one world (making a world costs about as much as rendering 100 frames)."""
    refresh_every: int = 20
    """Training steps between cache refreshes (0: never refresh)."""
    refresh_flights: int = 2
    """Oldest flights replaced by new ones at each refresh."""
    world_grid: int = 1024
    """Terrain grid of the procedural worlds (1024: the renderer's standard worlds)."""
    quality: Literal["full", "training", "fast"] = "full"
    """Procedural render quality: full (soft shadows, water reflections), training (as full, water
    reflects the sky only) or fast (neither; refine/synth's "geometry" level)."""
    render_batch: int = 64
    """Views rendered per call of the procedural renderer."""
    compile: bool = False
    """Render the training flights with the procedural renderer's torch.compile'd march and shadow
    loops (`RenderSettings.compile`): on CUDA only (ignored on the CPU, where the frames are the same); the first
    flights pay the compilation (about a minute). 1,051 frames/s at 256x256, training quality, against 378 eager on
    one H200 (2026-12-04); the depth network trained with it at the same 14-17 steps/s as without, the data never
    being its bottleneck (docs/synth.md)."""
    seed_start: int = 0
    """First world seed (train split 0..999,999; each rank takes every world_size-th world from here)."""
    speed: tuple[float, float] = (0.008, 0.05)
    """Camera motion per generated step, as a fraction of the clip's first frame's lower-quartile
    depth (log-uniform in this range; `worldgen fly` defaults to 0.02); sets the frame stride."""
    max_stride: int = 8
    """Largest frame stride within a flight."""
    flip: bool = True
    """Mirror half of the clips left-right (image and world together)."""
    walks: float = 0.0
    """Share of the flights that are walks on the forest floor among standing trees (refine/synth
    `standing_world`, `make_walk`: trunks upright at one depth, crowns overhead, sky between them;
    what forest photos show and drone flights never do); the rest are drone flights. 0 = none (how
    every run up to 2026-12-02 was trained)."""
    gorges: float = 0.0
    """Share of the flights that fly low (1-4 m) along the floor of a narrow canyon (refine/synth/gorge.py
    `gorge_world`, flights.py `make_gorge_flight`: steep dark rock walls rising on both sides and converging,
    a bright floor of water, sand and gravel, the far end often closed by a bend; what a photo taken in a
    gorge shows, which the networks read upside down, crystal_falls). walks + gorges <= 1; 0 = none (how every
    run up to 2026-12-03 was trained)."""
    winter: float = 0.0
    """Share of the walks whose forest floor is under snow (refine/synth/trees.py `winter_world`: dark trunks on
    bright snow, what photos of a snowy pine wood show; Creek, which the depth networks read with bright as far).
    0 = none (how every run up to 2026-12-03 was trained)."""
    gorge_walls: float = 0.0
    """Share of the gorge flights that face one of the canyon's walls instead of looking along it (flights.py
    `make_gorge_flight(face_wall=True)`: the same path, turned 55-85 degrees, pitched 10 up to 4 down; the
    wall fills the frame's top edge as in a photo taken facing a cliff, where the along-canyon view shows a strip
    of sky: crystal_falls, which every network trained with gorges called partly sky, 2026-12-04). 0 = none (how
    every run up to 2026-12-04 was trained)."""
    gorge_across: float = 0.0
    """Share of the wall-facing gorge flights (`gorge_walls`) that face the wall from across the floor, pitched
    down (flights.py `make_gorge_flight(across=True)`: the floor the wall stands on fills the frame's lower part,
    bright and near, under the dark wall, as crystal_falls' pool and gravel under its cliff, which the run with
    wall-facing flights alone called farther than the cliff, 2026-12-05). 0 = none (how every run up to 2026-12-05
    was trained)."""
    colour: ColourJitterConfig = field(default_factory=ColourJitterConfig)
    """Random colour changes of whole clips (`refine.train.data.colour_remap`)."""

    def validate(self) -> None:
        at_least(self, "width height flights frames flights_per_world render_batch max_stride world_grid", 1)
        at_least(self, "refresh_every refresh_flights", 0)
        check_seed(self, "seed_start")
        at_least(self, "speed", 1e-9)
        shares(self, "walks gorges winter gorge_walls gorge_across")
        if self.walks + self.gorges > 1 + 1e-9:
            raise bad("gorges", f"must be <= 1 - walks ({self.walks:g}): walks and gorges share the same flights",
                      self.gorges)


@dataclass(frozen=True)
class LossConfig:
    """Weights of the generator's loss terms (see refine/losses.py for what replaces VGG/LPIPS)."""

    rgb: float = 1.0
    """L1 on the refined colour."""
    mse: float = 0.0
    """Mean squared error of the refined colour (what PSNR measures; the fidelity run of 2026-12-02 weighs
    it 10: the L1's gradient is the error's sign, which rewards the median, not the mean)."""
    neg_psnr: float = 0.0
    """Weight of minus the mean PSNR (dB) of the refined frames, each frame's MSE floored at 1e-6 (60 dB): the held-out
    score itself. Unlike the MSE summed over a batch it weighs a smooth, nearly perfect frame as much as a
    textured one: a small error there costs many dB (the fidelity run's network lost 0.3 dB to push-pull on
    the smooth eval seed while gaining on the textured ones; BENCHMARKS.md, 2026-12-02 fourth)."""
    ssim: float = 0.0
    """Weight of 1 - SSIM of the refined colour (worldgen/core/metrics.py ssim_map, the held-out score's own formula;
    structure where the MSE weighs only the error's energy)."""
    laplacian: float = 1.0
    """L1 between Laplacian pyramids (detail)."""
    detail: float = 1.0
    """L1 between local detail energies (refine/losses.py detail_energy_l1: texture without its
    phase) where the network may change the colour (added at step 243 of the shipped run)."""
    disparity: float = 0.5
    """L1 on log-disparity of the refined frame (non-sky pixels of both)."""
    net_disparity: float = 0.25
    """L1 on the network's own log-disparity (before covered pixels keep the rendered one)."""
    sky: float = 0.2
    """Binary cross-entropy of the sky logit on uncovered pixels."""
    adversarial: float = 0.05
    """Hinge GAN loss of the generator."""
    feature_matching: float = 1.0
    """L1 between the discriminator's features of refined and true frames."""
    gan_start: int = 300
    """Step from which the adversarial and feature-matching terms are on."""
    colour: float = 1.0
    """L1 between the Lab mean and spread of the refined and true colour where the network may change
    it (refine/losses.py colour_moments_l1; added at step 3180 of the shipped run: the flights over
    real photos drifted green)."""

    def validate(self) -> None:
        at_least(self, " ".join(f.name for f in fields(self) if f.name != "gan_start"), 0)
        at_least(self, "gan_start", 0)


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 2e-4
    """Adam learning rate of the refiner (cosine decay to 10 % over `TrainConfig.steps`)."""
    lr_disc: float = 2e-4
    """Adam learning rate of the discriminator."""
    betas: tuple[float, float] = (0.5, 0.99)
    grad_clip: float = 1.0
    """Global gradient-norm clip of the refiner."""
    warmup: int = 100
    """Linear learning-rate warm-up steps."""
    hold_from: int = 0
    """0: the cosine decay runs to the run's last step. N > 0: it ends at step N and the rate holds at 10 % from
    there on, so a run continued past the steps it was planned for keeps the rate it ended with instead of climbing
    back (a schedule stretched from 9,000 to 12,000 steps takes 3e-4 x 10 % = 3.0e-5 back up to 7.1e-5 at step 9,000,
    which undid the depth network's held-out gains; docs/depth.md, 2026-12-04)."""

    def validate(self) -> None:
        at_least(self, "lr lr_disc warmup hold_from", 0)
        at_least(self, "grad_clip", 1e-12)
        if not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas):
            raise bad("betas", "must be two numbers in [0, 1)", self.betas)


@dataclass(frozen=True)
class UnrollConfig:
    """How each training sample runs the real generator loop."""

    steps: int = 4
    """Generated steps per clip, all supervised, gradients through all of them (T)."""
    warm_steps: tuple[int, int] = (0, 4)
    """Range of extra generated steps run first without gradients (so the network also sees the
    worlds it has built over longer flights)."""
    per_frame: float = 0.35
    """Share of clips run in per-frame mode (the rest persistent)."""
    grad_through_world: bool = True
    """Back-propagate through the world: step t's loss reaches the network's outputs at earlier steps
    through lifting and rendering. Off: each step's loss trains that step's network pass only (the
    worlds are built without gradients; about half the cost on a CPU)."""

    def validate(self) -> None:
        shares(self, "per_frame")


@dataclass(frozen=True)
class ReplayConfig:
    """Replay training (refine/train/replay.py): clips are unrolled without gradients into a buffer on
    the device and the network trains on batches drawn from it (off: every step unrolls its own clips
    with gradients through them, flight mode as Infinite Nature)."""

    capacity: int = 0
    """Supervised generator steps held (0 = off). Rebuilt whole at the run's first step and at every
    multiple of `TrainConfig.checkpoint_every` (so a run resumed there is exact)."""
    batch: int = 16
    """Entries per training step."""
    refill_every: int = 4
    """Training steps between unrolls that add `TrainConfig.batch` clips x `UnrollConfig.steps` new
    entries (reuse: each entry is drawn about batch * refill_every / (clips x steps) times)."""
    start_fill: float = 1.0
    """Share of `capacity` a rebuild fills before training goes on (the refills then grow the buffer to capacity):
    1 = all of it. A rebuild at a GPU call's start took ~80 s of its ~420 s of training with 0-16 warm steps
    (2026-12-05, ninth session); 0.25 makes that ~20 s, at the price of a less varied buffer for the first
    capacity x 0.75 / (clips x steps) refills. Deterministic either way (a resume at a rebuild step stays exact)."""

    def validate(self) -> None:
        if self.capacity < 0 or self.batch < 1 or self.refill_every < 1 or not 0 < self.start_fill <= 1:
            raise ValueError("replay settings: capacity >= 0, batch >= 1, refill_every >= 1, 0 < start_fill <= 1")


@dataclass(frozen=True)
class StillPhotoConfig:
    """Still-photo steps of `worldgen train` (refine/train/photos.py; off unless `folder` is given)."""

    folder: str | None = None
    """Folder of real photos (JPEG/PNG/WebP); None: flight steps only."""
    every: int = 3
    """One photo step every `every` training steps (the rest are flight steps): ratio 1 : every - 1."""
    start: int = 0
    """Training step from which photo steps are mixed in."""
    batch: int = 4
    """Photo clips per photo step."""
    cycle_share: float = 0.5
    """Share of photo steps that fly a cycle (the rest fly forward)."""
    cycle_frames: int = 7
    """Frames of a cycle, the photo included (its last frame is the photo's pose again)."""
    forward_frames: int = 12
    """Frames of a forward flight, the photo included."""
    forward_grad: int = 2
    """Generated steps at the end of a forward flight that carry gradients (the rest run without)."""
    forward_frames_max: int = 0
    """Progressive trajectory growth (InfiniteNature-Zero): forward flights grow from `forward_frames` to this
    many frames over `grow_steps` training steps from step `grow_from` (0: no growth). Without it the
    critic only ever saw frames a few steps from the photo, nearly the photo itself, and stayed at chance
    (hinge 1.96-2.00 over steps 3180-4212), while real flights go wrong 50-300 frames out."""
    grow_from: int = 0
    """Training step at which forward flights start to grow."""
    grow_steps: int = 1000
    """Training steps over which forward flights grow to `forward_frames_max`."""
    speed: tuple[float, float] = (0.01, 0.04)
    """Camera speed per step (log-uniform), as a fraction of the crop's lower-quartile depth."""
    fov: tuple[float, float] = (50.0, 75.0)
    """Assumed horizontal field of view of a crop, degrees (uniform)."""
    min_crop: float = 0.35
    """Smallest crop, as a share of the photo's area."""
    reconstruction: float = 1.0
    """Weight of L1 + Laplacian L1 between the returned frame and the photo (cycles)."""
    adversarial: float = 0.1
    """Weight of the photo critic's hinge loss on generated frames."""
    feature_matching: float = 1.0
    """Weight of the photo critic's feature matching between the returned frame and the photo."""
    colour: float = 1.0
    """Weight of the colour-statistics term of every generated frame against its photo (Lab mean and
    spread, refine/losses.py colour_moments_l1): a flight over a photo stays in the photo's colours."""
    colour_generated: float = 1.0
    """Weight of the colour-statistics term of what each generated frame's refiner changed (not sky) against
    the photo's ground (non-sky pixels): the casts that grow over real photos start in generated strips,
    too small a share of the frame for `colour` to see (docs/refiner.md, "The saturated fields"). 0: off."""
    band_energy: float = 0.5
    """Weight of the per-band detail-amount term of every generated frame against its photo
    (refine/losses.py band_energy_l1): a flight over a photo keeps the photo's amount of texture."""
    critic_steps: int = 1
    """Updates of the photo critic per photo step (each with fresh real crops against the step's frames); 0 with
    `adversarial` and `feature_matching` 0: photo steps of image statistics (and the cycle's reconstruction) only, and
    no critic is saved with the checkpoints."""
    critic_detail: float = 8.0
    """Gain of the photo critic's detail channels (refine/losses.py MultiScaleDiscriminator; 0: the image
    only, as before 2026-12-01, when the critic never left chance). A checkpoint's critic of the other
    kind is not loaded: the run starts a new one."""
    critic_generated: bool = False
    """The photo critic judges only what the refiner generated: each patch of a generated frame counts in
    proportion to its share of generated, not-sky pixels (and its adversarial term likewise), each patch of a
    real crop to its share of not-sky pixels (the depth network's sky); False: whole frames against whole
    crops (as before 2026-12-03). Why: a frame a few steps from the photo is mostly the photo re-rendered, so
    a whole-frame critic learns little (hinge 1.96 -> 1.54 at best) and its gradient reaches the generated
    strips, where flights over photos go wrong, only diluted."""
    critic_condition: bool = False
    """A conditional photo critic (refine/train/photos.py `PhotoSource.colour_condition`): it sees with every image
    the colour statistics (RGB mean and spread of the ground) of the photo it belongs to (a generated frame: the
    photo its flight started from), and real crops paired with another photo's statistics, or under a random
    colour change with their own, count as fakes (matching-aware; `PhotoSource.mismatched`). Why: an
    unconditional critic accepts any photo's colours, and the refiner answered it with colour casts (2026-12-03:
    hf 0.89 but dE 13.6 against 7.0 over the real photos). A checkpoint's critic of the other kind is not
    loaded: the run starts a new one."""
    critic_degraded: bool = False
    """Real crops made poor in detail (blurred, or upsampled from a quarter of their size: `PhotoSource.degraded`)
    count as fakes too, with their own photo's statistics under `critic_condition`. Why: each photo critic learned
    the easiest tell it was given -- the unconditional one detail and hardly colour, the conditional one of
    2026-12-03 (step 5510) colour and hardly detail (blurred crops 0.01 against the photo's 0.05), and the
    refiner then kept less detail (hf 0.77 against 0.875)."""
    depth_weights: str | None = None
    """Depth network for the photos (default: the shipped refine/weights/depth.pt)."""

    def forward_frames_at(self, step: int) -> int:
        """Frames of a forward flight at training `step` (the photo included)."""
        if self.forward_frames_max <= self.forward_frames:
            return self.forward_frames
        u = min(1.0, max(0.0, (step - self.grow_from) / max(1, self.grow_steps)))
        return self.forward_frames + round(u * (self.forward_frames_max - self.forward_frames))

    def validate(self) -> None:
        shares(self, "cycle_share")
        at_least(self, "min_crop", 1e-6)
        at_least(self, "speed fov", 1e-9)
        at_least(self, "start grow_from reconstruction adversarial feature_matching colour colour_generated band_energy "
                       "critic_detail", 0)
        if self.every < 1 or self.batch < 1 or self.critic_steps < 0 or self.cycle_frames < 3 or self.forward_frames < 2:
            raise ValueError("still-photo settings: every, batch >= 1; critic_steps >= 0; cycle_frames >= 3; "
                             "forward_frames >= 2")
        if self.critic_steps == 0 and (self.adversarial > 0 or self.feature_matching > 0):
            raise ValueError("still-photo settings: critic_steps 0 (no photo critic) needs adversarial and "
                             "feature_matching 0")
        if not 1 <= self.forward_grad <= self.forward_frames - 1:
            raise ValueError("still-photo settings: forward_grad must be in 1 .. forward_frames - 1")
        if self.forward_frames_max and (self.forward_frames_max < self.forward_frames or self.grow_steps < 1):
            raise ValueError("still-photo settings: forward_frames_max must be 0 or >= forward_frames, grow_steps >= 1")


@dataclass(frozen=True)
class TrainConfig:
    """Train the learned refiner on procedural flights (flight mode, as Infinite Nature on ACID)."""

    out: str = "runs/train-refiner"
    """Run folder: checkpoint.pt, log.jsonl, loss.png, samples/."""
    steps: int = 4000
    """Total training steps (a resumed run continues to this count)."""
    batch: int = 8
    """Clips per step per process."""
    seed: int = 0
    """Seed of everything random in the run (per step and rank: a resumed run repeats it exactly)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    resume: bool = True
    """Continue from out/checkpoint.pt when it exists."""
    init: str | None = None
    """Start the refiner from these weights (a weights file or checkpoint) instead of from scratch."""
    max_minutes: float = 0.0
    """Stop (with a checkpoint) before the step that would end past this many minutes of wall time (as `deadline`);
    0 = no limit."""
    deadline: float = 0.0
    """Stop (with a checkpoint) before the step that would end past this Unix time (judged by the longest step of
    this run so far, plus the last replay rebuild's time before a step that rebuilds); 0 = none (for runs that must
    end inside a time-limited call)."""
    stop_after: int = 0
    """Stop (with a checkpoint) after this many steps in this process; 0 = run to `steps`. The
    schedule still spans `steps`, so a run cut into pieces equals the uninterrupted one."""
    grad_probe: bool = False
    """Diagnosis of dropped steps: hooks on the gradients of each unrolled step's world (the Gaussians the
    renderer draws), render, network input, network output and composed frame log which of them were not
    finite (`nonfinite_grad_at_<stage>`). Each hook waits for the device, so it is off by default."""
    checkpoint_every: int = 200
    """Steps between checkpoints (and one at the end / on the time limit); a replay run also rebuilds its buffer
    at each (so a run resumed there is exact)."""
    compact_every: int = 0
    """Steps between extra compact checkpoints (checkpoint-compact.pt only: weights, step, cursor; no optimiser
    moments, no replay rebuild), for runs on borrowed machines that may be killed before their last checkpoint
    (scripts/gpu_train.sh sends each back as it is written); a run continued from one is not bit-exact. 0: none."""
    log_every: int = 10
    sample_every: int = 200
    """Steps between sample grids (samples/step_NNNNNN.png)."""
    profile: bool = False
    """Synchronise the device around each phase and log per-phase times (slower)."""
    net: RefinerNetConfig = field(default_factory=RefinerNetConfig)
    refiner: LearnedRefinerConfig = field(default_factory=LearnedRefinerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    unroll: UnrollConfig = field(default_factory=UnrollConfig)
    photos: StillPhotoConfig = field(default_factory=StillPhotoConfig)
    """Still-photo steps (InfiniteNature-Zero), mixed with the flight steps; off without --photos.folder."""
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    """Replay training (off unless --replay.capacity > 0)."""

    def validate(self) -> None:
        """ValueError (one line, for `worldgen train`; `worldgen.core.config.check` names the option) for settings
        the run could not keep: counts and sizes below 1 (steps, batch, net.widths, ...), negative or non-finite
        times, a clip of the longest warm-up plus the supervised steps that does not fit in a flight, replay and
        still-photo settings out of their ranges. `check(cfg)` also runs the nested configs' own `validate`."""
        at_least(self, "steps batch checkpoint_every log_every", 1)
        at_least(self, "sample_every compact_every stop_after max_minutes deadline", 0)
        check_seed(self, "seed")
        check_net(self)
        lo, hi = self.unroll.warm_steps
        if self.unroll.steps < 1 or not 0 <= lo <= hi:
            raise ValueError("unroll settings: steps >= 1 and 0 <= warm_steps[0] <= warm_steps[1]")
        if self.data.frames < hi + self.unroll.steps + 1:
            raise ValueError(f"data.frames {self.data.frames} is too few for clips of up to {hi} warm-up + "
                             f"{self.unroll.steps} supervised steps: need at least {hi + self.unroll.steps + 1}")
        self.replay.validate()
        self.photos.validate()
