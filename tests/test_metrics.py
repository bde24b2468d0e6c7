import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from unihpr.data.cameras import quaternion_to_matrix
from unihpr.metrics import (
    aggregate_by_action,
    auc,
    image_retrieval_topk,
    mpjpe,
    n_mpjpe,
    pa_mpjpe,
    pck,
    per_action_error,
    pose_retrieval_error,
    procrustes_align,
    retrieve_nearest,
)


def test_mpjpe_hand_computed():
    pred = torch.zeros(1, 2, 3, dtype=torch.float64)
    target = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    assert float(mpjpe(pred, target)) == pytest.approx(3.0)  # (5 + 1) / 2
    assert float(mpjpe(pred, target, joints=[0])) == pytest.approx(5.0)
    for index in (torch.tensor([0]), np.array([0], dtype=np.int32)):  # index tensors work too
        assert float(mpjpe(pred, target, joints=index)) == pytest.approx(5.0)
    assert float(mpjpe(pred, target, exclude_root=True)) == pytest.approx(1.0)
    assert mpjpe(pred.numpy(), target.numpy()) == pytest.approx(3.0)
    per = mpjpe(pred, target, reduction="none")
    assert per.shape == (1,)


def test_mpjpe_gradient_flows():
    pred = torch.randn(4, 17, 3, requires_grad=True)
    mpjpe(pred, torch.zeros(4, 17, 3)).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    pred2 = torch.randn(4, 17, 3, dtype=torch.float64, requires_grad=True)
    pa_mpjpe(pred2, torch.randn(4, 17, 3, dtype=torch.float64)).backward()
    assert torch.isfinite(pred2.grad).all() and pred2.grad.abs().sum() > 0


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="same shape"):
        mpjpe(torch.zeros(2, 17, 3), torch.zeros(2, 16, 3))
    with pytest.raises(ValueError, match="J, 3"):
        pa_mpjpe(torch.zeros(2, 17, 2), torch.zeros(2, 17, 2))
    with pytest.raises(ValueError, match="joints"):
        mpjpe(torch.zeros(2, 17, 3), torch.zeros(2, 17, 3), joints=[17])
    with pytest.raises(ValueError, match="either"):
        mpjpe(torch.zeros(2, 17, 3), torch.zeros(2, 17, 3), joints=[1], exclude_root=True)
    with pytest.raises(TypeError, match="pred"):
        mpjpe([[0, 0, 0]], torch.zeros(1, 3))


def _random_rotation(rng):
    return quaternion_to_matrix(rng.normal(size=4))


def test_pa_mpjpe_recovers_similarity_exactly_float64():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(5, 17, 3))
    rot = np.stack([_random_rotation(rng) for _ in range(5)])
    pred = 2.5 * np.einsum("bjc,bdc->bjd", target, rot) + rng.normal(size=(5, 1, 3))
    assert pa_mpjpe(pred, target) < 1e-9
    assert mpjpe(pred, target) > 0.5


def test_pa_mpjpe_reflection_is_not_undone():
    rng = np.random.default_rng(1)
    target = rng.normal(size=(1, 17, 3))
    mirrored = target * np.array([-1.0, 1.0, 1.0])
    # A mirror image is not a similarity transform: error must stay clearly > 0.
    assert pa_mpjpe(mirrored, target) > 0.1
    # without the reflection fix the SVD solution would be the mirror: check det(R) > 0
    aligned = procrustes_align(torch.from_numpy(mirrored), torch.from_numpy(target)).numpy()
    x0 = mirrored[0] - mirrored[0].mean(0)
    y0 = aligned[0] - aligned[0].mean(0)
    r, *_ = np.linalg.lstsq(x0, y0, rcond=None)
    assert np.linalg.det(r) > 0


def test_pa_mpjpe_hand_computed_planar():
    # target: unit square; pred: square rotated 90 deg, scaled by 2 and moved
    target = np.array([[[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]], dtype=np.float64)
    rot = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float64)
    pred = 2 * target @ rot.T + 7
    assert pa_mpjpe(pred, target) == pytest.approx(0.0, abs=1e-12)


@given(
    arrays(np.float64, (3, 8, 3), elements=st.floats(-1, 1)),
    arrays(np.float64, (3, 8, 3), elements=st.floats(-1, 1)),
    st.integers(0, 2**31 - 1),
    st.floats(0.2, 5.0),
)
def test_pa_mpjpe_properties(pred, target, seed, scale):
    rng = np.random.default_rng(seed)
    pred = pred + rng.normal(size=pred.shape) * 1e-3  # avoid exactly degenerate poses
    base = pa_mpjpe(pred, target)
    # Procrustes minimises the squared error, so the inequality is exact for RMS
    # (for the mean of norms it usually, but not always, holds).
    aligned = procrustes_align(torch.from_numpy(pred), torch.from_numpy(target)).numpy()
    assert ((aligned - target) ** 2).sum() <= ((pred - target) ** 2).sum() + 1e-9
    rot = _random_rotation(rng)
    moved = scale * pred @ rot.T + rng.normal(size=3)
    assert pa_mpjpe(moved, target) == pytest.approx(base, rel=1e-6, abs=1e-9)


def test_pa_mpjpe_below_mpjpe_for_noisy_predictions():
    rng = np.random.default_rng(3)
    target = rng.normal(size=(200, 17, 3))
    pred = target + 0.3 * rng.normal(size=target.shape) + rng.normal(size=(200, 1, 3))
    per_pa = pa_mpjpe(pred, target, reduction="none")
    per = mpjpe(pred, target, reduction="none")
    assert np.all(per_pa <= per)


def test_n_mpjpe_hand_computed():
    target = np.array([[[1.0, 0, 0], [0, 1.0, 0]]])
    assert n_mpjpe(3 * target, target) == pytest.approx(0.0)
    # best scale for pred = [[1,0,0],[0,0,0]] is 1: errors 0 and 1
    pred = np.array([[[1.0, 0, 0], [0, 0, 0]]])
    assert n_mpjpe(pred, target) == pytest.approx(0.5)


def test_pck_and_auc_hand_computed():
    target = np.zeros((1, 4, 3))
    pred = np.zeros((1, 4, 3))
    pred[0, :, 0] = [0.0, 50.0, 150.0, 200.0]
    assert pck(pred, target) == pytest.approx(75.0)
    assert pck(pred, target, threshold=49.0) == pytest.approx(25.0)
    # thresholds 0, 5, ..., 150: joint0 always, joint1 for t >= 50 (21 of 31),
    # joint2 only at 150 (1 of 31), joint3 never
    expected = (31 + 21 + 1 + 0) / (4 * 31) * 100
    assert auc(pred, target) == pytest.approx(expected)


def test_per_action_aggregation_is_mean_of_means():
    errors = np.array([1.0, 3.0, 10.0])
    out = aggregate_by_action(errors, ["A", "A", "B"])
    assert out == {"A": 2.0, "B": 10.0, "average": 6.0}
    pred = torch.zeros(3, 2, 3, dtype=torch.float64)
    target = torch.zeros(3, 2, 3, dtype=torch.float64)
    target[:, :, 0] = torch.tensor([1.0, 3.0, 10.0])[:, None]
    assert per_action_error(pred, target, ["A", "A", "B"])["average"] == pytest.approx(6.0)
    with pytest.raises(ValueError, match="actions"):
        aggregate_by_action(errors, ["A"])


def test_pose_retrieval_error_retrieves_by_embedding():
    gallery_poses = torch.zeros(3, 2, 3, dtype=torch.float64)
    gallery_poses[:, :, 0] = torch.tensor([0.0, 1.0, 2.0])[:, None]
    gallery_emb = torch.eye(3)
    # query 0 matches gallery 2, query 1 matches gallery 1
    query_emb = torch.tensor([[0.0, 0.1, 1.0], [0.0, 1.0, 0.0]])
    query_poses = gallery_poses[[0, 1]]
    err = pose_retrieval_error(query_emb, gallery_emb, gallery_poses, query_poses)
    assert err == pytest.approx((2.0 + 0.0) / 2)
    perfect = pose_retrieval_error(gallery_emb, gallery_emb, gallery_poses, gallery_poses)
    assert perfect == 0.0
    with pytest.raises(ValueError, match="gallery_poses"):
        pose_retrieval_error(query_emb, gallery_emb, gallery_poses[:2], query_poses)


def test_image_retrieval_topk():
    gallery = torch.eye(4)
    queries = torch.tensor(
        [[1.0, 0, 0, 0], [0.9, 0.8, 0, 0], [0, 0, 0.1, 1.0], [0, 0, 0, 1.0]]
    )  # q1 ranks g0 first, g1 second; q2 ranks g3 first, g2 second
    out = image_retrieval_topk(queries, gallery, ks=(1, 2))
    assert out["top1"] == pytest.approx(50.0)
    assert out["top2"] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="targets"):
        image_retrieval_topk(queries, gallery, targets=[0, 1, 2, 9])


_POSE_METRICS = [mpjpe, pa_mpjpe, n_mpjpe]


@pytest.mark.parametrize("metric", [*_POSE_METRICS, pck, auc])
def test_empty_batches_raise(metric):
    for shape in ((0, 17, 3), (2, 0, 17, 3)):
        with pytest.raises(ValueError, match="no poses"):
            metric(torch.zeros(shape), torch.zeros(shape))


@pytest.mark.parametrize("metric", [*_POSE_METRICS, pck, auc])
@pytest.mark.parametrize("where", ["pred", "target"])
def test_nan_is_treated_the_same_by_every_metric(metric, where):
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=(2, 4, 5, 3)) * 100.0
    (pred if where == "pred" else target)[2, 3, 1] = np.nan
    assert np.isnan(metric(pred, target))  # not a miss, not 0.0: NaN in, NaN out
    if metric in _POSE_METRICS:
        per_pose = metric(pred, target, reduction="none")
        assert np.isnan(per_pose[2]) and np.isfinite(np.delete(per_pose, 2)).all()
        # the finite poses keep their values
        np.testing.assert_allclose(
            np.delete(per_pose, 2),
            metric(np.delete(pred, 2, 0), np.delete(target, 2, 0), reduction="none"),
        )
    # a NaN outside the selected joints does not matter for the joint-local metrics
    # (n_mpjpe's scale and pa_mpjpe's alignment use every joint)
    if metric in (mpjpe, pck, auc):
        assert np.isfinite(metric(pred, target, joints=[0, 1, 2, 4]))


def test_pa_mpjpe_with_inf_input_is_nan_for_that_pose_only():
    rng = np.random.default_rng(1)
    pred, target = rng.normal(size=(2, 3, 6, 3))
    pred[1, 0, 0] = np.inf
    per = pa_mpjpe(pred, target, reduction="none")
    assert np.isnan(per[1]) and np.isfinite(per[[0, 2]]).all()
    assert mpjpe(pred, target, reduction="none")[1] == np.inf  # an infinite error is inf
    assert pck(pred, target, 10.0) == pytest.approx(100.0 * 17 / 18)  # ... and a miss


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda p: pck(p, p, threshold=float("nan")), ValueError, "threshold"),
        (lambda p: pck(p, p, threshold=-1.0), ValueError, "threshold"),
        (lambda p: pck(p, p, threshold=float("inf")), ValueError, "threshold"),
        (lambda p: pck(p, p, threshold="150"), TypeError, "threshold"),
        (lambda p: auc(p, p, max_threshold=float("nan")), ValueError, "max_threshold"),
        (lambda p: auc(p, p, max_threshold=0.0), ValueError, "max_threshold"),
        (lambda p: auc(p, p, steps=2.5), TypeError, "steps"),
        (lambda p: auc(p, p, steps=1), ValueError, "steps"),
        (lambda p: mpjpe(p, p, reduction="sum"), ValueError, "reduction"),
        (lambda p: mpjpe(p, p, joints=[0.5]), TypeError, "integer indices.*float64"),
        (lambda p: mpjpe(p, p, joints=["0"]), TypeError, "integer indices"),
        (lambda p: mpjpe(p, p, joints=[]), ValueError, "non-empty"),
        (lambda p: mpjpe(p, p, joints=[-1]), ValueError, r"in \[0, 5\)"),
        (lambda p: mpjpe(p, p, joints=3), TypeError, "joints"),
        (lambda p: mpjpe(p, p, joints=torch.tensor(1)), TypeError, r"1-D.*shape \(\)"),
        (lambda p: mpjpe(p, p, joints=torch.tensor([0.0, 1.0])), TypeError, "float32"),
        (lambda p: mpjpe(p, p, joints=np.array([True, False])), TypeError, "bool"),
        (lambda p: mpjpe(p, p, exclude_root=True, root=5), ValueError, "root"),
    ],
)
def test_metric_arguments_are_validated(call, error, match):
    with pytest.raises(error, match=match):
        call(np.zeros((2, 5, 3)))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.0])
@pytest.mark.parametrize("which", ["queries", "gallery"])
def test_retrieval_rejects_nan_inf_and_zero_embeddings(bad, which):
    q, g = torch.randn(3, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    target = q if which == "queries" else g
    if bad == 0.0:
        target[1] = 0.0
    else:
        target[1, 2] = bad
    with pytest.raises(ValueError, match=rf"{which} row 1 is (zero|NaN or infinite)"):
        retrieve_nearest(q, g)
    name = "query_embeddings" if which == "queries" else "gallery_embeddings"
    with pytest.raises(ValueError, match=rf"{name} row 1"):
        image_retrieval_topk(q, g)
    with pytest.raises(ValueError, match=rf"{name} row 1"):
        pose_retrieval_error(q, g, torch.zeros(5, 2, 3), torch.zeros(3, 2, 3))


def test_retrieval_is_scale_invariant_down_to_tiny_and_huge_norms():
    rng = np.random.default_rng(2)
    q, g = rng.normal(size=(6, 8)), rng.normal(size=(9, 8))
    ref = retrieve_nearest(q, g, k=3)
    for scale in (1e-300, 1e-13, 1e13, 1e300):
        assert torch.equal(retrieve_nearest(q * scale, g, k=3), ref)
        assert torch.equal(retrieve_nearest(q, g * scale, k=3), ref)
    with pytest.raises(TypeError, match="k"):
        retrieve_nearest(q, g, k=1.0)
    with pytest.raises(ValueError, match="chunk_size"):
        retrieve_nearest(q, g, chunk_size=0)
    with pytest.raises(TypeError, match=r"ks\[1\]"):
        image_retrieval_topk(q, g, ks=(1, "3"))
    with pytest.raises(TypeError, match="targets"):
        image_retrieval_topk(q, g, targets=[0.5] * 6)
