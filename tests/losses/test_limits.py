"""Sizes that multiply memory are capped before anything is allocated; silent NaNs are errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unihpr.losses import (
    ContrastiveLoss,
    EmbeddingQueue,
    GRAMLoss,
    LearnableTemperature,
    MultimodalInfoNCE,
    PairInfoNCE,
    SigLIPLoss,
    TripletInfoNCE,
    UniformTripletSampler,
    pair_info_nce,
    siglip_loss,
)
from unihpr.losses.samplers import MAX_CANDIDATES, MAX_NEGATIVES
from unihpr.ops.exact_triplet import MAX_BLOCK_ELEMENTS, block_rows


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: TripletInfoNCE(num_negatives=10**12), r"num_negatives must be an int >= 1 and <= 1048576, got 1000000000000"),
        (lambda: TripletInfoNCE(negatives="all", chunk_size=10**12), r"chunk_size must be an int >= 1 and <= 268435456"),
        (lambda: MultimodalInfoNCE(num_negatives=10**12), "num_negatives must be an int >= 1 and <= 1048576"),
        (lambda: EmbeddingQueue(size=10**12), r"EmbeddingQueue: size must be an int >= 1 and <= 1048576"),
    ],
)  # fmt: skip
def test_size_arguments_are_capped_when_the_loss_is_built(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_the_caps_are_what_the_docs_say():
    assert (MAX_NEGATIVES, MAX_CANDIDATES, MAX_BLOCK_ELEMENTS) == (2**20, 2**28, 2**28)
    assert TripletInfoNCE(num_negatives=MAX_NEGATIVES).num_negatives == MAX_NEGATIVES


class _NeverDraws(UniformTripletSampler):
    def sample(self, *args):
        raise AssertionError("the cap must be checked before drawing")


def test_anchors_times_negatives_is_capped_before_drawing():
    # 2^9 anchors x 2^20 negatives = 2^29 candidates: 2 GiB per int32 index tensor.
    with pytest.raises(ValueError, match=r"512 anchors x 1048576 negatives .* MAX_CANDIDATES"):
        _NeverDraws()(512, MAX_NEGATIVES)
    x = [torch.randn(512, 4) for _ in range(3)]
    loss_fn = TripletInfoNCE(sampler=_NeverDraws(), num_negatives=MAX_NEGATIVES)
    with pytest.raises(ValueError, match="MAX_CANDIDATES"):
        loss_fn(*x, generator=torch.Generator().manual_seed(0))


def test_exact_blocks_are_capped():
    # Rows of 2^14 triplets: 2^15 rows per block would be 2^29 triplets.
    with pytest.raises(ValueError, match=r"chunk_size=32768 makes blocks of 536870912 triplets"):
        block_rows("o", 2**15, row_length=2**14, rows=2**20, default=2**16)
    # only the blocks that exist count: few rows in all make small blocks
    assert block_rows("o", 2**15, row_length=2**14, rows=4, default=2**16) == 2**15
    assert block_rows("o", None, row_length=2**10, rows=2**20, default=2**16) == 2**6


def _diverged(value: float) -> LearnableTemperature:
    tau = LearnableTemperature(init=0.1, min=0.01, max=10.0)
    with torch.no_grad():
        tau.log_tau.fill_(value)  # e.g. after an optimiser step on a NaN gradient
    return tau


def _losses(tau):
    return [
        (PairInfoNCE(tau), 2),
        (TripletInfoNCE(tau), 3),
        (TripletInfoNCE(tau, negatives="all"), 3),
        (TripletInfoNCE(tau, negatives="planes"), 3),
        (ContrastiveLoss(PairInfoNCE(tau)), 3),
        (ContrastiveLoss(triplet=TripletInfoNCE(tau)), 3),
        (SigLIPLoss(tau), 2),
        (GRAMLoss(tau), 3),
        (MultimodalInfoNCE(tau), 3),
        (MultimodalInfoNCE(tau, score="volume"), 4),
    ]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_diverged_temperature_is_an_error_not_a_nan_loss(value):
    for loss_fn, k in _losses(_diverged(value)):
        xs = [torch.randn(6, 5) for _ in range(k)]
        with pytest.raises(ValueError, match=r"temperature\.log_tau has 1 NaN or infinite"):
            loss_fn(*xs)
        # validate=False reads nothing on the host, so it cannot see it
        loss_fn.validate = False
        if isinstance(loss_fn, ContrastiveLoss):
            assert not loss_fn.pair.validate and not loss_fn.triplet.validate
        loss_fn(*xs)


def test_a_finite_temperature_passes_the_check():
    for loss_fn, k in _losses(_diverged(-1.0)):
        assert torch.isfinite(loss_fn(*[torch.randn(6, 5) for _ in range(k)]))


def test_empty_anchors_are_an_error_not_nan():
    s = torch.eye(4)
    empty = torch.zeros(0, dtype=torch.long)
    with pytest.raises(ValueError, match="pair_info_nce: anchors must select at least one row"):
        pair_info_nce(s, 0.1, anchors=empty)
    with pytest.raises(ValueError, match="siglip_loss: anchors must select at least one row"):
        siglip_loss(s, 0.1, -1.0, anchors=empty)
    with pytest.raises(ValueError, match="TripletInfoNCE: anchors must select at least one row"):
        TripletInfoNCE().from_similarities(s, s, s, anchors=empty)
    assert torch.isfinite(pair_info_nce(s, 0.1, anchors=torch.tensor([2])))


def test_contrastive_checks_what_it_composes():
    with pytest.raises(TypeError, match="ContrastiveLoss: pair must be a PairInfoNCE or None"):
        ContrastiveLoss(pair=TripletInfoNCE())
    with pytest.raises(TypeError, match="ContrastiveLoss: triplet must be a TripletInfoNCE"):
        ContrastiveLoss(triplet=nn.Identity())
    with pytest.raises(ValueError, match="the triplet loss has a queue of its own"):
        ContrastiveLoss(triplet=TripletInfoNCE(queue=EmbeddingQueue(8)))
    queue = EmbeddingQueue(8)  # the same queue on both is the shared one
    ContrastiveLoss(PairInfoNCE(queue=queue), TripletInfoNCE(queue=queue))
    with pytest.raises(TypeError, match="ContrastiveLoss: use_triplet must be a bool"):
        ContrastiveLoss(use_triplet=1)
    with pytest.raises(TypeError, match="ContrastiveLoss: validate must be a bool"):
        ContrastiveLoss().validate = "no"
