"""UniHPR model: encoders, estimation, retrieval, interpolation, gradient flow."""

import pytest
import torch

from unihpr.models import UniHPR, create_model
from unihpr.models.unihpr import slerp

J = 15


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("unihpr-tiny", decoder="transformer", decoder_width=32).eval()


def _inputs(b=2):
    return torch.rand(b, 3, 64, 64), torch.rand(b, J, 2) * 64, torch.randn(b, J, 3) * 0.3


def test_encoders_return_unit_embeddings(model):
    img, p2, p3 = _inputs()
    for emb in (model.encode_image(img), model.encode_pose2d(p2), model.encode_pose3d(p3)):
        assert emb.shape == (2, 128)
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))
    assert model.encode_image(img, normalize=False).norm(dim=-1).sub(1).abs().max() > 1e-3
    out = model(image=img, pose3d=p3)
    assert set(out) == {"image", "pose3d"}
    with pytest.raises(ValueError, match="at least one"):
        model()


def test_estimates(model):
    img, p2, p3 = _inputs()
    assert model.estimate_3d(image=img).shape == (2, J, 3)
    assert model.estimate_3d(pose2d=p2, bbox=torch.tensor([[0.0, 0, 64, 64]] * 2)).shape == (
        2,
        J,
        3,
    )
    assert model.estimate_2d(image=img).shape == (2, J, 2)
    assert model.estimate_3d(pose3d=p3).shape == (2, J, 3)
    with pytest.raises(ValueError, match="exactly one"):
        model.estimate_3d(image=img, pose2d=p2)
    with pytest.raises(ValueError, match="exactly one"):
        model.estimate_2d()


def test_retrieve_float64_reference():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(4, 8, generator=g, dtype=torch.float64)
    gal = torch.randn(10, 8, generator=g, dtype=torch.float64) * 3
    idx, scores = UniHPR.retrieve(q, gal, k=3)
    cos = torch.tensor(
        [[float(a @ b / (a.norm() * b.norm())) for b in gal] for a in q], dtype=torch.float64
    )
    ref = cos.sort(dim=1, descending=True)
    assert torch.equal(idx, ref.indices[:, :3])
    torch.testing.assert_close(scores, ref.values[:, :3])
    for bad in (0, 11):
        with pytest.raises(ValueError, match="k must be"):
            UniHPR.retrieve(q, gal, k=bad)
    for bad in (2.0, True):
        with pytest.raises(TypeError, match="k must be"):
            UniHPR.retrieve(q, gal, k=bad)
    with pytest.raises(ValueError, match="gallery"):
        UniHPR.retrieve(q, gal[:, :5], k=1)
    with pytest.raises(TypeError, match="queries"):
        UniHPR.retrieve(q.long(), gal, k=1)


def test_slerp_float64_reference():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(3, 6, generator=g, dtype=torch.float64), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(3, 6, generator=g, dtype=torch.float64), dim=-1)
    b[2] = a[2]  # parallel: falls back to lerp, must stay finite
    w = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    out = slerp(a, b, w)
    assert out.shape == (3, 3, 6)
    torch.testing.assert_close(out[0], a)
    torch.testing.assert_close(out[-1], b)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3, 3, dtype=torch.float64))
    om = torch.arccos((a[0] * b[0]).sum())
    ref = (torch.sin(0.7 * om) * a[0] + torch.sin(0.3 * om) * b[0]) / torch.sin(om)
    torch.testing.assert_close(out[1, 0], ref)
    # equal angular steps
    ang = torch.arccos((out[1, 1] * a[1]).sum()) / torch.arccos((a[1] * b[1]).sum())
    torch.testing.assert_close(ang, torch.tensor(0.3, dtype=torch.float64))


def test_interpolate_endpoints_decode_the_endpoint_embeddings(model):
    _, _, p3 = _inputs()
    path = model.interpolate(p3, p3.flip(0), steps=4)
    assert path.shape == (4, 2, J, 3)
    ref = model.decode(model.encode_pose3d(p3), "pose3d")
    torch.testing.assert_close(path[0], ref, rtol=1e-4, atol=1e-5)
    assert model.interpolate(p3[0], p3[1], steps=3).shape == (3, J, 3)
    with pytest.raises(ValueError, match="steps"):
        model.interpolate(p3, p3, steps=1)
    with pytest.raises(ValueError, match=r"pose3d_b has shape .* but pose3d_a has"):
        model.interpolate(p3, p3[:1], steps=3)


def test_gradients_reach_every_module():
    torch.manual_seed(0)
    m = create_model("unihpr-tiny", decoder="mlp", decoder_width=32)
    img, p2, p3 = _inputs(3)
    mask = torch.ones(3, J, dtype=torch.bool)
    mask[0, 3] = False
    emb = m(image=img, pose2d=p2, pose3d=p3, mask=mask)
    loss = (emb["image"] * emb["pose2d"]).sum() + (emb["image"] * emb["pose3d"]).sum()
    loss = loss + m.decoder3d.loss(emb["image"], "image", p3)
    loss = loss + m.decoder2d.loss(emb["pose2d"], "pose2d", torch.rand(3, J, 2))
    loss.backward()
    for name in ("image_encoder", "pose2d_encoder", "pose3d_encoder", "decoder3d", "decoder2d"):
        params = list(getattr(m, name).named_parameters())
        assert all(p.grad is not None for _, p in params), name
        assert sum(p.grad.abs().sum() for _, p in params) > 0, name


def test_type_errors():
    with pytest.raises(TypeError, match="UniHPRConfig"):
        UniHPR({"num_joints": 3})


#: Documented tolerance (docs/benchmarks.md): in float32, expressing the same 2D
#: keypoints in another pixel frame moves the lifted joints by less than 0.1 mm.
FRAME_TOLERANCE_M = 1e-4


@pytest.mark.parametrize("name", ["unihpr-tiny", "unihpr-w32"])
def test_lifting_does_not_depend_on_the_pixel_frame(name):
    torch.manual_seed(0)
    overrides = (
        {"pose_width": 32, "pose_heads": 4, "decoder": "mlp"} if name != "unihpr-tiny" else {}
    )
    model = create_model(name, **overrides).eval()
    j = model.config.num_joints
    crop = torch.rand(8, j, 2) * 48 + 8  # keypoints in 64-px crop pixels
    # the same keypoints in a 1000-px sensor (crop scaled by 15.6 and placed at (321, 87))
    # and in a 4K frame
    for scale, shift in ((15.625, (321.0, 87.0)), (60.0, (1900.0, 1000.0)), (0.5, (-3.0, 2.0))):
        moved = crop * scale + torch.tensor(shift)
        diff = (model.estimate_3d(pose2d=moved) - model.estimate_3d(pose2d=crop)).abs().max()
        assert float(diff) < FRAME_TOLERANCE_M, (scale, shift, float(diff))


def test_embed_is_the_one_modality_switch(model):
    img, p2, p3 = _inputs()
    bbox = torch.tensor([[0.0, 0, 64, 64]] * 2)
    mask = torch.ones(2, J, dtype=torch.bool)
    mask[1, 4] = False
    batch = {"image": img, "pose2d": p2, "bbox": bbox, "pose3d": p3, "mask": mask, "action": ["a"]}
    out = model.embed(batch)
    assert list(out) == ["image", "pose2d", "pose3d"]
    torch.testing.assert_close(out["image"], model.encode_image(img))
    torch.testing.assert_close(out["pose2d"], model.encode_pose2d(p2, bbox=bbox, mask=mask))
    torch.testing.assert_close(out["pose3d"], model.encode_pose3d(p3, mask=mask))
    assert list(model.embed(batch, ["pose3d", "image"])) == ["pose3d", "image"]
    raw = model.embed(batch, ("pose3d",), normalize=False)["pose3d"]
    torch.testing.assert_close(raw, model.encode_pose3d(p3, mask=mask, normalize=False))
    # forward and the estimators go through it
    fwd = model(pose2d=p2, bbox=bbox, mask=mask)
    torch.testing.assert_close(fwd["pose2d"], out["pose2d"])
    with pytest.raises(ValueError, match=r"batch lacks \['image'\]"):
        model.embed({"pose3d": p3}, ["image"])
    with pytest.raises(ValueError, match="modalities"):
        model.embed(batch, ["depth"])
    with pytest.raises(ValueError, match="modalities"):
        model.embed(batch, ["pose3d", "pose3d"])
    with pytest.raises(TypeError, match="modalities"):
        model.embed(batch, "pose3d")
    with pytest.raises(TypeError, match="batch"):
        model.embed([p3], ["pose3d"])


def test_decode_regression_and_diffusion():
    torch.manual_seed(0)
    reg = create_model("unihpr-tiny", decoder="mlp", decoder_width=32).eval()
    emb = reg.encode_pose3d(_inputs()[2])
    pose, hyps = reg.decode(emb, "pose3d", return_hypotheses=True)
    # the same call in one process: bit-identical
    assert torch.equal(pose, reg.decoder3d(emb, "pose3d")) and hyps.shape == (2, 1, J, 3)
    assert reg.decode(emb, "pose3d", dims=2).shape == (2, J, 2)
    with pytest.raises(ValueError, match="only diffusion decoders"):
        reg.decode(emb, "pose3d", num_hypotheses=3)
    with pytest.raises(ValueError, match="aggregation"):
        reg.decode(emb, "pose3d", aggregation="oracle")
    with pytest.raises(ValueError, match="dims"):
        reg.decode(emb, "pose3d", dims=4)
    diff = create_model(
        "unihpr-tiny", decoder="diffusion", decoder_width=32, num_hypotheses=3,
        diffusion_sampling_steps=2, hypothesis_aggregation="median",
    ).eval()  # fmt: skip
    p3 = _inputs()[2]
    emb = diff.encode_pose3d(p3)
    with torch.no_grad():
        pose, hyps = diff.decode(emb, "pose3d", return_hypotheses=True)
        assert hyps.shape == (2, 3, J, 3)  # config defaults: 3 hypotheses, median
        from unihpr.models.sampling import geometric_median

        torch.testing.assert_close(pose, geometric_median(hyps, dim=1))
        mean = diff.decode(emb, "pose3d", aggregation="mean", num_hypotheses=2)
        assert mean.shape == (2, J, 3)
        torch.testing.assert_close(diff.estimate_3d(pose3d=p3), pose)
