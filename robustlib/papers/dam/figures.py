"""The DAM chapter's figures: drawing only, from the steps' stored results (``experiments.py``).

Each function returns a matplotlib figure at most 7 inches wide (the book's column at 100 dpi):
multi-panel figures are laid out in rows. Labels and numbers are at least 8 pt.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.lines import Line2D

from ... import plots, protocol
from . import model as dam

WIDTH = 7.0  # inches: the column at the book's 100 dpi
NORM_LABEL = {"linf": "L∞", "l2": "L2"}
ATTACK_LABEL = {
    "apgd-ce": "APGD-CE",
    "apgd-dlr": "APGD-DLR",
    "square": "Square",
    "hsja": "HopSkipJump",
    "transfer": "transfer",
    "noise": "noise",
    "dam-fgsm": "paper's FGSM",
    "dam-boundary": "paper's boundary descent",
    "trivial": "trivial bound",
}


def _short(name: str) -> str:
    return "MLP" if name == "ReLU MLP" else name


def training_curves(history: dict[int, list[dict[str, float]]], n_images: int):
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for n, rows in history.items():
        ax.plot([h["epoch"] for h in rows], [100 * (1 - h["eval_acc"]) for h in rows], "-o", ms=3, label=f"n={n}")
    ax.set(xlabel="epoch", ylabel=f"test error (%), {n_images} images", ylim=(0, 30))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def memories(models: dict[int, dam.DAM], proto: dict[str, Any], seed: int):
    """25 random memories per model (visible part, colour scale [-1, 1]), two models per row."""
    ns = list(models)
    rows = math.ceil(len(ns) / 2)
    fig, axes = plt.subplots(rows, 2, figsize=(6.4, 3.3 * rows), squeeze=False)
    g = torch.Generator().manual_seed(seed)
    for ax, n in zip(axes.flat, ns):
        mem = models[n].memories().cpu()
        side = min(5, int(math.isqrt(len(mem))))  # 5 x 5 = 25 memories (fewer only at smoke)
        pick = torch.randperm(len(mem), generator=g)[: side * side]
        tiles = mem[pick].reshape(side, side, 28, 28).permute(0, 2, 1, 3).reshape(28 * side, 28 * side)
        ax.imshow(tiles, cmap="bwr", vmin=-1, vmax=1)
        ax.set_title(f"n={n}: proxy {proto[str(n)]['mean_max_corr']:.2f}")
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


def rubbish_samples(rub: dict[str, Any]):
    rows = [rub["samples"][name] for name in rub["names"]]
    titles = [str(c) for _ in rows for c in range(10)]
    labels = [_short(name) for name in rub["names"]]
    return plots.image_grid(torch.cat(rows), ncols=10, row_labels=labels, titles=titles, size=0.68)


def log_c(traj: dict[str, Any]):
    """log C_first and log C_second along the second-choice descent, one image per model."""
    ns = list(traj)
    rows = math.ceil(len(ns) / 2)
    fig, axes = plt.subplots(rows, 2, figsize=(WIDTH, 2.6 * rows), squeeze=False)
    for ax, n in zip(axes.flat, ns):
        t = traj[n]
        stop = int(t["final_at"][0]) + 1
        ax.plot(t["log_c_first"][:stop, 0], label=f"first ({int(t['first'][0])})", color=plots.COLORS[0])
        ax.plot(t["log_c_second"][:stop, 0], label=f"second ({int(t['second'][0])})", color=plots.COLORS[1])
        if t["cross_at"][0] >= 0:
            ax.axvline(int(t["cross_at"][0]), color="grey", ls="--", lw=1)
        ax.set(title=f"n={n}", xlabel="iteration", ylabel="log C")
        ax.legend(fontsize=8)
    for ax in axes.flat[len(ns) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def triplets(traj: dict[str, Any], n_triplets: int):
    imgs, titles = [], []
    for t in traj.values():
        for b in range(len(t["labels"])):
            imgs += [dam.from_pm1(t[key][b : b + 1]) for key in ("clean", "boundary", "final")]
            titles += [f"{int(t['labels'][b])}", f"-> {int(t['boundary_pred'][b])}", f"-> {int(t['final_pred'][b])}"]
    labels = [f"n={n}" for n in traj]
    return plots.image_grid(
        torch.cat(imgs).clamp(0, 1), titles=titles, ncols=3 * n_triplets, row_labels=labels, size=0.72
    )


def transfer_table(tr: dict[str, Any]):
    names = [_short(n) for n in tr["names"]]
    fig, ax = plt.subplots(figsize=(6.6, 0.55 * len(names) + 2.0))
    mat = torch.cat([100 * tr["error"], 100 * tr["clean_error"][None, :]])
    plots.heatmap(
        mat,
        row_labels=[f"set of {n}" for n in names] + ["clean images"],
        col_labels=names,
        fmt="{:.1f}",
        ax=ax,
        xlabel="classified by",
        ylabel="adversarial set made by",
        title=f"error rate (%), {tr['n_images']} images per set",
    )
    fig.tight_layout()
    return fig


def transfer_samples(tr: dict[str, Any]):
    names = tr["names"]
    rows = [tr["clean_samples"]] + [tr["samples"][name]["adv"] for name in names]
    titles = [str(int(c)) for c in tr["labels"]]
    titles += [f"{int(c)}" for name in names for c in tr["samples"][name]["second"]]
    labels = ["clean"] + [_short(n) for n in names]
    return plots.image_grid(torch.cat(rows), titles=titles, ncols=8, row_labels=labels, size=0.8)


def calibration(clean: dict[str, Any]):
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, r in clean["by_model"].items():
        bins = [b for b in r["bins"] if b["count"] > 0]
        ax.plot([(b["lo"] + b["hi"]) / 2 for b in bins], [100 * b["error"] for b in bins], "-o", ms=3, label=name)
    ax.set(xlabel="confidence Z (bin centre)", ylabel="error in bin (%)")
    ax.set_yscale("symlog", linthresh=1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def rubbish_confidence(rub: dict[str, Any], beta: float):
    """Mean confidence (beta_sm fixed) and agreement with the intended class, side by side."""
    names = [_short(n) for n in rub["names"]]
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 0.45 * len(names) + 1.9))
    panels = {"z_fixed": f"confidence, β_sm = {beta:g} (%)", "agreement": "intended class (%)"}
    for ax, (key, title) in zip(axes, panels.items()):
        plots.heatmap(
            100 * rub[key], row_labels=names, col_labels=names, fmt="{:.0f}", ax=ax, title=title, vmin=0, vmax=100
        )
        ax.set_xlabel("classified by")
    axes[0].set_ylabel("rubbish made by")
    fig.tight_layout()
    return fig


def fgsm_curves(fg: dict[str, Any], paper_confidence: float):
    by_model = fg["by_model"]
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.1))
    errors = {_short(k): [100 * e for e in r["error"]] for k, r in by_model.items()}
    plots.curves(fg["eps"], errors, xlabel="ε ([-1,1] units)", ylabel="error (%)", ax=axes[0])
    conf = {_short(k): [100 * c for c in r["confidence_misclassified"]] for k, r in by_model.items()}
    plots.curves(fg["eps"], conf, xlabel="ε ([-1,1] units)", ylabel="mean Z, misclassified (%)", ax=axes[1], vline=0.3)
    axes[1].axhline(100 * paper_confidence, color="grey", ls=":", lw=1)  # the paper's n = 20, 30 value
    axes[1].get_legend().remove()
    fig.tight_layout()
    return fig


def fgsm_samples(fg: dict[str, Any]):
    by_model = fg["by_model"]
    labels = [_short(k) for k in by_model]
    return plots.image_grid(torch.cat([r["sample"] for r in by_model.values()]), ncols=8, row_labels=labels, size=0.8)


# --- the yardstick ---------------------------------------------------------------------------


def yardstick_curves(ys: dict[str, protocol.ProtocolResult], wb: dict[str, Any]):
    """Accuracy vs ε per norm: every attack combined (solid) and the paper's own attack alone
    (dashed: FGSM in L-inf from the white-box step, boundary descent in L2), per model."""
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.2))
    colours = dict(zip(ys, plots.COLORS))
    for ax, norm in zip(axes, ("linf", "l2")):
        for name, r in ys.items():
            grid, c = list(r.config.grid(norm)), colours[name]
            ax.plot(grid, r.curve(norm).numpy(), "-o", ms=3, color=c)
            if norm == "l2":
                ax.plot(grid, r.curve(norm, "dam-boundary").numpy(), "--", color=c)
            elif f"n={name.removeprefix('dam-n')}" in wb["by_model"]:
                fg = wb["by_model"][f"n={name.removeprefix('dam-n')}"]["fgsm"]
                ax.plot([0.0, *wb["eps01"]], [r.clean_accuracy, *fg], "--", color=c)
        for t in r.config.thresholds(norm):
            ax.axvline(t, color="grey", ls=":", lw=1)
        ax.set(xlabel=f"{NORM_LABEL[norm]} perturbation ([0, 1] pixels)", ylim=(0, 1.02), xlim=(0, grid[-1]))
    axes[0].set_ylabel("accuracy")
    models = [Line2D([], [], color=colours[n], lw=2, label=n) for n in ys]
    styles = [
        Line2D([], [], color="k", marker="o", ms=3, label="all attacks"),
        Line2D([], [], color="k", ls="--", label="paper's attack"),
    ]
    axes[0].legend(handles=models, fontsize=8, loc="upper right")
    axes[1].legend(handles=styles, fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def strongest_attacks(ys: dict[str, protocol.ProtocolResult]):
    """For how many images each attack found the smallest adversarial, per model and norm."""
    rows = [(name, norm) for norm in ("linf", "l2") for name in ys]
    order = list(ATTACK_LABEL)
    found = {a for name, norm in rows for a in ys[name].strongest(norm)}
    attacks = sorted(found, key=lambda a: order.index(a) if a in order else len(order))
    fig, ax = plt.subplots(figsize=(WIDTH, 0.42 * len(rows) + 1.6), layout="constrained")
    for k, attack in enumerate(attacks):
        counts = [ys[name].strongest(norm).get(attack, 0) for name, norm in rows]
        left = [sum(ys[name].strongest(norm).get(a, 0) for a in attacks[:k]) for name, norm in rows]
        ax.barh(
            range(len(rows)),
            counts,
            left=left,
            color=plots.COLORS[k % len(plots.COLORS)],
            label=ATTACK_LABEL.get(attack, attack),
        )
    ax.set_yticks(range(len(rows)), [f"{name}, {NORM_LABEL[norm]}" for name, norm in rows])
    ax.invert_yaxis()
    ax.set_xlabel("images (correctly classified) for which the attack was strongest")
    fig.legend(fontsize=8, ncol=3, loc="outside lower center")
    ax.grid(axis="y", visible=False)
    return fig
