"""One figure style for the whole book, and the few plot types every notebook needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]


def style() -> None:
    """Apply the book's matplotlib style (colour-blind safe palette, light grid, readable sizes)."""
    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "figure.figsize": (6.4, 4.0),
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": matplotlib.cycler(color=COLORS),
            "font.size": 10,
            "axes.titlesize": 11,
            "legend.frameon": False,
            "image.cmap": "gray",
        }
    )


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def image_grid(
    images,
    *,
    titles: Sequence[str] | None = None,
    ncols: int = 10,
    cmap: str = "gray",
    vmin: float | None = 0.0,
    vmax: float | None = 1.0,
    size: float = 1.1,
    suptitle: str | None = None,
    row_labels: Sequence[str] | None = None,
):
    """Show a batch (N, 1, H, W) or (N, H, W) of images in a grid; returns the figure."""
    imgs = _np(images)
    if imgs.ndim == 4:
        imgs = imgs[:, 0] if imgs.shape[1] == 1 else imgs.transpose(0, 2, 3, 1)
    n = len(imgs)
    ncols = min(ncols, n) if n else 1
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if suptitle else 0)), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(imgs[i], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if row_labels is not None:
        for r, label in enumerate(row_labels[:nrows]):
            axes[r, 0].text(-0.15, 0.5, label, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def curves(
    x,
    ys: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    errors: Mapping[str, Sequence[float]] | None = None,
    ax=None,
    marker: str = "o",
    ylim=None,
    vline: float | None = None,
):
    """Several labelled curves on shared x; optional error bars and a vertical reference line."""
    if ax is None:
        _, ax = plt.subplots()
    for label, y in ys.items():
        if errors is not None and label in errors:
            ax.errorbar(_np(x), _np(y), yerr=_np(errors[label]), label=label, marker=marker, ms=3, capsize=2)
        else:
            ax.plot(_np(x), _np(y), label=label, marker=marker, ms=3)
    if vline is not None:
        ax.axvline(vline, color="grey", ls="--", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def heatmap(
    matrix,
    *,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str | None = None,
    fmt: str = "{:.1f}",
    cmap: str = "viridis",
    ax=None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    vmin=None,
    vmax=None,
):
    """Annotated heat map (rows x columns)."""
    m = _np(matrix).astype(float)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.9 * len(col_labels) + 2, 0.6 * len(row_labels) + 1.5))
    im = ax.imshow(m, cmap=cmap, aspect="auto", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(col_labels)), col_labels, rotation=30, ha="right")
    ax.set_yticks(range(len(row_labels)), row_labels)
    ax.grid(False)
    lo, hi = np.nanmin(m) if m.size else 0, np.nanmax(m) if m.size else 1
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if np.isfinite(m[i, j]):
                light = (m[i, j] - lo) / (hi - lo + 1e-12) < 0.5
                ax.text(
                    j, i, fmt.format(m[i, j]), ha="center", va="center", fontsize=8, color="white" if light else "black"
                )
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return ax


def accuracy_distortion(
    results: Mapping[str, object],
    *,
    norm: str,
    eps_max: float,
    threshold: float | None = None,
    ax=None,
    title: str | None = None,
):
    """Accuracy vs perturbation size from per-image minimal distances (``DistanceResult``s)."""
    grid = np.linspace(0, eps_max, 101)
    ys = {name: r.curve(grid.tolist()).numpy() for name, r in results.items()}
    return curves(
        grid,
        ys,
        xlabel=f"{norm} perturbation size",
        ylabel="accuracy",
        title=title,
        ax=ax,
        marker="",
        ylim=(0, 1.02),
        vline=threshold,
    )
