"""The DAM chapter's tables as rows (``report.show_table`` displays them): formatting only, no
computation; the numbers come from the steps in ``experiments.py`` and the paper's from ``claims.py``."""

from __future__ import annotations

from typing import Any

from ... import report
from .claims import PAPER_BETA_SM, PAPER_ERRORS
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


def whitebox_linf(result: dict[str, Any]) -> Rows:
    return [
        {
            "model": name,
            "ε [0,1]": e,
            "ε [-1,1]": 2 * e,
            "FGSM (paper loss)": _pct(r["fgsm"][i]),
            "PGD margin": _pct(r["pgd_margin"][i]),
            "strongest": _pct(r["strongest_linf"][i]),
        }
        for name, r in result["by_model"].items()
        for i, e in enumerate(result["eps01"])
    ]


def whitebox_l2(result: dict[str, Any], transfer: dict[str, Any], *, hsja_run: bool) -> Rows:
    return [
        {
            "model": name,
            "Boundary attack": report.fmt(r["boundary_median_l2"]),
            "HopSkipJump": report.fmt(r["hsja_median_l2"]) if hsja_run else "not run",
            "Gaussian noise": report.fmt(r["noise_median_l2"]),
            "all decision-based": report.fmt(r["all_decision_median_l2"]),
            "second-choice descent (gradient, Fig. 5 sets)": report.fmt(transfer["stats"][name]["median_l2_pm1"] / 2),
        }
        for name, r in result["by_model"].items()
    ]
