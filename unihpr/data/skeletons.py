"""Joint layouts as data, and mappings between them.

A [`Skeleton`][] is a frozen description of a joint layout: names, the
kinematic parent of each joint and the left/right pairs that a horizontal flip
swaps. Layouts are module-level constants; [`get_skeleton`][] looks them up
by name and [`map_joints`][] converts poses between layouts where a mapping
is defined.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
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
    "RIG_MAPPINGS",
    "SMPL24",
    "Skeleton",
    "flip_pose",
    "get_skeleton",
    "joint_mapping",
    "list_skeletons",
    "map_joints",
    "map_visibility",
    "mappable_layouts",
    "resolve_rig_mapping",
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


H36M17 = Skeleton(
    name="h36m17",
    joint_names=(
        "pelvis",
        "right_hip",
        "right_knee",
        "right_ankle",
        "left_hip",
        "left_knee",
        "left_ankle",
        "spine",
        "thorax",
        "neck_nose",
        "head",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "right_shoulder",
        "right_elbow",
        "right_wrist",
    ),
    parents=(-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
    flip_pairs=((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16)),
)

# Names follow the Human3.6M motion-capture skeleton; "site" joints are end effectors.
H36M32 = Skeleton(
    name="h36m32",
    joint_names=(
        "hips",
        "right_up_leg",
        "right_leg",
        "right_foot",
        "right_toe_base",
        "right_toe_site",
        "left_up_leg",
        "left_leg",
        "left_foot",
        "left_toe_base",
        "left_toe_site",
        "spine",
        "spine1",
        "neck",
        "head",
        "head_site",
        "left_shoulder",
        "left_arm",
        "left_fore_arm",
        "left_hand",
        "left_hand_thumb",
        "left_thumb_site",
        "left_wrist_end",
        "left_wrist_site",
        "right_shoulder",
        "right_arm",
        "right_fore_arm",
        "right_hand",
        "right_hand_thumb",
        "right_thumb_site",
        "right_wrist_end",
        "right_wrist_site",
    ),
    # Shoulder girdles hang off the neck joint (13) so that dropping the 15 unused
    # joints leaves exactly the H36M-17 tree (shoulders child of the thorax).
    parents=(
        -1,
        0,
        1,
        2,
        3,
        4,
        0,
        6,
        7,
        8,
        9,
        0,
        11,
        12,
        13,
        14,
        13,
        16,
        17,
        18,
        19,
        20,
        19,
        22,
        13,
        24,
        25,
        26,
        27,
        28,
        27,
        30,
    ),
    flip_pairs=tuple(
        zip(
            (6, 7, 8, 9, 10, 16, 17, 18, 19, 20, 21, 22, 23),
            (1, 2, 3, 4, 5, 24, 25, 26, 27, 28, 29, 30, 31),
        )
    ),
)

# The 17 "relevant" joints of the MPI-INF-3DHP test set, in the dataset's own order.
MPI_INF_3DHP17 = Skeleton(
    name="mpi_inf_3dhp17",
    joint_names=(
        "head_top",
        "neck",
        "right_shoulder",
        "right_elbow",
        "right_wrist",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "right_hip",
        "right_knee",
        "right_ankle",
        "left_hip",
        "left_knee",
        "left_ankle",
        "pelvis",
        "spine",
        "head",
    ),
    parents=(16, 15, 1, 2, 3, 1, 5, 6, 14, 8, 9, 14, 11, 12, -1, 14, 1),
    flip_pairs=((5, 2), (6, 3), (7, 4), (11, 8), (12, 9), (13, 10)),
    root=14,
)

SMPL24 = Skeleton(
    name="smpl24",
    joint_names=(
        "pelvis",
        "left_hip",
        "right_hip",
        "spine1",
        "left_knee",
        "right_knee",
        "spine2",
        "left_ankle",
        "right_ankle",
        "spine3",
        "left_foot",
        "right_foot",
        "neck",
        "left_collar",
        "right_collar",
        "head",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hand",
        "right_hand",
    ),
    parents=(-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21),
    flip_pairs=(
        (1, 2),
        (4, 5),
        (7, 8),
        (10, 11),
        (13, 14),
        (16, 17),
        (18, 19),
        (20, 21),
        (22, 23),
    ),
)

# COCO has no kinematic tree; this one (rooted at the nose) is for drawing and flipping.
COCO17 = Skeleton(
    name="coco17",
    joint_names=(
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ),
    parents=(-1, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
)

# OpenPose's 18-joint COCO variant, used by the 3DPW ``poses2d`` field.
OPENPOSE18 = Skeleton(
    name="openpose18",
    joint_names=(
        "nose",
        "neck",
        "right_shoulder",
        "right_elbow",
        "right_wrist",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "right_hip",
        "right_knee",
        "right_ankle",
        "left_hip",
        "left_knee",
        "left_ankle",
        "right_eye",
        "left_eye",
        "right_ear",
        "left_ear",
    ),
    parents=(1, -1, 1, 2, 3, 1, 5, 6, 1, 8, 9, 1, 11, 12, 0, 0, 14, 15),
    flip_pairs=((5, 2), (6, 3), (7, 4), (11, 8), (12, 9), (13, 10), (15, 14), (17, 16)),
    root=1,
)

# MediaPipe Pose's 33 landmarks, in its order (PoseLandmark 0..32); MediaPipe's
# MOUTH_LEFT / MOUTH_RIGHT are named left_mouth / right_mouth here so that every
# left/right pair differs by its prefix only. No kinematic tree: like COCO17's,
# this one (rooted at the nose) is for drawing and flipping.
MEDIAPIPE33 = Skeleton(
    name="mediapipe33",
    joint_names=(
        "nose",
        "left_eye_inner",
        "left_eye",
        "left_eye_outer",
        "right_eye_inner",
        "right_eye",
        "right_eye_outer",
        "left_ear",
        "right_ear",
        "left_mouth",
        "right_mouth",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_pinky",
        "right_pinky",
        "left_index",
        "right_index",
        "left_thumb",
        "right_thumb",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
        "left_heel",
        "right_heel",
        "left_foot_index",
        "right_foot_index",
    ),
    parents=(
        -1, 0, 1, 2, 0, 4, 5, 3, 6, 0, 0, 0, 0, 11, 12, 13, 14, 15, 16, 15, 16, 15, 16,
        11, 12, 23, 24, 25, 26, 27, 28, 27, 28,
    ),
    flip_pairs=tuple((a, a + 3) for a in (1, 2, 3))
    + tuple((a, a + 1) for a in range(7, 33, 2)),
)  # fmt: skip
"""MediaPipe Pose's 33 landmarks in its order (``PoseLandmark`` 0..32), names in
lower case (``MOUTH_LEFT`` is ``left_mouth``)."""

# The DeepMimic humanoid of pybullet_data (humanoid.urdf), in pybullet's link order
# (link 0 "root" is the pelvis; wrists are fixed end links).
HUMANOID15 = Skeleton(
    name="humanoid15",
    joint_names=(
        "root",
        "chest",
        "neck",
        "right_hip",
        "right_knee",
        "right_ankle",
        "right_shoulder",
        "right_elbow",
        "right_wrist",
        "left_hip",
        "left_knee",
        "left_ankle",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
    ),
    parents=(-1, 0, 1, 0, 3, 4, 1, 6, 7, 0, 9, 10, 1, 12, 13),
    flip_pairs=((9, 3), (10, 4), (11, 5), (12, 6), (13, 7), (14, 8)),
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
    direct = {
        0: 0,
        1: 2,
        2: 5,
        3: 8,
        4: 1,
        5: 4,
        6: 7,
        8: 12,
        9: 15,
        11: 16,
        12: 18,
        13: 20,
        14: 17,
        15: 19,
        16: 21,
    }
    for dst, src in direct.items():
        w[dst, src] = 1.0
    w[7, 0] = w[7, 12] = 0.5
    w[10, 15], w[10, 12] = 2.0, -1.0
    return w


SMPL24_TO_H36M17 = _smpl24_to_h36m17()

# --- Rigs read by joint name (BVH joints, ASF bones) -------------------------------
#
# A source is one rig joint name, a tuple of alternative names (the first one the
# rig has is used) or {name: weight} (weights summing to 1: a point between joints).
# Rig joints are the points where a bone starts (BVH's convention; the ASF reader
# names each bone's start after the bone), plus "<joint>_end" for BVH End Sites
# and ASF leaf-bone tips. Limb joints are listed once per preset as
# (parts, left prefixes, right prefixes) and expanded below for both sides.
JointSource = str | tuple[str, ...] | Mapping[str, float]

_LIMB_PARTS = ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")
_MOTIONBUILDER_LIMBS = ("UpLeg", "Leg", "Foot", "Arm", "ForeArm", "Hand")
_RIG_PRESETS: dict[str, tuple[tuple, tuple[str, ...], tuple[str, ...], dict]] = {
    # CMU database BVH conversions (MotionBuilder names; Spine1 sits mid-back,
    # Neck at the shoulders' height, "Head_end" is the head's End Site).
    "cmu_bvh": (
        _MOTIONBUILDER_LIMBS, ("Left",), ("Right",),
        {"humanoid15": {"root": "Hips", "chest": "Spine1", "neck": "Neck"},
         "h36m17": {"pelvis": "Hips", "spine": "Spine1", "thorax": "Neck",
                    "neck_nose": "Head", "head": "Head_end"}},
    ),
    # Mixamo rigs ("mixamorig:Hips"; the namespace is ignored when matching).
    "mixamo": (
        _MOTIONBUILDER_LIMBS, ("Left",), ("Right",),
        {"humanoid15": {"root": "Hips", "chest": "Spine1", "neck": "Neck"},
         "h36m17": {"pelvis": "Hips", "spine": "Spine1", "thorax": "Neck",
                    "neck_nose": "Head", "head": "HeadTop_End"}},
    ),
    # CMU ASF bones (a joint is named after the bone that starts there: "rfemur"
    # is the right hip, "lowerneck" the base of the neck).
    "cmu_asf": (
        ("femur", "tibia", "foot", "humerus", "radius", "wrist"), ("l",), ("r",),
        {"humanoid15": {"root": "root", "chest": "thorax", "neck": "lowerneck"},
         "h36m17": {"pelvis": "root", "spine": "thorax", "thorax": "lowerneck",
                    "neck_nose": "head", "head": "head_end"}},
    ),
    # Common spellings of other rigs: MotionBuilder / Mixamo, Unity humanoid
    # (UpperArm, LowerLeg), Biovision (UpArm, LowLeg), joint-style (Hip, Knee,
    # Elbow), with Left/L/Right/R prefixes or L/R suffixes (Blender's "thigh.L").
    "generic": (
        (("UpLeg", "UpperLeg", "Thigh", "Hip", "Femur"),
         ("Leg", "LowerLeg", "LowLeg", "Shin", "Knee", "Calf", "Tibia"),
         ("Foot", "Ankle"),
         ("Arm", "UpperArm", "UpArm", "Humerus", "Shoulder"),
         ("ForeArm", "LowerArm", "LowArm", "Elbow", "Radius"),
         ("Hand", "Wrist")),
        ("Left", "L"), ("Right", "R"),
        {"humanoid15": {"root": ("Hips", "Pelvis", "Hip", "Root"),
                        "chest": ("Spine1", "Chest", "Spine2", "UpperBack", "Spine"),
                        "neck": ("Neck", "Neck1", "LowerNeck")},
         "h36m17": {"pelvis": ("Hips", "Pelvis", "Hip", "Root"),
                    "spine": ("Spine1", "Chest", "Spine2", "UpperBack", "Spine"),
                    "thorax": ("Neck", "Neck1", "LowerNeck"),
                    "neck_nose": ("Head",),
                    "head": ("HeadTop_End", "Head_end", "HeadTop", "HeadEnd")}},
    ),
}  # fmt: skip


def _expand_rig_preset(parts, left, right, trunks) -> dict[str, dict[str, JointSource]]:
    out = {}
    for dst, trunk in trunks.items():
        table: dict[str, JointSource] = {}
        for side, prefixes in (("left", left), ("right", right)):
            for part, names in zip(_LIMB_PARTS, parts):
                names = (names,) if isinstance(names, str) else names
                alts = [p + n for n in names for p in prefixes]
                if len(prefixes) > 1:  # suffixed with the short prefix: "ThighL", "thigh.L"
                    alts += [n + prefixes[-1] for n in names]
                table[f"{side}_{part}"] = alts[0] if len(alts) == 1 else tuple(dict.fromkeys(alts))
        table.update(trunk)
        sk = get_skeleton(dst)
        table = {name: table[name] for name in sk.joint_names}  # skeleton order; KeyError = bug
        out[dst] = table
    return out


RIG_MAPPINGS: dict[str, dict[str, dict[str, JointSource]]] = {
    preset: _expand_rig_preset(*spec) for preset, spec in _RIG_PRESETS.items()
}
"""``{preset: {layout: {layout joint: rig joint source}}}`` for motion-capture rigs
read by joint name (see [`resolve_rig_mapping`][unihpr.data.skeletons.resolve_rig_mapping]).
Presets: ``"cmu_bvh"``, ``"mixamo"``, ``"cmu_asf"``, ``"generic"``; layouts
``"humanoid15"`` and ``"h36m17"``. A source is a rig joint name, a tuple of
alternative names (the first the rig has is used) or ``{name: weight}``. Rig
names match exactly, else ignoring case, a namespace prefix (``"mixamorig:"``),
``_``, ``-``, ``.`` and spaces."""


# --- Registered mappings between layouts ------------------------------------------
#
# Keypoint layouts of 2D detectors and datasets -> the DeepMimic humanoid (the
# layouts `unihpr.lift` accepts). Limb joints (hips, knees, ankles, shoulders,
# elbows, wrists) have the same names in every layout and map one to one; the
# trunk is made as follows. Humanoid geometry (pybullet's humanoid.urdf at
# globalScaling 0.25): the root is exactly the hips' midpoint; the chest joint
# sits 0.236 m above the root, 0.49 of the way from the hips' to the shoulders'
# midpoint when the back is straight; the neck joint 0.224 m above the chest,
# 2 cm below and 2.4 cm behind the shoulders' midpoint.
# * coco17, mediapipe33 (no trunk joints): root = mean of the hips; chest =
#   mean of hips and shoulders (on the bundled clips, 37 mm mean error from the
#   back's bend); neck = mean of the shoulders (31 mm mean error). Detector hip
#   keypoints also sit wider than mocap hip joints.
# * h36m17: root = pelvis; chest = spine (H36M's mid-back joint); neck =
#   thorax (H36M's neck base, at the shoulders' height): same anatomy, a few
#   centimetres apart.
_TRUNK_TO_HUMANOID15: dict[str, dict[str, JointSource]] = {
    "coco17": {
        "root": {"left_hip": 0.5, "right_hip": 0.5},
        "chest": {"left_hip": 0.25, "right_hip": 0.25, "left_shoulder": 0.25,
                  "right_shoulder": 0.25},
        "neck": {"left_shoulder": 0.5, "right_shoulder": 0.5},
    },
    "h36m17": {"root": "pelvis", "chest": "spine", "neck": "thorax"},
}  # fmt: skip
_TRUNK_TO_HUMANOID15["mediapipe33"] = _TRUNK_TO_HUMANOID15["coco17"]
_LIMBS_BY_NAME = {f"{s}_{p}": f"{s}_{p}" for s in ("left", "right") for p in _LIMB_PARTS}

# (src, dst) -> a tuple of source indices, a (J_dst, J_src) weight matrix, or
# {dst joint: source} by joint name (resolved like a rig mapping).
_MAPPINGS: dict[tuple[str, str], tuple[int, ...] | np.ndarray | Mapping[str, JointSource]] = {
    ("h36m32", "h36m17"): H36M32_TO_H36M17,
    ("mpi_inf_3dhp17", "h36m17"): MPI_INF_3DHP17_TO_H36M17,
    ("h36m17", "mpi_inf_3dhp17"): H36M17_TO_MPI_INF_3DHP17,
    ("smpl24", "h36m17"): SMPL24_TO_H36M17,
    **{
        (layout, "humanoid15"): {**_LIMBS_BY_NAME, **trunk}
        for layout, trunk in _TRUNK_TO_HUMANOID15.items()
    },
}


def mappable_layouts(dst: str | Skeleton) -> list[str]:
    """Layouts with a registered mapping to ``dst`` (``dst`` itself included), sorted.

    Examples:
        >>> mappable_layouts("humanoid15")
        ['coco17', 'h36m17', 'humanoid15', 'mediapipe33']
    """
    d = get_skeleton(dst).name
    return sorted({s for s, t in _MAPPINGS if t == d} | {d})


def _normalise_joint_name(name: str) -> str:
    return re.sub(r"[\s_.\-]", "", name.rsplit(":", 1)[-1]).lower()


class _RigNames:
    """Looks rig joint names up exactly, then normalised (ambiguity is an error)."""

    def __init__(self, rig: Skeleton) -> None:
        self.rig = rig
        self.exact = {n: i for i, n in enumerate(rig.joint_names)}
        self.loose: dict[str, list[int]] = {}
        for i, n in enumerate(rig.joint_names):
            self.loose.setdefault(_normalise_joint_name(n), []).append(i)

    def find(self, name: str) -> int | None:
        if name in self.exact:
            return self.exact[name]
        hits = self.loose.get(_normalise_joint_name(name), [])
        if len(hits) > 1:
            raise ValueError(
                f"rig {self.rig.name!r}: joint name {name!r} is ambiguous, it matches "
                f"{[self.rig.joint_names[i] for i in hits]}; pass mapping= with exact names"
            )
        return hits[0] if hits else None


def _resolve_one(source: JointSource, lookup: _RigNames) -> dict[int, float] | None:
    """{rig index: weight} for one source, ``None`` when the rig lacks it."""
    if isinstance(source, str):
        i = lookup.find(source)
        return None if i is None else {i: 1.0}
    if isinstance(source, Mapping):
        weights: dict[int, float] = {}
        for name, w in source.items():
            i = lookup.find(name)
            if i is None:
                return None
            weights[i] = weights.get(i, 0.0) + float(w)
        return weights
    if isinstance(source, (tuple, list)):
        for name in source:
            i = lookup.find(name)
            if i is not None:
                return {i: 1.0}
        return None
    raise TypeError(
        f"a joint source must be a name, a tuple of alternative names or a "
        f"{{name: weight}} dict, got {type(source).__name__}"
    )


def _check_source(joint: str, source: JointSource) -> None:
    if isinstance(source, Mapping):
        if not source:
            raise ValueError(f"joint {joint!r}: empty weight dict")
        w = [float(v) for v in source.values()]
        if not all(math.isfinite(v) for v in w) or abs(sum(w) - 1.0) > 1e-6:
            raise ValueError(
                f"joint {joint!r}: weights must be finite and sum to 1, got {dict(source)}"
            )
    elif isinstance(source, (tuple, list)) and not source:
        raise ValueError(f"joint {joint!r}: empty tuple of alternative names")


def _describe(source: JointSource) -> str:
    if isinstance(source, str):
        return repr(source)
    if isinstance(source, Mapping):
        return "all of " + repr(list(source))
    return "one of " + repr(list(source))


class _MissingJoints(ValueError):
    def __init__(self, missing: list[str], message: str) -> None:
        super().__init__(message)
        self.missing = missing


def resolve_rig_mapping(
    rig: Skeleton, dst: str | Skeleton, mapping: str | Mapping[str, JointSource] = "auto"
) -> dict[str, dict[str, float]]:
    """Which rig joints make each joint of layout ``dst``.

    Args:
        rig: The file's joint layout (e.g. [`MocapClip.skeleton`][unihpr.data.MocapClip]).
        dst: A registered layout with presets (``"humanoid15"``, ``"h36m17"``) or,
            with a dict ``mapping``, any layout.
        mapping: A preset of [`RIG_MAPPINGS`][] (``"cmu_bvh"``, ``"mixamo"``,
            ``"cmu_asf"``, ``"generic"``), ``"auto"`` (the first preset that the
            rig satisfies, in that order) or your own ``{dst joint: source}``
            covering every joint of ``dst`` (a source is a rig joint name, a
            tuple of alternative names, or ``{name: weight}`` with weights summing
            to 1).

    Returns:
        ``{dst joint: {rig joint: weight}}`` in ``dst``'s joint order.

    Raises:
        ValueError: listing every ``dst`` joint the rig cannot provide (for
            ``"auto"``: per preset), and the rig's joint names.

    Examples:
        >>> rig = Skeleton("rig", ("Hips", "Spine", "Head"), (-1, 0, 1), ())
        >>> resolve_rig_mapping(rig, "h36m17", {j: "Hips" for j in H36M17.joint_names})["pelvis"]
        {'Hips': 1.0}
    """
    dst_sk = get_skeleton(dst)
    if isinstance(mapping, str):
        if mapping == "auto":
            failures = []
            for preset in RIG_MAPPINGS:
                try:
                    return resolve_rig_mapping(rig, dst_sk, preset)
                except _MissingJoints as err:
                    failures.append(f"{preset!r} lacks {'; '.join(err.missing)}")
            raise ValueError(
                f"no preset of RIG_MAPPINGS fits rig {rig.name!r} for {dst_sk.name!r}: "
                + " | ".join(failures)
                + f". Rig joints: {list(rig.joint_names)}. Pass mapping={{joint: rig joint}}."
            )
        if mapping not in RIG_MAPPINGS:
            raise ValueError(
                f"unknown rig preset {mapping!r}; presets: {sorted(RIG_MAPPINGS)}, 'auto'"
            )
        if dst_sk.name not in RIG_MAPPINGS[mapping]:
            raise ValueError(f"rig preset {mapping!r} has no mapping to {dst_sk.name!r}; it maps "
                             f"to {sorted(RIG_MAPPINGS[mapping])}")  # fmt: skip
        table, label = RIG_MAPPINGS[mapping][dst_sk.name], f"preset {mapping!r}"
    elif isinstance(mapping, Mapping):
        table, label = mapping, "mapping"
        unknown = sorted(set(table) - set(dst_sk.joint_names))
        if unknown:
            raise ValueError(f"mapping has keys {unknown} that are not joints of {dst_sk.name!r} "
                             f"{list(dst_sk.joint_names)}")  # fmt: skip
        absent = [j for j in dst_sk.joint_names if j not in table]
        if absent:
            raise ValueError(f"mapping must give a source for every joint of {dst_sk.name!r}; "
                             f"missing: {absent}")  # fmt: skip
    else:
        raise TypeError(f"mapping must be a preset name or a dict, got {type(mapping).__name__}")
    lookup = _RigNames(rig)
    out: dict[str, dict[str, float]] = {}
    missing = []
    for joint in dst_sk.joint_names:
        _check_source(joint, table[joint])
        w = _resolve_one(table[joint], lookup)
        if w is None:
            missing.append(f"{joint} <- {_describe(table[joint])}")
        else:
            out[joint] = {rig.joint_names[i]: v for i, v in w.items()}
    if missing:
        raise _MissingJoints(
            missing,
            f"rig {rig.name!r} lacks joints for {dst_sk.name!r} ({label}): "
            f"{'; '.join(missing)}. "
            f"Rig joints: {list(rig.joint_names)}",
        )
    return out


def _rig_index_mapping(
    rig: Skeleton, dst: Skeleton, mapping: str | Mapping[str, JointSource]
) -> tuple[int, ...] | np.ndarray:
    resolved = resolve_rig_mapping(rig, dst, mapping)
    index = {n: i for i, n in enumerate(rig.joint_names)}
    if all(len(w) == 1 and next(iter(w.values())) == 1.0 for w in resolved.values()):
        return tuple(index[next(iter(w))] for w in resolved.values())
    m = np.zeros((dst.num_joints, rig.num_joints))
    for d, w in enumerate(resolved.values()):
        for name, v in w.items():
            m[d, index[name]] = v
    return m


def joint_mapping(
    src: str | Skeleton,
    dst: str | Skeleton,
    mapping: str | Mapping[str, JointSource] | None = None,
) -> tuple[int, ...] | np.ndarray:
    """The mapping from layout ``src`` to ``dst``.

    Args:
        src: Source layout.
        dst: Destination layout.
        mapping: ``None`` for the registered mappings between layouts; otherwise
            map by joint name (for a motion-capture rig ``src``), see
            [`resolve_rig_mapping`][].

    Returns:
        A tuple of source indices (one per destination joint) for selections and
        reorderings, or a (J_dst, J_src) float64 weight matrix (rows summing to 1)
        for layouts whose joints are approximated as linear combinations
        (SMPL-24 -> H36M-17; COCO-17 and MediaPipe-33 -> HUMANOID15, whose root,
        chest and neck are means of hips and shoulders).

    Examples:
        >>> joint_mapping("h36m17", "humanoid15")[:3]  # root, chest, neck
        (0, 7, 8)
        >>> w = joint_mapping("coco17", "humanoid15")
        >>> w.shape, float(w[0, COCO17.index("left_hip")])
        ((15, 17), 0.5)
    """
    if mapping is not None:
        return _rig_index_mapping(get_skeleton(src), get_skeleton(dst), mapping)
    s, d = get_skeleton(src).name, get_skeleton(dst).name
    if s == d:
        return tuple(range(get_skeleton(src).num_joints))
    try:
        entry = _MAPPINGS[(s, d)]
    except KeyError:
        known = sorted(f"{a}->{b}" for a, b in _MAPPINGS)
        raise ValueError(
            f"no joint mapping from {s!r} to {d!r}; defined: {known} "
            "(for a motion-capture rig pass mapping=, see RIG_MAPPINGS)"
        ) from None
    if isinstance(entry, Mapping):
        return _rig_index_mapping(get_skeleton(s), get_skeleton(d), entry)
    return entry


def _check_joint_axis(x, sk: Skeleton, name: str, *, channels: bool) -> None:
    """``x`` is (..., J, C) (``channels``) or (..., J) for skeleton ``sk``."""
    axis = -2 if channels else -1
    if x.ndim < -axis or x.shape[axis] != sk.num_joints:
        want = f"(..., {sk.num_joints}, C)" if channels else f"(..., {sk.num_joints})"
        raise ValueError(
            f"{name} must have shape {want} for skeleton {sk.name!r}, got {tuple(x.shape)}"
        )


def map_joints(
    pose: np.ndarray | torch.Tensor,
    src: str | Skeleton,
    dst: str | Skeleton,
    mapping: str | Mapping[str, JointSource] | None = None,
) -> np.ndarray | torch.Tensor:
    """Convert poses (..., J_src, C) in layout ``src`` to (..., J_dst, C) in ``dst``.

    Works for numpy arrays and torch tensors (differentiable) of any channel
    count C (2D or 3D). ``mapping`` maps a motion-capture rig by joint name (see
    [`joint_mapping`][]).
    """
    _check_joint_axis(pose, get_skeleton(src), "pose", channels=True)
    m = joint_mapping(src, dst, mapping)
    if isinstance(m, tuple):
        return pose[..., list(m), :]
    if isinstance(pose, torch.Tensor):
        w = torch.as_tensor(m, dtype=pose.dtype, device=pose.device)
        return torch.einsum("dj,...jc->...dc", w, pose)
    return np.einsum("dj,...jc->...dc", m.astype(pose.dtype, copy=False), pose)


def map_visibility(
    mask: np.ndarray | torch.Tensor,
    src: str | Skeleton,
    dst: str | Skeleton,
    mapping: str | Mapping[str, JointSource] | None = None,
) -> np.ndarray | torch.Tensor:
    """Which joints of ``dst`` are visible, given the visible joints of ``src``.

    A destination joint is visible when every source joint it is made of (every
    non-zero weight of [`joint_mapping`][]) is: a mean of two hips is not known
    when one hip is hidden.

    Args:
        mask: (..., J_src) bool, True = visible (numpy or torch).
        src, dst, mapping: As for [`map_joints`][].

    Returns:
        (..., J_dst) bool of ``mask``'s type.

    Examples:
        >>> visible = np.ones(17, dtype=bool)
        >>> visible[COCO17.index("left_hip")] = False
        >>> [HUMANOID15.joint_names[j] for j in np.flatnonzero(
        ...     ~map_visibility(visible, "coco17", "humanoid15"))]
        ['root', 'chest', 'left_hip']
    """
    _check_joint_axis(mask, get_skeleton(src), "mask", channels=False)
    m = joint_mapping(src, dst, mapping)
    if isinstance(m, tuple):
        return mask[..., list(m)]
    uses = m != 0  # (J_dst, J_src)
    if isinstance(mask, torch.Tensor):
        u = torch.as_tensor(uses, device=mask.device)
        return (mask.bool()[..., None, :] | ~u).all(dim=-1)
    return (mask.astype(bool)[..., None, :] | ~uses).all(axis=-1)


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
    _check_joint_axis(pose, sk, "pose", channels=True)
    if not 0 <= axis < pose.shape[-1]:
        raise ValueError(f"axis must be in [0, {pose.shape[-1]}), got {axis}")
    out = pose[..., list(sk.flip_permutation), :]
    out = out.clone() if isinstance(out, torch.Tensor) else out.copy()
    out[..., axis] = 2 * center - out[..., axis]
    return out
