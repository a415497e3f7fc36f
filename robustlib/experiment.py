"""The experiment core every chapter runs on: one object, one cache, one train-or-load, one list of steps.

A chapter (and ``python -m robustlib compute <paper>``) does three things, the same way for all six:

1. ``exp = experiment.start("dam", profile="quick", seed=0, device="auto", retrain=False)``
   validates the papermill parameters, seeds torch and picks the device;
2. each step of the paper (``papers.<paper>.experiments.steps(profile)``) runs as ``step.run(exp)``
   and stores what it computed through ``exp.cached(...)`` / ``exp.model(...)``;
3. ``papers.<paper>.claims.RULES`` turn the stepsʼ results into the scorecard (see ``claims.py``).

Results are keyed by ``(paper, profile, name, config, seed)`` in the artifact store (``store.py``);
``config`` is a frozen dataclass (or a dict built from them), never a loose set of fields, so a
changed setting can never serve a stale result. Within one run every result is also memoised, so
``retrain=True`` recomputes each result once even when several cells ask for it.
"""

from __future__ import annotations

import json
import shutil
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import store
from .profiles import PROFILE_NAMES, Profile, resolve_device

Result = dict[str, Any]


class MissingResult(LookupError):
    """A load-only run (the model zoo, a book built from committed results) asked for a result the
    store does not hold; the message names it and how to get it."""


@dataclass
class Experiment:
    """One chapter run: which paper, at which profile, with which seed, on which device."""

    paper: str
    profile: Profile
    seed: int = 0
    device: str = "cpu"
    retrain: bool = False
    progress: bool = False
    load_only: bool = False  # never compute: a missing result is a MissingResult (zoo, committed-results builds)
    timings: dict[str, float] = field(default_factory=dict, repr=False)
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    # -- storage ------------------------------------------------------------------------------
    def cached(
        self, name: str, config: Any, compute: Callable[[], Mapping[str, Any]], *, seed: int | None = None
    ) -> Result:
        """The stored result of ``compute()`` for ``(name, config, seed)``; computed and stored when
        missing (or always once per run with ``retrain``). ``seed`` defaults to the run's seed."""
        seed = self.seed if seed is None else seed
        key = (name, store.config_hash({"config": config, "seed": seed}))
        if key not in self._memo:
            t0 = time.perf_counter()
            if self.load_only:
                compute = self._missing(name, config, seed)
            self._memo[key] = store.cached(
                name,
                config,
                compute,
                notebook=self.paper,
                profile=self.profile.name,
                seed=seed,
                device=self.device,
                retrain=self.retrain,
            )
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
        return self._memo[key]

    def _missing(self, name: str, config: Any, seed: int) -> Callable[[], Mapping[str, Any]]:
        def refuse() -> Mapping[str, Any]:
            stem = store.artifact_stem(name, config, notebook=self.paper, profile=self.profile.name, seed=seed)
            raise MissingResult(
                f"{stem.relative_to(store.paths.artifacts_dir())}.json is not in the store; compute it with "
                f"`python -m robustlib compute {self.paper} --profile {self.profile.name}` or fetch a bundle "
                f"with `python -m robustlib fetch-artifacts SOURCE`"
            )

        return refuse

    def checkpoint_dir(self, name: str, config: Any, *, seed: int | None = None) -> Path:
        """Where training checkpoints of ``name`` go (git-ignored; emptied first under ``retrain``)."""
        seed = self.seed if seed is None else seed
        path = store.checkpoint_dir(name, config, notebook=self.paper, profile=self.profile.name, seed=seed)
        if self.retrain and path.exists() and (name, str(path)) not in self._memo:
            shutil.rmtree(path)
        self._memo[(name, str(path))] = True
        return path

    def model(
        self,
        name: str,
        config: Any,
        build: Callable[[], torch.nn.Module],
        train: Callable[[torch.nn.Module, Path], Any],
        *,
        seed: int | None = None,
    ) -> tuple[torch.nn.Module, Any]:
        """Train-or-load: ``build()`` a network and load its stored weights, or train it with
        ``train(model, checkpoint_dir)`` (which returns its history) and store the weights.

        Returns ``(model in eval mode on the run's device, history)``.
        """
        seed = self.seed if seed is None else seed

        def compute() -> Result:
            torch.manual_seed(seed)
            model = build().to(self.device)
            history = train(model, self.checkpoint_dir(name, config, seed=seed))
            return {"state": dict(model.state_dict()), "history": history}

        stored = self.cached(name, config, compute, seed=seed)
        model = build()
        model.load_state_dict(stored["state"])
        return model.to(self.device).eval(), stored["history"]

    def sibling(self, paper: str) -> Experiment:
        """The same run (profile name, seed, device, load-only) of another chapter, to read what that
        chapter stores (e.g. the baselines' ReLU MLP, the yardstick's transfer source)."""
        from . import papers

        return Experiment(
            paper,
            papers.profile(paper, self.profile.name),
            seed=self.seed,
            device=self.device,
            progress=self.progress,
            load_only=self.load_only,
        )

    def log(self, message: str) -> None:
        """A progress line (headless runs and ``progress=True``); chapters stay quiet."""
        if self.progress:
            print(f"[{self.paper}/{self.profile.name}] {message}", flush=True)


# --- parameters ------------------------------------------------------------------------------


def check_parameters(
    paper: str, profile: str = "quick", seed: int = 0, device: str = "auto", retrain: bool = False
) -> Profile:
    """Validate a chapter's papermill parameters; ``ValueError`` names the valid values.

    Runs before a notebook's kernel starts (``robustlib run``) and again in its first cell.
    """
    from . import papers

    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILE_NAMES)}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(retrain, bool):  # "yes" or "False" as a string would silently recompute
        raise ValueError(f"retrain must be True or False, got {retrain!r}")
    if not isinstance(device, str):
        raise ValueError(f"device must be a string ('auto', 'cpu', 'cuda', 'cuda:N'), got {device!r}")
    return papers.profile(paper, profile)


def start(
    paper: str,
    profile: str = "quick",
    seed: int = 0,
    device: str = "auto",
    retrain: bool = False,
    *,
    progress: bool = False,
    load_only: bool = False,
) -> Experiment:
    """First cell of every chapter: validate the parameters, seed torch, pick the device.

    ``load_only=True`` never computes: a result missing from the store raises :class:`MissingResult`.
    """
    prof = check_parameters(paper, profile, seed, device, retrain)
    if load_only and retrain:
        raise ValueError("load_only and retrain exclude each other")
    torch.manual_seed(seed)
    return Experiment(
        paper, prof, seed=seed, device=resolve_device(device), retrain=retrain, progress=progress, load_only=load_only
    )


# --- steps -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One unit of a paper's computation: a model to train or an evaluation to run.

    ``run(exp)`` computes (or loads) and stores its results and returns them; ``after`` names the
    steps whose stored results it reads (a scheduler runs those first); ``gpu`` says whether the
    step wants an accelerator when one is available.
    """

    name: str
    run: Callable[[Experiment], Any] = field(repr=False)
    after: tuple[str, ...] = ()
    gpu: bool = False


def check_steps(steps: Sequence[Step]) -> None:
    """Names unique, every ``after`` names an earlier step (so the list order is a valid schedule)."""
    seen: set[str] = set()
    for s in steps:
        if s.name in seen:
            raise ValueError(f"step {s.name!r} is listed twice")
        missing = [a for a in s.after if a not in seen]
        if missing:
            raise ValueError(f"step {s.name!r} runs after {missing}, which are not listed before it")
        seen.add(s.name)


def step_seed(seed: int, name: str) -> int:
    """The seed a step starts from: fixed by the run's seed and the step's name, so a step gives the
    same result whether it runs after others in one process or alone in a worker of its own."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % 2**31


def run_step(exp: Experiment, step: Step) -> Any:
    """Run one step from its own seed (the only way steps are run: in order here, or by a runner)."""
    torch.manual_seed(step_seed(exp.seed, step.name))
    t0 = time.perf_counter()
    result = step.run(exp)
    exp.timings[f"step {step.name}"] = time.perf_counter() - t0
    return result


def run_steps(exp: Experiment, steps: Sequence[Step], *, only: Sequence[str] | None = None) -> dict[str, Any]:
    """Run ``steps`` in order (each loads what is stored); returns ``{step name: its result}``."""
    check_steps(steps)
    if only is not None:
        unknown = sorted(set(only) - {s.name for s in steps})
        if unknown:
            raise ValueError(f"unknown steps {unknown}; valid: {', '.join(s.name for s in steps)}")
    results: dict[str, Any] = {}
    for i, s in enumerate(steps):
        if only is not None and s.name not in only:
            continue
        exp.log(f"step {i + 1}/{len(steps)}: {s.name}")
        results[s.name] = run_step(exp, s)
    return results


# --- what is stored ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StepState:
    """Whether a step's results are all in the store (``stored``) or what the first missing one is."""

    paper: str
    step: str
    stored: bool
    missing: str = ""  # the first missing result (MissingResult's message, first line)
    gpu: bool = False


def step_states(paper: str, profile: str, steps: Sequence[Step], *, seed: int = 0) -> list[StepState]:
    """Each step of ``paper`` run load-only (nothing is computed): which are complete in the store
    at ``profile``, and for the others the first result they miss."""
    exp = start(paper, profile, seed, "cpu", load_only=True)
    states = []
    for s in steps:
        try:
            run_step(exp, s)
            states.append(StepState(paper, s.name, True, gpu=s.gpu))
        except MissingResult as err:
            first = (str(err).splitlines() or [""])[0].split("; ")[0]  # the result, not the advice
            states.append(StepState(paper, s.name, False, first, gpu=s.gpu))
    return states


def stored_compute(paper: str, profile: str) -> dict[str, float]:
    """Wall seconds spent computing the results stored for ``paper`` at ``profile``, per device
    (each result's ``provenance.wall_time_s``; ``{device name: seconds}``)."""
    totals: dict[str, float] = {}
    folder = store.artifact_dir(paper, profile)
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        prov = json.loads(f.read_text()).get("provenance") or {}
        if "wall_time_s" in prov:
            device = str(prov.get("device", "unknown"))
            totals[device] = totals.get(device, 0.0) + float(prov["wall_time_s"])
    return totals
