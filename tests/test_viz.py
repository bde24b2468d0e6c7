import numpy as np
import pytest

pytest.importorskip("matplotlib")

from unihpr.data.skeletons import H36M17
from unihpr.viz import plot_pose_comparison


def test_png_written_with_content(tmp_path):
    rng = np.random.default_rng(0)
    true3d = rng.normal(scale=0.3, size=(17, 3))
    true2d = rng.uniform(10, 50, size=(17, 2))
    out = plot_pose_comparison(
        tmp_path / "fig.png", H36M17, pred3d=true3d + 0.05, true3d=true3d,
        pred2d=true2d + 1, true2d=true2d, image=np.full((3, 64, 64), 0.5), title="x",
    )  # fmt: skip
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    img = np.asarray(Image.open(out).convert("RGB")).astype(float)
    assert img.shape[1] > 3 * img.shape[0]  # four panels side by side
    # coloured skeleton lines: a fair number of pixels far from white/grey
    sat = img.max(-1) - img.min(-1)
    assert (sat > 80).sum() > 200
    blank = plot_pose_comparison(tmp_path / "blank.png", "h36m17", true3d=np.zeros((17, 3)))
    assert blank.is_file()


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        plot_pose_comparison(tmp_path / "a.png", "h36m17")
    with pytest.raises(ValueError, match=r"\(17, 3\)"):
        plot_pose_comparison(tmp_path / "a.png", "h36m17", true3d=np.zeros((15, 3)))


def test_several_samples_overlaid_with_images_and_labels(tmp_path):
    rng = np.random.default_rng(1)
    true3d = rng.normal(scale=0.3, size=(4, 17, 3))
    true2d = rng.uniform(10, 50, size=(4, 17, 2))
    images = rng.uniform(size=(4, 3, 64, 64))
    from PIL import Image

    for view in ("front", "3d"):
        out = plot_pose_comparison(
            tmp_path / f"{view}.png", H36M17, pred3d=true3d + 0.05, true3d=true3d,
            true2d=true2d, image=images, overlay=True, view=view,
            labels=[f"clip {i}" for i in range(4)],
        )  # fmt: skip
        img = np.asarray(Image.open(out).convert("RGB")).astype(float)
        # four columns (samples), two rows (input + 2D, 3D)
        assert 1.2 * img.shape[0] < img.shape[1] < 3.0 * img.shape[0]
        red = (img[..., 0] > 150) & (img[..., 1] < 100) & (img[..., 2] < 100)
        assert red.sum() > 100  # the predictions are drawn in red
    # an image without 2D poses still gets its own "input" panel
    only = plot_pose_comparison(tmp_path / "in.png", "h36m17", pred3d=true3d[0],
                                true3d=true3d[0], image=images[0], overlay=True)  # fmt: skip
    assert only.is_file()


def test_bad_batched_inputs(tmp_path):
    z = np.zeros((3, 17, 3))
    with pytest.raises(ValueError, match="same number of samples"):
        plot_pose_comparison(tmp_path / "a.png", "h36m17", pred3d=z, true3d=z[:2])
    with pytest.raises(ValueError, match="labels"):
        plot_pose_comparison(tmp_path / "a.png", "h36m17", true3d=z, labels=["a"])
    with pytest.raises(ValueError, match="view"):
        plot_pose_comparison(tmp_path / "a.png", "h36m17", true3d=z, view="top")
    with pytest.raises(ValueError, match="image"):
        plot_pose_comparison(tmp_path / "a.png", "h36m17", true3d=z, image=np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="NaN"):
        plot_pose_comparison(tmp_path / "a.png", "h36m17", true3d=np.full((17, 3), np.nan))
    with pytest.raises(ValueError, match="N <= 16"):
        plot_pose_comparison(tmp_path / "a.png", "h36m17", true3d=np.zeros((17, 17, 3)))


def test_nan_joints_are_missing_and_inf_is_an_error(tmp_path):
    rng = np.random.default_rng(2)
    true3d = rng.normal(scale=0.3, size=(2, 17, 3))
    pred3d = true3d + 0.1
    pred3d[0, 3] = np.nan  # a missing joint: not drawn, not in the error
    pose2d = rng.uniform(10, 50, size=(2, 17, 2))
    pose2d[1, :4] = np.nan
    out = plot_pose_comparison(tmp_path / "nan.png", "h36m17", pred3d=pred3d, true3d=true3d,
                               true2d=pose2d, labels=["a", "b"])  # fmt: skip
    assert out.is_file()
    with pytest.raises(ValueError, match="infinite"):
        plot_pose_comparison(tmp_path / "inf.png", "h36m17", true2d=np.full((17, 2), np.inf))
