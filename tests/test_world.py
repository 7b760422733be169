"""The paged world: chunks leave the working set and come back exactly; rendering and loop closure
are those of the whole world; checkpoints of the world round-trip bit for bit."""

import numpy as np
import pytest
import torch

from renderers import get_renderer
from worldgen.core.camera import Camera, look_at
from worldgen.core.metrics import psnr
from worldgen.core.scene import GaussianScene
from worldgen.pipeline.chunkstore import DiskStore, MemoryStore
from worldgen.pipeline.config import PhotoConfig
from worldgen.pipeline.flight import Flight
from worldgen.pipeline.generator import GeneratorConfig, make_generator
from worldgen.pipeline.paths import make_path
from worldgen.pipeline.refiners import make_refiner
from worldgen.pipeline.sources import first_frame, scene_scale
from worldgen.pipeline.world import PagedWorld, WorldConfig, boxes_in_view

EXAMPLE = "worldgen/examples/example.png"
EXAMPLE_PHOTO = PhotoConfig(depth="worldgen/examples/example_depth.npy", camera="worldgen/examples/example.json")


def random_scene(n: int, spread: float = 10.0, seed: int = 0) -> GaussianScene:
    g = torch.Generator().manual_seed(seed)
    return GaussianScene(torch.randn(n, 3, generator=g) * spread, torch.randn(n, 4, generator=g),
                         torch.randn(n, 3, generator=g) * 0.3 - 3.0, torch.randn(n, generator=g),
                         torch.rand(n, 3, generator=g))


def rows_set(scene: GaussianScene) -> np.ndarray:
    """The scene's packed rows in a canonical (sorted) order, to compare worlds as sets."""
    p = scene.pack()
    return p[np.lexsort(p.T[::-1])]


def camera_at(position, target) -> Camera:
    c2w = look_at(torch.tensor(position, dtype=torch.float64), torch.tensor(target, dtype=torch.float64))
    return Camera.from_fov(60, 64, 48, c2w.float())


def test_boxes_in_view_keeps_seen_boxes_and_drops_behind_and_beside():
    cam = camera_at([0, 0, 0], [0, 0, 1])  # looking down +z
    lo = np.array([[-1, -1, 5], [-1, -1, -9], [50, -1, 5], [-1, -1, 0.5], [-30, -1, 20]], float)
    hi = lo + 2
    hi[4, 0] = 30  # a wide box whose corners all lie outside the view, though it crosses it
    seen = boxes_in_view(lo, hi, cam)
    assert seen.tolist() == [True, False, False, True, True]  # ahead, behind, far right, near, wide but ahead
    assert boxes_in_view(np.array([[6.0, -1, 5]]), np.array([[6.5, 1, 6]]), cam).tolist() == [False]
    assert boxes_in_view(np.array([[6.0, -1, 5]]), np.array([[6.5, 1, 6]]), cam, margin_px=200).tolist() == [True]


@pytest.mark.parametrize("store", ["memory", "disk"])
def test_paging_out_and_in_keeps_every_gaussian_exactly(tmp_path, store):
    st = MemoryStore() if store == "memory" else DiskStore(tmp_path / "chunks")
    w = PagedWorld(WorldConfig(chunk_size=2.0, keep_radius=1.0, linger=1, min_px=0), 1.0, "cpu", store=st)
    scene = random_scene(4000)
    w.add(scene, 0)
    whole = rows_set(scene)
    cam = camera_at([0, 0, -40], [0, 0, -60])  # far away, looking away from almost everything
    w.prepare(cam, 5)
    assert w.paged_out > 0 and len(w.scene) < 0.2 * len(scene) and w.size == len(scene)
    np.testing.assert_array_equal(rows_set(w.full_scene()), whole)  # nothing lost
    w.add(random_scene(300, seed=1), 6)  # some land in paged-out chunks: those come back first
    whole = np.concatenate([whole, random_scene(300, seed=1).pack()])
    w.prepare(camera_at([0, 0, -200], [0, 0, 0]), 7)  # now looking at the whole world: it comes back in
    assert w.paged_in > 0
    np.testing.assert_array_equal(rows_set(w.scene), rows_set(w.full_scene()))  # all seen: all resident
    np.testing.assert_array_equal(rows_set(w.full_scene()), whole[np.lexsort(whole.T[::-1])])
    counts = np.bincount(w.slot.numpy(), minlength=w.chunks)
    np.testing.assert_array_equal(counts[w.resident], w.count[w.resident])  # the table counts what is there


def test_world_checkpoint_restores_the_working_set_in_order(tmp_path):
    w = PagedWorld(WorldConfig(chunk_size=2.0, keep_radius=1.0, linger=1, min_px=0), 1.0, "cpu", store=DiskStore(tmp_path / "c"))
    w.add(random_scene(3000), 0)
    w.prepare(camera_at([0, 0, -40], [0, 0, -60]), 3)
    w.add(random_scene(200, seed=3), 4)
    state = w.checkpoint()
    w.collect_garbage()
    at_ckpt, world_at_ckpt, slot = w.scene.pack(), rows_set(w.full_scene()), w.slot.clone()
    w.add(random_scene(500, seed=4), 5)  # changes after the checkpoint (files written, then "killed")
    w.prepare(camera_at([0, 0, -30], [0, 0, 0]), 9)
    w.prepare(camera_at([0, 0, 40], [0, 0, 60]), 20)
    w.store.flush()  # those files are on disk when the process dies (its chunk writer dies with it)

    back = PagedWorld(WorldConfig(chunk_size=2.0, keep_radius=1.0, linger=1, min_px=0), 1.0, "cpu", store=DiskStore(tmp_path / "c"))
    back.restore(state)
    np.testing.assert_array_equal(back.scene.pack(), at_ckpt)  # the working set, bit for bit and in order
    assert torch.equal(back.slot, slot)
    np.testing.assert_array_equal(rows_set(back.full_scene()), world_at_ckpt)
    referenced = {r.split(":")[0] for r in back.ref if r is not None}  # (FILE:START:STOP: a chunk of a shared file)
    assert {p.name for p in (tmp_path / "c").iterdir()} == referenced  # files made after it are gone


def test_chunk_files_are_written_off_the_flight_and_read_back_exactly(tmp_path, monkeypatch):
    """DiskStore writes on its own thread: `put` returns before the file exists, a chunk being written is
    read back from memory, `sync_files` waits for its files before making them durable, and the memory
    kept for chunks stays within the cache's size (plus what is being written)."""
    import time

    import worldgen.pipeline.chunkstore as cs

    slow = cs._write_rows

    def late(path, rows):
        time.sleep(0.01)
        slow(path, rows)

    monkeypatch.setattr(cs, "_write_rows", late)
    st = DiskStore(tmp_path / "c", cache_mb=0.05)
    rng = np.random.default_rng(0)
    rows = {}
    for k in range(20):
        r = rng.random((100, 14), dtype=np.float32)
        rows[st.put(k, r)] = r
    assert len(list((tmp_path / "c").iterdir())) < 20  # the puts did not wait for the disk (10 ms a file)
    for ref, r in rows.items():
        np.testing.assert_array_equal(st.read(ref), r)  # written or not yet
    st.sync_files(st.take_unsynced())  # waits for every file it names
    for ref, r in rows.items():
        np.testing.assert_array_equal(np.load(tmp_path / "c" / ref), r)
    st.flush()  # (the cache shrinks on the flight's thread: put, read, flush)
    assert st.bytes <= 0.05 * 2**20  # the cache keeps at most 0.05 MB once nothing is being written
    # a chunk given as a slice of a larger array is stored as a copy of its own (the cache must not keep the
    # larger array alive, and the caller may reuse it), and what `read` hands out cannot be changed
    big = rng.random((1000, 14), dtype=np.float32)
    ref = st.put(99, big[10:20])
    big[10:20] = -1.0
    got = st.read(ref)
    assert got.base is None and (got >= 0).all() and not got.flags.writeable
    # chunks that leave together go to one file; each reads back exactly, from memory and from the file alone
    parts = [(k, rng.random((n, 14), dtype=np.float32)) for k, n in ((5, 3), (6, 0), (7, 40))]
    refs = st.put_many(parts)
    assert len({r.split(":")[0] for r in refs}) == 1 and len(refs) == 3
    assert not (tmp_path / "c" / refs[0].split(":")[0]).exists()  # (the writer is slow) ...
    for r, (_, rows_k) in zip(refs, parts):  # ... so these come from memory, kept while their file is written
        np.testing.assert_array_equal(st.read(r), rows_k)
        assert st.read(r).base is None  # a copy of its own: the cache does not keep the whole file's rows
    st.retain(set(refs))  # the file its chunks are in stays, and is still to be made durable
    assert tmp_path / "c" / refs[0].split(":")[0] in st.take_unsynced()
    st.close()
    fresh = DiskStore(tmp_path / "c")  # (nothing in its memory)
    for r, (_, rows_k) in zip(refs, parts):
        np.testing.assert_array_equal(fresh.read(r), rows_k)
    with pytest.raises(ValueError, match="rows"):
        fresh.read(refs[2].rsplit(":", 1)[0] + ":999")
    fresh.close()


def test_a_failed_chunk_write_is_raised_not_lost(tmp_path, monkeypatch):
    import worldgen.pipeline.chunkstore as cs

    def full(path, rows):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cs, "_write_rows", full)
    st = DiskStore(tmp_path / "c")
    ref = st.put(1, np.zeros((4, 14), np.float32))
    with pytest.raises(OSError, match="writing a chunk file .* failed: .*No space left"):
        st.flush()
    with pytest.raises(OSError, match="No space left"):
        st.put(2, np.zeros((4, 14), np.float32))
    with pytest.raises(OSError, match="No space left"):
        st.sync_files([tmp_path / "c" / ref])  # a checkpoint naming it fails too

    def part_then_full(f, rows):  # the real writer, on a disk that fills after part of the file
        f.write(b"\x93NUMPY\x01\x00")
        raise OSError(28, "No space left on device")

    monkeypatch.undo()
    monkeypatch.setattr(np, "save", part_then_full)
    st = DiskStore(tmp_path / "d")
    st.put(1, np.zeros((4, 14), np.float32))
    with pytest.raises(OSError, match="No space left"):
        st.flush()
    assert not any((tmp_path / "d").iterdir())  # nothing cut short under a chunk file's name


def test_a_deferred_checkpoint_keeps_files_made_after_it(tmp_path):
    """The checkpoint writer thread commits a checkpoint while the flight goes on: its garbage
    collection (`retain(refs, upto=serial)`) deletes only files it no longer names *and* that existed
    when it was taken; `take_unsynced` hands the files to fsync over."""
    st = DiskStore(tmp_path / "c")
    w = PagedWorld(WorldConfig(chunk_size=2.0, keep_radius=1.0, linger=1, min_px=0), 1.0, "cpu", store=st)
    w.add(random_scene(3000), 0)
    w.prepare(camera_at([0, 0, -40], [0, 0, -60]), 3)  # pages most chunks out: files
    w.checkpoint(durable=False)
    unsynced = st.take_unsynced()
    assert unsynced and st.take_unsynced() == []
    refs, serial = {r.split(":")[0] for r in w.ref if r is not None}, st.serial  # the files the chunks are in
    assert len(refs) == 1  # (the chunks that left together went to one file)
    stale = tmp_path / "c" / f"{0:016x}-{1:08d}.npy"
    if stale.name in refs:  # make sure one old file is unnamed
        stale = tmp_path / "c" / f"{0:016x}-{0:08d}.npy"
    stale.write_bytes(b"")
    w.add(random_scene(500, seed=4), 5)  # the flight goes on: new chunk files
    w.prepare(camera_at([0, 0, 40], [0, 0, 60]), 20)
    st.flush()  # (chunk files are written on the store's own thread)
    newer = {p.name for p in (tmp_path / "c").iterdir() if int(p.name[17:25]) > serial}
    assert newer
    st.sync_files(unsynced)
    st.retain(refs, upto=serial)
    left = {p.name for p in (tmp_path / "c").iterdir()}
    assert refs <= left and newer <= left and stale.name not in left
    assert left == refs | newer


def _fly(frame0, scale, config, kind, frames, speed, retrace, watch=None):
    gen = make_generator("persistent", frame0, get_renderer("cpu"), make_refiner("classical"), config)
    path = make_path(kind, frame0.camera, scale, frames, speed=speed, retrace=retrace)
    out = []
    with torch.no_grad():
        for step in Flight(gen, path, frames):
            out.append(step.frame.rgb.clone())
            if watch:
                watch(step.t, gen)
    return out, gen


def test_paged_flight_renders_as_the_whole_world_and_closes_its_loop_after_paging_the_start_out():
    frame0 = first_frame(EXAMPLE, EXAMPLE_PHOTO, "64x48", torch.device("cpu"))
    scale = scene_scale(frame0)
    T, turn = 41, 20
    paged_cfg = GeneratorConfig(world=WorldConfig(chunk_size=0.5, keep_radius=0.25, linger=2))
    seen = {}

    def watch(t, gen):
        w = gen.world
        if t == 0:
            seen["start_chunks"] = np.arange(w.chunks)  # the chunks of frame 0's Gaussians
        if t == turn:  # the far end: how much of the start region is out of the working set?
            rows = seen["start_chunks"]
            seen["start_out"] = int(w.count[rows][~w.resident[rows]].sum()) / int(w.count[rows].sum())
        seen["max_resident"] = max(seen.get("max_resident", 0), len(gen.scene))

    paged, gen = _fly(frame0, scale, paged_cfg, "forward", T, 0.1, True, watch)
    whole, whole_gen = _fly(frame0, scale, GeneratorConfig(world=WorldConfig(paging=False)), "forward", T, 0.1, True)
    assert seen["start_out"] > 0.25, seen  # a good part of the start region had left the working set
    assert gen.world.paged_out > 0 and gen.world.paged_in > 0
    assert gen.world.size == whole_gen.world.size  # the same world, not one re-lifted where chunks were away
    assert min(psnr(a, b) for a, b in zip(paged, whole)) > 60.0  # paging does not change the frames
    assert psnr(paged[-1], paged[0]) >= 30.0  # loop closure, coming back to the paged-out start
    assert psnr(paged[-1], paged[0]) == pytest.approx(psnr(whole[-1], whole[0]), abs=0.5)


def test_under_autograd_chunks_come_in_but_none_leaves():
    w = PagedWorld(WorldConfig(chunk_size=2.0, keep_radius=1.0, linger=1, min_px=0), 1.0, "cpu")
    w.add(random_scene(2000), 0)
    w.prepare(camera_at([0, 0, -40], [0, 0, -60]), 3)
    out_before = w.paged_out
    assert out_before > 0
    g = random_scene(10, seed=5)
    g.colors.requires_grad_(True)
    w.add(g, 4)  # the working set now carries a graph (as in training's unrolls)
    w.prepare(camera_at([0, 0, -200], [0, 0, 0]), 9)  # everything in view: it all comes back
    assert w.paged_in > 0 and len(w.scene) == w.size
    w.prepare(camera_at([0, 0, -40], [0, 0, -60]), 20)  # nothing seen, but the graph keeps it all in
    assert w.paged_out == out_before and len(w.scene) == w.size
    w.scene.colors.sum().backward()
    assert g.colors.grad is not None and torch.equal(g.colors.grad, torch.ones(10, 3))


def _back_and_forth_moves(hysteresis: float, frames: int = 240) -> list[int]:
    """Chunk moves so far after each frame of a camera yawing +-2 degrees back and forth (a triangle
    wave, 40 frames a period) at a fixed spot, inside a cloud of chunks."""
    import math

    w = PagedWorld(WorldConfig(chunk_size=1.0, keep_radius=0.5, linger=4, min_px=0, hysteresis=hysteresis), 1.0, "cpu")
    w.add(random_scene(6000, spread=8.0, seed=7), 0)
    moves = []
    for t in range(1, frames + 1):
        phase = (t % 40) / 40
        yaw = math.radians(2.0) * (4 * phase - 1 if phase < 0.5 else 3 - 4 * phase)
        w.prepare(camera_at([0, 0, 0], [math.sin(yaw), 0, math.cos(yaw)]), t)
        moves.append(w.paged_in + w.paged_out)
    return moves


def test_chunks_near_the_view_boundary_do_not_flip_flop_on_back_and_forth_motion():
    moves = _back_and_forth_moves(1.5)
    assert moves[-1] - moves[80] == 0, moves[::20]  # after the first swings, nothing moves any more
    thrash = _back_and_forth_moves(1.0)  # without hysteresis the boundary's chunks go out and in each swing
    assert thrash[-1] - thrash[80] >= 20, thrash[::20]


def test_level_of_detail_leaves_out_far_chunks_of_tiny_gaussians_only():
    def one(position, log_scale: float, n: int = 50) -> GaussianScene:
        g = random_scene(n, spread=0.1, seed=11)
        g.means = g.means + torch.tensor(position)
        g.log_scales = torch.full((n, 3), log_scale)
        return g

    cam = camera_at([0, 0, 0], [0, 0, 1])  # fx = 55.4 px
    for min_px, expect in ((0.5, [False, True, True]), (0.0, [True, True, True])):
        w = PagedWorld(WorldConfig(chunk_size=1.0, keep_radius=1.0, linger=1, min_px=min_px), 1.0, "cpu")
        # 40 units ahead: reach 3.33 * exp(-5) = 0.022 (0.03 px), 3.33 * exp(-1) = 1.2 (1.7 px); 0.5 ahead: near
        w.add(one([0.5, 0.5, 40.5], -5.0), 0)
        w.add(one([0.5, 0.5, 40.5], -1.0), 0)
        w.add(one([0.5, 0.5, 0.5], -5.0), 0)
        assert w.chunks == 3  # one cell, but Gaussians of different sizes are chunks of their own
        w.prepare(camera_at([0, 0, 0], [0, 0, -1]), 2)  # looking away: all but the near one leave
        assert w.resident.tolist() == [False, False, True]
        w.prepare(cam, 3)
        assert w.resident.tolist() == expect, min_px
    assert w.size == 150 and len(w.full_scene()) == 150


@pytest.mark.parametrize("min_px", [0.5, 0.0])
def test_grouped_visibility_is_exactly_the_per_chunk_test(tmp_path, min_px):
    """A large world is tested group by group (cubes of 8 x 8 x 8 cells) before chunk by chunk: the chunks it
    calls needed must be exactly those the per-chunk test calls needed, from anywhere and looking anywhere,
    also after the world grows and after a checkpoint is restored."""
    from worldgen.pipeline import world as world_mod

    g = torch.Generator().manual_seed(5)

    def scatter(n: int, seed: int) -> GaussianScene:
        sc = random_scene(n, spread=1.0, seed=seed)
        sc.means = torch.rand(n, 3, generator=g) * torch.tensor([300.0, 20.0, 300.0]) - torch.tensor([150.0, 10.0, 0.0])
        sc.log_scales = torch.rand(n, 1, generator=g).expand(n, 3) * 8 - 7  # reach 0.003 .. 9 units: many levels
        return sc

    cfg = WorldConfig(chunk_size=2.0, keep_radius=3.0, linger=4, min_px=min_px)
    w = PagedWorld(cfg, 1.0, "cpu", store=DiskStore(tmp_path / "c"))
    w.add(scatter(20000, 1), 0)
    assert w.chunks >= world_mod._GROUPED_FROM  # grouped from here on
    rng = np.random.default_rng(0)

    def cameras(k: int):
        for _ in range(k):
            pos = rng.uniform([-160, -15, -20], [160, 15, 320])
            yield camera_at(pos.tolist(), (pos + rng.normal(size=3) * 10).tolist())

    def check(world: PagedWorld) -> None:
        partial = 0  # cameras that need some chunks but not all (the cases that tell)
        for cam in cameras(12):
            for wide in (False, True):
                h = world.config.hysteresis if wide else 1.0
                brute = world._needed(np.arange(world.chunks), cam, h)
                assert np.array_equal(world.needed(cam, wide=wide), brute)
                partial += bool(brute.any() and not brute.all())
        assert partial >= 6

    check(w)
    for t, cam in enumerate(cameras(6), start=1):  # paging moves chunks, boxes grow, new chunks and groups
        w.prepare(cam, t)
        w.add(scatter(500, 10 + t), t)
    check(w)
    state = w.checkpoint()
    back = PagedWorld(cfg, 1.0, "cpu", store=DiskStore(tmp_path / "c"))
    back.restore(state)
    assert np.array_equal(back.group >= 0, np.ones(back.chunks, bool))
    check(back)


def _flown_strip(length: float, seed: int = 0) -> GaussianScene:
    """Ground flown over (y = 0.3 below the camera's height 0, x in [-1, 1], z in [0, length]) as the
    generator leaves it: every region lifted coarse when first seen from afar and finer as the camera
    came closer, a level per distance d in 0.5, 2, 8, 32 (reach 0.29 d: 1.5 px of a 6-px-wide
    camera, fx 5.2), each level tiling the ground at its own spacing (its reach)."""
    g = torch.Generator().manual_seed(seed)
    parts = []
    for d in (0.5, 2.0, 8.0, 32.0):
        reach = 0.29 * d
        n = max(1, round(2 * length / reach**2))
        means = torch.stack([torch.rand(n, generator=g) * 2 - 1, torch.full((n,), 0.3),
                             torch.rand(n, generator=g) * length], 1)
        parts.append(GaussianScene(means, torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                                   torch.full((n, 3), float(np.log(reach / 3.33))), torch.zeros(n), torch.rand(n, 3, generator=g)))
    out = GaussianScene.empty()
    for p in parts:
        out.append(p)
    return out


def test_turning_back_over_flown_ground_brings_in_a_bounded_working_set():
    """Issue 12: after a long flight the camera turns back over the ground it flew; a frustum has no far
    plane, so without the level-of-detail test the whole flown strip in view came back in."""
    resident = {}
    for min_px in (0.5, 0.0):
        for length in (100.0, 200.0):
            w = PagedWorld(WorldConfig(chunk_size=1.0, keep_radius=1.0, linger=1, min_px=min_px), 1.0, "cpu")
            w.add(_flown_strip(length), 0)
            w.prepare(Camera.from_fov(60, 6, 4, look_at(torch.tensor([0.0, 0, length + 1], dtype=torch.float64),
                                                         torch.tensor([0.0, 0.3, 0], dtype=torch.float64)).float()), 5)
            resident[min_px, length] = len(w.scene)
            assert w.size == len(_flown_strip(length)) and len(w.full_scene()) == w.size
    assert resident[0.0, 200.0] > 1.8 * resident[0.0, 100.0] > 0.5 * w.size, resident  # grows with the flight
    assert resident[0.5, 200.0] < 1.2 * resident[0.5, 100.0], resident  # does not
    assert resident[0.5, 200.0] < 0.1 * resident[0.0, 200.0], resident


def test_a_working_set_budget_keeps_the_most_visible_chunks_and_loses_nothing():
    """`max_resident`: however much of a flown strip is in view, the working set holds at most the budget
    (the near, finely lifted chunks first), and the whole world is still there to come back."""
    strip = _flown_strip(200.0)
    cam = Camera.from_fov(60, 6, 4, look_at(torch.tensor([0.0, 0, 201], dtype=torch.float64),
                                             torch.tensor([0.0, 0.3, 0], dtype=torch.float64)).float())
    free = PagedWorld(WorldConfig(chunk_size=1.0, keep_radius=1.0, linger=1, min_px=0), 1.0, "cpu")
    free.add(strip, 0)
    free.prepare(cam, 5)
    budget = len(free.scene) // 4
    w = PagedWorld(WorldConfig(chunk_size=1.0, keep_radius=1.0, linger=1, min_px=0, max_resident=budget), 1.0, "cpu")
    w.add(strip, 0)
    w.prepare(cam, 5)
    assert 0 < len(w.scene) <= budget, (len(w.scene), budget)
    near = w.scene.means[:, 2] > 190  # the ground within 11 units of the camera stays whole
    assert int(near.sum()) == int((strip.means[:, 2] > 190).sum())
    assert w.size == len(strip) and len(w.full_scene()) == len(strip)  # nothing lost, only paged out
    with pytest.raises(Exception, match="max_resident"):
        WorldConfig(max_resident=-1).validate()


def test_under_the_budget_chunks_leave_in_batches_and_over_it_at_once():
    """`max_resident`: while the working set fits the budget, chunks the camera no longer needs leave with the
    trim every `linger` frames (one page-out per batch: each costs a read from the device on the GPU), not
    the frame they leave the view; over the budget they leave at once."""
    scene = random_scene(4000)
    away = camera_at([0, 0, -40], [0, 0, -60])  # far away, looking away from almost everything
    for budget, first_out in ((10**6, 8), (1000, 1)):
        w = PagedWorld(WorldConfig(chunk_size=2.0, keep_radius=1.0, linger=8, min_px=0, max_resident=budget), 1.0, "cpu")
        w.add(scene, 0)
        outs = []
        for t in range(1, 10):
            w.prepare(away, t)
            outs.append(w.paged_out)
        first = next(o for o in outs if o > 0)
        assert outs.index(first) + 1 == first_out and outs[-1] == first, (budget, outs)  # one batch, at that frame
        assert len(w.scene) < 0.2 * len(scene) and len(w.full_scene()) == len(scene)  # nothing lost
        counts = np.bincount(w.slot.numpy(), minlength=w.chunks)
        np.testing.assert_array_equal(counts[w.resident], w.count[w.resident])


def test_a_budget_below_what_the_view_needs_does_not_make_the_world_run_away(tmp_path):
    """With a working-set budget below what the view holds, the chunks left out draw as holes; the lift must
    not fill them (`PagedWorld.left_out`), or every left-out chunk is lifted again, paged back in by its new
    Gaussians and the world runs away (before: 3,000 against ~10,000 needed grew the bundled example's
    300-frame autopilot world to 798 k Gaussians instead of 20 k, the working set to 170 k)."""
    from dataclasses import replace

    from tests.flights import EXAMPLE
    from worldgen.commands.fly import FlyConfig, run
    from worldgen.pipeline.config import PhotoConfig, PipelineConfig

    def fly(budget: int) -> tuple[int, int]:
        pipeline = PipelineConfig(size="96x64", device="cpu")
        world = replace(pipeline.generator.world, max_resident=budget)
        pipeline = replace(pipeline, generator=replace(pipeline.generator, world=world))
        peak = [0]

        def on_frame(t, frame, gen):
            if t >= 2:  # frame 0 lifts the whole photo before any budget applies
                peak[0] = max(peak[0], len(gen.scene))

        info = run(FlyConfig(image=str(EXAMPLE / "example.png"), pipeline=pipeline, path="autopilot", frames=120,
                             photo=PhotoConfig(depth=str(EXAMPLE / "example_depth.npy"), camera=str(EXAMPLE / "example.json")),
                             out=str(tmp_path / f"b{budget}"), video=False, progress=False), on_frame=on_frame)
        return info["gaussians"], peak[0]

    free_world, free_peak = fly(0)
    world, peak = fly(3000)
    assert free_peak > 2 * 3000, free_peak  # the view needs more than the budget
    assert world <= free_world, (world, free_world)
    assert peak <= 3000 + 1500, peak  # the budget, plus what one frame lifts before the next prepare


def test_to_host_copies_every_tensor_in_one_go():
    """`to_host`: detached CPU tensors, shapes and dtypes kept (on CUDA: one wait for the device in all)."""
    from worldgen.core.device import to_host

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.arange(6, dtype=torch.int64, device=dev).reshape(2, 3) + (1 << 60)  # keys float64 would round
    b = torch.linspace(0, 1, 5, device=dev, requires_grad=True)
    ha, hb = to_host(a, b)
    assert ha.device.type == hb.device.type == "cpu" and not hb.requires_grad
    assert ha.dtype == torch.int64 and ha.tolist() == a.cpu().tolist() and torch.equal(hb, b.detach().cpu())


def test_left_out_covers_the_screen_rectangle_of_each_left_out_chunk():
    """`PagedWorld.left_out`: a chunk in front covers its projected box; one reaching behind the camera covers
    at least the part in front (its far side out to the frame's edge); one with the camera inside covers the
    whole frame; one wholly behind, nothing."""
    def world_with(*boxes):
        w = PagedWorld(WorldConfig(chunk_size=100.0, max_resident=1), 1.0, "cpu")
        for lo, hi in boxes:
            pts = torch.tensor([lo, hi], dtype=torch.float32) + 50  # inside one chunk: cell [0, 100)^3
            w.add(GaussianScene(pts, torch.tensor([[1.0, 0, 0, 0]]).repeat(2, 1), torch.full((2, 3), -20.0),
                                torch.zeros(2), torch.zeros(2, 3)), 0)
        return w

    pose = torch.eye(4)
    pose[:3, 3] = 50.0
    cam = Camera.from_fov(90.0, 40, 30, pose)  # at (50, 50, 50), looking along +z; fx = 20, centre (20, 15)
    for box, want in [
        (([-1.0, -1.0, 10.0], [1.0, 1.0, 10.5]), (slice(13, 17), slice(18, 22))),  # |x|, |y| <= 1 at z >= 10
        (([2.0, -1.0, -5.0], [3.0, 1.0, 4.0]), (slice(0, 30), slice(30, 40))),  # from x / z = 2 / 4 (u = 30) to the right edge
        (([-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]), (slice(0, 30), slice(0, 40))),  # the camera inside
    ]:
        w = world_with(box)
        w._left_out = np.arange(w.chunks)  # as `prepare` leaves it for a budget (white box: any rows will do)
        m = w.left_out(cam)
        assert m is not None and bool(m[want].all()), (box, m.int())
        near = torch.zeros_like(m)  # what it covers beyond: at most a pixel (rounded outwards)
        near[max(0, want[0].start - 1):want[0].stop + 1, max(0, want[1].start - 1):want[1].stop + 1] = True
        assert not bool((m & ~near).any()), (box, m.int())
    w = world_with(([-1.0, -1.0, -9.0], [1.0, 1.0, -2.0]))
    w._left_out = np.arange(w.chunks)
    assert w.left_out(cam) is None
