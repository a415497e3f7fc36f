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

from ... import attacks, data, protocol, train
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


def l2_attacks(prof: BaselinesProfile) -> list[Attack]:
    """The chapter's own L2 attacks. The decision-based evidence is the yardstick's HopSkipJump
    (started from a real adversarial): foolbox's Boundary attack, which this suite ran before, did
    no better than Gaussian noise within the quick budget."""
    return [
        Attack("L2 PGD", "l2pgd", {"steps": prof.pgd_steps, "restarts": prof.pgd_restarts}, prof.l2_grid),
        Attack("Gaussian noise", "gaussian_noise", {"draws": prof.gaussian_draws}),
    ]


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


@dataclass(frozen=True)
class CleanKey:
    """What identifies the clean accuracies: the four models and the number of test images."""

    models: tuple[ModelKey | NearestKey, ...]
    n_clean: int


def clean(exp: Experiment) -> dict[str, float]:
    """Step ``clean``: each model's accuracy on the first ``n_clean`` test images, stored (the zoo's
    tests check that a loaded model reproduces it)."""
    x, y = clean_images(exp.profile)
    key = CleanKey(tuple(model_key(exp, name) for name in MODELS), len(x))

    def compute() -> dict[str, float]:
        return {name: train.accuracy(m, x, y, device=exp.device) for name, m in models(exp).items()}

    return dict(exp.cached("clean", key, compute))


def linf(exp: Experiment) -> dict[str, PerAttack]:
    """Step ``linf``: every L∞ attack on every model, ``{model: {attack label: distances}}``."""
    suite = linf_attacks(exp.profile)
    return {name: {a.label: attack(exp, name, m, a) for a in suite} for name, m in models(exp).items()}


def l2(exp: Experiment) -> dict[str, PerAttack]:
    """Step ``l2``: every L2 attack on every model, ``{model: {attack label: distances}}``."""
    suite = l2_attacks(exp.profile)
    return {name: {a.label: attack(exp, name, m, a) for a in suite} for name, m in models(exp).items()}


# --- the yardstick -------------------------------------------------------------------------------


@dataclass(frozen=True)
class YardstickKey:
    """What identifies one model's protocol result: the protocol's settings, the model, the
    gradient the attacks may use (``adapter``) and the transfer source's key."""

    config: protocol.ProtocolConfig
    model: ModelKey | NearestKey
    adapter: str
    source: ModelKey


def yardstick_config(prof: BaselinesProfile) -> protocol.ProtocolConfig:
    return protocol.ProtocolConfig.for_profile(prof.name)


def yardstick_one(exp: Experiment, name: str) -> protocol.ProtocolResult:
    """The protocol on the zoo model ``name`` (``adapter.MODELS``), computed once and stored. The
    ReLU MLP is every chapter's transfer source; it is itself attacked by transfer from LeNet."""
    from . import adapter

    config, kind = yardstick_config(exp.profile), adapter.KIND[name]
    source = adapter.SOURCE_OF_SOURCE if name == adapter.SOURCE else adapter.SOURCE
    surrogate = f"soft nearest neighbour, T = {adapter.NN_TEMPERATURE}" if kind == "nearest_neighbour" else "own"
    key = YardstickKey(config, model_key(exp, kind), surrogate, model_key(exp, adapter.KIND[source]))

    def compute() -> dict:
        exp.log(f"yardstick: {name}")
        model = adapter.load(exp, name)
        x, y = protocol.protocol_images(config)
        found = protocol.evaluate(
            adapter.adapter(exp, name, model), x, y, config, source=adapter.load(exp, source), progress=exp.progress
        )
        return found.to_dict()

    return protocol.ProtocolResult.from_dict(exp.cached(f"yardstick-{name}", key, compute))


def yardstick(exp: Experiment) -> dict[str, protocol.ProtocolResult]:
    """Step ``yardstick``: the protocol (``robustlib.protocol``) on every zoo model of the chapter,
    ``{zoo name: ProtocolResult}``."""
    from .adapter import MODELS as ZOO

    return {name: yardstick_one(exp, name) for name in ZOO}


def steps(prof: BaselinesProfile) -> list[Step]:
    trainings = [Step(kind, partial(train_network, kind=kind), gpu=True) for kind in NETWORKS]
    return [
        *trainings,
        Step("clean", clean, after=NETWORKS),
        Step("linf", linf, after=NETWORKS, gpu=True),
        Step("l2", l2, after=NETWORKS, gpu=True),
        Step("yardstick", yardstick, after=NETWORKS, gpu=True),
    ]
