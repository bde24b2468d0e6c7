"""Triplet-InfoNCE over sampled candidate triplets, read out of similarity matrices.

The logit of a triplet (i, j, k) is λ1(S12[i, j], S13[i, k], S23[j, k]) / τ
(see [`unihpr.ops.gram`][]); each anchor's row holds its positive and its
sampled negatives, and the loss is the mean over anchors of −log softmax of
the positive. Which triplets are candidates is the sampler's business
([`unihpr.losses.samplers`][]): this op takes plain indices.

The forward pass also computes the gradient (only when one is needed): the
analytic dλ1 is scattered straight into three gradient matrices of the
similarities' shapes, so nothing of size (A, N) outlives the call, and the
backward pass is three scalings. The body is branchless PyTorch ops, so it
never synchronises a GPU with the host, and ``backend="compile"`` runs it
through ``torch.compile``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from unihpr._validate import (
    check_index,
    check_labels,
    check_range,
    check_same,
    check_shape,
    check_tau,
    check_tensor,
)
from unihpr.ops.backend import resolve_backend
from unihpr.ops.gram import lambda1_forward, lambda1_grad

__all__ = ["sampled_triplet_info_nce"]

KERNELS = ("torch", "compile")


def _flat(rows: Tensor, cols: Tensor, ncols: int, anchors: Tensor | None) -> Tensor:
    """Flat indices ``rows * ncols + cols``, the positive (a, a) first when given."""
    flat = rows * ncols + cols
    if anchors is not None:
        flat = torch.cat([(anchors * (ncols + 1))[:, None], flat], dim=1)
    return flat


def _label_targets(
    i: Tensor, j: Tensor, k: Tensor, anchors: Tensor | None, labels: Tensor, dtype: torch.dtype
) -> Tensor:
    """``(A, 1 + N)`` targets: 1/P on the P candidates whose three labels are the anchor's."""
    if anchors is not None:
        a = anchors[:, None]
        i, j, k = (torch.cat([a, t], dim=1) for t in (i, j, k))
    own = labels[i[:, :1]]  # the label of each row's positive
    pos = (labels[i] == own) & (labels[j] == own) & (labels[k] == own)
    pos = pos.to(dtype)
    return pos / pos.sum(dim=1, keepdim=True)


def _body(
    sims: tuple[Tensor, Tensor, Tensor],
    index: tuple[Tensor, Tensor, Tensor],
    tau: Tensor,
    anchors: Tensor | None,
    labels: Tensor | None,
    need_grad: bool,
) -> tuple[Tensor, ...]:
    """Loss, scores and (optionally) the gradients of the loss, in one pass.

    ``sims`` holds ``(s12, s13, s23)`` and ``index`` the candidate rows ``(i, j, k)``.
    """
    i, j, k = index
    # Matrix (s12, s13, s23) pairs modalities (i, j), (i, k), (j, k).
    flats = [_flat(r, q, s.shape[1], anchors) for s, (r, q) in zip(sims, ((i, j), (i, k), (j, k)))]
    a, b, c = (
        s.reshape(-1).index_select(0, f.reshape(-1)).view(f.shape) for s, f in zip(sims, flats)
    )
    parts = lambda1_forward(a, b, c)
    lam = parts.lam
    logits = lam / tau
    lse = torch.logsumexp(logits, dim=1)
    if labels is None:
        loss = (lse - logits[:, 0]).mean()
    else:
        target = _label_targets(i, j, k, anchors, labels, logits.dtype)
        loss = (lse - (target * logits).sum(dim=1)).mean()
    if not need_grad:
        return loss, lam
    ga, gb, gc = lambda1_grad(a, b, c, parts.mu1, parts.r, parts.phi)
    # d loss / d logits = (softmax − target) / A, target = onehot(0) without labels
    g = torch.exp(logits - lse[:, None])
    if labels is None:
        g[:, 0] -= 1.0
    else:
        g -= target
    g /= g.shape[0]
    grad_tau = -(g * lam).sum() / (tau * tau)
    g /= tau  # d loss / d λ
    grads = []
    for flat, coef, s in zip(flats, (ga, gb, gc), sims):
        out = torch.zeros(s.numel(), dtype=g.dtype, device=g.device)
        out.index_add_(0, flat.reshape(-1), coef.mul_(g).reshape(-1))
        grads.append(out.view(s.shape))
    return loss, lam, *grads, grad_tau


_compiled_body = None


def _get_compiled_body():
    global _compiled_body
    if _compiled_body is None:
        # fullgraph: the body is branchless, so a graph break would be a bug.
        _compiled_body = torch.compile(_body, dynamic=True, fullgraph=True)
    return _compiled_body


class _SampledTripletNCE(torch.autograd.Function):
    """Sampled Triplet-InfoNCE: the body (through torch.compile when asked) and its saved gradients.

    The gradient of a scalar loss is the upstream scalar times the gradient
    computed in forward, so backward is three scalings. Fusing avoids the
    dozen (A, N+1) intermediates autograd would keep for the elementwise formula.
    """

    @staticmethod
    def forward(ctx, s12, s13, s23, i, j, k, tau, anchors, labels, compiled):  # type: ignore[override]
        need_grad = any(ctx.needs_input_grad[:3]) or ctx.needs_input_grad[6]
        body = _get_compiled_body() if compiled else _body
        out = body((s12, s13, s23), (i, j, k), tau, anchors, labels, need_grad)
        if need_grad:
            ctx.save_for_backward(*out[2:])
        ctx.mark_non_differentiable(out[1])
        return out[0], out[1]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss, _grad_lam):  # type: ignore[override]
        g12, g13, g23, g_tau = ctx.saved_tensors
        need = ctx.needs_input_grad
        grads = [grad_loss * g if n else None for g, n in zip((g12, g13, g23), need[:3])]
        grad_tau = grad_loss * g_tau if need[6] else None
        return (*grads, None, None, None, grad_tau, None, None, None)


def sampled_triplet_info_nce(
    s12: Tensor,
    s13: Tensor,
    s23: Tensor,
    i: Tensor,
    j: Tensor,
    k: Tensor,
    tau: Tensor | float,
    anchors: Tensor | None = None,
    *,
    labels: Tensor | None = None,
    backend: str = "auto",
    validate: bool = True,
) -> tuple[Tensor, Tensor]:
    """Triplet-InfoNCE of candidate triplets ``(i, j, k)`` per anchor.

    Args:
        s12: ``(B1, B2)`` image·2D cosines, ``s12[i, j] = x_img_i · x_2d_j``.
        s13: ``(B1, B3)`` image·3D cosines.
        s23: ``(B2, B3)`` 2D·3D cosines.
        i: ``(A, M)`` image rows of the candidates, int32 or int64.
        j: ``(A, M)`` 2D-pose rows.
        k: ``(A, M)`` 3D-pose rows.
        tau: Temperature, a float or a 0-dim tensor (may require grad).
        anchors: ``(A,)`` anchor rows: the positive of row r is then
            ``(anchors[r],) * 3`` and ``(i, j, k)`` hold only negatives.
            Without it column 0 of ``(i, j, k)`` is each row's positive.
        labels: ``(B,)`` integer labels (square matrices only): every
            candidate whose three samples carry the label of the row's
            positive is a positive too, never a negative, and the row's loss
            is the mean over its P positives of −log softmax (SupCon's L_out
            over the candidate set). Without labels P = 1.
        backend: ``"auto"``/``"torch"`` (PyTorch ops) or ``"compile"``; see
            [`unihpr.ops.backend`][]. This computation has no Triton kernel.
        validate: Check index ranges and a tensor τ's value, which reads them
            on the host (a GPU synchronisation); shapes, dtypes and devices
            are always checked.

    Returns:
        ``(loss, lam)``: the mean over anchors of −log softmax of the positive
        (differentiable w.r.t. the three matrices and τ), and the detached
        ``(A, 1 + N)`` λ1 scores, positives in column 0.

    Raises:
        TypeError: Non-tensor inputs, non-floating matrices.
        ValueError: Inconsistent shapes, dtypes or devices; indices or
            anchors out of range; τ not finite and > 0; a bad backend.
    """
    owner = "sampled_triplet_info_nce"
    sims = {"s12": s12, "s13": s13, "s23": s23}
    for (name, s), layout in zip(sims.items(), ("(B1, B2)", "(B1, B3)", "(B2, B3)")):
        check_tensor(name, s, floating=True, owner=owner)
        check_shape(name, s, (None, None), layout, owner=owner)
    check_same("device", sims, owner=owner)
    check_same("dtype", sims, owner=owner)
    (B1, B2), B3 = s12.shape, s13.shape[1]
    if s13.shape[0] != B1 or tuple(s23.shape) != (B2, B3):
        raise ValueError(
            f"{owner}: need s12 (B1, B2), s13 (B1, B3), s23 (B2, B3), got "
            f"{tuple(s12.shape)}, {tuple(s13.shape)}, {tuple(s23.shape)}"
        )
    index = {"i": i, "j": j, "k": k}
    for name, t in index.items():
        check_index(name, t, dim=2, owner=owner)
    check_same("shape", index, owner=owner)
    if anchors is not None:
        index["anchors"] = check_index("anchors", anchors, dim=1, owner=owner)
        if anchors.shape[0] != i.shape[0]:
            raise ValueError(
                f"{owner}: anchors has {anchors.shape[0]} rows but i, j, k have {i.shape[0]}"
            )
    elif i.shape[1] < 1:
        raise ValueError(f"{owner}: without anchors column 0 must hold the positives, got M = 0")
    if i.shape[0] == 0:
        raise ValueError(f"{owner}: need at least one anchor row, got shape {tuple(i.shape)}")
    check_same("device", {"s12": s12, **index}, owner=owner)
    if labels is not None:
        if not B1 == B2 == B3:
            raise ValueError(
                f"{owner}: labels need square similarity matrices (one batch), got "
                f"{tuple(s12.shape)}, {tuple(s13.shape)}, {tuple(s23.shape)}"
            )
        labels = check_labels(labels, B1, s12.device, owner=owner)
    if validate:
        for (name, t), high in zip(index.items(), (B1, B2, B3, min(B1, B2, B3))):
            check_range(name, t, high, owner=owner)
    work = torch.promote_types(s12.dtype, torch.float32)
    tau = check_tau(tau, dtype=work, device=s12.device, validate=validate, owner=owner)
    kind = resolve_backend(backend, owner=owner, kernels=KERNELS, device=s12.device, dtype=work)
    # int32 flat indices are faster to build and to gather with, while they fit.
    wide = (
        any(t.dtype == torch.int64 for t in index.values())
        or max(s.numel() for s in sims.values()) >= 2**31 - 1
    )
    idx_dtype = torch.int64 if wide else torch.int32
    i, j, k = (t.to(idx_dtype) for t in (i, j, k))
    if anchors is not None:
        anchors = anchors.to(idx_dtype)
    s12, s13, s23 = (s.to(work) for s in (s12, s13, s23))
    return _SampledTripletNCE.apply(s12, s13, s23, i, j, k, tau, anchors, labels, kind == "compile")
