"""UniHPR models: pose/image encoders, decoders, the full model, registry and Hub I/O.

Internals stay in their modules (``unihpr.models.hub`` for checkpoint I/O of
any model, ``unihpr.models.config.LIMITS``, ``unihpr.models.sampling``); the
pose normalisations and the box rule live in ``unihpr.geometry``.
"""

from unihpr.models.config import UniHPRConfig
from unihpr.models.decoders import MLPDecoder, PoseDecoder, TransformerDecoder
from unihpr.models.diffusion import DiffusionDecoder
from unihpr.models.factory import create_model, from_pretrained
from unihpr.models.hrnet import HRNet, hrnet_spec, load_timm_state_dict
from unihpr.models.hub import CheckpointError, PretrainedNotFoundError
from unihpr.models.image_encoder import ImageEncoder
from unihpr.models.pose_encoder import PoseEncoder
from unihpr.models.registry import get_config, get_entry, list_models, register_model
from unihpr.models.sampling import aggregate_hypotheses, sample_poses
from unihpr.models.schedules import CosineSchedule, DDIMScheduler, LinearSchedule, NoiseSchedule
from unihpr.models.temporal import TemporalLifter, TemporalLifterConfig, lift_frames
from unihpr.models.unihpr import UniHPR

__all__ = [
    "CheckpointError",
    "CosineSchedule",
    "DDIMScheduler",
    "DiffusionDecoder",
    "HRNet",
    "ImageEncoder",
    "LinearSchedule",
    "MLPDecoder",
    "NoiseSchedule",
    "PoseDecoder",
    "PoseEncoder",
    "PretrainedNotFoundError",
    "TemporalLifter",
    "TemporalLifterConfig",
    "TransformerDecoder",
    "UniHPR",
    "UniHPRConfig",
    "aggregate_hypotheses",
    "create_model",
    "from_pretrained",
    "get_config",
    "get_entry",
    "hrnet_spec",
    "lift_frames",
    "list_models",
    "load_timm_state_dict",
    "register_model",
    "sample_poses",
]
