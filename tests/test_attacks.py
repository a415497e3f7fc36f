import math

import pytest
import torch

from robustlib import attacks, metrics

EPS_ATTACKS = [
    ("fgsm", {}),
    ("pgd", {"steps": 10, "restarts": 2}),
    ("l2pgd", {"steps": 10}),
    ("uniform_noise", {"repeats": 3}),
    ("ifgsm", {"steps": 5}),
    ("pgd_torch", {"steps": 10, "norm": "linf"}),
    ("pgd_torch", {"steps": 10, "norm": "l2", "loss": "margin"}),
]


def _margins(model, x, y):
    """For a linear model: exact minimal distances to the decision boundary without the box
    constraint (a lower bound on any attack's distance with it): L2 uses ||w_y - w_c||_2, Linf
    uses ||w_y - w_c||_1."""
    with torch.no_grad():
        z = model(x)
    w = model.weight.detach()
    lb2 = torch.full((len(x),), math.inf)
    lbinf = torch.full((len(x),), math.inf)
    for c in range(w.shape[0]):
        diff = w[y] - w[c]  # (N, D)
        gap = z.gather(1, y[:, None]).squeeze(1) - z[:, c]
        ok = torch.arange(w.shape[0])[c] != y
        lb2 = torch.where(ok, torch.minimum(lb2, gap / diff.norm(dim=1)), lb2)
        lbinf = torch.where(ok, torch.minimum(lbinf, gap / diff.abs().sum(1)), lbinf)
    return lb2.double(), lbinf.double()


@pytest.mark.parametrize("name, kw", EPS_ATTACKS)
def test_eps_attacks_stay_in_ball_and_box(name, kw, small_mlp):
    from robustlib import data

    x, y = data.mnist("test")
    x, y = x[:20], y[:20]
    norm = attacks.attack_norm(name, kw)
    eps = 0.1 if norm == "linf" else 1.0
    torch.manual_seed(0)
    adv = attacks.get_attack(name).run(small_mlp, x, y, eps, **kw)
    assert adv.shape == x.shape
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert float(metrics.distance(adv, x, norm).max()) <= eps + 1e-5


def test_evaluate_is_monotone_and_counts_clean_errors(small_mlp):
    from robustlib import data

    x, y = data.mnist("test")
    x, y = x[:60], y[:60]
    res = attacks.evaluate(small_mlp, x, y, attack="pgd", epsilons=[0.0, 0.05, 0.1, 0.2], steps=10)
    acc = res.robust_accuracy
    assert all(acc[i + 1] <= acc[i] for i in range(len(acc) - 1))
    with torch.no_grad():
        clean = small_mlp(x).argmax(1) == y
    assert torch.equal(res.clean_correct, clean)
    assert torch.equal(res.success[0], ~clean)
    assert acc[-1] < acc[0]  # PGD at 0.2 hurts a standard MLP
    again = attacks.AttackResult.from_dict(res.to_dict())
    assert torch.equal(again.success, res.success)


def test_min_distance_agrees_with_evaluate(small_mlp):
    from robustlib import data

    x, y = data.mnist("test")
    x, y = x[:40], y[:40]
    grid = [0.0, 0.05, 0.1, 0.15, 0.3]
    ev = attacks.evaluate(small_mlp, x, y, attack="ifgsm", epsilons=grid, steps=5, seed=3)
    md = attacks.min_distance(small_mlp, x, y, attack="ifgsm", epsilons=grid, steps=5, seed=3)
    for i, e in enumerate(grid):
        assert abs(md.accuracy_at(e) - ev.robust_accuracy[i].item()) < 1e-12
    found = torch.isfinite(md.distances) & (md.distances > 0)
    with torch.no_grad():
        assert (small_mlp(md.adversarials[found]).argmax(1) != y[found]).all()
    assert torch.allclose(metrics.distance(md.adversarials, x, "linf")[found], md.distances[found])
    # independent of the drivers' bookkeeping: I-FGSM is deterministic, so run it directly at each
    # epsilon; an image is non-robust at e exactly when a direct run at some e' <= e fools it
    small_mlp.eval()
    fooled_any = torch.zeros(len(x), dtype=torch.bool)
    for e in grid:
        adv = x if e == 0 else attacks.get_attack("ifgsm").run(small_mlp, x, y, e, steps=5)
        with torch.no_grad():
            fooled_any |= small_mlp(adv).argmax(1) != y
        assert torch.equal(~fooled_any, md.distances > e + 1e-9), e


def test_fgsm_is_exact_on_a_linear_two_class_model(linear_problem):
    """On a 2-class linear model, FGSM with clipping is the optimal L-inf attack: an image is
    fooled at eps exactly when the margin minus the clipped signed step is negative."""
    model, x, y = linear_problem
    w = (model.weight[1 - y] - model.weight[y]).detach()  # direction that lowers the margin
    with torch.no_grad():
        margin = (model(x).gather(1, y[:, None]) - model(x).gather(1, (1 - y)[:, None])).squeeze(1)
    for eps in (0.02, 0.05, 0.1):
        moved = torch.where(w > 0, (1 - x.flatten(1)).clamp(max=eps), x.flatten(1).clamp(max=eps))
        expected = (margin - (w.abs() * moved).sum(1)) < 0
        res = attacks.evaluate(model, x, y, attack="fgsm", epsilons=[eps])
        assert torch.equal(res.success[0], expected), eps


@pytest.mark.parametrize(
    "name, kw",
    [("boundary", {"steps": 1000}), ("gaussian_noise", {"draws": 3}), ("transfer", {}), ("l2pgd", {"steps": 20})],
)
def test_minimal_l2_attacks_respect_the_exact_lower_bound(name, kw, linear_problem):
    model, x, y = linear_problem
    if name == "transfer":
        kw = {"source": model}
    lb2, _ = _margins(model, x, y)
    eps = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0] if name == "l2pgd" else None
    res = attacks.min_distance(model, x, y, attack=name, epsilons=eps, **kw)
    found = torch.isfinite(res.distances)
    assert found.sum() >= len(x) // 2
    assert (res.distances[found] >= lb2[found] - 1e-4).all()
    with torch.no_grad():
        assert (model(res.adversarials[found]).argmax(1) != y[found]).all()
    if name == "boundary":  # the attack walks far towards the minimum from its starting points
        start, ok = attacks._starting_points(model, x, y)
        start_d = metrics.distance(start, x, "l2")
        assert ok.all() and (res.distances <= start_d + 1e-4).all()  # never worse than its start
        assert torch.median(res.distances / start_d) < 0.8  # and it walked towards the minimum


def test_transfer_line_search_finds_at_least_what_the_source_attack_found(linear_problem):
    """With the model as its own source, the line search along the FGSM direction must reach every
    image FGSM fools at that epsilon, at a distance no larger (up to the bisection resolution)."""
    model, x, y = linear_problem
    fg = attacks.evaluate(model, x, y, attack="fgsm", epsilons=[0.05])
    tr = attacks.min_distance(
        model, x, y, attack="transfer", source=model, norm="linf", source_attack="fgsm", source_eps=0.05
    )
    hit = fg.success[0]
    assert hit.any()
    assert (tr.distances[hit] <= 0.05 + 1e-3).all()


def test_l0_attacks_return_adversarials(linear_problem):
    model, x, y = linear_problem
    for name in ("pointwise", "salt_pepper"):
        res = attacks.min_distance(model, x[:8], y[:8], attack=name)
        found = torch.isfinite(res.distances)
        assert found.any()
        assert torch.equal(metrics.distance(res.adversarials[found], x[:8][found], "l0"), res.distances[found])


def test_compound_keeps_the_smallest():
    a = attacks.DistanceResult("a", "l2", torch.tensor([1.0, math.inf, 3.0], dtype=torch.float64))
    b = attacks.DistanceResult("b", "l2", torch.tensor([2.0, 5.0, 0.5], dtype=torch.float64))
    c = attacks.compound(a, b)
    assert c.distances.tolist() == [1.0, 5.0, 0.5] and c.sources == ["a", "b", "b"]
    assert c.median() == 1.0 and abs(c.accuracy_at(0.9) - 2 / 3) < 1e-12
    with pytest.raises(ValueError, match="one norm"):
        attacks.compound(a, attacks.DistanceResult("c", "linf", a.distances))


def test_median_and_curves():
    d = torch.tensor([0.0, 1.0, 2.0, math.inf], dtype=torch.float64)
    assert metrics.median_distance(d) == 1.5
    assert metrics.median_distance(torch.tensor([1.0, math.inf])) == math.inf
    assert metrics.accuracy_curve(d, [0.0, 1.0, 10.0]).tolist() == [0.75, 0.5, 0.25]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"attack": "nosuch", "epsilons": [0.1]}, "valid: fgsm"),
        ({"attack": "fgsm", "epsilons": [-0.1]}, ">= 0"),
        ({"attack": "fgsm", "epsilons": []}, "empty"),
        ({"attack": "fgsm", "epsilons": [float("nan")]}, "finite"),
    ],
)
def test_bad_attack_arguments(kwargs, match, linear_problem):
    model, x, y = linear_problem
    with pytest.raises(ValueError, match=match):
        attacks.evaluate(model, x, y, **kwargs)


def test_bad_images_and_labels(linear_problem):
    model, x, y = linear_problem
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attacks.evaluate(model, x * 2, y, attack="fgsm", epsilons=[0.1])
    with pytest.raises(ValueError, match="shape"):
        attacks.evaluate(model, x.flatten(1), y, attack="fgsm", epsilons=[0.1])
    with pytest.raises(ValueError, match="labels"):
        attacks.evaluate(model, x, y[:-1], attack="fgsm", epsilons=[0.1])
    with pytest.raises(ValueError, match="epsilon grid"):
        attacks.min_distance(model, x, y, attack="pgd")
    with pytest.raises(ValueError, match=r"shape \(1, 32, 32\)"):  # the model expects 28x28
        attacks.evaluate(model, torch.zeros(2, 1, 32, 32), y[:2], attack="fgsm", epsilons=[0.1])
    with pytest.raises(ValueError, match="empty"):
        attacks.evaluate(model, x[:0], y[:0], attack="fgsm", epsilons=[0.1])
    with pytest.raises(ValueError, match="integer"):
        attacks.evaluate(model, x, y.float(), attack="fgsm", epsilons=[0.1])
    with pytest.raises(ValueError, match="epsilon must be"):
        attacks.evaluate(model, x, y, attack="fgsm", epsilons=[0.1, -0.1])


def test_models_are_evaluated_in_eval_mode_and_restored(small_mlp):
    from robustlib import data

    seen = []
    small_mlp.register_forward_pre_hook(lambda m, inp: seen.append(m.training))
    small_mlp.train()
    x, y = data.mnist("test")
    attacks.evaluate(small_mlp, x[:4], y[:4], attack="fgsm", epsilons=[0.1])
    assert seen and not any(seen) and small_mlp.training
    small_mlp.eval()


def test_line_search_attacks_accept_float64_images(linear_problem):
    model, x, y = linear_problem
    model = model.double()
    res = attacks.min_distance(model, x.double(), y, attack="gaussian_noise", draws=1)
    assert res.distances.dtype == torch.float64 and torch.isfinite(res.distances).any()
    model.float()


@pytest.mark.parametrize("name", sorted(attacks.ATTACKS))
def test_every_attack_rejects_an_unknown_option_naming_the_valid_ones(name, linear_problem):
    model, x, y = linear_problem
    info = attacks.get_attack(name)
    call = attacks.min_distance if info.minimal else attacks.evaluate
    eps = {} if info.minimal else {"epsilons": [0.1]}
    with pytest.raises(TypeError, match="unknown option.*stepz.*valid") as err:
        call(model, x[:2], y[:2], attack=name, stepz=100, **eps)
    for option in info.options:
        assert option in str(err.value)


def test_register_refuses_a_second_attack_of_the_same_name():
    info = attacks.get_attack("ifgsm")
    with pytest.raises(ValueError, match="already registered"):
        attacks.register(attacks.AttackInfo("ifgsm", "linf", False, lambda m, x, y, e: x))
    assert attacks.register(info) is info  # the same attack again is harmless (module reloads)


def test_gaussian_noise_with_a_limit_finds_exactly_what_beats_it_and_queries_less(linear_problem, counting):
    model, x, y = linear_problem
    torch.manual_seed(3)
    free = attacks.gaussian_noise(model, x, y, draws=4)
    d_free = metrics.distance(free, x, "l2")
    found = (model(free).argmax(1) != y) & (d_free > 0)
    assert found.sum() >= 12  # the check below needs adversarials to compare
    # limits on both sides of what the unlimited run found: half the images beat it, half do not
    limit = torch.where(torch.arange(len(x)) % 2 == 0, d_free * 1.5, d_free * 0.7).to(torch.float64)
    limit[~found] = math.inf
    counted = counting(model)
    torch.manual_seed(3)
    bounded = attacks.gaussian_noise(counted, x, y, draws=4, limit=limit)
    d_bounded = metrics.distance(bounded, x, "l2")
    beats = found & (d_free < limit)
    assert torch.equal(bounded[beats], free[beats])  # the same adversarial, bit for bit
    assert (d_bounded[found & ~beats] == 0).all()  # nothing closer than the limit: x comes back
    counted_free = counting(model)
    torch.manual_seed(3)
    attacks.gaussian_noise(counted_free, x, y, draws=4)
    assert counted.images < counted_free.images
