"""The experiments of the MFBM notebook, each computed once and kept in the artifact store.

The notebook calls these functions and plots; ``python -m robustlib.models.mfbm_experiments
--profile paper --device cuda`` computes the same artifacts without Jupyter (the GPU machine), after
which the notebook only loads them. Every result is keyed by the full profile (plus ``VERSION``,
bumped when an algorithm changes); ``retrain=True`` recomputes.

Steps (``STEPS``), in dependency order:
  appendix_d   Fig. 7: the 16-unit machine trained on two patterns, mean field vs exact enumeration
  appendix_e   Figs. 8-9: noise response of that machine and of an RBM-connected one
  patterns4    the 4x4 patch statistics (679 patterns, coverage)
  stage1       the 16 + 32 machine on the 679 patterns (snapshots at the checkpoints when it is the
               feature machine, i.e. when stage2_steps == 0)
  stage2       the staged 64 + (4 x 32 + n_top) machine on 8x8 patches (snapshots at the checkpoints)
  rbm          the RBM reference layer (J_h = 0), trained the same way
  fig4         noise rejection of the feature machine at each checkpoint
  networks     classifier on each checkpoint's frozen features, RBM network, LeNet; clean error
  fig3         the paper's iterative L2 gradient attack on every network
  table1       Boundary, transfer, Gaussian noise, compound on the final network; beyond-the-paper
               attacks (margin loss, surrogate gradients)
  distill      the distilled network of section 4 (when distill_epochs > 0)

Machines are trained in float64 (cheap; the small ones always on the CPU, where they are
launch-bound anyway), feature maps and classifiers in float32, cached features in float16.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ... import attacks as A
from ... import data, profiles, store
from ..train import accuracy, cached_model, fit
from ..baselines import model as baselines
from . import model as M

NB = "mfbm"
VERSION = 1
F64 = torch.float64
SMALL_PATTERNS = ((1, -1, -1, -1, 1), (-1, -1, 1, 1, -1))  # App. D's two training states


class Ctx:
    """Profile, seed, device, an in-memory memo (each artifact loaded once per run) and timings."""

    def __init__(self, prof: profiles.MfbmProfile, seed: int = 0, device: str = "cpu", retrain: bool = False,
                 progress: bool = False):
        self.prof, self.seed, self.device, self.retrain, self.progress = prof, seed, device, retrain, progress
        self._memo: dict[Any, Any] = {}
        self.timings: dict[str, float] = {}

    @property
    def staged(self) -> bool:
        """Is the feature machine the staged 8x8 machine (paper) or the 4x4 stage-1 machine (quick)?"""
        return self.prof.stage2_steps > 0

    def cached(self, name: str, compute: Callable[[], dict[str, Any]], **extra: Any) -> dict[str, Any]:
        key = (name, repr(sorted(extra.items())))
        if key not in self._memo:
            t0 = time.perf_counter()
            self._memo[key] = store.cached(
                name, {"profile": self.prof.asdict(), "version": VERSION, **extra}, compute, notebook=NB,
                profile=self.prof.name, seed=self.seed, device=self.device, retrain=self.retrain)
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
        return self._memo[key]

    def log(self, msg: str) -> None:
        if self.progress:
            print(msg, flush=True)

    # data ------------------------------------------------------------------------------------------
    def train_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        return data.first(*data.mnist("train"), self.prof.n_train)

    def pattern_images(self) -> torch.Tensor:
        return data.first(*data.mnist("train"), self.prof.pattern_images)[0]

    def mf(self, **kw: Any) -> M.MeanFieldConfig:
        return M.MeanFieldConfig(free_iters=self.prof.free_iters, **kw)

    def clean_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        return data.first(*data.mnist("test"), self.prof.n_clean)

    def attack_images(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return data.first(*data.mnist("test"), n or self.prof.n_attack)


def _machine_from(state: dict[str, torch.Tensor], *, n_visible: int, hidden_couplings: bool = True,
                  device: str = "cpu") -> M.BoltzmannMachine:
    """A machine from stored {W, Jh, bh} (dense couplings; masks only matter for training)."""
    W, Jh, bh = (state[k].to(F64) for k in ("W", "Jh", "bh"))
    mach = M.BoltzmannMachine(n_visible, W.shape[1], init_std=0.0, hidden_couplings=hidden_couplings)
    return mach.load_couplings(W, Jh, bh).to(device)


def _couplings(mach: M.BoltzmannMachine, dtype: torch.dtype = F64) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {"W": mach.weights().detach().cpu().to(dtype).clone(), "Jh": mach.hidden_couplings().detach().cpu().to(dtype).clone(),
                "bh": mach.bh.detach().cpu().to(dtype).clone()}


def _history_tensors(history: list[dict[str, float]], keys: list[str]) -> dict[str, torch.Tensor]:
    return {k: torch.tensor([float(r.get(k, math.nan)) for r in history], dtype=F64) for k in keys}


# =================================================================================================
# App. D and E: the 16-unit machine
# =================================================================================================


def _train_small(ctx: Ctx, *, hidden_couplings: bool) -> tuple[M.BoltzmannMachine, list[dict[str, float]]]:
    """5 visible + 11 hidden trained on the two App. D patterns with the unnormalised mean-field D
    (4th-order free, 2nd-order clamped) and Adam; every ``small_log_every`` steps the exact D and
    probabilities by enumerating all 2^16 states (float64, CPU)."""
    p = ctx.prof
    v = torch.tensor(SMALL_PATTERNS, dtype=F64)
    p0 = torch.full((2,), 0.5, dtype=F64)
    g = torch.Generator().manual_seed(ctx.seed)
    mach = M.BoltzmannMachine(5, 11, init_std=0.01, hidden_couplings=hidden_couplings, generator=g)
    idx = M.visible_index(v)

    def on_log(step: int, m: M.BoltzmannMachine, res: M.MeanFieldResult) -> dict[str, float]:
        lp = M.exact_visible_log_probs(m)
        lp_mf = res.log_p + res.log_z_used - res.phi_free  # unnormalised: exp(Phi_C - Phi_F)
        J, b = m.couplings()
        return {"D_exact": M.exact_D(m, v, p0).item(), "log_z_exact": M.exact_log_z(J, b).item(),
                "p1_mf": lp_mf[0].exp().item(), "p2_mf": lp_mf[1].exp().item(),
                "p1_exact": lp[idx[0]].exp().item(), "p2_exact": lp[idx[1]].exp().item()}

    tr = M.MachineTraining(steps=p.small_steps, lr=p.small_lr, log_every=p.small_log_every,
                           mf=ctx.mf(normalise="none"))
    out = M.train_machine(mach, lambda s: (v, p0), tr, on_log=on_log, progress=ctx.progress,
                          desc="App. D machine" if hidden_couplings else "App. E RBM")
    return mach, out["history"]


SMALL_KEYS = ["step", "D", "D_exact", "phi_free", "log_z_exact", "p1_mf", "p2_mf", "p1_exact", "p2_exact",
              "free_change", "clamped_change", "seconds"]


def appendix_d(ctx: Ctx) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        mach, hist = _train_small(ctx, hidden_couplings=True)
        return {"history": _history_tensors(hist, SMALL_KEYS), "machine": _couplings(mach)}

    return ctx.cached("appendix_d", compute)


def appendix_e(ctx: Ctx) -> dict[str, Any]:
    """Delta(eps) for all 32 visible states on the App. D machine and on an RBM-connected machine
    of the same size trained the same way (Figs. 8 and 9)."""

    def compute() -> dict[str, Any]:
        p = ctx.prof
        states = M.all_states(5)
        out: dict[str, Any] = {"train_index": M.visible_index(torch.tensor(SMALL_PATTERNS, dtype=F64))}
        jh = appendix_d(ctx)["machine"]
        rbm, hist = _train_small(ctx, hidden_couplings=False)
        out["rbm_history"] = _history_tensors(hist, SMALL_KEYS)
        out["rbm_machine"] = _couplings(rbm)
        for name, c in (("jh", jh), ("rbm", out["rbm_machine"])):
            out[f"delta_{name}"] = M.noise_response(c["W"], c["Jh"], c["bh"], states, p.small_eps,
                                                    n_noise=p.small_noise, seed=ctx.seed)
        return out

    return ctx.cached("appendix_e", compute)


# =================================================================================================
# Patch data and the machines
# =================================================================================================


def patterns4(ctx: Ctx) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        ps = M.top_patterns(ctx.pattern_images(), k=ctx.prof.n_patterns)
        return {"patterns": ps.patterns.to(torch.int8), "p0": ps.p0, "coverage": ps.coverage,
                "n_for_98": ps.n_for_98, "n_distinct": ps.n_distinct, "n_patches": ps.n_patches,
                "coverage_679": ps.coverage_of(679)}

    return ctx.cached("patterns4", compute)


def _snapshot_steps(ctx: Ctx, stage: int) -> tuple[int, ...]:
    """Checkpoints kept by a stage: the feature machine's stage keeps the profile's checkpoints."""
    feature_stage = 2 if ctx.staged else 1
    steps = ctx.prof.stage2_steps if stage == 2 else ctx.prof.stage1_steps
    keep = set(ctx.prof.checkpoints) if stage == feature_stage else set()
    bad = [c for c in keep if c > steps]
    if bad:
        raise ValueError(f"checkpoints {bad} exceed the {steps} training steps of stage {stage}")
    return tuple(sorted(keep | {steps}))


def stage1(ctx: Ctx) -> dict[str, Any]:
    """16 visible + 32 hidden on the 679 patterns (one batch, batch-normalised D "when>1")."""

    def compute() -> dict[str, Any]:
        p = ctx.prof
        pat = patterns4(ctx)
        v, p0 = pat["patterns"].to(F64), pat["p0"].to(F64)
        g = torch.Generator().manual_seed(ctx.seed)
        mach = M.BoltzmannMachine(16, 32, init_std=0.01, generator=g)
        keep = _snapshot_steps(ctx, 1)
        out = M.train_machine(mach, lambda s: (v, p0), M.MachineTraining(steps=p.stage1_steps, lr=p.stage1_lr,
                              mf=ctx.mf(), log_every=1), snapshot_steps=keep, progress=ctx.progress, desc="stage 1")
        hist = out["history"]
        snaps = {}
        for s in keep:
            snap = M.BoltzmannMachine(16, 32, init_std=0.0)
            snap.load_state_dict(out["snapshots"][s])
            snaps[str(s)] = {**_couplings(snap), "D": torch.tensor(hist[s]["D"], dtype=F64)}
        return {"history": _history_tensors(hist, ["step", "D", "phi_free", "log_z", "sum_p", "free_change",
                                                   "clamped_change", "seconds"]),
                "snapshots": snaps}

    return ctx.cached("stage1", compute)


def _stage2_codes(ctx: Ctx) -> torch.Tensor:
    key = ("stage2_codes",)
    if key not in ctx._memo:
        ctx._memo[key] = M.sample_patch_codes(ctx.pattern_images(), ctx.prof.stage2_examples, size=8, seed=ctx.seed)
    return ctx._memo[key]


def _eval_batch(ctx: Ctx) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed batch (the first stage2_batch examples) on which D is compared across checkpoints."""
    return M.batch_of_codes(_stage2_codes(ctx)[:ctx.prof.stage2_batch], 8, F64, ctx.device)


def _train_8x8(ctx: Ctx, mach: M.BoltzmannMachine, *, steps: int, lr: float, keep: tuple[int, ...], desc: str,
               ) -> dict[str, Any]:
    p = ctx.prof
    mach = mach.to(ctx.device)
    batches = M.epoch_batches(_stage2_codes(ctx), p.stage2_batch, size=8, seed=ctx.seed, device=ctx.device)
    cfg = ctx.mf()
    ev, ev_p0 = _eval_batch(ctx)
    log_every = max(1, steps // 50)
    out = M.train_machine(mach, batches, M.MachineTraining(steps=steps, lr=lr, mf=cfg, log_every=log_every),
                          snapshot_steps=keep, progress=ctx.progress, desc=desc)
    snaps = {}
    for s in keep:
        snap = M.BoltzmannMachine(64, mach.n_hidden, init_std=0.0, w_mask=mach.w_mask.cpu(),
                                  jh_mask=(mach.jh_upper_mask + mach.jh_upper_mask.T).cpu())
        snap.load_state_dict(out["snapshots"][s])
        snap = snap.to(ctx.device)
        with torch.no_grad():
            d_eval = M.mean_field_D(snap, ev, ev_p0, cfg).D.item()
        snaps[str(s)] = {**_couplings(snap, torch.float32), "D": torch.tensor(d_eval, dtype=F64)}
    hist = out["history"]
    return {"history": _history_tensors(hist, ["step", "D", "phi_free", "log_z", "sum_p", "free_change",
                                               "clamped_change", "free_iters", "seconds"]),
            "snapshots": snaps}


def stage2(ctx: Ctx) -> dict[str, Any]:
    """The staged machine: 4 copies of the final stage-1 machine + n_top top units, trained on
    batches of stage2_batch 8x8 examples (D of each snapshot on a fixed evaluation batch)."""
    if not ctx.staged:
        raise ValueError("stage2 runs only when the profile has stage2_steps > 0")

    def compute() -> dict[str, Any]:
        p = ctx.prof
        s1 = stage1(ctx)["snapshots"][str(p.stage1_steps)]
        small = _machine_from(s1, n_visible=16)
        g = torch.Generator().manual_seed(ctx.seed + 1)
        big = M.staged_machine(small, n_top=p.n_top, init_std=0.01, generator=g)
        return _train_8x8(ctx, big, steps=p.stage2_steps, lr=p.stage2_lr, keep=_snapshot_steps(ctx, 2),
                          desc="stage 2")

    return ctx.cached("stage2", compute)


def rbm(ctx: Ctx) -> dict[str, Any]:
    """The RBM reference layer: 16 visible / 32 hidden on the 4x4 patterns (quick) or 64 / 128 on
    the 8x8 examples (paper), J_h = 0, trained with the same mean-field procedure."""

    def compute() -> dict[str, Any]:
        p = ctx.prof
        g = torch.Generator().manual_seed(ctx.seed + 2)
        if ctx.staged:
            mach = M.BoltzmannMachine(64, p.n_top, init_std=0.01, hidden_couplings=False, generator=g)
            return _train_8x8(ctx, mach, steps=p.rbm_steps, lr=p.rbm_lr, keep=(p.rbm_steps,), desc="RBM")
        pat = patterns4(ctx)
        v, p0 = pat["patterns"].to(F64), pat["p0"].to(F64)
        mach = M.BoltzmannMachine(16, 32, init_std=0.01, hidden_couplings=False, generator=g)
        out = M.train_machine(mach, lambda s: (v, p0), M.MachineTraining(steps=p.rbm_steps, lr=p.rbm_lr,
                              mf=ctx.mf(), log_every=1), snapshot_steps=(p.rbm_steps,), progress=ctx.progress,
                              desc="RBM")
        return {"history": _history_tensors(out["history"], ["step", "D", "sum_p", "seconds"]),
                "snapshots": {str(p.rbm_steps): {**_couplings(mach), "D": torch.tensor(out["history"][-1]["D"])}}}

    return ctx.cached("rbm", compute)


def feature_states(ctx: Ctx) -> dict[int, dict[str, torch.Tensor]]:
    """The feature machine at each checkpoint: {step: {W, Jh, bh, D}}."""
    snaps = (stage2(ctx) if ctx.staged else stage1(ctx))["snapshots"]
    return {s: snaps[str(s)] for s in ctx.prof.checkpoints}


def feature_layer(ctx: Ctx, state: dict[str, torch.Tensor], *, rbm_layer: bool = False,
                  iters: int | None = None) -> M.MeanFieldConv:
    """The frozen conv layer of a machine state: outputs = the top units (staged machine), all
    hidden units (4x4 machine, RBM)."""
    kernel = 8 if ctx.staged else 4
    nh = state["W"].shape[1]
    outputs = (nh - ctx.prof.n_top, nh) if ctx.staged and not rbm_layer else (0, nh)
    return M.MeanFieldConv(state["W"], state["Jh"], state["bh"], kernel=kernel,
                           iters=iters or ctx.prof.feature_iters, outputs=outputs)


# =================================================================================================
# Fig. 4: noise rejection of the feature machine along pre-training
# =================================================================================================


def _noise_patterns(ctx: Ctx) -> tuple[torch.Tensor, torch.Tensor]:
    """``noise_patterns`` distinct training-set patterns (drawn with the data's frequencies,
    without repetition) and as many uniformly random +-1 patterns."""
    n = ctx.prof.noise_patterns
    g = torch.Generator().manual_seed(ctx.seed + 3)
    if ctx.staged:
        codes = _stage2_codes(ctx)
        first: list[int] = []
        seen = set()
        for c in codes[torch.randperm(len(codes), generator=g)].tolist():  # frequency-weighted order
            if c not in seen:
                seen.add(c)
                first.append(c)
                if len(first) == n:
                    break
        train = M.decode(torch.tensor(first), 8, F64)
        nv = 64
    else:
        pat = patterns4(ctx)
        k = min(n, len(pat["p0"]))
        pick = torch.multinomial(pat["p0"].to(F64), k, replacement=False, generator=g)
        train, nv = pat["patterns"][pick].to(F64), 16
    rand = torch.where(torch.rand(len(train), nv, generator=g) < 0.5, -1.0, 1.0).to(F64)
    return train, rand


def fig4(ctx: Ctx) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        p = ctx.prof
        train, rand = _noise_patterns(ctx)
        out: dict[str, Any] = {"D": [], "steps": [], "delta_train": [], "delta_random": []}
        for step, st in feature_states(ctx).items():
            layer = feature_layer(ctx, st)
            W, Jh, bh = (st[k].to(F64).to(ctx.device) for k in ("W", "Jh", "bh"))
            outputs = slice(*layer.outputs)
            kw = dict(n_noise=p.noise_draws, iters=p.feature_iters, outputs=outputs, seed=ctx.seed)
            dt = M.noise_response(W, Jh, bh, train.to(ctx.device), p.noise_eps, **kw).mean(1).cpu()
            dr = M.noise_response(W, Jh, bh, rand.to(ctx.device), p.noise_eps, **kw).mean(1).cpu()
            out["steps"].append(step)
            out["D"].append(float(st["D"]))
            out["delta_train"].append(dt)
            out["delta_random"].append(dr)
            ctx.log(f"fig4 step {step}: ratio {(dr / dt).tolist()}")
        out["delta_train"] = torch.stack(out["delta_train"])  # (checkpoints, eps)
        out["delta_random"] = torch.stack(out["delta_random"])
        return out

    return ctx.cached("fig4", compute)


# =================================================================================================
# The networks: classifier on frozen features (per checkpoint), RBM network, LeNet
# =================================================================================================


def _train_classifier(ctx: Ctx, layer: M.MeanFieldConv, label: str) -> tuple[M.FeatureNet, list[dict[str, float]]]:
    """The classifier on ``layer``'s frozen features of the n_train training images (features
    extracted once, kept in float16 on the training device), Adam, cross-entropy."""
    p = ctx.prof
    x, y = ctx.train_images()

    def build() -> M.Classifier:
        return M.Classifier(layer.out_channels, layer.out_size())

    def train_fn(clf: torch.nn.Module, ckpt) -> list[dict[str, float]]:
        t0 = time.perf_counter()
        feats = M.extract(layer, x, device=ctx.device, store=ctx.device)
        ctx.log(f"{label}: features {tuple(feats.shape)} in {time.perf_counter() - t0:.0f} s")
        opt = torch.optim.Adam(clf.parameters(), lr=p.clf_lr)
        hist = fit(clf, feats, y.to(ctx.device), epochs=p.clf_epochs, batch_size=p.clf_batch, seed=ctx.seed,
                   optimizer=opt, checkpoint=ckpt, device=ctx.device, progress=ctx.progress, desc=label)
        hist[0]["feature_seconds"] = time.perf_counter() - t0 - sum(h["seconds"] for h in hist)
        return hist

    cfg = {"profile": ctx.prof.asdict(), "version": VERSION, "layer": label}
    clf, hist = cached_model(f"clf-{label}", cfg, build, train_fn, notebook=NB, profile=p.name, seed=ctx.seed,
                             device=ctx.device, retrain=ctx.retrain)
    return M.FeatureNet(layer, clf).to(ctx.device).eval(), hist


def networks(ctx: Ctx) -> dict[str, tuple[torch.nn.Module, list[dict[str, float]]]]:
    """{label: (model, history)}: "mfbm-<step>" per checkpoint, "rbm", "lenet"."""
    key = ("networks",)
    if key in ctx._memo:
        return ctx._memo[key]
    nets: dict[str, tuple[torch.nn.Module, list[dict[str, float]]]] = {}
    t0 = time.perf_counter()
    for step, st in feature_states(ctx).items():
        nets[f"mfbm-{step}"] = _train_classifier(ctx, feature_layer(ctx, st), f"mfbm-{step}")
    r = rbm(ctx)["snapshots"][str(ctx.prof.rbm_steps)]
    nets["rbm"] = _train_classifier(ctx, feature_layer(ctx, r, rbm_layer=True, iters=1), "rbm")
    x, y = ctx.train_images()
    lenet, hist = baselines.train_cached("lenet", ctx.prof.lenet_epochs, x, y, notebook=NB, profile=ctx.prof.name,
                                         seed=ctx.seed, device=ctx.device, retrain=ctx.retrain,
                                         progress=ctx.progress)
    nets["lenet"] = (lenet.to(ctx.device).eval(), hist)
    ctx.timings["networks"] = ctx.timings.get("networks", 0.0) + time.perf_counter() - t0
    ctx._memo[key] = nets
    return nets


def final_label(ctx: Ctx) -> str:
    return f"mfbm-{ctx.prof.checkpoints[-1]}"


def clean_errors(ctx: Ctx) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        x, y = ctx.clean_images()
        return {k: 1.0 - accuracy(m, x, y, device=ctx.device, batch_size=250) for k, (m, _) in networks(ctx).items()}

    return ctx.cached("clean_errors", compute)


# =================================================================================================
# Attacks: Fig. 3 (every network), Table 1 (the final network), beyond the paper
# =================================================================================================

N_SHOW = 10  # adversarials kept per result: the first test image of each class (Fig. 6)


def _show_index(y: torch.Tensor) -> torch.Tensor:
    """Index of the first image of each class present (Fig. 6: "the first images of each class")."""
    idx = [int(torch.nonzero(y == c)[0]) for c in range(10) if (y == c).any()]
    return torch.tensor(idx, dtype=torch.int64)


def _keep(res: A.DistanceResult, y: torch.Tensor, seconds: float) -> dict[str, Any]:
    d = res.to_dict()
    show = _show_index(y)
    d["adversarials"] = res.adversarials[show].clone() if res.adversarials is not None else None
    d["show_index"] = show
    d["seconds"] = seconds
    if d["adversarials"] is None:
        del d["adversarials"]
    return d


def _result(d: dict[str, Any]) -> A.DistanceResult:
    return A.DistanceResult(d["attack"], d["norm"], d["distances"], None, d.get("sources"))


def gradient_attack(ctx: Ctx, label: str, *, loss: str = "ce", surrogate: bool = False) -> dict[str, Any]:
    """The paper's iterative L2 gradient attack on one network (n_attack first test images)."""
    p = ctx.prof
    name = f"grad-{label}" + ("-margin" if loss == "margin" else "") + ("-surrogate" if surrogate else "")

    def compute() -> dict[str, Any]:
        model = networks(ctx)[label][0]
        grad_model = None
        if surrogate:  # the same weights, a shallower unrolling: do vanishing gradients hide adversarials?
            grad_model = M.FeatureNet(model.features.with_iters(p.surrogate_iters), model.classifier)
            grad_model = grad_model.to(ctx.device).eval()
        x, y = ctx.attack_images()
        t0 = time.perf_counter()
        res = M.iterative_l2(model, x, y, step=p.grad_step, max_steps=p.grad_max_steps, loss=loss,
                             grad_model=grad_model, refine=p.grad_refine, device=ctx.device, name=name)
        return _keep(res, y, time.perf_counter() - t0)

    return ctx.cached(name, compute)


def fig3(ctx: Ctx) -> dict[str, Any]:
    """Per network: D (MFBM checkpoints), clean test error, per-image L2 of the gradient attack."""
    errs = clean_errors(ctx)
    out: dict[str, Any] = {}
    states = feature_states(ctx)
    for label in networks(ctx):
        r = gradient_attack(ctx, label)
        step = int(label.split("-")[1]) if label.startswith("mfbm-") else None
        out[label] = {"D": float(states[step]["D"]) if step is not None else math.nan, "step": step,
                      "clean_error": errs[label], "distances": r["distances"]}
    return out


def _minimal(ctx: Ctx, name: str, run: Callable[[torch.Tensor, torch.Tensor], A.DistanceResult],
             n: int | None = None) -> dict[str, Any]:
    def compute() -> dict[str, Any]:
        x, y = ctx.attack_images(n)
        t0 = time.perf_counter()
        res = run(x, y)
        return _keep(res, y, time.perf_counter() - t0)

    return ctx.cached(name, compute)


def table1(ctx: Ctx) -> dict[str, dict[str, Any]]:
    """Table 1's four attacks on the final network (+ compound), and beyond-the-paper attacks."""
    p = ctx.prof
    label = final_label(ctx)
    nets = networks(ctx)
    model, lenet = nets[label][0], nets["lenet"][0]
    dev = ctx.device
    res: dict[str, dict[str, Any]] = {}
    res["gradient"] = gradient_attack(ctx, label)
    res["boundary"] = _minimal(ctx, f"boundary-{label}", lambda x, y: A.min_distance(
        model, x, y, attack="boundary", steps=p.boundary_steps, spherical_step=0.1, device=dev, seed=ctx.seed,
        batch_size=250), n=p.boundary_images)
    res["transfer"] = _minimal(ctx, f"transfer-{label}", lambda x, y: A.min_distance(
        model, x, y, attack="transfer", source=lenet, norm="l2", source_eps=p.transfer_eps, grid=p.line_grid,
        device=dev, seed=ctx.seed, batch_size=250))
    res["gaussian"] = _minimal(ctx, f"gaussian-{label}", lambda x, y: A.min_distance(
        model, x, y, attack="gaussian_noise", draws=p.gaussian_draws, grid=p.line_grid, device=dev, seed=ctx.seed,
        batch_size=250))
    # beyond the paper: a loss that does not saturate; gradients through a shallow unrolling
    res["gradient-margin"] = gradient_attack(ctx, label, loss="margin")
    res["gradient-surrogate"] = gradient_attack(ctx, label, surrogate=True)
    return res


def boundary_on(ctx: Ctx, label: str) -> dict[str, Any]:
    """The Boundary attack on another network (LeNet, for comparison in Table 1's discussion)."""
    p = ctx.prof
    model = networks(ctx)[label][0]
    return _minimal(ctx, f"boundary-{label}", lambda x, y: A.min_distance(
        model, x, y, attack="boundary", steps=p.boundary_steps, spherical_step=0.1, device=ctx.device,
        seed=ctx.seed, batch_size=250), n=p.boundary_images)


def compound_of(results: dict[str, dict[str, Any]], names: list[str], n: int) -> A.DistanceResult:
    """Per image the smallest distance over ``names`` on the first n images (attacks run on fewer
    images, like Boundary, only enter where they ran)."""
    parts = []
    for k in names:
        d = results[k]["distances"]
        full = torch.full((n,), math.inf, dtype=torch.float64)
        full[:min(n, len(d))] = d[:n]
        parts.append(A.DistanceResult(k, "l2", full))
    return A.compound(*parts)


# =================================================================================================
# The distilled network (section 4)
# =================================================================================================


def distill(ctx: Ctx) -> dict[str, Any]:
    """Regress the final network's 32 x s x s classifier activations with the 5-conv net (MSE,
    Adam), put the original FC layer back, measure the clean error and the gradient attack."""
    p = ctx.prof
    if p.distill_epochs <= 0:
        raise ValueError("distill runs only when the profile has distill_epochs > 0")

    def compute() -> dict[str, Any]:
        teacher = networks(ctx)[final_label(ctx)][0]
        x, _ = ctx.train_images()
        t0 = time.perf_counter()
        with torch.no_grad():
            feats = M.extract(teacher.features, x, device=ctx.device, store=ctx.device)
            targets = torch.cat([teacher.classifier.body(feats[i:i + 500]).to(torch.float16)
                                 for i in range(0, len(feats), 500)])
            del feats
        torch.manual_seed(ctx.seed)
        student = M.DistilledNet(teacher.classifier.fc, kernel=teacher.features.kernel).to(ctx.device)
        opt = torch.optim.Adam([q for q in student.parameters() if q.requires_grad], lr=1e-3)

        def step(model, batch, optimizer):
            optimizer.zero_grad(set_to_none=True)
            loss = F.mse_loss(model.body(batch.x), batch.y.float())
            loss.backward()
            optimizer.step()
            return {"loss": loss.item()}

        hist = fit(student, x.to(ctx.device), targets, epochs=p.distill_epochs, batch_size=p.distill_batch,
                   seed=ctx.seed, optimizer=opt, step=step, device=ctx.device, progress=ctx.progress,
                   desc="distill")
        train_s = time.perf_counter() - t0
        xc, yc = ctx.clean_images()
        err = 1.0 - accuracy(student, xc, yc, device=ctx.device)
        xa, ya = ctx.attack_images()
        res = M.iterative_l2(student, xa, ya, step=p.grad_step, max_steps=p.grad_max_steps, refine=p.grad_refine,
                             device=ctx.device, name="grad-distilled")
        return {"clean_error": err, "distances": res.distances, "history": _history_tensors(hist, ["epoch", "loss"]),
                "train_seconds": train_s, "state": {k: v.cpu() for k, v in student.state_dict().items()}}

    return ctx.cached("distill", compute)


# =================================================================================================
# Headless entry point
# =================================================================================================

STEPS: dict[str, Callable[[Ctx], Any]] = {
    "appendix_d": appendix_d, "appendix_e": appendix_e, "patterns4": patterns4, "stage1": stage1,
    "stage2": stage2, "rbm": rbm, "fig4": fig4, "networks": lambda c: (networks(c), clean_errors(c)),
    "fig3": fig3, "table1": lambda c: (table1(c), boundary_on(c, "lenet")), "distill": distill,
}


def run_all(ctx: Ctx, only: list[str] | None = None) -> dict[str, float]:
    """Compute every artifact of the profile (the notebook then only loads them)."""
    names = only or [s for s in STEPS if (s != "stage2" or ctx.staged) and (s != "distill" or ctx.prof.distill_epochs)]
    unknown = set(names) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown step(s) {sorted(unknown)}; valid: {', '.join(STEPS)}")
    walls = {}
    for s in names:
        t0 = time.perf_counter()
        STEPS[s](ctx)
        walls[s] = time.perf_counter() - t0
        print(f"[mfbm] {s}: {walls[s]:.1f} s", flush=True)
    return walls


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Compute the MFBM notebook's artifacts without Jupyter.")
    ap.add_argument("--profile", default="paper", choices=profiles.PROFILE_NAMES)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--only", nargs="*", help=f"steps to run (default all): {', '.join(STEPS)}")
    args = ap.parse_args(argv)
    prof, dev = profiles.setup(NB, args.profile, args.seed, args.device)
    ctx = Ctx(prof, args.seed, dev, args.retrain, progress=True)
    t0 = time.perf_counter()
    walls = run_all(ctx, args.only)
    print(f"[mfbm] total {time.perf_counter() - t0:.1f} s on {store.device_name(dev)}: {walls}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
