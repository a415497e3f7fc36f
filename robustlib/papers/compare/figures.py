"""The side-by-side figure: every model's accuracy-vs-epsilon curve in one norm, with the papers'
claimed operating points and the ABS authors' released numbers as markers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from .summary import NORM_LABEL, THRESHOLDS, is_claimed

# One colour per chapter (colour-blind safe); line style tells a chapter's models apart.
PAPER_COLORS = {
    "baselines": "#555555",
    "rbfi": "#0072B2",
    "dam": "#D55E00",
    "abs": "#009E73",
    "bang": "#CC79A7",
    "mfbm": "#E69F00",
}
DEFENCE_STYLES = ("-", (0, (7, 2, 1.5, 2)))  # a chapter's first and second defence: solid, dash-dot
OTHER_STYLES = ("--", ":", "-.", (0, (1, 1)))  # its controls (or the baselines): dashed, dotted, ...
REFERENCE_MARKERS = {"CNN": "x", "Binary CNN": "+", "Madry et al.": "*"}  # released, not in the zoo
WIDTH_IN = 7.0  # the column width at the book's 100 dpi: shown at full size


def styles(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Line style per model: its chapter's colour; defences thick and solid (a second one
    dash-dotted), controls thin and dashed or dotted, the baselines thin in grey."""
    out, seen = {}, {}
    for m in data["models"]:
        defence = m["role"] == "defence"
        key = (m["paper"], defence)
        i = seen[key] = seen.get(key, -1) + 1
        if m["role"] == "baseline":
            dash = ("-", *OTHER_STYLES)[i % (len(OTHER_STYLES) + 1)]
        else:
            pool = DEFENCE_STYLES if defence else OTHER_STYLES
            dash = pool[i % len(pool)]
        out[m["model"]] = {
            "color": PAPER_COLORS.get(m["paper"], "#000000"),
            "linestyle": dash,
            "linewidth": 2.2 if defence else 1.3,
        }
    return out


def accuracy_vs_eps(data: Mapping[str, Any], norm: str, *, height: float = 4.8):
    """One figure: accuracy (all attacks combined) against epsilon for every model in ``norm``;
    hollow circles: each paper's claimed operating point (its colour); hollow diamonds: the ABS
    authors' released all-attacks numbers (at the threshold and at the median, where accuracy is
    50 %); grey symbols: released models that are not in the zoo. Returns the figure."""
    fig, ax = plt.subplots(figsize=(WIDTH_IN, height), layout="constrained")
    style = styles(data)
    eps_max = 0.0
    for m in data["models"]:
        rec = m.get(norm)
        if not rec:
            continue
        eps_max = max(eps_max, rec["eps"][-1])
        ax.plot(rec["eps"], rec["curve"], label=m["model"], **style[m["model"]])
        for c in m["claimed"]:
            if c["norm"] == norm:
                ax.plot(
                    c["eps"], c["accuracy"], "o", ms=8, mfc="white", mew=1.8, mec=style[m["model"]]["color"], zorder=5
                )
    extra, claimed = [], {m["model"]: m["claimed"] for m in data["models"]}
    for r in data["released"]:
        if r["norm"] != norm:
            continue
        points = ([r["eps"], r["median"]], [r["accuracy"], 0.5])
        if r["model"] in style:
            if is_claimed(r, claimed[r["model"]]):  # already drawn as the paper's claim
                points = ([r["median"]], [0.5])
            ax.plot(*points, "D", ms=6.5, mfc="white", mew=1.5, mec=style[r["model"]]["color"], zorder=5)
        elif r["label"] in REFERENCE_MARKERS:
            marker = REFERENCE_MARKERS[r["label"]]
            ax.plot(*points, marker, ms=8, color="#777777", mew=1.5, ls="none", zorder=4)
            extra.append(
                Line2D([], [], marker=marker, color="#777777", ls="none", ms=7, label=f"{r['label']} (ABS release)")
            )
    for t in THRESHOLDS[norm]:
        ax.axvline(t, color="#bbbbbb", lw=0.8, zorder=0)
    ax.axhline(0.5, color="#dddddd", lw=0.8, zorder=0)
    proxies = [
        Line2D([], [], marker="o", ls="none", mfc="white", mec="#333333", mew=1.5, ms=7, label="paper's claim"),
        Line2D([], [], marker="D", ls="none", mfc="white", mec="#333333", mew=1.5, ms=6, label="ABS authors' release"),
    ]
    handles = ax.get_legend_handles_labels()[0] + proxies + extra
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, handlelength=2.6)
    ax.set(
        xlim=(0, eps_max or 1),
        ylim=(0, 1.02),
        ylabel="accuracy (all attacks combined)",
        xlabel=f"{NORM_LABEL[norm]} perturbation size ε ([0, 1] pixel units)",
    )
    return fig
