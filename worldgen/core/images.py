"""Image and depth-file input/output at the edges of worldgen (conversions happen here, once).

In code, images are float32 [H, W, 3] in [0, 1]; depth is float32 [H, W] z-depth with +inf sky.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from worldgen.core.io import UserInputError, atomic_write


def parse_size(text: str, min_side: int = 16) -> tuple[int, int]:
    """'WxH' (also 'W X H', 'W×H', spaces allowed) -> (W, H); UserInputError for anything else or for
    sides outside min_side..8192 pixels."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(text))
    if not m:
        raise UserInputError(f"--size must look like WxH (e.g. 256x256), got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if not (min_side <= w <= 8192 and min_side <= h <= 8192):
        raise UserInputError(f"--size {w}x{h} is out of range: width and height must be {min_side}..8192 pixels")
    return w, h


def too_large_image_line(path: str | os.PathLike, error: Exception) -> str:
    """One line for an image PIL refuses to open as a possible decompression bomb (`PIL.Image.DecompressionBombError`:
    more than 2 x `Image.MAX_IMAGE_PIXELS` pixels): its pixel count and PIL's limit, read from `error`'s message."""
    m = re.search(r"\((\d+) pixels\).*?(\d+) pixels", str(error))
    if m is None:
        return f"{path} is too large to read ({' '.join(str(error).split())})"
    return (f"{path} is too large to read: {int(m.group(1)):,} pixels, more than PIL's limit of {int(m.group(2)):,} "
            "(a possible decompression bomb); resize it first")


def load_image(path: str | os.PathLike) -> Tensor:
    """Read an image file as float32 RGB [H, W, 3] in [0, 1].

    EXIF orientation is applied; an alpha channel is dropped (photos are opaque); grayscale and
    palette images become RGB; 16-bit images are scaled from [0, 65535]; 32-bit float grey images are read as 0..1.
    UserInputError (one line) for a missing, unreadable, damaged, too small (< 8x8) or too large (PIL's
    decompression-bomb limit) image, or a float one with values outside 0..1.
    """
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"no such image file: {path}")
    if not path.is_file():
        raise UserInputError(f"{path} is not a file")
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32) / 65535.0
                arr = np.repeat(arr[..., None], 3, axis=-1)
            elif im.mode == "F":  # 32-bit float grey (a TIFF): taken as 0..1 (PIL's convert would clip it to black)
                arr = np.asarray(im, dtype=np.float32)
                top = float(np.nanmax(arr)) if arr.size else 0.0
                if not np.isfinite(arr).all() or not 0.0 <= top <= 1.0:
                    raise UserInputError(f"{path} is a floating-point image with values up to {top:g} (or NaN): "
                                         "worldgen reads float images as 0..1; save it as 8 or 16 bit")
                arr = np.repeat(arr[..., None], 3, axis=-1)
            else:
                arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except UnidentifiedImageError:
        raise UserInputError(f"{path} is not an image file (could not identify its format)") from None
    except Image.DecompressionBombError as e:
        raise UserInputError(too_large_image_line(path, e)) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UserInputError(f"{path} is a damaged or truncated image ({e})") from None
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise UserInputError(f"{path} is too small ({arr.shape[1]}x{arr.shape[0]}); need at least 8x8")
    return torch.from_numpy(np.ascontiguousarray(arr.clip(0.0, 1.0)))


def save_png_u8(path: str | os.PathLike, img: np.ndarray, *, colors: int | None = None, optimize: bool = False) -> None:
    """Write a uint8 image [H, W, 3] as PNG, atomically.

    Fast zlib level 1 by default; `optimize` for the smallest file; `colors` reduces the image to a
    palette of that many colours first (about a third of the bytes, for pictures in reports).
    """
    im = Image.fromarray(img)
    if colors:
        im = im.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    with atomic_write(path) as f:
        if optimize:
            im.save(f, format="PNG", optimize=True)
        else:
            im.save(f, format="PNG", compress_level=1)


FIGURE_JPEG_QUALITY = 88
"""JPEG quality of the figures `save_figure_u8` writes (photos and colour maps: a quarter to a third of the PNG's bytes;
the repository's figures travel with every GPU call, whose limit is 64 MiB)."""


def save_figure_u8(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write a uint8 figure [H, W, 3] atomically in the format its suffix names: .jpg / .jpeg as JPEG
    (quality FIGURE_JPEG_QUALITY), .png as the smallest PNG. ValueError for another suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        save_png_u8(path, img, optimize=True)
        return
    if suffix not in (".jpg", ".jpeg"):
        raise ValueError(f"{path}: a figure is .png, .jpg or .jpeg")
    with atomic_write(path) as f:
        Image.fromarray(img).save(f, format="JPEG", quality=FIGURE_JPEG_QUALITY)


def to_uint8(rgb: Tensor | np.ndarray) -> np.ndarray:
    """[H, W, 3] float in [0, 1] (a tensor on any device, or numpy) -> [H, W, 3] uint8 numpy, rounded
    half up (a tensor is converted on its device, then copied). uint8 input is returned as is."""
    if isinstance(rgb, np.ndarray):
        if rgb.dtype == np.uint8:
            return rgb
        return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return (rgb.detach().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()


def thumbnail(img: Tensor | np.ndarray, max_side: int = 64) -> np.ndarray:
    """uint8 [h, w, 3] copy of an image [H, W, 3] (uint8, or float in [0, 1]) whose longer side is at
    most `max_side` (Lanczos; smaller images are returned unscaled)."""
    img = to_uint8(img)
    H, W = img.shape[:2]
    s = max(H, W) / max_side
    if s <= 1.0:
        return np.ascontiguousarray(img)
    w, h = max(1, round(W / s)), max(1, round(H / s))
    return np.asarray(Image.fromarray(img).resize((w, h), Image.LANCZOS))


def side_by_side(images: list[np.ndarray], *, labels: list[str] | None = None, gap: int = 4,
                 scale: int = 1) -> np.ndarray:
    """uint8 [s*H (+18 with labels), s*(n W + (n - 1) gap), 3]: images [H, W, 3] (uint8 or float in
    [0, 1], all one size) left to right on white gaps, enlarged by the integer `scale` (nearest
    neighbour); with `labels`, a dark bar above each image names it."""
    row = []
    for i, img in enumerate(images):
        if i:
            row.append(np.full((img.shape[0], gap, 3), 255, np.uint8))
        row.append(to_uint8(img))
    out = np.concatenate(row, axis=1)
    if scale > 1:
        out = out.repeat(scale, axis=0).repeat(scale, axis=1)
    if labels:
        from PIL import ImageDraw, ImageFont

        bar = Image.new("RGB", (out.shape[1], 18), (255, 255, 255))
        d = ImageDraw.Draw(bar)
        font = ImageFont.load_default(size=12)
        w = images[0].shape[1] * scale
        for i, text in enumerate(labels):
            x0 = i * (w + gap * scale)
            d.rectangle([x0, 0, x0 + w - 1, 17], fill=(20, 20, 20))
            d.text((x0 + 4, 2), text, fill="white", font=font)
        out = np.concatenate([np.asarray(bar), out], axis=0)
    return np.ascontiguousarray(out)


def write_video(path: str | os.PathLike, frames_u8, fps: int) -> None:
    """H.264 MP4 of uint8 frames [H, W, 3] (any iterable, consumed one frame at a time; an odd side loses its last
    row or column, see `VideoWriter`), written atomically; UserInputError without imageio-ffmpeg (imageio would
    silently pick another writer)."""
    with VideoWriter(path, fps) as w:
        for f in frames_u8:
            w.append(f)


class VideoWriter:
    """H.264 MP4 written as frames come (nothing but the encoder's own buffers is kept), atomically: the
    stream goes to a hidden temp file beside `path` (`.STEM.tmpPID.mp4`) that `close()` renames to
    `path`, once it is whole (its index, which ffmpeg writes last, is there); `abort()` (or leaving a `with`
    block by an exception) deletes it.

    H.264 in yuv420p (the pixel format every player takes) needs even sides: a frame with an odd height or width loses
    its last row or column in the video (the frames' PNGs keep it). imageio would instead resize such a frame up by a
    pixel, blurring every one of them.

    An encoder that stops (a full disk) is one OSError line from `append` or `close`: ffmpeg's own messages are
    off (each would be a line of its own on stderr), so a full disk is told by the disk (`_stopped`).

    Args:
        path: the .mp4 to write.
        fps: frames per second.
    Raises UserInputError without imageio-ffmpeg (imageio would silently pick another writer).
    """

    def __init__(self, path: str | os.PathLike, fps: int):
        import imageio.v2 as imageio

        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise UserInputError("writing video.mp4 needs the imageio-ffmpeg package; install it or pass --no-video") from None
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp{os.getpid()}.mp4")
        self.frames = 0
        # ffmpeg runs in its own process group (imageio-ffmpeg), so Ctrl+C does not kill it mid-file.
        self._w = imageio.get_writer(self.tmp, fps=fps, codec="libx264", quality=8, macro_block_size=2,
                                     pixelformat="yuv420p", ffmpeg_log_level="quiet")

    def append(self, frame_u8: np.ndarray) -> None:
        """Encode one uint8 frame [H, W, 3] (every frame the same size; an odd side loses its last row or column)."""
        h, w = frame_u8.shape[:2]
        try:
            self._w.append_data(np.ascontiguousarray(frame_u8[: h - h % 2, : w - w % 2]))
        except OSError:  # imageio's "[Errno 32] Broken pipe", then ffmpeg's command line, over several lines
            raise self._stopped() from None
        self.frames += 1

    def close(self) -> None:
        """Finish the file and move it to `path` (OSError, `path` left as it was, if the stream is not whole)."""
        if self._w is None:
            return
        w, self._w = self._w, None
        try:
            try:
                w.close()
            except OSError:
                raise self._stopped() from None
            if not mp4_complete(self.tmp):  # an ffmpeg that could not write its index (a full disk) ends quietly
                raise self._stopped()
            os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)

    def _stopped(self) -> OSError:
        """The one-line error of an encoder that stopped: ENOSPC when the temp file's disk has less than 64 MiB
        free (ffmpeg then stopped for want of space: it writes in blocks of up to a few MiB), else EPIPE."""
        try:
            full = shutil.disk_usage(self.tmp.parent).free < 64 * 2**20
        except OSError:
            full = False
        if full:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.tmp))
        return OSError(errno.EPIPE, f"the video encoder (ffmpeg) stopped writing {self.tmp}")

    def abort(self) -> None:
        """Stop encoding and delete the temp file (`path` is left as it was)."""
        if self._w is not None:
            w, self._w = self._w, None
            try:
                w.close()
            except Exception:  # noqa: BLE001  (the stream is being thrown away)
                pass
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def mp4_complete(path: str | os.PathLike) -> bool:
    """Whether MP4 file `path` is whole: its top-level boxes (4-byte big-endian size, 4-byte type; size 1: a 64-bit
    size follows, 0: to the end of the file) tile the file exactly and one of them is the index, `moov`. ffmpeg
    writes the index last (without faststart), so a stream it could not finish lacks it or ends short. Reads
    only the box headers."""
    path = Path(path)
    size, pos, kinds = path.stat().st_size, 0, set()
    with open(path, "rb") as f:
        while pos < size:
            f.seek(pos)
            head = f.read(16)
            if len(head) < 8:
                return False
            n, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if n == 1:
                n = int.from_bytes(head[8:16], "big") if len(head) == 16 else 0
            elif n == 0:
                n = size - pos
            if n < 8:
                return False
            kinds.add(kind)
            pos += n
    return pos == size and b"moov" in kinds


def load_depth_file(path: str | os.PathLike, kind: str = "depth", png_scale: float = 1000.0) -> Tensor:
    """Read a user depth or disparity map as z-depth float32 [H, W].

    Formats: `.npy`, `.npz` (key 'depth' or 'disparity', else its only array), 16-bit PNG
    (`kind='depth'`: value / png_scale, e.g. millimetres -> metres; `kind='disparity'`: value / 65535).
    Disparity is inverted (disparity 0 -> +inf depth = sky). Invalid values (NaN, negative, zero
    depth) are returned as NaN for the caller to mask; +inf means sky.
    """
    path = Path(path)
    if kind not in ("depth", "disparity"):
        raise UserInputError(f"depth kind must be 'depth' or 'disparity', got {kind!r}")
    if not path.is_file():
        raise UserInputError(f"no such depth file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                key = "depth" if "depth" in z.files else ("disparity" if "disparity" in z.files else
                                                          z.files[0] if len(z.files) == 1 else None)
                if key is None:
                    raise UserInputError(f"depth file {path} holds {len(z.files)} arrays"
                                         + (f" ({', '.join(z.files[:4])})" if z.files else "")
                                         + "; name the one to use 'depth' or 'disparity'")
                arr = z[key]
        elif suffix == ".png":
            with Image.open(path) as im:
                if im.mode not in ("I;16", "I;16B", "I;16L", "I"):  # 8-bit: a picture, not a depth map
                    raise UserInputError(f"depth file {path} is an 8-bit {im.mode} picture; a depth PNG must be one "
                                         "16-bit channel (or give .npy)")
                im.load()
                arr = np.asarray(im).astype(np.float64) / (png_scale if kind == "depth" else 65535.0)
        else:
            raise UserInputError(f"depth file {path} must be .npy, .npz or a 16-bit .png")
    except UserInputError:
        raise
    except Exception as e:  # numpy/PIL raise many types for corrupt files
        raise UserInputError(f"could not read depth file {path} ({type(e).__name__}: {e})") from None
    arr = np.asarray(arr)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:-1])
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise UserInputError(f"depth file {path} must hold one 2-D numeric array, got shape {arr.shape} ({arr.dtype})")
    d = torch.from_numpy(arr.astype(np.float32))
    if kind == "disparity":
        with np.errstate(divide="ignore"):
            d = torch.where(d == 0, torch.full_like(d, float("inf")), 1.0 / d)
    d = torch.where(torch.isnan(d) | (d <= 0), torch.full_like(d, float("nan")), d)
    return d


def center_crop_resize(img: Tensor, width: int, height: int, mode: str = "area") -> Tensor:
    """Crop [H, W, C] to the aspect of width x height about the centre, then resize to [height, width, C].

    mode: 'area'/'bilinear' for colour, 'nearest' for depth-like maps (no blending across edges).
    """
    H, W = img.shape[:2]
    target = width / height
    if W / H > target:  # too wide
        new_w = max(1, round(H * target))
        x0 = (W - new_w) // 2
        img = img[:, x0 : x0 + new_w]
    elif W / H < target:
        new_h = max(1, round(W / target))
        y0 = (H - new_h) // 2
        img = img[y0 : y0 + new_h]
    if img.shape[0] == height and img.shape[1] == width:
        return img.contiguous()
    x = img.permute(2, 0, 1)[None]
    if mode == "nearest":
        y = torch.nn.functional.interpolate(x, size=(height, width), mode="nearest")
    elif mode == "area" and img.shape[0] >= height and img.shape[1] >= width:
        y = torch.nn.functional.interpolate(x, size=(height, width), mode="area")
    else:
        y = torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return y[0].permute(1, 2, 0).contiguous()


_DISPARITY_COLORS = np.array([[48, 18, 59], [70, 98, 216], [27, 170, 222], [49, 226, 141],
                              [164, 252, 60], [250, 186, 57], [228, 92, 23], [165, 21, 3]], np.float32)
"""Anchors of the disparity colour scale (far: dark blue .. near: dark red), evenly spaced."""


def disparity_colors(depth: Tensor | np.ndarray, sky_color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """uint8 [H, W, 3] picture of a z-depth map [H, W] (+inf = sky): log-disparity from its 2nd to its
    98th percentile over the non-sky pixels mapped onto a blue (far) .. red (near) scale; sky pixels
    `sky_color`. Scale-free: depth maps that differ by a global factor look the same."""
    d = depth.detach().float().cpu().numpy() if isinstance(depth, Tensor) else np.asarray(depth, np.float32)
    solid = np.isfinite(d) & (d > 0)
    out = np.empty(d.shape + (3,), np.uint8)
    out[:] = sky_color
    if solid.any():
        ld = -np.log(d[solid])
        lo, hi = np.percentile(ld, [2, 98])
        t = np.clip((ld - lo) / max(hi - lo, 1e-6), 0, 1) * (len(_DISPARITY_COLORS) - 1)
        i = np.minimum(t.astype(np.int64), len(_DISPARITY_COLORS) - 2)
        f = (t - i)[:, None]
        out[solid] = (_DISPARITY_COLORS[i] * (1 - f) + _DISPARITY_COLORS[i + 1] * f + 0.5).astype(np.uint8)
    return out
