"""The weights that ship inside the package load offline and are in the wheel."""

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

from unihpr.models import create_model, from_pretrained, get_entry, list_models
from unihpr.models.registry import resolve_package_path

ROOT = Path(__file__).parents[2]
SHIPPED = "unihpr-tiny-mocap"
FILES = ("config.json", "model.safetensors", "README.md")


def test_the_shipped_model_is_registered_with_a_package_folder():
    entry = get_entry(SHIPPED)
    assert entry.pretrained and SHIPPED in list_models(pretrained=True)
    folder = resolve_package_path(entry.weights)
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    assert (folder / "model.safetensors").stat().st_size < 8 * 2**20  # a few MB, not more


def test_the_model_card_carries_hub_metadata(tmp_path):
    yaml = pytest.importorskip("yaml")
    shipped = resolve_package_path(get_entry(SHIPPED).weights) / "README.md"
    generated = create_model("unihpr-tiny").save_pretrained(tmp_path) / "README.md"
    for card, license in ((shipped, "apache-2.0"), (generated, "unknown")):
        head, _, body = card.read_text(encoding="utf-8").removeprefix("---\n").partition("\n---\n")
        meta = yaml.safe_load(head)
        assert meta["library_name"] == "unihpr" and meta["license"] == license, card
        assert isinstance(meta["datasets"], list) and body.lstrip().startswith("# "), card


def test_loads_with_the_network_blocked(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access while loading shipped weights: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    model = from_pretrained(SHIPPED)
    again = create_model(SHIPPED, pretrained=True)
    assert model.config == again.config and model.config.num_joints == 15
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k  # the same file read twice
    # trained, not the random initialisation of the configuration
    torch.manual_seed(0)
    fresh = create_model(SHIPPED)
    assert not torch.equal(fresh.state_dict()["pose2d_encoder.head.weight"],
                           model.state_dict()["pose2d_encoder.head.weight"])  # fmt: skip


def test_loads_in_a_fresh_process_with_hf_hub_offline(tmp_path):
    code = textwrap.dedent(f"""
        import unihpr
        m = unihpr.from_pretrained({SHIPPED!r})
        print("LOADED", m.config.num_joints)
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path),
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LOADED 15" in out.stdout


def test_the_wheel_carries_the_weights(tmp_path):
    """Build a wheel from a copy of the sources (no network, no build isolation)."""
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "unihpr", src / "unihpr",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(tmp_path / "dist"), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if out.returncode != 0 and "No module named" in out.stderr:
        pytest.skip(f"cannot build a wheel here: {out.stderr[-300:]}")
    assert out.returncode == 0, out.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("unihpr-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in FILES:
        assert f"unihpr/models/weights/{SHIPPED}/{f}" in names, f
    assert "unihpr/models/model_card.md" in names  # the template of save_pretrained's cards
