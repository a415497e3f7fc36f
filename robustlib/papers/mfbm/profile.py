"""The ``mfbm`` chapter's profiles: every size, epoch and step count it uses, per profile.

``PROFILES[name]`` for ``smoke`` (tests), ``quick`` (the book) and ``paper`` (the paper's settings).
Results are keyed by the whole profile (``asdict``), so a changed budget never reuses a stale result.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...profiles import Profile


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


PROFILES = {
    # every code path on tiny data: the staged 8x8 machine (a few steps), a tiny distillation
    "smoke": MfbmProfile(
        "smoke",
        "mfbm",
        small_steps=16,
        small_log_every=4,
        small_noise=20,
        small_eps=(0.1, 0.5),
        pattern_images=1000,
        n_patterns=100,
        free_iters=30,
        stage1_steps=4,
        stage2_steps=2,
        stage2_examples=2000,
        stage2_batch=500,
        n_top=8,
        rbm_steps=2,
        checkpoints=(0, 2),
        feature_iters=3,
        n_train=100,
        clf_epochs=1,
        lenet_epochs=1,
        n_clean=100,
        noise_patterns=8,
        noise_draws=4,
        noise_eps=(0.2, 0.8),
        n_attack=4,
        grad_step=0.5,
        grad_max_steps=4,
        grad_refine=2,
        boundary_images=2,
        boundary_steps=3,
        gaussian_draws=1,
        line_grid=6,
        surrogate_iters=2,
        distill_epochs=1,
        distill_batch=50,
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
        "paper",
        "mfbm",
        stage1_steps=400,
        stage2_steps=600,
        stage2_lr=0.001,
        rbm_steps=600,
        checkpoints=(25, 100, 250, 600),
        n_train=None,
        clf_epochs=3,
        clf_batch=128,
        clf_lr=1e-3,
        lenet_epochs=3,
        n_clean=None,
        noise_patterns=1000,
        noise_draws=2000,
        noise_eps=(0.1, 0.2, 0.4, 0.8),
        n_attack=1000,
        grad_step=0.1,
        grad_max_steps=150,
        boundary_images=500,
        boundary_steps=1200,
        gaussian_draws=10,
        line_grid=32,
        distill_epochs=10,
    ),
}
