"""How like the real sky is the generated one? Hide part of each photo's seen sky, complete the dome, compare.

    .venv/bin/python scripts/sky_holdout.py [PHOTO ...] [--size 256x256] [--share 0.4] [--no-flat]
        [--complete NAME=VALUE ...] [--baseline-from REV] [--out FILE.json]

For each photo (default: every photo of ../shared/data/real/) the persistent generator's start is built as `worldgen
fly PHOTO --size WxH` builds it (the learned depth, the photo's horizon, the dome at twice the view's pixel density;
scripts/sky_domes.py: seen_dome). The last `--share` of the seen sky's azimuth span (its right-hand part) is then
forgotten and the dome completed by each rule; the generated texels are compared with the forgotten real ones where
they lie above the horizon and more than 8 degrees of azimuth from the sky left seen (beyond the push-pull
continuation, where only the generated sky is). Photos with fewer than 2,000 such texels are skipped. Figures, on
the grey level (mean of RGB, 0-1), by photo and rule:

- `band`: the texture's scale content: for box widths 2, 4, ..., 64 texels, the mean |blur_w - blur_2w| of the
  region (band-pass energy), and the mean over the six bands of |ln(generated / real)| (0 = the same energy at every
  scale, ln 2 = 0.69 when every band has half or twice the real energy; the flat profile, which has
  none beyond the push-pull continuation, scores 2-4 on the real photos).
- `w1`: the 1-Wasserstein distance between the grey levels' distributions (brightness and contrast; x 255).
- `lab`: the distance between the Lab means (Delta E 1976) of the generated and real texels.

Rules: `now` (the working tree's `SkyDome.complete`, with `--complete`'s arguments), `flat` (the rule before 2026-12-05: the profile, variation
faded; `fade_deg=25, tile_deg=0`), and with `--baseline-from REV`, `REV` (that commit's worldgen/pipeline/sky.py,
completed with its own defaults). The medians over photos are printed last.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from sky_domes import real_photos, seen_dome  # noqa: E402

from worldgen.core.io import UserInputError, check_output_file  # noqa: E402
from worldgen.pipeline.sky import SkyDome  # noqa: E402

BANDS = (2, 4, 8, 16, 32, 64)


def _box(x: torch.Tensor, w: int) -> torch.Tensor:
    """[K, H, W] -> the same, summed over (w + 1) x (w + 1) boxes (rows replicated at the edges, columns wrap)."""
    p = w // 2
    x = F.pad(F.pad(x[None], (p, p, 0, 0), mode="circular"), (0, 0, p, p), mode="replicate")[0].double()
    c = F.pad(x.cumsum(1), (0, 0, 1, 0))
    x = c[:, w + 1:] - c[:, :-w - 1]
    c = F.pad(x.cumsum(2), (1, 0))
    return (c[:, :, w + 1:] - c[:, :, :-w - 1]).float()


def _blur(g: torch.Tensor, m: torch.Tensor, w: int) -> torch.Tensor:
    """Mean of the grey `g` [H, W] over (w + 1)-wide boxes, counting only texels of `m` (columns wrap)."""
    s = _box(torch.stack([g * m, m.float()]), w)
    return s[0] / s[1].clamp_min(1e-6)


def band_energy(g: torch.Tensor, m: torch.Tensor) -> np.ndarray:
    """[len(BANDS)] mean |blur_w - blur_2w| of the grey `g` [H, W] over region `m` [H, W] bool."""
    return np.array([float(((_blur(g, m, w) - _blur(g, m, 2 * w)).abs() * m).sum() / m.sum()) for w in BANDS])


def _lab(rgb: np.ndarray) -> np.ndarray:
    """[N, 3] sRGB 0-1 -> CIE Lab (D65)."""
    c = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = c @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def compare(gen: torch.Tensor, real: torch.Tensor, m: torch.Tensor) -> dict:
    """Figures of the generated colours `gen` against the real `real` ([3, H, W] each) over region `m` [H, W]."""
    rows = torch.nonzero(m.any(1)).flatten()
    r0, r1 = max(0, int(rows[0]) - 2 * BANDS[-1]), int(rows[-1]) + 2 * BANDS[-1] + 1  # (the bands need no more)
    eg, er = band_energy(gen.mean(0)[r0:r1], m[r0:r1]), band_energy(real.mean(0)[r0:r1], m[r0:r1])
    a, b = gen.mean(0)[m].numpy(), real.mean(0)[m].numpy()
    q = np.linspace(0, 1, 201)
    w1 = float(np.abs(np.quantile(a, q) - np.quantile(b, q)).mean()) * 255
    lg = _lab(gen[:, m].T.numpy().astype(np.float64)).mean(0)
    lr = _lab(real[:, m].T.numpy().astype(np.float64)).mean(0)
    return {"band": float(np.abs(np.log(np.maximum(eg, 1e-6) / np.maximum(er, 1e-6))).mean()),
            "band_ratio": (eg / np.maximum(er, 1e-9)).round(3).tolist(), "w1": w1,
            "lab": float(np.linalg.norm(lg - lr))}


def load_rev(rev: str):
    """worldgen/pipeline/sky.py as of commit `rev`, imported as a module of its own."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:worldgen/pipeline/sky.py"], capture_output=True,
                         text=True)
    if src.returncode != 0:
        sys.exit(f"sky_holdout: error: no worldgen/pipeline/sky.py at {rev!r}: {src.stderr.strip()}")
    path = Path(tempfile.mkdtemp()) / "sky_rev.py"
    path.write_text(src.stdout)
    spec = importlib.util.spec_from_file_location(f"sky_{rev}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("photos", nargs="*")
    ap.add_argument("--size", default="256x256")
    ap.add_argument("--share", type=float, default=0.4, help="share of the seen sky's azimuth span forgotten")
    ap.add_argument("--baseline-from", default=None, metavar="REV")
    ap.add_argument("--no-flat", action="store_true", help="leave out the flat rule")
    ap.add_argument("--complete", nargs="*", default=[], metavar="NAME=VALUE",
                    help="arguments of SkyDome.complete for the rule `now` (e.g. tile_deg=18)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if not 0.1 <= a.share <= 0.8:
        sys.exit("sky_holdout: error: --share must be within 0.1..0.8")
    if a.out:
        try:
            check_output_file(a.out, (".json",), "--out")
        except UserInputError as e:
            sys.exit(f"sky_holdout: error: {e}")
    a.photos = a.photos or real_photos("sky_holdout")
    missing = [p for p in a.photos if not Path(p).is_file()]
    if missing:
        sys.exit(f"sky_holdout: error: no such photo: {missing[0]}")
    try:
        now = {k: float(v) for k, v in (x.split("=", 1) for x in a.complete)}
    except ValueError:
        sys.exit("sky_holdout: error: --complete takes NAME=NUMBER pairs, e.g. tile_deg=18")
    bad = sorted(set(now) - {"fade_deg", "profile_deg", "tile_deg"})
    if bad:
        sys.exit(f"sky_holdout: error: --complete {bad[0]}: not one of fade_deg, profile_deg, tile_deg")
    rules = {"now": (SkyDome, now)}
    if not a.no_flat:
        rules["flat"] = (SkyDome, {"fade_deg": 25.0, "tile_deg": 0.0})
    if a.baseline_from:
        rules[a.baseline_from] = (load_rev(a.baseline_from).SkyDome, {})
    results = []
    print(f"{'photo':<34} {'texels':>7}  " + "  ".join(f"{r[:10]:>10} band/w1/lab" for r in rules))
    for photo in a.photos:
        dome, horizon = seen_dome(photo, a.size)
        seen = dome.weight > 0
        Hs, Ws = dome.height, dome.width
        el = 90.0 - (torch.arange(Hs) + 0.5) * 180.0 / Hs
        az = (torch.arange(Ws) + 0.5) * 360.0 / Ws - 180.0
        cols = seen.any(0)
        if not bool(cols.any()):
            continue
        s_az = az[cols]
        centre = math.degrees(math.atan2(float(torch.deg2rad(s_az).sin().mean()), float(torch.deg2rad(s_az).cos().mean())))
        rel = (az - centre + 180) % 360 - 180  # azimuth relative to the seen sky's centre
        lo, hi = float(rel[cols].min()), float(rel[cols].max())
        cut = hi - a.share * (hi - lo)
        hide = seen & (rel > cut)[None, :]
        region = hide & ((rel > cut + 8.0)[None, :]) & (el > horizon + 1.0)[:, None]
        if int(region.sum()) < 2000:
            continue
        real = dome.color.clone()
        row = {"photo": Path(photo).name, "texels": int(region.sum())}
        for name, (cls, kw) in rules.items():
            d = cls(texels_per_degree=Ws / 360.0)
            d._tex.copy_(dome._tex)
            d._tex[0, :, :, 1:-1][:, hide] = 0.0
            d._tex[..., 0] = d._tex[..., Ws]
            d._tex[..., Ws + 1] = d._tex[..., 1]
            d.complete(horizon, **kw)
            row[name] = compare(d.color, real, region)
        results.append(row)
        print(f"{Path(photo).stem[:34]:<34} {row['texels']:7d}  "
              + "  ".join(f"{row[r]['band']:6.2f} {row[r]['w1']:5.1f} {row[r]['lab']:5.1f}" for r in rules))
    if not results:
        sys.exit("sky_holdout: error: no photo had enough seen sky to hold some out")
    med = {r: {k: float(np.median([x[r][k] for x in results])) for k in ("band", "w1", "lab")} for r in rules}
    print(f"{'median over ' + str(len(results)) + ' photos':<42} "
          + "  ".join(f"{med[r]['band']:6.2f} {med[r]['w1']:5.1f} {med[r]['lab']:5.1f}" for r in rules))
    if a.out:
        from worldgen.core.io import atomic_write

        with atomic_write(a.out, "w") as f:
            json.dump({"size": a.size, "share": a.share, "rules": list(rules), "results": results, "median": med}, f,
                      indent=1)


if __name__ == "__main__":
    try:
        main()
    except UserInputError as e:  # (a photo that cannot be read, a --size that cannot be parsed)
        sys.exit(f"sky_holdout: error: {e}")
