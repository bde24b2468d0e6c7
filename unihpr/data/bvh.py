"""BVH (Biovision Hierarchy) motion files -> world joint positions.

A BVH file has a ``HIERARCHY`` (a tree of ``ROOT`` / ``JOINT`` blocks, each
with an ``OFFSET`` and ``CHANNELS``, leaves closed by ``End Site`` blocks) and
a ``MOTION`` section (``Frames: N``, ``Frame Time: dt`` and N lines holding
every joint's channel values in hierarchy order). [`read_bvh`][] reads it as
follows:

* ``OFFSET`` is the joint's position in its parent's frame.
* ``CHANNELS`` may list ``Xposition Yposition Zposition Xrotation Yrotation
  Zrotation`` in any order and any subset (names are case-insensitive).
* The rotation channels, in the order listed, compose intrinsically:
  ``Zrotation Xrotation Yrotation`` is ``Rz @ Rx @ Ry`` (angles in degrees;
  see [`euler_to_matrix`][unihpr.data.mocap_clip.euler_to_matrix]).
* Position channels, where a joint has them (the root; every joint in some
  exporters), give the joint's translation in its parent's frame and replace
  the ``OFFSET`` components they name, as MotionBuilder and Blender read them.
* Translation comes before rotation whatever the channel order: a joint's
  frame is ``parent frame @ T(translation) @ R(rotation channels)``, and the
  joint's position is the origin of that frame,
  ``p_parent + R_parent @ translation``.
* An ``End Site`` is a point ``"<joint>_end"`` at ``p_joint + R_joint @ OFFSET``
  (e.g. the top of the head), kept unless ``end_sites=False``.

Lengths are converted to metres (``unit``, see
[`unihpr.data.mocap_clip`][]) and z-up files to the project's y-up world
(``up_axis="z"``). Every malformed file raises ``ValueError`` naming the file
and line: unknown keywords, unbalanced braces, a ``CHANNELS`` count that does
not match its names, motion lines with the wrong number of values, NaN or
infinite values, fewer or more motion lines than ``Frames:`` announces (checked
before any array is allocated), counts that are not plain ASCII numbers, and
more frames x joints than ``MAX_JOINT_FRAMES`` (4,194,304; see
[`unihpr.data.mocap_clip`][]), checked before the motion lines are parsed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unihpr._validate import check_choice
from unihpr.data._io import check_file, is_count, is_float, parse_float, read_text_lines
from unihpr.data.mocap_clip import (
    UP_AXES,
    MocapClip,
    check_joint_frames,
    euler_to_matrix,
    kinematic_clip,
    tree_diameter,
)

__all__ = ["read_bvh"]

# channel name (lower case) -> (kind, axis letter)
_CHANNELS = {f"{a.lower()}{kind}": (kind, a) for kind in ("position", "rotation") for a in "XYZ"}
_FRAMES = re.compile(r"^\s*Frames\s*:\s*(\S+)\s*$", re.IGNORECASE)
_FRAME_TIME = re.compile(r"^\s*Frame\s+Time\s*:\s*(\S+)\s*$", re.IGNORECASE)


@dataclass
class _Joint:
    name: str
    parent: int
    line: int
    end_site: bool = False
    offset: np.ndarray | None = None
    channels: list[tuple[str, str]] = field(default_factory=list)  # (kind, axis)
    has_channels: bool = False


def _parse_hierarchy(path: Path, lines: list[str], stop: int) -> list[_Joint]:
    """The joints of ``lines[:stop]`` (parents before children, file order)."""
    toks = [(t, i + 1) for i in range(stop) for t in lines[i].split()]
    if not toks or toks[0][0].upper() != "HIERARCHY":
        where = f"line {toks[0][1]} starts with {toks[0][0]!r}" if toks else "it is empty"
        raise ValueError(f"{path}: a BVH file starts with 'HIERARCHY', but {where}")
    joints: list[_Joint] = []
    stack: list[int] = []  # open blocks
    pos = 1

    def err(line: int, msg: str) -> ValueError:
        return ValueError(f"{path}:{line}: {msg}")

    def expect_open(line: int) -> None:
        nonlocal pos
        if pos >= len(toks) or toks[pos][0] != "{":
            found = repr(toks[pos][0]) if pos < len(toks) else "the end of the hierarchy"
            raise err(toks[pos][1] if pos < len(toks) else line, f"expected '{{', found {found}")
        pos += 1

    while pos < len(toks):
        tok, line = toks[pos]
        key = tok.upper()
        pos += 1
        if key in ("ROOT", "JOINT"):
            if key == "ROOT" and (stack or joints):
                raise err(line, "a second ROOT (several hierarchies in one file are not supported)"
                          if joints and not stack else "ROOT inside a joint block")  # fmt: skip
            if key == "JOINT" and not stack:
                raise err(line, "JOINT outside the ROOT block")
            if stack and joints[stack[-1]].end_site:
                raise err(line, f"{tok} inside an End Site block")
            name_toks = []
            while pos < len(toks) and toks[pos][1] == line and toks[pos][0] != "{":
                name_toks.append(toks[pos][0])
                pos += 1
            if not name_toks:
                raise err(line, f"{tok} needs a joint name")
            joints.append(_Joint(" ".join(name_toks), stack[-1] if stack else -1, line))
            expect_open(line)
            stack.append(len(joints) - 1)
        elif key == "END":
            if pos >= len(toks) or toks[pos][0].upper() != "SITE":
                raise err(line, "expected 'End Site'")
            pos += 1
            if not stack or joints[stack[-1]].end_site:
                raise err(line, "End Site outside a joint block")
            parent = joints[stack[-1]]
            joints.append(_Joint(f"{parent.name}_end", stack[-1], line, end_site=True))
            expect_open(line)
            stack.append(len(joints) - 1)
        elif key == "OFFSET":
            if not stack:
                raise err(line, "OFFSET outside a joint block")
            joint = joints[stack[-1]]
            if joint.offset is not None:
                raise err(line, f"second OFFSET for joint {joint.name!r}")
            vals = toks[pos : pos + 3]
            # a fourth number on the line is an error; a keyword may follow (compact files)
            extra = pos + 3 < len(toks) and toks[pos + 3][1] == line and is_float(toks[pos + 3][0])
            if len(vals) < 3 or any(v[1] != line for v in vals) or extra:
                raise err(line, "OFFSET needs exactly 3 numbers on its line")
            joint.offset = np.array([parse_float(v, path, line, "OFFSET") for v, _ in vals])
            pos += 3
        elif key == "CHANNELS":
            if not stack or joints[stack[-1]].end_site:
                raise err(line, "CHANNELS outside a ROOT/JOINT block")
            joint = joints[stack[-1]]
            if joint.has_channels:
                raise err(line, f"second CHANNELS for joint {joint.name!r}")
            if pos >= len(toks) or not is_count(toks[pos][0]):
                raise err(line, "CHANNELS needs a count, e.g. 'CHANNELS 3 Zrotation Xrotation "
                          "Yrotation'")  # fmt: skip
            n = int(toks[pos][0])
            pos += 1
            names = [t for t, ln in toks[pos : pos + n] if ln == line]
            if len(names) != n or any(t.lower() not in _CHANNELS for t in names):
                found = [t for t, ln in toks[pos:] if ln == line]
                raise err(line, f"CHANNELS {n} must be followed by {n} of {sorted(_CHANNELS)} "
                          f"on its line, found {found}")  # fmt: skip
            nxt = toks[pos + n] if pos + n < len(toks) else None
            if nxt is not None and nxt[1] == line and nxt[0].lower() in _CHANNELS:
                raise err(line, f"CHANNELS {n} has more than {n} names: "
                          f"{[t for t, ln in toks[pos:] if ln == line]}")  # fmt: skip
            chans = [_CHANNELS[t.lower()] for t in names]
            if len(set(chans)) != len(chans):
                raise err(line, f"repeated channel in {names}")
            joint.channels, joint.has_channels = chans, True
            pos += n
        elif tok == "}":
            if not stack:
                raise err(line, "unbalanced '}'")
            joint = joints[stack.pop()]
            if joint.offset is None:
                raise err(line, f"joint {joint.name!r} (line {joint.line}) has no OFFSET")
        elif tok == "{":
            raise err(line, "'{' without ROOT, JOINT or End Site")
        else:
            raise err(line, f"unknown keyword {tok!r} in HIERARCHY")
    if stack:
        raise ValueError(f"{path}: block of {joints[stack[-1]].name!r} (line "
                         f"{joints[stack[-1]].line}) is never closed (truncated file?)")  # fmt: skip
    if not joints:
        raise ValueError(f"{path}: HIERARCHY has no ROOT")
    return joints


def _parse_motion(
    path: Path, lines: list[str], start: int, n_channels: int, n_joints: int
) -> tuple[np.ndarray, float]:
    """(frames (N, C) float64, frame time) of the MOTION section after line ``start``."""
    header = [i for i in range(start + 1, len(lines)) if lines[i].strip()][:2]
    if len(header) < 2:
        raise ValueError(f"{path}: MOTION needs 'Frames: N' and 'Frame Time: dt' lines "
                         "(truncated file?)")  # fmt: skip
    m_frames, m_time = _FRAMES.match(lines[header[0]]), _FRAME_TIME.match(lines[header[1]])
    if not m_frames or not is_count(m_frames.group(1)):
        raise ValueError(f"{path}:{header[0] + 1}: expected 'Frames: N' (N >= 1), "
                         f"found {lines[header[0]].strip()!r}")  # fmt: skip
    if not m_time:
        raise ValueError(f"{path}:{header[1] + 1}: expected 'Frame Time: dt', "
                         f"found {lines[header[1]].strip()!r}")  # fmt: skip
    n = int(m_frames.group(1))
    dt = parse_float(m_time.group(1), path, header[1] + 1, "Frame Time")
    if n < 1:
        raise ValueError(f"{path}:{header[0] + 1}: the file has no frames (Frames: {n})")
    if dt <= 0:
        raise ValueError(f"{path}:{header[1] + 1}: Frame Time must be > 0, got {dt}")
    data = [i for i in range(header[1] + 1, len(lines)) if lines[i].strip()]
    if len(data) != n:
        detail = ("truncated file?" if len(data) < n
                  else f"the extra data starts at line {data[n] + 1}")  # fmt: skip
        raise ValueError(f"{path}:{header[0] + 1}: 'Frames: {n}' but {len(data)} motion lines "
                         f"follow ({detail})")  # fmt: skip
    check_joint_frames(path, n, n_joints)
    # allocated only now that the file is known to hold n lines
    frames = np.empty((n, n_channels), dtype=np.float64)
    for k, i in enumerate(data):
        values = lines[i].split()
        if len(values) != n_channels:
            raise ValueError(f"{path}:{i + 1}: expected {n_channels} values (the channels of the "
                             f"HIERARCHY), found {len(values)}")  # fmt: skip
        try:
            frames[k] = values
        except ValueError:
            bad = next(v for v in values if not is_float(v))
            raise ValueError(f"{path}:{i + 1}: {bad!r} is not a number") from None
    finite = np.isfinite(frames).all(axis=1)
    if not finite.all():
        i = data[int(np.argmin(finite))]
        raise ValueError(f"{path}:{i + 1}: NaN or infinite channel value")
    return frames, dt


def _forward_kinematics(joints: list[_Joint], frames: np.ndarray) -> np.ndarray:
    """World positions (t, J, 3) of frames (t, C), in file units and the file's axes."""
    t = frames.shape[0]
    pos = np.zeros((t, len(joints), 3))
    rot: list[np.ndarray | None] = [None] * len(joints)
    col = 0
    for j, joint in enumerate(joints):
        if joint.end_site:
            pos[:, j] = pos[:, joint.parent] + rot[joint.parent] @ joint.offset
            continue
        trans = np.repeat(joint.offset[None], t, axis=0)
        axes, rot_cols = "", []
        for k, (kind, axis) in enumerate(joint.channels):
            if kind == "position":
                trans[:, "XYZ".index(axis)] = frames[:, col + k]
            else:
                axes += axis
                rot_cols.append(col + k)
        col += len(joint.channels)
        local = euler_to_matrix(np.deg2rad(frames[:, rot_cols]), axes)
        if joint.parent < 0:
            pos[:, j], rot[j] = trans, local
        else:
            r_parent = rot[joint.parent]
            pos[:, j] = pos[:, joint.parent] + np.einsum("tij,tj->ti", r_parent, trans)
            rot[j] = r_parent @ local
    return pos


def read_bvh(
    path: str | os.PathLike,
    *,
    unit: str | float = "auto",
    up_axis: str = "y",
    end_sites: bool = True,
) -> MocapClip:
    """Read a BVH file into world joint positions (see the module docstring).

    Args:
        path: The ``.bvh`` file.
        unit: Length unit of the file: ``"auto"`` (guessed from the skeleton's
            size), a name of ``unihpr.data.mocap_clip.LENGTH_UNITS``
            (``"m"``, ``"cm"``, ``"mm"``, ``"inch"``, ``"cmu"``) or metres per unit.
        up_axis: The file's up axis, ``"y"`` (most BVH) or ``"z"``; the result is y up.
        end_sites: Keep the End Site points as joints ``"<joint>_end"``.

    Returns:
        A [`MocapClip`][unihpr.data.mocap_clip.MocapClip]: joints (T, J, 3)
        float64 metres, the file's joints as a skeleton named ``"bvh:<file stem>"``
        (ROOT first, file order), ``fps = 1 / Frame Time``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is malformed (the message names file and line).

    Examples:
        >>> import tempfile, pathlib
        >>> text = '''HIERARCHY
        ... ROOT Hips
        ... {
        ...   OFFSET 0 0 0
        ...   CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
        ...   JOINT Chest
        ...   {
        ...     OFFSET 0 10 0
        ...     CHANNELS 3 Zrotation Xrotation Yrotation
        ...     End Site
        ...     {
        ...       OFFSET 0 10 0
        ...     }
        ...   }
        ... }
        ... MOTION
        ... Frames: 1
        ... Frame Time: 0.033333
        ... 0 90 0 90 0 0 0 0 0
        ... '''
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "bend.bvh"
        >>> _ = f.write_text(text)
        >>> clip = read_bvh(f, unit="cm")
        >>> clip.skeleton.joint_names
        ('Hips', 'Chest', 'Chest_end')
        >>> np.round(clip.joints[0], 3)  # Zrotation 90 turns the chain from +y to -x
        array([[ 0. ,  0.9,  0. ],
               [-0.1,  0.9,  0. ],
               [-0.2,  0.9,  0. ]])
    """
    path = check_file(path, "BVH")
    check_choice("up_axis", up_axis, UP_AXES)
    lines = read_text_lines(path, "BVH")
    motion = next((i for i, ln in enumerate(lines) if ln.strip().upper() == "MOTION"), None)
    if motion is None:
        raise ValueError(f"{path}: no MOTION section (truncated file, or not a BVH file?)")
    joints = _parse_hierarchy(path, lines, motion)
    seen: set[str] = set()
    for j in joints:
        if j.name in seen:
            raise ValueError(f"{path}:{j.line}: joint name {j.name!r} is repeated")
        seen.add(j.name)
    n_channels = sum(len(j.channels) for j in joints)
    if n_channels == 0:
        raise ValueError(f"{path}: the HIERARCHY declares no CHANNELS")
    frames, dt = _parse_motion(path, lines, motion, n_channels, len(joints))
    diameter = tree_diameter(np.stack([j.offset for j in joints]), [j.parent for j in joints])
    keep = [i for i, j in enumerate(joints) if end_sites or not j.end_site]
    new = {old: k for k, old in enumerate(keep)}  # End Sites have no children
    return kinematic_clip(
        path, f"bvh:{path.stem}", [joints[i].name for i in keep],
        [new.get(joints[i].parent, -1) for i in keep], diameter, len(frames),
        lambda t: _forward_kinematics(joints, frames[t])[:, keep], unit=unit, up_axis=up_axis,
        fps=1.0 / dt,
    )  # fmt: skip
