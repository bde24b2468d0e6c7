"""Checkpoint I/O: local folders, an offline Hugging Face cache, corrupt files, push_to_hub."""

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
    with torch.no_grad():  # the same weights and ops in one process: bit-identical
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
        env=env, capture_output=True, text=True, timeout=600,
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
        # another process (its own thread pool): float32 sums may be reordered, so ~100 eps
        ref = torch.load({str(tmp_path / "ref.pt")!r})
        torch.testing.assert_close(m.encode_pose3d(p3), ref, rtol=1e-5, atol=1e-6)
        print("LOADED", "{SHA}" in str(huggingface_hub.hf_hub_download(
            "unihpr/unihpr-tiny", "config.json")))
    """
    out = _run(code, {"HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub"),
                      "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LOADED True" in out.stdout


def test_offline_missing_repo_fails_fast_with_guidance(tmp_path):
    out = _run(_COUNTED_LOAD.format(name="unihpr-w48"),
               {"HF_HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub"),
                "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    msg = out.stdout
    assert msg.startswith("ERR 0 "), msg  # offline: not one connection attempt
    for part in ("unihpr/unihpr-w48", "offline", "No weights are published", "save_pretrained"):
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


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_COUNTED_LOAD = """
    import socket, unihpr.models as M
    attempts = []
    real = socket.socket.connect
    def connect(self, address):
        attempts.append(address)
        return real(self, address)
    socket.socket.connect = connect
    try:
        M.from_pretrained({name!r})
    except M.PretrainedNotFoundError as err:
        print("ERR", len(attempts), err)
"""


def test_unreachable_endpoint_fails_without_retries(tmp_path):
    """HF_HUB_OFFLINE unset, the Hub endpoint a closed local port: one request, then the cache."""
    env = {"HF_HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "0",
           "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}  # fmt: skip
    out = _run(_COUNTED_LOAD.format(name="unihpr-w48"), env)
    assert out.returncode == 0, out.stderr[-3000:]
    # unihpr's one probe of config.json, plus huggingface_hub 2.x's one fetch of its agent
    # registry; its retry loop (http_backoff: up to 5 retries) would make more
    assert out.stdout.startswith(("ERR 1 ", "ERR 2 ")), out.stdout
    for part in (
        "Hub unreachable",
        "Connect",
        "not in the local cache",
        "No weights are published",
    ):
        assert part in out.stdout, part
    assert "Retrying" not in out.stderr


def test_unreachable_hub_still_loads_a_cached_model(tmp_path):
    src = _tiny(decoder_width=256).save_pretrained(tmp_path / "src")
    hf_home = tmp_path / "hf"
    _fill_cache(hf_home / "hub", "unihpr/unihpr-tiny", src)
    code = """
        import unihpr.models as M
        print("LOADED", M.from_pretrained("unihpr-tiny").config.name)
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
    """HTTPS_PROXY is honoured (no direct TCP probe): the proxy sees the CONNECT, and its
    refusal makes the load fail at once (one connection, to the proxy)."""
    with _Proxy() as proxy:
        env = _proxy_env(tmp_path, "HTTPS_PROXY", proxy.url, "https://huggingface.co")
        out = _run(_COUNTED_LOAD.format(name="unihpr-w48"), env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert any(s.startswith("CONNECT huggingface.co:443") for s in proxy.seen), proxy.seen
    assert out.stdout.startswith(("ERR 1 ", "ERR 2 ")), out.stdout  # as above: no retries
    assert "Hub unreachable" in out.stdout and "403" in out.stdout


def test_hub_answer_through_http_proxy_says_not_published(tmp_path):
    with _Proxy() as proxy:
        env = _proxy_env(tmp_path, "HTTP_PROXY", proxy.url, "http://hub.invalid")
        out = _run(_COUNTED_LOAD.format(name="unihpr-w48"), env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "HEAD http://hub.invalid/unihpr/unihpr-w48/resolve/main/config.json" in proxy.seen
    assert "the Hub answered HTTP 404" in out.stdout and "No weights are published" in out.stdout


def test_missing_local_folder_is_one_line(tmp_path):
    """The quickstart's from_pretrained("unihpr-demo/model") run from another folder."""
    code = """
        import unihpr
        unihpr.from_pretrained("unihpr-demo/model")
    """
    env = {"HF_HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, capture_output=True,
        text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
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
        text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
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
    from unihpr.models.hub import resolve_package_path

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


def test_config_bombs_fail_fast_before_allocating(tmp_path):
    """Issue 12: a ~600-byte config.json asking for a huge model next to a small checkpoint."""
    cases = [
        ({"embed_dim": 800000}, "embed_dim must be an int in"),
        ({"embed_dim": 2**40}, "embed_dim must be an int in"),
        # within the bounds: caught by comparing the meta-device shapes with the header
        ({"embed_dim": 8192, "pose_width": 8192, "decoder_width": 8192}, "different configuration"),
    ]
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
        assert float(grown_mb) < 100.0, line  # memory, not time: no wall-clock limits
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
    cfg.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="nests JSON deeper than 16"):
        M.from_pretrained(folder)
    cfg.write_text(text.replace('"embed_dim": 128', '"embed_dim": NaN'))
    with pytest.raises(CheckpointError, match="NaN"):
        M.from_pretrained(folder)
    cfg.write_text(text.replace('"embed_dim": 128', '"embed_dim": 128, "embed_dim": 64'))
    with pytest.raises(CheckpointError, match="duplicate key 'embed_dim'"):
        M.from_pretrained(folder)
    cfg.write_text('"a string"')
    with pytest.raises(CheckpointError, match="JSON object"):
        M.from_pretrained(folder)
    cfg.write_bytes(b"\xff\xfe" * 10)
    with pytest.raises(CheckpointError, match="UTF-8"):
        M.from_pretrained(folder)
    cfg.write_text(" " * (1 << 20) + "{}")
    with pytest.raises(CheckpointError, match="at most"):
        M.from_pretrained(folder)


def test_config_of_0_1_with_extra_still_loads(tmp_path):
    folder = _tiny().save_pretrained(tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "extra": {}}))
    with pytest.warns(DeprecationWarning, match="extra"):
        assert M.from_pretrained(folder).config.name == "unihpr-tiny"


def test_map_location_is_checked_before_reading(tmp_path):
    folder = _tiny().save_pretrained(tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            M.from_pretrained(folder, map_location="cuda")
    with pytest.raises(ValueError, match="map_location"):
        M.from_pretrained(folder, map_location="gpu7")
    with pytest.raises(ValueError, match="meta"):
        M.from_pretrained(folder, map_location="meta")


def test_dtype_kind_mismatch_is_reported(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _tiny().save_pretrained(tmp_path)
    weights = load_file(str(folder / "model.safetensors"))
    key = next(k for k, v in weights.items() if v.is_floating_point())
    weights[key] = weights[key].to(torch.int32)
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="dtype mismatch"):
        M.from_pretrained(folder)


def test_hub_module_imports_no_model_class():
    import ast

    tree = ast.parse((ROOT / "unihpr" / "models" / "hub.py").read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert not [m for m in imported if m.startswith("unihpr")], imported


@pytest.mark.parametrize("decoder", ["mlp", "transformer", "diffusion"])
def test_meta_shapes_equal_the_real_state_dict(decoder):
    from unihpr.models.hub import expected_state_shapes

    config = M.get_config("unihpr-tiny", decoder=decoder, decoder_width=32)
    real = M.UniHPR(config).state_dict()
    meta = expected_state_shapes(M.UniHPR, config)
    assert list(meta) == list(real)
    for k, v in real.items():
        assert meta[k].is_meta and meta[k].shape == v.shape and meta[k].dtype == v.dtype, k
