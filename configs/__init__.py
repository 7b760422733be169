"""Named presets: whole settings trees chosen with `--preset NAME` (nerfstudio's method configs, typed).

A preset is a description and a config object (a frozen dataclass instance). `worldgen CMD --preset
NAME` starts from the command's defaults with the preset put in place of the command's field of the
same type (flight presets are `PipelineConfig`s, so every command that flies takes them: fly,
compare, live); options given on the command line then override it. `--config FILE` starts from a
saved config.json instead (the whole resolved tree a run wrote), so a run can be replayed.

Where presets live (`Preset` itself is in configs/base.py):
    configs/flight.py   default, cpu-fast, gpu-quality (PipelineConfig)
    configs/train.py    training presets (train-refiner-*, train-depth-*): their config types live
                        with the training code; register them in TRAIN_PRESETS there.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

from configs.base import Preset
from configs.flight import FLIGHT_PRESETS
from configs.train import TRAIN_PRESETS
from worldgen.core.config import from_dict
from worldgen.core.io import UserInputError

__all__ = ["Preset", "apply_preset", "load_config_file", "presets", "presets_for"]


def presets() -> dict[str, Preset]:
    """Every preset by name (flight and training presets together; names are unique)."""
    clash = set(FLIGHT_PRESETS) & set(TRAIN_PRESETS)
    if clash:
        raise RuntimeError(f"preset names used twice: {sorted(clash)}")
    return {**FLIGHT_PRESETS, **TRAIN_PRESETS}


def presets_for(cls: type) -> dict[str, Preset]:
    """The presets that apply to command config class `cls` (its own type or a field's type)."""
    return {name: p for name, p in presets().items() if _target_field(cls, p) is not None}


def _target_field(cls: type, preset: Preset) -> str | None:
    """"" if the preset is a whole `cls` config, the name of the field it replaces, or None."""
    if type(preset.config) is cls:
        return ""
    for name, hint in typing.get_type_hints(cls, include_extras=True).items():
        if typing.get_origin(hint) is typing.Annotated:
            hint = typing.get_args(hint)[0]
        if hint is type(preset.config):
            return name
    return None


def apply_preset(cls: type, name: str, base: Any) -> Any:
    """`base` (a `cls` config, possibly holding `tyro.MISSING` for required fields) with preset `name`
    put in place; UserInputError (one line) for an unknown name or one that does not fit `cls`."""
    table = presets()
    if name not in table:
        raise UserInputError(f"unknown preset {name!r}: expected one of {', '.join(sorted(presets_for(cls)))}")
    field = _target_field(cls, table[name])
    if field is None:
        raise UserInputError(f"preset {name!r} does not apply here (it sets a {type(table[name].config).__name__}); "
                             f"this command takes: {', '.join(sorted(presets_for(cls))) or 'none'}")
    return table[name].config if field == "" else dataclasses.replace(base, **{field: table[name].config})


ONE_SHOT = ("overwrite", "resume")
"""Fields a config.json records but a replay does not inherit: what that run was told to do to its folder (clear it,
continue it), not how to fly. `--config FILE --out OTHER` must never clear OTHER because FILE's run was given
--overwrite; the command line may still give them."""


def load_config_file(cls: type, path: str) -> Any:
    """The `cls` config saved in `path` (a config.json a run wrote), with the `ONE_SHOT` fields back at their
    defaults; UserInputError (one line) for a missing or malformed file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserInputError(f"no such config file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserInputError(f"cannot read config file {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise UserInputError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    cfg = from_dict(cls, data, where=Path(path).name)
    reset = {f.name: f.default for f in dataclasses.fields(cls) if f.name in ONE_SHOT
             and f.default is not dataclasses.MISSING}
    return dataclasses.replace(cfg, **reset) if reset else cfg
