"""The `worldgen` command line: one subcommand per job, each a config dataclass run by its `main`.

Commands are discovered through the entry-point group `worldgen.commands` (see pyproject.toml), so
packages above worldgen (the viewer) add subcommands without worldgen importing them. Each entry
point names a `worldgen.commands.Command`. Only the command asked for is imported; one whose entry
point fails to import is reported in one line naming it (and listed as unavailable in `worldgen --help`).

Every command also takes two options that pick where its settings start from (then the other options
override them):
    --preset NAME   a named preset from configs/ (e.g. `worldgen fly --preset cpu-fast IMAGE`);
    --config FILE   a config.json a run wrote (the whole resolved tree): replays that run.
A command whose config has a `resume` field (fly) also takes
    --resume DIR    continue the run in folder DIR: settings from DIR/config.json, --out DIR.
Bad input (a UserInputError anywhere, bad config values included, and tyro's own parse errors: an
unknown option or command, a value of the wrong type) prints one line, `worldgen: error: ...`, and
exits with status 2.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
from importlib.metadata import entry_points
from typing import Any

from worldgen.core.io import UserInputError, os_error_line

BUILTIN = {**{name: f"worldgen.commands.{name}:COMMAND" for name in ("fly", "compare", "bench", "synth", "train", "export", "depth")},
           "train-depth": "worldgen.commands.train:DEPTH"}
"""worldgen's own commands, used when the package metadata (and so its entry points) is not installed."""

BASE_OPTIONS = ("Settings start from the defaults, from a named preset (--preset NAME; --preset '?' lists them) "
                "or from a run's config.json (--config FILE: replays that run); the options below override them.")


class CommandUnavailable(Exception):
    """A command's entry point could not be imported (the message names the command and why)."""


def command_targets() -> dict[str, str]:
    """Subcommand name -> "module:attribute" of its Command, from the `worldgen.commands` entry points."""
    found = {ep.name: ep.value for ep in entry_points(group="worldgen.commands")}
    if not found:
        print("worldgen: note: package metadata not installed; only worldgen's own commands are available "
              "(`pip install -e .` adds the viewer's)", file=sys.stderr)
        return dict(BUILTIN)
    return found


def load_command(name: str, target: str):
    """Import the Command behind entry point `target`; CommandUnavailable (one line) if that fails."""
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except Exception as e:  # ImportError of an optional dependency, or a broken module: say which and why
        raise CommandUnavailable(f"command {name!r} is unavailable: importing {target} failed "
                                 f"({type(e).__name__}: {e})".replace("\n", " ")) from None


def _take_option(args: list[str], flag: str) -> tuple[list[str], str | None]:
    """(args without `flag VALUE` / `flag=VALUE`, VALUE or None); UserInputError if given twice or bare."""
    rest, value = [], None
    i = 0
    while i < len(args):
        a = args[i]
        if a == flag or a.startswith(flag + "="):
            if value is not None:
                raise UserInputError(f"{flag} given twice")
            if a == flag:
                if i + 1 >= len(args):
                    raise UserInputError(f"{flag} needs a value")
                value, i = args[i + 1], i + 2
            else:
                value, i = a.split("=", 1)[1], i + 1
            continue
        rest.append(a)
        i += 1
    return rest, value


def _resume_options(cls: type, rest: list[str], preset: str | None, config_file: str | None):
    """(options, config file) with `--resume DIR` turned into `--config DIR/config.json --resume DIR
    --out DIR` for a command config with a `resume` field; UserInputError for conflicting options."""
    import dataclasses
    from pathlib import Path

    rest, resume = _take_option(rest, "--resume")
    if resume is None:
        return rest, config_file
    if "resume" not in {f.name for f in dataclasses.fields(cls)}:
        raise UserInputError("--resume is not an option of this command")
    if preset is not None or config_file is not None:
        raise UserInputError("--resume takes its settings from the run's config.json; drop --preset and --config")
    if any(a == "--out" or a.startswith("--out=") for a in rest):
        raise UserInputError(f"--resume {resume} continues the run in its own folder; drop --out")
    config = Path(resume) / "config.json"
    if not Path(resume).is_dir():
        raise UserInputError(f"--resume {resume}: no such run folder")
    if not config.is_file():
        raise UserInputError(f"--resume {resume}: not a run folder (no config.json)")
    return rest + ["--resume", resume, "--out", resume], str(config)


def starting_config(cls: type, preset: str | None, config_file: str | None) -> Any:
    """The config the options override: `cls`'s defaults with a preset in place, or a saved config file
    (required fields the defaults lack are `tyro.MISSING`)."""
    import dataclasses

    import tyro

    from configs import apply_preset, load_config_file

    if preset is not None and config_file is not None:
        raise UserInputError("give --preset or --config, not both (a config file already holds a whole tree)")
    if config_file is not None:
        return load_config_file(cls, config_file)
    required = {f.name: tyro.MISSING for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    base = cls(**required)
    return base if preset is None else apply_preset(cls, preset, base)


def tyro_error_line(box: str) -> str:
    """tyro's error panel as one line: its sections joined with "; ", leaving out its title and the help text it
    quotes. The panel is drawn with box characters on a terminal (title in the top border, "│" sides, "─"
    rules) and as plain text elsewhere (title on the first line, "-" rules)."""
    drawn = "│" in box
    sections: list[list[str]] = [[]]
    for line in box.splitlines():
        if line.lstrip().startswith(("╭", "╰")):
            continue
        text = line.strip().strip("│").strip()
        if text and set(text) <= {"─", "-"}:
            sections.append([])
        elif text:
            sections[-1].append(text)
    if not drawn and len(sections) > 1:
        sections = sections[1:]  # the title
    kept = [" ".join(s) for s in sections if s and not s[0].startswith(("For full helptext", "Argument helptext"))]
    return "; ".join(kept) or " ".join(box.split())


def _parse(parse, help_hint: str):
    """Run tyro's `parse()` with its stderr caught: a parse error becomes a UserInputError (one line, ending
    with `help_hint`); anything else it wrote (help goes to stdout) is passed on."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            result = parse()
    except SystemExit as e:
        if e.code not in (0, None):
            raise UserInputError(f"{tyro_error_line(err.getvalue())} ({help_hint})") from None
        sys.stderr.write(err.getvalue())
        raise
    except BaseException:
        sys.stderr.write(err.getvalue())
        raise
    sys.stderr.write(err.getvalue())  # warnings on a successful parse
    return result


def _other_commands_config(name: str, config_file: str | None, targets: dict) -> UserInputError | None:
    """For a --config (or --resume) file that `worldgen name` cannot read: the one line saying which other command
    wrote it, or None (not another command's either, or no config file). A command's config.json holds its whole
    resolved tree, so the file is another command's when its top-level names are exactly that command's fields and
    it loads as its config (a partial file, `{}` say, names no command)."""
    if config_file is None:
        return None
    import dataclasses
    import json
    from pathlib import Path

    from configs import load_config_file

    try:
        names = set(json.loads(Path(config_file).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None
    for other, target in sorted(targets.items()):
        if other == name:
            continue
        try:
            cls = load_command(other, target).config
            if names != {f.name for f in dataclasses.fields(cls) if f.init}:
                continue
            load_config_file(cls, config_file)
        except (UserInputError, CommandUnavailable):
            continue
        return UserInputError(f"{config_file} is a `worldgen {other}` config, not one `worldgen {name}` can replay")
    return None


def entrypoint(argv: list[str] | None = None) -> None:
    """Console-script entry point (`worldgen ...`)."""
    import tyro

    argv = list(sys.argv[1:] if argv is None else argv)
    targets = command_targets()
    try:
        if argv and argv[0] in targets:
            name = argv[0]
            cmd = load_command(name, targets[name])
            rest, preset = _take_option(argv[1:], "--preset")
            rest, config_file = _take_option(rest, "--config")
            rest, config_file = _resume_options(cmd.config, rest, preset, config_file)
            if preset == "?":
                from configs import presets_for

                table = presets_for(cmd.config)
                for n, p in table.items():
                    print(f"{n:<14} {p.description}")
                if not table:
                    print(f"(no presets for worldgen {name})")
                return
            try:
                start = starting_config(cmd.config, preset, config_file)
            except UserInputError as e:
                raise _other_commands_config(name, config_file, targets) or e from None
            description = f"{(cmd.config.__doc__ or '').strip()}\n\n{BASE_OPTIONS}"
            cfg = _parse(lambda: tyro.cli(cmd.config, args=rest, default=start, prog=f"worldgen {name}",
                                          description=description), f"worldgen {name} --help lists the options")
            cmd.main(cfg)
            return
        cmds = {}
        for name, target in sorted(targets.items()):
            try:
                cmds[name] = load_command(name, target)
            except CommandUnavailable as e:
                print(f"worldgen: note: {e}", file=sys.stderr)
        _parse(lambda: tyro.extras.subcommand_cli_from_dict(  # help, or an error for an unknown command
            {name: c.config for name, c in cmds.items()}, args=argv,
            description="worldgen: one landscape photo -> an endless 3D flythrough that keeps its world.\n\n"
                        + BASE_OPTIONS), "worldgen --help lists them")
        raise UserInputError(f"unknown command {argv[0]!r}" if argv else "no command given")
    except CommandUnavailable as e:
        print(f"worldgen: error: {e}", file=sys.stderr)
        sys.exit(2)
    except UserInputError as e:
        print(f"worldgen: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # the machine's, not the input's: a full disk, a name too long, a file gone mid-run
        print(f"worldgen: error: {os_error_line(e)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("worldgen: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    entrypoint()
