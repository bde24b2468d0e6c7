"""Named UniHPR configurations: ``create_model(name)`` and ``list_models()``."""

from __future__ import annotations

from typing import Any

from unihpr.models.config import INFERENCE_FIELDS, UniHPRConfig
from unihpr.models.unihpr import UniHPR

__all__ = ["MODEL_CONFIGS", "create_model", "get_config", "list_models"]

MODEL_CONFIGS: dict[str, UniHPRConfig] = {
    # 15 joints of the bundled pybullet humanoid motion data, 64x64 renders;
    # small enough to train on 2 CPU cores in minutes.
    "unihpr-tiny": UniHPRConfig(
        name="unihpr-tiny",
        num_joints=15,
        embed_dim=128,
        image_size=(64, 64),
        image_backbone="hrnet_tiny",
        pose_width=64,
        pose_depth=2,
        pose_heads=4,
        pose_mlp_ratio=2.0,
        bbox_reference=64.0,
        decoder="mlp",
        decoder_width=256,
        decoder_depth=2,
        decoder_heads=4,
        diffusion_train_steps=200,
        diffusion_sampling_steps=8,
    ),
    # The paper's: Human3.6M 17 joints, 256x192 crops, HRNet-W32 / W48,
    # diffusion decoders (its best).
    "unihpr-w32": UniHPRConfig(
        name="unihpr-w32",
        num_joints=17,
        embed_dim=512,
        image_size=(256, 192),
        image_backbone="hrnet_w32",
        decoder="diffusion",
    ),
    "unihpr-w48": UniHPRConfig(
        name="unihpr-w48",
        num_joints=17,
        embed_dim=512,
        image_size=(256, 192),
        image_backbone="hrnet_w48",
        decoder="diffusion",
    ),
}


def list_models() -> list[str]:
    """Names accepted by [`create_model`][], sorted."""
    return sorted(MODEL_CONFIGS)


def get_config(name: str, **overrides: Any) -> UniHPRConfig:
    """The named configuration with ``overrides`` applied (a fresh copy)."""
    if name not in MODEL_CONFIGS:
        raise ValueError(f"unknown model {name!r}; available: {list_models()}")
    return MODEL_CONFIGS[name].replace(**overrides)


def create_model(name: str, pretrained: bool = False, **overrides: Any) -> UniHPR:
    """Build a named UniHPR model.

    Args:
        name: One of [`list_models`][].
        pretrained: Load published weights (see `unihpr.models.hub`); only inference
            settings (``diffusion_sampling_steps``, ``num_hypotheses``,
            ``hypothesis_aggregation``) may then be overridden.
        **overrides: ``UniHPRConfig`` fields to change, e.g. ``decoder="mlp"``.

    Returns:
        The model (randomly initialised unless ``pretrained``).
    """
    config = get_config(name, **overrides)  # validates name and overrides first
    if pretrained:
        from unihpr.models.hub import from_pretrained

        bad = sorted(set(overrides) - INFERENCE_FIELDS)
        if bad:
            raise ValueError(
                f"cannot override architecture field(s) {bad} of pretrained weights; "
                f"only {sorted(INFERENCE_FIELDS - {'name'})} may be changed"
            )
        return from_pretrained(name, **overrides)
    return UniHPR(config)
