"""DAM speed goals, both sides timed in this one process (ratios, not absolute targets).

1. Training at K = 2000, n = 20, m = 30, minibatch 1000, float64: robustlib's update
   (shared overlap h, closed-form gradient, in-place integer powers) vs a straightforward NumPy
   implementation of the same update that builds the explicit on/off label states (10 "on" states
   per image) and differentiates them. Goal: >= 3x. Timed on ``BATCHES`` minibatches and
   extrapolated to one epoch (60 minibatches); both produce the same weights (checked).
2. Second-choice (decision-boundary) set generation: batched over all images with a per-image
   stopping rule vs one image at a time.
3. The integer power by repeated squaring (``dam.ipow`` on the CPU) vs ``torch.pow`` on a
   (1000, 100, 10) tensor, with one thread and with the default threads.

Run: ``.venv/bin/python bench/bench_dam.py`` (2-core CPU: a few minutes). The numbers depend on
the load of the machine; the ratios much less. ``--tiny`` (K = 200, one minibatch of 100, 4
boundary images of 30 steps, a small power tensor) only checks that the benchmark runs, in seconds.
"""

from __future__ import annotations

import argparse
import time

# isort: off
from robustlib import data  # first: robustlib sets OMP_WAIT_POLICY=PASSIVE before torch loads
from robustlib.papers.dam import model as dam

import numpy as np
import torch
# isort: on

K, N_MEM, M_POW, T = 2000, 20, 30, 540.0
BATCHES = 3
BATCH = 1000
BOUNDARY_IMAGES = 64
BOUNDARY_TRAIN = 10000  # training images of the one-epoch K = 100 model
BOUNDARY_STEPS = 300
POWER_SHAPE = (1000, 100, 10)
TINY = False  # --tiny: the goal is not judged


def numpy_step(xi: np.ndarray, vel: np.ndarray, v: np.ndarray, t: np.ndarray, lr: float, p: float) -> None:
    """One Krotov step written directly from eq. 2.1: explicit sigma^{on,alpha} and sigma^{off}."""
    B = v.shape[0]
    off = np.concatenate([v, -np.ones((B, 10))], axis=1)  # (B, 794)
    on = np.repeat(off[:, None, :], 10, axis=1)  # (B, 10, 794)
    on[:, np.arange(10), 784 + np.arange(10)] = 1.0
    on = on.reshape(B * 10, 794)
    a_on = np.maximum(on @ xi.T / T, 0.0)  # (B*10, K)
    a_off = np.maximum(off @ xi.T / T, 0.0)  # (B, K)
    f_on, f_off = a_on**N_MEM, a_off**N_MEM
    s = f_on.sum(1).reshape(B, 10) - f_off.sum(1)[:, None]
    Y = np.tanh(s)
    c = (t - Y) ** (2 * M_POW - 1) * (1 - Y * Y)  # (B, 10)
    d_on = a_on ** (N_MEM - 1) * c.reshape(B * 10, 1)
    d_off = a_off ** (N_MEM - 1) * c.sum(1, keepdims=True)
    G = d_on.T @ on - d_off.T @ off  # (K, 794)
    vel *= p
    vel += G
    scale = np.maximum(np.abs(vel).max(1, keepdims=True), 1e-30)
    xi += lr * vel / scale
    np.clip(xi, -1.0, 1.0, out=xi)


def bench_training() -> dict[str, float]:
    x, y = data.mnist("train")
    cfg = dam.DAMConfig(n=N_MEM, m=M_POW, K=K, T=T, batch_size=BATCH)
    model = dam.DAM.from_config(cfg, torch.Generator().manual_seed(0))
    xi_np = model.xi.numpy().copy()
    vel_np = np.zeros_like(xi_np)
    opt = dam.KrotovMomentum([model.xi], lr=cfg.eps0, momentum=cfg.momentum)
    batches = [(x[i * BATCH : (i + 1) * BATCH], y[i * BATCH : (i + 1) * BATCH]) for i in range(BATCHES)]

    t0 = time.perf_counter()
    for xb, yb in batches:
        G, _ = dam.update_direction(model.xi, dam.to_pm1(xb), yb, n=N_MEM, m=M_POW, T=T)
        model.xi.grad = G
        opt.step()
    ours = (time.perf_counter() - t0) / BATCHES

    t0 = time.perf_counter()
    for xb, yb in batches:
        numpy_step(xi_np, vel_np, dam.to_pm1(xb).numpy(), dam.targets(yb).numpy(), cfg.eps0, cfg.momentum)
    ref = (time.perf_counter() - t0) / BATCHES
    diff = float(np.abs(xi_np - model.xi.numpy()).max())
    return {"ours_s_per_batch": ours, "numpy_s_per_batch": ref, "max_weight_difference": diff}


def bench_boundary() -> dict[str, float]:
    x, y = data.mnist("train")
    cfg = dam.DAMConfig(n=20, m=30, K=100, T=300.0, epochs=1)
    model = dam.DAM.from_config(cfg, torch.Generator().manual_seed(0))
    dam.train_dam(model, cfg, x[:BOUNDARY_TRAIN], y[:BOUNDARY_TRAIN])
    xt, _ = data.mnist("test")
    v = dam.to_pm1(xt[:BOUNDARY_IMAGES])
    grad_fn = dam.dam_objective_grad(model)
    t0 = time.perf_counter()
    batched = dam.boundary_images(
        grad_fn, model.scores_pm1, v, step=0.1, max_steps=BOUNDARY_STEPS, batch_size=BOUNDARY_IMAGES
    )
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [
        dam.boundary_images(grad_fn, model.scores_pm1, v[i : i + 1], step=0.1, max_steps=BOUNDARY_STEPS, batch_size=1)
        for i in range(len(v))
    ]
    t_single = time.perf_counter() - t0
    same = all(torch.allclose(s["images"], batched["images"][i : i + 1], atol=1e-9) for i, s in enumerate(single))
    return {
        "batched_s": t_batched,
        "one_by_one_s": t_single,
        "images": len(v),
        "identical": same,
        "median_steps": float(batched["steps"].double().median()),
    }


def bench_ipow() -> dict[str, float]:
    r = torch.rand(*POWER_SHAPE, dtype=torch.float64) * 1.5
    out = {}
    default = torch.get_num_threads()
    for threads in sorted({1, default}):
        torch.set_num_threads(threads)
        times: dict[str, list[float]] = {"squaring": [], "torch.pow": []}
        for _ in range(5):  # interleaved, median: the machine's load drifts
            for name, fn in [("squaring", lambda: dam._pow_by_squaring(r, 19)), ("torch.pow", lambda: r.pow(19))]:
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        for name, ts in times.items():
            out[f"{name}@{threads}"] = sorted(ts)[len(ts) // 2]
    torch.set_num_threads(default)
    return out


def main() -> None:
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, float64")
    per_epoch = 60000 // BATCH
    tr = bench_training()
    bo = bench_boundary()
    pw = bench_ipow()
    rows = [
        (f"training, K={K} n=20, one minibatch of {BATCH} (s)", tr["ours_s_per_batch"], tr["numpy_s_per_batch"]),
        (
            f"  -> one epoch, {per_epoch} minibatches (s, extrapolated)",
            per_epoch * tr["ours_s_per_batch"],
            per_epoch * tr["numpy_s_per_batch"],
        ),
        (f"boundary set, {bo['images']} images, K=100 n=20 (s)", bo["batched_s"], bo["one_by_one_s"]),
    ]
    for key in sorted(k for k in pw if k.startswith("squaring@")):
        th = key.split("@")[1]
        rows.append((f"x^19 on {POWER_SHAPE} float64, {th} thread(s) (s)", pw[key], pw[f"torch.pow@{th}"]))
    print(f"{'measurement':52s} {'robustlib':>10s} {'reference':>10s} {'speed-up':>9s}")
    for name, a, b in rows:
        print(f"{name:52s} {a:10.3f} {b:10.3f} {b / a:8.1f}x")
    print("reference = NumPy explicit on/off states | one image at a time | torch.pow (robustlib: squaring)")
    print(
        f"training: max |weight difference| after {BATCHES} steps = {tr['max_weight_difference']:.2e}; "
        f"boundary: identical images = {bo['identical']}, median steps {bo['median_steps']:.0f}"
    )
    ok = tr["numpy_s_per_batch"] / tr["ours_s_per_batch"] >= 3
    if TINY:
        print("tiny sizes: a check that the benchmark runs, not a measurement (goal not judged)")
    else:
        print("goal (training >= 3x faster than NumPy):", "met" if ok else "NOT met")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="small sizes: a check that the benchmark runs (seconds)")
    if ap.parse_args().tiny:
        K, BATCHES, BATCH, BOUNDARY_IMAGES, BOUNDARY_TRAIN, BOUNDARY_STEPS = 200, 1, 100, 4, 1000, 30
        POWER_SHAPE, TINY = (100, 20, 10), True
    main()
