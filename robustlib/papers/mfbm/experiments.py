"""The steps behind the MFBM chapter's figures and tables, on the one experiment core.

``steps(profile)`` lists them in a valid order; each is a plain function of the
:class:`~robustlib.experiment.Experiment` that computes (or loads) its results through
``exp.cached`` / ``exp.model`` and returns them. ``python -m robustlib compute mfbm --profile P``
runs them all headless; the chapter calls the same functions and plots.

  expansion       the reconstructed 3rd/4th-order terms against exact enumeration (not stored:
                  a few seconds)
  appendix_d      Fig. 7: the 16-unit machine trained on two patterns, mean field vs exact
  appendix_e      Figs. 8-9: noise response of that machine and of an RBM-connected one
  patterns4       the 4x4 patch statistics (679 patterns, coverage)
  stage1          the 16 + 32 machine on the 679 patterns (snapshots at the checkpoints when it is
                  the feature machine, i.e. when stage2_steps == 0)
  stage2          the staged 64 + (4 x 32 + n_top) machine on 8x8 patches (paper profile)
  rbm             the RBM reference layer (J_h = 0), trained the same way
  fig4            noise rejection of the feature machine at each checkpoint
  clean_errors    trains the networks (a classifier on each checkpoint's frozen features, the RBM
                  network, LeNet) and measures their clean error
  fig3            the paper's iterative L2 gradient attack on every network
  table1          Boundary, transfer, Gaussian noise on the final network; beyond the paper: the
                  gradient attack with a margin loss and through a shallow surrogate
  boundary_lenet  the Boundary attack on LeNet with the same budget (for comparison)
  yardstick       the book's protocol (robustlib.protocol) on the MFBM network and its two
                  controls, with the adapters of ``adapter.py`` (beyond the paper)
  distill         the distilled network of section 4 (when distill_epochs > 0)

Every result is keyed by the whole profile and ``VERSION`` (bumped when an algorithm changes).
Machines are trained in float64 (cheap; the small ones always on the CPU, where they are
launch-bound anyway), feature maps and classifiers in float32, cached features in float16.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ... import attacks, data, protocol
from ...experiment import Experiment, Step
from ...train import accuracy, fit
from ..baselines import model as baselines
from . import model as mfbm
from .profile import MfbmProfile

VERSION = 1
F64 = torch.float64
SMALL_PATTERNS = ((1, -1, -1, -1, 1), (-1, -1, 1, 1, -1))  # App. D's two training states
ATTACK = "mfbm_iterative_l2"  # the paper's gradient attack, registered by model.py


@dataclass(frozen=True)
class Key:
    """The key of every stored result: the whole profile and the algorithm version."""

    profile: MfbmProfile
    version: int = VERSION


@dataclass(frozen=True)
class ClassifierKey:
    """The key of a classifier on frozen features: which feature layer (``mfbm-<step>``, ``rbm``)."""

    profile: MfbmProfile
    layer: str
    version: int = VERSION


# =================================================================================================
# Small helpers: the profile's data and settings
# =================================================================================================


def staged(prof: MfbmProfile) -> bool:
    """Is the feature machine the staged 8x8 machine (paper) or the 4x4 stage-1 machine (quick)?"""
    return prof.stage2_steps > 0


def final_label(prof: MfbmProfile) -> str:
    """The network of Table 1: the classifier on the last pre-training checkpoint."""
    return f"mfbm-{prof.checkpoints[-1]}"


def labels(prof: MfbmProfile) -> list[str]:
    """The networks, in the chapter's order: one per pre-training checkpoint, the RBM network, LeNet."""
    return [f"mfbm-{s}" for s in prof.checkpoints] + ["rbm", "lenet"]


def mean_field(prof: MfbmProfile, **kw: Any) -> mfbm.MeanFieldConfig:
    return mfbm.MeanFieldConfig(free_iters=prof.free_iters, **kw)


def train_images(prof: MfbmProfile) -> tuple[torch.Tensor, torch.Tensor]:
    return data.first(*data.mnist("train"), prof.n_train)


def pattern_images(prof: MfbmProfile) -> torch.Tensor:
    return data.first(*data.mnist("train"), prof.pattern_images)[0]


def clean_images(prof: MfbmProfile) -> tuple[torch.Tensor, torch.Tensor]:
    return data.first(*data.mnist("test"), prof.n_clean)


def attack_images(prof: MfbmProfile, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    return data.first(*data.mnist("test"), n or prof.n_attack)


def _machine_from(
    state: dict[str, torch.Tensor], *, n_visible: int, hidden_couplings: bool = True, device: str = "cpu"
) -> mfbm.BoltzmannMachine:
    """A machine from stored {W, Jh, bh} (dense couplings; masks only matter for training)."""
    W, Jh, bh = (state[k].to(F64) for k in ("W", "Jh", "bh"))
    mach = mfbm.BoltzmannMachine(n_visible, W.shape[1], init_std=0.0, hidden_couplings=hidden_couplings)
    return mach.load_couplings(W, Jh, bh).to(device)


def _couplings(mach: mfbm.BoltzmannMachine, dtype: torch.dtype = F64) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {
            "W": mach.weights().detach().cpu().to(dtype).clone(),
            "Jh": mach.hidden_couplings().detach().cpu().to(dtype).clone(),
            "bh": mach.bh.detach().cpu().to(dtype).clone(),
        }


def _history_tensors(history: list[dict[str, float]], keys: list[str]) -> dict[str, torch.Tensor]:
    return {k: torch.tensor([float(r.get(k, math.nan)) for r in history], dtype=F64) for k in keys}


# =================================================================================================
# The expansion check (MFBM-1): the reconstructed terms against exact enumeration
# =================================================================================================


def random_machine(n: int, lam: float, seed: int, field: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """A random symmetric coupling matrix (zero diagonal) scaled by ``lam`` and random fields."""
    g = torch.Generator().manual_seed(seed)
    a = torch.triu(torch.randn(n, n, dtype=F64, generator=g), 1)
    return (a + a.T) * lam, torch.randn(n, dtype=F64, generator=g) * field


EXPANSION_LAMBDAS = (0.2, 0.1, 0.05, 0.025)


@functools.lru_cache(maxsize=1)
def _expansion_checks() -> dict[str, Any]:
    # |Phi_n(m*) - ln Z| of a 7-spin machine as the couplings shrink: O(lambda^(n+1))
    J0, b0 = random_machine(7, 1.0, 5)
    errors: dict[int, list[float]] = {n: [] for n in (1, 2, 3, 4)}
    for lam in EXPANSION_LAMBDAS:
        J = J0 * lam
        log_z = mfbm.exact_log_z(J, b0).item()
        for n in errors:
            m, _, _ = mfbm.iterate(J, b0, order=n, iters=5000, tol=1e-15)
            errors[n].append(abs(mfbm.phi(m, J, b0, n).item() - log_z))
    slopes = {n: math.log2(errors[n][-2] / errors[n][-1]) for n in errors}
    # vectorised vs literal distinct-index sums (N = 6)
    J6, _ = random_machine(6, 0.5, 1)
    m6 = torch.linspace(-0.7, 0.8, 6, dtype=F64)
    d6 = 1 - m6**2
    cyc = sum(
        J6[i, j] * J6[j, k] * J6[k, h] * J6[h, i] * d6[i] * d6[j] * d6[k] * d6[h]
        for i, j, k, h in itertools.permutations(range(6), 4)
    ).item()
    tri = sum(
        J6[i, j] * J6[j, k] * J6[k, i] * d6[i] * d6[j] * d6[k] for i, j, k in itertools.permutations(range(6), 3)
    ).item()
    JD = J6 * d6[None]
    r = d6 * ((J6 * J6) @ d6)
    vec_cyc = (torch.trace(JD @ JD @ JD @ JD) - 2 * (r * r).sum() + (d6**2) @ J6**4 @ (d6**2)).item()
    vec_tri = torch.trace(JD @ JD @ JD).item()
    # the closed-form R^(n) against finite differences of Phi_n (N = 7)
    m7 = torch.linspace(-0.6, 0.7, 7, dtype=F64)
    J7, b7 = random_machine(7, 0.4, 2)
    fd_err = 0.0
    for n in (1, 2, 3, 4):
        R = mfbm.local_field(m7, J7, b7, n) - (mfbm.local_field(m7, J7, b7, n - 1) if n > 1 else b7 * 0)
        for i in range(7):
            e = torch.zeros(7, dtype=F64)
            e[i] = 1e-5
            fd = (mfbm.phi_orders(m7 + e, J7, b7, n)[n - 1] - mfbm.phi_orders(m7 - e, J7, b7, n)[n - 1]) / 2e-5
            fd_err = max(fd_err, abs(R[i].item() - fd.item()))
    ok = (
        abs(slopes[3] - 4) <= 0.5
        and abs(slopes[4] - 5) <= 0.5
        and abs(cyc - vec_cyc) < 1e-10
        and abs(tri - vec_tri) < 1e-10
        and fd_err < 2e-8
    )
    return {
        "lambdas": list(EXPANSION_LAMBDAS),
        "errors": errors,
        "slopes": slopes,
        "cycles": (cyc, vec_cyc),
        "triangles": (tri, vec_tri),
        "fd_error": fd_err,
        "ok": ok,
    }


def expansion(exp: Experiment) -> dict[str, Any]:
    """The expansion checks: ``errors[n]`` (|Phi_n - ln Z| per lambda), ``slopes[n]`` (expected
    n + 1), literal vs matrix 4-cycle and triangle sums, the largest |R - finite difference|, and
    ``ok`` (all pass). Independent of the profile; recomputed in each process (seconds)."""
    return _expansion_checks()


# =================================================================================================
# App. D and E: the 16-unit machine
# =================================================================================================

SMALL_KEYS = [
    "step",
    "D",
    "D_exact",
    "phi_free",
    "log_z_exact",
    "p1_mf",
    "p2_mf",
    "p1_exact",
    "p2_exact",
    "free_change",
    "clamped_change",
    "seconds",
]


def _train_small(exp: Experiment, *, hidden_couplings: bool) -> tuple[mfbm.BoltzmannMachine, list[dict[str, float]]]:
    """5 visible + 11 hidden trained on the two App. D patterns with the unnormalised mean-field D
    (4th-order free, 2nd-order clamped) and Adam; every ``small_log_every`` steps the exact D and
    probabilities by enumerating all 2^16 states (float64, CPU)."""
    p = exp.profile
    v = torch.tensor(SMALL_PATTERNS, dtype=F64)
    p0 = torch.full((2,), 0.5, dtype=F64)
    g = torch.Generator().manual_seed(exp.seed)
    mach = mfbm.BoltzmannMachine(5, 11, init_std=0.01, hidden_couplings=hidden_couplings, generator=g)
    idx = mfbm.visible_index(v)

    def on_log(step: int, m: mfbm.BoltzmannMachine, res: mfbm.MeanFieldResult) -> dict[str, float]:
        lp = mfbm.exact_visible_log_probs(m)
        lp_mf = res.log_p + res.log_z_used - res.phi_free  # unnormalised: exp(Phi_C - Phi_F)
        J, b = m.couplings()
        return {
            "D_exact": mfbm.exact_D(m, v, p0).item(),
            "log_z_exact": mfbm.exact_log_z(J, b).item(),
            "p1_mf": lp_mf[0].exp().item(),
            "p2_mf": lp_mf[1].exp().item(),
            "p1_exact": lp[idx[0]].exp().item(),
            "p2_exact": lp[idx[1]].exp().item(),
        }

    tr = mfbm.MachineTraining(
        steps=p.small_steps, lr=p.small_lr, log_every=p.small_log_every, mf=mean_field(p, normalise="none")
    )
    desc = "App. D machine" if hidden_couplings else "App. E RBM"
    out = mfbm.train_machine(mach, lambda s: (v, p0), tr, on_log=on_log, progress=exp.progress, desc=desc)
    return mach, out["history"]


def appendix_d(exp: Experiment) -> dict[str, Any]:
    """The App. D machine: its training ``history`` (mean-field and exact D, p1, p2, ln Z) and
    its final couplings (``machine``)."""

    def compute() -> dict[str, Any]:
        mach, hist = _train_small(exp, hidden_couplings=True)
        return {"history": _history_tensors(hist, SMALL_KEYS), "machine": _couplings(mach)}

    return exp.cached("appendix_d", Key(exp.profile), compute)


def appendix_e(exp: Experiment) -> dict[str, Any]:
    """Delta(eps) for all 32 visible states on the App. D machine and on an RBM-connected machine
    of the same size trained the same way (Figs. 8 and 9)."""

    def compute() -> dict[str, Any]:
        p = exp.profile
        states = mfbm.all_states(5)
        out: dict[str, Any] = {"train_index": mfbm.visible_index(torch.tensor(SMALL_PATTERNS, dtype=F64))}
        jh = appendix_d(exp)["machine"]
        rbm, hist = _train_small(exp, hidden_couplings=False)
        out["rbm_history"] = _history_tensors(hist, SMALL_KEYS)
        out["rbm_machine"] = _couplings(rbm)
        for name, c in (("jh", jh), ("rbm", out["rbm_machine"])):
            out[f"delta_{name}"] = mfbm.noise_response(
                c["W"], c["Jh"], c["bh"], states, p.small_eps, n_noise=p.small_noise, seed=exp.seed
            )
        return out

    return exp.cached("appendix_e", Key(exp.profile), compute)


def ratio_error(history: dict[str, torch.Tensor]) -> np.ndarray:
    """Per logged step, the relative error of the mean-field ratio p1/p2 against the exact one."""
    h = {k: v.numpy() for k, v in history.items()}
    return np.abs((h["p1_mf"] / h["p2_mf"]) / (h["p1_exact"] / h["p2_exact"]) - 1)


def small_noise_ratios(appe: dict[str, Any]) -> dict[str, np.ndarray]:
    """Delta(other 30 states) / Delta(2 training states) per epsilon, for ``jh`` and ``rbm``."""
    train_idx = appe["train_index"]
    other = torch.ones(32, dtype=torch.bool)
    other[train_idx] = False
    out = {}
    for key in ("jh", "rbm"):
        d = appe[f"delta_{key}"]
        out[key] = (d[:, other].mean(1) / d[:, train_idx].mean(1)).numpy()
    return out


# =================================================================================================
# Patch data and the machines
# =================================================================================================


def patterns4(exp: Experiment) -> dict[str, Any]:
    """The most frequent binarised 4x4 patterns, their frequencies ``p0`` and the coverage."""

    def compute() -> dict[str, Any]:
        ps = mfbm.top_patterns(pattern_images(exp.profile), k=exp.profile.n_patterns)
        return {
            "patterns": ps.patterns.to(torch.int8),
            "p0": ps.p0,
            "coverage": ps.coverage,
            "n_for_98": ps.n_for_98,
            "n_distinct": ps.n_distinct,
            "n_patches": ps.n_patches,
            "coverage_679": ps.coverage_of(679),
        }

    return exp.cached("patterns4", Key(exp.profile), compute)


def _snapshot_steps(prof: MfbmProfile, stage: int) -> tuple[int, ...]:
    """Checkpoints kept by a stage: the feature machine's stage keeps the profile's checkpoints."""
    feature_stage = 2 if staged(prof) else 1
    steps = prof.stage2_steps if stage == 2 else prof.stage1_steps
    keep = set(prof.checkpoints) if stage == feature_stage else set()
    bad = [c for c in keep if c > steps]
    if bad:
        raise ValueError(f"checkpoints {bad} exceed the {steps} training steps of stage {stage}")
    return tuple(sorted(keep | {steps}))


def stage1(exp: Experiment) -> dict[str, Any]:
    """16 visible + 32 hidden on the 679 patterns (one batch, batch-normalised D "when > 1")."""

    def compute() -> dict[str, Any]:
        p = exp.profile
        pat = patterns4(exp)
        v, p0 = pat["patterns"].to(F64), pat["p0"].to(F64)
        g = torch.Generator().manual_seed(exp.seed)
        mach = mfbm.BoltzmannMachine(16, 32, init_std=0.01, generator=g)
        keep = _snapshot_steps(p, 1)
        tr = mfbm.MachineTraining(steps=p.stage1_steps, lr=p.stage1_lr, mf=mean_field(p), log_every=1)
        out = mfbm.train_machine(
            mach, lambda s: (v, p0), tr, snapshot_steps=keep, progress=exp.progress, desc="stage 1"
        )
        hist = out["history"]
        snaps = {}
        for s in keep:
            snap = mfbm.BoltzmannMachine(16, 32, init_std=0.0)
            snap.load_state_dict(out["snapshots"][s])
            snaps[str(s)] = {**_couplings(snap), "D": torch.tensor(hist[s]["D"], dtype=F64)}
        keys = ["step", "D", "phi_free", "log_z", "sum_p", "free_change", "clamped_change", "seconds"]
        return {"history": _history_tensors(hist, keys), "snapshots": snaps}

    return exp.cached("stage1", Key(exp.profile), compute)


@functools.lru_cache(maxsize=2)
def _stage2_codes(n_images: int | None, n_examples: int, seed: int) -> torch.Tensor:
    """A fixed random sample of 8x8 patch codes (all positions) of the first ``n_images`` images."""
    images = data.first(*data.mnist("train"), n_images)[0]
    return mfbm.sample_patch_codes(images, n_examples, size=8, seed=seed)


def stage2_codes(exp: Experiment) -> torch.Tensor:
    return _stage2_codes(exp.profile.pattern_images, exp.profile.stage2_examples, exp.seed)


def _train_8x8(
    exp: Experiment, mach: mfbm.BoltzmannMachine, *, steps: int, lr: float, keep: tuple[int, ...], desc: str
) -> dict[str, Any]:
    p = exp.profile
    mach = mach.to(exp.device)
    codes = stage2_codes(exp)
    batches = mfbm.epoch_batches(codes, p.stage2_batch, size=8, seed=exp.seed, device=exp.device)
    cfg = mean_field(p)
    # a fixed batch (the first stage2_batch examples) on which D is compared across checkpoints
    ev, ev_p0 = mfbm.batch_of_codes(codes[: p.stage2_batch], 8, F64, exp.device)
    log_every = max(1, steps // 50)
    tr = mfbm.MachineTraining(steps=steps, lr=lr, mf=cfg, log_every=log_every)
    out = mfbm.train_machine(mach, batches, tr, snapshot_steps=keep, progress=exp.progress, desc=desc)
    snaps = {}
    for s in keep:
        jh_mask = (mach.jh_upper_mask + mach.jh_upper_mask.T).cpu()
        snap = mfbm.BoltzmannMachine(64, mach.n_hidden, init_std=0.0, w_mask=mach.w_mask.cpu(), jh_mask=jh_mask)
        snap.load_state_dict(out["snapshots"][s])
        snap = snap.to(exp.device)
        with torch.no_grad():
            d_eval = mfbm.mean_field_D(snap, ev, ev_p0, cfg).D.item()
        snaps[str(s)] = {**_couplings(snap, torch.float32), "D": torch.tensor(d_eval, dtype=F64)}
    keys = ["step", "D", "phi_free", "log_z", "sum_p", "free_change", "clamped_change", "free_iters", "seconds"]
    return {"history": _history_tensors(out["history"], keys), "snapshots": snaps}


def stage2(exp: Experiment) -> dict[str, Any]:
    """The staged machine: 4 copies of the final stage-1 machine + n_top top units, trained on
    batches of stage2_batch 8x8 examples (D of each snapshot on a fixed evaluation batch)."""
    if not staged(exp.profile):
        raise ValueError("stage2 runs only when the profile has stage2_steps > 0")

    def compute() -> dict[str, Any]:
        p = exp.profile
        s1 = stage1(exp)["snapshots"][str(p.stage1_steps)]
        small = _machine_from(s1, n_visible=16)
        g = torch.Generator().manual_seed(exp.seed + 1)
        big = mfbm.staged_machine(small, n_top=p.n_top, init_std=0.01, generator=g)
        keep = _snapshot_steps(p, 2)
        return _train_8x8(exp, big, steps=p.stage2_steps, lr=p.stage2_lr, keep=keep, desc="stage 2")

    return exp.cached("stage2", Key(exp.profile), compute)


def rbm(exp: Experiment) -> dict[str, Any]:
    """The RBM reference layer: 16 visible / 32 hidden on the 4x4 patterns (quick) or 64 / 128 on
    the 8x8 examples (paper), J_h = 0, trained with the same mean-field procedure."""

    def compute() -> dict[str, Any]:
        p = exp.profile
        g = torch.Generator().manual_seed(exp.seed + 2)
        if staged(p):
            mach = mfbm.BoltzmannMachine(64, p.n_top, init_std=0.01, hidden_couplings=False, generator=g)
            return _train_8x8(exp, mach, steps=p.rbm_steps, lr=p.rbm_lr, keep=(p.rbm_steps,), desc="RBM")
        pat = patterns4(exp)
        v, p0 = pat["patterns"].to(F64), pat["p0"].to(F64)
        mach = mfbm.BoltzmannMachine(16, 32, init_std=0.01, hidden_couplings=False, generator=g)
        tr = mfbm.MachineTraining(steps=p.rbm_steps, lr=p.rbm_lr, mf=mean_field(p), log_every=1)
        out = mfbm.train_machine(
            mach, lambda s: (v, p0), tr, snapshot_steps=(p.rbm_steps,), progress=exp.progress, desc="RBM"
        )
        final = {**_couplings(mach), "D": torch.tensor(out["history"][-1]["D"])}
        return {
            "history": _history_tensors(out["history"], ["step", "D", "sum_p", "seconds"]),
            "snapshots": {str(p.rbm_steps): final},
        }

    return exp.cached("rbm", Key(exp.profile), compute)


def feature_states(exp: Experiment) -> dict[int, dict[str, torch.Tensor]]:
    """The feature machine at each checkpoint: {step: {W, Jh, bh, D}}."""
    snaps = (stage2(exp) if staged(exp.profile) else stage1(exp))["snapshots"]
    return {s: snaps[str(s)] for s in exp.profile.checkpoints}


def feature_layer(
    prof: MfbmProfile, state: dict[str, torch.Tensor], *, rbm_layer: bool = False, iters: int | None = None
) -> mfbm.MeanFieldConv:
    """The frozen conv layer of a machine state: outputs = the top units (staged machine), all
    hidden units (4x4 machine, RBM)."""
    kernel = 8 if staged(prof) else 4
    nh = state["W"].shape[1]
    outputs = (nh - prof.n_top, nh) if staged(prof) and not rbm_layer else (0, nh)
    return mfbm.MeanFieldConv(
        state["W"], state["Jh"], state["bh"], kernel=kernel, iters=iters or prof.feature_iters, outputs=outputs
    )


# =================================================================================================
# Fig. 4: noise rejection of the feature machine along pre-training
# =================================================================================================


def _noise_patterns(exp: Experiment) -> tuple[torch.Tensor, torch.Tensor]:
    """``noise_patterns`` distinct training-set patterns (drawn with the data's frequencies,
    without repetition) and as many uniformly random +-1 patterns."""
    n = exp.profile.noise_patterns
    g = torch.Generator().manual_seed(exp.seed + 3)
    if staged(exp.profile):
        codes = stage2_codes(exp)
        first: list[int] = []
        seen = set()
        for c in codes[torch.randperm(len(codes), generator=g)].tolist():  # frequency-weighted order
            if c not in seen:
                seen.add(c)
                first.append(c)
                if len(first) == n:
                    break
        train = mfbm.decode(torch.tensor(first), 8, F64)
        nv = 64
    else:
        pat = patterns4(exp)
        k = min(n, len(pat["p0"]))
        pick = torch.multinomial(pat["p0"].to(F64), k, replacement=False, generator=g)
        train, nv = pat["patterns"][pick].to(F64), 16
    rand = torch.where(torch.rand(len(train), nv, generator=g) < 0.5, -1.0, 1.0).to(F64)
    return train, rand


def fig4(exp: Experiment) -> dict[str, Any]:
    """Per checkpoint: its D and Delta(eps) averaged over the training and the random patterns
    (``delta_train``, ``delta_random``: (checkpoints, eps))."""

    def compute() -> dict[str, Any]:
        p = exp.profile
        train, rand = _noise_patterns(exp)
        out: dict[str, Any] = {"D": [], "steps": [], "delta_train": [], "delta_random": []}
        for step, st in feature_states(exp).items():
            layer = feature_layer(p, st)
            W, Jh, bh = (st[k].to(F64).to(exp.device) for k in ("W", "Jh", "bh"))
            outputs = slice(*layer.outputs)
            kw = dict(n_noise=p.noise_draws, iters=p.feature_iters, outputs=outputs, seed=exp.seed)
            dt = mfbm.noise_response(W, Jh, bh, train.to(exp.device), p.noise_eps, **kw).mean(1).cpu()
            dr = mfbm.noise_response(W, Jh, bh, rand.to(exp.device), p.noise_eps, **kw).mean(1).cpu()
            out["steps"].append(step)
            out["D"].append(float(st["D"]))
            out["delta_train"].append(dt)
            out["delta_random"].append(dr)
            exp.log(f"fig4 step {step}: ratio {(dr / dt).tolist()}")
        out["delta_train"] = torch.stack(out["delta_train"])  # (checkpoints, eps)
        out["delta_random"] = torch.stack(out["delta_random"])
        return out

    return exp.cached("fig4", Key(exp.profile), compute)


def noise_ratio(f4: dict[str, Any]) -> np.ndarray:
    """Delta_r / Delta_t per checkpoint and epsilon: (checkpoints, eps)."""
    return (f4["delta_random"] / f4["delta_train"]).numpy()


# =================================================================================================
# The networks: classifier on frozen features (per checkpoint), RBM network, LeNet
# =================================================================================================


def _classifier(exp: Experiment, layer: mfbm.MeanFieldConv, label: str) -> tuple[mfbm.FeatureNet, list[dict]]:
    """The classifier on ``layer``'s frozen features of the n_train training images (features
    extracted once, kept in float16 on the training device), Adam, cross-entropy."""
    p = exp.profile
    x, y = train_images(p)

    def build() -> mfbm.Classifier:
        return mfbm.Classifier(layer.out_channels, layer.out_size())

    def train(clf: torch.nn.Module, ckpt) -> list[dict[str, float]]:
        t0 = time.perf_counter()
        feats = mfbm.extract(layer, x, device=exp.device, store=exp.device)
        exp.log(f"{label}: features {tuple(feats.shape)} in {time.perf_counter() - t0:.0f} s")
        opt = torch.optim.Adam(clf.parameters(), lr=p.clf_lr)
        hist = fit(
            clf,
            feats,
            y.to(exp.device),
            epochs=p.clf_epochs,
            batch_size=p.clf_batch,
            seed=exp.seed,
            optimizer=opt,
            checkpoint=ckpt,
            device=exp.device,
            progress=exp.progress,
            desc=label,
        )
        hist[0]["feature_seconds"] = time.perf_counter() - t0 - sum(h["seconds"] for h in hist)
        return hist

    clf, hist = exp.model(f"clf-{label}", ClassifierKey(p, label), build, train)
    return mfbm.FeatureNet(layer, clf).to(exp.device).eval(), hist


def network(exp: Experiment, label: str) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """Train or load one network (``labels(profile)``): ``(model in eval mode, history)``. The
    LeNet is the book's baseline (``baselines.trained``: Caffe LeNet, Adam) on the same images."""
    p = exp.profile
    if label not in labels(p):
        raise ValueError(f"unknown network {label!r}; valid: {', '.join(labels(p))}")
    if label == "lenet":
        return baselines.trained(exp, "lenet", p.lenet_epochs, *train_images(p))
    if label == "rbm":
        r = rbm(exp)["snapshots"][str(p.rbm_steps)]
        return _classifier(exp, feature_layer(p, r, rbm_layer=True, iters=1), "rbm")
    step = int(label.split("-")[1])
    return _classifier(exp, feature_layer(p, feature_states(exp)[step]), label)


def networks(exp: Experiment) -> dict[str, tuple[torch.nn.Module, list[dict[str, float]]]]:
    """Train or load every network: ``{label: (model, history)}`` for "mfbm-<step>" per
    checkpoint, "rbm" and "lenet"."""
    return {label: network(exp, label) for label in labels(exp.profile)}


def clean_errors(exp: Experiment) -> dict[str, float]:
    """Trains (or loads) every network, then ``{label: clean test error}`` on the n_clean first
    test images."""
    nets = networks(exp)

    def compute() -> dict[str, Any]:
        x, y = clean_images(exp.profile)
        return {k: 1.0 - accuracy(m, x, y, device=exp.device, batch_size=250) for k, (m, _) in nets.items()}

    return exp.cached("clean_errors", Key(exp.profile), compute)


# =================================================================================================
# Attacks: Fig. 3 (every network), Table 1 (the final network), beyond the paper
# =================================================================================================


def _show_index(y: torch.Tensor) -> torch.Tensor:
    """Index of the first image of each class present (Fig. 6: "the first images of each class")."""
    idx = [int(torch.nonzero(y == c)[0]) for c in range(10) if (y == c).any()]
    return torch.tensor(idx, dtype=torch.int64)


def _minimal(
    exp: Experiment, name: str, run: Callable[[torch.Tensor, torch.Tensor], Any], n: int | None = None
) -> dict:
    """Store ``run(x, y)`` (a ``DistanceResult`` of ``attacks.min_distance``) on the first ``n``
    (default n_attack) test images under ``name``, with the adversarials of the first image of
    each class (Fig. 6) and the wall time. ``run`` is called only when nothing is stored."""

    def compute() -> dict[str, Any]:
        x, y = attack_images(exp.profile, n)
        t0 = time.perf_counter()
        res = run(x, y)
        res.attack = name
        d = res.to_dict()
        show = _show_index(y)
        d["adversarials"] = res.adversarials[show].clone()
        d["show_index"] = show
        d["seconds"] = time.perf_counter() - t0
        return d

    return exp.cached(name, Key(exp.profile), compute)


def _min_distance(exp: Experiment, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, **options: Any):
    return attacks.min_distance(model, x, y, device=exp.device, seed=exp.seed, batch_size=250, **options)


def gradient_attack(exp: Experiment, label: str, *, loss: str = "ce", surrogate: bool = False) -> dict[str, Any]:
    """The paper's iterative L2 gradient attack on one network (n_attack first test images);
    ``surrogate``: gradients through the same weights unrolled only ``surrogate_iters`` times,
    success judged on the real network."""
    p = exp.profile
    name = f"grad-{label}" + ("-margin" if loss == "margin" else "") + ("-surrogate" if surrogate else "")

    def run(x: torch.Tensor, y: torch.Tensor) -> attacks.DistanceResult:
        model = network(exp, label)[0]
        grad_model = None
        if surrogate:  # does a shallower unrolling (no vanishing gradients) find closer adversarials?
            grad_model = model.with_iters(p.surrogate_iters).to(exp.device).eval()
        return _min_distance(
            exp,
            model,
            x,
            y,
            attack=ATTACK,
            step=p.grad_step,
            max_steps=p.grad_max_steps,
            loss=loss,
            grad_model=grad_model,
            refine=p.grad_refine,
        )

    return _minimal(exp, name, run)


def fig3(exp: Experiment) -> dict[str, Any]:
    """Per network: D (MFBM checkpoints; NaN otherwise), clean test error, per-image L2 distance
    of the gradient attack."""
    errs = clean_errors(exp)
    states = feature_states(exp)
    out: dict[str, Any] = {}
    for label in labels(exp.profile):
        r = gradient_attack(exp, label)
        step = int(label.split("-")[1]) if label.startswith("mfbm-") else None
        out[label] = {
            "D": float(states[step]["D"]) if step is not None else math.nan,
            "step": step,
            "clean_error": errs[label],
            "distances": r["distances"],
        }
    return out


def _boundary(exp: Experiment, label: str) -> dict[str, Any]:
    p = exp.profile

    def run(x: torch.Tensor, y: torch.Tensor) -> attacks.DistanceResult:
        model = network(exp, label)[0]
        return _min_distance(exp, model, x, y, attack="boundary", steps=p.boundary_steps, spherical_step=0.1)

    return _minimal(exp, f"boundary-{label}", run, n=p.boundary_images)


def table1(exp: Experiment) -> dict[str, dict[str, Any]]:
    """Table 1's attacks on the final network (gradient, boundary, transfer, gaussian) and the
    beyond-the-paper ones (gradient-margin, gradient-surrogate): ``{attack: stored result}``."""
    p = exp.profile
    label = final_label(p)

    def transfer(x: torch.Tensor, y: torch.Tensor) -> attacks.DistanceResult:
        nets = networks(exp)
        return _min_distance(
            exp,
            nets[label][0],
            x,
            y,
            attack="transfer",
            source=nets["lenet"][0],
            norm="l2",
            source_eps=p.transfer_eps,
            grid=p.line_grid,
        )

    def gaussian(x: torch.Tensor, y: torch.Tensor) -> attacks.DistanceResult:
        model = network(exp, label)[0]
        return _min_distance(exp, model, x, y, attack="gaussian_noise", draws=p.gaussian_draws, grid=p.line_grid)

    return {
        "gradient": gradient_attack(exp, label),
        "boundary": _boundary(exp, label),
        "transfer": _minimal(exp, f"transfer-{label}", transfer),
        "gaussian": _minimal(exp, f"gaussian-{label}", gaussian),
        # beyond the paper: a loss that does not saturate; gradients through a shallow unrolling
        "gradient-margin": gradient_attack(exp, label, loss="margin"),
        "gradient-surrogate": gradient_attack(exp, label, surrogate=True),
    }


def boundary_lenet(exp: Experiment) -> dict[str, Any]:
    """The Boundary attack on LeNet with the same budget (does it converge at this budget?)."""
    return _boundary(exp, "lenet")


def distances(result: dict[str, Any], name: str | None = None) -> attacks.DistanceResult:
    """A stored attack result as an L2 ``DistanceResult`` (mean: over the finite distances)."""
    return attacks.DistanceResult(name or "l2", "l2", result["distances"])


def mean_l2(d: torch.Tensor) -> float:
    """Mean of the finite distances (0 for misclassified clean images; inf: none found, excluded)."""
    return attacks.DistanceResult("x", "l2", d).mean()


def compound_of(results: dict[str, dict[str, Any]], names: list[str], n: int) -> attacks.DistanceResult:
    """Per image the smallest distance over ``names`` on the first n images (attacks run on fewer
    images, like Boundary, only enter where they ran)."""
    parts = []
    for k in names:
        d = results[k]["distances"]
        full = torch.full((n,), math.inf, dtype=torch.float64)
        full[: min(n, len(d))] = d[:n]
        parts.append(attacks.DistanceResult(k, "l2", full))
    return attacks.compound(*parts)


TABLE1_ATTACKS = ("gradient", "boundary", "transfer", "gaussian")


@dataclass
class Table1:
    """Table 1 read from the stored results: each attack's ``DistanceResult`` on the images it ran
    (``ours``, with ``compound`` over the first ``n_boundary`` images, where all four ran), the
    four attacks restricted to those images (``same_images``), which attack gave each compound
    distance (``compound_sources``) and how often the Gaussian line search found nothing."""

    ours: dict[str, attacks.DistanceResult]
    same_images: dict[str, attacks.DistanceResult]
    n_boundary: int
    compound_sources: dict[str, int]
    gaussian_not_found: int


def table1_summary(t1: dict[str, dict[str, Any]], prof: MfbmProfile) -> Table1:
    n_b = min(prof.boundary_images, prof.n_attack)
    comp = compound_of(t1, list(TABLE1_ATTACKS), n_b)  # images where all four ran
    ours = {k: attacks.DistanceResult(k, "l2", t1[k]["distances"]) for k in TABLE1_ATTACKS}
    ours["compound"] = comp
    same = {k: attacks.DistanceResult(k, "l2", ours[k].distances[:n_b]) for k in TABLE1_ATTACKS}
    sources = {s: comp.sources.count(s) for s in sorted(set(comp.sources))}
    not_found = int((~torch.isfinite(ours["gaussian"].distances)).sum())
    return Table1(ours, same, n_b, sources, not_found)


# =================================================================================================
# The distilled network (section 4)
# =================================================================================================


def distill(exp: Experiment) -> dict[str, Any]:
    """Regress the final network's 32 x s x s classifier activations with the 5-conv net (MSE,
    Adam), put the original FC layer back, measure the clean error and the gradient attack."""
    p = exp.profile
    if p.distill_epochs <= 0:
        raise ValueError("distill runs only when the profile has distill_epochs > 0")

    def compute() -> dict[str, Any]:
        teacher = network(exp, final_label(p))[0]
        x, _ = train_images(p)
        t0 = time.perf_counter()
        with torch.no_grad():
            feats = mfbm.extract(teacher.features, x, device=exp.device, store=exp.device)
            targets = torch.cat(
                [teacher.classifier.body(feats[i : i + 500]).to(torch.float16) for i in range(0, len(feats), 500)]
            )
            del feats
        torch.manual_seed(exp.seed)
        student = mfbm.DistilledNet(teacher.classifier.fc, kernel=teacher.features.kernel).to(exp.device)
        opt = torch.optim.Adam([q for q in student.parameters() if q.requires_grad], lr=1e-3)

        def step(model, batch, optimizer):
            optimizer.zero_grad(set_to_none=True)
            loss = F.mse_loss(model.body(batch.x), batch.y.float())
            loss.backward()
            optimizer.step()
            return {"loss": loss.item()}

        hist = fit(
            student,
            x.to(exp.device),
            targets,
            epochs=p.distill_epochs,
            batch_size=p.distill_batch,
            seed=exp.seed,
            optimizer=opt,
            step=step,
            device=exp.device,
            progress=exp.progress,
            desc="distill",
        )
        train_s = time.perf_counter() - t0
        xc, yc = clean_images(p)
        err = 1.0 - accuracy(student, xc, yc, device=exp.device)
        xa, ya = attack_images(p)
        res = _min_distance(
            exp, student, xa, ya, attack=ATTACK, step=p.grad_step, max_steps=p.grad_max_steps, refine=p.grad_refine
        )
        return {
            "clean_error": err,
            "distances": res.distances,
            "history": _history_tensors(hist, ["epoch", "loss"]),
            "train_seconds": train_s,
            "state": {k: v.cpu() for k, v in student.state_dict().items()},
        }

    return exp.cached("distill", Key(p), compute)


# =================================================================================================
# The yardstick: the book's one protocol on the three networks (beyond the paper)
# =================================================================================================


@dataclass(frozen=True)
class YardstickKey:
    """The key of a yardstick result: the protocol's settings, the zoo name and the profile that
    trained it (and sets the paper attack's steps), and the transfer source's own key."""

    protocol: protocol.ProtocolConfig
    model: str
    profile: MfbmProfile
    source: baselines.ModelKey
    version: int = VERSION


# Images the yardstick evaluates, where fewer than the protocol's own count (``n_images``): every
# 4x4 patch of the MFBM network is iterated 20 times, so a query costs about 15 LeNet queries and
# the whole suite several CPU-seconds per image; at quick it runs on the first 50 of the 200 images
# (its controls on all 200; the claims compare the three on the common first 50).
YARDSTICK_IMAGES = {("quick", "mfbm"): 50}


def yardstick_config(prof: MfbmProfile, name: str) -> protocol.ProtocolConfig:
    """The protocol's settings at ``prof`` for zoo entry ``name`` (see ``YARDSTICK_IMAGES``)."""
    n = YARDSTICK_IMAGES.get((prof.name, name))
    return protocol.ProtocolConfig.for_profile(prof.name, **({"n_images": n} if n else {}))


def transfer_source(exp: Experiment) -> tuple[baselines.ModelKey, Callable[[], torch.nn.Module]]:
    """The protocol's transfer source: the baselines chapter's ReLU MLP at the same profile (its
    ``adapter.transfer_source``): its key and a loader (called only when a result is computed)."""
    from ...experiment import start
    from ..baselines import adapter as base_adapter
    from ..baselines import experiments as base_exp

    key = base_exp.model_key(start("baselines", exp.profile.name, exp.seed, exp.device, load_only=True), "relu_mlp")
    return key, lambda: base_adapter.transfer_source(exp.profile.name, exp.device, seed=exp.seed)


def yardstick(exp: Experiment) -> dict[str, protocol.ProtocolResult]:
    """Every zoo entry of this chapter (``adapter.MODELS``) through ``protocol.evaluate`` on the
    protocol's first N test images (fewer for the MFBM network at quick: ``YARDSTICK_IMAGES``),
    with this chapter's adapters (full and shallow unrolling, the paper's attack) and transfer
    from the baselines' ReLU MLP: ``{name: ProtocolResult}``."""
    from . import adapter

    source_key, source = transfer_source(exp)
    out = {}
    for name in adapter.MODELS:
        config = yardstick_config(exp.profile, name)

        def compute(name: str = name, config: protocol.ProtocolConfig = config) -> dict[str, Any]:
            x, y = protocol.protocol_images(config)
            model = adapter.load(exp, name)
            ad = adapter.adapter(exp, name, model, config=config)
            res = protocol.evaluate(ad, x, y, config, source=source().to(exp.device), progress=exp.progress)
            return res.to_dict()

        stored = exp.cached(f"yardstick-{name}", YardstickKey(config, name, exp.profile, source_key), compute)
        out[name] = protocol.ProtocolResult.from_dict(stored)
    return out


# =================================================================================================
# The steps
# =================================================================================================


def steps(prof: MfbmProfile) -> list[Step]:
    """The chapter's steps in a valid order (stage2 only for the staged machine, distill only when
    the profile trains it)."""
    feature = "stage2" if staged(prof) else "stage1"
    out = [
        Step("expansion", expansion),
        Step("appendix_d", appendix_d),
        Step("appendix_e", appendix_e, after=("appendix_d",)),
        Step("patterns4", patterns4),
        Step("stage1", stage1, after=("patterns4",)),
    ]
    if staged(prof):
        out.append(Step("stage2", stage2, after=("stage1",), gpu=True))
    out += [
        Step("rbm", rbm, after=() if staged(prof) else ("patterns4",), gpu=staged(prof)),
        Step("fig4", fig4, after=(feature, "patterns4"), gpu=staged(prof)),
        Step("clean_errors", clean_errors, after=(feature, "rbm"), gpu=True),
        Step("fig3", fig3, after=("clean_errors",), gpu=True),
        Step("table1", table1, after=("fig3",), gpu=True),
        Step("boundary_lenet", boundary_lenet, after=("clean_errors",), gpu=True),
        Step("yardstick", yardstick, after=("clean_errors",), gpu=True),
    ]
    if prof.distill_epochs > 0:
        out.append(Step("distill", distill, after=("clean_errors",), gpu=True))
    return out
