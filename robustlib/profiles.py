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
    linf_grid: tuple[float, ...] = tuple(round(0.025 * i, 3) for i in range(21))  # 0 ... 0.5
    l2_grid: tuple[float, ...] = tuple(round(0.25 * i, 2) for i in range(21))  # 0 ... 5
    pgd_steps: int = 40
    pgd_restarts: int = 1
    ifgsm_steps: int = 10
    noise_repeats: int = 20  # uniform-noise draws per image and epsilon
    boundary_steps: int = 1000
    hsja_steps: int = 0  # HopSkipJump (decision-based) iterations; 0 = not run (too slow at quick)
    gaussian_draws: int = 20  # Gaussian-noise line-search directions per image


register("baselines", {
    "smoke": BaselinesProfile(
        "smoke", "baselines", n_train=2000, mlp_epochs=1, lenet_epochs=1, nn_train=2000,
        n_clean=500, n_attack=16, linf_grid=(0.0, 0.1, 0.3, 0.5), l2_grid=(0.0, 1.0, 1.5, 3.0),
        pgd_steps=5, ifgsm_steps=3, noise_repeats=2, boundary_steps=20, gaussian_draws=2,
    ),
    # boundary_steps: 2,000 steps put the quick run at 8.8 min on 2 idle cores (budget 8)
    "quick": BaselinesProfile("quick", "baselines", mlp_epochs=5, lenet_epochs=3, nn_train=10000,
                              boundary_steps=1000),
    "paper": BaselinesProfile(
        "paper", "baselines", mlp_epochs=20, lenet_epochs=10, n_attack=1000,
        pgd_steps=100, pgd_restarts=5, boundary_steps=5000, hsja_steps=32, gaussian_draws=100,
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


def setup(notebook: str, profile: str, seed: int = 0, device: str = "auto", retrain: bool = False
          ) -> tuple[Profile, str]:
    """First cell of every notebook: validate the papermill parameters, seed, pick the device."""
    import torch

    prof = get(notebook, profile)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(retrain, bool):  # "yes" or "False" as a string would silently recompute
        raise ValueError(f"retrain must be True or False, got {retrain!r}")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    return prof, dev


# --- per-paper profiles: each paper notebook defines its own dataclass and registers it ---------
# (dam, rbfi, bang, abs, mfbm: appended at the end of this file by their notebooks' work)


# --- bang --------------------------------------------------------------------------------------

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


register("bang", {
    "smoke": BangProfile(
        "smoke", "bang", n_train=2000, iterations=60, table_rows=("R0", "B1"), n_attack=40,
        grid_betas=(1.0, 1.6), grid_epsilons=(0.78, 0.84), grid_iterations=30, grid_n_acc=500, grid_n_attack=20,
        snapshot_every=20, noise_pool=400, noise_per_class=2, noise_draws=4, noise_sigmas=(50.0, 100.0),
        beyond_n=10, pgd_steps=5, pgd_restarts=1, linf_grid=(0.1, 0.2, 0.3), l2_grid=(1.0, 2.0, 4.0), boundary_n=4,
        boundary_steps=20,
        cifar_iterations=20, cifar_rows=("R0", "B0"), cifar_grid_betas=(), cifar_grid_epsilons=(),
        cifar_n_attack=20, cifar_snapshot_every=10, cifar_noise_per_class=2, cifar_noise_sigmas=(20.0, 40.0),
    ),
    "quick": BangProfile(
        "quick", "bang", iterations=2000, table_rows=("R0", "B1"), n_attack=500,
        grid_betas=(1.0, 1.3, 1.6), grid_epsilons=(0.78, 0.81, 0.84), grid_iterations=500, grid_n_acc=5000,
        grid_n_attack=150, snapshot_every=400, noise_pool=2000, noise_per_class=10, noise_draws=30,
        noise_sigmas=(20.0, 40.0, 60.0, 80.0, 100.0), beyond_n=100, pgd_steps=20, pgd_restarts=1,
        linf_grid=(0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5),
        l2_grid=(0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0), boundary_n=20, boundary_steps=1500,
        cifar_iterations=4000, cifar_rows=("R0", "B0"), cifar_grid_betas=(), cifar_grid_epsilons=(),
        cifar_n_attack=1000, cifar_noise_per_class=10,
        cifar_noise_sigmas=(8.0, 16.0, 24.0, 32.0, 40.0),
    ),
    # Estimated 3-5 H100 minutes (not measured: op counts + launch overhead): Table 1 (8 LeNets in one
    # stack, 10k iterations) ~20 s, noise (40 snapshots x 1000 images x 100 draws x 10 sigmas) ~20 s,
    # FGS/HC1 on all 10k test images + PASS (ECC on every CPU core) ~40 s, the 7 x 7 grid (every
    # other point of the paper's 13 x 13, 10k iterations, attacks on 1000 images) ~60-90 s, beyond
    # (1000 images, Boundary on 200) ~40 s. Not covered: the full 13 x 13 grid; CIFAR-10 (no download).
    "paper": BangProfile("paper", "bang"),
})


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
    tune_grid: tuple[tuple[float, ...], ...] = ((40.0, 75.0, 150.0, 300.0), (40.0, 75.0, 150.0, 300.0),
                                                (300.0, 400.0, 540.0), (250.0, 350.0, 500.0))
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


register("dam", {
    "smoke": DamProfile(
        "smoke", "dam", n_values=(2, 20), K=16, ms=(30, 30), temperatures=(75.0, 300.0),
        temperature_ramp=(1.0, 1.0), init_means=(0.0, -0.3), epochs=1, n_train=1000, n_eval_during_training=200,
        tune_grid=((300.0,), (300.0,)), tune_epochs_offline=1, n_val=500,
        mlp_epochs=1, n_clean=500, confidence_edges=(0.1, 0.5, 1.0), min_bin_count=1,
        rubbish_per_class=2, rubbish_steps=20, n_triplets=2, boundary_max_steps=30, trajectory_steps=30,
        n_transfer=20, n_fgsm=50, fgsm_eps=(0.0, 0.2, 0.3, 0.5), whitebox_n=(20,), n_whitebox=8,
        pgd_steps=3, pgd_restarts=1, n_boundary_attack=2, boundary_attack_steps=10, hsja_steps=1, noise_draws=1,
        attack_batch=250,
    ),
    "quick": DamProfile(
        "quick", "dam", K=100, epochs=12, n_eval_during_training=1000, mlp_epochs=5,
        rubbish_per_class=20, rubbish_steps=300, n_transfer=500, n_fgsm=1000,
        fgsm_eps=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5), n_whitebox=200, pgd_steps=40, pgd_restarts=1,
        n_boundary_attack=32, boundary_attack_steps=500, hsja_steps=0, noise_draws=10, attack_batch=500,
    ),
    "paper": DamProfile(
        "paper", "dam", tune_epochs=15,
        tune_grid=((150.0, 300.0, 600.0), (100.0, 200.0, 400.0), (300.0, 400.0, 540.0),
                   (300.0, 400.0, 540.0)),
    ),
})


# --- rbfi --------------------------------------------------------------------------------------

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


register("rbfi", {
    "smoke": RbfiProfile(
        "smoke", "rbfi", n_train=1000, hidden=(16, 16), andor="^v^", epochs=1, runs_rbfi=1, runs_base=1,
        n_test=300, n_attack=40, eps_grid=(0.1, 0.3), ifgsm_steps=3, n_pgd=10, pgd_steps=3, pgd_restarts=1,
        pgd_eps=(0.1, 0.3), attack_batch=250, adv_epochs=1, adv_steps=2, adv_n_train=500,
        kinds_widths=(8,), kinds_runs=1, kinds_epochs=1, kinds_n_train=500, relu_lambdas=(0.0, 1.0),
        rbfi_lambda=1e-3, n_fig5=10, deep_width=8, deep_epochs=1, deep_n_train=500,
        boundary_steps=20, n_boundary=5, transfer_steps=3,
    ),
    "quick": RbfiProfile(
        "quick", "rbfi", n_train=60000, hidden=(64, 64), andor="^v^", epochs=3, runs_rbfi=2, runs_base=2,
        n_test=None, n_attack=1000, ifgsm_steps=10, n_pgd=200, pgd_steps=50, pgd_restarts=2,
        pgd_eps=(0.1, 0.2, 0.3, 0.4, 0.5), attack_batch=500, adv_epochs=2, adv_steps=5, adv_n_train=20000,
        kinds_widths=(16, 48), kinds_runs=2, kinds_epochs=2, kinds_n_train=10000,
        relu_lambdas=(0.0, 1e-3, 1e-2, 1e-1), rbfi_lambda=1e-3, n_fig5=100, deep_width=64,
        deep_epochs=3, deep_n_train=30000, boundary_steps=500, n_boundary=200, transfer_steps=20,
    ),
    # The paper's networks, recipes and epochs (512-512-512-10, 30 epochs, 60,000 images, 10,000
    # attacked images, I-FGSM 10 steps, PGD 100 AdaDelta steps), trimmed towards 5 H100 minutes:
    # 2 seeds per network (paper 5 RBFI / 10 ReLU, sigmoid), PGD on 500 images x 2 restarts at 5
    # epsilons (paper 5,000 x 20 at 10), adversarial training for 10 epochs on 30,000 images with
    # 10-step PGD (paper: 60,000 images, 100 steps), Table 2 at widths 64 and 256 for 3 epochs (the
    # paper's widths are not in its text), 4 lambdas. About 375,000 training steps at batch 100.
    "paper": RbfiProfile(
        "paper", "rbfi", runs_rbfi=2, runs_base=2, n_pgd=500, pgd_restarts=2, pgd_eps=(0.1, 0.2, 0.3, 0.4, 0.5),
        adv_steps=10, adv_n_train=30000, kinds_widths=(64, 256), kinds_runs=2, kinds_epochs=3,
        relu_lambdas=(0.0, 1e-3, 1e-2, 1e-1), n_fig5=500, boundary_steps=2000,
    ),
})


# --- abs (Schott et al., analysis by synthesis) ------------------------------------------------

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


register("abs", {
    "smoke": AbsProfile(
        "smoke", "abs", vae_per_class=100, vae_epochs=2, vae_anneal_epochs=1.0, vae_batch_rows=10, vae_lr=3e-3,
        n_samples=40, abs_steps=2, cnn_train=600, cnn_epochs=1, cnn_lr=3e-3, sub_train=600, sub_epochs=1, madry_train=200,
        madry_epochs=1, madry_pgd_steps=1, madry_from_cnn=True, nn_train=500, n_clean=12, n_clean_baselines=200,
        n_attack=4, n_show=3, l2_grid=(0.5, 1.5, 3.0), linf_grid=(0.1, 0.3), l2_grid_abs=(1.0, 3.0),
        linf_grid_abs=(0.1, 0.3), pgd_steps=2, pgd_steps_abs=1, gaussian_draws=1, gaussian_draws_abs=1,
        line_grid=4, line_bisect=2, boundary_steps=4, boundary_steps_abs=2, ld_coarse=3, ld_bisect=1,
        l0_models=("CNN",), salt_pepper_steps=20, distal_starts=2, distal_steps=2, distal_lr=0.1, n_bound=4,
    ),
    "quick": AbsProfile(
        "quick", "abs", vae_per_class=500, vae_epochs=5, vae_anneal_epochs=3.0, vae_batch_rows=32, vae_lr=3e-3,
        n_samples=800, abs_steps=10, cnn_train=40000, cnn_epochs=1, cnn_lr=1e-3, cnn_batch=32, sub_train=10000,
        sub_epochs=1, madry_train=4000, madry_epochs=1, madry_pgd_steps=3, madry_ramp=1.0, madry_from_cnn=True,
        nn_train=10000, n_clean=100, n_clean_baselines=2000, n_attack=16,
        l2_grid=(0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0), linf_grid=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5),
        l2_grid_abs=(1.5, 3.0), linf_grid_abs=(0.1, 0.3), pgd_steps=10, pgd_steps_abs=3, gaussian_draws=5,
        gaussian_draws_abs=1, line_grid=8, line_bisect=3, boundary_steps=0, boundary_steps_abs=0,
        ld_coarse=11, ld_bisect=3, salt_pepper_steps=100, distal_starts=10, distal_steps=20, distal_lr=0.05,
        n_bound=50,
    ),
    # About 5 H100 minutes (estimated from op counts: ABS inference is launch-bound, ~30 ms per
    # call of 50 steps plus ~0.4 ms per image); every (model, attack) is a separate artifact, so an
    # interrupted run resumes. Not covered: L0 attacks on ABS / binary ABS (l0_models).
    "paper": AbsProfile("paper", "abs", madry_epochs=6, n_attack=100, pgd_steps=40),
})


# --- mfbm (mean-field Boltzmann networks, anonymous ICLR 2019 submission) -----------------------

@dataclass(frozen=True)
class MfbmProfile(Profile):
    # App. D / E: the 16-unit machine (5 visible + 11 hidden), full fidelity in every profile
    small_steps: int = 300  # Adam steps on the mean-field D (the paper gives no schedule: M12)
    small_lr: float = 0.002
    small_log_every: int = 2  # Fig. 7 points (exact D by enumerating 2^16 states at each)
    small_noise: int = 1000  # noise draws per visible state (App. E: 1000)
    small_eps: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
    # stage 1: 16 visible + 32 hidden on the most frequent 4x4 patterns (one batch)
    pattern_images: int | None = None  # training images the patch statistics use (None: all 60,000)
    n_patterns: int = 679
    free_iters: int = 100  # free-phase iterations per order (paper: 100; early stop when converged)
    stage1_steps: int = 300
    stage1_lr: float = 0.002
    # stage 2: 64 visible + 4 x 32 sub-machine + n_top top units on 8x8 patches (0 steps: the
    # stage-1 machine itself is the feature layer, a 4x4 conv with 32 channels: the quick version)
    stage2_steps: int = 0
    stage2_examples: int = 600_000  # the paper's "approximately 600000 examples" (M4: a sample)
    stage2_batch: int = 10_000
    stage2_lr: float = 0.001
    n_top: int = 128
    # the RBM reference layer (J_h = 0): 16/32 on 4x4 patterns (quick) or 64/128 on 8x8 (paper)
    rbm_steps: int = 300
    rbm_lr: float = 0.002
    # pre-training checkpoints (update counts of the feature machine) for Figs. 3 and 4; the last
    # one is the network of Table 1
    checkpoints: tuple[int, ...] = (25, 100, 300)
    feature_iters: int = 20  # unrolled clamped iterations (paper: 20)
    # classifier on the frozen features, LeNet reference (Caffe LeNet, robustlib.models.baselines)
    n_train: int | None = 4000  # training images (None: all 60,000)
    clf_epochs: int = 3
    clf_batch: int = 64
    clf_lr: float = 2e-3
    lenet_epochs: int = 3  # as many epochs as the classifiers on the features
    n_clean: int | None = 1000  # test images for the clean error (None: all 10,000)
    # Fig. 4: noise rejection of the feature machine
    noise_patterns: int = 200  # training-set patterns and as many random patterns
    noise_draws: int = 200  # noise draws per pattern
    noise_eps: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8)
    # attacks on the first n_attack test images (Fig. 3 per checkpoint; Table 1 on the last)
    n_attack: int = 100
    grad_step: float = 0.2  # L2 step of the iterative gradient attack (M9)
    grad_max_steps: int = 60
    grad_refine: int = 6  # bisection steps on the last segment (resolution grad_step / 2^refine)
    boundary_images: int = 10  # Boundary attack (1200 iterations, spherical step 0.1 in the paper)
    boundary_steps: int = 300
    gaussian_draws: int = 1  # Gaussian-noise directions per image (line search along each)
    line_grid: int = 24  # line-search grid points (Gaussian noise, transfer)
    transfer_eps: float = 2.0  # L2 size of the PGD perturbation computed on LeNet (its direction is used)
    surrogate_iters: int = 5  # "beyond": gradients through a 5-iteration unrolling
    distill_epochs: int = 0  # distilled network (section 4); 0: not run
    distill_batch: int = 128


register("mfbm", {
    # every code path on tiny data: the staged 8x8 machine (a few steps), a tiny distillation
    "smoke": MfbmProfile(
        "smoke", "mfbm", small_steps=16, small_log_every=4, small_noise=20, small_eps=(0.1, 0.5),
        pattern_images=1000, n_patterns=100, free_iters=30, stage1_steps=4, stage2_steps=2, stage2_examples=2000,
        stage2_batch=500, n_top=8, rbm_steps=2, checkpoints=(0, 2), feature_iters=3, n_train=100, clf_epochs=1,
        lenet_epochs=1, n_clean=100, noise_patterns=8, noise_draws=4, noise_eps=(0.2, 0.8), n_attack=4,
        grad_step=0.5, grad_max_steps=4, grad_refine=2, boundary_images=2, boundary_steps=3, gaussian_draws=1, line_grid=6,
        surrogate_iters=2, distill_epochs=1, distill_batch=50,
    ),
    # the spec's quick version (section 8): App. D/E exactly; the 4x4 machine as a 4x4 conv layer
    # (32x25x25) at three pre-training checkpoints (25, 100, 300 steps); 4,000 training images;
    # 100 attacked images (Boundary: the first 10)
    "quick": MfbmProfile("quick", "mfbm"),
    # the paper's sizes: staged 64 + 256 machine, 60,000 training images, 1,000 attacked images
    # (~6 H100 minutes estimated, not measured: no paper-profile artifacts are committed); the reductions
    # (2,000 noise draws vs 10,000, Boundary on 500 of the 1,000 images, 3 classifier epochs) are listed
    # in the notebook
    "paper": MfbmProfile(
        "paper", "mfbm", stage1_steps=400, stage2_steps=600, stage2_lr=0.001, rbm_steps=600,
        checkpoints=(25, 100, 250, 600), n_train=None, clf_epochs=3, clf_batch=128, clf_lr=1e-3, lenet_epochs=3,
        n_clean=None,
        noise_patterns=1000, noise_draws=2000, noise_eps=(0.1, 0.2, 0.4, 0.8), n_attack=1000, grad_step=0.1,
        grad_max_steps=150, boundary_images=500, boundary_steps=1200, gaussian_draws=10, line_grid=32,
        distill_epochs=10,
    ),
})
