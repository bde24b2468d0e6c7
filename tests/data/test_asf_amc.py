import numpy as np
import pytest
from mocap_files import amc_text, asf_bone, asf_text, cmu_like_bones, intrinsic, write

from unihpr.data.asf_amc import read_amc, read_asf
from unihpr.data.mapping import map_joints
from unihpr.data.skeletons import HUMANOID15

# Every bone tests one rule: "upper" a rotated local frame (axis), "lower" nesting,
# "fixed" a dof-less child, "twist" the dof order, "tilt_*" the axis order.
HAND = [
    asf_bone("upper", "root", (1, 0, 0), 2.0, axis=(0, 0, 90), dof=("rx",)),
    asf_bone("lower", "upper", (0, 1, 0), 1.0, dof=("rz",)),
    asf_bone("fixed", "lower", (0, 0, 1), 0.5, dof=()),
    asf_bone("twist", "root", (1, 0, 0), 1.0, dof=("rz", "rx")),
    asf_bone("tilt_xyz", "root", (1, 0, 0), 1.0, axis=(90, 90, 0), order="XYZ", dof=("rx",)),
    asf_bone("tilt_zyx", "root", (1, 0, 0), 1.0, axis=(90, 90, 0), order="ZYX", dof=("rx",)),
]


def _hand_files(tmp_path, factor=0.45):
    asf = write(tmp_path / "hand.asf", asf_text(HAND, length_factor=factor))
    root = np.array([[0, 0, 0, 0, 0, 0], [1, 2, 3, 90, 0, 90]], dtype=float)
    root[:, :3] *= factor  # root translations are stored scaled like lengths
    values = {"upper": np.array([90.0, 0]), "lower": np.array([90.0, 0]),
              "twist": np.array([[90.0, 90], [0, 0]]), "tilt_xyz": np.array([90.0, 0]),
              "tilt_zyx": np.array([90.0, 0])}  # fmt: skip
    amc = write(tmp_path / "hand.amc", amc_text(root, values))
    return asf, amc


def test_forward_kinematics_matches_hand_computed_positions(tmp_path):
    asf, amc = _hand_files(tmp_path)
    clip = read_amc(amc, asf, unit="m")
    names = clip.skeleton.joint_names
    assert names == ("root", "upper", "lower", "fixed", "fixed_end", "twist", "twist_end",
                     "tilt_xyz", "tilt_xyz_end", "tilt_zyx", "tilt_zyx_end")  # fmt: skip
    assert clip.skeleton.parents == (-1, 0, 1, 2, 3, 0, 5, 0, 7, 0, 9)
    assert clip.fps == 120.0
    got = dict(zip(names, clip.joints[0]))
    # By hand (Rx(90): y->z; Ry(90): x->-z, z->x; Rz(90): x->y, y->-x):
    # upper: C = Rz(90), rx 90 turns about C x = +y: tip 2 * Ry(90) x = (0, 0, -2)
    np.testing.assert_allclose(got["lower"], [0, 0, -2], atol=1e-12)
    # lower: M = Ry(90) Rz(90), tip = (0,0,-2) + M y = (0,0,-2) + (0,0,1)
    np.testing.assert_allclose(got["fixed"], [0, 0, -1], atol=1e-12)
    # fixed has no dof: it keeps lower's rotation, tip = (0,0,-1) + 0.5 M z = + (0.5,0,0)
    np.testing.assert_allclose(got["fixed_end"], [0.5, 0, -1], atol=1e-12)
    # dof "rz rx" = Rx(90) Rz(90): x -> y -> z (the reverse order would give y)
    np.testing.assert_allclose(got["twist_end"], [0, 0, 1], atol=1e-12)
    # axis 90 90 0 XYZ: C = Ry(90) Rx(90), C x = -z, rx 90 about -z: x -> -y
    np.testing.assert_allclose(got["tilt_xyz_end"], [0, -1, 0], atol=1e-12)
    # the same angles in ZYX order: C = Rx(90) Ry(90), C x = +y, rx 90 about +y: x -> -z
    np.testing.assert_allclose(got["tilt_zyx_end"], [0, 0, -1], atol=1e-12)
    for name in ("root", "upper", "twist", "tilt_xyz", "tilt_zyx"):
        np.testing.assert_allclose(got[name], [0, 0, 0], atol=1e-12)
    # frame 2: root at (1,2,3) with RX 90, RZ 90 (= Rz Rx) and every dof 0: the rest
    # pose rotated, upper's tip (2,0,0) -> (0,2,0)
    got = dict(zip(names, clip.joints[1]))
    np.testing.assert_allclose(got["root"], [1, 2, 3], atol=1e-12)
    np.testing.assert_allclose(got["lower"], [1, 4, 3], atol=1e-12)
    r = intrinsic("ZX", np.deg2rad([90, 90]))
    np.testing.assert_allclose(got["fixed_end"], [1, 2, 3] + r @ [2, 1, 0.5], atol=1e-12)


def test_rest_pose_is_the_bone_vectors_and_lengths_stay_constant(tmp_path):
    asf_path = write(tmp_path / "s.asf", asf_text(HAND))
    rng = np.random.default_rng(0)
    t = 30
    root = np.concatenate([rng.uniform(-1, 1, (t, 3)), rng.uniform(-180, 180, (t, 3))], 1)
    values = {b["name"]: rng.uniform(-180, 180, (t, len(b["dof"]))) for b in HAND if b["dof"]}
    clip = read_amc(write(tmp_path / "s.amc", amc_text(root, values)), asf_path, unit="m")
    lengths = clip.bone_lengths()
    np.testing.assert_allclose(lengths, np.broadcast_to(lengths[0], lengths.shape), atol=1e-12)
    names = clip.skeleton.joint_names
    assert lengths[0, names.index("lower")] == pytest.approx(2.0)
    assert lengths[0, names.index("fixed_end")] == pytest.approx(0.5)
    zero = {k: np.zeros_like(v) for k, v in values.items()}
    rest = read_amc(write(tmp_path / "z.amc", amc_text(np.zeros((1, 6)), zero)), asf_path, unit="m")
    np.testing.assert_allclose(rest.joints[0, names.index("fixed_end")], [2, 1, 0.5], atol=1e-12)


def test_units_cmu_convention_and_radians(tmp_path):
    asf, amc = _hand_files(tmp_path, factor=0.45)
    in_base = read_amc(amc, asf, unit="m").joints  # base unit = the divided numbers
    cmu = read_amc(amc, asf, unit="inch").joints
    np.testing.assert_allclose(cmu, in_base * 0.0254, atol=1e-15)
    # the same skeleton and motion written in radians
    rad_bones = [{**b, "axis": tuple(np.deg2rad(b["axis"]))} for b in HAND]
    asf_rad = write(tmp_path / "rad.asf", asf_text(rad_bones, angle="rad"))
    root = np.array([[0, 0, 0, 0, 0, 0], [1, 2, 3, np.pi / 2, 0, np.pi / 2]])
    values = {"upper": np.array([np.pi / 2, 0]), "lower": np.array([np.pi / 2, 0]),
              "twist": np.array([[np.pi / 2, np.pi / 2], [0, 0]]),
              "tilt_xyz": np.array([np.pi / 2, 0]), "tilt_zyx": np.array([np.pi / 2, 0])}  # fmt: skip
    amc_rad = write(tmp_path / "rad.amc", amc_text(root, values, header=":RADIANS"))
    np.testing.assert_allclose(read_amc(amc_rad, asf_rad, unit="m").joints, in_base, atol=1e-12)
    # an AMC ":DEGREES" header overrides the ASF's radians for the motion
    deg = {k: np.rad2deg(v) for k, v in values.items()}
    root_deg = np.concatenate([root[:, :3], np.rad2deg(root[:, 3:])], 1)
    amc_deg = write(tmp_path / "deg.amc", amc_text(root_deg, deg, header=":DEGREES"))
    np.testing.assert_allclose(read_amc(amc_deg, asf_rad, unit="m").joints, in_base, atol=1e-12)


def test_cmu_like_skeleton_maps_to_humanoid15_with_auto_unit(tmp_path):
    bones = cmu_like_bones()
    asf = write(tmp_path / "01.asf", asf_text(bones, length_factor=0.45))
    rng = np.random.default_rng(3)
    t = 5
    root = np.concatenate([np.array([[0, 17.0, 0]]) * 0.45 + rng.normal(size=(t, 3)),
                           rng.uniform(-20, 20, (t, 3))], 1)  # fmt: skip
    values = {b["name"]: rng.uniform(-30, 30, (t, 3)) for b in bones}
    clip = read_amc(write(tmp_path / "01_01.amc", amc_text(root, values)), asf)
    assert clip.unit == "inch"
    exact = read_amc(tmp_path / "01_01.amc", asf, unit=0.0254)
    np.testing.assert_allclose(clip.joints, exact.joints)
    mapped = clip.map_to("humanoid15")  # "auto" finds the cmu_asf preset
    names = clip.skeleton.joint_names
    for dst, src in [("root", "root"), ("chest", "thorax"), ("neck", "lowerneck"),
                     ("left_hip", "lfemur"), ("left_knee", "ltibia"), ("left_ankle", "lfoot"),
                     ("right_shoulder", "rhumerus"), ("right_elbow", "rradius"),
                     ("right_wrist", "rwrist")]:  # fmt: skip
        np.testing.assert_array_equal(
            mapped[:, HUMANOID15.index(dst)], clip.joints[:, names.index(src)]
        )
    # thigh length in metres: 16 inches
    thigh = np.linalg.norm(
        mapped[:, HUMANOID15.index("left_knee")] - mapped[:, HUMANOID15.index("left_hip")], axis=-1
    )
    np.testing.assert_allclose(thigh, 16 * 0.0254, rtol=1e-12)
    h36m = map_joints(clip.joints, clip.skeleton, "h36m17", mapping="cmu_asf")
    np.testing.assert_array_equal(h36m[:, 10], clip.joints[:, names.index("head_end")])


GOOD_ASF = asf_text(HAND)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (GOOD_ASF.replace(":hierarchy", ":hierarchi"), r"bad\.asf:\d+: unknown section ':hierarchi'"),
        (GOOD_ASF.replace("     length 2", "     lenght 2"), r"bad\.asf:\d+: unknown bone keyword 'lenght'"),
        (GOOD_ASF.replace("dof rx\n", "dof tx\n", 1), r"bad\.asf:\d+: bone 'upper': dof \['tx'\] not supported"),
        (GOOD_ASF.replace("    root upper", "    root uper"), r"names bones not in :bonedata: \['uper'\]"),
        (GOOD_ASF.replace("    upper lower\n", ""), r"bones not connected to the root in :hierarchy: \['fixed', 'lower'\]"),
        (GOOD_ASF.replace("    lower fixed", "    lower fixed upper"), r"bad\.asf:\d+: bone 'upper' has a second parent"),
        (GOOD_ASF.replace("   order TX TY TZ RX RY RZ\n", ""), r"bad\.asf: :root has no 'order' line"),
        (GOOD_ASF.replace("   order TX TY TZ RX RY RZ", "   order TX TY TZ RX RY RQ"), r"root order must list distinct"),
        (GOOD_ASF.split(":hierarchy")[0], r"bad\.asf: no :hierarchy section"),
        (GOOD_ASF[: GOOD_ASF.index("  end")], r"bone block opened at line \d+ is never closed"),
        (GOOD_ASF.replace("  angle deg", "  angle grad"), r"units angle must be 'deg' or 'rad'"),
        (GOOD_ASF.replace("  length 1.0", "  length 0"), r"units length must be > 0"),
        (GOOD_ASF.replace("direction 1 0 0", "direction 1 0", 1), r"bad\.asf:\d+: direction needs 3 values"),
        (GOOD_ASF.replace("direction 1 0 0", "direction 0 0 0", 1), r"direction of bone 'upper' is zero"),
        (GOOD_ASF.replace(" 0 0 90 XYZ", " 0 0 90 XYY"), r"axis order must be a permutation of XYZ"),
        (GOOD_ASF.replace("(-180.0 , 180.0)", "(-180.0 , x)", 1), r"a limit is '\(low high\)'"),
        (GOOD_ASF.replace("     name twist", "     name upper"), r"bone name 'upper' is repeated"),
    ],
)  # fmt: skip
def test_malformed_asf_names_file_and_line(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        read_asf(write(tmp_path / "bad.asf", text))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.replace("tilt_zyx 90", "tilt_zyy 90"), r"bad\.amc:\d+: 'tilt_zyy' is not a bone with dof"),
        (lambda s: s.replace("fixed", "fixed"), None),
        (lambda s: s.replace("twist 90 90", "twist 90"), r"bad\.amc:\d+: bone 'twist' needs 2 values .* found 1"),
        (lambda s: s.replace("twist 90 90", "twist 90 nan"), r"bad\.amc:\d+: twist has a NaN"),
        (lambda s: s.replace("twist 90 90", "twist 90 ninety"), r"bad\.amc:\d+: twist value 'ninety' is not a number"),
        (lambda s: s.replace("\n2\n", "\n3\n"), r"bad\.amc:\d+: frame number 3 \(expected 2"),
        (lambda s: s.replace("upper 90\n", ""), r"bad\.amc:\d+: frame 1 lacks bones \['upper'\]"),
        (lambda s: s.replace("upper 90\n", "upper 90\nupper 90\n"), r"bad\.amc:\d+: bone 'upper' appears twice"),
        (lambda s: s.replace(":DEGREES", ":GRADIANS"), r"bad\.amc:3: unknown AMC header"),
        (lambda s: s.split("\n1\n")[0] + "\n", r"bad\.amc: no frames"),
        (lambda s: s.replace("\n1\n", "\nroot 0 0 0 0 0 0\n1\n"), r"bad\.amc:\d+: expected a frame number"),
        (lambda s: s.replace("\n2\n", "\n\u00b2\n"), r"bad\.amc:\d+: .*is not a bone|bad\.amc:\d+: expected a frame"),
    ],
)  # fmt: skip
def test_malformed_amc_names_file_and_line(tmp_path, edit, match):
    asf, amc = _hand_files(tmp_path)
    bad = write(tmp_path / "bad.amc", edit(amc.read_text()))
    if match is None:  # the unedited file reads
        assert read_amc(bad, asf, unit="m").num_frames == 2
        return
    with pytest.raises(ValueError, match=match):
        read_amc(bad, asf, unit="m")


def test_amc_arguments(tmp_path):
    asf, amc = _hand_files(tmp_path)
    with pytest.raises(FileNotFoundError, match="AMC file not found"):
        read_amc(tmp_path / "none.amc", asf)
    with pytest.raises(FileNotFoundError, match="ASF file not found"):
        read_amc(amc, tmp_path / "none.asf")
    with pytest.raises(ValueError, match="fps must be"):
        read_amc(amc, asf, fps=0)
    assert read_amc(amc, read_asf(asf), unit="m", fps=60).fps == 60.0
    z = read_amc(amc, asf, unit="m", up_axis="z").joints
    y = read_amc(amc, asf, unit="m").joints
    np.testing.assert_allclose(z, np.stack([y[..., 0], y[..., 2], -y[..., 1]], -1))


def _many_bones(tmp_path, bones: int, frames: int):
    """An ASF root with ``bones`` dof-less bones and an AMC of ``frames`` root-only frames."""
    asf = asf_text([asf_bone(f"b{i}", "root", (0, 1, 0), 1.0, dof=()) for i in range(bones)])
    amc = amc_text(np.zeros((frames, 6)), {})
    return write(tmp_path / "many.asf", asf), write(tmp_path / "many.amc", amc)


def test_joint_frames_are_capped_and_computed_in_bounded_memory(tmp_path, capped):
    asf, amc = _many_bones(tmp_path, 1000, 5000)  # 2,001 joints x 5,000 frames
    kind, message = capped.call("unihpr.data.read_amc", amc, asf, unit="m")
    assert kind == "ValueError" and "many.amc" in message and "joint positions" in message
    # just under the cap: 2,001 x 2,000 = 4,002,000 positions (96 MB), read under 200 MB
    asf, amc = _many_bones(tmp_path, 1000, 2000)
    assert capped.call("unihpr.data.read_amc", amc, asf, unit="m") == ("ok", "")
