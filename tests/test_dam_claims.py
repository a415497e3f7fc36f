"""The DAM verdict rules, branch by branch, on small hand-built results shaped like the steps' ones."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from robustlib import claims
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


def whitebox(fgsm_acc: float, strongest: float, name: str = "n=30") -> dict:
    eps = [0.05, 0.1, 0.15, 0.2]
    return {
        "eps01": eps,
        "by_model": {name: {"fgsm": [fgsm_acc] * 4, "strongest_linf": [strongest] * 4, "boundary_median_l2": 3.0}},
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


def test_dam_5_at_paper():
    good = {(2, 30): 0.03, (3, 30): 0.05}
    assert verdict(dam_claims.dam_5, transfer=transfer(0.98, good), profile=PAPER) == "reproduced"
    assert verdict(dam_claims.dam_5, transfer=transfer(0.98, {(2, 30): 0.2}), profile=PAPER) == "partly"
    assert (
        verdict(dam_claims.dam_5, transfer=transfer(0.9, {(2, 30): 0.2, (3, 30): 0.2}), profile=PAPER)
        == "not reproduced"
    )


def test_dam_5_reduced_profiles():
    # large n resist (<= diagonal / 3) and clearly better than the other small n (<= half of it)
    specific = {(2, 20): 0.05, (2, 30): 0.05, (2, 3): 0.5}
    assert verdict(dam_claims.dam_5, transfer=transfer(0.95, specific)) == "reproduced"
    weak = {(2, 20): 0.14, (2, 30): 0.18, (2, 3): 0.17}  # quick's numbers: transfer is weak everywhere
    found = dam_claims.dam_5({"profile": QUICK, "transfer": transfer(0.95, weak)})
    assert found.verdict == "partly" and "no better than small n" in found.ours
    assert verdict(dam_claims.dam_5, transfer=transfer(0.95, {(2, 20): 0.5, (2, 30): 0.05, (2, 3): 0.5})) == "partly"
    assert verdict(dam_claims.dam_5, transfer=transfer(0.5, {(2, 20): 0.5, (2, 30): 0.5})) == "not reproduced"
    one_small = replace(QUICK, n_values=(2, 20))  # no second small n: no comparison with it
    assert verdict(dam_claims.dam_5, transfer=transfer(0.95, {(2, 20): 0.1}), profile=one_small) == "reproduced"
    assert verdict(dam_claims.dam_5, transfer=transfer(), profile=replace(QUICK, n_values=(2, 3))) == "not run"


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


def test_dam_8_reduced_profiles_compare_at_0_2_and_0_3():
    small, large = [0.0, 0.3, 0.6, 0.9, 0.95, 0.97], [0.0, 0.2, 0.4, 0.6, 0.7, 0.8]
    assert verdict(dam_claims.dam_8, fgsm=fgsm(EPS, {2: small, 20: large})) == "reproduced"
    mixed = [0.0, 0.2, 0.4, 0.95, 0.7, 0.8]
    assert verdict(dam_claims.dam_8, fgsm=fgsm(EPS, {2: small, 20: mixed})) == "partly"
    assert verdict(dam_claims.dam_8, fgsm=fgsm(EPS, {2: large, 20: small})) == "not reproduced"
    assert verdict(dam_claims.dam_8, fgsm=fgsm([0.0, 0.5], {})) == "not run"  # neither 0.2 nor 0.3
    assert verdict(dam_claims.dam_8, fgsm=fgsm(EPS), profile=replace(QUICK, n_values=(20, 30))) == "not run"


def test_dam_8_at_paper_every_large_n_below_every_small_n():
    small, large = [0.0, 0.3, 0.6, 0.9, 0.95, 0.97], [0.0, 0.2, 0.4, 0.6, 0.7, 0.8]
    errors = {2: small, 3: small, 20: large, 30: large}
    assert verdict(dam_claims.dam_8, fgsm=fgsm(EPS, errors), profile=PAPER) == "reproduced"
    assert verdict(dam_claims.dam_8, fgsm=fgsm(EPS, {**errors, 30: small}), profile=PAPER) == "partly"
    swapped = {2: large, 3: large, 20: small, 30: small}
    assert verdict(dam_claims.dam_8, fgsm=fgsm(EPS, swapped), profile=PAPER) == "not reproduced"


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


def test_dam_b1_strongest_attack_against_fgsm():
    assert verdict(dam_claims.dam_b1, whitebox=whitebox(0.70, 0.65)) == "reproduced"
    assert verdict(dam_claims.dam_b1, whitebox=whitebox(0.70, 0.50)) == "partly"
    assert verdict(dam_claims.dam_b1, whitebox=whitebox(0.705, 0.325)) == "not reproduced"  # quick's numbers
    found = dam_claims.dam_b1({"profile": QUICK, "whitebox": whitebox(0.7, 0.7, name="n=2")})
    assert found.verdict == "not run" and "no large-n model" in found.ours


# --- the whole scorecard ----------------------------------------------------------------------------


def test_the_scorecard_has_one_row_per_rule_with_its_criterion():
    results = {
        "profile": QUICK,
        "clean": clean({n: 0.05 for n in NS}),
        "prototypes": prototypes({2: 0.0, 3: 0.0, 20: 0.3, 30: 0.3}),
        "rubbish": rubbish({20: 0.5, 30: 0.5}, {(2, 2): 0.5, (2, 20): 0.1}),
        "transfer": transfer(),
        "fgsm": fgsm(EPS),
        "whitebox": whitebox(0.7, 0.65),
    }
    rows = claims.scorecard(dam_claims.RULES, results)
    assert [r["id"] for r in rows] == [rule.claim.id for rule in dam_claims.RULES]
    assert all(r["verdict"] in claims.VERDICTS and r["criterion"] and r["source"] for r in rows)
