"""The yardstick (robustlib.protocol): settings, the attack suite, the trivial bound, the combined
result, the sanity flags and storage.

One standard MLP (784-256-10, 2 epochs on 10,000 images) is trained once for the module; the toy
models put a step function (or a switch) in front of it. Image counts and budgets are small except
where a test is about the ``quick`` budget. No timed asserts.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from robustlib import attacks, data, metrics, protocol, store
from robustlib.protocol import Adapter, AttackSpec, ProtocolConfig

QUICK = ProtocolConfig.for_profile("quick")
# Small budgets for the flag and round-trip tests (the quick-budget tests use QUICK).
FAST = ProtocolConfig.for_profile("smoke", n_images=24, apgd_steps=30, square_queries=200)


# --- models ------------------------------------------------------------------------------------


class Quantised(torch.nn.Module):
    """floor(levels * x) / levels in front of a network: the same decisions as a finer network on
    a coarser image, but zero gradients everywhere (a deliberately masked model)."""

    def __init__(self, net: torch.nn.Module, levels: int = 4):
        super().__init__()
        self.net, self.levels = net, levels

    def forward(self, x):
        return self.net(torch.floor(x * self.levels) / self.levels)


class Binarised(torch.nn.Module):
    """The network on the input thresholded at 0.5 (like binary ABS): zero gradients."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net((x > 0.5).to(x.dtype))


class NoiseSwitch(torch.nn.Module):
    """The plain network on clean-looking images, the binarised one on images with many mid-grey
    pixels (what a large random start produces): a gradient attack works at small epsilons and
    fails at large ones, the textbook non-monotone curve."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        mid = ((x > 0.15) & (x < 0.85)).to(x.dtype).flatten(1).mean(1)  # (N,) fraction of grey pixels
        noisy = (mid > 0.2)[:, None]
        return torch.where(noisy, self.net((x > 0.5).to(x.dtype)), self.net(x))


class NoGrad(torch.nn.Module):
    """The network's scores computed without autograd: gradients are useless (zero)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        with torch.no_grad():
            return self.net(x)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread for this module: many small batches run faster on one core than split over two
    cores that other processes also use (the 2-core machines are shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mlp():
    """A standard 784-256-10 ReLU MLP: 2 epochs of Adam on 10,000 training images (~94 %)."""
    from robustlib import train
    from robustlib.papers.baselines.model import MLP

    torch.manual_seed(0)
    x, y = data.mnist("train")
    m = MLP(hidden=(256,))
    train.fit(
        m,
        x[:10000],
        y[:10000],
        epochs=2,
        batch_size=50,
        optimizer=torch.optim.Adam(m.parameters(), 1e-3),
        progress=False,
    )
    return m.eval()


@pytest.fixture(scope="module")
def images():
    return protocol.protocol_images(QUICK)  # the first 200 test images


def _evaluate(model, config, *, source=None, binarises=False, name="toy", **overrides):
    config = dataclasses.replace(config, **overrides)
    x, y = protocol.protocol_images(config)
    return protocol.evaluate(Adapter(name, model, binarises=binarises), x, y, config, source=source, progress=False)


@pytest.fixture(scope="module")
def plain(mlp, small_mlp):
    """The whole suite, both norms, on the standard MLP (transfer from the conftest's small MLP)."""
    return _evaluate(mlp, FAST, source=small_mlp, name="mlp")


@pytest.fixture(scope="module")
def toys(mlp):
    """One masked toy per flag, each evaluated where the flag should fire (L-inf only)."""
    # APGD alone on the quantised MLP: nothing falls, even at 0.4, and no adversarial it finds is
    # closer than the nearest other-class image.
    apgd_only = _evaluate(Quantised(mlp), FAST, norms=("linf",), attacks=("apgd-ce",))
    return {
        # Square breaks the quantised MLP; APGD, seeing zero gradients, does not.
        "gradient masking suspected": _evaluate(Quantised(mlp), FAST, norms=("linf",), attacks=("apgd-ce", "square")),
        "attack failure": apgd_only,
        "non-monotone curve": _evaluate(NoiseSwitch(mlp), FAST, norms=("linf",), attacks=("apgd-ce",)),
        "distance above trivial bound": apgd_only,
    }


def _kinds(result) -> set[str]:
    return {f.kind for f in protocol.sanity_flags(result)}


# --- settings ----------------------------------------------------------------------------------


def test_profiles_share_grids_and_thresholds_and_take_the_first_test_images():
    sizes = {p: ProtocolConfig.for_profile(p).n_images for p in ("smoke", "quick", "paper")}
    assert sizes == {"smoke": 16, "quick": 200, "paper": 1000}
    for p in ("smoke", "quick", "paper"):
        c = ProtocolConfig.for_profile(p)
        assert (c.linf_grid[0], c.linf_grid[-1], c.l2_grid[0], c.l2_grid[-1]) == (0.0, 0.4, 0.0, 3.0)
        assert c.thresholds("linf") == (0.1, 0.3) and c.thresholds("l2") == (1.5, 2.0)
    x, y = protocol.protocol_images(QUICK)
    xt, yt = data.mnist("test")
    assert torch.equal(x, xt[:200]) and torch.equal(y, yt[:200])
    assert ProtocolConfig.for_profile("quick", n_images=50).n_images == 50


@pytest.mark.parametrize(
    "make, error, names",
    [
        (lambda: ProtocolConfig.for_profile("fast"), ValueError, "smoke, quick, paper"),
        (lambda: ProtocolConfig.for_profile("quick", attacks=("apgd-ce", "fab")), ValueError, "apgd-dlr"),
        (lambda: ProtocolConfig.for_profile("quick", norms=("l1",)), ValueError, "linf, l2"),
        (lambda: ProtocolConfig.for_profile("quick", attacks="apgd-ce"), ValueError, "apgd-ce"),
        (lambda: ProtocolConfig.for_profile("quick", linf_thresholds=(0.12,)), ValueError, "grid"),
        (lambda: ProtocolConfig.for_profile("quick", l2_grid=(0.0, 2.0, 1.5)), ValueError, "increasing"),
        (lambda: ProtocolConfig.for_profile("quick", apgd_steps=0), ValueError, "positive"),
        (lambda: ProtocolConfig.for_profile("quick", search="binary"), ValueError, "bisect, scan"),
        (lambda: ProtocolConfig.for_profile("quick", steps=10), TypeError, "apgd_steps"),
        (lambda: AttackSpec("mine", "l1", lambda x, y: x), ValueError, "linf, l2"),
        (lambda: AttackSpec("mine", "l2", lambda x, y: x, family="magic"), ValueError, "gradient"),
        (lambda: AttackSpec("combined", "l2", lambda x, y: x), ValueError, "trivial"),
        (lambda: Adapter("m", "not a model"), TypeError, "torch.nn.Module"),
        (lambda: Adapter("m", torch.nn.Identity(), attacks=(lambda x, y: x,)), TypeError, "AttackSpec"),
        (
            lambda: Adapter("m", torch.nn.Identity(), attacks=(AttackSpec("square", "l2", lambda x, y: x),)),
            ValueError,
            "clash",
        ),
    ],
)
def test_bad_settings_raise_naming_valid_values(make, error, names):
    with pytest.raises(error, match=names):
        make()


def test_evaluate_rejects_bad_inputs(mlp, images, plain):
    x, y = images[0][:4], images[1][:4]
    adapter = Adapter("mlp", mlp)
    with pytest.raises(TypeError, match="Adapter"):
        protocol.evaluate(mlp, x, y, FAST)
    with pytest.raises(TypeError, match="ProtocolConfig"):
        protocol.evaluate(adapter, x, y, "quick")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        protocol.evaluate(adapter, x * 2, y, FAST)
    with pytest.raises(ValueError, match="labels"):
        protocol.evaluate(adapter, x, y[:3], FAST)
    with pytest.raises(ValueError, match="valid: linf, l2"):
        plain.curve("l1")
    with pytest.raises(ValueError, match="valid: apgd-ce"):
        plain.median("linf", "fab")


# --- the attacks -------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", protocol.NORMS)
def test_every_attack_stays_in_the_ball_and_the_box(norm, mlp, small_mlp, images):
    """Each attack's own output (before the protocol's check), at a threshold for epsilon attacks."""
    x, y = images[0][:20], images[1][:20]
    config = dataclasses.replace(FAST, attacks=protocol.ATTACK_NAMES)
    reference = protocol.reference_images(config, x)
    specs, skipped = protocol.suite(
        Adapter("mlp", mlp),
        config,
        norm,
        num_classes=10,
        reference=reference,
        ref_pred=protocol.predict(mlp, reference),
        source=small_mlp,
    )
    assert not skipped
    expected = {"linf": set(protocol.ATTACK_NAMES) - {"hsja"}, "l2": set(protocol.ATTACK_NAMES)}[norm]
    assert {s.name for s in specs} == expected
    eps = config.thresholds(norm)[-1]
    for spec in specs:
        torch.manual_seed(0)
        adv = spec.apply(x, y, eps).detach()
        assert adv.shape == x.shape, spec.name
        assert float(adv.min()) >= 0 and float(adv.max()) <= 1, spec.name
        if spec.eps_based:
            assert float(metrics.distance(adv, x, norm).max()) <= eps + attacks.TOL, spec.name
        fooled = protocol.predict(mlp, adv) != y
        assert fooled.any(), f"{spec.name} fools none of 20 images of a standard MLP"


def test_distances_of_epsilon_attacks_are_capped_at_the_grid_epsilon_that_was_verified(plain):
    for norm in plain.norms:
        grid = torch.tensor(plain.config.grid(norm), dtype=torch.float64)
        for name, r in plain.attacks[norm].items():
            if name in plain.rechecks[norm]:  # the epsilon attacks
                d = r.distances[torch.isfinite(r.distances) & (r.distances > 0)]
                assert (d <= grid.max() + 1e-12).all(), name


@pytest.mark.parametrize("loss", ["apgd-ce", "apgd-dlr"])
def test_apgd_drives_a_standard_mlp_to_at_most_2_percent_at_linf_0_3(loss, mlp, images):
    x, y = images
    clean = (protocol.predict(mlp, x) == y).double().mean().item()
    assert clean >= 0.90
    reference = protocol.reference_images(QUICK, x)
    config = dataclasses.replace(QUICK, attacks=(loss,))
    (spec,), _ = protocol.suite(
        Adapter("mlp", mlp),
        config,
        "linf",
        num_classes=10,
        reference=reference,
        ref_pred=protocol.predict(mlp, reference),
    )
    spec = dataclasses.replace(spec, grid=(0.3,))  # just the threshold: 200 images, 100 steps
    run = protocol.run_attack(spec, mlp, x, y, protocol.predict(mlp, x) == y, config)
    assert run.result.accuracy_at(0.3) <= 0.02


def test_decision_attack_beats_gaussian_noise_by_2x_on_a_standard_mlp_at_the_quick_budget(mlp, images):
    x, y = images[0][:100], images[1][:100]
    reference = protocol.reference_images(QUICK, x)
    ref_pred = protocol.predict(mlp, reference)
    clean = protocol.predict(mlp, x) == y
    (hsja, noise), _ = protocol.suite(
        Adapter("mlp", mlp),
        dataclasses.replace(QUICK, attacks=("hsja", "noise")),
        "l2",
        num_classes=10,
        reference=reference,
        ref_pred=ref_pred,
    )
    assert (hsja.family, noise.family) == ("decision", "noise")
    d_hsja = protocol.run_attack(hsja, mlp, x, y, clean, QUICK).result
    d_noise = protocol.run_attack(noise, mlp, x, y, clean, QUICK).result
    assert 2 * d_hsja.median() <= d_noise.median()
    # started from the trivial bound's image, it never ends farther away
    bound = protocol.trivial_bound(mlp, x, y, reference, ref_pred, "l2")
    assert (d_hsja.distances <= bound.distances + 1e-6).all()


def test_hopskipjump_gives_up_only_on_images_far_above_the_known_distance(mlp, images, counting):
    x, y = images[0][:40], images[1][:40]
    keep = protocol.predict(mlp, x) == y
    x, y = x[keep], y[keep]
    reference = protocol.reference_images(QUICK, x)
    idx, _ = protocol._nearest_other(x, y, reference, protocol.predict(mlp, reference), 2.0)
    start = reference[idx]

    def hsja(model, limit=None):
        torch.manual_seed(0)
        return protocol.hop_skip_jump(model, x, y, start, steps=9, evals=20, limit=limit)

    free = hsja(mlp)
    no_limit = torch.full((len(x),), math.inf, dtype=torch.float64)
    assert torch.equal(hsja(mlp, no_limit), free)  # nothing known: every image runs every iteration
    d_free = (free - x).flatten(1).norm(dim=1).double()
    # half the images know a distance 3x smaller than HopSkipJump reaches (given up), half a larger one
    limit = torch.where(torch.arange(len(x)) % 2 == 0, d_free / 3, d_free * 2)
    counted_free, counted = counting(mlp), counting(mlp)
    hsja(counted_free)
    bounded = hsja(counted, limit)
    assert counted.images < 0.8 * counted_free.images
    assert (protocol.predict(mlp, bounded) != y).all()  # every image still ends adversarial
    d_bounded = (bounded - x).flatten(1).norm(dim=1).double()
    start_d = (start - x).flatten(1).norm(dim=1).double()
    assert (d_bounded <= start_d + 1e-5).all()
    kept = limit > d_free  # the images it kept working on get as close as without a limit (other probes)
    assert (d_bounded[kept] / d_free[kept]).median() <= 1.1


def test_transfer_with_a_limit_returns_exactly_what_beats_it(mlp, small_mlp, images):
    x, y = images[0][:40], images[1][:40]
    torch.manual_seed(0)  # the source's PGD starts at random
    free = attacks.transfer(mlp, x, y, source=small_mlp, norm="linf")
    d_free = metrics.distance(free, x, "linf").double()
    found = (protocol.predict(mlp, free) != y) & (d_free > 0)
    assert found.sum() >= 10
    limit = torch.where(torch.arange(len(x)) % 2 == 0, d_free * 1.2, d_free * 0.8)
    limit[~found] = math.inf
    torch.manual_seed(0)
    bounded = attacks.transfer(mlp, x, y, source=small_mlp, norm="linf", limit=limit)
    beats = found & (d_free < limit)
    assert torch.equal(bounded[beats], free[beats])
    assert torch.equal(bounded[found & ~beats], x[found & ~beats])


def test_gradient_attacks_use_the_grad_model_and_success_is_judged_on_the_model(mlp, small_mlp, images):
    x, y = images[0][:60], images[1][:60]
    masked = NoGrad(mlp)
    clean = protocol.predict(masked, x) == y
    config = dataclasses.replace(QUICK, attacks=("apgd-ce",), apgd_steps=50)

    def apgd(adapter: Adapter) -> attacks.DistanceResult:
        (spec,), _ = protocol.suite(
            adapter, config, "linf", num_classes=10, reference=x, ref_pred=protocol.predict(masked, x)
        )
        return protocol.run_attack(dataclasses.replace(spec, grid=(0.3,)), masked, x, y, clean, config).result

    assert apgd(Adapter("masked", masked)).accuracy_at(0.3) >= 0.8  # zero gradients: nothing happens
    assert apgd(Adapter("masked", masked, grad_model=mlp)).accuracy_at(0.3) <= 0.02
    # A surrogate with other decisions: what counts is only what fools the real model.
    r = apgd(Adapter("masked", masked, grad_model=small_mlp))
    hit = torch.isfinite(r.distances) & clean
    assert hit.any()
    assert (protocol.predict(masked, r.adversarials[hit]) != y[hit]).all()


def test_without_cascade_every_attack_is_standalone_and_the_minimum_agrees(mlp, plain):
    """``paper`` runs each attack alone over the whole grid (scan); the cascade (quick) only asks a
    later attack to beat the earlier ones. Both end at about the same combined accuracy."""
    alone = _evaluate(
        mlp, FAST, name="mlp", norms=("linf",), attacks=("apgd-ce", "apgd-dlr"), search="scan", cascade=False
    )
    assert alone.accuracy_at("linf", 0.3, "apgd-dlr") <= 0.05  # DLR on its own breaks the MLP too
    assert plain.median("linf", "apgd-dlr") == math.inf  # in the cascade it rarely beats CE
    for t in FAST.thresholds("linf"):
        assert abs(alone.accuracy_at("linf", t) - plain.accuracy_at("linf", t)) <= 2 / len(plain.labels)


def test_adapter_attacks_run_and_every_adversarial_is_verified(mlp, images):
    x, y = images[0][:24], images[1][:24]

    def too_far(x, y, eps):  # a broken attack: leaves the ball
        return (x + 2 * eps * torch.sign(torch.randn_like(x))).clamp(0, 1)

    def pgd(x, y, eps):
        return attacks.pgd_torch(mlp, x, y, eps, norm="linf", steps=20)

    adapter = Adapter(
        "mlp",
        mlp,
        attacks=(
            AttackSpec("too-far", "linf", too_far),
            AttackSpec("own-pgd", "linf", pgd),
            AttackSpec("identity", "l2", lambda x, y: x, eps_based=False, family="noise"),
        ),
    )
    r = protocol.evaluate(adapter, x, y, dataclasses.replace(FAST, attacks=("noise",)), progress=False)
    clean = r.clean_correct
    assert torch.isinf(r.attacks["linf"]["too-far"].distances[clean]).all()
    assert torch.isinf(r.attacks["l2"]["identity"].distances[clean]).all()
    assert r.accuracy_at("linf", 0.3, "own-pgd") <= 0.05
    assert r.families["own-pgd"] == "gradient" and r.families["identity"] == "noise"
    assert r.strongest("linf").get("own-pgd", 0) > 0


# --- the trivial bound and the combined result -------------------------------------------------


def test_the_combined_distance_is_the_minimum_and_never_exceeds_the_trivial_bound(plain, toys):
    for result in (plain, *toys.values()):
        for norm in result.norms:
            combined, bound = result.combined[norm].distances, result.trivial[norm].distances
            assert (combined <= bound).all()
            everything = torch.stack([r.distances for r in result.attacks[norm].values()] + [bound])
            assert torch.equal(combined, everything.min(0).values)
            assert result.median(norm) <= metrics.median_distance(bound)


def test_trivial_bound_is_a_real_other_class_image_and_0_5_for_binarising_models(mlp, images):
    x, y = images[0][:30], images[1][:30]
    reference = protocol.reference_images(FAST, x)
    ref_pred = protocol.predict(mlp, reference)
    for norm in protocol.NORMS:
        b = protocol.trivial_bound(mlp, x, y, reference, ref_pred, norm)
        assert torch.isfinite(b.distances).all()
        ok = b.distances > 0  # 0: the model already errs on the image
        assert (protocol.predict(mlp, b.adversarials[ok]) != y[ok]).all()
        assert torch.allclose(metrics.distance(b.adversarials, x, norm), b.distances)
    binary = Binarised(mlp)
    plain_bound = protocol.trivial_bound(binary, x, y, reference, protocol.predict(binary, reference), "linf")
    half = protocol.trivial_bound(binary, x, y, reference, protocol.predict(binary, reference), "linf", binarises=True)
    correct = protocol.predict(binary, x) == y
    assert (half.distances[correct] <= 0.5 + 1e-3 + 1e-9).all()
    assert (plain_bound.distances[correct] > 0.5 + 1e-3).all()  # the nearest images are much farther
    assert (protocol.predict(binary, half.adversarials[correct]) != y[correct]).all()


# --- flags -------------------------------------------------------------------------------------


def test_the_plain_mlp_raises_no_flag(plain):
    assert plain.clean_accuracy >= 0.9
    assert protocol.sanity_flags(plain) == []
    assert not plain.skipped
    assert plain.accuracy_at("linf", 0.3) == 0.0


@pytest.mark.parametrize("kind", protocol.FLAG_KINDS)
def test_each_flag_fires_on_its_masked_toy(kind, toys):
    assert kind in _kinds(toys[kind]), protocol.sanity_flags(toys[kind])


def test_the_flags_name_what_they_saw(toys):
    (masking,) = [
        f for f in protocol.sanity_flags(toys["gradient masking suspected"]) if f.kind == "gradient masking suspected"
    ]
    assert masking.norm == "linf" and "square" in masking.message
    (failure,) = [f for f in protocol.sanity_flags(toys["attack failure"]) if f.kind == "attack failure"]
    assert "0.4" in failure.message


# --- results -----------------------------------------------------------------------------------


def test_result_has_curves_medians_thresholds_sources_and_times(plain):
    for norm in ("linf", "l2"):
        curve = plain.curve(norm)
        assert curve.shape == (len(plain.config.grid(norm)),)
        assert curve[0] == pytest.approx(plain.clean_accuracy)
        assert (curve[1:] <= curve[:-1]).all()
        assert set(plain.at_thresholds(norm)) == set(plain.config.thresholds(norm))
        assert sum(plain.strongest(norm).values()) == int(plain.clean_correct.sum())
        t = plain.config.thresholds(norm)[0]
        broken = plain.clean_correct & (plain.combined[norm].distances <= t)
        assert sum(plain.strongest(norm, at=t).values()) == int(broken.sum())
        assert set(plain.seconds[norm]) == {"trivial", *plain.attacks[norm]}
        assert all(s >= 0 for s in plain.seconds[norm].values())
        assert math.isfinite(plain.median(norm))
    assert "hsja" in plain.attacks["l2"] and "hsja" not in plain.attacks["linf"]
    assert plain.combined["linf"].adversarials.shape[0] == min(FAST.keep_adversarials, len(plain.labels))


def test_result_round_trips_through_the_artifact_store(plain, tmp_store):
    store.save("protocol-mlp", {"config": FAST}, plain.to_dict(), notebook="protocol", profile="smoke")
    back = protocol.ProtocolResult.from_dict(
        store.load("protocol-mlp", {"config": FAST}, notebook="protocol", profile="smoke")
    )
    assert back.config == plain.config
    assert back.summary() == plain.summary()
    assert back.flags() == plain.flags()
    for norm in plain.norms:
        assert torch.equal(back.curve(norm), plain.curve(norm))
        assert back.combined[norm].sources == plain.combined[norm].sources
        assert back.rechecks[norm] == plain.rechecks[norm]
