"""The MFBM chapter's figures and tables, drawn from the steps' stored results.

Each function takes what a step returned (``experiments.appendix_d(exp)`` etc.) and draws one
figure of the paper (the chapter calls ``plt.show()``) or returns the rows of one table
(``report.show_table``). No computation happens here beyond reading the results.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from ... import attacks, plots, report
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


# --- App. D and E ---------------------------------------------------------------------------------


def fig7(history: dict[str, torch.Tensor]) -> plt.Figure:
    """Fig. 7: mean-field vs exact D, p1, p2 and p1/p2 along training (exact D on the x axis)."""
    h = {k: v.numpy() for k, v in history.items()}
    x = h["D_exact"]
    mf, ex = {"color": plots.COLORS[1], "label": "mean field"}, {"color": plots.COLORS[0], "label": "exact"}
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
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
    fig.suptitle("Fig. 7: training progresses to the right (exact D decreases)", y=1.02)
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
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    panels = (("jh", "Fig. 8: machine with hidden couplings"), ("rbm", "Fig. 9: RBM-connected machine (J_h = 0)"))
    for ax, (key, title) in zip(axes, panels):
        d = appe[f"delta_{key}"]
        ax.plot(small_eps, d[:, train_idx].mean(1).numpy(), "o-", color=TRAIN_COLOR, label="2 training states")
        ax.plot(small_eps, d[:, other].mean(1).numpy(), "o-", color=OTHER_COLOR, label="other 30 states")
        ax.set(xlabel="noise amplitude ε", ylabel="Δ (L2 change of the hidden magnetisations)", title=title)
        ax.legend(fontsize=8)
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


def stage1(s1: dict[str, Any], prof: MfbmProfile) -> plt.Figure:
    """Stage 1: D along training (checkpoints dotted when it is the feature machine) and the 32
    learned 4x4 filters W."""
    h = s1["history"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1, 1.4]})
    axes[0].plot(h["step"], h["D"], color=plots.COLORS[0])
    for c in prof.checkpoints if not experiments.staged(prof) else []:
        axes[0].axvline(c, color="grey", ls=":", lw=1)
    title = "stage 1: 16 + 32 machine, 679 patterns"
    axes[0].set(xlabel="Adam step", ylabel="D (batch-normalised mean field)", title=title)
    filters = s1["snapshots"][str(prof.stage1_steps)]["W"].T.reshape(32, 4, 4)  # W: (16, 32)
    vmax = filters.abs().max().item()
    axes[1].axis("off")
    inner = axes[1].inset_axes([0, 0, 1, 1])
    inner.axis("off")
    grid = torch.ones(4 * 5 - 1, 8 * 5 - 1) * float("nan")
    for k in range(32):
        r, c = divmod(k, 8)
        grid[r * 5 : r * 5 + 4, c * 5 : c * 5 + 4] = filters[k]
    inner.imshow(grid.numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    inner.set_title("the 32 learned 4x4 filters W (red +, blue −)")
    return fig


def stage2(s2: dict[str, Any], prof: MfbmProfile) -> plt.Figure:
    """Stage 2 (paper profile): batch D along training and D of each checkpoint on a fixed batch."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(s2["history"]["step"], s2["history"]["D"], color=plots.COLORS[0], label="batch D (training)")
    snaps = s2["snapshots"]
    ax.plot(
        [int(k) for k in snaps],
        [float(v["D"]) for v in snaps.values()],
        "o",
        color=plots.COLORS[1],
        label="D on a fixed batch (checkpoints)",
    )
    title = f"stage 2: 64 + {4 * 32 + prof.n_top} machine, batches of {prof.stage2_batch}"
    ax.set(xlabel="Adam step", ylabel="D", title=title)
    ax.legend(fontsize=8)
    return fig


def fig4(f4: dict[str, Any], noise_eps: tuple[float, ...]) -> plt.Figure:
    """Fig. 4: Δr/Δt against the checkpoint's D (main) and Δ(ε) at the final checkpoint (inset)."""
    ratio = experiments.noise_ratio(f4)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for j, e in enumerate(noise_eps):
        axes[0].plot(f4["D"], ratio[:, j], "o-", label=f"ε = {e}")
    axes[0].invert_xaxis()
    axes[0].set(
        xlabel="relative entropy D of the checkpoint (training →)",
        ylabel="Δr / Δt",
        title="Fig. 4 (main): random vs training patterns",
    )
    axes[1].plot(noise_eps, f4["delta_train"][-1].numpy(), "o-", color=TRAIN_COLOR, label="training patterns")
    axes[1].plot(noise_eps, f4["delta_random"][-1].numpy(), "o-", color=OTHER_COLOR, label="random patterns")
    axes[1].set(xlabel="noise amplitude ε", ylabel="Δ", title="Fig. 4 (inset): final checkpoint")
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
    ax.set_title("Fig. 3: adversarial MSE (blue) and clean error (orange) vs pre-training")
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
    """One line: mean L2 and clean error from the best-D to the worst-D checkpoint, and the
    references."""
    by_d = sorted([k for k in f3 if k.startswith("mfbm-")], key=lambda k: f3[k]["D"])
    l2 = [experiments.mean_l2(f3[k]["distances"]) for k in by_d]
    errors = [f"{100 * f3[k]['clean_error']:.1f} %" for k in by_d]
    corr = np.corrcoef([f3[k]["D"] for k in by_d], l2)[0, 1] if len(by_d) > 2 else float("nan")
    rbm, lenet = (experiments.mean_l2(f3[k]["distances"]) for k in ("rbm", "lenet"))
    return (
        f"mean L2 from the best-D to the worst-D checkpoint {[round(v, 2) for v in l2]} "
        f"(correlation with D {corr:+.2f}); clean error {errors}; "
        f"best MFBM {max(l2):.2f} vs RBM network {rbm:.2f} vs LeNet {lenet:.2f}"
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
    comp, n_b = summary.ours["compound"], summary.n_boundary
    same = ", ".join(f"{k} {v.mean():.2f} / {v.accuracy_at(1.5):.0%}" for k, v in summary.same_images.items())
    return (
        f"on the same first {n_b} images (where all four ran): {same}; compound {comp.mean():.2f} / "
        f"{comp.accuracy_at(1.5):.0%}; attack giving the compound: {summary.compound_sources}\n"
        f"Gaussian noise: no adversarial found on {summary.gaussian_not_found} of "
        f"{len(summary.ours['gaussian'].distances)} images (its mean is over the others; they count as robust)"
    )


def fig5(t1: dict[str, dict[str, Any]], f3: dict[str, Any]) -> plt.Figure:
    """Fig. 5: histograms of the adversarial L2 distances (line at ε = 1.5)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2), sharey=False)
    hists = [
        ("gradient attack on MFBM", t1["gradient"]["distances"]),
        ("Boundary attack on MFBM", t1["boundary"]["distances"]),
        ("gradient attack on LeNet", f3["lenet"]["distances"]),
    ]
    for ax, (title, d) in zip(axes, hists):
        ax.hist(d[torch.isfinite(d)].numpy(), bins=20, color=plots.COLORS[0])
        ax.axvline(1.5, color="k", lw=1)
        ax.set(xlabel="L2 norm", ylabel="count", title=title)
    fig.suptitle("Fig. 5: histograms of adversarial L2 distances (line at ε = 1.5)", y=1.03)
    fig.tight_layout()
    return fig


def fig6(t1: dict[str, dict[str, Any]], model: torch.nn.Module, prof: MfbmProfile, device: str) -> str | None:
    """Fig. 6: the first test image of each class, its gradient adversarial, the difference and
    the Boundary adversarial where the Boundary set holds the image. Returns a caption line (None
    when nothing is stored to show)."""
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
    b_adv = [b_res["adversarials"][b_show.index(int(i))] if have_b and int(i) in b_show else blank for i in show]
    imgs = torch.cat([x_att[show], adv, 0.5 + 0.5 * diff / scale, torch.stack(b_adv)])
    titles = (
        [f"original {int(y_att[i])}" for i in show]
        + [f"grad: {int(p)}, L2 {g_res['distances'][i]:.2f}" for p, i in zip(pred, show)]
        + ["difference"] * len(show)
        + [f"Boundary L2 {b_res['distances'][int(i)]:.2f}" if int(i) in b_show else "(no Boundary run)" for i in show]
    )
    suptitle = "Fig. 6: first test image of each class; gradient adversarial; difference; Boundary adversarial"
    plots.image_grid(imgs, titles=titles, ncols=len(show), size=1.3, suptitle=suptitle)
    n_b = min(prof.boundary_images, prof.n_attack)
    return (
        f"classes shown: {sorted(int(y_att[i]) for i in show)}; with a Boundary adversarial: "
        f"{sorted(int(y_att[i]) for i in show if int(i) in b_show)} (Boundary set: first {n_b} test images)"
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
