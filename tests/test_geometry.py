"""Canonical 2D/3D pose frames, checked against float64 references."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from unihpr.geometry import (
    bbox_from_keypoints,
    denormalize_pose2d,
    normalize_pose2d,
    normalize_pose3d,
)


def test_bbox_from_keypoints_ignores_masked_joints():
    pose = torch.tensor([[[1.0, 5.0], [3.0, 2.0], [100.0, -50.0]]])
    mask = torch.tensor([[True, True, False]])
    assert torch.equal(bbox_from_keypoints(pose, mask), torch.tensor([[1.0, 2.0, 3.0, 5.0]]))
    assert torch.equal(bbox_from_keypoints(pose, torch.zeros_like(mask)), torch.zeros(1, 4))


@given(st.lists(st.integers(1, 3), min_size=0, max_size=2), st.integers(1, 6))
def test_bbox_from_keypoints_any_leading_shape(lead, joints):
    g = torch.Generator().manual_seed(len(lead) * 7 + joints)
    pose = torch.rand(*lead, joints, 2, generator=g, dtype=torch.float64) * 500 - 100
    box = bbox_from_keypoints(pose)
    assert box.shape == (*lead, 4)
    flat = pose.reshape(-1, joints, 2)
    ref = torch.cat([flat.amin(1), flat.amax(1)], -1).reshape(*lead, 4)  # float64 reference
    assert torch.equal(box, ref)


def test_normalize_pose2d_float64_reference():
    g = torch.Generator().manual_seed(1)
    pose = torch.rand(4, 7, 2, generator=g, dtype=torch.float64) * 300
    out, _ = normalize_pose2d(pose.float())
    x0, y0 = pose[..., 0].min(1).values, pose[..., 1].min(1).values
    x1, y1 = pose[..., 0].max(1).values, pose[..., 1].max(1).values
    half = torch.maximum(x1 - x0, y1 - y0) / 2
    ref = (pose - torch.stack([(x0 + x1) / 2, (y0 + y1) / 2], -1)[:, None]) / half[:, None, None]
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)
    assert out.abs().max() <= 1 + 1e-6
    # the longer side spans exactly [-1, 1]
    span = out.amax(1) - out.amin(1)
    torch.testing.assert_close(span.amax(-1), torch.full((4,), 2.0), rtol=1e-5, atol=1e-5)


@given(
    st.lists(st.floats(-1e3, 1e3), min_size=12, max_size=12),
    st.floats(1.0, 500.0),
)
def test_denormalize_inverts_normalize(coords, size):
    pose = torch.tensor(coords, dtype=torch.float64).view(1, 6, 2)
    bbox = torch.tensor([[-5.0, 3.0, -5.0 + size, 3.0 + size / 2]], dtype=torch.float64)
    out, _ = normalize_pose2d(pose, bbox)
    torch.testing.assert_close(denormalize_pose2d(out, bbox), pose, rtol=1e-9, atol=1e-7)


def test_normalize_pose2d_masked_nan_is_zero_and_not_propagated():
    pose = torch.rand(2, 5, 2) * 10
    pose[0, 1] = float("nan")
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[0, 1] = False
    out, bbox = normalize_pose2d(pose, mask=mask)
    assert torch.isfinite(out).all() and torch.isfinite(bbox).all()
    assert torch.equal(out[0, 1], torch.zeros(2))


def test_normalize_pose3d_float64_reference_and_scale():
    g = torch.Generator().manual_seed(2)
    pose = torch.randn(3, 9, 3, generator=g, dtype=torch.float64) + 5.0  # not root-relative
    out, scale = normalize_pose3d(pose, root=2)
    rel = pose - pose[:, 2:3]
    ref_scale = rel.square().sum(-1).mean(-1).sqrt()
    torch.testing.assert_close(scale, ref_scale)
    torch.testing.assert_close(out, rel / ref_scale[:, None, None])
    torch.testing.assert_close(out.square().sum(-1).mean(-1), torch.ones(3, dtype=torch.float64))


def test_normalize_pose3d_all_masked_has_finite_values_and_grads():
    pose = torch.randn(2, 4, 3, requires_grad=True)
    mask = torch.tensor([[False] * 4, [True, False, True, True]])
    out, scale = normalize_pose3d(pose, mask)
    (out.sum() + scale.sum()).backward()
    assert torch.isfinite(out).all() and torch.isfinite(pose.grad).all()
    assert torch.equal(out[0], torch.zeros(4, 3))
