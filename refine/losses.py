"""Training losses of the refinement (and depth) networks, and the multi-scale PatchGAN critic.

No pretrained weights can be downloaded here, so the perceptual terms the papers use are replaced:
- Infinite Nature's VGG perceptual loss -> a Laplacian-pyramid L1 (band-pass differences at 4
  scales: penalises missing or wrong detail the way a plain L1 does not) plus the discriminator's
  feature-matching loss (pix2pixHD), whose features are learnt here from the project's own data.
- A detail-energy term (`detail_energy_l1`): the local amount of detail in each band, compared
  without its phase, so texture that is plausible but not pixel-aligned is not punished the way L1
  punishes it (L1 alone makes a network paint the blurry mean of what could be there; this term is
  what a perceptual loss does against blur, without any pretrained features).
- The adversarial term: hinge loss with a 2-scale PatchGAN (spectral norm), as Infinite Nature's
  multi-scale discriminator.

Images are `[B, C, H, W]` float.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


def masked_mean(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of x [B, C, H, W] over the pixels where mask [B, 1, H, W] (bool or weight) is set; 0 if none."""
    if mask is None:
        return x.mean()
    m = mask.to(x.dtype).expand_as(x)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def _blur_down(x: Tensor) -> Tensor:
    """[B, C, H, W] -> [B, C, ceil(H/2), ceil(W/2)]: 2x2 box average (replicate-padded for odd sizes)."""
    ph, pw = x.shape[-2] % 2, x.shape[-1] % 2
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return F.avg_pool2d(x, 2)


def laplacian_l1(a: Tensor, b: Tensor, levels: int = 4) -> Tensor:
    """L1 between the Laplacian pyramids of a and b [B, C, H, W] (band i weighted 2^i: coarse bands
    hold fewer pixels), averaged over bands."""
    total = a.new_zeros(())
    for i, (ba, bb) in enumerate(zip(_bands(a, levels), _bands(b, levels))):
        total = total + (2.0 ** i) * (ba - bb).abs().mean()
    return total / levels


def _bands(x: Tensor, levels: int) -> list[Tensor]:
    """The first `levels` Laplacian bands of x [B, C, H, W] (band i at 1 / 2^i resolution)."""
    out = []
    for _ in range(levels):
        if min(x.shape[-2:]) < 2:
            break
        d = _blur_down(x)
        out.append(x - F.interpolate(d, size=x.shape[-2:], mode="bilinear", align_corners=False))
        x = d
    return out


def detail_energy(x: Tensor, levels: int = 3, window: int = 7) -> list[Tensor]:
    """Local detail of x [B, C, H, W] per band: the mean |band| over channels, averaged over a
    window x window neighbourhood; a list of [B, 1, H / 2^i, W / 2^i]."""
    return [F.avg_pool2d(b.abs().mean(1, keepdim=True), window, stride=1, padding=window // 2, count_include_pad=False)
            for b in _bands(x, levels)]


def detail_energy_l1(a: Tensor, b: Tensor, weight: Tensor | None = None, levels: int = 3) -> Tensor:
    """L1 between the local detail energies of a and b [B, C, H, W] (see `detail_energy`), averaged
    over bands; `weight` [B, 1, H, W] (>= 0) says where it counts (box-averaged down per band)."""
    total, n = a.new_zeros(()), 0
    w = weight
    for ea, eb in zip(detail_energy(a, levels), detail_energy(b, levels)):
        if w is not None and w.shape[-2:] != ea.shape[-2:]:
            w = _blur_down(w)
        total = total + masked_mean((ea - eb).abs(), w)
        n += 1
    return total / max(n, 1)


class PatchDiscriminator(nn.Module):
    """One PatchGAN: 4x4 stride-2 convs (spectral norm, leaky ReLU), then a 1-channel patch logit map.

    `forward(x [B, C, H, W]) -> list of feature maps`, the last being the logits [B, 1, h, w]."""

    def __init__(self, in_channels: int, width: int = 64, layers: int = 3):
        super().__init__()
        blocks, c = [], in_channels
        for i in range(layers):
            c_out = width * 2 ** min(i, 3)
            blocks.append(spectral_norm(nn.Conv2d(c, c_out, 4, stride=2, padding=1)))
            c = c_out
        blocks.append(spectral_norm(nn.Conv2d(c, c, 3, padding=1)))
        self.blocks = nn.ModuleList(blocks)
        self.out = spectral_norm(nn.Conv2d(c, 1, 3, padding=1))

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for b in self.blocks:
            x = F.leaky_relu(b(x), 0.2)
            feats.append(x)
        feats.append(self.out(x))
        return feats


class MultiScaleDiscriminator(nn.Module):
    """PatchGANs at full and half resolution (and more with `scales`).

    `forward(x) -> [features of scale 0, features of scale 1, ...]`, each a list ending in logits.
    With `detail_gain` > 0 each scale also sees its image's detail, `detail_gain * (x - box3(x))`, as
    channels of their own: the amount of fine detail is what tells a smeared or stretched generated frame
    from a photo, and a critic given only the image learns it far too slowly for this project's budget
    (on the CPU, photo crops against the same crops blurred: a logit gap of 0.03-0.13 after 100 updates
    with or without spectral norm, against 2.5-4.4 with the detail channels).
    With `cond_channels` K > 0 the critic is conditional: `forward(x, cond)` takes a vector cond [B, K] per
    image, seen at every scale as K constant channels (e.g. the colour statistics of the photo a generated
    frame should stay in: refine/train/photos.py `colour_condition`)."""

    def __init__(self, in_channels: int = 4, width: int = 48, scales: int = 2, layers: int = 3,
                 detail_gain: float = 0.0, cond_channels: int = 0):
        super().__init__()
        self.detail_gain = float(detail_gain)
        self.cond_channels = int(cond_channels)
        c = in_channels * (2 if self.detail_gain > 0 else 1) + self.cond_channels
        self.nets = nn.ModuleList([PatchDiscriminator(c, width, layers) for _ in range(scales)])

    def forward(self, x: Tensor, cond: Tensor | None = None) -> list[list[Tensor]]:
        if (cond is None) != (self.cond_channels == 0) or (cond is not None and cond.shape != (len(x), self.cond_channels)):
            raise ValueError(f"critic of {self.cond_channels} condition channels given cond "
                             f"{None if cond is None else tuple(cond.shape)} for {len(x)} images")
        outs = []
        for i, net in enumerate(self.nets):
            if i:
                x = _blur_down(x)
            h = self._with_detail(x)
            if cond is not None:
                h = torch.cat([h, cond.to(h.dtype)[..., None, None].expand(-1, -1, *h.shape[-2:])], 1)
            outs.append(net(h))
        return outs

    def _with_detail(self, x: Tensor) -> Tensor:
        """[B, C, H, W] -> [B, 2C, H, W] (x and its gained 3x3 high-pass), or x when detail_gain is 0."""
        if self.detail_gain <= 0:
            return x
        box = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        return torch.cat([x, self.detail_gain * (x - box)], 1)


def patch_mean(logits: Tensor, weight: Tensor | None) -> Tensor:
    """Mean of a patch map [B, 1, h, w]; with `weight` [B, 1, H, W] (>= 0, any resolution: area-pooled to the
    map's h x w) the weighted mean over all patches of the batch (0 when the weights are all 0)."""
    if weight is None:
        return logits.mean()
    w = F.adaptive_avg_pool2d(weight.to(logits.dtype), logits.shape[-2:])
    return (w * logits).sum() / w.sum().clamp_min(1e-6)


def d_hinge_loss(real: list[list[Tensor]], fake: list[list[Tensor]], real_weight: Tensor | None = None,
                 fake_weight: Tensor | None = None) -> Tensor:
    """Discriminator hinge loss, averaged over scales: relu(1 - D(real)) + relu(1 + D(fake)); with weights
    [B, 1, H, W] only (and in proportion to) the weighted patches count (`patch_mean`)."""
    return sum(patch_mean(F.relu(1 - r[-1]), real_weight) + patch_mean(F.relu(1 + f[-1]), fake_weight)
               for r, f in zip(real, fake)) / len(real)


def g_hinge_loss(fake: list[list[Tensor]], weight: Tensor | None = None) -> Tensor:
    """Generator hinge loss: -D(fake), averaged over scales (weighted by `weight` [B, 1, H, W]: `patch_mean`)."""
    return sum(-patch_mean(f[-1], weight) for f in fake) / len(fake)


def feature_matching_loss(fake: list[list[Tensor]], real: list[list[Tensor]]) -> Tensor:
    """L1 between the discriminator's intermediate features of fake and (detached) real images."""
    total, n = fake[0][0].new_zeros(()), 0
    for fs, rs in zip(fake, real):
        for f, r in zip(fs[:-1], rs[:-1]):
            total = total + (f - r.detach()).abs().mean()
            n += 1
    return total / max(n, 1)


def colour_moments(x: Tensor, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-image CIELAB mean and standard deviation of x [B, 3, H, W] (sRGB in [0, 1]) over the
    pixels weighted by weight [B, 1, H, W] (>= 0; None: all), each [B, 3] in units of 100 (L runs
    0..1). Differentiable."""
    from worldgen.core.metrics import rgb_to_lab

    lab = rgb_to_lab(x.float().permute(0, 2, 3, 1)).permute(0, 3, 1, 2) / 100.0
    w = x.new_ones(x.shape[0], 1, *x.shape[-2:]) if weight is None else weight.to(lab.dtype)
    ws = w.sum(dim=(2, 3)).clamp_min(1e-6)
    mean = (lab * w).sum(dim=(2, 3)) / ws
    var = (((lab - mean[..., None, None]) ** 2) * w).sum(dim=(2, 3)) / ws
    return mean, (var + 1e-6).sqrt()


def colour_moments_l1(a: Tensor, b: Tensor, weight: Tensor | None = None, min_share: float = 0.02,
                      b_weight: Tensor | None = None) -> Tensor:
    """L1 between the Lab means and spreads (`colour_moments`, units of 100) of a and b [B, 3, H, W],
    taken over weight [B, 1, H, W] (None: whole images; b over `b_weight` [B, 1, H, W] when given),
    averaged over images whose weighted share of the frame is at least `min_share` (in both, with
    `b_weight`; 0 if none). Phase-free: it asks a generated region to have the truth's colour
    statistics, not its pixels, so pushing saturation or a cast is not free the way it is under a
    critic that has not learnt colour yet."""
    ma, sa = colour_moments(a, weight)
    mb, sb = colour_moments(b, weight if b_weight is None else b_weight)
    per_image = ((ma - mb).abs() + (sa - sb).abs()).mean(1)
    if weight is None and b_weight is None:
        return per_image.mean()
    ok = torch.ones_like(per_image)
    for w in (weight, b_weight):
        if w is not None:
            ok = ok * (w.float().mean(dim=(1, 2, 3)) >= min_share).to(per_image.dtype)
    return (per_image * ok).sum() / ok.sum().clamp_min(1.0)


def band_energy_l1(a: Tensor, b: Tensor, levels: int = 3) -> Tensor:
    """|log| ratio of the whole-image detail of a and b [B, C, H, W], per Laplacian band (the mean
    |band| of each image), averaged over images and bands. Natural images are close to scale
    invariant: a frame far along a flight over a photo should hold about as much detail per band as
    the photo itself, whatever it shows, so this asks for the amount of texture, not its layout."""
    total, n = a.new_zeros(()), 0
    for ba, bb in zip(_bands(a.float(), levels), _bands(b.float(), levels)):
        ea = ba.abs().mean(dim=(1, 2, 3)) + 1e-3
        eb = bb.abs().mean(dim=(1, 2, 3)) + 1e-3
        total = total + (ea.log() - eb.log()).abs().mean()
        n += 1
    return total / max(n, 1)
