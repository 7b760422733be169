import pytest
import torch


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
