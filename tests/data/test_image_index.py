import json
import re

import numpy as np
import pytest

from unihpr.cli import main as cli_main
from unihpr.data.cameras import project, world_to_camera
from unihpr.data.h36m_cameras import CAMERA_IDS, h36m_camera
from unihpr.data.image_index import (
    ImageIndexDataset,
    build_h36m_image_index,
    read_image_index,
)
from unihpr.data.skeletons import H36M32_TO_H36M17

PIL = pytest.importorskip("PIL.Image")


def write_h36m_with_frames(tmp_path, n=4):
    rng = np.random.default_rng(0)
    pos = (rng.normal(scale=0.2, size=(n, 32, 3)) + np.array([0.0, 0.0, 0.9])).astype(np.float32)
    p3 = {"S9": {"Walking 1": pos}}
    cams, uv0 = [], None
    for ci in range(4):
        cam = h36m_camera("S9", ci)
        xyz = world_to_camera(pos[:, list(H36M32_TO_H36M17)], cam.rotation, cam.position)
        uv = project(xyz, cam.focal_length, cam.center, cam.radial, cam.tangential)
        cams.append(uv.astype(np.float32))
        uv0 = uv if ci == 0 else uv0
    np.savez(tmp_path / "d3.npz", positions_3d=p3)
    np.savez(tmp_path / "d2.npz", positions_2d={"S9": {"Walking 1": cams}},
             metadata={"num_joints": 17})  # fmt: skip
    root = tmp_path / "frames"
    folder = root / "S9" / f"Walking 1.{CAMERA_IDS[0]}"
    folder.mkdir(parents=True)
    for f in range(n - 1):  # the last frame is "missing"
        img = np.zeros((1002, 1000, 3), dtype=np.uint8)
        x, y = np.floor(uv0[f, 0]).astype(int)  # mark the pelvis
        img[y - 2 : y + 3, x - 2 : x + 3] = 255
        PIL.fromarray(img).save(folder / f"{f + 1:06d}.png")
    return root, uv0


def test_build_and_load_crops(tmp_path):
    root, uv0 = write_h36m_with_frames(tmp_path)
    out = root / "index.jsonl"
    stats = build_h36m_image_index(
        root, tmp_path / "d3.npz", tmp_path / "d2.npz", out, subjects=["S9"],
        pattern="{subject}/{action}.{camera}/{number:06d}.png",
    )  # fmt: skip
    assert stats == {"written": 3, "missing": 4 * 4 - 3, "nonfinite": 0}
    recs = read_image_index(out)
    assert recs[1]["frame"] == 1 and recs[1]["action"] == "Walking"
    np.testing.assert_allclose(recs[1]["pose2d"][0], uv0[1, 0], atol=1e-3)
    ds = ImageIndexDataset(out, image_size=(64, 48))
    s = ds[1]
    assert s["image"].shape == (3, 64, 48) and s["pose3d"].shape == (17, 3)
    # the marked pelvis pixel is where the transformed 2D pelvis says
    x, y = s["pose2d"][0].numpy()
    img = s["image"].numpy()
    assert img[:, int(y), int(x)].mean() > 0.2
    assert img.mean() < 0.1
    # the crop is the keypoints' box grown by scale=1.3 to the output aspect ratio:
    # the keypoints span 1/1.3 of the crop along its tighter side, centred
    p = s["pose2d"].numpy()
    lo, hi = p.min(0), p.max(0)
    span = (hi - lo) / [48, 64]
    assert np.isclose(span.max(), 1 / 1.3, atol=1e-4) and np.all(span <= 1 / 1.3 + 1e-4)
    np.testing.assert_allclose((lo + hi) / 2, [24, 32], atol=1e-3)
    # CLI
    assert cli_main(["build-image-index", str(root), str(tmp_path / "d3.npz"), str(tmp_path / "d2.npz"),
                 str(tmp_path / "i2.jsonl"), "--subjects", "S9", "--pattern",
                 "{subject}/{action}.{camera}/{number:06d}.png"]) == 0  # fmt: skip
    assert len(read_image_index(tmp_path / "i2.jsonl")) == 3


def test_malformed_index(tmp_path):
    f = tmp_path / "bad.jsonl"
    rec = {"image": "a.png", "pose2d": [[0, 0]] * 17,
           "pose3d": [[0, 0, 0]] * 16, "subject": "S1", "action": "A", "frame": 0}  # fmt: skip
    f.write_text(json.dumps(rec) + "\n")
    with pytest.raises(
        ValueError, match=r"bad\.jsonl:1: pose2d has shape \(17, 2\), expected \(16, 2\)"
    ):
        read_image_index(f)
    f.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: not valid JSON"):
        read_image_index(f)
    del rec["frame"]
    f.write_text(json.dumps(rec) + "\n")
    with pytest.raises(ValueError, match=r"missing fields \['frame'\]"):
        read_image_index(f)
    with pytest.raises(FileNotFoundError, match="frames_root"):
        build_h36m_image_index(tmp_path / "nope", f, f, tmp_path / "o.jsonl")


@pytest.mark.parametrize("bad", ["NaN", "Infinity", '"x"'])
def test_index_with_nonfinite_or_non_numeric_values(tmp_path, bad):
    f = tmp_path / "bad.jsonl"
    rec = {"image": "a.png", "pose2d": [[0, 0]] * 2,
           "pose3d": [[0, 0, 0]] * 2, "subject": "S1", "action": "A", "frame": 0}  # fmt: skip
    line = json.dumps(rec)
    f.write_text(line + "\n" + line.replace('"pose2d": [[0,', f'"pose2d": [[{bad},') + "\n")
    with pytest.raises(
        ValueError, match=r"bad\.jsonl:2: pose2d (holds NaN or inf|must hold numbers)"
    ):
        read_image_index(f)
    f.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: expected a JSON object"):
        read_image_index(f)


def test_builder_and_cli_reject_or_mask_nonfinite_poses(tmp_path, capsys):
    root, _ = write_h36m_with_frames(tmp_path)
    p3 = np.load(tmp_path / "d3.npz", allow_pickle=True)["positions_3d"].item()
    p3["S9"]["Walking 1"][1, 0, 2] = np.nan
    np.savez(tmp_path / "d3.npz", positions_3d=p3)
    args = [str(root), str(tmp_path / "d3.npz"), str(tmp_path / "d2.npz"), str(tmp_path / "i.jsonl"),
            "--subjects", "S9", "--pattern", "{subject}/{action}.{camera}/{number:06d}.png"]  # fmt: skip
    assert cli_main(["build-image-index", *args]) == 2  # the message: stderr, one line
    err = capsys.readouterr().err
    assert re.search(r"d3\.npz: 4 of 16 samples have NaN or inf in pose3d", err), err
    with pytest.warns(UserWarning, match="left out 4 of 16"):
        assert cli_main(["build-image-index", *args, "--mask-nonfinite"]) == 0
    recs = read_image_index(tmp_path / "i.jsonl")
    assert [r["frame"] for r in recs] == [0, 2]  # frame 1 (NaN) left out, frame 3 has no image


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("[" * 100_000 + "]" * 100_000, r"deep\.jsonl:2: not valid JSON \(it nests too deeply\)"),
        ('{"image": "' + "x" * (2 << 20) + '"}', r"deep\.jsonl:2: the line is longer than 1 MiB"),
        ("\udcff", r"deep\.jsonl:2: not valid JSON"),
    ],
)
def test_hostile_lines_name_the_file_and_line(tmp_path, line, match):
    f = tmp_path / "deep.jsonl"
    rec = {"image": "a.png", "pose2d": [[0, 0]] * 2, "pose3d": [[0, 0, 0]] * 2, "subject": "S1",
           "action": "A", "frame": 0}  # fmt: skip
    f.write_bytes((json.dumps(rec) + "\n" + line + "\n").encode("utf-8", "surrogateescape"))
    with pytest.raises(ValueError, match=match):
        read_image_index(f)
