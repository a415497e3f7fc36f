"""The RBFI chapter's figures, tables and summary, drawn from the steps' results.

Each function takes what a step returned (``experiments.table1(exp)`` ...) and the profile, and
draws one figure or returns the rows of one table, so the chapter's cells stay short.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import torch

from ... import plots, protocol, report
from .claims import BASELINES_ATTACKED, PSEUDO, RBFI_ATTACKED, whole_percent
from .experiments import ATTACKS, KINDS, at, first_images, mean_std, pm
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


def _grid_2x2(height: float = 6.2):
    """A 2 x 2 grid of panels that fits the book's column (7 inches at 100 dpi)."""
    fig, axes = plt.subplots(2, 2, figsize=(7, height), sharex=True, sharey=True)
    return fig, axes.ravel()


def fig2(t12: dict[str, Any], p: RbfiProfile):
    """Accuracy vs ε of the three main networks under the paper's four perturbations (2 x 2)."""
    fig, axes = _grid_2x2()
    for i, (ax, (a, title)) in enumerate(zip(axes, ATTACKS.items())):
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
            xlabel="L∞ ε" if i >= 2 else "",
            ylabel="accuracy" if i % 2 == 0 else "",
            title=title,
            ax=ax,
            ylim=(0, 1.02),
            vline=0.3,
        )
        if i == 1:  # the I-FGSM panel's lower right is empty: the legend goes there
            ax.legend(fontsize=8, loc="center right")
        else:
            ax.get_legend().remove()
    fig.tight_layout()
    return fig


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


def beyond_plot(bey: dict[str, Any], p: RbfiProfile):
    """RBFI under the paper's attacks (true vs pseudo gradient, top) and under adaptive and
    gradient-free attacks (bottom), with the strongest (any attack, any ε′ ≤ ε) dashed."""
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
    fig, axes = plt.subplots(2, 1, figsize=(7, 10))
    for i, (ax, (title, keys)) in enumerate(zip(axes, panels.items())):
        plots.curves(
            eps,
            {BEYOND_LABELS[k]: bey["rbfi"][k] for k in keys},
            xlabel="L∞ ε",
            ylabel="RBFI accuracy",
            title=title,
            ax=ax,
            ylim=(0, 1.02),
        )
        ax.plot(eps, bey["strongest"]["acc"], color="black", lw=2.5, ls="--", label="strongest (any attack, ε′ ≤ ε)")
        ax.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.tight_layout()
    return fig


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


def fig3(f3: dict[str, Any], p: RbfiProfile):
    """The paper's four attacks on RBFI and on the (adversarially trained) ReLU networks (2 x 2)."""
    fig, axes = _grid_2x2()
    for i, (ax, (a, title)) in enumerate(zip(axes, ATTACKS.items())):
        plots.curves(
            _grid(p, a),
            {name: r[a] for name, r in f3.items()},
            xlabel="L∞ ε" if i >= 2 else "",
            ylabel="accuracy" if i % 2 == 0 else "",
            title=title,
            ax=ax,
            ylim=(0, 1.02),
            vline=0.3,
        )
        if i == 1:  # the I-FGSM panel's lower right is empty: the legend goes there
            ax.legend(fontsize=8, loc="center right")
        else:
            ax.get_legend().remove()
    fig.tight_layout()
    return fig


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


def fig4(f4: dict[str, Any], p: RbfiProfile):
    """ReLU networks trained with λ·S under FGSM, I-FGSM and PGD (three panels and the legend)."""
    fig, axes = plt.subplots(2, 2, figsize=(7, 6.2), sharey=True)
    axes = axes.ravel()
    for i, (ax, a) in enumerate(zip(axes, ("fgsm", "ifgsm", "pgd"))):
        plots.curves(
            _grid(p, a),
            {f"λ={lam} (clean {100 * r['clean']:.0f} %)": r[a] for lam, r in f4.items()},
            xlabel="L∞ ε" if i >= 1 else "",
            ylabel="accuracy" if i % 2 == 0 else "",
            title=ATTACKS[a],
            ax=ax,
            ylim=(0, 1.02),
        )
        ax.get_legend().remove()
    axes[3].axis("off")
    axes[3].legend(*axes[0].get_legend_handles_labels(), loc="center", fontsize=9, title="ReLU trained with λ·S")
    fig.tight_layout()
    return fig


def fig5_name(key: str) -> str:
    """``"u<=10, lambda=0.001"`` -> ``"u ≤ 10, λ = 0.001"``."""
    return key.replace("<=", " ≤ ").replace("lambda=", "λ = ")


def fig5(f5: dict[str, Any], p: RbfiProfile):
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    for color, (n, r) in zip(plots.COLORS, f5.items()):
        ax.plot(p.pgd_eps, r["pgd"], color=color, marker="o", ms=3, label=f"{fig5_name(n)}, true gradient")
        ax.plot(p.pgd_eps, r["pgd_pseudo"], color=color, marker="o", ms=3, ls="--", label=f"{fig5_name(n)}, pseudo")
    ax.set(xlabel="L∞ ε", ylabel="accuracy", ylim=(0, 1.02))
    ax.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.tight_layout()
    return fig


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


# --- the yardstick -------------------------------------------------------------------------------

NORM_LABEL = {"linf": "L∞", "l2": "L2"}
PAPER_ATTACK = {"pgd": "PGD", "ifgsm": "I-FGSM"}
ZOO_LABEL = {"rbfi": "RBFI", "rbfi-relu": "ReLU"}
ATTACK_LABEL = {
    "apgd-ce": "APGD-CE",
    "apgd-dlr": "APGD-DLR",
    "apgd-ce-true": "APGD-CE, true gradient",
    "rbfi-pgd": "the paper's PGD",
    "square": "Square",
    "hsja": "HopSkipJump",
    "transfer": "transfer",
    "noise": "noise",
    "trivial": "nearest other-class image",
}


def _strongest(res: protocol.ProtocolResult, norm: str, top: int = 2) -> str:
    counts = list(res.strongest(norm).items())[:top]
    return ", ".join(f"{ATTACK_LABEL.get(a, a)} {n}" for a, n in counts) or "—"


def yardstick_row(label: str, res: protocol.ProtocolResult, norms: tuple[str, ...] | None = None) -> dict[str, Any]:
    """One model under every attack combined (in ``norms``, default all the result has): clean
    accuracy, accuracy at the thresholds, medians, the attacks that were strongest (images) and
    the flags."""
    norms = res.norms if norms is None else norms
    row: dict[str, Any] = {"model": label, "attacks": "all (combined)", "images": len(res.labels)}
    row["clean"] = _percent(res.clean_accuracy)
    for norm in norms:
        for t, a in res.at_thresholds(norm).items():
            row[f"{NORM_LABEL[norm]} {t:g}"] = _percent(a)
    for norm in norms:
        row[f"median {NORM_LABEL[norm]}"] = report.fmt(res.median(norm), 3 if norm == "linf" else 2)
    row["strongest"] = " / ".join(f"{NORM_LABEL[n]}: {_strongest(res, n)}" for n in norms)
    row["flags"] = "; ".join(f"{NORM_LABEL[f.norm]}: {f.kind}" for f in res.flags() if f.norm in norms) or "none"
    return row


def yardstick_rows(yard: dict[str, Any], t12: dict[str, Any], p: RbfiProfile) -> list[dict[str, Any]]:
    """Every zoo model under all attacks, then the paper's own PGD (true gradients, run 0, the
    first ``n_pgd`` test images) and I-FGSM (the first ``n_attack``) beside them."""
    rows = [yardstick_row(ZOO_LABEL[name], res) for name, res in yard.items()]
    kinds = {"rbfi": "rbfi", "rbfi-relu": "relu"}
    for name in yard:
        run0 = t12[kinds[name]]["runs"][0]
        for attack, curve, grid, n in (
            ("pgd", t12[kinds[name]]["pgd"], p.pgd_eps, p.n_pgd),
            ("ifgsm", run0["ifgsm"], p.eps_grid, p.n_attack or 10000),
        ):
            row = {"model": ZOO_LABEL[name], "attacks": f"the paper's {PAPER_ATTACK[attack]} alone", "images": n}
            row.update({f"L∞ {e:g}": _percent(curve[list(grid).index(e)]) for e in (0.1, 0.3) if e in grid})
            rows.append(row)
    return rows


def yardstick_curves(yard: dict[str, Any], t12: dict[str, Any], p: RbfiProfile, claimed: dict[str, list[dict]]):
    """Accuracy vs ε, L∞ (top) and L2 (bottom): every attack combined (solid), APGD-CE alone
    (through the pseudogradient for RBFI; dotted), the paper's PGD alone (L∞, dashed) and the
    paper's claimed operating point (star). One legend for the models, one for the line styles."""
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(2, 1, figsize=(7, 7.4))
    kinds = {"rbfi": "rbfi", "rbfi-relu": "relu"}
    colours = dict(zip(yard, plots.COLORS))
    for ax, norm in zip(axes, ("linf", "l2")):
        for name, res in yard.items():
            grid, c = list(res.config.grid(norm)), colours[name]
            ax.plot(grid, res.curve(norm).numpy(), "-o", ms=3, color=c)
            ax.plot(grid, res.curve(norm, "apgd-ce").numpy(), ":", color=c)
            if norm == "linf":
                ax.plot(p.pgd_eps, t12[kinds[name]]["pgd"], "--", color=c)
            for point in claimed.get(name, []):
                if point["norm"] == norm:
                    ax.plot(point["eps"], point["accuracy"], "*", ms=13, color=c, mec="k")
        for t in next(iter(yard.values())).config.thresholds(norm):
            ax.axvline(t, color="grey", ls=":", lw=1)
        ax.set(xlabel=f"{NORM_LABEL[norm]} perturbation size ([0, 1] pixels)", ylabel="accuracy", ylim=(0, 1.02))
        ax.set_xlim(0, max(grid))
        models = [Line2D([], [], color=colours[n], lw=2, label=ZOO_LABEL[n]) for n in yard]
        styles = [Line2D([], [], color="k", ls="-", marker="o", ms=3, label="all attacks combined")]
        styles.append(Line2D([], [], color="k", ls=":", label="APGD-CE alone"))
        if norm == "linf":
            styles.append(Line2D([], [], color="k", ls="--", label="the paper's PGD alone"))
            styles.append(Line2D([], [], color="grey", ls="", marker="*", ms=11, mec="k", label="the paper's claim"))
        ax.add_artist(ax.legend(handles=models, fontsize=8, loc="upper right"))
        ax.legend(
            handles=styles, fontsize=8, loc="lower left", bbox_to_anchor=(0.4, 0.08) if norm == "linf" else (0.5, 0.3)
        )
    fig.tight_layout()
    return fig


def fig5_yardstick_rows(results: dict[str, Any], p: RbfiProfile) -> list[dict[str, Any]]:
    """Fig. 5's networks under every L∞ attack combined (the first ``n_fig5`` images), beside the
    paper's PGD on the same images."""
    y5, f5 = results["yardstick_fig5"], results["fig5"]
    n = len(next(iter(y5.values())).labels)
    nets = {"u<=3": first_images(results["yardstick"]["rbfi"], n), **y5}
    rows = []
    for key, res in nets.items():
        row = yardstick_row(f"RBFI {fig5_name(key)}", res, ("linf",))
        row.pop("attacks")
        row["the paper's PGD, L∞ 0.3"] = _percent(at(f5[key]["pgd"], p.pgd_eps))
        rows.append(row)
    return rows


# --- what the numbers say ------------------------------------------------------------------------


def summary(results: dict[str, Any], p: RbfiProfile) -> str:
    """The chapter's conclusions in a few bullet points (Markdown), computed from this run."""
    t12, bey, f3, yard = results["table1"], results["beyond"], results["fig3"], results["yardstick"]
    clean = {k: [r["clean"] for r in t12[k]["runs"]] for k in KINDS}
    ifg = {k: mean_std([at(r["ifgsm"], p.eps_grid) for r in t12[k]["runs"]])[0] for k in KINDS}
    fg = {k: mean_std([at(r["fgsm"], p.eps_grid) for r in t12[k]["runs"]])[0] for k in KINDS}
    pgd3 = {k: at(t12[k]["pgd"], p.pgd_eps) for k in KINDS}
    eps = list(p.pgd_eps)
    i3 = eps.index(0.3) if 0.3 in eps else len(eps) // 2
    rb = {k: v[i3] for k, v in bey["rbfi"].items()}
    rbfi, relu = yard["rbfi"], yard["rbfi-relu"]
    n_yard = len(rbfi.labels)

    def f(v):
        return f"{100 * v:.0f} %"

    true_best = max(rb[k] for k in ("fgsm/true", "ifgsm/true", "pgd/true"))
    true_worst = min(rb[k] for k in ("fgsm/true", "ifgsm/true", "pgd/true"))
    base_worst = max(fg["relu"], ifg["relu"], pgd3["relu"], fg["sigmoid"], ifg["sigmoid"], pgd3["sigmoid"])
    pseudo_best = min(rb[k] for k in ("ifgsm/pseudo", "pgd/pseudo", "pgd_sign/pseudo", "pgd_margin/pseudo"))
    strong3 = rbfi.accuracy_at("linf", 0.3)
    relu_adv = at(f3["ReLU(PGD)"]["pgd"], p.pgd_eps)
    if strong3 >= RBFI_ATTACKED:
        verdict = f"the paper's > {whole_percent(RBFI_ATTACKED)} survives every attack we ran"
    elif strong3 >= max(relu_adv, relu.accuracy_at("linf", 0.3)) + 0.1:
        verdict = "a real L∞ robustness advantage remains at this scale, far below the paper's > 90 %"
    else:
        verdict = "no clear robustness advantage over the (adversarially trained) ReLU network remains"
    support = bey["grad_support"]
    l2 = {n: (r.median("l2"), r.accuracy_at("l2", 1.5)) for n, r in yard.items()}
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
        f"* **The yardstick** (every attack of the book's protocol, {n_yard} images) leaves RBFI at "
        f"{f(strong3)} at L∞ ε = 0.3 and {f(rbfi.accuracy_at('linf', 0.1))} at 0.1 (median L∞ "
        f"{rbfi.median('linf'):.2f}), the paper's own PGD {f(pgd3['rbfi'])}; its ReLU network "
        f"{f(relu.accuracy_at('linf', 0.3))} (median {relu.median('linf'):.3f}). Against the PGD-trained ReLU "
        f"({f(relu_adv)} under the paper's PGD): {verdict}.",
        f"* **In L2** the structure does not help: median L2 distance RBFI {l2['rbfi'][0]:.2f}, ReLU "
        f"{l2['rbfi-relu'][0]:.2f}; at L2 1.5 RBFI keeps {f(l2['rbfi'][1])}, ReLU {f(l2['rbfi-relu'][1])} "
        "(an infinity-norm unit does not see how many pixels move, but a few pixels moved far, cheap in L2, "
        "move it all the way).",
        f"* **The reference code's PGD bug** makes PGD weaker on ReLU too: at ε = {eps[0]}, ReLU keeps "
        f"{f(bey['relu']['pgd_buggy'][0])} under the buggy box and {f(bey['relu']['pgd'][0])} under the correct "
        f"one; on RBFI at ε = {eps[i3]}: {f(rb['pgd_buggy/true'])} vs {f(rb['pgd/true'])}.",
    ]
    return "\n".join(lines)
