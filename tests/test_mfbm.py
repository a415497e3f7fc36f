"""Tests for robustlib.papers.mfbm.model: the mean-field expansion against independent computations
(literal distinct-index loops, finite differences, exact enumeration), the clamped equation, the
gradient, the batch normalisation, the patch data, the staged machine and the unrolled network.

T1-T3 are the spec's mandatory expansion checks (float64 throughout)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from robustlib.papers.mfbm import model as M

DT = torch.float64


def random_couplings(n: int, lam: float, seed: int, field_scale: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.triu(torch.randn(n, n, dtype=DT, generator=g), 1)
    b = torch.randn(n, dtype=DT, generator=g) * field_scale
    return (a + a.T) * lam, b


def random_m(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, dtype=DT, generator=g) * 1.6 - 0.8


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
    p3 = 4 / 3 * sum(J_[i][j] * J_[j][k] * J_[k][i] * d[i] * d[j] * d[k] for i, j, k in distinct(n, 3)) + 8 / 3 * sum(
        J_[i][j] ** 3 * g[i] * g[j] for i, j in distinct(n, 2)
    )
    p4 = (
        2 * sum(J_[i][j] * J_[j][k] * J_[k][q] * J_[q][i] * d[i] * d[j] * d[k] * d[q] for i, j, k, q in distinct(n, 4))
        + 16 * sum(J_[i][j] ** 2 * J_[j][k] * J_[k][i] * g[i] * g[j] * d[k] for i, j, k in distinct(n, 3))
        - 2
        / 3
        * sum(
            J_[i][j] ** 4 * d[i] * d[j] * (1 + 3 * m_[i] ** 2 + 3 * m_[j] ** 2 - 15 * m_[i] ** 2 * m_[j] ** 2)
            for i, j in distinct(n, 2)
        )
    )
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
        cyc = sum(
            J_[i][j] * J_[j][k] * J_[k][q] * J_[q][i] * d[j] * d[k] * d[q]
            for j, k, q in itertools.permutations(others, 3)
        )
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
    i, j, k, q = torch.meshgrid(idx, idx, idx, idx, indexing="ij")
    all_distinct = ((i != j) & (i != k) & (i != q) & (j != k) & (j != q) & (k != q)).to(DT)
    cyc = (J[i, j] * J[j, k] * J[k, q] * J[q, i] * d[i] * d[j] * d[k] * d[q] * all_distinct).sum()
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
                fd[i] = (M.phi_orders(m + e, J, b, order)[order - 1] - M.phi_orders(m - e, J, b, order)[order - 1]) / (
                    2 * h
                )
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


# --- patch data -------------------------------------------------------------------------------------


def test_patch_codes_match_literal_bits_and_decode():
    from robustlib import data

    x = data.mnist("train")[0][:3]
    for size in (4, 8):
        codes = M.patch_codes(x, size)
        cols = data.patches((x >= M.THRESHOLD).float(), size)  # (N * P, size^2) row-major
        assert len(codes) == len(cols)
        for r in (0, 77, 400, len(cols) - 1):
            literal = sum(int(b) << k for k, b in enumerate(cols[r].tolist()))
            if literal >= 2**63:
                literal -= 2**64  # two's complement of bit 63
            assert codes[r].item() == literal
        assert torch.equal(M.decode(codes, size), cols.to(DT) * 2 - 1)


def test_top_patterns_and_batches():
    from robustlib import data

    ps = M.top_patterns(data.mnist("train")[0][:500], k=50)
    assert ps.patterns.shape == (50, 16) and ps.p0.sum().item() == pytest.approx(1.0)
    assert (ps.p0[:-1] >= ps.p0[1:]).all()  # most frequent first
    assert (ps.patterns[0] == -1).all()  # the blank patch is the most frequent
    assert 0 < ps.coverage <= ps.coverage_of(60) <= 1
    codes = torch.tensor([5, 5, 7, 5, 9], dtype=torch.int64)
    v, p0 = M.batch_of_codes(codes, 4)
    assert torch.allclose(p0, torch.tensor([0.6, 0.2, 0.2], dtype=DT))
    assert torch.equal(v[0], M.decode(torch.tensor([5]), 4)[0])


# --- staged machine ---------------------------------------------------------------------------------


def test_staged_machine_copies_the_small_machine_into_each_quadrant():
    small = small_machine(nv=16, nh=6, std=0.2, seed=7)
    big = M.staged_machine(small, n_top=5, init_std=0.1, generator=torch.Generator().manual_seed(0))
    W, Jh, bh = big.weights().detach(), big.hidden_couplings().detach(), big.bh.detach()
    assert W.shape == (64, 29) and Jh.shape == (29, 29)
    for q in range(4):
        hs = slice(6 * q, 6 * q + 6)
        assert torch.equal(W[M.quadrant_visible(q), hs], small.weights().detach())
        assert torch.equal(Jh[hs, hs], small.hidden_couplings().detach())
        assert torch.equal(bh[hs], small.bh.detach())
        others = [i for i in range(64) if i not in M.quadrant_visible(q)]
        assert (W[others, hs] == 0).all()  # a sub-machine sees only its quadrant
    assert (W[:, 24:] == 0).all()  # no visible-top couplings
    assert (Jh[:6, 6:12] == 0).all()  # sub-machines are not coupled to each other
    assert (Jh[:24, 24:] != 0).all() and torch.equal(Jh, Jh.T) and (Jh.diagonal() == 0).all()
    # quadrant 0 of an 8x8 patch is its top-left 4x4 block, in row-major order
    img = torch.arange(64).reshape(8, 8)
    assert torch.equal(img.flatten()[M.quadrant_visible(0)], img[:4, :4].flatten())
    assert torch.equal(img.flatten()[M.quadrant_visible(3)], img[4:, 4:].flatten())
    # training keeps the block sparsity
    v = torch.where(torch.rand(8, 64, generator=torch.Generator().manual_seed(1)) < 0.5, -1.0, 1.0).to(DT)
    M.train_machine(
        big,
        lambda s: (v, torch.full((8,), 1 / 8, dtype=DT)),
        M.MachineTraining(steps=2, lr=0.05, mf=M.MeanFieldConfig(free_iters=20)),
    )
    W2, J2 = big.weights().detach(), big.hidden_couplings().detach()
    assert ((W2 != 0) <= (big.w_mask != 0)).all() and (J2[:6, 6:12] == 0).all() and (W2[:, 24:] == 0).all()


# --- the unrolled network -----------------------------------------------------------------------------


def test_T8_unrolled_conv_equals_the_iteration_patch_by_patch_and_shapes():
    from robustlib import data

    g = torch.Generator().manual_seed(0)
    small = M.BoltzmannMachine(16, 6, init_std=0.3, generator=g)
    big = M.staged_machine(small, n_top=7, init_std=0.2, generator=g)
    with torch.no_grad():
        big.bh.normal_(0, 0.3, generator=g)
    x = data.mnist("test")[0][:2]
    layer = M.MeanFieldConv.from_machine(big, kernel=8, iters=20, outputs=M.top_units(big, 7))
    out = layer(x)
    assert out.shape == (2, 7, 21, 21)
    W, Jh, bh = (t.detach() for t in (big.weights(), big.hidden_couplings(), big.bh))
    cols = data.patches(x.to(DT), 8)  # (2 * 441, 64), row-major patches, positions row-major
    for r in (0, 100, 440, 441 + 230):
        n, pos = divmod(r, 441)
        m = M.clamped_phase((2 * cols[r : r + 1] - 1), W, Jh, bh, iters=20)[0, -7:]
        assert torch.allclose(out[n, :, pos // 21, pos % 21].to(DT), m, atol=2e-5), r
    # with gradients (attack mode) the same values
    xg = x.clone().requires_grad_(True)
    assert torch.allclose(layer(xg), out, atol=1e-6)
    clf = M.Classifier(7, 21)
    assert clf.body(out).shape == (2, 32, 6, 6) and clf(out).shape == (2, 10)
    c128 = M.Classifier(128, 21)
    h = torch.zeros(1, 128, 21, 21)
    shapes = [tuple(F_.shape) for F_ in (c128.conv1(h), c128.conv2(c128.conv1(h)))]
    assert shapes == [(1, 128, 11, 11), (1, 64, 6, 6)] and c128.fc.in_features == 32 * 6 * 6
    dist = M.DistilledNet(clf.fc, kernel=8)
    assert dist.body(x).shape == (2, 32, 6, 6) and dist(x).shape == (2, 10)
    # 4x4 machine as a layer: 32 x 25 x 25
    assert M.MeanFieldConv.from_machine(M.BoltzmannMachine(16, 32), kernel=4)(x).shape == (2, 32, 25, 25)


def test_feature_layer_rejects_bad_input_sizes():
    with pytest.raises(ValueError, match="kernel"):
        M.MeanFieldConv(torch.zeros(10, 3), torch.zeros(3, 3), torch.zeros(3), kernel=4)
    with pytest.raises(ValueError, match="outputs"):
        M.MeanFieldConv(torch.zeros(16, 3), torch.zeros(3, 3), torch.zeros(3), kernel=4, outputs=(2, 5))
    with pytest.raises(ValueError, match="free_order"):
        M.MeanFieldConfig(free_order=5)
    with pytest.raises(ValueError, match="normalise"):
        M.MeanFieldConfig(normalise="sometimes")


# --- noise response and the attack ------------------------------------------------------------------


def test_noise_response_equals_a_literal_loop():
    mach = small_machine(nv=5, nh=4, std=0.4, seed=9)
    W, Jh, bh = (t.detach() for t in (mach.weights(), mach.hidden_couplings(), mach.bh))
    v = M.all_states(5)[:3]
    eps = [0.3]
    got = M.noise_response(W, Jh, bh, v, eps, n_noise=7, seed=4, chunk=6)  # several chunks
    g = torch.Generator().manual_seed(4)
    total = torch.zeros(3, dtype=DT)
    clean = M.clamped_phase(v, W, Jh, bh, iters=20)
    per = max(1, 6 // 3)
    done = 0
    while done < 7:
        k = min(per, 7 - done)
        noise = (torch.rand(k, 3, 5, generator=g, dtype=DT) * 2 - 1) * 0.3
        for a in range(k):
            for p in range(3):
                noisy = M.clamped_phase((v[p] + noise[a, p])[None], W, Jh, bh, iters=20)[0]
                total[p] += (noisy - clean[p]).norm()
        done += k
    assert torch.allclose(got[0], total / 7, atol=1e-12)
    assert (got >= 0).all()


def test_iterative_l2_on_a_linear_model(linear_problem):
    """For a linear 2-class model the normalised gradient is the same unit vector at every step:
    away from the box the first misclassified iterate lies exactly ceil(d / step) steps out, with
    d = margin / ||w_1 - w_0|| the minimal L2 distance."""
    model, x, _ = linear_problem
    x = 0.25 + 0.5 * x  # interior images: short paths never touch the [0, 1] box
    with torch.no_grad():
        z = model(x)
    y = z.argmax(1)
    step = 0.05
    res = M.iterative_l2(model, x, y, step=step, max_steps=400)
    w = (model.weight[1] - model.weight[0]).detach().to(DT)
    exact = (z[:, 1] - z[:, 0]).abs().to(DT) / w.norm()
    expected = torch.ceil(exact / step) * step
    assert torch.isfinite(res.distances).all()
    assert torch.allclose(res.distances, expected, atol=1e-4), (res.distances, expected)
    with torch.no_grad():
        assert (model(res.adversarials).argmax(1) != y).all()
    # bisection on the last segment: the exact minimal distance up to step / 2^refine
    fine = M.iterative_l2(model, x, y, step=step, max_steps=400, refine=12)
    assert torch.allclose(fine.distances, exact, atol=step / 2**12 + 1e-5)
    with torch.no_grad():
        assert (model(fine.adversarials).argmax(1) != y).all()
    # images leave the batch once fooled: a tiny step budget finds only the closest ones
    short = M.iterative_l2(model, x, y, step=step, max_steps=2)
    assert torch.equal(torch.isfinite(short.distances), expected <= 2 * step + 1e-9)


def test_iterative_l2_runs_through_the_attack_registry(linear_problem):
    """``attacks.min_distance(attack="mfbm_iterative_l2")`` gives the distances of the direct call
    (clean misclassifications: 0; none found: inf) and rejects unknown options."""
    from robustlib import attacks

    model, x, _ = linear_problem
    x = 0.25 + 0.5 * x
    with torch.no_grad():
        y = model(x).argmax(1)
    y[0] = 1 - y[0]  # one image misclassified from the start
    direct = M.iterative_l2(model, x, y, step=0.05, max_steps=3, refine=4)
    via = attacks.min_distance(model, x, y, attack="mfbm_iterative_l2", step=0.05, max_steps=3, refine=4)
    assert via.distances[0] == 0 and direct.distances[0] == 0
    assert torch.equal(torch.isfinite(via.distances), torch.isfinite(direct.distances))
    ok = torch.isfinite(direct.distances)
    assert torch.allclose(via.distances[ok], direct.distances[ok], atol=1e-6)
    with pytest.raises(TypeError, match="step"):
        attacks.min_distance(model, x, y, attack="mfbm_iterative_l2", step=0.05, max_steps=3, steps=10)
