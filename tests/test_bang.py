"""BANG: the gradient rule against independent per-sample computations, the stacked LeNets against
single ones, the Caffe pieces, the line-search attacks, PASS and the noise experiment."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from robustlib import train
from robustlib.metrics import ecc_align, pass_scores, ssim
from robustlib.papers.bang import evaluation as ev
from robustlib.papers.bang import model as bang
from robustlib.papers.baselines.model import LeNet

# --- the rule ----------------------------------------------------------------------------------


def eta_literal(norms: list[float], eps: float) -> list[float]:
    """Eqs. 3-4 written out with Python floats."""
    n_max = max(norms)
    out = []
    for n in norms:
        if n == 0:
            out.append(1.0)
            continue
        rho = eps * (1 - n / n_max)
        out.append((n_max / n) ** rho)
    return out


def test_eta_matches_the_equations_and_its_properties():
    norms = [0.5, 2.0, 1e-20, 0.0, 2.0 - 1e-9, 0.03]
    eta = bang.bang_eta(torch.tensor(norms, dtype=torch.float64), 0.8)
    ref = eta_literal(norms, 0.8)
    assert torch.allclose(eta, torch.tensor(ref, dtype=torch.float64), rtol=1e-12, atol=0)
    n = torch.tensor(norms, dtype=torch.float64)
    assert torch.all(eta * n <= n.max() * (1 + 1e-12))  # scaled norms never exceed the largest
    assert eta[1] == 1.0  # the largest sample keeps its scale (rho = 0)
    assert torch.isfinite(eta).all() and eta[3] == 1.0  # n_i = 0: no NaN/inf, contributes 0
    assert torch.all(bang.bang_eta(n, 0.0) == 1.0)  # eps = 0: regular training
    assert torch.all(bang.bang_eta(torch.zeros(4), 0.8) == 1.0)  # all-zero batch
    # small gradients are boosted more than large ones: eta decreasing in n
    grid = torch.linspace(0.01, 1.0, 50, dtype=torch.float64)
    e = bang.bang_eta(grid, 0.815)
    assert torch.all(e[1:] <= e[:-1]) and torch.all(e * grid <= 1.0 + 1e-12)


def test_config_validation():
    with pytest.raises(ValueError, match="beta"):
        bang.BangConfig(beta=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        bang.BangConfig(epsilon=-0.1)
    with pytest.raises(ValueError, match="wrong_factor"):
        bang.BangConfig(wrong_factor=math.nan)
    assert bang.BangConfig().regular and not bang.BangConfig(1.0, 0.8).regular


def test_cifar_variant_halves_epsilon_for_misclassified_samples():
    control = bang.BangControl([bang.BangConfig(0.4, 0.855, 0.5)])
    norms = torch.tensor([[0.3, 1.2, 0.05, 0.7]], dtype=torch.float64)
    wrong = torch.tensor([[True, False, False, True]])
    with pytest.raises(RuntimeError, match="wrong"):
        control.factors(norms)
    control.wrong = wrong
    got = control.factors(norms)[0]
    n_max = 1.2
    ref = [
        0.4 * (n_max / n) ** ((0.855 * (0.5 if w else 1.0)) * (1 - n / n_max))
        for n, w in zip(norms[0].tolist(), wrong[0].tolist())
    ]
    assert torch.allclose(got, torch.tensor(ref, dtype=torch.float64), rtol=1e-12)


# --- BANG inside autograd ----------------------------------------------------------------------


class TinyNet(nn.Module):
    """conv -> ReLU -> pool -> linear -> ReLU -> linear: every layer type BANG touches."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc1 = nn.Linear(3 * 4 * 4, 7)
        self.fc2 = nn.Linear(7, 4)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv(x)), 2)  # (N, 3, 4, 4)
        return self.fc2(F.relu(self.fc1(h.flatten(1))))


def per_sample_reference(model: nn.Module, x, y, beta: float, eps: float) -> dict[str, torch.Tensor]:
    """beta * (1/N) sum_i eta_i dE_i/dW with eta from each layer's per-sample output gradient,
    by a literal loop over samples (one backward per sample, output gradients via hooks)."""
    layers = {"conv": model.conv, "fc1": model.fc1, "fc2": model.fc2}
    n = len(x)
    kappa_norms = {k: [] for k in layers}
    grads = {k: [] for k in layers}
    for i in range(n):
        outs = {}
        hooks = [
            m.register_forward_hook(lambda mod, inp, out, k=k: outs.__setitem__(k, out)) for k, m in layers.items()
        ]
        model.zero_grad()
        logits = model(x[i : i + 1])
        for h in hooks:
            h.remove()
        for o in outs.values():
            o.retain_grad()
        (F.cross_entropy(logits, y[i : i + 1]) / n).backward()  # E_i / N: the batch mean's share
        for k, m in layers.items():
            kappa_norms[k].append(outs[k].grad.norm().item())
            grads[k].append((m.weight.grad.clone(), m.bias.grad.clone()))
    ref = {}
    for k in layers:
        eta = eta_literal(kappa_norms[k], eps)
        ref[f"{k}.weight"] = beta * sum(e * g[0] for e, g in zip(eta, grads[k]))
        ref[f"{k}.bias"] = beta * sum(e * g[1] for e, g in zip(eta, grads[k]))
    return ref


def test_bang_gradient_equals_a_per_sample_loop():
    torch.manual_seed(0)
    model = TinyNet().double()
    x = torch.rand(6, 1, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 1, 0])
    ref = per_sample_reference(model, x, y, beta=1.3, eps=0.8)
    model.zero_grad()
    with bang.bang_mode(model, bang.BangConfig(1.3, 0.8)):
        F.cross_entropy(model(x), y).backward()
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, ref[name], rtol=1e-10, atol=1e-14), name
    # and it is not just the plain gradient
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    assert not torch.allclose(model.conv.weight.grad, ref["conv.weight"], rtol=1e-3)


def test_input_gradient_and_forward_are_unchanged():
    torch.manual_seed(1)
    model = LeNet(0.0)
    x = torch.rand(16, 1, 28, 28)
    y = torch.randint(0, 10, (16,))

    def input_grad(config):
        xx = x.clone().requires_grad_(True)
        ctx = bang.bang_mode(model, config) if config else torch.enable_grad()
        with ctx:
            out = model(xx)
            F.cross_entropy(out, y).backward()
        return out.detach(), xx.grad

    out0, g0 = input_grad(None)
    out1, g1 = input_grad(bang.BangConfig(1.5, 0.84))
    assert torch.equal(out0, out1)  # the forward pass is the plain one
    assert torch.equal(g0, g1)  # the gradient passed down is unscaled
    assert type(model).forward is LeNet.forward and "forward" not in model.conv1.__dict__  # restored


def test_largest_sample_keeps_its_scale():
    """Per sample, the scaled output gradient is beta * eta_i * kappa_i; the sample with the largest
    norm is multiplied by beta exactly, the others by more (never beyond the largest norm)."""
    control = bang.BangControl([bang.BangConfig(1.2, 0.8)])
    g = torch.Generator().manual_seed(0)
    kappa = torch.randn(1, 8, 30, generator=g) * torch.logspace(-6, 0, 8)[None, :, None]
    scaled = control.scale(kappa)
    n = kappa.norm(dim=-1)[0]
    ns = scaled.norm(dim=-1)[0]
    top = int(n.argmax())
    assert torch.allclose(scaled[0, top], 1.2 * kappa[0, top])
    ratio = ns / n
    assert torch.all(ratio >= 1.2 * (1 - 1e-6)) and torch.all(ns <= 1.2 * n.max() * (1 + 1e-6))
    # directions are kept
    cos = (scaled[0] * kappa[0]).sum(-1) / (ns * n)
    assert torch.allclose(cos, torch.ones(8), atol=1e-5)


def _train_plain(step, steps: int = 8):
    torch.manual_seed(5)
    model = LeNet(0.5)
    x = torch.rand(4 * 32, 1, 28, 28)
    y = torch.randint(0, 10, (len(x),))
    solver = bang.scaled_solver(bang.LENET_SOLVER, steps)
    train.fit(
        model,
        x,
        y,
        epochs=2,
        batch_size=32,
        seed=3,
        step=step,
        lr_lambda=solver.lr_factor,
        optimizer=solver.optimizer(model.weight_parameters(), model.bias_parameters()),
        max_iterations=steps,
        progress=False,
    )
    return model.state_dict()


def test_eps0_beta1_trains_bit_identically_to_regular_training():
    plain = _train_plain(None)
    banged = _train_plain(bang.bang_step(bang.BangConfig(1.0, 0.0)))
    assert all(torch.equal(plain[k], banged[k]) for k in plain)
    other = _train_plain(bang.bang_step(bang.BangConfig(1.0, 0.8)))
    assert not torch.equal(plain["conv1.weight"], other["conv1.weight"])


def test_stack_eps0_is_bit_identical_to_the_plain_stack():
    x = torch.rand(96, 1, 28, 28)
    y = torch.randint(0, 10, (96,))

    def run(configs):
        stack = bang.LeNetStack.from_lenets(bang.init_lenets([1, 2]), 0.5, configs)
        bang.train_stack(stack, x, y, solver=bang.scaled_solver(bang.LENET_SOLVER, 5), seed=2, progress=False)
        return stack.state_dict()

    a, b = run(None), run([bang.REGULAR, bang.REGULAR])
    assert all(torch.equal(a[k], b[k]) for k in a)


# --- the stack = K LeNets ----------------------------------------------------------------------


def test_stack_forward_and_roundtrip_match_single_lenets():
    models = [m.eval() for m in bang.init_lenets([0, 1, 2], dropout=0.0)]
    stack = bang.LeNetStack.from_lenets(models, dropout=0.0).eval()
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        out = stack(x)
        per = stack(torch.stack([x, x.flip(0), x * 0.5]))  # one batch per model
        assert out.shape == (3, 5, 10)
        for i, m in enumerate(models):
            assert torch.allclose(out[i], m(x), atol=1e-5)
            assert torch.equal(stack.lenet_state(i)["ip1.weight"], m.ip1.weight)
            assert torch.allclose(stack.lenet(i)(x), m(x), atol=1e-6)
        assert torch.allclose(per[1], models[1](x.flip(0)), atol=1e-5)
        assert torch.allclose(per[2], models[2](x * 0.5), atol=1e-5)


def test_stack_bang_gradients_match_each_model_in_bang_mode():
    """Two models with different (beta, eps) in one stack get exactly their own BANG gradient."""
    configs = [bang.BangConfig(1.0, 0.815), bang.BangConfig(1.6, 0.78)]
    models = [m.double() for m in bang.init_lenets([3, 4], dropout=0.0)]
    stack = bang.LeNetStack.from_lenets(models, 0.0, configs).double().train()
    x = torch.rand(12, 1, 28, 28, dtype=torch.float64)
    y = torch.randint(0, 10, (12,))
    out = stack(x)
    (F.cross_entropy(out.reshape(-1, 10), y.repeat(2), reduction="sum") / len(x)).backward()
    for i, (m, c) in enumerate(zip(models, configs)):
        m.zero_grad()
        with bang.bang_mode(m, c):
            F.cross_entropy(m(x), y).backward()
        assert torch.allclose(stack.conv1_w.grad[20 * i : 20 * (i + 1)], m.conv1.weight.grad, rtol=1e-9, atol=1e-13)
        assert torch.allclose(stack.conv2_b.grad[50 * i : 50 * (i + 1)], m.conv2.bias.grad, rtol=1e-9, atol=1e-13)
        assert torch.allclose(stack.ip1_w.grad[i], m.ip1.weight.grad, rtol=1e-9, atol=1e-13)
        assert torch.allclose(stack.ip2_b.grad[i], m.ip2.bias.grad, rtol=1e-9, atol=1e-13)


def test_snapshots_are_written_and_reloaded(tmp_path):
    stack = bang.LeNetStack.from_lenets(bang.init_lenets([0, 1]), 0.5, [bang.REGULAR, bang.BangConfig(1, 0.8)])
    x = torch.rand(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,))
    bang.train_stack(
        stack,
        x,
        y,
        solver=bang.scaled_solver(bang.LENET_SOLVER, 6),
        checkpoint=tmp_path,
        snapshot_every=3,
        snapshot_models=[1],
        progress=False,
    )
    states = bang.load_snapshots(tmp_path / "snapshots", [3, 6], 1)
    assert torch.equal(states[1]["ip2.weight"], stack.lenet_state(1)["ip2.weight"])
    assert not torch.equal(states[0]["ip2.weight"], states[1]["ip2.weight"])
    with pytest.raises(FileNotFoundError, match="retrain"):
        bang.load_snapshots(tmp_path / "snapshots", [4], 1)


# --- Caffe pieces ------------------------------------------------------------------------------


def test_shapes_of_lenet_and_cifar_quick():
    m = LeNet()
    h = m.conv1(torch.zeros(1, 1, 28, 28))
    assert h.shape[-1] == 24 and F.max_pool2d(h, 2).shape[-1] == 12
    h = m.conv2(F.max_pool2d(h, 2))
    assert h.shape[-1] == 8 and F.max_pool2d(h, 2).flatten(1).shape[1] == 800
    c = CifarShapes()
    assert c.sizes == [16, 8, 4] and c.model.ip1.in_features == 1024
    assert c.model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


class CifarShapes:
    def __init__(self):
        self.model = bang.CifarQuick()
        sizes = []
        h = torch.zeros(1, 3, 32, 32)
        h = F.max_pool2d(self.model.conv1(h), 3, 2, ceil_mode=True)
        sizes.append(h.shape[-1])
        h = F.avg_pool2d(self.model.conv2(h), 3, 2, ceil_mode=True)
        sizes.append(h.shape[-1])
        h = F.avg_pool2d(self.model.conv3(h), 3, 2, ceil_mode=True)
        sizes.append(h.shape[-1])
        self.sizes = sizes


def test_cifar_quick_subtracts_the_mean_image_inside():
    mean = torch.rand(3, 32, 32)
    a, b = bang.CifarQuick(mean).eval(), bang.CifarQuick().eval()
    b.load_state_dict({**a.state_dict(), "mean255": torch.zeros(3, 32, 32)})
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(a(x), b(x - mean), atol=1e-5)  # (x - mean) * 255 on Caffe's scale


def test_lr_schedules():
    s = bang.LENET_SOLVER
    assert s.lr(0) == 0.01
    assert math.isclose(s.lr(10_000), 0.01 * 2**-0.75, rel_tol=1e-12)
    assert math.isclose(s.lr(5000), 0.01 * 1.5**-0.75, rel_tol=1e-12)
    c = bang.CIFAR_SOLVER
    assert c.lr(17_999) == 0.001 and math.isclose(c.lr(18_000), 1e-4) and math.isclose(c.lr(19_500), 1e-5)
    q = bang.scaled_solver(c, 4000)
    assert q.steps == (3600, 3800) and q.iterations == 4000
    opt = s.optimizer([nn.Parameter(torch.zeros(2))], [nn.Parameter(torch.zeros(1))])
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.02] and opt.defaults["weight_decay"] == 5e-4
    with pytest.raises(ValueError, match="policy"):
        bang.Solver(policy="step")


# --- line searches -----------------------------------------------------------------------------


class Threshold(nn.Module):
    """Class 1 iff the mean pixel exceeds t (logits scaled by ``scale``); input gradient is known."""

    def __init__(self, t: float = 0.21, scale: float = 50.0):
        super().__init__()
        self.t, self.scale = t, scale

    def forward(self, x):
        s = self.scale * (x.flatten(1).mean(1) - self.t)
        return torch.stack([-s, s], 1)


def test_fgs_line_search_steps_are_grey_levels():
    model = Threshold()
    x = torch.full((3, 1, 28, 28), 100 / 255)
    x[1] = 40 / 255
    x[2] = 200 / 255
    y = model(x).argmax(1)
    r = ev.attack(model, x, y, method="fgs", with_pass=False, keep_adversarials=True)
    assert r.clean_correct.all() and r.success.all()
    # class 1 iff grey level > 0.21 * 255 = 53.55: 100 - k < 53.55 -> k = 47; 40 + k > 53.55 -> 14; 200 -> 147
    assert r.steps.tolist() == [47, 14, 147]
    assert torch.equal(r.linf, r.steps.float())  # L-inf = number of steps when nothing clips
    adv = r.adversarials * 255
    assert torch.equal(adv, adv.round()) and adv.min() >= 0 and adv.max() <= 255


def test_blank_gradient_is_a_failure_and_is_counted():
    model = Threshold(scale=1e4)  # logits ~ +-1000: float32 softmax saturates exactly
    x = torch.full((2, 1, 28, 28), 150 / 255)
    y = model(x).argmax(1)
    d = ev.fgs_direction(model, x, y)
    assert torch.all(d == 0)
    r = ev.attack(model, x, y, method="fgs", with_pass=False)
    s = r.summary()
    assert s["rate"] == 0 and s["blank"] == 2 and s["blank_failures"] == 2
    # the margin loss does not saturate: same model, same images, success
    m = ev.masking_check(model, x, y, r)
    assert m["blank_failures"] == 2 and m["fgs-margin_successes"] == 2
    # HC1 uses the logits, not the loss: it is not blank
    h = ev.attack(model, x, y, method="hc1", with_pass=False)
    assert h.success.all() and not h.blank.any()


def test_hc1_moves_the_largest_pixel_one_grey_level_per_step():
    model = Threshold()
    x = torch.zeros(1, 1, 28, 28)
    x[..., 10:20, 10:20] = 1.0  # mean 100/784 ~ 0.128 < 0.21: class 0
    y = model(x).argmax(1)
    d = ev.hc1_direction(model, x, y)
    assert math.isclose(d.abs().max().item(), 1.0, rel_tol=1e-6)
    r = ev.attack(model, x, y, method="hc1", with_pass=False)
    # the mean must exceed 0.21: the 684 zero pixels rise by k (the saturated ones cannot)
    k = math.floor((0.21 * 784 * 255 - 100 * 255) / 684) + 1
    assert r.success.all() and r.steps.item() == k and r.linf.item() == k


def test_line_search_only_counts_misclassification_and_respects_active():
    model = Threshold()
    x = torch.full((2, 1, 28, 28), 100 / 255)
    y = model(x).argmax(1)
    d = -torch.ones_like(x)
    first, adv = ev.line_search(model, x, y, d, max_steps=30, active=torch.tensor([True, False]))
    assert first.tolist() == [0, 0] and torch.equal(adv, x)  # 30 steps are not enough; 2nd inactive
    first, _ = ev.line_search(model, x, y, d, max_steps=255)
    assert first.tolist() == [47, 47]
    with pytest.raises(ValueError):
        ev.line_search(model, x, y, d, max_steps=0)


# --- PASS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    from robustlib import data

    return data.mnist("test")[0][:40]


def test_ssim_matches_scikit_image(digits):
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    a = digits[:10] * 255
    b = (a + 30 * torch.randn(a.shape, generator=g)).clamp(0, 255)
    ours = ssim(a, b)
    ref = [
        structural_similarity(
            a[i, 0].double().numpy(),
            b[i, 0].double().numpy(),
            data_range=255,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for i in range(10)
    ]
    assert torch.allclose(ours, torch.tensor(ref, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(ssim(a, a), torch.ones(10, dtype=torch.float64))


def test_pass_of_identical_images_is_one_and_shifts_cost_little(digits):
    x = digits[:20]
    assert torch.allclose(pass_scores(x, x), torch.ones(20, dtype=torch.float64), atol=1e-6)
    shifted = torch.roll(x, shifts=1, dims=3)
    p, ok = pass_scores(shifted, x, return_converged=True)
    plain = ssim(shifted * 255, x * 255)
    assert ok.float().mean() >= 0.8
    assert p[ok].min() > 0.95 and plain.mean() < 0.75  # a one-pixel shift: PASS ~ 1, SSIM far lower
    assert (p - plain).mean() > 0.25
    # noise is not undone by alignment; worker processes give the same numbers
    noisy = (x + 0.3 * torch.sign(torch.randn_like(x))).clamp(0, 1)
    p1 = pass_scores(noisy, x)
    assert p1.mean() < 0.6
    assert torch.equal(pass_scores(noisy, x, workers=2), p1)


def test_ecc_failure_falls_back_to_identity():
    a = np.zeros((28, 28), np.float32)
    b = np.zeros((28, 28), np.float32)  # no texture at all: ECC cannot run
    aligned, warp, ok = ecc_align(b, a)
    assert not ok and np.allclose(warp, np.eye(3)) and np.array_equal(aligned, b)
    with pytest.raises(ValueError):
        ecc_align(np.zeros((28, 28)), np.zeros((27, 28)))


def test_colour_pass_runs_on_cifar_shaped_images():
    from robustlib.papers.bang.experiments import synthetic_cifar

    x, _ = synthetic_cifar(4)
    assert torch.allclose(pass_scores(x, x), torch.ones(4, dtype=torch.float64), atol=1e-6)
    assert pass_scores(torch.roll(x, 1, dims=2), x).mean() > ssim(torch.roll(x, 1, dims=2) * 255, x * 255).mean()


# --- noise flip rates --------------------------------------------------------------------------


def test_noise_flip_rates_match_a_literal_loop():
    model = Threshold()
    x = torch.full((3, 1, 28, 28), 100 / 255)
    x[1] = 60 / 255
    x[2] = 20 / 255
    y = model(x).argmax(1)

    def predict(imgs):
        return model(imgs).argmax(1)

    sigmas, draws = [30.0, 200.0], 7
    rates = ev.noise_flip_rates(predict, x, y, sigmas, draws=draws, seed=4, batch_images=6)  # 2 draws a pass
    ref = torch.zeros(1, 2, dtype=torch.float64)
    for j, s in enumerate(sigmas):
        g = torch.Generator().manual_seed(4 * 1_000_003 + j)
        flips = 0
        for _ in range(draws):
            draw = torch.randn(x.shape, generator=g)
            for i in range(3):
                noisy = (torch.round(x[i] * 255) + torch.round(s * draw[i])).clamp(0, 255) / 255
                flips += int(predict(noisy[None])[0] != y[i])
        ref[0, j] = flips / (3 * draws)
    assert torch.allclose(rates, ref)
    assert rates[0, 0] <= rates[0, 1]


def test_select_per_class():
    y = torch.tensor([0, 1, 0, 1, 0, 1, 2])
    ok = torch.tensor([True, True, False, True, True, True, True])
    sel = ev.select_per_class(ok, y, 2, seed=0)
    assert len(sel) == 5 and ok[sel].all()
    assert torch.bincount(y[sel]).tolist() == [2, 2, 1]


# --- the line searches as registered minimal attacks ----------------------------------------------


def test_fgs_and_hc1_are_registered_minimal_linf_attacks():
    from robustlib import attacks

    for name, options in (("bang_fgs", ("max_steps", "loss", "float64")), ("bang_hc1", ("max_steps",))):
        info = attacks.get_attack(name)
        assert info.minimal and info.norm == "linf" and info.options == options
    model = Threshold()
    x = torch.full((2, 1, 28, 28), 100 / 255)
    with pytest.raises(TypeError, match="max_steps"):
        attacks.min_distance(model, x, model(x).argmax(1), attack="bang_fgs", steps=3)


@pytest.mark.parametrize("method", ["fgs", "hc1"])
def test_min_distance_of_the_line_searches_is_the_papers_linf(method):
    from robustlib import attacks

    model = Threshold()
    x = torch.full((5, 1, 28, 28), 100 / 255)
    x[1], x[2], x[3] = 40 / 255, 200 / 255, 30 / 255
    y = model(x).argmax(1)
    y[3] = 1 - y[3]  # misclassified clean: distance 0
    ref = ev.attack(model, x, y, method=method, with_pass=False, max_steps=120)
    got = attacks.min_distance(model, x, y, attack=f"bang_{method}", max_steps=120, batch_size=2)
    assert ref.success.tolist() == [True, True, False, False, True]  # image 2 needs 147 > 120 steps
    expected = ref.distances()
    assert torch.equal(torch.isinf(got.distances), torch.isinf(expected))
    finite = torch.isfinite(expected)
    assert torch.allclose(got.distances[finite], expected[finite], atol=1e-6)
    assert got.distances[3] == 0 and math.isinf(got.distances[2])
    res = attacks.evaluate(model, x, y, attack=f"bang_{method}", epsilons=[0.1, 0.3], max_steps=120)
    assert torch.equal(res.success[1], got.distances <= 0.3 + attacks.TOL)


def test_float64_and_margin_fgs_break_a_blank_gradient_through_the_registry():
    from robustlib import attacks

    model = Threshold(scale=500.0)  # logit margin ~378: blank in float32 (> 103), not in float64 (< 744)
    x = torch.full((2, 1, 28, 28), 150 / 255)
    y = model(x).argmax(1)
    assert torch.isinf(attacks.min_distance(model, x, y, attack="bang_fgs").distances).all()
    for kw in ({"loss": "margin"}, {"float64": True}):
        assert torch.isfinite(attacks.min_distance(model, x, y, attack="bang_fgs", **kw).distances).all()


# --- the CIFAR path on a synthetic CIFAR-shaped data set ----------------------------------------


def test_cifar_path_runs_on_synthetic_data_and_skips_without_data(tmp_store, monkeypatch):
    import dataclasses

    from robustlib import data, experiment, store
    from robustlib.papers.bang import claims
    from robustlib.papers.bang import experiments as bx
    from robustlib.papers.bang.profile import PROFILES

    prof = dataclasses.replace(
        PROFILES["smoke"],
        cifar_iterations=4,
        cifar_rows=("R0", "B0"),
        cifar_grid_betas=(0.5,),
        cifar_grid_epsilons=(0.83,),
        cifar_n_attack=8,
        max_steps=60,
        cifar_snapshot_every=2,
        noise_pool=None,
        cifar_noise_per_class=1,
        noise_draws=2,
        cifar_noise_sigmas=(20.0, 40.0),
    )
    exp = experiment.Experiment("bang", prof)
    monkeypatch.setattr(data, "cifar10", lambda split="train": None)
    assert bx.cifar(exp) is None  # no data: nothing computed, nothing stored
    assert not list(tmp_store.glob("**/cifar-*.json"))
    train_data, test_data = bx.synthetic_cifar(300, seed=0), bx.synthetic_cifar(60, seed=1)
    res = bx.cifar_experiment(exp, train_data, test_data, dataset="synthetic")
    assert set(res["rows"]) == {"R0", "B0", "G0.50-0.830"}
    for r in res["rows"].values():
        assert 0 <= r["acc"] <= 1 and 0 <= r["fgs_summary"]["rate"] <= 1 and r["fgs_summary"]["attacked"] >= 0
    assert res["rows"]["B0"]["config"]["wrong_factor"] == 0.5
    assert res["noise"]["R0"].shape == (2, 2) and res["noise"]["iterations"] == [2, 4]
    assert list(tmp_store.glob("smoke/bang/cifar-*.json"))
    found = claims.bang_6({"cifar": res, "profile": prof})
    a0, ab = res["rows"]["R0"]["acc"], res["rows"]["B0"]["acc"]
    f0, fb = res["rows"]["R0"]["fgs_summary"]["rate"], res["rows"]["B0"]["fgs_summary"]["rate"]
    expected = "reproduced" if min(a0, ab) >= 0.55 and fb < f0 else "partly" if fb < f0 else "not reproduced"
    assert found.verdict == expected and found.verdict in store.VERDICTS
    assert f"B0 {100 * ab:.2f} %" in found.ours
