"""Tests for robustlib.papers.dam (model and experiment keys): the math against independent computations (literal loops over
memories with explicit on/off states, autograd, finite differences), the update rule's guarantees,
confidence/calibration, the descent's stopping rule, FGSM and the float32 pitfall."""

from __future__ import annotations

import math

import pytest
import torch

from robustlib.papers.dam import model as dam

torch.set_default_dtype(torch.float32)


def _random_model(n: int, K: int = 6, T: float = 40.0, m: int = 3, seed: int = 0, scale: float = 0.3) -> dam.DAM:
    g = torch.Generator().manual_seed(seed)
    model = dam.DAM(n=n, K=K, T=T, m=m)
    model.xi.copy_((torch.rand(K, 794, generator=g, dtype=torch.float64) * 2 - 1) * scale)
    return model


def _random_pixels(B: int = 5, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, 784, generator=g, dtype=torch.float64) * 2 - 1


def _literal_outputs(xi: torch.Tensor, v: torch.Tensor, n: int, T: float) -> torch.Tensor:
    """Eq. 2.1 written out: explicit sigma vectors, explicit loops over memories and classes,
    beta = 1 / T^n times the unscaled rectified polynomial."""
    beta = 1.0 / T**n
    F = lambda x: x**n if x >= 0 else 0.0  # noqa: E731
    out = torch.empty(len(v), 10, dtype=torch.float64)
    for b in range(len(v)):
        off = torch.cat([v[b], -torch.ones(10, dtype=torch.float64)])
        for a in range(10):
            on = off.clone()
            on[784 + a] = 1.0
            total = 0.0
            for mu in range(len(xi)):
                total += F(float(xi[mu] @ on)) - F(float(xi[mu] @ off))
            out[b, a] = math.tanh(beta * total)
    return out


# --- the model -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 20])
def test_vectorised_update_equals_literal_sum_over_memories(n):
    model = _random_model(n, T=6.0 if n == 20 else 3.0)
    v = _random_pixels()
    fast = model.outputs_pm1(v)
    literal = _literal_outputs(model.xi, v, n, model.T)
    assert fast.abs().max() > 1e-3  # not a trivial all-zero comparison
    torch.testing.assert_close(fast, literal, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        torch.tanh(dam.reference_scores(model.xi, v, n, model.T)), literal, rtol=1e-10, atol=1e-12
    )


def test_forward_takes_unit_interval_images_and_maps_to_pm1():
    model = _random_model(3)
    x = torch.rand(4, 1, 28, 28)
    v = 2 * x.double().flatten(1) - 1
    torch.testing.assert_close(model(x), model.outputs_pm1(v))
    assert model(x).dtype == torch.float64
    torch.testing.assert_close(dam.from_pm1(dam.to_pm1(x)), x.double())


@pytest.mark.parametrize("n", [2, 3, 20, 30])
def test_beta_times_rectified_power_equals_power_of_scaled_argument(n):
    x = torch.linspace(-900, 900, 101, dtype=torch.float64)
    T = 540.0
    beta = 1.0 / T**n
    unscaled = torch.where(x >= 0, x, torch.zeros_like(x)) ** n
    torch.testing.assert_close(beta * unscaled, dam.rectified_power(x, n, T), rtol=1e-12, atol=0)
    assert (dam.rectified_power(x, n, T)[x < 0] == 0).all()


@pytest.mark.parametrize("k", [0, 1, 2, 3, 5, 19, 29, 30])
def test_ipow_equals_pow(k):
    x = torch.rand(3, 7, 11, dtype=torch.float64) * 1.7
    torch.testing.assert_close(dam.ipow(x, k), x.pow(k), rtol=1e-13, atol=0)
    torch.testing.assert_close(dam._pow_by_squaring(x, k), x.pow(k), rtol=1e-13, atol=0)
    with pytest.raises(ValueError, match="non-negative"):
        dam.ipow(x, -1)


@pytest.mark.parametrize("n", [2, 3, 20])
def test_closed_form_pixel_gradient_equals_autograd_and_finite_differences(n):
    model = _random_model(n, T=6.0 if n == 20 else 3.0)
    v = _random_pixels(3)
    w = torch.randn(3, 10, dtype=torch.float64)  # a random linear functional of the scores
    vv = v.clone().requires_grad_(True)
    (g_fast,) = torch.autograd.grad((model.scores_pm1(vv) * w).sum(), vv)
    vr = v.clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad((dam.reference_scores(model.xi, vr, n, model.T) * w).sum(), vr)
    torch.testing.assert_close(g_fast, g_ref, rtol=1e-9, atol=1e-12)
    # central finite differences on a few pixels
    f = lambda u: float((dam.reference_scores(model.xi, u, n, model.T) * w).sum())  # noqa: E731
    h = 1e-6
    for b, i in [(0, 0), (1, 100), (2, 500)]:
        e = torch.zeros_like(v)
        e[b, i] = h
        fd = (f(v + e) - f(v - e)) / (2 * h)
        assert fd == pytest.approx(float(g_ref[b, i]), rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("n", [2, 3, 20])
def test_autograd_memory_gradient_matches_finite_differences(n):
    model = _random_model(n, K=4, T=6.0 if n == 20 else 3.0)
    v = _random_pixels(3)
    y = torch.tensor([0, 4, 9])
    m = 2

    def C(xi):
        return float(dam.objective(torch.tanh(dam.reference_scores(xi, v, n, model.T)), y, m).sum())

    xi = model.xi.clone().requires_grad_(True)
    dam.objective(torch.tanh(dam.reference_scores(xi, v, n, model.T)), y, m).sum().backward()
    h = 1e-6
    for mu, i in [(0, 3), (1, 400), (2, 785), (3, 793)]:
        e = torch.zeros_like(model.xi)
        e[mu, i] = h
        fd = (C(model.xi + e) - C(model.xi - e)) / (2 * h)
        assert fd == pytest.approx(float(xi.grad[mu, i]), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("n,m", [(2, 2), (3, 3), (20, 30)])
def test_update_direction_is_normalised_negative_autograd_gradient(n, m):
    # Temperatures chosen so that outputs are neither ~0 nor saturated.
    model = _random_model(n, K=8, T={2: 2.0, 3: 2.5, 20: 5.5}[n], m=m, seed=3)
    v = _random_pixels(6, seed=4)
    y = torch.arange(6) % 10
    G, Y = dam.update_direction(model.xi, v, y, n=n, m=m, T=model.T)
    assert 0.01 < Y.abs().max() < 1 - 1e-6  # a regime where tanh neither vanishes nor saturates
    xi = model.xi.clone().requires_grad_(True)
    dam.objective(torch.tanh(dam.reference_scores(xi, v, n, model.T)), y, m).sum().backward()
    neg = -xi.grad
    active = neg.abs().amax(1) > 0
    assert active.sum() >= 4
    normalise = lambda a: a[active] / a[active].abs().amax(1, keepdim=True)  # noqa: E731
    torch.testing.assert_close(normalise(G), normalise(neg), rtol=1e-8, atol=1e-12)
    # and the dropped constant is exactly 2 m n / T
    torch.testing.assert_close(neg, G * 2 * m * n / model.T, rtol=1e-8, atol=1e-300)


def test_objective_terms_match_naive_formulas_and_stay_nonzero_when_saturated():
    s = torch.tensor([[0.3, -0.2, 1.1, -0.7, 0.0, 0.5, -1.5, 0.9, -0.1, 0.2]], dtype=torch.float64)
    y = torch.tensor([2])
    m = 3
    C, dC_ds, logC = dam.objective_terms(s, y, m)
    sr = s.clone().requires_grad_(True)
    Cr = dam.objective(torch.tanh(sr), y, m)
    Cr.sum().backward()
    torch.testing.assert_close(C, Cr.detach())
    torch.testing.assert_close(dC_ds, sr.grad)
    torch.testing.assert_close(logC, Cr.detach().log())
    # saturated: |s| = 25 -> tanh is exactly +-1 in float64; the naive gradient is exactly zero
    sat = torch.full((1, 10), -25.0, dtype=torch.float64)
    sat[0, 2] = 25.0
    sat[0, 5] = 25.0  # a wrong class confidently on
    sr = sat.clone().requires_grad_(True)
    dam.objective(torch.tanh(sr), y, 30).sum().backward()
    assert (sr.grad == 0).all()
    _, d, logC = dam.objective_terms(sat, y, 30)
    assert d[0, 5] > 0 and torch.isfinite(logC).all()  # descending C lowers s_5; log C = 60 log 2
    assert logC.item() == pytest.approx(60 * math.log(2), rel=1e-9)


# --- the update rule -----------------------------------------------------------------------------


def test_krotov_step_moves_each_memory_by_exactly_the_learning_rate_and_clips():
    torch.manual_seed(0)
    K = 7
    xi = torch.nn.Parameter((torch.rand(K, 794, dtype=torch.float64) * 2 - 1) * 0.5, requires_grad=False)
    xi.data[0, :5] = 0.99  # some components will be clipped
    opt = dam.KrotovMomentum([xi], lr=0.04, momentum=0.6)
    for step in range(3):
        before = xi.detach().clone()
        G = torch.randn(K, 794, dtype=torch.float64)
        G[0, :5] = 10.0  # the largest component pushes beyond +1
        xi.grad = G
        velocity_before = opt.state[xi]["velocity"].clone() if step else torch.zeros_like(G)
        opt.step()
        V = 0.6 * velocity_before + G
        unclipped = before + 0.04 * V / V.abs().amax(1, keepdim=True)
        torch.testing.assert_close(xi.detach(), unclipped.clamp(-1, 1))
        change = (xi.detach() - before).abs().amax(1)
        assert (change <= 0.04 + 1e-15).all()
        assert ((unclipped - before).abs().amax(1) - 0.04).abs().max() < 1e-15  # exactly lr before clipping
        assert xi.detach().abs().max() <= 1.0
        assert xi.detach()[0, :5].eq(1.0).all()


def test_training_step_through_fit_respects_the_bounds_and_learning_rate():
    cfg = dam.DAMConfig(n=3, m=2, K=5, T=300.0, epochs=1, batch_size=20, eps0=0.05)
    model = dam.DAM.from_config(cfg, torch.Generator().manual_seed(0))
    # N(-0.3, 0.3) initial weights can lie outside [-1, 1]; the first update clips them (as in
    # Krotov's code), so the step bound is checked from weights already in the box.
    assert model.xi.abs().max() > 1
    model.xi.clamp_(-1, 1)
    x = torch.rand(20, 1, 28, 28)
    y = torch.arange(20) % 10
    before = model.xi.clone()
    dam.train_dam(model, cfg, x, y)
    change = (model.xi - before).abs().amax(1)
    assert (change <= 0.05 + 1e-12).all() and (change > 0).any()
    assert model.xi.abs().max() <= 1.0


def test_training_resumes_bit_identically(tmp_path):
    cfg2 = dam.DAMConfig(n=3, m=2, K=5, T=300.0, T_in=500.0, ramp_epochs=2, epochs=2, batch_size=10)
    cfg1 = dam.DAMConfig(**{**cfg2.__dict__, "epochs": 1})
    x = torch.rand(30, 1, 28, 28)
    y = torch.arange(30) % 10
    a = dam.DAM.from_config(cfg2, torch.Generator().manual_seed(0))
    dam.train_dam(a, cfg2, x, y)
    b = dam.DAM.from_config(cfg2, torch.Generator().manual_seed(0))
    dam.train_dam(b, cfg1, x, y, checkpoint=tmp_path / "ck")  # interrupted after epoch 1
    c = dam.DAM.from_config(cfg2, torch.Generator().manual_seed(99))  # different init: must be overwritten
    dam.train_dam(c, cfg2, x, y, checkpoint=tmp_path / "ck")  # resumes epoch 2 (momentum restored)
    torch.testing.assert_close(c.xi, a.xi, rtol=0, atol=0)
    assert c.T == a.T == 300.0


def test_temperature_ramp_and_config_validation():
    cfg = dam.DAMConfig(T=540.0, T_in=700.0, ramp_epochs=200, epochs=300)
    assert cfg.temperature(0) == 700.0 and cfg.temperature(100) == 620.0 and cfg.temperature(250) == 540.0
    assert dam.DAMConfig(T=540.0, T_in=700.0, ramp_epochs=200, epochs=101).final_temperature() == 620.0
    assert cfg.learning_rate(2) == pytest.approx(0.04 * 0.998**2)
    for bad in ({"n": 1}, {"K": 0}, {"T": 0.0}, {"momentum": 1.0}, {"T_in": -1.0}, {"epochs": 2.5}):
        with pytest.raises(ValueError):
            dam.DAMConfig(**bad)
    with pytest.raises(ValueError):
        dam.DAM(n=1)


# --- confidence ----------------------------------------------------------------------------------


def test_confidence_at_targets_matches_closed_form():
    Y = dam.targets(torch.arange(10))
    for beta in (1.0, 3.2, 4.7):
        Z = dam.confidence(Y, beta)
        expected = math.exp(beta) / (math.exp(beta) + 9 * math.exp(-beta))
        torch.testing.assert_close(Z, torch.full((10,), expected, dtype=torch.float64))
    assert dam.confidence(Y, 3.2)[0].item() == pytest.approx(0.985, abs=5e-4)


def test_calibration_gives_mean_confidence_equal_to_accuracy():
    g = torch.Generator().manual_seed(0)
    Y = torch.tanh(torch.randn(500, 10, generator=g, dtype=torch.float64) * 0.5)
    correct = torch.rand(500, generator=g) < 0.9
    beta = dam.calibrate_beta(Y, correct)
    assert dam.confidence(Y, beta).mean().item() == pytest.approx(correct.double().mean().item(), abs=1e-3)
    assert dam.calibrate_beta(Y, torch.ones(500, dtype=torch.bool), hi=1e5) == 1e5  # unreachable: the bound
    assert dam.calibrate_beta(Y, torch.zeros(500, dtype=torch.bool), lo=1e-3) == 1e-3
    rows = dam.error_by_confidence(dam.confidence(Y, beta), correct, [0.0, 0.5, 1.0])
    assert sum(r["count"] for r in rows) == 500


# --- descent, FGSM -------------------------------------------------------------------------------


def test_second_choice_descent_stops_one_step_past_the_boundary():
    model = _random_model(3, K=12, T=3.0, m=3, seed=5, scale=0.3)
    v = _random_pixels(4, seed=6) * 0.5
    step = 0.05
    res = dam.boundary_images(dam.dam_objective_grad(model), model.scores_pm1, v, step=step, max_steps=200)
    # (a random model need not let every image reach its second choice: image 1 gets stuck)
    assert res["crossed"].tolist() == [True, False, True, True]
    assert res["steps"][1] == 200
    grad_fn = dam.dam_objective_grad(model)
    for b in (0, 2, 3):
        a, c = int(res["first"][b]), int(res["second"][b])
        # literal re-run of eq. 3.2 for this image, one step at a time
        u = v[b : b + 1].clone()
        k = 0
        while True:
            s = model.scores_pm1(u)
            if s[0, c] > s[0, a]:
                break
            _, g, _ = grad_fn(u, torch.tensor([c]))
            u = (u - step * g / g.norm()).clamp(-1, 1)
            k += 1
        assert k == int(res["steps"][b]) and k > 0
        torch.testing.assert_close(res["images"][b : b + 1], u, rtol=0, atol=1e-12)
        prev_scores = model.scores_pm1(u)  # returned image is past the boundary ...
        assert prev_scores[0, c] > prev_scores[0, a]
        assert res["l2"][b] <= k * step + 1e-9


def test_fgsm_stays_in_the_box_and_the_ball():
    model = _random_model(3, K=12, T=3.0, m=3, seed=7)
    v = _random_pixels(6, seed=8)
    y = torch.arange(6)
    for eps in (0.0, 0.1, 0.3):
        adv = dam.fgsm_pm1(model, v, y, eps)
        assert adv.min() >= -1 and adv.max() <= 1
        assert (adv - v).abs().max() <= eps + 1e-12
    adv = dam.fgsm_pm1(model, v, y, 0.1)
    assert (adv - v).abs().max() == pytest.approx(0.1)  # some pixel moves the full step
    direction, zero = dam.fgsm_direction(model, v, y)
    assert not zero.any()
    # the step increases the training objective to first order
    C = lambda u: dam.objective(model.outputs_pm1(u), y, model.m)  # noqa: E731
    assert (C(dam.fgsm_pm1(model, v, y, 1e-4)) >= C(v)).all()
    with pytest.raises(ValueError):
        dam.fgsm_pm1(model, v, y, -0.1)


def test_registered_fgsm_is_the_papers_step_on_unit_interval_images():
    from robustlib import attacks

    model = _random_model(3, K=12, T=3.0, m=3, seed=7)
    x = dam.from_pm1(_random_pixels(6, seed=8)).to(torch.float32)  # [0, 1] images (6, 1, 28, 28)
    y = torch.arange(6)
    info = attacks.get_attack("dam_fgsm")
    assert info.norm == "linf" and not info.minimal
    # eps in [0, 1] units is 2 eps in the paper's [-1, 1] units
    torch.testing.assert_close(dam.to_pm1(dam.fgsm(model, x, y, 0.05)), dam.fgsm_pm1(model, dam.to_pm1(x), y, 0.1))
    res = attacks.evaluate(
        model, x, y, attack="dam_fgsm", epsilons=[0.0, 0.05, 0.2], monotone=False, keep_adversarials=True
    )
    for i, eps in enumerate(res.epsilons):
        fooled = model(res.adversarials[i]).argmax(1) != y
        assert torch.equal(res.success[i], fooled | ~res.clean_correct)
        assert (res.adversarials[i] - x).abs().max() <= eps + 1e-6
    with pytest.raises(TypeError, match="dam_fgsm"):
        attacks.evaluate(model, x, y, attack="dam_fgsm", epsilons=[0.1], steps=3)


def test_any_other_classifier_gets_the_cross_entropy_step():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)).double()
    x = dam.from_pm1(_random_pixels(4, seed=3))
    y = torch.tensor([0, 1, 2, 3])
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(net(xr), y, reduction="sum"), xr)
    torch.testing.assert_close(dam.fgsm(net, x, y, 0.1), (x + 0.1 * g.sign()).clamp(0, 1))


def test_experiment_keys_hash_like_the_dicts_the_committed_results_were_stored_under():
    from dataclasses import asdict

    from robustlib import experiment, store
    from robustlib.papers.dam import experiments as dam_experiments
    from robustlib.papers.dam.profile import PROFILES

    exp = experiment.Experiment("dam", PROFILES["quick"])
    configs = dam_experiments.model_configs(exp)
    assert [c.T for c in configs.values()] == [75.0, 75.0, 300.0, 350.0] and configs["20"].init_mean == -0.3
    as_dicts = {"profile": exp.profile.asdict(), "models": {n: asdict(c) for n, c in configs.items()}}
    assert store.config_hash(dam_experiments.result_key(exp)) == store.config_hash(as_dicts)
    key = dam_experiments.ModelKey(configs["2"], None)
    assert store.config_hash(key) == store.config_hash({"dam": asdict(configs["2"]), "n_train": None})
    experiment.check_steps(dam_experiments.steps(exp.profile))


def test_float32_objective_gradient_can_be_all_zero_where_float64_is_not():
    # One prototype memory per class (random +-1 patterns p_c, label part +1 at c, -1 elsewhere),
    # images = the prototypes: s_c ~ +3, s_other ~ -3, so |t - Y| ~ 5e-3 for every output and
    # (t - Y)^59 ~ 1e-136: zero in float32 (smallest subnormal 1.4e-45), fine in float64.
    g = torch.Generator().manual_seed(0)
    P = torch.randint(0, 2, (10, 784), generator=g).double() * 2 - 1
    model = dam.DAM(n=2, K=10, T=math.sqrt(4 * 792 / 3), m=30)
    model.xi[:, :784] = P
    model.xi[:, 784:] = 2 * torch.eye(10, dtype=torch.float64) - 1
    y = torch.arange(10)
    Y = model.outputs_pm1(P)
    assert (Y.argmax(1) == y).all() and 1e-4 < (dam.targets(y) - Y).abs().max() < 0.05
    assert dam.zero_gradient_fraction(model, P, y, torch.float32) == 1.0
    assert dam.zero_gradient_fraction(model, P, y, torch.float64) == 0.0
    # the FGSM direction (float64, accurate formulas) is therefore defined for every image
    _, zero = dam.fgsm_direction(model, P, y)
    assert not zero.any()


def test_rubbish_descent_lowers_the_class_objective():
    model = _random_model(3, K=12, T=3.0, m=3, seed=11)
    res = dam.rubbish_images(dam.dam_objective_grad(model), 2, step=0.05, max_steps=30, seed=0)
    assert res["images"].shape == (20, 784) and res["images"].abs().max() <= 1
    logC0 = dam.objective_terms(model.scores_pm1(res["noise"]), res["labels"], 3)[2]
    logC1 = dam.objective_terms(model.scores_pm1(res["images"]), res["labels"], 3)[2]
    assert (logC1 < logC0).all()


def test_update_direction_with_reused_buffers_equals_fresh_allocation():
    model = _random_model(20, K=8, T=5.5, m=30, seed=12)
    work: dict = {}
    for seed in (13, 14):  # the second call reuses (and overwrites) the buffers of the first
        v = _random_pixels(6, seed=seed)
        y = torch.arange(6) % 10
        G0, Y0 = dam.update_direction(model.xi, v, y, n=20, m=30, T=model.T)
        G1, Y1 = dam.update_direction(model.xi, v, y, n=20, m=30, T=model.T, work=work)
        torch.testing.assert_close(G1, G0, rtol=1e-12, atol=0)
        torch.testing.assert_close(Y1, Y0, rtol=0, atol=0)
    assert set(work) == {"r_on", "d_on", "tmp"}
