"""What the yardstick (``robustlib.protocol``) may use against the RBFI chapter's networks.

Zoo entries (``MODELS``):

* ``rbfi``: the chapter's main RBFI network (run 0 of Table 1; at ``quick`` 784-64^-64v-10^,
  at ``paper`` 512^-512v-512^-10v), images (N, 1, 28, 28) in [0, 1] -> outputs (N, 10) in [0, 1];
* ``rbfi-relu``: the ReLU network the paper compares it with (run 0, same widths, AdaDelta and
  cross-entropy; smaller than the baselines chapter's ``relu-mlp``), logits (N, 10).

The RBFI network's forward pass is the same in both gradient modes; only the backward differs
(``model.py``). The adapter hands the protocol the **pseudogradient** as ``grad_model`` (the
suite's APGD-CE and APGD-DLR ascend it; success is judged on the network itself) and adds, as an
adaptive attacker would:

* ``apgd-ce-true``: APGD-CE through the **true** gradient (what the paper's attacks differentiate;
  one-hot through the max, so most pixels get a zero gradient);
* ``rbfi-pgd``: the paper's own attack, PGD with AdaDelta-tuned steps from a random start
  (``model.paper_pgd``, correct box), true gradient, on the training loss J, L-inf only, with the
  profile's PGD steps and restarts.
"""

from __future__ import annotations

import torch

from ... import protocol
from ...experiment import Experiment
from ...protocol import Adapter, AttackSpec
from . import model as rbfi
from .claims import RBFI_ATTACKED
from .experiments import main_model
from .profile import RbfiProfile

MODELS: tuple[str, ...] = ("rbfi", "rbfi-relu")
KIND = {"rbfi": "rbfi", "rbfi-relu": "relu"}  # zoo name -> the chapter's network kind
# What the adapter adds, in the yardstick results' keys (a change recomputes them).
ATTACKS = ("grad_model: pseudogradient, input only", "apgd-ce-true", "rbfi-pgd")

# The paper claims RBFI "above 90 %" under its attacks (true-gradient FGSM / I-FGSM), at the
# epsilon of Table 1, which its text does not give (0.3 assumed throughout the chapter).
CLAIMED: dict[str, list[dict]] = {
    "rbfi": [
        {
            "norm": "linf",
            "eps": 0.3,
            "accuracy": RBFI_ATTACKED,
            "source": "abstract and section 1 ('above 90 %'; ε = 0.3 assumed)",
        }
    ],
    "rbfi-relu": [],
}


def _check(name: str) -> str:
    if name not in MODELS:
        raise ValueError(f"unknown rbfi model {name!r}; valid: {', '.join(MODELS)}")
    return KIND[name]


def load(exp: Experiment, name: str) -> torch.nn.Module:
    """The trained network ``name`` in eval mode on ``exp.device`` (from the store; a load-only
    experiment raises ``MissingResult`` instead of training). ``ValueError`` for a wrong name."""
    model = main_model(exp, _check(name))
    if isinstance(model, rbfi.RBFINet):
        model.set_grad_mode("pseudo")
    return model.to(exp.device).eval()


class AttackView(torch.nn.Module):
    """The network with its gradient taken in ``mode`` ("pseudo" or "true") with respect to the
    input only: the parameters enter as detached tensors, so the backward pass skips dL/dw and
    dL/du (most of its cost in the first layer). Same forward pass, same parameters."""

    def __init__(self, net: rbfi.RBFINet, mode: str):
        super().__init__()
        if mode not in rbfi.GRAD_MODES:
            raise ValueError(f"unknown gradient mode {mode!r}; valid: {', '.join(rbfi.GRAD_MODES)}")
        self.net, self.mode = net, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = {k: v.detach() for k, v in self.net.named_parameters()}
        with rbfi.gradient_mode(self.net, self.mode):
            return torch.func.functional_call(self.net, params, (x,))


def _paper_pgd(model: torch.nn.Module, steps: int, restarts: int):
    grad_model = AttackView(model, "true")
    loss = rbfi.loss_per_image(rbfi.kind_of(model))

    def run(x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        return rbfi.paper_pgd(
            model, x, y, eps, steps=steps, restarts=restarts, loss=loss, grad_model=grad_model
        ).detach()

    return run


def _apgd_true(model: torch.nn.Module, norm: str, config: protocol.ProtocolConfig):
    """APGD-CE (the suite's, ``protocol.apgd``) through the true gradient instead of the
    pseudogradient, judged on the network."""
    return protocol.apgd(model, AttackView(model, "true"), norm, config)


def rbfi_adapter(name: str, net: rbfi.RBFINet, profile: RbfiProfile) -> Adapter:
    """The adapter of any RBFI network of the chapter (the zoo's ``rbfi`` and the u <= 10 networks
    of Fig. 5): the pseudogradient as ``grad_model``, APGD-CE through the true gradient and the
    paper's PGD (the profile's steps and restarts), both L-inf."""
    config = protocol.ProtocolConfig.for_profile(profile.name)
    specs = (
        AttackSpec("apgd-ce-true", "linf", _apgd_true(net, "linf", config)),
        AttackSpec("rbfi-pgd", "linf", _paper_pgd(net, profile.pgd_steps, profile.pgd_restarts)),
    )
    return Adapter(name, net, grad_model=AttackView(net, "pseudo"), attacks=specs)


def adapter(exp: Experiment, name: str, model: torch.nn.Module) -> Adapter:
    """``rbfi``: :func:`rbfi_adapter`. ``rbfi-relu``: the plain network (nothing masks its
    gradient)."""
    if _check(name) != "rbfi":
        return Adapter(name, model)
    return rbfi_adapter(name, model, exp.profile)
