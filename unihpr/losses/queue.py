"""A queue of past embeddings as extra negatives (MoCo; pytorch-metric-learning's ``CrossBatchMemory``).

With a queue, a loss scores its anchors (the current batch) against the
current batch *and* the last ``size`` embeddings of earlier steps, per
modality. Queued embeddings are detached: gradients flow only through the
current batch. After the loss is computed (in training mode only) the current
batch is pushed, so a step never sees itself twice.

Under ``gather=True`` the *gathered* batch is pushed, so every rank holds the
same queue and the loss stays equal to one process on the concatenated
batches. Queued embeddings come from older versions of the encoders; MoCo
keeps them consistent with a momentum encoder, which is the caller's choice
(the queue only stores what it is given).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from unihpr._validate import check_int

if TYPE_CHECKING:
    from unihpr.losses._preamble import Prepared

__all__ = ["MAX_QUEUE_SIZE", "EmbeddingQueue"]

MAX_QUEUE_SIZE = 1 << 20
"""The largest ``size`` accepted: 2²⁰ embeddings per modality (MoCo uses 2¹⁶).
The triplet terms' similarity matrices grow to (B + size)², so they want far
fewer."""


class EmbeddingQueue(nn.Module):
    """FIFO of the last ``size`` L2-normalised embeddings of each modality.

    Pass one to the ``queue=`` argument of [`PairInfoNCE`][unihpr.losses.PairInfoNCE],
    [`TripletInfoNCE`][unihpr.losses.TripletInfoNCE] or
    [`ContrastiveLoss`][unihpr.losses.ContrastiveLoss]. The storage is
    allocated on the first push (shape, dtype and device of that batch) and
    is not saved in ``state_dict`` (it refills in ``size / B`` steps).

    * Pair loss: for anchor i of the batch the softmax runs over the B
      current and the queued embeddings of the other modality.
    * Triplet loss: the candidates of anchor a are the triplets over the
      current and queued samples that contain one of a's embeddings (sampled
      or all of them); the similarity matrices grow to (B + Q)², Q the
      number queued.
    * With ``labels``: queued samples keep their labels and count as
      positives of anchors with the same label.

    Args:
        size: Capacity Q_max per modality, from 1 to
            [`MAX_QUEUE_SIZE`][unihpr.losses.queue.MAX_QUEUE_SIZE] (2²⁰).

    Examples:
        >>> queue = EmbeddingQueue(size=1024)
        >>> loss_fn = PairInfoNCE(0.07, queue=queue)
        >>> for _ in range(3):
        ...     loss = loss_fn(torch.randn(8, 16), torch.randn(8, 16))
        >>> len(queue)
        24
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = check_int("size", size, low=1, high=MAX_QUEUE_SIZE, owner="EmbeddingQueue")
        self.count = 0  # rows filled
        self.next = 0  # next row to overwrite
        # Buffers (moved by .to()), not saved: (K, size, D) and (size,) once allocated.
        self.register_buffer("embeddings", None, persistent=False)
        self.register_buffer("labels", None, persistent=False)

    def __len__(self) -> int:
        return self.count

    def reset(self) -> None:
        """Empty the queue (keeps the storage)."""
        self.count = 0
        self.next = 0

    def extra_repr(self) -> str:
        return f"size={self.size}, filled={self.count}"

    def _check(self, owner: str, xs: list[Tensor], labels: Tensor | None) -> None:
        if self.embeddings is None:
            return
        K, _, D = self.embeddings.shape
        if len(xs) != K or xs[0].shape[1] != D:
            raise ValueError(
                f"{owner}: the queue holds {K} modalities of dimension {D}, got {len(xs)} "
                f"of dimension {xs[0].shape[1]}; use one EmbeddingQueue per loss"
            )
        if self.count and (labels is None) != (self.labels is None):
            have = "with" if self.labels is not None else "without"
            raise ValueError(
                f"{owner}: the queue holds embeddings {have} labels; pass labels on every "
                "call or on none (or reset() the queue)"
            )

    def extend(self, owner: str, prep: Prepared) -> Prepared:
        """The prepared batch with the queued rows appended to every modality.

        Returns:
            The ``Prepared`` batch (see ``unihpr.losses._preamble``) whose embeddings
            are ``(B + Q, D)`` (the batch first), whose anchors are the
            batch's anchor rows (never the queue's) and whose labels, if
            any, cover both.
        """
        self._check(owner, prep.embeddings, prep.labels)
        B = prep.embeddings[0].shape[0]
        anchors = prep.anchors
        if anchors is None:
            anchors = torch.arange(B, device=prep.embeddings[0].device)
        if self.count == 0:
            return prep._replace(anchors=anchors)
        xs = [
            torch.cat([x, q[: self.count].to(x.dtype)])
            for x, q in zip(prep.embeddings, self.embeddings)
        ]
        labels = prep.labels
        if labels is not None:
            labels = torch.cat([labels, self.labels[: self.count]])
        return prep._replace(embeddings=xs, anchors=anchors, labels=labels)

    @torch.no_grad()
    def push(self, prep: Prepared) -> None:
        """Enqueue the batch of ``prep`` (detached), overwriting the oldest rows."""
        xs = [x.detach() for x in prep.embeddings]
        self._check("EmbeddingQueue", xs, prep.labels)
        if self.embeddings is None or self.count == 0:
            K, D = len(xs), xs[0].shape[1]
            self.embeddings = xs[0].new_zeros((K, self.size, D))
            self.labels = None
            if prep.labels is not None:
                self.labels = torch.zeros(self.size, dtype=torch.long, device=xs[0].device)
        new = torch.stack(xs)[:, -self.size :]
        labels = None if prep.labels is None else prep.labels[-self.size :]
        n = new.shape[1]
        # Positions next, next + 1, ... modulo the capacity: a static shape, no host sync.
        where = (self.next + torch.arange(n, device=new.device)) % self.size
        self.embeddings[:, where] = new.to(self.embeddings.dtype)
        if labels is not None:
            self.labels[where] = labels
        self.next = (self.next + n) % self.size
        self.count = min(self.count + n, self.size)
