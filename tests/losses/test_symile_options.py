"""Symile-style options: per-plane exact negatives and the average over anchor modalities."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given
from reference_losses import plane_triplet_reference, triplet_loss_reference, with_positives

from unihpr.losses import (
    ContrastiveLoss,
    LearnableTemperature,
    PairInfoNCE,
    ShuffleTripletSampler,
    SwapOneTripletSampler,
    TripletInfoNCE,
    UniformTripletSampler,
)
from unihpr.ops import plane_triplet_info_nce


def embeddings(B, D, seed, n=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, D, generator=g, dtype=torch.float64).requires_grad_() for _ in range(n)]


@pytest.mark.parametrize(("B", "groups"), [(2, None), (4, None), (5, None), (5, 2), (6, 3)])
def test_planes_match_brute_force(B, groups):
    x = embeddings(B, 4, B)
    labels = None if groups is None else torch.arange(B) % groups
    loss = TripletInfoNCE(0.2, negatives="planes", chunk_size=2)(*x, labels=labels)
    ref = plane_triplet_reference(*x, 0.2, labels)
    torch.testing.assert_close(loss, ref, rtol=1e-11, atol=1e-12)
    for a, b in zip(torch.autograd.grad(loss, x), torch.autograd.grad(ref, x)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@given(
    B=st.integers(2, 4),
    D=st.integers(2, 5),
    seed=st.integers(0, 9999),
    tau=st.floats(0.05, 1.0),
    groups=st.one_of(st.none(), st.integers(1, 3)),
    chunk=st.integers(1, 5),
)
def test_planes_property_matches_brute_force(B, D, seed, tau, groups, chunk):
    x = embeddings(B, D, seed)
    labels = None
    if groups is not None:
        labels = torch.randint(groups, (B,), generator=torch.Generator().manual_seed(seed))
    got = TripletInfoNCE(tau, negatives="planes", chunk_size=chunk)(*x, labels=labels)
    torch.testing.assert_close(
        got, plane_triplet_reference(*x, tau, labels), rtol=1e-10, atol=1e-10
    )


def test_planes_differ_from_the_single_softmax_and_ignore_chunking():
    x = embeddings(6, 5, 1)
    planes = TripletInfoNCE(0.2, negatives="planes", chunk_size=1)(*x)
    whole = TripletInfoNCE(0.2, negatives="planes", chunk_size=1000)(*x)
    torch.testing.assert_close(planes, whole, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(planes, TripletInfoNCE(0.2, negatives="all")(*x))


def test_planes_gradcheck_with_temperature_and_anchor_rows():
    x = embeddings(4, 3, 2)
    tau = LearnableTemperature(init=0.3, min=0.01, max=10).double()
    fn = TripletInfoNCE(tau, negatives="planes", chunk_size=3)
    assert torch.autograd.gradcheck(lambda *a: fn(*a), tuple(x))
    fn(*x).backward()
    assert tau.log_tau.grad is not None
    s = [torch.nn.functional.normalize(t, dim=1) for t in x]
    sims = (s[0] @ s[1].T, s[0] @ s[2].T, s[1] @ s[2].T)
    halves = [
        plane_triplet_info_nce(*sims, 0.3, anchors=torch.tensor(r))[0] for r in ([0, 1], [2, 3])
    ]
    torch.testing.assert_close(0.5 * (halves[0] + halves[1]), plane_triplet_info_nce(*sims, 0.3)[0])


@pytest.mark.parametrize("K", [3, 4])
@pytest.mark.parametrize("m", [0, 1, 2])
def test_uniform_anchor_modality_covers_its_plane_uniformly(K, m):
    B = 3
    sampler = UniformTripletSampler(anchor_modality=m)
    out = sampler.tuples(B, K, 4000, generator=torch.Generator().manual_seed(m))
    a = torch.arange(B)[:, None]
    assert (out[m] == a).all()
    positive = torch.stack([(t == a) for t in out]).all(dim=0)
    assert not positive.any()
    # all B^(K-1) - 1 candidates of anchor 0 drawn, each about equally often
    codes = sum(t[0] * B**n for n, t in enumerate(out))
    counts = torch.bincount(codes, minlength=B**K)
    drawn = counts[counts > 0]
    assert drawn.numel() == B ** (K - 1) - 1
    expected = 4000 / drawn.numel()
    assert float((drawn - expected).abs().max()) < 6 * expected**0.5


@pytest.mark.parametrize("sampler", [UniformTripletSampler(), ShuffleTripletSampler()], ids=repr)
@given(B=st.integers(2, 7), N=st.one_of(st.none(), st.integers(1, 12)), seed=st.integers(0, 999))
def test_each_anchor_modality_is_the_mean_of_three_cross_entropies(sampler, B, N, seed):
    x = embeddings(B, 4, seed)
    fn = TripletInfoNCE(0.2, sampler=sampler, num_negatives=N, anchor_modalities="each")
    got = fn(*x, generator=torch.Generator().manual_seed(seed))
    gen = torch.Generator().manual_seed(seed)
    refs = []
    for m in range(3):
        negatives = sampler.for_anchor_modality(m)(B, N, generator=gen)
        assert (negatives[m] == torch.arange(B)[:, None]).all()
        refs.append(triplet_loss_reference(*x, with_positives(torch.arange(B), negatives), 0.2))
    ref = torch.stack(refs).mean()
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    for g, r in zip(torch.autograd.grad(got, x), torch.autograd.grad(ref, x)):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10)


def test_option_errors():
    with pytest.raises(ValueError, match="anchor_modalities must be one of"):
        TripletInfoNCE(anchor_modalities="all")
    with pytest.raises(ValueError, match="is for negatives='sampled'"):
        TripletInfoNCE(negatives="planes", anchor_modalities="each")
    with pytest.raises(ValueError, match="SwapOneTripletSampler has no per-anchor-modality form"):
        TripletInfoNCE(sampler=SwapOneTripletSampler(), anchor_modalities="each")
    with pytest.raises(ValueError, match="backend='triton' is not available"):
        TripletInfoNCE(negatives="planes", backend="triton")
    with pytest.raises(ValueError, match="anchor_modality=3 needs more than 3"):
        UniformTripletSampler(anchor_modality=3)(4, 2)


def test_contrastive_passes_the_options_on():
    x = embeddings(5, 4, 3)
    fn = ContrastiveLoss(PairInfoNCE(0.1), TripletInfoNCE(0.2, negatives="planes"), 0.5)
    _, info = fn(*x, return_diagnostics=True)
    assert info["loss/triplet"] == pytest.approx(
        float(TripletInfoNCE(0.2, negatives="planes")(*x).detach()), rel=1e-12
    )
    each = ContrastiveLoss(triplet=TripletInfoNCE(anchor_modalities="each"), alpha=0.5)
    assert each.triplet.anchor_modalities == "each"
