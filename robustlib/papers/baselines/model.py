"""Baseline classifiers shared by the notebooks.

* ``MLP``: 784-512-512-512-10 with ReLU or sigmoid (the RBFI paper's comparison networks).
* ``LeNet``: Caffe's ``examples/mnist`` LeNet (BANG's model, MFBM's reference), optionally with the
  dropout layer the BANG paper adds after ReLU(ip1).
* ``NearestNeighbour``: class score = minus the L2 distance to the nearest training image of that
  class (the ABS paper's NN baseline); differentiable almost everywhere, batched.
* ``SoftNearestNeighbour``: its soft-minimum relaxation (a temperature), the surrogate the
  yardstick's gradient attacks differentiate.

Every model takes images (N, 1, 28, 28) in [0, 1] and returns class scores (N, 10). The three
networks are trained by one recipe (Adam, learning rate 1e-3, cross-entropy; ``trained``), keyed in
the store by ``ModelKey``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F

if TYPE_CHECKING:
    from ...experiment import Experiment


class MLP(nn.Module):
    """Fully connected network on the flattened image; ``activation`` is "relu" or "sigmoid"."""

    def __init__(
        self,
        hidden: tuple[int, ...] = (512, 512, 512),
        activation: str = "relu",
        in_features: int = 784,
        classes: int = 10,
    ):
        super().__init__()
        if activation not in ("relu", "sigmoid"):
            raise ValueError(f"unknown activation {activation!r}; valid: 'relu', 'sigmoid'")
        sizes = (in_features, *hidden)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(sizes[-1], classes)
        self.act = torch.relu if activation == "relu" else torch.sigmoid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)  # (N, 784)
        for layer in self.hidden:
            h = self.act(layer(h))
        return self.out(h)  # logits (N, 10)


def _caffe_xavier_(layer: nn.Module) -> None:
    """Caffe's "xavier" filler: U(-a, a) with a = sqrt(3 / fan_in); biases 0."""
    fan_in = layer.weight[0].numel()
    bound = math.sqrt(3.0 / fan_in)
    nn.init.uniform_(layer.weight, -bound, bound)
    nn.init.zeros_(layer.bias)


class LeNet(nn.Module):
    """Caffe LeNet: conv 20@5x5 -> pool -> conv 50@5x5 -> pool -> ip 500 -> ReLU -> ip 10.

    Shapes: 28 -> 24 -> 12 -> 8 -> 4, ip1 input 50*4*4 = 800. Caffe feeds raw grey levels scaled by
    1/256; our inputs are x = level/255, so the model multiplies by 255/256 to see what Caffe sees.
    ``dropout``: the BANG paper's added Dropout (assumed after ReLU(ip1), ratio 0.5).
    """

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.ip1 = nn.Linear(800, 500)
        self.ip2 = nn.Linear(500, 10)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        for layer in (self.conv1, self.conv2, self.ip1, self.ip2):
            _caffe_xavier_(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x * (255.0 / 256.0)  # Caffe's scale 0.00390625 on 0..255 grey levels
        h = F.max_pool2d(self.conv1(h), 2, 2)  # (N, 20, 12, 12)
        h = F.max_pool2d(self.conv2(h), 2, 2)  # (N, 50, 4, 4)
        h = self.dropout(F.relu(self.ip1(h.flatten(1))))  # (N, 500)
        return self.ip2(h)  # (N, 10)

    def bias_parameters(self) -> list[nn.Parameter]:
        return [m.bias for m in (self.conv1, self.conv2, self.ip1, self.ip2)]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [m.weight for m in (self.conv1, self.conv2, self.ip1, self.ip2)]


class NearestNeighbour(nn.Module):
    """Score of class c = -min_j ||x - t_j||_2 over training images t_j of class c.

    The training set is stored sorted by class, so each class is one contiguous block of the
    (N, M) distance matrix; ``chunk`` bounds the memory of that matrix.
    """

    def __init__(self, train_x: torch.Tensor, train_y: torch.Tensor, classes: int = 10, chunk: int = 8192):
        super().__init__()
        order = torch.argsort(train_y, stable=True)
        flat = train_x[order].flatten(1).to(torch.float32)  # (M, D)
        self.register_buffer("train_flat", flat)
        self.register_buffer("train_sq", (flat * flat).sum(1))  # (M,)
        counts = torch.bincount(train_y, minlength=classes)
        if (counts == 0).any():
            raise ValueError("every class needs at least one training image")
        self.bounds = [0, *torch.cumsum(counts, 0).tolist()]
        self.chunk = chunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x.flatten(1).to(self.train_flat.dtype)  # (N, D)
        q_sq = (q * q).sum(1, keepdim=True)  # (N, 1)
        scores = []
        for c in range(len(self.bounds) - 1):
            best = None
            for s in range(self.bounds[c], self.bounds[c + 1], self.chunk):
                e = min(s + self.chunk, self.bounds[c + 1])
                d2 = q_sq + self.train_sq[s:e][None] - 2.0 * q @ self.train_flat[s:e].T  # (N, chunk)
                m = d2.amin(1)
                best = m if best is None else torch.minimum(best, m)
            scores.append(-best.clamp_min(1e-12).sqrt())
        return torch.stack(scores, 1)  # (N, classes)


class SoftNearestNeighbour(nn.Module):
    """A differentiable stand-in for :class:`NearestNeighbour` (the gradient attacks' surrogate).

    Score of class c = T log sum_{j in c} exp(-||x - t_j||_2 / T), a soft minimum of the distances:
    it lies between -min_j ||x - t_j|| and that plus T log(n_c), and tends to nearest neighbour's
    score as T -> 0. The hard score's gradient sees one training image per class (the nearest);
    the soft one weighs every image of the class within a few T of it, so a gradient step also
    "sees" the neighbours an attack is about to meet. Shares the training images of ``nn``.
    """

    def __init__(self, nn_model: NearestNeighbour, temperature: float = 0.1):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.nn = nn_model
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nn_, t = self.nn, self.temperature
        q = x.flatten(1).to(nn_.train_flat.dtype)  # (N, D)
        q_sq = (q * q).sum(1, keepdim=True)  # (N, 1)
        scores = []
        for c in range(len(nn_.bounds) - 1):
            parts = []  # per chunk: logsumexp_j(-d_j / T), (N,)
            for s in range(nn_.bounds[c], nn_.bounds[c + 1], nn_.chunk):
                e = min(s + nn_.chunk, nn_.bounds[c + 1])
                d2 = q_sq + nn_.train_sq[s:e][None] - 2.0 * q @ nn_.train_flat[s:e].T  # (N, chunk)
                parts.append(torch.logsumexp(-d2.clamp_min(1e-12).sqrt() / t, dim=1))
            scores.append(t * torch.logsumexp(torch.stack(parts, 1), dim=1))
        return torch.stack(scores, 1)  # (N, classes)


# --- training recipes --------------------------------------------------------------------------

MODEL_KINDS = ("relu_mlp", "sigmoid_mlp", "lenet")


def build(kind: str) -> nn.Module:
    """A fresh baseline model by name."""
    if kind == "relu_mlp":
        return MLP(activation="relu")
    if kind == "sigmoid_mlp":
        return MLP(activation="sigmoid")
    if kind == "lenet":
        return LeNet()
    raise ValueError(f"unknown baseline {kind!r}; valid: {', '.join(MODEL_KINDS)}")


def recipe(kind: str, epochs: int) -> dict[str, float | int | str]:
    """The training settings of a baseline: Adam, cross-entropy."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown baseline {kind!r}; valid: {', '.join(MODEL_KINDS)}")
    batch = 64 if kind == "lenet" else 100
    return {"kind": kind, "optimizer": "adam", "lr": 1e-3, "batch_size": batch, "epochs": epochs}


@dataclass(frozen=True)
class ModelKey:
    """What identifies a trained baseline in the store: its recipe and the training-set size.

    The store hashes ``asdict(key)``, which is the dict ``{**recipe(kind, epochs), "n_train": n}``
    the stored networks were always keyed by.
    """

    kind: str
    optimizer: str
    lr: float
    batch_size: int
    epochs: int
    n_train: int

    @classmethod
    def of(cls, kind: str, epochs: int, n_train: int) -> ModelKey:
        return cls(**recipe(kind, epochs), n_train=n_train)


def _fit(
    model: nn.Module,
    key: ModelKey,
    x: torch.Tensor,
    y: torch.Tensor,
    checkpoint: Path,
    *,
    seed: int,
    device: str,
    progress: bool,
) -> list[dict[str, float]]:
    """Train ``model`` in place with its recipe (Adam, cross-entropy); returns the per-epoch history."""
    from ... import train

    opt = torch.optim.Adam(model.parameters(), lr=key.lr)
    return train.fit(
        model,
        x,
        y,
        epochs=key.epochs,
        batch_size=key.batch_size,
        seed=seed,
        optimizer=opt,
        checkpoint=checkpoint,
        device=device,
        progress=progress,
        desc=key.kind,
    )


def trained(
    exp: Experiment, kind: str, epochs: int, x: torch.Tensor, y: torch.Tensor
) -> tuple[nn.Module, list[dict[str, float]]]:
    """A baseline trained with its recipe on (x, y), or loaded from ``exp``'s store (keyed by
    :class:`ModelKey` and the seed, under ``exp.paper``: any chapter can train its own copy)."""
    key = ModelKey.of(kind, epochs, len(x))
    return exp.model(
        kind,
        key,
        lambda: build(kind),
        lambda model, ckpt: _fit(model, key, x, y, ckpt, seed=exp.seed, device=exp.device, progress=exp.progress),
    )


def train_cached(
    kind: str,
    epochs: int,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    notebook: str,
    profile: str,
    seed: int = 0,
    device: str = "cpu",
    retrain: bool = False,
    progress: bool = True,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """:func:`trained` for callers without an ``Experiment``: the same key, the same store entry."""
    from ... import train

    key = ModelKey.of(kind, epochs, len(x))
    return train.cached_model(
        kind,
        key,
        lambda: build(kind),
        lambda model, ckpt: _fit(model, key, x, y, ckpt, seed=seed, device=device, progress=progress),
        notebook=notebook,
        profile=profile,
        seed=seed,
        device=device,
        retrain=retrain,
    )
