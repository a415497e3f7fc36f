"""The RBFI chapter's zoo entries and adapter (``robustlib.papers.rbfi.adapter``), on the committed
``quick`` artifacts in a load-only experiment: nothing is trained and nothing is written."""

from __future__ import annotations

import pytest
import torch

from robustlib import data, experiment, paths, protocol
from robustlib.papers.rbfi import adapter, claims, experiments
from robustlib.papers.rbfi import model as rbfi

QUICK_DIR = paths.artifacts_dir() / "quick" / "rbfi"


@pytest.fixture(scope="module")
def exp():
    return experiment.start("rbfi", "quick", load_only=True)


@pytest.fixture(scope="module")
def images():
    return data.first(*data.mnist("test"), 200)


def _snapshot() -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in QUICK_DIR.iterdir()}


def test_every_entry_loads_and_reproduces_its_stored_clean_accuracy(exp):
    before = _snapshot()
    stored = experiments.yardstick(exp)  # the committed protocol results
    for name in adapter.MODELS:
        model = adapter.load(exp, name)
        assert not model.training and next(model.parameters()).device.type == torch.device(exp.device).type
        # the accuracy stored with the weights: the last epoch's, on the first 1,000 test images
        spec = experiments.main_specs(exp.profile)[adapter.KIND[name]]
        history = experiments.network(exp, spec, 0)[1]
        x, y = (t[:1000] for t in experiments.clean_images(exp))
        assert protocol.predict(model, x).eq(y).double().mean().item() == pytest.approx(history[-1]["eval_acc"])
        # and the yardstick's: the same images, image by image
        res = stored[name]
        x, y = protocol.protocol_images(res.config)
        assert torch.equal(protocol.predict(model, x) == y, res.clean_correct)
    assert _snapshot() == before  # load-only: nothing trained, nothing written


def test_a_wrong_name_is_a_value_error_naming_the_valid_ones(exp):
    for bad in ("relu-mlp", "RBFI", ""):
        with pytest.raises(ValueError, match="valid: rbfi, rbfi-relu"):
            adapter.load(exp, bad)
    with pytest.raises(ValueError, match="valid: rbfi, rbfi-relu"):
        adapter.adapter(exp, "rbfi-sigmoid", torch.nn.Identity())


def test_claimed_points_come_from_the_claims_module():
    assert set(adapter.CLAIMED) == set(adapter.MODELS)
    (point,) = adapter.CLAIMED["rbfi"]
    assert point["norm"] == "linf" and point["eps"] == claims.EPS and point["accuracy"] == claims.RBFI_ATTACKED
    assert adapter.CLAIMED["rbfi-relu"] == []


def test_grad_models_agree_with_the_network_and_skip_parameter_gradients(exp, images):
    net = adapter.load(exp, "rbfi")
    ad = adapter.adapter(exp, "rbfi", net)
    assert [a.name for a in ad.attacks] == list(adapter.ATTACKS[1:]) and not ad.binarises
    x, y = images
    with torch.no_grad():
        out = net(x)
        for mode in rbfi.GRAD_MODES:
            assert torch.equal(adapter.AttackView(net, mode)(x), out)
        assert torch.equal(ad.grad_model(x).argmax(1), out.argmax(1))
    for mode in rbfi.GRAD_MODES:  # the same input gradient as the network in that mode
        xr = x[:16].clone().requires_grad_(True)
        (g_view,) = torch.autograd.grad(adapter.AttackView(net, mode)(xr).square().sum(), xr)
        xr = x[:16].clone().requires_grad_(True)
        (g_net,) = torch.autograd.grad(rbfi.WithGradMode(net, mode)(xr).square().sum(), xr)
        assert torch.allclose(g_view, g_net, atol=1e-6)
    assert all(p.grad is None for p in net.parameters()) and net.grad_mode == "pseudo"
    relu = adapter.adapter(exp, "rbfi-relu", adapter.load(exp, "rbfi-relu"))
    assert relu.grad_model is None and relu.attacks == ()
    with pytest.raises(ValueError, match="valid: pseudo, true"):
        adapter.AttackView(net, "sign")


def test_the_adapters_attacks_stay_in_the_ball_and_the_box(exp, images):
    net = adapter.load(exp, "rbfi")
    x, y = (t[:8] for t in images)
    for spec in adapter.adapter(exp, "rbfi", net).attacks:
        assert spec.norm == "linf" and spec.eps_based and spec.family == "gradient"
        xa = spec.run(x, y, 0.2)
        assert xa.shape == x.shape and float(xa.min()) >= 0 and float(xa.max()) <= 1
        assert float((xa - x).abs().max()) <= 0.2 + 1e-6, spec.name
