"""The weight-free image-statistics losses of refine/losses.py (colour moments, band energy)."""

import pytest
import torch

from refine.losses import band_energy_l1, colour_moments, colour_moments_l1
from worldgen.core.metrics import lab_stats


def _texture(seed: int, n: int = 2, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (0.3 + 0.4 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)


def test_colour_moments_match_the_lab_metric():
    x = _texture(0)
    mean, std = colour_moments(x)
    ref = lab_stats(x[1].permute(1, 2, 0)).float() / 100
    assert torch.allclose(mean[1], ref[:3], atol=1e-4)
    assert torch.allclose(std[1], ref[3:], atol=1e-3)


def test_colour_term_sees_a_cast_and_pulls_it_back():
    truth = _texture(1)
    assert float(colour_moments_l1(truth, truth)) < 1e-6
    green = truth.clone()
    green[:, 1] = (green[:, 1] + 0.25).clamp(0, 1)  # a green cast, same layout
    shuffled = truth.flatten(2)[:, :, torch.randperm(32 * 32)].reshape_as(truth)  # same colours, new layout
    assert float(colour_moments_l1(shuffled, truth)) < 1e-4  # phase-free
    assert float(colour_moments_l1(green, truth)) > 0.05
    x = green.clone().requires_grad_(True)
    colour_moments_l1(x, truth).backward()
    assert float(x.grad[:, 1].mean()) > 0  # descending the gradient removes green
    # a weighted region too small to judge counts for nothing
    w = torch.zeros(2, 1, 32, 32)
    w[:, :, :2, :2] = 1
    assert float(colour_moments_l1(green, truth, w)) == 0.0
    w[:, :, :16] = 1
    assert float(colour_moments_l1(green, truth, w)) > 0.05


def test_colour_term_with_its_own_weights_compares_a_generated_strip_with_the_photos_ground():
    """b_weight: a's region (a generated strip) against b's own region (the photo's ground): a blue strip over
    green ground is a cast however small a share of the frame it is; a strip in the ground's colours is not."""
    g = torch.Generator().manual_seed(4)
    photo = torch.zeros(2, 3, 32, 32)
    photo[:, :, :12] = torch.tensor([0.5, 0.7, 0.95])[None, :, None, None]  # sky
    photo[:, :, 12:] = torch.tensor([0.2, 0.45, 0.15])[None, :, None, None] + 0.1 * torch.rand(2, 3, 20, 32, generator=g)
    ground = torch.zeros(2, 1, 32, 32)
    ground[:, :, 12:] = 1
    strip = torch.zeros(2, 1, 32, 32)
    strip[:, :, 20:, :4] = 1  # 12 x 4 pixels: 5 % of the frame
    frame = photo.clone()
    assert float(colour_moments_l1(frame, photo, strip, b_weight=ground)) < 0.05  # the strip has the ground's colours
    frame[:, :, 20:, :4] = torch.tensor([0.15, 0.4, 0.95])[None, :, None, None]
    blue = float(colour_moments_l1(frame, photo, strip, b_weight=ground))
    assert blue > 0.2
    assert float(colour_moments_l1(frame, photo)) < blue / 4  # the whole frame's statistics hardly see it


def test_band_energy_asks_for_the_amount_of_detail_not_its_layout():
    sharp = _texture(2)
    other = _texture(3)  # different texture, same statistics
    blurred = torch.nn.functional.avg_pool2d(sharp, 5, stride=1, padding=2, count_include_pad=False)
    assert float(band_energy_l1(other, sharp)) < 0.1
    assert float(band_energy_l1(blurred, sharp)) > 1.0
    x = blurred.clone().requires_grad_(True)
    band_energy_l1(x, sharp).backward()
    assert x.grad.abs().sum() > 0


def test_a_critic_with_detail_channels_tells_a_blur_from_texture_quickly():
    """The photo critic's detail channels (MultiScaleDiscriminator detail_gain): within 40 updates it tells
    noise textures from the same textures blurred by a wide margin, where the image-only critic has hardly
    begun (measured on photo crops: logit gap 2.5-4.4 against 0.03-0.13 after 100 updates)."""
    import torch.nn.functional as F

    from refine.losses import MultiScaleDiscriminator, d_hinge_loss

    def blur(x):
        return F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), 5, stride=1)

    def texture(g, n=8):  # low-contrast detail over smooth colour, like ground in a photo
        base = F.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=(32, 32), mode="bilinear", align_corners=False)
        return (0.8 * base + 0.2 * torch.rand(n, 3, 32, 32, generator=g)).clamp(0, 1)

    gaps = {}
    for gain in (0.0, 8.0):
        torch.manual_seed(0)
        d = MultiScaleDiscriminator(in_channels=3, width=16, detail_gain=gain)
        opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.99))
        g = torch.Generator().manual_seed(1)
        for _ in range(40):
            loss = d_hinge_loss(d(texture(g)), d(blur(texture(g))))
            opt.zero_grad()
            loss.backward()
            opt.step()
        x = texture(torch.Generator().manual_seed(9))
        with torch.no_grad():
            gaps[gain] = float(d(x)[0][-1].mean() - d(blur(x))[0][-1].mean())
    assert gaps[8.0] > 1.0 and gaps[8.0] > 5 * max(gaps[0.0], 0.01), gaps


def test_weighted_hinge_losses_count_only_the_weighted_patches():
    """`patch_mean` weights (StillPhotoConfig.critic_generated): without weights the hinge losses are the plain
    means; with weights, patches of weight 0 do not count however wrong they are, the rest in proportion."""
    from refine.losses import d_hinge_loss, g_hinge_loss, patch_mean

    g = torch.Generator().manual_seed(0)
    real = [[torch.randn(2, 1, 8, 8, generator=g)], [torch.randn(2, 1, 4, 4, generator=g)]]
    fake = [[torch.randn(2, 1, 8, 8, generator=g)], [torch.randn(2, 1, 4, 4, generator=g)]]
    plain = sum(torch.relu(1 - r[-1]).mean() + torch.relu(1 + f[-1]).mean() for r, f in zip(real, fake)) / 2
    assert torch.allclose(d_hinge_loss(real, fake), plain)
    assert torch.allclose(g_hinge_loss(fake), -(fake[0][-1].mean() + fake[1][-1].mean()) / 2)
    w = torch.zeros(2, 1, 32, 32)
    w[:, :, :, 16:] = 1.0  # only the right half of the (32 x 32) frames was generated
    before = (d_hinge_loss(real, fake, None, w), g_hinge_loss(fake, w))
    for f in fake:  # anything on the left half does not count
        f[-1][..., : f[-1].shape[-1] // 2] = 50.0
    assert torch.allclose(d_hinge_loss(real, fake, None, w), before[0]) and torch.allclose(g_hinge_loss(fake, w), before[1])
    fake[0][-1][..., -1] += 1.0  # the right half does
    assert not torch.allclose(g_hinge_loss(fake, w), before[1])
    # an all-zero weight contributes nothing, and stays finite
    assert float(patch_mean(torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 16, 16))) == 0.0
    # weights are area shares: a patch half covered counts half
    logits = torch.tensor([[[[1.0, 3.0]]]])
    assert abs(float(patch_mean(logits, torch.tensor([[[[1.0, 1.0, 1.0, 0.0]]]]))) - (1 + 0.5 * 3) / 1.5) < 1e-6


def test_a_conditional_critic_learns_which_colours_belong_to_which_condition():
    """MultiScaleDiscriminator(cond_channels=K) (StillPhotoConfig.critic_condition): the condition [B, K] is
    required (and only then), changes the logits, and a critic trained on matched against mismatched pairs
    (photo_critic_loss's `wrong`) scores an image higher with its own condition than with another's."""
    from refine.losses import MultiScaleDiscriminator
    from refine.train.photos import photo_critic_loss

    torch.manual_seed(0)
    d = MultiScaleDiscriminator(in_channels=3, width=16, detail_gain=8.0, cond_channels=2)
    x = torch.rand(4, 3, 16, 16)
    with pytest.raises(ValueError, match="condition"):
        d(x)
    with pytest.raises(ValueError, match="condition"):
        d(x, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="condition"):
        MultiScaleDiscriminator(in_channels=3, width=16)(x, torch.zeros(4, 2))
    assert not torch.allclose(d(x, torch.zeros(4, 2))[0][-1], d(x, torch.ones(4, 2))[0][-1])

    g = torch.Generator().manual_seed(1)

    def pairs(n=8):  # reddish images with condition (1, 0), bluish ones with (0, 1)
        red = torch.rand(n, 1, generator=g) < 0.5
        base = torch.where(red[..., None, None], torch.tensor([0.7, 0.3, 0.2])[:, None, None],
                           torch.tensor([0.2, 0.3, 0.7])[:, None, None])
        img = (base + 0.1 * torch.rand(n, 3, 16, 16, generator=g)).clamp(0, 1)
        return img, torch.cat([red, ~red], 1).float()

    opt = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.99))
    for _ in range(60):
        real, c = pairs()
        fake, cf = pairs()
        loss = photo_critic_loss(d, real, fake.mean(1, keepdim=True).expand_as(fake), False, real_cond=c,
                                 fake_cond=cf, wrong=(real, 1 - c))
        opt.zero_grad()
        loss.backward()
        opt.step()
    real, c = pairs(16)
    with torch.no_grad():
        gap = float(d(real, c)[0][-1].mean() - d(real, 1 - c)[0][-1].mean())
    assert gap > 0.5, gap


def test_the_matching_aware_hinge_loss_keeps_2_as_chance():
    """With mismatched pairs the critic's fake side is the mean of the generated and the mismatched terms: a
    critic that answers 0 everywhere scores 2, as without them."""
    from refine.train.photos import photo_critic_loss

    class Zero(torch.nn.Module):
        def forward(self, x, cond=None):
            return [[torch.zeros(len(x), 1, 4, 4)]]

    x = torch.rand(2, 3, 8, 8)
    assert float(photo_critic_loss(Zero(), x, x, False)) == 2.0
    assert float(photo_critic_loss(Zero(), x, x, False, real_cond=torch.zeros(2, 6), fake_cond=torch.zeros(2, 6),
                                   wrong=(x, torch.ones(2, 6)))) == 2.0


def test_real_crops_made_poor_in_detail_are_extra_fakes_weighted_as_the_crops():
    """PhotoSource.degraded (StillPhotoConfig.critic_degraded): each crop blurred or upsampled from a quarter of its
    size (less detail, the same mean colour); photo_critic_loss takes several groups of such fakes, each weighted
    as the real crops, and an unconditional critic takes them without conditions."""
    from refine.train.photos import PhotoSource, photo_critic_loss
    from worldgen.core.anchor import detail_layer

    g = torch.Generator().manual_seed(0)
    crops = torch.rand(6, 3, 32, 32, generator=g)
    poor = PhotoSource.degraded(crops, g)
    detail = lambda x: detail_layer(x.permute(0, 2, 3, 1)).abs().mean(dim=(1, 2, 3))  # noqa: E731
    assert poor.shape == crops.shape and bool((detail(poor) < 0.5 * detail(crops)).all())
    assert torch.allclose(poor.mean(dim=(2, 3)), crops.mean(dim=(2, 3)), atol=0.02)

    class Left(torch.nn.Module):  # logit = +5 on the left half of every image, 0 on the right
        def forward(self, x, cond=None):
            out = torch.zeros(len(x), 1, 4, 4)
            out[..., :2] = 5.0
            return [[out]]

    right = torch.zeros(6, 1, 32, 32)
    right[..., 16:] = 1.0  # only the right halves count
    x = crops
    two_groups = (torch.cat([x, poor]), None)
    loss = photo_critic_loss(Left(), x, x, False, right, right, wrong=two_groups)
    assert float(loss) == 2.0  # every counted patch answers 0
