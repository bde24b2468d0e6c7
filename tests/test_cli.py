"""The ``unihpr`` command: subcommands, help for every argument, module entry points."""

from __future__ import annotations

import argparse
import subprocess
import sys

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


def test_build_image_index_reports_a_missing_frames_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="frames_root"):
        main(["build-image-index", str(tmp_path / "nope"), "a.npz", "b.npz", "o.jsonl"])


@pytest.mark.parametrize(
    "module", ["unihpr.cli", "unihpr.data.image_index"], ids=["cli", "image_index"]
)
def test_module_entry_points_run_without_warnings(module):
    # runpy warns when the module run as __main__ was already imported by its
    # package; -W error turns any warning into a failure.
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", module, "--help"],
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
