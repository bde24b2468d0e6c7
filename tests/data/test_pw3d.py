import pickle

import numpy as np
import pytest
from payloads import CreatesFile, assert_payload_is_live

from unihpr.data.cameras import quaternion_to_matrix
from unihpr.data.pw3d import ThreeDPW, load_3dpw_sequence
from unihpr.data.skeletons import SMPL24


def write_sequence(path, n=5, actors=2, name="downtown_test_00"):
    """A pickle with exactly the keys and shapes of the official sequenceFiles."""
    rng = np.random.default_rng(0)
    ext = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        ext[i, :3, :3] = quaternion_to_matrix(np.array([1.0, 0.05 * i, 0.0, 0.0]))
        ext[i, :3, 3] = [0.1, 0.2, 4.0]
    data = {
        "sequence": name,
        "genders": ["m", "f"][:actors],
        "betas": [rng.normal(size=10) for _ in range(actors)],
        "betas_clothed": [rng.normal(size=10) for _ in range(actors)],
        "v_template_clothed": [np.zeros((6890, 3)) for _ in range(actors)],
        "texture_maps": [np.zeros((2, 2, 3)) for _ in range(actors)],
        "poses": [rng.normal(size=(n, 72)) for _ in range(actors)],
        "trans": [rng.normal(size=(n, 3)) for _ in range(actors)],
        "poses_60Hz": [rng.normal(size=(2 * n, 72)) for _ in range(actors)],
        "trans_60Hz": [rng.normal(size=(2 * n, 3)) for _ in range(actors)],
        "jointPositions": [rng.normal(scale=0.4, size=(n, 72)) for _ in range(actors)],
        "poses2d": [rng.uniform(0, 1000, size=(n, 3, 18)) for _ in range(actors)],
        "img_frame_ids": np.arange(n),
        "cam_poses": ext,
        "cam_intrinsics": np.array([[1961.0, 0, 540.0], [0, 1969.0, 960.0], [0, 0, 1]]),
        "campose_valid": [np.array([1, 1, 0, 1, 1][:n], dtype=bool) for _ in range(actors)],
    }
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=2)
    return data


def test_sequence_and_dataset(tmp_path):
    f = tmp_path / "downtown_test_00.pkl"
    raw = write_sequence(f)
    seq = load_3dpw_sequence(f)
    assert seq["joints"][0].shape == (5, 24, 3) and seq["poses2d"][1].shape == (5, 18, 3)
    ds = ThreeDPW(tmp_path)
    assert len(ds) == 2 * 4  # frame 2 has no valid camera pose
    s = ds[1]
    assert s["frame"] == 1 and s["actor"] == 0 and s["subject"] == "downtown_test_00"
    # camera-frame joints: reproduce by hand for the right hip (SMPL 2 -> H36M 1)
    j = raw["jointPositions"][0][1].reshape(24, 3)
    r, t = raw["cam_poses"][1][:3, :3], raw["cam_poses"][1][:3, 3]
    cam = j @ r.T + t
    np.testing.assert_allclose(s["pose3d"][1].numpy(), cam[2] - cam[0], atol=1e-5)
    # 2D is the pinhole projection of the camera-frame joints
    k = raw["cam_intrinsics"]
    u = k[0, 0] * cam[0, 0] / cam[0, 2] + k[0, 2]
    assert s["pose2d"][0, 0].item() == pytest.approx(u, rel=1e-5)


def test_custom_regressors(tmp_path):
    f = tmp_path / "seq.pkl"
    raw = write_sequence(f, actors=1)
    w = np.zeros((17, 24))
    w[:, SMPL24.index("head")] = 1.0
    ds = ThreeDPW(f, regressor=w)
    assert np.allclose(ds[0]["pose3d"].numpy(), 0.0)  # every joint = head, root-relative
    vw = np.zeros((17, 6890))
    vw[np.arange(17), np.arange(17)] = 1.0

    def verts(seq, actor):
        v = np.zeros((5, 6890, 3))
        v[:, :17] = raw["jointPositions"][actor].reshape(5, 24, 3)[:, :17]
        return v

    ds2 = ThreeDPW(f, regressor=vw, vertex_fn=verts)
    assert ds2[0]["pose3d"].shape == (17, 3)
    with pytest.raises(ValueError, match="vertex_fn"):
        ThreeDPW(f, regressor=vw)
    with pytest.raises(ValueError, match=r"\(17, 24\) or \(17, 6890\)"):
        ThreeDPW(f, regressor=np.zeros((16, 24)))


def test_malformed_pickles(tmp_path):
    f = tmp_path / "broken.pkl"
    raw = write_sequence(f)
    raw["jointPositions"][1] = np.zeros((5, 69))
    with open(f, "wb") as fh:
        pickle.dump(raw, fh, protocol=2)
    with pytest.raises(ValueError, match=r"broken\.pkl.*jointPositions\[1\].*\(5, 72\)"):
        load_3dpw_sequence(f)
    del raw["cam_poses"]
    with open(f, "wb") as fh:
        pickle.dump(raw, fh, protocol=2)
    with pytest.raises(ValueError, match=r"broken\.pkl.*cam_poses"):
        load_3dpw_sequence(f)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"junk\.pkl"):
        load_3dpw_sequence(tmp_path / "junk.pkl")


def test_crafted_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    assert_payload_is_live(marker)
    f = tmp_path / "evil.pkl"
    raw = write_sequence(f)
    raw["genders"] = ["m", CreatesFile(marker)]  # deep inside an otherwise valid sequence
    with open(f, "wb") as fh:
        pickle.dump(raw, fh, protocol=2)
    with pytest.raises(ValueError, match=r"evil\.pkl: refusing to unpickle (io|builtins)\.open"):
        load_3dpw_sequence(f)
    with pytest.raises(ValueError, match=r"evil\.pkl: refusing"):
        ThreeDPW(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "blob",
    [
        b"\x80\x02cno_such_module\nThing\n)\x81q\x00.",  # ModuleNotFoundError under pickle.load
        b"\x80\x02cnumpy\nno_such_attr\n)\x81q\x00.",  # AttributeError under pickle.load
        b"\x80\x02cpathlib\nPath\n)\x81q\x00.",  # an importable class that is not data
    ],
)
def test_pickles_naming_other_classes_are_clear_errors(tmp_path, blob):
    f = tmp_path / "odd.pkl"
    f.write_bytes(blob)
    with pytest.raises(ValueError, match=r"odd\.pkl: refusing to unpickle"):
        load_3dpw_sequence(f)


@pytest.mark.parametrize("key", ["campose_valid", "poses2d"])
def test_per_actor_lists_must_match_actor_count(tmp_path, key):
    f = tmp_path / "seq.pkl"
    raw = write_sequence(f, actors=2)
    raw[key] = raw[key][:1]
    with open(f, "wb") as fh:
        pickle.dump(raw, fh, protocol=2)
    with pytest.raises(ValueError, match=rf"seq\.pkl: {key} has 1 actor entries but .* 2"):
        load_3dpw_sequence(f)
    raw[key] = 5
    with open(f, "wb") as fh:
        pickle.dump(raw, fh, protocol=2)
    with pytest.raises(ValueError, match=rf"seq\.pkl: {key} must be a list"):
        load_3dpw_sequence(f)


def test_empty_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="files is empty"):
        ThreeDPW([])
    with pytest.raises(FileNotFoundError, match=r"no \.pkl sequence files found in .*"):
        ThreeDPW(tmp_path)
    with pytest.raises(TypeError, match="files"):
        ThreeDPW(3)
    f = tmp_path / "seq.pkl"
    raw = write_sequence(f)
    raw["jointPositions"] = []
    with open(f, "wb") as fh:
        pickle.dump(raw, fh, protocol=2)
    with pytest.raises(ValueError, match=r"seq\.pkl: jointPositions holds no actor"):
        load_3dpw_sequence(f)


def test_nonfinite_poses_raise_or_are_masked(tmp_path):
    f = tmp_path / "seq_00.pkl"
    raw = write_sequence(f)
    raw["jointPositions"][1][3, 5] = np.nan  # actor 1, frame 3 (valid)
    raw["cam_poses"][2, 0, 3] = np.inf  # frame 2 is invalid for both actors: never used
    with open(f, "wb") as fh:
        pickle.dump(raw, fh, protocol=2)
    with pytest.raises(ValueError, match=r"seq_00\.pkl: 1 of 8 samples have NaN or inf"):
        ThreeDPW(f)
    with pytest.warns(UserWarning, match="left out 1 of 8"):
        ds = ThreeDPW(f, nonfinite="mask")
    assert len(ds) == 7 and ds.num_masked == 1
    assert np.isfinite(ds.arrays["pose3d"]).all() and np.isfinite(ds.arrays["pose2d"]).all()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"stride": 0}, ValueError),
        ({"stride": 2.0}, TypeError),
        ({"nonfinite": "ignore"}, ValueError),
        ({"vertex_fn": 3}, TypeError),
    ],
)
def test_argument_validation(tmp_path, kwargs, error):
    f = tmp_path / "seq.pkl"
    write_sequence(f)
    with pytest.raises(error, match=next(iter(kwargs))):
        ThreeDPW(f, **kwargs)


def test_regressor_file_must_be_a_plain_npy(tmp_path):
    f = tmp_path / "seq.pkl"
    write_sequence(f)
    evil = tmp_path / "J_regressor.npy"
    np.save(evil, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"J_regressor\.npy: holds Python objects"):
        ThreeDPW(f, regressor=evil)
    # a header that declares more than the file holds is refused before allocating
    with open(evil, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f8", "fortran_order": False, "shape": (17, 10**14)}
        )
    with pytest.raises(
        ValueError, match=r"J_regressor\.npy: .*declares shape \(17, 100000000000000\)"
    ):
        ThreeDPW(f, regressor=evil)
