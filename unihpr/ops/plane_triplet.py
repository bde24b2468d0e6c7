"""Per-plane Triplet-InfoNCE: one softmax per anchor modality (Symile's O(N²) negatives).

For anchor a and anchor modality m the candidates are the B² triplets that
keep a's own embedding in modality m, the two other modalities free (the
positive (a, a, a) among them):

    plane 0: (a, j, k),  plane 1: (i, a, k),  plane 2: (i, j, a),  all i, j, k.

The loss of an anchor is the mean over the three planes of −log softmax of
the positive within the plane, as in Symile's loss with ``negative_sampling=
"n_squared"`` averaged over its anchor modalities; here scored by λ1 read out
of the three similarity matrices. This differs from
[`exact_triplet_info_nce`][unihpr.ops.exact_triplet_info_nce], whose single
softmax runs over the union of the planes (3B² − 3B + 1 triplets).

Blocks of anchors are evaluated under activation checkpointing, so memory is
O(B² + block · B²) and the backward recomputes each block.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from unihpr._validate import check_labels, check_tau
from unihpr.ops.exact_triplet import (
    DEFAULT_BLOCK_ELEMENTS,
    _plane,
    _plane_positives,
    block_rows,
    check_square_triplet_inputs,
)
from unihpr.ops.gram import lambda1_from_cosines

__all__ = ["plane_triplet_info_nce"]


def _block_losses(
    s12: Tensor, s13: Tensor, s23: Tensor, a: Tensor, tau: Tensor, labels: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Per-anchor loss (mean over planes) and the mean λ1 of the block's candidates."""
    B = s23.shape[0]
    rows = torch.arange(a.numel(), device=a.device)
    total = torch.zeros(a.numel(), dtype=s12.dtype, device=s12.device)
    lam_sum = torch.zeros((), dtype=s12.dtype, device=s12.device)
    for plane in range(3):
        av, bv, cv, _ = _plane(plane, s12, s13, s23, a, 0, B)
        lam = lambda1_from_cosines(av, bv, cv)  # (ca, B, B): rows and columns of the plane
        logits = lam / tau
        lse = torch.logsumexp(logits.flatten(1), dim=1)
        if labels is None:
            positive = logits[rows, a, a]  # (a, a) of every plane is (a, a, a)
        else:
            pos = _plane_positives(labels, a, 0, B).to(logits.dtype)
            positive = (pos * logits).sum(dim=(1, 2)) / pos.sum(dim=(1, 2))
        total = total + (lse - positive) / 3
        lam_sum = lam_sum + lam.detach().sum()
    return total, lam_sum / (3 * a.numel() * B * B)


def plane_triplet_info_nce(
    s12: Tensor,
    s13: Tensor,
    s23: Tensor,
    tau: Tensor | float,
    *,
    anchors: Tensor | None = None,
    labels: Tensor | None = None,
    chunk_size: int | None = None,
    validate: bool = True,
) -> tuple[Tensor, Tensor]:
    """Triplet-InfoNCE with one softmax per anchor modality over its B² plane.

    Args:
        s12: ``(B, B)`` image·2D cosines.
        s13: ``(B, B)`` image·3D cosines.
        s23: ``(B, B)`` 2D·3D cosines.
        tau: Temperature, a float or a 0-dim tensor (may require grad).
        anchors: ``(A,)`` rows whose loss is averaged; default all B.
        labels: ``(B,)`` integer labels: in each plane the triplets whose
            free samples share the anchor's label are positives too (the
            mean over them of −log softmax).
        chunk_size: Anchors per checkpointed block (default: about 2¹⁶
            triplets per block; blocks of more than 2²⁸ are refused).
        validate: Check the anchors' range and a tensor τ's value (a host
            synchronisation).

    Returns:
        ``(loss, lam_mean)``: the mean over anchors of the mean over the
        three planes of −log softmax of the positive (differentiable w.r.t.
        the matrices and τ), and the detached mean λ1 over all candidates.

    Raises:
        TypeError, ValueError: Non-square or mismatched matrices, bad anchors,
            labels, τ or chunk size.
    """
    owner = "plane_triplet_info_nce"
    B, anchors = check_square_triplet_inputs(owner, s12, s13, s23, anchors, validate=validate)
    if labels is not None:
        labels = check_labels(labels, B, s12.device, owner=owner)
    chunk_size = block_rows(
        owner, chunk_size, row_length=B * B, rows=anchors.numel(), default=DEFAULT_BLOCK_ELEMENTS
    )
    work = torch.promote_types(s12.dtype, torch.float32)
    tau = check_tau(tau, dtype=work, device=s12.device, validate=validate, owner=owner)
    s12, s13, s23 = s12.to(work), s13.to(work), s23.to(work)
    losses, lams = [], []
    for start in range(0, anchors.numel(), chunk_size):
        a = anchors[start : start + chunk_size]
        loss, lam = checkpoint(_block_losses, s12, s13, s23, a, tau, labels, use_reentrant=False)
        losses.append(loss)
        lams.append(lam * a.numel())
    return torch.cat(losses).mean(), (torch.stack(lams).sum() / anchors.numel()).detach()
