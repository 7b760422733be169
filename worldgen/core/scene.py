"""The persistent world: a growing set of 3D Gaussians, and its PLY file format.

Storage follows 3D Gaussian Splatting: means, unit quaternions (wxyz), log-scales, opacity logits.
Colours are stored as linear RGB in [0, 1] (degree-0 spherical harmonics only); renderers take the
activated values (`scales()`, `opacities()`), never the raw parameters.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from worldgen.core.device import to_device

SH_C0 = 0.28209479177387814  # the degree-0 spherical harmonic, Y_0^0
_PLY_BASE = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
_PLY_TAIL = ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


class SceneFileError(ValueError):
    """A PLY file that is missing, unreadable or not a 3D Gaussian Splatting layout."""


def _as_index(keep: Tensor | slice) -> Tensor | slice:
    """[M] int64 indices of a [N] bool mask (one read from the device; indexing each of a scene's five
    tensors with the mask itself would read the count back five times); an index tensor or a slice as is."""
    return keep.nonzero().squeeze(1) if isinstance(keep, Tensor) and keep.dtype == torch.bool else keep


@dataclass
class GaussianScene:
    """N Gaussians (all tensors on one device, float32 unless noted).

    Attributes:
        means: [N, 3] centres, world coordinates.
        quats: [N, 4] rotations, wxyz (normalised on use).
        log_scales: [N, 3] natural-log standard deviations along the rotated axes.
        opacity_logits: [N] logit of opacity.
        colors: [N, 3] RGB in [0, 1].
    """

    means: Tensor
    quats: Tensor
    log_scales: Tensor
    opacity_logits: Tensor
    colors: Tensor

    # ------------------------------------------------------------------ construction
    @staticmethod
    def empty(device: torch.device | str = "cpu") -> "GaussianScene":
        z = lambda *s: torch.zeros(*s, dtype=torch.float32, device=device)  # noqa: E731
        return GaussianScene(z(0, 3), z(0, 4), z(0, 3), z(0), z(0, 3))

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        shapes = {
            "means": (n, 3), "quats": (n, 4), "log_scales": (n, 3),
            "opacity_logits": (n,), "colors": (n, 3),
        }
        for name, shape in shapes.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"GaussianScene.{name} must be {shape}, got {got}")

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def device(self) -> torch.device:
        return self.means.device

    def to(self, device: torch.device | str) -> "GaussianScene":
        return GaussianScene(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    # ------------------------------------------------------------------ activated values
    def scales(self) -> Tensor:
        """[N, 3] standard deviations (exp of log-scales)."""
        return self.log_scales.exp()

    def opacities(self) -> Tensor:
        """[N] opacities in (0, 1)."""
        return torch.sigmoid(self.opacity_logits)

    def unit_quats(self) -> Tensor:
        """[N, 4] normalised wxyz quaternions."""
        return self.quats / self.quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    # ------------------------------------------------------------------ editing
    def append(self, other: "GaussianScene") -> None:
        """Add `other`'s Gaussians in place (moved to this scene's device)."""
        for f in fields(self):
            setattr(self, f.name, torch.cat([getattr(self, f.name), getattr(other, f.name).to(self.device)]))

    def subset(self, keep: Tensor) -> "GaussianScene":
        """A new scene with the Gaussians selected by a [N] bool mask, an int64 index tensor or a slice."""
        keep = _as_index(keep)
        return GaussianScene(**{f.name: getattr(self, f.name)[keep] for f in fields(self)})

    def prune(self, keep: Tensor) -> int:
        """Keep only the Gaussians selected by a [N] bool mask (or an increasing int64 index tensor), in place;
        returns how many were removed."""
        before = len(self)
        keep = _as_index(keep)
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name)[keep])
        return before - len(self)

    # ------------------------------------------------------------------ PLY
    def save_ply(self, path: str | os.PathLike) -> None:
        """Write the standard 3D Gaussian Splatting PLY (binary little-endian), atomically.

        Properties: x y z nx ny nz f_dc_0..2 opacity scale_0..2 rot_0..3, float32, where
        f_dc = (rgb - 0.5) / SH_C0, opacity is a logit, scale a natural log, rot wxyz normalised.
        """
        write_ply(path, [self], len(self))

    # ------------------------------------------------------------------ packed rows (paging, checkpoints)
    def pack(self) -> np.ndarray:
        """[N, PACKED_COLUMNS] float32 numpy copy of every parameter, bit for bit: means 3, quats 4
        (as stored, not normalised), log_scales 3, opacity_logits 1, colors 3."""
        cols = [self.means, self.quats, self.log_scales, self.opacity_logits[:, None], self.colors]
        return torch.cat([c.detach().float() for c in cols], 1).cpu().numpy()

    @staticmethod
    def unpack(rows: np.ndarray | Tensor, device: torch.device | str = "cpu") -> "GaussianScene":
        """The scene of `pack`'s rows [N, PACKED_COLUMNS] (exactly the packed values), on `device`."""
        if isinstance(rows, np.ndarray) and not rows.flags.writeable:  # (a chunk store's cached rows)
            rows = rows.copy()
        t = to_device(torch.as_tensor(rows, dtype=torch.float32).reshape(-1, PACKED_COLUMNS), device)
        return GaussianScene(t[:, 0:3].contiguous(), t[:, 3:7].contiguous(), t[:, 7:10].contiguous(),
                             t[:, 10].contiguous(), t[:, 11:14].contiguous())

    @staticmethod
    def load_ply(path: str | os.PathLike, device: torch.device | str = "cpu") -> "GaussianScene":
        """Read a 3D Gaussian Splatting PLY (worldgen's or another tool's; ascii or binary).

        Higher-order SH coefficients (f_rest_*) are ignored: only the view-independent colour is kept. Gaussians
        with a NaN or infinite value are dropped. Raises SceneFileError with a one-line reason for files that are
        not such a PLY, and for one with no usable Gaussian (0 vertices, or none finite): its readers (export,
        view) would write or show nothing. (A flight's world, empty early on, is never read back from a PLY: a
        resume reads the checkpoint.)
        """
        from plyfile import PlyData

        path = Path(path)
        if not path.is_file():
            raise SceneFileError(f"no such PLY file: {path}")
        try:
            ply = PlyData.read(str(path))
            v = ply["vertex"]
        except Exception as e:  # plyfile raises many types for corrupt files
            raise SceneFileError(f"{path} is not a readable PLY file ({type(e).__name__}: {e})") from None
        props = {p.name for p in v.properties}
        missing = [p for p in ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", *_PLY_TAIL] if p not in props]
        if missing:
            raise SceneFileError(f"{path} is a PLY but not a 3D Gaussian Splatting one (missing {', '.join(missing)})")
        col = lambda *names: torch.from_numpy(np.stack([np.asarray(v[n], dtype=np.float32) for n in names], -1))  # noqa: E731
        means = col("x", "y", "z")
        colors = col("f_dc_0", "f_dc_1", "f_dc_2") * SH_C0 + 0.5
        opac = col("opacity")[:, 0]
        log_scales = col("scale_0", "scale_1", "scale_2")
        quats = col("rot_0", "rot_1", "rot_2", "rot_3")
        scene = GaussianScene(means, quats, log_scales, opac, colors)
        if len(scene) == 0:
            raise SceneFileError(f"{path} holds no Gaussians (its PLY has 0 vertices): an empty world")
        if not all(torch.isfinite(t).all() for t in (means, colors, opac, log_scales, quats)):
            finite = torch.isfinite(torch.cat([means, colors, opac[:, None], log_scales, quats], 1)).all(1)
            if not bool(finite.any()):
                raise SceneFileError(f"{path} holds no usable Gaussian: each of its {len(scene):,} has a NaN or "
                                     "infinite value")
            scene.prune(finite)
        return scene.to(device)


PACKED_COLUMNS = 14
"""Columns of `GaussianScene.pack`: means 3, quats 4, log_scales 3, opacity logit 1, colours 3."""

PLY_COLUMNS = len(_PLY_BASE) + len(_PLY_TAIL)
"""float32 properties per Gaussian in `write_ply`'s files (17: position, normal, colour, opacity, scale, rotation)."""


def _ply_rows(scene: GaussianScene) -> np.ndarray:
    """[N, PLY_COLUMNS] little-endian float32 PLY rows of `scene` (normals zero, quaternions normalised)."""
    data = np.zeros((len(scene), PLY_COLUMNS), dtype="<f4")
    data[:, 0:3] = scene.means.detach().cpu().numpy()
    data[:, 6:9] = (scene.colors.detach().cpu().numpy() - 0.5) / SH_C0
    data[:, 9] = scene.opacity_logits.detach().cpu().numpy()
    data[:, 10:13] = scene.log_scales.detach().cpu().numpy()
    data[:, 13:17] = scene.unit_quats().detach().cpu().numpy()
    return data


def write_ply(path: str | os.PathLike, parts: Iterable[GaussianScene], count: int) -> None:
    """Write the Gaussians of `parts` (scenes, one after another; read one at a time, so a world
    bigger than memory can be written part by part) as one 3D Gaussian Splatting PLY, atomically
    (see `GaussianScene.save_ply` for the layout). `count` is their total, which the header states
    first; ValueError (and no file) if the parts hold a different number."""
    from worldgen.core.io import atomic_write

    names = _PLY_BASE + _PLY_TAIL
    header = "ply\nformat binary_little_endian 1.0\ncomment worldgen Gaussian scene\n"
    header += f"element vertex {count}\n" + "".join(f"property float {p}\n" for p in names) + "end_header\n"
    with atomic_write(Path(path)) as f:
        f.write(header.encode("ascii"))
        written = 0
        for part in parts:
            f.write(np.ascontiguousarray(_ply_rows(part)).tobytes())
            written += len(part)
        if written != count:
            raise ValueError(f"write_ply: the parts hold {written} Gaussians, the header says {count}")


def inverse_sigmoid(x: Tensor | float) -> Tensor:
    """logit(x), for opacities in (0, 1)."""
    x = torch.as_tensor(x, dtype=torch.float32).clamp(1e-6, 1 - 1e-6)
    return torch.log(x / (1 - x))
