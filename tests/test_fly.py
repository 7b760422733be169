"""End to end: `worldgen fly` on a tiny image, its outputs, loop closure, and bad input."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from plyfile import PlyData

from worldgen.cli import entrypoint
from worldgen.commands.fly import FlyConfig, run
from worldgen.pipeline.config import PhotoConfig, PipelineConfig
from worldgen.core.metrics import psnr


def cli(argv, capsys):
    with pytest.raises(SystemExit) as e:
        entrypoint(argv)
    return e.value.code, capsys.readouterr().err


def test_fly_writes_all_outputs(photo, tmp_path):
    out = tmp_path / "run"
    info = run(FlyConfig(image=str(photo), path="forward", frames=4, pipeline=PipelineConfig(size="64x48"), out=str(out),
                         progress=False))
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"{i:05d}.png" for i in range(4)]
    assert (out / "video.mp4").stat().st_size > 1000
    v = PlyData.read(str(out / "world.ply"))["vertex"]
    assert {"x", "f_dc_0", "opacity", "scale_2", "rot_3"} <= {p.name for p in v.properties}
    assert v.count == info["gaussians"] > 1000
    cams = json.loads((out / "cameras.json").read_text())["frames"]
    assert len(cams) == 4 and cams[0]["width"] == 64
    z = [c["c2w"][2][3] for c in cams]
    assert z[0] == 0 and all(b > a for a, b in zip(z, z[1:]))  # flying forward (+z)
    run_json = json.loads((out / "run.json").read_text())
    assert {"render", "refine", "lift"} <= set(run_json["ms_per_frame"])
    config = json.loads((out / "config.json").read_text())
    assert config["frames"] == 4 and config["pipeline"]["generator"]["lift"]["sigma_px"] == 0.45  # the whole tree
    assert not [p for p in out.rglob(".*")]  # no temp files left


def test_loop_closes_in_persistent_mode_only(photo, tmp_path):
    last = {}
    for mode in ("persistent", "per-frame"):
        frames = {}
        run(FlyConfig(image=str(photo), path="loop", frames=10, pipeline=PipelineConfig(size="64x48", speed=0.05),
                      mode=mode, out=str(tmp_path / mode), progress=False),
            on_frame=lambda t, f, g: frames.__setitem__(t, f.rgb.clone()))
        last[mode] = psnr(frames[9], frames[0])
    assert last["persistent"] >= 30.0, last
    assert last["per-frame"] < last["persistent"] - 5.0, last


def test_bad_inputs_give_one_line_and_exit_2(photo, tmp_path, capsys):
    out = str(tmp_path / "o")
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    cut = tmp_path / "cut.jpg"
    Image.open(photo).convert("RGB").resize((256, 192)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.ones((10, 10), np.float32))
    bad_json = tmp_path / "path.json"
    bad_json.write_text('{"keyframes": [ {"position": [0, 0')
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    cases = {
        "missing": ["fly", str(tmp_path / "nope.png"), "--out", out],
        "not an image": ["fly", str(not_image), "--out", out],
        "truncated": ["fly", str(cut), "--out", out],
        "wrong depth size": ["fly", str(photo), "--depth", str(wrong), "--out", out],
        "unwritable out": ["fly", str(photo), "--out", str(blocker / "sub")],
        "malformed path json": ["fly", str(photo), "--path", str(bad_json), "--out", out],
        "impossible frames": ["fly", str(photo), "--frames", "1", "--out", out],
    }
    for name, argv in cases.items():
        code, err = cli(argv, capsys)
        lines = [line for line in err.strip().splitlines() if line.strip()]
        assert code == 2, (name, err)
        assert len(lines) == 1 and lines[0].startswith("worldgen: error:"), (name, err)
        assert "Traceback" not in err


def test_nan_and_negative_depths_are_masked_not_fatal(photo, tmp_path):
    d = np.full((48, 64), 5.0, np.float32)
    d[:10] = np.inf
    d[20:25, 10:20] = np.nan
    d[30:33, 40:50] = -3.0
    np.save(tmp_path / "d.npy", d)
    seen = {}

    def on_frame(t, frame, gen):
        seen.setdefault(t, (frame.depth.clone(), frame.sky.clone()))
        seen["means_finite"] = bool(torch.isfinite(gen.scene.means).all())

    info = run(FlyConfig(image=str(photo), photo=PhotoConfig(depth=str(tmp_path / "d.npy")), path="forward", frames=3,
                         pipeline=PipelineConfig(size="64x48"), out=str(tmp_path / "r"), progress=False),
               on_frame=on_frame)
    assert info["gaussians"] > 0
    assert math.isfinite(info["frames_per_second"])
    depth0, sky0 = seen[0]
    # the NaN and negative pixels are filled from their neighbours (all at 5), not sky and not left invalid
    for rows, cols in ((slice(20, 25), slice(10, 20)), (slice(30, 33), slice(40, 50))):
        assert torch.allclose(depth0[rows, cols], torch.full_like(depth0[rows, cols], 5.0), rtol=1e-3)
        assert not sky0[rows, cols].any()
    assert sky0[:10].all() and seen["means_finite"]
