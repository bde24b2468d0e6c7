"""The ``unihpr`` command: subcommands, help for every argument, module entry points."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unihpr.cli import build_parser, main


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_subcommands():
    assert sorted(_subparsers(build_parser())) == ["build-image-index", "demo", "lift"]


@pytest.mark.parametrize("command", [None, "demo", "build-image-index", "lift"])
def test_every_argument_has_help(command):
    parser = build_parser()
    if command is not None:
        parser = _subparsers(parser)[command]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        assert action.help and action.help != argparse.SUPPRESS, (command, action.dest)


def test_unknown_subcommand_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench-losses"])
    assert exc.value.code == 2
    assert "invalid choice: 'bench-losses'" in capsys.readouterr().err


def test_no_subcommand_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "build-image-index" in out


def test_version(capsys):
    import unihpr

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == unihpr.__version__


def test_build_image_index_parses_like_the_module_entry_point():
    from unihpr.data.image_index import add_arguments

    argv = ["F", "d3.npz", "d2.npz", "o.jsonl", "--stride", "50", "--subjects", "S9", "--strict"]
    via_cli = vars(build_parser().parse_args(["build-image-index", *argv]))
    via_module = vars(add_arguments(argparse.ArgumentParser()).parse_args(argv))
    for key in ("command", "run", "version"):
        via_cli.pop(key)
    assert via_cli == via_module


def test_build_image_index_reports_a_missing_frames_folder(tmp_path, capsys):
    assert main(["build-image-index", str(tmp_path / "nope"), "a.npz", "b.npz", "o.jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unihpr build-image-index: error: ") and "frames_root" in err
    assert err.count("\n") == 1


def _demo_usage_error(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(["demo", *argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1, err
    # argparse reports unknown options from the top-level parser
    assert err.startswith(("unihpr demo: error: argument ", "unihpr: error: ")), err
    assert err.endswith(" --help)\n")
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--output-dir", ""], "--output-dir: must name a folder, got ''"),
        (["--output-dir", "  "], "--output-dir: must name a folder, got '  '"),
        (["--output-dir", "{file}"], "--output-dir: '{file}' is a file, not a folder"),
        (["--output-dir", "{file}/sub/run"], "--output-dir: '{file}' is a file, not a folder"),
        (["--cache-dir", "{file}"], "--cache-dir: '{file}' is a file, not a folder"),
        (["--threads", "99999999999999999999"], "--threads: must be an integer from 1 to 1024"),
        (["--threads", "0"], "--threads: must be an integer from 1 to 1024, got '0'"),
        (["--threads", "two"], "--threads: must be an integer from 1 to 1024, got 'two'"),
        (["--seed", "-1"], "--seed: must be an integer from 0 to 4294967295"),
        (["--seed", str(2**32)], "--seed: must be an integer from 0 to 4294967295"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_demo_argument_errors_are_one_line(tmp_path, capsys, argv, message):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    argv = [a.replace("{file}", str(afile)) for a in argv]
    assert message.replace("{file}", str(afile)) in _demo_usage_error(capsys, *argv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing was written


def test_demo_errors_in_a_fresh_process_have_no_traceback(tmp_path):
    # run from an empty folder (where --output-dir "" would write), importing this checkout
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for argv in (["--output-dir", ""], ["--threads", "99999999999999999999"]):
        proc = subprocess.run(
            [sys.executable, "-m", "unihpr.cli", "demo", *argv],
            capture_output=True, text=True, check=False, cwd=tmp_path, env=env,
        )  # fmt: skip
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_demo_refuses_to_resume_another_run(tmp_path, capsys, monkeypatch):
    import unihpr.demo.run as demo

    monkeypatch.setattr(demo, "_run", lambda *a: pytest.fail("a refused run must not train"))
    out = tmp_path / "run"
    out.mkdir()
    stored = {"quick": True, "seed": 0, "settings": dataclasses.asdict(demo.QUICK)}
    (out / "demo_config.json").write_text(json.dumps(stored))
    assert main(["demo", "--quick", "--seed", "7", "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unihpr demo: error: ") and err.count("\n") == 1
    assert "seed (0 there, 7 here)" in err and "--force" in err
    assert main(["demo", "--output-dir", str(out)]) == 2  # the full settings, not --quick
    err = capsys.readouterr().err
    assert (
        "quick (True there, False here)" in err and "settings.steps[0] (40 there, 1200 here)" in err
    )
    assert json.loads((out / "demo_config.json").read_text()) == json.loads(json.dumps(stored))


def test_demo_force_starts_over_and_deletes_only_the_demo_outputs(tmp_path, monkeypatch):
    import unihpr.demo.run as demo

    out = tmp_path / "run"
    for name in ("align2d3d", "mlp_lifter", "model"):
        (out / name).mkdir(parents=True)
        (out / name / "ckpt-00000010.pt").write_bytes(b"old")
    for name in ("metrics.jsonl", "results.json", "wall_time.json", "notes.txt"):
        (out / name).write_text("old")
    (out / "demo_config.json").write_text(json.dumps({"quick": True, "seed": 0}))
    seen = []
    monkeypatch.setattr(demo, "_run", lambda out, *a: seen.append(sorted(os.listdir(out))) or {})
    demo.run_demo(out, quick=True, seed=7, force=True)
    assert seen == [[".lock", "demo_config.json", "notes.txt"]]  # the user's file is kept
    assert json.loads((out / "demo_config.json").read_text())["seed"] == 7


def test_demo_folder_in_use_by_another_process(tmp_path, capsys, monkeypatch):
    sys.path.insert(0, str(Path(__file__).parent / "train"))
    from test_runs import _holder

    import unihpr.demo.run as demo

    monkeypatch.setattr(demo, "_run", lambda *a: pytest.fail("a second process must not train"))
    holder = _holder(tmp_path)
    try:
        assert main(["demo", "--quick", "--output-dir", str(tmp_path)]) == 2
    finally:
        holder.communicate("")
    err = capsys.readouterr().err
    assert f"is in use by process {holder.pid}" in err and err.count("\n") == 1


def test_module_entry_point_runs_without_warnings():
    # runpy warns when the module run as __main__ was already imported by its
    # package; -W error turns any warning into a failure.
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "unihpr.cli", "--help"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "usage:" in proc.stdout


def test_every_script_argument_has_help():
    # The scripts of examples/ and benchmarks/ and any parser in the package:
    # every add_argument call says what the argument is for.
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = [p for d in ("unihpr", "examples", "benchmarks") for p in (root / d).rglob("*.py")]
    missing = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", "") == "add_argument"
                and not any(k.arg == "help" for k in node.keywords)
            ):
                missing.append(f"{path.relative_to(root)}:{node.lineno}")
    assert any(p.name == "train_h36m.py" for p in files)
    assert missing == []
