"""The `worldgen` command line: one subcommand per job, each a config dataclass run by its `main`.

Bad input (a UserInputError anywhere) prints one line, `worldgen: error: ...`, and exits with 2.
"""

from __future__ import annotations

import sys
import tyro

from worldgen.fly import FlyConfig
from worldgen.io import UserInputError


def _commands() -> dict[str, tuple[type, str]]:
    cmds: dict[str, tuple[type, str]] = {"fly": (FlyConfig, "worldgen.fly:main")}
    try:
        from worldgen.synth_cli import SynthConfig

        cmds["synth"] = (SynthConfig, "worldgen.synth_cli:main")
    except ImportError:
        pass
    return cmds


def _dispatch(cfg) -> None:
    import importlib

    for cls, target in _commands().values():
        if isinstance(cfg, cls):
            module, func = target.split(":")
            getattr(importlib.import_module(module), func)(cfg)
            return
    raise TypeError(f"no command for {type(cfg).__name__}")


def entrypoint(argv: list[str] | None = None) -> None:
    """Console-script entry point (`worldgen ...`)."""
    cmds = _commands()
    cfg = tyro.extras.subcommand_cli_from_dict({name: cls for name, (cls, _) in cmds.items()}, args=argv,
                                               description="worldgen: one landscape photo -> an endless 3D flythrough that keeps its world.")
    try:
        _dispatch(cfg)
    except UserInputError as e:
        print(f"worldgen: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("worldgen: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    entrypoint()
