"""The commands of the `worldgen` CLI: one module (or package) per command, each a config dataclass
and a `main(config)` wrapped in a `Command`, registered as an entry point in pyproject.toml.

Commands import the pipeline and the core; nothing imports a command, and no command imports
another (tests/test_layers.py checks both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Command:
    """A subcommand: its config dataclass (tyro builds the options from it) and its `main(config)`."""

    config: type
    main: Callable[[Any], None]
