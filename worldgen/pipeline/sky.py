"""The sky dome: sky colour at infinity, as an equirectangular texture over world directions.

It is rendered from the camera's rotation only (translation never changes the sky), filled from sky
pixels as they appear (first observation wins, so the sky stays put when the camera comes back),
and composited behind the Gaussian scene. `complete` fills, once, every direction above the photo's
horizon that was never seen with a sky made from the seen one (a colour profile over elevation plus
the seen sky's own variation: continued near it, quilted from it further out), so a turning camera
meets a sky that exists already instead of one smeared out of the image's top rows.

Texture layout: [Hs, Ws, 3]; column = azimuth atan2(x, z) from -pi to pi, row = elevation from +90
(up, world -y) to -90 degrees.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from worldgen.core.camera import Camera
from worldgen.core.device import to_device
from worldgen.core.fill import box_mean, fill_between, push_pull
from worldgen.core.graphs import GraphCache, camera_inputs, graphs_enabled, static_camera


# The sky renders of every dome, as CUDA graphs (keyed by the texture's address and shape). Only domes that have
# rendered `_GRAPH_AFTER` times use them: training unrolls build new domes for every clip, whose few renders
# would not pay for a capture (warm-ups, a synchronisation and a memory pool each).
_GRAPHS = GraphCache(max_graphs=4)
_GRAPH_AFTER = 16
# The dome's writes (`update`), as CUDA graphs: one per texel window shape (keyed as above).
_WRITE_GRAPHS = GraphCache(max_graphs=6)
_WINDOW_STEP = 128  # window sides are multiples of this many texels


class SkyDome:
    """Equirectangular sky memory.

    Args:
        texels_per_degree: angular resolution (`for_camera`: twice the camera's pixels per degree, so what a view
            wrote comes back nearly unblurred through the two bilinear resamplings, image -> texels -> image; the
            width is capped at 4096 texels).
        device: torch device of the texture.
    """

    def __init__(self, texels_per_degree: float = 4.0, device: torch.device | str = "cpu"):
        self.width = int(min(4096, max(64, round(360 * texels_per_degree))))
        self.height = self.width // 2
        self.device = torch.device(device)
        # One buffer in the layout the renderer samples: [1, 4, Hs, Ws + 2] = colour (premultiplied by
        # the weight) and weight, with one wrap-around column on each side (azimuth is periodic).
        self._tex = torch.zeros(1, 4, self.height, self.width + 2, device=self.device)
        self._dirs: Tensor | None = None  # cached texel directions [Hs, Ws, 3]
        self._renders = 0  # `render` calls so far: a dome is replayed as a graph only once it has lived a while

    @property
    def color(self) -> Tensor:
        """[3, Hs, Ws] view of the texture's colour (0 where not observed)."""
        return self._tex[0, :3, :, 1:-1]

    @property
    def weight(self) -> Tensor:
        """[Hs, Ws] view: 1 where the texel was observed, else 0."""
        return self._tex[0, 3, :, 1:-1]

    @staticmethod
    def for_camera(camera: Camera) -> "SkyDome":
        """A dome for `camera`'s views. Twice its pixels per degree, not the 1.25x of 2026-11 to 2026-12-03: the sky
        read with hysteresis (`--sky-grow`) takes textured pixels at the horizon (cloud edges, hill tops), and at
        1.25x a loop back to the photo blurred them (tests/test_fly.py: 29.0 dB at 1.25x, 32.8 at 2x, 34.1 at 2.5x;
        the CPU's sky stage 9 -> ~13 ms a frame at 256x256, 2026-12-04)."""
        px_per_deg = camera.width / camera.fov_x_deg
        return SkyDome(texels_per_degree=2.0 * px_per_deg, device=camera.device)

    def reset(self) -> None:
        self._tex.zero_()

    def state(self):
        """numpy float32 [4, Hs, Ws + 2] copy of the dome (premultiplied colour and weight, with the
        wrap-around columns), for checkpoints."""
        return self._tex[0].detach().cpu().numpy().copy()

    def load_state(self, state) -> None:
        """Set the dome to a `state()` of a dome of the same size."""
        t = torch.as_tensor(state, dtype=torch.float32)
        if tuple(t.shape) != tuple(self._tex.shape[1:]):
            raise ValueError(f"sky state is {tuple(t.shape)}, this dome is {tuple(self._tex.shape[1:])}")
        self._tex[0].copy_(t.to(self.device))

    @property
    def observed_texels(self) -> int:
        """Texels observed (or completed) so far (reading it waits for the device)."""
        return int((self.weight > 0).sum())

    @property
    def observed_fraction(self) -> float:
        return float((self.weight > 0).float().mean())

    def _texcoords(self, dirs: Tensor) -> Tensor:
        """Continuous texel coordinates [..., 2] (x, y) of unit world directions [..., 3]."""
        az = torch.atan2(dirs[..., 0], dirs[..., 2])  # [-pi, pi]
        el = torch.asin((-dirs[..., 1]).clamp(-1, 1))  # up is -y
        x = (az / (2 * math.pi) + 0.5) * self.width
        y = (0.5 - el / math.pi) * self.height
        return torch.stack([x, y], dim=-1)

    def update(self, camera: Camera, rgb: Tensor, mask: Tensor) -> Tensor:
        """Write the sky seen in rgb [H, W, 3] where mask [H, W] is True into texels not yet observed.

        Each unobserved texel inside the view looks up the image bilinearly (inverse mapping, so the
        texture has no gaps however fine it is), using only texels whose four neighbouring pixels
        are all sky. Returns the number of texels written: a 0-dim int64 tensor on the dome's device.

        Eagerly (the CPU, young domes, autograd, WORLDGEN_CUDA_GRAPHS=0) only the box of texels around
        the sky pixels is visited: one read of the box from the device. On CUDA, once the dome has lived
        a while (as `render`), the write never reads the device: it visits a window of texels that holds
        the whole view, computed on the host from the camera (`_view_window`), replayed from a CUDA graph
        per window shape (one launch instead of ~60). Both write the same texels.
        """
        if self._graphable(camera, rgb):
            y0, x0, h, w = self._view_window(camera)
            origin = to_device(np.array([y0, x0], np.int64), self.device)  # (pinned: no wait for the device)
            cam_inputs, cam_key = camera_inputs(camera)
            key = ("sky-write", cam_key, self._tex.data_ptr(), tuple(self._tex.shape), h, w)

            def build(static: list[Tensor]):
                cam, (rgb_s, mask_s, origin_s) = static_camera(camera, static)
                dev = origin_s.device

                def run() -> tuple[Tensor]:
                    rows = origin_s[0] + torch.arange(h, device=dev)
                    cols = torch.remainder(origin_s[1] + torch.arange(w, device=dev), self.width)
                    return (self._write(cam, rgb_s, mask_s, rows, cols),)

                return run

            # (the capture's warm-ups write too: a second write of the same view finds its texels
            # observed and writes nothing, so the dome is as after one write)
            return _WRITE_GRAPHS.run(key, [*cam_inputs, rgb, mask, origin], build)[0]
        box = self._sky_box(camera, mask)
        if box is None:
            return torch.zeros((), dtype=torch.int64, device=self.device)
        return self._write(camera, rgb, mask, *box)

    def _graphable(self, camera: Camera, *tensors: Tensor) -> bool:
        """Whether this dome's render or write at `camera` (with `tensors`) runs as a CUDA graph: on CUDA,
        graphs enabled, no gradient wanted, and the dome has rendered more than `_GRAPH_AFTER` times."""
        return (self._renders > _GRAPH_AFTER and self._tex.is_cuda and camera.c2w.is_cuda and graphs_enabled()
                and not any(t.requires_grad for t in (camera.c2w, *tensors)))

    def _sky_box(self, camera: Camera, mask: Tensor) -> tuple[slice, slice] | None:
        """(rows, columns) of the texels near the sky pixels' own texture coordinates (whole rows when
        they span the azimuth seam or most of the circle), None without sky pixels: one read from the
        device."""
        xy = self._texcoords(camera.rays_world())  # [H, W, 2]
        inf = torch.full_like(xy[..., 0], math.inf)
        lo = torch.where(mask[..., None], xy, inf[..., None]).flatten(0, 1).amin(0)
        hi = torch.where(mask[..., None], xy, -inf[..., None]).flatten(0, 1).amax(0)
        xmin, ymin, xmax, ymax = torch.cat([lo, hi]).tolist()
        if not math.isfinite(ymin):
            return None
        y0, y1 = max(0, int(ymin) - 2), min(self.height, int(ymax) + 3)
        x0, x1 = int(xmin) - 2, int(xmax) + 3
        if x1 - x0 >= self.width // 2:
            x0, x1 = 0, self.width
        return slice(y0, y1), slice(max(0, x0), min(self.width, x1))

    def _view_window(self, camera: Camera) -> tuple[int, int, int, int]:
        """(y0, x0, h, w): texel rows y0 .. y0 + h - 1 and columns x0 .. x0 + w - 1 (modulo the width)
        holding every texel whose direction projects within the view's pixel centres (with 2 texels
        to spare), from the camera's host copy (no read from the device). The view's border is
        sampled: without a pole in view, elevation and azimuth are extreme on the border; a pole in
        view (or a view spanning most of the circle) takes whole rows. h and w are rounded up to
        multiples of `_WINDOW_STEP` (few shapes, few graphs), within the dome."""
        K, c2w = camera.host()
        R = c2w[:3, :3]
        H, W, Hs, Ws = camera.height, camera.width, self.height, self.width
        n = 65
        u, v = np.linspace(0.5, W - 0.5, n), np.linspace(0.5, H - 0.5, n)
        bu = np.concatenate([u, u, np.full(n, 0.5), np.full(n, W - 0.5), [W / 2]])
        bv = np.concatenate([np.full(n, 0.5), np.full(n, H - 0.5), v, v, [H / 2]])
        d = np.stack([(bu - K[0, 2]) / K[0, 0], (bv - K[1, 2]) / K[1, 1], np.ones_like(bu)], 1) @ R.T
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        az = np.arctan2(d[:, 0], d[:, 2])
        ys = (0.5 - np.arcsin(np.clip(-d[:, 1], -1.0, 1.0)) / math.pi) * Hs
        ymin, ymax = float(ys.min()), float(ys.max())
        rel = np.mod(az[:-1] - az[-1] + math.pi, 2 * math.pi) - math.pi  # azimuth from the view's centre
        whole = float(rel.max() - rel.min()) > 0.45 * 2 * math.pi
        for sign in (-1.0, 1.0):  # the zenith (world -y) and the nadir in view?
            pc = R.T @ np.array([0.0, sign, 0.0])
            if pc[2] > 1e-9:
                pu, pv = K[0, 0] * pc[0] / pc[2] + K[0, 2], K[1, 1] * pc[1] / pc[2] + K[1, 2]
                if 0.5 <= pu <= W - 0.5 and 0.5 <= pv <= H - 0.5:
                    whole = True
                    ymin, ymax = (0.0, ymax) if sign < 0 else (ymin, float(Hs))
        y0, y1 = max(0, int(ymin) - 2), min(Hs, int(ymax) + 3)
        step = _WINDOW_STEP
        h = min(Hs, -(-(y1 - y0) // step) * step)
        y0 = min(y0, Hs - h)
        if whole:
            return y0, 0, h, Ws
        xs = (az[-1] + rel.min()) / (2 * math.pi) + 0.5  # the left edge, in turns (may leave 0..1)
        x0 = math.floor(xs * Ws) - 2
        w = math.ceil(float(rel.max() - rel.min()) / (2 * math.pi) * Ws) + 5
        w = -(-w // step) * step
        if w >= Ws:
            return y0, 0, h, Ws
        return y0, x0 % Ws, h, w

    def _write(self, camera: Camera, rgb: Tensor, mask: Tensor, rows: slice | Tensor, cols: slice | Tensor) -> Tensor:
        """`update` over the texels `rows` x `cols` of the texture: slices (a box, eager) or int64 index
        tensors [h] and [w] (a window whose columns may wrap around; never reads the device, so it can be
        captured; eagerly, a view with nothing to write stops after one read). Returns the number of texels
        written (0-dim int64)."""
        Ws = self.width
        tex = self._tex[0]  # [4, Hs, Ws + 2]
        if isinstance(rows, slice):
            at = (slice(None), rows, slice(cols.start + 1, cols.stop + 1))  # +1: the wrap column
            dirs = self._texel_dirs()[rows, cols]  # [h, w, 3]
        else:
            at = (slice(None), rows[:, None], cols[None, :] + 1)
            dirs = self._texel_dirs()[rows[:, None], cols[None, :]]
        old = tex[at]  # [4, h, w]
        free = old[3] == 0
        # [h, w, 3] camera-space directions, element by element in a fixed order: a matmul's rounding depends on the
        # batch's shape (torch 2.14's CPU kernels), and the box, the window and the whole dome must write the same bits
        Rc = camera.rotation
        d_cam = dirs[..., 0:1] * Rc[0] + dirs[..., 1:2] * Rc[1] + dirs[..., 2:3] * Rc[2]
        z = d_cam[..., 2]
        zs = z.clamp_min(1e-3)
        u = camera.K[0, 0] * d_cam[..., 0] / zs + camera.K[0, 2]
        v = camera.K[1, 1] * d_cam[..., 1] / zs + camera.K[1, 2]
        H, W = mask.shape
        inside = free & (z > 1e-3) & (u >= 0.5) & (u <= W - 0.5) & (v >= 0.5) & (v <= H - 0.5)
        u, v = u - 0.5, v - 0.5  # continuous pixel indices
        j0, i0 = u.floor().clamp(0, W - 1).long(), v.floor().clamp(0, H - 1).long()
        j1, i1 = (j0 + 1).clamp(max=W - 1), (i0 + 1).clamp(max=H - 1)
        write = inside & mask[i0, j0] & mask[i0, j1] & mask[i1, j0] & mask[i1, j1]  # all four neighbours sky
        n = write.sum()
        if isinstance(rows, slice) and not bool(n):  # (eager: nothing new in view, nothing more to do)
            return n
        fu, fv = (u - j0)[..., None], (v - i0)[..., None]
        col = (rgb[i0, j0] * (1 - fu) * (1 - fv) + rgb[i0, j1] * fu * (1 - fv) + rgb[i1, j0] * (1 - fu) * fv
               + rgb[i1, j1] * fu * fv)
        new = torch.cat([col.permute(2, 0, 1), torch.ones_like(col[None, ..., 0])], 0)
        tex[at] = torch.where(write[None], new, old)
        self._tex[..., 0] = self._tex[..., Ws]  # refresh the wrap-around columns
        self._tex[..., Ws + 1] = self._tex[..., 1]
        return n

    def _texel_dirs(self) -> Tensor:
        """[Hs, Ws, 3] unit world directions of the texel centres (cached)."""
        if self._dirs is None:
            x = (torch.arange(self.width, device=self.device) + 0.5) / self.width
            y = (torch.arange(self.height, device=self.device) + 0.5) / self.height
            az = (x - 0.5) * 2 * math.pi
            el = (0.5 - y) * math.pi
            el, az = torch.meshgrid(el, az, indexing="ij")
            self._dirs = torch.stack([el.cos() * az.sin(), -el.sin(), el.cos() * az.cos()], dim=-1)
        return self._dirs

    def complete(self, horizon_elev_deg: float, fade_deg: float = 8.0, profile_deg: float = 6.0,
                 tile_deg: float = 12.0, seed: int = 0) -> int:
        """Fill the unobserved texels above `horizon_elev_deg` with a sky made from the observed ones.

        Colour = P(elevation) + R, where P is the mean of the observed texels over rows within
        `profile_deg` of elevation (each row weighted by its number of observed texels; rows without
        any are interpolated between observed rows and held constant beyond them, then smoothed over
        about 3 degrees), and R is the observed texels' residual from P: near the seen sky (a
        `fade_deg` box-blurred observed mask) filled by push-pull, which continues it; further out
        generated, quilted from `tile_deg`-wide windows of the seen sky at the nearest elevation
        (`quilt_sky`, drawn with `seed`), so clouds go on round the dome (until 2026-12-05 R faded to
        0 over 25 degrees and the rest of the dome was the flat profile: `fade_deg=25, tile_deg=0` is
        that rule, for comparisons). The quilted part fades out between 60 and 80 degrees of elevation.
        The filled texels count as observed (weight 1), so they stay put. Returns the number filled.
        """
        obs = self.weight > 0  # [Hs, Ws]
        if not bool(obs.any()) or horizon_elev_deg >= 90:
            return 0
        Hs, Ws = self.height, self.width
        row_el = (0.5 - (torch.arange(Hs, device=self.device) + 0.5) / Hs) * 180.0
        target_rows = row_el > horizon_elev_deg
        rows_obs = obs.any(1)
        col = self.color  # [3, Hs, Ws]
        # Row means weighted by how much of each row was seen, over about `profile_deg` of elevation: a
        # row with a few observed texels (the photo's top edge between branches) must not set the colour
        # of the whole zenith (it drew dark rings over every view that looked up).
        kp = max(1, int(round(profile_deg / 180.0 * Hs)))
        sums = torch.cat([(col * obs).sum(2), obs.sum(1, dtype=col.dtype)[None]])  # [4, Hs]
        sums = F.avg_pool1d(F.pad(sums[None], (kp, kp)), 2 * kp + 1, stride=1)[0]
        prof = sums[:3] / sums[3:].clamp_min(1e-6)  # [3, Hs]
        # per row: the nearest observed rows above and below, linearly interpolated (constant outside)
        prof = fill_between(prof.T, rows_obs).T  # [3, Hs]
        k = max(1, int(round(3.0 / 180.0 * Hs)))
        prof = F.avg_pool1d(F.pad(prof[None], (k, k), mode="replicate"), 2 * k + 1, stride=1)[0]
        resid = torch.where(obs[None], col - prof[:, :, None], torch.zeros_like(col))  # [3, Hs, Ws]
        band = torch.nonzero(target_rows | rows_obs).flatten()
        y0, y1 = int(band.min()), int(band.max()) + 1
        filled = push_pull(resid[:, y0:y1].permute(1, 2, 0), obs[y0:y1].float()).permute(2, 0, 1)
        kf = max(1, int(round(fade_deg / 360.0 * Ws)))
        near = box_mean(obs[y0:y1].float(), kf)
        near = (near * 4).clamp(max=1.0)  # within fade_deg of a good share of seen sky: its variation
        # Further out, the seen sky's variation quilted (clouds continue round the dome instead of fading to the
        # profile), fading out towards the zenith, where an equirectangular patch would be squeezed sideways.
        # Texels much darker than the seen sky at their elevation (a rock or branches the sky mask let in; a cloud's
        # underside is rarely below 0.6 of its row's mean) are not copied round the dome.
        lum = col.mean(0)  # [Hs, Ws]
        usable = obs & (lum >= 0.6 * prof.mean(0)[:, None])
        tile = 2 * max(2, int(round(tile_deg / 360.0 * Ws / 2)))
        detail = quilt_sky(resid[:, y0:y1], usable[y0:y1], tile, seed) if tile_deg > 0 else torch.zeros_like(filled)
        amp = ((80.0 - row_el[y0:y1]) / 20.0).clamp(0, 1)  # [rows]: 1 up to 60 degrees, 0 from 80
        value = (prof[:, y0:y1, None] + filled * near[None] + detail * ((1 - near) * amp[:, None])[None]).clamp(0, 1)
        write = (~obs[y0:y1]) & target_rows[y0:y1, None]
        n_new = int(write.sum())
        if n_new:
            tex = self._tex[0, :, y0:y1, 1:-1]
            tex[:3] = torch.where(write[None], value, tex[:3])
            tex[3] = torch.where(write, torch.ones_like(tex[3]), tex[3])
            self._tex[..., 0] = self._tex[..., self.width]
            self._tex[..., self.width + 1] = self._tex[..., 1]
        return n_new

    def render(self, camera: Camera) -> tuple[Tensor, Tensor]:
        """Sky seen by `camera` (rotation only): (rgb [H, W, 3], known [H, W] in [0, 1]).

        Bilinear lookup with normalised weights: `known` is the interpolated observed-weight; rgb is
        meaningful where known > 0 (0 elsewhere). On CUDA it is replayed from a CUDA graph (one launch
        instead of ~40; worldgen/core/graphs.py) that reads the texture in place, so later writes
        into the dome are seen; WORLDGEN_CUDA_GRAPHS=0 runs it eagerly.
        """
        self._renders += 1
        if self._graphable(camera):
            cam_inputs, cam_key = camera_inputs(camera)
            # the texture's address keys the graph: a dome given a new texture gets a new graph
            key = ("sky", cam_key, self._tex.data_ptr(), tuple(self._tex.shape))

            def build(static: list[Tensor]):
                cam, _rest = static_camera(camera, static)
                return lambda: self._render(cam)

            rgb, known = _GRAPHS.run(key, cam_inputs, build)
            return rgb, known
        return self._render(camera)

    def _render(self, camera: Camera) -> tuple[Tensor, Tensor]:
        """`render` computed eagerly (it never waits for the device, so it can be captured)."""
        xy = self._texcoords(camera.rays_world())
        gx = (xy[..., 0] + 1) / (self.width + 2) * 2 - 1  # +1: the wrap column on the left
        gy = xy[..., 1] / self.height * 2 - 1
        grid = torch.stack([gx, gy], dim=-1)[None]
        s = F.grid_sample(self._tex, grid, mode="bilinear", padding_mode="border", align_corners=False)[0].permute(1, 2, 0)
        known = s[..., 3]
        rgb = s[..., :3] / known.clamp_min(1e-6)[..., None]
        rgb = torch.where(known[..., None] > 1e-6, rgb, torch.zeros_like(rgb))
        return rgb.clamp(0, 1), known.clamp(0, 1)

    # ------------------------------------------------------------------ file
    def save_png(self, path) -> None:
        """Write the dome as `sky.png`, atomically: an 8-bit RGBA equirectangular image [Hs, Ws, 4] in
        the texture layout above (column = azimuth atan2(x, z) from -pi to pi, row = elevation from
        +90, world -y, to -90 degrees); alpha 255 where a texel was observed, 0 (and RGB 0) elsewhere."""
        from PIL import Image

        from worldgen.core.io import atomic_write

        rgb = (self.color.detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
        alpha = np.where(self.weight.detach().cpu().numpy() > 0, 255, 0).astype(np.uint8)
        with atomic_write(path) as f:
            Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA").save(f, format="PNG")

    @staticmethod
    def load_png(path, device: torch.device | str = "cpu") -> "SkyDome":
        """A SkyDome from an equirectangular image written by `save_png` (RGBA; alpha > 127 = observed)
        or any 2:1 RGB panorama in the same layout (all texels observed). Width 64..4096.
        Raises UserInputError with a one-line reason for a missing, unreadable, too large (PIL's pixel limit) or
        wrongly shaped file."""
        from PIL import Image, UnidentifiedImageError

        from worldgen.core.io import UserInputError

        try:
            with Image.open(path) as im:
                im.load()
                arr = np.asarray(im.convert("RGBA"))
        except FileNotFoundError:
            raise UserInputError(f"no such sky image: {path}") from None
        except Image.DecompressionBombError as e:  # (not an OSError)
            from worldgen.core.images import too_large_image_line

            raise UserInputError(too_large_image_line(path, e)) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise UserInputError(f"{path} is not a readable sky image ({e})") from None
        Hs, Ws = arr.shape[:2]
        if not (64 <= Ws <= 4096 and Hs == Ws // 2):
            raise UserInputError(f"{path}: a sky image must be equirectangular, W x W/2 with W in 64..4096, "
                                 f"got {Ws}x{Hs}")
        dome = SkyDome(texels_per_degree=Ws / 360.0, device=device)
        dome.width, dome.height = Ws, Hs
        dome._tex = torch.zeros(1, 4, Hs, Ws + 2, device=dome.device)
        known = torch.from_numpy(arr[..., 3] > 127).to(dome.device)
        rgb = torch.from_numpy(arr[..., :3].astype(np.float32) / 255.0).to(dome.device).permute(2, 0, 1)
        dome._tex[0, :3, :, 1:-1] = rgb * known
        dome._tex[0, 3, :, 1:-1] = known.float()
        dome._tex[..., 0] = dome._tex[..., Ws]  # wrap-around columns
        dome._tex[..., Ws + 1] = dome._tex[..., 1]
        return dome


def quilt_sky(resid: Tensor, usable: Tensor, tile: int, seed: int = 0, max_anisotropy: float = 1.2,
              max_fine: float = 0.004, pool: int = 12) -> Tensor:
    """A sky texture quilted from the seen sky's variation: [3, H, W] (0 where nothing could be copied).

    Args:
        resid: [3, H, W] the seen texels' colour minus the elevation profile (rows = elevation bands of
            an equirectangular dome, columns = azimuth, periodic); arbitrary where not `usable`.
        usable: [H, W] bool, seen texels that may be copied.
        tile: patch side in texels (>= 4; even).
        seed: the patches' draw (the same seed and input give the same texture).
        max_anisotropy: windows whose mean |grey change| between columns exceeds this times that between rows
            are not copied (vertical structure: trunks in fog, masts, streaks; clouds lie in layers).
        max_fine: windows whose mean |grey - its 3 x 3 mean| exceeds this are not copied (sharp detail: branches,
            foliage; clouds are soft).
        pool: each target tile draws among at least this many source windows (or all there are): those at its
            elevation band (tile / 2 rows) or the nearest with sources, widened band by band until there are.

    Sources are the tile x tile windows that are entirely `usable`, soft and not vertically structured (on a grid
    of tile / 8 texels); every target tile (a grid of stride tile / 2, so each texel lies in four) copies a window
    drawn at random among those whose rows are nearest its own (the same elevation, or the nearest seen one; `pool`),
    mirrored left-right half the time, and the four are blended with separable sin^2 windows (which sum to 1 at this
    stride) divided by the root of the summed squared weights, so the blend keeps the patches' contrast instead of
    averaging it away. Each copied window's own mean is taken out: the texture is the seen sky's variation at the
    tile's scale and below, zero on average, and the larger-scale colour stays the profile's (mean offsets between
    windows drew a checkerboard). Reads the device for the rows that hold usable texels and the source count.
    """
    C, H, W = resid.shape
    dev = resid.device
    T, S = tile, tile // 2
    if H < T or W < T:
        return torch.zeros_like(resid)
    # Fully usable windows and their mean residual, from summed-area tables (columns wrap round).
    def window_sums(x: Tensor) -> Tensor:  # [K, H, W] -> [K, H - T + 1, W] sums over T x T windows (top-left)
        p = torch.cat([x, x[..., : T - 1]], -1).double()
        s = F.pad(p.cumsum(-2).cumsum(-1), (1, 0, 1, 0))
        return (s[..., T:, T:] - s[..., :-T, T:] - s[..., T:, :-T] + s[..., :-T, :-T]).float()

    # Sources lie within the rows that hold usable texels: the windows are found there only (4x less work for a
    # photo's sky, 25 degrees of 90), then given the whole dome's row numbers.
    rows_used = torch.nonzero(usable.any(1)).flatten()
    if rows_used.numel() == 0 or int(rows_used[-1] - rows_used[0]) + 1 < T:
        return torch.zeros_like(resid)
    r0, r1 = int(rows_used[0]), int(rows_used[-1]) + 1
    full = resid
    resid, usable = resid[:, r0:r1], usable[r0:r1]
    seen = window_sums(usable[None].float())[0] > T * T - 0.5  # [r1 - r0 - T + 1, W]
    step = max(1, T // 8)
    grid = torch.zeros_like(seen)
    grid[::step, ::step] = True
    # Sky has no vertical structure (clouds lie in layers): a window whose grey changes more from column to column
    # than from row to row holds trunks or masts the sky mask let in (fog in a forest), or streaks. Not copied.
    grey = resid.mean(0)
    gx = F.pad((grey[:, 1:] - grey[:, :-1]).abs(), (0, 1))
    gy = F.pad((grey[1:] - grey[:-1]).abs(), (0, 0, 0, 1))
    g = window_sums(torch.stack([gx, gy]))
    seen = seen & (g[0] <= max_anisotropy * g[1] + 1e-3 * T * T)
    # Nor is sharp detail: clouds are soft at the dome's resolution (twice the view's); branches and foliage are not
    # (mean |grey - its 3 x 3 mean| over a window: clouds 0.001-0.003 on the 14 real photos, misty_pines' foggy
    # branches 0.006-0.008).
    fine = (grey - F.avg_pool2d(F.pad(grey[None, None], (1, 1, 1, 1), mode="replicate"), 3, 1)[0, 0]).abs()
    seen = seen & (window_sums(fine[None])[0] <= max_fine * T * T)
    cand = (seen & grid).nonzero()  # [N, 2] top-left (row, column)
    if cand.shape[0] == 0:
        return torch.zeros_like(full)
    means = window_sums(torch.where(usable[None], resid, torch.zeros_like(resid)))[:, cand[:, 0], cand[:, 1]] / (T * T)
    cand = cand + torch.tensor([r0, 0], device=dev)
    resid = full
    # Sources sorted by band of rows (S rows each), so a band's pool (below) is one run of them.
    bands = (H - T) // S + 1
    cb = (cand[:, 0] // S).clamp(max=bands - 1)
    order = torch.argsort(cb, stable=True)
    cand, cb, means = cand[order], cb[order], means[:, order]
    counts = torch.bincount(cb, minlength=bands)
    pos = torch.arange(bands, device=dev)
    have = pos[counts > 0]
    nearest = have[(pos[:, None] - have[None]).abs().argmin(1)]  # [bands]
    # The pool of a band: the sources of the bands within R of its nearest band with sources, R the smallest that
    # holds `pool` of them (or all): one or two windows copied round the whole dome would repeat like wallpaper.
    cum = F.pad(torch.cumsum(counts, 0), (1, 0))  # [bands + 1]
    reach = torch.arange(bands, device=dev)
    lo = (nearest[:, None] - reach[None]).clamp(min=0)  # [bands, R]
    hi = (nearest[:, None] + reach[None]).clamp(max=bands - 1)
    inside = cum[hi + 1] - cum[lo]  # [bands, R] sources within R bands
    r = (inside >= min(pool, cand.shape[0])).float().argmax(1)  # [bands] the smallest such R
    first = cum[lo.gather(1, r[:, None])[:, 0]]  # [bands] the pool's first source (sorted by band)
    size = inside.gather(1, r[:, None])[:, 0]  # [bands]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    a = torch.arange(T, device=dev)
    win = torch.sin(math.pi * (a.float() + 0.5) / T).square()  # [T]
    n_tx = -(-W // T)
    acc = torch.zeros_like(resid)
    wy2 = torch.zeros(H, device=dev)  # the summed squared weights are separable: sum_y w^2 times sum_x w^2
    wx2 = torch.zeros(W, device=dev)
    for oy in (0, S):
        for ox in (0, S):
            # target tiles of this phase: tile row i covers dome rows oy - T + i T .. + T (so the top rows are
            # covered), tile column j covers dome columns ox + j T .. + T (periodic)
            n_ty = (H - oy) // T + 2
            centre = (torch.arange(n_ty, device=dev) * T + oy - T + S).clamp(0, H - 1)  # tile centre rows
            band = (torch.div(centre - S, S, rounding_mode="floor")).clamp(0, bands - 1)  # [n_ty]
            u = torch.rand(n_ty, n_tx, generator=gen).to(dev)
            pick = first[band][:, None] + (u * size[band][:, None]).long()
            pick = torch.minimum(pick, (first[band] + size[band] - 1)[:, None])  # [n_ty, n_tx]
            flip = (torch.rand(n_ty, n_tx, generator=gen) < 0.5).to(dev)  # half the copies mirrored left-right
            rows = cand[pick, 0][..., None] + a  # [n_ty, n_tx, T]
            cols = (cand[pick, 1][..., None] + torch.where(flip[..., None], T - 1 - a, a)) % W  # [n_ty, n_tx, T]
            patch = resid[:, rows[..., :, None], cols[..., None, :]]  # [3, n_ty, n_tx, T, T]
            # each copied window's own mean out: only its variation is laid
            patch = (patch - means[:, pick][..., None, None]) * (win[:, None] * win[None, :])
            layer = patch.permute(0, 1, 3, 2, 4).reshape(C, n_ty * T, n_tx * T)[:, T - oy:T - oy + H, :W]
            acc += torch.roll(layer, shifts=ox, dims=2)
            wy2 += win.repeat(n_ty)[T - oy:T - oy + H].square()
            wx2 += torch.roll(win.repeat(n_tx)[:W].square(), shifts=ox)
    acc_w2 = wy2[:, None] * wx2[None, :] / 4  # each 1-D sum above was added once per phase of the other axis
    return acc / acc_w2.sqrt().clamp_min(1e-6)
