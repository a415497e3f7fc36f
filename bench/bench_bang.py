"""BANG training-step cost vs a regular step, measured in one run (ratios, not absolute times).

Goal: a BANG step costs at most 1.5x a regular step. Measured for one Caffe LeNet
(``fit`` step hooks ``bang_step`` vs the default step) and for a stack of K LeNets trained as one
network (``LeNetStack`` with and without BANG configs), batch 64, CPU (or the GPU if visible).
Timings interleave the variants and report medians, which keeps the ratio meaningful on a
shared machine; absolute times there are inflated by other processes.

    .venv/bin/python bench/bench_bang.py [--repeats 7] [--steps 10] [--k 8] [--tiny]

``--tiny`` (1 repeat of 2 steps, K = 2) only checks that the benchmark runs (``make test``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from robustlib import train
from robustlib.papers.bang import model as bang
from robustlib.papers.baselines.model import LeNet


def make_plain(config: bang.BangConfig | None, device: str):
    torch.manual_seed(0)
    model = LeNet(0.5).to(device).train()
    opt = bang.LENET_SOLVER.optimizer(model.weight_parameters(), model.bias_parameters())
    step = bang.bang_step(config) if config is not None else train.default_step(torch.nn.functional.cross_entropy)
    return model, opt, step


def make_stack(k: int, bang_on: bool, device: str):
    configs = [bang.BangConfig(1.0, 0.815)] * k if bang_on else None
    model = bang.LeNetStack.from_lenets(bang.init_lenets([0] * k), 0.5, configs).to(device).train()
    opt = bang.LENET_SOLVER.optimizer(model.weight_parameters(), model.bias_parameters())
    return model, opt, bang.stack_step()


def time_steps(model, opt, step, batches, device: str) -> float:
    for b in batches[:2]:  # warm-up
        step(model, b, opt)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for b in batches:
        step(model, b, opt)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / len(batches)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--tiny", action="store_true", help="1 repeat of 2 steps, K = 2: a check that it runs")
    args = p.parse_args()
    if args.tiny:
        args.repeats, args.steps, args.k = 1, 2, 2
    from robustlib.data import mnist
    from robustlib.profiles import resolve_device

    device = resolve_device(args.device)
    x, y = mnist("train")
    batches = [
        train.Batch(x[i * 64 : (i + 1) * 64].to(device), y[i * 64 : (i + 1) * 64].to(device), i, 0)
        for i in range(args.steps)
    ]
    variants = {
        "LeNet regular": lambda: make_plain(None, device),
        "LeNet BANG": lambda: make_plain(bang.BangConfig(1.0, 0.815), device),
        f"stack K={args.k} regular": lambda: make_stack(args.k, False, device),
        f"stack K={args.k} BANG": lambda: make_stack(args.k, True, device),
    }
    built = {name: make() for name, make in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):  # interleaved: contention hits every variant alike
        for name, (model, opt, step) in built.items():
            times[name].append(time_steps(model, opt, step, batches, device))
    med = {name: statistics.median(t) for name, t in times.items()}
    single = med[f"stack K={args.k} regular"] / args.k
    print(f"BANG step cost on {device} (median of {args.repeats} x {args.steps} steps, batch 64)")
    print(f"{'variant':24s} {'ms/step':>9s} {'ratio':>7s}")
    rows = [
        ("LeNet regular", 1.0),
        ("LeNet BANG", med["LeNet BANG"] / med["LeNet regular"]),
        (f"stack K={args.k} regular", 1.0),
        (f"stack K={args.k} BANG", med[f"stack K={args.k} BANG"] / med[f"stack K={args.k} regular"]),
    ]
    for name, ratio in rows:
        print(f"{name:24s} {1000 * med[name]:9.2f} {ratio:7.3f}")
    print(f"stack per model vs one LeNet (regular): {single / med['LeNet regular']:.3f}")
    worst = max(rows[1][1], rows[3][1])
    print(f"goal: BANG/regular <= 1.5 -> {'met' if worst <= 1.5 else 'NOT met'} (worst {worst:.3f})")


if __name__ == "__main__":
    main()
