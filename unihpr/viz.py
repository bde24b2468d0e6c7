"""Figures: predicted vs. true skeletons in 2D and 3D (matplotlib, ``demo`` extra)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from unihpr._optional import pyplot
from unihpr._validate import check_choice
from unihpr.data.skeletons import Skeleton, get_skeleton

__all__ = ["plot_pose_comparison"]

MAX_SAMPLES = 16
TRUE_COLOUR, PRED_COLOUR = "k", "tab:red"
# (horizontal, depth, vertical) axes of a 3D pose for each up-axis convention
_AXES = {
    "-y": ((0, 1), (2, 1), (1, -1)),
    "y": ((0, 1), (2, -1), (1, 1)),
    "z": ((0, 1), (1, 1), (2, 1)),
}


def _batch(x, name: str, dims: int, num_joints: int) -> np.ndarray | None:
    """(J, dims) or (N, J, dims) -> (N, J, dims) float64."""
    if x is None:
        return None
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1:] != (num_joints, dims) or not 1 <= a.shape[0] <= MAX_SAMPLES:
        raise ValueError(
            f"{name} must have shape ({num_joints}, {dims}) or (N, {num_joints}, {dims}) "
            f"with 1 <= N <= {MAX_SAMPLES}, got {a.shape}"
        )
    a = a.astype(np.float64)
    if np.isinf(a).any():
        raise ValueError(f"{name} contains infinite values (NaN marks a missing joint)")
    empty = np.flatnonzero(np.isnan(a).any(axis=-1).all(axis=-1))
    if empty.size:
        raise ValueError(f"{name}: sample {int(empty[0])} has only NaN (missing) joints")
    return a


def _images(image, n: int) -> np.ndarray | None:
    """(3, H, W), (H, W, 3) or a batch of either -> (N, H, W, 3)."""
    if image is None:
        return None
    img = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if img.ndim == 3:
        img = img[None]
    if img.ndim == 4 and img.shape[1] == 3 and img.shape[-1] != 3:
        img = img.transpose(0, 2, 3, 1)
    if img.ndim != 4 or img.shape[-1] != 3 or img.shape[0] not in (1, n):
        raise ValueError(
            f"image must be (3, H, W), (H, W, 3) or a batch of {n} of them, got {img.shape}"
        )
    return np.broadcast_to(img, (n, *img.shape[1:]))


def _side_colour(skeleton: Skeleton, joint: int) -> str:
    name = skeleton.joint_names[joint]
    return (
        "tab:blue" if name.startswith("left") else "tab:red" if name.startswith("right") else "0.3"
    )


def _draw(ax, pts: np.ndarray, skeleton: Skeleton, colour: str | None, label: str | None) -> None:
    """Bones of one pose on a 2D or 3D axis; ``colour=None`` colours by body side."""
    for k, (c, p) in enumerate(skeleton.bones):
        ax.plot(*pts[[c, p]].T, color=colour or _side_colour(skeleton, c), lw=2,
                label=label if k == 0 else None)  # fmt: skip
    ax.scatter(*pts.T, s=8, c="k" if colour is None else colour, zorder=3)


_VIEW_COLUMNS = {"3d": [0, 1, 2], "front": [0, 2], "side": [1, 2]}


def _plot_xyz(pose: np.ndarray, up_axis: str) -> np.ndarray:
    """(J, 3) pose in plot coordinates (horizontal, depth, up)."""
    (h, hs), (d, ds), (u, us) = _AXES[up_axis]
    return np.stack([pose[:, h] * hs, pose[:, d] * ds, pose[:, u] * us], axis=-1)


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
    view: str = "3d",
    overlay: bool = False,
    labels: Sequence[str] | None = None,
    error_scale: float = 1000.0,
    error_unit: str = "mm",
) -> Path:
    """Draw true and predicted skeletons and save a PNG: one sample or a row of them.

    Poses are (J, C) for one sample or (N, J, C) for N <= 16 samples; a NaN
    joint is missing (it and its bones are not drawn). With one
    sample the panels stand side by side; with several, each column is a sample
    and each row a kind of panel. When both ``pred3d`` and ``true3d`` are given,
    each sample's 3D panel is titled with its MPJPE (``error_scale`` times the
    mean joint distance, in ``error_unit``: metres to mm by default).

    Args:
        path: Output PNG path.
        skeleton: Layout (name or [`Skeleton`][unihpr.data.Skeleton]) giving the bones.
        pred3d, true3d: (J, 3) or (N, J, 3) poses (camera frame: y down by default).
        pred2d, true2d: (J, 2) or (N, J, 2) pixel poses.
        image: (3, H, W) in [0, 1] or (H, W, 3), or a batch (N, ...) of them: drawn
            under the 2D poses, or as an "input" panel when no 2D pose is given.
        title: Figure title.
        up_axis: Which 3D axis points up in the plot (``"-y"`` for camera
            frames, ``"y"`` or ``"z"`` for world frames).
        view: ``"3d"`` (perspective 3D axes), ``"front"`` (x against up) or
            ``"side"`` (depth against up), the last two flat and easier to compare.
        overlay: Draw prediction (red) over truth (black) in one panel per kind
            instead of one panel each (coloured by body side).
        labels: One caption per sample (e.g. clip and camera), shown in its panel titles.
        error_scale: Factor from the poses' units to ``error_unit``.
        error_unit: Unit of the per-sample error in the titles.

    Returns:
        The written path.

    Examples:
        >>> import numpy as np
        >>> from unihpr.viz import plot_pose_comparison
        >>> true = np.random.default_rng(0).normal(scale=0.3, size=(3, 17, 3))
        >>> path = plot_pose_comparison("poses.png", "h36m17", pred3d=true + 0.02,
        ...                             true3d=true, overlay=True, view="front",
        ...                             labels=["walk", "run", "jump"])  # doctest: +SKIP
    """
    plt = pyplot()
    sk = get_skeleton(skeleton)
    j = sk.num_joints
    check_choice("up_axis", up_axis, _AXES)
    check_choice("view", view, _VIEW_COLUMNS)
    poses = {
        "pred2d": _batch(pred2d, "pred2d", 2, j),
        "true2d": _batch(true2d, "true2d", 2, j),
        "pred3d": _batch(pred3d, "pred3d", 3, j),
        "true3d": _batch(true3d, "true3d", 3, j),
    }
    given = {k: v for k, v in poses.items() if v is not None}
    if not given:
        raise ValueError("give at least one of pred3d, true3d, pred2d, true2d")
    sizes = {len(v) for v in given.values()}
    if len(sizes) != 1:
        raise ValueError(f"poses must hold the same number of samples, got {sorted(sizes)}")
    n = sizes.pop()
    imgs = _images(image, n)
    if labels is not None and (isinstance(labels, str) or len(labels) != n):
        raise ValueError(f"labels must be a sequence of {n} strings, got {labels!r}")
    errors = None
    if poses["pred3d"] is not None and poses["true3d"] is not None:
        dist = np.linalg.norm(poses["pred3d"] - poses["true3d"], axis=-1)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a sample without joints: NaN
            errors = error_scale * np.nanmean(dist, axis=-1)

    # panels per sample: (kind, [(pose key, colour, legend label)])
    panels: list[tuple[int, list[tuple[str, str | None, str | None]]]] = []
    for dims in (2, 3):
        keys = [k for k in (f"true{dims}d", f"pred{dims}d") if poses[k] is not None]
        if overlay and keys:
            colours = {"true": TRUE_COLOUR, "pred": PRED_COLOUR}
            panels.append((dims, [(k, colours[k[:4]], k[:4]) for k in keys]))
        else:
            panels.extend((dims, [(k, None, None)]) for k in keys)
    if imgs is not None and not any(d == 2 for d, _ in panels):
        panels.insert(0, (2, []))  # the input image on its own

    # 3D poses of each sample share one centre (their joint mean), so an offset
    # between prediction and truth stays visible; all panels share one scale.
    keys3 = [k for k in ("true3d", "pred3d") if poses[k] is not None]
    xyz = {k: np.stack([_plot_xyz(pose, up_axis) for pose in poses[k]]) for k in keys3}
    if keys3:
        both = np.concatenate([xyz[k] for k in keys3], axis=1)
        known = np.isfinite(both)
        centres = np.where(known, both, 0).sum(1, keepdims=True) / np.maximum(
            known.sum(1, keepdims=True), 1
        )
        xyz = {k: v - centres for k, v in xyz.items()}
        extent = [np.abs(v[np.isfinite(v)]).max(initial=0.0) for v in xyz.values()]
        lim = max(float(max(extent)), 1e-6)

    rows, cols = (1, len(panels)) if n == 1 else (len(panels), n)
    fig = plt.figure(figsize=(3.2 * cols, 3.4 * rows))
    for i in range(n):
        for p, (dims, layers) in enumerate(panels):
            index = (p if n == 1 else p * n + i) + 1
            flat = dims == 2 or view != "3d"
            ax = fig.add_subplot(rows, cols, index, **({} if flat else {"projection": "3d"}))
            if dims == 2 and imgs is not None:
                ax.imshow(np.clip(imgs[i], 0, 1))
            for key, colour, legend in layers:
                pts = poses[key][i] if dims == 2 else xyz[key][i][:, _VIEW_COLUMNS[view]]
                _draw(ax, pts, sk, colour, legend)
            if dims == 2:
                if imgs is None:
                    ax.invert_yaxis()
                ax.set_aspect("equal")
            elif view == "3d":
                for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
                    setter(-lim, lim)
                ax.view_init(elev=15, azim=-70)
            else:
                ax.set_xlim(-lim, lim)
                ax.set_ylim(-lim, lim)
                ax.set_aspect("equal")
            parts = []
            if labels is not None and p == 0:
                parts.append(str(labels[i]))
            if not layers:
                parts.append("input")
            elif overlay:
                parts.append(f"{dims}D: true (black), pred (red)" if len(layers) > 1
                             else f"{dims}D {layers[0][0][:4]}")  # fmt: skip
            else:
                parts.append(f"{dims}D {layers[0][0][:4]}")
            if dims == 3 and errors is not None and any(k.startswith("pred") for k, _, _ in layers):
                parts.append(f"MPJPE {errors[i]:.0f} {error_unit}")
            ax.set_title("\n".join(parts), fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
