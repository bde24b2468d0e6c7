import numpy as np
import pytest
from payloads import assert_payload_is_live, object_member_npz, raw_pickle_npz

from unihpr.data.mpi_inf_3dhp import MPIInf3DHP, load_3dhp
from unihpr.data.skeletons import H36M17, MPI_INF_3DHP17


def _poses(n, rng):
    p3 = rng.normal(scale=300.0, size=(n, 17, 3)) + np.array([0.0, 0.0, 4000.0])  # mm
    p2 = rng.uniform(0, 2048, size=(n, 17, 2))
    return p3.astype(np.float32), p2.astype(np.float32)


def write_train(path, n=6):
    rng = np.random.default_rng(0)
    data = {}
    for seq in ("S1 Seq1", "S2 Seq2"):
        cams = {}
        for cam in (0, 2):
            p3, p2 = _poses(n, rng)
            cams[cam] = {"data_3d": p3, "data_2d": p2}
        data[seq] = [cams]
    np.savez_compressed(path, data=data)
    return data


def write_test(path, n=8):
    rng = np.random.default_rng(1)
    data = {}
    for seq in ("TS1", "TS5"):
        p3, p2 = _poses(n, rng)
        valid = np.ones(n, dtype=bool)
        valid[1] = False
        data[seq] = {"data_3d": p3, "data_2d": p2, "valid": valid}
    np.savez_compressed(path, data=data)
    return data


def test_train_file(tmp_path):
    f = tmp_path / "data_train_3dhp.npz"
    data = write_train(f)
    seqs = load_3dhp(f)
    assert [(s.subject, s.sequence, s.camera) for s in seqs] == [
        ("S1", "Seq1", "0"), ("S1", "Seq1", "2"), ("S2", "Seq2", "0"), ("S2", "Seq2", "2"),
    ]  # fmt: skip
    ds = MPIInf3DHP(f, stride=2)
    assert len(ds) == 4 * 3
    s = ds[0]
    raw = data["S1 Seq1"][0][0]["data_3d"][0].astype(np.float64)
    expected = (raw - raw[MPI_INF_3DHP17.root]) / 1000.0
    # H36M order: pelvis at 0 (zero), H36M's left wrist is 3DHP's left wrist
    assert np.allclose(s["pose3d"][0].numpy(), 0.0)
    lw_h36m, lw_3dhp = H36M17.index("left_wrist"), MPI_INF_3DHP17.index("left_wrist")
    np.testing.assert_allclose(s["pose3d"][lw_h36m].numpy(), expected[lw_3dhp], rtol=1e-5)
    assert s["subject"] == "S1" and s["action"] == "Seq1" and s["camera"] == "0"
    native = MPIInf3DHP(f, layout="mpi_inf_3dhp17")
    np.testing.assert_allclose(native[0]["pose3d"].numpy(), expected, rtol=1e-5, atol=1e-7)


def test_test_file_valid_frames(tmp_path):
    f = tmp_path / "data_test_3dhp.npz"
    write_test(f)
    seqs = load_3dhp(f)
    assert seqs[1].image_size == (1920, 1080) and seqs[0].image_size == (2048, 2048)
    ds = MPIInf3DHP(f)
    assert len(ds) == 2 * 7
    assert 1 not in set(ds.arrays["frame"].tolist())
    assert len(MPIInf3DHP(f, valid_only=False)) == 16
    assert ds[0]["subject"] == "TS1"


def test_malformed_files(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, data={"TS1": {"data_3d": np.zeros((4, 16, 3)), "data_2d": np.zeros((4, 17, 2))}})
    with pytest.raises(ValueError, match=r"bad\.npz.*TS1.*data_3d.*\(N, 17, 3\)"):
        load_3dhp(bad)
    nokey = tmp_path / "nokey.npz"
    np.savez(nokey, poses=np.zeros(3))
    with pytest.raises(ValueError, match=r"nokey\.npz.*'data'"):
        load_3dhp(nokey)
    badtrain = tmp_path / "badtrain.npz"
    np.savez(badtrain, data={"S1 Seq1": [np.zeros(3)]})
    with pytest.raises(ValueError, match=r"badtrain\.npz.*S1 Seq1"):
        load_3dhp(badtrain)
    with pytest.raises(FileNotFoundError, match=r"missing\.npz"):
        load_3dhp(tmp_path / "missing.npz")
    write_test(tmp_path / "ok.npz")
    with pytest.raises(ValueError, match="units"):
        MPIInf3DHP(tmp_path / "ok.npz", units="cm")


@pytest.mark.parametrize("kind", ["raw", "member"])
def test_crafted_npz_runs_nothing(tmp_path, kind):
    marker = tmp_path / "pwned"
    assert_payload_is_live(marker)
    evil = tmp_path / "evil.npz"
    if kind == "raw":
        raw_pickle_npz(evil, marker)
        match = r"evil\.npz: not an npz \(zip\) archive"
    else:
        object_member_npz(evil, marker, "data", lambda p: {"TS1": {"data_3d": p}})
        match = r"evil\.npz\['data'\]: refusing to unpickle (io|builtins)\.open"
    with pytest.raises(ValueError, match=match):
        load_3dhp(evil)
    with pytest.raises(ValueError, match=match):
        MPIInf3DHP(evil)
    assert not marker.exists()


@pytest.mark.parametrize("key", ["data_3d", "data_2d"])
def test_nonfinite_poses_raise_or_are_masked(tmp_path, key):
    f = tmp_path / "data_test_3dhp.npz"
    data = write_test(f)
    data["TS5"][key][4, 3, 0] = np.nan
    data["TS5"][key][1, 3, 0] = np.inf  # frame 1 is invalid: dropped by valid_only first
    np.savez(f, data=data)
    with pytest.raises(ValueError, match=r"data_test_3dhp\.npz: 1 of 14 samples .*NaN or inf"):
        MPIInf3DHP(f)
    with pytest.warns(UserWarning, match="left out 1 of 14"):
        ds = MPIInf3DHP(f, nonfinite="mask")
    assert len(ds) == 13 and np.isfinite(ds.arrays["pose3d"]).all()
    with pytest.raises(ValueError, match="2 of 16"):
        MPIInf3DHP(f, valid_only=False)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"layout": "coco"}, ValueError),
        ({"units": 1}, TypeError),
        ({"stride": 0}, ValueError),
        ({"stride": "2"}, TypeError),
        ({"valid_only": 1}, TypeError),
        ({"nonfinite": None}, TypeError),
        ({"nonfinite": "drop"}, ValueError),
    ],
)
def test_argument_validation(tmp_path, kwargs, error):
    f = tmp_path / "data_test_3dhp.npz"
    write_test(f)
    with pytest.raises(error, match=next(iter(kwargs))):
        MPIInf3DHP(f, **kwargs)


def test_short_2d_is_rejected(tmp_path):
    f = tmp_path / "short.npz"
    p3 = np.zeros((3, 17, 3), np.float32)
    np.savez(f, data={"TS1": {"data_3d": p3, "data_2d": np.zeros((3, 17, 1), np.float32)}})
    with pytest.raises(ValueError, match=r"short\.npz.*data_2d.*\(3, 17, 1\)"):
        load_3dhp(f)
