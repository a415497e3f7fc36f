import json
import subprocess
from pathlib import Path

import pytest
import torch

from robustlib import paths, store


def test_cached_computes_once_and_reloads(tmp_store):
    calls = []

    def compute():
        calls.append(1)
        return {"w": torch.arange(6.0).reshape(2, 3), "acc": 0.5, "curve": [1.0, float("inf")], "sub": {"n": 3}}

    kw = dict(notebook="baselines", profile="quick", seed=0)
    a = store.cached("thing", {"epochs": 2, "grid": (0.1, 0.2)}, compute, **kw)
    b = store.cached("thing", {"grid": (0.1, 0.2), "epochs": 2}, compute, **kw)  # key order irrelevant
    assert len(calls) == 1
    assert torch.equal(a["w"], b["w"]) and a["acc"] == 0.5 and a["curve"][1] == float("inf") and a["sub"]["n"] == 3
    store.cached("thing", {"epochs": 3, "grid": (0.1, 0.2)}, compute, **kw)  # changed setting
    store.cached("thing", {"epochs": 2, "grid": (0.1, 0.2)}, compute, notebook="baselines", profile="quick", seed=1)
    assert len(calls) == 3
    store.cached("thing", {"epochs": 2, "grid": (0.1, 0.2)}, compute, retrain=True, **kw)
    assert len(calls) == 4


def test_files_provenance_and_no_pickle(tmp_store):
    store.cached("m", {"a": 1}, lambda: {"t": torch.ones(3)}, notebook="baselines", profile="paper", seed=7)
    folder = tmp_store / "paper" / "baselines"
    (js,) = folder.glob("m-*.json")
    (st,) = folder.glob("m-*.safetensors")
    meta = json.loads(js.read_text())
    prov = meta["provenance"]
    assert {"git_commit", "profile", "seed", "torch", "device", "wall_time_s"} <= set(prov)
    assert prov["profile"] == "paper" and prov["seed"] == 7 and prov["wall_time_s"] >= 0
    # safetensors: an 8-byte little-endian header length followed by a JSON header (no pickle)
    head = st.read_bytes()
    n = int.from_bytes(head[:8], "little")
    assert json.loads(head[8 : 8 + n])["t"]["dtype"] == "F32"


def test_loading_never_unpickles(tmp_store, monkeypatch):
    import pickle

    store.cached("m", {"a": 1}, lambda: {"t": torch.ones(3), "v": [1, 2]}, notebook="nb", profile="quick")

    def refuse(*args, **kwargs):
        raise AssertionError("store.load unpickled")

    for mod, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(mod, name, refuse)
    got = store.load("m", {"a": 1}, notebook="nb", profile="quick")
    assert torch.equal(got["t"], torch.ones(3)) and got["v"] == [1, 2]


def test_nothing_written_when_compute_fails_or_input_is_bad(tmp_store):
    def boom():
        raise RuntimeError("compute failed")

    with pytest.raises(RuntimeError):
        store.cached("x", {}, boom, notebook="baselines", profile="quick")
    with pytest.raises(ValueError, match="profile"):
        store.cached("x", {}, lambda: {"a": 1}, notebook="baselines", profile="fast")
    with pytest.raises(ValueError, match="artifact name"):
        store.cached("../escape", {}, lambda: {"a": 1}, notebook="baselines", profile="quick")
    with pytest.raises(ValueError, match="cannot store"):
        store.cached("x", {}, lambda: {"a": object()}, notebook="baselines", profile="quick")
    files = [p for p in tmp_store.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert [p.name for p in files if p.name != "MANIFEST"] == []


def test_manifest_tracks_and_detects_tampering(tmp_store):
    store.cached("m", {"a": 1}, lambda: {"t": torch.ones(3)}, notebook="baselines", profile="quick")
    store.cached("s", {"a": 1}, lambda: {"t": torch.ones(3)}, notebook="baselines", profile="smoke")
    entries = store.read_manifest()
    assert len(entries) == 2 and all(k.startswith("quick/") for k in entries)  # smoke is scratch
    assert store.verify_manifest() == []
    (st,) = (tmp_store / "quick" / "baselines").glob("m-*.safetensors")
    st.write_bytes(st.read_bytes()[:-1] + b"\x01")
    assert any("mismatch" in p for p in store.verify_manifest())
    (tmp_store / "quick" / "baselines" / "stray.json").write_text("{}")
    assert any("not listed" in p for p in store.verify_manifest())


def test_scorecard_validates_verdicts(tmp_store):
    row = {"id": "X-1", "claim": "c", "paper": "1", "ours": "2", "verdict": "reproduced"}
    path = store.write_scorecard("baselines", "quick", [row])
    card = json.loads(path.read_text())
    assert card["notebook"] == "baselines" and card["targets"][0]["id"] == "X-1"
    with pytest.raises(ValueError, match="valid"):
        store.write_scorecard("baselines", "quick", [{**row, "verdict": "sort of"}])
    with pytest.raises(ValueError, match="lacks"):
        store.write_scorecard("baselines", "quick", [{"id": "X-2"}])
    assert [c["notebook"] for c in store.load_scorecards()] == ["baselines"]


def test_committed_artifacts_match_the_manifest():
    """The real store: every committed artifact is listed with its sha256 and nothing is missing."""
    assert paths.artifacts_dir() == paths.data_dir() / "artifacts"
    assert store.verify_manifest() == []


def test_names_with_dots_do_not_collide(tmp_store):
    kw = dict(notebook="baselines", profile="quick")
    a = store.cached("reg0.001", {"lam": 0.001}, lambda: {"v": 1}, **kw)
    b = store.cached("reg0.01", {"lam": 0.01}, lambda: {"v": 2}, **kw)
    assert (a["v"], b["v"]) == (1, 2)
    names = sorted(p.name for p in (tmp_store / "quick" / "baselines").iterdir())
    assert len(names) == 2 and all(n.startswith("reg0.0") and n.endswith(".json") for n in names)


def test_rewriting_an_unchanged_scorecard_keeps_the_file(tmp_store):
    row = {"id": "X-1", "claim": "c", "paper": "1", "ours": "2", "verdict": "reproduced"}
    path = store.write_scorecard("baselines", "quick", [row])
    before = path.read_text()
    store.write_scorecard("baselines", "quick", [row])
    assert path.read_text() == before
    store.write_scorecard("baselines", "quick", [{**row, "ours": "3"}])
    assert path.read_text() != before


def test_leaves_sharing_memory_are_stored(tmp_store):
    t = torch.arange(4.0)
    out = store.cached("shared", {}, lambda: {"a": t, "b": t, "c": t[:2]}, notebook="baselines", profile="quick")
    assert torch.equal(out["a"], t) and torch.equal(out["c"], t[:2])


def test_manifest_lists_only_files_git_tracks():
    """A listed artifact that was never `git add`ed passes locally but is missing in a clone (CI)."""
    root = paths.root()
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(
        ["git", "-C", str(root), "ls-files", "data/artifacts"], capture_output=True, text=True, check=True
    ).stdout.split()
    tracked = {str(Path(f).relative_to("data/artifacts")) for f in out}
    untracked = sorted(set(store.read_manifest()) - tracked)
    assert untracked == [], f"listed in MANIFEST but not added to git: {untracked[:5]} ..."


def test_prune_keeps_used_artifacts_and_the_scorecard(tmp_store, monkeypatch):
    log = tmp_store.parent / "touched"
    monkeypatch.setenv(store.TOUCH_LOG, str(log))
    keep = dict(notebook="nb", profile="quick")
    store.cached("a.b", {"x": 1}, lambda: {"t": torch.ones(2)}, **keep)
    store.write_scorecard(
        "nb", "quick", [{"id": "T-1", "claim": "c", "paper": "1", "ours": "1", "verdict": "reproduced"}]
    )
    log.unlink()  # a later run uses only "a.b" (loaded) and "c" (computed), not "old"
    store.save("old", {"x": 2}, {"t": torch.zeros(1)}, **keep)
    log.unlink()
    assert store.load("a.b", {"x": 1}, **keep) is not None
    store.cached("c", {}, lambda: {"v": 3}, **keep)
    used = set(log.read_text().split())
    files = sorted(p.name for p in store.prune("nb", "quick", used, dry_run=True))
    assert len(files) == 2 and all(f.startswith("old-") for f in files)
    store.prune("nb", "quick", used)
    left = sorted(p.name for p in store.artifact_dir("nb", "quick").iterdir())
    assert "scorecard.json" in left and not any(f.startswith("old-") for f in left)
    assert sum(f.startswith("a.b-") for f in left) == 2 and store.verify_manifest() == []
