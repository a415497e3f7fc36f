"""BANG's reported numbers and the verdict rules of its scorecard (BANG-1 .. BANG-8).

Each rule reads the steps' stored results (``results["table1_models"]``, ``["table1_attacks"]``,
``["grid"]``, ``["beyond"]``, ``["yardstick"]``, ``["cifar"]``; ``results["profile"]``) and its
docstring is the criterion the book shows. The robustness claims (BANG-2, BANG-3, BANG-8) are
judged on the yardstick (``robustlib.protocol``): its combined result, the per-image minimum over
every attack of the suite and the paper's own FGS and HC1, on the same first test images for R0
and B1; the paper's own attacks are quoted beside it, labelled. The other rules ask, at ``smoke``
and ``quick`` (a fifth of the paper's training), for the *direction* of each effect, and for a real
effect where one image could decide it; at ``paper`` for the paper's numbers within tolerances.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ... import claims
from ...protocol import ProtocolResult

_COLS = (
    "acc",
    "fgs_rate",
    "fgs_pass",
    "fgs_pass_std",
    "fgs_linf",
    "fgs_linf_std",
    "hc1_rate",
    "hc1_pass",
    "hc1_pass_std",
    "hc1_linf",
    "hc1_linf_std",
)


def _rows(text: str) -> dict[str, dict[str, float]]:
    out = {}
    for line in text.strip().splitlines():
        name, *vals = line.split()
        out[name] = dict(zip(_COLS, map(float, vals)))
    return out


# Table 1 (LeNet/MNIST): accuracy %, FGS rate %, PASS mean std, Linf mean std, HC1 likewise.
PAPER_TABLE1 = _rows("""
R0 99.16 90.33 0.4072 0.1081 40.51 15.72 99.53 0.7535 0.1143 122.60 49.46
R1 99.15 91.41 0.4072 0.1065 40.70 15.88 99.77 0.7517 0.1160 122.16 49.07
B0 99.16 3.51 0.6806 0.1457 8.34 4.32 95.13 0.5359 0.2023 187.86 63.66
B1 99.22 1.68 0.7638 0.1367 5.52 2.86 94.19 0.4880 0.2110 201.84 62.51
B2 99.31 2.13 0.7579 0.1452 5.57 3.05 94.56 0.5129 0.2015 186.10 63.77
B3 99.25 3.86 0.6763 0.1471 8.28 4.26 94.73 0.5709 0.2127 178.11 65.76
B4 99.11 1.52 0.8220 0.1310 4.19 3.01 97.68 0.4669 0.1881 203.50 58.97
B5 99.32 4.45 0.6771 0.1487 8.20 4.40 98.95 0.6376 0.1829 146.96 61.97
""")
# Table 2 (CIFAR-10 quick), the same columns.
PAPER_TABLE2 = _rows("""
R0 79.59 96.52 0.9553 0.0969 4.08 6.40 98.97 0.9669 0.1005 18.15 29.80
R1 79.55 96.71 0.9513 0.1057 4.43 7.05 98.91 0.9557 0.1332 22.16 39.77
B0 79.26 34.27 0.9511 0.1302 4.11 10.31 95.94 0.8712 0.1649 55.52 49.98
B1 80.43 45.94 0.9818 0.0548 2.04 2.49 96.20 0.7966 0.2438 77.34 71.20
B2 79.74 41.71 0.9828 0.0586 1.94 3.03 98.34 0.8362 0.2195 64.26 63.57
B3 79.41 35.00 0.9526 0.1266 3.94 8.71 96.54 0.8603 0.1981 59.83 58.28
B4 79.30 34.88 0.9575 0.1236 3.61 9.60 96.87 0.8994 0.1487 48.44 47.35
B5 79.22 41.34 0.9803 0.0722 2.03 3.64 98.17 0.8586 0.1948 61.14 61.23
""")
# Figs. 3 and 5 (text of Sec. 4): % of noisy copies that change the label at the strongest noise,
# end of training.
PAPER_NOISE = {"lenet": {"sigma": 100, "R0": 20.0, "B1": 3.0}, "cifar": {"sigma": 40, "R0": 46.0, "B0": 39.1}}

_T1, _T2 = PAPER_TABLE1, PAPER_TABLE2
_R0, _B1 = _T1["R0"], _T1["B1"]
_C0, _CB = _T2["R0"], _T2["B0"]
_NL, _NC = PAPER_NOISE["lenet"], PAPER_NOISE["cifar"]

ACCURACY = claims.Claim(
    "BANG-1", "BANG keeps LeNet accuracy", f"R0 {_R0['acc']:.2f} %, B1 {_B1['acc']:.2f} %", "Table 1"
)
FGS = claims.Claim(
    "BANG-2",
    "BANG makes LeNet resist adversarial examples: FGS success collapses",
    f"FGS rate R0 {_R0['fgs_rate']:.2f} % -> B1 {_B1['fgs_rate']:.2f} % "
    f"({_R0['fgs_rate'] - _B1['fgs_rate']:.2f} points, no bound on the perturbation); almost every "
    "failure a blank gradient",
    "Table 1; Sec. 4 (blank gradients)",
)
HC1 = claims.Claim(
    "BANG-3",
    "Adversarial examples still exist for BANG models but need larger, less similar perturbations",
    f"HC1 rate {_R0['hc1_rate']:.2f} % -> {_B1['hc1_rate']:.2f} %; PASS {_R0['hc1_pass']:.4f} -> "
    f"{_B1['hc1_pass']:.4f}; L-inf {_R0['hc1_linf']:.2f} -> {_B1['hc1_linf']:.2f} (R0 -> B1)",
    "Table 1; Fig. 2(c)",
)
NOISE = claims.Claim(
    "BANG-4",
    "BANG makes LeNet more robust to random noise",
    f"sigma {_NL['sigma']}, 10k iterations: R0 ~{_NL['R0']:g} %, B1 {_NL['B1']:g} %",
    "Fig. 3; Sec. 4",
)
GRID = claims.Claim(
    "BANG-5",
    "Higher eps -> more resistance to FGS (grid trend)",
    "Fig. 2(b) (values not tabulated)",
    "Fig. 2(b); Sec. 4",
)
CIFAR = claims.Claim(
    "BANG-6",
    "CIFAR-10: accuracy kept, FGS success drops",
    f"R0 {_C0['acc']:.2f} %, FGS {_C0['fgs_rate']:.2f} %; B0 {_CB['acc']:.2f} %, FGS {_CB['fgs_rate']:.2f} %",
    "Table 2",
)
CIFAR_NOISE = claims.Claim(
    "BANG-7",
    "CIFAR-10: BANG improves noise robustness modestly",
    f"sigma {_NC['sigma']}: R0 {_NC['R0']:.1f} %, B0 {_NC['B0']:.1f} %",
    "Fig. 5; Sec. 4",
)
MASKING = claims.Claim(
    "BANG-8",
    "(companion check) part of the FGS collapse is gradient masking",
    "—",
    "our check of the blank gradients the paper reports in Sec. 4",
)

HEADLINE = "BANG-2"  # the paper's central robustness claim (the front page summarises the chapter by it)

NO_CIFAR = "not computed: CIFAR-10 is not in data/cifar10"
PASS_DROP = 0.1  # a PASS drop smaller than this is not "less similar" (the paper: 0.75 -> 0.49)
# BANG-2: the paper's FGS drop (88.65 points, unbounded perturbation) implies B1 keeps that much more
# accuracy than R0 at every epsilon under FGS; half of it under all attacks counts as the effect
PAPER_FGS_DROP = round((_R0["fgs_rate"] - _B1["fgs_rate"]) / 100, 6)
GAIN_FULL = PAPER_FGS_DROP / 2
GAIN_SOME = 0.10  # a robustness gain of at least 10 points (and 2 standard errors) is "some"
LINF_RISE = 1.25  # BANG-3: B1's median minimal L-inf at least this multiple of R0's (paper's HC1: 1.65x)
MASKING_EPS = 0.3  # BANG-8: FGS failures broken within this L-inf are masking, not robustness
ZOO = {"R0": "bang-r0", "B1": "bang-b1"}  # Table 1 row -> the yardstick's (zoo) name


# --- statistics the rules share --------------------------------------------------------------------


def _pct(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f} %"


def _frac(percent: float) -> float:
    """A paper percentage as a fraction (rounded, so 99.16 gives exactly 0.9916)."""
    return round(percent / 100, 6)


def _paper(results: claims.Results) -> bool:
    return results["profile"].name == "paper"


def _pair(results: claims.Results) -> bool:
    """Whether the run trained R0 and B1 (every LeNet claim compares those two)."""
    t1 = results.get("table1_models")
    return t1 is not None and "R0" in t1["test_acc"] and "B1" in t1["test_acc"]


def _missing_attacks(results: claims.Results) -> claims.Finding | None:
    """``not run`` unless R0 and B1 were trained and attacked."""
    if not _pair(results):
        return claims.not_run("R0/B1 not in this profile")
    if results.get("table1_attacks") is None:
        return claims.not_run("Table 1 attacks not computed")
    return None


def success_values(res: dict[str, Any], name: str) -> torch.Tensor:
    """Per-image ``name`` ("linf" or "pass_score") of one stored line-search result over its successes."""
    return res[name][res["success"].bool()].to(torch.float64)


def mean_rise(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(mean(b) - mean(a), standard error of that difference) for two independent samples."""
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    return (b.mean() - a.mean()).item(), math.sqrt(a.var().item() / len(a) + b.var().item() / len(b))


def hc1_effects(r0: dict[str, Any], b1: dict[str, Any]) -> dict[str, float]:
    """BANG-3's two effects from the stored per-image HC1 values (successes only): the L-inf rise
    R0 -> B1 in grey levels with its standard error, and the PASS drop."""
    rise, se = mean_rise(success_values(r0, "linf"), success_values(b1, "linf"))
    drop = (success_values(r0, "pass_score").mean() - success_values(b1, "pass_score").mean()).item()
    return {
        "linf_rise": rise,
        "linf_se": se,
        "pass_drop": drop,
        "linf_significant": bool(rise > 2 * se),
        "pass_dropped": bool(drop >= PASS_DROP),
    }


def _robustness_word(b1: float, r0: float) -> str:
    """How B1's median minimal perturbation compares with R0's (10 % either way is "about equal")."""
    if math.isinf(b1) or math.isinf(r0):
        return (
            "more robust than"
            if math.isinf(b1) and not math.isinf(r0)
            else "weaker than"
            if math.isinf(r0) and not math.isinf(b1)
            else "not comparable with"
        )
    ratio = b1 / r0 if r0 > 0 else math.inf
    if ratio >= 1.1:
        return "more robust than"
    if ratio <= 1 / 1.1:
        return "weaker than"
    return "only marginally (< 10 %) more robust than" if ratio > 1 else "no more robust than"


def survives(r0: ProtocolResult, b1: ProtocolResult) -> str:
    """One sentence: is B1 more robust than R0 by the yardstick's median minimal perturbation
    (every attack combined, the same images)?"""
    li = {"R0": r0.median("linf"), "B1": b1.median("linf")}
    l2 = {"R0": r0.median("l2"), "B1": b1.median("l2")}
    return (
        f"by the median minimal perturbation over all attacks B1 is "
        f"{_robustness_word(li['B1'], li['R0'])} R0 in L-inf ({li['B1']:.3f} vs {li['R0']:.3f}) and "
        f"{_robustness_word(l2['B1'], l2['R0'])} R0 in L2 ({l2['B1']:.2f} vs {l2['R0']:.2f})"
    )


def fgs_size_sentence(f0: dict[str, Any], f1: dict[str, Any]) -> str:
    """B1's successful FGS examples vs R0's (mean L-inf, PASS), and whether that is the paper's direction
    (the paper's B1 needs far smaller FGS perturbations, 5.52 vs 40.51, with higher PASS, 0.76 vs 0.41)."""
    p0, p1 = PAPER_TABLE1["R0"], PAPER_TABLE1["B1"]
    if math.isnan(f0["linf_mean"]) or math.isnan(f1["linf_mean"]):
        return "FGS L-inf: not enough successes to compare"
    same_linf = (f1["linf_mean"] < f0["linf_mean"]) == (p1["fgs_linf"] < p0["fgs_linf"])
    same_pass = (f1["pass_mean"] > f0["pass_mean"]) == (p1["fgs_pass"] > p0["fgs_pass"])
    agree = (
        "the same direction as the paper's B1"
        if same_linf and same_pass
        else "the opposite of the paper's B1"
        if not same_linf and not same_pass
        else "the paper's direction in " + ("L-inf" if same_linf else "PASS") + " only"
    )
    return (
        f"B1's successful FGS examples have mean L-inf {f1['linf_mean']:.1f} vs R0's {f0['linf_mean']:.1f} "
        f"grey levels and PASS {f1['pass_mean']:.3f} vs {f0['pass_mean']:.3f}: {agree} "
        f"({p1['fgs_linf']:.2f} vs {p0['fgs_linf']:.2f}, PASS {p1['fgs_pass']:.3f} vs {p0['fgs_pass']:.3f})"
    )


def fgs_collapse(f0: dict[str, Any], f1: dict[str, Any]) -> bool:
    """B1's FGS success rate at most half of R0's: what counts as a collapse."""
    return f1["rate"] <= 0.5 * f0["rate"]


# --- the yardstick ------------------------------------------------------------------------------------


def yardstick_pair(results: claims.Results) -> tuple[ProtocolResult, ProtocolResult] | None:
    """(R0's, B1's) yardstick results, or None where the yardstick did not evaluate both."""
    y = results.get("yardstick")
    if not y or any(z not in y for z in ZOO.values()):
        return None
    return y[ZOO["R0"]], y[ZOO["B1"]]


def gain_se(a0: float, a1: float, n: int) -> float:
    """Standard error of a difference of two accuracies on n images each (pooled two-proportion: it
    stays meaningful when one accuracy is 0 or 1, where the unpooled error would vanish on that side)."""
    p = (a0 + a1) / 2
    return math.sqrt(p * (1 - p) * 2 / n) if n else math.nan


def flag_text(res: ProtocolResult, who: str) -> str:
    """The yardstick's sanity flags of one model in words ("" without flags)."""
    return "; ".join(f"{who} {f.norm}: {f.kind}" for f in res.flags())


def flags_of(*pairs: tuple[ProtocolResult, str]) -> str:
    text = "; ".join(t for t in (flag_text(r, w) for r, w in pairs) if t)
    return f"flags: {text}" if text else "no flags"


def paper_attack_on(res: ProtocolResult, attack: str) -> dict[str, Any]:
    """The paper's line search ``attack`` ("bang-fgs"/"bang-hc1") on the yardstick's images:
    successes, failures (the clean-correct images it does not fool) and the success rate."""
    d = res.distances("linf", attack).distances
    ok = res.clean_correct
    hit = ok & torch.isfinite(d)
    n = int(ok.sum())
    return {
        "attacked": n,
        "successes": int(hit.sum()),
        "failed": ok & ~torch.isfinite(d),
        "rate": int(hit.sum()) / n if n else math.nan,
    }


def robust_gains(r0: ProtocolResult, b1: ProtocolResult) -> dict[float, tuple[float, float, float]]:
    """Per L-inf threshold: (R0's combined accuracy, B1's, standard error of the difference)."""
    n = len(b1.labels)
    out = {}
    for t in b1.config.thresholds("linf"):
        a0, a1 = r0.accuracy_at("linf", t), b1.accuracy_at("linf", t)
        out[t] = (a0, a1, gain_se(a0, a1, n))
    return out


# --- the rules -------------------------------------------------------------------------------------


@claims.rule(ACCURACY)
def bang_1(results: claims.Results) -> claims.Finding:
    """Test accuracy of R0 and B1 on all 10,000 test images. `smoke`/`quick`: reproduced when both
    are at least 97.5 % and B1 is at most 1 point below R0; partly when only B1 is within 1 point
    of R0. `paper`: reproduced when both are within 0.3 points of the paper's 99.16 % and
    99.22 %, partly within 1 point. Not run without R0 and B1."""
    if not _pair(results):
        return claims.not_run("R0/B1 not in this profile")
    acc = results["table1_models"]["test_acc"]
    r0, b1 = acc["R0"], acc["B1"]
    p0, p1 = _frac(_R0["acc"]), _frac(_B1["acc"])
    if _paper(results):
        v = claims.grade(abs(r0 - p0) <= 0.003 and abs(b1 - p1) <= 0.003, abs(r0 - p0) <= 0.01 and abs(b1 - p1) <= 0.01)
    else:
        v = claims.grade(min(r0, b1) >= 0.975 and b1 >= r0 - 0.01, b1 >= r0 - 0.01)
    return claims.Finding(f"R0 {_pct(r0)}, B1 {_pct(b1)}", v)


@claims.rule(FGS)
def bang_2(results: claims.Results) -> claims.Finding:
    """Judged on the yardstick: the combined L-inf accuracy of R0 and B1 (every attack of the
    suite plus the paper's FGS and HC1, the per-image minimum, on the same first test images) at
    0.1 and 0.3. The paper's unbounded FGS drop (88.65 points) says B1 keeps about that much more
    accuracy than R0 under FGS at every epsilon. Reproduced when B1's accuracy exceeds R0's by at least half
    of that (44.3 points) at both thresholds and B1's yardstick result has no sanity flag; partly
    when it exceeds R0's by at least 10 points and 2 standard errors at one threshold (or by 44.3
    points but with a flag); else not reproduced. Beside it, labelled: the paper's FGS success
    rates on the same images (and the blank-gradient count from Table 1's images). Not run
    without the yardstick of R0 and B1."""
    pair = yardstick_pair(results)
    if pair is None:
        return claims.not_run("the yardstick did not evaluate R0 and B1")
    r0, b1 = pair
    gains = robust_gains(r0, b1)
    f0, f1 = paper_attack_on(r0, "bang-fgs"), paper_attack_on(b1, "bang-fgs")
    at = "; ".join(
        f"L-inf {t:g}: R0 {_pct(a0)}, B1 {_pct(a1)} ({100 * (a1 - a0):+.1f} points, SE {100 * se:.1f})"
        for t, (a0, a1, se) in gains.items()
    )
    ours = (
        f"all attacks, {len(b1.labels)} images: {at}; the paper's FGS on the same images succeeds on "
        f"R0 {_pct(f0['rate'])} ({f0['successes']}/{f0['attacked']}), B1 {_pct(f1['rate'])} "
        f"({f1['successes']}/{f1['attacked']})"
    )
    att = results.get("table1_attacks")
    if att is not None and "B1" in att:
        s1 = att["B1"]["fgs_summary"]
        ours += f" (Table 1's {s1['attacked']} images: B1 {_pct(s1['rate'])}, {s1['blank_failures']} blank gradients)"
    ours += "; " + flags_of((r0, "R0"), (b1, "B1"))
    diffs = [(a1 - a0, se) for a0, a1, se in gains.values()]
    full = all(d >= GAIN_FULL for d, _ in diffs)
    some = any(d >= GAIN_SOME and d > 2 * se for d, se in diffs)
    clean = not any(f.norm == "linf" for f in b1.flags())
    return claims.Finding(ours, claims.grade(full and clean, some or full))


@claims.rule(HC1)
def bang_3(results: claims.Results) -> claims.Finding:
    """Two effects. Larger perturbations, judged on the yardstick: B1's median minimal L-inf
    perturbation (combined over every attack, the same first test images) is at least 1.25 times
    R0's (the paper's HC1 examples: 201.84 / 122.60 = 1.65 times). Less similar, from the paper's
    own HC1 on Table 1's images (labelled): B1's mean PASS of the successful HC1 examples at least
    0.1 below R0's (the paper: 0.75 -> 0.49). Reproduced when both hold and HC1 succeeds on at least
    80 % (`paper`: 90 %) of the images of both models; partly when one of the two effects holds;
    else not reproduced. The L2 medians are quoted beside. Not run without the yardstick of R0 and
    B1 or their Table 1 attacks."""
    if (missing := _missing_attacks(results)) is not None:
        return missing
    pair = yardstick_pair(results)
    if pair is None:
        return claims.not_run("the yardstick did not evaluate R0 and B1")
    r0, b1 = pair
    att = results["table1_attacks"]
    h0, h1 = att["R0"]["hc1_summary"], att["B1"]["hc1_summary"]
    e = hc1_effects(att["R0"]["hc1"], att["B1"]["hc1"])
    med = {n: (r0.median(n), b1.median(n)) for n in ("linf", "l2")}
    ratio = med["linf"][1] / med["linf"][0] if med["linf"][0] > 0 else math.inf
    ours = (
        f"median minimal perturbation over all attacks ({len(b1.labels)} images): L-inf R0 "
        f"{med['linf'][0]:.3f}, B1 {med['linf'][1]:.3f} ({ratio:.2f}x, needed >= {LINF_RISE:g}), L2 "
        f"{med['l2'][0]:.2f} vs {med['l2'][1]:.2f}; the paper's HC1 (Table 1's images): success R0 "
        f"{_pct(h0['rate'])}, B1 {_pct(h1['rate'])}, PASS {h0['pass_mean']:.3f} -> {h1['pass_mean']:.3f} "
        f"(drop {e['pass_drop']:.3f}, needed >= {PASS_DROP:g}), mean L-inf {h0['linf_mean']:.1f} -> "
        f"{h1['linf_mean']:.1f} grey levels; " + flags_of((r0, "R0"), (b1, "B1"))
    )
    larger, less_similar = ratio >= LINF_RISE, e["pass_dropped"]
    succeeds = min(h0["rate"], h1["rate"]) >= (0.9 if _paper(results) else 0.8)
    return claims.Finding(ours, claims.grade(larger and less_similar and succeeds, larger or less_similar))


@claims.rule(NOISE)
def bang_4(results: claims.Results) -> claims.Finding:
    """Share of Gaussian-noise copies that change the label at the largest sigma and the last
    training snapshot, on images R0 and B1 classify correctly at every snapshot. `smoke`/`quick`:
    reproduced when B1's share is below R0's, else not reproduced. `paper`: reproduced when R0's
    share is within 7 points of 20 % and B1's at most 6 %; partly when B1's is below R0's. Not run
    when the noise experiment was not computed."""
    t1 = results.get("table1_models")
    noise = None if t1 is None else t1.get("noise")
    if noise is None:
        return claims.not_run("not computed")
    n0, n1 = noise["R0"][-1, -1].item(), noise["B1"][-1, -1].item()
    ours = (
        f"sigma {noise['sigmas'][-1]:g}, iteration {noise['iterations'][-1]}: R0 {_pct(n0)}, B1 {_pct(n1)} "
        f"({noise['images']} images)"
    )
    if _paper(results):
        v = claims.grade(abs(n0 - _frac(_NL["R0"])) <= 0.07 and n1 <= 0.06, n1 < n0)
    else:
        v = claims.grade(n1 < n0)
    return claims.Finding(ours, v)


@claims.rule(GRID)
def bang_5(results: claims.Results) -> claims.Finding:
    """The mean FGS success rate over beta at each eps of the grid, and its drop from the smallest
    to the largest eps. `smoke`/`quick`: reproduced when it drops by at least one point; partly
    when it drops by less (a few images of one cell: the noise floor); else not reproduced.
    `paper`: reproduced when the least-squares slope over eps is negative and the rate drops;
    partly when one of the two holds. Not run without a grid of at least two eps values."""
    g = results.get("grid")
    if g is None or len(g["epsilons"]) <= 1:
        return claims.not_run("grid not computed")
    by_eps = g["fgs_rate"].to(torch.float64).mean(0)  # (eps,)
    e = torch.tensor(g["epsilons"], dtype=torch.float64)
    slope = (((e - e.mean()) * (by_eps - by_eps.mean())).sum() / ((e - e.mean()) ** 2).sum()).item()
    ours = (
        "mean FGS rate over beta by eps: "
        + ", ".join(f"{x:g}: {_pct(v)}" for x, v in zip(e.tolist(), by_eps.tolist()))
        + f"; slope {slope:.2f} per unit eps"
    )
    drop = by_eps[0].item() - by_eps[-1].item()
    if _paper(results):
        v = claims.grade(slope < 0 and drop > 0, slope < 0 or drop > 0)
    else:
        v = claims.grade(drop >= 0.01, drop > 0)
    return claims.Finding(ours, v)


@claims.rule(CIFAR)
def bang_6(results: claims.Results) -> claims.Finding:
    """CIFAR-10 test accuracy and FGS success rate of R0 and B0. `smoke`/`quick`: reproduced when
    both accuracies are at least 55 % and B0's FGS rate is below R0's; partly when only the FGS
    rate drops. `paper`: reproduced when both accuracies are within 1 point of 79.59 % and
    79.26 %, R0's FGS rate is at least 90 % and B0's within 10 points of 34.27 %; partly when
    B0's FGS rate is below R0's. Not run where CIFAR-10 cannot be loaded or R0/B0 were not trained."""
    res = results.get("cifar")
    if res is None:
        return claims.not_run(NO_CIFAR)
    rows = res["rows"]
    if "R0" not in rows or "B0" not in rows:
        return claims.not_run("R0/B0 not in this profile")
    a0, ab = rows["R0"]["acc"], rows["B0"]["acc"]
    f0, fb = rows["R0"]["fgs_summary"]["rate"], rows["B0"]["fgs_summary"]["rate"]
    ours = f"acc R0 {_pct(a0)}, B0 {_pct(ab)}; FGS R0 {_pct(f0)}, B0 {_pct(fb)}"
    if _paper(results):
        near = abs(a0 - _frac(_C0["acc"])) <= 0.01 and abs(ab - _frac(_CB["acc"])) <= 0.01
        v = claims.grade(near and f0 >= 0.9 and abs(fb - _frac(_CB["fgs_rate"])) <= 0.1, fb < f0)
    else:
        v = claims.grade(min(a0, ab) >= 0.55 and fb < f0, fb < f0)
    return claims.Finding(ours, v)


@claims.rule(CIFAR_NOISE)
def bang_7(results: claims.Results) -> claims.Finding:
    """`paper` only: share of noisy copies relabelled at sigma 40 after the last epoch, R0 vs B0:
    reproduced when B0's share is below R0's and each is within 7 points of the paper's 46.0 % and
    39.1 %; partly when B0's is below R0's; else not reproduced. Not run at the other profiles
    and where CIFAR-10 cannot be loaded."""
    res = results.get("cifar")
    if res is None:
        return claims.not_run(NO_CIFAR)
    noise = res.get("noise")
    if not _paper(results) or noise is None:
        return claims.not_run("paper profile only")
    n0, nb = noise["R0"][-1, -1].item(), noise["B0"][-1, -1].item()
    near = abs(n0 - _frac(_NC["R0"])) <= 0.07 and abs(nb - _frac(_NC["B0"])) <= 0.07
    return claims.Finding(
        f"sigma {noise['sigmas'][-1]:g}: R0 {_pct(n0)}, B0 {_pct(nb)}", claims.grade(n0 - nb > 0 and near, n0 - nb > 0)
    )


@claims.rule(MASKING)
def bang_8(results: claims.Results) -> claims.Finding:
    """On the yardstick's images: the B1 images the paper's FGS line search does not fool (at any
    perturbation), and how many of them the yardstick's other attacks (APGD through the float64
    logit-margin surrogate, Square, HopSkipJump, transfer, noise, HC1) fool within L-inf 0.3.
    Reproduced when they fool at least half of them and the paper's FGS collapses on B1 (success at
    most half of R0's on the same images); partly when they fool at least half without a collapse
    for them to explain, or at least one but fewer than half; not reproduced when they fool none
    or FGS fails on no B1 image. Beside it: Table 1's masking check (B1's blank-gradient FGS
    failures re-run along the logit margin and in float64). Not run without the yardstick of R0
    and B1."""
    pair = yardstick_pair(results)
    if pair is None:
        return claims.not_run("the yardstick did not evaluate R0 and B1")
    r0, b1 = pair
    f0, f1 = paper_attack_on(r0, "bang-fgs"), paper_attack_on(b1, "bang-fgs")
    failed = f1["failed"]
    nf = int(failed.sum())
    broken = int((failed & (b1.distances("linf").distances <= MASKING_EPS)).sum())
    collapse = f1["rate"] <= 0.5 * f0["rate"]
    ours = (
        f"the paper's FGS fails on {nf} of B1's {f1['attacked']} correctly classified yardstick images "
        f"(success {_pct(f1['rate'])} vs R0's {_pct(f0['rate'])}: "
        + ("a collapse" if collapse else "no collapse")
        + f"); the other attacks fool {broken} of them within L-inf {MASKING_EPS:g}"
    )
    att = results.get("table1_attacks")
    if att is not None and "B1" in att:
        m = att["B1"]["masking"]
        ours += (
            f"; Table 1's images: {m['blank_failures']} blank-gradient FGS failures, broken by margin-loss "
            f"FGS {m['fgs-margin_successes']}, float64 FGS {m['fgs-float64_successes']}"
        )
    if nf == 0 or broken == 0:
        v = "not reproduced"
    else:
        v = claims.grade(broken >= 0.5 * nf and collapse, True)
    return claims.Finding(ours + "; " + flags_of((b1, "B1")), v)


RULES = [bang_1, bang_2, bang_3, bang_4, bang_5, bang_6, bang_7, bang_8]
