"""One small training loop for every model: seeded, resumable, with a progress bar.

Determinism: the shuffle of epoch ``e`` and the global RNG (dropout, random starts) are re-seeded
from ``(seed, e)`` at the start of every epoch, so an interrupted run resumed from its per-epoch
checkpoint takes exactly the same steps as an uninterrupted one (on the CPU: bit-identical).

Checkpoints are one safetensors file: the model and optimizer tensors, and the rest (epoch,
history, optimizer scalars) as JSON in the file's metadata, so a kill can never leave new weights
beside an old epoch number; resuming never unpickles.

Hooks cover the papers' variations without forking the loop:
``step`` replaces the whole update (DAM's normalised-momentum rule, adversarial training),
``after_step`` runs after every optimizer step (RBFI's parameter bounds), ``lr_lambda`` scales each
parameter group's initial learning rate per iteration (Caffe's "inv" policy), ``max_iterations``
stops mid-epoch (BANG: 10k iterations of batch 64).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .store import _atomic_write

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Batch:
    """What a custom ``step`` receives."""

    x: torch.Tensor  # (B, ...) inputs on the training device
    y: torch.Tensor  # (B,) labels
    iteration: int  # global step index, from 0
    epoch: int


StepFn = Callable[[torch.nn.Module, Batch, torch.optim.Optimizer | None], dict[str, float]]


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919) % (2**63 - 1)


def default_step(loss_fn: LossFn) -> StepFn:
    """zero_grad -> loss -> backward -> optimizer.step; reports loss and #correct."""

    def step(model: torch.nn.Module, batch: Batch, optimizer: torch.optim.Optimizer | None) -> dict[str, float]:
        assert optimizer is not None, "the default step needs an optimizer"
        optimizer.zero_grad(set_to_none=True)
        out = model(batch.x)
        loss = loss_fn(out, batch.y)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "correct": (out.argmax(1) == batch.y).sum().item()}

    return step


# --- checkpoints -------------------------------------------------------------------------------


def _optimizer_to_parts(optimizer: torch.optim.Optimizer | None) -> tuple[dict[str, torch.Tensor], Any]:
    if optimizer is None:
        return {}, None
    sd = optimizer.state_dict()
    tensors, state = {}, {}
    for pid, entries in sd["state"].items():
        state[str(pid)] = {}
        for k, v in entries.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim/{pid}/{k}"] = v.detach().cpu().contiguous()
                state[str(pid)][k] = {"__tensor__": f"optim/{pid}/{k}"}
            else:
                state[str(pid)][k] = v
    return tensors, {"state": state, "param_groups": sd["param_groups"]}


def _optimizer_from_parts(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: Any) -> None:
    state = {}
    for pid, entries in meta["state"].items():
        state[int(pid)] = {
            k: tensors[v["__tensor__"]] if isinstance(v, dict) and "__tensor__" in v else v for k, v in entries.items()
        }
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    epoch: int,
    history: list[dict[str, float]],
    extra: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write ``model.safetensors`` into the folder ``path``: the tensors and, in the file's own
    metadata, the epoch, history and optimizer settings, so one atomic rename commits all of it."""
    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = _optimizer_to_parts(optimizer)
    tensors.update(opt_tensors)
    for k, v in (extra or {}).items():
        tensors[f"extra/{k}"] = v.detach().cpu().contiguous()
    meta = {"epoch": epoch, "history": history, "optimizer": opt_meta}
    _atomic_write(
        path / "model.safetensors", lambda p: save_file(tensors, str(p), metadata={"state": json.dumps(meta)})
    )


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
) -> tuple[int, list[dict[str, float]], dict[str, torch.Tensor]] | None:
    """Restore in place; return (last finished epoch, history, extra tensors) or None."""
    if not (path / "model.safetensors").exists():
        return None
    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        state = (f.metadata() or {}).get("state")
    if state is None:  # a checkpoint from before the state moved into the file: not trusted
        return None
    meta = json.loads(state)
    tensors = load_file(str(path / "model.safetensors"))
    model.load_state_dict({k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")})
    if optimizer is not None and meta["optimizer"] is not None:
        _optimizer_from_parts(optimizer, tensors, meta["optimizer"])
    extra = {k[len("extra/") :]: v for k, v in tensors.items() if k.startswith("extra/")}
    return meta["epoch"], meta["history"], extra


# --- the loop ----------------------------------------------------------------------------------


def fit(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    seed: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    loss_fn: LossFn = F.cross_entropy,
    step: StepFn | None = None,
    after_step: Callable[[torch.nn.Module], None] | None = None,
    lr_lambda: Callable[[int], float] | None = None,
    max_iterations: int | None = None,
    eval_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    on_epoch_end: Callable[[int, torch.nn.Module], dict[str, float] | None] | None = None,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "train",
) -> list[dict[str, float]]:
    """Train ``model`` in place on (x, y); return the per-epoch history.

    ``checkpoint``: a folder; after each epoch the state is saved there, and a later call with the
    same folder resumes after the last finished epoch (a finished run returns its history at once).
    ``eval_data``: (x, y) evaluated after each epoch (``eval_acc`` in the history).
    ``on_epoch_end(epoch, model)``: extra metrics for the history (e.g. snapshots along training).
    """
    if epochs <= 0 or batch_size <= 0:
        raise ValueError(f"epochs ({epochs}) and batch_size ({batch_size}) must be positive")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty and of equal length, got {len(x)} and {len(y)}")
    device = torch.device(device)
    model.to(device)
    step = step or default_step(loss_fn)
    if lr_lambda is not None and optimizer is not None:
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])

    history: list[dict[str, float]] = []
    start_epoch = 0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None:
        restored = load_checkpoint(ckpt, model, optimizer)
        if restored is not None:
            start_epoch, history, _ = restored[0] + 1, restored[1], restored[2]

    n = len(x)
    per_epoch = math.ceil(n / batch_size)
    total_iters = min(epochs * per_epoch, max_iterations or epochs * per_epoch)
    epochs = math.ceil(total_iters / per_epoch)
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        torch.manual_seed(epoch_seed(seed, epoch))  # dropout, random starts: same on resume
        g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
        order = torch.randperm(n, generator=g)
        model.train()
        sums: dict[str, float] = {}
        seen = 0
        first_iter = epoch * per_epoch
        n_iters = min(per_epoch, total_iters - first_iter)
        bar = tqdm(
            range(n_iters), desc=f"{desc} {epoch + 1}/{epochs}", disable=not progress, leave=False, mininterval=1.0
        )
        for i in bar:
            it = first_iter + i
            idx = order[i * batch_size : (i + 1) * batch_size]
            batch = Batch(x[idx].to(device, non_blocking=True), y[idx].to(device, non_blocking=True), it, epoch)
            if lr_lambda is not None and optimizer is not None:
                factor = lr_lambda(it)
                for group in optimizer.param_groups:
                    group["lr"] = group["initial_lr"] * factor
            stats = step(model, batch, optimizer)
            if after_step is not None:
                after_step(model)
            seen += len(idx)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + (v if k == "correct" else v * len(idx))
            if "loss" in stats:
                bar.set_postfix(loss=f"{stats['loss']:.4f}", refresh=False)
        record = {"epoch": epoch + 1, "iterations": first_iter + n_iters, "seconds": time.perf_counter() - t0}
        for k, v in sums.items():
            record["train_acc" if k == "correct" else k] = v / seen
        if eval_data is not None:
            record["eval_acc"] = accuracy(model, *eval_data, device=device)
        if on_epoch_end is not None:
            record.update(on_epoch_end(epoch, model) or {})
        history.append(record)
        if ckpt is not None:
            save_checkpoint(ckpt, model, optimizer, epoch, history)
        if progress:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in record.items() if k not in ("epoch",))
            print(f"{desc} epoch {epoch + 1}/{epochs}: {shown}", flush=True)
    model.eval()
    return history


@torch.no_grad()
def predict(
    model: torch.nn.Module, x: torch.Tensor, *, batch_size: int = 500, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Class scores for ``x`` in eval mode, batched; returns (N, classes) on the CPU."""
    was_training = model.training
    model.eval()
    try:
        outs = [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0, 10)


def accuracy(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
) -> float:
    return (predict(model, x, batch_size=batch_size, device=device).argmax(1) == y.cpu()).float().mean().item()


def cached_model(
    name: str,
    config: dict[str, Any],
    build: Callable[[], torch.nn.Module],
    train_fn: Callable[[torch.nn.Module, Path], list[dict[str, float]]],
    *,
    notebook: str,
    profile: str,
    seed: int = 0,
    device: str | torch.device = "cpu",
    retrain: bool = False,
) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """Build a model and load its weights from the store, or train and store it.

    ``train_fn(model, checkpoint_dir)`` trains in place (resumable through the checkpoint folder,
    e.g. by passing it to :func:`fit`) and returns the history. The weights are stored as
    safetensors under ``name`` keyed by ``config`` and ``seed``; the history goes into the JSON.
    """
    from . import store

    def compute() -> dict[str, Any]:
        torch.manual_seed(seed)
        model = build().to(device)
        ckpt = store.checkpoint_dir(name, config, notebook=notebook, profile=profile, seed=seed)
        if retrain and ckpt.exists():
            import shutil

            shutil.rmtree(ckpt)
        history = train_fn(model, ckpt)
        return {"state": dict(model.state_dict()), "history": history}

    result = store.cached(
        name, config, compute, notebook=notebook, profile=profile, seed=seed, device=device, retrain=retrain
    )
    model = build()
    model.load_state_dict(result["state"])
    return model.to(device).eval(), result["history"]
