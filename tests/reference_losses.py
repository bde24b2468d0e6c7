"""float64 brute-force references for the contrastive losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unihpr.losses import TripletIndices


def with_positives(anchors: torch.Tensor, negatives: TripletIndices) -> TripletIndices:
    """Prepend the positive (a, a, a) as column 0 of each anchor's row."""
    pos = anchors[:, None].to(negatives.image.dtype)
    return TripletIndices(*(torch.cat([pos, n], dim=1) for n in negatives))


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


def supcon_pair_reference(x, y, labels, tau: float) -> torch.Tensor:
    """Symmetric InfoNCE with SupCon L_out positives, written term by term.

    Per anchor i and direction: the mean over every p with labels[p] ==
    labels[i] of −log softmax_j(s_ij / τ)[p].
    """
    x, y = F.normalize(x.double(), dim=1), F.normalize(y.double(), dim=1)
    B = x.shape[0]
    total = x.new_zeros(())
    for i in range(B):
        row = torch.log_softmax(torch.stack([x[i] @ y[j] for j in range(B)]) / tau, 0)
        col = torch.log_softmax(torch.stack([x[j] @ y[i] for j in range(B)]) / tau, 0)
        pos = [p for p in range(B) if int(labels[p]) == int(labels[i])]
        total = total - sum(row[p] for p in pos) / len(pos) - sum(col[p] for p in pos) / len(pos)
    return total / (2 * B)


def supcon_triplet_reference(x1, x2, x3, triplets: TripletIndices, labels, tau: float):
    """Triplet loss over given candidates (column 0 the positive) with label positives.

    A candidate (i, j, k) of a row is a positive when its three labels equal
    the label of the row's column-0 image sample; the row's loss is the mean
    over positives of −log softmax.
    """
    lam = triplet_lambda_eigvalsh(x1, x2, x3, triplets) / tau
    logp = torch.log_softmax(lam, dim=1)
    total = lam.new_zeros(())
    for r in range(lam.shape[0]):
        own = int(labels[triplets.image[r, 0]])
        pos = [n for n in range(lam.shape[1]) if all(int(labels[t[r, n]]) == own for t in triplets)]
        total = total - sum(logp[r, n] for n in pos) / len(pos)
    return total / lam.shape[0]


def supcon_exact_triplet_reference(x1, x2, x3, labels, tau: float) -> torch.Tensor:
    """Exact triplet loss by brute force over all B³ triplets, with label positives.

    Anchor a's candidates: every (i, j, k) with a ∈ {i, j, k}; positives: the
    candidates whose three labels equal labels[a].
    """
    x1, x2, x3 = (F.normalize(x.double(), dim=1) for x in (x1, x2, x3))
    B = x1.shape[0]
    terms = []
    for a in range(B):
        logits, pos = [], []
        for i in range(B):
            for j in range(B):
                for k in range(B):
                    if a not in (i, j, k):
                        continue
                    m = torch.stack([x1[i], x2[j], x3[k]])
                    logits.append(torch.linalg.eigvalsh(m @ m.T)[-1] / tau)
                    pos.append(all(int(labels[t]) == int(labels[a]) for t in (i, j, k)))
        logp = torch.log_softmax(torch.stack(logits), 0)
        chosen = [lp for lp, p in zip(logp, pos) if p]
        terms.append(-sum(chosen) / len(chosen))
    return torch.stack(terms).mean()


def siglip_reference(x, y, tau: float, bias: float, labels=None) -> torch.Tensor:
    """−(1/B) Σ_i Σ_j log σ(z_ij (s_ij/τ + b)), term by term (open_clip's SigLipLoss)."""
    x, y = F.normalize(x.double(), dim=1), F.normalize(y.double(), dim=1)
    B = x.shape[0]
    total = x.new_zeros(())
    for i in range(B):
        for j in range(B):
            same = i == j if labels is None else int(labels[i]) == int(labels[j])
            z = 1.0 if same else -1.0
            logit = (x[i] @ y[j]) / tau + bias
            total = total - torch.log(1 / (1 + torch.exp(-z * logit)))
    return total / B


def gram_loss_reference(xs, tau: float, label_smoothing: float) -> torch.Tensor:
    """GRAM's objective, written per entry: explicit K×D stacks and torch.linalg.det.

    L_ij = −sqrt(det(M Mᵀ))/τ for M = (x⁰_i, x¹_j, …, x^{K−1}_j); the loss is
    ½ (CE(L, diag) + CE(Lᵀ, diag)), each with label smoothing ε spread over B.
    """
    xs = [F.normalize(x.double(), dim=1) for x in xs]
    B = xs[0].shape[0]
    L = xs[0].new_zeros(B, B)
    for i in range(B):
        for j in range(B):
            M = torch.stack([xs[0][i], *(x[j] for x in xs[1:])])
            L[i, j] = -torch.sqrt(torch.linalg.det(M @ M.T)) / tau

    def ce(logits):
        logp = torch.log_softmax(logits, dim=1)
        eps = label_smoothing
        per_row = [-(1 - eps) * logp[r, r] - eps / B * logp[r].sum() for r in range(B)]
        return torch.stack(per_row).mean()

    return 0.5 * (ce(L) + ce(L.T))


def plane_triplet_reference(x1, x2, x3, tau: float, labels=None) -> torch.Tensor:
    """Symile-style per-plane loss by brute force over all B³ triplets.

    For anchor a and modality m: the softmax over the B² triplets with t_m = a;
    positives (a, a, a), or with labels every such triplet whose three labels
    equal labels[a]; the anchor's loss is the mean over the three planes.
    """
    xs = [F.normalize(x.double(), dim=1) for x in (x1, x2, x3)]
    B = xs[0].shape[0]
    idx = torch.cartesian_prod(*(torch.arange(B),) * 3)  # (B³, 3)
    m_ = torch.stack([xs[m][idx[:, m]] for m in range(3)], dim=1)
    lam = torch.linalg.eigvalsh(m_ @ m_.transpose(1, 2))[:, -1] / tau
    terms = []
    for a in range(B):
        per_plane = []
        for m in range(3):
            inside = idx[:, m] == a
            logp = torch.log_softmax(lam[inside], 0)
            cand = idx[inside]
            if labels is None:
                pos = (cand == a).all(dim=1)
            else:
                pos = (labels[cand] == labels[a]).all(dim=1)
            per_plane.append(-logp[pos].mean())
        terms.append(torch.stack(per_plane).mean())
    return torch.stack(terms).mean()
