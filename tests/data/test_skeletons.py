import numpy as np
import pytest
import torch

from unihpr.data.mapping import (
    RIG_MAPPINGS,
    joint_mapping,
    map_joints,
    map_visibility,
    mappable_layouts,
    resolve_rig_mapping,
)
from unihpr.data.skeletons import (
    COCO17,
    H36M17,
    H36M32,
    HUMANOID15,
    MEDIAPIPE33,
    MPI_INF_3DHP17,
    SMPL24,
    Skeleton,
    flip_pose,
    get_skeleton,
    list_skeletons,
    mirror_pairs,
)


def test_all_layouts_are_valid_and_flip_pairs_are_left_right():
    assert set(list_skeletons()) >= {"h36m17", "h36m32", "mpi_inf_3dhp17", "smpl24", "coco17",
                                     "humanoid15", "openpose18"}  # fmt: skip
    for name in list_skeletons():
        sk = get_skeleton(name)
        for a, b in sk.flip_pairs:
            na, nb = sk.joint_names[a], sk.joint_names[b]
            sides = {na.split("_")[0], nb.split("_")[0]}
            assert sides == {"left", "right"}, (name, na, nb)
            assert na.split("_", 1)[1] == nb.split("_", 1)[1]
        perm = sk.flip_permutation
        assert sorted(perm) == list(range(sk.num_joints))


# The pairs as they were written by hand before they were derived from the names.
HAND_WRITTEN_FLIP_PAIRS = {
    "h36m17": ((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16)),
    "h36m32": ((6, 1), (7, 2), (8, 3), (9, 4), (10, 5), (16, 24), (17, 25), (18, 26), (19, 27),
               (20, 28), (21, 29), (22, 30), (23, 31)),
    "mpi_inf_3dhp17": ((5, 2), (6, 3), (7, 4), (11, 8), (12, 9), (13, 10)),
    "smpl24": ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23)),
    "coco17": ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    "openpose18": ((5, 2), (6, 3), (7, 4), (11, 8), (12, 9), (13, 10), (15, 14), (17, 16)),
    "mediapipe33": ((1, 4), (2, 5), (3, 6), *((a, a + 1) for a in range(7, 33, 2))),
    "humanoid15": ((9, 3), (10, 4), (11, 5), (12, 6), (13, 7), (14, 8)),
}  # fmt: skip


def test_flip_pairs_derived_from_names_equal_the_hand_written_ones():
    assert sorted(HAND_WRITTEN_FLIP_PAIRS) == list_skeletons()
    for name, pairs in HAND_WRITTEN_FLIP_PAIRS.items():
        assert get_skeleton(name).flip_pairs == pairs, name
    # a name without its twin pairs with nothing; the order is by the smaller index
    assert mirror_pairs(("right_a", "left_b", "left_a", "c")) == ((2, 0),)


def test_invalid_skeleton_rejected():
    with pytest.raises(ValueError, match="parents"):
        Skeleton("x", ("a", "b"), (-1,), ())
    with pytest.raises(ValueError, match="cycle"):
        Skeleton("x", ("a", "b", "c"), (-1, 2, 1), ())
    with pytest.raises(ValueError, match="unknown skeleton"):
        get_skeleton("nope")
    with pytest.raises(TypeError, match="name or a Skeleton"):
        get_skeleton(["h36m17"])


def test_h36m32_to_17_keeps_the_tree():
    m = joint_mapping("h36m32", "h36m17")
    dropped = sorted(set(range(32)) - set(m))
    assert dropped == [4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31]
    # parents of the kept joints, walking up through dropped ones, give H36M-17's parents
    for j17, j32 in enumerate(m):
        p = H36M32.parents[j32]
        while p != -1 and p not in m:
            p = H36M32.parents[p]
        expected = -1 if p == -1 else m.index(p)
        assert expected == H36M17.parents[j17], H36M17.joint_names[j17]
    pose = np.arange(32 * 3, dtype=np.float32).reshape(32, 3)
    assert np.array_equal(map_joints(pose, "h36m32", "h36m17")[7], pose[12])


def test_3dhp_to_h36m_names_match():
    m = joint_mapping(MPI_INF_3DHP17, H36M17)
    same = {"pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
            "left_ankle", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder",
            "right_elbow", "right_wrist"}  # fmt: skip
    for j, src in enumerate(m):
        if H36M17.joint_names[j] in same:
            assert MPI_INF_3DHP17.joint_names[src] == H36M17.joint_names[j]
    pose = np.random.default_rng(0).normal(size=(4, 17, 3))
    back = map_joints(map_joints(pose, "mpi_inf_3dhp17", "h36m17"), "h36m17", "mpi_inf_3dhp17")
    assert np.array_equal(back, pose)


def test_smpl_to_h36m_weights_translation_equivariant_and_torch():
    w = joint_mapping(SMPL24, H36M17)
    assert w.shape == (17, 24)
    np.testing.assert_allclose(w.sum(1), 1.0)
    pose = torch.randn(2, 24, 3, dtype=torch.float64, requires_grad=True)
    out = map_joints(pose, "smpl24", "h36m17")
    shifted = map_joints(pose + 1.5, "smpl24", "h36m17")
    torch.testing.assert_close(shifted, out + 1.5)
    assert torch.equal(out[:, 1], pose[:, 2])  # right hip
    out.sum().backward()
    assert pose.grad is not None
    with pytest.raises(ValueError, match="no joint mapping"):
        joint_mapping("coco17", "h36m17")
    with pytest.raises(ValueError, match=r"\(\.\.\., 24, C\)"):
        map_joints(np.zeros((17, 3)), "smpl24", "h36m17")


def test_flip_pose_mirrors_and_swaps():
    pose = np.zeros((17, 3))
    pose[H36M17.index("left_wrist")] = [1.0, 2.0, 3.0]
    out = flip_pose(pose, "h36m17")
    assert np.array_equal(out[H36M17.index("right_wrist")], [-1.0, 2.0, 3.0])
    assert np.array_equal(flip_pose(out, "h36m17"), pose)
    p2 = torch.tensor([[10.0, 5.0]]).repeat(17, 1)
    assert torch.allclose(flip_pose(p2, H36M17, center=32.0)[:, 0], torch.full((17,), 54.0))
    with pytest.raises(ValueError, match="axis"):
        flip_pose(pose, "h36m17", axis=3)


# --- motion-capture rigs mapped by joint name ---------------------------------------

_MB = ("Hips", "Spine", "Spine1", "Neck", "Head", "Head_end", "LeftArm", "LeftForeArm",
       "LeftHand", "RightArm", "RightForeArm", "RightHand", "LeftUpLeg", "LeftLeg",
       "LeftFoot", "RightUpLeg", "RightLeg", "RightFoot")  # fmt: skip


def _rig(names, name="rig"):
    return Skeleton(name, tuple(names), (-1,) + (0,) * (len(names) - 1), ())


def test_rig_presets_cover_their_layouts():
    for preset, tables in RIG_MAPPINGS.items():
        for dst, table in tables.items():
            assert tuple(table) == get_skeleton(dst).joint_names, (preset, dst)


def test_cmu_bvh_preset_maps_by_name():
    rig = _rig(_MB)
    pose = np.arange(len(_MB) * 3, dtype=np.float64).reshape(len(_MB), 3)
    out = map_joints(pose, rig, "humanoid15", mapping="cmu_bvh")
    for dst, src in [("root", "Hips"), ("chest", "Spine1"), ("neck", "Neck"),
                     ("left_shoulder", "LeftArm"), ("right_wrist", "RightHand"),
                     ("left_hip", "LeftUpLeg"), ("right_knee", "RightLeg"),
                     ("left_ankle", "LeftFoot")]:  # fmt: skip
        np.testing.assert_array_equal(out[HUMANOID15.index(dst)], pose[_MB.index(src)])
    h36 = map_joints(pose, rig, "h36m17", mapping="auto")
    np.testing.assert_array_equal(h36[H36M17.index("head")], pose[_MB.index("Head_end")])
    # torch tensors go through the same mapping
    t = map_joints(torch.from_numpy(pose), rig, "humanoid15", mapping="cmu_bvh")
    np.testing.assert_array_equal(t.numpy(), out)


def test_mixamo_namespace_and_auto_preset_choice():
    names = ["mixamorig:" + n for n in _MB if n != "Head_end"] + ["mixamorig:HeadTop_End"]
    rig = _rig(names)
    res = resolve_rig_mapping(rig, "h36m17", "auto")  # cmu_bvh lacks Head_end -> mixamo
    assert res["head"] == {"mixamorig:HeadTop_End": 1.0}
    assert res["pelvis"] == {"mixamorig:Hips": 1.0}
    assert resolve_rig_mapping(rig, "humanoid15", "mixamo")["chest"] == {"mixamorig:Spine1": 1.0}


def test_generic_preset_other_spellings():
    names = ["Pelvis", "Chest", "Neck", "L_Thigh", "L_Shin", "L_Foot", "R_Thigh", "R_Shin",
             "R_Foot", "upper_arm.L", "forearm.L", "hand.L", "upper_arm.R", "forearm.R",
             "hand.R"]  # fmt: skip
    res = resolve_rig_mapping(_rig(names), "humanoid15", "generic")
    assert res["left_knee"] == {"L_Shin": 1.0}
    assert res["right_shoulder"] == {"upper_arm.R": 1.0}
    assert res["chest"] == {"Chest": 1.0}
    assert resolve_rig_mapping(_rig(names), "humanoid15", "auto") == res


def test_user_mapping_with_weights_gives_a_matrix():
    rig = _rig(_MB)
    table = dict(RIG_MAPPINGS["cmu_bvh"]["humanoid15"])
    table["chest"] = {"Spine": 0.5, "Neck": 0.5}
    m = joint_mapping(rig, "humanoid15", mapping=table)
    assert isinstance(m, np.ndarray) and m.shape == (15, len(_MB))
    np.testing.assert_allclose(m.sum(1), 1.0)
    pose = np.random.default_rng(0).normal(size=(2, len(_MB), 3))
    out = map_joints(pose, rig, "humanoid15", mapping=table)
    mid = (pose[:, _MB.index("Spine")] + pose[:, _MB.index("Neck")]) / 2
    np.testing.assert_allclose(out[:, HUMANOID15.index("chest")], mid)
    # a plain renaming stays an index tuple
    assert isinstance(joint_mapping(rig, "humanoid15", mapping="cmu_bvh"), tuple)


def test_rig_mapping_errors_list_what_is_missing():
    rig = _rig(["Hips", "Spine1", "Neck", "LeftArm"], name="bvh:walk")
    with pytest.raises(ValueError, match=r"rig 'bvh:walk' lacks joints for 'humanoid15' \(preset "
                       r"'cmu_bvh'\): right_hip <- 'RightUpLeg'; .*; left_elbow <- 'LeftForeArm'; "):  # fmt: skip
        resolve_rig_mapping(rig, "humanoid15", "cmu_bvh")
    with pytest.raises(ValueError, match=r"no preset of RIG_MAPPINGS fits .*'cmu_asf' lacks .* Rig "
                       r"joints: \['Hips', 'Spine1', 'Neck', 'LeftArm'\]"):  # fmt: skip
        resolve_rig_mapping(rig, "humanoid15", "auto")
    with pytest.raises(ValueError, match=r"missing: \['chest'"):
        resolve_rig_mapping(rig, "humanoid15", {"root": "Hips"})
    with pytest.raises(ValueError, match=r"keys \['pelvis'\] that are not joints"):
        resolve_rig_mapping(rig, "humanoid15", {"pelvis": "Hips"})
    bad = {j: "Hips" for j in HUMANOID15.joint_names}
    bad["chest"] = {"Hips": 0.5, "Neck": 0.4}
    with pytest.raises(ValueError, match="weights must be finite and sum to 1"):
        resolve_rig_mapping(rig, "humanoid15", bad)
    with pytest.raises(ValueError, match="unknown rig preset 'vicon'"):
        resolve_rig_mapping(rig, "humanoid15", "vicon")
    with pytest.raises(ValueError, match="has no mapping to 'coco17'"):
        resolve_rig_mapping(rig, "coco17", "cmu_bvh")
    with pytest.raises(ValueError, match="is ambiguous"):
        resolve_rig_mapping(
            _rig(["Hips", "hips"]), "h36m17", {j: "HIPS" for j in H36M17.joint_names}
        )
    with pytest.raises(ValueError, match="pass mapping="):
        joint_mapping(rig, "humanoid15")


# --- keypoint layouts -> the DeepMimic humanoid --------------------------------------


def test_mediapipe33_follows_mediapipes_landmark_order():
    # PoseLandmark indices of MediaPipe Pose
    expected = {0: "nose", 2: "left_eye", 7: "left_ear", 10: "right_mouth", 11: "left_shoulder",
                16: "right_wrist", 21: "left_thumb", 23: "left_hip", 26: "right_knee",
                29: "left_heel", 32: "right_foot_index"}  # fmt: skip
    assert MEDIAPIPE33.num_joints == 33
    for i, name in expected.items():
        assert MEDIAPIPE33.joint_names[i] == name
    assert get_skeleton("mediapipe33") is MEDIAPIPE33
    # flipping twice is the identity and swaps the left and right wrists
    pose = np.random.default_rng(0).normal(size=(33, 2))
    flipped = flip_pose(pose, MEDIAPIPE33, center=0.0)
    assert flipped[16, 0] == -pose[15, 0]
    np.testing.assert_array_equal(flip_pose(flipped, MEDIAPIPE33, center=0.0), pose)


def test_layouts_mapping_to_humanoid15():
    layouts = mappable_layouts("humanoid15")
    assert layouts == ["coco17", "h36m17", "humanoid15", "mediapipe33"]
    limbs = [n for n in HUMANOID15.joint_names if n.startswith(("left_", "right_"))]
    assert len(limbs) == 12
    for layout in layouts:
        src = get_skeleton(layout)
        m = joint_mapping(layout, "humanoid15")
        w = np.zeros((15, src.num_joints))
        if isinstance(m, tuple):
            w[np.arange(15), list(m)] = 1.0
        else:
            w = m
        np.testing.assert_allclose(w.sum(1), 1.0)  # affine: commutes with translation
        for name in limbs:  # limbs map one to one, by name
            row = w[HUMANOID15.index(name)]
            assert row[src.index(name)] == 1.0 and np.count_nonzero(row) == 1, (layout, name)
    assert mappable_layouts("h36m17") == ["h36m17", "h36m32", "mpi_inf_3dhp17", "smpl24"]


def test_trunk_of_detector_layouts_is_means_of_hips_and_shoulders():
    for sk in (COCO17, MEDIAPIPE33):
        pose = torch.randn(3, sk.num_joints, 2, dtype=torch.float64)
        out = map_joints(pose, sk, "humanoid15")
        lh, rh, ls, rs = (pose[:, sk.index(n)] for n in
                          ("left_hip", "right_hip", "left_shoulder", "right_shoulder"))  # fmt: skip
        torch.testing.assert_close(out[:, HUMANOID15.index("root")], (lh + rh) / 2)
        torch.testing.assert_close(out[:, HUMANOID15.index("chest")], (lh + rh + ls + rs) / 4)
        torch.testing.assert_close(out[:, HUMANOID15.index("neck")], (ls + rs) / 2)
    h36m = map_joints(np.arange(17 * 2.0).reshape(17, 2), "h36m17", "humanoid15")
    for dst, src in (("root", "pelvis"), ("chest", "spine"), ("neck", "thorax")):
        np.testing.assert_array_equal(
            h36m[HUMANOID15.index(dst)], 2 * H36M17.index(src) + np.arange(2)
        )


def test_map_visibility_hides_joints_made_of_hidden_keypoints():
    vis = np.ones((2, 17), dtype=bool)
    vis[0, COCO17.index("left_hip")] = False
    vis[1, COCO17.index("nose")] = False  # used by no humanoid joint
    out = map_visibility(vis, "coco17", "humanoid15")
    hidden = [HUMANOID15.joint_names[j] for j in np.flatnonzero(~out[0])]
    assert hidden == ["root", "chest", "left_hip"]
    assert out[1].all()
    torch.testing.assert_close(
        map_visibility(torch.from_numpy(vis), "coco17", "humanoid15"), torch.from_numpy(out)
    )
    # an index mapping selects; shapes are checked
    v36 = np.ones(17, dtype=bool)
    v36[H36M17.index("thorax")] = False
    assert np.flatnonzero(~map_visibility(v36, "h36m17", "humanoid15")).tolist() == [2]
    with pytest.raises(ValueError, match=r"\(\.\.\., 17\)"):
        map_visibility(np.ones(15, dtype=bool), "coco17", "humanoid15")


def test_trunk_approximations_on_the_bundled_mocap():
    """The errors the mapping's comments state, measured on the 15 bundled clips (3D)."""
    pytest.importorskip("pybullet")
    from unihpr.data.mocap import humanoid_forward_kinematics, list_mocap_clips, load_mocap_clip

    pose = np.concatenate([humanoid_forward_kinematics(load_mocap_clip(c))
                           for c in list_mocap_clips()])  # fmt: skip
    # the humanoid seen as a COCO detection: limbs copied, trunk rebuilt from the table
    coco = np.zeros((len(pose), 17, 3))
    for name in HUMANOID15.joint_names[3:]:
        coco[:, get_skeleton("coco17").index(name)] = pose[:, HUMANOID15.index(name)]
    rebuilt = map_joints(coco, "coco17", "humanoid15")
    err = np.linalg.norm(rebuilt - pose, axis=-1).mean(0) * 1000  # mm per joint
    assert err[HUMANOID15.index("root")] < 1e-9  # the root is the hips' midpoint
    assert 30 < err[HUMANOID15.index("chest")] < 45  # "37 mm mean error"
    assert 25 < err[HUMANOID15.index("neck")] < 36  # "31 mm mean error"
    assert err[3:].max() == 0.0
