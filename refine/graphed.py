"""Refiners on the GPU as CUDA graphs (worldgen/core/graphs.py): one launch per frame instead of
the 300-600 small kernels of the classical fills, the network's input assembly, the network and
the composition.

Both refiners route `__call__` through `refine_graphed` when the view is on CUDA and no gradient is
being recorded (training unrolls the refiners eagerly). Their code never waits for the GPU (no
Python `if` on a device value, no tensors built from Python lists), which is what capture needs.
Set WORLDGEN_CUDA_GRAPHS=0 to run them eagerly (to compare, or to debug).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from worldgen.core.frame import Frame, GroundTexture, RenderedView
from worldgen.core.graphs import GraphCache, camera_inputs, graphs_enabled, static_camera

# core(view, *extra) -> (rgb [H, W, 3], depth [H, W], sky [H, W] bool)
Core = Callable[..., tuple[Tensor, Tensor, Tensor]]


def graphs_wanted(view: RenderedView) -> bool:
    """True when `view` is on CUDA, no gradient has to flow through it (autograd off, or none of its
    tensors requires one) and WORLDGEN_CUDA_GRAPHS is not 0."""
    if not view.rgb.is_cuda or not graphs_enabled():
        return False
    tensors = (view.rgb, view.alpha, view.depth, view.footprint, view.sky_rgb, view.sky_known, view.camera.c2w)
    return not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors))


def refine_graphed(cache: GraphCache, view: RenderedView, core: Core, extra: tuple[Tensor, ...] = ()) -> Frame:
    """`core(view, *extra)` replayed from a CUDA graph captured once per (camera key: size, focal
    length, intrinsics when on the CPU; footprint or not; ground anchor or not; the ground texture's
    size or none; horizon); returns the refined Frame at view.camera.

    Args:
        cache: the refiner's graphs.
        view: a RenderedView on CUDA.
        core: the refiner's eager computation; it must not synchronise with the device.
        extra: further CUDA inputs of `core` (e.g. the noise channel [1, 1, H, W]).
    """
    cam = view.camera
    has_fp, has_anchor = view.footprint is not None, view.ground_anchor is not None
    tex = view.ground_texture
    cam_inputs, cam_key = camera_inputs(cam)
    inputs = cam_inputs + [view.rgb, view.alpha, view.depth, view.sky_rgb, view.sky_known]
    inputs += ([view.footprint] if has_fp else []) + ([view.ground_anchor] if has_anchor else [])
    inputs += (tex.tensors() if tex is not None else []) + list(extra)
    key = (cam_key, has_fp, has_anchor, None if tex is None else tuple(tex.detail.shape), float(view.horizon_elev_deg))

    def build(static: list[Tensor]):
        camera, s = static_camera(cam, static)
        it = iter(s)  # in the order of `inputs` above
        rgb, alpha, depth, sky_rgb, sky_known = (next(it) for _ in range(5))
        fp = next(it) if has_fp else None
        anchor = next(it) if has_anchor else None
        st = GroundTexture(next(it), next(it), next(it)) if tex is not None else None
        sv = RenderedView(camera, rgb, alpha, depth, fp, sky_rgb, sky_known, view.horizon_elev_deg, anchor, st)
        ex = list(it)
        return lambda: core(sv, *ex)

    rgb, depth, sky = cache.run(key, inputs, build)
    return Frame(rgb=rgb, depth=depth, sky=sky, camera=cam)
