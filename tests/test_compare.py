"""`worldgen compare` end to end on tiny inputs: files written, metrics present, persistent closes the loop."""

import html
import json
import math
import re
from dataclasses import replace as dataclasses_replace

import numpy as np
import pytest
import torch
from PIL import Image

from worldgen.cli import entrypoint
from worldgen.commands.compare import CompareConfig, run
from worldgen.commands.compare.plots import Series, line_plot
from worldgen.pipeline.config import PhotoConfig, PipelineConfig
from worldgen.pipeline.scoring import HEADLINE, evaluate, format_value, winner
from worldgen.pipeline.sources import photo_source
from worldgen.core.io import UserInputError


TINY = PipelineConfig(size="48x32")


def test_compare_photo_end_to_end(small_photo, tmp_path):
    """A retraced photo comparison writes its files and metrics, the persistent world closes the loop and the
    per-frame baseline does not, and the report's tables show each generator's own figures and the winner."""
    out = tmp_path / "cmp"
    doc = run(CompareConfig(image=str(small_photo), pipeline=TINY, frames=7, out=str(out), progress=False))
    # files
    for name in ("report.html", "metrics.json", "video.mp4", "config.json"):
        assert (out / name).stat().st_size > 300, name
    page = (out / "report.html").read_text()
    images = re.findall(r"<img src='([^']+)'", page)
    assert {"plots/loop_closure.png", "plots/revisit.png", "plots/flicker.png", "plots/cost_ms.png",
            "plots/gaussians.png", "plots/memory.png", "plots/frames.png", "plots/tsed_sed.png",
            "plots/tsed_matches.png", "plots/tsed_curve.png"} <= set(images)
    assert "3D consistency (TSED)" in page
    for src in images:
        with Image.open(out / src) as im:
            assert im.width > 100
    assert "<script" not in page and "http" not in page  # readable offline, nothing fetched
    assert not [p for p in out.rglob(".*")]  # no temp files left
    # metrics
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["pairs"] == [[2, 4], [1, 5], [0, 6]]  # retraced loop of 7 frames
    p, q = saved["persistent"]["summary"], saved["per-frame"]["summary"]
    for key in ("loop_closure_psnr", "loop_closure_ssim", "revisit_psnr", "revisit_ssim", "flicker_psnr",
                "ms_per_frame", "gaussians_final", "gaussians_in_view_mean", "world_mb_final"):
        assert p[key] is not None and q[key] is not None, key
    assert p["fidelity_psnr"] is None  # no ground truth for a photo
    assert {"render", "refine", "lift"} <= set(p["ms_by_stage"])
    assert len(saved["persistent"]["series"]["flicker_psnr"]) == 7
    # TSED: one (median SED, matches) per consecutive pair, none for frame 0; T_error scaled to 48 px
    for m in ("persistent", "per-frame"):
        ser = saved[m]["series"]
        assert len(ser["tsed_sed"]) == len(ser["tsed_matches"]) == 7 and ser["tsed_matches"][0] is None
        assert all(n >= 0 for n in ser["tsed_matches"][1:])
        assert 0.0 <= saved[m]["summary"]["tsed"] <= 1.0
    assert saved["tsed"]["threshold_px"] == pytest.approx(2.0 * 48 / 256)
    assert saved["ground_truth_tsed"] is None  # a photo has no ground truth
    assert len(saved["persistent"]["revisits"]) == 3
    # the point of a persistent world: it comes back to the photo, the memoryless baseline does not
    assert p["loop_closure_psnr"] > q["loop_closure_psnr"] + 5
    assert p["revisit_psnr"] > q["revisit_psnr"] + 5
    assert saved["wins"]["loop_closure_psnr"] == "persistent"
    assert any(v.startswith("Persistent wins loop closure PSNR") for v in doc["verdicts"])
    assert len(saved["poses"]) == 7
    assert saved["versus"] is None and "Refiners:" not in page  # no --versus-refiner: no second refiner
    # the report's tables show these numbers, each under its own generator, and who won (no fidelity: no truth)
    dp, dq = doc["persistent"]["summary"], doc["per-frame"]["summary"]
    headline = page.split("<h2>Headline</h2>")[1].split("</table>")[0]
    rows = re.findall(r"<tr class='(\w*)'>" + r"<td>([^<]*)</td>" * 4 + "</tr>", headline)
    shown = [(key, label, unit) for key, label, unit, _ in HEADLINE if not key.startswith("fidelity")]
    assert [r[1] for r in rows] == [html.escape(label) for _, label, _ in shown]
    for (key, _, unit), (cls, _, a, b, won) in zip(shown, rows):
        assert (a, b) == (html.escape(format_value(dp[key], unit)), html.escape(format_value(dq[key], unit))), key
        assert won == doc["wins"][key] and cls == {"persistent": "win", "per-frame": "lose"}.get(won, ""), key
    cost = page.split("<th>stage</th><th>persistent</th><th>per-frame</th></tr>")[1].split("</table>")[0]
    assert (f"<tr><td>total per frame</td><td>{html.escape(format_value(dp['ms_per_frame'], 'ms'))}</td>"
            f"<td>{html.escape(format_value(dq['ms_per_frame'], 'ms'))}</td></tr>") in cost


def test_compare_reactive_path_replays_the_same_poses(small_photo, tmp_path):
    doc = run(CompareConfig(image=str(small_photo), pipeline=TINY, frames=5, path="autopilot", out=str(tmp_path / "a"),
                            video=False, progress=False))
    assert doc["pairs"] == [[1, 3], [0, 4]]
    assert doc["persistent"]["loop_closure"]["psnr"] is not None
    assert not (tmp_path / "a" / "video.mp4").exists()
    # The autopilot steers the persistent flight; the per-frame baseline flies exactly those poses.
    source = photo_source(str(small_photo), PhotoConfig(), "48x32", torch.device("cpu"))
    _, records, _ = evaluate(source, TINY, path="autopilot", frames=5, retrace=False)
    flown = records["persistent"].poses
    assert not torch.equal(flown[1], flown[4])  # a real flight, not a camera standing still
    assert torch.equal(records["per-frame"].poses, flown)
    with pytest.raises(ValueError, match="poses must be"):
        evaluate(source, TINY, frames=4, poses=flown)  # given poses must be one per frame


def tiny_refiner_weights(path) -> str:
    """A tiny learned refiner's weights file (random, not zero: it differs from the classical refiner)."""
    from refine.learned import LearnedRefinerConfig, save_weights
    from refine.net import RefinerNet, RefinerNetConfig

    net = RefinerNet(RefinerNetConfig(widths=(8, 16, 32), bottleneck_blocks=1, global_code=8))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    save_weights(path, net, LearnedRefinerConfig())
    return str(path)


def test_compare_versus_refiner_flies_the_same_poses(small_photo, tmp_path, capsys, monkeypatch):
    from worldgen.commands.compare import command

    calls = []  # (poses given, records) of each evaluate() the command makes

    def recording_evaluate(*args, **kwargs):
        result = evaluate(*args, **kwargs)
        calls.append((kwargs.get("poses"), result[1]))
        return result

    monkeypatch.setattr(command, "evaluate", recording_evaluate)
    weights = tiny_refiner_weights(tmp_path / "tiny.pt")
    out = tmp_path / "v"
    entrypoint(["compare", str(small_photo), "--size", "48x32", "--frames", "5", "--path", "autopilot",
                "--refiner", "classical", "--versus-refiner", weights, "--out", str(out), "--no-video", "--no-progress"])
    printed = capsys.readouterr().out
    # The main refiner's persistent flight steers the autopilot; the second refiner's flights replay its poses.
    (given0, main), (given1, versus) = calls
    flown = main["persistent"].poses
    assert given0 is None and torch.equal(given1, flown)
    assert not torch.equal(flown[0], flown[2])  # a real flight (retraced: out to pose 2 and back)
    for m in ("persistent", "per-frame"):
        assert torch.equal(versus[m].poses, flown) and len(versus[m].frames) == 5
    assert any(not np.array_equal(a, b) for a, b in zip(main["persistent"].frames, versus["persistent"].frames))
    saved = json.loads((out / "metrics.json").read_text())
    v = saved["versus"]
    assert v["refiner"] == "learned:tiny.pt" and saved["refiner"] == "classical"
    for m in ("persistent", "per-frame"):
        assert 0.0 <= v[m]["tsed"] <= 1.0 and v[m]["tsed_threshold_px"] == saved[m]["summary"]["tsed_threshold_px"]
        assert {"tsed_median_sed", "tsed_matches_mean", "loop_closure_psnr", "ms_per_frame"} <= set(v[m])
    assert [line.split(":")[0] for line in v["verdicts"]] == ["Persistent flights", "Per-frame flights"]
    assert all("TSED" in line and "classical" in line and "learned:tiny.pt" in line for line in v["verdicts"])
    assert all("  " + line in printed.splitlines() for line in saved["verdicts"] + v["verdicts"])
    # report: one table, the four flights as columns, no fidelity rows (no ground truth)
    page = (out / "report.html").read_text()
    section = page.split("<h2>Refiners: classical vs learned:tiny.pt</h2>")[1].split("<h2>")[0]
    assert section.count("<table>") == 1
    assert ("<th>metric</th><th>classical persistent</th><th>classical per-frame</th>"
            "<th>learned:tiny.pt persistent</th><th>learned:tiny.pt per-frame</th>") in section
    assert "3D consistency: TSED" in section and "fidelity" not in section
    assert all(v_line in section for v_line in v["verdicts"])
    assert not (out / "video.mp4").exists()


def test_versus_refiner_must_be_another_refiner(small_photo, tmp_path, capsys):
    same = "--versus-refiner must name another refiner than --refiner, got 'learned'"  # (learned: the default)
    unknown = ("--versus-refiner must be one of classical, learned, learned-fidelity or a weights FILE.pt (a learned one "
               "+ KEY=VALUE overrides its composition), got 'magic'")
    for args, message in [(["--versus-refiner", "learned"], same), (["--versus-refiner", "magic"], unknown)]:
        with pytest.raises(SystemExit) as e:
            entrypoint(["compare", str(small_photo), *args, "--out", str(tmp_path / "x"), "--no-progress"])
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and err == [f"worldgen: error: {message}"]
        assert not (tmp_path / "x").exists()  # refused before anything was written


def test_compare_forward_path_says_what_it_cannot_measure(small_photo, tmp_path):
    doc = run(CompareConfig(image=str(small_photo), pipeline=TINY, frames=4, path="forward", retrace=False,
                            out=str(tmp_path / "f"), video=False, progress=False))
    assert doc["pairs"] == [] and doc["persistent"]["summary"]["loop_closure_psnr"] is None
    assert doc["wins"]["loop_closure_psnr"] == "n/a"
    assert any("not measured" in v for v in doc["verdicts"])


@pytest.mark.slow
def test_compare_synthetic_has_fidelity(tmp_path):
    doc = run(CompareConfig(synthetic=1_000_000, pipeline=TINY, frames=5, out=str(tmp_path / "s"), video=False,
                            progress=False))
    p = doc["persistent"]["summary"]
    assert doc["run"]["source"]["split"] == "eval"
    assert p["fidelity_psnr"] is not None and p["fidelity_ssim"] is not None
    assert p["fidelity_psnr"] > 15  # a procedural world with exact depth flies close to its ground truth
    assert len(doc["ground_truth_flicker_psnr"]) == 5
    assert doc["lpips"].startswith("LPIPS:")
    assert (tmp_path / "s" / "plots" / "fidelity_psnr.png").exists()
    assert len(doc["ground_truth_tsed"]["series"]["tsed_sed"]) == 5


def test_bad_input_is_one_line(small_photo, tmp_path, capsys):
    with pytest.raises(UserInputError, match="exactly one"):
        run(CompareConfig(out=str(tmp_path / "x"), progress=False))
    with pytest.raises(UserInputError, match="exactly one"):
        run(CompareConfig(image=str(small_photo), synthetic=1_000_000, out=str(tmp_path / "x"), progress=False))
    with pytest.raises(UserInputError, match="frames"):
        run(CompareConfig(image=str(small_photo), frames=2, out=str(tmp_path / "x"), progress=False))
    with pytest.raises(SystemExit) as e:
        entrypoint(["compare", str(tmp_path / "missing.png"), "--out", str(tmp_path / "y"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and err[-1].startswith("worldgen: error: no such image file")


def test_compare_keeps_to_its_own_folder(small_photo, tmp_path):
    """One writer, no mixing: a folder holding another command's files is refused untouched; a compare folder is
    replaced whole (no plot of the earlier report left); a failed start leaves no folder."""
    from worldgen.core.runfolder import RunLock

    cfg = CompareConfig(image=str(small_photo), pipeline=TINY, frames=4, path="forward", retrace=False,
                        out=str(tmp_path / "c"), video=False, progress=False)
    run(cfg)
    stale = tmp_path / "c" / "plots" / "stale.png"
    stale.write_bytes(b"an earlier report's plot")
    run(cfg)
    assert not stale.exists() and (tmp_path / "c" / "report.html").is_file()
    fly_run = tmp_path / "fly"
    fly_run.mkdir()
    (fly_run / "world.ply").write_bytes(b"ply")
    with pytest.raises(UserInputError, match="world.ply"):
        run(dataclasses_replace(cfg, out=str(fly_run)))
    assert sorted(p.name for p in fly_run.iterdir()) == ["world.ply"]
    with RunLock(tmp_path / "c"), pytest.raises(UserInputError, match="in use"):
        run(cfg)
    with pytest.raises(UserInputError):
        run(dataclasses_replace(cfg, out=str(tmp_path / "new" / "d"), photo=PhotoConfig(depth=str(tmp_path / "no.npy"))))
    assert not (tmp_path / "new").exists()


def test_winner_directions_and_ties():
    """Each metric's better direction, its tie margin, the PSNR cap and missing values; and the verdict sentences
    say who won: a metric per-frame wins is never reported as a persistent win."""
    assert winner("psnr", 30.0, 20.0) == "persistent"
    assert winner("psnr", 20.0, 20.05) == "tie"
    assert winner("psnr", math.inf, 70.0) == "tie"  # both beyond the cap
    assert winner("mae", 0.01, 0.02) == "persistent"
    assert winner("ms", 200.0, 100.0) == "per-frame"
    assert winner("ssim", math.nan, 0.9) == "n/a"
    assert winner("share", 0.9, 0.8) == "persistent" and winner("share", 0.9, 0.905) == "tie"
    assert winner("px", 0.3, 1.2) == "persistent" and winner("px", 0.07, 0.06) == "tie"  # SIFT noise
    from worldgen.pipeline.scoring import verdicts

    p = {key: math.nan for key, *_ in HEADLINE} | {"loop_closure_psnr": 30.0, "ms_per_frame": 200.0, "tsed": 0.5}
    q = dict(p, loop_closure_psnr=20.0, ms_per_frame=100.0, tsed=0.505)
    wins, lines = verdicts({"persistent": p, "per-frame": q}, "LPIPS: not needed", has_truth=False)
    assert (wins["loop_closure_psnr"], wins["ms_per_frame"], wins["tsed"]) == ("persistent", "per-frame", "tie")
    assert [ln.split(":")[0] for ln in lines if "time per frame" in ln] == [
        "Persistent does NOT win time per frame"]
    assert any(ln.startswith("Persistent wins loop closure PSNR") for ln in lines)
    assert any(ln.startswith("3D consistency: TSED") and "a tie" in ln for ln in lines)


def test_versus_verdicts_name_the_refiner_that_wins_tsed():
    from worldgen.pipeline.scoring import versus_verdicts

    a = {"persistent": {"tsed": 0.9}, "per-frame": {"tsed": math.nan}}
    b = {"persistent": {"tsed": 0.95}, "per-frame": {"tsed": 0.5}}
    assert versus_verdicts(("learned", "classical"), a, b) == [
        "Persistent flights: classical wins TSED (learned 90 %, classical 95 %).",
        "Per-frame flights: no TSED winner, not measured on every flight (learned n/a, classical 50 %)."]
    a = {"persistent": {"tsed": 0.955}, "per-frame": {"tsed": 0.75}}
    assert versus_verdicts(("learned", "classical"), a, b) == [
        "Persistent flights: the refiners tie on TSED (learned 96 %, classical 95 %).",
        "Per-frame flights: learned wins TSED (learned 75 %, classical 50 %)."]


def test_line_plot_handles_gaps_and_infinities(tmp_path):
    path = tmp_path / "p.png"
    xs = list(range(6))
    line_plot(path, "t", "x", "y", [Series("a", xs, [1.0, math.nan, 3.0, math.inf, 2.0, 1.0], (0, 0, 255)),
                                    Series("b", xs, [0.5] * 6, (255, 0, 0), dashed=True)])
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    assert (arr == [0, 0, 255]).all(-1).any() and (arr == [255, 0, 0]).all(-1).any()
    line_plot(path, "empty", "x", "y", [Series("a", [], [], (0, 0, 255))])  # no data: still a picture, saying so
    with Image.open(path) as im:
        empty = np.asarray(im.convert("RGB")).astype(int)
    assert empty.shape[1] == 640 and (empty.sum(-1) < 300).any()  # title and "no data" written in dark text
    assert not (empty == [0, 0, 255]).all(-1)[:, 200:].any()  # and no line drawn


def test_bench_table_from_results():
    """`worldgen bench` prints one table: generator rows side by side, shared rows once."""
    from worldgen.commands.bench import format_table, table_rows

    stages = {"render": 10.0, "refine": 5.0}
    results = {
        "speed": [{"size": 256, "mode": "persistent", "steps": 2, "frames_per_second": 4.0, "ms_by_stage": stages},
                  {"size": 256, "mode": "per-frame", "steps": 2, "frames_per_second": 2.0, "ms_by_stage": stages}],
        "renderer": [{"backend": "torch", "gaussians": 10_000, "size": 256, "ms": 12.5}],
        "refiner": [{"refiner": "classical", "size": 256, "ms": 3.0}],
        "quality": {"seeds": [1_000_000], "size": 64, "frames": 9, "lpips": "LPIPS: weights unavailable (x)",
                    "mean": {m: {k: 30.0 for k in ("loop_closure_psnr", "loop_closure_ssim", "revisit_psnr",
                                                   "revisit_ssim", "flicker_psnr", "fidelity_psnr", "fidelity_ssim")}
                             | {"fidelity_lpips": math.nan, "tsed": 0.75, "tsed_median_sed": 0.4, "tsed_matches_mean": 20.0}
                             for m in ("persistent", "per-frame")}},
    }
    rows = table_rows(results)
    fps = next(r for r in rows if r["metric"] == "frames per second")
    assert (fps["persistent"], fps["per_frame"]) == (4.0, 2.0)
    assert next(r for r in rows if r["section"] == "renderer")["per_frame"] == "(shared)"
    assert any(r["setting"] == "LPIPS: weights unavailable" for r in rows)
    text = format_table(results)
    assert text.splitlines()[0].split() == ["section", "metric", "setting", "persistent", "per-frame", "unit"]
    assert "10,000 Gaussians, 256x256" in text
    tsed = next(r for r in rows if r["metric"].startswith("TSED"))
    assert (tsed["persistent"], tsed["per_frame"]) == (0.75, 0.75)


def test_tsed_summary_of_a_record():
    from worldgen.pipeline.recording import FlightRecord
    from worldgen.pipeline.scoring import tsed_summary

    nan = math.nan
    rec = FlightRecord(mode="persistent", poses=torch.zeros(5, 4, 4), frames=[np.zeros((128, 64, 3), np.uint8)] * 5,
                       setup_ms=0.0, ms={}, ms_total=[], gaussians=[], gaussians_in_view=[], world_mb=[], rss_mb=[],
                       cuda_mb=[], flicker_psnr=[], flicker_mae=[], flicker_coverage=[], fidelity_psnr=[],
                       fidelity_ssim=[], fidelity_lpips=[], tsed_sed=[nan, 0.3, 0.9, 1.5, nan],
                       tsed_matches=[nan, 30, 12, 40, 0])
    s = tsed_summary(rec)
    assert s["tsed_threshold_px"] == 1.0  # 2 px at 256, the longer side is 128
    assert s["tsed"] == pytest.approx(2 / 4)  # 1.5 px is over; no matches is inconsistent
    assert s["tsed_median_sed"] == pytest.approx(0.9) and s["tsed_matches_mean"] == pytest.approx(82 / 4)
    rec.tsed_sed, rec.tsed_matches = [nan] * 5, [nan] * 5  # not measured (record_flight(tsed=False))
    assert math.isnan(tsed_summary(rec)["tsed"])


def _record(poses, frames, **series):
    """A made-up FlightRecord of T = len(frames) steps: nan or zero wherever `series` gives nothing."""
    from worldgen.pipeline.recording import FlightRecord

    T, nan = len(frames), math.nan
    base = dict(setup_ms=0.0, ms={}, ms_total=[0.0] * T, gaussians=[0] * T, gaussians_in_view=[0] * T,
                world_mb=[0.0] * T, rss_mb=[0.0] * T, cuda_mb=[0.0] * T, flicker_psnr=[nan] * T, flicker_mae=[nan] * T,
                flicker_coverage=[nan] * T, fidelity_psnr=[nan] * T, fidelity_ssim=[nan] * T,
                fidelity_lpips=[nan] * T, tsed_sed=[nan] * T, tsed_matches=[nan] * T)
    return FlightRecord(mode="persistent", poses=poses, frames=frames, **{**base, **series})


def test_score_of_a_made_up_flight_with_known_figures():
    """score() on a five-frame record with known figures: frame 0's setup (its time, its Gaussians in view) counts in
    no per-step figure; times per frame and per stage are means over the four steps; flicker PSNR is a mean of
    values capped at PSNR_CAP_DB (an identical pair's +inf among them); a revisit 10 levels brighter than its first
    visit has MAE 10/255; the loop closes on the last frame only when the last pose is frame 0's."""
    from worldgen.core.camera import look_at
    from worldgen.core.metrics import PSNR_CAP_DB
    from worldgen.pipeline.scoring import score

    home = torch.eye(4)
    away = [look_at(torch.tensor([float(i), 0.0, 0.0]), torch.tensor([float(i), 0.0, 5.0])) for i in (1, 2, 3)]
    grey = [np.full((16, 24, 3), v, np.uint8) for v in (100, 60, 70, 80, 110)]
    rec = _record(torch.stack([home, *away, home]), grey, setup_ms=3000.0,
                  ms={"render": [500.0, 10, 20, 30, 40], "refine": [900.0, 1, 2, 3, 4]},
                  ms_total=[2000.0, 11, 22, 33, 44], gaussians_in_view=[10_000, 10, 20, 30, 40],
                  flicker_psnr=[math.nan, 30.0, 90.0, math.inf, 40.0])
    s = score(rec, [(1, 3), (0, 4)])
    sm = s["summary"]
    assert sm["ms_by_stage"] == {"refine": pytest.approx(2.5), "render": pytest.approx(25.0)}
    assert sm["ms_per_frame"] == pytest.approx(27.5) and sm["frames_per_second"] == pytest.approx(1000 / 27.5)
    assert sm["setup_ms"] == 3000.0 and sm["gaussians_in_view_mean"] == pytest.approx(25.0)
    assert sm["flicker_psnr"] == pytest.approx((30 + 2 * PSNR_CAP_DB + 40) / 4)
    assert [r["mae"] for r in s["revisits"]] == [pytest.approx(20 / 255), pytest.approx(10 / 255)]
    assert sm["revisit_mae"] == pytest.approx(15 / 255)
    assert s["loop_closure"]["t"] == 4 and sm["loop_closure_psnr"] == pytest.approx(20 * math.log10(255 / 10), abs=1e-3)
    # the last-but-one pose back home, the last one not: the loop does not close
    rec.poses = torch.stack([home, away[0], away[1], home, away[2]])
    assert math.isnan(score(rec, [])["summary"]["loop_closure_psnr"])


def test_bench_out_is_checked_before_the_benchmark_runs(tmp_path, monkeypatch):
    """A directory or an unwritable place as `bench --out` is one line at once (it was a traceback, or a line, only
    after the whole benchmark had run)."""
    from worldgen.commands import bench

    monkeypatch.setattr(bench, "make_plan", lambda *a, **k: pytest.fail("the benchmark started"))
    (tmp_path / "d").mkdir()
    with pytest.raises(UserInputError, match="is a directory"):
        bench.run(bench.BenchConfig(device="cpu", out=str(tmp_path / "d")))
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserInputError, match="is a file, not a directory"):
        bench.run(bench.BenchConfig(device="cpu", out=str(tmp_path / "f" / "b.json")))
