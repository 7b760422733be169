"""Render the same persistent worlds with the pure-PyTorch renderer and gsplat, and show where they differ.

    python3 scripts/probe_renderers.py [--flights 6] [--clips 6] [--steps 4] [--size 256] [--out DIR]

Why: the H200 training samples of 2026-12-02 (docs/training/refiner_fidelity_samples_step4500.jpg,
refiner_negpsnr_samples_step7000.jpg) show black-and-white wavy stripes in the rendered input at far forests and
shores, where the truth has none; the same kind of clips unrolled on the CPU (pure-PyTorch renderer) show none.
Answer (2026-12-02, sixth session, one H200): the two renderers draw the same worlds to 63-128 dB where both cover, and
score the same against the truth: the stripes are the lifted world's own aliasing at grazing angles, not gsplat's.

Procedural training flights (train seeds: the fidelity preset's data settings at --size) are rendered on the GPU
when there is one. For each clip, each renderer builds a persistent world from the clip's first frame (true RGBD)
and the classical refiner's frames, and renders the next --steps poses. Printed per clip and step: PSNR between
the two renders where both cover (alpha > 0.5), the share of those pixels whose colours differ by more than 0.1,
and each render's PSNR against the truth there. DIR/clip_K.jpg: per step a row torch render | gsplat render |
4 x |difference| | truth | the clip's first frame (the world's source: stripes already there would come from the
procedural renderer, not from the Gaussian renderers). Without CUDA only the torch renderer runs (a smoke test:
its columns repeat).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from configs.train import TRAIN_PRESETS
from refine.classical import ClassicalRefiner, ClassicalRefinerConfig
from refine.train.data import FlightCache
from renderers import GsplatRenderer, TorchRenderer
from worldgen.core.camera import Camera
from worldgen.core.config import check_at_least_option, check_seed_option
from worldgen.core.frame import Frame
from worldgen.core.io import UserInputError
from worldgen.core.metrics import psnr
from worldgen.pipeline.generator import make_generator


def unroll_views(clips, b: int, steps: int, renderer) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(rgb [H, W, 3] not premultiplied, alpha [H, W]) of the unrefined render at steps 1..steps of clip b's
    persistent world."""
    H, W = clips.depth.shape[-2:]
    cams = [Camera(K=clips.K[b], c2w=clips.c2w[b, t], width=W, height=H) for t in range(steps + 1)]
    d0 = clips.depth[b, 0]
    first = Frame(rgb=clips.rgb[b, 0], depth=d0, sky=~torch.isfinite(d0), camera=cams[0])
    refiner = ClassicalRefiner(ClassicalRefinerConfig())
    gen = make_generator("persistent", first, renderer, refiner=refiner, time_stages=False)
    out = []
    for t in range(1, steps + 1):
        view = gen.begin_step(cams[t])
        alpha = view.alpha.float().reshape(H, W)
        out.append(((view.rgb.float() / alpha.clamp_min(1e-6)[..., None]).clamp(0, 1), alpha))
        gen.end_step(refiner(view), view)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flights", type=int, default=6)
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0, help="clip sampling seed")
    ap.add_argument("--out", default="runs/probe_renderers")
    args = ap.parse_args()
    try:  # (one line before the flights are rendered)
        check_seed_option(args, "seed")
        for field, least in (("flights", 1), ("clips", 1), ("steps", 1), ("size", 16)):
            check_at_least_option(args, field, least)
    except UserInputError as e:
        sys.exit(f"probe_renderers: {e}")
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    cfg = TRAIN_PRESETS["train-refiner-h200-fidelity"].config.data
    cfg = dataclasses.replace(cfg, flights=args.flights, width=args.size, height=args.size)
    cache = FlightCache(cfg, dev)
    cache.fill()
    clips = cache.sample(args.clips, args.steps + 1, torch.Generator().manual_seed(args.seed))
    renderers = {"torch": TorchRenderer(), "gsplat": GsplatRenderer() if cuda else TorchRenderer()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{'clip':>4} {'flight':>6} {'step':>4} {'torch~gsplat dB':>15} {'differ>0.1':>10} {'torch dB':>8} "
          f"{'gsplat dB':>9}")
    for b in range(args.clips):
        with torch.no_grad():
            views = {k: unroll_views(clips, b, args.steps, r) for k, r in renderers.items()}
        rows = []
        for t in range(args.steps):
            (ra, aa), (rb, ab) = views["torch"][t], views["gsplat"][t]
            truth = clips.rgb[b, t + 1].float()
            both = (aa > 0.5) & (ab > 0.5)
            differ = float(((ra - rb).abs().amax(-1) > 0.1)[both].float().mean()) if bool(both.any()) else float("nan")
            print(f"{b:>4} {clips.info[b]['flight']:>6} {t + 1:>4} {psnr(ra, rb, both):>15.2f} {differ:>10.4f} "
                  f"{psnr(ra, truth, both):>8.2f} {psnr(rb, truth, both):>9.2f}")
            diff = ((ra - rb).abs() * 4).clamp(0, 1)
            first = clips.rgb[b, 0].float()
            rows.append(torch.cat([ra * aa[..., None], rb * ab[..., None], diff, truth, first], dim=1))
        img = (torch.cat(rows, dim=0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        Image.fromarray(img).save(out / f"clip_{b}.jpg", quality=90)
    print(f"grids in {out}/ (per step: torch | gsplat | 4 x |difference| | truth | first frame)")


if __name__ == "__main__":
    main()
