"""The training loop of the learned refiner: one process, or data-parallel under torchrun.

    worldgen train refiner --out runs/r1 [--steps N] [--preset NAME]          # one GPU, or CPU at toy size
    torchrun --nproc_per_node 2 -m refine.train refiner --out runs/r1          # data-parallel (NCCL)

Each process renders its own procedural flights on its device (refine/train/data.py), unrolls the
real generator loop over clips of them (refine/train/unroll.py) and averages gradients with the
others (one all-reduce of all gradients per step, as DistributedDataParallel does).

Determinism and resumption: every step seeds its random generators from (seed, rank, step), and
the flight cache is a function of the data cursor, so a run resumed from `checkpoint.pt` (model,
discriminator, both optimisers, step, cursor, loss history) continues exactly as the uninterrupted
run would have (bit for bit on CPU). A killed run loses at most `checkpoint_every` steps (`compact_every`, if
set: from a compact checkpoint, not bit-exactly).

Files in the run folder (rank 0 writes): checkpoint.pt, refiner.pt (weights, float16), log.jsonl
(one line per logged step), loss.png, psnr.png, samples/step_NNNNNN.png (rendered input | refined |
truth, one row per supervised step), train.json (configuration and throughput summary).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import torch

from refine.learned import WEIGHTS_FORMAT, compose, load_weights, save_weights
from refine.losses import MultiScaleDiscriminator, d_hinge_loss, feature_matching_loss, g_hinge_loss
from refine.net import RefinerNet, count_parameters
from refine.train.common import (
    Dist,
    GpuMonitor,
    TrainingFolder,
    check_steps_left,
    cut_log,
    check_photo_folder,
    learning_rate,
    load_training_checkpoint,
    other_network,
    resume_source,
    save_png,
    step_seed,
    stopped,
    time_is_up,
    write_curves,
)
from refine.train.config import TrainConfig
from refine.train.data import FlightCache
from refine.train.photos import PhotoSource, photo_critic_loss, photo_step_terms
from refine.train.replay import ReplayBuffer
from refine.train.unroll import (
    GradProbe,
    critic_input,
    detail_ratio,
    log_disparity,
    psnr,
    reconstruction_losses,
    sample_grid,
    unroll,
)
from worldgen.core.config import check
from worldgen.core.io import append_text

CKPT_FORMAT = "worldgen-train-refiner/1"


# ----------------------------------------------------------------------------- checkpoints
def _weights_blob(net: RefinerNet, cfg: TrainConfig, half: bool = False) -> dict:
    return {"format": WEIGHTS_FORMAT, "net_config": dataclasses.asdict(net.config),
            "refiner_config": dataclasses.asdict(cfg.refiner),
            "state_dict": _state(net, half), "meta": {}}


def nonfinite_origin(results, critic) -> dict[str, float]:
    """Where a dropped step's non-finite value first appears (logged as the share of dropped steps):
    the network's input (the renderer's views), its composed output, or the critic's own weights."""
    def bad(ts) -> float:
        return float(any(t is not None and not bool(torch.isfinite(t.detach()).all()) for t in ts))

    return {"nonfinite_origin_input": bad([r.x for r in results]),
            "nonfinite_origin_output": bad([r.out.rgb for r in results] + [r.out.net_log_disp for r in results]),
            "nonfinite_origin_critic": bad(list(critic.parameters()))}


def _state(module: torch.nn.Module, half: bool) -> dict:
    return {k: (v.half() if half and v.is_floating_point() else v).detach().cpu() for k, v in module.state_dict().items()}


def save_checkpoint(path: Path, step: int, net, disc, opt_g, opt_d, cache: FlightCache, history: list, cfg: TrainConfig,
                    elapsed: float, compact: bool = False, disc_photo=None, opt_dp=None) -> None:
    """Write the training state atomically.

    full (compact=False): float32 weights and both optimisers: resuming is bit-exact.
    compact: float16 weights of the refiner and the discriminator and no optimiser moments (about
    10 MB: the copy that travels between GPU calls and is committed as refine/weights/refiner.pt);
    a run resumed from it starts new Adam moments with a 50-step learning-rate ramp. A failed write (a full disk)
    is an OSError and leaves the file at `path` as it was (`worldgen.core.io.save_torch`)."""
    from worldgen.core.io import save_torch

    blob = {"format": CKPT_FORMAT, "step": step, "refiner": _weights_blob(net, cfg, half=compact),
            "disc": _state(disc, compact), "opt_g": None if compact else opt_g.state_dict(),
            "opt_d": None if compact else opt_d.state_dict(), "cursor": cache.cursor, "history": history,
            "disc_photo": None if disc_photo is None else _state(disc_photo, compact),
            "opt_dp": None if compact or opt_dp is None else opt_dp.state_dict(),
            "config": dataclasses.asdict(cfg), "elapsed_seconds": elapsed, "compact": compact}
    save_torch(path, blob)


def load_checkpoint(path: Path) -> dict:
    """The refiner training checkpoint at `path`; ValueError (one line naming the file) for anything else."""
    return load_training_checkpoint(path, CKPT_FORMAT)


# ----------------------------------------------------------------------------- one flight step's loss
def flight_step_terms(results, disc, cfg: TrainConfig, step: int, cuda: bool):
    """The generator's loss of a flight step: (loss, terms, fake, real), fake / real the critic's
    inputs [N, 4, H, W] (None before the critic starts, at gan_start / 2)."""
    L = cfg.loss
    T = len(results)
    terms: dict[str, torch.Tensor] = {}
    for r in results:
        for k, v in reconstruction_losses(r, cfg.refiner, ssim_grad=L.ssim > 0).items():
            terms[k] = terms.get(k, 0.0) + v / T
    loss = sum(getattr(L, k) * v for k, v in terms.items())
    if step < L.gan_start // 2:
        return loss, terms, None, None
    ref = torch.cat([r.views.ref for r in results])
    fake = critic_input(torch.cat([r.out.rgb for r in results]), torch.cat([r.out.net_log_disp for r in results]),
                        torch.cat([r.out.sky for r in results]), ref)
    real = critic_input(torch.cat([r.gt_rgb for r in results]), torch.cat([log_disparity(r.gt_depth) for r in results]),
                        torch.cat([r.gt_sky for r in results]), ref)
    if step >= L.gan_start:
        for p in disc.parameters():
            p.requires_grad_(False)
        with torch.autocast(device_type=fake.device.type, dtype=torch.bfloat16, enabled=cuda):
            d_fake = disc(fake)
            d_real = disc(real)
        terms["adversarial"] = g_hinge_loss(d_fake)
        terms["feature_matching"] = feature_matching_loss(d_fake, d_real)
        loss = loss + L.adversarial * terms["adversarial"] + L.feature_matching * terms["feature_matching"]
        for p in disc.parameters():
            p.requires_grad_(True)
    return loss, terms, fake, real


# ----------------------------------------------------------------------------- the loop
def train(cfg: TrainConfig) -> dict:
    """Run (or resume) training as configured; returns the summary written to train.json.

    Bad settings (`check`: one line naming the option), a missing photo folder and an output path that
    cannot be a folder raise before anything is written; the run folder is locked for the whole run
    (a second writer fails at once), and a run that fails before its first checkpoint in a folder it made
    removes it again (refine/train/common.py TrainingFolder). A checkpoint in `cfg.out` that is not one,
    or holds a network of other `--net` settings, is a ValueError of one line. A write that fails (a full disk) is
    an OSError of one line saying which checkpoint stands (`common.stopped`): the run resumes from it (a run whose
    checkpoint has all its steps but whose end failed writes its end from it: `common.check_steps_left`). Under
    torchrun every process stops with it (`Dist.writes`): rank 0 with that line, the others with one saying that
    rank 0 could not write."""
    check(cfg)
    if cfg.photos.folder:
        check_photo_folder(cfg.photos.folder, "--photos.folder")
    dd = Dist(cfg.device)
    try:
        with TrainingFolder(cfg.out, dd) as folder:
            return _train(cfg, dd, folder)
    except OSError as e:
        raise stopped(e, cfg.out, CKPT_FORMAT, "train", cfg.steps, cfg.resume) from e


def _train(cfg: TrainConfig, dd: Dist, folder: TrainingFolder) -> dict:
    """`train` in its (locked) run folder."""
    from renderers import get_renderer

    dev = dd.device
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    net = RefinerNet(cfg.net).to(dev)
    disc = MultiScaleDiscriminator(in_channels=4).to(dev)
    if cfg.init:
        init_net, _, _ = load_weights(cfg.init)
        if init_net.config != cfg.net:
            raise ValueError(f"--init {cfg.init} holds a network of another shape ({init_net.config})")
        net.load_state_dict(init_net.state_dict())
    # the still-photo steps' critic (RGB only, and the RGB's detail: StillPhotoConfig.critic_detail)
    disc_photo = MultiScaleDiscriminator(in_channels=3, detail_gain=cfg.photos.critic_detail,
                                         cond_channels=6 if cfg.photos.critic_condition else 0).to(dev)
    opt_g = torch.optim.Adam(net.parameters(), lr=cfg.optim.lr, betas=cfg.optim.betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.optim.lr_disc, betas=cfg.optim.betas)
    opt_dp = torch.optim.Adam(disc_photo.parameters(), lr=cfg.optim.lr_disc, betas=cfg.optim.betas)
    start, cursor, history, elapsed0, rewarm = 0, None, [], 0.0, None
    ckpt_path = out / "checkpoint.pt"
    resume_from = resume_source(out)
    if cfg.resume and resume_from.is_file():
        blob = load_checkpoint(resume_from)  # optimiser moments are cast back to float32 on load
        try:
            theirs_net = blob["refiner"].get("net_config")
            state = {k: v.float() if v.is_floating_point() else v for k, v in blob["refiner"]["state_dict"].items()}
            disc_state = {k: v.float() if v.is_floating_point() else v for k, v in blob["disc"].items()}
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{resume_from} is not a worldgen training checkpoint: it lacks {e}") from None
        mine_net = dataclasses.asdict(cfg.net)
        plain = lambda v: list(v) if isinstance(v, (tuple, list)) else v  # noqa: E731
        if isinstance(theirs_net, dict) and any(plain(theirs_net[k]) != plain(mine_net[k]) for k in mine_net
                                                if k in theirs_net):
            raise other_network(resume_from, ", ".join(f"{k} {plain(v)}" for k, v in theirs_net.items()))
        try:
            net.load_state_dict(state)
        except RuntimeError:
            raise other_network(resume_from) from None
        disc.load_state_dict(disc_state)
        mine = disc_photo.state_dict()
        theirs = blob.get("disc_photo")
        same_critic = theirs is not None and theirs.keys() == mine.keys() and all(v.shape == mine[k].shape for k, v in theirs.items())
        if same_critic:
            disc_photo.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["disc_photo"].items()})
        elif blob.get("disc_photo") is not None and dd.rank == 0:
            print("photo critic: the checkpoint's sees other inputs (--photos.critic-detail, --photos.critic-condition); "
                  "starting a new one", flush=True)
        # A checkpoint cut down to travel may lack the optimiser moments: new ones, with a short warm-up.
        for opt, key in ((opt_g, "opt_g"), (opt_d, "opt_d"), (opt_dp, "opt_dp")):
            if blob.get(key) is not None and (key != "opt_dp" or same_critic):
                opt.load_state_dict(blob[key])
        start, cursor, history = blob["step"], blob["cursor"], blob["history"]
        rewarm = start if blob["opt_g"] is None else None
        elapsed0 = blob.get("elapsed_seconds", 0.0)
    if not check_steps_left(cfg.out, start, cfg.steps, "refiner.pt", dd):  # (before the data cache is filled)
        if dd.main:  # all steps in the checkpoint, the end's files not (a full disk at the end): the end, no training
            print(f"all {start:,} steps are in {resume_from}; writing the run's end (refiner.pt, curves, train.json)",
                  flush=True)
        return _end(out, dd, net, cfg, start, history, {
            "seconds_this_run": 0.0, "seconds_total": round(elapsed0, 1), "cache_fill_seconds": 0.0,
            "data_frames_per_second": history[-1].get("data_frames_per_second") if history else None,
            "flights_made": cursor})
    if dd.main:  # steps logged after the checkpoint (a run stopped between two) are trained and logged again
        with dd.writes():
            cut_log(out, start)
    dd.stop_if_unwritten()  # (before the data cache is filled)
    renderer = get_renderer(dev.type if dev.type == "cpu" else str(dev))
    cache = FlightCache(cfg.data, dev, dd.rank, dd.world)
    t_fill = time.perf_counter()
    cache.fill(cursor)
    fill_s = time.perf_counter() - t_fill
    photo_src = PhotoSource(cfg.photos, cfg.data.width, cfg.data.height, dev) if cfg.photos.folder else None
    monitor = GpuMonitor(dev)
    if dd.main:
        print(f"refiner {count_parameters(net):,} parameters; {dd.world} process(es) on {dev}; cache of "
              f"{cfg.data.flights} flights x {cfg.data.frames} frames at {cfg.data.width}x{cfg.data.height} "
              f"filled in {fill_s:.1f} s ({cache.data_frames_per_second:.0f} frames/s); from step {start}", flush=True)

    cuda = dev.type == "cuda"
    T = cfg.unroll.steps
    t_run = time.perf_counter()
    t_log = time.perf_counter()
    phase: dict[str, float] = {}
    acc: dict[str, float] = {}
    counts: dict[str, int] = {}
    n_acc = 0
    step = start

    def is_photo(n: int) -> bool:
        """Whether training step n (counted from 0) is a still-photo step."""
        P = cfg.photos
        return photo_src is not None and n >= P.start and n % P.every == P.every - 1

    def sample_due(done: int, photo: bool) -> bool:
        """Whether the step just done (`done` steps now done) writes a sample grid: the first step of
        each kind (flight, photo) at or after each multiple of sample_every, and the last step. (With
        one photo step in two a multiple alone would always land on the same kind.) A function of
        the step alone, so a resumed run writes the same grids."""
        n_every = cfg.sample_every
        if not n_every:
            return False
        if done % n_every == 0 or done == cfg.steps:
            return True
        for prev in range(done - 1, max(done - n_every, 0) - 1, -1):  # steps done since the last multiple
            if is_photo(prev - 1) == photo:
                return False  # a step of this kind came after the multiple already
            if prev % n_every == 0:
                return prev > 0
        return False
    g_params = list(net.parameters())
    d_params = list(disc.parameters())

    def tick(name: str, t0: float) -> float:
        if cfg.profile:
            if cuda:
                torch.cuda.synchronize(dev)
            t1 = time.perf_counter()
            phase[name] = phase.get(name, 0.0) + t1 - t0
            return t1
        return t0

    replay = ReplayBuffer(cfg.replay.capacity) if cfg.replay.capacity > 0 else None

    def flight_unroll(gen: torch.Generator, train: bool, t0: float):
        """Draw cfg.batch clips (warm-up length, modes) with `gen` and unroll the generator over them:
        (results, time after the "unroll" phase)."""
        lo, hi = cfg.unroll.warm_steps
        warm = int(torch.randint(lo, hi + 1, (1,), generator=gen))
        clips = cache.sample(cfg.batch, warm + T + 1, gen)
        modes = ["per-frame" if float(torch.rand((), generator=gen)) < cfg.unroll.per_frame else "persistent"
                 for _ in range(cfg.batch)]
        t0 = tick("data", t0)
        results = unroll(net, clips, modes, warm, T, renderer, cfg.refiner, autocast=cuda,
                         grad_through_world=cfg.unroll.grad_through_world, train=train, probe=probe if train else None)
        return results, tick("unroll", t0)

    bad_run = 0  # steps dropped in a row (below)
    probe = None
    # wall seconds of the longest step without a replay rebuild, and of the last rebuild: the deadline stops the run
    # before a step (and the rebuild that opens it) that would end past it
    longest = rebuild_s = 0.0

    def rebuilds(s: int) -> bool:
        """Step s opens with a rebuild of the replay buffer: a run's first step and every checkpoint multiple."""
        return replay is not None and (s == start or s % cfg.checkpoint_every == 0)

    while step < cfg.steps:
        probe = GradProbe() if cfg.grad_probe else None
        t0 = t_step = time.perf_counter()
        seed = step_seed(cfg.seed, dd.rank, step)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        if cfg.data.refresh_every and step > 0 and step % cfg.data.refresh_every == 0:
            cache.refresh()  # the checkpoint of step s holds the cursor from before this refresh
        ramp = 1.0 if rewarm is None else min(1.0, (step - rewarm + 1) / 50)
        for opt, base in ((opt_g, cfg.optim.lr), (opt_d, cfg.optim.lr_disc), (opt_dp, cfg.optim.lr_disc)):
            for g in opt.param_groups:
                g["lr"] = ramp * learning_rate(cfg, base, step)
        rebuilt = False
        if rebuilds(step):  # the buffer (whole, or start_fill of it) from the network as it is now (photo steps too)
            t_rebuild = time.perf_counter()
            replay.clear()
            while replay.size < max(1, math.ceil(cfg.replay.start_fill * replay.capacity)):
                res, t0 = flight_unroll(gen, False, t0)
                replay.add(res)
            rebuilt, rebuild_s = True, time.perf_counter() - t_rebuild
        P = cfg.photos
        photo = is_photo(step)
        if photo:  # ---- a still-photo step (refine/train/photos.py)
            kind = "cycle" if float(torch.rand((), generator=gen)) < P.cycle_share else "forward"
            clips, photos = photo_src.clips(kind, gen, step)
            L_ = clips.depth.shape[1]
            warm, steps_ = (0, L_ - 1) if kind == "cycle" else (L_ - 1 - P.forward_grad, P.forward_grad)
            modes = ["per-frame" if kind == "cycle" or float(torch.rand((), generator=gen)) < cfg.unroll.per_frame
                     else "persistent" for _ in range(P.batch)]
            t0 = tick("data", t0)
            results = unroll(net, clips, modes, warm, steps_, renderer, cfg.refiner, autocast=cuda,
                             grad_through_world=cfg.unroll.grad_through_world, probe=probe)
            t0 = tick("unroll", t0)
            cond = photo_src.colour_condition([c["photo"] for c in clips.info]) if P.critic_condition else None
            loss, terms, fake, fake_weight = photo_step_terms(results, photos, disc_photo, kind, P, cuda, cond)
            critic, critic_params, real = disc_photo, list(disc_photo.parameters()), None
        elif replay is not None:  # ---- a replay step: a batch of stored generator steps (refine/train/replay.py)
            if step % cfg.replay.refill_every == 0 and not rebuilt:
                res, t0 = flight_unroll(gen, False, t0)
                replay.add(res)
            r = replay.sample(cfg.replay.batch, gen)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=cuda):
                y = net(r.x)
            r.out = compose(r.views, y, cfg.refiner)
            results = [r]
            loss, terms, fake, real = flight_step_terms(results, disc, cfg, step, cuda)
            critic, critic_params = (disc, d_params) if fake is not None else (None, [])
        else:  # ---- a flight step: procedural clips with ground truth at every step
            results, t0 = flight_unroll(gen, True, t0)
            loss, terms, fake, real = flight_step_terms(results, disc, cfg, step, cuda)
            critic, critic_params = (disc, d_params) if fake is not None else (None, [])
        # A step whose loss or (all-reduced) gradient is not finite is dropped, on every process alike: one
        # such step made every weight NaN on the H200 (2026-12-01 night, between steps 3650 and 3700) and
        # the checkpoints after it were NaN too.
        opt_g.zero_grad(set_to_none=True)
        skipped = dd.any(not math.isfinite(float(loss.detach())))
        gnorm = torch.zeros(())
        if not skipped:
            loss.backward()
            dd.mean_grads(g_params)
            gnorm = torch.nn.utils.clip_grad_norm_(g_params, cfg.optim.grad_clip)
            skipped = not bool(torch.isfinite(gnorm))  # the same on every process (the same gradients)
            if skipped:
                opt_g.zero_grad(set_to_none=True)
            else:
                opt_g.step()
        zeroed = renderer.take_zeroed_grad_rows() if hasattr(renderer, "take_zeroed_grad_rows") else None
        bad_run = bad_run + 1 if skipped else 0
        if bad_run >= 50:
            raise RuntimeError(f"training diverged: 50 steps in a row with a non-finite loss or gradient (step {step})")
        t0 = tick("backward", t0)
        if skipped:
            critic = None  # its fakes are not finite either
        if critic is not None:
            # the photo critic takes `critic_steps` updates per photo step (fresh real crops each, the same
            # generated frames): photo steps are rare, and one update each left it at chance (hinge 2.00)
            key, opt_c, updates = ("photo_disc", opt_dp, P.critic_steps) if photo else ("disc", opt_d, 1)
            for _ in range(updates):
                if photo:
                    crops, reals = photo_src.critic_reals(min(len(fake), 2 * P.batch), gen, len(fake), cond)
                    d_loss = photo_critic_loss(critic, crops, fake, cuda, fake_weight=fake_weight, **reals)
                else:
                    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=cuda):
                        d_loss = d_hinge_loss(critic(real.detach()), critic(fake.detach()))
                opt_c.zero_grad(set_to_none=True)
                if dd.any(not math.isfinite(float(d_loss.detach()))):
                    continue
                d_loss.backward()
                dd.mean_grads(critic_params)
                if bool(torch.isfinite(torch.nn.utils.clip_grad_norm_(critic_params, math.inf))):
                    opt_c.step()
                else:
                    opt_c.zero_grad(set_to_none=True)
            if updates > 0:  # (critic_steps 0: photo steps without a critic)
                terms[key] = d_loss
        t0 = tick("disc", t0)

        # ---- bookkeeping
        last, v = results[-1], results[-1].views
        logged = {**{k: float(t.detach()) for k, t in terms.items()}, "grad_norm": float(gnorm)}
        logged["skipped"] = 0.0
        if skipped:  # logged as the share of skipped steps; the terms of a dropped step are not averaged in, but
            # which of them were not finite is (`nonfinite_<term>`: the share of dropped steps it was in)
            logged = {"skipped": 1.0, **{f"nonfinite_{k}": float(not math.isfinite(v)) for k, v in logged.items()
                                         if k != "skipped"}, **nonfinite_origin(results, disc_photo if photo else disc)}
            if probe is not None:  # where the backward pass first met a non-finite gradient (GradProbe)
                logged.update({f"nonfinite_grad_at_{k}": float(k in probe.bad) for k in GradProbe.STAGES})
            if photo:
                logged["skipped_photo_forward"] = float(kind == "forward")  # (the kind is drawn per process)
        elif photo:
            logged["photo_loss"] = float(loss.detach())
        else:
            logged.update({"loss": float(loss.detach()), "psnr_refined": psnr(last.out.rgb, last.gt_rgb),
                           "psnr_classical": psnr(v.base_rgb, last.gt_rgb),
                           "detail_refined": detail_ratio(last.out.rgb, last.gt_rgb, 1 - v.keep),
                           "detail_classical": detail_ratio(v.base_rgb, last.gt_rgb, 1 - v.keep)})
        if zeroed is not None:  # Gaussians whose non-finite gradient from gsplat was zeroed (renderers/gsplat_backend.py)
            logged["render_grad_rows_zeroed"] = float(zeroed)
        for k, x in logged.items():
            acc[k] = acc.get(k, 0.0) + x
            counts[k] = counts.get(k, 0) + 1
        n_acc += 1
        step += 1
        if dd.main and sample_due(step, photo):
            with dd.writes():  # (a failure: every process stops at `over` below)
                (out / "samples").mkdir(exist_ok=True)  # (made with the first sample: a failed start leaves none)
                if photo:  # rendered input | classical | learned | the photo, per supervised step of one clip
                    save_png(out / "samples" / f"step_{step:06d}_photo_{kind}.png", sample_grid(results).numpy())
                else:
                    grid = (sample_grid(results) if replay is None else  # a replay batch: one row per entry
                            torch.cat([sample_grid(results, c) for c in range(min(4, cfg.replay.batch))], dim=0))
                    save_png(out / "samples" / f"step_{step:06d}.png", grid.numpy())
        if step % cfg.log_every == 0 or step == cfg.steps:
            now = time.perf_counter()
            rec = dd.mean({k: v / counts[k] for k, v in acc.items()})
            rec = {"step": step, **{k: round(v, 5) for k, v in sorted(rec.items())},
                   "steps_per_second": round(n_acc / (now - t_log), 3),
                   "data_frames_per_second": round(cache.data_frames_per_second, 1),
                   **({"replay_entries_added": replay.added} if replay is not None else {}),
                   "lr": learning_rate(cfg, cfg.optim.lr, step - 1)}
            util = monitor.take()
            if util is not None:
                rec["gpu_util"] = round(util, 1)
            if cfg.profile:
                rec["seconds"] = {k: round(v / n_acc, 4) for k, v in phase.items()}
                phase.clear()
            history.append(rec)
            if dd.main:
                with dd.writes():
                    append_text(out / "log.jsonl", json.dumps(rec) + "\n")  # (a full disk leaves no half line)
                    print(json.dumps(rec), flush=True)
            acc, counts, n_acc, t_log = {}, {}, 0, now
        # (also where every process stops when a sample or log line above failed on rank 0: Dist.writes)
        if not rebuilt:
            longest = max(longest, time.perf_counter() - t_step)
        ahead = longest + (rebuild_s if rebuilds(step) else 0.0)  # (step is now the next one)
        over = dd.any(time_is_up(cfg, t_run, ahead=ahead)) or (cfg.stop_after > 0 and step - start >= cfg.stop_after)
        full = step % cfg.checkpoint_every == 0 or step == cfg.steps or over
        if full or (cfg.compact_every and step % cfg.compact_every == 0):
            if dd.main:
                with dd.writes():
                    for path, compact in ((ckpt_path, False), (out / "checkpoint-compact.pt", True))[0 if full else 1:]:
                        save_checkpoint(path, step, net, disc, opt_g, opt_d, cache, history, cfg,
                                        elapsed0 + time.perf_counter() - t_run, compact=compact,
                                        disc_photo=disc_photo if photo_src is not None and cfg.photos.critic_steps
                                        else None, opt_dp=opt_dp if cfg.photos.critic_steps else None)
                    folder.saved()
            dd.stop_if_unwritten()
        if over:
            break

    monitor.stop()
    return _end(out, dd, net, cfg, step, history, {
        "seconds_this_run": round(time.perf_counter() - t_run, 1),
        "seconds_total": round(elapsed0 + time.perf_counter() - t_run, 1), "cache_fill_seconds": round(fill_s, 1),
        "data_frames_per_second": round(cache.data_frames_per_second, 1), "flights_made": cache.cursor})


def _end(out: Path, dd: Dist, net, cfg: TrainConfig, step: int, history: list[dict], run: dict) -> dict:
    """The end of a run at `step` (rank 0 writes): refiner.pt, the curves and train.json (last: `common.end_written`),
    whose summary (returned) takes the run's figures `run` (seconds, cache, flights made). Also what a rerun writes
    when a run's end failed after its last checkpoint (`check_steps_left`), from that checkpoint: `net` and `history`
    then are its own, so refiner.pt is the file the run's own end would have written. Every process returns once
    rank 0 has written the end, or all stop when it could not (`Dist.stop_if_unwritten`)."""
    summary = {"steps_done": step, "steps_target": cfg.steps, "processes": dd.world, "device": str(dd.device),
               "parameters": count_parameters(net), **run, "config": dataclasses.asdict(cfg)}
    if dd.main:
        from worldgen.core.io import atomic_write_text

        with dd.writes():
            save_weights(out / "refiner.pt", net, cfg.refiner,
                         meta={"steps": step, "train_config": dataclasses.asdict(cfg)})
            write_curves(out, history, "refiner training losses",
                         ("rgb", "mse", "laplacian", "detail", "disparity", "net_disparity", "sky", "feature_matching"))
            atomic_write_text(out / "train.json", json.dumps(summary, indent=2))
    dd.stop_if_unwritten()  # (a barrier too: no process returns before rank 0 has written the end)
    return summary
