"""The side-by-side chapter's functions on hand-built protocol results: the numbers of each record,
the ranking and its comparison with the baselines, the table, the claimed points, compare.json
and compare.csv, the figure, and how the chapter fits the registry and the runner. (The chapter
itself runs at smoke in tests/test_notebooks.py.)"""

from __future__ import annotations

import csv
import io
import json
import math

import matplotlib.pyplot as plt
import pytest
import torch

from robustlib import papers, protocol, runner, store
from robustlib.attacks import DistanceResult
from robustlib.papers.compare import experiments, figures, summary
from robustlib.papers.compare.experiments import Comparison, Model


def fake_result(name: str, linf: list[float], l2: list[float], *, masked: bool = False) -> protocol.ProtocolResult:
    """A protocol result with the given per-image combined distances (0: a clean error). With
    ``masked`` the gradient attack finds nothing and noise finds everything (a masking flag)."""
    config = protocol.ProtocolConfig.for_profile("quick", n_images=len(linf))
    labels = torch.arange(len(linf)) % 10
    clean = torch.tensor([d > 0 for d in linf])
    attacks, trivial, combined, rechecks, seconds = {}, {}, {}, {}, {}
    for norm, dist in (("linf", linf), ("l2", l2)):
        d = torch.tensor(dist, dtype=torch.float64)
        grad = torch.where(clean, torch.full_like(d, math.inf), d) if masked else d.clone()
        attacks[norm] = {"apgd-ce": DistanceResult("apgd-ce", norm, grad), "noise": DistanceResult("noise", norm, d)}
        trivial[norm] = DistanceResult("trivial", norm, d * 3)
        sources = ["noise" if masked else "apgd-ce" if ok else "clean" for ok in clean.tolist()]
        combined[norm] = DistanceResult("combined", norm, d.clone(), None, sources)
        rechecks[norm], seconds[norm] = {}, {"trivial": 0.1, "apgd-ce": 1.0, "noise": 0.5}
    families = {"apgd-ce": "gradient", "noise": "noise"}
    return protocol.ProtocolResult(name, config, labels, clean, attacks, trivial, combined, families, rechecks, seconds)


def spread(median: float, n: int = 200, clean_errors: int = 0, top: float = 0.9) -> list[float]:
    """``n`` distances rising evenly from 0 to ``2 * median`` (capped below the grids' largest
    epsilon by ``top``), the first ``clean_errors`` of them 0."""
    return [0.0 if i < clean_errors else min(2 * median * (i + 0.5) / n, top) for i in range(n)]


def model(name, paper, role, linf_median, l2_median, claimed=(), n=200, **kw) -> Model:
    result = fake_result(name, spread(linf_median, n, top=0.39), spread(l2_median, n, top=2.9), **kw)
    return Model(name, paper, role, f"about {name}", result, list(claimed))


CLAIM = {"norm": "l2", "eps": 1.5, "accuracy": 0.8, "source": "Table 1"}


@pytest.fixture
def comparison() -> Comparison:
    return Comparison(
        "quick",
        [
            model("relu-mlp", "baselines", "baseline", 0.05, 1.0),
            model("nearest-neighbour", "baselines", "baseline", 0.10, 1.5),
            model("abs", "abs", "defence", 0.12, 3.75, claimed=[CLAIM]),
            model("dam-n30", "dam", "defence", 0.02, 0.5),
            model("rbfi", "rbfi", "defence", 0.3, 1.55, masked=True),
            model("dam-n2", "dam", "control", 0.03, 0.6, n=100),  # evaluated on fewer images
        ],
        {"mfbm": "the mfbm chapter has no 'yardstick' step yet"},
    )


@pytest.fixture
def data(comparison):
    return summary.to_json(comparison)


def test_records_hold_the_protocol_numbers(comparison, data):
    for m, rec in zip(comparison.models, data["models"]):
        r = m.result
        assert rec["model"] == m.name and rec["n_images"] == len(r.labels)
        assert rec["clean_accuracy"] == pytest.approx(r.clean_accuracy)
        for norm in ("linf", "l2"):
            for t in summary.THRESHOLDS[norm]:
                assert rec[norm]["accuracy"][f"{t:g}"] == pytest.approx(r.accuracy_at(norm, t), abs=1e-4)
            assert rec[norm]["median"] == pytest.approx(r.median(norm), abs=1e-4)
            assert rec[norm]["curve"] == pytest.approx(r.curve(norm).tolist(), abs=1e-4)
            assert rec[norm]["eps"] == list(r.config.grid(norm))
    abs_rec = data["models"][2]
    assert abs_rec["claimed"][0]["ours"] == pytest.approx(comparison.models[2].result.accuracy_at("l2", 1.5), abs=1e-4)
    assert data["missing"] == comparison.missing and data["profile"] == "quick"
    json.dumps(data, allow_nan=False)  # standard JSON: no NaN or Infinity


def test_flags_and_strongest_attack_come_from_the_protocol(data):
    by = {m["model"]: m for m in data["models"]}
    assert {f["kind"] for f in by["rbfi"]["flags"]} == {"gradient masking suspected"}
    assert by["relu-mlp"]["flags"] == []
    assert by["rbfi"]["linf"]["strongest"] == "noise" and by["abs"]["l2"]["strongest"] == "apgd-ce"
    assert by["abs"]["l2"]["strongest_images"] == 200


def test_ranking_orders_by_median_and_compares_with_the_best_baseline(data):
    assert data["ranking"]["l2"] == ["abs", "rbfi", "nearest-neighbour", "relu-mlp", "dam-n2", "dam-n30"]
    assert data["ranking"]["linf"][0] == "rbfi"
    vs = summary.beats_baseline(data, "l2")
    assert vs["baseline"]["model"] == "nearest-neighbour"  # the best baseline at L2 1.5
    assert [m["model"] for m in vs["above"]] == ["abs"]  # 80 % vs 50 % on 200 images
    assert [m["model"] for m in vs["within"]] == ["rbfi"]  # 52 % vs 50 %: within the sampling error
    assert [m["model"] for m in vs["below"]] == ["dam-n30"]
    text = data["text"]["ranking"]
    assert text[0].startswith("L∞, by median") and text[1].startswith("L2, by median")
    assert "Most robust: abs (median 2.90, 80\u00a0% at ε = 1.5)" in text[1]
    assert "1 of 3 defences keeps more images than the best standard baseline, nearest-neighbour" in text[1]
    assert "rbfi is within it; dam-n30 falls below it." in text[1]
    assert any(p.startswith("Flags: rbfi (L2 gradient masking suspected") for p in text)
    assert "dam-n2" not in text[1].split("defences")[1]  # a control is ranked, not counted as a defence


def test_versus_uses_twice_the_sampling_error():
    a = {"n_images": 200, "l2": {"accuracy": {"1.5": 0.60}}}
    b = {"n_images": 200, "l2": {"accuracy": {"1.5": 0.50}}}
    assert summary.versus(a, b, "l2", 1.5) == 1 and summary.versus(b, a, "l2", 1.5) == -1
    a["l2"]["accuracy"]["1.5"] = 0.55  # 5 points < 2 x 5.0 points
    assert summary.versus(a, b, "l2", 1.5) == 0
    assert summary.sampling_error(0.0, 200) > 0  # 0 % still carries an error


def test_headline_is_one_generated_line(data):
    line = data["text"]["headline"]
    assert line.startswith(
        "6 models through one protocol on the first 200 test images (dam-n2 on the first 100), "
        "profile quick. Most robust:"
    )
    assert "Most robust: in L2 abs (median 2.90, 80\u00a0% at ε = 1.5); in L∞ rbfi" in line
    assert "in L∞ rbfi (median 0.30, " in line and "flagged)" in line  # the qualifier travels with the claim
    assert "1 of 3 at L2 ε = 1.5" in line and "1 of 6 models carry a sanity flag" in line
    assert line.endswith("Not measured yet: mfbm.") and "\n" not in line
    assert summary.headline({**data, "models": []}).startswith("no model")


def test_table_and_claims_rows(data):
    rows = summary.table_rows(data)
    assert [tuple(r) for r in rows] == [summary.TABLE_COLUMNS] * len(rows)
    abs_row = rows[2]
    assert abs_row["L2 1.5"] == "80\u00a0%" and abs_row["median L2"] == "2.90" and abs_row["images"] == "200"
    assert abs_row["strongest L∞ / L2"] == "apgd-ce / apgd-ce" and abs_row["flags"] == "—"
    assert rows[4]["flags"] == "L2 gradient masking suspected; L∞ gradient masking suspected"
    claims = summary.claims_rows(data)
    assert claims[0] == {
        "model": "abs",
        "threat": "L2 ε = 1.5",
        "paper": "80\u00a0%",
        "ours": "80\u00a0%",
        "source": "Table 1",
    }
    released = [r for r in claims if r["source"].startswith("the ABS authors")]
    # ABS's L2 point is its claim already (shown once); its L∞ point and nearest neighbour's are added
    assert sorted((r["model"], r["threat"]) for r in released) == [
        ("abs", "L∞ ε = 0.3"),
        ("nearest-neighbour", "L2 ε = 1.5"),
        ("nearest-neighbour", "L∞ ε = 0.3"),
    ]


def test_released_numbers_are_the_abs_chapters(data):
    from robustlib.papers.abs import claims as abs_claims

    assert set(summary.RELEASED_MODELS) <= set(abs_claims.PAPER)
    for r in data["released"]:
        label = r["label"] if r["label"] in abs_claims.PAPER else f"{r['label']} (ours)"
        assert (r["median"], r["accuracy"]) == abs_claims.PAPER[label][r["norm"]]
        assert r["eps"] == abs_claims.THRESHOLDS[r["norm"]] and "analysis-by-synthesis" in r["source"]


def test_csv_has_one_row_per_model(data):
    rows = list(csv.DictReader(io.StringIO(summary.to_csv(data))))
    assert [r["model"] for r in rows] == [m["model"] for m in data["models"]]
    assert float(rows[2]["l2_accuracy_1.5"]) == pytest.approx(0.8) and rows[2]["l2_strongest"] == "apgd-ce"
    assert rows[4]["flags"].startswith("linf: gradient masking suspected")
    assert summary.to_csv({**data, "models": []}) == ""


def test_files_are_written_atomically_listed_and_kept_when_unchanged(tmp_store, data):
    js, cs = summary.write(data, "quick")
    assert (js.name, cs.name) == summary.FILES and js.parent == store.artifact_dir("compare", "quick")
    stored = json.loads(js.read_text())
    assert stored["models"] == data["models"] and "git_commit" in stored["provenance"]
    assert summary.load("quick")["text"] == data["text"]
    manifest = store.read_manifest()
    assert {"quick/compare/compare.json", "quick/compare/compare.csv"} <= set(manifest)
    before = js.stat().st_mtime_ns, js.read_text()
    summary.write(data, "quick")  # same numbers: the files (and their provenance) stay
    assert (js.stat().st_mtime_ns, js.read_text()) == before
    changed = {**data, "models": data["models"][:2]}
    summary.write(changed, "quick")
    assert len(json.loads(js.read_text())["models"]) == 2
    summary.write(data, "smoke")  # smoke is scratch: not listed
    assert not any(k.startswith("smoke/") for k in store.read_manifest())
    assert not list(js.parent.glob(".*.tmp"))


def test_front_page_headline(tmp_store, data):
    assert "not computed" in summary.headline_html("quick")
    summary.write(data, "quick")
    html = summary.headline_html("quick")
    assert 'href="../notebooks/compare.html"' in html and "6 models through one protocol" in html
    assert "mfbm" in summary.missing_html(data) and summary.missing_html({**data, "missing": {}}) == ""


def test_figure_fits_the_column_and_shows_every_model(data):
    for norm in ("linf", "l2"):
        fig = figures.accuracy_vs_eps(data, norm)
        assert fig.get_size_inches()[0] <= 7.0
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert labels[: len(data["models"])] == [m["model"] for m in data["models"]]
        assert "paper's claim" in labels and any("ABS release" in t for t in labels)
        plt.close(fig)
    styles = figures.styles(data)
    assert styles["abs"]["linewidth"] > styles["dam-n2"]["linewidth"]
    assert styles["dam-n30"]["linestyle"] != styles["dam-n2"]["linestyle"]


def test_gather_lists_missing_models(monkeypatch, comparison):
    from robustlib import experiment, zoo

    by_paper = {}
    for m in comparison.models:
        by_paper.setdefault(m.paper, {})[m.name] = m.result

    def fake_yardsticks(exp, paper):
        if paper == "dam":
            raise experiment.MissingResult("quick/dam/yardstick-dam-n2-0123.json is not in the store")
        return by_paper.get(paper, {})

    monkeypatch.setattr(experiments, "paper_yardsticks", fake_yardsticks)
    monkeypatch.setattr(zoo, "_has_adapter", lambda paper: paper != "mfbm")
    exp = experiment.start("compare", "quick", device="cpu")
    found = experiments.gather(exp)
    names = [m.name for m in found.models]
    assert "dam-n30" not in names and {"dam-n2", "dam-n30"} <= set(found.missing)
    assert "not in the store" in found.missing["dam-n30"] and "no adapter.py" in found.missing["mfbm"]
    assert "abs" in names and "binary-abs" in found.missing  # the step stored no result for it


def test_closure_follows_after():
    from robustlib.experiment import Step

    steps = [Step("a", print), Step("b", print, after=("a",)), Step("c", print), Step("d", print, after=("b",))]
    assert experiments._closure(steps, "d") == ["a", "b", "d"]


def test_registry_and_runner_know_the_chapter(tmp_store):
    assert papers.CHAPTERS == (*papers.NAMES, "compare") and "compare" not in papers.NAMES
    assert [s.name for s in papers.steps("compare", papers.profile("compare", "quick"))] == ["compare"]
    assert runner.reads("compare") == {p: "yardstick" for p in papers.NAMES}
    assert runner.reads("dam") == {}
    assert papers.get("compare", "claims").RULES == ()
    from robustlib import experiment

    exp = experiment.start("compare", "smoke", device="cpu")
    assert papers.write_scorecard(exp, {}) == []  # judges no claim: no scorecard stored
    assert not store.scorecard_path("compare", "smoke").exists()
    with pytest.raises(ValueError, match="valid: smoke, quick, paper"):
        experiment.start("compare", "fastest")


# --- the runner: compare runs after the steps it reads, whatever became of them -------------------


def _marker(exp, name: str) -> None:
    exp.cached(name, {"fake": name}, lambda: {"x": torch.zeros(1)})


def _slow_yardstick(exp) -> None:
    import time

    time.sleep(1.5)  # still running when compare would start without its dependency
    _marker(exp, "yardstick-fake")


def _failing_yardstick(exp) -> None:
    raise RuntimeError("fake yardstick failure")


def _fake_compare(exp) -> None:
    seen = store.load("yardstick-fake", {"fake": "yardstick-fake"}, notebook="abs", profile="smoke", seed=exp.seed)
    _marker(exp, "seen-abs" if seen is not None else "not-seen-abs")


def fake_chapter_steps(paper: str, prof: object) -> list:
    from robustlib.experiment import Step

    run = {"abs": _slow_yardstick, "dam": _failing_yardstick}
    return [Step("compare", _fake_compare)] if paper == "compare" else [Step("yardstick", run[paper])]


def test_runner_runs_compare_after_the_yardsticks_it_reads(tmp_path, monkeypatch):
    import logging
    import sys

    import ray

    monkeypatch.setenv("ROBUSTLIB_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ROBUSTLIB_CHECKPOINTS", str(tmp_path / "checkpoints"))
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this file
        report = runner.run(["compare", "dam", "abs"], "smoke", progress=False, steps=fake_chapter_steps)
    finally:
        if started:
            ray.shutdown()
    status = {o.key: o.status for o in report.outcomes}
    assert status == {"dam/yardstick": "failed", "abs/yardstick": "done", "compare/compare": "done"}
    names = {p.name.rsplit("-", 1)[0] for p in (tmp_path / "artifacts" / "smoke" / "compare").glob("*.json")}
    assert names == {"seen-abs"}  # it ran after abs's yardstick (and despite dam's failure)
    assert report.scorecards["compare"] == []
    assert "compare at profile=smoke: judges no claims of its own" in report.summary()
