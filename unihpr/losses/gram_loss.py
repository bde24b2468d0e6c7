"""GRAM's training objective (Cicchetti et al., ICLR 2025) for K ≥ 2 modalities.

Modality 0 is the anchor. The logit of anchor i against sample j is the
negative Gram volume of the anchor's embedding with the other K − 1
embeddings of sample j,

    L_ij = −V(x⁰_i, x¹_j, …, x^{K−1}_j) / τ,  V = sqrt(det G),

and the loss is ½ (CE(L, diag) + CE(Lᵀ, diag)) with label smoothing: every
anchor against every complete tuple, and every tuple against every anchor.
This negative set is not a set of tuples sharing an embedding with a positive,
so unlike [`MultimodalInfoNCE`][unihpr.losses.MultimodalInfoNCE] it needs no
sampler: the Gram matrix of (i, j) is read out of the K − 1 matrices
X⁰ X^mᵀ and the diagonals of the others.
"""

from __future__ import annotations

import torch
from torch import Tensor

from unihpr.losses._preamble import EmbeddingLoss
from unihpr.losses.distributed import local_pair_info_nce
from unihpr.losses.pair import check_label_smoothing
from unihpr.losses.temperature import LearnableTemperature
from unihpr.ops.gram import gram_volume, stack_gram

__all__ = ["GRAMLoss", "anchor_tuple_volumes"]


def anchor_tuple_volumes(xs: list[Tensor], rows: Tensor | None = None) -> Tensor:
    """Gram volumes of anchors against complete tuples.

    Args:
        xs: K ≥ 2 L2-normalised sets: the anchors ``(B0, D)`` of modality 0,
            then the other modalities' ``(B, D)`` of the tuples.
        rows: ``(A,)`` rows of modality 0 to use as anchors (default all B0).

    Returns:
        ``(A, B)``: entry (a, j) is V(x⁰_{rows[a]}, x¹_j, …, x^{K−1}_j), the
        square root of the determinant of their Gram matrix, floored as in
        [`gram_volume`][unihpr.ops.gram_volume].
    """
    anchor = xs[0] if rows is None else xs[0][rows]
    A, B = anchor.shape[0], xs[1].shape[0]

    def cosine(m: int, n: int) -> Tensor:
        if m == 0:
            return anchor @ xs[n].T  # x⁰_a · x^n_j
        return (xs[m] * xs[n]).sum(dim=1).expand(A, B)  # x^m_j · x^n_j

    return gram_volume(stack_gram(len(xs), cosine))


class GRAMLoss(EmbeddingLoss):
    """GRAM's contrastive loss over K ≥ 2 ``(B, D)`` embedding sets.

    Logits L_ij = −V(x⁰_i, x¹_j, …, x^{K−1}_j)/τ with V the Gram volume
    (aligned tuples have a small volume, hence the sign); loss
    ½ (CE(L, diag) + CE(Lᵀ, diag)) with label smoothing ε. The first set is
    the anchor modality. With K = 2, V = sqrt(1 − cos²) = |sin|.

    Args:
        temperature: Float τ or a [`LearnableTemperature`][] (GRAM: 0.07).
        label_smoothing: ε of both cross-entropies (GRAM: 0.1).
        gather: With torch.distributed initialised and world size > 1, every
            rank scores its own anchors against the global batch and the
            global anchors against its own tuples (see
            [`unihpr.losses.distributed`][]); False keeps everything local.
        distributed: ``"local"`` (default) or ``"global"``; see [`unihpr.losses.distributed`][].
        validate: Reject zero or non-finite rows and a diverged temperature
            (a host synchronisation).

    Examples:
        >>> loss_fn = GRAMLoss(temperature=0.07, label_smoothing=0.1)
        >>> text, video, audio = (torch.randn(8, 32) for _ in range(3))
        >>> loss = loss_fn(text, video, audio)
    """

    def __init__(
        self,
        temperature: float | LearnableTemperature = 0.07,
        label_smoothing: float = 0.1,
        gather: bool = True,
        validate: bool = True,
        distributed: str = "local",
    ) -> None:
        super().__init__(temperature, gather=gather, distributed=distributed, validate=validate)
        self.label_smoothing = check_label_smoothing(label_smoothing, owner="GRAMLoss")

    def forward(self, *embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        """Loss for K ≥ 2 embedding sets, each ``(B, D)``, the first the anchor.

        ``labels`` ``(B,)``: optional integer labels; every sample sharing an
        anchor's label is a positive (the mean over positives, as in
        [`PairInfoNCE`][unihpr.losses.PairInfoNCE]).
        """
        owner = "GRAMLoss"
        if len(embeddings) < 2:
            raise ValueError(f"{owner}: needs at least 2 embedding sets, got {len(embeddings)}")
        prep = self.prepare({f"embeddings[{m}]": x for m, x in enumerate(embeddings)}, labels)
        tau = self.tau(prep.embeddings[0])
        xs = [x.to(tau.dtype) for x in prep.embeddings]
        rows = prep.anchors
        if rows is None:
            rows = torch.arange(xs[0].shape[0], device=xs[0].device)
            neg_volume = -anchor_tuple_volumes(xs)
            to_tuples, to_anchors = neg_volume, neg_volume.T
        else:
            to_tuples = -anchor_tuple_volumes(xs, rows)
            # This rank's tuples against every anchor: the columns ``rows``.
            to_anchors = -anchor_tuple_volumes([xs[0], *(x[rows] for x in xs[1:])]).T
        return local_pair_info_nce(
            to_tuples,
            to_anchors,
            rows,
            tau,
            labels=prep.labels,
            label_smoothing=self.label_smoothing,
        )
