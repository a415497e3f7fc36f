"""The experiment core (one object, one cache, one train-or-load, steps) and the claims core."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from robustlib import claims, experiment, store
from robustlib.papers.baselines.profile import PROFILES


@dataclasses.dataclass(frozen=True)
class Key:
    width: int
    label: str = "net"


def _exp(**kw) -> experiment.Experiment:
    return experiment.Experiment("baselines", PROFILES["smoke"], **kw)


def test_cached_computes_once_then_loads(tmp_store):
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.arange(3), "n": 3}

    exp = _exp()
    first = exp.cached("thing", Key(2), compute)
    again = exp.cached("thing", Key(2), compute)
    fresh = _exp().cached("thing", Key(2), compute)  # a new run loads from the store
    assert len(calls) == 1 and first["n"] == again["n"] == fresh["n"] == 3
    assert torch.equal(fresh["x"], torch.arange(3))


def test_a_changed_key_field_or_seed_is_a_new_result(tmp_store):
    exp = _exp()
    exp.cached("thing", Key(2), lambda: {"v": 1})
    assert exp.cached("thing", Key(3), lambda: {"v": 2})["v"] == 2
    assert exp.cached("thing", Key(2), lambda: {"v": 3}, seed=1)["v"] == 3
    assert exp.cached("thing", Key(2), lambda: {"v": 4})["v"] == 1


def test_a_frozen_dataclass_key_hashes_like_its_dict(tmp_store):
    # the committed artifacts were keyed by dicts; keys rebuilt as dataclasses must find them
    assert store.config_hash(Key(2)) == store.config_hash({"label": "net", "width": 2})


def test_retrain_recomputes_once_per_run(tmp_store):
    _exp().cached("thing", Key(2), lambda: {"v": 1})
    calls = []

    def compute():
        calls.append(1)
        return {"v": 2}

    exp = _exp(retrain=True)
    assert exp.cached("thing", Key(2), compute)["v"] == 2
    assert exp.cached("thing", Key(2), compute)["v"] == 2
    assert len(calls) == 1


def test_model_trains_once_and_loads_the_same_weights(tmp_store):
    trained = []

    def build():
        return torch.nn.Linear(4, 2)

    def train(model, ckpt):
        trained.append(ckpt)
        with torch.no_grad():
            model.weight.fill_(0.5)
        return [{"epoch": 1, "loss": 0.1}]

    model, history = _exp().model("lin", Key(4), build, train)
    again, history2 = _exp().model("lin", Key(4), build, train)
    assert len(trained) == 1 and history == history2 == [{"epoch": 1, "loss": 0.1}]
    assert torch.equal(model.weight, again.weight) and not again.training


def test_steps_run_in_order_and_check_their_schedule(tmp_store):
    seen = []
    steps = [
        experiment.Step("a", lambda e: seen.append("a") or 1),
        experiment.Step("b", lambda e: seen.append("b") or 2, after=("a",)),
    ]
    assert experiment.run_steps(_exp(), steps) == {"a": 1, "b": 2} and seen == ["a", "b"]
    assert experiment.run_steps(_exp(), steps, only=["b"]) == {"b": 2}
    with pytest.raises(ValueError, match="not listed before"):
        experiment.check_steps(list(reversed(steps)))
    with pytest.raises(ValueError, match="twice"):
        experiment.check_steps([steps[0], steps[0]])
    with pytest.raises(ValueError, match="unknown steps"):
        experiment.run_steps(_exp(), steps, only=["c"])


# --- claims ------------------------------------------------------------------------------------

CLAIM = claims.Claim("T-1", "the defence keeps 90 % at eps 0.3", "90 %", "Table 1")


@claims.rule(CLAIM)
def t_1(results):
    """Reproduced at >= 85 % robust accuracy, partly at >= 50 %."""
    if "attack" not in results:
        return claims.not_run("the attack did not run")
    acc = results["attack"]
    return claims.Finding(f"{100 * acc:.0f} %", claims.grade(acc >= 0.85, acc >= 0.5))


@pytest.mark.parametrize(
    ("results", "verdict"),
    [
        ({"attack": 0.9}, "reproduced"),
        ({"attack": 0.6}, "partly"),
        ({"attack": 0.1}, "not reproduced"),
        ({}, "not run"),
    ],
)
def test_scorecard_rows_carry_claim_finding_and_criterion(results, verdict):
    (row,) = claims.scorecard([t_1], results)
    assert row["verdict"] == verdict and row["id"] == "T-1" and row["source"] == "Table 1"
    assert row["criterion"] == "Reproduced at >= 85 % robust accuracy, partly at >= 50 %."


def test_claims_core_rejects_bad_rules():
    with pytest.raises(ValueError, match="docstring"):
        claims.rule(CLAIM)(lambda r: claims.Finding("x", "partly"))
    with pytest.raises(ValueError, match="valid: reproduced"):
        claims.Finding("x", "kind of")
    with pytest.raises(ValueError, match="unique"):
        claims.scorecard([t_1, t_1], {"attack": 0.9})
    assert [claims.grade(True), claims.grade(False, True), claims.grade(False)] == [
        "reproduced",
        "partly",
        "not reproduced",
    ]


def test_load_only_loads_what_is_stored_and_names_what_is_not(tmp_store):
    _exp().cached("thing", Key(2), lambda: {"v": 1})
    frozen = _exp(load_only=True)
    assert frozen.cached("thing", Key(2), lambda: {"v": 2})["v"] == 1
    with pytest.raises(experiment.MissingResult, match=r"thing-\w+\.json is not in the store.*compute baselines"):
        frozen.cached("thing", Key(3), lambda: {"v": 3})
    assert not list(tmp_store.rglob("thing-*")) or len(list(tmp_store.rglob("thing-*.json"))) == 1
    with pytest.raises(ValueError, match="exclude"):
        experiment.start("baselines", "smoke", load_only=True, retrain=True)


def test_step_states_say_which_steps_are_stored_and_what_the_others_miss(tmp_path, monkeypatch, capsys):
    from robustlib import cli, papers

    monkeypatch.setenv("ROBUSTLIB_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ROBUSTLIB_CHECKPOINTS", str(tmp_path / "checkpoints"))
    steps = papers.steps("dam", papers.profile("dam", "smoke"))
    empty = {s.step: s for s in experiment.step_states("dam", "smoke", steps)}
    assert list(empty) == [s.name for s in steps]
    missing = [s for s in empty.values() if not s.stored]
    assert len(missing) >= len(steps) - 1  # at smoke the temperature tuning has nothing to compute
    assert all(s.missing.startswith("smoke/dam/") for s in missing) and "models" in {s.step for s in missing}
    assert not list((tmp_path / "artifacts").rglob("*.json")), "a load-only check computed something"
    assert experiment.stored_compute("dam", "smoke") == {}
    experiment.run_steps(experiment.start("dam", "smoke"), steps, only=["models"])
    states = {s.step: s for s in experiment.step_states("dam", "smoke", steps)}
    assert states["models"].stored and not states["models"].missing
    assert not states["yardstick"].stored  # it needs the baseline MLP too, which was not computed
    spent = experiment.stored_compute("dam", "smoke")
    assert list(spent) == [store.device_name("cpu")] and spent[store.device_name("cpu")] > 0
    assert cli.main(["status", "dam", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "done    models" in out and "missing yardstick" in out


def test_every_yardstick_step_asks_for_a_gpu():
    """The protocol is the most expensive step of every chapter: a runner must give it the GPU."""
    from robustlib import papers

    for paper in papers.NAMES:
        yardsticks = [s for s in papers.steps(paper, papers.profile(paper, "paper")) if s.name.startswith("yardstick")]
        assert yardsticks, f"{paper} has no yardstick step"
        assert all(s.gpu for s in yardsticks), f"{paper}: {[s.name for s in yardsticks if not s.gpu]} run on a CPU core"
