"""float64 brute-force references for the contrastive losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unihpr.losses import TripletIndices


def triplet_lambda_eigvalsh(x1, x2, x3, triplets: TripletIndices) -> torch.Tensor:
    """λ1 of every indexed triplet by an explicit 3×D stack and eigvalsh."""
    xs = [F.normalize(t.double(), dim=1) for t in (x1, x2, x3)]
    M = torch.stack([xs[m][idx.long()] for m, idx in enumerate(triplets)], dim=-2)
    return torch.linalg.eigvalsh(M @ M.transpose(-1, -2))[..., -1]


def triplet_loss_reference(x1, x2, x3, triplets: TripletIndices, tau: float) -> torch.Tensor:
    """Eq. (3) with column 0 of ``triplets`` the positive."""
    logits = triplet_lambda_eigvalsh(x1, x2, x3, triplets) / tau
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


def pair_loss_reference(x, y, tau: float) -> torch.Tensor:
    """Symmetric InfoNCE written term by term (eq. 1, both directions)."""
    x, y = F.normalize(x.double(), dim=1), F.normalize(y.double(), dim=1)
    B = x.shape[0]
    total = x.new_zeros(())
    for i in range(B):
        row = torch.stack([x[i] @ y[j] for j in range(B)]) / tau
        col = torch.stack([x[j] @ y[i] for j in range(B)]) / tau
        total = total - torch.log_softmax(row, 0)[i] - torch.log_softmax(col, 0)[i]
    return total / (2 * B)
