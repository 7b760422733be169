"""Bad input to the core loaders and settings: one `worldgen: error:` line and exit 2 (or the loader's one-line
error), never a traceback, never an output half-written (the audit of 2026-12, defects of images, weights files,
the autopilot's settings, empty worlds and run cameras)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import write_landscape
from worldgen.cli import entrypoint
from worldgen.core.camera import Camera
from worldgen.core.frame import Frame
from worldgen.core.io import UserInputError
from worldgen.core.scene import GaussianScene, SceneFileError

EXAMPLE = Path(__file__).resolve().parents[1] / "worldgen" / "examples" / "example.png"


def cli(argv, capsys) -> tuple[int, str]:
    """(exit status, stderr) of `worldgen ARGV` (0 when it returns)."""
    try:
        entrypoint([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def one_line_error(code, err, *says) -> str:
    """The single `worldgen: error:` line of a failed command, asserting exit 2 and that it says `says`."""
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("worldgen: error: "), err
    for s in says:
        assert s in lines[0], lines[0]
    return lines[0]


FLY = ["fly", "--size", "64x64", "--frames", "3", "--device", "cpu", "--no-video", "--no-progress"]


# ------------------------------------------------------------------------------------------ 1. too large an image
def test_an_image_past_pils_pixel_limit_is_one_line(tmp_path, monkeypatch, capsys):
    """PIL refuses an image of more than 2 x MAX_IMAGE_PIXELS pixels (a decompression bomb) with an error that is not
    an OSError: `fly` says the image is too large, its pixel count and the limit, and writes nothing."""
    from worldgen.core.images import load_image

    photo = tmp_path / "big.png"
    write_landscape(photo)  # 64 x 48 = 3072 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # refused past 2000 pixels
    with pytest.raises(UserInputError, match=r"too large.*3,072 pixels.*2,000"):
        load_image(photo)
    code, err = cli([*FLY[:1], photo, *FLY[1:], "--depth-model", "prior", "--out", tmp_path / "run"], capsys)
    one_line_error(code, err, "big.png is too large", "3,072 pixels")
    assert not (tmp_path / "run").exists()


def test_a_training_photo_past_pils_pixel_limit_is_refused_like_other_unreadable_photos(tmp_path, monkeypatch):
    """load_photos refuses a folder holding a photo it cannot read (one ValueError line), a too large one too."""
    from refine.train.common import load_photos

    (tmp_path / "ph").mkdir()
    write_landscape(tmp_path / "ph" / "a.png", 32, 24)  # 768 pixels
    write_landscape(tmp_path / "ph" / "b.png")  # 3072 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"b\.png is too large to read: 3,072 pixels") as e:
        load_photos(str(tmp_path / "ph"), torch.device("cpu"))
    assert "\n" not in str(e.value)


def test_a_sky_image_past_pils_pixel_limit_is_one_line(tmp_path, monkeypatch):
    """SkyDome.load_png (a run's sky.png, read by view and export) says so in one line too."""
    from worldgen.pipeline.sky import SkyDome

    Image.new("RGBA", (128, 64), (90, 140, 200, 255)).save(tmp_path / "sky.png")  # 8,192 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(UserInputError, match=r"sky\.png is too large to read: 8,192 pixels"):
        SkyDome.load_png(tmp_path / "sky.png")


def test_a_float_grey_image_is_read_as_0_to_1_or_refused_in_one_line(tmp_path):
    """A 32-bit float TIFF (PIL mode F) came out black (PIL's convert clips it); now read as grey in 0..1, and one
    line for values outside that (or NaN)."""
    from worldgen.core.images import load_image

    Image.fromarray(np.full((16, 24), 0.25, np.float32), mode="F").save(tmp_path / "grey.tif")
    img = load_image(tmp_path / "grey.tif")
    assert img.shape == (16, 24, 3) and torch.allclose(img, torch.full_like(img, 0.25))
    Image.fromarray(np.full((16, 24), 200.0, np.float32), mode="F").save(tmp_path / "bright.tif")
    with pytest.raises(UserInputError, match="floating-point image with values up to 200"):
        load_image(tmp_path / "bright.tif")


# ------------------------------------------------------------------------------------------ 2. damaged weights files
def _depth_blob(**fields) -> dict:
    from refine.depthnet import DEPTH_FORMAT

    return {"format": DEPTH_FORMAT, **fields}


@pytest.mark.parametrize("blob, says", [
    (_depth_blob(), "'net_config' is missing"),
    (_depth_blob(net_config=5, state_dict={}), "'net_config'"),
    (_depth_blob(net_config={"widths": "abc"}, state_dict={}), "'net_config'"),
    (_depth_blob(net_config={"colour": 1}, state_dict={}), "'net_config'"),
    (_depth_blob(net_config={"widths": [10**12] * 5}, state_dict={}), "'net_config'"),
    (_depth_blob(net_config={"widths": [8, 16]}), "'state_dict' is missing"),
    (_depth_blob(net_config={"widths": [8, 16]}, state_dict=[1, 2]), "'state_dict'"),
    (_depth_blob(net_config={"widths": [8, 16]}, state_dict={"stem.weight": 1.0}), "'state_dict'"),
    (_depth_blob(net_config={"widths": [8, 16]}, state_dict={}), "do not fit"),
], ids=["format-only", "config-int", "widths-str", "config-foreign-key", "widths-huge", "no-state", "state-list",
        "state-floats", "state-empty"])
def test_a_weights_file_with_the_right_tag_but_damaged_contents_is_one_line(tmp_path, blob, says):
    from refine.depthnet import load_depth_weights

    torch.save(blob, tmp_path / "w.pt")
    with pytest.raises(ValueError, match="w.pt") as e:
        load_depth_weights(tmp_path / "w.pt")
    assert says in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_weights_that_are_nan_or_of_the_wrong_shape_are_one_line(tmp_path):
    from refine.depthnet import DEPTH_FORMAT, load_depth_weights
    from refine.net import DepthNet, RefinerNetConfig, save_net_blob

    save_net_blob(tmp_path / "ok.pt", DepthNet(RefinerNetConfig(widths=(8, 16))), DEPTH_FORMAT)
    net, _ = load_depth_weights(tmp_path / "ok.pt")
    assert net.config.widths == (8, 16)
    blob = torch.load(tmp_path / "ok.pt")
    blob["state_dict"]["stem.weight"][0] = float("nan")
    torch.save(blob, tmp_path / "nan.pt")
    with pytest.raises(ValueError, match="'stem.weight' holds NaN"):
        load_depth_weights(tmp_path / "nan.pt")
    blob["state_dict"]["stem.weight"] = blob["state_dict"]["stem.weight"][:1]
    torch.save(blob, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match=r"do not fit .*'stem.weight' has shape \[1, 3, 3, 3\]"):
        load_depth_weights(tmp_path / "shape.pt")


def test_fly_with_a_damaged_depth_model_is_one_line(tmp_path, capsys):
    torch.save(_depth_blob(), tmp_path / "w.pt")
    code, err = cli([*FLY[:1], EXAMPLE, *FLY[1:], "--depth-model", tmp_path / "w.pt", "--out", tmp_path / "run"],
                    capsys)
    one_line_error(code, err, "w.pt is a damaged depth weights file")
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------ 3. autopilot
@pytest.mark.parametrize("width", [0, 1])
def test_a_steer_width_below_two_is_refused(tmp_path, capsys, width):
    """The yaw rule compares the left and right halves of the reduced frame: 0 or 1 column gave a NaN pose."""
    from worldgen.core.config import ConfigValueError
    from worldgen.pipeline.paths.autopilot import AutopilotConfig

    with pytest.raises(ConfigValueError, match="at least 2"):
        AutopilotConfig(steer_width=width).validate()
    AutopilotConfig(steer_width=2).validate()
    code, err = cli([*FLY[:1], EXAMPLE, *FLY[1:], "--path", "autopilot", "--autopilot.steer-width", width,
                     "--out", tmp_path / "run"], capsys)
    one_line_error(code, err, "--autopilot.steer-width", "at least 2")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("size, steer_width", [((2048, 16), 64), ((8192, 16), 64), ((17, 16), 2), ((64, 64), 2)])
def test_the_autopilot_steers_over_very_wide_or_odd_frames(size, steer_width):
    """2048x16 reduced to 64 across was 64x0 (a RuntimeError in _pool_maps); 17 columns at steer_width 2 were 1
    column (a NaN pose): the coarse view keeps at least 2 columns and 1 row, and the poses stay finite."""
    from worldgen.pipeline.paths.autopilot import AutopilotPath, _coarse_maps

    W, H = size
    start = Camera.from_fov(60.0, W, H)
    depth = torch.full((H, W), 5.0)
    depth[: H // 3] = math.inf
    frame = Frame(torch.zeros(H, W, 3), depth, torch.isinf(depth), start)
    _, _, sky, d = _coarse_maps(frame, steer_width)
    assert sky.shape == d.shape and sky.shape[0] >= 1 and sky.shape[1] >= 2
    path = AutopilotPath(start, 1.0, 4, steer_width=steer_width)
    prev = None
    for t in range(4):
        c2w = path.pose(t, prev)
        assert torch.isfinite(c2w).all()
        cam = start.with_pose(c2w)
        prev = Frame(torch.zeros(H, W, 3), depth, torch.isinf(depth), cam)


# ------------------------------------------------------------------------------------------ 4. and 5. run folders
def _scene(n: int) -> GaussianScene:
    g = torch.Generator().manual_seed(0)
    return GaussianScene(torch.randn(n, 3, generator=g) + torch.tensor([0.0, 0.0, 5.0]),
                         torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), torch.full((n, 3), -3.0), torch.zeros(n),
                         torch.rand(n, 3, generator=g))


def _run(root: Path, scene: GaussianScene, **camera) -> Path:
    """A one-frame run folder: cameras.json (camera's fields overridden by `camera`), frames/00000.png,
    depth/00000.npy, world.ply."""
    cam = Camera.from_fov(60.0, 32, 24)
    (root / "frames").mkdir(parents=True)
    (root / "depth").mkdir()
    Image.fromarray(np.full((24, 32, 3), 128, np.uint8)).save(root / "frames" / "00000.png")
    np.save(root / "depth" / "00000.npy", np.full((24, 32), 5.0, np.float32))
    (root / "cameras.json").write_text(json.dumps({"frames": [{**cam.to_dict(), **camera}]}))
    scene.save_ply(root / "world.ply")
    return root


def test_a_world_without_usable_gaussians_is_refused_by_export_and_view(tmp_path, capsys):
    """world.ply with 0 vertices, or only rows with a NaN: export wrote an empty .splat (exit 0) and view served 0
    Gaussians; now one line, and no output at all (not the mesh first and then the error)."""
    from viewer.browse import load_world

    nan = _scene(20)
    nan.means[:, 0] = float("nan")
    for name, scene, says in (("empty", GaussianScene.empty(), "holds no Gaussians"),
                              ("nan", nan, "holds no usable Gaussian")):
        run = _run(tmp_path / name, scene)
        with pytest.raises(SceneFileError, match=says):
            GaussianScene.load_ply(run / "world.ply")
        with pytest.raises(UserInputError, match=says):
            load_world(run)
        out = tmp_path / f"out_{name}"
        out.mkdir()
        for args in (["--splat", out / "w.splat"], ["--mesh", out / "m.glb", "--splat", out / "w.splat"],
                     ["--mesh", out / "m.glb", "--nerfstudio", out / "ns"]):
            code, err = cli(["export", run, *args], capsys)
            one_line_error(code, err, "world.ply", says)
            assert list(out.iterdir()) == [], (args, list(out.iterdir()))
    half = _scene(20)
    half.means[:10, 1] = float("inf")
    assert len(GaussianScene.load_ply(_run(tmp_path / "half", half) / "world.ply")) == 10  # the rest is kept


@pytest.mark.parametrize("camera, says", [({"fx": float("nan")}, "fx=nan"), ({"fy": float("nan")}, "fy=nan"),
                                          ({"fx": float("inf")}, "fx=inf"), ({"fy": 0.0}, "fy=0"),
                                          ({"cx": float("nan")}, "principal point"),
                                          ({"cy": float("-inf")}, "principal point")],
                         ids=["fx-nan", "fy-nan", "fx-inf", "fy-0", "cx-nan", "cy-inf"])
def test_a_camera_with_a_non_finite_or_non_positive_focal_length_is_one_line(tmp_path, capsys, camera, says):
    from worldgen.pipeline.export.rundir import RunDir

    run = _run(tmp_path / "run", _scene(20), **camera)
    with pytest.raises(UserInputError, match="frame 0") as e:
        RunDir.open(run)
    assert says in str(e.value), str(e.value)
    code, err = cli(["export", run, "--splat", tmp_path / "w.splat"], capsys)
    one_line_error(code, err, "cameras.json: frame 0", says)
    assert not (tmp_path / "w.splat").exists()
