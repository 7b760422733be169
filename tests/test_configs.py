"""One config tree: nested options on the command line, presets, config.json replays, one way to
report bad values, and commands that fail to import are reported."""

from __future__ import annotations

import dataclasses
import json

import pytest

import worldgen.cli as cli
from configs import apply_preset, presets, presets_for
from viewer.cli import LiveConfig, ViewConfig
from worldgen.cli import entrypoint, starting_config
from worldgen.commands.bench import BenchConfig
from worldgen.commands.compare import CompareConfig
from worldgen.commands.fly import FlyConfig
from worldgen.commands.synth import SynthConfig
from worldgen.core.config import check, from_dict, to_dict
from worldgen.core.io import UserInputError
from worldgen.pipeline.config import PipelineConfig


def cli_run(argv, capsys) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `worldgen ARGV` (0 when it returns)."""
    try:
        entrypoint(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def frame_bytes(run_dir) -> list[bytes]:
    return [p.read_bytes() for p in sorted((run_dir / "frames").glob("*.png"))]


def test_preset_run_is_replayed_exactly_from_its_config_json(photo, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    code, _, err = cli_run(["fly", str(photo), "--preset", "cpu-fast", "--frames", "4", "--path", "forward",
                            "--out", str(a), "--no-video", "--no-progress"], capsys)
    assert code == 0, err
    saved = json.loads((a / "config.json").read_text())
    assert saved["pipeline"]["auto_side"] == 128 and saved["pipeline"]["device"] == "cpu"  # the preset's values
    assert saved["pipeline"]["generator"]["lift"]["sigma_px"] == 0.45  # the whole tree, nested
    assert json.loads((a / "run.json").read_text())["size"] == [128, 96]
    code, _, err = cli_run(["fly", "--config", str(a / "config.json"), "--out", str(b), "--no-progress"], capsys)
    assert code == 0, err
    frames = frame_bytes(a)
    assert len(frames) == 4 and frames == frame_bytes(b)  # the same frames, byte for byte
    replayed = json.loads((b / "config.json").read_text())
    assert replayed == {**saved, "out": str(b), "progress": False}


def test_nested_options_reach_the_algorithm(photo, tmp_path, capsys):
    args = ["fly", str(photo), "--preset", "cpu-fast", "--frames", "3", "--path", "forward", "--no-video",
            "--no-progress"]
    assert cli_run(args + ["--out", str(tmp_path / "a")], capsys)[0] == 0
    assert cli_run(args + ["--out", str(tmp_path / "b"), "--generator.lift.sigma-px", "0.6"], capsys)[0] == 0
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert saved["pipeline"]["generator"]["lift"]["sigma_px"] == 0.6
    a, b = frame_bytes(tmp_path / "a"), frame_bytes(tmp_path / "b")
    assert a[0] == b[0] and a[1:] != b[1:]  # same photo, other Gaussians


@pytest.mark.parametrize("command, option, value, message", [
    ("fly", "--generator.lift.sigma-px", "-1", "--generator.lift.sigma-px must be positive, got -1.0"),
    ("fly", "--frames", "1", "--frames must be at least 2, got 1"),
    ("fly", "--refiner", "magic", "--refiner must be one of classical, learned, learned-fidelity or a weights FILE.pt "
     "(a learned one + KEY=VALUE overrides its composition), got 'magic'"),
    ("fly", "--refiner", "learned+glow=1", "--refiner overrides are +anchor=X, +texture=X, +sharp_px=X, +detail_px=X, "
     "+flip_average=X, got 'learned+glow=1'"),
    ("fly", "--refiner", "learned+anchor=inf", "--refiner override +anchor must be between 0 and 1, got "
     "'learned+anchor=inf'"),
    ("fly", "--refiner-anchor", "1.5", "--refiner-anchor must be between 0 and 1, got 1.5"),
    ("compare", "--refiner-texture", "-0.5", "--refiner-texture must be between 0 and 4, got -0.5"),
    ("compare", "--autopilot.smoothing", "1.5", "--autopilot.smoothing must be in [0, 1), got 1.5"),
    ("compare", "--speed", "-1", "--speed must be a positive number, got -1.0"),
    ("fly", "--speed", "1e30", "--speed must be a number between -1 and 1, got 1e+30"),
    ("live", "--classical-refiner.hole-alpha", "2", "--classical-refiner.hole-alpha must be in [0, 1], got 2.0"),
    ("live", "--push-every", "0", "--push-every must be at least 1, got 0"),
    ("bench", "--seeds", "0", "--seeds must be between 1 and 1000, got 0"),
    ("synth", "--frames", "0", "--frames must be >= 1, got 0"),
    ("view", "--budget", "0", "--budget must be positive, got 0"),
])
def test_every_command_reports_bad_values_the_same_way(photo, tmp_path, capsys, command, option, value, message):
    args = {"fly": [str(photo)], "compare": [str(photo)], "live": [str(photo)], "view": [str(tmp_path)]}.get(command, [])
    out = ["--out", str(tmp_path / "o")] if command in ("fly", "compare", "synth") else []
    code, _, err = cli_run([command, *args, option, value, *out], capsys)
    assert code == 2 and err.strip() == f"worldgen: error: {message}"
    assert not (tmp_path / "o").exists()  # nothing written before the settings were checked


@pytest.mark.parametrize("argv, message", [
    (["fly", "PHOTO", "--refiner", "learned+anchor=0.5+anchor=0.7"],
     "--refiner override +anchor is given twice, got 'learned+anchor=0.5+anchor=0.7'"),
    (["fly", "PHOTO", "--refiner", "classical", "--refiner-anchor", "0.5"],
     "--refiner-anchor is a learned refiner's composition; --refiner classical has none, got 0.5"),
    (["compare", "--synthetic", "1000000", "--depth", "d.npy"], "--depth is for a photo; --synthetic 1000000 brings its own"),
])
def test_options_that_contradict_each_other_are_refused(photo, tmp_path, capsys, argv, message):
    """Options that cannot both hold (the last of two values winning silently, an option the rest makes
    meaningless) are one line before anything is written, not quietly dropped (the audit of 2026-12-05)."""
    argv = [str(photo) if a == "PHOTO" else a for a in argv]
    code, _, err = cli_run([*argv, "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.strip() == f"worldgen: error: {message}", err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, message", [
    (["fly", "PHOTO", "--refiner-seed", str(2**64)], f"--refiner-seed must be between 0 and 2^63 - 1, got {2**64}"),
    (["fly", "PHOTO", "--refiner-seed", "-1"], "--refiner-seed must be between 0 and 2^63 - 1, got -1"),
    (["compare", "--synthetic", str(2**63)], f"--synthetic must be between 0 and 2^63 - 1, got {2**63}"),
    (["compare", "--synthetic", "-5"], "--synthetic must be between 0 and 2^63 - 1, got -5"),
    (["synth", "--seed", str(2**64 + 1), "--sequences", "1"],
     f"--seed must be between 0 and 2^63 - 1, got {2**64 + 1}"),
    (["synth", "--seed", str(2**63 - 1), "--sequences", "2"],
     f"--seed must be between 0 and 2^63 - 2 (2 seeds from it), got {2**63 - 1}"),
    (["train", "--seed", str(2**64)], f"--seed must be between 0 and 2^63 - 1, got {2**64}"),
    (["train", "--seed", "-1"], "--seed must be between 0 and 2^63 - 1, got -1"),
    (["train", "--data.seed-start", str(2**70)], f"--data.seed-start must be between 0 and 2^63 - 1, got {2**70}"),
    (["train-depth", "--seed", "-2"], "--seed must be between 0 and 2^63 - 1, got -2"),
])
def test_seeds_out_of_range_are_refused_naming_the_option(photo, tmp_path, capsys, argv, message):
    """Every seed option takes 0 .. 2^63 - 1 (SEED_MAX), checked with the other options (one line naming it, nothing
    written): beyond, torch's generators fail mid-run (2^64: "Overflow when unpacking long long", which named no
    option), a negative seed was quietly folded onto another, and synth made worlds whose terrain repeats a smaller
    seed's (its grids draw from seed % 2^63). The largest seed is taken, and works where seeds go."""
    import numpy as np
    import torch

    from worldgen.core.config import SEED_MAX

    argv = [str(photo) if a == "PHOTO" else a for a in argv]
    code, _, err = cli_run([*argv, "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.strip() == f"worldgen: error: {message}", err
    assert not (tmp_path / "o").exists()
    check(PipelineConfig(refiner_seed=SEED_MAX))
    check(SynthConfig(seed=SEED_MAX - 3, sequences=4))
    check(CompareConfig(synthetic=SEED_MAX))
    torch.Generator().manual_seed(SEED_MAX)
    np.random.default_rng(SEED_MAX)


@pytest.mark.parametrize("argv, message", [
    (["fly", "IMAGE", "--bogus", "1"], "Unrecognized options: --bogus, 1 (worldgen fly --help lists the options)"),
    (["fly", "IMAGE", "--frames", "many"], "Error parsing --frames: invalid literal for int() with base 10: 'many' "
                                           "(worldgen fly --help lists the options)"),
    (["flyy"], "Unrecognized options: flyy; Available subcommands: "),
])
def test_parse_errors_are_one_line_too(photo, tmp_path, capsys, argv, message):
    """tyro's own errors (a box of several lines) come out as the same one line as every other bad input."""
    argv = [str(photo) if a == "IMAGE" else a for a in argv]
    code, out, err = cli_run([*argv, "--out", str(tmp_path / "o")] if argv[0] == "fly" else argv, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith(f"worldgen: error: {message}")
    assert not out and not (tmp_path / "o").exists()


def test_bench_with_no_sections_is_refused(tmp_path, capsys):
    code, _, err = cli_run(["bench", "--sections", "--out", str(tmp_path / "b.json")], capsys)
    assert code == 2 and err.strip() == ("worldgen: error: --sections names nothing to run "
                                         "(choose from speed, renderer, refiner, quality)")
    assert not (tmp_path / "b.json").exists()


def test_presets_apply_to_every_command_that_flies():
    assert set(presets()) >= {"default", "cpu-fast", "gpu-quality"}
    for cls in (FlyConfig, CompareConfig, LiveConfig):
        assert set(presets_for(cls)) == {"default", "cpu-fast", "gpu-quality"}
        start = starting_config(cls, "gpu-quality", None)
        assert start.pipeline == presets()["gpu-quality"].config
        assert dataclasses.replace(start, pipeline=PipelineConfig()) == starting_config(cls, None, None)
    assert presets()["default"].config == PipelineConfig()
    for cls in (BenchConfig, SynthConfig, ViewConfig):
        assert presets_for(cls) == {}
        with pytest.raises(UserInputError, match="does not apply here"):
            apply_preset(cls, "cpu-fast", starting_config(cls, None, None))
    with pytest.raises(UserInputError, match="unknown preset 'fastest'"):
        starting_config(FlyConfig, "fastest", None)
    with pytest.raises(UserInputError, match="not both"):
        starting_config(FlyConfig, "cpu-fast", "config.json")


def test_preset_listing_and_bad_config_files(tmp_path, capsys):
    code, out, _ = cli_run(["fly", "--preset", "?"], capsys)
    assert code == 0 and "cpu-fast" in out and "gpu-quality" in out
    bad = tmp_path / "config.json"
    for text, message in [("{", "invalid JSON"), ('{"imagee": "x.png"}', "unknown option 'imagee'"),
                          ('{"image": "x.png", "pipeline": {"speed": "fast"}}', "pipeline.speed: expected a number"),
                          ('{"image": "x.png", "mode": "both"}', "mode: must be one of"),
                          ("{}", "lacks 'image', which has no default")]:  # (was a TypeError traceback)
        bad.write_text(text)
        code, _, err = cli_run(["fly", "--config", str(bad)], capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (text, err)
    code, _, err = cli_run(["fly", "--config", str(tmp_path / "missing.json")], capsys)
    assert code == 2 and err.strip() == f"worldgen: error: no such config file: {tmp_path / 'missing.json'}"


def test_an_os_error_is_one_line_with_its_file(photo, tmp_path, capsys):
    """What the machine refuses (here a folder name longer than the file system allows) is one line naming the file,
    not a traceback: found by the output check before any work since 2026-12-05 (tenth session: the check probes the
    folder's nearest existing parent and asks the file system about the name), so exit 2; a full disk mid-flight is
    exit 1 (tests/test_runs.py)."""
    long = tmp_path / ("x" * 300)
    code, _, err = cli_run(["fly", str(photo), "--out", str(long), "--size", "32x24", "--frames", "2"], capsys)
    assert code == 2, err
    assert err.strip() == f"worldgen: error: output directory {long} is not writable: File name too long", err
    assert [p.name for p in tmp_path.iterdir()] == ["photo.png"]  # nothing written


@pytest.mark.parametrize("cfg", [
    FlyConfig(image="a.png"), CompareConfig(synthetic=3), LiveConfig(image="a.png"), BenchConfig(seeds=2),
    SynthConfig(size="32x16"), ViewConfig(world="run"),
])
def test_every_command_config_survives_json(cfg):
    back = from_dict(type(cfg), json.loads(json.dumps(to_dict(cfg))))
    assert back == cfg
    check(back)


def test_a_command_that_fails_to_import_is_reported(monkeypatch, capsys):
    targets = {**cli.command_targets(), "broken": "worldgen.no_such_module:COMMAND"}
    monkeypatch.setattr(cli, "command_targets", lambda: targets)
    code, _, err = cli_run(["broken"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "worldgen: error: command 'broken' is unavailable: importing worldgen.no_such_module:COMMAND failed "
        "(ModuleNotFoundError: No module named 'worldgen.no_such_module')"]
    code, out, err = cli_run(["--help"], capsys)
    assert code == 0 and "fly" in out  # the others still work
    assert "worldgen: note: command 'broken' is unavailable" in err


def test_another_commands_config_is_named_as_such(photo, tmp_path, capsys):
    """`fly --config` given a config.json that `worldgen compare` wrote says whose config it is (it said "unknown
    option 'credit'"); a config no command can read keeps its own one line."""
    (tmp_path / "compare.json").write_text(json.dumps(to_dict(CompareConfig(synthetic=3))))
    code, _, err = cli_run(["fly", str(photo), "--config", str(tmp_path / "compare.json")], capsys)
    assert code == 2 and err.strip() == (f"worldgen: error: {tmp_path / 'compare.json'} is a `worldgen compare` "
                                         "config, not one `worldgen fly` can replay"), err
    (tmp_path / "odd.json").write_text(json.dumps({"no_such_option": 1}))
    code, _, err = cli_run(["fly", str(photo), "--config", str(tmp_path / "odd.json")], capsys)
    assert code == 2 and err.strip() == "worldgen: error: odd.json: unknown option 'no_such_option'", err
