"""MLP and Transformer decoders: interface, representation token, loss, gradients."""

import pytest
import torch

from unihpr.models.decoders import MLPDecoder, TransformerDecoder, masked_pose_mse

J, D = 5, 16


def _make(kind, dims=3, **kw):
    if kind == "mlp":
        return MLPDecoder(J, dims, D, width=32, depth=2, **kw)
    return TransformerDecoder(J, dims, D, width=32, depth=2, num_heads=4, **kw)


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
@pytest.mark.parametrize("dims", [2, 3])
def test_output_shape_and_source_token(kind, dims):
    dec = _make(kind, dims).eval()
    emb = torch.randn(3, D)
    outs = {s: dec(emb, s) for s in ("image", "pose2d", "pose3d")}
    assert all(o.shape == (3, J, dims) for o in outs.values())
    assert not torch.allclose(outs["image"], outs["pose2d"])
    off = _make(kind, dims, use_representation_token=False).eval()
    assert off.representation_tokens is None
    torch.testing.assert_close(off(emb, "image"), off(emb, "pose3d"))


def test_masked_pose_mse_float64_reference_and_nan_targets():
    pred = torch.randn(2, 4, 3, dtype=torch.float64)
    target = torch.randn(2, 4, 3, dtype=torch.float64)
    mask = torch.tensor([[True, False, True, True], [False, False, True, False]])
    ref = (
        sum(
            ((pred[b, j] - target[b, j]) ** 2).sum()
            for b in range(2)
            for j in range(4)
            if mask[b, j]
        )
        / mask.sum()
    )
    torch.testing.assert_close(masked_pose_mse(pred, target, mask), ref)
    target[~mask] = float("nan")
    torch.testing.assert_close(masked_pose_mse(pred, target, mask), ref)
    full = ((pred - target.nan_to_num()) ** 2).sum(-1).mean()
    torch.testing.assert_close(masked_pose_mse(pred, target.nan_to_num()), full)
    p = pred.clone().requires_grad_()
    loss = masked_pose_mse(p, target, torch.zeros(2, 4, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0 and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_loss_gradients_reach_every_parameter_and_training_reduces_it(kind):
    torch.manual_seed(0)
    dec = _make(kind)
    emb = torch.randn(8, D, requires_grad=True)
    target = torch.randn(8, J, 3) * 0.3
    loss = dec.loss(emb, "pose2d", target)
    loss.backward()
    for name, p in dec.named_parameters():
        if name == "representation_tokens.weight":  # only the used row gets a gradient
            assert p.grad[1].abs().sum() > 0 and p.grad[0].abs().sum() == 0
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert emb.grad.abs().sum() > 0
    opt = torch.optim.Adam(dec.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = dec.loss(emb.detach(), "pose2d", target)
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_validation(kind):
    dec = _make(kind)
    with pytest.raises(ValueError, match="source"):
        dec(torch.randn(2, D), "depth")
    with pytest.raises(ValueError, match=r"embedding.*\(2, 17\)"):
        dec(torch.randn(2, D + 1), "image")
    with pytest.raises(TypeError, match="floating"):
        dec(torch.ones(2, D, dtype=torch.long), "image")
    with pytest.raises(ValueError, match="target"):
        dec.loss(torch.randn(2, D), "image", torch.randn(2, J, 2))
    with pytest.raises(ValueError, match="batch"):
        dec.loss(torch.randn(2, D), "image", torch.randn(3, J, 3))
    with pytest.raises(ValueError, match="mask"):
        dec.loss(torch.randn(2, D), "image", torch.randn(2, J, 3), torch.ones(2, J + 1).bool())
