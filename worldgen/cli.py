"""The `worldgen` command line: one subcommand per job, each a config dataclass run by its `main`.

Commands are discovered through the entry-point group `worldgen.commands` (see pyproject.toml),
so packages that `worldgen` must not import (the viewer) still add subcommands. Each entry point
names a `Command`. Bad input (a UserInputError anywhere) prints one line, `worldgen: error: ...`,
and exits with status 2.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable

from worldgen.io import UserInputError


@dataclass(frozen=True)
class Command:
    """A subcommand: its config dataclass (tyro builds the options from it) and its `main(config)`."""

    config: type
    main: Callable[[Any], None]


# Used when the package metadata is not installed (e.g. a bare PYTHONPATH checkout); the viewer's
# commands need the entry points, since worldgen never names viewer modules itself.
BUILTIN = {name: f"worldgen.{mod}:COMMAND" for name, mod in
           {"fly": "fly", "synth": "synth_cli", "compare": "compare", "bench": "bench",
            "export": "export.cli"}.items()}


def commands() -> dict[str, Command]:
    """Subcommand name -> Command, from the `worldgen.commands` entry points."""
    import importlib

    found = {ep.name: ep.value for ep in entry_points(group="worldgen.commands")} or dict(BUILTIN)
    out = {}
    for name, target in sorted(found.items()):
        module, attr = target.split(":")
        try:
            out[name] = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:  # a command whose optional dependencies are missing
            if os.environ.get("WORLDGEN_DEBUG"):
                print(f"worldgen: note: command {name!r} unavailable ({e})", file=sys.stderr)
    return out


def entrypoint(argv: list[str] | None = None) -> None:
    """Console-script entry point (`worldgen ...`)."""
    import tyro

    cmds = commands()
    cfg = tyro.extras.subcommand_cli_from_dict(
        {name: c.config for name, c in cmds.items()}, args=argv,
        description="worldgen: one landscape photo -> an endless 3D flythrough that keeps its world.")
    main = next(c.main for c in cmds.values() if type(cfg) is c.config)
    try:
        main(cfg)
    except UserInputError as e:
        print(f"worldgen: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("worldgen: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    entrypoint()
