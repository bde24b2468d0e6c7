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
                     "64", "--repeat", "1", "--no-compile"],
    "bench_exact": ["--sizes", "8", "--dim", "8", "--repeat", "1"],
    "bench_models": ["--models", "unihpr-tiny", "--batch", "1", "--repeats", "1"],
    "bench_train": ["--models", "unihpr-tiny", "--steps", "1"],
    "bench_lifting": ["--quick", "--seeds", "0", "--jobs", "1", "--work-dir", "{tmp}/runs"],
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_script_runs(script, tmp_path):
    out = tmp_path / f"{script}.json"
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
