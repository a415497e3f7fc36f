"""The experiments of the RBFI notebook, each computed once and kept in the artifact store.

The notebook calls these functions and plots; ``python -m robustlib.models.rbfi_experiments
--profile paper --device cuda`` computes the same artifacts without Jupyter (the GPU machine), after
which the notebook only loads them. Every result is keyed by the full profile plus what else
changes it; ``retrain=True`` recomputes.

Two kinds of trained networks:
* ``Ctx.model``: weights kept (safetensors) because several cells attack them: run 0 of each main
  network (RBFI, ReLU, sigmoid; about 15 MB at the paper's size);
* ``Ctx.metrics``: trained inside a cached computation that returns only numbers (the other runs,
  Fig. 3, Table 2, Table 3, Figs. 4 and 5, section 6.8), so the paper profile does not commit
  100 MB of weights.

Run k of a network uses seed ``seed + k`` (the reference code seeds run k with k).
"""

from __future__ import annotations

import argparse
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from ... import attacks as A
from ... import data, profiles, store
from ..train import accuracy, cached_model
from . import model as R

NB = "rbfi"
EPS_TRAIN = 0.3  # adversarial training epsilon (paper: "consistent with [MMS17]"; value missing from the text)


@dataclass(frozen=True)
class NetSpec:
    """What is trained: the network and its recipe (everything that changes the weights)."""

    label: str  # artifact name
    kind: str  # rbfi | rbf | relu | sigmoid
    hidden: tuple[int, ...]
    andor: str | None = None
    u_max: float = 3.0
    n_train: int | None = None
    train: R.TrainConfig = field(default_factory=R.TrainConfig)

    def build(self) -> torch.nn.Module:
        extra = {"u_max": self.u_max} if self.kind in ("rbfi", "rbf") else {}
        return R.build(self.kind, self.hidden, self.andor, **extra)


class Ctx:
    """Profile, seed, device, data and an in-memory memo (so ``retrain=True`` trains each network
    once per notebook run even when several cells use it)."""

    def __init__(self, prof: profiles.RbfiProfile, seed: int = 0, device: str = "cpu", retrain: bool = False,
                 progress: bool = False):
        self.prof, self.seed, self.device, self.retrain, self.progress = prof, seed, device, retrain, progress
        self.x_train, self.y_train = data.mnist("train")
        self.x_test, self.y_test = data.first(*data.mnist("test"), prof.n_test)
        self.x_eval, self.y_eval = self.x_test[:1000], self.y_test[:1000]  # per-epoch curves
        self._memo: dict[Any, Any] = {}
        self.timings: dict[str, float] = {}

    # -- storage --------------------------------------------------------------------------------
    def cached(self, name: str, extra: dict[str, Any], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        key = (name, repr(sorted(extra.items())))
        if key not in self._memo:
            t0 = time.perf_counter()
            self._memo[key] = store.cached(name, {"profile": self.prof.asdict(), **extra}, compute, notebook=NB,
                                           profile=self.prof.name, seed=self.seed, device=self.device,
                                           retrain=self.retrain)
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
        return self._memo[key]

    def _train_fn(self, spec: NetSpec, run: int):
        x, y = data.first(self.x_train, self.y_train, spec.n_train)

        def train_fn(model: torch.nn.Module, ckpt) -> list[dict[str, float]]:
            return R.train(model, x, y, spec.train, seed=self.seed + run, device=self.device, checkpoint=ckpt,
                           progress=self.progress, desc=f"{spec.label} run {run}",
                           eval_data=(self.x_eval, self.y_eval))

        return train_fn

    def model(self, spec: NetSpec, run: int = 0) -> tuple[torch.nn.Module, list[dict[str, float]]]:
        """A trained network whose weights are stored."""
        key = ("model", spec, run)
        if key not in self._memo:
            t0 = time.perf_counter()
            self._memo[key] = cached_model(
                f"{spec.label}-run{run}", {"profile": self.prof.asdict(), "spec": asdict(spec)}, spec.build,
                self._train_fn(spec, run), notebook=NB, profile=self.prof.name, seed=self.seed + run,
                device=self.device, retrain=self.retrain)
            self.timings["train " + spec.label] = self.timings.get("train " + spec.label, 0.0) + time.perf_counter() - t0
        return self._memo[key]

    def metrics(self, spec: NetSpec, run: int, evaluate: Callable[[torch.nn.Module], dict[str, Any]],
                what: str = "") -> dict[str, Any]:
        """Train (weights not stored) and return ``{history, **evaluate(model)}``, cached."""

        def compute() -> dict[str, Any]:
            torch.manual_seed(self.seed + run)
            model = spec.build().to(self.device)
            # keyed by what changes the weights (the spec) and the seed: a finished training is
            # reused when only the evaluation settings of the profile change
            ckpt = store.checkpoint_dir(f"{spec.label}-run{run}", {"spec": asdict(spec)}, notebook=NB,
                                        profile=self.prof.name, seed=self.seed + run)
            if self.retrain and ckpt.exists():
                shutil.rmtree(ckpt)
            history = self._train_fn(spec, run)(model, ckpt)
            model.eval()
            return {"history": history, **evaluate(model)}

        return self.cached(f"{spec.label}-run{run}-metrics", {"spec": asdict(spec), "what": what}, compute)

    def accuracy(self, model: torch.nn.Module) -> float:
        return accuracy(model, self.x_test, self.y_test, device=self.device)


# --- attacks ---------------------------------------------------------------------------------------

ATTACK_NAMES = {
    "fgsm": "FGSM", "ifgsm": "I-FGSM", "pgd": "PGD (paper: AdaDelta steps)", "noise": "uniform noise (eq. 14)",
    "pgd_buggy": "PGD with the reference code's box bug", "pgd_sign": "PGD (Madry: signed steps)",
    "pgd_margin": "PGD, signed steps, margin loss", "boundary": "Boundary (decision-based)",
    "transfer": "transfer from ReLU (PGD direction, line search)",
}


def attack_success(ctx: Ctx, model: torch.nn.Module, attack: str, *, n: int | None, epsilons: tuple[float, ...],
                   grad: str = "true", source: torch.nn.Module | None = None, float64: bool = False) -> torch.Tensor:
    """success (E, N) of ``attack`` on the first ``n`` test images, each epsilon attacked
    independently; RBFI gradients in ``grad`` mode ("true": the paper's attacks, "pseudo": through
    the pseudogradient). Minimal attacks (boundary, transfer) give L-inf distances, thresholded."""
    p = ctx.prof
    x, y = data.first(*data.mnist("test"), n)
    kind = R.kind_of(model)
    if float64:
        model = model.double()
    gm = R.WithGradMode(model, grad) if kind in ("rbfi", "rbf") else None
    loss = R.loss_per_image(kind)
    eps = list(epsilons)
    common = {"epsilons": eps, "batch_size": p.attack_batch, "device": ctx.device, "seed": ctx.seed}
    if attack in ("fgsm", "ifgsm"):
        steps = 1 if attack == "fgsm" else p.ifgsm_steps
        return R.evaluate_fn(model, x, y, A.ifgsm, steps=steps, loss=loss, grad_model=gm, **common)
    if attack in ("pgd", "pgd_buggy"):
        return R.evaluate_fn(model, x, y, R.pgd_adadelta, steps=p.pgd_steps, restarts=p.pgd_restarts, loss=loss,
                             grad_model=gm, buggy=attack == "pgd_buggy", **common)
    if attack in ("pgd_sign", "pgd_margin"):
        lf = loss if attack == "pgd_sign" else "margin"
        return R.evaluate_fn(model, x, y, A.pgd_torch, steps=p.pgd_steps, restarts=p.pgd_restarts, loss=lf,
                             grad_model=gm, **common)
    if attack == "noise":
        return R.evaluate_fn(model, x, y, R.uniform_noise, **common)
    if attack == "boundary":
        res = A.min_distance(model, x, y, attack="boundary", steps=p.boundary_steps, batch_size=p.attack_batch,
                             device=ctx.device, seed=ctx.seed)
        dist = A.distance(res.adversarials, x, "linf")
        dist[~torch.isfinite(res.distances)] = math.inf
        dist[res.distances == 0] = 0.0
        return torch.stack([dist <= e + A.TOL for e in eps])
    if attack == "transfer":
        res = A.min_distance(model, x, y, attack="transfer", source=source, norm="linf", source_eps=EPS_TRAIN,
                             steps=p.transfer_steps, batch_size=p.attack_batch, device=ctx.device, seed=ctx.seed)
        return torch.stack([res.distances <= e + A.TOL for e in eps])
    raise ValueError(f"unknown attack {attack!r}; valid: {', '.join(ATTACK_NAMES)}")


def cached_attack(ctx: Ctx, label: str, model, attack: str, *, n: int | None, epsilons, grad: str = "true",
                  source=None, source_label: str | None = None, float64: bool = False) -> torch.Tensor:
    extra = {"model": label, "attack": attack, "n": n, "eps": list(epsilons), "grad": grad, "source": source_label,
             "float64": float64}

    def compute() -> dict[str, Any]:
        s = attack_success(ctx, model, attack, n=n, epsilons=epsilons, grad=grad, source=source, float64=float64)
        return {"success": s.to(torch.uint8)}

    name = f"att-{label}-{attack}-{grad}" + ("-f64" if float64 else "")
    return ctx.cached(name, extra, compute)["success"].bool()


def tag(value: float) -> str:
    """A number for an artifact name (the store's names may not contain '.' or '+')."""
    return f"{value:g}".replace(".", "p").replace("+", "")


def acc_curve(success: torch.Tensor) -> list[float]:
    return (1 - success.float().mean(1)).tolist()


# --- the networks of the paper --------------------------------------------------------------------

def main_specs(p: profiles.RbfiProfile) -> dict[str, NetSpec]:
    tc = R.TrainConfig(epochs=p.epochs)
    return {
        "rbfi": NetSpec("rbfi", "rbfi", p.hidden, p.andor, n_train=p.n_train, train=tc),
        "relu": NetSpec("relu", "relu", p.hidden, n_train=p.n_train, train=tc),
        "sigmoid": NetSpec("sigmoid", "sigmoid", p.hidden, n_train=p.n_train, train=tc),
    }


def runs_of(p: profiles.RbfiProfile, kind: str) -> int:
    return p.runs_rbfi if kind in ("rbfi", "rbf") else p.runs_base


def table1_fig2(ctx: Ctx) -> dict[str, Any]:
    """Clean accuracy (all runs) and accuracy vs eps under FGSM, I-FGSM, noise (all runs, n_attack
    images) and the paper's PGD (run 0, n_pgd images). RBFI attacked with true gradients."""
    p = ctx.prof
    out: dict[str, Any] = {}
    for kind, spec in main_specs(p).items():
        model0, hist0 = ctx.model(spec, 0)  # weights kept: later cells attack run 0
        per_run = [{"history": hist0, "clean": ctx.accuracy(model0),
                    **{a: acc_curve(cached_attack(ctx, spec.label, model0, a, n=p.n_attack, epsilons=p.eps_grid))
                       for a in ("fgsm", "ifgsm", "noise")}}]
        for run in range(1, runs_of(p, kind)):
            def evaluate(model):
                return {"clean": ctx.accuracy(model),
                        **{a: acc_curve(attack_success(ctx, model, a, n=p.n_attack, epsilons=p.eps_grid))
                           for a in ("fgsm", "ifgsm", "noise")}}
            per_run.append(ctx.metrics(spec, run, evaluate, what="table1"))
        pgd = cached_attack(ctx, spec.label, model0, "pgd", n=p.n_pgd, epsilons=p.pgd_eps)
        out[kind] = {"runs": per_run, "pgd": acc_curve(pgd)}
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return t.mean().item(), (t.std().item() if len(values) > 1 else math.nan)


# --- beyond the paper: masking checks -----------------------------------------------------------

def beyond(ctx: Ctx) -> dict[str, Any]:
    """RBFI run 0 under attacks that do not trust its true gradient, and the PGD variants on ReLU.

    FGSM-type attacks and noise run on ``n_attack`` images over ``eps_grid``; every PGD variant on
    ``n_pgd`` images over ``pgd_eps``; Boundary on ``n_boundary``; results are reported at pgd_eps."""
    p = ctx.prof
    specs = main_specs(p)
    rbfi, _ = ctx.model(specs["rbfi"], 0)
    relu, _ = ctx.model(specs["relu"], 0)
    eps = list(p.pgd_eps)
    pick = [list(p.eps_grid).index(e) for e in eps]
    res: dict[str, dict[str, list[float]]] = {"rbfi": {}, "relu": {}}
    succ: dict[str, torch.Tensor] = {}
    for attack, grad in [("fgsm", "true"), ("fgsm", "pseudo"), ("ifgsm", "true"), ("ifgsm", "pseudo"),
                         ("noise", "true")]:
        s = cached_attack(ctx, "rbfi", rbfi, attack, n=p.n_attack, epsilons=p.eps_grid, grad=grad)[pick]
        succ[f"{attack}/{grad}"] = s
    for attack, grad in [("pgd", "true"), ("pgd", "pseudo"), ("pgd_buggy", "true"), ("pgd_sign", "true"),
                         ("pgd_sign", "pseudo"), ("pgd_margin", "pseudo")]:
        succ[f"{attack}/{grad}"] = cached_attack(ctx, "rbfi", rbfi, attack, n=p.n_pgd, epsilons=eps, grad=grad)
    succ["boundary"] = cached_attack(ctx, "rbfi", rbfi, "boundary", n=p.n_boundary, epsilons=eps)
    succ["transfer"] = cached_attack(ctx, "rbfi", rbfi, "transfer", n=p.n_pgd, epsilons=eps, source=relu,
                                     source_label="relu-run0")
    res["rbfi"] = {k: acc_curve(s) for k, s in succ.items()}
    for attack in ("pgd", "pgd_buggy", "pgd_sign"):
        res["relu"][attack] = acc_curve(cached_attack(ctx, "relu", relu, attack, n=p.n_pgd, epsilons=eps))
    # strongest per eps: an image counts as broken at eps if any attack broke it at any eps' <= eps
    # (on the images every attack saw)
    n_common = min(s.shape[1] for s in succ.values())
    union = torch.zeros(len(eps), n_common, dtype=torch.bool)
    for s in succ.values():
        union |= s[:, :n_common]
    union = torch.cummax(union.to(torch.uint8), dim=0).values.bool()
    best_attack = []
    for k in range(len(eps)):
        accs = {name: 1 - s[k, :n_common].float().mean().item() for name, s in succ.items()}
        best_attack.append(min(accs, key=accs.get))
    res["strongest"] = {"acc": acc_curve(union), "n": n_common, "best_single": best_attack}
    res["grad_support"] = gradient_support(ctx, rbfi)
    return res


def gradient_support(ctx: Ctx, model: torch.nn.Module, n: int = 100) -> dict[str, float]:
    """Mean number of pixels with a non-zero loss gradient, true vs pseudo: sign(0) = 0, so FGSM
    with the true gradient moves only these pixels."""
    x, y = data.first(*data.mnist("test"), min(n, ctx.prof.n_attack or n))
    out = {}
    for mode in ("true", "pseudo"):
        g = A._grad(R.WithGradMode(model, mode).to(ctx.device).eval(), x.to(ctx.device), y.to(ctx.device),
                    R.square_loss_per_image)
        out[mode] = (g.flatten(1) != 0).sum(1).float().mean().item()
    return out


# --- Fig. 3: adversarially trained ReLU networks ------------------------------------------------

def fig3_specs(p: profiles.RbfiProfile) -> dict[str, NetSpec]:
    def tc(adv):
        steps = p.ifgsm_steps if adv == "ifgsm" else p.adv_steps
        return R.TrainConfig(epochs=p.adv_epochs, adversarial=adv, adv_eps=EPS_TRAIN, adv_steps=steps)
    return {name: NetSpec(f"relu-adv-{adv}" if adv else "relu-fig3", "relu", p.hidden, n_train=p.adv_n_train,
                          train=tc(adv))
            for name, adv in (("ReLU", None), ("ReLU(FGSM)", "fgsm"), ("ReLU(I-FGSM)", "ifgsm"), ("ReLU(PGD)", "pgd"))}


def fig3(ctx: Ctx) -> dict[str, Any]:
    """The four attacks on the adversarially trained ReLU networks (trained and attacked in one
    cached computation: their weights are not kept) and on RBFI run 0 (the Table 1 results)."""
    p = ctx.prof

    def evaluate(model):
        r = {a: acc_curve(attack_success(ctx, model, a, n=p.n_attack, epsilons=p.eps_grid))
             for a in ("fgsm", "ifgsm", "noise")}
        r["pgd"] = acc_curve(attack_success(ctx, model, "pgd", n=p.n_pgd, epsilons=p.pgd_eps))
        r["clean"] = ctx.accuracy(model)
        return r

    out: dict[str, Any] = {name: ctx.metrics(spec, 0, evaluate, "fig3") for name, spec in fig3_specs(p).items()}
    rbfi = ctx.model(main_specs(p)["rbfi"], 0)[0]
    out["RBFI"] = {a: acc_curve(cached_attack(ctx, "rbfi", rbfi, a, n=p.n_attack, epsilons=p.eps_grid))
                   for a in ("fgsm", "ifgsm", "noise")}
    out["RBFI"]["pgd"] = acc_curve(cached_attack(ctx, "rbfi", rbfi, "pgd", n=p.n_pgd, epsilons=p.pgd_eps))
    out["RBFI"]["clean"] = ctx.accuracy(rbfi)
    return out


# --- Table 2 and Table 3 ----------------------------------------------------------------------------

def kinds_geometries(depth: int) -> dict[str, str]:
    n = depth + 1
    return {"And (all ^)": "^" * n, "Or (all v)": "v" * n, "alternating ^v": "".join("^v"[i % 2] for i in range(n)),
            "mixed (all *)": "*" * n}


def table2(ctx: Ctx) -> dict[str, dict[str, list[float]]]:
    p = ctx.prof
    out: dict[str, dict[str, list[float]]] = {}
    for name, andor in kinds_geometries(len(p.hidden)).items():
        out[name] = {}
        for width in p.kinds_widths:
            spec = NetSpec(f"kinds-{andor.replace('^', 'a').replace('*', 'm')}-{width}", "rbfi",
                           (width,) * len(p.hidden), andor, n_train=p.kinds_n_train,
                           train=R.TrainConfig(epochs=p.kinds_epochs))
            out[name][str(width)] = [ctx.metrics(spec, run, lambda m: {"clean": ctx.accuracy(m)}, "table2")["clean"]
                                     for run in range(p.kinds_runs)]
    return out


def table3(ctx: Ctx) -> dict[str, Any]:
    """The main RBFI network trained with true gradients vs pseudogradients (same recipe)."""
    p = ctx.prof
    spec = main_specs(p)["rbfi"]
    true_spec = replace(spec, label="rbfi-truegrad", train=replace(spec.train, grad_mode="true"))
    out = {"true": [], "pseudo": []}
    for run in range(p.truegrad_runs):
        r = ctx.metrics(true_spec, run, lambda m: {"clean": ctx.accuracy(m)}, "table3")
        out["true"].append({"clean": r["clean"], "curve": [h["eval_acc"] for h in r["history"]]})
        if run == 0:
            model, hist = ctx.model(spec, 0)
            out["pseudo"].append({"clean": ctx.accuracy(model), "curve": [h["eval_acc"] for h in hist]})
        else:
            r = ctx.metrics(spec, run, lambda m: {"clean": ctx.accuracy(m)}, "table3")
            out["pseudo"].append({"clean": r["clean"], "curve": [h["eval_acc"] for h in r["history"]]})
    return out


# --- Figs. 4 and 5, Table 4: sensitivity regularisation and bounds -----------------------------------

def fig4(ctx: Ctx) -> dict[str, Any]:
    """ReLU networks trained with lambda * S (eq. 7) for each lambda of the grid."""
    p = ctx.prof
    out = {}
    for lam in p.relu_lambdas:
        if lam == 0:  # the main ReLU network of run 0 (same recipe): its Table 1 results
            spec = main_specs(p)["relu"]
            model, _ = ctx.model(spec, 0)
            out["0"] = {"clean": ctx.accuracy(model), "bound": R.sensitivity_bound(model).item(),
                        **{a: acc_curve(cached_attack(ctx, spec.label, model, a, n=p.n_attack, epsilons=p.eps_grid))
                           for a in ("fgsm", "ifgsm")},
                        "pgd": acc_curve(cached_attack(ctx, spec.label, model, "pgd", n=p.n_pgd, epsilons=p.pgd_eps))}
            continue
        spec = NetSpec(f"relu-reg{tag(lam)}", "relu", p.hidden, n_train=p.n_train,
                       train=R.TrainConfig(epochs=p.epochs, reg_lambda=lam))

        def evaluate(model):
            r = {"clean": ctx.accuracy(model), "bound": R.sensitivity_bound(model).item()}
            for a in ("fgsm", "ifgsm"):
                r[a] = acc_curve(attack_success(ctx, model, a, n=p.n_attack, epsilons=p.eps_grid))
            r["pgd"] = acc_curve(attack_success(ctx, model, "pgd", n=p.n_pgd, epsilons=p.pgd_eps))
            return r

        out[f"{lam:g}"] = ctx.metrics(spec, 0, evaluate, "fig4")
    return out


def fig5(ctx: Ctx) -> dict[str, Any]:
    """RBFI with u <= 10, lambda = 0 and lambda > 0, vs the main u <= 3 network (run 0), under
    the paper's PGD with true gradients (in float64: e^{-z} underflows in float32 once z > 88, and
    z reaches 100 with u <= 10) and through the pseudogradient, on ``n_fig5`` images."""
    p = ctx.prof
    base = main_specs(p)["rbfi"]
    out: dict[str, Any] = {}
    rbfi3, _ = ctx.model(base, 0)
    out["u<=3"] = {"clean": ctx.accuracy(rbfi3), "bound": R.sensitivity_bound(rbfi3).item(),
                   **{key: acc_curve(cached_attack(ctx, "rbfi", rbfi3, "pgd", n=p.n_fig5, epsilons=p.pgd_eps, grad=g))
                      for key, g in (("pgd", "true"), ("pgd_pseudo", "pseudo"))}}
    for lam in (0.0, p.rbfi_lambda):
        spec = replace(base, label=f"rbfi-u10-reg{tag(lam)}", u_max=10.0, train=replace(base.train, reg_lambda=lam))

        def evaluate(model):
            r = {"clean": ctx.accuracy(model), "bound": R.sensitivity_bound(model).item(),
                 "pgd_pseudo": acc_curve(attack_success(ctx, model, "pgd", n=p.n_fig5, epsilons=p.pgd_eps,
                                                        grad="pseudo"))}
            r["pgd"] = acc_curve(attack_success(ctx, model, "pgd", n=p.n_fig5, epsilons=p.pgd_eps, float64=True))
            return r

        out[f"u<=10, lambda={lam:g}"] = ctx.metrics(spec, 0, evaluate, "fig5")
    return out


def table4(ctx: Ctx, f4: dict[str, Any], f5: dict[str, Any]) -> list[dict[str, Any]]:
    """Sensitivity bounds (7)/(8) of the networks above (no new training)."""
    p = ctx.prof
    sig, _ = ctx.model(main_specs(p)["sigmoid"], 0)
    relu, _ = ctx.model(main_specs(p)["relu"], 0)
    rows = [{"network": f"RBFI {name}", "bound": r["bound"]} for name, r in f5.items()]
    rows += [{"network": f"ReLU, lambda={lam}" + (" (main, run 0)" if float(lam) == 0 else ""), "bound": r["bound"]}
             for lam, r in f4.items()]
    if not any(float(lam) == 0 for lam in f4):
        rows.append({"network": "ReLU (main, run 0)", "bound": R.sensitivity_bound(relu).item()})
    rows.append({"network": "Sigmoid (main, run 0), 1/4 per layer", "bound": R.sensitivity_bound(sig).item()})
    rows.append({"network": "Sigmoid, as the reference code (no 1/4)",
                 "bound": R.sensitivity_bound(sig, sigmoid_quarter=False).item()})
    return rows


# --- paper sections 6.8 and 6.9 ---------------------------------------------------------------------

def deep(ctx: Ctx) -> dict[str, Any]:
    p = ctx.prof
    hidden = (p.deep_width,) * p.deep_depth
    out = {}
    for kind in ("relu", "sigmoid", "rbfi"):
        spec = NetSpec(f"deep-{kind}", kind, hidden, n_train=p.deep_n_train, train=R.TrainConfig(epochs=p.deep_epochs))
        r = ctx.metrics(spec, 0, lambda m: {"clean": ctx.accuracy(m)}, "deep")
        out[kind] = {"clean": r["clean"], "curve": [h["eval_acc"] for h in r["history"]]}
    return out


def rbf_vs_rbfi(ctx: Ctx) -> dict[str, Any]:
    p = ctx.prof
    base = main_specs(p)["rbfi"]
    spec = replace(base, label="rbf-l2", kind="rbf")
    r = ctx.metrics(spec, 0, lambda m: {"clean": ctx.accuracy(m)}, "rbf")
    _, hist = ctx.model(base, 0)
    return {"RBF (2-norm)": [h["eval_acc"] for h in r["history"]], "RBFI": [h["eval_acc"] for h in hist]}


# --- headless run (the GPU machine has no papermill) ---------------------------------------------

def run_all(ctx: Ctx) -> dict[str, Any]:
    """Everything the notebook needs, in the notebook's order."""
    out = {"table1_fig2": table1_fig2(ctx), "beyond": beyond(ctx), "fig3": fig3(ctx), "table2": table2(ctx),
           "table3": table3(ctx)}
    out["fig4"], out["fig5"] = fig4(ctx), fig5(ctx)
    out["table4"] = table4(ctx, out["fig4"], out["fig5"])
    out["deep"], out["rbf"] = deep(ctx), rbf_vs_rbfi(ctx)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Compute the RBFI notebook's artifacts without Jupyter.")
    ap.add_argument("--profile", default="paper", choices=profiles.PROFILE_NAMES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args(argv)
    prof, dev = profiles.setup(NB, args.profile, args.seed, args.device)
    ctx = Ctx(prof, args.seed, dev, args.retrain, progress=True)
    t0 = time.perf_counter()
    run_all(ctx)
    for k, v in sorted(ctx.timings.items(), key=lambda kv: -kv[1]):
        print(f"{v:8.1f} s  {k}")
    print(f"all RBFI artifacts at profile={prof.name} in {time.perf_counter() - t0:.0f} s on {dev}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
