import numpy as np
import pytest
import torch

from unihpr.data.skeletons import (
    H36M17,
    H36M32,
    MPI_INF_3DHP17,
    SMPL24,
    Skeleton,
    flip_pose,
    get_skeleton,
    joint_mapping,
    list_skeletons,
    map_joints,
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


def test_invalid_skeleton_rejected():
    with pytest.raises(ValueError, match="parents"):
        Skeleton("x", ("a", "b"), (-1,), ())
    with pytest.raises(ValueError, match="cycle"):
        Skeleton("x", ("a", "b", "c"), (-1, 2, 1), ())
    with pytest.raises(ValueError, match="unknown skeleton"):
        get_skeleton("nope")


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
