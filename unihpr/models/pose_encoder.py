"""Transformer encoder for 2D or 3D keypoints (paper §III-A, "2D/3D pose encoders")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unihpr._validate import check_choice, check_finite, check_mask, check_shape, check_tensor
from unihpr.geometry import normalize_pose2d, normalize_pose3d

__all__ = ["BBOX_FEATURES", "POSE_READOUTS", "PoseEncoder", "transformer"]

#: Readouts of the Transformer output: the [CLS] token (the paper's) or every
#: output token flattened (better for small models, see docs/benchmarks.md).
POSE_READOUTS = ("cls", "tokens")
#: What the 2D bounding-box token says: the box's shape only (invariant to the
#: pixel frame of the keypoints) or also its size and position in pixels.
BBOX_FEATURES = ("shape", "frame")


def transformer(
    width: int, depth: int, num_heads: int, mlp_ratio: float, dropout: float
) -> nn.TransformerEncoder:
    """``depth`` pre-norm Transformer layers (GELU, batch first) and a final LayerNorm."""
    if width % num_heads:
        raise ValueError(f"width={width} must be divisible by num_heads={num_heads}")
    layer = nn.TransformerEncoderLayer(
        d_model=width,
        nhead=num_heads,
        dim_feedforward=int(width * mlp_ratio),
        dropout=dropout,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
    return nn.TransformerEncoder(
        layer, num_layers=depth, norm=nn.LayerNorm(width), enable_nested_tensor=False
    )


class PoseEncoder(nn.Module):
    """Embed a 2D or 3D pose into a D-dimensional vector.

    Tokens: ``[CLS] [BBOX] joint_1 ... joint_J``. Each joint token is a linear
    embedding of its normalised coordinates (keypoint-wise patch embedding, see
    `unihpr.geometry`) plus a learnable per-joint position
    embedding. The bounding-box token embeds the geometry removed by the
    normalisation:

    * 2D, ``bbox_features="shape"``: ``(w / s, h / s)`` with ``s = max(w, h)``:
      the output does not depend on the pixel frame of the keypoints (crop
      pixels, sensor pixels, any image size): translating and scaling the 2D
      input and its box together leaves the embedding unchanged.
    * 2D, ``bbox_features="frame"``: also ``(log(s / ref), cx / ref, cy / ref)``
      with ``ref = bbox_reference`` pixels, i.e. where and how large the box is
      in a frame of known size (only meaningful when training and test 2D
      share one camera frame).
    * 3D: the extents of the normalised pose along x, y, z and ``log(scale / 1 m)``.

    Invisible joints get a learned mask embedding (plus their position embedding).
    By default they are also excluded from attention through ``key_padding_mask``,
    so nothing about an invisible joint (not even the mask embedding) reaches the
    output: the mask embedding then only keeps padded positions finite. With
    ``attend_to_masked=True`` they stay in the attention as mask tokens
    (BERT/MAE-style), so the model can learn from *which* joints are missing.
    The [CLS] and bbox tokens are never masked, so a pose with no visible joint
    still yields a finite embedding. Pre-norm Transformer layers; the readout
    projects the [CLS] output (``readout="cls"``, the paper's) or all J + 2
    output tokens flattened (``readout="tokens"``) to ``embed_dim``.

    Args:
        num_joints: J.
        dims: 2 or 3.
        embed_dim: Output dimension D.
        width: Transformer width.
        depth: Number of Transformer layers.
        num_heads: Attention heads.
        mlp_ratio: Feed-forward width / ``width``.
        dropout: Dropout inside the Transformer layers.
        bbox_reference: Pixel scale for the 2D bbox token.
        root_joint: Root index for 3D re-centring.
        attend_to_masked: Keep invisible joints in the attention as mask tokens.
        readout: ``"cls"`` or ``"tokens"`` (see above).
        bbox_features: ``"shape"`` or ``"frame"`` (2D only; see above).

    Attributes:
        validate: Check the values of the inputs (finite visible joints,
            ordered boxes) and raise a clear error; each check reads a tensor on
            the host, a GPU sync. The training loop switches it off after the
            first step of a run (``Stage.configure_step``) and back on at the
            end; shapes and dtypes are always checked.
    """

    #: See Attributes.
    validate: bool = True

    def __init__(
        self,
        num_joints: int,
        dims: int,
        embed_dim: int,
        width: int = 256,
        depth: int = 4,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        bbox_reference: float = 1000.0,
        root_joint: int = 0,
        attend_to_masked: bool = False,
        readout: str = "cls",
        bbox_features: str = "frame",
    ) -> None:
        super().__init__()
        check_choice("readout", readout, POSE_READOUTS)
        check_choice("bbox_features", bbox_features, BBOX_FEATURES)
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        if num_joints < 1:
            raise ValueError(f"num_joints must be positive, got {num_joints}")
        if not 0 <= root_joint < num_joints:
            raise ValueError(f"root_joint must be in [0, {num_joints}), got {root_joint}")
        self.num_joints = num_joints
        self.dims = dims
        self.embed_dim = embed_dim
        self.bbox_reference = float(bbox_reference)
        self.root_joint = root_joint
        self.attend_to_masked = attend_to_masked
        self.readout = readout
        self.bbox_features = bbox_features
        self.patch_embed = nn.Linear(dims, width)
        box_dims = 4 if dims == 3 else (2 if bbox_features == "shape" else 5)
        self.bbox_embed = nn.Linear(box_dims, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_joints, width))
        self.blocks = transformer(width, depth, num_heads, mlp_ratio, dropout)
        read_dims = width if readout == "cls" else width * (num_joints + 2)
        self.head = nn.Linear(read_dims, embed_dim)
        for p in (self.cls_token, self.mask_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)

    def _bbox_features(self, bbox: Tensor) -> Tensor:
        wh = (bbox[:, 2:] - bbox[:, :2]).clamp_min(0)
        s = wh.amax(dim=-1, keepdim=True).clamp_min(1e-6)
        if self.bbox_features == "shape":
            return wh / s
        ref = self.bbox_reference
        centre = 0.5 * (bbox[:, :2] + bbox[:, 2:]) / ref
        log_s = torch.log((s / ref).clamp_min(1e-3))
        return torch.cat([wh / s, log_s, centre], dim=-1)

    def _pose3d_features(self, normed: Tensor, scale: Tensor, vis: Tensor) -> Tensor:
        big = torch.finfo(normed.dtype).max
        v = vis[..., None]
        hi = torch.where(v, normed, torch.full_like(normed, -big)).amax(dim=1)
        lo = torch.where(v, normed, torch.full_like(normed, big)).amin(dim=1)
        extent = torch.where(v.any(dim=1), hi - lo, torch.zeros_like(hi)) * 0.5
        return torch.cat([extent, torch.log(scale.clamp_min(1e-3))[:, None]], dim=-1)

    @staticmethod
    def _check_values(name: str, pose: Tensor, vis: Tensor, bbox: Tensor | None) -> None:
        if not bool(torch.isfinite(torch.where(vis[..., None], pose, 0.0)).all()):
            raise ValueError(f"{name} has NaN or infinite coordinates at visible joints")
        if bbox is not None:
            check_finite("bbox", bbox)
            if bool(((bbox[:, 2] < bbox[:, 0]) | (bbox[:, 3] < bbox[:, 1])).any()):
                raise ValueError("bbox must be ordered x0, y0, x1, y1 with x1 >= x0 and y1 >= y0")

    def forward(
        self,
        pose: Tensor,
        bbox: Tensor | None = None,
        mask: Tensor | None = None,
        normalize: bool = True,
    ) -> Tensor:
        """Encode poses.

        Args:
            pose: (B, J, 2) pixels for 2D, (B, J, 3) metres for 3D.
            bbox: 2D only: (B, 4) x0, y0, x1, y1 pixels; from the keypoints when ``None``.
            mask: (B, J) bool, True = visible. Coordinates of invisible joints are ignored
                (they may be NaN).
            normalize: L2-normalise the output.

        Returns:
            Embeddings (B, D).
        """
        name, j = f"pose{self.dims}d", self.num_joints
        check_tensor(name, pose, floating=True)
        check_shape(name, pose, (None, j, self.dims), f"(B, J={j}, {self.dims})")
        batch = pose.shape[0]
        if batch == 0:  # attention cannot reshape an empty batch
            raise ValueError(f"{name} must hold at least one pose, got shape {tuple(pose.shape)}")
        mask = check_mask("mask", mask, (batch, j), f"(B={batch}, J={j})")
        if self.dims == 3 and bbox is not None:
            raise ValueError("bbox is only used for 2D poses; pass bbox=None for pose3d")
        if bbox is not None:
            check_tensor("bbox", bbox, floating=True)
            check_shape("bbox", bbox, (batch, 4), f"(B={batch}, 4) as x0, y0, x1, y1")
        vis = torch.ones(batch, j, dtype=torch.bool, device=pose.device) if mask is None else mask
        if self.validate:
            self._check_values(name, pose, vis, bbox)

        if self.dims == 2:
            normed, bbox = normalize_pose2d(pose, bbox, mask)
            box_feat = self._bbox_features(bbox)
        else:
            normed, scale = normalize_pose3d(pose, mask, self.root_joint)
            box_feat = self._pose3d_features(normed, scale, vis)

        tokens = self.patch_embed(normed)
        tokens = torch.where(vis[..., None], tokens, self.mask_token.to(tokens.dtype))
        tokens = tokens + self.pos_embed
        cls = self.cls_token.expand(batch, -1, -1)
        box = self.bbox_embed(box_feat)[:, None]
        x = torch.cat([cls, box, tokens], dim=1)
        keep = torch.ones(batch, 2, dtype=torch.bool, device=pose.device)
        padding = ~torch.cat([keep, vis], dim=1)
        use_padding = mask is not None and not self.attend_to_masked
        x = self.blocks(x, src_key_padding_mask=padding if use_padding else None)
        # The zero term keeps mask_token in the autograd graph when no joint is masked
        # (or masked joints are padded out), so DDP does not need find_unused_parameters.
        read = x[:, 0] if self.readout == "cls" else x.flatten(1)
        out = self.head(read) + 0.0 * self.mask_token.sum()
        return F.normalize(out, dim=-1) if normalize else out
