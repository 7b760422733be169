"""Training presets (the learned refiner's and the depth network's): `train-refiner-*`, `train-depth-*`.

Each entry is a `Preset(description, config)` whose config is an instance of the training command's
config class: `worldgen train --preset NAME` (TrainConfig, refine/train/config.py) and
`worldgen train-depth --preset NAME` (DepthTrainConfig, refine/train/depth.py) start from it. The
config classes live with the training code; this table only names instances of them.
"""

from __future__ import annotations

import dataclasses

from configs.base import Preset
from refine.learned import LearnedRefinerConfig
from refine.net import RefinerNetConfig
from refine.train.config import (
                                 ColourJitterConfig,
                                 DataConfig,
                                 LossConfig,
                                 OptimConfig,
                                 ReplayConfig,
                                 StillPhotoConfig,
                                 TrainConfig,
                                 UnrollConfig,
)
from refine.train.depth import DepthTrainConfig

_TINY_NET = RefinerNetConfig(widths=(8, 16, 32), bottleneck_blocks=1, global_code=16)
_TINY_DATA = DataConfig(width=32, height=32, flights=2, frames=10, flights_per_world=2, refresh_every=0,
                        world_grid=128, quality="fast", render_batch=16)

# The replay runs on the H200 (train-refiner-h200 and its fidelity continuation) share these. A compact checkpoint
# every 250 steps (about 90 s at 2.7 steps/s; the full one, which also rebuilds the replay buffer, ~35 s, every 1000):
# scripts/gpu_train.sh sends each back as it is written, so a call killed before it packs loses at most that.
_H200_REPLAY = TrainConfig(out="runs/train-refiner", steps=20000, batch=8, device="cuda", checkpoint_every=1000,
                           compact_every=250,
                           log_every=50, sample_every=500,
                           data=DataConfig(flights=12, refresh_every=240, refresh_flights=1),
                           replay=ReplayConfig(capacity=768, batch=16, refill_every=6),
                           # (the colour anchor these runs were composed with; the default is 0.35 since 2026-12-04)
                           refiner=LearnedRefinerConfig(anchor=0.3))
# The fidelity runs (refiner.pt 3180-4957, refiner-fidelity.pt since): composed without anchors, losses that reward
# being right on average.
_H200_FIDELITY = dataclasses.replace(
    _H200_REPLAY,
    refiner=LearnedRefinerConfig(anchor=0.0, texture=0.0),
    loss=LossConfig(mse=10.0, neg_psnr=0.01, detail=0.0, colour=0.0, adversarial=0.0, feature_matching=0.0,
                    gan_start=10**9))

# the still-photo runs of 2026-12-03 from `learned` (step 4957), composed as shipped: one photo step in two
_PHOTO_CRITIC = dataclasses.replace(_H200_FIDELITY, refiner=LearnedRefinerConfig(anchor=0.3, texture=1.0),
                                    photos=StillPhotoConfig(every=2, critic_steps=4, critic_generated=True,
                                                            forward_frames_max=40, grow_from=4957, grow_steps=400))

_DEPTH_H200 = DepthTrainConfig(out="runs/train-depth", steps=6000, batch=24, device="cuda", standing_trees=0.0,
                               data=DataConfig(flights=32, frames=16, flights_per_world=4, refresh_every=25,
                                               refresh_flights=1, seed_start=500_000))
_DEPTH_CLOUDS_HOLD = dataclasses.replace(_DEPTH_H200, steps=12000, clouds=0.5,
                                         optim=dataclasses.replace(_DEPTH_H200.optim, hold_from=9000),
                                         data=dataclasses.replace(_DEPTH_H200.data, refresh_every=6,
                                                                  flights_per_world=6, compile=True))
_DEPTH_CLOUDS_HOLD_SKY = dataclasses.replace(_DEPTH_CLOUDS_HOLD, steps=15000, layout_from="refine/weights/depth.pt",
                                             layout_weight=0.0, layout_sky=1.0)
_DEPTH_WALKS = dataclasses.replace(_DEPTH_H200, steps=9000, data=dataclasses.replace(_DEPTH_H200.data, walks=0.35))
_DEPTH_WALKS_LAYOUT = dataclasses.replace(_DEPTH_WALKS, layout_from="refine/weights/depth.pt", layout_weight=0.5,
                                          layout_cell=16)
_DEPTH_WALKS_CLOUDS_HOLD_SKY = dataclasses.replace(  # the walks-gorges data from step 9,000 at the held rate
    _DEPTH_WALKS_LAYOUT, steps=15000, clouds=0.5, layout_sky=1.0,
    optim=dataclasses.replace(_DEPTH_WALKS_LAYOUT.optim, hold_from=9000),
    data=dataclasses.replace(_DEPTH_WALKS_LAYOUT.data, gorges=0.2, winter=0.3))
_DEPTH_ACROSS = dataclasses.replace(  # the walls run (branch B's anchors) with 60 % of its wall-facing flights across
    _DEPTH_WALKS_CLOUDS_HOLD_SKY, layout_weight=1.0, layout_sky=2.0, layout_sky_mode="logit",
    data=dataclasses.replace(_DEPTH_WALKS_CLOUDS_HOLD_SKY.data, gorge_walls=0.5, gorge_across=0.6))
TRAIN_PRESETS: dict[str, Preset] = {
    "train-refiner-tiny": Preset(
        "CPU smoke test (CI): a tiny refiner on 32x32 flights of one small world, a few dozen steps.",
        TrainConfig(
            out="runs/train-refiner-tiny", steps=30, batch=2, device="cpu", checkpoint_every=10, log_every=5,
            sample_every=10, net=_TINY_NET, data=_TINY_DATA, loss=LossConfig(gan_start=6),
            optim=OptimConfig(lr=1e-3, lr_disc=1e-3, warmup=2),
            unroll=UnrollConfig(steps=2, warm_steps=(0, 1), per_frame=0.5),
        ),
    ),
    "train-refiner-cpu": Preset(
        "Fine-tuning on the 2-core CPU machine: 128x128 flights (fast render quality), batch 4 clips x 3 "
        "supervised steps, gradients through each step's network pass only.",
        TrainConfig(out="runs/train-refiner-cpu", steps=400, batch=4, device="cpu", checkpoint_every=20, log_every=5,
                    sample_every=50,
                    data=DataConfig(width=128, height=128, flights=6, frames=24, flights_per_world=2, refresh_every=60,
                                    refresh_flights=1, quality="fast"),
                    loss=LossConfig(gan_start=100),
                    optim=OptimConfig(lr=1e-4, lr_disc=1e-4, warmup=20),
                    unroll=UnrollConfig(steps=3, warm_steps=(0, 2), grad_through_world=False)),
    ),
    "train-refiner-photos-tiny": Preset(
        "CPU smoke test (CI) of still-photo steps: the tiny refiner, every other step a photo step, given a folder "
        "of photos (--photos.folder DIR; without one there are no photo steps, as in every preset).",
        TrainConfig(
            out="runs/train-refiner-photos-tiny", steps=8, batch=2, device="cpu", checkpoint_every=4, log_every=2,
            sample_every=0, net=_TINY_NET, data=_TINY_DATA, loss=LossConfig(gan_start=2),
            optim=OptimConfig(lr=1e-3, lr_disc=1e-3, warmup=2),
            unroll=UnrollConfig(steps=2, warm_steps=(0, 1), per_frame=0.5, grad_through_world=False),
            photos=StillPhotoConfig(every=2, batch=2, cycle_frames=4, forward_frames=4, forward_grad=1),
        ),
    ),
    "train-refiner-h200": Preset(
        "The refiner's run from step 243 to 3180: replay training: per process, 256x256 flights rendered on the "
        "GPU, unrolled 8 clips x 4 supervised steps at a time without gradients into a buffer of 768 steps, and "
        "batches of 16 drawn from it (scripts/gpu_train.sh runs 3 processes per GPU).",
        dataclasses.replace(
            _H200_REPLAY,
            loss=LossConfig(detail=10.0, adversarial=0.1),  # the run's values since step 2000
            optim=OptimConfig(lr_disc=4e-4),
            # with --photos.folder: a photo step unrolls with gradients (~6x a replay step's time);
            # one in 3 (steps 3180-3800: 0.9 steps/s per process on 2 x H200) leans on the photos, and
            # the photo critic, at chance with one update per photo step, takes 4; it stayed at chance
            # with 4 as well (3800 -> 4212, one H200, 2026-12-01): its fakes were 11 steps from the
            # photo, so forward flights now grow to 60 frames over 1,500 steps from step 3,200
            photos=StillPhotoConfig(every=3, critic_steps=4, forward_frames_max=60, grow_from=3200, grow_steps=1500)),
    ),
    "train-refiner-h200-fidelity": Preset(
        "The run of refiner.pt from step 3180 to 4957 and of refiner-fidelity.pt since (2026-12-02; its start: "
        "step 3180 with the colour residual's head rows zeroed by scripts/reset_colour_residual.py): replay training "
        "as train-refiner-h200 on procedural flights only, composed without the anchors (steps 3180-4404 ran with the colour anchor 0.3), with losses "
        "that reward being right on average (L1 + 10 x MSE, Laplacian L1, depth and sky; no detail-energy, "
        "colour-spread, adversarial or feature-matching terms, which pay for texture with PSNR); since step 4957 "
        "also 0.01 x minus the mean PSNR (steps 3180-4957 ran without it: --loss.neg-psnr 0); steps 7040-10081 "
        "(2026-12-03) also 0.5 x (1 - SSIM) (--loss.ssim 0.5; 7040-7837 with --refiner.sharp-px 2 "
        "--refiner.detail-px 4); refiner-fidelity.pt is the mean of steps 8731's and 9427's weights "
        "(scripts/average_weights.py).",
        _H200_FIDELITY,
    ),
    "train-refiner-h200-fidelity-photos": Preset(
        "Run once (7040 -> 7374, 2026-12-02; not kept: over the real photos its colours got worse, late-frame dE "
        "median 28 against 12, BENCHMARKS.md): the fidelity run with still-photo steps of image statistics and no "
        "critic, so one "
        "network can be both right on procedural truth and in the photo's colours over long flights (step 7040 "
        "drifted there: BENCHMARKS.md, 2026-12-02 fifth): one photo step in three (cycles and forward flights over "
        "crops of --photos.folder with the shipped depth network's depth), Lab colour and band-energy terms on every "
        "generated frame, L1 + Laplacian on the cycle's return; no adversarial or feature-matching term.",
        dataclasses.replace(_H200_FIDELITY,
                            photos=StillPhotoConfig(every=3, adversarial=0.0, feature_matching=0.0, critic_steps=0)),
    ),
    "train-refiner-h200-fidelity-colour": Preset(
        "The fidelity run (with 0.5 x (1 - SSIM), as since step 7040) on procedural flights whose colours are "
        "changed at random, one change per clip for all its frames, in half the clips (DataConfig.colour: hue +-45 "
        "degrees, saturation 0.6-1.6, white balance +-20 %, gamma 0.7-1.4): a network that cannot rely on the "
        "procedural palette must take its colours from the frame, where over real photos the fidelity network paints "
        "the procedural worlds' magenta and blue haze (2026-12-03).",
        dataclasses.replace(_H200_FIDELITY, loss=dataclasses.replace(_H200_FIDELITY.loss, ssim=0.5),
                            data=dataclasses.replace(_H200_FIDELITY.data, colour=ColourJitterConfig(share=0.5))),
    ),
    "train-refiner-h200-fidelity-anchored": Preset(
        "The fidelity run (with 0.5 x (1 - SSIM)) composed in the loop as `learned` is shipped, "
        "with the colour anchor 0.3 and the detail anchor 1, so that one network is trained to be right on procedural "
        "truth under the composition that keeps photo flights in their colours and detail (the fidelity weights "
        "composed so, untrained for it: hf median 0.62, dE 9.2 over the 14 real photos; BENCHMARKS.md, 2026-12-03 "
        "third). Ran 9,427 -> 11,407 on one H200 (2026-12-03, fourth): the photos' colours a little "
        "better, their fade not (hf median 0.60, dE 8.2).",
        dataclasses.replace(_H200_FIDELITY, refiner=LearnedRefinerConfig(anchor=0.3, texture=1.0),
                            loss=dataclasses.replace(_H200_FIDELITY.loss, ssim=0.5)),
    ),
    "train-refiner-h200-fidelity-anchored-detail": Preset(
        "Run from refine/weights/refiner-fidelity.pt 9,427 -> 12,550 on one H200 (2026-12-03, fifth): hf median 0.65, "
        "dE 8.3 over the 14 real photos, truth unchanged; not kept (refiner-fidelity.json). Run from refine/weights/"
        "refiner.pt (the photo-fit `learned` weights) 4,957 -> 7,093 (2026-12-03, sixth): held-out truth within 0.1 dB "
        "of step 4957, photos hf 0.96 but dE 7.0 -> 10.5; not kept (refiner.json). The anchored fidelity run "
        "with the shipped refiner's texture and colour terms back on (detail energy L1 4.0, Lab moments L1 1.0; still"
        " no adversarial term; 4, not the shipped refiner's 1, because beside 10 x MSE a detail term of weight 1 is a"
        " tenth of the colour loss): trained under the anchors alone, the fidelity network keeps its photo flights' "
        "colours but still fades their generated ground (14 real photos, 300 frames: hf median 0.60, dE 8.2 at step "
        "11,407; `learned`, trained with these terms: 0.875 / 7.0; BENCHMARKS.md, 2026-12-03 fourth).",
        dataclasses.replace(_H200_FIDELITY, refiner=LearnedRefinerConfig(anchor=0.3, texture=1.0),
                            loss=dataclasses.replace(_H200_FIDELITY.loss, ssim=0.5, detail=4.0, colour=1.0)),
    ),
    "train-refiner-h200-photo-critic": Preset(
        "Still-photo steps with a critic of generated ground (InfiniteNature-Zero's adversarial loss over long "
        "paths, judged where the refiner generated): from refine/weights/refiner.pt (`learned`, step 4957), composed "
        "in the loop as shipped (colour anchor 0.3, detail anchor 1), its own fidelity losses on the replayed "
        "procedural steps, and one photo step in two (cycles and forward flights over crops of --photos.folder, "
        "forward flights growing from 12 to 40 frames over 400 steps from step 4,957) whose photo critic "
        "(StillPhotoConfig.critic_generated, 4 updates a step) weighs each generated frame's patches by what the "
        "refiner generated, not sky, and real crops' by their ground. Why: every earlier photo critic judged whole "
        "frames, mostly the photo re-rendered, and stayed near chance (hinge 1.96 -> 1.54 at best). Ran 4,957 -> 5,620 on "
        "one H200 (2026-12-03, seventh session): the critic left chance (hinge 1.88 -> 1.31), and over the 14 real "
        "photos the refiner answered with texture and colour drift (hf median 0.89, dE 13.6 against step 4957's 0.875 "
        "/ 7.0); not kept (refiner.json, not_shipped).",
        _PHOTO_CRITIC,
    ),
    "train-refiner-h200-photo-cond": Preset(
        "The photo critic of generated ground made conditional (StillPhotoConfig.critic_condition): it sees each "
        "image with its photo's colour statistics, and real crops with another photo's statistics or under a colour "
        "change count as fakes, so a colour cast away from the photo is what gives a generated frame away. "
        "Otherwise the train-refiner-h200-photo-critic run (from refine/weights/refiner.pt, step 4957; one photo step "
        "in two, 4 critic updates each, forward flights growing 12 -> 40 frames over 400 steps). Why: that run's "
        "unconditional critic accepted any photo's colours and the refiner answered it with casts (dE 13.6 against "
        "7.0 over the real photos). Ran 4,957 -> 5,510 on one H200 (2026-12-03, eighth session): the critic learned more "
        "slowly (hinge 1.93 -> 1.60), the casts went (dE 6.5) but detail at frame 300 fell (hf 0.77 against 0.875) and "
        "a brown-orange band with a bright lip grew along the generated horizon on 9 of 14 photos; not kept (refiner.json, "
        "not_shipped).",
        dataclasses.replace(_PHOTO_CRITIC, photos=dataclasses.replace(_PHOTO_CRITIC.photos, critic_condition=True)),
    ),
    "train-refiner-h200-photo-cond-detail": Preset(
        "The conditional photo critic also given real crops poor in detail as fakes (StillPhotoConfig.critic_degraded: "
        "blurred, or upsampled from a quarter of their size), so that it judges colour against the photo and detail "
        "alike; otherwise train-refiner-h200-photo-cond. Why: that run's critic judged colour and hardly detail "
        "(blurred crops scored as the photo), and the refiner kept less detail (hf 0.77 against 0.875). Not run yet "
        "(2026-12-03).",
        dataclasses.replace(_PHOTO_CRITIC, photos=dataclasses.replace(_PHOTO_CRITIC.photos, critic_condition=True,
                                                                      critic_degraded=True)),
    ),
    "train-refiner-h200-long-warm": Preset(
        "The default refiner (refine/weights/refiner.pt, step 4957) trained on the worlds it builds over long "
        "flights: each replayed unroll first runs 0-16 generator steps without gradients (UnrollConfig.warm_steps; "
        "every run before ran 0-4) over 96-frame procedural flights, composed as `learned` would be without its "
        "colour anchor (anchor 0, detail anchor 1), with the fidelity losses and the colour jitter of half the clips "
        "(DataConfig.colour). Why: `learned` needs its colour anchor (0.35) to keep real photos' colours over 300 "
        "frames, and that anchor is what loses the default the persistent PSNR cells of issue 9 (0.64 of 0.75 dB on "
        "tundra worlds); docs/refiner.md's reading of the drift is each strip's small bias fed back through the "
        "persistent world over hundreds of frames, which 4-step unrolls never show the network, and colour jitter "
        "alone (train-refiner-h200-fidelity-colour) did not stop it. One unroll every 12 steps instead of 6 (an "
        "unroll is ~2x longer): each replayed entry is drawn ~6 times. Ran 4,957 -> 6,118 on one H100 (2026-12-05, "
        "ninth session, two calls; 2.2 steps/s, GPU 77-83 % busy; 0-40 warm steps over 160 frames, tried first, "
        "reached only 43 steps: its replay buffer, rebuilt whole at the start and at step 5,000, took ~3 min each "
        "time, and the call was killed in the second): over the 14 real photos detail held better (hf at 200 >= "
        "0.7 on 14, at 300 >= 0.8 on 9; step 4957 composed alike: 11 / 4) and colour far worse (dE <= 10 on 2 of "
        "14 against 6; saturated hue-shifted fields, "
        "the jitter's palette), 9 of 14 with the colour anchor 0.35 back on (shipped: 14); held out it lost every "
        "persistent PSNR cell, by 1.5-2.8 dB on the smooth tundra world. Not kept (refine/weights/refiner.json "
        "not_shipped; docs/refiner.md). With --data.colour.share 0 (no jitter) it ran 4,957 -> 6,925 on one H100 "
        "(2026-12-06, eleventh session, two calls, 2.7-2.9 steps/s, GPU 76-92 % busy): the photos' colours drifted "
        "as far (ground dE <= 10 on 8 of 14 with the anchor, shipped 13) and the tundra world lost 3-5 dB with or "
        "without the anchor: the long unrolls, not the jitter; not kept either.",
        dataclasses.replace(
            _H200_FIDELITY, refiner=LearnedRefinerConfig(anchor=0.0, texture=1.0),
            unroll=UnrollConfig(warm_steps=(0, 16)),
            data=dataclasses.replace(_H200_FIDELITY.data, frames=96, colour=ColourJitterConfig(share=0.5)),
            replay=dataclasses.replace(_H200_FIDELITY.replay, refill_every=12)),
    ),
    "train-refiner-h200-flight": Preset(
        "The shipped refiner's first 243 steps: flight mode (gradients through 4 unrolled steps of 8 clips per "
        "process and step; 0.3 steps/s per process on 2 x H200).",
        TrainConfig(out="runs/train-refiner", steps=4000, batch=8, device="cuda", checkpoint_every=250,
                    log_every=20, sample_every=250,
                    data=DataConfig(flights=12, refresh_every=40, refresh_flights=1)),
    ),
    "train-depth-tiny": Preset(
        "CPU smoke test (CI): a tiny depth network on 32x32 frames of one small world.",
        DepthTrainConfig(out="runs/train-depth-tiny", steps=20, batch=4, device="cpu", checkpoint_every=10,
                         log_every=5, sample_every=10, size=64, photo_batch=2, photo_start=5, net=_TINY_NET,
                         data=_TINY_DATA, optim=OptimConfig(lr=1e-3, warmup=2), standing_trees=0.5, clouds=0.5),
    ),
    "train-depth-h200": Preset(
        "The shipped depth network's run: 256-scale crops of procedural frames, batch 24, real-photo consistency."
        " Upright trees (--standing-trees 0.5) were tried from step 3,111 to 5,310 (2026-12-01): better procedural"
        " figures, but no tree stood up on the real photos and their sky masks got worse, so they are off again"
        " (a continuation without them tells which of the two came from the trees).",
        _DEPTH_H200,
    ),
    "train-depth-h200-clouds": Preset(
        "The shipped depth network's run continued from step 6,000 to 9,000 with procedural clouds in the sky of half "
        "the frames (refine/train/depth.py clouds: scattered to overcast, white to dark grey, down to the horizon). "
        "Why: the network calls the cloudy and overcast skies of real photos solid (sky logits -4 to 0), and flights "
        "lift them as a shell they fly into (docs/depth.md, 2026-12-03 ninth session); the sky hysteresis of flights "
        "(--sky-grow) takes only the clouds that touch sure sky. Ran 6,000 -> 9,000 alone on one H200 in 232 s "
        "(2026-12-04): the real photos' cloudy skies are sky (NissiBeach2 0.05 -> 0.20 of the frame at logit > 0), "
        "held-out drone depth a little better, 300-frame flights over the 14 real photos all within dE 10 of the photo; "
        "shipped as refine/weights/depth.pt (refine/weights/depth.json clouds_note).",
        dataclasses.replace(_DEPTH_H200, steps=9000, clouds=0.5),
    ),
    "train-depth-h200-clouds-hold": Preset(
        "The shipped clouds network (refine/weights/depth.pt, step 9,000) continued to 12,000 on fresher data (the "
        "flight cache refreshed every 6 steps instead of 25, 6 flights per world, the compiled renderer) at the rate "
        "its decay ended with (OptimConfig.hold_from 9,000: 3.0e-5 throughout). Why: both continuations of 2026-12-04 "
        "ran on a schedule stretched to 12,000 steps, which took the rate back up to 7.1e-5, and both lost step "
        "9,000's held-out drone depth within ~1,300 steps (MiDaS AbsRel 0.193 -> 0.248), whatever their data. Ran "
        "9,000 -> 14,000 in two calls (2026-12-04, fifth session; the second with --steps 14000): held-out drone AbsRel "
        "0.193 -> 0.178 (the rate was the cause), gorges 4.01 -> 3.54, walks 3.28 -> 3.34; not shipped, as the real "
        "photos lost sky between trees (refine/weights/depth.json tried_not_shipped; the -sky preset below).",
        _DEPTH_CLOUDS_HOLD,
    ),
    "train-depth-h200-clouds-hold-sky": Preset(
        "train-depth-h200-clouds-hold with the real photos' sky anchored to the shipped network's "
        "(DepthTrainConfig.layout_sky 1.0, layout_from refine/weights/depth.pt; its depth layout term off). Why: the "
        "hold preset ran 9,000 -> 14,000 (2026-12-04, fifth session) and bettered the held-out procedural depth (drone "
        "MiDaS AbsRel 0.193 -> 0.178, gorges 4.01 -> 3.54, sky IoU 0.954 -> 0.964), but called the bright overcast sky "
        "between the real photos' trees solid and their flights lost colour (shady_patch dE 6.6 -> 19): not shipped. "
        "Run 2026-12-04 (sixth session, one H200, two calls: 9,000 -> 12,109, then -> 15,000 with "
        "DEPTH_ARGS='--layout-from .carry/depth9000.pt', the anchor staying step 9,000 while depth.pt carried the "
        "continuation): the sky anchor halved the sky the training photos lost (15 % -> 7 % of step 9,000's grown sky) "
        "but not the real photos' (shady_patch 0.163 -> 0.071 at 12,109, 0.000 at 15,000), and the drone AbsRel rose "
        "to 0.232 at 15,000; not shipped (refine/weights/depth.json).",
        _DEPTH_CLOUDS_HOLD_SKY,
    ),
    "train-depth-h200-clouds-hold-skylogit": Preset(
        "train-depth-h200-clouds-hold-sky with the sky anchor on the logits (DepthTrainConfig.layout_sky_mode "
        "'logit': L1 of the two networks' sky logits clamped to +-6, weight 1.0). Why: the cross-entropy anchor sat "
        "at its floor (the anchor's own entropy) on the training photos and still let the grown sky of the real "
        "photos go: that sky lies in logits between the hysteresis threshold -3 and 0, where the cross-entropy's "
        "gradient is a tenth of the L1's. Run 2026-12-04 (seventh session, one H200, beside the walks variant below in "
        "one call: REFINER=0 DEPTH_PRESET=train-depth-h200-clouds-hold-skylogit DEPTH2_PRESET=... bash "
        "scripts/gpu_train.sh): 9,000 -> 10,435; held-out drone MiDaS AbsRel 0.193 -> 0.242, walks 3.28 -> 3.63, and "
        "the real photos' sky between trees still went (Creek 0.237 -> 0.152, shady_patch 0.163 -> 0.090 of the "
        "frame); stopped there, not shipped (refine/weights/depth.json).",
        dataclasses.replace(_DEPTH_CLOUDS_HOLD_SKY, layout_sky_mode="logit"),
    ),
    "train-depth-h200-walks-clouds": Preset(
        "The shipped clouds network (refine/weights/depth.pt, step 9,000) continued to 12,000 on the walks-gorges data "
        "(35 % forest-floor walks, 30 % of them on snow, 20 % gorge floors, 45 % drone flights) with its clouds kept "
        "(half the frames) and the layout anchor on the real photos (the step-9,000 network frozen, weight 0.5). Why: "
        "the forest and gorge photos are lifted into leaning surfaces that four of the 14 real-photo flights end "
        "pressed into (scripts/real_flights.py wall, 2026-12-04), and the walks runs were the only ones to stand "
        "trees up; each was run on the step-6,000 network without clouds. Run 2026-12-04 (one H200, two calls): two of "
        "the three wall flights freed, but detail at frame 200 >= 0.7 on 9 of 14 photos (13 shipped) and the sky "
        "streaks doubled; not shipped (refine/weights/depth.json).",
        dataclasses.replace(_DEPTH_WALKS_LAYOUT, steps=12000, clouds=0.5,
                            data=dataclasses.replace(_DEPTH_WALKS_LAYOUT.data, gorges=0.2, winter=0.3)),
    ),
    "train-depth-h200-walks-clouds-hold-sky": Preset(
        "train-depth-h200-walks-clouds at the held rate (OptimConfig.hold_from 9,000: 3.0e-5, where that run's "
        "schedule "
        "stretched to 12,000 steps took it back up to 7.1e-5) and with the real photos' sky anchored to step 9,000's "
        "(layout_sky 1.0; the layout anchor 0.5 as before). Why: that run freed two of the three wall flights but "
        "doubled the sky streaks, and the clouds data alone at the held rate (train-depth-h200-clouds-hold, 2026-12-04 "
        "fifth session) showed both its faults' likely causes: the rate for the held-out depth, the unanchored sky of "
        "the photos for the colour. Run 2026-12-04 (sixth session, one H200, one call: 9,000 -> 14,000): held-out "
        "walks and gorges AbsRel 3.28 / 4.01 -> 1.95 / 0.46 (past the prior's 2.21 / 0.51), drone 0.193 -> 0.196; but "
        "false sky in the real photos' rock (crystal_falls' gorge walls become sky over an invented field, dE 18.6) "
        "and colour lost on three flights; not shipped (refine/weights/depth.json).",
        _DEPTH_WALKS_CLOUDS_HOLD_SKY,
    ),
    "train-depth-h200-walks-clouds-hold-skylogit": Preset(
        "train-depth-h200-walks-clouds-hold-sky with the sky anchor on the logits (layout_sky_mode 'logit', as "
        "train-depth-h200-clouds-hold-skylogit). Why: the cross-entropy anchor let that run call the real photos' "
        "rock sky (crystal_falls' gorge walls) and lose their grown sky; the logits' L1 pulls both ways with the "
        "same force wherever the two networks' sky differs. Run 2026-12-04 (seventh session, one H200): 9,000 -> 11,266 "
        "beside the clouds variant (DEPTH2_PRESET), then from 11,266 in two branches carrying step 9,000 as the anchor "
        "(DEPTH_ARGS='--layout-from .carry/depth9000.pt'): as is to 13,826, and with --layout-weight 1.0 --layout-sky "
        "2.0 to 13,759 and on to 15,000 (figures: BENCHMARKS.md, 'Session of 2026-12-04, seventh'; "
        "refine/weights/depth.json tried_not_shipped).",
        dataclasses.replace(_DEPTH_WALKS_CLOUDS_HOLD_SKY, layout_sky_mode="logit"),
    ),
    "train-depth-h200-walks-clouds-hold-skylogit-walls": Preset(
        "train-depth-h200-walks-clouds-hold-skylogit's branch B (layout anchor 1.0, logit sky anchor 2.0) with half "
        "of the gorge flights facing a wall (DataConfig.gorge_walls 0.5: refine/synth/flights.py make_gorge_flight "
        "face_wall, the wall filling the frame's top edge). Why: every checkpoint of the walks-gorges runs drew "
        "crystal_falls (a photo facing a cliff) as near rock with a false band of sky, and its flight broke (B at "
        "15,000: dE 23.8, 2026-12-04 seventh session), while in two thirds of the gorge frames the top eighth is at "
        "least half sky. Run 2026-12-05 (one H200 call, REFINER=0 DEPTH_PRESET=... BUDGET=555 bash scripts/gpu_train.sh "
        "from step 9,000 to 15,000): better held out on walks and gorges, worse on the drone set, and crystal_falls' "
        "walls near but its foreground far (flight dE 19.3); not shipped (BENCHMARKS.md, 'Session of 2026-12-05').",
        dataclasses.replace(_DEPTH_WALKS_CLOUDS_HOLD_SKY, layout_weight=1.0, layout_sky=2.0, layout_sky_mode="logit",
                            data=dataclasses.replace(_DEPTH_WALKS_CLOUDS_HOLD_SKY.data, gorge_walls=0.5)),
    ),
    "train-depth-h200-walks-clouds-hold-skylogit-across": Preset(
        "train-depth-h200-walks-clouds-hold-skylogit-walls with 60 % of the wall-facing gorge flights standing across "
        "the floor from the wall, pitched 4-16 degrees down (DataConfig.gorge_across 0.6: refine/synth/flights.py "
        "make_gorge_flight across; the floor the wall stands on fills the frame's lower part, bright and near). Why: "
        "the walls run (2026-12-05) made crystal_falls' cliff near but called its foreground pool and gravel far, and "
        "its wall-facing frames stand near the centreline of a narrow floor, so the wall fills the whole frame and the "
        "floor under it is a sliver: the networks never saw a bright near floor at the foot of a dark wall. Run "
        "2026-12-05 (fifth session, one H200 call, REFINER=0 DEPTH_PRESET=... BUDGET=555 bash scripts/gpu_train.sh: "
        "9,000 -> 14,112): the best held-out gorges yet (AbsRel 0.61), worse drone set and photo bars, crystal_falls' "
        "foreground still far (flight dE 17.2); not shipped (BENCHMARKS.md, 'Session of 2026-12-05, fifth').",
        _DEPTH_ACROSS,
    ),
    "train-depth-h200-walks-clouds-hold-skylogit-across-held": Preset(
        "train-depth-h200-walks-clouds-hold-skylogit-across with the real photos held three times harder to step "
        "9,000's layout and twice as hard to its sky logits (layout_weight 3.0, layout_sky 4.0). Why: every "
        "walks/gorges run since step 9,000 (walks-clouds-hold-skylogit B, walls, across) bought held-out walks and "
        "gorges with the photos (crystal_falls' and Creek's ground order 0.45-0.52 against 0, three to four flights "
        "past dE 10), while the stronger of two anchors (B: 1.0 / 2.0 against A: 0.5 / 1.0) was the better on the "
        "drone set and walks alike; the question is whether the photos can keep step 9,000's order while the "
        "procedural sets improve. Run 2026-12-05 (sixth session, one H100 call, side by side with 6.0 / 8.0: "
        "REFINER=0 DEPTH_PRESET=this DEPTH2_PRESET=this DEPTH2_ARGS='--layout-weight 6.0 --layout-sky 8.0' BUDGET=555 "
        "bash scripts/gpu_train.sh, 9,000 -> 11,389 and 11,326): the photos keep step 9,000's ground order with both; "
        "at 3.0 / 4.0 gorges AbsRel 4.01 -> 1.55 but the drone set's log AbsRel and three photo flights worse "
        "(crystal_falls, its cliff now near, flies into it: dE 20.9), at 6.0 / 8.0 hardly a change; not shipped "
        "(BENCHMARKS.md, 'Session of 2026-12-05, sixth'). Continued alone on one H100 (seventh session: 9,000 -> 14,444 "
        "-> 19,902 in two calls, 12-13 steps/s, GPU ~53 % busy): held-out walks past the prior in every measure and "
        "gorges in all but the mean AbsRel, but crystal_falls' order lost again (0.60) and the photo flights 11 / 7 / 11 "
        "of 14; not shipped. Continued from 19,902 with the photos held harder (eighth session, --layout-weight 12.0 "
        "--layout-sky 16.0, side by side with 6.0 / 8.0): step 24,151 is the best held out yet and ships as "
        "--depth-model learned-fidelity (refine/weights/depth-fidelity.pt), not the default (photo flights "
        "10 / 7 / 12). "
        "A call continuing it must keep the anchor at step 9,000: carry that network as .carry/depth9000.pt with "
        "DEPTH_ARGS='--layout-from .carry/depth9000.pt --layout-weight 12.0 --layout-sky 16.0 --steps N', "
        "depth-fidelity.pt copied over refine/weights/depth.pt, and docs/ and depth-fidelity.pt moved out of the tree "
        "for the call (the 64-MiB carry).",
        dataclasses.replace(_DEPTH_ACROSS, layout_weight=3.0, layout_sky=4.0),
    ),
    "train-depth-h200-walks": Preset(
        "The shipped depth network continued from step 6,000 to 9,000 with 35 % of the "
        "flights walks on the forest floor among standing trees (refine/synth/trees.py: trunks upright at one "
        "depth, crowns overhead, sky between them), the training signal for issue 10's leaning trees that drone "
        "flights over height-field crowns never gave.",
        _DEPTH_WALKS,
    ),
    "train-depth-h200-walks-layout": Preset(
        "train-depth-h200-walks with the layout anchor on the real photos: the step-6,000 network (refine/weights/"
        "depth.pt as of commit 24bc450, which this run also starts from) frozen, and the trained network's log-depth "
        "averaged over 16-pixel cells of each photo crop held to its own (scale-invariant L1, weight 0.5). The walks "
        "run without it (6,000 -> 9,000 on one H200, 2026-12-02) stood trees up and found canopy gaps, and drew false "
        "near/far bands and an inverted ground (crystal_falls) on real photos without trees.",
        _DEPTH_WALKS_LAYOUT,
    ),
    "train-depth-h200-walks-order": Preset(
        "train-depth-h200-walks-layout with the ground-order term on the real photos "
        "(weight 1.0: the ground must come nearer going down the photo's lower five eighths), for the inversion every "
        "walks network drew on crystal_falls (2026-12-02, eighth and ninth sessions). Run 2026-12-03 (one H200, "
        "6,000 -> 9,000): crystal_falls still inverted, not shipped (refine/weights/depth.json).",
        dataclasses.replace(_DEPTH_WALKS_LAYOUT, ground_order_weight=1.0),
    ),
    "train-depth-h200-walks-shade": Preset(
        "train-depth-h200-walks-layout with half of the procedural frames lit unevenly (a smooth random gain field "
        "of up to 1 stop, refine/train/depth.py shading), so that brightness alone stops meaning far. Run once "
        "(2026-12-03, 6000 -> 9000 on one H200): crystal_falls' ground order 0.77 -> 0.57, still upside down, and "
        "new faults (sky holes in gray_pier's clouds, the_lost_city's near rocks read far); not shipped "
        "(refine/weights/depth.json, tried_not_shipped).",
        dataclasses.replace(_DEPTH_WALKS_LAYOUT, shading=0.5, shading_stops=1.0),
    ),
    "train-depth-h200-walks-gorges": Preset(
        "train-depth-h200-walks-layout with 20 % of the flights low along gorge floors (refine/synth/gorge.py: dark "
        "rock walls rising on both sides over a bright floor of water and gravel, converging, often closed by a "
        "bend), the data that no run had for crystal_falls, which every walks network read upside down (bright "
        "bottom = far), and 30 % of the walks on a snowy floor (refine/synth/trees.py winter_world: dark trunks on "
        "bright snow, as in Creek). 35 % walks, 20 % gorges, 45 % drone flights; from the shipped step 6,000 "
        "(refine/weights/depth.pt) as the other walks runs. Run once (2026-12-03, sixth session, 6000 -> 9000 on one "
        "H200 beside the refiner): held-out gorges and winter walks learned (disparity AbsRel 2.63 -> 0.87 and 3.17 "
        "-> 0.94), crystal_falls' ground order 0.57 (dark walls now near, the pool still far), Creek's trunks with "
        "holes of sky; not shipped (refine/weights/depth.json, tried_not_shipped).",
        dataclasses.replace(_DEPTH_WALKS_LAYOUT,
                            data=dataclasses.replace(_DEPTH_WALKS_LAYOUT.data, gorges=0.2, winter=0.3)),
    ),
}
