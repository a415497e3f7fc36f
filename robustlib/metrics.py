"""Distances, robustness summaries and confidence.

Conventions: images in [0, 1]; a per-image minimal adversarial distance is 0 for an image the model
already misclassifies and ``inf`` where no attack found an adversarial. "Accuracy at eps" is the
fraction of images whose minimal distance is larger than eps; the "median" is the distance at which
accuracy falls to 50 % (the ABS paper's convention).
"""

from __future__ import annotations

import math

import torch

NORMS = ("linf", "l2", "l0")


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
    return norm


def distance(a: torch.Tensor, b: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-image distance between two batches (N, ...) -> (N,), in float64.

    L0 counts pixels that differ (over all channels of a pixel position it counts each value).
    """
    check_norm(norm)
    d = (a.detach().to(torch.float64) - b.detach().to(torch.float64)).flatten(1)
    if norm == "linf":
        return d.abs().amax(1) if d.shape[1] else torch.zeros(len(d), dtype=torch.float64)
    if norm == "l2":
        return d.norm(dim=1)
    return (d.abs() > 1e-12).sum(1).to(torch.float64)


def accuracy_at(distances: torch.Tensor, eps: float) -> float:
    """Fraction of images that stay correct for every perturbation of size <= eps."""
    return (distances > eps).to(torch.float64).mean().item()


def accuracy_curve(distances: torch.Tensor, epsilons: torch.Tensor | list[float]) -> torch.Tensor:
    eps = torch.as_tensor(epsilons, dtype=torch.float64)
    return (distances.to(torch.float64)[None, :] > eps[:, None]).to(torch.float64).mean(1)


def median_distance(distances: torch.Tensor) -> float:
    """The distance at which accuracy falls to 50 %: the median of the per-image distances
    (0 for misclassified images, inf where no adversarial was found)."""
    if distances.numel() == 0:
        return math.nan
    s, _ = torch.sort(distances.to(torch.float64))
    n = len(s)
    if n % 2:
        return s[n // 2].item()
    lo, hi = s[n // 2 - 1].item(), s[n // 2].item()
    return hi if math.isinf(hi) else (lo + hi) / 2


def mean_finite(distances: torch.Tensor) -> float:
    """Mean over the images that have a finite (found) adversarial distance."""
    d = distances[torch.isfinite(distances)]
    return d.to(torch.float64).mean().item() if d.numel() else math.nan


def softmax_confidence(scores: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """max_c softmax(beta * scores)_c per image (DAM: beta = beta_sm on the outputs Y)."""
    return torch.softmax(beta * scores.to(torch.float64), dim=1).amax(1)


# --- PASS: perceptual adversarial similarity score (Rozsa, Rudd & Boult 2016) ------------------
# PASS(x_adv, x) = SSIM(psi(x_adv, x), x): psi aligns x_adv onto x with the homography that maximises
# the Enhanced Correlation Coefficient (Evangelidis & Psarakis 2008; OpenCV findTransformECC), so a
# small shift or rotation that a human would not notice costs little, unlike in L2/Linf. SSIM is
# Wang et al. (2004): 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, on grey levels 0..255.
# Added by the BANG notebook; any notebook may use it.

ECC_CRITERIA = (100, 1e-5)  # (max iterations, minimal increment of the correlation coefficient)


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(r * r) / (2 * sigma * sigma))
    return w / w.sum()  # (size,)


def ssim(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    data_range: float = 255.0,
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Mean SSIM per image of two batches (N, C, H, W) or (N, H, W) -> (N,) float64.

    Gaussian-weighted local statistics with population (co)variances, computed only where the
    whole window fits ("valid"), averaged over positions and channels: the same numbers as
    ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255)``.
    """
    if a.shape != b.shape:
        raise ValueError(f"ssim needs two batches of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim == 3:
        a, b = a[:, None], b[:, None]
    if a.ndim != 4 or min(a.shape[-2:]) < window:
        raise ValueError(f"ssim needs (N, C, H, W) images of at least {window}x{window}, got {tuple(a.shape)}")
    n, c, h, w = a.shape
    a = a.detach().to(torch.float64).reshape(n * c, 1, h, w)
    b = b.detach().to(torch.float64).reshape(n * c, 1, h, w)
    g = _gaussian_window(window, sigma).to(a.device)

    def filt(t: torch.Tensor) -> torch.Tensor:  # separable Gaussian, valid positions only
        t = torch.nn.functional.conv2d(t, g.reshape(1, 1, -1, 1))
        return torch.nn.functional.conv2d(t, g.reshape(1, 1, 1, -1))

    mu_a, mu_b = filt(a), filt(b)
    s_aa = filt(a * a) - mu_a * mu_a
    s_bb = filt(b * b) - mu_b * mu_b
    s_ab = filt(a * b) - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    smap = ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2))
    return smap.reshape(n, -1).mean(1).cpu()


def ecc_align(moving, template, *, criteria: tuple[int, float] = ECC_CRITERIA, gauss_filter: int = 5):
    """Warp ``moving`` onto ``template`` (H, W) or (C, H, W) numpy arrays on 0..255 with the
    ECC-optimal homography; returns (aligned float32 array, 3x3 warp, converged).

    ECC runs on the grey image (channel mean); the warp is applied to every channel. When ECC
    fails (OpenCV raises for uncorrelated images or on divergence) the identity is used.
    ``gauss_filter``: OpenCV's Gaussian pre-smoothing of both images (its default, 5); without it
    (1) ECC fails on ~10 % of one-pixel shifts of MNIST digits instead of ~1 %.
    """
    import cv2
    import numpy as np

    mov = np.asarray(moving, dtype=np.float32)
    tpl = np.asarray(template, dtype=np.float32)
    if mov.shape != tpl.shape or mov.ndim not in (2, 3):
        raise ValueError(f"ecc_align needs two (H, W) or (C, H, W) arrays of one shape, got {mov.shape}, {tpl.shape}")
    grey_m = mov if mov.ndim == 2 else mov.mean(0)
    grey_t = tpl if tpl.ndim == 2 else tpl.mean(0)
    warp = np.eye(3, dtype=np.float32)
    ok = True
    try:
        term = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, int(criteria[0]), float(criteria[1]))
        _, warp = cv2.findTransformECC(grey_t, grey_m, warp, cv2.MOTION_HOMOGRAPHY, term, None, gauss_filter)
    except cv2.error:
        ok, warp = False, np.eye(3, dtype=np.float32)
    if not np.all(np.isfinite(warp)):
        ok, warp = False, np.eye(3, dtype=np.float32)
    h, w = grey_t.shape
    flags = cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP  # aligned(p) = moving(warp p) ~ template(p)
    if mov.ndim == 2:
        aligned = cv2.warpPerspective(mov, warp, (w, h), flags=flags)
    else:
        aligned = np.stack([cv2.warpPerspective(ch, warp, (w, h), flags=flags) for ch in mov])
    return aligned.astype(np.float32), warp, ok


def _align_chunk(args):
    """Worker: ECC-align a chunk of (moving, template) pairs (used by ``pass_scores``)."""
    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    movs, tpls = args
    out = np.empty_like(movs)
    ok = np.empty(len(movs), dtype=bool)
    for i in range(len(movs)):
        out[i], _, ok[i] = ecc_align(movs[i], tpls[i])
    return out, ok


_ECC_POOLS: dict = {}  # worker count -> ProcessPoolExecutor (started once per process)


def _shutdown_ecc_pools() -> None:
    for pool in _ECC_POOLS.values():
        pool.shutdown(wait=True, cancel_futures=True)
    _ECC_POOLS.clear()


def pass_scores(
    adversarial: torch.Tensor, original: torch.Tensor, *, workers: int | None = None, return_converged: bool = False
):
    """PASS of each pair of images (N, C, H, W) in [0, 1] -> (N,) float64 (1 = identical).

    Images are compared on grey levels 0..255. ``workers``: processes for the ECC alignments
    (default: one per CPU core for large batches, else in-process).
    """
    import os

    import numpy as np

    if adversarial.shape != original.shape or adversarial.ndim != 4:
        raise ValueError(
            f"pass_scores needs two (N, C, H, W) batches of one shape, got "
            f"{tuple(adversarial.shape)} and {tuple(original.shape)}"
        )
    n = len(adversarial)
    if n == 0:
        empty = torch.zeros(0, dtype=torch.float64)
        return (empty, torch.zeros(0, dtype=torch.bool)) if return_converged else empty
    mov = (adversarial.detach().cpu().to(torch.float32) * 255).numpy()
    tpl = (original.detach().cpu().to(torch.float32) * 255).numpy()
    if mov.shape[1] == 1:
        mov, tpl = mov[:, 0], tpl[:, 0]
    cores = os.cpu_count() or 1
    workers = workers if workers is not None else (cores if n >= 2000 and cores > 2 else 1)
    if workers <= 1:
        aligned, ok = _align_chunk((mov, tpl))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        bounds = np.linspace(0, n, workers * 4 + 1).astype(int)
        chunks = [(mov[s:e], tpl[s:e]) for s, e in zip(bounds[:-1], bounds[1:]) if e > s]
        if workers not in _ECC_POOLS:  # kept for the process: starting workers costs seconds each time
            # forkserver: clean worker processes even when the caller holds CUDA or OpenMP threads
            # (a plain fork could deadlock); if the pool cannot start (e.g. a script read from
            # stdin), the except below computes in this process instead
            method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
            if not _ECC_POOLS:
                import atexit

                atexit.register(_shutdown_ecc_pools)
            _ECC_POOLS[workers] = ProcessPoolExecutor(workers, mp_context=mp.get_context(method))
        try:
            parts = list(_ECC_POOLS[workers].map(_align_chunk, chunks))
        except Exception:  # a broken pool (e.g. a killed worker): do the work here instead
            _ECC_POOLS.pop(workers, None)
            parts = [_align_chunk(c) for c in chunks]
        aligned = np.concatenate([p[0] for p in parts])
        ok = np.concatenate([p[1] for p in parts])
    scores = ssim(torch.from_numpy(aligned), torch.from_numpy(tpl))
    return (scores, torch.from_numpy(ok)) if return_converged else scores
