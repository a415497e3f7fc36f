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


# --- dam ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DamProfile(Profile):
    """Dense Associative Memory (Krotov & Hopfield): every budget of notebooks/dam.md.

    Pixel epsilons and step sizes of the paper's own procedures are in the paper's [-1, 1] units
    (``fgsm_eps``, ``boundary_step``, ``rubbish_step``); ``whitebox_eps`` are in [0, 1] units like
    the shared attack suite. Per-n values (``temperatures``, ``ms``, ``tune_grid``,
    ``temperature_ramp``) are aligned with ``n_values``.
    """

    n_values: tuple[int, ...] = (2, 3, 20, 30)
    K: int = 2000  # memories
    ms: tuple[int, ...] = (30, 30, 30, 30)  # power of the objective per n
    temperatures: tuple[float, ...] = (600.0, 400.0, 300.0, 350.0)  # T per n when not tuned in the run
    temperature_ramp: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)  # T_in / T (1: no ramp)
    ramp_epochs: int = 200
    epochs: int = 300
    batch_size: int = 1000
    eps0: float = 0.04
    decay: float = 0.998
    momentum: float = 0.6
    n_train: int | None = None  # None: all 60,000 training images
    n_eval_during_training: int | None = 2000  # test images evaluated after each epoch (history only)
    # temperature selection on a validation split held out of the training set
    tune_epochs: int = 0  # > 0: run the sweep inside this profile and train with the best T per n
    tune_epochs_offline: int = 5  # the sweep behind ``temperatures`` (``--tune``), when tune_epochs == 0
    tune_grid: tuple[tuple[float, ...], ...] = ((300.0, 600.0, 800.0), (400.0, 800.0), (300.0, 400.0, 540.0),
                                                (250.0, 350.0, 500.0))
    n_val: int = 10000
    # the ReLU MLP of the baselines chapter (extra row/column of both transfer tables)
    mlp_hidden: tuple[int, ...] = (512, 512, 512)
    mlp_epochs: int = 3
    # clean error and calibration (Fig. 6)
    n_clean: int | None = None  # test images (None: all 10,000)
    confidence_edges: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99, 1.0)
    min_bin_count: int = 20  # bins with fewer images are not used for the verdict
    # rubbish images (Fig. 3, Fig. 7)
    rubbish_per_class: int = 100
    rubbish_step: float = 0.1  # eq. 3.2 step, L2 in [-1, 1] pixels
    rubbish_steps: int = 500
    noise_std: float = 0.1
    rubbish_beta: float = 3.2
    # decision-boundary images (Fig. 4, Fig. 5)
    n_triplets: int = 3
    boundary_step: float = 0.1  # eq. 3.2 step, L2 in [-1, 1] pixels
    boundary_max_steps: int = 600
    trajectory_steps: int = 600
    final_neg_log_c: float = 30.0  # "C_second reaches zero": log C below minus this
    n_transfer: int | None = None  # test images per adversarial set (None: all 10,000)
    # FGSM (Fig. 8), [-1, 1] units
    n_fgsm: int | None = None
    fgsm_eps: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(13))  # 0 ... 0.6
    # beyond the paper: white-box attacks, [0, 1] units
    whitebox_n: tuple[int, ...] = (2, 30)
    n_whitebox: int = 1000
    whitebox_eps: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2)
    whitebox_headline_eps: float = 0.1  # = 0.2 on the paper's [-1, 1] scale
    pgd_steps: int = 100
    pgd_restarts: int = 5
    n_boundary_attack: int = 500
    boundary_attack_steps: int = 2000
    noise_draws: int = 50
    attack_batch: int = 1000


register("dam", {
    "smoke": DamProfile(
        "smoke", "dam", n_values=(2, 20), K=16, ms=(30, 30), temperatures=(300.0, 300.0),
        temperature_ramp=(1.0, 1.0), epochs=1, n_train=2000, n_eval_during_training=200,
        tune_grid=((300.0,), (300.0,)), tune_epochs_offline=1, n_val=500,
        mlp_hidden=(64,), mlp_epochs=1, n_clean=500, confidence_edges=(0.1, 0.5, 1.0), min_bin_count=1,
        rubbish_per_class=2, rubbish_steps=20, n_triplets=2, boundary_max_steps=30, trajectory_steps=30,
        n_transfer=20, n_fgsm=50, fgsm_eps=(0.0, 0.2, 0.3, 0.5), whitebox_n=(20,), n_whitebox=8,
        pgd_steps=3, pgd_restarts=1, n_boundary_attack=4, boundary_attack_steps=20, noise_draws=2,
        attack_batch=250,
    ),
    "quick": DamProfile(
        "quick", "dam", K=100, epochs=12, n_eval_during_training=1000,
        rubbish_per_class=20, rubbish_steps=300, n_transfer=500, n_fgsm=1000,
        fgsm_eps=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5), n_whitebox=200, pgd_steps=40, pgd_restarts=1,
        n_boundary_attack=32, boundary_attack_steps=500, noise_draws=10, attack_batch=500,
    ),
    "paper": DamProfile(
        "paper", "dam", tune_epochs=15,
        tune_grid=((1500.0, 2500.0, 4000.0), (700.0, 1100.0, 1700.0), (350.0, 450.0, 540.0),
                   (400.0, 500.0, 650.0)),
    ),
})
