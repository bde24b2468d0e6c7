"""Writers of small BVH and ASF/AMC files for the motion-capture tests, and an
independent float64 reference for rotations (axis-angle, Rodrigues)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

UNIT_AXES = {"X": np.array([1.0, 0, 0]), "Y": np.array([0, 1.0, 0]), "Z": np.array([0, 0, 1.0])}


def rodrigues(axis: np.ndarray, angle: float) -> np.ndarray:
    """Right-handed rotation by ``angle`` radians about unit ``axis`` (float64)."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def intrinsic(axes: str, angles_rad) -> np.ndarray:
    """Product R_axes[0] @ R_axes[1] @ ... built from axis-angle rotations."""
    r = np.eye(3)
    for a, t in zip(axes, angles_rad):
        r = r @ rodrigues(UNIT_AXES[a], float(t))
    return r


def bvh_text(joints: list[dict], frames: np.ndarray, frame_time: float = 1 / 30) -> str:
    """A BVH file of ``joints`` (depth-first order, each ``{"name", "parent" (index or
    -1), "offset", "channels" (list of names), "end" (End Site offset or None)}``) and
    ``frames`` (T, C) whose columns follow the joints' channels in list order."""
    children: dict[int, list[int]] = {}
    for i, j in enumerate(joints):
        children.setdefault(j["parent"], []).append(i)
    order: list[int] = []

    def visit(i: int) -> None:
        order.append(i)
        for c in children.get(i, []):
            visit(c)

    visit(children[-1][0])
    assert order == list(range(len(joints))), "joints must be listed depth-first"
    lines = ["HIERARCHY"]

    def emit(i: int, depth: int) -> None:
        j, ind = joints[i], "\t" * depth
        lines.append(f"{ind}{'ROOT' if j['parent'] < 0 else 'JOINT'} {j['name']}")
        lines.append(f"{ind}{{")
        lines.append(f"{ind}\tOFFSET " + " ".join(f"{v:.17g}" for v in j["offset"]))
        lines.append(f"{ind}\tCHANNELS {len(j['channels'])} " + " ".join(j["channels"]))
        for c in children.get(i, []):
            emit(c, depth + 1)
        if j.get("end") is not None:
            lines.extend([f"{ind}\tEnd Site", f"{ind}\t{{",
                          f"{ind}\t\tOFFSET " + " ".join(f"{v:.17g}" for v in j["end"]),
                          f"{ind}\t}}"])  # fmt: skip
        lines.append(f"{ind}}}")

    emit(0, 0)
    frames = np.atleast_2d(frames)
    lines += ["MOTION", f"Frames: {len(frames)}", f"Frame Time: {frame_time:.17g}"]
    lines += [" ".join(f"{v:.17g}" for v in row) for row in frames]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def humanoid_bvh_joints(names: dict[str, str], scale: float = 1.0) -> list[dict]:
    """A small standing humanoid in metres * ``scale`` (y up, facing +z), MotionBuilder-
    style joints renamed through ``names`` (missing keys keep the default name). The
    root has 6 channels (ZXY), every other joint 3 (ZXY), End Sites on head, hands, feet."""
    rot = ["Zrotation", "Xrotation", "Yrotation"]
    pos = ["Xposition", "Yposition", "Zposition"]
    spec = [  # name, parent name, offset (m), end site offset
        ("Hips", None, (0, 0, 0), None),
        ("Spine", "Hips", (0, 0.1, 0), None),
        ("Spine1", "Spine", (0, 0.15, 0), None),
        ("Neck", "Spine1", (0, 0.25, 0), None),
        ("Head", "Neck", (0, 0.1, 0), (0, 0.2, 0)),
        ("LeftShoulder", "Spine1", (0.05, 0.2, 0), None),
        ("LeftArm", "LeftShoulder", (0.15, 0, 0), None),
        ("LeftForeArm", "LeftArm", (0.28, 0, 0), None),
        ("LeftHand", "LeftForeArm", (0.25, 0, 0), (0.1, 0, 0)),
        ("RightShoulder", "Spine1", (-0.05, 0.2, 0), None),
        ("RightArm", "RightShoulder", (-0.15, 0, 0), None),
        ("RightForeArm", "RightArm", (-0.28, 0, 0), None),
        ("RightHand", "RightForeArm", (-0.25, 0, 0), (-0.1, 0, 0)),
        ("LeftUpLeg", "Hips", (0.09, -0.05, 0), None),
        ("LeftLeg", "LeftUpLeg", (0, -0.42, 0), None),
        ("LeftFoot", "LeftLeg", (0, -0.41, 0), (0, -0.05, 0.12)),
        ("RightUpLeg", "Hips", (-0.09, -0.05, 0), None),
        ("RightLeg", "RightUpLeg", (0, -0.42, 0), None),
        ("RightFoot", "RightLeg", (0, -0.41, 0), (0, -0.05, 0.12)),
    ]
    index = {s[0]: i for i, s in enumerate(spec)}
    out = []
    for name, parent, off, end in spec:
        out.append({
            "name": names.get(name, name),
            "parent": -1 if parent is None else index[parent],
            "offset": np.array(off) * scale,
            "channels": (pos + rot) if parent is None else rot,
            "end": None if end is None else np.array(end) * scale,
        })  # fmt: skip
    return out


def random_frames(joints: list[dict], t: int, rng: np.random.Generator, root_height: float):
    """(T, C) random channel values: rotations in degrees, the root near ``root_height``."""
    cols = []
    for j in joints:
        for c in j["channels"]:
            if c.lower().endswith("position"):
                base = root_height if c[0] in "Yy" else 0.0
                cols.append(base + rng.uniform(-0.1, 0.1, t) * root_height)
            else:
                cols.append(rng.uniform(-40, 40, t))
    return np.stack(cols, axis=1)


def asf_text(bones: list[dict], *, length_factor: float = 1.0, angle: str = "deg",
             root_order: str = "TX TY TZ RX RY RZ", root_axis: str = "XYZ",
             root_orientation=(0, 0, 0)) -> str:  # fmt: skip
    """An ASF file of ``bones`` (each ``{"name", "parent", "direction", "length" (base
    units), "axis" (3 angles), "order", "dof" (list)}``); lengths are written multiplied
    by ``length_factor`` as the ``:units length`` convention requires."""
    lines = [":version 1.10", ":name test", ":units", "  mass 1.0",
             f"  length {length_factor}", f"  angle {angle}", ":documentation",
             "   written by the unihpr tests", ":root", f"   order {root_order}",
             f"   axis {root_axis}", "   position 0 0 0",
             "   orientation " + " ".join(str(v) for v in root_orientation), ":bonedata"]  # fmt: skip
    for k, b in enumerate(bones):
        d = b["direction"]
        lines += ["  begin", f"     id {k + 1}", f"     name {b['name']}",
                  f"     direction {d[0]:.17g} {d[1]:.17g} {d[2]:.17g}",
                  f"     length {b['length'] * length_factor:.17g}",
                  "     axis " + " ".join(f"{v:.17g}" for v in b["axis"]) + f" {b['order']}"]  # fmt: skip
        if b["dof"]:
            lines.append("    dof " + " ".join(b["dof"]))
            lines.append("    limits " + "\n           ".join("(-180.0 , 180.0)" for _ in b["dof"]))
        lines.append("  end")
    lines += [":hierarchy", "  begin"]
    kids: dict[str, list[str]] = {}
    for b in bones:
        kids.setdefault(b["parent"], []).append(b["name"])
    lines += [f"    {p} " + " ".join(c) for p, c in kids.items()]
    lines.append("  end")
    return "\n".join(lines) + "\n"


def amc_text(root: np.ndarray, values: dict[str, np.ndarray], first: int = 1,
             header: str = ":DEGREES") -> str:  # fmt: skip
    """An AMC file: ``root`` (T, 6) in the root order, ``values[bone]`` (T, K) in dof order."""
    lines = ["#!OML:ASF test.asf", ":FULLY-SPECIFIED", header]
    for t in range(len(root)):
        lines.append(str(first + t))
        lines.append("root " + " ".join(f"{v:.17g}" for v in root[t]))
        for name, v in values.items():
            lines.append(f"{name} " + " ".join(f"{x:.17g}" for x in np.atleast_1d(v[t])))
    return "\n".join(lines) + "\n"


def asf_bone(name, parent, direction, length, axis=(0, 0, 0), order="XYZ", dof=("rx", "ry", "rz")):
    """One bone for [`asf_text`]: direction in the global frame, axis angles in degrees."""
    return {"name": name, "parent": parent, "direction": np.asarray(direction, dtype=float),
            "length": length, "axis": axis, "order": order, "dof": list(dof)}  # fmt: skip


def cmu_like_bones():
    """A standing skeleton with CMU's bone names, lengths in inches."""
    b = asf_bone
    return [
        b("lhipjoint", "root", (0.7, -0.6, 0.3), 2.5), b("lfemur", "lhipjoint", (0.34, -0.94, 0), 16.0),
        b("ltibia", "lfemur", (0.34, -0.94, 0), 16.5), b("lfoot", "ltibia", (0, -0.3, 0.95), 5.5),
        b("ltoes", "lfoot", (0, 0, 1), 2.5),
        b("rhipjoint", "root", (-0.7, -0.6, 0.3), 2.5), b("rfemur", "rhipjoint", (-0.34, -0.94, 0), 16.0),
        b("rtibia", "rfemur", (-0.34, -0.94, 0), 16.5), b("rfoot", "rtibia", (0, -0.3, 0.95), 5.5),
        b("rtoes", "rfoot", (0, 0, 1), 2.5),
        b("lowerback", "root", (0, 1, 0), 4.5), b("upperback", "lowerback", (0, 1, 0), 4.5),
        b("thorax", "upperback", (0, 1, 0), 4.5), b("lowerneck", "thorax", (0, 1, 0), 3.8),
        b("upperneck", "lowerneck", (0, 1, 0), 3.8), b("head", "upperneck", (0, 1, 0), 3.9),
        b("lclavicle", "thorax", (0.9, 0.4, 0), 7.0), b("lhumerus", "lclavicle", (1, 0, 0), 11.0),
        b("lradius", "lhumerus", (1, 0, 0), 7.5), b("lwrist", "lradius", (1, 0, 0), 3.7),
        b("rclavicle", "thorax", (-0.9, 0.4, 0), 7.0), b("rhumerus", "rclavicle", (-1, 0, 0), 11.0),
        b("rradius", "rhumerus", (-1, 0, 0), 7.5), b("rwrist", "rradius", (-1, 0, 0), 3.7),
    ]  # fmt: skip


def held_out_walk():
    """The held-out "walk" clip seen whole by one fixed camera: (T, 15, 2) pixels and
    (T, 15, 3) root-relative camera-frame metres, float32 (skips without pybullet)."""
    import pytest
    import torch

    pytest.importorskip("pybullet_data")
    from unihpr.data.mocap import humanoid_forward_kinematics, load_mocap_clip
    from unihpr.data.virtual_cameras import CameraDistribution, project_to_camera, sample_cameras

    world = torch.as_tensor(humanoid_forward_kinematics(load_mocap_clip("walk")))
    dist = CameraDistribution(elevation=(10.0, 10.0), distance=(4.5, 4.5), roll=(0.0, 0.0))
    cam = sample_cameras(world[:, 0].mean(0, keepdim=True), dist, torch.Generator().manual_seed(0))
    c3, uv = project_to_camera(world.reshape(1, -1, 3), cam)
    c3 = c3.view(-1, 15, 3)
    return uv.view(-1, 15, 2).float(), (c3 - c3[:, :1]).float()
