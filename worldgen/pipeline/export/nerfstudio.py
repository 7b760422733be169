"""Training data for other tools: a run folder as nerfstudio data and as a COLMAP text model.

One directory serves both `ns-train splatfacto --data DIR` (nerfstudio reads `transforms.json`) and
gsplat's `examples/simple_trainer.py default --data_dir DIR` (it reads `sparse/0/` with pycolmap):

    DIR/transforms.json      nerfstudio's format (field names as nerfstudio's nerfstudio_dataparser.py reads them)
    DIR/images/NNNNN.png     the run's refined frames
    DIR/depths/NNNNN.npy     float32 z-depth [H, W] in world units, 0 where there is none (sky)
    DIR/sparse_pc.ply        seed points (the world's Gaussian centres and colours), `ply_file_path`
    DIR/sparse/0/{cameras,images,points3D}.txt   the same cameras and points as a COLMAP text model
    DIR/worldgen_export.json what was converted and how (conventions, depth unit, the commands)

DIR is held like `worldgen compare`'s --out (worldgen/core/runfolder.py OutputFolder): one writer at a time, a folder
holding anything but these names is refused in one line, and an earlier export there is deleted whole before the
first file is written (a new export never sits beside an old one's frames).

Camera conventions, converted here and only here:
- nerfstudio: `transform_matrix` is camera-to-world in OpenGL/Blender camera axes (+x right, +y up,
  +z backward), so it is worldgen's OpenCV c2w with its y and z columns negated:
  c2w_gl = c2w_cv @ diag(1, -1, -1, 1). Intrinsics (fl_x, fl_y, cx, cy) are in pixels with pixel
  centres at +0.5, as worldgen's (nerfstudio's ray generator offsets pixel indices by 0.5).
- COLMAP: world-to-camera quaternion (qw qx qy qz) and translation in OpenCV axes (COLMAP's), PINHOLE
  intrinsics fx fy cx cy with the same pixel-centre convention.
The world frame is worldgen's (up is -y); both trainers re-orient and re-centre the poses themselves.
Depth is z-depth (along the camera's axis), as nerfstudio's depth losses expect; it is in world
units, so depth-supervised nerfstudio methods need `--depth-unit-scale-factor 1` (their default
1e-3 is for millimetre PNGs, which cannot hold outdoor depths of many kilometres).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from worldgen.core.camera import Camera, rotmat_to_quat
from worldgen.core.io import atomic_write, atomic_write_text
from worldgen.core.runfolder import OutputFolder

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
"""Right-multiplying a c2w by this flips the camera's y and z axes: OpenCV <-> OpenGL (its own inverse)."""
NERFSTUDIO_ENTRIES = frozenset({"transforms.json", "images", "depths", "sparse", "sparse_pc.ply",
                                "worldgen_export.json"})
"""What an export writes at the top of its folder (the module docstring's list): a folder holding anything else is
not one to mix it into."""
SEED_POINTS = 200_000
"""At most this many seed points (a seeded, even subsample of the Gaussian centres)."""


def c2w_opengl(camera: Camera) -> np.ndarray:
    """[4, 4] float64 camera-to-world with OpenGL camera axes (+y up, +z backward) of an OpenCV-axes camera."""
    return camera.c2w.detach().double().cpu().numpy() @ OPENCV_TO_OPENGL


def intrinsics(camera: Camera) -> dict:
    """nerfstudio's intrinsics fields of a camera (pixels, pixel centres at +0.5)."""
    return {"fl_x": camera.fx, "fl_y": camera.fy, "cx": float(camera.K[0, 2]), "cy": float(camera.K[1, 2]),
            "w": camera.width, "h": camera.height}


def transforms_json(cameras: list[Camera], image_names: list[str], depth_names: list[str] | None,
                    ply_name: str | None) -> dict:
    """The transforms.json dict: shared intrinsics at the top level when every camera has the same,
    otherwise per frame; camera_model OPENCV with zero distortion."""
    intr = [intrinsics(c) for c in cameras]
    shared = all(i == intr[0] for i in intr)
    out: dict = {"camera_model": "OPENCV"}
    if shared:
        out.update(intr[0])
    out.update({"k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0})
    frames = []
    for t, cam in enumerate(cameras):
        f = {"file_path": image_names[t], "transform_matrix": c2w_opengl(cam).tolist()}
        if depth_names is not None:
            f["depth_file_path"] = depth_names[t]
        if not shared:
            f.update(intr[t])
        frames.append(f)
    out["frames"] = frames
    if ply_name is not None:
        out["ply_file_path"] = ply_name
    return out


def seed_points(scene, limit: int = SEED_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(xyz float32 [M, 3], rgb uint8 [M, 3]) of at most `limit` Gaussian centres (seeded subsample),
    skipping nearly transparent ones."""
    with torch.no_grad():
        keep = torch.isfinite(scene.means).all(1) & (scene.opacities() > 0.05)
        xyz = scene.means[keep].detach().float().cpu().numpy()
        rgb = (scene.colors[keep].detach().float().clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)
    if len(xyz) > limit:
        idx = np.sort(np.random.default_rng(0).choice(len(xyz), limit, replace=False))
        xyz, rgb = xyz[idx], rgb[idx]
    return xyz, rgb


def write_points_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray) -> None:
    """Binary PLY point cloud: x y z float, red green blue uchar (what open3d's read_point_cloud reads)."""
    rows = np.zeros(len(xyz), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")])
    rows["x"], rows["y"], rows["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    rows["r"], rows["g"], rows["b"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {len(xyz)}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    with atomic_write(path) as f:
        f.write(header.encode("ascii"))
        f.write(rows.tobytes())


def colmap_text(cameras: list[Camera], image_names: list[str], xyz: np.ndarray, rgb: np.ndarray) -> dict[str, str]:
    """COLMAP text model {file name: contents}: PINHOLE cameras (one per distinct intrinsics), images
    with world-to-camera poses (OpenCV axes; no 2D points), and points without tracks."""
    cam_ids: dict[tuple, int] = {}
    cam_lines, img_lines = [], []
    for t, cam in enumerate(cameras):
        key = (cam.width, cam.height, cam.fx, cam.fy, float(cam.K[0, 2]), float(cam.K[1, 2]))
        if key not in cam_ids:
            cam_ids[key] = len(cam_ids) + 1
            cam_lines.append(f"{cam_ids[key]} PINHOLE {key[0]} {key[1]} " + " ".join(repr(float(k)) for k in key[2:]))
        w2c = cam.w2c.detach().double().cpu()
        q = rotmat_to_quat(w2c[:3, :3]).tolist()
        tr = w2c[:3, 3].tolist()
        img_lines.append(f"{t + 1} " + " ".join(repr(float(x)) for x in q + tr) + f" {cam_ids[key]} {image_names[t]}")
        img_lines.append("")  # no 2D points
    pts = [f"{i + 1} {p[0]!r} {p[1]!r} {p[2]!r} {c[0]} {c[1]} {c[2]} 0" for i, (p, c) in
           enumerate(zip(xyz.astype(float).tolist(), rgb.tolist()))]
    head = "# written by worldgen export\n"
    return {
        "cameras.txt": head + "# CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]\n" + "\n".join(cam_lines) + "\n",
        "images.txt": head + "# IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME\n# POINTS2D[] as (X, Y, POINT3D_ID)\n"
                      + "\n".join(img_lines) + "\n",
        "points3D.txt": head + "# POINT3D_ID X Y Z R G B ERROR TRACK[]\n" + "\n".join(pts) + "\n",
    }


def export_nerfstudio(run, depth_of: Callable[[int], torch.Tensor] | None, out_dir: str | Path,
                      log: Callable[[str], None] = lambda s: None, scene=None) -> dict:
    """Write `run` (a RunDir) to `out_dir` as described in the module docstring. `depth_of(t)` gives
    frame t's z-depth [H, W] (+inf sky); None writes no depth. `scene`: the run's world when the caller has read it
    already (else read here from world.ply, when there is one, for the seed points). The folder is held
    (OutputFolder) from the first check to the last file; a frame that cannot be read stops the export before
    anything is written (a folder it made is removed again). Returns counts and the file list."""
    with OutputFolder(out_dir, owns=NERFSTUDIO_ENTRIES.__contains__, command="export --nerfstudio",
                      option="--nerfstudio") as folder:
        return _export(run, depth_of, folder, log, scene)


def _export(run, depth_of, folder: OutputFolder, log: Callable[[str], None], scene=None) -> dict:
    out = folder.path
    run.require_frames()
    n = len(run)
    images = [f"images/{t:05d}.png" for t in range(n)]
    depths = [f"depths/{t:05d}.npy" for t in range(n)] if depth_of is not None else None
    for t in range(n):  # every input is checked (and every depth made) before the first file is written
        run.frame_rgb(t)  # readable and of the camera's size, or one UserInputError
        if depth_of is not None:
            depth_of(t)
    folder.replace_earlier()
    (out / "images").mkdir(exist_ok=True)
    for t in range(n):
        tmp = out / "images" / f".{t:05d}.png.tmp"
        shutil.copyfile(run.frame_path(t), tmp)
        tmp.replace(out / images[t])
    if depth_of is not None:
        (out / "depths").mkdir(exist_ok=True)
        for t in range(n):
            d = depth_of(t).numpy().astype(np.float32)
            d = np.where(np.isfinite(d) & (d > 0), d, 0.0).astype(np.float32)
            with atomic_write(out / depths[t]) as f:
                np.save(f, d)
        log(f"wrote {n} depth maps")
    ply_name = None
    xyz = np.zeros((0, 3), np.float32)
    rgb = np.zeros((0, 3), np.uint8)
    if scene is not None or run.ply.is_file():
        xyz, rgb = seed_points(scene if scene is not None else run.load_scene())
        ply_name = "sparse_pc.ply"
        write_points_ply(out / ply_name, xyz, rgb)
    (out / "sparse" / "0").mkdir(parents=True, exist_ok=True)
    for name, text in colmap_text(run.cameras, [Path(i).name for i in images], xyz, rgb).items():
        atomic_write_text(out / "sparse" / "0" / name, text)
    meta = transforms_json(run.cameras, images, depths, ply_name)
    atomic_write_text(out / "worldgen_export.json", json.dumps({
        "source": str(run.root), "frames": n,
        "transform_matrix": "camera-to-world, OpenGL camera axes (+x right, +y up, +z back) = "
                            "worldgen c2w @ diag(1,-1,-1,1)",
        "world": "worldgen's world frame: up is -y (trainers re-orient poses themselves)",
        "depth": None if depth_of is None else
        "depths/*.npy: float32 z-depth in world units, 0 = none (sky); nerfstudio: --depth-unit-scale-factor 1",
        "commands": [f"ns-train splatfacto --data {out}",
                     f"ns-train depth-nerfacto --data {out} nerfstudio-data --depth-unit-scale-factor 1",
                     f"python examples/simple_trainer.py default --data_dir {out} --data_factor 1"],
    }, indent=1))
    atomic_write_text(out / "transforms.json", json.dumps(meta, indent=1))  # last: its presence means complete
    return {"dir": str(out), "frames": n, "depth": depth_of is not None, "seed_points": int(len(xyz))}
