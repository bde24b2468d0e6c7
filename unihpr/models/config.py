"""``UniHPRConfig``: everything needed to rebuild a UniHPR model, JSON-serialisable."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["DECODER_TYPES", "INFERENCE_FIELDS", "UniHPRConfig"]

DECODER_TYPES = ("mlp", "transformer", "diffusion")
# Fields that change how a trained model is *run*, not its weights: they may be
# overridden when loading a checkpoint.
INFERENCE_FIELDS = frozenset(
    {"diffusion_sampling_steps", "num_hypotheses", "hypothesis_aggregation", "name"}
)


@dataclass
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
        dropout: Dropout in all Transformers.
        bbox_reference: Pixel scale of the 2D bounding-box token (frame size of the 2D data).
        decoder: "mlp", "transformer" or "diffusion".
        decoder_width, decoder_depth, decoder_heads: Decoder size (``decoder_width`` is the
            hidden width of the MLP decoder).
        use_representation_token: Decoders add a learned token naming the source modality.
        diffusion_schedule: "cosine" or "linear".
        diffusion_train_steps: T of the noise schedule.
        diffusion_sampling_steps: DDIM steps at inference.
        num_hypotheses: Diffusion samples per input at inference.
        hypothesis_aggregation: "mean" or "median".
        target_scale_3d: 3D poses (metres) are divided by it inside the diffusion decoder.
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
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.image_size = tuple(int(s) for s in self.image_size)  # type: ignore[assignment]
        if len(self.image_size) != 2 or min(self.image_size) < 16:
            raise ValueError(f"image_size must be (H, W) with sides >= 16, got {self.image_size}")
        for name in ("num_joints", "embed_dim", "pose_width", "pose_depth", "pose_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0 <= self.root_joint < self.num_joints:
            raise ValueError(
                f"root_joint must be in [0, num_joints={self.num_joints}), got {self.root_joint}"
            )
        if self.pose_readout not in ("cls", "tokens"):
            raise ValueError(f"pose_readout must be 'cls' or 'tokens', got {self.pose_readout!r}")
        if self.bbox_features not in ("shape", "frame"):
            raise ValueError(
                f"bbox_features must be 'shape' or 'frame', got {self.bbox_features!r}"
            )
        if self.decoder not in DECODER_TYPES:
            raise ValueError(f"decoder must be one of {DECODER_TYPES}, got {self.decoder!r}")
        if self.hypothesis_aggregation not in ("mean", "median"):
            raise ValueError(
                f"hypothesis_aggregation must be 'mean' or 'median', got "
                f"{self.hypothesis_aggregation!r}"
            )
        if self.diffusion_schedule not in ("cosine", "linear"):
            raise ValueError(
                f"diffusion_schedule must be 'cosine' or 'linear', got {self.diffusion_schedule!r}"
            )
        if self.num_hypotheses < 1 or self.diffusion_sampling_steps < 1:
            raise ValueError("num_hypotheses and diffusion_sampling_steps must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["image_size"] = list(self.image_size)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UniHPRConfig:
        """Inverse of [`to_dict`][]; unknown keys raise ``ValueError`` naming them."""
        if not isinstance(data, dict):
            raise TypeError(f"config must be a dict, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown UniHPRConfig field(s): {unknown}")
        return cls(**data)

    def replace(self, **overrides: Any) -> UniHPRConfig:
        """Copy with fields replaced; unknown names raise ``ValueError``."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown UniHPRConfig field(s): {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **overrides)
