"""Claims and verdicts: the paper's numbers in one place, each verdict rule written once.

Every paper folder has a ``claims.py`` with

* one :class:`Claim` per reproduction target: what the paper says, its number, and where it says it;
* one *rule* per claim: a short function of the stored results (``{step name: result}``) that
  returns a :class:`Finding` (our number in words and the verdict). The rule's docstring is its
  criterion; the book shows that text, so a rule is written once, as code, and read as prose.

``scorecard(rules, results)`` applies the rules and gives the rows of ``scorecard.json``. A rule
whose inputs did not run returns ``not_run(why)``. Verdicts are one of :data:`VERDICTS`; the one
verdict helper is :func:`grade`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VERDICTS = ("reproduced", "partly", "not reproduced", "not run")


@dataclass(frozen=True)
class Claim:
    """A reproduction target: the paper's claim, its reported number(s), and where it says so."""

    id: str  # e.g. "DAM-5"
    claim: str  # the claim in one sentence
    paper: str  # the paper's number(s) as the paper reports them
    source: str  # where: section, table or figure (and a released file where the number comes from one)


@dataclass(frozen=True)
class Finding:
    """What a rule found: our number(s) in words and the verdict."""

    ours: str
    verdict: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r}: valid: {', '.join(VERDICTS)}")


Results = Mapping[str, Any]
Rule = Callable[[Results], Finding]


def grade(full: bool, some: bool = False) -> str:
    """The one verdict helper: ``reproduced`` when the full criterion holds, ``partly`` when only
    the weaker one does, else ``not reproduced``."""
    return "reproduced" if full else "partly" if some else "not reproduced"


def not_run(why: str) -> Finding:
    """The finding of a rule whose evidence this run did not compute."""
    return Finding(why, "not run")


def rule(claim: Claim) -> Callable[[Rule], Rule]:
    """Attach ``claim`` to a rule function; the function's docstring is the criterion."""

    def attach(fn: Rule) -> Rule:
        if not inspect.getdoc(fn):
            raise ValueError(f"rule {fn.__name__} for {claim.id} needs a docstring: its criterion")
        fn.claim = claim  # type: ignore[attr-defined]
        return fn

    return attach


def criterion(fn: Rule) -> str:
    """The criterion of a rule, as the book shows it (its docstring, on one line)."""
    return " ".join((inspect.getdoc(fn) or "").split())


def scorecard(rules: Sequence[Rule], results: Results) -> list[dict[str, str]]:
    """One scorecard row per rule: ``id, claim, paper, source, ours, verdict, criterion``."""
    rows = []
    for fn in rules:
        claim: Claim = fn.claim  # type: ignore[attr-defined]
        found = fn(results)
        if not isinstance(found, Finding):
            raise TypeError(f"rule for {claim.id} returned {type(found).__name__}, not a Finding")
        rows.append(
            {
                "id": claim.id,
                "claim": claim.claim,
                "paper": claim.paper,
                "source": claim.source,
                "ours": found.ours,
                "verdict": found.verdict,
                "criterion": criterion(fn),
            }
        )
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claim ids must be unique, got {ids}")
    return rows
