"""Training presets (the learned refiner's and the depth network's): `train-refiner-*`, `train-depth-*`.

Each entry is a `Preset(description, config)` whose config is an instance of the training command's
config class (or of a field's type in it): `worldgen <train command> --preset NAME` starts from it. The
config classes live with the training code (refine/train/); this table only names instances of them.
"""

from __future__ import annotations

from configs.base import Preset

TRAIN_PRESETS: dict[str, Preset] = {}
