"""Tests of the evaluation helpers (stand-in model, real metrics)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "train"))
from _standins import FakeUniHPR, PoseImageSet

from unihpr.evaluation import Collected, collect, compute_metrics, evaluate, mean_cosine


def test_collect_shapes_and_restores_mode():
    model = FakeUniHPR().train()
    data = collect(model, PoseImageSet(20), batch_size=8)
    assert model.training
    assert set(data.embeddings) == {"image", "pose2d", "pose3d"}
    assert data.embeddings["image"].shape == (20, 8)
    assert set(data.pred3d) == {"image", "pose2d"} and data.pred3d["pose2d"].shape == (20, 5, 3)
    assert data.target3d.shape == (20, 5, 3) and data.actions == ["Walk"] * 20
    assert len(collect(model, PoseImageSet(20), max_samples=7).target3d) == 7


def test_oracle_scores_zero_error_and_full_accuracy():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(12, 5, 3, generator=g, dtype=torch.float64) * 0.2
    emb = torch.nn.functional.normalize(
        torch.randn(12, 6, generator=g, dtype=torch.float64), dim=-1
    )
    data = Collected(
        embeddings={"image": emb, "pose2d": emb, "pose3d": emb},
        pred3d={"image": target.clone(), "pose2d": target + 0.01},
        target3d=target,
        actions=["a"] * 6 + ["b"] * 6,
    )
    out = compute_metrics(data)
    assert out["image/mpjpe"] == pytest.approx(0.0, abs=1e-9)
    assert out["image/pa_mpjpe"] == pytest.approx(0.0, abs=1e-6)
    # a constant 1 cm offset of every joint: 10 * sqrt(3) mm MPJPE, removed by Procrustes
    assert out["lifting/mpjpe"] == pytest.approx(10 * 3**0.5, rel=1e-9)
    assert out["lifting/pa_mpjpe"] == pytest.approx(0.0, abs=1e-6)
    assert out["retrieval/2d-3d/mpjpe"] == pytest.approx(0.0, abs=1e-9)
    assert out["retrieval/3d-image/top1"] == 100.0 and out["cos/mean"] == pytest.approx(1.0)


def test_mean_cosine_float64_reference():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(9, 4, generator=g), torch.randn(9, 4, generator=g)
    out = mean_cosine({"pose2d": a, "pose3d": b})
    ref = (
        sum(
            float(a[i].double() @ b[i].double() / (a[i].double().norm() * b[i].double().norm()))
            for i in range(9)
        )
        / 9
    )
    assert out["cos/pose2d-pose3d"] == pytest.approx(ref, abs=1e-12)
    assert out["cos/mean"] == out["cos/pose2d-pose3d"]
    with pytest.raises(ValueError, match="at least two"):
        mean_cosine({"pose2d": a})
    with pytest.raises(ValueError, match="differ in shape"):
        mean_cosine({"pose2d": a, "pose3d": b[:3]})


def test_evaluate_keys_and_errors():
    model = FakeUniHPR()
    out = evaluate(model, PoseImageSet(16), batch_size=8, gallery=PoseImageSet(10, seed=3))
    for k in ("lifting/mpjpe", "image/pa_mpjpe", "retrieval/2d-3d/mpjpe",
              "retrieval/3d-image/top1", "cos/image-pose3d"):  # fmt: skip
        assert k in out and out[k] == out[k]  # present and not NaN
    lifting_only = evaluate(model, PoseImageSet(16, images=False))
    assert "image/mpjpe" not in lifting_only and "lifting/mpjpe" in lifting_only
    with pytest.raises(ValueError, match="not in the samples"):
        collect(model, PoseImageSet(8, images=False), modalities=("image",))
    with pytest.raises(ValueError, match="empty"):
        collect(model, PoseImageSet(0))
    with pytest.raises(ValueError, match="image_retrieval_stride"):
        compute_metrics(collect(model, PoseImageSet(8)), image_retrieval_stride=0)
    with pytest.raises(ValueError, match="target3d"):
        compute_metrics(Collected())
