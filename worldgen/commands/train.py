"""`worldgen train` and `worldgen train-depth`: train the learned refiner / the depth network.

    worldgen train --preset train-refiner-h200 --out runs/r1            # one GPU (or CPU at toy size)
    torchrun --nproc_per_node 6 -m worldgen.cli train --preset train-refiner-h200 --out runs/r1
    worldgen train-depth --preset train-depth-h200 --out runs/d1 --photos DIR

Each resumes from OUT/checkpoint.pt (or checkpoint-compact.pt) when one exists; see
refine/train/trainer.py and refine/train/depth.py for what a run writes. Bad settings and files are
one line (`worldgen: error: ...`); OUT is locked for the run (one writer), and a run that fails
before its first checkpoint leaves no folder it made behind. A full disk mid-run is one line too (exit 1)
naming the checkpoint that stands, whole (checkpoints are written atomically), which the same command resumes from;
when the disk filled at the end (the weights file, curves or train.json) after the last checkpoint, the same command
writes those files from it without training (a run whose end is written says there is nothing to train).
"""

from __future__ import annotations

import os

from refine.train.config import TrainConfig
from refine.train.depth import DepthTrainConfig, train_depth
from refine.train.trainer import train
from worldgen.commands import Command
from worldgen.core.io import UserInputError


def _run(fn, cfg) -> None:
    try:
        summary = fn(cfg)
    except ValueError as e:  # bad settings, --init / --photos / checkpoint files, a split violation (one line each)
        raise UserInputError(str(e)) from None
    if os.environ.get("RANK", "0") != "0":  # under torchrun only the first process writes the run folder
        return
    print(f"wrote {cfg.out}: {summary['steps_done']} of {summary['steps_target']} steps, "
          f"{summary['seconds_this_run']:.0f} s in this run")


def main_refiner(cfg: TrainConfig) -> None:
    _run(train, cfg)


def main_depth(cfg: DepthTrainConfig) -> None:
    _run(train_depth, cfg)


COMMAND = Command(TrainConfig, main_refiner)
DEPTH = Command(DepthTrainConfig, main_depth)
