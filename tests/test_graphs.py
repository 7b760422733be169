"""CUDA graphs of the refiners (refine/graphed.py): replayed frames equal eager ones, and the refiners
never wait for the GPU. Needs CUDA (skipped on the CPU-only CI machine)."""

from __future__ import annotations

import math

import pytest
import torch

from refine.classical import ClassicalRefiner
from refine.learned import LearnedRefiner
from worldgen.core.camera import Camera, look_at
from worldgen.core.frame import Frame, RenderedView
from worldgen.core.graphs import GraphCache

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _view(seed: int, H: int = 64, W: int = 96, footprint: bool = True, fov: float = 60.0) -> RenderedView:
    g = torch.Generator().manual_seed(seed)
    pos = torch.tensor([0.1 * seed, -0.2, -0.3 * seed])
    c2w = look_at(pos, pos + torch.tensor([0.2 * (seed % 3 - 1), 0.1, 1.0]))
    cam = Camera.from_fov(fov, W, H, c2w).to("cuda")
    alpha = torch.rand(H, W, generator=g)
    alpha[: H // 3] *= 0.2  # sky-ish top, holes below
    alpha[H // 2:, W // 4: W // 2] = 0
    rgb = torch.rand(H, W, 3, generator=g) * alpha[..., None]
    depth = torch.rand(H, W, generator=g) * 20 + 1
    fp = torch.rand(H, W, generator=g) * 3 if footprint else None
    known = (torch.rand(H, W, generator=g) > 0.6).float() * (seed % 2)  # every other view: no dome at all
    cu = lambda t: None if t is None else t.cuda()  # noqa: E731
    return RenderedView(cam, cu(rgb), cu(alpha), cu(depth), cu(fp), cu(torch.rand(H, W, 3, generator=g)), cu(known), 4.0)


def _same(a, b, tol: float) -> None:
    assert torch.equal(a.sky, b.sky)
    assert (a.rgb - b.rgb).abs().max().item() <= tol
    fin = torch.isfinite(a.depth)
    assert torch.equal(fin, torch.isfinite(b.depth))
    assert torch.allclose(a.depth[fin], b.depth[fin], rtol=tol, atol=tol)


@cuda
@pytest.mark.parametrize("footprint", [True, False])
def test_classical_graph_replays_match_eager(monkeypatch, footprint):
    r = ClassicalRefiner()
    views = [_view(s, footprint=footprint) for s in range(4)]
    monkeypatch.setenv("WORLDGEN_CUDA_GRAPHS", "0")
    eager = [r(v) for v in views]
    monkeypatch.setenv("WORLDGEN_CUDA_GRAPHS", "1")
    with torch.no_grad():
        graphed = [r(v) for v in views]  # the first captures, the others replay with new inputs
    assert len(r._graphs) == 1
    for a, b in zip(eager, graphed):
        _same(a, b, 1e-5)
    # the returned frames are copies: a later replay does not overwrite an earlier frame
    assert not torch.equal(graphed[0].rgb, graphed[1].rgb)


@cuda
@pytest.mark.parametrize("anchor,texture", [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0)])
def test_learned_graph_replays_match_eager(monkeypatch, anchor, texture):
    import dataclasses

    from worldgen.core.anchor import ANCHOR_BANDS
    from worldgen.core.frame import GroundTexture

    g = torch.Generator().manual_seed(5)
    table = torch.rand(ANCHOR_BANDS, 3, generator=g).cuda()
    H0, W0 = 40, 56  # the texture's photo need not have the view's size
    tex = GroundTexture(detail=(torch.rand(H0, W0, 3, generator=g) - 0.5).cuda() * 0.2,
                        index=torch.randint(H0 * W0, (32, 64), generator=g).cuda(), energy=torch.full((32,), 0.05).cuda())
    views = [dataclasses.replace(_view(s), ground_anchor=table * (1 + 0.1 * s),
                                 ground_texture=tex if texture > 0 else None) for s in range(4)]

    def load():
        r = LearnedRefiner.load(device="cuda", seed=3)  # (the same noise each time)
        r.config = dataclasses.replace(r.config, anchor=anchor, texture=texture)
        return r

    monkeypatch.setenv("WORLDGEN_CUDA_GRAPHS", "0")
    r = load()
    eager = [r(v) for v in views]
    monkeypatch.setenv("WORLDGEN_CUDA_GRAPHS", "1")
    r = load()
    graphed = [r(v) for v in views]
    assert len(r._graphs) == 1
    for a, b in zip(eager, graphed):
        _same(a, b, 2e-2)  # bf16 network: cuDNN may pick other algorithms in and out of capture


@cuda
def test_refiners_never_wait_for_the_gpu():
    """Capture needs code that never synchronises; sync debug mode raises on any synchronising call."""
    v = _view(1)
    c = ClassicalRefiner()
    learned = LearnedRefiner.load(device="cuda")
    noise = torch.zeros(1, 1, v.alpha.shape[0], v.alpha.shape[1], device="cuda")
    with torch.no_grad():
        c.refine(v), learned._frame_tensors(v, noise)  # warm-up (lazy initialisation may sync)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            c.refine(v)
            learned._frame_tensors(v, noise)
        finally:
            torch.cuda.set_sync_debug_mode("default")


@cuda
def test_graph_cache_keys_and_eviction():
    cache = GraphCache(max_graphs=2)
    calls = []

    def build(static):
        calls.append(len(static))
        return lambda: (static[0] * 2,)

    x = torch.arange(4.0, device="cuda")
    assert torch.equal(cache.run("a", [x], build)[0], x * 2)
    assert torch.equal(cache.run("a", [x + 1], build)[0], (x + 1) * 2)  # replayed with the new input
    assert calls == [1]
    cache.run("a", [torch.ones(3, device="cuda")], build)  # another shape: another graph
    cache.run("b", [x], build)
    assert len(cache) == 2 and len(calls) == 3


@cuda
def test_graphs_made_in_inference_mode_are_not_refilled_outside_it():
    cache = GraphCache()
    build = lambda static: lambda: (static[0] + 1,)  # noqa: E731
    x = torch.arange(4.0, device="cuda")
    with torch.inference_mode():  # (a flight's: static inputs that only inference mode may write)
        assert torch.equal(cache.run("a", [x], build)[0], x + 1)
    assert torch.equal(cache.run("a", [x * 2], build)[0], x * 2 + 1)  # another graph, not an error
    assert len(cache) == 2


@cuda
def test_autopilot_view_graph_matches_eager(monkeypatch):
    from worldgen.pipeline.paths.autopilot import _pool_maps

    depth = 5.0 + torch.rand(130, 250, device="cuda") * 40
    depth[:30] = math.inf
    depth[100, 7] = 1.0  # a near pixel its block keeps
    frame = Frame(torch.zeros(130, 250, 3, device="cuda"), depth, torch.isinf(depth),
                  Camera.from_fov(73.0, 250, 130).to("cuda"))
    replayed = [_pool_maps(frame, 4, 32, 62).clone() for _ in range(3)]  # capture, then replays
    monkeypatch.setenv("WORLDGEN_CUDA_GRAPHS", "0")
    eager = _pool_maps(frame, 4, 32, 62)
    assert all(torch.equal(r, eager) for r in replayed) and eager[1, 25, 1] == 1.0


@cuda
def test_lift_graph_matches_eager(monkeypatch):
    from worldgen.core.frame import Frame
    from worldgen.pipeline.lift import LiftConfig, lift

    g = torch.Generator().manual_seed(0)
    H, W = 48, 80
    for seed in range(3):
        v = _view(seed, H, W, fov=50.0 + 10 * seed)  # another focal length: another graph
        depth = (torch.rand(H, W, generator=g) * 5 + 2).cuda()
        depth[:10, :20] = 40.0  # a discontinuity
        frame = Frame(torch.rand(H, W, 3, generator=g).cuda(), depth, torch.zeros(H, W, dtype=torch.bool, device="cuda"), v.camera)
        mask = (torch.rand(H, W, generator=g) > 0.4).cuda()
        monkeypatch.setenv("WORLDGEN_CUDA_GRAPHS", "0")
        a = lift(frame, mask, LiftConfig())
        monkeypatch.setenv("WORLDGEN_CUDA_GRAPHS", "1")
        b = lift(frame, mask, LiftConfig())
        assert len(a) == len(b) == int(mask.sum())
        for name in ("means", "log_scales", "colors", "opacity_logits"):
            assert torch.allclose(getattr(a, name), getattr(b, name), atol=1e-5, rtol=1e-5), name
        # quaternions: q and -q are one rotation
        dot = (a.quats * b.quats).sum(-1).abs()
        assert torch.allclose(dot, torch.ones_like(dot), atol=1e-4)
    from worldgen.pipeline.lift import _GRAPHS

    assert len(_GRAPHS) >= 3 and not _GRAPHS._eager, "replayed as graphs (one per focal length), not eagerly"


@cuda
def test_sky_render_graph_matches_eager_and_sees_later_writes(monkeypatch):
    import worldgen.pipeline.sky as sky_module
    from worldgen.pipeline.sky import SkyDome

    views = [_view(s, 48, 80) for s in range(3)]
    dome = SkyDome.for_camera(views[0].camera)
    dome._renders = sky_module._GRAPH_AFTER  # a dome that has lived a while: graphs from its next render
    n0 = len(sky_module._GRAPHS)
    g = torch.Generator().manual_seed(1)
    sky = torch.zeros(48, 80, dtype=torch.bool, device="cuda")
    sky[:20] = True
    dome.update(views[0].camera, torch.rand(48, 80, 3, generator=g).cuda(), sky)
    for i, v in enumerate(views):
        monkeypatch.setenv("WORLDGEN_CUDA_GRAPHS", "0")
        rgb_a, known_a = dome.render(v.camera)
        monkeypatch.setenv("WORLDGEN_CUDA_GRAPHS", "1")
        rgb_b, known_b = dome.render(v.camera)
        assert known_a.amax() > 0 or i > 0
        assert torch.allclose(rgb_a, rgb_b, atol=1e-5) and torch.allclose(known_a, known_b, atol=1e-5)
        # a write into the dome after the capture is seen by the next replay (the texture is read in place)
        dome.update(v.camera, torch.rand(48, 80, 3, generator=g).cuda(), torch.ones_like(sky))
        monkeypatch.setenv("WORLDGEN_CUDA_GRAPHS", "0")
        rgb_c, _ = dome.render(v.camera)
        monkeypatch.setenv("WORLDGEN_CUDA_GRAPHS", "1")
        rgb_d, _ = dome.render(v.camera)
        assert torch.allclose(rgb_c, rgb_d, atol=1e-5) and not torch.allclose(rgb_c, rgb_a, atol=1e-3)
    graphs = sky_module._GRAPHS
    assert len(graphs) == min(n0 + 1, graphs.max_graphs) and not graphs._eager, "replayed as a graph, not eagerly"


@cuda
def test_sky_write_graphs_write_what_eager_writes(monkeypatch):
    """The dome's writes replayed as CUDA graphs (one per texel window shape) leave the texture exactly as
    eager writes do, view after view (the capture's warm-ups write too: a repeated write adds nothing)."""
    import worldgen.pipeline.sky as sky_module
    from worldgen.pipeline.sky import SkyDome

    views = [_view(s, 48, 80) for s in range(6)]
    a, b = SkyDome.for_camera(views[0].camera), SkyDome.for_camera(views[0].camera)
    a._renders = b._renders = sky_module._GRAPH_AFTER + 1  # domes that have lived a while
    n0 = len(sky_module._WRITE_GRAPHS)
    g = torch.Generator().manual_seed(2)
    for i, v in enumerate(views):
        rgb = torch.rand(48, 80, 3, generator=g).cuda()
        sky = (torch.rand(48, 80, generator=g) > 0.3).cuda()
        monkeypatch.setenv("WORLDGEN_CUDA_GRAPHS", "0")
        n_a = a.update(v.camera, rgb, sky)
        monkeypatch.setenv("WORLDGEN_CUDA_GRAPHS", "1")
        b.update(v.camera, rgb, sky)
        assert int(n_a) > 0 and torch.equal(a._tex, b._tex), i
    graphs = sky_module._WRITE_GRAPHS
    assert len(graphs) > min(n0, graphs.max_graphs - 1) and not graphs._eager, "replayed as graphs, not eagerly"


@cuda
def test_a_cached_graph_keeps_what_it_reads_alive(monkeypatch):
    """A dome dropped while its write graph is cached stays alive (the graph's kernels read its texel directions):
    a dome made for the next flight can then never take its texture's address, match its key and replay the old
    graph over freed memory (an illegal memory access on the H200, 2026-12-02). The next dome writes as eager
    writes do; once the graph is evicted the old dome is freed."""
    import gc
    import weakref

    import worldgen.pipeline.sky as sky_module
    from worldgen.pipeline.sky import SkyDome

    views = [_view(s, 48, 80) for s in range(4)]
    g = torch.Generator().manual_seed(3)
    frames = [(torch.rand(48, 80, 3, generator=g).cuda(), (torch.rand(48, 80, generator=g) > 0.3).cuda())
              for _ in views]
    old = SkyDome.for_camera(views[0].camera)
    old._renders = sky_module._GRAPH_AFTER + 1
    old.update(views[0].camera, *frames[0])  # (its count is 0: the capture's warm-ups wrote the texels first)
    assert bool((old._tex[0, 3] > 0).any())
    gone, ptr = weakref.ref(old), old._tex.data_ptr()
    del old
    gc.collect()
    assert gone() is not None, "the cached write graph keeps the dome it reads alive"
    new, eager = SkyDome.for_camera(views[0].camera), SkyDome.for_camera(views[0].camera)
    new._renders = eager._renders = sky_module._GRAPH_AFTER + 1
    assert new._tex.data_ptr() != ptr
    for v, (rgb, sky) in zip(views, frames):
        new.update(v.camera, rgb, sky)
        monkeypatch.setenv("WORLDGEN_CUDA_GRAPHS", "0")
        eager.update(v.camera, rgb, sky)
        monkeypatch.setenv("WORLDGEN_CUDA_GRAPHS", "1")
        assert torch.equal(new._tex, eager._tex)
    sky_module._WRITE_GRAPHS._graphs.clear()
    gc.collect()
    assert gone() is None, "an evicted graph lets go of what it read"


@cuda
def test_a_function_that_cannot_be_captured_runs_eagerly(capsys):
    cache = GraphCache()

    def build(static):
        return lambda: (static[0] * float(static[0].sum()),)  # float(): a synchronisation, not capturable

    x = torch.arange(3.0, device="cuda")
    assert torch.equal(cache.run("k", [x], build)[0], x * 3.0)
    assert torch.equal(cache.run("k", [x + 1], build)[0], (x + 1) * 6.0)  # eager again, on the new input
    assert len(cache) == 0 and "running eagerly" in capsys.readouterr().err



@cuda
def test_a_checkpoint_commit_does_no_device_work():
    """The checkpoint's writer thread gets a host copy (`host_copy`, taken on the flight's thread), so its
    `torch.save` does no device-to-host copy: such a copy synchronises, and fails while the flight warms up
    a CUDA graph under the process-wide sync debug mode (it did, 2026-12-01: the autopilot's state was on
    the GPU and the commit thread raised "called a synchronizing CUDA operation")."""
    import copy
    import io

    import numpy as np

    from worldgen.pipeline.checkpoint import _to_saved, host_copy

    state = {"path": {"c2w": torch.eye(4, device="cuda")}, "rows": [np.zeros(3, np.float32)], "t": 3}
    blob = host_copy(state)
    mode = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")  # what another thread's graph warm-up does meanwhile
    try:
        torch.save(_to_saved(blob), io.BytesIO())
        with pytest.raises(RuntimeError, match="synchroniz"):  # the old deep copy kept the GPU tensor
            torch.save(_to_saved(copy.deepcopy(state)), io.BytesIO())
    finally:
        torch.cuda.set_sync_debug_mode(mode)


@cuda
def test_uploads_from_the_host_do_not_wait_for_the_device():
    """A path's host pose, the world's chunk rows and its masks go to the GPU through pinned memory
    (`core.device.to_device`): a copy from pageable memory would wait for all queued work, every frame."""
    import numpy as np

    from worldgen.core.device import to_device

    cam = Camera.from_fov(60.0, 64, 48).to("cuda")
    pose = look_at(torch.tensor([0.0, -1.0, 0.0]), torch.tensor([0.0, -1.0, 5.0]))
    mode = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        moved = cam.with_pose(pose)
        rows = to_device(np.arange(7), "cuda")
        mask = to_device(np.ones((4, 4), bool), "cuda")
    finally:
        torch.cuda.set_sync_debug_mode(mode)
    assert torch.equal(moved.c2w.cpu(), pose.float()) and moved.c2w.is_cuda
    assert rows.tolist() == list(range(7)) and bool(mask.all())
