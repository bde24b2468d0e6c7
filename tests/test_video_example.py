"""examples/video_to_3d.py without a detector: its statistics and its figure."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from unihpr.data import HUMANOID15

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location(
        "video_to_3d", ROOT / "examples" / "video_to_3d.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # mediapipe and cv2 are imported only to detect
    return module


def _turning_body(t: int) -> np.ndarray:
    """A rigid 15-joint body turning at a constant rate: bones constant, acceleration known."""
    rng = np.random.default_rng(0)
    body = rng.normal(scale=0.3, size=(15, 3))
    body -= body[HUMANOID15.root]
    a = 0.1 * np.arange(t)
    rot = np.zeros((t, 3, 3))
    rot[:, 0, 0] = rot[:, 2, 2] = np.cos(a)
    rot[:, 0, 2], rot[:, 2, 0], rot[:, 1, 1] = np.sin(a), -np.sin(a), 1.0
    return np.einsum("tij,nj->tni", rot, body)


def test_motion_stats_float64_reference(example):
    pose = _turning_body(40)
    pose[7] = np.nan  # a frame without a pose: 3 acceleration triples fewer
    stats = example.motion_stats(pose, fps=30.0)
    assert stats["frames"] == pytest.approx(39 / 40, abs=1e-12)
    assert stats["bone_cv_pct"] == pytest.approx(0.0, abs=1e-9)  # rigid
    # uniform rotation by 0.1 rad per frame: |second difference| = 2 r (1 - cos 0.1) per joint
    radius = np.linalg.norm(pose[0][:, [0, 2]], axis=-1)
    expected = 1000 * np.mean(2 * radius * (1 - np.cos(0.1))) * 30.0**2
    assert stats["accel_mm_s2"] == pytest.approx(expected, rel=1e-9)
    stretched = pose.copy()
    stretched[::2] *= 1.1  # bones change length every other frame
    assert example.motion_stats(stretched, 30.0)["bone_cv_pct"] > 4.0


def test_figure_is_written(example, tmp_path):
    pytest.importorskip("matplotlib")
    t = 12
    rng = np.random.default_rng(1)
    kp = rng.uniform(200, 600, size=(t, 33, 2))
    kp[5] = np.nan
    det = {"keypoints": kp, "confidence": np.where(np.isnan(kp[..., 0]), 0.0, 0.9),
           "thumbs": rng.integers(0, 255, size=(t, 200, 200, 3), dtype=np.uint8),
           "fps": np.float64(30.0)}  # fmt: skip
    valid = np.ones(t, dtype=bool)
    valid[5] = False
    example.figure(tmp_path / "f.png", det, _turning_body(t), valid, [1, 5, 9])
    assert (tmp_path / "f.png").stat().st_size > 10_000
