"""Contrastive losses: pairwise InfoNCE, the singular-value Triplet-InfoNCE, samplers."""

from unihpr.losses.contrastive import ContrastiveLoss
from unihpr.losses.pair import PairInfoNCE, pair_info_nce
from unihpr.losses.samplers import (
    ShuffleTripletSampler,
    SwapOneTripletSampler,
    TripletIndices,
    TripletSampler,
    UniformTripletSampler,
)
from unihpr.losses.temperature import LearnableTemperature
from unihpr.losses.triplet import TripletInfoNCE, triplet_info_nce, with_positives

__all__ = [
    "ContrastiveLoss",
    "LearnableTemperature",
    "PairInfoNCE",
    "ShuffleTripletSampler",
    "SwapOneTripletSampler",
    "TripletIndices",
    "TripletInfoNCE",
    "TripletSampler",
    "UniformTripletSampler",
    "pair_info_nce",
    "triplet_info_nce",
    "with_positives",
]
