"""Contrastive losses: pairwise InfoNCE, the singular-value Triplet-InfoNCE, SigLIP, GRAM, samplers."""

from unihpr.losses.contrastive import ContrastiveLoss
from unihpr.losses.distributed import all_gather_with_grad, gather_embeddings, local_pair_info_nce
from unihpr.losses.gram_loss import GRAMLoss, anchor_tuple_volumes
from unihpr.losses.multimodal import MultimodalInfoNCE, gram_scores, sample_tuples
from unihpr.losses.pair import PairInfoNCE, pair_info_nce
from unihpr.losses.queue import EmbeddingQueue
from unihpr.losses.samplers import (
    LABEL_REDRAWS,
    SAMPLERS,
    ShuffleTripletSampler,
    SwapOneTripletSampler,
    TripletIndices,
    TripletSampler,
    UniformTripletSampler,
    make_sampler,
)
from unihpr.losses.siglip import SigLIPLoss, siglip_loss
from unihpr.losses.temperature import LearnableTemperature
from unihpr.losses.triplet import TripletInfoNCE, triplet_info_nce, with_positives

__all__ = [
    "LABEL_REDRAWS",
    "SAMPLERS",
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
    "all_gather_with_grad",
    "anchor_tuple_volumes",
    "gather_embeddings",
    "gram_scores",
    "local_pair_info_nce",
    "make_sampler",
    "pair_info_nce",
    "sample_tuples",
    "siglip_loss",
    "triplet_info_nce",
    "with_positives",
]
