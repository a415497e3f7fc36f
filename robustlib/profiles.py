"""Run profiles: ``smoke`` (tests, seconds), ``quick`` (book and classroom, minutes on 2 cores) and
``paper`` (the papers' own settings, GPU or long background runs).

One frozen dataclass per notebook holds every size/epoch/step count that notebook uses, so a
notebook never hard-codes a budget and a result is keyed by the full profile (``asdict``) in the
artifact store. ``get(notebook, name)`` is the only entry point; unknown names raise ``ValueError``
naming the valid choices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

PROFILE_NAMES = ("smoke", "quick", "paper")


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

    def asdict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_PROFILES: dict[str, dict[str, Profile]] = {}


def register(notebook: str, profiles: dict[str, Profile]) -> None:
    """Add a notebook's three profiles (used by the paper notebooks' sections below)."""
    if set(profiles) != set(PROFILE_NAMES):
        raise ValueError(f"{notebook}: need exactly the profiles {PROFILE_NAMES}, got {sorted(profiles)}")
    _PROFILES[notebook] = profiles


def notebooks() -> tuple[str, ...]:
    return tuple(_PROFILES)


def get(notebook: str, name: str) -> Profile:
    """The profile ``name`` of ``notebook``; ``ValueError`` names the valid choices."""
    if notebook not in _PROFILES:
        raise ValueError(f"unknown notebook {notebook!r}; valid: {', '.join(sorted(_PROFILES))}")
    if name not in _PROFILES[notebook]:
        raise ValueError(f"unknown profile {name!r}; valid: {', '.join(PROFILE_NAMES)}")
    return _PROFILES[notebook][name]


# --- baselines ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class BaselinesProfile(Profile):
    n_train: int | None = None  # training images (None: all 60,000)
    mlp_epochs: int = 3  # 784-512-512-512-10 ReLU and sigmoid MLPs (Adam, batch 100)
    lenet_epochs: int = 2  # Caffe LeNet (Adam, batch 64)
    nn_train: int | None = None  # training images the nearest-neighbour classifier searches
    n_clean: int | None = None  # test images for clean accuracy (None: all 10,000)
    n_attack: int = 200  # test images attacked (the first n of the test set)
    linf_grid: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(11))  # 0 ... 0.5
    l2_grid: tuple[float, ...] = tuple(round(0.25 * i, 2) for i in range(21))  # 0 ... 5
    pgd_steps: int = 40
    pgd_restarts: int = 1
    ifgsm_steps: int = 10
    noise_repeats: int = 20  # uniform-noise draws per image and epsilon
    boundary_steps: int = 1000
    gaussian_draws: int = 20  # Gaussian-noise line-search directions per image


register("baselines", {
    "smoke": BaselinesProfile(
        "smoke", "baselines", n_train=2000, mlp_epochs=1, lenet_epochs=1, nn_train=2000,
        n_clean=500, n_attack=16, linf_grid=(0.0, 0.1, 0.3, 0.5), l2_grid=(0.0, 1.0, 1.5, 3.0),
        pgd_steps=5, ifgsm_steps=3, noise_repeats=2, boundary_steps=20, gaussian_draws=2,
    ),
    "quick": BaselinesProfile("quick", "baselines", nn_train=20000),
    "paper": BaselinesProfile(
        "paper", "baselines", mlp_epochs=20, lenet_epochs=10, n_attack=1000,
        pgd_steps=100, pgd_restarts=5, boundary_steps=5000, gaussian_draws=100,
    ),
})


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


def setup(notebook: str, profile: str, seed: int = 0, device: str = "auto") -> tuple[Profile, str]:
    """First cell of every notebook: validate the papermill parameters, seed, pick the device."""
    import torch

    prof = get(notebook, profile)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    return prof, dev


# --- per-paper profiles: each paper notebook defines its own dataclass and registers it ---------
# (dam, rbfi, bang, abs, mfbm: appended at the end of this file by their notebooks' work)
