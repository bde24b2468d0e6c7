"""unihpr: unified human pose representation learning.

The public API is re-exported here. Submodules are imported lazily on first
attribute access, so ``import unihpr`` costs little more than ``import torch``
and never imports an optional dependency.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # ops
    "lambda1_from_cosines": "unihpr.ops",
    "lambda1_from_gram": "unihpr.ops",
    "largest_gram_eigenvalue": "unihpr.ops",  # deprecated alias of lambda1_from_cosines
    "exact_triplet_info_nce": "unihpr.ops",
    "sampled_triplet_info_nce": "unihpr.ops",
    "gram_volume": "unihpr.ops",
    # losses
    "LearnableTemperature": "unihpr.losses",
    "PairInfoNCE": "unihpr.losses",
    "TripletInfoNCE": "unihpr.losses",
    "ContrastiveLoss": "unihpr.losses",
    "UniformTripletSampler": "unihpr.losses",
    "ShuffleTripletSampler": "unihpr.losses",
    "SwapOneTripletSampler": "unihpr.losses",
    "MultimodalInfoNCE": "unihpr.losses",
    "SigLIPLoss": "unihpr.losses",
    "GRAMLoss": "unihpr.losses",
    "EmbeddingQueue": "unihpr.losses",
    # models
    "MODALITIES": "unihpr.modalities",
    "UniHPR": "unihpr.models",
    "create_model": "unihpr.models",
    "register_model": "unihpr.models",
    "list_models": "unihpr.models",
    "from_pretrained": "unihpr.models",
    "UniHPRConfig": "unihpr.models",
    "PoseEncoder": "unihpr.models",
    "ImageEncoder": "unihpr.models",
    "MLPDecoder": "unihpr.models",
    "TransformerDecoder": "unihpr.models",
    "DiffusionDecoder": "unihpr.models",
    # metrics
    "mpjpe": "unihpr.metrics",
    "pa_mpjpe": "unihpr.metrics",
    "n_mpjpe": "unihpr.metrics",
    "pck": "unihpr.metrics",
    "auc": "unihpr.metrics",
    "per_action_error": "unihpr.metrics",
    "pose_retrieval_error": "unihpr.metrics",
    "image_retrieval_topk": "unihpr.metrics",
    # evaluation
    "evaluate": "unihpr.evaluation",
    "pose_errors": "unihpr.evaluation",
    # inference on users' keypoints
    "lift": "unihpr.inference",
    # data
    "Skeleton": "unihpr.data",
    "get_skeleton": "unihpr.data",
    "map_joints": "unihpr.data",
    "flip_pose": "unihpr.data",
    "Human36M": "unihpr.data",
    "MPIInf3DHP": "unihpr.data",
    "ThreeDPW": "unihpr.data",
    "HumanoidMocap": "unihpr.data",
    "VirtualCameraDataset": "unihpr.data",
    "CameraDistribution": "unihpr.data",
    "PoseAugmentation": "unihpr.data",
    "ImageIndexDataset": "unihpr.data",
    "MocapFolder": "unihpr.data",
    "MocapClip": "unihpr.data",
    "read_bvh": "unihpr.data",
    "read_asf": "unihpr.data",
    "read_amc": "unihpr.data",
    # training
    "TrainConfig": "unihpr.train",
    "StageConfig": "unihpr.train",
    "LossConfig": "unihpr.train",
    "Trainer": "unihpr.train",
    "train_pipeline": "unihpr.train",
    # figures
    "plot_pose_comparison": "unihpr.viz",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'unihpr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
