"""The ABS chapter's computation, as steps on the experiment core.

Models: the ten class-conditional VAEs, the vanilla CNN, the transfer substitute and our
Madry-style CNN are trained (or loaded); binary CNN, nearest neighbour, ABS and binary ABS are
built from them. Results: clean accuracy and ABS's confidence, the lower bound, distal
adversarials, and every planned attack of the paper's suite on every model (one stored artifact
per model and attack, one step per model), gathered by the ``attacks`` step into the per-norm
minimum over attacks; then the book's yardstick (``robustlib.protocol``) on ABS and binary ABS
(step ``yardstick``: the zoo's ``abs`` and ``binary-abs``) and on the four baselines (step
``yardstick_baselines``), one stored result per model.

``python -m robustlib compute abs --profile P`` runs ``steps(profile)``; the chapter calls the same
functions, which load what is stored.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ... import attacks, data, train
from ...attacks import DistanceResult
from ...experiment import Experiment, Step
from ..baselines.model import NearestNeighbour
from . import attacks as abs_attacks  # noqa: F401  (registers latent_descent, boundary_from, pointwise_from)
from . import model as abs_model
from .profile import AbsProfile

MODELS = ("CNN", "Binary CNN", "Nearest neighbour", "Madry et al. (ours)", "Binary ABS", "ABS")
ABS_MODELS = ("Binary ABS", "ABS")
NORMS = ("l2", "linf", "l0")


# =============================================================================================
# Keys: frozen dataclasses (the store hashes ``asdict``; these hash like the keys of the
# committed artifacts)
# =============================================================================================


@dataclass(frozen=True)
class VAEKey:
    """The VAEs' training settings and latent size."""

    vae: abs_model.VAETraining
    latent: int = abs_model.LATENT

    @classmethod
    def of(cls, prof: AbsProfile) -> VAEKey:
        return cls(
            abs_model.VAETraining(
                epochs=prof.vae_epochs,
                batch_rows=prof.vae_batch_rows,
                lr=prof.vae_lr,
                anneal_epochs=prof.vae_anneal_epochs,
                n_per_class=prof.vae_per_class,
            )
        )


@dataclass(frozen=True)
class CNNKey:
    """A plainly trained CNN: ``kind`` "cnn" (the vanilla CNN) or "substitute" (transfer source)."""

    kind: str
    epochs: int
    n: int | None  # training images (None: all)
    lr: float
    batch: int

    @classmethod
    def of(cls, prof: AbsProfile, kind: str) -> CNNKey:
        if kind == "substitute":
            return cls(kind, prof.sub_epochs, prof.sub_train, prof.cnn_lr, prof.cnn_batch)
        return cls(kind, prof.cnn_epochs, prof.cnn_train, prof.cnn_lr, prof.cnn_batch)


@dataclass(frozen=True)
class MadryKey:
    """Our Madry-style CNN: L-inf PGD adversarial training, from scratch or from the vanilla CNN."""

    epochs: int
    n: int | None
    lr: float
    steps: int  # PGD steps of the training adversary
    ramp: float  # fraction of the iterations over which eps ramps 0 -> 0.3
    from_cnn: bool
    cnn_train: int | None  # the vanilla CNN it starts from (part of the key when from_cnn)
    cnn_epochs: int
    batch: int
    kind: str = "madry"

    @classmethod
    def of(cls, prof: AbsProfile) -> MadryKey:
        return cls(
            prof.madry_epochs,
            prof.madry_train,
            prof.cnn_lr,
            prof.madry_pgd_steps,
            prof.madry_ramp,
            prof.madry_from_cnn,
            prof.cnn_train,
            prof.cnn_epochs,
            prof.cnn_batch,
        )


@dataclass(frozen=True)
class ProfileKey:
    """Results keyed by the whole profile (clean accuracy, lower bound, distal adversarials)."""

    profile: AbsProfile


@dataclass(frozen=True)
class AttackKey:
    """One attack on one model, keyed by the whole profile."""

    profile: AbsProfile
    model: str
    attack: str  # its label in the tables


# =============================================================================================
# Models (steps that train or load)
# =============================================================================================


def vaes(exp: Experiment) -> tuple[abs_model.ClassVAEs, list[dict]]:
    """The ten class-conditional VAEs and their training history."""
    key = VAEKey.of(exp.profile)

    def fit(model: abs_model.ClassVAEs, ckpt) -> list[dict]:
        x, y = data.mnist("train")
        return abs_model.train_vaes(
            model, x, y, key.vae, seed=exp.seed, device=exp.device, checkpoint=ckpt, progress=exp.progress
        )

    return exp.model("vaes", key, abs_model.ClassVAEs, fit)


def _fit_cnn(
    exp: Experiment, model: abs_model.CNN, ckpt, x: torch.Tensor, y: torch.Tensor, epochs: int, desc: str, step=None
) -> list[dict]:
    opt = torch.optim.Adam(model.parameters(), lr=exp.profile.cnn_lr)
    return train.fit(
        model,
        x,
        y,
        epochs=epochs,
        batch_size=exp.profile.cnn_batch,
        seed=exp.seed,
        optimizer=opt,
        step=step,
        checkpoint=ckpt,
        device=exp.device,
        progress=exp.progress,
        desc=desc,
    )


def _plain_cnn(exp: Experiment, kind: str) -> tuple[abs_model.CNN, list[dict]]:
    key = CNNKey.of(exp.profile, kind)
    channels = (32, 32, 64, 10) if kind == "substitute" else (20, 70, 256, 10)

    def fit(model: abs_model.CNN, ckpt) -> list[dict]:
        x, y = data.first(*data.mnist("train"), key.n)
        return _fit_cnn(exp, model, ckpt, x, y, key.epochs, kind)

    return exp.model(f"cnn-{kind}", key, lambda: abs_model.CNN(channels), fit)


def cnn(exp: Experiment) -> tuple[abs_model.CNN, list[dict]]:
    """The paper's vanilla CNN (20-70-256-10)."""
    return _plain_cnn(exp, "cnn")


def substitute(exp: Experiment) -> tuple[abs_model.CNN, list[dict]]:
    """The transfer attacks' substitute CNN (32-32-64-10)."""
    return _plain_cnn(exp, "substitute")


def madry(exp: Experiment) -> tuple[abs_model.CNN, list[dict]]:
    """Our Madry et al. model: the vanilla architecture trained on L-inf PGD adversarials (eps 0.3),
    from scratch or (``madry_from_cnn``) fine-tuned from the vanilla CNN on new training images."""
    key = MadryKey.of(exp.profile)

    def fit(model: abs_model.CNN, ckpt) -> list[dict]:
        x, y = data.mnist("train")
        start = (key.cnn_train or 0) if key.from_cnn and key.n else 0
        xs, ys = (x[start : start + key.n], y[start : start + key.n]) if key.n else (x, y)
        if key.from_cnn:
            model.load_state_dict(cnn(exp)[0].state_dict())
        iters = key.epochs * math.ceil(len(xs) / key.batch)
        step = abs_model.madry_step(0.3, key.steps, int(key.ramp * iters))
        return _fit_cnn(exp, model, ckpt, xs, ys, key.epochs, "madry", step)

    return exp.model("cnn-madry", key, lambda: abs_model.CNN((20, 70, 256, 10)), fit)


def abs_classifier(exp: Experiment, *, binary: bool = False) -> abs_model.ABS:
    """ABS on the trained VAEs (the profile's bank size and Adam steps); ``binary``: binary ABS."""
    prof = exp.profile
    config = abs_model.ABSConfig(n_samples=prof.n_samples, steps=prof.abs_steps)
    model = abs_model.ABS(vaes(exp)[0].to(exp.device), config).to(exp.device)
    return model.variant(binary=True, gamma=abs_model.GAMMA) if binary else model


def classifier(exp: Experiment, name: str) -> torch.nn.Module:
    """One of the six compared models, by its display name (trained or loaded)."""
    if name in ("ABS", "Binary ABS"):
        return abs_classifier(exp, binary=name == "Binary ABS")
    if name == "CNN":
        return cnn(exp)[0]
    if name == "Binary CNN":
        return abs_model.binary_view(cnn(exp)[0])
    if name == "Madry et al. (ours)":
        return madry(exp)[0]
    if name == "Nearest neighbour":
        x, y = data.first(*data.mnist("train"), exp.profile.nn_train)
        return NearestNeighbour(x, y).to(exp.device)
    raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")


@dataclass
class Models:
    """Everything the chapter shows, by display name, plus the pieces behind them."""

    models: dict[str, torch.nn.Module]
    vaes: abs_model.ClassVAEs
    abs: abs_model.ABS
    substitute: abs_model.CNN
    histories: dict[str, list[dict]] = field(default_factory=dict)


def build_models(exp: Experiment) -> Models:
    """All six models and the training histories (trained where missing, else loaded)."""
    trained = {"vaes": vaes(exp), "cnn": cnn(exp), "substitute": substitute(exp), "madry": madry(exp)}
    abs_plain = abs_classifier(exp)
    models = {name: classifier(exp, name) for name in MODELS if name not in ABS_MODELS}
    models |= {"Binary ABS": abs_plain.variant(binary=True, gamma=abs_model.GAMMA), "ABS": abs_plain}
    return Models(
        models, trained["vaes"][0], abs_plain, trained["substitute"][0], {k: hist for k, (_, hist) in trained.items()}
    )


# =============================================================================================
# Clean accuracy and confidence, the lower bound, distal adversarials
# =============================================================================================


def clean(exp: Experiment) -> dict[str, Any]:
    """Accuracy of every model on the first test images (``n_clean`` for ABS and binary ABS,
    ``n_clean_baselines`` for the others) and ABS's modified-softmax confidence per image."""
    prof = exp.profile

    def compute() -> dict[str, Any]:
        xt, yt = data.mnist("test")
        out: dict[str, Any] = {"accuracy": {}, "n": {}}
        for name in MODELS:
            model = classifier(exp, name)
            is_abs = name in ABS_MODELS
            x, y = data.first(xt, yt, prof.n_clean if is_abs else prof.n_clean_baselines)
            scores = train.predict(model, x, batch_size=500 if is_abs else 1000, device=exp.device)
            out["accuracy"][name] = (scores.argmax(1) == y).float().mean().item()
            out["n"][name] = len(x)
            if name == "ABS":
                p = abs_model.modified_softmax(scores.to(torch.float64), model.config.alpha, model.config.eta)
                out["abs_confidence"] = p.amax(1).float()
                out["abs_correct"] = scores.argmax(1) == y
        return out

    return exp.cached("clean", ProfileKey(prof), compute)


def lower_bound(exp: Experiment) -> dict[str, Any]:
    """epsilon*(x), the instance-specific L2 bound of ABS, on the first ``n_bound`` test images."""
    prof = exp.profile

    def compute() -> dict[str, Any]:
        x, y = data.first(*data.mnist("test"), prof.n_bound)
        model = abs_classifier(exp)
        eps = [
            abs_model.lower_bound(model, x[i : i + 250].to(exp.device), y[i : i + 250].to(exp.device)).cpu()
            for i in range(0, len(x), 250)
        ]
        return {"epsilon": torch.cat(eps)}

    return exp.cached("lower-bound", ProfileKey(prof), compute)


def distal(exp: Experiment) -> dict[str, Any]:
    """Distal adversarials: from uniform noise, target class t = i mod 10, signed-gradient ascent
    on log p(t | x) until p >= 0.9; CNN (softmax) vs ABS (modified softmax). Also each model's
    confidence on the untouched noise."""
    prof = exp.profile

    def compute() -> dict[str, Any]:
        g = torch.Generator().manual_seed(exp.seed + 17)
        x0 = torch.rand(prof.distal_starts, 1, 28, 28, generator=g).to(exp.device)
        target = (torch.arange(prof.distal_starts) % 10).to(exp.device)
        out: dict[str, Any] = {"noise": x0.cpu(), "target": target.cpu()}
        for name in ("CNN", "ABS"):
            pm = abs_model.ProbabilityModel(classifier(exp, name)).eval()
            with torch.no_grad():
                noise_conf = pm(x0).exp().amax(1).cpu()
            xa, p, ok = abs_model.distal(pm, x0, target, steps=prof.distal_steps, lr=prof.distal_lr)
            out[name] = {"noise_confidence": noise_conf, "images": xa.cpu(), "p_target": p.cpu(), "success": ok.cpu()}
        return out

    return exp.cached("distal", ProfileKey(prof), compute)


# =============================================================================================
# Attacks
# =============================================================================================


@dataclass(frozen=True)
class AttackSpec:
    """One planned attack: the table label, its norm, and how ``attacks.min_distance`` runs it."""

    label: str
    norm: str
    attack: str  # a registered attack (robustlib.attacks, or this folder's attacks.py)
    options: dict[str, Any] = field(default_factory=dict)
    epsilons: tuple[float, ...] | None = None  # grid for fixed-size attacks


def attack_plan(name: str, prof: AbsProfile) -> list[AttackSpec]:
    """The attacks run on model ``name`` at this profile (per norm, the minimum is "all")."""
    is_abs = name in ABS_MODELS
    l2_grid, linf_grid = (prof.l2_grid_abs, prof.linf_grid_abs) if is_abs else (prof.l2_grid, prof.linf_grid)
    steps = prof.pgd_steps_abs if is_abs else prof.pgd_steps
    line = {"grid": prof.line_grid, "bisect": prof.line_bisect}
    draws = prof.gaussian_draws_abs if is_abs else prof.gaussian_draws
    plan = [
        AttackSpec("PGD (L2)", "l2", "pgd_torch", {"norm": "l2", "steps": steps, "loss": "margin"}, l2_grid),
        AttackSpec("Gaussian noise", "l2", "gaussian_noise", {"draws": draws, "max_scale": 32.0, **line}),
        AttackSpec(
            "Transfer (L2)", "l2", "transfer", {"norm": "l2", "source_eps": 4.0, "steps": 20, "max_scale": 64.0, **line}
        ),
        AttackSpec(
            "FGSM", "linf", "pgd_torch", {"norm": "linf", "steps": 1, "random_start": False, "loss": "ce"}, linf_grid
        ),
        AttackSpec("PGD (L∞)", "linf", "pgd_torch", {"norm": "linf", "steps": steps, "loss": "margin"}, linf_grid),
        AttackSpec(
            "Transfer (L∞)",
            "linf",
            "transfer",
            {"norm": "linf", "source_eps": 0.5, "steps": 20, "max_scale": 2.0, **line},
        ),
    ]
    if is_abs:
        descent = {"n_coarse": prof.ld_coarse, "n_bisect": prof.ld_bisect}
        plan.append(AttackSpec("Latent Descent", "l2", "latent_descent", descent))
        if prof.boundary_steps_abs > 0:
            plan.append(
                AttackSpec(
                    "Boundary",
                    "l2",
                    "boundary_from",
                    {"steps": prof.boundary_steps_abs, "start": "latent_descent", "start_options": descent},
                )
            )
    elif prof.boundary_steps > 0:
        plan.append(AttackSpec("Boundary", "l2", "boundary", {"steps": prof.boundary_steps}))
    if name in prof.l0_models:
        salt_pepper = {"steps": prof.salt_pepper_steps}
        plan += [
            AttackSpec("Salt & pepper", "l0", "salt_pepper", salt_pepper),
            AttackSpec("Pointwise", "l0", "pointwise_from", {"start": "salt_pepper", "start_options": salt_pepper}),
        ]
    return plan


def _slug(model: str, attack: str) -> str:
    s = f"attack-{model}-{attack}".lower()
    for a, b in ((" ", "_"), ("(", ""), (")", ""), ("∞", "inf"), ("&", "and"), (".", "")):
        s = s.replace(a, b)
    return s


def attack_model(exp: Experiment, name: str) -> dict[str, DistanceResult]:
    """Every planned attack on model ``name``: ``{label: DistanceResult}`` on the first
    ``n_attack`` test images. Stored per attack: the per-image distances, the first ``n_show``
    adversarials (for the figures) and the wall time (``.seconds``)."""
    prof = exp.profile
    x, y = data.first(*data.mnist("test"), prof.n_attack)
    model: list[torch.nn.Module] = []  # built on the first attack that must run

    def run(spec: AttackSpec) -> dict[str, Any]:
        if not model:
            model.append(classifier(exp, name))
        options = dict(spec.options)
        if spec.attack == "transfer":
            options["source"] = substitute(exp)[0]
        t0 = time.perf_counter()
        res = attacks.min_distance(
            model[0],
            x,
            y,
            attack=spec.attack,
            epsilons=spec.epsilons,
            batch_size=len(x),
            device=exp.device,
            seed=exp.seed,
            **options,
        )
        return {
            "distances": res.distances,
            "show": res.adversarials[: prof.n_show].clone(),
            "seconds": time.perf_counter() - t0,
        }

    out: dict[str, DistanceResult] = {}
    for spec in attack_plan(name, prof):
        r = exp.cached(_slug(name, spec.label), AttackKey(prof, name, spec.label), functools.partial(run, spec))
        res = DistanceResult(spec.label, spec.norm, r["distances"], r["show"][: prof.n_show])
        res.seconds = r["seconds"]
        out[spec.label] = res
        exp.log(f"{name} | {spec.label}: median {res.median():.3g} ({r['seconds']:.1f} s)")
    return out


def combined(per_attack: dict[str, dict[str, DistanceResult]], n_show: int = 8) -> dict[str, dict[str, DistanceResult]]:
    """``all[model][norm]``: per image the smallest adversarial over that norm's attacks; its
    ``adversarials`` are the first ``n_show`` images' winners (from the stored previews)."""
    out: dict[str, dict[str, DistanceResult]] = {}
    for name, per in per_attack.items():
        out[name] = {}
        for norm in NORMS:
            rs = [r for r in per.values() if r.norm == norm]
            if not rs:
                continue
            c = attacks.compound(*[DistanceResult(r.attack, r.norm, r.distances) for r in rs], name=f"all {norm}")
            by_label = {r.attack: r for r in rs}
            show = []
            for i in range(min(n_show, len(c.distances))):
                src = by_label.get(c.sources[i])
                show.append(
                    src.adversarials[i]
                    if src is not None and src.adversarials is not None
                    else torch.full_like(rs[0].adversarials[0], float("nan"))
                )
            c.adversarials = torch.stack(show) if show else None
            out[name][norm] = c
    return out


def attack_step_name(model: str) -> str:
    """The step that attacks ``model``: ``attacks_cnn``, ``attacks_binary_abs``, ..."""
    return "attacks_" + _slug(model, "x")[len("attack-") : -len("-x")]


def all_attacks(exp: Experiment) -> dict[str, Any]:
    """Every model's attacks (``per_attack[model][label]``) and, per model and norm, the minimum
    over that norm's attacks (``all[model][norm]``)."""
    per_attack = {name: attack_model(exp, name) for name in MODELS}
    return {"per_attack": per_attack, "all": combined(per_attack, exp.profile.n_show)}


# =============================================================================================
# The steps
# =============================================================================================

_MODEL_STEPS = {
    "CNN": ("cnn",),
    "Binary CNN": ("cnn",),
    "Nearest neighbour": (),
    "Madry et al. (ours)": ("madry",),
    "Binary ABS": ("vaes",),
    "ABS": ("vaes",),
}


def steps(prof: AbsProfile) -> list[Step]:
    """Train the models, then measure: clean accuracy, lower bound, distal adversarials, one
    attack step per model, and ``attacks`` gathering them."""
    attack_steps = [
        Step(
            attack_step_name(name),
            functools.partial(attack_model, name=name),
            after=(*_MODEL_STEPS[name], "substitute"),
            gpu=True,
        )
        for name in MODELS
    ]
    return [
        Step("vaes", vaes, gpu=True),
        Step("cnn", cnn, gpu=True),
        Step("substitute", substitute, gpu=True),
        Step("madry", madry, after=("cnn",), gpu=True),
        Step("clean", clean, after=("vaes", "cnn", "madry"), gpu=True),
        Step("lower_bound", lower_bound, after=("vaes",), gpu=True),
        Step("distal", distal, after=("vaes", "cnn"), gpu=True),
        *attack_steps,
        Step("attacks", all_attacks, after=tuple(s.name for s in attack_steps)),
        Step("yardstick", yardstick, after=("vaes",), gpu=True),
        Step("yardstick_baselines", yardstick_baselines, after=("cnn", "madry"), gpu=True),
    ]


# =============================================================================================
# The yardstick: the book's one protocol (robustlib.protocol) on ABS, binary ABS and the baselines
# =============================================================================================

# ABS inference is expensive: about 25 ms per image and call on one CPU core at ``quick`` (a CNN
# takes microseconds), and the protocol's score- and decision-based attacks call it hundreds to
# thousands of times per image (Square alone: 1,000 queries per image and epsilon, about 25 s). So
# that ABS and binary ABS fit the book's budget (the protocol over every model in 15 minutes on
# 2 cores), at ``quick`` they are evaluated on the first 10 test images, without Square, with
# HopSkipJump at 6 iterations and 5 noise draws, and the trivial bound's reference set is those
# images plus 200 training images (2,000 would cost a minute of inference per model). Everything
# else is the protocol's ``quick`` setting; the chapter and the scorecard rows say so. The
# protocol's own ``paper`` setting (1,000 images, every attack standalone over the whole grid,
# Square at 5,000 queries, APGD-T over nine targets) needs 55,000-85,000 ABS inferences per image:
# an estimated 25-100 H100 hours per model (book/running.md). At ``paper`` ABS and binary ABS get
# 100 images, the cascade with bisection (as at quick), no Square, and a HopSkipJump of 20
# iterations: about 4,000 inferences per image.
YARDSTICK_OVERRIDES: dict[str, dict[str, Any]] = {
    "smoke": {
        "n_images": 3,
        "attacks": ("apgd-ce", "apgd-dlr", "transfer", "noise", "hsja"),
        "hsja_steps": 2,
        "noise_draws": 2,
    },
    "quick": {
        "n_images": 10,
        "n_reference": 200,
        "attacks": ("apgd-ce", "apgd-dlr", "transfer", "noise", "hsja"),
        "hsja_steps": 6,
        "noise_draws": 5,
    },
    "paper": {
        "n_images": 100,
        "n_reference": 1000,
        "attacks": ("apgd-ce", "apgd-t", "transfer", "noise", "hsja"),
        "cascade": True,
        "search": "bisect",
        "square_full_grid": False,
        "hsja_steps": 20,
        "hsja_evals": 50,
        "noise_draws": 20,
        "monotonicity_images": 50,
    },
}
# The baselines get the protocol's own settings (at smoke, on fewer images: tests).
YARDSTICK_BASELINE_OVERRIDES: dict[str, dict[str, Any]] = {"smoke": {"n_images": 8}, "quick": {}, "paper": {}}
# The chapter's baselines through the same protocol, by display name -> artifact name.
YARDSTICK_BASELINES = {
    "CNN": "cnn",
    "Binary CNN": "binary-cnn",
    "Nearest neighbour": "nearest-neighbour",
    "Madry et al. (ours)": "madry",
}
SOURCE = "relu-mlp"  # the transfer source: the baselines chapter's standard network (zoo name)


@dataclass(frozen=True)
class YardstickKey:
    """One model's protocol result: the protocol's settings, what the model is (its weights' keys
    and the ABS inference settings), what the gradient attacks use (``surrogate``), the paper's
    attack's settings, and the transfer source (the baselines chapter's ReLU MLP, by its key)."""

    config: Any  # protocol.ProtocolConfig
    model: str
    weights: Any  # VAEKey / CNNKey / MadryKey / the nearest neighbour's training-set size
    inference: tuple[int, int] | None  # ABS: (prior samples, Adam steps)
    surrogate: str
    attack: str
    source: Any


def yardstick_config(prof: AbsProfile, *, abs_model_: bool = True):
    """The protocol's settings at ``prof``: ``YARDSTICK_OVERRIDES`` for ABS and binary ABS,
    ``YARDSTICK_BASELINE_OVERRIDES`` (the protocol's own at quick and paper) for the baselines."""
    from ... import protocol

    overrides = YARDSTICK_OVERRIDES if abs_model_ else YARDSTICK_BASELINE_OVERRIDES
    return protocol.ProtocolConfig.for_profile(prof.name, **overrides[prof.name])


def transfer_source(exp: Experiment) -> torch.nn.Module:
    """The yardstick's transfer source, the baselines chapter's ReLU MLP from that chapter's store
    (trained there if missing, unless ``exp`` is load-only): the same source for every chapter."""
    from ..baselines import experiments as base

    return base.network(exp.sibling("baselines"), "relu_mlp")[0].eval()


def source_key(exp: Experiment) -> Any:
    """The transfer source's key in the baselines chapter's store."""
    from ..baselines import experiments as base

    return base.model_key(exp.sibling("baselines"), "relu_mlp")


def _evaluate(exp: Experiment, name: str, adapter_: Any, config: Any, key: YardstickKey) -> Any:
    from ... import protocol

    def compute() -> dict[str, Any]:
        x, y = protocol.protocol_images(config)
        exp.log(f"yardstick: {name} on {len(x)} images")
        source = transfer_source(exp).to(exp.device)
        return protocol.evaluate(adapter_(), x, y, config, source=source, progress=exp.progress).to_dict()

    return protocol.ProtocolResult.from_dict(exp.cached(f"yardstick-{name}", key, compute))


def yardstick(exp: Experiment) -> dict[str, Any]:
    """Step ``yardstick``: ABS and binary ABS (the zoo's ``abs`` and ``binary-abs``) through the
    book's protocol on its first test images: APGD-CE/DLR through the envelope gradient of a
    best-of-bank surrogate, Square, HopSkipJump, transfer from the ReLU MLP, noise, the paper's
    Latent Descent, and the trivial bound; ``{zoo name: ProtocolResult}``."""
    from . import adapter as abs_adapter

    prof = exp.profile
    config = yardstick_config(prof)
    source = source_key(exp)
    out = {}
    for name in abs_adapter.MODELS:
        key = YardstickKey(
            config,
            name,
            VAEKey.of(prof),
            (prof.n_samples, prof.abs_steps),
            abs_adapter.SURROGATE,
            f"latent descent: {prof.ld_coarse} coarse steps, {abs_adapter.LD_BISECT} bisections",
            source,
        )
        out[name] = _evaluate(
            exp, name, lambda name=name: abs_adapter.adapter(exp, name, abs_adapter.load(exp, name)), config, key
        )
    return out


def yardstick_baselines(exp: Experiment) -> dict[str, Any]:
    """Step ``yardstick_baselines``: the chapter's four baselines through the same protocol (its
    ``quick`` settings: 200 images), for the claims that compare ABS with them;
    ``{display name: ProtocolResult}``."""
    from . import adapter as abs_adapter

    prof = exp.profile
    config = yardstick_config(prof, abs_model_=False)
    source = source_key(exp)
    weights = {
        "CNN": CNNKey.of(prof, "cnn"),
        "Binary CNN": CNNKey.of(prof, "cnn"),
        "Nearest neighbour": prof.nn_train,
        "Madry et al. (ours)": MadryKey.of(prof),
    }
    out = {}
    for display, name in YARDSTICK_BASELINES.items():
        key = YardstickKey(config, name, weights[display], None, abs_adapter.baseline_surrogate(display), "", source)
        out[display] = _evaluate(
            exp,
            f"baseline-{name}",
            lambda display=display: abs_adapter.baseline_adapter(display, classifier(exp, display)),
            config,
            key,
        )
    return out
