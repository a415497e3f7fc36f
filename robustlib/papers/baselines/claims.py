"""The baselines chapter's claims: what the paper chapters take for granted about standard networks,
with the numbers the papers report and the rule that judges each (its docstring is the criterion).

``results`` is ``{step name: result}`` of ``experiments.steps`` (``clean``: accuracy per model;
``linf`` / ``l2``: the chapter's own attacks, ``{model: {attack label: DistanceResult}}``;
``yardstick``: the protocol's results, ``{zoo name: ProtocolResult}``) plus ``"profile"``.

The robustness claims (BASE-2, BASE-3) are judged on the yardstick's strongest result per image
(``combined``: every attack of ``robustlib.protocol`` and the trivial bound) on the protocol's
images; the chapter's own PGD stays beside it in the row, labelled. BASE-4 checks the evaluation
itself on the yardstick's attack families.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ... import attacks, claims
from ...protocol import ProtocolResult
from ..abs import claims as abs_claims
from .adapter import KIND
from .adapter import MODELS as ZOO
from .experiments import NETWORKS, smallest

HEADLINE = "BASE-2"  # the central claim: standard networks fall to ~0 % at L∞ 0.3


class Released(NamedTuple):
    """One model's "all attacks" result in the ABS authors' released accuracy-distortion curves."""

    model: str  # as the ABS paper names it
    l2_median: float
    l2_acc: float  # accuracy at L2 ε = 1.5
    linf_median: float
    linf_acc: float  # accuracy at L∞ ε = 0.3


# The ABS paper's baselines as its authors' released accuracy-distortion curves give them (the ABS
# chapter holds those numbers: ``abs.claims.PAPER``), keyed by our closest model: their CNN is not
# LeNet but a network of the same class.
ABS_RELEASED = {
    ours: Released(theirs, *abs_claims.PAPER[theirs]["l2"], *abs_claims.PAPER[theirs]["linf"])
    for ours, theirs in (("lenet", "CNN"), ("nearest_neighbour", "Nearest neighbour"))
}
NN = ABS_RELEASED["nearest_neighbour"]

# BASE-1: the clean accuracy every network must reach. quick trains a few epochs: 97 % is its bar;
# paper trains the papers' epochs: 98 % (the papers report about 98-99 %); smoke has no bar.
CLEAN_BAR = {"smoke": 0.0, "quick": 0.97, "paper": 0.98}
PGD_BAR = 0.05  # BASE-2: the most accuracy the attacks may leave at L∞ ε = 0.3
NOISE_TOLERANCE = 0.01  # BASE-4: share of the images noise may fool that the gradient attacks do not
DECISION_FACTOR = 2.0  # BASE-4: HopSkipJump's L2 median at most noise's divided by this
ZOO_OF = {kind: name for name, kind in KIND.items()}  # "relu_mlp" -> "relu-mlp"


def pct(value: float, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f} %"


BASE_1 = claims.Claim(
    "BASE-1",
    "Standard networks reach ~98-99 % clean accuracy on MNIST",
    "ReLU/sigmoid MLPs ~98 % (RBFI paper), LeNet 99.16 % (BANG paper), "
    f"CNN {pct(abs_claims.PAPER_CLEAN['CNN'])} (ABS paper)",
    "RBFI paper §6.3, Table 1 (no perturbation); BANG paper Table 1 (R0); ABS paper, results table "
    "(clean accuracy; not checked against the paper's PDF)",
)


@claims.rule(BASE_1)
def base_1(results: claims.Results) -> claims.Finding:
    """Reproduced when the ReLU MLP, the sigmoid MLP and LeNet all reach the profile's bar of clean
    test accuracy (97 % at quick, which trains a few epochs; 98 % at paper; no bar at smoke);
    partly when the ReLU MLP and LeNet reach it but the sigmoid MLP does not; otherwise not
    reproduced. Nearest neighbour's accuracy is shown, not judged."""
    if "clean" not in results:
        return claims.not_run("clean accuracy not measured")
    acc, name = results["clean"], results["profile"].name
    bar = CLEAN_BAR[name]
    meets = {m: acc[m] >= bar for m in NETWORKS}
    # two decimals: 96.97 % must not print as the bar's 97.0 %
    ours = ", ".join(f"{ZOO_OF[m]} {pct(a, 2)}" for m, a in acc.items()) + f" (bar at {name}: {pct(bar)})"
    return claims.Finding(ours, claims.grade(all(meets.values()), meets["relu_mlp"] and meets["lenet"]))


CNN = ABS_RELEASED["lenet"]
BASE_2 = claims.Claim(
    "BASE-2",
    "Standard networks fall to ~0 % accuracy under L∞ attacks at ε = 0.3",
    f"CNN {pct(CNN.linf_acc, 0)} at L∞ 0.3 (ABS paper); ReLU/sigmoid < 2 % (RBFI paper)",
    f"ABS paper: {abs_claims.RELEASED.format('Linf')}; RBFI paper abstract and §6.3, Table 1",
)


def flag_text(yardstick: dict[str, ProtocolResult], names: tuple[str, ...], norms: tuple[str, ...]) -> str:
    """The yardstick's sanity flags of ``names`` in ``norms``, in words ("no flags" without any)."""
    found = [f"{n} {f.norm}: {f.kind}" for n in names for f in yardstick[n].flags() if f.norm in norms]
    return "flags: " + "; ".join(found) if found else "no flags"


def _n_images(yardstick: dict[str, ProtocolResult]) -> int:
    return len(next(iter(yardstick.values())).labels)


@claims.rule(BASE_2)
def base_2(results: claims.Results) -> claims.Finding:
    """Judged on the yardstick: reproduced when every attack of the protocol together (APGD-CE,
    APGD-DLR, transfer, noise, Square; per image the smallest adversarial, or the trivial bound)
    leaves at most 5 % of the protocol's images correctly classified at L∞ ε = 0.3 on each of the
    ReLU MLP, the sigmoid MLP and LeNet; otherwise not reproduced. The row shows the yardstick's
    sanity flags and, labelled, the chapter's own PGD (random start, the profile's steps and
    restarts) at 0.3."""
    if "yardstick" not in results:
        return claims.not_run("the yardstick was not run")
    ys, names = results["yardstick"], tuple(ZOO_OF[m] for m in NETWORKS)
    acc = {n: ys[n].accuracy_at("linf", 0.3) for n in names}
    ours = f"all attacks ({_n_images(ys)} images): " + ", ".join(f"{n} {pct(a)}" for n, a in acc.items())
    if "linf" in results:
        pgd = results["linf"]
        ours += "; the chapter's PGD: " + ", ".join(
            f"{ZOO_OF[m]} {pct(pgd[m]['PGD'].accuracy_at(0.3))}" for m in NETWORKS
        )
    ours += "; " + flag_text(ys, names, ("linf",))
    return claims.Finding(ours, claims.grade(max(acc.values()) <= PGD_BAR))


BASE_3 = claims.Claim(
    "BASE-3",
    "Nearest neighbour: L2 median ~1.5, about half the images robust at L2 1.5",
    f"median {NN.l2_median:.2f}, {pct(NN.l2_acc, 0)} at ε = 1.5 (ABS paper, all 60,000 training images)",
    f"ABS paper: {abs_claims.RELEASED.format('L2')}",
)


@claims.rule(BASE_3)
def base_3(results: claims.Results) -> claims.Finding:
    """Judged on the yardstick's combined L2 result for nearest neighbour (per image the smallest
    adversarial over every attack of the protocol and the trivial bound, on the protocol's
    images): reproduced when the median is within 20 % of the ABS paper's 1.54 and the accuracy at
    ε = 1.5 within 10 points of its 53 %; partly when the median is within 40 % of 1.54 (whatever
    the accuracy); otherwise not reproduced. The profile may search fewer training images than the
    paper's 60,000 (the row says how many). Beside it, labelled: the chapter's own L2 attacks."""
    if "yardstick" not in results:
        return claims.not_run("the yardstick was not run")
    r = results["yardstick"]["nearest-neighbour"]
    median, acc = r.median("l2"), r.accuracy_at("l2", 1.5)
    n_train = results["profile"].nn_train or 60000
    ours = f"all attacks ({len(r.labels)} images, {n_train} training images searched): median {median:.2f}, "
    ours += f"{pct(acc)} at ε = 1.5"
    if "l2" in results:
        own = smallest(results["l2"]["nearest_neighbour"])
        ours += f"; the chapter's L2 attacks: median {own.median():.2f}, {pct(own.accuracy_at(1.5))}"
    ours += "; " + flag_text(results["yardstick"], ("nearest-neighbour",), ("l2",))
    off = abs(median - NN.l2_median)
    close = off <= 0.2 * NN.l2_median and abs(acc - NN.l2_acc) <= 0.10
    return claims.Finding(ours, claims.grade(close, off <= 0.4 * NN.l2_median))


BASE_4 = claims.Claim(
    "BASE-4",
    "(evaluation check) gradient and decision-based attacks beat random noise",
    "—",
    "this book's evaluation check, not a paper's claim: an attack weaker than noise has a broken gradient",
)


def noise_only(r: ProtocolResult, norm: str) -> float:
    """The largest share of the images, over the norm's grid, that noise fools within ε while the
    gradient attacks (per image the smallest of them) do not."""
    family = [d for a, d in r.attacks[norm].items() if r.families[a] == "gradient"]
    grad, noise = attacks.compound(*family).distances, r.attacks[norm]["noise"].distances
    return max(((noise <= e) & (grad > e)).double().mean().item() for e in r.config.grid(norm))


def decision_ratio(r: ProtocolResult) -> float:
    """HopSkipJump's L2 median over the Gaussian-noise median (inf/inf and 0/0: 1, no gain)."""
    hsja, noise = r.median("l2", "hsja"), r.median("l2", "noise")
    if noise == 0 or math.isinf(noise):
        return 1.0 if hsja == noise else 0.0 if math.isinf(noise) else math.inf
    return hsja / noise


@claims.rule(BASE_4)
def base_4(results: claims.Results) -> claims.Finding:
    """An evaluation check on the yardstick's attack families, on every model: reproduced when (a)
    at every ε of the protocol's L∞ and L2 grids noise (uniform in L∞, tried below what the
    gradient attacks found; a Gaussian-noise line search in L2) fools at most 1 % of the images
    that the gradient attacks (APGD-CE, APGD-DLR) do not fool within the same ε, and (b) the
    decision-based HopSkipJump's L2 median is at most half the Gaussian-noise median; partly when
    (a) holds but not (b); otherwise not reproduced (noise beating a gradient attack means a broken
    gradient, not robustness)."""
    if "yardstick" not in results:
        return claims.not_run("the yardstick was not run")
    ys = results["yardstick"]
    worst = {n: max(noise_only(ys[n], norm) for norm in ys[n].norms) for n in ZOO}
    ratio = {n: decision_ratio(ys[n]) for n in ZOO}
    ours = (
        "noise beyond the gradient attacks: at most "
        + ", ".join(f"{n} {pct(w)}" for n, w in worst.items())
        + "; HopSkipJump/noise L2 median: "
        + ", ".join(f"{n} {q:.2f}" for n, q in ratio.items())
        + "; "
        + flag_text(ys, ZOO, ("linf", "l2"))
    )
    grad_ok = max(worst.values()) <= NOISE_TOLERANCE
    return claims.Finding(ours, claims.grade(grad_ok and max(ratio.values()) <= 1 / DECISION_FACTOR, grad_ok))


RULES = [base_1, base_2, base_3, base_4]
