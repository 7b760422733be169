"""`worldgen bench`: one table of speed and quality figures for this machine (and the same as JSON).

    worldgen bench [--device auto|cpu|cuda] [--quick] [--out FILE.json]

Rows (each says its setting):
  speed     frames per second of both generators at 256x256 and 512x512 (the bundled example, its true
            depth and intrinsics, a forward flight; setup excluded), and their milliseconds per stage;
  renderer  milliseconds per render against the number of Gaussians (random small Gaussians, as in
            scripts/bench_renderer.py; up to 16 million with gsplat on a GPU, 100 thousand on a CPU);
  refiner   milliseconds per refinement of a rendered view at 256x256 and 512x512;
  quality   the `worldgen compare` figures (loop closure, revisits, flicker, 3D consistency (TSED and
            the median epipolar distance of SIFT matches), fidelity against ground truth, LPIPS where its
            weights are on disk) averaged over held-out procedural seeds
            (the eval split of refine/synth/splits.py), on a retraced loop.
Both generators share renderer and refiner, so those rows have one value. `--quick` (a few minutes on
2 CPU cores) uses fewer frames, Gaussian counts, seeds and a smaller size for the quality rows.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch

from worldgen.commands import Command
from worldgen.core.config import bad, check
from worldgen.core.device import machine_description, resolve_device
from worldgen.core.io import UserInputError, atomic_write_text, check_writable_dir, json_ready
from worldgen.pipeline.config import PhotoConfig
from worldgen.pipeline.generator import make_generator
from worldgen.pipeline.paths import make_path
from worldgen.pipeline.recording import record_flight
from worldgen.pipeline.refiners import make_refiner
from worldgen.pipeline.scoring import MODES, evaluate
from worldgen.pipeline.sources import Source, photo_source, scene_scale, synthetic_source

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SHARED = "(shared)"
ALL_SECTIONS = ("speed", "renderer", "refiner", "quality")


@dataclass(frozen=True)
class BenchConfig:
    """Benchmark both generators, the renderer and the refiner, and the comparison figures, on this machine."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: cuda when available, else cpu."""
    quick: bool = False
    """A few minutes on 2 CPU cores: fewer frames, Gaussian counts and seeds, small quality runs."""
    out: str | None = None
    """Also write the results to this JSON file."""
    seeds: int | None = None
    """Held-out procedural seeds for the quality rows (default: 3, or 2 with --quick)."""
    sections: tuple[Literal["speed", "renderer", "refiner", "quality"], ...] = ALL_SECTIONS
    """Which parts to run."""

    def validate(self) -> None:
        if self.seeds is not None and not 1 <= self.seeds <= 1000:
            raise bad("seeds", "must be between 1 and 1000", self.seeds)
        if not self.sections:
            raise bad("sections", "names nothing to run (choose from " + ", ".join(ALL_SECTIONS) + ")")


@dataclass(frozen=True)
class Plan:
    """What a run measures (derived from the config and the device)."""

    sizes: tuple[int, ...]
    warmup_steps: int
    timed_steps: int
    gaussian_counts: tuple[int, ...]
    renderer_sizes: tuple[int, ...]
    renderer_repeats: int
    refiner_repeats: int
    quality_size: int
    quality_frames: int
    seeds: int


def make_plan(cfg: BenchConfig, cuda: bool) -> Plan:
    if cfg.quick:
        return Plan(sizes=(256, 512), warmup_steps=1 if cuda else 0, timed_steps=2,
                    gaussian_counts=(10_000, 100_000, 1_000_000) if cuda else (10_000, 50_000),
                    renderer_sizes=(256, 512) if cuda else (256,), renderer_repeats=5 if cuda else 2,
                    refiner_repeats=3, quality_size=64, quality_frames=9, seeds=cfg.seeds or 2)
    return Plan(sizes=(256, 512), warmup_steps=1, timed_steps=30 if cuda else 8,
                gaussian_counts=(10_000, 100_000, 1_000_000, 4_000_000, 16_000_000) if cuda
                else (10_000, 50_000, 100_000),
                renderer_sizes=(256, 512), renderer_repeats=20 if cuda else 3, refiner_repeats=10 if cuda else 3,
                quality_size=256 if cuda else 128, quality_frames=65 if cuda else 33, seeds=cfg.seeds or 3)


# ============================================================================ sections
def example_source(size: int, device: torch.device) -> Source:
    """The bundled example photo with its true depth and intrinsics, at size x size."""
    photo = PhotoConfig(depth=str(EXAMPLES / "example_depth.npy"), camera=str(EXAMPLES / "example.json"))
    return photo_source(str(EXAMPLES / "example.png"), photo, f"{size}x{size}", device)


def bench_speed(plan: Plan, device: torch.device, log) -> list[dict]:
    """Frames per second (and ms per stage) of both generators per size: `warmup_steps` untimed steps,
    then `timed_steps` timed ones along a forward flight. Returns [{size, mode, frames_per_second, ms_by_stage}]."""
    from renderers import get_renderer

    out = []
    for size in plan.sizes:
        source = example_source(size, device)
        T = 1 + plan.warmup_steps + plan.timed_steps
        path = make_path("forward", source.frame0.camera, scene_scale(source.frame0), T)
        for mode in MODES:
            rec = record_flight(mode, source, path, T, renderer=get_renderer(device.type),
                                refiner=make_refiner("classical", device), tsed=False)
            timed = slice(1 + plan.warmup_steps, T)
            ms = rec.ms_total[timed]
            row = {"size": size, "mode": mode, "steps": len(ms), "ms_per_frame": statistics.mean(ms),
                   "frames_per_second": 1000.0 / statistics.mean(ms), "setup_ms": rec.setup_ms,
                   "ms_by_stage": {k: statistics.mean(v[timed]) for k, v in sorted(rec.ms.items())},
                   "gaussians": rec.gaussians[-1]}
            out.append(row)
            log(f"  speed {size}x{size} {mode}: {row['frames_per_second']:.3f} frames/s")
    return out


def bench_renderer(plan: Plan, device: torch.device, log) -> list[dict]:
    """Milliseconds per render against N Gaussians. Returns [{backend, gaussians, size, ms}]."""
    from renderers import GsplatRenderer, TorchRenderer
    from worldgen.core.camera import Camera

    import renderers.bench as br

    cuda = device.type == "cuda"
    backends = {"gsplat": GsplatRenderer(), "torch": TorchRenderer()} if cuda else {"torch": TorchRenderer()}
    out = []
    for n in plan.gaussian_counts:
        scene = br.random_scene(n, device.type)
        for size in plan.renderer_sizes:
            camera = Camera.from_fov(br.FOV_X_DEG, size, size).to(device)
            for name, r in backends.items():
                if name == "torch" and n > (4_000_000 if cuda else 1_000_000):
                    continue  # the pure-PyTorch renderer needs too much memory there
                ms = br.time_render(r, scene, camera, plan.renderer_repeats, warmup=3 if cuda else 1)
                out.append({"backend": name, "gaussians": n, "size": size, "ms": ms})
                log(f"  renderer {name} N={n:,} {size}x{size}: {ms:.1f} ms")
        del scene
    return out


def bench_refiner(plan: Plan, device: torch.device, log) -> list[dict]:
    """Milliseconds per refinement of a view rendered a step forward from the example. Returns [{refiner, size, ms}]."""
    from renderers import get_renderer

    out = []
    refiner = make_refiner("classical", device)
    for size in plan.sizes:
        source = example_source(size, device)
        gen = make_generator("persistent", source.frame0, get_renderer(device.type), refiner)
        pose = make_path("forward", source.frame0.camera, scene_scale(source.frame0), 2, speed=0.05).pose(1)
        view = gen.render_view(source.frame0.camera.with_pose(pose))
        times = []
        with torch.no_grad():
            for _ in range(plan.refiner_repeats + 1):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                refiner(view)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(1000 * (time.perf_counter() - t0))
        ms = statistics.median(times[1:])
        out.append({"refiner": refiner.name, "size": size, "ms": ms})
        log(f"  refiner {refiner.name} {size}x{size}: {ms:.1f} ms")
    return out


QUALITY_KEYS = ("loop_closure_psnr", "loop_closure_ssim", "revisit_psnr", "revisit_ssim", "flicker_psnr", "tsed",
                "tsed_median_sed", "tsed_matches_mean", "fidelity_psnr", "fidelity_ssim", "fidelity_lpips")


def bench_quality(plan: Plan, device: torch.device, log) -> dict:
    """The comparison figures on held-out seeds.

    Returns {seeds, size, frames, path, lpips, per_seed: [...], mean: {mode: {key: value}}}.
    """
    from refine.synth.splits import seeds as split_seeds

    per_seed, lpips_note = [], ""
    for seed in split_seeds("eval", plan.seeds):
        t0 = time.perf_counter()
        source = synthetic_source(seed, plan.quality_size, plan.quality_size, device)
        metrics, _, _ = evaluate(source, path="loop", frames=plan.quality_frames, retrace=True)
        lpips_note = metrics["lpips"]
        row = {"seed": seed, "climate": source.info["climate"],
               **{m: {k: metrics[m]["summary"][k] for k in QUALITY_KEYS} for m in MODES}}
        per_seed.append(row)
        log(f"  quality seed {seed} ({row['climate']}): loop closure {row['persistent']['loop_closure_psnr']:.1f} vs "
            f"{row['per-frame']['loop_closure_psnr']:.1f} dB ({time.perf_counter() - t0:.0f} s)")

    def mean(m: str, k: str) -> float:
        cap = 60.0 if k.endswith("psnr") else math.inf  # PSNR capped as in the comparison (identical: inf)
        v = [min(r[m][k], cap) for r in per_seed if r[m][k] is not None and not math.isnan(r[m][k])]
        return sum(v) / len(v) if v else math.nan

    return {"seeds": [r["seed"] for r in per_seed], "size": plan.quality_size, "frames": plan.quality_frames,
            "path": "loop (retraced)", "lpips": lpips_note, "per_seed": per_seed,
            "mean": {m: {k: mean(m, k) for k in QUALITY_KEYS} for m in MODES}}


# ============================================================================ table
def table_rows(results: dict) -> list[dict]:
    """Flatten the results into rows {section, metric, setting, persistent, per_frame, unit}
    (per_frame is "(shared)" where one figure serves both generators)."""
    rows = []

    def add(section, metric, setting, p, q, unit):
        rows.append({"section": section, "metric": metric, "setting": setting, "persistent": p, "per_frame": q,
                     "unit": unit})

    speed = results.get("speed", [])
    for size in sorted({r["size"] for r in speed}):
        by = {r["mode"]: r for r in speed if r["size"] == size}
        p, q = by["persistent"], by["per-frame"]
        add("speed", "frames per second", f"{size}x{size}, {p['steps']} steps", p["frames_per_second"],
            q["frames_per_second"], "frames/s")
        for st in sorted(set(p["ms_by_stage"]) | set(q["ms_by_stage"])):
            add("speed", f"  {st}", f"{size}x{size}", p["ms_by_stage"].get(st, 0.0), q["ms_by_stage"].get(st, 0.0),
                "ms/frame")
    for r in results.get("renderer", []):
        setting = f"{r['gaussians']:,} Gaussians, {r['size']}x{r['size']}"
        add("renderer", f"render ({r['backend']})", setting, r["ms"], SHARED, "ms")
    for r in results.get("refiner", []):
        add("refiner", f"refine ({r['refiner']})", f"{r['size']}x{r['size']}", r["ms"], SHARED, "ms")
    qd = results.get("quality")
    if qd:
        setting = f"{len(qd['seeds'])} eval seeds, {qd['size']}x{qd['size']}, {qd['frames']} frames"
        labels = {"loop_closure_psnr": ("loop closure PSNR", "dB"), "loop_closure_ssim": ("loop closure SSIM", ""),
                  "revisit_psnr": ("revisit PSNR", "dB"), "revisit_ssim": ("revisit SSIM", ""),
                  "flicker_psnr": ("flicker PSNR", "dB"), "tsed": ("TSED (share of consistent pairs)", ""),
                  "tsed_median_sed": ("median epipolar distance (SIFT)", "px"),
                  "tsed_matches_mean": ("SIFT matches per pair (TSED needs 10)", ""), "fidelity_psnr": ("fidelity PSNR vs truth", "dB"),
                  "fidelity_ssim": ("fidelity SSIM vs truth", ""), "fidelity_lpips": ("fidelity LPIPS vs truth", "")}
        for k in QUALITY_KEYS:
            p, q = qd["mean"]["persistent"][k], qd["mean"]["per-frame"][k]
            if k == "fidelity_lpips" and (p is None or math.isnan(p)):
                add("quality", labels[k][0], qd["lpips"].split(" (")[0], None, None, "")
                continue
            add("quality", labels[k][0], setting, p, q, labels[k][1])
    return rows


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, str):
        return v
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3f}"


def format_table(results: dict) -> str:
    """The results as one plain-text table (the rows of `table_rows`)."""
    head = ("section", "metric", "setting", "persistent", "per-frame", "unit")
    cells = [head]
    for r in table_rows(results):
        cells.append((r["section"], r["metric"], r["setting"], _cell(r["persistent"]), _cell(r["per_frame"]),
                      r["unit"]))
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    right = {3, 4}
    lines = []
    for j, c in enumerate(cells):
        line = "  ".join(c[i].rjust(widths[i]) if i in right else c[i].ljust(widths[i]) for i in range(len(head)))
        lines.append(line.rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(cfg: BenchConfig, log=print) -> dict:
    """Run the benchmark; returns the JSON document (also written to cfg.out if given)."""
    check(cfg)
    if cfg.out:  # checked before the benchmark's minutes, not after them
        if Path(cfg.out).is_dir():
            raise UserInputError(f"--out {cfg.out} is a directory; name a FILE.json")
        check_writable_dir(Path(cfg.out).parent)
    device = resolve_device(cfg.device)
    plan = make_plan(cfg, device.type == "cuda")
    machine = machine_description(device)
    log(f"worldgen bench on {machine.get('gpu') or machine['cpu']} ({machine['cpu_cores']} cores, "
        f"{machine['torch_threads']} torch threads), torch {machine['torch']}, {machine['date']}"
        + (", quick" if cfg.quick else ""))
    t0 = time.perf_counter()
    results: dict = {"machine": machine, "device": str(device), "quick": cfg.quick, "plan": asdict(plan)}
    steps = {"speed": bench_speed, "renderer": bench_renderer, "refiner": bench_refiner, "quality": bench_quality}
    for name in cfg.sections:
        ts = time.perf_counter()
        results[name] = steps[name](plan, device, log)
        results.setdefault("seconds", {})[name] = round(time.perf_counter() - ts, 1)
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    results["table"] = table_rows(results)
    doc = json_ready(results)
    if cfg.out:
        atomic_write_text(cfg.out, json.dumps(doc, indent=1))
    return doc | {"_text": format_table(results)}


def main(cfg: BenchConfig) -> None:
    doc = run(cfg, log=lambda s: print(s, file=sys.stderr, flush=True))
    print(doc["_text"])
    print("Stages overlap: 'fit' runs inside 'lift'. (shared): one figure for both generators, which share it.")
    print(f"({doc['total_seconds']:.0f} s{'; written to ' + cfg.out if cfg.out else ''})")


COMMAND = Command(BenchConfig, main)
