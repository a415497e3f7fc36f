"""The yardstick: one evaluation protocol that every model goes through identically.

``evaluate(adapter, x, y, config)`` runs the whole attack suite on the same images and returns a
:class:`ProtocolResult`: per attack and norm each image's smallest adversarial distance found
(``attacks.DistanceResult``), the per-image minimum over all attacks and the trivial bound
("combined"), accuracy-vs-epsilon curves, medians, accuracy at the thresholds, which attack was
strongest for how many images, wall time per attack, and sanity flags (``sanity_flags``).

The suite (``ATTACK_NAMES``; each attack in the norms listed):

===========  =========  ========  ===============================================================
name         norms      family    what
===========  =========  ========  ===============================================================
apgd-ce      linf, l2   gradient  torchattacks APGD, cross-entropy loss (AutoAttack's first)
apgd-dlr     linf, l2   gradient  torchattacks APGD, DLR loss (scale-invariant; >= 3 classes)
apgd-t       linf, l2   gradient  torchattacks APGDT: targeted DLR over every other class
                                  (AutoAttack's second; 9x the cost of apgd-dlr, ``paper`` only)
square       linf, l2   score     torchattacks Square: random search on the model's scores
hsja         l2         decision  HopSkipJump (ours, batched) started from the trivial bound image
transfer     linf, l2   transfer  ``attacks.transfer``: PGD direction from a standard ``source``
                                  network, line search on the model
noise        linf, l2   noise     uniform noise over the L-inf grid; Gaussian-noise line search
===========  =========  ========  ===============================================================

Fixed-epsilon attacks (APGD, Square, uniform noise) become minimal distances over the epsilon
grid: an image gets the measured distance of the adversarial found at the smallest grid epsilon
that worked, capped at that epsilon (as ``attacks.min_distance`` does). ``search="bisect"`` finds
that epsilon by bisection per image (about 4 runs instead of up to 12); ``"scan"`` goes from small
to large. With ``cascade=True`` (AutoAttack runs each attack only where the previous ones failed)
an epsilon attack only tries epsilons below the distance the earlier attacks found: gradient
attacks below the earlier gradient attacks', the others below everyone's. The combined distances
are the same; a later attack's own distances are then "what it adds", not a standalone curve
(``paper`` runs every attack standalone). The minimal attacks (HopSkipJump, transfer, L2 noise)
run standalone in a cascade too: the chapters compare their medians (``hop_skip_jump``,
``attacks.transfer`` and ``attacks.gaussian_noise`` can take the distances to beat as a ``limit``).
APGD runs ``steps // 10`` steps first and the full
``steps`` on what that did not fool. Gradient attacks take gradients from the adapter's
``grad_model`` when it has one; every adversarial of every attack is re-checked here on the real
model: misclassified, in [0, 1] and within epsilon.

The **trivial upper bound** of an image is the nearest reference image (the evaluated test images
plus a slice of the training set) that the model assigns to another class, in each norm; for L-inf
on models that binarise their input also the image that moves every pixel just across 0.5 towards
such an image (distance 0.5, checked on the model). The combined distance never exceeds it.

Every number here is an upper bound on the true minimal distance (a lower bound on the error): a
robust accuracy from a weak attack is an upper bound on robust accuracy, never the truth.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from . import attacks
from .attacks import DistanceResult
from .data import check_images, check_labels
from .metrics import accuracy_curve, distance, median_distance
from .profiles import PROFILE_NAMES

NORMS = ("linf", "l2")
ATTACK_NAMES = ("apgd-ce", "apgd-dlr", "apgd-t", "square", "hsja", "transfer", "noise")
FAMILIES = ("gradient", "score", "decision", "transfer", "noise", "bound")
GRADIENT_FREE = ("score", "decision", "transfer", "noise")  # families compared with "gradient"
TRIVIAL = "trivial"  # the name of the trivial upper bound in results
COMBINED = "combined"  # the per-image minimum over every attack and the trivial bound
FLAG_KINDS = ("gradient masking suspected", "attack failure", "non-monotone curve", "distance above trivial bound")

_FAMILY = {
    "apgd-ce": "gradient",
    "apgd-dlr": "gradient",
    "apgd-t": "gradient",
    "square": "score",
    "hsja": "decision",
    "transfer": "transfer",
    "noise": "noise",
}
_NORMS_OF = {name: NORMS for name in ATTACK_NAMES} | {"hsja": ("l2",)}
_TA_NORM = {"linf": "Linf", "l2": "L2"}  # torchattacks' spelling
_P = {"linf": math.inf, "l2": 2.0}  # torch.cdist's p

LINF_GRID = (0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
L2_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)
SEARCHES = ("bisect", "scan")
BINARY_THRESHOLD = 0.5  # where binarising models cut; the L-inf trivial bound moves pixels across it
HSJA_GIVE_UP = 2.0  # in a cascade HopSkipJump drops an image still this many times the known distance


# --- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProtocolConfig:
    """Every size, grid and budget of the protocol (part of a stored result's key).

    Build one with ``ProtocolConfig.for_profile("smoke" | "quick" | "paper", **overrides)``.
    """

    profile: str = "quick"
    n_images: int = 200  # the first n test images, the same for every model
    n_reference: int = 2000  # training images added to the trivial bound's reference set
    linf_grid: tuple[float, ...] = LINF_GRID
    l2_grid: tuple[float, ...] = L2_GRID
    linf_thresholds: tuple[float, ...] = (0.1, 0.3)
    l2_thresholds: tuple[float, ...] = (1.5, 2.0)
    norms: tuple[str, ...] = NORMS
    # suite order: in a cascade each attack only has to beat the ones before it, so the cheap come first
    attacks: tuple[str, ...] = ("apgd-ce", "apgd-dlr", "transfer", "noise", "hsja", "square")
    search: str = "bisect"  # epsilon attacks over the grid: "bisect" (per image) or "scan" (small to large)
    cascade: bool = True  # each epsilon attack searches only below what earlier attacks found (see suite)
    apgd_steps: int = 100
    apgd_restarts: int = 1
    square_queries: int = 1000
    square_full_grid: bool = False  # False: Square only at the thresholds and the largest epsilon
    hsja_steps: int = 12  # HopSkipJump iterations
    hsja_evals: int = 25  # its first gradient estimate's queries (then x sqrt(iteration))
    noise_draws: int = 20  # Gaussian directions (L2) / uniform draws per epsilon (L-inf)
    monotonicity_images: int = 50  # images fooled below the largest epsilon re-attacked there (not noise)
    keep_adversarials: int = 16  # combined adversarials stored for the first k images
    batch_size: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if self.profile not in PROFILE_NAMES:
            raise ValueError(f"unknown profile {self.profile!r}; valid: {', '.join(PROFILE_NAMES)}")
        _check_choices("norm", self.norms, NORMS)
        _check_choices("attack", self.attacks, ATTACK_NAMES)
        if self.search not in SEARCHES:
            raise ValueError(f"unknown search {self.search!r}; valid: {', '.join(SEARCHES)}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if (
                isinstance(value, int)
                and not isinstance(value, bool)
                and value < (0 if f.name in ("seed", "keep_adversarials", "n_reference", "monotonicity_images") else 1)
            ):
                raise ValueError(f"ProtocolConfig.{f.name} must be a positive integer, got {value}")
        for norm in NORMS:
            grid, thresholds = self.grid(norm), self.thresholds(norm)
            if not grid or list(grid) != sorted(set(grid)) or grid[0] < 0 or not all(map(math.isfinite, grid)):
                raise ValueError(f"ProtocolConfig.{norm}_grid must be increasing finite numbers >= 0, got {grid}")
            missing = [t for t in thresholds if t not in grid]
            if missing:
                raise ValueError(f"ProtocolConfig.{norm}_thresholds {missing} must be points of the grid {grid}")

    @classmethod
    def for_profile(cls, profile: str, **overrides: Any) -> ProtocolConfig:
        """The protocol's settings at ``profile``; keyword overrides replace single fields."""
        if profile not in _PROFILE_SETTINGS:
            raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILE_NAMES)}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unknown ProtocolConfig field(s) {unknown}; valid: {', '.join(sorted(names))}")
        return cls(**{"profile": profile, **_PROFILE_SETTINGS[profile], **overrides})

    def grid(self, norm: str) -> tuple[float, ...]:
        return {"linf": self.linf_grid, "l2": self.l2_grid}[_check_norm(norm)]

    def thresholds(self, norm: str) -> tuple[float, ...]:
        return {"linf": self.linf_thresholds, "l2": self.l2_thresholds}[_check_norm(norm)]


_PROFILE_SETTINGS: dict[str, dict[str, Any]] = {
    "smoke": dict(
        n_images=16, n_reference=200, apgd_steps=20, square_queries=100, hsja_steps=6, hsja_evals=20, noise_draws=5
    ),
    "quick": dict(
        n_images=200,
        n_reference=2000,
        apgd_steps=100,
        square_queries=1000,
        hsja_steps=12,
        hsja_evals=25,
        noise_draws=20,
    ),
    # AutoAttack's "standard" budgets (APGD-CE, APGD-T over 9 targets, Square 5000 queries).
    # Every attack standalone on the whole grid (no cascade): per-attack curves for the chapters.
    "paper": dict(
        n_images=1000,
        n_reference=10000,
        apgd_steps=100,
        square_queries=5000,
        hsja_steps=40,
        hsja_evals=100,
        noise_draws=100,
        square_full_grid=True,
        search="scan",
        cascade=False,
        monotonicity_images=1000,
        attacks=("apgd-ce", "apgd-t", "transfer", "noise", "hsja", "square"),
    ),
}


def _check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
    return norm


def _check_choices(kind: str, values: Sequence[str], valid: Sequence[str]) -> None:
    if isinstance(values, str) or not values:
        raise ValueError(f"{kind}s must be a non-empty tuple of names; valid: {', '.join(valid)}")
    bad = [v for v in values if v not in valid]
    if bad:
        raise ValueError(f"unknown {kind} {bad[0]!r}; valid: {', '.join(valid)}")


def protocol_images(config: ProtocolConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``config.n_images`` MNIST test images and labels: the same for every model."""
    from . import data

    x, y = data.mnist("test")
    return x[: config.n_images].clone(), y[: config.n_images].clone()


def reference_images(config: ProtocolConfig, x: torch.Tensor) -> torch.Tensor:
    """The trivial bound's reference set: the evaluated images and the first ``n_reference``
    training images (MNIST-shaped inputs only; other inputs use the evaluated images alone)."""
    if config.n_reference == 0 or tuple(x.shape[1:]) != (1, 28, 28):
        return x
    from . import data

    return torch.cat([x, data.mnist("train")[0][: config.n_reference].to(x.dtype)])


# --- the adapter -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttackSpec:
    """One attack of the suite, as the protocol drives it.

    ``run(x, y, eps) -> adversarials`` when ``eps_based`` (driven over the grid), else
    ``run(x, y) -> adversarials`` (minimal: as close as it can). Inputs (B, C, H, W) in [0, 1] and
    labels (B,) on the model's device; returns (B, C, H, W). Images it cannot fool may come back
    unchanged: the protocol checks every returned image on the real model.
    """

    name: str
    norm: str
    run: Callable[..., torch.Tensor] = field(repr=False)
    eps_based: bool = True
    family: str = "gradient"
    grid: tuple[float, ...] | None = None  # eps attacks: its epsilons (default: the norm's whole grid)

    def __post_init__(self) -> None:
        if self.grid is not None and (not self.grid or list(self.grid) != sorted(set(self.grid)) or self.grid[0] < 0):
            raise ValueError(f"AttackSpec.grid must be increasing numbers >= 0, got {self.grid}")
        if not self.name or "/" in self.name or self.name in (TRIVIAL, COMBINED):
            raise ValueError(
                f"attack name {self.name!r} must be non-empty, without '/', and not {TRIVIAL!r} or {COMBINED!r}"
            )
        _check_norm(self.norm)
        if self.family not in FAMILIES[:-1]:
            raise ValueError(f"unknown attack family {self.family!r}; valid: {', '.join(FAMILIES[:-1])}")
        if not callable(self.run):
            raise TypeError(f"AttackSpec.run must be callable, got {type(self.run).__name__}")

    def apply(self, x: torch.Tensor, y: torch.Tensor, eps: float | None = None) -> torch.Tensor:
        """Run the attack however it is driven: at ``eps`` (epsilon attacks) or minimal."""
        if not self.eps_based:
            return self.run(x, y)
        if eps is None:
            raise ValueError(f"attack {self.name!r} is an epsilon attack: give eps")
        return self.run(x, y, eps)


@dataclass
class Adapter:
    """What the protocol needs to know about one model.

    ``model``: the real defence, images (N, C, H, W) in [0, 1] -> class scores (N, classes); every
    success is judged on it. ``grad_model``: an optional differentiable surrogate that gradient
    attacks take gradients (and their step-size bookkeeping) from, e.g. a pseudogradient or
    float64 pre-tanh scores; it takes the same images (float32) and its decisions should match
    the model's (APGD stops on what it believes fooled). ``binarises``: the model
    thresholds its input at 0.5 (enables the 0.5 L-inf trivial bound). ``attacks``: the
    defence-specific attacks an adaptive attacker adds (``AttackSpec``s).
    """

    name: str
    model: torch.nn.Module
    grad_model: torch.nn.Module | None = None
    binarises: bool = False
    attacks: tuple[AttackSpec, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"adapter name {self.name!r} must be non-empty and without '/'")
        for kind, m in (("model", self.model), ("grad_model", self.grad_model)):
            if m is not None and not isinstance(m, torch.nn.Module):
                raise TypeError(f"Adapter.{kind} must be a torch.nn.Module, got {type(m).__name__}")
        self.attacks = tuple(self.attacks)
        for a in self.attacks:
            if not isinstance(a, AttackSpec):
                raise TypeError(f"Adapter.attacks must hold AttackSpec objects, got {type(a).__name__}")
        names = [a.name for a in self.attacks]
        clash = sorted({n for n in names if n in ATTACK_NAMES or names.count(n) > 1})
        if clash:
            raise ValueError(f"adapter attack names {clash} repeat or clash with the suite's {ATTACK_NAMES}")


# --- helpers -----------------------------------------------------------------------------------


def _model_device(model: torch.nn.Module) -> torch.device:
    tensors = [*model.parameters(), *model.buffers()]
    return tensors[0].device if tensors else torch.device("cpu")


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, *, batch_size: int = 1000) -> torch.Tensor:
    """Predicted classes (N,) on the CPU, in batches on the model's device."""
    device = _model_device(model)
    return torch.cat([model(x[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)])


@torch.no_grad()
def _fooled(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(1) != y  # (B,) bool


def _unit(v: torch.Tensor) -> torch.Tensor:
    """Each image of (B, ...) scaled to L2 norm 1."""
    return v / v.flatten(1).norm(dim=1).clamp_min(1e-12).reshape(-1, *[1] * (v.ndim - 1))


class _EvalMode(contextlib.AbstractContextManager):
    """Models in eval mode inside, their own mode restored afterwards."""

    def __init__(self, *models: torch.nn.Module | None):
        self.models = [m for m in models if m is not None]
        self.modes = [m.training for m in self.models]

    def __enter__(self):
        for m in self.models:
            m.eval()
        return self

    def __exit__(self, *exc):
        for m, mode in zip(self.models, self.modes):
            m.train(mode)


class _ZeroGradIfDetached(torch.nn.Module):
    """The model, but scores that do not depend differentiably on the input (a step function,
    argmax, a hard threshold) get zero gradients instead of an autograd error: a gradient attack
    then fails as it would on any masked gradient, and the other attacks show it."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)  # (B, classes)
        if torch.is_grad_enabled() and x.requires_grad:
            out = out + 0.0 * x.sum()  # x in the graph even where the scores reach it only through a step
        return out


def _torchattack(cls: Any, model: torch.nn.Module, device: torch.device, **kw: Any) -> Any:
    """A torchattacks attack on ``device``. A model without parameters makes torchattacks print
    "Failed to set device automatically": silenced here, and the device is set explicitly."""
    with contextlib.redirect_stdout(io.StringIO()):
        # eval(): torchattacks restores the wrapper's mode after each call, and a wrapper left in
        # training mode would put the model into training mode
        attack = cls(_ZeroGradIfDetached(model).eval(), **kw)
    attack.set_device(device)
    return attack


# --- the trivial upper bound -------------------------------------------------------------------


def _nearest_other(
    x: torch.Tensor, y: torch.Tensor, reference: torch.Tensor, ref_pred: torch.Tensor, p: float, *, chunk: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each image, the nearest reference image (in the p-norm) that the model assigns to another
    class than the image's label: (indices (N,) long, distances (N,) float64; -1, inf: none)."""
    ref = reference.flatten(1).to(torch.float64)  # (R, D)
    idx = torch.full((len(x),), -1, dtype=torch.long)
    dist = torch.full((len(x),), math.inf, dtype=torch.float64)
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i : i + chunk].flatten(1).to(torch.float64), ref, p=p)  # (B, R)
        d[ref_pred[None, :] == y[i : i + chunk, None]] = math.inf  # same class: not a candidate
        dist[i : i + chunk], idx[i : i + chunk] = d.min(1)
    idx[torch.isinf(dist)] = -1
    return idx, dist


def _half_way(x: torch.Tensor, target: torch.Tensor, margin: float) -> torch.Tensor:
    """Each pixel of x moved just across 0.5 to the side the target's pixel is on (unchanged if
    already there): a binarising model then sees the binarised target; L-inf <= 0.5 + margin."""
    up = target > BINARY_THRESHOLD
    return torch.where(up, x.clamp(min=BINARY_THRESHOLD + margin), x.clamp(max=BINARY_THRESHOLD - margin))


def trivial_bound(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    reference: torch.Tensor,
    ref_pred: torch.Tensor,
    norm: str,
    *,
    binarises: bool = False,
) -> DistanceResult:
    """Each image's trivial upper bound in ``norm`` (0 where the model already errs).

    The nearest reference image that the model assigns to another class; for L-inf with
    ``binarises`` also the half-way image toward it (distance 0.5, or 0.5 + 1e-3 if the model cuts
    at > 0.5), kept where the model misclassifies it. Every bound is a checked adversarial.
    """
    idx, dist = _nearest_other(x, y, reference, ref_pred, _P[norm])
    found = idx >= 0
    adv = x.clone()
    adv[found] = reference[idx[found]]
    if binarises and norm == "linf":
        # the other-class reference image whose binarisation differs from x's in fewest pixels
        near, _ = _nearest_other(
            (x > BINARY_THRESHOLD).double(), y, (reference > BINARY_THRESHOLD).double(), ref_pred, 1.0
        )
        for margin in (0.0, 1e-3):
            cand = _half_way(x, reference[near.clamp(min=0)], margin)  # (N, C, H, W)
            ok = (predict(model, cand) != y) & (near >= 0)
            d = distance(cand, x, "linf")
            better = ok & (d < dist)
            adv[better], dist[better] = cand[better], d[better]
    wrong = predict(model, x) != y
    dist[wrong], adv[wrong] = 0.0, x[wrong]
    return DistanceResult(TRIVIAL, norm, dist, adv)


# --- HopSkipJump (decision-based) --------------------------------------------------------------


@torch.no_grad()
def _to_boundary(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, adv: torch.Tensor, tol: float
) -> torch.Tensor:
    """Bisection on the segment x -> adv (adv misclassified): the misclassified point nearest x."""
    shape = (-1, *[1] * (x.ndim - 1))
    lo = torch.zeros(len(x), device=x.device, dtype=x.dtype)  # blend weights of adv: (B,)
    hi = torch.ones_like(lo)
    for _ in range(40):
        if float((hi - lo).max()) <= tol:
            break
        mid = (lo + hi) / 2
        fooled = _fooled(model, x + mid.reshape(shape) * (adv - x), y)
        hi, lo = torch.where(fooled, mid, hi), torch.where(fooled, lo, mid)
    return x + hi.reshape(shape) * (adv - x)


@torch.no_grad()
def _estimate_direction(
    model: torch.nn.Module, adv: torch.Tensor, y: torch.Tensor, delta: torch.Tensor, evals: int, max_batch: int
) -> torch.Tensor:
    """HopSkipJump's Monte-Carlo estimate of the boundary normal at adv (B, ...): unit per image."""
    b, shape = len(adv), (1, -1, *[1] * (adv.ndim - 1))
    s_phi_u, s_u = torch.zeros_like(adv), torch.zeros_like(adv)  # sums of phi * u and of u
    s_phi = torch.zeros(b, device=adv.device, dtype=adv.dtype)
    per = max(1, max_batch // b)  # probes per image in one forward pass
    done = 0
    while done < evals:
        k = min(per, evals - done)
        u = torch.randn(k, *adv.shape, device=adv.device, dtype=adv.dtype)  # (k, B, C, H, W)
        u = u / u.flatten(2).norm(dim=2).clamp_min(1e-12).reshape(k, b, *[1] * (adv.ndim - 1))
        probe = (adv[None] + delta.reshape(shape) * u).clamp(0, 1)
        u = (probe - adv[None]) / delta.reshape(shape)  # the direction actually taken after clipping
        phi = _fooled(model, probe.flatten(0, 1), y.repeat(k)).reshape(k, b).to(adv.dtype) * 2 - 1  # (k, B)
        s_phi_u += (phi.reshape(k, b, *[1] * (adv.ndim - 1)) * u).sum(0)
        s_u += u.sum(0)
        s_phi += phi.sum(0)
        done += k
    mean_phi = s_phi / evals
    baseline = torch.where(mean_phi.abs() == 1, torch.zeros_like(mean_phi), mean_phi)  # variance reduction
    return _unit(s_phi_u / evals - baseline.reshape(-1, *[1] * (adv.ndim - 1)) * s_u / evals)


@torch.no_grad()
def hop_skip_jump(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    start: torch.Tensor,
    *,
    steps: int,
    evals: int,
    max_evals: int = 2000,
    gamma: float = 1.0,
    max_batch: int = 20_000,
    limit: torch.Tensor | None = None,
    give_up: float = HSJA_GIVE_UP,
) -> torch.Tensor:
    """HopSkipJump, L2 (Chen, Jordan & Wainwright 2020), batched over images.

    x, start: (B, C, H, W); ``start`` must be misclassified. Each iteration estimates the boundary
    normal from ``evals * sqrt(t + 1)`` decisions, steps along it (geometric step search) and
    bisects back to the boundary. Returns adversarials (B, C, H, W) no farther than the start.
    Ours rather than foolbox's: foolbox 3.3.4 normalises the gradient estimate over the whole batch,
    not per image, which shrinks every step in a batch and made it fail within the quick budget.

    ``limit`` (B,): distances already known (a cascade). From a third of the iterations on, an
    image whose distance is still more than ``give_up`` times its limit is left where it is: the
    later iterations, which cost the most queries, would have to shrink it that much again to
    matter. Without a limit every image runs every iteration.
    """
    d = x[0].numel()
    tol = gamma / (d * math.sqrt(d))  # bisection tolerance on the blend weight (the paper's theta)
    adv = _to_boundary(model, x, y, start, tol)
    dist = (adv - x).flatten(1).norm(dim=1)  # (B,)
    active = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for t in range(steps):
        if limit is not None and t >= max(1, steps // 3):
            active &= dist <= give_up * limit.to(dist)
        idx = torch.nonzero(active).flatten()
        if not len(idx):
            break
        adv[idx], dist[idx] = _hsja_iteration(
            model, x[idx], y[idx], adv[idx], dist[idx], t, evals, tol, max_evals, max_batch
        )
    return adv


def _hsja_iteration(model, x, y, adv, dist, t: int, evals: int, tol: float, max_evals: int, max_batch: int):
    """One HopSkipJump iteration on the images given: (adversarials (B, ...), distances (B,))."""
    d = x[0].numel()
    shape = (-1, *[1] * (x.ndim - 1))
    delta = torch.full_like(dist, 0.1) if t == 0 else (math.sqrt(d) * tol * dist).clamp_min(1e-6)
    g = _estimate_direction(model, adv, y, delta, int(min(evals * math.sqrt(t + 1), max_evals)), max_batch)
    step = dist / math.sqrt(t + 1)
    ok = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for _ in range(25):  # geometric step search: halve until the step stays adversarial
        cand = (adv + step.reshape(shape) * g).clamp(0, 1)
        ok = _fooled(model, cand, y)
        if ok.all():
            break
        step = torch.where(ok, step, step / 2)
    adv = torch.where(ok.reshape(shape), cand, adv)
    adv = _to_boundary(model, x, y, adv, tol)
    return adv, (adv - x).flatten(1).norm(dim=1)


# --- the suite ---------------------------------------------------------------------------------


def suite(
    adapter: Adapter,
    config: ProtocolConfig,
    norm: str,
    *,
    num_classes: int,
    reference: torch.Tensor,
    ref_pred: torch.Tensor,
    source: torch.nn.Module | None = None,
) -> tuple[list[AttackSpec], list[str]]:
    """The attacks ``config`` asks for in ``norm`` (then the adapter's own), and a note for each
    one skipped. ``reference``/``ref_pred``: the trivial bound's images and the model's classes."""
    ctx = _Context(
        adapter.model,
        adapter.grad_model or adapter.model,
        _model_device(adapter.model),
        config,
        norm,
        num_classes,
        reference,
        ref_pred,
        source,
    )
    specs: list[AttackSpec] = []
    skipped: list[str] = []
    c = config
    for name in c.attacks:
        if norm not in _NORMS_OF[name]:
            continue
        if name in ("apgd-dlr", "apgd-t") and num_classes < 3:
            skipped.append(f"{norm} {name}: the DLR loss needs >= 3 classes (model has {num_classes})")
            continue
        if name == "transfer" and source is None:
            skipped.append(f"{norm} transfer: no source model given (evaluate(..., source=...))")
            continue
        grid = None
        if name == "square" and not c.square_full_grid:
            grid = tuple(sorted({*c.thresholds(norm), c.grid(norm)[-1]}))
        minimal = name in ("hsja", "transfer") or (name == "noise" and norm == "l2")
        # the minimal attacks run standalone even in a cascade: the chapters compare their medians
        # (decision-based against noise, the papers' orderings of attacks)
        specs.append(
            AttackSpec(name, norm, _BUILDERS[name](ctx), eps_based=not minimal, family=_FAMILY[name], grid=grid)
        )
    specs += [a for a in adapter.attacks if a.norm == norm]
    return specs, skipped


def _two_stage(model: torch.nn.Module, apgd: Callable[..., torch.Tensor], steps: int) -> Callable[..., torch.Tensor]:
    """APGD with ``steps // 10`` steps first, then the full ``steps`` on the images the short run
    did not fool (judged on the real model): as strong as the full run alone, and much cheaper
    wherever most images fall quickly (torchattacks' APGD never stops early)."""
    short = max(steps // 10, 5)

    def run(x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        if short >= steps:
            return apgd(steps, x, y, eps)
        adv = apgd(short, x, y, eps)  # (B, C, H, W)
        left = ~_fooled(model, adv, y)
        if left.any():
            adv[left] = apgd(steps, x[left], y[left], eps)
        return adv

    return run


@dataclass(frozen=True)
class _Context:
    """What the suite's attacks close over."""

    model: torch.nn.Module  # the real model: decisions, scores, success
    grad_model: torch.nn.Module  # gradients (the model itself without a surrogate)
    device: torch.device
    config: ProtocolConfig
    norm: str
    num_classes: int
    reference: torch.Tensor  # (R, C, H, W) the trivial bound's images
    ref_pred: torch.Tensor  # (R,) the model's classes for them
    source: torch.nn.Module | None  # the transfer attack's standard network


def apgd(
    model: torch.nn.Module,
    grad_model: torch.nn.Module | None,
    norm: str,
    config: ProtocolConfig,
    *,
    loss: str = "ce",
    num_classes: int = 10,
) -> Callable[..., torch.Tensor]:
    """The suite's APGD as ``run(x, y, eps) -> adversarials``, for an adapter's own variants too:
    torchattacks APGD with the ``"ce"`` or ``"dlr"`` loss, or ``"t"`` (APGD-T: targeted DLR, each
    other class in turn), ``config``'s steps, restarts and seed, gradients from ``grad_model``
    (default: the model), in two stages judged on the real ``model`` (``_two_stage``)."""
    import torchattacks

    _check_norm(norm)
    if loss not in ("ce", "dlr", "t"):
        raise ValueError(f"unknown APGD loss {loss!r}; valid: ce, dlr, t")
    source = grad_model if grad_model is not None else model
    device = _model_device(model)

    def run(steps: int, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        common = dict(norm=_TA_NORM[norm], eps=eps, steps=steps, n_restarts=config.apgd_restarts, seed=config.seed)
        if loss == "t":
            attack = _torchattack(torchattacks.APGDT, source, device, n_classes=num_classes, **common)
        else:
            attack = _torchattack(torchattacks.APGD, source, device, loss=loss, **common)
        return attack(x, y).detach()

    return _two_stage(model, run, config.apgd_steps)


def _apgd(ctx: _Context, loss: str) -> Callable[..., torch.Tensor]:
    return apgd(ctx.model, ctx.grad_model, ctx.norm, ctx.config, loss=loss, num_classes=ctx.num_classes)


def _square(ctx: _Context) -> Callable[..., torch.Tensor]:
    import torchattacks

    c = ctx.config

    def run(x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        norm = _TA_NORM[ctx.norm]
        attack = _torchattack(
            torchattacks.Square,
            ctx.model,
            ctx.device,
            norm=norm,
            eps=eps,
            n_queries=c.square_queries,
            n_restarts=1,
            seed=c.seed,
        )
        return attack(x, y)

    return run


def _noise(ctx: _Context) -> Callable[..., torch.Tensor]:
    """L-inf: uniform noise, ``noise_draws`` draws per epsilon; L2: Gaussian-noise line search."""
    if ctx.norm == "linf":
        return lambda x, y, eps: attacks.ATTACKS["uniform_noise"].run(
            ctx.model, x, y, eps, repeats=ctx.config.noise_draws
        )
    return lambda x, y: attacks.ATTACKS["gaussian_noise"].run(ctx.model, x, y, draws=ctx.config.noise_draws)


def _hsja(ctx: _Context) -> Callable[..., torch.Tensor]:
    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        idx, _ = _nearest_other(x.cpu(), y.cpu(), ctx.reference, ctx.ref_pred, 2.0)  # start: the trivial image
        out = x.clone()
        has = idx >= 0
        if has.any():
            start = ctx.reference[idx[has]].to(x.device, x.dtype)
            has = has.to(x.device)
            c = ctx.config
            out[has] = hop_skip_jump(ctx.model, x[has], y[has], start, steps=c.hsja_steps, evals=c.hsja_evals)
        return out

    return run


def _transfer(ctx: _Context) -> Callable[..., torch.Tensor]:
    return lambda x, y: attacks.ATTACKS["transfer"].run(ctx.model, x, y, source=ctx.source, norm=ctx.norm)


_BUILDERS: dict[str, Callable[[_Context], Callable[..., torch.Tensor]]] = {
    "apgd-ce": lambda ctx: _apgd(ctx, "ce"),
    "apgd-dlr": lambda ctx: _apgd(ctx, "dlr"),
    "apgd-t": lambda ctx: _apgd(ctx, "t"),
    "square": _square,
    "hsja": _hsja,
    "transfer": _transfer,
    "noise": _noise,
}


# --- driving one attack ------------------------------------------------------------------------


@dataclass
class AttackRun:
    result: DistanceResult
    recheck: tuple[int, int] | None  # (images re-attacked at the largest epsilon, how many survived)
    seconds: float


def _verified(
    model, xa: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor, norm: str, eps: float | None
) -> torch.Tensor:
    """(B,) bool: adversarial on the real model, in [0, 1] and (if eps) within eps."""
    ok = _fooled(model, xa, yb) & (xa.flatten(1).amin(1) >= 0) & (xa.flatten(1).amax(1) <= 1)
    if eps is not None:
        ok &= distance(xa, xb, norm).to(ok.device) <= eps + attacks.TOL
    return ok.cpu()


def _attack_batches(
    spec: AttackSpec,
    model,
    x: torch.Tensor,
    y: torch.Tensor,
    todo: torch.Tensor,
    eps: float | None,
    config: ProtocolConfig,
    salt: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``spec`` on the images ``todo`` (indices) in batches; (verified mask (K,), adversarials (K, ...))."""
    device = _model_device(model)
    oks, advs = [], []
    for b, i in enumerate(range(0, len(todo), config.batch_size)):
        idx = todo[i : i + config.batch_size]
        xb, yb = x[idx].to(device), y[idx].to(device)
        torch.manual_seed(config.seed * 100_003 + salt * 1_009 + b)
        xa = spec.apply(xb, yb, eps).detach()
        if xa.shape != xb.shape:
            raise ValueError(f"attack {spec.name!r} returned shape {tuple(xa.shape)} for images {tuple(xb.shape)}")
        oks.append(_verified(model, xa, xb, yb, spec.norm, eps))
        advs.append(xa.cpu().to(x.dtype))
    return torch.cat(oks), torch.cat(advs)


class _GridSearch:
    """An epsilon attack driven over a grid: per image the smallest grid epsilon found to work.

    ``upper`` (N,): a distance already known for each image (inf: none, 0: misclassified clean);
    only grid epsilons below it are tried. Successes are recorded in ``dist`` (measured distance,
    capped at the grid epsilon it was verified against) and ``adv``.
    """

    def __init__(
        self, spec: AttackSpec, model, x, y, grid: Sequence[float], upper: torch.Tensor, config: ProtocolConfig
    ):
        self.spec, self.model, self.x, self.y, self.grid, self.config = spec, model, x, y, list(grid), config
        self.dist = torch.full((len(x),), math.inf, dtype=torch.float64)  # (N,)
        self.adv = x.clone()
        # first grid index at or above the known distance: the search stays below it
        self.hi = torch.searchsorted(torch.tensor(self.grid, dtype=torch.float64), upper.contiguous())  # (N,)
        self.lo = torch.full((len(x),), 0 if self.grid[0] == 0 else -1, dtype=torch.long)  # eps 0 never fools
        self.bounded = torch.isfinite(upper)  # (N,) a distance is known: step down from it, not bisect
        self.calls = 0

    def attack(self, idx: torch.Tensor, k: int) -> torch.Tensor:
        """Attack images ``idx`` at grid[k]; record successes; return the (len(idx),) success mask."""
        eps = self.grid[k]
        ok, xa = _attack_batches(self.spec, self.model, self.x, self.y, idx, eps, self.config, salt=self.calls)
        self.calls += 1
        hit = idx[ok]
        self.adv[hit] = xa[ok]
        self.dist[hit] = distance(xa[ok], self.x[hit], self.spec.norm).clamp(max=eps)
        return ok

    def scan(self) -> None:
        """Small to large epsilon; an image leaves at its first success."""
        for k in range(len(self.grid)):
            todo = torch.nonzero((self.lo < k) & (k < self.hi) & torch.isinf(self.dist)).flatten()
            if len(todo):
                self.attack(todo, k)

    def bisect(self) -> None:
        """Bisection over grid indices, per image (assumes success grows with epsilon). Below a
        known distance the search steps down one grid point at a time instead: a later attack
        usually does not beat an earlier one, and one failed try then settles the image."""
        while True:
            active = self.hi - self.lo > 1
            if not active.any():
                return
            mid = torch.where(self.bounded, self.hi - 1, (self.lo + self.hi) // 2)
            for k in mid[active].unique().tolist():
                idx = torch.nonzero(active & (mid == k)).flatten()
                ok = self.attack(idx, k)
                self.hi[idx[ok]] = k
                self.lo[idx[~ok]] = k


def run_attack(
    spec: AttackSpec,
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    clean_correct: torch.Tensor,
    config: ProtocolConfig,
    *,
    upper: torch.Tensor | None = None,
) -> AttackRun:
    """Per-image minimal distances of one attack (0 for clean errors, inf where none found).

    ``upper`` (N,): distances earlier attacks found (the cascade): an epsilon attack then only
    tries grid epsilons below them, and its result is "what it adds", not a standalone curve.
    """
    start = time.perf_counter()
    known = torch.where(clean_correct, math.inf, 0.0).to(torch.float64)  # (N,)
    if upper is not None:
        known = torch.minimum(known, upper.to(torch.float64))
    recheck = None
    if spec.eps_based:
        grid = spec.grid or config.grid(spec.norm)
        search = _GridSearch(spec, model, x, y, grid, known, config)
        search.bisect() if config.search == "bisect" else search.scan()
        dist, adv = search.dist, search.adv
        if config.monotonicity_images and spec.family != "noise":  # noise is random by design
            recheck = _recheck(spec, model, x, y, dist, grid, config)
    else:
        dist, adv = torch.full((len(x),), math.inf, dtype=torch.float64), x.clone()
        todo = torch.nonzero(clean_correct).flatten()
        if len(todo):
            ok, xa = _attack_batches(spec, model, x, y, todo, None, config, salt=0)
            hit = todo[ok]
            adv[hit] = xa[ok]
            dist[hit] = distance(xa[ok], x[hit], spec.norm)
    dist[~clean_correct] = 0.0
    adv[~clean_correct] = x[~clean_correct]
    return AttackRun(DistanceResult(spec.name, spec.norm, dist, adv), recheck, time.perf_counter() - start)


def _recheck(
    spec: AttackSpec, model, x, y, dist: torch.Tensor, grid: Sequence[float], config: ProtocolConfig
) -> tuple[int, int]:
    """Re-attack at the largest grid epsilon (up to ``monotonicity_images`` of) the images the
    attack fooled at smaller ones: an attack that works fools them there too. (checked, survived)."""
    earlier = torch.nonzero((dist > 0) & (dist < grid[-1])).flatten()[: config.monotonicity_images]
    if not len(earlier):
        return 0, 0
    ok, _ = _attack_batches(spec, model, x, y, earlier, grid[-1], config, salt=10_000)
    return len(earlier), int((~ok).sum())


# --- the result --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One sanity warning (``sanity_flags``)."""

    kind: str  # one of FLAG_KINDS
    norm: str
    message: str


@dataclass
class ProtocolResult:
    """Everything ``evaluate`` measured on one model (see the module docstring)."""

    model: str
    config: ProtocolConfig
    labels: torch.Tensor  # (N,)
    clean_correct: torch.Tensor  # (N,) bool
    attacks: dict[str, dict[str, DistanceResult]]  # norm -> attack -> per-image distances
    trivial: dict[str, DistanceResult]  # norm -> the trivial upper bound
    combined: dict[str, DistanceResult]  # norm -> per-image minimum over attacks and the bound
    families: dict[str, str]  # attack -> family
    rechecks: dict[str, dict[str, tuple[int, int]]]  # norm -> eps attack -> (re-attacked, survived)
    seconds: dict[str, dict[str, float]]  # norm -> attack -> wall time
    skipped: list[str] = field(default_factory=list)

    @property
    def norms(self) -> tuple[str, ...]:
        return tuple(self.combined)

    @property
    def clean_accuracy(self) -> float:
        return self.clean_correct.to(torch.float64).mean().item()

    def distances(self, norm: str, attack: str = COMBINED) -> DistanceResult:
        """The per-image distances of ``attack`` (a suite attack, ``"trivial"`` or ``"combined"``)."""
        if norm not in self.combined:
            raise ValueError(f"norm {norm!r} was not evaluated; valid: {', '.join(self.combined)}")
        table = {**self.attacks[norm], TRIVIAL: self.trivial[norm], COMBINED: self.combined[norm]}
        if attack not in table:
            raise ValueError(f"unknown attack {attack!r} for {norm}; valid: {', '.join(table)}")
        return table[attack]

    def curve(self, norm: str, attack: str = COMBINED) -> torch.Tensor:
        """Accuracy (E,) at each point of the norm's grid."""
        return accuracy_curve(self.distances(norm, attack).distances, list(self.config.grid(norm)))

    def median(self, norm: str, attack: str = COMBINED) -> float:
        return median_distance(self.distances(norm, attack).distances)

    def accuracy_at(self, norm: str, eps: float, attack: str = COMBINED) -> float:
        return self.distances(norm, attack).accuracy_at(eps)

    def at_thresholds(self, norm: str, attack: str = COMBINED) -> dict[float, float]:
        return {t: self.accuracy_at(norm, t, attack) for t in self.config.thresholds(norm)}

    def strongest(self, norm: str, *, at: float | None = None) -> dict[str, int]:
        """How many clean-correct images each attack gave the smallest distance for (ties: the
        earlier attack); with ``at``, only the images broken at that epsilon."""
        sources = self.combined[norm].sources or []
        keep = self.clean_correct if at is None else self.clean_correct & (self.combined[norm].distances <= at)
        return dict(Counter(s for s, ok in zip(sources, keep.tolist()) if ok).most_common())

    def summary(self) -> dict[str, Any]:
        """The headline numbers: clean accuracy, and per norm the median, accuracy at each
        threshold, the strongest attack's image counts and the time per attack."""
        out: dict[str, Any] = {"model": self.model, "clean_accuracy": self.clean_accuracy, "n_images": len(self.labels)}
        for norm in self.norms:
            out[norm] = {
                "median": self.median(norm),
                "accuracy": {str(t): a for t, a in self.at_thresholds(norm).items()},
                "strongest": self.strongest(norm),
                "seconds": dict(self.seconds[norm]),
            }
        return out

    def flags(self, **kw: Any) -> list[Flag]:
        return sanity_flags(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        """A dict of tensors, numbers and strings for ``store.save`` (``from_dict`` reads it back)."""
        norms = {}
        for norm in self.norms:
            norms[norm] = {
                "attacks": {a: {"distances": r.distances} for a, r in self.attacks[norm].items()},
                TRIVIAL: {"distances": self.trivial[norm].distances},
                COMBINED: self.combined[norm].to_dict(),
                "rechecks": {a: list(c) for a, c in self.rechecks[norm].items()},
                "seconds": dict(self.seconds[norm]),
            }
        return {
            "model": self.model,
            "config": dataclasses.asdict(self.config),
            "labels": self.labels,
            "clean_correct": self.clean_correct.to(torch.uint8),
            "families": dict(self.families),
            "norms": norms,
            "skipped": list(self.skipped),
            "summary": self.summary(),
            "flags": [dataclasses.asdict(f) for f in self.flags()],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProtocolResult:
        config = ProtocolConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["config"].items()})
        attacks_, trivial, combined, rechecks, seconds = {}, {}, {}, {}, {}
        for norm, n in d["norms"].items():
            attacks_[norm] = {a: DistanceResult(a, norm, r["distances"]) for a, r in n["attacks"].items()}
            trivial[norm] = DistanceResult(TRIVIAL, norm, n[TRIVIAL]["distances"])
            combined[norm] = DistanceResult.from_dict(n[COMBINED])
            rechecks[norm] = {a: tuple(c) for a, c in n["rechecks"].items()}
            seconds[norm] = dict(n["seconds"])
        return cls(
            d["model"],
            config,
            d["labels"],
            d["clean_correct"].bool(),
            attacks_,
            trivial,
            combined,
            dict(d["families"]),
            rechecks,
            seconds,
            list(d["skipped"]),
        )


# --- evaluate ----------------------------------------------------------------------------------


def _check_inputs(adapter: Adapter, x: torch.Tensor, y: torch.Tensor, config: ProtocolConfig) -> int:
    """Validate; return the model's number of classes."""
    if not isinstance(adapter, Adapter):
        raise TypeError(f"adapter must be a protocol.Adapter, got {type(adapter).__name__}")
    if not isinstance(config, ProtocolConfig):
        raise TypeError(
            f"config must be a ProtocolConfig (ProtocolConfig.for_profile(...)), got {type(config).__name__}"
        )
    check_images(x)
    if len(x) == 0:
        raise ValueError("no images to evaluate (empty batch)")
    with _EvalMode(adapter.model), torch.no_grad():
        out = adapter.model(x[:1].to(_model_device(adapter.model)))
    if out.ndim != 2 or out.shape[0] != 1:
        raise ValueError(f"the model must return scores of shape (N, classes), got {tuple(out.shape)}")
    check_labels(y, len(x), out.shape[1])
    return out.shape[1]


def evaluate(
    adapter: Adapter,
    x: torch.Tensor,
    y: torch.Tensor,
    config: ProtocolConfig,
    *,
    source: torch.nn.Module | None = None,
    reference: torch.Tensor | None = None,
    progress: bool = True,
) -> ProtocolResult:
    """Run the whole protocol on one model: every attack of ``config`` (and the adapter's own) in
    every norm, the trivial bound, the combined minima. ``x`` (N, C, H, W) in [0, 1], ``y`` (N,).

    ``source``: a standard network (on the model's device) for the transfer attack; without one
    the transfer attack is skipped, and ``skipped`` says so.
    ``reference``: the trivial bound's images (default: ``reference_images(config, x)``).
    Models are put in eval mode and restored afterwards. Results live on the CPU.
    """
    num_classes = _check_inputs(adapter, x, y, config)
    x, y = x.detach().cpu(), y.detach().cpu().long()
    reference = reference_images(config, x) if reference is None else reference.detach().cpu()
    check_images(reference)
    model = adapter.model
    with _EvalMode(model, adapter.grad_model, source):
        clean_correct = predict(model, x) == y  # (N,)
        ref_pred = predict(model, reference)  # (R,)
        res = ProtocolResult(adapter.name, config, y, clean_correct, {}, {}, {}, {}, {}, {}, [])
        for norm in config.norms:
            _evaluate_norm(res, adapter, x, y, norm, num_classes, reference, ref_pred, source, progress)
    return res


def _cascade_bound(res: ProtocolResult, norm: str, spec: AttackSpec) -> torch.Tensor | None:
    """What ``spec`` has to beat in the cascade: a gradient attack the earlier gradient attacks
    (so the gradient attacks together stay a standalone result, for the masking flag), any other
    attack everything before it. None without a cascade."""
    if not res.config.cascade:
        return None
    earlier = [r for a, r in res.attacks[norm].items() if spec.family != "gradient" or res.families[a] == "gradient"]
    return torch.stack([r.distances for r in earlier]).min(0).values if earlier else None


def _evaluate_norm(
    res: ProtocolResult,
    adapter: Adapter,
    x,
    y,
    norm: str,
    num_classes: int,
    reference: torch.Tensor,
    ref_pred: torch.Tensor,
    source,
    progress: bool,
) -> None:
    config, model = res.config, adapter.model
    start = time.perf_counter()
    trivial = trivial_bound(model, x, y, reference, ref_pred, norm, binarises=adapter.binarises)
    res.trivial[norm] = trivial
    res.seconds[norm] = {TRIVIAL: time.perf_counter() - start}
    res.attacks[norm], res.rechecks[norm] = {}, {}
    specs, skipped = suite(
        adapter, config, norm, num_classes=num_classes, reference=reference, ref_pred=ref_pred, source=source
    )
    res.skipped += skipped
    for spec in specs:
        run = run_attack(spec, model, x, y, res.clean_correct, config, upper=_cascade_bound(res, norm, spec))
        res.attacks[norm][spec.name] = run.result
        res.families[spec.name] = spec.family
        res.seconds[norm][spec.name] = run.seconds
        if run.recheck is not None:
            res.rechecks[norm][spec.name] = run.recheck
        if progress:
            acc = ", ".join(f"{t:g}: {run.result.accuracy_at(t):.1%}" for t in config.thresholds(norm))
            print(f"{res.model} {norm} {spec.name}: {run.seconds:.1f} s, accuracy at {acc}", flush=True)
    _combine(res, norm, trivial)


def _combine(res: ProtocolResult, norm: str, trivial: DistanceResult) -> None:
    """The per-image minimum over every attack and the trivial bound; then the per-attack results
    keep only their distances (the adversarials are big; the combined keeps the best, first k)."""
    combined = attacks.compound(*res.attacks[norm].values(), trivial, name=COMBINED)
    k = min(res.config.keep_adversarials, len(res.labels))
    adv = None if combined.adversarials is None else combined.adversarials[:k]
    sources = ["clean" if not ok else s for s, ok in zip(combined.sources, res.clean_correct.tolist())]
    res.combined[norm] = DistanceResult(COMBINED, norm, combined.distances, adv, sources)
    for name, r in res.attacks[norm].items():
        res.attacks[norm][name] = DistanceResult(name, norm, r.distances)
    res.trivial[norm] = DistanceResult(TRIVIAL, norm, trivial.distances)


# --- sanity flags ------------------------------------------------------------------------------


def _best_of(result: ProtocolResult, norm: str, families: Sequence[str]) -> DistanceResult | None:
    rs = [r for a, r in result.attacks[norm].items() if result.families.get(a) in families]
    return attacks.compound(*rs, name="+".join(r.attack for r in rs)) if rs else None


def sanity_flags(
    result: ProtocolResult,
    *,
    masking_points: float = 0.10,
    failure_accuracy: float = 0.05,
    monotone_tolerance: float = 0.01,
) -> list[Flag]:
    """Warnings in the spirit of AutoAttack's checks, per norm:

    * gradient masking suspected: the gradient-free and transfer attacks break more than
      ``masking_points`` of the images that the gradient attacks leave standing, at some threshold
      (accuracy of the gradient attacks minus that of all attacks);
    * attack failure: accuracy (combined) above ``failure_accuracy`` at the grid's largest epsilon
      (the attacks fail there, or the model really is that robust: look);
    * non-monotone curve: re-attacked at the largest epsilon, more than ``monotone_tolerance`` (of
      all images) of those an epsilon attack fooled at smaller epsilons survive it: its accuracy
      curve, run independently per epsilon, would rise;
    * distance above trivial bound: for some image every attack's distance exceeds the trivial
      bound (the reported distance is then the bound, not an attack's).
    """
    flags: list[Flag] = []
    for norm in result.norms:
        flags += _masking_flag(result, norm, masking_points)
        flags += _failure_flag(result, norm, failure_accuracy)
        flags += _monotone_flags(result, norm, monotone_tolerance)
        flags += _bound_flag(result, norm)
    return flags


def _masking_flag(result: ProtocolResult, norm: str, points: float) -> list[Flag]:
    grad, free = _best_of(result, norm, ("gradient",)), _best_of(result, norm, GRADIENT_FREE)
    if grad is None or free is None:
        return []
    both = attacks.compound(grad, free)
    for t in result.config.thresholds(norm):
        a_grad, a_both = grad.accuracy_at(t), both.accuracy_at(t)
        if a_grad - a_both > points:
            message = (
                f"at {norm} {t:g} the gradient attacks leave {a_grad:.1%}, adding the gradient-free/"
                f"transfer ones ({free.attack}) {a_both:.1%}"
            )
            return [Flag(FLAG_KINDS[0], norm, message)]
    return []


def _failure_flag(result: ProtocolResult, norm: str, accuracy: float) -> list[Flag]:
    eps_max = result.config.grid(norm)[-1]
    acc = result.accuracy_at(norm, eps_max)
    if acc <= accuracy:
        return []
    message = (
        f"accuracy {acc:.1%} at the largest {norm} epsilon {eps_max:g} (> {accuracy:.0%}): the attacks "
        f"fail or the model is robust there"
    )
    return [Flag(FLAG_KINDS[1], norm, message)]


def _monotone_flags(result: ProtocolResult, norm: str, tolerance: float) -> list[Flag]:
    n = len(result.labels)
    return [
        Flag(
            FLAG_KINDS[2],
            norm,
            f"{attack}: {survived} of {checked} images it fooled at smaller epsilons survive it at the largest",
        )
        for attack, (checked, survived) in result.rechecks[norm].items()
        if survived / n > tolerance
    ]


def _bound_flag(result: ProtocolResult, norm: str) -> list[Flag]:
    best, bound = _best_of(result, norm, FAMILIES), result.trivial[norm].distances
    if best is None:
        return []
    above = result.clean_correct & (best.distances > bound + 1e-6)  # (N,)
    if not above.any():
        return []
    message = (
        f"{int(above.sum())} of {len(above)} images: no attack came closer than the trivial bound "
        f"(median bound {bound[above].median().item():.3g})"
    )
    return [Flag(FLAG_KINDS[3], norm, message)]
