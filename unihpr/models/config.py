"""``UniHPRConfig``: everything needed to rebuild a UniHPR model, JSON-serialisable.

Every field is checked when a config is built, replaced or read from
``config.json``: exact types (``True`` is not an int, ``64.0`` is not an image
side), finite values, ranges, and upper bounds on every size and on the
sampling effort (`LIMITS`), so that no configuration — typed by a user or
found in a downloaded file — can ask for terabytes of parameters or hours of
sampling per input. Wrong types raise ``TypeError``, wrong values
``ValueError``; both name the field and the value received.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from unihpr._validate import check_bool, check_choice, check_int, check_real
from unihpr.models.hrnet import HRNET_NAMES
from unihpr.models.pose_encoder import BBOX_FEATURES, POSE_READOUTS

__all__ = [
    "AGGREGATIONS",
    "DECODER_TYPES",
    "INFERENCE_FIELDS",
    "LIMITS",
    "SCHEDULE_NAMES",
    "UniHPRConfig",
]

DECODER_TYPES = ("mlp", "transformer", "diffusion")
"""Values of ``UniHPRConfig.decoder``."""
SCHEDULE_NAMES = ("cosine", "linear")
"""Values of ``UniHPRConfig.diffusion_schedule``."""
AGGREGATIONS = ("mean", "median")
"""Values of ``UniHPRConfig.hypothesis_aggregation``."""
# Fields that change how a trained model is *run*, not its weights: they may be
# overridden when loading a checkpoint.
INFERENCE_FIELDS = frozenset(
    {"diffusion_sampling_steps", "num_hypotheses", "hypothesis_aggregation", "name"}
)
"""Fields that may be overridden when loading weights (they do not change the weights)."""
# Largest accepted values. The paper's models use widths of 512 and depths of 4;
# these bounds are far above any sensible model and keep one parameter tensor
# below a few hundred MB (8192 x 8192 floats = 256 MiB). The sampling fields are
# not in the weights, so a downloaded config.json could set them to anything:
# they are capped far above use (DDIM needs 10-50 steps, multi-hypothesis papers
# draw 1-20 samples), and so is their product, the denoiser calls per input.
LIMITS: dict[str, int | float] = {
    "width": 8192,  # embed_dim, pose_width, decoder_width
    "depth": 64,  # pose_depth, decoder_depth
    "heads": 256,
    "num_joints": 1024,
    "image_side": 4096,
    "mlp_ratio": 16.0,
    "diffusion_train_steps": 100_000,
    "diffusion_sampling_steps": 1000,
    "num_hypotheses": 64,
    "denoiser_calls": 10_000,  # diffusion_sampling_steps * num_hypotheses
    "name_length": 200,
    "bbox_reference": 1e6,
    "target_scale_3d": 1e3,
}
"""Upper bounds of the config fields (``width`` applies to every width, ``depth`` to every
depth; ``denoiser_calls`` bounds ``diffusion_sampling_steps * num_hypotheses``)."""


def _check_name(name: str, value: Any, *, owner: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{owner}: {name} must be a str, got {type(value).__name__} {value!r}")
    if not 1 <= len(value) <= LIMITS["name_length"] or not value.isprintable():
        raise ValueError(
            f"{owner}: {name} must be 1 to {LIMITS['name_length']} printable characters, "
            f"got {value!r}"
        )
    return value


def _check_image_size(name: str, value: Any, *, owner: str) -> tuple[int, int]:
    if not isinstance(value, (tuple, list)):
        raise TypeError(
            f"{owner}: {name} must be a pair of ints (H, W), got {type(value).__name__} {value!r}"
        )
    if len(value) != 2:
        raise ValueError(f"{owner}: {name} must be a pair (H, W), got {len(value)} values")
    side = {"low": 16, "high": LIMITS["image_side"], "owner": owner}
    return (check_int(f"{name}[0]", value[0], **side), check_int(f"{name}[1]", value[1], **side))


_WIDTH = {"low": 1, "high": LIMITS["width"]}
_DEPTH = {"low": 1, "high": LIMITS["depth"]}
_HEADS = {"low": 1, "high": LIMITS["heads"]}
_POSITIVE = {"low": 0.0, "low_open": True}

# One check per field and its keywords (a test checks that every field has one).
# Checks return the normalised value (float fields accept ints; image_size a tuple).
_RULES: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "name": (_check_name, {}),
    "num_joints": (check_int, {"low": 1, "high": LIMITS["num_joints"]}),
    "embed_dim": (check_int, _WIDTH),
    "image_size": (_check_image_size, {}),
    "image_backbone": (check_choice, {"choices": HRNET_NAMES}),
    "root_joint": (check_int, {"low": 0, "high": LIMITS["num_joints"] - 1}),
    "pose_width": (check_int, _WIDTH),
    "pose_depth": (check_int, _DEPTH),
    "pose_heads": (check_int, _HEADS),
    "pose_mlp_ratio": (check_real, {**_POSITIVE, "high": LIMITS["mlp_ratio"]}),
    "pose_attend_to_masked": (check_bool, {}),
    "pose_readout": (check_choice, {"choices": POSE_READOUTS}),
    "bbox_features": (check_choice, {"choices": BBOX_FEATURES}),
    "dropout": (check_real, {"low": 0.0, "high": 1.0, "high_open": True}),
    "bbox_reference": (check_real, {**_POSITIVE, "high": LIMITS["bbox_reference"]}),
    "decoder": (check_choice, {"choices": DECODER_TYPES}),
    "decoder_width": (check_int, _WIDTH),
    "decoder_depth": (check_int, _DEPTH),
    "decoder_heads": (check_int, _HEADS),
    "use_representation_token": (check_bool, {}),
    "diffusion_schedule": (check_choice, {"choices": SCHEDULE_NAMES}),
    "diffusion_train_steps": (check_int, {"low": 1, "high": LIMITS["diffusion_train_steps"]}),
    "diffusion_sampling_steps": (
        check_int,
        {"low": 1, "high": LIMITS["diffusion_sampling_steps"]},
    ),
    "num_hypotheses": (check_int, {"low": 1, "high": LIMITS["num_hypotheses"]}),
    "hypothesis_aggregation": (check_choice, {"choices": AGGREGATIONS}),
    "target_scale_3d": (check_real, {**_POSITIVE, "high": LIMITS["target_scale_3d"]}),
}


@dataclass(frozen=True)
class UniHPRConfig:
    """Architecture of a UniHPR model.

    Attributes:
        name: Configuration name (informational).
        num_joints: J.
        embed_dim: Shared embedding dimension D.
        image_size: Image encoder input (H, W).
        image_backbone: HRNet name: "hrnet_tiny", "hrnet_w18", "hrnet_w32", "hrnet_w48".
        root_joint: Index of the root joint of 3D poses.
        pose_width, pose_depth, pose_heads, pose_mlp_ratio: Pose-encoder Transformers.
        pose_attend_to_masked: Invisible joints stay in the attention as mask tokens
            (default: excluded via ``key_padding_mask``).
        pose_readout: Pose-encoder readout: ``"cls"`` (the paper's [CLS] token) or
            ``"tokens"`` (all output tokens flattened; much better for small
            models, see the benchmarks page).
        bbox_features: What the 2D box token encodes: ``"shape"`` (aspect ratio
            only: lifting does not depend on the pixel frame of the 2D input) or
            ``"frame"`` (also size and position relative to ``bbox_reference``).
        dropout: Dropout in all Transformers, in [0, 1).
        bbox_reference: Pixel scale of the 2D bounding-box token (frame size of the 2D data).
        decoder: "mlp", "transformer" or "diffusion".
        decoder_width, decoder_depth, decoder_heads: Decoder size (``decoder_width`` is the
            hidden width of the MLP decoder).
        use_representation_token: Decoders add a learned token naming the source modality.
        diffusion_schedule: "cosine" or "linear".
        diffusion_train_steps: T of the noise schedule.
        diffusion_sampling_steps: DDIM steps at inference (<= 1000).
        num_hypotheses: Diffusion samples per input at inference (<= 64; with
            ``diffusion_sampling_steps`` at most 10,000 denoiser calls per input).
        hypothesis_aggregation: "mean" or "median".
        target_scale_3d: 3D poses (metres) are divided by it inside the diffusion decoder.

    The config is frozen (a built model's config cannot drift from its
    weights); use [`replace`][UniHPRConfig.replace] for a changed copy.

    Raises:
        TypeError: A field of the wrong type (``embed_dim=True``, ``image_size=(64.0, 64)``).
        ValueError: A value out of range, not finite, or sizes that do not fit together
            (``pose_width`` not divisible by ``pose_heads``, ``root_joint >= num_joints``).

    Examples:
        >>> from unihpr.models import UniHPRConfig
        >>> UniHPRConfig(num_joints=15, embed_dim=64).replace(decoder="mlp").decoder
        'mlp'
    """

    name: str = "unihpr-custom"
    num_joints: int = 17
    embed_dim: int = 512
    image_size: tuple[int, int] = (256, 192)
    image_backbone: str = "hrnet_w32"
    root_joint: int = 0
    pose_width: int = 256
    pose_depth: int = 4
    pose_heads: int = 8
    pose_mlp_ratio: float = 4.0
    pose_attend_to_masked: bool = False
    pose_readout: str = "cls"
    bbox_features: str = "shape"
    dropout: float = 0.0
    bbox_reference: float = 1000.0
    decoder: str = "diffusion"
    decoder_width: int = 256
    decoder_depth: int = 4
    decoder_heads: int = 8
    use_representation_token: bool = True
    diffusion_schedule: str = "cosine"
    diffusion_train_steps: int = 1000
    diffusion_sampling_steps: int = 10
    num_hypotheses: int = 1
    hypothesis_aggregation: str = "mean"
    target_scale_3d: float = 0.5

    def __post_init__(self) -> None:
        for name, (check, kwargs) in _RULES.items():
            value = check(name, getattr(self, name), owner="UniHPRConfig", **kwargs)
            object.__setattr__(self, name, value)
        if self.root_joint >= self.num_joints:
            raise ValueError(
                f"root_joint must be in [0, num_joints={self.num_joints}), got {self.root_joint}"
            )
        if self.pose_width % self.pose_heads:
            raise ValueError(
                f"pose_width={self.pose_width} must be divisible by pose_heads={self.pose_heads}"
            )
        if int(self.pose_width * self.pose_mlp_ratio) < 1:
            raise ValueError(
                f"pose_width * pose_mlp_ratio must be >= 1, got {self.pose_width} * "
                f"{self.pose_mlp_ratio}"
            )
        if self.decoder != "mlp" and self.decoder_width % self.decoder_heads:
            raise ValueError(
                f"decoder_width={self.decoder_width} must be divisible by "
                f"decoder_heads={self.decoder_heads} for a {self.decoder} decoder"
            )
        if self.decoder == "diffusion" and self.decoder_width % 2:
            raise ValueError(
                f"decoder_width must be even for a diffusion decoder (sinusoidal time "
                f"embedding), got {self.decoder_width}"
            )
        calls = self.diffusion_sampling_steps * self.num_hypotheses
        if calls > LIMITS["denoiser_calls"]:
            raise ValueError(
                f"diffusion_sampling_steps * num_hypotheses must be <= "
                f"{LIMITS['denoiser_calls']} denoiser calls per input, got "
                f"{self.diffusion_sampling_steps} * {self.num_hypotheses} = {calls}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["image_size"] = list(self.image_size)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UniHPRConfig:
        """Inverse of [`to_dict`][UniHPRConfig.to_dict], with every field checked.

        Unknown keys raise ``ValueError`` naming them.
        """
        if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
            raise TypeError(f"config must be a dict with str keys, got {data!r:.200}")
        return cls().replace(**data)

    def replace(self, **overrides: Any) -> UniHPRConfig:
        """Copy with fields replaced (and checked); unknown names raise ``ValueError``."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown UniHPRConfig field(s): {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **overrides)

    def for_inference(self, **overrides: Any) -> UniHPRConfig:
        """Copy with inference settings replaced, as allowed when loading trained weights.

        Args:
            **overrides: Fields of `INFERENCE_FIELDS`
                (``num_hypotheses``, ``diffusion_sampling_steps``,
                ``hypothesis_aggregation``, ``name``).

        Raises:
            ValueError: An architecture field (it would not match the weights).
        """
        self.check_inference_overrides(overrides)
        return self.replace(**overrides)

    @staticmethod
    def check_inference_overrides(overrides: dict[str, Any]) -> None:
        """Raise ``ValueError`` unless every key of ``overrides`` is an inference field.

        Called before any file is read, so a wrong override fails at once.
        """
        bad = sorted(map(str, set(overrides) - INFERENCE_FIELDS))
        if bad:
            raise ValueError(
                f"cannot override architecture field(s) {bad} of pretrained weights; "
                f"only {sorted(INFERENCE_FIELDS)} may be changed"
            )
