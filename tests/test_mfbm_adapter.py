"""The MFBM chapter's zoo entries and adapters (robustlib.papers.mfbm.adapter) and its yardstick
step: every entry loads from the committed ``quick`` artifacts without training and reproduces the
clean accuracy the chapter stored; the gradient sources agree with the network; the extra attacks
stay in the ball and are judged on the real network; the committed yardstick results load."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from robustlib import experiment, protocol, store
from robustlib.papers.mfbm import adapter, claims, experiments
from robustlib.papers.mfbm import model as mfbm


@pytest.fixture(scope="module")
def exp():
    return experiment.start("mfbm", "quick", load_only=True)


@pytest.fixture(scope="module")
def models(exp):
    before = sorted(store.artifact_dir("mfbm", "quick").iterdir())
    loaded = {name: adapter.load(exp, name) for name in adapter.MODELS}
    assert sorted(store.artifact_dir("mfbm", "quick").iterdir()) == before  # nothing trained or written
    return loaded


def test_every_entry_loads_in_eval_mode_and_reproduces_the_stored_clean_accuracy(exp, models):
    errors = experiments.clean_errors(exp)  # stored by the chapter: the first n_clean test images
    x, y = experiments.clean_images(exp.profile)
    for name, model in models.items():
        assert not model.training
        with torch.no_grad():
            scores = torch.cat([model(x[i : i + 250]) for i in range(0, len(x), 250)])
        assert scores.shape == (len(x), 10)
        correct = int((scores.argmax(1) == y).sum())
        assert correct == round((1 - errors[adapter.label(exp, name)]) * len(y)), name  # the same images right


def test_a_wrong_name_is_a_value_error_naming_the_valid_ones(exp, models):
    for call in (lambda: adapter.load(exp, "mfbm-300"), lambda: adapter.adapter(exp, "rbm", models["mfbm"])):
        with pytest.raises(ValueError, match="mfbm, mfbm-rbm, mfbm-lenet"):
            call()


def test_load_only_never_trains_a_missing_network(exp):
    other = dataclasses.replace(exp.profile, clf_epochs=exp.profile.clf_epochs + 1)  # nothing stored
    missing = experiment.Experiment("mfbm", other, load_only=True)
    with pytest.raises(experiment.MissingResult, match="robustlib compute mfbm"):
        adapter.load(missing, "mfbm")


def test_adapters_say_what_gradient_each_attack_may_use(exp, models):
    ad = {name: adapter.adapter(exp, name, m) for name, m in models.items()}
    full = ad["mfbm"]
    assert full.grad_model is models["mfbm"] and not full.binarises  # the full unrolling
    assert {(a.name, a.norm, a.eps_based, a.family) for a in full.attacks} == {
        (adapter.PAPER_ATTACK, "l2", False, "gradient"),
        ("apgd-shallow-linf", "linf", True, "gradient"),
        ("apgd-shallow-l2", "l2", True, "gradient"),
    }
    for name in ("mfbm-rbm", "mfbm-lenet"):  # no unrolling to shorten: the paper's attack only
        assert ad[name].grad_model is None
        assert [a.name for a in ad[name].attacks] == [adapter.PAPER_ATTACK]


def test_the_gradient_sources_agree_with_the_network_on_clean_images(exp, models):
    x, y = protocol.protocol_images(protocol.ProtocolConfig.for_profile("quick", n_images=100))
    net = models["mfbm"]
    full = adapter.adapter(exp, "mfbm", net).grad_model
    shallow = net.with_iters(exp.profile.surrogate_iters)
    assert shallow.features.iters == exp.profile.surrogate_iters < net.features.iters
    with torch.no_grad():
        decided = net(x).argmax(1)
        assert torch.equal(full(x).argmax(1), decided)
        assert (shallow(x).argmax(1) == decided).double().mean() >= 0.95  # a surrogate, same weights
    for m in (full, shallow):  # gradients reach the image through the unrolled iteration
        xg = x[:8].clone().requires_grad_(True)
        torch.nn.functional.cross_entropy(m(xg), y[:8]).backward()
        assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def test_the_extra_attacks_stay_in_the_ball_and_match_the_papers_attack(exp, models):
    x, y = protocol.protocol_images(protocol.ProtocolConfig.for_profile("quick", n_images=6))
    config = protocol.ProtocolConfig.for_profile("quick", apgd_steps=10)
    specs = {a.name: a for a in adapter.adapter(exp, "mfbm", models["mfbm"], config=config).attacks}
    for norm, eps in (("linf", 0.3), ("l2", 2.0)):
        adv = specs[f"apgd-shallow-{norm}"].run(x, y, eps)
        assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
        dist = (adv - x).flatten(1).norm(p=float("inf") if norm == "linf" else 2, dim=1)
        assert (dist <= eps + 1e-4).all()
    p = exp.profile
    own = specs[adapter.PAPER_ATTACK].run(x, y)
    direct = mfbm.iterative_l2(models["mfbm"], x, y, step=p.grad_step, max_steps=p.grad_max_steps, refine=p.grad_refine)
    assert torch.allclose(own, direct.adversarials)


def test_claimed_points_come_from_the_claims_module():
    assert set(adapter.CLAIMED) == set(adapter.MODELS)
    points = {(c["norm"], c["eps"], c["accuracy"]) for c in adapter.CLAIMED["mfbm"]}
    assert points == {("l2", claims.ROBUST_EPS, claims.PAPER_TABLE1[k][1]) for k in ("gradient", "compound")}
    assert adapter.CLAIMED["mfbm-rbm"] == adapter.CLAIMED["mfbm-lenet"] == []


def test_the_committed_quick_yardstick_loads_on_the_same_images(exp):
    ys = experiments.yardstick(exp)  # load-only: a MissingResult if a result were not committed
    assert list(ys) == list(adapter.MODELS)
    full = protocol.ProtocolConfig.for_profile("quick")
    for name, r in ys.items():
        n = experiments.YARDSTICK_IMAGES.get(("quick", name), full.n_images)
        assert len(r.labels) == n and r.config == experiments.yardstick_config(exp.profile, name)
        assert torch.equal(r.labels, protocol.protocol_images(full)[1][:n])  # the protocol's first n
        assert set(r.norms) == {"linf", "l2"}
        assert adapter.PAPER_ATTACK in r.attacks["l2"]
    assert "apgd-shallow-l2" in ys["mfbm"].attacks["l2"] and "apgd-shallow-linf" in ys["mfbm"].attacks["linf"]
