"""unihpr.keypoint_files: the keypoint files `unihpr lift` reads and the pose files it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unihpr import keypoint_files
from unihpr.keypoint_files import read_keypoints, write_poses

RNG = np.random.default_rng(0)
KP = RNG.uniform(0, 640, size=(5, 17, 2))
CONF = RNG.uniform(0, 1, size=(5, 17))


def _coco_flat(kp: np.ndarray, conf: np.ndarray) -> list[float]:
    return np.concatenate([kp, conf[:, None]], axis=1).ravel().tolist()


# --------------------------------------------------------------------------- npz


def test_npz_keypoints_and_confidence(tmp_path):
    p = tmp_path / "a.npz"
    np.savez(p, keypoints=KP.astype(np.float32), confidence=CONF)
    kp, conf = read_keypoints(p, "coco17")
    assert kp.dtype == np.float64 and kp.shape == (5, 17, 2)
    np.testing.assert_array_equal(kp, KP.astype(np.float32))
    np.testing.assert_array_equal(conf, CONF)
    # 'scores' is a confidence too; a third column is the confidence when none is given
    np.savez(p, keypoints=np.concatenate([KP, CONF[..., None]], -1))
    kp3, conf3 = read_keypoints(p)
    np.testing.assert_array_equal(kp3, KP)
    np.testing.assert_array_equal(conf3, CONF)
    np.savez(p, keypoints=np.concatenate([KP, np.zeros((5, 17, 1))], -1), scores=CONF)
    np.testing.assert_array_equal(read_keypoints(p)[1], CONF)  # the third column is ignored
    np.savez(p, keypoints=KP[0].round().astype(np.int16))  # one frame, integers
    kp1, conf1 = read_keypoints(p, "coco17")
    assert kp1.shape == (1, 17, 2) and conf1 is None


def test_npz_errors_name_the_file_and_what_was_expected(tmp_path, monkeypatch):
    p = tmp_path / "b.npz"
    np.savez(p, points=KP)
    with pytest.raises(ValueError, match=r"b\.npz: expected an array 'keypoints'.*\['points'\]"):
        read_keypoints(p)
    np.savez(p, keypoints=KP)
    with pytest.raises(ValueError, match=r"17 keypoints per frame, but layout 'mediapipe33' has "
                       r"33 \(17 is the joint count of \['coco17', 'h36m17'"):  # fmt: skip
        read_keypoints(p, "mediapipe33")
    np.savez(p, keypoints=KP, confidence=np.ones((5, 16)))
    with pytest.raises(ValueError, match=r"confidence must have shape \(T, J\) = \(5, 17\)"):
        read_keypoints(p)
    np.savez(p, keypoints=np.zeros((5, 17, 4)))
    with pytest.raises(ValueError, match=r"shape \(T, J, 2\) or \(T, J, 3\), got \(5, 17, 4\)"):
        read_keypoints(p)
    np.savez(p, keypoints=np.array([object()] * 3, dtype=object))  # a pickle inside
    with pytest.raises(
        ValueError, match=r"holds Python objects \(dtype object\); expected numbers"
    ):
        read_keypoints(p)
    p.write_text("keypoints,1,2\n")
    with pytest.raises(ValueError, match=r"b\.npz: not a readable npz file"):
        read_keypoints(p)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_keypoints(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=r"expected a \.npz, \.json or \.csv file, got '\.txt'"):
        read_keypoints(p.rename(tmp_path / "b.txt"))


def test_npz_of_an_unsupported_compression_method_is_a_value_error(tmp_path):
    p = tmp_path / "c.npz"
    np.savez(p, keypoints=KP)  # stored members: method 0 in both headers
    data = bytearray(p.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # local, central headers
        at = data.find(sig)
        data[at + offset : at + offset + 2] = (99).to_bytes(2, "little")  # AES: unsupported
    p.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"c\.npz: not a readable npz file .*compression method"):
        read_keypoints(p)


def test_npz_sizes_are_checked_before_reading(tmp_path, monkeypatch):
    # a header that declares 10**15 values over a few bytes: refused, nothing allocated
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**15,)}
    p = tmp_path / "bomb.npz"
    import io
    import zipfile

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("keypoints.npy", buf.getvalue() + b"\0" * 64)
    with pytest.raises(ValueError, match=r"declares shape \(1000000000000000,\) float64"):
        read_keypoints(p)
    np.savez_compressed(p, keypoints=np.zeros((2000, 17, 2)))  # 544 kB of zeros, 4 kB zipped
    monkeypatch.setattr(keypoint_files, "MAX_FILE_BYTES", 100_000)
    with pytest.raises(
        ValueError, match=r"array 'keypoints' is \d+ bytes, over the limit of 100000"
    ):
        read_keypoints(p)
    monkeypatch.setattr(keypoint_files, "MAX_FILE_BYTES", 10**9)
    monkeypatch.setattr(keypoint_files, "MAX_KEYPOINTS", 17 * 1999)
    with pytest.raises(ValueError, match=r"2000 frames x 17 joints, over the limit of 33983"):
        read_keypoints(p)


# --------------------------------------------------------------------------- JSON


def test_coco_style_json(tmp_path):
    p = tmp_path / "coco.json"
    frames = [{"image_id": 0, "keypoints": _coco_flat(KP[0], CONF[0]), "score": 0.9}, None, {},
              {"keypoints": []}, {"keypoints": _coco_flat(KP[4], CONF[4])}]  # fmt: skip
    p.write_text(json.dumps(frames))
    kp, conf = read_keypoints(p, "coco17")
    assert kp.shape == (5, 17, 2) and conf.shape == (5, 17)
    np.testing.assert_array_equal(kp[[0, 4]], KP[[0, 4]])
    np.testing.assert_array_equal(conf[[0, 4]], CONF[[0, 4]])
    assert np.isnan(kp[1:4]).all() and (conf[1:4] == 0).all()  # frames without a detection
    # a results file: a row per detection, one frame per image_id, the best score kept
    rows = [{"image_id": 7, "keypoints": _coco_flat(KP[1], CONF[1]), "score": 0.2},
            {"image_id": 3, "keypoints": _coco_flat(KP[2], CONF[2]), "score": 0.8},
            {"image_id": 7, "keypoints": _coco_flat(KP[3], CONF[3]), "score": 0.6}]  # fmt: skip
    p.write_text(json.dumps(rows))
    kp, _ = read_keypoints(p)
    np.testing.assert_array_equal(kp, KP[[2, 3]])
    # {"keypoints": [...]} with nested or flat frames, and a confidence
    p.write_text(json.dumps({"keypoints": KP.tolist(), "confidence": CONF.tolist()}))
    kp, conf = read_keypoints(p)
    np.testing.assert_array_equal(kp, KP)
    np.testing.assert_array_equal(conf, CONF)
    p.write_text(json.dumps({"keypoints": [_coco_flat(k, c) for k, c in zip(KP, CONF)]}))
    kp, conf = read_keypoints(p)
    np.testing.assert_array_equal(kp, KP)
    np.testing.assert_array_equal(conf, CONF)
    p.write_text(json.dumps([None, None]))
    kp, conf = read_keypoints(p, "coco17")  # no detection at all: the layout gives J
    assert kp.shape == (2, 17, 2) and np.isnan(kp).all()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        ('"frames"', "expected a COCO-style list"),
        ("[1, 2]", "expected a COCO-style list"),
        ('[{"keypoints": [1, 2, 3, 4]}]', r"frame 0 keypoints must be a flat \[x1, y1, v1"),
        ('[{"keypoints": [1, 2, "x"]}]', "frame 0 keypoints must be numbers"),
        ('[{"keypoints": [1, 2, 3]}, {"keypoints": [1, 2, 3, 4, 5, 6]}]', r"different.*\[1, 2\]"),
        ("[null]", "no frame holds keypoints"),
        ('[{"image_id": 1, "keypoints": []}, {"image_id": "a"}]', "image_id values must be"),
    ],
)
def test_json_errors(tmp_path, text, match):
    p = tmp_path / "bad.json"
    p.write_text(text)
    with pytest.raises(ValueError, match=r"bad\.json: " + match if "JSON" in match else match):
        read_keypoints(p)


def test_text_files_are_capped_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(keypoint_files, "MAX_TEXT_BYTES", 1000)
    for name in ("big.json", "big.csv"):
        p = tmp_path / name
        p.write_text(" " * 1001)
        with pytest.raises(ValueError, match=r"1001 bytes, over the limit of 1000.*as \.npz"):
            read_keypoints(p, "coco17")


# --------------------------------------------------------------------------- CSV


def test_csv_with_and_without_confidence(tmp_path):
    p = tmp_path / "k.csv"
    header = ",".join(f"x{j},y{j},c{j}" for j in range(17))
    rows = [",".join(map(str, np.concatenate([KP[t], CONF[t, :, None]], 1).ravel()))
            for t in range(5)]  # fmt: skip
    p.write_text("\n".join([header, *rows, ""]))
    kp, conf = read_keypoints(p, "coco17")
    np.testing.assert_array_equal(kp, KP)
    np.testing.assert_array_equal(conf, CONF)
    cells = [[str(v) for v in KP[t].ravel()] for t in range(2)]
    cells[1][0], cells[1][3] = "", "nan"  # missed keypoints
    p.write_text("\n".join(",".join(r) for r in cells))
    kp, conf = read_keypoints(p, "coco17")
    assert conf is None and kp.shape == (2, 17, 2)
    assert np.isnan(kp[1, 0, 0]) and np.isnan(kp[1, 1, 1]) and np.isfinite(kp[0]).all()


def test_csv_errors_name_the_row(tmp_path):
    p = tmp_path / "k.csv"
    p.write_text("1,2,3\n")
    with pytest.raises(ValueError, match=r"k\.csv: row 1 has 3 columns; expected 51 .* or 34"):
        read_keypoints(p, "coco17")
    p.write_text("\n".join([",".join(["1"] * 34), ",".join(["1"] * 33 + ["x"])]))
    with pytest.raises(ValueError, match=r"row 2: could not convert"):
        read_keypoints(p, "coco17")
    p.write_text("\n".join([",".join(["1"] * 34), ",".join(["1"] * 51)]))
    with pytest.raises(ValueError, match=r"row 2 has 51 columns"):
        read_keypoints(p, "coco17")
    with pytest.raises(ValueError, match="needs its layout"):
        read_keypoints(p)
    p.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="not a readable CSV file"):
        read_keypoints(p, "coco17")


# --------------------------------------------------------------------------- output


def test_write_poses(tmp_path):
    pose = RNG.normal(size=(3, 15, 3))
    pose[1] = np.nan
    valid = np.array([True, False, False])
    names = [f"j{i}" for i in range(15)]
    out = write_poses(tmp_path / "o.npz", pose, valid, names)
    with np.load(out, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["pose3d"], pose.astype(np.float32))
        np.testing.assert_array_equal(z["valid"], valid)
        assert z["joint_names"].tolist() == names
    doc = json.loads(write_poses(tmp_path / "o.json", pose, valid, names).read_text())
    assert doc["joint_names"] == names and doc["valid"] == [True, False, False]
    assert doc["pose3d"][1] is None
    # float32 values rounded to 0.1 mm
    np.testing.assert_allclose(doc["pose3d"][0], pose[0], rtol=0, atol=5.1e-5)
    with pytest.raises(ValueError, match=r"o\.txt: the output must be a \.npz or \.json"):
        write_poses(tmp_path / "o.txt", pose, valid, names)


# --------------------------------------------------------------------------- fuzz


@settings(max_examples=60, deadline=None)
@given(
    suffix=st.sampled_from([".npz", ".json", ".csv"]),
    cut=st.integers(0, 4000),
    flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=6),
)
def test_damaged_files_end_in_a_result_or_a_value_error(tmp_path_factory, suffix, cut, flips):
    """Truncated and bit-flipped versions of valid files: a result or a ValueError, never else."""
    p = tmp_path_factory.mktemp("fuzz") / f"f{suffix}"
    if suffix == ".npz":
        np.savez(p, keypoints=KP[:2], confidence=CONF[:2])
    elif suffix == ".json":
        p.write_text(json.dumps([{"keypoints": _coco_flat(KP[t], CONF[t])} for t in range(2)]))
    else:
        p.write_text("\n".join(",".join(map(str, np.c_[KP[t], CONF[t]].ravel())) for t in range(2)))
    data = bytearray(p.read_bytes()[: max(cut, 1)])
    for pos, byte in flips:
        data[pos % len(data)] = byte
    p.write_bytes(bytes(data))
    try:
        kp, conf = read_keypoints(p, "coco17")
    except ValueError as err:
        assert str(err).startswith(str(p))
    else:
        assert kp.ndim == 3 and kp.shape[1:] == (17, 2)
        assert conf is None or conf.shape == kp.shape[:2]
