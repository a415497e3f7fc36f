"""The BANG chapter's tables, figures and generated sentences, built from the steps' results.

Plumbing the chapter would otherwise show: each function takes stored results (see
``experiments.py``) and returns table rows (for ``report.show_table``), a figure, or text.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from ... import attacks, data, plots, report
from ...metrics import median_distance
from .claims import PAPER_NOISE, PAPER_TABLE1, PAPER_TABLE2, ZOO, fgs_collapse, fgs_size_sentence, survives
from .experiments import L2_ATTACKS, LINF_ATTACKS, TABLE1, strongest

# --- Table 1 -----------------------------------------------------------------------------------------


def pm(s: dict[str, Any], name: str, digits: int) -> str:
    """``mean ± std`` of summary column ``name`` (``n/a`` without successes)."""
    m, sd = s[f"{name}_mean"], s[f"{name}_std"]
    if math.isnan(m):
        return "n/a"
    return f"{m:.{digits}f}" if math.isnan(sd) else f"{m:.{digits}f} ± {sd:.{digits}f}"


def accuracy_rows(t1: dict[str, Any]) -> list[dict[str, Any]]:
    """Our test accuracy of each Table 1 row beside its BANG setting and the paper's."""
    return [
        {
            "row": r,
            "beta": TABLE1[r].beta,
            "epsilon": TABLE1[r].epsilon,
            "test accuracy": report.fmt(acc, 3, pct=True),
            "paper": f"{PAPER_TABLE1[r]['acc']:.2f} %",
        }
        for r, acc in t1["test_acc"].items()
    ]


def _paper_row(p: dict[str, float]) -> dict[str, str]:
    return {
        "Acc": f"{p['acc']:.2f} %",
        "FGS rate": f"{p['fgs_rate']:.2f} %",
        "FGS PASS": f"{p['fgs_pass']:.4f} ± {p['fgs_pass_std']:.4f}",
        "FGS L∞": f"{p['fgs_linf']:.2f} ± {p['fgs_linf_std']:.2f}",
        "blank": report.NOT_AVAILABLE,
        "HC1 rate": f"{p['hc1_rate']:.2f} %",
        "HC1 PASS": f"{p['hc1_pass']:.4f} ± {p['hc1_pass_std']:.4f}",
        "HC1 L∞": f"{p['hc1_linf']:.2f} ± {p['hc1_linf_std']:.2f}",
    }


def table1_rows(t1: dict[str, Any], att: dict[str, Any]) -> list[dict[str, Any]]:
    """Table 1: for each row our accuracy, FGS and HC1 columns, then the paper's."""
    table = []
    for r in att:
        f, h, cfg = att[r]["fgs_summary"], att[r]["hc1_summary"], TABLE1[r]
        beta, eps = ("–", "–") if cfg.regular else (f"{cfg.beta:.2f}", f"{cfg.epsilon:.3f}")
        table.append(
            {
                "ID": r,
                "β": beta,
                "ε": eps,
                "": "ours",
                "Acc": report.fmt(t1["test_acc"][r], 3, pct=True),
                "FGS rate": report.fmt(f["rate"], 3, pct=True),
                "FGS PASS": pm(f, "pass", 4),
                "FGS L∞": pm(f, "linf", 2),
                "blank": f"{f['blank']} / {f['attacked']}",
                "HC1 rate": report.fmt(h["rate"], 3, pct=True),
                "HC1 PASS": pm(h, "pass", 4),
                "HC1 L∞": pm(h, "linf", 2),
            }
        )
        table.append({"ID": "", "β": "", "ε": "", "": "paper", **_paper_row(PAPER_TABLE1[r])})
    return table


def hc1_examples(att: dict[str, Any], n: int = 6):
    """Fig. 1: test images HC1 broke on both R0 and B1, with the adversarials of each."""
    pair = [r for r in ("R0", "B1") if r in att]
    adv = {r: att[r]["hc1"]["adversarials"] for r in pair}
    ok = torch.ones(len(adv[pair[0]]), dtype=torch.bool)
    for r in pair:
        ok &= att[r]["hc1"]["success"][: len(ok)].bool()
    idx = torch.nonzero(ok).flatten()[:n]
    x, y = data.mnist("test")
    titles = [f"label {int(v)}" for v in y[idx]]
    for r in pair:
        hc1 = att[r]["hc1"]
        titles += [f"L∞ {hc1['linf'][i]:.0f}\nPASS {hc1['pass_score'][i]:.2f}" for i in idx.tolist()]
    return plots.image_grid(
        torch.cat([x[idx]] + [adv[r][idx] for r in pair]),
        titles=titles,
        ncols=len(idx),
        size=1.1,
        row_labels=["clean"] + [f"HC1 on {r}" for r in pair],
    )


# --- Fig. 2 and Fig. 3 -------------------------------------------------------------------------------


def _readable_numbers(fig) -> None:
    """Black or white cell numbers by the luminance of the cell's own colour (``plots.heatmap``
    picks them from the data's range, which fails when vmin/vmax are fixed or the map diverges)."""
    for ax in fig.axes:
        if not ax.images:
            continue
        im = ax.images[0]
        for text in ax.texts:
            try:
                value = float(text.get_text())
            except ValueError:
                continue
            r, g, b, _ = im.cmap(im.norm(value))
            text.set_color("black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white")


def grid_maps(g: dict[str, Any]):
    """Fig. 2 (a)-(c): accuracy, FGS success and mean HC1 PASS over the (beta, eps) grid."""
    rows, cols = [f"β={b:g}" for b in g["betas"]], [f"ε={e:g}" for e in g["epsilons"]]
    reg = g["regular"]
    fig, axes = plt.subplots(3, 1, figsize=(6.8, 3 * (0.45 * len(rows) + 1.6)))  # one map a row: column width
    plots.heatmap(
        100 * g["acc"],
        row_labels=rows,
        col_labels=cols,
        ax=axes[0],
        fmt="{:.2f}",
        title=f"(a) accuracy % (regular {100 * reg['acc']:.2f})",
    )
    plots.heatmap(
        100 * g["fgs_rate"],
        row_labels=rows,
        col_labels=cols,
        ax=axes[1],
        fmt="{:.1f}",
        title=f"(b) FGS success % (regular {100 * reg['fgs_rate']:.1f})",
        cmap="magma",
        vmin=0,
        vmax=100,
    )
    plots.heatmap(
        g["hc1_pass"],
        row_labels=rows,
        col_labels=cols,
        ax=axes[2],
        fmt="{:.3f}",
        title=f"(c) mean HC1 PASS (regular {reg['hc1_pass']:.3f})",
        cmap="cividis",
    )
    _readable_numbers(fig)
    fig.tight_layout()
    return fig


def blank_rows(g: dict[str, Any]) -> list[dict[str, str]]:
    """The grid's share of FGS attempts with a blank gradient, one row per beta."""
    return [
        {"β": f"{beta:g}", **{f"ε = {e:g}": f"{100 * v:.1f} %" for e, v in zip(g["epsilons"], vals.tolist())}}
        for beta, vals in zip(g["betas"], g["fgs_blank"])
    ]


def noise_maps(noise: dict[str, Any], names: tuple[str, str] = ("R0", "B1"), title: str = ""):
    """Share of noisy copies relabelled (checkpoint x sigma) for two models, and their difference."""
    a, b = names
    its, sig = noise["iterations"], noise["sigmas"]
    fig, axes = plt.subplots(3, 1, figsize=(6.8, 3 * (0.4 * len(its) + 1.7)))  # one map a row: column width
    kw = dict(
        row_labels=[str(i) for i in its],
        col_labels=[f"{s:g}" for s in sig],
        xlabel="σ (grey levels)",
        ylabel="iteration",
        fmt="{:.1f}",
    )
    vmax = 100 * max(noise[a].max().item(), noise[b].max().item())
    plots.heatmap(
        100 * noise[a], ax=axes[0], title=f"{title}(a) {a}: % of noisy copies relabelled", vmin=0, vmax=vmax, **kw
    )
    plots.heatmap(100 * noise[b], ax=axes[1], title=f"(b) {b}", vmin=0, vmax=vmax, **kw)
    diff = 100 * (noise[a] - noise[b])
    lim = max(diff.abs().max().item(), 1e-9)
    plots.heatmap(
        diff, ax=axes[2], title=f"(c) {a} − {b} (points; blue: {b} more robust)", cmap="RdBu", vmin=-lim, vmax=lim, **kw
    )
    _readable_numbers(fig)
    fig.tight_layout()
    return fig


def noise_sentence(noise: dict[str, Any], draws: int) -> str:
    """What Fig. 3 shows at the strongest noise and the last snapshot, beside the paper."""
    its, sig, paper = noise["iterations"], noise["sigmas"], PAPER_NOISE["lenet"]
    return (
        f"{noise['images']} images ({noise['per_class'].tolist()} per class), {draws} draws each; "
        f"at σ = {sig[-1]:g}, iteration {its[-1]}: R0 {100 * noise['R0'][-1, -1]:.1f} %, "
        f"B1 {100 * noise['B1'][-1, -1]:.1f} % (paper at σ = {paper['sigma']}, 10k iterations: "
        f"R0 ≈ {paper['R0']:g} %, B1 {paper['B1']:g} %)"
    )


# --- CIFAR-10 ----------------------------------------------------------------------------------------


def cifar_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Table 2: our CIFAR-10 rows beside the paper's accuracy and attack success rates."""
    out = []
    for r, row in res["rows"].items():
        f, h, p = row["fgs_summary"], row["hc1_summary"], PAPER_TABLE2.get(r)
        out.append(
            {
                "ID": r,
                "acc": report.fmt(row["acc"], 3, pct=True),
                "FGS rate": report.fmt(f["rate"], 3, pct=True),
                "FGS PASS": pm(f, "pass", 4),
                "FGS L∞": pm(f, "linf", 2),
                "HC1 rate": report.fmt(h["rate"], 3, pct=True),
                "HC1 PASS": pm(h, "pass", 4),
                "HC1 L∞": pm(h, "linf", 2),
                "paper acc / FGS / HC1": f"{p['acc']:.2f} / {p['fgs_rate']:.2f} / {p['hc1_rate']:.2f} %" if p else "—",
            }
        )
    return out


# --- beyond the paper -------------------------------------------------------------------------------

# exp(-m) underflows to 0 below the smallest subnormal number: a cross-entropy gradient is blank
# beyond these logit margins in float32 (about 103.3) and float64 (about 744.4)
BLANK32 = -math.log(torch.finfo(torch.float32).smallest_normal * 2.0**-23)
BLANK64 = -math.log(torch.finfo(torch.float64).smallest_normal * 2.0**-52)


@torch.no_grad()
def logit_margins(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """z_y - max_{c != y} z_c per image."""
    return (-attacks.margin_loss(model(x), y)).numpy()


def margin_histogram(margins: dict[str, np.ndarray]):
    """Histograms of the logit margins, with the float32 blank-gradient limit."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for r, m in margins.items():
        ax.hist(m, bins=60, alpha=0.55, label=f"{r} (median {np.median(m):.0f})")
    ax.axvline(BLANK32, color="k", ls="--", lw=1)
    ax.text(BLANK32 + 2, ax.get_ylim()[1] * 0.45, "float32\nexp underflow", fontsize=8)
    ax.set(xlabel="logit margin z_y − max_{c≠y} z_c", ylabel="test images")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def margin_sentences(margins: dict[str, np.ndarray]) -> str:
    """Markdown bullets: per model, the share of margins beyond the float32 and float64 limits."""
    return "\n".join(
        f"* {r}: {100 * (m > BLANK32).mean():.1f} % of the {len(m)} margins beyond the float32 limit "
        f"({BLANK32:.1f}), {100 * (m > BLANK64).mean():.1f} % beyond the float64 one ({BLANK64:.1f}); "
        f"largest margin {m.max():.0f}"
        for r, m in margins.items()
    )


def masking_rows(att: dict[str, Any]) -> list[dict[str, Any]]:
    """The masking check per row: FGS failures, blank ones, and how many the other directions break."""
    rows = []
    for r, a in att.items():
        m, f = a["masking"], a["fgs_summary"]
        rows.append(
            {
                "row": r,
                "FGS failures": f["failures"],
                "of which blank": f["blank_failures"],
                "margin-loss FGS breaks": m["fgs-margin_successes"],
                "float64 FGS breaks": m["fgs-float64_successes"],
                "margin FGS mean L∞ (grey)": report.fmt(m["fgs-margin_linf_mean"], 1),
            }
        )
    return rows


BEYOND_NAMES = {
    "fgs_line": "FGS line",
    "hc1_line": "HC1 line",
    "pgd_ce": "PGD (CE)",
    "pgd_margin": "PGD (margin)",
    "transfer_linf": "transfer from R0",
    "pgd_l2_margin": "L2 PGD (margin)",
    "boundary_l2": "Boundary",
    "transfer_l2": "L2 transfer",
}


def beyond_rows(bey: dict[str, Any]) -> list[dict[str, Any]]:
    """Median minimal perturbation per attack, the strongest per norm, and accuracy at L-inf 0.1."""
    rows = []
    for r, res in bey.items():
        row = {"row": r}
        for k, label in BEYOND_NAMES.items():
            row[label] = report.fmt(median_distance(res[k]), 3) if k in res else "—"
        s_inf, s_2 = strongest(res, LINF_ATTACKS), strongest(res, L2_ATTACKS)
        row["strongest L∞"] = report.fmt(median_distance(s_inf), 3)
        row["strongest L2"] = report.fmt(median_distance(s_2), 2)
        row["acc @ L∞ 0.1"] = report.fmt((s_inf > 0.1).double().mean().item(), 2, pct=True)
        rows.append(row)
    return rows


def beyond_curves(bey: dict[str, Any]):
    """Accuracy vs L-inf perturbation size: the paper's FGS line search vs PGD on the logit margin."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    plots.accuracy_distortion(
        {
            f"{r} {BEYOND_NAMES[k]}": attacks.DistanceResult(k, "linf", bey[r][k])
            for r in bey
            for k in ("fgs_line", "pgd_margin")
        },
        norm="L∞",
        eps_max=0.5,
        ax=ax,
        title="the paper's FGS vs margin PGD",
    )
    fig.tight_layout()
    return fig


# --- the yardstick ----------------------------------------------------------------------------------

NORM_LABEL = {"linf": "L∞", "l2": "L2"}
ROW_OF = {"bang-r0": "R0", "bang-b1": "B1"}
PAPER_ATTACKS = ("bang-fgs", "bang-hc1")  # the paper's own attacks, inside the yardstick's suite


def _pct(v: float) -> str:
    return report.fmt(v, 2, pct=True)  # one decimal: 200 images are 0.5-point steps


def _threshold(norm: str, t: float) -> str:
    """A column name: "L∞ 0.1", "L2 2.0"."""
    return f"{NORM_LABEL[norm]} {t:g}" if norm == "linf" else f"{NORM_LABEL[norm]} {t:.1f}"


def _strongest_text(res, norm: str) -> str:
    """The attacks that gave the smallest distance, with their image counts (top two)."""
    counts = res.strongest(norm)
    return ", ".join(f"{a} ({n})" for a, n in list(counts.items())[:2]) or "—"


def yardstick_rows(yard: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model (combined over every attack), then the paper's FGS on the same images."""
    rows = []
    for name, res in yard.items():
        row = {
            "model": ROW_OF.get(name, name),
            "attacks": "all (combined)",
            "clean": _pct(res.clean_accuracy),
        }
        for norm in res.norms:
            for t, a in res.at_thresholds(norm).items():
                row[_threshold(norm, t)] = _pct(a)
        row["median L∞"] = report.fmt(res.median("linf"), 3)
        row["median L2"] = report.fmt(res.median("l2"), 2)
        row["strongest (L∞ / L2)"] = f"{_strongest_text(res, 'linf')} / {_strongest_text(res, 'l2')}"
        row["flags"] = "; ".join(f"{f.norm}: {f.kind}" for f in res.flags()) or "none"
        rows.append(row)
    for name, res in yard.items():
        fgs = {t: res.accuracy_at("linf", t, "bang-fgs") for t in res.config.thresholds("linf")}
        rows.append(
            {
                "model": ROW_OF.get(name, name),
                "attacks": "the paper's FGS alone",
                "clean": _pct(res.clean_accuracy),
                **{_threshold("linf", t): _pct(a) for t, a in fgs.items()},
                "median L∞": report.fmt(res.median("linf", "bang-fgs"), 3),
            }
        )
    return rows


def yardstick_curves(yard: dict[str, Any], claimed: dict[str, list[dict]] | None = None):
    """Accuracy vs epsilon, L-inf above and L2 below: every attack combined (solid), the paper's
    FGS alone (dashed), and the paper's claimed operating points (markers)."""
    fig, axes = plt.subplots(2, 1, figsize=(6.8, 6.6))
    colours = {name: f"C{i}" for i, name in enumerate(yard)}
    for ax, norm in zip(axes, ("linf", "l2")):
        for name, res in yard.items():
            grid, row = list(res.config.grid(norm)), ROW_OF.get(name, name)
            ax.plot(grid, res.curve(norm).numpy(), "-o", ms=3, color=colours[name], label=f"{row}: all attacks")
            if norm == "linf":
                ax.plot(
                    grid, res.curve(norm, "bang-fgs").numpy(), "--", color=colours[name], label=f"{row}: paper's FGS"
                )
            for c in (claimed or {}).get(name, []):
                if c["norm"] == norm:
                    ax.plot(c["eps"], c["accuracy"], "*", ms=11, color=colours[name], mec="k")
        for t in yard[next(iter(yard))].config.thresholds(norm):
            ax.axvline(t, color="grey", ls=":", lw=1)
        if norm == "linf" and claimed and any(claimed.values()):
            ax.plot([], [], "*", ms=11, color="grey", mec="k", label="paper's claim (implied by FGS)")
        ax.set(xlabel=f"{NORM_LABEL[norm]} perturbation size ([0, 1] units)", ylabel="accuracy", ylim=(0, 1.02))
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def what_survives(att: dict[str, Any], yard: dict[str, Any] | None) -> list[str]:
    """This run's reading of the masking check and of the yardstick (every attack combined)."""
    lines = []
    if "R0" in att and "B1" in att:
        f0, f1, m1 = att["R0"]["fgs_summary"], att["B1"]["fgs_summary"], att["B1"]["masking"]
        lines.append(
            f"FGS success R0 {100 * f0['rate']:.1f} %, B1 {100 * f1['rate']:.1f} %: "
            + (
                "a collapse (B1 at most half of R0)."
                if fgs_collapse(f0, f1)
                else "no collapse at this profile (the paper: 90.3 % -> 1.7 %)."
            )
        )
        lines.append(
            f"B1's {f1['failures']} FGS failures include {f1['blank_failures']} blank gradients; the "
            f"margin direction breaks {m1['fgs-margin_successes']} of these, float64 "
            f"{m1['fgs-float64_successes']}."
        )
        lines.append(fgs_size_sentence(f0, f1) + ".")
    if yard and all(n in yard for n in ZOO.values()):
        what = survives(yard[ZOO["R0"]], yard[ZOO["B1"]])
        lines.append(what[0].upper() + what[1:] + " (the yardstick).")
    return lines


# --- the summary in words ----------------------------------------------------------------------------


def summary(results: dict[str, Any], iterations: int) -> str:
    """The chapter's findings in words (Markdown bullets), generated from the steps' results."""
    att, t1, yard = results["table1_attacks"], results["table1_models"], results.get("yardstick")
    lines = []
    if "R0" in att and "B1" in att:
        f0, f1, m1 = att["R0"]["fgs_summary"], att["B1"]["fgs_summary"], att["B1"]["masking"]
        lines.append(
            f"* **FGS** (the paper's attack): success {100 * f0['rate']:.1f} % on R0 and "
            f"{100 * f1['rate']:.1f} % on B1 after {iterations} iterations ("
            + ("a collapse" if fgs_collapse(f0, f1) else "no collapse; the paper: 90.3 % -> 1.7 %")
            + f"); {f1['blank_failures']} of B1's {f1['failures']} failures are blank "
            f"gradients, and the same line search along the margin-loss gradient breaks "
            f"{m1['fgs-margin_successes']} of them (float64 cross-entropy: {m1['fgs-float64_successes']}). "
            + fgs_size_sentence(f0, f1)
            + "."
        )
        h0, h1 = att["R0"]["hc1_summary"], att["B1"]["hc1_summary"]
        lines.append(
            f"* **HC1** (the paper's attack): success {100 * h0['rate']:.1f} % vs {100 * h1['rate']:.1f} %, "
            f"mean L∞ {h0['linf_mean']:.1f} vs {h1['linf_mean']:.1f} grey levels, PASS {h0['pass_mean']:.3f} "
            f"vs {h1['pass_mean']:.3f} (paper: 122.6 vs 201.8, PASS 0.754 vs 0.488)."
        )
    noise = t1.get("noise")
    if noise is not None:
        n0, n1 = noise["R0"][-1, -1].item(), noise["B1"][-1, -1].item()
        lines.append(
            f"* **Random noise** (σ = {noise['sigmas'][-1]:g}, last snapshot): {100 * n0:.1f} % of R0's "
            f"noisy copies change label vs {100 * n1:.1f} % of B1's: "
            + (
                "B1 is more robust to *random* directions, and that measurement does not depend on any gradient."
                if n1 < n0
                else "B1 is not more robust to random noise in this run."
            )
        )
    if yard and all(n in yard for n in ZOO.values()):
        r0, b1 = yard[ZOO["R0"]], yard[ZOO["B1"]]
        acc = ", ".join(
            f"{t:g}: {100 * r0.accuracy_at('linf', t):.1f} % vs {100 * b1.accuracy_at('linf', t):.1f} %"
            for t in b1.config.thresholds("linf")
        )
        s0, s1, q0, q1 = r0.median("linf"), b1.median("linf"), r0.median("l2"), b1.median("l2")
        lines.append(
            f"* **Worst case** (the yardstick, {len(b1.labels)} images, every attack combined): accuracy "
            f"R0 vs B1 at L∞ {acc}; median smallest perturbation L∞ {s0:.3f} vs {s1:.3f}, L2 {q0:.2f} vs "
            f"{q1:.2f}: "
            + (
                "B1 is not more robust to adversarial perturbations once the attacks do not rely on the "
                "saturated float32 cross-entropy gradient."
                if s1 <= 1.1 * s0 and q1 <= 1.1 * q0
                else "B1 keeps a margin over R0 even against these attacks."
            )
        )
    return "\n".join(lines) or "(nothing to summarise at this profile)"
