import numpy as np
import pytest
from payloads import CreatesFile, assert_payload_is_live, object_member_npz, raw_pickle_npz

from unihpr.data.cameras import project, quaternion_to_matrix, world_to_camera
from unihpr.data.h36m import Human36M, load_h36m_2d, load_h36m_3d, normalize_action
from unihpr.data.h36m_cameras import CAMERA_IDS, h36m_camera
from unihpr.data.skeletons import H36M32_TO_H36M17

SUBJECTS = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")


def _walk(n, rng):
    """A standing body (32 joints, metres) near the capture-volume centre."""
    base = rng.normal(scale=0.2, size=(1, 32, 3)) + np.array([0.0, 0.0, 0.9])
    drift = np.linspace(0, 0.5, n)[:, None, None] * np.array([1.0, 0.0, 0.0])
    return (base + drift).astype(np.float32)


def write_h36m(tmp_path, n=20, extra_cpn=3):
    """Write 3D + 2D npz files in exactly the VideoPose3D layout."""
    rng = np.random.default_rng(0)
    p3, p2 = {}, {}
    for s in SUBJECTS:
        actions = ["Directions 1", "Walking"] + (["Directions"] if s == "S11" else [])
        p3[s], p2[s] = {}, {}
        for a in actions:
            pos = _walk(n, rng)
            p3[s][a] = pos
            cams = []
            for ci in range(4):
                cam = h36m_camera(s, ci)
                xyz = world_to_camera(pos[:, H36M32_TO_H36M17], cam.rotation, cam.position)
                uv = project(xyz, cam.focal_length, cam.center, cam.radial, cam.tangential)
                uv = np.concatenate([uv, uv[-1:].repeat(extra_cpn, 0)]).astype(np.float32)
                cams.append(uv)
            p2[s][a] = cams
    meta = {"layout_name": "h36m", "num_joints": 17,
            "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}  # fmt: skip
    f3, f2 = tmp_path / "data_3d_h36m.npz", tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz"
    np.savez_compressed(f3, positions_3d=p3)
    np.savez_compressed(f2, positions_2d=p2, metadata=meta)
    return f3, f2, p3


def test_published_cameras_see_the_capture_volume():
    # the volume centre (world origin, ~1 m up) must be in front of every camera
    # and project inside its image: catches a wrong quaternion convention
    for s in SUBJECTS:
        for ci in range(4):
            cam = h36m_camera(s, ci)
            np.testing.assert_allclose(cam.rotation @ cam.rotation.T, np.eye(3), atol=1e-6)
            xyz = world_to_camera(np.array([0.0, 0.0, 1.0]), cam.rotation, cam.position)
            assert 4.0 < xyz[2] < 7.0
            u, v = project(xyz, cam.focal_length, cam.center, cam.radial, cam.tangential)
            assert 0 < u < cam.resolution[0] and 0 < v < cam.resolution[1]
            # world "up" (+z) points up in the image (negative camera y)
            up = world_to_camera(np.array([0.0, 0.0, 2.0]), cam.rotation, cam.position) - xyz
            assert up[1] < 0


def test_projection_float64_reference():
    q = np.array([1.0, 0, 0, 0])
    assert np.array_equal(quaternion_to_matrix(q), np.eye(3))
    # 90 degrees about z maps x to y
    r = quaternion_to_matrix(np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]))
    np.testing.assert_allclose(r @ [1, 0, 0], [0, 1, 0], atol=1e-15)
    pt = np.array([0.2, -0.1, 2.0])
    m = np.array([0.1, -0.05])
    r2 = 0.0125
    k, p = np.array([0.1, 0.01, 0.001]), np.array([0.002, -0.003])
    rad = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
    md = m * (rad + p @ m) + p * r2
    expected = md * [1000.0, 1010.0] + [500.0, 490.0]
    np.testing.assert_allclose(project(pt, [1000.0, 1010.0], [500.0, 490.0], k, p), expected)
    np.testing.assert_allclose(project(pt, [1000.0, 1000.0], [0, 0]), [100.0, -50.0])


def test_normalize_action():
    assert normalize_action("Directions 1") == "Directions"
    assert normalize_action("TakingPhoto 1") == "Photo"
    assert normalize_action("WalkingDog") == "WalkDog"
    assert normalize_action("SittingDown 2") == "SittingDown"


def test_dataset_split_truncation_stride_and_targets(tmp_path):
    f3, f2, p3 = write_h36m(tmp_path, n=20)
    train = Human36M(f3, f2, "train")
    test = Human36M(f3, f2, "test", stride=5)
    assert len(train) == 5 * 2 * 4 * 20
    # S9: 2 actions, S11: 2 (the corrupt "Directions" take dropped), 4 frames each
    assert len(test) == 4 * 4 * 4
    assert set(test.arrays["subject"]) == {"S9", "S11"}
    assert "Directions" not in set(test.arrays["action_raw"][test.arrays["subject"] == "S11"])
    assert set(train.arrays["action"]) == {"Directions", "Walking"}
    s = test[5]
    assert s["pose3d"].shape == (17, 3) and s["pose2d"].shape == (17, 2)
    assert "bbox" not in s and s["pose3d"].dtype.is_floating_point
    assert np.allclose(s["pose3d"][0].numpy(), 0.0)
    assert s["frame"] == 5 and s["subject"] == "S9"
    # reprojecting root + pose3d gives the 2D of the file (the CPN tail is cut)
    a = test.arrays
    cam = h36m_camera("S9", CAMERA_IDS.index(s["camera"]))
    xyz = a["pose3d"][5].astype(np.float64) + a["root"][5]
    uv = project(xyz, cam.focal_length, cam.center, cam.radial, cam.tangential)
    np.testing.assert_allclose(uv, s["pose2d"].numpy(), atol=1e-3)
    # bone lengths are preserved by the camera transform
    world = p3["S9"]["Directions 1"][5][list(H36M32_TO_H36M17)]
    np.testing.assert_allclose(
        np.linalg.norm(xyz[2] - xyz[1]), np.linalg.norm(world[2] - world[1]), rtol=1e-5
    )
    with pytest.raises(IndexError):
        test[len(test)]


def test_loader_errors_name_file_key_and_shape(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_3d_h36m"):
        load_h36m_3d(tmp_path / "data_3d_h36m.npz")
    bad = tmp_path / "bad3d.npz"
    np.savez(bad, positions_3d={"S1": {"Walking": np.zeros((5, 17, 3))}})
    with pytest.raises(ValueError, match=r"bad3d\.npz.*Walking.*\(N, 32, 3\)"):
        load_h36m_3d(bad)
    wrong_key = tmp_path / "wrongkey.npz"
    np.savez(wrong_key, poses=np.zeros(3))
    with pytest.raises(ValueError, match=r"wrongkey\.npz.*positions_3d"):
        load_h36m_3d(wrong_key)
    bad2 = tmp_path / "bad2d.npz"
    np.savez(bad2, positions_2d={"S1": {"Walking": [np.zeros((5, 17, 2))] * 3}},
             metadata={"num_joints": 17})  # fmt: skip
    with pytest.raises(ValueError, match=r"bad2d\.npz.*list of 4"):
        load_h36m_2d(bad2)
    f3, _, p3 = write_h36m(tmp_path, n=10)
    short = tmp_path / "short.npz"
    p2 = {s: {a: [np.zeros((5, 17, 2), np.float32)] * 4 for a in p3[s]} for s in p3}
    np.savez(short, positions_2d=p2, metadata={"num_joints": 17})
    with pytest.raises(ValueError, match=r"short\.npz.*fewer than the 10"):
        Human36M(f3, short, "train")
    with pytest.raises(ValueError, match="split"):
        Human36M(f3, short, "val")


@pytest.mark.parametrize("which", ["3d_raw", "3d_member", "2d_member", "2d_metadata"])
def test_crafted_npz_runs_nothing(tmp_path, which):
    f3, f2, _ = write_h36m(tmp_path, n=4)
    marker = tmp_path / "pwned"
    assert_payload_is_live(marker)
    evil = tmp_path / "evil.npz"
    if which == "3d_raw":  # not a zip: np.load(allow_pickle=True) would unpickle the file
        raw_pickle_npz(evil, marker)
        match = r"evil\.npz: not an npz \(zip\) archive"
    elif which == "3d_member":
        object_member_npz(evil, marker, "positions_3d")
        match = r"evil\.npz\['positions_3d'\]: refusing to unpickle (io|builtins)\.open"
    else:
        key = "positions_2d" if which == "2d_member" else "metadata"
        good = {k: np.load(f2, allow_pickle=True)[k] for k in ("positions_2d", "metadata")}
        np.savez(evil, **{**good, key: np.array({"x": CreatesFile(marker)}, dtype=object)})
        match = rf"evil\.npz\['{key}'\]: refusing to unpickle (io|builtins)\.open"
    d3, d2 = (evil, f2) if which.startswith("3d") else (f3, evil)
    loader = load_h36m_3d if which.startswith("3d") else load_h36m_2d
    with pytest.raises(ValueError, match=match):
        loader(evil)
    with pytest.raises(ValueError, match=match):
        Human36M(d3, d2, "train")
    assert not marker.exists()


def test_wrong_trailing_dimensions_are_rejected(tmp_path):
    f3, _, p3 = write_h36m(tmp_path, n=4)
    one = tmp_path / "one.npz"
    p2 = {s: {a: [np.zeros((4, 17, 1), np.float32)] * 4 for a in p3[s]} for s in p3}
    np.savez(one, positions_2d=p2, metadata={"num_joints": 17})
    with pytest.raises(ValueError, match=r"one\.npz.*\(4, 17, 1\).*\(N, 17, 2\)"):
        load_h36m_2d(one)
    with pytest.raises(ValueError, match=r"one\.npz"):
        Human36M(f3, one, "train")
    # a confidence column after (x, y) is accepted and dropped
    conf = tmp_path / "conf.npz"
    p2 = {s: {a: [np.ones((4, 17, 3), np.float32)] * 4 for a in p3[s]} for s in p3}
    np.savez(conf, positions_2d=p2, metadata={"num_joints": 17})
    assert Human36M(f3, conf, "train")[0]["pose2d"].shape == (17, 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["3d", "2d"])
def test_nonfinite_poses_raise_or_are_masked(tmp_path, bad, where):
    f3, f2, p3 = write_h36m(tmp_path, n=6)
    p2 = {k: np.load(f2, allow_pickle=True)[k].item() for k in ("positions_2d", "metadata")}
    if where == "3d":
        p3["S5"]["Walking"][2, 0, 1] = bad  # joint 0 is kept in the 17-joint layout
        np.savez(f3, positions_3d=p3)
        lost = 4  # frame 2 of every camera
    else:
        p2["positions_2d"]["S5"]["Walking"][1][3, 16, 0] = bad
        np.savez(f2, **p2)
        lost = 1  # frame 3 of camera 1
    name = f3.name if where == "3d" else f2.name
    with pytest.raises(ValueError, match=rf"{name}: {lost} of \d+ samples have NaN or inf.*S5"):
        Human36M(f3, f2, "train")
    full = 5 * 2 * 4 * 6
    with pytest.warns(UserWarning, match=f"left out {lost} of {full}"):
        ds = Human36M(f3, f2, "train", nonfinite="mask")
    assert len(ds) == full - lost and ds.num_masked == lost
    assert np.isfinite(ds.arrays["pose3d"]).all() and np.isfinite(ds.arrays["pose2d"]).all()
    assert len(ds.arrays["subject"]) == len(ds)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"split": 3}, TypeError, "split"),
        ({"stride": 0}, ValueError, "stride"),
        ({"stride": 1.5}, TypeError, "stride"),
        ({"cameras": (0, 4)}, ValueError, "cameras"),
        ({"cameras": ()}, ValueError, "cameras"),
        ({"cameras": (True,)}, ValueError, "cameras"),
        ({"nonfinite": "drop"}, ValueError, "nonfinite"),
        ({"subjects": "S1"}, TypeError, "subjects"),
    ],
)
def test_argument_validation(tmp_path, kwargs, error, match):
    f3, f2, _ = write_h36m(tmp_path, n=4)
    with pytest.raises(error, match=match):
        Human36M(f3, f2, **kwargs)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_loaders_reject_nonfinite_values_naming_file_subject_and_action(tmp_path, bad):
    f3, f2, p3 = write_h36m(tmp_path, n=6)
    p3["S5"]["Walking"][2, 30, 1] = bad  # a joint the 17-joint layout drops: still reported
    np.savez(f3, positions_3d=p3)
    with pytest.raises(
        ValueError,
        match=r"data_3d_h36m\.npz: positions_3d\['S5'\]\['Walking'\] has NaN or inf \(first "
        r"at frame 2\); pass allow_nonfinite=True",
    ):
        load_h36m_3d(f3)
    assert not np.isfinite(load_h36m_3d(f3, allow_nonfinite=True)["S5"]["Walking"][2, 30, 1])
    p2 = {k: np.load(f2, allow_pickle=True)[k].item() for k in ("positions_2d", "metadata")}
    p2["positions_2d"]["S9"]["Directions 1"][3][4, 0, 0] = bad
    np.savez(f2, **p2)
    with pytest.raises(
        ValueError,
        match=r"positions_2d\['S9'\]\['Directions 1'\]\[3\] has NaN or inf \(first at frame 4\)",
    ):
        load_h36m_2d(f2)
    assert load_h36m_2d(f2, allow_nonfinite=True)[0]["S9"]["Directions 1"][3].shape == (9, 17, 2)
