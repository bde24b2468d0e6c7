"""The documentation: README links, the pretrained-models table, the docs build checks."""

from __future__ import annotations

import ast
import importlib.util
import io
import re
import socket
import sys
import textwrap
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
pytestmark = pytest.mark.skipif(not DOCS.is_dir(), reason="needs the repository's docs/")


def _hook():
    spec = importlib.util.spec_from_file_location("docs_checks", DOCS / "hooks" / "checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_links_work_off_the_repository():
    # The README is also the package's long description (an index page), where
    # a relative link such as docs/quickstart.md leads nowhere.
    targets = re.findall(r"\]\(([^)\s]+)\)", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert targets
    relative = [t for t in targets if not t.startswith(("https://", "http://", "#"))]
    assert relative == []


def test_pretrained_table_matches_the_registry():
    import torch

    from unihpr.models import create_model, get_entry, list_models

    rows = {}
    for line in (DOCS / "pretrained.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `([\w-]+)` \|[^|]*\| ([\d.]+) M \(([\d.]+) M\) \| ([^|]+) \|", line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), float(m.group(3)), m.group(4).strip())
    assert sorted(rows) == list_models()
    torch.manual_seed(0)
    for name, (total, image, weights) in rows.items():
        model = create_model(name)
        count = sum(p.numel() for p in model.parameters()) / 1e6
        count_image = sum(p.numel() for p in model.image_encoder.parameters()) / 1e6
        assert (total, image) == (round(count, 2), round(count_image, 2)), name
        shipped = get_entry(name).weights is not None
        assert weights == ("shipped with the package" if shipped else "not published yet"), name


def test_sphinx_role_check(tmp_path):
    checks = _hook()
    (tmp_path / "unihpr").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "unihpr" / "a.py").write_text('"""See :class:`Foo` and [`Bar`][]."""\n')
    (tmp_path / "docs" / "b.md").write_text("fine\nuse :py:func:`baz`\n")
    (tmp_path / "docs" / "c.md").write_text("a time 10:30 and `code`\n")
    assert checks.find_sphinx_roles(tmp_path) == [
        'unihpr/a.py:1: """See :class:`Foo` and [`Bar`][]."""',
        "docs/b.md:2: use :py:func:`baz`",
    ]


def test_no_sphinx_roles_in_the_sources():
    assert _hook().find_sphinx_roles(ROOT) == []


def test_lifting_layout_table_matches_the_mappings():
    import numpy as np

    from unihpr.data.mapping import joint_mapping
    from unihpr.data.skeletons import HUMANOID15, get_skeleton

    lines = (DOCS / "guide" / "lifting.md").read_text(encoding="utf-8").splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| humanoid15 joint |"))
    layouts = re.findall(r"`(\w+)`", lines[header])
    assert layouts == ["mediapipe33", "coco17", "h36m17"]
    rows = {}
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1:]
    assert list(rows) == list(HUMANOID15.joint_names)
    for col, layout in enumerate(layouts):
        src = get_skeleton(layout)
        m = joint_mapping(layout, "humanoid15")
        if isinstance(m, tuple):
            w = np.zeros((15, src.num_joints))
            w[np.arange(15), list(m)] = 1.0
        else:
            w = m
        for d, name in enumerate(HUMANOID15.joint_names):
            cell = rows[name][col]
            used = [src.joint_names[j] for j in np.flatnonzero(w[d])]
            assert sorted(re.findall(r"`(\w+)`", cell)) == sorted(used), (layout, name, cell)
            assert ("mean of" in cell) == (len(used) > 1), (layout, name)
            np.testing.assert_allclose(w[d][w[d] != 0], 1 / len(used))  # a plain mean
            direct = src.joint_names[int(np.flatnonzero(w[d])[0])] == name and len(used) == 1
            assert ("≈" in cell) == (name in ("chest", "neck")), (layout, name)
            assert direct or name in ("root", "chest", "neck"), (layout, name)


# --- The Python examples of README.md and docs/: each runs, and prints what it says ---
#
# A print's output is shown either in the "# ..." lines right below it, one per
# printed line, or (with no such lines) in the print's trailing comment. A shown
# line may end in " — remark". Matching: runs of spaces are one space, "..."
# stands for any text, a "~x" number is any number no larger than 10|x| in
# magnitude, an integer must be equal, and a number with d decimals may differ
# from the printed one by one unit in its last digit (10^-d): the docs show
# rounded values, and float32 results differ across CPUs in the last bits,
# which can flip a rounding. A block that cannot run here (data, a detector,
# the network, minutes of training) says so on the line above its fence:
#     <!-- docs-test: skip (why) -->
# It is reported as a skipped test, and it may not show outputs: nothing would
# check them. A block that is a snippet include (--8<-- "file") is that file,
# which its own tests run.

_FENCE = re.compile(r"^( *)```python[^\n]*\n(.*?)^\1```", re.S | re.M)
_SKIP = re.compile(r"<!-- docs-test: skip \((.+)\) -->")
_NUMBER = re.compile(r"(?<![\w.])(~?)(-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)(?![\w])")
_PRINTED = r"([-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?nan|[-+]?inf)"


def _examples() -> list:
    """pytest params ("page:line", code, skip reason) of each Python block of README.md, docs/."""
    params = []
    for path in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for m in _FENCE.finditer(text):
            code = textwrap.dedent(m.group(2))
            if code.lstrip().startswith("--8<--"):
                continue
            line = text.count("\n", 0, m.start()) + 1
            above = text[: m.start()].rstrip().rsplit("\n", 1)[-1]
            skip = _SKIP.fullmatch(above.strip())
            where = f"{path.relative_to(ROOT).as_posix()}:{line}"
            params.append(pytest.param(where, code, skip and skip.group(1), id=where))
    return params


def _shown_outputs(code: str) -> dict[tuple[int, int], list[str]]:
    """(first line, last line) of each print(...) call -> the output lines its comments show."""
    lines = code.splitlines()
    trailing = {
        tok.start[0]: tok.string[1:].strip()
        for tok in tokenize.generate_tokens(io.StringIO(code).readline)
        if tok.type == tokenize.COMMENT
        and lines[tok.start[0] - 1].lstrip()[:1] != "#"
        and not re.match(r"# *(noqa|fmt:|type:)", tok.string)
    }
    shown = {}
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
            below = []
            for text in lines[node.end_lineno :]:
                if not text.lstrip().startswith("#"):
                    break
                below.append(text.lstrip()[1:].strip())
            if below or node.end_lineno in trailing:
                shown[node.lineno, node.end_lineno] = below or [trailing[node.end_lineno]]
    return shown


def _mismatch(shown: str, printed: str) -> str | None:
    """Why the printed line is not the shown one, or None (the rules above)."""
    shown, printed = " ".join(shown.split(" — ")[0].split()), " ".join(printed.split())
    pattern, expected = "", []
    for k, part in enumerate(shown.split("...")):
        pattern += ".*?" if k else ""
        end = 0
        for m in _NUMBER.finditer(part):
            pattern += re.escape(part[end : m.start()]) + _PRINTED
            expected.append(m.groups())
            end = m.end()
        pattern += re.escape(part[end:])
    got = re.fullmatch(pattern, printed)
    if got is None:
        return f"shows {shown!r}, printed {printed!r}"
    for (about, text), value in zip(expected, map(float, got.groups())):
        x = float(text)
        if about:
            ok = abs(value) <= 10 * abs(x)
        elif re.fullmatch(r"-?\d+", text):
            ok = value == x
        else:
            digits = re.match(r"-?\d*\.?(\d*)(?:[eE]([-+]?\d+))?$", text)
            unit = 10.0 ** (int(digits.group(2) or 0) - len(digits.group(1)))
            ok = abs(value - x) <= unit * (1 + 1e-9)
        if not ok:
            return f"shows {shown!r}, printed {printed!r}: {value} is not {about}{text}"
    return None


def _no_network(*args, **kwargs):
    raise OSError("the docs examples run offline: mark a block that needs the network")


@pytest.mark.parametrize(("where", "code", "skip"), _examples())
def test_docs_example_runs_and_prints_what_it_shows(where, code, skip, tmp_path, monkeypatch):
    shown = _shown_outputs(code)
    if skip:
        assert not shown, f"{where}: a skipped block shows outputs that nothing checks"
        pytest.skip(f"{where}: {skip}")
    from unihpr.models import registry

    monkeypatch.chdir(tmp_path)  # the examples write files into the current folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # register_model
    printed: dict[tuple[int, int], list[str]] = {span: [] for span in shown}

    def record(*args, **kwargs):
        out = io.StringIO()
        print(*args, **{**kwargs, "file": out})
        lineno = sys._getframe(1).f_lineno
        span = next((s for s in printed if s[0] <= lineno <= s[1]), None)
        if span is not None:
            printed[span] += out.getvalue().splitlines()

    exec(compile(code, where, "exec"), {"__name__": "__main__", "print": record})
    problems = []
    for span, lines in shown.items():
        got = printed[span]
        page, first = where.rsplit(":", 1)
        at = f"{page}:{int(first) + span[1]}"
        if len(got) != len(lines):
            problems.append(f"{at}: shows {len(lines)} line(s) {lines}, printed {got}")
            continue
        problems += [f"{at}: {why}" for s, p in zip(lines, got) if (why := _mismatch(s, p))]
    assert not problems, "stale outputs in the docs:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("shown", "printed", "ok"),
    [
        ("2.8715", "2.8715", True),
        ("2.8715", "2.8716", True),  # one unit in the last shown digit
        ("2.8715", "2.8717", False),
        ("0.0", "1.3877787807814457e-17", True),
        ("~1e-16", "-4.440892098500626e-16", True),
        ("~1e-16", "2e-15", False),
        ("0.0714...", "0.0714285746216774", True),
        ("0 16 0.0106", "0 16 0.0106", True),
        ("0 17 0.0106", "0 16 0.0106", False),  # integers are exact
        ("torch.Size([8, 7])", "torch.Size([8, 7])", True),
        ("torch.Size([8, 7])", "torch.Size([8, 6])", False),
        ("[0.09  0.181 0.005]", "[0.09 0.181 0.005]", True),
        ("[] — no weights are published yet", "[]", True),
        ("[] — no weights are published yet", "['unihpr-tiny-mocap']", False),
        ("... cannot run: no CUDA device (...)", "x='triton' cannot run: no CUDA device (a)", True),
        ("unihpr/unihpr-w48 False", "unihpr/unihpr-w48 False", True),
        ("unihpr/unihpr-w48 False", "unihpr/unihpr-w32 False", False),
        ("True", "False", False),
    ],
)
def test_output_comment_matching(shown, printed, ok):
    assert (_mismatch(shown, printed) is None) == ok
