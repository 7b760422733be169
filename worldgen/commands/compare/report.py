"""report.html of a comparison: one offline page (no scripts) filled into the template report.html."""

from __future__ import annotations

import html
import json
import math
from importlib.resources import files
from pathlib import Path
from string import Template

from worldgen.core.io import atomic_write_text
from worldgen.core.metrics import PSNR_CAP_DB
from worldgen.pipeline.scoring import HEADLINE, MODES, format_value

_COST_ROWS = (("frames_per_second", "frames per second"), ("setup_ms", "setup (world of frame 0), ms"),
              ("gaussians_final", "Gaussians in the world at the end"),
              ("gaussians_in_view_mean", "Gaussians in view (mean)"),
              ("world_mb_final", "Gaussian tensors at the end, MB"),
              ("rss_mb_max", "process RSS (max so far), MB"), ("cuda_mb_max", "CUDA memory (peak), MB"))

_CAPTIONS = {
    "loop_closure": "Input | persistent on return | per-frame on return.",
    "revisit": "Per pose, by the frame of its first visit; the far end of the path is revisited soonest.",
    "flicker": "Flicker PSNR over time (higher is steadier).",
    "tsed_curve": "TSED at other thresholds (the per-pair figures are in metrics.json, so any threshold can be "
                  "applied afterwards).",
    "tsed_sed": "Per consecutive pair: the median symmetric epipolar distance of its SIFT matches under the known "
                "cameras; the dashed red line is T_error.",
    "tsed_matches": "Per consecutive pair: SIFT matches (ratio test 0.75, mutual nearest neighbours); pairs under "
                    "the dashed red line have too few to count as consistent.",
    "fidelity_psnr": "PSNR against ground truth per frame.",
    "fidelity_ssim": "SSIM against ground truth per frame.",
    "fidelity_lpips": "LPIPS against ground truth per frame.",
    "cost_ms": "Wall-clock time per step.",
    "gaussians": "Gaussians in the world and in view (centre inside the image, in front of the camera).",
    "memory": "Memory over time.",
}


def _tsed_truth(gt: dict | None) -> str:
    """A sentence with the ground-truth frames' own TSED (procedural inputs), or nothing."""
    if gt is None:
        return ""
    return (f" The ground-truth frames along the same poses score TSED {format_value(gt['tsed'], 'share')} (median "
            f"distance {format_value(gt['tsed_median_sed'], 'px')}, {format_value(gt['tsed_matches_mean'])} matches "
            "per pair): the most this world's texture allows.")


def _versus_section(metrics: dict) -> str:
    """The section comparing the main refiner with --versus-refiner's (metrics["versus"]), or nothing:
    one table (rows: the headline metrics with a value in any column; columns: each refiner's persistent
    and per-frame flights) and the TSED verdicts."""
    versus = metrics["versus"]
    if not versus:
        return ""
    e = html.escape
    a, b = metrics["refiner"], versus["refiner"]
    columns = [metrics[m]["summary"] for m in MODES] + [versus[m] for m in MODES]
    head = "".join(f"<th>{e(name)} {m}</th>" for name in (a, b) for m in MODES)
    rows = []
    for key, label, unit, _ in HEADLINE:
        values = [c[key] for c in columns]
        if all(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
            continue  # e.g. fidelity without ground truth, loop closure on a path that does not return
        rows.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in [label] + [format_value(v, unit) for v in values])
                    + "</tr>")
    verdicts = "".join(f"<li>{e(v)}</li>" for v in versus["verdicts"])
    return (f"<h2>Refiners: {e(a)} vs {e(b)}</h2><p>Both modes flown again with the refiner <code>{e(b)}</code> "
            f"along exactly the same camera poses as <code>{e(a)}</code>'s persistent flight (which steers a "
            "reactive path); the plots and frames on this page are <code>"
            f"{e(a)}</code>'s.</p><table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table><ul>{verdicts}</ul>")


def write_report(out: Path, title: str, cfg_dict: dict, run_info: dict, metrics: dict, plots: dict[str, str],
                 credit: str | None) -> None:
    """out/report.html: headline table, verdicts, one section per metric with its plot, cost table, credits.

    Args:
        cfg_dict: the resolved config tree (its "path", "retrace" and pipeline "speed" are quoted).
        run_info: {"source": Source.info, "machine": machine_description(), "frames", "size": [W, H]}.
        metrics: `worldgen.pipeline.scoring.evaluate`'s metrics, plus "versus" (`command.fly_versus`'s, or None).
        plots: picture name -> path relative to `out` (`plots.make_plots`).
        credit: a credit line for the input, or None.
    """
    e = html.escape
    fmt = format_value
    p, q = metrics["persistent"]["summary"], metrics["per-frame"]["summary"]
    has_truth = "fidelity_psnr" in plots
    rows = []
    for key, label, unit, _ in HEADLINE:
        if key.startswith("fidelity") and not has_truth:
            continue
        w = metrics["wins"][key]
        cls = {"persistent": "win", "per-frame": "lose"}.get(w, "")
        cells = "".join(f"<td>{e(c)}</td>" for c in (label, fmt(p[key], unit), fmt(q[key], unit), w))
        rows.append(f"<tr class='{cls}'>{cells}</tr>")
    stages = sorted(set(p["ms_by_stage"]) | set(q["ms_by_stage"]))
    cost = [(s, fmt(p["ms_by_stage"].get(s, 0.0), "ms"), fmt(q["ms_by_stage"].get(s, 0.0), "ms")) for s in stages]
    cost.append(("total per frame", fmt(p["ms_per_frame"], "ms"), fmt(q["ms_per_frame"], "ms")))
    cost += [(lab, fmt(p[k]), fmt(q[k])) for k, lab in _COST_ROWS]
    cost_rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in cost)

    def fig(name: str, caption: str) -> str:
        if name not in plots:
            return ""
        return f"<figure><img src='{e(plots[name])}' alt='{e(name)}'><figcaption>{caption}</figcaption></figure>"

    closes = not math.isnan(metrics["persistent"]["loop_closure"]["psnr"])
    src, machine = run_info["source"], run_info["machine"]
    if src.get("kind") == "synthetic":
        about = (f"procedural world, seed {src['seed']} ({e(src['split'])} split), climate {e(src['climate'])}; "
                 "exact depth; ground truth rendered at every pose")
    else:
        about = (f"photo <code>{e(src['file'])}</code>, horizontal FOV {src['fov_x_deg']:.1f}°, "
                 f"depth: {e(src['depth'])}")
    path = f"<code>{e(cfg_dict['path'])}</code>"
    if cfg_dict.get("retrace"):
        path += " (retraced: out and back through the same poses)"
    strip_caption = "Frames along the flight: persistent, per-frame" + (", ground truth." if has_truth else ".")
    fields = {
        "title": e(title),
        "renderer": e(metrics["renderer"]),
        "refiner": e(metrics["refiner"]),
        "about": about,
        "path": path,
        "frames": run_info["frames"],
        "size": f"{run_info['size'][0]}×{run_info['size'][1]}",
        "speed": cfg_dict["pipeline"]["speed"],
        "credit": f"<p class='small'>Input credit: {e(credit)}</p>" if credit else "",
        "headline_rows": "".join(rows),
        "versus": _versus_section(metrics),
        "verdicts": "".join(f"<li class='{'neg' if 'NOT' in v else ''}'>{e(v)}</li>" for v in metrics["verdicts"]),
        "psnr_cap": f"{PSNR_CAP_DB:.0f}",
        "lpips": e(metrics["lpips"]),
        "fig_frames": fig("frames", strip_caption),
        "not_on_path": "" if closes else " (not on this path)",
        "n_pairs": len(metrics["pairs"]),
        "floor_text": " — the dashed line is the same metric on the ground-truth frames" if has_truth else "",
        "tsed_threshold": f"{metrics['tsed']['threshold_px']:.2f}",
        "tsed_min_matches": metrics["tsed"]["min_matches"],
        "tsed_max_features": metrics["tsed"]["max_features"],
        "tsed_truth": _tsed_truth(metrics.get("ground_truth_tsed")),
        "fidelity_head": ("<h2>Fidelity</h2><p>Every frame against the procedural renderer's ground truth at the "
                          f"same pose (PSNR, SSIM; {e(metrics['lpips'])}).</p>") if has_truth else "",
        "machine": e(machine.get("gpu") or machine["cpu"]),
        "threads": machine["torch_threads"],
        "date": e(machine["date"]),
        "cost_rows": cost_rows,
        "config": e(json.dumps(cfg_dict)),
        **{f"fig_{name}": fig(name, caption) for name, caption in _CAPTIONS.items()},
    }
    template = Template(files("worldgen.commands.compare").joinpath("report.html").read_text(encoding="utf-8"))
    atomic_write_text(out / "report.html", template.substitute(fields))
