import doctest
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mocap_files import bvh_text, humanoid_bvh_joints, intrinsic, random_frames, write

from unihpr.data import bvh as bvh_module
from unihpr.data.bvh import read_bvh

# A nested chain whose every joint has two non-commuting 90-degree rotations, each
# joint in another channel order, so that any other composition rule moves the points.
CHAIN = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Yrotation Xrotation Zrotation
  JOINT A
  {
    OFFSET 0 10 0
    CHANNELS 3 Zrotation Yrotation Xrotation
    JOINT B
    {
      OFFSET 5 0 0
      CHANNELS 3 Xrotation Zrotation Yrotation
      End Site
      {
        OFFSET 0 0 3
      }
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.01
1 2 3 90 0 0 90 0 90 0 90 90
1 2 3 0 0 0 0 0 0 0 0 0
"""


def test_forward_kinematics_matches_hand_computed_positions(tmp_path):
    clip = read_bvh(write(tmp_path / "chain.bvh", CHAIN), unit="cm")
    assert clip.skeleton.joint_names == ("Hips", "A", "B", "B_end")
    assert clip.skeleton.parents == (-1, 0, 1, 2)
    assert clip.fps == pytest.approx(100.0)
    assert clip.unit == "cm"
    # Frame 0, by hand (Rx(90): y->z, z->-y; Ry(90): z->x, x->-z; Rz(90): x->y, y->-x):
    #   R_hips = Ry(90); A = (1,2,3) + Ry(90)(0,10,0) = (1,12,3)
    #   R_A = Ry(90) Rz(90) Rx(90); B = A + R_A (5,0,0) = A + (0,5,0) = (1,17,3)
    #   R_B = R_A Rx(0) Rz(90) Ry(90); end = B + R_B (0,0,3) = B + (3,0,0) = (4,17,3)
    expected0 = np.array([[1, 2, 3], [1, 12, 3], [1, 17, 3], [4, 17, 3]]) / 100
    expected1 = np.array([[1, 2, 3], [1, 12, 3], [6, 12, 3], [6, 12, 6]]) / 100  # rest pose
    np.testing.assert_allclose(clip.joints[0], expected0, atol=1e-12)
    np.testing.assert_allclose(clip.joints[1], expected1, atol=1e-12)


def test_channel_order_is_intrinsic_not_extrinsic(tmp_path):
    # A's "Zrotation ... Xrotation" 90, 90 is Rz @ Rx (intrinsic): B's +x offset goes
    # to +y; the extrinsic reading Rx @ Rz would take it to +z.
    text = CHAIN.replace("1 2 3 90 0 0 90 0 90 0 90 90\n1 2 3 0 0 0 0 0 0 0 0 0\n", "")
    text = text.replace("Frames: 2", "Frames: 1") + "0 0 0 0 0 0 90 0 90 0 0 0\n"
    clip = read_bvh(write(tmp_path / "order.bvh", text), unit="m")
    r = intrinsic("ZX", np.deg2rad([90, 90]))
    np.testing.assert_allclose(clip.joints[0, 2] - clip.joints[0, 1], r @ [5, 0, 0], atol=1e-12)
    np.testing.assert_allclose(clip.joints[0, 2] - clip.joints[0, 1], [0, 5, 0], atol=1e-12)


def _reference_fk(joints, frames):
    """World positions with 4x4 homogeneous matrices: T(translation) @ R(channels)."""
    out = np.zeros((len(frames), sum(1 + (j["end"] is not None) for j in joints), 3))
    for t, row in enumerate(frames):
        mats, k, col = {}, 0, 0
        for i, j in enumerate(joints):
            trans = np.array(j["offset"], dtype=float)
            axes, angles = "", []
            for c in j["channels"]:
                if c.endswith("position"):
                    trans["XYZ".index(c[0])] = row[col]
                else:
                    axes += c[0]
                    angles.append(np.deg2rad(row[col]))
                col += 1
            local = np.eye(4)
            local[:3, :3] = intrinsic(axes, angles)
            local[:3, 3] = trans
            m = local if j["parent"] < 0 else mats[j["parent"]] @ local
            mats[i] = m
            out[t, k] = m[:3, 3]
            k += 1
            if j["end"] is not None:
                out[t, k] = (m @ np.append(j["end"], 1.0))[:3]
                k += 1
    return out


CHANNEL_NAMES = [f"{a}{kind}" for kind in ("position", "rotation") for a in "XYZ"]


@st.composite
def random_rig(draw):
    """A random tree (depth-first), every joint with a random subset and order of the six
    channels, random offsets and End Sites; frames with random values."""
    n = draw(st.integers(1, 6))
    parents = [-1] + [draw(st.integers(0, i - 1)) for i in range(1, n)]
    order, stack = [], [0]  # list the tree depth-first, as a BVH file does
    while stack:
        i = stack.pop()
        order.append(i)
        stack.extend(reversed([c for c in range(n) if parents[c] == i]))
    new_index = {old: k for k, old in enumerate(order)}
    joints = []
    for k, old in enumerate(order):
        chans = draw(st.permutations(CHANNEL_NAMES))[: draw(st.integers(0 if k else 1, 6))]
        joints.append({"name": f"j{k}", "parent": new_index.get(parents[old], -1),
                       "channels": list(chans),
                       "offset": draw(st.lists(st.floats(-50, 50), min_size=3, max_size=3)),
                       "end": None})  # fmt: skip
    leaves = set(range(n)) - {j["parent"] for j in joints}
    for i in leaves:
        if draw(st.booleans()):
            joints[i]["end"] = draw(st.lists(st.floats(-20, 20), min_size=3, max_size=3))
    c = sum(len(j["channels"]) for j in joints)
    t = draw(st.integers(1, 3))
    frames = np.array(draw(st.lists(st.floats(-360, 360), min_size=t * c, max_size=t * c))).reshape(
        t, c
    )
    return joints, frames


@given(random_rig())
def test_forward_kinematics_matches_homogeneous_reference(rig):
    joints, frames = rig
    with tempfile.TemporaryDirectory() as d:
        clip = read_bvh(write(Path(d) / "r.bvh", bvh_text(joints, frames)), unit="m")
    np.testing.assert_allclose(clip.joints, _reference_fk(joints, frames), atol=1e-9)


def test_bone_lengths_are_constant_over_frames(tmp_path):
    joints = humanoid_bvh_joints({}, scale=100.0)
    frames = random_frames(joints, 40, np.random.default_rng(0), root_height=95.0)
    clip = read_bvh(write(tmp_path / "h.bvh", bvh_text(joints, frames)), unit="cm")
    lengths = clip.bone_lengths()
    np.testing.assert_allclose(lengths, np.broadcast_to(lengths[0], lengths.shape), atol=1e-12)
    # and they are the offsets' lengths, in metres
    names = clip.skeleton.joint_names
    assert lengths[0, names.index("LeftLeg")] == pytest.approx(0.42)
    assert lengths[0, names.index("Head_end")] == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("unit", "scale"), [("m", 1.0), ("cm", 100.0), ("mm", 1000.0), ("inch", 1 / 0.0254),
                        ("cmu", 0.45 / 0.0254)],
)  # fmt: skip
def test_units_convert_to_metres_and_auto_guesses_them(tmp_path, unit, scale):
    joints = humanoid_bvh_joints({}, scale=scale)
    frames = random_frames(joints, 3, np.random.default_rng(1), root_height=0.95 * scale)
    path = write(tmp_path / f"{unit}.bvh", bvh_text(joints, frames))
    in_metres = humanoid_bvh_joints({}, scale=1.0)
    frames_m = frames.copy()
    frames_m[:, :3] /= scale
    ref = _reference_fk(in_metres, frames_m)
    for u in (unit, "auto", 1.0 / scale):
        clip = read_bvh(path, unit=u)
        np.testing.assert_allclose(clip.joints, ref, atol=1e-7)
    assert read_bvh(path).unit == unit


def test_z_up_files_become_y_up(tmp_path):
    text = CHAIN.replace("OFFSET 0 10 0", "OFFSET 0 0 10").replace("OFFSET 0 0 3", "OFFSET 0 3 0")
    text = text.split("MOTION")[0] + "MOTION\nFrames: 1\nFrame Time: 0.01\n" + "0 " * 12 + "\n"
    clip = read_bvh(write(tmp_path / "z.bvh", text), unit="m", up_axis="z")
    np.testing.assert_allclose(clip.joints[0, 1], [0, 10, 0], atol=1e-12)  # z up -> y up
    np.testing.assert_allclose(clip.joints[0, 2], [5, 10, 0], atol=1e-12)  # x stays x
    np.testing.assert_allclose(clip.joints[0, 3], [5, 10, -3], atol=1e-12)  # y -> -z


def test_end_sites_can_be_dropped(tmp_path):
    joints = humanoid_bvh_joints({})
    frames = random_frames(joints, 2, np.random.default_rng(2), root_height=0.95)
    path = write(tmp_path / "h.bvh", bvh_text(joints, frames))
    full, bare = read_bvh(path, unit="m"), read_bvh(path, unit="m", end_sites=False)
    keep = [i for i, n in enumerate(full.skeleton.joint_names) if not n.endswith("_end")]
    assert bare.skeleton.joint_names == tuple(full.skeleton.joint_names[i] for i in keep)
    np.testing.assert_array_equal(bare.joints, full.joints[:, keep])  # the same chain products
    for j, p in enumerate(bare.skeleton.parents):  # parents point at the same joints
        if p >= 0:
            orig = full.skeleton.parents[keep[j]]
            assert bare.skeleton.joint_names[p] == full.skeleton.joint_names[orig]


def test_flexible_but_valid_syntax(tmp_path):
    # braces on the keyword's line, lower-case channel names, CRLF, blank lines, tabs
    text = ("HIERARCHY\r\nROOT Hips {\r\n\tOFFSET 0 0 0\r\n\tCHANNELS 3 xposition yposition "
            "zposition\r\n\tEnd Site {\r\n\t\tOFFSET 0 1 0\r\n\t}\r\n}\r\nMOTION\r\n"
            "Frames: 2\r\nFrame Time: 0.5\r\n\r\n1 2 3\r\n\r\n4 5 6\r\n\r\n")  # fmt: skip
    clip = read_bvh(write(tmp_path / "f.bvh", text), unit="m")
    np.testing.assert_allclose(clip.joints[:, 1], [[1, 3, 3], [4, 6, 6]])
    assert clip.fps == 2.0


def _bad(tmp_path, text, name="bad.bvh"):
    return write(tmp_path / name, text)


HEADER, MOTION = CHAIN.split("MOTION\n")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (HEADER + "MOTION\nFrames: 3\nFrame Time: 0.01\n" + "0 " * 12 + "\n" + "0 " * 12 + "\n",
         r"bad\.bvh:\d+: 'Frames: 3' but 2 motion lines follow \(truncated"),
        (HEADER + "MOTION\nFrames: 1\nFrame Time: 0.01\n" + "0 " * 12 + "\n" + "0 " * 12 + "\n",
         r"bad\.bvh:\d+: 'Frames: 1' but 2 motion lines follow \(the extra data starts at line 25"),
        (HEADER + "MOTION\nFrames: 1000000000000\nFrame Time: 0.01\n" + "0 " * 12 + "\n",
         r"'Frames: 1000000000000' but 1 motion lines"),
        (HEADER + "MOTION\nFrames: 1\nFrame Time: 0.01\n" + "0 " * 11 + "\n",
         r"bad\.bvh:24: expected 12 values .* found 11"),
        (HEADER + "MOTION\nFrames: 1\nFrame Time: 0.01\n" + "0 " * 11 + "nan\n",
         r"bad\.bvh:24: NaN or infinite"),
        (HEADER + "MOTION\nFrames: 1\nFrame Time: 0.01\n" + "0 " * 11 + "1e999\n",
         r"bad\.bvh:24: NaN or infinite"),
        (HEADER + "MOTION\nFrames: 1\nFrame Time: 0.01\n" + "0 " * 11 + "x\n",
         r"bad\.bvh:24: 'x' is not a number"),
        (HEADER + "MOTION\nFrames: 1\nFrame Time: 0\n" + "0 " * 12 + "\n",
         r"bad\.bvh:23: Frame Time must be > 0"),
        (HEADER + "MOTION\nFrames: 0\nFrame Time: 0.1\n", r"bad\.bvh:22: the file has no frames"),
        (HEADER + "MOTION\nFrames: -1\nFrame Time: 0.1\n", r"bad\.bvh:22: expected 'Frames: N'"),
        (HEADER + "MOTION\nFrames: \u00b2\nFrame Time: 0.1\n", r"bad\.bvh:22: expected 'Frames: N'"),
        (HEADER + "MOTION\nFrames: " + "9" * 5000 + "\nFrame Time: 0.1\n", r"bad\.bvh:22: expected 'Frames: N'"),
        (CHAIN.replace("CHANNELS 3", "CHANNELS \u00b3", 1), r"bad\.bvh:9: CHANNELS needs a count"),
        (HEADER + "MOTION\nFrames: 1\n", r"MOTION needs 'Frames: N' and 'Frame Time: dt'"),
        (HEADER, r"bad\.bvh: no MOTION section"),
        (CHAIN.replace("CHANNELS 3 Zrotation Yrotation Xrotation", "CHANNELS 4 Zrotation "
                       "Yrotation Xrotation"), r"bad\.bvh:9: CHANNELS 4 must be followed by 4"),
        (CHAIN.replace("CHANNELS 3 Zrotation Yrotation Xrotation", "CHANNELS 2 Zrotation "
                       "Yrotation Xrotation"), r"bad\.bvh:9: CHANNELS 2 has more than 2 names"),
        (CHAIN.replace("Zrotation Yrotation Xrotation", "Zrotation Yrotation Wrotation"),
         r"bad\.bvh:9: CHANNELS 3 must be followed by 3 of"),
        (CHAIN.replace("Zrotation Yrotation Xrotation", "Zrotation Zrotation Xrotation"),
         r"bad\.bvh:9: repeated channel"),
        (CHAIN.replace("OFFSET 5 0 0", "OFFSET 5 0"), r"bad\.bvh:12: OFFSET needs exactly 3"),
        (CHAIN.replace("OFFSET 5 0 0", "OFFSET 5 0 0 7"), r"bad\.bvh:12: OFFSET needs exactly 3"),
        (CHAIN.replace("OFFSET 5 0 0", "OFFSET 5 nan 0"), r"bad\.bvh:12: OFFSET must be finite"),
        (CHAIN.replace("  JOINT A", "  SCALE 2\n  JOINT A"), r"bad\.bvh:6: unknown keyword 'SCALE'"),
        (CHAIN.replace("JOINT B", "JOINT A"), r"bad\.bvh:\d+: joint name 'A' is repeated"),
        (CHAIN.replace("}\nMOTION", "MOTION"), r"block of 'Hips' \(line 2\) is never closed"),
        (CHAIN.replace("}\nMOTION", "}\n}\nMOTION"), r"bad\.bvh:21: unbalanced '}'"),
        (CHAIN.replace("}\nMOTION", "}\nROOT X\n{\nOFFSET 0 0 0\n}\nMOTION"),
         r"bad\.bvh:21: a second ROOT"),
        ("HIERARCHX\n" + CHAIN[10:], r"bad\.bvh: a BVH file starts with 'HIERARCHY'"),
        (CHAIN.replace("  OFFSET 0 0 0\n  CHANNELS 6", "  CHANNELS 6"), r"'Hips' \(line 2\) has no OFFSET"),
    ],
)  # fmt: skip
def test_malformed_files_name_the_file_and_line(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        read_bvh(_bad(tmp_path, text))


def test_missing_binary_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="BVH file not found"):
        read_bvh(tmp_path / "nope.bvh")
    binary = tmp_path / "bin.bvh"
    binary.write_bytes(b"HIERARCHY\x00\x01\x02")
    with pytest.raises(ValueError, match=r"bin\.bvh: not a BVH text file"):
        read_bvh(binary)
    path = write(tmp_path / "ok.bvh", CHAIN)
    with pytest.raises(ValueError, match=r"up_axis must be one of \('y', 'z'\)"):
        read_bvh(path, up_axis="x")
    with pytest.raises(ValueError, match=r"unit must be one of \('auto', "):
        read_bvh(path, unit="furlong")
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        read_bvh(path, unit=-1.0)


def test_docstring_examples_run():
    assert doctest.testmod(bvh_module).failed == 0


def _many_joints_bvh(path, joints: int, frames: int):
    """A root with one channel and ``joints`` channel-less children: few bytes per
    joint and frame, yet ``joints x frames`` positions."""
    kids = "".join(f"JOINT j{i}\n{{\nOFFSET 0 1 0\n}}\n" for i in range(joints))
    text = f"HIERARCHY\nROOT r\n{{\nOFFSET 0 0 0\nCHANNELS 1 Xrotation\n{kids}}}\nMOTION\n"
    return write(path, text + f"Frames: {frames}\nFrame Time: 0.01\n" + "0\n" * frames)


def test_joint_frames_are_capped_and_computed_in_bounded_memory(tmp_path, capped):
    # 2,000 joints x 10,000 frames in 60 KB took 740 MB; now a clear error naming the file
    bomb = _many_joints_bvh(tmp_path / "bomb.bvh", 2000, 10_000)
    kind, message = capped.call("unihpr.data.read_bvh", bomb, unit="cm", end_sites=False)
    assert kind == "ValueError" and "bomb.bvh" in message and "joint positions" in message
    # just under the cap (4,000,000 of 4,194,304): 96 MB of positions, read under 200 MB
    big = _many_joints_bvh(tmp_path / "big.bvh", 1000, 4000)
    assert capped.call("unihpr.data.read_bvh", big, unit="cm") == ("ok", "")
