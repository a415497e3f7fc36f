"""ABS and binary ABS for the yardstick (``robustlib.protocol``) and the model zoo.

``load(exp, name)`` rebuilds a model from what the chapter stores (the ten VAEs); ``adapter(exp,
name, model)`` says what an adaptive attacker may use against it:

* ``grad_model``: the class scores with the *envelope-theorem* gradient through the inference,
  d score_c / dx = -(2/784) (x - G_c(z*_c)), the inner optimum z* held fixed (``model.ABS``),
  computed by a cheaper inference: the best of the same prior bank refined by
  ``SURROGATE_STEPS`` Adam steps instead of the profile's (so APGD's hundreds of gradient calls
  cost a fraction of a real inference each). Binary ABS: binarisation straight-through (BPDA).
  Every adversarial is still judged on the real model by the protocol.
* ``attacks``: the paper's own attack on the model's structure, Latent Descent (registered as
  ``latent_descent``): walk towards the best other class's reconstruction and bisect (binary
  ABS: towards the smallest change that flips the binarisation to it). It runs once per norm: its
  adversarials measured in L2 (``latent-descent``) and in L-inf (``latent-descent-linf``).
  It queries the model's decisions and reconstructions, never a gradient: the protocol counts it
  with the decision-based attacks, so the masking flag fires if it beats the gradient attacks.
* ``binarises``: binary ABS thresholds its input at 0.5 (the 0.5 L-inf trivial bound).
"""

from __future__ import annotations

import torch

from ... import protocol
from ...experiment import Experiment
from . import claims
from . import experiments as abs_experiments
from . import model as abs_model

MODELS: tuple[str, ...] = ("abs", "binary-abs")
_DISPLAY = {"abs": "ABS", "binary-abs": "Binary ABS"}  # the chapter's names
# Adam steps of the gradient surrogate's inference: 0, the best bank sample alone. Measured at
# quick (10 images, APGD 50 steps, L2 1.5 and L-inf 0.15 / 0.3): as many images fooled as through
# the full inference's envelope gradient, at a tenth of the cost; its decisions agree with the
# model's on 96 % (ABS) and 97.5 % (binary ABS) of the first 200 test images.
SURROGATE_STEPS = 0
SURROGATE = f"envelope gradient of the best-of-bank inference ({SURROGATE_STEPS} Adam steps); binary: straight-through"
NN_TEMPERATURE = 0.05  # the soft nearest neighbour's temperature (L2 distances in [0, 1] pixel units)
LD_BISECT = 10  # Latent Descent's bisection steps in the yardstick (the chapter's own run: the profile's)


def _check(name: str) -> str:
    if name not in MODELS:
        raise ValueError(f"unknown ABS model {name!r}; valid: {', '.join(MODELS)}")
    return name


def load(exp: Experiment, name: str) -> torch.nn.Module:
    """ABS (``"abs"``) or binary ABS (``"binary-abs"``) on the chapter's stored VAEs, in eval mode on
    ``exp.device``: images (N, 1, 28, 28) in [0, 1] -> scores (N, 10), the negative per-pixel
    ELBO losses (binary ABS: of the binarised image, weighted by gamma)."""
    _check(name)
    return abs_experiments.abs_classifier(exp, binary=name == "binary-abs").eval()


def surrogate(model: abs_model.ABS, steps: int = SURROGATE_STEPS) -> abs_model.ABS:
    """The gradient surrogate: the same decoders, bank and settings with ``steps`` Adam steps."""
    return model.variant(steps=min(steps, model.config.steps)).eval()


def latent_descent_specs(model: abs_model.ABS, *, n_coarse: int, n_bisect: int) -> tuple[protocol.AttackSpec, ...]:
    """Latent Descent as the protocol's minimal attack, measured in L2 and in L-inf."""

    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return abs_model.latent_descent_attack(model, x, y, n_coarse=n_coarse, n_bisect=n_bisect)

    return (
        protocol.AttackSpec("latent-descent", "l2", run, eps_based=False, family="decision"),
        protocol.AttackSpec("latent-descent-linf", "linf", run, eps_based=False, family="decision"),
    )


def adapter(exp: Experiment, name: str, model: torch.nn.Module) -> protocol.Adapter:
    """What the yardstick may use against ``model`` (see the module docstring)."""
    _check(name)
    if not isinstance(model, abs_model.ABS):
        raise TypeError(f"the ABS adapter needs an abs_model.ABS, got {type(model).__name__}")
    prof = exp.profile
    return protocol.Adapter(
        name,
        model,
        grad_model=surrogate(model),
        binarises=model.config.binary,
        attacks=latent_descent_specs(model, n_coarse=prof.ld_coarse, n_bisect=LD_BISECT),
    )


# --- the chapter's baselines through the same protocol (not zoo entries: the zoo's baselines are
# the baselines chapter's) --------------------------------------------------------------------------


class SoftNearestNeighbour(torch.nn.Module):
    """A differentiable stand-in for ``NearestNeighbour``: class score = -T log sum_j exp(-d_j / T)
    over the class's training images (a soft minimum of the L2 distances; T -> 0: the hard one)."""

    def __init__(self, nn_model: torch.nn.Module, temperature: float = NN_TEMPERATURE):
        super().__init__()
        self.nn, self.temperature = nn_model, temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nn_model = self.nn
        q = x.flatten(1).to(nn_model.train_flat.dtype)  # (N, D)
        d2 = (q * q).sum(1, keepdim=True) + nn_model.train_sq[None] - 2.0 * q @ nn_model.train_flat.T  # (N, M)
        d = d2.clamp_min(1e-12).sqrt()
        b = nn_model.bounds
        scores = [torch.logsumexp(-d[:, b[c] : b[c + 1]] / self.temperature, 1) for c in range(len(b) - 1)]
        return self.temperature * torch.stack(scores, 1)  # (N, classes)


def baseline_surrogate(display: str) -> str:
    """What the gradient attacks use on the chapter's baseline ``display`` (part of its key)."""
    if display == "Nearest neighbour":
        return f"soft nearest neighbour, T = {NN_TEMPERATURE}"
    return "straight-through binarisation" if display == "Binary CNN" else "own"


def baseline_adapter(display: str, model: torch.nn.Module) -> protocol.Adapter:
    """The protocol's view of one of the chapter's baselines (CNN, binary CNN, nearest neighbour,
    our Madry-style CNN): the CNNs' own gradients (binary CNN: straight-through, and the 0.5 L-inf
    trivial bound), a soft nearest neighbour's for nearest neighbour."""
    grad_model = SoftNearestNeighbour(model).eval() if display == "Nearest neighbour" else None
    name = display.lower().replace(" ", "-").replace(".", "").replace("(", "").replace(")", "")
    return protocol.Adapter(name, model, grad_model=grad_model, binarises=display == "Binary CNN")


def _claimed() -> dict[str, list[dict]]:
    """The paper's operating points: all attacks combined, from the authors' released curves."""
    out: dict[str, list[dict]] = {}
    for name in MODELS:
        paper = claims.PAPER[_DISPLAY[name]]
        out[name] = [
            {"norm": norm, "eps": claims.THRESHOLDS[norm], "accuracy": paper[norm][1], "source": claims.RELEASED_ALL}
            for norm in ("linf", "l2")
        ]
    return out


CLAIMED: dict[str, list[dict]] = _claimed()
