import dataclasses

import pytest

from robustlib import experiment, papers, profiles


@pytest.mark.parametrize("paper", papers.NAMES)
def test_every_paper_has_three_valid_frozen_profiles(paper):
    for name in profiles.PROFILE_NAMES:
        p = profiles.get(paper, name)
        assert p.name == name and p.notebook == paper
        assert dataclasses.is_dataclass(p) and isinstance(p, profiles.Profile)
        with pytest.raises(dataclasses.FrozenInstanceError):
            p.name = "x"  # frozen: a profile is part of every artifact key


def test_unknown_names_list_the_valid_choices():
    with pytest.raises(ValueError, match="valid: baselines, rbfi, dam, abs, bang, mfbm"):
        profiles.get("nosuch", "quick")
    with pytest.raises(ValueError, match="valid: smoke, quick, paper"):
        profiles.get("baselines", "fast")


def test_negative_budget_is_rejected():
    from robustlib.papers.baselines.profile import BaselinesProfile

    with pytest.raises(ValueError, match="n_attack"):
        BaselinesProfile("quick", "baselines", n_attack=-1)
    with pytest.raises(ValueError, match="linf_grid"):
        BaselinesProfile("quick", "baselines", linf_grid=(0.0, -0.1, 0.3))


def test_start_validates_seed_device_and_retrain():
    exp = experiment.start("baselines", "smoke", 0, "cpu")
    assert exp.profile.name == "smoke" and exp.device == "cpu" and exp.paper == "baselines"
    with pytest.raises(ValueError, match="seed"):
        experiment.start("baselines", "smoke", -1, "cpu")
    with pytest.raises(ValueError, match="valid: 'auto'"):
        experiment.start("baselines", "smoke", 0, "tpu")
    with pytest.raises(ValueError, match="retrain"):
        experiment.start("baselines", "smoke", 0, "cpu", "yes")
    with pytest.raises(ValueError, match="valid: smoke, quick, paper"):
        experiment.start("baselines", "fastest")
