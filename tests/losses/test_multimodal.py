"""K-modality Gram-score InfoNCE vs float64 eigvalsh / det references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unihpr.losses import (
    MultimodalInfoNCE,
    ShuffleTripletSampler,
    SwapOneTripletSampler,
    TripletInfoNCE,
    UniformTripletSampler,
    make_sampler,
)
from unihpr.losses.multimodal import gram_scores
from unihpr.ops.gram import gram_determinant, gram_volume, lambda1_from_gram

SAMPLERS = [UniformTripletSampler(), SwapOneTripletSampler(), ShuffleTripletSampler()]


def reference_loss(xs, tuples, tau, score):
    """Stack the K embeddings of every tuple, G = M Mᵀ, eigvalsh / det in float64."""
    xs = [F.normalize(x.double(), dim=1) for x in xs]
    M = torch.stack([xs[m][tuples[..., m]] for m in range(len(xs))], dim=-2)
    G = M @ M.transpose(-1, -2)
    if score == "lambda":
        logits = torch.linalg.eigvalsh(G)[..., -1] / tau
    else:
        logits = -torch.sqrt(torch.linalg.det(G).clamp_min(1e-6)) / tau
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


def _embeddings(B, K, seed):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(B, 7, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(K)
    ]


@pytest.mark.parametrize("K", [2, 3, 4, 5])
@pytest.mark.parametrize("score", ["lambda", "volume"])
@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
def test_loss_matches_float64_reference(K, score, sampler):
    B, N = 6, 9
    xs = _embeddings(B, K, K)
    loss = MultimodalInfoNCE(0.3, score=score, sampler=sampler, num_negatives=N)(
        *xs, generator=torch.Generator().manual_seed(1)
    )
    neg = torch.stack(sampler.tuples(B, K, N, generator=torch.Generator().manual_seed(1)), -1)
    pos = torch.arange(B)[:, None, None].expand(B, 1, K)
    ref = reference_loss(xs, torch.cat([pos, neg], 1), 0.3, score)
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-10)
    for a, b in zip(torch.autograd.grad(loss, xs), torch.autograd.grad(ref, xs)):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
def test_three_modalities_lambda_is_the_triplet_loss(sampler):
    """One sampler family: the K = 3 λ1 loss and TripletInfoNCE agree draw for draw."""
    xs = _embeddings(8, 3, 5)
    multi = MultimodalInfoNCE(0.2, sampler=sampler, num_negatives=11)
    trip = TripletInfoNCE(0.2, sampler=sampler, num_negatives=11)
    a = multi(*xs, generator=torch.Generator().manual_seed(3))
    b = trip(*xs, generator=torch.Generator().manual_seed(3))
    # two code paths in float64: the tolerances of the eigvalsh reference test above
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    for ga, gb in zip(torch.autograd.grad(a, xs), torch.autograd.grad(b, xs)):
        torch.testing.assert_close(ga, gb, rtol=1e-7, atol=1e-9)


def test_sampler_must_be_an_object():
    with pytest.raises(TypeError, match="MultimodalInfoNCE: sampler must be a TripletSampler"):
        MultimodalInfoNCE(sampler="swap-one")


def test_k3_lambda_and_volume_closed_forms_match_float64():
    g = torch.Generator().manual_seed(3)
    x = F.normalize(torch.randn(200, 3, 6, generator=g, dtype=torch.float64), dim=-1)
    G = x @ x.transpose(-1, -2)
    a, b, c = G[:, 0, 1], G[:, 0, 2], G[:, 1, 2]
    torch.testing.assert_close(gram_determinant(a, b, c), torch.linalg.det(G))
    torch.testing.assert_close(gram_volume(G, eps=0.0), torch.linalg.det(G).sqrt())
    torch.testing.assert_close(lambda1_from_gram(G), torch.linalg.eigvalsh(G)[:, -1])
    G2 = G[:, :2, :2]
    torch.testing.assert_close(lambda1_from_gram(G2), torch.linalg.eigvalsh(G2)[:, -1])
    torch.testing.assert_close(gram_volume(G2, eps=0.0), torch.linalg.det(G2).sqrt())


def test_volume_sign_convention_prefers_aligned_tuples():
    # Aligned positives (volume 0) must give a lower loss than orthogonal ones.
    x = torch.eye(4, dtype=torch.float64)
    aligned = MultimodalInfoNCE(0.1, score="volume")(x, x, x, generator=torch.Generator())
    shuffled = MultimodalInfoNCE(0.1, score="volume")(
        x, x.roll(1, 0), x.roll(2, 0), generator=torch.Generator()
    )
    assert aligned < shuffled


def test_gram_scores_volume_is_zero_for_identical_embeddings():
    x = F.normalize(torch.randn(4, 5, dtype=torch.float64), dim=1)
    s = x @ x.T
    sims = {(0, 1): s, (0, 2): s, (1, 2): s}
    t = torch.arange(4)[:, None].expand(4, 3)
    torch.testing.assert_close(
        gram_scores(sims, t, "volume"), torch.full((4,), 1e-3, dtype=torch.float64)
    )
    torch.testing.assert_close(
        gram_scores(sims, t, "lambda"), torch.full((4,), 3.0, dtype=torch.float64)
    )


def test_scale_invariance():
    xs = [x.detach() for x in _embeddings(5, 4, 7)]
    fn = MultimodalInfoNCE(score="volume")
    base = fn(*xs, generator=torch.Generator().manual_seed(0))
    for scale in (1e-30, 1e-13, 1e30):
        scaled = [xs[0] * scale, *xs[1:]]
        got = fn(*scaled, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(got, base, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"score": "area"}, ValueError, "score"),
        ({"sampler": "uniform"}, TypeError, "sampler must be a TripletSampler, got str"),
        ({"sampler": 3}, TypeError, "sampler must be a TripletSampler"),
        ({"num_negatives": 0}, ValueError, "num_negatives"),
        (
            {"num_negatives": 10**12},
            ValueError,
            r"num_negatives must be an int >= 1 and <= 1048576",
        ),
        ({"backend": "cuda"}, ValueError, "backend must be one of"),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        MultimodalInfoNCE(**kwargs)


def test_bad_forward_inputs():
    fn = MultimodalInfoNCE()
    with pytest.raises(ValueError, match="at least 2"):
        fn(torch.randn(4, 3))
    with pytest.raises(ValueError, match="embeddings\\[1\\]"):
        fn(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match=r"embeddings\[2\] has a zero row"):
        fn(torch.randn(4, 3), torch.randn(4, 3), torch.zeros(4, 3))
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator or None, got int"):
        fn(torch.randn(4, 3), torch.randn(4, 3), generator=5)
    with pytest.raises(ValueError, match="num_modalities"):
        make_sampler("uniform").tuples(4, 1, 2)
