"""The baselines chapter's tables and image grid, built from the steps' results."""

from __future__ import annotations

import torch

from ... import plots, report
from .claims import ABS_RELEASED
from .experiments import NETWORKS, PerAttack, epochs
from .profile import BaselinesProfile

Distances = dict[str, object]  # model -> attacks.DistanceResult


def clean_rows(prof: BaselinesProfile, clean: dict[str, float]) -> list[dict[str, str]]:
    """Epochs and clean test accuracy per model."""
    return [
        {
            "model": m,
            "epochs": str(epochs(prof, m)) if m in NETWORKS else "-",
            "clean test accuracy": report.fmt(acc, 3, pct=True),
        }
        for m, acc in clean.items()
    ]


def abs_rows(clean: dict[str, float], all_l2: Distances, all_linf: Distances) -> list[dict[str, str]]:
    """Median minimal perturbation and accuracy at the ABS thresholds, ours beside the ABS authors'
    released values for their CNN and nearest neighbour ("—" where they have no such model)."""
    rows = []
    for m in clean:
        theirs = ABS_RELEASED.get(m)
        rows.append(
            {
                "model": m,
                "clean acc": report.fmt(clean[m], 3, pct=True),
                "L2 median (ours)": report.fmt(all_l2[m].median()),
                "L2 median (ABS paper)": f"{theirs.l2_median:.2f} ({theirs.model})" if theirs else "—",
                "acc @ L2 1.5 (ours)": report.fmt(all_l2[m].accuracy_at(1.5), 2, pct=True),
                "acc @ L2 1.5 (ABS paper)": f"{100 * theirs.l2_acc:.0f} %" if theirs else "—",
                "L∞ median (ours)": report.fmt(all_linf[m].median(), 3),
                "L∞ median (ABS paper)": f"{theirs.linf_median:.3f}" if theirs else "—",
                "acc @ L∞ 0.3 (ours)": report.fmt(all_linf[m].accuracy_at(0.3), 2, pct=True),
                "acc @ L∞ 0.3 (ABS paper)": f"{100 * theirs.linf_acc:.0f} %" if theirs else "—",
            }
        )
    return rows


def per_attack_rows(linf: dict[str, PerAttack], l2: dict[str, PerAttack]) -> list[dict[str, str]]:
    """Median minimal perturbation per model and attack (L∞ attacks, then L2 attacks)."""
    labels = list(dict.fromkeys(k for per in (linf, l2) for m in per for k in per[m]))
    rows = []
    for m in linf:
        found = {**linf[m], **l2[m]}
        medians = {f"{k} median": report.fmt(found[k].median(), 3) if k in found else "not run" for k in labels}
        rows.append({"model": m, **medians})
    return rows


def adversarial_grid(x: torch.Tensor, y: torch.Tensor, smallest: Distances, n: int = 6):
    """The first ``n`` images and, per model, their smallest adversarial with its distance."""
    n = min(n, len(x), *(len(smallest[m].adversarials) for m in smallest))
    images = torch.cat([x[:n], *(smallest[m].adversarials[:n] for m in smallest)])
    titles = [f"{int(label)}" for label in y[:n]]
    for m in smallest:
        titles += [f"L2={d:.2f}" for d in smallest[m].distances[:n].tolist()]
    return plots.image_grid(images, titles=titles, ncols=n, row_labels=["clean", *smallest])
