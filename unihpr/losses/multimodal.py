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

Negatives for anchor a (positive (a, …, a)) come from the same sampler
objects as the triplet loss ([`unihpr.losses.samplers`][]), through
``sampler.tuples(B, K, N)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from unihpr._validate import check_choice, check_generator, check_int
from unihpr.losses._preamble import EmbeddingLoss, similarities
from unihpr.losses.samplers import MAX_NEGATIVES, TripletSampler, UniformTripletSampler
from unihpr.losses.temperature import LearnableTemperature
from unihpr.ops.backend import resolve_backend
from unihpr.ops.gram import gram_volume, lambda1_from_gram, stack_gram
from unihpr.ops.sampled_triplet import KERNELS as SAMPLED_KERNELS
from unihpr.ops.sampled_triplet import sampled_triplet_info_nce

__all__ = ["MultimodalInfoNCE", "gram_scores"]

SCORES = ("lambda", "volume")


def gram_scores(
    sims: dict[tuple[int, int], Tensor], tuples: Tensor, score: str, *, validate: bool = True
) -> Tensor:
    """Scores of ``(..., K)`` index tuples from the pairwise similarity matrices.

    Args:
        sims: ``{(m, n): (B, B)}`` for m < n, ``sims[m, n][i, j] = x_m[i] · x_n[j]``.
        tuples: ``(..., K)`` int64 indices.
        score: ``"lambda"`` (λ1 of G) or ``"volume"`` (sqrt det G).
        validate: Reject non-finite similarities (see
            [`lambda1_from_gram`][unihpr.ops.lambda1_from_gram]).

    Returns:
        ``(...)`` scores (λ1, or the volume itself — the loss negates it).
    """
    check_choice("score", score, SCORES, owner="gram_scores")
    gram = stack_gram(tuples.shape[-1], lambda m, n: sims[m, n][tuples[..., m], tuples[..., n]])
    if score == "lambda":
        return lambda1_from_gram(gram, validate=validate)
    return gram_volume(gram)


class MultimodalInfoNCE(EmbeddingLoss):
    """InfoNCE over K ≥ 2 ``(B, D)`` embedding sets with a Gram-matrix score.

    For anchor a the positive is the tuple (a, …, a) and the negatives are
    ``num_negatives`` tuples from ``sampler``; the loss is the mean over
    anchors of −log softmax of the positive's logit. Logits: λ1(G)/τ for
    ``score="lambda"``, −sqrt(det G)/τ for ``score="volume"`` (GRAM's sign:
    aligned tuples have small volume).

    With K = 3 and ``score="lambda"`` this is the paper's Triplet-InfoNCE: it
    runs the same op as [`TripletInfoNCE`][unihpr.losses.TripletInfoNCE], so
    the two give the same loss for the same sampler and generator.

    Args:
        temperature: Float τ or a [`LearnableTemperature`][].
        score: ``"lambda"`` or ``"volume"``.
        sampler: A [`TripletSampler`][unihpr.losses.TripletSampler] (default
            uniform over the tuples sharing an embedding with the anchor).
        num_negatives: Negatives per anchor; default B − 1; at most
            [`MAX_NEGATIVES`][unihpr.losses.samplers.MAX_NEGATIVES].
        gather: With torch.distributed initialised and world size > 1, take
            negatives from the global batch (each rank's loss covers its own
            anchors); False keeps them local.
        distributed: ``"local"`` (default) or ``"global"``; see [`unihpr.losses.distributed`][].
        backend: ``"auto"``, ``"torch"``, or ``"compile"`` (K = 3 with
            ``score="lambda"`` only); see [`unihpr.ops.backend`][].
        validate: Check the inputs' values (zero/non-finite rows, a diverged
            temperature), which synchronises a GPU with the host on every call.

    Examples:
        >>> loss_fn = MultimodalInfoNCE(score="volume", sampler=SwapOneTripletSampler())
        >>> xs = [torch.randn(8, 16) for _ in range(4)]
        >>> loss = loss_fn(*xs, generator=torch.Generator().manual_seed(0))
    """

    def __init__(
        self,
        temperature: float | LearnableTemperature = 0.2,
        score: str = "lambda",
        sampler: TripletSampler | None = None,
        num_negatives: int | None = None,
        gather: bool = True,
        backend: str = "auto",
        validate: bool = True,
        distributed: str = "local",
    ) -> None:
        super().__init__(temperature, gather=gather, distributed=distributed, validate=validate)
        owner = "MultimodalInfoNCE"
        self.score = check_choice("score", score, SCORES, owner=owner)
        if sampler is not None and not isinstance(sampler, TripletSampler):
            raise TypeError(
                f"{owner}: sampler must be a TripletSampler, got {type(sampler).__name__}"
            )
        if num_negatives is not None:
            check_int("num_negatives", num_negatives, low=1, high=MAX_NEGATIVES, owner=owner)
        resolve_backend(backend, owner=owner, kernels=SAMPLED_KERNELS)
        self.sampler = sampler if sampler is not None else UniformTripletSampler()
        self.num_negatives = num_negatives
        self.backend = backend

    def forward(self, *embeddings: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Loss for K ≥ 2 embedding sets, each ``(B, D)``; returns a scalar."""
        owner = "MultimodalInfoNCE"
        if len(embeddings) < 2:
            raise ValueError(f"{owner}: needs at least 2 embedding sets, got {len(embeddings)}")
        check_generator(generator, owner=owner)
        prep = self.prepare({f"embeddings[{m}]": x for m, x in enumerate(embeddings)})
        xs = prep.embeddings
        B, K = xs[0].shape[0], len(xs)
        tau = self.tau(xs[0])
        work = tau.dtype
        sims = {key: s.to(work) for key, s in similarities(xs).items()}
        fused = K == 3 and self.score == "lambda"
        kernels = SAMPLED_KERNELS if fused else ("torch",)
        what = f"{owner}(K={K}, score={self.score!r})"
        resolve_backend(self.backend, owner=what, kernels=kernels, device=xs[0].device, dtype=work)
        dtype = torch.int32 if B**K < 2**31 else torch.int64
        negatives = self.sampler.tuples(
            B, K, self.num_negatives, generator=generator, device=xs[0].device, dtype=dtype
        )
        anchors = prep.anchors
        if anchors is None:
            anchors = torch.arange(B, device=xs[0].device, dtype=dtype)
        else:
            negatives = tuple(n[anchors] for n in negatives)
            anchors = anchors.to(dtype)
        if fused:
            loss, _ = sampled_triplet_info_nce(
                sims[0, 1], sims[0, 2], sims[1, 2], *negatives, tau, anchors,
                backend=self.backend, validate=self.validate,
            )  # fmt: skip
            return loss
        tuples = torch.stack(
            [torch.cat([anchors[:, None], n], dim=1).long() for n in negatives], dim=-1
        )
        scores = gram_scores(sims, tuples, self.score, validate=self.validate)
        sign = 1.0 if self.score == "lambda" else -1.0
        logits = sign * scores / tau
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        return F.cross_entropy(logits, target)
