"""BANG's verdict rules, branch by branch, on hand-built results shaped like the stored ones; the
claims' sources and texts; the step list and its keys (the committed quick results must be found)."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from robustlib import claims as core
from robustlib import experiment, store
from robustlib.attacks import DistanceResult
from robustlib.papers.bang import claims
from robustlib.papers.bang import experiments as bx
from robustlib.papers.bang.model import LENET_SOLVER, scaled_solver
from robustlib.papers.bang.profile import PROFILES
from robustlib.papers.baselines import experiments as base
from robustlib.protocol import ProtocolConfig, ProtocolResult

# --- fake results shaped like the stored ones --------------------------------------------------------


def _summary(rate, failures=0, blank_failures=0, pass_mean=0.5, linf_mean=100.0, attacked=100):
    return {
        "rate": rate,
        "failures": failures,
        "blank_failures": blank_failures,
        "pass_mean": pass_mean,
        "linf_mean": linf_mean,
        "blank": blank_failures,
        "attacked": attacked,
        "successes": round(rate * attacked),
    }


def _per_image(n, pass_mean, linf_mean, pass_sd=0.15, linf_sd=45.0):
    """A stored HC1 result of n successes whose per-image values have exactly these means / SDs."""
    z = torch.linspace(-1, 1, n, dtype=torch.float64)
    z = (z - z.mean()) / z.std()
    return {
        "success": torch.ones(n, dtype=torch.uint8),
        "linf": (linf_mean + linf_sd * z).float(),
        "pass_score": (pass_mean + pass_sd * z).float(),
    }


def _t1(r0_acc=0.9916, b1_acc=0.9922, noise=(0.2, 0.03)):
    return {
        "test_acc": {"R0": r0_acc, "B1": b1_acc},
        "noise": {
            "R0": torch.tensor([[0.5, noise[0]]]),
            "B1": torch.tensor([[0.5, noise[1]]]),
            "sigmas": [50, 100],
            "iterations": [10],
            "images": 10,
        },
    }


def _att(
    b1_fgs=0.0168,
    blank_failures=97,
    margin=60,
    r0_fgs=0.9033,
    n=100,
    hc1_r0=(0.75, 122.6),
    hc1_b1=(0.488, 201.84),
    hc1_rates=(0.9953, 0.9419),
    float64=0,
):
    return {
        "R0": {
            "fgs_summary": _summary(r0_fgs, attacked=n),
            "hc1_summary": _summary(hc1_rates[0], pass_mean=hc1_r0[0], linf_mean=hc1_r0[1]),
            "hc1": _per_image(99, *hc1_r0),
            "masking": {"blank_failures": 0, "fgs-margin_successes": 0, "fgs-float64_successes": 0},
        },
        "B1": {
            "fgs_summary": _summary(b1_fgs, failures=98, blank_failures=blank_failures, attacked=n),
            "hc1_summary": _summary(hc1_rates[1], pass_mean=hc1_b1[0], linf_mean=hc1_b1[1]),
            "hc1": _per_image(94, *hc1_b1),
            "masking": {
                "blank_failures": blank_failures,
                "fgs-margin_successes": margin,
                "fgs-float64_successes": float64,
            },
        },
    }


def _grid(*rates_by_eps, epsilons=None):
    """A grid result with one beta row per entry list: ``fgs_rate`` (betas, eps)."""
    rates = torch.tensor(rates_by_eps, dtype=torch.float64)
    eps = epsilons or [0.78 + 0.03 * i for i in range(rates.shape[1])]
    return {"epsilons": eps, "fgs_rate": rates}


def _cifar(a0, ab, f0, fb, noise=None):
    res = {"rows": {"R0": {"acc": a0, "fgs_summary": {"rate": f0}}, "B0": {"acc": ab, "fgs_summary": {"rate": fb}}}}
    if noise is not None:
        res["noise"] = {
            "R0": torch.tensor([[0.5, noise[0]]]),
            "B0": torch.tensor([[0.5, noise[1]]]),
            "sigmas": [20, 40],
        }
    return res


def _linf(n, above_01, above_03, above_04=0.0, wrong=0):
    """Per-image L-inf distances of n images: the given fractions above 0.1, 0.3 and 0.4 (0.45,
    0.35, 0.2), ``wrong`` misclassified clean (0), the rest fooled at 0.05."""
    k01, k03, k04 = (round(f * n) for f in (above_01, above_03, above_04))
    d = torch.full((n,), 0.05, dtype=torch.float64)
    d[:k01], d[:k03], d[:k04] = 0.2, 0.35, 0.45
    if wrong:
        d[-wrong:] = 0.0
    return d


def _protocol(name, linf, fgs=None, l2=None):
    """A ProtocolResult whose combined L-inf distances are ``linf`` (the paper's FGS: ``fgs``, inf =
    failure; default: it finds the same), L2 distances ``l2`` (default: 5 x L-inf)."""
    n = len(linf)
    fgs = linf.clone() if fgs is None else torch.as_tensor(fgs, dtype=torch.float64)
    l2 = 5 * linf if l2 is None else torch.as_tensor(l2, dtype=torch.float64)
    clean = linf > 0
    bound = torch.where(clean, math.inf, 0.0).to(torch.float64)
    runs = {"linf": {"apgd-ce": linf, "bang-fgs": fgs}, "l2": {"apgd-ce": l2}}
    combined = {"linf": torch.minimum(linf, fgs), "l2": l2}
    return ProtocolResult(
        name,
        ProtocolConfig.for_profile("quick", n_images=n),
        torch.zeros(n, dtype=torch.long),
        clean,
        {m: {a: DistanceResult(a, m, d) for a, d in r.items()} for m, r in runs.items()},
        {m: DistanceResult("trivial", m, bound) for m in runs},
        {m: DistanceResult("combined", m, d) for m, d in combined.items()},
        {"apgd-ce": "gradient", "bang-fgs": "gradient"},
        {m: {} for m in runs},
        {m: {} for m in runs},
    )


def _yard(r0=(0.02, 0.0), b1=(0.9, 0.6), n=200, r0_fgs=None, b1_fgs=None, b1_l2=None, b1_above_04=0.03):
    """R0's and B1's yardstick results from their accuracies at L-inf 0.1 and 0.3 (the paper's
    claim by default: B1 keeps 60 % at 0.3 where R0 keeps nothing, and the paper's FGS fails on
    97 % of B1's images, at 0.05 on the others)."""
    d0, d1 = _linf(n, *r0), _linf(n, *b1, b1_above_04)
    if b1_fgs is None:
        fails = round(0.97 * n)
        b1_fgs = [math.inf] * fails + [0.05] * (n - fails)
    return {
        "bang-r0": _protocol("bang-r0", d0, r0_fgs),
        "bang-b1": _protocol("bang-b1", d1, b1_fgs, b1_l2),
    }


def results(profile="quick", t1=None, att=None, grid=None, beyond=None, cifar=None, yard=None, **skip):
    """A results dict as ``papers.compute`` gives it (the paper's own numbers unless replaced)."""
    out = {
        "table1_models": _t1() if t1 is None else t1,
        "table1_attacks": _att() if att is None else att,
        "grid": grid,
        "beyond": beyond,
        "yardstick": _yard() if yard is None else yard,
        "cifar": cifar,
        "profile": PROFILES[profile],
    }
    for name in skip.get("drop", ()):
        out[name] = None
    return out


def verdict(rule, **kw) -> str:
    return rule(results(**kw)).verdict


# --- the claims themselves ----------------------------------------------------------------------------


def test_every_rule_has_a_criterion_a_unique_id_and_a_source():
    ids = [fn.claim.id for fn in claims.RULES]
    assert ids == [f"BANG-{i}" for i in range(1, 9)]
    for fn in claims.RULES:
        assert len(core.criterion(fn)) > 80, fn.__name__  # a criterion, not a label
        assert fn.claim.source and fn.claim.claim and fn.claim.paper
        assert "spec" not in inspect.getdoc(fn).lower()


def test_the_paper_column_is_built_from_the_tables_as_the_paper_prints_them():
    paper = {fn.claim.id: fn.claim.paper for fn in claims.RULES}
    assert paper["BANG-1"] == "R0 99.16 %, B1 99.22 %"
    assert paper["BANG-2"] == (
        "FGS rate R0 90.33 % -> B1 1.68 % (88.65 points, no bound on the perturbation); almost every "
        "failure a blank gradient"
    )
    assert paper["BANG-3"] == "HC1 rate 99.53 % -> 94.19 %; PASS 0.7535 -> 0.4880; L-inf 122.60 -> 201.84 (R0 -> B1)"
    assert paper["BANG-4"] == "sigma 100, 10k iterations: R0 ~20 %, B1 3 %"
    assert paper["BANG-6"] == "R0 79.59 %, FGS 96.52 %; B0 79.26 %, FGS 34.27 %"
    assert paper["BANG-7"] == "sigma 40: R0 46.0 %, B0 39.1 %"


def test_scorecard_rows_carry_source_and_criterion():
    rows = core.scorecard(claims.RULES, results("paper", grid=_grid([0.1, 0.05, 0.02], [0.2, 0.1, 0.01])))
    # BANG-8 is partly: where B1 really is robust, most of its FGS failures are not masking
    assert [r["verdict"] for r in rows] == ["reproduced"] * 5 + ["not run"] * 2 + ["partly"]
    assert all(r["source"] and r["criterion"] for r in rows)


def test_paper_fractions_are_exact():
    assert claims._frac(99.16) == 0.9916 and claims._frac(79.26) == 0.7926


# --- BANG-1: accuracy -------------------------------------------------------------------------------


def test_bang1_every_branch():
    rule = claims.bang_1
    assert verdict(rule, drop=["table1_models"]) == "not run"
    assert rule(results(t1={"test_acc": {"R0": 0.99}})).verdict == "not run"
    assert verdict(rule, t1=_t1(0.985, 0.986)) == "reproduced"
    assert verdict(rule, t1=_t1(0.970, 0.968)) == "partly"  # B1 within a point, both below 97.5 %
    assert verdict(rule, t1=_t1(0.990, 0.978)) == "not reproduced"  # B1 1.2 points below R0
    assert verdict(rule, profile="paper") == "reproduced"
    assert verdict(rule, profile="paper", t1=_t1(0.9890, 0.9945)) == "reproduced"  # within 0.3 points
    assert verdict(rule, profile="paper", t1=_t1(0.985, 0.986)) == "partly"
    assert verdict(rule, profile="paper", t1=_t1(0.975, 0.986)) == "not reproduced"
    assert rule(results(t1=_t1(0.9866, 0.9803))).ours == "R0 98.66 %, B1 98.03 %"


# --- BANG-2: robustness, judged on the yardstick ---------------------------------------------------


def test_bang2_not_run_without_the_yardstick():
    assert verdict(claims.bang_2, drop=["yardstick"]) == "not run"
    assert verdict(claims.bang_2, yard={"bang-b1": _yard()["bang-b1"]}) == "not run"


def test_bang2_asks_for_half_the_papers_gain_under_all_attacks():
    assert claims.GAIN_FULL == pytest.approx(0.44325)
    assert verdict(claims.bang_2) == "reproduced"  # B1 +88 and +60 points over R0
    assert verdict(claims.bang_2, yard=_yard(b1=(0.5, 0.3))) == "partly"  # +48 and +30: one below 44.3
    assert verdict(claims.bang_2, yard=_yard(b1=(0.15, 0.0))) == "partly"  # +13 points at 0.1 (2.3 SE)
    assert verdict(claims.bang_2, yard=_yard(b1=(0.08, 0.0))) == "not reproduced"  # +6 points
    # the committed quick run before the yardstick: a 2.3-point FGS drop is no robustness at all
    same = _yard(r0=(0.64, 0.0), b1=(0.66, 0.0))
    assert verdict(claims.bang_2, yard=same) == "not reproduced"
    # the paper's FGS collapses (B1 fails on 95 %) but all attacks together leave nothing: masking
    n, inf = 200, math.inf
    collapse = _yard(r0=(0.02, 0.0), b1=(0.03, 0.0), b1_fgs=[inf] * 190 + [0.05] * 10)
    found = claims.bang_2(results(yard=collapse))
    assert found.verdict == "not reproduced" and "B1 5.00 % (10/200)" in found.ours and n == 200


def test_bang2_a_flag_caps_the_verdict_and_shows_in_ours():
    flagged = _yard(b1=(0.95, 0.9), b1_above_04=0.5)  # half the images survive the largest epsilon
    found = claims.bang_2(results(yard=flagged))
    assert found.verdict == "partly" and "B1 linf: attack failure" in found.ours
    ours = claims.bang_2(results()).ours
    assert "L-inf 0.1: R0 2.00 %, B1 90.00 % (+88.0 points" in ours and "no flags" in ours
    assert "Table 1's 100 images: B1 1.68 %, 97 blank gradients" in ours


def test_gain_standard_error():
    assert claims.gain_se(0.5, 0.3, 100) == pytest.approx((0.4 * 0.6 * 0.02) ** 0.5)
    assert claims.gain_se(1.0, 1.0, 10) == 0.0 and math.isnan(claims.gain_se(0.5, 0.5, 0))


# --- BANG-3: larger, less similar perturbations --------------------------------------------------------


def test_bang3_not_run_without_attacks_or_yardstick():
    assert verdict(claims.bang_3, t1={"test_acc": {"B1": 0.99}}) == "not run"
    assert verdict(claims.bang_3, drop=["table1_attacks"]) == "not run"
    assert verdict(claims.bang_3, drop=["yardstick"]) == "not run"


def test_bang3_needs_a_larger_median_under_all_attacks_and_a_pass_drop():
    # default: B1's median L-inf 0.35 vs R0's 0.05 (7x) and the paper's PASS drop 0.75 -> 0.49
    assert verdict(claims.bang_3) == "reproduced"
    no_pass_drop = _att(hc1_r0=(0.75, 120.0), hc1_b1=(0.74, 200.0))
    assert verdict(claims.bang_3, att=no_pass_drop) == "partly"
    same = _yard(r0=(0.64, 0.0), b1=(0.66, 0.0))  # both medians 0.2: 1.0x
    assert verdict(claims.bang_3, yard=same) == "partly"
    assert verdict(claims.bang_3, yard=same, att=no_pass_drop) == "not reproduced"
    assert verdict(claims.bang_3, att=_att(hc1_rates=(0.99, 0.7))) == "partly"  # HC1 itself fails often
    found = claims.bang_3(results(yard=same))
    assert "L-inf R0 0.200, B1 0.200 (1.00x, needed >= 1.25)" in found.ours and "no flags" in found.ours
    # the PASS drop is read from the per-image values, not the summary means
    fake = _att(hc1_r0=(0.75, 120.0), hc1_b1=(0.75, 120.0))
    fake["B1"]["hc1"] = _per_image(94, 0.5, 200.0)
    assert verdict(claims.bang_3, att=fake) == "reproduced"


def test_bang3_paper_asks_hc1_to_succeed_on_90_percent():
    assert verdict(claims.bang_3, profile="paper") == "reproduced"
    assert verdict(claims.bang_3, profile="paper", att=_att(hc1_rates=(0.99, 0.85))) == "partly"
    assert verdict(claims.bang_3, att=_att(hc1_rates=(0.99, 0.85))) == "reproduced"


# --- BANG-4: random noise ---------------------------------------------------------------------------


def test_bang4_every_branch():
    assert verdict(claims.bang_4, drop=["table1_models"]) == "not run"
    no_noise = _t1()
    no_noise["noise"] = None
    assert verdict(claims.bang_4, t1=no_noise) == "not run"
    assert verdict(claims.bang_4, t1=_t1(noise=(0.40, 0.12))) == "reproduced"
    assert verdict(claims.bang_4, t1=_t1(noise=(0.10, 0.12))) == "not reproduced"
    assert verdict(claims.bang_4, profile="paper") == "reproduced"
    assert verdict(claims.bang_4, profile="paper", t1=_t1(noise=(0.40, 0.12))) == "partly"
    assert verdict(claims.bang_4, profile="paper", t1=_t1(noise=(0.2, 0.2))) == "not reproduced"
    ours = claims.bang_4(results(t1=_t1(noise=(0.3993, 0.1167)))).ours
    assert ours == "sigma 100, iteration 10: R0 39.93 %, B1 11.67 % (10 images)"


# --- BANG-5: the grid trend -------------------------------------------------------------------------


def test_bang5_every_branch():
    assert verdict(claims.bang_5) == "not run"
    assert verdict(claims.bang_5, grid=_grid([0.9], [0.8])) == "not run"  # one eps: no trend
    assert verdict(claims.bang_5, grid=_grid([1.0, 0.95], [1.0, 0.97])) == "reproduced"
    assert verdict(claims.bang_5, grid=_grid([1.0, 0.995])) == "partly"  # below one point: noise floor
    assert verdict(claims.bang_5, grid=_grid([1.0, 1.0])) == "not reproduced"
    assert verdict(claims.bang_5, grid=_grid([0.9, 0.95])) == "not reproduced"
    assert verdict(claims.bang_5, profile="paper", grid=_grid([0.1, 0.05, 0.02])) == "reproduced"
    # last below first, but the fitted slope rises: partly
    assert verdict(claims.bang_5, profile="paper", grid=_grid([0.5, 0.4, 1.0, 0.49])) == "partly"
    assert verdict(claims.bang_5, profile="paper", grid=_grid([1.0, 1.0])) == "not reproduced"
    ours = claims.bang_5(results(grid=_grid([1.0, 0.9955, 0.991], epsilons=[0.78, 0.81, 0.84]))).ours
    assert ours.startswith("mean FGS rate over beta by eps: 0.78: 100.00 %, 0.81: 99.55 %") and "slope" in ours


# --- BANG-6 and BANG-7: CIFAR-10 ---------------------------------------------------------------------


def test_bang6_every_branch():
    assert claims.bang_6(results()) == core.Finding(claims.NO_CIFAR, "not run")
    only_r0 = _cifar(0.7, 0.69, 0.95, 0.4)
    del only_r0["rows"]["B0"]
    assert verdict(claims.bang_6, cifar=only_r0) == "not run"
    assert verdict(claims.bang_6, cifar=_cifar(0.70, 0.69, 0.95, 0.40)) == "reproduced"
    assert verdict(claims.bang_6, cifar=_cifar(0.50, 0.49, 0.95, 0.40)) == "partly"  # accuracy below 55 %
    assert verdict(claims.bang_6, cifar=_cifar(0.70, 0.69, 0.40, 0.45)) == "not reproduced"
    assert verdict(claims.bang_6, profile="paper", cifar=_cifar(0.7959, 0.7926, 0.96, 0.35)) == "reproduced"
    assert verdict(claims.bang_6, profile="paper", cifar=_cifar(0.70, 0.69, 0.96, 0.60)) == "partly"
    assert verdict(claims.bang_6, profile="paper", cifar=_cifar(0.7959, 0.7926, 0.5, 0.6)) == "not reproduced"


def test_bang7_every_branch():
    assert claims.bang_7(results("paper")) == core.Finding(claims.NO_CIFAR, "not run")
    assert verdict(claims.bang_7, cifar=_cifar(0.7, 0.7, 0.9, 0.4, noise=(0.46, 0.39))) == "not run"  # quick
    assert verdict(claims.bang_7, profile="paper", cifar=_cifar(0.7, 0.7, 0.9, 0.4)) == "not run"  # no noise
    ok = _cifar(0.7, 0.7, 0.9, 0.4, noise=(0.46, 0.391))
    assert verdict(claims.bang_7, profile="paper", cifar=ok) == "reproduced"
    far = _cifar(0.7, 0.7, 0.9, 0.4, noise=(0.7, 0.5))
    assert verdict(claims.bang_7, profile="paper", cifar=far) == "partly"
    worse = _cifar(0.7, 0.7, 0.9, 0.4, noise=(0.39, 0.46))
    assert verdict(claims.bang_7, profile="paper", cifar=worse) == "not reproduced"


# --- BANG-8: the masking check, on the yardstick's images -------------------------------------------


def _masking(b1_fgs_fails, broken, r0_fgs_rate=1.0, n=200):
    """B1's paper FGS fails on ``b1_fgs_fails`` images; all attacks fool ``broken`` of them within 0.3
    (at 0.2), the others only at 0.45 (above the largest threshold)."""
    inf = math.inf
    fgs_b1 = [inf] * b1_fgs_fails + [0.05] * (n - b1_fgs_fails)
    d1 = torch.tensor([0.2] * broken + [0.45] * (b1_fgs_fails - broken) + [0.05] * (n - b1_fgs_fails))
    r0_fails = n - round(r0_fgs_rate * n)
    y = _yard(r0_fgs=[inf] * r0_fails + [0.05] * (n - r0_fails))
    y["bang-b1"] = _protocol("bang-b1", d1.double(), fgs_b1)
    return y


def test_bang8_every_branch():
    assert verdict(claims.bang_8, drop=["yardstick"]) == "not run"
    assert verdict(claims.bang_8, yard=_masking(190, 120)) == "reproduced"  # collapse, most of it masking
    assert verdict(claims.bang_8, yard=_masking(190, 60)) == "partly"  # fewer than half broken
    assert verdict(claims.bang_8, yard=_masking(190, 0)) == "not reproduced"
    assert verdict(claims.bang_8, yard=_masking(0, 0)) == "not reproduced"  # FGS fails nowhere
    # every FGS failure broken, but B1's FGS rate barely drops (no collapse): partly
    found = claims.bang_8(results(yard=_masking(5, 5)))
    assert found.verdict == "partly" and "no collapse" in found.ours
    assert "the other attacks fool 5 of them within L-inf 0.3" in found.ours
    assert "97 blank-gradient FGS failures, broken by margin-loss FGS 60" in found.ours


def test_survives_reads_the_yardstick_medians():
    y = _yard(r0=(0.64, 0.0), b1=(0.66, 0.0))
    assert "B1 is no more robust than R0 in L-inf (0.200 vs 0.200)" in claims.survives(y["bang-r0"], y["bang-b1"])
    y = _yard()
    text = claims.survives(y["bang-r0"], y["bang-b1"])
    assert "B1 is more robust than R0 in L-inf (0.350 vs 0.050)" in text and "in L2 (1.75 vs 0.25)" in text


def test_fgs_size_sentence():
    att = _att()
    att["R0"]["fgs_summary"].update(linf_mean=39.4, pass_mean=0.684)
    att["B1"]["fgs_summary"].update(linf_mean=56.1, pass_mean=0.60)
    text = claims.fgs_size_sentence(att["R0"]["fgs_summary"], att["B1"]["fgs_summary"])
    assert "mean L-inf 56.1 vs R0's 39.4" in text and "the opposite of the paper's B1" in text
    att["B1"]["fgs_summary"].update(linf_mean=5.5, pass_mean=0.76)
    assert "the same direction as the paper's B1" in claims.fgs_size_sentence(
        att["R0"]["fgs_summary"], att["B1"]["fgs_summary"]
    )
    att["B1"]["fgs_summary"].update(linf_mean=math.nan)
    assert "not enough successes" in claims.fgs_size_sentence(att["R0"]["fgs_summary"], att["B1"]["fgs_summary"])


def test_robustness_words():
    word = claims._robustness_word
    assert word(math.inf, 0.1) == "more robust than" and word(0.1, math.inf) == "weaker than"
    assert word(math.inf, math.inf) == "not comparable with"
    assert word(0.105, 0.1) == "only marginally (< 10 %) more robust than"
    assert word(0.1, 0.1) == "no more robust than" and word(0.05, 0.1) == "weaker than"


# --- the steps and their keys -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["smoke", "quick", "paper"])
def test_the_steps_are_a_valid_schedule(name):
    steps = bx.steps(PROFILES[name])
    experiment.check_steps(steps)
    assert [s.name for s in steps] == ["table1_models", "table1_attacks", "grid", "beyond", "yardstick", "cifar"]


def test_the_quick_keys_are_those_of_the_committed_results():
    """A changed key silently recomputes the quick results (about 8 minutes, the yardstick another
    10-25): keep them."""
    prof = PROFILES["quick"]
    rows = tuple(prof.table_rows)
    keys = {
        "table1-models-1ac1f8e39c82": bx.ModelsKey(
            prof,
            rows,
            {r: bx.TABLE1[r] for r in rows},
            scaled_solver(LENET_SOLVER, prof.iterations),
            {r: bx.init_seed(0, r) for r in rows},
        ),
        "table1-attacks-bfa8549d9e56": bx.AttacksKey(prof, rows),
        "grid-26b5c50eecf5": bx.GridKey(prof, scaled_solver(LENET_SOLVER, prof.grid_iterations)),
        "beyond-da9ed8aa2b34": bx.RowsKey(prof, ("R0", "B1")),
    }
    exp = experiment.start("bang", "quick", load_only=True)
    source = base.model_key(exp.sibling("baselines"), "relu_mlp")
    for row, stem in (("R0", "yardstick-bang-r0-28a422fbeaaf"), ("B1", "yardstick-bang-b1-c86b4717e3b3")):
        keys[stem] = bx.YardstickKey(bx.yardstick_config(exp), bx.models_key(exp), row, source, 8.0)
    for stem, key in keys.items():
        name = stem.rsplit("-", 1)[0]
        assert store.artifact_stem(name, key, notebook="bang", profile="quick", seed=0).name == stem
