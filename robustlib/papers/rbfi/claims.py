"""The RBFI paper's claims and the rules that judge them (de Alfaro, "Neural networks with
structural resistance to adversarial attacks").

The paper text available to the project has no table cells (Tables 1-4 and most inline numbers are
missing), so most claims are the qualitative statements of its prose. Each rule reads the results
of the steps in ``experiments.py`` (``results[step name]``) and ``results["profile"]``. The
``paper`` profile is judged on the paper's own criteria; the reduced profiles (``quick``, and
``smoke``, which means nothing) on weaker ones where a rule says so.

Robustness claims (RBFI-2, -3, -4, -9) are judged on the yardstick (``robustlib.protocol``): per
image the smallest adversarial any of its attacks found (APGD-CE and APGD-DLR through the
pseudogradient, APGD-CE through the true gradient, the paper's AdaDelta PGD, Square, transfer,
noise, the trivial bound; see ``adapter.py``), on the protocol's first test images. The paper's
own attacks are shown beside it in the rows, not judged.
"""

from __future__ import annotations

import math

from ... import claims, protocol
from ...claims import Claim, Finding
from .experiments import ATTACKS, KINDS, at, first_images, mean_std, pct, pm
from .model import SQRT_2_OVER_E

U_BOUND = 3.0  # the main networks' bound on u (section 4.2)
# The paper's numbers that survive in its text (abstract, sections 1 and 4):
RBFI_ATTACKED = 0.90  # RBFI networks "retain accuracies above 90%" ...
BASELINES_ATTACKED = 0.02  # ... "for attacks that degrade ... ReLU or sigmoid units to below 2%"
TRUE_GRADIENT_MAX = 0.85  # training with the true gradient "yields at most about 85% accuracy"
EPS = 0.3  # the epsilon of Table 1 and of the robustness claims (missing from the text; assumed)
HEADLINE = "RBFI-2"  # the paper's central robustness claim (the front page summarises the chapter by it)


def whole_percent(fraction: float) -> str:
    return f"{100 * fraction:.0f} %"


CLEAN = Claim(
    "RBFI-1",
    "Clean accuracy: RBFI ≈ sigmoid (difference < 1 std), slightly below ReLU",
    "not available (Table 1)",
    "abstract; section 6.3, Table 1",
)
ATTACKED = Claim(
    "RBFI-2",
    f"Under attacks that drive ReLU and sigmoid below {whole_percent(BASELINES_ATTACKED)}, RBFI stays above "
    f"{whole_percent(RBFI_ATTACKED)} (true-gradient attacks)",
    f"> {whole_percent(RBFI_ATTACKED)} vs < {whole_percent(BASELINES_ATTACKED)} (text)",
    "abstract; section 1",
)
PGD = Claim(
    "RBFI-3",
    "RBFI is markedly more robust than ReLU/sigmoid under PGD (paper protocol)",
    "not available",
    "section 6.3, Fig. 2",
)
MASKING = Claim(
    "RBFI-4",
    "(companion) RBFI's robustness at ε = 0.3 survives attacks that do not trust its true gradient",
    "—",
    "not a claim of the paper: its attacks (section 5) use the true gradient",
)
PSEUDO = Claim(
    "RBFI-5",
    f"Pseudogradients train RBFI far better than true gradients (true ≤ ~{whole_percent(TRUE_GRADIENT_MAX)})",
    f"true gradient 'at most about {whole_percent(TRUE_GRADIENT_MAX)}'",
    "section 4 and section 6.6, Table 3",
)
BOUNDS = Claim(
    "RBFI-6",
    "Sensitivity bounds do not rank robustness; regularised ReLU bounds reach 'the few hundreds'",
    "Table 4 not available",
    "section 6.7, Table 4",
)
ADVERSARIAL = Claim(
    "RBFI-7",
    "Normally trained RBFI best or near best under every attack vs adversarially trained "
    "ReLU; ReLU(FGSM) shows label leaking",
    "not available (Fig. 3)",
    "abstract; section 6.4, Fig. 3",
)
RELU_REG = Claim(
    "RBFI-8", "λ·S barely helps ReLU; a large λ stops learning", "λ values not available", "section 6.7, Fig. 4"
)
RBFI_REG = Claim(
    "RBFI-9", "With u ≤ 10, a small λ recovers most PGD robustness of u ≤ 3", "not available", "section 6.7, Fig. 5"
)
DEEP = Claim(
    "RBFI-10",
    "Deep 128⁵–10: ReLU and RBFI train, sigmoid barely better than random",
    "not available (section 6.8)",
    "section 6.8",
)
KINDS_WIDTH = Claim(
    "RBFI-11",
    "Layer-kind differences shrink below 1 std as width grows",
    "Table 2 not available",
    "section 6.5, Table 2",
)


def _reduced(results) -> bool:
    """The reduced profiles (quick, smoke) are judged on the weaker criteria."""
    return results["profile"].name != "paper"


def _missing(results, *step_names: str) -> Finding | None:
    absent = [s for s in step_names if results.get(s) is None]
    return claims.not_run(f"step(s) {', '.join(absent)} not computed") if absent else None


def _mean_at(results, attack: str) -> dict[str, float]:
    """Mean accuracy over runs at ε = 0.3 under a Table 1 attack, per main network."""
    grid = results["profile"].eps_grid
    return {k: mean_std([at(r[attack], grid) for r in results["table1"][k]["runs"]])[0] for k in KINDS}


def _yardstick(results, name: str = "rbfi") -> protocol.ProtocolResult:
    return results["yardstick"][name]


def _flags(res: protocol.ProtocolResult) -> str:
    """The result's sanity flags in words (``""`` when none), for the row's "ours"."""
    kinds = sorted({f"{f.kind} ({'L∞' if f.norm == 'linf' else 'L2'})" for f in protocol.sanity_flags(res)})
    return f"; flags: {', '.join(kinds)}" if kinds else "; no flags"


def _all_attacks(res: protocol.ProtocolResult, eps: float = EPS) -> str:
    return f"RBFI under all attacks (yardstick, {len(res.labels)} images) at L∞ ε={eps:g}: {pct(res.accuracy_at('linf', eps))}"


@claims.rule(CLEAN)
def rbfi_1(results) -> Finding:
    """Mean clean accuracy over the runs of Table 1 (all test images of the profile). Reproduced
    when |RBFI − sigmoid| is at most the largest standard deviation over runs of the three networks
    and ReLU ≥ RBFI, and (reduced profiles) every network reaches 80 %. Partly (reduced profiles
    only): every network reaches 80 % but the relation does not hold."""
    if missing := _missing(results, "table1"):
        return missing
    clean = {k: [r["clean"] for r in results["table1"][k]["runs"]] for k in KINDS}
    mc = {k: mean_std(v) for k, v in clean.items()}
    stds = [s for _, s in mc.values() if not math.isnan(s)]
    std_max = max(stds) if stds else 0.0
    all80 = all(m >= 0.8 for m, _ in mc.values())
    relation = abs(mc["rbfi"][0] - mc["sigmoid"][0]) <= max(std_max, 1e-9) and mc["relu"][0] >= mc["rbfi"][0]
    verdict = claims.grade(all80 and relation, all80) if _reduced(results) else claims.grade(relation)
    return Finding(", ".join(f"{KINDS[k]} {pm(v)}" for k, v in clean.items()), verdict)


@claims.rule(ATTACKED)
def rbfi_2(results) -> Finding:
    """RBFI run 0 at L∞ ε = 0.3 under the yardstick's strongest result (per image the smallest
    adversarial over every attack of the protocol and the adapter: APGD-CE and APGD-DLR through the
    pseudogradient, APGD-CE through the true gradient, the paper's AdaDelta PGD, Square, transfer,
    noise, the trivial bound; the protocol's first test images, 200 at quick); ReLU and sigmoid
    under the paper's true-gradient FGSM and I-FGSM at ε = 0.3 (mean over runs; any attack that
    drives them down is enough). Reproduced: RBFI ≥ 90 % while ReLU and sigmoid ≤ 2 % under FGSM
    or I-FGSM. Partly (reduced profiles only): RBFI ≥ 50 % while ReLU and sigmoid ≤ 30 % under
    I-FGSM. The paper's own attacks on RBFI are shown, not judged."""
    if missing := _missing(results, "table1", "yardstick"):
        return missing
    ifg, fg = _mean_at(results, "ifgsm"), _mean_at(results, "fgsm")
    yard = _yardstick(results)
    strong = yard.accuracy_at("linf", EPS)
    low = any(d["relu"] <= BASELINES_ATTACKED and d["sigmoid"] <= BASELINES_ATTACKED for d in (ifg, fg))
    full = strong >= RBFI_ATTACKED and low
    gap = _reduced(results) and ifg["relu"] <= 0.3 and ifg["sigmoid"] <= 0.3 and strong >= 0.5
    ours = (
        f"{_all_attacks(yard)}; the paper's attacks at ε=0.3: I-FGSM "
        + ", ".join(f"{KINDS[k]} {pct(v)}" for k, v in ifg.items())
        + "; FGSM "
        + ", ".join(f"{KINDS[k]} {pct(v)}" for k, v in fg.items())
        + _flags(yard)
    )
    return Finding(ours, claims.grade(full, gap))


@claims.rule(PGD)
def rbfi_3(results) -> Finding:
    """Run 0 of the RBFI and ReLU networks under the yardstick's strongest result in L∞ (every
    attack of the protocol and the RBFI adapter, on the protocol's first test images, 200 at
    quick); the sigmoid network under the paper's PGD (its first n_pgd test images; an upper bound
    on its accuracy). Reduced profiles: reproduced when RBFI's accuracy at ε = 0.3 is at least
    ReLU's + 10 points. Paper profile: reproduced when RBFI is above both ReLU and sigmoid at every
    ε ≥ 0.1 of the PGD grid that the protocol's grid holds. No partly. The row also shows the
    paper's own PGD (true gradients), which is not judged."""
    if missing := _missing(results, "table1", "yardstick"):
        return missing
    t12, grid = results["table1"], results["profile"].pgd_eps
    yard, relu = _yardstick(results), _yardstick(results, "rbfi-relu")
    strong = {"rbfi": yard.accuracy_at("linf", EPS), "relu": relu.accuracy_at("linf", EPS)}
    if _reduced(results):
        ok = strong["rbfi"] >= strong["relu"] + 0.10
    else:
        common = [(i, e) for i, e in enumerate(grid) if e >= 0.1 and e in yard.config.linf_grid]
        ok = bool(common) and all(
            yard.accuracy_at("linf", e) > max(relu.accuracy_at("linf", e), t12["sigmoid"]["pgd"][i]) for i, e in common
        )
    paper_pgd = {k: at(t12[k]["pgd"], grid) for k in KINDS}
    ours = (
        f"all attacks (yardstick, {len(yard.labels)} images) L∞ ε={EPS:g}: RBFI {pct(strong['rbfi'])}, "
        f"ReLU {pct(strong['relu'])}; the paper's PGD: "
        + ", ".join(f"{KINDS[k]} {pct(v)}" for k, v in paper_pgd.items())
        + _flags(yard)
    )
    return Finding(ours, claims.grade(ok))


@claims.rule(MASKING)
def rbfi_4(results) -> Finding:
    """RBFI run 0 at L∞ ε = 0.3 under the yardstick's strongest result (per image the smallest
    adversarial over every attack: APGD-CE and APGD-DLR through the pseudogradient, APGD-CE
    through the true gradient, the paper's PGD, Square, transfer, noise, the trivial bound; the
    protocol's first test images, 200 at quick), with its flags. Reproduced: accuracy ≥ 90 % (the
    paper's level); partly: ≥ 50 %. The row also shows the paper's attacks through the true and
    through the pseudo gradient (the chapter's own, on its attacked images)."""
    if missing := _missing(results, "beyond", "yardstick"):
        return missing
    bey, grid = results["beyond"], results["profile"].pgd_eps
    gap = {
        a: (at(bey["rbfi"][f"{a}/true"], grid), at(bey["rbfi"][f"{a}/pseudo"], grid)) for a in ("fgsm", "ifgsm", "pgd")
    }
    yard = _yardstick(results)
    strong = yard.accuracy_at("linf", EPS)
    ours = (
        "; ".join(f"{ATTACKS[a]} true {pct(t)} vs pseudo {pct(p)}" for a, (t, p) in gap.items())
        + f"; {_all_attacks(yard)}"
        + _flags(yard)
    )
    return Finding(ours, claims.grade(strong >= 0.9, strong >= 0.5))


@claims.rule(PSEUDO)
def rbfi_5(results) -> Finding:
    """Run 0 of the main RBFI network trained with true gradients vs with pseudogradients (same
    recipe). Reduced profiles: reproduced when the pseudogradient network is ≥ 3 points more
    accurate. Paper profile: reproduced when the true-gradient network is at most 87 % and the
    pseudogradient one within 0.5 points of the mean of Table 1's RBFI runs. Partly: the
    pseudogradient network is more accurate, but the criterion above fails."""
    needed = ("table3",) if _reduced(results) else ("table3", "table1")
    if missing := _missing(results, *needed):
        return missing
    t3 = results["table3"]
    tr, ps = t3["true"][0]["clean"], t3["pseudo"][0]["clean"]
    if _reduced(results):
        ok = ps >= tr + 0.03
    else:
        rbfi_mean = mean_std([r["clean"] for r in results["table1"]["rbfi"]["runs"]])[0]
        ok = tr <= 0.87 and abs(ps - rbfi_mean) <= 0.005  # the paper's "about 85 %", 2 points of slack
    return Finding(f"true gradient {pct(tr)}, pseudogradient {pct(ps)}", claims.grade(ok, ps > tr))


@claims.rule(BOUNDS)
def rbfi_6(results) -> Finding:
    """Bounds (7) and (8) of run 0 of the main networks and of the λ·S-regularised ReLU networks of
    Fig. 4. Reproduced when the ReLU bound exceeds the RBFI bound, the RBFI bound is at most
    (3·√(2/e))^L for its L layers (u ≤ 3; float32 slack 1e-5), and (paper profile) some
    regularised ReLU bound lies between 30 and 3,000 ("the few hundreds"). No partly."""
    if missing := _missing(results, "table4", "fig4"):
        return missing
    layers = len(results["profile"].hidden) + 1
    limit = (U_BOUND * SQRT_2_OVER_E) ** layers
    b_rbfi, b_relu = results["table4"]["main"]["rbfi"], results["table4"]["main"]["relu"]
    regularised = {lam: r["bound"] for lam, r in results["fig4"].items() if float(lam) > 0}
    ok = b_relu > b_rbfi and b_rbfi <= limit * (1 + 1e-5)
    if not _reduced(results):
        ok = ok and any(30 <= b <= 3000 for b in regularised.values())
    ours = (
        f"ReLU {b_relu:.3g} {'>' if b_relu > b_rbfi else '≤'} RBFI {b_rbfi:.3g} (≤ {limit:.1f}); regularised ReLU "
        + ", ".join(f"λ={k}: {v:.3g}" for k, v in regularised.items())
    )
    return Finding(ours, claims.grade(ok))


@claims.rule(ADVERSARIAL)
def rbfi_7(results) -> Finding:
    """Fig. 3: ReLU, ReLU(FGSM), ReLU(I-FGSM), ReLU(PGD) (adversarial ε = 0.3) and RBFI run 0.
    Three checks: (a) label leaking: ReLU(FGSM) is more accurate than ReLU under FGSM at ε = 0.3;
    (b) RBFI is within 5 points of the best network under FGSM, I-FGSM and noise at every ε of the
    grid; (c) ReLU(PGD) is the best network under the paper's PGD at every ε. Reproduced: all
    three; partly: (a) or (b)."""
    if missing := _missing(results, "fig3"):
        return missing
    f3, p = results["fig3"], results["profile"]
    fg3 = {n: at(r["fgsm"], p.eps_grid) for n, r in f3.items()}
    leaking = fg3["ReLU(FGSM)"] > fg3["ReLU"]
    near = all(
        f3["RBFI"][a][i] >= max(r[a][i] for r in f3.values()) - 0.05
        for a in ("fgsm", "ifgsm", "noise")
        for i in range(len(p.eps_grid))
    )
    pgd_best = all(
        f3["ReLU(PGD)"]["pgd"][i] >= max(r["pgd"][i] for r in f3.values()) - 1e-9 for i in range(len(p.pgd_eps))
    )
    ours = (
        "ε=0.3 FGSM "
        + ", ".join(f"{n} {pct(v)}" for n, v in fg3.items())
        + f"; RBFI within 5 points of the best under FGSM/I-FGSM/noise at every ε: {near}; "
        f"ReLU(PGD) best under PGD: {pgd_best}"
    )
    return Finding(ours, claims.grade(leaking and near and pgd_best, leaking or near))


@claims.rule(RELU_REG)
def rbfi_8(results) -> Finding:
    """Fig. 4: ReLU networks trained with λ·S over the profile's λ grid. Reproduced: the largest λ
    leaves at most 20 % clean accuracy while the smallest reaches 80 %. Partly: the largest λ is
    more than 10 points below the smallest."""
    if missing := _missing(results, "fig4"):
        return missing
    f4, grid = results["fig4"], results["profile"].eps_grid
    lams = sorted(f4, key=float)
    big, zero = f4[lams[-1]], f4[lams[0]]
    ours = ", ".join(
        f"λ={lam}: clean {pct(r['clean'])}, I-FGSM ε=0.3 {pct(at(r['ifgsm'], grid))}" for lam, r in f4.items()
    )
    return Finding(ours, claims.grade(big["clean"] <= 0.2 and zero["clean"] >= 0.8, big["clean"] < zero["clean"] - 0.1))


@claims.rule(RBFI_REG)
def rbfi_9(results) -> Finding:
    """Fig. 5's networks at L∞ ε = 0.3 under the yardstick's strongest result on the first n_fig5
    test images (100 at quick): the main RBFI network (u ≤ 3) and RBFI networks with u ≤ 10
    trained with λ = 0 and with the profile's λ > 0 (L∞ attacks of the protocol and the RBFI
    adapter; float64 for u ≤ 10). Reproduced when the regularised network's accuracy is closer to
    the u ≤ 3 network's than the unregularised one's is. No partly. The paper's own PGD (true
    gradients) on the same networks is shown, not judged."""
    if missing := _missing(results, "fig5", "yardstick", "yardstick_fig5"):
        return missing
    f5, p, y5 = results["fig5"], results["profile"], results["yardstick_fig5"]
    k0, k1 = "u<=10, lambda=0", f"u<=10, lambda={p.rbfi_lambda:g}"
    u3 = first_images(_yardstick(results), len(y5[k0].labels))
    s3, s10, s10r = (r.accuracy_at("linf", EPS) for r in (u3, y5[k0], y5[k1]))
    p3, p10, p10r = (at(f5[k]["pgd"], p.pgd_eps) for k in ("u<=3", k0, k1))
    ours = (
        f"all attacks (yardstick, {len(u3.labels)} images) L∞ ε={EPS:g}: u≤3 {pct(s3)}, u≤10 λ=0 {pct(s10)}, "
        f"u≤10 λ={p.rbfi_lambda:g} {pct(s10r)}; the paper's PGD: u≤3 {pct(p3)}, u≤10 λ=0 {pct(p10)}, "
        f"u≤10 λ={p.rbfi_lambda:g} {pct(p10r)}"
    )
    return Finding(ours, claims.grade(abs(s10r - s3) < abs(s10 - s3)))


@claims.rule(DEEP)
def rbfi_10(results) -> Finding:
    """Section 6.8: deep networks (the profile's width and depth; the paper 128⁵–10, 20 epochs).
    Reduced profiles: reproduced when sigmoid's clean accuracy is at least 20 points below both
    ReLU's and RBFI's after the same short training. Paper profile: reproduced when sigmoid ends
    at most at 20 %. No partly."""
    if missing := _missing(results, "deep"):
        return missing
    dp, p = results["deep"], results["profile"]
    sig = dp["sigmoid"]["clean"]
    ok = sig <= min(dp["relu"]["clean"], dp["rbfi"]["clean"]) - 0.2 if _reduced(results) else sig <= 0.2
    ours = (
        ", ".join(f"{KINDS[k]} {pct(r['clean'])}" for k, r in dp.items())
        + f" ({p.deep_width}×{p.deep_depth}, {p.deep_epochs} epochs)"
    )
    return Finding(ours, claims.grade(ok))


@claims.rule(KINDS_WIDTH)
def rbfi_11(results) -> Finding:
    """Table 2 at the largest width of the profile: the spread of the mean accuracies of the four
    layer geometries (And, Or, alternating, mixed) against the largest standard deviation over
    runs. Judged only at the paper profile with a largest width ≥ 256 and at least two runs (the
    claim concerns wide networks); not run otherwise. Reproduced when the spread is at most that
    standard deviation. No partly."""
    if missing := _missing(results, "table2"):
        return missing
    t2, p = results["table2"], results["profile"]
    wmax = str(max(p.kinds_widths))
    stats = {n: mean_std(r[wmax]) for n, r in t2.items()}
    spread = max(m for m, _ in stats.values()) - min(m for m, _ in stats.values())
    sd = max((s for _, s in stats.values() if not math.isnan(s)), default=math.nan)
    covers = not _reduced(results) and max(p.kinds_widths) >= 256 and not math.isnan(sd)
    ours = f"width {wmax}: spread of means {100 * spread:.2f} points, largest std {100 * sd:.2f} points" + (
        "" if covers else " (the claim concerns wide networks: paper profile)"
    )
    if not covers:
        return claims.not_run(ours)
    return Finding(ours, claims.grade(not math.isnan(sd) and spread <= sd))


RULES = [rbfi_1, rbfi_2, rbfi_3, rbfi_4, rbfi_5, rbfi_6, rbfi_7, rbfi_8, rbfi_9, rbfi_10, rbfi_11]
