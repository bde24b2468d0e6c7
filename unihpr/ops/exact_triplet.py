"""Exact all-negatives Triplet-InfoNCE, streamed over chunks (no B³ tensor).

For anchor a the denominator runs over every triplet (i, j, k) that contains
at least one of a's three embeddings, each counted once: 3B² − 3B + 1 terms,
the positive (a, a, a) included. The set is split into three disjoint planes

    P0 = {(a, j, k): all j, k}                      B²
    P1 = {(i, a, k): i ≠ a}                         B(B − 1)
    P2 = {(i, j, a): i ≠ a, j ≠ a}                  (B − 1)²

and each plane is a B×B slab whose logits λ1(S12[i,j], S13[i,k], S23[j,k]) / τ
are read out of the three similarity matrices. The forward pass walks the
slabs in blocks of ``chunk_size`` rows of length B and keeps a running
(max, sum-exp) per anchor (an online log-sum-exp, as in flash attention); the
backward pass recomputes each block, forms dL/dλ from the saved per-anchor
log-sum-exp and scatters it into the three B×B similarity gradients and into
τ. Memory is O(B² + chunk_size·B).

Anchors may be any subset of the rows (the distributed loss uses the rows of
one rank), which is why the slabs are organised per anchor.
"""

from __future__ import annotations

import torch
from torch import Tensor

from unihpr._validate import (
    check_int,
    check_labels,
    check_rows,
    check_same,
    check_square,
    check_tau,
)
from unihpr.ops.backend import resolve_backend
from unihpr.ops.gram import lambda1_forward, lambda1_grad

__all__ = [
    "DEFAULT_BLOCK_ELEMENTS",
    "DEFAULT_BLOCK_ELEMENTS_CUDA",
    "MAX_BLOCK_ELEMENTS",
    "exact_triplet_info_nce",
    "exact_triplet_num_terms",
]

KERNELS = ("torch", "triton")

DEFAULT_BLOCK_ELEMENTS = 1 << 16
"""Triplets evaluated per block on the CPU (256 KiB per float32 temporary; the
closed form and its gradient keep a few dozen alive)."""
DEFAULT_BLOCK_ELEMENTS_CUDA = 1 << 24
"""The same on a GPU, where small blocks would leave it waiting on kernel
launches (64 MiB per float32 temporary)."""
MAX_BLOCK_ELEMENTS = 1 << 28
"""The most triplets a block may hold (1 GiB per float32 temporary): a
``chunk_size`` whose blocks would be larger is refused before allocating."""


def exact_triplet_num_terms(batch_size: int) -> int:
    """Size of one anchor's denominator, positive included: 3B² − 3B + 1."""
    return 3 * batch_size * batch_size - 3 * batch_size + 1


def _blocks(num_anchors: int, batch_size: int, chunk_size: int):
    """Yield (anchor slice, row start, row stop) covering anchors × rows."""
    if chunk_size >= batch_size:
        per = chunk_size // batch_size
        for s in range(0, num_anchors, per):
            yield slice(s, min(s + per, num_anchors)), 0, batch_size
    else:
        for s in range(num_anchors):
            for u0 in range(0, batch_size, chunk_size):
                yield slice(s, s + 1), u0, min(u0 + chunk_size, batch_size)


def _plane(plane: int, s12: Tensor, s13: Tensor, s23: Tensor, a: Tensor, u0: int, u1: int):
    """Cosines (a, b, c) of plane ``plane`` for anchors ``a`` and rows u0:u1.

    Returns tensors broadcastable to ``(ca, R, B)`` and a validity mask (None
    when every entry belongs to the set).
    """
    B = s23.shape[0]
    if plane == 0:  # (a, j, k): rows j, columns k
        av = s12[a, u0:u1][:, :, None]
        bv = s13[a][:, None, :]
        cv = s23[u0:u1][None]
        return av, bv, cv, None
    rows = torch.arange(u0, u1, device=a.device)
    row_ok = (rows[None, :] != a[:, None])[:, :, None]
    if plane == 1:  # (i, a, k), i != a: rows i, columns k
        av = s12[u0:u1][:, a].T[:, :, None]
        bv = s13[u0:u1][None]
        cv = s23[a][:, None, :]
        return av, bv, cv, row_ok
    # (i, j, a), i != a, j != a: rows i, columns j
    av = s12[u0:u1][None]
    bv = s13[u0:u1][:, a].T[:, :, None]
    cv = s23[:, a].T[:, None, :]
    cols = torch.arange(B, device=a.device)
    return av, bv, cv, row_ok & (cols[None, :] != a[:, None])[:, None, :]


def _plane_positives(labels: Tensor, a: Tensor, u0: int, u1: int) -> Tensor:
    """``(ca, R, B)`` bool: both free indices of a plane block carry the anchor's label.

    In every plane the third index is the anchor itself, so a triplet is a
    positive exactly when its row and column samples share the anchor's label.
    """
    same = labels[a][:, None] == labels[None, :]
    return same[:, u0:u1, None] & same[:, None, :]


def _merge(m: Tensor, s: Tensor, mb: Tensor, sb: Tensor) -> tuple[Tensor, Tensor]:
    """Combine two (max, sum-exp) partials of a log-sum-exp."""
    mn = torch.maximum(m, mb)
    # An all-empty partial has max −inf; shift by 0 there to avoid inf − inf.
    safe = torch.where(torch.isfinite(mn), mn, torch.zeros_like(mn))
    return mn, s * torch.exp(m - safe) + sb * torch.exp(mb - safe)


def _forward_stats(s12, s13, s23, anchors, tau, chunk_size, labels=None):
    """Per-anchor log-sum-exp of the logits and the sum of λ1.

    With ``labels`` also the per-anchor sum of λ1 over the positives and
    their count (else those two are None).
    """
    A = anchors.numel()
    B = s23.shape[0]
    m = torch.full((A,), float("-inf"), dtype=s12.dtype, device=s12.device)
    s = torch.zeros(A, dtype=s12.dtype, device=s12.device)
    lam_sum = torch.zeros(A, dtype=s12.dtype, device=s12.device)
    pos_sum = pos_count = None
    if labels is not None:
        pos_sum, pos_count = torch.zeros_like(lam_sum), torch.zeros_like(lam_sum)
    for sl, u0, u1 in _blocks(A, B, chunk_size):
        a = anchors[sl]
        for plane in range(3):
            av, bv, cv, mask = _plane(plane, s12, s13, s23, a, u0, u1)
            lam = lambda1_forward(av, bv, cv).lam
            x = lam / tau
            if mask is not None:
                x = x.masked_fill(~mask, float("-inf"))
                lam = lam.masked_fill(~mask, 0.0)
            mb = x.amax(dim=(1, 2))
            safe = torch.where(torch.isfinite(mb), mb, torch.zeros_like(mb))
            sb = torch.exp(x - safe[:, None, None]).sum(dim=(1, 2))
            m[sl], s[sl] = _merge(m[sl], s[sl], mb, sb)
            lam_sum[sl] += lam.sum(dim=(1, 2))
            if labels is not None:
                pos = _plane_positives(labels, a, u0, u1)
                if mask is not None:
                    pos = pos & mask
                pos_sum[sl] += (lam * pos).sum(dim=(1, 2))
                pos_count[sl] += pos.sum(dim=(1, 2)).to(pos_count.dtype)
    return m + torch.log(s), lam_sum, pos_sum, pos_count


def _backward_blocks(s12, s13, s23, anchors, tau, lse, g, chunk_size, labels=None, pos_count=None):
    """Gradients of Σ_a g_a · LSE_a w.r.t. S12, S13, S23 and Σ_t w(t)·λ(t).

    With ``labels`` the positives' term is included: the gradients are those
    of Σ_a g_a (LSE_a − mean of the positives' logits).
    """
    A = anchors.numel()
    B = s23.shape[0]
    d12, d13, d23 = (torch.zeros_like(t) for t in (s12, s13, s23))
    w_lam = torch.zeros((), dtype=s12.dtype, device=s12.device)
    for sl, u0, u1 in _blocks(A, B, chunk_size):
        a = anchors[sl]
        lse_a = lse[sl][:, None, None]
        g_a = (g[sl] / tau)[:, None, None]
        for plane in range(3):
            av, bv, cv, mask = _plane(plane, s12, s13, s23, a, u0, u1)
            lam, mu1, r, phi = lambda1_forward(av, bv, cv)
            # w = dL/dλ = g_a · softmax_a(t) / τ
            w = torch.exp(lam / tau - lse_a)
            if labels is not None:
                pos = _plane_positives(labels, a, u0, u1)
                w = w - pos / pos_count[sl][:, None, None]
            w = w * g_a
            if mask is not None:
                w = w.masked_fill(~mask, 0.0)
            ga, gb, gc = lambda1_grad(av, bv, cv, mu1, r, phi)
            w_lam = w_lam + (w * lam).sum()
            wa, wb, wc = w * ga, w * gb, w * gc
            if plane == 0:
                d12[:, u0:u1].index_add_(0, a, wa.sum(2))
                d13.index_add_(0, a, wb.sum(1))
                d23[u0:u1] += wc.sum(0)
            elif plane == 1:
                d12[u0:u1].index_add_(1, a, wa.sum(2).T)
                d13[u0:u1] += wb.sum(0)
                d23.index_add_(0, a, wc.sum(1))
            else:
                d12[u0:u1] += wa.sum(0)
                d13[u0:u1].index_add_(1, a, wb.sum(2).T)
                d23.index_add_(1, a, wc.sum(1).T)
    return d12, d13, d23, w_lam


class _ExactTripletNCE(torch.autograd.Function):
    """Streamed exact Triplet-InfoNCE; recomputes every block in backward."""

    @staticmethod
    def forward(ctx, s12, s13, s23, tau, anchors, chunk_size, labels=None):  # type: ignore[override]
        lse, lam_sum, pos_sum, pos_count = _forward_stats(
            s12, s13, s23, anchors, tau, chunk_size, labels
        )
        a0, b0, c0 = s12[anchors, anchors], s13[anchors, anchors], s23[anchors, anchors]
        lam_pos, mu1, r, phi = lambda1_forward(a0, b0, c0)
        B = s23.shape[0]
        if labels is None:
            loss = (lse - lam_pos / tau).mean()
            lam_neg = (lam_sum - lam_pos) / (exact_triplet_num_terms(B) - 1)
        else:
            loss = (lse - pos_sum / (pos_count * tau)).mean()
            # The scores of the negatives alone (NaN where an anchor has none).
            lam_neg = (lam_sum - pos_sum) / (exact_triplet_num_terms(B) - pos_count)
        ctx.save_for_backward(
            s12, s13, s23, tau, anchors, lse, lam_pos, mu1, r, phi, labels, pos_count
        )
        ctx.chunk_size = chunk_size
        ctx.mark_non_differentiable(lam_pos, lam_neg)
        return loss, lam_pos, lam_neg

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, _g_pos, _g_neg):  # type: ignore[override]
        s12, s13, s23, tau, anchors, lse, lam_pos, mu1, r, phi, labels, pos_count = (
            ctx.saved_tensors
        )
        A = anchors.numel()
        g = (grad_loss / A).expand(A).to(s12.dtype)
        d12, d13, d23, w_lam = _backward_blocks(
            s12, s13, s23, anchors, tau, lse, g, ctx.chunk_size, labels, pos_count
        )
        if labels is not None:  # the positives' term is in the blocks
            grad_tau = -w_lam / tau if ctx.needs_input_grad[3] else None
            return d12, d13, d23, grad_tau, None, None, None
        # The positive's −λ_pos/τ term: dL/dλ_pos = −g_a / τ.
        a0, b0, c0 = s12[anchors, anchors], s13[anchors, anchors], s23[anchors, anchors]
        ga, gb, gc = lambda1_grad(a0, b0, c0, mu1, r, phi)
        wp = -g / tau
        d12[anchors, anchors] += wp * ga
        d13[anchors, anchors] += wp * gb
        d23[anchors, anchors] += wp * gc
        w_lam = w_lam + (wp * lam_pos).sum()
        grad_tau = -w_lam / tau if ctx.needs_input_grad[3] else None
        return d12, d13, d23, grad_tau, None, None, None


def check_square_triplet_inputs(
    owner: str, s12: Tensor, s13: Tensor, s23: Tensor, anchors: Tensor | None, *, validate: bool
) -> tuple[int, Tensor]:
    """Check three square ``(B, B)`` similarity matrices and the anchors of an exact op.

    Returns:
        ``(B, anchors)``: the batch size and the anchors as int64 (all B rows
        when ``anchors`` is None).
    """
    sims = {"s12": s12, "s13": s13, "s23": s23}
    for name, t in sims.items():
        check_square(name, t, owner=owner)
    for what in ("shape", "device", "dtype"):
        check_same(what, sims, owner=owner)
    B = s12.shape[0]
    if B < 2:
        raise ValueError(
            f"{owner}: s12, s13, s23 need a batch of at least 2, got shape {tuple(s12.shape)}"
        )
    return B, check_rows("anchors", anchors, B, device=s12.device, validate=validate, owner=owner)


def block_rows(
    owner: str, chunk_size: int | None, *, row_length: int, rows: int, default: int
) -> int:
    """``chunk_size``, the rows of ``row_length`` triplets per block, checked against
    [`MAX_BLOCK_ELEMENTS`][unihpr.ops.exact_triplet.MAX_BLOCK_ELEMENTS]
    (``rows`` of them in all); ``None`` gives about ``default`` triplets per block."""
    if chunk_size is None:
        return max(1, default // row_length)
    check_int("chunk_size", chunk_size, low=1, high=MAX_BLOCK_ELEMENTS, owner=owner)
    size = min(chunk_size, rows) * row_length
    if size > MAX_BLOCK_ELEMENTS:
        raise ValueError(
            f"{owner}: chunk_size={chunk_size} makes blocks of {size} triplets (rows of "
            f"{row_length}), more than MAX_BLOCK_ELEMENTS = 2**28; pass a smaller chunk_size"
        )
    return chunk_size


def exact_triplet_info_nce(
    s12: Tensor,
    s13: Tensor,
    s23: Tensor,
    tau: Tensor | float,
    *,
    anchors: Tensor | None = None,
    chunk_size: int | None = None,
    labels: Tensor | None = None,
    backend: str = "auto",
    validate: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Exact Triplet-InfoNCE over all 3B² − 3B + 1 triplets of each anchor.

    Args:
        s12: ``(B, B)`` image·2D cosines, ``s12[i, j] = x_img_i · x_2d_j``.
        s13: ``(B, B)`` image·3D cosines.
        s23: ``(B, B)`` 2D·3D cosines.
        tau: Temperature, a float or a 0-dim tensor (may require grad).
        anchors: ``(A,)`` int32/int64 rows whose loss is averaged; default all B.
        chunk_size: Rows of length B evaluated per block (PyTorch backend);
            default ``max(1, DEFAULT_BLOCK_ELEMENTS // B)`` on the CPU and
            ``DEFAULT_BLOCK_ELEMENTS_CUDA // B`` on a GPU; blocks of more
            than ``MAX_BLOCK_ELEMENTS`` (2²⁸) triplets are refused. The result
            does not depend on it beyond rounding.
        labels: ``(B,)`` integer labels: every candidate triplet whose three
            samples share the anchor's label is a positive, never a negative,
            and the anchor's loss is the mean over those P positives of
            −log softmax (SupCon's L_out; P = 1 when all labels differ). Runs
            on the PyTorch path (the Triton kernels have no labels).
        backend: ``"auto"`` (the fused Triton kernels for float32 CUDA tensors
            when triton is installed, else PyTorch), ``"torch"`` or
            ``"triton"``; see [`unihpr.ops.backend`][].
        validate: Check the anchors' range and a tensor τ's value, which reads
            them on the host (a GPU synchronisation); shapes, dtypes and
            devices are always checked.

    Returns:
        ``(loss, lam_pos, lam_neg)``: the mean over anchors of
        ``−log softmax`` of the positive (differentiable w.r.t. the three
        matrices and τ), and, detached, the ``(A,)`` positive scores λ1 and
        the ``(A,)`` mean λ1 over each anchor's 3B² − 3B negatives (with
        ``labels``: over its candidates that are not positives; NaN if none).

    Raises:
        TypeError: Non-tensor or non-floating inputs.
        ValueError: Non-square or mismatched matrices, bad anchors, τ, chunk
            size or backend.
    """
    owner = "exact_triplet_info_nce"
    B, anchors = check_square_triplet_inputs(owner, s12, s13, s23, anchors, validate=validate)
    per_block = DEFAULT_BLOCK_ELEMENTS_CUDA if s12.is_cuda else DEFAULT_BLOCK_ELEMENTS
    chunk_size = block_rows(
        owner, chunk_size, row_length=B, rows=anchors.numel() * B, default=per_block
    )
    work = torch.promote_types(s12.dtype, torch.float32)
    tau = check_tau(tau, dtype=work, device=s12.device, validate=validate, owner=owner)
    kernels = KERNELS
    if labels is not None:
        labels = check_labels(labels, B, s12.device, owner=owner)
        kernels = ("torch",)
        owner = f"{owner}(labels=...)"
    kind = resolve_backend(backend, owner=owner, kernels=kernels, device=s12.device, dtype=work)
    s12, s13, s23 = s12.to(work), s13.to(work), s23.to(work)
    if kind == "triton":
        from unihpr.ops.triton_triplet import triton_exact_triplet_info_nce

        return triton_exact_triplet_info_nce(s12, s13, s23, tau, anchors=anchors)
    return _ExactTripletNCE.apply(s12, s13, s23, tau, anchors, chunk_size, labels)
