"""Tables and figures of the ABS chapter (the chapter shows; this module lays out)."""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from ... import plots
from ...attacks import DistanceResult
from ...report import NOT_AVAILABLE, fmt
from . import model as abs_model
from .claims import PAPER, PAPER_ABS_L2_ATTACKS, PAPER_CLEAN, THRESHOLDS

UNITS = {"l2": "L2", "linf": "L∞", "l0": "L0"}


def training_curves(history: list[dict]) -> plt.Figure:
    """The VAEs' reconstruction and KL terms per epoch, and the annealed KL weight."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    epochs = [r["epoch"] for r in history]
    plots.curves(
        epochs,
        {"reconstruction": [r["rec"] for r in history], "KL": [r["kl"] for r in history]},
        xlabel="epoch",
        ylabel="per image and class",
        title="VAE training losses",
        ax=axes[0],
    )
    plots.curves(
        epochs,
        {"KL weight β": [r["beta"] for r in history]},
        xlabel="epoch",
        ylabel="β (epoch mean)",
        title="KL annealing",
        ax=axes[1],
    )
    fig.tight_layout()
    return fig


def training_rows(histories: dict[str, list[dict]]) -> list[dict[str, str]]:
    """One row per trained model: epochs, training time when it was stored, final loss."""
    return [
        {
            "model": k,
            "epochs": len(v),
            "train time (s)": fmt(sum(r["seconds"] for r in v), 1),
            "final train loss": fmt(v[-1]["loss"], 3),
        }
        for k, v in histories.items()
    ]


def clean_rows(clean: dict[str, Any]) -> list[dict[str, str]]:
    """Clean accuracy, ours beside the paper's."""
    return [
        {
            "model": k,
            "test images": clean["n"][k],
            "clean accuracy (ours)": fmt(v, 3, pct=True),
            "paper": f"{100 * PAPER_CLEAN[k]:.1f} %" + (" [unverified]" if k != "ABS" else ""),
        }
        for k, v in clean["accuracy"].items()
    ]


def attack_rows(per_attack: dict[str, dict[str, DistanceResult]]) -> list[dict[str, str]]:
    """Which attacks ran on which model, and their time when stored."""
    return [
        {
            "model": name,
            "attacks": ", ".join(f"{k} ({v.norm})" for k, v in per.items()),
            "seconds": fmt(sum(getattr(v, "seconds", 0.0) for v in per.values()), 0),
        }
        for name, per in per_attack.items()
    ]


def results_rows(clean: dict[str, Any], comb: dict[str, dict[str, DistanceResult]]) -> list[dict[str, str]]:
    """The paper's results table: clean accuracy, then per norm the median minimal adversarial and
    the accuracy at the threshold, ours with the paper's in parentheses."""
    rows = []
    for name in comb:
        row = {
            "model": name,
            "clean (ours)": fmt(clean["accuracy"][name], 3, pct=True),
            "clean (paper)": f"{100 * PAPER_CLEAN[name]:.1f} %",
        }
        for norm, unit in UNITS.items():
            pm, pa = PAPER[name][norm]
            at = f"{unit} acc@{THRESHOLDS[norm]:g}"
            if norm in comb[name]:
                r = comb[name][norm]
                row[f"{unit} median"] = f"{fmt(r.median(), 3 if norm == 'linf' else 2)} ({pm:g})"
                row[at] = f"{fmt(r.accuracy_at(THRESHOLDS[norm]), 2, pct=True)} ({100 * pa:.0f} %)"
            else:
                row[f"{unit} median"] = f"not run ({pm:g})"
                row[at] = f"not run ({100 * pa:.0f} %)"
        rows.append(row)
    return rows


def l2_attack_rows(per_attack: dict[str, dict[str, DistanceResult]]) -> list[dict[str, str]]:
    """Each L2 attack on ABS and binary ABS, with the paper's per-attack rows on ABS beside."""
    rows = []
    for name in ("ABS", "Binary ABS"):
        for k, r in per_attack[name].items():
            if r.norm != "l2":
                continue
            paper = PAPER_ABS_L2_ATTACKS.get(k) if name == "ABS" else None
            rows.append(
                {
                    "model": name,
                    "attack": k,
                    "median (ours)": fmt(r.median()),
                    "acc@1.5 (ours)": fmt(r.accuracy_at(1.5), 2, pct=True),
                    "paper (median / acc@1.5)": f"{paper[0]:g} / {100 * paper[1]:.0f} %" if paper else NOT_AVAILABLE,
                }
            )
    return rows


def median_rows(per_attack: dict[str, dict[str, DistanceResult]]) -> list[dict[str, str]]:
    """The median of every attack on every model."""
    return [{"model": name, **{k: fmt(v.median(), 3) for k, v in per.items()}} for name, per in per_attack.items()]


def curves(comb: dict[str, dict[str, DistanceResult]]) -> plt.Figure:
    """Accuracy against perturbation size, all attacks per norm, one panel per norm."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    for ax, (norm, eps_max) in zip(axes, [("l2", 5.0), ("linf", 0.5), ("l0", 40)]):
        per_model = {name: c[norm] for name, c in comb.items() if norm in c}
        plots.accuracy_distortion(
            per_model,
            norm=UNITS[norm],
            eps_max=eps_max,
            threshold=THRESHOLDS[norm],
            ax=ax,
            title=f"all {UNITS[norm]} attacks",
        )
    fig.tight_layout()
    return fig


def winner_rows(comb: dict[str, dict[str, DistanceResult]]) -> list[dict[str, str]]:
    """Per model and norm: how many images each attack gave the smallest adversarial."""
    rows = []
    for name, c in comb.items():
        for norm, r in c.items():
            srcs = [s for s, d in zip(r.sources, r.distances.tolist()) if 0 < d < math.inf]
            counts = {s: srcs.count(s) for s in sorted(set(srcs))}
            rows.append(
                {
                    "model": name,
                    "norm": norm,
                    "which attack found the minimum (images)": ", ".join(f"{s}: {n}" for s, n in counts.items()) or "—",
                }
            )
    return rows


def _margin(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Score of the true class minus the best other score, per image."""
    s = model(x)
    other = s.masked_fill(F.one_hot(y, s.shape[1]).bool(), -math.inf).amax(1)
    return s.gather(1, y[:, None]).squeeze(1) - other


def directional_check(
    model: abs_model.ABS, x: torch.Tensor, y: torch.Tensor, *, directions: int = 4, h: float = 1e-2, seed: int = 0
) -> torch.Tensor:
    """The envelope gradient of the margin against a central finite difference of the *full*
    inference, along random unit directions d: rows (g . d, [m(x + h d) - m(x - h d)] / 2h),
    shape (directions * N, 2)."""
    device = model.bank_z.device
    x, y = x.to(device), y.to(device)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_margin(model, xg, y).sum(), xg)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(directions):
        d = torch.randn(x.shape, generator=gen).to(device)
        d = d / d.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
        with torch.no_grad():
            fd = (_margin(model, x + h * d, y) - _margin(model, x - h * d, y)) / (2 * h)
        out.append(torch.stack([(g * d).flatten(1).sum(1), fd], 1).cpu())
    return torch.cat(out)


def distal_rows(distal: dict[str, Any]) -> list[dict[str, str]]:
    """CNN and ABS on the distal adversarials: confidence on noise, starts that reached p >= 0.9."""
    starts = len(distal["target"])
    return [
        {
            "model": name,
            "median confidence on noise": fmt(distal[name]["noise_confidence"].median().item(), 3),
            "reached p ≥ 0.9": f"{int(distal[name]['success'].sum())} / {starts}",
            "median final p(target)": fmt(distal[name]["p_target"].median().item(), 3),
        }
        for name in ("CNN", "ABS")
    ]
