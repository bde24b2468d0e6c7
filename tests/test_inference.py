"""unihpr.lift: 2D keypoints of users' layouts -> HUMANOID15 3D poses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import unihpr
from unihpr.data.skeletons import HUMANOID15, get_skeleton, joint_mapping
from unihpr.inference import (
    DEFAULT_LIFT_MODEL,
    LIFT_LAYOUTS,
    clear_model_cache,
    lift,
    to_humanoid15,
)
from unihpr.models import PretrainedNotFoundError, create_model, list_models

# Per-layout MPJPE bounds (mm) of the accuracy test below. The model card of the
# shipped DEFAULT_LIFT_MODEL (unihpr/models/weights/unihpr-tiny-mocap/README.md)
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
    with pytest.raises(ValueError, match=r"layout must be one of \['coco17', 'h36m17'"):
        lift(np.zeros((17, 2)), "openpose18", model=model)
    with pytest.raises(ValueError, match="mediapipe33"):
        to_humanoid15(np.zeros((17, 2)), "COCO")


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


def test_confidence_errors(model):
    kp = _from_humanoid(_humanoid_pose2d(3), "coco17")
    with pytest.raises(ValueError, match=r"confidence must have shape \(T, J\) = \(3, 17\).*got "
                       r"\(17,\)"):  # fmt: skip
        lift(kp, "coco17", np.ones(17), model=model)
    with pytest.raises(ValueError, match=r"\(J,\) = \(17,\)"):
        lift(kp[0], "coco17", np.ones((1, 17)), model=model)
    with pytest.raises(ValueError, match="confidence has NaN"):
        lift(kp, "coco17", np.full((3, 17), np.nan), model=model)
    with pytest.raises(ValueError, match="confidence_threshold must be finite"):
        lift(kp, "coco17", model=model, confidence_threshold=math.nan)
    with pytest.raises(TypeError, match="confidence_threshold must be a number"):
        lift(kp, "coco17", model=model, confidence_threshold="0.5")


def test_nan_keypoints_must_be_masked(model):
    kp = _from_humanoid(_humanoid_pose2d(3), "coco17")
    kp[1, 9] = np.nan  # left wrist
    with pytest.raises(ValueError, match=r"1 joint\(s\) that are not masked \(first: frame 1, "
                       r"joint 'left_wrist'\).*below confidence_threshold=0.3"):  # fmt: skip
        lift(kp, "coco17", model=model)
    with pytest.raises(ValueError, match=r"first: joint 'left_wrist'"):
        lift(kp[1], "coco17", model=model)
    conf = np.ones((3, 17))
    conf[1, 9] = 0.0
    assert np.isfinite(lift(kp, "coco17", conf, model=model)).all()


def test_too_few_visible_joints(model):
    kp = _from_humanoid(_humanoid_pose2d(3), "coco17")
    conf = np.ones((3, 17))
    conf[2, 11:] = 0.0  # no hips, knees or ankles: 7 humanoid joints left
    with pytest.raises(ValueError, match=r"1 frame\(s\) have fewer than min_visible=8 .*frames "
                       r"\[2\]; frame 2 has 7, hidden: \['root', 'chest', 'right_hip'"):  # fmt: skip
        lift(kp, "coco17", conf, model=model)
    assert lift(kp, "coco17", conf, model=model, min_visible=7).shape == (3, 15, 3)
    with pytest.raises(ValueError, match=r"the pose has fewer than min_visible=8"):
        lift(kp[2], "coco17", conf[2], model=model)
    with pytest.raises(ValueError, match=r"min_visible must be an int \[2, 15\]"):
        lift(kp, "coco17", model=model, min_visible=1)
    with pytest.raises(ValueError, match="batch_size"):
        lift(kp, "coco17", model=model, batch_size=0)
    flat = np.zeros((17, 2))
    with pytest.raises(ValueError, match="all lie at one point"):
        lift(flat, "coco17", model=model)


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


@pytest.mark.skipif(DEFAULT_LIFT_MODEL in list_models(), reason="the default model is registered")
def test_missing_default_model_says_what_to_pass():
    pose = _from_humanoid(_humanoid_pose2d(1), "coco17")[0]
    with pytest.raises(PretrainedNotFoundError, match=r"'unihpr-tiny-mocap' is not shipped with "
                       r"this version.*pass model="):  # fmt: skip
        lift(pose, "coco17")


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


@pytest.mark.skipif(
    DEFAULT_LIFT_MODEL not in list_models(pretrained=True),
    reason=f"{DEFAULT_LIFT_MODEL!r} is not shipped yet (issue #14 item 2 registers it)",
)
def test_default_model_lifts_held_out_mocap_within_its_documented_error():
    pytest.importorskip("pybullet")
    errors = lift_errors(DEFAULT_LIFT_MODEL)
    if sorted(LIFT_MPJPE_BOUNDS_MM) != sorted(LIFT_LAYOUTS):
        pytest.fail(f"set LIFT_MPJPE_BOUNDS_MM from the model card; measured (mm): {errors}")
    for layout, per_size in errors.items():
        for size, err in per_size.items():
            assert err < LIFT_MPJPE_BOUNDS_MM[layout], (layout, size, err)
