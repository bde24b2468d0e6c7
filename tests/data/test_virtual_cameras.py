"""Virtual cameras: sampling ranges, projection vs the numpy reference, the dataset."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unihpr.data import H36M17, HUMANOID15
from unihpr.data.cameras import project, world_to_camera
from unihpr.data.virtual_cameras import (
    CameraDistribution,
    VirtualCameraDataset,
    project_to_camera,
    sample_cameras,
    up_basis,
)


def _motion(n=12, skeleton=HUMANOID15, seed=0, up=1):
    g = torch.Generator().manual_seed(seed)
    m = 0.3 * torch.randn(n, skeleton.num_joints, 3, generator=g, dtype=torch.float64)
    m[..., up] += 1.0
    return m


@pytest.mark.parametrize("up_axis", ["x", "y", "z"])
def test_cameras_are_rotations_that_look_at_the_target(up_axis):
    dist = CameraDistribution(aim_jitter=0.0, roll=(0.0, 0.0), up_axis=up_axis)
    g = torch.Generator().manual_seed(1)
    target = torch.randn(64, 3, dtype=torch.float64, generator=g)
    cams = sample_cameras(target, dist, g)
    r = cams.rotation
    eye = torch.eye(3, dtype=torch.float64).expand_as(r)
    torch.testing.assert_close(r.transpose(1, 2) @ r, eye)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(64, dtype=torch.float64))
    cam, uv = project_to_camera(target[:, None], cams)
    # the target is on the optical axis: it projects to the principal point
    torch.testing.assert_close(uv[:, 0], torch.full((64, 2), 500.0, dtype=torch.float64))
    d = cam[:, 0, 2]
    assert bool(((d >= 3.0 - 1e-9) & (d <= 7.0 + 1e-9)).all())
    # elevation: the camera's height above the target
    up, _, _ = up_basis(up_axis)
    el = torch.rad2deg(torch.asin(((cams.center - target) @ up) / d))
    assert bool(((el >= -10 - 1e-6) & (el <= 30 + 1e-6)).all())
    # no roll: the camera's x axis is horizontal, y points down
    torch.testing.assert_close(r[:, :, 0] @ up, torch.zeros(64, dtype=torch.float64))
    assert bool((r[:, :, 1] @ up < 0).all())


def test_roll_rotates_the_image_about_the_principal_point():
    target = torch.zeros(1, 3, dtype=torch.float64)
    world = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]], dtype=torch.float64)
    angles = []
    for roll in (0.0, 30.0):
        dist = CameraDistribution(aim_jitter=0.0, roll=(roll, roll), elevation=(0, 0))
        _, uv = project_to_camera(world, sample_cameras(target, dist, torch.Generator()))
        v = uv[0, 1] - uv[0, 0]
        angles.append(math.degrees(math.atan2(v[1], v[0])))
    assert abs(abs(angles[1] - angles[0]) - 30.0) < 1e-6


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 5))
def test_projection_matches_numpy_reference(seed, n):
    g = torch.Generator().manual_seed(seed)
    world = _motion(n, H36M17, seed, up=2)
    cams = sample_cameras(world[:, 0], CameraDistribution(up_axis="z"), g)
    cam, uv = project_to_camera(world, cams)
    for i in range(n):
        r, c, k = (x[i].numpy() for x in (cams.rotation, cams.center, cams.intrinsics))
        ref_cam = world_to_camera(world[i].numpy(), r, c)
        ref_uv = project(ref_cam, np.diag(k)[:2], k[:2, 2])
        np.testing.assert_allclose(cam[i].numpy(), ref_cam, rtol=0, atol=1e-12)
        np.testing.assert_allclose(uv[i].numpy(), ref_uv, rtol=0, atol=1e-9)


def test_dataset_samples_follow_the_contract_and_keep_the_body_rigid():
    motion = _motion(8)
    data = VirtualCameraDataset(motion, HUMANOID15, clips=["a"] * 4 + ["b"] * 4,
                                frames=list(range(8)))  # fmt: skip
    s = data[5]
    assert s["pose2d"].shape == (15, 2) and s["pose3d"].shape == (15, 3)
    assert s["pose2d"].dtype == torch.float32 and s["action"] == "b" and s["frame"] == 5
    torch.testing.assert_close(s["pose3d"][HUMANOID15.root], torch.zeros(3))
    assert set(s) == {"pose2d", "pose3d", "subject", "action", "frame", "index"}
    # a camera is a rigid motion: every pairwise joint distance is kept
    world = motion[5].float()
    torch.testing.assert_close(torch.cdist(s["pose3d"], s["pose3d"]), torch.cdist(world, world),
                               atol=1e-5, rtol=0)  # fmt: skip


def test_fresh_view_every_access_and_reproducible_under_a_seed():
    data = VirtualCameraDataset(_motion(4), HUMANOID15)
    torch.manual_seed(0)
    a = data.__getitems__([0, 1, 2])
    b = data.__getitems__([0, 1, 2])
    assert not torch.allclose(a[0]["pose2d"], b[0]["pose2d"])
    torch.manual_seed(0)
    c = data.__getitems__([0, 1, 2])
    for x, y in zip(a, c):
        torch.testing.assert_close(x["pose2d"], y["pose2d"])
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    assert next(iter(loader))["pose2d"].shape == (4, 15, 2)


def test_validation():
    with pytest.raises(ValueError, match="motion must have shape"):
        VirtualCameraDataset(torch.zeros(3, 14, 3), HUMANOID15)
    with pytest.raises(ValueError, match="NaN"):
        VirtualCameraDataset(torch.full((3, 15, 3), float("nan")), HUMANOID15)
    with pytest.raises(TypeError, match="floating"):
        VirtualCameraDataset(torch.zeros(3, 15, 3, dtype=torch.long), HUMANOID15)
    with pytest.raises(ValueError, match="clips"):
        VirtualCameraDataset(_motion(3), HUMANOID15, clips=["a"])
    with pytest.raises(IndexError):
        VirtualCameraDataset(_motion(3), HUMANOID15)[3]
    with pytest.raises(TypeError, match="cameras must be a CameraDistribution or None, got dict"):
        VirtualCameraDataset(_motion(3), HUMANOID15, cameras={"distance": (3, 4)})
    with pytest.raises(TypeError, match="augment must be callable"):
        VirtualCameraDataset(_motion(3), HUMANOID15, augment="mirror")
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        VirtualCameraDataset(_motion(3), HUMANOID15, generator=0)
    with pytest.raises(ValueError, match="up_axis"):
        CameraDistribution(up_axis="w")
    with pytest.raises(ValueError, match="distance"):
        CameraDistribution(distance=(2.0, 1.0))
    with pytest.raises(ValueError, match="elevation"):
        CameraDistribution(elevation=(0.0, 95.0))
    with pytest.raises(ValueError, match="behind"):
        far = _motion(2) + torch.tensor([0.0, 0.0, 50.0], dtype=torch.float64)
        cams = sample_cameras(torch.zeros(2, 3), CameraDistribution(distance=(3, 3)))
        project_to_camera(far, cams)


def test_with_poses_attaches_a_random_fresh_pair_to_every_sample():
    from unihpr.data.virtual_cameras import WithPoses

    base = [{"image": torch.zeros(3, 4, 4), "pose2d": torch.zeros(15, 2),
             "pose3d": torch.zeros(15, 3)} for _ in range(5)]  # fmt: skip
    data = WithPoses(base, VirtualCameraDataset(_motion(7), HUMANOID15))
    torch.manual_seed(0)
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=5)))
    assert batch["poses"]["pose2d"].shape == (5, 15, 2)
    assert batch["poses"]["pose3d"].shape == (5, 15, 3) and batch["image"].shape == (5, 3, 4, 4)
    assert len(data) == 5 and set(data[0]) == {"image", "pose2d", "pose3d", "poses"}
    torch.manual_seed(0)
    again = next(iter(torch.utils.data.DataLoader(data, batch_size=5)))
    torch.testing.assert_close(again["poses"]["pose2d"], batch["poses"]["pose2d"])
    with pytest.raises(ValueError, match="empty"):
        WithPoses(base, [])
