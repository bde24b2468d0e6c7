"""Figures of the demo and of ``benchmarks/bench_lifting.py`` (matplotlib, ``demo`` extra).

* [`plot_curves`][]: the paper's Fig. 4 (mean cross-modal cosine similarity
  over training), one line per run with a shaded spread, one panel per stage,
  and a caption under the axes;
* [`plot_examples`][]: held-out examples: the input crop with its 2D
  keypoints, then the image -> 3D and the 2D -> 3D predictions over the
  ground truth, each titled with its clip, view, frame and error.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unihpr._optional import pyplot
from unihpr.data.skeletons import Skeleton


@dataclass
class Curve:
    """One line of [`plot_curves`][]: ``y`` over ``x`` with a band ``[low, high]``."""

    x: Sequence[float]
    y: Sequence[float]
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None


def plot_curves(
    panels: Mapping[str, Mapping[str, Curve]],
    path: str | Path,
    *,
    ylabel: str = "mean cross-modal cosine similarity",
    xlabel: str = "iteration",
    caption: str = "",
) -> Path:
    """Lines with shaded bands, one panel per entry of ``panels``.

    Args:
        panels: ``{panel title: {line label: Curve}}``.
        path: Output PNG.
        ylabel, xlabel: Axis labels.
        caption: Text printed under the panels (wrapped).

    Returns:
        The written path.
    """
    plt = pyplot()
    n = max(len(panels), 1)
    width = max(4.6 * n, 7.0)
    # The caption gets its own strip below the panels (8 pt: ~14 characters per
    # inch, ~0.16 inch per line), so it never squeezes the axes.
    wrapped = "\n".join(textwrap.wrap(caption, width=int(14 * width))) if caption else ""
    caption_h = 0.16 * (wrapped.count("\n") + 1) + 0.15 if caption else 0.0
    height = 3.6 + caption_h
    fig, axes = plt.subplots(1, n, figsize=(width, height), squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels.items()):
        for label, c in lines.items():
            (line,) = ax.plot(c.x, c.y, label=label, lw=1.6)
            if c.low is not None and c.high is not None:
                ax.fill_between(c.x, c.low, c.high, color=line.get_color(), alpha=0.2, lw=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if caption:
        fig.text(0.01, 0.01, wrapped, fontsize=8, va="bottom", ha="left")
    fig.tight_layout(rect=(0, caption_h / height, 1, 1))
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _draw(ax, pose: np.ndarray, bones, colour: str, lw: float = 1.6, ls: str = "-") -> None:
    for a, b in bones:
        # camera frame: y points down, so flip it for an upright figure
        ax.plot([pose[a, 0], pose[b, 0]], [-pose[a, 1], -pose[b, 1]], colour, lw=lw, ls=ls)


def plot_examples(
    examples: Sequence[Mapping[str, Any]],
    skeleton: Skeleton,
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Held-out examples, one column each.

    Args:
        examples: Dicts with ``image`` (3, H, W) in [0, 1], ``pose2d`` (J, 2) crop
            pixels, ``true3d`` (J, 3) camera-frame metres, and the predictions
            ``{"image": (J, 3), "pose2d": (J, 3)}`` under ``pred3d`` with their
            errors (mm) under ``error``, plus ``clip``, ``view`` and ``frame``.
        skeleton: Joint layout (bones).
        path: Output PNG.
        title: Figure title.

    Returns:
        The written path.
    """
    plt = pyplot()
    n = len(examples)
    if n == 0:
        raise ValueError("examples is empty")
    sources = [s for s in ("image", "pose2d") if s in examples[0]["pred3d"]]
    rows = 1 + len(sources)
    fig, axes = plt.subplots(rows, n, figsize=(2.3 * n, 2.45 * rows + 0.5), squeeze=False)
    names = {"image": "image -> 3D", "pose2d": "2D -> 3D"}
    for i, ex in enumerate(examples):
        ax = axes[0, i]
        img = np.asarray(ex["image"]).transpose(1, 2, 0)
        ax.imshow(np.clip(img, 0, 1))
        p2 = np.asarray(ex["pose2d"])
        for a, b in skeleton.bones:
            ax.plot(p2[[a, b], 0], p2[[a, b], 1], "w", lw=0.8, alpha=0.8)
        ax.set_title(f"{ex['clip']} view {ex['view']}\nframe {ex['frame']}", fontsize=8)
        true = np.asarray(ex["true3d"])
        for r, src in enumerate(sources, start=1):
            ax = axes[r, i]
            _draw(ax, true, skeleton.bones, "k", lw=2.0)
            _draw(ax, np.asarray(ex["pred3d"][src]), skeleton.bones, "tab:red", ls="--")
            ax.set_title(f"{names[src]}: {ex['error'][src]:.0f} mm", fontsize=8)
            ax.set_aspect("equal")
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(
        (title + "\n" if title else "")
        + "top: input crop (white: its 2D keypoints); below: ground truth (black) vs prediction "
        "(red, dashed), camera view, MPJPE per sample",
        fontsize=8,
    )
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
