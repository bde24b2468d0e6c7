"""UniHPR models: pose/image encoders, decoders, the full model, registry and Hub I/O."""

from unihpr.modalities import MODALITIES
from unihpr.models.config import UniHPRConfig
from unihpr.models.decoders import MLPDecoder, PoseDecoder, TransformerDecoder
from unihpr.models.diffusion import DiffusionDecoder
from unihpr.models.factory import create_model, from_pretrained
from unihpr.models.hrnet import HRNet, hrnet_spec, load_timm_state_dict
from unihpr.models.hub import (
    CheckpointError,
    PretrainedNotFoundError,
    push_to_hub,
    save_pretrained,
)
from unihpr.models.image_encoder import ImageEncoder
from unihpr.models.pose_encoder import PoseEncoder
from unihpr.geometry import (
    bbox_from_keypoints,
    denormalize_pose2d,
    normalize_pose2d,
    normalize_pose3d,
)
from unihpr.models.registry import (
    ModelEntry,
    get_config,
    get_entry,
    list_models,
    register_model,
)
from unihpr.models.sampling import aggregate_hypotheses, geometric_median, sample_poses
from unihpr.models.schedules import (
    CosineSchedule,
    DDIMScheduler,
    LinearSchedule,
    NoiseSchedule,
)
from unihpr.models.unihpr import UniHPR, count_parameters, slerp

__all__ = [
    "MODALITIES",
    "CheckpointError",
    "CosineSchedule",
    "DDIMScheduler",
    "DiffusionDecoder",
    "HRNet",
    "ImageEncoder",
    "LinearSchedule",
    "MLPDecoder",
    "ModelEntry",
    "NoiseSchedule",
    "PoseDecoder",
    "PoseEncoder",
    "PretrainedNotFoundError",
    "TransformerDecoder",
    "UniHPR",
    "UniHPRConfig",
    "aggregate_hypotheses",
    "bbox_from_keypoints",
    "count_parameters",
    "create_model",
    "denormalize_pose2d",
    "from_pretrained",
    "geometric_median",
    "get_config",
    "get_entry",
    "hrnet_spec",
    "list_models",
    "load_timm_state_dict",
    "normalize_pose2d",
    "normalize_pose3d",
    "push_to_hub",
    "register_model",
    "sample_poses",
    "save_pretrained",
    "slerp",
]


def __getattr__(name: str):
    # Deprecated in 0.2: the Hub ids now live in the registry entries.
    if name == "HUB_REPOS":
        import warnings

        warnings.warn(
            "unihpr.models.HUB_REPOS is deprecated; the Hub id of a model is "
            "unihpr.models.get_entry(name).hub_id",
            DeprecationWarning,
            stacklevel=2,
        )
        return {n: get_entry(n).hub_id for n in list_models() if get_entry(n).hub_id}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
