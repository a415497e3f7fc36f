"""Fused Triton kernels for the RBFI distance on a GPU (the CPU uses the C++ kernel of
``kernel.py``). Same contract: z[b, j] = max_i (u[j, i] (x[b, i] - w[j, i]))^2 with the first
argmax, and the pseudogradient backward (shared feedback e^{s - z}), without the (B, m, n) tensor:
each program holds a (rows x units x inputs) tile in registers and loops over the third axis.

* forward: grid over (row tiles, unit tiles), loop over inputs: running max (and argmax);
* dL/dx: grid over (row tiles, input tiles), loop over units, sum over units;
* dL/dw, dL/du: grid over (unit tiles, input tiles), loop over rows, sum over rows.

``kernel.py`` imports this module only when a GPU asks for it, and uses the kernels only after a
self-check against the chunked PyTorch version on the device (falling back to it on any error).
The tests run them on the CPU through Triton's interpreter (``TRITON_INTERPRET=1`` set before this
module is imported), which executes the same kernel code with NumPy.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BB, BM, BN = 16, 16, 16  # tile: rows x units x inputs (4096 values per program and step)


@triton.jit
def fwd(x, w, u, z, arg, B, M, N, BB: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, WANT_ARG: tl.constexpr):
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rm = tl.program_id(1) * BM + tl.arange(0, BM)
    best = tl.full((BB, BM), -1.0, tl.float32)
    barg = tl.zeros((BB, BM), tl.int32)
    for n0 in range(0, N, BN):
        rn = n0 + tl.arange(0, BN)
        xt = tl.load(x + rb[:, None] * N + rn[None, :], mask=(rb[:, None] < B) & (rn[None, :] < N), other=0.0)
        mask_w = (rm[:, None] < M) & (rn[None, :] < N)
        wt = tl.load(w + rm[:, None] * N + rn[None, :], mask=mask_w, other=0.0)
        ut = tl.load(u + rm[:, None] * N + rn[None, :], mask=mask_w, other=0.0)  # u = 0: s = 0 <= any s
        t = ut[None, :, :] * (xt[:, None, :] - wt[None, :, :])
        s = t * t  # (BB, BM, BN)
        cm = tl.max(s, axis=2)
        if WANT_ARG:
            ca = tl.argmax(s, axis=2, tie_break_left=True) + n0
            barg = tl.where(cm > best, ca, barg)  # strict: an earlier chunk keeps a tie
        best = tl.maximum(best, cm)
    out = (rb[:, None] < B) & (rm[None, :] < M)
    tl.store(z + rb[:, None] * M + rm[None, :], best, mask=out)
    if WANT_ARG:
        tl.store(arg + rb[:, None] * M + rm[None, :], barg.to(tl.int64), mask=out)


@triton.jit
def bwd_x(x, w, u, z, gz, gx, B, M, N, BB: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr):
    rb = tl.program_id(0) * BB + tl.arange(0, BB)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    xt = tl.load(x + rb[:, None] * N + rn[None, :], mask=(rb[:, None] < B) & (rn[None, :] < N), other=0.0)
    acc = tl.zeros((BB, BN), tl.float32)
    for m0 in range(0, M, BM):
        rm = m0 + tl.arange(0, BM)
        mask_w = (rm[:, None] < M) & (rn[None, :] < N)
        wt = tl.load(w + rm[:, None] * N + rn[None, :], mask=mask_w, other=0.0)
        ut = tl.load(u + rm[:, None] * N + rn[None, :], mask=mask_w, other=0.0)
        mask_z = (rb[:, None] < B) & (rm[None, :] < M)
        zt = tl.load(z + rb[:, None] * M + rm[None, :], mask=mask_z, other=0.0)
        gzt = tl.load(gz + rb[:, None] * M + rm[None, :], mask=mask_z, other=0.0)  # padding: no feedback
        t = ut[None, :, :] * (xt[:, None, :] - wt[None, :, :])
        a = 2.0 * gzt[:, :, None] * tl.exp(t * t - zt[:, :, None]) * t
        acc += tl.sum(a * ut[None, :, :], axis=1)
    tl.store(gx + rb[:, None] * N + rn[None, :], acc, mask=(rb[:, None] < B) & (rn[None, :] < N))


@triton.jit
def bwd_p(x, w, u, z, gz, gw, gu, B, M, N, BB: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr):
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    mask_w = (rm[:, None] < M) & (rn[None, :] < N)
    wt = tl.load(w + rm[:, None] * N + rn[None, :], mask=mask_w, other=0.0)
    ut = tl.load(u + rm[:, None] * N + rn[None, :], mask=mask_w, other=0.0)
    acc_w = tl.zeros((BM, BN), tl.float32)
    acc_u = tl.zeros((BM, BN), tl.float32)
    for b0 in range(0, B, BB):
        rb = b0 + tl.arange(0, BB)
        xt = tl.load(x + rb[:, None] * N + rn[None, :], mask=(rb[:, None] < B) & (rn[None, :] < N), other=0.0)
        mask_z = (rb[:, None] < B) & (rm[None, :] < M)
        zt = tl.load(z + rb[:, None] * M + rm[None, :], mask=mask_z, other=0.0)
        gzt = tl.load(gz + rb[:, None] * M + rm[None, :], mask=mask_z, other=0.0)
        d = xt[:, None, :] - wt[None, :, :]
        t = ut[None, :, :] * d
        a = 2.0 * gzt[:, :, None] * tl.exp(t * t - zt[:, :, None]) * t
        acc_w -= tl.sum(a * ut[None, :, :], axis=0)
        acc_u += tl.sum(a * d, axis=0)
    tl.store(gw + rm[:, None] * N + rn[None, :], acc_w, mask=mask_w)
    tl.store(gu + rm[:, None] * N + rn[None, :], acc_u, mask=mask_w)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def forward(x: torch.Tensor, w: torch.Tensor, u: torch.Tensor, want_arg: bool):
    B, N = x.shape
    M = w.shape[0]
    z = torch.empty(B, M, dtype=x.dtype, device=x.device)
    arg = torch.empty(B, M, dtype=torch.int64, device=x.device) if want_arg else z  # dummy pointer
    fwd[(_cdiv(B, BB), _cdiv(M, BM))](x, w, u, z, arg, B, M, N, BB=BB, BM=BM, BN=BN, WANT_ARG=want_arg)
    return z, (arg if want_arg else None)


def backward(x, w, u, z, gz, need_x: bool, need_p: bool):
    B, N = x.shape
    M = w.shape[0]
    gx = gw = gu = None
    if need_x:
        gx = torch.empty_like(x)
        bwd_x[(_cdiv(B, BB), _cdiv(N, BN))](x, w, u, z, gz, gx, B, M, N, BB=BB, BM=BM, BN=BN)
    if need_p:
        gw, gu = torch.empty_like(w), torch.empty_like(u)
        bwd_p[(_cdiv(M, BM), _cdiv(N, BN))](x, w, u, z, gz, gw, gu, B, M, N, BB=BB, BM=BM, BN=BN)
    return gx, gw, gu
