"""Replaying fixed-shape GPU work as CUDA graphs: one launch instead of hundreds.

A frame of the flight is a few hundred small kernels per stage; at 512x512 on an H200 each costs
the CPU more to launch (5-15 us through PyTorch) than the GPU to run, so the loop is bound by the
CPU (scripts/profile_generate.py). A stage whose work has fixed shapes and never waits for the GPU
(no `.item()`, no `.any()` in an `if`, no tensor built from Python lists) can be captured once per
input shape and replayed: the CPU then launches one graph.

`GraphCache.run(key, inputs, build)`:
- `inputs` are the stage's tensors (each call: the same shapes, dtypes and device for one `key`);
- `build(static_inputs)` returns a function of no arguments that computes the stage's outputs
  (a tuple of tensors) from `static_inputs`, copies of the first call's inputs that later calls
  overwrite. `build` runs once per key, outside the capture, so it may do what capture forbids
  (read a tensor's value, build a Camera).
The first call for a key warms the function up on a side stream (cuDNN picks its algorithms, lazy
initialisation happens), captures it, and every call copies its inputs into the static ones,
replays, and returns clones of the outputs (the next replay overwrites them; `fresh=False` returns the graph's own
outputs, for a caller that reads them into new tensors at once). Graphs are keyed by the caller's key, the inputs'
shapes and dtypes, and whether inference mode is on (static inputs made in inference mode may not be refilled
outside it). A graph's kernels hold the raw addresses of every tensor they read, its static inputs' and
also those the function reaches through its closure (a sky dome's texture and cached texel directions), so each
entry keeps `build`'s function, and with it everything it reads, alive as long as the graph is kept: a
graph is never replayed over freed memory (until 2026-12-02 it was dropped after the capture; a dome made
for the next flight at the freed texture's address then matched the old dome's key, and its write graph
read the old dome's freed directions: an illegal memory access on the H200). A function that
synchronises (found by its last warm-up, run under `torch.cuda.set_sync_debug_mode("error")`) is
reported once on stderr and from then on run eagerly. The least recently used graph goes first.
That mode is process-wide: during a warm-up a synchronising CUDA call on *another* thread fails too,
so the threads beside a flight (frame writers, the checkpoint's writer: `checkpoint.host_copy`)
never touch the device.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Hashable, Sequence

import torch
from torch import Tensor

from worldgen.core.camera import Camera


def graphs_enabled() -> bool:
    """Whether stages may replay CUDA graphs: False when the environment sets WORLDGEN_CUDA_GRAPHS=0
    (to compare with eager runs, or to debug)."""
    return os.environ.get("WORLDGEN_CUDA_GRAPHS", "1") != "0"


Build = Callable[[list[Tensor]], Callable[[], tuple[Tensor, ...]]]


def camera_inputs(cam: Camera) -> tuple[list[Tensor], tuple]:
    """What a graph needs of a Camera: (its tensors to pass as inputs, the part of the key for what
    a graph bakes in). K [3, 3] is an input when on CUDA, else its values key the graph; c2w [4, 4]
    is always an input; the size and fx, fy (Python floats a Camera reads once) always key it.
    `static_camera` makes the graph's Camera from the static copies."""
    k_cuda = cam.K.is_cuda
    inputs = ([cam.K] if k_cuda else []) + [cam.c2w]
    return inputs, (cam.width, cam.height, cam.fx, cam.fy, None if k_cuda else tuple(cam.host()[0].flatten().tolist()))


def static_camera(cam: Camera, static: list[Tensor]) -> tuple[Camera, list[Tensor]]:
    """(the Camera over the static copies of `camera_inputs(cam)`, which lead `static`; the rest of `static`).

    Its `host()` copy is `cam`'s, given without reading the device (a read inside the capture's warm-up
    would synchronise, and the graph would fall back to eager runs): inside a graph only fx and fy, which
    key it, may be read from the host copy; the pose must come from the tensors, which later calls refill."""
    k_cuda = cam.K.is_cuda
    K = static[0] if k_cuda else cam.K
    c2w = static[1 if k_cuda else 0]
    return Camera(K=K, c2w=c2w, width=cam.width, height=cam.height)._given_host(*cam.host()), list(static[2 if k_cuda else 1:])


class GraphCache:
    """CUDA graphs keyed by the caller's key, the inputs' shapes and dtypes and the inference mode (see the module doc).

    Args:
        warmup: eager runs on a side stream before the capture.
        max_graphs: graphs kept (each holds its own memory pool); the oldest goes first.
        keep_functions: keep each captured function (and all it reads) alive with its graph (module doc). False
            for a cache owned by the object its functions read (a refiner's own): they live as long as it, and
            keeping them would tie the owner into a reference cycle that only the cyclic collector frees.
    """

    def __init__(self, warmup: int = 2, max_graphs: int = 8, keep_functions: bool = True):
        self.warmup, self.max_graphs, self.keep_functions = warmup, max_graphs, keep_functions
        # key -> (graph, static inputs, outputs, the captured function: kept so that what it reads stays alive)
        Entry = tuple[torch.cuda.CUDAGraph, list[Tensor], tuple[Tensor, ...], Callable | None]
        self._graphs: dict[Hashable, Entry] = {}
        self._eager: set[Hashable] = set()  # keys whose capture failed: run eagerly from then on

    def __len__(self) -> int:
        return len(self._graphs)

    def run(self, key: Hashable, inputs: Sequence[Tensor], build: Build, fresh: bool = True) -> tuple[Tensor, ...]:
        """The outputs of `build(inputs)()`, computed by replaying a CUDA graph. All `inputs` must be CUDA tensors
        on the current device. `fresh`: the outputs are new tensors; else they are the graph's own, which its next
        replay overwrites (for a caller that only reads them into new tensors at once: one copy fewer each)."""
        # (inference mode keys it too: a graph's static inputs made in inference mode may not be refilled outside it)
        full_key = (key, torch.is_inference_mode_enabled(), tuple((tuple(t.shape), t.dtype, t.device) for t in inputs))
        if full_key in self._eager:
            return tuple(build(list(inputs))())
        entry = self._graphs.pop(full_key, None)  # (re-inserted last: the least recently used goes first)
        if entry is None:
            try:
                entry = self._capture(inputs, build)
            except _NotCapturable as e:  # it waits for the GPU: run it eagerly from now on
                self._eager.add(full_key)
                print(f"worldgen: not replayed as a CUDA graph (it synchronises: {e}); running eagerly", file=sys.stderr)
                return tuple(build(list(inputs))())
            if len(self._graphs) >= self.max_graphs:
                self._graphs.pop(next(iter(self._graphs)))
        else:
            for s, t in zip(entry[1], inputs):
                s.copy_(t)
        self._graphs[full_key] = entry
        graph, _static, outputs, _fn = entry
        graph.replay()
        return tuple(o.clone() for o in outputs) if fresh else outputs

    def _capture(self, inputs: Sequence[Tensor], build: Build):
        static = [t.detach().clone() for t in inputs]
        fn = build(static)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(max(0, self.warmup - 1)):
                fn()
            # the last warm-up under sync debug mode: a function that synchronises raises here, before
            # any capture (a capture that fails half-way can leave the thread on the capture stream)
            torch.cuda.synchronize()
            mode = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode("error")
            try:
                fn()
            except RuntimeError as e:
                raise _NotCapturable(str(e).splitlines()[0][:160]) from None
            finally:
                torch.cuda.set_sync_debug_mode(mode)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        before = torch.cuda.current_stream()
        try:
            # thread_local: CUDA work of other threads (a viewer's) during the capture is neither an error nor captured
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                outputs = fn()
        except BaseException:
            torch.cuda.set_stream(before)  # torch leaves the thread on the capture stream when capture_end raises
            raise
        return graph, static, tuple(outputs), fn if self.keep_functions else None


class _NotCapturable(RuntimeError):
    """The function synchronises with the device (found by a warm-up under sync debug mode)."""
