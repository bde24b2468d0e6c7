"""The documentation: README links, the pretrained-models table, the docs build checks."""

from __future__ import annotations

import importlib.util
import re
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

    from unihpr.models import create_model, list_models

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
        assert weights == "not published yet", "update the table's weights column"


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
