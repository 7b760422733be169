"""`python -m refine.train {refiner,depth} [--preset NAME] [options]` (also under torchrun).

`worldgen train` is the same command; this entry exists for `torchrun ... -m refine.train`.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    import tyro

    from configs.train import DEPTH_PRESETS, REFINER_PRESETS
    from refine.train.config import TrainConfig
    from refine.train.depth import DepthTrainConfig, train_depth
    from refine.train.trainer import train

    argv = list(sys.argv[1:] if argv is None else argv)
    kinds = {"refiner": (TrainConfig, REFINER_PRESETS, train), "depth": (DepthTrainConfig, DEPTH_PRESETS, train_depth)}
    if not argv or argv[0] not in kinds:
        print(f"usage: python -m refine.train {{{','.join(kinds)}}} [--preset NAME] [options]", file=sys.stderr)
        sys.exit(2)
    cls, presets, run = kinds[argv.pop(0)]
    default = cls()
    if "--preset" in argv:
        i = argv.index("--preset")
        name = argv[i + 1] if i + 1 < len(argv) else ""
        if name not in presets:
            print(f"worldgen: error: unknown preset {name!r}; choose one of {', '.join(presets)}", file=sys.stderr)
            sys.exit(2)
        default = presets[name][1]
        del argv[i:i + 2]
    run(tyro.cli(cls, default=default, args=argv))


if __name__ == "__main__":
    main()
