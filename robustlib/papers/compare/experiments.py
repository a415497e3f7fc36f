"""The compare chapter's computation: gather every zoo model's stored yardstick result.

Each paper chapter evaluates its own models with the one protocol (``robustlib.protocol``) in its
``yardstick`` step and stores a ``yardstick-<model>`` result per model. This chapter runs that step
in a load-only experiment of each paper (so it only reads what the paper stored; at ``smoke``, a
missing result is computed through the paper's own steps) and writes the numbers side by side to
``data/artifacts/<profile>/compare/compare.json`` and ``compare.csv`` (``summary.write``).

``steps(profile)`` has one step, ``compare``, whose result is the JSON-able comparison
(``summary.to_json``): what the chapter's figures, table and ranking are drawn from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ... import experiment, papers, protocol, zoo
from ...experiment import Experiment, MissingResult, Step
from .profile import CompareProfile

YARDSTICK = "yardstick"  # the step of every paper chapter that stores its models' protocol results
READS = {paper: YARDSTICK for paper in papers.NAMES}  # the runner runs these steps first


@dataclass
class Model:
    """One zoo model and its protocol result, with what its paper claimed."""

    name: str
    paper: str
    role: str  # zoo.ROLES
    about: str
    result: protocol.ProtocolResult
    claimed: list[dict[str, Any]] = field(default_factory=list)  # the paper adapter's CLAIMED[name]


@dataclass
class Comparison:
    profile: str
    models: list[Model]
    missing: dict[str, str] = field(default_factory=dict)  # model (or chapter) -> why it is not shown


def _as_result(value: Any) -> protocol.ProtocolResult:
    if isinstance(value, protocol.ProtocolResult):
        return value
    if isinstance(value, Mapping) and "norms" in value:
        return protocol.ProtocolResult.from_dict(value)
    raise TypeError(f"a yardstick result must be a ProtocolResult (or its to_dict), got {type(value).__name__}")


def _closure(steps: list[Step], name: str) -> list[str]:
    """``name`` and every step it runs after, directly or not."""
    by_name, wanted, todo = {s.name: s for s in steps}, set(), [name]
    while todo:
        n = todo.pop()
        if n not in wanted:
            wanted.add(n)
            todo += list(by_name[n].after)
    return [s.name for s in steps if s.name in wanted]


def paper_yardsticks(exp: Experiment, paper: str) -> dict[str, protocol.ProtocolResult]:
    """``{model: ProtocolResult}`` of ``paper`` at the chapter's profile, read through the paper's
    ``yardstick`` step in a load-only experiment (``MissingResult`` when not stored). With the
    profile's ``compute_missing`` (``smoke``), a missing result is computed through the paper's
    steps that the yardstick step depends on."""
    prof: CompareProfile = exp.profile
    pexp = experiment.start(paper, prof.name, exp.seed, exp.device, load_only=True)
    steps = papers.steps(paper, pexp.profile)
    if YARDSTICK not in {s.name for s in steps}:
        raise MissingResult(f"the {paper} chapter has no {YARDSTICK!r} step yet")
    try:
        found = experiment.run_steps(pexp, steps, only=[YARDSTICK])[YARDSTICK]
    except MissingResult:
        if not prof.compute_missing:
            raise
        pexp = experiment.start(paper, prof.name, exp.seed, exp.device)
        found = experiment.run_steps(pexp, steps, only=_closure(steps, YARDSTICK))[YARDSTICK]
    return {name: _as_result(r) for name, r in found.items()}


def gather(exp: Experiment) -> Comparison:
    """Every zoo model's stored protocol result, in the book's chapter order; the models without
    one (a chapter without an adapter or a yardstick step, a result not in the store) are listed
    in ``missing`` with the reason."""
    models, missing = [], {}
    for paper in papers.NAMES:
        if not zoo._has_adapter(paper):
            missing[paper] = f"the {paper} chapter has no adapter.py (no zoo entries) yet"
            continue
        adapter = papers.get(paper, "adapter")
        try:
            results = paper_yardsticks(exp, paper)
        except MissingResult as err:
            for name in adapter.MODELS:
                missing[name] = str(err)
            continue
        claimed = getattr(adapter, "CLAIMED", {})
        for name in adapter.MODELS:
            if name not in results:
                missing[name] = f"the {paper} chapter's {YARDSTICK} step stores no result for {name!r}"
                continue
            role, about = zoo.ABOUT.get(name, ("control", f"a model of the {paper} chapter"))
            models.append(Model(name, paper, role, about, results[name], list(claimed.get(name, []))))
    return Comparison(exp.profile.name, models, missing)


def compare(exp: Experiment) -> dict[str, Any]:
    """The step: gather, write ``compare.json`` and ``compare.csv``, return the JSON-able numbers."""
    from . import summary

    data = summary.to_json(gather(exp))
    summary.write(data, exp.profile.name, seed=exp.seed, device=exp.device)
    return data


def steps(profile: CompareProfile) -> list[Step]:
    return [Step("compare", compare)]
