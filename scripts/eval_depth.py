"""Evaluate the photo's depth backends on held-out procedural frames (eval seeds only).

    .venv/bin/python scripts/eval_depth.py                      # render what is missing, then evaluate
    .venv/bin/python scripts/eval_depth.py --render-only        # only build the cached eval set
    .venv/bin/python scripts/eval_depth.py --json out.json --update-weights-json
    .venv/bin/python scripts/eval_depth.py --walks --spacing 12     # forest-floor walks among standing trees
    .venv/bin/python scripts/eval_depth.py --gorges --spacing 12    # low along gorge floors (refine/synth/gorge.py)
    .venv/bin/python scripts/eval_depth.py --winter --spacing 12    # walks on a snowy forest floor

The eval set: `--worlds` worlds of the eval split (seeds 1,000,000 + k; never used for training,
refine/synth/splits.py), each with one flight (`make_flight`, the flight seed = the world seed) of
which `--frames-per-world` frames spaced `--spacing` frames apart are rendered at `--size` on the CPU,
by default with `--quality fast` (no soft shadows, no water reflections: about 2.5x cheaper on the
CPU; the true depth and sky are the same as at full quality, the training frames had both). Each
world's frames are cached in DATA/WxH-QUALITY/world_SEED.npz (rgb uint8, z-depth float32 with +inf
sky, intrinsics), so the set is rendered once and an interrupted run resumes. With `--walks` each world
is its standing-tree twin and the path a walk on its forest floor (refine/synth/trees.py, `make_walk`):
trunks upright at one depth and crowns overhead, what forest photos show (cached in WxH-QUALITY-walks2); with
`--gorges` its gorge twin flown low along the floor (dark walls over a bright floor; cached in WxH-QUALITY-gorges);
with `--winter` the walks on a snowy floor (trees.py `winter_world`; cached in WxH-QUALITY-winter).

Backends are run exactly as a flight runs them (`DepthEstimator(rgb, camera) -> (z-depth, sky)`),
with the frame's true intrinsics. Metrics, per image, then averaged over images:
- disparity scale-and-shift alignment (MiDaS): s, t minimising sum (s * 1/d_pred + t - 1/d_gt)^2
  over the true non-sky pixels (pixels a backend calls sky have disparity 0); the aligned disparity is
  clamped to [1 / max true depth, 1 / min true depth] of the image, then AbsRel = mean |d - d*| / d*
  and delta1 = share of max(d / d*, d* / d) < 1.25;
- log-depth scale-only alignment: log d_pred + mean(log d* - log d_pred) over the true non-sky pixels
  the backend gave a finite depth, clamped to the image's true depth range (sky-called pixels take
  its far end), then the same AbsRel and delta1;
- range: the slope of log predicted depth against log true depth over the true non-sky pixels the
  backend gave a finite depth (1: the right depth range; below 1: a compressed one), median over images;
- sky: IoU of the predicted and the true sky mask (images where both are empty are left out of
  the mean; the pooled IoU over all pixels is given too).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refine.synth import kind_flight, make_world, render_views  # noqa: E402
from refine.synth.splits import seeds, split_of  # noqa: E402
from refine.train.data import settings_for  # noqa: E402
from worldgen.core.images import to_uint8  # noqa: E402


# ----------------------------------------------------------------------------- the eval set
def render_world(seed: int, n_frames: int, spacing: int, W: int, H: int, quality: str, kind: str = "drone",
                 device: str = "cpu") -> dict:
    """Frames 0, spacing, 2 spacing, ... of world `seed`'s flight of `kind` (refine.synth.FLIGHT_KINDS: drone, its
    forest-floor walk among standing trees, or low along its gorge twin's floor): rgb uint8 [n, H, W, 3], depth
    float32 [n, H, W] (+inf sky), K float32 [3, 3], frame indices, climate. device: where the world is made and
    rendered (the CPU by default; "cuda" renders a set ~100x faster, the frames equal to float rounding)."""
    if split_of(seed) != "eval":
        raise ValueError(f"seed {seed} is not an eval seed")
    idx = [i * spacing for i in range(n_frames)]
    world, flight = kind_flight(make_world(seed, device=device), kind, idx[-1] + 1, W, H, seed)
    r = render_views(world, flight.c2w[idx], flight.K, W, H, settings_for(quality))
    return {"rgb": to_uint8(r.rgb.cpu()), "depth": r.depth.cpu().numpy(),
            "K": flight.K.cpu().numpy(), "frames": np.array(idx), "climate": np.array(world.climate)}


def build_eval_set(data: Path, worlds: int, n_frames: int, spacing: int, W: int, H: int, quality: str,
                   render: bool = True, first: int = 0, kind: str = "drone", device: str = "cpu") -> list[Path]:
    """Render (or find cached) the eval set; returns one .npz per world (with render=False: the cached ones)."""
    # (walks2: the forest floor with paths and bare patches, 2026-12-02 eighth session; "-walks" holds the
    # earlier floors, on which the seventh and eighth sessions' walks figures were measured)
    suffix = {"drone": "", "walk": "-walks2", "winter": "-winter", "gorge": "-gorges"}[kind]
    folder = data / f"{W}x{H}-{quality}{suffix}"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    t0 = time.perf_counter()
    for k, seed in enumerate(seeds("eval", worlds)):
        if k < first:
            continue
        f = folder / f"world_{seed}.npz"
        if f.is_file() or render:
            files.append(f)
        if f.is_file() or not render:
            continue
        t = time.perf_counter()
        blob = render_world(seed, n_frames, spacing, W, H, quality, kind=kind, device=device)
        tmp = f.with_suffix(f".{os.getpid()}.tmp.npz")  # several processes may render one set
        np.savez_compressed(tmp, **blob)
        tmp.rename(f)
        print(f"[{k + 1}/{worlds}] world {seed} ({blob['climate']}) {time.perf_counter() - t:.1f} s, "
              f"{time.perf_counter() - t0:.0f} s in all", flush=True)
    return files



# ----------------------------------------------------------------------------- metrics
def depth_errors(pred: torch.Tensor, gt: torch.Tensor) -> dict:
    """AbsRel and delta1 of depth pred against gt, both [N] finite and positive."""
    ratio = torch.maximum(pred / gt, gt / pred)
    return {"abs_rel": float(((pred - gt).abs() / gt).mean()), "delta1": float((ratio < 1.25).float().mean())}


def aligned_disparity(depth: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Predicted depth [H, W] (+inf sky) at the valid pixels [N], after least-squares scale and shift of
    its disparity onto the true disparity there (MiDaS), clamped to the true depth range of the image."""
    x = (1.0 / depth[valid]).double()  # 0 where the backend says sky
    y = (1.0 / gt[valid]).double()
    A = torch.stack([x, torch.ones_like(x)], 1)
    s, t = torch.linalg.lstsq(A, y[:, None]).solution[:, 0]
    lo, hi = float(y.min()), float(y.max())
    return (1.0 / (s * x + t).clamp(lo, hi)).float()


def aligned_log_scale(depth: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Predicted depth at the valid pixels [N] after least-squares scale alignment in log-depth (over the
    pixels the backend gave a finite depth), clamped to the true depth range (sky-called pixels: far end)."""
    d, g = depth[valid].double(), gt[valid].double()
    finite = torch.isfinite(d)
    shift = (g[finite].log() - d[finite].log()).mean() if finite.any() else torch.zeros((), dtype=torch.float64)
    out = torch.where(finite, d * shift.exp(), torch.full_like(d, math.inf))
    return out.clamp(float(g.min()), float(g.max())).float()


def evaluate_image(depth: torch.Tensor, sky: torch.Tensor, gt: torch.Tensor) -> dict:
    """Metrics of one backend's (z-depth [H, W] with +inf sky, sky [H, W]) against the true z-depth [H, W]."""
    gt_sky = ~torch.isfinite(gt)
    valid = ~gt_sky & (gt > 0)
    out = {}
    g = gt[valid]
    for name, pred in (("ssi", aligned_disparity(depth, gt, valid)), ("log", aligned_log_scale(depth, gt, valid))):
        for k, v in depth_errors(pred, g).items():
            out[f"{name}_{k}"] = v
    d = depth[valid]
    finite = torch.isfinite(d)
    if int(finite.sum()) > 1:  # range: slope of log predicted depth against log true depth (1 = right range)
        x, y = g[finite].double().log(), d[finite].double().log()
        out["log_slope"] = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum().clamp_min(1e-12))
    else:
        out["log_slope"] = None
    inter, union = int((sky & gt_sky).sum()), int((sky | gt_sky).sum())
    out["sky_inter"], out["sky_union"] = inter, union
    out["sky_iou"] = inter / union if union else None
    return out


def summarise(rows: list[dict]) -> dict:
    """Means over images (sky IoU: over images with sky in the prediction or the truth; plus pooled)."""
    keys = ("ssi_abs_rel", "ssi_delta1", "log_abs_rel", "log_delta1")
    out = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys}
    out.update({f"{k}_median": round(float(np.median([r[k] for r in rows])), 4) for k in keys})
    slopes = [r["log_slope"] for r in rows if r["log_slope"] is not None]
    out["log_slope_median"] = round(float(np.median(slopes)), 4) if slopes else None
    ious = [r["sky_iou"] for r in rows if r["sky_iou"] is not None]
    out["sky_iou"] = round(float(np.mean(ious)), 4) if ious else None
    out["sky_iou_images"] = len(ious)
    union = sum(r["sky_union"] for r in rows)
    out["sky_iou_pooled"] = round(sum(r["sky_inter"] for r in rows) / union, 4) if union else None
    out["images"] = len(rows)
    return out


BACKENDS = ("learned", "learned + detect_sky", "prior")
"""What is evaluated: the network as `--depth-model learned` runs it; the same with `detect_sky` OR-ed
into its sky mask (a candidate rule, not what the pipeline does); `--depth-model prior`."""


EVAL_VERSION = 2
"""Bumped whenever the per-image metrics change (names the result cache)."""


def weights_tag(weights: str | None) -> str:
    """Short content hash of the weights file (names the per-world result cache)."""
    import hashlib

    from refine.depthnet import DEFAULT_DEPTH_WEIGHTS

    return hashlib.sha1(Path(weights or DEFAULT_DEPTH_WEIGHTS).read_bytes()).hexdigest()[:12]


def evaluate_world(f: Path, learned, prior) -> dict:
    """Metrics of every backend on one cached world's frames: {"climate", "rows": {backend: [...]}, "seconds"}."""
    from worldgen.core.camera import Camera
    from worldgen.pipeline.depth import detect_sky

    from worldgen.core.io import UserInputError

    try:
        blob = dict(np.load(f, allow_pickle=False))
        K = torch.from_numpy(blob["K"])
        blob["rgb"].shape, blob["depth"].shape  # noqa: B018  (all three there)
    except Exception as e:  # noqa: BLE001  (numpy raises many types for a cut-short or foreign file)
        raise UserInputError(f"cached eval world {f} is damaged ({type(e).__name__}); delete it and run again to "
                             "render it anew") from None
    rows: dict[str, list[dict]] = {n: [] for n in BACKENDS}
    seconds = {"learned": 0.0, "prior": 0.0}
    for i in range(blob["rgb"].shape[0]):
        rgb = torch.from_numpy(blob["rgb"][i]).float() / 255
        gt = torch.from_numpy(blob["depth"][i])
        cam = Camera(K=K, c2w=torch.eye(4), width=gt.shape[1], height=gt.shape[0])
        t = time.perf_counter()
        depth, sky = learned(rgb, cam)
        seconds["learned"] += time.perf_counter() - t
        rows["learned"].append(evaluate_image(depth, sky, gt))
        sky2 = sky | detect_sky(rgb)
        rows["learned + detect_sky"].append(evaluate_image(depth.masked_fill(sky2, math.inf), sky2, gt))
        t = time.perf_counter()
        depth, sky = prior(rgb, cam)
        seconds["prior"] += time.perf_counter() - t
        rows["prior"].append(evaluate_image(depth, sky, gt))
    return {"climate": str(blob["climate"]), "rows": rows, "seconds": seconds}


def evaluate(files: list[Path], weights: str | None, sky_grow: float | None = None, flip: bool = False,
             sky_clear: float | None = None) -> dict:
    """Every backend on every cached frame: {"overall": {backend: summary}, "by_climate": {...}, ...}.

    sky_grow: the learned network's sky hysteresis (None: refine.depthnet.SKY_GROW, as a flight); sky_clear, flip:
    the variants of `refine.depthnet.LearnedDepthModel` (None / False: as a flight). Each world's metrics are cached
    beside its frames (eval<version>_<weights hash>_sky<grow>[_clear<logit>][_flip]/world_SEED.json)."""
    from refine.depthnet import SKY_GROW
    from worldgen.pipeline.depth import LandscapePrior, LearnedDepth

    grow = SKY_GROW if sky_grow is None else sky_grow
    learned, prior = LearnedDepth(weights, sky_grow=grow, flip=flip, sky_clear=sky_clear), LandscapePrior()
    clear = "" if sky_clear is None else f"_clear{sky_clear:g}"
    cache = files[0].parent / f"eval{EVAL_VERSION}_{weights_tag(weights)}_sky{grow:g}{clear}{'_flip' if flip else ''}"
    cache.mkdir(exist_ok=True)
    worlds = []
    for k, f in enumerate(files):
        c = cache / f"{f.stem}.json"
        if c.is_file():
            worlds.append(json.loads(c.read_text()))
        else:
            worlds.append(evaluate_world(f, learned, prior))
            c.write_text(json.dumps(worlds[-1]))
        if (k + 1) % 10 == 0:
            print(f"evaluated {k + 1}/{len(files)} worlds", flush=True)
    rows = {n: [r for w in worlds for r in w["rows"][n]] for n in BACKENDS}
    climates = [w["climate"] for w in worlds for _ in w["rows"]["prior"]]
    overall = {n: summarise(r) for n, r in rows.items()}
    by_climate = {c: {n: summarise([r for r, cc in zip(rows[n], climates) if cc == c]) for n in BACKENDS}
                  for c in sorted(set(climates))}
    n = len(climates)
    seconds = {k: round(sum(w["seconds"][k] for w in worlds) / max(n, 1), 3) for k in ("learned", "prior")}
    return {"overall": overall, "by_climate": by_climate, "seconds_per_image": seconds}


def table(result: dict) -> str:
    """Markdown table of the overall summary."""
    lines = ["| backend | AbsRel (disparity s+t) | δ<1.25 (disparity s+t) | AbsRel (log-depth scale) | "
             "δ<1.25 (log-depth scale) | depth-range slope (median) | sky IoU (mean / pooled) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in result["overall"].items():
        iou = "n/a" if r["sky_iou"] is None else f"{r['sky_iou']:.3f} / {r['sky_iou_pooled']:.3f}"
        lines.append(f"| {name} | {r['ssi_abs_rel']:.3f} | {r['ssi_delta1']:.3f} | {r['log_abs_rel']:.3f} | "
                     f"{r['log_delta1']:.3f} | {r['log_slope_median']:.2f} | {iou} |")
    return "\n".join(lines)


def machine() -> str:
    """One line: CPU model, cores, torch version."""
    import platform

    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="runs/depth_eval", help="cache folder of the rendered eval set")
    ap.add_argument("--sky-grow", type=float, default=None,
                    help="the learned network's sky hysteresis (default refine.depthnet.SKY_GROW; 0: logit > 0 alone)")
    ap.add_argument("--worlds", type=int, default=100)
    ap.add_argument("--frames-per-world", type=int, default=5)
    ap.add_argument("--spacing", type=int, default=50, help="frames between the rendered frames of a flight")
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--quality", choices=("fast", "full"), default="fast", help="procedural render quality")
    ap.add_argument("--render-only", action="store_true")
    ap.add_argument("--render-device", default="cpu", help="where missing eval worlds are rendered (cpu or cuda)")
    ap.add_argument("--first", type=int, default=0, help="with --render-only: start at this world (split the work)")
    ap.add_argument("--no-render", action="store_true", help="evaluate the worlds already cached only (a partial look)")
    ap.add_argument("--walks", action="store_true",
                    help="forest-floor walks among standing trees instead of drone flights (its own cache)")
    ap.add_argument("--winter", action="store_true",
                    help="walks on a snowy forest floor (dark trunks on bright snow; its own cache)")
    ap.add_argument("--gorges", action="store_true",
                    help="flights low along gorge floors instead of drone flights (its own cache)")
    ap.add_argument("--weights", default=None,
                    help="depth weights FILE.pt (default: the shipped refine/weights/depth.pt)")
    ap.add_argument("--sky-clear", type=float, default=None, metavar="LOGIT",
                    help="a variant, not what flights do: clear sky by colour joins the learned network's sky where "
                         "its logit is above LOGIT (refine.depthnet.LearnedDepthModel)")
    ap.add_argument("--flip", action="store_true",
                    help="a variant, not what flights do: the network averaged over the image and its mirror image")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1: on a shared 2-core machine, 2 threads ran the renderer 10x slower)")
    ap.add_argument("--json", default=None, help="write the whole result here")
    ap.add_argument("--update-weights-json", action="store_true",
                    help="put the summary under \"evaluation\" in refine/weights/depth.json")
    args = ap.parse_args()
    from worldgen.core.config import check_at_least_option
    from worldgen.core.device import resolve_device
    from worldgen.core.images import parse_size
    from worldgen.core.io import UserInputError, check_output_file

    W, H = parse_size(args.size)
    if args.walks + args.gorges + args.winter > 1:
        ap.error("--walks, --winter and --gorges are three kinds of flight; choose one")
    for field, least in (("worlds", 1), ("frames_per_world", 1), ("spacing", 1), ("threads", 1), ("first", 0)):
        check_at_least_option(args, field, least)
    resolve_device(args.render_device)
    if Path(args.data).exists() and not Path(args.data).is_dir():
        raise UserInputError(f"--data {args.data} is a file, not a folder")
    if args.weights is not None:
        if not Path(args.weights).is_file():
            raise UserInputError(f"--weights {args.weights}: no such file")
        from refine.depthnet import load_depth_weights

        try:
            load_depth_weights(args.weights)  # (before any eval world is rendered)
        except ValueError as e:
            raise UserInputError(str(e)) from None
    if args.json:
        check_output_file(args.json, (".json",), "--json")
    kind = "walk" if args.walks else "winter" if args.winter else "gorge" if args.gorges else "drone"
    torch.set_grad_enabled(False)
    torch.set_num_threads(args.threads)
    files = build_eval_set(Path(args.data), args.worlds, args.frames_per_world, args.spacing, W, H, args.quality,
                           render=not args.no_render, first=args.first if args.render_only else 0, kind=kind,
                           device=args.render_device)
    if args.render_only:
        return
    if not files:
        sys.exit(f"eval_depth: no {kind} eval worlds cached under {args.data}; run without --no-render first")
    result = evaluate(files, args.weights, args.sky_grow, args.flip, args.sky_clear)
    # what was evaluated: with --no-render only the worlds already cached, which may be fewer than --worlds
    done = sorted(int(f.stem.split("_")[-1]) for f in files)
    result["eval_set"] = {"split": "eval", "seeds": [done[0], done[-1]],
                          "worlds": len(files), "frames_per_world": args.frames_per_world, "spacing": args.spacing,
                          "size": f"{W}x{H}", "render_quality": args.quality, "walks": args.walks,
                          "gorges": args.gorges, "winter": args.winter,
                          "images": result["overall"]["prior"]["images"]}
    result["weights"] = args.weights or "refine/weights/depth.pt"
    result["sky_rule"] = {"sky_grow": args.sky_grow, "sky_clear": args.sky_clear, "flip": args.flip}  # None: default
    result["date"] = time.strftime("%Y-%m-%d")
    result["machine"] = machine()
    print(table(result))
    print(json.dumps(result["seconds_per_image"]))
    if args.json:
        from worldgen.core.io import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2))
    if args.update_weights_json:
        from worldgen.core.io import atomic_write_text

        path = Path(__file__).resolve().parents[1] / "refine" / "weights" / "depth.json"
        meta = json.loads(path.read_text())
        key, cmd = {"walk": ("evaluation_walks", "--walks --spacing 12 "),
                    "gorge": ("evaluation_gorges", "--gorges --spacing 12 "),
                    "winter": ("evaluation_winter", "--winter --spacing 12 "), "drone": ("evaluation", "")}[kind]
        if len(files) != ap.get_default("worlds"):
            cmd += f"--worlds {len(files)} "
        meta[key] = {"command": f"python scripts/eval_depth.py {cmd}--update-weights-json", **{
            k: result[k] for k in ("eval_set", "overall", "date", "machine")},
            "metrics": "per image then averaged; see scripts/eval_depth.py and BENCHMARKS.md"}
        atomic_write_text(path, json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    from worldgen.core.io import UserInputError, os_error_line

    try:
        main()
    except UserInputError as e:  # (a weights file that is not the depth network's, a sky rule out of range, ...)
        sys.exit(f"eval_depth: {e}")
    except OSError as e:  # the machine's: one line
        sys.exit(f"eval_depth: {os_error_line(e)}")
