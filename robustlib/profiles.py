"""Run profiles: ``smoke`` (tests, seconds), ``quick`` (book and classroom, minutes on 2 cores) and
``paper`` (the papers' own settings, GPU or long background runs).

Each paper folder's ``profile.py`` holds one frozen dataclass (a subclass of :class:`Profile`) with
every size/epoch/step count its chapter uses, so a chapter never hard-codes a budget and a result
is keyed by the full profile (``asdict``) in the artifact store. ``get(paper, name)`` looks one up;
unknown names raise ``ValueError`` naming the valid choices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

PROFILE_NAMES = ("smoke", "quick", "paper")


def _numbers(value: Any) -> list[float]:
    """The numbers in a possibly nested tuple."""
    if isinstance(value, tuple):
        return [v for item in value for v in _numbers(item)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


@dataclass(frozen=True)
class Profile:
    """Fields shared by every notebook's profile."""

    name: str
    notebook: str

    def __post_init__(self) -> None:
        if self.name not in PROFILE_NAMES:
            raise ValueError(f"unknown profile {self.name!r}; valid: {', '.join(PROFILE_NAMES)}")
        # Every int/float budget must be positive (None means "all"/"not used").
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, (int, float)) and value < 0:
                raise ValueError(f"{type(self).__name__}.{f.name} must be >= 0, got {value}")
            # epsilon grids and other grids: every entry >= 0 (other tuples, e.g. initial
            # means, may hold negative values)
            if isinstance(value, tuple) and ("eps" in f.name or f.name.endswith("grid")):
                bad = [v for v in _numbers(value) if v < 0]
                if bad:
                    raise ValueError(f"{type(self).__name__}.{f.name} must hold values >= 0, got {bad[0]}")

    def asdict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def get(notebook: str, name: str) -> Profile:
    """The profile ``name`` of ``notebook`` (its ``papers/<notebook>/profile.py``); ``ValueError``
    names the valid choices."""
    from . import papers

    return papers.profile(notebook, name)


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; validates explicit names."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" or device.startswith("cuda"):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but no CUDA GPU is visible; use 'cpu' or 'auto'")
        return device
    raise ValueError(f"unknown device {device!r}; valid: 'auto', 'cpu', 'cuda', 'cuda:N'")
