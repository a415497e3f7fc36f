"""Benchmark of the fast RBFI layer (issue goals), every figure measured in this one run.

A 784 -> 512 RBFI layer at batch 100, forward + backward (dL/dw, dL/du; the first layer of a
network needs no dL/dx), against
  * the naive broadcast version (the reference code's (B, out, in) tensor): goal >= 20x faster and
    <= 1/8 of its peak memory;
  * ``nn.Linear(784, 512)`` forward + backward: goal within 15x.
Then one training step of the paper's 512^-512v-512^-10v network (AdaDelta + clamping), fast vs
naive, and the resulting time per epoch (600 batches) and per 30 epochs.

Times are medians over interleaved repetitions (both sides suffer the same machine load). Peak
memory is measured in a fresh child process per variant: the rise of the peak resident set size
(VmHWM, reset through /proc/self/clear_refs) over the resident size before the call.

Run: ``.venv/bin/python bench/bench_rbfi.py`` (``--quick``: fewer repetitions; ``--gpu-only``: the
GPU section alone, Triton kernels vs chunked PyTorch vs naive vs ``nn.Linear`` and the epoch time
of the 512^3 network, to size the ``paper`` profile; ``--tiny``: every code path at toy sizes in
seconds, for the tests: its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

from robustlib.papers.rbfi import kernel
from robustlib.papers.rbfi import model as rbfi
from robustlib.train import Batch

B, N_IN, N_OUT = 100, 784, 512  # the first layer of the paper's network at batch 100
HIDDEN = (512, 512, 512)  # the paper's network (training step)


def use_tiny_sizes() -> None:
    """Toy sizes (``--tiny``): the same code paths in seconds."""
    global B, N_IN, N_OUT, HIDDEN
    B, N_IN, N_OUT, HIDDEN = 8, 784, 16, (16, 16, 16)


def _net_name() -> str:
    return "-".join(f"{w}{c}" for w, c in zip((*HIDDEN, 10), "^v^v"))


def _tensors(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, N_IN, generator=g)
    w = torch.rand(N_OUT, N_IN, generator=g).requires_grad_(True)
    u = (torch.rand(N_OUT, N_IN, generator=g) * 0.5 + 0.2).requires_grad_(True)
    return x, w, u


def _steps(x, w, u, lin):
    """Closures for one forward + backward step: ``rbfi(mode, backend)`` and ``linear``."""

    def rbfi(mode, backend):
        def run():
            w.grad = u.grad = None
            torch.exp(-kernel.scaled_linf(x, w, u, mode, backend)).sum().backward()

        return run

    def linear():
        lin.zero_grad(set_to_none=True)
        lin(x).sum().backward()

    return rbfi, linear


def variants():
    x, w, u = _tensors()
    rbfi, linear = _steps(x, w, u, torch.nn.Linear(N_IN, N_OUT))
    out = {
        "naive (broadcast, pseudo)": rbfi("pseudo", "naive"),
        "nn.Linear": linear,
        "chunked PyTorch (pseudo)": rbfi("pseudo", "chunked"),
    }
    if kernel.load_library() is not None:
        out = {"fast kernel (pseudo)": rbfi("pseudo", "kernel"), "fast kernel (true)": rbfi("true", "kernel"), **out}
    return out


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise OSError(field)


def child_memory(name: str) -> None:
    """Run one variant once (after a warm-up) and print the rise of the peak RSS in MB."""
    run = variants()[name]
    run()  # warm-up: kernel loaded, thread pool started, allocator primed
    before = _rss_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current RSS
    run()
    print(json.dumps({"peak_mb": max(0, _rss_kb("VmHWM") - before) / 1024}))


def peak_memory_mb(name: str) -> float | None:
    try:
        tiny = ["--tiny"] if B != 100 else []
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", name, *tiny],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]
    except (subprocess.SubprocessError, OSError, ValueError, KeyError):
        return None


def time_variants(reps: int, naive_reps: int) -> dict[str, float]:
    vs = variants()
    for run in vs.values():
        run()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in vs}
    for r in range(reps):
        for k, run in vs.items():
            if k.startswith("naive") and r >= naive_reps:
                continue
            t = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def train_step_times(reps: int) -> dict[str, float]:
    """One training step (batch 100) of 512^-512v-512^-10v: fast backend vs naive broadcast."""
    torch.manual_seed(0)
    net = rbfi.build("rbfi", HIDDEN, "^v^v")
    opt = torch.optim.Adadelta(net.parameters(), lr=5.0)
    step = rbfi.make_step(rbfi.TrainConfig(), "rbfi")
    x, y = torch.rand(B, 1, 28, 28), torch.randint(0, 10, (B,))
    out = {}
    for backend, n in (("auto", reps), ("naive", 2)):
        net.set_backend(backend)
        step(net, Batch(x, y, 0, 0), opt)  # warm-up
        ts = []
        for i in range(n):
            t = time.perf_counter()
            step(net, Batch(x, y, i, 0), opt)
            ts.append(time.perf_counter() - t)
        out[backend] = statistics.median(ts)
    return out


def gpu_section(reps: int) -> None:
    """The same layer on the GPU (when there is one): Triton kernels vs chunked PyTorch vs naive vs
    nn.Linear, and a 512^3 training step -> epoch time. CUDA events would be finer; synchronised
    wall-clock medians are enough for ratios of milliseconds."""
    if not torch.cuda.is_available():
        print("\nno GPU here: GPU section skipped")
        return
    dev = torch.device("cuda")
    x, w, u = (t.detach().to(dev) for t in _tensors())
    w.requires_grad_(True)
    u.requires_grad_(True)
    rbfi, linear = _steps(x, w, u, torch.nn.Linear(N_IN, N_OUT).to(dev))
    vs = {"naive": rbfi("pseudo", "naive"), "chunked": rbfi("pseudo", "chunked"), "nn.Linear": linear}
    if kernel._triton_usable(x):
        vs = {"triton (pseudo)": rbfi("pseudo", "triton"), "triton (true)": rbfi("true", "triton"), **vs}
    else:
        print("Triton kernels unusable on this GPU: 'auto' uses the chunked PyTorch backend")
    times = {}
    for k, run in vs.items():
        run()
        torch.cuda.synchronize()
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            run()
            torch.cuda.synchronize()
            ts.append(time.perf_counter() - t)
        times[k] = statistics.median(ts)
    print(f"\nGPU {torch.cuda.get_device_name(dev)}: RBFI layer {N_IN} -> {N_OUT}, batch {B}, forward + backward")
    for k, v in times.items():
        print(
            f"  {k:18s} {1e3 * v:8.3f} ms  {times['naive'] / v:7.1f}x vs naive  {v / times['nn.Linear']:6.1f}x vs Linear"
        )
    torch.manual_seed(0)
    net = rbfi.build("rbfi", HIDDEN, "^v^v").to(dev)
    opt = torch.optim.Adadelta(net.parameters(), lr=5.0)
    step = rbfi.make_step(rbfi.TrainConfig(), "rbfi")
    xb, yb = torch.rand(B, 1, 28, 28, device=dev), torch.randint(0, 10, (B,), device=dev)
    for backend in ("auto", "chunked") if "triton (pseudo)" in times else ("chunked",):
        net.set_backend(backend)
        step(net, Batch(xb, yb, 0, 0), opt)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for i in range(20):
            step(net, Batch(xb, yb, i, 0), opt)
        torch.cuda.synchronize()
        v = (time.perf_counter() - t) / 20
        print(
            f"  {_net_name()} training step ({backend}): {1e3 * v:.2f} ms -> {600 * v:.1f} s/epoch, "
            f"{30 * 600 * v / 60:.1f} min per 30 epochs"
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--memory-child")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--gpu-only", action="store_true", help="only the GPU section")
    p.add_argument("--tiny", action="store_true", help="toy sizes, 2 repetitions: seconds (numbers mean nothing)")
    args = p.parse_args()
    if args.tiny:
        use_tiny_sizes()
    if args.memory_child:
        child_memory(args.memory_child)
        return
    reps, naive_reps = (2, 1) if args.tiny else (7, 2) if args.quick else (21, 5)
    if args.gpu_only:
        gpu_section(reps)
        return
    print(
        f"RBFI layer {N_IN} -> {N_OUT}, batch {B}, forward + backward; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"CPU backend: {kernel.kernel_status()}")
    t = time_variants(reps, naive_reps)
    fast = "fast kernel (pseudo)" if "fast kernel (pseudo)" in t else "chunked PyTorch (pseudo)"
    measured = (fast, "naive (broadcast, pseudo)") if args.tiny else tuple(t)  # a child process each
    mem = {k: peak_memory_mb(k) if k in measured else None for k in t}
    naive, lin = t["naive (broadcast, pseudo)"], t["nn.Linear"]
    print(f"\n{'variant':28s} {'ms':>9s} {'vs naive':>9s} {'vs Linear':>10s} {'peak MB':>8s}")
    for k, v in t.items():
        m = "n/a" if mem[k] is None else f"{mem[k]:.1f}"
        print(f"{k:28s} {1e3 * v:9.2f} {naive / v:8.1f}x {v / lin:9.1f}x {m:>8s}")
    speed, vs_lin = naive / t[fast], t[fast] / lin
    mem_ratio = (
        (mem[fast] / mem["naive (broadcast, pseudo)"])
        if mem[fast] is not None and mem["naive (broadcast, pseudo)"]
        else None
    )
    print(f"\ngoals ({fast}):")
    print(f"  speed-up over naive     {speed:7.1f}x   (goal >= 20x)   {'met' if speed >= 20 else 'NOT met'}")
    if mem_ratio is not None:
        print(
            f"  peak memory vs naive    {mem_ratio:7.3f}    (goal <= 0.125) {'met' if mem_ratio <= 0.125 else 'NOT met'}"
        )
    print(f"  time vs nn.Linear       {vs_lin:7.1f}x   (goal <= 15x)   {'met' if vs_lin <= 15 else 'NOT met'}")
    steps = train_step_times(2 if args.tiny else 5 if args.quick else 11)
    print(f"\ntraining step of {_net_name()} (batch {B}, AdaDelta, clamping):")
    for k, v in steps.items():
        name = "fast" if k == "auto" else "naive"
        print(
            f"  {name:6s} {1e3 * v:9.1f} ms/step  -> {600 * v:8.1f} s/epoch, {30 * 600 * v / 3600:6.2f} h per 30 epochs"
        )
    gpu_section(reps)


if __name__ == "__main__":
    main()
