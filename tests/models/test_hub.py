"""Checkpoint I/O: local folders, an offline Hugging Face cache, corrupt files, push_to_hub.

No test touches the network: a pre-filled cache with ``HF_HUB_OFFLINE=1``, a Hub
endpoint on a closed local port, a local proxy that refuses, and monkeypatched
``huggingface_hub`` functions.
"""

import http.server
import json
import os
import re
import shutil
import socket
import socketserver
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import ClassVar

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
def test_round_trip_in_one_process_is_exact(tmp_path, decoder):
    """Same weights, same code, same process: the outputs are the same floats."""
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
    assert card.startswith('---\nlibrary_name: unihpr\nlicense: "unknown"\ndatasets: []\n')
    card = M.UniHPR.model_card(model, license="apache-2.0", datasets=["me/mocap"])
    assert 'license: "apache-2.0"\ndatasets: ["me/mocap"]' in card
    model.save_pretrained(tmp_path / "c", model_card_kwargs={"license": "mit"})
    assert 'license: "mit"' in (tmp_path / "c" / "README.md").read_text()
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
    model = _tiny(decoder_width=256)  # exactly the registered config
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
        # another process may pick other CPU kernels: float32 agreement, not bits
        torch.testing.assert_close(m.encode_pose3d(p3), torch.load({str(tmp_path / "ref.pt")!r}),
                                   rtol=1e-5, atol=1e-6)
        print("LOADED", "{SHA}" in str(huggingface_hub.hf_hub_download(
            "unihpr/unihpr-tiny", "config.json")))
    """
    out = _run(code, {"HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub"),
                      "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LOADED True" in out.stdout


def test_offline_missing_repo_fails_with_guidance(tmp_path):
    out = _run(_LOAD.format(name="unihpr-w48"), {"HF_HOME": str(tmp_path),
               "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    msg = out.stdout
    assert msg.startswith("ERR")
    for part in ("unihpr/unihpr-w48", "no weights are published", "save_pretrained"):
        assert part in msg, part


def test_bad_names_and_paths(tmp_path):
    with pytest.raises(PretrainedNotFoundError, match="neither an existing folder"):
        M.from_pretrained("not-a-model")
    with pytest.raises(PretrainedNotFoundError, match="no such folder"):
        M.from_pretrained(tmp_path / "nowhere" / "model")
    with pytest.raises(PretrainedNotFoundError, match="no such folder"):
        M.from_pretrained("./unihpr-demo/model")
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
    with pytest.raises(CheckpointError, match=r"different configuration.*shape or dtype mismatch"):
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
    with pytest.raises(CheckpointError, match=r"config\.json is not valid UTF-8 JSON"):
        M.from_pretrained(folder)
    cfg.write_text(json.dumps({**data, "layers": 3}))
    with pytest.raises(CheckpointError, match=r"config\.json .*unknown .*\['layers'\]"):
        M.from_pretrained(folder)
    cfg.write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format_version"):
        M.from_pretrained(folder)
    cfg.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="architecture"):
        M.from_pretrained(folder, embed_dim=3)


class _FakeApi:
    """Records what ``HfApi`` was asked to do (nothing leaves the machine)."""

    record: ClassVar[dict] = {}

    def __init__(self, token=None):
        self.record.clear()
        self.record["token"] = token

    def create_repo(self, repo_id, **kw):
        self.record["create"] = (repo_id, kw)

    def upload_folder(self, repo_id, folder_path, allow_patterns, **kw):
        files = sorted(p.name for p in Path(folder_path).iterdir())
        self.record.update(files=[f for f in files if f in allow_patterns], upload=kw,
                           config=json.loads((Path(folder_path) / "config.json").read_text()))  # fmt: skip

        class Info:
            commit_url = f"https://huggingface.co/{repo_id}/commit/abc"

        return Info()


def test_push_to_hub_uploads_saved_folder(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", _FakeApi)
    record = _FakeApi.record
    url = _tiny().push_to_hub("me/tiny", private=True, token="t", commit_message="v1")
    assert url.endswith("me/tiny/commit/abc")
    assert record["create"][0] == "me/tiny" and record["create"][1]["private"] is True
    assert record["files"] == ["README.md", "config.json", "model.safetensors"]
    assert record["config"]["name"] == "unihpr-tiny" and record["token"] == "t"
    assert record["upload"] == {"commit_message": "v1"}


def test_save_pretrained_pushes_when_asked_as_the_mixin(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", _FakeApi)
    record = _FakeApi.record
    record.clear()
    model = _tiny()
    assert model.save_pretrained(tmp_path / "a") == tmp_path / "a" and not record
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("{}")  # not part of the model: stays local
    url = model.save_pretrained(tmp_path / "run", push_to_hub=True, repo_id="me/x", token="t")
    assert url.endswith("me/x/commit/abc") and record["token"] == "t"
    assert record["files"] == ["README.md", "config.json", "model.safetensors"]
    model.save_pretrained(tmp_path / "my-model", push_to_hub=True)
    assert record["create"][0] == "my-model"  # the folder's name, as the mixin does


def test_from_pretrained_forwards_the_hub_download_keywords(tmp_path, monkeypatch):
    import huggingface_hub

    folder = _tiny().save_pretrained(tmp_path / "src")
    calls, probes = [], []

    def download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename, kwargs))
        return str(folder / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", lambda *a, **k: probes.append(k))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    hub = {"revision": "v1", "token": "t", "cache_dir": str(tmp_path / "c")}
    model = M.from_pretrained("me/tiny", force_download=True, **hub, num_hypotheses=2)
    assert model.config.num_hypotheses == 2
    assert [c[:2] for c in calls] == [("me/tiny", "config.json"), ("me/tiny", "model.safetensors")]
    for *_, kwargs in calls:
        assert kwargs == {**hub, "local_files_only": False, "force_download": True}
    assert probes == [{"token": "t", "timeout": 5.0, "retry_on_errors": False}]
    calls.clear()
    M.UniHPR.from_pretrained("me/tiny", local_files_only=True)  # no request: the cache only
    assert len(probes) == 1 and calls[0][2]["local_files_only"] is True
    with pytest.raises(TypeError, match="local_files_only"):
        M.from_pretrained("me/tiny", local_files_only="yes")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_LOAD = """
    import unihpr.models as M
    try:
        M.from_pretrained({name!r})
    except M.PretrainedNotFoundError as err:
        print("ERR", err)
"""


def test_unreachable_endpoint_is_asked_once_without_retries(tmp_path):
    """HF_HUB_OFFLINE unset, the Hub endpoint a closed local port: one request, then the cache."""
    env = {"HF_HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "0",
           "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}  # fmt: skip
    out = _run(_LOAD.format(name="someone/model"), env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("ERR"), out.stdout
    for part in ("Hub unreachable", "Connect", "not in the local cache", "someone/model"):
        assert part in out.stdout, part
    assert "Retrying" not in out.stderr  # huggingface_hub's retries would take ~25 s


def test_unreachable_hub_still_loads_a_cached_model(tmp_path):
    src = _tiny(decoder_width=256).save_pretrained(tmp_path / "src")
    hf_home = tmp_path / "hf"
    _fill_cache(hf_home / "hub", "someone/tiny", src)
    code = """
        import unihpr.models as M
        print("LOADED", M.from_pretrained("someone/tiny").config.name)
    """
    out = _run(code, {"HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub"),
                      "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LOADED unihpr-tiny" in out.stdout


class _Proxy:
    """A local HTTP proxy that records requests and refuses them (CONNECT 403, others 404)."""

    def __enter__(self):
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                seen.append(f"{self.command} {self.path}")
                self.send_response(403 if self.command == "CONNECT" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET = do_CONNECT = _answer

            def log_message(self, *args):
                pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _proxy_env(tmp_path, variable: str, url: str, endpoint: str) -> dict:
    return {"HF_HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "0",
            variable: url, variable.lower(): url, "NO_PROXY": "", "no_proxy": "",
            "HF_ENDPOINT": endpoint}  # fmt: skip


def test_requests_go_through_https_proxy(tmp_path):
    """HTTPS_PROXY is honoured: the proxy sees the CONNECT, and its refusal is reported."""
    with _Proxy() as proxy:
        env = _proxy_env(tmp_path, "HTTPS_PROXY", proxy.url, "https://huggingface.co")
        out = _run(_LOAD.format(name="someone/model"), env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert any(s.startswith("CONNECT huggingface.co:443") for s in proxy.seen), proxy.seen
    assert out.stdout.startswith("ERR") and "Retrying" not in out.stderr, out.stdout
    assert "Hub unreachable" in out.stdout and "403" in out.stdout


def test_hub_answer_through_http_proxy_is_reported(tmp_path):
    with _Proxy() as proxy:
        env = _proxy_env(tmp_path, "HTTP_PROXY", proxy.url, "http://hub.invalid")
        out = _run(_LOAD.format(name="someone/model"), env)
        assert "HEAD http://hub.invalid/someone/model/resolve/main/config.json" in proxy.seen
        out_w48 = _run(_LOAD.format(name="unihpr-w48"), env)
        assert not [s for s in proxy.seen if "w48" in s]  # a reserved, unpublished id: no request
    assert out.returncode == 0, out.stderr[-3000:]
    assert "the Hub answered HTTP 404" in out.stdout
    assert "no weights are published for 'unihpr-w48' yet" in out_w48.stdout


def test_missing_local_folder_is_one_line(tmp_path):
    """The quickstart's from_pretrained("unihpr-demo/model") run from another folder."""
    code = """
        import unihpr
        unihpr.from_pretrained("unihpr-demo/model")
    """
    env = {"HF_HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True,
        text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )  # fmt: skip
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "unihpr.models.hub.PretrainedNotFoundError: no folder 'unihpr-demo/model'"
    )
    assert str(tmp_path) in last and "offline" in last
    assert "During handling" not in out.stderr and "direct cause" not in out.stderr
    assert len(out.stderr.strip().splitlines()) < 15, out.stderr
    # with the parent folder present the path is clearly local: no Hub lookup at all
    (tmp_path / "unihpr-demo").mkdir()
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True,
        text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )  # fmt: skip
    assert "no such folder: unihpr-demo/model" in out.stderr.strip().splitlines()[-1]


def _block_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _package_with_weights(tmp_path, model, package="unihpr_test_weights", sub="tiny-test"):
    """A package folder on a new sys.path entry holding save_pretrained() output."""
    pkg = tmp_path / "site" / package
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    model.save_pretrained(pkg / sub)
    return tmp_path / "site", f"package://{package}/{sub}"


@pytest.mark.parametrize("offline", ["1", "0"])
def test_weights_shipped_in_a_package_load_without_network(tmp_path, monkeypatch, offline):
    from unihpr.models import registry

    torch.manual_seed(0)
    model = M.UniHPR(M.get_config("unihpr-tiny", name="tiny-test", decoder_width=32)).eval()
    site, uri = _package_with_weights(tmp_path, model)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    entry = M.register_model(
        "tiny-test", model.config, hub_id="someone/tiny-test", weights=uri, published=False
    )
    assert entry.pretrained and "tiny-test" in M.list_models(pretrained=True)
    _block_network(monkeypatch)
    p3 = _inputs()[1]
    for loaded in (M.from_pretrained("tiny-test"), M.create_model("tiny-test", pretrained=True),
                   M.UniHPR.from_pretrained("tiny-test", num_hypotheses=1)):  # fmt: skip
        assert loaded.config.name == "tiny-test" and not loaded.training
        with torch.no_grad():
            assert torch.equal(loaded.encode_pose3d(p3), model.encode_pose3d(p3))
    with pytest.raises(ValueError, match="architecture"):
        M.create_model("tiny-test", pretrained=True, embed_dim=64)
    # shipped weights that do not fit their registry entry are refused
    M.register_model(
        "tiny-test", model.config.replace(decoder_depth=3), weights=uri, overwrite=True
    )
    with pytest.raises(CheckpointError, match="decoder_depth: file 2 vs registry 3"):
        M.from_pretrained("tiny-test")


def test_package_uri_errors(tmp_path, monkeypatch):
    from unihpr.models.registry import resolve_package_path

    site, uri = _package_with_weights(tmp_path, _tiny(), package="unihpr_pkg_err")
    monkeypatch.syspath_prepend(str(site))
    assert resolve_package_path(uri).is_dir()
    with pytest.raises(PretrainedNotFoundError, match="no folder"):
        resolve_package_path("package://unihpr_pkg_err/missing")
    with pytest.raises(PretrainedNotFoundError, match="not importable"):
        resolve_package_path("package://no_such_package_xyz/w")
    with pytest.raises(ValueError, match=r"'\.\.'"):
        resolve_package_path("package://unihpr_pkg_err/../x")


def _bomb(tmp_path, name="bomb", **fields) -> Path:
    folder = _tiny().save_pretrained(tmp_path / name)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(fields)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


_MEASURED_LOADS = """
    import resource, torch, unihpr.models as M
    from unihpr.models.hub import CheckpointError
    M.create_model("unihpr-tiny")  # warm up the allocator and imports
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for folder in {folders!r}:
        try:
            M.from_pretrained(folder)
        except CheckpointError as err:
            # peak memory since the start of the first load, MB (ru_maxrss is in kB on Linux)
            grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
            print("ERR", round(grown, 1), str(err).splitlines()[0])
"""


def test_config_bombs_fail_before_allocating_or_sampling(tmp_path):
    """Issues 12 and 22: a ~600-byte config.json asking for a huge model or hours of sampling."""
    cases = [
        ({"embed_dim": 800000}, "embed_dim must be an int >= 1 and <= 8192"),
        ({"embed_dim": 2**40}, "embed_dim must be an int >= 1 and <= 8192"),
        # within the bounds: caught by comparing the meta-device shapes with the header
        ({"embed_dim": 8192, "pose_width": 8192, "decoder_width": 8192}, "different configuration"),
        ({"decoder": "diffusion", "diffusion_sampling_steps": 100_000}, "<= 1000"),
        ({"decoder": "diffusion", "num_hypotheses": 1024}, "<= 64"),
        ({"decoder": "diffusion", "diffusion_sampling_steps": 1000, "num_hypotheses": 64},
         "denoiser calls"),
    ]  # fmt: skip
    folders = []
    for k, (fields, _) in enumerate(cases):
        folders.append(str(_bomb(tmp_path, f"bomb{k}", **fields)))
        size = (Path(folders[-1]) / "config.json").stat().st_size
        assert size < 700, size  # the 602-byte config, give or take the JSON layout
    out = _run(_MEASURED_LOADS.format(folders=folders), {})
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(cases), out.stdout
    for line, (_, match) in zip(lines, cases):
        _, grown_mb, *_ = line.split()
        assert float(grown_mb) < 100.0, line
        assert re.search(match, line), line


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"bbox_reference": 0}, "bbox_reference"),
        ({"num_hypotheses": 2.5}, "num_hypotheses must be an int"),
        ({"root_joint": 0.5}, "root_joint must be an int"),
        ({"decoder_width": 0}, "decoder_width"),
        ({"decoder_depth": -1}, "decoder_depth"),
        ({"pose_mlp_ratio": 0}, "pose_mlp_ratio"),
        ({"target_scale_3d": 0}, "target_scale_3d"),
        ({"image_size": [64.0, 64]}, r"image_size\[0\] must be an int"),
        ({"embed_dim": True}, "embed_dim must be an int, got bool"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_invalid_fields_in_config_json_are_named(tmp_path, fields, match):
    folder = _bomb(tmp_path, **fields)
    with pytest.raises(CheckpointError, match=match):
        M.from_pretrained(folder)


def test_hostile_json_is_refused_clearly(tmp_path):
    folder = _tiny().save_pretrained(tmp_path)
    cfg = folder / "config.json"
    text = cfg.read_text()
    cfg.write_text("[" * 30_000 + "]" * 30_000)  # under the size cap, past the parser's recursion
    with pytest.raises(CheckpointError, match=r"config\.json is not valid UTF-8 JSON: nests too"):
        M.from_pretrained(folder)
    cfg.write_text(text.replace('"embed_dim": 128', '"embed_dim": NaN'))
    with pytest.raises(
        CheckpointError, match=r"config\.json .*embed_dim must be an int, got float"
    ):
        M.from_pretrained(folder)
    cfg.write_text(text.replace('"embed_dim": 128', '"embed_dim": 128, "embed_dim": 64'))
    with pytest.raises(CheckpointError, match="different configuration"):  # the last one counts
        M.from_pretrained(folder)
    cfg.write_text('"a string"')
    with pytest.raises(CheckpointError, match="JSON object"):
        M.from_pretrained(folder)
    cfg.write_bytes(b"\xff\xfe" * 10)
    with pytest.raises(CheckpointError, match="UTF-8"):
        M.from_pretrained(folder)
    cfg.write_text(" " * (64 * 1024) + "{}")
    with pytest.raises(CheckpointError, match="at most 65536"):
        M.from_pretrained(folder)
    cfg.write_text(json.dumps({**json.loads(text), "extra": {}}))  # a field of no version
    with pytest.raises(CheckpointError, match=r"unknown UniHPRConfig field\(s\): \['extra'\]"):
        M.from_pretrained(folder)


def test_map_location_is_checked_before_reading(tmp_path):
    folder = _tiny().save_pretrained(tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA device"):
            M.from_pretrained(folder, map_location="cuda")
    with pytest.raises(ValueError, match="map_location"):
        M.from_pretrained(folder, map_location="gpu7")
    with pytest.raises(TypeError, match="map_location"):
        M.from_pretrained(folder, map_location=3.5)
    with pytest.raises(ValueError, match="meta"):
        M.from_pretrained(folder, map_location="meta")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_file_and_tensor(tmp_path, bad):
    from safetensors.torch import load_file, save_file

    folder = _tiny().save_pretrained(tmp_path)
    weights = load_file(str(folder / "model.safetensors"))
    weights["decoder3d.out.1.bias"][3] = bad
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors: tensor 'decoder3d\.out\.1\.bias'"
    ):
        M.from_pretrained(folder)


def test_dtype_kind_mismatch_is_reported(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _tiny().save_pretrained(tmp_path)
    weights = load_file(str(folder / "model.safetensors"))
    key = next(k for k, v in weights.items() if v.is_floating_point())
    weights[key] = weights[key].to(torch.int32)
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="shape or dtype mismatch"):
        M.from_pretrained(folder)


def test_hub_module_imports_no_model_class():
    import ast

    tree = ast.parse((ROOT / "unihpr" / "models" / "hub.py").read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert not [m for m in imported if m.startswith("unihpr.models")], imported


@pytest.mark.parametrize("decoder", ["mlp", "transformer", "diffusion"])
def test_meta_shapes_equal_the_real_state_dict(decoder):
    from unihpr.models.hub import _SkipInit

    config = M.get_config("unihpr-tiny", decoder=decoder, decoder_width=32)
    real = M.UniHPR(config).state_dict()
    with torch.device("meta"), _SkipInit():
        meta = M.UniHPR(config).state_dict()
    assert list(meta) == list(real)
    for k, v in real.items():
        assert meta[k].is_meta and meta[k].shape == v.shape and meta[k].dtype == v.dtype, k


_FUZZ_CONFIGS = r"""
import json, resource, sys
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import unihpr.models as M
from unihpr.models.config import LIMITS
from unihpr.models.hub import CheckpointError

torch.set_num_threads(1)  # no new thread stacks inside the memory cap
folder = Path(sys.argv[1])
base = json.loads((folder / "config.json").read_text())
M.from_pretrained(folder)  # imports and allocator warmed up before the cap
data_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmData"))
cap = data_kb * 1024 + (200 << 20)  # 200 MB more than the process holds now
resource.setrlimit(resource.RLIMIT_DATA, (cap, resource.getrlimit(resource.RLIMIT_DATA)[1]))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
big_ints = st.sampled_from([0, 1, 2, 63, 64, 65, 999, 1000, 1001, 10**5, 2**31, 2**63, 10**30])
fields = st.dictionaries(
    st.sampled_from(sorted(base) + ["format_version", "extra", ""]),
    json_values | big_ints, min_size=1, max_size=4,
)
texts = st.one_of(
    fields.map(lambda f: json.dumps({**base, **f})),
    st.integers(1, 40_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 40_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.text(max_size=200),
    st.builds(lambda t, n: t[:n], st.just(json.dumps(base)), st.integers(0, 900)),
)
outcomes = {"model": 0, "error": 0}


@settings(max_examples=int(sys.argv[2]), deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(texts)
def load(text):
    (folder / "config.json").write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        model = M.from_pretrained(folder)
    except CheckpointError as err:  # every refusal is one, naming the file
        assert "config.json" in str(err) or "model.safetensors" in str(err), err
        outcomes["error"] += 1
        return
    c = model.config
    assert c.diffusion_sampling_steps * c.num_hypotheses <= LIMITS["denoiser_calls"]
    outcomes["model"] += 1


load()
print("OUTCOMES", outcomes["model"], outcomes["error"])
"""


def test_fuzzed_config_json_ends_in_a_model_or_a_checkpoint_error(tmp_path):
    """Hypothesis writes config.json files; each loads or is a CheckpointError naming the file.

    Runs in a subprocess whose data segment is capped (``RLIMIT_DATA``) at 200 MB
    above what it holds after one load, so a file that made the loader allocate
    more fails the test with a ``MemoryError`` instead of passing slowly.
    """
    model = _tiny(decoder="diffusion", decoder_width=32, diffusion_sampling_steps=2)
    folder = model.save_pretrained(tmp_path / "fuzz")
    script = tmp_path / "fuzz_configs.py"
    script.write_text(_FUZZ_CONFIGS)
    out = subprocess.run(
        [sys.executable, str(script), str(folder), "150"], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    _, models, errors = out.stdout.split()[-3:]
    assert int(models) > 0 and int(errors) > 0, out.stdout  # both outcomes were reached
