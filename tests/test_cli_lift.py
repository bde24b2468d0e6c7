"""`unihpr lift KEYPOINTS --layout L -o OUT`: files in, files out, one-line errors (exit 2)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from unihpr.cli import main
from unihpr.data.skeletons import HUMANOID15
from unihpr.inference import lift
from unihpr.models import create_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    return str(create_model("unihpr-tiny").save_pretrained(tmp_path_factory.mktemp("m") / "tiny"))


def _coco(n: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Body-like COCO-17 keypoints (n, 17, 2) in pixels and scores (n, 17)."""
    rng = np.random.default_rng(seed)
    rest = np.array([[0, -60], [-3, -63], [3, -63], [-6, -60], [6, -60], [18, -45],
                     [-18, -45], [24, -20], [-24, -20], [28, 5], [-28, 5], [9, 0],
                     [-9, 0], [10, 40], [-10, 40], [11, 80], [-11, 80]], dtype=np.float64)  # fmt: skip
    kp = rest * 2.5 + rng.normal(scale=5.0, size=(n, 17, 2)) + [320.0, 240.0]
    return kp, rng.uniform(0.5, 1.0, size=(n, 17))


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_npz_in_npz_out_matches_lift(tmp_path, capsys, model_dir):
    kp, conf = _coco()
    conf[2] = 0.0  # a frame without a detection
    src = tmp_path / "clip.npz"
    np.savez(src, keypoints=kp, scores=conf)
    code, out, err = _run(capsys, "lift", str(src), "--layout", "coco17", "--model", model_dir)
    assert code == 0 and err == ""
    assert "6 frames, 5 lifted, 1 filled from their neighbours, 0 without any pose" in out
    with np.load(tmp_path / "clip_3d.npz", allow_pickle=False) as z:
        assert z["pose3d"].shape == (6, 15, 3) and z["pose3d"].dtype == np.float32
        np.testing.assert_array_equal(z["valid"], [1, 1, 0, 1, 1, 1])
        assert z["joint_names"].tolist() == list(HUMANOID15.joint_names)
        # same process, same code path: float32 output of the same computation
        np.testing.assert_allclose(z["pose3d"], lift(kp, "coco17", conf, model_dir), atol=1e-6)


def test_json_and_csv_inputs_json_output(tmp_path, capsys, model_dir):
    kp, conf = _coco(4, seed=1)
    frames = [{"keypoints": np.c_[kp[t], conf[t]].ravel().tolist()} for t in range(4)]
    frames[3] = {"keypoints": []}
    (tmp_path / "c.json").write_text(json.dumps(frames))
    out = tmp_path / "c_out.json"
    argv = ("lift", str(tmp_path / "c.json"), "--layout", "coco17", "--model", model_dir)
    code, _, err = _run(capsys, *argv, "-o", str(out))
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert doc["valid"] == [True, True, True, False] and len(doc["pose3d"]) == 4
    np.testing.assert_allclose(doc["pose3d"][3], doc["pose3d"][2])  # held at the end
    rows = [",".join(map(str, np.c_[kp[t], conf[t]].ravel())) for t in range(4)]
    (tmp_path / "c.csv").write_text("\n".join(rows))
    code, _, err = _run(capsys, "lift", str(tmp_path / "c.csv"), "--layout", "coco17",
                        "--model", model_dir, "-o", str(tmp_path / "csv.npz"))  # fmt: skip
    assert code == 0, err
    with np.load(tmp_path / "csv.npz") as z:
        np.testing.assert_allclose(z["pose3d"][:3], np.asarray(doc["pose3d"][:3]), atol=1e-4)


def test_nothing_detected_is_all_nan_not_an_error(tmp_path, capsys, model_dir):
    src = tmp_path / "empty.npz"
    np.savez(src, keypoints=np.full((3, 17, 2), np.nan))
    code, out, _ = _run(capsys, "lift", str(src), "--layout", "coco17", "--model", model_dir,
                        "-o", str(tmp_path / "e.json"))  # fmt: skip
    assert code == 0 and "0 lifted, 0 filled from their neighbours, 3 without any pose" in out
    assert json.loads((tmp_path / "e.json").read_text())["pose3d"] == [None, None, None]


def test_image_size_scales_normalised_coordinates(tmp_path, capsys, model_dir):
    kp, conf = _coco(3, seed=2)
    np.savez(tmp_path / "px.npz", keypoints=kp, confidence=conf)
    np.savez(tmp_path / "n.npz", keypoints=kp / [1280.0, 720.0], confidence=conf)
    base = ("--layout", "coco17", "--model", model_dir)
    assert _run(capsys, "lift", str(tmp_path / "px.npz"), *base)[0] == 0
    assert (
        _run(capsys, "lift", str(tmp_path / "n.npz"), *base, "--image-size", "1280", "720")[0] == 0
    )
    with np.load(tmp_path / "px_3d.npz") as a, np.load(tmp_path / "n_3d.npz") as b:
        # x / 1280 * 1280 is exact to the last bit or two: lifting sees the same pose
        np.testing.assert_allclose(a["pose3d"], b["pose3d"], atol=1e-5)


@pytest.mark.parametrize(
    ("setup", "extra", "match"),
    [
        ("missing", (), r"missing\.npz: no such file"),
        ("garbage", (), r"bad\.npz: not a readable npz file"),
        ("wrong_j", (), r"bad\.npz: 17 keypoints per frame, but layout 'mediapipe33' has 33"),
        ("ok", ("-o", "out.txt"), r"out\.txt: the output must be a \.npz or \.json file"),
        ("ok", ("--device", "tpu9"), r"lift: device='tpu9' names no device"),
        ("ok", ("--device", "meta"), "holds no data"),
        ("ok", ("--image-size", "0", "720"), r"--image-size W must be a finite number > 0"),
        ("ok", ("--confidence-threshold", "nan"), "confidence_threshold must be a finite number"),
        ("ok", ("--min-visible", "1"), "min_visible must be an int >= 2"),
        ("ok", ("--model", "no/such/folder"), "is neither an existing folder"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys, monkeypatch, setup, extra, match):
    monkeypatch.chdir(tmp_path)
    src = tmp_path / ("missing.npz" if setup == "missing" else "bad.npz")
    if setup == "garbage":
        src.write_bytes(b"\x00\x01not a zip")
    elif setup in ("wrong_j", "ok"):
        np.savez(src, keypoints=_coco(2)[0])
    layout = "mediapipe33" if setup == "wrong_j" else "coco17"
    code, out, err = _run(capsys, "lift", str(src), "--layout", layout, *extra)
    assert code == 2 and out == ""
    assert err.startswith("unihpr lift: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err

    assert re.search(match, err), err


def test_progress_bar_only_when_asked_or_long_on_a_terminal(tmp_path, capsys, model_dir):
    np.savez(tmp_path / "k.npz", keypoints=_coco(3)[0])
    base = ("lift", str(tmp_path / "k.npz"), "--layout", "coco17", "--model", model_dir)
    assert "lift: 100%" in _run(capsys, *base, "--progress", "always")[2]
    assert _run(capsys, *base)[2] == ""  # auto: short input and stderr is not a terminal
    assert _run(capsys, *base, "--progress", "never")[2] == ""


def test_layout_must_be_known(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["lift", "x.npz", "--layout", "openpose25"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'openpose25'" in capsys.readouterr().err
