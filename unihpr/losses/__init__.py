"""Contrastive losses: pairwise InfoNCE, the singular-value Triplet-InfoNCE, SigLIP, GRAM, samplers."""

from unihpr.losses.contrastive import ContrastiveLoss
from unihpr.losses.gram_loss import GRAMLoss
from unihpr.losses.multimodal import MultimodalInfoNCE
from unihpr.losses.pair import PairInfoNCE, pair_info_nce
from unihpr.losses.queue import EmbeddingQueue
from unihpr.losses.samplers import (
    ShuffleTripletSampler,
    SwapOneTripletSampler,
    TripletIndices,
    TripletSampler,
    UniformTripletSampler,
    make_sampler,
)
from unihpr.losses.siglip import SigLIPLoss, siglip_loss
from unihpr.losses.temperature import LearnableTemperature
from unihpr.losses.triplet import TripletInfoNCE, triplet_info_nce

__all__ = [
    "ContrastiveLoss",
    "EmbeddingQueue",
    "GRAMLoss",
    "LearnableTemperature",
    "MultimodalInfoNCE",
    "PairInfoNCE",
    "ShuffleTripletSampler",
    "SigLIPLoss",
    "SwapOneTripletSampler",
    "TripletIndices",
    "TripletInfoNCE",
    "TripletSampler",
    "UniformTripletSampler",
    "make_sampler",
    "pair_info_nce",
    "siglip_loss",
    "triplet_info_nce",
]
