"""Still-photo training (InfiniteNature-Zero): real landscape photos with no video and no ground truth.

A photo step takes random crops of real photos, gives each the depth and sky of the project's own
depth network (refine/depthnet.py; the one metric rule, worldgen.pipeline.depth.metric_depth: median
ground depth = 10 units, the refiner is scale-invariant) and an assumed field of view, and unrolls the real generator along a virtual path:

- cycle: an out-and-back loop (worldgen.pipeline.paths.LoopPath) in per-frame mode -- the generator
  remembers nothing, so the frame on return must be re-generated from what the loop produced, and it
  is supervised by the photo itself (L1, Laplacian-pyramid L1 and the photo critic's feature
  matching). (In persistent mode the world would hand the photo back untouched.)
- forward: a long straight flight (persistent or per-frame) whose first steps run without gradients
  and whose last few must fool the photo critic: the far frames of a long flight must look like
  real photos (InfiniteNature-Zero's adversarial loss over long paths, with its progressive trajectory
  growth: `forward_frames_max`, `grow_from`, `grow_steps`).
Every generated frame of a photo step is judged by a critic of its own (RGB only: photos have no
true depth) against real photo crops; with `critic_condition` the critic is told which photo a frame
should look like (the colour statistics of that photo's ground), and real crops paired with another
photo's statistics, or recoloured, count as fakes, so a colour cast away from the photo is what tells a
fake; with `critic_degraded` real crops blurred or upsampled count as fakes too.

Photo steps are mixed with flight steps (refine/train/trainer.py): one photo step every `every`
steps, so depth and geometry stay anchored by the procedural ground truth.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from refine.depthnet import DEFAULT_DEPTH_WEIGHTS, LearnedDepthModel
from refine.train.config import StillPhotoConfig
from refine.train.data import ClipBatch
from worldgen.core.camera import Camera
from worldgen.pipeline.depth import metric_depth


class PhotoSource:
    """Real photos on the training device, cut into clips with depth from the depth network.

    Args:
        cfg: StillPhotoConfig (its folder must hold at least one photo).
        width, height: clip size W, H.
        device: the training device.
    """

    def __init__(self, cfg: StillPhotoConfig, width: int, height: int, device: torch.device):
        from refine.train.common import load_photos

        cfg.validate()
        self.cfg, self.W, self.H, self.device = cfg, width, height, device
        self.photos = load_photos(cfg.folder, device, max_side=max(512, 2 * max(width, height)))
        self.depth = LearnedDepthModel.load(cfg.depth_weights or DEFAULT_DEPTH_WEIGHTS, device)
        self._conditions: dict[int, Tensor] = {}

    def crops(self, n: int, gen: torch.Generator) -> tuple[Tensor, list[int]]:
        """n random crops (random scale and aspect 1:1 at W x H, random flip): (rgb [n, 3, H, W] in [0, 1], the
        index of each crop's photo)."""
        from refine.train.depth import random_crops

        out, which = [], []
        for _ in range(n):
            which.append(int(torch.randint(len(self.photos), (1,), generator=gen)))
            img = self.photos[which[-1]]
            r, _ = random_crops(img[None], torch.ones_like(img[None, :1]), (self.W, self.H), gen, self.cfg.min_crop)
            out.append(r[0])
        return torch.stack(out), which

    @torch.no_grad()
    def colour_condition(self, which: list[int]) -> Tensor:
        """The photo critic's condition [n, 6] for photos `which`: the per-channel RGB mean and standard deviation
        of each whole photo's ground (not the depth network's sky), as (mean - 0.5) * 4 and std * 8 (about unit
        scale). Computed once per photo."""
        for i in set(which) - self._conditions.keys():
            img = self.photos[i]  # [3, h, w]
            g = (~self.depth(img.permute(1, 2, 0))[1]).float()
            g = g if float(g.sum()) >= 16 else torch.ones_like(g)  # (all sky: the whole photo)
            px = img.reshape(3, -1)[:, g.reshape(-1) > 0]
            self._conditions[i] = torch.cat([(px.mean(1) - 0.5) * 4, px.std(1) * 8])
        return torch.stack([self._conditions[i] for i in which])

    def other_photos(self, which: list[int], gen: torch.Generator) -> list[int]:
        """For each index of `which` a random other photo's index (the same one when there is only one photo)."""
        n = len(self.photos)
        if n < 2:
            return list(which)
        return [(i + 1 + int(torch.randint(n - 1, (1,), generator=gen))) % n for i in which]

    def mismatched(self, crops: Tensor, which: list[int], gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """The conditional critic's mismatched pairs of real crops [n, 3, H, W] of photos `which`: (images
        [n, 3, H, W], conditions [n, 6]); the first half (rounded up) are the crops with other photos'
        conditions, the rest the crops under a random colour change (refine/train/data.py colour_remap at its
        default strength: hue +-45 degrees, saturation, white balance, gamma) with their own photo's."""
        from refine.train.config import ColourJitterConfig
        from refine.train.data import colour_remap

        half = (len(which) + 1) // 2
        jitter = ColourJitterConfig(share=1.0)
        changed = [colour_remap(c.permute(1, 2, 0), jitter, gen)[0].permute(2, 0, 1) for c in crops[half:]]
        images = torch.cat([crops[:half], *[c[None] for c in changed]])
        return images, self.colour_condition(self.other_photos(which[:half], gen) + list(which[half:]))

    def critic_reals(self, n: int, gen: torch.Generator, n_fake: int, cond: Tensor | None) -> tuple[Tensor, dict]:
        """One photo-critic update's real side: n fresh crops [n, 3, H, W] and `photo_critic_loss`'s keyword
        arguments for them, as StillPhotoConfig asks: real_weight (their ground, `critic_generated`), real_cond
        and fake_cond (`critic_condition`; the step's clips' conditions `cond` [B, K] repeated for its n_fake
        step-major frames) and `wrong` (mismatched pairs, `critic_condition`; crops poor in detail,
        `critic_degraded`)."""
        cfg = self.cfg
        crops, which = self.crops(n, gen)
        kw: dict = {"real_weight": self.ground(crops) if cfg.critic_generated else None}
        wrong = []  # real crops made fakes: (images, their conditions or None)
        if cfg.critic_condition:
            kw["real_cond"], kw["fake_cond"] = self.colour_condition(which), cond.repeat(n_fake // len(cond), 1)
            wrong.append(self.mismatched(crops, which, gen))
        if cfg.critic_degraded:
            wrong.append((self.degraded(crops, gen), kw.get("real_cond")))
        if wrong:
            kw["wrong"] = (torch.cat([w[0] for w in wrong]),
                           None if wrong[0][1] is None else torch.cat([w[1] for w in wrong]))
        return crops, kw

    @staticmethod
    def degraded(crops: Tensor, gen: torch.Generator) -> Tensor:
        """Real crops [n, 3, H, W] made poor in detail, as the critic's extra fakes (`critic_degraded`): each, by a
        coin from `gen`, blurred (5x5 box twice: worldgen.core.anchor.detail_layer's blur) or upsampled
        (bilinear) from a quarter of its size (area). Returns [n, 3, H, W]."""
        from worldgen.core.anchor import detail_layer

        blurred = crops - detail_layer(crops.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        small = F.interpolate(crops, scale_factor=0.25, mode="area")
        upsampled = F.interpolate(small, size=crops.shape[-2:], mode="bilinear", align_corners=False)
        coin = torch.rand(len(crops), generator=gen).to(crops.device) < 0.5
        return torch.where(coin[:, None, None, None], blurred, upsampled)

    @torch.no_grad()
    def ground(self, rgb: Tensor) -> Tensor:
        """Not-sky weights [n, 1, H, W] (float 0 / 1; the depth network's sky) of crops rgb [n, 3, H, W] (one batch)."""
        return (~self.depth.batch(rgb)[1]).float()[:, None]

    @torch.no_grad()
    def frame0(self, rgb: Tensor) -> tuple[Tensor, Tensor]:
        """Depth [H, W] (+inf sky; `metric_depth`: median ground depth 10 units) of one crop rgb [3, H, W]."""
        log_d, sky = self.depth(rgb.permute(1, 2, 0))
        ground = ~sky
        if int(ground.sum()) < 16:  # (almost) all sky: call the lowest rows ground, far away
            ground = torch.zeros_like(sky)
            ground[-max(1, self.H // 8):] = True
            sky = ~ground
        return metric_depth(log_d, sky), sky

    def clips(self, kind: str, gen: torch.Generator, step: int = 0) -> tuple[ClipBatch, Tensor]:
        """`batch` clips along `kind` ("cycle" | "forward") paths: (ClipBatch, photos [B, 3, H, W]); forward
        flights are `forward_frames_at(step)` frames long (training `step`: progressive growth).

        The ClipBatch holds the photo (and its depth) as every frame: only frame 0 is an input and,
        for cycles, the last frame (the photo's pose again) a target."""
        from worldgen.pipeline.paths import ForwardPath, LoopPath

        cfg = self.cfg
        L = cfg.cycle_frames if kind == "cycle" else cfg.forward_frames_at(step)
        photos, which = self.crops(cfg.batch, gen)
        rgb, depth, c2w, K = [], [], [], []
        for i in range(cfg.batch):
            d, _ = self.frame0(photos[i])
            fov = cfg.fov[0] + (cfg.fov[1] - cfg.fov[0]) * float(torch.rand((), generator=gen))
            cam = Camera.from_fov(fov, self.W, self.H).to(self.device)
            finite = d[torch.isfinite(d)]
            scale = float(torch.quantile(finite[:: max(1, finite.numel() // 4096)], 0.25))
            lo, hi = math.log(cfg.speed[0]), math.log(cfg.speed[1])
            speed = math.exp(lo + (hi - lo) * float(torch.rand((), generator=gen)))
            if kind == "cycle":
                width = 0.2 + 0.6 * float(torch.rand((), generator=gen))
                path = LoopPath(cam, scale, L, speed=speed, width=width)
            else:
                path = ForwardPath(cam, scale, L, speed=speed)
            c2w.append(path.poses().to(self.device))
            K.append(cam.K)
            rgb.append(photos[i].permute(1, 2, 0)[None].expand(L, -1, -1, -1))
            depth.append(d[None].expand(L, -1, -1))
        batch = ClipBatch(torch.stack(rgb), torch.stack(depth), torch.stack(c2w), torch.stack(K),
                          [{"photo_clip": kind, "photo": i} for i in which])
        return batch, photos


def photo_step_terms(results, photos: Tensor, disc, kind: str, cfg: StillPhotoConfig, autocast: bool,
                     cond: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor | None]:
    """The generator's loss of one photo step: (loss, terms, fake images [N, 3, H, W] for the critic, and
    their patch weights [N, 1, H, W]: what the refiner generated, not sky, with `critic_generated`, else None).

    `results` are the unroll's supervised steps (refine/train/unroll.py); `photos` [B, 3, H, W]; `cond`
    [B, K] the conditional critic's condition of each clip's photo (None: an unconditional critic)."""
    from refine.losses import band_energy_l1, colour_moments_l1, feature_matching_loss, g_hinge_loss, laplacian_l1

    fake = torch.cat([r.out.rgb for r in results])
    source = photos.repeat(len(results), 1, 1, 1)  # fake is step-major: step t holds clips 0..B-1
    fake_cond = None if cond is None else cond.repeat(len(results), 1)
    dev = photos.device
    for p in disc.parameters():
        p.requires_grad_(False)
    terms: dict[str, Tensor] = {}
    loss = fake.new_zeros(())
    # what the refiner generated (it may change the colour there, and it is not sky): [N, 1, H, W]
    gen = torch.cat([(1 - r.views.keep.float()) * (~r.out.sky).float() for r in results])
    fake_weight = gen.detach().reshape(len(gen), 1, *gen.shape[-2:]) if cfg.critic_generated else None
    if cfg.adversarial > 0:  # (0: photo steps of image statistics only; the critic is not run)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=autocast):
            terms["photo_adversarial"] = g_hinge_loss(disc(fake, fake_cond), fake_weight)
            loss = loss + cfg.adversarial * terms["photo_adversarial"]
    # Image statistics every generated frame shares with its photo (float32, outside autocast): the
    # Lab mean and spread, and the amount of detail per band.
    terms["photo_colour"] = colour_moments_l1(fake, source)
    terms["photo_band_energy"] = band_energy_l1(fake, source)
    loss = loss + cfg.colour * terms["photo_colour"] + cfg.band_energy * terms["photo_band_energy"]
    if cfg.colour_generated > 0:
        # the generated pixels against the photo's ground: over real photos the casts grow in generated
        # strips, a small share of the whole frame
        ground = torch.cat([(~r.gt_sky).float() for r in results])
        terms["photo_colour_generated"] = colour_moments_l1(fake, source, gen, b_weight=ground)
        loss = loss + cfg.colour_generated * terms["photo_colour_generated"]
    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=autocast):
        if kind == "cycle":
            back = results[-1].out.rgb
            terms["photo_l1"] = (back - photos).abs().mean()
            terms["photo_laplacian"] = laplacian_l1(back, photos)
            loss = loss + cfg.reconstruction * (terms["photo_l1"] + terms["photo_laplacian"])
            if cfg.feature_matching > 0:
                terms["photo_fm"] = feature_matching_loss(disc(back, cond), disc(photos, cond))
                loss = loss + cfg.feature_matching * terms["photo_fm"]
    for p in disc.parameters():
        p.requires_grad_(True)
    return loss, terms, fake.detach(), fake_weight


def photo_critic_loss(disc, real: Tensor, fake: Tensor, autocast: bool, real_weight: Tensor | None = None,
                      fake_weight: Tensor | None = None, real_cond: Tensor | None = None,
                      fake_cond: Tensor | None = None, wrong: tuple[Tensor, Tensor | None] | None = None) -> Tensor:
    """Hinge loss of the photo critic: real photo crops [N, 3, H, W] against generated frames [M, 3, h, w]
    (resized to the crops' size); optional patch weights [N | M, 1, H, W] (refine/losses.py patch_mean).

    A conditional critic takes each image's condition, real_cond [N, K] and fake_cond [M, K]. `wrong` are real
    crops made fakes: images [k N, 3, H, W] with their conditions [k N, K] (None for an unconditional critic) --
    pairs that do not match (`PhotoSource.mismatched`) and crops poor in detail (`PhotoSource.degraded`), each
    group in the real crops' order, weighted as them; the fake side is then the mean of the generated
    frames' and these terms (so 2 is still chance)."""
    from refine.losses import d_hinge_loss

    if fake.shape[-2:] != real.shape[-2:]:
        fake = F.interpolate(fake, size=real.shape[-2:], mode="bilinear", align_corners=False)
    with torch.autocast(device_type=real.device.type, dtype=torch.bfloat16, enabled=autocast):
        d_real = disc(real, real_cond)
        loss = d_hinge_loss(d_real, disc(fake, fake_cond), real_weight, fake_weight)
        if wrong is None:
            return loss
        w = None if real_weight is None else real_weight.repeat(len(wrong[0]) // len(real), 1, 1, 1)
        return 0.5 * (loss + d_hinge_loss(d_real, disc(*wrong), real_weight, w))
