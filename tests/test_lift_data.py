"""ClipWindows and corrupt_2d: shapes, one camera and one subject per window, occlusion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from lift_data import (
    ClipWindows,
    Occlusion,
    WindowAugmentation,
    corrupt_2d,
    detector_convention,
)

from unihpr.data import HUMANOID15

NO_OCCLUSION = Occlusion(joint_drop=0, limb_drop=0, frame_drop=0, span=0, displace=0, jitter=0,
                         truncate=0)  # fmt: skip


def _clip(n=40, walk=0.05, seed=0, noise=0.01):
    """A T-pose-like body walking along x (world y up), a little noise per frame."""
    rng = np.random.default_rng(seed)
    base = np.array([[0, 1, 0], [0, 1.3, 0], [0, 1.6, 0], [0.1, 1, 0], [0.1, 0.55, 0],
                     [0.1, 0.1, 0], [0.2, 1.45, 0], [0.45, 1.45, 0], [0.7, 1.45, 0],
                     [-0.1, 1, 0], [-0.1, 0.55, 0], [-0.1, 0.1, 0], [-0.2, 1.45, 0],
                     [-0.45, 1.45, 0], [-0.7, 1.45, 0]], dtype=np.float64)  # fmt: skip
    motion = base[None] + noise * rng.standard_normal((n, 15, 3))
    motion[:, :, 2] += walk * np.arange(n)[:, None]
    return motion


def _bones(pose):
    parents = HUMANOID15.parents
    return torch.stack([(pose[..., j, :] - pose[..., p, :]).norm(dim=-1)
                        for j, p in enumerate(parents) if p >= 0], -1)  # fmt: skip


def test_sample_shapes_and_root():
    data = ClipWindows({"a": _clip(), "b": _clip(seed=1)}, {"a": 30.0, "b": 60.0}, HUMANOID15, 9,
                       augment=WindowAugmentation(), occlusion=Occlusion())  # fmt: skip
    b = data.sample(6, torch.Generator().manual_seed(0))
    assert b["pose2d"].shape == (6, 9, 15, 2) and b["pose2d"].dtype == torch.float32
    assert b["visible"].shape == (6, 9, 15) and b["visible"].dtype == torch.bool
    assert b["pose3d"].shape == (6, 9, 15, 3)
    assert torch.equal(b["pose3d"][:, :, 0], torch.zeros(6, 9, 3))


def test_one_subject_per_window():
    aug = WindowAugmentation(bone_scale=0.2, body_scale=0.2, limb_swap=0, limb_angle=0, mirror=0)
    data = ClipWindows({"a": _clip(noise=0.0)}, {"a": 30.0}, HUMANOID15, 7, augment=aug)
    b = data.sample(8, torch.Generator().manual_seed(1))
    bones = _bones(b["pose3d"].double())  # (B, T, 14)
    # a rigid clip: one subject's bones stay within rounding; drawn scales vary ~20% per window
    assert (bones.std(1) / bones.mean(1)).max() < 1e-6
    assert (bones.mean(1).std(0) / bones.mean((0, 1))).mean() > 0.05


def test_same_seed_same_windows_and_no_joint_behind_camera():
    clips = {"far": _clip(n=60, walk=0.3)}  # 18 m in 2 s: the camera must step back
    data = ClipWindows(clips, {"far": 30.0}, HUMANOID15, 27, occlusion=Occlusion())
    a = data.sample(4, torch.Generator().manual_seed(5))
    b = data.sample(4, torch.Generator().manual_seed(5))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_without_occlusion_everything_is_visible():
    data = ClipWindows({"a": _clip()}, {"a": 30.0}, HUMANOID15, 5)
    assert data.sample(3)["visible"].all()


def test_corrupt_2d_off_is_identity():
    p = 100 + 50 * torch.rand(2, 4, 15, 2, dtype=torch.float64)
    q, v = corrupt_2d(p, HUMANOID15, NO_OCCLUSION)
    assert torch.equal(q, p) and v.all()


def test_hidden_joints_are_moved_within_the_bound():
    p = 100 + 50 * torch.rand(64, 8, 15, 2, dtype=torch.float64)
    occ = Occlusion(joint_drop=0.6, limb_drop=0, frame_drop=0, span=0, displace=0, jitter=0,
                    truncate=0, displace_max=0.3)  # fmt: skip
    q, v = corrupt_2d(p, HUMANOID15, occ, torch.Generator().manual_seed(0))
    assert 0.15 < (~v).float().mean() < 0.45  # rate ~ U(0, 0.6) per window: mean 0.3
    assert torch.equal(q[v], p[v])
    side = 50.0  # the boxes are at most 50 px wide
    assert ((q - p).norm(dim=-1)[~v] <= 0.3 * side + 1e-9).all()


def test_frame_drop_hides_whole_frames_and_truncation_cuts_one_side():
    p = 100 + 50 * torch.rand(32, 10, 15, 2, dtype=torch.float64)
    occ = Occlusion(joint_drop=0, limb_drop=0, frame_drop=1.0, span=0, displace=0, jitter=0,
                    truncate=0)  # fmt: skip
    _, v = corrupt_2d(p, HUMANOID15, occ, torch.Generator().manual_seed(0))
    assert (v.all(-1) | ~v.any(-1)).all()
    cut = Occlusion(joint_drop=0, limb_drop=0, frame_drop=0, span=0, displace=0, jitter=0,
                    truncate=1.0)  # fmt: skip
    _, v = corrupt_2d(p, HUMANOID15, cut, torch.Generator().manual_seed(0))
    assert 0 < (~v).float().mean() < 0.6


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"joint_drop": 1.5}, ValueError), ({"jitter": -0.1}, ValueError),
     ({"truncate": "x"}, TypeError), ({"displace_max": math.nan}, ValueError),
     ({"clean": 1.01}, ValueError), ({"clean": math.nan}, ValueError)],
)  # fmt: skip
def test_occlusion_checks(kwargs, error):
    with pytest.raises(error):
        Occlusion(**kwargs)


def test_clip_windows_checks():
    with pytest.raises(ValueError, match="same clips"):
        ClipWindows({"a": _clip()}, {"b": 30.0}, HUMANOID15, 5)
    with pytest.raises(ValueError, match="window"):
        ClipWindows({"a": _clip()}, {"a": 30.0}, HUMANOID15, 0)
    with pytest.raises(ValueError, match="speed"):
        ClipWindows({"a": _clip()}, {"a": 30.0}, HUMANOID15, 5, speed=(2.0, 1.0))


def test_detector_convention_matches_the_coco_mapping():
    from unihpr.data.mapping import map_joints

    g = torch.Generator().manual_seed(0)
    p = torch.rand(3, 15, 2, generator=g, dtype=torch.float64) * 100
    out = detector_convention(p, torch.zeros(3), torch.zeros(3))
    # no widening: exactly what lift builds from COCO keypoints of the same limb points
    coco = torch.zeros(3, 17, 2, dtype=torch.float64)
    names = HUMANOID15.joint_names
    from unihpr.data import COCO17

    for k, name in enumerate(COCO17.joint_names):
        if name in names:
            coco[:, k] = p[:, names.index(name)]
    torch.testing.assert_close(out, map_joints(coco, "coco17", HUMANOID15), rtol=0, atol=1e-12)
    wide = detector_convention(p, torch.full((3,), 0.2), torch.zeros(3))
    li, ri = names.index("left_hip"), names.index("right_hip")
    ratio = (wide[:, li] - wide[:, ri]).norm(dim=-1) / (p[:, li] - p[:, ri]).norm(dim=-1)
    torch.testing.assert_close(ratio, torch.full((3,), 1.2, dtype=torch.float64))


def test_detector_convention_shoulder_drop_moves_shoulders_towards_the_hips():
    g = torch.Generator().manual_seed(1)
    p = torch.rand(4, 15, 2, generator=g, dtype=torch.float64) * 100
    names = HUMANOID15.joint_names
    li, ri = names.index("left_hip"), names.index("right_hip")
    ls, rs = names.index("left_shoulder"), names.index("right_shoulder")
    zero = torch.zeros(4)
    out = detector_convention(p, zero, zero, torch.full((4,), 0.25))
    hips, sho = 0.5 * (p[:, li] + p[:, ri]), 0.5 * (p[:, ls] + p[:, rs])
    moved = 0.5 * (out[:, ls] + out[:, rs])
    torch.testing.assert_close(moved, sho + 0.25 * (hips - sho))
    # the shoulder width and the hips are unchanged; the neck follows the shoulders
    torch.testing.assert_close(out[:, ls] - out[:, rs], p[:, ls] - p[:, rs])
    torch.testing.assert_close(out[:, [li, ri]], p[:, [li, ri]])
    torch.testing.assert_close(out[:, names.index("neck")], moved)


def test_clean_windows_are_passed_exact_and_whole():
    p = 100 + 50 * torch.rand(400, 6, 15, 2, dtype=torch.float64)
    occ = Occlusion(joint_drop=0.9, frame_drop=0.5, jitter=0.05, clean=0.5)
    q, v = corrupt_2d(p, HUMANOID15, occ, torch.Generator().manual_seed(0))
    exact = (q == p).all(-1).all(-1).all(-1) & v.all(-1).all(-1)
    assert 0.4 < exact.float().mean() < 0.6  # p 0.5 per window; the others all corrupted
    assert not (q[~exact] == p[~exact]).all()
