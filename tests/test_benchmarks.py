"""Smoke tests: every benchmark script runs at toy sizes and writes its JSON.

They check that the scripts work, not how fast anything is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "bench_losses": ["--batch-sizes", "16", "--dim", "8", "--eigen-batch", "16", "--svd-count",
                     "64", "--repeat", "1", "--threads", "1"],
    "bench_exact": ["--sizes", "8", "--dim", "8", "--repeat", "1"],
    "bench_models": ["--models", "unihpr-tiny", "--batch", "1", "--repeats", "1"],
    "bench_train": ["--models", "unihpr-tiny", "--steps", "1"],
    "bench_lift": ["--frames", "40", "--repeat", "1"],
    "bench_lifting": ["--quick", "--seeds", "0", "--jobs", "1", "--work-dir", "{tmp}/runs"],
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_script_runs(script, tmp_path):
    out = tmp_path / "out.json"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / f"{script}.py"),
        *(a.replace("{tmp}", str(tmp_path)) for a in CASES[script]),
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    payload = json.loads(out.read_text())
    assert payload, "empty JSON"
    assert "|" in proc.stdout or "-" in proc.stdout  # a printed table


def _gpu_check(*args):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_gpu_check_without_cuda_exits_at_once_with_a_message():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible")
    proc = _gpu_check("--out", "/nonexistent/never-written.json")
    assert proc.returncode == 2
    assert "no CUDA device is visible" in proc.stderr and "--device cpu --tiny" in proc.stderr
    assert proc.stdout == ""
    proc = _gpu_check("--device", "cpu")  # the CPU is for --tiny only
    assert proc.returncode == 2 and "add --tiny" in proc.stderr


@pytest.mark.slow
def test_gpu_check_runs_every_section_at_toy_sizes_on_the_cpu(tmp_path):
    """The script's own logic, end to end: sections, targets, JSON (numbers meaningless)."""
    import importlib.util

    out = tmp_path / "gpu_check.json"
    proc = _gpu_check("--device", "cpu", "--tiny", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    sections = report["sections"]
    assert report["mode"].startswith("tiny") and not any("failed" in n for n in report["notes"])
    for name in ("exact_speed", "sampled_speed", "host_syncs", "train_steps"):
        assert sections[name], name
    if importlib.util.find_spec("triton") is not None:
        worst = [r for r in sections["exact_correctness"] if r["quantity"] == "all (worst)"]
        assert len(worst) == 2 and all(r["pass (<= 1e-3)"] for r in worst)
        assert {r["backend"] for r in sections["exact_speed"]} >= {"triton", "torch"}
    # the loss step itself must not read anything on the host
    loss_rows = [r for r in sections["host_syncs"] if r["what"].startswith("ContrastiveLoss")]
    assert len(loss_rows) == 2 and all(r["syncs"] == 0 for r in loss_rows)
    assert {r["stage"] for r in sections["train_steps"]} == {"align2d3d", "finetune"}
    assert all(t["pass"] == "n/a (tiny)" for t in report["targets"])
    assert "== targets" in proc.stdout


def test_lift_table_rows_state_their_budgets():
    import bench_lifting as bl

    keys = [r[0] for r in bl.LIFT_ROWS]
    assert len(keys) == len(set(keys))
    rows = dict(zip(keys, bl.LIFT_ROWS))
    for row in bl.LIFT_ROWS:
        args = bl.lift_args(row, 3, "/w", quick=False)
        assert int(args[args.index("--steps") + 1]) == bl.LIFT_STEPS[False] * max(row[2], 1)
    # a second stage counts the steps of the model it starts from
    assert bl.budget_steps(rows["two-stage"]) == 2 and bl.budget_steps(rows["default"]) == 7
    init = bl.lift_args(rows["default"], 3, "/w", False)
    assert init[init.index("--init") + 1] == "/w/models/conv5-clean50/seed3"
    # the two-stage rows and lift's default have an MLP row of the same budget
    mlp = {bl.budget_steps(r) for r in bl.LIFT_ROWS if "mlp" in r[3]}
    assert {bl.budget_steps(rows[k]) for k in ("two-stage", "default")} <= mlp


@pytest.mark.slow
def test_lift_table_quick_has_every_row(tmp_path):
    import bench_lifting as bl

    out = tmp_path / "lift.json"
    argv = ["--table", "lift", "--quick", "--seeds", "0", "1", "--jobs", "2",
            "--work-dir", str(tmp_path / "runs"), "--out", str(out)]  # fmt: skip
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_lifting.py"), *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert list(rows) == [r[0] for r in bl.LIFT_ROWS]
    assert rows["mean"]["seeds"] == 1 and rows["mlp"]["seeds"] == 2
    assert rows["mlp"]["vs_mlp"] == 1.0 and rows["mlp-2x"]["vs_mlp"] == 1.0
    assert rows["single-5x+convention"]["vs_mlp"] is None  # no MLP row of that budget
    assert rows["default"]["budget_frames"] == 7 * rows["single"]["budget_frames"]
    assert rows["default"]["vs_mlp"] == pytest.approx(
        rows["default"]["clean_mpjpe_clip"]["mean"] / rows["mlp-7x"]["clean_mpjpe_clip"]["mean"]
    )
    for row in rows.values():
        assert 10 < row["clean_mpjpe_clip"]["mean"] < 2000  # mm: a pose, not a unit slip
    assert (tmp_path / "lift.md").read_text().count("\n|") == len(rows) + 2  # header, rule, rows
