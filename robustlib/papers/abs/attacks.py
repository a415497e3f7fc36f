"""The ABS paper's own attacks, in the one registry (``robustlib.attacks``).

* ``latent_descent`` (L2, minimal): the paper's attack on the structure of ABS (``model.latent_descent``):
  walk from x towards the best other class's reconstruction, then bisect.
* ``boundary_from`` (L2, minimal) and ``pointwise_from`` (L0, minimal): foolbox's Boundary and
  Pointwise attacks started from the adversarials of another registered minimal attack (by
  default Latent Descent's and salt-and-pepper's), the paper's recipe: a decision-based run then
  only has to shrink an adversarial it is given. (The registry's ``boundary`` and ``pointwise``
  start from a noise or nearest-image adversarial instead.) The starting attack runs inside the
  call, on the same images and with the same random state as its own run would, so the starts
  are the starting attack's adversarials.

Importing this module registers them; run them with ``attacks.min_distance(..., attack=name)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch

from ...attacks import AttackInfo, get_attack, register
from .model import latent_descent_attack


def _started(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    make: Any,
    start: str,
    start_options: Mapping[str, Any] | None,
) -> torch.Tensor:
    """Run the registered minimal attack ``start``, then the foolbox attack ``make()`` from its
    adversarials; images without a valid start are returned unchanged (not adversarial)."""
    import foolbox as fb

    info = get_attack(start)
    if not info.minimal:
        raise ValueError(f"the starting attack must be a minimal attack (no epsilon), got {start!r}")
    options = dict(start_options or {})
    info.check_options(options)
    starts = info.run(model, x, y, None, **options).detach()
    with torch.no_grad():
        ok = model(starts).argmax(1) != y
    ok &= (starts.flatten(1).amin(1) >= 0) & (starts.flatten(1).amax(1) <= 1)
    out = x.clone()
    if ok.any():
        fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=x.device)
        with warnings.catch_warnings():  # foolbox warns when a run does not improve an image
            warnings.simplefilter("ignore", UserWarning)
            out[ok] = make().run(fmodel, x[ok], fb.criteria.Misclassification(y[ok]), starting_points=starts[ok])
    return out


def boundary_from(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: None = None,
    *,
    steps: int = 1000,
    start: str = "latent_descent",
    start_options: Mapping[str, Any] | None = None,
) -> torch.Tensor:
    """foolbox's BoundaryAttack (``steps`` steps) started from the adversarials of ``start``."""
    import foolbox as fb

    return _started(model, x, y, lambda: fb.attacks.BoundaryAttack(steps=steps), start, start_options)


def pointwise_from(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: None = None,
    *,
    start: str = "salt_pepper",
    start_options: Mapping[str, Any] | None = None,
) -> torch.Tensor:
    """foolbox's PointwiseAttack (the paper's L0 attack) started from the adversarials of ``start``:
    reset perturbed pixels to their clean value while the image stays adversarial."""
    import foolbox as fb

    return _started(model, x, y, lambda: fb.attacks.PointwiseAttack(l2_binary_search=False), start, start_options)


LATENT_DESCENT = register(AttackInfo("latent_descent", "l2", True, latent_descent_attack))
BOUNDARY_FROM = register(AttackInfo("boundary_from", "l2", True, boundary_from))
POINTWISE_FROM = register(AttackInfo("pointwise_from", "l0", True, pointwise_from))
