"""scripts/sky_holdout.py's figures: zero for the real sky itself, and they grow as the generated sky's texture
departs from the real one's (a flat sky, one of half the contrast, one of another brightness)."""

from __future__ import annotations

import math

import pytest
import torch

from tests.scripts import load_script


def _clouds(h: int = 96, w: int = 256, seed: int = 0) -> torch.Tensor:
    """[3, h, w] soft value-noise clouds over a blue sky."""
    g = torch.Generator().manual_seed(seed)
    n = torch.rand(1, 1, h, w, generator=g)
    for _ in range(3):
        n = torch.nn.functional.avg_pool2d(n, 5, 1, 2, count_include_pad=False)
    puff = ((n[0, 0] - n.mean()) / n.std() * 0.3 + 0.5).clamp(0, 1)
    blue, white = torch.tensor([0.35, 0.5, 0.85]), torch.tensor([0.95, 0.95, 0.97])
    return blue[:, None, None] * (1 - puff) + white[:, None, None] * puff


def test_the_real_sky_scores_zero_and_departures_score_more():
    sh = load_script("sky_holdout")
    real = _clouds()
    m = torch.zeros(real.shape[1:], dtype=torch.bool)
    m[10:80, 40:220] = True
    same = sh.compare(real.clone(), real, m)
    assert same["band"] == pytest.approx(0, abs=1e-6) and same["w1"] == pytest.approx(0, abs=1e-6)
    assert same["lab"] == pytest.approx(0, abs=1e-6)
    mean = real[:, m].mean(1)[:, None, None]
    flat = sh.compare(mean.expand_as(real).clone(), real, m)
    half = sh.compare(mean + 0.5 * (real - mean), real, m)
    other = sh.compare(_clouds(seed=1), real, m)  # the same kind of clouds, drawn again
    assert flat["band"] > 3  # no texture at all: ln(1e-6 / E) at every band
    assert half["band"] == pytest.approx(math.log(2), abs=0.02)  # half the energy at every scale
    assert other["band"] < 0.15 and other["lab"] < 2  # another draw of the same sky is near
    darker = sh.compare((real - 0.1).clamp(0, 1), real, m)
    assert darker["w1"] == pytest.approx(0.1 * 255, rel=0.05) and darker["lab"] > 5 and darker["band"] < 0.05
