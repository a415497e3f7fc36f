"""The ``abs`` chapter's profiles: every size, epoch and step count it uses, per profile.

``PROFILES[name]`` for ``smoke`` (tests), ``quick`` (the book) and ``paper`` (the paper's settings).
Results are keyed by the whole profile (``asdict``), so a changed budget never reuses a stale result.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...profiles import Profile


@dataclass(frozen=True)
class AbsProfile(Profile):
    # class-conditional VAEs (Adam, KL weight annealed 10 -> 1)
    vae_per_class: int | None = None  # training images per class (None: all)
    vae_epochs: int = 60
    vae_anneal_epochs: float = 50.0  # the paper anneals over 50 epochs
    vae_batch_rows: int = 64  # images per class per step
    vae_lr: float = 1e-3
    # ABS inference (the paper: 8000 prior samples, 50 Adam steps with lr 0.05)
    n_samples: int = 8000
    abs_steps: int = 50
    # baselines: vanilla CNN, transfer substitute, Madry-style PGD-trained CNN, nearest neighbour
    cnn_train: int | None = None  # training images (None: all 60,000)
    cnn_epochs: int = 10
    cnn_lr: float = 1e-3
    cnn_batch: int = 128
    sub_train: int | None = None
    sub_epochs: int = 5
    madry_train: int | None = None
    madry_epochs: int = 10
    madry_pgd_steps: int = 7  # the paper's Madry model: 40 steps, 100k iterations (not affordable)
    madry_ramp: float = 0.3  # fraction of the iterations over which eps ramps 0 -> 0.3
    madry_from_cnn: bool = False  # start from the trained vanilla CNN (quick) or from scratch
    nn_train: int | None = None
    # evaluation sizes
    n_clean: int | None = None  # test images for the ABS clean accuracy (None: all 10,000)
    n_clean_baselines: int | None = None
    n_attack: int = 200  # the first n test images, attacked on every model
    n_show: int = 8  # adversarials kept for the figures
    # attacks (minimal distances; eps grids for the fixed-size attacks)
    l2_grid: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0)
    linf_grid: tuple[float, ...] = tuple(round(0.025 * i, 3) for i in range(1, 21))  # 0.025 ... 0.5
    l2_grid_abs: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
    linf_grid_abs: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
    pgd_steps: int = 100  # baselines
    pgd_steps_abs: int = 20  # each step is one ABS inference
    gaussian_draws: int = 10
    gaussian_draws_abs: int = 5
    line_grid: int = 24  # line-search grid (Gaussian noise, transfer) and bisection steps
    line_bisect: int = 10
    boundary_steps: int = 1000  # baselines (0: not run)
    boundary_steps_abs: int = 200  # ABS: started from the Latent Descent adversarials (0: not run)
    ld_coarse: int = 51
    ld_bisect: int = 10
    # models attacked in L0 (salt-and-pepper, then pointwise from its adversarials); on ABS these
    # need thousands of sequential inferences, so the 5-GPU-minute paper profile leaves ABS out
    l0_models: tuple[str, ...] = ("CNN", "Binary CNN", "Nearest neighbour", "Madry et al. (ours)")
    salt_pepper_steps: int = 1000  # noise levels tried (pointwise starts from its adversarials)
    # distal adversarials, lower bound
    distal_starts: int = 100
    distal_steps: int = 200
    distal_lr: float = 0.01
    n_bound: int = 1000


PROFILES = {
    "smoke": AbsProfile(
        "smoke",
        "abs",
        vae_per_class=100,
        vae_epochs=2,
        vae_anneal_epochs=1.0,
        vae_batch_rows=10,
        vae_lr=3e-3,
        n_samples=40,
        abs_steps=2,
        cnn_train=600,
        cnn_epochs=1,
        cnn_lr=3e-3,
        sub_train=600,
        sub_epochs=1,
        madry_train=200,
        madry_epochs=1,
        madry_pgd_steps=1,
        madry_from_cnn=True,
        nn_train=500,
        n_clean=12,
        n_clean_baselines=200,
        n_attack=4,
        n_show=3,
        l2_grid=(0.5, 1.5, 3.0),
        linf_grid=(0.1, 0.3),
        l2_grid_abs=(1.0, 3.0),
        linf_grid_abs=(0.1, 0.3),
        pgd_steps=2,
        pgd_steps_abs=1,
        gaussian_draws=1,
        gaussian_draws_abs=1,
        line_grid=4,
        line_bisect=2,
        boundary_steps=4,
        boundary_steps_abs=2,
        ld_coarse=3,
        ld_bisect=1,
        l0_models=("CNN",),
        salt_pepper_steps=20,
        distal_starts=2,
        distal_steps=2,
        distal_lr=0.1,
        n_bound=4,
    ),
    "quick": AbsProfile(
        "quick",
        "abs",
        vae_per_class=500,
        vae_epochs=5,
        vae_anneal_epochs=3.0,
        vae_batch_rows=32,
        vae_lr=3e-3,
        n_samples=800,
        abs_steps=10,
        cnn_train=40000,
        cnn_epochs=1,
        cnn_lr=1e-3,
        cnn_batch=32,
        sub_train=10000,
        sub_epochs=1,
        madry_train=4000,
        madry_epochs=1,
        madry_pgd_steps=3,
        madry_ramp=1.0,
        madry_from_cnn=True,
        nn_train=10000,
        n_clean=100,
        n_clean_baselines=2000,
        n_attack=16,
        l2_grid=(0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0),
        linf_grid=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5),
        l2_grid_abs=(1.5, 3.0),
        linf_grid_abs=(0.1, 0.3),
        pgd_steps=10,
        pgd_steps_abs=3,
        gaussian_draws=5,
        gaussian_draws_abs=1,
        line_grid=8,
        line_bisect=3,
        boundary_steps=0,
        boundary_steps_abs=0,
        ld_coarse=11,
        ld_bisect=3,
        salt_pepper_steps=100,
        distal_starts=10,
        distal_steps=20,
        distal_lr=0.05,
        n_bound=50,
    ),
    # About 5 H100 minutes (estimated from op counts: ABS inference is launch-bound, ~30 ms per
    # call of 50 steps plus ~0.4 ms per image); every (model, attack) is a separate artifact, so an
    # interrupted run resumes. Not covered: L0 attacks on ABS / binary ABS (l0_models).
    "paper": AbsProfile("paper", "abs", madry_epochs=6, n_attack=100, pgd_steps=40),
}
