"""The BANG notebook's experiments, each one cached in the artifact store and keyed by the full
profile, so the notebook (papermill) and a headless GPU run compute exactly the same artifacts:

    python -m robustlib.models.bang_experiments --profile paper --device cuda

* ``table1_models``: the Table 1 LeNets (R0, R1, B0-B5) trained together in one ``LeNetStack``,
  with snapshots of R0 and B1 every ``snapshot_every`` iterations for the noise experiment
  (Fig. 3), which runs right after training (the snapshots are not stored, the flip rates are).
* ``table1_attacks``: FGS and HC1 line searches with PASS and L-inf, blank gradients, masking check.
* ``grid``: the (beta, eps) grid of Fig. 2 (+ one regular model as the reference level).
* ``beyond``: attacks that do not trust the model's gradient, R0 vs B1 (PGD on a margin loss from
  a random start, Boundary, transfer from R0), medians of minimal L-inf / L2 perturbations.
* ``cifar``: Table 2 and Figs. 4-5 where CIFAR-10 can be loaded (``None`` otherwise).
"""

from __future__ import annotations

import argparse
import math
import shutil
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ... import attacks, data, store, train
from ..profiles import Profile
from . import evaluation as ev
from .model import (CIFAR_SOLVER, LENET_SOLVER, REGULAR, BangConfig, CifarQuick, LeNetStack, bang_step,
                   init_lenets, load_snapshots, scaled_solver, stack_accuracy, stack_predict, train_stack)
from ..baselines.model import LeNet

NOTEBOOK = "bang"

# --- the paper's settings and numbers (Tables 1 and 2) -----------------------------------------

TABLE1: dict[str, BangConfig] = {
    "R0": REGULAR, "R1": REGULAR,
    "B0": BangConfig(1.00, 0.785), "B1": BangConfig(1.00, 0.815), "B2": BangConfig(1.20, 0.810),
    "B3": BangConfig(1.35, 0.780), "B4": BangConfig(1.50, 0.840), "B5": BangConfig(1.60, 0.780),
}
TABLE2: dict[str, BangConfig] = {
    "R0": REGULAR, "R1": REGULAR,
    "B0": BangConfig(0.40, 0.855, 0.5), "B1": BangConfig(0.45, 0.805, 0.5), "B2": BangConfig(0.75, 0.800, 0.5),
    "B3": BangConfig(0.75, 0.845, 0.5), "B4": BangConfig(0.95, 0.840, 0.5), "B5": BangConfig(1.00, 0.800, 0.5),
}
_COLS = ("acc", "fgs_rate", "fgs_pass", "fgs_pass_std", "fgs_linf", "fgs_linf_std",
         "hc1_rate", "hc1_pass", "hc1_pass_std", "hc1_linf", "hc1_linf_std")


def _rows(text: str) -> dict[str, dict[str, float]]:
    out = {}
    for line in text.strip().splitlines():
        name, *vals = line.split()
        out[name] = dict(zip(_COLS, map(float, vals)))
    return out


# Table 1 (LeNet/MNIST): accuracy %, FGS rate %, PASS mean std, Linf mean std, HC1 likewise.
PAPER_TABLE1 = _rows("""
R0 99.16 90.33 0.4072 0.1081 40.51 15.72 99.53 0.7535 0.1143 122.60 49.46
R1 99.15 91.41 0.4072 0.1065 40.70 15.88 99.77 0.7517 0.1160 122.16 49.07
B0 99.16 3.51 0.6806 0.1457 8.34 4.32 95.13 0.5359 0.2023 187.86 63.66
B1 99.22 1.68 0.7638 0.1367 5.52 2.86 94.19 0.4880 0.2110 201.84 62.51
B2 99.31 2.13 0.7579 0.1452 5.57 3.05 94.56 0.5129 0.2015 186.10 63.77
B3 99.25 3.86 0.6763 0.1471 8.28 4.26 94.73 0.5709 0.2127 178.11 65.76
B4 99.11 1.52 0.8220 0.1310 4.19 3.01 97.68 0.4669 0.1881 203.50 58.97
B5 99.32 4.45 0.6771 0.1487 8.20 4.40 98.95 0.6376 0.1829 146.96 61.97
""")
PAPER_TABLE2 = _rows("""
R0 79.59 96.52 0.9553 0.0969 4.08 6.40 98.97 0.9669 0.1005 18.15 29.80
R1 79.55 96.71 0.9513 0.1057 4.43 7.05 98.91 0.9557 0.1332 22.16 39.77
B0 79.26 34.27 0.9511 0.1302 4.11 10.31 95.94 0.8712 0.1649 55.52 49.98
B1 80.43 45.94 0.9818 0.0548 2.04 2.49 96.20 0.7966 0.2438 77.34 71.20
B2 79.74 41.71 0.9828 0.0586 1.94 3.03 98.34 0.8362 0.2195 64.26 63.57
B3 79.41 35.00 0.9526 0.1266 3.94 8.71 96.54 0.8603 0.1981 59.83 58.28
B4 79.30 34.88 0.9575 0.1236 3.61 9.60 96.87 0.8994 0.1487 48.44 47.35
B5 79.22 41.34 0.9803 0.0722 2.03 3.64 98.17 0.8586 0.1948 61.14 61.23
""")
# Figs. 3 and 5: % of noisy copies that change the label at the strongest noise, end of training.
PAPER_NOISE = {"lenet": {"sigma": 100, "R0": 20.0, "B1": 3.0}, "cifar": {"sigma": 40, "R0": 46.0, "B0": 39.1}}


def init_seed(seed: int, row: str) -> int:
    """Initial weights: every model of one experiment starts from the same weights (seed), except
    R1, the second regular run, which uses seed + 1 (the paper's R0/R1 differ by their seeds)."""
    return seed + 1 if row == "R1" else seed


def _key(prof: Profile, **extra: Any) -> dict[str, Any]:
    return {"profile": prof.asdict(), **extra}


def _fresh_checkpoint(name: str, config: dict[str, Any], prof: Profile, seed: int, retrain: bool):
    ckpt = store.checkpoint_dir(name, config, notebook=NOTEBOOK, profile=prof.name, seed=seed)
    if retrain and ckpt.exists():
        shutil.rmtree(ckpt)
    return ckpt


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(msg, flush=True)


# --- data --------------------------------------------------------------------------------------

def mnist_data(prof: Profile) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The paper's split: 50k training / 10k validation (the last 10k of the training file) and the
    10k test set; ``prof.n_train`` takes the first n of the 50k."""
    x, y = data.mnist("train")
    (xtr, ytr), (xva, yva) = data.split_validation(x, y, 10_000)
    xtr, ytr = data.first(xtr, ytr, prof.n_train)
    xte, yte = data.mnist("test")
    return {"train": (xtr, ytr), "val": (xva, yva), "test": (xte, yte)}


def _val(prof: Profile, d) -> tuple[torch.Tensor, torch.Tensor] | None:
    return data.first(*d["val"], prof.n_val) if prof.n_val else None


# --- Table 1 models and Fig. 3 -----------------------------------------------------------------

def snapshot_iterations(prof: Profile) -> list[int]:
    if not prof.snapshot_every:
        return []
    its = list(range(prof.snapshot_every, prof.iterations + 1, prof.snapshot_every))
    return its if its and its[-1] == prof.iterations else its + [prof.iterations]


def table1_models(prof: Profile, *, seed: int = 0, device: str = "cpu", retrain: bool = False,
                  progress: bool = True) -> dict[str, Any]:
    """Train the Table 1 rows of ``prof`` (one stack) and run the noise experiment on R0/B1.

    Returns {"states": {row: LeNet state}, "test_acc": {row: acc}, "history": [...],
    "noise": {...} or None}."""
    rows = list(prof.table_rows)
    unknown = set(rows) - set(TABLE1)
    if unknown:
        raise ValueError(f"unknown Table 1 rows {sorted(unknown)}; valid: {', '.join(TABLE1)}")
    solver = scaled_solver(LENET_SOLVER, prof.iterations)
    config = _key(prof, rows=rows, configs={r: TABLE1[r].__dict__ for r in rows}, solver=solver.__dict__,
                  init={r: init_seed(seed, r) for r in rows})
    noise_rows = [r for r in ("R0", "B1") if r in rows] if prof.snapshot_every else []

    def compute() -> dict[str, Any]:
        d = mnist_data(prof)
        ckpt = _fresh_checkpoint("table1-models", config, prof, seed, retrain)
        stack = LeNetStack.from_lenets(init_lenets([init_seed(seed, r) for r in rows]), 0.5,
                                       [TABLE1[r] for r in rows])
        t0 = time.perf_counter()
        history = train_stack(stack, *d["train"], solver=solver, seed=seed, device=device, checkpoint=ckpt,
                              snapshot_every=prof.snapshot_every,
                              snapshot_models=[rows.index(r) for r in noise_rows], val=_val(prof, d),
                              progress=progress, desc="table1")
        train_s = time.perf_counter() - t0
        acc = stack_accuracy(stack, *d["test"], device=device)
        out = {"states": {r: stack.lenet_state(i) for i, r in enumerate(rows)},
               "test_acc": {r: acc[i].item() for i, r in enumerate(rows)}, "history": history,
               "train_seconds": train_s, "noise": None}
        if len(noise_rows) == 2:
            t0 = time.perf_counter()
            out["noise"] = noise_experiment(prof, ckpt / "snapshots", [rows.index(r) for r in noise_rows],
                                            noise_rows, d["test"], seed=seed, device=device)
            out["noise"]["seconds"] = time.perf_counter() - t0
        return out

    return store.cached("table1-models", config, compute, notebook=NOTEBOOK, profile=prof.name, seed=seed,
                        device=device, retrain=retrain)


def lenet_from(result: dict[str, Any], row: str) -> LeNet:
    m = LeNet(0.5)
    m.load_state_dict(result["states"][row])
    return m.eval()


def noise_experiment(prof: Profile, snapshot_dir, model_index: Sequence[int], names: Sequence[str],
                     test: tuple[torch.Tensor, torch.Tensor], *, seed: int, device: str) -> dict[str, Any]:
    """Fig. 3: flip rates (checkpoint x sigma) of two models on images both classify correctly at
    every checkpoint (``noise_per_class`` per class from the first ``noise_pool`` test images)."""
    its = snapshot_iterations(prof)
    states = [s for i in model_index for s in load_snapshots(snapshot_dir, its, i)]
    stack = LeNetStack.from_states(states).to(device).eval()  # K = 2 * checkpoints
    x, y = data.first(*test, prof.noise_pool)
    correct_all = (stack_predict(stack, x, device=device) == y[None]).all(0)
    sel = ev.select_per_class(correct_all, y, prof.noise_per_class, seed)
    rates = ev.noise_flip_rates(lambda imgs: stack_predict(stack, imgs, device=device), x[sel], y[sel],
                                prof.noise_sigmas, draws=prof.noise_draws, seed=seed,
                                batch_images=_noise_batch(stack.k, device), device=device)
    rates = rates.reshape(len(model_index), len(its), len(prof.noise_sigmas))
    return {"iterations": its, "sigmas": list(prof.noise_sigmas), "images": len(sel),
            "per_class": torch.bincount(y[sel], minlength=10), **{n: rates[i] for i, n in enumerate(names)}}


def _noise_batch(k: int, device: str) -> int:
    return max(64, (2 ** 27 if device.startswith("cuda") else 2 ** 25) // (k * 20 * 24 * 24))


# --- Table 1 attacks ---------------------------------------------------------------------------

def _attack_batch(device: str) -> int:
    return 5000 if str(device).startswith("cuda") else 500


def table1_attacks(prof: Profile, models: dict[str, torch.nn.Module], *, seed: int = 0, device: str = "cpu",
                   retrain: bool = False, progress: bool = True, keep: int = 16) -> dict[str, Any]:
    """FGS and HC1 on the first ``n_attack`` test images for every Table 1 row, PASS on successes,
    the masking check on FGS's blank-gradient failures; ``keep`` adversarials per attack for Fig. 1."""
    config = _key(prof, rows=list(models), keep=keep)

    def compute() -> dict[str, Any]:
        x, y = data.first(*data.mnist("test"), prof.n_attack)
        out: dict[str, Any] = {}
        for row, model in models.items():
            t0 = time.perf_counter()
            res = {}
            for method in ("fgs", "hc1"):
                r = ev.attack(model, x, y, method=method, max_steps=prof.max_steps, device=device,
                              batch_size=_attack_batch(device), keep_adversarials=True)
                res[method] = r.to_dict(keep_adversarials=keep)
                res[f"{method}_summary"] = r.summary()
                if method == "fgs":
                    res["masking"] = ev.masking_check(model, x, y, r, max_steps=prof.max_steps, device=device)
            res["seconds"] = time.perf_counter() - t0
            _log(progress, f"attacks {row}: {res['seconds']:.1f} s, FGS {res['fgs_summary']['rate']:.3f}, "
                           f"HC1 {res['hc1_summary']['rate']:.3f}")
            out[row] = res
        return out

    return store.cached("table1-attacks", config, compute, notebook=NOTEBOOK, profile=prof.name, seed=seed,
                        device=device, retrain=retrain)


# --- Fig. 2: the (beta, eps) grid --------------------------------------------------------------

def grid(prof: Profile, *, seed: int = 0, device: str = "cpu", retrain: bool = False,
         progress: bool = True) -> dict[str, Any]:
    """Train one model per (beta, eps) of the profile's grid plus a regular reference (model 0),
    all from the same initial weights, for ``grid_iterations``; accuracy on ``grid_n_acc`` test
    images, FGS rate and blank count, HC1 rate, mean PASS and L-inf on ``grid_n_attack``."""
    betas, epss = list(prof.grid_betas), list(prof.grid_epsilons)
    configs = [REGULAR] + [BangConfig(b, e) for b in betas for e in epss]
    solver = scaled_solver(LENET_SOLVER, prof.grid_iterations)
    config = _key(prof, solver=solver.__dict__)

    def compute() -> dict[str, Any]:
        d = mnist_data(prof)
        ckpt = _fresh_checkpoint("grid", config, prof, seed, retrain)
        stack = LeNetStack.from_lenets(init_lenets([seed] * len(configs)), 0.5, configs)
        t0 = time.perf_counter()
        history = train_stack(stack, *d["train"], solver=solver, seed=seed, device=device, checkpoint=ckpt,
                              val=_val(prof, d), progress=progress, desc="grid")
        train_s = time.perf_counter() - t0
        acc = stack_accuracy(stack, *data.first(*d["test"], prof.grid_n_acc), device=device)
        xa, ya = data.first(*d["test"], prof.grid_n_attack)
        keys = ("fgs_rate", "fgs_blank", "hc1_rate", "hc1_pass", "hc1_linf")
        vals = {k: torch.zeros(len(configs), dtype=torch.float64) for k in keys}
        t0 = time.perf_counter()
        for i in range(len(configs)):
            model = stack.lenet(i)
            f = ev.attack(model, xa, ya, method="fgs", max_steps=prof.max_steps, device=device,
                          batch_size=_attack_batch(device), with_pass=False).summary()
            h = ev.attack(model, xa, ya, method="hc1", max_steps=prof.max_steps, device=device,
                          batch_size=_attack_batch(device)).summary()
            vals["fgs_rate"][i], vals["fgs_blank"][i] = f["rate"], f["blank"] / max(f["attacked"], 1)
            vals["hc1_rate"][i], vals["hc1_pass"][i], vals["hc1_linf"][i] = h["rate"], h["pass_mean"], h["linf_mean"]
        attack_s = time.perf_counter() - t0
        shape = (len(betas), len(epss))
        out = {"betas": betas, "epsilons": epss, "history": history, "train_seconds": train_s,
               "attack_seconds": attack_s, "acc": acc[1:].reshape(shape), "regular": {"acc": acc[0].item()}}
        for k, v in vals.items():
            out[k] = v[1:].reshape(shape)
            out["regular"][k] = v[0].item()
        return out

    return store.cached("grid", config, compute, notebook=NOTEBOOK, profile=prof.name, seed=seed,
                        device=device, retrain=retrain)


# --- beyond the paper --------------------------------------------------------------------------

def beyond(prof: Profile, models: dict[str, torch.nn.Module], *, seed: int = 0, device: str = "cpu",
           retrain: bool = False, progress: bool = True) -> dict[str, Any]:
    """Per-image minimal perturbations of R0 and B1 under attacks that do not trust the
    cross-entropy gradient, on the first ``beyond_n`` test images:

    L-inf: the paper's FGS and HC1 line searches; PGD with the cross-entropy and with the logit
    margin from a random start (grid ``linf_grid``, ``pgd_restarts`` restarts); transfer of R0's
    PGD direction (B1 only). L2: PGD on the margin (grid ``l2_grid``), Boundary (decision-based,
    first ``boundary_n`` images), transfer. Distances in [0, 1] pixel units.
    """
    if "R0" not in models:
        raise ValueError("beyond needs the R0 model (the transfer source)")
    config = _key(prof, rows=list(models))

    def compute() -> dict[str, Any]:
        x, y = data.first(*data.mnist("test"), prof.beyond_n)
        out: dict[str, Any] = {}
        for row, model in models.items():
            t0 = time.perf_counter()
            res: dict[str, Any] = {}
            for method in ("fgs", "hc1"):
                r = ev.attack(model, x, y, method=method, max_steps=prof.max_steps, device=device,
                              batch_size=_attack_batch(device), with_pass=False)
                res[f"{method}_line"] = r.distances()
            for loss in ("ce", "margin"):
                r = attacks.min_distance(model, x, y, attack="pgd_torch", epsilons=list(prof.linf_grid), loss=loss,
                                         steps=prof.pgd_steps, restarts=prof.pgd_restarts, device=device, seed=seed,
                                         batch_size=_attack_batch(device))
                res[f"pgd_{loss}"] = r.distances
            r = attacks.min_distance(model, x, y, attack="pgd_torch", norm="l2", epsilons=list(prof.l2_grid),
                                     loss="margin", steps=prof.pgd_steps, restarts=prof.pgd_restarts, device=device,
                                     seed=seed, batch_size=_attack_batch(device))
            res["pgd_l2_margin"] = r.distances
            nb = min(prof.boundary_n, len(x))
            r = attacks.min_distance(model, x[:nb], y[:nb], attack="boundary", steps=prof.boundary_steps,
                                     device=device, seed=seed, batch_size=_attack_batch(device))
            res["boundary_l2"] = r.distances
            if row != "R0":
                for norm in ("linf", "l2"):
                    r = attacks.min_distance(model, x, y, attack="transfer", source=models["R0"], norm=norm,
                                             source_eps=0.3 if norm == "linf" else 3.0, steps=prof.pgd_steps,
                                             device=device, seed=seed, batch_size=_attack_batch(device))
                    res[f"transfer_{norm}"] = r.distances
            res["seconds"] = time.perf_counter() - t0
            _log(progress, f"beyond {row}: {res['seconds']:.1f} s")
            out[row] = res
        return out

    return store.cached("beyond", config, compute, notebook=NOTEBOOK, profile=prof.name, seed=seed,
                        device=device, retrain=retrain)


LINF_ATTACKS = ("fgs_line", "hc1_line", "pgd_ce", "pgd_margin", "transfer_linf")
L2_ATTACKS = ("pgd_l2_margin", "boundary_l2", "transfer_l2")


def strongest(res: dict[str, Any], names: Sequence[str]) -> torch.Tensor:
    """Per image, the smallest distance over the attacks present; an attack run on fewer images
    (Boundary: the first ``boundary_n``) counts as inf on the others."""
    have = [res[n].to(torch.float64) for n in names if n in res]
    n = max(len(t) for t in have)
    padded = [torch.cat([t, torch.full((n - len(t),), math.inf, dtype=torch.float64)]) for t in have]
    return torch.stack(padded).amin(0)


# --- CIFAR-10 (Table 2, Figs. 4 and 5) ---------------------------------------------------------

def synthetic_cifar(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A CIFAR-shaped stand-in for tests: (n, 3, 32, 32) in [0, 1] on the grey-level grid; each
    class has its own mean colour and a bright square at a class-specific place, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    colours = torch.rand(10, 3, 1, 1, generator=g) * 0.6 + 0.2
    x = colours[y] + 0.15 * torch.randn(n, 3, 32, 32, generator=g)
    for c in range(10):
        r, col = 2 + 3 * (c // 4), 2 + 7 * (c % 4)
        x[y == c, :, r:r + 6, col:col + 6] += 0.3
    return torch.round(x.clamp(0, 1) * 255) / 255, y


def cifar(prof: Profile, train_data: tuple[torch.Tensor, torch.Tensor] | None,
          test_data: tuple[torch.Tensor, torch.Tensor] | None, *, seed: int = 0, device: str = "cpu",
          retrain: bool = False, progress: bool = True, dataset: str = "cifar10") -> dict[str, Any] | None:
    """Table 2 rows, the optional Fig. 4 grid and Fig. 5 (R0 vs B0 noise) on CIFAR-10 quick.

    Returns ``None`` (nothing computed, nothing stored) when the data are missing: this machine
    class cannot download CIFAR-10. ``dataset`` names the data in the store key (tests pass a
    synthetic stand-in). Models are trained one after the other with ``fit`` + ``bang_step``.
    """
    if train_data is None or test_data is None:
        return None
    rows = {r: TABLE2[r] for r in prof.cifar_rows}
    for b in prof.cifar_grid_betas:
        for e in prof.cifar_grid_epsilons:
            rows[f"G{b:.2f}-{e:.3f}"] = BangConfig(b, e, 0.5)
    solver = scaled_solver(CIFAR_SOLVER, prof.cifar_iterations)
    config = _key(prof, dataset=dataset, n_train=len(train_data[0]), n_test=len(test_data[0]),
                  solver=solver.__dict__, rows={r: c.__dict__ for r, c in rows.items()})
    noise_rows = [r for r in ("R0", "B0") if r in rows] if prof.cifar_snapshot_every else []

    def compute() -> dict[str, Any]:
        xtr, ytr = train_data
        mean = xtr.mean(0)  # (3, 32, 32) the training-set mean image (Caffe's mean file)
        xa, ya = data.first(*test_data, prof.cifar_n_attack)
        out: dict[str, Any] = {"rows": {}, "solver": solver.__dict__}
        snaps: dict[str, list[dict[str, torch.Tensor]]] = {}
        for row, cfg in rows.items():
            torch.manual_seed(init_seed(seed, row))
            model = CifarQuick(mean)
            every = prof.cifar_snapshot_every if row in noise_rows else 0
            states: list[dict[str, torch.Tensor]] = []
            step = _snapshotting(bang_step(cfg) if not cfg.regular else None, every, states)
            t0 = time.perf_counter()
            history = train.fit(model, xtr, ytr, epochs=math.ceil(solver.iterations / math.ceil(len(xtr) / solver.batch_size)),
                                batch_size=solver.batch_size, seed=seed,
                                optimizer=solver.optimizer(model.weight_parameters(), model.bias_parameters()),
                                step=step, lr_lambda=solver.lr_factor, max_iterations=solver.iterations,
                                device=device, progress=progress, desc=f"cifar {row}")
            model.eval()
            res: dict[str, Any] = {"history": history, "train_seconds": time.perf_counter() - t0,
                                   "acc": train.accuracy(model, *test_data, device=device), "config": cfg.__dict__}
            for method in ("fgs", "hc1"):
                r = ev.attack(model, xa, ya, method=method, max_steps=prof.max_steps, device=device,
                              batch_size=_attack_batch(device), keep_adversarials=True)
                res[f"{method}_summary"] = r.summary()
                if row in ("R0", "B0"):
                    res[method] = r.to_dict(keep_adversarials=8)
            if row in noise_rows:
                snaps[row] = states
            out["rows"][row] = res
            _log(progress, f"cifar {row}: acc {res['acc']:.4f}, FGS {res['fgs_summary']['rate']:.3f}")
        if len(noise_rows) == 2:
            out["noise"] = _cifar_noise(prof, snaps, noise_rows, mean, test_data, seed=seed, device=device)
        return out

    return store.cached("cifar", config, compute, notebook=NOTEBOOK, profile=prof.name, seed=seed,
                        device=device, retrain=retrain)


def _snapshotting(inner: train.StepFn | None, every: int, states: list[dict[str, torch.Tensor]]) -> train.StepFn:
    """Wrap a ``fit`` step: keep a CPU copy of the model's state every ``every`` updates."""
    base = inner or train.default_step(torch.nn.functional.cross_entropy)

    def step(model, batch, optimizer):
        stats = base(model, batch, optimizer)
        if every and (batch.iteration + 1) % every == 0:
            states.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        return stats

    return step


def _cifar_noise(prof: Profile, snaps, names, mean, test_data, *, seed: int, device: str) -> dict[str, Any]:
    models = []
    for n in names:
        for s in snaps[n]:
            m = CifarQuick(mean)
            m.load_state_dict(s)
            models.append(m.to(device).eval())

    @torch.no_grad()
    def predict(imgs: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(imgs.to(device)).argmax(1).cpu() for m in models])

    x, y = data.first(*test_data, prof.noise_pool)
    correct_all = torch.cat([(predict(x[i:i + 500]) == y[None, i:i + 500]) for i in range(0, len(x), 500)], 1).all(0)
    sel = ev.select_per_class(correct_all, y, prof.cifar_noise_per_class, seed)
    rates = ev.noise_flip_rates(predict, x[sel], y[sel], prof.cifar_noise_sigmas, draws=prof.noise_draws, seed=seed,
                                batch_images=2000, device=device)
    per = len(snaps[names[0]])
    rates = rates.reshape(len(names), per, len(prof.cifar_noise_sigmas))
    its = [prof.cifar_snapshot_every * (i + 1) for i in range(per)]
    return {"iterations": its, "sigmas": list(prof.cifar_noise_sigmas), "images": len(sel),
            **{n: rates[i] for i, n in enumerate(names)}}


# --- everything, headless (the GPU run) --------------------------------------------------------

def run_all(prof: Profile, *, seed: int = 0, device: str = "cpu", retrain: bool = False,
            progress: bool = True) -> dict[str, float]:
    """Compute every artifact the notebook uses at this profile; returns wall seconds per part."""
    times: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - t0
        _log(progress, f"== {name}: {times[name]:.1f} s")
        return out

    t1 = timed("table1_models", lambda: table1_models(prof, seed=seed, device=device, retrain=retrain,
                                                      progress=progress))
    models = {r: lenet_from(t1, r) for r in t1["states"]}
    timed("table1_attacks", lambda: table1_attacks(prof, models, seed=seed, device=device, retrain=retrain,
                                                   progress=progress))
    timed("grid", lambda: grid(prof, seed=seed, device=device, retrain=retrain, progress=progress))
    pair = {r: models[r] for r in ("R0", "B1") if r in models}
    if "R0" in pair:
        timed("beyond", lambda: beyond(prof, pair, seed=seed, device=device, retrain=retrain, progress=progress))
    tr, te = data.cifar10("train"), data.cifar10("test")
    if tr is None or te is None:
        _log(progress, "CIFAR-10 cannot be loaded on this machine: Table 2 and Figs. 4-5 skipped")
    else:
        timed("cifar", lambda: cifar(prof, tr, te, seed=seed, device=device, retrain=retrain, progress=progress))
    return times


def main(argv: Sequence[str] | None = None) -> int:
    from ... import profiles

    p = argparse.ArgumentParser(description="Compute the BANG notebook's artifacts without Jupyter.")
    p.add_argument("--profile", default="paper", choices=profiles.PROFILE_NAMES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--retrain", action="store_true")
    args = p.parse_args(argv)
    prof, dev = profiles.setup("bang", args.profile, args.seed, args.device)
    t0 = time.perf_counter()
    times = run_all(prof, seed=args.seed, device=dev, retrain=args.retrain)
    for k, v in times.items():
        print(f"{k:16s} {v:8.1f} s")
    print(f"total            {time.perf_counter() - t0:8.1f} s on {store.device_name(dev)}")
    return 0


# --- the scorecard (verdicts computed from the measured numbers, spec bang.md §9) ---------------

def _pct(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f} %"


def _verdict(full: bool, some: bool) -> str:
    return "reproduced" if full else "partly" if some else "not reproduced"


def rate_drop(s0: dict[str, Any], s1: dict[str, Any]) -> tuple[float, float]:
    """(rate0 - rate1, its binomial standard error) for two attack summaries (``rate`` over
    ``attacked`` images), with the pooled rate of the two-proportion z-test: it stays meaningful
    when one rate is 100 % (where the unpooled error would be zero on that side)."""
    n0, n1 = s0["attacked"], s1["attacked"]
    if not n0 or not n1:
        return math.nan, math.nan
    p = (s0["rate"] * n0 + s1["rate"] * n1) / (n0 + n1)
    return s0["rate"] - s1["rate"], math.sqrt(p * (1 - p) * (1 / n0 + 1 / n1))


def fgs_verdict(s0: dict[str, Any], s1: dict[str, Any]) -> str:
    """BANG-2 at the small profiles: "reproduced" only for a real collapse (B1's FGS success at
    most half of R0's), "partly" when B1's rate is lower by more than 2 standard errors of the
    difference, else "not reproduced" (stricter than the spec's "B1 < R0": one image decides that)."""
    diff, se = rate_drop(s0, s1)
    return _verdict(s1["rate"] <= 0.5 * s0["rate"], diff > 2 * se)


def success_values(res: dict[str, Any], name: str) -> torch.Tensor:
    """Per-image ``name`` ("linf" or "pass_score") of one stored line-search result over its successes."""
    return res[name][res["success"].bool()].to(torch.float64)


def mean_rise(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(mean(b) - mean(a), standard error of that difference) for two independent samples."""
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    return (b.mean() - a.mean()).item(), math.sqrt(a.var().item() / len(a) + b.var().item() / len(b))


PASS_DROP = 0.1  # a PASS drop smaller than this is not "less similar" (the paper: 0.75 -> 0.49)


def hc1_effects(r0: dict[str, Any], b1: dict[str, Any]) -> dict[str, float]:
    """BANG-3's two effects from the stored per-image HC1 values (successes only): the L-inf rise
    R0 -> B1 in grey levels with its standard error, and the PASS drop."""
    rise, se = mean_rise(success_values(r0, "linf"), success_values(b1, "linf"))
    drop = (success_values(r0, "pass_score").mean() - success_values(b1, "pass_score").mean()).item()
    return {"linf_rise": rise, "linf_se": se, "pass_drop": drop,
            "linf_significant": bool(rise > 2 * se), "pass_dropped": bool(drop >= PASS_DROP)}


def _robustness_word(b1: float, r0: float) -> str:
    """How B1's median minimal perturbation compares with R0's (10 % either way is "about equal")."""
    if math.isinf(b1) or math.isinf(r0):
        return "more robust than" if math.isinf(b1) and not math.isinf(r0) else \
            "weaker than" if math.isinf(r0) and not math.isinf(b1) else "not comparable with"
    ratio = b1 / r0 if r0 > 0 else math.inf
    if ratio >= 1.1:
        return "more robust than"
    if ratio <= 1 / 1.1:
        return "weaker than"
    return "only marginally (< 10 %) more robust than" if ratio > 1 else "no more robust than"


def survives(beyond_res: dict[str, Any]) -> str:
    """One sentence: is B1 more robust than R0 once the attack does not trust the CE gradient?"""
    li = {r: _median(strongest(beyond_res[r], LINF_ATTACKS)) for r in ("R0", "B1")}
    l2 = {r: _median(strongest(beyond_res[r], L2_ATTACKS)) for r in ("R0", "B1")}
    return (f"what survives: by the median minimal perturbation over all attacks B1 is "
            f"{_robustness_word(li['B1'], li['R0'])} R0 in L-inf ({li['B1']:.3f} vs {li['R0']:.3f}) and "
            f"{_robustness_word(l2['B1'], l2['R0'])} R0 in L2 ({l2['B1']:.2f} vs {l2['R0']:.2f})")


def fgs_size_sentence(f0: dict[str, Any], f1: dict[str, Any]) -> str:
    """B1's successful FGS examples vs R0's (mean L-inf, PASS), and whether that is the paper's direction
    (the paper's B1 needs far smaller FGS perturbations, 5.52 vs 40.51, with higher PASS, 0.76 vs 0.41)."""
    p0, p1 = PAPER_TABLE1["R0"], PAPER_TABLE1["B1"]
    if math.isnan(f0["linf_mean"]) or math.isnan(f1["linf_mean"]):
        return "FGS L-inf: not enough successes to compare"
    same_linf = (f1["linf_mean"] < f0["linf_mean"]) == (p1["fgs_linf"] < p0["fgs_linf"])
    same_pass = (f1["pass_mean"] > f0["pass_mean"]) == (p1["fgs_pass"] > p0["fgs_pass"])
    agree = ("the same direction as the paper's B1" if same_linf and same_pass else
             "the opposite of the paper's B1" if not same_linf and not same_pass else
             "the paper's direction in " + ("L-inf" if same_linf else "PASS") + " only")
    return (f"B1's successful FGS examples have mean L-inf {f1['linf_mean']:.1f} vs R0's {f0['linf_mean']:.1f} "
            f"grey levels and PASS {f1['pass_mean']:.3f} vs {f0['pass_mean']:.3f}: {agree} "
            f"({p1['fgs_linf']:.2f} vs {p0['fgs_linf']:.2f}, PASS {p1['fgs_pass']:.3f} vs {p0['fgs_pass']:.3f})")


def scorecard(profile: str, t1: dict[str, Any], att: dict[str, Any], grid_res: dict[str, Any] | None,
              beyond_res: dict[str, Any] | None, cifar_res: dict[str, Any] | None) -> list[dict[str, str]]:
    """One row per reproduction target BANG-1..8. ``paper`` uses the spec's "paper should reach"
    column, every other profile its "quick must show" column."""
    paper = profile == "paper"
    acc = t1["test_acc"]
    have = "R0" in acc and "B1" in acc
    rows: list[dict[str, str]] = []

    def row(i: int, claim: str, paper_val: str, ours: str, verdict: str) -> None:
        rows.append({"id": f"BANG-{i}", "claim": claim, "paper": paper_val, "ours": ours, "verdict": verdict})

    fs = {r: att[r]["fgs_summary"] for r in att}
    hs = {r: att[r]["hc1_summary"] for r in att}
    # BANG-1 accuracy
    if have:
        r0, b1 = acc["R0"], acc["B1"]
        if paper:
            v = _verdict(abs(r0 - 0.9916) <= 0.003 and abs(b1 - 0.9922) <= 0.003,
                         abs(r0 - 0.9916) <= 0.01 and abs(b1 - 0.9922) <= 0.01)
        else:
            v = _verdict(min(r0, b1) >= 0.975 and b1 >= r0 - 0.01, b1 >= r0 - 0.01)
        row(1, "BANG keeps LeNet accuracy", "R0 99.16 %, B1 99.22 %", f"R0 {_pct(r0)}, B1 {_pct(b1)}", v)
        # BANG-2 FGS collapse, mostly blank gradients
        f0, f1 = fs["R0"], fs["B1"]
        blank_share = f1["blank_failures"] / f1["failures"] if f1["failures"] else math.nan
        diff, se = rate_drop(f0, f1)
        ours = (f"FGS rate R0 {_pct(f0['rate'])} ({f0['successes']}/{f0['attacked']}), B1 {_pct(f1['rate'])} "
                f"({f1['successes']}/{f1['attacked']}): {100 * diff:.2f} points lower (SE {100 * se:.2f}); "
                f"B1 failures {f1['failures']}, of which blank {f1['blank_failures']}")
        if paper:
            brows = [r for r in fs if r.startswith("B")]
            worst_b = max(fs[r]["rate"] for r in brows)
            ours += f"; worst B row {_pct(worst_b)}"
            diff, se = rate_drop(f0, f1)
            v = _verdict(f0["rate"] >= 0.8 and worst_b <= 0.10 and blank_share >= 0.8, diff > 2 * se)
        else:
            v = fgs_verdict(f0, f1)
        row(2, "BANG collapses FGS success on LeNet, mostly via blank gradients",
            "FGS rate R0 90.33 % -> B1 1.68 %; almost every failure a blank gradient", ours, v)
        # BANG-3 HC1 still succeeds but needs larger, less similar perturbations
        # both effects from the per-image values: a significant L-inf rise (> 2 SE) and a PASS drop
        # of at least PASS_DROP; both (and HC1 still succeeding) -> reproduced, one -> partly
        h0, h1 = hs["R0"], hs["B1"]
        e = hc1_effects(att["R0"]["hc1"], att["B1"]["hc1"])
        ours = (f"HC1 rate R0 {_pct(h0['rate'])}, B1 {_pct(h1['rate'])}; PASS {h0['pass_mean']:.4f} -> "
                f"{h1['pass_mean']:.4f} (drop {e['pass_drop']:.3f}, needed >= {PASS_DROP:g}); L-inf "
                f"{h0['linf_mean']:.2f} -> {h1['linf_mean']:.2f} grey levels (rise {e['linf_rise']:.2f} = "
                f"{e['linf_rise'] / e['linf_se'] if e['linf_se'] > 0 else math.nan:.1f} SE, needed > 2)")
        some = e["linf_significant"] or e["pass_dropped"]
        if paper:
            v = _verdict(min(h0["rate"], h1["rate"]) >= 0.9 and abs(h1["pass_mean"] - 0.4880) <= 0.1
                         and abs(h1["linf_mean"] - 201.84) <= 0.2 * 201.84 and e["linf_significant"]
                         and e["pass_dropped"], some)
        else:
            v = _verdict(min(h0["rate"], h1["rate"]) >= 0.8 and e["linf_significant"] and e["pass_dropped"], some)
        row(3, "HC1 still succeeds on BANG models but needs larger, less similar perturbations",
            "HC1 rate 99.53 % -> 94.19 %; PASS 0.7535 -> 0.4880; L-inf 122.60 -> 201.84 (R0 -> B1)", ours, v)
    else:
        for i, claim in ((1, "BANG keeps LeNet accuracy"), (2, "BANG collapses FGS success"), (3, "HC1 still succeeds")):
            row(i, claim, "Table 1", "R0/B1 not in this profile", "not run")
    # BANG-4 noise
    noise = t1.get("noise")
    if noise is not None:
        n0, n1 = noise["R0"][-1, -1].item(), noise["B1"][-1, -1].item()
        sig, it = noise["sigmas"][-1], noise["iterations"][-1]
        ours = f"sigma {sig:g}, iteration {it}: R0 {_pct(n0)}, B1 {_pct(n1)} ({noise['images']} images)"
        v = _verdict(abs(n0 - 0.20) <= 0.07 and n1 <= 0.06, n1 < n0) if paper else \
            ("reproduced" if n1 < n0 else "not reproduced")
        row(4, "BANG makes LeNet more robust to random noise",
            "sigma 100, 10k iterations: R0 ~20 %, B1 3 %", ours, v)
    else:
        row(4, "BANG makes LeNet more robust to random noise", "R0 ~20 %, B1 3 %", "not computed", "not run")
    # BANG-5 grid trend
    if grid_res is not None and len(grid_res["epsilons"]) > 1:
        f = grid_res["fgs_rate"].to(torch.float64)  # (betas, eps)
        by_eps = f.mean(0)
        e = torch.tensor(grid_res["epsilons"], dtype=torch.float64)
        slope = (((e - e.mean()) * (by_eps - by_eps.mean())).sum() / ((e - e.mean()) ** 2).sum()).item()
        ours = ("mean FGS rate over beta by eps: " + ", ".join(f"{x:g}: {_pct(v)}" for x, v in zip(e.tolist(), by_eps.tolist()))
                + f"; slope {slope:.2f} per unit eps")
        # a drop of less than one point (a few images of one cell) is at the noise floor: "partly"
        drop = by_eps[0].item() - by_eps[-1].item()
        v = _verdict(slope < 0 and drop > 0, slope < 0 or drop > 0) if paper else \
            _verdict(drop >= 0.01, drop > 0)
        row(5, "Higher eps -> more resistance to FGS (grid trend)", "Fig. 2(b) (values not tabulated)", ours, v)
    else:
        row(5, "Higher eps -> more resistance to FGS (grid trend)", "Fig. 2(b)", "grid not computed", "not run")
    # BANG-6 / BANG-7 CIFAR
    if cifar_res is None:
        for i, claim, pv in ((6, "CIFAR-10: accuracy kept, FGS success drops", "R0 79.59 %, FGS 96.52 %; B0 79.26 %, FGS 34.27 %"),
                             (7, "CIFAR-10: BANG improves noise robustness modestly", "sigma 40: R0 46.0 %, B0 39.1 %")):
            row(i, claim, pv, "CIFAR-10 cannot be loaded on this machine (no download)", "not run")
    else:
        cr = cifar_res["rows"]
        if "R0" in cr and "B0" in cr:
            a0, ab = cr["R0"]["acc"], cr["B0"]["acc"]
            f0, fb = cr["R0"]["fgs_summary"]["rate"], cr["B0"]["fgs_summary"]["rate"]
            ours = f"acc R0 {_pct(a0)}, B0 {_pct(ab)}; FGS R0 {_pct(f0)}, B0 {_pct(fb)}"
            if paper:
                v = _verdict(abs(a0 - 0.7959) <= 0.01 and abs(ab - 0.7926) <= 0.01 and f0 >= 0.9 and abs(fb - 0.3427) <= 0.1,
                             fb < f0)
            else:
                v = _verdict(min(a0, ab) >= 0.55 and fb < f0, fb < f0)
        else:
            ours, v = "R0/B0 not in this profile", "not run"
        row(6, "CIFAR-10: accuracy kept, FGS success drops", "R0 79.59 %, FGS 96.52 %; B0 79.26 %, FGS 34.27 %", ours, v)
        cn = cifar_res.get("noise")
        if paper and cn is not None:
            n0, nb = cn["R0"][-1, -1].item(), cn["B0"][-1, -1].item()
            v = _verdict(n0 - nb > 0 and abs(n0 - 0.46) <= 0.07 and abs(nb - 0.391) <= 0.07, n0 - nb > 0)
            row(7, "CIFAR-10: BANG improves noise robustness modestly", "sigma 40: R0 46.0 %, B0 39.1 %",
                f"sigma {cn['sigmas'][-1]:g}: R0 {_pct(n0)}, B0 {_pct(nb)}", v)
        else:
            row(7, "CIFAR-10: BANG improves noise robustness modestly", "sigma 40: R0 46.0 %, B0 39.1 %",
                "paper profile only", "not run")
    # BANG-8 masking
    if have:
        m = att["B1"]["masking"]
        nb = m["blank_failures"]
        broken = max(m["fgs-margin_successes"], m["fgs-float64_successes"])
        ours = (f"B1 blank-gradient FGS failures {nb}: margin-loss FGS succeeds on {m['fgs-margin_successes']}, "
                f"float64 FGS on {m['fgs-float64_successes']}")
        if beyond_res is not None and "B1" in beyond_res:
            ours += "; " + survives(beyond_res) + " ([0,1] units)"
        ours += "; " + fgs_size_sentence(fs["R0"], fs["B1"])
        v = "not reproduced" if nb == 0 else _verdict(broken >= 0.5 * nb, broken > 0)
        collapse = fs["B1"]["rate"] <= 0.5 * fs["R0"]["rate"]  # BANG-2's "reproduced" bar
        if v == "reproduced" and not collapse:
            v = "partly"  # the failures are masking, but there is no collapse for them to explain
            ours += f"; no FGS collapse at this profile, so the check covers only these {nb} images"
        row(8, "(companion check) part of the FGS collapse is gradient masking", "—", ours, v)
    else:
        row(8, "(companion check) part of the FGS collapse is gradient masking", "—", "R0/B1 not in this profile", "not run")
    return rows


def _median(d: torch.Tensor) -> float:
    from ..metrics import median_distance

    return median_distance(d)


if __name__ == "__main__":
    raise SystemExit(main())
