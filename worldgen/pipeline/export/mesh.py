"""Mesh export: a run's refined RGBD frames fused into one vertex-coloured triangle mesh.

Fusion is TSDF integration in open3d's hashed voxel blocks (`open3d.t.geometry.VoxelBlockGrid`, the
successor of the legacy `ScalableTSDFVolume`, which in open3d 0.20 extracts empty meshes even from a
plane seen three times). Outdoor depth spans two orders of magnitude (a flight over the bundled
example sees 240 m to 13 km), and a pixel's footprint grows with depth, so no single voxel size
suits it: depth is split into bands whose far/near ratio is `band_ratio`, and each band gets its own
grid whose voxel is `voxel_px` pixel footprints at the band's near edge (so every band is resolved
like the image resolves it) and whose truncation is `trunc_voxels` of its voxels. Bands overlap by
a few percent so their surfaces meet. Depth beyond `max_depth` (default: the 99.5th percentile of
the run's depths) and sky (+inf) are not integrated.

The mesh is cleaned with open3d (degenerate, duplicated and non-manifold pieces, small floating
components; quadric decimation above `max_triangles`) and written with trimesh. Mesh files use the
glTF convention, +y up and right-handed, whatever the format: worldgen's world (up -y) is turned
180 degrees about x, (x, y, z) -> (x, -y, -z), so Blender and glTF viewers show it upright.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from worldgen.core.camera import Camera
from worldgen.core.io import UserInputError, atomic_write

MESH_FORMATS = (".glb", ".ply", ".obj")
WORLD_TO_YUP = np.diag([1.0, -1.0, -1.0])
"""Rotation from worldgen's world (up -y) to the mesh files' frame (glTF: up +y): 180 degrees about x."""


@dataclass(frozen=True)
class MeshConfig:
    """How frames become a mesh (see the module docstring)."""

    voxel_px: float = 1.5
    """Voxel edge, in pixel footprints (depth / fx) at the near edge of each depth band."""
    trunc_voxels: float = 4.0
    """TSDF truncation distance, in voxels of the band."""
    band_ratio: float = 2.0
    """Far / near depth of each band (each band's voxels are this much larger than the previous band's)."""
    max_depth: float = 0.0
    """Depth beyond this (world units) is not fused; 0: the 99.5th percentile of the run's finite depths."""
    min_weight: float = 0.5
    """Keep surface with at least this much TSDF weight (each frame that sees a voxel adds 1)."""
    edge_ratio: float = 1.25
    """Pixels whose depth differs from a neighbour's by more than this ratio (depth edges, where a
    rendered depth mixes foreground and background) are not fused; 0: fuse them all."""
    max_triangles: int = 1_000_000
    """Simplify (quadric decimation) meshes with more triangles than this; 0: never."""
    min_component: float = 0.002
    """Drop connected pieces with fewer triangles than this fraction of the mesh's (floating specks)."""

    def check(self) -> None:
        """UserInputError for settings that cannot work."""
        if not self.voxel_px > 0 or not self.trunc_voxels >= 1:
            raise UserInputError("--tsdf.voxel-px must be positive and --tsdf.trunc-voxels at least 1")
        if not self.band_ratio > 1.05:
            raise UserInputError(f"--tsdf.band-ratio must be above 1.05, got {self.band_ratio}")
        if self.max_depth < 0 or self.max_triangles < 0 or not 0 <= self.min_component < 1:
            raise UserInputError("--tsdf.max-depth and --tsdf.max-triangles must be >= 0, "
                                 "--tsdf.min-component in [0, 1)")
        if self.edge_ratio != 0 and not self.edge_ratio > 1:
            raise UserInputError(f"--tsdf.edge-ratio must be above 1 (or 0: off), got {self.edge_ratio}")


def check_mesh_path(path: str | Path) -> Path:
    """The output path, if its format is one we write; UserInputError otherwise."""
    p = Path(path)
    if p.suffix.lower() not in MESH_FORMATS:
        raise UserInputError(f"--mesh {p}: unknown mesh format {p.suffix or '(none)'!r}; use .glb, .ply or .obj")
    return p


def depth_bands(depths: np.ndarray, ratio: float, max_depth: float = 0.0,
                overlap: float = 0.03) -> list[tuple[float, float]]:
    """Depth bands [(near, far), ...] covering the finite positive values of `depths` (any shape, a
    sample of the run's depths) up to `max_depth` (0: their 99.5th percentile), each far/near = `ratio`
    before the `overlap` (fraction) added at both ends. Empty if no depth is finite."""
    d = depths[np.isfinite(depths) & (depths > 0)]
    if d.size == 0:
        return []
    lo = float(d.min())
    hi = float(max_depth) if max_depth > 0 else float(np.percentile(d, 99.5))
    hi = max(hi, lo * (1 + 1e-3))
    n = max(1, math.ceil(math.log(hi / lo) / math.log(ratio) - 1e-9))
    edges = lo * ratio ** np.arange(n + 1)
    edges[-1] = hi
    return [(float(a) * (1 - overlap), float(b) * (1 + overlap)) for a, b in zip(edges[:-1], edges[1:])]


class BandedTSDF:
    """TSDF fusion over depth bands, one open3d VoxelBlockGrid per band (see the module docstring).

    Args:
        bands: [(near, far)] depth ranges (world units).
        fx: a focal length in pixels, for the pixel footprint depth / fx.
        cfg: MeshConfig.
    """

    BLOCKS = 1024
    """Initial hash capacity of each grid, in 8^3-voxel blocks (about 10 KB each); open3d grows it as needed."""

    def __init__(self, bands: list[tuple[float, float]], fx: float, cfg: MeshConfig):
        import open3d as o3d
        import open3d.core as o3c

        self.o3d, self.o3c = o3d, o3c
        self.bands, self.cfg = bands, cfg
        self.device = o3c.Device("CPU:0")
        self.voxels = [cfg.voxel_px * near / fx for near, _ in bands]
        self.grids = [
            o3d.t.geometry.VoxelBlockGrid(
                attr_names=("tsdf", "weight", "color"), attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
                attr_channels=((1), (1), (3)), voxel_size=float(v), block_resolution=8, block_count=self.BLOCKS,
                device=self.device)
            for v in self.voxels]

    def integrate(self, camera: Camera, rgb: np.ndarray, depth: np.ndarray) -> None:
        """Fuse one frame: rgb uint8 [H, W, 3], depth float32 [H, W] z-depth (+inf / 0 / NaN: none),
        camera with OpenCV axes, c2w, pixel centres at +0.5 (open3d puts them at integers: cx - 0.5)."""
        o3d, o3c = self.o3d, self.o3c
        K = camera.K.detach().double().cpu().numpy().copy()
        K[0, 2] -= 0.5
        K[1, 2] -= 0.5
        Kt = o3c.Tensor(K)
        w2c = o3c.Tensor(camera.w2c.detach().double().cpu().numpy())
        color = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(rgb, dtype=np.float32) / 255.0))
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
        if self.cfg.edge_ratio > 0:
            from worldgen.pipeline.lift import depth_edges

            d = torch.from_numpy(np.where(depth > 0, depth, np.inf).astype(np.float32))
            depth[depth_edges(d, self.cfg.edge_ratio).numpy()] = 0.0
        for (near, far), grid in zip(self.bands, self.grids):
            d = np.where((depth >= near) & (depth < far), depth, 0.0).astype(np.float32)
            if not d.any():
                continue
            dimg = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(d)))
            try:
                blocks = grid.compute_unique_block_coordinates(dimg, Kt, w2c, 1.0, far, self.cfg.trunc_voxels)
            except RuntimeError as e:  # open3d samples depth sparsely: a few scattered pixels may touch no block
                if "No block is touched" in str(e):
                    continue
                raise
            grid.integrate(blocks, dimg, color, Kt, w2c, 1.0, far, self.cfg.trunc_voxels)

    def extract(self):
        """One legacy `open3d.geometry.TriangleMesh` (vertex colours in [0, 1]) of all bands, in world coordinates."""
        mesh = self.o3d.geometry.TriangleMesh()
        for grid in self.grids:
            if grid.hashmap().size() == 0:
                continue
            part = grid.extract_triangle_mesh(weight_threshold=self.cfg.min_weight).to_legacy()
            mesh += part
        return mesh


def clean_mesh(mesh, cfg: MeshConfig):
    """Remove degenerate, duplicated and non-manifold pieces and components smaller than
    `cfg.min_component` of the triangles; decimate to `cfg.max_triangles`. Modifies and returns `mesh`."""
    mesh.remove_duplicated_vertices()
    mesh.remove_degenerate_triangles()
    mesh.remove_duplicated_triangles()
    mesh.remove_non_manifold_edges()
    n = len(mesh.triangles)
    if n and cfg.min_component > 0:
        labels, counts, _ = mesh.cluster_connected_triangles()
        labels, counts = np.asarray(labels), np.asarray(counts)
        mesh.remove_triangles_by_mask(counts[labels] < max(8, cfg.min_component * n))
    mesh.remove_unreferenced_vertices()
    if cfg.max_triangles and len(mesh.triangles) > cfg.max_triangles:
        mesh = mesh.simplify_quadric_decimation(target_number_of_triangles=int(cfg.max_triangles))
        mesh.remove_unreferenced_vertices()
    return mesh


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (the sRGB transfer function, IEC 61966-2-1)."""
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def to_trimesh(mesh, linear: bool = False):
    """A `trimesh.Trimesh` of an open3d mesh (world coordinates, sRGB colours in [0, 1]): vertices turned
    into the +y-up frame (WORLD_TO_YUP), uint8 RGBA vertex colours (converted to linear light when
    `linear`: glTF's COLOR_0 is linear), faces kept as they are (a proper rotation keeps their winding)."""
    import trimesh

    v = np.asarray(mesh.vertices, dtype=np.float64) @ WORLD_TO_YUP.T
    f = np.asarray(mesh.triangles, dtype=np.int64)
    c = np.asarray(mesh.vertex_colors, dtype=np.float64)
    rgba = np.full((len(v), 4), 255, np.uint8)
    if len(c) == len(v):
        rgba[:, :3] = np.clip((srgb_to_linear(c) if linear else c) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return trimesh.Trimesh(vertices=v, faces=f, vertex_colors=rgba, process=False)


def glb_with_vertex_colour_material(glb: bytes) -> bytes:
    """The GLB `glb` with one explicit material on every primitive that has none: white base colour,
    not metallic, fully rough, double-sided. glTF multiplies the base colour by COLOR_0, and viewers
    (Blender's importer among them) show vertex colours through a material; trimesh writes none for a
    vertex-coloured mesh."""
    import json
    import struct

    magic, version, _ = struct.unpack_from("<4sII", glb, 0)
    json_len, json_type = struct.unpack_from("<I4s", glb, 12)
    if magic != b"glTF" or version != 2 or json_type != b"JSON":
        raise ValueError("not a glTF 2.0 binary")
    doc = json.loads(glb[20:20 + json_len])
    rest = glb[20 + json_len:]  # the BIN chunk, untouched
    mats = doc.setdefault("materials", [])
    mats.append({"name": "vertex_colour", "doubleSided": True,
                 "pbrMetallicRoughness": {"baseColorFactor": [1, 1, 1, 1], "metallicFactor": 0.0,
                                          "roughnessFactor": 1.0}})
    for mesh in doc.get("meshes", []):
        for prim in mesh.get("primitives", []):
            prim.setdefault("material", len(mats) - 1)
    body = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    body += b" " * (-len(body) % 4)  # chunks are 4-byte aligned; JSON pads with spaces
    total = 12 + 8 + len(body) + len(rest)
    return struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(body), b"JSON") + body + rest


def write_mesh(tm, path: str | Path) -> int:
    """Write a trimesh mesh as .glb / .ply (binary) / .obj (vertex colours as `v x y z r g b`),
    atomically; returns the file size in bytes. Colours are written as given (GLB wants them linear,
    PLY and OBJ readers expect sRGB bytes: see `to_trimesh`)."""
    path = check_mesh_path(path)
    fmt = path.suffix.lower()[1:]
    if fmt == "glb":
        data = glb_with_vertex_colour_material(tm.export(file_type="glb", include_normals=True))
    else:
        data = tm.export(file_type=fmt)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_write(path) as fh:
        fh.write(data)
    return len(data)


def export_mesh(run, depth_of: Callable[[int], torch.Tensor], path: str | Path, cfg: MeshConfig = MeshConfig(),
                log: Callable[[str], None] = lambda s: None) -> dict:
    """Fuse every frame of `run` (a RunDir) with its depth `depth_of(t)` ([H, W] z-depth, +inf sky)
    into a mesh written to `path` (.glb/.ply/.obj). Returns sizes and seconds per stage."""
    cfg.check()
    path = check_mesh_path(path)
    t0 = time.perf_counter()
    depths = [depth_of(t).numpy() for t in range(len(run))]
    t_depth = time.perf_counter() - t0
    sample = np.concatenate([d[::2, ::2].ravel() for d in depths])
    bands = depth_bands(sample, cfg.band_ratio, cfg.max_depth)
    if not bands:
        raise UserInputError(f"{run.root}: no frame has any finite depth; nothing to mesh")
    fx = float(np.median([c.fx for c in run.cameras]))
    log(f"fusing {len(run)} frames in {len(bands)} depth bands "
        f"({bands[0][0]:.4g} to {bands[-1][1]:.4g}; voxels {cfg.voxel_px * bands[0][0] / fx:.3g} "
        f"to {cfg.voxel_px * bands[-1][0] / fx:.3g})")
    t1 = time.perf_counter()
    tsdf = BandedTSDF(bands, fx, cfg)
    for t in range(len(run)):
        tsdf.integrate(run.cameras[t], run.frame_rgb(t), depths[t])
    raw = tsdf.extract()
    t_fuse = time.perf_counter() - t1
    n_raw = len(raw.triangles)
    if n_raw == 0:
        raise UserInputError(f"{run.root}: fusion produced no surface (frames seen too few times for "
                             f"--tsdf.min-weight {cfg.min_weight}?)")
    t2 = time.perf_counter()
    mesh = clean_mesh(raw, cfg)
    t_clean = time.perf_counter() - t2
    t3 = time.perf_counter()
    size = write_mesh(to_trimesh(mesh, linear=path.suffix.lower() == ".glb"), path)
    t_write = time.perf_counter() - t3
    return {
        "path": str(path), "bytes": size, "frames": len(run), "bands": [[round(a, 3), round(b, 3)] for a, b in bands],
        "voxel_sizes": [round(v, 4) for v in tsdf.voxels], "triangles_fused": n_raw,
        "triangles": len(mesh.triangles), "vertices": len(mesh.vertices),
        "seconds": {"depth": round(t_depth, 2), "fuse": round(t_fuse, 2), "clean": round(t_clean, 2),
                    "write": round(t_write, 2)},
    }
