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
    fig, axes = plt.subplots(1, 2, figsize=(7, 2.8))
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
    """Accuracy against perturbation size, all attacks per norm, one panel per norm (in rows)."""
    fig, axes = plt.subplots(3, 1, figsize=(6.5, 9.0))
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


# --- the yardstick -------------------------------------------------------------------------------

YARD_NAMES = {"abs": "ABS", "binary-abs": "Binary ABS"}  # zoo name -> the chapter's name
ATTACK_LABELS = {
    "apgd-ce": "APGD-CE",
    "apgd-dlr": "APGD-DLR",
    "square": "Square",
    "hsja": "HopSkipJump",
    "transfer": "transfer",
    "noise": "noise",
    "latent-descent": "Latent Descent (paper)",
    "latent-descent-linf": "Latent Descent (paper)",
    "trivial": "trivial bound",
    "combined": "all attacks",
}
# Attacks whose per-attack curve is a standalone result: minimal attacks, and APGD-CE (the first
# epsilon attack; the later ones only search below what earlier attacks found).
STANDALONE = ("apgd-ce", "hsja", "transfer", "latent-descent", "latent-descent-linf")


def yardstick_models(yard: dict[str, Any], baselines: dict[str, Any]) -> dict[str, Any]:
    """Every model's ProtocolResult by the chapter's name: ABS and binary ABS, then the baselines."""
    return {YARD_NAMES[k]: v for k, v in yard.items()} | dict(baselines)


def _pct(a: float) -> str:
    return f"{100 * a:.0f} %"


def _strongest(res: Any, norm: str) -> str:
    top = list(res.strongest(norm).items())[:2]
    return ", ".join(f"{ATTACK_LABELS.get(a, a)} ({n})" for a, n in top) or "—"


def yardstick_rows(yard: dict[str, Any], baselines: dict[str, Any]) -> list[dict[str, str]]:
    """One row per model (every attack of the protocol combined), the paper's all-attacks numbers
    beside it, then the paper's own Latent Descent alone on ABS and binary ABS."""
    rows = []
    for name, res in yardstick_models(yard, baselines).items():
        row = {
            "model": name,
            "attacks": "all (yardstick)",
            "images": str(len(res.labels)),
            "clean": _pct(res.clean_accuracy),
        }
        for norm in ("linf", "l2"):
            for t, a in res.at_thresholds(norm).items():
                row[f"{UNITS[norm]} {t:g}"] = _pct(a)
        row["median L∞"] = fmt(res.median("linf"), 3)
        row["median L2"] = fmt(res.median("l2"), 2)
        (ml, al), (m2, a2) = PAPER[name]["linf"], PAPER[name]["l2"]
        row["paper: L∞ 0.3 / L2 1.5 (medians)"] = f"{_pct(al)} / {_pct(a2)} ({ml:g} / {m2:g})"
        row["strongest L∞ / L2 (images)"] = f"{_strongest(res, 'linf')} / {_strongest(res, 'l2')}"
        row["flags"] = "; ".join(dict.fromkeys(f"{UNITS[f.norm]}: {f.kind}" for f in res.flags())) or "none"
        rows.append(row)
    for name, res in yard.items():
        row = {"model": YARD_NAMES[name], "attacks": "the paper's Latent Descent", "images": str(len(res.labels))}
        row["clean"] = f"{100 * res.clean_accuracy:.1f} %"
        for norm, attack in (("linf", "latent-descent-linf"), ("l2", "latent-descent")):
            for t in res.config.thresholds(norm):
                row[f"{UNITS[norm]} {t:g}"] = _pct(res.accuracy_at(norm, t, attack))
        row["median L∞"] = fmt(res.median("linf", "latent-descent-linf"), 3)
        row["median L2"] = fmt(res.median("l2", "latent-descent"), 2)
        rows.append(row)
    return rows


def yardstick_curves(yard: dict[str, Any], baselines: dict[str, Any]) -> plt.Figure:
    """Accuracy against perturbation size, L∞ above and L2 below, every attack of the protocol
    combined, for every model; stars: the paper's all-attacks accuracy at the threshold."""
    fig, axes = plt.subplots(2, 1, figsize=(6.8, 7.6))
    models = yardstick_models(yard, baselines)
    for ax, norm in zip(axes, ("linf", "l2")):
        for i, (name, res) in enumerate(models.items()):
            colour, grid = f"C{i}", list(res.config.grid(norm))
            style = "-o" if name in YARD_NAMES.values() else "--o"
            ax.plot(
                grid, res.curve(norm).numpy(), style, ms=3, color=colour, label=f"{name} ({len(res.labels)} images)"
            )
            ax.plot(THRESHOLDS[norm], PAPER[name][norm][1], "*", ms=11, color=colour, mec="k")
        ax.axvline(THRESHOLDS[norm], color="grey", ls=":", lw=1)
        ax.set(xlabel=f"{UNITS[norm]} perturbation size ([0, 1] units)", ylabel="accuracy", ylim=(0, 1.02))
    axes[0].plot([], [], "*", ms=11, color="grey", mec="k", label="paper (all attacks)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    return fig


ATTACK_STYLE = {
    "combined": dict(color="k", lw=2.2),
    "apgd-ce": dict(color="C0"),
    "hsja": dict(color="C1"),
    "transfer": dict(color="C2"),
    "latent-descent": dict(color="C3"),
    "latent-descent-linf": dict(color="C3"),
    "trivial": dict(color="grey", ls=":"),
}


def yardstick_attack_curves(yard: dict[str, Any]) -> plt.Figure:
    """ABS (left) and binary ABS (right), L∞ above and L2 below: every attack combined, the trivial
    bound, and each attack whose curve is a standalone result (``STANDALONE``)."""
    fig, axes = plt.subplots(2, 2, figsize=(7.0, 6.8), sharey=True)
    shown: dict[str, Any] = {}
    for col, (name, res) in enumerate(yard.items()):
        for row, norm in enumerate(("linf", "l2")):
            ax, grid = axes[row, col], list(res.config.grid(norm))
            for attack in ("combined", *[a for a in STANDALONE if a in res.attacks[norm]], "trivial"):
                (line,) = ax.plot(grid, res.curve(norm, attack).numpy(), marker="o", ms=2.5, **ATTACK_STYLE[attack])
                shown.setdefault(ATTACK_LABELS[attack], line)
            ax.set(title=f"{YARD_NAMES[name]}, {UNITS[norm]}", xlabel=f"{UNITS[norm]} size", ylim=(0, 1.02))
            if col == 0:
                ax.set_ylabel("accuracy")
    fig.legend(list(shown.values()), list(shown), loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def yardstick_seconds(yard: dict[str, Any], baselines: dict[str, Any]) -> list[dict[str, str]]:
    """What the protocol cost per model and attack (wall seconds as measured when stored)."""
    rows = []
    for name, res in yardstick_models(yard, baselines).items():
        per: dict[str, float] = {}
        for norm in res.norms:
            for attack, s in res.seconds[norm].items():
                label = ATTACK_LABELS.get(attack, attack)  # Latent Descent's two norms: one entry
                per[label] = per.get(label, 0.0) + s
        row = {"model": name, "images": str(len(res.labels)), "total (s)": fmt(sum(per.values()), 0)}
        rows.append(row | {a: fmt(s, 0) for a, s in per.items()})
    return rows


def refinement_rows(res: abs_model.Inference, y: torch.Tensor) -> list[dict[str, str]]:
    """Per image, the true class's loss at the best bank sample and after the Adam steps."""
    idx = torch.arange(len(y))
    start, end = res.start_loss.cpu()[idx, y], res.loss.cpu()[idx, y]
    return [
        {"image": str(i), "label": str(int(y[i])), "best bank sample": f"{a:.4f}", "after Adam": f"{b:.4f}"}
        for i, (a, b) in enumerate(zip(start.tolist(), end.tolist()))
    ]


def directional_rows(pairs: torch.Tensor) -> list[dict[str, str]]:
    """The envelope gradient's directional derivatives against finite differences, in one row."""
    analytic, finite = pairs[:, 0], pairs[:, 1]
    cos = F.cosine_similarity(analytic, finite, dim=0).item()
    rel = ((analytic - finite).abs() / finite.abs().clamp_min(1e-9)).median().item()
    return [
        {"(image, direction) pairs": str(len(pairs)), "cosine": f"{cos:.3f}", "median relative error": f"{rel:.2f}"}
    ]


def yardstick_reading(yard: dict[str, Any], baselines: dict[str, Any]) -> list[str]:
    """This run's reading of the yardstick, in sentences (from the stored results)."""
    models = yardstick_models(yard, baselines)
    lines = []
    for name in ("ABS", "Binary ABS"):
        if name not in models:
            continue
        r = models[name]
        ld = r.median("l2", "latent-descent") if "latent-descent" in r.attacks["l2"] else math.inf
        beaten = int((r.distances("l2").distances < r.distances("l2", "latent-descent").distances - 1e-9).sum())
        lines.append(
            f"{name} ({len(r.labels)} images): {_pct(r.accuracy_at('l2', 1.5))} at L2 1.5 and "
            f"{_pct(r.accuracy_at('linf', 0.3))} at L∞ 0.3 under all attacks (paper: "
            f"{_pct(PAPER[name]['l2'][1])} and {_pct(PAPER[name]['linf'][1])}); median L2 {fmt(r.median('l2'), 2)}, "
            f"the paper's Latent Descent alone {fmt(ld, 2)}, beaten by another attack on {beaten} images."
        )
    for name, res in baselines.items():
        a, p = res.accuracy_at("linf", 0.3), PAPER[name]["linf"][1]
        if abs(a - p) > 0.25:
            lines.append(
                f"{name} ({len(res.labels)} images): {_pct(a)} at L∞ 0.3 where the paper's model keeps {_pct(p)}."
            )
    flagged = [f"{n} ({'; '.join(dict.fromkeys(f'{UNITS[f.norm]} {f.kind}' for f in r.flags()))})"
               for n, r in models.items() if r.flags()]  # fmt: skip
    if flagged:
        lines.append("Flags: " + ", ".join(flagged) + ". A flagged number is an upper bound to read with care.")
    return lines
