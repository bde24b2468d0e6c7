"""K-modality Gram-score InfoNCE vs float64 eigvalsh / det references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from unihpr.losses.multimodal import MultimodalInfoNCE, gram_scores, sample_tuples
from unihpr.ops.gram import gram_determinant, gram_largest_eigenvalue, gram_volume


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


@pytest.mark.parametrize("K", [2, 3, 4, 5])
@pytest.mark.parametrize("score", ["lambda", "volume"])
@pytest.mark.parametrize("sampler", ["uniform", "swap-one"])
def test_loss_matches_float64_reference(K, score, sampler):
    B, N = 6, 9
    g = torch.Generator().manual_seed(K)
    xs = [torch.randn(B, 7, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(K)]
    loss = MultimodalInfoNCE(0.3, score=score, sampler=sampler, num_negatives=N)(
        *xs, generator=torch.Generator().manual_seed(1)
    )
    neg = sample_tuples(B, K, N, scheme=sampler, generator=torch.Generator().manual_seed(1))
    pos = torch.arange(B)[:, None, None].expand(B, 1, K)
    ref = reference_loss(xs, torch.cat([pos, neg], 1), 0.3, score)
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-10)
    for a, b in zip(torch.autograd.grad(loss, xs), torch.autograd.grad(ref, xs)):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


@given(B=st.integers(2, 6), K=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_uniform_tuples_share_an_embedding_and_exclude_the_positive(B, K, seed):
    t = sample_tuples(B, K, 40, scheme="uniform", generator=torch.Generator().manual_seed(seed))
    a = torch.arange(B)[:, None, None]
    assert t.shape == (B, 40, K) and t.min() >= 0 and t.max() < B
    assert (t == a).any(-1).all()
    assert not (t == a).all(-1).any()


def test_swap_one_differs_in_exactly_one_modality():
    t = sample_tuples(7, 4, 50, scheme="swap-one", generator=torch.Generator().manual_seed(0))
    matches = (t == torch.arange(7)[:, None, None]).sum(-1)
    assert (matches == 3).all()


def test_uniform_sampler_is_uniform_over_the_candidate_set():
    # B = 3, K = 3: 27 − 8 − 1 = 18 candidates per anchor; chi-square-like check.
    B, K, n = 3, 3, 36_000
    t = sample_tuples(
        B, K, n, anchors=torch.tensor([1]), generator=torch.Generator().manual_seed(0)
    )
    codes = (t[0, :, 0] * 9 + t[0, :, 1] * 3 + t[0, :, 2]).bincount(minlength=27).double()
    members = [c for c in range(27) if 1 in (c // 9, (c // 3) % 3, c % 3) and c != 13]
    assert len(members) == 18
    assert codes[[c for c in range(27) if c not in members]].sum() == 0
    freq = codes[members] / n
    assert (freq - 1 / 18).abs().max() < 0.006  # ~5 standard deviations


def test_k3_lambda_and_volume_closed_forms_match_float64():
    g = torch.Generator().manual_seed(3)
    x = F.normalize(torch.randn(200, 3, 6, generator=g, dtype=torch.float64), dim=-1)
    G = x @ x.transpose(-1, -2)
    a, b, c = G[:, 0, 1], G[:, 0, 2], G[:, 1, 2]
    torch.testing.assert_close(gram_determinant(a, b, c), torch.linalg.det(G))
    torch.testing.assert_close(gram_volume(G, eps=0.0), torch.linalg.det(G).sqrt())
    torch.testing.assert_close(gram_largest_eigenvalue(G), torch.linalg.eigvalsh(G)[:, -1])
    G2 = G[:, :2, :2]
    torch.testing.assert_close(gram_largest_eigenvalue(G2), torch.linalg.eigvalsh(G2)[:, -1])
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


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"score": "area"}, "score"),
        ({"sampler": "hard"}, "sampler"),
        ({"num_negatives": 0}, "num_negatives"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultimodalInfoNCE(**kwargs)


def test_bad_forward_inputs():
    fn = MultimodalInfoNCE()
    with pytest.raises(ValueError, match="at least 2"):
        fn(torch.randn(4, 3))
    with pytest.raises(ValueError, match="embeddings\\[1\\]"):
        fn(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError, match="scheme"):
        sample_tuples(4, 3, 2, scheme="nope")
    with pytest.raises(ValueError, match="num_modalities"):
        sample_tuples(4, 1, 2)
