"""Gaussian renderers behind one interface: gsplat (CUDA) and pure PyTorch (any device).

`get_renderer(device)` picks the backend: gsplat only for CUDA when CUDA is available; the
pure-PyTorch `TorchRenderer` otherwise. Both follow gsplat's rules (see renderers/torch_backend.py).
"""

from __future__ import annotations

import torch

from worldgen.core.interfaces import Render, Renderer
from renderers.gsplat_backend import GsplatRenderer
from renderers.torch_backend import TorchRenderer

__all__ = ["Render", "Renderer", "TorchRenderer", "GsplatRenderer", "get_renderer"]


def get_renderer(device: str = "auto") -> Renderer:
    """The renderer for `device`.

    Args:
        device: "auto" (gsplat if CUDA is available, else torch), a torch device string ("cpu",
            "cuda", "cuda:1", ...: gsplat for CUDA devices, torch otherwise), or a backend name
            ("torch", "gsplat") to force one.

    Raises:
        ValueError: gsplat asked for (by name or a CUDA device) without CUDA, or an unknown name.
    """
    cuda = torch.cuda.is_available()
    if device == "torch":
        return TorchRenderer()
    if device == "auto":
        return GsplatRenderer() if cuda else TorchRenderer()
    if device == "gsplat" or device.startswith("cuda"):
        if not cuda:
            raise ValueError(f"renderer {device!r} needs CUDA, which is not available here; use 'torch' or 'auto'")
        return GsplatRenderer()
    try:
        torch.device(device)
    except RuntimeError:
        msg = f"unknown renderer/device {device!r}: use 'auto', 'torch', 'gsplat' or a torch device"
        raise ValueError(msg) from None
    return TorchRenderer()
