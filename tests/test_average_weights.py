"""scripts/average_weights.py: the weighted mean of refiner checkpoints that made `learned-fidelity` (2026-12-03), and of
depth training checkpoints."""
import subprocess
import sys

import pytest
import torch

from tests.scripts import ROOT, load_script


def _module():
    return load_script("average_weights")


def _ckpt(path, w, step, net_config=None, meta=None, key="refiner"):
    state = {"conv.weight": torch.full((2, 3), float(w), dtype=torch.float16), "count": torch.tensor(step)}
    torch.save({"step": step, "cursor": step // 10, "history": [{"step": step}],
                key: {"format": "x", "net_config": net_config or {"widths": [8]}, "state_dict": state,
                      "meta": meta or {}}}, path)
    return path


def test_depth_checkpoints_average_too_and_do_not_mix_with_refiners(tmp_path):
    mod = _module()
    a = _ckpt(tmp_path / "a.pt", 1.0, 9000, key="depth")
    b = _ckpt(tmp_path / "b.pt", 3.0, 14000, key="depth")
    out = mod.average([str(a), str(b)], [0.75, 0.25])
    assert "refiner" not in out and torch.allclose(out["depth"]["state_dict"]["conv.weight"].float(),
                                                   torch.full((2, 3), 1.5))
    assert out["step"] == 14000 and [s["step"] for s in out["depth"]["meta"]["averaged_from"]] == [9000, 14000]
    with pytest.raises(mod.UserInputError, match="another network"):
        mod.average([str(a), str(_ckpt(tmp_path / "r.pt", 1.0, 100))], [0.5, 0.5])


def test_weighted_mean_of_the_weights_the_rest_from_the_last_file(tmp_path):
    mod = _module()
    a = _ckpt(tmp_path / "a.pt", 1.0, 100, meta={"note": "a", "only_a": 1})
    b = _ckpt(tmp_path / "b.pt", 3.0, 200, meta={"note": "b"})
    out = mod.average([str(a), str(b)], [0.25, 0.75])
    sd = out["refiner"]["state_dict"]
    assert sd["conv.weight"].dtype == torch.float16 and torch.allclose(sd["conv.weight"].float(), torch.full((2, 3), 2.5))
    assert int(sd["count"]) == 200 and out["step"] == 200 and out["cursor"] == 20  # not averaged: the last file's
    assert out["refiner"]["meta"]["note"] == "b" and out["refiner"]["meta"]["only_a"] == 1
    assert out["refiner"]["meta"]["averaged_from"] == [{"file": "a.pt", "step": 100, "mix": 0.25},
                                                       {"file": "b.pt", "step": 200, "mix": 0.75}]
    # the sources are untouched
    assert float(torch.load(b, weights_only=False)["refiner"]["state_dict"]["conv.weight"][0, 0]) == 3.0


def test_refuses_other_networks_bad_mixes_and_unreadable_files_in_one_line(tmp_path):
    mod = _module()
    a = _ckpt(tmp_path / "a.pt", 1.0, 100)
    other = _ckpt(tmp_path / "c.pt", 1.0, 100, net_config={"widths": [16]})
    for paths, mix, says in (([a, other], [0.5, 0.5], "another network"), ([a, a], [0.7, 0.7], "sum to 1"),
                             ([a], [1.0], "two or more")):
        with pytest.raises(mod.UserInputError, match=says):
            mod.average([str(p) for p in paths], mix)
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    r = subprocess.run([sys.executable, "scripts/average_weights.py", str(tmp_path / "junk.pt"), str(a),
                        "--out", str(tmp_path / "out.pt")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and "cannot read" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out.pt").exists()
