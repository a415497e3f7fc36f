"""The yardstick's cost: wall time of each attack of ``robustlib.protocol`` on standard networks.

Trains (seconds) a 784-256-10 ReLU MLP and Caffe's LeNet on 10,000 MNIST images, then runs the
whole protocol at the ``quick`` budget (200 images, both norms, every attack, transfer from a
second MLP) on each with ONE torch thread, and prints the wall time per attack and norm, the
medians and the accuracies at the thresholds. One thread: on the shared 2-core machines two
single-threaded evaluations side by side beat one evaluation split over both cores.

Run: ``.venv/bin/python bench/bench_protocol.py [--profile quick] [--models mlp,lenet] [--tiny]``.
``--tiny`` (smoke budget, 8 images, the MLP) only checks that the benchmark runs. The numbers
depend on the machine's load (printed before and after).
"""

from __future__ import annotations

import argparse
import os
import time

# isort: off
from robustlib import data, protocol, train  # first: robustlib sets OMP_WAIT_POLICY=PASSIVE before torch loads
from robustlib.papers.baselines.model import MLP, LeNet

import torch
# isort: on


def trained(kind: str, seed: int, n: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    x, y = data.mnist("train")
    model = MLP(hidden=(256,)) if kind == "mlp" else LeNet()
    train.fit(
        model,
        x[:n],
        y[:n],
        epochs=2 if kind == "mlp" else 1,
        batch_size=50,
        seed=seed,
        optimizer=torch.optim.Adam(model.parameters(), 1e-3),
        progress=False,
    )
    return model.eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"))
    p.add_argument("--models", default="mlp,lenet", help="comma-separated: mlp, lenet")
    p.add_argument("--tiny", action="store_true", help="smoke budget, 8 images, the MLP: a check that it runs")
    args = p.parse_args()
    models = ["mlp"] if args.tiny else args.models.split(",")
    bad = sorted(set(models) - {"mlp", "lenet"})
    if bad:
        raise SystemExit(f"unknown model(s) {bad}; valid: mlp, lenet")
    config = (
        protocol.ProtocolConfig.for_profile("smoke", n_images=8)
        if args.tiny
        else protocol.ProtocolConfig.for_profile(args.profile)
    )
    torch.set_num_threads(1)
    n_train = 1000 if args.tiny else 10000
    source = trained("mlp", 1, n_train)
    x, y = protocol.protocol_images(config)
    print(f"profile {config.profile}: {len(x)} images, 1 torch thread, load average {os.getloadavg()[0]:.1f}")
    for kind in models:
        model = trained(kind, 0, n_train)
        wall, cpu = time.perf_counter(), time.process_time()
        result = protocol.evaluate(protocol.Adapter(kind, model), x, y, config, source=source, progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"\n{kind}: clean {result.clean_accuracy:.1%}, protocol {wall:.1f} s wall, {cpu:.1f} s CPU")
        for norm in result.norms:
            print(
                f"  {norm}: median {result.median(norm):.3f}, accuracy "
                + ", ".join(f"{t:g}: {a:.1%}" for t, a in result.at_thresholds(norm).items())
                + f", strongest {result.strongest(norm)}"
            )
            for attack, seconds in result.seconds[norm].items():
                median = result.median(norm, attack)
                print(f"    {attack:10s} {seconds:7.2f} s   median {median:.3f}")
        print(f"  flags: {[f'{f.norm} {f.kind}' for f in result.flags()] or 'none'}")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
