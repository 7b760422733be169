import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from worldgen.core.scene import SH_C0, GaussianScene, SceneFileError


def random_scene(n: int = 50) -> GaussianScene:
    q = torch.randn(n, 4)
    return GaussianScene(
        means=torch.randn(n, 3) * 3,
        quats=q / q.norm(dim=-1, keepdim=True),
        log_scales=torch.randn(n, 3) - 2,
        opacity_logits=torch.randn(n),
        colors=torch.rand(n, 3),
    )


def test_ply_roundtrip_is_exact_and_standard(tmp_path):
    s = random_scene()
    s.save_ply(tmp_path / "w.ply")
    ply = PlyData.read(str(tmp_path / "w.ply"))
    names = [p.name for p in ply["vertex"].properties]
    assert names == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                     "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    v = ply["vertex"]
    assert np.allclose(v["f_dc_0"], (s.colors[:, 0].numpy() - 0.5) / SH_C0)
    assert np.array_equal(v["opacity"], s.opacity_logits.numpy())
    back = GaussianScene.load_ply(tmp_path / "w.ply")
    assert torch.equal(back.means, s.means)
    assert torch.equal(back.log_scales, s.log_scales)
    assert torch.equal(back.opacity_logits, s.opacity_logits)
    assert torch.allclose(back.quats, s.quats, atol=1e-7)
    assert torch.allclose(back.colors, s.colors, atol=1e-6)  # through f_dc: one float32 multiply-add


def test_ply_stores_normalised_quaternions_of_unnormalised_ones(tmp_path):
    """`quats` are normalised on use, so a trained scene holds quaternions of any length; the PLY's rot_0..3
    are the unit quaternions (the standard layout; `save_ply`), the same rotation, read back as such."""
    s = random_scene()
    lengths = torch.linspace(0.05, 20.0, len(s))  # far from 1 both ways
    s.quats = s.quats * lengths[:, None]
    s.save_ply(tmp_path / "w.ply")
    v = PlyData.read(str(tmp_path / "w.ply"))["vertex"]
    rot = np.stack([np.asarray(v[f"rot_{i}"]) for i in range(4)], -1)
    np.testing.assert_allclose(np.linalg.norm(rot, axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(rot, s.unit_quats().numpy(), atol=1e-7)
    back = GaussianScene.load_ply(tmp_path / "w.ply")
    assert torch.allclose(back.quats, s.unit_quats(), atol=1e-7)


def test_loads_ply_written_by_another_tool_with_sh_rest(tmp_path):
    n = 7
    props = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)] + [
        "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    arr = np.zeros(n, dtype=[(p, "f4") for p in props])
    arr["x"] = np.arange(n)
    arr["rot_0"] = 1.0
    PlyData([PlyElement.describe(arr, "vertex")], text=True).write(str(tmp_path / "other.ply"))
    s = GaussianScene.load_ply(tmp_path / "other.ply")
    assert len(s) == n and torch.equal(s.means[:, 0], torch.arange(n, dtype=torch.float32))
    assert torch.allclose(s.colors, torch.full((n, 3), 0.5))


def test_bad_ply_files_raise_one_clear_error(tmp_path):
    with pytest.raises(SceneFileError, match="no such"):
        GaussianScene.load_ply(tmp_path / "missing.ply")
    (tmp_path / "junk.ply").write_bytes(b"not a ply at all")
    with pytest.raises(SceneFileError, match="not a readable PLY"):
        GaussianScene.load_ply(tmp_path / "junk.ply")
    arr = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(tmp_path / "points.ply"))
    with pytest.raises(SceneFileError, match="missing"):
        GaussianScene.load_ply(tmp_path / "points.ply")


def test_append_prune_subset():
    a, b = random_scene(5), random_scene(3)
    a.append(b)
    assert len(a) == 8 and torch.equal(a.means[5:], b.means)
    keep = torch.arange(8) % 2 == 0
    kept_means = a.means[keep]
    removed = a.prune(keep)
    assert removed == 4 and len(a) == 4 and torch.equal(a.means, kept_means)
    assert len(a.subset(torch.tensor([0, 1]))) == 2
    with pytest.raises(ValueError, match="colors"):
        GaussianScene(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 3), torch.zeros(2), torch.zeros(3, 3))


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    s = random_scene()
    target = tmp_path / "w.ply"
    s.save_ply(target)
    before = target.read_bytes()
    monkeypatch.setattr(np, "ascontiguousarray", lambda *_a, **_k: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError):
        random_scene(3).save_ply(target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.ply"]  # no temp file left behind
