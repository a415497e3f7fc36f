"""Run the chapters' steps as Ray tasks: on every core and GPU of one machine, or on a cluster.

``run(["dam", "rbfi"], "paper")`` turns each chapter's steps (``papers.steps``) into one Ray task
per step, with its resource needs (one CPU; one GPU as well for a step with ``gpu=True`` when the
cluster has GPUs) and its dependencies (the tasks of ``step.after`` are passed as arguments, so Ray
starts a step only once those have finished). By default it starts an embedded local Ray; with
``address`` it joins an existing cluster (started with ``ray start``; the ``ray://`` client
needs ``grpcio``, which the pinned ``ray`` does not install).

Each task, in its own worker process, does what the sequential path does for that step:
``experiment.start(paper, profile, seed, device)`` and ``experiment.run_step(exp, step)``, which
seeds the step from its name and stores every result it computes in the artifact store. A task
returns only a little metadata (status, wall time, error), never a result: results travel through
the store, so the driver's memory and Ray's object store stay small whatever the profile.

A chapter may read other chapters' stored results: the side-by-side chapter ``compare`` reads every
paper's ``yardstick`` results (its ``experiments.READS``). Its steps are submitted after those of
the chapters it reads and wait for the steps they read, whatever became of them (a result that was
not stored is reported by the reading step itself).

A failing step is reported with its name and error; the steps that run after it are skipped (and
say why) and every other step still runs. When all steps of a chapter have succeeded, the driver
runs the chapter's steps once more in-process, which only loads what the tasks stored, and writes
the scorecard from those results.

Resume. Nothing is kept outside the store: a killed run, started again, schedules every step
again, and each step loads what is already stored (``store.cached``) and computes only what is
missing; an interrupted training resumes from its last epoch checkpoint. So a restarted run ends
with the same stored results as an uninterrupted one (``tests/test_runner.py`` checks it).

What the store relies on when several workers (on one machine or on several, over a shared
filesystem) write into one store (see ``store.py``):

- every file is written to a temporary file in its final directory and moved into place with
  ``os.replace``, which is atomic within one directory on a local POSIX filesystem and on NFS (the
  server performs the rename): a reader sees the old file or the new one, never half of one.
  Nothing is fsync'ed: this holds against killed processes, not against a machine that loses
  power (some filesystems can then keep a renamed but empty file: delete it and rerun);
- a result's JSON is written after its safetensors file and marks it complete; a reader that finds
  no JSON (or a JSON whose tensors are missing) treats the result as absent and computes it;
- one writer per result: a step names in ``after`` every step whose results it reads, so only the
  step that owns a result computes it, and the readers start after it is stored. Two runs at once
  on one store, or a missing ``after``, let two workers write the same result; each file stays
  whole, but its JSON and tensors could come from different writers if the two computations differ;
- ``data/artifacts/MANIFEST`` is read, changed and rewritten under an exclusive ``fcntl.flock`` on
  ``.manifest.lock`` beside it. Linux NFS clients (v3 with lockd, v4) implement ``flock`` with
  server-side byte-range locks, so it excludes writers on other machines, unless the share is
  mounted with ``nolock`` or ``local_lock=flock|all`` (then the lock is per machine and MANIFEST
  updates from two machines can lose an entry; ``python -m robustlib manifest`` rebuilds it).
  CephFS honours ``flock``; Lustre only when mounted with its ``flock`` option; object-store
  mounts (s3fs, gcsfuse) give neither atomic rename nor locks and are not supported;
- NFS clients cache lookups: a step on another machine may not yet see a file its predecessor
  has just written and compute it again (wasted work, the same result for a deterministic step);
  mounting with ``lookupcache=positive`` avoids that.

On a cluster every node needs the repository at the same path (or ``ROBUSTLIB_HOME``), MNIST, the
same pinned environment, and the store on a shared filesystem; the driver passes its
``ROBUSTLIB_*`` environment variables to every task.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray
from tqdm.auto import tqdm

from . import experiment, store
from .papers import get as chapter_module
from .papers import steps as chapter_steps
from .papers import write_scorecard
from .profiles import Profile

StepSource = Callable[[str, Profile], Sequence[experiment.Step]]


@dataclass
class StepOutcome:
    """What became of one step: ``done``, ``failed`` (with its error) or ``skipped`` (with why)."""

    paper: str
    step: str
    status: str
    wall_s: float = 0.0
    error: str = ""
    traceback: str = ""

    @property
    def key(self) -> str:
        return f"{self.paper}/{self.step}"


@dataclass
class RunReport:
    """The outcome of every step, the scorecards written, and where the time went."""

    profile: str
    outcomes: list[StepOutcome] = field(default_factory=list)
    scorecards: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    scorecard_errors: dict[str, str] = field(default_factory=dict)
    driver_computed: dict[str, list[str]] = field(default_factory=dict)
    ray_start_s: float = 0.0
    wall_s: float = 0.0

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def ok(self) -> bool:
        return all(o.status == "done" for o in self.outcomes) and not self.scorecard_errors

    def summary(self) -> str:
        """A few lines for the terminal: counts, every failure with its error, the scorecards."""
        lines = [
            f"{self.count('done')}/{len(self.outcomes)} steps done, {self.count('failed')} failed, "
            f"{self.count('skipped')} skipped in {self.wall_s:.0f} s (Ray start {self.ray_start_s:.1f} s)"
        ]
        slowest = sorted((o for o in self.outcomes if o.status == "done"), key=lambda o: -o.wall_s)[:5]
        if slowest:  # the step costs behind a GPU-time estimate
            lines.append("slowest steps: " + ", ".join(f"{o.key} {o.wall_s:.1f} s" for o in slowest))
        for o in self.outcomes:
            if o.status == "failed":
                lines.append(f"FAILED {o.key}: {o.error}\n{o.traceback}".rstrip())
            elif o.status == "skipped":
                lines.append(f"skipped {o.key}: {o.error}")
        for paper, rows in self.scorecards.items():
            if not rows:
                lines.append(f"{paper} at profile={self.profile}: judges no claims of its own (no scorecard)")
                continue
            verdicts = [r["verdict"] for r in rows]
            counts = ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))
            lines.append(f"{paper} at profile={self.profile}: scorecard {counts}")
        for paper, err in self.scorecard_errors.items():
            lines.append(f"{paper}: no scorecard: {err}")
        for paper, names in self.driver_computed.items():
            lines.append(f"warning: {paper}: the scorecard pass computed what no step stored: {', '.join(names)}")
        return "\n".join(lines)


# --- in the worker ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Chapter:
    """What every task of a chapter needs besides its step (``env``: the driver's ``ROBUSTLIB_*``
    variables, which say where the store is)."""

    paper: str
    profile: str
    seed: int
    env: dict[str, str]


def _skip_reason(status: str, key: str, error: str) -> str:
    """Why a step after step ``key`` is skipped: it names the step that failed, however far up."""
    return error if status == "skipped" else f"after failed step {key}"


def _step_task(
    chapter: _Chapter,
    name: str,
    device: str,
    source: StepSource,
    tracker: Any,
    n_reads: int,
    *upstream: dict[str, Any],
) -> dict[str, Any]:
    """One step in a Ray worker. ``upstream`` are the metadata of the steps it runs after: Ray
    hands them over only once those tasks have finished, which is what orders the steps. The
    first ``n_reads`` are other chapters' steps whose stored results this one reads (``READS``):
    it runs after them whatever became of them (a result they did not store is its to report)."""
    key = f"{chapter.paper}/{name}"
    blocked = [u for u in upstream[n_reads:] if u["status"] != "done"]
    if blocked:
        u = blocked[0]
        return {"key": key, "status": "skipped", "error": _skip_reason(u["status"], u["key"], u["error"])}
    tracker.start.remote(key)
    _set_env(chapter.env)
    t0 = time.perf_counter()
    try:
        exp = experiment.start(chapter.paper, chapter.profile, chapter.seed, device)
        step = next(s for s in source(chapter.paper, exp.profile) if s.name == name)
        experiment.run_step(exp, step)
    except Exception as err:  # reported by the driver; the steps that do not need this one go on
        error, tb = f"{type(err).__name__}: {err}", traceback.format_exc()
        return {"key": key, "status": "failed", "error": error, "traceback": tb, "wall_s": time.perf_counter() - t0}
    return {"key": key, "status": "done", "error": "", "wall_s": time.perf_counter() - t0}


def _set_env(env: dict[str, str]) -> None:
    """A worker process serves many tasks, possibly of several runs: each task sets them afresh."""
    for k in [k for k in os.environ if k.startswith("ROBUSTLIB_")]:
        del os.environ[k]
    os.environ.update(env)


class _Tracker:
    """Which steps have started (Ray tells a driver when a task ends, not when it starts)."""

    def __init__(self) -> None:
        self.started: set[str] = set()

    def start(self, key: str) -> None:
        self.started.add(key)

    def running(self) -> set[str]:
        return self.started


# --- in the driver ---------------------------------------------------------------------------------


def _connect(address: str | None, num_cpus: int | None) -> bool:
    """Join ``address``, reuse a Ray this process already started, or start a local one; returns
    whether we started it (and so must shut it down)."""
    if ray.is_initialized():
        return False
    # Quiet: the progress bar and the report say what happened; workers' output stays in Ray's
    # session logs (/tmp/ray/session_latest/logs), and a local Ray's notices (dashboard, token
    # authentication of a cluster nobody else can reach) are noise.
    quiet = {"include_dashboard": False, "log_to_driver": False}
    if address:
        ray.init(address=address, logging_level=logging.WARNING, **quiet)
    else:
        # "local": our own Ray even where ``ray start`` runs one (ray.init() would join that)
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), logging_level=logging.ERROR, **quiet)
    return True


def reads(paper: str) -> dict[str, str]:
    """The other chapters' steps whose stored results the steps of ``paper`` read, ``{chapter: step}``
    (its ``experiments.READS``; the side-by-side chapter reads every paper's ``yardstick``)."""
    try:
        module = chapter_module(paper, "experiments")
    except (ValueError, ImportError):  # a chapter of the tests' fake steps
        return {}
    return dict(getattr(module, "READS", {}))


def _submit(
    plan: dict[str, list[experiment.Step]], profile: str, seed: int, device: str, source: StepSource, tracker: Any
) -> dict[ray.ObjectRef, tuple[str, experiment.Step]]:
    """One task per step, in list order, so each step's ``after`` refs exist when it is submitted;
    a chapter that reads other chapters' results (``reads``) is submitted after them, and each of
    its steps waits for the steps it reads."""
    gpus = ray.cluster_resources().get("GPU", 0) > 0 and device != "cpu"
    if device.startswith("cuda") and not gpus:
        raise ValueError(f"device {device!r} requested but the Ray cluster has no GPU; use 'cpu' or 'auto'")
    env = {k: v for k, v in os.environ.items() if k.startswith("ROBUSTLIB_")}
    task = ray.remote(_step_task)
    refs: dict[ray.ObjectRef, tuple[str, experiment.Step]] = {}
    submitted: dict[tuple[str, str], ray.ObjectRef] = {}
    for paper in sorted(plan, key=lambda p: bool(reads(p))):  # readers last (stable otherwise)
        chapter, by_name = _Chapter(paper, profile, seed, env), {}
        read = [submitted[k] for k in reads(paper).items() if k in submitted]
        for s in plan[paper]:
            on_gpu = gpus and s.gpu  # Ray then shows the task its one GPU as cuda:0
            options = {"num_cpus": 1, "num_gpus": 1 if on_gpu else 0, "name": f"{paper}/{s.name}"}
            after = [by_name[a] for a in s.after]
            by_name[s.name] = ref = task.options(**options).remote(
                chapter, s.name, "cuda" if on_gpu else "cpu", source, tracker, len(read), *read, *after
            )
            submitted[(paper, s.name)] = ref
            refs[ref] = (paper, s)
    return refs


def _outcome(ref: ray.ObjectRef, paper: str, step: experiment.Step, seen: dict[str, StepOutcome]) -> StepOutcome:
    """The task's metadata; a worker that died (killed, out of memory) counts as a failure, and
    Ray then fails the steps after it too: those are skipped, naming the one that died."""
    try:
        meta = ray.get(ref)
    except ray.exceptions.RayError as err:
        blocked = [seen[f"{paper}/{a}"] for a in step.after if seen[f"{paper}/{a}"].status != "done"]
        if blocked:
            u = blocked[0]
            return StepOutcome(paper, step.name, "skipped", error=_skip_reason(u.status, u.key, u.error))
        first, *rest = str(err).splitlines() or [""]
        return StepOutcome(
            paper, step.name, "failed", error=f"{type(err).__name__}: {first}", traceback="\n".join(rest)
        )
    return StepOutcome(
        paper,
        step.name,
        meta["status"],
        wall_s=meta.get("wall_s", 0.0),
        error=meta.get("error", ""),
        traceback=meta.get("traceback", ""),
    )


def _wait_all(
    refs: dict[ray.ObjectRef, tuple[str, experiment.Step]], tracker: Any, progress: bool
) -> list[StepOutcome]:
    """Collect every task as it ends, with a progress bar of done / total, running and failed."""
    order = {ref: i for i, ref in enumerate(refs)}
    seen: dict[str, StepOutcome] = {}
    pending, shown = list(refs), ""
    bar = tqdm(total=len(refs), unit="step", desc="steps", disable=not progress, dynamic_ncols=True)
    try:
        while pending:
            ray.wait(pending, num_returns=1, timeout=1.0)
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=0)
            for ref in sorted(ready, key=order.__getitem__):  # a step before the steps after it
                paper, step = refs[ref]
                o = seen[f"{paper}/{step.name}"] = _outcome(ref, paper, step, seen)
                bar.update()
                if o.status != "done" and progress:
                    bar.write(f"{o.status} {o.key}: {o.error}")
            running = sorted(ray.get(tracker.running.remote()) - set(seen))
            failed = sum(o.status == "failed" for o in seen.values())
            postfix = f"running {len(running)}, failed {failed}: {' '.join(running)}"[:120]
            if postfix != shown:  # redraw on change only: the logs of long runs stay short
                bar.set_postfix_str(shown := postfix)
    finally:
        bar.close()
    return [seen[f"{paper}/{step.name}"] for paper, step in refs.values()]


def _scorecard(
    paper: str, profile: str, seed: int, device: str, steps: Sequence[experiment.Step], report: RunReport
) -> None:
    """Judge a chapter whose steps all succeeded: its steps, run in-process, load what was stored."""
    folder = store.artifact_dir(paper, profile)
    before = set(folder.glob("[!.]*"))
    try:  # the driver may have no GPU of its own (a cluster's head node): it only loads here
        exp = experiment.start(paper, profile, seed, "cpu" if device == "cpu" else "auto")
        report.scorecards[paper] = write_scorecard(exp, experiment.run_steps(exp, steps))
    except Exception as err:  # one chapter's claims must not hide the others' scorecards
        report.scorecard_errors[paper] = f"{type(err).__name__}: {err}"
    extra = sorted(p.name for p in set(folder.glob("[!.]*")) - before if p.name != "scorecard.json")
    if extra:  # a result no step stored: the chapter's steps miss a computation
        report.driver_computed[paper] = extra


def run(
    papers: list[str],
    profile: str,
    *,
    address: str | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    num_cpus: int | None = None,
    steps: StepSource = chapter_steps,
) -> RunReport:
    """Compute every step of ``papers`` at ``profile`` on Ray, then write each complete chapter's
    scorecard. ``num_cpus`` sizes a local Ray (default: every core). ``steps`` is where the steps
    come from (tests pass fake ones; the workers call it too, so it must be importable there)."""
    t0 = time.perf_counter()
    plan = {p: list(steps(p, experiment.check_parameters(p, profile, seed, device))) for p in papers}
    for p in papers:
        experiment.check_steps(plan[p])
    t_ray = time.perf_counter()
    started = _connect(address, num_cpus)
    report = RunReport(profile, ray_start_s=time.perf_counter() - t_ray)
    try:
        tracker = ray.remote(num_cpus=0)(_Tracker).remote()
        refs = _submit(plan, profile, seed, device, steps, tracker)
        report.outcomes = _wait_all(refs, tracker, progress)
        ray.kill(tracker)
    finally:
        if started:
            ray.shutdown()
    for p in papers:
        if all(o.status == "done" for o in report.outcomes if o.paper == p):
            _scorecard(p, profile, seed, device, plan[p], report)
    report.wall_s = time.perf_counter() - t0
    return report
