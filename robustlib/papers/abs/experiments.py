"""The ABS notebook's experiments, as functions (the notebook plots; this module computes).

Everything expensive goes through the artifact store keyed by the full profile, so the notebook
and the headless entry point ``python -m robustlib.models.abs_experiments --profile paper``
(for a GPU machine without papermill) produce and reuse the same artifacts.

The paper's values (spec §7) live here too, so the notebook tables and the scorecard use one copy.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ... import attacks, data, store, train
from ..attacks import DistanceResult
from ..metrics import distance
from ..profiles import AbsProfile
from . import model as A
from ..baselines.model import NearestNeighbour

NB = "abs"
THRESHOLDS = {"l2": 1.5, "linf": 0.3, "l0": 12.0}
MODELS = ("CNN", "Binary CNN", "Nearest neighbour", "Madry et al. (ours)", "Binary ABS", "ABS")
ABS_MODELS = ("Binary ABS", "ABS")

# Spec §7: all attacks combined, (median, accuracy at the threshold) from the released curve data.
PAPER = {
    "CNN": {"l2": (1.09, 0.08), "linf": (0.075, 0.00), "l0": (8.7, 0.19)},
    "Binary CNN": {"l2": (0.86, 0.03), "linf": (0.34, 0.63), "l0": (10.7, 0.38)},
    "Nearest neighbour": {"l2": (1.54, 0.53), "linf": (0.19, 0.22), "l0": (10.0, 0.34)},
    "Madry et al. (ours)": {"l2": (1.36, 0.35), "linf": (0.34, 0.87), "l0": (4.0, 0.00)},
    "Binary ABS": {"l2": (1.33, 0.39), "linf": (0.44, 0.77), "l0": (21.3, 0.77)},
    "ABS": {"l2": (2.24, 0.80), "linf": (0.23, 0.08), "l0": (16.3, 0.69)},
}
PAPER_CLEAN = {"CNN": 0.991, "Binary CNN": 0.985, "Nearest neighbour": 0.969, "Madry et al. (ours)": 0.988,
               "Binary ABS": 0.99, "ABS": 0.99}  # [unverified] except ABS 99 % [paper, robust-ml]
# ABS per-attack L2 rows quoted in the MFBM paper (median, acc@1.5); the others are not available.
PAPER_ABS_L2_ATTACKS = {"PGD (L2)": (3.1, 0.87), "Boundary": (2.6, 0.83), "Transfer (L2)": (4.6, 0.94),
                        "Gaussian noise": (10.9, 0.98)}


# =============================================================================================
# Models
# =============================================================================================

def _key(prof: AbsProfile, **extra: Any) -> dict[str, Any]:
    return {"profile": prof.asdict(), **extra}


def vae_training(prof: AbsProfile) -> A.VAETraining:
    return A.VAETraining(epochs=prof.vae_epochs, batch_rows=prof.vae_batch_rows, lr=prof.vae_lr,
                         anneal_epochs=prof.vae_anneal_epochs, n_per_class=prof.vae_per_class)


def load_vaes(prof: AbsProfile, *, seed: int = 0, device: str = "cpu", retrain: bool = False,
              progress: bool = False) -> tuple[A.ClassVAEs, list[dict]]:
    """The ten class-conditional VAEs (trained, or loaded from the store)."""
    x, y = data.mnist("train")
    cfg = vae_training(prof)
    key = {"vae": cfg.__dict__, "latent": A.LATENT}

    def fit(model: A.ClassVAEs, ckpt) -> list[dict]:
        return A.train_vaes(model, x, y, cfg, seed=seed, device=device, checkpoint=ckpt, progress=progress)

    model, hist = train.cached_model("vaes", key, A.ClassVAEs, fit, notebook=NB, profile=prof.name, seed=seed,
                                     device=device, retrain=retrain)
    return model.eval(), hist


def load_cnn(kind: str, prof: AbsProfile, *, seed: int = 0, device: str = "cpu", retrain: bool = False,
             progress: bool = False, init: A.CNN | None = None) -> tuple[A.CNN, list[dict]]:
    """kind: "cnn" (vanilla), "substitute" (transfer source) or "madry" (L-inf PGD training)."""
    x, y = data.mnist("train")
    channels = (32, 32, 64, 10) if kind == "substitute" else (20, 70, 256, 10)
    if kind == "madry":
        n, epochs = prof.madry_train, prof.madry_epochs
        # a different slice of the training set when starting from the CNN (quick): new images
        start = (prof.cnn_train or 0) if prof.madry_from_cnn and prof.madry_train else 0
        xs, ys = x[start:start + n] if n else x, y[start:start + n] if n else y
        key = {"kind": kind, "epochs": epochs, "n": n, "lr": prof.cnn_lr, "steps": prof.madry_pgd_steps,
               "ramp": prof.madry_ramp, "from_cnn": prof.madry_from_cnn, "cnn_train": prof.cnn_train,
               "cnn_epochs": prof.cnn_epochs}
    else:
        n = prof.sub_train if kind == "substitute" else prof.cnn_train
        epochs = prof.sub_epochs if kind == "substitute" else prof.cnn_epochs
        xs, ys = data.first(x, y, n)
        key = {"kind": kind, "epochs": epochs, "n": n, "lr": prof.cnn_lr}
    batch = prof.cnn_batch
    key["batch"] = batch

    def fit(model: A.CNN, ckpt) -> list[dict]:
        if kind == "madry" and init is not None:
            model.load_state_dict(init.state_dict())
        opt = torch.optim.Adam(model.parameters(), lr=prof.cnn_lr)
        step = None
        if kind == "madry":
            iters = epochs * math.ceil(len(xs) / batch)
            step = A.madry_step(0.3, prof.madry_pgd_steps, int(prof.madry_ramp * iters))
        return train.fit(model, xs, ys, epochs=epochs, batch_size=batch, seed=seed, optimizer=opt, step=step,
                         checkpoint=ckpt, device=device, progress=progress, desc=kind)

    model, hist = train.cached_model(f"cnn-{kind}", key, lambda: A.CNN(channels), fit, notebook=NB,
                                     profile=prof.name, seed=seed, device=device, retrain=retrain)
    return model.eval(), hist


@dataclass
class Models:
    """Everything the notebook attacks, by display name, plus the pieces behind them."""

    models: dict[str, torch.nn.Module]
    vaes: A.ClassVAEs
    abs: A.ABS
    substitute: A.CNN
    histories: dict[str, list[dict]] = field(default_factory=dict)


def build_models(prof: AbsProfile, *, seed: int = 0, device: str = "cpu", retrain: bool = False,
                 progress: bool = False) -> Models:
    vaes, h_vae = load_vaes(prof, seed=seed, device=device, retrain=retrain, progress=progress)
    cnn, h_cnn = load_cnn("cnn", prof, seed=seed, device=device, retrain=retrain, progress=progress)
    sub, h_sub = load_cnn("substitute", prof, seed=seed, device=device, retrain=retrain, progress=progress)
    madry, h_madry = load_cnn("madry", prof, seed=seed, device=device, retrain=retrain, progress=progress,
                              init=cnn if prof.madry_from_cnn else None)
    x, y = data.mnist("train")
    nn_x, nn_y = data.first(x, y, prof.nn_train)
    abs_model = A.ABS(vaes.to(device), A.ABSConfig(n_samples=prof.n_samples, steps=prof.abs_steps)).to(device)
    binary_abs = abs_model.variant(binary=True, gamma=A.GAMMA)
    models = {
        "CNN": cnn, "Binary CNN": A.binary_view(cnn), "Nearest neighbour": NearestNeighbour(nn_x, nn_y).to(device),
        "Madry et al. (ours)": madry, "Binary ABS": binary_abs, "ABS": abs_model,
    }
    hist = {"vaes": h_vae, "cnn": h_cnn, "substitute": h_sub, "madry": h_madry}
    return Models(models, vaes, abs_model, sub, hist)


# =============================================================================================
# Clean accuracy, confidence, lower bound, samples
# =============================================================================================

def clean_accuracy(m: Models, prof: AbsProfile, *, seed: int = 0, device: str = "cpu",
                   retrain: bool = False) -> dict[str, Any]:
    """Accuracy of every model on the first n test images, and ABS's modified-softmax confidence."""
    xt, yt = data.mnist("test")

    def compute() -> dict[str, Any]:
        out: dict[str, Any] = {"accuracy": {}, "n": {}}
        for name, model in m.models.items():
            n = prof.n_clean if name in ABS_MODELS else prof.n_clean_baselines
            x, y = data.first(xt, yt, n)
            bs = 500 if name in ABS_MODELS else 1000
            scores = train.predict(model, x, batch_size=bs, device=device)
            out["accuracy"][name] = (scores.argmax(1) == y).float().mean().item()
            out["n"][name] = len(x)
            if name == "ABS":
                p = A.modified_softmax(scores.to(torch.float64), m.abs.config.alpha, m.abs.config.eta)
                out["abs_confidence"] = p.amax(1).float()
                out["abs_correct"] = (scores.argmax(1) == y)
        return out

    return store.cached("clean", _key(prof), compute, notebook=NB, profile=prof.name, seed=seed, device=device,
                        retrain=retrain)


def lower_bounds(m: Models, prof: AbsProfile, *, seed: int = 0, device: str = "cpu",
                 retrain: bool = False) -> dict[str, Any]:
    """epsilon*(x) (spec §6) on the first n_bound test images that ABS classifies correctly."""
    xt, yt = data.mnist("test")
    x, y = data.first(xt, yt, prof.n_bound)

    def compute() -> dict[str, Any]:
        eps = torch.cat([A.lower_bound(m.abs, x[i:i + 250].to(device), y[i:i + 250].to(device)).cpu()
                         for i in range(0, len(x), 250)])
        return {"epsilon": eps}

    return store.cached("lower-bound", _key(prof), compute, notebook=NB, profile=prof.name, seed=seed,
                        device=device, retrain=retrain)


# =============================================================================================
# Attacks
# =============================================================================================

@dataclass(frozen=True)
class AttackSpec:
    label: str  # what the tables call it
    norm: str
    kind: str  # a robustlib.attacks name, or "latent_descent", "boundary_from", "pointwise_from"
    kwargs: dict[str, Any] = field(default_factory=dict)
    epsilons: tuple[float, ...] | None = None  # grid for fixed-size attacks
    start_from: str | None = None  # label of an earlier attack whose adversarials start this one


def attack_plan(name: str, prof: AbsProfile) -> list[AttackSpec]:
    """The attacks run on model ``name`` at this profile (per norm, the minimum is "all")."""
    is_abs = name in ABS_MODELS
    l2_grid, linf_grid = (prof.l2_grid_abs, prof.linf_grid_abs) if is_abs else (prof.l2_grid, prof.linf_grid)
    steps = prof.pgd_steps_abs if is_abs else prof.pgd_steps
    line = {"grid": prof.line_grid, "bisect": prof.line_bisect}
    plan = [
        AttackSpec("PGD (L2)", "l2", "pgd_torch", {"norm": "l2", "steps": steps, "loss": "margin"}, l2_grid),
        AttackSpec("Gaussian noise", "l2", "gaussian_noise",
                   {"draws": prof.gaussian_draws_abs if is_abs else prof.gaussian_draws, "max_scale": 32.0, **line}),
        AttackSpec("Transfer (L2)", "l2", "transfer", {"norm": "l2", "source_eps": 4.0, "steps": 20,
                                                       "max_scale": 64.0, **line}),
        AttackSpec("FGSM", "linf", "pgd_torch", {"norm": "linf", "steps": 1, "random_start": False, "loss": "ce"},
                   linf_grid),
        AttackSpec("PGD (L∞)", "linf", "pgd_torch", {"norm": "linf", "steps": steps, "loss": "margin"}, linf_grid),
        AttackSpec("Transfer (L∞)", "linf", "transfer", {"norm": "linf", "source_eps": 0.5, "steps": 20,
                                                         "max_scale": 2.0, **line}),
    ]
    if is_abs:
        plan.append(AttackSpec("Latent Descent", "l2", "latent_descent",
                               {"n_coarse": prof.ld_coarse, "n_bisect": prof.ld_bisect}))
        if prof.boundary_steps_abs > 0:
            plan.append(AttackSpec("Boundary", "l2", "boundary_from", {"steps": prof.boundary_steps_abs},
                                   start_from="Latent Descent"))
    elif prof.boundary_steps > 0:
        plan.append(AttackSpec("Boundary", "l2", "boundary", {"steps": prof.boundary_steps}))
    if name in prof.l0_models:
        plan += [AttackSpec("Salt & pepper", "l0", "salt_pepper", {"steps": prof.salt_pepper_steps}),
                 AttackSpec("Pointwise", "l0", "pointwise_from", start_from="Salt & pepper")]
    return plan


def _verified(model, x, y, adv, norm) -> DistanceResult:
    """The attacks module's re-check for custom attacks: distance counts only if misclassified
    and in the box; 0 for clean misclassifications; inf where nothing was found."""
    with torch.no_grad():
        clean_wrong = model(x).argmax(1) != y
        ok = (model(adv).argmax(1) != y) & (adv.flatten(1).amin(1) >= 0) & (adv.flatten(1).amax(1) <= 1)
    d = torch.full((len(x),), math.inf, dtype=torch.float64)
    d[ok.cpu()] = distance(adv[ok], x[ok], norm).cpu()
    d[clean_wrong.cpu()] = 0.0
    adv = torch.where(ok[:, None, None, None], adv, x)
    return DistanceResult("custom", norm, d, adv.cpu())


def foolbox_from(model, x, y, starts: torch.Tensor, *, kind: str, steps: int = 0) -> torch.Tensor:
    """foolbox's Boundary (L2) or Pointwise (L0) attack started from given adversarials (Latent
    Descent's, salt-and-pepper's): a run only has to shrink an existing adversarial, the paper's
    recipe for Pointwise. Images without a valid start are returned unchanged."""
    import foolbox as fb

    with torch.no_grad():
        ok = model(starts).argmax(1) != y
    out = x.clone()
    if ok.any():
        fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=x.device)
        if kind == "boundary":
            attack = fb.attacks.BoundaryAttack(steps=steps)
        else:
            attack = fb.attacks.PointwiseAttack(l2_binary_search=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out[ok] = attack.run(fmodel, x[ok], fb.criteria.Misclassification(y[ok]), starting_points=starts[ok])
    return out


def run_attack(model, spec: AttackSpec, x, y, *, substitute=None, device="cpu", seed=0,
               starts: torch.Tensor | None = None) -> DistanceResult:
    """One attack's per-image minimal distances on (x, y)."""
    x, y = x.to(device), y.to(device)
    if spec.kind in ("latent_descent", "boundary_from", "pointwise_from"):
        torch.manual_seed(seed)
        model.eval()
        if spec.kind == "latent_descent":
            adv = A.latent_descent(model, x, y, **spec.kwargs)[0]
        else:
            adv = foolbox_from(model, x, y, starts.to(device), kind=spec.kind[:-5], **spec.kwargs)
        res = _verified(model, x, y, adv, spec.norm)
    else:
        kw = dict(spec.kwargs)
        if spec.kind == "transfer":
            kw["source"] = substitute
        res = attacks.min_distance(model, x, y, attack=spec.kind, epsilons=spec.epsilons, batch_size=len(x),
                                   device=device, seed=seed, **kw)
    res.attack = spec.label
    return res


def attack_results(m: Models, prof: AbsProfile, *, seed: int = 0, device: str = "cpu", retrain: bool = False,
                   models: tuple[str, ...] = MODELS, progress: bool = True) -> dict[str, dict[str, DistanceResult]]:
    """results[model][attack label] for every planned attack; one stored artifact per pair.

    Stored: per-image distances, the first ``n_show`` adversarials (figures) and the wall time
    (``DistanceResult.adversarials`` holds that preview; attacks that start a later one, Latent
    Descent -> Boundary on ABS and salt-and-pepper -> Pointwise, keep all of them)."""
    xt, yt = data.mnist("test")
    x, y = data.first(xt, yt, prof.n_attack)
    out: dict[str, dict[str, DistanceResult]] = {}
    for name in models:
        model = m.models[name]
        out[name] = {}
        plan = attack_plan(name, prof)
        for spec in plan:
            def compute(spec=spec, model=model, name=name) -> dict[str, Any]:
                t0 = time.perf_counter()
                starts = out[name][spec.start_from].adversarials if spec.start_from else None
                res = run_attack(model, spec, x, y, substitute=m.substitute, device=device, seed=seed, starts=starts)
                r = {"distances": res.distances, "show": res.adversarials[:prof.n_show].clone(),
                     "seconds": time.perf_counter() - t0}
                if any(s.start_from == spec.label for s in plan):  # a later attack starts from these
                    r["adversarials"] = res.adversarials
                return r

            r = store.cached(_slug(name, spec.label), _key(prof, model=name, attack=spec.label), compute,
                             notebook=NB, profile=prof.name, seed=seed, device=device, retrain=retrain)
            res = DistanceResult(spec.label, spec.norm, r["distances"], r.get("adversarials", r["show"]))
            res.seconds = r["seconds"]
            out[name][spec.label] = res
            if progress:
                print(f"{name:>20} | {spec.label:<15} median {res.median():.3g}  "
                      f"acc@{THRESHOLDS[spec.norm]:g} {res.accuracy_at(THRESHOLDS[spec.norm]):.2f}  "
                      f"({r['seconds']:.1f} s)", flush=True)
    return out


def _slug(model: str, attack: str) -> str:
    s = f"attack-{model}-{attack}".lower()
    for a, b in ((" ", "_"), ("(", ""), (")", ""), ("∞", "inf"), ("&", "and"), (".", "")):
        s = s.replace(a, b)
    return s


def combined(results: dict[str, dict[str, DistanceResult]], n_show: int = 8) -> dict[str, dict[str, DistanceResult]]:
    """all[model][norm]: per image the smallest adversarial over that norm's attacks; its
    ``adversarials`` are the first ``n_show`` images' winners (from the stored previews)."""
    out: dict[str, dict[str, DistanceResult]] = {}
    for name, per in results.items():
        out[name] = {}
        for norm in ("l2", "linf", "l0"):
            rs = [r for r in per.values() if r.norm == norm]
            if not rs:
                continue
            c = attacks.compound(*[DistanceResult(r.attack, r.norm, r.distances) for r in rs], name=f"all {norm}")
            by_label = {r.attack: r for r in rs}
            show = []
            for i in range(min(n_show, len(c.distances))):
                src = by_label.get(c.sources[i])
                show.append(src.adversarials[i] if src is not None and src.adversarials is not None
                            else torch.full_like(rs[0].adversarials[0], float("nan")))
            c.adversarials = torch.stack(show) if show else None
            out[name][norm] = c
    return out


# =============================================================================================
# Distal adversarials
# =============================================================================================

def distal_experiment(m: Models, prof: AbsProfile, *, seed: int = 0, device: str = "cpu",
                      retrain: bool = False) -> dict[str, Any]:
    """Uniform-noise starts, target class t = i mod 10; ascend log p(t | x) until p >= 0.9.
    CNN (softmax) vs ABS (modified softmax). Also the confidence on the untouched noise."""

    def compute() -> dict[str, Any]:
        g = torch.Generator().manual_seed(seed + 17)
        x0 = torch.rand(prof.distal_starts, 1, 28, 28, generator=g).to(device)
        target = (torch.arange(prof.distal_starts) % 10).to(device)
        out: dict[str, Any] = {"noise": x0.cpu(), "target": target.cpu()}
        for name in ("CNN", "ABS"):
            pm = A.ProbabilityModel(m.models[name]).eval()
            with torch.no_grad():
                noise_conf = pm(x0).exp().amax(1).cpu()
            xa, p, ok = A.distal(pm, x0, target, steps=prof.distal_steps, lr=prof.distal_lr)
            out[name] = {"noise_confidence": noise_conf, "images": xa.cpu(), "p_target": p.cpu(),
                         "success": ok.cpu()}
        return out

    r = store.cached("distal", _key(prof), compute, notebook=NB, profile=prof.name, seed=seed, device=device,
                     retrain=retrain)
    return r


# =============================================================================================
# Tables and the scorecard (verdicts computed from the numbers, per the spec's columns)
# =============================================================================================

def _within(ours: float, paper: float, rel: float | None = None, abs_: float | None = None) -> bool:
    if not math.isfinite(ours):
        return False
    tol = rel * abs(paper) if rel is not None else abs_
    return abs(ours - paper) <= tol


def _grade(flags: list[bool]) -> str:
    if flags and all(flags):
        return "reproduced"
    return "partly" if any(flags) else "not reproduced"


def results_rows(clean: dict[str, Any], comb: dict[str, dict[str, DistanceResult]]) -> list[dict[str, str]]:
    """The paper's results table: clean accuracy, then per norm median / accuracy at the threshold,
    ours beside the paper's (spec §7)."""
    from ..report import fmt

    rows = []
    for name in comb:
        row = {"model": name, "clean (ours)": fmt(clean["accuracy"][name], 3, pct=True),
               "clean (paper)": f"{100 * PAPER_CLEAN[name]:.1f} %"}
        for norm, unit in (("l2", "L2"), ("linf", "L∞"), ("l0", "L0")):
            pm, pa = PAPER[name][norm]
            if norm in comb[name]:
                r = comb[name][norm]
                row[f"{unit} median"] = f"{fmt(r.median(), 3 if norm == 'linf' else 2)} ({pm:g})"
                row[f"{unit} acc@{THRESHOLDS[norm]:g}"] = f"{fmt(r.accuracy_at(THRESHOLDS[norm]), 2, pct=True)} " \
                                                          f"({100 * pa:.0f} %)"
            else:
                row[f"{unit} median"] = f"not run ({pm:g})"
                row[f"{unit} acc@{THRESHOLDS[norm]:g}"] = f"not run ({100 * pa:.0f} %)"
        rows.append(row)
    return rows


def scorecard_targets(prof: AbsProfile, clean: dict[str, Any], results: dict[str, dict[str, DistanceResult]],
                      comb: dict[str, dict[str, DistanceResult]], distal: dict[str, Any],
                      bound: dict[str, Any]) -> list[dict[str, str]]:
    """One row per ABS-* target of the spec, verdict from the measured numbers.

    smoke and quick are judged by the spec's "quick must show" column, paper by "paper should
    reach"; targets a profile does not test are "not run" (their numbers are still shown)."""
    paper = prof.name == "paper"
    acc = clean["accuracy"]
    t: list[dict[str, str]] = []

    def row(i, claim, paper_value, ours, verdict):
        t.append({"id": f"ABS-{i}", "claim": claim, "paper": paper_value, "ours": ours, "verdict": verdict})

    # ABS-1 clean accuracy
    ours = f"ABS {100 * acc['ABS']:.1f} %, binary ABS {100 * acc['Binary ABS']:.1f} % " \
           f"({clean['n']['ABS']} test images)" + ("" if paper else "; bar at this reduced scale: ABS >= 90 %")
    v = (_grade([acc["ABS"] >= 0.985, acc["Binary ABS"] >= 0.985]) if paper
         else ("reproduced" if acc["ABS"] >= 0.90 else "not reproduced"))
    row(1, "ABS and binary ABS reach ~99 % clean accuracy", "99 % [paper, robust-ml]", ours, v)

    # ABS-2 most L2-robust
    a2 = comb["ABS"]["l2"]
    cnn_wb = results["CNN"]["PGD (L2)"]
    ours = f"ABS all-L2 median {a2.median():.2f}, acc@1.5 {100 * a2.accuracy_at(1.5):.0f} %; " \
           f"CNN L2-PGD median {cnn_wb.median():.2f}"
    # "most L2-robust": ABS against every other model's median over all its L2 attacks
    others = {k: comb[k]["l2"].median() for k in comb if k != "ABS" and "l2" in comb[k]}
    beaten_by = [k for k, m in others.items() if m > a2.median()]
    ours += "; other models' all-L2 medians: " + ", ".join(f"{k} {m:.2f}" for k, m in others.items())
    if paper:
        v = _grade([_within(a2.median(), 2.24, rel=0.2), _within(a2.accuracy_at(1.5), 0.80, abs_=0.10),
                    not beaten_by])
    else:
        v = ("not reproduced" if a2.median() < 1.3 * cnn_wb.median() else "partly" if beaten_by
             else "reproduced")
    if beaten_by:
        ours += f" (more robust than ABS here: {', '.join(beaten_by)})"
    row(2, "ABS is the most L2-robust model", "all-L2 median 2.24 (reported 2.3), acc@1.5 = 80 %", ours, v)

    # ABS-3 per-attack L2 on ABS
    per = results["ABS"]
    ours = "; ".join(f"{k} {per[k].median():.2f} / {100 * per[k].accuracy_at(1.5):.0f} %"
                     for k in ("PGD (L2)", "Boundary", "Transfer (L2)", "Gaussian noise", "Latent Descent") if k in per)
    if paper:
        flags = [_within(per[k].median(), pm, rel=0.2) and _within(per[k].accuracy_at(1.5), pa, abs_=0.10)
                 for k, (pm, pa) in PAPER_ABS_L2_ATTACKS.items() if k in per]
        v = _grade(flags)
    else:
        v = "reproduced" if per["Gaussian noise"].median() > per["Latent Descent"].median() else "not reproduced"
    row(3, "Per-attack L2 results on ABS (median / acc@1.5)",
        "L2 BI w/GE 3.1 / 87 %; Boundary 2.6 / 83 %; Transfer 4.6 / 94 %; Gaussian 10.9 / 98 %; "
        "Latent Descent: not available", ours, v)

    # ABS-4 L-inf
    la, lb = comb["ABS"]["linf"], comb["Binary ABS"]["linf"]
    ours = f"ABS {la.median():.3f} / {100 * la.accuracy_at(0.3):.0f} %, binary ABS {lb.median():.3f} / " \
           f"{100 * lb.accuracy_at(0.3):.0f} %"
    if paper:
        v = _grade([_within(la.median(), 0.23, abs_=0.05), _within(la.accuracy_at(0.3), 0.08, abs_=0.10),
                    _within(lb.median(), 0.44, abs_=0.05), _within(lb.accuracy_at(0.3), 0.77, abs_=0.10)])
    else:
        pa, pb = results["ABS"]["PGD (L∞)"].accuracy_at(0.3), results["Binary ABS"]["PGD (L∞)"].accuracy_at(0.3)
        ours += f"; PGD at 0.3: ABS {100 * pa:.0f} %, binary ABS {100 * pb:.0f} %"
        # judged on all attacks together: PGD alone may find nothing through the binarisation
        v = "reproduced" if lb.accuracy_at(0.3) > la.accuracy_at(0.3) else "not reproduced"
    grad_b = [k for k in ("FGSM", "PGD (L∞)") if k in results["Binary ABS"]]
    if grad_b and all(math.isinf(results["Binary ABS"][k].median()) for k in grad_b):
        ours += ("; FGSM and PGD fail on most images of binary ABS (the binarisation blocks the "
                 "gradient): its numbers come from the gradient-free and transfer attacks")
    row(4, "ABS is weak in L∞ unless binarised", "ABS 0.23 / 8 %; binary ABS 0.44 / 77 %", ours, v)

    # ABS-5 L0
    if "l0" in comb["ABS"] and "l0" in comb["Binary ABS"] and paper:
        l0a, l0b, l0c = comb["ABS"]["l0"], comb["Binary ABS"]["l0"], comb["CNN"]["l0"]
        ours = f"ABS {l0a.median():.1f} / {100 * l0a.accuracy_at(12):.0f} %, binary ABS {l0b.median():.1f} / " \
               f"{100 * l0b.accuracy_at(12):.0f} %, CNN {l0c.median():.1f} / {100 * l0c.accuracy_at(12):.0f} %"
        v = _grade([_within(l0a.median(), 16.3, rel=0.2), _within(l0a.accuracy_at(12), 0.69, abs_=0.1),
                    _within(l0b.median(), 21.3, rel=0.2), _within(l0b.accuracy_at(12), 0.77, abs_=0.1)])
    else:
        l0c = comb["CNN"].get("l0")
        ours = "L0 attacks on ABS not run at this profile" + (
            f" (CNN {l0c.median():.1f} / {100 * l0c.accuracy_at(12):.0f} %)" if l0c is not None else "")
        v = "not run"
    row(5, "ABS / binary ABS are strongest in L0", "ABS 16.3 / 69 %; binary ABS 21.3 / 77 %; CNN 8.7 / 19 %", ours, v)

    # ABS-6 baselines
    if paper:
        flags, parts = [], []
        for name in ("CNN", "Binary CNN", "Nearest neighbour", "Madry et al. (ours)"):
            for norm in ("l2", "linf", "l0"):
                if norm in comb[name]:
                    ok = _within(comb[name][norm].median(), PAPER[name][norm][0], rel=0.2)
                    flags.append(ok)
            parts.append(f"{name}: " + ", ".join(f"{n} {comb[name][n].median():.3g}" for n in comb[name]))
        ours, v = "; ".join(parts), _grade(flags)
    else:
        m = results["CNN"]["PGD (L2)"].median()
        ours = f"CNN L2-PGD median {m:.2f}; binary CNN L∞ median {comb['Binary CNN']['linf'].median():.3f}, " \
               f"Madry (ours) L∞ median {comb['Madry et al. (ours)']['linf'].median():.3f}"
        v = "reproduced" if m <= 1.6 else "not reproduced"
    row(6, "Baselines: CNN fragile; binarisation and Madry give L∞ but not L2/L0 robustness", "§7 table rows",
        ours, v)

    # ABS-7 distal adversarials
    abs_noise = distal["ABS"]["noise_confidence"].median().item()
    s_abs, s_cnn = distal["ABS"]["success"].float().mean().item(), distal["CNN"]["success"].float().mean().item()
    ours = f"ABS median confidence on noise {abs_noise:.2f}; distal success ABS {100 * s_abs:.0f} %, " \
           f"CNN {100 * s_cnn:.0f} % ({len(distal['target'])} starts, {prof.distal_steps} steps)"
    v = ("reproduced" if s_abs <= 0.10 and s_cnn > 0.5 else "partly" if s_abs < s_cnn else "not reproduced") \
        if paper else ("reproduced" if abs_noise <= 0.5 else "not reproduced")
    row(7, "ABS gives low confidence to inputs no class explains (distal adversarials)", "qualitative [unverified]",
        ours, v)

    # ABS-8 confidence on clean data
    conf = clean["abs_confidence"].median().item()
    ours = f"median modified-softmax confidence {conf:.3f} on {clean['n']['ABS']} test images"
    if not paper:
        ours += " (the calibration is for fully trained VAEs; these are trained briefly, so not judged here)"
    v = ("reproduced" if abs(conf - 0.9) <= 0.05 else "not reproduced") if paper else "not run"
    row(8, "α = 440, η = 0.000039 give median confidence 0.9 on clean test data", "0.9 [paper]", ours, v)

    # ABS-9 lower bound: positive for correct images, never above a found adversarial
    eps = bound["epsilon"]
    n = min(len(eps), len(comb["ABS"]["l2"].distances))
    d = comb["ABS"]["l2"].distances[:n]
    correct = d > 0
    consistent = bool((eps[:n][correct].double() <= d[correct] + 1e-6).all())
    pos = (eps > 0).float().mean().item()
    ours = f"median ε* {eps.median():.3f} (positive for {100 * pos:.0f} % of {len(eps)} images); " \
           f"ε* ≤ found adversarial distance on all {int(correct.sum())} attacked images: {consistent}"
    v = ("reproduced" if consistent and pos > 0.5 else "not reproduced") if paper else "not run"
    row(9, "Instance-specific robustness lower bound", "not stated in the paper text available to the project",
        ours, v)

    # ABS-10 baselines clean
    ours = ", ".join(f"{k} {100 * acc[k]:.1f} %" for k in ("CNN", "Binary CNN", "Nearest neighbour",
                                                           "Madry et al. (ours)"))
    ours += "" if paper else "; bar at this reduced scale: CNN >= 97 %"
    if paper:
        v = _grade([_within(acc[k], PAPER_CLEAN[k], abs_=0.005) for k in ("CNN", "Binary CNN", "Nearest neighbour",
                                                                        "Madry et al. (ours)")])
    else:
        v = "reproduced" if acc["CNN"] >= 0.97 else "not reproduced"
    row(10, "Clean accuracies of the baselines", "CNN 99.1, binary CNN 98.5, NN 96.9, Madry 98.8 [unverified]",
        ours, v)
    return t


# =============================================================================================
# Headless entry point (GPU machines without papermill)
# =============================================================================================

def run_all(profile: str = "paper", seed: int = 0, device: str = "auto", retrain: bool = False) -> dict[str, Any]:
    """Compute every artifact the notebook needs, in the notebook's order."""
    from ... import profiles

    prof, dev = profiles.setup(NB, profile, seed, device)
    t0 = time.perf_counter()
    m = build_models(prof, seed=seed, device=dev, retrain=retrain, progress=True)
    print(f"models ready: {time.perf_counter() - t0:.0f} s", flush=True)
    clean = clean_accuracy(m, prof, seed=seed, device=dev, retrain=retrain)
    print("clean accuracy:", {k: round(v, 4) for k, v in clean["accuracy"].items()},
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    bound = lower_bounds(m, prof, seed=seed, device=dev, retrain=retrain)
    print(f"lower bound median {bound['epsilon'].median():.3f}: {time.perf_counter() - t0:.0f} s", flush=True)
    dist = distal_experiment(m, prof, seed=seed, device=dev, retrain=retrain)
    print(f"distal: {time.perf_counter() - t0:.0f} s", flush=True)
    res = attack_results(m, prof, seed=seed, device=dev, retrain=retrain)
    print(f"attacks done: {time.perf_counter() - t0:.0f} s", flush=True)
    return {"models": m, "clean": clean, "bound": bound, "distal": dist, "attacks": res}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Compute the ABS notebook's artifacts without Jupyter.")
    p.add_argument("--profile", default="paper", choices=("smoke", "quick", "paper"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--retrain", action="store_true")
    args = p.parse_args(argv)
    start = time.perf_counter()
    run_all(args.profile, args.seed, args.device, args.retrain)
    print(f"abs artifacts at profile={args.profile}: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
