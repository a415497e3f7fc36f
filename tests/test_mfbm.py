"""Tests for robustlib.models.mfbm: the mean-field expansion against independent computations
(literal distinct-index loops, finite differences, exact enumeration), the clamped equation, the
gradient, the batch normalisation, the patch data, the staged machine and the unrolled network.

T1-T3 are the spec's mandatory expansion checks (float64 throughout)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from robustlib.models import mfbm as M

DT = torch.float64


def random_couplings(n: int, lam: float, seed: int, field_scale: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.triu(torch.randn(n, n, dtype=DT, generator=g), 1)
    b = torch.randn(n, dtype=DT, generator=g) * field_scale
    return (a + a.T) * lam, b


def random_m(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, dtype=DT, generator=g) * 1.6 - 0.8)


# --- literal reference sums over ordered tuples of mutually distinct indices --------------------

def distinct(n: int, k: int):
    return itertools.permutations(range(n), k)


def phi_loops(m: torch.Tensor, J: torch.Tensor, b: torch.Tensor) -> list[float]:
    """Phi_1..Phi_4 of the spec, section 2, written as literal loops (no matrix tricks)."""
    m_, J_, b_ = m.tolist(), J.tolist(), b.tolist()
    n = len(m_)
    d = [1 - x * x for x in m_]
    g = [x * (1 - x * x) for x in m_]
    p1 = sum(J_[i][j] * m_[i] * m_[j] for i, j in distinct(n, 2)) + sum(b_[i] * m_[i] for i in range(n))
    p2 = sum(J_[i][j] ** 2 * d[i] * d[j] for i, j in distinct(n, 2))
    p3 = (4 / 3 * sum(J_[i][j] * J_[j][k] * J_[k][i] * d[i] * d[j] * d[k] for i, j, k in distinct(n, 3))
          + 8 / 3 * sum(J_[i][j] ** 3 * g[i] * g[j] for i, j in distinct(n, 2)))
    p4 = (2 * sum(J_[i][j] * J_[j][k] * J_[k][l] * J_[l][i] * d[i] * d[j] * d[k] * d[l] for i, j, k, l in distinct(n, 4))
          + 16 * sum(J_[i][j] ** 2 * J_[j][k] * J_[k][i] * g[i] * g[j] * d[k] for i, j, k in distinct(n, 3))
          - 2 / 3 * sum(J_[i][j] ** 4 * d[i] * d[j] * (1 + 3 * m_[i] ** 2 + 3 * m_[j] ** 2 - 15 * m_[i] ** 2 * m_[j] ** 2)
                        for i, j in distinct(n, 2)))
    return [p1, p2, p3, p4]


def r_loops(m: torch.Tensor, J: torch.Tensor, b: torch.Tensor) -> list[list[float]]:
    """R^(1)..R^(4) of the spec (the paper's appendix formulas with the reconstructed
    coefficients), as literal loops over distinct indices j, k, l != i."""
    m_, J_, b_ = m.tolist(), J.tolist(), b.tolist()
    n = len(m_)
    d = [1 - x * x for x in m_]
    g = [x * (1 - x * x) for x in m_]
    R = [[0.0] * n for _ in range(4)]
    for i in range(n):
        others = [j for j in range(n) if j != i]
        R[0][i] = b_[i] + 2 * sum(J_[i][j] * m_[j] for j in others)
        R[1][i] = -4 * m_[i] * sum(J_[i][j] ** 2 * d[j] for j in others)
        tri = sum(J_[i][j] * J_[j][k] * J_[k][i] * d[j] * d[k] for j, k in itertools.permutations(others, 2))
        R[2][i] = -8 * m_[i] * tri + 16 / 3 * sum(J_[i][j] ** 3 * (1 - 3 * m_[i] ** 2) * g[j] for j in others)
        cyc = sum(J_[i][j] * J_[j][k] * J_[k][l] * J_[l][i] * d[j] * d[k] * d[l]
                  for j, k, l in itertools.permutations(others, 3))
        a = sum(J_[j][k] ** 2 * J_[i][j] * J_[i][k] * g[j] * g[k] for j, k in itertools.permutations(others, 2))
        c = sum(J_[i][j] ** 2 * J_[j][k] * J_[k][i] * g[j] * d[k] for j, k in itertools.permutations(others, 2))
        q = sum(J_[i][j] ** 4 * d[j] * (1 - 3 * m_[i] ** 2 + 3 * m_[j] ** 2 * (5 * m_[i] ** 2 - 3)) for j in others)
        R[3][i] = -16 * m_[i] * cyc - 32 * m_[i] * a + 32 * (1 - 3 * m_[i] ** 2) * c - 16 / 3 * m_[i] * q
    return R


# --- T3: vectorised sums == brute force ----------------------------------------------------------

@pytest.mark.parametrize("n", [4, 7, 10])
def test_T3_vectorised_phi_equals_distinct_index_loops(n):
    J, b = random_couplings(n, 0.4, seed=n)
    m = random_m(n, seed=100 + n)
    fast = [t.item() for t in M.phi_orders(m, J, b, 4)]
    slow = phi_loops(m, J, b)
    for k in range(4):
        assert fast[k] == pytest.approx(slow[k], rel=1e-11, abs=1e-12), f"Phi_{k + 1}"


def test_T3_matrix_identities_by_brute_force_masks():
    """The three matrix formulas of the spec against masked sums over all N^4 index tuples."""
    n = 12
    J, _ = random_couplings(n, 0.3, seed=5)
    m = random_m(n, seed=6)
    d, g = 1 - m * m, m * (1 - m * m)
    idx = torch.arange(n)
    i, j, k, l = torch.meshgrid(idx, idx, idx, idx, indexing="ij")
    all_distinct = ((i != j) & (i != k) & (i != l) & (j != k) & (j != l) & (k != l)).to(DT)
    cyc = (J[i, j] * J[j, k] * J[k, l] * J[l, i] * d[i] * d[j] * d[k] * d[l] * all_distinct).sum()
    i3, j3, k3 = torch.meshgrid(idx, idx, idx, indexing="ij")
    d3 = ((i3 != j3) & (j3 != k3) & (i3 != k3)).to(DT)
    tri = (J[i3, j3] * J[j3, k3] * J[k3, i3] * d[i3] * d[j3] * d[k3] * d3).sum()
    j2jj = (J[i3, j3] ** 2 * J[j3, k3] * J[k3, i3] * g[i3] * g[j3] * d[k3] * d3).sum()
    JD = J * d[None, :]
    assert torch.trace(JD @ JD @ JD).item() == pytest.approx(tri.item(), rel=1e-12)
    r = d * ((J * J) @ d)
    fast_cyc = torch.trace(JD @ JD @ JD @ JD) - 2 * (r * r).sum() + ((d * d) @ J**4 @ (d * d))
    assert fast_cyc.item() == pytest.approx(cyc.item(), rel=1e-11)
    fast_j2jj = ((J * J) * (JD @ J) * g[:, None] * g[None, :]).sum()
    assert fast_j2jj.item() == pytest.approx(j2jj.item(), rel=1e-11)


# --- T1: R == dPhi/dm ----------------------------------------------------------------------------

def test_T1_R_formulas_equal_finite_difference_gradients():
    n = 7
    for lam in (0.5, 0.1):
        J, b = random_couplings(n, lam, seed=7)
        m = random_m(n, seed=8)
        h = 1e-5
        R_paper = r_loops(m, J, b)
        for order in range(1, 5):
            fd = torch.zeros(n, dtype=DT)
            for i in range(n):
                e = torch.zeros(n, dtype=DT)
                e[i] = h
                fd[i] = (M.phi_orders(m + e, J, b, order)[order - 1] - M.phi_orders(m - e, J, b, order)[order - 1]) / (2 * h)
            # the appendix formula (literal loops) and our R (closed form / autograd of Phi)
            assert torch.allclose(torch.tensor(R_paper[order - 1], dtype=DT), fd, atol=2e-8, rtol=0), f"R^({order})"
            for autograd in (False, True):
                ours = M.local_field(m, J, b, order, autograd=autograd)
                if order > 1:
                    ours = ours - M.local_field(m, J, b, order - 1, autograd=autograd)
                assert torch.allclose(ours, fd, atol=2e-8, rtol=0), f"local_field order {order} autograd={autograd}"


# --- T2: order of accuracy against exact enumeration ---------------------------------------------

def test_T2_error_scales_as_lambda4_and_lambda5():
    n, seed = 7, 5
    J0, b = random_couplings(n, 1.0, seed=seed)
    for order, power in ((3, 4), (4, 5)):
        errs = []
        for lam in (0.05, 0.025):
            J = J0 * lam
            m, _, change = M.iterate(J, b, order=order, iters=5000, tol=1e-15)
            assert change < 1e-13
            errs.append(abs(M.phi(m, J, b, order).item() - M.exact_log_z(J, b).item()))
        slope = math.log2(errs[0] / errs[1])
        assert abs(slope - power) <= 0.5, f"order {order}: errors {errs}, slope {slope:.2f}, expected {power}"
        assert errs[0] < 1e-3


def test_exact_log_z_by_literal_sum():
    n = 5
    J, b = random_couplings(n, 0.3, seed=2)
    total = 0.0
    for s in itertools.product((-1.0, 1.0), repeat=n):
        s_ = torch.tensor(s, dtype=DT)
        total += math.exp(sum(J[i, j].item() * s[i] * s[j] for i, j in distinct(n, 2)) + (b @ s_).item())
    assert M.exact_log_z(J, b).item() == pytest.approx(math.log(total), rel=1e-13)


# --- T4: the clamped equation ---------------------------------------------------------------------

def small_machine(nv=4, nh=5, std=0.3, seed=0, hidden=True):
    g = torch.Generator().manual_seed(seed)
    m = M.BoltzmannMachine(nv, nh, init_std=std, generator=g, hidden_couplings=hidden)
    with torch.no_grad():
        m.bh.copy_(torch.randn(nh, dtype=DT, generator=g) * 0.3)
    return m


def test_T4_clamped_equation_is_the_general_2nd_order_field_on_hidden_units():
    mach = small_machine()
    J, b = mach.couplings()
    g = torch.Generator().manual_seed(3)
    v = torch.where(torch.rand(6, 4, generator=g) < 0.5, -1.0, 1.0).to(DT)
    m_h = torch.rand(6, 5, dtype=DT, generator=g) * 1.8 - 0.9
    m = torch.cat([v, m_h], 1)
    general = M.local_field(m, J.detach(), b.detach(), 2)[:, 4:]
    W, Jh, bh = mach.weights().detach(), mach.hidden_couplings().detach(), mach.bh.detach()
    eq5 = 2 * v @ W + bh + 2 * m_h @ Jh - 4 * m_h * ((1 - m_h**2) @ (Jh * Jh))
    assert torch.allclose(general, eq5, atol=1e-13)
    assert torch.allclose(M.clamped_step(m_h, 2 * v @ W + bh, 2 * Jh, Jh * Jh), torch.tanh(eq5), atol=1e-14)
    # the clamped Phi is the general 2nd-order Phi at m = (v, m_h)
    assert torch.allclose(M.phi_clamped(v, m_h, W, Jh, bh), M.phi(m, J.detach(), b.detach(), 2), atol=1e-12)


# --- T5: envelope theorem -------------------------------------------------------------------------

@pytest.mark.parametrize("normalise", ["none", "always"])
def test_T5_autograd_of_D_matches_finite_differences(normalise):
    mach = small_machine(nv=4, nh=4, std=0.2, seed=1)
    v = torch.tensor([[1, -1, 1, -1], [1, 1, -1, -1], [-1, -1, -1, 1]], dtype=DT)
    p0 = torch.tensor([0.5, 0.3, 0.2], dtype=DT)
    # the envelope theorem needs converged fixed points: damped clamped iteration (the plain one
    # oscillates with period 2 on this machine)
    cfg = M.MeanFieldConfig(free_iters=3000, tol=1e-15, clamped_iters=400, clamped_damping=0.5, normalise=normalise)
    res = M.mean_field_D(mach, v, p0, cfg)
    res.D.backward()
    h = 1e-6
    for name, idx in (("W", (1, 2)), ("A", (0, 3)), ("bh", (2,)), ("W", (3, 0))):
        p = getattr(mach, name)
        with torch.no_grad():
            p[idx] += h
            up = M.mean_field_D(mach, v, p0, cfg).D.item()
            p[idx] -= 2 * h
            down = M.mean_field_D(mach, v, p0, cfg).D.item()
            p[idx] += h
        assert p.grad[idx].item() == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-8), name


def test_mean_field_gradient_equals_exact_gradient_in_weak_coupling_limit():
    """The error of the MF gradient shrinks faster than the gradient itself as couplings -> 0."""
    v = torch.tensor([[1, -1, 1, -1, 1], [-1, -1, 1, 1, -1]], dtype=DT)
    p0 = torch.tensor([0.6, 0.4], dtype=DT)
    cfg = M.MeanFieldConfig(free_iters=3000, tol=1e-15, clamped_iters=400, clamped_damping=0.5, normalise="none")
    rel = []
    for std in (0.1, 0.05, 0.025):
        mach = small_machine(nv=5, nh=4, std=std, seed=4)
        with torch.no_grad():
            mach.bh.mul_(std / 0.3)
        M.mean_field_D(mach, v, p0, cfg).D.backward()
        mf = torch.cat([p.grad.flatten() for p in mach.parameters()])
        mach.zero_grad()
        M.exact_D(mach, v, p0).backward()
        ex = torch.cat([p.grad.flatten() for p in mach.parameters()])
        rel.append(((mf - ex).norm() / ex.norm()).item())
    # The clamped phase is 2nd order: its correlations err by O(lambda^2) on a gradient of
    # O(lambda), so the relative error vanishes linearly with the coupling scale.
    assert rel[0] > rel[1] > rel[2] and rel[2] < 0.05, rel
    assert math.log2(rel[1] / rel[2]) > 0.7, rel


def test_free_magnetisations_approach_exact_expectations_with_the_right_order():
    """<s_i> = dlnZ/db_i: the order-n fixed point errs by O(lambda^(n+1))."""
    J0, b = random_couplings(7, 1.0, seed=5)
    states = M.all_states(7)
    for order in (2, 3, 4):
        errs = []
        for lam in (0.05, 0.025):
            J = J0 * lam
            m, _, _ = M.iterate(J, b, order=order, iters=5000, tol=1e-15)
            exact = torch.softmax(M.log_weight(states, J, b), 0) @ states
            errs.append((m - exact).abs().max().item())
        assert abs(math.log2(errs[0] / errs[1]) - (order + 1)) < 0.5, (order, errs)


# --- T6, T7: exact enumeration and batch normalisation --------------------------------------------

def test_T6_exact_visible_probabilities_and_index():
    mach = small_machine(nv=5, nh=6, std=0.3, seed=2)
    lp = M.exact_visible_log_probs(mach)
    assert lp.exp().sum().item() == pytest.approx(1.0, abs=1e-12)
    states = M.all_states(5)
    assert torch.equal(M.visible_index(states), torch.arange(32))
    # brute force p(v) for one v
    J, b = (t.detach() for t in mach.couplings())
    v = states[13]
    num = torch.logsumexp(torch.stack([M.log_weight(torch.cat([v, h]), J, b) for h in M.all_states(6)]), 0)
    assert lp[13].item() == pytest.approx((num - M.exact_log_z(J, b)).item(), abs=1e-12)


def test_T7_batch_normalisation():
    mach = small_machine(nv=4, nh=4, std=0.6, seed=3)
    v = M.all_states(4)[:10]
    p0 = torch.full((10,), 0.1, dtype=DT)
    r_none = M.mean_field_D(mach, v, p0, M.MeanFieldConfig(normalise="none"))
    r_always = M.mean_field_D(mach, v, p0, M.MeanFieldConfig(normalise="always"))
    r_when = M.mean_field_D(mach, v, p0, M.MeanFieldConfig(normalise="when>1"))
    assert r_always.log_p.exp().sum().item() == pytest.approx(1.0, abs=1e-12)
    s = r_none.log_p.exp().sum().item()
    if s <= 1:
        assert r_when.log_z_used == r_none.log_z_used
    else:
        assert r_when.log_p.exp().sum().item() == pytest.approx(1.0, abs=1e-12)
    # a batch whose mean-field probabilities sum to < 1 is left alone by "when>1"
    r1 = M.mean_field_D(mach, v[:1], p0[:1] * 10, M.MeanFieldConfig(normalise="none"))
    assert r1.log_p.exp().sum().item() < 1
    r1w = M.mean_field_D(mach, v[:1], p0[:1] * 10, M.MeanFieldConfig(normalise="when>1"))
    assert r1w.log_z_used == r1.log_z_used
