"""RBFI networks: de Alfaro, "Neural networks with structural resistance to adversarial attacks".

An RBFI unit with centre w and per-coordinate scales u >= 0 computes (paper eq. 2)

    And:  A(x) = exp(-max_i (u_i (x_i - w_i))^2)          Or:  O(x) = 1 - A(x)     (eq. 3)

i.e. a Gaussian bump in the *infinity* norm of the scaled distance: the output depends on one input
coordinate at a time, so a perturbation of size eps in every pixel moves it as much as a
perturbation in one pixel. Networks stack And, Or or randomly mixed layers ("^", "v", "*").

Training uses pseudogradients (paper section 4.1): in the backward pass
  * exp(-z) gets the derivative -1/sqrt(1 + z) instead of -exp(-z) (eq. 9: wider basin), and
  * max_i s_i sends e^{s_i - z} to every s_i instead of 1 to the argmax only (eq. 11).
``grad_mode="true"`` switches both back to the true derivatives (Table 3; the paper's attacks).
Parameters are clamped after every optimizer step: u in [0.01, 3], w in [0, 1] (section 4.2).

This file reads top to bottom: config -> layer -> network -> baselines -> sensitivity bounds ->
losses and training -> attacks of the paper (FGSM, I-FGSM, AdaDelta PGD with the reference
code's box bug as a second attack, uniform noise), registered in ``robustlib.attacks`` as
``rbfi_pgd``, ``rbfi_pgd_reference`` and ``rbfi_noise``. The fast distance kernel is in
``kernel.py``. Images are (N, 1, 28, 28) in [0, 1] (no normalisation, as in the paper); outputs
(N, 10).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ... import attacks
from ...train import Batch, fit
from ..baselines.model import MLP
from .kernel import LargeAttractorExp, SharedFeedbackMax, scaled_linf

SQRT_2_OVER_E = math.sqrt(2.0 / math.e)  # max slope of exp(-t^2): the RBFI unit's sensitivity factor
KINDS = "^v*"  # And, Or, mixed
GRAD_MODES = ("pseudo", "true")


# --- configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RBFIConfig:
    """An RBFI (or plain RBF) network: ``hidden`` widths, one kind per layer in ``andor``."""

    hidden: tuple[int, ...] = (512, 512, 512)
    andor: str = "^v^v"  # one of ^ v * per layer, the 10-unit output layer included
    norm: str = "inf"  # "inf": RBFI units; "l2": plain RBF units (paper section 6.9)
    u_min: float = 0.01
    u_max: float = 3.0  # the paper's bound; 10 for Table 4 / Fig. 5
    w_min: float = 0.0
    w_max: float = 1.0
    u_init: tuple[float, float] = (0.2, 0.7)  # reference code: u ~ U(0.2, 0.7), then clamped
    in_features: int = 784
    classes: int = 10

    def __post_init__(self) -> None:
        if len(self.andor) != len(self.hidden) + 1 or any(c not in KINDS for c in self.andor):
            raise ValueError(
                f"andor={self.andor!r} must have one of '^', 'v', '*' per layer "
                f"({len(self.hidden) + 1} for hidden={self.hidden})"
            )
        if self.norm not in ("inf", "l2"):
            raise ValueError(f"norm={self.norm!r}; valid: 'inf', 'l2'")
        if not 0 <= self.u_min <= self.u_max or not self.w_min <= self.w_max:
            raise ValueError(f"bad bounds u in [{self.u_min}, {self.u_max}], w in [{self.w_min}, {self.w_max}]")


# --- the layer -------------------------------------------------------------------------------------


class RBFILayer(nn.Module):
    """``n_out`` RBFI units on ``n_in`` inputs. Parameters w, u: (n_out, n_in)."""

    def __init__(self, n_in: int, n_out: int, kind: str, cfg: RBFIConfig):
        super().__init__()
        self.w = nn.Parameter(torch.rand(n_out, n_in))  # centres ~ U(0, 1)
        self.u = nn.Parameter(torch.empty(n_out, n_in).uniform_(*cfg.u_init).clamp_(cfg.u_min, cfg.u_max))
        if kind == "^":
            orflag = torch.zeros(n_out)
        elif kind == "v":
            orflag = torch.ones(n_out)
        else:  # mixed: each unit And or Or at random, fixed for good (a buffer, saved with the weights)
            orflag = torch.bernoulli(torch.full((n_out,), 0.5))
        self.register_buffer("orflag", orflag)
        self.kind, self.norm = kind, cfg.norm
        self.grad_mode = "pseudo"
        self.backend = "auto"

    def distance(self, h: torch.Tensor) -> torch.Tensor:
        """z (B, n_out): squared scaled distance, infinity norm (RBFI) or 2-norm (RBF)."""
        if self.norm == "inf":
            return scaled_linf(h, self.w, self.u, self.grad_mode, self.backend)
        # sum_i u^2 (h - w)^2 = h^2 . u^2 - 2 h . (u^2 w) + sum u^2 w^2: three matmuls, no (B, m, n)
        u2 = self.u * self.u
        z = (h * h) @ u2.T - 2 * h @ (u2 * self.w).T + (u2 * self.w * self.w).sum(1)
        return z.clamp_min(0)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.distance(h)
        y = LargeAttractorExp.apply(z) if self.grad_mode == "pseudo" else torch.exp(-z)  # And unit
        return y + self.orflag * (1 - 2 * y)  # y for And (flag 0), 1 - y for Or (flag 1)

    @torch.no_grad()
    def clamp_(self, cfg: RBFIConfig) -> None:
        self.u.clamp_(cfg.u_min, cfg.u_max)
        self.w.clamp_(cfg.w_min, cfg.w_max)

    def extra_repr(self) -> str:
        return f"{self.w.shape[1]} -> {self.w.shape[0]}, kind={self.kind!r}, norm={self.norm!r}"


# --- the network -----------------------------------------------------------------------------------


class RBFINet(nn.Module):
    """Permutation-invariant MLP of RBFI layers; images (N, 1, 28, 28) in [0, 1] -> outputs (N, 10)
    in [0, 1] (trained towards one-hot targets with the square loss)."""

    def __init__(self, cfg: RBFIConfig = RBFIConfig()):
        super().__init__()
        self.cfg = cfg
        sizes = (cfg.in_features, *cfg.hidden, cfg.classes)
        self.layers = nn.ModuleList(RBFILayer(a, b, k, cfg) for a, b, k in zip(sizes[:-1], sizes[1:], cfg.andor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1).to(self.layers[0].w.dtype)  # (N, 784)
        for layer in self.layers:
            h = layer(h)
        return h

    @property
    def grad_mode(self) -> str:
        return self.layers[0].grad_mode

    def set_grad_mode(self, mode: str) -> RBFINet:
        if mode not in GRAD_MODES:
            raise ValueError(f"unknown gradient mode {mode!r}; valid: {', '.join(GRAD_MODES)}")
        for layer in self.layers:
            layer.grad_mode = mode
        return self

    def set_backend(self, backend: str) -> RBFINet:
        for layer in self.layers:
            layer.backend = backend
        return self

    def clamp_(self) -> None:
        """Enforce the parameter bounds (after every optimizer step)."""
        for layer in self.layers:
            layer.clamp_(self.cfg)


@contextlib.contextmanager
def gradient_mode(model: nn.Module, mode: str) -> Iterator[nn.Module]:
    """Temporarily switch an RBFI network's backward to ``mode`` (no-op for other models)."""
    if not isinstance(model, RBFINet):
        yield model
        return
    old = model.grad_mode
    model.set_grad_mode(mode)
    try:
        yield model
    finally:
        model.set_grad_mode(old)


class WithGradMode(nn.Module):
    """The same network (shared parameters) whose gradient is taken in ``mode``: pass it as the
    ``grad_model`` of an attack to attack through the pseudogradient while success is judged on the
    network itself (the forward pass is identical in both modes)."""

    def __init__(self, net: nn.Module, mode: str):
        super().__init__()
        self.net, self.mode = net, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with gradient_mode(self.net, self.mode):
            return self.net(x)


# --- baselines (paper section 6.2) -----------------------------------------------------------------


class SigmoidNet(nn.Module):
    """Sigmoid on every layer, the output included (trained with the square loss, like RBFI)."""

    def __init__(self, hidden: tuple[int, ...] = (512, 512, 512)):
        super().__init__()
        self.mlp = MLP(hidden, "sigmoid")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(x))


def build(kind: str, hidden: tuple[int, ...], andor: str | None = None, **rbfi: Any) -> nn.Module:
    """``kind``: "rbfi", "rbf" (2-norm units), "relu" (logits; trained with cross-entropy) or "sigmoid"."""
    if kind in ("rbfi", "rbf"):
        andor = andor or "".join("^v"[i % 2] for i in range(len(hidden) + 1))
        return RBFINet(RBFIConfig(hidden=tuple(hidden), andor=andor, norm="inf" if kind == "rbfi" else "l2", **rbfi))
    if kind == "relu":
        return MLP(tuple(hidden), "relu")
    if kind == "sigmoid":
        return SigmoidNet(tuple(hidden))
    raise ValueError(f"unknown network kind {kind!r}; valid: 'rbfi', 'rbf', 'relu', 'sigmoid'")


def kind_of(model: nn.Module) -> str:
    if isinstance(model, RBFINet):
        return "rbfi" if model.cfg.norm == "inf" else "rbf"
    if isinstance(model, SigmoidNet):
        return "sigmoid"
    if isinstance(model, MLP):
        return "relu"
    raise ValueError(f"not a network of this notebook: {type(model).__name__}")


# --- sensitivity bounds (paper section 3.2) --------------------------------------------------------
# S(f) = sup_x sup_{|x' - x|_inf <= eps} |f(x') - f(x)| / eps.


def unit_sensitivity(kind: str, w: torch.Tensor | None = None, u: torch.Tensor | None = None) -> float:
    """One unit: ReLU |w|_1 (eq. 5), sigmoid |w|_1 / 4, RBFI sqrt(2/e) max u (eq. 6), RBF sqrt(2/e) |u|_2."""
    if kind == "relu":
        return w.abs().sum().item()
    if kind == "sigmoid":
        return w.abs().sum().item() / 4
    if kind == "rbfi":
        return SQRT_2_OVER_E * u.max().item()
    if kind == "rbf":
        return SQRT_2_OVER_E * u.norm().item()
    raise ValueError(f"unknown unit kind {kind!r}; valid: 'relu', 'sigmoid', 'rbfi', 'rbf'")


def sensitivity_bound(model: nn.Module, *, differentiable: bool = False, sigmoid_quarter: bool = True) -> torch.Tensor:
    """Network bound: eq. (7) for ReLU/sigmoid, eq. (8) for RBFI, as a 0-d tensor.

    Eq. (7): s_j^(k) = sum_i |W_ji^(k)| s_i^(k-1) (times 1/4 per sigmoid layer), s^(0) = 1.
    Eq. (8): s_j^(k) = sqrt(2/e) max_i u_ji^(k) s_i^(k-1). S = max_j s_j^(K).
    ``differentiable``: for the lambda * S regulariser; RBFI maxima then use the shared-feedback
    pseudo-max (the gradient reaches every u, as in the reference code).
    ``sigmoid_quarter=False`` reproduces the reference code, which omits the 1/4 factors.
    """
    kind = kind_of(model)
    ctx = contextlib.nullcontext() if differentiable else torch.no_grad()
    with ctx:
        if kind in ("relu", "sigmoid"):
            mlp = model if kind == "relu" else model.mlp
            linears = [*mlp.hidden, mlp.out]
            s = torch.ones(linears[0].weight.shape[1], dtype=linears[0].weight.dtype, device=linears[0].weight.device)
            factor = 0.25 if (kind == "sigmoid" and sigmoid_quarter) else 1.0
            for lin in linears:
                s = factor * (lin.weight.abs() @ s)
            return s.max()
        s = torch.ones(model.cfg.in_features, dtype=model.layers[0].u.dtype, device=model.layers[0].u.device)
        pmax = SharedFeedbackMax.apply if differentiable else (lambda t: t.amax(-1))
        for layer in model.layers:
            if model.cfg.norm == "inf":
                s = SQRT_2_OVER_E * pmax(layer.u * s)  # (n_out,)
            else:
                s = SQRT_2_OVER_E * (layer.u * s).norm(dim=1)
        return pmax(s)


# --- losses ----------------------------------------------------------------------------------------


def square_loss_per_image(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sum_c (out_c - onehot_c)^2 per image (RBFI and sigmoid nets)."""
    return ((out - F.one_hot(y, out.shape[1]).to(out.dtype)) ** 2).sum(1)


def square_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return square_loss_per_image(out, y).mean()


def ce_per_image(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, y, reduction="none")


def loss_per_image(kind: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss J, per image: what the paper's attacks ascend."""
    return ce_per_image if kind == "relu" else square_loss_per_image


# --- training --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 100
    lr: float | None = None  # AdaDelta learning rate; None: 5 for RBFI/RBF, 1 for ReLU/sigmoid
    grad_mode: str = "pseudo"  # RBFI only: "true" trains with the true gradient (Table 3)
    reg_lambda: float = 0.0  # lambda * S added to the loss (Fig. 4: ReLU, Fig. 5: RBFI)
    adversarial: str | None = None  # "fgsm" | "ifgsm" | "pgd": ReLU(FGSM) ... of Fig. 3
    adv_eps: float = 0.3
    adv_steps: int = 10  # I-FGSM steps / PGD steps for the adversarial examples


def _adversarial_examples(model: nn.Module, x: torch.Tensor, y: torch.Tensor, tc: TrainConfig) -> torch.Tensor:
    loss = loss_per_image(kind_of(model))
    model.eval()
    try:
        if tc.adversarial == "fgsm":
            adv = attacks.ifgsm(model, x, y, tc.adv_eps, steps=1, loss=loss)
        elif tc.adversarial == "ifgsm":
            adv = attacks.ifgsm(model, x, y, tc.adv_eps, steps=tc.adv_steps, loss=loss)
        elif tc.adversarial == "pgd":  # Madry's adversary, correct box (the reference code trained on its buggy PGD)
            adv = attacks.madry_pgd(model, x, y, tc.adv_eps, steps=tc.adv_steps, loss=loss)
        else:
            raise ValueError(f"unknown adversarial training {tc.adversarial!r}; valid: 'fgsm', 'ifgsm', 'pgd'")
    finally:
        model.train()
    return adv.detach()


def make_step(tc: TrainConfig, kind: str):
    """One training step: loss (+ lambda S) -> AdaDelta; adversarial training takes a second step on
    the adversarial batch (the reference code: clean step, then adversarial step)."""
    loss_fn = F.cross_entropy if kind == "relu" else square_loss

    def step(model: nn.Module, batch: Batch, opt: torch.optim.Optimizer) -> dict[str, float]:
        opt.zero_grad(set_to_none=True)
        out = model(batch.x)
        loss = loss_fn(out, batch.y)
        total = loss + tc.reg_lambda * sensitivity_bound(model, differentiable=True) if tc.reg_lambda else loss
        total.backward()
        opt.step()
        if isinstance(model, RBFINet):
            model.clamp_()
        stats = {"loss": loss.item(), "correct": (out.argmax(1) == batch.y).sum().item()}
        if tc.adversarial:
            xa = _adversarial_examples(model, batch.x, batch.y, tc)
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xa), batch.y).backward()
            opt.step()
        return stats

    return step


def train(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    tc: TrainConfig,
    *,
    seed: int = 0,
    device: str = "cpu",
    checkpoint=None,
    progress: bool = False,
    desc: str = "train",
    eval_data=None,
) -> list[dict[str, float]]:
    """Train in place with AdaDelta (paper section 6.2), clamping RBFI parameters after each step."""
    kind = kind_of(model)
    if isinstance(model, RBFINet):
        model.set_grad_mode(tc.grad_mode)
    lr = tc.lr if tc.lr is not None else (5.0 if kind in ("rbfi", "rbf") else 1.0)
    opt = torch.optim.Adadelta(model.parameters(), lr=lr)
    try:
        return fit(
            model,
            x,
            y,
            epochs=tc.epochs,
            batch_size=tc.batch_size,
            seed=seed,
            optimizer=opt,
            step=make_step(tc, kind),
            checkpoint=checkpoint,
            device=device,
            progress=progress,
            desc=desc,
            eval_data=eval_data,
        )
    finally:
        if isinstance(model, RBFINet):
            model.set_grad_mode("pseudo")


# --- the paper's attacks (section 5) ---------------------------------------------------------------
# FGSM and I-FGSM are the library's ``ifgsm`` with 1 and 10 steps on the training loss J. The paper's
# PGD ascends J with AdaDelta-tuned steps (lr 1, objective -100 J) from a random start, 100 steps,
# success if any iterate is misclassified. The reference code's box has a sign bug: the lower
# bound of delta is +min(x, eps) instead of -min(x, eps), so pixels can only get brighter.
# Every attack is run through ``attacks.evaluate`` (``monotone=False``: each epsilon attacked
# independently, the paper's protocol), which re-checks each adversarial itself.


def pgd_box(x: torch.Tensor, eps: torch.Tensor, buggy: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds (lower, upper) of delta: [-min(x, eps), min(1 - x, eps)]; ``buggy``: the reference
    code's [+min(x, eps), min(1 - x, eps)]."""
    lower = torch.minimum(x, eps)
    return (lower if buggy else -lower), torch.minimum(1 - x, eps)


def clip_delta(delta: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, buggy: bool = False) -> torch.Tensor:
    lower, upper = pgd_box(x, eps, buggy)
    return torch.min(torch.max(delta, lower), upper)  # max first, then min: as the reference code


def pgd_adadelta(
    model, x, y, eps, *, steps: int = 100, restarts: int = 1, loss=None, grad_model=None, buggy: bool = False
) -> torch.Tensor:
    """The paper's PGD: AdaDelta (lr 1, rho 0.9, eps 1e-6) on delta minimising -100 J, projected
    after every step; per image the first iterate that fools ``model`` (else the last).
    ``loss`` (per image) defaults to the network's training loss J; ``grad_model`` (e.g.
    ``WithGradMode(net, "pseudo")``) supplies the gradient, ``model`` judges success."""
    e = attacks.as_eps(eps, x)
    lf = loss or loss_per_image(kind_of(model))
    gm = grad_model or model
    best = x.clone()
    done = attacks.misclassified(model, x, y)
    for _ in range(restarts):
        delta = clip_delta((torch.rand_like(x) * 2 - 1) * e, x, e, buggy).requires_grad_(True)
        opt = torch.optim.Adadelta([delta], lr=1.0, rho=0.9, eps=1e-6)
        for _ in range(steps):
            opt.zero_grad()
            with torch.enable_grad():
                (-100.0 * lf(gm(x + delta), y).sum()).backward()  # sum over images: per-image steps
            opt.step()
            with torch.no_grad():
                delta.copy_(clip_delta(delta, x, e, buggy))
                xa = x + delta
                hit = attacks.misclassified(model, xa, y) & ~done
                best[hit] = xa[hit]
                done |= hit
            if done.all():
                return best
        best[~done] = (x + delta.detach())[~done]
    return best


def paper_pgd(model, x, y, eps, *, steps: int = 100, restarts: int = 1, loss=None, grad_model=None) -> torch.Tensor:
    """``rbfi_pgd``: the paper's AdaDelta PGD with the correct box."""
    return pgd_adadelta(model, x, y, eps, steps=steps, restarts=restarts, loss=loss, grad_model=grad_model)


def reference_pgd(model, x, y, eps, *, steps: int = 100, restarts: int = 1, loss=None, grad_model=None) -> torch.Tensor:
    """``rbfi_pgd_reference``: the same PGD with the reference code's box (pixels only brighten)."""
    return pgd_adadelta(model, x, y, eps, steps=steps, restarts=restarts, loss=loss, grad_model=grad_model, buggy=True)


def uniform_noise(model, x, y, eps, *, repeats: int = 1) -> torch.Tensor:
    """Eq. (14): x' = (1 - eps) x + eps r, r ~ U[0, 1]^n (one draw per image in the paper)."""
    e = attacks.as_eps(eps, x)
    out = x.clone()
    todo = torch.ones(len(x), dtype=torch.bool, device=x.device)
    for _ in range(repeats):
        xn = ((1 - e) * x + e * torch.rand_like(x)).clamp(0, 1)
        out[todo] = xn[todo]
        todo &= ~attacks.misclassified(model, xn, y)
    return out


for _info in (
    attacks.AttackInfo("rbfi_pgd", "linf", False, paper_pgd),
    attacks.AttackInfo("rbfi_pgd_reference", "linf", False, reference_pgd),
    attacks.AttackInfo("rbfi_noise", "linf", False, uniform_noise),
):
    attacks.register(_info)
