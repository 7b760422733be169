"""`Preset`: a named settings tree (see configs/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Preset:
    """A named settings tree: `config` (a frozen dataclass instance) replaces the field of its type
    in a command's config, or is the command's whole config."""

    description: str
    config: Any
