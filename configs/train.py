"""Training presets: `{name: (description, config)}`, chosen with `--preset NAME`.

    worldgen train refiner --preset train-refiner-h200      (TrainConfig, refine/train/config.py)
    worldgen train depth --preset train-depth-h200          (DepthTrainConfig, refine/train/depth.py)
"""

from __future__ import annotations

from refine.net import RefinerNetConfig
from refine.train.config import DataConfig, LossConfig, OptimConfig, TrainConfig, UnrollConfig
from refine.train.depth import DepthTrainConfig

_TINY_NET = RefinerNetConfig(widths=(8, 16, 32), bottleneck_blocks=1, global_code=16)
_TINY_DATA = DataConfig(width=32, height=32, flights=2, frames=10, flights_per_world=2, refresh_every=0,
                        world_grid=128, quality="fast", render_batch=16)

REFINER_PRESETS: dict[str, tuple[str, TrainConfig]] = {
    "train-refiner-tiny": (
        "CPU smoke test (CI): a tiny network on 32x32 flights of one small world, a few dozen steps.",
        TrainConfig(
            out="runs/train-refiner-tiny", steps=30, batch=2, device="cpu", checkpoint_every=10, log_every=5,
            sample_every=10, net=_TINY_NET, data=_TINY_DATA, loss=LossConfig(gan_start=6),
            optim=OptimConfig(lr=1e-3, lr_disc=1e-3, warmup=2),
            unroll=UnrollConfig(steps=2, warm_steps=(0, 1), per_frame=0.5),
        ),
    ),
    "train-refiner-cpu": (
        "A refiner trained on the 2-core CPU machine: 128x128 flights, batch 4 clips x 3 supervised steps.",
        TrainConfig(out="runs/train-refiner-cpu", steps=3000, batch=4, device="cpu", checkpoint_every=50, log_every=10,
                    sample_every=100,
                    data=DataConfig(width=128, height=128, flights=8, frames=32, flights_per_world=2, refresh_every=150,
                                    refresh_flights=1),
                    unroll=UnrollConfig(steps=3, warm_steps=(0, 3))),
    ),
    "train-refiner-h200": (
        "The shipped refiner's run: 256x256 flights rendered on each GPU, batch 8 clips x 4 supervised steps.",
        TrainConfig(out="runs/train-refiner", steps=4000, batch=8, device="cuda", checkpoint_every=250,
                    log_every=20, sample_every=250),
    ),
}

DEPTH_PRESETS: dict[str, tuple[str, DepthTrainConfig]] = {
    "train-depth-tiny": (
        "CPU smoke test (CI): a tiny depth network on 32x32 frames of one small world.",
        DepthTrainConfig(out="runs/train-depth-tiny", steps=20, batch=4, device="cpu", checkpoint_every=10,
                         log_every=5, sample_every=10, size=64, photo_batch=2, photo_start=5, net=_TINY_NET,
                         data=_TINY_DATA, optim=OptimConfig(lr=1e-3, warmup=2)),
    ),
    "train-depth-h200": (
        "The shipped depth network's run: 256-scale crops of procedural frames, batch 24, real-photo consistency.",
        DepthTrainConfig(out="runs/train-depth", steps=6000, batch=24, device="cuda"),
    ),
}
