"""Mean-field Boltzmann networks (MFBM, anonymous ICLR 2019 submission), top to bottom.

A Boltzmann machine over spins s = +-1 (visible v, hidden h) is trained *generatively* on binarised
MNIST patches with a 4th-order mean-field (Plefka / Georges-Yedidia) free energy. Its unrolled
2nd-order *clamped* iteration (paper Eq. 5) is then swept over the image as a frozen 8x8 stride-1
"convolution" (28x28 -> 128x21x21) under a small CNN trained discriminatively.

Conventions (spec ``mfbm.md`` section 1, ambiguity M13): log p~(s) = sum_{i!=j} J_ij s_i s_j + b.s
(ordered pairs, so an undirected edge contributes 2 J_ij s_i s_j), J = [[0, W], [W^T, J_h]],
b = (0, b_h) (visible fields fixed to 0, M3). Phi(m) approximates ln Z at its stationary point.

Sections:
 1. the machine (parameters, masks)            6. exact enumeration (small machines)
 2. the mean-field free energy Phi up to 4th   7. patch data (4x4 / 8x8 binarised patterns)
 3. fixed points: free and clamped phases      8. staged machine (4 x small + 128 top units)
 4. p(v), relative entropy D, batch norm.      9. the unrolled network (conv layer, classifier,
 5. training a machine (Adam on D)                RBM variant, distilled network)
                                              10. noise rejection (Figs. 4, 8, 9)
                                              11. the paper's iterative L2 gradient attack
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

# =================================================================================================
# 1. The machine
# =================================================================================================


class BoltzmannMachine(nn.Module):
    """Bipartite visible-hidden couplings W (nv, nh), full hidden-hidden couplings J_h (nh, nh,
    symmetric, zero diagonal) and hidden fields b_h (nh,); no visible-visible couplings, no visible
    fields.

    ``w_mask`` / ``jh_mask`` fix a sparsity pattern (the staged 64+256 machine is block-sparse; an
    RBM has ``jh_mask = 0``). J_h is built as A + A^T from the upper triangle of a raw parameter, so
    a gradient step on A_kl moves both J_kl and J_lk: dD/dA_kl = 2 dD/dJ_kl, the "factor 2 for a
    symmetric parameter" of the spec's gradient formula.
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        *,
        hidden_couplings: bool = True,
        init_std: float = 0.01,
        w_mask: torch.Tensor | None = None,
        jh_mask: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float64,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if n_visible <= 0 or n_hidden <= 0:
            raise ValueError(f"n_visible ({n_visible}) and n_hidden ({n_hidden}) must be positive")
        if init_std < 0:
            raise ValueError(f"init_std must be >= 0, got {init_std}")
        nv, nh = n_visible, n_hidden
        w_mask = torch.ones(nv, nh, dtype=dtype) if w_mask is None else w_mask.to(dtype)
        if jh_mask is None:
            jh_mask = torch.ones(nh, nh, dtype=dtype) if hidden_couplings else torch.zeros(nh, nh, dtype=dtype)
        jh_mask = jh_mask.to(dtype)
        if w_mask.shape != (nv, nh) or jh_mask.shape != (nh, nh):
            raise ValueError(
                f"masks must have shapes {(nv, nh)} and {(nh, nh)}, got {tuple(w_mask.shape)}, {tuple(jh_mask.shape)}"
            )
        if not torch.equal(jh_mask, jh_mask.T):
            raise ValueError("jh_mask must be symmetric")
        self.n_visible, self.n_hidden = nv, nh
        self.register_buffer("w_mask", w_mask)
        self.register_buffer("jh_upper_mask", torch.triu(jh_mask, 1))  # A lives on the strict upper triangle
        self.W = nn.Parameter(torch.randn(nv, nh, dtype=dtype, generator=generator) * init_std * w_mask)
        self.A = nn.Parameter(torch.randn(nh, nh, dtype=dtype, generator=generator) * init_std * self.jh_upper_mask)
        self.bh = nn.Parameter(torch.zeros(nh, dtype=dtype))

    @property
    def n(self) -> int:
        return self.n_visible + self.n_hidden

    def weights(self) -> torch.Tensor:
        return self.W * self.w_mask  # (nv, nh)

    def hidden_couplings(self) -> torch.Tensor:
        a = self.A * self.jh_upper_mask
        return a + a.T  # (nh, nh) symmetric, zero diagonal

    def couplings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The full J (N, N) and b (N,) with the visible units first."""
        W, Jh = self.weights(), self.hidden_couplings()
        nv = self.n_visible
        top = torch.cat([torch.zeros(nv, nv, dtype=W.dtype, device=W.device), W], 1)
        bottom = torch.cat([W.T, Jh], 1)
        b = torch.cat([torch.zeros(nv, dtype=W.dtype, device=W.device), self.bh])
        return torch.cat([top, bottom], 0), b

    @torch.no_grad()
    def load_couplings(self, W: torch.Tensor, Jh: torch.Tensor, bh: torch.Tensor) -> BoltzmannMachine:
        """Set the parameters from explicit W, J_h (symmetric) and b_h (masks are applied)."""
        self.W.copy_(W * self.w_mask)
        self.A.copy_(torch.triu(Jh, 1) * self.jh_upper_mask)
        self.bh.copy_(bh)
        return self


def to_spins(bits: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """{0, 1} (ink = 1) -> {-1, +1} (ink = +1, spec section 1)."""
    return bits.to(dtype) * 2 - 1


# =================================================================================================
# 2. The mean-field free energy Phi(m) = S(m) + Phi_1 + ... + Phi_4  (spec section 2)
# =================================================================================================
# Every sum runs over ordered tuples of mutually distinct indices. With zero-diagonal J and
# d = 1 - m^2, g = m d, the distinct-index sums are matrix expressions (no sqrt of d, so the
# clamped visible units with d = 0 are differentiable):
#   triangles   sum_ijk J_ij J_jk J_ki d_i d_j d_k      = tr((J D)^3)
#   4-cycles    sum_ijkl J_ij J_jk J_kl J_li d_i..d_l    = tr((J D)^4) - 2 sum_i r_i^2 + sum_ij J_ij^4 d_i^2 d_j^2,
#               r_i = d_i sum_j J_ij^2 d_j  (removes the non-adjacent coincidences k = i, l = j)
#   J^2 J J     sum_{i!=j, k} J_ij^2 J_jk J_ki g_i g_j d_k = sum_ij J_ij^2 g_i g_j (J D J)_ij


def entropy(m: torch.Tensor) -> torch.Tensor:
    """S(m) = -sum_i [(1+m)/2 ln((1+m)/2) + (1-m)/2 ln((1-m)/2)] over the last axis (0 at m = +-1)."""
    p, q = (1 + m) / 2, (1 - m) / 2
    return -(torch.special.xlogy(p, p) + torch.special.xlogy(q, q)).sum(-1)


def _quad(u: torch.Tensor, A: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_ij u_i A_ij w_j for batched u, w (..., N)."""
    return ((u @ A) * w).sum(-1)


def phi_orders(m: torch.Tensor, J: torch.Tensor, b: torch.Tensor, order: int) -> list[torch.Tensor]:
    """[Phi_1, ..., Phi_order] at magnetisations m (..., N); each term has shape m.shape[:-1].

    Orders 3 and 4 cost O(N^3) per row of m (used for the free phase, one row).
    """
    if not 1 <= order <= 4:
        raise ValueError(f"order must be 1, 2, 3 or 4, got {order}")
    d = 1 - m * m
    J2 = J * J
    terms = [_quad(m, J, m) + (m * b).sum(-1)]  # Phi_1
    if order >= 2:
        terms.append(_quad(d, J2, d))  # Phi_2 = sum J_ij^2 d_i d_j
    if order >= 3:
        g = m * d
        JD = J * d.unsqueeze(-2)  # (..., N, N): (J D)_ij = J_ij d_j
        JD2 = JD @ JD
        tri = (JD2 * JD.transpose(-1, -2)).sum((-1, -2))  # tr((JD)^3)
        terms.append(4.0 / 3.0 * tri + 8.0 / 3.0 * _quad(g, J2 * J, g))
    if order >= 4:
        J4 = J2 * J2
        cyc = (JD2 * JD2.transpose(-1, -2)).sum((-1, -2))  # tr((JD)^4)
        r = d * (d @ J2)  # r_i = d_i sum_j J_ij^2 d_j
        cyc = cyc - 2 * (r * r).sum(-1) + _quad(d * d, J4, d * d)
        JDJ = JD @ J  # (J D J)_ij
        j2jj = ((J2 * JDJ) * g.unsqueeze(-1) * g.unsqueeze(-2)).sum((-1, -2))
        c = d * m * m
        quartic = _quad(d, J4, d) + 6 * _quad(c, J4, d) - 15 * _quad(c, J4, c)
        terms.append(2 * cyc + 16 * j2jj - 2.0 / 3.0 * quartic)
    return terms


def phi(m: torch.Tensor, J: torch.Tensor, b: torch.Tensor, order: int) -> torch.Tensor:
    """Phi(m) = S(m) + sum_{n <= order} Phi_n(m): the order-n approximation of ln Z at its fixed point."""
    return entropy(m) + sum(phi_orders(m, J, b, order))


def local_field(
    m: torch.Tensor, J: torch.Tensor, b: torch.Tensor, order: int, *, autograd: bool = False
) -> torch.Tensor:
    """R(m) = d(Phi - S)/dm, so that the stationarity condition is m = tanh(R(m)) (paper Eq. 4).

    Closed forms of the spec's R^(1..4) (the appendix formulas with the reconstructed coefficients),
    vectorised with the same distinct-index corrections as Phi; ``autograd=True`` differentiates the
    vectorised Phi instead (the reference in test T1; ~10x slower for small machines).
    """
    J, b = J.detach(), b.detach()
    if autograd:
        with torch.enable_grad():
            x = m.detach().requires_grad_(True)
            (r,) = torch.autograd.grad(sum(phi_orders(x, J, b, order)).sum(), x)
        return r
    d = 1 - m * m
    J2 = J * J
    r = b + 2 * (m @ J)  # R1
    if order >= 2:
        r = r - 4 * m * (d @ J2)  # R2 = -4 m_i sum_j J_ij^2 d_j
    if order >= 3:
        g = m * d
        JD = J * d.unsqueeze(-2)  # (J D)_ij = J_ij d_j
        JD2 = JD @ JD
        tri = (JD2 * J).sum(-1)  # sum_jk J_ij J_jk J_ki d_j d_k = (JD JD J)_ii (J symmetric)
        r = r - 8 * m * tri + 16.0 / 3.0 * (1 - 3 * m * m) * (g @ (J2 * J))
    if order >= 4:
        J4 = J2 * J2
        q = d @ J2  # q_i = sum_j J_ij^2 d_j
        raw = ((JD2 @ JD) * J).sum(-1)  # ((JD)^3 J)_ii: 4-cycles through i, coincidences included
        cyc = raw - d * q * q - (d * d * q) @ J2 + d * ((d * d) @ J4)  # remove k = i and j = l
        G = J2 * g.unsqueeze(-1) * g.unsqueeze(-2)  # J_jk^2 g_j g_k
        a = ((J @ G) * J).sum(-1)  # sum_jk J_ij J_jk^2 J_ki g_j g_k
        JDJ = JD @ J  # (J D J)_ij = sum_k J_ik d_k J_kj
        c = (J2 * JDJ * g.unsqueeze(-2)).sum(-1)  # sum_jk J_ij^2 g_j J_jk d_k J_ki
        m2 = m * m
        quart = (1 - 3 * m2) * (d @ J4) + 3 * (5 * m2 - 3) * ((m2 * d) @ J4)
        r = r - 16 * m * cyc - 32 * m * a + 32 * (1 - 3 * m2) * c - 16.0 / 3.0 * m * quart
    return r


# =================================================================================================
# 3. Fixed points: the free phase (all units, 4th order) and the clamped phase (Eq. 5)
# =================================================================================================


@dataclass(frozen=True)
class MeanFieldConfig:
    """How the mean-field quantities are computed (paper section 3; spec sections 2-3)."""

    free_order: int = 4  # paper: 4th order for the free expectation values
    free_iters: int = 100  # paper: 100 free iterations (we stop early once converged to ``tol``)
    free_damping: float = 0.5  # m <- (1 - a) m + a tanh(R): the plain iteration (a = 1) oscillates
    free_start: str = "continuation"  # "zero": iterate at free_order from m = 0 (the paper's start);
    # "continuation": from m = 0 at 2nd order first, then at free_order from that solution
    clamped_iters: int = 20  # paper: 20 clamped iterations at 2nd order (Eq. 5, M2)
    clamped_damping: float = 1.0  # 1 = Eq. 5 as printed (the unrolled network uses the same value)
    tol: float = 1e-10  # early stop of the free phase when max |m_new - m| < tol
    normalise: str = "when>1"  # batch normalisation of probabilities (M10): "none", "when>1", "always"
    weighting: str = "exact"  # gradient: "exact" (of Eq. 1) or "p0/p" (the paper's printed Eq. 2/3, M1)

    def __post_init__(self) -> None:
        if not 1 <= self.free_order <= 4:
            raise ValueError(f"free_order must be in 1..4, got {self.free_order}")
        if self.free_iters < 1 or self.clamped_iters < 1:
            raise ValueError(f"free_iters ({self.free_iters}) and clamped_iters ({self.clamped_iters}) must be >= 1")
        for name in ("free_damping", "clamped_damping"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if self.free_start not in ("zero", "continuation"):
            raise ValueError(f"free_start must be 'zero' or 'continuation', got {self.free_start!r}")
        if self.normalise not in ("none", "when>1", "always"):
            raise ValueError(f"normalise must be 'none', 'when>1' or 'always', got {self.normalise!r}")
        if self.weighting not in ("exact", "p0/p"):
            raise ValueError(f"weighting must be 'exact' or 'p0/p', got {self.weighting!r}")


@torch.no_grad()
def iterate(
    J: torch.Tensor,
    b: torch.Tensor,
    *,
    order: int = 4,
    iters: int = 100,
    damping: float = 1.0,
    tol: float = 0.0,
    m0: torch.Tensor | None = None,
    adaptive: bool = True,
) -> tuple[torch.Tensor, int, float]:
    """Iterate m <- (1 - a) m + a tanh(R(m)) for all N units from m0 (default 0), a = ``damping``.

    ``adaptive``: halve a (down to 1/64) whenever the largest change grows instead of shrinking:
    synchronous updates of strongly coupled units oscillate with period 2, and a smaller step turns
    the oscillation into convergence to the same fixed point.
    Returns (m (N,), iterations done, last max |change|); stops early once the change is < tol.
    """
    m = torch.zeros(J.shape[0], dtype=J.dtype, device=J.device) if m0 is None else m0.detach().clone()
    change, prev, it, a = math.inf, math.inf, 0, damping
    for it in range(1, iters + 1):
        new = m + a * (torch.tanh(local_field(m, J, b, order)) - m)
        change = (new - m).abs().max().item()
        m = new
        if change < tol:
            break
        if adaptive and change > prev and a > 1 / 64:
            a /= 2
        prev = change
    return m, it, change


def free_phase(
    J: torch.Tensor, b: torch.Tensor, cfg: MeanFieldConfig, warm: torch.Tensor | None = None
) -> tuple[torch.Tensor, int, float]:
    """The free magnetisations m_F (N,) of the order-``cfg.free_order`` equation.

    Why "continuation": once the couplings are strong (trained machines), the 3rd/4th-order
    iteration started at m = 0 is caught by spurious stationary points or oscillates, while the
    2nd-order solution is reached reliably and lies next to the physical 4th-order one.
    ``warm``: a previous solution (the last training step's m_F) to start the order-n iteration
    from instead (training follows the physical branch continuously and needs a few iterations).
    """
    m0, its = warm, 0
    if m0 is None and cfg.free_start == "continuation" and cfg.free_order > 2:
        m0, its, _ = iterate(J, b, order=2, iters=cfg.free_iters, damping=cfg.free_damping, tol=cfg.tol)
    m, n, change = iterate(
        J, b, order=cfg.free_order, iters=cfg.free_iters, damping=cfg.free_damping, tol=cfg.tol, m0=m0
    )
    return m, its + n, change


def clamped_step(m_h: torch.Tensor, u: torch.Tensor, J2h: torch.Tensor, Jh_sq: torch.Tensor) -> torch.Tensor:
    """One synchronous step of paper Eq. 5 for a batch of hidden magnetisations m_h (B, nh):

        m_h <- tanh[ u + 2 J_h m_h - 4 m_h * ((J_h o J_h)(1 - m_h^2)) ],  u = 2 W^T m_v + b_h,

    with J2h = 2 J_h and Jh_sq = J_h o J_h precomputed (two (B, nh) x (nh, nh) matmuls per step).
    """
    return torch.tanh(u + m_h @ J2h - 4 * m_h * ((1 - m_h * m_h) @ Jh_sq))


def clamped_phase(
    v: torch.Tensor,
    W: torch.Tensor,
    Jh: torch.Tensor,
    bh: torch.Tensor,
    *,
    iters: int = 20,
    damping: float = 1.0,
    return_change: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, float]:
    """Hidden magnetisations (B, nh) with the visible units clamped to v (B, nv), from m_h = 0.

    For v = +-1 this is exactly the 2nd-order stationarity condition restricted to the hidden units
    (every term with a visible d = 1 - v^2 vanishes; test T4). For non-binary v (images at test
    time) it is Eq. 5 as printed, i.e. without the visible reaction term (spec section 5).
    ``return_change``: also return max |m_iters - m_(iters-1)| (0 at a fixed point; a period-2
    oscillation of the synchronous update shows up as a large value).
    """
    u = 2 * (v @ W) + bh  # (B, nh): the visible input, constant over the iterations
    J2h, Jh_sq = 2 * Jh, Jh * Jh
    m = torch.zeros_like(u)
    prev = m
    for _ in range(iters):
        prev = m
        new = clamped_step(m, u, J2h, Jh_sq)
        m = new if damping == 1.0 else m + damping * (new - m)
    if return_change:
        return m, ((m - prev).abs().max().item() if m.numel() else 0.0)
    return m


def phi_clamped(
    v: torch.Tensor, m_h: torch.Tensor, W: torch.Tensor, Jh: torch.Tensor, bh: torch.Tensor
) -> torch.Tensor:
    """2nd-order Phi with the visible units clamped to v = +-1 (B,): the estimate of
    ln sum_h p~(v, h). S(v) = 0 and every d_v = 0, so only hidden-hidden terms survive in Phi_2."""
    d = 1 - m_h * m_h
    return entropy(m_h) + 2 * ((v @ W) * m_h).sum(-1) + _quad(m_h, Jh, m_h) + m_h @ bh + _quad(d, Jh * Jh, d)


# =================================================================================================
# 4. Probabilities, the relative entropy D (paper Eq. 1) and its gradient
# =================================================================================================


@dataclass
class MeanFieldResult:
    D: torch.Tensor  # scalar, differentiable w.r.t. the machine's parameters (value of Eq. 1)
    loss: torch.Tensor  # scalar whose gradient is the chosen gradient (= D for weighting "exact")
    log_p: torch.Tensor  # (B,) ln p(v_j) = Phi_C(j) - ln Z_used (detached)
    phi_free: float  # Phi_F = the mean-field ln Z (before batch normalisation)
    log_z_used: float  # ln Z after the batch normalisation
    m_free: torch.Tensor  # (N,) free magnetisations (detached)
    free_iters: int
    free_change: float
    clamped_change: float  # max |change| of the last clamped step over the batch (0 = converged)


def mean_field_D(
    machine: BoltzmannMachine,
    v: torch.Tensor,
    p0: torch.Tensor,
    cfg: MeanFieldConfig = MeanFieldConfig(),
    *,
    warm: torch.Tensor | None = None,
) -> MeanFieldResult:
    """D(p0 || p) = sum_j p0_j [ln p0_j - ln p(v_j)] with p(v_j) = exp(Phi_C(j) - Phi_F) (spec section 3).

    The fixed points are found without gradient; Phi_F and Phi_C are then re-evaluated at those
    (detached) magnetisations as differentiable functions of the parameters. By stationarity
    (envelope theorem) their gradients are the expectation-value gradients of paper Eqs. 2-3,
    with <s_k> = m_k and <s_k s_l> = 1/2 dPhi/dJ_kl.

    Batch normalisation (M10): "when>1" replaces ln Z by logsumexp_j Phi_C(j) when the batch
    probabilities sum to more than one; "always" always does; "none" never (App. D, Fig. 7).
    """
    if v.ndim != 2 or v.shape[1] != machine.n_visible or p0.shape != (v.shape[0],):
        raise ValueError(f"need v (B, {machine.n_visible}) and p0 (B,), got {tuple(v.shape)} and {tuple(p0.shape)}")
    J, b = machine.couplings()
    m_free, n_it, change = free_phase(J, b, cfg, warm)
    phi_f = phi(m_free, J, b, cfg.free_order)  # differentiable in (J, b) at fixed m
    W, Jh, bh = machine.weights(), machine.hidden_couplings(), machine.bh
    with torch.no_grad():
        m_c, c_change = clamped_phase(
            v, W, Jh, bh, iters=cfg.clamped_iters, damping=cfg.clamped_damping, return_change=True
        )
    phi_c = phi_clamped(v, m_c, W, Jh, bh)  # (B,)
    log_z = phi_f
    if cfg.normalise == "always":
        log_z = torch.logsumexp(phi_c, 0)
    elif cfg.normalise == "when>1":
        log_z = torch.maximum(phi_f, torch.logsumexp(phi_c, 0))
    log_p = phi_c - log_z
    p0 = p0.to(log_p.dtype)
    D = (torch.special.xlogy(p0, p0) - p0 * log_p).sum()
    if cfg.weighting == "exact":
        loss = D
    else:  # sum_j (p0_j / p_j) (<.>_F - <.>_C(j)): the weights are constants (stop-gradient)
        w = (p0 / log_p.detach().exp()).detach()
        loss = -(w * log_p).sum()
    return MeanFieldResult(D, loss, log_p.detach(), phi_f.item(), log_z.item(), m_free, n_it, change, c_change)


# =================================================================================================
# 5. Training a machine: Adam on D (the paper does not give optimiser or schedule: M12)
# =================================================================================================


@dataclass(frozen=True)
class MachineTraining:
    steps: int = 1000
    lr: float = 0.01
    mf: MeanFieldConfig = field(default_factory=MeanFieldConfig)
    log_every: int = 10  # history granularity (and the exact-D callback)
    warm_start: bool = True  # start each free phase from the previous step's solution


BatchFn = Callable[[int], tuple[torch.Tensor, torch.Tensor]]  # step -> (v (B, nv) +-1, p0 (B,))


def train_machine(
    machine: BoltzmannMachine,
    batches: BatchFn,
    tr: MachineTraining,
    *,
    snapshot_steps: Sequence[int] = (),
    on_log: Callable[[int, BoltzmannMachine, MeanFieldResult], dict[str, float]] | None = None,
    progress: bool = False,
    desc: str = "machine",
) -> dict[str, Any]:
    """Minimise the mean-field D with Adam. Returns {"history": [...], "snapshots": {step: state}}.

    ``snapshot_steps``: after how many updates (0 = before training) to keep a copy of the
    parameters (the pre-training checkpoints of Figs. 3 and 4). Every ``log_every`` updates the
    history records D of the current parameters; ``on_log(step, machine, result)`` adds columns
    computed from the same parameters (e.g. the exact D of App. D).
    """
    opt = torch.optim.Adam(machine.parameters(), lr=tr.lr)
    history: list[dict[str, float]] = []
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    want = set(int(s) for s in snapshot_steps)
    t0 = time.perf_counter()
    m_free = None

    def snap(step: int) -> None:
        if step in want:
            snapshots[step] = {k: v.detach().cpu().clone() for k, v in machine.state_dict().items()}

    for step in range(tr.steps + 1):  # step = number of updates done so far
        snap(step)
        v, p0 = batches(step)
        res = mean_field_D(machine, v, p0, tr.mf, warm=m_free if tr.warm_start else None)
        m_free = res.m_free
        if step % tr.log_every == 0 or step == tr.steps:
            rec = {
                "step": step,
                "D": res.D.item(),
                "phi_free": res.phi_free,
                "log_z": res.log_z_used,
                "free_iters": res.free_iters,
                "free_change": res.free_change,
                "clamped_change": res.clamped_change,
                "sum_p": res.log_p.exp().sum().item(),
                "seconds": time.perf_counter() - t0,
            }
            if on_log is not None:
                with torch.no_grad():
                    rec.update(on_log(step, machine, res) or {})
            history.append(rec)
            if progress:
                print(f"{desc} step {step}/{tr.steps}: D={rec['D']:.4f} ({rec['seconds']:.0f} s)", flush=True)
        if step == tr.steps:
            break
        opt.zero_grad(set_to_none=True)
        res.loss.backward()
        opt.step()
    return {"history": history, "snapshots": snapshots}


# =================================================================================================
# 6. Exact enumeration (small machines: App. D and the tests)
# =================================================================================================


def all_states(n: int, *, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """All 2^n spin configurations (2^n, n) in +-1; row k is the binary code of k, first unit the
    most significant bit (so a (visible, hidden) split of the units is a (2^nv, 2^nh) reshape)."""
    if not 0 < n <= 24:
        raise ValueError(f"exact enumeration needs 1 <= n <= 24 units, got {n}")
    k = torch.arange(2**n, device=device)
    bits = (k[:, None] >> torch.arange(n - 1, -1, -1, device=device)) & 1
    return bits.to(dtype) * 2 - 1


def log_weight(s: torch.Tensor, J: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ln p~(s) = s^T J s + b.s (sum over ordered pairs) for a batch of states (..., N)."""
    return _quad(s, J, s) + s @ b


def exact_log_z(J: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ln Z = ln sum_s p~(s) by enumerating all 2^N states (differentiable)."""
    return torch.logsumexp(log_weight(all_states(J.shape[0], dtype=J.dtype, device=J.device), J, b), 0)


def exact_visible_log_probs(machine: BoltzmannMachine) -> torch.Tensor:
    """ln p(v) for every visible state (2^nv,), in the order of ``all_states(nv)`` (differentiable)."""
    J, b = machine.couplings()
    lw = log_weight(all_states(machine.n, dtype=J.dtype, device=J.device), J, b)
    marg = torch.logsumexp(lw.reshape(2**machine.n_visible, 2**machine.n_hidden), 1)  # ln sum_h p~(v, h)
    return marg - torch.logsumexp(marg, 0)


def visible_index(v: torch.Tensor) -> torch.Tensor:
    """Row of ``all_states(nv)`` holding each visible configuration v (B, nv) in +-1."""
    nv = v.shape[1]
    bits = (v > 0).to(torch.int64)
    return (bits * (2 ** torch.arange(nv - 1, -1, -1, device=v.device))).sum(1)


def exact_D(machine: BoltzmannMachine, v: torch.Tensor, p0: torch.Tensor) -> torch.Tensor:
    """The exact relative entropy D(p0 || p) of paper Eq. 1 (differentiable)."""
    log_p = exact_visible_log_probs(machine)[visible_index(v)]
    p0 = p0.to(log_p.dtype)
    return (torch.special.xlogy(p0, p0) - p0 * log_p).sum()


# =================================================================================================
# 7. Patch data: binarised MNIST patches as +-1 patterns (paper section 3; spec section 4)
# =================================================================================================

THRESHOLD = 50 / 255  # paper: "We binarize the MNIST images with a threshold (50/255)" (ink: x >= 50/255)


def patch_codes(images: torch.Tensor, size: int, *, threshold: float = THRESHOLD, batch: int = 10_000) -> torch.Tensor:
    """Integer code of every binarised size x size patch (stride 1, every position) of images
    (N, 1, H, W) in [0, 1] -> (N * P,) int64, bit k = pixel k of the row-major patch (ink = 1).

    Computed as a convolution with weights 2^k in float64 (exact below 2^53), in two 32-bit halves
    for 8x8: about 100x faster than unfolding 26 M patches into int64 tensors.
    """
    if size not in (4, 8):
        raise ValueError(f"patch size must be 4 or 8, got {size}")
    k2 = size * size
    halves = 1 if k2 <= 32 else 2
    w = torch.zeros(halves, 1, size, size, dtype=torch.float64)
    powers = 2.0 ** torch.arange(min(k2, 32), dtype=torch.float64)
    for h in range(halves):
        w[h, 0].view(-1)[32 * h : 32 * h + len(powers)] = powers
    out = []
    for i in range(0, len(images), batch):
        bits = (images[i : i + batch] >= threshold).to(torch.float64)
        c = F.conv2d(bits, w).round().to(torch.int64)  # (n, halves, H', W')
        code = c[:, 0] if halves == 1 else (c[:, 1] << 32) | c[:, 0]
        out.append(code.reshape(-1))
    return torch.cat(out)


def decode(codes: torch.Tensor, size: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Codes (M,) -> +-1 patterns (M, size*size) in row-major pixel order (inverse of patch_codes)."""
    shifts = torch.arange(size * size, device=codes.device)
    bits = (codes.unsqueeze(1) >> shifts) & 1
    return to_spins(bits, dtype)


@dataclass
class PatternSet:
    """Distinct patterns with their target probabilities p0 (the data of one machine)."""

    patterns: torch.Tensor  # (K, nv) +-1
    p0: torch.Tensor  # (K,) sums to 1
    coverage: float  # fraction of all patch occurrences these patterns cover
    n_for_98: int  # how many of the most frequent patterns cover 98 % of the occurrences
    n_distinct: int  # distinct patterns among all patches
    n_patches: int
    sorted_counts: torch.Tensor = field(repr=False, default=None)  # occurrences, most frequent first

    def coverage_of(self, k: int) -> float:
        """Fraction of all occurrences covered by the k most frequent patterns."""
        return (self.sorted_counts[:k].sum() / self.sorted_counts.sum()).item()


def top_patterns(
    images: torch.Tensor,
    *,
    size: int = 4,
    k: int = 679,
    threshold: float = THRESHOLD,
    dtype: torch.dtype = torch.float64,
) -> PatternSet:
    """The k most frequent binarised size x size patterns with renormalised frequencies.

    Paper: "Of all 2^16 possible patches, 679 patches contain over 98% of all occurences"; the
    679 are the stage-1 training set (one batch).
    """
    if size != 4:
        raise ValueError(f"top_patterns enumerates 4x4 codes (2^16); got size {size}")
    counts = torch.bincount(patch_codes(images, 4, threshold=threshold), minlength=2**16)
    order = torch.argsort(counts, descending=True, stable=True)
    sorted_counts = counts[order].to(torch.float64)
    total = sorted_counts.sum()
    cum = sorted_counts.cumsum(0) / total
    if not 0 < k <= int((counts > 0).sum()):
        raise ValueError(f"k={k} must be in [1, {(counts > 0).sum().item()}] (the distinct patterns present)")
    top = order[:k]
    p0 = sorted_counts[:k] / sorted_counts[:k].sum()
    return PatternSet(
        decode(top, 4, dtype),
        p0.to(dtype),
        cum[k - 1].item(),
        int((cum < 0.98).sum()) + 1,
        int((counts > 0).sum()),
        int(total),
        sorted_counts,
    )


def sample_patch_codes(
    images: torch.Tensor, n: int, *, size: int = 8, seed: int = 0, threshold: float = THRESHOLD
) -> torch.Tensor:
    """A fixed random sample of ``n`` patch codes (uniform over images and positions, without
    replacement): the stage-2 data set ("approximately 600000 examples", M4)."""
    codes = patch_codes(images, size, threshold=threshold)
    if not 0 < n <= len(codes):
        raise ValueError(f"n={n} must be in [1, {len(codes)}]")
    g = torch.Generator().manual_seed(seed)
    return codes[torch.randperm(len(codes), generator=g)[:n]]


def batch_of_codes(
    codes: torch.Tensor, size: int, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of example codes -> (distinct patterns (K, nv) +-1, p0 (K,) = multiplicity / batch):
    the batch's empirical distribution, which Eq. 1 and the batch normalisation work on."""
    uniq, counts = torch.unique(codes, return_counts=True)
    return decode(uniq, size, dtype).to(device), (counts.to(dtype) / len(codes)).to(device)


def epoch_batches(
    codes: torch.Tensor,
    batch_size: int,
    *,
    size: int,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> BatchFn:
    """Step -> batch: consecutive batches of a per-epoch shuffle of the example codes."""
    per_epoch = max(1, len(codes) // batch_size)

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = divmod(step, per_epoch)
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(len(codes), generator=g)
        return batch_of_codes(codes[order[i * batch_size : (i + 1) * batch_size]], size, dtype, device)

    return batch


# =================================================================================================
# 8. The staged machine: four copies of the 4x4 machine + fully connected top units (Fig. 2b)
# =================================================================================================


def quadrant_visible(q: int) -> list[int]:
    """Visible indices (row-major 8x8 patch) of quadrant q = 2 * row + col (each a 4x4 sub-patch
    in the small machine's own row-major order)."""
    qr, qc = divmod(q, 2)
    return [(4 * qr + i) * 8 + 4 * qc + j for i in range(4) for j in range(4)]


def staged_masks(
    n_sub_hidden: int, n_top: int, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparsity of the 64 + (4 n_sub + n_top) machine (spec section 4, derived from Fig. 2):
    visible-sub block-diagonal per quadrant, sub-sub block-diagonal, sub-top dense, top-top dense,
    no visible-top couplings. Hidden order: sub-machine 0..3 (n_sub each), then the top units."""
    n_sub = 4 * n_sub_hidden
    nh = n_sub + n_top
    w_mask = torch.zeros(64, nh, dtype=dtype)
    jh_mask = torch.zeros(nh, nh, dtype=dtype)
    for q in range(4):
        hs = slice(q * n_sub_hidden, (q + 1) * n_sub_hidden)
        w_mask[quadrant_visible(q), hs] = 1
        jh_mask[hs, hs] = 1
    jh_mask[:n_sub, n_sub:] = 1
    jh_mask[n_sub:, :n_sub] = 1
    jh_mask[n_sub:, n_sub:] = 1
    jh_mask.fill_diagonal_(0)
    return w_mask, jh_mask


def staged_machine(
    small: BoltzmannMachine, *, n_top: int = 128, init_std: float = 0.01, generator: torch.Generator | None = None
) -> BoltzmannMachine:
    """The 64-visible machine of stage 2: each 4x4 quadrant gets a copy of the trained small
    machine (its W, J_h and b_h), plus ``n_top`` new top units coupled to all sub-machine hidden
    units and to each other (new couplings ~ N(0, init_std^2), top fields 0). All couplings stay
    trainable within the block pattern (M5: frozen vs fine-tuned is not said; copies not tied)."""
    if small.n_visible != 16:
        raise ValueError(f"the stage-1 machine must have 16 visible units (4x4), got {small.n_visible}")
    ns = small.n_hidden
    w_mask, jh_mask = staged_masks(ns, n_top, small.W.dtype)
    big = BoltzmannMachine(
        64, 4 * ns + n_top, w_mask=w_mask, jh_mask=jh_mask, init_std=init_std, dtype=small.W.dtype, generator=generator
    )
    with torch.no_grad():
        W, Jh, bh = big.weights().clone(), big.hidden_couplings().clone(), big.bh.clone()
        sW, sJ, sb = small.weights(), small.hidden_couplings(), small.bh
        for q in range(4):
            hs = slice(q * ns, (q + 1) * ns)
            W[quadrant_visible(q), hs] = sW
            Jh[hs, hs] = sJ
            bh[hs] = sb
        big.load_couplings(W, Jh, bh)
    return big


def top_units(machine: BoltzmannMachine, n_top: int) -> tuple[int, int]:
    """(start, stop) of the output units of a staged machine: its ``n_top`` top hidden units."""
    return machine.n_hidden - n_top, machine.n_hidden


# =================================================================================================
# 9. The unrolled network: the clamped iteration as a frozen conv layer, the classifier on top
# =================================================================================================


class MeanFieldConv(nn.Module):
    """The mean-field Boltzmann network as a K x K, stride-1, unpadded "convolution" (paper
    section 4): every patch is clamped on the visible units (m_v = 2x - 1, no binarisation: M11)
    and ``iters`` shared-weight steps of Eq. 5 from m_h = 0 give the hidden magnetisations; the
    units ``outputs`` = (start, stop) are the channels. 28x28 -> (stop - start) x (29 - K)^2.

    Implementation: u = 2 W^T m_v + b_h for all patches is one conv; then every step is two
    (patches, nh) x (nh, nh) matmuls on the unfolded patches (a batched matrix iteration).
    Frozen: the parameters are buffers (no gradient to them), gradients flow to the input.
    """

    def __init__(
        self,
        W: torch.Tensor,
        Jh: torch.Tensor,
        bh: torch.Tensor,
        *,
        kernel: int,
        iters: int = 20,
        outputs: tuple[int, int] | None = None,
        chunk: int = 1024,
    ):
        super().__init__()
        if W.shape[0] != kernel * kernel:
            raise ValueError(f"W must have kernel^2 = {kernel * kernel} rows, got {tuple(W.shape)}")
        if iters < 1:
            raise ValueError(f"iters must be >= 1, got {iters}")
        nh = W.shape[1]
        self.kernel, self.iters, self.nh = kernel, iters, nh
        self.outputs = tuple(outputs) if outputs is not None else (0, nh)
        if not 0 <= self.outputs[0] < self.outputs[1] <= nh:
            raise ValueError(f"outputs {self.outputs} must lie within [0, {nh}]")
        self.chunk = chunk
        f32 = torch.float32
        self.register_buffer("weight", (2 * W).T.reshape(nh, 1, kernel, kernel).to(f32).contiguous())
        self.register_buffer("bias", bh.to(f32).clone())
        self.register_buffer("J2h", (2 * Jh).to(f32).contiguous())
        self.register_buffer("Jh_sq", (Jh * Jh).to(f32).contiguous())
        # Eq. 5 rewritten for fewer passes over memory: -4 m o ((1 - m^2) Jsq) = m o k + m o (m^2 (4 Jsq))
        # with k = -4 * column sums of Jsq, and m o k = m diag(k) folded into the zero diagonal of 2 J_h:
        #   m <- tanh(u + m (2 J_h + diag k) + m o (m^2 (4 Jsq)))
        self.register_buffer("J2k", (2 * Jh - 4 * torch.diag((Jh * Jh).sum(0))).to(f32).contiguous())
        self.register_buffer("Jh_sq4", (4 * Jh * Jh).to(f32).contiguous())

    @classmethod
    def from_machine(
        cls, machine: BoltzmannMachine, *, kernel: int, iters: int = 20, outputs: tuple[int, int] | None = None
    ) -> MeanFieldConv:
        with torch.no_grad():
            return cls(
                machine.weights(), machine.hidden_couplings(), machine.bh, kernel=kernel, iters=iters, outputs=outputs
            )

    def with_iters(self, iters: int) -> MeanFieldConv:
        """The same layer unrolled ``iters`` times (shares the buffers; a surrogate for attacks)."""
        other = MeanFieldConv.__new__(MeanFieldConv)
        nn.Module.__init__(other)
        other.kernel, other.nh, other.outputs, other.chunk, other.iters = (
            self.kernel,
            self.nh,
            self.outputs,
            self.chunk,
            iters,
        )
        for name, buf in self.named_buffers():
            other.register_buffer(name, buf)
        return other

    @property
    def out_channels(self) -> int:
        return self.outputs[1] - self.outputs[0]

    def out_size(self, size: int = 28) -> int:
        return size - self.kernel + 1

    def iterate(self, u: torch.Tensor) -> torch.Tensor:
        """``iters`` steps of Eq. 5 on visible inputs u (P, nh) -> outputs (P, out_channels).

        Two GEMMs and four elementwise passes per step (the literal Eq. 5 of ``clamped_step``
        needs seven; test: both agree). Without autograd the buffers are reused in place."""
        m = torch.tanh(u)  # the first step from m_h = 0
        if torch.is_grad_enabled() and u.requires_grad:
            for _ in range(self.iters - 1):
                m = torch.tanh(torch.addmm(u, m, self.J2k) + m * ((m * m) @ self.Jh_sq4))
        else:
            m2, q, a = torch.empty_like(u), torch.empty_like(u), torch.empty_like(u)
            for _ in range(self.iters - 1):
                torch.mul(m, m, out=m2)
                torch.mm(m2, self.Jh_sq4, out=q)
                torch.addmm(u, m, self.J2k, out=a)
                q.mul_(m).add_(a).tanh_()  # q becomes the new m
                m, q = q, m
        return m[:, self.outputs[0] : self.outputs[1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        u = F.conv2d(2 * x - 1, self.weight, self.bias)  # (N, nh, H', W')
        hp, wp = u.shape[2:]
        u = u.permute(0, 2, 3, 1).reshape(-1, self.nh)  # (N * H' * W', nh): one row per patch
        if torch.is_grad_enabled() and u.requires_grad:
            m = self.iterate(u)
        else:  # no autograd graph; on the CPU in chunks of patches whose buffers stay in cache
            c = self.chunk if u.device.type == "cpu" else len(u)
            m = torch.cat([self.iterate(u[i : i + c]) for i in range(0, len(u), c)])
        return m.reshape(n, hp, wp, -1).permute(0, 3, 1, 2)  # (N, C_out, H', W')

    def flops(self, n_images: int, size: int = 28) -> float:
        """Floating-point operations (multiply-add = 2) of the iteration's matmuls for n images."""
        patches = n_images * self.out_size(size) ** 2
        return 2.0 * patches * (self.kernel**2 * self.nh + (self.iters - 1) * 2 * self.nh * self.nh)


class Classifier(nn.Module):
    """The CNN on top of the features (paper section 4 with the stride correction, M6):
    conv(128, 3x3, s2, p1) -> conv(64, 3x3, s2, p1) -> conv(32, 3x3, s1, p1), ReLU, then FC -> 10.
    On 128x21x21: 21 -> 11 -> 6 -> 6, FC 1152 -> 10 (the distillation section's 32x6x6)."""

    def __init__(self, in_channels: int, in_size: int, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 128, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(128, 64, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(64, 32, 3, stride=1, padding=1)
        s = (in_size + 1) // 2
        s = (s + 1) // 2
        self.body_shape = (32, s, s)
        self.fc = nn.Linear(32 * s * s, classes)

    def body(self, f: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(f.float()))
        h = F.relu(self.conv2(h))
        return F.relu(self.conv3(h))  # (N, 32, s, s): the activations the distilled net regresses

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(f).flatten(1))


class FeatureNet(nn.Module):
    """Image (N, 1, 28, 28) in [0, 1] -> class scores: frozen feature layer + trained classifier
    (the MFBM network, or the RBM network with an RBM layer as features)."""

    def __init__(self, features: MeanFieldConv, classifier: Classifier):
        super().__init__()
        self.features, self.classifier = features, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def with_iters(self, iters: int) -> FeatureNet:
        """The same network with the feature layer unrolled ``iters`` times (shared weights): the
        shallow surrogate an adaptive attacker takes gradients from (no vanishing through 20 steps)."""
        return FeatureNet(self.features.with_iters(iters), self.classifier)


class DistilledNet(nn.Module):
    """Paper section 4: five ReLU convs regress the classifier's 32x6x6 activations from the image;
    the original FC layer is put back on top. (8x8, 256), (1x1, 256), (3x3 s2 p1, 128),
    (3x3 s2 p1, 128), (3x3 s1 p1, 32): 28 -> 21 -> 21 -> 11 -> 6 -> 6. Input m_v = 2x - 1 (assumed,
    as for the MFBM layer); ``kernel`` follows the feature layer (8, or 4 for the 4x4 machine)."""

    def __init__(self, fc: nn.Linear, *, kernel: int = 8):
        super().__init__()
        self.convs = nn.ModuleList(
            [
                nn.Conv2d(1, 256, kernel),
                nn.Conv2d(256, 256, 1),
                nn.Conv2d(256, 128, 3, stride=2, padding=1),
                nn.Conv2d(128, 128, 3, stride=2, padding=1),
                nn.Conv2d(128, 32, 3, stride=1, padding=1),
            ]
        )
        self.fc = nn.Linear(fc.in_features, fc.out_features)
        self.fc.load_state_dict(fc.state_dict())
        self.fc.requires_grad_(False)  # the original network's FC layer, unchanged

    def body(self, x: torch.Tensor) -> torch.Tensor:
        h = 2 * x - 1
        for conv in self.convs:
            h = F.relu(conv(h))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x).flatten(1))


@torch.no_grad()
def extract(
    layer: nn.Module,
    x: torch.Tensor,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float16,
    store: str | torch.device = "cpu",
) -> torch.Tensor:
    """Features of all images, computed in float32 in batches and kept in ``dtype`` on ``store``:
    128x21x21 float32 features of 60,000 images need 13.5 GB; float16 halves that (the classifier
    casts back to float32). Pass store="cuda" to keep them on the GPU."""
    layer = layer.to(device).eval()
    out = None
    for i in range(0, len(x), batch_size):
        f = layer(x[i : i + batch_size].to(device)).to(dtype)
        if out is None:
            out = torch.empty(len(x), *f.shape[1:], dtype=dtype, device=store)
        out[i : i + len(f)] = f.to(store)
    return out


# =================================================================================================
# 10. Noise rejection (paper section 5, Fig. 4; App. E, Figs. 8-9)
# =================================================================================================


@torch.no_grad()
def noise_response(
    W: torch.Tensor,
    Jh: torch.Tensor,
    bh: torch.Tensor,
    v: torch.Tensor,
    epsilons: Sequence[float],
    *,
    n_noise: int,
    iters: int = 20,
    outputs: slice | None = None,
    seed: int = 0,
    chunk: int = 200_000,
) -> torch.Tensor:
    """Delta(eps) per pattern: the mean over ``n_noise`` draws of ||m(v + n) - m(v)||_2, n ~ U[-eps, eps]^nv.

    v: clean patterns (P, nv) in +-1; m = the clamped hidden magnetisations after ``iters`` steps of
    Eq. 5 (the network's output), restricted to ``outputs`` (the 128 top units of the staged
    machine; all hidden units by default). The noisy input is not clipped to [-1, 1] (M8: the
    paper adds noise "to the input vectors"); the average is over the norms (M8).
    Returns (E, P).
    """
    outputs = outputs if outputs is not None else slice(None)
    g = torch.Generator(device=v.device).manual_seed(seed)
    clean = clamped_phase(v, W, Jh, bh, iters=iters)[:, outputs]  # (P, n_out)
    P, nv = v.shape
    out = torch.zeros(len(epsilons), P, dtype=v.dtype, device=v.device)
    per = max(1, chunk // P)  # noise draws per chunk, all patterns at once
    for e, eps in enumerate(epsilons):
        total = torch.zeros(P, dtype=v.dtype, device=v.device)
        done = 0
        while done < n_noise:
            k = min(per, n_noise - done)
            noise = (torch.rand(k, P, nv, generator=g, dtype=v.dtype, device=v.device) * 2 - 1) * eps
            noisy = clamped_phase((v.unsqueeze(0) + noise).reshape(k * P, nv), W, Jh, bh, iters=iters)
            diff = noisy[:, outputs].reshape(k, P, -1) - clean.unsqueeze(0)
            total += diff.norm(dim=-1).sum(0)
            done += k
        out[e] = total / n_noise
    return out


# =================================================================================================
# 11. The paper's white-box attack: iterative L2 gradient steps, first misclassified iterate
# =================================================================================================


def iterative_l2(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    step: float = 0.1,
    max_steps: int = 100,
    loss: str = "ce",
    grad_model: nn.Module | None = None,
    refine: int = 0,
    batch_size: int = 100,
    device: str | torch.device = "cpu",
    name: str = "iterative_l2",
):
    """Paper section 4: "an iterative gradient based (white box) method with L2 constraints [...]
    record the mean squared error for the first image iteration that is misclassified".

    x_{t+1} = clip(x_t + step * g_t / ||g_t||_2, 0, 1), g_t = d loss / dx at x_t (M9: the step
    schedule is not given; a fixed L2 step of ``step`` pixel units). The distance of an image is
    ||x_t - x||_2 of its first misclassified iterate (0 if misclassified clean, inf if none within
    ``max_steps``). Images leave the batch once fooled (that halves the cost on robust models).
    ``grad_model``: take the gradient from this model instead (e.g. a shallower unrolling) while
    success is judged on ``model`` (an adaptive attack against vanishing gradients).
    ``refine``: bisection steps on the segment between the last correct and the first misclassified
    iterate (forward passes only): the result is then a point of the same path at the resolution
    of a step / 2^refine, as if the attack had taken much smaller steps near the boundary.
    Returns a ``robustlib.attacks.DistanceResult`` (so it combines with ``attacks.compound``).
    """
    from ...attacks import DistanceResult, margin_loss
    from ...data import check_images, check_labels

    check_images(x)
    check_labels(y, len(x))
    if step <= 0 or max_steps < 1:
        raise ValueError(f"step ({step}) must be > 0 and max_steps ({max_steps}) >= 1")
    if loss not in ("ce", "margin"):
        raise ValueError(f"loss must be 'ce' or 'margin', got {loss!r}")
    lf = (
        (lambda z, t: F.cross_entropy(z, t, reduction="sum"))
        if loss == "ce"
        else (lambda z, t: margin_loss(z, t).sum())
    )
    gm = grad_model if grad_model is not None else model
    was, was_g = model.training, gm.training
    model.eval().to(device)
    gm.eval().to(device)
    dist = torch.full((len(x),), math.inf, dtype=torch.float64)
    adv = x.clone()
    try:
        for s in range(0, len(x), batch_size):
            x0, y0 = x[s : s + batch_size].to(device), y[s : s + batch_size].to(device)
            xt = x0.clone()
            xprev = x0.clone()
            active = torch.arange(len(x0), device=device)
            for t in range(max_steps + 1):
                with torch.no_grad():
                    fooled = model(xt[active]).argmax(1) != y0[active]
                hit = active[fooled]
                if t > 0 and refine > 0 and len(hit):
                    xt[hit] = _bisect(model, xprev[hit], xt[hit], y0[hit], refine)
                d = (xt[hit] - x0[hit]).flatten(1).to(torch.float64).norm(dim=1)
                dist[s + hit.cpu()] = d.cpu()
                adv[s + hit.cpu()] = xt[hit].cpu().to(x.dtype)
                active = active[~fooled]
                if len(active) == 0 or t == max_steps:
                    break
                xa = xt[active].detach().requires_grad_(True)
                with torch.enable_grad():
                    (g,) = torch.autograd.grad(lf(gm(xa), y0[active]), xa)
                gn = g.flatten(1).norm(dim=1).clamp_min(1e-30).reshape(-1, 1, 1, 1)
                xprev[active] = xt[active]
                xt[active] = (xt[active] + step * g / gn).clamp(0, 1).detach()
    finally:
        model.train(was)
        gm.train(was_g)
    return DistanceResult(name, "l2", dist, adv)


@torch.no_grad()
def _bisect(model: nn.Module, good: torch.Tensor, bad: torch.Tensor, y: torch.Tensor, steps: int) -> torch.Tensor:
    """Closest misclassified point on each segment good -> bad (good correct, bad misclassified)."""
    lo = torch.zeros(len(good), 1, 1, 1, device=good.device, dtype=good.dtype)
    hi = torch.ones_like(lo)
    for _ in range(steps):
        mid = (lo + hi) / 2
        fooled = (model(good + mid * (bad - good)).argmax(1) != y).reshape(-1, 1, 1, 1)
        hi = torch.where(fooled, mid, hi)
        lo = torch.where(fooled, lo, mid)
    return good + hi * (bad - good)


def _iterative_l2_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: None = None,
    *,
    step: float,
    max_steps: int,
    loss: str = "ce",
    grad_model: nn.Module | None = None,
    refine: int = 0,
) -> torch.Tensor:
    """:func:`iterative_l2` as a minimal L2 attack of the registry: the adversarials (x where none
    was found within ``max_steps``); run it through ``attacks.min_distance(attack="mfbm_iterative_l2")``."""
    res = iterative_l2(
        model,
        x.cpu(),
        y.cpu(),
        step=step,
        max_steps=max_steps,
        loss=loss,
        grad_model=grad_model,
        refine=refine,
        device=x.device,
    )
    return res.adversarials.to(x.device)


def _register() -> None:
    from ... import attacks

    attacks.register(attacks.AttackInfo("mfbm_iterative_l2", "l2", True, _iterative_l2_attack))


_register()
