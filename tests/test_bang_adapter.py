"""The BANG chapter's zoo entries and yardstick adapter (``robustlib/papers/bang/adapter.py``), and
its ``yardstick`` step, on the committed ``quick`` results (load-only: nothing is trained)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustlib import data, experiment, paths, protocol, store
from robustlib.papers.bang import adapter, claims, evaluation
from robustlib.papers.bang import experiments as bx


@pytest.fixture(scope="module")
def quick():
    return experiment.start("bang", "quick", load_only=True)


def _snapshot() -> dict[str, int]:
    folder = paths.artifacts_dir() / "quick" / "bang"
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


@pytest.fixture(scope="module")
def models(quick):
    return {name: adapter.load(quick, name) for name in adapter.MODELS}


def test_every_entry_loads_without_training_and_reproduces_its_stored_accuracy():
    before = _snapshot()
    exp = experiment.start("bang", "quick", load_only=True)
    stored = bx.table1_models(exp)["test_acc"]
    x, y = data.mnist("test")
    for name in adapter.MODELS:
        model = adapter.load(exp, name)
        assert not model.training and isinstance(model, torch.nn.Module)
        acc = (protocol.predict(model, x) == y).double().mean().item()
        assert acc == pytest.approx(stored[adapter.row(name)], abs=1e-12)  # all 10,000 test images
    assert _snapshot() == before  # nothing computed, nothing written


def test_a_wrong_name_is_a_value_error_naming_the_valid_ones(quick, models):
    for call in (lambda: adapter.load(quick, "bang-b2"), lambda: adapter.adapter(quick, "B1", models["bang-b1"])):
        with pytest.raises(ValueError, match="bang-r0, bang-b1"):
            call()
    with pytest.raises(TypeError, match="LeNet"):
        adapter.adapter(quick, "bang-b1", torch.nn.Linear(784, 10))


def test_grad_model_agrees_with_the_model_and_has_no_blank_gradients(quick, models):
    x, y = data.first(*data.mnist("test"), 500)
    for name, model in models.items():
        grad_model = adapter.adapter(quick, name, model).grad_model
        with torch.no_grad():
            assert torch.equal(grad_model(x).argmax(1), model(x).argmax(1))
    # B1's blank gradients: the float32 cross-entropy gives FGS no direction on these images ...
    b1 = models["bang-b1"]
    blank = (evaluation.fgs_direction(b1, x, y).flatten(1) == 0).all(1)
    assert blank.sum() >= 3
    # ... the surrogate's cross-entropy gradient, cast back to the float32 images, is alive on each
    xb = x[blank].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(adapter.MarginTempered(b1)(xb), y[blank], reduction="sum"), xb)
    assert g.dtype == torch.float32 and (g.flatten(1) != 0).any(1).all()
    # and FGS along it fools them (the masking check's margin direction, through the surrogate)
    steps, _ = evaluation.line_search(b1, x[blank], y[blank], torch.sign(g), max_steps=255)
    assert (steps > 0).float().mean() >= 0.5


def test_the_temperature_leaves_small_margins_alone():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    x = torch.rand(6, 1, 28, 28)
    tempered = adapter.MarginTempered(net, target=1e9)  # every margin below the target: t = 1
    assert torch.allclose(tempered(x), net(x).double(), atol=1e-5)
    with pytest.raises(ValueError, match="target"):
        adapter.MarginTempered(net, target=0.0)


def test_the_papers_attacks_are_the_line_searches(quick, models):
    x, y = data.first(*data.mnist("test"), 8)
    a = adapter.adapter(quick, "bang-r0", models["bang-r0"])
    assert [(s.name, s.norm, s.eps_based, s.family) for s in a.attacks] == [
        ("bang-fgs", "linf", False, "gradient"),
        ("bang-hc1", "linf", False, "gradient"),
    ]
    fgs, hc1 = (s.run(x, y) for s in a.attacks)
    assert torch.equal(fgs, evaluation.fgs(models["bang-r0"], x, y, max_steps=quick.profile.max_steps))
    assert torch.equal(hc1, evaluation.hc1(models["bang-r0"], x, y, max_steps=quick.profile.max_steps))


def test_claimed_points_come_from_table1():
    assert set(adapter.CLAIMED) == set(adapter.MODELS) and adapter.CLAIMED["bang-r0"] == []
    b1 = claims.PAPER_TABLE1["B1"]
    for point in adapter.CLAIMED["bang-b1"]:
        assert set(point) == {"norm", "eps", "accuracy", "source"} and point["norm"] == "linf"
        assert point["accuracy"] == pytest.approx(b1["acc"] / 100 * (1 - b1["fgs_rate"] / 100), abs=1e-4)
    assert sorted(p["eps"] for p in adapter.CLAIMED["bang-b1"]) == [0.1, 0.3]


# --- the yardstick step ---------------------------------------------------------------------------


def test_the_committed_quick_yardstick_loads_and_matches_the_models(quick, models):
    before = _snapshot()
    yard = bx.yardstick(quick)
    assert _snapshot() == before
    config = protocol.ProtocolConfig.for_profile("quick")
    x, y = protocol.protocol_images(config)
    assert list(yard) == list(adapter.MODELS)
    for name, res in yard.items():
        assert res.config == config and res.model == name and torch.equal(res.labels, y)
        assert torch.equal(res.clean_correct, protocol.predict(models[name], x) == y)
        assert {"bang-fgs", "bang-hc1", "apgd-ce", "apgd-dlr", "square", "transfer", "noise"} <= set(
            res.attacks["linf"]
        )
        assert {"apgd-ce", "hsja", "transfer"} <= set(res.attacks["l2"])
        assert not res.skipped  # the transfer source was there
        for norm in res.norms:
            d = res.distances(norm).distances
            assert (d[~res.clean_correct] == 0).all() and torch.isfinite(d).all()
            assert (d <= res.trivial[norm].distances + 1e-9).all()


def test_the_yardstick_key_names_the_protocol_the_models_and_the_source(quick):
    key = bx.YardstickKey(bx.yardstick_config(quick), bx.models_key(quick), "B1", "source", 8.0)
    other = bx.YardstickKey(protocol.ProtocolConfig.for_profile("quick", n_images=100), key.models, "B1", "source", 8.0)
    stems = {
        store.artifact_stem("yardstick-bang-b1", k, notebook="bang", profile="quick", seed=0) for k in (key, other)
    }
    assert len(stems) == 2


def test_cifar_never_touches_the_network_below_paper(monkeypatch, tmp_store):
    def refuse(split="train"):
        raise AssertionError("data.cifar10 was called")

    monkeypatch.setattr(data, "cifar10", refuse)
    monkeypatch.setattr(bx, "cifar_on_disk", lambda: False)
    for name in ("smoke", "quick"):
        assert bx.cifar(experiment.start("bang", name)) is None
    calls = []
    monkeypatch.setattr(data, "cifar10", lambda split="train": calls.append(split))  # returns None
    assert bx.cifar(experiment.start("bang", "paper")) is None and calls == ["train", "test"]
    calls.clear()
    monkeypatch.setattr(bx, "cifar_on_disk", lambda: True)
    assert bx.cifar(experiment.start("bang", "quick")) is None and calls == ["train", "test"]


def test_cifar_on_disk_looks_for_the_extracted_batches(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "cifar10_root", lambda: tmp_path)
    assert not bx.cifar_on_disk()
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"")
    assert bx.cifar_on_disk()


def test_the_transfer_source_is_the_baselines_relu_mlp(quick):
    from robustlib.papers.baselines import experiments as base

    source = bx.transfer_source(quick)
    reference = base.network(experiment.start("baselines", "quick", load_only=True), "relu_mlp")[0]
    assert not source.training
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), reference.state_dict().values()))
