"""The ``bang`` chapter's profiles: every size, epoch and step count it uses, per profile.

``PROFILES[name]`` for ``smoke`` (tests), ``quick`` (the book) and ``paper`` (the paper's settings).
Results are keyed by the whole profile (``asdict``), so a changed budget never reuses a stale result.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...profiles import Profile


@dataclass(frozen=True)
class BangProfile(Profile):
    """BANG (Rozsa, Günther & Boult). Iterations are SGD steps of batch 64 (LeNet) / 100 (CIFAR);
    noise sigmas are in grey levels (0..255); ``linf_grid`` in [0, 1] units."""

    # LeNet / MNIST: Table 1 and Fig. 1
    n_train: int | None = 50_000  # training images (the paper: 50k train / 10k val / 10k test)
    n_val: int = 0  # validation images monitored per epoch (0: off; the last iterate is evaluated)
    iterations: int = 10_000
    table_rows: tuple[str, ...] = ("R0", "R1", "B0", "B1", "B2", "B3", "B4", "B5")
    n_attack: int | None = None  # test images for FGS / HC1 (None: all 10,000)
    max_steps: int = 255  # line-search steps of one grey level
    # Fig. 2: the (beta, eps) grid (the paper: beta 1.0..1.6 step 0.05, eps 0.78..0.84 step 0.005)
    grid_betas: tuple[float, ...] = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6)
    grid_epsilons: tuple[float, ...] = (0.78, 0.79, 0.80, 0.81, 0.82, 0.83, 0.84)
    grid_iterations: int = 10_000
    grid_n_acc: int | None = None  # test images for the grid accuracies
    grid_n_attack: int = 1000  # test images for the grid FGS / HC1
    # Fig. 3: Gaussian noise during training (R0 vs B1)
    snapshot_every: int = 500
    noise_pool: int | None = None  # candidate test images (None: all)
    noise_per_class: int = 100
    noise_draws: int = 100  # the paper: 1000
    noise_sigmas: tuple[float, ...] = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)
    # beyond the paper (R0 vs B1)
    beyond_n: int = 1000
    pgd_steps: int = 100
    pgd_restarts: int = 3
    linf_grid: tuple[float, ...] = (0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.14, 0.16, 0.18, 0.2, 0.25, 0.3, 0.4, 0.5)
    l2_grid: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0)
    boundary_n: int = 200
    boundary_steps: int = 5000
    # CIFAR-10 quick: Table 2, Figs. 4-5 (only where CIFAR-10 can be loaded)
    cifar_iterations: int = 20_000
    cifar_rows: tuple[str, ...] = ("R0", "R1", "B0", "B1", "B2", "B3", "B4", "B5")
    cifar_grid_betas: tuple[float, ...] = (0.4, 0.7, 1.0)
    cifar_grid_epsilons: tuple[float, ...] = (0.80, 0.83, 0.86)
    cifar_n_attack: int | None = None
    cifar_snapshot_every: int = 1000  # every 2nd epoch at batch 100
    cifar_noise_per_class: int = 100
    cifar_noise_sigmas: tuple[float, ...] = (4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 28.0, 32.0, 36.0, 40.0)


PROFILES = {
    "smoke": BangProfile(
        "smoke",
        "bang",
        n_train=2000,
        iterations=60,
        table_rows=("R0", "B1"),
        n_attack=40,
        grid_betas=(1.0, 1.6),
        grid_epsilons=(0.78, 0.84),
        grid_iterations=30,
        grid_n_acc=500,
        grid_n_attack=20,
        snapshot_every=20,
        noise_pool=400,
        noise_per_class=2,
        noise_draws=4,
        noise_sigmas=(50.0, 100.0),
        beyond_n=10,
        pgd_steps=5,
        pgd_restarts=1,
        linf_grid=(0.1, 0.2, 0.3),
        l2_grid=(1.0, 2.0, 4.0),
        boundary_n=4,
        boundary_steps=20,
        cifar_iterations=20,
        cifar_rows=("R0", "B0"),
        cifar_grid_betas=(),
        cifar_grid_epsilons=(),
        cifar_n_attack=20,
        cifar_snapshot_every=10,
        cifar_noise_per_class=2,
        cifar_noise_sigmas=(20.0, 40.0),
    ),
    "quick": BangProfile(
        "quick",
        "bang",
        iterations=2000,
        table_rows=("R0", "B1"),
        n_attack=500,
        grid_betas=(1.0, 1.3, 1.6),
        grid_epsilons=(0.78, 0.81, 0.84),
        grid_iterations=500,
        grid_n_acc=5000,
        grid_n_attack=150,
        snapshot_every=400,
        noise_pool=2000,
        noise_per_class=10,
        noise_draws=30,
        noise_sigmas=(20.0, 40.0, 60.0, 80.0, 100.0),
        beyond_n=100,
        pgd_steps=20,
        pgd_restarts=1,
        linf_grid=(0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5),
        l2_grid=(0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0),
        boundary_n=20,
        boundary_steps=1500,
        cifar_iterations=4000,
        cifar_rows=("R0", "B0"),
        cifar_grid_betas=(),
        cifar_grid_epsilons=(),
        cifar_n_attack=1000,
        cifar_noise_per_class=10,
        cifar_noise_sigmas=(8.0, 16.0, 24.0, 32.0, 40.0),
    ),
    # Estimated 3-5 H100 minutes (not measured: op counts + launch overhead): Table 1 (8 LeNets in one
    # stack, 10k iterations) ~20 s, noise (40 snapshots x 1000 images x 100 draws x 10 sigmas) ~20 s,
    # FGS/HC1 on all 10k test images + PASS (ECC on every CPU core) ~40 s, the 7 x 7 grid (every
    # other point of the paper's 13 x 13, 10k iterations, attacks on 1000 images) ~60-90 s, beyond
    # (1000 images, Boundary on 200) ~40 s. Not covered: the full 13 x 13 grid; CIFAR-10 (no download).
    "paper": BangProfile("paper", "bang"),
}
