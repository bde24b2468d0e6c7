"""The "Your own motion capture" examples of docs/guide/data.md run and print what they say."""

import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).parents[2] / "docs" / "guide" / "data.md"


def test_own_mocap_examples_run_and_match_their_comments(tmp_path, monkeypatch):
    text = DOC.read_text()
    start = text.index("## Your own motion capture")
    section = text[start : text.index("\n## ", start)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), {})
    # every "# ..." line right after a print() is that print's output
    expected = re.findall(r"^print\(.*\n# (.*)$", blocks[0], re.M)
    assert out.getvalue().splitlines() == expected


def test_virtual_camera_example_runs_and_matches_its_comment():
    text = DOC.read_text()
    start = text.index("## Virtual cameras and pose augmentation")
    section = text[start : text.index("\n## ", start)]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, str(DOC), "exec"), {})
    expected = re.findall(r"^print\(.*\n# (.*)$", block, re.M)
    assert expected and out.getvalue().splitlines() == expected
