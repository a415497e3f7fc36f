"""The MFBM verdict rules, branch by branch, on hand-built results shaped like the steps' results
(``experiments.steps``): every verdict each rule can return is reached at least once."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from robustlib import attacks, claims, papers, protocol, store
from robustlib.experiment import check_steps
from robustlib.papers.baselines.model import ModelKey
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
    assert mfbm_claims.HEADLINE == mfbm_claims.BLACK_BOX.id == "MFBM-8"
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
    # LeNet: the book's baseline recipe (baselines.trained) keys it as the chapter always did
    lenet = ModelKey.of("lenet", QUICK.lenet_epochs, QUICK.n_train)
    assert store.artifact_stem("lenet", lenet, notebook="mfbm", profile="quick", seed=0).name == "lenet-33dbb9e564fc"


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


# --- MFBM-7 and MFBM-8: judged on the yardstick ------------------------------------------------------


class FakeResult:
    """The part of a ``protocol.ProtocolResult`` the rules read: per-image combined L2 distances,
    the paper's attack's distances, the flags."""

    def __init__(self, combined: torch.Tensor, own: torch.Tensor | None = None, flags: tuple = ()):
        self.labels = torch.zeros(len(combined), dtype=torch.long)
        self._d = {"combined": combined, experiments.ATTACK: combined if own is None else own}
        self._flags = [protocol.Flag(kind, norm, "message") for norm, kind in flags]

    def distances(self, norm: str, attack: str = "combined") -> attacks.DistanceResult:
        assert norm == "l2"
        return attacks.DistanceResult(attack, norm, self._d[attack])

    def flags(self) -> list:
        return self._flags


def yardstick(mfbm_d, rbm_d, lenet_d, **kw) -> dict:
    return {"mfbm": FakeResult(mfbm_d, **kw), "mfbm-rbm": FakeResult(rbm_d), "mfbm-lenet": FakeResult(lenet_d)}


def robust(share: float, n: int = 50, high: float = 3.0, low: float = 0.8) -> torch.Tensor:
    """``n`` distances of which the first ``share`` lie above 1.5 (at ``high``), the rest at ``low``."""
    return torch.where(torch.arange(n) < round(share * n), high, low).to(F64)


def test_combined_compares_the_models_on_their_common_first_images():
    ys = yardstick(robust(0.6, 50), robust(0.2, 200), robust(0.1, 200))
    found, n = mfbm_claims.combined({"yardstick": ys})
    assert n == 50 and all(len(c.distances.distances) == 50 for c in found.values())
    assert found["mfbm"].robust == pytest.approx(0.6)
    assert found["mfbm-lenet"].robust == pytest.approx(0.4)  # its first 20 robust images of 200


@pytest.mark.parametrize(
    "m, r, lenet, flags, prof, expected",
    [
        (0.60, 0.30, 0.40, (), QUICK, "reproduced"),  # 20 points above LeNet, RBM far below
        (0.60, 0.58, 0.40, (), QUICK, "partly"),  # the RBM control is as robust
        (0.60, 0.30, 0.40, (("l2", "attack failure"),), QUICK, "partly"),  # a flagged L2 evaluation
        (0.60, 0.30, 0.40, (("linf", "attack failure"),), QUICK, "reproduced"),  # L-inf: not this claim
        (0.46, 0.30, 0.40, (), QUICK, "partly"),  # above LeNet by less than 10 points
        (0.36, 0.30, 0.40, (), QUICK, "not reproduced"),
        (0.96, 0.30, 0.40, (), PAPER, "reproduced"),  # >= 92 % robust, mean >= 0.8 * 3.9
        (0.80, 0.30, 0.40, (), PAPER, "partly"),  # far above LeNet, below 92 %
        (0.44, 0.30, 0.40, (), PAPER, "not reproduced"),
    ],
)
def test_white_box_rule_on_the_yardstick(m, r, lenet, flags, prof, expected):
    high = 3.5 if prof is PAPER else 3.0  # the paper case's mean: 0.96 * 3.5 + 0.04 * 0.8 = 3.39
    ys = yardstick(robust(m, high=high), robust(r), robust(lenet), flags=flags)
    found = mfbm_claims.white_box({"yardstick": ys, "profile": prof})
    assert found.verdict == expected
    assert (f"flags: {flags[0][0]}: {flags[0][1]}" if flags else "no sanity flag") in found.ours
    assert "The paper's attack alone" in found.ours


def test_white_box_shows_the_papers_attack_beside_but_does_not_judge_on_it():
    strong_own = yardstick(robust(0.3), robust(0.1), robust(0.35), own=robust(1.0, high=4.0))
    found = mfbm_claims.white_box({"yardstick": strong_own, "profile": QUICK})
    assert found.verdict == "not reproduced"  # 100 % against the paper's attack alone is not the result
    assert "The paper's attack alone: 100% robust, mean 4.00" in found.ours


def mixed(high: float, share: float, n: int) -> torch.Tensor:
    """``n`` distances: the first ``share`` of them at ``high``, the rest at 1.0 (not robust)."""
    d = torch.full((n,), 1.0, dtype=F64)
    d[: round(share * n)] = high
    return d


def table1(gradient, boundary, transfer, gaussian) -> dict:
    return {k: {"distances": v} for k, v in zip(experiments.TABLE1_ATTACKS, (gradient, boundary, transfer, gaussian))}


SMALL_QUICK = dataclasses.replace(QUICK, n_attack=8, boundary_images=4)


@pytest.mark.parametrize(
    "m, lenet, high, flags, expected",
    [
        (0.80, 0.10, 3.0, (), "reproduced"),  # >= 72 % robust and mean 2.56 >= 0.8 * 2.73
        (0.80, 0.10, 3.0, (("l2", "gradient masking suspected"),), "partly"),
        (0.80, 0.10, 2.0, (), "partly"),  # mean below 80 % of 2.73
        (0.45, 0.10, 3.0, (), "partly"),  # far below the paper, 35 points above LeNet
        (0.45, 0.40, 3.0, (), "not reproduced"),
    ],
)
def test_black_box_rule_on_the_yardstick(m, lenet, high, flags, expected):
    for prof in (QUICK, PAPER):  # the paper's level is the criterion at every profile
        ys = yardstick(robust(m, high=high), robust(0.1), robust(lenet), flags=flags)
        assert verdict(mfbm_claims.black_box, yardstick=ys, profile=prof) == expected


def test_black_box_shows_the_chapters_table1_beside_it():
    ok = table1(full(1.8, 8), full(4.4, 4), full(3.0, 8), full(11.0, 8))
    ys = yardstick(robust(0.3), robust(0.1), robust(0.1))
    found = mfbm_claims.black_box({"yardstick": ys, "table1": ok, "profile": SMALL_QUICK})
    assert found.verdict == "partly"  # 20 points above LeNet
    assert "strongest of all attacks (50 images): MFBM 30% robust" in found.ours
    assert "The paper's four attacks (Table 1, compound on 4 images): 100% robust, mean 1.80" in found.ours


def test_table1_summary_compound_on_the_boundary_images():
    t = experiments.table1_summary(table1(full(1.8, 8), full(4.4, 4), full(3.0, 8), full(11.0, 8)), SMALL_QUICK)
    assert t.n_boundary == 4 and len(t.ours["compound"].distances) == 4
    assert t.compound_sources == {"gradient": 4} and t.gaussian_not_found == 0


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
