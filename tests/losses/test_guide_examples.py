"""Every example of the loss pages runs, and prints what its comments say.

The ``# ...`` lines right after a ``print(...)`` line are that print's output,
compared line by line; the examples seed their randomness and round floats
to four decimals, which float32 differences between CPUs do not reach.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).parents[2] / "docs" / "guide"
PAGES = ("losses.md", "negatives.md", "eigenvalue.md")


def blocks() -> list[tuple[str, int]]:
    if not GUIDE.is_dir():
        return []
    return [
        (page, n)
        for page in PAGES
        for n, _ in enumerate(re.findall(r"```python\n(.*?)```", (GUIDE / page).read_text(), re.S))
    ]


@pytest.mark.skipif(not GUIDE.is_dir(), reason="needs the repository's docs/")
@pytest.mark.parametrize(("page", "index"), blocks())
def test_example_runs_and_prints_its_comments(page, index):
    block = re.findall(r"```python\n(.*?)```", (GUIDE / page).read_text(), re.S)[index]
    expected = [
        line[2:]
        for lines in re.findall(r"^ *print\(.*\n((?:# .*\n?)+)", block, re.M)
        for line in lines.splitlines()
    ]
    prints = len(re.findall(r"^ *print\(", block, re.M))
    assert prints == len(re.findall(r"^ *print\(.*\n# ", block, re.M)), "a print without output"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, f"{page} example {index}", "exec"), {})
    assert out.getvalue().splitlines() == expected
