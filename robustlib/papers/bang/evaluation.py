"""BANG's evaluation protocol: FGS and hot/cold (HC1) line searches in grey levels, PASS and
L-inf of the adversarials, blank-gradient bookkeeping, the masking check, and the random-noise
flip rates of Figs. 3 and 5.

Pixel units. Models take images in [0, 1]; the paper works on integer grey levels 0..255. A line
search walks x_k = clip(round(255 x + k * s * d), 0, 255) / 255 for k = 1, 2, ..., max_steps and
succeeds at the first k whose image is misclassified ("success if any point on the line is
misclassified"; the only constraint is the pixel range). L-inf is reported in grey levels
(divide by 255 for [0, 1] units).

* FGS: d = sign(grad_x CE(f(x), y)) (Goodfellow et al.), s = 1 grey level per step (the paper
  does not state the step; we assume one grey level); L-inf = k unless pixels clip. An all-zero
  gradient ("blank gradient", float32 softmax saturation) gives no direction: a failure, counted
  separately.
* HC1 (hot/cold toward the most similar class, Rozsa, Rudd & Boult 2016; the paper does not
  restate its details, this is our reading): at the logits put +1 on the hot class (the runner-up
  of the clean image) and -1 on the cold (true) class, back-propagate: d = grad_x (z_hot - z_cold),
  scaled so max |d| = 1; the largest pixel moves one grey level per step, the others
  proportionally (then rounded).

Both line searches find each image's smallest perturbation along their line, so they are
registered in the one attack registry as *minimal* L-inf attacks, ``bang_fgs`` and ``bang_hc1``:
``attacks.min_distance(model, x, y, attack="bang_fgs")`` gives the per-image distances in [0, 1]
units, comparable with every other attack. ``attack(...)`` below runs the paper's full Table 1
bookkeeping (blank gradients, steps, PASS) on the same line search.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ... import attacks, metrics

DirectionFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def to_grey(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> integer grey levels 0..255 (as float)."""
    return torch.round(x * 255.0)


def from_grey(g: torch.Tensor) -> torch.Tensor:
    return g / 255.0


# --- attack directions -------------------------------------------------------------------------


def _input_grad(model: nn.Module, x: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (g,) = torch.autograd.grad(objective(model(x)).sum(), x)
    return g


def fgs_direction(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, loss: str = "ce", dtype: torch.dtype | None = None
) -> torch.Tensor:
    """sign of the input gradient of the loss (N, C, H, W) with values -1, 0, 1.

    ``loss="ce"`` is the paper's FGS (float32 cross-entropy: saturates); ``"margin"`` uses
    max_{c != y} z_c - z_y, whose gradient never vanishes through a saturated softmax.
    ``dtype=torch.float64`` evaluates a float64 copy of the model (the other masking check).
    """
    if loss not in ("ce", "margin"):
        raise ValueError(f"unknown FGS loss {loss!r}; valid: 'ce', 'margin'")
    m, xx = model, x
    if dtype is not None and dtype != x.dtype:
        import copy

        m, xx = copy.deepcopy(model).to(dtype), x.to(dtype)
    if loss == "ce":
        g = _input_grad(m, xx, lambda z: F.cross_entropy(z, y, reduction="none"))
    else:
        g = _input_grad(m, xx, lambda z: attacks.margin_loss(z, y))
    return torch.sign(g).to(x.dtype)


def hc1_direction(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Hot/cold direction toward the runner-up class, scaled to max |d| = 1 per image (0 if blank)."""
    with torch.no_grad():
        z = model(x)
    hot = z.masked_fill(F.one_hot(y, z.shape[1]).bool(), float("-inf")).argmax(1)  # (N,)
    g = _input_grad(model, x, lambda z: z.gather(1, hot[:, None]).squeeze(1) - z.gather(1, y[:, None]).squeeze(1))
    peak = g.flatten(1).abs().amax(1).reshape(-1, *([1] * (x.ndim - 1)))
    return torch.where(peak > 0, g / peak.clamp_min(1e-45), torch.zeros_like(g))


# --- the line search ---------------------------------------------------------------------------


@dataclass
class LineSearchResult:
    """Per image: which images were attacked (clean-correct), which succeeded, at which step,
    which had a blank (all-zero) direction, L-inf in grey levels, PASS of the adversarial."""

    method: str
    clean_correct: torch.Tensor  # (N,) bool
    success: torch.Tensor  # (N,) bool (False for images not attacked)
    steps: torch.Tensor  # (N,) int: first misclassifying step, 0 if none
    blank: torch.Tensor  # (N,) bool: the direction was all zeros
    linf: torch.Tensor  # (N,) float: grey levels (0 where no success)
    pass_score: torch.Tensor  # (N,) float64 (nan where no success)
    adversarials: torch.Tensor | None = None  # (N, C, H, W) in [0, 1] (x where no success)

    def summary(self) -> dict[str, float]:
        """The paper's columns: rate over clean-correct images; PASS and L-inf mean/std over successes."""
        n = int(self.clean_correct.sum())
        s = self.success
        fails = self.clean_correct & ~s
        out = {
            "attacked": n,
            "successes": int(s.sum()),
            "rate": s.sum().item() / n if n else math.nan,
            "blank": int((self.blank & self.clean_correct).sum()),
            "failures": int(fails.sum()),
            "blank_failures": int((fails & self.blank).sum()),
        }
        for name, v in (("pass", self.pass_score[s].to(torch.float64)), ("linf", self.linf[s].to(torch.float64))):
            out[f"{name}_mean"] = v.mean().item() if len(v) else math.nan
            out[f"{name}_std"] = v.std(unbiased=False).item() if len(v) > 1 else math.nan
        return out

    def distances(self) -> torch.Tensor:
        """Per-image L-inf in [0, 1] units as a minimal-distance vector (0: misclassified clean,
        inf: no success): comparable with ``robustlib.attacks.DistanceResult``."""
        d = torch.full(self.success.shape, math.inf, dtype=torch.float64)
        d[~self.clean_correct] = 0.0
        d[self.success] = self.linf[self.success].to(torch.float64) / 255.0
        return d

    def to_dict(self, keep_adversarials: int = 0) -> dict[str, Any]:
        d = {
            "method": self.method,
            "clean_correct": self.clean_correct.to(torch.uint8),
            "success": self.success.to(torch.uint8),
            "steps": self.steps.to(torch.int32),
            "blank": self.blank.to(torch.uint8),
            "linf": self.linf.to(torch.float32),
            "pass_score": self.pass_score.to(torch.float32),
        }
        if keep_adversarials and self.adversarials is not None:
            d["adversarials"] = self.adversarials[:keep_adversarials].clone()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LineSearchResult:
        return cls(
            d["method"],
            d["clean_correct"].bool(),
            d["success"].bool(),
            d["steps"].long(),
            d["blank"].bool(),
            d["linf"].float(),
            d["pass_score"].double(),
            d.get("adversarials"),
        )


@torch.no_grad()
def line_search(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    direction: torch.Tensor,
    *,
    step: float = 1.0,
    max_steps: int = 255,
    active: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Walk x_k = clip(round(255 x + k step d), 0, 255)/255, k = 1..max_steps, per image.

    Returns (first misclassifying k per image, 0 if none; the image at that k, x if none).
    Only images with ``active`` (default: all) and a non-zero direction are walked.
    """
    if max_steps < 1 or not step > 0:
        raise ValueError(f"max_steps ({max_steps}) must be >= 1 and step ({step}) > 0")
    grey = to_grey(x)
    first = torch.zeros(len(x), dtype=torch.long, device=x.device)
    adv = x.clone()
    todo = (direction.flatten(1) != 0).any(1)
    if active is not None:
        todo &= active.to(x.device)
    idx = torch.nonzero(todo).flatten()
    for k in range(1, max_steps + 1):
        if len(idx) == 0:
            break
        xk = from_grey((grey[idx] + torch.round(k * step * direction[idx])).clamp(0, 255))
        hit = model(xk).argmax(1) != y[idx]
        first[idx[hit]] = k
        adv[idx[hit]] = xk[hit]
        idx = idx[~hit]
    return first, adv


# --- the two line searches as registered minimal attacks ----------------------------------------


def fgs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: None = None,
    *,
    max_steps: int = 255,
    loss: str = "ce",
    float64: bool = False,
) -> torch.Tensor:
    """The paper's FGS as a minimal L-inf attack: the first misclassified image along
    sign(grad_x loss), one grey level per step (x itself where the line has none, e.g. a blank
    gradient). ``loss="margin"`` and ``float64=True`` are the masking check's directions."""
    d = fgs_direction(model, x, y, loss=loss, dtype=torch.float64 if float64 else None)
    return line_search(model, x, y, d, max_steps=max_steps)[1]


def hc1(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: None = None, *, max_steps: int = 255) -> torch.Tensor:
    """HC1 as a minimal L-inf attack: the first misclassified image along the hot/cold direction
    (x itself where the line has none)."""
    return line_search(model, x, y, hc1_direction(model, x, y), max_steps=max_steps)[1]


attacks.register(attacks.AttackInfo("bang_fgs", "linf", True, fgs))
attacks.register(attacks.AttackInfo("bang_hc1", "linf", True, hc1))


def attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    method: str,
    max_steps: int = 255,
    batch_size: int = 1000,
    device: str | torch.device = "cpu",
    with_pass: bool = True,
    keep_adversarials: bool = False,
) -> LineSearchResult:
    """Run FGS (``method="fgs"``, also ``"fgs-margin"``, ``"fgs-float64"``) or HC1 (``"hc1"``) on
    every clean-correct image of (x, y) (x in [0, 1], on the grey-level grid), then PASS on the
    successes. Batched; the model is put in eval mode and restored."""
    directions: dict[str, DirectionFn] = {
        "fgs": lambda m, a, b: fgs_direction(m, a, b),
        "fgs-margin": lambda m, a, b: fgs_direction(m, a, b, loss="margin"),
        "fgs-float64": lambda m, a, b: fgs_direction(m, a, b, dtype=torch.float64),
        "hc1": hc1_direction,
    }
    if method not in directions:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(directions)}")
    was = model.training
    model.eval().to(device)
    n = len(x)
    correct = torch.zeros(n, dtype=torch.bool)
    first = torch.zeros(n, dtype=torch.long)
    blank = torch.zeros(n, dtype=torch.bool)
    advs = x.clone()
    try:
        for s in range(0, n, batch_size):
            xb, yb = x[s : s + batch_size].to(device), y[s : s + batch_size].to(device)
            with torch.no_grad():
                ok = model(xb).argmax(1) == yb
            d = directions[method](model, xb, yb)
            blank_b = (d.flatten(1) == 0).all(1)
            k, a = line_search(model, xb, yb, d, max_steps=max_steps, active=ok)
            correct[s : s + len(xb)], first[s : s + len(xb)] = ok.cpu(), k.cpu()
            blank[s : s + len(xb)], advs[s : s + len(xb)] = blank_b.cpu(), a.cpu()
    finally:
        model.train(was)
    success = correct & (first > 0)
    linf = torch.zeros(n)
    linf[success] = (to_grey(advs[success]) - to_grey(x[success])).abs().flatten(1).amax(1)
    pas = torch.full((n,), math.nan, dtype=torch.float64)
    if with_pass and success.any():
        pas[success] = metrics.pass_scores(advs[success], x[success])
    return LineSearchResult(method, correct, success, first, blank, linf, pas, advs if keep_adversarials else None)


def masking_check(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    fgs: LineSearchResult,
    *,
    max_steps: int = 255,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """Re-run FGS on the images where the paper's FGS failed with a blank gradient, with
    directions that do not saturate (logit margin, float64 cross-entropy); count the successes."""
    sel = torch.nonzero(fgs.clean_correct & ~fgs.success & fgs.blank).flatten()
    out: dict[str, float] = {"blank_failures": len(sel)}
    for method in ("fgs-margin", "fgs-float64"):
        if len(sel) == 0:
            out[f"{method}_successes"] = 0
            out[f"{method}_linf_mean"] = math.nan
            continue
        r = attack(model, x[sel], y[sel], method=method, max_steps=max_steps, device=device, with_pass=False)
        out[f"{method}_successes"] = int(r.success.sum())
        out[f"{method}_blank"] = int(r.blank.sum())
        out[f"{method}_linf_mean"] = r.linf[r.success].mean().item() if r.success.any() else math.nan
    return out


# --- random-noise robustness (Figs. 3, 5) ------------------------------------------------------


@torch.no_grad()
def noise_flip_rates(
    predict: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    sigmas: Sequence[float],
    *,
    draws: int,
    seed: int = 0,
    batch_images: int = 1000,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Fraction of Gaussian-noise copies whose label differs from ``y`` (the clean prediction).

    ``predict(images) -> labels (M, n)`` for M models at once (e.g. all training snapshots in one
    ``LeNetStack``; a single model returns (n,)). For each sigma (grey levels) and draw, the
    noisy copy is clip(round(255 x + sigma z), 0, 255) / 255 (the paper does not say how noise is
    rounded or clipped; we assume this); every model sees the
    same draws (common random numbers). Returns (M, S) flip fractions.
    """
    x, y_cpu = x.to(device), y.cpu()
    n = len(x)
    counts = None
    per = max(1, batch_images // max(n, 1))  # draws per forward pass
    grey = to_grey(x)
    for j, sigma in enumerate(sigmas):
        g = torch.Generator(device=device).manual_seed(seed * 1_000_003 + j)
        done = 0
        while done < draws:
            m = min(per, draws - done)
            # one randn call per draw: the noise does not depend on how draws are batched
            z = torch.stack([torch.randn(x.shape, generator=g, device=device) for _ in range(m)])
            noisy = from_grey((grey[None] + torch.round(sigma * z)).clamp(0, 255)).reshape(m * n, *x.shape[1:])
            pred = predict(noisy).cpu()
            pred = pred[None] if pred.dim() == 1 else pred  # (M, m*n)
            flips = (pred != y_cpu.repeat(m)[None]).sum(1).to(torch.float64)
            if counts is None:
                counts = torch.zeros(pred.shape[0], len(sigmas), dtype=torch.float64)
            counts[:, j] += flips
            done += m
    return counts / (n * draws)


def select_per_class(correct_all: torch.Tensor, y: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """Indices of up to ``per_class`` images of each class with ``correct_all`` True, in a
    seeded random order (the paper: 100 test images per class correct at every checkpoint)."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g)
    chosen = []
    for c in torch.unique(y).tolist():
        idx = order[(y[order] == c) & correct_all[order]]
        chosen.append(idx[:per_class])
    return torch.sort(torch.cat(chosen)).values
