"""ABS's verdict rules, branch by branch, on hand-built results shaped like the stored ones (every
verdict each rule can return), the claims' texts and sources, and the committed quick scorecard
(the rules applied to the committed results give the committed rows)."""

from __future__ import annotations

import inspect
import json
import math

import pytest
import torch

from robustlib import claims as core
from robustlib import experiment, papers, store
from robustlib.attacks import DistanceResult
from robustlib.papers.abs import claims
from robustlib.papers.abs import experiments as E
from robustlib.papers.abs.profile import PROFILES

N = 101  # images per fake result (odd: the median is one image's distance)


# --- fake results shaped like the stored ones --------------------------------------------------


def curve(label: str, norm: str, median: float, acc: float) -> DistanceResult:
    """N per-image distances with exactly this median and this accuracy at the norm's threshold.
    The images below the threshold come first, so for curves of one norm whose medians and
    accuracies are ordered, the per-image minimum over them is the curve with the lowest ones."""
    thr = claims.THRESHOLDS[norm]
    above = round(acc * N)
    if median > thr:
        d = [thr / 2] * (N - above) + [median] * above
    else:
        d = [median] * (N - above) + [2 * thr] * above
    return DistanceResult(label, norm, torch.tensor(d, dtype=torch.float64), torch.zeros(8, 1, 28, 28))


def never(label: str, norm: str) -> DistanceResult:
    """An attack that found nothing."""
    return DistanceResult(label, norm, torch.full((N,), math.inf, dtype=torch.float64), torch.zeros(8, 1, 28, 28))


def per_attack(overrides: dict | None = None) -> dict[str, dict[str, DistanceResult]]:
    """Every model's attacks with the paper's all-attack numbers (ABS: the paper's per-attack rows
    and Latent Descent at the all-L2 numbers); ``overrides[model][label] = (median, acc)``, or
    ``None`` (the attack found nothing), or ``"drop"`` (it did not run)."""
    out = {}
    for name in E.MODELS:
        paper = claims.PAPER[name]
        per = {
            "PGD (L2)": ("l2", *paper["l2"]),
            "Gaussian noise": ("l2", 12.0, 1.0),
            "FGSM": ("linf", 0.45, 1.0),
            "PGD (L∞)": ("linf", *paper["linf"]),
            "Pointwise": ("l0", *paper["l0"]),
        }
        if name == "ABS":
            per |= {k: ("l2", *v) for k, v in claims.PAPER_ABS_L2_ATTACKS.items()}
            per["Latent Descent"] = ("l2", *paper["l2"])
        out[name] = {}
        for label, (norm, median, acc) in per.items():
            value = (overrides or {}).get(name, {}).get(label, (median, acc))
            if value is None:
                out[name][label] = never(label, norm)
            elif value != "drop":
                out[name][label] = curve(label, norm, *value)
    return out


def attacks_result(overrides: dict | None = None) -> dict:
    pa = per_attack(overrides)
    return {"per_attack": pa, "all": E.combined(pa)}


def clean_result(acc: dict | None = None, confidence: float = 0.9) -> dict:
    accuracy = {**claims.PAPER_CLEAN, **(acc or {})}
    return {
        "accuracy": accuracy,
        "n": {k: 10_000 for k in accuracy},
        "abs_confidence": torch.full((100,), confidence),
        "abs_correct": torch.ones(100, dtype=torch.bool),
    }


def distal_result(abs_success: float = 0.0, cnn_success: float = 1.0, abs_noise: float = 0.1) -> dict:
    def model(success, noise):
        k = round(success * 10)
        return {
            "noise_confidence": torch.full((10,), noise),
            "success": torch.tensor([True] * k + [False] * (10 - k)),
            "p_target": torch.full((10,), 0.5),
            "images": torch.zeros(10, 1, 28, 28),
        }

    return {"target": torch.arange(10) % 10, "noise": torch.rand(10, 1, 28, 28),
            "CNN": model(cnn_success, 0.99), "ABS": model(abs_success, abs_noise)}  # fmt: skip


def results(profile: str = "paper", **parts) -> dict:
    """A full results dict (the paper's numbers everywhere unless replaced by ``parts``)."""
    out = {
        "clean": clean_result(),
        "lower_bound": {"epsilon": torch.full((N,), 0.2)},
        "distal": distal_result(),
        "attacks": attacks_result(),
        "profile": PROFILES[profile],
    }
    out.update(parts)
    return {k: v for k, v in out.items() if v is not None}


def verdict(rule, res) -> str:
    return rule(res).verdict


# --- the claims and the rules' form ------------------------------------------------------------


def test_every_claim_has_a_unique_id_a_source_and_a_rule_with_a_criterion():
    ids = [r.claim.id for r in claims.RULES]
    assert ids == [f"ABS-{i}" for i in range(1, 11)]
    for rule in claims.RULES:
        assert rule.claim.source and rule.claim.paper and rule.claim.claim
        assert len(core.criterion(rule)) > 80, rule.__name__  # a criterion a reader can apply
        assert "spec" not in core.criterion(rule).lower() and "§" not in rule.claim.paper
    assert len({inspect.getdoc(r) for r in claims.RULES}) == len(claims.RULES)


def test_released_curve_numbers_are_cited_from_the_authors_repository():
    for rule in (claims.abs_2, claims.abs_4, claims.abs_5, claims.abs_6):
        assert "jonasrauber/analysis-by-synthesis" in rule.claim.source
        assert "accuracy_distortion_curves.pickle" in rule.claim.source
    assert claims.PAPER["ABS"]["l2"] == (2.24, 0.80) and claims.PAPER["Binary ABS"]["linf"] == (0.44, 0.77)
    # ABS-6 quotes the baseline medians from the one table of paper numbers (not typed twice)
    assert claims.ABS_6.paper.startswith("CNN 1.09 / 0.075 / 8.7; binary CNN 0.86 / 0.34 / 10.7")


def test_the_paper_numbers_pass_every_paper_rule():
    rows = core.scorecard(claims.RULES, results("paper"))
    assert {r["id"]: r["verdict"] for r in rows} == {f"ABS-{i}": "reproduced" for i in range(1, 11)}


@pytest.mark.parametrize("rule", claims.RULES, ids=lambda r: r.claim.id)
def test_a_rule_whose_inputs_did_not_run_says_not_run(rule):
    bare = {"profile": PROFILES["paper"]}
    found = rule(bare)
    assert found.verdict == "not run" and "not computed" in found.ours


# --- ABS-1 -------------------------------------------------------------------------------------


def test_abs_1_clean_accuracy():
    assert verdict(claims.abs_1, results("paper")) == "reproduced"
    assert verdict(claims.abs_1, results("paper", clean=clean_result({"Binary ABS": 0.98}))) == "partly"
    assert verdict(claims.abs_1, results("paper", clean=clean_result({"ABS": 0.95, "Binary ABS": 0.98}))) == (
        "not reproduced"
    )
    for profile in ("quick", "smoke"):
        assert verdict(claims.abs_1, results(profile, clean=clean_result({"ABS": 0.90}))) == "reproduced"
        found = claims.abs_1(results(profile, clean=clean_result({"ABS": 0.89})))
        assert found.verdict == "not reproduced" and "bar at this reduced scale" in found.ours


# --- ABS-2 -------------------------------------------------------------------------------------


def test_abs_2_most_l2_robust_at_paper():
    assert verdict(claims.abs_2, results("paper")) == "reproduced"
    # right median and accuracy but another model more robust: partly
    beaten = attacks_result({"Binary CNN": {"PGD (L2)": (3.0, 0.9)}})
    found = claims.abs_2(results("paper", attacks=beaten))
    assert found.verdict == "partly" and "more robust than ABS here: Binary CNN" in found.ours
    # ABS far from the paper and beaten: not reproduced
    weak = {"Latent Descent": (0.5, 0.0), "PGD (L2)": (0.6, 0.0), "Boundary": (0.6, 0.0)}
    assert verdict(claims.abs_2, results("paper", attacks=attacks_result({"ABS": weak}))) == "not reproduced"


def test_abs_2_most_l2_robust_at_quick():
    # the paper's numbers: ABS 2.24 >= 1.3 x CNN 1.09 and the largest median: reproduced
    assert verdict(claims.abs_2, results("quick")) == "reproduced"
    beaten = attacks_result({"Madry et al. (ours)": {"PGD (L2)": (2.99, 0.9)}})
    assert verdict(claims.abs_2, results("quick", attacks=beaten)) == "partly"
    # ABS below 1.3 x the CNN's L2-PGD median: not reproduced, whoever else is larger
    close = attacks_result({"CNN": {"PGD (L2)": (1.8, 0.6)}})
    assert verdict(claims.abs_2, results("quick", attacks=close)) == "not reproduced"


# --- ABS-3 -------------------------------------------------------------------------------------


def test_abs_3_per_attack_l2_on_abs():
    assert verdict(claims.abs_3, results("paper")) == "reproduced"
    off = attacks_result({"ABS": {"Boundary": (5.0, 0.95)}})
    assert verdict(claims.abs_3, results("paper", attacks=off)) == "partly"
    none = {"PGD (L2)": (9.0, 1.0), "Boundary": (9.0, 1.0), "Transfer (L2)": (20.0, 1.0), "Gaussian noise": (30.0, 1.0)}
    assert verdict(claims.abs_3, results("paper", attacks=attacks_result({"ABS": none}))) == "not reproduced"
    # quick: the Gaussian-noise median must exceed Latent Descent's
    assert verdict(claims.abs_3, results("quick")) == "reproduced"
    noisy = attacks_result({"ABS": {"Gaussian noise": (2.0, 0.6)}})
    assert verdict(claims.abs_3, results("quick", attacks=noisy)) == "not reproduced"


# --- ABS-4 -------------------------------------------------------------------------------------


def test_abs_4_linf_at_paper():
    assert verdict(claims.abs_4, results("paper")) == "reproduced"
    half = attacks_result({"Binary ABS": {"PGD (L∞)": (0.2, 0.1)}})  # the ABS checks hold, binary's not
    assert verdict(claims.abs_4, results("paper", attacks=half)) == "partly"
    off = attacks_result({"ABS": {"PGD (L∞)": (0.05, 0.5)}, "Binary ABS": {"PGD (L∞)": (0.1, 0.3)}})
    assert verdict(claims.abs_4, results("paper", attacks=off)) == "not reproduced"


def test_abs_4_linf_at_quick_judges_all_attacks_and_says_when_gradients_fail():
    found = claims.abs_4(results("quick"))
    assert found.verdict == "reproduced" and "PGD at 0.3: ABS 8 %, binary ABS 77 %" in found.ours
    same = attacks_result({"Binary ABS": {"PGD (L∞)": (0.23, 0.08)}})
    assert verdict(claims.abs_4, results("quick", attacks=same)) == "not reproduced"
    # FGSM and PGD find nothing on binary ABS; a transfer attack gives its numbers
    blocked = attacks_result({"Binary ABS": {"FGSM": None, "PGD (L∞)": None}})
    blocked["per_attack"]["Binary ABS"]["Transfer (L∞)"] = curve("Transfer (L∞)", "linf", 0.6, 0.7)
    blocked["all"] = E.combined(blocked["per_attack"])
    found = claims.abs_4(results("quick", attacks=blocked))
    assert found.verdict == "reproduced" and "the binarisation blocks the gradient" in found.ours
    assert "binarisation blocks" not in claims.abs_4(results("quick")).ours


# --- ABS-5 -------------------------------------------------------------------------------------


def test_abs_5_l0_only_at_paper_with_l0_attacks_on_abs():
    assert verdict(claims.abs_5, results("paper")) == "reproduced"
    half = attacks_result({"Binary ABS": {"Pointwise": (8.0, 0.2)}})
    assert verdict(claims.abs_5, results("paper", attacks=half)) == "partly"
    off = attacks_result({"ABS": {"Pointwise": (4.0, 0.0)}, "Binary ABS": {"Pointwise": (4.0, 0.0)}})
    assert verdict(claims.abs_5, results("paper", attacks=off)) == "not reproduced"
    # no L0 attack on binary ABS (the paper profile's plan): not run, the CNN's numbers shown
    no_l0 = attacks_result({"Binary ABS": {"Pointwise": "drop"}})
    found = claims.abs_5(results("paper", attacks=no_l0))
    assert found.verdict == "not run" and found.ours == "L0 attacks on ABS not run at this profile (CNN 8.7 / 19 %)"
    assert verdict(claims.abs_5, results("quick")) == "not run"  # quick never judges L0 on ABS
    no_cnn_l0 = attacks_result({name: {"Pointwise": "drop"} for name in E.MODELS})
    assert claims.abs_5(results("quick", attacks=no_cnn_l0)).ours == "L0 attacks on ABS not run at this profile"


# --- ABS-6 -------------------------------------------------------------------------------------


def test_abs_6_baselines():
    assert verdict(claims.abs_6, results("paper")) == "reproduced"
    one_off = attacks_result({"Nearest neighbour": {"PGD (L∞)": (0.4, 0.8)}})
    assert verdict(claims.abs_6, results("paper", attacks=one_off)) == "partly"
    off = {
        name: {"PGD (L2)": (9.0, 1.0), "PGD (L∞)": (0.49, 1.0), "Pointwise": (40.0, 1.0)} for name in claims.BASELINES
    }
    off = attacks_result({name: {**o, "Gaussian noise": (20.0, 1.0)} for name, o in off.items()})
    assert verdict(claims.abs_6, results("paper", attacks=off)) == "not reproduced"
    # quick: the CNN's L2-PGD median at most 1.6
    assert verdict(claims.abs_6, results("quick")) == "reproduced"
    robust_cnn = attacks_result({"CNN": {"PGD (L2)": (1.7, 0.6)}})
    assert verdict(claims.abs_6, results("quick", attacks=robust_cnn)) == "not reproduced"


# --- ABS-7 -------------------------------------------------------------------------------------


def test_abs_7_distal_adversarials():
    assert verdict(claims.abs_7, results("paper")) == "reproduced"
    assert verdict(claims.abs_7, results("paper", distal=distal_result(abs_success=0.3))) == "partly"
    assert verdict(claims.abs_7, results("paper", distal=distal_result(abs_success=0.0, cnn_success=0.4))) == "partly"
    assert verdict(claims.abs_7, results("paper", distal=distal_result(abs_success=0.5, cnn_success=0.5))) == (
        "not reproduced"
    )
    # quick: ABS's median confidence on the noise at most 0.5, whatever the distal attack did
    found = claims.abs_7(results("quick", distal=distal_result(abs_success=0.3)))
    assert found.verdict == "reproduced" and "distal success ABS 30 %, CNN 100 % (10 starts, 20 steps)" in found.ours
    assert verdict(claims.abs_7, results("quick", distal=distal_result(abs_noise=0.6))) == "not reproduced"


# --- ABS-8 -------------------------------------------------------------------------------------


def test_abs_8_confidence_on_clean_data():
    assert verdict(claims.abs_8, results("paper", clean=clean_result(confidence=0.86))) == "reproduced"
    assert verdict(claims.abs_8, results("paper", clean=clean_result(confidence=0.8))) == "not reproduced"
    found = claims.abs_8(results("quick", clean=clean_result(confidence=0.9)))
    assert found.verdict == "not run" and "not judged here" in found.ours


# --- ABS-9 -------------------------------------------------------------------------------------


def test_abs_9_lower_bound():
    assert verdict(claims.abs_9, results("paper")) == "reproduced"
    # a bound above an adversarial that was found cannot be a bound
    above = {"epsilon": torch.full((N,), 1.0)}
    found = claims.abs_9(results("paper", lower_bound=above))
    assert found.verdict == "not reproduced" and "attacked images: False" in found.ours
    # consistent, but positive for at most half of the images
    mostly_negative = {"epsilon": torch.tensor([0.2] * 50 + [-0.1] * 51)}
    assert verdict(claims.abs_9, results("paper", lower_bound=mostly_negative)) == "not reproduced"
    # quick: shown, not judged
    assert verdict(claims.abs_9, results("quick")) == "not run"
    assert verdict(claims.abs_9, results("paper", attacks=None)) == "not run"


# --- ABS-10 ------------------------------------------------------------------------------------


def test_abs_10_baseline_clean_accuracy():
    assert verdict(claims.abs_10, results("paper")) == "reproduced"
    assert verdict(claims.abs_10, results("paper", clean=clean_result({"Nearest neighbour": 0.95}))) == "partly"
    low = clean_result({k: 0.9 for k in claims.BASELINES})
    assert verdict(claims.abs_10, results("paper", clean=low)) == "not reproduced"
    assert verdict(claims.abs_10, results("quick", clean=clean_result({"CNN": 0.97}))) == "reproduced"
    assert verdict(claims.abs_10, results("quick", clean=clean_result({"CNN": 0.969}))) == "not reproduced"


def test_within_never_accepts_a_missing_number():
    assert claims._within(2.5, 2.24, rel=0.2) and not claims._within(2.8, 2.24, rel=0.2)
    assert not claims._within(math.inf, 2.24, rel=0.2) and not claims._within(math.nan, 0.3, abs_=0.1)


# --- the committed quick scorecard -------------------------------------------------------------


def test_the_rules_give_the_committed_quick_scorecard():
    """The quick results load from the committed artifacts (their keys are tested in test_abs.py)
    and the rules give the committed rows."""
    exp = experiment.start("abs", "quick", device="cpu")
    if not (store.artifact_dir("abs", "quick") / "vaes-4b868de511db.json").exists():
        pytest.skip("the committed quick artifacts are not here")
    by_name = {s.name: s for s in E.steps(exp.profile)}
    res = {name: by_name[name].run(exp) for name in ("clean", "lower_bound", "distal", "attacks")}
    rows = papers.scorecard(exp, res)
    committed = json.loads(store.scorecard_path("abs", "quick").read_text())["targets"]
    fields = ("id", "claim", "paper", "ours", "verdict")
    assert [{k: r[k] for k in fields} for r in rows] == [{k: r[k] for k in fields} for r in committed]
