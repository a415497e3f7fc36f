"""The baselines chapter's claims: what the paper chapters take for granted about standard networks,
with the numbers the papers report and the rule that judges each (its docstring is the criterion).

``results`` is ``{step name: result}`` of ``experiments.steps`` (``clean``: accuracy per model;
``linf`` / ``l2``: ``{model: {attack label: DistanceResult}}``) plus ``"profile"``.
"""

from __future__ import annotations

from typing import NamedTuple

from ... import claims
from ..abs import claims as abs_claims
from .experiments import MODELS, NETWORKS, smallest


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
PGD_BAR = 0.05  # BASE-2: the most accuracy L∞ PGD may leave at ε = 0.3


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
    ours = ", ".join(f"{m} {pct(a, 2)}" for m, a in acc.items()) + f" (bar at {name}: {pct(bar)})"
    return claims.Finding(ours, claims.grade(all(meets.values()), meets["relu_mlp"] and meets["lenet"]))


CNN = ABS_RELEASED["lenet"]
BASE_2 = claims.Claim(
    "BASE-2",
    "Standard networks fall to ~0 % accuracy under L∞ PGD at ε = 0.3",
    f"CNN {pct(CNN.linf_acc, 0)} at L∞ 0.3 (ABS paper); ReLU/sigmoid < 2 % (RBFI paper)",
    f"ABS paper: {abs_claims.RELEASED.format('Linf')}; RBFI paper abstract and §6.3, Table 1",
)


@claims.rule(BASE_2)
def base_2(results: claims.Results) -> claims.Finding:
    """Reproduced when L∞ PGD with a random start (the profile's steps and restarts) leaves at
    most 5 % of the attacked test images correctly classified at ε = 0.3 on each of the ReLU MLP,
    the sigmoid MLP and LeNet; otherwise not reproduced."""
    if "linf" not in results:
        return claims.not_run("L∞ attacks not run")
    acc = {m: results["linf"][m]["PGD"].accuracy_at(0.3) for m in NETWORKS}
    ours = ", ".join(f"{m} {pct(a)}" for m, a in acc.items())
    return claims.Finding(ours, claims.grade(max(acc.values()) <= PGD_BAR))


BASE_3 = claims.Claim(
    "BASE-3",
    "Nearest neighbour: L2 median ~1.5, about half the images robust at L2 1.5",
    f"median {NN.l2_median:.2f}, {pct(NN.l2_acc, 0)} at ε = 1.5 (ABS paper, all 60,000 training images)",
    f"ABS paper: {abs_claims.RELEASED.format('L2')}",
)


@claims.rule(BASE_3)
def base_3(results: claims.Results) -> claims.Finding:
    """Judged on nearest neighbour's smallest adversarial per image over all L2 attacks: reproduced
    when the median is within 20 % of the ABS paper's 1.54 and the accuracy at ε = 1.5 within 10
    points of its 53 %; partly when the median is within 40 % of 1.54 (whatever the accuracy);
    otherwise not reproduced. The profile may search fewer training images than the paper's
    60,000 (the row says how many)."""
    if "l2" not in results:
        return claims.not_run("L2 attacks not run")
    best = smallest(results["l2"]["nearest_neighbour"])
    median, acc = best.median(), best.accuracy_at(1.5)
    n_train = results["profile"].nn_train or 60000
    ours = f"median {median:.2f}, {pct(acc)} at ε = 1.5 ({n_train} training images)"
    off = abs(median - NN.l2_median)
    close = off <= 0.2 * NN.l2_median and abs(acc - NN.l2_acc) <= 0.10
    return claims.Finding(ours, claims.grade(close, off <= 0.4 * NN.l2_median))


BASE_4 = claims.Claim(
    "BASE-4",
    "(evaluation check) gradient attacks beat random noise of the same size at every ε",
    "—",
    "this book's evaluation check, not a paper's claim: an attack weaker than noise has a broken gradient",
)


@claims.rule(BASE_4)
def base_4(results: claims.Results) -> claims.Finding:
    """An evaluation check: reproduced when, on every model and at every ε of the profile's L∞
    grid, PGD leaves no more attacked images correctly classified than uniform noise of the same
    L∞ size; otherwise not reproduced (PGD doing worse than noise means a broken gradient, not
    robustness)."""
    if "linf" not in results:
        return claims.not_run("L∞ attacks not run")
    linf, grid = results["linf"], results["profile"].linf_grid
    noise = {m: linf[m]["uniform noise"] for m in MODELS}
    beaten = all(linf[m]["PGD"].accuracy_at(e) <= noise[m].accuracy_at(e) + 1e-9 for m in MODELS for e in grid)
    ours = "uniform noise at 0.3: " + ", ".join(f"{m} {pct(r.accuracy_at(0.3))}" for m, r in noise.items())
    return claims.Finding(ours, claims.grade(beaten))


RULES = [base_1, base_2, base_3, base_4]
