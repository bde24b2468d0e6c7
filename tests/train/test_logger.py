"""Tests of the JSONL metrics logger and the progress bar."""

import importlib.util
import json

import pytest
import torch

from unihpr.train.logger import MetricsLogger, TextProgress, progress_bar, read_metrics


def test_log_truncate_and_read(tmp_path):
    log = MetricsLogger(tmp_path)
    for step in range(1, 6):
        log.log("align2d3d", step, {"loss": torch.tensor(1.0 / step), "acc": step})
    log.log("finetune", 1, {"loss": float("nan")})
    log.truncate_after("align2d3d", 3)
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [(r["stage"], r["step"]) for r in rows] == [
        ("align2d3d", 1), ("align2d3d", 2), ("align2d3d", 3), ("finetune", 1),
    ]  # fmt: skip
    assert rows[1]["loss"] == 0.5 and rows[-1]["loss"] == "nan"
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl", stage="finetune")] == [1]


def test_disabled_logger_writes_nothing(tmp_path):
    log = MetricsLogger(tmp_path / "x", enabled=False, tensorboard=True)
    log.log("s", 1, {"loss": 1.0})
    log.truncate_after("s", 0)
    assert not (tmp_path / "x").exists()


def test_read_metrics_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"m.jsonl"):
        read_metrics(tmp_path / "m.jsonl")
    p = tmp_path / "metrics.jsonl"
    good = json.dumps({"stage": "s", "step": 1})
    p.write_text(good + "\n{oops\n" + good + "\n")
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(p)
    p.write_text(good + "\n" + json.dumps({"stage": "s"}) + "\n" + good + "\n")
    with pytest.raises(ValueError, match=r"line 2.*'step'"):
        read_metrics(p)
    with pytest.raises(ValueError, match="line 2"):
        MetricsLogger(tmp_path).truncate_after("s", 0)  # the same parser


@pytest.mark.parametrize(
    "tail",
    [
        '{"stage": "s", "st',
        "\x00\x00\x00\x00",
        "\ufffd\ufffdgarbage",
        "[1, 2]",
        '{"stage": "s", "step": "2"}',
    ],
)
def test_damaged_last_line_is_dropped_with_a_warning(tmp_path, tail):
    p = tmp_path / "metrics.jsonl"
    p.write_text("".join(json.dumps({"stage": "s", "step": i}) + "\n" for i in (1, 2)) + tail)
    with pytest.warns(UserWarning, match="damaged last line 3"):
        assert [r["step"] for r in read_metrics(p)] == [1, 2]
    with pytest.warns(UserWarning, match="damaged last line 3"):
        MetricsLogger(tmp_path).truncate_after("s", 1)
    assert [r["step"] for r in read_metrics(p)] == [1]  # no warning: the line is gone


@pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is not None, reason="tensorboard installed"
)
def test_tensorboard_missing_names_extra(tmp_path):
    with pytest.raises(
        ImportError, match=r"'tensorboard' extra: `pip install -e \"\.\[tensorboard\]\"`"
    ):
        MetricsLogger(tmp_path, tensorboard=True)


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard absent")
def test_tensorboard_writes_events(tmp_path):
    log = MetricsLogger(tmp_path, tensorboard=True)
    log.log("s", 1, {"loss": 1.0})
    log.close()
    assert list((tmp_path / "tensorboard").iterdir())


def test_progress_bar_only_on_tty_and_when_enabled(monkeypatch):
    bar = progress_bar(10, initial=2, desc="x")  # pytest's stderr is not a TTY
    assert isinstance(bar, TextProgress)
    bar.close()
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    bar = progress_bar(10, initial=2, desc="x")
    assert not bar.disable and bar.n == 2 and bar.total == 10
    bar.close()
    bar = progress_bar(10, enabled=False)
    assert bar.disable
    bar.close()


def test_text_progress_off_a_terminal(capsys):
    # pytest's stderr is not a TTY: one line every `every` steps, labelled, with loss and ETA
    bar = progress_bar(100, initial=0, desc="align_image (no L_triplet)", lines=3, align=10)
    assert isinstance(bar, TextProgress) and bar.every == 30
    for step in range(1, 101):
        if step % 10 == 0:
            bar.set_postfix(loss=f"{1 / step:.4f}")
        bar.update(1)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "align_image (no L_triplet): step 30/100 (30%)",
        "align_image (no L_triplet): step 60/100 (60%)",
        "align_image (no L_triplet): step 90/100 (90%)",
        "align_image (no L_triplet): step 100/100 (100%)",
    ]
    assert "loss 0.0333" in lines[0] and "ETA " in lines[0] and "elapsed " in lines[0]
    assert "loss 0.0100" in lines[-1] and "ETA" not in lines[-1]  # done: no ETA


def test_text_progress_resumed_run_and_disabled(capsys):
    bar = TextProgress(10, initial=7, desc="finetune", every=5)
    bar.update(3)  # crosses the end: one line, though 10 is also a multiple of 5
    assert capsys.readouterr().err.splitlines() == [bar.line()]
    assert bar.line().startswith("finetune: step 10/10 (100%)")
    quiet = progress_bar(10, enabled=False)
    quiet.update(10)
    quiet.close()
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="every must be >= 1"):
        TextProgress(10, every=0)
    images = TextProgress(4, desc="rendering", every=2, unit="image")
    assert images.line() == "rendering: image 0/4 (0%), elapsed 0:00:00"
