"""Poses from one joint layout to another, and motion-capture rigs by joint name.

[`map_joints`][] converts poses ``(..., J, C)`` between the registered layouts
of [`unihpr.data.skeletons`][] (a selection, a reordering or a weighted mean
of source joints, see [`joint_mapping`][]) and from a motion-capture rig (a
BVH or ASF file's own joints) by joint name, with a preset of
[`RIG_MAPPINGS`][] or a table of your own (see [`resolve_rig_mapping`][]).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np
import torch

from unihpr.data.skeletons import (
    H36M17_TO_MPI_INF_3DHP17,
    H36M32_TO_H36M17,
    MPI_INF_3DHP17_TO_H36M17,
    SMPL24_TO_H36M17,
    Skeleton,
    check_joint_axis,
    get_skeleton,
)

__all__ = [
    "RIG_MAPPINGS",
    "JointSource",
    "joint_mapping",
    "map_joints",
    "map_visibility",
    "mappable_layouts",
    "resolve_rig_mapping",
]

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


def _motionbuilder_preset(head_top: str) -> tuple:
    """A rig with MotionBuilder names (Spine1 sits mid-back, Neck at the shoulders'
    height) whose top of the head is ``head_top``."""
    trunks = {"humanoid15": {"root": "Hips", "chest": "Spine1", "neck": "Neck"},
              "h36m17": {"pelvis": "Hips", "spine": "Spine1", "thorax": "Neck",
                         "neck_nose": "Head", "head": head_top}}  # fmt: skip
    return _MOTIONBUILDER_LIMBS, ("Left",), ("Right",), trunks


_RIG_PRESETS: dict[str, tuple[tuple, tuple[str, ...], tuple[str, ...], dict]] = {
    # CMU database BVH conversions ("Head_end" is the head's End Site).
    "cmu_bvh": _motionbuilder_preset("Head_end"),
    # Mixamo rigs ("mixamorig:Hips"; the namespace is ignored when matching).
    "mixamo": _motionbuilder_preset("HeadTop_End"),
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
read by joint name (see [`resolve_rig_mapping`][unihpr.data.mapping.resolve_rig_mapping]).
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


def _alternatives(joint: str, source: JointSource) -> list[dict[str, float]]:
    """A joint source as alternatives, each ``{rig joint: weight}``, the first one found used."""
    if isinstance(source, str):
        return [{source: 1.0}]
    if isinstance(source, Mapping):
        w = [float(v) for v in source.values()]
        if not w or not all(math.isfinite(v) for v in w) or abs(sum(w) - 1.0) > 1e-6:
            raise ValueError(
                f"joint {joint!r}: weights must be finite and sum to 1, got {dict(source)}"
            )
        return [dict(source)]
    if isinstance(source, (tuple, list)):
        if not source:
            raise ValueError(f"joint {joint!r}: empty tuple of alternative names")
        return [{name: 1.0} for name in source]
    raise TypeError(
        f"a joint source must be a name, a tuple of alternative names or a "
        f"{{name: weight}} dict, got {type(source).__name__}"
    )


def _describe(source: JointSource) -> str:
    if isinstance(source, str):
        return repr(source)
    return ("all of " if isinstance(source, Mapping) else "one of ") + repr(list(source))


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
    exact = {n: i for i, n in enumerate(rig.joint_names)}
    loose: dict[str, list[int]] = {}  # names compared without case, namespace and separators
    for i, n in enumerate(rig.joint_names):
        loose.setdefault(_normalise_joint_name(n), []).append(i)

    def find(name: str) -> int | None:
        hits = [exact[name]] if name in exact else loose.get(_normalise_joint_name(name), [])
        if len(hits) > 1:
            raise ValueError(
                f"rig {rig.name!r}: joint name {name!r} is ambiguous, it matches "
                f"{[rig.joint_names[i] for i in hits]}; pass mapping= with exact names"
            )
        return hits[0] if hits else None

    out: dict[str, dict[str, float]] = {}
    missing = []
    for joint in dst_sk.joint_names:
        for alternative in _alternatives(joint, table[joint]):
            found = [find(name) for name in alternative]
            if None not in found:
                out[joint] = {}
                for i, w in zip(found, alternative.values()):
                    name = rig.joint_names[i]
                    out[joint][name] = out[joint].get(name, 0.0) + float(w)
                break
        else:
            missing.append(f"{joint} <- {_describe(table[joint])}")
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
    check_joint_axis(pose, get_skeleton(src), "pose", channels=True)
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
    check_joint_axis(mask, get_skeleton(src), "mask", channels=False)
    m = joint_mapping(src, dst, mapping)
    if isinstance(m, tuple):
        return mask[..., list(m)]
    uses = m != 0  # (J_dst, J_src)
    if isinstance(mask, torch.Tensor):
        u = torch.as_tensor(uses, device=mask.device)
        return (mask.bool()[..., None, :] | ~u).all(dim=-1)
    return (mask.astype(bool)[..., None, :] | ~uses).all(axis=-1)
