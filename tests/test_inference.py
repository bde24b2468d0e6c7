"""unihpr.lift: 2D keypoints of users' layouts -> HUMANOID15 3D poses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mocap_files import held_out_walk

import unihpr
from unihpr.data.mapping import joint_mapping
from unihpr.data.skeletons import HUMANOID15, get_skeleton
from unihpr.inference import (
    DEFAULT_LIFT_MODEL,
    LIFT_LAYOUTS,
    clear_model_cache,
    lift,
    to_humanoid15,
)
from unihpr.metrics import mpjpe
from unihpr.models import PretrainedNotFoundError, create_model

# Per-layout MPJPE bounds (mm) of the single-frame accuracy test below (a random
# camera per frame: not a video, so the single-frame model). The model card of the
# shipped unihpr-tiny-mocap (unihpr/models/weights/unihpr-tiny-mocap/README.md)
# documents 109.7 mm (h36m17, humanoid15) and 110.9 mm (coco17, mediapipe33) at
# every image size; the bounds leave ~4% for other BLAS / CPU arithmetic.
LIFT_MPJPE_BOUNDS_MM: dict[str, float] = {
    "coco17": 115.0,
    "h36m17": 114.0,
    "humanoid15": 114.0,
    "mediapipe33": 115.0,
}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("unihpr-tiny").eval()


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    return model.save_pretrained(tmp_path_factory.mktemp("lift-model") / "tiny")


def _humanoid_pose2d(n: int, seed: int = 0) -> np.ndarray:
    """Random but body-like HUMANOID15 2D poses (N, 15, 2) in pixels of a 640 x 480 image."""
    rng = np.random.default_rng(seed)
    rest = np.array([[0, 0], [0, -24], [0, -45], [9, 0], [10, 40], [11, 80], [18, -45],
                     [24, -20], [28, 5], [-9, 0], [-10, 40], [-11, 80], [-18, -45],
                     [-24, -20], [-28, 5]], dtype=np.float64)  # fmt: skip
    return rest * 2.5 + rng.normal(scale=6.0, size=(n, 15, 2)) + [320.0, 240.0]


def _from_humanoid(pose: np.ndarray, layout: str) -> np.ndarray:
    """A layout's keypoints (..., J, 2) whose directly mapped joints are ``pose``'s.

    Joints of the layout that no humanoid joint copies (faces, hands, feet, or
    joints behind a mean) get the humanoid neck's position: finite, and unused.
    """
    sk = get_skeleton(layout)
    m = joint_mapping(layout, "humanoid15")
    out = np.repeat(pose[..., HUMANOID15.index("neck") : HUMANOID15.index("neck") + 1, :],
                    sk.num_joints, axis=-2)  # fmt: skip
    for d in range(HUMANOID15.num_joints):
        if isinstance(m, tuple):
            out[..., m[d], :] = pose[..., d, :]
        elif np.count_nonzero(m[d]) == 1:
            out[..., int(np.flatnonzero(m[d])[0]), :] = pose[..., d, :]
    return out


def _direct(layout: str) -> list[int]:
    """Humanoid joints that copy one keypoint of ``layout``."""
    m = joint_mapping(layout, "humanoid15")
    if isinstance(m, tuple):
        return list(range(15))
    return [d for d in range(15) if np.count_nonzero(m[d]) == 1]


# --------------------------------------------------------------------------- conversion


@pytest.mark.parametrize("layout", LIFT_LAYOUTS)
def test_conversion_round_trip(layout):
    pose = _humanoid_pose2d(4)
    kp = _from_humanoid(pose, layout)
    back, visible = to_humanoid15(kp, layout)
    assert back.shape == (4, 15, 2) and visible.all()
    direct = _direct(layout)
    np.testing.assert_array_equal(back[:, direct], pose[:, direct])
    sk = get_skeleton(layout)
    if layout in ("coco17", "mediapipe33"):
        assert direct == list(range(3, 15))
        hips = kp[:, [sk.index("left_hip"), sk.index("right_hip")]].mean(1)
        shoulders = kp[:, [sk.index("left_shoulder"), sk.index("right_shoulder")]].mean(1)
        np.testing.assert_allclose(back[:, 0], hips, rtol=0, atol=1e-12)
        np.testing.assert_allclose(back[:, 1], (hips + shoulders) / 2, rtol=0, atol=1e-12)
        np.testing.assert_allclose(back[:, 2], shoulders, rtol=0, atol=1e-12)
    else:
        assert direct == list(range(15))
    # one frame and tensors
    one, vis1 = to_humanoid15(torch.from_numpy(kp[0]), layout)
    assert isinstance(one, torch.Tensor) and one.shape == (15, 2) and vis1.shape == (15,)
    torch.testing.assert_close(one, torch.from_numpy(back[0]))


def test_conversion_hides_joints_made_of_hidden_keypoints():
    kp = _from_humanoid(_humanoid_pose2d(2), "mediapipe33")
    conf = np.ones((2, 33))
    conf[0, 24] = 0.1  # right hip
    conf[1, 0] = 0.0  # nose: no humanoid joint uses it
    pose, visible = to_humanoid15(kp, "mediapipe33", conf, confidence_threshold=0.5)
    assert [HUMANOID15.joint_names[j] for j in np.flatnonzero(~visible[0])] == [
        "root", "chest", "right_hip",
    ]  # fmt: skip
    assert np.isnan(pose[0, ~visible[0]]).all() and np.isfinite(pose[0, visible[0]]).all()
    assert visible[1].all()


# --------------------------------------------------------------------------- lift


@pytest.mark.parametrize("layout", LIFT_LAYOUTS)
def test_shapes_and_types(model, layout):
    kp = _from_humanoid(_humanoid_pose2d(3), layout)
    seq = lift(kp, layout, model=model)
    assert isinstance(seq, np.ndarray) and seq.shape == (3, 15, 3) and seq.dtype == np.float64
    np.testing.assert_array_equal(seq[:, HUMANOID15.root], 0.0)  # root-relative
    assert np.isfinite(seq).all()
    one = lift(kp[1].astype(np.float32), layout, model=model)
    assert one.shape == (15, 3) and one.dtype == np.float32
    np.testing.assert_allclose(one, seq[1], atol=1e-5)
    t = lift(torch.from_numpy(kp).float(), layout, model=model)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.shape == (3, 15, 3)
    # numpy and tensor inputs run the same computation
    np.testing.assert_array_equal(t.numpy(), lift(kp.astype(np.float32), layout, model=model))
    ints = lift(kp.round().astype(np.int64), layout, model=model)
    assert ints.dtype == np.float32
    empty = lift(np.zeros((0, *kp.shape[1:])), layout, model=model)
    assert empty.shape == (0, 15, 3)


def test_unihpr_lift_is_exported():
    assert unihpr.lift is lift
    assert "lift" in dir(unihpr)


def test_frame_and_image_size_do_not_matter(model):
    """The box comes from the keypoints: moving or scaling the 2D input changes nothing."""
    kp = _from_humanoid(_humanoid_pose2d(6, seed=1), "coco17")
    ref = lift(kp, "coco17", model=model)
    for scale, shift in ((1.0, (500.0, -80.0)), (0.1, (3.0, 4.0)), (7.3, (1e4, 2e4)),
                         (1920 / 640, (0.0, 0.0))):  # fmt: skip
        moved = lift(kp * scale + shift, "coco17", model=model)
        np.testing.assert_allclose(moved, ref, rtol=0, atol=1e-5)
    # the test can fail: changing the pose's shape (not its frame) changes the output
    squashed = lift(kp * [1.0, 0.6], "coco17", model=model)
    assert np.abs(squashed - ref).max() > 1e-3


def test_masked_keypoints_are_ignored(model):
    kp = _from_humanoid(_humanoid_pose2d(4, seed=2), "coco17")
    conf = np.full((4, 17), 0.9)
    conf[:, 7] = 0.1  # left elbow
    conf[2, 12] = 0.0  # right hip: hides the root and the chest too
    base = lift(kp, "coco17", conf, model=model)
    garbage = kp.copy()
    garbage[:, 7] = np.nan
    garbage[2, 12] = (1e6, -1e6)  # far away: would change the box if it were used
    np.testing.assert_array_equal(lift(garbage, "coco17", conf, model=model), base)
    # the mask is applied: the same keypoints unmasked give another result
    assert np.abs(lift(kp, "coco17", model=model) - base).max() > 1e-4
    # keypoints no humanoid joint uses can be hidden without any effect
    face = np.ones(17)
    face[:5] = 0.0
    np.testing.assert_allclose(
        lift(kp[0], "coco17", face, model=model), lift(kp[0], "coco17", model=model), atol=1e-5
    )
    # confidence as a tensor, threshold
    t = lift(torch.from_numpy(kp), "coco17", torch.from_numpy(conf), model=model)
    np.testing.assert_array_equal(t.numpy(), base)
    loose = lift(kp, "coco17", conf, model=model, confidence_threshold=0.05)
    np.testing.assert_allclose(loose[0], lift(kp[0], "coco17", model=model), atol=1e-5)


def test_batches_and_training_mode(model):
    kp = _from_humanoid(_humanoid_pose2d(7, seed=3), "h36m17")
    full = lift(kp, "h36m17", model=model)
    np.testing.assert_allclose(lift(kp, "h36m17", model=model, batch_size=2), full, atol=1e-5)
    model.train()
    try:
        np.testing.assert_allclose(lift(kp, "h36m17", model=model, device="cpu"), full, atol=1e-6)
        assert model.training  # restored
    finally:
        model.eval()


def test_model_by_folder_is_loaded_once(model, saved):
    clear_model_cache()
    kp = _from_humanoid(_humanoid_pose2d(2), "humanoid15")
    from unihpr import inference

    a = lift(kp, "humanoid15", model=str(saved))
    b = lift(kp, "humanoid15", model=saved)  # a Path: same cache entry
    assert inference._load.cache_info().misses == 1 and inference._load.cache_info().hits == 1
    np.testing.assert_array_equal(a, b)  # one cached model, one process
    np.testing.assert_allclose(a, lift(kp, "humanoid15", model=model), atol=1e-6)
    clear_model_cache()
    assert inference._load.cache_info().currsize == 0


# --------------------------------------------------------------------------- errors


def test_invalid_layout_lists_the_valid_ones(model):
    with pytest.raises(ValueError, match=r"layout must be one of \('coco17', 'h36m17'"):
        lift(np.zeros((17, 2)), "openpose18", model=model)
    with pytest.raises(ValueError, match="mediapipe33"):
        to_humanoid15(np.zeros((17, 2)), "COCO")
    with pytest.raises(TypeError, match="layout must be one of"):
        lift(np.zeros((17, 2)), 17, model=model)


def test_wrong_shapes_name_the_layouts_joint_count(model):
    with pytest.raises(ValueError, match=r"\(33, 2\) for one frame or \(T, 33, 2\).*got \(17, 2\)"
                       r".*layout of \['coco17', 'h36m17'"):  # fmt: skip
        lift(np.zeros((17, 2)), "mediapipe33", model=model)
    with pytest.raises(ValueError, match=r"keypoints\[\.\.\., :2\].*confidence="):
        lift(np.zeros((5, 33, 4)), "mediapipe33", model=model)
    with pytest.raises(ValueError, match=r"\(T, 17, 2\)"):
        lift(np.zeros((2, 3, 17, 2)), "coco17", model=model)
    with pytest.raises(TypeError, match="numpy array or a torch tensor, got list"):
        lift([[0.0, 0.0]] * 17, "coco17", model=model)
    with pytest.raises(TypeError, match="real numbers"):
        lift(np.zeros((17, 2), dtype=complex), "coco17", model=model)
    with pytest.raises(TypeError, match="keypoints must hold real numbers, got numpy dtype bool"):
        lift(np.zeros((17, 2), dtype=bool), "coco17", model=model)
    with pytest.raises(TypeError, match=r"keypoints must hold real numbers, got dtype torch\.bool"):
        lift(torch.zeros(17, 2, dtype=torch.bool), "coco17", model=model)
    with pytest.raises(TypeError, match="real numbers"):
        lift(np.array([["a", "b"]] * 17), "coco17", model=model)


def test_confidence_errors(model):
    kp = _from_humanoid(_humanoid_pose2d(3), "coco17")
    with pytest.raises(ValueError, match=r"confidence must have shape \(T, J\) = \(3, 17\).*got "
                       r"\(17,\)"):  # fmt: skip
        lift(kp, "coco17", np.ones(17), model=model)
    with pytest.raises(ValueError, match=r"\(J,\) = \(17,\)"):
        lift(kp[0], "coco17", np.ones((1, 17)), model=model)
    with pytest.raises(ValueError, match="confidence_threshold must be a finite number"):
        lift(kp, "coco17", model=model, confidence_threshold=math.nan)
    with pytest.raises(TypeError, match="confidence_threshold must be a real number"):
        lift(kp, "coco17", model=model, confidence_threshold="0.5")
    with pytest.raises(TypeError, match="confidence must hold real numbers"):
        lift(kp, "coco17", np.full((3, 17), "x"), model=model)
    for name, value, err in (("min_visible", 1, ValueError), ("min_visible", 16, ValueError),
                             ("min_visible", 4.0, TypeError), ("batch_size", 0, ValueError),
                             ("fill", "zero", ValueError), ("return_valid", 1, TypeError)):  # fmt: skip
        with pytest.raises(err, match=name):
            lift(kp, "coco17", model=model, **{name: value})


# --------------------------------------------------------------------------- bad frames and joints


def _fill_reference(pose: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Float64 loop reference of lift's gap filling: linear between neighbours, ends held."""
    out = pose.astype(np.float64).copy()
    good = np.flatnonzero(valid)
    for t in np.flatnonzero(~valid):
        before, after = good[good < t], good[good > t]
        if not len(good):
            continue
        if not len(before) or not len(after):
            out[t] = pose[after[0] if len(after) else before[-1]]
        else:
            a, b = before[-1], after[0]
            out[t] = (b - t) / (b - a) * pose[a].astype(np.float64) + (t - a) / (b - a) * pose[b]
    return out


def _visible_count(kp: np.ndarray, conf: np.ndarray | None) -> np.ndarray:
    return to_humanoid15(kp, "coco17", conf)[1].sum(-1)


def test_nan_and_inf_keypoints_are_masked_not_errors(model):
    kp = _from_humanoid(_humanoid_pose2d(3), "coco17")
    bad, masked = kp.copy(), np.ones((3, 17))
    bad[0, 7, 0], bad[1, 9], bad[2, 10] = -np.inf, np.nan, (np.inf, 0.0)
    masked[0, 7] = masked[1, 9] = masked[2, 10] = 0.0
    pose, valid = lift(bad, "coco17", model=model, return_valid=True)
    assert valid.all() and np.isfinite(pose).all()
    np.testing.assert_array_equal(pose, lift(kp, "coco17", masked, model=model))
    # the same result as without the mask would be wrong: the mask is used
    assert np.abs(pose - lift(kp, "coco17", model=model)).max() > 1e-4
    # a NaN score masks its keypoint as a score of 0 does
    nan_score = np.where(masked == 0.0, np.nan, 1.0)
    np.testing.assert_array_equal(lift(kp, "coco17", nan_score, model=model), pose)
    # a bool mask is a confidence
    np.testing.assert_array_equal(lift(kp, "coco17", masked > 0, model=model), pose)
    back, visible = to_humanoid15(bad, "coco17")
    wrist = HUMANOID15.index("left_wrist")
    assert not visible[1, wrist] and np.isnan(back[1, wrist]).all()


def test_frames_that_cannot_be_lifted_are_filled_from_their_neighbours(model):
    kp = _from_humanoid(_humanoid_pose2d(10, seed=4), "coco17")
    conf = np.ones((10, 17))
    conf[[0, 1, 9]] = 0.0  # leading and trailing gaps: rows of zero confidence
    kp[4] = np.nan  # middle gap: a missed detection written as NaN
    kp[5] = kp[5, 0]  # every joint at one point
    conf[6] = 0.0
    conf[6, [5, 7, 9]] = 1.0  # 3 humanoid joints (left arm): fewer than min_visible=4
    pose, valid = lift(kp, "coco17", conf, model=model, return_valid=True)
    assert pose.shape == (10, 15, 3) and np.isfinite(pose).all()
    np.testing.assert_array_equal(valid, [0, 0, 1, 1, 0, 0, 0, 1, 1, 0])
    for t in np.flatnonzero(valid):  # lifted frames: as lifted alone (batch of 1 vs 4)
        np.testing.assert_allclose(pose[t], lift(kp[t], "coco17", model=model), atol=1e-5)
    # float32 model output interpolated in float32 vs the float64 reference
    np.testing.assert_allclose(pose, _fill_reference(pose, valid), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(pose[0], pose[2])  # held: weight 0 is exact
    np.testing.assert_array_equal(pose[9], pose[8])
    # the filling is not a copy of one neighbour
    assert np.abs(pose[5] - pose[3]).max() > 1e-4 and np.abs(pose[5] - pose[7]).max() > 1e-4
    nan, valid_nan = lift(kp, "coco17", conf, model=model, fill="nan", return_valid=True)
    np.testing.assert_array_equal(valid_nan, valid)
    assert np.isnan(nan[~valid]).all()
    np.testing.assert_array_equal(nan[valid], pose[valid])
    # min_visible=2 lifts the frame with 3 joints; min_visible=15 none of the partial ones
    assert lift(kp, "coco17", conf, model=model, min_visible=2, return_valid=True)[1][6]
    conf[3, 0] = 0.0  # the nose: no humanoid joint uses it, frame 3 stays whole
    conf[7, 11] = 0.0  # a hip: root, chest and left hip hidden
    assert lift(kp, "coco17", conf, model=model, min_visible=15, return_valid=True)[1].sum() == 3


def test_nothing_usable_anywhere_comes_back_nan(model):
    kp = _from_humanoid(_humanoid_pose2d(4), "coco17")
    pose, valid = lift(kp, "coco17", np.zeros((4, 17)), model=model, return_valid=True)
    assert pose.shape == (4, 15, 3) and np.isnan(pose).all() and not valid.any()
    for frame in (np.full((17, 2), np.nan), np.zeros((17, 2)), np.full((17, 2), 1e308)):
        one, v = lift(frame, "coco17", model=model, return_valid=True)
        assert one.shape == (15, 3) and np.isnan(one).all() and v.shape == () and not v
    t, tv = lift(torch.full((2, 17, 2), math.inf), "coco17", model=model, return_valid=True)
    assert t.shape == (2, 15, 3) and t.isnan().all() and tv.dtype == torch.bool and not tv.any()


def test_twenty_percent_of_joints_missing(model):
    rng = np.random.default_rng(0)
    kp = _from_humanoid(_humanoid_pose2d(60, seed=5), "coco17")
    conf = np.where(rng.random((60, 17)) < 0.2, 0.0, 0.9)
    kp[rng.random((60, 17)) < 0.05] = np.nan  # and some missed outright
    pose, valid = lift(kp, "coco17", conf, model=model, return_valid=True)
    assert pose.shape == (60, 15, 3) and np.isfinite(pose).all()
    conf[np.isnan(kp).any(-1)] = 0.0
    np.testing.assert_array_equal(valid, _visible_count(kp, conf) >= 4)
    assert valid.all()  # a fifth of the joints hidden: every frame keeps >= 4 and is lifted


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    t=st.integers(0, 9),
    seed=st.integers(0, 2**16),
    p_hidden=st.sampled_from([0.0, 0.2, 0.6, 0.9, 1.0]),
    how=st.sampled_from(["score", "nan", "inf"]),
)
def test_no_pattern_of_missing_frames_or_joints_raises(model, t, seed, p_hidden, how):
    rng = np.random.default_rng(seed)
    kp = _from_humanoid(_humanoid_pose2d(t, seed=seed), "coco17")
    hidden = rng.random((t, 17)) < p_hidden
    hidden[rng.random(t) < 0.3] = True  # whole frames missing
    conf = np.ones((t, 17))
    if how == "score":
        conf[hidden] = 0.0
    else:
        kp[hidden] = np.nan if how == "nan" else np.inf
    pose, valid = lift(kp, "coco17", conf, model=model, return_valid=True)
    assert pose.shape == (t, 15, 3) and valid.shape == (t,)
    np.testing.assert_array_equal(valid, _visible_count(kp, np.where(hidden, 0.0, 1.0)) >= 4)
    if valid.any():
        assert np.isfinite(pose).all()
        np.testing.assert_allclose(pose, _fill_reference(pose, valid), rtol=0, atol=1e-6)
    else:
        assert np.isnan(pose).all()


# --------------------------------------------------------------------------- devices


def test_device_is_checked_and_models_are_never_moved(model, saved):
    clear_model_cache()
    kp = _from_humanoid(_humanoid_pose2d(2), "coco17")
    ref = lift(kp, "coco17", model=str(saved))
    for m in (model, str(saved)):
        with pytest.raises(ValueError, match="lift: device='meta' holds no data"):
            lift(kp, "coco17", model=m, device="meta")
    assert next(model.parameters()).device.type == "cpu"
    # the cached model still works after the refused call
    np.testing.assert_array_equal(lift(kp, "coco17", model=str(saved)), ref)
    with pytest.raises(ValueError, match="lift: device='gpu0' names no device"):
        lift(kp, "coco17", model=model, device="gpu0")
    with pytest.raises(TypeError, match=r"lift: device must be a torch\.device"):
        lift(kp, "coco17", model=model, device=0.5)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="lift: device='cuda', but this machine has no CUDA"):
            lift(kp, "coco17", model=model, device="cuda")
    np.testing.assert_array_equal(lift(kp, "coco17", model=str(saved), device="cpu"), ref)
    on_meta = create_model("unihpr-tiny").to("meta")
    with pytest.raises(ValueError, match="model is on the meta device"):
        lift(kp, "coco17", model=on_meta)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_runs_a_copy_and_caches_one_model_per_device(model, saved):
    from unihpr import inference

    clear_model_cache()
    kp = _from_humanoid(_humanoid_pose2d(5), "coco17")
    ref = lift(kp, "coco17", model=model)
    # GPU float32 kernels differ from the CPU's in the last bits: 1e-4 m is far below any pose change
    np.testing.assert_allclose(lift(kp, "coco17", model=model, device="cuda"), ref, atol=1e-4)
    assert next(model.parameters()).device.type == "cpu"
    on_gpu = lift(torch.from_numpy(kp).cuda(), "coco17", model=str(saved), device="cuda")
    assert on_gpu.device.type == "cuda"
    np.testing.assert_allclose(lift(kp, "coco17", model=str(saved)), on_gpu.cpu(), atol=1e-4)
    assert inference._load.cache_info().currsize == 2
    assert lift(kp, "coco17", model=str(saved), device="cpu").dtype == np.float64


def test_models_of_other_skeletons_are_refused(model):
    kp = np.zeros((17, 2))
    h36m_model = create_model("unihpr-tiny", num_joints=17)
    with pytest.raises(ValueError, match=r"humanoid15 skeleton \(15 joints, root 0\).*"
                       r"num_joints=17"):  # fmt: skip
        lift(kp, "coco17", model=h36m_model)
    with pytest.raises(TypeError, match="model must be a registered name"):
        lift(kp, "coco17", model=object())
    pose = _from_humanoid(_humanoid_pose2d(1), "coco17")[0]
    with pytest.raises(PretrainedNotFoundError, match="no such folder"):
        lift(pose, "coco17", model="./no-such-model")


def test_default_model_is_the_shipped_temporal_lifter():
    from unihpr.inference import _resolve_model
    from unihpr.models.temporal import TemporalLifter

    net = _resolve_model(DEFAULT_LIFT_MODEL, None)
    assert isinstance(net, TemporalLifter) and net.config.window > 1


def test_default_model_lifts_a_held_out_video_whole_with_occlusion_and_missed_frames():
    """lift() with the default model on the held-out "walk" clip seen by one camera."""
    uv, truth = (t.numpy() for t in held_out_walk())
    clean = lift(uv, "humanoid15")
    conf = np.random.default_rng(1).random(uv.shape[:2]) >= 0.2  # 20% of joints occluded
    conf[10:13] = False  # three frames without any detection
    occluded, valid = lift(uv + 50 * ~conf[..., None], "humanoid15", conf, return_valid=True)
    assert occluded.shape == (uv.shape[0], 15, 3) and not valid[10:13].any()
    err_clean = 1000 * float(mpjpe(torch.as_tensor(clean), torch.as_tensor(truth)))
    err_occ = 1000 * float(mpjpe(torch.as_tensor(occluded), torch.as_tensor(truth)))
    # the model card's numbers for this clip: about 67 mm clean and 74 mm occluded;
    # the bounds leave room for other CPUs' float32 rounding, far below the mean pose (~300)
    assert err_clean < 80.0
    assert err_occ < 1.15 * err_clean + 10.0


# --------------------------------------------------------------------------- accuracy


def lift_errors(model, *, stride: int = 8, seed: int = 0) -> dict[str, dict[str, float]]:
    """MPJPE (mm) of ``lift`` per input layout and image size on the held-out clips.

    Each held-out frame (every ``stride``-th of ``DEFAULT_TEST_CLIPS``) is seen
    by a random camera (all round, elevation -5..25 degrees, 3.5-7 m, aimed up
    to 0.5 m beside the body, so that the person stands anywhere in the image);
    its 2D joints, projected at several image sizes, are converted to each
    layout (limbs copied, trunk joints as the layout has them) and lifted.
    Errors are against the camera-frame, root-relative 3D joints. The layouts'
    keypoints are synthetic: h36m17's spine and thorax are placed exactly on the
    humanoid's chest and neck, and the detectors' hips on its hip joints, so the
    numbers measure the model and the mapping's means, not the anatomical gap
    between real annotations and the humanoid's joints.
    """
    from unihpr.data.cameras import project, world_to_camera
    from unihpr.data.mocap import (
        DEFAULT_TEST_CLIPS,
        humanoid_forward_kinematics,
        load_mocap_clip,
        look_at_camera,
    )
    from unihpr.metrics import mpjpe

    world = np.concatenate([humanoid_forward_kinematics(load_mocap_clip(c))[::stride]
                            for c in DEFAULT_TEST_CLIPS])  # fmt: skip
    rng = np.random.default_rng(seed)
    n = len(world)
    az = rng.uniform(0, 2 * np.pi, n)
    el = np.deg2rad(rng.uniform(-5.0, 25.0, n))
    dist = rng.uniform(3.5, 7.0, n)
    aim = world[:, 0] + rng.uniform(-0.5, 0.5, (n, 3))
    cam_pos = aim + dist[:, None] * np.stack(
        [np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], -1
    )
    cam = np.stack([world_to_camera(world[i], look_at_camera(cam_pos[i], aim[i]), cam_pos[i])
                    for i in range(n)])  # fmt: skip
    truth = cam - cam[:, :1]
    errors: dict[str, dict[str, float]] = {}
    for width, height in ((640, 480), (1920, 1080), (4032, 3024)):
        focal = width * rng.uniform(0.8, 1.6, n)
        uv = np.stack([project(cam[i], (focal[i], focal[i]), (width / 2, height / 2))
                       for i in range(n)])  # fmt: skip
        for layout in LIFT_LAYOUTS:
            pred = lift(_from_humanoid(uv, layout), layout, model=model)
            errors.setdefault(layout, {})[f"{width}x{height}"] = 1000 * float(mpjpe(pred, truth))
    return errors


def test_accuracy_protocol_runs(model):
    """The protocol of the accuracy test, on an untrained model: finite, every layout."""
    pytest.importorskip("pybullet")
    errors = lift_errors(model, stride=40)
    assert sorted(errors) == sorted(LIFT_LAYOUTS)
    for per_size in errors.values():
        assert len(per_size) == 3 and all(math.isfinite(e) and e > 0 for e in per_size.values())
        # the sizes differ in image and focal length only: the same error at each
        np.testing.assert_allclose(list(per_size.values()), next(iter(per_size.values())),
                                   rtol=0, atol=1e-3)  # fmt: skip


def test_single_frame_model_lifts_held_out_mocap_within_its_documented_error():
    pytest.importorskip("pybullet")
    errors = lift_errors("unihpr-tiny-mocap")
    if sorted(LIFT_MPJPE_BOUNDS_MM) != sorted(LIFT_LAYOUTS):
        pytest.fail(f"set LIFT_MPJPE_BOUNDS_MM from the model card; measured (mm): {errors}")
    for layout, per_size in errors.items():
        for size, err in per_size.items():
            assert err < LIFT_MPJPE_BOUNDS_MM[layout], (layout, size, err)
