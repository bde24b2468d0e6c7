"""3D pose augmentation: each term against its defining property."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unihpr.data import H36M17, HUMANOID15
from unihpr.data.augment import (
    PoseAugmentation,
    RandomFlip,
    limb_roots,
    recombine_limbs,
    scale_bones,
)


def _poses(n=6, skeleton=HUMANOID15, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(n, skeleton.num_joints, 3, generator=g, dtype=torch.float64)


def _bone_lengths(pose, skeleton):
    return torch.stack([(pose[:, j] - pose[:, p]).norm(dim=-1) for j, p in skeleton.bones], -1)


def _rot_y(deg):
    a = math.radians(deg)
    return torch.tensor(
        [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]],
        dtype=torch.float64,
    )


def test_limb_roots_are_hips_and_shoulders():
    names = {HUMANOID15.joint_names[r] for r, _ in limb_roots(HUMANOID15)}
    assert names == {"left_hip", "right_hip", "left_shoulder", "right_shoulder"}
    names = {H36M17.joint_names[r] for r, _ in limb_roots(H36M17)}
    assert names == {"left_hip", "right_hip", "left_shoulder", "right_shoulder"}


def test_off_is_identity():
    pose = _poses()
    aug = PoseAugmentation()
    assert not aug.active
    torch.testing.assert_close(aug(pose, HUMANOID15), pose)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_scale_bones_scales_each_bone_exactly(seed):
    pose = _poses(seed=seed)
    g = torch.Generator().manual_seed(seed)
    scale = torch.rand(6, 15, generator=g, dtype=torch.float64) + 0.5
    out = scale_bones(pose, HUMANOID15, scale)
    idx = [j for j, _ in HUMANOID15.bones]
    torch.testing.assert_close(_bone_lengths(out, HUMANOID15),
                               _bone_lengths(pose, HUMANOID15) * scale[:, idx])  # fmt: skip
    torch.testing.assert_close(scale_bones(pose, HUMANOID15, torch.ones(6, 15)), pose)


def test_bone_augmentation_keeps_left_right_proportions():
    pose = _poses()
    out = PoseAugmentation(bone_scale=0.2)(pose, HUMANOID15, generator=torch.Generator())
    before, after = _bone_lengths(pose, HUMANOID15), _bone_lengths(out, HUMANOID15)
    ratio = after / before
    col = {j: k for k, (j, _) in enumerate(HUMANOID15.bones)}
    for left, right in HUMANOID15.flip_pairs:
        torch.testing.assert_close(ratio[:, col[left]], ratio[:, col[right]])
    assert not torch.allclose(ratio, torch.ones_like(ratio))


def test_recombined_limb_of_a_rotated_copy_is_the_original():
    pose = _poses()
    donors = pose @ _rot_y(70).T + torch.tensor([1.0, 0.0, -2.0], dtype=torch.float64)
    swap = torch.ones(6, 4, dtype=torch.bool)
    torch.testing.assert_close(recombine_limbs(pose, donors, HUMANOID15, swap), pose)


def test_recombination_changes_only_the_swapped_limb():
    pose, donors = _poses(seed=1), _poses(seed=2)
    limbs = limb_roots(HUMANOID15)
    swap = torch.zeros(6, len(limbs), dtype=torch.bool)
    swap[:, 0] = True
    out = recombine_limbs(pose, donors, HUMANOID15, swap)
    root = limbs[0][0]
    below = {j for j in range(15) if j != root and _is_below(j, root)}
    assert below
    for j in range(15):
        if j in below:
            assert not torch.allclose(out[:, j], pose[:, j])
            # the limb keeps the donor's bone lengths
            p = HUMANOID15.parents[j]
            torch.testing.assert_close((out[:, j] - out[:, p]).norm(dim=-1),
                                       (donors[:, j] - donors[:, p]).norm(dim=-1))  # fmt: skip
        else:
            torch.testing.assert_close(out[:, j], pose[:, j])


def _is_below(j, root):
    while j >= 0:
        if j == root:
            return True
        j = HUMANOID15.parents[j]
    return False


def test_mirror_is_a_reflection_with_left_right_swapped():
    pose = _poses()
    out = PoseAugmentation(mirror=1.0)(pose, HUMANOID15, up_axis="y")
    perm = list(HUMANOID15.flip_permutation)
    ref = pose[:, perm].clone()
    root = pose[:, :1, 2]
    ref[..., 2] = 2 * root - ref[..., 2]  # "y" up: the mirror plane is z = root_z
    torch.testing.assert_close(out, ref)
    twice = PoseAugmentation(mirror=1.0)(out, HUMANOID15)
    torch.testing.assert_close(twice, pose)


def test_tilt_is_a_rotation_about_the_root_within_range():
    pose = _poses()
    out = PoseAugmentation(tilt=20.0)(pose, HUMANOID15, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[:, 0], pose[:, 0])
    torch.testing.assert_close(torch.cdist(out, out), torch.cdist(pose, pose))
    up = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    v0, v1 = pose[:, 1] - pose[:, 0], out[:, 1] - out[:, 0]
    # rotation about a horizontal axis changes the elevation of a vector by <= the angle
    el0 = torch.rad2deg(torch.asin((v0 @ up) / v0.norm(dim=-1)))
    el1 = torch.rad2deg(torch.asin((v1 @ up) / v1.norm(dim=-1)))
    assert bool(((el1 - el0).abs() <= 20.0 + 1e-6).all())


def test_limb_swap_draws_from_the_pool():
    pose = _poses(4)
    pool = _poses(10, seed=3)
    out = PoseAugmentation(limb_swap=1.0)(pose, HUMANOID15, pool=pool,
                                           generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert out.dtype == pose.dtype and not torch.allclose(out, pose)
    torch.testing.assert_close(out[:, 0], pose[:, 0])


@pytest.mark.parametrize(
    "kwargs, match",
    [({"mirror": 1.5}, "mirror must be a finite number >= 0 and <= 1"),
     ({"limb_swap": -0.1}, "limb_swap"), ({"bone_scale": -1.0}, "bone_scale"),
     ({"tilt": 100.0}, "tilt must be a finite number >= 0 and <= 90")],
)  # fmt: skip
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=f"PoseAugmentation: {match}"):
        PoseAugmentation(**kwargs)
    with pytest.raises(TypeError, match="mirror must be a real number, got str"):
        PoseAugmentation(mirror="0.5")
    with pytest.raises(ValueError, match="pose must be"):
        PoseAugmentation(mirror=1.0)(torch.zeros(2, 14, 3), HUMANOID15)


class _Images(torch.utils.data.Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        p2d = torch.rand(15, 2, generator=g) * 50 + 7
        return {"image": torch.rand(3, 64, 64, generator=g), "pose2d": p2d,
                "pose3d": torch.randn(15, 3, generator=g), "action": "a"}  # fmt: skip


def test_random_flip_mirrors_image_2d_and_3d_together():
    base = _Images()
    always = RandomFlip(base, HUMANOID15, p=1.0)
    s, f = base[1], always[1]
    perm = list(HUMANOID15.flip_permutation)
    torch.testing.assert_close(f["image"], s["image"].flip(-1))
    torch.testing.assert_close(f["pose2d"][:, 0], 64 - s["pose2d"][perm, 0])
    torch.testing.assert_close(f["pose2d"][:, 1], s["pose2d"][perm, 1])
    torch.testing.assert_close(f["pose3d"][:, 0], -s["pose3d"][perm, 0])
    twice = RandomFlip(always, HUMANOID15, p=1.0)[1]
    for k in ("image", "pose2d", "pose3d"):
        torch.testing.assert_close(twice[k], s[k])
    never = RandomFlip(base, HUMANOID15, p=0.0)[1]
    torch.testing.assert_close(never["image"], s["image"])
    assert len(always) == 3 and f["action"] == "a"
    with pytest.raises(ValueError, match=r"RandomFlip: p must be a finite number >= 0 and <= 1"):
        RandomFlip(base, HUMANOID15, p=2.0)
    with pytest.raises(ValueError, match="swap_channels"):
        RandomFlip(base, HUMANOID15, swap_channels=(0, 3))
    # side-coloured renders: red and blue trade places so the colours keep naming the sides
    coloured = RandomFlip(base, HUMANOID15, p=1.0, swap_channels=(0, 2))[1]
    torch.testing.assert_close(coloured["image"], s["image"].flip(-1)[[2, 1, 0]])
