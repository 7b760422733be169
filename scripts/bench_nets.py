"""Milliseconds per forward pass of the learned refiner and the depth network (benchmark, not a test).

    python scripts/bench_nets.py --device cuda --sizes 256 512      # bf16 autocast on CUDA
    python scripts/bench_nets.py --device cpu --sizes 256           # float32, the machine's threads

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


def bench(net: torch.nn.Module, cin: int, size: int, device: torch.device, reps: int) -> float:
    x = torch.rand(1, cin, size, size, device=device)
    cuda = device.type == "cuda"
    times = []
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
        for i in range(reps + 3):
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            net(x)
            if cuda:
                torch.cuda.synchronize()
            if i >= 3:
                times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    dev = torch.device(a.device)
    nets = {"refiner": (RefinerNet(RefinerNetConfig()), IN_CHANNELS), "depth": (DepthNet(DEPTH_NET), 3)}
    print(f"device {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"{'bf16 autocast' if dev.type == 'cuda' else 'float32'}")
    for name, (net, cin) in nets.items():
        net = net.to(dev).eval()
        for s in a.sizes:
            print(f"{name:8s} {count_parameters(net):>10,} params  {s}x{s}: {bench(net, cin, s, dev, a.reps):8.2f} ms")


if __name__ == "__main__":
    main()
