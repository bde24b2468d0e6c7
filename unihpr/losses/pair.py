"""Symmetric CLIP-style InfoNCE between two embedding sets (paper eq. 1)."""

from __future__ import annotations

import torch
from torch import Tensor

from unihpr._validate import check_labels, check_real, check_rows, check_square, check_tau
from unihpr.losses._preamble import EmbeddingLoss
from unihpr.losses.distributed import local_pair_info_nce
from unihpr.losses.queue import EmbeddingQueue
from unihpr.losses.temperature import LearnableTemperature


def check_label_smoothing(value: float, *, owner: str) -> float:
    """ε of the cross-entropies: a number in [0, 1)."""
    return check_real("label_smoothing", value, low=0.0, high=1.0, high_open=True, owner=owner)


def rows_info_nce(similarity: Tensor, rows: Tensor | None, tau: Tensor, **options) -> Tensor:
    """The symmetric InfoNCE of the anchors ``rows`` (None: all) of a square matrix.

    ``options``: ``labels`` and ``label_smoothing`` of [`local_pair_info_nce`][unihpr.losses.distributed.local_pair_info_nce].
    """
    if rows is None:  # the matrix and its transpose are the two directions, no copies
        rows = torch.arange(similarity.shape[0], device=similarity.device)
        return local_pair_info_nce(similarity, similarity.T, rows, tau, **options)
    return local_pair_info_nce(similarity[rows], similarity[:, rows].T, rows, tau, **options)


def pair_info_nce(
    similarity: Tensor,
    tau: Tensor | float,
    *,
    anchors: Tensor | None = None,
    labels: Tensor | None = None,
    label_smoothing: float = 0.0,
    validate: bool = True,
) -> Tensor:
    """Symmetric InfoNCE from a square cosine-similarity matrix.

    Args:
        similarity: ``(B, B)`` cosines, ``similarity[i, j] = x_i · y_j``;
            positives on the diagonal.
        tau: Temperature, a float or a 0-dim tensor (finite, > 0).
        anchors: ``(A,)`` rows whose loss is averaged, at least one (the
            distributed losses pass this rank's rows); default all B.
        labels: ``(B,)`` integer labels: every sample with the anchor's label
            is a positive, never a negative; per anchor the loss is the mean
            over its positives p of −log softmax[p] (SupCon's L_out). Equal to
            the plain loss when all labels differ.
        label_smoothing: ε in [0, 1) of the cross-entropies (as in
            ``F.cross_entropy``).
        validate: Check the anchors' range and a tensor τ's value (reads them
            on the host, a GPU synchronisation).

    Returns:
        Scalar: the mean of the x→y and y→x cross-entropies.

    Raises:
        TypeError: ``similarity`` is not a floating-point tensor, or another
            argument has the wrong type.
        ValueError: It is not square, τ is not finite and > 0, or the anchors
            are empty or out of range.
    """
    owner = "pair_info_nce"
    similarity = check_square("similarity", similarity, owner=owner)
    B, device = similarity.shape[0], similarity.device
    work = torch.promote_types(similarity.dtype, torch.float32)
    tau = check_tau(tau, dtype=work, device=device, validate=validate, owner=owner)
    label_smoothing = check_label_smoothing(label_smoothing, owner=owner)
    if labels is not None:
        labels = check_labels(labels, B, device, owner=owner)
    if anchors is not None:
        anchors = check_rows("anchors", anchors, B, device=device, validate=validate, owner=owner)
    return rows_info_nce(similarity, anchors, tau, labels=labels, label_smoothing=label_smoothing)


class PairInfoNCE(EmbeddingLoss):
    """Symmetric InfoNCE between two ``(B, D)`` embedding sets (CLIP loss).

    Embeddings are L2-normalised inside (scale-invariantly, see
    [`ContrastiveLoss`][unihpr.losses.ContrastiveLoss]); row i of ``x`` and
    row i of ``y`` are a positive pair, all other rows of the batch are
    negatives.

    Args:
        temperature: A fixed float τ, or a [`LearnableTemperature`][].
        gather: When torch.distributed is initialised with world size > 1,
            use the global batch for negatives (see
            [`unihpr.losses.distributed`][]); False keeps them local.
        validate: Reject zero or non-finite rows and a diverged temperature,
            which reads values on the host (a GPU synchronisation per call);
            can be switched off after the first step (attribute ``validate``).
        label_smoothing: ε in [0, 1) of both cross-entropies (as in
            ``F.cross_entropy``; GRAM trains with 0.1).
        distributed: ``"local"`` (default) or ``"global"``; see [`unihpr.losses.distributed`][].
        queue: An [`EmbeddingQueue`][unihpr.losses.EmbeddingQueue] of past
            embeddings, extra negatives of both directions (gradients only
            through the current batch; the batch is pushed after each call
            in training mode).

    Several positives per anchor: pass ``labels`` to ``forward`` (see
    [`pair_info_nce`][unihpr.losses.pair_info_nce]).

    Examples:
        >>> loss_fn = PairInfoNCE(LearnableTemperature(init=1 / 14, min=1 / 100))
        >>> loss = loss_fn(torch.randn(8, 32), torch.randn(8, 32))
        >>> same_frame = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])  # two views per frame
        >>> loss = loss_fn(torch.randn(8, 32), torch.randn(8, 32), labels=same_frame)
    """

    def __init__(
        self,
        temperature: float | LearnableTemperature = 0.07,
        gather: bool = True,
        validate: bool = True,
        label_smoothing: float = 0.0,
        distributed: str = "local",
        queue: EmbeddingQueue | None = None,
    ) -> None:
        super().__init__(
            temperature, gather=gather, distributed=distributed, validate=validate, queue=queue
        )
        self.label_smoothing = check_label_smoothing(label_smoothing, owner="PairInfoNCE")

    def forward(self, x: Tensor, y: Tensor, labels: Tensor | None = None) -> Tensor:
        """Loss for ``x`` ``(B, D)`` and ``y`` ``(B, D)``; returns a scalar.

        ``labels`` ``(B,)``: optional integer labels, samples sharing one are
        positives of each other (see [`pair_info_nce`][unihpr.losses.pair_info_nce]).
        """
        prep = self.prepare({"x": x, "y": y}, labels)
        xg, yg = prep.embeddings
        opts = {"labels": prep.labels, "label_smoothing": self.label_smoothing}
        rows = prep.anchors
        if rows is None:
            return rows_info_nce(xg @ yg.T, None, self.tau(xg), **opts)
        # Only the anchors' rows of the global matrix are needed.
        return local_pair_info_nce(xg[rows] @ yg.T, yg[rows] @ xg.T, rows, self.tau(xg), **opts)
