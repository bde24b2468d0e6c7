"""Figures: predicted vs. true skeletons in 2D and 3D (matplotlib, ``demo`` extra)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from unihpr._optional import require
from unihpr.data.skeletons import Skeleton, get_skeleton

__all__ = ["plot_pose_comparison"]


def _np(x, name: str, dims: int, num_joints: int) -> np.ndarray | None:
    if x is None:
        return None
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.shape != (num_joints, dims):
        raise ValueError(f"{name} must have shape ({num_joints}, {dims}), got {a.shape}")
    return a.astype(np.float64)


def _side_colour(skeleton: Skeleton, joint: int) -> str:
    name = skeleton.joint_names[joint]
    return (
        "tab:blue" if name.startswith("left") else "tab:red" if name.startswith("right") else "0.3"
    )


def plot_pose_comparison(
    path: str | os.PathLike,
    skeleton: str | Skeleton,
    pred3d=None,
    true3d=None,
    pred2d=None,
    true2d=None,
    *,
    image=None,
    title: str | None = None,
    up_axis: str = "-y",
) -> Path:
    """Draw true and predicted skeletons side by side and save a PNG.

    Args:
        path: Output PNG path.
        skeleton: Layout (name or [`Skeleton`][]) giving the bones.
        pred3d, true3d: (J, 3) poses (camera frame: y down by default).
        pred2d, true2d: (J, 2) pixel poses.
        image: Optional (3, H, W) in [0, 1] or (H, W, 3) drawn under the 2D poses.
        title: Figure title.
        up_axis: Which 3D axis points up in the plot (``"-y"`` for camera
            frames, ``"y"`` or ``"z"`` for world frames).

    Returns:
        The written path.
    """
    require("matplotlib")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    sk = get_skeleton(skeleton)
    j = sk.num_joints
    panels = [
        (f"{kind} {label}", arr, dims)
        for dims, pair in ((2, (("true", true2d), ("pred", pred2d))),
                           (3, (("true", true3d), ("pred", pred3d))))
        for label, arr in pair
        for kind in [f"{dims}D"]
        if arr is not None
    ]  # fmt: skip
    if not panels:
        raise ValueError("give at least one of pred3d, true3d, pred2d, true2d")
    if up_axis not in ("-y", "y", "z"):
        raise ValueError(f"up_axis must be '-y', 'y' or 'z', got {up_axis!r}")
    img = None
    if image is not None:
        img = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if img.ndim == 3 and img.shape[0] == 3:
            img = img.transpose(1, 2, 0)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"image must be (3, H, W) or (H, W, 3), got {img.shape}")

    fig = plt.figure(figsize=(3.2 * len(panels), 3.4))
    lim3 = [_np(a, n, 3, j) for n, a in (("pred3d", pred3d), ("true3d", true3d))]
    lim3 = [a for a in lim3 if a is not None]
    for k, (label, arr, dims) in enumerate(panels):
        pts = _np(arr, label.replace(" ", "_"), dims, j)
        if dims == 2:
            ax = fig.add_subplot(1, len(panels), k + 1)
            if img is not None:
                ax.imshow(np.clip(img, 0, 1))
            for c, p in sk.bones:
                ax.plot(*pts[[c, p]].T, color=_side_colour(sk, c), lw=2)
            ax.scatter(*pts.T, s=8, c="k", zorder=3)
            if img is None:
                ax.invert_yaxis()
            ax.set_aspect("equal")
        else:
            ax = fig.add_subplot(1, len(panels), k + 1, projection="3d")
            # reorder to (x, depth, up) so that the plot's vertical is the body's up
            x, y, z = pts.T
            xyz = {"-y": (x, z, -y), "y": (x, -z, y), "z": (x, y, z)}[up_axis]
            for c, p in sk.bones:
                ax.plot(*(v[[c, p]] for v in xyz), color=_side_colour(sk, c), lw=2)
            allpts = np.concatenate(lim3)
            centre = allpts.mean(0)
            r = max(float(np.abs(allpts - centre).max()), 1e-6)
            ax.set_xlim(-r, r)
            ax.set_ylim(-r, r)
            ax.set_zlim(-r, r)
            ax.view_init(elev=15, azim=-70)
            # shift to the common centre
            for line in ax.lines:
                xs, ys, zs = line.get_data_3d()
                c3 = {"-y": (centre[0], centre[2], -centre[1]), "y": (centre[0], -centre[2],
                      centre[1]), "z": tuple(centre)}[up_axis]  # fmt: skip
                line.set_data_3d(xs - c3[0], ys - c3[1], zs - c3[2])
        ax.set_title(label)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
