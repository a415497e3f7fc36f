"""The ``dam`` chapter's profiles: every size, epoch and step count it uses, per profile.

``PROFILES[name]`` for ``smoke`` (tests), ``quick`` (the book) and ``paper`` (the paper's settings).
Results are keyed by the whole profile (``asdict``), so a changed budget never reuses a stale result.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...profiles import Profile


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
    temperatures: tuple[float, ...] = (75.0, 75.0, 300.0, 350.0)  # T per n when not tuned in the run
    temperature_ramp: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)  # T_in / T (1: no ramp)
    # initial weights N(mean, 0.3): Krotov's -0.3 for n = 20, 30; 0 for n = 2, 3 (validation-selected:
    # with -0.3 every memory is active for every image and n = 2, 3 start in a linear regime)
    init_means: tuple[float, ...] = (0.0, 0.0, -0.3, -0.3)
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
    tune_grid: tuple[tuple[float, ...], ...] = (
        (40.0, 75.0, 150.0, 300.0),
        (40.0, 75.0, 150.0, 300.0),
        (300.0, 400.0, 540.0),
        (250.0, 350.0, 500.0),
    )
    n_val: int = 10000
    # the ReLU MLP of the baselines chapter, with its recipe and epochs (extra row/column of both
    # transfer tables)
    mlp_epochs: int = 20
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
    n_boundary_attack: int = 200  # images for the decision-based L2 attacks
    boundary_attack_steps: int = 1000
    hsja_steps: int = 32  # HopSkipJump iterations (0: not run)
    noise_draws: int = 50
    attack_batch: int = 1000


PROFILES = {
    "smoke": DamProfile(
        "smoke",
        "dam",
        n_values=(2, 30),  # the zoo's two models (dam-n2, dam-n30)
        K=16,
        ms=(30, 30),
        temperatures=(75.0, 350.0),
        temperature_ramp=(1.0, 1.0),
        init_means=(0.0, -0.3),
        epochs=1,
        n_train=1000,
        n_eval_during_training=200,
        tune_grid=((300.0,), (300.0,)),
        tune_epochs_offline=1,
        n_val=500,
        mlp_epochs=1,
        n_clean=500,
        confidence_edges=(0.1, 0.5, 1.0),
        min_bin_count=1,
        rubbish_per_class=2,
        rubbish_steps=20,
        n_triplets=2,
        boundary_max_steps=30,
        trajectory_steps=30,
        n_transfer=20,
        n_fgsm=50,
        fgsm_eps=(0.0, 0.2, 0.3, 0.5),
        whitebox_n=(30,),
        n_whitebox=8,
        pgd_steps=3,
        pgd_restarts=1,
        n_boundary_attack=2,
        boundary_attack_steps=10,
        hsja_steps=1,
        noise_draws=1,
        attack_batch=250,
    ),
    "quick": DamProfile(
        "quick",
        "dam",
        K=100,
        epochs=12,
        n_eval_during_training=1000,
        mlp_epochs=5,
        rubbish_per_class=20,
        rubbish_steps=300,
        n_transfer=500,
        n_fgsm=1000,
        fgsm_eps=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
        n_whitebox=200,
        pgd_steps=40,
        pgd_restarts=1,
        n_boundary_attack=32,
        boundary_attack_steps=500,
        hsja_steps=0,
        noise_draws=10,
        attack_batch=500,
    ),
    "paper": DamProfile(
        "paper",
        "dam",
        tune_epochs=15,
        tune_grid=((150.0, 300.0, 600.0), (100.0, 200.0, 400.0), (300.0, 400.0, 540.0), (300.0, 400.0, 540.0)),
    ),
}
