"""The loss-feature examples of docs/guide/losses.md run and print what their comments say."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).parents[2] / "docs" / "guide"
DOC = GUIDE / "losses.md"
SECTIONS = [
    "## Several positives per anchor: `labels=`",
    "## Sigmoid pair loss: `SigLIPLoss`",
    "## GRAM's objective: `GRAMLoss`",
    "## More negatives than the batch: `EmbeddingQueue`",
]


def section(text: str, heading: str) -> str:
    start = text.index(heading + "\n")
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end > 0 else None]


@pytest.mark.skipif(not DOC.is_file(), reason="needs the repository's docs/")
@pytest.mark.parametrize(
    ("page", "heading"),
    [("losses.md", h) for h in SECTIONS] + [("negatives.md", "## Symile-style options")],
)
def test_section_examples_print_their_comments(page, heading):
    text = (GUIDE / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", section(text, heading), re.S)
    assert blocks, heading
    for block in blocks:
        # the "# ..." lines right after a print() are that print's output
        expected = [
            line[2:]
            for lines in re.findall(r"^ *print\(.*\n((?:# .*\n?)+)", block, re.M)
            for line in lines.splitlines()
        ]
        assert expected, f"{heading}: an example without a checked print"
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(DOC), "exec"), {})
        assert out.getvalue().splitlines() == expected
