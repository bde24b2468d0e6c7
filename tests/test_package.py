"""The public API: lazy exports resolve, and `import unihpr` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import unihpr


@pytest.mark.parametrize("name", sorted(unihpr._EXPORTS))
def test_every_export_resolves(name):
    assert getattr(unihpr, name) is not None


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        unihpr.nope  # noqa: B018


def test_import_is_light():
    code = (
        "import sys, unihpr\n"
        "heavy = [m for m in ('triton', 'pybullet', 'matplotlib', 'PIL', 'tensorboard', "
        "'huggingface_hub', 'unihpr.models', 'unihpr.data') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_optional_dependency_error_names_the_extra():
    from unihpr._optional import require

    with pytest.raises(ImportError, match=r"'demo' extra: `pip install -e \"\.\[demo\]\"`"):
        require("definitely_not_a_module_xyz", "demo")


def test_modality_names_are_written_once():
    """One table: every module imports unihpr.modalities.MODALITIES instead of spelling it."""
    import ast
    from pathlib import Path

    import unihpr.modalities

    root = Path(unihpr.__file__).parent
    names = ["image", "pose2d", "pose3d"]
    hits = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, (ast.Tuple, ast.List))
                and [getattr(e, "value", None) for e in node.elts] == names
            ):
                hits.append(str(path.relative_to(root)))
    assert hits == ["modalities.py"], hits
