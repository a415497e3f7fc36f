"""The baselines in the model zoo and what the yardstick may use against them.

``MODELS`` are the zoo names; ``load(exp, name)`` rebuilds a model from what the chapter stores
(the three networks' weights; nearest neighbour's training images), so a load-only experiment
never trains. ``adapter(exp, name, model)`` says which gradient the protocol's gradient attacks
take: the networks' own (they are differentiable and nothing in them masks a gradient), and for
nearest neighbour a soft nearest neighbour (:class:`model.SoftNearestNeighbour`, temperature
``NN_TEMPERATURE``), whose decisions agree with the real ones on clean images.

``transfer_source(profile, device)`` is the standard network every chapter's yardstick transfers
from: the ReLU MLP of this chapter, loaded from the store (trained through this chapter's own step
first if it is missing at ``smoke``, where nothing is committed; only loaded at ``quick``/``paper``);
``source_key(profile)`` is its store key, for the yardstick results' keys.
"""

from __future__ import annotations

import torch

from ... import experiment, protocol
from ...experiment import Experiment
from . import experiments
from .model import SoftNearestNeighbour

MODELS = ("relu-mlp", "sigmoid-mlp", "lenet", "nearest-neighbour")
KIND = dict(zip(MODELS, experiments.MODELS))  # zoo name -> the chapter's name ("relu-mlp" -> "relu_mlp")
NN_TEMPERATURE = 0.05  # soft nearest neighbour: agrees with the hard decisions, attacks as well or better
SOURCE = "relu-mlp"  # the transfer source of every chapter's yardstick
SOURCE_OF_SOURCE = "lenet"  # what the ReLU MLP itself is attacked by transfer from (not itself)

CLAIMED: dict[str, list[dict]] = {name: [] for name in MODELS}  # no paper of their own: nothing claimed


def _check(exp: Experiment, name: str) -> str:
    if name not in MODELS:
        raise ValueError(f"unknown baselines model {name!r}; valid: {', '.join(MODELS)}")
    if exp.paper != "baselines":
        raise ValueError(f"load baselines models from a baselines experiment, got one of {exp.paper!r}")
    return KIND[name]


def load(exp: Experiment, name: str) -> torch.nn.Module:
    """The model ``name`` in eval mode on ``exp.device``: images (N, 1, 28, 28) in [0, 1] -> scores
    (N, 10). The networks come from the store (``MissingResult`` in a load-only experiment without
    them); nearest neighbour is built from the first ``nn_train`` training images."""
    kind = _check(exp, name)
    if kind == "nearest_neighbour":
        return experiments.nearest_neighbour(exp).eval()
    return experiments.network(exp, kind)[0].eval()


def adapter(exp: Experiment, name: str, model: torch.nn.Module) -> protocol.Adapter:
    """What the protocol may use against ``model``: for nearest neighbour the soft nearest
    neighbour as ``grad_model``; the networks need nothing beyond themselves."""
    kind = _check(exp, name)
    grad_model = SoftNearestNeighbour(model, NN_TEMPERATURE).eval() if kind == "nearest_neighbour" else None
    return protocol.Adapter(name, model, grad_model=grad_model)


def transfer_source(profile_name: str, device: str = "cpu", *, seed: int = 0) -> torch.nn.Module:
    """The yardstick's transfer source: this chapter's ReLU MLP at ``profile_name``, in eval mode
    on ``device``. Loaded from the store; at ``smoke`` trained first through this chapter's own
    ``relu_mlp`` step when missing (nothing is committed at smoke); at ``quick``/``paper`` only
    loaded (``MissingResult`` names the artifact and how to get it)."""
    exp = experiment.start("baselines", profile_name, seed, device, load_only=True)
    try:
        return load(exp, SOURCE)
    except experiment.MissingResult:
        if profile_name != "smoke":
            raise
    exp = experiment.start("baselines", profile_name, seed, device)
    (step,) = [s for s in experiments.steps(exp.profile) if s.name == KIND[SOURCE]]
    experiment.run_step(exp, step)
    return load(exp, SOURCE)


def source_key(profile_name: str, *, seed: int = 0) -> experiments.ModelKey:
    """The transfer source's store key at ``profile_name`` (part of a yardstick result's key; cheap,
    nothing is loaded or trained)."""
    exp = experiment.start("baselines", profile_name, seed, "cpu", load_only=True)
    return experiments.model_key(exp, KIND[SOURCE])
