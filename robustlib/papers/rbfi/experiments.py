"""The steps behind the RBFI chapter's figures and tables, each computed once and kept in the store.

``steps(profile)`` lists them (``python -m robustlib compute rbfi --profile P`` runs them all);
each is a function of the :class:`~robustlib.experiment.Experiment` alone. Every result is keyed by
the whole profile plus what else changes it (a frozen dataclass below); ``retrain=True``
recomputes.

Two kinds of trained networks:

* :func:`main_model`: weights kept (safetensors) because several steps attack them: run 0 of each
  main network (RBFI, ReLU, sigmoid; about 15 MB at the paper's size);
* :func:`metrics`: trained inside a cached computation that returns only numbers (the other runs,
  Fig. 3, Table 2, Table 3, Figs. 4 and 5, section 6.8), so the paper profile does not commit
  100 MB of weights.

Run k of a network uses seed ``seed + k`` (the reference code seeds run k with k).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ... import attacks, data, experiment, protocol
from ...experiment import Experiment, Step
from ...metrics import distance
from ...train import accuracy
from . import model as rbfi
from .profile import RbfiProfile

EPS_TRAIN = 0.3  # adversarial training epsilon (paper: "consistent with [MMS17]"; value missing from the text)
KINDS = {"relu": "ReLU", "sigmoid": "Sigmoid", "rbfi": "RBFI"}  # the three main networks, table order
ATTACKS = {"fgsm": "FGSM", "ifgsm": "I-FGSM", "pgd": "PGD (paper protocol)", "noise": "uniform noise"}  # Table 1


# --- what is trained and what is stored: the keys ---------------------------------------------------


@dataclass(frozen=True)
class NetSpec:
    """What is trained: the network and its recipe (everything that changes the weights)."""

    label: str  # artifact name
    kind: str  # rbfi | rbf | relu | sigmoid
    hidden: tuple[int, ...]
    andor: str | None = None
    u_max: float = 3.0
    n_train: int | None = None
    train: rbfi.TrainConfig = field(default_factory=rbfi.TrainConfig)

    def build(self) -> torch.nn.Module:
        extra = {"u_max": self.u_max} if self.kind in ("rbfi", "rbf") else {}
        return rbfi.build(self.kind, self.hidden, self.andor, **extra)


@dataclass(frozen=True)
class ModelKey:
    """A network whose weights are stored (hashes as ``{"profile": ..., "spec": ...}``)."""

    profile: RbfiProfile
    spec: NetSpec


@dataclass(frozen=True)
class MetricsKey:
    """Numbers measured on a network that is trained and dropped; ``what`` names the evaluation."""

    profile: RbfiProfile
    spec: NetSpec
    what: str


@dataclass(frozen=True)
class CheckpointKey:
    """Training checkpoints depend on the recipe only: a finished training is reused when only the
    evaluation settings of the profile change."""

    spec: NetSpec


@dataclass(frozen=True)
class AttackKey:
    """One attack on one stored network: success (E, N) on the first ``n`` test images."""

    profile: RbfiProfile
    model: str  # the network's label
    attack: str  # a key of ATTACK_NAMES
    n: int | None
    eps: tuple[float, ...]
    grad: str  # RBFI gradients: "true" (the paper's attacks) or "pseudo"
    source: str | None  # transfer: the source network's label
    float64: bool


# --- data, training, accuracy ---------------------------------------------------------------------


def clean_images(exp: Experiment) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean-accuracy images (the first ``n_test`` of the test set)."""
    return data.first(*data.mnist("test"), exp.profile.n_test)


def trainer(exp: Experiment, spec: NetSpec, run: int) -> Callable[[torch.nn.Module, Any], list[dict[str, float]]]:
    """``train(model, checkpoint_dir)`` for run ``run`` of ``spec`` (per-epoch accuracy on the
    first 1,000 clean-accuracy images)."""
    x, y = data.first(*data.mnist("train"), spec.n_train)
    x_eval, y_eval = (t[:1000] for t in clean_images(exp))

    def train(model: torch.nn.Module, ckpt) -> list[dict[str, float]]:
        return rbfi.train(
            model,
            x,
            y,
            spec.train,
            seed=exp.seed + run,
            device=exp.device,
            checkpoint=ckpt,
            progress=exp.progress,
            desc=f"{spec.label} run {run}",
            eval_data=(x_eval, y_eval),
        )

    return train


def clean_accuracy(exp: Experiment, model: torch.nn.Module) -> float:
    return accuracy(model, *clean_images(exp), device=exp.device)


def network(exp: Experiment, spec: NetSpec, run: int = 0) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """A trained network whose weights are stored: ``(model, history)``."""
    return exp.model(
        f"{spec.label}-run{run}", ModelKey(exp.profile, spec), spec.build, trainer(exp, spec, run), seed=exp.seed + run
    )


def main_model(exp: Experiment, kind: str) -> torch.nn.Module:
    """Run 0 of the main ``kind`` network (rbfi, relu or sigmoid)."""
    return network(exp, main_specs(exp.profile)[kind], 0)[0]


def metrics(
    exp: Experiment, spec: NetSpec, run: int, evaluate: Callable[[torch.nn.Module], dict[str, Any]], what: str
) -> dict[str, Any]:
    """Train (weights not stored) and return ``{history, **evaluate(model)}``, cached."""

    def compute() -> dict[str, Any]:
        torch.manual_seed(exp.seed + run)
        model = spec.build().to(exp.device)
        ckpt = exp.checkpoint_dir(f"{spec.label}-run{run}", CheckpointKey(spec), seed=exp.seed + run)
        history = trainer(exp, spec, run)(model, ckpt)
        model.eval()
        return {"history": history, **evaluate(model)}

    return exp.cached(f"{spec.label}-run{run}-metrics", MetricsKey(exp.profile, spec, what), compute)


# --- attacks ---------------------------------------------------------------------------------------

ATTACK_NAMES = {
    "fgsm": "FGSM",
    "ifgsm": "I-FGSM",
    "pgd": "PGD (paper: AdaDelta steps)",
    "noise": "uniform noise (eq. 14)",
    "pgd_buggy": "PGD with the reference code's box bug",
    "pgd_sign": "PGD (Madry: signed steps)",
    "pgd_margin": "PGD, signed steps, margin loss",
    "boundary": "Boundary (decision-based)",
    "transfer": "transfer from ReLU (PGD direction, line search)",
}


def attack_success(
    exp: Experiment,
    model: torch.nn.Module,
    attack: str,
    *,
    n: int | None,
    epsilons: tuple[float, ...],
    grad: str = "true",
    source: torch.nn.Module | None = None,
    float64: bool = False,
) -> torch.Tensor:
    """success (E, N) of ``attack`` on the first ``n`` test images, each epsilon attacked
    independently (the paper's protocol); RBFI gradients in ``grad`` mode ("true": the paper's
    attacks, "pseudo": through the pseudogradient). Minimal attacks (boundary, transfer) give
    L-inf distances, thresholded at each epsilon."""
    if attack not in ATTACK_NAMES:
        raise ValueError(f"unknown attack {attack!r}; valid: {', '.join(ATTACK_NAMES)}")
    p = exp.profile
    x, y = data.first(*data.mnist("test"), n)
    kind = rbfi.kind_of(model)
    if float64:
        model = model.double()
    common = {"batch_size": p.attack_batch, "device": exp.device, "seed": exp.seed}
    if attack == "boundary":  # minimises L2; its adversarials are counted by their L-inf size
        res = attacks.min_distance(model, x, y, attack="boundary", steps=p.boundary_steps, **common)
        dist = distance(res.adversarials, x, "linf")
        dist[~torch.isfinite(res.distances)] = math.inf
        dist[res.distances == 0] = 0.0
        return torch.stack([dist <= e + attacks.TOL for e in epsilons])
    if attack == "transfer":
        res = attacks.min_distance(
            model,
            x,
            y,
            attack="transfer",
            source=source,
            norm="linf",
            source_eps=EPS_TRAIN,
            steps=p.transfer_steps,
            **common,
        )
        return torch.stack([res.distances <= e + attacks.TOL for e in epsilons])
    gm = rbfi.WithGradMode(model, grad) if kind in ("rbfi", "rbf") else None
    loss = rbfi.loss_per_image(kind)
    pgd = {"steps": p.pgd_steps, "restarts": p.pgd_restarts, "grad_model": gm}
    name, options = {
        "fgsm": ("ifgsm", {"steps": 1, "loss": loss, "grad_model": gm}),
        "ifgsm": ("ifgsm", {"steps": p.ifgsm_steps, "loss": loss, "grad_model": gm}),
        "pgd": ("rbfi_pgd", {**pgd, "loss": loss}),
        "pgd_buggy": ("rbfi_pgd_reference", {**pgd, "loss": loss}),
        "pgd_sign": ("pgd_torch", {**pgd, "loss": loss}),
        "pgd_margin": ("pgd_torch", {**pgd, "loss": "margin"}),
        "noise": ("rbfi_noise", {}),
    }[attack]
    res = attacks.evaluate(model, x, y, attack=name, epsilons=list(epsilons), monotone=False, **common, **options)
    return res.success


def cached_attack(
    exp: Experiment,
    label: str,
    model: torch.nn.Module,
    attack: str,
    *,
    n: int | None,
    epsilons: tuple[float, ...],
    grad: str = "true",
    source: torch.nn.Module | None = None,
    source_label: str | None = None,
    float64: bool = False,
) -> torch.Tensor:
    """:func:`attack_success`, stored under the network's ``label``."""
    key = AttackKey(exp.profile, label, attack, n, tuple(epsilons), grad, source_label, float64)

    def compute() -> dict[str, Any]:
        s = attack_success(exp, model, attack, n=n, epsilons=epsilons, grad=grad, source=source, float64=float64)
        return {"success": s.to(torch.uint8)}

    name = f"att-{label}-{attack}-{grad}" + ("-f64" if float64 else "")
    return exp.cached(name, key, compute)["success"].bool()


def tag(value: float) -> str:
    """A number for an artifact name (the store's names may not contain '.' or '+')."""
    return f"{value:g}".replace(".", "p").replace("+", "")


def acc_curve(success: torch.Tensor) -> list[float]:
    """Accuracy per epsilon from success (E, N)."""
    return (1 - success.float().mean(1)).tolist()


# --- reading results (the rules, tables and summary use these) -------------------------------------


def at(curve: list[float], grid: tuple[float, ...], eps: float = 0.3) -> float:
    """The value of ``curve`` at ``eps`` on ``grid`` (nan where the grid lacks it)."""
    return curve[list(grid).index(eps)] if eps in grid else math.nan


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (nan for one value)."""
    t = torch.tensor(values, dtype=torch.float64)
    return t.mean().item(), (t.std().item() if len(values) > 1 else math.nan)


def pm(values: list[float], digits: int = 1) -> str:
    """``mean ± std %`` over runs (``mean %`` for one run)."""
    m, s = mean_std(values)
    return f"{100 * m:.{digits}f} ± {100 * s:.{digits}f} %" if len(values) > 1 else f"{100 * m:.{digits}f} %"


def pct(value: float) -> str:
    return f"{100 * value:.1f} %"


# --- Table 1 and Fig. 2: the main networks --------------------------------------------------------


def main_specs(p: RbfiProfile) -> dict[str, NetSpec]:
    tc = rbfi.TrainConfig(epochs=p.epochs)
    return {
        "rbfi": NetSpec("rbfi", "rbfi", p.hidden, p.andor, n_train=p.n_train, train=tc),
        "relu": NetSpec("relu", "relu", p.hidden, n_train=p.n_train, train=tc),
        "sigmoid": NetSpec("sigmoid", "sigmoid", p.hidden, n_train=p.n_train, train=tc),
    }


def runs_of(p: RbfiProfile, kind: str) -> int:
    return p.runs_rbfi if kind in ("rbfi", "rbf") else p.runs_base


def table1(exp: Experiment) -> dict[str, Any]:
    """Clean accuracy (all runs) and accuracy vs eps under FGSM, I-FGSM, noise (all runs, n_attack
    images) and the paper's PGD (run 0, n_pgd images). RBFI attacked with true gradients.

    ``{kind: {"runs": [{"history", "clean", "fgsm", "ifgsm", "noise"} per run], "pgd": curve}}``."""
    p = exp.profile
    out: dict[str, Any] = {}
    for kind, spec in main_specs(p).items():
        model0, hist0 = network(exp, spec, 0)  # weights kept: later steps attack run 0
        per_run = [
            {
                "history": hist0,
                "clean": clean_accuracy(exp, model0),
                **{
                    a: acc_curve(cached_attack(exp, spec.label, model0, a, n=p.n_attack, epsilons=p.eps_grid))
                    for a in ("fgsm", "ifgsm", "noise")
                },
            }
        ]
        for run in range(1, runs_of(p, kind)):

            def evaluate(model):
                return {
                    "clean": clean_accuracy(exp, model),
                    **{
                        a: acc_curve(attack_success(exp, model, a, n=p.n_attack, epsilons=p.eps_grid))
                        for a in ("fgsm", "ifgsm", "noise")
                    },
                }

            per_run.append(metrics(exp, spec, run, evaluate, what="table1"))
        pgd = cached_attack(exp, spec.label, model0, "pgd", n=p.n_pgd, epsilons=p.pgd_eps)
        out[kind] = {"runs": per_run, "pgd": acc_curve(pgd)}
    return out


# --- beyond the paper: masking checks -----------------------------------------------------------

BEYOND_RBFI = {  # the attacks on RBFI run 0: key -> (attack, RBFI gradient), in table order
    "fgsm/true": ("fgsm", "true"),
    "fgsm/pseudo": ("fgsm", "pseudo"),
    "ifgsm/true": ("ifgsm", "true"),
    "ifgsm/pseudo": ("ifgsm", "pseudo"),
    "noise/true": ("noise", "true"),
    "pgd/true": ("pgd", "true"),
    "pgd/pseudo": ("pgd", "pseudo"),
    "pgd_buggy/true": ("pgd_buggy", "true"),
    "pgd_sign/true": ("pgd_sign", "true"),
    "pgd_sign/pseudo": ("pgd_sign", "pseudo"),
    "pgd_margin/pseudo": ("pgd_margin", "pseudo"),
}


def beyond(exp: Experiment) -> dict[str, Any]:
    """RBFI run 0 under attacks that do not trust its true gradient, and the PGD variants on ReLU.

    FGSM-type attacks and noise run on ``n_attack`` images over ``eps_grid``; every PGD variant on
    ``n_pgd`` images over ``pgd_eps``; Boundary on ``n_boundary``; results are reported at pgd_eps.
    ``strongest``: an image counts as broken at eps if any attack broke it at any eps' <= eps (on
    the images every attack saw)."""
    p = exp.profile
    model, relu = main_model(exp, "rbfi"), main_model(exp, "relu")
    eps = list(p.pgd_eps)
    pick = [list(p.eps_grid).index(e) for e in eps]
    succ: dict[str, torch.Tensor] = {}
    for key, (attack, grad) in BEYOND_RBFI.items():
        if attack in ("fgsm", "ifgsm", "noise"):
            succ[key] = cached_attack(exp, "rbfi", model, attack, n=p.n_attack, epsilons=p.eps_grid, grad=grad)[pick]
        else:
            succ[key] = cached_attack(exp, "rbfi", model, attack, n=p.n_pgd, epsilons=eps, grad=grad)
    succ["boundary"] = cached_attack(exp, "rbfi", model, "boundary", n=p.n_boundary, epsilons=eps)
    succ["transfer"] = cached_attack(
        exp, "rbfi", model, "transfer", n=p.n_pgd, epsilons=eps, source=relu, source_label="relu-run0"
    )
    res: dict[str, Any] = {"rbfi": {k: acc_curve(s) for k, s in succ.items()}, "relu": {}}
    for attack in ("pgd", "pgd_buggy", "pgd_sign"):
        res["relu"][attack] = acc_curve(cached_attack(exp, "relu", relu, attack, n=p.n_pgd, epsilons=eps))
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
    res["grad_support"] = gradient_support(exp, model)
    return res


def gradient_support(exp: Experiment, model: torch.nn.Module, n: int = 100) -> dict[str, float]:
    """Mean number of pixels with a non-zero loss gradient, true vs pseudo: sign(0) = 0, so FGSM
    with the true gradient moves only these pixels."""
    x, y = data.first(*data.mnist("test"), min(n, exp.profile.n_attack or n))
    x, y = x.to(exp.device), y.to(exp.device)
    out = {}
    for mode in ("true", "pseudo"):
        xr = x.clone().requires_grad_(True)
        with torch.enable_grad(), rbfi.gradient_mode(model.to(exp.device).eval(), mode):
            (g,) = torch.autograd.grad(rbfi.square_loss_per_image(model(xr), y).sum(), xr)
        out[mode] = (g.flatten(1) != 0).sum(1).float().mean().item()
    return out


# --- Fig. 3: adversarially trained ReLU networks ------------------------------------------------


def fig3_specs(p: RbfiProfile) -> dict[str, NetSpec]:
    def tc(adv):
        steps = p.ifgsm_steps if adv == "ifgsm" else p.adv_steps
        return rbfi.TrainConfig(epochs=p.adv_epochs, adversarial=adv, adv_eps=EPS_TRAIN, adv_steps=steps)

    return {
        name: NetSpec(f"relu-adv-{adv}" if adv else "relu-fig3", "relu", p.hidden, n_train=p.adv_n_train, train=tc(adv))
        for name, adv in (("ReLU", None), ("ReLU(FGSM)", "fgsm"), ("ReLU(I-FGSM)", "ifgsm"), ("ReLU(PGD)", "pgd"))
    }


def fig3(exp: Experiment) -> dict[str, Any]:
    """The four attacks on the adversarially trained ReLU networks (trained and attacked in one
    cached computation: their weights are not kept) and on RBFI run 0 (the Table 1 results).

    ``{network: {"clean", "fgsm", "ifgsm", "noise", "pgd"}}`` with networks ReLU, ReLU(FGSM),
    ReLU(I-FGSM), ReLU(PGD), RBFI."""
    p = exp.profile

    def evaluate(model):
        r = {
            a: acc_curve(attack_success(exp, model, a, n=p.n_attack, epsilons=p.eps_grid))
            for a in ("fgsm", "ifgsm", "noise")
        }
        r["pgd"] = acc_curve(attack_success(exp, model, "pgd", n=p.n_pgd, epsilons=p.pgd_eps))
        r["clean"] = clean_accuracy(exp, model)
        return r

    out: dict[str, Any] = {name: metrics(exp, spec, 0, evaluate, "fig3") for name, spec in fig3_specs(p).items()}
    model = main_model(exp, "rbfi")
    out["RBFI"] = {
        a: acc_curve(cached_attack(exp, "rbfi", model, a, n=p.n_attack, epsilons=p.eps_grid))
        for a in ("fgsm", "ifgsm", "noise")
    }
    out["RBFI"]["pgd"] = acc_curve(cached_attack(exp, "rbfi", model, "pgd", n=p.n_pgd, epsilons=p.pgd_eps))
    out["RBFI"]["clean"] = clean_accuracy(exp, model)
    return out


# --- Table 2 and Table 3 ----------------------------------------------------------------------------


def kinds_geometries(depth: int) -> dict[str, str]:
    n = depth + 1
    return {
        "And (all ^)": "^" * n,
        "Or (all v)": "v" * n,
        "alternating ^v": "".join("^v"[i % 2] for i in range(n)),
        "mixed (all *)": "*" * n,
    }


def table2(exp: Experiment) -> dict[str, dict[str, list[float]]]:
    """Clean accuracy per layer-kind geometry and width: ``{geometry: {width: [per run]}}``."""
    p = exp.profile
    out: dict[str, dict[str, list[float]]] = {}
    for name, andor in kinds_geometries(len(p.hidden)).items():
        out[name] = {}
        for width in p.kinds_widths:
            spec = NetSpec(
                f"kinds-{andor.replace('^', 'a').replace('*', 'm')}-{width}",
                "rbfi",
                (width,) * len(p.hidden),
                andor,
                n_train=p.kinds_n_train,
                train=rbfi.TrainConfig(epochs=p.kinds_epochs),
            )
            out[name][str(width)] = [
                metrics(exp, spec, run, lambda m: {"clean": clean_accuracy(exp, m)}, "table2")["clean"]
                for run in range(p.kinds_runs)
            ]
    return out


def table3(exp: Experiment) -> dict[str, Any]:
    """The main RBFI network trained with true gradients vs pseudogradients (same recipe):
    ``{"true": [{"clean", "curve"} per run], "pseudo": [...]}``."""
    p = exp.profile
    spec = main_specs(p)["rbfi"]
    true_spec = replace(spec, label="rbfi-truegrad", train=replace(spec.train, grad_mode="true"))

    def evaluate(m):
        return {"clean": clean_accuracy(exp, m)}

    out: dict[str, list[dict[str, Any]]] = {"true": [], "pseudo": []}
    for run in range(p.truegrad_runs):
        r = metrics(exp, true_spec, run, evaluate, "table3")
        out["true"].append({"clean": r["clean"], "curve": [h["eval_acc"] for h in r["history"]]})
        if run == 0:
            model, hist = network(exp, spec, 0)
            out["pseudo"].append({"clean": clean_accuracy(exp, model), "curve": [h["eval_acc"] for h in hist]})
        else:
            r = metrics(exp, spec, run, evaluate, "table3")
            out["pseudo"].append({"clean": r["clean"], "curve": [h["eval_acc"] for h in r["history"]]})
    return out


# --- Figs. 4 and 5, Table 4: sensitivity regularisation and bounds -----------------------------------


def fig4(exp: Experiment) -> dict[str, Any]:
    """ReLU networks trained with lambda * S (eq. 7) for each lambda of the grid:
    ``{f"{lambda:g}": {"clean", "bound", "fgsm", "ifgsm", "pgd"}}``."""
    p = exp.profile
    out = {}
    for lam in p.relu_lambdas:
        if lam == 0:  # the main ReLU network of run 0 (same recipe): its Table 1 results
            spec = main_specs(p)["relu"]
            model, _ = network(exp, spec, 0)
            out["0"] = {
                "clean": clean_accuracy(exp, model),
                "bound": rbfi.sensitivity_bound(model).item(),
                **{
                    a: acc_curve(cached_attack(exp, spec.label, model, a, n=p.n_attack, epsilons=p.eps_grid))
                    for a in ("fgsm", "ifgsm")
                },
                "pgd": acc_curve(cached_attack(exp, spec.label, model, "pgd", n=p.n_pgd, epsilons=p.pgd_eps)),
            }
            continue
        spec = NetSpec(
            f"relu-reg{tag(lam)}",
            "relu",
            p.hidden,
            n_train=p.n_train,
            train=rbfi.TrainConfig(epochs=p.epochs, reg_lambda=lam),
        )

        def evaluate(model):
            r = {"clean": clean_accuracy(exp, model), "bound": rbfi.sensitivity_bound(model).item()}
            for a in ("fgsm", "ifgsm"):
                r[a] = acc_curve(attack_success(exp, model, a, n=p.n_attack, epsilons=p.eps_grid))
            r["pgd"] = acc_curve(attack_success(exp, model, "pgd", n=p.n_pgd, epsilons=p.pgd_eps))
            return r

        out[f"{lam:g}"] = metrics(exp, spec, 0, evaluate, "fig4")
    return out


def fig5_label(lam: float) -> str:
    return f"u<=10, lambda={lam:g}"


def u10_spec(p: RbfiProfile, lam: float) -> NetSpec:
    """The main RBFI recipe with u <= 10 and lambda * S (eq. 8) in the loss (Fig. 5)."""
    base = main_specs(p)["rbfi"]
    return replace(base, label=f"rbfi-u10-reg{tag(lam)}", u_max=10.0, train=replace(base.train, reg_lambda=lam))


def fig5(exp: Experiment) -> dict[str, Any]:
    """RBFI with u <= 10, lambda = 0 and lambda > 0 (weights stored: the yardstick attacks them
    too), vs the main u <= 3 network (run 0), under the paper's PGD with true gradients (in
    float64: e^{-z} underflows in float32 once z > 88, and z reaches 100 with u <= 10) and through
    the pseudogradient, on ``n_fig5`` images:
    ``{"u<=3" | fig5_label(lambda): {"clean", "bound", "pgd", "pgd_pseudo"}}``."""
    p = exp.profile
    out: dict[str, Any] = {}
    rbfi3, _ = network(exp, main_specs(p)["rbfi"], 0)
    out["u<=3"] = {
        "clean": clean_accuracy(exp, rbfi3),
        "bound": rbfi.sensitivity_bound(rbfi3).item(),
        **{
            key: acc_curve(cached_attack(exp, "rbfi", rbfi3, "pgd", n=p.n_fig5, epsilons=p.pgd_eps, grad=g))
            for key, g in (("pgd", "true"), ("pgd_pseudo", "pseudo"))
        },
    }
    for lam in (0.0, p.rbfi_lambda):
        spec = u10_spec(p, lam)
        model, _ = network(exp, spec, 0)
        r = {"clean": clean_accuracy(exp, model), "bound": rbfi.sensitivity_bound(model).item()}
        r["pgd_pseudo"] = acc_curve(
            cached_attack(exp, spec.label, model, "pgd", n=p.n_fig5, epsilons=p.pgd_eps, grad="pseudo")
        )
        r["pgd"] = acc_curve(cached_attack(exp, spec.label, model, "pgd", n=p.n_fig5, epsilons=p.pgd_eps, float64=True))
        out[fig5_label(lam)] = r
    return out


def table4(exp: Experiment) -> dict[str, Any]:
    """Sensitivity bounds (7)/(8) of the networks of Figs. 4 and 5 and of the main networks (no new
    training): ``{"rows": [{"network", "bound"}], "main": {kind: bound of run 0}}``."""
    f4, f5 = fig4(exp), fig5(exp)  # loaded from the store
    models = {kind: main_model(exp, kind) for kind in KINDS}
    main = {kind: rbfi.sensitivity_bound(m).item() for kind, m in models.items()}
    rows = [{"network": f"RBFI {name}", "bound": r["bound"]} for name, r in f5.items()]
    rows += [
        {"network": f"ReLU, lambda={lam}" + (" (main, run 0)" if float(lam) == 0 else ""), "bound": r["bound"]}
        for lam, r in f4.items()
    ]
    if not any(float(lam) == 0 for lam in f4):
        rows.append({"network": "ReLU (main, run 0)", "bound": main["relu"]})
    rows.append({"network": "Sigmoid (main, run 0), 1/4 per layer", "bound": main["sigmoid"]})
    rows.append(
        {
            "network": "Sigmoid, as the reference code (no 1/4)",
            "bound": rbfi.sensitivity_bound(models["sigmoid"], sigmoid_quarter=False).item(),
        }
    )
    return {"rows": rows, "main": main}


# --- paper sections 6.8 and 6.9 ---------------------------------------------------------------------


def deep(exp: Experiment) -> dict[str, Any]:
    """Deep ``deep_width``^``deep_depth``-10 networks: ``{kind: {"clean", "curve"}}``."""
    p = exp.profile
    hidden = (p.deep_width,) * p.deep_depth
    out = {}
    for kind in ("relu", "sigmoid", "rbfi"):
        spec = NetSpec(
            f"deep-{kind}", kind, hidden, n_train=p.deep_n_train, train=rbfi.TrainConfig(epochs=p.deep_epochs)
        )
        r = metrics(exp, spec, 0, lambda m: {"clean": clean_accuracy(exp, m)}, "deep")
        out[kind] = {"clean": r["clean"], "curve": [h["eval_acc"] for h in r["history"]]}
    return out


def rbf_vs_rbfi(exp: Experiment) -> dict[str, list[float]]:
    """Per-epoch accuracy of 2-norm RBF units vs RBFI units (the main recipe)."""
    base = main_specs(exp.profile)["rbfi"]
    spec = replace(base, label="rbf-l2", kind="rbf")
    r = metrics(exp, spec, 0, lambda m: {"clean": clean_accuracy(exp, m)}, "rbf")
    _, hist = network(exp, base, 0)
    return {"RBF (2-norm)": [h["eval_acc"] for h in r["history"]], "RBFI": [h["eval_acc"] for h in hist]}


# --- the yardstick (robustlib.protocol) ----------------------------------------------------------

YARDSTICK_SOURCE = "relu-mlp"  # the transfer source: the baselines chapter's ReLU MLP (zoo name)


@dataclass(frozen=True)
class YardstickKey:
    """One network's yardstick result: the protocol's settings, the network (its store key), what
    the adapter adds (``adapter.ATTACKS``), the transfer source's store key, and float64."""

    protocol: protocol.ProtocolConfig
    model: ModelKey
    adapter: tuple[str, ...]
    source: Any
    float64: bool = False


def yardstick_config(p: RbfiProfile, **overrides: Any) -> protocol.ProtocolConfig:
    return protocol.ProtocolConfig.for_profile(p.name, **overrides)


def _baselines(exp: Experiment) -> Experiment:
    """The baselines chapter at ``exp``'s profile, seed and device, load-only (its key only)."""
    return experiment.start("baselines", exp.profile.name, exp.seed, exp.device, load_only=True)


def _source_key(exp: Experiment) -> Any:
    from ..baselines import experiments as base

    return base.model_key(_baselines(exp), "relu_mlp")


def _transfer_source(exp: Experiment) -> torch.nn.Module:
    from ..baselines import adapter as base_adapter

    return base_adapter.transfer_source(exp.profile.name, exp.device, seed=exp.seed)


def evaluate_network(
    exp: Experiment,
    name: str,
    spec: NetSpec,
    load: Callable[[], torch.nn.Module],
    config: protocol.ProtocolConfig,
    *,
    float64: bool = False,
) -> protocol.ProtocolResult:
    """The protocol on run 0 of ``spec`` (``load()`` gives it), stored as ``yardstick-<name>``.
    RBFI networks get the RBFI adapter (``adapter.rbfi_adapter``), the others none."""
    from . import adapter

    key = YardstickKey(config, ModelKey(exp.profile, spec), adapter.ATTACKS, _source_key(exp), float64)

    def compute() -> dict[str, Any]:
        model = load()
        if float64:
            model = model.double()
        if isinstance(model, rbfi.RBFINet):
            ad = adapter.rbfi_adapter(name, model, exp.profile)
        else:
            ad = protocol.Adapter(name, model)
        x, y = protocol.protocol_images(config)
        res = protocol.evaluate(ad, x, y, config, source=_transfer_source(exp), progress=exp.progress)
        return res.to_dict()

    return protocol.ProtocolResult.from_dict(exp.cached(f"yardstick-{name}", key, compute))


def yardstick(exp: Experiment) -> dict[str, protocol.ProtocolResult]:
    """The protocol on the first ``n_images`` test images for each zoo model (``adapter.MODELS``:
    the main RBFI network and its ReLU network, run 0): ``{zoo name: ProtocolResult}``."""
    from . import adapter

    specs = main_specs(exp.profile)
    config = yardstick_config(exp.profile)
    return {
        name: evaluate_network(exp, name, specs[adapter.KIND[name]], lambda name=name: adapter.load(exp, name), config)
        for name in adapter.MODELS
    }


def yardstick_fig5(exp: Experiment) -> dict[str, protocol.ProtocolResult]:
    """The protocol in L-inf, on the first ``n_fig5`` test images (Fig. 5's), for the u <= 10
    networks of Fig. 5 (in float64, as the paper's PGD there): ``{fig5_label(lambda): result}``.
    The u <= 3 network is the main one (the ``yardstick`` step, on its first ``n_fig5`` images)."""
    p = exp.profile
    config = yardstick_config(p, n_images=p.n_fig5, norms=("linf",))
    out = {}
    for lam in (0.0, p.rbfi_lambda):
        spec = u10_spec(p, lam)
        out[fig5_label(lam)] = evaluate_network(
            exp, spec.label, spec, lambda spec=spec: network(exp, spec, 0)[0], config, float64=True
        )
    return out


def first_images(result: protocol.ProtocolResult, n: int) -> protocol.ProtocolResult:
    """``result`` restricted to its first ``n`` images (the per-image distances are stored), so
    results on different numbers of the same first test images can be compared on the same ones."""
    if n >= len(result.labels):
        return result

    def cut(d: attacks.DistanceResult) -> attacks.DistanceResult:
        return attacks.DistanceResult(
            d.attack, d.norm, d.distances[:n], None, None if d.sources is None else d.sources[:n]
        )

    return replace(
        result,
        config=replace(result.config, n_images=n),
        labels=result.labels[:n],
        clean_correct=result.clean_correct[:n],
        attacks={nm: {a: cut(r) for a, r in per.items()} for nm, per in result.attacks.items()},
        trivial={nm: cut(r) for nm, r in result.trivial.items()},
        combined={nm: cut(r) for nm, r in result.combined.items()},
    )


# --- the schedule ---------------------------------------------------------------------------------


def steps(profile: RbfiProfile) -> list[Step]:
    """Every step of the chapter, in a valid order (``after``: the steps whose stored networks or
    attacks it reuses)."""
    return [
        Step("table1", table1, gpu=True),
        Step("beyond", beyond, after=("table1",), gpu=True),
        Step("fig3", fig3, after=("table1",), gpu=True),
        Step("table2", table2, gpu=True),
        Step("table3", table3, after=("table1",), gpu=True),
        Step("fig4", fig4, after=("table1",), gpu=True),
        Step("fig5", fig5, after=("table1",), gpu=True),
        Step("table4", table4, after=("table1", "fig4", "fig5")),
        Step("deep", deep, gpu=True),
        Step("rbf", rbf_vs_rbfi, after=("table1",), gpu=True),
        Step("yardstick", yardstick, after=("table1",), gpu=True),
        Step("yardstick_fig5", yardstick_fig5, after=("fig5",), gpu=True),
    ]
