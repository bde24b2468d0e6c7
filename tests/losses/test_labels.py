"""labels=: several positives per anchor (SupCon L_out) in the pair and triplet losses."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given
from reference_losses import (
    pair_loss_reference,
    supcon_exact_triplet_reference,
    supcon_pair_reference,
    supcon_triplet_reference,
    with_positives,
)

from unihpr.losses import (
    ContrastiveLoss,
    LearnableTemperature,
    PairInfoNCE,
    ShuffleTripletSampler,
    SwapOneTripletSampler,
    TripletInfoNCE,
    UniformTripletSampler,
    pair_info_nce,
)
from unihpr.losses.samplers import same_label_tuples

SAMPLERS = [UniformTripletSampler(), SwapOneTripletSampler(), ShuffleTripletSampler()]


def embeddings(B, D, seed, n=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, D, generator=g, dtype=torch.float64).requires_grad_() for _ in range(n)]


def draw_labels(B, groups, seed):
    """Labels with duplicates: ``groups`` distinct values over B samples."""
    g = torch.Generator().manual_seed(seed + 1)
    return torch.randint(groups, (B,), generator=g)


# ----------------------------------------------------------------- pair loss


@given(
    B=st.integers(2, 8),
    D=st.integers(1, 6),
    groups=st.integers(1, 8),
    seed=st.integers(0, 9999),
    tau=st.floats(0.05, 2.0),
)
def test_pair_labels_match_supcon_reference(B, D, groups, seed, tau):
    x, y = embeddings(B, D, seed, n=2)
    labels = draw_labels(B, groups, seed)
    got = PairInfoNCE(tau)(x, y, labels=labels)
    ref = supcon_pair_reference(x, y, labels, tau)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    for g, r in zip(torch.autograd.grad(got, (x, y)), torch.autograd.grad(ref, (x, y))):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10)


@given(B=st.integers(2, 8), seed=st.integers(0, 9999))
def test_pair_distinct_labels_equal_no_labels(B, seed):
    x, y = embeddings(B, 4, seed, n=2)
    perm = torch.randperm(B, generator=torch.Generator().manual_seed(seed)) * 7 - 3
    loss = PairInfoNCE(0.1)
    torch.testing.assert_close(loss(x, y, labels=perm), loss(x, y), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loss(x, y), pair_loss_reference(x, y, 0.1))


def test_pair_labels_make_views_of_one_thing_interchangeable():
    # Swapping y rows inside a label group leaves the labelled loss unchanged
    # (they are all positives of the same anchors); the plain loss changes.
    x, y = embeddings(8, 5, 3, n=2)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3])
    swap = torch.tensor([1, 0, 4, 2, 3, 5, 7, 6])
    loss = PairInfoNCE(0.1)
    torch.testing.assert_close(loss(x, y[swap], labels=labels), loss(x, y, labels=labels))
    assert not torch.allclose(loss(x, y[swap]), loss(x, y))


def test_pair_functional_labels_and_gradcheck():
    x, y = embeddings(6, 3, 2, n=2)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    tau = LearnableTemperature(init=0.3, min=0.01, max=10).double()
    loss = PairInfoNCE(tau)
    assert torch.autograd.gradcheck(lambda a, b: loss(a, b, labels=labels), (x, y))
    s = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(y, dim=1).T
    torch.testing.assert_close(pair_info_nce(s, 0.3, labels=labels), PairInfoNCE(0.3)(x, y, labels))


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (torch.tensor([0, 1, 2]), r"labels must have shape \(4,\)"),
        (torch.zeros(4), "labels must be an integer tensor"),
        (torch.zeros(4, 1, dtype=torch.long), r"shape \(4,\)"),
        ([0, 1, 2, 3], "labels must be a torch.Tensor"),
    ],
)
def test_bad_labels_are_named(labels, match):
    x, y = torch.randn(4, 3), torch.randn(4, 3)
    err = TypeError if isinstance(labels, list) or labels.is_floating_point() else ValueError
    with pytest.raises(err, match=match):
        PairInfoNCE()(x, y, labels=labels)


# -------------------------------------------------------------- triplet loss


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
@given(
    B=st.integers(2, 8),
    groups=st.integers(1, 6),
    N=st.one_of(st.none(), st.integers(1, 20)),
    seed=st.integers(0, 9999),
)
def test_sampled_triplet_labels_match_reference(sampler, B, groups, N, seed):
    x = embeddings(B, 4, seed)
    labels = draw_labels(B, groups, seed)
    loss_fn = TripletInfoNCE(0.2, sampler=sampler, num_negatives=N)
    got = loss_fn(*x, generator=torch.Generator().manual_seed(seed), labels=labels)
    negatives = sampler(B, N, generator=torch.Generator().manual_seed(seed), labels=labels)
    ref = supcon_triplet_reference(*x, with_positives(torch.arange(B), negatives), labels, 0.2)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    for g, r in zip(torch.autograd.grad(got, x), torch.autograd.grad(ref, x)):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
def test_samplers_never_draw_a_same_label_negative(sampler):
    # Four views per frame: 3 of 63 other samples share the anchor's label.
    B, labels = 64, torch.arange(64) // 4
    for seed in range(5):
        out = sampler.tuples(
            B, 3, 200, generator=torch.Generator().manual_seed(seed), labels=labels
        )
        assert not same_label_tuples(out, torch.arange(B), labels).any()
        # ... while without labels such candidates are drawn.
    plain = sampler.tuples(B, 3, 200, generator=torch.Generator().manual_seed(0))
    assert same_label_tuples(plain, torch.arange(B), labels).any()


def test_sampled_labels_all_equal_counts_leftovers_as_positives():
    # Every candidate shares the label: no negative exists, all are positives.
    x = embeddings(5, 3, 0)
    loss = TripletInfoNCE(0.2)(
        *x, generator=torch.Generator().manual_seed(0), labels=torch.zeros(5, dtype=torch.long)
    )
    assert torch.isfinite(loss) and float(loss.detach()) >= 0


@pytest.mark.parametrize(("B", "groups"), [(2, 1), (4, 2), (5, 3), (6, 6)])
def test_exact_triplet_labels_match_brute_force(B, groups):
    x = embeddings(B, 4, B + groups)
    labels = draw_labels(B, groups, B)
    loss = TripletInfoNCE(0.2, negatives="all", chunk_size=3)(*x, labels=labels)
    ref = supcon_exact_triplet_reference(*x, labels, 0.2)
    torch.testing.assert_close(loss, ref, rtol=1e-11, atol=1e-12)
    for a, b in zip(torch.autograd.grad(loss, x), torch.autograd.grad(ref, x)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_exact_distinct_labels_equal_no_labels_and_chunking_agrees():
    x = embeddings(7, 5, 1)
    fn = TripletInfoNCE(0.2, negatives="all", chunk_size=2)
    torch.testing.assert_close(fn(*x, labels=torch.arange(7) + 10), fn(*x), rtol=1e-12, atol=1e-12)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3])
    whole = TripletInfoNCE(0.2, negatives="all", chunk_size=1000)(*x, labels=labels)
    torch.testing.assert_close(fn(*x, labels=labels), whole, rtol=1e-12, atol=1e-12)


def test_exact_and_sampled_labels_gradcheck_with_temperature():
    x = embeddings(5, 3, 4)
    labels = torch.tensor([0, 1, 0, 1, 2])

    def gen():
        return torch.Generator().manual_seed(3)

    for mode in ("sampled", "all"):
        tau = LearnableTemperature(init=0.2, min=0.01, max=10).double()
        fn = TripletInfoNCE(tau, negatives=mode, chunk_size=4)

        def call(*a, fn=fn):
            return fn(*a, generator=gen(), labels=labels)

        assert torch.autograd.gradcheck(call, tuple(x))
        fn(*x, generator=gen(), labels=labels).backward()
        g, h, base = float(tau.log_tau.grad), 1e-6, float(tau.log_tau)
        with torch.no_grad():
            tau.log_tau.fill_(base + h)
            up = float(fn(*x, generator=gen(), labels=labels))
            tau.log_tau.fill_(base - h)
            down = float(fn(*x, generator=gen(), labels=labels))
        assert g == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-9), mode


def test_exact_labels_refuse_triton():
    x = [torch.randn(4, 3) for _ in range(3)]
    fn = TripletInfoNCE(0.2, negatives="all", backend="torch")
    fn.backend = "triton"
    with pytest.raises(ValueError, match="labels"):
        fn(*x, labels=torch.tensor([0, 0, 1, 2]))


# ---------------------------------------------------------- ContrastiveLoss


@pytest.mark.parametrize("negatives", ["sampled", "all"])
def test_contrastive_labels_are_the_sum_of_its_terms(negatives):
    x = embeddings(6, 4, 9)
    labels = torch.tensor([0, 1, 0, 2, 2, 1])
    fn = ContrastiveLoss(PairInfoNCE(0.1), TripletInfoNCE(0.2, negatives=negatives), 0.5)
    got = fn(*x, generator=torch.Generator().manual_seed(1), labels=labels)
    pair = sum(PairInfoNCE(0.1)(x[m], x[n], labels=labels) for m, n in ((0, 1), (0, 2), (1, 2)))
    trip = TripletInfoNCE(0.2, negatives=negatives)(
        *x, generator=torch.Generator().manual_seed(1), labels=labels
    )
    torch.testing.assert_close(got, pair + 0.5 * trip, rtol=1e-12, atol=1e-12)
    _, info = fn(
        *x, generator=torch.Generator().manual_seed(1), labels=labels, return_diagnostics=True
    )
    assert 0 <= info["acc/image-pose2d"] <= 1


def test_contrastive_accuracy_counts_same_label_hits():
    base = torch.randn(3, 8, dtype=torch.float64)
    x = torch.cat([base, base])  # rows i and i + 3 are identical
    labels = torch.arange(6) % 3
    fn = ContrastiveLoss(use_triplet=False)
    _, with_labels = fn(x, x, labels=labels, return_diagnostics=True)
    assert with_labels["acc/image-pose2d"] == 1.0
