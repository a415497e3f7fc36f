"""The Ray runner (``robustlib.runner``) at the smoke profile on a local Ray with 2 CPUs.

One chapter computed through Ray stores exactly what the sequential path stores; a run killed
mid-way and started again ends with the same results; a failing step is reported by name, the
steps after it are skipped and the others complete. Every store is a temporary one.

Ray workers run a task with as many torch threads as the task has CPUs (one), so the sequential
reference runs with one thread too: a float sum over 2 threads may differ in its last bits.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import ray
import torch
from safetensors.torch import load_file

from robustlib import experiment, papers, runner, store

CHAPTER = "dam"  # one of the two fastest chapters at smoke (10 steps, about 10 s sequentially)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (starting one costs about 5-10 s on 2 busy cores)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield
    ray.shutdown()


def _use_store(mp: pytest.MonkeyPatch, root: Path) -> Path:
    mp.setenv("ROBUSTLIB_ARTIFACTS", str(root / "artifacts"))
    mp.setenv("ROBUSTLIB_CHECKPOINTS", str(root / "checkpoints"))
    return root / "artifacts"


def _without_timings(obj):
    """Results without their wall times (``seconds`` keys), which differ from run to run."""
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if not k.endswith("seconds")}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


def snapshot(artifacts: Path) -> dict[str, object]:
    """Every stored file: a JSON's ``config`` and ``result`` (or a scorecard's rows), a
    safetensors file's tensors. Provenance (commit, device, wall time) is left out."""
    out: dict[str, object] = {}
    for p in sorted(artifacts.rglob("*")):
        rel = str(p.relative_to(artifacts))
        if p.suffix == ".json" and not p.name.startswith("."):
            meta = json.loads(p.read_text())
            out[rel] = _without_timings({k: meta[k] for k in ("config", "result", "targets") if k in meta})
        elif p.suffix == ".safetensors" and not p.name.startswith("."):
            out[rel] = load_file(str(p))
    return out


def assert_same(got: dict[str, object], want: dict[str, object]) -> None:
    assert sorted(got) == sorted(want)
    for rel, w in want.items():
        g = got[rel]
        if rel.endswith(".safetensors"):
            assert sorted(g) == sorted(w), rel
            unequal = [k for k in w if not torch.equal(g[k], w[k])]
            assert not unequal, f"{rel}: tensors {unequal} differ"
        else:
            assert g == w, f"{rel} differs"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, object]:
    """The chapter computed by the sequential path (``compute --sequential``), with one thread."""
    root = tmp_path_factory.mktemp("sequential")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        artifacts = _use_store(mp, root)
        torch.set_num_threads(1)
        try:
            exp = experiment.start(CHAPTER, "smoke")
            papers.write_scorecard(exp, papers.compute(exp))
        finally:
            torch.set_num_threads(threads)
        return snapshot(artifacts)


def test_a_chapter_through_ray_stores_what_the_sequential_path_stores(local_ray, reference, tmp_path, monkeypatch):
    artifacts = _use_store(monkeypatch, tmp_path)
    t0 = time.perf_counter()
    report = runner.run([CHAPTER], "smoke", progress=False)
    print(f"{CHAPTER} at smoke through Ray: {time.perf_counter() - t0:.1f} s")
    assert report.ok, report.summary()
    n_steps = len(papers.steps(CHAPTER, papers.profile(CHAPTER, "smoke")))
    assert report.count("done") == n_steps and list(report.scorecards) == [CHAPTER]
    assert not report.driver_computed, "the steps left work to the scorecard pass"
    assert_same(snapshot(artifacts), reference)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_a_killed_run_resumes_to_the_same_results(local_ray, reference, tmp_path, monkeypatch):
    artifacts = _use_store(monkeypatch, tmp_path)
    chapter_dir = artifacts / "smoke" / CHAPTER
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray, not ours
    cmd = [sys.executable, "-m", "robustlib", "compute", CHAPTER, "--profile", "smoke"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not any(p.suffix == ".json" for p in chapter_dir.glob("[!.]*")):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no result stored within 120 s"
            time.sleep(0.1)
        family = _descendants(proc.pid)  # Ray's processes, in case one left the process group
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    for p in family:
        if p.is_running():
            p.kill()
    psutil.wait_procs(family, timeout=10)
    stored = {p.name for p in chapter_dir.glob("[!.]*")}
    assert "scorecard.json" not in stored and len(stored) < len(reference), "the run was not killed mid-way"

    report = runner.run([CHAPTER], "smoke", progress=False)
    assert report.ok, report.summary()
    assert_same(snapshot(artifacts), reference)


# --- a failing step, on fake steps ---------------------------------------------------------------


def _store_one(exp: experiment.Experiment, name: str) -> None:
    exp.cached(name, {"fake": name}, lambda: {"x": torch.rand(3)})


def _boom(exp: experiment.Experiment) -> None:
    raise RuntimeError("fake failure in boom")


def _slow(exp: experiment.Experiment) -> None:
    time.sleep(1.0)  # still running when boom fails: a failure must not cancel it
    _store_one(exp, "slow")


def fake_steps(paper: str, prof: object) -> list[experiment.Step]:
    """``boom`` fails; ``after_boom`` and ``after_after`` depend on it; the rest do not."""
    Step = experiment.Step
    return [
        Step("ok", lambda exp: _store_one(exp, "ok")),
        Step("slow", _slow),
        Step("boom", _boom),
        Step("after_boom", lambda exp: _store_one(exp, "after_boom"), after=("boom",)),
        Step("after_after", lambda exp: _store_one(exp, "after_after"), after=("after_boom", "ok")),
        Step("after_ok", lambda exp: _store_one(exp, "after_ok"), after=("ok",)),
    ]


def test_a_failing_step_is_named_its_dependents_skipped_the_rest_complete(local_ray, tmp_path, monkeypatch):
    artifacts = _use_store(monkeypatch, tmp_path)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this file
    report = runner.run([CHAPTER], "smoke", progress=False, steps=fake_steps)
    by_step = {o.step: o for o in report.outcomes}
    assert {n: o.status for n, o in by_step.items()} == {
        "ok": "done",
        "slow": "done",
        "boom": "failed",
        "after_boom": "skipped",
        "after_after": "skipped",
        "after_ok": "done",
    }
    assert by_step["boom"].error == "RuntimeError: fake failure in boom" and "_boom" in by_step["boom"].traceback
    assert by_step["after_boom"].error == by_step["after_after"].error == f"after failed step {CHAPTER}/boom"
    assert not report.ok and not report.scorecards  # a chapter with a failed step gets no scorecard
    assert f"FAILED {CHAPTER}/boom: RuntimeError: fake failure in boom" in report.summary()
    stored = {json.loads(p.read_text())["name"] for p in (artifacts / "smoke" / CHAPTER).glob("*.json")}
    assert stored == {"ok", "slow", "after_ok"}
    assert not store.scorecard_path(CHAPTER, "smoke").exists()
