"""The CI run of `unihpr demo --quick` and the demo helpers."""

import importlib.util
import json

import pytest

from unihpr.cli import main
from unihpr.train.demo import QUICK, cosine_curve, demo_config, results_markdown

needs_demo_extra = pytest.mark.skipif(
    importlib.util.find_spec("pybullet") is None or importlib.util.find_spec("matplotlib") is None,
    reason="needs the demo extra (pybullet, matplotlib)",
)


@needs_demo_extra
@pytest.mark.slow
def test_unihpr_demo_quick(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "--quick", "--output-dir", str(out), "--cache-dir", str(tmp_path / "c")])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Lifting (2D -> 3D) MPJPE" in printed
    summary = json.loads((out / "results.json").read_text())
    res = summary["results"]
    for key in ("lifting/mpjpe", "lifting/pa_mpjpe", "image/mpjpe", "image/pa_mpjpe",
                "retrieval/2d-3d/mpjpe", "cos/mean"):  # fmt: skip
        assert key in res and res[key] == res[key]
    # millimetres of a body ~1.7 m tall: finite and below 2 m even after a short run
    assert 0 < res["lifting/mpjpe"] < 2000 and -1 <= res["cos/mean"] <= 1
    for name in ("fig4_cosine.png", "skeletons.png", "results.md", "model/config.json",
                 "model/model.safetensors", "metrics.jsonl"):  # fmt: skip
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in rows} == {"align2d3d", "align_image", "finetune"}
    from unihpr.models import UniHPR

    loaded = UniHPR.from_pretrained(out / "model")
    assert loaded.config.name == "unihpr-tiny"


def test_demo_config_uses_paper_temperatures(tmp_path):
    cfg = demo_config(QUICK, tmp_path)
    assert [s.steps for s in cfg.stages] == list(QUICK.steps)
    assert cfg.stage("align2d3d").loss.tau_init == pytest.approx(1 / 14)
    assert cfg.stage("align_image").loss.tau_min == pytest.approx(1 / 10)
    assert cfg.stage("finetune").loss.tau_min == pytest.approx(1 / 5)
    assert not demo_config(QUICK, tmp_path, use_triplet=False).stage("finetune").loss.use_triplet


def test_cosine_curve_and_table():
    rows = [
        {"step": 2, "cos/image-pose2d": 0.1, "cos/image-pose3d": 0.2, "cos/pose2d-pose3d": 0.6},
        {"step": 4, "loss": 1.0},
    ]
    assert cosine_curve(rows) == ([2], [pytest.approx(0.3)])
    md = results_markdown({"lifting/mpjpe": 123.45, "cos/mean": 0.5}, seconds=61)
    assert "| Lifting (2D -> 3D) MPJPE | 123.5 mm |" in md and "| wall time | 61 s |" in md


def test_demo_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--bogus"])
    assert main(["demo", "--threads", "0", "--output-dir", "/nonexistent/x"]) == 2
