"""Negative-triplet samplers: candidate sets, uniformity, determinism."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given

from unihpr.losses import (
    ShuffleTripletSampler,
    SwapOneTripletSampler,
    TripletSampler,
    UniformTripletSampler,
)

SAMPLERS = [
    UniformTripletSampler(),
    SwapOneTripletSampler(),
    ShuffleTripletSampler(),
    ShuffleTripletSampler(1),
]


def shares_embedding(t, a):
    return (t.image == a) | (t.pose2d == a) | (t.pose3d == a)


def is_positive(t, a):
    return (t.image == a) & (t.pose2d == a) & (t.pose3d == a)


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
@given(B=st.integers(2, 40), N=st.integers(1, 90), seed=st.integers(0, 1000))
def test_indices_valid(sampler: TripletSampler, B, N, seed):
    t = sampler(B, N, generator=torch.Generator().manual_seed(seed))
    a = torch.arange(B)[:, None]
    for idx in t:
        assert idx.shape == (B, N) and idx.dtype == torch.int64
        assert int(idx.min()) >= 0 and int(idx.max()) < B
    assert not is_positive(t, a).any()
    assert shares_embedding(t, a).all()


def test_default_num_negatives_is_b_minus_1():
    t = UniformTripletSampler()(7)
    assert t.image.shape == (7, 6)


def test_uniform_covers_the_paper_candidate_set_uniformly():
    B, draws = 5, 300_000
    t = UniformTripletSampler()(
        B, draws, anchors=torch.tensor([2]), generator=torch.Generator().manual_seed(0)
    )
    code = (t.image[0] * B + t.pose2d[0]) * B + t.pose3d[0]
    counts = torch.bincount(code, minlength=B**3).double()
    a = 2
    grid = torch.arange(B)
    i, j, k = torch.meshgrid(grid, grid, grid, indexing="ij")
    candidate = ((i == a) | (j == a) | (k == a)) & ~((i == a) & (j == a) & (k == a))
    assert int(candidate.sum()) == 3 * B * B - 3 * B
    assert (counts.reshape(B, B, B)[~candidate] == 0).all()
    expected = draws / (3 * B * B - 3 * B)
    observed = counts.reshape(B, B, B)[candidate]
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    # 59 degrees of freedom: the 99.99% quantile is about 105.
    assert chi2 < 105, chi2


def test_swap_one_differs_in_exactly_one_modality():
    B = 9
    t = SwapOneTripletSampler()(B, 500, generator=torch.Generator().manual_seed(1))
    a = torch.arange(B)[:, None]
    differing = (t.image != a).int() + (t.pose2d != a).int() + (t.pose3d != a).int()
    assert (differing == 1).all()
    # all three modalities get swapped
    for idx in t:
        assert (idx != a).any()


def test_shuffle_b_minus_1_uses_one_permutation_per_modality():
    B = 12
    t = ShuffleTripletSampler(anchor_modality=0)(B, generator=torch.Generator().manual_seed(2))
    assert (t.image == torch.arange(B)[:, None]).all()
    # Column sets: each anchor sees every shuffled pair except its own column,
    # so across anchors each 2D index appears B - 1 times per permutation slot.
    counts = torch.bincount(t.pose2d.reshape(-1), minlength=B)
    assert int(counts.sum()) == B * (B - 1)
    assert counts.max() <= B


def test_shuffle_random_anchor_modality_uses_all_three():
    B = 16
    t = ShuffleTripletSampler()(B, generator=torch.Generator().manual_seed(3))
    a = torch.arange(B)[:, None]
    kept = torch.stack([(idx == a).all(dim=1) for idx in t])  # (3, B)
    assert kept.any(dim=0).all()  # each anchor keeps at least one modality
    assert kept.any(dim=1).sum() >= 2


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
def test_deterministic_given_generator(sampler):
    t1 = sampler(10, 20, generator=torch.Generator().manual_seed(5))
    t2 = sampler(10, 20, generator=torch.Generator().manual_seed(5))
    t3 = sampler(10, 20, generator=torch.Generator().manual_seed(6))
    for x, y in zip(t1, t2):
        assert torch.equal(x, y)
    assert any(not torch.equal(x, y) for x, y in zip(t1, t3))


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
def test_int32_and_subset_of_anchors(sampler):
    t = sampler(
        10,
        4,
        anchors=torch.tensor([3, 7]),
        dtype=torch.int32,
        generator=torch.Generator().manual_seed(0),
    )
    a = torch.tensor([3, 7])[:, None]
    for idx in t:
        assert idx.dtype == torch.int32 and idx.shape == (2, 4)
    assert not is_positive(t, a).any()


def test_bad_arguments():
    s = UniformTripletSampler()
    with pytest.raises(ValueError, match="batch_size must be an int >= 2, got 1"):
        s(1)
    with pytest.raises(ValueError, match="num_negatives must be an int >= 1 and <= 1048576, got 0"):
        s(4, 0)
    with pytest.raises(TypeError, match=r"batch_size must be an int, got float 4\.0"):
        s(4.0)
    with pytest.raises(ValueError, match=r"anchors must lie in \[0, 4\)"):
        s(4, anchors=torch.tensor([4]))
    with pytest.raises(ValueError, match=r"anchors must have shape \(A,\), got \(1, 1\)"):
        s(4, anchors=torch.tensor([[0]]))
    with pytest.raises(TypeError, match=r"anchors must be an int32 or int64 tensor"):
        s(4, anchors=torch.tensor([0.0]))
    with pytest.raises(ValueError, match=r"anchors must select at least one row"):
        s(4, anchors=torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match=r"anchors must lie in \[0, 4\), got values \[-1\]"):
        s(4, anchors=torch.tensor([-1, 2]))
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator or None, got int"):
        s(4, generator=5)
    with pytest.raises(ValueError, match="dtype must be"):
        s(4, dtype=torch.float32)
    with pytest.raises(ValueError, match="anchor_modality must be an int >= 0"):
        ShuffleTripletSampler(anchor_modality=-1)
    with pytest.raises(TypeError, match="anchor_modality must be an int"):
        UniformTripletSampler(anchor_modality=1.0)
    with pytest.raises(ValueError, match="anchor_modality=3 needs more than 3 modalities"):
        ShuffleTripletSampler(anchor_modality=3)(5)


# ------------------------------------------------------------- K modalities


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
@given(B=st.integers(2, 9), K=st.integers(2, 5), N=st.integers(1, 40), seed=st.integers(0, 999))
def test_tuples_share_an_embedding_and_exclude_the_positive(sampler, B, K, N, seed):
    if isinstance(sampler, ShuffleTripletSampler) and sampler.anchor_modality is not None:
        K = max(K, sampler.anchor_modality + 1)
    out = sampler.tuples(B, K, N, generator=torch.Generator().manual_seed(seed))
    assert len(out) == K
    t = torch.stack(out, dim=-1)
    a = torch.arange(B)[:, None, None]
    assert t.shape == (B, N, K) and t.dtype == torch.int64
    assert int(t.min()) >= 0 and int(t.max()) < B
    assert (t == a).any(-1).all()
    assert not (t == a).all(-1).any()


def test_triplets_are_the_three_modality_tuples():
    for sampler in SAMPLERS:
        t = sampler(7, 9, generator=torch.Generator().manual_seed(4))
        u = sampler.tuples(7, 3, 9, generator=torch.Generator().manual_seed(4))
        assert all(torch.equal(x, y) for x, y in zip(t, u))


def test_uniform_tuples_are_uniform_over_the_candidate_set():
    # B = 3, K = 4: 81 − 16 − 1 = 64 candidates per anchor.
    B, K, n = 3, 4, 64_000
    t = torch.stack(
        UniformTripletSampler().tuples(
            B, K, n, anchors=torch.tensor([1]), generator=torch.Generator().manual_seed(0)
        ),
        dim=-1,
    )[0]
    codes = ((t * torch.tensor([27, 9, 3, 1])).sum(-1)).bincount(minlength=81).double()
    digits = torch.stack(torch.meshgrid(*[torch.arange(3)] * 4, indexing="ij"), -1).reshape(81, 4)
    member = (digits == 1).any(-1) & ~(digits == 1).all(-1)
    assert int(member.sum()) == 64
    assert codes[~member].sum() == 0
    expected = n / 64
    chi2 = float(((codes[member] - expected) ** 2 / expected).sum())
    assert chi2 < 130, chi2  # 63 degrees of freedom: the 99.99% quantile is about 120


def test_uniform_decode_covers_every_candidate_once():
    """The draws 0 .. B^K − (B−1)^K − 2 decode to all candidates, each exactly once."""
    for B, K in ((2, 2), (4, 3), (3, 5)):
        total = B**K - (B - 1) ** K - 1
        for a in range(B):
            u = torch.arange(total)[None, :]
            t = torch.stack(UniformTripletSampler.decode(u, torch.tensor([a]), B, K), -1)[0]
            codes = (t * B ** torch.arange(K - 1, -1, -1)).sum(-1)
            assert codes.unique().numel() == total
            assert (t == a).any(-1).all() and not (t == a).all(-1).any()


def test_swap_one_tuples_differ_in_exactly_one_modality():
    t = torch.stack(
        SwapOneTripletSampler().tuples(7, 4, 50, generator=torch.Generator().manual_seed(0)), -1
    )
    assert ((t == torch.arange(7)[:, None, None]).sum(-1) == 3).all()


def test_make_sampler_table():
    from unihpr.losses import make_sampler
    from unihpr.losses.samplers import SAMPLERS as TABLE

    for name, cls in TABLE.items():
        assert type(make_sampler(name)) is cls
    with pytest.raises(ValueError, match="make_sampler: name must be one of"):
        make_sampler("hardest")
    with pytest.raises(TypeError, match="make_sampler: name must be one of"):
        make_sampler(UniformTripletSampler)
