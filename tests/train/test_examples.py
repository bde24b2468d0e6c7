"""Tests of the example scripts' argument parsing and no-data paths."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


h36m = _load("train_h36m")


def test_h36m_parser_defaults_and_overrides(tmp_path):
    args = h36m.build_parser().parse_args(["--data-root", str(tmp_path)])
    assert args.model == "unihpr-w32" and args.keypoints == "cpn" and not args.with_3dhp
    assert args.steps is None and args.batch_size is None
    args = h36m.build_parser().parse_args(
        ["--data-root", str(tmp_path), "--steps", "10", "20", "30", "--batch-size", "8", "4", "4",
         "--keypoints", "gt", "--with-3dhp", "--output-dir", str(tmp_path / "o")]
    )  # fmt: skip
    cfg = h36m.make_config(args)
    assert [s.steps for s in cfg.stages] == [10, 20, 30]
    assert [s.batch_size for s in cfg.stages] == [8, 4, 4]
    assert cfg.output_dir == str(tmp_path / "o")
    # the paper's temperatures survive the overrides
    assert cfg.stages[0].loss.tau_init == pytest.approx(1 / 14)
    with pytest.raises(SystemExit):
        h36m.build_parser().parse_args(["--data-root", str(tmp_path), "--keypoints", "sh"])
    with pytest.raises(SystemExit):
        h36m.build_parser().parse_args([])


def test_h36m_loss_flags_reach_every_stage(tmp_path):
    args = h36m.build_parser().parse_args(
        ["--data-root", str(tmp_path), "--negatives", "all", "--backend", "torch",
         "--sampler", "swap-one", "--num-negatives", "31", "--chunk-size", "64"]
    )  # fmt: skip
    cfg = h36m.make_config(args)
    for stage in cfg.stages:
        assert (stage.loss.negatives, stage.loss.backend, stage.loss.sampler) == (
            "all",
            "torch",
            "swap-one",
        )
        assert (stage.loss.num_negatives, stage.loss.chunk_size) == (31, 64)
    defaults = h36m.make_config(h36m.build_parser().parse_args(["--data-root", str(tmp_path)]))
    assert all(s.loss.negatives == "sampled" and s.loss.backend == "auto" for s in defaults.stages)
    bad = h36m.build_parser().parse_args(["--data-root", str(tmp_path), "--chunk-size", "0"])
    with pytest.raises(ValueError, match="chunk_size"):
        h36m.make_config(bad)
    with pytest.raises(SystemExit):
        h36m.build_parser().parse_args(["--data-root", str(tmp_path), "--negatives", "some"])


def test_h36m_bad_overrides_rejected(tmp_path):
    args = h36m.build_parser().parse_args(["--data-root", str(tmp_path), "--steps", "0", "1", "1"])
    with pytest.raises(ValueError, match="steps"):
        h36m.make_config(args)


def test_h36m_no_data_lists_expected_files(tmp_path, capsys):
    rc = h36m.main(["--data-root", str(tmp_path), "--with-3dhp"])
    err = capsys.readouterr().err
    assert rc == 2
    for name in ("data_3d_h36m.npz", "data_2d_h36m_cpn_ft_h36m_dbb.npz", "h36m_images.jsonl",
                 "data_train_3dhp.npz", "3dpw"):  # fmt: skip
        assert name in err
    assert "MISSING" in err and str(tmp_path) in err


def test_h36m_partial_data_reports_what_is_found(tmp_path, capsys):
    (tmp_path / "data_3d_h36m.npz").write_bytes(b"")
    assert h36m.main(["--data-root", str(tmp_path), "--keypoints", "gt"]) == 2
    err = capsys.readouterr().err
    assert "[found  ]" in err and "data_2d_h36m_gt.npz" in err


def test_h36m_no_data_exits_fast_as_a_script(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_h36m.py"), "--data-root",
         str(tmp_path / "none")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 2 and "data_3d_h36m.npz" in proc.stderr


def test_tables_markdown_rows():
    md = h36m.tables_markdown({"lifting/mpjpe": 52.64, "retrieval/2d-3d/mpjpe": 9.2})
    assert "| UniHPR (this run) | - | 52.6 |" in md
    assert "| 2D-3D | 9.2 | - |" in md
    for t in ("Table I ", "Table II ", "Table III ", "Table IV "):
        assert t in md


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("pybullet") is None or importlib.util.find_spec("matplotlib") is None,
    reason="needs the demo extra (pybullet, matplotlib)",
)
def test_ablation_demo_runs_all_rows(tmp_path, capsys):
    ablation = _load("ablation_demo")
    out = tmp_path / "abl"
    rc = ablation.main(
        ["--output-dir", str(out), "--cache-dir", str(tmp_path / "c"), "--quick",
         "--steps", "6", "4", "6", "--batch-sizes", "16", "8", "8"]
    )  # fmt: skip
    assert rc == 0
    table = json.loads((out / "ablation.json").read_text())
    assert set(table) == {"mean_pose", "mlp", "no_align", "pair", "triplet", "triplet_r"}
    for name, row in table.items():
        for key in ("lifting_mpjpe", "lifting_mpjpe_sample"):
            assert 0 < row[key] < 5000, (name, key, row[key])
        if name != "mlp":
            assert 0 < row["image_mpjpe"] < 5000, name
    assert "steps (6, 4, 6)" in (out / "ablation.md").read_text()


def test_h36m_step1_sees_world_motion_through_virtual_cameras(tmp_path):
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    import torch
    from test_h36m import write_h36m

    from unihpr.data import H36M17

    f3, _, p3 = write_h36m(tmp_path, n=10)
    data = h36m.virtual_camera_poses(f3, ["S1", "S5"], stride=2)
    assert len(data) == 2 * 2 * 5 and data.skeleton is H36M17
    s = data[3]
    assert s["pose2d"].shape == (17, 2) and s["action"].startswith("S1/")
    torch.testing.assert_close(s["pose3d"][0], torch.zeros(3))
    # a camera is a rigid motion: the body keeps its shape (mirroring keeps distances too)
    from unihpr.data.skeletons import H36M32_TO_H36M17

    world = torch.from_numpy(p3["S1"]["Directions 1"][6][list(H36M32_TO_H36M17)]).float()
    dist = torch.cdist(world, world)
    torch.testing.assert_close(torch.cdist(s["pose3d"], s["pose3d"]).flatten().sort()[0],
                               dist.flatten().sort()[0], atol=1e-4, rtol=0)  # fmt: skip
