"""Global negatives across data-parallel ranks, in two semantics.

Every loss with ``gather=True`` takes ``distributed="local"`` (the default) or
``"global"``; the two differ in which anchors a rank's loss covers, in the
loss each rank logs, and in the scale of the gradients:

| ``distributed`` | a rank's loss | gradient after DDP's average | logged loss |
| --- | --- | --- | --- |
| ``"local"`` | its own anchors against the global batch; gathered copies carry gradient | equal to one process on the concatenated batch | differs per rank; their mean is the global loss |
| ``"global"`` | all W·b anchors; other ranks' embeddings are constants | **1/W** of one process on the concatenated batch for the networks; the full gradient for parameters of the loss itself (τ, a bias) | the global loss, identical on every rank |

``"global"`` is open_clip's default (``local_loss=False,
gather_with_grad=False``): a run migrated from it to ``"local"`` gets
gradients W times larger (divide the learning rate by W, or keep
``"global"``). ``"global"`` computes the whole loss on every rank (W times
the work of ``"local"``); with a sampled triplet term every rank must draw the
same negatives (a generator seeded alike on every rank).

Local semantics in detail: every rank computes the loss of its *own* anchors
against the *global* batch, i.e. the embeddings of all ranks concatenated in
rank order. The gathered copies of other ranks' embeddings carry gradient:
the backward of [`all_gather_with_grad`][] sums the incoming gradient over
all ranks (each rank's loss depends on every rank's embeddings) and returns
this rank's slice, so nothing is dropped or counted twice.

Scaling: with equal local batches the single-process loss on the
concatenated batch is the mean over ranks of the per-rank losses,
L = (1/W) Σ_r L_r. Rank r's embedding gradient after the summing gather is
Σ_s ∂L_s/∂x_r, and DDP averages parameter gradients over the W ranks, which
supplies the 1/W. So no extra factor is needed: after DDP the parameter
gradients equal those of one process on the concatenated batch (tested with
two gloo processes). Do not also multiply by the world size.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DISTRIBUTED_MODES",
    "GlobalBatch",
    "all_gather_with_grad",
    "gather_embeddings",
    "local_pair_info_nce",
]

DISTRIBUTED_MODES = ("local", "global")
"""The values of every loss's ``distributed=`` argument (see the module notes)."""


def distributed_world(gather: bool = True) -> tuple[int, int] | None:
    """``(rank, world_size)`` when gathering applies, else None."""
    if not gather:
        return None
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return None
    world = dist.get_world_size()
    if world <= 1:
        return None
    return dist.get_rank(), world


class _AllGather(torch.autograd.Function):
    """All-gather along dim 0 whose backward sums over ranks and slices."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        dist = torch.distributed
        world, rank = dist.get_world_size(), dist.get_rank()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.rows = rank, x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        torch.distributed.all_reduce(grad, op=torch.distributed.ReduceOp.SUM)
        start = ctx.rank * ctx.rows
        return grad[start : start + ctx.rows]


def all_gather_with_grad(x: Tensor, *, validate: bool = True) -> Tensor:
    """Concatenate ``x`` ``(b, ...)`` from all ranks in rank order -> ``(W·b, ...)``.

    Gradient flows to every rank's own rows: the backward all-reduces (sums)
    the gradient of the concatenation and keeps this rank's slice. All ranks
    must pass the same shape.

    Args:
        x: This rank's ``(b, ...)`` tensor.
        validate: First compare the shapes of all ranks (one extra small
            collective and a host synchronisation).

    Raises:
        ValueError: If ``validate`` and the local shapes differ across ranks.
    """
    dist = torch.distributed
    if validate:
        shape = torch.tensor(list(x.shape), dtype=torch.long, device=x.device)
        shapes = [torch.empty_like(shape) for _ in range(dist.get_world_size())]
        dist.all_gather(shapes, shape)
        if any(not torch.equal(s, shape) for s in shapes):
            raise ValueError(
                "all_gather_with_grad: every rank needs the same local shape (equal local "
                f"batches keep the loss scaling exact), got {[tuple(s.tolist()) for s in shapes]}"
            )
    return _AllGather.apply(x)


def _all_gather_keep_own(x: Tensor, rank: int, world: int) -> Tensor:
    """All-gather where only this rank's slice carries gradient (open_clip's default)."""
    parts = [torch.empty_like(x) for _ in range(world)]
    torch.distributed.all_gather(parts, x.detach().contiguous())
    parts[rank] = x
    return torch.cat(parts, dim=0)


class GlobalBatch(NamedTuple):
    """Gathered embeddings and this rank's rows inside them.

    Attributes:
        tensors: The gathered ``(W·b, D)`` tensors (the inputs themselves when
            not distributed).
        rows: ``(b,)`` int64 global row indices of this rank's samples.
        distributed: Whether anything was gathered.
    """

    tensors: list[Tensor]
    rows: Tensor
    distributed: bool


def gather_embeddings(
    tensors: list[Tensor],
    gather: bool = True,
    *,
    validate: bool = True,
    distributed: str = "local",
) -> GlobalBatch:
    """Gather ``(b, D)`` embedding sets across ranks when distributed.

    Args:
        tensors: Embedding sets of this rank, each ``(b, D)``.
        gather: False keeps everything local (the constructor switch).
        validate: Check that every rank passes the same shape (see
            [`all_gather_with_grad`][]).
        distributed: ``"local"``: the gathered copies carry gradient (the
            backward sums over ranks); ``"global"``: only this rank's slice
            does (see the module notes).

    Returns:
        A [`GlobalBatch`][]; when torch.distributed is not initialised, the
        world size is 1 or ``gather`` is False, the tensors are returned
        unchanged with rows ``0..b-1``.
    """
    ctx = distributed_world(gather)
    b = tensors[0].shape[0]
    if ctx is None:
        return GlobalBatch(list(tensors), torch.arange(b, device=tensors[0].device), False)
    rank, world = ctx
    if distributed == "global":
        if validate:
            all_gather_with_grad(tensors[0].detach(), validate=True)  # compares shapes
        gathered = [_all_gather_keep_own(t, rank, world) for t in tensors]
    else:
        gathered = [all_gather_with_grad(t, validate=validate) for t in tensors]
    rows = torch.arange(rank * b, (rank + 1) * b, device=tensors[0].device)
    return GlobalBatch(gathered, rows, True)


def pair_targets(rows: Tensor, labels: Tensor | None, dtype: torch.dtype) -> Tensor:
    """Cross-entropy targets of anchors ``rows`` against the whole batch.

    Without labels the class index of each anchor (its own row); with
    ``(B,)`` labels the ``(A, B)`` distribution that spreads each anchor's
    target evenly over the samples sharing its label, so that the
    cross-entropy is the mean over its positives p of −log softmax[p]
    (SupCon's L_out).
    """
    if labels is None:
        return rows
    same = (labels[rows][:, None] == labels[None, :]).to(dtype)
    return same / same.sum(dim=1, keepdim=True)


def local_pair_info_nce(
    x_to_y: Tensor,
    y_to_x: Tensor,
    rows: Tensor,
    tau: Tensor | float,
    *,
    labels: Tensor | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Symmetric InfoNCE of the anchors ``rows`` against the whole batch.

    Args:
        x_to_y: ``(A, B)`` cosines ``x_a · y_j`` of the anchors' x rows
            against every y (``S[rows]`` of the global matrix S = X Yᵀ).
        y_to_x: ``(A, B)`` cosines ``y_a · x_i`` (``S[:, rows].T``).
        rows: ``(A,)`` global indices of the anchors (their positives).
        tau: Temperature.
        labels: ``(B,)`` labels of the global batch: every sample sharing an
            anchor's label is one of its positives (see [`pair_targets`][]).
        label_smoothing: ε of ``F.cross_entropy``: the target keeps weight
            1 − ε and ε is spread over all B columns.

    Returns:
        Scalar: the mean of the x→y and y→x cross-entropies over the anchors.
        With all rows this equals [`unihpr.losses.pair_info_nce`][].
    """
    target = pair_targets(rows, labels, x_to_y.dtype)
    return 0.5 * (
        F.cross_entropy(x_to_y / tau, target, label_smoothing=label_smoothing)
        + F.cross_entropy(y_to_x / tau, target, label_smoothing=label_smoothing)
    )
