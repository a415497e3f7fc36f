"""The ``rbfi`` chapter's profiles: every size, epoch and step count it uses, per profile.

``PROFILES[name]`` for ``smoke`` (tests), ``quick`` (the book) and ``paper`` (the paper's settings).
Results are keyed by the whole profile (``asdict``), so a changed budget never reuses a stale result.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...profiles import Profile


@dataclass(frozen=True)
class RbfiProfile(Profile):
    """de Alfaro's RBFI networks. Defaults are the paper's settings (section 6); ``paper`` trims
    seeds, PGD images and restarts to fit about 5 GPU minutes (see the notebook's admonition)."""

    n_train: int | None = None  # training images (None: all 60,000)
    hidden: tuple[int, ...] = (512, 512, 512)  # main networks (Table 1 / Fig. 2)
    andor: str = "^v^v"  # RBFI geometry of the main network, output layer included
    epochs: int = 30
    runs_rbfi: int = 5  # seeds seed+0 .. seed+runs-1 (the paper: 5 RBFI, 10 ReLU/sigmoid)
    runs_base: int = 10
    n_test: int | None = None  # clean accuracy images (None: all 10,000)
    n_attack: int | None = None  # FGSM / I-FGSM / noise images (paper: the whole test set)
    eps_grid: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 11))  # 0.05 ... 0.5
    ifgsm_steps: int = 10
    n_pgd: int = 5000  # PGD (every variant): the first images of the test set, model of run 0 only
    pgd_steps: int = 100
    pgd_restarts: int = 20
    pgd_eps: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 11))  # a subset of eps_grid
    attack_batch: int = 500
    # Fig. 3: ReLU trained with adversarial examples (eps 0.3), plain ReLU, vs RBFI run 0
    adv_epochs: int = 10
    adv_steps: int = 100  # PGD steps for the PGD-trained ReLU (I-FGSM training uses ifgsm_steps)
    adv_n_train: int | None = None
    # Table 2: layer kinds (And, Or, alternating, mixed) with len(hidden) hidden layers of each width
    kinds_widths: tuple[int, ...] = (64, 128, 512)
    kinds_runs: int = 3
    kinds_epochs: int = 10
    kinds_n_train: int | None = None
    # Table 3: true gradients vs pseudogradients (main recipe); the runs also use seed+k
    truegrad_runs: int = 1
    # Fig. 4: ReLU with lambda * S (eq. 7); Fig. 5 / Table 4: RBFI u <= 10 with and without lambda * S (eq. 8)
    relu_lambdas: tuple[float, ...] = (0.0, 1e-4, 1e-3, 1e-2, 1e-1)
    rbfi_lambda: float = 1e-3
    n_fig5: int = 5000  # PGD images for Fig. 5
    # paper section 6.8: deep networks (section 6.9, RBF vs RBFI, uses the main recipe)
    deep_width: int = 128
    deep_depth: int = 5
    deep_epochs: int = 20
    deep_n_train: int | None = None
    # beyond the paper: decision-based and transfer attacks on RBFI run 0
    boundary_steps: int = 5000
    n_boundary: int = 500
    transfer_steps: int = 100


PROFILES = {
    "smoke": RbfiProfile(
        "smoke",
        "rbfi",
        n_train=1000,
        hidden=(16, 16),
        andor="^v^",
        epochs=1,
        runs_rbfi=1,
        runs_base=1,
        n_test=300,
        n_attack=40,
        eps_grid=(0.1, 0.3),
        ifgsm_steps=3,
        n_pgd=10,
        pgd_steps=3,
        pgd_restarts=1,
        pgd_eps=(0.1, 0.3),
        attack_batch=250,
        adv_epochs=1,
        adv_steps=2,
        adv_n_train=500,
        kinds_widths=(8,),
        kinds_runs=1,
        kinds_epochs=1,
        kinds_n_train=500,
        relu_lambdas=(0.0, 1.0),
        rbfi_lambda=1e-3,
        n_fig5=10,
        deep_width=8,
        deep_epochs=1,
        deep_n_train=500,
        boundary_steps=20,
        n_boundary=5,
        transfer_steps=3,
    ),
    "quick": RbfiProfile(
        "quick",
        "rbfi",
        n_train=60000,
        hidden=(64, 64),
        andor="^v^",
        epochs=3,
        runs_rbfi=2,
        runs_base=2,
        n_test=None,
        n_attack=1000,
        ifgsm_steps=10,
        n_pgd=200,
        pgd_steps=50,
        pgd_restarts=2,
        pgd_eps=(0.1, 0.2, 0.3, 0.4, 0.5),
        attack_batch=500,
        adv_epochs=2,
        adv_steps=5,
        adv_n_train=20000,
        kinds_widths=(16, 48),
        kinds_runs=2,
        kinds_epochs=2,
        kinds_n_train=10000,
        relu_lambdas=(0.0, 1e-3, 1e-2, 1e-1),
        rbfi_lambda=1e-3,
        n_fig5=100,
        deep_width=64,
        deep_epochs=3,
        deep_n_train=30000,
        boundary_steps=500,
        n_boundary=200,
        transfer_steps=20,
    ),
    # The paper's networks, recipes and epochs (512-512-512-10, 30 epochs, 60,000 images, 10,000
    # attacked images, I-FGSM 10 steps, PGD 100 AdaDelta steps), trimmed towards 5 H100 minutes:
    # 2 seeds per network (paper 5 RBFI / 10 ReLU, sigmoid), PGD on 500 images x 2 restarts at 5
    # epsilons (paper 5,000 x 20 at 10), adversarial training for 10 epochs on 30,000 images with
    # 10-step PGD (paper: 60,000 images, 100 steps), Table 2 at widths 64 and 256 for 3 epochs (the
    # paper's widths are not in its text), 4 lambdas. About 375,000 training steps at batch 100.
    "paper": RbfiProfile(
        "paper",
        "rbfi",
        runs_rbfi=2,
        runs_base=2,
        n_pgd=500,
        pgd_restarts=2,
        pgd_eps=(0.1, 0.2, 0.3, 0.4, 0.5),
        adv_steps=10,
        adv_n_train=30000,
        kinds_widths=(64, 256),
        kinds_runs=2,
        kinds_epochs=3,
        relu_lambdas=(0.0, 1e-3, 1e-2, 1e-1),
        n_fig5=500,
        boundary_steps=2000,
    ),
}
