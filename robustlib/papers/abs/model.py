"""Analysis by synthesis (ABS): Schott, Rauber, Bethge & Brendel, "Towards the first adversarially
robust neural network model on MNIST" (ICLR 2019).

A Bayes classifier with one generative model per class. Each class c has a VAE; at test time the
encoder is *not* used (it would be one more attackable network): instead the class score is the
best value of the (Gaussian) ELBO over the latent, found by optimisation,

    score_c(x) = - min_z (1/784) [ ||x - G_c(z)||^2 + (beta/2) ||z||^2 ],   ||z|| <= 5,

starting from the best of a fixed bank of prior samples, refined by Adam. The file reads top to
bottom:

1. the ten class-conditional VAEs, stored *stacked* (one grouped network, group c = class c), so
   that the whole of a training or inference step over images x classes is a handful of tensor ops;
2. ABS inference (latent bank, best-of-samples, batched Adam), the modified softmax, binary ABS;
   a literal per-image/per-class reference implementation for the tests and the benchmark;
3. the instance-specific L2 lower bound;
4. the baselines of the paper (vanilla CNN, binary CNN, substitute CNN, Madry-style PGD training);
5. the ABS-specific attacks: Latent Descent and distal adversarials.

Every model takes images (N, 1, 28, 28) in [0, 1] and returns class scores (N, 10).

Gradients of ABS (for PGD / FGSM / distal attacks): ``ABS.forward`` returns the scores with the
gradient of the *envelope theorem*: the inner optimum z* is computed without a graph and held
fixed, then the loss is re-evaluated as a differentiable function of x, so
d score_c / dx = -(2/784) (x - G_c(z*_c)). This is the exact gradient of the min-function wherever
the minimiser is unique and found; it is not a finite-difference estimator (the paper used
foolbox's coordinate-wise gradient estimator instead). Binarisation (binary ABS, binary CNN) is
differentiated straight-through (BPDA): forward exact, backward identity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...attacks import madry_pgd

CLASSES = 10
LATENT = 8
PIXELS = 784
GAMMA = (1.0, 0.96, 1.001, 1.06, 0.98, 0.96, 1.03, 1.0, 1.0, 1.0)  # binary ABS class weights [paper]
ALPHA = 440.0  # modified softmax sharpness [paper]
ETA = 0.000039  # modified softmax floor [paper]

# (in, out, kernel, stride) per layer; spatial 28 -> 24 -> 11 -> 5 -> 1 and 1 -> 4 -> 11 -> 25 -> 28.
ENCODER_LAYERS = ((1, 32, 5, 1), (32, 32, 4, 2), (32, 64, 3, 2), (64, 2 * LATENT, 5, 1))
DECODER_LAYERS = ((LATENT, 32, 4, 1), (32, 16, 5, 2), (16, 16, 5, 2), (16, 1, 4, 1))


# =============================================================================================
# 1. Class-conditional VAEs, stacked
# =============================================================================================


def _grouped(
    op: Callable, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, groups: int, loop: bool, **kw
) -> torch.Tensor:
    """Apply ``op`` (conv2d / conv_transpose2d) with ``groups`` independent weight groups.

    ``loop=False``: one grouped op (fast with cuDNN). ``loop=True``: one op per group on weight
    slices (oneDNN's grouped deconvolution is very slow on CPUs). Same numbers either way.
    """
    if not loop or groups == 1:
        return op(x, w, b, groups=groups, **kw)
    xs, ws = x.chunk(groups, 1), w.chunk(groups, 0)
    bs = b.chunk(groups, 0) if b is not None else [None] * groups
    return torch.cat([op(xi, wi, bi, **kw) for xi, wi, bi in zip(xs, ws, bs)], 1)


class StackedConv(nn.Module):
    """``groups`` independent (transposed) convolutions held as one grouped weight.

    conv2d weight: (groups*out, in, k, k); conv_transpose2d weight: (groups*in, out, k, k).
    Group g's parameters are the g-th slice, so class c's VAE is a view, not a copy.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int, groups: int, transposed: bool):
        super().__init__()
        self.cin, self.cout, self.k, self.stride, self.groups, self.transposed = (
            cin,
            cout,
            k,
            stride,
            groups,
            transposed,
        )
        ref = (nn.ConvTranspose2d if transposed else nn.Conv2d)(cin, cout, k, stride)  # PyTorch's default init
        weights = []
        for _ in range(groups):
            ref.reset_parameters()
            weights.append((ref.weight.detach().clone(), ref.bias.detach().clone()))
        self.weight = nn.Parameter(torch.cat([w for w, _ in weights], 0))
        self.bias = nn.Parameter(torch.cat([b for _, b in weights], 0))
        self.loop = False  # set by the owner according to the device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        op = F.conv_transpose2d if self.transposed else F.conv2d
        return _grouped(op, x, self.weight, self.bias, self.groups, self.loop, stride=self.stride)


class ClassVAEs(nn.Module):
    """Ten VAEs (one per digit) in one module; class c's VAE is group c of every layer.

    Encoder: conv(1->32,k5,s1) BN ELU, conv(32->32,k4,s2) BN ELU, conv(32->64,k3,s2) BN ELU,
    conv(64->16,k5,s1) linear -> (mu, logvar), each (., 8).
    Decoder: convT(8->32,k4,s1) BN ELU, convT(32->16,k5,s2) BN ELU, convT(16->16,k5,s2) BN ELU,
    convT(16->1,k4,s1) sigmoid. (The paper lists a last decoder kernel of 3, which would give 27x27;
    the authors' code uses 4.)
    BatchNorm over C*channels is per-channel, hence per class: the classes never interact.
    """

    def __init__(self, classes: int = CLASSES, latent: int = LATENT, last_kernel: int = 4):
        super().__init__()
        if latent < 1:
            raise ValueError(f"latent must be >= 1, got {latent}")
        self.classes, self.latent = classes, latent
        enc = [(1, 32, 5, 1), (32, 32, 4, 2), (32, 64, 3, 2), (64, 2 * latent, 5, 1)]
        dec = [(latent, 32, 4, 1), (32, 16, 5, 2), (16, 16, 5, 2), (16, 1, last_kernel, 1)]
        self.enc = nn.ModuleList(StackedConv(*layer, classes, transposed=False) for layer in enc)
        self.enc_bn = nn.ModuleList(nn.BatchNorm2d(classes * layer[1]) for layer in enc[:-1])
        self.dec = nn.ModuleList(StackedConv(*layer, classes, transposed=True) for layer in dec)
        self.dec_bn = nn.ModuleList(nn.BatchNorm2d(classes * layer[1]) for layer in dec[:-1])
        self.set_loop(True)

    def set_loop(self, loop: bool) -> ClassVAEs:
        """Per-class loop (CPU) or one grouped op per layer (GPU)."""
        for m in (*self.enc, *self.dec):
            m.loop = loop
        return self

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, 28, 28), image b of class c in channel c -> mu, logvar (B, C, L)."""
        h = x
        for conv, bn in zip(self.enc[:-1], self.enc_bn):
            h = F.elu(bn(conv(h)))
        h = self.enc[-1](h).reshape(len(x), self.classes, 2, self.latent)  # (B, C, 2, L)
        return h[:, :, 0], h[:, :, 1]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, L) -> (B, C, 28, 28) in (0, 1): G_c(z[:, c]) for every class c."""
        h = z.reshape(len(z), self.classes * self.latent, 1, 1)
        for conv, bn in zip(self.dec[:-1], self.dec_bn):
            h = F.elu(bn(conv(h)))
        return torch.sigmoid(self.dec[-1](h))

    def forward(self, x: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction (reparameterised sample in training, mean otherwise), mu, logvar."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if (sample and self.training) else mu
        return self.decode(z), mu, logvar


def vae_loss(
    x: torch.Tensor, recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class VAE objective summed over classes: sum_pixels (x - x^)^2 + beta * KL, per image.

    Shapes: x, recon (B, C, 28, 28); mu, logvar (B, C, L). Returns (total, reconstruction, KL),
    each averaged over the batch and summed over the classes (every class model gets its own
    gradient: the classes share no parameters).
    """
    rec = (x - recon).square().flatten(2).sum(2)  # (B, C)
    kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(2)  # (B, C)
    return (rec + beta * kl).sum(1).mean(), rec.sum(1).mean(), kl.sum(1).mean()


def kl_weight(
    iteration: int, iters_per_epoch: int, anneal_epochs: float, start: float = 10.0, end: float = 1.0
) -> float:
    """KL weight annealed linearly from ``start`` to ``end`` over ``anneal_epochs`` epochs [paper]."""
    if anneal_epochs <= 0:
        return end
    frac = min(1.0, iteration / (anneal_epochs * iters_per_epoch))
    return start + (end - start) * frac


def class_rows(
    x: torch.Tensor, y: torch.Tensor, *, classes: int = CLASSES, n_per_class: int | None = None, seed: int = 0
) -> torch.Tensor:
    """Training rows (R, C, 28, 28): row r holds one image of each class (in its channel).

    Each class's images are in a seeded random order; classes with fewer than R images are
    topped up with seeded repeats. The pairing of classes within a row is irrelevant: the class
    models are independent. R = ``n_per_class`` or the largest class count.
    """
    g = torch.Generator().manual_seed(seed)
    idx = [torch.nonzero(y == c).flatten() for c in range(classes)]
    if any(len(i) == 0 for i in idx):
        raise ValueError("every class needs at least one training image")
    rows = n_per_class or max(len(i) for i in idx)
    cols = []
    for i in idx:
        i = i[torch.randperm(len(i), generator=g)][:rows]
        if len(i) < rows:
            i = torch.cat([i, i[torch.randint(len(i), (rows - len(i),), generator=g)]])
        cols.append(i)
    return torch.stack([x[i, 0] for i in cols], 1)  # (R, C, 28, 28)


@dataclass(frozen=True)
class VAETraining:
    """How the VAEs are trained (Adam; KL weight annealed from 10 to 1 [paper])."""

    epochs: int = 60
    batch_rows: int = 32  # rows per step = images per class per step
    lr: float = 1e-3
    beta_start: float = 10.0
    beta_end: float = 1.0
    anneal_epochs: float = 50.0
    n_per_class: int | None = None  # None: all training images


def vae_step(cfg: VAETraining, iters_per_epoch: int):
    """A ``train.fit`` step for ``ClassVAEs`` on rows (B, C, 28, 28)."""

    def step(model: ClassVAEs, batch, optimizer) -> dict[str, float]:
        beta = kl_weight(batch.iteration, iters_per_epoch, cfg.anneal_epochs, cfg.beta_start, cfg.beta_end)
        optimizer.zero_grad(set_to_none=True)
        recon, mu, logvar = model(batch.x)
        loss, rec, kl = vae_loss(batch.x, recon, mu, logvar, beta)
        loss.backward()
        optimizer.step()
        return {
            "loss": loss.item() / model.classes,
            "rec": rec.item() / model.classes,
            "kl": kl.item() / model.classes,
            "beta": beta,
        }

    return step


def train_vaes(
    model: ClassVAEs,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: VAETraining,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    checkpoint=None,
    progress: bool = False,
) -> list[dict]:
    """Train the ten VAEs jointly (each on its own class) with ``train.fit``; returns the history."""
    from ...train import fit

    rows = class_rows(x, y, n_per_class=cfg.n_per_class, seed=seed)
    model.set_loop(torch.device(device).type != "cuda")
    per_epoch = math.ceil(len(rows) / cfg.batch_rows)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    return fit(
        model,
        rows,
        torch.zeros(len(rows), dtype=torch.long),
        epochs=cfg.epochs,
        batch_size=cfg.batch_rows,
        seed=seed,
        optimizer=opt,
        step=vae_step(cfg, per_epoch),
        checkpoint=checkpoint,
        device=device,
        progress=progress,
        desc="VAEs",
    )


# =============================================================================================
# 2. ABS inference
# =============================================================================================


def latent_bank(n: int, latent: int = LATENT, seed: int = 0, drop: float = 0.1) -> torch.Tensor:
    """The fixed set of ``n`` prior samples: the ``n`` of ceil(n / (1 - drop)) N(0, I) draws with
    the smallest norm (highest prior density) [code]. (n, latent), sorted by norm."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not 0 <= drop < 1:
        raise ValueError(f"drop must be in [0, 1), got {drop}")
    g = torch.Generator().manual_seed(seed)
    draws = torch.randn(math.ceil(n / (1 - drop) - 1e-9), latent, generator=g)
    order = torch.argsort(draws.norm(dim=1), stable=True)
    return draws[order[:n]].contiguous()


class FoldedDecoder(nn.Module):
    """Eval-mode decoders of ``ClassVAEs`` with BatchNorm folded into the (transposed) convolutions
    and the first layer (a 1x1 input) written as a batched matrix product. Inference only.

    decode(z): (B, C, L) -> (B, C, 784). Same numbers as ``ClassVAEs.decode`` in eval mode.
    """

    def __init__(self, vaes: ClassVAEs):
        super().__init__()
        C, L = vaes.classes, vaes.latent
        self.classes, self.latent = C, L
        weights, biases = [], []
        for i, conv in enumerate(vaes.dec):
            w, b = conv.weight.detach().clone(), conv.bias.detach().clone()  # (C*in, out, k, k), (C*out,)
            if i < len(vaes.dec_bn):
                bn = vaes.dec_bn[i]
                s = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)  # (C*out,)
                w = (w.reshape(C, conv.cin, conv.cout, conv.k, conv.k) * s.reshape(C, 1, conv.cout, 1, 1)).reshape_as(w)
                b = (b - bn.running_mean) * s + bn.bias.detach()
            weights.append(w)
            biases.append(b)
        c0 = vaes.dec[0]
        # Layer 0 on a 1x1 input: out[c, o, i, j] = sum_l z[c, l] W[c, l, o, i, j] + b[c, o].
        self.register_buffer("w0", weights[0].reshape(C, L, c0.cout * c0.k * c0.k))  # (C, L, 32*16)
        self.register_buffer(
            "b0", biases[0].reshape(C, c0.cout, 1, 1).expand(C, c0.cout, c0.k, c0.k).reshape(C, -1).clone()
        )  # (C, 32*16)
        self.shape0 = (c0.cout, c0.k, c0.k)
        for i in (1, 2, 3):
            self.register_buffer(f"w{i}", weights[i])
            self.register_buffer(f"b{i}", biases[i])
        self.strides = [conv.stride for conv in vaes.dec]
        self.loop = True

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        B, C = z.shape[:2]
        if self.loop:  # CPU: each class's whole decoder on contiguous tensors, stacked once
            ws = [w.chunk(C, 0) for w in (self.w1, self.w2, self.w3)]
            bs = [b.chunk(C, 0) for b in (self.b1, self.b2, self.b3)]
            outs = []
            for c in range(C):
                h = F.elu(z[:, c] @ self.w0[c] + self.b0[c]).reshape(B, *self.shape0)  # (B, 32, 4, 4)
                h = h.contiguous(memory_format=torch.channels_last)  # oneDNN's fast deconvolution layout
                h = F.elu(F.conv_transpose2d(h, ws[0][c], bs[0][c], stride=self.strides[1]))  # (B, 16, 11, 11)
                h = F.elu(F.conv_transpose2d(h, ws[1][c], bs[1][c], stride=self.strides[2]))  # (B, 16, 25, 25)
                h = F.conv_transpose2d(h, ws[2][c], bs[2][c], stride=self.strides[3])  # (B, 1, 28, 28)
                outs.append(torch.sigmoid(h).reshape(B, -1))
            return torch.stack(outs, 1)  # (B, C, 784)
        h = torch.einsum("bcl,clo->bco", z, self.w0) + self.b0  # (B, C, 512)
        h = F.elu(h).reshape(B, C * self.shape0[0], *self.shape0[1:])  # (B, C*32, 4, 4)
        h = F.elu(_grouped(F.conv_transpose2d, h, self.w1, self.b1, C, self.loop, stride=self.strides[1]))
        h = F.elu(_grouped(F.conv_transpose2d, h, self.w2, self.b2, C, self.loop, stride=self.strides[2]))
        h = _grouped(F.conv_transpose2d, h, self.w3, self.b3, C, self.loop, stride=self.strides[3])
        return torch.sigmoid(h).reshape(B, C, -1)  # (B, C, 784)


@dataclass
class ABSConfig:
    """ABS inference settings; defaults are the paper's [paper, code]."""

    n_samples: int = 8000  # prior samples in the bank (best of them starts the optimisation)
    steps: int = 50  # Adam updates on z per image and class
    lr: float = 0.05
    radius: float = 5.0  # ||z|| <= radius after every step (inf: no projection)
    beta: float = 1.0  # weight of (1/2)||z||^2
    alpha: float = ALPHA  # modified softmax
    eta: float = ETA
    binary: bool = False  # binarise the input at 0.5 (binary ABS)
    gamma: tuple[float, ...] | None = None  # class loss weights (binary ABS: GAMMA)
    bank_seed: int = 0
    chunk: int = 2000  # images per best-of-samples matrix product (memory bound)


@dataclass
class Inference:
    """What ABS inference returns for a batch: everything per (image, class)."""

    loss: torch.Tensor  # (B, C) (1/784)[||x - G(z*)||^2 + beta/2 ||z*||^2], before gamma
    z: torch.Tensor  # (B, C, L) the optimised latents
    recon: torch.Tensor  # (B, C, 784) G_c(z*_c)
    start_loss: torch.Tensor  # (B, C) loss of the best bank sample
    start_index: torch.Tensor  # (B, C) its index in the bank


def binarize_st(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """x >= threshold -> 1 else 0, with the straight-through (identity) gradient (BPDA)."""
    hard = (x >= threshold).to(x.dtype)
    return x + (hard - x).detach() if x.requires_grad else hard


def modified_softmax(scores: torch.Tensor, alpha: float = ALPHA, eta: float = ETA) -> torch.Tensor:
    """p(c|x) = (exp(alpha * score_c) + eta) / sum_k (exp(alpha * score_k) + eta)  [paper, Eq. 8].

    scores (B, C) are the negative per-pixel losses (<= 0), so exp(alpha * score) <= 1 and eta
    dominates when no class explains x: the confidence then falls to the uniform 1/C. Computed
    in float64 (exp(440 * -0.1) ~ 1e-19).
    """
    e = torch.exp(alpha * scores.to(torch.float64)) + eta
    return (e / e.sum(1, keepdim=True)).to(scores.dtype)


class ABS(nn.Module):
    """The ABS classifier built on trained ``ClassVAEs`` (only the decoders are used).

    ``infer(x)`` runs the whole inference batched over images x classes:
      1. best of the bank: loss of all (image, class, sample) triples by one matrix product
         ||x||^2 - 2 x.G + ||G||^2 (the bank is decoded once, at construction);
      2. ``steps`` Adam updates on z (B, C, L) jointly, each a forward/backward through the ten
         decoders (one grouped op per layer on GPU, a loop over classes on CPU), then the
         projection onto ||z|| <= radius. The best point seen (including the start) is kept, so the
         refinement never increases the loss (the original code returns the last iterate).
    ``forward(x)`` returns the scores -gamma_c * loss_c with the envelope-theorem gradient.
    """

    def __init__(
        self,
        vaes: ClassVAEs | nn.Module,
        config: ABSConfig | None = None,
        *,
        bank: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        """``vaes``: trained ``ClassVAEs`` (folded here) or any decoder module with ``classes``,
        ``latent`` and ``forward(z (B, C, L)) -> (B, C, 784)`` (the tests use toy decoders)."""
        super().__init__()
        self.config = cfg = config or ABSConfig()
        self.decoder = FoldedDecoder(vaes.eval()) if isinstance(vaes, ClassVAEs) else vaes
        C, L = self.decoder.classes, self.decoder.latent
        gamma = torch.tensor(cfg.gamma if cfg.gamma is not None else (1.0,) * C, dtype=torch.float32)
        if gamma.shape != (C,):
            raise ValueError(f"gamma needs {C} values, got {cfg.gamma}")
        self.register_buffer("gamma", gamma)
        self._set_loop()
        if bank is None:
            p = next(iter(self.decoder.buffers()), None)
            z = latent_bank(cfg.n_samples, L, cfg.bank_seed).to(p.device if p is not None else "cpu")
            with torch.no_grad():
                g = torch.cat([self.decoder(z[i : i + 1000, None].expand(-1, C, L)) for i in range(0, len(z), 1000)])
            bank = (z, g.transpose(0, 1).contiguous())  # (S, L), (C, S, 784)
        self.register_buffer("bank_z", bank[0])
        self.register_buffer("bank_x", bank[1])
        self.register_buffer("bank_sq", bank[1].square().sum(2))  # (C, S) ||G_c(z_s)||^2
        self.register_buffer("bank_kl", 0.5 * bank[0].square().sum(1))  # (S,)
        self._cache: tuple[torch.Tensor, Inference] | None = None

    def variant(self, **changes) -> ABS:
        """The same decoders and decoded bank with other settings (binary ABS, fewer steps, ...).
        The bank settings (n_samples, bank_seed) cannot change here."""
        cfg = ABSConfig(**{**self.config.__dict__, **changes})
        if (cfg.n_samples, cfg.bank_seed) != (self.config.n_samples, self.config.bank_seed):
            raise ValueError("variant() shares the decoded bank: n_samples and bank_seed must stay the same")
        return ABS(self.decoder, cfg, bank=(self.bank_z, self.bank_x)).to(self.bank_z.device)

    def _set_loop(self) -> None:
        """Grouped ops on a GPU, a loop over classes on a CPU (see ``_grouped``)."""
        p = next(iter(self.decoder.buffers()), None)
        if p is None:
            p = next(iter(self.decoder.parameters()), None)
        self.decoder.loop = p is None or p.device.type != "cuda"

    def _apply(self, fn, recurse=True):  # .to(device) also re-picks the decoder's execution mode
        out = super()._apply(fn, recurse)
        self._set_loop()
        self._cache = None
        return out

    # -- the two stages ---------------------------------------------------------------------

    def best_samples(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, 784) -> (loss (B, C), index (B, C)) of the best bank sample per image and class."""
        beta = self.config.beta
        losses, indices = [], []
        for i in range(0, len(x), self.config.chunk):
            xb = x[i : i + self.config.chunk]
            cross = torch.einsum("bd,csd->bcs", xb, self.bank_x)  # (b, C, S)
            loss = xb.square().sum(1)[:, None, None] - 2 * cross + self.bank_sq + beta * self.bank_kl
            best, idx = loss.min(2)
            losses.append(best / PIXELS)
            indices.append(idx)
        return torch.cat(losses), torch.cat(indices)

    def _loss(self, x: torch.Tensor, recon: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """(B, 784), (B, C, 784), (B, C, L) -> (B, C) per-pixel loss."""
        return ((x[:, None] - recon).square().sum(2) + 0.5 * self.config.beta * z.square().sum(2)) / PIXELS

    def _project(self, z: torch.Tensor) -> torch.Tensor:
        r = self.config.radius
        if math.isinf(r):
            return z
        return z * (r / z.norm(dim=2, keepdim=True).clamp_min(r))

    def refine(
        self, x: torch.Tensor, z0: torch.Tensor, on_step: Callable[[int, torch.Tensor], None] | None = None
    ) -> Inference:
        """Batched Adam on z (B, C, L) from ``z0``; returns the best point seen per (image, class).

        Adam is elementwise, so one optimiser over the sum of all (image, class) losses is exactly
        B*C independent optimisers; written out here as tensor ops (torch.optim.Adam's update).
        """
        cfg = self.config
        b1, b2, eps = 0.9, 0.999, 1e-8
        z = self._project(z0.clone())
        m, v = torch.zeros_like(z), torch.zeros_like(z)
        best_loss = best_z = best_rec = start_loss = None
        for t in range(cfg.steps + 1):  # steps updates, steps + 1 evaluations
            with torch.enable_grad():
                zg = z.detach().requires_grad_(True)
                rec = self.decoder(zg)  # (B, C, 784)
                loss = self._loss(x, rec, zg)  # (B, C)
                grad = torch.autograd.grad(loss.sum(), zg)[0] if t < cfg.steps else None
            loss, rec = loss.detach(), rec.detach()
            if best_loss is None:
                start_loss, best_loss, best_z, best_rec = loss, loss.clone(), z.clone(), rec.clone()
            else:
                better = loss < best_loss
                best_loss = torch.where(better, loss, best_loss)
                best_z = torch.where(better[..., None], z, best_z)
                best_rec = torch.where(better[..., None], rec, best_rec)
            if grad is None:
                break
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad.square()
            step = cfg.lr * (m / (1 - b1 ** (t + 1))) / ((v / (1 - b2 ** (t + 1))).sqrt() + eps)
            z = self._project(z - step)
            if on_step is not None:
                on_step(t, z)
        return Inference(best_loss, best_z, best_rec, start_loss, torch.empty(0))

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 28, 28) -> what the generative models explain (B, 784): binarised for
        binary ABS (straight-through gradient)."""
        flat = x.reshape(len(x), -1)
        return binarize_st(flat) if self.config.binary else flat

    @torch.no_grad()
    def infer(self, x: torch.Tensor) -> Inference:
        """Full inference for images x (B, 1, 28, 28) in [0, 1]."""
        xf = self.prepare(x.detach()).to(self.bank_x.dtype)
        start, idx = self.best_samples(xf)
        res = self.refine(xf, self.bank_z[idx])  # (B, C, L) start points
        res.start_loss, res.start_index = start, idx
        return res

    def _cached_infer(self, x: torch.Tensor) -> Inference:
        """One-entry cache: attacks often evaluate the same batch twice in a row (PGD: success
        check at x_k, then the gradient at x_k)."""
        xd = x.detach()
        if self._cache is not None and self._cache[0].shape == xd.shape and torch.equal(self._cache[0], xd):
            return self._cache[1]
        res = self.infer(xd)
        self._cache = (xd.clone(), res)
        return res

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores (B, C) = -gamma_c * loss_c(x); differentiable in x by the envelope theorem."""
        res = self._cached_infer(x)
        xf = self.prepare(x)
        loss = self._loss(xf, res.recon, res.z)  # recon and z are constants: envelope gradient
        return -self.gamma * loss

    def confidence(self, x: torch.Tensor) -> torch.Tensor:
        """Modified-softmax probabilities (B, C)."""
        with torch.no_grad():
            return modified_softmax(self(x), self.config.alpha, self.config.eta)


class ProbabilityModel(nn.Module):
    """Wrap a model so that it returns log-probabilities: ABS -> log modified softmax, any other
    model -> log_softmax. Used by the distal-adversarial attack (push p(target) to 0.9)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.model(x)
        if isinstance(self.model, ABS):
            cfg = self.model.config
            log_eta = torch.full_like(s, math.log(cfg.eta), dtype=torch.float64)
            e = torch.logaddexp(cfg.alpha * s.to(torch.float64), log_eta)
            return (e - torch.logsumexp(e, 1, keepdim=True)).to(s.dtype)
        return F.log_softmax(s, 1)


def reference_scores(
    decode_class: Callable[[int, torch.Tensor], torch.Tensor],
    bank_z: torch.Tensor,
    x: torch.Tensor,
    config: ABSConfig,
    classes: int = CLASSES,
    bank: Sequence[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The straightforward implementation: a loop over images and classes, the bank decoded per
    class, torch.optim.Adam on a single z (1, L). Returns (loss (N, C), z (N, C, L)).

    ``decode_class(c, z)``: (n, L) -> (n, 784) with class c's decoder; ``bank``: the decoded bank
    per class (decoded here when None). For tests and the benchmark.
    """
    cfg = config
    if bank is None:
        with torch.no_grad():
            bank = [decode_class(c, bank_z) for c in range(classes)]  # C x (S, 784)
    kl_bank = 0.5 * cfg.beta * bank_z.square().sum(1)
    losses = torch.empty(len(x), classes)
    zs = torch.empty(len(x), classes, bank_z.shape[1])
    for i in range(len(x)):
        xi = x[i].reshape(-1)
        if cfg.binary:
            xi = (xi >= 0.5).to(xi.dtype)
        for c in range(classes):
            with torch.no_grad():
                l0 = ((xi - bank[c]).square().sum(1) + kl_bank) / PIXELS
            z = bank_z[l0.argmin()].clone()[None]
            if not math.isinf(cfg.radius):
                z = z * (cfg.radius / z.norm().clamp_min(cfg.radius))
            z.requires_grad_(True)
            opt = torch.optim.Adam([z], lr=cfg.lr)
            best, best_z = math.inf, None
            for t in range(cfg.steps + 1):
                loss = ((xi - decode_class(c, z)[0]).square().sum() + 0.5 * cfg.beta * z.square().sum()) / PIXELS
                if loss.item() < best:
                    best, best_z = loss.item(), z.detach().clone()
                if t == cfg.steps:
                    break
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    if not math.isinf(cfg.radius):
                        z.mul_(cfg.radius / z.norm().clamp_min(cfg.radius))
            losses[i, c], zs[i, c] = best, best_z[0]
    return losses, zs


def class_decoder(vaes: ClassVAEs) -> Callable[[int, torch.Tensor], torch.Tensor]:
    """``decode_class(c, z)`` for ``reference_scores``: class c's decoder alone, from the unfolded
    eval-mode ``ClassVAEs`` (BatchNorm layers as layers), on weight slices."""
    vaes.eval()

    def decode(c: int, z: torch.Tensor) -> torch.Tensor:
        h = z.reshape(len(z), -1, 1, 1)
        n = len(vaes.dec)
        for i, conv in enumerate(vaes.dec):
            w = conv.weight.chunk(conv.groups, 0)[c]
            b = conv.bias.chunk(conv.groups, 0)[c]
            h = F.conv_transpose2d(h, w, b, stride=conv.stride)
            if i < n - 1:
                bn = vaes.dec_bn[i]
                sl = slice(c * conv.cout, (c + 1) * conv.cout)
                h = F.elu(
                    F.batch_norm(
                        h, bn.running_mean[sl], bn.running_var[sl], bn.weight[sl], bn.bias[sl], False, 0.0, bn.eps
                    )
                )
        return torch.sigmoid(h).reshape(len(z), -1)

    return decode


# =============================================================================================
# 3. The instance-specific L2 lower bound
# =============================================================================================


def lower_bound(model: ABS, x: torch.Tensor, y: torch.Tensor, *, recon_steps: int | None = None) -> torch.Tensor:
    """epsilon*(x) = min_{c != y} (r_c^2 - r~_y^2 - k_y) / (2 (r_c + r~_y)) per image (N,).

    r~_y, k_y: reconstruction distance and (beta/2)||z*||^2 at the ABS optimum of class y;
    r_c = min_z ||x - G_c(z)|| the pure reconstruction distance of every other class (ABS
    inference with beta = 0 and no norm ball). Under any ||delta||_2 < epsilon* the class-y loss
    stays below every other class's loss (derivation in the chapter). A true bound only if the minima are global
    (they are estimated). Negative values mean "no certificate" (e.g. misclassified x).
    Plain ABS only (no binarisation, gamma = 1).
    """
    if model.config.binary or (model.gamma != 1).any():
        raise ValueError("lower_bound is derived for plain ABS (binary=False, gamma=None)")
    res = model.infer(x)
    rec_model = model.variant(beta=0.0, radius=math.inf, steps=recon_steps or model.config.steps)
    # beta = 0 changes the bank's best-sample criterion, not the bank: variant() shares it.
    res0 = rec_model.infer(x)
    xf = x.reshape(len(x), -1)
    idx = torch.arange(len(x), device=x.device)
    r_y = (xf - res.recon[idx, y]).norm(dim=1)  # (N,)
    k_y = 0.5 * model.config.beta * res.z[idx, y].square().sum(1)
    r_c = (xf[:, None] - res0.recon).norm(dim=2)  # (N, C)
    eps = (r_c.square() - r_y[:, None].square() - k_y[:, None]) / (2 * (r_c + r_y[:, None]))
    eps[idx, y] = math.inf
    return eps.amin(1)


# =============================================================================================
# 4. Baselines
# =============================================================================================


class CNN(nn.Module):
    """The paper's vanilla CNN [code]: four convs, kernels (5, 4, 3, 5), strides (1, 2, 2, 1),
    BatchNorm + ELU after the first three, logits = the last conv (1x1 output).
    ``channels=(20, 70, 256, 10)``: the vanilla CNN; ``(32, 32, 64, 10)``: the transfer substitute.
    ``binary=True``: the input is binarised at 0.5 first (binary CNN; straight-through gradient)."""

    def __init__(self, channels: Sequence[int] = (20, 70, 256, 10), binary: bool = False):
        super().__init__()
        ks, ss = (5, 4, 3, 5), (1, 2, 2, 1)
        cin = [1, *channels[:-1]]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, k, s) for a, b, k, s in zip(cin, channels, ks, ss))
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for c in channels[:-1])
        self.binary = binary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = binarize_st(x) if self.binary else x
        for conv, bn in zip(self.convs[:-1], self.bns):
            h = F.elu(bn(conv(h)))  # 28 -> 24 -> 11 -> 5
        return self.convs[-1](h).flatten(1)  # (N, 10)


def binary_view(cnn: CNN) -> CNN:
    """The binary CNN: the same weights, binarised input (no retraining [code])."""
    out = CNN([c.out_channels for c in cnn.convs], binary=True)
    out.load_state_dict(cnn.state_dict())
    return out.to(next(cnn.parameters()).device).eval()


def madry_step(eps: float, steps: int, ramp_iters: int):
    """``train.fit`` step for L-inf PGD adversarial training; eps ramps linearly from 0 over
    ``ramp_iters`` iterations (stabilises short MNIST runs). The adversary is the library's one
    Madry PGD (``attacks.madry_pgd``: random start, ``steps`` signed steps of 2.5 * eps / steps,
    the last iterate, eval-mode BatchNorm)."""

    def step(model, batch, optimizer) -> dict[str, float]:
        e = eps * min(1.0, (batch.iteration + 1) / max(ramp_iters, 1))
        xa = madry_pgd(model, batch.x, batch.y, e, steps=steps)
        optimizer.zero_grad(set_to_none=True)
        out = model(xa)
        loss = F.cross_entropy(out, batch.y)
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "correct": (out.argmax(1) == batch.y).sum().item(), "eps": e}

    return step


# =============================================================================================
# 5. ABS-specific attacks
# =============================================================================================


def _binary_target(x: torch.Tensor, rec: torch.Tensor) -> torch.Tensor:
    """Binary ABS: the smallest change of x that gives rec's binarisation [code]: pixels already
    on rec's side of 0.5 keep x's value; others move just across the threshold."""
    up = (rec >= 0.5) & (x < 0.5)
    down = (rec < 0.5) & (x >= 0.5)
    out = x.clone()
    out[up] = 0.5
    out[down] = 0.49999
    return out


@torch.no_grad()
def latent_descent(
    model: ABS, x: torch.Tensor, y: torch.Tensor, *, n_coarse: int = 51, n_bisect: int = 10
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Latent Descent [paper, code]: walk from x towards the reconstruction of the best *other*
    class, x_t = (1 - t) x + t r_o, t on linspace(0, 1, n_coarse), recomputing r_o at the current
    point after every coarse step, until the prediction changes; then bisect t between the last
    clean and the first adversarial t (with the adversarial point's r_o).

    Returns (adversarials (N, 1, 28, 28), t (N,), t_clean (N,)): t = 0 for images misclassified
    already, inf (and x returned) where even t = 1 stays correct; t_clean is the largest t found
    clean (the bisection's lower end).
    """
    n = len(x)
    xf = x.reshape(n, -1)
    ts = torch.linspace(0, 1, n_coarse, device=x.device)
    t_hi = torch.full((n,), math.inf, device=x.device)
    t_lo = torch.zeros(n, device=x.device)
    target = torch.zeros_like(xf)
    res = model.infer(x)
    scores = -model.gamma * res.loss
    done = scores.argmax(1) != y
    t_hi[done] = 0.0

    def other_recon(r: Inference, s: torch.Tensor, yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        s = s.masked_fill(F.one_hot(yy, s.shape[1]).bool(), -math.inf)
        rec = r.recon[torch.arange(len(yy), device=x.device), s.argmax(1)]
        return _binary_target(xx, rec) if model.config.binary else rec

    rec_o = other_recon(res, scores, y, xf)
    for t in ts[1:]:
        todo = torch.nonzero(~done).flatten()
        if len(todo) == 0:
            break
        cand = (1 - t) * xf[todo] + t * rec_o[todo]
        r = model.infer(cand.reshape(-1, *x.shape[1:]))
        s = -model.gamma * r.loss
        fooled = s.argmax(1) != y[todo]
        hit = todo[fooled]
        t_hi[hit] = t
        target[hit] = rec_o[hit]  # the segment the adversarial point lies on
        done[hit] = True
        miss = todo[~fooled]
        t_lo[miss] = t
        rec_o[miss] = other_recon(r, s, y[todo], cand)[~fooled]
    found = torch.isfinite(t_hi) & (t_hi > 0)
    lo = t_lo.clone()
    for _ in range(n_bisect):
        f = torch.nonzero(found).flatten()
        if len(f) == 0:
            break
        mid = (lo[f] + t_hi[f]) / 2
        cand = (1 - mid[:, None]) * xf[f] + mid[:, None] * target[f]
        fooled = model(cand.reshape(-1, *x.shape[1:])).argmax(1) != y[f]
        t_hi[f[fooled]] = mid[fooled]
        lo[f[~fooled]] = mid[~fooled]
    adv = xf.clone()
    adv[found] = (1 - t_hi[found, None]) * xf[found] + t_hi[found, None] * target[found]
    return adv.reshape(x.shape).clamp(0, 1), t_hi, lo


def latent_descent_attack(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: None = None, *, n_coarse: int = 51, n_bisect: int = 10
) -> torch.Tensor:
    """``latent_descent`` with the attack signature of ``robustlib.attacks`` (a minimal L2 attack,
    registered as ``"latent_descent"``): adversarials only. ``model`` must be an ``ABS``."""
    if not isinstance(model, ABS):
        raise ValueError(
            f"Latent Descent needs an ABS model (it uses the class reconstructions), got {type(model).__name__}"
        )
    return latent_descent(model, x, y, n_coarse=n_coarse, n_bisect=n_bisect)[0]


def distal(
    model: nn.Module,
    x0: torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int = 100,
    lr: float = 0.01,
    threshold: float = 0.9,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distal adversarials: from x0 (e.g. uniform noise) ascend log p(target | x) by signed
    gradient steps of size ``lr`` inside [0, 1], unconstrained in size, until p >= ``threshold``.

    ``model`` returns log-probabilities (``ProbabilityModel``). Returns (images, p_target at the
    end (N,), success (N,) bool). An image that reaches the threshold is frozen there.
    """
    x = x0.clone()
    done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    p = torch.zeros(len(x), device=x.device)
    for k in range(steps + 1):
        todo = torch.nonzero(~done).flatten()
        if len(todo) == 0:
            break
        xt = x[todo].detach().requires_grad_(True)
        with torch.enable_grad():
            logp = model(xt)[torch.arange(len(todo), device=x.device), target[todo]]
            (g,) = torch.autograd.grad(logp.sum(), xt)
        p[todo] = logp.detach().exp().to(p.dtype)
        reached = p[todo] >= threshold
        done[todo[reached]] = True
        if k == steps:
            break
        go = todo[~reached]
        x[go] = (xt.detach()[~reached] + lr * g[~reached].sign()).clamp(0, 1)
    return x.detach(), p, done
