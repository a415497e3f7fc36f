"""Distances, robustness summaries and confidence.

Conventions: images in [0, 1]; a per-image minimal adversarial distance is 0 for an image the model
already misclassifies and ``inf`` where no attack found an adversarial. "Accuracy at eps" is the
fraction of images whose minimal distance is larger than eps; the "median" is the distance at which
accuracy falls to 50 % (the ABS paper's convention).
"""

from __future__ import annotations

import math

import torch

NORMS = ("linf", "l2", "l0")


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
    return norm


def distance(a: torch.Tensor, b: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-image distance between two batches (N, ...) -> (N,), in float64.

    L0 counts pixels that differ (over all channels of a pixel position it counts each value).
    """
    check_norm(norm)
    d = (a.detach().to(torch.float64) - b.detach().to(torch.float64)).flatten(1)
    if norm == "linf":
        return d.abs().amax(1) if d.shape[1] else torch.zeros(len(d), dtype=torch.float64)
    if norm == "l2":
        return d.norm(dim=1)
    return (d.abs() > 1e-12).sum(1).to(torch.float64)


def accuracy_at(distances: torch.Tensor, eps: float) -> float:
    """Fraction of images that stay correct for every perturbation of size <= eps."""
    return (distances > eps).to(torch.float64).mean().item()


def accuracy_curve(distances: torch.Tensor, epsilons: torch.Tensor | list[float]) -> torch.Tensor:
    eps = torch.as_tensor(epsilons, dtype=torch.float64)
    return (distances.to(torch.float64)[None, :] > eps[:, None]).to(torch.float64).mean(1)


def median_distance(distances: torch.Tensor) -> float:
    """The distance at which accuracy falls to 50 %: the median of the per-image distances
    (0 for misclassified images, inf where no adversarial was found)."""
    if distances.numel() == 0:
        return math.nan
    s, _ = torch.sort(distances.to(torch.float64))
    n = len(s)
    if n % 2:
        return s[n // 2].item()
    lo, hi = s[n // 2 - 1].item(), s[n // 2].item()
    return hi if math.isinf(hi) else (lo + hi) / 2


def mean_finite(distances: torch.Tensor) -> float:
    """Mean over the images that have a finite (found) adversarial distance."""
    d = distances[torch.isfinite(distances)]
    return d.to(torch.float64).mean().item() if d.numel() else math.nan


def softmax_confidence(scores: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """max_c softmax(beta * scores)_c per image (DAM: beta = beta_sm on the outputs Y)."""
    return torch.softmax(beta * scores.to(torch.float64), dim=1).amax(1)
