"""One batched attack API for every notebook.

Two questions, two functions:

* ``evaluate(model, x, y, attack=..., epsilons=[...])`` -> :class:`AttackResult`: for each epsilon,
  which images the attack fools (robust accuracy vs epsilon).
* ``min_distance(model, x, y, attack=...)`` -> :class:`DistanceResult`: each image's smallest
  adversarial distance found (median perturbation, accuracy-distortion curves). ``compound(...)``
  keeps, per image, the smallest over several attacks ("all attacks").

Attacks (``ATTACKS`` lists them with their norm):

=================  =====  ========  ==================================================================
name               norm   kind      what
=================  =====  ========  ==================================================================
fgsm               linf   eps       foolbox LinfFastGradientAttack (one signed-gradient step)
pgd                linf   eps       foolbox LinfPGD, random start, ``restarts`` independent runs
l2pgd              l2     eps       foolbox L2PGD, random start, ``restarts``
uniform_noise      linf   eps       foolbox LinfRepeatedAdditiveUniformNoiseAttack (``repeats`` draws)
ifgsm              linf   eps       ours: ``steps`` signed steps of eps/steps (Kurakin et al.)
pgd_torch          linf/  eps       ours: PGD with any loss ("ce" or "margin"), per-image eps,
                   l2                 gradients optionally from a surrogate (``grad_model``); success
                                      if any iterate is adversarial (the correct fallback PGD)
boundary           l2     minimal   foolbox BoundaryAttack (decision-based; slow to converge: it
                                      needs thousands of steps on MNIST)
hsja               l2     minimal   foolbox HopSkipJumpAttack (decision-based, query-efficient)
pointwise          l0     minimal   foolbox PointwiseAttack (decision-based)
salt_pepper        l0     minimal   foolbox SaltAndPepperNoiseAttack
gaussian_noise     l2     minimal   ours: line search along ``draws`` Gaussian directions
transfer           l2/    minimal   ours: adversarial direction from a ``source`` model, line search
                   linf               on the target
=================  =====  ========  ==================================================================

Every result is re-checked here, independent of the attack's own bookkeeping: an image counts as
fooled only if the model misclassifies the returned image, it lies in [0, 1] and (for ``eps``
attacks) within epsilon. Models are put in eval mode and restored afterwards.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from .data import check_images, check_labels
from .metrics import accuracy_curve, check_norm, distance, mean_finite, median_distance

TOL = 1e-5  # slack on the epsilon-ball check (float32 rounding of x + delta)


# --- losses ------------------------------------------------------------------------------------


def margin_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image max_{c != y} z_c - z_y (positive iff misclassified): does not saturate like CE."""
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return other - true


def _loss(name: str | Callable) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if callable(name):
        return name
    if name == "ce":
        return lambda z, y: F.cross_entropy(z, y, reduction="none")
    if name == "margin":
        return margin_loss
    raise ValueError(f"unknown loss {name!r}; valid: 'ce', 'margin' or a callable(logits, y) -> (N,)")


def loss_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, loss) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        value = loss(model(x), y).sum()
        (g,) = torch.autograd.grad(value, x)
    return g


@torch.no_grad()
def misclassified(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image: does ``model`` misclassify it? (N,) bool"""
    return model(x).argmax(1) != y


def as_eps(eps: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Scalar or per-image epsilon -> shape (N, 1, 1, ...) broadcastable against x."""
    e = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if e.ndim == 0:
        e = e.expand(len(x))
    return e.reshape(-1, *([1] * (x.ndim - 1)))


# --- our own attacks ---------------------------------------------------------------------------


def ifgsm(model, x, y, eps, *, steps: int = 10, loss="ce", grad_model=None) -> torch.Tensor:
    """Iterative FGSM: ``steps`` signed steps of eps/steps, clipped to [0,1] (stays in the ball)."""
    e = as_eps(eps, x)
    gm, lf = grad_model or model, _loss(loss)
    adv = x.clone()
    for _ in range(steps):
        adv = (adv + e / steps * loss_gradient(gm, adv, y, lf).sign()).clamp(0, 1)
        adv = torch.min(torch.max(adv, x - e), x + e)
    return adv.detach()


def project(delta: torch.Tensor, x: torch.Tensor, e: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        delta = torch.max(torch.min(delta, e), -e)
    else:
        n = delta.flatten(1).norm(dim=1).reshape(e.shape).clamp_min(1e-12)
        delta = delta * torch.clamp(e / n, max=1.0)
    return (x + delta).clamp(0, 1) - x  # box constraint: delta in [-x, 1 - x]


def _logits_and_grad(model, x, y, loss) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        (g,) = torch.autograd.grad(loss(logits, y).sum(), x)
    return logits.detach(), g


def pgd_torch(
    model,
    x,
    y,
    eps,
    *,
    norm: str = "linf",
    steps: int = 40,
    step_size: float | None = None,
    restarts: int = 1,
    random_start: bool = True,
    loss="ce",
    grad_model=None,
) -> torch.Tensor:
    """PGD that is correct by construction: delta stays in the eps-ball and in [-x, 1 - x].

    Returns, per image, the first iterate that fools ``model`` over all restarts (else the last).
    ``step_size`` (absolute) defaults to 2.5 * eps / steps per image (Madry et al.). Without a
    ``grad_model`` the success check reuses the logits of the gradient pass (one forward per step).
    """
    check_norm(norm)
    e = as_eps(eps, x)
    alpha = e * (2.5 / steps) if step_size is None else torch.full_like(e, step_size)
    lf = _loss(loss)
    best = x.clone()
    done = misclassified(model, x, y)

    def record(point: torch.Tensor, logits: torch.Tensor | None) -> None:
        fooled = (logits.argmax(1) != y) if logits is not None else misclassified(model, point, y)
        hit = fooled & ~done
        best[hit] = point[hit]
        done.logical_or_(hit)

    for _ in range(restarts):
        if random_start:
            if norm == "linf":
                delta = (torch.rand_like(x) * 2 - 1) * e
            else:
                r = torch.randn_like(x)
                r = r / r.flatten(1).norm(dim=1).reshape(e.shape).clamp_min(1e-12)
                delta = r * e * torch.rand(len(x), *([1] * (x.ndim - 1)), device=x.device)
            delta = project(delta, x, e, norm)
        else:
            delta = torch.zeros_like(x)
        for _ in range(steps):
            point = x + delta
            if grad_model is None:
                logits, g = _logits_and_grad(model, point, y, lf)
                record(point, logits)  # the iterate reached by the previous step
            else:
                g = loss_gradient(grad_model, point, y, lf)
                record(point, None)
            if done.all():
                return best
            if norm == "linf":
                step = g.sign()
            else:
                step = g / g.flatten(1).norm(dim=1).reshape(e.shape).clamp_min(1e-12)
            delta = project(delta + alpha * step, x, e, norm).detach()
        record(x + delta, None)  # the last iterate
        best[~done] = (x + delta)[~done]
    return best


def madry_pgd(model, x, y, eps: float, *, steps: int, step_size: float | None = None, loss="ce") -> torch.Tensor:
    """Madry et al.'s training adversary (the one used for adversarial training everywhere):
    random start in the L-inf ball, ``steps`` signed-gradient ascent steps of ``step_size``
    (default 2.5 * eps / steps), the *last* iterate (not the first success). Runs in eval mode."""
    e = as_eps(eps, x)
    alpha = 2.5 * eps / steps if step_size is None else step_size
    lf = _loss(loss)
    with _EvalMode(model):
        delta = project((torch.rand_like(x) * 2 - 1) * e, x, e, "linf")
        for _ in range(steps):
            g = loss_gradient(model, x + delta, y, lf)
            delta = project(delta + alpha * g.sign(), x, e, "linf").detach()
    return (x + delta).detach()


def gaussian_noise(
    model,
    x,
    y,
    eps=None,
    *,
    draws: int = 20,
    max_scale: float = 32.0,
    grid: int = 24,
    bisect: int = 10,
    limit: torch.Tensor | None = None,
) -> torch.Tensor:
    """Minimal L2 adversarial along random Gaussian directions (the papers' Gaussian-noise attack).

    For each of ``draws`` unit directions d: find the smallest t with clip(x + t d) misclassified,
    on a geometric grid of t up to ``max_scale`` then by bisection; keep the closest over draws.
    ``limit`` (B,): only adversarials closer than it are looked for (a distance already known;
    inf: none). Each draw's scan also stops beyond the best draw so far; the result is the same
    as scanning every draw to the end.
    """
    best = x.clone()
    best_d = torch.full((len(x),), math.inf, device=x.device, dtype=torch.float64)
    if limit is not None:
        best_d = torch.minimum(best_d, limit.to(best_d))  # beat the known distance, then the best draw
    ts = torch.logspace(math.log10(0.05), math.log10(max_scale), grid, device=x.device, dtype=x.dtype)
    found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for _ in range(draws):
        d = torch.randn_like(x)
        d = d / d.flatten(1).norm(dim=1).reshape(-1, *([1] * (x.ndim - 1)))
        adv, dist = _line_search(model, x, y, d, ts, bisect, limit=best_d)
        better = dist < best_d
        best[better], best_d[better] = adv[better], dist[better]
        found |= better
    best[~found] = x[~found]
    return best


def _line_search(
    model, x, y, d, ts: torch.Tensor, bisect: int, limit: torch.Tensor | None = None, norm: str = "l2"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest t on the grid ``ts`` (then refined by bisection) with clip(x + t d) fooling the
    model; returns (adversarial or x, its L2 distance or inf). ``limit`` (B,): an image leaves the
    grid scan once its last failed point clip(x + t d) is at least that far from x (in ``norm``):
    the clipped distance grows with t, so nothing closer than the limit lies beyond."""
    shape = (-1, *([1] * (x.ndim - 1)))
    hi = torch.full((len(x),), math.inf, device=x.device, dtype=x.dtype)
    lo = torch.zeros(len(x), device=x.device, dtype=x.dtype)
    alive = torch.ones(len(x), dtype=torch.bool, device=x.device)  # still scanning the grid
    for t in ts:
        todo = torch.isinf(hi) & alive
        if limit is not None:  # the last t that failed is already as far as the limit: nothing closer beyond
            last = (x[todo] + lo[todo].reshape(shape) * d[todo]).clamp(0, 1) - x[todo]
            far = distance(last, torch.zeros_like(last), norm).to(limit) >= limit[todo]
            alive[torch.nonzero(todo).flatten()[far]] = False
            todo &= alive
        if not todo.any():
            if not (torch.isinf(hi) & alive).any():
                break
            continue
        fooled = misclassified(model, (x[todo] + t * d[todo]).clamp(0, 1), y[todo])
        idx = torch.nonzero(todo).flatten()
        hi[idx[fooled]] = t
        lo[idx[~fooled]] = t
    found = torch.isfinite(hi)
    for _ in range(bisect):
        if not found.any():
            break
        mid = (lo + hi) / 2
        f = found.clone()
        fooled = misclassified(model, (x[f] + mid[f].reshape(shape) * d[f]).clamp(0, 1), y[f])
        idx = torch.nonzero(f).flatten()
        hi[idx[fooled]] = mid[idx[fooled]]
        lo[idx[~fooled]] = mid[idx[~fooled]]
    adv = x.clone()
    adv[found] = (x[found] + hi[found].reshape(shape) * d[found]).clamp(0, 1)
    dist = torch.full((len(x),), math.inf, device=x.device, dtype=torch.float64)
    dist[found] = distance(adv[found], x[found], "l2").to(x.device)
    return adv, dist


def transfer(
    model,
    x,
    y,
    eps=None,
    *,
    source: torch.nn.Module,
    norm: str = "l2",
    source_attack: str = "pgd_torch",
    source_eps: float | None = None,
    max_scale: float = 64.0,
    grid: int = 32,
    bisect: int = 10,
    steps: int = 20,
    limit: torch.Tensor | None = None,
) -> torch.Tensor:
    """Transfer attack: an adversarial perturbation computed on ``source`` gives the direction; a
    line search along it (grid, then bisection) finds the smallest scale that fools ``model``.
    ``limit`` (B,): distances (in ``norm``) already known; the search does not look beyond them,
    and an image it cannot bring closer comes back unchanged."""
    if source is None:
        raise ValueError("the transfer attack needs source=<a model to take the direction from>")
    check_norm(norm)
    src_eps = source_eps if source_eps is not None else (0.3 if norm == "linf" else 2.0)
    was = source.training
    source.eval()
    try:
        if source_attack == "pgd_torch":
            x_src = pgd_torch(source, x, y, src_eps, norm=norm, steps=steps, loss="ce")
        elif source_attack == "fgsm":
            x_src = (x + src_eps * loss_gradient(source, x, y, _loss("ce")).sign()).clamp(0, 1)
        else:
            raise ValueError(f"unknown source_attack {source_attack!r}; valid: 'pgd_torch', 'fgsm'")
    finally:
        source.train(was)
    d = x_src - x
    n = distance(d, torch.zeros_like(d), norm).to(x.device, x.dtype).clamp_min(1e-12)
    d = d / n.reshape(-1, *([1] * (x.ndim - 1)))  # unit size in the attack norm
    ts = torch.logspace(math.log10(0.01), math.log10(max_scale), grid, device=x.device, dtype=x.dtype)
    adv, _ = _line_search(model, x, y, d, ts, bisect, limit=limit, norm=norm)
    if limit is not None:  # only what beats the known distance
        worse = distance(adv, x, norm).to(limit) >= limit
        adv[worse] = x[worse]
    return adv


# --- foolbox-backed attacks --------------------------------------------------------------------


def _fmodel(model: torch.nn.Module, x: torch.Tensor):
    import foolbox as fb

    return fb.PyTorchModel(model, bounds=(0, 1), device=x.device)


def _fb_fixed(make: Callable[..., Any]) -> Callable[..., torch.Tensor]:
    def run(model, x, y, eps, *, restarts: int = 1, **kw: Any) -> torch.Tensor:  # kw: make's options
        import foolbox as fb

        attack = make(**kw)
        fmodel = _fmodel(model, x)
        best = x.clone()
        done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(restarts):
            _, clipped, _ = attack(fmodel, x, fb.criteria.Misclassification(y), epsilons=float(eps))
            hit = misclassified(model, clipped, y) & ~done
            best[hit] = clipped[hit]
            done |= hit
            if done.all():
                break
        best[~done] = clipped[~done]
        return best

    run.make = make  # type: ignore[attr-defined]
    return run


def _starting_points(model, x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """Adversarial starting points for decision-based attacks: our Gaussian-noise line search,
    then, for images noise cannot flip, the nearest other image of the batch that the model
    assigns to another class (the usual start of decision-based attacks)."""
    start = gaussian_noise(model, x, y, draws=2)
    found = misclassified(model, start, y)
    if not found.all():
        with torch.no_grad():
            pred = model(x).argmax(1)
        d = torch.cdist(x.flatten(1), x.flatten(1))  # (N, N)
        d[pred[None, :] == y[:, None]] = math.inf  # candidates must be classified as another class
        nearest = d.argmin(1)
        usable = ~found & torch.isfinite(d.min(1).values)
        start[usable] = x[nearest[usable]]
        found = misclassified(model, start, y)
    # Walk each start back toward its image: bisection on the blend x + t (start - x), t in [0, 1],
    # so the attack begins next to the decision boundary rather than deep in noise.
    lo = torch.zeros(len(x), device=x.device, dtype=x.dtype)
    hi = torch.ones(len(x), device=x.device, dtype=x.dtype)
    shape = (-1, *([1] * (x.ndim - 1)))
    for _ in range(12):
        mid = (lo + hi) / 2
        fooled = misclassified(model, x + mid.reshape(shape) * (start - x), y)
        hi = torch.where(fooled, mid, hi)
        lo = torch.where(fooled, lo, mid)
    blended = x + hi.reshape(shape) * (start - x)
    start = torch.where(found.reshape(shape), blended, start)
    return start, found


def _fb_minimal(make: Callable[..., Any], needs_start: bool = False) -> Callable[..., torch.Tensor]:
    def run(model, x, y, eps=None, **kw: Any) -> torch.Tensor:
        import foolbox as fb

        attack = make(**kw)
        with warnings.catch_warnings():  # foolbox warns when its init attack misses some images
            warnings.simplefilter("ignore", UserWarning)
            if not needs_start:
                return attack.run(_fmodel(model, x), x, fb.criteria.Misclassification(y))
            # Decision-based attacks refine an adversarial starting point; foolbox raises when its
            # own init attack misses an image, so we find starts first and run on those that have one.
            start, found = _starting_points(model, x, y)
            out = x.clone()
            if found.any():
                out[found] = attack.run(
                    _fmodel(model, x[found]),
                    x[found],
                    fb.criteria.Misclassification(y[found]),
                    starting_points=start[found],
                )
            return out

    run.make = make  # type: ignore[attr-defined]  (its options are the attack's: see AttackInfo)
    return run


def _make_fgsm():
    import foolbox as fb

    return fb.attacks.LinfFastGradientAttack(random_start=False)


def _make_pgd(*, steps: int = 40, rel_stepsize: float | None = None):
    import foolbox as fb  # step 2.5 * eps / steps (Madry et al.) unless given

    return fb.attacks.LinfPGD(steps=steps, rel_stepsize=rel_stepsize or 2.5 / steps, random_start=True)


def _make_l2pgd(*, steps: int = 50, rel_stepsize: float | None = None):
    import foolbox as fb

    return fb.attacks.L2PGD(steps=steps, rel_stepsize=rel_stepsize or 2.5 / steps, random_start=True)


def _make_uniform(*, repeats: int = 20):
    import foolbox as fb

    return fb.attacks.LinfRepeatedAdditiveUniformNoiseAttack(repeats=repeats)


def _make_boundary(*, steps: int = 1000, spherical_step: float = 0.01, source_step: float = 0.01):
    import foolbox as fb

    return fb.attacks.BoundaryAttack(steps=steps, spherical_step=spherical_step, source_step=source_step)


def _make_hsja(*, steps: int = 32, initial_gradient_eval_steps: int = 100):
    import foolbox as fb

    return fb.attacks.HopSkipJumpAttack(steps=steps, initial_gradient_eval_steps=initial_gradient_eval_steps)


def _make_pointwise():
    import foolbox as fb

    return fb.attacks.PointwiseAttack(l2_binary_search=False)


def _make_salt_pepper(*, steps: int = 1000):
    import foolbox as fb

    return fb.attacks.SaltAndPepperNoiseAttack(steps=steps)


# --- the registry ------------------------------------------------------------------------------


def _keyword_options(fn: Callable[..., Any]) -> tuple[str, ...]:
    """The keyword-only options of an attack callable (foolbox wrappers: their factory's)."""
    params = inspect.signature(fn).parameters.values()
    own = tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)
    make = getattr(fn, "make", None)
    return own + (_keyword_options(make) if make is not None else ())


@dataclass(frozen=True)
class AttackInfo:
    """One registered attack. ``run(model, x, y, eps, **options)`` returns adversarials (N, ...);
    ``options`` are the keyword options it takes (an unknown one is a ``TypeError``)."""

    name: str
    norm: str  # the norm the attack bounds (eps) or minimises; "any" when chosen by a keyword
    minimal: bool  # True: returns minimal adversarials itself (no epsilon)
    run: Callable[..., torch.Tensor] = field(repr=False)
    options: tuple[str, ...] = ()  # filled from run's keyword-only parameters when empty

    def __post_init__(self) -> None:
        if not self.options:
            object.__setattr__(self, "options", _keyword_options(self.run))

    def check_options(self, kwargs: dict[str, Any]) -> None:
        unknown = sorted(set(kwargs) - set(self.options))
        if unknown:
            valid = ", ".join(self.options) or "none"
            raise TypeError(f"attack {self.name!r} got unknown option(s) {', '.join(unknown)}; valid: {valid}")


ATTACKS: dict[str, AttackInfo] = {}


def register(info: AttackInfo) -> AttackInfo:
    """Add an attack to the one registry (the papers' own attacks register from their folders)."""
    if info.norm not in ("linf", "l2", "l0", "any"):
        raise ValueError(f"attack {info.name!r}: norm must be 'linf', 'l2', 'l0' or 'any', got {info.norm!r}")
    if info.name in ATTACKS and ATTACKS[info.name].run is not info.run:
        raise ValueError(f"attack {info.name!r} is already registered")
    ATTACKS[info.name] = info
    return info


for _info in [
    AttackInfo("fgsm", "linf", False, _fb_fixed(_make_fgsm)),
    AttackInfo("pgd", "linf", False, _fb_fixed(_make_pgd)),
    AttackInfo("l2pgd", "l2", False, _fb_fixed(_make_l2pgd)),
    AttackInfo("uniform_noise", "linf", False, _fb_fixed(_make_uniform)),
    AttackInfo("ifgsm", "linf", False, ifgsm),
    AttackInfo("pgd_torch", "any", False, pgd_torch),
    AttackInfo("boundary", "l2", True, _fb_minimal(_make_boundary, needs_start=True)),
    AttackInfo("hsja", "l2", True, _fb_minimal(_make_hsja, needs_start=True)),
    AttackInfo("pointwise", "l0", True, _fb_minimal(_make_pointwise, needs_start=True)),
    AttackInfo("salt_pepper", "l0", True, _fb_minimal(_make_salt_pepper)),
    AttackInfo("gaussian_noise", "l2", True, gaussian_noise),
    AttackInfo("transfer", "any", True, transfer),
]:
    register(_info)


def get_attack(name: str) -> AttackInfo:
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; valid: {', '.join(ATTACKS)}")
    return ATTACKS[name]


def attack_norm(name: str, kwargs: dict[str, Any]) -> str:
    info = get_attack(name)
    return check_norm(kwargs.get("norm", "linf" if name == "pgd_torch" else "l2")) if info.norm == "any" else info.norm


# --- results -----------------------------------------------------------------------------------


@dataclass
class AttackResult:
    """Per-epsilon success of one attack. ``success[e, i]``: image i is misclassified within eps e
    (clean misclassifications count as successes at every epsilon)."""

    attack: str
    norm: str
    epsilons: list[float]
    success: torch.Tensor  # (E, N) bool
    clean_correct: torch.Tensor  # (N,) bool
    adversarials: torch.Tensor | None = None  # (E, N, C, H, W) or None

    @property
    def robust_accuracy(self) -> torch.Tensor:
        return 1.0 - self.success.to(torch.float64).mean(1)

    def accuracy(self, eps: float) -> float:
        return self.robust_accuracy[self.epsilons.index(eps)].item()

    def to_dict(self) -> dict[str, Any]:
        d = {
            "attack": self.attack,
            "norm": self.norm,
            "epsilons": list(self.epsilons),
            "success": self.success.to(torch.uint8),
            "clean_correct": self.clean_correct.to(torch.uint8),
        }
        if self.adversarials is not None:
            d["adversarials"] = self.adversarials
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AttackResult:
        return cls(
            d["attack"],
            d["norm"],
            list(d["epsilons"]),
            d["success"].bool(),
            d["clean_correct"].bool(),
            d.get("adversarials"),
        )


@dataclass
class DistanceResult:
    """Per-image smallest adversarial distance found (0: misclassified clean, inf: none found)."""

    attack: str
    norm: str
    distances: torch.Tensor  # (N,) float64
    adversarials: torch.Tensor | None = None  # (N, C, H, W): the adversarial (or x where none)
    sources: list[str] | None = None  # per image, which attack gave the minimum (compound)

    def accuracy_at(self, eps: float) -> float:
        return (self.distances > eps).to(torch.float64).mean().item()

    def curve(self, epsilons: Sequence[float]) -> torch.Tensor:
        return accuracy_curve(self.distances, list(epsilons))

    def median(self) -> float:
        return median_distance(self.distances)

    def mean(self) -> float:
        return mean_finite(self.distances)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"attack": self.attack, "norm": self.norm, "distances": self.distances}
        if self.adversarials is not None:
            d["adversarials"] = self.adversarials
        if self.sources is not None:
            d["sources"] = self.sources
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DistanceResult:
        return cls(d["attack"], d["norm"], d["distances"], d.get("adversarials"), d.get("sources"))


# --- the batched drivers -----------------------------------------------------------------------


def _check_model_input(model: torch.nn.Module, x: torch.Tensor) -> None:
    """One image through the model: a wrong image shape becomes a clear ``ValueError``."""
    tensors = [*model.parameters(), *model.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    try:
        with torch.no_grad(), _EvalMode(model):  # eval: batch norm in training mode rejects one image
            out = model(x[:1].to(device))
    except RuntimeError as err:
        raise ValueError(f"the model cannot take images of shape {tuple(x.shape[1:])}: {err}") from None
    if out.ndim != 2 or out.shape[0] != 1:
        raise ValueError(
            f"the model must return logits of shape (N, classes), got {tuple(out.shape)} "
            f"for images of shape {tuple(x.shape[1:])}"
        )


def _validate(model, x, y, epsilons: Sequence[float] | None) -> list[float] | None:
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_images(x)
    if len(x) == 0:
        raise ValueError("no images to attack (empty batch)")
    check_labels(y, len(x))
    _check_model_input(model, x)
    if epsilons is None:
        return None
    eps = [float(e) for e in epsilons]
    if not eps:
        raise ValueError("epsilons must not be empty")
    for e in eps:
        if not math.isfinite(e) or e < 0:
            raise ValueError(f"epsilon must be a finite number >= 0, got {e}")
    return eps


class _EvalMode:
    def __init__(self, *models: torch.nn.Module | None):
        self.models = [m for m in models if m is not None]

    def __enter__(self):
        self.flags = [m.training for m in self.models]
        for m in self.models:
            m.eval()

    def __exit__(self, *exc):
        for m, f in zip(self.models, self.flags):
            m.train(f)


def _batches(n: int, batch_size: int):
    for i in range(0, n, batch_size):
        yield slice(i, min(i + batch_size, n))


def evaluate(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    attack: str,
    epsilons: Sequence[float],
    batch_size: int = 250,
    device: str | torch.device = "cpu",
    seed: int = 0,
    keep_adversarials: bool = False,
    monotone: bool = True,
    progress: bool = False,
    **kwargs: Any,
) -> AttackResult:
    """Which images ``attack`` fools at each epsilon (robust accuracy vs epsilon).

    ``monotone``: an image fooled at a smaller epsilon counts as fooled at every larger one (its
    adversarial lies in the larger ball) and is not attacked again: the accuracy curve is then the
    attack's best over the grid, at a fraction of the cost. Minimal attacks (boundary, noise line
    search, transfer, ...) run once; success at eps means their distance is <= eps.
    Extra keyword arguments go to the attack (steps, restarts, loss, source, norm, ...).
    """
    eps = _validate(model, x, y, epsilons)
    info = get_attack(attack)
    info.check_options(kwargs)
    norm = attack_norm(attack, kwargs)
    device = torch.device(device)
    if info.minimal:
        res = min_distance(
            model, x, y, attack=attack, batch_size=batch_size, device=device, seed=seed, progress=progress, **kwargs
        )
        success = torch.stack([res.distances <= e + TOL for e in eps])
        clean = res.distances > 0
        adv = None
        if keep_adversarials:
            adv = torch.stack(
                [torch.where(s.reshape(-1, *[1] * (x.ndim - 1)), res.adversarials, x.cpu()) for s in success]
            )
        return AttackResult(attack, norm, eps, success, clean, adv)

    order = sorted(range(len(eps)), key=lambda i: eps[i])
    success = torch.zeros(len(eps), len(x), dtype=torch.bool)
    advs = torch.empty(len(eps), *x.shape, dtype=x.dtype) if keep_adversarials else None
    model.to(device)
    with _EvalMode(model, kwargs.get("grad_model")):
        clean = torch.cat(
            [~misclassified(model, x[s].to(device), y[s].to(device)).cpu() for s in _batches(len(x), batch_size)]
        )
        fooled = ~clean
        last_adv = x.clone()
        for rank, i in enumerate(order):
            e = eps[i]
            todo = torch.nonzero(~fooled).flatten() if (monotone or e == 0) else torch.arange(len(x))
            hit_now = torch.zeros(len(x), dtype=torch.bool)
            if e > 0 and len(todo):
                for b, s in enumerate(_batches(len(todo), batch_size)):
                    idx = todo[s]
                    xb, yb = x[idx].to(device), y[idx].to(device)
                    torch.manual_seed(seed * 100_003 + rank * 1_009 + b)
                    xa = info.run(model, xb, yb, e, **kwargs).detach()
                    ok = misclassified(model, xa, yb) & (distance(xa, xb, norm).to(device) <= e + TOL)
                    ok &= (xa.flatten(1).amin(1) >= 0) & (xa.flatten(1).amax(1) <= 1)
                    ok = ok.cpu()
                    hit_now[idx[ok]] = True
                    last_adv[idx[ok]] = xa[ok].cpu().to(x.dtype)
            fooled = fooled | hit_now if monotone else (~clean | hit_now)
            success[i] = fooled
            if advs is not None:
                advs[i] = torch.where(fooled.reshape(-1, *[1] * (x.ndim - 1)), last_adv, x)
    return AttackResult(attack, norm, eps, success, clean, advs)


def min_distance(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    attack: str,
    epsilons: Sequence[float] | None = None,
    batch_size: int = 250,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = False,
    **kwargs: Any,
) -> DistanceResult:
    """Each image's smallest adversarial distance found by ``attack``, in the attack's norm.

    Minimal attacks return it directly. Epsilon attacks (fgsm, pgd, ...) are run over the grid
    ``epsilons`` (required for them) and each image gets the measured distance of the adversarial
    found at the smallest grid epsilon: an upper bound on its true minimal distance.
    """
    _validate(model, x, y, epsilons)
    info = get_attack(attack)
    info.check_options(kwargs)
    norm = attack_norm(attack, kwargs)
    device = torch.device(device)
    if not info.minimal:
        if epsilons is None:
            raise ValueError(f"attack {attack!r} needs an epsilon grid: min_distance(..., epsilons=[...])")
        res = evaluate(
            model,
            x,
            y,
            attack=attack,
            epsilons=epsilons,
            batch_size=batch_size,
            device=device,
            seed=seed,
            keep_adversarials=True,
            **kwargs,
        )
        order = sorted(range(len(res.epsilons)), key=lambda i: res.epsilons[i])
        dist = torch.full((len(x),), math.inf, dtype=torch.float64)
        adv = x.clone()
        for i in reversed(order):  # smallest epsilon last: it wins
            s = res.success[i]
            adv[s] = res.adversarials[i][s]
            # measured size, capped at the grid epsilon it was verified against (float32 rounding
            # can put x + delta a hair outside; evaluate allowed TOL for that)
            dist[s] = distance(res.adversarials[i][s], x[s], norm).clamp(max=res.epsilons[i])
        dist[~res.clean_correct] = 0.0
        adv[~res.clean_correct] = x[~res.clean_correct]
        return DistanceResult(attack, norm, dist, adv)

    model.to(device)
    dist = torch.full((len(x),), math.inf, dtype=torch.float64)
    adv = x.clone()
    with _EvalMode(model, kwargs.get("source"), kwargs.get("grad_model")):
        if "source" in kwargs and kwargs["source"] is not None:
            kwargs["source"].to(device)
        for b, s in enumerate(_batches(len(x), batch_size)):
            xb, yb = x[s].to(device), y[s].to(device)
            clean_wrong = misclassified(model, xb, yb).cpu()
            todo = torch.nonzero(~clean_wrong).flatten()
            dist[s][clean_wrong] = 0.0
            if len(todo):
                torch.manual_seed(seed * 100_003 + b)
                xa = info.run(model, xb[todo], yb[todo], None, **kwargs).detach()
                ok = (
                    misclassified(model, xa, yb[todo]) & (xa.flatten(1).amin(1) >= 0) & (xa.flatten(1).amax(1) <= 1)
                ).cpu()
                d = distance(xa.cpu(), xb[todo].cpu(), norm)
                sel = s.start + todo[ok]
                dist[sel] = d[ok]
                adv[sel] = xa[ok].cpu().to(x.dtype)
            if progress:
                print(f"{attack}: {s.stop}/{len(x)}", flush=True)
    return DistanceResult(attack, norm, dist, adv)


def compound(*results: DistanceResult, name: str = "all") -> DistanceResult:
    """Per image, the smallest distance over several attacks of the same norm."""
    if not results:
        raise ValueError("compound needs at least one DistanceResult")
    norms = {r.norm for r in results}
    if len(norms) != 1:
        raise ValueError(f"compound needs results of one norm, got {sorted(norms)}")
    n = len(results[0].distances)
    if any(len(r.distances) != n for r in results):
        raise ValueError("compound needs results on the same images")
    stacked = torch.stack([r.distances for r in results])  # (A, N)
    best, which = stacked.min(0)
    adv = None
    if all(r.adversarials is not None for r in results):
        # Stored results may keep adversarials for the first images only: combine those.
        k = min(len(r.adversarials) for r in results)
        advs = torch.stack([r.adversarials[:k] for r in results])  # (A, k, ...)
        adv = advs[which[:k], torch.arange(k)]
    sources = [results[int(w)].attack if math.isfinite(b) else "none" for w, b in zip(which, best.tolist())]
    return DistanceResult(name, norms.pop(), best, adv, sources)
