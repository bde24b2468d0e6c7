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
