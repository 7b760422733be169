"""The replay buffer of refiner training: unrolled generator steps kept on the device and trained on
many times.

Why: unrolling the real generator loop (render, classical refiner, lift, sky dome, for each clip
separately) costs far more than the network's forward and backward pass: on 2 x H200 flight-mode
training ran 0.3 steps/s per process with the GPU busy mostly with the loop's small kernels. Here
each process unrolls clips *without gradients* with its current network (the same loop, the same
persistent and per-frame worlds, warm steps included) and keeps every supervised step's network
input, rendered view and truth in a ring buffer; a training step draws a batch from the buffer,
runs the network on it with fresh noise (and a random left-right flip), composes and takes the
loss. Each step's loss trains that step's network pass only (as flight mode with
`grad_through_world=False`); the inputs are those of the network as it was a few steps before
(DAgger-style: it learns from the worlds it builds itself).

Determinism and resumption: the buffer is rebuilt (whole, or to `ReplayConfig.start_fill` of its capacity, the
refills growing it from there) at the first step of a run and at every
multiple of `TrainConfig.checkpoint_every`, from clips drawn with that step's seed and the network as it is then,
so a run resumed from a checkpoint written at such a step continues bit for bit (on CPU) as the
uninterrupted one. A run stopped elsewhere (a deadline) resumes with a rebuilt buffer: the same
training, not the same bits.

Tensors are channel-first `[N, C, H, W]` float32 on the training device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from refine.learned import ViewBatch
from refine.train.unroll import StepResult
from worldgen.core.device import to_device

_VIEW_FIELDS = ("scene_rgb", "alpha", "ld_in", "keep_a", "keep", "base_rgb", "ground_rgb", "base_ld", "base_sky", "sky_known")


class ReplayBuffer:
    """A ring buffer of `capacity` supervised generator steps (see the module docstring).

    `add(results)` stores the steps of an unroll (StepResults with `x`); `sample(n, gen)` returns a
    StepResult-shaped batch without `out` (x, views, truth) for the trainer to run the network on.
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("the replay buffer needs a capacity of at least 1")
        self.capacity = capacity
        self.size = 0  # filled entries
        self.head = 0  # next entry to write
        self.added = 0  # steps stored since the start of the run (a throughput figure)
        self.store: dict[str, Tensor] = {}

    def clear(self) -> None:
        self.size = self.head = 0

    def add(self, results: list[StepResult]) -> None:
        """Store every clip of every step of `results` (oldest entries are overwritten)."""
        for r in results:
            if r.x is None:
                raise ValueError("replay entries need the network input (unroll keeps it in StepResult.x)")
            v = r.views
            item = {"x": r.x.float(), "ref": v.ref, "gt_rgb": r.gt_rgb, "gt_depth": r.gt_depth,
                    **{k: getattr(v, k).float() for k in _VIEW_FIELDS}}
            if not self.store:
                self.store = {k: t.new_zeros((self.capacity, *t.shape[1:])) for k, t in item.items()}
            n = min(item["x"].shape[0], self.capacity)
            slots = (self.head + torch.arange(n, device=item["x"].device)) % self.capacity
            for k, t in item.items():
                self.store[k].index_copy_(0, slots, t[-n:].detach().to(self.store[k].dtype))
            self.head = (self.head + n) % self.capacity
            self.size = min(self.size + n, self.capacity)
            self.added += n

    def sample(self, n: int, gen: torch.Generator, noise: bool = True, flip: bool = True) -> StepResult:
        """n entries drawn uniformly (with replacement) with `gen` (a CPU generator): a StepResult
        whose `out` is None, `x` has a fresh noise channel (last channel, uniform in [-1, 1], from
        `gen`) and half the entries are mirrored left-right (input, view and truth together)."""
        if self.size == 0:
            raise RuntimeError("the replay buffer is empty")
        idx = torch.randint(0, self.size, (n,), generator=gen)
        dev = self.store["x"].device
        flip_mask = (torch.rand(n, generator=gen) < 0.5) if flip else torch.zeros(n, dtype=torch.bool)
        pick = {k: t[to_device(idx, dev)] for k, t in self.store.items()}
        if flip_mask.any():
            fm = to_device(flip_mask, dev)[:, None, None, None]
            pick = {k: torch.where(fm, t.flip(-1), t) for k, t in pick.items()}
        x = pick["x"]
        if noise:
            x = x.clone()
            x[:, -1:] = to_device(torch.rand(x[:, -1:].shape, generator=gen) * 2 - 1, dev)
        views = ViewBatch(ref=pick["ref"], base_sky=pick["base_sky"] > 0.5, above_horizon=x[:, 9:10] > 0,
                          **{k: pick[k] for k in _VIEW_FIELDS if k != "base_sky"})
        d = pick["gt_depth"]
        return StepResult(out=None, views=views, gt_rgb=pick["gt_rgb"], gt_depth=d, gt_sky=~torch.isfinite(d), x=x)
