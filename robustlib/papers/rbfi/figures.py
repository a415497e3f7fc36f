"""The RBFI chapter's figures, tables and summary, drawn from the steps' results.

Each function takes what a step returned (``experiments.table1(exp)`` ...) and the profile, and
draws one figure or returns the rows of one table, so the chapter's cells stay short.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import torch

from ... import plots, report
from .claims import BASELINES_ATTACKED, PSEUDO, RBFI_ATTACKED, whole_percent
from .experiments import ATTACKS, KINDS, at, mean_std, pm
from .model import SQRT_2_OVER_E
from .profile import RbfiProfile

BEYOND_LABELS = {
    "fgsm/true": "FGSM, true grad",
    "fgsm/pseudo": "FGSM, pseudograd",
    "ifgsm/true": "I-FGSM, true grad",
    "ifgsm/pseudo": "I-FGSM, pseudograd",
    "pgd/true": "PGD paper protocol, true grad",
    "pgd/pseudo": "PGD paper protocol, pseudograd",
    "pgd_buggy/true": "PGD with the reference box bug, true grad",
    "pgd_sign/true": "PGD signed steps, true grad",
    "pgd_sign/pseudo": "PGD signed steps, pseudograd",
    "pgd_margin/pseudo": "PGD signed, margin loss, pseudograd",
    "noise/true": "uniform noise",
    "boundary": "Boundary (L2, counted in L∞)",
    "transfer": "transfer from ReLU",
}
RELU_PGD_LABELS = {
    "pgd": "paper protocol (AdaDelta steps, correct box)",
    "pgd_buggy": "reference code (AdaDelta steps, buggy box)",
    "pgd_sign": "Madry (signed steps, correct box)",
}
EVAL_CURVE = "accuracy (first 1,000 test images)"


def geometry(p: RbfiProfile) -> dict[str, str]:
    """The main networks' layer sizes, e.g. RBFI ``64∧-64∨-10∧`` and ReLU ``64-64-10``."""
    sizes = (*p.hidden, 10)
    signs = p.andor.replace("^", "∧").replace("v", "∨").replace("*", "∗")
    plain = "-".join(map(str, sizes))
    return {"rbfi": "-".join(f"{w}{c}" for w, c in zip(sizes, signs)), "relu": plain, "sigmoid": plain}


def _percent(value: float) -> str:
    return report.fmt(value, 2, pct=True)


def _grid(p: RbfiProfile, attack: str) -> tuple[float, ...]:
    return p.pgd_eps if attack == "pgd" else p.eps_grid


# --- Table 1 and Fig. 2 --------------------------------------------------------------------------


def clean_rows(t12: dict[str, Any], p: RbfiProfile) -> list[dict[str, Any]]:
    geo = geometry(p)
    return [
        {
            "network": f"{KINDS[k]} {geo[k]}",
            "runs": len(t12[k]["runs"]),
            "clean accuracy (ours)": pm([r["clean"] for r in t12[k]["runs"]]),
            "paper (Table 1)": report.NOT_AVAILABLE,
        }
        for k in KINDS
    ]


def training_curves(curves: dict[str, list[float]], title: str = "", ax=None):
    """Per-epoch accuracy curves, one per label."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.3))
    for label, c in curves.items():
        ax.plot(range(1, len(c) + 1), c, marker="o", label=label)
    ax.set(xlabel="epoch", ylabel=EVAL_CURVE, title=title)
    ax.legend()
    return ax


def fig2(t12: dict[str, Any], p: RbfiProfile) -> None:
    """Accuracy vs ε of the three main networks under the paper's four perturbations."""
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), sharey=True)
    for ax, (a, title) in zip(axes, ATTACKS.items()):
        ys, errs = {}, {}
        for k in KINDS:
            if a == "pgd":
                ys[KINDS[k]] = t12[k]["pgd"]
                continue
            runs = torch.tensor([r[a] for r in t12[k]["runs"]])
            ys[KINDS[k]] = runs.mean(0)
            if len(runs) > 1:
                errs[KINDS[k]] = runs.std(0)
        plots.curves(
            _grid(p, a),
            ys,
            errors=errs or None,
            xlabel="L∞ ε ([0,1] pixels)",
            ylabel="accuracy",
            title=title,
            ax=ax,
            ylim=(0, 1.02),
            vline=0.3,
        )
    fig.suptitle(
        f"Fig. 2: {p.n_attack or 10000} images (PGD: {p.n_pgd}, run 0, {p.pgd_steps} steps × "
        f"{p.pgd_restarts} restarts); RBFI attacked with its true gradient",
        y=1.02,
    )
    plt.show()


def table1_rows(t12: dict[str, Any], p: RbfiProfile) -> list[dict[str, Any]]:
    rows = []
    for k in KINDS:
        row = {"network": KINDS[k], "clean": pm([r["clean"] for r in t12[k]["runs"]])}
        for a in ("fgsm", "ifgsm", "noise"):
            row[f"{ATTACKS[a]} ε=0.3"] = pm([at(r[a], p.eps_grid) for r in t12[k]["runs"]])
        row["PGD ε=0.3 (run 0)"] = _percent(at(t12[k]["pgd"], p.pgd_eps))
        row["paper"] = report.NOT_AVAILABLE
        rows.append(row)
    return rows


def table1_caption() -> str:
    return (
        "Table 1 at ε = 0.3 (Table 1's ε is missing from the paper text; 0.3 assumed). The paper's prose: "
        f"RBFI > {whole_percent(RBFI_ATTACKED)} where ReLU and sigmoid < {whole_percent(BASELINES_ATTACKED)}."
    )


# --- beyond the paper ----------------------------------------------------------------------------


def beyond_plot(bey: dict[str, Any], p: RbfiProfile) -> None:
    """RBFI under the paper's attacks (true vs pseudo gradient) and under adaptive and
    gradient-free attacks, with the strongest (any attack, any ε′ ≤ ε) as a dashed line."""
    eps = list(p.pgd_eps)
    panels = {
        "the paper's attacks: true vs pseudo gradient": (
            "fgsm/true",
            "fgsm/pseudo",
            "ifgsm/true",
            "ifgsm/pseudo",
            "pgd/true",
            "pgd/pseudo",
            "pgd_buggy/true",
        ),
        "adaptive and gradient-free attacks": (
            "pgd_sign/true",
            "pgd_sign/pseudo",
            "pgd_margin/pseudo",
            "boundary",
            "transfer",
            "noise/true",
        ),
    }
    _, axes = plt.subplots(1, 2, figsize=(13, 4), sharey=True)
    for ax, (title, keys) in zip(axes, panels.items()):
        plots.curves(
            eps,
            {BEYOND_LABELS[k]: bey["rbfi"][k] for k in keys},
            xlabel="L∞ ε",
            ylabel="RBFI accuracy",
            title=title,
            ax=ax,
            ylim=(0, 1.02),
        )
        ax.plot(
            eps, bey["strongest"]["acc"], color="black", lw=2.5, ls="--", label="strongest (any attack, any ε′ ≤ ε)"
        )
        ax.legend(fontsize=7)
    plt.show()


def beyond_rows(bey: dict[str, Any], p: RbfiProfile) -> list[dict[str, Any]]:
    eps = list(p.pgd_eps)
    rows = [
        {"attack on RBFI (run 0)": BEYOND_LABELS[k], **{f"ε={e}": _percent(v[i]) for i, e in enumerate(eps)}}
        for k, v in bey["rbfi"].items()
    ]
    rows.append(
        {
            "attack on RBFI (run 0)": f"strongest ({bey['strongest']['n']} common images)",
            **{f"ε={e}": _percent(v) for e, v in zip(eps, bey["strongest"]["acc"])},
        }
    )
    rows.append(
        {
            "attack on RBFI (run 0)": "best single attack",
            **{f"ε={e}": BEYOND_LABELS[b] for e, b in zip(eps, bey["strongest"]["best_single"])},
        }
    )
    return rows


def relu_pgd_rows(bey: dict[str, Any], p: RbfiProfile) -> list[dict[str, Any]]:
    return [
        {"PGD on ReLU (run 0)": RELU_PGD_LABELS[k], **{f"ε={e}": _percent(v[i]) for i, e in enumerate(p.pgd_eps)}}
        for k, v in bey["relu"].items()
    ]


# --- Fig. 3, Tables 2 and 3 ----------------------------------------------------------------------


def fig3(f3: dict[str, Any], p: RbfiProfile) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), sharey=True)
    for ax, (a, title) in zip(axes, ATTACKS.items()):
        plots.curves(
            _grid(p, a),
            {name: r[a] for name, r in f3.items()},
            xlabel="L∞ ε",
            ylabel="accuracy",
            title=title,
            ax=ax,
            ylim=(0, 1.02),
            vline=0.3,
        )
    fig.suptitle(f"Fig. 3 ({p.n_attack or 10000} images; PGD {p.n_pgd})", y=1.02)
    plt.show()


def fig3_rows(f3: dict[str, Any], p: RbfiProfile) -> list[dict[str, Any]]:
    return [
        {
            "network": n,
            "clean": _percent(r["clean"]),
            **{f"{ATTACKS[a]} ε=0.3": _percent(at(r[a], _grid(p, a))) for a in ATTACKS},
        }
        for n, r in f3.items()
    ]


def table2_rows(t2: dict[str, dict[str, list[float]]]) -> list[dict[str, Any]]:
    return [
        {"layers": name, **{f"width {w}": pm(v, 2) for w, v in r.items()}, "paper": report.NOT_AVAILABLE}
        for name, r in t2.items()
    ]


def table3_rows(t3: dict[str, Any], p: RbfiProfile) -> list[dict[str, Any]]:
    return [
        {
            "network": f"RBFI {geometry(p)['rbfi']}, run {i}",
            "true gradient": _percent(tr["clean"]),
            "pseudogradient": _percent(ps["clean"]),
            "paper": f"{PSEUDO.paper}; cells not available",
        }
        for i, (tr, ps) in enumerate(zip(t3["true"], t3["pseudo"]))
    ]


# --- Figs. 4 and 5, Table 4, section 6.8 ---------------------------------------------------------


def fig4(f4: dict[str, Any], p: RbfiProfile) -> None:
    _, axes = plt.subplots(1, 3, figsize=(13, 3.5), sharey=True)
    for ax, a in zip(axes, ("fgsm", "ifgsm", "pgd")):
        plots.curves(
            _grid(p, a),
            {f"λ={lam} (clean {100 * r['clean']:.0f} %)": r[a] for lam, r in f4.items()},
            xlabel="L∞ ε",
            ylabel="accuracy",
            title=f"Fig. 4, ReLU: {ATTACKS[a]}",
            ax=ax,
            ylim=(0, 1.02),
        )
    plt.show()


def fig5(f5: dict[str, Any], p: RbfiProfile) -> None:
    _, ax = plt.subplots(figsize=(6.5, 3.6))
    for color, (n, r) in zip(plots.COLORS, f5.items()):
        ax.plot(p.pgd_eps, r["pgd"], color=color, marker="o", ms=3, label=f"{n}, true gradient")
        ax.plot(p.pgd_eps, r["pgd_pseudo"], color=color, marker="o", ms=3, ls="--", label=f"{n}, pseudogradient")
    ax.set(
        xlabel="L∞ ε",
        ylabel="accuracy",
        ylim=(0, 1.02),
        title=f"Fig. 5: RBFI under PGD (paper protocol, {p.n_fig5} images)",
    )
    ax.legend(fontsize=7)
    plt.show()


def rbfi_bound_limit(p: RbfiProfile) -> float:
    """Bound (8) of an RBFI network with u <= 3 and the profile's number of layers."""
    return (3 * SQRT_2_OVER_E) ** (len(p.hidden) + 1)


def table4_rows(t4: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"network": r["network"], "sensitivity bound (ours)": f"{r['bound']:.4g}", "paper": report.NOT_AVAILABLE}
        for r in t4["rows"]
    ]


def deep_rows(dp: dict[str, Any], p: RbfiProfile) -> list[dict[str, Any]]:
    def paper(k):
        return report.NOT_AVAILABLE + (" (text: 'barely better than random')" if k == "sigmoid" else "")

    return [
        {
            "network": f"{KINDS[k]} {p.deep_width}×{p.deep_depth}",
            "clean (ours)": _percent(r["clean"]),
            "paper": paper(k),
        }
        for k, r in dp.items()
    ]


# --- what the numbers say ------------------------------------------------------------------------


def summary(results: dict[str, Any], p: RbfiProfile) -> str:
    """The chapter's conclusions in a few bullet points (Markdown), computed from this run."""
    t12, bey, f3 = results["table1"], results["beyond"], results["fig3"]
    clean = {k: [r["clean"] for r in t12[k]["runs"]] for k in KINDS}
    ifg = {k: mean_std([at(r["ifgsm"], p.eps_grid) for r in t12[k]["runs"]])[0] for k in KINDS}
    fg = {k: mean_std([at(r["fgsm"], p.eps_grid) for r in t12[k]["runs"]])[0] for k in KINDS}
    pgd3 = {k: at(t12[k]["pgd"], p.pgd_eps) for k in KINDS}
    eps = list(p.pgd_eps)
    i3 = eps.index(0.3) if 0.3 in eps else len(eps) // 2
    e_hi = eps[min(i3 + 1, len(eps) - 1)]
    strong, rb = bey["strongest"]["acc"], {k: v[i3] for k, v in bey["rbfi"].items()}

    def f(v):
        return f"{100 * v:.0f} %"

    true_best = max(rb[k] for k in ("fgsm/true", "ifgsm/true", "pgd/true"))
    true_worst = min(rb[k] for k in ("fgsm/true", "ifgsm/true", "pgd/true"))
    base_worst = max(fg["relu"], ifg["relu"], pgd3["relu"], fg["sigmoid"], ifg["sigmoid"], pgd3["sigmoid"])
    pseudo_best = min(rb[k] for k in ("ifgsm/pseudo", "pgd/pseudo", "pgd_sign/pseudo", "pgd_margin/pseudo"))
    free = min(rb["boundary"], rb["transfer"])
    relu_adv = at(f3["ReLU(PGD)"]["pgd"], p.pgd_eps)
    if strong[i3] >= 0.9:
        verdict = "the paper's > 90 % survives every attack we ran"
    elif strong[i3] >= max(relu_adv, bey["relu"]["pgd_sign"][i3]) + 0.1:
        verdict = "a real robustness advantage remains at this scale, but below the paper's > 90 %"
    else:
        verdict = "no clear robustness advantage over the (adversarially trained) ReLU network remains"
    support = bey["grad_support"]
    lines = [
        f"* **Clean accuracy**: RBFI {pm(clean['rbfi'])}, sigmoid {pm(clean['sigmoid'])}, ReLU {pm(clean['relu'])} "
        f"({p.epochs} epochs on {p.n_train or 60000} images).",
        f"* **The paper's protocol** (true gradients) at ε = {eps[i3]}: RBFI keeps {f(true_worst)}–{f(true_best)} "
        f"under FGSM, I-FGSM and PGD, while ReLU and sigmoid keep at most {f(base_worst)}: "
        + (
            "the paper's qualitative claim holds under its own attacks."
            if true_worst >= base_worst + 0.3
            else "the paper's claim does not hold even under its own attacks."
        ),
        f"* **Through the pseudogradient** the same attacks reach I-FGSM {f(rb['ifgsm/pseudo'])} and "
        f"PGD {f(rb['pgd/pseudo'])} (true gradient: {f(rb['ifgsm/true'])} and {f(rb['pgd/true'])}). The true "
        f"input gradient is non-zero on about {support['true']:.0f} pixels per image (the argmax pixels of the "
        f"first layer), the pseudogradient on {support['pseudo']:.0f}"
        + (
            ": part of the robustness to true-gradient attacks is **gradient masking**."
            if pseudo_best < true_worst - 0.05
            else "; the two gradients give similar attacks here."
        ),
        f"* **The strongest attack** (any of them, per image) leaves RBFI at {f(strong[i3])} at ε = {eps[i3]} and "
        f"{f(strong[eps.index(e_hi)])} at ε = {e_hi}; the best gradient-free attack (Boundary or transfer) "
        f"leaves {f(free)} at ε = {eps[i3]}"
        + (", weaker than the pseudogradient attacks." if free > pseudo_best else "."),
        f"* **Against the baselines** at ε = {eps[i3]}: the normally trained ReLU network keeps "
        f"{f(bey['relu']['pgd_sign'][i3])} under signed-step PGD and the PGD-trained ReLU {f(relu_adv)} under the "
        f"paper's PGD: {verdict}.",
        f"* **The reference code's PGD bug** makes PGD weaker on ReLU too: at ε = {eps[0]}, ReLU keeps "
        f"{f(bey['relu']['pgd_buggy'][0])} under the buggy box and {f(bey['relu']['pgd'][0])} under the correct "
        f"one; on RBFI at ε = {eps[i3]}: {f(rb['pgd_buggy/true'])} vs {f(rb['pgd/true'])}.",
    ]
    return "\n".join(lines)
