"""The baselines chapter's figures and tables, built from the steps' results.

The chapter's own attacks (``linf``/``l2`` steps) are keyed by the chapter's model names
("relu_mlp"); the yardstick's results by the zoo names ("relu-mlp"): ``ZOO_OF`` maps one to the
other.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ... import attacks, plots, report
from ...protocol import NORMS, ProtocolResult
from .claims import ABS_RELEASED, ZOO_OF
from .experiments import NETWORKS, PerAttack, epochs, smallest
from .profile import BaselinesProfile

Yardstick = dict[str, ProtocolResult]  # zoo name -> the protocol's result
NORM_LABEL = {"linf": "L∞", "l2": "L2"}
# the attacks whose per-attack curve stands alone (the epsilon attacks after them in the suite, L∞
# noise and Square, only search below what earlier attacks found: they show in "strongest")
STANDALONE = {"linf": ("gradient", "transfer"), "l2": ("gradient", "transfer", "hsja", "noise")}


def clean_rows(prof: BaselinesProfile, clean: dict[str, float]) -> list[dict[str, str]]:
    """Epochs and clean test accuracy per model."""
    return [
        {
            "model": ZOO_OF[m],
            "epochs": str(epochs(prof, m)) if m in NETWORKS else "-",
            "clean test accuracy": report.fmt(acc, 3, pct=True),
        }
        for m, acc in clean.items()
    ]


def chapter_linf_curves(linf: dict[str, PerAttack], grid: tuple[float, ...]):
    """The chapter's own L∞ attacks: accuracy vs ε, one panel per attack (2 x 2), one line per
    model; one legend below."""
    fig, axes = plt.subplots(2, 2, figsize=(7, 5.9), sharex=True, sharey=True)
    for ax, label in zip(axes.flat, linf["relu_mlp"]):
        for m in linf:
            ax.plot(grid, linf[m][label].curve(grid), marker="o", ms=3, label=ZOO_OF[m])
        ax.axvline(0.3, color="grey", ls="--", lw=1)
        ax.set(title=label, ylim=(0, 1.02), xlabel="L∞ ε", ylabel="accuracy")
        ax.label_outer()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def yardstick_curves(ys: Yardstick):
    """Accuracy vs ε under every attack of the protocol together (per image the smallest
    adversarial), one panel per norm, one line per model; the thresholds dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.3), sharey=True)
    for ax, norm in zip(axes, NORMS):
        grid = next(iter(ys.values())).config.grid(norm)
        plots.curves(
            grid,
            {name: r.curve(norm) for name, r in ys.items()},
            xlabel=f"{NORM_LABEL[norm]} ε",
            ylabel="accuracy",
            title=f"all attacks, {NORM_LABEL[norm]}",
            ax=ax,
            ylim=(0, 1.02),
        )
        for t in next(iter(ys.values())).config.thresholds(norm):
            ax.axvline(t, color="grey", ls="--", lw=1)
        ax.get_legend().remove()
    axes[1].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def family(r: ProtocolResult, norm: str, which: str) -> attacks.DistanceResult:
    """One standalone line of ``STANDALONE``: "gradient" is APGD-CE and APGD-DLR together (per
    image the smaller), anything else that attack alone."""
    if which == "gradient":
        return attacks.compound(*(d for a, d in r.attacks[norm].items() if r.families[a] == "gradient"))
    return r.attacks[norm][which]


FAMILY_LABEL = {"gradient": "APGD (CE, DLR)", "transfer": "transfer", "hsja": "HopSkipJump", "noise": "noise"}
FAMILY_COLOR = {
    "gradient": plots.COLORS[0],
    "transfer": plots.COLORS[2],
    "hsja": plots.COLORS[3],
    "noise": plots.COLORS[4],
}


def yardstick_attacks(ys: Yardstick, norm: str):
    """Per model (2 x 2 panels), accuracy vs ε in ``norm``: each attack that runs standalone
    (``STANDALONE``) and every attack together (black, dashed, on top); one legend below."""
    fig, axes = plt.subplots(2, 2, figsize=(7, 5.9), sharex=True, sharey=True)
    for ax, (name, r) in zip(axes.flat, ys.items()):
        grid = r.config.grid(norm)
        for w in STANDALONE[norm]:
            ax.plot(
                grid, family(r, norm, w).curve(grid), marker="o", ms=3, color=FAMILY_COLOR[w], label=FAMILY_LABEL[w]
            )
        ax.plot(grid, r.curve(norm), color="black", ls="--", lw=1.6, label="all attacks", zorder=5)
        ax.set(title=name, ylim=(0, 1.02), xlabel=f"{NORM_LABEL[norm]} ε", ylabel="accuracy")
        ax.label_outer()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def _strongest(r: ProtocolResult, norm: str, top: int = 2) -> str:
    return ", ".join(f"{a} {n}" for a, n in list(r.strongest(norm).items())[:top])


def yardstick_rows(ys: Yardstick) -> list[dict[str, str]]:
    """The protocol's table: clean accuracy, accuracy at the thresholds, median minimal
    perturbation, the attacks that gave the smallest adversarial most often (image counts), flags."""
    rows = []
    for name, r in ys.items():
        row = {"model": name, "clean": report.fmt(r.clean_accuracy, 2, pct=True)}
        for norm in r.norms:
            label = NORM_LABEL[norm]
            for t, acc in r.at_thresholds(norm).items():
                row[f"{label} {t:g}"] = report.fmt(acc, 2, pct=True)
            row[f"{label} median"] = report.fmt(r.median(norm), 3 if norm == "linf" else 2)
            row[f"strongest {label}"] = _strongest(r, norm)
        row["flags"] = "; ".join(f"{NORM_LABEL[f.norm]}: {f.kind}" for f in r.flags()) or "none"
        rows.append(row)
    return rows


def l2_attack_rows(ys: Yardstick) -> list[dict[str, str]]:
    """Median L2 minimal perturbation of each standalone attack, the trivial bound and all
    attacks together: how the decision-based attack compares with gradients and with noise."""
    rows = []
    for name, r in ys.items():
        row = {"model": name}
        row |= {FAMILY_LABEL[w]: report.fmt(family(r, "l2", w).median()) for w in STANDALONE["l2"]}
        row["trivial bound"] = report.fmt(r.median("l2", "trivial"))
        row["all attacks"] = report.fmt(r.median("l2"))
        rows.append(row)
    return rows


def beside_rows(ys: Yardstick, linf: dict[str, PerAttack], l2: dict[str, PerAttack]) -> list[dict[str, str]]:
    """Per model and measure at the ABS paper's thresholds: the yardstick, the chapter's own attacks
    (PGD in L∞; L2 PGD and Gaussian noise in L2) and the ABS authors' released numbers for their
    CNN (beside LeNet) and nearest neighbour ("—" where they have no such model)."""
    rows = []
    for m in linf:
        r, theirs, own_l2 = ys[ZOO_OF[m]], ABS_RELEASED.get(m), smallest(l2[m])
        measures = [
            ("accuracy at L∞ 0.3", r.accuracy_at("linf", 0.3), linf[m]["PGD"].accuracy_at(0.3), "linf_acc"),
            ("median L2", r.median("l2"), own_l2.median(), "l2_median"),
            ("accuracy at L2 1.5", r.accuracy_at("l2", 1.5), own_l2.accuracy_at(1.5), "l2_acc"),
        ]
        for measure, ours, own, field in measures:
            pct = measure.startswith("accuracy")
            paper = getattr(theirs, field) if theirs else None
            rows.append(
                {
                    "model": ZOO_OF[m],
                    "measure": measure,
                    "yardstick (all attacks)": report.fmt(ours, 2, pct=pct),
                    "chapter's own attacks": report.fmt(own, 2, pct=pct),
                    "ABS paper (released)": "—"
                    if paper is None
                    else f"{report.fmt(paper, 2, pct=pct)} ({theirs.model})",
                }
            )
    return rows


def adversarial_grid(x: torch.Tensor, y: torch.Tensor, ys: Yardstick, n: int = 6):
    """The first ``n`` images and, per model, the smallest L2 adversarial the yardstick found
    (every attack together) with its distance ("misclassified": the clean image already is)."""
    n = min(n, len(x), *(len(r.combined["l2"].adversarials) for r in ys.values()))
    images = torch.cat([x[:n], *(r.combined["l2"].adversarials[:n] for r in ys.values())])
    titles = [f"{int(label)}" for label in y[:n]]
    for r in ys.values():
        titles += [f"L2={d:.2f}" if d > 0 else "misclassified" for d in r.combined["l2"].distances[:n].tolist()]
    return plots.image_grid(images, titles=titles, ncols=n, row_labels=["clean", *ys])


def decision_summary(ys: Yardstick) -> str:
    """What the decision-based attack achieves, in one generated paragraph (Markdown)."""
    r0 = next(iter(ys.values()))
    parts = []
    for name, r in ys.items():
        hsja, noise, grad = (family(r, "l2", w).median() for w in ("hsja", "noise", "gradient"))
        parts.append(f"{name} {report.fmt(hsja)} (noise {report.fmt(noise)}, APGD {report.fmt(grad)})")
    return (
        f"With {r0.config.hsja_steps} iterations, started from the trivial bound's image, HopSkipJump "
        f"reaches a median L2 distance of {'; '.join(parts)}. It never sees a gradient, so this is "
        "the decision boundary as any attacker can find it: "
        + (
            "everywhere at most half the noise's distance"
            if all(family(r, "l2", "hsja").median() <= 0.5 * family(r, "l2", "noise").median() for r in ys.values())
            else "not everywhere at most half the noise's distance"
        )
        + "."
    )
