"""Geometry shared by the data and the models: the one box rule and the canonical pose frames.

2D: poses are expressed in their bounding box: centre at the origin, divided by
half the box's longer side, so keypoints inside the box lie in [-1, 1] and the
aspect ratio is preserved (a per-axis division would distort limb directions).

3D: poses are re-centred on the root joint (when it is visible) and divided by
their RMS joint distance from the root, so the encoder sees shape, not size;
the size (in metres) is kept in the bounding-box token instead of being lost.

Masked (invisible) joints are set to 0 *before* any arithmetic so that NaN or
garbage coordinates of invalid joints cannot leak into valid outputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "bbox_from_keypoints",
    "denormalize_pose2d",
    "normalize_pose2d",
    "normalize_pose3d",
]

_EPS = 1e-6


def _visible(pose: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return torch.ones(pose.shape[:-1], dtype=torch.bool, device=pose.device)
    return mask


def bbox_from_keypoints(pose2d: Tensor, mask: Tensor | None = None) -> Tensor:
    """Tight box around the visible keypoints: the one box rule of the project.

    Training data (virtual cameras, mirrored samples, the rendered mocap) and
    inference (`unihpr.lift`) all derive the 2D box with it,
    so a model never sees a box a user could not compute from keypoints.

    Args:
        pose2d: Keypoints (..., J, 2) in pixels, e.g. (B, J, 2) or (J, 2).
        mask: Visible joints (..., J) bool; ``None`` = all visible.

    Returns:
        Boxes (..., 4) as x0, y0, x1, y1; all zeros for a pose without visible joints.
    """
    vis = _visible(pose2d, mask)[..., None]
    big = torch.finfo(pose2d.dtype).max
    lo = torch.where(vis, pose2d, torch.full_like(pose2d, big)).amin(dim=-2)
    hi = torch.where(vis, pose2d, torch.full_like(pose2d, -big)).amax(dim=-2)
    any_vis = vis.any(dim=-2)
    lo = torch.where(any_vis, lo, torch.zeros_like(lo))
    hi = torch.where(any_vis, hi, torch.zeros_like(hi))
    return torch.cat([lo, hi], dim=-1)


def _centre_and_half(bbox: Tensor) -> tuple[Tensor, Tensor]:
    centre = 0.5 * (bbox[:, :2] + bbox[:, 2:])
    size = (bbox[:, 2:] - bbox[:, :2]).amax(dim=-1)
    return centre, (0.5 * size).clamp_min(_EPS)


def normalize_pose2d(
    pose2d: Tensor, bbox: Tensor | None = None, mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Express pixel keypoints in their bounding box frame.

    Args:
        pose2d: Keypoints (B, J, 2) in pixels.
        bbox: Boxes (B, 4) x0, y0, x1, y1 in the same pixels; computed from the
            visible keypoints when ``None``.
        mask: Visible joints (B, J) bool; invisible joints come back as 0.

    Returns:
        ``(normalised (B, J, 2), bbox (B, 4))``; keypoints inside the box lie in [-1, 1].
    """
    vis = _visible(pose2d, mask)[..., None]
    pose2d = torch.where(vis, pose2d, torch.zeros_like(pose2d))
    if bbox is None:
        bbox = bbox_from_keypoints(pose2d, mask)
    centre, half = _centre_and_half(bbox)
    out = (pose2d - centre[:, None]) / half[:, None, None]
    return torch.where(vis, out, torch.zeros_like(out)), bbox


def denormalize_pose2d(pose2d: Tensor, bbox: Tensor) -> Tensor:
    """Inverse of [`normalize_pose2d`][]: box-frame keypoints (B, J, 2) -> pixels (B, J, 2)."""
    centre, half = _centre_and_half(bbox)
    return pose2d * half[:, None, None] + centre[:, None]


def normalize_pose3d(
    pose3d: Tensor, mask: Tensor | None = None, root: int = 0
) -> tuple[Tensor, Tensor]:
    """Root-relative, scale-normalised 3D pose.

    Args:
        pose3d: Joints (B, J, 3) in metres.
        mask: Visible joints (B, J) bool; invisible joints come back as 0 and do
            not enter the scale.
        root: Root joint index; the pose is re-centred on it when it is visible
            (inputs are expected root-relative already, so this is a no-op then).

    Returns:
        ``(normalised (B, J, 3), scale (B,))`` with ``pose = normalised * scale``
        (for a visible root); ``scale`` is the RMS distance of the visible joints
        from the root, in metres.
    """
    vis = _visible(pose3d, mask)
    vis3 = vis[..., None]
    pose3d = torch.where(vis3, pose3d, torch.zeros_like(pose3d))
    root_pos = pose3d[:, root] * vis[:, root, None].to(pose3d.dtype)
    rel = torch.where(vis3, pose3d - root_pos[:, None], torch.zeros_like(pose3d))
    count = vis.sum(dim=1).clamp_min(1).to(pose3d.dtype)
    # clamp before sqrt: sqrt'(0) is infinite and would turn a zero gradient into NaN
    scale = ((rel**2).sum(dim=(1, 2)) / count).clamp_min(_EPS**2).sqrt()
    return rel / scale[:, None, None], scale
