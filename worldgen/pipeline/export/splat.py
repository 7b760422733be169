"""Gaussian worlds for web viewers: antimatter15's `.splat` and SuperSplat's compressed PLY.

`.splat` (antimatter15/splat; read by most web splat viewers): 32 bytes per Gaussian, little-endian,
no header: position float32 x3, scale float32 x3 (activated: exp of the log-scales), colour uint8 x4
(RGB = the degree-0 colour * 255, A = opacity * 255), rotation uint8 x4 (the normalised wxyz
quaternion q stored as q * 128 + 128). Gaussians are sorted by decreasing size * opacity (the
format's convention: viewers that stream it draw the big, opaque ones first).

Compressed PLY (PlayCanvas / SuperSplat; `*.compressed.ply`): Gaussians sorted along a Morton curve
and cut into chunks of 256; per chunk an element `chunk` with 18 floats (min/max of x y z, of the
log-scales, and of r g b), per Gaussian an element `vertex` with 4 uint32:
    packed_position   x, y, z in 11, 10, 11 bits, each normalised to its chunk's [min, max];
    packed_rotation   2 bits: which of (w, x, y, z) is largest in magnitude (made positive, dropped);
                      3 x 10 bits: the other three in order, each v * sqrt(2)/2 + 0.5;
    packed_scale      log-scales as positions (11, 10, 11 bits, chunk-normalised);
    packed_color      r, g, b (chunk-normalised) and opacity, 8 bits each, r in the top byte.
16 bytes per Gaussian plus 72 per 256: about a quarter of the 68-byte plain PLY row. Only degree-0
colour is stored (worldgen has no higher spherical harmonics).

Both writers are atomic; both readers exist for the tests and for round trips.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from worldgen.core.io import UserInputError, atomic_write
from worldgen.core.scene import GaussianScene, inverse_sigmoid

SPLAT_ROW = 32
CHUNK = 256
_CHUNK_PROPS = ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
                "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
                "min_r", "min_g", "min_b", "max_r", "max_g", "max_b"]
_VERTEX_PROPS = ["packed_position", "packed_rotation", "packed_scale", "packed_color"]


def _arrays(scene: GaussianScene) -> tuple[np.ndarray, ...]:
    """float32 numpy (means [N, 3], log-scales [N, 3], unit wxyz quats [N, 4], colours [N, 3] clamped
    to [0, 1], opacities [N] in [0, 1]) of the scene's finite Gaussians."""
    with torch.no_grad():
        parts = [scene.means, scene.log_scales, scene.unit_quats(), scene.colors.clamp(0, 1),
                 scene.opacities()[:, None]]
        a = torch.cat([p.detach().float().cpu() for p in parts], 1).numpy()
    a = a[np.isfinite(a).all(1)]
    return a[:, 0:3], a[:, 3:6], a[:, 6:10], a[:, 10:13], a[:, 13]


def check_splat_path(path: str | Path) -> Path:
    p = Path(path)
    if not (p.name.lower().endswith(".splat") or p.name.lower().endswith(".compressed.ply")):
        raise UserInputError(f"--splat {p}: use a .splat file (antimatter15) or a .compressed.ply (SuperSplat)")
    return p


# --------------------------------------------------------------------------------------------- .splat
def encode_splat(scene: GaussianScene) -> bytes:
    """The `.splat` bytes of `scene` (32 per finite Gaussian; see the module docstring)."""
    means, log_s, q, rgb, op = _arrays(scene)
    order = np.argsort(-np.exp(log_s.astype(np.float64).sum(1)) * op, kind="stable")
    rows = np.zeros(len(order), dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    rows["pos"] = means[order]
    rows["scale"] = np.exp(log_s[order])
    rows["rgba"] = np.clip(np.round(np.concatenate([rgb, op[:, None]], 1)[order] * 255.0), 0, 255)
    rows["rot"] = np.clip(np.round(q[order] * 128.0 + 128.0), 0, 255)
    return rows.tobytes()


def decode_splat(data: bytes) -> GaussianScene:
    """A GaussianScene of `.splat` bytes (UserInputError if the length is not a multiple of 32)."""
    if len(data) % SPLAT_ROW:
        raise UserInputError(f"a .splat file holds 32 bytes per Gaussian; {len(data)} bytes is not a multiple of 32")
    rows = np.frombuffer(data, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    n = len(rows)
    q = (rows["rot"].astype(np.float32) - 128.0) / 128.0
    rgba = rows["rgba"].astype(np.float32) / 255.0
    return GaussianScene(
        means=torch.from_numpy(rows["pos"].copy()), quats=torch.from_numpy(q),
        log_scales=torch.from_numpy(np.log(np.maximum(rows["scale"], 1e-30))),
        opacity_logits=inverse_sigmoid(torch.from_numpy(rgba[:, 3].copy())),
        colors=torch.from_numpy(rgba[:, :3].copy()))


# ------------------------------------------------------------------------------------ compressed PLY
def _unorm(x: np.ndarray, bits: int) -> np.ndarray:
    t = (1 << bits) - 1
    return np.round(np.clip(x, 0.0, 1.0) * t).astype(np.uint32)


def _chunk_normalise(v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """v [N, k] into [0, 1] per row's chunk bounds lo, hi [N, k] (0 where the chunk has no extent)."""
    span = hi - lo
    return np.where(span > 0, (v - lo) / np.where(span > 0, span, 1.0), 0.0)


def _morton_order(means: np.ndarray) -> np.ndarray:
    """Indices sorting points [N, 3] along a 3D Morton (Z-order) curve over their bounding box, 10 bits per axis."""
    lo, hi = means.min(0), means.max(0)
    g = np.floor(_chunk_normalise(means, lo, hi) * 1023.0).astype(np.uint64)
    code = np.zeros(len(means), np.uint64)
    for b in range(10):
        for axis in range(3):
            code |= ((g[:, axis] >> np.uint64(b)) & np.uint64(1)) << np.uint64(3 * b + (2 - axis))
    return np.argsort(code, kind="stable")


def _pack_rotation(q: np.ndarray) -> np.ndarray:
    """[N] uint32 smallest-three packing of unit wxyz quaternions [N, 4] (see the module docstring)."""
    largest = np.abs(q).argmax(1)
    q = q * np.where(q[np.arange(len(q)), largest] < 0, -1.0, 1.0)[:, None]
    keep = np.array([[j for j in range(4) if j != i] for i in range(4)])[largest]  # [N, 3] the other three, in order
    rest = np.take_along_axis(q, keep, 1) * (math.sqrt(2.0) * 0.5) + 0.5
    r = _unorm(rest, 10)
    return (largest.astype(np.uint32) << 30) | (r[:, 0] << 20) | (r[:, 1] << 10) | r[:, 2]


def _pack_111011(v: np.ndarray) -> np.ndarray:
    return (_unorm(v[:, 0], 11) << 21) | (_unorm(v[:, 1], 10) << 11) | _unorm(v[:, 2], 11)


def encode_compressed_ply(scene: GaussianScene) -> bytes:
    """SuperSplat's compressed PLY of `scene` (see the module docstring)."""
    means, log_s, q, rgb, op = _arrays(scene)
    n = len(means)
    if n:
        order = _morton_order(means)
        means, log_s, q, rgb, op = means[order], log_s[order], q[order], rgb[order], op[order]
    log_s = np.clip(log_s, -20.0, 20.0)
    n_chunks = -(-n // CHUNK)
    chunk_of = np.arange(n) // CHUNK
    chunks = np.zeros((n_chunks, 18), np.float32)
    vals = {"pos": (means, 0), "scale": (log_s, 6), "rgb": (rgb, 12)}
    for v, c0 in vals.values():
        padded = np.full((n_chunks * CHUNK, 3), np.nan, np.float32)
        padded[:n] = v
        blocks = padded.reshape(n_chunks, CHUNK, 3)
        chunks[:, c0:c0 + 3] = np.nanmin(blocks, 1)
        chunks[:, c0 + 3:c0 + 6] = np.nanmax(blocks, 1)
    norm = {k: _chunk_normalise(v, chunks[chunk_of, c0:c0 + 3], chunks[chunk_of, c0 + 3:c0 + 6])
            for k, (v, c0) in vals.items()}
    col = norm["rgb"]
    packed_color = ((_unorm(col[:, 0], 8) << 24) | (_unorm(col[:, 1], 8) << 16) | (_unorm(col[:, 2], 8) << 8)
                    | _unorm(op, 8))
    vertex = np.stack([_pack_111011(norm["pos"]), _pack_rotation(q), _pack_111011(norm["scale"]), packed_color], 1)
    header = "ply\nformat binary_little_endian 1.0\ncomment worldgen compressed Gaussians (SuperSplat layout)\n"
    header += f"element chunk {n_chunks}\n" + "".join(f"property float {p}\n" for p in _CHUNK_PROPS)
    header += f"element vertex {n}\n" + "".join(f"property uint {p}\n" for p in _VERTEX_PROPS) + "end_header\n"
    return header.encode("ascii") + chunks.astype("<f4").tobytes() + vertex.astype("<u4").tobytes()


def decode_compressed_ply(data: bytes) -> GaussianScene:
    """A GaussianScene of SuperSplat compressed-PLY bytes (only the layout `encode_compressed_ply` writes:
    18 chunk floats, 4 uint32 per Gaussian, no SH element); UserInputError otherwise."""
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise UserInputError("not a PLY file")
    lines = [ln for ln in data[:end].decode("ascii", "replace").splitlines() if not ln.startswith("comment")]
    counts = {ln.split()[1]: int(ln.split()[2]) for ln in lines if ln.startswith("element ")}
    props = [ln.split()[2] for ln in lines if ln.startswith("property ")]
    if "format binary_little_endian 1.0" not in lines or props != _CHUNK_PROPS + _VERTEX_PROPS:
        raise UserInputError("not a compressed PLY in the SuperSplat layout this reader knows")
    nc, n = counts.get("chunk", 0), counts.get("vertex", 0)
    off = end + len(b"end_header\n")
    chunks = np.frombuffer(data, "<f4", nc * 18, off).reshape(nc, 18)
    v = np.frombuffer(data, "<u4", n * 4, off + nc * 72).reshape(n, 4)
    c = chunks[np.arange(n) // CHUNK]

    def unorm(x, bits):
        return (x & ((1 << bits) - 1)).astype(np.float32) / ((1 << bits) - 1)

    def unpack_111011(x, lo, hi):
        t = np.stack([unorm(x >> 21, 11), unorm(x >> 11, 10), unorm(x, 11)], 1)
        return lo * (1 - t) + hi * t

    means = unpack_111011(v[:, 0], c[:, 0:3], c[:, 3:6])
    log_s = unpack_111011(v[:, 2], c[:, 6:9], c[:, 9:12])
    t = np.stack([unorm(v[:, 3] >> 24, 8), unorm(v[:, 3] >> 16, 8), unorm(v[:, 3] >> 8, 8)], 1)
    rgb = c[:, 12:15] * (1 - t) + c[:, 15:18] * t
    op = unorm(v[:, 3], 8)
    r = v[:, 1]
    abc = (np.stack([unorm(r >> 20, 10), unorm(r >> 10, 10), unorm(r, 10)], 1) - 0.5) / (math.sqrt(2.0) * 0.5)
    m = np.sqrt(np.clip(1.0 - (abc ** 2).sum(1), 0.0, None))
    largest = (r >> 30).astype(np.int64)
    q = np.zeros((n, 4), np.float32)
    q[np.arange(n), largest] = m
    keep = np.array([[j for j in range(4) if j != i] for i in range(4)])[largest]
    np.put_along_axis(q, keep, abc.astype(np.float32), 1)
    return GaussianScene(
        means=torch.from_numpy(means.astype(np.float32)), quats=torch.from_numpy(q),
        log_scales=torch.from_numpy(log_s.astype(np.float32)),
        opacity_logits=inverse_sigmoid(torch.from_numpy(op)), colors=torch.from_numpy(rgb.astype(np.float32)),
    )


def export_splat(scene: GaussianScene, path: str | Path) -> dict:
    """Write `scene` as .splat or .compressed.ply (SuperSplat compressed PLY), atomically.
    Returns {"path", "format", "gaussians", "bytes"}."""
    path = check_splat_path(path)
    is_splat = path.name.lower().endswith(".splat")
    data = encode_splat(scene) if is_splat else encode_compressed_ply(scene)
    with atomic_write(path) as f:
        f.write(data)
    return {"path": str(path), "format": "splat" if is_splat else "compressed-ply", "gaussians": len(scene),
            "bytes": len(data)}
