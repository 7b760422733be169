"""kill -9 a flight at a random frame, `--resume` it, and compare with an uninterrupted flight.

    .venv/bin/python scripts/resume_check.py                         # CUDA: 1,000 frames at 512x512
    .venv/bin/python scripts/resume_check.py --device cpu --frames 40 --size 64x48 --checkpoint-every 5

Flies the bundled example along the autopilot twice with `worldgen fly` (each in its own process):
once through, once killed with SIGKILL at a random frame after its second checkpoint and resumed
with `worldgen fly --resume`. Prints the frame it was killed at, the frame the resume started from,
and the PSNR of the resumed run's frames against the uninterrupted run's (last frame, and the lowest
over all frames; "identical" when every pixel matches). Goals: identical on the CPU, >= 40 dB on CUDA.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

EX = "worldgen/examples/example"
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from worldgen.core.config import check_seed_option  # noqa: E402
from worldgen.core.io import UserInputError  # noqa: E402


def fly(out: Path, args, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "worldgen.cli", "fly", f"{EX}.png", "--depth", f"{EX}_depth.npy", "--camera",
           f"{EX}.json", "--path", "autopilot", "--frames", str(args.frames), "--size", args.size, "--device",
           args.device, "--refiner", args.refiner, "--checkpoint-every", str(args.checkpoint_every), "--no-progress",
           "--out", str(out), *([] if args.video else ["--no-video"]), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--size", default="512x512")
    ap.add_argument("--refiner", default="classical")
    ap.add_argument("--checkpoint-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=None, help="picks the kill frame (default: random)")
    ap.add_argument("--video", action="store_true", help="also write video.mp4 (needs imageio-ffmpeg)")
    args = ap.parse_args()
    try:
        check_seed_option(args, "seed")
    except UserInputError as e:
        sys.exit(f"resume_check: {e}")
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        whole, killed = Path(tmp) / "whole", Path(tmp) / "killed"
        p = fly(whole, args)
        if p.wait() != 0:
            sys.exit(f"the uninterrupted flight failed: {p.stderr.read()}")
        target = rng.randint(2 * args.checkpoint_every + 1, args.frames - 2)
        p = fly(killed, args)
        while True:  # frames/ fills as the flight goes: kill once frame `target` is on disk
            if (killed / "frames" / f"{target:05d}.png").exists() or p.poll() is not None:
                break
            time.sleep(0.01)
        p.kill()
        p.wait()
        at = len(list((killed / "frames").glob("*.png")))
        r = subprocess.run([sys.executable, "-m", "worldgen.cli", "fly", "--resume", str(killed), "--no-progress"],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            sys.exit(f"the resume failed: {r.stderr}")
        sessions = json.loads((killed / "run.json").read_text())["sessions"]
        frames = sorted((whole / "frames").glob("*.png"))
        scores = [psnr(np.asarray(Image.open(f)), np.asarray(Image.open(killed / "frames" / f.name))) for f in frames]
    same = all(s == float("inf") for s in scores)
    print(f"# {time.strftime('%Y-%m-%d')} device={args.device} size={args.size} frames={args.frames} "
          f"refiner={args.refiner} checkpoint every {args.checkpoint_every}")
    print(f"killed (SIGKILL) with {at} frames on disk; resumed from frame {sessions[-1]['first_frame']}")
    print("frames after the resume: " + ("identical" if same else
          f"last frame {scores[-1]:.1f} dB, lowest {min(scores):.1f} dB (goal >= 40 dB on CUDA, identical on the CPU)"))


if __name__ == "__main__":
    main()
