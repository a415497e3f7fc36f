"""ABS in the model zoo and the yardstick: ``robustlib.papers.abs.adapter`` (the entries load from
the committed quick artifacts without training and reproduce the chapter's stored clean accuracy;
the gradient surrogate agrees with the model; Latent Descent as the protocol's attack; the
paper's operating points) and the ``yardstick`` steps' stored quick results."""

from __future__ import annotations

import pytest
import torch

from robustlib import data, experiment, protocol, store
from robustlib.papers.abs import adapter, claims
from robustlib.papers.abs import experiments as E
from robustlib.papers.abs import model as A


@pytest.fixture(scope="module")
def quick() -> experiment.Experiment:
    if not (store.artifact_dir("abs", "quick") / "vaes-4b868de511db.json").exists():
        pytest.skip("the committed quick artifacts are not here")
    return experiment.start("abs", "quick", device="cpu", load_only=True)


def _listing() -> dict[str, float]:
    folder = store.artifact_dir("abs", "quick")
    return {p.name: p.stat().st_mtime for p in folder.iterdir()}


@pytest.mark.parametrize("name", adapter.MODELS)
def test_every_entry_loads_without_training_and_reproduces_its_clean_accuracy(name, quick):
    before = _listing()
    model = adapter.load(quick, name)
    assert isinstance(model, A.ABS) and not model.training
    assert model.config.binary == (name == "binary-abs")
    stored = E.clean(quick)  # the chapter's clean accuracy, on its first n_clean test images
    display = {"abs": "ABS", "binary-abs": "Binary ABS"}[name]
    x, y = data.first(*data.mnist("test"), stored["n"][display])
    correct = int((protocol.predict(model, x, batch_size=100) == y).sum())
    assert correct == round(stored["accuracy"][display] * len(x))  # same images, same number
    assert _listing() == before  # nothing trained, nothing written


def test_a_wrong_name_is_a_value_error_naming_the_valid_ones(quick):
    with pytest.raises(ValueError, match="abs, binary-abs"):
        adapter.load(quick, "ABS")
    with pytest.raises(ValueError, match="abs, binary-abs"):
        adapter.adapter(quick, "relu-mlp", torch.nn.Identity())


def test_a_load_only_experiment_without_the_weights_raises_missing_result(tmp_store):
    exp = experiment.start("abs", "quick", device="cpu", load_only=True)
    with pytest.raises(experiment.MissingResult, match="vaes"):
        adapter.load(exp, "abs")


@pytest.mark.parametrize("name", adapter.MODELS)
def test_the_gradient_surrogate_agrees_with_the_model_and_gives_the_envelope_gradient(name, quick):
    model = adapter.load(quick, name)
    found = adapter.adapter(quick, name, model)
    assert found.binarises == (name == "binary-abs") and found.grad_model is not model
    assert found.grad_model.config.steps == adapter.SURROGATE_STEPS
    # on the yardstick's images the decisions agree; on 100 test images at least 95 % of them
    config = E.yardstick_config(quick.profile)
    x, _ = protocol.protocol_images(config)
    assert torch.equal(protocol.predict(found.grad_model, x), protocol.predict(model, x))
    x100, _ = data.first(*data.mnist("test"), 100)
    agree = (protocol.predict(found.grad_model, x100) == protocol.predict(model, x100)).double().mean()
    assert agree >= 0.95
    # a usable gradient: non-zero, the envelope formula -(2/784)(x - G_c(z*)) (plain ABS)
    xg = x[:2].clone().requires_grad_(True)
    found.grad_model(xg)[:, 3].sum().backward()
    assert xg.grad.abs().sum() > 0
    if name == "abs":
        rec = found.grad_model.infer(x[:2]).recon[:, 3]
        assert torch.allclose(xg.grad.flatten(1), -(2 / 784) * (x[:2].flatten(1) - rec), atol=1e-6)


def test_latent_descent_is_the_protocols_attack_in_both_norms(quick):
    model = adapter.load(quick, "abs")
    specs = adapter.adapter(quick, "abs", model).attacks
    assert [(s.name, s.norm, s.eps_based, s.family) for s in specs] == [
        ("latent-descent", "l2", False, "decision"),
        ("latent-descent-linf", "linf", False, "decision"),
    ]
    x, y = data.first(*data.mnist("test"), 3)
    adv = specs[0].run(x, y)
    assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
    assert (model(adv).argmax(1) != y).any()


def test_claimed_operating_points_come_from_the_released_all_attack_numbers():
    assert set(adapter.CLAIMED) == set(adapter.MODELS)
    points = {(p["norm"], p["eps"]): p for p in adapter.CLAIMED["abs"]}
    assert points[("l2", 1.5)]["accuracy"] == claims.PAPER["ABS"]["l2"][1] == 0.80
    assert points[("linf", 0.3)]["accuracy"] == claims.PAPER["ABS"]["linf"][1]
    binary = {(p["norm"], p["eps"]): p for p in adapter.CLAIMED["binary-abs"]}
    assert binary[("linf", 0.3)]["accuracy"] == claims.PAPER["Binary ABS"]["linf"][1] == 0.77
    assert all(p["source"] == claims.RELEASED_ALL for ps in adapter.CLAIMED.values() for p in ps)


def test_the_soft_nearest_neighbour_agrees_with_the_hard_one():
    from robustlib.papers.baselines.model import NearestNeighbour

    xt, yt = data.first(*data.mnist("train"), 2000)
    hard = NearestNeighbour(xt, yt)
    soft = adapter.SoftNearestNeighbour(hard)
    x, _ = data.first(*data.mnist("test"), 100)
    assert (protocol.predict(soft, x) == protocol.predict(hard, x)).double().mean() >= 0.97
    view = adapter.baseline_adapter("Nearest neighbour", hard)
    assert view.grad_model is not None and not view.binarises
    assert adapter.baseline_adapter("Binary CNN", hard).binarises


def test_the_quick_yardstick_results_load_from_the_store(quick):
    """What the book and the side-by-side chapter show: loaded, never recomputed."""
    by_name = {s.name: s for s in E.steps(quick.profile)}
    abs_results = by_name["yardstick"].run(quick)
    assert set(abs_results) == set(adapter.MODELS)
    for r in abs_results.values():
        assert len(r.labels) == E.YARDSTICK_OVERRIDES["quick"]["n_images"]
        assert "latent-descent" in r.attacks["l2"] and "square" not in r.attacks["l2"]
    # binary ABS: no L-inf distance above the trivial bound 0.5 (+ its margin)
    assert abs_results["binary-abs"].distances("linf").distances.max() <= 0.5 + 1e-3 + 1e-9
    baselines = by_name["yardstick_baselines"].run(quick)
    assert set(baselines) == set(claims.BASELINES)
    assert all(len(r.labels) == protocol.ProtocolConfig.for_profile("quick").n_images for r in baselines.values())
