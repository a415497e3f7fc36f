"""ABS inference: batched over images x classes vs a per-image loop, measured in one run.

Goal: the batched inference is at least 10x faster than a straightforward per-image
loop; report images/second at the full settings (8000 prior samples, 50 Adam steps).

Three implementations of the same numbers (the tests check they agree):
  * ``loop``      ``abs.reference_scores``: for each image, for each class, best bank sample, then
                  torch.optim.Adam on one z (1, 8) through that class's decoder (batch size 1);
  * ``per-image`` ``ABS.infer`` called on one image at a time (classes batched, as the authors'
                  code batches its ten VAEs per image);
  * ``batched``   ``ABS.infer`` on a batch of images (all images x classes at once).
The decoded bank is built once and shared (its one-off cost is reported separately). Weights are
random (the cost does not depend on them). On a shared machine absolute times are inflated by
other processes; the ratios are measured in the same process, interleaved, medians of repeats.

    .venv/bin/python bench/bench_abs.py [--batch 64] [--loop-images 2] [--repeats 3] [--quick-only] [--tiny]

``--tiny`` (40 samples, 2 steps, 4 images, 1 repeat) only checks that the benchmark runs; the goal
is not judged.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from robustlib import data
from robustlib.papers.abs import model as A


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench(n_samples: int, steps: int, *, batch: int, loop_images: int, repeats: int, device: str) -> dict:
    torch.manual_seed(0)
    vaes = A.ClassVAEs().eval()
    cfg = A.ABSConfig(n_samples=n_samples, steps=steps)
    t = time.perf_counter()
    model = A.ABS(vaes.to(device), cfg).to(device)
    bank_s = time.perf_counter() - t
    x = data.mnist("test")[0][:batch].to(device)
    dec = A.class_decoder(vaes)
    bank = list(model.bank_x.cpu())  # the reference uses the same decoded bank (C x (S, 784))
    model.infer(x[:2])  # warm-up (allocator, oneDNN primitives)

    def run_loop():
        A.reference_scores(dec, model.bank_z.cpu(), x[:loop_images].cpu(), cfg, bank=bank)

    def run_per_image():
        for i in range(loop_images):
            model.infer(x[i : i + 1])

    def run_batched():
        model.infer(x)

    t_loop = t_per = t_batch = 0.0
    for _ in range(repeats):  # interleaved: contention hits all three alike
        t_loop += timed(run_loop, 1) / loop_images
        t_per += timed(run_per_image, 1) / loop_images
        t_batch += timed(run_batched, 1) / batch
    t_loop, t_per, t_batch = t_loop / repeats, t_per / repeats, t_batch / repeats
    return {
        "samples": n_samples,
        "steps": steps,
        "bank_s": bank_s,
        "loop": t_loop,
        "per_image": t_per,
        "batched": t_batch,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--loop-images", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--quick-only", action="store_true", help="only the quick settings (800 samples, 10 steps)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--tiny", action="store_true", help="tiny sizes: a check that the benchmark runs (seconds)")
    args = p.parse_args()  # `python -m robustlib bench abs --args ...` passes its options here
    settings = [(800, 10)] + ([] if args.quick_only else [(8000, 50)])
    if args.tiny:
        settings, args.batch, args.loop_images, args.repeats = [(40, 2)], 4, 1, 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"device {args.device}, torch threads {torch.get_num_threads()}, load average {load:.1f} "
        f"on {os.cpu_count()} cores; batch {args.batch}, loop over {args.loop_images} images"
    )
    rows = [
        bench(s, k, batch=args.batch, loop_images=args.loop_images, repeats=args.repeats, device=args.device)
        for s, k in settings
    ]
    head = (
        f"{'samples':>7} {'steps':>5} | {'loop s/img':>10} {'per-image s/img':>15} {'batched s/img':>13} | "
        f"{'loop/batched':>12} {'per-image/batched':>17} | {'batched img/s':>13} | {'bank decode s':>13}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['samples']:>7} {r['steps']:>5} | {r['loop']:>10.3f} {r['per_image']:>15.3f} {r['batched']:>13.4f} | "
            f"{r['loop'] / r['batched']:>11.1f}x {r['per_image'] / r['batched']:>16.1f}x | "
            f"{1 / r['batched']:>13.1f} | {r['bank_s']:>13.1f}"
        )
    if args.tiny:
        print("tiny sizes: a check that the benchmark runs, not a measurement (goal not judged)")
        return
    full = rows[-1]
    print(
        f"goal >= 10x vs the per-image loop: {'met' if full['loop'] / full['batched'] >= 10 else 'NOT met'} "
        f"({full['loop'] / full['batched']:.1f}x at {full['samples']} samples / {full['steps']} steps)"
    )


if __name__ == "__main__":
    main()
