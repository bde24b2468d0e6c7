"""One process and one configuration per run folder: the lock and the stored config."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_loop import _trainer
from test_pipeline import _config, _run

from unihpr.train.runs import check_run_config, config_differences, lock_run_folder

# A second process that takes the folder's lock, says so, and holds it until its
# stdin closes (or it is killed).
_HOLDER = textwrap.dedent(
    """
    import sys
    from unihpr.train.runs import lock_run_folder
    with lock_run_folder(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()
    """
)


def _holder(folder):
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout.readline() == "locked\n"
    return proc


def _try_in_another_process(folder):
    code = (
        "import sys; from unihpr.train.runs import lock_run_folder as l; l(sys.argv[1]).__enter__()"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=False
    )


def test_a_second_process_on_a_run_folder_fails_fast(tmp_path):
    holder = _holder(tmp_path / "run")
    try:
        busy = pytest.raises(BlockingIOError, match=rf"in use by process {holder.pid}")
        with busy, lock_run_folder(tmp_path / "run"):
            pass
        other = _try_in_another_process(tmp_path / "run")
        assert other.returncode != 0 and "BlockingIOError" in other.stderr
        assert f"in use by process {holder.pid}" in other.stderr
    finally:
        holder.communicate("")  # closes its stdin: it exits and releases the lock
    assert holder.returncode == 0
    with lock_run_folder(tmp_path / "run") as folder:
        assert (folder / ".lock").read_text() == f"process {os.getpid()}\n"
    assert _try_in_another_process(tmp_path / "run").returncode == 0


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = _holder(tmp_path)
    holder.kill()
    holder.wait()
    holder.stdin.close()
    holder.stdout.close()
    with lock_run_folder(tmp_path):  # its pid is still in the file; the lock is not
        assert _try_in_another_process(tmp_path).returncode != 0


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    with lock_run_folder(tmp_path), lock_run_folder(tmp_path / "."):
        pass
    with lock_run_folder(tmp_path):  # released after the outer block
        pass


def test_trainer_and_pipeline_take_the_lock(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(BlockingIOError, match="in use by process"):
            _trainer(tmp_path, steps=1).fit()
        with pytest.raises(BlockingIOError, match="in use by process"):
            _run(_config(tmp_path, steps=(1, 1, 1)))
        assert not list(tmp_path.glob("**/ckpt-*.pt")) and not (tmp_path / "config.json").exists()
    finally:
        holder.communicate("")


def test_config_differences_name_nested_fields():
    a = {"seed": 0, "stages": [{"loss": {"alpha": 1.0}, "betas": [0.9, 0.999]}], "x": 1}
    b = {"seed": 7, "stages": [{"loss": {"alpha": 0.5}, "betas": (0.9, 0.99)}], "y": 2}
    assert config_differences(a, b) == [
        "seed (0 there, 7 here)",
        "stages[0].betas[1] (0.999 there, 0.99 here)",
        "stages[0].loss.alpha (1.0 there, 0.5 here)",
        "x (1 there, '<absent>' here)",
        "y ('<absent>' there, 2 here)",
    ]
    assert config_differences(a, b, ignore=("seed", "stages", "x", "y")) == []
    assert config_differences(a, json.loads(json.dumps(a))) == []


def test_check_run_config(tmp_path):
    path = tmp_path / "run.json"
    check_run_config(path, {"seed": 0})  # a new run: nothing stored, nothing to check
    path.write_text(json.dumps({"seed": 0, "quick": True}))
    check_run_config(path, {"seed": 0, "quick": True})
    with pytest.raises(ValueError, match=r"another configuration \(run\.json\): seed .*or redo"):
        check_run_config(path, {"seed": 1, "quick": True}, hint="redo")
    path.write_text("{torn")
    with pytest.raises(ValueError, match=r"run\.json' is not valid JSON"):
        check_run_config(path, {"seed": 0})
