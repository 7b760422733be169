"""`worldgen export`: per-frame depth, the fused mesh (GLB/PLY/OBJ), nerfstudio/COLMAP training data
with the OpenCV -> OpenGL conversion round-tripped, compressed splats, and the command's bad input.

Most tests share one tiny real flight over the bundled example (tests/flights.py, CPU, ~10 s)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.flights import tiny_flight
from worldgen.core.camera import Camera, look_at, quat_to_rotmat
from worldgen.pipeline.export.depth import FrameDepths
from worldgen.pipeline.export.mesh import MeshConfig, depth_bands, export_mesh, srgb_to_linear
from worldgen.pipeline.export.nerfstudio import OPENCV_TO_OPENGL, export_nerfstudio, seed_points
from worldgen.pipeline.export.rundir import RunDir
from worldgen.pipeline.export.splat import (_morton_order, _pack_rotation, decode_compressed_ply, decode_splat,
                                   encode_compressed_ply, encode_splat, export_splat)
from worldgen.core.io import UserInputError
from worldgen.core.scene import GaussianScene


@pytest.fixture(scope="module")
def flight(tmp_path_factory) -> Path:
    return tiny_flight(tmp_path_factory.mktemp("export") / "run", frames=8, size="96x64")


@pytest.fixture(scope="module")
def depths(flight) -> dict[int, torch.Tensor]:
    run = RunDir.open(flight)
    fd = FrameDepths(run, source="render", device="cpu")
    return {t: fd(t) for t in range(len(run))}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean().clamp_min(1e-12)))


# ---------------------------------------------------------------------------------------- depth
def test_rendered_depth_matches_the_photo_depth_at_frame_0(flight, depths):
    """The world is lifted from the example's true depth at frame 0, so re-rendering it there gives
    that depth back where the world covers the view, and +inf (sky) where it does not."""
    run = RunDir.open(flight)
    d = depths[0]
    assert d.shape == (run.cameras[0].height, run.cameras[0].width) and d.dtype == torch.float32
    sky = ~torch.isfinite(d)
    assert 0.02 < float(sky.float().mean()) < 0.6  # the example has sky at the top, ground below
    assert float(sky[: d.shape[0] // 8].float().mean()) > float(sky[-d.shape[0] // 8:].float().mean())
    # Frame 0 as the flight built it: the example photo and its true depth at the working size.
    from tests.flights import EXAMPLE
    from worldgen.pipeline.config import PhotoConfig
    from worldgen.pipeline.sources import first_frame

    f0 = first_frame(str(EXAMPLE / "example.png"), PhotoConfig(depth=str(EXAMPLE / "example_depth.npy"),
                     camera=str(EXAMPLE / "example.json")), "96x64", torch.device("cpu"))
    both = torch.isfinite(d) & torch.isfinite(f0.depth)
    rel = ((d - f0.depth).abs() / f0.depth)[both]
    assert float(both.float().mean()) > 0.5
    assert float(rel.median()) < 0.02  # re-rendered depth is the photo's depth, to the splats' blur


def test_depth_files_are_read_where_present(flight, depths, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(flight, run_dir)
    run = RunDir.open(run_dir)
    (run_dir / "depth").mkdir()
    mine = np.full((run.cameras[2].height, run.cameras[2].width), 42.0, np.float32)
    mine[0, 0] = 0.0  # zero / negative / NaN mean "no depth"
    np.save(run.depth_path(2), mine)
    fd = FrameDepths(run, source="auto", device="cpu")
    d2 = fd(2)
    assert float(d2[1, 1]) == 42.0 and math.isinf(float(d2[0, 0]))
    torch.testing.assert_close(fd(3), depths[3])  # no file: rendered
    assert fd.rendered == 1
    with pytest.raises(UserInputError, match="depth/00000.npy is missing"):
        FrameDepths(run, source="files")
    np.save(run.depth_path(4), np.zeros((3, 3), np.float32))
    with pytest.raises(UserInputError, match="expected float depth of shape"):
        fd(4)
    cam = run.cameras[5]
    np.save(run.depth_path(5), np.ones((cam.width, cam.height), np.float32))  # the right size, transposed
    with pytest.raises(UserInputError) as e:
        fd(5)
    msg = str(e.value)
    assert "\n" not in msg and f"expected float depth of shape ({cam.height}, {cam.width})" in msg
    assert f"({cam.width}, {cam.height})" in msg


# ---------------------------------------------------------------------------------------- mesh
def test_depth_bands_cover_the_range_with_constant_ratio():
    d = np.array([100.0, 150.0, 1000.0, 5000.0, np.inf, 0.0, np.nan])
    bands = depth_bands(d, ratio=2.0, max_depth=0.0, overlap=0.0)
    assert bands[0][0] == pytest.approx(100.0)
    assert bands[-1][1] == pytest.approx(np.percentile([100, 150, 1000, 5000], 99.5))
    for (a, b), (c, _) in zip(bands, bands[1:]):
        assert b == pytest.approx(c) and b / a == pytest.approx(2.0)
    assert depth_bands(np.array([np.inf, np.nan]), 2.0) == []


def test_the_last_depth_band_keeps_to_the_ratio_too():
    """Depths 100 to 300 at ratio 2 (log2 3 = 1.58 octaves) need two bands, (100, 200) and (200, 300): no band, the
    last one included, spans more than the ratio (one band of 100 to 300 would span 3)."""
    bands = depth_bands(np.array([100.0, 300.0]), ratio=2.0, max_depth=300.0, overlap=0.0)
    assert bands == [pytest.approx((100.0, 200.0)), pytest.approx((200.0, 300.0))]
    for ratio in (1.5, 2.0, 3.0):
        bands = depth_bands(np.geomspace(1.0, 1000.0, 50), ratio=ratio, max_depth=1000.0, overlap=0.0)
        assert all(b / a <= ratio * (1 + 1e-9) for a, b in bands), (ratio, bands)
        assert bands[0][0] == pytest.approx(1.0) and bands[-1][1] == pytest.approx(1000.0)


def test_a_glb_gets_a_vertex_colour_material_on_every_primitive():
    """trimesh writes a vertex-coloured GLB without a material; `glb_with_vertex_colour_material` adds one (white,
    rough, double-sided) and every primitive uses it, so viewers show COLOR_0. The binary chunk is kept."""
    import struct

    import trimesh

    from worldgen.pipeline.export.mesh import glb_with_vertex_colour_material

    tm = trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [0, 1, 0]], faces=[[0, 1, 2]],
                         vertex_colors=[[255, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]], process=False)
    raw = tm.export(file_type="glb")
    glb = glb_with_vertex_colour_material(raw)
    json_len = struct.unpack_from("<I", glb, 12)[0]
    doc = json.loads(glb[20:20 + json_len])
    prims = [p for m in doc["meshes"] for p in m["primitives"]]
    assert prims and all(p.get("material") == len(doc["materials"]) - 1 for p in prims)
    mat = doc["materials"][-1]
    assert mat["doubleSided"] and mat["pbrMetallicRoughness"]["baseColorFactor"] == [1, 1, 1, 1]
    binary = raw[20 + struct.unpack_from("<I", raw, 12)[0]:]
    assert struct.unpack_from("<I", glb, 8)[0] == len(glb) and glb.endswith(binary)
    back = next(iter(trimesh.load(trimesh.util.wrap_as_stream(glb), file_type="glb").geometry.values()))
    assert np.asarray(back.visual.vertex_attributes["color"]).shape == (3, 4)


def test_mesh_glb_opens_in_trimesh_and_open3d_with_the_frames_colours(flight, depths, tmp_path):
    """The fused GLB opens in trimesh and open3d alike, +y up, and each vertex seen by camera 0 carries frame 0's
    colour there, channel by channel (linear light, as glTF's COLOR_0 is)."""
    import open3d as o3d
    import trimesh

    run = RunDir.open(flight)
    st = export_mesh(run, depths.__getitem__, tmp_path / "world.glb", MeshConfig())
    assert st["triangles"] > 2000 and st["bytes"] == (tmp_path / "world.glb").stat().st_size
    assert len(st["bands"]) >= 3  # outdoor depth: several octaves, one grid each
    assert st["voxel_sizes"][-1] > 4 * st["voxel_sizes"][0]

    scene = trimesh.load(tmp_path / "world.glb")
    mesh = next(iter(scene.geometry.values()))
    colours = np.asarray(mesh.visual.vertex_attributes["color"])  # COLOR_0 (with a material: kept here)
    assert colours.shape == (len(mesh.vertices), 4)
    assert colours[:, :3].std(0).min() > 5  # real colours, not one flat tint

    o = o3d.io.read_triangle_mesh(str(tmp_path / "world.glb"))
    assert len(o.triangles) == st["triangles"] and o.has_vertex_colors()
    srt = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731  (open3d orders vertices its own way)
    np.testing.assert_allclose(srt(np.asarray(o.vertices)), srt(np.asarray(mesh.vertices)), atol=1e-3)
    assert np.asarray(o.vertex_colors).std(0).min() > 0.02

    # +y up, -z forward (glTF): the flight starts at the origin looking along world +z over ground below it.
    v = np.asarray(mesh.vertices)
    assert np.median(v[:, 2]) < 0 and np.median(v[:, 1]) < 0

    # Geometry and colour line up with frame 0: vertices seen by camera 0 have the frame's colour there.
    cam = run.cameras[0]
    world = torch.from_numpy((v * np.array([1.0, -1.0, -1.0])).astype(np.float32))  # back to worldgen's axes
    uv, z = cam.project(world)
    inside = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < cam.width) & (uv[:, 1] >= 0) & (uv[:, 1] < cam.height)
    assert int(inside.sum()) > 500
    img = run.frame_rgb(0).astype(np.float64) / 255
    px = img[uv[inside, 1].long().numpy(), uv[inside, 0].long().numpy()]
    got = colours[inside.numpy(), :3] / 255.0
    err = np.abs(got - srgb_to_linear(px)).mean(0)  # per channel; GLB colours are linear (glTF COLOR_0)
    shuffled = np.abs(got - srgb_to_linear(px[np.random.default_rng(0).permutation(len(px))])).mean()
    assert err.max() < 0.03 and err.mean() < 0.6 * shuffled  # each channel its own (BGR: 0.08 in red and blue)


def test_mesh_ply_and_obj_keep_srgb_colours(flight, depths, tmp_path):
    import trimesh

    run = RunDir.open(flight)
    cfg = MeshConfig(max_triangles=3000)
    for suffix in (".ply", ".obj"):
        st = export_mesh(run, depths.__getitem__, tmp_path / f"m{suffix}", cfg)
        m = trimesh.load(tmp_path / f"m{suffix}", process=False)
        assert 0 < len(m.faces) <= 3000 and st["triangles"] == len(m.faces)
        c = np.asarray(m.visual.vertex_colors)[:, :3].astype(float)
        assert c.std(0).min() > 5 and c.mean() > 40  # sRGB bytes: not the darker linear values


def test_mesh_settings_and_paths_are_checked(flight, depths, tmp_path):
    run = RunDir.open(flight)
    with pytest.raises(UserInputError, match="unknown mesh format"):
        export_mesh(run, depths.__getitem__, tmp_path / "m.stl")
    with pytest.raises(UserInputError, match="band-ratio"):
        export_mesh(run, depths.__getitem__, tmp_path / "m.glb", MeshConfig(band_ratio=1.0))
    assert not (tmp_path / "m.glb").exists()


# ---------------------------------------------------------------------------------------- nerfstudio
# Field names nerfstudio reads from transforms.json (nerfstudio/data/dataparsers/nerfstudio_dataparser.py:
# the top level and each frame), and the camera models it knows (nerfstudio/cameras/cameras.py).
NS_TOP = {"camera_model", "fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "k3", "k4", "p1", "p2", "frames",
          "ply_file_path", "applied_transform", "applied_scale", "orientation_override",
          "train_filenames", "val_filenames", "test_filenames"}
NS_FRAME = {"file_path", "transform_matrix", "mask_path", "depth_file_path",
            "fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "k3", "k4", "p1", "p2"}
NS_MODELS = {"SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "OPENCV_FISHEYE", "EQUIRECTANGULAR"}


def ns_rays(meta: dict, frame: dict, depth: np.ndarray) -> np.ndarray:
    """World points [H, W, 3] of a frame's z-depth, the way nerfstudio makes rays: pixel centres at
    +0.5, camera direction ((u - cx) / fx, -(v - cy) / fy, -1) in OpenGL axes, then transform_matrix."""
    g = {k: frame.get(k, meta.get(k)) for k in ("fl_x", "fl_y", "cx", "cy", "w", "h")}
    v, u = np.mgrid[0:g["h"], 0:g["w"]] + 0.5
    d = np.stack([(u - g["cx"]) / g["fl_x"], -(v - g["cy"]) / g["fl_y"], -np.ones_like(u)], -1) * depth[..., None]
    T = np.asarray(frame["transform_matrix"])
    return d @ T[:3, :3].T + T[:3, 3]


def ns_project(meta: dict, frame: dict, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, z-depth) of world points in a frame, OpenGL camera (looking along -z)."""
    g = {k: frame.get(k, meta.get(k)) for k in ("fl_x", "fl_y", "cx", "cy")}
    T = np.asarray(frame["transform_matrix"])
    pc = (pts - T[:3, 3]) @ T[:3, :3]
    z = -pc[..., 2]
    return g["fl_x"] * pc[..., 0] / z + g["cx"], -g["fl_y"] * pc[..., 1] / z + g["cy"], z


def reprojection_agreement(out: Path, t: int, s: int, meta: dict | None = None, tol: float = 0.02) -> float:
    """Fraction of frame t's depth pixels that, re-projected into frame s with the exported poses and
    intrinsics, land inside frame s on its own depth (within `tol`, relative; nearest pixel). Only the
    exported files are used."""
    meta = meta or json.loads((out / "transforms.json").read_text())
    ft, fs = meta["frames"][t], meta["frames"][s]
    dt, ds = np.load(out / ft["depth_file_path"]), np.load(out / fs["depth_file_path"])
    pts = ns_rays(meta, ft, dt)[dt > 0]
    u, v, z = ns_project(meta, fs, pts)
    H, W = ds.shape
    inside = (z > 0) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    ui, vi = np.clip(u, 0, W - 1).astype(int), np.clip(v, 0, H - 1).astype(int)
    there = ds[vi, ui]
    ok = inside & (there > 0)
    if ok.sum() < 50:
        return 0.0
    return float((np.abs(z[ok] - there[ok]) < tol * there[ok]).mean())


def orbit_run(tmp: Path, n: int = 5) -> Path:
    """A run folder of a red-green block seen by cameras on an arc around it (40 degrees apart in all),
    frames rendered by the pure-PyTorch renderer."""
    from renderers import get_renderer
    from tests.test_viewer import block_scene

    scene = block_scene(n=24, depth=12)
    scene.colors[:, 2] = torch.linspace(0, 1, len(scene))
    tmp.mkdir(parents=True)
    scene.save_ply(tmp / "world.ply")
    (tmp / "frames").mkdir()
    cams = []
    for k, ang in enumerate(np.linspace(-20, 20, n)):
        a = math.radians(ang)
        pos = torch.tensor([5 * math.sin(a), -1.0, 5.0 - 5 * math.cos(a)])
        cam = Camera.from_fov(60, 80, 60, look_at(pos, torch.tensor([0.0, 0.0, 5.0])))
        r = get_renderer("cpu").render(scene, cam)
        Image.fromarray((r.rgb.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)).save(tmp / "frames" / f"{k:05d}.png")
        cams.append(cam.to_dict())
    (tmp / "cameras.json").write_text(json.dumps({"frames": cams}))
    return tmp


def test_nerfstudio_transforms_use_nerfstudio_field_names(flight, depths, tmp_path):
    """transforms.json holds only fields nerfstudio reads, the frames and depths as the run's, the OpenGL poses of
    its cameras; the seed points (sparse_pc.ply and COLMAP's points3D.txt) are the world's Gaussian centres in
    the world frame with their colours (the visible ones: opacity above 0.05)."""
    import open3d as o3d

    run = RunDir.open(flight)
    out = tmp_path / "ns"
    st = export_nerfstudio(run, depths.__getitem__, out)
    meta = json.loads((out / "transforms.json").read_text())
    assert set(meta) <= NS_TOP and meta["camera_model"] in NS_MODELS
    assert {"fl_x", "fl_y", "cx", "cy", "w", "h"} <= set(meta)  # one camera for the whole flight
    assert len(meta["frames"]) == len(run) == st["frames"]
    for t, f in enumerate(meta["frames"]):
        assert set(f) <= NS_FRAME and {"file_path", "transform_matrix", "depth_file_path"} <= set(f)
        assert np.asarray(f["transform_matrix"]).shape == (4, 4)
        img = np.asarray(Image.open(out / f["file_path"]).convert("RGB"))
        np.testing.assert_array_equal(img, run.frame_rgb(t))
        d = np.load(out / f["depth_file_path"])
        assert d.dtype == np.float32 and d.shape == (meta["h"], meta["w"])
        np.testing.assert_array_equal(d == 0, ~torch.isfinite(depths[t]).numpy())  # sky: 0, nerfstudio's "none"
    # The OpenGL pose is the OpenCV one with y and z flipped: the camera looks along -z of transform_matrix.
    c2w = run.cameras[3].c2w.double().numpy()
    T = np.asarray(meta["frames"][3]["transform_matrix"])
    np.testing.assert_allclose(T[:3, 3], c2w[:3, 3], atol=1e-6)
    np.testing.assert_allclose(-T[:3, 2], c2w[:3, 2], atol=1e-6)
    np.testing.assert_allclose(T[:3, 1], -c2w[:3, 1], atol=1e-6)
    pc = o3d.io.read_point_cloud(str(out / meta["ply_file_path"]))  # how nerfstudio reads seed points
    assert len(pc.points) == st["seed_points"] > 1000 and pc.has_colors()
    scene = run.load_scene()
    visible = scene.opacities() > 0.05
    xyz = scene.means[visible].double().numpy()
    rgb = (scene.colors[visible].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    assert len(xyz) == st["seed_points"]  # (under the subsampling limit: every one)
    np.testing.assert_array_equal(np.asarray(pc.points), xyz)
    np.testing.assert_allclose(np.asarray(pc.colors), rgb / 255.0, atol=1e-6)
    colmap = np.array([ln.split()[1:7] for ln in (out / "sparse/0/points3D.txt").read_text().splitlines()
                       if ln and ln[0] != "#"], dtype=np.float64)
    np.testing.assert_allclose(colmap[:, :3], xyz, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(colmap[:, 3:], rgb)
    faint = scene.subset(torch.arange(3))
    faint.opacity_logits[1] = -5.0  # opacity 0.007: no seed point
    np.testing.assert_array_equal(seed_points(faint)[0], faint.means[[0, 2]].numpy())


def test_nerfstudio_round_trip_reprojects_depth_between_frames(flight, depths, tmp_path):
    """Frame t's depth, re-projected into frame t+1 with the exported OpenGL poses, agrees with frame
    t+1's depth: on a real flight, and on an orbit around a block where a wrong axis convention
    cannot pass (negative control)."""
    run = RunDir.open(flight)
    out = tmp_path / "ns"
    export_nerfstudio(run, depths.__getitem__, out)
    for t in range(len(run) - 1):
        # Re-rendered depth of a 96x64 forest: neighbouring pixels differ by several percent (trees and
        # ground), and the world's layers blend a little differently from each view; the same check
        # done with worldgen's own OpenCV cameras gives the same fractions.
        assert reprojection_agreement(out, t, t + 1, tol=0.05) > 0.8, f"frames {t} -> {t + 1}"

    orbit = RunDir.open(orbit_run(tmp_path / "orbit"))
    fd = FrameDepths(orbit, source="render", device="cpu")
    out2 = tmp_path / "ns_orbit"
    export_nerfstudio(orbit, fd, out2)
    meta = json.loads((out2 / "transforms.json").read_text())
    for t in range(len(orbit) - 1):
        assert reprojection_agreement(out2, t, t + 1, meta) > 0.9
    wrong = json.loads(json.dumps(meta))  # the OpenCV pose passed off as OpenGL: must not agree
    for f, cam in zip(wrong["frames"], orbit.cameras):
        f["transform_matrix"] = cam.c2w.double().numpy().tolist()
    assert reprojection_agreement(out2, 0, 1, wrong) < 0.3
    np.testing.assert_allclose(OPENCV_TO_OPENGL @ OPENCV_TO_OPENGL, np.eye(4))


def test_colmap_model_matches_the_cameras(flight, depths, tmp_path):
    run = RunDir.open(flight)
    out = tmp_path / "ns"
    export_nerfstudio(run, None, out)
    assert not (out / "depths").exists() and "depth_file_path" not in json.loads(
        (out / "transforms.json").read_text())["frames"][0]
    cams = [ln.split() for ln in (out / "sparse/0/cameras.txt").read_text().splitlines() if ln and ln[0] != "#"]
    assert len(cams) == 1 and cams[0][1] == "PINHOLE"
    c0 = run.cameras[0]
    np.testing.assert_allclose([float(x) for x in cams[0][4:]], [c0.fx, c0.fy, float(c0.K[0, 2]), float(c0.K[1, 2])])
    lines = [ln for ln in (out / "sparse/0/images.txt").read_text().splitlines() if not ln.startswith("#")]
    assert len(lines) == 2 * len(run)  # each image line is followed by an (empty) 2D-points line
    for t in range(len(run)):
        f = lines[2 * t].split()
        assert f[9] == f"{t:05d}.png" and (out / "images" / f[9]).is_file() and lines[2 * t + 1] == ""
        R = quat_to_rotmat(torch.tensor([float(x) for x in f[1:5]], dtype=torch.float64)).numpy()
        w2c = run.cameras[t].w2c.double().numpy()
        np.testing.assert_allclose(R, w2c[:3, :3], atol=1e-5)
        np.testing.assert_allclose([float(x) for x in f[5:8]], w2c[:3, 3], atol=1e-4)
    pts = [ln for ln in (out / "sparse/0/points3D.txt").read_text().splitlines() if ln and ln[0] != "#"]
    assert len(pts) > 1000 and len(pts[0].split()) == 8  # id x y z r g b error, empty track


# ---------------------------------------------------------------------------------------- splats
def decode_rotation_playcanvas(value: int) -> np.ndarray:
    """wxyz from a packed_rotation, transcribing the case table of PlayCanvas' unpackRot
    (src/scene/gsplat/gsplat-compressed-data.js): Quat.set(x, y, z, w), then rot_0 = w."""
    norm = 1.0 / (math.sqrt(2) * 0.5)
    a, b, c = ((((value >> s) & 1023) / 1023 - 0.5) * norm for s in (20, 10, 0))
    m = math.sqrt(max(0.0, 1 - (a * a + b * b + c * c)))
    x, y, z, w = {0: (a, b, c, m), 1: (m, b, c, a), 2: (b, m, c, a), 3: (b, c, m, a)}[value >> 30]
    return np.array([w, x, y, z])


def test_compressed_rotation_packing_follows_playcanvas():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(64, 4))
    for i in range(4):  # make each component the largest in turn, with both signs
        q[i, i], q[4 + i, i] = 5.0, -5.0
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    packed = _pack_rotation(q.astype(np.float32))
    for qi, p in zip(q, packed):
        got = decode_rotation_playcanvas(int(p))
        assert min(np.abs(got - qi).max(), np.abs(got + qi).max()) < 3e-3  # q and -q are one rotation


def test_splat_files_round_trip_and_render_like_the_world(flight):
    """Both splat formats give back every Gaussian's own position, scale (per axis), rotation (wxyz), colour (per
    channel) and opacity, to their quantisation, and render like the world."""
    from renderers import get_renderer

    run = RunDir.open(flight)
    scene = run.load_scene()
    ren, cam = get_renderer("cpu"), run.cameras[0]
    ref = ren.render(scene, cam).rgb

    data = encode_splat(scene)
    assert len(data) == 32 * len(scene)
    back = decode_splat(data)
    size_opacity = np.exp(scene.log_scales.double().sum(1).numpy()) * scene.opacities().double().numpy()
    order = np.argsort(-size_opacity, kind="stable")
    np.testing.assert_array_equal(back.means.numpy(), scene.means.numpy()[order])  # float32, exact
    np.testing.assert_allclose(back.colors.numpy(), scene.colors.clamp(0, 1).numpy()[order], atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(back.log_scales.numpy(), scene.log_scales.numpy()[order], atol=1e-5)  # x, y, z kept
    np.testing.assert_allclose(back.unit_quats().numpy(), scene.unit_quats().numpy()[order], atol=0.02)  # w first
    assert psnr(ren.render(back, cam).rgb, ref) > 35

    cdata = encode_compressed_ply(scene)
    n_chunks = -(-len(scene) // 256)
    header = cdata[: cdata.index(b"end_header\n") + 11]
    assert len(cdata) == len(header) + 72 * n_chunks + 16 * len(scene)
    cback = decode_compressed_ply(cdata)
    ordered = scene.subset(torch.from_numpy(_morton_order(scene.means.numpy())))
    ext = (ordered.means.max(0).values - ordered.means.min(0).values)
    assert float(((cback.means - ordered.means).abs().max(0).values / ext).max()) < 1e-3
    assert float((cback.opacities() - ordered.opacities()).abs().max()) < 1 / 255
    # per chunk of 256: colours in 8 bits, log-scales in 11/10/11 bits of the chunk's range, each channel its own
    assert float((cback.colors - ordered.colors.clamp(0, 1)).abs().max()) < 1 / 255 + 1e-6
    s_ext = ordered.log_scales.max(0).values - ordered.log_scales.min(0).values
    assert float(((cback.log_scales - ordered.log_scales).abs().max(0).values / s_ext).max()) < 1e-3
    q, cq = ordered.unit_quats(), cback.unit_quats()
    assert float(torch.minimum((cq - q).abs().amax(1), (cq + q).abs().amax(1)).max()) < 5e-3  # q, -q: one rotation
    assert psnr(ren.render(cback, cam).rgb, ref) > 30
    assert len(cdata) < 0.3 * os.path.getsize(run.ply) < len(data)


def test_splat_export_paths(flight, tmp_path):
    scene = RunDir.open(flight).load_scene()
    st = export_splat(scene, tmp_path / "w.splat")
    assert st["format"] == "splat" and st["bytes"] == (tmp_path / "w.splat").stat().st_size
    st = export_splat(scene, tmp_path / "w.compressed.ply")
    assert st["format"] == "compressed-ply" and (tmp_path / "w.compressed.ply").read_bytes().startswith(b"ply\n")
    with pytest.raises(UserInputError, match=".splat"):
        export_splat(scene, tmp_path / "w.ksplat")
    with pytest.raises(UserInputError, match="multiple of 32"):
        decode_splat(b"x" * 33)
    assert isinstance(decode_splat(b""), GaussianScene)


# ---------------------------------------------------------------------------------------- command
def cli(args: list[str], capsys) -> tuple[int, str]:
    from worldgen.cli import entrypoint

    try:
        entrypoint(["export", *args])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    io = capsys.readouterr()
    return code, (io.err.strip().splitlines() or [""])[-1] if code else io.out


def test_cli_bad_input_is_one_line_and_exit_2(flight, tmp_path, capsys):
    code, err = cli([str(tmp_path / "nope"), "--splat", str(tmp_path / "a.splat")], capsys)
    assert code == 2 and err.startswith("worldgen: error: no such run directory")
    (tmp_path / "empty").mkdir()
    code, err = cli([str(tmp_path / "empty"), "--splat", str(tmp_path / "a.splat")], capsys)
    assert code == 2 and "has no cameras.json" in err
    code, err = cli([str(flight)], capsys)
    assert code == 2 and "nothing to export" in err
    (tmp_path / "file").write_text("x")
    code, err = cli([str(flight), "--mesh", str(tmp_path / "file" / "m.glb")], capsys)
    assert code == 2 and err.startswith("worldgen: error: output directory") and "is a file, not a directory" in err
    code, err = cli([str(flight), "--nerfstudio", str(tmp_path / "file")], capsys)
    assert code == 2 and "not a directory" in err
    code, err = cli([str(flight), "--mesh", str(tmp_path / "m.fbx")], capsys)
    assert code == 2 and "unknown mesh format" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file"]  # nothing half-written


def test_cli_refuses_outputs_that_would_destroy_or_mix_a_folder(flight, tmp_path, capsys):
    """A --mesh or --splat named as one of the run's own files (it replaced world.ply, and the run could no longer
    be viewed), --mesh and --splat at one path, a --nerfstudio folder that is the run or holds other files, and a
    --splat .ply that is not .compressed.ply: one line each, exit 2, every folder as it was."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    before = sorted(p.name for p in flight.iterdir())
    world = (flight / "world.ply").read_bytes()
    for args, says in (((("--mesh", str(flight / "world.ply"))), "is the run's own world.ply"),
                       ((("--splat", str(flight / "cameras.json"))), "--splat"),
                       (("--mesh", str(tmp_path / "w.ply"), "--splat", str(tmp_path / "w.ply")), "use a .splat file"),
                       (("--mesh", str(tmp_path / "w.compressed.ply"), "--splat", str(tmp_path / "w.compressed.ply")),
                        "are the same file"),
                       (("--nerfstudio", str(flight)), "is the run folder itself"),
                       (("--nerfstudio", str(tmp_path / "mine")), "holds 'notes.txt'")):
        code, err = cli([str(flight), *args], capsys)
        assert code == 2 and err.startswith("worldgen: error: ") and says in err, (args, err)
    assert sorted(p.name for p in flight.iterdir()) == before and (flight / "world.ply").read_bytes() == world
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_a_damaged_frame_stops_the_export_before_it_writes(flight, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(flight, run)
    last = RunDir.open(run).frame_path(len(RunDir.open(run)) - 1)
    last.write_bytes(last.read_bytes()[:100])  # cut short, as by a full disk
    code, err = cli([str(run), "--nerfstudio", str(tmp_path / "ns")], capsys)
    assert code == 2 and err.startswith("worldgen: error: ") and str(last.name) in err
    assert not (tmp_path / "ns").exists() or not any((tmp_path / "ns").iterdir())  # no images/00000.png


def test_cli_writes_splats_and_reports_sizes(flight, tmp_path, capsys):
    code, out = cli([str(flight), "--splat", str(tmp_path / "w.compressed.ply")], capsys)
    assert code == 0 and "% of world.ply" in out
    back = decode_compressed_ply((tmp_path / "w.compressed.ply").read_bytes())
    assert len(back) == len(RunDir.open(flight).load_scene())
