"""Acclaim ASF skeletons and AMC motions (the CMU database format) -> world joints.

An ASF file describes the skeleton once; each AMC file holds a motion of it.
[`read_asf`][] parses the skeleton and [`read_amc`][] runs the forward
kinematics of a motion. The conventions, as the CMU database and its viewer
use them:

* ``:units`` — ``length L``: every length and root translation is stored
  multiplied by L (CMU: ``0.45``), so values are divided by L first; ``angle``
  is ``deg`` or ``rad`` (an AMC ``:RADIANS`` / ``:DEGREES`` header overrides it
  for the motion). The divided lengths are in the file's base unit (CMU:
  inches); ``unit`` converts them to metres, see [`unihpr.data.mocap_clip`][].
  For CMU files this is ``value / 0.45 * 0.0254`` = ``value * 0.05644`` m.
* A bone's ``direction`` (unit vector) and ``length`` give the bone in the
  **global** frame at rest: the bone runs from its parent bone's tip (the root
  for bones attached to it) to ``start + length * direction``.
* ``axis ax ay az ORDER`` orients the bone's local frame:
  ``C = R(ORDER[2]) R(ORDER[1]) R(ORDER[0])`` with the angle of each axis
  (``"XYZ"`` is ``Rz(az) Ry(ay) Rx(ax)``: rotate about x first, in the fixed
  frame). The root's ``orientation`` and ``axis`` are read the same way.
* ``dof`` lists the bone's rotation degrees of freedom in the order the AMC
  values come; they apply in that order in the bone's local frame:
  ``dof rx ry rz`` is ``B = Rz Ry Rx``. The bone's world rotation is
  ``M = M_parent C B C^-1`` and its tip ``start + length * M @ direction``.
* The root's ``order`` (e.g. ``TX TY TZ RX RY RZ``) lists the AMC root values:
  translations give the root's position (in place of ``position``), rotations
  compose like a bone's dof.

``limits`` are parsed and kept on the bones but not applied (captured motion
sometimes exceeds them). Every malformed file raises a ``ValueError`` naming
the file and line; a motion of more frames x joints than ``MAX_JOINT_FRAMES``
(see [`unihpr.data.mocap_clip`][]) is refused before its values are parsed. Translation and length dofs of bones (``tx``,
``ty``, ``tz``, ``l``; absent from CMU's files) are rejected with an error.

Joints: a joint is named after the bone that **starts** there, as BVH joints
are (``"lfemur"`` is the left hip, ``"ltibia"`` the left knee), the root is
``"root"``, and each leaf bone's tip is ``"<bone>_end"`` (``"head_end"`` is the
top of the head). The CMU BVH conversions name the same points ``LeftUpLeg``,
``LeftLeg``...: see the ``cmu_asf`` and ``cmu_bvh`` presets of
[`RIG_MAPPINGS`][unihpr.data.mapping.RIG_MAPPINGS].
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unihpr._validate import check_choice, check_real
from unihpr.data._io import check_file, is_count, is_float, parse_float, read_text_lines
from unihpr.data.mocap_clip import (
    UP_AXES,
    MocapClip,
    check_joint_frames,
    euler_to_matrix,
    kinematic_clip,
    tree_diameter,
)

__all__ = ["AsfBone", "AsfSkeleton", "read_amc", "read_asf"]

_ROTATIONS = {"rx": "X", "ry": "Y", "rz": "Z"}
_TRANSLATIONS = {"tx": 0, "ty": 1, "tz": 2}
_SECTIONS = (":version", ":name", ":units", ":documentation", ":root", ":bonedata",
             ":hierarchy", ":skin")  # fmt: skip
_BONE_KEYS = ("id", "name", "direction", "length", "axis", "dof", "limits", "bodymass", "cofmass")


@dataclass(frozen=True)
class AsfBone:
    """One bone of an ASF skeleton.

    Attributes:
        name: Bone name.
        parent: Parent bone name (``"root"`` for bones attached to the root).
        direction: (3,) unit vector, global frame at rest.
        length: Length in the file's base unit (already divided by ``:units length``).
        axis: (3,) angles (radians) of the local frame about x, y, z.
        axis_order: Order in which the axis angles apply, e.g. ``"XYZ"``.
        dof: Rotation degrees of freedom in AMC order, e.g. ``("rx", "ry", "rz")``.
        limits: One (low, high) pair per dof, in the file's angle unit (not applied).
    """

    name: str
    parent: str
    direction: np.ndarray
    length: float
    axis: np.ndarray
    axis_order: str
    dof: tuple[str, ...]
    limits: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class AsfSkeleton:
    """A parsed ASF file; bones ordered parents first (depth-first from the root).

    Attributes:
        name: The ``:name`` field (or the file stem).
        bones: The bones.
        root_order: AMC value order of the root, e.g. ``("tx", "ty", "tz", "rx", "ry", "rz")``.
        root_axis: Order of the root orientation angles, e.g. ``"XYZ"``.
        root_position: (3,) rest position of the root, base units.
        root_orientation: (3,) radians.
        length_factor: The ``:units length`` value the file's numbers are multiplied by.
        angle_unit: ``"deg"`` or ``"rad"``.
        source: The ASF file.
    """

    name: str
    bones: tuple[AsfBone, ...]
    root_order: tuple[str, ...]
    root_axis: str
    root_position: np.ndarray
    root_orientation: np.ndarray
    length_factor: float
    angle_unit: str
    source: Path

    def joint_layout(self) -> tuple[tuple[str, ...], tuple[int, ...], list[tuple[str, int]]]:
        """``(joint names, parents, [(kind, bone index)])`` of the output joints:
        ``root``, each bone's start, leaf tips; kind is ``"root"``, ``"start"`` or ``"end"``."""
        has_child = {b.parent for b in self.bones}
        names, parents, kinds = ["root"], [-1], [("root", -1)]
        joint_of_bone: dict[str, int] = {}
        for i, b in enumerate(self.bones):
            # the joint a bone starts at hangs off the joint its parent bone starts at
            parent_joint = 0 if b.parent == "root" else joint_of_bone[b.parent]
            joint_of_bone[b.name] = len(names)
            names.append(b.name)
            parents.append(parent_joint)
            kinds.append(("start", i))
            if b.name not in has_child:
                names.append(f"{b.name}_end")
                parents.append(joint_of_bone[b.name])
                kinds.append(("end", i))
        return tuple(names), tuple(parents), kinds


def _strip(line: str) -> str:
    return line.split("#", 1)[0].strip()


def _angle(value: float, unit: str) -> float:
    return np.deg2rad(value) if unit == "deg" else value


def _order(token: str, path: Path, line: int) -> str:
    order = token.upper()
    if len(order) != 3 or sorted(order) != ["X", "Y", "Z"]:
        raise ValueError(f"{path}:{line}: axis order must be a permutation of XYZ, got {token!r}")
    return order


def _frame_matrix(angles_xyz: np.ndarray, order: str) -> np.ndarray:
    """``C`` of an ``axis``/``orientation`` line: the angles apply in ``order``, fixed frame."""
    vals = [angles_xyz["XYZ".index(a)] for a in order]
    # applying order[0] first in the fixed frame = intrinsic product in reverse
    return euler_to_matrix(np.array(vals[::-1]), order[::-1])


def read_asf(path: str | os.PathLike) -> AsfSkeleton:
    """Parse an ASF skeleton file (see the module docstring for the conventions).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: Unknown sections or keywords, missing fields, bones missing
            from or repeated in ``:hierarchy``, cycles; the message names the
            file and line.
    """
    path = check_file(path, "ASF")
    lines = [_strip(ln) for ln in read_text_lines(path, "ASF")]

    def err(i: int, msg: str) -> ValueError:
        return ValueError(f"{path}:{i + 1}: {msg}")

    units = {"length": 1.0, "angle": "deg"}
    root: dict = {"order": None, "axis": "XYZ", "position": np.zeros(3), "orientation": np.zeros(3)}
    bones: dict[str, dict] = {}
    children: dict[str, list[str]] = {}
    child_line: dict[str, int] = {}
    name = path.stem
    section = None
    block: dict | None = None
    limits_needed = 0  # limit pairs still to read for the open bone
    hierarchy_state = None  # None, "open", "closed"
    seen_sections: set[str] = set()
    for i, line in enumerate(lines):
        if not line:
            continue
        toks = line.split()
        if toks[0].startswith(":"):
            key = toks[0].lower()
            if key not in _SECTIONS:
                raise err(i, f"unknown section {toks[0]!r}; ASF sections are {list(_SECTIONS)}")
            if block is not None:
                raise err(
                    i, f"bone block opened at line {block['line'] + 1} is not closed by 'end'"
                )
            if key in seen_sections:
                raise err(i, f"section {toks[0]} appears twice")
            seen_sections.add(key)
            section = key
            if key == ":name" and len(toks) > 1:
                name = " ".join(toks[1:])
            continue
        if section in (":documentation", ":version", ":name", ":skin", None):
            if section is None:
                raise err(i, f"expected an ASF section such as ':units', found {toks[0]!r}")
            continue
        if section == ":units":
            if len(toks) != 2 or toks[0] not in ("mass", "length", "angle"):
                raise err(i, f"expected 'mass|length|angle <value>' in :units, found {line!r}")
            if toks[0] == "length":
                units["length"] = parse_float(toks[1], path, i + 1, "units length")
                if units["length"] <= 0:
                    raise err(i, f"units length must be > 0, got {toks[1]}")
            elif toks[0] == "angle":
                if toks[1].lower() not in ("deg", "rad"):
                    raise err(i, f"units angle must be 'deg' or 'rad', got {toks[1]!r}")
                units["angle"] = toks[1].lower()
        elif section == ":root":
            key = toks[0].lower()
            if key == "order":
                order = tuple(t.lower() for t in toks[1:])
                bad = [t for t in order if t not in _ROTATIONS and t not in _TRANSLATIONS]
                if bad or len(set(order)) != len(order):
                    raise err(i, f"root order must list distinct TX TY TZ RX RY RZ, got {toks[1:]}")
                root["order"] = order
            elif key == "axis":
                if len(toks) != 2:
                    raise err(i, f"expected 'axis XYZ', found {line!r}")
                root["axis"] = _order(toks[1], path, i + 1)
            elif key in ("position", "orientation"):
                if len(toks) != 4:
                    raise err(i, f"root {key} needs 3 numbers, found {toks[1:]}")
                root[key] = np.array([parse_float(t, path, i + 1, f"root {key}") for t in toks[1:]])
            else:
                raise err(i, f"unknown root keyword {toks[0]!r}")
        elif section == ":bonedata":
            key = toks[0].lower()
            if limits_needed and toks[0].startswith("("):
                pairs = _limit_pairs(line, path, i)
                block["limit_pairs"].extend(pairs)
                limits_needed -= len(pairs)
                continue
            if limits_needed:
                raise err(i, f"bone {block.get('name')!r}: {limits_needed} limit pairs missing")
            if key == "begin":
                if block is not None:
                    raise err(i, "'begin' inside a bone block")
                block = {"line": i, "limit_pairs": []}
                continue
            if block is None:
                raise err(i, f"expected 'begin' of a bone block, found {toks[0]!r}")
            if key == "end":
                _finish_bone(block, path, units, bones)
                block = None
                continue
            if key not in _BONE_KEYS:
                raise err(i, f"unknown bone keyword {toks[0]!r}; known: {list(_BONE_KEYS)}")
            if key in block:
                raise err(i, f"bone keyword {key!r} repeated")
            block[key] = (i, toks[1:])
            if key == "limits":
                if "dof" not in block:
                    raise err(i, "limits before dof")
                pairs = _limit_pairs(" ".join(toks[1:]), path, i)
                block["limit_pairs"] = pairs
                limits_needed = len(block["dof"][1]) - len(pairs)
                if limits_needed < 0:
                    raise err(i, "more limit pairs than dof")
        elif section == ":hierarchy":
            if toks[0].lower() == "begin" and hierarchy_state is None:
                hierarchy_state = "open"
            elif toks[0].lower() == "end" and hierarchy_state == "open":
                hierarchy_state = "closed"
            elif hierarchy_state == "open":
                parent = toks[0]
                for c in toks[1:]:
                    if c in child_line:
                        raise err(i, f"bone {c!r} has a second parent (first at line "
                                  f"{child_line[c] + 1})")  # fmt: skip
                    child_line[c] = i
                    children.setdefault(parent, []).append(c)
            else:
                raise err(i, f"unexpected {toks[0]!r} in :hierarchy (expected begin/end)")
    if block is not None:
        raise ValueError(f"{path}: bone block opened at line {block['line'] + 1} is never "
                         "closed (truncated file?)")  # fmt: skip
    for need in (":bonedata", ":hierarchy", ":root"):
        if need not in seen_sections:
            raise ValueError(f"{path}: no {need} section (truncated file?)")
    if hierarchy_state != "closed":
        raise ValueError(f"{path}: the :hierarchy block is not closed by 'end' (truncated file?)")
    if root["order"] is None:
        raise ValueError(f"{path}: :root has no 'order' line")
    unknown = sorted((set(children) | set(child_line)) - set(bones) - {"root"})
    if unknown:
        raise ValueError(f"{path}: :hierarchy names bones not in :bonedata: {unknown}")
    if "root" in child_line:
        raise ValueError(f"{path}:{child_line['root'] + 1}: root cannot be a child")
    # depth-first from the root, children in hierarchy order
    ordered: list[AsfBone] = []
    stack = [("root", c) for c in reversed(children.get("root", []))]
    while stack:
        parent, bone = stack.pop()
        b = bones[bone]
        ordered.append(AsfBone(name=bone, parent=parent, **b["fields"]))
        stack.extend((bone, c) for c in reversed(children.get(bone, [])))
    orphans = sorted(set(bones) - {b.name for b in ordered})
    if orphans:
        raise ValueError(f"{path}: bones not connected to the root in :hierarchy: {orphans}")
    ang = units["angle"]
    return AsfSkeleton(
        name=name,
        bones=tuple(ordered),
        root_order=root["order"],
        root_axis=root["axis"],
        root_position=root["position"] / units["length"],
        root_orientation=np.array([_angle(v, ang) for v in root["orientation"]]),
        length_factor=float(units["length"]),
        angle_unit=ang,
        source=path,
    )


_NUMBER = re.compile(r"[-+]?(?:inf|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)", re.IGNORECASE)


def _limit_pairs(text: str, path: Path, i: int) -> list[tuple[float, float]]:
    pairs = re.findall(r"\(([^()]*)\)", text)
    if not pairs or re.sub(r"\([^()]*\)", "", text).strip():
        raise ValueError(f"{path}:{i + 1}: limits must be '(low high)' pairs, got {text!r}")
    out = []
    for p in pairs:
        nums = _NUMBER.findall(p)
        if len(nums) != 2 or _NUMBER.sub("", p).replace(",", "").strip():
            raise ValueError(f"{path}:{i + 1}: a limit is '(low high)', got ({p})")
        out.append((float(nums[0]), float(nums[1])))
    return out


def _finish_bone(block: dict, path: Path, units: dict, bones: dict[str, dict]) -> None:
    first = block["line"] + 1

    def need(key: str, count: int | None) -> tuple[int, list[str]]:
        if key not in block:
            raise ValueError(f"{path}:{first}: bone block has no {key!r}")
        i, vals = block[key]
        if count is not None and len(vals) != count:
            raise ValueError(f"{path}:{i + 1}: {key} needs {count} values, found {vals}")
        return i, vals

    _, (name,) = need("name", 1)
    if name == "root" or name in bones:
        raise ValueError(f"{path}:{first}: bone name {name!r} is repeated or reserved")
    i, d = need("direction", 3)
    direction = np.array([parse_float(v, path, i + 1, "direction") for v in d])
    norm = float(np.linalg.norm(direction))
    i, (ln,) = need("length", 1)
    length = parse_float(ln, path, i + 1, "length")
    if length < 0:
        raise ValueError(f"{path}:{i + 1}: length must be >= 0, got {length}")
    if norm == 0 and length > 0:
        raise ValueError(f"{path}:{block['direction'][0] + 1}: direction of bone {name!r} is zero")
    i, a = need("axis", 4)
    ang = units["angle"]
    axis = np.array([_angle(parse_float(v, path, i + 1, "axis"), ang) for v in a[:3]])
    order = _order(a[3], path, i + 1)
    dof: tuple[str, ...] = ()
    if "dof" in block:
        i, vals = block["dof"]
        dof = tuple(v.lower() for v in vals)
        bad = [v for v in dof if v not in _ROTATIONS]
        if bad:
            raise ValueError(f"{path}:{i + 1}: bone {name!r}: dof {bad} not supported "
                             "(rotation dofs rx, ry, rz only)")  # fmt: skip
        if not dof or len(set(dof)) != len(dof):
            raise ValueError(f"{path}:{i + 1}: bone {name!r}: dof must list distinct rx ry rz")
    limits = tuple(block["limit_pairs"])
    if dof and "limits" in block and len(limits) != len(dof):
        raise ValueError(f"{path}:{first}: bone {name!r} has {len(dof)} dof but "
                         f"{len(limits)} limits")  # fmt: skip
    bones[name] = {"name": name, "fields": {
        "direction": direction / norm if norm > 0 else direction,
        "length": length / units["length"], "axis": axis, "axis_order": order,
        "dof": dof, "limits": limits}}  # fmt: skip


def _parse_amc(path: Path, asf: AsfSkeleton) -> tuple[np.ndarray, dict[str, slice], str]:
    """(values (T, D) in file units/angles, {bone: columns} in AMC order, angle unit)."""
    lines = [_strip(ln) for ln in read_text_lines(path, "AMC")]
    layout = [("root", len(asf.root_order))] + [(b.name, len(b.dof)) for b in asf.bones if b.dof]
    cols, start = {}, 0
    for bone, n in layout:
        cols[bone] = slice(start, start + n)
        start += n
    angle = asf.angle_unit
    body = []
    for i, line in enumerate(lines):
        if not line:
            continue
        if line.startswith(":"):
            key = line.split()[0].upper()
            if key == ":FULLY-SPECIFIED":
                continue
            if key in (":DEGREES", ":RADIANS"):
                angle = "deg" if key == ":DEGREES" else "rad"
                continue
            raise ValueError(f"{path}:{i + 1}: unknown AMC header {line!r}")
        body.append(i)
    starts = [k for k, i in enumerate(body) if is_count(lines[i])]
    if not starts:
        raise ValueError(f"{path}: no frames (a frame starts with a line holding its number)")
    check_joint_frames(path, len(starts), len(asf.joint_layout()[0]))
    if starts[0] != 0:
        raise ValueError(f"{path}:{body[0] + 1}: expected a frame number, found {lines[body[0]]!r}")
    # one string per value, converted at once; the array is sized by what the file holds
    tokens: list[str] = []
    src_line, counts, bases = [], [], []  # per bone line: its line, value count, destination
    first_number = int(lines[body[0]])
    for f, k in enumerate(starts):
        number_line = body[k]
        if int(lines[number_line]) != first_number + f:
            raise ValueError(f"{path}:{number_line + 1}: frame number {lines[number_line]} "
                             f"(expected {first_number + f}: frames must be consecutive)")  # fmt: skip
        end = starts[f + 1] if f + 1 < len(starts) else len(body)
        seen: set[str] = set()
        for i in body[k + 1 : end]:
            toks = lines[i].split()
            bone = toks[0]
            c = cols.get(bone)
            if c is None:
                raise ValueError(f"{path}:{i + 1}: {bone!r} is not a bone with dof in {asf.source}")
            if bone in seen:
                raise ValueError(f"{path}:{i + 1}: bone {bone!r} appears twice in frame "
                                 f"{lines[number_line]}")  # fmt: skip
            seen.add(bone)
            n = c.stop - c.start
            if len(toks) - 1 != n:
                raise ValueError(f"{path}:{i + 1}: bone {bone!r} needs {n} values (its dof), "
                                 f"found {len(toks) - 1}")  # fmt: skip
            tokens.extend(toks[1:])
            src_line.append(i)
            counts.append(n)
            bases.append(f * start + c.start)
        if len(seen) != len(cols):
            missing = [b for b in cols if b not in seen]
            raise ValueError(f"{path}:{number_line + 1}: frame {lines[number_line]} lacks "
                             f"bones {missing}")  # fmt: skip
    try:
        flat = np.array(list(map(float, tokens)), dtype=np.float64)
    except ValueError:
        at = 0
        for i, n in zip(src_line, counts):
            bad = [t for t in tokens[at : at + n] if not is_float(t)]
            if bad:
                bone = lines[i].split()[0]
                raise ValueError(
                    f"{path}:{i + 1}: {bone} value {bad[0]!r} is not a number"
                ) from None
            at += n
        raise
    counts_a = np.asarray(counts, dtype=np.int64)
    finite = np.isfinite(flat)
    if not finite.all():
        i = int(np.repeat(src_line, counts_a)[np.argmin(finite)])
        raise ValueError(f"{path}:{i + 1}: {lines[i].split()[0]} has a NaN or infinite value")
    offsets = np.arange(flat.size) - np.repeat(np.cumsum(counts_a) - counts_a, counts_a)
    values = np.empty(len(starts) * start)
    # every frame lists every bone once with its exact count: each slot is written once
    values[np.repeat(np.asarray(bases, dtype=np.int64), counts_a) + offsets] = flat
    values = values.reshape(len(starts), start)
    return values, cols, angle


def _rotation_of(values: np.ndarray, dof: tuple[str, ...], angle: str) -> np.ndarray:
    """``B`` (T, 3, 3) of dof values (T, K): the listed dof apply first to last, fixed frame."""
    rad = np.deg2rad(values) if angle == "deg" else values
    axes = "".join(_ROTATIONS[d] for d in dof)
    return euler_to_matrix(rad[:, ::-1], axes[::-1])


def read_amc(
    path: str | os.PathLike,
    skeleton: AsfSkeleton | str | os.PathLike,
    *,
    unit: str | float = "auto",
    up_axis: str = "y",
    fps: float = 120.0,
) -> MocapClip:
    """Forward kinematics of an AMC motion of an ASF skeleton.

    Args:
        path: The ``.amc`` file.
        skeleton: The parsed ASF ([`read_asf`][]) or its path.
        unit: Base unit of the ASF (after dividing by ``:units length``):
            ``"auto"`` (guessed from the skeleton's size; CMU files come out as
            ``"inch"``), a name of
            ``unihpr.data.mocap_clip.LENGTH_UNITS``, or metres per unit.
        up_axis: ``"y"`` (CMU) or ``"z"``; the result is y up.
        fps: Frame rate; AMC files do not store it (CMU captured at 120).

    Returns:
        A [`MocapClip`][unihpr.data.mocap_clip.MocapClip] whose joints are
        ``root``, every bone's start and every leaf bone's tip ``"<bone>_end"``
        (skeleton ``"asf:<asf stem>"``).

    Raises:
        FileNotFoundError: A file does not exist.
        ValueError: The AMC does not match the skeleton (unknown or missing
            bones, wrong value counts, non-consecutive frame numbers) or holds
            NaN; the message names the file and line.
    """
    asf = skeleton if isinstance(skeleton, AsfSkeleton) else read_asf(skeleton)
    path = check_file(path, "AMC")
    check_choice("up_axis", up_axis, UP_AXES)
    fps = check_real("fps", fps, low=0.0, low_open=True)
    values, cols, angle = _parse_amc(path, asf)
    names, parents, kinds = asf.joint_layout()
    by_name = {b.name: b for b in asf.bones}
    offsets = np.zeros((len(names), 3))
    for j, (kind, b) in enumerate(kinds):
        if kind == "end" or (kind == "start" and asf.bones[b].parent != "root"):
            bone = asf.bones[b] if kind == "end" else by_name[asf.bones[b].parent]
            offsets[j] = bone.direction * bone.length
    rot_idx = [k for k, d in enumerate(asf.root_order) if d in _ROTATIONS]
    c_root = _frame_matrix(asf.root_orientation, asf.root_axis)
    frames_of = {b.name: _frame_matrix(b.axis, b.axis_order) for b in asf.bones}
    # every joint is a tip: the root's, a bone's parent's (the bone's start) or a leaf bone's
    tip_of = [
        "root" if kind == "root" else asf.bones[b].parent if kind == "start" else asf.bones[b].name
        for kind, b in kinds
    ]

    def positions(frames: slice) -> np.ndarray:
        v = values[frames]
        root_vals = v[:, cols["root"]]
        root_pos = np.repeat(asf.root_position[None], len(v), axis=0)
        for k, d in enumerate(asf.root_order):
            if d in _TRANSLATIONS:
                root_pos[:, _TRANSLATIONS[d]] = root_vals[:, k] / asf.length_factor
        root_dof = tuple(asf.root_order[k] for k in rot_idx)
        b_root = _rotation_of(root_vals[:, rot_idx], root_dof, angle)
        world_rot = {"root": c_root @ b_root @ c_root.T}
        tip = {"root": root_pos}
        for bone in asf.bones:
            c, m = frames_of[bone.name], world_rot[bone.parent]
            if bone.dof:
                m = m @ c @ _rotation_of(v[:, cols[bone.name]], bone.dof, angle) @ c.T
            world_rot[bone.name] = m
            tip[bone.name] = tip[bone.parent] + bone.length * (m @ bone.direction)
        return np.stack([tip[name] for name in tip_of], axis=1)

    return kinematic_clip(
        path, f"asf:{asf.source.stem}", names, parents, tree_diameter(offsets, parents),
        len(values), positions, unit=unit, up_axis=up_axis, fps=fps,
    )  # fmt: skip
