"""The generator's world: every Gaussian it keeps, and the working set the renderer sees.

`World` keeps every Gaussian in the working set (the per-frame baseline's world, rebuilt each step).
`PagedWorld` (the persistent generator's) cuts space into chunks and keeps only the chunks the
camera may see in the working set (`scene`, on the generator's device); the others are paged out to
a chunk store (`worldgen.pipeline.chunkstore`: host memory, or files in a run folder) and paged back
in as soon as the camera could see them again. A chunk is a cube of space *and a size level*: the
Gaussians whose centres lie in the cube and whose reach (3.33 of their largest standard deviations,
the renderer's own cut-off) lies within a factor of 2 (floor(log2(reach / chunk edge))). Then

    needed(chunk) = its box (Gaussian centres grown by their reach) lies within `keep_radius` of the
                    camera, or [it meets the view frustum (grown by `view_margin_px` and 30 % of the
                    field of view, as the renderers' projection clamps) and its Gaussians reach at
                    least `min_px` pixels there: fx * reach / distance >= min_px].

The size test is the world's level of detail. A region is lifted coarse when first seen from afar and
gains finer Gaussians as the camera comes closer (the lift's detail test), so its coarse Gaussians
draw it from afar while the fine ones, sub-pixel there, stay out: the working set holds about as many
Gaussians per level as the view covers, not the whole flown ground in view (a frustum has no far
plane: without it, turning back over a long flight brought most of the world back in). With
`min_px` = 0 every chunk in view is drawn, and the image is that of the whole world (up to the order
of Gaussians at exactly equal depth).

Chunks are brought in before the render that needs them (in one batch per frame), and leave in
batches, every `linger` frames, once they have failed a wider criterion (`keep_radius` and the
frustum's margins times `hysteresis`, `min_px` divided by it) for `linger` frames: a chunk near the
boundary does not go out and back in with small back-and-forth camera motion. A chunk that receives
new Gaussians is brought in first. Coming back to a region shows it as it was (its chunks come back
exactly). While the working set carries an autograd graph (training's unrolls), chunks come in but
none leaves.

Lengths are in scene units: `unit` world units (`scene_unit(frame0)`, the lower quartile of frame 0's
non-sky depth, the unit of camera speeds, `worldgen.pipeline.sources.scene_scale`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from worldgen.core.camera import Camera
from worldgen.core.config import bad
from worldgen.core.device import to_device, to_host
from worldgen.core.frame import Frame
from worldgen.core.scene import GaussianScene

EXTENT_SIGMAS = 3.33
"""A Gaussian reaches no pixel beyond this many standard deviations (gsplat's and our renderer's cut-off)."""
NEAR = 0.01
"""The renderers' near plane (camera z)."""
FRUSTUM_MARGIN = 0.3
"""The renderers clamp projections 30 % of tan(fov / 2) outside the image; chunks that far out stay in."""
_CELL_LIMIT = 2**18  # chunk indices per axis are clamped to +-2^18 (keys pack three, 19 bits each, and a level)
_LEVELS, _LEVEL_BIAS = 32, 24  # size levels 0..31: a Gaussian's reach in [cell * 2^(level - 24), twice that)
_GROUP = 8  # chunks are grouped by cubes of 8 x 8 x 8 cells for the visibility test (`PagedWorld.needed`)
_GROUPED_FROM = 2048  # ... once the world has this many chunks (below, every chunk is tested: cheap)


@dataclass(frozen=True)
class WorldConfig:
    """How the persistent world keeps its working set bounded (worldgen/pipeline/world.py)."""

    paging: bool = True
    """Page chunks the camera cannot see out of the working set (to host memory; to the run folder's
    state/chunks/ in `worldgen fly`) and back when it can: the renderer sees only the working set (the
    frames are those of the whole world, but for the sub-pixel Gaussians a nonzero `min_px` leaves out)."""
    chunk_size: float = 1.0
    """Edge of a chunk's cube, in scene units (multiples of the photo's lower-quartile depth); a chunk
    holds the cube's Gaussians of one size level (reach within a factor of 2)."""
    keep_radius: float = 1.0
    """Chunks within this distance of the camera (scene units) stay in the working set, seen or not."""
    linger: int = 8
    """A chunk leaves after this many frames unseen; the working set is trimmed every this many frames."""
    view_margin_px: float = 8.0
    """Chunks this many pixels outside the image still count as seen."""
    min_px: float = 0.5
    """Level of detail: a chunk farther than `keep_radius` whose Gaussians reach less than this many
    pixels from their centres (fx * reach / distance) is not drawn; a region seen from afar is drawn
    by its coarser Gaussians (lifted when it was seen from afar). 0 draws every chunk in view, so the
    frames are those of the whole world. On by default since a 10,000-frame H200 soak and a CPU loop
    (BENCHMARKS.md, 2026-12-01): where the autopilot turned back over flown ground the working set
    peaked at 0.70 M Gaussians instead of 1.64 M and no tenth of the flight cost more than 26 ms per
    frame instead of 46, while the world grew the same (3.68 M against 3.67 M Gaussians: no holes
    that the lift then filled) and an out-and-back loop closed to the same PSNR (32.20 against 32.18
    dB). The risk it carries: a region only ever seen up close has no coarse Gaussians, so from
    afar it could draw as a hole that the refiner fills and the lift adds to the world."""
    hysteresis: float = 1.5
    """A resident chunk counts as seen (and stays) while it is within this factor of the bring-in
    criterion: keep_radius and the frustum's margins times it, min_px divided by it. Chunks near the
    boundary then do not flip in and out with small back-and-forth camera motion."""
    max_resident: int = 0
    """Budget of the working set, in Gaussians (0: none). Where the chunks the camera needs hold more, the
    least visible of them (smallest reach in pixels at their distance) are left out until the rest fit,
    and, while the resident and incoming chunks hold more than the budget, resident chunks not needed this
    frame leave at once instead of after `linger` frames (under it they leave with the trim, in batches:
    one page-out every `linger` frames instead of one nearly every frame), so GPU memory stays bounded
    whatever the flight (the renderer's and lift's own buffers aside). What is left
    out draws as holes that the refiner paints; the lift leaves their screen rectangles alone
    (`left_out`), so the world does not lift them again (before it did, and ran away: CPU, 96x64, 300
    frames, a budget of 3,000 against the ~10,000 the view needed grew the world to 798 k Gaussians
    instead of 20 k; now 10.7 k, the working set at most 3.8 k). Far chunks then look painted, not
    drawn: set it near what a flight needs (the 10,000-frame H200 soak with the learned refiner:
    1.2-3.0 M). One chunk is always kept, however large."""

    def validate(self) -> None:
        for name in ("chunk_size", "keep_radius", "view_margin_px", "min_px"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise bad(name, "must be a non-negative number", v)
        if not self.chunk_size > 0:
            raise bad("chunk_size", "must be positive", self.chunk_size)
        if not (math.isfinite(self.hysteresis) and self.hysteresis >= 1):
            raise bad("hysteresis", "must be a number >= 1", self.hysteresis)
        if self.linger < 1:
            raise bad("linger", "must be at least 1", self.linger)
        if self.max_resident < 0:
            raise bad("max_resident", "must be 0 (no budget) or a positive number of Gaussians", self.max_resident)


def scene_unit(frame: Frame) -> float:
    """World length of one scene unit: the lower quartile of `frame`'s non-sky depths (1.0 without any)."""
    d = frame.depth[~frame.sky & torch.isfinite(frame.depth)]
    return float(torch.quantile(d.float().cpu(), 0.25)) if d.numel() else 1.0


def _box_distance(lo: np.ndarray, hi: np.ndarray, camera: Camera) -> np.ndarray:
    """[R]: the distance from `camera` to each box lo, hi [R, 3] (0 inside), world units."""
    p = camera.host()[1][:3, 3]
    return np.linalg.norm(np.maximum(np.maximum(lo - p, p - hi), 0.0), axis=1)


def boxes_in_view(lo: np.ndarray, hi: np.ndarray, camera: Camera, margin_px: float = 0.0,
                  frac: float = FRUSTUM_MARGIN) -> np.ndarray:
    """bool [C]: which axis-aligned world boxes (corners lo, hi [C, 3]) may be seen by `camera`.

    Conservative: a box counts as unseen only if all 8 corners lie behind one plane of the view
    frustum (near plane at camera z = NEAR; the four sides through the image border moved out by
    `margin_px` pixels and by `frac` (FRUSTUM_MARGIN) of tan(fov / 2)). OpenCV camera axes, c2w pose.
    """
    if lo.shape[0] == 0:
        return np.zeros(0, bool)
    K, w2c = camera.host()[0], camera.host_w2c()
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    W, H = camera.width, camera.height
    mx, my = frac * 0.5 * W / fx, frac * 0.5 * H / fy
    left, right = (cx + margin_px) / fx + mx, (W - cx + margin_px) / fx + mx
    top, bottom = (cy + margin_px) / fy + my, (H - cy + margin_px) / fy + my
    # A box lies wholly behind a plane n.x + d < 0 iff its corner farthest along n does: centre c,
    # half-size e: n.c + |n|.e + d < 0 (the same test as all 8 corners, at a fraction of the cost).
    R, tr = w2c[:3, :3], w2c[:3, 3]
    planes = np.stack([R[2], R[0] + left * R[2], right * R[2] - R[0], R[1] + top * R[2], bottom * R[2] - R[1]], 1)
    offsets = np.array([tr[2] - NEAR, tr[0] + left * tr[2], right * tr[2] - tr[0], tr[1] + top * tr[2],
                        bottom * tr[2] - tr[1]])
    c, e = (lo + hi) * 0.5, (hi - lo) * 0.5
    reach = c @ planes + np.abs(e) @ np.abs(planes) + offsets  # [C, 5]: the farthest corner's side
    outside = (reach < 0).any(1)
    return ~outside


class World:
    """Every Gaussian in the working set (no paging). `scene` is what the renderer sees."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.scene = GaussianScene.empty(self.device)

    @property
    def size(self) -> int:
        """Gaussians in the whole world."""
        return len(self.scene)

    def add(self, gaussians: GaussianScene, t: int) -> None:
        """Append new Gaussians (lifted at frame t) to the working set, at its end."""
        self.scene.append(gaussians)

    def prepare(self, camera: Camera, t: int) -> None:
        """Make the working set hold everything `camera` (frame t's) may see."""

    def left_out(self, camera: Camera) -> Tensor | None:
        """[H, W] bool on the world's device: pixels of `camera`'s view where the world holds Gaussians that the
        working set leaves out (a budget), so the view shows a hole there that is not one; None: nowhere."""
        return None

    def reset(self) -> None:
        self.scene = GaussianScene.empty(self.device)

    def parts(self):
        """The whole world, part after part (GaussianScenes; the working set first)."""
        yield self.scene

    def full_scene(self) -> GaussianScene:
        """The whole world as one new scene (working set first, on its device)."""
        return self.scene.subset(torch.arange(len(self.scene), device=self.device))

    def stats(self) -> dict:
        return {"gaussians": self.size, "gaussians_resident": len(self.scene)}

    def checkpoint(self, durable: bool = True) -> dict:
        """The world as checkpoint data (numpy and plain values; `durable` matters to a PagedWorld only)."""
        return {"kind": "all", "rows": self.scene.pack()}

    def restore(self, state: dict) -> None:
        """Undo to a `checkpoint()`."""
        if state.get("kind") != "all":
            raise ValueError(f"checkpoint holds a {state.get('kind')!r} world, this generator keeps 'all'")
        self.scene = GaussianScene.unpack(state["rows"], self.device)


class PagedWorld(World):
    """A world cut into chunks, only those the camera may see in the working set (module docstring).

    Args:
        config: WorldConfig.
        unit: world length of one scene unit.
        device: the working set's device.
        store: where paged-out chunks go (`chunkstore.MemoryStore()` by default).
    """

    _FIELDS = ("key", "lo", "hi", "ext", "count", "resident", "seen", "dirty")

    def __init__(self, config: WorldConfig, unit: float, device: torch.device | str, store=None):
        super().__init__(device)
        from worldgen.pipeline.chunkstore import MemoryStore

        self.config, self.unit = config, float(unit)
        self.cell = config.chunk_size * self.unit
        self.store = store if store is not None else MemoryStore()
        self.slot = torch.zeros(0, dtype=torch.int64, device=self.device)  # [N] chunk of each resident Gaussian
        self._index: dict[int, int] = {}  # chunk key -> row of the table
        self.key = np.zeros(0, np.int64)
        self.lo = np.zeros((0, 3))
        self.hi = np.zeros((0, 3))
        self.ext = np.zeros(0)
        self.count = np.zeros(0, np.int64)
        self.resident = np.zeros(0, bool)
        self.seen = np.zeros(0, np.int64)  # last frame the chunk was needed
        self.dirty = np.zeros(0, bool)  # resident and holding rows its stored copy lacks
        self.ref: list[str | None] = []  # the store's copy of the chunk (None: none)
        self._reset_groups()
        self.total = 0
        self.key_format = 2  # chunk keys: cell and size level (1: cell only, checkpoints made before levels)
        self._shifts: dict[tuple, Tensor] = {}  # the key fields' multipliers, per format and device
        self._last_trim = 0
        self.paged_in = self.paged_out = 0  # chunk moves so far
        self._left_out = np.zeros(0, np.int64)  # chunks the last prepare left out for the budget

    # ------------------------------------------------------------------ sizes
    @property
    def size(self) -> int:
        return self.total

    @property
    def chunks(self) -> int:
        return int(self.key.shape[0])

    def stats(self) -> dict:
        return {"gaussians": self.total, "gaussians_resident": len(self.scene), "chunks": self.chunks,
                "chunks_resident": int(self.resident.sum()), "chunks_paged_in": self.paged_in,
                "chunks_paged_out": self.paged_out, "store_host_mb": round(self.store.bytes / 2**20, 1)}

    # ------------------------------------------------------------------ chunk table
    def _keys(self, means: Tensor, reach: Tensor) -> Tensor:
        """[N] int64 chunk key of each Gaussian (centres `means` [N, 3] and reaches `reach` [N], float64): its
        centre's cell (three clamped indices, 19 bits each) and its size level (5 bits: floor(log2(reach / cell))
        + 24, clamped to 0..31), so that a chunk holds Gaussians of one size within a factor of 2 and the
        level-of-detail test suits all of them. (The fields do not overlap: a sum of shifted fields is their OR.)"""
        means = torch.nan_to_num(means, 0.0, 1e300, -1e300)
        limit, fields = (2**20, (42, 21, 0)) if self.key_format == 1 else (_CELL_LIMIT, (43, 24, 5))
        shifts = self._shifts.get((fields, means.device))
        if shifts is None:
            shifts = self._shifts[(fields, means.device)] = torch.tensor([2**f for f in fields], dtype=torch.int64,
                                                                          device=means.device)
        idx = torch.floor(means / self.cell).clamp(-limit, limit - 1).long() + limit
        keys = (idx * shifts).sum(1)
        if self.key_format == 1:  # a world restored from a checkpoint made before size levels
            return keys
        level = torch.nan_to_num(torch.floor(torch.log2(reach / self.cell)), 0.0, 1e9, -1e9) + _LEVEL_BIAS
        return keys + level.clamp(0, _LEVELS - 1).long()

    def _grow(self, keys: np.ndarray) -> np.ndarray:
        """Table rows of chunk `keys` [U], new (empty, resident) rows for keys not seen before."""
        new = [k for k in keys.tolist() if k not in self._index]
        if new:
            n0, m = self.chunks, len(new)
            for i, k in enumerate(new):
                self._index[k] = n0 + i
            # the table's arrays are views of buffers that grow by doubling: appending rows every frame
            # would otherwise copy the whole table every frame (tens of thousands of rows in long flights)
            for f, fill in (("key", 0), ("lo", np.inf), ("hi", -np.inf), ("ext", 0.0), ("count", 0),
                            ("resident", True), ("seen", 0), ("dirty", False), ("group", -1)):
                old = getattr(self, f)
                buf = old.base if old.base is not None and old.base.shape[0] >= n0 + m else None
                if buf is None:
                    buf = np.empty((max(2 * (n0 + m), 64),) + old.shape[1:], old.dtype)
                    buf[:n0] = old
                buf[n0:n0 + m] = fill
                setattr(self, f, buf[:n0 + m])
            self.key[n0:] = new
            self.ref.extend([None] * m)
        return np.array([self._index[k] for k in keys.tolist()], np.int64)

    def needed(self, camera: Camera, wide: bool = False) -> np.ndarray:
        """bool [chunks]: the chunks within keep_radius of `camera`, or in its view and not below min_px
        (`wide`: the criterion a resident chunk must fail before it leaves, grown by `hysteresis`).

        Cost: chunks are grouped by cubes of `_GROUP` cells, each group with the union of its chunks' boxes
        and their largest reach; a group that fails the same test (a conservative one for all its chunks:
        nearer, larger and wider than any of them) rules its chunks out untested, so a long flight's
        world behind the camera costs one test per group instead of one per chunk (a 3,000-frame H200 soak
        with the learned refiner had 47,000 chunks: testing them all took ~13 ms per frame and growing)."""
        h = self.config.hysteresis if wide else 1.0
        n = self.chunks
        if n < _GROUPED_FROM:
            return self._needed(np.arange(n), camera, h)
        need = np.zeros(n, bool)
        groups = self._test(self.g_lo, self.g_hi, self.g_ext, camera, h)
        rows = np.nonzero(groups[self.group])[0]
        need[rows] = self._needed(rows, camera, h)
        return need

    # the groups of chunks (derived from the table: never saved, rebuilt on restore)
    def _reset_groups(self) -> None:
        self.group = np.zeros(0, np.int64)  # [chunks] group row of each chunk (-1: not placed yet)
        self._group_index: dict[tuple[int, int, int], int] = {}
        self.g_lo = np.zeros((0, 3))  # [G, 3] union of the members' boxes grown by their reach
        self.g_hi = np.zeros((0, 3))
        self.g_ext = np.zeros(0)  # [G] largest reach of a member

    def _place(self, rows: np.ndarray) -> None:
        """Put chunk rows (their `lo` set) into groups by the cube of _GROUP cells holding their lowest centre."""
        cube = np.floor(np.nan_to_num(self.lo[rows], nan=0.0, posinf=0.0, neginf=0.0) / (self.cell * _GROUP))
        cube = np.clip(cube, -2.0**40, 2.0**40).astype(np.int64)
        new = 0
        for i, c in zip(rows.tolist(), map(tuple, cube.tolist())):
            g = self._group_index.get(c)
            if g is None:
                g = self._group_index[c] = len(self._group_index)
                new += 1
            self.group[i] = g
        if new:
            self.g_lo = np.concatenate([self.g_lo, np.full((new, 3), np.inf)])
            self.g_hi = np.concatenate([self.g_hi, np.full((new, 3), -np.inf)])
            self.g_ext = np.concatenate([self.g_ext, np.zeros(new)])

    def _widen_groups(self, rows: np.ndarray) -> None:
        """Grow the groups of chunk rows to hold their (grown) boxes and reach."""
        g, e = self.group[rows], self.ext[rows]
        np.minimum.at(self.g_lo, g, self.lo[rows] - e[:, None])
        np.maximum.at(self.g_hi, g, self.hi[rows] + e[:, None])
        np.maximum.at(self.g_ext, g, e)

    def _rebuild_groups(self) -> None:
        self._reset_groups()
        self.group = np.full(self.chunks, -1, np.int64)
        rows = np.arange(self.chunks)
        self._place(rows)
        self._widen_groups(rows)

    def _boxes(self, rows: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lo [R, 3], hi [R, 3], dist [R]): chunk rows' boxes grown by their Gaussians' reach, and the
        camera's distance to each box (0 inside), world units."""
        grow = self.ext[rows, None]
        lo, hi = self.lo[rows] - grow, self.hi[rows] + grow
        return lo, hi, _box_distance(lo, hi, camera)

    def _within_budget(self, rows: np.ndarray, camera: Camera, budget: int) -> np.ndarray:
        """The chunk rows of `rows` kept under a budget of `budget` Gaussians: the most visible first (reach
        in pixels at the camera's distance; chunks around the camera count as infinitely visible), at
        least one; sorted."""
        if int(self.count[rows].sum()) <= budget:
            return rows
        _, _, dist = self._boxes(rows, camera)
        px = camera.fx * self.ext[rows] / np.maximum(dist, 1e-12)
        order = np.argsort(-px, kind="stable")
        n = max(1, int(np.searchsorted(np.cumsum(self.count[rows[order]]), budget, side="right")))
        return np.sort(rows[order[:n]])

    def _needed(self, rows: np.ndarray, camera: Camera, h: float) -> np.ndarray:
        """bool [len(rows)]: `needed` for table rows `rows`, with the criterion grown by factor h."""
        grow = self.ext[rows, None]
        return self._test(self.lo[rows] - grow, self.hi[rows] + grow, self.ext[rows], camera, h)

    def _test(self, lo: np.ndarray, hi: np.ndarray, ext: np.ndarray, camera: Camera, h: float) -> np.ndarray:
        """bool [R]: the `needed` criterion (factor h) for boxes lo, hi [R, 3] (already grown by the reach)
        holding Gaussians that reach at most ext [R]."""
        cfg = self.config
        dist = _box_distance(lo, hi, camera)
        need = dist <= cfg.keep_radius * self.unit * h
        test = ~need
        if cfg.min_px > 0:  # level of detail: Gaussians that would reach under min_px pixels are not drawn
            fx = camera.fx
            test &= fx * ext >= (cfg.min_px / h) * dist
        far = np.nonzero(test)[0]  # the frustum test only for what distance and size leave in question
        if far.size:
            need[far] = boxes_in_view(lo[far], hi[far], camera, cfg.view_margin_px * h, FRUSTUM_MARGIN * h)
        return need

    # ------------------------------------------------------------------ the working set
    def _graph(self) -> bool:
        s = self.scene
        return s.means.requires_grad or s.colors.requires_grad or s.means.grad_fn is not None or s.colors.grad_fn is not None

    def add(self, gaussians: GaussianScene, t: int) -> None:
        n = len(gaussians)
        if n == 0:
            return
        m = gaussians.means.detach().double()
        reach = EXTENT_SIGMAS * gaussians.log_scales.detach().double().amax(1).exp()
        uniq, inv, cnt = torch.unique(self._keys(m, reach), return_inverse=True, return_counts=True)
        U = uniq.shape[0]
        # per chunk in one reduction: -lo, hi and the largest reach (every chunk has a member: no -inf is left)
        v = torch.cat([-m, m, reach[:, None]], 1)  # [N, 7]
        mx = torch.full((U, 7), -math.inf, dtype=torch.float64, device=m.device).scatter_reduce(
            0, inv[:, None].expand(-1, 7), v, "amax")
        table, uniq_h = to_host(torch.cat([mx, cnt[:, None].double()], 1), uniq)  # [U, 8], [U]: one wait
        table = table.numpy()
        table[:, 0:3] *= -1  # lo
        rows = self._grow(uniq_h.numpy())
        away = rows[~self.resident[rows]]
        if away.size:  # new Gaussians in a paged-out chunk: bring it in first
            self._page_in(away)
        self.lo[rows] = np.minimum(self.lo[rows], table[:, 0:3])
        self.hi[rows] = np.maximum(self.hi[rows], table[:, 3:6])
        self.ext[rows] = np.maximum(self.ext[rows], table[:, 6])
        placed = rows[self.group[rows] < 0]
        if placed.size:
            self._place(placed)
        self._widen_groups(rows)
        self.count[rows] += table[:, 7].astype(np.int64)
        self.dirty[rows] = True
        self.seen[rows] = t
        self.scene.append(gaussians)
        self.slot = torch.cat([self.slot, to_device(rows, self.device)[inv]])
        self.total += n

    def prepare(self, camera: Camera, t: int) -> None:
        if not self.config.paging or self.chunks == 0:
            return
        h, budget = self.config.hysteresis, self.config.max_resident
        keep = np.nonzero(self.needed(camera, wide=True))[0]  # (contains the bring-in criterion's chunks)
        away = keep[~self.resident[keep]]
        bring = away[self._needed(away, camera, 1.0)] if h > 1 else away
        self._left_out = np.zeros(0, np.int64)
        if budget:  # the most visible chunks that fit; the rest of the working set leaves first
            wanted = np.union1d(keep[self.resident[keep]], bring)
            keep = self._within_budget(wanted, camera, budget)
            self._left_out = np.setdiff1d(wanted, keep)
            bring = keep[~self.resident[keep]]
            over = int(self.count[self.resident].sum()) + int(self.count[bring].sum()) > budget
            if over and not self._graph():  # (under the budget, chunks not needed leave with the next trim)
                kept = np.zeros(self.chunks, bool)
                kept[keep] = True
                out = np.nonzero(self.resident & ~kept)[0]  # (a mask, not setdiff1d: no sort of every resident chunk)
                if out.size:
                    self._page_out(out)
        self.seen[keep[self.resident[keep]]] = t  # resident chunks stay while they meet the wide criterion
        self.seen[bring] = t
        if bring.size:
            self._page_in(bring)
        self._left_out = self._left_out[~self.resident[self._left_out]]  # (kept when no page-out may happen)
        if t - self._last_trim >= self.config.linger and not self._graph():
            self._last_trim = t
            leave = np.nonzero(self.resident & (t - self.seen >= self.config.linger))[0]
            if leave.size:
                self._page_out(leave)

    def left_out(self, camera: Camera) -> Tensor | None:
        """The screen rectangles of the chunks the last `prepare` left out for the budget (their boxes, grown by
        their Gaussians' reach, projected; see below for boxes reaching behind the camera): the lift does not
        fill them, or each left-out chunk would be lifted again as new Gaussians, paged in by them, left out
        again, and the world would run away. Rectangles cover more than the chunk draws: holes inside them
        wait until the chunk is back in the working set."""
        rows = self._left_out
        if rows.size == 0:
            return None
        K, w2c = camera.host()[0], camera.host_w2c()
        W, H = camera.width, camera.height
        lo, hi, dist = self._boxes(rows, camera)
        if (dist <= 0).any():  # the camera inside a left-out box: it may cover any pixel
            return torch.ones(H, W, dtype=torch.bool, device=self.device)
        corners = np.stack([np.where(np.array([(i >> k) & 1 for k in range(3)], bool), hi, lo) for i in range(8)], 1)
        cam = corners @ w2c[:3, :3].T + w2c[:3, 3]  # [C, 8, 3] camera coordinates (OpenCV axes)
        z = cam[..., 2]
        seen = (z > NEAR).any(1)  # wholly behind the near plane: nothing to cover
        if not seen.any():
            return None
        # corners behind the near plane are projected from it: their side of the box reaches far out of
        # the frame that way, which the clip to the frame then bounds (covering more, never less)
        cam, z = cam[seen], np.maximum(z[seen], NEAR)
        u = K[0, 0] * cam[..., 0] / z + K[0, 2]
        v = K[1, 1] * cam[..., 1] / z + K[1, 2]
        u0 = np.clip(np.floor(u.min(1)), 0, W).astype(int)
        u1 = np.clip(np.ceil(u.max(1)), 0, W).astype(int)
        v0 = np.clip(np.floor(v.min(1)), 0, H).astype(int)
        v1 = np.clip(np.ceil(v.max(1)), 0, H).astype(int)
        # every rectangle at once: +1 / -1 at its corners, summed along both axes
        diff = np.zeros((H + 1, W + 1), np.int32)
        for a, b, sign in ((v0, u0, 1), (v0, u1, -1), (v1, u0, -1), (v1, u1, 1)):
            np.add.at(diff, (a, b), sign)
        mask = diff.cumsum(0).cumsum(1)[:H, :W] > 0
        if not mask.any():
            return None
        return to_device(mask, self.device)  # (from pinned memory, without waiting for the device)

    def _page_in(self, rows: np.ndarray) -> None:
        """Append paged-out chunks `rows` to the working set (each in its stored order)."""
        parts = [self.store.read(self.ref[r]) for r in rows.tolist()]
        counts = np.array([p.shape[0] for p in parts], np.int64)
        self.scene.append(GaussianScene.unpack(np.concatenate(parts), self.device))
        self.slot = torch.cat([self.slot, to_device(np.repeat(rows, counts), self.device)])
        self.resident[rows] = True
        if not self.store.persistent:
            for r in rows.tolist():
                self.store.release(self.ref[r])
                self.ref[r] = None
            self.dirty[rows] = True
        self.paged_in += len(rows)

    def _member(self, rows: np.ndarray) -> Tensor:
        """bool [N]: which Gaussians of the working set belong to chunks `rows`."""
        flag = torch.zeros(self.chunks, dtype=torch.bool, device=self.device)
        flag[to_device(rows, self.device)] = True
        return flag[self.slot]

    def _select(self, rows: np.ndarray) -> tuple[Tensor, dict[int, np.ndarray]]:
        """(mask [N] of the working set's Gaussians in chunks `rows`, {row: packed Gaussians of that
        chunk in working-set order} for those of `rows` that are dirty or unstored). One read from the
        device (the packed rows), none when every chunk is stored already: the table's counts give the
        sizes (`_indices`), so nothing else has to be read back."""
        mask = self._member(rows)
        write = np.sort(rows[self.dirty[rows] | np.array([self.ref[r] is None for r in rows.tolist()], bool)])
        out: dict[int, np.ndarray] = {}
        if write.size:
            idx = self._indices(mask if write.size == rows.size else self._member(write), int(self.count[write].sum()))
            idx = idx[torch.argsort(self.slot[idx], stable=True)]  # by chunk (rows ascending), each in working-set order
            packed = self.scene.subset(idx).pack()
            ends = np.cumsum(self.count[write])
            out = {int(r): packed[b - int(c):b] for r, b, c in zip(write.tolist(), ends, self.count[write])}
        return mask, out

    def _indices(self, mask: Tensor, n: int) -> Tensor:
        """int64 [n]: the indices of mask's n True entries, ascending, without reading the device (the
        chunk table knows n; `torch.nonzero` would wait for the device to learn it). The table must count the
        working set exactly (checked on the host: a wrong n would pad or drop Gaussians silently)."""
        counted = int(self.count[self.resident].sum())
        if len(self.scene) != counted:
            raise RuntimeError(f"the chunk table counts {counted} resident Gaussians, the working set holds {len(self.scene)}")
        return torch.nonzero_static(mask, size=n).squeeze(1)

    def _store(self, chunks: dict[int, np.ndarray], together: bool = True) -> None:
        """Store chunks {row: packed rows}, replacing older copies: `together`, all in one `put_many` (one file on
        disk: chunks that leave the working set together), else each on its own (`put`: a checkpoint's resident
        chunks, which will change again — in a shared file their stale rows would keep the file alive)."""
        rows = list(chunks)
        for r in rows:
            if self.ref[r] is not None:
                self.store.release(self.ref[r])
        items = [(int(self.key[r]), chunks[r]) for r in rows]
        refs = self.store.put_many(items) if together else [self.store.put(k, p) for k, p in items]
        for r, ref in zip(rows, refs):
            self.ref[r] = ref
            self.dirty[r] = False

    def _page_out(self, rows: np.ndarray) -> None:
        """Move chunks `rows` out of the working set into the store (unchanged ones are stored already)."""
        mask, chunks = self._select(rows)
        self._store(chunks)
        keep = self._indices(~mask, len(self.scene) - int(self.count[rows].sum()))
        self.scene.prune(keep)
        self.slot = self.slot[keep]
        self.resident[rows] = False
        self.paged_out += len(rows)

    # ------------------------------------------------------------------ the whole world
    def reset(self) -> None:
        raise RuntimeError("a paged world is never rebuilt (only the per-frame baseline rebuilds its world)")

    def parts(self):
        yield self.scene
        for r in np.nonzero(~self.resident)[0].tolist():
            yield GaussianScene.unpack(self.store.read(self.ref[r]))

    def full_scene(self) -> GaussianScene:
        parts = [p.to(self.device) for p in self.parts()]
        out = GaussianScene.empty(self.device)
        for p in parts:
            out.append(p)
        return out

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self, durable: bool = True) -> dict:
        """Store every chunk with unstored Gaussians (the store must keep files: a DiskStore), make the
        files durable (unless `durable` is False: then the caller takes them with
        `store.take_unsynced()`), and return the table and the working set's order (its chunk of each
        Gaussian): with the chunk files, that is the whole world, exactly. Call `collect_garbage()`
        once the checkpoint is committed."""
        if not self.store.persistent:
            raise RuntimeError("checkpoints of a paged world need a DiskStore")
        res = np.nonzero(self.resident)[0]
        _, chunks = self._select(res)
        self._store(chunks, together=False)
        if durable:
            self.store.sync()
        table = {f: getattr(self, f).copy() for f in self._FIELDS}
        return {"kind": "paged", "cell": self.cell, "table": table, "ref": list(self.ref),
                "slot": self.slot.cpu().numpy().astype(np.int32), "total": self.total,
                "last_trim": self._last_trim, "serial": self.store.serial, "key_format": self.key_format,
                "moves": [self.paged_in, self.paged_out]}

    def collect_garbage(self) -> None:
        """Delete stored chunks that neither the world nor its last checkpoint needs."""
        self.store.retain({r for r in self.ref if r is not None})

    def restore(self, state: dict) -> None:
        """Undo to a `checkpoint()` (reads the resident chunks' files; deletes files made after it)."""
        if state.get("kind") != "paged":
            raise ValueError(f"checkpoint holds a {state.get('kind')!r} world, this generator pages chunks")
        if not math.isclose(state["cell"], self.cell, rel_tol=1e-12):
            raise ValueError("checkpoint was made with another chunk size")
        for f in self._FIELDS:
            setattr(self, f, np.array(state["table"][f]))
        self.ref = list(state["ref"])
        self._index = {int(k): i for i, k in enumerate(self.key.tolist())}
        self._rebuild_groups()
        self.total, self._last_trim = int(state["total"]), int(state["last_trim"])
        self.key_format = int(state.get("key_format", 1))
        self.paged_in, self.paged_out = (int(x) for x in state["moves"])
        self.store.serial = int(state["serial"])
        self.collect_garbage()
        slot = np.asarray(state["slot"], np.int64)
        order = np.argsort(slot, kind="stable")  # working-set positions grouped by chunk, in order
        chunks = np.unique(slot)
        packed = np.concatenate([self.store.read(self.ref[r]) for r in chunks.tolist()]) if chunks.size else \
            np.zeros((0, 14), np.float32)
        rows = np.empty_like(packed)
        rows[order] = packed
        self.scene = GaussianScene.unpack(rows, self.device)
        self.slot = torch.as_tensor(slot, device=self.device)
