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
    # the closed-form spectra behind the triplet loss
    "lambda1_from_cosines": "unihpr.ops",
    "gram_volume": "unihpr.ops",
    # losses (samplers, functional forms and internals: unihpr.losses)
    "PairInfoNCE": "unihpr.losses",
    "TripletInfoNCE": "unihpr.losses",
    "ContrastiveLoss": "unihpr.losses",
    "LearnableTemperature": "unihpr.losses",
    "MultimodalInfoNCE": "unihpr.losses",
    "SigLIPLoss": "unihpr.losses",
    "GRAMLoss": "unihpr.losses",
    "EmbeddingQueue": "unihpr.losses",
    # models (encoders, decoders, Hub I/O: unihpr.models)
    "UniHPR": "unihpr.models",
    "UniHPRConfig": "unihpr.models",
    "create_model": "unihpr.models",
    "from_pretrained": "unihpr.models",
    "list_models": "unihpr.models",
    "register_model": "unihpr.models",
    # 2D keypoints of users' videos -> 3D
    "lift": "unihpr.inference",
    # metrics and evaluation (the others: unihpr.metrics)
    "mpjpe": "unihpr.metrics",
    "pa_mpjpe": "unihpr.metrics",
    "evaluate": "unihpr.evaluation",
    # data (readers, cameras, augmentation: unihpr.data)
    "get_skeleton": "unihpr.data",
    "map_joints": "unihpr.data",
    "Human36M": "unihpr.data",
    "MPIInf3DHP": "unihpr.data",
    "ThreeDPW": "unihpr.data",
    "HumanoidMocap": "unihpr.data",
    "MocapFolder": "unihpr.data",
    "VirtualCameraDataset": "unihpr.data",
    # training
    "TrainConfig": "unihpr.train",
    "StageConfig": "unihpr.train",
    "LossConfig": "unihpr.train",
    "Trainer": "unihpr.train",
    "train_pipeline": "unihpr.train",
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
    # The public names only: no module internals (importlib, _EXPORTS, ...).
    return sorted(__all__)
