import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: run on the GPU machine (gsplat compiles CUDA on first call)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def write_landscape(path, w: int = 64, h: int = 48, *, seed: int = 1, horizon: float = 0.42, hills: float = 0.06,
                    period: float = 5.0, green=(0.25, 0.5, 0.2), texture=(0.6, 0.8)) -> None:
    """A test photo as PNG: a sky gradient over textured rolling hills (the hill line at `horizon` of the
    height, +-`hills`, one wave every 2 pi `period` columns); ground colour green * (a + b * noise)."""
    rng = np.random.default_rng(seed)
    y = np.arange(h)[:, None] / h
    img = np.zeros((h, w, 3), np.float32)
    img[:] = np.stack([0.45 + 0.3 * y, 0.6 + 0.25 * y, np.full_like(y, 0.95)], -1)
    hill = (horizon + hills * np.sin(np.arange(w) / period)) * h
    ground = np.arange(h)[:, None] > hill[None, :]
    tex = rng.uniform(0.0, 1.0, (h, w, 1))
    img[ground] = (np.array(green) * (texture[0] + texture[1] * tex))[ground]
    Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8)).save(path)


@pytest.fixture
def photo(tmp_path):
    """A 64x48 landscape photo (PNG path): sky gradient over textured hills."""
    p = tmp_path / "photo.png"
    write_landscape(p)
    return p


@pytest.fixture
def small_photo(tmp_path):
    """A 48x32 landscape photo (PNG path), other hills: what the comparison tests fly over."""
    p = tmp_path / "hills.png"
    write_landscape(p, 48, 32, seed=2, horizon=0.45, hills=0.07, period=4.0, green=(0.3, 0.5, 0.2), texture=(0.5, 1.0))
    return p
