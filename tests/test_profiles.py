import dataclasses

import pytest

from robustlib import profiles


def test_every_notebook_has_three_valid_profiles():
    for nb in profiles.notebooks():
        for name in profiles.PROFILE_NAMES:
            p = profiles.get(nb, name)
            assert p.name == name and p.notebook == nb
            assert dataclasses.is_dataclass(p)
            with pytest.raises(dataclasses.FrozenInstanceError):
                p.name = "x"  # frozen


def test_unknown_names_list_the_valid_choices():
    with pytest.raises(ValueError, match="valid: .*baselines"):
        profiles.get("nosuch", "quick")
    with pytest.raises(ValueError, match="valid: smoke, quick, paper"):
        profiles.get("baselines", "fast")


def test_negative_budget_is_rejected():
    with pytest.raises(ValueError, match="n_attack"):
        profiles.BaselinesProfile("quick", "baselines", n_attack=-1)
    with pytest.raises(ValueError, match="linf_grid"):
        profiles.BaselinesProfile("quick", "baselines", linf_grid=(0.0, -0.1, 0.3))


def test_setup_validates_seed_and_device():
    prof, dev = profiles.setup("baselines", "smoke", 0, "cpu")
    assert prof.name == "smoke" and dev == "cpu"
    with pytest.raises(ValueError, match="seed"):
        profiles.setup("baselines", "smoke", -1, "cpu")
    with pytest.raises(ValueError, match="valid: 'auto'"):
        profiles.setup("baselines", "smoke", 0, "tpu")
    with pytest.raises(ValueError, match="retrain"):
        profiles.setup("baselines", "smoke", 0, "cpu", "yes")
