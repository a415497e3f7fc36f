"""Where the project keeps its files.

Everything is resolved from the repository root (the folder above this package), so a notebook
executed from any working directory (papermill, Jupyter Book) finds the same data and artifacts.
``ROBUSTLIB_HOME`` overrides the root; ``ROBUSTLIB_ARTIFACTS`` overrides the artifact folder (the
tests point it at a temporary folder so they never write into the committed store).
"""

from __future__ import annotations

import os
from pathlib import Path


def root() -> Path:
    """The repository root."""
    env = os.environ.get("ROBUSTLIB_HOME")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    return root() / "data"


def artifacts_dir() -> Path:
    env = os.environ.get("ROBUSTLIB_ARTIFACTS")
    return Path(env).resolve() if env else data_dir() / "artifacts"


def checkpoints_dir() -> Path:
    """Per-epoch training checkpoints: large, git-ignored, only needed to resume."""
    env = os.environ.get("ROBUSTLIB_CHECKPOINTS")
    return Path(env).resolve() if env else data_dir() / "checkpoints"


def notebooks_dir() -> Path:
    return root() / "notebooks"


def build_dir() -> Path:
    return root() / "_build"


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (MNIST checks and the artifact MANIFEST)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
