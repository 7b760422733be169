"""Image and depth inputs: formats, orientation, and bad input as one clear UserInputError."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from worldgen.pipeline.depth import LandscapePrior, clean_depth, detect_sky
from worldgen.core.camera import Camera
from worldgen.core.images import center_crop_resize, load_depth_file, load_image, parse_size, save_figure_u8
from worldgen.core.io import UserInputError, check_writable_dir


def landscape(h=48, w=64) -> np.ndarray:
    """Blue sky over the top 40%, green noisy ground below, uint8 [h, w, 3]."""
    rng = np.random.default_rng(0)
    img = np.zeros((h, w, 3), np.uint8)
    img[: int(0.4 * h)] = (110, 160, 230)
    ground = rng.integers(40, 140, size=(h - int(0.4 * h), w, 3))
    ground[..., 1] += 60
    img[int(0.4 * h):] = ground.clip(0, 255)
    return img


def test_image_modes_become_rgb(tmp_path):
    arr = landscape()
    Image.fromarray(arr).convert("L").save(tmp_path / "g.png")
    Image.fromarray(arr).convert("RGBA").save(tmp_path / "a.png")
    g, a = load_image(tmp_path / "g.png"), load_image(tmp_path / "a.png")
    assert g.shape == (48, 64, 3) and torch.equal(g[..., 0], g[..., 1])
    assert torch.allclose(a, torch.from_numpy(arr).float() / 255)


def test_exif_orientation_is_respected(tmp_path):
    arr = landscape()
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    im.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (64, 48, 3)


@pytest.mark.parametrize("content,match", [
    (None, "no such image"),
    (b"hello, not an image", "not an image"),
])
def test_bad_images(tmp_path, content, match):
    p = tmp_path / "x.png"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(UserInputError, match=match):
        load_image(p)


def test_truncated_image(tmp_path):
    Image.fromarray(landscape(200, 200)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserInputError, match="truncated"):
        load_image(tmp_path / "cut.jpg")


def test_depth_files(tmp_path):
    d = np.full((6, 8), 4.0, np.float32)
    d[0] = np.inf
    d[2, 3] = np.nan
    d[3, 3] = -1.0
    np.save(tmp_path / "d.npy", d)
    loaded = load_depth_file(tmp_path / "d.npy")
    assert torch.isposinf(loaded[0]).all() and torch.isnan(loaded[2, 3]) and torch.isnan(loaded[3, 3])
    depth, sky = clean_depth(loaded)
    assert sky[0].all() and not sky[1:].any()
    assert torch.isfinite(depth[1:]).all() and math.isclose(float(depth[2, 3]), 4.0, rel_tol=1e-4)
    np.savez(tmp_path / "disp.npz", disparity=np.full((6, 8), 0.5, np.float32))
    assert torch.allclose(load_depth_file(tmp_path / "disp.npz", kind="disparity"), torch.full((6, 8), 2.0))
    Image.fromarray(np.full((6, 8), 2500, np.uint16)).save(tmp_path / "d16.png")
    assert torch.allclose(load_depth_file(tmp_path / "d16.png"), torch.full((6, 8), 2.5))


def test_bad_depth_files(tmp_path):
    with pytest.raises(UserInputError, match="no such depth"):
        load_depth_file(tmp_path / "nope.npy")
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    with pytest.raises(UserInputError, match="could not read"):
        load_depth_file(tmp_path / "bad.npy")
    np.save(tmp_path / "3d.npy", np.zeros((2, 3, 4)))
    with pytest.raises(UserInputError, match="2-D"):
        load_depth_file(tmp_path / "3d.npy")
    with pytest.raises(UserInputError, match="no valid"):
        clean_depth(torch.full((4, 4), float("nan")))
    Image.fromarray(np.full((6, 8, 3), 200, np.uint8)).save(tmp_path / "photo.png")
    with pytest.raises(UserInputError, match="8-bit RGB picture"):  # (was read as red / 1000 m)
        load_depth_file(tmp_path / "photo.png")
    np.save(tmp_path / "complex.npy", np.ones((4, 4), np.complex64))
    with pytest.raises(UserInputError, match="2-D numeric"):
        load_depth_file(tmp_path / "complex.npy")


def test_sky_detection_and_prior():
    rgb = torch.from_numpy(landscape()).float() / 255
    sky = detect_sky(rgb)
    assert sky[:15].float().mean() > 0.95 and sky[25:].float().mean() < 0.02
    cam = Camera.from_fov(60, 64, 48)
    depth, sky2 = LandscapePrior()(rgb, cam)
    assert torch.isposinf(depth[sky2]).all()
    col = depth[25:, 10]
    assert torch.isfinite(col).all() and (col[1:] <= col[:-1]).all()  # ground comes closer downwards


def test_sizes_and_crop():
    assert parse_size("320x240") == (320, 240)
    for bad in ["abc", "10x10", "256", "0x0"]:
        with pytest.raises(UserInputError):
            parse_size(bad)
    img = torch.rand(40, 80, 3)
    out = center_crop_resize(img, 20, 20)
    assert out.shape == (20, 20, 3)
    assert torch.allclose(center_crop_resize(img, 40, 40), img[:, 20:60])


def test_unwritable_output(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserInputError, match="cannot be made: .* is a file, not a directory"):
        check_writable_dir(f / "sub")


def test_figures_are_written_in_the_format_their_suffix_names(tmp_path):
    """save_figure_u8: JPEG for .jpg / .jpeg (the docs' figures), the smallest PNG for .png, nothing for another."""
    y, x = np.mgrid[0:48, 0:64]
    img = np.stack([x * 4, y * 5, 128 + 100 * np.sin(x / 6.0) * np.cos(y / 5.0)], -1).clip(0, 255).astype(np.uint8)
    for name, fmt in (("a.jpg", "JPEG"), ("b.JPEG", "JPEG"), ("c.png", "PNG")):
        save_figure_u8(tmp_path / name, img)
        with Image.open(tmp_path / name) as im:
            assert im.format == fmt and im.size == (64, 48)
            back = np.asarray(im.convert("RGB")).astype(int)
        assert np.abs(back - img).mean() < (3 if fmt == "JPEG" else 1e-9)  # lossy, but the same picture
    with pytest.raises(ValueError, match="a figure is"):
        save_figure_u8(tmp_path / "d.gif", img)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "b.JPEG", "c.png"]  # no temporary left behind


def test_a_folder_where_a_file_belongs_is_one_line(tmp_path):
    """A directory given as the camera file, or as the depth command's output, is refused before anything is
    written (it was a traceback, and `worldgen depth` left FILE.png behind)."""
    from worldgen.commands.depth import DepthConfig, main as depth_main
    from worldgen.pipeline.config import PhotoConfig
    from worldgen.pipeline.sources import load_camera_json

    with pytest.raises(UserInputError, match="cannot read camera file"):
        load_camera_json(str(tmp_path))
    photo = tmp_path / "photo.png"
    Image.fromarray(landscape()).save(photo)
    (tmp_path / "d.npy").mkdir()
    with pytest.raises(UserInputError, match="is a directory"):
        depth_main(DepthConfig(image=str(photo), out=str(tmp_path / "d.npy"), size="32x32", device="cpu",
                               photo=PhotoConfig(depth_model="prior")))
    assert not (tmp_path / "d.png").exists()


def test_a_camera_file_with_impossible_intrinsics_is_one_line(tmp_path):
    """A camera file of the right size whose focal length is zero, negative, NaN or infinite, or whose principal
    point lies far outside the image, is refused by name (it was a traceback in fly and compare, and `worldgen
    depth` wrote a depth with zeros); a sound one loads as floats."""
    import json

    from worldgen.pipeline.sources import load_camera_json

    good = {"fx": 300.0, "fy": 300.0, "cx": 320.0, "cy": 240.0, "width": 640, "height": 480}
    f = tmp_path / "cam.json"
    f.write_text(json.dumps(good))
    assert load_camera_json(str(f)) == {k: float(v) for k, v in good.items()}
    for key, value, says in (("fy", 0, "fy must be a positive number"), ("fx", -5, "fx must be a positive number"),
                             ("fx", float("nan"), "fx must be a positive number"),
                             ("fy", float("inf"), "fy must be a positive number"),
                             ("cx", 1e9, "cx must lie within"), ("cy", -1e9, "cy must lie within")):
        f.write_text(json.dumps({**good, key: value}))  # (json writes NaN and Infinity, as Python reads them)
        with pytest.raises(UserInputError, match=says):
            load_camera_json(str(f))


def test_a_depth_npz_of_several_unnamed_arrays_or_none_is_one_line(tmp_path):
    """An .npz depth takes the array named depth (or disparity), else its only one; with several others, or none,
    it says so (it took the first of several silently, and an empty one was an IndexError in brackets)."""
    from worldgen.core.images import load_depth_file

    d = np.full((4, 6), 5.0, np.float32)
    np.savez(tmp_path / "one.npz", anything=d)
    assert torch.equal(load_depth_file(tmp_path / "one.npz"), torch.from_numpy(d))
    np.savez(tmp_path / "named.npz", a=d * 2, depth=d)
    assert torch.equal(load_depth_file(tmp_path / "named.npz"), torch.from_numpy(d))
    np.savez(tmp_path / "two.npz", a=d, b=d * 2)
    with pytest.raises(UserInputError, match=r"holds 2 arrays \(a, b\); name the one to use 'depth' or 'disparity'"):
        load_depth_file(tmp_path / "two.npz")
    np.savez(tmp_path / "none.npz")
    with pytest.raises(UserInputError, match="holds 0 arrays; name"):
        load_depth_file(tmp_path / "none.npz")
