"""BANG's experiments: the steps behind each table and figure, on the one experiment core.

``steps(profile)`` lists them in a valid order; each is a function of the ``Experiment`` that stores
its result (keyed by the whole profile) and returns it, so the chapter, ``python -m robustlib
compute bang --profile P`` and a scheduler all compute exactly the same artifacts:

* ``table1_models``: the Table 1 LeNets (R0, R1, B0-B5) trained together in one ``LeNetStack``,
  with snapshots of R0 and B1 for the noise experiment (Fig. 3), which runs right after training
  (the snapshots are not stored, the flip rates are).
* ``table1_attacks``: FGS and HC1 line searches with PASS and L-inf, blank gradients, masking check.
* ``grid``: the (beta, eps) grid of Fig. 2 (+ one regular model as the reference level).
* ``beyond``: attacks that do not trust the model's gradient, R0 vs B1 (PGD on a margin loss from
  a random start, Boundary, transfer from R0), per-image minimal L-inf / L2 perturbations.
* ``yardstick``: the one protocol every model of the book goes through (``robustlib.protocol``),
  on R0 and B1 through this chapter's adapter (``adapter.py``), transfer from the baselines
  chapter's ReLU MLP; the robustness verdicts are judged on it.
* ``cifar``: Table 2 and Figs. 4-5 where CIFAR-10 is on disk (and, at ``paper``, where it can be
  downloaded); ``None`` otherwise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ... import attacks, data, protocol, train
from ...experiment import Experiment, Step
from ..baselines.model import LeNet
from . import evaluation
from .model import (
    CIFAR_SOLVER,
    LENET_SOLVER,
    REGULAR,
    BangConfig,
    CifarQuick,
    LeNetStack,
    Solver,
    bang_step,
    init_lenets,
    load_snapshots,
    scaled_solver,
    stack_accuracy,
    stack_predict,
    train_stack,
)
from .profile import BangProfile

# --- the paper's settings (Tables 1 and 2) -------------------------------------------------------

TABLE1: dict[str, BangConfig] = {
    "R0": REGULAR,
    "R1": REGULAR,
    "B0": BangConfig(1.00, 0.785),
    "B1": BangConfig(1.00, 0.815),
    "B2": BangConfig(1.20, 0.810),
    "B3": BangConfig(1.35, 0.780),
    "B4": BangConfig(1.50, 0.840),
    "B5": BangConfig(1.60, 0.780),
}
TABLE2: dict[str, BangConfig] = {
    "R0": REGULAR,
    "R1": REGULAR,
    "B0": BangConfig(0.40, 0.855, 0.5),
    "B1": BangConfig(0.45, 0.805, 0.5),
    "B2": BangConfig(0.75, 0.800, 0.5),
    "B3": BangConfig(0.75, 0.845, 0.5),
    "B4": BangConfig(0.95, 0.840, 0.5),
    "B5": BangConfig(1.00, 0.800, 0.5),
}


def init_seed(seed: int, row: str) -> int:
    """Initial weights: every model of one experiment starts from the same weights (seed), except
    R1, the second regular run, which uses seed + 1 (the paper's R0/R1 differ by their seeds)."""
    return seed + 1 if row == "R1" else seed


# --- the keys: what each stored result depends on -------------------------------------------------


@dataclass(frozen=True)
class ModelsKey:
    """The Table 1 models: which rows, their BANG settings, the solver and each row's initial seed."""

    profile: BangProfile
    rows: tuple[str, ...]
    configs: dict[str, BangConfig]
    solver: Solver
    init: dict[str, int]


@dataclass(frozen=True)
class RowsKey:
    """A result computed on the stored Table 1 models ``rows``."""

    profile: BangProfile
    rows: tuple[str, ...]


@dataclass(frozen=True)
class AttacksKey:
    """The Table 1 attacks on ``rows``, keeping ``keep`` adversarials per attack (Fig. 1)."""

    profile: BangProfile
    rows: tuple[str, ...]
    keep: int = 16


@dataclass(frozen=True)
class GridKey:
    profile: BangProfile
    solver: Solver


@dataclass(frozen=True)
class CifarKey:
    """The CIFAR-10 models: ``dataset`` names the data (tests pass a synthetic stand-in)."""

    profile: BangProfile
    dataset: str
    n_train: int
    n_test: int
    solver: Solver
    rows: dict[str, BangConfig]


def _attack_batch(device: str) -> int:
    return 5000 if str(device).startswith("cuda") else 500


# --- data --------------------------------------------------------------------------------------


def mnist_data(prof: BangProfile) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The paper's split: 50k training / 10k validation (the last 10k of the training file) and the
    10k test set; ``prof.n_train`` takes the first n of the 50k."""
    x, y = data.mnist("train")
    (xtr, ytr), (xva, yva) = data.split_validation(x, y, 10_000)
    xtr, ytr = data.first(xtr, ytr, prof.n_train)
    xte, yte = data.mnist("test")
    return {"train": (xtr, ytr), "val": (xva, yva), "test": (xte, yte)}


def _val(prof: BangProfile, d) -> tuple[torch.Tensor, torch.Tensor] | None:
    return data.first(*d["val"], prof.n_val) if prof.n_val else None


# --- Table 1 models and Fig. 3 -----------------------------------------------------------------


def snapshot_iterations(prof: BangProfile) -> list[int]:
    if not prof.snapshot_every:
        return []
    its = list(range(prof.snapshot_every, prof.iterations + 1, prof.snapshot_every))
    return its if its and its[-1] == prof.iterations else its + [prof.iterations]


def models_key(exp: Experiment) -> ModelsKey:
    """What identifies the Table 1 models of ``exp`` (rows, settings, solver, initial seeds)."""
    prof, seed = exp.profile, exp.seed
    rows = tuple(prof.table_rows)
    unknown = set(rows) - set(TABLE1)
    if unknown:
        raise ValueError(f"unknown Table 1 rows {sorted(unknown)}; valid: {', '.join(TABLE1)}")
    return ModelsKey(
        prof,
        rows,
        {r: TABLE1[r] for r in rows},
        scaled_solver(LENET_SOLVER, prof.iterations),
        {r: init_seed(seed, r) for r in rows},
    )


def table1_models(exp: Experiment) -> dict[str, Any]:
    """Train the Table 1 rows of the profile (one stack) and run the noise experiment on R0/B1.

    Returns {"states": {row: LeNet state}, "test_acc": {row: acc}, "history": [...],
    "noise": {...} or None}."""
    prof, seed = exp.profile, exp.seed
    rows = list(prof.table_rows)
    key = models_key(exp)
    noise_rows = [r for r in ("R0", "B1") if r in rows] if prof.snapshot_every else []

    def compute() -> dict[str, Any]:
        d = mnist_data(prof)
        ckpt = exp.checkpoint_dir("table1-models", key)
        stack = LeNetStack.from_lenets(init_lenets([init_seed(seed, r) for r in rows]), 0.5, [TABLE1[r] for r in rows])
        t0 = time.perf_counter()
        history = train_stack(
            stack,
            *d["train"],
            solver=key.solver,
            seed=seed,
            device=exp.device,
            checkpoint=ckpt,
            snapshot_every=prof.snapshot_every,
            snapshot_models=[rows.index(r) for r in noise_rows],
            val=_val(prof, d),
            progress=exp.progress,
            desc="table1",
        )
        train_s = time.perf_counter() - t0
        acc = stack_accuracy(stack, *d["test"], device=exp.device)
        out = {
            "states": {r: stack.lenet_state(i) for i, r in enumerate(rows)},
            "test_acc": {r: acc[i].item() for i, r in enumerate(rows)},
            "history": history,
            "train_seconds": train_s,
            "noise": None,
        }
        if len(noise_rows) == 2:
            t0 = time.perf_counter()
            out["noise"] = noise_experiment(
                prof,
                ckpt / "snapshots",
                [rows.index(r) for r in noise_rows],
                noise_rows,
                d["test"],
                seed=seed,
                device=exp.device,
            )
            out["noise"]["seconds"] = time.perf_counter() - t0
        return out

    return exp.cached("table1-models", key, compute)


def lenets(exp: Experiment) -> dict[str, LeNet]:
    """The stored Table 1 LeNets (fresh copies on the CPU, eval mode), by row."""
    return {row: lenet_from(table1_models(exp), row) for row in exp.profile.table_rows}


def lenet_from(result: dict[str, Any], row: str) -> LeNet:
    m = LeNet(0.5)
    m.load_state_dict(result["states"][row])
    return m.eval()


def noise_experiment(
    prof: BangProfile,
    snapshot_dir,
    model_index: Sequence[int],
    names: Sequence[str],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    seed: int,
    device: str,
) -> dict[str, Any]:
    """Fig. 3: flip rates (checkpoint x sigma) of two models on images both classify correctly at
    every checkpoint (``noise_per_class`` per class from the first ``noise_pool`` test images)."""
    its = snapshot_iterations(prof)
    states = [s for i in model_index for s in load_snapshots(snapshot_dir, its, i)]
    stack = LeNetStack.from_states(states).to(device).eval()  # K = 2 * checkpoints
    x, y = data.first(*test, prof.noise_pool)
    correct_all = (stack_predict(stack, x, device=device) == y[None]).all(0)
    sel = evaluation.select_per_class(correct_all, y, prof.noise_per_class, seed)
    rates = evaluation.noise_flip_rates(
        lambda imgs: stack_predict(stack, imgs, device=device),
        x[sel],
        y[sel],
        prof.noise_sigmas,
        draws=prof.noise_draws,
        seed=seed,
        batch_images=_noise_batch(stack.k, device),
        device=device,
    )
    rates = rates.reshape(len(model_index), len(its), len(prof.noise_sigmas))
    return {
        "iterations": its,
        "sigmas": list(prof.noise_sigmas),
        "images": len(sel),
        "per_class": torch.bincount(y[sel], minlength=10),
        **{n: rates[i] for i, n in enumerate(names)},
    }


def _noise_batch(k: int, device: str) -> int:
    return max(64, (2**27 if device.startswith("cuda") else 2**25) // (k * 20 * 24 * 24))


# --- Table 1 attacks ---------------------------------------------------------------------------


def table1_attacks(exp: Experiment) -> dict[str, Any]:
    """FGS and HC1 on the first ``n_attack`` test images for every Table 1 row, PASS on successes,
    the masking check on FGS's blank-gradient failures; 16 adversarials per attack kept for Fig. 1."""
    prof, device = exp.profile, exp.device
    models = lenets(exp)
    key = AttacksKey(prof, tuple(models), keep=16)

    def compute() -> dict[str, Any]:
        x, y = data.first(*data.mnist("test"), prof.n_attack)
        out: dict[str, Any] = {}
        for row, model in models.items():
            t0 = time.perf_counter()
            res = {}
            for method in ("fgs", "hc1"):
                r = evaluation.attack(
                    model,
                    x,
                    y,
                    method=method,
                    max_steps=prof.max_steps,
                    device=device,
                    batch_size=_attack_batch(device),
                    keep_adversarials=True,
                )
                res[method] = r.to_dict(keep_adversarials=key.keep)
                res[f"{method}_summary"] = r.summary()
                if method == "fgs":
                    res["masking"] = evaluation.masking_check(model, x, y, r, max_steps=prof.max_steps, device=device)
            res["seconds"] = time.perf_counter() - t0
            exp.log(
                f"attacks {row}: {res['seconds']:.1f} s, FGS {res['fgs_summary']['rate']:.3f}, "
                f"HC1 {res['hc1_summary']['rate']:.3f}"
            )
            out[row] = res
        return out

    return exp.cached("table1-attacks", key, compute)


# --- Fig. 2: the (beta, eps) grid --------------------------------------------------------------


def grid(exp: Experiment) -> dict[str, Any]:
    """Train one model per (beta, eps) of the profile's grid plus a regular reference (model 0),
    all from the same initial weights, for ``grid_iterations``; accuracy on ``grid_n_acc`` test
    images, FGS rate and blank count, HC1 rate, mean PASS and L-inf on ``grid_n_attack``."""
    prof, seed, device = exp.profile, exp.seed, exp.device
    betas, epss = list(prof.grid_betas), list(prof.grid_epsilons)
    configs = [REGULAR] + [BangConfig(b, e) for b in betas for e in epss]
    key = GridKey(prof, scaled_solver(LENET_SOLVER, prof.grid_iterations))

    def compute() -> dict[str, Any]:
        d = mnist_data(prof)
        ckpt = exp.checkpoint_dir("grid", key)
        stack = LeNetStack.from_lenets(init_lenets([seed] * len(configs)), 0.5, configs)
        t0 = time.perf_counter()
        history = train_stack(
            stack,
            *d["train"],
            solver=key.solver,
            seed=seed,
            device=device,
            checkpoint=ckpt,
            val=_val(prof, d),
            progress=exp.progress,
            desc="grid",
        )
        train_s = time.perf_counter() - t0
        acc = stack_accuracy(stack, *data.first(*d["test"], prof.grid_n_acc), device=device)
        xa, ya = data.first(*d["test"], prof.grid_n_attack)
        keys = ("fgs_rate", "fgs_blank", "hc1_rate", "hc1_pass", "hc1_linf")
        vals = {k: torch.zeros(len(configs), dtype=torch.float64) for k in keys}
        t0 = time.perf_counter()
        for i in range(len(configs)):
            model = stack.lenet(i)
            f = evaluation.attack(
                model,
                xa,
                ya,
                method="fgs",
                max_steps=prof.max_steps,
                device=device,
                batch_size=_attack_batch(device),
                with_pass=False,
            ).summary()
            h = evaluation.attack(
                model, xa, ya, method="hc1", max_steps=prof.max_steps, device=device, batch_size=_attack_batch(device)
            ).summary()
            vals["fgs_rate"][i], vals["fgs_blank"][i] = f["rate"], f["blank"] / max(f["attacked"], 1)
            vals["hc1_rate"][i], vals["hc1_pass"][i], vals["hc1_linf"][i] = h["rate"], h["pass_mean"], h["linf_mean"]
        attack_s = time.perf_counter() - t0
        shape = (len(betas), len(epss))
        out = {
            "betas": betas,
            "epsilons": epss,
            "history": history,
            "train_seconds": train_s,
            "attack_seconds": attack_s,
            "acc": acc[1:].reshape(shape),
            "regular": {"acc": acc[0].item()},
        }
        for k, v in vals.items():
            out[k] = v[1:].reshape(shape)
            out["regular"][k] = v[0].item()
        return out

    return exp.cached("grid", key, compute)


# --- beyond the paper --------------------------------------------------------------------------

LINF_ATTACKS = ("fgs_line", "hc1_line", "pgd_ce", "pgd_margin", "transfer_linf")
L2_ATTACKS = ("pgd_l2_margin", "boundary_l2", "transfer_l2")


def beyond(exp: Experiment) -> dict[str, Any] | None:
    """Per-image minimal perturbations of R0 and B1 under attacks that do not trust the
    cross-entropy gradient, on the first ``beyond_n`` test images (``None`` without R0):

    L-inf: the paper's FGS and HC1 line searches; PGD with the cross-entropy and with the logit
    margin from a random start (grid ``linf_grid``, ``pgd_restarts`` restarts); transfer of R0's
    PGD direction (B1 only). L2: PGD on the margin (grid ``l2_grid``), Boundary (decision-based,
    first ``boundary_n`` images), transfer. Distances in [0, 1] pixel units.
    """
    prof, seed, device = exp.profile, exp.seed, exp.device
    table1 = lenets(exp)
    if "R0" not in table1:
        return None  # R0 is the transfer source and the reference
    models = {r: table1[r] for r in ("R0", "B1") if r in table1}
    opts = {"device": device, "seed": seed, "batch_size": _attack_batch(device)}

    def compute() -> dict[str, Any]:
        x, y = data.first(*data.mnist("test"), prof.beyond_n)
        out: dict[str, Any] = {}
        for row, model in models.items():
            t0 = time.perf_counter()
            res: dict[str, Any] = {}
            for name in ("fgs", "hc1"):  # the paper's line searches, as registered minimal attacks
                r = attacks.min_distance(model, x, y, attack=f"bang_{name}", max_steps=prof.max_steps, **opts)
                res[f"{name}_line"] = r.distances
            for loss in ("ce", "margin"):
                r = attacks.min_distance(
                    model,
                    x,
                    y,
                    attack="pgd_torch",
                    epsilons=list(prof.linf_grid),
                    loss=loss,
                    steps=prof.pgd_steps,
                    restarts=prof.pgd_restarts,
                    **opts,
                )
                res[f"pgd_{loss}"] = r.distances
            r = attacks.min_distance(
                model,
                x,
                y,
                attack="pgd_torch",
                norm="l2",
                epsilons=list(prof.l2_grid),
                loss="margin",
                steps=prof.pgd_steps,
                restarts=prof.pgd_restarts,
                **opts,
            )
            res["pgd_l2_margin"] = r.distances
            nb = min(prof.boundary_n, len(x))
            r = attacks.min_distance(model, x[:nb], y[:nb], attack="boundary", steps=prof.boundary_steps, **opts)
            res["boundary_l2"] = r.distances
            if row != "R0":
                for norm in ("linf", "l2"):
                    r = attacks.min_distance(
                        model,
                        x,
                        y,
                        attack="transfer",
                        source=models["R0"],
                        norm=norm,
                        source_eps=0.3 if norm == "linf" else 3.0,
                        steps=prof.pgd_steps,
                        **opts,
                    )
                    res[f"transfer_{norm}"] = r.distances
            res["seconds"] = time.perf_counter() - t0
            exp.log(f"beyond {row}: {res['seconds']:.1f} s")
            out[row] = res
        return out

    return exp.cached("beyond", RowsKey(prof, tuple(models)), compute)


# --- the yardstick ------------------------------------------------------------------------------

SOURCE = "relu-mlp"  # the transfer source: the baselines chapter's standard network (zoo name)


@dataclass(frozen=True)
class YardstickKey:
    """One model's yardstick result: the protocol's settings, the Table 1 models' key and the row,
    the transfer source (the baselines chapter's ReLU MLP, by its own store key) and the adapter's
    surrogate (its margin target)."""

    protocol: protocol.ProtocolConfig
    models: ModelsKey
    row: str
    source: Any
    margin_target: float


def transfer_source(exp: Experiment) -> torch.nn.Module:
    """The yardstick's transfer source, the baselines chapter's ReLU MLP from its own store (trained
    there if missing, unless ``exp`` is load-only): the same source for every chapter."""
    from ..baselines import adapter as base_adapter

    return base_adapter.load(exp.sibling("baselines"), SOURCE)


def yardstick_config(exp: Experiment) -> protocol.ProtocolConfig:
    return protocol.ProtocolConfig.for_profile(exp.profile.name)


def yardstick(exp: Experiment) -> dict[str, protocol.ProtocolResult]:
    """The protocol on the first ``n_images`` test images for every zoo model of the profile
    (R0 and B1): ``{zoo name: ProtocolResult}``, each stored as ``yardstick-<name>``."""
    from ..baselines import experiments as base
    from . import adapter

    config = yardstick_config(exp)
    mkey = models_key(exp)
    source_key = base.model_key(exp.sibling("baselines"), "relu_mlp")
    out: dict[str, protocol.ProtocolResult] = {}
    for name in adapter.MODELS:
        row = adapter.row(name)
        if row not in exp.profile.table_rows:
            continue

        def compute(name: str = name) -> dict[str, Any]:
            model = adapter.load(exp, name)
            x, y = protocol.protocol_images(config)
            res = protocol.evaluate(
                adapter.adapter(exp, name, model), x, y, config, source=transfer_source(exp), progress=exp.progress
            )
            return res.to_dict()

        key = YardstickKey(config, mkey, row, source_key, adapter.MARGIN_TARGET)
        stored = exp.cached(f"yardstick-{name}", key, compute)
        out[name] = protocol.ProtocolResult.from_dict(stored)
    return out


def strongest(res: dict[str, Any], names: Sequence[str]) -> torch.Tensor:
    """Per image, the smallest distance over the attacks present; an attack run on fewer images
    (Boundary: the first ``boundary_n``) counts as inf on the others."""
    have = [res[n].to(torch.float64) for n in names if n in res]
    n = max(len(t) for t in have)
    padded = [torch.cat([t, torch.full((n - len(t),), math.inf, dtype=torch.float64)]) for t in have]
    return torch.stack(padded).amin(0)


# --- CIFAR-10 (Table 2, Figs. 4 and 5) ---------------------------------------------------------


def cifar_on_disk() -> bool:
    """Whether CIFAR-10 is already in ``data/cifar10`` (torchvision's extracted python batches)."""
    return (data.cifar10_root() / "cifar-10-batches-py" / "test_batch").is_file()


def cifar(exp: Experiment) -> dict[str, Any] | None:
    """Table 2 and Figs. 4-5 on CIFAR-10 where it is on disk; at ``paper`` a download is tried
    too. ``None`` (nothing computed, nothing stored) otherwise: ``smoke`` and ``quick`` never
    touch the network."""
    if not cifar_on_disk() and exp.profile.name != "paper":
        exp.log("CIFAR-10 is not in data/cifar10: Table 2 and Figs. 4-5 skipped")
        return None
    train_data, test_data = data.cifar10("train"), data.cifar10("test")
    if train_data is None or test_data is None:
        exp.log("CIFAR-10 could not be loaded: Table 2 and Figs. 4-5 skipped")
        return None
    return cifar_experiment(exp, train_data, test_data)


def synthetic_cifar(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A CIFAR-shaped stand-in for tests: (n, 3, 32, 32) in [0, 1] on the grey-level grid; each
    class has its own mean colour and a bright square at a class-specific place, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    colours = torch.rand(10, 3, 1, 1, generator=g) * 0.6 + 0.2
    x = colours[y] + 0.15 * torch.randn(n, 3, 32, 32, generator=g)
    for c in range(10):
        r, col = 2 + 3 * (c // 4), 2 + 7 * (c % 4)
        x[y == c, :, r : r + 6, col : col + 6] += 0.3
    return torch.round(x.clamp(0, 1) * 255) / 255, y


def cifar_experiment(
    exp: Experiment,
    train_data: tuple[torch.Tensor, torch.Tensor],
    test_data: tuple[torch.Tensor, torch.Tensor],
    *,
    dataset: str = "cifar10",
) -> dict[str, Any]:
    """Table 2 rows, the optional Fig. 4 grid and Fig. 5 (R0 vs B0 noise) on CIFAR-10 quick.

    ``dataset`` names the data in the store key (tests pass a synthetic stand-in). Models are
    trained one after the other with ``fit`` + ``bang_step``.
    """
    prof, seed, device = exp.profile, exp.seed, exp.device
    rows = {r: TABLE2[r] for r in prof.cifar_rows}
    for b in prof.cifar_grid_betas:
        for e in prof.cifar_grid_epsilons:
            rows[f"G{b:.2f}-{e:.3f}"] = BangConfig(b, e, 0.5)
    solver = scaled_solver(CIFAR_SOLVER, prof.cifar_iterations)
    key = CifarKey(prof, dataset, len(train_data[0]), len(test_data[0]), solver, rows)
    noise_rows = [r for r in ("R0", "B0") if r in rows] if prof.cifar_snapshot_every else []

    def compute() -> dict[str, Any]:
        xtr, ytr = train_data
        mean = xtr.mean(0)  # (3, 32, 32) the training-set mean image (Caffe's mean file)
        xa, ya = data.first(*test_data, prof.cifar_n_attack)
        out: dict[str, Any] = {"rows": {}, "solver": solver.__dict__}
        snaps: dict[str, list[dict[str, torch.Tensor]]] = {}
        epochs = math.ceil(solver.iterations / math.ceil(len(xtr) / solver.batch_size))
        for row, cfg in rows.items():
            torch.manual_seed(init_seed(seed, row))
            model = CifarQuick(mean)
            every = prof.cifar_snapshot_every if row in noise_rows else 0
            states: list[dict[str, torch.Tensor]] = []
            step = _snapshotting(bang_step(cfg) if not cfg.regular else None, every, states)
            t0 = time.perf_counter()
            history = train.fit(
                model,
                xtr,
                ytr,
                epochs=epochs,
                batch_size=solver.batch_size,
                seed=seed,
                optimizer=solver.optimizer(model.weight_parameters(), model.bias_parameters()),
                step=step,
                lr_lambda=solver.lr_factor,
                max_iterations=solver.iterations,
                device=device,
                progress=exp.progress,
                desc=f"cifar {row}",
            )
            model.eval()
            res: dict[str, Any] = {
                "history": history,
                "train_seconds": time.perf_counter() - t0,
                "acc": train.accuracy(model, *test_data, device=device),
                "config": cfg.__dict__,
            }
            for method in ("fgs", "hc1"):
                r = evaluation.attack(
                    model,
                    xa,
                    ya,
                    method=method,
                    max_steps=prof.max_steps,
                    device=device,
                    batch_size=_attack_batch(device),
                    keep_adversarials=True,
                )
                res[f"{method}_summary"] = r.summary()
                if row in ("R0", "B0"):
                    res[method] = r.to_dict(keep_adversarials=8)
            if row in noise_rows:
                snaps[row] = states
            out["rows"][row] = res
            exp.log(f"cifar {row}: acc {res['acc']:.4f}, FGS {res['fgs_summary']['rate']:.3f}")
        if len(noise_rows) == 2:
            out["noise"] = _cifar_noise(prof, snaps, noise_rows, mean, test_data, seed=seed, device=device)
        return out

    return exp.cached("cifar", key, compute)


def _snapshotting(inner: train.StepFn | None, every: int, states: list[dict[str, torch.Tensor]]) -> train.StepFn:
    """Wrap a ``fit`` step: keep a CPU copy of the model's state every ``every`` updates."""
    base = inner or train.default_step(torch.nn.functional.cross_entropy)

    def step(model, batch, optimizer):
        stats = base(model, batch, optimizer)
        if every and (batch.iteration + 1) % every == 0:
            states.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        return stats

    return step


def _cifar_noise(prof: BangProfile, snaps, names, mean, test_data, *, seed: int, device: str) -> dict[str, Any]:
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
    correct_all = torch.cat([(predict(x[i : i + 500]) == y[None, i : i + 500]) for i in range(0, len(x), 500)], 1).all(
        0
    )
    sel = evaluation.select_per_class(correct_all, y, prof.cifar_noise_per_class, seed)
    rates = evaluation.noise_flip_rates(
        predict,
        x[sel],
        y[sel],
        prof.cifar_noise_sigmas,
        draws=prof.noise_draws,
        seed=seed,
        batch_images=2000,
        device=device,
    )
    per = len(snaps[names[0]])
    rates = rates.reshape(len(names), per, len(prof.cifar_noise_sigmas))
    its = [prof.cifar_snapshot_every * (i + 1) for i in range(per)]
    return {
        "iterations": its,
        "sigmas": list(prof.cifar_noise_sigmas),
        "images": len(sel),
        **{n: rates[i] for i, n in enumerate(names)},
    }


# --- the step list -----------------------------------------------------------------------------


def steps(profile: BangProfile) -> list[Step]:
    """Every step of the chapter, in a valid order (the attacks and ``beyond`` read the models)."""
    return [
        Step("table1_models", table1_models, gpu=True),
        Step("table1_attacks", table1_attacks, after=("table1_models",), gpu=True),
        Step("grid", grid, gpu=True),
        Step("beyond", beyond, after=("table1_models",), gpu=True),
        Step("yardstick", yardstick, after=("table1_models",), gpu=True),
        Step("cifar", cifar, gpu=True),
    ]
