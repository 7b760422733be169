"""Can a photo critic tell photos from blurred photos, and how fast? (BENCHMARKS.md, "Why the photo critic never
left chance".)

    .venv/bin/python scripts/critic_check.py [--detail 8] [--lr 2e-4] [--updates 100] [--weights RUN/checkpoint.pt]

Trains `refine.losses.MultiScaleDiscriminator` (RGB, the still-photo critic's design; `--detail G` adds its
detail channels) with the hinge loss on random crops of ../shared/data/photos against other crops blurred
(5x5 box, twice), and prints every 25 updates the logit gap real - blur at each scale on a fixed held-out batch
(the hinge margin is 1). `--weights` starts from a training checkpoint's photo critic instead, and with
`--updates 0` only measures it (also on crops upsampled 4x); `--casts` then also prints its mean logit per scale on
the held-out crops with colour changes (casts, exposure, saturation, grey) beside photo and blur: does it judge
colour or only detail? `--condition` trains the conditional critic (StillPhotoConfig.critic_condition: each
image with its photo's colour statistics, and real crops with another photo's statistics or a colour change as
extra fakes: refine/train/photos.py photo_critic_loss) and measures every variant with its own photo's statistics.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from refine.losses import MultiScaleDiscriminator, d_hinge_loss  # noqa: E402
from refine.train.config import StillPhotoConfig  # noqa: E402
from refine.train.photos import PhotoSource, photo_critic_loss  # noqa: E402
from worldgen.core.anchor import detail_layer  # noqa: E402


def blur(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] -> the same, 5x5 box blur twice (replicate padding: worldgen.core.anchor.detail_layer's blur)."""
    return x - detail_layer(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", default="../shared/data/photos")
    ap.add_argument("--detail", type=float, default=0.0, help="detail-channel gain (0: the image only)")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--updates", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--weights", default=None, help="a refiner training checkpoint whose photo critic to start from")
    ap.add_argument("--casts", action="store_true", help="after training, the logits of colour-changed crops")
    ap.add_argument("--condition", action="store_true", help="a conditional critic (the photo's colour statistics)")
    args = ap.parse_args()
    torch.manual_seed(0)
    src = PhotoSource(StillPhotoConfig(folder=args.photos), args.size, args.size, torch.device("cpu"))
    d = MultiScaleDiscriminator(in_channels=3, detail_gain=args.detail, cond_channels=6 if args.condition else 0)
    if args.weights:
        blob = torch.load(args.weights, map_location="cpu", weights_only=False)
        d.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["disc_photo"].items()})
        print(f"critic of {args.weights} (step {blob['step']})")
    opt = torch.optim.Adam(d.parameters(), lr=args.lr, betas=(0.5, 0.99))
    held, held_which = src.crops(2 * args.batch, torch.Generator().manual_seed(99))
    c_held = src.colour_condition(held_which) if args.condition else None

    def report(it: int, loss: float | None) -> None:
        with torch.no_grad():
            real, soft = d(held, c_held), d(blur(held), c_held)
            up = d(F.interpolate(F.interpolate(held, scale_factor=0.25, mode="area"), size=held.shape[-2:], mode="bilinear"),
                   c_held)
        gap = [round(float(r[-1].mean() - b[-1].mean()), 3) for r, b in zip(real, soft)]
        gap_up = [round(float(r[-1].mean() - u[-1].mean()), 3) for r, u in zip(real, up)]
        extra = "" if loss is None else f"  hinge {loss:.3f}"
        print(f"update {it:4d}{extra}  gap real-blur per scale {gap}  real-upsampled {gap_up}  ({time.time() - t0:.0f} s)", flush=True)

    g = torch.Generator().manual_seed(3)
    t0 = time.time()
    report(0, None)
    for it in range(1, args.updates + 1):
        if args.condition:
            real, which = src.crops(args.batch, g)
            fake, fake_which = src.crops(args.batch, g)
            loss = photo_critic_loss(d, real, blur(fake), False, real_cond=src.colour_condition(which),
                                     fake_cond=src.colour_condition(fake_which),
                                     wrong=src.mismatched(real, which, g))
        else:
            loss = d_hinge_loss(d(src.crops(args.batch, g)[0]), d(blur(src.crops(args.batch, g)[0])))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 25 == 0 or it == args.updates:
            report(it, float(loss.detach()))
    if args.casts:
        grey = held.mean(1, keepdim=True)
        shift = lambda r, g, b: (held + torch.tensor([r, g, b])[None, :, None, None]).clamp(0, 1)  # noqa: E731
        variants = {"photo": held, "blur": blur(held), "blue +0.1": shift(-0.05, 0.0, 0.1),
                    "yellow +0.1": shift(0.05, 0.05, -0.1), "darker x0.7": held * 0.7,
                    "brighter x1.3": (held * 1.3).clamp(0, 1), "saturation 50%": grey + (held - grey) * 0.5,
                    "saturation 150%": (grey + (held - grey) * 1.5).clamp(0, 1), "grey": grey.expand_as(held)}
        with torch.no_grad():
            for name, x in variants.items():
                print(f"{name:16s} mean logit per scale {[round(float(s[-1].mean()), 3) for s in d(x, c_held)]}")
            if args.condition:
                other = src.colour_condition(src.other_photos(held_which, torch.Generator().manual_seed(5)))
                print(f"{'other photo cond':16s} mean logit per scale {[round(float(s[-1].mean()), 3) for s in d(held, other)]}")


if __name__ == "__main__":
    main()
