"""PoseEncoder: shapes, masking, validation and gradient flow."""

import pytest
import torch

from unihpr.models.pose_encoder import PoseEncoder

J = 6


def _enc(dims, **kw):
    return PoseEncoder(J, dims, embed_dim=16, width=32, depth=2, num_heads=4, **kw)


@pytest.mark.parametrize("dims", [2, 3])
def test_shape_norm_and_raw_output(dims):
    enc = _enc(dims)
    pose = torch.rand(3, J, dims) * (50 if dims == 2 else 1)
    out = enc(pose)
    assert out.shape == (3, 16)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3))
    raw = enc(pose, normalize=False)
    torch.testing.assert_close(torch.nn.functional.normalize(raw, dim=-1), out)


@pytest.mark.parametrize("dims", [2, 3])
def test_masked_joints_are_ignored_even_if_nan(dims):
    enc = _enc(dims).eval()
    pose = torch.rand(2, J, dims) * 10
    mask = torch.ones(2, J, dtype=torch.bool)
    mask[:, 2] = False
    a = enc(pose, mask=mask)
    pose2 = pose.clone()
    pose2[:, 2] = float("nan")
    b = enc(pose2, mask=mask)
    pose3 = pose.clone()
    pose3[:, 2] = 1e4
    c = enc(pose3, mask=mask)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    assert not torch.allclose(a, enc(pose))  # the mask does change the embedding


@pytest.mark.parametrize("dims", [2, 3])
def test_all_joints_masked_is_finite_with_finite_grads(dims):
    enc = _enc(dims)
    pose = torch.full((2, J, dims), float("nan"), requires_grad=True)
    out = enc(pose, mask=torch.zeros(2, J, dtype=torch.bool))
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)


def test_bbox_changes_2d_embedding_and_defaults_to_keypoint_box():
    enc = _enc(2).eval()
    pose = torch.rand(2, J, 2) * 40 + 10
    tight = torch.cat([pose.amin(1), pose.amax(1)], dim=-1)
    torch.testing.assert_close(enc(pose), enc(pose, bbox=tight))
    assert not torch.allclose(enc(pose), enc(pose, bbox=tight + torch.tensor([-5.0, -5, 5, 5])))


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("attend_to_masked", [False, True])
def test_gradients_reach_every_parameter(dims, attend_to_masked):
    enc = _enc(dims, attend_to_masked=attend_to_masked)
    mask = torch.ones(4, J, dtype=torch.bool)
    mask[0, 1] = False  # so that the mask token is used
    pose = torch.rand(4, J, dims, requires_grad=True)
    (enc(pose, mask=mask) * torch.randn(4, 16)).sum().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None, name  # every parameter is in the graph (DDP-safe)
        # padded-out mask tokens cannot influence the output, by design
        if name != "mask_token" or attend_to_masked:
            assert p.grad.abs().sum() > 0, name
    assert pose.grad.abs().sum() > 0


def test_attend_to_masked_sees_which_joint_is_missing():
    enc = _enc(2, attend_to_masked=True).eval()
    pose = torch.rand(1, J, 2) * 10
    m1 = torch.ones(1, J, dtype=torch.bool)
    m1[0, 1] = False
    m2 = torch.ones(1, J, dtype=torch.bool)
    m2[0, 4] = False
    pose_nan = pose.clone()
    pose_nan[0, 1] = float("nan")
    torch.testing.assert_close(enc(pose, mask=m1), enc(pose_nan, mask=m1))
    assert not torch.allclose(enc(pose, mask=m1), enc(pose, mask=m2))


def test_float64_matches_float32():
    enc = _enc(3).eval()
    pose = torch.randn(2, J, 3)
    out32 = enc(pose)
    out64 = enc.double()(pose.double())
    torch.testing.assert_close(out64.float(), out32, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("call", "err", "match"),
    [
        (lambda e2, e3: e2(torch.rand(2, J + 1, 2)), ValueError, r"pose2d.*\(2, 7, 2\)"),
        (lambda e2, e3: e2(torch.rand(2, J, 3)), ValueError, "pose2d"),
        (lambda e2, e3: e2(torch.rand(J, 2)), ValueError, "pose2d"),
        (lambda e2, e3: e2(torch.zeros(0, J, 2)), ValueError, "at least one"),
        (lambda e2, e3: e2(torch.ones(2, J, 2, dtype=torch.long)), TypeError, "floating"),
        (lambda e2, e3: e2([[0.0]]), TypeError, "torch.Tensor"),
        (lambda e2, e3: e2(torch.rand(2, J, 2), mask=torch.ones(2, J)), TypeError, "bool"),
        (lambda e2, e3: e2(torch.rand(2, J, 2), mask=torch.ones(3, J).bool()), ValueError, "mask"),
        (lambda e2, e3: e2(torch.rand(2, J, 2), bbox=torch.rand(2, 3)), ValueError, "bbox"),
        (
            lambda e2, e3: e2(torch.rand(2, J, 2), bbox=torch.tensor([[5.0, 0, 1, 1]] * 2)),
            ValueError,
            "x1 >= x0",
        ),
        (lambda e2, e3: e3(torch.rand(2, J, 3), bbox=torch.rand(2, 4)), ValueError, "bbox"),
        (
            lambda e2, e3: e3(torch.full((2, J, 3), float("nan"))),
            ValueError,
            "NaN or infinite",
        ),
    ],
)
def test_validation(call, err, match):
    with pytest.raises(err, match=match):
        call(_enc(2), _enc(3))


@pytest.mark.parametrize("dims", [2, 3])
def test_token_readout_uses_every_token(dims):
    enc = _enc(dims, readout="tokens").eval()
    assert enc.head.in_features == 32 * (J + 2)
    pose = torch.rand(3, J, dims)
    out = enc(pose)
    assert out.shape == (3, 16) and torch.isfinite(out).all()
    # unlike [CLS], the flattened readout sees each joint's own output token
    mask = torch.ones(3, J, dtype=torch.bool)
    mask[:, 0] = False
    assert not torch.allclose(out, enc(pose, mask=mask))


@pytest.mark.parametrize("readout", ["cls", "tokens"])
def test_shape_box_features_make_2d_embedding_frame_invariant(readout):
    """Crop pixels, sensor pixels, any image size: the same pose, the same embedding."""
    enc = _enc(2, readout=readout, bbox_features="shape").double().eval()
    g = torch.Generator().manual_seed(0)
    pose = torch.rand(4, J, 2, generator=g, dtype=torch.float64) * 60
    for scale, shift in ((15.625, (300.0, -40.0)), (0.01, (0.0, 0.0)), (3.0, (-1e3, 2e3))):
        moved = pose * scale + torch.tensor(shift, dtype=torch.float64)
        torch.testing.assert_close(enc(moved), enc(pose), rtol=0, atol=1e-10)
    frame = _enc(2, readout=readout, bbox_features="frame").double().eval()
    assert not torch.allclose(frame(pose * 15.625), frame(pose))


def test_constructor_validation():
    with pytest.raises(ValueError, match="readout"):
        PoseEncoder(J, 2, 16, readout="mean")
    with pytest.raises(ValueError, match="bbox_features"):
        PoseEncoder(J, 2, 16, bbox_features="pixels")
    with pytest.raises(ValueError, match="dims"):
        PoseEncoder(J, 4, 16)
    with pytest.raises(ValueError, match="divisible"):
        PoseEncoder(J, 2, 16, width=30, num_heads=4)
    with pytest.raises(ValueError, match="root_joint"):
        PoseEncoder(J, 3, 16, root_joint=J)
