"""InfoNCE over K ≥ 2 modalities scored by the Gram matrix of a tuple.

A tuple t = (t_1, …, t_K) picks the embedding of sample t_m from modality m;
its Gram matrix G[m, n] = x_m[t_m] · x_n[t_n] (unit diagonal) is read out of
the K(K−1)/2 pairwise B×B similarity matrices, so no (tuple, K, D) tensor is
built. Two scores:

* ``"lambda"``: λ1(G), the paper's singular-value score generalised to K
  modalities (K = 2: 1 + |cos|, K = 3: closed form, K > 3: eigvalsh). Large
  for aligned tuples; logit = λ1 / τ. Sign-blind like the K = 3 case.
* ``"volume"``: the Gram volume V = sqrt(det G) of GRAM (Cicchetti et al.,
  ICLR 2025): the volume of the parallelotope spanned by the K unit vectors,
  0 for aligned tuples and 1 for orthogonal ones. Since aligned means *small*,
  the logit is the negative volume, −V / τ, as in GRAM's contrastive loss.

Negatives for anchor a (positive (a, …, a)) are drawn by a tuple sampler:
``"uniform"`` over the B^K − (B−1)^K − 1 tuples that share at least one
embedding with the anchor (the K-modality version of the paper's candidate
set), or ``"swap-one"`` over the K(B−1) tuples that differ in exactly one
modality.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unihpr.losses._checks import check_same_shape, normalize_embeddings
from unihpr.losses.temperature import LearnableTemperature, as_temperature
from unihpr.ops.gram import gram_largest_eigenvalue, gram_volume

__all__ = ["MultimodalInfoNCE", "gram_scores", "sample_tuples"]

SCORES = ("lambda", "volume")
TUPLE_SAMPLERS = ("uniform", "swap-one")


def _skip(x: Tensor, a: Tensor) -> Tensor:
    """Map x in [0, B−1) to [0, B) \\ {a}."""
    return x + (x >= a).long()


def sample_tuples(
    batch_size: int,
    num_modalities: int,
    num_negatives: int,
    *,
    anchors: Tensor | None = None,
    scheme: str = "uniform",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Negative tuples per anchor, each sharing at least one embedding with it.

    Args:
        batch_size: B.
        num_modalities: K ≥ 2.
        num_negatives: N per anchor.
        anchors: ``(A,)`` int64 anchor rows; default all B.
        scheme: ``"uniform"``: uniform (with replacement) over the
            B^K − (B−1)^K − 1 tuples with some t_m = a, other than the
            positive. The first modality m with t_m = a is drawn with
            probability ∝ (B−1)^m B^(K−1−m) (the number of such tuples), the
            earlier ones uniformly among the other samples and the later ones
            uniformly among all; a draw equal to the positive is redrawn.
            ``"swap-one"``: one modality uniformly, its index uniformly ≠ a.
        generator: Source of randomness (CPU generator).

    Returns:
        ``(A, N, K)`` int64 indices (on the anchors' device).

    Raises:
        ValueError: On a bad size, scheme or anchors.
    """
    owner = "sample_tuples"
    for name, v, lo in (("batch_size", batch_size, 2), ("num_modalities", num_modalities, 2)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{owner}: {name} must be an int >= {lo}, got {v!r}")
    if isinstance(num_negatives, bool) or not isinstance(num_negatives, int) or num_negatives < 1:
        raise ValueError(f"{owner}: num_negatives must be an int >= 1, got {num_negatives!r}")
    if scheme not in TUPLE_SAMPLERS:
        raise ValueError(f"{owner}: scheme must be one of {TUPLE_SAMPLERS}, got {scheme!r}")
    B, K, N = batch_size, num_modalities, num_negatives
    if anchors is None:
        anchors = torch.arange(B)
    if anchors.dim() != 1 or anchors.dtype != torch.long:
        raise ValueError(f"{owner}: anchors must be a 1-D int64 tensor, got {anchors!r}")
    device = anchors.device
    a = anchors.cpu()[:, None, None]
    A = a.shape[0]

    def randint(high: int, shape) -> Tensor:
        return torch.randint(high, shape, generator=generator)

    if scheme == "swap-one":
        m = randint(K, (A, N, 1))
        other = _skip(randint(B - 1, (A, N, 1)), a)
        mods = torch.arange(K)[None, None, :]
        return torch.where(mods == m, other, a).to(device)

    weights = torch.tensor([((B - 1) / B) ** m for m in range(K)], dtype=torch.float64)
    out = torch.empty(A, N, K, dtype=torch.long)
    todo = torch.ones(A, N, dtype=torch.bool)
    while bool(todo.any()):
        first = torch.multinomial(weights, A * N, replacement=True, generator=generator)
        first = first.view(A, N, 1)
        mods = torch.arange(K)[None, None, :]
        before = _skip(randint(B - 1, (A, N, K)), a)
        anywhere = randint(B, (A, N, K))
        draw = torch.where(mods < first, before, torch.where(mods == first, a, anywhere))
        out = torch.where(todo[..., None], draw, out)
        todo = (out == a).all(dim=-1)  # the positive itself: redraw
    return out.to(device)


def gram_scores(sims: dict[tuple[int, int], Tensor], tuples: Tensor, score: str) -> Tensor:
    """Scores of ``(..., K)`` index tuples from the pairwise similarity matrices.

    Args:
        sims: ``{(m, n): (B, B)}`` for m < n, ``sims[m, n][i, j] = x_m[i] · x_n[j]``.
        tuples: ``(..., K)`` int64 indices.
        score: ``"lambda"`` (λ1 of G) or ``"volume"`` (sqrt det G).

    Returns:
        ``(...)`` scores (λ1, or the volume itself — the loss negates it).
    """
    K = tuples.shape[-1]
    rows = []
    for m in range(K):
        row = []
        for n in range(K):
            if m == n:
                row.append(
                    torch.ones(tuples.shape[:-1], dtype=sims[0, 1].dtype, device=tuples.device)
                )
            elif m < n:
                row.append(sims[m, n][tuples[..., m], tuples[..., n]])
            else:
                row.append(sims[n, m][tuples[..., n], tuples[..., m]])
        rows.append(torch.stack(row, dim=-1))
    gram = torch.stack(rows, dim=-2)
    if score == "lambda":
        return gram_largest_eigenvalue(gram)
    return gram_volume(gram)


class MultimodalInfoNCE(nn.Module):
    """InfoNCE over K ≥ 2 ``(B, D)`` embedding sets with a Gram-matrix score.

    For anchor a the positive is the tuple (a, …, a) and the negatives are
    ``num_negatives`` tuples from ``sampler``; the loss is the mean over
    anchors of −log softmax of the positive's logit. Logits: λ1(G)/τ for
    ``score="lambda"``, −sqrt(det G)/τ for ``score="volume"`` (GRAM's sign:
    aligned tuples have small volume).

    With K = 3 and ``score="lambda"`` this is the paper's Triplet-InfoNCE with
    a K-modality sampler.

    Args:
        temperature: Float τ or a [`LearnableTemperature`][].
        score: ``"lambda"`` or ``"volume"``.
        sampler: ``"uniform"`` or ``"swap-one"`` (see [`sample_tuples`][]).
        num_negatives: Negatives per anchor; default B − 1.

    Examples:
        >>> loss_fn = MultimodalInfoNCE(score="volume")
        >>> xs = [torch.randn(8, 16) for _ in range(4)]
        >>> loss = loss_fn(*xs, generator=torch.Generator().manual_seed(0))
    """

    def __init__(
        self,
        temperature: float | LearnableTemperature = 0.2,
        score: str = "lambda",
        sampler: str = "uniform",
        num_negatives: int | None = None,
    ) -> None:
        super().__init__()
        owner = "MultimodalInfoNCE"
        if score not in SCORES:
            raise ValueError(f"{owner}: score must be one of {SCORES}, got {score!r}")
        if sampler not in TUPLE_SAMPLERS:
            raise ValueError(f"{owner}: sampler must be one of {TUPLE_SAMPLERS}, got {sampler!r}")
        if num_negatives is not None and (
            isinstance(num_negatives, bool)
            or not isinstance(num_negatives, int)
            or num_negatives < 1
        ):
            raise ValueError(f"{owner}: num_negatives must be an int >= 1, got {num_negatives!r}")
        self.temperature = as_temperature(temperature, owner=owner)
        self.score = score
        self.sampler = sampler
        self.num_negatives = num_negatives

    def forward(self, *embeddings: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Loss for K ≥ 2 embedding sets, each ``(B, D)``; returns a scalar."""
        owner = "MultimodalInfoNCE"
        if len(embeddings) < 2:
            raise ValueError(f"{owner}: needs at least 2 embedding sets, got {len(embeddings)}")
        xs = [
            normalize_embeddings(f"embeddings[{m}]", x, owner=owner)
            for m, x in enumerate(embeddings)
        ]
        check_same_shape(owner, **{f"embeddings[{m}]": x for m, x in enumerate(xs)})
        B, K = xs[0].shape[0], len(xs)
        work = torch.promote_types(xs[0].dtype, torch.float32)
        xs = [x.to(work) for x in xs]
        sims = {(m, n): xs[m] @ xs[n].T for m in range(K) for n in range(m + 1, K)}
        anchors = torch.arange(B, device=xs[0].device)
        n_neg = B - 1 if self.num_negatives is None else self.num_negatives
        neg = sample_tuples(B, K, n_neg, anchors=anchors, scheme=self.sampler, generator=generator)
        pos = anchors[:, None, None].expand(B, 1, K)
        scores = gram_scores(sims, torch.cat([pos, neg], dim=1), self.score)
        sign = 1.0 if self.score == "lambda" else -1.0
        logits = sign * scores / self.temperature().to(work)
        target = torch.zeros(B, dtype=torch.long, device=logits.device)
        return F.cross_entropy(logits, target)
