"""Dense Associative Memory (Krotov & Hopfield 2016, 2018) for MNIST, in float64.

The model reads top to bottom:

1. ``rectified_power``        F_n(x / T) = max(x / T, 0)^n  (the energy function, temperature folded in)
2. ``DAM``                    memories xi (K, 784 + 10); one update of the label neurons from the
                              all-off state (eq. 2.1); ``forward`` takes images in [0, 1] like every
                              robustlib model and maps them to the paper's [-1, 1] pixels inside
3. ``objective``              C = sum (t - Y)^(2m)  (eq. 2.3 / 3.1)
4. ``update_direction``       the closed-form negative gradient of C w.r.t. xi (Krotov's rule, up to
                              a positive constant), and ``KrotovMomentum``: momentum, per-memory
                              max-abs normalisation, learning-rate decay, clipping to [-1, 1]
5. ``train_dam``              the training loop (robustlib.train.fit with a custom step) including
                              the temperature ramp
6. pixel-space dynamics       ``descend`` (eq. 3.2, normalised gradient steps) for rubbish images
                              and second-choice (decision-boundary) images, batched with a
                              per-image stopping rule; ``fgsm_pm1`` and ``fgsm`` (the
                              registered attack "dam_fgsm"); confidence and calibration
7. ``tune_temperature``       validation-split grid search of T (the paper does not state T, m
                              for n = 2, 3, 30)

Why float64: with m = 30 the factor (t - Y)^59 underflows to exactly 0 in float32 for confident
images, and tanh saturates to exactly +-1; both silently zero the gradient (gradient masking).

Scales: the paper's pixels are v = 2 p - 1 in [-1, 1]. Every ``*_pm1`` function works in that
space, and its epsilons/step sizes are in [-1, 1] units (twice the [0, 1] units of the other
notebooks).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ... import attacks

N_PIXELS = 784
N_CLASSES = 10
DTYPE = torch.float64


# --- 1. the energy function ----------------------------------------------------------------------


def ipow(x: torch.Tensor, k: int) -> torch.Tensor:
    """x^k for a non-negative integer k (a new tensor).

    On the CPU ``torch.pow`` with an integer exponent calls the scalar ``std::pow`` per element;
    repeated squaring (~log2(k) in-place products) is ~1.4x faster with one or two threads
    (bench/bench_dam.py). This needs OpenMP's passive waiting (robustlib sets
    ``OMP_WAIT_POLICY=PASSIVE`` before torch loads): with spinning threads on a loaded machine each
    extra pass pays a barrier and squaring was 3x slower than ``torch.pow``. Exact up to rounding
    (a few ulp). Autograd (in-place products cannot be differentiated) and the GPU use ``torch.pow``.
    """
    if k < 0:
        raise ValueError(f"ipow needs a non-negative integer exponent, got {k}")
    if x.is_cuda or k in (0, 2, 3) or k > 64 or (torch.is_grad_enabled() and x.requires_grad):
        return x.pow(k)
    return _pow_by_squaring(x, k)


def _pow_by_squaring(x: torch.Tensor, k: int) -> torch.Tensor:
    if k == 0:
        return torch.ones_like(x)
    if k == 1:
        return x.clone()
    out: torch.Tensor | None = None
    base = x
    while k:
        if k & 1:
            out = base.clone() if out is None else out.mul_(base)
        k >>= 1
        if k:
            base = base * base if base is x else base.mul_(base)
    assert out is not None
    return out


def rectified_power(x: torch.Tensor, n: int, T: float = 1.0) -> torch.Tensor:
    """F_n(x / T) = max(x / T, 0)^n, which equals beta * F_n(x) with beta = 1 / T^n.

    F_n is homogeneous of degree n, so folding the temperature into the argument is exact and keeps
    numbers near 1 (x^30 of an overlap of 500 would be 1e81; (500 / 540)^30 is 0.1).
    """
    return ipow(torch.relu(x / T), n)


# --- 2. the model --------------------------------------------------------------------------------


@dataclass
class DAMConfig:
    """One DAM model and its training recipe ([C-DAM] defaults: Krotov's official notebook)."""

    n: int = 20  # power of the interaction vertex
    m: int = 30  # power of the objective (t - Y)^(2m)
    K: int = 2000  # memories (hidden units)
    T: float = 540.0  # final temperature (overlap scale); beta = 1 / T^n
    T_in: float | None = None  # temperature at epoch 0 of the linear ramp (None: no ramp, T)
    ramp_epochs: int = 200  # length of the temperature ramp
    epochs: int = 300
    batch_size: int = 1000
    eps0: float = 0.04  # initial learning rate: the largest change of any memory per step
    decay: float = 0.998  # learning rate eps0 * decay^epoch
    momentum: float = 0.6
    init_mean: float = -0.3  # xi ~ N(init_mean, init_std), visible and label parts
    init_std: float = 0.3

    def __post_init__(self) -> None:
        for name in ("n", "m", "K", "epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"DAMConfig.{name} must be a positive integer, got {v!r}")
        if self.n < 2:
            raise ValueError(f"DAMConfig.n must be >= 2 (n = 1 has a constant gradient), got {self.n}")
        for name in ("T", "eps0"):
            if not getattr(self, name) > 0:
                raise ValueError(f"DAMConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.T_in is not None and not self.T_in > 0:
            raise ValueError(f"DAMConfig.T_in must be > 0 or None, got {self.T_in!r}")
        if not 0 <= self.momentum < 1 or not 0 < self.decay <= 1:
            raise ValueError(f"need 0 <= momentum < 1 and 0 < decay <= 1, got {self.momentum}, {self.decay}")

    def temperature(self, epoch: int) -> float:
        """Linear ramp from T_in to T over ``ramp_epochs`` epochs, then T ([C-DAM])."""
        if self.T_in is None or epoch >= self.ramp_epochs:
            return self.T
        return self.T_in + (self.T - self.T_in) * epoch / self.ramp_epochs

    def learning_rate(self, epoch: int) -> float:
        return self.eps0 * self.decay**epoch

    def final_temperature(self) -> float:
        """The temperature of the trained model (the ramp may be cut short by few epochs)."""
        return self.temperature(self.epochs - 1) if self.epochs < self.ramp_epochs else self.T


class DAM(nn.Module):
    """Dense associative memory classifier: K memories xi^mu = (visible (784), label (10)).

    Classification neurons start off (x_gamma = -1). Updating neuron alpha once gives (eq. 2.1)

        Y_alpha = tanh( sum_mu [ F_n(xi^mu . sigma^{on,alpha}) - F_n(xi^mu . sigma^{off}) ] / T^n )

    with sigma^{off} = (v, -1, ..., -1) and sigma^{on,alpha} = sigma^{off} with +1 at alpha. Both
    overlaps share h_mu = xi^mu_vis . v - sum_gamma xi^mu_gamma, and the "on" one is h_mu + 2 xi^mu_alpha:
    one (B, 784) x (784, K) product per batch, then O(K * 10) per image.
    """

    def __init__(self, n: int = 20, K: int = 2000, T: float = 540.0, m: int = 30):
        super().__init__()
        if n < 2 or K < 1 or not T > 0 or m < 1:
            raise ValueError(f"DAM needs n >= 2, K >= 1, T > 0, m >= 1; got n={n}, K={K}, T={T}, m={m}")
        self.n, self.K, self.T, self.m = int(n), int(K), float(T), int(m)
        # Weights live in [-1, 1] (clipped by the update); their scale is absorbed into T.
        self.register_buffer("xi", torch.zeros(self.K, N_PIXELS + N_CLASSES, dtype=DTYPE))

    @classmethod
    def from_config(cls, cfg: DAMConfig, generator: torch.Generator | None = None) -> DAM:
        model = cls(cfg.n, cfg.K, cfg.final_temperature(), cfg.m)
        with torch.no_grad():
            model.xi.normal_(cfg.init_mean, cfg.init_std, generator=generator)
        return model

    def extra_repr(self) -> str:
        return f"n={self.n}, K={self.K}, T={self.T:g}, m={self.m}"

    # shapes: v (B, 784) in [-1, 1]; s, Y (B, 10)
    def scores_pm1(self, v: torch.Tensor, T: float | None = None) -> torch.Tensor:
        """Pre-tanh scores s_alpha = sum_mu [F_n(on) - F_n(h)] / T^n, (B, 10); v in [-1, 1]."""
        T = self.T if T is None else T
        v = v.to(self.xi.dtype).flatten(1)
        if self.xi.requires_grad:  # gradients w.r.t. the memories: plain autograd (tests)
            return reference_scores(self.xi, v, self.n, T)
        return _Scores.apply(v, self.xi, self.n, T)

    def outputs_pm1(self, v: torch.Tensor, T: float | None = None) -> torch.Tensor:
        """Y = tanh(s) in [-1, 1], (B, 10): the paper's outputs."""
        return torch.tanh(self.scores_pm1(v, T))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28) in [0, 1] -> outputs Y (B, 10) (argmax = the class), float64."""
        return self.outputs_pm1(to_pm1(x))

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-tanh scores for images in [0, 1] (the non-saturating quantity margin attacks use)."""
        return self.scores_pm1(to_pm1(x))

    def memories(self) -> torch.Tensor:
        """Visible parts of the memories as images (K, 28, 28) in [-1, 1]."""
        return self.xi[:, :N_PIXELS].reshape(-1, 28, 28)


def reference_scores(xi: torch.Tensor, v: torch.Tensor, n: int, T: float) -> torch.Tensor:
    """The scores with plain differentiable torch ops (slower; autograd w.r.t. xi and v)."""
    vis, lab = xi[:, :N_PIXELS], xi[:, N_PIXELS:]
    h = v @ vis.T - lab.sum(1)  # (B, K)
    on = h.unsqueeze(2) + 2.0 * lab  # (B, K, 10)
    return torch.relu(on / T).pow(n).sum(1) - torch.relu(h / T).pow(n).sum(1, keepdim=True)


def _score_parts(
    xi: torch.Tensor,
    v: torch.Tensor,
    n: int,
    T: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(s (B, 10), f'(on) (B, K, 10), f'(h) (B, K)) with f'(x) = max(x / T, 0)^(n-1).

    Overlaps are divided by T once; the (B, K, 10) passes, not the (B, 784) x (784, K) product,
    dominate the cost, so they are done in place where possible.
    """
    vis, lab = xi[:, :N_PIXELS], xi[:, N_PIXELS:]
    r_h = torch.addmm(lab.sum(1).div(-T), v, vis.T, alpha=1.0 / T)  # (B, K): h / T
    r_on = (r_h.unsqueeze(2) + (2.0 / T) * lab).clamp_min_(0.0)  # (B, K, 10): relu(on / T)
    r_h.clamp_min_(0.0)  # relu(h / T)
    d_on = ipow(r_on, n - 1)  # (B, K, 10)
    d_h = ipow(r_h, n - 1)  # (B, K)
    s = r_on.mul_(d_on).sum(1) - (d_h * r_h).sum(1, keepdim=True)  # (B, 10)
    return s, d_on, d_h


class _Scores(torch.autograd.Function):
    """Scores with a closed-form backward w.r.t. the pixels only (attacks, descent):

    d s_alpha / d v_i = (n / T) sum_mu [f'(on_{mu,alpha}) - f'(h_mu)] xi^mu_i
    """

    @staticmethod
    def forward(ctx, v, xi, n, T):  # noqa: D102
        s, d_on, d_h = _score_parts(xi, v, n, T)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(xi, d_on, d_h)
        ctx.n, ctx.T = n, T
        return s

    @staticmethod
    def backward(ctx, gs):  # noqa: D102
        xi, d_on, d_h = ctx.saved_tensors
        A = torch.bmm(d_on, gs.unsqueeze(2)).squeeze(2) - d_h * gs.sum(1, keepdim=True)  # (B, K)
        return (ctx.n / ctx.T) * (A @ xi[:, :N_PIXELS]), None, None, None


def to_pm1(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] images (B, 1, 28, 28) -> the paper's pixels v = 2 x - 1, flattened (B, 784), float64."""
    return (2.0 * x.to(DTYPE) - 1.0).flatten(1)


def from_pm1(v: torch.Tensor) -> torch.Tensor:
    """[-1, 1] pixels (B, 784) -> [0, 1] images (B, 1, 28, 28)."""
    return ((v + 1.0) / 2.0).reshape(-1, 1, 28, 28)


class PreTanh(nn.Module):
    """The DAM's pre-tanh scores as a model (same argmax; gradients never saturate)."""

    def __init__(self, dam: DAM):
        super().__init__()
        self.dam = dam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dam.scores(x)


# --- 3. the objective ----------------------------------------------------------------------------


def targets(y: torch.Tensor, classes: int = N_CLASSES, dtype: torch.dtype = DTYPE) -> torch.Tensor:
    """t = +1 for the class, -1 for the others, (B, 10)."""
    return 2.0 * torch.nn.functional.one_hot(y, classes).to(dtype) - 1.0


def objective(Y: torch.Tensor, y: torch.Tensor, m: int) -> torch.Tensor:
    """Per-example C = sum_alpha (t_alpha - Y_alpha)^(2m), (B,). Eq. 2.3 (training), 3.1 (C_alpha)."""
    return (targets(y, Y.shape[1], Y.dtype) - Y).pow(2 * m).sum(1)


def objective_terms(s: torch.Tensor, y: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(C (B,), dC/ds (B, 10), log C (B,)) from the pre-tanh scores, without cancellation.

    Y = tanh(s) rounds to exactly +-1 in float64 once |s| > 19, and then 1 - Y^2 = 0 and t - Y = 0:
    the naive chain rule returns an exactly zero gradient (masking). The same quantities written
    with sigmoids stay accurate: t - Y = 2 t sigmoid(-2 t s), 1 - Y^2 = 4 sigmoid(2 s) sigmoid(-2 s).
    """
    t = targets(y, s.shape[1], s.dtype)
    diff = 2.0 * t * torch.sigmoid(-2.0 * t * s)  # t - Y
    C = diff.pow(2 * m).sum(1)
    dC_ds = -2.0 * m * diff.pow(2 * m - 1) * 4.0 * torch.sigmoid(2.0 * s) * torch.sigmoid(-2.0 * s)
    log_abs = math.log(2.0) + torch.nn.functional.logsigmoid(-2.0 * t * s)  # log |t - Y|
    logC = torch.logsumexp(2 * m * log_abs, dim=1)
    return C, dC_ds, logC


# --- 4. the update rule --------------------------------------------------------------------------


def _buffer(work: dict | None, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor | None:
    """A reusable scratch tensor from ``work`` (None: let torch allocate). Reusing the (B, K, 10)
    buffers across minibatches avoids a fresh multi-megabyte allocation per step, which on Linux
    costs a page fault per 4 kB (measured: ~45 % of the CPU time of a K = 100 training step)."""
    if work is None:
        return None
    t = work.get(name)
    if t is None or t.shape != shape or t.dtype != like.dtype or t.device != like.device:
        t = work[name] = torch.empty(shape, dtype=like.dtype, device=like.device)
    return t


def _power_into(x: torch.Tensor, k: int, out: torch.Tensor | None, tmp: torch.Tensor | None) -> torch.Tensor:
    """x^k into ``out`` (scratch ``tmp``), following ``ipow``'s choice of method."""
    if out is None or tmp is None:
        return ipow(x, k)
    if x.is_cuda or k in (0, 2, 3) or k > 64:
        return torch.pow(x, k, out=out)
    if k == 0:
        return out.fill_(1.0)
    tmp.copy_(x)
    first = True
    while k:
        if k & 1:
            if first:
                out.copy_(tmp)
                first = False
            else:
                out.mul_(tmp)
        k >>= 1
        if k:
            tmp.mul_(tmp)
    return out


def update_direction(
    xi: torch.Tensor, v: torch.Tensor, y: torch.Tensor, *, n: int, m: int, T: float, work: dict | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Negative gradient of C (summed over the batch) w.r.t. xi, up to the positive factor 2 m n / T.

    Returns (G (K, 794), Y (B, 10)). With c_{b,alpha} = (t - Y)^(2m-1) (1 - Y^2) and
    f'(x) = max(x / T, 0)^(n-1):
      G_vis = A^T v,   A_{b,mu} = sum_alpha c_{b,alpha} [f'(on_{b,mu,alpha}) - f'(h_{b,mu})]
      G_lab[mu, gamma] = 2 sum_b c_{b,gamma} f'(on_{b,mu,gamma}) - sum_b A_{b,mu}
    (sigma^{on,alpha}_gamma = 2 delta_{alpha gamma} - 1 and sigma^{off}_gamma = -1.) The constant is
    irrelevant: the update normalises every memory's step by its largest component. ``work``: a
    dict the caller keeps across steps, holding the (B, K, 10) scratch buffers.
    """
    v = v.to(xi.dtype).flatten(1)  # (B, 784)
    vis, lab = xi[:, :N_PIXELS], xi[:, N_PIXELS:]
    shape = (len(v), len(xi), N_CLASSES)
    r_h = torch.addmm(lab.sum(1).div(-T), v, vis.T, alpha=1.0 / T)  # (B, K): h / T
    r_on = torch.add(r_h.unsqueeze(2), (2.0 / T) * lab, out=_buffer(work, "r_on", shape, xi))  # (B, K, 10)
    r_on.clamp_min_(0.0)  # relu(on / T)
    r_h.clamp_min_(0.0)  # relu(h / T)
    d_on = _power_into(r_on, n - 1, _buffer(work, "d_on", shape, xi), _buffer(work, "tmp", shape, xi))
    d_h = ipow(r_h, n - 1)  # (B, K)
    s = r_on.mul_(d_on).sum(1) - (d_h * r_h).sum(1, keepdim=True)  # (B, 10): pre-tanh scores
    c = objective_terms(s, y, m)[1] / (-2.0 * m)  # (B, 10): (t - Y)^(2m-1) (1 - Y^2)
    W = d_on.mul_(c.unsqueeze(1))  # (B, K, 10): c_{b,alpha} f'(on_{b,mu,alpha}), reusing d_on
    A = W.sum(2) - d_h * c.sum(1, keepdim=True)  # (B, K)
    G = torch.empty_like(xi)
    torch.mm(A.T, v, out=G[:, :N_PIXELS])  # (K, 784)
    G[:, N_PIXELS:] = 2.0 * W.sum(0) - A.sum(0).unsqueeze(1)  # (K, 10)
    return G, torch.tanh(s)


class KrotovMomentum(torch.optim.Optimizer):
    """Krotov & Hopfield's rule for parameters whose ``.grad`` holds the ascent direction G:

        V <- p V + G;   xi <- clip(xi + lr * V / max_I |V_{mu I}|, -1, 1)   (per memory row mu)

    so the largest change of every memory is exactly lr before clipping. The velocity is optimizer
    state, so robustlib.train checkpoints and resumes it.
    """

    def __init__(self, params, lr: float = 0.04, momentum: float = 0.6, floor: float = 1e-30):
        super().__init__(params, {"lr": lr, "momentum": momentum, "floor": floor})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 (torch API)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p)
                V = state["velocity"]
                V.mul_(group["momentum"]).add_(p.grad)
                scale = V.abs().amax(1, keepdim=True).clamp_min(group["floor"])  # (K, 1)
                p.add_(V / scale, alpha=group["lr"]).clamp_(-1.0, 1.0)
        return None


# --- 5. training ---------------------------------------------------------------------------------


def make_step(cfg: DAMConfig) -> Callable[..., dict[str, float]]:
    """A ``robustlib.train.fit`` step: closed-form direction at this epoch's temperature, then the
    Krotov update (the optimizer's lr is set per epoch by ``lr_lambda``)."""

    work: dict[str, torch.Tensor] = {}  # scratch buffers reused by every step

    def step(model: DAM, batch, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        T = cfg.temperature(batch.epoch)
        model.T = T  # evaluation during the ramp uses the current temperature
        G, Y = update_direction(model.xi, to_pm1(batch.x), batch.y, n=model.n, m=model.m, T=T, work=work)
        model.xi.grad = G
        optimizer.step()
        model.xi.grad = None
        loss = objective(Y, batch.y, model.m).mean().item()
        return {"loss": loss, "correct": (Y.argmax(1) == batch.y).sum().item()}

    return step


def train_dam(
    model: DAM,
    cfg: DAMConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    eval_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
    desc: str = "dam",
) -> list[dict[str, float]]:
    """Train ``model`` in place with Krotov's rule (resumable through ``checkpoint``).

    The momentum buffer is optimizer state, so ``fit`` checkpoints it with the memories: a resumed
    run takes the same steps as an uninterrupted one.
    """
    from ...train import fit

    model.xi.requires_grad_(False)
    opt = KrotovMomentum([model.xi], lr=cfg.eps0, momentum=cfg.momentum)
    per_epoch = math.ceil(len(x) / cfg.batch_size)
    history = fit(
        model,
        x,
        y,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=seed,
        optimizer=opt,
        step=make_step(cfg),
        lr_lambda=lambda it: cfg.decay ** (it // per_epoch),
        eval_data=eval_data,
        checkpoint=checkpoint,
        device=device,
        progress=progress,
        desc=desc,
    )
    model.T = cfg.final_temperature()
    return history


@torch.no_grad()
def outputs(
    model: nn.Module,
    x: torch.Tensor,
    *,
    batch_size: int = 1000,
    device: str | torch.device = "cpu",
    pre_tanh: bool = False,
) -> torch.Tensor:
    """Model outputs (DAM: Y, or the pre-tanh scores) for images in [0, 1]; (N, 10) float64, CPU."""
    f = model.scores if pre_tanh else model
    outs = [f(x[i : i + batch_size].to(device)).to(DTYPE).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(outs) if outs else torch.empty(0, N_CLASSES, dtype=DTYPE)


def tune_temperature(
    n: int,
    m: int,
    temperatures: Sequence[float],
    base: DAMConfig,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> list[dict[str, Any]]:
    """Validation error after ``base.epochs`` epochs for each T (the paper does not state T, m for
    n = 2, 3, 30). Rows: {"n", "m", "T", "val_error", "train_error", "seconds"}; pick the lowest."""
    rows = []
    for T in temperatures:
        cfg = DAMConfig(**{**asdict(base), "n": n, "m": m, "T": float(T), "T_in": None})
        torch.manual_seed(seed)
        model = DAM.from_config(cfg, torch.Generator().manual_seed(seed)).to(device)
        t0 = time.perf_counter()
        hist = train_dam(model, cfg, *train, seed=seed, eval_data=val, device=device)
        rows.append(
            {
                "n": n,
                "m": m,
                "T": float(T),
                "init_mean": cfg.init_mean,
                "val_error": 1.0 - hist[-1]["eval_acc"],
                "train_error": 1.0 - hist[-1]["train_acc"],
                "seconds": time.perf_counter() - t0,
                "val_error_curve": [1.0 - h["eval_acc"] for h in hist],
            }
        )
    return rows


# --- 6. pixel-space dynamics (eq. 3.2), FGSM, confidence -------------------------------------------
# A "gradient function" maps (v (B, 784) in [-1, 1], target (B,)) to (objective (B,), its gradient
# w.r.t. v (B, 784), class scores (B, 10)). DAMs use C_target of eq. 3.1 with the accurate
# closed-form gradient; any other classifier (the ReLU MLP) uses cross-entropy toward the target.

GradFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def dam_objective_grad(model: DAM) -> GradFn:
    """v, target -> (log C_target, dC_target/dv, pre-tanh scores). log C: C spans 1e-300 .. 1e18."""

    def fn(v: torch.Tensor, target: torch.Tensor):
        v = v.detach().to(model.xi.dtype).requires_grad_(True)
        with torch.enable_grad():
            s = model.scores_pm1(v)
            _, dC_ds, logC = objective_terms(s.detach(), target, model.m)
            (g,) = torch.autograd.grad(s, v, grad_outputs=dC_ds)
        return logC, g, s.detach()

    return fn


def classifier_objective_grad(model: nn.Module) -> GradFn:
    """For any [0, 1] classifier: (cross-entropy toward the target, its gradient w.r.t. v, logits)."""

    def fn(v: torch.Tensor, target: torch.Tensor):
        v = v.detach().requires_grad_(True)
        with torch.enable_grad():
            z = model(from_pm1(v).to(next(model.parameters()).dtype))
            loss = torch.nn.functional.cross_entropy(z, target, reduction="none")
            (g,) = torch.autograd.grad(loss.sum(), v)
        return loss.detach().to(v.dtype), g.to(v.dtype), z.detach().to(v.dtype)

    return fn


@dataclass
class DescentResult:
    """Outcome of a batched normalised-gradient descent (per image)."""

    images: torch.Tensor  # (N, 784) in [-1, 1]: where each image stopped
    steps: torch.Tensor  # (N,) steps taken
    stopped: torch.Tensor  # (N,) bool: the stopping rule fired (else the step budget ran out)
    objective: torch.Tensor  # (N,) objective at the returned image


def descend(
    grad_fn: GradFn,
    v0: torch.Tensor,
    target: torch.Tensor,
    *,
    step: float,
    max_steps: int,
    stop: Callable[..., torch.Tensor] | None = None,
    aux: torch.Tensor | None = None,
    batch_size: int = 500,
    clip: bool = True,
) -> DescentResult:
    """Eq. 3.2, batched: v <- clip(v - step * g / ||g||_2, -1, 1) with g = d objective / dv.

    ``stop(scores, target, objective, aux) -> (B,) bool`` is checked before every step (and after the
    last); an image stops at the first iterate where it fires, so a boundary rule returns the image
    one step past the boundary. An image whose gradient is exactly zero has converged and stops too
    (``stopped`` stays False for it unless the rule fired). Pixels are clipped to [-1, 1] (the paper
    does not say; we clip so that every image is a valid image).
    """
    if step <= 0 or max_steps < 0:
        raise ValueError(f"need step > 0 and max_steps >= 0, got {step}, {max_steps}")
    v_all = v0.detach().to("cpu", DTYPE).flatten(1).clone()  # results gathered on the CPU
    N = len(v_all)
    steps = torch.zeros(N, dtype=torch.long)
    stopped = torch.zeros(N, dtype=torch.bool)
    objective_out = torch.full((N,), math.nan, dtype=DTYPE)
    for lo in range(0, N, batch_size):
        idx = torch.arange(lo, min(lo + batch_size, N))
        v = v_all[idx].to(v0.device)
        tgt = target[idx].to(v0.device)
        ax = aux[idx].to(v0.device) if aux is not None else tgt
        active = torch.ones(len(idx), dtype=torch.bool, device=v.device)
        for it in range(max_steps + 1):
            a = torch.nonzero(active).flatten()
            if len(a) == 0:
                break
            obj, g, sc = grad_fn(v[a], tgt[a])
            objective_out[idx[a.cpu()]] = obj.cpu().to(DTYPE)
            fired = (
                stop(sc, tgt[a], obj, ax[a])
                if stop is not None
                else torch.zeros(len(a), dtype=torch.bool, device=v.device)
            )
            norm = g.flatten(1).norm(dim=1)
            finished = fired | (norm == 0) | (it == max_steps)
            stopped[idx[a[fired].cpu()]] = True
            active[a[finished]] = False
            move = a[~finished]
            if len(move):
                gm = g[~finished] / norm[~finished].unsqueeze(1)
                v[move] = v[move] - step * gm
                if clip:
                    v[move] = v[move].clamp(-1.0, 1.0)
                steps[idx[move.cpu()]] += 1
        v_all[idx] = v.cpu()
    return DescentResult(v_all, steps, stopped, objective_out)


def second_choice(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, second) choice labels from scores (B, 10)."""
    top2 = scores.topk(2, dim=1).indices
    return top2[:, 0], top2[:, 1]


def boundary_images(
    grad_fn: GradFn,
    scores_fn: Callable[[torch.Tensor], torch.Tensor],
    v: torch.Tensor,
    *,
    step: float,
    max_steps: int,
    batch_size: int = 500,
) -> dict[str, torch.Tensor]:
    """Section 4: descend the objective of the second-choice label until the first iterate where its
    score beats the first choice's (one step past the decision boundary: Fig. 4 middle, Fig. 5).

    Returns images (N, 784), first/second labels, steps, crossed (bool), l2 (v-space distance).
    """
    with torch.no_grad():
        sc = torch.cat([scores_fn(v[i : i + batch_size]).cpu() for i in range(0, len(v), batch_size)])
    first, second = second_choice(sc)

    def past_boundary(scores, tgt, obj, first_choice):
        return scores.gather(1, tgt[:, None]).squeeze(1) > scores.gather(1, first_choice[:, None]).squeeze(1)

    res = descend(
        grad_fn, v, second, step=step, max_steps=max_steps, stop=past_boundary, aux=first, batch_size=batch_size
    )
    l2 = (res.images - v.detach().cpu().to(DTYPE).flatten(1)).norm(dim=1)
    return {
        "images": res.images,
        "first": first,
        "second": second,
        "steps": res.steps,
        "crossed": res.stopped,
        "l2": l2,
    }


def boundary_trajectory(
    model: DAM, v: torch.Tensor, *, step: float, max_steps: int, final_log_c: float = -30.0
) -> dict[str, torch.Tensor]:
    """Fig. 4 for a few images: descend C_second for up to ``max_steps`` steps (no early stop) and
    record log C_first and log C_second at every iterate (S + 1, B). The boundary image is the first
    iterate with s_second > s_first; the final image the first with log C_second < ``final_log_c``
    (C_second "reaches zero"), else the last iterate."""
    v = v.detach().to(DTYPE).flatten(1).clone()
    grad_fn = dam_objective_grad(model)
    with torch.no_grad():
        first, second = second_choice(model.scores_pm1(v))
    B = len(v)
    log_first, log_second = [], []
    boundary, final = v.clone(), v.clone()
    cross_at = torch.full((B,), -1, dtype=torch.long)
    final_at = torch.full((B,), -1, dtype=torch.long)
    for it in range(max_steps + 1):
        logC2, g, s = grad_fn(v, second)
        logC1 = objective_terms(s, first, model.m)[2]
        log_first.append(logC1.cpu())
        log_second.append(logC2.cpu())
        crossed = (s.gather(1, second[:, None]) > s.gather(1, first[:, None])).squeeze(1).cpu() & (cross_at < 0)
        boundary[crossed] = v[crossed.to(v.device)].cpu()
        cross_at[crossed] = it
        done = (logC2.cpu() < final_log_c) & (final_at < 0)
        final[done] = v[done.to(v.device)].cpu()
        final_at[done] = it
        if it == max_steps or (final_at >= 0).all():
            break
        norm = g.norm(dim=1, keepdim=True).clamp_min(1e-300)
        v = (v - step * g / norm).clamp(-1.0, 1.0)
    never = final_at < 0
    final[never] = v[never.to(v.device)].cpu()
    final_at[never] = it
    with torch.no_grad():
        final_pred = model.scores_pm1(final.to(v.device)).argmax(1).cpu()
        boundary_pred = model.scores_pm1(boundary.to(v.device)).argmax(1).cpu()
    return {
        "log_c_first": torch.stack(log_first),
        "log_c_second": torch.stack(log_second),
        "first": first.cpu(),
        "second": second.cpu(),
        "cross_at": cross_at,
        "final_at": final_at,
        "boundary": boundary,
        "final": final,
        "boundary_pred": boundary_pred,
        "final_pred": final_pred,
    }


def rubbish_images(
    grad_fn: GradFn,
    n_per_class: int,
    *,
    step: float,
    max_steps: int,
    noise_std: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int = 500,
) -> dict[str, torch.Tensor]:
    """Fig. 3 / Fig. 7: Gaussian noise N(0, noise_std^2) in [-1, 1] pixels (0 = mid grey), then the
    descent of eq. 3.2 on C_alpha for each class alpha. Returns images (10 * n, 784) ordered class by
    class, their target labels, and steps taken. The paper's "N(0, 0.1)" is read as std 0.1."""
    g = torch.Generator().manual_seed(seed)
    noise = (noise_std * torch.randn(N_CLASSES * n_per_class, N_PIXELS, generator=g, dtype=DTYPE)).clamp(-1, 1)
    target = torch.arange(N_CLASSES).repeat_interleave(n_per_class)
    res = descend(grad_fn, noise.to(device), target.to(device), step=step, max_steps=max_steps, batch_size=batch_size)
    return {"images": res.images, "labels": target, "steps": res.steps, "noise": noise}


# --- FGSM (section 6) --------------------------------------------------------------------------------


def fgsm_direction(model: DAM, v: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign of the gradient of the training objective C_y (ascent), (B, 784), and a (B,) mask of the
    images whose gradient is exactly zero even in float64 (outputs saturated at their targets): for
    those the direction falls back to the gradient of the pre-tanh margin max_{c != y} s_c - s_y."""
    _, g, _ = dam_objective_grad(model)(v, y)  # dC_y / dv: FGSM ascends C_y, so it moves along +g
    zero = g.abs().amax(1) == 0
    if zero.any():
        vz = v[zero].detach().to(DTYPE).requires_grad_(True)
        with torch.enable_grad():
            sz = model.scores_pm1(vz)
            other = sz.masked_fill(torch.nn.functional.one_hot(y[zero], N_CLASSES).bool(), -math.inf).amax(1)
            margin = other - sz.gather(1, y[zero][:, None]).squeeze(1)
            (gz,) = torch.autograd.grad(margin.sum(), vz)
        g[zero] = gz
    return g.sign(), zero


def fgsm_pm1(model: DAM, v: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """One signed-gradient step of size ``eps`` in [-1, 1] units (= eps / 2 in [0, 1] units), clipped
    to [-1, 1]: ||v' - v||_inf <= eps."""
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    direction, _ = fgsm_direction(model, v, y)
    return (v.detach().to(DTYPE) + eps * direction).clamp(-1.0, 1.0)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """The paper's FGSM as a registered attack (``attacks.evaluate(..., attack="dam_fgsm")``).

    Images ``x`` (B, 1, 28, 28) in [0, 1] and ``eps`` in [0, 1] units, like every attack of the
    registry: one step of 2 eps in the paper's [-1, 1] pixels along the sign of the gradient of the
    training objective C_y (a DAM, with the margin fallback of ``fgsm_direction``) or of the
    cross-entropy (any other classifier, e.g. the ReLU MLP), clipped to [-1, 1]. Returns float64
    images in [0, 1] (the DAM's own precision).
    """
    v = to_pm1(x)  # (B, 784) float64
    if isinstance(model, DAM):
        direction, _ = fgsm_direction(model, v, y)
    else:
        direction = classifier_objective_grad(model)(v, y)[1].sign()
    return from_pm1((v + 2 * eps * direction).clamp(-1.0, 1.0))


attacks.register(attacks.AttackInfo("dam_fgsm", "linf", False, fgsm))


# --- confidence (section 5.1) ------------------------------------------------------------------------


def confidence(Y: torch.Tensor, beta_sm: float) -> torch.Tensor:
    """Z = max_alpha softmax(beta_sm * Y)_alpha, (B,)."""
    return torch.softmax(beta_sm * Y.to(DTYPE), dim=1).amax(1)


def calibrate_beta(
    Y: torch.Tensor, correct: torch.Tensor, *, lo: float = 1e-3, hi: float = 1e5, iters: int = 200
) -> float:
    """beta_sm with mean confidence = accuracy (the paper's rule). Mean Z increases monotonically with
    beta_sm (from 1/10 at 0 to 1 at infinity, ties aside), so bisection on log beta finds it. An
    accuracy outside (mean Z(lo), mean Z(hi)) (e.g. an untrained model at chance) returns lo or hi."""
    acc = correct.to(DTYPE).mean().item()
    if confidence(Y, lo).mean().item() >= acc:
        return lo
    if confidence(Y, hi).mean().item() <= acc:
        return hi
    a, b = math.log(lo), math.log(hi)
    for _ in range(iters):
        mid = (a + b) / 2
        if confidence(Y, math.exp(mid)).mean().item() < acc:
            a = mid
        else:
            b = mid
    return math.exp((a + b) / 2)


def error_by_confidence(Z: torch.Tensor, correct: torch.Tensor, edges: Sequence[float]) -> list[dict[str, float]]:
    """Error rate per confidence bin [edges[i], edges[i+1]) (the last bin includes 1); Fig. 6."""
    rows = []
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        sel = (Z >= a) & ((Z < b) if i < len(edges) - 2 else (Z <= b))
        k = int(sel.sum())
        rows.append(
            {
                "lo": float(a),
                "hi": float(b),
                "count": k,
                "error": float((~correct[sel]).to(DTYPE).mean()) if k else math.nan,
            }
        )
    return rows


def zero_gradient_fraction(model: DAM, v: torch.Tensor, y: torch.Tensor, dtype: torch.dtype) -> float:
    """Fraction of images whose naive-autograd gradient of C_y (tanh, then (t - Y)^(2m)) w.r.t. the
    pixels is exactly zero when the whole model runs in ``dtype``: documents the float32 pitfall."""
    xi = model.xi.to(dtype)
    vv = v.detach().to(dtype).flatten(1).requires_grad_(True)
    with torch.enable_grad():
        Y = torch.tanh(reference_scores(xi, vv, model.n, model.T))
        C = objective(Y, y, model.m).sum()
        (g,) = torch.autograd.grad(C, vv)
    return (g.abs().amax(1) == 0).to(DTYPE).mean().item()
