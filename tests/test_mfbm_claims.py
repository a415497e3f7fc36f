"""The MFBM verdict rules, branch by branch, on hand-built results shaped like the steps' results
(``experiments.steps``): every verdict each rule can return is reached at least once."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from robustlib import claims, papers, store
from robustlib.experiment import check_steps
from robustlib.papers.mfbm import claims as mfbm_claims
from robustlib.papers.mfbm import experiments

QUICK = papers.profile("mfbm", "quick")
PAPER = papers.profile("mfbm", "paper")
SMOKE = papers.profile("mfbm", "smoke")
F64 = torch.float64


def verdict(rule, **results) -> str:
    results.setdefault("profile", QUICK)
    return rule(results).verdict


def full(value: float, n: int = 10) -> torch.Tensor:
    return torch.full((n,), value, dtype=F64)


# --- the claims themselves ---------------------------------------------------------------------------


def test_rules_have_criteria_unique_ids_and_sources():
    ids = [rule.claim.id for rule in mfbm_claims.RULES]
    assert ids == [f"MFBM-{i}" for i in range(1, 11)]  # scorecard order
    for rule in mfbm_claims.RULES:
        assert len(claims.criterion(rule)) > 80, rule.__name__
        assert rule.claim.source and rule.claim.claim and rule.claim.paper


def test_paper_numbers_are_written_once_and_read_by_the_claims():
    assert mfbm_claims.WHITE_BOX.paper == "mean L2 3.9, 97 % at ε = 1.5"
    assert mfbm_claims.BLACK_BOX.paper == (
        "Boundary 3.46 / 85 %; Transfer 5.6 / 96 %; Gaussian 10.6 / 98 %; Compound 2.73 / 82 %"
    )
    assert mfbm_claims.DISTILLED.paper == "L2 3.35, clean error 1.35 %, > 2x LeNet"
    assert mfbm_claims.PATTERN_COVERAGE.paper == "679, > 98 %"


@pytest.mark.parametrize("rule", mfbm_claims.RULES, ids=lambda r: r.claim.id)
def test_every_rule_says_not_run_without_its_results(rule):
    assert verdict(rule) == "not run"


def test_steps_are_a_valid_schedule_at_every_profile():
    for prof in (SMOKE, QUICK, PAPER):
        names = [s.name for s in experiments.steps(prof)]
        check_steps(experiments.steps(prof))
        assert ("stage2" in names) == (prof.stage2_steps > 0)
        assert ("distill" in names) == (prof.distill_epochs > 0)


def test_keys_hash_like_the_committed_quick_artifacts():
    stem = store.artifact_stem("fig4", experiments.Key(QUICK), notebook="mfbm", profile="quick", seed=0)
    assert stem.name == "fig4-3c26aeb11794"
    stem = store.artifact_stem(
        "clf-mfbm-300", experiments.ClassifierKey(QUICK, "mfbm-300"), notebook="mfbm", profile="quick", seed=0
    )
    assert stem.name == "clf-mfbm-300-6a229bc572a5"


# --- MFBM-1 and MFBM-2 --------------------------------------------------------------------------------


def test_expansion_rule():
    good = {"slopes": {3: 3.95, 4: 4.99}, "ok": True}
    assert verdict(mfbm_claims.expansion, expansion=good) == "reproduced"
    assert verdict(mfbm_claims.expansion, expansion={**good, "ok": False}) == "not reproduced"
    assert "3.95 (order 3, expect 4)" in mfbm_claims.expansion({"expansion": good, "profile": QUICK}).ours


@pytest.mark.parametrize("coverage, expected", [(0.985, "reproduced"), (0.9765, "partly"), (0.96, "not reproduced")])
def test_pattern_coverage_rule(coverage, expected):
    pat = {"coverage_679": coverage, "n_for_98": 777}
    assert verdict(mfbm_claims.pattern_coverage, patterns4=pat) == expected


# --- MFBM-3 and MFBM-4: App. D and E -----------------------------------------------------------------


def history(d_exact, d_mf, ratio_error):
    """An App. D history whose mean-field ratio p1/p2 is off by ``ratio_error`` at the last step."""
    n = len(d_exact)
    ones = torch.ones(n, dtype=F64)
    p1_mf = ones.clone()
    p1_mf[-1] = 1 + ratio_error
    return {
        "D_exact": torch.tensor(d_exact, dtype=F64),
        "D": torch.tensor(d_mf, dtype=F64),
        "p1_mf": p1_mf,
        "p2_mf": ones,
        "p1_exact": ones,
        "p2_exact": ones,
    }


@pytest.mark.parametrize(
    "d_exact, d_mf, err, prof, expected",
    [
        ([2.78, 0.76], [2.78, -0.74], 0.012, QUICK, "reproduced"),
        ([2.78, 0.76], [2.78, -0.74], 0.15, QUICK, "reproduced"),  # within 20 %
        ([2.78, 0.76], [2.78, -0.74], 0.15, PAPER, "partly"),  # not within 10 %
        ([2.78, 0.76], [2.78, -0.74], 0.5, QUICK, "partly"),  # both fall, ratio off
        ([2.78, 3.0], [2.78, -0.74], 0.01, QUICK, "partly"),  # exact D rises, ratio right
        ([2.78, 3.0], [2.78, 3.1], 0.5, QUICK, "not reproduced"),
    ],
)
def test_mean_field_vs_exact_rule(d_exact, d_mf, err, prof, expected):
    appd = {"history": history(d_exact, d_mf, err)}
    assert verdict(mfbm_claims.mean_field_vs_exact, appendix_d=appd, profile=prof) == expected


def appendix_e(ratio_jh: float, ratio_rbm: float) -> dict:
    """Responses (eps, 32 states): the 2 training states respond 1, the other 30 ``ratio``."""
    train = torch.tensor([3, 17])
    out = {"train_index": train}
    for key, ratio in (("jh", ratio_jh), ("rbm", ratio_rbm)):
        d = torch.full((2, 32), ratio, dtype=F64)
        d[:, train] = 1.0
        out[f"delta_{key}"] = d
    return out


@pytest.mark.parametrize(
    "jh, rbm, prof, expected",
    [
        (210.2, 2.7, QUICK, "reproduced"),
        (1.3, 1.1, QUICK, "reproduced"),  # quick: only larger than the RBM's
        (1.3, 1.1, PAPER, "not reproduced"),  # paper: also >= 1.5
        (2.0, 2.7, QUICK, "not reproduced"),
    ],
)
def test_small_noise_rule(jh, rbm, prof, expected):
    assert verdict(mfbm_claims.small_noise, appendix_e=appendix_e(jh, rbm), profile=prof) == expected


# --- MFBM-5: Fig. 4 ------------------------------------------------------------------------------------


def fig4(ratios: list[float]) -> dict:
    n = len(ratios)
    return {
        "D": [2.5 - i for i in range(n)],
        "delta_train": torch.ones(n, 2, dtype=F64),
        "delta_random": torch.tensor(ratios, dtype=F64)[:, None].repeat(1, 2),
    }


@pytest.mark.parametrize(
    "ratios, expected",
    [
        ([1.2, 1.5, 2.0], "reproduced"),  # rises at every checkpoint
        ([1.2, 1.1, 1.8], "partly"),  # ends higher, not at every step
        ([2.32, 1.25, 1.81], "not reproduced"),  # the committed quick result: above 1, not growing
        ([0.5, 0.7, 0.9], "not reproduced"),  # grows but stays below 1
    ],
)
def test_noise_growth_rule(ratios, expected):
    found = mfbm_claims.noise_growth({"fig4": fig4(ratios), "profile": QUICK})
    assert found.verdict == expected
    assert ("but not growing" in found.ours) == (ratios == [2.32, 1.25, 1.81])


# --- MFBM-6 and MFBM-7: Fig. 3 and the gradient attack ---------------------------------------------------


def fig3(l2: dict[str, float], errors: dict[str, float], n: int = 10) -> dict:
    """Fig. 3 results: the checkpoints' D fall with the step; every image at distance ``l2``."""
    out = {}
    for label, value in l2.items():
        step = int(label.split("-")[1]) if label.startswith("mfbm-") else None
        D = 3.0 / (1 + step) if step is not None else math.nan
        out[label] = {"D": D, "step": step, "clean_error": errors.get(label, 0.01), "distances": full(value, n)}
    return out


@pytest.mark.parametrize(
    "l2, errors, expected",
    [
        ({"mfbm-25": 1.2, "mfbm-100": 1.6, "mfbm-300": 2.0, "rbm": 1.5, "lenet": 1.3}, {}, "reproduced"),
        (  # the committed quick result: ranking holds but the clean error spreads by 8 points
            {"mfbm-25": 1.24, "mfbm-100": 1.54, "mfbm-300": 1.81, "rbm": 1.75, "lenet": 1.36},
            {"mfbm-25": 0.129, "mfbm-100": 0.05, "mfbm-300": 0.046},
            "partly",
        ),
        ({"mfbm-25": 1.5, "mfbm-100": 1.2, "mfbm-300": 1.4, "rbm": 1.5, "lenet": 1.3}, {}, "partly"),  # > LeNet only
        ({"mfbm-25": 1.5, "mfbm-100": 1.2, "mfbm-300": 1.0, "rbm": 1.5, "lenet": 1.4}, {}, "not reproduced"),
    ],
)
def test_pretraining_rule_quick(l2, errors, expected):
    found = mfbm_claims.pretraining({"fig3": fig3(l2, errors), "profile": QUICK})
    assert found.verdict == expected
    assert ("is contradicted" in found.ours) == bool(errors)


def test_pretraining_rule_paper():
    four = {"mfbm-25": 1.2, "mfbm-100": 1.6, "mfbm-250": 1.8, "mfbm-600": 2.0, "rbm": 1.0, "lenet": 1.0}
    assert verdict(mfbm_claims.pretraining, fig3=fig3(four, {}), profile=PAPER) == "reproduced"
    three = {k: v for k, v in four.items() if k != "mfbm-250"}
    assert verdict(mfbm_claims.pretraining, fig3=fig3(three, {}), profile=PAPER) == "partly"  # < 4 checkpoints
    spread = fig3(four, {"mfbm-25": 0.02})
    assert verdict(mfbm_claims.pretraining, fig3=spread, profile=PAPER) == "partly"  # spread > 0.5 points
    falling = {**four, "mfbm-600": 1.0}
    assert verdict(mfbm_claims.pretraining, fig3=fig3(falling, {}), profile=PAPER) == "not reproduced"


def white_box(final: float, rbm: float, lenet: float, prof) -> str:
    label = experiments.final_label(prof)
    l2 = {label: final, "mfbm-25": 1.0, "rbm": rbm, "lenet": lenet}
    table1 = {"gradient": {"distances": full(final, 100)}}
    return verdict(mfbm_claims.white_box, fig3=fig3(l2, {}, 100), table1=table1, profile=prof)


def test_white_box_rule():
    assert white_box(1.81, 1.2, 1.36, QUICK) == "reproduced"
    assert white_box(1.81, 1.75, 1.36, QUICK) == "partly"  # the RBM network is as robust
    assert white_box(1.2, 1.0, 1.36, QUICK) == "not reproduced"
    assert white_box(3.9, 1.5, 1.4, PAPER) == "reproduced"  # mean 3.9, 100 % robust at 1.5
    assert white_box(3.9, 3.8, 1.4, PAPER) == "partly"  # RBM within 10 %
    assert white_box(2.0, 1.5, 1.4, PAPER) == "partly"  # only above LeNet
    assert white_box(1.0, 0.5, 1.4, PAPER) == "not reproduced"


# --- MFBM-8: Table 1 -------------------------------------------------------------------------------------


def mixed(high: float, share: float, n: int) -> torch.Tensor:
    """``n`` distances: the first ``share`` of them at ``high``, the rest at 1.0 (not robust)."""
    d = torch.full((n,), 1.0, dtype=F64)
    d[: round(share * n)] = high
    return d


def table1(gradient, boundary, transfer, gaussian) -> dict:
    return {k: {"distances": v} for k, v in zip(experiments.TABLE1_ATTACKS, (gradient, boundary, transfer, gaussian))}


SMALL_QUICK = dataclasses.replace(QUICK, n_attack=8, boundary_images=4)
SMALL_PAPER = dataclasses.replace(PAPER, n_attack=100, boundary_images=50)


def test_black_box_rule_quick():
    ok = table1(full(1.8, 8), full(4.4, 4), full(3.0, 8), full(11.0, 8))
    assert verdict(mfbm_claims.black_box, table1=ok, profile=SMALL_QUICK) == "partly"  # at most partly
    weak_noise = table1(full(1.8, 8), full(4.4, 4), full(3.0, 8), full(1.0, 8))
    assert verdict(mfbm_claims.black_box, table1=weak_noise, profile=SMALL_QUICK) == "not reproduced"
    found = mfbm_claims.black_box({"table1": ok, "profile": SMALL_QUICK})
    assert "compound on 4 images" in found.ours and "quick checks only" in found.ours


def test_black_box_rule_paper():
    n, n_b = 100, 50
    # Boundary is the smallest everywhere, so the compound is Boundary on the first 50 images
    near = table1(mixed(4.0, 0.97, n), mixed(3.3, 0.86, n_b), mixed(5.8, 0.96, n), mixed(10.8, 0.98, n))
    assert verdict(mfbm_claims.black_box, table1=near, profile=SMALL_PAPER) == "reproduced"
    far = table1(mixed(4.0, 0.97, n), mixed(3.3, 0.86, n_b), mixed(5.8, 0.96, n), mixed(20.0, 0.98, n))
    assert verdict(mfbm_claims.black_box, table1=far, profile=SMALL_PAPER) == "partly"
    # unfound adversarials (inf) leave the compound's mean above the gradient attack's: not <= each
    gradient = mixed(4.0, 0.97, n)
    gradient[n_b // 2 : n_b] = math.inf
    boundary = mixed(3.3, 0.86, n_b)
    boundary[: n_b // 2] = math.inf
    worse = table1(gradient, boundary, torch.full((n,), math.inf, dtype=F64), torch.full((n,), 30.0, dtype=F64))
    assert verdict(mfbm_claims.black_box, table1=worse, profile=SMALL_PAPER) == "not reproduced"


# --- MFBM-9 and MFBM-10 -----------------------------------------------------------------------------------


def test_distilled_rule():
    f3 = fig3({"mfbm-25": 1.0, "rbm": 1.0, "lenet": 1.5}, {})
    good = {"distances": full(3.4), "clean_error": 0.014}
    assert verdict(mfbm_claims.distilled, distill=good, fig3=f3, profile=PAPER) == "reproduced"
    assert verdict(mfbm_claims.distilled, distill=good, fig3=f3, profile=SMOKE) == "reproduced"  # judged too
    weaker = {"distances": full(2.0), "clean_error": 0.014}
    assert verdict(mfbm_claims.distilled, distill=weaker, fig3=f3, profile=PAPER) == "partly"
    bad = {"distances": full(1.0), "clean_error": 0.05}
    assert verdict(mfbm_claims.distilled, distill=bad, fig3=f3, profile=PAPER) == "not reproduced"
    assert verdict(mfbm_claims.distilled, distill=good, fig3=f3, profile=QUICK) == "not run"  # quick: never
    assert verdict(mfbm_claims.distilled, fig3=f3, profile=PAPER) == "not run"


@pytest.mark.parametrize(
    "mfbm, lenet, rbm, expected",
    [(0.05, 0.04, 0.045, "reproduced"), (0.046, 0.038, 0.048, "partly"), (0.03, 0.04, 0.045, "not reproduced")],
)
def test_clean_error_rule(mfbm, lenet, rbm, expected):
    errors = {experiments.final_label(QUICK): mfbm, "lenet": lenet, "rbm": rbm}
    found = mfbm_claims.clean_error({"clean_errors": errors, "profile": QUICK})
    assert found.verdict == expected
    assert "(1000 test images)" in found.ours
