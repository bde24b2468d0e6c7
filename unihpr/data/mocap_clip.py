"""What the motion-capture file readers share: the clip, Euler angles, units, axes.

[`read_bvh`][unihpr.data.bvh.read_bvh] and
[`read_amc`][unihpr.data.asf_amc.read_amc] both return a [`MocapClip`][]: world
joint positions ``(T, J, 3)`` in **metres**, **y up**, the file's own joint
layout as a [`Skeleton`][unihpr.data.skeletons.Skeleton] and the frame rate.
y up is the convention of the bundled humanoid data
([`HumanoidMocap`][unihpr.data.HumanoidMocap]) and of BVH and CMU's ASF/AMC;
files written z up are converted with ``up_axis="z"``.

Lengths: a file stores numbers in some unit; ``unit`` says which. It is a name
of ``LENGTH_UNITS`` (metres per file unit), a number (metres per file unit)
or ``"auto"``, which guesses from the size of the skeleton: the longest path
between two joints through the skeleton (fingertip to fingertip, hand to toe)
is 1.5–2.8 m for an adult, and the unit whose scaling brings it closest to 2 m
(on a log scale) is chosen. The candidate units differ by factors of at least
2.2, so adults of any stature are told apart; pass the unit explicitly for
children, animals or rigs with long props.

Size: a file may give at most [`MAX_JOINT_FRAMES`][] joint positions (frames x
joints), so that no file of a few kilobytes (thousands of channel-less joints,
thousands of one-value frames) makes a reader allocate gigabytes; the forward
kinematics run a chunk of frames at a time, their working memory a few tens of
MB whatever the file.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unihpr._validate import check_choice, check_real
from unihpr.data.mapping import JointSource, map_joints
from unihpr.data.skeletons import Skeleton, get_skeleton

__all__ = [
    "LENGTH_UNITS",
    "MAX_JOINT_FRAMES",
    "UP_AXES",
    "MocapClip",
    "euler_to_matrix",
    "guess_length_unit",
    "resample_motion",
    "resolve_length_unit",
    "to_y_up",
    "tree_diameter",
]

LENGTH_UNITS: dict[str, float] = {
    "m": 1.0,
    "cm": 0.01,
    "mm": 0.001,
    "inch": 0.0254,
    "cmu": 0.0254 / 0.45,
}
"""Metres per file unit. ``"cmu"`` is the unit of the CMU motion-capture database:
its ASF files store inches times ``:units length 0.45``, and the popular BVH
conversions of it keep those numbers, so one unit is 0.0254 / 0.45 m."""

# The skeleton "diameter" (longest joint-to-joint path) that unit="auto" aims at.
_TYPICAL_DIAMETER_M = 2.0

MAX_JOINT_FRAMES = 1 << 22
"""The most joint positions (frames x joints) a motion file may give: 4,194,304,
96 MiB of float64, e.g. a 40-joint rig for 29 minutes at 60 fps. A longer take
is refused before its positions are computed; split it into several files."""
# Joint positions per step of the forward kinematics: its working memory (the
# rotations of every joint for a chunk of frames, 100 bytes each) stays 25 MB.
_CHUNK = 1 << 18

_AXES = {"X": 0, "Y": 1, "Z": 2}
#: The up axes a motion file may have; readers return y up.
UP_AXES = ("y", "z")


def euler_to_matrix(angles: np.ndarray, axes: str) -> np.ndarray:
    """Rotation matrices from Euler angles about the axes of ``axes``, intrinsic.

    ``R = R_{axes[0]}(angles[..., 0]) @ R_{axes[1]}(angles[..., 1]) @ ...``: a
    vector is rotated about the last axis first, or equivalently the frame is
    rotated about ``axes[0]``, then about the *rotated* ``axes[1]`` and so on.
    This is BVH's convention: ``CHANNELS 3 Zrotation Xrotation Yrotation`` is
    ``Rz @ Rx @ Ry``. Rotations are right-handed (counter-clockwise when the
    axis points at the viewer).

    Args:
        angles: (..., K) radians, one per letter of ``axes``.
        axes: K letters of ``"XYZ"`` (any order, repeats allowed, K may be 0).

    Returns:
        (..., 3, 3) float64.

    Examples:
        >>> r = euler_to_matrix(np.array([np.pi / 2, 0.0]), "ZX")
        >>> np.round(r @ [1.0, 0.0, 0.0], 6)
        array([0., 1., 0.])
    """
    angles = np.asarray(angles, dtype=np.float64)
    axes = axes.upper()
    if any(a not in _AXES for a in axes):
        raise ValueError(f"axes must be letters of 'XYZ', got {axes!r}")
    if angles.ndim < 1 or angles.shape[-1] != len(axes):
        raise ValueError(f"angles must have shape (..., {len(axes)}) for axes {axes!r}, "
                         f"got {angles.shape}")  # fmt: skip
    out = np.broadcast_to(np.eye(3), (*angles.shape[:-1], 3, 3)).copy()
    for k, a in enumerate(axes):
        i = _AXES[a]
        j, m = (i + 1) % 3, (i + 2) % 3
        c, s = np.cos(angles[..., k]), np.sin(angles[..., k])
        # right-multiplying by R_a(theta) mixes columns j and m (the other two axes)
        cj, cm = out[..., :, j].copy(), out[..., :, m].copy()
        out[..., :, j] = cj * c[..., None] + cm * s[..., None]
        out[..., :, m] = cm * c[..., None] - cj * s[..., None]
    return out


def tree_diameter(offsets: np.ndarray, parents: Sequence[int]) -> float:
    """Longest path between two joints, summing the bone lengths ``|offsets|``.

    Args:
        offsets: (J, 3) offset of each joint from its parent (the root's is ignored).
        parents: J parent indices, parents before children, ``-1`` for the root.
    """
    lengths = np.linalg.norm(np.asarray(offsets, dtype=np.float64), axis=-1)
    n = len(parents)
    down = np.zeros(n)  # longest path from a joint down into its subtree
    best = 0.0
    for j in range(n - 1, -1, -1):
        p = parents[j]
        if p < 0:
            continue
        reach = down[j] + lengths[j]
        best = max(best, down[p] + reach)  # the two longest branches below p
        down[p] = max(down[p], reach)
    return float(best)


def guess_length_unit(diameter: float, source: object = "motion capture") -> str:
    """The name in ``LENGTH_UNITS`` that makes a skeleton of this diameter
    (file units) closest to an adult's 2 m on a log scale; ``source`` names the
    file in the error for a skeleton of size 0."""
    if not math.isfinite(diameter) or diameter <= 0:
        raise ValueError(
            f"{source}: cannot guess the length unit of a skeleton of size {diameter}: pass unit="
        )
    return min(
        LENGTH_UNITS,
        key=lambda u: abs(math.log(diameter * LENGTH_UNITS[u] / _TYPICAL_DIAMETER_M)),
    )


def resolve_length_unit(
    unit: str | float, diameter: float, source: object = "motion capture"
) -> tuple[float, str]:
    """``(metres per file unit, unit name)`` for ``unit`` (a name, a number or ``"auto"``).

    Args:
        unit: A key of ``LENGTH_UNITS``, ``"auto"`` or metres per file unit.
        diameter: The skeleton's longest joint-to-joint path in file units
            (only read for ``"auto"``).
        source: The file, named in the error for a skeleton of size 0 and in the
            warning given when a guessed unit makes the skeleton less than 1 m or
            more than 4 m across.
    """
    if isinstance(unit, str):
        if check_choice("unit", unit, ("auto", *LENGTH_UNITS)) == "auto":
            unit = guess_length_unit(diameter, source)
            size = diameter * LENGTH_UNITS[unit]
            if not 1.0 <= size <= 4.0:
                warnings.warn(
                    f"{source}: unit='auto' chose {unit!r}, which makes the "
                    f"skeleton {size:.2f} m across (an adult's is 1.5-2.8 m); pass unit= if "
                    "that is wrong",
                    stacklevel=3,
                )
        return LENGTH_UNITS[unit], unit
    unit = check_real("unit (metres per file unit, or a name)", unit, low=0.0, low_open=True)
    return unit, f"{unit:g} m"


def to_y_up(points: np.ndarray, up_axis: str) -> np.ndarray:
    """Express points (..., 3) of a ``up_axis``-up world in the project's y-up world.

    z up maps ``(x, y, z) -> (x, z, -y)``: a rotation of -90 degrees about x,
    so handedness and lengths are kept.
    """
    if check_choice("up_axis", up_axis, UP_AXES) == "y":
        return points
    return np.stack([points[..., 0], points[..., 2], -points[..., 1]], axis=-1)


def check_joint_frames(source: object, frames: int, joints: int) -> None:
    """``ValueError`` naming ``source`` when ``frames * joints`` exceeds [`MAX_JOINT_FRAMES`][]."""
    if frames * joints > MAX_JOINT_FRAMES:
        raise ValueError(
            f"{source}: {frames} frames x {joints} joints is more than the "
            f"{MAX_JOINT_FRAMES:,} joint positions one file may give; split the take"
        )


def kinematic_clip(
    source: Path,
    name: str,
    joints: Sequence[str],
    parents: Sequence[int],
    diameter: float,
    frames: int,
    positions: Callable[[slice], np.ndarray],
    *,
    unit: str | float,
    up_axis: str,
    fps: float,
) -> MocapClip:
    """The clip of a file's forward kinematics, computed a chunk of frames at a time.

    Args:
        source: The file.
        name: Name of the clip's skeleton, e.g. ``"bvh:walk"``.
        joints: The J joint names.
        parents: Their parents.
        diameter: The skeleton's size in file units, for ``unit="auto"``.
        frames: Number of frames T.
        positions: ``positions(frame slice)`` -> (t, J, 3) in file units and axes.
        unit: See [`resolve_length_unit`][].
        up_axis: The file's up axis.
        fps: Frames per second.

    Raises:
        ValueError: ``frames * J`` exceeds [`MAX_JOINT_FRAMES`][].
    """
    scale, unit_name = resolve_length_unit(unit, diameter, source)
    check_joint_frames(source, frames, len(joints))
    world = np.empty((frames, len(joints), 3))
    step = max(1, _CHUNK // max(len(joints), 1))
    for s in range(0, frames, step):
        world[s : s + step] = to_y_up(positions(slice(s, s + step)) * scale, up_axis)
    skeleton = Skeleton(name, tuple(joints), tuple(parents), ())
    return MocapClip(joints=world, skeleton=skeleton, fps=fps, unit=unit_name, source=source)


def resample_motion(motion: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Resample motion (T, ...) from ``fps_in`` to ``fps_out`` frames per second.

    Frame k of the result is the motion at time ``k / fps_out``, linearly
    interpolated between the two nearest input frames, for every time inside
    the clip (``[0, (T - 1) / fps_in]``). When ``fps_in / fps_out`` is an
    integer (within a relative 1e-4, as frame times are written with few
    digits) the result is exactly every ``fps_in / fps_out``-th frame.
    """
    motion = np.asarray(motion)
    check_real("fps_in", fps_in, low=0.0, low_open=True)
    check_real("fps_out", fps_out, low=0.0, low_open=True)
    t = motion.shape[0]
    if t == 0:
        raise ValueError("motion has no frames")
    step = fps_in / fps_out  # in input frames
    if round(step) >= 1 and abs(step - round(step)) <= 1e-4 * step:
        # files write frame times with few digits (0.0333333, 0.0083333): a rate within
        # 1e-4 of an integer multiple of fps_out is taken as that multiple
        step = float(round(step))
    n = math.floor((t - 1) / step + 1e-9) + 1
    if n * (motion.size // t) > 3 * MAX_JOINT_FRAMES:
        raise ValueError(
            f"resampling {t} frames from {fps_in:g} to {fps_out:g} fps gives {n} frames, more "
            f"than {3 * MAX_JOINT_FRAMES:,} values"
        )
    pos = np.arange(n) * step
    lo = np.minimum(np.floor(pos + 1e-9).astype(np.int64), t - 1)
    hi = np.minimum(lo + 1, t - 1)
    w = np.clip(pos - lo, 0.0, 1.0).reshape(-1, *([1] * (motion.ndim - 1)))
    exact = w <= 1e-9
    return np.where(exact, motion[lo], (1 - w) * motion[lo] + w * motion[hi])


@dataclass(frozen=True)
class MocapClip:
    """One motion-capture take, as world joint positions.

    Attributes:
        joints: (T, J, 3) float64 world positions, metres, y up.
        skeleton: The file's own joints: names, parents (no left/right pairs).
        fps: Frames per second.
        unit: The length unit the file was read in (a ``LENGTH_UNITS`` name,
            or ``"<x> m"`` for a number).
        source: The file it was read from.
    """

    joints: np.ndarray
    skeleton: Skeleton
    fps: float
    unit: str
    source: Path

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return int(self.joints.shape[0])

    def bone_lengths(self) -> np.ndarray:
        """(T, J) distance of every joint to its parent (0 for the root)."""
        parents = np.asarray(self.skeleton.parents)
        d = self.joints - self.joints[:, np.maximum(parents, 0)]
        return np.linalg.norm(d, axis=-1) * (parents >= 0)

    def map_to(
        self, skeleton: str | Skeleton, mapping: str | Mapping[str, JointSource] = "auto"
    ) -> np.ndarray:
        """The joints in another layout, (T, J_dst, 3): see
        [`resolve_rig_mapping`][unihpr.data.mapping.resolve_rig_mapping] for ``mapping``."""
        try:
            return map_joints(self.joints, self.skeleton, get_skeleton(skeleton), mapping=mapping)
        except ValueError as err:
            raise ValueError(f"{self.source}: {err}") from None

    def resample(self, fps: float) -> np.ndarray:
        """The joints at ``fps`` frames per second, (T', J, 3): see ``resample_motion``."""
        return resample_motion(self.joints, self.fps, fps)
