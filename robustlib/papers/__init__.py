"""The six chapters' code, one folder each, all the same shape.

``robustlib/papers/<paper>/`` holds ``model.py`` (the paper's mathematics), ``profile.py`` (its
``smoke``/``quick``/``paper`` dataclass, ``PROFILES``), ``experiments.py`` (``steps(profile)``: the
computation behind each figure and table, on the experiment core), ``claims.py`` (the paper's
numbers and the verdict rules, ``RULES``) and, where the paper has them, its kernels and attacks.

This module is the registry: ``papers.NAMES`` (the book's paper chapters, in order: what the scorecard
gathers), ``papers.CHAPTERS`` (every chapter with steps, in the order they run: the papers, then the
side-by-side chapter ``compare``, which reads their stored yardstick results), ``papers.get(name,
part)`` (one module of a folder), and the three things every caller needs: ``profile``, ``compute``
and ``scorecard``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from ..profiles import PROFILE_NAMES, Profile

# The book's chapter order (intro table, sidebar and scorecard all follow it).
NAMES = ("baselines", "rbfi", "dam", "abs", "bang", "mfbm")
# Every chapter with steps, in the order they run: ``compare`` (the five defences side by side)
# judges no claim of its own and reads the papers' stored yardstick results, so it comes last.
CHAPTERS = (*NAMES, "compare")


def get(name: str, part: str) -> ModuleType:
    """One module of a paper's folder: ``get("dam", "claims")`` is ``robustlib.papers.dam.claims``."""
    if name not in CHAPTERS:
        raise ValueError(f"unknown chapter {name!r}; valid: {', '.join(CHAPTERS)}")
    return importlib.import_module(f"{__name__}.{name}.{part}")


def profile(name: str, profile_name: str) -> Profile:
    """The paper's profile ``profile_name``; ``ValueError`` names the valid choices."""
    if profile_name not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile_name!r}; valid: {', '.join(PROFILE_NAMES)}")
    return get(name, "profile").PROFILES[profile_name]


def steps(name: str, prof: Profile) -> list[Any]:
    """The paper's steps at ``prof`` (``experiment.Step`` objects, in a valid order)."""
    return list(get(name, "experiments").steps(prof))


def compute(exp: Any, *, only: list[str] | None = None) -> dict[str, Any]:
    """Run (or load) every step of ``exp.paper``; ``{step name: result}``."""
    from ..experiment import run_steps

    return run_steps(exp, steps(exp.paper, exp.profile), only=only)


def scorecard(exp: Any, results: dict[str, Any]) -> list[dict[str, str]]:
    """The paper's scorecard rows for ``results`` (``exp.profile`` is available to the rules as
    ``results["profile"]``)."""
    from .. import claims

    return claims.scorecard(get(exp.paper, "claims").RULES, {**results, "profile": exp.profile})


def write_scorecard(exp: Any, results: dict[str, Any]) -> list[dict[str, str]]:
    """Judge ``results`` and store ``scorecard.json``; returns the rows. A chapter that judges no
    claim (empty ``RULES``, e.g. ``compare``) stores no scorecard and returns ``[]``."""
    from .. import store

    rows = scorecard(exp, results)
    if not rows:
        return rows
    store.write_scorecard(exp.paper, exp.profile.name, rows, seed=exp.seed, device=exp.device)
    return rows
