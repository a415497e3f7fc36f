"""The model zoo: every entry loads at quick from the committed artifacts, without training, and
makes the decisions its chapter stored for it (the yardstick's clean accuracy on the same images);
unknown names and profiles and a profile without weights are clear errors; a corrupt artifact is
refused by name."""

from __future__ import annotations

import functools
import shutil

import pytest
import torch

from robustlib import experiment, papers, paths, protocol, store, zoo
from robustlib.data import DataIntegrityError
from robustlib.papers.compare import experiments as compare

# The zoo's names (the chapters' adapter.MODELS): the contract every chapter implements.
CONTRACT = {
    "relu-mlp": "baselines",
    "sigmoid-mlp": "baselines",
    "lenet": "baselines",
    "nearest-neighbour": "baselines",
    "rbfi": "rbfi",
    "dam-n2": "dam",
    "dam-n30": "dam",
    "abs": "abs",
    "binary-abs": "abs",
    "bang-r0": "bang",
    "bang-b1": "bang",
    "mfbm": "mfbm",
    "mfbm-rbm": "mfbm",
    "mfbm-lenet": "mfbm",
}
NAMES = list(dict.fromkeys([*CONTRACT, *zoo.models()]))


@functools.cache
def stored_yardsticks(paper: str) -> dict[str, protocol.ProtocolResult]:
    """The paper's stored yardstick results at quick (load-only: never computed here)."""
    return compare.paper_yardsticks(experiment.start("compare", "quick", device="cpu"), paper)


def listing(paper: str) -> list[tuple[str, int]]:
    folder = store.artifact_dir(paper, "quick")
    return sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir()) if folder.exists() else []


def test_the_zoo_has_every_contract_name():
    assert {n: p for n, p in zoo.models().items() if n in CONTRACT} == CONTRACT
    assert list(zoo.models().values()) == sorted(zoo.models().values(), key=papers.NAMES.index)


@pytest.mark.parametrize("name", NAMES)
def test_entry_loads_at_quick_and_reproduces_its_stored_clean_accuracy(name):
    paper = zoo.models()[name]
    before = listing(paper)
    model = zoo.load(name, "quick")
    assert isinstance(model, torch.nn.Module) and not model.training
    result = stored_yardsticks(paper)[name]
    x, y = protocol.protocol_images(result.config)
    with torch.no_grad():
        scores = model(x[:4])
    assert scores.shape == (4, 10)
    correct = protocol.predict(model, x) == y
    # the same images, the same decisions as when the chapter evaluated it
    assert correct.double().mean().item() == pytest.approx(result.clean_accuracy, abs=1e-12)
    assert torch.equal(correct, result.clean_correct)
    assert listing(paper) == before, "loading from the zoo wrote into the store"


def test_list_gives_every_entry_with_its_profiles():
    entries = zoo.list("quick")
    assert [e.name for e in entries] == [n for n in zoo.models()]
    for e in entries:
        assert "quick" in e.profiles and e.role in zoo.ROLES and e.about and e.paper == zoo.models()[e.name]
    assert {e.role for e in entries if e.paper == "baselines"} == {"baseline"}


def test_adapter_gives_the_protocol_what_it_may_use():
    a = zoo.adapter("relu-mlp", "quick")
    assert isinstance(a, protocol.Adapter) and isinstance(a.model, torch.nn.Module)


def test_unknown_name_and_profile_name_the_valid_choices():
    with pytest.raises(ValueError, match=r"unknown model 'resnet'; valid: relu-mlp, sigmoid-mlp"):
        zoo.load("resnet")
    with pytest.raises(ValueError, match="unknown profile 'fast'; valid: smoke, quick, paper"):
        zoo.load("lenet", profile="fast")
    with pytest.raises(ValueError, match="valid: smoke, quick, paper"):
        zoo.list("fast")


def test_a_profile_without_weights_says_how_to_get_them(tmp_store):
    tmp_store.mkdir(parents=True)
    with pytest.raises(ValueError) as err:
        zoo.load("lenet", profile="paper")
    msg = str(err.value)
    assert "no weights for 'lenet' at profile 'paper'" in msg
    assert (
        "python -m robustlib fetch-artifacts" in msg and "python -m robustlib compute baselines --profile paper" in msg
    )
    assert not any(p.is_file() for p in tmp_store.rglob("*")), "a load-only experiment wrote into the store"


def test_a_corrupt_artifact_is_refused_by_name(tmp_path, monkeypatch):
    store_copy = tmp_path / "artifacts"
    shutil.copytree(paths.artifacts_dir() / "quick" / "baselines", store_copy / "quick" / "baselines")
    shutil.copy(paths.artifacts_dir() / store.MANIFEST, store_copy / store.MANIFEST)
    monkeypatch.setenv("ROBUSTLIB_ARTIFACTS", str(store_copy))
    assert zoo.verify("baselines", "quick") > 0
    assert not zoo.load("relu-mlp", "quick").training  # the intact copy loads
    listed = sorted(rel for rel in store.read_manifest() if rel.startswith("quick/baselines/"))
    victim = store_copy / next(rel for rel in listed if rel.endswith(".safetensors"))
    blob = bytearray(victim.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    victim.write_bytes(bytes(blob))
    with pytest.raises(DataIntegrityError, match=victim.name):
        zoo.load("relu-mlp", "quick")
    with pytest.raises(DataIntegrityError, match="does not match its sha256"):
        zoo.verify("baselines", "quick")
