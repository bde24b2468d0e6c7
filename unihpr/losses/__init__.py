"""Contrastive losses: pairwise InfoNCE, the singular-value Triplet-InfoNCE, samplers."""

from unihpr.losses.contrastive import ContrastiveLoss
from unihpr.losses.distributed import all_gather_with_grad, gather_embeddings, local_pair_info_nce
from unihpr.losses.multimodal import MultimodalInfoNCE, gram_scores, sample_tuples
from unihpr.losses.pair import PairInfoNCE, pair_info_nce
from unihpr.losses.samplers import (
    SAMPLERS,
    ShuffleTripletSampler,
    SwapOneTripletSampler,
    TripletIndices,
    TripletSampler,
    UniformTripletSampler,
    make_sampler,
)
from unihpr.losses.temperature import LearnableTemperature
from unihpr.losses.triplet import TripletInfoNCE, triplet_info_nce, with_positives

__all__ = [
    "SAMPLERS",
    "ContrastiveLoss",
    "LearnableTemperature",
    "MultimodalInfoNCE",
    "PairInfoNCE",
    "ShuffleTripletSampler",
    "SwapOneTripletSampler",
    "TripletIndices",
    "TripletInfoNCE",
    "TripletSampler",
    "UniformTripletSampler",
    "all_gather_with_grad",
    "gather_embeddings",
    "gram_scores",
    "local_pair_info_nce",
    "make_sampler",
    "pair_info_nce",
    "sample_tuples",
    "triplet_info_nce",
    "with_positives",
]
