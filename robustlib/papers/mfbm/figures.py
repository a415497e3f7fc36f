"""The MFBM chapter's figures and tables, drawn from the steps' stored results.

Each function takes what a step returned (``experiments.appendix_d(exp)`` etc.) and draws one
figure of the paper (the chapter calls ``plt.show()``) or returns the rows of one table
(``report.show_table``). No computation happens here beyond reading the results.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from ... import attacks, plots, report
from ...protocol import NORMS, ProtocolResult
from . import claims, experiments
from .profile import MfbmProfile

TRAIN_COLOR, OTHER_COLOR = "#D55E00", "#0072B2"  # the paper's red (training) and blue (other)


def _l2(d: torch.Tensor) -> attacks.DistanceResult:
    return attacks.DistanceResult("l2", "l2", d)


# --- the expansion check (MFBM-1) -----------------------------------------------------------------


def expansion(check: dict[str, Any]) -> plt.Figure:
    """|Φ_n(m*) − ln Z| against the coupling scale, one line per order, with the fitted slopes."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for n, errors in check["errors"].items():
        label = f"order {n} (slope {check['slopes'][n]:.2f}, expected {n + 1})"
        ax.loglog(check["lambdas"], errors, "o-", label=label)
    ax.set_xlabel("coupling scale λ")
    ax.set_ylabel("|Φ(m*) − ln Z|")
    ax.set_title("Mean-field free energy vs exact ln Z (7 spins)")
    ax.legend(fontsize=8)
    return fig


def expansion_rows(check: dict[str, Any]) -> list[dict[str, str]]:
    """The expansion's exact checks: matrix vs literal sums, closed-form R vs finite differences."""
    (cyc, vec_cyc), (tri, vec_tri) = check["cycles"], check["triangles"]
    return [
        {"check": "4-cycle sum: literal loop vs matrix form", "values": f"{cyc:.12f} vs {vec_cyc:.12f}"},
        {"check": "triangle sum: literal loop vs matrix form", "values": f"{tri:.12f} vs {vec_tri:.12f}"},
        {"check": "largest |R − finite difference of Φ|, orders 1-4", "values": f"{check['fd_error']:.1e}"},
        {"check": "all expansion checks pass", "values": "yes" if check["ok"] else "no"},
    ]


# --- App. D and E ---------------------------------------------------------------------------------


def fig7(history: dict[str, torch.Tensor]) -> plt.Figure:
    """Fig. 7: mean-field vs exact D, p1, p2 and p1/p2 along training (exact D on the x axis)."""
    h = {k: v.numpy() for k, v in history.items()}
    x = h["D_exact"]
    mf, ex = {"color": plots.COLORS[1], "label": "mean field"}, {"color": plots.COLORS[0], "label": "exact"}
    fig, axes = plt.subplots(2, 2, figsize=(7, 5.6))
    axes = axes.flat
    axes[0].plot(x, h["D"], "o-", ms=3, **mf)
    axes[0].plot(x, x, "--", color="grey", lw=1, label="y = x")
    axes[0].set(xlabel="exact D", ylabel="mean-field D", title="(a) relative entropy")
    for ax, k, t in ((axes[1], "p1", "(b) p(example 1)"), (axes[2], "p2", "(c) p(example 2)")):
        ax.plot(x, h[f"{k}_mf"], "o-", ms=3, **mf)
        ax.plot(x, h[f"{k}_exact"], "o-", ms=3, **ex)
        ax.set(xlabel="exact D", ylabel="probability", title=t, yscale="log")
    axes[3].plot(x, h["p1_mf"] / h["p2_mf"], "o-", ms=3, **mf)
    axes[3].plot(x, h["p1_exact"] / h["p2_exact"], "o-", ms=2, **ex)
    axes[3].set(xlabel="exact D", ylabel="p1 / p2", title="(d) ratio")
    for ax in axes:
        ax.invert_xaxis()
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def appendix_d_rows(history: dict[str, torch.Tensor]) -> list[dict[str, str]]:
    h = {k: v.numpy() for k, v in history.items()}
    ratio_err = experiments.ratio_error(history)
    return [
        {"quantity": "exact D: start -> end", "value": f"{h['D_exact'][0]:.3f} -> {h['D_exact'][-1]:.3f}"},
        {"quantity": "mean-field D: start -> end", "value": f"{h['D'][0]:.3f} -> {h['D'][-1]:.3f}"},
        {"quantity": "exact p1 + p2 at the end", "value": f"{h['p1_exact'][-1] + h['p2_exact'][-1]:.3f}"},
        {
            "quantity": "mean-field p1 + p2 at the end (unnormalised)",
            "value": f"{h['p1_mf'][-1] + h['p2_mf'][-1]:.3f}",
        },
        {
            "quantity": "ln Z: mean field - exact, at the end",
            "value": f"{h['phi_free'][-1] - h['log_z_exact'][-1]:.3f}",
        },
        {"quantity": "largest relative error of the MF ratio p1/p2 over training", "value": f"{ratio_err.max():.2%}"},
    ]


def fig8_9(appe: dict[str, Any], small_eps: tuple[float, ...]) -> plt.Figure:
    """Figs. 8 and 9: Δ(ε) of the 2 training states and of the other 30, with and without J_h."""
    train_idx = appe["train_index"]
    other = torch.ones(32, dtype=torch.bool)
    other[train_idx] = False
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.4), sharey=True)
    panels = (("jh", "with hidden couplings J_h"), ("rbm", "RBM-connected (J_h = 0)"))
    for ax, (key, title) in zip(axes, panels):
        d = appe[f"delta_{key}"]
        ax.plot(small_eps, d[:, train_idx].mean(1).numpy(), "o-", color=TRAIN_COLOR, label="2 training states")
        ax.plot(small_eps, d[:, other].mean(1).numpy(), "o-", color=OTHER_COLOR, label="other 30 states")
        ax.set(xlabel="noise amplitude ε", title=title)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("Δ (L2 change of the hidden units)")
    fig.tight_layout()
    return fig


def small_ratio_rows(appe: dict[str, Any], small_eps: tuple[float, ...]) -> list[dict[str, str]]:
    ratios = experiments.small_noise_ratios(appe)
    return [{"machine": k, **{f"ε={e}": f"{r:.1f}" for e, r in zip(small_eps, ratios[k])}} for k in ("jh", "rbm")]


# --- patches and machines -------------------------------------------------------------------------


def patch_rows(pat: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"quantity": "4x4 patches counted", "value": f"{pat['n_patches']:,}"},
        {"quantity": "distinct 4x4 patterns", "value": f"{pat['n_distinct']:,}"},
        {"quantity": "occurrences covered by the top 679 (paper: > 98 %)", "value": f"{pat['coverage_679']:.2%}"},
        {"quantity": "patterns needed to cover 98 %", "value": f"{pat['n_for_98']}"},
        {"quantity": "share of the blank patch", "value": f"{pat['p0'][0].item() * pat['coverage']:.1%}"},
    ]


def machines(s1: dict[str, Any], s2: dict[str, Any] | None, prof: MfbmProfile) -> plt.Figure:
    """The patch machines: stage 1's D along training (the checkpoints dotted when it is the
    feature machine), stage 2's batch D and its checkpoints' D on a fixed batch (``s2``, the paper
    profile), and stage 1's 32 learned 4x4 filters W."""
    h = s1["history"]
    panels = 3 if s2 is not None else 2
    fig, axes = plt.subplots(panels, 1, figsize=(7, 2.9 * panels))
    axes[0].plot(h["step"], h["D"], color=plots.COLORS[0])
    for c in prof.checkpoints if not experiments.staged(prof) else []:
        axes[0].axvline(c, color="grey", ls=":", lw=1)
    title = f"stage 1: 16 + 32 machine, {prof.n_patterns} patterns"
    axes[0].set(xlabel="Adam step", ylabel="D (mean field)", title=title)
    if s2 is not None:
        ax = axes[1]
        ax.plot(s2["history"]["step"], s2["history"]["D"], color=plots.COLORS[0], label="batch D (training)")
        snaps = s2["snapshots"]
        steps, ds = [int(k) for k in snaps], [float(v["D"]) for v in snaps.values()]
        ax.plot(steps, ds, "o", color=plots.COLORS[1], label="D on a fixed batch (checkpoints)")
        title = f"stage 2: 64 + {4 * 32 + prof.n_top} machine, batches of {prof.stage2_batch}"
        ax.set(xlabel="Adam step", ylabel="D", title=title)
        ax.legend(fontsize=8)
    filters = s1["snapshots"][str(prof.stage1_steps)]["W"].T.reshape(32, 4, 4)  # W: (16, 32)
    vmax = filters.abs().max().item()
    grid = torch.ones(4 * 5 - 1, 8 * 5 - 1) * float("nan")
    for k in range(32):
        r, c = divmod(k, 8)
        grid[r * 5 : r * 5 + 4, c * 5 : c * 5 + 4] = filters[k]
    axes[-1].axis("off")
    axes[-1].imshow(grid.numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    axes[-1].set_title("stage 1: the 32 learned 4x4 filters W (red +, blue −)")
    fig.tight_layout()
    return fig


def fig4(f4: dict[str, Any], noise_eps: tuple[float, ...]) -> plt.Figure:
    """Fig. 4: Δr/Δt against the checkpoint's D (main) and Δ(ε) at the final checkpoint (inset)."""
    ratio = experiments.noise_ratio(f4)
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
    for j, e in enumerate(noise_eps):
        axes[0].plot(f4["D"], ratio[:, j], "o-", label=f"ε = {e}")
    axes[0].invert_xaxis()
    axes[0].set(
        xlabel="D of the checkpoint (training →)",
        ylabel="Δr / Δt",
        title="random vs training patterns",
    )
    axes[1].plot(noise_eps, f4["delta_train"][-1].numpy(), "o-", color=TRAIN_COLOR, label="training patterns")
    axes[1].plot(noise_eps, f4["delta_random"][-1].numpy(), "o-", color=OTHER_COLOR, label="random patterns")
    axes[1].set(xlabel="noise amplitude ε", ylabel="Δ", title="final checkpoint")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --- the networks and Fig. 3 ----------------------------------------------------------------------


def network_rows(nets: dict[str, tuple[torch.nn.Module, list]], errors: dict[str, float]) -> list[dict[str, Any]]:
    return [
        {
            "network": label,
            "parameters trained": f"{sum(p.numel() for p in model.parameters()):,}",
            "epochs": len(hist),
            "clean test error": report.fmt(errors[label], 2, pct=True),
        }
        for label, (model, hist) in nets.items()
    ]


def mean_mse(d: torch.Tensor) -> float:
    """Fig. 3's y axis: the mean squared error per pixel (L2² / 784) over the finite distances."""
    f = d[torch.isfinite(d)]
    return (f**2 / 784).mean().item()


def fig3(f3: dict[str, Any]) -> plt.Figure:
    """Fig. 3: adversarial MSE (left axis) and clean error (right axis) against the checkpoint's
    D, with LeNet (dashed) and the RBM network (dotted) as reference lines."""
    labels = [k for k in f3 if k.startswith("mfbm-")]
    Ds = [f3[k]["D"] for k in labels]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    mse = [mean_mse(f3[k]["distances"]) for k in labels]
    ax.plot(Ds, mse, "o-", color=plots.COLORS[0], label="MFBM network")
    ax2 = ax.twinx()
    errors = [100 * f3[k]["clean_error"] for k in labels]
    ax2.plot(Ds, errors, "s-", color=plots.COLORS[1], label="MFBM test error")
    for k, ls in (("lenet", "--"), ("rbm", ":")):
        ax.axhline(mean_mse(f3[k]["distances"]), color=plots.COLORS[0], ls=ls, lw=1, label=f"{k} (adv. MSE)")
        ax2.axhline(100 * f3[k]["clean_error"], color=plots.COLORS[1], ls=ls, lw=1)
    ax.invert_xaxis()
    ax.set(xlabel="relative entropy D of the pre-trained machine (training →)", ylabel="mean adversarial MSE")
    ax2.set_ylabel("clean test error (%)", color=plots.COLORS[1])
    ax2.grid(False)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def fig3_rows(f3: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for k, r in f3.items():
        d = r["distances"]
        rows.append(
            {
                "network": k,
                "D": "—" if math.isnan(r["D"]) else f"{r['D']:.3f}",
                "clean error": report.fmt(r["clean_error"], 2, pct=True),
                "mean L2 (all)": f"{experiments.mean_l2(d):.2f}",
                "mean L2 (correct only)": f"{experiments.mean_l2(d[d > 0]):.2f}",
                "median L2": f"{_l2(d).median():.2f}",
                "robust at L2 1.5": report.fmt((d > 1.5).double().mean().item(), 2, pct=True),
                "mean MSE": f"{mean_mse(d):.4f}",
                "not found": int((~torch.isfinite(d)).sum()),
            }
        )
    return rows


def fig3_reading(f3: dict[str, Any]) -> str:
    """Mean L2 and clean error from the best-D to the worst-D checkpoint, and the references
    (Markdown)."""
    by_d = sorted([k for k in f3 if k.startswith("mfbm-")], key=lambda k: f3[k]["D"])
    l2 = [experiments.mean_l2(f3[k]["distances"]) for k in by_d]
    errors = [f"{100 * f3[k]['clean_error']:.1f} %" for k in by_d]
    corr = np.corrcoef([f3[k]["D"] for k in by_d], l2)[0, 1] if len(by_d) > 2 else float("nan")
    rbm, lenet = (experiments.mean_l2(f3[k]["distances"]) for k in ("rbm", "lenet"))
    return (
        f"Mean L2 from the best-D to the worst-D checkpoint: {', '.join(f'{v:.2f}' for v in l2)} "
        f"(correlation with D {corr:+.2f}); clean error {', '.join(errors)}. Best MFBM checkpoint "
        f"{max(l2):.2f} vs RBM network {rbm:.2f} vs LeNet {lenet:.2f}."
    )


# --- Table 1, Figs. 5 and 6, beyond the paper -------------------------------------------------------


def table1_rows(summary: experiments.Table1) -> list[dict[str, Any]]:
    rows = []
    for k, name in claims.TABLE1_NAMES.items():
        r = summary.ours[k]
        paper, abs_row = claims.PAPER_TABLE1[k], claims.ABS_TABLE1[k]
        rows.append(
            {
                "attack": name,
                "images": len(r.distances),
                "ours: mean L2 / robust": f"{r.mean():.2f} / {r.accuracy_at(1.5):.0%}",
                "ours: median": f"{r.median():.2f}",
                "not found": int((~torch.isfinite(r.distances)).sum()),
                "paper MFBM (mean)": f"{paper[0]} / {paper[1]:.0%}",
                "paper ABS row (median)": f"{abs_row[0]} / {abs_row[1]:.0%}",
            }
        )
    return rows


def table1_reading(summary: experiments.Table1) -> str:
    """The four attacks on the images where all ran, and what gave the compound (Markdown)."""
    comp, n_b = summary.ours["compound"], summary.n_boundary
    same = "; ".join(f"{k} {v.mean():.2f} / {v.accuracy_at(1.5):.0%}" for k, v in summary.same_images.items())
    sources = ", ".join(f"{k} for {n}" for k, n in summary.compound_sources.items())
    return (
        f"On the first {n_b} images, where all four ran (mean L2 / robust at 1.5): {same}; compound "
        f"{comp.mean():.2f} / {comp.accuracy_at(1.5):.0%}, given by {sources} of them. The Gaussian-noise "
        f"line search found no adversarial for {summary.gaussian_not_found} of "
        f"{len(summary.ours['gaussian'].distances)} images (its mean is over the others; they count as robust)."
    )


def fig5(t1: dict[str, dict[str, Any]], f3: dict[str, Any]) -> plt.Figure:
    """Fig. 5: histograms of the adversarial L2 distances (line at ε = 1.5)."""
    fig, axes = plt.subplots(1, 3, figsize=(7, 2.9))
    hists = [
        ("gradient, MFBM", t1["gradient"]["distances"]),
        ("Boundary, MFBM", t1["boundary"]["distances"]),
        ("gradient, LeNet", f3["lenet"]["distances"]),
    ]
    for ax, (title, d) in zip(axes, hists):
        ax.hist(d[torch.isfinite(d)].numpy(), bins=20, color=plots.COLORS[0])
        ax.axvline(1.5, color="k", lw=1)
        ax.set(xlabel="L2 distance", title=title)
    axes[0].set_ylabel("images")
    fig.tight_layout()
    return fig


def fig6(t1: dict[str, dict[str, Any]], model: torch.nn.Module, prof: MfbmProfile, device: str) -> plt.Figure | None:
    """The paper's Fig. 6: the first test image of each class, its gradient adversarial, the
    difference and the Boundary adversarial where the Boundary set holds the image; five classes
    per block of four rows (so the figure fits the column). None when nothing is stored."""
    g_res, b_res = t1["gradient"], t1["boundary"]
    x_att, y_att = experiments.attack_images(prof)
    show = g_res["show_index"]
    if "adversarials" not in g_res or not len(show):
        return None
    adv = g_res["adversarials"]
    with torch.no_grad():
        pred = model(adv.to(device)).argmax(1).cpu()
    diff = adv - x_att[show]
    scale = diff.abs().amax().clamp_min(1e-6)
    b_show = b_res["show_index"].tolist()
    blank = torch.full_like(adv[0], float("nan"))
    have_b = "adversarials" in b_res
    b_adv = torch.stack(
        [b_res["adversarials"][b_show.index(int(i))] if have_b and int(i) in b_show else blank for i in show]
    )
    rows = [x_att[show], adv, 0.5 + 0.5 * diff / scale, b_adv]
    titles = [
        [f"original {int(y_att[i])}" for i in show],
        [f"→ {int(p)}, L2 {g_res['distances'][i]:.2f}" for p, i in zip(pred, show)],
        ["difference"] * len(show),
        [f"Boundary {b_res['distances'][int(i)]:.2f}" if int(i) in b_show else "(no Boundary)" for i in show],
    ]
    width = 5
    imgs, names = [], []
    for start in range(0, len(show), width):  # blocks of 5 classes: 4 rows each
        for row, title in zip(rows, titles):
            part = list(range(start, min(start + width, len(show))))
            pad = width - len(part)
            imgs += [row[k] for k in part] + [blank] * pad
            names += [title[k] for k in part] + [""] * pad
    return plots.image_grid(torch.stack(imgs), titles=names, ncols=width, size=1.35)


def fig6_note(t1: dict[str, dict[str, Any]], prof: MfbmProfile) -> str:
    """Which classes Fig. 6 shows and which of them have a Boundary adversarial (Markdown)."""
    _, y_att = experiments.attack_images(prof)
    show, b_show = t1["gradient"]["show_index"].tolist(), t1["boundary"]["show_index"].tolist()
    n_b = min(prof.boundary_images, prof.n_attack)
    with_b = sorted(int(y_att[i]) for i in show if i in b_show)
    return (
        f"Classes shown: {', '.join(str(int(y_att[i])) for i in sorted(show, key=lambda i: int(y_att[i])))}; "
        f"with a Boundary adversarial (the Boundary set is the first {n_b} test images): "
        f"{', '.join(map(str, with_b)) or 'none'}."
    )


def distill_rows(dist: dict[str, Any], t1: dict[str, Any], f3: dict[str, Any], final: str) -> list[dict[str, str]]:
    mean, error = claims.PAPER_DISTILLED
    return [
        {
            "network": "distilled (ours)",
            "mean L2": f"{experiments.mean_l2(dist['distances']):.2f}",
            "clean error": report.fmt(dist["clean_error"], 2, pct=True),
            "paper": f"{mean} / {100 * error:.2f} %",
        },
        {
            "network": f"original {final} (ours)",
            "mean L2": f"{experiments.mean_l2(t1['gradient']['distances']):.2f}",
            "clean error": report.fmt(f3[final]["clean_error"], 2, pct=True),
            "paper": f"{claims.PAPER_TABLE1['gradient'][0]} / not stated",
        },
        {
            "network": "LeNet (ours)",
            "mean L2": f"{experiments.mean_l2(f3['lenet']['distances']):.2f}",
            "clean error": report.fmt(f3["lenet"]["clean_error"], 2, pct=True),
            "paper": f"< {mean / 2:.3g} ('more than twice')",
        },
    ]


def beyond(t1: dict[str, dict[str, Any]], prof: MfbmProfile) -> tuple[dict[str, Any], attacks.DistanceResult]:
    """All six attacks on the final network by their labels, and the per-image strongest."""
    results = {
        "gradient (paper, CE)": t1["gradient"],
        "gradient, margin loss": t1["gradient-margin"],
        f"gradient via {prof.surrogate_iters}-step surrogate": t1["gradient-surrogate"],
        "Boundary": t1["boundary"],
        "transfer from LeNet": t1["transfer"],
        "Gaussian noise": t1["gaussian"],
    }
    return results, experiments.compound_of(results, list(results), prof.n_attack)


def beyond_rows(results: dict[str, Any], strongest: attacks.DistanceResult) -> list[dict[str, Any]]:
    rows = []
    for k, v in results.items():
        r = _l2(v["distances"])
        rows.append(
            {
                "attack": k,
                "images": len(r.distances),
                "mean L2": f"{r.mean():.2f}",
                "median L2": f"{r.median():.2f}",
                "robust at 1.5": report.fmt(r.accuracy_at(1.5), 2, pct=True),
                "seconds": f"{v['seconds']:.0f}",
            }
        )
    rows.append(
        {
            "attack": "strongest (per-image minimum)",
            "images": len(strongest.distances),
            "mean L2": f"{strongest.mean():.2f}",
            "median L2": f"{strongest.median():.2f}",
            "robust at 1.5": report.fmt(strongest.accuracy_at(1.5), 2, pct=True),
            "seconds": "—",
        }
    )
    return rows


# --- the yardstick (beyond the paper) -------------------------------------------------------------

Yardstick = dict[str, ProtocolResult]  # zoo name -> the protocol's result
NORM_LABEL = {"linf": "L∞", "l2": "L2"}
# Per-attack curves that stand alone (the protocol's cascade lets the other epsilon attacks search
# only below what earlier attacks found: their share shows in "strongest", not as a curve).
STANDALONE = {
    "linf": ("full", "transfer"),
    "l2": ("full", experiments.ATTACK, "hsja", "transfer", "noise"),
}
ATTACK_LABEL = {
    "full": "APGD (CE, DLR), full unrolling",
    experiments.ATTACK: "the paper's gradient attack",
    "hsja": "HopSkipJump (decision-based)",
    "transfer": "transfer from a ReLU MLP",
    "noise": "Gaussian noise",
}


def attack_curve(r: ProtocolResult, norm: str, which: str) -> attacks.DistanceResult:
    """One line of ``STANDALONE``: "full" is APGD-CE and APGD-DLR through the full unrolling
    together (per image the smaller), anything else that attack alone."""
    if which == "full":
        return attacks.compound(r.attacks[norm]["apgd-ce"], r.attacks[norm]["apgd-dlr"])
    return r.attacks[norm][which]


def _legend_below(fig: plt.Figure, axes, ncol: int, height: float) -> None:
    """One legend for all panels, below them (the curves fill the panels)."""
    handles, labels = {}, {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    labels = list(handles)
    fig.legend([handles[k] for k in labels], labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, height, 1, 1))


def yardstick_curves(ys: Yardstick, claimed: dict[str, list[dict]]) -> plt.Figure:
    """Accuracy vs ε under every attack together (per image the smallest adversarial), L∞ and L2,
    one line per network; the paper's claimed operating points as markers; thresholds dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(7, 4.1), sharey=True)
    for ax, norm in zip(axes, NORMS):
        for i, (name, r) in enumerate(ys.items()):
            label = f"{name} ({len(r.labels)} images)"
            ax.plot(r.config.grid(norm), r.curve(norm).numpy(), "o-", ms=3, color=plots.COLORS[i], label=label)
        for t in next(iter(ys.values())).config.thresholds(norm):
            ax.axvline(t, color="grey", ls="--", lw=1)
        for c in (c for c in claimed.get("mfbm", []) if c["norm"] == norm):
            marker = "*" if "compound" in c["source"] else "^"
            label = f"paper: {c['source'].split(', ')[1]}"
            ax.plot(c["eps"], c["accuracy"], marker, ms=10, color=plots.COLORS[0], mec="black", label=label)
        ax.set(xlabel=f"{NORM_LABEL[norm]} ε", title=f"all attacks, {NORM_LABEL[norm]}", ylim=(0, 1.02))
    axes[0].set_ylabel("accuracy")
    _legend_below(fig, axes, ncol=2, height=0.2)
    return fig


def yardstick_attacks(r: ProtocolResult) -> plt.Figure:
    """The MFBM network per attack: every attack together (black) and each standalone attack."""
    fig, axes = plt.subplots(1, 2, figsize=(7, 4.1), sharey=True)
    for ax, norm in zip(axes, NORMS):
        grid = r.config.grid(norm)
        ax.plot(grid, r.curve(norm).numpy(), color="black", lw=2.2, label="all attacks")
        for w in STANDALONE[norm]:
            color = plots.COLORS[list(ATTACK_LABEL).index(w)]
            curve = attack_curve(r, norm, w).curve(grid).numpy()
            ax.plot(grid, curve, "o-", ms=3, color=color, label=ATTACK_LABEL[w])
        ax.set(xlabel=f"{NORM_LABEL[norm]} ε", title=f"MFBM network, {NORM_LABEL[norm]}", ylim=(0, 1.02))
    axes[0].set_ylabel("accuracy")
    _legend_below(fig, axes, ncol=2, height=0.2)
    return fig


def _strongest(r: ProtocolResult, norm: str, top: int = 2) -> str:
    return ", ".join(f"{a} {n}" for a, n in list(r.strongest(norm).items())[:top])


def yardstick_rows(ys: Yardstick) -> list[dict[str, str]]:
    """The protocol's table: images, clean accuracy, accuracy at the thresholds, median minimal
    perturbation, the attacks that gave the smallest adversarial most often (image counts), flags."""
    rows = []
    for name, r in ys.items():
        row = {"model": name, "images": str(len(r.labels)), "clean": report.fmt(r.clean_accuracy, 2, pct=True)}
        for norm in r.norms:
            label = NORM_LABEL[norm]
            for t, acc in r.at_thresholds(norm).items():
                row[f"{label} {t:g}"] = report.fmt(acc, 2, pct=True)
            row[f"{label} median"] = report.fmt(r.median(norm), 3 if norm == "linf" else 2)
            row[f"strongest {label}"] = _strongest(r, norm)
        row["flags"] = "; ".join(f"{NORM_LABEL[f.norm]}: {f.kind}" for f in r.flags()) or "none"
        rows.append(row)
    return rows


def attack_rows(r: ProtocolResult) -> list[dict[str, str]]:
    """Per norm and attack on the MFBM network: its family, for how many images it found the
    smallest adversarial, and its wall time (the trivial bound included)."""
    rows = []
    for norm in r.norms:
        counts = r.strongest(norm)
        for a, s in r.seconds[norm].items():
            rows.append(
                {
                    "norm": NORM_LABEL[norm],
                    "attack": a,
                    "gradient from": _GRADIENT_FROM.get(a, "—"),
                    "family": r.families.get(a, "bound"),
                    "smallest for (images)": str(counts.get(a, 0)),
                    "seconds": f"{s:.0f}",
                }
            )
    return rows


_GRADIENT_FROM = {
    "apgd-ce": "full unrolling",
    "apgd-dlr": "full unrolling",
    "apgd-shallow-linf": "shallow unrolling",
    "apgd-shallow-l2": "shallow unrolling",
    experiments.ATTACK: "full unrolling",
}


def beside_rows(ys: Yardstick, table1: experiments.Table1 | None) -> list[dict[str, str]]:
    """The MFBM network at the paper's threshold: the yardstick (all attacks), the paper's own
    gradient attack inside it (same images), the chapter's Table 1 compound (the paper's four
    attacks) and the paper's Table 1."""
    found, n = claims.combined({"yardstick": ys})
    combined = found["mfbm"].distances
    own = claims.paper_attack({"yardstick": ys}, n)
    eps = claims.ROBUST_EPS
    cols = {
        f"yardstick, all attacks ({n} images)": combined,
        f"the paper's attack ({n} images)": own,
    }
    if table1 is not None:
        cols[f"chapter's Table 1 compound ({table1.n_boundary} images)"] = table1.ours["compound"]
    paper = {k: claims.PAPER_TABLE1[k] for k in ("gradient", "compound")}
    rows = []
    for measure, get, i in (
        (f"robust at L2 {eps}", lambda d: report.fmt(d.accuracy_at(eps), 2, pct=True), 1),
        ("mean L2", lambda d: report.fmt(d.mean()), 0),
        ("median L2", lambda d: report.fmt(d.median()), None),
    ):
        row = {"measure": measure, **{k: get(d) for k, d in cols.items()}}
        row["paper: gradient / compound"] = (
            "—" if i is None else " / ".join(report.fmt(v[i], 2, pct=i == 1) for v in paper.values())
        )
        rows.append(row)
    return rows


def yardstick_reading(ys: Yardstick) -> str:
    """The yardstick's result for the paper's claim in one generated paragraph (Markdown)."""
    found, n = claims.combined({"yardstick": ys})
    m, r, lenet = found["mfbm"], found["mfbm-rbm"], found["mfbm-lenet"]
    own = claims.paper_attack({"yardstick": ys}, n)
    eps = claims.ROBUST_EPS
    paper_grad, paper_comp = claims.PAPER_TABLE1["gradient"][1], claims.PAPER_TABLE1["compound"][1]
    flags = ", ".join(m.flags) or "none"
    linf = {k: (ys[k].distances("linf").distances[:n] > 0.1).double().mean().item() for k in claims.MODELS}
    return (
        f"On the first {n} test images the strongest attack per image leaves **{m.robust:.0%}** of "
        f"them robust at L2 {eps} for the MFBM network (median distance {m.distances.median():.2f}), "
        f"against {r.robust:.0%} for the RBM network and {lenet.robust:.0%} for LeNet (at L∞ 0.1: "
        f"{linf['mfbm']:.0%}, {linf['mfbm-rbm']:.0%} and {linf['mfbm-lenet']:.0%}). The paper "
        f"reports {paper_grad:.0%} against its gradient attack and {paper_comp:.0%} against the "
        f"compound of four attacks; its gradient attack alone, run inside the yardstick on the same "
        f"images, leaves {own.accuracy_at(eps):.0%}. Sanity flags for the MFBM network: {flags}."
    )


# --- generated sentences for the chapter's text ------------------------------------------------------


def patch_reading(pat: dict[str, Any]) -> str:
    cov, paper = pat["coverage_679"], claims.COVERAGE
    where = "short of" if cov < paper else "above"
    return (
        f"The top 679 patterns cover {cov:.2%} of the occurrences, {100 * abs(paper - cov):.2f} points "
        f"{where} the paper's {paper:.0%}; {pat['n_for_98']} patterns reach 98 %."
    )


def small_reading(appd: dict[str, Any], appe: dict[str, Any]) -> str:
    d_jh, d_rbm = appd["history"]["D_exact"][-1], appe["rbm_history"]["D_exact"][-1]
    return f"Exact D at the end of training: J_h machine {d_jh:.3f}, RBM-connected machine {d_rbm:.3f}."


def fig4_reading(f4: dict[str, Any], prof: MfbmProfile) -> str:
    ratio = experiments.noise_ratio(f4)[:, 0]
    per = ", ".join(f"{r:.2f} (D = {d:.2f})" for r, d in zip(ratio, f4["D"]))
    return (
        f"{prof.noise_patterns} training and {prof.noise_patterns} random patterns, {prof.noise_draws} "
        f"noise draws each. Δr/Δt at ε = {prof.noise_eps[0]} per checkpoint: {per}."
    )


def beyond_reading(
    t1: dict[str, Any], strongest: attacks.DistanceResult, lenet_boundary: attacks.DistanceResult
) -> str:
    """Which attack gave the per-image minimum, the surrogate vs the paper's attack, and the
    Boundary attack on LeNet at the same budget (Markdown)."""
    counts = ", ".join(f"{k}: {n}" for k, n in Counter(strongest.sources).most_common())
    surrogate, paper = (_l2(t1[k]["distances"]).mean() for k in ("gradient-surrogate", "gradient"))
    return (
        f"Images for which each attack gave the per-image minimum: {counts}. Mean L2 of the attack "
        f"through the shallow surrogate {surrogate:.2f} vs the paper's attack {paper:.2f}; strongest "
        f"{strongest.mean():.2f} (mean), {strongest.accuracy_at(1.5):.0%} robust at 1.5. The Boundary "
        f"attack on LeNet with the same budget: mean L2 {lenet_boundary.mean():.2f}, median "
        f"{lenet_boundary.median():.2f}."
    )


def summary(prof: MfbmProfile, results: dict[str, Any]) -> str:
    """The chapter's result in one generated paragraph (Markdown): the robustness verdicts, what
    the yardstick measured beside the paper's numbers, and the tally of all claims."""
    from ... import claims as core

    rows = {r["id"]: r for r in core.scorecard(claims.RULES, {**results, "profile": prof})}
    tally = ", ".join(f"{n} {v}" for v in core.VERDICTS if (n := sum(r["verdict"] == v for r in rows.values())))
    robust = " ".join(f"{k} ({rows[k]['claim']}): **{rows[k]['verdict']}**." for k in ("MFBM-7", claims.HEADLINE))
    reading = yardstick_reading(results["yardstick"]) if results.get("yardstick") is not None else ""
    return f"**Result at `{prof.name}`.** {robust} {reading} All {len(rows)} claims: {tally}."
