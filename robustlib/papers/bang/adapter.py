"""What the yardstick (``robustlib.protocol``) may use against the BANG chapter's models.

``MODELS`` are the zoo names this chapter provides: the Table 1 LeNets R0 (regular training) and
B1 (BANG, beta = 1.00, eps = 0.815). ``load(exp, name)`` returns the trained LeNet (images
(N, 1, 28, 28) in [0, 1] -> logits (N, 10)) from what the chapter stores, never training in a
load-only experiment; ``adapter(exp, name, model)`` says what an adaptive attacker uses against it:

* ``grad_model``: the **logit margin in float64** (``MarginTempered``). BANG drives the logit
  margins of confident images past ~104, where exp(-margin) underflows in float32: the
  cross-entropy's gradient is then exactly zero (the paper's "blank gradients"), and a float64
  gradient of that size still underflows when it is cast back to the float32 image. The surrogate
  runs the LeNet in float64 and divides each image's logits by max(1, margin / 8) (a per-image
  temperature, held constant under differentiation): the same argmax, a softmax that never
  saturates, and a cross-entropy gradient that points where the margin loss's does.
* ``bang-fgs`` and ``bang-hc1`` (L-inf, minimal): the paper's own attacks, the FGS and hot/cold
  line searches in grey levels (``evaluation.fgs`` / ``evaluation.hc1``), on the real float32
  model exactly as Table 1 runs them.
"""

from __future__ import annotations

import copy

import torch

from ...experiment import Experiment
from ...protocol import Adapter, AttackSpec
from ..baselines.model import LeNet
from . import claims, evaluation

MODELS: tuple[str, ...] = ("bang-r0", "bang-b1")
ROWS: dict[str, str] = {"bang-r0": "R0", "bang-b1": "B1"}  # zoo name -> Table 1 row

# The paper's robustness evidence is the FGS line search with no bound on the perturbation: a
# failure there is a failure at every epsilon, so B1's Table 1 numbers imply an accuracy of at
# least acc x (1 - FGS rate) under FGS at any L-inf epsilon. R0 is the paper's regular baseline:
# no robustness is claimed for it.
_B1 = claims.PAPER_TABLE1["B1"]
_B1_UNDER_FGS = round(_B1["acc"] / 100 * (1 - _B1["fgs_rate"] / 100), 4)
CLAIMED: dict[str, list[dict]] = {
    "bang-r0": [],
    "bang-b1": [
        {
            "norm": "linf",
            "eps": eps,
            "accuracy": _B1_UNDER_FGS,
            "source": f"Table 1 (FGS, no epsilon bound: {_B1['acc']:.2f} % x (1 - {_B1['fgs_rate']:.2f} %))",
        }
        for eps in (0.1, 0.3)
    ],
}

MARGIN_TARGET = 8.0  # logit margin the surrogate's temperature scales each image down to (if larger)


def row(name: str) -> str:
    """The Table 1 row of a zoo name ("bang-b1" -> "B1"); ``ValueError`` names ``MODELS``."""
    if name not in ROWS:
        raise ValueError(f"unknown BANG model {name!r}; valid: {', '.join(MODELS)}")
    return ROWS[name]


def load(exp: Experiment, name: str) -> torch.nn.Module:
    """The trained LeNet ``name`` in eval mode on ``exp.device`` (trained by the chapter's
    ``table1_models`` step; with ``exp.load_only`` a missing one is a ``MissingResult``)."""
    from . import experiments

    r = row(name)
    if r not in exp.profile.table_rows:
        raise ValueError(f"{name!r} (row {r}) is not trained at profile {exp.profile.name!r}")
    return experiments.lenet_from(experiments.table1_models(exp), r).to(exp.device).eval()


class MarginTempered(torch.nn.Module):
    """The LeNet in float64, each image's logits z (N, 10) divided by t = max(1, m / target), m the
    gap between its two largest logits (t carries no gradient). Same decisions as the model; the
    softmax of z / t keeps every class above exp(-target) relative to the top one, so neither the
    cross-entropy's gradient nor its cast to the float32 input underflows."""

    def __init__(self, model: torch.nn.Module, target: float = MARGIN_TARGET):
        super().__init__()
        if not target > 0:
            raise ValueError(f"target margin must be > 0, got {target}")
        self.net = copy.deepcopy(model).to(torch.float64).eval()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x.to(torch.float64))  # (N, 10) float64
        top2 = z.detach().topk(2, dim=1).values  # (N, 2)
        t = ((top2[:, 0] - top2[:, 1]) / self.target).clamp_min(1.0)  # (N,)
        return z / t[:, None]


def _line_search(method: str, model: torch.nn.Module, max_steps: int):
    search = evaluation.fgs if method == "fgs" else evaluation.hc1

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return search(model, x, y, max_steps=max_steps)

    return run


def adapter(exp: Experiment, name: str, model: torch.nn.Module) -> Adapter:
    """The protocol's view of BANG model ``name``: the float64 logit-margin surrogate for the
    gradient attacks, the paper's FGS and HC1 line searches as the defence-specific attacks."""
    row(name)
    if not isinstance(model, LeNet):
        raise TypeError(f"adapter({name!r}) needs the LeNet from load(), got {type(model).__name__}")
    steps = exp.profile.max_steps
    own = tuple(AttackSpec(f"bang-{m}", "linf", _line_search(m, model, steps), eps_based=False) for m in ("fgs", "hc1"))
    return Adapter(name, model, grad_model=MarginTempered(model), attacks=own)
