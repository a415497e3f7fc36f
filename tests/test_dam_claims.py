"""The DAM verdict rules, branch by branch, on small hand-built results shaped like the steps' ones."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from robustlib import claims, protocol
from robustlib.attacks import DistanceResult
from robustlib.papers.dam import claims as dam_claims
from robustlib.papers.dam.profile import PROFILES

NS = (2, 3, 20, 30)
NAMES = [f"n={n}" for n in NS] + ["ReLU MLP"]
QUICK, PAPER = PROFILES["quick"], PROFILES["paper"]


def verdict(rule, **results) -> str:
    results.setdefault("profile", QUICK)
    return rule(results).verdict


# --- fake step results --------------------------------------------------------------------------


def clean(errors: dict[int, float], bins: dict[int, list[float]] | None = None, count: int = 100) -> dict:
    bins = bins or {}
    return {
        "n_images": 10000,
        "by_model": {
            f"n={n}": {
                "error": e,
                "beta_sm": 5.0,
                "bins": [{"lo": 0.0, "hi": 1.0, "count": count, "error": b} for b in bins.get(n, [0.5, 0.01])],
            }
            for n, e in errors.items()
        },
    }


def prototypes(corr: dict[int, float]) -> dict:
    return {str(n): {"mean_max_corr": c} for n, c in corr.items()}


def rubbish(digit_corr: dict[int, float] | None = None, z: dict[tuple[int, int], float] | None = None) -> dict:
    z_fixed = torch.full((len(NAMES), len(NAMES)), 0.5, dtype=torch.float64)
    for (g, c), v in (z or {}).items():
        z_fixed[NAMES.index(f"n={g}"), NAMES.index(f"n={c}")] = v
    corr = {f"n={n}": 0.0 for n in NS} | {f"n={n}": v for n, v in (digit_corr or {}).items()}
    return {"names": NAMES, "z_fixed": z_fixed, "digit_corr": corr}


def transfer(diagonal: float = 0.99, cells: dict[tuple[int, int], float] | None = None, crossed: float = 1.0) -> dict:
    error = torch.full((len(NAMES), len(NAMES)), 0.05, dtype=torch.float64)
    error.fill_diagonal_(diagonal)
    for (g, c), v in (cells or {}).items():
        error[NAMES.index(f"n={g}"), NAMES.index(f"n={c}")] = v
    stats = {name: {"crossed": crossed, "median_l2_pm1": 2.0} for name in NAMES}
    return {"names": NAMES, "error": error, "stats": stats, "n_images": 500}


def fgsm(
    eps: list[float], errors: dict[int, list[float]] | None = None, confidence: dict[int, list[float]] | None = None
) -> dict:
    errors, confidence = errors or {}, confidence or {}
    return {
        "eps": eps,
        "n_images": 1000,
        "by_model": {
            f"n={n}": {
                "error": errors.get(n, [0.5] * len(eps)),
                "zero_gradient_fraction": 0.0,
                "confidence_misclassified": confidence.get(n, [0.5] * len(eps)),
            }
            for n in NS
        },
    }


def whitebox(fgsm_acc: float, name: str = "n=30") -> dict:
    eps = [0.05, 0.1, 0.15, 0.2]
    return {"eps01": eps, "n_images": 200, "by_model": {name: {"fgsm": [fgsm_acc] * 4}}}


def protocol_result(name: str, linf: list[float], l2: list[float], *, trivial: float = 9.0) -> protocol.ProtocolResult:
    """A yardstick result whose combined per-image distances are ``linf`` and ``l2`` (one attack,
    "apgd-ce", found them); ``trivial``: every image's trivial bound (above it: a flag)."""
    config = protocol.ProtocolConfig.for_profile("quick", n_images=len(linf))
    n = len(linf)
    res = {}
    for norm, d in (("linf", linf), ("l2", l2)):
        d = torch.tensor(d, dtype=torch.float64)
        res[norm] = (DistanceResult("apgd-ce", norm, d), DistanceResult("trivial", norm, torch.full((n,), trivial)))
    return protocol.ProtocolResult(
        name,
        config,
        torch.zeros(n, dtype=torch.long),
        torch.ones(n, dtype=torch.bool),
        {norm: {"apgd-ce": a} for norm, (a, _) in res.items()},
        {norm: t for norm, (_, t) in res.items()},
        {norm: DistanceResult("combined", norm, a.distances, None, ["apgd-ce"] * n) for norm, (a, _) in res.items()},
        {"apgd-ce": "gradient"},
        {"linf": {}, "l2": {}},
        {"linf": {}, "l2": {}},
    )


def spread(accuracies: dict[float, float], n: int = 100) -> list[float]:
    """n per-image distances whose accuracy (share of distances > eps) is ``accuracies[eps]``."""
    out = []
    for i in range(n):
        frac = (i + 0.5) / n  # the image's rank
        out.append(max([0.0] + [e + 1e-3 for e, a in accuracies.items() if frac < a]))
    return out


def yardstick(n30: dict[float, float], n2: dict[float, float] | None = None, l2: dict[float, float] | None = None):
    """dam-n2 and dam-n30 with L-inf accuracies at the given epsilons (and L2 ones)."""
    l2 = l2 or {1.0: 0.5}
    n2 = n2 or {e: 0.0 for e in n30}
    return {
        "dam-n2": protocol_result("dam-n2", spread(n2), spread(l2)),
        "dam-n30": protocol_result("dam-n30", spread(n30), spread(l2)),
    }


# --- the claims themselves ----------------------------------------------------------------------


def test_every_rule_has_a_criterion_a_claim_and_a_source():
    ids = [rule.claim.id for rule in dam_claims.RULES]
    assert ids == ["DAM-1", "DAM-2", "DAM-3", "DAM-4", "DAM-5", "DAM-6", "DAM-7", "DAM-8", "DAM-9", "DAM-B1"]
    assert len(set(ids)) == len(ids)
    for rule in dam_claims.RULES:
        assert len(claims.criterion(rule)) > 80, rule.__name__
        assert rule.claim.source and rule.claim.paper and rule.claim.claim


def test_the_paper_numbers_are_written_once_and_quoted_from_the_constants():
    assert dam_claims.DAM_1.paper == "1.51 / 1.44 / 1.61 / 1.80 % (n = 2 / 3 / 20 / 30)"
    assert dam_claims.DAM_6.paper == "beta_sm = 4.7 / 4.6 / 4 / 26 (as printed)"
    assert "98.5 %" in dam_claims.DAM_7.paper and "17 %" in dam_claims.DAM_9.paper


def test_a_rule_whose_step_did_not_run_says_so():
    for rule in dam_claims.RULES:
        found = rule({"profile": QUICK})
        assert found.verdict == "not run" and "did not run" in found.ours, rule.__name__


def test_spearman():
    assert dam_claims.spearman([0, 1, 2, 3], [4.0, 3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert dam_claims.spearman([0, 1, 2, 3], [1.0, 2.0, 3.0, 5.0]) == pytest.approx(1.0)


# --- DAM-1 ----------------------------------------------------------------------------------------


def test_dam_1_reduced_profiles_ask_for_at_most_ten_percent_each():
    assert verdict(dam_claims.dam_1, clean=clean({n: 0.05 for n in NS})) == "reproduced"
    assert verdict(dam_claims.dam_1, clean=clean({2: 0.05, 3: 0.05, 20: 0.05, 30: 0.2})) == "partly"
    assert verdict(dam_claims.dam_1, clean=clean({n: 0.2 for n in NS})) == "not reproduced"


def test_dam_1_at_paper_asks_for_half_a_point_of_the_paper():
    near = {n: e + 0.004 for n, e in dam_claims.PAPER_ERRORS.items()}
    assert verdict(dam_claims.dam_1, clean=clean(near), profile=PAPER) == "reproduced"
    assert verdict(dam_claims.dam_1, clean=clean({**near, 30: 0.03}), profile=PAPER) == "partly"
    assert verdict(dam_claims.dam_1, clean=clean({n: 0.05 for n in NS}), profile=PAPER) == "not reproduced"
    other = replace(PAPER, n_values=(5,))  # no n with a paper number: nothing to compare
    assert verdict(dam_claims.dam_1, clean=clean({5: 0.02}), profile=other) == "not run"


# --- DAM-2, DAM-3 -----------------------------------------------------------------------------------


def test_dam_2_prototype_proxy():
    assert verdict(dam_claims.dam_2, prototypes=prototypes({2: -0.05, 30: 0.3})) == "reproduced"
    assert verdict(dam_claims.dam_2, prototypes=prototypes({2: 0.2, 30: 0.25})) == "not reproduced"
    small_only = replace(QUICK, n_values=(2, 3))
    assert verdict(dam_claims.dam_2, prototypes=prototypes({2: 0.0, 3: 0.5}), profile=small_only) == "not run"


def test_dam_3_every_large_n_must_be_more_digit_like():
    assert verdict(dam_claims.dam_3, rubbish=rubbish({2: 0.1, 20: 0.5, 30: 0.3})) == "reproduced"
    assert verdict(dam_claims.dam_3, rubbish=rubbish({2: 0.1, 20: 0.5, 30: 0.15})) == "not reproduced"
    assert verdict(dam_claims.dam_3, rubbish=rubbish(), profile=replace(QUICK, n_values=(20, 30))) == "not run"


# --- DAM-4 ----------------------------------------------------------------------------------------


def test_dam_4_is_at_most_partly_because_the_look_is_judged_by_eye():
    assert verdict(dam_claims.dam_4, transfer=transfer(crossed=1.0)) == "partly"
    assert verdict(dam_claims.dam_4, transfer=transfer(crossed=0.9)) == "partly"
    assert verdict(dam_claims.dam_4, transfer=transfer(crossed=0.8)) == "not reproduced"


# --- DAM-5 ----------------------------------------------------------------------------------------


ROBUST_L2 = {0.9: 0.95, 1.0: 0.95}  # dam-n30 keeps 95 % at L2 1.0 (the n = 2 set's size in transfer())
FRAGILE_L2 = {0.9: 0.5, 1.0: 0.5}  # ... 50 %


def test_dam_5_at_paper():
    good = {(2, 30): 0.03, (3, 30): 0.05}
    ys = yardstick({0.1: 0.5}, l2=ROBUST_L2)
    assert verdict(dam_claims.dam_5, transfer=transfer(0.98, good), yardstick=ys, profile=PAPER) == "reproduced"
    weak = yardstick({0.1: 0.5}, l2=FRAGILE_L2)
    assert verdict(dam_claims.dam_5, transfer=transfer(0.98, good), yardstick=weak, profile=PAPER) == "partly"
    part = transfer(0.98, {(2, 30): 0.2})
    assert verdict(dam_claims.dam_5, transfer=part, yardstick=ys, profile=PAPER) == "partly"
    bad = transfer(0.9, {(2, 30): 0.2, (3, 30): 0.2})
    assert verdict(dam_claims.dam_5, transfer=bad, yardstick=ys, profile=PAPER) == "not reproduced"


def test_dam_5_reduced_profiles():
    ys = yardstick({0.1: 0.5}, l2=ROBUST_L2)
    # large n resist (<= diagonal / 3) and clearly better than the other small n (<= half of it)
    specific = {(2, 20): 0.05, (2, 30): 0.05, (2, 3): 0.5}
    assert verdict(dam_claims.dam_5, transfer=transfer(0.95, specific), yardstick=ys) == "reproduced"
    weak = {(2, 20): 0.14, (2, 30): 0.18, (2, 3): 0.17}  # quick's numbers: transfer is weak everywhere
    found = dam_claims.dam_5({"profile": QUICK, "transfer": transfer(0.95, weak), "yardstick": ys})
    assert found.verdict == "partly" and "no better than small n" in found.ours
    other = {(2, 20): 0.5, (2, 30): 0.05, (2, 3): 0.5}
    assert verdict(dam_claims.dam_5, transfer=transfer(0.95, other), yardstick=ys) == "partly"
    assert verdict(dam_claims.dam_5, transfer=transfer(0.5, {(2, 20): 0.5, (2, 30): 0.5}), yardstick=ys) == (
        "not reproduced"
    )
    one_small = replace(QUICK, n_values=(2, 30))  # no second small n: no comparison with it
    assert verdict(dam_claims.dam_5, transfer=transfer(0.95, {(2, 30): 0.1}), yardstick=ys, profile=one_small) == (
        "reproduced"
    )
    two_small = replace(QUICK, n_values=(2, 3))
    assert verdict(dam_claims.dam_5, transfer=transfer(), yardstick=ys, profile=two_small) == "not run"


def test_dam_5_needs_robustness_at_the_size_of_the_small_n_set():
    specific = {(2, 20): 0.05, (2, 30): 0.05, (2, 3): 0.5}  # every transfer check holds: 95 % of the set
    at_size = yardstick({0.1: 0.5}, l2={0.9: 0.86, 1.0: 0.86})  # 9 points below the set: robust
    assert verdict(dam_claims.dam_5, transfer=transfer(0.95, specific), yardstick=at_size) == "reproduced"
    found = dam_claims.dam_5(
        {"profile": QUICK, "transfer": transfer(0.95, specific), "yardstick": yardstick({0.1: 0.5}, l2=FRAGILE_L2)}
    )
    assert found.verdict == "partly" and "is not robustness" in found.ours and "L2 1.00" in found.ours
    assert "dam-n30: no flags" in found.ours


def test_dam_5_shows_the_yardstick_flags():
    ys = yardstick({0.1: 0.5}, l2=ROBUST_L2)
    ys["dam-n30"] = protocol_result("dam-n30", spread({0.4: 0.5}), spread(ROBUST_L2), trivial=0.05)
    found = dam_claims.dam_5({"profile": QUICK, "transfer": transfer(0.95), "yardstick": ys})
    assert "FLAGS: attack failure (linf)" in found.ours and "distance above trivial bound" in found.ours


# --- DAM-6 ----------------------------------------------------------------------------------------


def test_dam_6_reduced_profiles_compare_the_lowest_and_highest_bins():
    errors = {n: 0.05 for n in NS}
    assert verdict(dam_claims.dam_6, clean=clean(errors)) == "reproduced"
    flat = {30: [0.01, 0.5]}
    assert verdict(dam_claims.dam_6, clean=clean(errors, flat)) == "partly"
    assert verdict(dam_claims.dam_6, clean=clean(errors, {n: [0.01, 0.5] for n in NS})) == "not reproduced"
    # bins under min_bin_count images do not count: too few bins fails the model
    assert verdict(dam_claims.dam_6, clean=clean(errors, count=5)) == "not reproduced"


def test_dam_6_at_paper_asks_for_a_monotone_fall():
    errors = {n: 0.02 for n in NS}
    falling = {n: [0.5, 0.3, 0.1, 0.01] for n in NS}
    assert verdict(dam_claims.dam_6, clean=clean(errors, falling), profile=PAPER) == "reproduced"
    mixed = {**falling, 2: [0.1, 0.5, 0.01, 0.3]}
    assert verdict(dam_claims.dam_6, clean=clean(errors, mixed), profile=PAPER) == "partly"
    rising = {n: [0.01, 0.1, 0.3, 0.5] for n in NS}
    assert verdict(dam_claims.dam_6, clean=clean(errors, rising), profile=PAPER) == "not reproduced"


# --- DAM-7 ----------------------------------------------------------------------------------------


def test_dam_7_reduced_profiles():
    assert verdict(dam_claims.dam_7, rubbish=rubbish(z={(2, 2): 0.5, (2, 20): 0.1})) == "reproduced"
    assert verdict(dam_claims.dam_7, rubbish=rubbish(z={(2, 2): 0.5, (2, 20): 0.3})) == "not reproduced"
    assert verdict(dam_claims.dam_7, rubbish=rubbish(), profile=replace(QUICK, n_values=(2, 3))) == "not run"


def test_dam_7_at_paper():
    cross = {(g, c): 0.1 for g in (2, 3) for c in (20, 30)}
    assert verdict(dam_claims.dam_7, rubbish=rubbish(z={**cross, (2, 2): 0.985}), profile=PAPER) == "reproduced"
    assert verdict(dam_claims.dam_7, rubbish=rubbish(z={**cross, (2, 2): 0.6}), profile=PAPER) == "partly"
    high = {(g, c): 0.6 for g in (2, 3) for c in (20, 30)}
    assert verdict(dam_claims.dam_7, rubbish=rubbish(z={**high, (2, 2): 0.6}), profile=PAPER) == "not reproduced"


# --- DAM-8 ----------------------------------------------------------------------------------------

EPS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]


def test_dam_8_reduced_profiles_compare_the_strongest_attacks_at_0_1_and_0_15():
    n2 = {0.1: 0.2, 0.15: 0.05}  # accuracies: errors 80 %, 95 %
    fg = fgsm(EPS)
    assert verdict(dam_claims.dam_8, yardstick=yardstick({0.1: 0.5, 0.15: 0.3}, n2), fgsm=fg) == "reproduced"
    assert verdict(dam_claims.dam_8, yardstick=yardstick({0.1: 0.5, 0.15: 0.1}, n2), fgsm=fg) == "partly"
    found = dam_claims.dam_8({"profile": QUICK, "yardstick": yardstick({0.1: 0.25, 0.15: 0.1}, n2), "fgsm": fg})
    assert found.verdict == "not reproduced"  # lower, but by less than 10 points
    assert "The paper's FGSM (1000 images)" in found.ours and "n=30 50.0 %" in found.ours
    assert "dam-n2: no flags" in found.ours


def test_dam_8_at_paper_compares_every_grid_epsilon_up_to_0_25():
    grid = [e for e in protocol.LINF_GRID if 0 < e <= 0.25]
    fg = fgsm(EPS)
    robust = {e: 0.6 for e in grid}
    assert verdict(dam_claims.dam_8, yardstick=yardstick(robust), fgsm=fg, profile=PAPER) == "reproduced"
    late = {e: (0.6 if e <= 0.1 else 0.0) for e in grid}
    assert verdict(dam_claims.dam_8, yardstick=yardstick(late), fgsm=fg, profile=PAPER) == "partly"
    assert verdict(dam_claims.dam_8, yardstick=yardstick({0.1: 0.0}), fgsm=fg, profile=PAPER) == "not reproduced"


# --- DAM-9 ----------------------------------------------------------------------------------------


def test_dam_9_reduced_profiles():
    assert verdict(dam_claims.dam_9, fgsm=fgsm(EPS, confidence={2: [0.8] * 6, 20: [0.2] * 6})) == "reproduced"
    assert verdict(dam_claims.dam_9, fgsm=fgsm(EPS, confidence={2: [0.2] * 6, 20: [0.8] * 6})) == "not reproduced"
    found = dam_claims.dam_9({"profile": QUICK, "fgsm": fgsm(EPS, confidence={20: [math.nan] * 6})})
    assert found.verdict == "not run" and "no misclassified images" in found.ours
    assert verdict(dam_claims.dam_9, fgsm=fgsm(EPS), profile=replace(QUICK, n_values=(2, 3))) == "not run"


def test_dam_9_at_paper():
    eps = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    large = [0.7, 0.5, 0.3, 0.17, 0.14, 0.14, 0.14]
    conf = {2: [0.9] * 7, 3: [0.9] * 7, 20: large, 30: large}
    assert verdict(dam_claims.dam_9, fgsm=fgsm(eps, confidence=conf), profile=PAPER) == "reproduced"
    assert verdict(dam_claims.dam_9, fgsm=fgsm(eps, confidence={**conf, 2: [0.5] * 7}), profile=PAPER) == "partly"
    wrong = {n: ([0.5] * 7 if n <= 3 else [0.9] * 7) for n in NS}
    assert verdict(dam_claims.dam_9, fgsm=fgsm(eps, confidence=wrong), profile=PAPER) == "not reproduced"


# --- DAM-B1 ---------------------------------------------------------------------------------------


def test_dam_b1_the_strongest_attacks_against_the_papers_fgsm():
    def b1(fgsm_acc, n30, **kw):
        return dam_claims.dam_b1({"profile": QUICK, "whitebox": whitebox(fgsm_acc, **kw), "yardstick": yardstick(n30)})

    assert b1(0.70, {0.1: 0.65}).verdict == "reproduced"
    assert b1(0.70, {0.1: 0.50}).verdict == "partly"
    found = b1(0.705, {0.1: 0.24})  # about quick's numbers
    assert found.verdict == "not reproduced"
    assert "24.0 % under the strongest attacks" in found.ours and "70.5 % under the paper's FGSM" in found.ours
    assert "dam-n30: no flags" in found.ours and "(mostly apgd-ce)" in found.ours
    found = b1(0.7, {0.1: 0.7}, name="n=2")
    assert found.verdict == "not run" and "did not attack n=30" in found.ours


def test_the_headline_is_the_title_claim():
    assert dam_claims.HEADLINE == "DAM-B1"
    assert "robust to adversarial inputs" in dam_claims.DAM_B1.claim


# --- the whole scorecard ----------------------------------------------------------------------------


def test_the_scorecard_has_one_row_per_rule_with_its_criterion():
    results = {
        "profile": QUICK,
        "clean": clean({n: 0.05 for n in NS}),
        "prototypes": prototypes({2: 0.0, 3: 0.0, 20: 0.3, 30: 0.3}),
        "rubbish": rubbish({20: 0.5, 30: 0.5}, {(2, 2): 0.5, (2, 20): 0.1}),
        "transfer": transfer(),
        "fgsm": fgsm(EPS),
        "whitebox": whitebox(0.7),
        "yardstick": yardstick({0.1: 0.65, 0.15: 0.5}),
    }
    rows = claims.scorecard(dam_claims.RULES, results)
    assert [r["id"] for r in rows] == [rule.claim.id for rule in dam_claims.RULES]
    assert all(r["verdict"] in claims.VERDICTS and r["criterion"] and r["source"] for r in rows)
