"""`worldgen compare`: the persistent generator against the per-frame baseline (see command.py)."""

from worldgen.commands.compare.command import COMMAND, CompareConfig, main, run

__all__ = ["COMMAND", "CompareConfig", "main", "run"]
