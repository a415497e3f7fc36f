"""The ``compare`` chapter's profiles.

The chapter computes nothing of its own: it reads each paper's stored yardstick results
(``yardstick-<model>``, written by the paper's ``yardstick`` step) at the same profile. At
``smoke`` (tests) a missing one is computed through the paper's own steps; at ``quick`` and
``paper`` the chapter only loads, and names the models whose results are not in the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...profiles import Profile


@dataclass(frozen=True)
class CompareProfile(Profile):
    compute_missing: bool = False  # compute a paper's missing yardstick result through its own steps


PROFILES = {
    "smoke": CompareProfile("smoke", "compare", compute_missing=True),
    "quick": CompareProfile("quick", "compare"),
    "paper": CompareProfile("paper", "compare"),
}
