"""The new loss paths read nothing on the host once validate=False (no GPU waits)."""

from __future__ import annotations

import pytest
import torch
from host_syncs import record_host_syncs

from unihpr.losses import (
    ContrastiveLoss,
    EmbeddingQueue,
    GRAMLoss,
    PairInfoNCE,
    ShuffleTripletSampler,
    SigLIPLoss,
    TripletInfoNCE,
)

LABELS = torch.tensor([0, 0, 1, 1, 2, 3, 3, 3])


def cases():
    q = lambda: EmbeddingQueue(16)  # noqa: E731
    return {
        "pair-labels-queue": (PairInfoNCE(validate=False, queue=q(), label_smoothing=0.1), 2),
        "siglip-labels": (SigLIPLoss(validate=False), 2),
        "gram-labels": (GRAMLoss(validate=False), 3),
        "triplet-sampled-labels": (TripletInfoNCE(validate=False), 3),
        "triplet-all-labels": (TripletInfoNCE(negatives="all", validate=False), 3),
        "triplet-planes-labels": (TripletInfoNCE(negatives="planes", validate=False), 3),
        "triplet-each": (
            TripletInfoNCE(
                sampler=ShuffleTripletSampler(), anchor_modalities="each", validate=False
            ),
            3,
        ),
        "contrastive-labels-queue": (
            ContrastiveLoss(PairInfoNCE(validate=False, queue=q()), TripletInfoNCE(validate=False)),
            3,
        ),
    }


@pytest.mark.parametrize("name", sorted(cases()))
def test_forward_backward_without_host_reads(name):
    loss_fn, k = cases()[name]
    g = torch.Generator().manual_seed(0)
    for step in range(2):  # the second step also reads the queue
        xs = [torch.randn(8, 6, generator=g, requires_grad=True) for _ in range(k)]
        kwargs = {"labels": LABELS}
        if isinstance(loss_fn, (TripletInfoNCE, ContrastiveLoss)):
            kwargs["generator"] = torch.Generator().manual_seed(step)
        with record_host_syncs() as calls:
            loss_fn(*xs, **kwargs).backward()
        assert calls == [], calls
