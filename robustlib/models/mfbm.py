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

    def __init__(self, n_visible: int, n_hidden: int, *, hidden_couplings: bool = True, init_std: float = 0.01,
                 w_mask: torch.Tensor | None = None, jh_mask: torch.Tensor | None = None,
                 dtype: torch.dtype = torch.float64, generator: torch.Generator | None = None):
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
            raise ValueError(f"masks must have shapes {(nv, nh)} and {(nh, nh)}, got {tuple(w_mask.shape)}, "
                             f"{tuple(jh_mask.shape)}")
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


def local_field(m: torch.Tensor, J: torch.Tensor, b: torch.Tensor, order: int) -> torch.Tensor:
    """R(m) = d(Phi - S)/dm, so that the stationarity condition is m = tanh(R(m)) (paper Eq. 4).

    Orders 1-2 in closed form (R1 = b + 2 J m, R2 = -4 m (J^2 d)); orders 3-4 by autograd of the
    vectorised Phi (the hand-written R3/R4 of the paper's appendix are only the check, test T1).
    """
    J, b = J.detach(), b.detach()
    if order <= 2:
        r = b + 2 * (m @ J)
        if order == 2:
            r = r - 4 * m * ((1 - m * m) @ (J * J))
        return r
    with torch.enable_grad():
        x = m.detach().requires_grad_(True)
        (r,) = torch.autograd.grad(sum(phi_orders(x, J, b, order)).sum(), x)
    return r


# =================================================================================================
# 3. Fixed points: the free phase (all units, 4th order) and the clamped phase (Eq. 5)
# =================================================================================================


@dataclass(frozen=True)
class MeanFieldConfig:
    """How the mean-field quantities are computed (paper section 3; spec sections 2-3)."""

    free_order: int = 4  # paper: 4th order for the free expectation values
    free_iters: int = 100  # paper: 100 free iterations (we stop early once converged to ``tol``)
    clamped_iters: int = 20  # paper: 20 clamped iterations at 2nd order (Eq. 5, M2)
    damping: float = 1.0  # m <- (1 - damping) m + damping tanh(R); 1 = the paper's plain iteration
    tol: float = 1e-10  # early stop of the free phase when max |m_new - m| < tol
    normalise: str = "when>1"  # batch normalisation of probabilities (M10): "none", "when>1", "always"
    weighting: str = "exact"  # gradient: "exact" (of Eq. 1) or "p0/p" (the paper's printed Eq. 2/3, M1)

    def __post_init__(self) -> None:
        if not 1 <= self.free_order <= 4:
            raise ValueError(f"free_order must be in 1..4, got {self.free_order}")
        if self.free_iters < 1 or self.clamped_iters < 1:
            raise ValueError(f"free_iters ({self.free_iters}) and clamped_iters ({self.clamped_iters}) must be >= 1")
        if not 0 < self.damping <= 1:
            raise ValueError(f"damping must be in (0, 1], got {self.damping}")
        if self.normalise not in ("none", "when>1", "always"):
            raise ValueError(f"normalise must be 'none', 'when>1' or 'always', got {self.normalise!r}")
        if self.weighting not in ("exact", "p0/p"):
            raise ValueError(f"weighting must be 'exact' or 'p0/p', got {self.weighting!r}")


@torch.no_grad()
def free_phase(J: torch.Tensor, b: torch.Tensor, *, order: int = 4, iters: int = 100, damping: float = 1.0,
               tol: float = 0.0, m0: torch.Tensor | None = None) -> tuple[torch.Tensor, int, float]:
    """Iterate m <- tanh(R(m)) from m0 (default 0, the paper's start) for all N units.

    Returns (m (N,), iterations done, last max |change|). The paper runs a fixed 100 iterations; we
    stop as soon as the change is below ``tol`` (same fixed point, fewer steps).
    """
    m = torch.zeros(J.shape[0], dtype=J.dtype, device=J.device) if m0 is None else m0.detach().clone()
    change = math.inf
    for it in range(1, iters + 1):
        new = torch.tanh(local_field(m, J, b, order))
        new = m + damping * (new - m)
        change = (new - m).abs().max().item()
        m = new
        if change < tol:
            break
    return m, it, change


def clamped_step(m_h: torch.Tensor, u: torch.Tensor, J2h: torch.Tensor, Jh_sq: torch.Tensor) -> torch.Tensor:
    """One synchronous step of paper Eq. 5 for a batch of hidden magnetisations m_h (B, nh):

        m_h <- tanh[ u + 2 J_h m_h - 4 m_h * ((J_h o J_h)(1 - m_h^2)) ],  u = 2 W^T m_v + b_h,

    with J2h = 2 J_h and Jh_sq = J_h o J_h precomputed (two (B, nh) x (nh, nh) matmuls per step).
    """
    return torch.tanh(u + m_h @ J2h - 4 * m_h * ((1 - m_h * m_h) @ Jh_sq))


def clamped_phase(v: torch.Tensor, W: torch.Tensor, Jh: torch.Tensor, bh: torch.Tensor, *, iters: int = 20,
                  damping: float = 1.0) -> torch.Tensor:
    """Hidden magnetisations (B, nh) with the visible units clamped to v (B, nv), from m_h = 0.

    For v = +-1 this is exactly the 2nd-order stationarity condition restricted to the hidden units
    (every term with a visible d = 1 - v^2 vanishes; test T4). For non-binary v (images at test
    time) it is Eq. 5 as printed, i.e. without the visible reaction term (spec section 5).
    """
    u = 2 * (v @ W) + bh  # (B, nh): the visible input, constant over the iterations
    J2h, Jh_sq = 2 * Jh, Jh * Jh
    m = torch.zeros_like(u)
    for _ in range(iters):
        new = clamped_step(m, u, J2h, Jh_sq)
        m = new if damping == 1.0 else m + damping * (new - m)
    return m


def phi_clamped(v: torch.Tensor, m_h: torch.Tensor, W: torch.Tensor, Jh: torch.Tensor,
                bh: torch.Tensor) -> torch.Tensor:
    """2nd-order Phi with the visible units clamped to v = +-1 (B,): the estimate of
    ln sum_h p~(v, h). S(v) = 0 and every d_v = 0, so only hidden-hidden terms survive in Phi_2."""
    d = 1 - m_h * m_h
    return (entropy(m_h) + 2 * ((v @ W) * m_h).sum(-1) + _quad(m_h, Jh, m_h) + m_h @ bh
            + _quad(d, Jh * Jh, d))


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


def mean_field_D(machine: BoltzmannMachine, v: torch.Tensor, p0: torch.Tensor, cfg: MeanFieldConfig = MeanFieldConfig(),
                 *, m0: torch.Tensor | None = None) -> MeanFieldResult:
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
    m_free, n_it, change = free_phase(J, b, order=cfg.free_order, iters=cfg.free_iters, damping=cfg.damping,
                                      tol=cfg.tol, m0=m0)
    phi_f = phi(m_free, J, b, cfg.free_order)  # differentiable in (J, b) at fixed m
    W, Jh, bh = machine.weights(), machine.hidden_couplings(), machine.bh
    with torch.no_grad():
        m_c = clamped_phase(v, W, Jh, bh, iters=cfg.clamped_iters, damping=cfg.damping)
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
    return MeanFieldResult(D, loss, log_p.detach(), phi_f.item(), float(log_z), m_free, n_it, change)


# =================================================================================================
# 5. Training a machine: Adam on D (the paper does not give optimiser or schedule: M12)
# =================================================================================================


@dataclass(frozen=True)
class MachineTraining:
    steps: int = 1000
    lr: float = 0.01
    mf: MeanFieldConfig = field(default_factory=MeanFieldConfig)
    log_every: int = 10  # history granularity (and the exact-D callback)


BatchFn = Callable[[int], tuple[torch.Tensor, torch.Tensor]]  # step -> (v (B, nv) +-1, p0 (B,))


def train_machine(machine: BoltzmannMachine, batches: BatchFn, tr: MachineTraining, *,
                  snapshot_steps: Sequence[int] = (), on_log: Callable[[int, BoltzmannMachine, MeanFieldResult],
                                                                          dict[str, float]] | None = None,
                  progress: bool = False, desc: str = "machine") -> dict[str, Any]:
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

    def snap(step: int) -> None:
        if step in want:
            snapshots[step] = {k: v.detach().cpu().clone() for k, v in machine.state_dict().items()}

    for step in range(tr.steps + 1):  # step = number of updates done so far
        snap(step)
        v, p0 = batches(step)
        res = mean_field_D(machine, v, p0, tr.mf)
        if step % tr.log_every == 0 or step == tr.steps:
            rec = {"step": step, "D": res.D.item(), "phi_free": res.phi_free, "log_z": res.log_z_used,
                   "free_iters": res.free_iters, "free_change": res.free_change,
                   "sum_p": res.log_p.exp().sum().item(), "seconds": time.perf_counter() - t0}
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
