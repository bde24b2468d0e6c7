"""Temporal 2D-to-3D lifter of the UniHPR family, robust to missing joints and frames.

[`TemporalLifter`][] embeds every frame with the UniHPR 2D pose encoder
([`PoseEncoder`][unihpr.models.PoseEncoder], invisible joints replaced by its
mask token), adds a learned temporal position, runs a small Transformer over
the window of frame tokens and decodes every frame of the window (seq2seq).
A frame with fewer than two visible joints has no usable 2D: its token is a
learned *missing-frame* token, so the frame is inferred from its neighbours.

Every frame of a window is expressed in one scale, the median box side of
the window's frames (dropping a hand or a foot then does not rescale the rest
of the pose), centred on its own box (one box centre per window was measured
3.6 mm worse on held-out clips, see ``benchmarks/results/lift_log.md``).

[`lift_frames`][] runs a trained lifter over a sequence of any length (one
frame included) with non-overlapping windows, the last one aligned to the
end (its overlap averaged).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from unihpr._validate import (
    check_int,
    check_keys,
    check_mask,
    check_real,
    check_shape,
    check_tensor,
)
from unihpr.geometry import bbox_from_keypoints
from unihpr.models import hub
from unihpr.models.pose_encoder import PoseEncoder

__all__ = ["TemporalLifter", "TemporalLifterConfig", "lift_frames"]

_OWNER = "TemporalLifterConfig"


@dataclass(frozen=True)
class TemporalLifterConfig:
    """Architecture of a [`TemporalLifter`][] (JSON-serialisable, every field checked).

    Attributes:
        name: Model name (written to the model card).
        num_joints: J.
        root_joint: Root joint; outputs are relative to it.
        window: Frames per window T (1: a single-frame lifter).
        pose_width: Width of the per-frame pose encoder.
        pose_depth: Layers of the per-frame pose encoder.
        pose_heads: Attention heads of the per-frame pose encoder.
        width: Frame-token width (the temporal Transformer's).
        temporal_depth: Layers of the temporal Transformer (0 with ``window=1``).
        temporal_heads: Attention heads of the temporal Transformer.
        decoder_width: Hidden width of the per-frame 3D decoder.
        dropout: Dropout in both Transformers.
    """

    name: str = "unihpr-temporal"
    num_joints: int = 15
    root_joint: int = 0
    window: int = 27
    pose_width: int = 64
    pose_depth: int = 2
    pose_heads: int = 4
    width: int = 128
    temporal_depth: int = 2
    temporal_heads: int = 4
    decoder_width: int = 256
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"{_OWNER}.name must be a str, got {type(self.name).__name__}")
        if not 0 < len(self.name) <= 200:
            raise ValueError(f"{_OWNER}.name must be 1 to 200 characters, got {self.name!r}")
        check_int("num_joints", self.num_joints, low=1, high=1024, owner=_OWNER)
        check_int("root_joint", self.root_joint, low=0, high=self.num_joints - 1, owner=_OWNER)
        check_int("window", self.window, low=1, high=1024, owner=_OWNER)
        for name in ("pose_width", "width", "decoder_width"):
            check_int(name, getattr(self, name), low=1, high=8192, owner=_OWNER)
        for name in ("pose_depth", "temporal_depth"):
            check_int(name, getattr(self, name), low=0, high=64, owner=_OWNER)
        for name, w in (("pose_heads", "pose_width"), ("temporal_heads", "width")):
            heads = check_int(name, getattr(self, name), low=1, high=256, owner=_OWNER)
            if getattr(self, w) % heads:
                raise ValueError(f"{_OWNER}.{w}={getattr(self, w)} is not divisible by {name}")
        check_real("dropout", self.dropout, low=0.0, high=1.0, high_open=True, owner=_OWNER)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemporalLifterConfig:
        """Inverse of [`to_dict`][TemporalLifterConfig.to_dict]; unknown keys raise."""
        return cls(**check_keys("config", data, {f.name for f in fields(cls)}, owner=_OWNER))


def window_boxes(pose2d: Tensor, visible: Tensor) -> Tensor:
    """Boxes (B, T, 4): each frame's own box centre, the median side of the
    window's frames whose visible keypoints have extent.

    One side per window: hiding a hand or a foot in one frame does not rescale
    the rest of its pose.

    Args:
        pose2d: (B, T, J, 2) pixels.
        visible: (B, T, J) bool.
    """
    box = bbox_from_keypoints(pose2d, visible)
    side = (box[..., 2:] - box[..., :2]).amax(-1)  # (B, T)
    ok = side > 0
    nan = torch.full_like(side, float("nan"))
    med = torch.where(ok, side, nan).nanmedian(dim=1).values
    med = torch.where(torch.isnan(med), torch.ones_like(med), med)  # no frame with extent
    centre = 0.5 * (box[..., :2] + box[..., 2:])
    half = 0.5 * med[:, None, None].expand_as(centre)
    return torch.cat([centre - half, centre + half], dim=-1)


class TemporalLifter(nn.Module):
    """Per-frame UniHPR 2D pose tokens -> temporal Transformer -> 3D of every frame.

    Args:
        config: Architecture.
    """

    config_class = TemporalLifterConfig

    def __init__(self, config: TemporalLifterConfig) -> None:
        super().__init__()
        if not isinstance(config, TemporalLifterConfig):
            raise TypeError(f"config must be a TemporalLifterConfig, got {type(config).__name__}")
        self.config = c = config
        self.frame_encoder = PoseEncoder(
            c.num_joints, dims=2, embed_dim=c.width, width=c.pose_width, depth=c.pose_depth,
            num_heads=c.pose_heads, mlp_ratio=2.0, dropout=c.dropout, root_joint=c.root_joint,
            attend_to_masked=True, readout="tokens", bbox_features="shape",
        )  # fmt: skip
        self.frame_encoder.validate = False  # checked here, once per call
        self.missing_token = nn.Parameter(torch.zeros(1, 1, c.width))
        self.time_embed = nn.Parameter(torch.zeros(1, c.window, c.width))
        nn.init.trunc_normal_(self.missing_token, std=0.02)
        nn.init.trunc_normal_(self.time_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(
            c.width, c.temporal_heads, dim_feedforward=2 * c.width, dropout=c.dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )  # fmt: skip
        self.temporal = nn.TransformerEncoder(
            layer, num_layers=c.temporal_depth, enable_nested_tensor=False
        )
        self.decoder = nn.Sequential(
            nn.LayerNorm(c.width), nn.Linear(c.width, c.decoder_width), nn.GELU(),
            nn.Linear(c.decoder_width, c.decoder_width), nn.GELU(),
            nn.Linear(c.decoder_width, c.num_joints * 3),
        )  # fmt: skip

    def forward(self, pose2d: Tensor, visible: Tensor) -> Tensor:
        """Lift windows of 2D keypoints.

        Args:
            pose2d: (B, T, J, 2) pixels (any frame: only positions within the window's
                scale matter), T <= ``config.window``; invisible joints may hold anything.
            visible: (B, T, J) bool, True = visible. A frame with fewer than two
                visible joints is inferred from its neighbours.

        Returns:
            (B, T, J, 3) root-relative metres, every frame of every window.
        """
        c = self.config
        pose2d = check_tensor("pose2d", pose2d, floating=True, owner="TemporalLifter")
        check_shape("pose2d", pose2d, (None, None, c.num_joints, 2), "(B, T, J, 2)")
        check_tensor("visible", visible, owner="TemporalLifter")
        check_mask("visible", visible, tuple(pose2d.shape[:3]), "(B, T, J)", owner="TemporalLifter")
        b, t, j = visible.shape
        if not 1 <= t <= c.window:
            raise ValueError(f"windows must have 1 to {c.window} frames, got {t}")
        pose2d = torch.where(visible[..., None], pose2d, torch.zeros_like(pose2d))
        if not bool(torch.isfinite(pose2d).all()):
            raise ValueError("pose2d has NaN or infinite coordinates at visible joints")
        boxes = window_boxes(pose2d, visible).flatten(0, 1)
        emb = self.frame_encoder(
            pose2d.flatten(0, 1), bbox=boxes, mask=visible.flatten(0, 1), normalize=False
        ).view(b, t, -1)
        present = visible.sum(-1) >= 2
        tokens = torch.where(present[..., None], emb, self.missing_token.to(emb.dtype))
        x = self.temporal(tokens + self.time_embed[:, :t])
        out = self.decoder(x).view(b, t, j, 3)
        return out - out[:, :, c.root_joint : c.root_joint + 1]

    def model_card(self) -> str:
        """A short README for ``save_pretrained`` (shipped folders carry a fuller one)."""
        return f"# {self.config.name}\n\nA `unihpr.models.temporal.TemporalLifter`.\n"

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (see ``unihpr.models.hub``)."""
        return hub.save_pretrained(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: Any = "cpu") -> TemporalLifter:
        """Load a folder written by [`save_pretrained`][TemporalLifter.save_pretrained]."""
        folder = Path(directory)
        if not (folder / hub.CONFIG_NAME).is_file():
            raise hub.PretrainedNotFoundError(f"no {hub.CONFIG_NAME} in {folder}")
        return hub.load_model(  # checked before allocating; in eval mode
            cls, folder / hub.CONFIG_NAME, folder / hub.WEIGHTS_NAME, map_location=map_location
        )


def _starts(length: int, window: int, stride: int) -> list[int]:
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    return starts if starts[-1] == length - window else [*starts, length - window]


@torch.no_grad()
def lift_frames(
    model: TemporalLifter,
    pose2d: Tensor,
    visible: Tensor,
    *,
    stride: int | None = None,
    batch_windows: int = 256,
) -> Tensor:
    """Lift a sequence with a trained [`TemporalLifter`][]: one 3D pose per frame.

    Windows of ``model.config.window`` frames every ``stride`` frames, the last one
    aligned to the sequence's end. A frame in several windows gets their average,
    weighted by a tent over the window (frames near a window's edge see less
    context and count less), so overlapping windows also smooth the seams between
    windows; ``stride = window`` is the fastest. A sequence shorter than a window
    is padded with missing frames (as in training).

    Args:
        model: The lifter (run in eval mode; its mode is restored).
        pose2d: (T, J, 2) keypoints in pixels, e.g. the canonical frame of
            ``unihpr.inference``; invisible joints may be NaN.
        visible: (T, J) bool; frames may have no visible joint (they are inferred
            from their neighbours).
        stride: Frames between window starts, 1 to ``window`` (default ``window``).
        batch_windows: Windows per forward pass.

    Returns:
        (T, J, 3) root-relative metres, float32 on ``pose2d``'s device.
    """
    if not isinstance(model, TemporalLifter):
        raise TypeError(f"model must be a TemporalLifter, got {type(model).__name__}")
    c = model.config
    pose2d = check_tensor("pose2d", pose2d, floating=True, owner="lift_frames")
    check_shape("pose2d", pose2d, (None, c.num_joints, 2), f"(T, J={c.num_joints}, 2)")
    check_tensor("visible", visible, owner="lift_frames")
    check_mask("visible", visible, tuple(pose2d.shape[:2]), "(T, J)", owner="lift_frames")
    check_int("batch_windows", batch_windows, low=1, owner="lift_frames")
    w = c.window
    stride = (
        w if stride is None else check_int("stride", stride, low=1, high=w, owner="lift_frames")
    )
    length = pose2d.shape[0]
    if length == 0:
        raise ValueError("lift_frames: pose2d has no frames")
    param = next(model.parameters())
    p = torch.where(visible[..., None], pose2d, torch.zeros_like(pose2d)).to(param)
    v = visible.to(param.device)
    if length < w:  # pad with missing frames
        p = torch.cat([p, p.new_zeros(w - length, *p.shape[1:])])
        v = torch.cat([v, v.new_zeros(w - length, v.shape[1])])
    starts = _starts(p.shape[0], w, stride)
    idx = torch.tensor(starts)[:, None] + torch.arange(w)
    was_training = model.training
    model.eval()
    try:
        outs = [model(p[i], v[i]) for i in idx.split(batch_windows)]
    finally:
        model.train(was_training)
    out = torch.cat(outs).float()
    k = torch.arange(w, device=out.device)
    tent = torch.minimum(k + 1, w - k).float().repeat(len(starts))
    flat = idx.flatten().to(out.device)
    acc = out.new_zeros(p.shape[0], c.num_joints, 3)
    acc.index_add_(0, flat, out.flatten(0, 1) * tent[:, None, None])
    total = torch.zeros(p.shape[0], device=out.device).index_add_(0, flat, tent)
    return (acc / total[:, None, None])[:length].to(pose2d.device)
