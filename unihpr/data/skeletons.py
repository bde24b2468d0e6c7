"""Joint layouts as data.

A [`Skeleton`][] is a frozen description of a joint layout: names, the
kinematic parent of each joint and the left/right pairs that a horizontal flip
swaps. Layouts are module-level constants written as one string of joint names
and one tuple of parents; their left/right pairs follow from the names
(``left_<x>`` and ``right_<x>``). [`get_skeleton`][] looks them up by name;
[`unihpr.data.mapping`][] converts poses between layouts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "COCO17",
    "H36M17",
    "H36M32",
    "HUMANOID15",
    "MEDIAPIPE33",
    "MPI_INF_3DHP17",
    "OPENPOSE18",
    "SMPL24",
    "Skeleton",
    "flip_pose",
    "get_skeleton",
    "list_skeletons",
    "mirror_pairs",
]


@dataclass(frozen=True)
class Skeleton:
    """A joint layout.

    Args:
        name: Registry name, e.g. ``"h36m17"``.
        joint_names: One name per joint, in storage order.
        parents: Parent index per joint; ``-1`` for the root.
        flip_pairs: (left, right) index pairs swapped by a horizontal flip.
        root: Index of the root joint (pelvis) used for root-relative poses.
    """

    name: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    root: int = 0

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if len(self.parents) != n:
            raise ValueError(
                f"Skeleton {self.name!r}: parents has {len(self.parents)} entries, "
                f"joint_names has {n}"
            )
        if len(set(self.joint_names)) != n:
            raise ValueError(f"Skeleton {self.name!r}: joint names are not unique")
        if not 0 <= self.root < n or self.parents[self.root] != -1:
            raise ValueError(f"Skeleton {self.name!r}: root {self.root} must have parent -1")
        for j, p in enumerate(self.parents):
            if j != self.root and not 0 <= p < n:
                raise ValueError(f"Skeleton {self.name!r}: joint {j} has invalid parent {p}")
        # every joint must reach the root, i.e. the parent graph is a tree
        for j in range(n):
            seen, k = set(), j
            while k != self.root:
                if k in seen:
                    raise ValueError(f"Skeleton {self.name!r}: cycle through joint {j}")
                seen.add(k)
                k = self.parents[k]
        flat = [i for pair in self.flip_pairs for i in pair]
        if len(set(flat)) != len(flat) or any(not 0 <= i < n for i in flat):
            raise ValueError(f"Skeleton {self.name!r}: invalid flip_pairs {self.flip_pairs}")

    @property
    def num_joints(self) -> int:
        """Number of joints J."""
        return len(self.joint_names)

    @property
    def bones(self) -> tuple[tuple[int, int], ...]:
        """(child, parent) index pairs, one per non-root joint."""
        return tuple((j, p) for j, p in enumerate(self.parents) if p >= 0)

    @property
    def flip_permutation(self) -> tuple[int, ...]:
        """Index permutation that swaps every left/right pair."""
        perm = list(range(self.num_joints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return tuple(perm)

    def index(self, joint_name: str) -> int:
        """Index of ``joint_name``; ``ValueError`` naming the layout if absent."""
        try:
            return self.joint_names.index(joint_name)
        except ValueError:
            raise ValueError(
                f"joint {joint_name!r} is not in skeleton {self.name!r}; "
                f"joints are {list(self.joint_names)}"
            ) from None


def mirror_pairs(joint_names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """The (left, right) index pairs of joints named ``left_<x>`` and ``right_<x>``.

    Ordered by the smaller index of each pair; a ``left_`` joint without its
    ``right_`` twin (or the reverse) pairs with nothing.

    Examples:
        >>> mirror_pairs(("pelvis", "right_hip", "left_hip"))
        ((2, 1),)
    """
    index = {n: i for i, n in enumerate(joint_names)}
    pairs = [
        (i, index["right_" + n[5:]])
        for i, n in enumerate(joint_names)
        if n.startswith("left_") and "right_" + n[5:] in index
    ]
    return tuple(sorted(pairs, key=min))


def _layout(name: str, joints: str, parents: tuple[int, ...], root: int = 0) -> Skeleton:
    names = tuple(joints.split())
    return Skeleton(name, names, parents, mirror_pairs(names), root)


H36M17 = _layout(
    "h36m17",
    "pelvis right_hip right_knee right_ankle left_hip left_knee left_ankle spine thorax "
    "neck_nose head left_shoulder left_elbow left_wrist right_shoulder right_elbow right_wrist",
    (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
)

# Names follow the Human3.6M motion-capture skeleton; "site" joints are end effectors.
# Shoulder girdles hang off the neck joint (13) so that dropping the 15 unused
# joints leaves exactly the H36M-17 tree (shoulders child of the thorax).
H36M32 = _layout(
    "h36m32",
    "hips right_up_leg right_leg right_foot right_toe_base right_toe_site left_up_leg left_leg "
    "left_foot left_toe_base left_toe_site spine spine1 neck head head_site left_shoulder "
    "left_arm left_fore_arm left_hand left_hand_thumb left_thumb_site left_wrist_end "
    "left_wrist_site right_shoulder right_arm right_fore_arm right_hand right_hand_thumb "
    "right_thumb_site right_wrist_end right_wrist_site",
    (-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 13, 16, 17, 18, 19, 20, 19, 22, 13,
     24, 25, 26, 27, 28, 27, 30),
)  # fmt: skip

# The 17 "relevant" joints of the MPI-INF-3DHP test set, in the dataset's own order.
MPI_INF_3DHP17 = _layout(
    "mpi_inf_3dhp17",
    "head_top neck right_shoulder right_elbow right_wrist left_shoulder left_elbow left_wrist "
    "right_hip right_knee right_ankle left_hip left_knee left_ankle pelvis spine head",
    (16, 15, 1, 2, 3, 1, 5, 6, 14, 8, 9, 14, 11, 12, -1, 14, 1),
    root=14,
)

SMPL24 = _layout(
    "smpl24",
    "pelvis left_hip right_hip spine1 left_knee right_knee spine2 left_ankle right_ankle spine3 "
    "left_foot right_foot neck left_collar right_collar head left_shoulder right_shoulder "
    "left_elbow right_elbow left_wrist right_wrist left_hand right_hand",
    (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21),
)

# COCO has no kinematic tree; this one (rooted at the nose) is for drawing and flipping.
COCO17 = _layout(
    "coco17",
    "nose left_eye right_eye left_ear right_ear left_shoulder right_shoulder left_elbow "
    "right_elbow left_wrist right_wrist left_hip right_hip left_knee right_knee left_ankle "
    "right_ankle",
    (-1, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14),
)

# OpenPose's 18-joint COCO variant, used by the 3DPW ``poses2d`` field.
OPENPOSE18 = _layout(
    "openpose18",
    "nose neck right_shoulder right_elbow right_wrist left_shoulder left_elbow left_wrist "
    "right_hip right_knee right_ankle left_hip left_knee left_ankle right_eye left_eye "
    "right_ear left_ear",
    (1, -1, 1, 2, 3, 1, 5, 6, 1, 8, 9, 1, 11, 12, 0, 0, 14, 15),
    root=1,
)

# MediaPipe's MOUTH_LEFT / MOUTH_RIGHT are named left_mouth / right_mouth here so
# that every left/right pair differs by its prefix only. No kinematic tree: like
# COCO17's, this one (rooted at the nose) is for drawing and flipping.
MEDIAPIPE33 = _layout(
    "mediapipe33",
    "nose left_eye_inner left_eye left_eye_outer right_eye_inner right_eye right_eye_outer "
    "left_ear right_ear left_mouth right_mouth left_shoulder right_shoulder left_elbow "
    "right_elbow left_wrist right_wrist left_pinky right_pinky left_index right_index "
    "left_thumb right_thumb left_hip right_hip left_knee right_knee left_ankle right_ankle "
    "left_heel right_heel left_foot_index right_foot_index",
    (-1, 0, 1, 2, 0, 4, 5, 3, 6, 0, 0, 0, 0, 11, 12, 13, 14, 15, 16, 15, 16, 15, 16, 11, 12, 23,
     24, 25, 26, 27, 28, 27, 28),
)  # fmt: skip
"""MediaPipe Pose's 33 landmarks in its order (``PoseLandmark`` 0..32), names in
lower case (``MOUTH_LEFT`` is ``left_mouth``)."""

# The DeepMimic humanoid of pybullet_data (humanoid.urdf), in pybullet's link order
# (link 0 "root" is the pelvis; wrists are fixed end links).
HUMANOID15 = _layout(
    "humanoid15",
    "root chest neck right_hip right_knee right_ankle right_shoulder right_elbow right_wrist "
    "left_hip left_knee left_ankle left_shoulder left_elbow left_wrist",
    (-1, 0, 1, 0, 3, 4, 1, 6, 7, 0, 9, 10, 1, 12, 13),
)
"""The DeepMimic humanoid of the bundled motion clips: 15 joints, root 0 (the hips'
midpoint). Order: ``root, chest, neck``, then ``right_hip, right_knee, right_ankle,
right_shoulder, right_elbow, right_wrist`` and the same on the left. The layout of
[`unihpr.lift`][unihpr.inference.lift]'s output."""

_SKELETONS: dict[str, Skeleton] = {
    s.name: s
    for s in (H36M17, H36M32, MPI_INF_3DHP17, SMPL24, COCO17, OPENPOSE18, MEDIAPIPE33, HUMANOID15)
}


def list_skeletons() -> list[str]:
    """Names of all registered layouts."""
    return sorted(_SKELETONS)


def get_skeleton(name: str | Skeleton) -> Skeleton:
    """Look up a layout by name (a [`Skeleton`][] is returned unchanged)."""
    if isinstance(name, Skeleton):
        return name
    if not isinstance(name, str):
        raise TypeError(f"skeleton must be a name or a Skeleton, got {type(name).__name__}")
    try:
        return _SKELETONS[name]
    except KeyError:
        raise ValueError(f"unknown skeleton {name!r}; known: {list_skeletons()}") from None


# H36M-32 -> H36M-17: the 17 joints kept after dropping
# [4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31].
H36M32_TO_H36M17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
# 3DHP's "neck" sits between the shoulders (H36M thorax) and its "head" at the
# head centre (H36M neck/nose); head_top is H36M's head joint.
MPI_INF_3DHP17_TO_H36M17 = (14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4)
# H36M-17 -> 3DHP-17 is the inverse permutation.
H36M17_TO_MPI_INF_3DHP17 = tuple(int(i) for i in np.argsort(MPI_INF_3DHP17_TO_H36M17))


def _smpl24_to_h36m17() -> np.ndarray:
    """Approximate H36M-17 joints as linear combinations of SMPL-24 joints.

    SMPL's skeleton does not contain H36M's spine, nose or head-top points, so
    those are approximated: spine = midpoint of pelvis and neck, neck/nose =
    SMPL head, head top = head + (head - neck). Every row sums to 1, so the map
    commutes with translation. Errors of a few centimetres on those three
    joints are expected; use a vertex regressor (SMPL model files) for exact
    H36M joints.
    """
    w = np.zeros((17, 24), dtype=np.float64)
    # H36M joint -> SMPL joint for the joints both skeletons have
    direct = (0, 2, 5, 8, 1, 4, 7, None, 12, 15, None, 16, 18, 20, 17, 19, 21)
    for dst, src in enumerate(direct):
        if src is not None:
            w[dst, src] = 1.0
    w[7, 0] = w[7, 12] = 0.5
    w[10, 15], w[10, 12] = 2.0, -1.0
    return w


SMPL24_TO_H36M17 = _smpl24_to_h36m17()


def check_joint_axis(x, sk: Skeleton, name: str, *, channels: bool) -> None:
    """``x`` is (..., J, C) (``channels``) or (..., J) for skeleton ``sk``."""
    axis = -2 if channels else -1
    if x.ndim < -axis or x.shape[axis] != sk.num_joints:
        want = f"(..., {sk.num_joints}, C)" if channels else f"(..., {sk.num_joints})"
        raise ValueError(
            f"{name} must have shape {want} for skeleton {sk.name!r}, got {tuple(x.shape)}"
        )


def flip_pose(
    pose: np.ndarray | torch.Tensor,
    skeleton: str | Skeleton,
    *,
    axis: int = 0,
    center: float = 0.0,
) -> np.ndarray | torch.Tensor:
    """Mirror poses (..., J, C) across the plane ``coord[axis] = center``.

    The mirrored coordinate becomes ``2 * center - x`` and left/right joints are
    swapped so that the result is again an anatomically labelled pose. For 2D
    poses in a W-pixel-wide image (pixel centres at i + 0.5) use
    ``center=W / 2``.
    """
    sk = get_skeleton(skeleton)
    check_joint_axis(pose, sk, "pose", channels=True)
    if not 0 <= axis < pose.shape[-1]:
        raise ValueError(f"axis must be in [0, {pose.shape[-1]}), got {axis}")
    out = pose[..., list(sk.flip_permutation), :]
    out = out.clone() if isinstance(out, torch.Tensor) else out.copy()
    out[..., axis] = 2 * center - out[..., axis]
    return out
