"""The photo's depth: the metric-scale rule, the learned / prior / transformers backends, the
--depth-model option of every command that starts from a photo, and `worldgen depth` (its files, the
round trip back into `worldgen fly --depth`, bad input)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from refine.depthnet import DEFAULT_DEPTH_WEIGHTS, FIDELITY_DEPTH_WEIGHTS, SHIPPED_DEPTH_WEIGHTS, save_depth_weights
from refine.net import DepthNet, RefinerNetConfig
from tests.test_configs import cli_run as cli  # (exit status, stdout, stderr) of `worldgen ARGV`
from viewer.cli import LiveConfig
from worldgen.commands.compare import CompareConfig
from worldgen.commands.depth import DepthConfig
from worldgen.commands.fly import FlyConfig, run
from worldgen.core.camera import Camera
from worldgen.core.config import check, from_dict, to_dict
from worldgen.core.images import center_crop_resize, disparity_colors, load_image
from worldgen.core.io import UserInputError
from worldgen.pipeline.config import PhotoConfig, PipelineConfig
from worldgen.pipeline.depth import (MEDIAN_DEPTH, LandscapePrior, LearnedDepth, TransformersDepth,
                                     make_depth_estimator, metric_depth)
from worldgen.pipeline.sources import first_frame

CPU = torch.device("cpu")


@pytest.fixture
def fresh_weights(tmp_path):
    """A depth weights file of a fresh (zero-headed) tiny DepthNet: log-depth 0 and sky logit 0 everywhere."""
    path = tmp_path / "fresh_depth.pt"
    save_depth_weights(path, DepthNet(RefinerNetConfig(widths=(4, 8, 8, 8, 8), bottleneck_blocks=1, global_code=0)))
    return path


# ----------------------------------------------------------------------------- the metric-scale rule
def test_metric_depth_fixes_the_median_and_forgets_the_constant():
    g = torch.Generator().manual_seed(3)
    log_depth = torch.randn(24, 32, generator=g) * 2.0
    sky = torch.zeros(24, 32, dtype=torch.bool)
    sky[:5] = True
    log_depth[:5] = -50.0  # whatever the network says under its sky mask does not count
    d = metric_depth(log_depth, sky)
    assert d.dtype == torch.float32 and torch.isposinf(d[sky]).all() and torch.isfinite(d[~sky]).all()
    assert float(d[~sky].median()) == pytest.approx(MEDIAN_DEPTH, rel=1e-5)
    assert torch.allclose(metric_depth(log_depth + 7.3, sky), d, rtol=1e-5)  # depth up to scale: one answer
    ratio = d[~sky] / torch.exp(log_depth[~sky])
    assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-4)  # a global scale, nothing else
    assert float(metric_depth(log_depth, sky, median_depth=2.0)[~sky].median()) == pytest.approx(2.0, rel=1e-5)


# ----------------------------------------------------------------------------- backends
def test_shipped_network_sees_sky_above_and_ground_receding_below(photo):
    rgb = load_image(photo)  # 64x48: sky gradient over textured hills, the hill line near 42 % of the height
    depth, sky = LearnedDepth()(rgb, Camera.from_fov(60.0, 64, 48))
    assert depth.shape == sky.shape == (48, 64) and depth.dtype == torch.float32
    assert torch.isposinf(depth[sky]).all() and torch.isfinite(depth[~sky]).all()
    assert float(sky[:14].float().mean()) > 0.95 and not sky[26:].any()
    row = torch.where(sky, torch.nan, depth).nanmedian(dim=1).values
    ground = row[24:47]  # the ground recedes towards the hill line: row by row, and by half again in all
    assert bool((ground[1:] <= 1.02 * ground[:-1]).all()) and float(row[24]) > 1.5 * float(row[44])
    assert float(depth[~sky].median()) == pytest.approx(MEDIAN_DEPTH, rel=1e-4)


def test_sky_hysteresis_takes_unsure_sky_only_where_it_touches_sure_sky():
    from refine.depthnet import SKY_GROW, sky_mask

    logit = torch.full((2, 20, 30), -8.0)
    logit[:, :4, :10] = 1.0  # sure sky
    logit[:, :4, 10:] = -2.0  # cloud: unsure, touches the sure sky
    logit[:, 10:14, 5:9] = -2.0  # unsure rock that touches no sure sky
    logit[:, 4:6, :] = -3.5  # below the grow threshold: stops the growth
    logit[1, :4, :10] = -1.0  # the second image has no sure sky at all
    sky = sky_mask(logit, -3.0)
    assert sky[0, :4].all() and int(sky[0].sum()) == 4 * 30  # the whole cloud joins, the rock stays out
    assert not sky[1].any()  # nothing is sure: nothing grows (each image on its own)
    assert torch.equal(sky_mask(logit, 0.0), logit > 0)  # grow 0: the plain mask
    assert int(sky_mask(logit, -4.0)[0].sum()) == 6 * 30  # a lower grow reaches through the -3.5 rows
    assert -4.0 < SKY_GROW < 0.0
    with pytest.raises(ValueError, match="sky_grow must be <= 0"):
        from refine.depthnet import LearnedDepthModel
        LearnedDepthModel(DepthNet(RefinerNetConfig(widths=(4, 8), bottleneck_blocks=1, global_code=4)), sky_grow=0.5)


def test_learned_depth_model_flip_averages_the_mirror_image():
    """flip=True: the mean of the network on the image and (mirrored back) on its mirror image, per image of the
    batch: mirror-equivariant, and neither of the two single passes."""
    from refine.depthnet import LearnedDepthModel, predict
    torch.manual_seed(0)
    net = DepthNet(RefinerNetConfig(widths=(8, 16), bottleneck_blocks=1, global_code=4))
    for p in net.parameters():  # a fresh network outputs zeros: give it weights that see left from right
        torch.nn.init.normal_(p, std=0.2)
    rgb = torch.rand(2, 3, 32, 48)
    ld, _ = LearnedDepthModel(net, flip=True).batch(rgb)
    ld_m, _ = LearnedDepthModel(net, flip=True).batch(rgb.flip(-1))
    assert ld.shape == (2, 32, 48) and torch.allclose(ld_m.flip(-1), ld, atol=1e-5)
    with torch.no_grad():
        a, _ = predict(net, rgb)
        b, _ = predict(net, rgb.flip(-1))
    assert torch.allclose(ld, (a + b.flip(-1)) / 2, atol=1e-5)
    assert (ld - a).abs().max() > 1e-3 and (ld - LearnedDepthModel(net).batch(rgb)[0]).abs().max() > 1e-3


def test_learned_depth_model_clear_sky_variant():
    """sky_clear: sky by colour (bright, smooth, top-connected: detect_sky) joins the mask where the network's logit
    is above it, even with no sure sky to grow from; textured bright pixels do not; None (flights) is off."""
    from refine.depthnet import LearnedDepthModel
    net = DepthNet(RefinerNetConfig(widths=(4, 8), bottleneck_blocks=1, global_code=4))  # fresh: outputs 0
    with torch.no_grad():
        net.head.bias[1] = -2.0  # unsure everywhere: no pixel seeds the hysteresis
    rgb = torch.full((1, 3, 32, 40), 0.2)
    rgb[0, :, :12] = torch.tensor([0.45, 0.6, 0.9])[:, None, None]  # clear blue sky over dark ground
    textured = rgb.clone()
    textured[0, :, :12] *= (1 + 0.5 * torch.randn(1, 12, 40, generator=torch.Generator().manual_seed(0))).clamp(0.3, 1.1)
    assert not LearnedDepthModel(net).batch(rgb)[1].any()
    sky = LearnedDepthModel(net, sky_clear=-4.0).batch(rgb)[1][0]
    assert sky[:9].all() and not sky[12:].any()  # (the edge rows are not smooth)
    assert not LearnedDepthModel(net, sky_clear=-1.0).batch(rgb)[1].any()  # the logit -2 is not above -1
    assert not LearnedDepthModel(net, sky_clear=-4.0).batch(textured)[1].any()
    with pytest.raises(ValueError, match="sky_clear must be <= 0"):
        LearnedDepthModel(net, sky_clear=0.5)


def test_sky_grow_option_is_checked_and_reaches_the_network(photo, tmp_path, capsys):
    with pytest.raises(UserInputError, match="sky.grow.*must be a finite logit <= 0"):
        check(PhotoConfig(sky_grow=1.0))
    loose = make_depth_estimator("learned", sky_grow=-30.0)  # every pixel connected to sure sky joins it
    strict = make_depth_estimator("learned", sky_grow=0.0)
    cam = Camera.from_fov(60.0, 64, 48)
    rgb = load_image(photo)
    assert int(loose(rgb, cam)[1].sum()) > int(strict(rgb, cam)[1].sum())
    code, _, err = cli(["fly", str(photo), "--frames", "2", "--sky-grow", "0.5", "--out", str(tmp_path / "r")],
                       capsys)
    assert code != 0 and "--sky-grow must be a finite logit <= 0" in err and "Traceback" not in err


def test_depth_model_specs(fresh_weights, tmp_path):
    assert isinstance(make_depth_estimator("prior"), LandscapePrior)
    learned = make_depth_estimator("learned")
    assert isinstance(learned, LearnedDepth) and learned.weights.endswith("depth.pt")
    fresh = make_depth_estimator(str(fresh_weights))
    depth, sky = fresh(torch.rand(20, 30, 3), Camera.from_fov(60.0, 30, 20))
    assert not sky.any() and torch.equal(depth, torch.full((20, 30), MEDIAN_DEPTH))  # log-depth 0 everywhere
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    for spec, message in [("magic", "--depth-model must be one of learned, learned-fidelity, prior, a depth "
                                    "weights FILE.pt or transformers:NAME, got 'magic'"),
                          (str(tmp_path / "none.pt"), "names a weights file that does not exist"),
                          (str(junk), "is not a worldgen depth weights file"),
                          ("transformers:", "needs a model NAME")]:
        with pytest.raises(UserInputError, match=message):
            make_depth_estimator(spec)


def test_the_two_shipped_depth_networks_load_and_differ(photo, tmp_path, monkeypatch):
    cam = Camera.from_fov(60.0, 64, 48)
    rgb = load_image(photo)
    learned, fidelity = make_depth_estimator("learned"), make_depth_estimator("learned-fidelity")
    assert Path(learned.weights) == DEFAULT_DEPTH_WEIGHTS and Path(fidelity.weights) == FIDELITY_DEPTH_WEIGHTS
    (d0, s0), (d1, s1) = learned(rgb, cam), fidelity(rgb, cam)
    for d, s in ((d0, s0), (d1, s1)):  # both give the metric rule's depth: median MEDIAN_DEPTH over the ground
        assert torch.isfinite(d[~s]).all() and float(d[~s].median()) == pytest.approx(MEDIAN_DEPTH, rel=1e-4)
    assert float((d0[~(s0 | s1)].log() - d1[~(s0 | s1)].log()).abs().mean()) > 0.01  # two networks, not one file twice
    meta = json.loads(FIDELITY_DEPTH_WEIGHTS.with_suffix(".json").read_text())
    blob = torch.load(FIDELITY_DEPTH_WEIGHTS, map_location="cpu", weights_only=False)
    assert meta["file"] == FIDELITY_DEPTH_WEIGHTS.name and blob["step"] == meta["steps"]  # the JSON describes its file
    # a checkout without the file says so in one line, before anything runs
    monkeypatch.setitem(SHIPPED_DEPTH_WEIGHTS, "learned-fidelity", tmp_path / "gone.pt")
    with pytest.raises(UserInputError, match="learned-fidelity needs the shipped weights .*gone.pt, which are missing"):
        make_depth_estimator("learned-fidelity")


def test_first_frame_uses_the_depth_model_and_a_file_wins(photo, tmp_path):
    cam = Camera.from_fov(60.0, 64, 48)
    rgb = load_image(photo)
    f_default = first_frame(str(photo), PhotoConfig(), "auto", CPU, 64)
    f_prior = first_frame(str(photo), PhotoConfig(depth_model="prior"), "auto", CPU, 64)
    assert torch.equal(f_default.depth, LearnedDepth()(rgb, cam)[0])  # the network is the default
    assert torch.equal(f_prior.depth, LandscapePrior()(rgb, cam)[0])
    assert not torch.equal(f_default.depth, f_prior.depth)
    d = np.full((48, 64), 3.0, np.float32)
    d[:8] = np.inf
    np.save(tmp_path / "d.npy", d)
    f_file = first_frame(str(photo), PhotoConfig(depth=str(tmp_path / "d.npy"), depth_model="prior"), "auto", CPU, 64)
    assert torch.equal(f_file.depth, torch.from_numpy(d))


# ----------------------------------------------------------------------------- the option on every command
@pytest.mark.parametrize("command", ["fly", "compare", "live", "depth"])
def test_every_photo_command_checks_the_depth_model(photo, tmp_path, capsys, command):
    out = str(tmp_path / ("o.npy" if command == "depth" else "o"))
    args = [command, str(photo), "--depth-model", "magic"] + (["--out", out] if command != "live" else [])
    code, _, err = cli(args, capsys)
    assert code == 2 and err.strip() == ("worldgen: error: --depth-model must be one of learned, learned-fidelity, "
                                         "prior, a depth weights FILE.pt or transformers:NAME, got 'magic'")
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.npy").exists()
    for cfg in (FlyConfig(image="a.png"), CompareConfig(image="a.png"), LiveConfig(image="a.png"),
                DepthConfig(image="a.png", out="a.npy")):
        assert cfg.photo.depth_model == "learned"  # the same default everywhere
        check(cfg)
        assert from_dict(type(cfg), json.loads(json.dumps(to_dict(cfg)))) == cfg  # config.json keeps it


def test_fly_option_reaches_frame_zero(photo, tmp_path, capsys):
    frames = {}
    for model in ("prior", "learned", "learned-fidelity"):
        run(FlyConfig(image=str(photo), photo=PhotoConfig(depth_model=model), path="forward", frames=2,
                      pipeline=PipelineConfig(size="64x48"), out=str(tmp_path / model), video=False, progress=False),
            on_frame=lambda t, f, g, m=model: frames.setdefault(m, f.depth.clone()) if t == 0 else None)
    assert torch.equal(frames["prior"], LandscapePrior()(load_image(photo), Camera.from_fov(60.0, 64, 48))[0])
    for model in ("learned", "learned-fidelity"):
        assert float(frames[model][torch.isfinite(frames[model])].median()) == pytest.approx(MEDIAN_DEPTH, rel=1e-4)
    assert not torch.equal(frames["learned"], frames["learned-fidelity"])


# ----------------------------------------------------------------------------- worldgen depth
def test_depth_command_writes_what_fly_starts_from_and_fly_takes_it_back(photo, tmp_path, capsys):
    out = tmp_path / "maps" / "photo.npy"
    code, stdout, err = cli(["depth", str(photo), "--size", "32x24", "--out", str(out)], capsys)
    assert code == 0, err
    assert "z-depth 32x24 from learned" in stdout
    depth = np.load(out)
    assert depth.shape == (24, 32) and depth.dtype == np.float32
    frame0 = first_frame(str(photo), PhotoConfig(), "32x24", CPU)
    assert np.array_equal(depth, frame0.depth.numpy())  # exactly the depth a flight starts from
    assert np.isposinf(depth[frame0.sky.numpy()]).all() and np.isfinite(depth[~frame0.sky.numpy()]).all()
    png = np.asarray(Image.open(out.with_suffix(".png")))
    assert png.shape == (24, 32, 3) and np.array_equal(png, disparity_colors(depth))
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp files left

    got = {}
    run(FlyConfig(image=str(photo), photo=PhotoConfig(depth=str(out), depth_model="prior"), path="forward", frames=2,
                  pipeline=PipelineConfig(size="32x24"), out=str(tmp_path / "run"), video=False, progress=False),
        on_frame=lambda t, f, g: got.setdefault(t, f.depth.clone()))
    assert np.array_equal(got[0].numpy(), depth)  # the round trip is exact
    code, _, err = cli(["fly", str(photo), "--depth", str(out), "--size", "48x36", "--out", str(tmp_path / "r2")],
                       capsys)
    assert code == 2 and "is 32x24 but the image is 64x48 (working size 48x36)" in err


def test_depth_command_auto_size_and_prior(photo, tmp_path, capsys):
    out = tmp_path / "prior.npy"
    code, _, err = cli(["depth", str(photo), "--depth-model", "prior", "--fov", "75", "--out", str(out)], capsys)
    assert code == 0, err
    depth = np.load(out)
    assert depth.shape == (192, 256)  # auto: the photo's aspect, longer side 256 (as `worldgen fly`)
    rgb = center_crop_resize(load_image(photo), 256, 192)
    assert np.array_equal(depth, LandscapePrior()(rgb, Camera.from_fov(75.0, 256, 192))[0].numpy())


def test_disparity_colors_are_scale_free_and_mark_sky():
    d = np.tile(np.linspace(50.0, 2.0, 40, dtype=np.float32)[:, None], (1, 8))
    d[:5] = np.inf
    img = disparity_colors(d)
    assert img.dtype == np.uint8 and img.shape == (40, 8, 3)
    assert (img[:5] == 0).all() and (img[5:].sum(-1) > 0).all()
    assert np.array_equal(disparity_colors(d * 7.0), img)
    assert img[6, 0, 2] > img[6, 0, 0] and img[-1, 0, 0] > img[-1, 0, 2]  # far blue, near red


def test_depth_command_bad_input(photo, tmp_path, capsys, fresh_weights):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 64)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    diverged = DepthNet(RefinerNetConfig(widths=(4, 8, 8, 8, 8), bottleneck_blocks=1, global_code=0))
    with torch.no_grad():
        diverged.head.bias[0] = float("nan")  # (a run that diverged: a well-formed file of NaN depth)
    save_depth_weights(tmp_path / "nan.pt", diverged)
    cases = {
        "NaN weights": ["depth", str(photo), "--depth-model", str(tmp_path / "nan.pt"), "--out",
                        str(tmp_path / "o" / "a.npy")],
        "missing image": ["depth", str(tmp_path / "nope.png"), "--out", str(tmp_path / "o" / "a.npy")],
        "not .npy": ["depth", str(photo), "--out", str(tmp_path / "o" / "a.txt")],
        "bad size": ["depth", str(photo), "--size", "big", "--out", str(tmp_path / "o" / "a.npy")],
        "corrupt weights": ["depth", str(photo), "--depth-model", str(junk), "--out", str(tmp_path / "o" / "a.npy")],
        "unwritable": ["depth", str(photo), "--out", str(blocker / "a.npy")],
        "no out": ["depth", str(photo)],
    }
    for name, argv in cases.items():
        code, _, err = cli(argv, capsys)
        lines = [line for line in err.strip().splitlines() if line.strip()]
        assert code == 2 and "Traceback" not in err, (name, err)
        if name != "no out":  # tyro reports a missing required option in its own box
            assert len(lines) == 1 and lines[0].startswith("worldgen: error:"), (name, err)
    assert not list(tmp_path.glob("o/*"))  # nothing half-written
    code, _, err = cli(["depth", str(photo), "--depth-model", str(fresh_weights), "--out", str(tmp_path / "f.npy")],
                       capsys)
    assert code == 0 and np.array_equal(np.load(tmp_path / "f.npy"), np.full((192, 256), MEDIAN_DEPTH, np.float32))


# ----------------------------------------------------------------------------- transformers, offline
@pytest.fixture
def tiny_depth_anything(tmp_path, monkeypatch):
    """A tiny randomly initialised Depth Anything model and its image processor, saved in tmp_path (the
    folder a `transformers:NAME` spec can name); the Hugging Face hub is switched off for the test."""
    import transformers  # (a declared dev dependency: a broken install fails instead of skipping)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backbone = transformers.Dinov2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=32, patch_size=14, image_size=28,
                                         out_features=["stage1", "stage2"], reshape_hidden_states=False)
    config = transformers.DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16,
                                              reassemble_factors=[2, 1], neck_hidden_sizes=[8, 16],
                                              fusion_hidden_size=8, head_hidden_size=4)
    torch.manual_seed(0)
    folder = tmp_path / "tiny-depth-anything"
    transformers.DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    transformers.DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=False,
                                   ensure_multiple_of=14).save_pretrained(folder)
    return folder


def test_transformers_backend_offline(tiny_depth_anything, photo, tmp_path, capsys):
    est = make_depth_estimator(f"transformers:{tiny_depth_anything}")
    assert isinstance(est, TransformersDepth) and not est.metric
    rgb = load_image(photo)
    depth, sky = est(rgb, Camera.from_fov(60.0, 64, 48))
    assert depth.shape == (48, 64) and torch.isposinf(depth[sky]).all() and torch.isfinite(depth[~sky]).all()
    assert float(depth[~sky].median()) == pytest.approx(MEDIAN_DEPTH, rel=1e-4)  # the one metric-scale rule
    with torch.no_grad():  # depth is 1 / the model's disparity, up to that one scale
        inputs = est.processor(images=(rgb.numpy() * 255 + 0.5).astype("uint8"), return_tensors="pt")
        disp = est.model(**inputs).predicted_depth[:, None]
    disp = torch.nn.functional.interpolate(disp, size=(48, 64), mode="bilinear", align_corners=False)[0, 0]
    k = depth[~sky] * disp[~sky]
    assert torch.allclose(k, k.median().expand_as(k), rtol=1e-3)
    out = tmp_path / "t.npy"
    code, _, err = cli(["depth", str(photo), "--depth-model", f"transformers:{tiny_depth_anything}",
                        "--size", "64x48", "--out", str(out)], capsys)
    assert code == 0, err
    assert np.allclose(np.load(out), depth.numpy())
    code, _, err = cli(["depth", str(photo), "--depth-model", "transformers:depth-anything/no-such-model",
                        "--out", str(tmp_path / "u.npy")], capsys)
    assert code == 2 and "not a local folder nor in the local Hugging Face cache" in err
    assert not (tmp_path / "u.npy").exists()
    (tmp_path / "not-a-model").mkdir()  # a folder, but no model in it: said so, not "not a local folder"
    code, _, err = cli(["depth", str(photo), "--depth-model", f"transformers:{tmp_path / 'not-a-model'}",
                        "--out", str(tmp_path / "u.npy")], capsys)
    assert code == 2 and "holds no depth model transformers can load" in err and "not a local folder" not in err


# ----------------------------------------------------------------------------- training
def _tiny_depth_training(tmp_path, name: str, **changes):
    """The CI preset (tiny net, one small world) with a folder of 3 random 'photos' for the
    consistency term; returns (config, summary)."""
    import dataclasses

    from configs.train import TRAIN_PRESETS
    from refine.train.depth import train_depth

    photos = tmp_path / "photos"
    if not photos.is_dir():
        photos.mkdir()
        g = np.random.default_rng(0)
        for i in range(3):
            Image.fromarray(g.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(photos / f"p{i}.png")
    changes = {"log_every": 4, "checkpoint_every": 4, **changes}
    cfg = dataclasses.replace(TRAIN_PRESETS["train-depth-tiny"].config, out=str(tmp_path / name), photos=str(photos),
                              sample_every=0, **changes)
    return cfg, train_depth(cfg)


def _weights(out) -> dict:
    blob = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    return blob["depth"]["state_dict"]


def test_depth_training_learns_and_resumes_bit_exactly(tmp_path):
    import dataclasses

    from refine.train.depth import train_depth

    cfg, whole = _tiny_depth_training(tmp_path, "whole", steps=48, log_every=12, checkpoint_every=12)
    log = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [12, 24, 36, 48] and whole["steps_done"] == 48
    assert log[-1]["si_log"] < 0.8 * log[0]["si_log"] and "photo" in log[-1]  # the photo term is on from step 5
    pieces = dataclasses.replace(cfg, out=str(tmp_path / "pieces"), stop_after=24)
    assert train_depth(pieces)["steps_done"] == 24
    assert train_depth(pieces)["steps_done"] == 48  # resumed from step 24's checkpoint
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "pieces")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the photo term's mean teacher travels in the full checkpoint: an average of the weights, not them
    teacher = torch.load(tmp_path / "pieces" / "checkpoint.pt", map_location="cpu", weights_only=False)["teacher"]
    assert teacher.keys() == a.keys() and not all(torch.equal(teacher[k], a[k]) for k in a)


def test_depth_training_skips_steps_whose_loss_blows_up(tmp_path):
    """A step whose loss is above `skip_loss_above` (or not finite) changes nothing and is counted."""
    import dataclasses

    from refine.train.depth import train_depth

    cfg, _ = _tiny_depth_training(tmp_path, "run", steps=4)
    before = _weights(tmp_path / "run")
    summary = train_depth(dataclasses.replace(cfg, steps=8, skip_loss_above=0.0))  # every loss is above 0
    assert summary["steps_done"] == 8
    after = _weights(tmp_path / "run")
    assert all(torch.equal(before[k], after[k]) for k in before)
    last = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 8 and last["skipped"] == 1.0 and "loss" not in last


def test_simulated_jpeg_matches_a_real_encoder_and_leaves_the_rest_alone():
    """The depth training's JPEG augmentation runs where the batch lives (an 8x8 DCT with the standard's tables);
    held to torchvision's libjpeg encoder on the bundled photo at an odd size (240 x 300: padding)."""
    from torchvision.io import decode_jpeg, encode_jpeg

    from refine.train.depth import jpeg
    from worldgen.core.metrics import psnr

    img = torch.from_numpy(np.asarray(Image.open("worldgen/examples/example.png").convert("RGB"))).permute(2, 0, 1)
    img = img[:, :240, :300].float() / 255
    hwc = lambda t: t.permute(1, 2, 0)  # noqa: E731
    for q in (30, 90):
        seed = next(s for s in range(10_000) if _jpeg_quality(s) == q)
        sim = jpeg(img[None], torch.Generator().manual_seed(seed), prob=1.0)[0]
        real = decode_jpeg(encode_jpeg((img * 255 + 0.5).to(torch.uint8), quality=q)).float() / 255
        assert abs(psnr(hwc(sim), hwc(img)) - psnr(hwc(real), hwc(img))) < 0.5  # the same loss of detail ...
        assert psnr(hwc(sim), hwc(real)) > 38.0  # ... in the same places
    batch = torch.rand(6, 3, 32, 48)
    a = jpeg(batch, torch.Generator().manual_seed(0), prob=0.5)
    b = jpeg(batch, torch.Generator().manual_seed(0), prob=0.5)
    changed = (a != batch).flatten(1).any(1)
    assert torch.equal(a, b) and 0 < int(changed.sum()) < 6  # seeded, and only the picked images change
    assert torch.equal(jpeg(batch, torch.Generator().manual_seed(3), prob=0.0), batch)


def _jpeg_quality(seed: int) -> int:
    """The quality `jpeg` draws for a batch of one image from torch.Generator().manual_seed(seed)."""
    g = torch.Generator().manual_seed(seed)
    torch.rand(1, generator=g)
    return int(torch.randint(30, 91, (1,), generator=g))


def test_standing_trees_stand_up_in_front_of_what_they_cover():
    """The depth augmentation pastes upright trees: one depth per tree, only nearer than what it covers."""
    from refine.train.depth import standing_trees

    B, H, W = 3, 64, 96
    rows = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W)
    depth = torch.where(rows > 20, 900.0 / (rows - 20).clamp_min(1), torch.tensor(math.inf))[None, None].repeat(B, 1, 1, 1)
    rgb = torch.rand(B, 3, H, W, generator=torch.Generator().manual_seed(1))
    same = standing_trees(rgb, depth, torch.Generator().manual_seed(0), prob=0.0)
    assert torch.equal(same[0], rgb) and torch.equal(same[1], depth)
    for seed in range(4):
        r, d = standing_trees(rgb, depth, torch.Generator().manual_seed(seed), prob=1.0, trees=(1, 1))
        changed = d != depth
        assert changed.any(), "every frame gets its tree"
        assert (d[changed] < depth[changed]).all(), "a tree only hides what is farther (sky included)"
        assert torch.equal((r != rgb).any(1, keepdim=True) & ~changed, torch.zeros_like(changed))
        for b in range(B):
            m = changed[b, 0]
            assert torch.unique(d[b, 0][m]).numel() == 1, "one tree, one z-depth: it stands up"
    r, d = standing_trees(rgb, depth, torch.Generator().manual_seed(7), prob=1.0, trees=(20, 20), near_share=1.0)
    nearest = depth[torch.isfinite(depth)].min()  # every column's nearest ground (the bottom row)
    z = d[d != depth]
    assert (z < nearest).all() and (z >= 0.4 * nearest - 1e-3).all(), "near trees stand just in front of their column's ground"


def test_cell_means_average_the_valid_pixels_of_each_cell():
    from refine.train.depth import cell_means

    log_d = torch.arange(16.0).reshape(1, 4, 4)
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    valid[0, 0, 0] = False  # 3 of 4 valid: the cell's mean is over those 3
    valid[0, 2:, 2:] = torch.tensor([[True, False], [False, False]])  # 1 of 4: under half, not a valid cell
    m, ok = cell_means(log_d, valid, 2)
    assert m.shape == ok.shape == (1, 2, 2)
    assert torch.allclose(m[0, 0, 0], torch.tensor((1 + 4 + 5) / 3))
    assert torch.allclose(m[0, 0, 1], torch.tensor((2 + 3 + 6 + 7) / 4))
    assert ok.tolist() == [[[True, True], [True, False]]]


def test_layout_anchor_ignores_scale_and_detail_and_punishes_an_inverted_ground():
    """The layout term compares cell means up to scale: the anchor's own map shifted by a constant, or with
    a tree standing in one cell, costs (almost) nothing; the ground turned upside down costs a lot."""
    from refine.train.depth import cell_means, si_log_l1

    H = W = 64
    rows = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W)
    anchor = torch.log(2000.0 / (rows + 1))[None]  # ground: far at the top, near at the bottom
    solid = torch.ones(1, H, W, dtype=torch.bool)
    a, ok = cell_means(anchor, solid, 16)

    def layout(pred):
        return float(si_log_l1(cell_means(pred, solid, 16)[0], a, ok))

    tree = anchor.clone()
    tree[0, 20:44, 30:33] = anchor[0, 43, 0]  # a thin trunk at its foot's depth
    assert layout(anchor + 3.0) < 1e-5
    assert layout(tree) < 0.01
    assert layout(anchor.flip(1)) > 50 * layout(tree)


def test_ground_order_punishes_only_a_ground_called_far():
    from refine.train.depth import ground_order

    H, W = 32, 8
    rows = torch.linspace(3.0, 0.0, H)[:, None].expand(H, W)  # log-depth: far at the top, near at the bottom
    solid = torch.ones(H, W, dtype=torch.bool)
    assert float(ground_order(rows[None], solid[None])) == 0.0  # a landscape as it should be
    assert float(ground_order((rows + 5.0)[None], solid[None])) == 0.0  # at any scale
    upside_down = rows.flip(0)[None]
    loss = float(ground_order(upside_down, solid[None]))
    assert 1.0 < loss < 2.0  # rows 12-31 climb ~1.8 in log-depth, less 4 x the 0.1 margin
    canopy = rows.clone()
    canopy[:12] = -1.0  # crowns overhead, nearer than everything: the rows above 3/8 are free
    trees = canopy.clone()
    trees[8:24, 2:6] = 0.5  # trunks standing near in the middle rows
    assert float(ground_order(canopy[None], solid[None])) == 0.0 == float(ground_order(trees[None], solid[None]))
    crystal = rows.clone()
    crystal[12:20] = 0.2  # the walks networks on crystal_falls: the rock wall near, the ground below it far
    assert float(ground_order(crystal[None], solid[None])) > 0.5
    sky_above = solid.clone()
    sky_above[:28] = False  # one band with ground: nothing to order
    assert float(ground_order(upside_down, sky_above[None])) == 0.0
    both = torch.stack([rows, rows.flip(0)])
    assert abs(float(ground_order(both, solid[None].expand(2, H, W))) - loss / 2) < 1e-6  # mean over the images


def test_ground_order_script_scores_each_photo_and_refuses_bad_input(tmp_path):
    """scripts/ground_order.py: one row a photo, one column a network; 0 for a photo the right way up."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    h = np.linspace(0, 1, 64)[:, None, None]
    sky, ground = np.array([150, 190, 240]), np.array([90, 120, 60]) * (1.2 - h)  # blue above, ground darker downwards
    img = np.where(h < 0.4, sky, ground) + np.random.default_rng(0).normal(0, 6, (64, 64, 3))
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(tmp_path / "valley.png")
    run = lambda *a: subprocess.run([sys.executable, "scripts/ground_order.py", *a], capture_output=True,  # noqa: E731
                                    text=True, cwd=root)
    r = run(str(tmp_path), "refine/weights/depth.pt", "--bands")
    assert r.returncode == 0, r.stderr
    row = [line for line in r.stdout.splitlines() if line.startswith("valley")]
    assert len(row) == 1 and float(row[0].split()[1]) == 0.0
    assert "bands" in r.stdout
    (tmp_path / "junk.pt").write_text("not weights")
    for args, said in (((str(tmp_path), "nope.pt"), "no such weights file: nope.pt"),
                       ((str(tmp_path), str(tmp_path / "junk.pt")), "is not a worldgen depth weights file"),
                       ((str(tmp_path / "none"), "refine/weights/depth.pt"), "no such photo or folder")):
        r = run(*args)
        assert r.returncode != 0 and said in r.stderr and "Traceback" not in r.stderr


def test_shading_lights_the_frame_unevenly_and_smoothly():
    from refine.train.depth import shading

    grey = torch.full((6, 3, 48, 64), 0.1)  # dark enough that even a +3-sigma gain is not clipped
    assert torch.equal(shading(grey, torch.Generator().manual_seed(0), prob=0.0), grey)  # off: untouched
    a = shading(grey, torch.Generator().manual_seed(1), prob=1.0, stops=1.0)
    assert torch.equal(a, shading(grey, torch.Generator().manual_seed(1), prob=1.0, stops=1.0))  # the seed decides
    assert a.min() >= 0 and a.max() <= 1
    assert torch.allclose(a[:, 0], a[:, 1]) and torch.allclose(a[:, 0], a[:, 2])  # light, not colour
    stops = torch.log2(a[:, 0] / 0.1)  # [6, 48, 64]: the gain field itself
    spread = stops.flatten(1).std(dim=1)
    assert float(spread.max()) > 0.1 and float(spread.max()) <= 1.0 + 1e-4  # uneven, at most `stops` per frame
    curvature = (stops[:, 2:] - 2 * stops[:, 1:-1] + stops[:, :-2]).abs().mean(dim=(1, 2))
    assert bool((curvature < 0.05 * spread).all())  # smooth: white noise would give ~2.3 x its spread
    many = shading(torch.full((200, 3, 8, 8), 0.4), torch.Generator().manual_seed(3), prob=0.5)
    share = sum(not torch.equal(m, torch.full_like(m, 0.4)) for m in many) / 200
    assert 0.35 < share < 0.65


def test_depth_training_with_shading_runs_and_keeps_the_old_stream(tmp_path):
    """`shading` 0 (every preset before 2026-12-03) leaves the training exactly as it was; on, it trains."""
    _, summary = _tiny_depth_training(tmp_path, "lit", steps=4, shading=1.0)
    assert summary["steps_done"] == 4
    _tiny_depth_training(tmp_path, "off", steps=4)
    _tiny_depth_training(tmp_path, "zero", steps=4, shading=0.0, shading_stops=3.0)
    off, zero, lit = _weights(tmp_path / "off"), _weights(tmp_path / "zero"), _weights(tmp_path / "lit")
    assert all(torch.equal(off[k], zero[k]) for k in off)
    assert not all(torch.equal(off[k], lit[k]) for k in off)


def test_sky_anchor_asks_for_the_anchor_networks_sky():
    """"layout_sky" is small when the anchor network calls the same pixels sky as the network (the anchor is the
    network itself) and large when it calls sky what the network calls solid and the reverse."""
    from refine.train.depth import photo_consistency

    class Flipped(torch.nn.Module):  # the same network with its sky logits negated and sharpened
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            y = self.net(x)
            return torch.cat([y[:, :1], -4 * y[:, 1:2], y[:, 2:]], 1)

    torch.manual_seed(0)
    net = DepthNet(RefinerNetConfig(widths=(4, 8), bottleneck_blocks=1, global_code=4)).eval()
    torch.nn.init.normal_(net.head.weight, std=0.5)  # (a fresh head outputs zeros)
    with torch.no_grad():
        net.head.bias[1] = 3.0  # sure sky, more or less, over the whole image
    photos = torch.rand(2, 3, 32, 48)

    def term(layout):
        return float(photo_consistency(net, photos, torch.Generator().manual_seed(1), False, layout=layout)["layout_sky"])

    same, flipped = term(net), term(Flipped(net))
    assert same < 0.5 < 2 < flipped


def test_sky_anchor_logit_mode_sees_marginal_sky():
    """The "logit" sky anchor (L1 of clamped logits) is ~0 for the network itself and pulls at full strength where
    the anchor's sky logits are marginal (the hysteresis-grown sky, logits between -3 and 0): a network 2 lower
    there costs ~2, where the cross-entropy rises above its floor (the anchor's own entropy) by a seventh of that."""
    import torch.nn.functional as F
    from refine.train.depth import SKY_LOGIT_CLAMP, photo_consistency

    class Shifted(torch.nn.Module):  # the same network with its sky logits moved by `by`
        def __init__(self, net, by):
            super().__init__()
            self.net, self.by = net, by

        def forward(self, x):
            y = self.net(x)
            return torch.cat([y[:, :1], y[:, 1:2] + self.by, y[:, 2:]], 1)

    torch.manual_seed(0)
    net = DepthNet(RefinerNetConfig(widths=(4, 8), bottleneck_blocks=1, global_code=4)).eval()
    with torch.no_grad():
        net.head.bias[1] = -3.0  # (a fresh head outputs zeros: logit -3 everywhere, grown sky at most)
    photos = torch.rand(2, 3, 32, 48)

    def term(layout, mode):
        return float(photo_consistency(net, photos, torch.Generator().manual_seed(1), False, layout=layout,
                                       sky_mode=mode)["layout_sky"])

    assert term(net, "logit") < 1e-4 and abs(term(Shifted(net, 2.0), "logit") - 2.0) < 1e-3
    assert abs(term(Shifted(net, 20.0), "logit") - (SKY_LOGIT_CLAMP + 3.0)) < 1e-3  # (clamped: sure sky is sure)
    floor = float(F.binary_cross_entropy_with_logits(torch.tensor(-1.0), torch.sigmoid(torch.tensor(-1.0))))
    assert 0 < term(Shifted(net, 2.0), "bce") - floor < 0.2 * term(Shifted(net, 2.0), "logit")


def test_layout_anchor_trains_and_needs_photos(tmp_path, capsys):
    import dataclasses

    from configs.train import TRAIN_PRESETS
    from refine.train.depth import SKY_LOGIT_CLAMP

    _tiny_depth_training(tmp_path, "anchor", steps=8)  # (an untrained net calls everything sky: no layout to keep)
    anchor = tmp_path / "anchor" / "depth.pt"
    _, summary = _tiny_depth_training(tmp_path, "run", steps=8, layout_from=str(anchor))
    last = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])
    assert summary["steps_done"] == 8 and last["layout"] > 0  # on with the photo term (from step 5)
    code, _, err = cli(["train-depth", "--preset", "train-depth-tiny", "--out", str(tmp_path / "x"),
                        "--layout-from", str(anchor)], capsys)
    assert code not in (0, None) and len(err.strip().splitlines()) == 1 and "--photos" in err
    assert not (tmp_path / "x" / "checkpoint.pt").exists()
    _, summary = _tiny_depth_training(tmp_path, "sky", steps=8, layout_from=str(anchor), layout_sky=1.0)
    last = json.loads((tmp_path / "sky" / "log.jsonl").read_text().splitlines()[-1])
    assert summary["steps_done"] == 8 and last["layout_sky"] > 0
    code, _, err = cli(["train-depth", "--preset", "train-depth-tiny", "--out", str(tmp_path / "y"),
                        "--photos", str(tmp_path), "--layout-sky", "1"], capsys)
    assert code not in (0, None) and len(err.strip().splitlines()) == 1 and "--layout-from" in err
    _, summary = _tiny_depth_training(tmp_path, "skyl", steps=8, layout_from=str(anchor), layout_sky=1.0,
                                      layout_sky_mode="logit")
    last = json.loads((tmp_path / "skyl" / "log.jsonl").read_text().splitlines()[-1])
    assert summary["steps_done"] == 8 and 0 <= last["layout_sky"] < 2 * SKY_LOGIT_CLAMP
    with pytest.raises(ValueError, match="layout_sky_mode"):
        dataclasses.replace(TRAIN_PRESETS["train-depth-tiny"].config, layout_sky_mode="mse").validate()
    _, summary = _tiny_depth_training(tmp_path, "order", steps=8, ground_order_weight=1.0)
    last = json.loads((tmp_path / "order" / "log.jsonl").read_text().splitlines()[-1])
    assert summary["steps_done"] == 8 and "order" in last and last["order"] >= 0
    code, _, err = cli(["train-depth", "--preset", "train-depth-tiny", "--out", str(tmp_path / "y"),
                        "--ground-order-weight", "1"], capsys)
    assert code not in (0, None) and len(err.strip().splitlines()) == 1 and "--photos" in err


def test_clouds_paint_only_the_sky_from_scattered_to_overcast():
    from refine.train.depth import DepthTrainConfig, clouds

    B, H, W = 12, 48, 64
    rgb = torch.zeros(B, 3, H, W)
    rgb[:] = torch.tensor([0.4, 0.55, 0.85])[None, :, None, None]  # a clear blue sky ...
    rgb[:, :, 30:] = torch.rand(B, 3, H - 30, W, generator=torch.Generator().manual_seed(0))  # ... over ground
    depth = torch.full((B, 1, H, W), math.inf)
    depth[:, :, 30:] = 5.0
    out = clouds(rgb, depth, torch.Generator().manual_seed(4), prob=1.0)
    assert out.shape == rgb.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(out[:, :, 30:], rgb[:, :, 30:])  # the ground is untouched
    sky = out[:, :, :30]
    greyness = (sky.amax(1) - sky.amin(1)).mean(dim=(1, 2))  # a blue sky is far from grey, clouds are grey
    assert float(greyness.max()) < 0.44 and float(greyness.min()) < 0.2 < float(greyness.max())  # light to overcast
    assert float(sky.std(dim=(2, 3)).mean()) > 0.03  # structure, not a flat tint
    assert torch.equal(clouds(rgb, depth, torch.Generator().manual_seed(4), prob=1.0), out)  # the generator decides
    assert torch.equal(clouds(rgb, depth, torch.Generator().manual_seed(4), prob=0.0), rgb)
    with pytest.raises(ValueError, match="clouds"):
        DepthTrainConfig(clouds=1.5).validate()



def test_depth_training_profile_reports_its_window(tmp_path, capsys, monkeypatch):
    """scripts/profile_depth_train.py profiles exactly the asked steps of `worldgen train-depth`'s own loop (its
    step counter is the optimiser's step) and names the training code's functions by their share of the host's time."""
    import sys

    import torch

    from tests.scripts import load_script

    prof = load_script("profile_depth_train")
    step = torch.optim.Adam.step
    monkeypatch.setattr(sys, "argv", ["profile_depth_train.py", "--skip", "2", "--steps", "3", "--",
                                      "--preset", "train-depth-tiny"])
    prof.main()
    out = capsys.readouterr().out
    assert "# window: 3 steps," in out and "aten::convolution_backward" in out
    assert "refine/train/depth.py" in out and "photometric" in out
    assert torch.optim.Adam.step is step  # the optimiser's step is given back
    monkeypatch.setattr(sys, "argv", ["profile_depth_train.py", "--skip", "30", "--steps", "3", "--",
                                      "--preset", "train-depth-tiny"])  # the tiny preset has 20 steps
    with pytest.raises(SystemExit, match="fewer than the window needs"):
        prof.main()


def test_learning_rate_can_hold_where_its_decay_ended():
    """OptimConfig.hold_from: a run continued past the steps it was planned for keeps the rate its decay ended with,
    where a schedule stretched to the new length climbs back (the depth continuations of 2026-12-04)."""
    import dataclasses

    from refine.train.common import learning_rate
    from refine.train.depth import DepthTrainConfig

    planned = DepthTrainConfig(steps=9000)
    stretched = dataclasses.replace(planned, steps=12000)
    held = dataclasses.replace(stretched, optim=dataclasses.replace(stretched.optim, hold_from=9000))
    base = planned.optim.lr
    for step in (0, 150, 4000, 8999, 9000):  # the same schedule up to the end of the planned run
        assert learning_rate(held, base, step) == pytest.approx(learning_rate(planned, base, step), rel=1e-12)
    assert learning_rate(held, base, 9000) == pytest.approx(0.1 * base)
    assert learning_rate(held, base, 11999) == pytest.approx(0.1 * base)
    assert learning_rate(stretched, base, 9000) > 2 * 0.1 * base  # 7.1e-5 against 3.0e-5
    with pytest.raises(UserInputError, match="hold-from"):
        check(dataclasses.replace(held, optim=dataclasses.replace(held.optim, hold_from=-1)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the channels_last, bf16 path)")
def test_learned_depth_model_cuda_matches_cpu():
    """On CUDA the depth network runs channels_last under bf16 autocast; its log-depth and sky mask must be the CPU
    float32 model's (up to bf16 rounding), in the standard [B, H, W] layout."""
    from refine.depthnet import LearnedDepthModel
    torch.manual_seed(0)
    net = DepthNet(RefinerNetConfig(widths=(8, 16), bottleneck_blocks=1, global_code=4))
    for p in net.parameters():  # a fresh network outputs zeros (which any GPU path returning zeros would match)
        torch.nn.init.normal_(p, std=0.2)
    rgb = torch.rand(2, 3, 48, 80)
    with torch.no_grad():  # the sky logit centred, so about half the pixels are sky (read without hysteresis)
        net.head.bias[1] -= float(net(rgb * 2 - 1)[:, 1].median())
    cpu_ld, cpu_sky = LearnedDepthModel(net, sky_grow=0.0).batch(rgb)
    assert float(cpu_ld.std()) > 1 and 0.2 < float(cpu_sky.float().mean()) < 0.8
    gpu_ld, gpu_sky = LearnedDepthModel(net.cpu(), "cuda", sky_grow=0.0).batch(rgb)
    assert gpu_ld.shape == (2, 48, 80) and gpu_ld.is_contiguous() and gpu_sky.dtype == torch.bool
    assert torch.allclose(gpu_ld.cpu(), cpu_ld, atol=0.05 * float(cpu_ld.abs().max()) + 1e-3)
    assert (gpu_sky.cpu() == cpu_sky).float().mean() > 0.95
