"""The DAM chapter's computations: one step per figure or table, on the experiment core.

``steps(profile)`` lists them in a valid order; ``python -m robustlib compute dam --profile P``
runs them all headless and the chapter calls the same functions, so both read and write the same
stored results. Each step takes the run (``Experiment``) and loads what earlier steps stored.

=============  ==========================================================================
step           what (paper figure)
=============  ==========================================================================
tuning         validation sweep over T per n (the paper does not state T, m for n = 2, 3, 30)
models         the trained DAMs, one per n (Fig. 2)
mlp            the baselines chapter's ReLU MLP, an extra row/column of both transfer tables
clean          test error, calibrated beta_sm, error per confidence bin (section 2, Fig. 6)
prototypes     how much each model's memories look like class means (Fig. 2)
rubbish        rubbish images and their cross-classification (Fig. 3, Fig. 7)
trajectories   log C along the second-choice descent for a few images (Fig. 4)
transfer       boundary images of every model, classified by every model (Fig. 5)
fgsm           each model attacked by its own FGSM (Fig. 8)
whitebox       beyond the paper: PGD on the pre-tanh margin and decision-based attacks
yardstick      the book's one protocol (``robustlib.protocol``) on dam-n2 and dam-n30
=============  ==========================================================================

Every evaluation result is keyed by :class:`ResultKey` (the whole profile and every model's
training config), every trained DAM by :class:`ModelKey`: a changed setting never reuses a stale
result.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn as nn

from ... import attacks, data, protocol, store
from ...experiment import Experiment, Step
from ..baselines import model as baselines
from . import model as dam
from .model import DAMConfig
from .profile import DamProfile


class _AsFloat32(nn.Module):
    """Feeds a float32 model from float64 inputs (the MLP next to the float64 DAMs)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(torch.float32)).to(torch.float64)


# --- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelKey:
    """A trained DAM in the store: its whole training config and the training-set size."""

    dam: DAMConfig
    n_train: int | None


@dataclass(frozen=True)
class ResultKey:
    """Every evaluation result: the whole profile and every model's config ("2" -> config)."""

    profile: DamProfile
    models: dict[str, DAMConfig]


@dataclass(frozen=True)
class TuningKey:
    """The temperature sweep: the grids, the data split and the training settings it used."""

    n_values: tuple[int, ...]
    ms: tuple[int, ...]
    grid: tuple[tuple[float, ...], ...]
    init_means: tuple[float, ...]
    K: int
    epochs: int
    n_val: int
    n_train: int | None
    base: dict[str, Any]  # base_config without epochs and ramp_epochs (the sweep sets its own)


# --- data and configs ------------------------------------------------------------------------


def train_data(prof: DamProfile) -> tuple[torch.Tensor, torch.Tensor]:
    return data.first(*data.mnist("train"), prof.n_train)


def test_data(n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    return data.first(*data.mnist("test"), n)


def class_means() -> torch.Tensor:
    """Unit-norm, centred class-mean images (10, 784) in [-1, 1] pixels from the first 10,000
    training images: the reference of the digit-likeness proxies."""
    x, y = data.first(*data.mnist("train"), 10000)
    v = dam.to_pm1(x)
    means = torch.stack([v[y == c].mean(0) for c in range(10)])
    means = means - means.mean(1, keepdim=True)
    return means / means.norm(dim=1, keepdim=True)


def base_config(prof: DamProfile) -> DAMConfig:
    return DAMConfig(
        K=prof.K,
        epochs=prof.epochs,
        batch_size=prof.batch_size,
        eps0=prof.eps0,
        decay=prof.decay,
        momentum=prof.momentum,
        ramp_epochs=prof.ramp_epochs,
    )


def config_for(prof: DamProfile, n: int, T: float) -> DAMConfig:
    """The training config of the n model at temperature T (per-n m, init mean, ramp)."""
    i = list(prof.n_values).index(n)
    ramp = prof.temperature_ramp[i]
    return replace(
        base_config(prof),
        n=n,
        m=prof.ms[i],
        T=float(T),
        T_in=float(T) * ramp if ramp != 1.0 else None,
        init_mean=prof.init_means[i],
    )


# --- temperature selection -------------------------------------------------------------------


def tuning_key(prof: DamProfile) -> TuningKey:
    base = {k: v for k, v in asdict(base_config(prof)).items() if k not in ("epochs", "ramp_epochs")}
    return TuningKey(
        n_values=prof.n_values,
        ms=prof.ms,
        grid=prof.tune_grid,
        init_means=prof.init_means,
        K=prof.K,
        epochs=prof.tune_epochs or prof.tune_epochs_offline,
        n_val=prof.n_val,
        n_train=prof.n_train,
        base=base,
    )


def _sweep(exp: Experiment, epochs: int) -> dict[str, Any]:
    prof = exp.profile
    x, y = train_data(prof)
    (xt, yt), (xv, yv) = data.split_validation(x, y, prof.n_val)
    rows = []
    for n, grid in zip(prof.n_values, prof.tune_grid):
        base = replace(config_for(prof, n, grid[0]), epochs=epochs, T_in=None)
        exp.log(f"tuning n={n}: T in {list(grid)}")
        rows += dam.tune_temperature(n, base.m, grid, base, (xt, yt), (xv, yv), seed=exp.seed, device=exp.device)
    best = {str(n): min((r for r in rows if r["n"] == n), key=lambda r: r["val_error"])["T"] for n in prof.n_values}
    return {"rows": rows, "best": best}


def tuning(exp: Experiment) -> dict[str, Any] | None:
    """The validation sweep over T per n. Computed in the run when the profile has
    ``tune_epochs > 0`` (paper); otherwise the stored sweep that chose the profile's fixed
    temperatures is loaded, or ``None`` when there is none (make it with :func:`offline_tuning`)."""
    prof, key = exp.profile, tuning_key(exp.profile)
    if prof.tune_epochs == 0:
        return store.load("tuning", key, notebook=exp.paper, profile=prof.name, seed=exp.seed)
    return exp.cached("tuning", key, lambda: _sweep(exp, prof.tune_epochs))


def offline_tuning(exp: Experiment) -> dict[str, Any]:
    """Run and store the sweep a profile's fixed ``temperatures`` came from (``tune_epochs_offline``
    epochs per value). Not a step: the profile's temperatures are fixed, the sweep documents them."""
    key = tuning_key(exp.profile)
    return exp.cached("tuning", key, lambda: _sweep(exp, key.epochs))


def temperatures(exp: Experiment) -> dict[int, float]:
    """T per n: the profile's fixed values, or the sweep's best when the profile tunes in the run."""
    prof = exp.profile
    if prof.tune_epochs > 0:
        best = tuning(exp)["best"]
        return {n: float(best[str(n)]) for n in prof.n_values}
    return dict(zip(prof.n_values, prof.temperatures))


def model_configs(exp: Experiment) -> dict[str, DAMConfig]:
    """The training config of every model of the run, "n" -> config."""
    temps = temperatures(exp)
    return {str(n): config_for(exp.profile, n, temps[n]) for n in exp.profile.n_values}


def result_key(exp: Experiment) -> ResultKey:
    return ResultKey(exp.profile, model_configs(exp))


# --- models (Fig. 2) -------------------------------------------------------------------------


def trained_model(exp: Experiment, n: int) -> tuple[dam.DAM, list[dict[str, float]]]:
    """The DAM of power ``n`` and its training history (trained once, then loaded from the store)."""
    prof = exp.profile
    configs = model_configs(exp)
    if str(n) not in configs:
        raise ValueError(f"profile {prof.name!r} trains no n = {n}; valid: {', '.join(configs)}")
    cfg = configs[str(n)]

    def build():
        return dam.DAM.from_config(cfg, torch.Generator().manual_seed(exp.seed))

    def train(model, checkpoint):
        x, y = train_data(prof)
        exp.log(f"training DAM n={cfg.n} K={cfg.K} T={cfg.T:g} m={cfg.m} for {cfg.epochs} epochs")
        return dam.train_dam(
            model,
            cfg,
            x,
            y,
            seed=exp.seed,
            checkpoint=checkpoint,
            eval_data=test_data(prof.n_eval_during_training),
            device=exp.device,
            progress=exp.progress,
            desc=f"dam n={cfg.n}",
        )

    model, history = exp.model(f"model-n{n}", ModelKey(cfg, prof.n_train), build, train)
    model.T = cfg.final_temperature()
    return model, history


def _trained(exp: Experiment) -> dict[int, tuple[dam.DAM, list[dict[str, float]]]]:
    return {n: trained_model(exp, n) for n in exp.profile.n_values}


def models(exp: Experiment) -> dict[int, dam.DAM]:
    """The trained DAMs, n -> model (trained once, then loaded from the store)."""
    return {n: model for n, (model, _) in _trained(exp).items()}


def histories(exp: Experiment) -> dict[int, list[dict[str, float]]]:
    """Per n, the training history (one row per epoch)."""
    return {n: history for n, (_, history) in _trained(exp).items()}


def mlp(exp: Experiment) -> nn.Module:
    """The baselines chapter's 784-512-512-512-10 ReLU MLP with its recipe (Adam, batch 100): the
    paper's "DNN with rectified linear units", as an extra row/column of the transfer tables."""
    model, _ = baselines.trained(exp, "relu_mlp", exp.profile.mlp_epochs, *train_data(exp.profile))
    return _AsFloat32(model).eval()


def classifiers(exp: Experiment) -> dict[str, nn.Module]:
    """name -> model on [0, 1] images returning class scores: the DAMs ("n=2", ...), then the MLP."""
    out: dict[str, nn.Module] = {f"n={n}": model for n, model in models(exp).items()}
    out["ReLU MLP"] = mlp(exp)
    return out


def _grad_fn(model: nn.Module) -> dam.GradFn:
    return dam.dam_objective_grad(model) if isinstance(model, dam.DAM) else dam.classifier_objective_grad(model)


# --- test error, calibration (Fig. 6) --------------------------------------------------------


def clean(exp: Experiment) -> dict[str, Any]:
    """Per model: test error, calibrated beta_sm, mean confidence and the error per confidence bin."""

    def compute():
        x, y = test_data(exp.profile.n_clean)
        out: dict[str, Any] = {}
        for name, model in classifiers(exp).items():
            Y = dam.outputs(model, x, device=exp.device)
            correct = Y.argmax(1) == y
            beta = dam.calibrate_beta(Y, correct)
            Z = dam.confidence(Y, beta)
            out[name] = {
                "error": 1.0 - correct.double().mean().item(),
                "beta_sm": beta,
                "bins": dam.error_by_confidence(Z, correct, list(exp.profile.confidence_edges)),
                "mean_confidence": Z.mean().item(),
                "mean_abs_output": Y.abs().mean().item(),
            }
        return {"by_model": out, "n_images": len(x)}

    return exp.cached("clean", result_key(exp), compute)


# --- memories (Fig. 2): prototype score ------------------------------------------------------


def prototypes(exp: Experiment) -> dict[str, Any]:
    """Per model: mean over memories of the largest correlation between a memory's visible part
    and a class-mean training image (our proxy for "prototype-ness"; features score low)."""

    def compute():
        means = class_means()  # (10, 784)
        out = {}
        for n, model in models(exp).items():
            mem = model.xi[:, :784].cpu()
            mem = mem - mem.mean(1, keepdim=True)
            mem = mem / mem.norm(dim=1, keepdim=True).clamp_min(1e-12)
            corr = (mem @ means.T).amax(1)  # (K,)
            out[str(n)] = {
                "mean_max_corr": corr.mean().item(),
                "median_max_corr": corr.median().item(),
                "corr": corr.to(torch.float32),
            }
        return out

    return exp.cached("prototypes", result_key(exp), compute)


# --- rubbish images (Fig. 3, Fig. 7) ---------------------------------------------------------


def rubbish(exp: Experiment) -> dict[str, Any]:
    """Rubbish images of every model (eq. 3.2 from noise), classified by every model: mean
    confidence at beta_sm = 3.2 and calibrated, agreement with the intended class, digit-likeness."""

    def compute():
        p = exp.profile
        means = class_means()
        clf = classifiers(exp)
        betas = {name: r["beta_sm"] for name, r in clean(exp)["by_model"].items()}
        names = list(clf)
        z_fixed = torch.full((len(names), len(names)), math.nan, dtype=torch.float64)
        z_cal = torch.full_like(z_fixed, math.nan)
        agree = torch.full_like(z_fixed, math.nan)
        samples, digit_corr, steps = {}, {}, {}
        for i, gen in enumerate(names):
            exp.log(f"rubbish images from {gen}")
            res = dam.rubbish_images(
                _grad_fn(clf[gen]),
                p.rubbish_per_class,
                step=p.rubbish_step,
                max_steps=p.rubbish_steps,
                noise_std=p.noise_std,
                seed=exp.seed,
                device=exp.device,
                batch_size=p.attack_batch,
            )
            imgs = dam.from_pm1(res["images"]).clamp(0, 1)
            for j, c in enumerate(names):
                Y = dam.outputs(clf[c], imgs, device=exp.device)
                native = isinstance(clf[c], dam.DAM)
                # DAMs: beta_sm = 3.2 as in the paper; the MLP: its own softmax on the logits
                z_fixed[i, j] = dam.confidence(Y, p.rubbish_beta if native else 1.0).mean()
                z_cal[i, j] = dam.confidence(Y, betas[c]).mean()
                agree[i, j] = (Y.argmax(1) == res["labels"]).double().mean()
            vc = res["images"] - res["images"].mean(1, keepdim=True)
            vc = vc / vc.norm(dim=1, keepdim=True).clamp_min(1e-12)
            digit_corr[gen] = (vc * means[res["labels"]]).sum(1).mean().item()
            first = torch.arange(10) * p.rubbish_per_class
            samples[gen] = imgs[first].to(torch.float32)
            steps[gen] = res["steps"].double().mean().item()
        return {
            "names": names,
            "z_fixed": z_fixed,
            "z_calibrated": z_cal,
            "agreement": agree,
            "samples": samples,
            "digit_corr": digit_corr,
            "mean_steps": steps,
        }

    return exp.cached("rubbish", result_key(exp), compute)


# --- decision-boundary trajectories (Fig. 4) -------------------------------------------------


def trajectories(exp: Experiment) -> dict[str, Any]:
    """Per n, ``n_triplets`` correctly classified test images of distinct classes descended along
    their second choice's objective: log C of both choices, the boundary and the final image."""

    def compute():
        p = exp.profile
        x, y = test_data(200)
        out = {}
        for n, model in models(exp).items():
            # the first correctly classified test images of distinct classes
            pred = dam.outputs(model, x, device=exp.device).argmax(1)
            chosen, seen = [], set()
            for i in range(len(x)):
                if pred[i] == y[i] and int(y[i]) not in seen:
                    chosen.append(i)
                    seen.add(int(y[i]))
                if len(chosen) == p.n_triplets:
                    break
            idx = torch.tensor(chosen)
            v = dam.to_pm1(x[idx]).to(exp.device)
            res = dam.boundary_trajectory(
                model, v, step=p.boundary_step, max_steps=p.trajectory_steps, final_log_c=-p.final_neg_log_c
            )
            res["boundary"] = res["boundary"].to(torch.float32)
            res["final"] = res["final"].to(torch.float32)
            res["clean"] = dam.to_pm1(x[idx]).to(torch.float32)
            res["labels"] = y[idx]
            out[str(n)] = res
        return out

    return exp.cached("trajectories", result_key(exp), compute)


# --- adversarial transfer table (Fig. 5) -----------------------------------------------------


def transfer(exp: Experiment) -> dict[str, Any]:
    """Each model's boundary set (each of the first ``n_transfer`` test images pushed one step past
    the model's own decision boundary), classified by every model: the error table of Fig. 5."""

    def compute():
        p = exp.profile
        x, y = test_data(p.n_transfer)
        clf = classifiers(exp)
        names = list(clf)
        err = torch.full((len(names), len(names)), math.nan, dtype=torch.float64)
        clean_err = torch.tensor(
            [(dam.outputs(clf[c], x, device=exp.device).argmax(1) != y).double().mean() for c in names]
        )
        stats, samples = {}, {}
        for i, gen in enumerate(names):
            exp.log(f"boundary set of {gen} on {len(x)} images")
            t0 = time.perf_counter()
            model = clf[gen]
            if isinstance(model, dam.DAM):
                scores = model.scores_pm1
            else:

                def scores(v, m=model):
                    return m(dam.from_pm1(v))

            res = dam.boundary_images(
                _grad_fn(model),
                scores,
                dam.to_pm1(x).to(exp.device),
                step=p.boundary_step,
                max_steps=p.boundary_max_steps,
                batch_size=p.attack_batch,
            )
            imgs = dam.from_pm1(res["images"]).clamp(0, 1)
            for j, c in enumerate(names):
                pred = dam.outputs(clf[c], imgs, device=exp.device).argmax(1)
                err[i, j] = (pred != y).double().mean()
            crossed = res["crossed"]
            stats[gen] = {
                "crossed": crossed.double().mean().item(),
                "median_steps": res["steps"].double().median().item(),
                "max_steps": int(res["steps"].max()),
                "median_l2_pm1": res["l2"][crossed].median().item() if crossed.any() else math.nan,
                "second_is_true": (res["second"] == y).double().mean().item(),
                "seconds": time.perf_counter() - t0,
            }
            samples[gen] = {"adv": imgs[:8].to(torch.float32), "second": res["second"][:8].clone()}
        return {
            "names": names,
            "error": err,
            "clean_error": clean_err,
            "stats": stats,
            "samples": samples,
            "clean_samples": x[:8].to(torch.float32).clone(),
            "labels": y[:8].clone(),
            "n_images": len(x),
        }

    return exp.cached("transfer", result_key(exp), compute)


# --- FGSM (Fig. 8) ---------------------------------------------------------------------------


def _zero_gradient(model: dam.DAM, x: torch.Tensor, y: torch.Tensor, exp: Experiment) -> torch.Tensor:
    """(N,) bool: the images whose gradient of C_y is exactly zero even in float64 (FGSM then
    falls back to the gradient of the pre-tanh margin)."""
    batch = exp.profile.attack_batch
    zero = []
    for lo in range(0, len(x), batch):
        v, yb = dam.to_pm1(x[lo : lo + batch]).to(exp.device), y[lo : lo + batch].to(exp.device)
        zero.append(dam.fgsm_direction(model, v, yb)[1].cpu())
    return torch.cat(zero)


def fgsm(exp: Experiment) -> dict[str, Any]:
    """Every model attacked by its own FGSM (the registered ``dam_fgsm``) at each ``fgsm_eps``
    ([-1, 1] units): error, and mean confidence (calibrated beta_sm) on the misclassified images."""

    def compute():
        p = exp.profile
        x, y = test_data(p.n_fgsm)
        betas = {name: r["beta_sm"] for name, r in clean(exp)["by_model"].items()}
        eps01 = [e / 2 for e in p.fgsm_eps]  # the registry's [0, 1] units
        mid = min(range(len(p.fgsm_eps)), key=lambda i: abs(p.fgsm_eps[i] - 0.3))
        out = {}
        for name, model in classifiers(exp).items():
            errors, conf_mis, n_mis = [], [], []
            for e in eps01:  # one FGSM step per epsilon, every image attacked (the paper's error)
                res = attacks.evaluate(
                    model,
                    x.to(torch.float64),
                    y,
                    attack="dam_fgsm",
                    epsilons=[e],
                    batch_size=p.attack_batch,
                    device=exp.device,
                    seed=exp.seed,
                    keep_adversarials=True,
                    monotone=False,
                )
                wrong = res.success[0]
                Z = dam.confidence(dam.outputs(model, res.adversarials[0][wrong], device=exp.device), betas[name])
                errors.append(wrong.double().mean().item())
                n_mis.append(int(wrong.sum()))
                conf_mis.append(Z.mean().item() if wrong.any() else math.nan)
            zero = (
                _zero_gradient(model, x, y, exp)
                if isinstance(model, dam.DAM)
                else torch.zeros(len(x), dtype=torch.bool)
            )
            sample = dam.fgsm(model.to(exp.device), x[:8].to(exp.device), y[:8].to(exp.device), eps01[mid])
            out[name] = {
                "error": errors,
                "confidence_misclassified": conf_mis,
                "n_misclassified": n_mis,
                "zero_gradient_fraction": zero.double().mean().item(),
                "sample": sample.cpu().to(torch.float32),
                "sample_eps": p.fgsm_eps[mid],
            }
        return {"eps": list(p.fgsm_eps), "by_model": out, "n_images": len(x)}

    return exp.cached("fgsm", result_key(exp), compute)


# --- beyond the paper: direct white-box attacks ----------------------------------------------


def _decision_based(exp: Experiment, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Median minimal L2 of the Boundary attack, the Gaussian-noise line search and (when the
    profile runs it) HopSkipJump, and of the best of them per image."""
    p = exp.profile
    x, y = x[: p.n_boundary_attack], y[: p.n_boundary_attack]
    common = {"batch_size": p.attack_batch, "device": exp.device, "seed": exp.seed}
    rows: dict[str, float] = {"boundary_median_l2": math.nan, "boundary_found": math.nan, "hsja_median_l2": math.nan}
    bnd = None
    try:
        bnd = attacks.min_distance(model, x, y, attack="boundary", steps=p.boundary_attack_steps, **common)
        rows["boundary_median_l2"] = bnd.median()
        rows["boundary_found"] = torch.isfinite(bnd.distances).double().mean().item()
    except ImportError:  # foolbox missing (e.g. a bare GPU machine): say so, do not fail
        pass
    noise = attacks.min_distance(model, x, y, attack="gaussian_noise", draws=p.noise_draws, **common)
    rows["noise_median_l2"] = noise.median()
    found = [noise] + ([bnd] if bnd is not None else [])
    if p.hsja_steps > 0:
        try:
            hsja = attacks.min_distance(model, x, y, attack="hsja", steps=p.hsja_steps, **common)
            rows["hsja_median_l2"] = hsja.median()
            found.append(hsja)
        except ImportError:
            pass
    rows["all_decision_median_l2"] = attacks.compound(*found).median()
    return rows


def whitebox(exp: Experiment) -> dict[str, Any]:
    """The models of ``whitebox_n`` and the MLP attacked directly: L-inf robust accuracy under PGD
    on the pre-tanh margin and under the paper's FGSM (``whitebox_eps``, [0, 1] units), and the
    minimal L2 perturbations of decision-based attacks."""

    def compute():
        p = exp.profile
        # float32 images for the shared attack suite (the DAM computes in float64 inside; the
        # margin of the pre-tanh scores does not underflow, unlike the m = 30 objective)
        x, y = test_data(p.n_whitebox)
        clf = classifiers(exp)
        common = {"batch_size": p.attack_batch, "device": exp.device, "seed": exp.seed}
        out = {}
        for name in [f"n={n}" for n in p.whitebox_n if f"n={n}" in clf] + ["ReLU MLP"]:
            model = clf[name]
            exp.log(f"white-box attacks on {name}")
            t0 = time.perf_counter()
            grad_model = dam.PreTanh(model) if isinstance(model, dam.DAM) else None
            pgd = attacks.evaluate(
                model,
                x,
                y,
                attack="pgd_torch",
                epsilons=list(p.whitebox_eps),
                loss="margin",
                steps=p.pgd_steps,
                restarts=p.pgd_restarts,
                grad_model=grad_model,
                **common,
            )
            # the paper's FGSM (DAM objective / MLP cross-entropy), one independent step per epsilon
            fg = attacks.evaluate(
                model,
                x.to(torch.float64),
                y,
                attack="dam_fgsm",
                epsilons=list(p.whitebox_eps),
                monotone=False,
                **common,
            )
            rows: dict[str, Any] = {"pgd_margin": pgd.robust_accuracy.tolist(), "fgsm": fg.robust_accuracy.tolist()}
            rows["strongest_linf"] = torch.minimum(fg.robust_accuracy, pgd.robust_accuracy).tolist()
            rows.update(_decision_based(exp, model, x, y))
            rows["seconds"] = time.perf_counter() - t0
            out[name] = rows
        return {
            "eps01": list(p.whitebox_eps),
            "by_model": out,
            "n_images": len(x),
            "n_boundary_images": min(p.n_boundary_attack, len(x)),
        }

    return exp.cached("whitebox", result_key(exp), compute)


# --- the yardstick: the book's one protocol ----------------------------------------------------


@dataclass(frozen=True)
class YardstickKey:
    """One model's protocol result: the protocol's settings, the model's training config, the
    paper's own attacks' settings (second-choice descent) and the transfer source (the baselines
    chapter's ReLU MLP, the same source for every chapter)."""

    config: protocol.ProtocolConfig
    model: ModelKey
    boundary_step: float
    boundary_max_steps: int
    source: Any  # the source's key in the baselines chapter's store


def yardstick_config(prof: DamProfile) -> protocol.ProtocolConfig:
    """The protocol's settings at this profile (the DAMs are cheap: no override)."""
    return protocol.ProtocolConfig.for_profile(prof.name)


@contextlib.contextmanager
def _one_thread(device: str) -> Iterator[None]:
    """One CPU thread inside: the protocol's many small batches (K = 100, 200 images) waste most of
    a second thread on synchronisation (measured on the shared 2-core machine under load: 5 ms of
    CPU per APGD step with one thread, 130 ms with two)."""
    threads = torch.get_num_threads()
    if str(device).startswith("cpu"):
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def transfer_source(exp: Experiment) -> tuple[Any, Any]:
    """The yardstick's transfer source, the baselines chapter's ReLU MLP at the same profile
    (``baselines.adapter.transfer_source``): its store key, and a loader called only when a result
    is computed (a load-only run never needs it)."""
    from ...experiment import start
    from ..baselines import adapter as base_adapter
    from ..baselines import experiments as base_experiments

    bexp = start("baselines", exp.profile.name, exp.seed, exp.device, load_only=True)
    key = base_experiments.model_key(bexp, "relu_mlp")
    return key, lambda: base_adapter.transfer_source(exp.profile.name, exp.device, seed=exp.seed)


def yardstick(exp: Experiment) -> dict[str, protocol.ProtocolResult]:
    """dam-n2 and dam-n30 through the book's protocol on its first test images: APGD-CE/DLR on the
    float64 pre-tanh scores, Square, HopSkipJump, transfer from the baselines' ReLU MLP, noise, the
    paper's FGSM and second-choice descent, and the trivial bound; ``{zoo name: ProtocolResult}``."""
    from . import adapter as dam_adapter

    p = exp.profile
    config = yardstick_config(p)
    source_key, source = transfer_source(exp)
    out = {}
    for name in dam_adapter.MODELS:
        n = dam_adapter.power(name)
        key = YardstickKey(
            config,
            ModelKey(model_configs(exp)[str(n)], p.n_train),
            p.boundary_step,
            p.boundary_max_steps,
            source_key,
        )

        def compute(name=name):
            model = dam_adapter.load(exp, name)
            x, y = protocol.protocol_images(config)
            exp.log(f"yardstick: {name} on {len(x)} images")
            adapter = dam_adapter.adapter(exp, name, model)
            with _one_thread(exp.device):
                result = protocol.evaluate(adapter, x, y, config, source=source(), progress=exp.progress)
            return result.to_dict()

        out[name] = protocol.ProtocolResult.from_dict(exp.cached(f"yardstick-{name}", key, compute))
    return out


# --- the schedule ----------------------------------------------------------------------------


def steps(profile: DamProfile) -> list[Step]:
    """The chapter's steps in a valid order (``gpu``: trains or attacks heavily)."""
    return [
        Step("tuning", tuning, gpu=profile.tune_epochs > 0),
        Step("models", models, after=("tuning",), gpu=True),
        Step("mlp", mlp, gpu=True),
        Step("clean", clean, after=("models", "mlp")),
        Step("prototypes", prototypes, after=("models",)),
        Step("rubbish", rubbish, after=("models", "mlp", "clean"), gpu=True),
        Step("trajectories", trajectories, after=("models",)),
        Step("transfer", transfer, after=("models", "mlp"), gpu=True),
        Step("fgsm", fgsm, after=("models", "mlp", "clean"), gpu=True),
        Step("whitebox", whitebox, after=("models", "mlp"), gpu=True),
        Step("yardstick", yardstick, after=("models",), gpu=True),
    ]
