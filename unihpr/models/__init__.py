"""UniHPR models: pose/image encoders, decoders, the full model, registry and Hub I/O."""

from unihpr.models.config import UniHPRConfig
from unihpr.models.decoders import MLPDecoder, PoseDecoder, TransformerDecoder
from unihpr.models.diffusion import DiffusionDecoder, geometric_median
from unihpr.models.hrnet import HRNet, hrnet_spec, load_timm_state_dict
from unihpr.models.hub import (
    HUB_REPOS,
    CheckpointError,
    PretrainedNotFoundError,
    from_pretrained,
    push_to_hub,
    save_pretrained,
)
from unihpr.models.image_encoder import ImageEncoder
from unihpr.models.pose_encoder import PoseEncoder
from unihpr.models.pose_normalization import (
    bbox_from_keypoints,
    denormalize_pose2d,
    normalize_pose2d,
    normalize_pose3d,
)
from unihpr.models.registry import create_model, get_config, list_models
from unihpr.models.schedules import CosineSchedule, LinearSchedule, NoiseSchedule
from unihpr.models.unihpr import UniHPR, slerp

__all__ = [
    "HUB_REPOS",
    "CheckpointError",
    "CosineSchedule",
    "DiffusionDecoder",
    "HRNet",
    "ImageEncoder",
    "LinearSchedule",
    "MLPDecoder",
    "NoiseSchedule",
    "PoseDecoder",
    "PoseEncoder",
    "PretrainedNotFoundError",
    "TransformerDecoder",
    "UniHPR",
    "UniHPRConfig",
    "bbox_from_keypoints",
    "create_model",
    "denormalize_pose2d",
    "from_pretrained",
    "geometric_median",
    "get_config",
    "hrnet_spec",
    "list_models",
    "load_timm_state_dict",
    "normalize_pose2d",
    "normalize_pose3d",
    "push_to_hub",
    "save_pretrained",
    "slerp",
]
