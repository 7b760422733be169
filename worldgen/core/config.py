"""Config trees: frozen dataclasses nested in one another (tyro turns them into the command line).

- `check(cfg)` validates a whole tree: every dataclass in it may define `validate()`, which reports a
  bad value with `bad(field, message, value)`; `check` turns that into one UserInputError naming the
  option as the command line spells it (`--generator.lift.sigma-px must be positive, got -1.0`), so
  every command reports bad values the same way. Seeds are checked by `check_seed` (one range, SEED_MAX;
  a script's argparse options by `check_seed_option`; a script's lower bounds by `check_at_least_option`).
- `to_dict` / `from_dict` write a tree as plain JSON data and read it back (config.json, `--config`).

Nested dataclasses whose field is annotated `tyro.conf.arg(name="")` are flattened on the command
line (their options have no prefix); the names here follow that.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from worldgen.core.io import UserInputError


class ConfigValueError(ValueError):
    """A bad value in one config field (raised by `validate()` methods through `bad`)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field} {message}")
        self.field, self.message = field, message


def bad(field: str, message: str, value: Any = dataclasses.MISSING) -> ConfigValueError:
    """The error for field `field` (its Python name) of the config being validated: `raise bad(...)`.

    `message` reads after the option's name ("must be positive"); `value`, if given, is appended
    (", got -1.0")."""
    if value is not dataclasses.MISSING:
        message = f"{message}, got {value!r}"
    return ConfigValueError(field, message)


SEED_MAX = 2**63 - 1
"""The largest seed an option takes: every seed option (--refiner-seed, synth's --seed, compare's --synthetic, the
training seeds) is 0 .. 2^63 - 1 (`check_seed`). torch's generators take 0 .. 2^64 - 1 (beyond, "Overflow when
unpacking long long"; a negative seed is quietly folded onto 2^64 - x) and numpy's default_rng any int >= 0, but the
procedural worlds draw their grids from `seed % 2^63` (refine/synth/terrain.py), so a larger seed would repeat a
smaller one's terrain."""


def check_seed(cfg: Any, field: str, count: int = 1) -> None:
    """`raise bad(...)` (for a `validate()`: one line naming the option) unless field `field` of config `cfg` is a
    seed, an int in 0 .. SEED_MAX; with `count` > 1, a run of seeds value .. value + count - 1 (synth's sequences)
    that must all be."""
    value = getattr(cfg, field)
    top = SEED_MAX - max(count - 1, 0)
    if not (isinstance(value, int) and 0 <= value <= top):
        upto = "2^63 - 1" if count <= 1 else f"2^63 - {count:,} ({count:,} seeds from it)"
        raise bad(field, f"must be between 0 and {upto}", value)


def check_seed_option(args: Any, field: str, count: int = 1) -> None:
    """`check_seed` for a script's argparse options (`args`, a Namespace): UserInputError of one line naming the
    option as the script spells it (`--seed must be between 0 and 2^63 - 1, got -1`); a value of None (an option
    not given, where the script then picks its own) passes, and a list (`--seeds A B ...`, nargs) is checked seed by
    seed (the line names the first bad one)."""
    value = getattr(args, field)
    for v in value if isinstance(value, (list, tuple)) else [value]:
        if v is None:
            continue
        try:
            check_seed(types.SimpleNamespace(**{field: v}), field, count)
        except ConfigValueError as e:
            raise UserInputError(f"{option_name('', e.field)} {e.message}") from None


def check_at_least_option(args: Any, field: str, least: int) -> None:
    """UserInputError of one line naming a script's argparse option (`--frame must be at least 0, got -1`) unless
    its value (field `field` of Namespace `args`) is a number >= `least`; None (an option not given) passes, and a
    list (nargs) is checked value by value (the line names the first bad one)."""
    value = getattr(args, field)
    for v in value if isinstance(value, (list, tuple)) else [value]:
        if v is not None and v < least:
            raise UserInputError(f"{option_name('', field)} must be at least {least}, got {v}")


def _flattened(cls: type) -> set[str]:
    """Names of the nested-config fields of `cls` that the command line shows without a prefix."""
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:  # unresolvable annotations: assume prefixes
        return set()
    out = set()
    for name, hint in hints.items():
        if typing.get_origin(hint) is typing.Annotated:
            if any(getattr(m, "name", None) == "" for m in typing.get_args(hint)[1:]):
                out.add(name)
    return out


def option_name(prefix: str, field: str) -> str:
    """The command-line spelling of `field` under `prefix` ("generator.lift.", "sigma_px" ->
    "--generator.lift.sigma-px")."""
    return "--" + (prefix + field).replace("_", "-")


def check(cfg: Any, prefix: str = "") -> None:
    """Validate the config tree `cfg` (depth first, children before their parent); raise
    UserInputError with one line naming the first bad option."""
    if not dataclasses.is_dataclass(cfg):
        return
    flat = _flattened(type(cfg))
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if dataclasses.is_dataclass(v):
            check(v, prefix if f.name in flat else f"{prefix}{f.name}.")
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        try:
            validate()
        except ConfigValueError as e:
            raise UserInputError(f"{option_name(prefix, e.field)} {e.message}") from None


def to_dict(cfg: Any) -> dict:
    """Plain JSON data of a config tree (nested dicts; tuples as lists, paths as strings)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, os.PathLike):
            return os.fspath(v)
        return v

    return plain(cfg)


def from_dict(cls: type, data: Any, where: str = "config") -> Any:
    """The `cls` config tree described by `data` (as written by `to_dict`); fields it lacks keep their
    defaults. UserInputError (one line, naming `where` and the field) for unknown fields, values of the
    wrong type, and a lacking field that has no default."""
    return _build(cls, data, where)


def _build(tp: Any, v: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _build(args[0], v, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(v, dict):
            raise UserInputError(f"{where}: expected an object, got {type(v).__name__}")
        hints = typing.get_type_hints(tp, include_extras=True)
        names = {f.name for f in dataclasses.fields(tp) if f.init}
        unknown = sorted(set(v) - names)
        if unknown:
            raise UserInputError(f"{where}: unknown option {unknown[0]!r}")
        lacking = [f.name for f in dataclasses.fields(tp) if f.init and f.name not in v
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if lacking:  # (a required field has no default to keep)
            raise UserInputError(f"{where}: lacks {lacking[0]!r}, which has no default")
        return tp(**{k: _build(hints[k], x, f"{where}.{k}") for k, x in v.items()})
    if origin in (Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _build(a, v, where)
            except UserInputError as e:
                errors.append(str(e))
        raise UserInputError(errors[0] if errors else f"{where}: unexpected value {v!r}")
    if origin is Literal:
        if v not in args:
            raise UserInputError(f"{where}: must be one of {', '.join(map(repr, args))}, got {v!r}")
        return v
    if origin in (tuple, list):
        if not isinstance(v, (list, tuple)):
            raise UserInputError(f"{where}: expected a list, got {type(v).__name__}")
        item = args[0] if args else Any
        out = [_build(item, x, f"{where}[{i}]") for i, x in enumerate(v)]
        return tuple(out) if origin is tuple else out
    if tp is Any:
        return v
    if tp is Path:
        if not isinstance(v, str):
            raise UserInputError(f"{where}: expected a path, got {type(v).__name__}")
        return Path(v)
    if tp is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UserInputError(f"{where}: expected a number, got {type(v).__name__}")
        return float(v)
    if tp in (int, str, bool):
        if type(v) is not tp:
            raise UserInputError(f"{where}: expected {tp.__name__}, got {type(v).__name__}")
        return v
    raise UserInputError(f"{where}: cannot read a value of type {tp}")
