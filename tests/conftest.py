"""Shared fixtures. Unit tests write artifacts into a temporary store (ROBUSTLIB_ARTIFACTS), never
into the committed one; notebook and book tests use the real store's git-ignored smoke folder."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def tmp_store(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTLIB_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ROBUSTLIB_CHECKPOINTS", str(tmp_path / "checkpoints"))
    return tmp_path / "artifacts"


class Linear2(torch.nn.Module):
    """A linear classifier z = W x + b on flattened images: minimal adversarial distances are
    known in closed form, so attacks can be checked against them."""

    def __init__(self, classes: int = 2, seed: int = 0, d: int = 784):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.randn(classes, d, generator=g) / d**0.5)
        self.bias = torch.nn.Parameter(torch.zeros(classes))

    def forward(self, x):
        return x.flatten(1) @ self.weight.T + self.bias


@pytest.fixture
def linear_problem():
    """A 2-class linear model and 24 images it classifies correctly, with moderate margins."""
    from robustlib import data

    model = Linear2().eval()
    x, _ = data.mnist("test")
    x = x[:400]
    with torch.no_grad():
        z = model(x)
    y = z.argmax(1)  # labels = the model's own predictions: every image starts correct
    return model, x[:24].clone(), y[:24].clone()


@pytest.fixture(scope="session")
def small_mlp():
    """A small MLP trained for a moment on 2,000 MNIST images (about 85 % accurate)."""
    from robustlib import data, train
    from robustlib.papers.baselines.model import MLP

    torch.manual_seed(0)
    x, y = data.mnist("train")
    m = MLP(hidden=(64,))
    train.fit(
        m, x[:2000], y[:2000], epochs=2, batch_size=50, optimizer=torch.optim.Adam(m.parameters(), 3e-3), progress=False
    )
    return m.eval()


class Counting(torch.nn.Module):
    """The model, counting the images it is asked about (``.images``)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.images = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += len(x)
        return self.model(x)


@pytest.fixture
def counting():
    """``counting(model)``: the model wrapped to count the images an attack asks it about."""
    return Counting
