"""The baselines chapter's computation: train the three networks, measure clean accuracy, attack
every model with the L∞ suite and the L2 suite.

``steps(profile)`` lists the steps for ``python -m robustlib compute baselines``; the chapter calls
the same functions. A result is keyed by the attacked model's own key (``ModelKey`` for a trained
network, ``NearestKey`` for nearest neighbour) and the attack's settings (``AttackKey``), so a
changed setting of one model or attack never invalidates another's result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

import torch

from ... import attacks, data, train
from ...experiment import Experiment, Step
from .model import ModelKey, NearestNeighbour, trained
from .profile import BaselinesProfile

NETWORKS = ("relu_mlp", "sigmoid_mlp", "lenet")  # trained with their recipes (model.py)
MODELS = (*NETWORKS, "nearest_neighbour")
N_SHOW = 8  # adversarial images kept per (model, attack) for display; distances are kept for all
GRADIENT_LINF = ("FGSM", "I-FGSM", "PGD")  # "all L∞ attacks": the minimum over these (not noise)

PerAttack = dict[str, attacks.DistanceResult]  # attack label -> per-image minimal distances


# --- data and models -----------------------------------------------------------------------------


def training_images(prof: BaselinesProfile) -> tuple[torch.Tensor, torch.Tensor]:
    return data.first(*data.mnist("train"), prof.n_train)


def clean_images(prof: BaselinesProfile) -> tuple[torch.Tensor, torch.Tensor]:
    return data.first(*data.mnist("test"), prof.n_clean)


def attacked_images(prof: BaselinesProfile) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n_attack`` test images: every attack runs on these."""
    return data.first(*data.mnist("test"), prof.n_attack)


def epochs(prof: BaselinesProfile, kind: str) -> int:
    return prof.lenet_epochs if kind == "lenet" else prof.mlp_epochs


@dataclass(frozen=True)
class NearestKey:
    """What identifies the nearest-neighbour classifier: how many training images it searches."""

    kind: str
    nn_train: int | None


def network(exp: Experiment, kind: str) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """One of the three networks, trained with its recipe or loaded; ``(model, history)``."""
    return trained(exp, kind, epochs(exp.profile, kind), *training_images(exp.profile))


def nearest_neighbour(exp: Experiment) -> NearestNeighbour:
    return NearestNeighbour(*data.first(*data.mnist("train"), exp.profile.nn_train)).to(exp.device)


def models(exp: Experiment) -> dict[str, torch.nn.Module]:
    """The four models in the chapter's order (the networks trained or loaded)."""
    return {**{kind: network(exp, kind)[0] for kind in NETWORKS}, "nearest_neighbour": nearest_neighbour(exp)}


def model_key(exp: Experiment, name: str) -> ModelKey | NearestKey:
    if name == "nearest_neighbour":
        return NearestKey(name, exp.profile.nn_train)
    return ModelKey.of(name, epochs(exp.profile, name), len(training_images(exp.profile)[0]))


# --- the attack suites ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    """One attack of a suite: the label the chapter shows, the registry name, its options and the
    epsilon grid it runs on (``None`` for a minimal attack, which finds each distance itself)."""

    label: str
    name: str
    options: dict[str, int]
    grid: tuple[float, ...] | None = None

    @property
    def artifact(self) -> str:
        """The label as an artifact name: "I-FGSM" -> "ifgsm", "L2 PGD" -> "l2_pgd"."""
        return self.label.lower().replace(" ", "_").replace("-", "")


def linf_attacks(prof: BaselinesProfile) -> list[Attack]:
    grid = prof.linf_grid
    return [
        Attack("FGSM", "fgsm", {}, grid),
        Attack("I-FGSM", "ifgsm", {"steps": prof.ifgsm_steps}, grid),
        Attack("PGD", "pgd", {"steps": prof.pgd_steps, "restarts": prof.pgd_restarts}, grid),
        Attack("uniform noise", "uniform_noise", {"repeats": prof.noise_repeats}, grid),
    ]


def l2_attacks(prof: BaselinesProfile, model: str) -> list[Attack]:
    suite = [
        Attack("L2 PGD", "l2pgd", {"steps": prof.pgd_steps, "restarts": prof.pgd_restarts}, prof.l2_grid),
        Attack("Boundary", "boundary", {"steps": prof.boundary_steps}),
        Attack("Gaussian noise", "gaussian_noise", {"draws": prof.gaussian_draws}),
    ]
    # HopSkipJump needs ~10^4 queries per image: too many for nearest neighbour's 60,000-image search
    if prof.hsja_steps and model != "nearest_neighbour":
        suite.append(Attack("HopSkipJump", "hsja", {"steps": prof.hsja_steps}))
    return suite


@dataclass(frozen=True)
class AttackKey:
    """What identifies one attack's result on one model (the store hashes ``asdict``)."""

    model: ModelKey | NearestKey
    attack: str
    kwargs: dict[str, int]
    epsilons: tuple[float, ...] | None
    n_attack: int
    n_show: int = N_SHOW


def attack(exp: Experiment, name: str, model: torch.nn.Module, spec: Attack) -> attacks.DistanceResult:
    """Minimal distances of one attack on one model, computed once and stored."""
    x, y = attacked_images(exp.profile)
    key = AttackKey(model_key(exp, name), spec.name, spec.options, spec.grid, len(x))

    def compute() -> dict:
        exp.log(f"{name}: {spec.label}")
        t0 = time.perf_counter()
        found = attacks.min_distance(
            model, x, y, attack=spec.name, epsilons=spec.grid, device=exp.device, seed=exp.seed, **spec.options
        )
        result = found.to_dict()
        result["adversarials"] = result["adversarials"][:N_SHOW]
        result["seconds"] = time.perf_counter() - t0
        return result

    return attacks.DistanceResult.from_dict(exp.cached(f"{name}-{spec.artifact}", key, compute))


def smallest(per_attack: PerAttack, labels: tuple[str, ...] | None = None) -> attacks.DistanceResult:
    """Per image, the smallest adversarial over the attacks ``labels`` (default: all)."""
    return attacks.compound(*(per_attack[k] for k in (labels or tuple(per_attack))))


# --- the steps -----------------------------------------------------------------------------------


def train_network(exp: Experiment, kind: str) -> list[dict[str, float]]:
    """Step ``relu_mlp`` / ``sigmoid_mlp`` / ``lenet``: train (or load) one network; its history."""
    return network(exp, kind)[1]


def clean(exp: Experiment) -> dict[str, float]:
    """Step ``clean``: each model's accuracy on the first ``n_clean`` test images (not stored: it
    takes seconds)."""
    x, y = clean_images(exp.profile)
    return {name: train.accuracy(m, x, y, device=exp.device) for name, m in models(exp).items()}


def linf(exp: Experiment) -> dict[str, PerAttack]:
    """Step ``linf``: every L∞ attack on every model, ``{model: {attack label: distances}}``."""
    suite = linf_attacks(exp.profile)
    return {name: {a.label: attack(exp, name, m, a) for a in suite} for name, m in models(exp).items()}


def l2(exp: Experiment) -> dict[str, PerAttack]:
    """Step ``l2``: every L2 attack on every model, ``{model: {attack label: distances}}``."""
    return {
        name: {a.label: attack(exp, name, m, a) for a in l2_attacks(exp.profile, name)}
        for name, m in models(exp).items()
    }


def steps(prof: BaselinesProfile) -> list[Step]:
    trainings = [Step(kind, partial(train_network, kind=kind), gpu=True) for kind in NETWORKS]
    return [
        *trainings,
        Step("clean", clean, after=NETWORKS),
        Step("linf", linf, after=NETWORKS, gpu=True),
        Step("l2", l2, after=NETWORKS, gpu=True),
    ]
