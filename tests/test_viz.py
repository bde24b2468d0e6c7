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
