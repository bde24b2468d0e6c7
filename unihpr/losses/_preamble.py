"""The preamble every loss shares: check, normalise, gather, similarities.

Written once here so that [`PairInfoNCE`][unihpr.losses.PairInfoNCE],
[`TripletInfoNCE`][unihpr.losses.TripletInfoNCE],
[`ContrastiveLoss`][unihpr.losses.ContrastiveLoss] and
[`MultimodalInfoNCE`][unihpr.losses.MultimodalInfoNCE] treat their inputs
alike.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from unihpr.losses.distributed import gather_embeddings
from unihpr.ops._checks import check_labels, check_same, check_tensor

_HALF = (torch.float16, torch.bfloat16)


class Prepared(NamedTuple):
    """Normalised embeddings ready for the similarities.

    Attributes:
        embeddings: The L2-normalised ``(B, D)`` sets, gathered across ranks
            when distributed (then B is the global batch).
        anchors: ``(b,)`` global rows of this rank's samples when gathered
            across ranks, else None (every row is an anchor).
        labels: ``(B,)`` int64 labels of the rows of ``embeddings`` (gathered
            like them), or None when no labels were given.
    """

    embeddings: list[Tensor]
    anchors: Tensor | None
    labels: Tensor | None = None


def normalize_rows(x: Tensor) -> Tensor:
    """L2-normalise the rows of ``(B, D)`` ``x``, invariant to their scale.

    Each row is divided by its largest absolute entry (a constant, so the
    gradient is unchanged) before ``F.normalize``: rows of any finite,
    non-zero norm, 1e-30 or 1e30 alike, give the same unit vector, where
    ``F.normalize`` alone leaves rows with norm below its 1e-12 floor
    unnormalised. A zero row stays zero.
    """
    scale = x.detach().abs().amax(dim=1, keepdim=True)
    scale = scale.clamp_min(torch.finfo(scale.dtype).tiny)
    return F.normalize(x / scale, dim=1)


def _common_dtype(owner: str, named: dict[str, Tensor]) -> torch.dtype:
    dtypes = {t.dtype for t in named.values()}
    if len(dtypes) == 1:
        return dtypes.pop()
    if dtypes <= {torch.float32, *_HALF}:  # e.g. mixed autocast outputs
        return torch.float32
    check_same(owner, "dtype", named)  # raises, naming the two arguments
    raise AssertionError  # pragma: no cover


def prepare(
    owner: str,
    named: dict[str, Tensor],
    *,
    gather: bool,
    validate: bool,
    labels: Tensor | None = None,
    distributed: str = "local",
) -> Prepared:
    """Check, normalise and (when distributed) gather ``(B, D)`` embedding sets.

    Args:
        owner: Name used in error messages.
        named: The embedding sets by argument name.
        gather: Gather across ranks when torch.distributed runs with world
            size > 1 (see [`unihpr.losses.distributed`][]).
        validate: Also reject rows that are zero, NaN or infinite, which
            reads the data on the host (a GPU synchronisation). Types,
            shapes, dtypes and devices are always checked.
        labels: Optional ``(B,)`` integer labels, one per row (checked, and
            gathered with the embeddings).
        distributed: ``"local"`` (this rank's rows are the anchors) or
            ``"global"`` (every row is; only this rank's rows carry gradient),
            see [`unihpr.losses.distributed`][].

    Returns:
        A [`Prepared`][unihpr.losses._preamble.Prepared].

    Raises:
        TypeError: A set is not a floating-point tensor.
        ValueError: Wrong or mismatched shapes, mixed float64 and other
            dtypes, mixed devices, meta tensors, or (``validate``) a zero or
            non-finite row.
    """
    for name, x in named.items():
        check_tensor(owner, name, x)
        if x.dim() != 2:
            raise ValueError(f"{owner}: {name} must have shape (B, D), got {tuple(x.shape)}")
        if x.shape[0] < 2:
            raise ValueError(
                f"{owner}: {name} needs a batch of at least 2 (one positive, one negative), "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[1] < 1:
            raise ValueError(
                f"{owner}: {name} has no features: shape {tuple(x.shape)}, need D >= 1"
            )
    items = list(named.items())
    ref_name, ref = items[0]
    for name, t in items[1:]:
        if t.shape != ref.shape:
            raise ValueError(
                f"{owner}: {name} has shape {tuple(t.shape)} but {ref_name} has "
                f"{tuple(ref.shape)}; all embedding sets need the same (B, D)"
            )
    check_same(owner, "device", named)
    if labels is not None:
        labels = check_labels(owner, labels, ref.shape[0], ref.device)
    dtype = _common_dtype(owner, named)
    if validate:
        for name, x in named.items():
            peak = x.detach().abs().amax(dim=1)
            bad = ~torch.isfinite(peak) | (peak == 0)
            if bool(bad.any()):
                row = int(bad.nonzero()[0, 0])
                what = "zero" if bool(peak[row] == 0) else "NaN or infinite"
                raise ValueError(
                    f"{owner}: {name} has a {what} row (row {row} of shape {tuple(x.shape)}); "
                    "embeddings must be finite and non-zero"
                )
    xs = [normalize_rows(x.to(dtype)) for x in named.values()]
    sets = xs if labels is None else [*xs, labels]
    batch = gather_embeddings(sets, gather, validate=validate, distributed=distributed)
    anchors = batch.rows if batch.distributed and distributed == "local" else None
    if labels is None:
        return Prepared(batch.tensors, anchors)
    *xs, labels = batch.tensors
    return Prepared(xs, anchors, labels)


def similarities(xs: list[Tensor]) -> dict[tuple[int, int], Tensor]:
    """``{(m, n): X_m X_nᵀ}`` for m < n: the pairwise ``(B, B)`` cosine matrices."""
    return {(m, n): xs[m] @ xs[n].T for m in range(len(xs)) for n in range(m + 1, len(xs))}
