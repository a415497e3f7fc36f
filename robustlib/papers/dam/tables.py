"""The DAM chapter's tables as rows (``report.show_table`` displays them): formatting only, no
computation; the numbers come from the steps in ``experiments.py`` and the paper's from ``claims.py``."""

from __future__ import annotations

from typing import Any

from ... import protocol, report
from .claims import PAPER_BETA_SM, PAPER_ERRORS
from .figures import ATTACK_LABEL, NORM_LABEL
from .model import DAMConfig

Rows = list[dict[str, Any]]


def _pct(value: float) -> str:
    return report.fmt(value, 3, pct=True)


def _paper_n(name: str, numbers: dict[int, float]) -> float | None:
    """The paper's number for a model named "n=20" (None for the MLP or an n the paper lacks)."""
    return numbers.get(int(name[2:])) if name.startswith("n=") else None


def tuning(sweep: dict[str, Any]) -> Rows:
    return [
        {
            "n": r["n"],
            "m": r["m"],
            "T": r["T"],
            "validation error": _pct(r["val_error"]),
            "train error": _pct(r["train_error"]),
        }
        for r in sweep["rows"]
    ]


def configs(models: dict[str, DAMConfig]) -> Rows:
    return [
        {
            "n": c.n,
            "K": c.K,
            "T": c.T,
            "T_in (ramp)": c.T_in or "-",
            "m": c.m,
            "init mean": c.init_mean,
            "epochs": c.epochs,
        }
        for c in models.values()
    ]


def test_error(clean: dict[str, Any]) -> Rows:
    rows = []
    for name, r in clean["by_model"].items():
        paper = _paper_n(name, PAPER_ERRORS)
        rows.append(
            {
                "model": name,
                "test error (ours)": _pct(r["error"]),
                "test error (paper)": f"{100 * paper:.2f} %" if paper is not None else "-",
            }
        )
    return rows


def boundary_sets(transfer: dict[str, Any]) -> Rows:
    return [
        {
            "generator": name,
            "crossed": _pct(s["crossed"]),
            "median steps": report.fmt(s["median_steps"], 0),
            "median L2 to the boundary ([-1,1])": report.fmt(s["median_l2_pm1"]),
            "= ([0,1])": report.fmt(s["median_l2_pm1"] / 2),
            "second choice = true label": _pct(s["second_is_true"]),
        }
        for name, s in transfer["stats"].items()
    ]


def calibration(clean: dict[str, Any]) -> Rows:
    rows = []
    for name, r in clean["by_model"].items():
        paper = _paper_n(name, PAPER_BETA_SM)
        rows.append(
            {
                "model": name,
                "beta_sm (ours)": report.fmt(r["beta_sm"], 2),
                "beta_sm (paper, as printed)": f"{paper:g}" if paper is not None else "-",
                "mean |Y|": report.fmt(r["mean_abs_output"], 3),
                "mean Z = accuracy": _pct(r["mean_confidence"]),
            }
        )
    return rows


def fgsm(result: dict[str, Any], shown: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)) -> Rows:
    eps = result["eps"]
    return [
        {
            "model": name,
            "fallback (zero gradient) share": _pct(r["zero_gradient_fraction"]),
            **{f"error at ε={e:g}": _pct(r["error"][i]) for i, e in enumerate(eps) if e in shown},
        }
        for name, r in result["by_model"].items()
    ]


def rubbish_calibrated(rub: dict[str, Any]) -> Rows:
    """Mean confidence with each classifier's calibrated beta_sm: rows made by, columns classified by."""
    return [
        {
            "rubbish made by": gen,
            **{c: report.fmt(100 * rub["z_calibrated"][i, j].item(), 0) for j, c in enumerate(rub["names"])},
        }
        for i, gen in enumerate(rub["names"])
    ]


def rubbish_steps(rub: dict[str, Any]) -> Rows:
    return [
        {
            "model": name,
            "mean steps taken": report.fmt(rub["mean_steps"][name], 1),
            "digit-likeness proxy": report.fmt(rub["digit_corr"][name]),
        }
        for name in rub["names"]
    ]


def boundary_l2(transfer: dict[str, Any]) -> Rows:
    return [
        {"model": name, "median L2 to one step past the boundary ([0,1])": report.fmt(s["median_l2_pm1"] / 2)}
        for name, s in transfer["stats"].items()
    ]


def _strongest(r: protocol.ProtocolResult, norm: str, top: int = 2) -> str:
    counts = list(r.strongest(norm).items())[:top]
    return ", ".join(f"{ATTACK_LABEL.get(a, a)} {k}" for a, k in counts) or "-"


def _pct1(value: float) -> str:
    return report.fmt(value, 2, pct=True)


def yardstick(ys: dict[str, protocol.ProtocolResult], wb: dict[str, Any]) -> Rows:
    """Per model: every attack combined (clean accuracy, accuracy at the thresholds, medians, the
    strongest attacks with their image counts, flags), then the paper's attacks alone, labelled."""
    rows = []
    for name, r in ys.items():
        row: dict[str, Any] = {"model": name, "attacks": "all (combined)", "images": len(r.labels)}
        row["clean"] = _pct1(r.clean_accuracy)
        for norm in ("linf", "l2"):
            row.update({f"{NORM_LABEL[norm]} {t:g}": _pct1(a) for t, a in r.at_thresholds(norm).items()})
        row["median L∞"] = report.fmt(r.median("linf"), 3)
        row["median L2"] = report.fmt(r.median("l2"), 2)
        row["strongest (images)"] = " / ".join(f"{NORM_LABEL[n]}: {_strongest(r, n)}" for n in ("linf", "l2"))
        row["flags"] = "; ".join(f"{NORM_LABEL[f.norm]}: {f.kind}" for f in r.flags()) or "none"
        rows.append(row)
    for name, r in ys.items():
        fg = wb["by_model"].get(f"n={name.removeprefix('dam-n')}")
        n = len(r.labels) if wb["n_images"] == len(r.labels) else f"{wb['n_images']} (FGSM), {len(r.labels)}"
        row = {"model": name, "attacks": "the paper's attacks alone", "images": n}
        if fg is not None and 0.1 in wb["eps01"]:
            row["L∞ 0.1"] = _pct1(fg["fgsm"][wb["eps01"].index(0.1)]) + " (FGSM)"
        row.update({f"L2 {t:g}": _pct1(r.accuracy_at("l2", t, "dam-boundary")) for t in r.config.thresholds("l2")})
        row["median L2"] = report.fmt(r.median("l2", "dam-boundary"), 2) + " (boundary descent)"
        rows.append(row)
    columns = list(rows[0])
    return [{c: r.get(c, "-") for c in columns} for r in rows]


def yardstick_readings(ys: dict[str, protocol.ProtocolResult], wb: dict[str, Any]) -> str:
    """The yardstick section's readings, written from the stored numbers of this run (HTML list):
    FGSM against every attack at L-inf 0.1 for the largest n, and small against large n."""
    names = sorted(ys, key=lambda m: int(m.removeprefix("dam-n")))
    small, large = ys[names[0]], ys[names[-1]]
    items = []
    fg = wb["by_model"].get(f"n={names[-1].removeprefix('dam-n')}")
    if fg is not None and 0.1 in wb["eps01"]:
        fgsm = fg["fgsm"][wb["eps01"].index(0.1)]
        every = large.accuracy_at("linf", 0.1)
        verb = "overstates" if fgsm > every + 0.05 else "does not overstate"
        items.append(
            f"<strong>The paper's FGSM {verb} the robustness of {names[-1]}.</strong> At L∞ 0.1 ([0,1] "
            f"units; 0.2 in the paper's) it keeps {_pct1(fgsm)} under FGSM and {_pct1(every)} under every "
            f"attack together; at L∞ 0.3 {_pct1(large.accuracy_at('linf', 0.3))} remains."
        )
    gap = large.accuracy_at("linf", 0.1) - small.accuracy_at("linf", 0.1)
    verdict = "is no more robust than" if gap < 0.10 else "is more robust than"
    items.append(
        f"<strong>{names[-1]} {verdict} {names[0]} under the strongest attacks:</strong> median minimal "
        f"perturbation {report.fmt(large.median('linf'), 3)} vs {report.fmt(small.median('linf'), 3)} in L∞ and "
        f"{report.fmt(large.median('l2'), 2)} vs {report.fmt(small.median('l2'), 2)} in L2; accuracy at L∞ 0.1 "
        f"{_pct1(large.accuracy_at('linf', 0.1))} vs {_pct1(small.accuracy_at('linf', 0.1))}."
    )
    flags = [f"{m}: {f.kind} ({NORM_LABEL[f.norm]})" for m, r in ys.items() for f in r.flags()]
    items.append(
        "<strong>Sanity flags:</strong> "
        + (
            "; ".join(flags)
            if flags
            else "none (no sign of gradient masking "
            "through the float64 scores, accuracy reaches zero within the grids, "
            "monotone curves, every distance below the trivial bound)."
        )
    )
    return "<ol>" + "".join(f"<li>{item}</li>" for item in items) + "</ol>"
