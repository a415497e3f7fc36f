"""What the yardstick (``robustlib.protocol``) may use against the DAM chapter's models.

``MODELS`` are the zoo names this chapter provides; ``load(exp, name)`` returns the trained DAM
(images (N, 1, 28, 28) in [0, 1] -> outputs Y = tanh(s), (N, 10), float64) from what the chapter
stores, never training in a load-only experiment; ``adapter(exp, name, model)`` says what an
adaptive attacker uses against it:

* ``grad_model``: the **pre-tanh scores** s in float64 (``model.PreTanh``). The paper's outputs
  saturate: tanh(s) rounds to exactly +-1 once |s| > 19 and the m = 30 objective's (t - Y)^59
  underflows, so gradients through Y vanish for confident images (large n especially). The scores
  have the same argmax and never saturate: APGD's cross-entropy and DLR losses run on them.
* ``dam-fgsm`` (L-inf): the paper's own attack (section 6, Fig. 8), one signed-gradient step of
  the training objective C_y in float64 (``model.fgsm``, registered as ``dam_fgsm``).
* ``dam-boundary`` (L2, minimal): the paper's own decision-boundary images (section 4, Figs. 4 and
  5): normalised gradient descent on the second choice's objective (eq. 3.2) until one step past
  the boundary, i.e. the images of the transfer table.
"""

from __future__ import annotations

import torch

from ...experiment import Experiment
from ...protocol import Adapter, AttackSpec
from . import model as dam

MODELS: tuple[str, ...] = ("dam-n2", "dam-n30")

# The paper reports no accuracy at a stated epsilon (Fig. 8's FGSM curves are an image not in the
# text), so no operating point can be placed beside our curves; its one number under attack is
# claims.PAPER_TRANSFER_ERROR (n = 30 on the small-n boundary sets, whose size it does not state).
CLAIMED: dict[str, list[dict]] = {name: [] for name in MODELS}


def power(name: str) -> int:
    """The interaction power n of a zoo name ("dam-n30" -> 30); ``ValueError`` names ``MODELS``."""
    if name not in MODELS:
        raise ValueError(f"unknown DAM model {name!r}; valid: {', '.join(MODELS)}")
    return int(name.removeprefix("dam-n"))


def load(exp: Experiment, name: str) -> torch.nn.Module:
    """The trained DAM ``name`` in eval mode on ``exp.device`` (trained by the chapter's ``models``
    step; with ``exp.load_only`` a missing one is a ``MissingResult``, never a training run)."""
    from . import experiments

    n = power(name)
    model, _ = experiments.trained_model(exp, n)
    return model.to(exp.device).eval()


def _fgsm(model: dam.DAM):
    def run(x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        return dam.fgsm(model, x, y, eps).to(x.dtype)

    return run


def _boundary(model: dam.DAM, step: float, max_steps: int):
    grad_fn = dam.dam_objective_grad(model)

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        v = dam.to_pm1(x)  # (B, 784) float64 in [-1, 1]
        res = dam.boundary_images(grad_fn, model.scores_pm1, v, step=step, max_steps=max_steps, batch_size=len(x))
        return dam.from_pm1(res["images"]).clamp(0, 1).to(x.device, x.dtype)

    return run


def adapter(exp: Experiment, name: str, model: torch.nn.Module) -> Adapter:
    """The protocol's view of DAM ``name``: pre-tanh float64 scores for gradients, the paper's FGSM
    (L-inf) and second-choice descent (L2) as the defence-specific attacks."""
    power(name)
    if not isinstance(model, dam.DAM):
        raise TypeError(f"adapter({name!r}) needs the DAM from load(), got {type(model).__name__}")
    p = exp.profile
    own = (
        AttackSpec("dam-fgsm", "linf", _fgsm(model)),
        AttackSpec("dam-boundary", "l2", _boundary(model, p.boundary_step, p.boundary_max_steps), eps_based=False),
    )
    return Adapter(name, model, grad_model=dam.PreTanh(model).eval(), attacks=own)
