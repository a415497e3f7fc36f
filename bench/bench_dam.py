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
the load of the machine; the ratios much less.
"""

from __future__ import annotations

import time

from robustlib import data  # first: robustlib sets OMP_WAIT_POLICY=PASSIVE before torch loads
from robustlib.models import dam

import numpy as np
import torch

K, N_MEM, M_POW, T = 2000, 20, 30, 540.0
BATCHES = 3
BATCH = 1000


def numpy_step(xi: np.ndarray, vel: np.ndarray, v: np.ndarray, t: np.ndarray, lr: float, p: float) -> None:
    """One Krotov step written directly from eq. 2.1: explicit sigma^{on,alpha} and sigma^{off}."""
    B = v.shape[0]
    off = np.concatenate([v, -np.ones((B, 10))], axis=1)  # (B, 794)
    on = np.repeat(off[:, None, :], 10, axis=1)  # (B, 10, 794)
    on[:, np.arange(10), 784 + np.arange(10)] = 1.0
    on = on.reshape(B * 10, 794)
    a_on = np.maximum(on @ xi.T / T, 0.0)  # (B*10, K)
    a_off = np.maximum(off @ xi.T / T, 0.0)  # (B, K)
    f_on, f_off = a_on ** N_MEM, a_off ** N_MEM
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
    cfg = dam.DAMConfig(n=N_MEM, m=M_POW, K=K, T=T)
    model = dam.DAM.from_config(cfg, torch.Generator().manual_seed(0))
    xi_np = model.xi.numpy().copy()
    vel_np = np.zeros_like(xi_np)
    opt = dam.KrotovMomentum([model.xi], lr=cfg.eps0, momentum=cfg.momentum)
    batches = [(x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH]) for i in range(BATCHES)]

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
    dam.train_dam(model, cfg, x[:10000], y[:10000])
    xt, _ = data.mnist("test")
    v = dam.to_pm1(xt[:64])
    grad_fn = dam.dam_objective_grad(model)
    t0 = time.perf_counter()
    batched = dam.boundary_images(grad_fn, model.scores_pm1, v, step=0.1, max_steps=300, batch_size=64)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [dam.boundary_images(grad_fn, model.scores_pm1, v[i:i + 1], step=0.1, max_steps=300, batch_size=1)
              for i in range(len(v))]
    t_single = time.perf_counter() - t0
    same = all(torch.allclose(s["images"], batched["images"][i:i + 1], atol=1e-9) for i, s in enumerate(single))
    return {"batched_s": t_batched, "one_by_one_s": t_single, "images": len(v), "identical": same,
            "median_steps": float(batched["steps"].double().median())}


def bench_ipow() -> dict[str, float]:
    r = torch.rand(1000, 100, 10, dtype=torch.float64) * 1.5
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
    tr = bench_training()
    bo = bench_boundary()
    pw = bench_ipow()
    rows = [
        ("training, K=2000 n=20, one minibatch of 1000 (s)", tr["ours_s_per_batch"], tr["numpy_s_per_batch"]),
        ("  -> one epoch, 60 minibatches (s, extrapolated)", 60 * tr["ours_s_per_batch"], 60 * tr["numpy_s_per_batch"]),
        (f"boundary set, {bo['images']} images, K=100 n=20 (s)", bo["batched_s"], bo["one_by_one_s"]),
    ]
    for key in sorted(k for k in pw if k.startswith("squaring@")):
        th = key.split("@")[1]
        rows.append((f"x^19 on (1000, 100, 10) float64, {th} thread(s) (s)", pw[key], pw[f"torch.pow@{th}"]))
    print(f"{'measurement':52s} {'robustlib':>10s} {'reference':>10s} {'speed-up':>9s}")
    for name, a, b in rows:
        print(f"{name:52s} {a:10.3f} {b:10.3f} {b / a:8.1f}x")
    print("reference = NumPy explicit on/off states | one image at a time | torch.pow (robustlib: squaring)")
    print(f"training: max |weight difference| after {BATCHES} steps = {tr['max_weight_difference']:.2e}; "
          f"boundary: identical images = {bo['identical']}, median steps {bo['median_steps']:.0f}")
    ok = 60 * tr["numpy_s_per_batch"] / (60 * tr["ours_s_per_batch"]) >= 3
    print("goal (training >= 3x faster than NumPy):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
