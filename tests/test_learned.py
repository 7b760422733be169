"""The learned refiner: network shapes, composition rules, weights files, and training on CPU."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from refine.learned import (DEFAULT_WEIGHTS, FIDELITY_WEIGHTS, LearnedRefiner, LearnedRefinerConfig, compose,
                            load_weights, save_weights, view_inputs)
from refine.net import IN_CHANNELS, OUT_CHANNELS, RefinerNet, RefinerNetConfig
from worldgen.core.camera import Camera
from worldgen.core.frame import Frame, RenderedView
from worldgen.core.io import UserInputError

TINY = RefinerNetConfig(widths=(8, 16, 32), bottleneck_blocks=1, global_code=8)


def make_view(H=24, W=32, seed=0, hole=True, sky_known=True) -> RenderedView:
    """A synthetic rendered view: covered everywhere but a hole block (alpha 0), footprint 0.5 px
    except a blurry block (3 px), the sky dome known on the top rows."""
    g = torch.Generator().manual_seed(seed)
    cam = Camera.from_fov(60.0, W, H)
    alpha = torch.ones(H, W)
    if hole:
        alpha[8:16, 10:20] = 0.0
    colour = torch.rand(H, W, 3, generator=g)
    depth = 5.0 + 10 * torch.rand(H, W, generator=g)
    fp = torch.full((H, W), 0.5)
    fp[16:22, 24:30] = 3.0
    known = torch.zeros(H, W)
    sky_rgb = torch.zeros(H, W, 3)
    if sky_known:
        known[:4] = 1.0
        sky_rgb[:4] = torch.tensor([0.4, 0.6, 0.9])
        alpha[:4] = 0.0
    return RenderedView(cam, colour * alpha[..., None], alpha, depth * (alpha > 0), fp, sky_rgb, known, 10.0)


def test_network_any_size_and_fresh_output_is_zero():
    net = RefinerNet(TINY)
    for H, W in [(16, 16), (37, 53), (5, 70)]:
        y = net(torch.randn(2, IN_CHANNELS, H, W))
        assert y.shape == (2, OUT_CHANNELS, H, W)
        assert torch.count_nonzero(y) == 0  # zero-initialised head: a fresh refiner changes nothing
    with pytest.raises(ValueError, match="expects"):
        net(torch.randn(1, 3, 16, 16))


def test_a_fresh_network_is_the_classical_refiner():
    """Zero residuals: the learned refiner returns exactly the classical refiner's frame."""
    from refine.classical import ClassicalRefiner

    for view in (make_view(), make_view(sky_known=False, seed=3)):
        x, vb = view_inputs([view], LearnedRefinerConfig())
        assert x.shape == (1, IN_CHANNELS, 24, 32)
        frame = compose(vb, torch.zeros(1, OUT_CHANNELS, 24, 32)).frames([view])[0]
        ref = ClassicalRefiner()(view)
        assert torch.equal(frame.sky, ref.sky)
        assert torch.allclose(frame.rgb, ref.rgb, atol=1e-6)
        assert torch.allclose(frame.depth, ref.depth, rtol=1e-5)  # inf == inf for sky


def test_recompose_saves_a_composition_and_keeps_the_network(tmp_path):
    """scripts/recompose.py: the shipped weights with anchor and texture saved anew load with that composition, the
    same network, step and history, and refine a view as the spec "learned+anchor=..+texture=.." does; a key a spec
    may not override, or a file that is no refiner's, is one line and a non-zero exit, writing nothing."""
    import subprocess
    import sys

    from worldgen.pipeline.refiners import make_refiner

    out = tmp_path / "recomposed.pt"
    run = lambda *args: subprocess.run([sys.executable, "scripts/recompose.py", *map(str, args)],  # noqa: E731
                                       capture_output=True, text=True, cwd=DEFAULT_WEIGHTS.parents[2])
    r = run(DEFAULT_WEIGHTS, "anchor=0.55", "texture=0.5", "--out", out)
    assert r.returncode == 0, r.stderr
    net0, cfg0, _ = load_weights(DEFAULT_WEIGHTS)
    net1, cfg1, _ = load_weights(out)
    assert (cfg1.anchor, cfg1.texture) == (0.55, 0.5) and (cfg0.anchor, cfg0.texture) != (0.55, 0.5)
    assert dataclasses.replace(cfg1, anchor=cfg0.anchor, texture=cfg0.texture) == cfg0
    assert all(torch.equal(a, b) for a, b in zip(net0.state_dict().values(), net1.state_dict().values()))
    before, after = (torch.load(f, map_location="cpu", weights_only=False) for f in (DEFAULT_WEIGHTS, out))
    assert after["step"] == before["step"] and after["history"] == before["history"]
    view = make_view(seed=5)
    a, b = (make_refiner(spec, "cpu")(view) for spec in (str(out), "learned+anchor=0.55+texture=0.5"))  # (seed 0 each)
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.sky, b.sky)
    for args, code, says in (((DEFAULT_WEIGHTS, "bogus=1", "--out", tmp_path / "x.pt"), 2, "overrides are"),
                             ((tmp_path / "none.pt", "anchor=0.3"), 1, "no such refiner weights file")):
        r = run(*args)
        assert r.returncode == code and says in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "none.pt").exists()
    # a field the file was saved without (the shipped files predate flip_average): set, and as a bool
    saved = torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=False)
    assert "flip_average" not in (saved["refiner"] if "refiner" in saved else saved)["refiner_config"]
    r = run(DEFAULT_WEIGHTS, "flip_average=1", "--out", tmp_path / "flip.pt")
    assert r.returncode == 0 and "flip_average False -> True" in r.stdout, r.stderr
    assert load_weights(tmp_path / "flip.pt")[1] == dataclasses.replace(cfg0, flip_average=True)


def test_a_weights_file_with_a_composition_out_of_range_is_refused(tmp_path):
    """A weights file whose saved composition is out of range (an anchor of 5, saved by a training run before its
    options were checked) is refused on load with one line; `--refiner FILE` says it the same way."""
    from worldgen.pipeline.refiners import make_refiner

    blob = torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=False)
    (blob["refiner"] if "refiner" in blob else blob)["refiner_config"]["anchor"] = 5.0
    bad_file = tmp_path / "anchor5.pt"
    torch.save(blob, bad_file)
    with pytest.raises(ValueError, match="anchor must be between 0 and 1"):
        load_weights(bad_file)
    with pytest.raises(UserInputError, match="anchor must be between 0 and 1"):
        make_refiner(str(bad_file), "cpu")


def test_reset_colour_residual_gives_the_classical_colour_and_keeps_the_rest(tmp_path):
    """scripts/reset_colour_residual.py (the fidelity run's start): the shipped weights with the colour residual's head
    rows zeroed compose (without anchors) to the classical refiner's colour wherever both call the same pixels sky,
    while the network's depth and sky outputs, the step and everything else in the checkpoint stay."""
    import subprocess
    import sys

    from refine.classical import ClassicalRefiner

    out = tmp_path / "reset.pt"
    r = subprocess.run([sys.executable, "scripts/reset_colour_residual.py", str(DEFAULT_WEIGHTS), str(out)],
                       capture_output=True, text=True, cwd=DEFAULT_WEIGHTS.parents[2])
    assert r.returncode == 0, r.stderr
    before, after = (torch.load(f, map_location="cpu", weights_only=False) for f in (DEFAULT_WEIGHTS, out))
    assert after["step"] == before["step"] and after["history"] == before["history"]
    w0, w1 = before["refiner"]["state_dict"], after["refiner"]["state_dict"]
    assert torch.count_nonzero(w1["head.weight"][:3]) == 0 and torch.count_nonzero(w1["head.bias"][:3]) == 0
    assert torch.equal(w1["head.weight"][3:], w0["head.weight"][3:])  # depth and sky rows kept
    assert all(torch.equal(v, w0[k]) for k, v in w1.items() if not k.startswith("head."))
    net, cfg, _ = load_weights(out)
    cfg = dataclasses.replace(cfg, anchor=0.0, texture=0.0)
    for view in (make_view(), make_view(sky_known=False, seed=3)):
        x, vb = view_inputs([view], cfg)
        with torch.no_grad():
            frame = compose(vb, net(x), cfg).frames([view])[0]
        ref = ClassicalRefiner()(view)
        same = frame.sky == ref.sky
        assert same.float().mean() > 0.9
        assert torch.allclose(frame.rgb[same], ref.rgb[same], atol=1e-6)
    assert subprocess.run([sys.executable, "scripts/reset_colour_residual.py", str(tmp_path / "none.pt"), str(out)],
                          capture_output=True, text=True, cwd=DEFAULT_WEIGHTS.parents[2]).returncode == 1


def test_composition_keeps_covered_sharp_pixels_and_corrects_the_rest():
    from refine.classical import ClassicalRefiner

    view = make_view()
    cfg = LearnedRefinerConfig(noise=False)
    _, vb = view_inputs([view], cfg)
    base = ClassicalRefiner()(view)
    out = torch.zeros(1, OUT_CHANNELS, 24, 32)
    out[:, 0:3] = 0.1  # the network brightens everything by 0.1,
    out[:, 3] = 5.0  # pulls every generated pixel far nearer (the cap allows 1.5x),
    out[:, 4] = -20.0  # and says "no sky" everywhere (the dome overrules it where it knows the sky)
    c = compose(vb, out, cfg)
    rgb, depth = c.rgb[0].permute(1, 2, 0), c.depth()[0]
    covered = (view.alpha > 0.99) & (view.footprint < 1.0)
    assert torch.equal(rgb[covered], view.rgb[covered].clamp(0, 1))  # the world is not repainted
    assert torch.allclose(depth[covered], view.depth[covered], rtol=1e-5)
    blurry = view.footprint > 2.0  # re-synthesised: scene colour + the residual's detail; a flat shift is
    assert torch.allclose(rgb[blurry], view.rgb[blurry].clamp(0, 1), atol=1e-6)  # colour: dropped (pin_covered)
    c_unpinned = compose(vb, out, LearnedRefinerConfig(noise=False, pin_covered=False))
    rgb_unpinned = c_unpinned.rgb[0].permute(1, 2, 0)
    assert torch.allclose(rgb_unpinned[blurry], (view.rgb[blurry] + 0.1).clamp(0, 1), atol=1e-6)
    assert c.sky[0, 0, :4].all() and not c.sky[0, 0, 4:].any()
    assert torch.allclose(rgb[:4], base.rgb[:4], atol=1e-6)  # dome colour where the dome knows
    hole = (slice(8, 16), slice(10, 20))
    assert torch.allclose(rgb[hole], (base.rgb[hole] + 0.1).clamp(0, 1), atol=1e-6)
    assert torch.allclose(depth[hole], base.depth[hole] / 1.5, rtol=1e-4)  # capped at 1.5x nearer


def test_sky_colour_is_the_sky_components_even_where_the_dome_has_not_seen_it():
    """Uncovered pixels above the horizon that the dome does not know yet: the network may keep them
    sky, but their colour is the classical sky fill's, whatever residual the network outputs."""
    from refine.classical import ClassicalRefiner

    v = make_view(sky_known=False)
    alpha = v.alpha.clone()
    alpha[:4] = 0.0  # open sky at the top, unseen by the dome
    view = RenderedView(v.camera, v.rgb * alpha[..., None], alpha, v.depth * (alpha > 0), v.footprint, v.sky_rgb,
                        v.sky_known, v.horizon_elev_deg)
    cfg = LearnedRefinerConfig(noise=False)
    _, vb = view_inputs([view], cfg)
    base = ClassicalRefiner()(view)
    assert base.sky[:4].all()  # the classical refiner calls the top rows sky (above the horizon)
    out = torch.zeros(1, OUT_CHANNELS, 24, 32)
    out[:, 0:3] = 0.3
    c = compose(vb, out, cfg)
    rgb = c.rgb[0].permute(1, 2, 0)
    assert c.sky[0, 0, :4].all()
    assert torch.allclose(rgb[:4], base.rgb[:4], atol=1e-6)
    hole = (slice(8, 16), slice(10, 20))  # not sky: there the residual still applies
    assert torch.allclose(rgb[hole], (base.rgb[hole] + 0.3).clamp(0, 1), atol=1e-6)


def test_the_network_adds_sky_only_above_the_photos_horizon():
    """A hole the network calls sky below the photo's horizon stays ground (the classical rule): before, such
    holes went into the sky dome and, known to the dome, stayed sky in every later view (a real-photo flight
    with no sky in the photo filled a third of its frames with sky painted from generated ground)."""
    v = make_view(H=48, W=64, sky_known=False)
    alpha = torch.ones(48, 64)
    alpha[:, 20:40] = 0.0  # a hole from the top of the frame to the bottom
    view = RenderedView(v.camera, v.rgb * alpha[..., None], alpha, v.depth * (alpha > 0), v.footprint, v.sky_rgb,
                        v.sky_known, 5.0)  # the horizon 5 degrees up: rows above about 20 of 48
    cfg = LearnedRefinerConfig(noise=False)
    _, vb = view_inputs([view], cfg)
    out = torch.zeros(1, OUT_CHANNELS, 48, 64)
    out[:, 4] = 20.0  # the network: sky everywhere
    sky = compose(vb, out, cfg).sky[0, 0]
    above = vb.above_horizon[0, 0]
    x, _ = view_inputs([view], cfg)
    assert torch.equal(x[:, 9:10] > 0, vb.above_horizon)  # what replayed entries derive it from (refine/train/replay.py)
    assert above[:10].all() and not above[30:].any()
    assert torch.equal(sky, above & (alpha < 0.5))  # uncovered and above the horizon: sky; below it: ground


def test_ground_the_network_takes_from_the_sky_gets_the_hole_fill_not_the_sky_colour():
    """Uncovered pixels above the horizon (classical: sky, coloured from the dome) that the network calls
    ground start from the classical hole fill. (Before: from the sky colour; over real photos that ground
    was lifted sky-blue, kept by the world, and grew into saturated blue and green fields.)"""
    from refine.classical import ClassicalRefiner

    v = make_view()  # the dome knows the top 4 rows (blue)
    alpha = v.alpha.clone()
    alpha[4:6] = 0.0  # open rows under them, above the horizon, that the dome has not seen
    view = RenderedView(v.camera, v.rgb * alpha[..., None], alpha, v.depth * (alpha > 0), v.footprint, v.sky_rgb,
                        v.sky_known, v.horizon_elev_deg)
    cfg = LearnedRefinerConfig(noise=False)
    _, vb = view_inputs([view], cfg)
    base = ClassicalRefiner().refine(view)
    assert base.frame.sky[4:6].all()  # the classical refiner calls them sky, coloured like the dome
    sky_blue = torch.tensor([0.4, 0.6, 0.9])
    assert torch.allclose(base.frame.rgb[4:6], sky_blue.expand(2, 32, 3), atol=0.02)
    out = torch.zeros(1, OUT_CHANNELS, 24, 32)
    out[:, 4] = -20.0  # the network: no sky (the dome still rules where it knows)
    c = compose(vb, out, cfg)
    rgb = c.rgb[0].permute(1, 2, 0)
    assert c.sky[0, 0, :4].all() and not c.sky[0, 0, 4:6].any()
    assert torch.allclose(rgb[4:6], base.ground_rgb[4:6], atol=1e-6)
    assert (rgb[4:6] - sky_blue).abs().mean() > 0.1  # not sky-blue ground


def test_refiner_roundtrip_and_bad_files(tmp_path):
    net = RefinerNet(TINY)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05)
    path = tmp_path / "r.pt"
    save_weights(path, net, LearnedRefinerConfig(), meta={"note": "test"})
    net2, cfg2, meta = load_weights(path)
    assert meta == {"note": "test"} and net2.config == TINY
    x = torch.randn(1, IN_CHANNELS, 16, 16)
    assert torch.allclose(net2(x), net.half().float()(x), atol=1e-5)  # stored in float16
    ref = LearnedRefiner.load(path)
    view = make_view()
    frame = ref(view)
    assert frame.rgb.shape == (24, 32, 3) and frame.rgb.min() >= 0 and frame.rgb.max() <= 1
    assert torch.equal(LearnedRefiner.load(path)(view).rgb, frame.rgb)  # same seed: same noise, same frame
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a worldgen refiner weights file"):
        load_weights(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="no such"):
        load_weights(tmp_path / "missing.pt")


def test_gradients_reach_earlier_steps_through_the_world():
    """Step 2's loss depends on step 1's output through lifting and rendering (persistent mode)."""
    from refine.train.config import DataConfig
    from refine.train.data import FlightCache
    from refine.train.unroll import unroll
    from renderers import TorchRenderer

    cache = FlightCache(DataConfig(width=24, height=24, flights=1, frames=6, flights_per_world=1, world_grid=128,
                                   quality="fast"), torch.device("cpu"))
    cache.fill()
    clips = cache.sample(1, 3, torch.Generator().manual_seed(0))
    net = RefinerNet(TINY)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.02)
    # With the horizon at the median of the sky's lowest pixels, this 24x24 clip's few holes lie below it:
    # ground, which step 1 fills and lifts (under the default 10 % rule they are sky, which is never
    # lifted, so nothing of step 1 would reach step 2 in this clip).
    from worldgen.pipeline.generator import GeneratorConfig

    res = unroll(net, clips, ["persistent"], 0, 2, TorchRenderer(), LearnedRefinerConfig(),
                 GeneratorConfig(horizon_quantile=0.5))
    first = res[0].out.rgb
    first.retain_grad()
    res[1].out.rgb.sum().backward()
    assert first.grad is not None and first.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """The tiny preset trained 16 steps straight, and again as 8 + 8 steps resumed from a checkpoint."""
    from configs.train import TRAIN_PRESETS
    from refine.train.trainer import train

    base = dataclasses.replace(TRAIN_PRESETS["train-refiner-tiny"].config, steps=16, log_every=4, checkpoint_every=4,
                               sample_every=8)
    root = tmp_path_factory.mktemp("train")
    s1 = train(dataclasses.replace(base, out=str(root / "a")))
    pieces = dataclasses.replace(base, out=str(root / "b"), stop_after=8)
    p1 = train(pieces)
    p2 = train(pieces)
    return root, base, s1, p1, p2


def _held_loss(cfg, net) -> float:
    """The weighted reconstruction loss of `net` on 4 fixed clips (fixed noise), persistent and per-frame."""
    from refine.train.data import FlightCache
    from refine.train.unroll import reconstruction_losses, unroll
    from renderers import TorchRenderer

    cache = FlightCache(cfg.data, torch.device("cpu"))
    cache.fill()
    clips = cache.sample(4, 3, torch.Generator().manual_seed(123))
    torch.manual_seed(0)
    with torch.no_grad():
        res = unroll(net, clips, ["persistent", "per-frame"] * 2, 0, 2, TorchRenderer(), cfg.refiner, train=False)
    from refine.train.unroll import psnr
    from worldgen.core.metrics import ssim

    total = 0.0
    for r in res:
        terms = reconstruction_losses(r, cfg.refiner)
        assert float(terms["neg_psnr"]) == pytest.approx(-psnr(r.out.rgb, r.gt_rgb), abs=1e-3)  # the logged score
        held_ssim = [ssim(a.permute(1, 2, 0), b.permute(1, 2, 0)) for a, b in zip(r.out.rgb, r.gt_rgb)]
        assert float(terms["ssim"]) == pytest.approx(1 - sum(held_ssim) / len(held_ssim), abs=1e-5)  # the eval's SSIM
        total += sum(getattr(cfg.loss, k) * float(v) for k, v in terms.items())
    return total / len(res)


def test_training_loss_falls(tiny_runs):
    root, cfg, s1, _, _ = tiny_runs
    hist = [json.loads(line) for line in (root / "a" / "log.jsonl").read_text().splitlines()]
    assert [h["step"] for h in hist] == [4, 8, 12, 16]
    trained, _, _ = load_weights(root / "a" / "refiner.pt")
    torch.manual_seed(cfg.seed)
    fresh = RefinerNet(cfg.net)  # the run's starting point (same seed)
    before, after = _held_loss(cfg, fresh), _held_loss(cfg, trained)
    assert after < 0.985 * before, (before, after)  # deterministic: same seeds, same CPU ops
    for f in ("loss.png", "psnr.png", "detail.png", "refiner.pt", "checkpoint.pt", "checkpoint-compact.pt", "train.json"):
        assert (root / "a" / f).is_file(), f
    assert (root / "a" / "samples" / "step_000016.png").is_file()
    assert s1["steps_done"] == 16


def test_training_resumes_bit_exactly(tiny_runs):
    """8 + 8 steps resumed from a checkpoint end as 16 straight steps: the same weights of both networks, cursor
    and loss history (every logged figure but the timings, in the checkpoint and in log.jsonl)."""
    root, _, _, p1, p2 = tiny_runs
    assert p1["steps_done"] == 8 and p2["steps_done"] == 16
    a = torch.load(root / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(root / "b" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 16 and a["cursor"] == b["cursor"]
    for k, v in a["refiner"]["state_dict"].items():
        assert torch.equal(v, b["refiner"]["state_dict"][k]), k
    for k, v in a["disc"].items():
        assert torch.equal(v, b["disc"][k]), k
    timing = {"steps_per_second", "data_frames_per_second", "gpu_util", "seconds"}
    figures = lambda records: [{k: v for k, v in r.items() if k not in timing} for r in records]  # noqa: E731
    logs = [[json.loads(line) for line in (root / r / "log.jsonl").read_text().splitlines()] for r in "ab"]
    assert [r["step"] for r in a["history"]] == [4, 8, 12, 16]
    assert figures(a["history"]) == figures(b["history"]) == figures(logs[0]) == figures(logs[1])


@pytest.mark.parametrize("weights", [DEFAULT_WEIGHTS, FIDELITY_WEIGHTS], ids=["learned", "learned-fidelity"])
def test_shipped_weights_refine_a_frame(weights):
    ref = LearnedRefiner.load(weights)
    frame = ref(make_view(H=64, W=96))
    assert frame.rgb.shape == (64, 96, 3)
    assert torch.isfinite(frame.rgb).all()
    meta = json.loads(weights.with_suffix(".json").read_text())
    assert meta["history"] and all(h["steps"] > 0 and h["command"] and h["hardware"] for h in meta["history"])
    blob = torch.load(weights, map_location="cpu", weights_only=False)
    assert blob["step"] == meta["history"][-1]["steps"]  # the JSON describes the file it sits beside


def _fake_photos(folder):
    """Three small photos: a sky gradient over a noisy ground (enough for the depth network and the critic)."""
    import numpy as np
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        img = np.zeros((48, 64, 3))
        img[:20] = np.linspace([0.4, 0.6, 0.9], [0.8, 0.85, 0.9], 20)[:, None]
        img[20:] = 0.3 + 0.2 * rng.random((28, 64, 3)) * np.array([0.6, 1.0, 0.4])
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_a_step_with_a_non_finite_loss_is_dropped(tmp_path, monkeypatch):
    """One NaN loss must not reach the weights (on the H200 one did, and every later checkpoint was NaN): the
    step is dropped, logged as skipped, and training goes on with finite weights."""
    from configs.train import TRAIN_PRESETS
    from refine.train import trainer

    real, calls = trainer.flight_step_terms, []

    def poisoned(*args, **kwargs):
        loss, terms, fake, real_ = real(*args, **kwargs)
        calls.append(1)
        return (loss * math.nan if len(calls) == 2 else loss), terms, fake, real_

    monkeypatch.setattr(trainer, "flight_step_terms", poisoned)
    cfg = dataclasses.replace(TRAIN_PRESETS["train-refiner-tiny"].config, steps=4, log_every=4, checkpoint_every=4,
                              sample_every=0, out=str(tmp_path / "run"))
    trainer.train(cfg)
    assert len(calls) == 4
    (rec,) = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert rec["skipped"] == 0.25 and math.isfinite(rec["loss"]) and math.isfinite(rec["grad_norm"])
    assert rec["nonfinite_grad_norm"] == 0.0  # the loss was NaN, the step dropped before its gradient
    # where it came from: not the rendered input, the network's output or the critic (the loss was poisoned)
    assert (rec["nonfinite_origin_input"], rec["nonfinite_origin_output"], rec["nonfinite_origin_critic"]) == (0, 0, 0)
    net, _, _ = load_weights(tmp_path / "run" / "refiner.pt")
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_the_gradient_probe_names_where_a_non_finite_gradient_entered(tmp_path, monkeypatch):
    """A finite loss whose gradient is not finite (sqrt at 0: how the H200's photo steps failed, loss finite,
    gradient norm not) is dropped, and the probe logs the stages the bad gradient reached."""
    from configs.train import TRAIN_PRESETS
    from refine.train import trainer

    real, calls = trainer.flight_step_terms, []

    def poisoned(results, *args, **kwargs):
        loss, terms, fake, real_ = real(results, *args, **kwargs)
        calls.append(1)
        if len(calls) == 2:  # value 0, gradient inf * 0 = NaN into the composed frame
            loss = loss + (results[-1].out.rgb.mean() * 0).sqrt()
        return loss, terms, fake, real_

    monkeypatch.setattr(trainer, "flight_step_terms", poisoned)
    cfg = dataclasses.replace(TRAIN_PRESETS["train-refiner-tiny"].config, steps=3, log_every=3, checkpoint_every=3,
                              sample_every=0, out=str(tmp_path / "run"), grad_probe=True)
    trainer.train(cfg)
    (rec,) = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert rec["skipped"] == pytest.approx(1 / 3, abs=1e-4) and math.isfinite(rec["loss"])
    assert rec["nonfinite_grad_norm"] == 1.0 and rec["nonfinite_rgb"] == 0.0  # the terms were finite
    assert rec["nonfinite_grad_at_composed"] == 1.0 and rec["nonfinite_grad_at_net_out"] == 1.0
    net, _, _ = load_weights(tmp_path / "run" / "refiner.pt")
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_replay_with_photo_steps_resumes_at_a_photo_step(tmp_path):
    """The replay buffer is rebuilt at checkpoint steps even when that step is a still-photo step,
    so a run resumed there continues (instead of finding an empty buffer)."""
    from configs.train import TRAIN_PRESETS
    from refine.train.config import ReplayConfig
    from refine.train.trainer import train

    base = dataclasses.replace(TRAIN_PRESETS["train-refiner-photos-tiny"].config, out=str(tmp_path / "run"), steps=5,
                               stop_after=3, checkpoint_every=3, replay=ReplayConfig(capacity=6, batch=2, refill_every=2))
    base = dataclasses.replace(base, photos=dataclasses.replace(base.photos, folder=str(_fake_photos(tmp_path / "p"))))
    assert base.photos.every == 2  # steps 1, 3, 5 are photo steps: the resume at 3 starts with one
    assert train(base)["steps_done"] == 3
    assert train(base)["steps_done"] == 5


def test_still_photo_steps_run_and_resume(tmp_path):
    """Still-photo steps (cycle and forward flights over real-looking photos) mix with flight steps,
    log their own terms, and their critic travels in the checkpoint."""
    from configs.train import TRAIN_PRESETS
    from refine.train.trainer import train

    photos = _fake_photos(tmp_path / "photos")
    base = dataclasses.replace(TRAIN_PRESETS["train-refiner-photos-tiny"].config, out=str(tmp_path / "run"), steps=4,
                               stop_after=2, sample_every=2)
    base = dataclasses.replace(base, photos=dataclasses.replace(base.photos, folder=str(photos), critic_steps=3))
    assert train(base)["steps_done"] == 2
    assert train(base)["steps_done"] == 4  # resumed
    hist = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert any("photo_adversarial" in h for h in hist) and any("psnr_refined" in h for h in hist)
    assert any("photo_colour" in h and "photo_band_energy" in h for h in hist) and any("colour" in h for h in hist)
    assert any(h.get("photo_colour_generated", -1.0) >= 0 for h in hist)
    # one photo step in two: each due sample grid still comes for both kinds of step
    samples = sorted(p.name for p in (tmp_path / "run" / "samples").iterdir())
    assert "step_000003.png" in samples, samples  # the flight step after the multiple (step 2 was a photo step)
    assert any(n.startswith("step_000002_photo_") for n in samples), samples
    assert (tmp_path / "run" / "photo.png").stat().st_size > 1000  # the photo critic's curve, for a person to look at
    blob = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert blob["step"] == 4 and blob["disc_photo"] is not None and blob["opt_dp"] is not None
    # two photo steps (2 and 4), three critic updates each
    assert {int(v["step"]) for v in blob["opt_dp"]["state"].values()} == {6}


def test_a_photo_critic_on_generated_ground_trains_and_logs(tmp_path, monkeypatch):
    """critic_generated: the photo critic weighs generated frames' patches by what the refiner generated (not sky)
    and real crops' by their ground (the depth network's sky); its updates and the generator's term stay finite."""
    from configs.train import TRAIN_PRESETS
    from refine import losses
    from refine.train.trainer import train

    weights = {"g": [], "d_real": [], "d_fake": []}  # the patch weights the hinge losses were given
    g_hinge, d_hinge = losses.g_hinge_loss, losses.d_hinge_loss

    def g_spy(d_fake, weight=None):
        weights["g"].append(weight)
        return g_hinge(d_fake, weight)

    def d_spy(d_real, d_fake, real_weight=None, fake_weight=None):
        weights["d_real"].append(real_weight)
        weights["d_fake"].append(fake_weight)
        return d_hinge(d_real, d_fake, real_weight, fake_weight)

    monkeypatch.setattr(losses, "g_hinge_loss", g_spy)
    monkeypatch.setattr(losses, "d_hinge_loss", d_spy)
    photos = _fake_photos(tmp_path / "photos")
    base = dataclasses.replace(TRAIN_PRESETS["train-refiner-photos-tiny"].config, out=str(tmp_path / "run"), steps=4)
    base = dataclasses.replace(base, photos=dataclasses.replace(base.photos, folder=str(photos), critic_steps=2,
                                                                critic_generated=True, cycle_share=0.0))
    assert train(base)["steps_done"] == 4
    for key, got in weights.items():  # the photo critic's calls were weighted, by shares in 0..1
        given = [w for w in got if w is not None]
        assert given, f"no weighted {key} hinge call"
        assert all(float(w.min()) >= 0 and float(w.max()) <= 1 and float(w.max()) > 0 for w in given)
    hist = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    photo = [h for h in hist if "photo_disc" in h]
    assert photo and all(math.isfinite(h["photo_disc"]) and math.isfinite(h["photo_adversarial"]) for h in photo)
    assert all(h["skipped"] == 0.0 for h in hist)


def test_a_conditional_photo_critic_trains_and_its_pairs_are_what_they_claim(tmp_path):
    """critic_condition: each photo's condition is its ground's RGB mean and spread (scaled); mismatched pairs are
    crops with another photo's condition (first half) or recoloured crops with their own (rest); a photo run
    with it (and crops poor in detail as fakes) trains, stays finite and saves a critic that sees RGB, its detail and
    the 6 condition channels."""
    from configs.train import TRAIN_PRESETS
    from refine.train.config import StillPhotoConfig
    from refine.train.photos import PhotoSource
    from refine.train.trainer import train

    photos = _fake_photos(tmp_path / "photos")
    src = PhotoSource(StillPhotoConfig(folder=str(photos)), 32, 24, torch.device("cpu"))
    cond = src.colour_condition([0, 1, 2, 0])
    assert cond.shape == (4, 6) and torch.equal(cond[0], cond[3])
    img = src.photos[0]
    ground = ~src.depth(img.permute(1, 2, 0))[1]
    px = img.permute(1, 2, 0)[ground]  # [n, 3]
    assert torch.allclose(cond[0, :3], (px.mean(0) - 0.5) * 4, atol=1e-5)
    assert torch.allclose(cond[0, 3:], px.std(0) * 8, atol=1e-4)
    gen = torch.Generator().manual_seed(0)
    crops, which = src.crops(4, gen)
    assert crops.shape == (4, 3, 24, 32) and len(which) == 4
    one_by_one = torch.stack([(~src.depth(c.permute(1, 2, 0))[1]).float()[None] for c in crops])
    assert torch.equal(src.ground(crops), one_by_one)  # the crops' ground, run as one batch
    others = src.other_photos(which, torch.Generator().manual_seed(1))
    assert all(o != w for o, w in zip(others, which))
    images, wrong = src.mismatched(crops, which, gen)
    own = src.colour_condition(which)
    assert torch.equal(images[:2], crops[:2]) and not torch.equal(wrong[:2], own[:2])
    assert torch.equal(wrong[2:], own[2:]) and (images[2:] - crops[2:]).abs().max() > 0.01

    base = dataclasses.replace(TRAIN_PRESETS["train-refiner-photos-tiny"].config, out=str(tmp_path / "run"), steps=4)
    base = dataclasses.replace(base, photos=dataclasses.replace(base.photos, folder=str(photos), critic_steps=2,
                                                                critic_generated=True, critic_condition=True,
                                                                critic_degraded=True))
    assert train(base)["steps_done"] == 4
    hist = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    photo = [h for h in hist if "photo_disc" in h]
    assert photo and all(math.isfinite(h["photo_disc"]) and math.isfinite(h["photo_adversarial"]) for h in photo)
    assert all(h["skipped"] == 0.0 for h in hist)
    blob = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert blob["disc_photo"]["nets.0.blocks.0.parametrizations.weight.original"].shape[1] == 12


def test_colour_jitter_changes_whole_clips_alike_and_keeps_greys_grey():
    from refine.train.config import ColourJitterConfig, DataConfig
    from refine.train.data import FlightCache, colour_matrix, colour_remap

    assert torch.allclose(colour_matrix(0.0, 1.0, (1.0, 1.0, 1.0)), torch.eye(3), atol=1e-6)
    M = colour_matrix(120.0, 1.0, (1.0, 1.0, 1.0))  # a third of a turn about the grey axis: red -> green -> blue
    assert torch.allclose(M @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    grey = torch.full((3,), 0.4)
    assert torch.allclose(colour_matrix(-37.0, 1.5, (1.0, 1.0, 1.0)) @ grey, grey, atol=1e-6)
    # share 0: the clip as it is, and nothing drawn (earlier runs' clips stay the same)
    gen = torch.Generator().manual_seed(3)
    rgb = torch.rand(2, 8, 8, 3, generator=gen)
    state = gen.get_state()
    out, params = colour_remap(rgb, ColourJitterConfig(share=0.0), gen)
    assert out is rgb and params is None and torch.equal(gen.get_state(), state)
    # share 1: one change for every frame of the clip
    clip = torch.cat([rgb[:1], rgb[:1]])
    out, params = colour_remap(clip, ColourJitterConfig(share=1.0), gen)
    assert params is not None and torch.equal(out[0], out[1]) and (out - clip).abs().max() > 0.02
    assert out.min() >= 0 and out.max() <= 1
    # in the training cache: about `share` of the clips, reproducible from the step's generator, and each clip
    # is its flight's frames under the change it reports
    cfg = DataConfig(width=32, height=32, flights=2, frames=6, flights_per_world=2, refresh_every=0, world_grid=128,
                     seed_start=500_000, quality="fast", flip=False, colour=ColourJitterConfig(share=0.5))
    cache = FlightCache(cfg, torch.device("cpu"))
    cache.fill()
    a = cache.sample(12, 3, torch.Generator().manual_seed(7))
    b = cache.sample(12, 3, torch.Generator().manual_seed(7))
    assert torch.equal(a.rgb, b.rgb)
    changed = [i for i, inf in enumerate(a.info) if inf["colour"] is not None]
    assert 0 < len(changed) < 12
    for i, inf in enumerate(a.info):
        slot = inf["flight"] % cfg.flights
        raw = cache.rgb[slot, inf["start"]: inf["start"] + 3 * inf["stride"]: inf["stride"]].float() / 255
        c = inf["colour"]
        want = raw if c is None else \
            (raw @ colour_matrix(c["hue_deg"], c["saturation"], c["gains"]).T).clamp(0, 1) ** c["gamma"]
        assert torch.allclose(a.rgb[i], want, atol=1e-6), i


def test_replay_buffer_stores_samples_and_mirrors_consistently():
    """Entries come back as stored (noise channel aside), a mirrored entry is mirrored in every tensor
    together, and the ring overwrites the oldest entries."""
    from refine.train.replay import ReplayBuffer
    from refine.train.unroll import StepResult

    def step(value: float, B: int = 3) -> StepResult:
        g = torch.Generator().manual_seed(int(value))
        x = torch.rand(B, 11, 4, 6, generator=g) + value
        views = view_inputs([make_view(H=4, W=6) for _ in range(B)], LearnedRefinerConfig(noise=False))[1]
        views.base_rgb = x[:, :3].clone()
        gt = x[:, :3] * 2
        d = torch.ones(B, 1, 4, 6)
        return StepResult(out=None, views=views, gt_rgb=gt, gt_depth=d, gt_sky=d < 0, x=x)

    buf = ReplayBuffer(4)
    buf.add([step(0.0), step(10.0)])  # 6 entries into 4 slots: the last 4 survive
    assert buf.size == 4 and buf.added == 6
    assert buf.store["x"].min() >= 0 and sorted(float(v) // 10 for v in buf.store["x"][:, 0, 0, 0]) == [0, 1, 1, 1]
    s = buf.sample(64, torch.Generator().manual_seed(1))
    assert s.x.shape == (64, 11, 4, 6) and s.views.ref.shape == (64, 1, 1, 1)
    # colour channels of x, the view's base colour and the truth stay tied, mirrored or not
    assert torch.equal(s.x[:, :3], s.views.base_rgb) and torch.equal(s.gt_rgb, 2 * s.x[:, :3])
    stored = {tuple(buf.store["x"][i, 0, 0].tolist()) for i in range(4)}
    mirrored = sum(tuple(s.x[j, 0, 0].flip(-1).tolist()) in stored and tuple(s.x[j, 0, 0].tolist()) not in stored
                   for j in range(64))
    assert 10 < mirrored < 54  # about half the draws are mirrored
    assert not torch.equal(s.x[:, -1], buf.sample(64, torch.Generator().manual_seed(1), noise=False).x[:, -1])


@pytest.mark.parametrize("start_fill", [1.0, 0.5])
def test_replay_training_learns_and_resumes_bit_exactly(tmp_path, start_fill):
    """Replay training: the loss on held clips falls, and 8 + 8 steps resumed at a rebuild step equal
    16 straight steps bit for bit, with the buffer rebuilt whole or half (`ReplayConfig.start_fill`)."""
    from configs.train import TRAIN_PRESETS
    from refine.train.config import ReplayConfig
    from refine.train.trainer import train

    base = dataclasses.replace(TRAIN_PRESETS["train-refiner-tiny"].config, steps=16, log_every=4, checkpoint_every=8,
                               sample_every=16,
                               replay=ReplayConfig(capacity=12, batch=4, refill_every=2, start_fill=start_fill))
    s1 = train(dataclasses.replace(base, out=str(tmp_path / "a")))
    pieces = dataclasses.replace(base, out=str(tmp_path / "b"), stop_after=8)
    assert train(pieces)["steps_done"] == 8 and train(pieces)["steps_done"] == 16
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    for k, v in a["refiner"]["state_dict"].items():
        assert torch.equal(v, b["refiner"]["state_dict"][k]), k
    hist = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert hist[-1]["replay_entries_added"] > 12 and "detail_refined" in hist[-1]
    # 4 entries an unroll (2 clips x 2 steps): the first rebuild fills 12 (3 unrolls) or 8 (6 of 12, rounded up to
    # whole unrolls), then one refill at step 2 by the first log
    assert hist[0]["replay_entries_added"] == (16 if start_fill == 1.0 else 12)
    trained, _, _ = load_weights(tmp_path / "a" / "refiner.pt")
    torch.manual_seed(base.seed)
    # (16 tiny steps: -1.4 % with the detail anchor's quadrature share, which adds detail no training removes;
    # an untrained or diverging network gives >= 1.0)
    assert _held_loss(base, trained) < 0.99 * _held_loss(base, RefinerNet(base.net))
    assert s1["steps_done"] == 16 and (tmp_path / "a" / "samples" / "step_000016.png").is_file()


def test_bounded_residual_limits_colour_shifts_but_keeps_small_detail():
    """The colour residual's block mean is held within max_shift and the rest within max_detail;
    small residuals pass almost unchanged, and with both bounds 0 it is the identity."""
    from refine.learned import bounded_residual

    g = torch.Generator().manual_seed(0)
    small = 0.01 * torch.randn(2, 3, 32, 48, generator=g)
    cfg = LearnedRefinerConfig(max_shift=0.05, max_detail=0.25)
    assert torch.equal(bounded_residual(small, LearnedRefinerConfig()), small)
    assert (bounded_residual(small, cfg) - small).abs().max() < 2e-3
    neon = torch.full((1, 3, 32, 48), 0.6)  # a flat colour shift, as painted into real photos
    neon[..., ::2] += 0.5  # with stripes on top
    out = bounded_residual(neon, cfg)
    block_mean = torch.nn.functional.adaptive_avg_pool2d(out, (4, 6))
    assert block_mean.abs().max() <= 0.06 and out.abs().max() <= 0.3 + 1e-6  # not 0.85
    assert out[..., ::2].mean() - out[..., 1::2].mean() > 0.2  # the stripes (detail) survive


def test_bounded_residual_pins_the_colour_of_covered_pixels():
    """With max_shift on, covered pixels get detail but no colour shift (the feedback loop that turned
    real-photo snow neon green); holes may shift up to max_shift."""
    from refine.learned import bounded_residual

    cfg = LearnedRefinerConfig(max_shift=0.1, max_detail=0.3)
    res = torch.full((1, 3, 16, 16), 0.5)
    covered = torch.zeros(1, 1, 16, 16)
    covered[..., :8] = 1.0
    out = bounded_residual(res, cfg, covered)
    assert out[..., :8].abs().max() < 1e-6
    assert torch.allclose(out[..., 8:], torch.full_like(out[..., 8:], 0.1 * math.tanh(5.0)))


def test_default_composition_sharpens_covered_pixels_without_repainting_them():
    """By default (no bounds, `pin_covered`) a covered pixel takes the residual's detail but not its colour
    shift, a hole takes the residual whole; with `pin_covered` off the residual passes unchanged."""
    from refine.learned import bounded_residual

    res = torch.full((1, 3, 16, 16), 0.2)
    res[..., ::2] += 0.1  # stripes (detail) on a shift
    covered = torch.zeros(1, 1, 16, 16)
    covered[..., :8] = 1.0
    out = bounded_residual(res, LearnedRefinerConfig(), covered)
    assert torch.equal(out[..., 8:][..., 4:], res[..., 8:][..., 4:])  # holes (away from the blend): untouched
    left = out[..., :8]
    assert left.mean().abs() < 0.01  # the shift of 0.25 is gone on covered pixels ...
    assert (left[..., ::2].mean() - left[..., 1::2].mean() - 0.1).abs() < 1e-5  # ... the stripes are kept
    assert torch.equal(bounded_residual(res, LearnedRefinerConfig(pin_covered=False), covered), res)


def _mean_worker(rank: int, port: int, queue) -> None:
    import os

    from refine.train.common import Dist

    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dd = Dist("cpu")
    # rank 0 logged a cycle photo step's terms, rank 1 a forward one's: different keys
    values = {"loss": 1.0 + rank, "photo_l1": 0.5} if rank == 0 else {"loss": 1.0 + rank, "photo_adversarial": 2.0}
    queue.put((rank, dd.mean(values), dd.mean({})))
    torch.distributed.destroy_process_group()


def test_logged_means_over_processes_that_log_different_keys():
    """Two gloo processes: each key is averaged over the processes that logged it (on the GPU a
    still-photo interval where the ranks drew different path kinds hung the all-reduce)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_mean_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict((r, (m, e)) for r, m, e in (queue.get(timeout=120) for _ in procs))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    want = {"loss": 1.5, "photo_l1": 0.5, "photo_adversarial": 2.0}
    assert got[0] == got[1] == (want, {})


def test_forward_photo_flights_grow_progressively(tmp_path):
    """InfiniteNature-Zero's progressive trajectory growth: forward flights over a photo lengthen from
    `forward_frames` to `forward_frames_max` over `grow_steps` steps from `grow_from`, and the clips have that
    many frames."""
    from refine.train.config import StillPhotoConfig
    from refine.train.photos import PhotoSource

    cfg = StillPhotoConfig(folder=str(_fake_photos(tmp_path / "p")), batch=1, forward_frames=4, forward_grad=1,
                           forward_frames_max=10, grow_from=100, grow_steps=60)
    lengths = [cfg.forward_frames_at(s) for s in (0, 100, 130, 160, 999)]
    assert lengths == [4, 4, 7, 10, 10], lengths
    assert StillPhotoConfig().forward_frames_at(10**6) == StillPhotoConfig().forward_frames  # no growth by default
    src = PhotoSource(cfg, 32, 24, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    assert src.clips("forward", gen, 130)[0].depth.shape[1] == 7
    assert src.clips("cycle", gen, 130)[0].depth.shape[1] == cfg.cycle_frames
    with pytest.raises(ValueError, match="forward_frames_max"):
        StillPhotoConfig(forward_frames_max=3).validate()


def test_a_run_resumed_with_another_photo_critic_starts_a_new_one(tmp_path, capsys):
    """A checkpoint whose photo critic sees other inputs (image only, before the detail channels) resumes
    with a new critic and new critic moments instead of failing to load."""
    from configs.train import TRAIN_PRESETS
    from refine.train.trainer import train

    base = dataclasses.replace(TRAIN_PRESETS["train-refiner-photos-tiny"].config, out=str(tmp_path / "run"), steps=4,
                               stop_after=2, sample_every=0)
    photos = dataclasses.replace(base.photos, folder=str(_fake_photos(tmp_path / "p")))
    assert train(dataclasses.replace(base, photos=dataclasses.replace(photos, critic_detail=0.0)))["steps_done"] == 2
    assert train(dataclasses.replace(base, photos=photos))["steps_done"] == 4
    assert "starting a new one" in capsys.readouterr().out
    blob = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert blob["disc_photo"]["nets.0.blocks.0.parametrizations.weight.original"].shape[1] == 6  # RGB and its detail


def test_the_ground_anchor_is_the_photos_ground_colour_by_elevation():
    """`ground_anchor`: mean ground colour per band of elevation relative to the horizon; bands without ground
    take the nearest bands' colours; `anchor_colour` reads it back at any elevation."""
    from worldgen.core.anchor import ANCHOR_BANDS, ANCHOR_STEP_DEG, ANCHOR_TOP_DEG, anchor_colour, ground_anchor

    H, W = 60, 40
    cam = Camera.from_fov(60.0, W, H)  # level: rows map to elevations +-~34 degrees
    elev = cam.ray_elevation_deg()
    sky = elev > 0.0
    rgb = torch.zeros(H, W, 3)
    rgb[..., 0] = (elev < -15).float()  # red near ground far below the horizon,
    rgb[..., 2] = ((elev >= -15) & ~sky).float()  # blue ground near the horizon
    depth = torch.where(sky, torch.full((H, W), math.inf), torch.full((H, W), 10.0))
    table = ground_anchor(Frame(rgb, depth, sky, cam), horizon_elev_deg=0.0)
    assert table.shape == (ANCHOR_BANDS, 3)
    band = lambda rel: int(round((ANCHOR_TOP_DEG - rel) / ANCHOR_STEP_DEG))  # noqa: E731
    assert torch.allclose(table[band(-28)], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(table[band(-4)], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(table[band(12)], table[band(-4)])  # above the horizon: no ground, the nearest band's
    assert torch.allclose(table[-1], table[band(-28)])  # below the view: held
    at = anchor_colour(table, torch.tensor([[-28.0, -4.0]]))
    assert at.shape == (1, 2, 3) and torch.allclose(at[0, 0], table[band(-28)]) and torch.allclose(at[0, 1], table[band(-4)])
    assert ground_anchor(Frame(rgb, torch.full((H, W), math.inf), torch.ones(H, W, dtype=torch.bool), cam), 0.0) is None


def test_the_anchor_pulls_only_generated_ground_towards_the_photos_colour():
    """`anchor` > 0: generated ground (the hole) moves that fraction of the way from its local mean towards
    the anchor colour; covered pixels and the sky do not move; 0 leaves the composition as it was."""
    from worldgen.core.anchor import ANCHOR_BANDS

    v = make_view()
    grey = torch.full((ANCHOR_BANDS, 3), 0.5)
    view = dataclasses.replace(v, ground_anchor=grey)
    out = torch.zeros(1, OUT_CHANNELS, 24, 32)
    out[:, 0:3] = 0.2  # the network brightens what it generates
    out[:, 4] = -20.0
    off = LearnedRefinerConfig(noise=False, anchor=0.0)
    plain = compose(view_inputs([view], off)[1], out, off)
    cfg = LearnedRefinerConfig(noise=False, anchor=0.5)
    _, vb = view_inputs([view], cfg)
    assert vb.anchor_rgb is not None and torch.allclose(vb.anchor_rgb, torch.full((1, 3, 24, 32), 0.5))
    pulled = compose(vb, out, cfg)
    a, b = plain.rgb[0].permute(1, 2, 0), pulled.rgb[0].permute(1, 2, 0)
    hole = (slice(10, 14), slice(12, 18))  # inside the hole, away from its edges
    before = a[hole].mean()
    # (the whole pull is ~0.1: a bound of 0.03 passed strengths of 0.34-0.66)
    assert torch.allclose(b[hole].mean(), before + 0.5 * (0.5 - before), atol=0.005)
    covered = (view.alpha > 0.99) & (view.footprint < 1.0)
    assert torch.equal(a[covered], b[covered])
    assert torch.equal(a[:4], b[:4])  # the sky
    none = compose(view_inputs([v], cfg)[1], out, cfg)  # a view without an anchor: as before
    assert torch.equal(none.rgb, plain.rgb)


def _textured_photo(H=64, W=96):
    """A photo frame: sky on the top quarter, below it ground of a flat colour with a fine checker (detail)."""
    cam = Camera.from_fov(60.0, W, H)
    rgb = torch.full((H, W, 3), 0.5)
    checker = ((torch.arange(H)[:, None] + torch.arange(W)[None]) % 2).float()
    rgb += 0.2 * (checker[..., None] - 0.5)
    sky = torch.zeros(H, W, dtype=torch.bool)
    sky[: H // 4] = True
    rgb[sky] = torch.tensor([0.4, 0.6, 0.9])
    depth = torch.where(sky, torch.full((H, W), math.inf), torch.full((H, W), 10.0))
    return Frame(rgb, depth, sky, cam)


def test_ground_texture_samples_only_ground_and_copies_whole_patches():
    """Frame 0's detail: source pixels are ground (never sky), the energy is the ground's, and a view's
    tile is an exact copy of the source patch around its pick (mirrored only at the photo's borders)."""
    from worldgen.core.anchor import TEXTURE_TILE, ground_texture, texture_transfer

    photo = _textured_photo()
    tex = ground_texture(photo, 0.0)
    flat = photo.sky.reshape(-1)
    assert not flat[tex.index.reshape(-1)].any()
    assert torch.allclose(tex.energy, torch.full_like(tex.energy, 0.1), atol=0.02)  # |+-0.1| checker, blurred away
    rel = photo.camera.ray_elevation_deg()
    detail, energy = texture_transfer(tex, rel, torch.zeros_like(rel))
    assert detail.shape == (64, 96, 3) and energy.shape == (64, 96)
    T = TEXTURE_TILE
    r0, c0 = 2 * T, 3 * T  # one tile of the view, inside the photo's ground
    src = int(tex.index[int(((20.0 - rel[r0 + T // 2, c0 + T // 2]) / 2.0).round().clamp(0, 31)), 32])
    sr, sc = src // 96 - T // 2, src % 96 - T // 2
    assert 0 <= sr and sr + T <= 64 and 0 <= sc and sc + T <= 96  # (seed 0 picks an inner source)
    assert torch.equal(detail[r0:r0 + T, c0:c0 + T], tex.detail[sr:sr + T, sc:sc + T])
    assert ground_texture(Frame(photo.rgb, torch.full((64, 96), math.inf), torch.ones(64, 96, dtype=torch.bool),
                                photo.camera), 0.0) is None


def test_the_texture_lays_the_photos_detail_only_on_smooth_generated_ground():
    """`texture` > 0: a flat hole gets detail up to about the photo's; covered sharp pixels and the sky do not
    change; 0, or a view without a texture, leaves the composition as it was."""
    from worldgen.core.anchor import ground_texture

    v = make_view(H=48, W=64)
    v = dataclasses.replace(v, alpha=v.alpha.clone())
    v.alpha[12:40, 16:48] = 0.0  # a large hole
    photo = _textured_photo(48, 64)
    view = dataclasses.replace(v, ground_texture=ground_texture(photo, 0.0), camera=photo.camera)
    out = torch.zeros(1, OUT_CHANNELS, 48, 64)
    out[:, 4] = -20.0
    off = LearnedRefinerConfig(noise=False, anchor=0.0, texture=0.0)
    plain = compose(view_inputs([view], off)[1], out, off)
    cfg = LearnedRefinerConfig(noise=False, anchor=0.0, texture=1.0)
    vb = view_inputs([view], cfg)[1]
    laid = compose(vb, out, cfg)
    hole = (slice(0, 3), slice(20, 36), slice(24, 40))  # channels, rows, columns: inside the hole
    grey = lambda c: c.rgb[0].mean(0, keepdim=True)[None]  # noqa: E731
    from refine.learned import local_detail

    before, after = local_detail(grey(plain).expand(1, 3, -1, -1)), local_detail(grey(laid).expand(1, 3, -1, -1))
    photo_energy = vb.texture_energy[0, 0, 20:36, 24:40].mean()
    assert before[0, 0, 20:36, 24:40].mean() < 0.3 * photo_energy
    # the missing share comes in quadrature (independent detail adds as standard deviations): about the photo's
    assert after[0, 0, 20:36, 24:40].mean() == pytest.approx(float(photo_energy), rel=0.05)  # (1 - l / E: 0.88 of it)
    assert not torch.equal(plain.rgb[0][hole], laid.rgb[0][hole])
    covered = ((view.alpha > 0.99) & (view.footprint < 1.0))[None].expand(3, -1, -1)
    assert torch.equal(plain.rgb[0][covered], laid.rgb[0][covered])
    assert torch.equal(plain.rgb[0][:, :4], laid.rgb[0][:, :4])  # the sky
    none = compose(view_inputs([v], cfg)[1], out, cfg)
    assert torch.equal(none.rgb, compose(view_inputs([v], off)[1], out, off).rgb)


def test_the_anchor_can_be_set_for_the_shipped_weights():
    """`--refiner-anchor K` (PipelineConfig.refiner_anchor) reaches the learned refiner; None keeps the weights' own."""
    from worldgen.pipeline.refiners import make_refiner

    assert make_refiner("learned").config.anchor == load_weights(DEFAULT_WEIGHTS)[1].anchor
    assert make_refiner("learned", anchor=0.4).config.anchor == 0.4
    assert make_refiner("learned").config.texture == load_weights(DEFAULT_WEIGHTS)[1].texture
    assert make_refiner("learned", texture=1.5).config.texture == 1.5
    fid, shipped = make_refiner("learned-fidelity"), make_refiner("learned")
    assert (fid.config.anchor, fid.config.texture) == (0.0, 0.0)  # the network's own estimate, no anchors
    assert (fid.config.sharp_px, fid.config.detail_px) == (2.0, 4.0)  # keeps the world's colour up to 2 px
    assert fid.config.flip_average and not shipped.config.flip_average  # the mirror-image average: fidelity only
    assert (fid.name, shipped.name) == ("learned-fidelity", "learned")
    assert (fid.weights, shipped.weights) == (str(FIDELITY_WEIGHTS), str(DEFAULT_WEIGHTS))  # recorded in run.json
    assert shipped.config.anchor > 0 and shipped.config.texture > 0  # the default: anchored to the photo
    same = dataclasses.replace(fid.config, anchor=shipped.config.anchor, texture=shipped.config.texture,
                               sharp_px=shipped.config.sharp_px, detail_px=shipped.config.detail_px,
                               flip_average=shipped.config.flip_average)
    assert same == shipped.config  # the other composition rules are the default's
    # two files: the fidelity weights are the default's network trained further (same architecture, other weights)
    fid_sd, sd = fid.net.state_dict(), shipped.net.state_dict()
    assert fid_sd.keys() == sd.keys() and not all(torch.equal(fid_sd[k], sd[k]) for k in sd)
    assert load_weights(FIDELITY_WEIGHTS)[2]["composition_note"].startswith("saved with the fidelity composition")
    assert make_refiner("learned-fidelity", texture=0.5).config.texture == 0.5


def test_the_refiner_seed_reaches_the_learned_refiners_noise(capsys):
    """--refiner-seed (PipelineConfig.refiner_seed): the same seed gives the same frame, another seed another one;
    a seed out of range is one clear line."""
    from tests.test_configs import cli_run
    from worldgen.pipeline.config import PipelineConfig
    from worldgen.pipeline.refiners import pipeline_refiner

    view = make_view(H=48, W=64)
    a, b, c = (pipeline_refiner(PipelineConfig(refiner_seed=s))(view).rgb for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    code, _, err = cli_run(["fly", "x.jpg", "--refiner-seed", "-1"], capsys)
    assert code != 0 and "--refiner-seed must be between 0 and 2^63 - 1" in err and "Traceback" not in err


def test_a_missing_shipped_weights_file_is_one_clear_line(tmp_path, monkeypatch):
    """Each shipped name checks its own file: with refiner-fidelity.pt gone, learned-fidelity is refused with one
    line naming the file (before anything is written) and learned still works."""
    import refine.learned as learned_mod
    from worldgen.core.io import UserInputError
    from worldgen.pipeline.refiners import make_refiner, refiner_spec_problem, shipped_weights

    assert shipped_weights("learned") == DEFAULT_WEIGHTS and shipped_weights("learned-fidelity") == FIDELITY_WEIGHTS
    gone = tmp_path / "refiner-fidelity.pt"
    monkeypatch.setitem(learned_mod.SHIPPED_WEIGHTS, "learned-fidelity", gone)
    assert refiner_spec_problem("learned-fidelity") == f"learned-fidelity needs the shipped weights {gone}, which are missing"
    assert refiner_spec_problem("learned") is None
    with pytest.raises(UserInputError, match="needs the shipped weights") as e:
        make_refiner("learned-fidelity")
    assert "\n" not in str(e.value)


def test_compact_checkpoints_between_full_ones(tmp_path, monkeypatch):
    """`compact_every` writes checkpoint-compact.pt alone between the full checkpoints (for calls that may be killed
    before their last one), and the replay buffer is rebuilt only at the full ones."""
    from configs.train import TRAIN_PRESETS
    from refine.train import trainer
    from refine.train.config import ReplayConfig

    saved, rebuilt = [], []
    real_save, real_clear = trainer.save_checkpoint, trainer.ReplayBuffer.clear

    def save(path, step, *args, **kwargs):
        saved.append((path.name, step))
        return real_save(path, step, *args, **kwargs)

    def clear(self):
        rebuilt.append(1)
        return real_clear(self)

    monkeypatch.setattr(trainer, "save_checkpoint", save)
    monkeypatch.setattr(trainer.ReplayBuffer, "clear", clear)
    cfg = dataclasses.replace(TRAIN_PRESETS["train-refiner-tiny"].config, steps=6, log_every=6, checkpoint_every=4,
                              compact_every=2, sample_every=0, out=str(tmp_path / "run"),
                              replay=ReplayConfig(capacity=4, batch=2, refill_every=2))
    trainer.train(cfg)
    assert saved == [("checkpoint-compact.pt", 2), ("checkpoint.pt", 4), ("checkpoint-compact.pt", 4),
                     ("checkpoint.pt", 6), ("checkpoint-compact.pt", 6)]
    assert len(rebuilt) == 2  # at the start and at step 4, not at the compact-only step 2


def test_photo_steps_can_run_without_a_critic(tmp_path):
    """critic_steps 0 with no adversarial or feature-matching weight (the planned train-refiner-h200-fidelity-photos):
    photo steps train on image statistics and the cycle's reconstruction only, and the photo critic never moves."""
    from configs.train import TRAIN_PRESETS
    from refine.train.trainer import train

    photos = _fake_photos(tmp_path / "photos")
    base = dataclasses.replace(TRAIN_PRESETS["train-refiner-photos-tiny"].config, out=str(tmp_path / "run"), steps=4,
                               sample_every=0, log_every=1)
    base = dataclasses.replace(base, photos=dataclasses.replace(base.photos, folder=str(photos), critic_steps=0,
                                                                adversarial=0.0, feature_matching=0.0, cycle_share=1.0))
    assert train(base)["steps_done"] == 4
    hist = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    photo = [h for h in hist if "photo_colour" in h]
    assert photo and all("photo_disc" not in h and "photo_adversarial" not in h and "photo_fm" not in h for h in photo)
    assert all(h["photo_l1"] > 0 for h in photo)  # the cycles' return is supervised by the photo
    assert (tmp_path / "run" / "photo.png").is_file()
    blob = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    # no critic, so none is saved (the fidelity-photos run of 2026-12-02 carried an untrained one: 2.9 MB more)
    assert blob["disc_photo"] is None and blob["opt_dp"] is None


@pytest.mark.parametrize("change, says", [
    ({"data": {"frames": 3}}, "data.frames 3 is too few for clips of up to 1 warm-up \\+ 2 supervised steps"),
    ({"unroll": {"warm_steps": (2, 1)}}, "unroll settings"),
    ({"replay": {"capacity": 8, "batch": 0}}, "replay settings"),
    ({"replay": {"capacity": 8, "start_fill": 0.0}}, "0 < start_fill <= 1"),
    ({"photos": {"critic_steps": 0}}, "critic_steps 0"),
])
def test_training_settings_it_could_not_keep_are_one_line_before_anything_is_written(tmp_path, change, says):
    """`worldgen train` refuses, in one line and with an empty run folder, settings that used to fail mid-run
    (data.frames shorter than a clip stopped in torch.randint with a traceback, 2026-12-03)."""
    from configs.train import TRAIN_PRESETS
    from refine.train import trainer
    from worldgen.commands.train import main_refiner
    from worldgen.core.io import UserInputError

    cfg = dataclasses.replace(TRAIN_PRESETS["train-refiner-tiny"].config, out=str(tmp_path / "run"))
    for part, fields in change.items():
        cfg = dataclasses.replace(cfg, **{part: dataclasses.replace(getattr(cfg, part), **fields)})
    with pytest.raises(UserInputError, match=says):
        main_refiner(cfg)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match=says):  # the trainer itself, not only the command, checks
        trainer.train(cfg)


def test_flip_average_runs_the_network_on_the_view_and_its_mirror():
    """LearnedRefinerConfig.flip_average: the composed frame is the one of the mean of net(x) and net(mirror x)
    mirrored back; a network that is not mirror-symmetric gives another frame than without it."""
    torch.manual_seed(0)
    net = RefinerNet(TINY).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.2)  # not the zero-initialised head: a network with something to say
    cfg = LearnedRefinerConfig(noise=False, anchor=0.0, texture=0.0)
    view = make_view()
    plain = LearnedRefiner(net, cfg)(view)
    flipped = LearnedRefiner(net, dataclasses.replace(cfg, flip_average=True))(view)
    x, vb = view_inputs([view], cfg)
    with torch.no_grad():
        want = compose(vb, (net(x) + net(x.flip(-1)).flip(-1)) / 2, cfg).frames([view])[0]
    assert torch.allclose(flipped.rgb, want.rgb, atol=1e-5) and torch.allclose(flipped.depth, want.depth, atol=1e-4)
    assert (flipped.rgb - plain.rgb).abs().max() > 1e-3


def test_data_compile_setting_reaches_the_renderer_and_changes_no_cpu_frame(monkeypatch):
    """DataConfig.compile selects the renderer's compiled loops (RenderSettings.compile); on the CPU they are not
    used, so the cached flights are the same frames."""
    from refine.train import data as data_mod
    from refine.train.config import DataConfig
    from refine.train.data import FlightCache, settings_for

    assert settings_for("fast", True).compile and not settings_for("fast").compile
    assert settings_for("fast", True).shadow_steps == settings_for("fast").shadow_steps
    seen = []
    real = data_mod.render_views
    monkeypatch.setattr(data_mod, "render_views", lambda *a, **k: seen.append(a[5].compile) or real(*a, **k))
    caches = []
    for compile_ in (False, True):
        cache = FlightCache(DataConfig(width=16, height=16, flights=1, frames=3, flights_per_world=1, world_grid=128,
                                       quality="fast", compile=compile_), torch.device("cpu"))
        cache.fill()
        caches.append(cache)
    assert seen == [False, True]
    assert torch.equal(caches[0].rgb, caches[1].rgb) and torch.equal(caches[0].depth, caches[1].depth)


def test_the_deadline_looks_one_step_and_one_rebuild_ahead(tmp_path, monkeypatch):
    """The stop check is given the time of the next step: the longest step so far, and before a step that rebuilds the
    replay buffer (checkpoint multiples) the last rebuild's time on top (a call killed inside a rebuild loses its
    last checkpoint; 2026-12-05, ninth session)."""
    from configs.train import TRAIN_PRESETS
    from refine.train import trainer
    from refine.train.config import ReplayConfig

    seen = []  # (steps done, ahead) at each check
    real = trainer.time_is_up

    def spy(cfg, t_run, now_wall=None, ahead=0.0):
        seen.append(ahead)
        return real(cfg, t_run, now_wall, ahead)

    monkeypatch.setattr(trainer, "time_is_up", spy)
    cfg = dataclasses.replace(TRAIN_PRESETS["train-refiner-tiny"].config, out=str(tmp_path / "run"), steps=6,
                              checkpoint_every=3, sample_every=0,
                              replay=ReplayConfig(capacity=8, batch=2, refill_every=2))
    assert trainer.train(cfg)["steps_done"] == 6
    assert len(seen) == 6 and seen[0] == 0.0  # after step 1, which rebuilt: no ordinary step timed yet
    assert all(a > 0 for a in seen[1:])
    assert seen[2] > seen[1] and seen[2] > seen[3]  # after step 3 the next opens a rebuild: its time is added


def test_blurry_covered_pixels_are_recoloured_but_keep_the_worlds_depth():
    """Depth blends on coverage alone (keep_a), not on sharpness: a covered pixel re-synthesised because its
    footprint is blurry keeps the world's rendered depth even when the network pulls depth nearer."""
    view = make_view()
    cfg = LearnedRefinerConfig(noise=False)
    _, vb = view_inputs([view], cfg)
    out = torch.zeros(1, OUT_CHANNELS, 24, 32)
    out[:, 3] = 5.0  # the network pulls everything nearer
    out[:, 4] = -20.0
    depth = compose(vb, out, cfg).depth()[0]
    blurry = view.footprint > 2.0
    assert (vb.keep[0, 0][blurry] == 0).all()  # fully re-synthesised colour ...
    assert torch.allclose(depth[blurry], view.depth[blurry], rtol=1e-5)  # ... but the world's depth


def test_anchor_colours_are_read_between_bands_at_elevations_relative_to_the_horizon():
    """`anchor_colour` interpolates linearly between band centres (a quarter of the way: 3/4 of the upper band's
    colour), and `view_inputs` reads the table at each pixel's elevation minus the photo's horizon elevation."""
    from worldgen.core.anchor import ANCHOR_BANDS, ANCHOR_STEP_DEG, ANCHOR_TOP_DEG, anchor_colour

    table = torch.rand(ANCHOR_BANDS, 3, generator=torch.Generator().manual_seed(3))
    i = torch.arange(ANCHOR_BANDS - 1)
    for t in (0.25, 0.75):
        at = anchor_colour(table, ANCHOR_TOP_DEG - (i + t) * ANCHOR_STEP_DEG)
        assert torch.allclose(at, (1 - t) * table[:-1] + t * table[1:], atol=1e-6)
    view = dataclasses.replace(make_view(), ground_anchor=table, horizon_elev_deg=7.0)
    cfg = LearnedRefinerConfig(noise=False, anchor=0.5)
    vb = view_inputs([view], cfg)[1]
    dirs = view.camera.rays_world()
    elev = torch.rad2deg(torch.asin((-dirs[..., 1]).clamp(-1, 1)))
    assert torch.allclose(vb.anchor_rgb[0].permute(1, 2, 0), anchor_colour(table, elev - 7.0), atol=1e-6)


def test_the_texture_adds_only_the_missing_share_and_reaches_blurry_covered_ground():
    """The detail anchor weighs by 1 - keep (coverage x sharpness): flat covered ground drawn by blurry Gaussians
    gets the photo's detail; generated ground already as detailed as the photo gets none (missing share 0)."""
    from worldgen.core.anchor import ground_texture

    v = make_view(H=48, W=64)
    alpha = v.alpha.clone()
    alpha[12:40, 16:48] = 0.0  # a large hole
    fp = torch.full((48, 64), 0.5)
    fp[40:48, 0:16] = 3.0  # covered, flat and blurry
    flat = torch.full((48, 64, 3), 0.5) * alpha[..., None]
    photo = _textured_photo(48, 64)
    view = dataclasses.replace(v, rgb=flat, alpha=alpha, footprint=fp, camera=photo.camera,
                               ground_texture=ground_texture(photo, 0.0))
    off = LearnedRefinerConfig(noise=False, anchor=0.0, texture=0.0)
    cfg = LearnedRefinerConfig(noise=False, anchor=0.0, texture=1.0)
    vb_off, vb = view_inputs([view], off)[1], view_inputs([view], cfg)[1]
    out = torch.zeros(1, OUT_CHANNELS, 48, 64)
    out[:, 4] = -20.0
    plain, laid = compose(vb_off, out, off).rgb[0], compose(vb, out, cfg).rgb[0]
    assert (plain[:, 40:48, 0:16] - laid[:, 40:48, 0:16]).abs().mean() > 0.03  # blurry covered: detail added
    stripes = ((torch.arange(64) % 2).float() - 0.5) * 0.4  # residual detail ~2x the photo's
    out[:, 0:3] = stripes
    plain, laid = compose(vb_off, out, off).rgb[0], compose(vb, out, cfg).rgb[0]
    assert torch.equal(plain[:, 20:32, 24:40], laid[:, 20:32, 24:40])  # detailed enough: nothing added


def test_ground_texture_copies_patches_upright_from_where_it_picked_them():
    """On a photo whose detail is noise (no symmetry to hide a wrong copy), a view's tile is the source patch
    around its pick, rows as rows and columns as columns, not transposed or flipped."""
    from worldgen.core.anchor import TEXTURE_TILE, ground_texture, texture_transfer

    photo = _textured_photo()
    noise = 0.2 * torch.rand(64, 96, 1, generator=torch.Generator().manual_seed(5))
    photo = Frame(torch.where(photo.sky[..., None], photo.rgb, 0.4 + noise.expand(-1, -1, 3)), photo.depth, photo.sky,
                  photo.camera)
    tex = ground_texture(photo, 0.0)
    rel = photo.camera.ray_elevation_deg()
    detail, _ = texture_transfer(tex, rel, torch.zeros_like(rel))
    T = TEXTURE_TILE
    for r0, c0 in ((2 * T, 3 * T), (3 * T, 1 * T)):
        src = int(tex.index[int(((20.0 - rel[r0 + T // 2, c0 + T // 2]) / 2.0).round().clamp(0, 31)), 32])
        sr, sc = src // 96 - T // 2, src % 96 - T // 2
        assert 0 <= sr and sr + T <= 64 and 0 <= sc and sc + T <= 96  # inner sources only
        assert torch.equal(detail[r0:r0 + T, c0:c0 + T], tex.detail[sr:sr + T, sc:sc + T])


def test_the_detail_anchor_scales_with_its_strength():
    """`texture` is the detail anchor's strength: on flat ground (missing share 1) the photo's detail is added in
    proportion to it, 0.5 giving half and 2 twice what 1 adds, and 0 nothing."""
    from worldgen.core.anchor import ground_texture

    v = make_view(H=48, W=64)
    alpha = v.alpha.clone()
    alpha[12:40, 16:48] = 0.0  # a large hole: generated ground, flat
    photo = _textured_photo(48, 64)
    view = dataclasses.replace(v, rgb=torch.full((48, 64, 3), 0.5) * alpha[..., None], alpha=alpha,
                               camera=photo.camera, ground_texture=ground_texture(photo, 0.0))
    out = torch.zeros(1, OUT_CHANNELS, 48, 64)
    out[:, 4] = -20.0  # no sky
    added = {}
    for t in (0.0, 0.5, 1.0, 2.0):
        cfg = LearnedRefinerConfig(noise=False, anchor=0.0, texture=t)
        added[t] = compose(view_inputs([view], cfg)[1], out, cfg).rgb[0, :, 12:40, 16:48]
    one = added[1.0] - added[0.0]
    assert one.abs().mean() > 0.02  # (the photo's detail is there to scale)
    inside = (added[0.0] + 2 * one).gt(0.01).all(0) & (added[0.0] + 2 * one).lt(0.99).all(0)  # (unclamped pixels)
    assert inside.float().mean() > 0.9
    torch.testing.assert_close((added[0.5] - added[0.0])[:, inside], 0.5 * one[:, inside], atol=1e-5, rtol=0)
    torch.testing.assert_close((added[2.0] - added[0.0])[:, inside], 2 * one[:, inside], atol=1e-5, rtol=0)
