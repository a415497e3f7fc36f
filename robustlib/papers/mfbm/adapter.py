"""What the yardstick (``robustlib.protocol``) may use against the MFBM chapter's networks.

Three zoo entries, all trained by this chapter on the same images (``experiments.network``):

* ``mfbm``: the MFBM network of Table 1 (the feature machine at the last pre-training checkpoint,
  unrolled ``feature_iters`` times as a frozen conv layer, the CNN classifier on top);
* ``mfbm-rbm``: the control with an RBM layer (J_h = 0, one step) under the same classifier;
* ``mfbm-lenet``: the control without pre-training, the book's Caffe LeNet.

What an adaptive attacker gets (``adapter``):

* ``grad_model``: for ``mfbm`` the network itself, i.e. gradients through the **full** unrolled
  mean-field iteration (the suite's APGD-CE / APGD-DLR use them);
* ``apgd-shallow-linf`` / ``apgd-shallow-l2``: APGD-CE with gradients through a **shallow** unrolling of the same weights
  (``surrogate_iters`` steps instead of ``feature_iters``), every adversarial checked on the real
  network: if 20 recurrent steps made the gradient vanish or shatter, this finds what the full
  unrolling hides (L-inf and L2; ``mfbm`` only, the RBM layer has a single step);
* ``mfbm_iterative_l2``: the paper's own white-box attack (L2 steps along the normalised gradient,
  first misclassified iterate; ``model.iterative_l2``) at the chapter's step settings, on all three
  networks, so the chapter's number stands labelled beside the yardstick's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ... import protocol
from ...experiment import Experiment
from . import claims, experiments
from . import model as mfbm

MODELS: tuple[str, ...] = ("mfbm", "mfbm-rbm", "mfbm-lenet")
PAPER_ATTACK = experiments.ATTACK  # "mfbm_iterative_l2": the paper's gradient attack
SHALLOW_ATTACK = "apgd-shallow"  # + "-linf" / "-l2" (an adapter's attack names are unique over norms)

# The paper's claimed operating points (Table 1: share of the 1,000 images whose adversarial L2
# distance exceeds 1.5). It reports none for its controls ("not robust", no number).
CLAIMED: dict[str, list[dict]] = {
    "mfbm": [
        {
            "norm": "l2",
            "eps": claims.ROBUST_EPS,
            "accuracy": claims.PAPER_TABLE1["gradient"][1],
            "source": "Table 1, gradient iterative (white box)",
        },
        {
            "norm": "l2",
            "eps": claims.ROBUST_EPS,
            "accuracy": claims.PAPER_TABLE1["compound"][1],
            "source": "Table 1, compound of four attacks",
        },
    ],
    "mfbm-rbm": [],
    "mfbm-lenet": [],
}

_LABEL = {"mfbm": None, "mfbm-rbm": "rbm", "mfbm-lenet": "lenet"}  # zoo name -> chapter label


def _check(name: str) -> str:
    if name not in MODELS:
        raise ValueError(f"unknown MFBM model {name!r}; valid: {', '.join(MODELS)}")
    return name


def label(exp: Experiment, name: str) -> str:
    """The chapter's label of a zoo entry ("mfbm-300" for ``mfbm`` at quick, "rbm", "lenet")."""
    return _LABEL[_check(name)] or experiments.final_label(exp.profile)


def load(exp: Experiment, name: str) -> torch.nn.Module:
    """The trained network ``name`` in eval mode on ``exp.device``: images (N, 1, 28, 28) in [0, 1]
    -> class scores (N, 10). Loaded from the chapter's store (with ``exp.load_only`` a missing
    result is a ``MissingResult``, nothing is trained)."""
    model, _ = experiments.network(exp, label(exp, name))
    return model.to(exp.device).eval()


def _paper_attack(model: torch.nn.Module, exp: Experiment) -> Callable:
    """The paper's iterative L2 gradient attack at the chapter's settings (a minimal attack)."""
    p = exp.profile

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        res = mfbm.iterative_l2(
            model,
            x.cpu(),
            y.cpu(),
            step=p.grad_step,
            max_steps=p.grad_max_steps,
            refine=p.grad_refine,
            device=x.device,
            name=PAPER_ATTACK,
        )
        return res.adversarials.to(x.device)

    return run


def adapter(
    exp: Experiment, name: str, model: torch.nn.Module, *, config: protocol.ProtocolConfig | None = None
) -> protocol.Adapter:
    """The yardstick's view of ``model`` (from ``load(exp, name)``): see the module docstring.
    ``config``: the protocol settings the shallow APGD takes its budget from (default: the
    yardstick step's, ``experiments.yardstick_config``)."""
    _check(name)
    config = config or experiments.yardstick_config(exp.profile, name)
    specs = [protocol.AttackSpec(PAPER_ATTACK, "l2", _paper_attack(model, exp), eps_based=False)]
    grad_model = None
    if name == "mfbm":
        grad_model = model  # the full unrolling (feature_iters steps), stated explicitly
        shallow = model.with_iters(exp.profile.surrogate_iters).eval()
        specs += [
            protocol.AttackSpec(f"{SHALLOW_ATTACK}-{norm}", norm, protocol.apgd(model, shallow, norm, config))
            for norm in config.norms
        ]
    return protocol.Adapter(name, model, grad_model=grad_model, attacks=tuple(specs))
