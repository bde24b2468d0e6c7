"""The preamble every loss shares: check, normalise, gather, queue, similarities.

Written once here, in [`EmbeddingLoss`][unihpr.losses._preamble.EmbeddingLoss],
the base class of the loss modules, so that they treat their inputs alike and
share one meaning of ``temperature``, ``gather``, ``distributed``,
``validate`` and ``queue``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unihpr._validate import (
    check_bool,
    check_choice,
    check_finite,
    check_labels,
    check_same,
    check_shape,
    check_tensor,
)
from unihpr.losses.distributed import DISTRIBUTED_MODES, gather_embeddings
from unihpr.losses.queue import EmbeddingQueue
from unihpr.losses.temperature import LearnableTemperature, as_temperature

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


def _common_dtype(owner: str, named: Mapping[str, Tensor]) -> torch.dtype:
    dtypes = {t.dtype for t in named.values()}
    if dtypes <= {torch.float32, *_HALF} and len(dtypes) > 1:  # e.g. mixed autocast outputs
        return torch.float32
    check_same("dtype", named, owner=owner)  # raises if float64 meets another dtype
    return dtypes.pop()


def similarities(xs: list[Tensor]) -> dict[tuple[int, int], Tensor]:
    """``{(m, n): X_m X_nᵀ}`` for m < n: the pairwise ``(B, B)`` cosine matrices."""
    return {(m, n): xs[m] @ xs[n].T for m in range(len(xs)) for n in range(m + 1, len(xs))}


class EmbeddingLoss(nn.Module):
    """Base of the loss modules: the arguments they share and their preamble.

    Args:
        temperature: Float τ or a [`LearnableTemperature`][unihpr.losses.LearnableTemperature].
        gather: Gather across ranks when distributed (see [`unihpr.losses.distributed`][]).
        distributed: ``"local"`` or ``"global"`` (see [`unihpr.losses.distributed`][]).
        validate: Check the inputs' values (zero or non-finite rows, index
            ranges, a diverged temperature), a host synchronisation per call.
        queue: An [`EmbeddingQueue`][unihpr.losses.EmbeddingQueue] or None.
    """

    def __init__(
        self,
        temperature: float | LearnableTemperature,
        *,
        gather: bool,
        distributed: str,
        validate: bool,
        queue: EmbeddingQueue | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.temperature = as_temperature(temperature, owner=owner)
        self.gather = check_bool("gather", gather, owner=owner)
        self.distributed = check_choice("distributed", distributed, DISTRIBUTED_MODES, owner=owner)
        self.validate = check_bool("validate", validate, owner=owner)
        if queue is not None and not isinstance(queue, EmbeddingQueue):
            raise TypeError(
                f"{owner}: queue must be an EmbeddingQueue or None, got {type(queue).__name__}"
            )
        self.queue = queue

    def tau(self, like: Tensor) -> Tensor:
        """τ as a 0-dim tensor in the computation dtype of ``like`` (at least float32).

        With ``validate`` a diverged temperature (``log_tau`` NaN or
        infinite, e.g. after a NaN gradient step) raises ``ValueError``
        instead of giving a NaN loss.
        """
        if self.validate:
            check_finite(
                "temperature.log_tau", self.temperature.log_tau.detach(), owner=type(self).__name__
            )
        work = torch.promote_types(like.dtype, torch.float32)
        return self.temperature().to(device=like.device, dtype=work)

    def prepare(self, named: Mapping[str, Tensor], labels: Tensor | None = None) -> Prepared:
        """Check, normalise and (when distributed) gather ``(B, D)`` embedding sets.

        With a queue the result holds the queued rows after the batch's, and
        in training mode the batch is pushed.

        Args:
            named: The embedding sets by argument name.
            labels: Optional ``(B,)`` integer labels, one per row (checked,
                and gathered with the embeddings).

        Returns:
            A [`Prepared`][unihpr.losses._preamble.Prepared].

        Raises:
            TypeError: A set is not a floating-point tensor.
            ValueError: Wrong or mismatched shapes, mixed float64 and other
                dtypes, mixed devices, meta tensors, or (``validate``) a zero
                or non-finite row.
        """
        owner = type(self).__name__
        for name, x in named.items():
            check_tensor(name, x, floating=True, owner=owner)
            check_shape(name, x, (None, None), "(B, D)", owner=owner)
            if x.shape[0] < 2:
                raise ValueError(
                    f"{owner}: {name} needs a batch of at least 2 (one positive, one negative), "
                    f"got shape {tuple(x.shape)}"
                )
            if x.shape[1] < 1:
                raise ValueError(
                    f"{owner}: {name} has no features: shape {tuple(x.shape)}, need D >= 1"
                )
        check_same("shape", named, owner=owner)
        check_same("device", named, owner=owner)
        ref = next(iter(named.values()))
        if labels is not None:
            labels = check_labels(labels, ref.shape[0], ref.device, owner=owner)
        dtype = _common_dtype(owner, named)
        if self.validate:
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
        batch = gather_embeddings(
            sets, self.gather, validate=self.validate, distributed=self.distributed
        )
        anchors = batch.rows if batch.distributed and self.distributed == "local" else None
        *xs, labels = batch.tensors if labels is not None else [*batch.tensors, None]
        prep = Prepared(xs, anchors, labels)
        if self.queue is None:
            return prep
        extended = self.queue.extend(owner, prep)
        if self.training:
            self.queue.push(prep)
        return extended
