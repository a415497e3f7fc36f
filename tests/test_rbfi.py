"""RBFI: the fast layer against a literal loop, gradients against finite differences and the
paper's formulas, parameter bounds, sensitivity bounds, and the paper's attacks."""

from __future__ import annotations

import math

import pytest
import torch

from robustlib import attacks
from robustlib.papers.rbfi import kernel
from robustlib.papers.rbfi import model as rbfi

BACKENDS = ["kernel", "chunked", "naive"]


def _needs_kernel(backend: str) -> None:
    if backend == "kernel" and kernel.load_library() is None:
        pytest.skip(f"no C++ kernel here: {kernel.kernel_status()}")


def _data(B, n, m, dtype=torch.float64, seed=0, u_max=3.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, n, generator=g, dtype=dtype)
    w = torch.rand(m, n, generator=g, dtype=dtype)
    u = torch.rand(m, n, generator=g, dtype=dtype) * u_max
    return x, w, u


def _grads(backend, mode, x, w, u, gz):
    xr, wr, ur = (t.clone().requires_grad_(True) for t in (x, w, u))
    z = kernel.scaled_linf(xr, wr, ur, mode, backend)
    (z * gz).sum().backward()
    return z.detach(), xr.grad, wr.grad, ur.grad


# --- the fast layer ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(5, 37, 3), (9, 64, 4), (4, 8, 1)])  # tails of the vector width and row blocks
def test_forward_equals_literal_loop(backend, dtype, shape):
    _needs_kernel(backend)
    x, w, u = _data(*shape, dtype=dtype)
    z_lit, arg_lit = kernel.literal_scaled_linf(x, w, u)
    z = kernel.scaled_linf(x, w, u, "pseudo", backend)
    assert torch.equal(z, z_lit)  # same float operations: bitwise equal
    if backend != "naive":
        fwd = kernel._kernel_forward if backend == "kernel" else kernel._chunked_forward
        _, arg = fwd(x.contiguous(), w, u, True)
        assert torch.equal(arg, arg_lit)


@pytest.mark.parametrize("backend", ["kernel", "chunked"])
def test_argmax_is_the_first_of_ties(backend):
    _needs_kernel(backend)
    # pixels 0 and 1 with centres clamped to 1 and 0 and u = 3 give ties at s = 9 (common in MNIST)
    x = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.5] * 4])
    w = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.5] * 4, [0.5] * 20])
    u = torch.full((2, 20), 3.0)
    z_lit, arg_lit = kernel.literal_scaled_linf(x, w, u)
    fwd = kernel._kernel_forward if backend == "kernel" else kernel._chunked_forward
    z, arg = fwd(x, w, u, True)
    assert torch.equal(z, z_lit) and arg.tolist() == arg_lit.tolist() == [[0, 0]]


@pytest.mark.parametrize("backend", ["kernel", "chunked"])
@pytest.mark.parametrize("mode", ["pseudo", "true"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-6), (torch.float64, 1e-13)])
def test_backward_equals_naive_broadcast(backend, mode, dtype, tol):
    _needs_kernel(backend)
    x, w, u = _data(13, 50, 6, dtype=dtype, seed=1)
    gz = torch.randn(13, 6, generator=torch.Generator().manual_seed(2), dtype=dtype)
    ref = _grads("naive", mode, x, w, u, gz)
    got = _grads(backend, mode, x, w, u, gz)
    for a, b in zip(got, ref):
        assert (a - b).abs().max() <= tol * b.abs().max()


@pytest.mark.parametrize("backend", ["kernel", "chunked"])
def test_backward_only_what_is_needed(backend):
    """Attacks need dL/dx only, the first layer dL/dw and dL/du only: both paths agree with the full one."""
    _needs_kernel(backend)
    x, w, u = _data(8, 40, 5, seed=3)
    gz = torch.randn(8, 5, dtype=torch.float64)
    full = _grads(backend, "pseudo", x, w, u, gz)
    xr = x.clone().requires_grad_(True)
    (kernel.scaled_linf(xr, w, u, "pseudo", backend) * gz).sum().backward()
    assert torch.allclose(xr.grad, full[1], rtol=1e-12, atol=0)
    wr, ur = w.clone().requires_grad_(True), u.clone().requires_grad_(True)
    (kernel.scaled_linf(x, wr, ur, "pseudo", backend) * gz).sum().backward()
    assert torch.allclose(wr.grad, full[2], rtol=1e-12, atol=0) and torch.allclose(ur.grad, full[3], rtol=1e-12, atol=0)


def test_kernel_is_deterministic_and_threaded():
    _needs_kernel("kernel")
    x, w, u = _data(64, 300, 40, dtype=torch.float32, seed=4)  # 768k pairs: runs on the thread pool
    gz = torch.randn(64, 40)
    a = _grads("kernel", "pseudo", x, w, u, gz)
    b = _grads("kernel", "pseudo", x, w, u, gz)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    ref = _grads("chunked", "pseudo", x, w, u, gz)
    assert all((p - q).abs().max() <= 2e-6 * q.abs().max() for p, q in zip(a, ref))


def test_true_gradient_matches_finite_differences():
    x, w, u = _data(3, 7, 2, seed=5)
    for backend in ("kernel", "chunked"):
        if backend == "kernel" and kernel.load_library() is None:
            continue
        net_input = [x.clone().requires_grad_(True), w.clone().requires_grad_(True), u.clone().requires_grad_(True)]
        f = lambda a, b, c: torch.exp(-kernel.scaled_linf(a, b, c, "true", backend))  # noqa: E731
        assert torch.autograd.gradcheck(f, net_input, eps=1e-7, atol=1e-7)


def test_true_gradient_equals_autograd_of_torch_max():
    """regular_deriv=True reproduces torch.autograd of exp(-max(.)) (spec section 13)."""
    x, w, u = _data(6, 30, 4, seed=6)
    layer = rbfi.RBFILayer(30, 4, "^", rbfi.RBFIConfig(hidden=(), andor="^", in_features=30, classes=4)).double()
    with torch.no_grad():
        layer.w.copy_(w)
        layer.u.copy_(u)
    layer.grad_mode = "true"
    xr = x.clone().requires_grad_(True)
    layer(xr).sum().backward()
    xt = x.clone().requires_grad_(True)
    wt, ut = w.clone().requires_grad_(True), u.clone().requires_grad_(True)
    torch.exp(-((ut[None] * (xt[:, None] - wt[None])) ** 2).max(dim=2).values).sum().backward()
    assert torch.allclose(xr.grad, xt.grad, rtol=1e-12, atol=1e-15)
    assert torch.allclose(layer.w.grad, wt.grad, rtol=1e-12, atol=1e-15)
    assert torch.allclose(layer.u.grad, ut.grad, rtol=1e-12, atol=1e-15)


def test_pseudogradient_hand_computed_unit():
    """One And unit, 3 inputs, numbers worked out by hand from eqs. (9) and (11).

    d = x - w = (0.4, -0.2, 0.4), t = u d = (0.4, -0.6, 0.2), s = t^2 = (0.16, 0.36, 0.04), z = 0.36.
    Shared feedback dz/ds = e^{s - z} = (e^-0.2, 1, e^-0.32); ds/dx = 2 u t = (0.8, -3.6, 0.2).
    Pseudo exp: dA/dz = -1/sqrt(1 + 0.36). True: dA/dz = -e^-0.36 and dz/ds = (0, 1, 0).
    """
    x = torch.tensor([[0.5, 0.2, 0.9]], dtype=torch.float64)
    w = torch.tensor([[0.1, 0.4, 0.5]], dtype=torch.float64)
    u = torch.tensor([[1.0, 3.0, 0.5]], dtype=torch.float64)
    pseudo = (
        -1 / math.sqrt(1.36) * torch.tensor([0.8 * math.exp(-0.2), -3.6, 0.2 * math.exp(-0.32)], dtype=torch.float64)
    )
    true = -math.exp(-0.36) * torch.tensor([0.0, -3.6, 0.0], dtype=torch.float64)
    layer = rbfi.RBFILayer(3, 1, "^", rbfi.RBFIConfig(hidden=(), andor="^", in_features=3, classes=1)).double()
    with torch.no_grad():
        layer.w.copy_(w)
        layer.u.copy_(u)
    for backend in ("kernel", "chunked", "naive"):
        if backend == "kernel" and kernel.load_library() is None:
            continue
        layer.backend = backend
        for mode, expected in (("pseudo", pseudo), ("true", true)):
            layer.grad_mode = mode
            xr = x.clone().requires_grad_(True)
            out = layer(xr)
            assert out.item() == pytest.approx(math.exp(-0.36), rel=1e-14)
            out.backward()
            assert torch.allclose(xr.grad[0], expected, rtol=1e-12, atol=1e-15), (backend, mode)


def test_large_attractor_exp_and_shared_feedback_max():
    g = torch.Generator().manual_seed(7)
    z = torch.rand(50, generator=g, dtype=torch.float64) * 20
    zr = z.clone().requires_grad_(True)
    gout = torch.randn(50, generator=g, dtype=torch.float64)
    y = kernel.LargeAttractorExp.apply(zr)
    assert torch.allclose(y, torch.exp(-z))
    y.backward(gout)
    assert torch.allclose(zr.grad, -gout / torch.sqrt(1 + z))
    s = torch.rand(4, 9, generator=g, dtype=torch.float64) * 9
    sr = s.clone().requires_grad_(True)
    m = kernel.SharedFeedbackMax.apply(sr)
    assert torch.equal(m, s.amax(1))
    gm = torch.randn(4, generator=g, dtype=torch.float64)
    m.backward(gm)
    assert torch.allclose(sr.grad, gm[:, None] * torch.exp(s - s.amax(1, keepdim=True)))
    assert torch.allclose(sr.grad[torch.arange(4), s.argmax(1)], gm)  # 1 at the argmax


def test_feedback_shared_over_squared_distances_not_abs():
    """The max and its e^{s_i - z} weights are over s_i = (u_i d_i)^2, not |u_i d_i| (spec 3.2)."""
    x = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    w = torch.tensor([[0.5, 0.3]], dtype=torch.float64)
    u = torch.ones(1, 2, dtype=torch.float64)
    wr = w.clone().requires_grad_(True)
    kernel.scaled_linf(x, wr, u, "pseudo", "chunked").sum().backward()
    # ds_i/dw_i = -2 u^2 (x_i - w_i) = 2 w_i; weights e^{s_i - z} with s = (0.25, 0.09)
    expected = torch.tensor([[1.0 * 2 * 0.5, math.exp(0.09 - 0.25) * 2 * 0.3]], dtype=torch.float64)
    assert torch.allclose(wr.grad, expected, rtol=1e-14)


def test_bad_arguments_raise():
    x, w, u = _data(2, 5, 3)
    with pytest.raises(ValueError, match="gradient mode"):
        kernel.scaled_linf(x, w, u, "fake")
    with pytest.raises(ValueError, match="backend"):
        kernel.scaled_linf(x, w, u, "pseudo", "gpu")
    with pytest.raises(ValueError, match="need x"):
        kernel.scaled_linf(x, w[:, :4], u[:, :4])
    with pytest.raises(ValueError, match="andor"):
        rbfi.RBFIConfig(hidden=(8,), andor="^x")
    with pytest.raises(ValueError, match="network kind"):
        rbfi.build("tanh", (8,))


def test_fallback_without_compiler(monkeypatch):
    x, w, u = _data(6, 20, 3, dtype=torch.float32, seed=8)
    monkeypatch.setattr(kernel, "_lib", None)
    monkeypatch.setattr(kernel, "_lib_error", "no compiler (test)")
    assert "chunked" in kernel.kernel_status()
    with pytest.raises(ValueError, match="kernel"):
        kernel.scaled_linf(x, w, u, "pseudo", "kernel")
    z = kernel.scaled_linf(x, w, u, "pseudo", "auto")
    assert torch.equal(z, kernel.literal_scaled_linf(x, w, u)[0])


# --- units, layers, bounds ------------------------------------------------------------------------


def test_and_or_mixed_outputs():
    torch.manual_seed(0)
    cfg = rbfi.RBFIConfig(hidden=(), andor="*", in_features=6, classes=40)
    layer = rbfi.RBFILayer(6, 40, "*", cfg).double()
    x = torch.rand(5, 6, dtype=torch.float64)
    a = torch.exp(-kernel.literal_scaled_linf(x, layer.w.detach(), layer.u.detach())[0])  # And outputs
    out = layer(x).detach()
    flag = layer.orflag.bool()
    assert 0 < flag.sum() < 40  # mixed: some of each
    assert torch.allclose(out[:, ~flag], a[:, ~flag]) and torch.allclose(out[:, flag], 1 - a[:, flag])
    for kind, expect in (("^", a), ("v", 1 - a)):
        other = rbfi.RBFILayer(6, 40, kind, cfg).double()
        other.load_state_dict({**layer.state_dict(), "orflag": other.orflag})
        assert torch.allclose(other(x).detach(), expect)


def test_rbf_l2_distance_equals_broadcast():
    torch.manual_seed(1)
    cfg = rbfi.RBFIConfig(hidden=(), andor="^", norm="l2", in_features=12, classes=5)
    layer = rbfi.RBFILayer(12, 5, "^", cfg).double()
    x = torch.rand(7, 12, dtype=torch.float64)
    expected = ((layer.u[None] * (x[:, None] - layer.w[None])) ** 2).sum(2)
    assert torch.allclose(layer.distance(x), expected, rtol=1e-10, atol=1e-12)


def test_parameter_bounds_hold_after_steps():
    torch.manual_seed(2)
    for u_max in (3.0, 10.0):
        net = rbfi.build("rbfi", (16,), "^v", u_max=u_max)
        opt = torch.optim.SGD(net.parameters(), lr=1e3)  # a huge step pushes everything out of range
        x, y = torch.rand(20, 1, 28, 28), torch.randint(0, 10, (20,))
        step = rbfi.make_step(rbfi.TrainConfig(), "rbfi")
        from robustlib.train import Batch

        for it in range(3):
            step(net, Batch(x, y, it, 0), opt)
            for layer in net.layers:
                assert layer.u.min() >= 0.01 and layer.u.max() <= u_max
                assert layer.w.min() >= 0.0 and layer.w.max() <= 1.0
        assert any(layer.u.max() == u_max for layer in net.layers)  # the step did hit the bound


def test_unit_sensitivities_hold_and_rbfi_is_tight():
    g = torch.Generator().manual_seed(3)
    n, eps = 30, 0.05
    wv = torch.randn(n, generator=g, dtype=torch.float64)
    uv = torch.rand(n, generator=g, dtype=torch.float64) * 3
    cv = torch.rand(n, generator=g, dtype=torch.float64)
    units = {
        "relu": (lambda x: torch.relu(x @ wv + 0.5), rbfi.unit_sensitivity("relu", w=wv)),
        "sigmoid": (lambda x: torch.sigmoid(x @ wv), rbfi.unit_sensitivity("sigmoid", w=wv)),
        "rbfi": (lambda x: torch.exp(-((uv * (x - cv)) ** 2).amax(-1)), rbfi.unit_sensitivity("rbfi", u=uv)),
    }
    for name, (f, S) in units.items():
        x = torch.rand(2000, n, generator=g, dtype=torch.float64)
        d = (torch.randint(0, 2, (2000, n), generator=g) * 2 - 1).to(torch.float64) * eps  # corners of the ball
        change = (f(x + d) - f(x)).abs().max().item()
        assert change <= S * eps * (1 + 1e-9), name
    # RBFI worst case: only the coordinate with the largest u matters; at t = u d = 1/sqrt(2) the slope
    # of exp(-t^2) is sqrt(2/e) u, so a tiny step there changes the output by ~ S eps
    k = int(uv.argmax())
    x = cv.clone()
    x[k] += 1 / math.sqrt(2) / uv[k]
    tiny = 1e-6
    step = torch.zeros(n, dtype=torch.float64)
    step[k] = -tiny
    ratio = (units["rbfi"][0](x + step) - units["rbfi"][0](x)).abs().item() / tiny
    assert ratio == pytest.approx(units["rbfi"][1], rel=1e-4)


def test_network_bounds_hand_computed():
    relu = rbfi.build("relu", (2,))
    with torch.no_grad():
        relu.hidden[0].weight.copy_(torch.zeros(2, 784))
        relu.hidden[0].weight[0, :3] = torch.tensor([1.0, -2.0, 0.5])  # row sums |.|: 3.5, 1.0
        relu.hidden[0].weight[1, 0] = -1.0
        relu.out.weight.copy_(torch.zeros(10, 2))
        relu.out.weight[4] = torch.tensor([2.0, -3.0])  # 2 * 3.5 + 3 * 1 = 10
    assert rbfi.sensitivity_bound(relu).item() == pytest.approx(10.0)
    sig = rbfi.SigmoidNet((2,))
    sig.mlp.load_state_dict(relu.state_dict())
    assert rbfi.sensitivity_bound(sig).item() == pytest.approx(10.0 / 16)  # 1/4 per layer, output included
    assert rbfi.sensitivity_bound(sig, sigmoid_quarter=False).item() == pytest.approx(10.0)  # reference code
    net = rbfi.build("rbfi", (2,), "^v")
    with torch.no_grad():
        net.layers[0].u.fill_(0.5)
        net.layers[0].u[1, 7] = 2.0  # unit 1: max u = 2 -> s = c * 2; unit 0: c * 0.5
        net.layers[1].u.fill_(0.1)
        net.layers[1].u[3] = torch.tensor([1.0, 0.5])  # max(1 * 0.5c, 0.5 * 2c) = c -> S = c * c
    c = rbfi.SQRT_2_OVER_E
    assert rbfi.sensitivity_bound(net).item() == pytest.approx(c * c)
    deep = rbfi.build("rbfi", (8, 8, 8), "^v^v")
    with torch.no_grad():
        for layer in deep.layers:
            layer.u.fill_(3.0)
    assert rbfi.sensitivity_bound(deep).item() == pytest.approx((3 * c) ** 4) and (3 * c) ** 4 <= 43.9


def test_differentiable_bound_reaches_every_u():
    torch.manual_seed(4)
    net = rbfi.build("rbfi", (6,), "^v")
    S = rbfi.sensitivity_bound(net, differentiable=True)
    assert S.item() == pytest.approx(rbfi.sensitivity_bound(net).item())
    S.backward()
    assert (net.layers[0].u.grad > 0).all()  # shared feedback: not only the argmax entries
    relu = rbfi.build("relu", (6,))
    rbfi.sensitivity_bound(relu, differentiable=True).backward()
    assert relu.hidden[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["relu", "sigmoid", "rbfi"])
def test_network_bound_is_an_upper_bound(kind):
    torch.manual_seed(5)
    net = rbfi.build(kind, (16, 16)).double()
    if kind == "rbfi":
        with torch.no_grad():
            for layer in net.layers:
                layer.u.uniform_(0.5, 3.0)
    S = rbfi.sensitivity_bound(net).item()
    eps = 0.02
    x = torch.rand(400, 1, 28, 28, dtype=torch.float64)
    worst = 0.0
    for _ in range(5):
        d = (torch.rand_like(x) * 2 - 1) * eps
        worst = max(worst, (net(x + d) - net(x)).abs().max().item())
    assert 0 < worst <= S * eps


# --- attacks --------------------------------------------------------------------------------------


def test_pgd_box_correct_and_buggy():
    x = torch.tensor([0.0, 0.2, 0.5, 0.9, 1.0])
    eps = torch.tensor(0.3)
    big = torch.tensor([-1.0, -1.0, -1.0, -1.0, -1.0])
    assert torch.allclose(rbfi.clip_delta(big, x, eps), torch.tensor([0.0, -0.2, -0.3, -0.3, -0.3]))
    assert torch.allclose(rbfi.clip_delta(-big, x, eps), torch.tensor([0.3, 0.3, 0.3, 0.1, 0.0]))
    # the reference code's bug: lower bound +min(x, eps); mid-grey pixels are pinned, saturated ones frozen
    assert torch.allclose(rbfi.clip_delta(big, x, eps, buggy=True), torch.tensor([0.0, 0.2, 0.3, 0.1, 0.0]))
    assert torch.allclose(rbfi.clip_delta(-big, x, eps, buggy=True), torch.tensor([0.3, 0.3, 0.3, 0.1, 0.0]))


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(6)
        self.lin = torch.nn.Linear(784, 10)

    def forward(self, x):
        return self.lin(x.flatten(1))


@pytest.mark.parametrize("buggy", [False, True])
def test_pgd_adadelta_stays_in_its_box_at_every_step(buggy, monkeypatch):
    model = _Tiny()
    x = torch.rand(6, 1, 28, 28)
    x[:, :, :5] = 0.0
    x[:, :, -5:] = 1.0
    y = torch.randint(0, 10, (6,))
    eps = 0.2
    seen = []
    orig = rbfi.clip_delta

    def spy(delta, xx, e, b=False):
        out = orig(delta, xx, e, b)
        seen.append(out.detach().clone())
        return out

    monkeypatch.setattr(rbfi, "clip_delta", spy)
    rbfi.pgd_adadelta(model, x, y, eps, steps=5, loss=rbfi.ce_per_image, buggy=buggy)
    assert len(seen) == 6  # the random start and every step
    for d in seen:
        assert d.abs().max() <= eps + 1e-6 and (x + d).min() >= -1e-6 and (x + d).max() <= 1 + 1e-6
        if buggy:
            assert d.min() >= 0  # can only brighten
    if not buggy:
        assert min(d.min() for d in seen) < 0  # the correct box does darken pixels


def test_ifgsm_and_noise_stay_in_ball_and_box():
    model = _Tiny()
    x = torch.rand(8, 1, 28, 28)
    y = torch.randint(0, 10, (8,))
    for eps in (0.1, 0.3):
        xa = attacks.ifgsm(model, x, y, eps, steps=10, loss=rbfi.ce_per_image)
        assert (xa - x).abs().max() <= eps + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    torch.manual_seed(0)
    xn = rbfi.uniform_noise(model, x, y, 0.3)
    torch.manual_seed(0)
    r = torch.rand_like(x)
    assert torch.allclose(xn, 0.7 * x + 0.3 * r)  # eq. (14)
    assert (xn - x).abs().max() <= 0.3 + 1e-6


def test_paper_attacks_run_through_evaluate_and_pseudo_view():
    torch.manual_seed(7)
    net = rbfi.build("rbfi", (8,), "^v")
    x, y = torch.rand(10, 1, 28, 28), torch.randint(0, 10, (10,))
    view = rbfi.WithGradMode(net, "true")
    assert view(x).data_ptr() != 0 and torch.equal(view(x), net(x)) and net.grad_mode == "pseudo"
    succ = attacks.evaluate(net, x, y, attack="rbfi_noise", epsilons=[0.0, 0.3], monotone=False).success
    clean_wrong = net(x).argmax(1) != y
    assert succ.shape == (2, 10) and torch.equal(succ[0], clean_wrong) and (succ[1] >= clean_wrong).all()
    for name in ("rbfi_pgd", "rbfi_pgd_reference"):
        res = attacks.evaluate(
            net,
            x,
            y,
            attack=name,
            epsilons=[0.1, 0.3],
            monotone=False,
            steps=2,
            grad_model=rbfi.WithGradMode(net, "pseudo"),
        )
        assert res.success.shape == (2, 10) and (res.success >= clean_wrong).all()
    with pytest.raises(TypeError, match="valid: steps, restarts, loss, grad_model"):
        attacks.evaluate(net, x, y, attack="rbfi_pgd", epsilons=[0.1], buggy=True)
    with rbfi.gradient_mode(net, "true"):
        assert all(layer.grad_mode == "true" for layer in net.layers)
    assert net.grad_mode == "pseudo"


def test_registered_pgd_is_the_paper_pgd_with_and_without_the_box_bug():
    net = _Tiny()
    x, y = torch.rand(6, 1, 28, 28), torch.randint(0, 10, (6,))
    for run, buggy in ((rbfi.paper_pgd, False), (rbfi.reference_pgd, True)):
        torch.manual_seed(3)
        a = run(net, x, y, 0.2, steps=4, loss=rbfi.ce_per_image)
        torch.manual_seed(3)
        b = rbfi.pgd_adadelta(net, x, y, 0.2, steps=4, loss=rbfi.ce_per_image, buggy=buggy)
        assert torch.equal(a, b)


def test_madry_training_adversary_is_the_library_one(monkeypatch):
    calls = []
    monkeypatch.setattr(attacks, "madry_pgd", lambda *a, **k: calls.append(k) or a[1])
    torch.manual_seed(0)
    net = rbfi.build("relu", (8,))
    tc = rbfi.TrainConfig(adversarial="pgd", adv_eps=0.3, adv_steps=3)
    rbfi._adversarial_examples(net, torch.rand(4, 1, 28, 28), torch.randint(0, 10, (4,)), tc)
    assert calls == [{"steps": 3, "loss": rbfi.ce_per_image}] and net.training


def test_triton_kernels_in_interpreter():
    """The GPU kernels, run on the CPU by Triton's interpreter (a subprocess: the switch is global)."""
    pytest.importorskip("triton")
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import torch
        from robustlib.papers.rbfi import kernel
        assert kernel._triton_self_check(torch.device("cpu"))
        g = torch.Generator().manual_seed(3)
        x, w, u = torch.rand(19, 45, generator=g), torch.rand(18, 45, generator=g), torch.rand(18, 45, generator=g) * 3
        gz = torch.randn(19, 18, generator=g)
        for mode in ("pseudo", "true"):
            res = []
            for backend in ("triton", "naive"):
                xr, wr, ur = (t.clone().requires_grad_(True) for t in (x, w, u))
                z = kernel.scaled_linf(xr, wr, ur, mode, backend)
                (z * gz).sum().backward()
                res.append((z.detach(), xr.grad, wr.grad, ur.grad))
            for a, b in zip(*res):
                assert (a - b).abs().max() <= 1e-5 * b.abs().max(), mode
        print("ok")
    """)
    env = {**__import__("os").environ, "TRITON_INTERPRET": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


def test_triton_kernels_compile_for_an_h100():
    """Compile the GPU kernels to H100 (sm_90) machine code without a GPU: catches what the
    interpreter does not (types, names, unsupported ops); no local-memory spills."""
    triton = pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from robustlib.papers.rbfi import triton as rbfi_triton

    ptrs = {n: "*fp32" for n in ("x", "w", "u", "z")}
    ints = {"B": "i32", "M": "i32", "N": "i32"}
    tiles = {"BB": 16, "BM": 16, "BN": 16}
    cases = [
        (rbfi_triton.fwd, {**ptrs, "arg": "*i64", **ints}, {**tiles, "WANT_ARG": True}),
        (rbfi_triton.fwd, {**ptrs, "arg": "*fp32", **ints}, {**tiles, "WANT_ARG": False}),
        (rbfi_triton.bwd_x, {**ptrs, "gz": "*fp32", "gx": "*fp32", **ints}, tiles),
        (rbfi_triton.bwd_p, {**ptrs, "gz": "*fp32", "gw": "*fp32", "gu": "*fp32", **ints}, tiles),
    ]
    for fn, sig, const in cases:
        sig = {**sig, **{k: "constexpr" for k in const}}
        k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=const), target=GPUTarget("cuda", 90, 32))
        assert "cubin" in k.asm and ".local" not in k.asm["ptx"], fn.__name__
