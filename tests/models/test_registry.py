"""Named configurations and create_model."""

import gzip
import json
from pathlib import Path

import pytest
import torch

from unihpr.models import UniHPR, create_model, get_config, get_entry, list_models, register_model
from unihpr.models import registry as registry_module
from unihpr.models.hrnet import HEAD_PREFIXES

with gzip.open(Path(__file__).parent / "data" / "hrnet_timm_manifest.json.gz", "rt") as _fh:
    MANIFEST = json.load(_fh)


@pytest.fixture
def registry(monkeypatch):
    """A scratch copy of the registry, restored after the test."""
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))
    return registry_module


def test_names_and_paper_settings():
    assert list_models() == ["unihpr-tiny", "unihpr-tiny-mocap", "unihpr-w32", "unihpr-w48"]
    # the one shipped model: weights inside the package, no Hub id
    assert list_models(pretrained=True) == ["unihpr-tiny-mocap"]
    shipped = get_entry("unihpr-tiny-mocap")
    assert shipped.weights == "package://unihpr.models.weights/unihpr-tiny-mocap"
    assert shipped.hub_id is None and shipped.config == get_config("unihpr-tiny", name=shipped.name)
    for name in ("unihpr-tiny", "unihpr-w32", "unihpr-w48"):  # Hub ids reserved, nothing published
        entry = get_entry(name)
        assert entry.config.name == name and entry.hub_id == f"unihpr/{name}"
        assert not entry.published and not entry.pretrained
    tiny = get_config("unihpr-tiny")
    assert (tiny.num_joints, tiny.image_size) == (15, (64, 64))
    for name, backbone in (("unihpr-w32", "hrnet_w32"), ("unihpr-w48", "hrnet_w48")):
        cfg = get_config(name)
        assert (cfg.num_joints, cfg.image_size, cfg.image_backbone) == (17, (256, 192), backbone)


def test_create_with_overrides_and_errors():
    m = create_model("unihpr-tiny", decoder="diffusion", embed_dim=64)
    assert isinstance(m, UniHPR) and m.config.embed_dim == 64
    assert type(m.decoder3d).__name__ == "DiffusionDecoder"
    assert get_config("unihpr-tiny").embed_dim == 128  # registry entry untouched
    with pytest.raises(ValueError, match="available"):
        create_model("unihpr-w64")
    with pytest.raises(ValueError, match="embed_dimm"):
        create_model("unihpr-tiny", embed_dimm=3)
    with pytest.raises(ValueError, match="architecture"):
        create_model("unihpr-tiny", pretrained=True, embed_dim=64)


def test_w32_backbone_parameter_count_matches_timm_backbone():
    m = create_model("unihpr-w32")
    ref = MANIFEST["models"]["hrnet_w32"]
    backbone = sum(
        torch.Size(ref["state_dict"][k]).numel()
        for k in ref["parameters"]
        if not k.startswith(HEAD_PREFIXES)
    )
    assert sum(p.numel() for p in m.image_encoder.backbone.parameters()) == backbone
    assert m.image_encoder.proj.in_features == 32 + 64 + 128 + 256


def test_tiny_trains_a_step_fast():
    m = create_model("unihpr-tiny")
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    img = torch.rand(8, 3, 64, 64)
    p3 = torch.randn(8, 15, 3) * 0.3
    before = m.decoder3d.loss(m.encode_image(img), "image", p3)
    for _ in range(5):
        opt.zero_grad()
        loss = m.decoder3d.loss(m.encode_image(img), "image", p3)
        loss.backward()
        opt.step()
    assert loss.item() < before.item()


def test_register_model(registry):
    cfg = get_config("unihpr-tiny", decoder="transformer")
    entry = register_model("my-model", cfg, hub_id="me/my-model", description="mine")
    assert entry.config.name == "my-model" and entry.pretrained
    assert "my-model" in list_models() and "my-model" in list_models(pretrained=True)
    m = create_model("my-model", decoder_depth=1)
    assert m.config.name == "my-model" and m.config.decoder == "transformer"
    assert m.config.decoder_depth == 1
    with pytest.raises(ValueError, match="already registered"):
        register_model("my-model", cfg)
    register_model("my-model", cfg.replace(embed_dim=64), overwrite=True)
    assert get_config("my-model").embed_dim == 64
    # a configuration without weights is listed, but not as pretrained
    register_model("config-only", cfg)
    assert "config-only" in list_models() and "config-only" not in list_models(pretrained=True)
    with pytest.raises(OSError, match="has no weights"):
        create_model("config-only", pretrained=True)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": ""}, ValueError, "name"),
        ({"name": "a/b"}, ValueError, "name"),
        ({"config": {"embed_dim": 3}}, TypeError, "UniHPRConfig"),
        ({"hub_id": "no-slash"}, ValueError, "hub_id"),
        ({"hub_id": "/abs/path"}, ValueError, "hub_id"),
        ({"weights": 3}, TypeError, "weights"),
        ({"name": 3}, TypeError, "name"),
        ({"hub_id": 3}, TypeError, "hub_id"),
        ({"published": 1}, TypeError, "published"),
    ],
)
def test_register_model_validation(registry, kwargs, error, match):
    args = {"name": "x", "config": get_config("unihpr-tiny"), **kwargs}
    with pytest.raises(error, match=match):
        register_model(args.pop("name"), args.pop("config"), **args)


def test_locate_weights_order(registry, tmp_path, monkeypatch):
    from unihpr.models.hub import PretrainedNotFoundError
    from unihpr.models.registry import locate_weights

    register_model("local-one", get_config("unihpr-tiny"), hub_id="me/x", weights=tmp_path)
    assert locate_weights("local-one").folder == tmp_path  # shipped weights before the Hub id
    assert locate_weights("unihpr-w48").repo_id == "unihpr/unihpr-w48"
    assert not locate_weights("unihpr-w48").published
    assert locate_weights("org/name").repo_id == "org/name"
    assert locate_weights(tmp_path).folder == tmp_path
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(PretrainedNotFoundError, match="no such folder"):
        locate_weights("runs/model")  # "runs" exists here: clearly a local path
    with pytest.raises(TypeError, match="name_or_path"):
        locate_weights(None)


def test_pretrained_override_checked_before_any_lookup():
    with pytest.raises(ValueError, match="architecture"):
        create_model("unihpr-w48", pretrained=True, embed_dim=64)
    with pytest.raises(ValueError, match="available"):
        create_model("unihpr-w64", pretrained=True)
    with pytest.raises(TypeError, match="pretrained"):
        create_model("unihpr-tiny", pretrained="yes")


def test_models_package_has_no_import_cycle():
    """Every import inside unihpr.models (lazy ones included) forms an acyclic graph."""
    import ast

    root = Path(__file__).resolve().parents[2] / "unihpr" / "models"
    graph = {}
    for path in root.glob("*.py"):
        if path.name == "__init__.py":
            continue
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "unihpr.models":  # `from unihpr.models import hub`
                    deps |= {f"unihpr.models.{a.name}" for a in node.names}
                elif node.module.startswith("unihpr.models."):
                    deps.add(node.module)
        graph[f"unihpr.models.{path.stem}"] = {d for d in deps if d != "unihpr.models"}

    def visit(node, stack):
        assert node not in stack, " -> ".join([*stack, node])
        for dep in graph.get(node, ()):
            visit(dep, [*stack, node])

    for module in graph:
        visit(module, [])
    assert "unihpr.models.unihpr" not in graph["unihpr.models.hub"]
    assert "unihpr.models.hub" in graph["unihpr.models.unihpr"]


def test_list_models_filters_with_wildcards_as_timm():
    assert list_models("*w48*") == ["unihpr-w48"]
    assert list_models("unihpr-tiny*") == ["unihpr-tiny", "unihpr-tiny-mocap"]
    assert list_models(["*w32", "*w48"]) == ["unihpr-w32", "unihpr-w48"]
    assert list_models("*tiny*", pretrained=True) == ["unihpr-tiny-mocap"]
    assert list_models("nothing*") == [] and list_models(None) == list_models()
    # timm's habit list_models(pretrained=True) is a keyword; a positional bool is an error
    for bad in (True, 3, [None]):
        with pytest.raises(TypeError, match="filter"):
            list_models(bad)
    with pytest.raises(TypeError, match="pretrained"):
        list_models(pretrained="yes")


def test_package_weights_are_imported_only_when_loaded(registry, monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "this", raising=False)
    register_model("zen", get_config("unihpr-tiny"), weights="package://this/x")
    assert "this" not in sys.modules  # the form is checked; nothing is imported
    with pytest.raises(OSError, match="package://this/x: package 'this' not importable"):
        create_model("zen", pretrained=True)
    assert "this" in sys.modules
    for bad in ("package://../x", "package://this", "package://this/../x", "package://a b/x"):
        with pytest.raises(ValueError, match="package://"):
            register_model("bad", get_config("unihpr-tiny"), weights=bad)
