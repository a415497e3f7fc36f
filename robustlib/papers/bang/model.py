"""BANG: Batch Adjusted Network Gradients (Rozsa, Günther & Boult), read top to bottom.

1. The rule (Eqs. 3-6). For every parametrised layer l and batch element i, let
   kappa_i = dE_i/dy_i be the gradient of the per-sample loss at the layer *output* (the conv or
   inner-product top blob, i.e. the pre-activation) and n_i = ||kappa_i||_2, n_max = max_i n_i:

       rho_i = eps * (1 - n_i / n_max)                       (Eq. 4)
       eta_i = (n_max / n_i) ** rho_i                        (Eq. 3)
       grad_W = beta * (1/N) sum_i eta_i dE_i/dW             (Eq. 6; regular training: Eq. 5)

   The scaled norm eta_i n_i = n_max^rho n_i^(1-rho) <= n_max: small per-sample gradients (the
   correctly classified, "stalled" samples) are pulled up towards the batch maximum, the largest
   keeps its scale (rho = 0). Only the weight (and, as we assume, bias) gradient is scaled; the
   gradient passed down to the layer below stays the unscaled kappa. CIFAR variant: misclassified
   batch elements use ``wrong_factor * eps`` (the paper: 0.5).
2. Where it lives. Two autograd functions (conv2d, linear) whose backward computes the input
   gradient from kappa and the weight/bias gradients from the BANG-scaled kappa, with the very
   kernels autograd itself uses (``aten.convolution_backward``, mm/bmm), so epsilon = 0, beta = 1
   trains bit-identically to plain autograd. ``bang_mode(model, config)`` switches every
   ``nn.Conv2d``/``nn.Linear`` of any model to them; ``bang_step(config)`` is the ``step`` hook of
   the shared loop ``robustlib.train.fit`` (no fork of the loop).
3. ``LeNetStack``: K Caffe LeNets (one per (beta, eps) setting) trained at once as one network
   with grouped convolutions and batched matmuls, each with its own BANG parameters and dropout
   masks, all seeing the same batches. One GPU pass trains a whole (beta, eps) grid; on a CPU it
   costs about the same as K separate models. ``stack_step`` is its ``fit`` step hook.
4. ``CifarQuick``: Caffe's "CIFAR-10 quick" network with the added dropout and the mean image
   subtracted inside the model.
5. The Caffe solver: SGD with momentum 0.9, weight decay, bias lr x2, the "inv" (LeNet) or
   multistep (CIFAR) learning-rate policy, as ``lr_lambda`` of ``fit``.

Everything takes images in [0, 1]; the models rescale to Caffe's inputs inside.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ... import train
from ..baselines.model import LeNet

FLOAT32_MAX = 3.0e38


# --- 1. the BANG rule --------------------------------------------------------------------------


@dataclass(frozen=True)
class BangConfig:
    """BANG parameters, the same for every layer (as in the paper).

    ``beta = 1, epsilon = 0`` is regular training. ``wrong_factor`` multiplies epsilon for the
    batch elements the network misclassifies (CIFAR variant: 0.5). ``scale_bias``: whether bias
    gradients are scaled too (the paper says "weight updates"; we assume biases are included).
    """

    beta: float = 1.0
    epsilon: float = 0.0
    wrong_factor: float = 1.0
    scale_bias: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta must be a finite number > 0, got {self.beta}")
        if not (math.isfinite(self.epsilon) and self.epsilon >= 0):
            raise ValueError(f"epsilon must be a finite number >= 0, got {self.epsilon}")
        if not (math.isfinite(self.wrong_factor) and self.wrong_factor >= 0):
            raise ValueError(f"wrong_factor must be a finite number >= 0, got {self.wrong_factor}")

    @property
    def regular(self) -> bool:
        return self.beta == 1.0 and self.epsilon == 0.0


REGULAR = BangConfig()


def bang_eta(norms: torch.Tensor, epsilon: float | torch.Tensor) -> torch.Tensor:
    """eta_i of Eqs. 3-4 from per-sample gradient norms (..., N) -> (..., N) in float64.

    The maximum is taken over the last axis (the batch). ``epsilon`` broadcasts against ``norms``
    (a number, (..., 1) per model or (..., N) per sample). A sample with n_i = 0 has no gradient to
    scale: its eta is set to 1 (not inf), so it contributes exactly 0 and no NaN appears.
    """
    n = norms.to(torch.float64)  # norms are >= 0 by construction (no check: it would sync a GPU)
    eps = torch.as_tensor(epsilon, dtype=torch.float64, device=n.device)
    n_max = n.amax(-1, keepdim=True)  # (..., 1)
    positive = n > 0
    safe_n = torch.where(positive, n, torch.ones_like(n))
    safe_max = torch.where(n_max > 0, n_max, torch.ones_like(n_max))
    rho = eps * (1.0 - n / safe_max)  # (..., N), 0 for the largest sample
    eta = (safe_max / safe_n) ** rho
    return torch.where(positive, eta, torch.ones_like(eta))


class BangControl:
    """The BANG parameters of K models trained together, shared by all their layers.

    ``beta``, ``epsilon``, ``wrong_factor``: (K,) float64. ``wrong``: (K, B) bool, which batch
    elements each model misclassifies; the training step sets it between forward and backward
    (only needed when some ``wrong_factor != 1``).
    """

    def __init__(self, configs: Sequence[BangConfig]):
        if not configs:
            raise ValueError("BangControl needs at least one BangConfig")
        if len({c.scale_bias for c in configs}) != 1:
            raise ValueError("all models of one stack must agree on scale_bias")
        self.configs = tuple(configs)
        self.beta = torch.tensor([c.beta for c in configs], dtype=torch.float64)
        self.epsilon = torch.tensor([c.epsilon for c in configs], dtype=torch.float64)
        self.wrong_factor = torch.tensor([c.wrong_factor for c in configs], dtype=torch.float64)
        self.scale_bias = configs[0].scale_bias
        self.needs_wrong = any(c.wrong_factor != 1.0 and c.epsilon != 0.0 for c in configs)
        self.wrong: torch.Tensor | None = None
        self.recorded: list[torch.Tensor] | None = None  # set to [] to record per-sample norms (K, B)
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def params_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(beta, epsilon, wrong_factor) on ``device``, copied once (a host-to-GPU copy per layer
        and step would stall the GPU pipeline)."""
        if device not in self._on:
            self._on[device] = (self.beta.to(device), self.epsilon.to(device), self.wrong_factor.to(device))
        return self._on[device]

    @property
    def k(self) -> int:
        return len(self.configs)

    def factors(self, norms: torch.Tensor) -> torch.Tensor:
        """beta_k * eta_ki for per-sample norms (K, B) -> (K, B) float64."""
        beta, epsilon, wrong_factor = self.params_on(norms.device)
        eps = epsilon[:, None]  # (K, 1)
        if self.needs_wrong:
            if self.wrong is None:
                raise RuntimeError("wrong_factor != 1 needs control.wrong (K, B) set before backward")
            eps = eps * torch.where(self.wrong.to(norms.device), wrong_factor[:, None], 1.0)  # (K, B)
        return beta[:, None] * bang_eta(norms, eps)

    def scale(self, kappa: torch.Tensor) -> torch.Tensor:
        """Scale per-sample gradients kappa (K, B, D) -> (K, B, D), same dtype.

        Norms are taken in float64: a confidently classified sample has kappa ~ 1e-20, whose
        square underflows in float32. The factor is clamped to the float32 range (it can only
        exceed it for samples whose scaled contribution is negligible anyway).
        """
        norms = torch.linalg.vector_norm(kappa, dim=-1, dtype=torch.float64)  # (K, B)
        if self.recorded is not None:
            self.recorded.append(norms.detach().cpu())
        f = self.factors(norms).clamp(max=FLOAT32_MAX).to(kappa.dtype)
        return kappa * f[..., None]


# --- 2. the autograd functions -----------------------------------------------------------------


def _scale_conv_grad(control: BangControl, g: torch.Tensor) -> torch.Tensor:
    """kappa of a (grouped) conv output (B, K*C, H, W): model k owns channels [k*C, (k+1)*C)."""
    b, kc, h, w = g.shape
    k = control.k
    per_model = g.reshape(b, k, (kc // k) * h * w).transpose(0, 1)  # (K, B, C*H*W)
    return control.scale(per_model).transpose(0, 1).reshape(b, kc, h, w)


class _BangConv2d(torch.autograd.Function):
    """conv2d whose weight/bias gradients are BANG-scaled; the input gradient is not."""

    @staticmethod
    def forward(ctx, x, weight, bias, control: BangControl, stride, padding, groups):
        ctx.save_for_backward(x, weight)
        ctx.meta = (control, stride, padding, groups, bias is not None)
        return F.conv2d(x, weight, bias, stride, padding, 1, groups)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        control, stride, padding, groups, has_bias = ctx.meta
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        args = (stride, padding, (1, 1), False, (0, 0), groups)
        gx = gw = gb = None
        if need_x:  # the gradient passed down: unscaled kappa
            gx = torch.ops.aten.convolution_backward(g, x, weight, None, *args, (True, False, False))[0]
        if need_w or need_b:
            gs = _scale_conv_grad(control, g)
            bias_sizes = [weight.shape[0]] if has_bias else None
            _, gw, gb = torch.ops.aten.convolution_backward(
                gs, x, weight, bias_sizes, *args, (False, need_w, need_b and has_bias)
            )
            if need_b and not control.scale_bias:
                gb = g.sum((0, 2, 3))
        return gx, gw, gb, None, None, None, None


class _BangLinear(torch.autograd.Function):
    """Linear layer with BANG-scaled weight/bias gradients.

    Plain: x (B, in), weight (out, in), bias (out,). Stacked (K models): x (K, B, in),
    weight (K, out, in), bias (K, out). The backward repeats autograd's own formulas for
    addmm / baddbmm so that unscaled BANG equals plain autograd bit for bit.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, control: BangControl):
        ctx.save_for_backward(x, weight)
        ctx.control = control
        if weight.dim() == 3:
            return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
        return F.linear(x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        control: BangControl = ctx.control
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        stacked = weight.dim() == 3
        gx = gw = gb = None
        if need_x:
            gx = g.bmm(weight) if stacked else g.mm(weight)
        if need_w or need_b:
            gs = control.scale(g if stacked else g.unsqueeze(0))  # (K, B, out)
            gs = gs if stacked else gs.squeeze(0)
            if need_w:
                gw = x.transpose(1, 2).bmm(gs).transpose(1, 2) if stacked else gs.t().mm(x)
            if need_b:
                gb = (gs if control.scale_bias else g).sum(-2)
        return gx, gw, gb, None


def bang_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    control: BangControl,
    *,
    stride=(1, 1),
    padding=(0, 0),
    groups: int = 1,
) -> torch.Tensor:
    return _BangConv2d.apply(x, weight, bias, control, _pair(stride), _pair(padding), groups)


def bang_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, control: BangControl) -> torch.Tensor:
    return _BangLinear.apply(x, weight, bias, control)


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


@contextlib.contextmanager
def bang_mode(model: nn.Module, config: BangConfig | BangControl) -> Iterator[BangControl]:
    """Inside the block every ``nn.Conv2d`` and ``nn.Linear`` of ``model`` runs its BANG version.

    Yields the ``BangControl`` (set ``control.wrong`` (1, B) before backward for the CIFAR variant).
    The forward values are those of the plain layers; only the weight/bias gradients change.
    """
    control = config if isinstance(config, BangControl) else BangControl([config])
    if control.k != 1:
        raise ValueError(f"bang_mode needs a single-model control, got K={control.k}")
    patched: list[nn.Module] = []
    try:
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                if (
                    m.padding_mode != "zeros"
                    or _pair(m.dilation) != (1, 1)
                    or isinstance(m.padding, str)
                    or m.groups != 1
                ):
                    raise ValueError(f"bang_mode supports plain Conv2d layers only, got {m}")
                m.forward = _conv_forward(m, control)
            elif isinstance(m, nn.Linear):
                m.forward = _linear_forward(m, control)
            else:
                continue
            patched.append(m)
        yield control
    finally:
        for m in patched:
            del m.forward  # back to the class's forward
        control.wrong = None


def _conv_forward(m: nn.Conv2d, control: BangControl):
    return lambda x: bang_conv2d(x, m.weight, m.bias, control, stride=m.stride, padding=m.padding)


def _linear_forward(m: nn.Linear, control: BangControl):
    def forward(x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        return bang_linear(x.reshape(-1, x.shape[-1]), m.weight, m.bias, control).reshape(*lead, -1)

    return forward


def per_sample_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """||kappa_i|| of every parametrised layer for one batch, in backward order (last layer first):
    a list of (B,) float64. The diagnostic behind the paper's "evolutionary stalling": correctly
    classified samples have gradients orders of magnitude smaller than the misclassified ones."""
    was = model.training
    model.eval()  # no dropout: the norms of the network as it classifies
    try:
        with bang_mode(model, REGULAR) as control:
            control.recorded = []
            x = x.detach()
            F.cross_entropy(model(x), y).backward()
            model.zero_grad(set_to_none=True)
            return [n[0] for n in control.recorded]
    finally:
        model.train(was)


def _stats(out: torch.Tensor, y: torch.Tensor, loss: torch.Tensor, k: int) -> dict[str, float]:
    return {"loss": loss.item() / k, "correct": (out.argmax(-1) == y).sum().item() / k}


def bang_step(config: BangConfig, loss_fn=F.cross_entropy) -> train.StepFn:
    """``fit(..., step=bang_step(config))``: one SGD step of any Conv2d/Linear model with BANG."""

    def step(model: nn.Module, batch: train.Batch, optimizer: torch.optim.Optimizer | None) -> dict[str, float]:
        assert optimizer is not None, "bang_step needs an optimizer"
        optimizer.zero_grad(set_to_none=True)
        with bang_mode(model, config) as control:
            out = model(batch.x)  # (B, classes)
            if control.needs_wrong:
                control.wrong = (out.argmax(1) != batch.y)[None]  # (1, B)
            loss = loss_fn(out, batch.y)
            loss.backward()
        optimizer.step()
        return _stats(out, batch.y, loss, 1)

    return step


# --- 3. K LeNets as one network ----------------------------------------------------------------


class LeNetStack(nn.Module):
    """K Caffe LeNets (``baselines.LeNet``) evaluated as one network.

    conv1/conv2 are grouped convolutions (model k owns channel block k), ip1/ip2 batched matmuls.
    ``forward(x)``: x (B, 1, 28, 28) shared by all models, or (K, B, 1, 28, 28) one batch per
    model; returns logits (K, B, 10). With ``configs`` (one ``BangConfig`` per model) the training
    forward uses the BANG layers, each model with its own beta/epsilon.
    """

    def __init__(self, k: int, dropout: float = 0.5, configs: Sequence[BangConfig] | None = None):
        super().__init__()
        if k < 1:
            raise ValueError(f"a stack needs k >= 1 models, got {k}")
        self.k, self.dropout = k, dropout
        self.conv1_w = nn.Parameter(torch.empty(k * 20, 1, 5, 5))
        self.conv1_b = nn.Parameter(torch.zeros(k * 20))
        self.conv2_w = nn.Parameter(torch.empty(k * 50, 20, 5, 5))
        self.conv2_b = nn.Parameter(torch.zeros(k * 50))
        self.ip1_w = nn.Parameter(torch.empty(k, 500, 800))
        self.ip1_b = nn.Parameter(torch.zeros(k, 500))
        self.ip2_w = nn.Parameter(torch.empty(k, 10, 500))
        self.ip2_b = nn.Parameter(torch.zeros(k, 10))
        if configs is not None and len(configs) != k:
            raise ValueError(f"need one BangConfig per model: {len(configs)} configs for k={k}")
        self.control = BangControl(configs) if configs is not None else None

    # parameters in Caffe's two groups (bias lr x2)
    def weight_parameters(self) -> list[nn.Parameter]:
        return [self.conv1_w, self.conv2_w, self.ip1_w, self.ip2_w]

    def bias_parameters(self) -> list[nn.Parameter]:
        return [self.conv1_b, self.conv2_b, self.ip1_b, self.ip2_b]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.k
        if x.dim() == 5:  # (K, B, 1, 28, 28): model k sees its own batch as input channel k
            if x.shape[0] != k:
                raise ValueError(f"per-model input needs leading dim {k}, got {tuple(x.shape)}")
            h = x[:, :, 0].transpose(0, 1)  # (B, K, 28, 28)
        else:
            h = x.expand(-1, k, -1, -1)  # (B, K, 28, 28): the same images for every model
        b = h.shape[0]
        h = h * (255.0 / 256.0)  # Caffe's scale 1/256 on grey levels (see baselines.LeNet)
        bang = self.control is not None and self.training and torch.is_grad_enabled()
        if bang:
            h = bang_conv2d(h, self.conv1_w, self.conv1_b, self.control, groups=k)
        else:
            h = F.conv2d(h, self.conv1_w, self.conv1_b, groups=k)
        h = F.max_pool2d(h, 2, 2)  # (B, K*20, 12, 12)
        if bang:
            h = bang_conv2d(h, self.conv2_w, self.conv2_b, self.control, groups=k)
        else:
            h = F.conv2d(h, self.conv2_w, self.conv2_b, groups=k)
        h = F.max_pool2d(h, 2, 2)  # (B, K*50, 4, 4)
        h = h.reshape(b, k, 800).transpose(0, 1)  # (K, B, 800), per model the order of flatten(1)
        lin = (
            (lambda t, w, bb: bang_linear(t, w, bb, self.control))
            if bang
            else (lambda t, w, bb: torch.baddbmm(bb.unsqueeze(1), t, w.transpose(1, 2)))
        )
        h = F.relu(lin(h, self.ip1_w, self.ip1_b))  # (K, B, 500)
        h = F.dropout(h, self.dropout, self.training)  # the paper's added Dropout [assumed here]
        return lin(h, self.ip2_w, self.ip2_b)  # (K, B, 10)

    @classmethod
    def from_lenets(
        cls, models: Sequence[LeNet], dropout: float = 0.5, configs: Sequence[BangConfig] | None = None
    ) -> LeNetStack:
        """Stack copies of the weights of ``models`` (e.g. freshly initialised ones)."""
        stack = cls(len(models), dropout, configs)
        with torch.no_grad():
            stack.conv1_w.copy_(torch.cat([m.conv1.weight for m in models]))
            stack.conv1_b.copy_(torch.cat([m.conv1.bias for m in models]))
            stack.conv2_w.copy_(torch.cat([m.conv2.weight for m in models]))
            stack.conv2_b.copy_(torch.cat([m.conv2.bias for m in models]))
            stack.ip1_w.copy_(torch.stack([m.ip1.weight for m in models]))
            stack.ip1_b.copy_(torch.stack([m.ip1.bias for m in models]))
            stack.ip2_w.copy_(torch.stack([m.ip2.weight for m in models]))
            stack.ip2_b.copy_(torch.stack([m.ip2.bias for m in models]))
        return stack

    @classmethod
    def from_states(cls, states: Sequence[dict[str, torch.Tensor]], dropout: float = 0.5) -> LeNetStack:
        """A stack of LeNets given by their ``state_dict``s (e.g. training snapshots)."""
        models = []
        for s in states:
            m = LeNet(dropout)
            m.load_state_dict(s)
            models.append(m)
        return cls.from_lenets(models, dropout)

    def lenet_state(self, i: int) -> dict[str, torch.Tensor]:
        """The ``baselines.LeNet`` state_dict of model i (detached CPU copies)."""
        c1, c2 = slice(20 * i, 20 * (i + 1)), slice(50 * i, 50 * (i + 1))
        parts = {
            "conv1.weight": self.conv1_w[c1],
            "conv1.bias": self.conv1_b[c1],
            "conv2.weight": self.conv2_w[c2],
            "conv2.bias": self.conv2_b[c2],
            "ip1.weight": self.ip1_w[i],
            "ip1.bias": self.ip1_b[i],
            "ip2.weight": self.ip2_w[i],
            "ip2.bias": self.ip2_b[i],
        }
        return {k: v.detach().cpu().clone().contiguous() for k, v in parts.items()}

    def lenet(self, i: int) -> LeNet:
        """Model i as a standalone ``baselines.LeNet`` (eval mode, CPU)."""
        m = LeNet(self.dropout)
        m.load_state_dict(self.lenet_state(i))
        return m.eval()


def init_lenets(seeds: Sequence[int], dropout: float = 0.5) -> list[LeNet]:
    """Fresh Caffe-initialised LeNets, model i from ``torch.manual_seed(seeds[i])``."""
    models = []
    for s in seeds:
        torch.manual_seed(s)
        models.append(LeNet(dropout))
    return models


# --- 4. CIFAR-10 quick -------------------------------------------------------------------------


class CifarQuick(nn.Module):
    """Caffe's "CIFAR-10 quick" net with the BANG paper's added Dropout (after ip1 [assumed]).

    conv1 32@5x5 pad 2 -> maxpool 3/2 -> ReLU -> conv2 32@5x5 pad 2 -> ReLU -> avepool 3/2 ->
    conv3 64@5x5 pad 2 -> ReLU -> avepool 3/2 -> ip1 64 -> dropout -> ip2 10. Caffe pools round
    up (ceil mode): 32 -> 16 -> 8 -> 4, so ip1 sees 64*4*4 = 1024 values. Input: images in [0, 1];
    the model subtracts the training-set mean image on Caffe's 0..255 scale inside (our reading), so
    attacks work on raw pixels.
    """

    def __init__(self, mean_image: torch.Tensor | None = None, dropout: float = 0.5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 32, 5, padding=2)
        self.conv3 = nn.Conv2d(32, 64, 5, padding=2)
        self.ip1 = nn.Linear(1024, 64)
        self.ip2 = nn.Linear(64, 10)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        mean = torch.zeros(3, 32, 32) if mean_image is None else mean_image.reshape(3, 32, 32).float()
        self.register_buffer("mean255", mean * 255.0)  # (3, 32, 32) on 0..255
        for layer, std in (
            (self.conv1, 1e-4),
            (self.conv2, 0.01),
            (self.conv3, 0.01),
            (self.ip1, 0.1),
            (self.ip2, 0.1),
        ):  # Caffe's gaussian fillers, constant-0 biases
            nn.init.normal_(layer.weight, 0.0, std)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x * 255.0 - self.mean255  # (N, 3, 32, 32) mean-subtracted grey levels
        h = F.relu(F.max_pool2d(self.conv1(h), 3, 2, ceil_mode=True))  # (N, 32, 16, 16)
        h = F.avg_pool2d(F.relu(self.conv2(h)), 3, 2, ceil_mode=True)  # (N, 32, 8, 8)
        h = F.avg_pool2d(F.relu(self.conv3(h)), 3, 2, ceil_mode=True)  # (N, 64, 4, 4)
        h = self.dropout(self.ip1(h.flatten(1)))  # (N, 64): no nonlinearity in Caffe's ip1
        return self.ip2(h)  # (N, 10)

    def weight_parameters(self) -> list[nn.Parameter]:
        return [m.weight for m in (self.conv1, self.conv2, self.conv3, self.ip1, self.ip2)]

    def bias_parameters(self) -> list[nn.Parameter]:
        return [m.bias for m in (self.conv1, self.conv2, self.conv3, self.ip1, self.ip2)]


# --- 5. the Caffe solver -----------------------------------------------------------------------


@dataclass(frozen=True)
class Solver:
    """Caffe SGD solver settings. ``policy``: "inv" lr = base (1 + gamma it)^-power (LeNet) or
    "multistep" lr = base * step_gamma^(number of ``steps`` passed) (BANG's CIFAR schedule)."""

    base_lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    bias_lr_mult: float = 2.0
    policy: str = "inv"
    gamma: float = 1e-4
    power: float = 0.75
    steps: tuple[int, ...] = ()
    step_gamma: float = 0.1
    batch_size: int = 64
    iterations: int = 10_000

    def __post_init__(self) -> None:
        if self.policy not in ("inv", "multistep"):
            raise ValueError(f"unknown lr policy {self.policy!r}; valid: 'inv', 'multistep'")
        if self.iterations < 1 or self.batch_size < 1:
            raise ValueError(f"iterations ({self.iterations}) and batch_size ({self.batch_size}) must be >= 1")

    def lr_factor(self, iteration: int) -> float:
        """lr(iteration) / base_lr: the ``lr_lambda`` of ``fit``."""
        if self.policy == "inv":
            return (1.0 + self.gamma * iteration) ** (-self.power)
        return self.step_gamma ** sum(iteration >= s for s in self.steps)

    def lr(self, iteration: int) -> float:
        return self.base_lr * self.lr_factor(iteration)

    def optimizer(self, weights: Sequence[nn.Parameter], biases: Sequence[nn.Parameter]) -> torch.optim.SGD:
        """SGD with momentum; weight decay on weights and biases (Caffe's decay_mult 1), biases at
        lr x2. (Caffe applies the lr before the momentum sum, PyTorch after; with this slowly
        changing lr the two differ by < 0.1 % per step.)"""
        return torch.optim.SGD(
            [
                {"params": list(weights), "lr": self.base_lr},
                {"params": list(biases), "lr": self.base_lr * self.bias_lr_mult},
            ],
            lr=self.base_lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
        )


LENET_SOLVER = Solver()
CIFAR_SOLVER = Solver(
    base_lr=0.001, weight_decay=0.004, policy="multistep", steps=(18_000, 19_000), batch_size=100, iterations=20_000
)


def scaled_solver(solver: Solver, iterations: int) -> Solver:
    """The same solver for ``iterations`` (multistep boundaries scaled proportionally)."""
    ratio = iterations / solver.iterations
    steps = tuple(max(1, round(s * ratio)) for s in solver.steps)
    return Solver(**{**solver.__dict__, "iterations": iterations, "steps": steps})


# --- training ----------------------------------------------------------------------------------


def stack_step(
    snapshot_every: int = 0,
    snapshot_models: Sequence[int] = (),
    snapshot_dir: Path | None = None,
) -> train.StepFn:
    """``fit`` step hook for a ``LeNetStack``: sum over models of each model's mean cross-entropy
    (so every model gets exactly its own gradient), BANG inside the stack's layers.

    Snapshots: every ``snapshot_every`` updates, the LeNet states of ``snapshot_models`` are
    written to ``snapshot_dir/iter-<n>.safetensors`` (files survive a resume of ``fit``).
    """

    def step(model: nn.Module, batch: train.Batch, optimizer: torch.optim.Optimizer | None) -> dict[str, float]:
        assert isinstance(model, LeNetStack) and optimizer is not None
        optimizer.zero_grad(set_to_none=True)
        out = model(batch.x)  # (K, B, 10)
        k, b = out.shape[:2]
        if model.control is not None and model.control.needs_wrong:
            model.control.wrong = out.argmax(-1) != batch.y  # (K, B)
        loss = F.cross_entropy(out.reshape(k * b, -1), batch.y.repeat(k), reduction="sum") / b
        loss.backward()
        if model.control is not None:
            model.control.wrong = None
        optimizer.step()
        done = batch.iteration + 1
        if snapshot_every and snapshot_dir is not None and done % snapshot_every == 0:
            save_snapshot(model, snapshot_models, snapshot_dir, done)
        return _stats(out, batch.y, loss, k)

    return step


def save_snapshot(stack: LeNetStack, models: Sequence[int], folder: Path, iteration: int) -> Path:
    tensors = {f"{i}/{name}": v for i in models for name, v in stack.lenet_state(i).items()}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"iter-{iteration}.safetensors"
    tmp = folder / f".iter-{iteration}.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(path)
    return path


def load_snapshots(folder: Path, iterations: Sequence[int], model: int) -> list[dict[str, torch.Tensor]]:
    """The LeNet states of stack model ``model`` at each of ``iterations`` (files must exist)."""
    states = []
    for it in iterations:
        path = folder / f"iter-{it}.safetensors"
        if not path.exists():
            raise FileNotFoundError(f"training snapshot {path} is missing: retrain to recreate it")
        t = load_file(str(path))
        states.append({name.split("/", 1)[1]: v for name, v in t.items() if name.startswith(f"{model}/")})
    return states


def train_stack(
    stack: LeNetStack,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    solver: Solver = LENET_SOLVER,
    seed: int = 0,
    device: str = "cpu",
    checkpoint: Path | None = None,
    snapshot_every: int = 0,
    snapshot_models: Sequence[int] = (),
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: bool = True,
    desc: str = "lenet",
) -> list[dict[str, float]]:
    """Train every model of ``stack`` with the Caffe solver through the shared loop ``fit``.

    Data order is shared by all models (seeded by ``seed``); snapshots go to
    ``checkpoint/snapshots``. ``val``: per-epoch validation accuracy (min/mean/max over models).
    """
    per_epoch = math.ceil(len(x) / solver.batch_size)
    epochs = math.ceil(solver.iterations / per_epoch)
    snap_dir = (checkpoint / "snapshots") if checkpoint is not None else None
    if snapshot_every and snap_dir is None:
        raise ValueError("snapshots need a checkpoint folder")

    def on_epoch_end(epoch: int, model: nn.Module) -> dict[str, float]:
        if val is None:
            return {}
        acc = stack_accuracy(model, *val, device=device)
        return {"val_acc_min": acc.min().item(), "val_acc_mean": acc.mean().item(), "val_acc_max": acc.max().item()}

    cudnn = torch.backends.cudnn
    was_benchmark = cudnn.benchmark
    cudnn.benchmark = torch.device(device).type == "cuda"  # fixed shapes while training: let cuDNN pick
    try:
        return train.fit(
            stack,
            x,
            y,
            epochs=epochs,
            batch_size=solver.batch_size,
            seed=seed,
            optimizer=solver.optimizer(stack.weight_parameters(), stack.bias_parameters()),
            step=stack_step(snapshot_every, snapshot_models, snap_dir),
            lr_lambda=solver.lr_factor,
            max_iterations=solver.iterations,
            on_epoch_end=on_epoch_end,
            checkpoint=checkpoint,
            device=device,
            progress=progress,
            desc=desc,
        )
    finally:
        cudnn.benchmark = was_benchmark


def eval_batch(k: int, device: str | torch.device = "cpu") -> int:
    """Images per forward pass of a K-model stack: conv1 activations (K*20*24*24 floats per image)
    kept to ~512 MB on a GPU, ~32 MB on a CPU (cache-friendly)."""
    budget = 2**27 if torch.device(device).type == "cuda" else 2**25
    return max(1, budget // (k * 20 * 24 * 24))


@torch.no_grad()
def stack_predict(
    stack: LeNetStack, x: torch.Tensor, *, batch_size: int | None = None, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Predicted labels of every model (K, N) (eval mode; batches sized to bound memory)."""
    was = stack.training
    stack.eval()
    bs = batch_size or eval_batch(stack.k, device)
    try:
        preds = [stack(x[i : i + bs].to(device)).argmax(-1).cpu() for i in range(0, len(x), bs)]
    finally:
        stack.train(was)
    return torch.cat(preds, 1) if preds else torch.empty(stack.k, 0, dtype=torch.long)


def stack_accuracy(stack: LeNetStack, x: torch.Tensor, y: torch.Tensor, **kw: Any) -> torch.Tensor:
    """Accuracy of every model of the stack (K,)."""
    return (stack_predict(stack, x, **kw) == y.cpu()[None]).to(torch.float64).mean(1)
