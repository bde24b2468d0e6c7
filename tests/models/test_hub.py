"""Checkpoint I/O: local folders, an offline Hugging Face cache, corrupt files, push_to_hub."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import unihpr.models as M
from unihpr.models.hub import CheckpointError, PretrainedNotFoundError

ROOT = Path(__file__).resolve().parents[2]
SHA = "0123456789abcdef0123456789abcdef01234567"


def _tiny(**kw):
    torch.manual_seed(0)
    kw.setdefault("decoder_width", 32)
    return M.create_model("unihpr-tiny", **kw).eval()


def _inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(2, 3, 64, 64, generator=g), torch.randn(2, 15, 3, generator=g) * 0.3)


@pytest.mark.parametrize("decoder", ["mlp", "diffusion"])
def test_round_trip_bit_identical(tmp_path, decoder):
    model = _tiny(decoder=decoder, diffusion_sampling_steps=2)
    folder = model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    loaded = M.UniHPR.from_pretrained(folder)
    assert loaded.config == model.config and not loaded.training
    img, p3 = _inputs()
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(img), model.encode_image(img))
        assert torch.equal(loaded.estimate_3d(image=img), model.estimate_3d(image=img))
        assert torch.equal(loaded.estimate_2d(pose3d=p3), model.estimate_2d(pose3d=p3))
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    card = (folder / "README.md").read_text()
    assert "unihpr-tiny" in card and f"{model.num_parameters():,}" in card
    assert M.from_pretrained(str(folder), num_hypotheses=3).config.num_hypotheses == 3


def _fill_cache(cache: Path, repo_id: str, src: Path) -> Path:
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / SHA
    snap.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(src / name, snap / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    return snap


def _run(code: str, env_extra: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_offline_hub_cache_loads_via_hf_hub_download(tmp_path):
    model = _tiny()
    src = model.save_pretrained(tmp_path / "src")
    torch.save(model.encode_pose3d(_inputs()[1]).detach(), tmp_path / "ref.pt")
    hf_home = tmp_path / "hf"
    _fill_cache(hf_home / "hub", "unihpr/unihpr-tiny", src)
    code = f"""
        import torch, unittest.mock as mock
        import huggingface_hub, unihpr.models as M
        calls = []
        real = huggingface_hub.hf_hub_download
        def spy(*a, **k):
            calls.append((a, k)); return real(*a, **k)
        with mock.patch.object(huggingface_hub, "hf_hub_download", spy):
            m = M.from_pretrained("unihpr-tiny")
        assert len(calls) == 2 and calls[0][0][0] == "unihpr/unihpr-tiny", calls
        g = torch.Generator().manual_seed(0)
        _ = torch.rand(2, 3, 64, 64, generator=g)
        p3 = torch.randn(2, 15, 3, generator=g) * 0.3
        assert torch.equal(m.encode_pose3d(p3), torch.load({str(tmp_path / "ref.pt")!r}))
        print("LOADED", "{SHA}" in str(huggingface_hub.hf_hub_download(
            "unihpr/unihpr-tiny", "config.json")))
    """
    out = _run(code, {"HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub"),
                      "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LOADED True" in out.stdout


def test_offline_missing_repo_fails_fast_with_guidance(tmp_path):
    code = """
        import time, unihpr.models as M
        t = time.perf_counter()
        try:
            M.from_pretrained("unihpr-w48")
        except M.PretrainedNotFoundError as err:
            print("ERR", time.perf_counter() - t, err)
    """
    start = time.perf_counter()
    out = _run(code, {"HF_HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub"),
                      "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert time.perf_counter() - start < 60  # includes interpreter + torch start-up
    msg = out.stdout
    assert "ERR" in msg and float(msg.split()[1]) < 5.0
    for part in ("unihpr/unihpr-w48", "offline", "No weights are published", "save_pretrained"):
        assert part in msg, part


def test_bad_names_and_paths(tmp_path):
    with pytest.raises(PretrainedNotFoundError, match="neither an existing folder"):
        M.from_pretrained("not-a-model")
    with pytest.raises(PretrainedNotFoundError, match=r"config\.json"):
        M.from_pretrained(tmp_path)  # empty folder
    (tmp_path / "f.bin").write_bytes(b"x")
    with pytest.raises(PretrainedNotFoundError, match="is a file"):
        M.from_pretrained(tmp_path / "f.bin")
    with pytest.raises(TypeError, match="name_or_path"):
        M.from_pretrained(3)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_weights_are_named(tmp_path, damage):
    folder = _tiny().save_pretrained(tmp_path)
    path = folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00" * 64)
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*corrupt or truncated"):
        M.from_pretrained(folder)


def test_weights_of_another_configuration(tmp_path):
    a = _tiny().save_pretrained(tmp_path / "a")
    b = _tiny(embed_dim=64).save_pretrained(tmp_path / "b")
    shutil.copy(b / "model.safetensors", a / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"different configuration[\s\S]*shape mismatch"):
        M.from_pretrained(a)
    c = _tiny(decoder="diffusion").save_pretrained(tmp_path / "c")
    shutil.copy(c / "model.safetensors", a / "model.safetensors")
    with pytest.raises(CheckpointError, match="missing key"):
        M.from_pretrained(a)


def test_bad_config_files(tmp_path):
    folder = _tiny().save_pretrained(tmp_path)
    cfg = folder / "config.json"
    data = json.loads(cfg.read_text())
    cfg.write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json is not valid JSON"):
        M.from_pretrained(folder)
    cfg.write_text(json.dumps({**data, "layers": 3}))
    with pytest.raises(CheckpointError, match="layers"):
        M.from_pretrained(folder)
    cfg.write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format_version"):
        M.from_pretrained(folder)
    cfg.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="architecture"):
        M.from_pretrained(folder, embed_dim=3)


def test_push_to_hub_uploads_saved_folder(monkeypatch):
    import huggingface_hub

    record = {}

    class FakeApi:
        def __init__(self, token=None):
            record["token"] = token

        def create_repo(self, repo_id, **kw):
            record["create"] = (repo_id, kw)

        def upload_folder(self, repo_id, folder_path, **kw):
            record["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            record["config"] = json.loads((Path(folder_path) / "config.json").read_text())

            class Info:
                commit_url = f"https://huggingface.co/{repo_id}/commit/abc"

            return Info()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = _tiny().push_to_hub("me/tiny", private=True, token="t")
    assert url.endswith("me/tiny/commit/abc")
    assert record["create"][0] == "me/tiny" and record["create"][1]["private"] is True
    assert record["files"] == ["README.md", "config.json", "model.safetensors"]
    assert record["config"]["name"] == "unihpr-tiny" and record["token"] == "t"
    with pytest.raises(ValueError, match="repo_id"):
        M.push_to_hub(_tiny(), "no-slash")


_UNREACHABLE = """
    import socket, time, unittest.mock as mock
    import unihpr.models as M

    def refuse(*args, **kwargs):
        raise OSError("simulated: no network")

    t = time.perf_counter()
    with mock.patch.object(socket, "create_connection", refuse):
        {body}
"""


def test_unreachable_hub_falls_back_to_cache_without_retries(tmp_path):
    """No network and HF_HUB_OFFLINE unset: one short probe, then the local cache."""
    body = """try:
            M.from_pretrained("unihpr-w48")
        except M.PretrainedNotFoundError as err:
            print("ERR", time.perf_counter() - t, err)"""
    out = _run(_UNREACHABLE.format(body=body), {"HF_HOME": str(tmp_path),
               "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "0"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ERR" in out.stdout, out.stdout
    assert float(out.stdout.split()[1]) < 5.0
    assert "unreachable (simulated: no network)" in out.stdout
    assert "Retrying" not in out.stderr


def test_unreachable_hub_still_loads_a_cached_model(tmp_path):
    src = _tiny().save_pretrained(tmp_path / "src")
    hf_home = tmp_path / "hf"
    _fill_cache(hf_home / "hub", "unihpr/unihpr-tiny", src)
    body = """m = M.from_pretrained("unihpr-tiny")
        print("LOADED", m.config.name)"""
    out = _run(_UNREACHABLE.format(body=body), {"HF_HOME": str(hf_home),
               "HF_HUB_CACHE": str(hf_home / "hub"), "HF_HUB_OFFLINE": "0"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LOADED unihpr-tiny" in out.stdout
