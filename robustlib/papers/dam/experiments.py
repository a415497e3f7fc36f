"""The DAM notebook's experiments, driven by a ``DamProfile`` and cached in the artifact store.

The notebook (``notebooks/dam.md``) and the headless command

    python -m robustlib.models.dam_experiments --profile paper [--device cuda] [--seed 0]

call the same functions, so a GPU run without Jupyter writes exactly the artifacts the notebook
then loads. Every expensive result goes through ``store.cached`` keyed by the full profile (and,
for trained models, by their complete training config), so a changed setting is never served a
stale result.

Experiments (paper figure -> method): Fig. 2 ``models``; test error and Fig. 6 ``clean``; Fig. 3
and Fig. 7 ``rubbish``; Fig. 4 ``trajectories``; Fig. 5 ``transfer``; Fig. 8 ``fgsm``; beyond the
paper ``whitebox``; T selection ``tuning``; the scorecard ``scorecard``.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict
from typing import Any

import torch
import torch.nn as nn

from ... import attacks, data, store
from ..train import cached_model
from ..baselines import model as baselines, dam

NOTEBOOK = "dam"
PAPER_ERRORS = {2: 0.0151, 3: 0.0144, 20: 0.0161, 30: 0.0180}  # [P-DAM] section 2
PAPER_BETA_SM = {2: 4.7, 3: 4.6, 20: 4.0, 30: 26.0}  # [P-DAM] section 5.1, as printed


class _AsFloat32(nn.Module):
    """Feeds a float32 model from float64 inputs (the MLP next to the float64 DAMs)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(torch.float32)).to(torch.float64)


class Run:
    """One notebook run: profile, device, seed, retrain flag; methods return cached results."""

    def __init__(self, prof: Any, device: str = "cpu", seed: int = 0, retrain: bool = False,
                 progress: bool = False):
        self.prof, self.device, self.seed, self.retrain, self.progress = prof, device, seed, retrain, progress
        self._models: dict[int, dam.DAM] | None = None
        self._histories: dict[int, list[dict[str, float]]] = {}
        self._mlp: nn.Module | None = None
        self._cache: dict[str, Any] = {}

    # --- helpers -------------------------------------------------------------------------------
    def _cached(self, name: str, compute, extra: dict[str, Any] | None = None) -> Any:
        key = (name, repr(extra))
        if key not in self._cache:
            config = {"profile": self.prof.asdict(), "models": self.model_configs(), **(extra or {})}
            self._cache[key] = store.cached(name, config, compute, notebook=NOTEBOOK, profile=self.prof.name,
                                            seed=self.seed, device=self.device, retrain=self.retrain)
        return self._cache[key]

    def _train_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = data.mnist("train")
        return data.first(x, y, self.prof.n_train)

    def _test_data(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = data.mnist("test")
        return data.first(x, y, n)

    def class_means(self) -> torch.Tensor:
        """Unit-norm, centred class-mean images (10, 784) in [-1, 1] pixels from the first 10,000
        training images: the reference of the digit-likeness proxies."""
        if "_means" not in self._cache:
            x, y = data.first(*data.mnist("train"), 10000)
            v = dam.to_pm1(x)
            means = torch.stack([v[y == c].mean(0) for c in range(10)])
            means = means - means.mean(1, keepdim=True)
            self._cache["_means"] = means / means.norm(dim=1, keepdim=True)
        return self._cache["_means"]

    def _log(self, msg: str) -> None:
        if self.progress:
            print(msg, flush=True)

    # --- temperature selection -----------------------------------------------------------------
    def tuning(self) -> dict[str, Any] | None:
        """Validation-split grid over T for each n (the paper does not state T, m for n = 2, 3, 30).

        Computed when the profile has ``tune_epochs > 0`` (paper); otherwise the stored sweep that
        chose the profile's temperatures is loaded if present (quick: made by ``--tune``)."""
        p = self.prof
        config = self._tuning_config()
        if p.tune_epochs == 0:
            return store.load("tuning", config, notebook=NOTEBOOK, profile=p.name, seed=self.seed)
        return store.cached("tuning", config, lambda: self._compute_tuning(p.tune_epochs), notebook=NOTEBOOK,
                            profile=p.name, seed=self.seed, device=self.device, retrain=self.retrain)

    def compute_offline_tuning(self) -> dict[str, Any]:
        """The ``--tune`` command: run and store the sweep a profile's fixed temperatures came from."""
        p = self.prof
        config = self._tuning_config()
        return store.cached("tuning", config, lambda: self._compute_tuning(config["epochs"]), notebook=NOTEBOOK,
                            profile=p.name, seed=self.seed, device=self.device, retrain=self.retrain)

    def _tuning_config(self) -> dict[str, Any]:
        p = self.prof
        return {"n_values": list(p.n_values), "ms": list(p.ms), "grid": [list(g) for g in p.tune_grid],
                "init_means": list(p.init_means), "K": p.K, "epochs": p.tune_epochs or p.tune_epochs_offline,
                "n_val": p.n_val, "n_train": p.n_train,
                "base": {k: v for k, v in asdict(self._base_config()).items() if k not in ("epochs", "ramp_epochs")}}

    def _compute_tuning(self, epochs: int) -> dict[str, Any]:
        p = self.prof
        x, y = self._train_data()
        (xt, yt), (xv, yv) = data.split_validation(x, y, p.n_val)
        rows = []
        for n, grid in zip(p.n_values, p.tune_grid):
            base = dam.DAMConfig(**{**asdict(self._config_for(n, grid[0])), "epochs": epochs, "T_in": None})
            self._log(f"tuning n={n}: T in {list(grid)}")
            rows += dam.tune_temperature(n, base.m, grid, base, (xt, yt), (xv, yv), seed=self.seed,
                                         device=self.device)
        best = {}
        for n in p.n_values:
            cand = [r for r in rows if r["n"] == n]
            best[str(n)] = min(cand, key=lambda r: r["val_error"])["T"]
        return {"rows": rows, "best": best}

    # --- models (Fig. 2) -----------------------------------------------------------------------
    def _base_config(self) -> dam.DAMConfig:
        p = self.prof
        return dam.DAMConfig(K=p.K, epochs=p.epochs, batch_size=p.batch_size, eps0=p.eps0, decay=p.decay,
                             momentum=p.momentum, ramp_epochs=p.ramp_epochs)

    def temperatures(self) -> dict[int, float]:
        p = self.prof
        fixed = dict(zip(p.n_values, p.temperatures))
        if p.tune_epochs > 0:
            best = self.tuning()["best"]
            return {n: float(best[str(n)]) for n in p.n_values}
        return fixed

    def _config_for(self, n: int, T: float) -> dam.DAMConfig:
        """The training config of the n model at temperature T (per-n m, init mean, ramp)."""
        p = self.prof
        i = list(p.n_values).index(n)
        ramp = p.temperature_ramp[i]
        return dam.DAMConfig(**{**asdict(self._base_config()), "n": n, "m": p.ms[i], "T": float(T),
                                "T_in": float(T) * ramp if ramp != 1.0 else None, "init_mean": p.init_means[i]})

    def model_configs(self) -> dict[str, dict[str, Any]]:
        if "_configs" not in self._cache:
            temps = self.temperatures()
            self._cache["_configs"] = {str(n): asdict(self._config_for(n, temps[n])) for n in self.prof.n_values}
        return self._cache["_configs"]

    def models(self) -> dict[int, dam.DAM]:
        """The trained DAMs, one per n (trained once, then loaded from the store)."""
        if self._models is None:
            x, y = self._train_data()
            xte, yte = self._test_data(self.prof.n_eval_during_training)
            self._models = {}
            for n_str, cfg_dict in self.model_configs().items():
                cfg = dam.DAMConfig(**cfg_dict)
                key = {"dam": cfg_dict, "n_train": self.prof.n_train}

                def build(cfg=cfg):
                    return dam.DAM.from_config(cfg, torch.Generator().manual_seed(self.seed))

                def train_fn(model, ckpt, cfg=cfg):
                    self._log(f"training DAM n={cfg.n} K={cfg.K} T={cfg.T:g} m={cfg.m} for {cfg.epochs} epochs")
                    return dam.train_dam(model, cfg, x, y, seed=self.seed, checkpoint=ckpt,
                                         eval_data=(xte, yte), device=self.device, progress=self.progress,
                                         desc=f"dam n={cfg.n}")

                model, hist = cached_model(f"model-n{n_str}", key, build, train_fn, notebook=NOTEBOOK,
                                           profile=self.prof.name, seed=self.seed, device=self.device,
                                           retrain=self.retrain)
                model.T = cfg.final_temperature()
                self._models[int(n_str)] = model
                self._histories[int(n_str)] = hist
        return self._models

    def histories(self) -> dict[int, list[dict[str, float]]]:
        self.models()
        return self._histories

    def mlp(self) -> nn.Module:
        """The baselines chapter's 784-512-512-512-10 ReLU MLP with its recipe (Adam, batch 100):
        the paper's "DNN with rectified linear units", as an extra row/column of the transfer tables."""
        if self._mlp is None:
            x, y = self._train_data()
            model, _ = baselines.train_cached("relu_mlp", self.prof.mlp_epochs, x, y, notebook=NOTEBOOK,
                                              profile=self.prof.name, seed=self.seed, device=self.device,
                                              retrain=self.retrain, progress=self.progress)
            self._mlp = _AsFloat32(model).eval()
        return self._mlp

    def classifiers(self) -> dict[str, nn.Module]:
        """name -> model on [0, 1] images returning class scores: the DAMs, then the MLP."""
        out: dict[str, nn.Module] = {f"n={n}": m for n, m in self.models().items()}
        out["ReLU MLP"] = self.mlp()
        return out

    def _grad_fn(self, name: str) -> dam.GradFn:
        model = self.classifiers()[name]
        return dam.dam_objective_grad(model) if isinstance(model, dam.DAM) else dam.classifier_objective_grad(model)

    # --- test error, calibration (Fig. 6) ------------------------------------------------------
    def clean(self) -> dict[str, Any]:
        def compute():
            x, y = self._test_data(self.prof.n_clean)
            out: dict[str, Any] = {}
            for name, model in self.classifiers().items():
                Y = dam.outputs(model, x, device=self.device)
                correct = Y.argmax(1) == y
                beta = dam.calibrate_beta(Y, correct)
                Z = dam.confidence(Y, beta)
                out[name] = {"error": 1.0 - correct.double().mean().item(), "beta_sm": beta,
                             "bins": dam.error_by_confidence(Z, correct, list(self.prof.confidence_edges)),
                             "mean_confidence": Z.mean().item(), "mean_abs_output": Y.abs().mean().item()}
            return {"by_model": out, "n_images": len(x)}

        return self._cached("clean", compute)

    def beta_sm(self) -> dict[str, float]:
        return {k: v["beta_sm"] for k, v in self.clean()["by_model"].items()}

    # --- memories (Fig. 2): prototype score ------------------------------------------------------
    def prototype_scores(self) -> dict[str, Any]:
        """Per model: mean over memories of the largest correlation between a memory's visible part
        and a class-mean training image (our proxy for "prototype-ness"; features score low)."""
        def compute():
            means = self.class_means()  # (10, 784)
            out = {}
            for n, model in self.models().items():
                mem = model.xi[:, :784].cpu()
                mem = mem - mem.mean(1, keepdim=True)
                mem = mem / mem.norm(dim=1, keepdim=True).clamp_min(1e-12)
                corr = (mem @ means.T).amax(1)  # (K,)
                out[str(n)] = {"mean_max_corr": corr.mean().item(), "median_max_corr": corr.median().item(),
                               "corr": corr.to(torch.float32)}
            return out

        return self._cached("prototypes", compute)

    # --- rubbish images (Fig. 3, Fig. 7) -------------------------------------------------------
    def rubbish(self) -> dict[str, Any]:
        def compute():
            p = self.prof
            means = self.class_means()
            clf = self.classifiers()
            betas = self.beta_sm()
            names = list(clf)
            z_fixed = torch.full((len(names), len(names)), math.nan, dtype=torch.float64)
            z_cal = torch.full_like(z_fixed, math.nan)
            agree = torch.full_like(z_fixed, math.nan)
            samples, digit_corr, steps = {}, {}, {}
            for i, gen in enumerate(names):
                self._log(f"rubbish images from {gen}")
                res = dam.rubbish_images(self._grad_fn(gen), p.rubbish_per_class, step=p.rubbish_step,
                                         max_steps=p.rubbish_steps, noise_std=p.noise_std, seed=self.seed,
                                         device=self.device, batch_size=p.attack_batch)
                imgs = dam.from_pm1(res["images"]).clamp(0, 1)
                for j, c in enumerate(names):
                    Y = dam.outputs(clf[c], imgs, device=self.device)
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
            return {"names": names, "z_fixed": z_fixed, "z_calibrated": z_cal, "agreement": agree,
                    "samples": samples, "digit_corr": digit_corr, "mean_steps": steps}

        return self._cached("rubbish", compute)

    # --- decision-boundary trajectories (Fig. 4) -----------------------------------------------
    def trajectories(self) -> dict[str, Any]:
        def compute():
            p = self.prof
            x, y = self._test_data(200)
            out = {}
            for n, model in self.models().items():
                # the first correctly classified test images of distinct classes
                pred = dam.outputs(model, x, device=self.device).argmax(1)
                chosen, seen = [], set()
                for i in range(len(x)):
                    if pred[i] == y[i] and int(y[i]) not in seen:
                        chosen.append(i)
                        seen.add(int(y[i]))
                    if len(chosen) == p.n_triplets:
                        break
                idx = torch.tensor(chosen)
                v = dam.to_pm1(x[idx]).to(self.device)
                res = dam.boundary_trajectory(model, v, step=p.boundary_step, max_steps=p.trajectory_steps,
                                              final_log_c=-p.final_neg_log_c)
                res["boundary"] = res["boundary"].to(torch.float32)
                res["final"] = res["final"].to(torch.float32)
                res["clean"] = dam.to_pm1(x[idx]).to(torch.float32)
                res["labels"] = y[idx]
                out[str(n)] = res
            return out

        return self._cached("trajectories", compute)

    # --- adversarial transfer table (Fig. 5) ---------------------------------------------------
    def transfer(self) -> dict[str, Any]:
        def compute():
            p = self.prof
            x, y = self._test_data(p.n_transfer)
            clf = self.classifiers()
            names = list(clf)
            err = torch.full((len(names), len(names)), math.nan, dtype=torch.float64)
            clean_err = torch.tensor([(dam.outputs(clf[c], x, device=self.device).argmax(1) != y).double().mean()
                                      for c in names])
            stats, samples = {}, {}
            for i, gen in enumerate(names):
                self._log(f"boundary set of {gen} on {len(x)} images")
                t0 = time.perf_counter()
                model = clf[gen]
                scores = (lambda v, m=model: m.scores_pm1(v)) if isinstance(model, dam.DAM) else \
                    (lambda v, m=model: m(dam.from_pm1(v)))
                res = dam.boundary_images(self._grad_fn(gen), scores, dam.to_pm1(x).to(self.device),
                                          step=p.boundary_step, max_steps=p.boundary_max_steps,
                                          batch_size=p.attack_batch)
                imgs = dam.from_pm1(res["images"]).clamp(0, 1)
                for j, c in enumerate(names):
                    pred = dam.outputs(clf[c], imgs, device=self.device).argmax(1)
                    err[i, j] = (pred != y).double().mean()
                stats[gen] = {"crossed": res["crossed"].double().mean().item(),
                              "median_steps": res["steps"].double().median().item(),
                              "max_steps": int(res["steps"].max()),
                              "median_l2_pm1": res["l2"][res["crossed"]].median().item() if res["crossed"].any() else math.nan,
                              "second_is_true": (res["second"] == y).double().mean().item(),
                              "seconds": time.perf_counter() - t0}
                samples[gen] = {"adv": imgs[:8].to(torch.float32), "second": res["second"][:8].clone()}
            return {"names": names, "error": err, "clean_error": clean_err, "stats": stats, "samples": samples,
                    "clean_samples": x[:8].to(torch.float32).clone(), "labels": y[:8].clone(), "n_images": len(x)}

        return self._cached("transfer", compute)

    # --- FGSM (Fig. 8) -------------------------------------------------------------------------
    def fgsm(self) -> dict[str, Any]:
        def compute():
            p = self.prof
            x, y = self._test_data(p.n_fgsm)
            betas = self.beta_sm()
            out = {}
            for name, model in self.classifiers().items():
                errors, conf_mis, n_mis = [], [], []
                zero = torch.zeros(len(x), dtype=torch.bool)
                dirs = []
                for lo in range(0, len(x), p.attack_batch):
                    v = dam.to_pm1(x[lo:lo + p.attack_batch]).to(self.device)
                    yy = y[lo:lo + p.attack_batch].to(self.device)
                    if isinstance(model, dam.DAM):
                        d, z = dam.fgsm_direction(model, v, yy)
                        zero[lo:lo + len(v)] = z.cpu()
                    else:  # the MLP: sign of the cross-entropy gradient
                        # the gradient of the cross-entropy of the true label; FGSM ascends it
                        d = dam.classifier_objective_grad(model)(v, yy)[1].sign()
                    dirs.append(d.cpu())
                direction = torch.cat(dirs)
                v0 = dam.to_pm1(x)
                for eps in p.fgsm_eps:
                    adv = (v0 + eps * direction).clamp(-1, 1)
                    Y = dam.outputs(model, dam.from_pm1(adv), device=self.device)
                    wrong = Y.argmax(1) != y
                    Z = dam.confidence(Y, betas[name])
                    errors.append(wrong.double().mean().item())
                    n_mis.append(int(wrong.sum()))
                    conf_mis.append(Z[wrong].mean().item() if wrong.any() else math.nan)
                mid = min(range(len(p.fgsm_eps)), key=lambda i: abs(p.fgsm_eps[i] - 0.3))
                sample = dam.from_pm1((v0[:8] + p.fgsm_eps[mid] * direction[:8]).clamp(-1, 1)).to(torch.float32)
                out[name] = {"error": errors, "confidence_misclassified": conf_mis, "n_misclassified": n_mis,
                             "zero_gradient_fraction": zero.double().mean().item(), "sample": sample,
                             "sample_eps": p.fgsm_eps[mid]}
            return {"eps": list(p.fgsm_eps), "by_model": out, "n_images": len(x)}

        return self._cached("fgsm", compute)

    # --- beyond the paper: direct white-box attacks --------------------------------------------
    def whitebox(self) -> dict[str, Any]:
        def compute():
            p = self.prof
            # float32 images for the shared attack suite (the DAM computes in float64 inside; the
            # margin of the pre-tanh scores does not underflow, unlike the m = 30 objective)
            x, y = self._test_data(p.n_whitebox)
            clf = self.classifiers()
            out = {}
            for name in [f"n={n}" for n in p.whitebox_n if n in self.models()] + ["ReLU MLP"]:
                model = clf[name]
                self._log(f"white-box attacks on {name}")
                is_dam = isinstance(model, dam.DAM)
                grad_model = dam.PreTanh(model) if is_dam else None
                rows: dict[str, Any] = {}
                t0 = time.perf_counter()
                pgd = attacks.evaluate(model, x, y, attack="pgd_torch", epsilons=list(p.whitebox_eps),
                                       batch_size=p.attack_batch, device=self.device, seed=self.seed,
                                       loss="margin", steps=p.pgd_steps, restarts=p.pgd_restarts,
                                       grad_model=grad_model)
                rows["pgd_margin"] = pgd.robust_accuracy.tolist()
                # FGSM with the paper's objective (DAM) / CE (MLP), at the same [0, 1] epsilons
                fg = []
                for eps01 in p.whitebox_eps:
                    wrong = torch.zeros(len(x), dtype=torch.bool)
                    for lo in range(0, len(x), p.attack_batch):
                        v = dam.to_pm1(x[lo:lo + p.attack_batch]).to(self.device)
                        yy = y[lo:lo + p.attack_batch].to(self.device)
                        if is_dam:
                            d, _ = dam.fgsm_direction(model, v, yy)
                        else:
                            d = dam.classifier_objective_grad(model)(v, yy)[1].sign()
                        adv = (v + 2 * eps01 * d).clamp(-1, 1)
                        pred = dam.outputs(model, dam.from_pm1(adv), device=self.device).argmax(1)
                        wrong[lo:lo + len(v)] = pred != y[lo:lo + len(v)]
                    fg.append(1.0 - wrong.double().mean().item())
                rows["fgsm"] = fg
                strongest = torch.minimum(torch.tensor(fg), pgd.robust_accuracy.to(torch.float64))
                rows["strongest_linf"] = strongest.tolist()
                # decision-based L2 (no gradients at all) and the noise baseline
                try:
                    bnd = attacks.min_distance(model, x[:p.n_boundary_attack], y[:p.n_boundary_attack],
                                               attack="boundary", batch_size=p.attack_batch, device=self.device,
                                               seed=self.seed, steps=p.boundary_attack_steps)
                    rows["boundary_median_l2"] = bnd.median()
                    rows["boundary_found"] = torch.isfinite(bnd.distances).double().mean().item()
                except ImportError:  # foolbox missing (e.g. a bare GPU machine): say so, do not fail
                    rows["boundary_median_l2"] = math.nan
                    rows["boundary_found"] = math.nan
                noise = attacks.min_distance(model, x[:p.n_boundary_attack], y[:p.n_boundary_attack],
                                             attack="gaussian_noise", batch_size=p.attack_batch, device=self.device,
                                             seed=self.seed, draws=p.noise_draws)
                rows["noise_median_l2"] = noise.median()
                l2_results = [noise] + ([bnd] if not math.isnan(rows["boundary_median_l2"]) else [])
                rows["hsja_median_l2"] = math.nan
                if p.hsja_steps > 0:
                    try:
                        hsja = attacks.min_distance(model, x[:p.n_boundary_attack], y[:p.n_boundary_attack],
                                                    attack="hsja", batch_size=p.attack_batch, device=self.device,
                                                    seed=self.seed, steps=p.hsja_steps)
                        rows["hsja_median_l2"] = hsja.median()
                        l2_results.append(hsja)
                    except ImportError:
                        pass
                rows["all_decision_median_l2"] = attacks.compound(*l2_results).median()
                rows["seconds"] = time.perf_counter() - t0
                out[name] = rows
            return {"eps01": list(p.whitebox_eps), "by_model": out, "n_images": len(x),
                    "n_boundary_images": min(p.n_boundary_attack, len(x))}

        return self._cached("whitebox", compute)


# --- the scorecard -------------------------------------------------------------------------------

def _verdict(flags: list[bool]) -> str:
    if not flags:
        return "not run"
    if all(flags):
        return "reproduced"
    return "partly" if any(flags) else "not reproduced"


def scorecard(run: Run) -> list[dict[str, str]]:
    """One row per reproduction target of the spec (DAM-1 .. DAM-9, plus DAM-B1 beyond the paper),
    verdicts computed from the measured numbers against the spec's column for the profile."""
    p = run.prof
    paper = p.name == "paper"
    ns = sorted(run.models())
    small = [n for n in ns if n <= 3]
    large = [n for n in ns if n >= 20]
    rows: list[dict[str, str]] = []
    pct = lambda v: f"{100 * v:.1f} %"  # noqa: E731

    clean = run.clean()["by_model"]
    errs = {n: clean[f"n={n}"]["error"] for n in ns}
    if paper:
        flags = [abs(errs[n] - PAPER_ERRORS[n]) <= 0.005 for n in ns if n in PAPER_ERRORS]
        rule = "within 0.5 points of the paper"
    else:
        flags = [errs[n] <= 0.10 for n in ns]
        rule = "<= 10 % each"
    rows.append({"id": "DAM-1", "claim": "Accuracy is about the same for n = 2 ... 30",
                 "paper": "1.51 / 1.44 / 1.61 / 1.80 % (n = 2 / 3 / 20 / 30)",
                 "ours": ", ".join(f"n={n}: {pct(errs[n])}" for n in ns) + f" (target: {rule})",
                 "verdict": _verdict(flags)})

    proto = run.prototype_scores()
    if small and large:
        lo, hi = proto[str(min(ns))]["mean_max_corr"], proto[str(max(ns))]["mean_max_corr"]
        flags = [hi - lo >= 0.1]
        ours = (f"memory-to-class-mean correlation (proxy): n={min(ns)}: {lo:.2f}, n={max(ns)}: {hi:.2f}; "
                "grids shown")
    else:
        flags, ours = [], "needs a small and a large n"
    rows.append({"id": "DAM-2", "claim": "Memories shift from features (small n) to prototypes (large n)",
                 "paper": "qualitative (Fig. 2)", "ours": ours + " (verdict: proxy difference >= 0.10)",
                 "verdict": _verdict(flags)})

    rub = run.rubbish()
    if small and large:
        lo = rub["digit_corr"][f"n={min(ns)}"]
        hi = min(rub["digit_corr"][f"n={n}"] for n in large)
        flags = [hi - lo >= 0.1]
        ours = (f"rubbish-to-class-mean correlation (proxy): n={min(ns)}: {lo:.2f}, "
                + ", ".join(f"n={n}: {rub['digit_corr'][f'n={n}']:.2f}" for n in large) + "; images shown")
    else:
        flags, ours = [], "needs a small and a large n"
    rows.append({"id": "DAM-3", "claim": "Rubbish minima are speckle for small n, digits for n = 20, 30",
                 "paper": "qualitative (Fig. 3)", "ours": ours + " (verdict: large-n proxy >= small-n + 0.10)",
                 "verdict": _verdict(flags)})

    tr = run.transfer()
    crossed = {n: tr["stats"][f"n={n}"]["crossed"] for n in ns}
    rows.append({"id": "DAM-4", "claim": "Boundary images: speckle for small n, morphs/ghosts for large n",
                 "paper": "qualitative (Fig. 4)",
                 "ours": "crossed the boundary within the step budget: "
                         + ", ".join(f"n={n}: {pct(crossed[n])}" for n in ns)
                         + f" of {tr['n_images']} images (target: >= 90 % each); triplets shown; median L2 to the "
                         "boundary ([0,1]): " + ", ".join(f"n={n}: {tr['stats'][f'n={n}']['median_l2_pm1'] / 2:.2f}"
                                                          for n in ns)
                         + "; how the images look (speckle vs morphs) is judged by eye in the text, not here",
                 # crossing is all the code measures; the claim is about how the images look, judged
                 # by eye in the chapter's text: at most "partly"
                 "verdict": "partly" if all(crossed[n] >= 0.9 for n in ns) else "not reproduced"})

    names = tr["names"]
    E = tr["error"]
    idx = {nm: i for i, nm in enumerate(names)}
    diag = {n: E[idx[f"n={n}"], idx[f"n={n}"]].item() for n in ns}
    if paper:
        big = max(ns)
        cells = [E[idx[f"n={s}"], idx[f"n={big}"]].item() for s in small]
        flags = [c <= 0.06 for c in cells] + [diag[n] >= 0.97 for n in ns]
        ours = (f"n={big} error on the n={small} sets: " + ", ".join(pct(c) for c in cells)
                + "; diagonal " + ", ".join(pct(diag[n]) for n in ns) + " (targets: <= 6 %, >= 97 %)")
    elif small and large:
        s = min(ns)
        cells = {l: E[idx[f"n={s}"], idx[f"n={l}"]].item() for l in large}
        flags = [diag[n] >= 0.9 for n in ns] + [c * 3 <= diag[s] for c in cells.values()]
        ours = (f"diagonal " + ", ".join(pct(diag[n]) for n in ns) + f"; error on the n={s} set: "
                + ", ".join(f"n={l} {pct(c)}" for l, c in cells.items())
                + " (targets: diagonal >= 90 %, large-n cells <= diagonal / 3)")
        others = [n for n in small if n != s]
        if others:  # the paper: small-n adversarials do transfer between small n, so the large-n
            # cells must also sit clearly (here: half) below the small-n cross cell
            cross = E[idx[f"n={s}"], idx[f"n={others[0]}"]].item()
            ours += f"; n={others[0]} error on the n={s} set {pct(cross)}"
            specific = all(c <= cross / 2 for c in cells.values())
            if all(flags) and not specific:
                flags = [True, False]  # -> partly: large n resist, but no more than small n do
                ours += " (large n resist no better than small n: the transfer itself is weak)"
        if "ReLU MLP" in idx:
            ours += f"; ReLU MLP error on the n={s} set {pct(E[idx[f'n={s}'], idx['ReLU MLP']].item())}"
    else:
        flags, ours = [], "needs a small and a large n"
    rows.append({"id": "DAM-5", "claim": "Small-n adversarials do not transfer to large n",
                 "paper": "n = 30 error ~3 % on the n = 2 and n = 3 sets; diagonal ~99 %; other cells not available",
                 "ours": ours + f" ({tr['n_images']} images per set)", "verdict": _verdict(flags)})

    flags, parts = [], []
    for n in ns:
        bins = [b for b in clean[f"n={n}"]["bins"] if b["count"] >= p.min_bin_count]
        if len(bins) < 2:
            flags.append(False)
            parts.append(f"n={n}: too few populated bins")
            continue
        errs_b = [b["error"] for b in bins]
        if paper:
            rho = _spearman(list(range(len(errs_b))), errs_b)
            flags.append(rho <= -0.8)
            parts.append(f"n={n}: beta_sm {clean[f'n={n}']['beta_sm']:.2f}, Spearman(bin, error) {rho:.2f}")
        else:
            flags.append(errs_b[0] > errs_b[-1])
            parts.append(f"n={n}: beta_sm {clean[f'n={n}']['beta_sm']:.2f}, error {pct(errs_b[0])} (lowest Z bin) "
                         f"vs {pct(errs_b[-1])} (highest)")
    rows.append({"id": "DAM-6", "claim": "Confidence is meaningful: error falls as Z rises",
                 "paper": "beta_sm = 4.7 / 4.6 / 4 / 26 (as printed)", "ours": "; ".join(parts),
                 "verdict": _verdict(flags)})

    zf = rub["z_fixed"]
    ridx = {nm: i for i, nm in enumerate(rub["names"])}
    if small and large:
        s = min(ns)
        own = zf[ridx[f"n={s}"], ridx[f"n={s}"]].item()
        if paper:
            cells = [zf[ridx[f"n={g}"], ridx[f"n={c}"]].item() for g in small for c in large]
            flags = [c <= 0.2 for c in cells] + [own >= 0.95]
            ours = (f"n={s} on own rubbish {pct(own)}; large n on small-n rubbish: "
                    + ", ".join(pct(c) for c in cells) + " (targets: >= 95 %, <= 20 %)")
        else:
            l = min(large)
            cell = zf[ridx[f"n={s}"], ridx[f"n={l}"]].item()
            flags = [cell <= own - 0.3]
            ours = f"n={s} own {pct(own)}, n={l} on it {pct(cell)} (target: at least 30 points lower)"
    else:
        flags, ours = [], "needs a small and a large n"
    rows.append({"id": "DAM-7", "claim": "Small-n rubbish is not recognised by large-n models",
                 "paper": "n = 2 on own rubbish 98.5 %; n = 20, 30 on n = 2/3 rubbish ~10 %",
                 "ours": ours + f" (beta_sm = {p.rubbish_beta})", "verdict": _verdict(flags)})

    fg = run.fgsm()
    eps = fg["eps"]
    err = {n: fg["by_model"][f"n={n}"]["error"] for n in ns}
    zero = {n: fg["by_model"][f"n={n}"]["zero_gradient_fraction"] for n in ns}
    if small and large:
        if paper:
            check = [i for i, e in enumerate(eps) if 0 < e <= 0.5 + 1e-9]
            flags = [err[l][i] < err[s][i] for i in check for l in large for s in small]
        else:
            check = [i for i, e in enumerate(eps) if abs(e - 0.2) < 1e-9 or abs(e - 0.3) < 1e-9]
            flags = [err[min(large)][i] < err[min(small)][i] for i in check]
        ours = "; ".join(f"eps={eps[i]:.2f} ([-1,1]) = {eps[i] / 2:.3f} ([0,1]): "
                         + ", ".join(f"n={n} {pct(err[n][i])}" for n in ns) for i in check)
        ours += ("; loss: the training objective C_y (float64), margin fallback used for "
                 + ", ".join(f"n={n} {pct(zero[n])}" for n in ns) + " of the images")
    else:
        flags, ours = [], "needs a small and a large n"
    rows.append({"id": "DAM-8", "claim": "Under self-FGSM, error grows fast for small n, slowly for large n",
                 "paper": "curves not available (image)", "ours": ours, "verdict": _verdict(flags)})

    conf = {n: fg["by_model"][f"n={n}"]["confidence_misclassified"] for n in ns}
    if small and large:
        i3 = min(range(len(eps)), key=lambda i: abs(eps[i] - 0.3))
        if paper:
            i5 = min(range(len(eps)), key=lambda i: abs(eps[i] - 0.5))
            beyond = [i for i, e in enumerate(eps) if e > 0.3 + 1e-9]
            flags = [conf[s][i5] >= 0.8 for s in small]
            flags += [abs(conf[l][i3] - 0.17) <= 0.10 for l in large]
            flags += [abs(conf[l][i] - 0.14) <= 0.10 for l in large for i in beyond]
            ours = (f"eps=0.5: " + ", ".join(f"n={s} {pct(conf[s][i5])}" for s in small)
                    + f"; eps=0.3: " + ", ".join(f"n={l} {pct(conf[l][i3])}" for l in large)
                    + "; eps>0.3: " + ", ".join(f"n={l} {pct(max(conf[l][i] for i in beyond))} (max)" for l in large))
        else:
            s, l = min(small), min(large)
            if math.isnan(conf[l][i3]):
                flags, ours = [], f"n={l} has no misclassified images at eps=0.3"
            else:
                flags = [conf[l][i3] < conf[s][i3]]
                ours = f"eps=0.3 ([-1,1]): n={s} {pct(conf[s][i3])}, n={l} {pct(conf[l][i3])}"
        ours += " (per-model calibrated beta_sm)"
    else:
        flags, ours = [], "needs a small and a large n"
    rows.append({"id": "DAM-9", "claim": "Confidence on misclassified FGSM samples: high for small n, low for large n",
                 "paper": "~90 % (n = 2, 3); ~70 % (eps 0) -> 17 % (eps 0.3) -> 14 % (eps > 0.3) for n = 20, 30",
                 "ours": ours, "verdict": _verdict(flags)})

    wb = run.whitebox()
    target = f"n={max(p.whitebox_n)}" if f"n={max(p.whitebox_n)}" in wb["by_model"] else None
    if target is not None:
        r = wb["by_model"][target]
        e01 = wb["eps01"]
        i = min(range(len(e01)), key=lambda k: abs(e01[k] - p.whitebox_headline_eps))
        fg_acc, strong = r["fgsm"][i], r["strongest_linf"][i]
        flags = [strong >= fg_acc - 0.10]
        verdict = "reproduced" if flags[0] else ("partly" if strong >= fg_acc - 0.25 else "not reproduced")
        ours = (f"{target}, eps = {e01[i]:.2f} ([0,1]) = {2 * e01[i]:.2f} ([-1,1]): accuracy {pct(fg_acc)} under "
                f"FGSM (paper's loss) vs {pct(strong)} under the strongest attack (PGD on the pre-tanh margin, "
                f"{p.pgd_restarts} restart(s) x {p.pgd_steps} steps, and FGSM); Boundary-attack median L2 "
                f"{r['boundary_median_l2']:.2f} ([0,1]) (target: strongest within 10 points of FGSM)")
    else:
        verdict, ours = "not run", "no large-n model in this profile"
    rows.append({"id": "DAM-B1", "claim": "Beyond the paper: the large-n robustness survives direct white-box attacks",
                 "paper": "only FGSM shown; BIM / least-likely 'very similar' (text)", "ours": ours,
                 "verdict": verdict})
    return rows


def _spearman(a: list[float], b: list[float]) -> float:
    ra = torch.tensor(a, dtype=torch.float64).argsort().argsort().double()
    rb = torch.tensor(b, dtype=torch.float64).argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-12))


def run_all(run: Run) -> list[dict[str, str]]:
    """Every experiment in notebook order, then the scorecard (written to the store)."""
    run.models()
    run.mlp()
    run.clean()
    run.prototype_scores()
    run.rubbish()
    run.trajectories()
    run.transfer()
    run.fgsm()
    run.whitebox()
    rows = scorecard(run)
    store.write_scorecard(NOTEBOOK, run.prof.name, rows, seed=run.seed, device=run.device)
    return rows


def main(argv: list[str] | None = None) -> int:
    from ... import profiles

    ap = argparse.ArgumentParser(description="DAM experiments without Jupyter (same artifacts as the notebook)")
    ap.add_argument("--profile", default="paper", choices=profiles.PROFILE_NAMES)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--tune", action="store_true", help="only run and store the temperature sweep")
    args = ap.parse_args(argv)
    prof, dev = profiles.setup(NOTEBOOK, args.profile, args.seed, args.device)
    run = Run(prof, dev, args.seed, args.retrain, progress=True)
    t0 = time.perf_counter()
    if args.tune:
        res = run.compute_offline_tuning()
        for r in res["rows"]:
            print(f"n={r['n']} m={r['m']} T={r['T']:g}: val error {100 * r['val_error']:.2f} %")
        print("best:", res["best"])
        return 0
    rows = run_all(run)
    for r in rows:
        print(f"{r['id']}: {r['verdict']}: {r['ours']}")
    print(f"done in {time.perf_counter() - t0:.0f} s on {dev}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
