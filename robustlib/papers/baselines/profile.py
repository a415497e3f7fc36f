"""The ``baselines`` chapter's profiles: every size, epoch and step count it uses, per profile.

``PROFILES[name]`` for ``smoke`` (tests), ``quick`` (the book) and ``paper`` (the paper's settings).
Results are keyed by the settings they use (``ModelKey``, ``AttackKey``, ``YardstickKey``), so a
changed budget never reuses a stale result. The yardstick's budgets are the protocol's
(``ProtocolConfig.for_profile``), the same for every chapter; its decision-based attack
(HopSkipJump) replaced the Boundary attack this chapter ran before.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...profiles import Profile


@dataclass(frozen=True)
class BaselinesProfile(Profile):
    n_train: int | None = None  # training images (None: all 60,000)
    mlp_epochs: int = 3  # 784-512-512-512-10 ReLU and sigmoid MLPs (Adam, batch 100)
    lenet_epochs: int = 2  # Caffe LeNet (Adam, batch 64)
    nn_train: int | None = None  # training images the nearest-neighbour classifier searches
    n_clean: int | None = None  # test images for clean accuracy (None: all 10,000)
    n_attack: int = 200  # test images attacked (the first n of the test set)
    linf_grid: tuple[float, ...] = tuple(round(0.025 * i, 3) for i in range(21))  # 0 ... 0.5
    l2_grid: tuple[float, ...] = tuple(round(0.25 * i, 2) for i in range(21))  # 0 ... 5
    pgd_steps: int = 40
    pgd_restarts: int = 1
    ifgsm_steps: int = 10
    noise_repeats: int = 20  # uniform-noise draws per image and epsilon
    gaussian_draws: int = 20  # Gaussian-noise line-search directions per image


PROFILES = {
    "smoke": BaselinesProfile(
        "smoke",
        "baselines",
        n_train=2000,
        mlp_epochs=1,
        lenet_epochs=1,
        nn_train=2000,
        n_clean=500,
        n_attack=16,
        linf_grid=(0.0, 0.1, 0.3, 0.5),
        l2_grid=(0.0, 1.0, 1.5, 3.0),
        pgd_steps=5,
        ifgsm_steps=3,
        noise_repeats=2,
        gaussian_draws=2,
    ),
    "quick": BaselinesProfile("quick", "baselines", mlp_epochs=5, lenet_epochs=3, nn_train=10000),
    "paper": BaselinesProfile(
        "paper",
        "baselines",
        mlp_epochs=20,
        lenet_epochs=10,
        n_attack=1000,
        pgd_steps=100,
        pgd_restarts=5,
        gaussian_draws=100,
    ),
}
