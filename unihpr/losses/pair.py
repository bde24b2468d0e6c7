"""Symmetric CLIP-style InfoNCE between two embedding sets (paper eq. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unihpr.losses._checks import check_same_shape, normalize_embeddings
from unihpr.losses.distributed import gather_embeddings, local_pair_info_nce
from unihpr.losses.temperature import LearnableTemperature, as_temperature


def pair_info_nce(similarity: Tensor, tau: Tensor | float) -> Tensor:
    """Symmetric InfoNCE from a square cosine-similarity matrix.

    Args:
        similarity: ``(B, B)`` cosines, ``similarity[i, j] = x_i · y_j``;
            positives on the diagonal.
        tau: Temperature (scalar).

    Returns:
        Scalar: the mean of the x→y and y→x cross-entropies.
    """
    logits = similarity / tau
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


class PairInfoNCE(nn.Module):
    """Symmetric InfoNCE between two ``(B, D)`` embedding sets (CLIP loss).

    Embeddings are L2-normalised inside; row i of ``x`` and row i of ``y`` are
    a positive pair, all other rows of the batch are negatives.

    Args:
        temperature: A fixed float τ, or a [`LearnableTemperature`][].
        gather: When torch.distributed is initialised with world size > 1,
            use the global batch for negatives (see
            [`unihpr.losses.distributed`][]); False keeps them local.

    Examples:
        >>> loss_fn = PairInfoNCE(LearnableTemperature(init=1 / 14, min=1 / 100))
        >>> loss = loss_fn(torch.randn(8, 32), torch.randn(8, 32))
    """

    def __init__(
        self, temperature: float | LearnableTemperature = 0.07, gather: bool = True
    ) -> None:
        super().__init__()
        self.temperature = as_temperature(temperature, owner="PairInfoNCE")
        self.gather = bool(gather)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Loss for ``x`` ``(B, D)`` and ``y`` ``(B, D)``; returns a scalar."""
        owner = "PairInfoNCE"
        x = normalize_embeddings("x", x, owner=owner)
        y = normalize_embeddings("y", y, owner=owner)
        check_same_shape(owner, x=x, y=y)
        batch = gather_embeddings([x, y], self.gather)
        if batch.distributed:
            xg, yg = batch.tensors
            rows = batch.rows
            return local_pair_info_nce(xg[rows] @ yg.T, yg[rows] @ xg.T, rows, self.temperature())
        return pair_info_nce(x @ y.T, self.temperature())
