"""Fused Triton kernels of the exact all-negatives Triplet-InfoNCE (float32).

This module imports triton at import time; it is itself only imported when the
Triton backend is selected (see [`unihpr.ops.exact_triplet_info_nce`][]), so
``import unihpr`` stays free of it.

Forward: one program per anchor walks the anchor's three B×B planes (see
[`unihpr.ops.exact_triplet`][]) in (BLOCK_U, BLOCK_V) tiles, evaluating λ1 in
closed form in registers and keeping a running per-row (max, sum-exp), so the
only output is one log-sum-exp per anchor.

Backward: dL/dλ of a triplet t = (i, j, k) is, with G_x = g_x/τ for anchors
and 0 otherwise,

    w(t) = G_i e^{λ/τ − LSE_i} + [j ≠ i] G_j e^{λ/τ − LSE_j}
           + [k ∉ {i, j}] G_k e^{λ/τ − LSE_k},

a pointwise function of t given the saved LSEs (t belongs to the sets of its
distinct members, in plane 0, 1, 2 respectively). Each of dS12 = Σ_k w ∂λ/∂a,
dS13 = Σ_j w ∂λ/∂b and dS23 = Σ_i w ∂λ/∂c is then a plain reduction computed
by its own grid with recomputation: no atomics, deterministic. The positive's
−λ/τ term is added in PyTorch.

λ1 and its gradient use the arithmetic of [`unihpr.ops.gram`][] (the angle
φ = atan2(sqrt(Δ/4), −3√3 abc) and the same gradient rule), written out in
the kernels; `tests/ops/test_triton_triplet.py` checks them elementwise
against it through [`triton_lambda1_and_grad`][]. atan2 is evaluated with a
Cephes-style minimax polynomial (about 1 ulp in float32) because libdevice's
is unavailable in the interpreter (TRITON_INTERPRET=1), where these kernels
are tested on the CPU.
"""

from __future__ import annotations

import torch
from torch import Tensor

from unihpr._optional import require

triton = require("triton")
tl = require("triton.language", extra="triton")

from unihpr.ops.gram import lambda1_forward, lambda1_grad  # noqa: E402

__all__ = ["triton_exact_triplet_info_nce", "triton_lambda1_and_grad"]


@triton.jit
def _atan2_nonneg(y, x):
    # atan2 for y >= 0: atan of min/max in [0, 1], reduced once more around
    # tan(π/8), then reflected. Small angles keep full relative precision.
    ax = tl.abs(x)
    t = tl.minimum(y, ax) / tl.maximum(tl.maximum(y, ax), 1e-37)
    big = t > 0.41421356237309503
    u = tl.where(big, (t - 1.0) / (t + 1.0), t)
    z = u * u
    poly = 8.05374449538e-2 * z - 1.38776856032e-1
    poly = poly * z + 1.99777106478e-1
    poly = poly * z - 3.33329491539e-1
    at = poly * z * u + u
    at = tl.where(big, at + 0.7853981633974483, at)
    at = tl.where(y > ax, 1.5707963267948966 - at, at)
    return tl.where(x < 0.0, 3.141592653589793 - at, at)


@triton.jit
def _gram_lam(a, b, c):
    # Same arithmetic as unihpr.ops.gram.lambda1_forward.
    x = a * a
    y = b * b
    z = c * c
    p = x + y + z
    inv = 1.0 / tl.maximum(p, 1.1754943508222875e-38)
    x = x * inv
    y = y * inv
    z = z * inv
    dxy = x - y
    dyz = y - z
    dzx = z - x
    d4 = dxy * dxy * (0.5 + 3.0 * z) + dyz * dyz * (0.5 + 3.0 * x) + dzx * dzx * (0.5 + 3.0 * y)
    cos_part = -5.196152422706632 * (a * b * c * tl.sqrt(inv)) * inv
    phi = _atan2_nonneg(tl.sqrt(d4), cos_part)
    r = tl.sqrt(p / 3.0)
    mu1 = 2.0 * r * tl.cos((3.141592653589793 - phi) / 3.0)
    return 1.0 + mu1, mu1, r, phi, p


@triton.jit
def _gram_grad(a, b, c, mu1, r, phi, p, WHICH: tl.constexpr):
    # Same rule as unihpr.ops.gram.lambda1_grad, for one partial.
    if WHICH == 0:
        u, v, s = b, c, a
    elif WHICH == 1:
        u, v, s = a, c, b
    else:
        u, v, s = a, b, c
    third = phi / 3.0
    gap = 4.0 * tl.sin(third) * tl.sin(2.0943951023931953 - third)
    simple = gap > 64.0 * 1.1920928955078125e-07
    p_safe = tl.maximum(p, 1.1754943508222875e-38)
    g1 = 2.0 * (u * v + s * mu1) / p_safe / tl.where(simple, gap, 1.0)
    mu3 = -2.0 * r * tl.cos(third)
    den3 = 3.0 * mu3 * mu3 - p
    triple = den3 <= 64.0 * 1.1920928955078125e-07 * p_safe
    scale = tl.where(triple, 0.0, -1.0 / tl.where(triple, 1.0, den3))
    g = tl.where(simple, g1, (u * v + s * mu3) * scale)
    return tl.minimum(tl.maximum(g, -1.0), 1.0)


@triton.jit
def _lambda1_kernel(a_ptr, b_ptr, c_ptr, out_ptr, n, BLOCK: tl.constexpr):
    # Elementwise λ1 and its three partials, for testing against unihpr.ops.gram.
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    a = tl.load(a_ptr + offs, mask=m, other=0.0)
    b = tl.load(b_ptr + offs, mask=m, other=0.0)
    c = tl.load(c_ptr + offs, mask=m, other=0.0)
    lam, mu1, r, phi, p = _gram_lam(a, b, c)
    tl.store(out_ptr + offs, lam, mask=m)
    tl.store(out_ptr + n + offs, _gram_grad(a, b, c, mu1, r, phi, p, 0), mask=m)
    tl.store(out_ptr + 2 * n + offs, _gram_grad(a, b, c, mu1, r, phi, p, 1), mask=m)
    tl.store(out_ptr + 3 * n + offs, _gram_grad(a, b, c, mu1, r, phi, p, 2), mask=m)


@triton.jit
def _fwd_kernel(
    s12, s13, s23, anchors, tau_ptr, lse_out, lamsum_out, B,
    BLOCK_U: tl.constexpr, BLOCK_V: tl.constexpr,
):  # fmt: skip
    n = tl.program_id(0)
    a = tl.load(anchors + n)
    inv_tau = 1.0 / tl.load(tau_ptr)
    offs_u = tl.arange(0, BLOCK_U)
    offs_v = tl.arange(0, BLOCK_V)
    m_row = tl.full((BLOCK_U,), -1e30, tl.float32)
    s_row = tl.zeros((BLOCK_U,), tl.float32)
    lam_row = tl.zeros((BLOCK_U,), tl.float32)
    for plane in tl.static_range(3):
        for u0 in range(0, B, BLOCK_U):
            u = u0 + offs_u
            um = u < B
            for v0 in range(0, B, BLOCK_V):
                v = v0 + offs_v
                vm = v < B
                valid = um[:, None] & vm[None, :]
                if plane == 0:  # (a, j=u, k=v)
                    av = tl.load(s12 + a * B + u, mask=um, other=0.0)[:, None]
                    bv = tl.load(s13 + a * B + v, mask=vm, other=0.0)[None, :]
                    cv = tl.load(s23 + u[:, None] * B + v[None, :], mask=valid, other=0.0)
                elif plane == 1:  # (i=u, a, k=v), i != a
                    av = tl.load(s12 + u * B + a, mask=um, other=0.0)[:, None]
                    bv = tl.load(s13 + u[:, None] * B + v[None, :], mask=valid, other=0.0)
                    cv = tl.load(s23 + a * B + v, mask=vm, other=0.0)[None, :]
                    valid = valid & (u != a)[:, None]
                else:  # (i=u, j=v, a), i != a, j != a
                    av = tl.load(s12 + u[:, None] * B + v[None, :], mask=valid, other=0.0)
                    bv = tl.load(s13 + u * B + a, mask=um, other=0.0)[:, None]
                    cv = tl.load(s23 + v * B + a, mask=vm, other=0.0)[None, :]
                    valid = valid & (u != a)[:, None] & (v != a)[None, :]
                lam, _mu1, _r, _phi, _p = _gram_lam(av, bv, cv)
                x = tl.where(valid, lam * inv_tau, float("-inf"))
                m_new = tl.maximum(m_row, tl.max(x, axis=1))
                s_row = s_row * tl.exp(m_row - m_new) + tl.sum(tl.exp(x - m_new[:, None]), axis=1)
                m_row = m_new
                lam_row += tl.sum(tl.where(valid, lam, 0.0), axis=1)
    m = tl.max(m_row, axis=0)
    s = tl.sum(s_row * tl.exp(m_row - m), axis=0)
    tl.store(lse_out + n, m + tl.log(s))
    tl.store(lamsum_out + n, tl.sum(lam_row, axis=0))


@triton.jit
def _weight(lam, inv_tau, i, j, k, coef, lse, valid, mj, mk):
    """dL/dλ for the triplets (i, j[:, None], k[None, :]) of a tile."""
    x = lam * inv_tau
    ci = tl.load(coef + i)
    li = tl.load(lse + i)
    cj = tl.load(coef + j, mask=mj, other=0.0)[:, None]
    lj = tl.load(lse + j, mask=mj, other=float("inf"))[:, None]
    ck = tl.load(coef + k, mask=mk, other=0.0)[None, :]
    lk = tl.load(lse + k, mask=mk, other=float("inf"))[None, :]
    w = ci * tl.exp(x - li)
    w += tl.where((j != i)[:, None], cj * tl.exp(x - lj), 0.0)
    kk = (k[None, :] != i) & (k[None, :] != j[:, None])
    w += tl.where(kk, ck * tl.exp(x - lk), 0.0)
    return tl.where(valid, w, 0.0)


@triton.jit
def _bwd_rows_kernel(
    s12, s13, s23, tau_ptr, coef, lse, out, B,
    REDUCE_K: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    # REDUCE_K: out = dS12[i, j-tile] = Σ_k w ∂λ/∂a; else out = dS13[i, k-tile] = Σ_j w ∂λ/∂b.
    i = tl.program_id(0)
    t = tl.program_id(1)
    inv_tau = 1.0 / tl.load(tau_ptr)
    if REDUCE_K:
        j = t * BLOCK_J + tl.arange(0, BLOCK_J)
        mj = j < B
        acc = tl.zeros((BLOCK_J,), tl.float32)
        av = tl.load(s12 + i * B + j, mask=mj, other=0.0)[:, None]
        for k0 in range(0, B, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            mk = k < B
            valid = mj[:, None] & mk[None, :]
            bv = tl.load(s13 + i * B + k, mask=mk, other=0.0)[None, :]
            cv = tl.load(s23 + j[:, None] * B + k[None, :], mask=valid, other=0.0)
            lam, mu1, r, phi, p = _gram_lam(av, bv, cv)
            w = _weight(lam, inv_tau, i, j, k, coef, lse, valid, mj, mk)
            acc += tl.sum(w * _gram_grad(av, bv, cv, mu1, r, phi, p, 0), axis=1)
        tl.store(out + i * B + j, acc, mask=mj)
    else:
        k = t * BLOCK_K + tl.arange(0, BLOCK_K)
        mk = k < B
        acc = tl.zeros((BLOCK_K,), tl.float32)
        bv = tl.load(s13 + i * B + k, mask=mk, other=0.0)[None, :]
        for j0 in range(0, B, BLOCK_J):
            j = j0 + tl.arange(0, BLOCK_J)
            mj = j < B
            valid = mj[:, None] & mk[None, :]
            av = tl.load(s12 + i * B + j, mask=mj, other=0.0)[:, None]
            cv = tl.load(s23 + j[:, None] * B + k[None, :], mask=valid, other=0.0)
            lam, mu1, r, phi, p = _gram_lam(av, bv, cv)
            w = _weight(lam, inv_tau, i, j, k, coef, lse, valid, mj, mk)
            acc += tl.sum(w * _gram_grad(av, bv, cv, mu1, r, phi, p, 1), axis=0)
        tl.store(out + i * B + k, acc, mask=mk)


@triton.jit
def _bwd_s23_kernel(
    s12, s13, s23, tau_ptr, coef, lse, out, tau_part, B,
    BLOCK_J: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    # out = dS23[j-tile, k-tile] = Σ_i w ∂λ/∂c; tau_part[pid] = Σ_{i, tile} w λ.
    pj = tl.program_id(0)
    pk = tl.program_id(1)
    inv_tau = 1.0 / tl.load(tau_ptr)
    j = pj * BLOCK_J + tl.arange(0, BLOCK_J)
    k = pk * BLOCK_K + tl.arange(0, BLOCK_K)
    mj = j < B
    mk = k < B
    valid = mj[:, None] & mk[None, :]
    cv = tl.load(s23 + j[:, None] * B + k[None, :], mask=valid, other=0.0)
    acc = tl.zeros((BLOCK_J, BLOCK_K), tl.float32)
    tacc = tl.zeros((BLOCK_J, BLOCK_K), tl.float32)
    for i in range(0, B):
        av = tl.load(s12 + i * B + j, mask=mj, other=0.0)[:, None]
        bv = tl.load(s13 + i * B + k, mask=mk, other=0.0)[None, :]
        lam, mu1, r, phi, p = _gram_lam(av, bv, cv)
        w = _weight(lam, inv_tau, i, j, k, coef, lse, valid, mj, mk)
        acc += w * _gram_grad(av, bv, cv, mu1, r, phi, p, 2)
        tacc += w * lam
    tl.store(out + j[:, None] * B + k[None, :], acc, mask=valid)
    tl.store(tau_part + pj * tl.num_programs(1) + pk, tl.sum(tl.sum(tacc, axis=1), axis=0))


def _block(B: int, cap: int) -> int:
    return max(16, min(cap, triton.next_power_of_2(B)))


class _TritonExactTripletNCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s12, s13, s23, tau, anchors):  # type: ignore[override]
        s12, s13, s23 = s12.contiguous(), s13.contiguous(), s23.contiguous()
        B, A = s12.shape[0], anchors.numel()
        tau_buf = tau.detach().reshape(1).contiguous()
        lse = torch.empty(A, dtype=torch.float32, device=s12.device)
        lam_sum = torch.empty_like(lse)
        bu = _block(B, 32)
        bv = _block(B, 64)
        _fwd_kernel[(A,)](s12, s13, s23, anchors, tau_buf, lse, lam_sum, B, BLOCK_U=bu, BLOCK_V=bv)
        idx = anchors
        lam_pos, mu1, r, phi = lambda1_forward(s12[idx, idx], s13[idx, idx], s23[idx, idx])
        loss = (lse - lam_pos / tau).mean()
        lam_neg = (lam_sum - lam_pos) / (3 * B * B - 3 * B)
        ctx.save_for_backward(s12, s13, s23, tau, anchors, lse, lam_pos, mu1, r, phi)
        ctx.mark_non_differentiable(lam_pos, lam_neg)
        return loss, lam_pos, lam_neg

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, _g_pos, _g_neg):  # type: ignore[override]
        s12, s13, s23, tau, anchors, lse, lam_pos, mu1, r, phi = ctx.saved_tensors
        B, A = s12.shape[0], anchors.numel()
        g = (grad_loss / A).expand(A).to(torch.float32)
        coef = torch.zeros(B, dtype=torch.float32, device=s12.device)
        coef.index_add_(0, anchors, g / tau)
        lse_full = torch.full((B,), float("inf"), dtype=torch.float32, device=s12.device)
        lse_full[anchors] = lse
        tau_buf = tau.detach().reshape(1).contiguous()
        d12, d13, d23 = (torch.empty_like(s12) for _ in range(3))
        bj, bk = _block(B, 32), _block(B, 64)
        n_j, n_k = triton.cdiv(B, bj), triton.cdiv(B, bk)
        _bwd_rows_kernel[(B, n_j)](
            s12, s13, s23, tau_buf, coef, lse_full, d12, B,
            REDUCE_K=True, BLOCK_J=bj, BLOCK_K=bk,
        )  # fmt: skip
        _bwd_rows_kernel[(B, n_k)](
            s12, s13, s23, tau_buf, coef, lse_full, d13, B,
            REDUCE_K=False, BLOCK_J=bj, BLOCK_K=bk,
        )  # fmt: skip
        tau_part = torch.empty(n_j * n_k, dtype=torch.float32, device=s12.device)
        _bwd_s23_kernel[(n_j, n_k)](
            s12, s13, s23, tau_buf, coef, lse_full, d23, tau_part, B,
            BLOCK_J=bj, BLOCK_K=bk,
        )  # fmt: skip
        idx = anchors
        a0, b0, c0 = s12[idx, idx], s13[idx, idx], s23[idx, idx]
        ga, gb, gc = lambda1_grad(a0, b0, c0, mu1, r, phi)
        wp = -g / tau
        d12.index_put_((idx, idx), wp * ga, accumulate=True)
        d13.index_put_((idx, idx), wp * gb, accumulate=True)
        d23.index_put_((idx, idx), wp * gc, accumulate=True)
        grad_tau = None
        if ctx.needs_input_grad[3]:
            grad_tau = -(tau_part.sum() + (wp * lam_pos).sum()) / tau
        return d12, d13, d23, grad_tau, None


def triton_exact_triplet_info_nce(
    s12: Tensor, s13: Tensor, s23: Tensor, tau: Tensor, *, anchors: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Triton implementation of [`unihpr.ops.exact_triplet_info_nce`][].

    Args:
        s12, s13, s23: ``(B, B)`` float32 cosine matrices (CUDA, or CPU under
            ``TRITON_INTERPRET=1``).
        tau: 0-dim float32 temperature tensor.
        anchors: ``(A,)`` int64 anchor rows.

    Returns:
        ``(loss, lam_pos, lam_neg)`` as the PyTorch path.

    Raises:
        ValueError: If the matrices are not float32.
    """
    if s12.dtype != torch.float32:
        raise ValueError(
            f"triton_exact_triplet_info_nce: the Triton kernels are float32 only, got {s12.dtype}; "
            "use backend='torch' for float64"
        )
    return _TritonExactTripletNCE.apply(s12, s13, s23, tau, anchors.contiguous())


def triton_lambda1_and_grad(
    a: Tensor, b: Tensor, c: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """λ1 and its three partials evaluated by the kernels' own arithmetic.

    For testing the in-kernel copy of [`unihpr.ops.gram`][] elementwise.

    Args:
        a, b, c: float32 tensors of one shape ``(...)`` (CUDA, or CPU under
            ``TRITON_INTERPRET=1``).

    Returns:
        ``(lam, dlam/da, dlam/db, dlam/dc)``, each of shape ``(...)``.
    """
    a, b, c = torch.broadcast_tensors(a, b, c)
    shape = a.shape
    a, b, c = (t.contiguous().reshape(-1) for t in (a, b, c))
    if a.dtype != torch.float32:
        raise ValueError(f"triton_lambda1_and_grad: float32 only, got {a.dtype}")
    n = a.numel()
    out = torch.empty(4, n, dtype=torch.float32, device=a.device)
    block = 256
    _lambda1_kernel[(triton.cdiv(max(n, 1), block),)](a, b, c, out, n, BLOCK=block)
    return tuple(o.reshape(shape) for o in out)  # type: ignore[return-value]
