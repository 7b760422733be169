"""The ACID / RealEstate10K sequence layout: writer, reader and the one training loader.

Layout of a data root (what `worldgen synth` writes; real ACID data needs only the .txt files
and frames extracted into folders named after them):

    ROOT/<seq>.txt                     camera file (below)
    ROOT/<seq>/<timestamp>.png         frame, 8-bit sRGB
    ROOT/<seq>/<timestamp>_depth.npy   float32 [H, W] z-depth in metres, +inf for sky (optional)
    ROOT/<seq>/<timestamp>_sky.png     sky mask, 8-bit, 255 = sky (optional)
    ROOT/<seq>/meta.json               synthetic only: seed, climate, flight parameters (optional)

Camera file (RealEstate10K / ACID): first line the source URL, then one line per frame:

    timestamp_us fx/W fy/H cx/W cy/H 0 0 r11 r12 r13 t1 r21 r22 r23 t2 r31 r32 r33 t3

i.e. intrinsics normalised by the image size, two zeros (distortion), then the 3x4
world-to-camera matrix row-major, in OpenCV camera axes -- the same axes as worldgen, so the
pose is simply c2w = inverse([R | t]). Numbers are written as the shortest decimal that reads
back to the same float64, so poses survive the round trip exactly.

Depth files: any .npy or .npz (array "depth", or its only array) whose name contains "depth" and
starts with the frame's timestamp; sky masks: a file starting with the timestamp containing
"sky". Real ACID has neither: the loader then gives depth NaN and sky False, with has_depth False.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from worldgen.core.camera import Camera
from worldgen.core.frame import Frame
from worldgen.core.images import to_uint8
from worldgen.core.io import UserInputError, atomic_write, atomic_write_text


@dataclass
class CameraFile:
    """Contents of one ACID / RealEstate10K camera file (T frames).

    Attributes:
        url: first line (source video URL; "synth://..." for synthetic sequences).
        timestamps: [T] int64 microseconds.
        intrinsics: [T, 4] float64 (fx/W, fy/H, cx/W, cy/H).
        w2c: [T, 3, 4] float64 world-to-camera, OpenCV axes.
    """

    url: str
    timestamps: Tensor
    intrinsics: Tensor
    w2c: Tensor

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    def c2w(self) -> Tensor:
        """[T, 4, 4] float64 camera-to-world poses."""
        T = len(self)
        m = torch.zeros(T, 4, 4, dtype=torch.float64)
        m[:, :3] = self.w2c
        m[:, 3, 3] = 1.0
        return torch.linalg.inv(m)

    def K(self, width: int, height: int) -> Tensor:
        """[T, 3, 3] float32 pixel intrinsics for images of width x height."""
        T = len(self)
        K = torch.zeros(T, 3, 3, dtype=torch.float32)
        K[:, 0, 0] = (self.intrinsics[:, 0] * width).float()
        K[:, 1, 1] = (self.intrinsics[:, 1] * height).float()
        K[:, 0, 2] = (self.intrinsics[:, 2] * width).float()
        K[:, 1, 2] = (self.intrinsics[:, 3] * height).float()
        K[:, 2, 2] = 1.0
        return K


def format_camera_file(url: str, timestamps: Tensor, K: Tensor, c2w: Tensor, width: int, height: int) -> str:
    """Text of a camera file for T frames: timestamps [T] (us), K [T, 3, 3] or [3, 3] pixels, c2w [T, 4, 4]."""
    T = c2w.shape[0]
    if K.dim() == 2:
        K = K[None].expand(T, 3, 3)
    w2c = torch.linalg.inv(c2w.double().cpu())[:, :3, :4]  # exact inverse: c2w need not be orthonormal to 1e-16
    K = K.double().cpu()
    lines = [url]
    for i in range(T):
        intr = [K[i, 0, 0] / width, K[i, 1, 1] / height, K[i, 0, 2] / width, K[i, 1, 2] / height]
        nums = [repr(float(v)) for v in intr] + ["0", "0"] + [repr(float(v)) for v in w2c[i].reshape(-1)]
        lines.append(f"{int(timestamps[i])} " + " ".join(nums))
    return "\n".join(lines) + "\n"


def read_camera_file(path: str | Path) -> CameraFile:
    """Parse an ACID / RealEstate10K camera file (URL line optional). Raises UserInputError if malformed."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise UserInputError(f"cannot read camera file {path}: {e.strerror or e}") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    url = ""
    if lines and len(lines[0].split()) == 1:
        url = lines.pop(0)
    ts, intr, mats = [], [], []
    for n, ln in enumerate(lines):
        parts = ln.split()
        if len(parts) != 19:
            raise UserInputError(f"{path}: line {n + 2} has {len(parts)} numbers, an ACID camera line has 19")
        try:
            ts.append(int(float(parts[0])))
            vals = [float(v) for v in parts[1:]]
        except ValueError:
            raise UserInputError(f"{path}: line {n + 2} is not numeric") from None
        intr.append(vals[:4])
        mats.append(vals[6:])
    if not ts:
        raise UserInputError(f"{path}: no camera lines")
    return CameraFile(
        url=url,
        timestamps=torch.tensor(ts, dtype=torch.int64),
        intrinsics=torch.tensor(intr, dtype=torch.float64),
        w2c=torch.tensor(mats, dtype=torch.float64).reshape(-1, 3, 4),
    )


def frame_timestamps(n: int, fps: float = 30.0) -> Tensor:
    """[n] int64 microsecond timestamps of frames at `fps`."""
    return torch.round(torch.arange(n, dtype=torch.float64) * (1e6 / fps)).to(torch.int64)


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def write_frame_files(seq_dir: Path, timestamp: int, rgb: Tensor, depth: Tensor | None, sky: Tensor | None) -> None:
    """Write one frame: rgb [H, W, 3] in [0, 1]; depth [H, W] float32 (inf = sky); sky [H, W] bool."""
    img = to_uint8(rgb)
    with atomic_write(seq_dir / f"{timestamp}.png") as f:
        f.write(_png_bytes(img))
    if depth is not None:
        buf = io.BytesIO()
        np.save(buf, depth.detach().cpu().numpy().astype(np.float32))
        with atomic_write(seq_dir / f"{timestamp}_depth.npy") as f:
            f.write(buf.getvalue())
    if sky is not None:
        with atomic_write(seq_dir / f"{timestamp}_sky.png") as f:
            f.write(_png_bytes(sky.detach().cpu().numpy().astype(np.uint8) * 255))


def write_sequence(
    root: str | Path,
    name: str,
    rgb: Tensor,
    depth: Tensor | None,
    sky: Tensor | None,
    c2w: Tensor,
    K: Tensor,
    *,
    url: str = "",
    timestamps: Tensor | None = None,
    meta: dict | None = None,
) -> Path:
    """Write a whole sequence in the ACID layout under `root`; returns the camera-file path.

    Args:
        rgb: [T, H, W, 3] float in [0, 1]. depth: [T, H, W] float32 z-depth, inf = sky, or None.
        sky: [T, H, W] bool or None. c2w: [T, 4, 4] camera-to-world (OpenCV). K: [T, 3, 3] or [3, 3] pixels.
        timestamps: [T] int64 microseconds (default 30 fps from 0). meta: extra JSON for meta.json.
    """
    root = Path(root)
    T, H, W = rgb.shape[:3]
    ts = frame_timestamps(T) if timestamps is None else timestamps
    for i in range(T):
        write_frame_files(root / name, int(ts[i]), rgb[i], None if depth is None else depth[i], None if sky is None else sky[i])
    if meta is not None:
        atomic_write_text(root / name / "meta.json", json.dumps(meta, indent=1) + "\n")
    txt = root / f"{name}.txt"
    atomic_write_text(txt, format_camera_file(url or f"synth://worldgen/{name}", ts, K, c2w, W, H))
    return txt


# ---------------------------------------------------------------------------------------------
# reading


@dataclass
class Sequence:
    """One sequence of a data root: its camera file and where its frames are.

    Attributes:
        name: sequence id (camera-file stem).
        cameras: the parsed camera file.
        frame_dir: folder holding the frames.
    """

    name: str
    cameras: CameraFile
    frame_dir: Path

    def image_path(self, i: int) -> Path:
        ts = int(self.cameras.timestamps[i])
        for ext in (".png", ".jpg", ".jpeg"):
            p = self.frame_dir / f"{ts}{ext}"
            if p.exists():
                return p
        raise UserInputError(f"sequence {self.name}: no image for timestamp {ts} in {self.frame_dir}")

    def _aux(self, i: int, key: str, exts: tuple[str, ...]) -> Path | None:
        ts = str(int(self.cameras.timestamps[i]))
        for p in sorted(self.frame_dir.glob(f"{ts}*")):
            if key in p.name and p.suffix in exts:
                return p
        return None

    def frame(self, i: int, size: tuple[int, int] | None = None) -> tuple[Frame, bool]:
        """Frame i (optionally resized to size = (W, H)); returns (Frame, has_depth).

        Depth is float32 z-depth (inf = sky), NaN where unknown (no depth file); resizing uses
        nearest neighbour for depth and sky so no depth is invented across edges.
        """
        img = Image.open(self.image_path(i)).convert("RGB")
        W0, H0 = img.size
        W, H = size or (W0, H0)
        if (W, H) != (W0, H0):
            img = img.resize((W, H), Image.BICUBIC)
        rgb = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
        dp = self._aux(i, "depth", (".npy", ".npz"))
        has_depth = dp is not None
        if has_depth:
            arr = np.load(dp)
            if isinstance(arr, np.lib.npyio.NpzFile):
                arr = arr["depth"] if "depth" in arr.files else arr[arr.files[0]]
            depth = torch.from_numpy(np.asarray(arr, dtype=np.float32))
            if tuple(depth.shape) != (H, W):
                depth = _nearest(depth, H, W)
        else:
            depth = torch.full((H, W), math.nan)
        sp = self._aux(i, "sky", (".png",))
        if sp is not None:
            sky = torch.from_numpy(np.asarray(Image.open(sp).convert("L")) > 127)
            if tuple(sky.shape) != (H, W):
                sky = _nearest(sky.float(), H, W) > 0.5
        else:
            sky = torch.isinf(depth) if has_depth else torch.zeros(H, W, dtype=torch.bool)
        K = self.cameras.K(W, H)[i]
        cam = Camera(K=K, c2w=self.cameras.c2w()[i].float(), width=W, height=H)
        return Frame(rgb=rgb, depth=depth, sky=sky, camera=cam), has_depth


def _nearest(x: Tensor, H: int, W: int) -> Tensor:
    h0, w0 = x.shape
    rows = ((torch.arange(H) + 0.5) * h0 / H).long().clamp_max(h0 - 1)
    cols = ((torch.arange(W) + 0.5) * w0 / W).long().clamp_max(w0 - 1)
    return x[rows][:, cols]


def read_sequence(camera_file: str | Path, frame_dir: str | Path | None = None) -> Sequence:
    """A sequence from its camera file; frames in `frame_dir` (default: folder beside it named like it)."""
    camera_file = Path(camera_file)
    fd = Path(frame_dir) if frame_dir is not None else camera_file.with_suffix("")
    return Sequence(name=camera_file.stem, cameras=read_camera_file(camera_file), frame_dir=fd)


def list_sequences(root: str | Path, frames_root: str | Path | None = None) -> list[Sequence]:
    """All sequences under `root` (camera files ROOT/*.txt, sorted), frames in FRAMES_ROOT/<seq>/ or ROOT/<seq>/."""
    root = Path(root)
    if not root.is_dir():
        raise UserInputError(f"data root {root} is not a folder")
    seqs = []
    for txt in sorted(root.glob("*.txt")):
        fd = Path(frames_root) / txt.stem if frames_root is not None else root / txt.stem
        if fd.is_dir():
            seqs.append(read_sequence(txt, fd))
    return seqs


class AcidClips(torch.utils.data.Dataset):
    """Training loader: clips of `clip_len` frames (every `stride`-th) from ACID-layout sequences.

    Works on synthetic data (depth and sky present) and on real ACID / RealEstate10K data
    (camera files plus extracted frames; depth NaN, has_depth False).

    Item (a dict):
        rgb: [T, H, W, 3] float32 in [0, 1]
        depth: [T, H, W] float32 z-depth (inf = sky, NaN = unknown)
        sky: [T, H, W] bool
        K: [T, 3, 3] float32 pixel intrinsics at (W, H)
        c2w: [T, 4, 4] float32 camera-to-world (OpenCV axes)
        has_depth: bool
        name: sequence id, start: first frame index
    """

    def __init__(
        self,
        root: str | Path,
        clip_len: int = 2,
        stride: int = 1,
        size: tuple[int, int] | None = None,
        frames_root: str | Path | None = None,
    ):
        self.seqs = list_sequences(root, frames_root)
        self.clip_len, self.stride, self.size = clip_len, stride, size
        span = (clip_len - 1) * stride + 1
        self.index = [(s, i) for s, seq in enumerate(self.seqs) for i in range(len(seq.cameras) - span + 1)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> dict:
        s, start = self.index[k]
        seq = self.seqs[s]
        frames, flags = zip(*(seq.frame(start + j * self.stride, self.size) for j in range(self.clip_len)))
        return {
            "rgb": torch.stack([f.rgb for f in frames]),
            "depth": torch.stack([f.depth for f in frames]),
            "sky": torch.stack([f.sky for f in frames]),
            "K": torch.stack([f.camera.K for f in frames]),
            "c2w": torch.stack([f.camera.c2w for f in frames]),
            "has_depth": all(flags),
            "name": seq.name,
            "start": start,
        }
