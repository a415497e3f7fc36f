"""The DAM models in the model zoo (``papers.dam.adapter``): both entries load from the committed
quick artifacts without training and reproduce what the chapter stored; the gradient model (float64
pre-tanh scores) agrees with the decisions; the paper's own attacks stay in the ball and the box;
the yardstick step runs at smoke and round-trips through the store."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from robustlib import attacks, experiment, metrics, paths, protocol
from robustlib.papers.dam import adapter, experiments
from robustlib.papers.dam import model as dam


def _snapshot() -> dict[str, int]:
    """Every file of the quick DAM store with its modification time."""
    folder = paths.artifacts_dir() / "quick" / "dam"
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


@pytest.fixture(scope="module")
def quick():
    """Both entries loaded in a load-only quick experiment, and the stored results they must
    reproduce (test error, the yardstick), with nothing written on the way."""
    before = _snapshot()
    exp = experiment.start("dam", "quick", 0, "cpu", load_only=True)
    loaded = {name: adapter.load(exp, name) for name in adapter.MODELS}
    stored = {"clean": experiments.clean(exp), "yardstick": experiments.yardstick(exp)}
    assert _snapshot() == before, "loading trained or wrote something"
    return exp, loaded, stored


def test_both_entries_load_in_eval_mode_and_map_images_to_ten_scores(quick):
    _, loaded, _ = quick
    assert tuple(loaded) == ("dam-n2", "dam-n30") == adapter.MODELS
    x = torch.rand(3, 1, 28, 28)
    for name, model in loaded.items():
        assert isinstance(model, dam.DAM) and model.n == adapter.power(name) and not model.training
        assert model(x).shape == (3, 10) and model(x).dtype == torch.float64


def test_both_entries_reproduce_the_stored_test_error(quick):
    exp, loaded, stored = quick
    x, y = experiments.test_data(exp.profile.n_clean)  # all 10,000 at quick
    for name, model in loaded.items():
        error = (dam.outputs(model, x).argmax(1) != y).double().mean().item()
        assert error == pytest.approx(stored["clean"]["by_model"][f"n={model.n}"]["error"], abs=1e-12), name


def test_both_entries_reproduce_the_yardsticks_clean_decisions(quick):
    """Same images, same number: per image, exactly the clean decisions the yardstick stored."""
    _, loaded, stored = quick
    for name, model in loaded.items():
        r = stored["yardstick"][name]
        x, y = protocol.protocol_images(r.config)
        assert len(x) == 200 and r.model == name
        assert torch.equal(protocol.predict(model, x) == y, r.clean_correct), name


def test_the_grad_model_is_the_float64_pre_tanh_score_with_the_same_decisions(quick):
    exp, loaded, _ = quick
    x, _ = protocol.protocol_images(protocol.ProtocolConfig.for_profile("quick"))
    for name, model in loaded.items():
        a = adapter.adapter(exp, name, model)
        assert a.name == name and a.model is model and not a.binarises
        assert isinstance(a.grad_model, dam.PreTanh) and a.grad_model.dam is model
        scores = a.grad_model(x)
        assert scores.dtype == torch.float64
        torch.testing.assert_close(torch.tanh(scores), model(x), rtol=0, atol=0)
        assert torch.equal(protocol.predict(a.grad_model, x), protocol.predict(model, x)), name
        assert [(s.name, s.norm, s.eps_based, s.family) for s in a.attacks] == [
            ("dam-fgsm", "linf", True, "gradient"),
            ("dam-boundary", "l2", False, "gradient"),
        ]


def test_the_papers_attacks_stay_in_the_ball_and_the_box_and_cross_the_boundary(quick):
    exp, loaded, _ = quick
    x, y = protocol.protocol_images(protocol.ProtocolConfig.for_profile("smoke"))
    model = loaded["dam-n30"]
    fgsm, boundary = adapter.adapter(exp, "dam-n30", model).attacks
    adv = fgsm.run(x, y, 0.1)
    assert adv.dtype == x.dtype and adv.min() >= 0 and adv.max() <= 1
    assert metrics.distance(adv, x, "linf").max() <= 0.1 + attacks.TOL
    torch.testing.assert_close(adv, dam.fgsm(model, x, y, 0.1).to(x.dtype))  # the registered dam_fgsm
    adv = boundary.run(x, y)
    assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
    first = protocol.predict(model, x)
    assert (protocol.predict(model, adv) != first).float().mean() >= 0.9  # one step past the boundary


def test_a_wrong_name_is_a_value_error_naming_the_valid_ones(quick):
    exp, loaded, _ = quick
    with pytest.raises(ValueError, match="valid: dam-n2, dam-n30"):
        adapter.load(exp, "dam-n20")
    with pytest.raises(ValueError, match="valid: dam-n2, dam-n30"):
        adapter.adapter(exp, "n30", loaded["dam-n30"])
    with pytest.raises(TypeError, match="needs the DAM"):
        adapter.adapter(exp, "dam-n30", torch.nn.Linear(784, 10))
    assert adapter.CLAIMED == {name: [] for name in adapter.MODELS}


def test_load_only_never_trains_a_missing_model():
    other = replace(experiments.DamProfile("quick", "dam"), K=7)  # no such model in the store
    exp = experiment.Experiment("dam", other, load_only=True)
    with pytest.raises(experiment.MissingResult, match="robustlib compute dam"):
        adapter.load(exp, "dam-n2")


def test_the_yardstick_step_at_smoke_evaluates_both_models_and_round_trips(tmp_store):
    exp = experiment.start("dam", "smoke", 0, "cpu")
    first = experiments.yardstick(exp)
    assert list(first) == list(adapter.MODELS)
    for name, r in first.items():
        assert r.model == name and r.config == protocol.ProtocolConfig.for_profile("smoke")
        assert {"apgd-ce", "apgd-dlr", "square", "transfer", "dam-fgsm"} <= set(r.attacks["linf"])
        assert {"hsja", "dam-boundary"} <= set(r.attacks["l2"]) and not r.skipped
        assert (r.combined["l2"].distances <= r.trivial["l2"].distances).all()
    again = experiments.yardstick(experiment.start("dam", "smoke", 0, "cpu", load_only=True))
    for name in adapter.MODELS:
        assert again[name].summary() == first[name].summary()
