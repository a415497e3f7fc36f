"""The MFBM paper's claims, its reported numbers, and the verdict rules of the chapter's scorecard.

Each rule is a function of ``results`` = ``{step name: what the step returned, "profile": the
profile}`` (see ``experiments.steps``); its docstring is the criterion the book shows. The
paper's figures have no numbers, so most targets are qualitative; Table 1 and the distilled
network's numbers are quantitative and judged at the ``paper`` profile only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ... import claims, report
from ...claims import Claim, Finding, grade
from . import experiments

# Table 1 (revised version; 1,000 test images): mean L2 / share of images with distance > 1.5.
PAPER_TABLE1 = {
    "gradient": (3.9, 0.97),
    "boundary": (3.46, 0.85),
    "transfer": (5.6, 0.96),
    "gaussian": (10.6, 0.98),
    "compound": (2.73, 0.82),
}
# The ABS row the paper prints beside it (copied from the ABS paper: medians, not means).
ABS_TABLE1 = {
    "gradient": (3.1, 0.87),
    "boundary": (2.6, 0.83),
    "transfer": (4.6, 0.94),
    "gaussian": (10.9, 0.98),
    "compound": (2.3, 0.80),
}
TABLE1_NAMES = {
    "gradient": "Gradient iterative (WB)",
    "boundary": "Boundary (BB)",
    "transfer": "Transfer from LeNet (BB)",
    "gaussian": "Gaussian noise (BB)",
    "compound": "Compound",
}
PAPER_DISTILLED = (3.35, 0.0135)  # section 4: mean L2 of the gradient attack, clean error
PATTERNS, COVERAGE = 679, 0.98  # section 3: 679 of the 2^16 4x4 patterns cover > 98 %
ROBUST_EPS = 1.5  # Table 1's robustness threshold (L2)


def _pct(share: float) -> str:
    return f"{100 * share:.0f} %"


def _table1_text(names: tuple[str, ...]) -> str:
    short = {"boundary": "Boundary", "transfer": "Transfer", "gaussian": "Gaussian", "compound": "Compound"}
    return "; ".join(f"{short[k]} {PAPER_TABLE1[k][0]} / {_pct(PAPER_TABLE1[k][1])}" for k in names)


EXPANSION = Claim(
    "MFBM-1",
    "The reconstructed 3rd/4th-order expansion is correct",
    "— (derived)",
    "Section 2 and App. A (the 3rd- and 4th-order terms, reconstructed here)",
)
PATTERN_COVERAGE = Claim(
    "MFBM-2",
    "679 of the 2^16 4x4 patterns cover > 98 % of occurrences",
    f"{PATTERNS}, > {100 * COVERAGE:.0f} %",
    "Section 3",
)
MEAN_FIELD_VS_EXACT = Claim(
    "MFBM-3",
    "MF D tracks exact D, underestimating late; p1/p2 reproduced almost exactly",
    "qualitative (Fig. 7)",
    "App. D, Fig. 7",
)
SMALL_NOISE = Claim(
    "MFBM-4",
    "Training patterns reject noise with J_h; the RBM-connected machine does not",
    "qualitative (Figs. 8, 9)",
    "App. E, Figs. 8 and 9",
)
NOISE_GROWTH = Claim(
    "MFBM-5",
    "Noise rejection (Δr/Δt) grows with pre-training, especially at small ε",
    "qualitative (Fig. 4)",
    "Section 5, Fig. 4",
)
PRETRAINING = Claim(
    "MFBM-6",
    "Lower D -> larger adversarial distance; clean error independent of D",
    "qualitative (Fig. 3)",
    "Section 4, Fig. 3",
)
WHITE_BOX = Claim(
    "MFBM-7",
    "MFBM resists the white-box gradient attack",
    f"mean L2 {PAPER_TABLE1['gradient'][0]}, {_pct(PAPER_TABLE1['gradient'][1])} at ε = {ROBUST_EPS}",
    "Table 1 (gradient iterative column) and section 4",
)
BLACK_BOX = Claim(
    "MFBM-8",
    "Black-box and compound attacks",
    _table1_text(("boundary", "transfer", "gaussian", "compound")),
    "Table 1",
)
DISTILLED = Claim(
    "MFBM-9",
    "Distillation keeps much of the robustness",
    f"L2 {PAPER_DISTILLED[0]}, clean error {100 * PAPER_DISTILLED[1]:.2f} %, > 2x LeNet",
    "Section 4 (the distilled network)",
)
CLEAN_ERROR = Claim(
    "MFBM-10",
    "Clean test error of the MFBM network is above LeNet/RBM",
    report.NOT_AVAILABLE,
    "Section 4 and Fig. 3 (the text gives no number)",
)


def _missing(results: Mapping[str, Any], *steps: str) -> Finding | None:
    absent = [s for s in steps if results.get(s) is None]
    return claims.not_run(f"not run: no {', '.join(absent)} results") if absent else None


def _is_paper(results: Mapping[str, Any]) -> bool:
    return results["profile"].name == "paper"


@claims.rule(EXPANSION)
def expansion(results) -> Finding:
    """Reproduced when, on a random 7-spin machine whose couplings are halved from 0.2 to 0.025,
    the error |Φ(m*) − ln Z| of the 3rd- and 4th-order free energies falls with slopes within 0.5
    of 4 and 5 (log2 of the last halving), the matrix forms of the 4-cycle and triangle sums equal
    literal loops over distinct indices (6 spins, to 1e-10), and the closed-form local fields R of
    orders 1-4 equal finite differences of Φ (7 spins, to 2e-8); otherwise not reproduced."""
    if (gap := _missing(results, "expansion")) is not None:
        return gap
    check = results["expansion"]
    slopes = check["slopes"]
    ours = (
        f"error slopes {slopes[3]:.2f} (order 3, expect 4), {slopes[4]:.2f} (order 4, expect 5); "
        f"sums and R checks pass: {check['ok']}"
    )
    return Finding(ours, grade(bool(check["ok"])))


@claims.rule(PATTERN_COVERAGE)
def pattern_coverage(results) -> Finding:
    """Reproduced when the 679 most frequent binarised (threshold 50/255) 4x4 patterns, counted at
    every position of the training images, cover at least 98 % of the occurrences (the paper's
    number, in every profile); partly between 97 % and 98 %; otherwise not reproduced."""
    if (gap := _missing(results, "patterns4")) is not None:
        return gap
    pat, prof = results["patterns4"], results["profile"]
    cov = pat["coverage_679"]
    ours = f"top 679 cover {cov:.2%}; {pat['n_for_98']} needed for 98 % ({prof.pattern_images or 60000} images)"
    return Finding(ours, grade(cov >= COVERAGE, cov >= 0.97))


@claims.rule(MEAN_FIELD_VS_EXACT)
def mean_field_vs_exact(results) -> Finding:
    """On the App. D machine (5 visible + 11 hidden units, two training states): reproduced when
    both the exact and the mean-field D end lower than they start AND the mean-field ratio p1/p2
    stays within 20 % of the exact ratio at every logged step (10 % at the paper profile); partly
    when only one of the two holds; otherwise not reproduced."""
    if (gap := _missing(results, "appendix_d")) is not None:
        return gap
    h = {k: v.numpy() for k, v in results["appendix_d"]["history"].items()}
    ratio_err = experiments.ratio_error(results["appendix_d"]["history"])
    tol = 0.10 if _is_paper(results) else 0.20
    both_fall = h["D_exact"][-1] < h["D_exact"][0] and h["D"][-1] < h["D"][0]
    close = ratio_err.max() <= tol
    ours = (
        f"D exact {h['D_exact'][0]:.2f} -> {h['D_exact'][-1]:.2f}, D MF {h['D'][0]:.2f} -> {h['D'][-1]:.2f}; "
        f"max rel. error of MF p1/p2 {ratio_err.max():.1%}"
    )
    return Finding(ours, grade(both_fall and close, both_fall or close))


@claims.rule(SMALL_NOISE)
def small_noise(results) -> Finding:
    """At the smallest noise amplitude, the response ratio Δ(other 30 states) / Δ(2 training
    states) of the App. D machine (with hidden couplings J_h) must exceed that of the
    RBM-connected machine trained the same way (and be at least 1.5 at the paper profile):
    reproduced if so, otherwise not reproduced (no partial verdict)."""
    if (gap := _missing(results, "appendix_e")) is not None:
        return gap
    ratios = experiments.small_noise_ratios(results["appendix_e"])
    rj, rr = ratios["jh"][0], ratios["rbm"][0]
    ok = rj > rr and (rj >= 1.5 if _is_paper(results) else True)
    ours = f"Δ_other/Δ_train at ε={results['profile'].small_eps[0]}: J_h machine {rj:.1f}, RBM {rr:.1f}"
    return Finding(ours, grade(bool(ok)))


@claims.rule(NOISE_GROWTH)
def noise_growth(results) -> Finding:
    """The claim is the growth of noise rejection with pre-training. With Δr/Δt the ratio of the
    feature layer's response around random and around training patterns at the smallest noise
    amplitude: reproduced when it rises from every pre-training checkpoint to the next (and ends
    above 1); partly when it ends above 1 and higher than at the first checkpoint without rising
    at every one; otherwise not reproduced — a ratio above 1 without growth shows rejection, not
    its growth."""
    if (gap := _missing(results, "fig4")) is not None:
        return gap
    f4, prof = results["fig4"], results["profile"]
    ratio4 = experiments.noise_ratio(f4)
    r_first, r_last = ratio4[0, 0], ratio4[-1, 0]
    grows = r_last > 1 and r_last > r_first
    machine = "64+256" if experiments.staged(prof) else "4x4"
    ours = (
        f"{machine} machine, {prof.noise_patterns} x {prof.noise_draws}: Δr/Δt at ε={prof.noise_eps[0]} "
        f"{r_first:.2f} (first checkpoint, D={f4['D'][0]:.2f}) -> {r_last:.2f} (last, D={f4['D'][-1]:.2f}); "
        f"all: {np.round(ratio4[:, 0], 2).tolist()}"
    )
    if not r_last > r_first and ratio4[:, 0].min() > 1:
        ours += "; above 1 (training patterns are rejected more) but not growing"
    return Finding(ours, grade(grows and bool(np.all(np.diff(ratio4[:, 0]) > 0)), grows))


def _l2(f3: Mapping[str, Any]) -> dict[str, float]:
    return {k: experiments.mean_l2(f3[k]["distances"]) for k in f3}


@claims.rule(PRETRAINING)
def pretraining(results) -> Finding:
    """The claim has two halves: the mean L2 distance of the gradient attack grows as the
    pre-training D falls, AND the clean error does not depend on D. Quick and smoke profiles:
    reproduced when the checkpoint with the lowest D has a larger mean L2 than the one with the
    highest D and than LeNet, and the clean error varies by at most 2 points across the
    checkpoints; partly when it beats either the highest-D checkpoint or LeNet. Paper profile:
    reproduced when the mean L2 rises monotonically as D falls over at least 4 checkpoints and the
    clean error varies by at most 0.5 points; partly when the lowest-D checkpoint beats the
    highest-D one. Otherwise not reproduced. A larger clean-error spread contradicts the second
    half (and a falling clean error alone can produce the ranking), so it caps the verdict at
    partly."""
    if (gap := _missing(results, "fig3")) is not None:
        return gap
    f3, paper = results["fig3"], _is_paper(results)
    mfbm_labels = [k for k in f3 if k.startswith("mfbm-")]
    by_D = sorted(mfbm_labels, key=lambda k: f3[k]["D"])  # best D first
    l2 = _l2(f3)
    best, worst = by_D[0], by_D[-1]
    errors = [f3[k]["clean_error"] for k in mfbm_labels]
    spread = max(errors) - min(errors)
    monotone = all(l2[by_D[i]] >= l2[by_D[i + 1]] for i in range(len(by_D) - 1))
    if paper:
        ok = monotone and len(by_D) >= 4 and spread <= 0.005
        some = l2[best] > l2[worst]
    else:
        ok = l2[best] > l2[worst] and l2[best] > l2["lenet"] and spread <= 0.02
        some = l2[best] > l2[worst] or l2[best] > l2["lenet"]
    note = (
        f"clean error {100 * f3[worst]['clean_error']:.1f} % (worst D) -> "
        f"{100 * f3[best]['clean_error']:.1f} % (best D), spread {100 * spread:.1f} points"
    )
    if spread > (0.005 if paper else 0.02):
        correct = {k: experiments.mean_l2(f3[k]["distances"][f3[k]["distances"] > 0]) for k in mfbm_labels}
        note += (
            " > " + ("0.5" if paper else "2") + " points: 'clean error independent of D' is contradicted and "
            "the L2 ranking follows the clean error (mean L2 on correctly classified images only, D ascending: "
            + ", ".join(f"{correct[k]:.2f}" for k in by_D)
            + ")"
        )
    ours = (
        "mean L2 by checkpoint (D ascending): "
        + ", ".join(f"{f3[k]['D']:.2f}: {l2[k]:.2f}" for k in by_D)
        + f"; LeNet {l2['lenet']:.2f}; "
        + note
    )
    return Finding(ours, grade(ok, some))


@claims.rule(WHITE_BOX)
def white_box(results) -> Finding:
    """On the final checkpoint's network, attacked with the paper's iterative L2 gradient attack.
    Paper profile: reproduced when the mean L2 is within 20 % of 3.9 and the share of images
    robust at L2 = 1.5 within 5 points of 97 %; partly when the mean L2 only exceeds LeNet's.
    Quick and smoke profiles: reproduced when the mean L2 exceeds LeNet's. The paper attributes
    the robustness to the mean-field pre-training (its RBM network is "not robust"), so when the
    RBM network's mean L2 is at least 90 % of the MFBM network's the verdict is at most partly.
    Otherwise not reproduced."""
    if (gap := _missing(results, "fig3", "table1")) is not None:
        return gap
    f3, prof = results["fig3"], results["profile"]
    l2 = _l2(f3)
    final = experiments.final_label(prof)
    g = experiments.distances(results["table1"]["gradient"])
    mean_paper, robust_paper = PAPER_TABLE1["gradient"]
    if _is_paper(results):
        ok = abs(g.mean() - mean_paper) <= 0.2 * mean_paper and abs(g.accuracy_at(ROBUST_EPS) - robust_paper) <= 0.05
        some = g.mean() > l2["lenet"]
    else:
        ok = l2[final] > l2["lenet"]
        some = False
    rbm_rel = l2["rbm"] / l2[final] if l2[final] > 0 else math.inf
    rbm_close = rbm_rel >= 0.9
    note = (
        f"; RBM network {l2['rbm']:.2f} = {rbm_rel:.0%} of MFBM's: as robust, so the robustness is not "
        "specific to the mean-field (J_h) layer"
        if rbm_close
        else f"; RBM network {l2['rbm']:.2f} = {rbm_rel:.0%} of MFBM's"
    )
    ours = (
        f"mean L2 {g.mean():.2f}, {g.accuracy_at(ROBUST_EPS):.0%} robust (median {g.median():.2f}); "
        f"LeNet {l2['lenet']:.2f} ({prof.n_attack} images)" + note
    )
    return Finding(ours, grade(ok and not rbm_close, ok or some))


@claims.rule(BLACK_BOX)
def black_box(results) -> Finding:
    """Table 1 on the final network: Boundary, transfer from LeNet and Gaussian noise, and their
    compound with the gradient attack (per image the smallest distance, over the images the
    Boundary attack ran on). "Compound ≤ each attack" compares the means on those same images.
    Paper profile: reproduced when every mean L2 (the four attacks and the compound) is within 20 %
    of the paper's, every share robust at 1.5 within 10 points, and compound ≤ each attack; partly when only compound ≤ each
    attack holds. Quick and smoke profiles (a reduced network, a compound over few images): at
    most partly, when the Gaussian-noise attack needs a larger mean L2 than the gradient attack
    and compound ≤ each attack. Otherwise not reproduced."""
    if (gap := _missing(results, "table1")) is not None:
        return gap
    prof = results["profile"]
    t = experiments.table1_summary(results["table1"], prof)
    ours_ = t.ours
    comp_ok = all(ours_["compound"].mean() <= t.same_images[k].mean() + 1e-9 for k in t.same_images)
    gauss_gt_grad = ours_["gaussian"].mean() > ours_["gradient"].mean()
    if _is_paper(results):
        within = all(
            abs(ours_[k].mean() - PAPER_TABLE1[k][0]) <= 0.2 * PAPER_TABLE1[k][0]
            and abs(ours_[k].accuracy_at(ROBUST_EPS) - PAPER_TABLE1[k][1]) <= 0.10
            for k in PAPER_TABLE1
        )
        verdict = grade(within and comp_ok, comp_ok)
    else:
        verdict = grade(False, gauss_gt_grad and comp_ok)
    n_b = t.n_boundary
    ours = (
        "; ".join(
            f"{TABLE1_NAMES[k].split(' (')[0]} {ours_[k].mean():.2f} / {ours_[k].accuracy_at(ROBUST_EPS):.0%} "
            f"({len(ours_[k].distances)} images)"
            for k in TABLE1_NAMES
        )
        + f"; Gaussian: {t.gaussian_not_found} not found (excluded from its mean); compound on {n_b} images, "
        f"given by {t.compound_sources}; on those {n_b}: gradient {t.same_images['gradient'].mean():.2f}, "
        f"Gaussian {t.same_images['gaussian'].mean():.2f}"
        + ("" if _is_paper(results) else "; quick checks only Gaussian > gradient and compound <= each attack")
    )
    return Finding(ours, verdict)


@claims.rule(DISTILLED)
def distilled(results) -> Finding:
    """Judged at the paper profile only (not run at quick, where the distilled network is not
    trained). Reproduced when the distilled network's mean L2 under the gradient attack is within
    20 % of 3.35, its clean error within 0.5 points of 1.35 %, and its mean L2 more than twice
    LeNet's; partly when its mean L2 only exceeds LeNet's; otherwise not reproduced."""
    prof = results["profile"]
    if results.get("distill") is None or prof.name == "quick" or results.get("fig3") is None:
        return claims.not_run("not run at this profile (paper profile only)")
    dist = results["distill"]
    l2_lenet = experiments.mean_l2(results["fig3"]["lenet"]["distances"])
    dl2 = experiments.mean_l2(dist["distances"])
    mean_paper, error_paper = PAPER_DISTILLED
    ok = (
        abs(dl2 - mean_paper) <= 0.2 * mean_paper
        and abs(dist["clean_error"] - error_paper) <= 0.005
        and dl2 > 2 * l2_lenet
    )
    ours = f"L2 {dl2:.2f}, clean error {dist['clean_error']:.2%}, LeNet {l2_lenet:.2f}"
    return Finding(ours, grade(ok, dl2 > l2_lenet))


@claims.rule(CLEAN_ERROR)
def clean_error(results) -> Finding:
    """The paper gives no number. Reproduced when the final MFBM network's clean test error is
    above both LeNet's and the RBM network's (all on the same n_clean first test images); partly
    when it is above one of them; otherwise not reproduced."""
    if (gap := _missing(results, "clean_errors")) is not None:
        return gap
    errs, prof = results["clean_errors"], results["profile"]
    e_m, e_l, e_r = errs[experiments.final_label(prof)], errs["lenet"], errs["rbm"]
    ours = f"MFBM {e_m:.2%}, LeNet {e_l:.2%}, RBM network {e_r:.2%} ({prof.n_clean or 10000} test images)"
    return Finding(ours, grade(e_m > e_l and e_m > e_r, e_m > e_l or e_m > e_r))


RULES = [
    expansion,
    pattern_coverage,
    mean_field_vs_exact,
    small_noise,
    noise_growth,
    pretraining,
    white_box,
    black_box,
    distilled,
    clean_error,
]
