"""The CI run of `unihpr demo --quick` and the demo helpers."""

import importlib.util
import json

import pytest

from unihpr.cli import main
from unihpr.demo.run import (
    QUICK,
    _WallClock,
    cosine_curve,
    demo_config,
    lifter_config,
    load_demo_data,
    results_markdown,
)

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
    assert "2D -> 3D MPJPE" in printed and "MLP lifter" in printed and "mean pose" in printed
    summary = json.loads((out / "results.json").read_text())
    u, m, z = summary["unihpr"], summary["mlp_lifter"], summary["mean_pose"]
    for key in ("lifting_mpjpe", "lifting_pa_mpjpe", "image_mpjpe", "image_pa_mpjpe",
                "lifting_mpjpe_sample", "retrieval_2d3d_mpjpe", "cos_mean"):  # fmt: skip
        assert key in u and u[key] == u[key], key
    for key in ("lifting_mpjpe", "lifting_pa_mpjpe", "lifting_mpjpe_sample"):
        assert 0 < m[key] < 2000, key
    assert 0 < z["mpjpe"] < 2000 and z["pa_mpjpe"] <= z["mpjpe"]
    # millimetres of a body ~1.7 m tall: finite and below 2 m even after a short run
    assert 0 < u["lifting_mpjpe"] < 2000 and -1 <= u["cos_mean"] <= 1
    for name in ("fig4_cosine.png", "skeletons.png", "results.md", "model/config.json",
                 "model/model.safetensors", "metrics.jsonl", "wall_time.json",
                 "mlp_lifter/model.safetensors"):  # fmt: skip
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in rows} == {"align2d3d", "align_image", "finetune"}
    from unihpr.evaluation import evaluate
    from unihpr.models import UniHPR

    # the saved folder is the evaluated model: reloading it gives the same numbers
    loaded = UniHPR.from_pretrained(out / "model")
    assert loaded.config.name == "unihpr-tiny"
    test = load_demo_data(QUICK, tmp_path / "c", progress=False).test
    again = evaluate(loaded, test, max_samples=200)
    assert again["lifting/mpjpe"] == pytest.approx(u["lifting_mpjpe"], rel=1e-5)
    assert again["image/mpjpe"] == pytest.approx(u["image_mpjpe"], rel=1e-5)
    # a rerun resumes everything and keeps counting the wall time of both sessions
    first = summary["seconds"]
    assert main(["demo", "--quick", "--output-dir", str(out), "--cache-dir",
                 str(tmp_path / "c"), "--no-plots", "--serial"]) == 0  # fmt: skip
    second = json.loads((out / "results.json").read_text())
    assert second["seconds"] > first
    assert second["unihpr"]["lifting_mpjpe"] == pytest.approx(u["lifting_mpjpe"], rel=1e-6)


def test_demo_config_uses_paper_temperatures_and_the_recipe(tmp_path):
    cfg = demo_config(QUICK, tmp_path)
    assert [s.steps for s in cfg.stages] == list(QUICK.steps)
    assert cfg.stage("align2d3d").loss.tau_init == pytest.approx(1 / 14)
    assert cfg.stage("align_image").loss.tau_min == pytest.approx(1 / 10)
    assert cfg.stage("finetune").loss.tau_min == pytest.approx(1 / 5)
    assert cfg.stage("finetune").loss_balance == QUICK.loss_balance
    assert not demo_config(QUICK, tmp_path, use_triplet=False).stage("finetune").loss.use_triplet


def test_lifter_sees_as_many_pairs_as_unihpr_pose_path():
    cfg = lifter_config(QUICK)
    pairs = QUICK.steps[0] * QUICK.batch_sizes[0] + 2 * QUICK.steps[2] * QUICK.batch_sizes[2]
    assert abs(cfg.steps * cfg.batch_size - pairs) < cfg.batch_size


def test_wall_clock_adds_up_sessions(tmp_path):
    first = _WallClock(tmp_path).save()
    assert json.loads((tmp_path / "wall_time.json").read_text())["seconds"] == first
    assert _WallClock(tmp_path).save() >= first
    (tmp_path / "wall_time.json").write_text("{torn")  # a damaged file restarts the count
    assert _WallClock(tmp_path).save() < first + 60


def test_cosine_curve_and_table():
    rows = [
        {"step": 2, "cos/image-pose2d": 0.1, "cos/image-pose3d": 0.2, "cos/pose2d-pose3d": 0.6},
        {"step": 4, "loss": 1.0},
    ]
    assert cosine_curve(rows) == ([2], [pytest.approx(0.3)])
    summary = {
        "unihpr": {"lifting_mpjpe": 120.0, "lifting_mpjpe_sample": 130.0, "image_mpjpe": 200.0,
                   "image_mpjpe_sample": 210.0, "cos_mean": 0.5},
        "mlp_lifter": {"lifting_mpjpe": 150.0, "lifting_mpjpe_sample": 160.0},
        "mean_pose": {"mpjpe": 300.0, "mpjpe_sample": 310.0},
        "seconds": 61,
    }  # fmt: skip
    md = results_markdown(summary)
    assert "| 2D -> 3D MPJPE | 120.0 / 130.0 | 150.0 / 160.0 | 300.0 / 310.0 |" in md
    assert "| wall time of the run (all sessions) | 61 s | | |" in md
    assert "0.80x the MLP lifter's MPJPE (better than it)" in md and "33% below" in md


def test_run_demo_rejects_a_blank_folder_and_a_bad_seed_before_writing(tmp_path, monkeypatch):
    from unihpr.demo.run import run_demo

    monkeypatch.chdir(tmp_path)
    for blank in ("", "  "):
        with pytest.raises(ValueError, match="output_dir must name a folder"):
            run_demo(blank)
    with pytest.raises(ValueError, match="seed"):
        run_demo(tmp_path / "run", seed=-1)
    with pytest.raises(TypeError, match="seed"):
        run_demo(tmp_path / "run", seed=1.5)
    assert list(tmp_path.iterdir()) == []
