"""The baselines chapter's verdict rules, branch by branch, on hand-built results shaped like the
steps' (``clean``: accuracy per model; ``linf`` / ``l2``: ``{model: {attack: DistanceResult}}``;
``yardstick``: ``{zoo name: ProtocolResult}``); plus the steps' schedule and the store keys the
committed results were saved under."""

from __future__ import annotations

import math

import pytest
import torch

from robustlib import attacks, claims, experiment, protocol, store
from robustlib.attacks import DistanceResult
from robustlib.papers.baselines import claims as base
from robustlib.papers.baselines import experiments
from robustlib.papers.baselines.model import ModelKey, recipe
from robustlib.papers.baselines.profile import PROFILES
from robustlib.protocol import ProtocolResult

QUICK = PROFILES["quick"]


def dist(*values: float, norm: str = "linf") -> DistanceResult:
    """A result whose images have these minimal distances (0: wrong clean, inf: none found)."""
    return DistanceResult("fake", norm, torch.tensor(values, dtype=torch.float64))


def linf_results(pgd: float = 0.0, noise: float = 1.0, **pgd_of: float) -> dict:
    """Every model with PGD fooling all images at ``pgd`` (per model: ``pgd_of``) and uniform
    noise fooling none below ``noise``."""
    return {
        m: {"PGD": dist(pgd_of.get(m, pgd), pgd_of.get(m, pgd)), "uniform noise": dist(noise, noise)}
        for m in experiments.MODELS
    }


def verdict(rule, results, prof=QUICK) -> str:
    return rule({**results, "profile": prof}).verdict


# --- the claims as a whole -----------------------------------------------------------------------


def test_every_rule_has_a_criterion_a_unique_id_and_a_source():
    ids = [r.claim.id for r in base.RULES]
    assert ids == ["BASE-1", "BASE-2", "BASE-3", "BASE-4"]
    for r in base.RULES:
        assert len(claims.criterion(r)) > 80, r.claim.id
        assert r.claim.source and r.claim.claim and r.claim.paper


def test_the_paper_column_is_built_from_the_released_numbers():
    assert base.BASE_3.paper == "median 1.54, 53 % at ε = 1.5 (ABS paper, all 60,000 training images)"
    assert base.BASE_2.paper.startswith("CNN 0 % at L∞ 0.3")
    assert "jonasrauber/analysis-by-synthesis" in base.BASE_3.source
    assert base.BASE_1.paper.endswith("CNN 99.1 % (ABS paper)")
    assert f"{base.NN.l2_median:.2f}" in claims.criterion(base.base_3)
    assert f"{100 * base.NN.l2_acc:.0f} %" in claims.criterion(base.base_3)


def test_scorecard_rows_on_empty_results_are_all_not_run():
    rows = claims.scorecard(base.RULES, {"profile": QUICK})
    assert [r["verdict"] for r in rows] == ["not run"] * 4
    assert all(r["criterion"] and r["source"] for r in rows)


# --- BASE-1: clean accuracy ----------------------------------------------------------------------


def clean(relu=0.98, sigmoid=0.975, lenet=0.99, nn=0.95) -> dict:
    return {"clean": {"relu_mlp": relu, "sigmoid_mlp": sigmoid, "lenet": lenet, "nearest_neighbour": nn}}


def test_base_1_every_verdict():
    assert verdict(base.base_1, clean()) == "reproduced"
    assert verdict(base.base_1, clean(sigmoid=0.9697)) == "partly"  # only the sigmoid MLP misses
    assert verdict(base.base_1, clean(relu=0.96)) == "not reproduced"
    assert verdict(base.base_1, clean(lenet=0.96)) == "not reproduced"
    assert verdict(base.base_1, {}) == "not run"


def test_base_1_bar_depends_on_the_profile_and_ignores_nearest_neighbour():
    assert verdict(base.base_1, clean(nn=0.5)) == "reproduced"
    assert verdict(base.base_1, clean(), PROFILES["paper"]) == "partly"  # sigmoid 97.5 % < 98 %
    assert verdict(base.base_1, clean(relu=0.5, sigmoid=0.5, lenet=0.5), PROFILES["smoke"]) == "reproduced"
    ours = base.base_1({**clean(sigmoid=0.9697), "profile": QUICK}).ours
    assert "sigmoid-mlp 96.97 %" in ours and ours.endswith("(bar at quick: 97.0 %)")
    assert "nearest-neighbour 95.00 %" in ours


def test_base_1_criterion_states_the_bars():
    text = claims.criterion(base.base_1)
    for name in ("quick", "paper"):
        assert f"{100 * base.CLEAN_BAR[name]:.0f} % at {name}" in text


# --- the yardstick, hand-built --------------------------------------------------------------------

SMOKE_CONFIG = protocol.ProtocolConfig.for_profile("smoke")


def fake_result(name: str, linf: dict[str, tuple] | None = None, l2: dict[str, tuple] | None = None) -> ProtocolResult:
    """A ProtocolResult whose attacks found these per-image distances ({attack: distances}; the
    families are the suite's: apgd-* gradient, noise, hsja decision). The trivial bound is 9; a
    norm not given gets harmless distances (0.1 in L∞; APGD 1.0 and noise 3.0 in L2)."""
    n = len(next(iter((linf or l2 or {"": (0, 0)}).values())))
    linf = linf or {"apgd-ce": (0.1,) * n}
    per_norm = {"linf": linf, "l2": l2 or {"apgd-ce": (1.0,) * n, "noise": (3.0,) * n}}
    families = {"apgd-ce": "gradient", "apgd-dlr": "gradient", "noise": "noise", "hsja": "decision"}
    found, trivial, combined = {}, {}, {}
    for norm, table in per_norm.items():
        found[norm] = {a: dist(*d, norm=norm) for a, d in table.items()}
        trivial[norm] = dist(*[9.0] * n, norm=norm)
        combined[norm] = attacks.compound(*found[norm].values(), trivial[norm], name="combined")
    return ProtocolResult(
        name,
        SMOKE_CONFIG,
        torch.zeros(n, dtype=torch.long),
        torch.ones(n, dtype=torch.bool),
        found,
        trivial,
        combined,
        {a: families[a] for t in per_norm.values() for a in t},
        {"linf": {}, "l2": {}},
        {"linf": {}, "l2": {}},
    )


def yardstick(**per_model: ProtocolResult) -> dict:
    """Every zoo model at a harmless default, some replaced."""
    return {"yardstick": {n: per_model.get(n.replace("-", "_"), fake_result(n)) for n in base.ZOO}}


# --- BASE-2: all attacks at L∞ 0.3 ---------------------------------------------------------------


def linf_at(*d: float) -> ProtocolResult:
    return fake_result("m", linf={"apgd-ce": d})


def test_base_2_every_verdict():
    assert verdict(base.base_2, yardstick()) == "reproduced"
    # one image in 20 left at 0.3 is still at most 5 %; one in 10 is not
    at_bar = {m: linf_at(*[0.1] * 19, 0.4) for m in experiments.NETWORKS}
    assert verdict(base.base_2, yardstick(**at_bar)) == "reproduced"
    over = {m: linf_at(*[0.1] * 9, 0.4) for m in experiments.NETWORKS}
    assert verdict(base.base_2, yardstick(**over)) == "not reproduced"
    assert verdict(base.base_2, {}) == "not run"
    assert verdict(base.base_2, {"linf": linf_results()}) == "not run"  # the chapter's PGD alone: no verdict


def test_base_2_judges_each_network_not_nearest_neighbour_and_shows_the_chapters_pgd_and_flags():
    assert verdict(base.base_2, yardstick(lenet=linf_at(0.1, 0.4))) == "not reproduced"
    assert verdict(base.base_2, yardstick(nearest_neighbour=linf_at(0.4, 0.4))) == "reproduced"
    # judged on the yardstick, whatever the chapter's PGD says
    res = {**yardstick(), "linf": linf_results(pgd=0.1, sigmoid_mlp=0.4)}
    found = base.base_2({**res, "profile": QUICK})
    assert found.verdict == "reproduced"
    assert found.ours.startswith("all attacks (2 images): relu-mlp 0.0 %, sigmoid-mlp 0.0 %, lenet 0.0 %")
    assert "the chapter's PGD: relu-mlp 0.0 %, sigmoid-mlp 100.0 %, lenet 0.0 %" in found.ours
    assert found.ours.endswith("no flags")
    # an attack failure (nothing found at 0.4) shows in the row
    flagged = base.base_2({**yardstick(lenet=linf_at(0.1, math.inf)), "profile": QUICK})
    assert flagged.verdict == "not reproduced" and "lenet linf: attack failure" in flagged.ours


# --- BASE-3: nearest neighbour in L2 -------------------------------------------------------------


def nn_l2(*d: float) -> dict:
    return yardstick(nearest_neighbour=fake_result("nearest-neighbour", l2={"apgd-ce": d, "noise": d}))


def test_base_3_every_verdict():
    # median 1.54, 3 of 5 above 1.5 (60 %, within 10 points of 53 %)
    assert verdict(base.base_3, nn_l2(0.5, 1.0, 1.54, 2.0, 3.0)) == "reproduced"
    # median within 20 % but accuracy 80 %: only the median holds
    assert verdict(base.base_3, nn_l2(0.5, 1.6, 1.6, 2.0, 3.0)) == "partly"
    # median 2.00 (within 40 %, not 20 %), 62.5 % at 1.5
    assert verdict(base.base_3, nn_l2(0.5, 1.0, 1.2, 2.0, 2.0, 2.5, 3.0, 4.0)) == "partly"
    assert verdict(base.base_3, nn_l2(0.5, 1.0, 2.2, 3.0, 3.0)) == "not reproduced"  # median 2.2 > 1.4 x 1.54
    assert verdict(base.base_3, nn_l2(*[math.inf] * 5)) == "not reproduced"  # the trivial bound: 9
    assert verdict(base.base_3, {}) == "not run"


def test_base_3_is_judged_on_the_combined_result_with_the_chapters_attacks_beside_it():
    weak = fake_result("nearest-neighbour", l2={"apgd-ce": (9.0,) * 5, "noise": (0.5, 1.0, 1.54, 2.0, 3.0)})
    assert verdict(base.base_3, yardstick(nearest_neighbour=weak)) == "reproduced"
    chapter = {"nearest_neighbour": {"L2 PGD": dist(2.0, 2.0, 2.0, 2.0, 2.0, norm="l2")}}
    found = base.base_3({**nn_l2(0.5, 1.0, 1.54, 2.0, 3.0), "l2": chapter, "profile": QUICK})
    assert found.ours.startswith("all attacks (5 images, 10000 training images searched): median 1.54, 60.0 % at")
    assert "the chapter's L2 attacks: median 2.00, 100.0 %" in found.ours and found.ours.endswith("no flags")
    paper = base.base_3({**nn_l2(0.5, 1.0, 1.54, 2.0, 3.0), "profile": PROFILES["paper"]}).ours
    assert "60000 training images searched" in paper


# --- BASE-4: gradient and decision-based attacks beat noise --------------------------------------


def families(
    grad_linf=(0.1, 0.1), noise_linf=(math.inf, math.inf), grad_l2=(1.0, 1.0), noise_l2=(3.0, 3.0), hsja=(1.2, 1.2)
) -> ProtocolResult:
    return fake_result(
        "m", linf={"apgd-ce": grad_linf, "noise": noise_linf}, l2={"apgd-ce": grad_l2, "noise": noise_l2, "hsja": hsja}
    )


def test_base_4_every_verdict():
    good = {m: families() for m in experiments.MODELS}
    assert verdict(base.base_4, yardstick(**good)) == "reproduced"
    # noise fools an image at L∞ 0.05 that the gradient attacks need 0.1 for: a broken gradient
    bad = {**good, "nearest_neighbour": families(noise_linf=(0.05, math.inf))}
    assert verdict(base.base_4, yardstick(**bad)) == "not reproduced"
    bad_l2 = {**good, "lenet": families(noise_l2=(0.5, 3.0))}
    assert verdict(base.base_4, yardstick(**bad_l2)) == "not reproduced"
    # HopSkipJump no better than noise on one model: the gradient part holds, the decision part not
    weak = {**good, "relu_mlp": families(hsja=(2.9, 2.9))}
    assert verdict(base.base_4, yardstick(**weak)) == "partly"
    assert verdict(base.base_4, {}) == "not run"


def test_base_4_allows_one_percent_and_says_what_it_saw():
    # 1 image of 100 fooled by noise alone: within the 1 % tolerance; 2 are not
    grad, n1, n2 = (0.1,) * 100, (0.05,) + (math.inf,) * 99, (0.05, 0.05) + (math.inf,) * 98
    l2 = {"grad_l2": (1.0,) * 100, "noise_l2": (3.0,) * 100, "hsja": (1.2,) * 100}
    one = {m: families(grad_linf=grad, noise_linf=n1, **l2) for m in experiments.MODELS}
    assert verdict(base.base_4, yardstick(**one)) == "reproduced"
    two = {**one, "lenet": families(grad_linf=grad, noise_linf=n2, **l2)}
    assert verdict(base.base_4, yardstick(**two)) == "not reproduced"
    ours = base.base_4({**yardstick(**two), "profile": QUICK}).ours
    assert ours.startswith("noise beyond the gradient attacks: at most relu-mlp 1.0 %, sigmoid-mlp 1.0 %, lenet 2.0 %")
    assert "HopSkipJump/noise L2 median: relu-mlp 0.40" in ours


def test_decision_ratio_edge_cases():
    assert base.decision_ratio(families(hsja=(1.5, 1.5), noise_l2=(3.0, 3.0))) == pytest.approx(0.5)
    assert base.decision_ratio(families(hsja=(1.0, 1.0), noise_l2=(math.inf, math.inf))) == 0.0
    assert base.decision_ratio(families(hsja=(math.inf,) * 2, noise_l2=(math.inf,) * 2)) == 1.0


# --- steps and keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PROFILES))
def test_steps_form_a_valid_schedule(name):
    steps = experiments.steps(PROFILES[name])
    experiment.check_steps(steps)
    assert [s.name for s in steps] == [*experiments.NETWORKS, "clean", "linf", "l2", "yardstick"]


def test_attack_suites_and_artifact_names():
    assert [a.artifact for a in experiments.linf_attacks(QUICK)] == ["fgsm", "ifgsm", "pgd", "uniform_noise"]
    # the decision-based evidence is the yardstick's HopSkipJump, no longer foolbox's Boundary
    for prof in PROFILES.values():
        assert [a.artifact for a in experiments.l2_attacks(prof)] == ["l2_pgd", "gaussian_noise"]


def test_headline_names_a_rule():
    assert base.HEADLINE in [r.claim.id for r in base.RULES]


def test_model_key_hashes_like_the_recipe_dict():
    key = ModelKey.of("lenet", 3, 60000)
    assert store.config_hash({"config": key, "seed": 0}) == store.config_hash(
        {"config": {**recipe("lenet", 3), "n_train": 60000}, "seed": 0}
    )


def test_the_committed_quick_results_are_found_under_the_keys():
    """Every network, attack, clean and yardstick result of the quick chapter is committed under
    its current key."""
    exp = experiment.start("baselines", "quick", 0, "cpu")
    x, _ = experiments.attacked_images(exp.profile)

    def stem(name, key):
        return store.artifact_stem(name, key, notebook="baselines", profile="quick", seed=0)

    stems = [
        stem("clean", experiments.CleanKey(tuple(experiments.model_key(exp, m) for m in experiments.MODELS), 10000))
    ]
    for name in experiments.MODELS:
        if name in experiments.NETWORKS:
            stems.append(stem(name, experiments.model_key(exp, name)))
        for spec in experiments.linf_attacks(exp.profile) + experiments.l2_attacks(exp.profile):
            key = experiments.AttackKey(experiments.model_key(exp, name), spec.name, spec.options, spec.grid, len(x))
            stems.append(stem(f"{name}-{spec.artifact}", key))
    missing = [s.name for s in stems if not s.with_name(f"{s.name}.json").exists()]
    assert len(stems) == 28 and not missing, missing
    exp = experiment.start("baselines", "quick", 0, "cpu", load_only=True)
    assert set(experiments.yardstick(exp)) == set(base.ZOO)  # loads, or raises MissingResult
