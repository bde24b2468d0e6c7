"""Symmetric CLIP-style InfoNCE between two embedding sets (paper eq. 1)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from unihpr.losses._preamble import prepare
from unihpr.losses.distributed import check_distributed, local_pair_info_nce
from unihpr.losses.queue import EmbeddingQueue, check_queue
from unihpr.losses.temperature import LearnableTemperature, as_temperature
from unihpr.ops._checks import (
    check_index,
    check_label_smoothing,
    check_labels,
    check_range,
    check_square,
    check_tau,
)


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
        anchors: ``(A,)`` rows whose loss is averaged (the distributed losses
            pass this rank's rows); default all B.
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
        TypeError: ``similarity`` is not a floating-point tensor.
        ValueError: It is not square, or τ or the anchors are out of range.
    """
    owner = "pair_info_nce"
    similarity = check_square(owner, "similarity", similarity)
    work = torch.promote_types(similarity.dtype, torch.float32)
    tau = check_tau(owner, tau, dtype=work, device=similarity.device, validate=validate)
    check_label_smoothing(owner, label_smoothing)
    B = similarity.shape[0]
    if labels is not None:
        labels = check_labels(owner, labels, B, similarity.device)
    opts = {"labels": labels, "label_smoothing": label_smoothing}
    if anchors is None:
        rows = torch.arange(B, device=similarity.device)
        return local_pair_info_nce(similarity, similarity.T, rows, tau, **opts)
    check_index(owner, "anchors", anchors, dim=1)
    if validate:
        check_range(owner, "anchors", anchors, B)
    anchors = anchors.long()
    return local_pair_info_nce(similarity[anchors], similarity[:, anchors].T, anchors, tau, **opts)


class PairInfoNCE(nn.Module):
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
        distributed: ``"local"`` (default; after DDP the gradients equal one
            process on the concatenated batch) or ``"global"`` (open_clip's
            default; network gradients 1/W of that), see [`unihpr.losses.distributed`][].
        validate: Reject zero or non-finite rows, which reads the data on the
            host (a GPU synchronisation per call); can be switched off after
            the first step (attribute ``validate``).
        label_smoothing: ε in [0, 1) of both cross-entropies (as in
            ``F.cross_entropy``; GRAM trains with 0.1).
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
        super().__init__()
        self.temperature = as_temperature(temperature, owner="PairInfoNCE")
        self.gather = bool(gather)
        self.distributed = check_distributed("PairInfoNCE", distributed)
        self.validate = bool(validate)
        self.label_smoothing = check_label_smoothing("PairInfoNCE", label_smoothing)
        self.queue = check_queue("PairInfoNCE", queue)

    def forward(self, x: Tensor, y: Tensor, labels: Tensor | None = None) -> Tensor:
        """Loss for ``x`` ``(B, D)`` and ``y`` ``(B, D)``; returns a scalar.

        ``labels`` ``(B,)``: optional integer labels, samples sharing one are
        positives of each other (see [`pair_info_nce`][unihpr.losses.pair_info_nce]).
        """
        prep = prepare(
            "PairInfoNCE",
            {"x": x, "y": y},
            gather=self.gather,
            distributed=self.distributed,
            validate=self.validate,
            labels=labels,
        )
        batch = prep
        if self.queue is not None:
            prep = self.queue.extend("PairInfoNCE", batch)
            if self.training:
                self.queue.push(batch)
        xg, yg = prep.embeddings
        tau = self.temperature()
        opts = {"labels": prep.labels, "label_smoothing": self.label_smoothing}
        # Only the anchors' rows of the global matrix are needed.
        rows = prep.anchors
        if rows is None:
            rows = torch.arange(xg.shape[0], device=xg.device)
            s = xg @ yg.T
            return local_pair_info_nce(s, s.T, rows, tau, **opts)
        return local_pair_info_nce(xg[rows] @ yg.T, yg[rows] @ xg.T, rows, tau, **opts)
