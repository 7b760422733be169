"""Milliseconds per forward pass of the learned refiner and the depth network (benchmark, not a test).

    python scripts/bench_nets.py --device cuda --sizes 256 512      # bf16 autocast on CUDA
    python scripts/bench_nets.py --device cpu --sizes 256           # float32, the machine's threads
    python scripts/bench_nets.py --formats contiguous channels_last --train 8   # both memory layouts, and a
                                                                    # training step (forward + backward, batch 8)

Prints one line per (network, size): median of timed passes after warm-up (synchronised on CUDA).
Random weights of the shipped shapes (the speed does not depend on the values).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from refine.depthnet import DEPTH_NET
from refine.net import IN_CHANNELS, DepthNet, RefinerNet, RefinerNetConfig, count_parameters


def bench(net: torch.nn.Module, cin: int, size: int, device: torch.device, reps: int, batch: int = 1,
          train: bool = False, memory_format: torch.memory_format = torch.contiguous_format) -> float:
    """Median milliseconds of one pass of `net` over a (batch, cin, size, size) input in `memory_format` (the net
    converted likewise), inference under no_grad, or with `train` forward + backward of the outputs' mean."""
    net = net.to(memory_format=memory_format)
    x = torch.rand(batch, cin, size, size, device=device).contiguous(memory_format=memory_format)
    cuda = device.type == "cuda"
    times = []
    with torch.set_grad_enabled(train), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
        for i in range(reps + 3):
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = net(x)
            if train:
                outs = out if isinstance(out, (tuple, list)) else (out.values() if isinstance(out, dict) else [out])
                sum(o.float().mean() for o in outs if torch.is_tensor(o)).backward()
            if cuda:
                torch.cuda.synchronize()
            if i >= 3:
                times.append(time.perf_counter() - t0)
    net.zero_grad(set_to_none=True)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--formats", nargs="+", default=["contiguous"], choices=["contiguous", "channels_last"],
                    help="memory layouts of input and weights to time (channels_last: NHWC, cuDNN's native bf16 layout)")
    ap.add_argument("--train", type=int, default=0, metavar="B",
                    help="also time a training step (forward + backward) at batch B")
    a = ap.parse_args()
    formats = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    dev = torch.device(a.device)
    nets = {"refiner": (RefinerNet(RefinerNetConfig()), IN_CHANNELS), "depth": (DepthNet(DEPTH_NET), 3)}
    print(f"device {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"{'bf16 autocast' if dev.type == 'cuda' else 'float32'}")
    for name, (net, cin) in nets.items():
        net = net.to(dev).eval()
        for s in a.sizes:
            for f in a.formats:
                line = f"{name:8s} {count_parameters(net):>10,} params  {s}x{s} {f:13s}: " \
                       f"{bench(net, cin, s, dev, a.reps, memory_format=formats[f]):8.2f} ms"
                if a.train:
                    line += f"   train batch {a.train}: " \
                            f"{bench(net.train(), cin, s, dev, a.reps, a.train, True, formats[f]):8.2f} ms"
                    net.eval()
                print(line)


if __name__ == "__main__":
    main()
