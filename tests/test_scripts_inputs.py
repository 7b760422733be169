"""The measuring scripts on bad options: one line and a non-zero exit before any flight (their results come after
minutes of work: an --out that cannot be written, a mark past the last frame or a size that cannot be parsed used to
be a traceback after the flights, losing them; the audit of 2026-12-05)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"scripts/{script}", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def one_line(r: subprocess.CompletedProcess, says: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and says in lines[0] and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("args, says", [
    (("--marks", "0", "9", "--frames", "5"), "--marks must lie in 0..4"),
    (("--size", "abc"), "--size must look like WxH"),
    (("--device", "tpu"), "is not a torch device"),
    (("--out", "{tmp}"), "is a directory"),
    (("--out", "{tmp}/r.txt"), "must end in .json"),
    (("--sheet", "{tmp}/s.xyz"), "must end in .jpg or .jpeg or .png"),
    (("--frames-dir", "{tmp}/file"), "is a file, not a folder"),
])
def test_real_flights_refuses_before_it_flies(tmp_path, args, says):
    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 48), (90, 120, 160)).save(photo)
    (tmp_path / "file").write_text("x")
    r = run("real_flights.py", photo, "--refiners", "classical", "--frames", "3", "--device", "cpu",
            *[a.format(tmp=tmp_path) for a in args])
    one_line(r, says)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "p.png"]  # no results, no sheet, no frames


@pytest.mark.parametrize("args, says", [
    (("--size", "0x0"), "out of range"),
    (("--modes", "bogus"), "'bogus' is not one of persistent, per-frame"),
    (("--paths", "loop"), "'loop' is not one of forward, autopilot"),
    (("--device", "tpu"), "is not a torch device"),
    (("--out", "{tmp}"), "is a directory"),
])
def test_eval_refiner_refuses_before_it_flies(tmp_path, args, says):
    r = run("eval_refiner.py", "--refiners", "classical", "--seeds", "1000000", "--frames", "3",
            *[a.format(tmp=tmp_path) for a in args])
    one_line(r, says)


def test_recompose_refuses_an_unwritable_or_folder_out_and_names_its_own_arguments(tmp_path):
    w = ROOT / "refine" / "weights" / "refiner.pt"
    one_line(run("recompose.py", w, "anchor=0.3", "--out", tmp_path), "is a directory")
    one_line(run("recompose.py", w, "anchor=0.3", "--out", tmp_path / "x.txt"), "must end in .pt")
    r = run("recompose.py", w, "anchor=2", "--out", tmp_path / "x.pt")
    one_line(r, "override +anchor must be between 0 and 1, got 'anchor=2'")
    assert "--refiner" not in r.stderr and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("script, args, says", [
    ("make_example.py", ("--seed", "-1"), "make_example: --seed must be between 0 and 2^63 - 1, got -1"),
    ("make_example.py", ("--seed", str(2**63)), f"make_example: --seed must be between 0 and 2^63 - 1, got {2**63}"),
    ("resume_check.py", ("--seed", "-5", "--device", "cpu"), "resume_check: --seed must be between 0 and 2^63 - 1"),
    ("tsed_check.py", ("--synthetic", str(2**64)),
     f"tsed_check: --synthetic must be between 0 and 2^63 - 1, got {2**64}"),
    ("tsed_check.py", ("--photo", "{tmp}/none.png"), "tsed_check: no such image file"),
    ("anchor_key_probe.py", ("--seeds", "1000000", str(2**63)),
     f"anchor_key_probe.py: --seeds must be between 0 and 2^63 - 1, got {2**63}"),
    ("bench_walks.py", ("--seeds", "-3"), "bench_walks: --seeds must be between 0 and 2^63 - 1, got -3"),
    ("refiner_regions.py", ("--seeds", "11", "-2", "--device", "cpu"),
     "refiner_regions: --seeds must be between 0 and 2^63 - 1, got -2"),
    ("probe_renderers.py", ("--seed", "-1"), "probe_renderers: --seed must be between 0 and 2^63 - 1, got -1"),
    ("make_example.py", ("--size", "384"), "make_example: --size must look like WxH (e.g. 256x256), got '384'"),
    ("make_example.py", ("--frame", "-1"), "make_example: --frame must be at least 0, got -1"),
    ("bench_walks.py", ("--threads", "0"), "bench_walks: --threads must be at least 1, got 0"),
    ("bench_synth.py", ("--batch", "4", "0"), "bench_synth: --batch must be at least 1, got 0"),
    ("probe_renderers.py", ("--clips", "0"), "probe_renderers: --clips must be at least 1, got 0"),
    ("refiner_regions.py", ("--frames", "1", "--device", "cpu"), "refiner_regions: --frames must be at least 2, got 1"),
    ("refiner_regions.py", ("--json", "{tmp}", "--device", "cpu"), "refiner_regions: --json"),
])
def test_seeds_out_of_range_are_refused_before_any_work(tmp_path, script, args, says):
    """The scripts' seeds take the commands' range, 0 .. 2^63 - 1 (core.config SEED_MAX, `check_seed_option`, seed by
    seed for a list of them; they took any int): one line and a non-zero exit before anything is rendered or flown
    (make_example and probe_renderers write nothing). So are make_example's --size (core.images parse_size: it was a
    traceback) and --frame, and the benchmarks' and probes' counts and sizes (`check_at_least_option`, value by value for
    a list); refiner_regions' --json is checked before its flights."""
    out = tmp_path / "ex"
    extra = ("--out", out) if script in ("make_example.py", "probe_renderers.py") else ()
    one_line(run(script, *[a.format(tmp=tmp_path) for a in args], *extra), says)
    assert not out.exists()


def test_a_synthetic_source_refuses_a_seed_out_of_range_as_the_commands_do():
    """pipeline.sources.synthetic_source, for scripts that pass a seed of their own: the commands' line for
    --synthetic (core.config's one home for the range, not a copy of its text)."""
    import torch

    from worldgen.core.io import UserInputError
    from worldgen.pipeline.sources import synthetic_source

    for seed in (-1, 2**63):
        with pytest.raises(UserInputError, match=rf"^--synthetic must be between 0 and 2\^63 - 1, got {seed}$"):
            synthetic_source(seed, 32, 32, torch.device("cpu"))


@pytest.mark.parametrize("args, says", [
    (("--worlds", "-3"), "--worlds must be at least 1"),
    (("--frames-per-world", "0"), "--frames-per-world must be at least 1"),
    (("--threads", "0"), "--threads must be at least 1"),
    (("--size", "abc"), "--size must look like WxH"),
    (("--weights", "{tmp}/nope.pt"), "no such file"),
    (("--weights", "refine/weights/refiner.pt"), "is not a worldgen depth weights file"),
    (("--data", "{tmp}/file"), "is a file, not a folder"),
    (("--json", "{tmp}"), "is a directory"),
])
def test_eval_depth_refuses_bad_options_in_one_line(tmp_path, args, says):
    (tmp_path / "file").write_text("x")
    r = run("eval_depth.py", "--worlds", "1", "--no-render", "--data", tmp_path / "cache",
            *[a.format(tmp=tmp_path) for a in args])
    one_line(r, says)
    assert not (tmp_path / "cache").exists()


def test_eval_depth_names_a_damaged_cached_world(tmp_path):
    """A cached eval world cut short (a killed render, a full disk) is one line naming it and what to do, not a
    traceback from numpy."""
    cached = tmp_path / "cache" / "256x256-fast" / "world_1000000.npz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"PK\x03\x04 cut short")
    one_line(run("eval_depth.py", "--worlds", "1", "--no-render", "--data", tmp_path / "cache"),
             f"cached eval world {cached} is damaged")


@pytest.mark.parametrize("args, says", [
    (("--share", "0.95"), "--share must be within 0.1..0.8"),
    (("{tmp}/none.png",), "no such photo"),
    (("--out", "{tmp}"), "is a directory"),
    (("--out", "{tmp}/r.txt"), "must end in .json"),
    (("--size", "abc"), "WxH"),
    (("--baseline-from", "no-such-rev"), "no worldgen/pipeline/sky.py at 'no-such-rev'"),
])
def test_sky_holdout_refuses_bad_options_in_one_line(tmp_path, args, says):
    photo = tmp_path / "p.png"
    Image.new("RGB", (64, 48), (90, 120, 160)).save(photo)
    r = run("sky_holdout.py", *([] if "{tmp}/none.png" in args else [photo]), *[a.format(tmp=tmp_path) for a in args])
    one_line(r, says)
