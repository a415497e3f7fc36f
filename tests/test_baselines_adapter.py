"""The baselines in the model zoo (``papers.baselines.adapter``): every entry loads from the
committed quick artifacts without training and reproduces what the chapter stored; the adapters'
gradient models agree with the models' decisions; the transfer source every chapter's yardstick
uses loads at quick and is trained through the chapter's own step at smoke."""

from __future__ import annotations

import pytest
import torch

from robustlib import data, experiment, paths, protocol, train
from robustlib.papers.baselines import adapter, experiments
from robustlib.papers.baselines.model import NearestNeighbour, SoftNearestNeighbour


def _snapshot() -> dict[str, int]:
    """Every file of the quick baselines store with its modification time."""
    folder = paths.artifacts_dir() / "quick" / "baselines"
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


@pytest.fixture(scope="module")
def quick():
    """The zoo entries loaded in a load-only quick experiment, and the stored results they must
    reproduce (clean accuracy, the yardstick), with nothing written on the way."""
    before = _snapshot()
    exp = experiment.start("baselines", "quick", 0, "cpu", load_only=True)
    loaded = {name: adapter.load(exp, name) for name in adapter.MODELS}
    stored = {"clean": experiments.clean(exp), "yardstick": experiments.yardstick(exp)}
    assert _snapshot() == before, "loading trained or wrote something"
    return exp, loaded, stored


def test_every_entry_loads_in_eval_mode_and_maps_images_to_ten_scores(quick):
    _, loaded, _ = quick
    assert tuple(loaded) == ("relu-mlp", "sigmoid-mlp", "lenet", "nearest-neighbour")
    x = torch.rand(3, 1, 28, 28)
    for name, model in loaded.items():
        assert not model.training, name
        assert model(x).shape == (3, 10), name


def test_every_entry_reproduces_the_stored_yardstick_clean_decisions(quick):
    """Same images, same number: per image, exactly the clean decisions the yardstick stored."""
    _, loaded, stored = quick
    for name, model in loaded.items():
        r = stored["yardstick"][name]
        x, y = protocol.protocol_images(r.config)
        assert torch.equal(protocol.predict(model, x) == y, r.clean_correct), name


def test_the_networks_reproduce_the_stored_clean_accuracy(quick):
    exp, loaded, stored = quick
    x, y = experiments.clean_images(exp.profile)
    for name in ("relu-mlp", "sigmoid-mlp", "lenet"):
        acc = train.accuracy(loaded[name], x, y, device="cpu")
        assert acc == pytest.approx(stored["clean"][adapter.KIND[name]], abs=1e-12), name


def test_the_grad_models_agree_with_the_decisions_on_clean_images(quick):
    exp, loaded, _ = quick
    x, _ = protocol.protocol_images(protocol.ProtocolConfig.for_profile("quick"))
    for name, model in loaded.items():
        a = adapter.adapter(exp, name, model)
        assert a.name == name and a.model is model and not a.binarises and not a.attacks
        grad_model = a.grad_model or model
        assert torch.equal(protocol.predict(grad_model, x), protocol.predict(model, x)), name
    assert isinstance(
        adapter.adapter(exp, "nearest-neighbour", loaded["nearest-neighbour"]).grad_model, SoftNearestNeighbour
    )


def test_soft_nearest_neighbour_tends_to_the_hard_scores_and_has_gradients():
    g = torch.Generator().manual_seed(0)
    tx, ty = torch.rand(60, 1, 28, 28, generator=g), torch.arange(60) % 10
    q = torch.rand(5, 1, 28, 28, generator=g, requires_grad=True)
    hard = NearestNeighbour(tx, ty, chunk=4)
    for t in (1e-3, 0.1, 1.0):
        soft = SoftNearestNeighbour(hard, t)(q)
        gap = soft - hard(q)  # in [0, T log(6)]: six training images per class
        assert (gap >= -1e-4).all() and (gap <= t * torch.log(torch.tensor(6.0)) + 1e-4).all()
    (grad,) = torch.autograd.grad(SoftNearestNeighbour(hard, 0.1)(q)[:, 3].sum(), q)
    assert grad.abs().sum() > 0
    with pytest.raises(ValueError, match="temperature"):
        SoftNearestNeighbour(hard, 0.0)


def test_a_wrong_name_is_a_value_error_naming_the_valid_ones(quick):
    exp, loaded, _ = quick
    with pytest.raises(ValueError, match="relu-mlp, sigmoid-mlp, lenet, nearest-neighbour"):
        adapter.load(exp, "relu_mlp")
    with pytest.raises(ValueError, match="valid: relu-mlp"):
        adapter.adapter(exp, "resnet", loaded["lenet"])
    assert adapter.CLAIMED == {name: [] for name in adapter.MODELS}


def test_the_transfer_source_loads_at_quick_without_writing(quick):
    before = _snapshot()
    source = adapter.transfer_source("quick", "cpu")
    assert _snapshot() == before
    _, loaded, _ = quick
    for a, b in zip(source.state_dict().values(), loaded["relu-mlp"].state_dict().values()):
        assert torch.equal(a, b)
    exp, _, stored = quick
    assert adapter.source_key("quick") == experiments.model_key(exp, "relu_mlp")
    assert stored["yardstick"]["lenet"].config == experiments.yardstick_config(exp.profile)


def test_the_transfer_source_is_trained_through_the_chapters_step_at_smoke_once(tmp_store):
    first = adapter.transfer_source("smoke", "cpu")
    folder = tmp_store / "smoke" / "baselines"
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == 2 and files[0].startswith("relu_mlp-")  # weights (.safetensors) and .json
    again = adapter.transfer_source("smoke", "cpu")
    assert sorted(p.name for p in folder.iterdir()) == files
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    x, y = data.first(*data.mnist("test"), 200)
    assert train.accuracy(again, x, y, device="cpu") > 0.5


def test_at_quick_a_missing_source_is_a_missing_result_not_a_training(tmp_store):
    with pytest.raises(experiment.MissingResult, match="relu_mlp"):
        adapter.transfer_source("quick", "cpu")
