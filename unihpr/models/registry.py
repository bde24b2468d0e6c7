"""The model registry: named configurations with where their weights live.

One table, in the shape of timm's: each [`ModelEntry`][ModelEntry]
holds a configuration and, when weights exist or are planned, their Hub id
and/or a folder shipped inside a Python package. [`register_model`][register_model]
adds users' own entries; [`create_model`][create_model] and
[`UniHPR.from_pretrained`][UniHPR.from_pretrained] read it.
This module imports no model class.
"""

from __future__ import annotations

import fnmatch
import importlib.resources
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unihpr._validate import check_bool
from unihpr.models.config import UniHPRConfig
from unihpr.models.hub import PretrainedNotFoundError, WeightsLocation

__all__ = [
    "ModelEntry",
    "find_entry",
    "get_config",
    "get_entry",
    "list_models",
    "locate_weights",
    "register_model",
    "resolve_package_path",
]


@dataclass(frozen=True)
class ModelEntry:
    """One named model.

    Attributes:
        name: Registry name, e.g. ``"unihpr-tiny"``.
        config: Its architecture (``config.name`` equals ``name``).
        hub_id: Hub repository ``"org/name"`` of its weights, if any.
        weights: Local weights: a folder path, or ``"package://<package>/<path>"`` for a
            folder inside an installed Python package (weights shipped with a library;
            they load offline). Tried before ``hub_id``.
        published: Whether weights exist at ``hub_id``; ``False`` reserves the id
            (loading then fails with a "not published yet" message).
        description: One line for tables and errors.
    """

    name: str
    config: UniHPRConfig
    hub_id: str | None = None
    weights: str | None = None
    published: bool = True
    description: str = ""

    @property
    def pretrained(self) -> bool:
        """Whether weights are expected to load (shipped locally, or published on the Hub)."""
        return self.weights is not None or (self.hub_id is not None and self.published)


_REGISTRY: dict[str, ModelEntry] = {}
PACKAGE_SCHEME = "package://"


def split_package_uri(uri: str) -> tuple[str, list[str]]:
    """``(package, path parts)`` of ``package://<importable.package>/<path>``; imports nothing.

    Raises:
        ValueError: Another form, or ``.``/``..`` in the path.
    """
    package, _, rel = uri.removeprefix(PACKAGE_SCHEME).partition("/")
    parts = [p for p in rel.split("/") if p]
    valid = uri.startswith(PACKAGE_SCHEME) and all(s.isidentifier() for s in package.split("."))
    if not valid or not parts or {".", ".."} & set(parts):
        raise ValueError(f"expected '{PACKAGE_SCHEME}<package>/<path>' without '..', got {uri!r}")
    return package, parts


def resolve_package_path(uri: str) -> Path:
    """The folder named by a ``package://`` URI, found with ``importlib.resources``.

    Raises:
        ValueError: See `split_package_uri`.
        PretrainedNotFoundError: The package cannot be imported or has no such folder.
    """
    package, parts = split_package_uri(uri)
    try:
        folder = Path(str(importlib.resources.files(package).joinpath(*parts)))
    except (ModuleNotFoundError, TypeError) as err:
        raise PretrainedNotFoundError(
            f"{uri}: package {package!r} not importable ({err})"
        ) from None
    if not folder.is_dir():
        raise PretrainedNotFoundError(f"{uri}: no folder {folder} in the installed package")
    return folder


def register_model(
    name: str,
    config: UniHPRConfig,
    hub_id: str | None = None,
    *,
    weights: str | os.PathLike | None = None,
    published: bool = True,
    description: str = "",
    overwrite: bool = False,
) -> ModelEntry:
    """Add a named model to the registry.

    Args:
        name: New registry name.
        config: Its architecture; stored with ``name=name``.
        hub_id: Hub repository of its weights (``"org/name"``).
        weights: Local weights folder, or ``"package://<package>/<path>"`` (only its
            form is checked here: the package is imported when the weights load).
        published: ``False`` if ``hub_id`` holds no weights yet.
        description: One line describing it.
        overwrite: Replace an existing entry of that name (otherwise ``ValueError``).

    Returns:
        The entry.

    Examples:
        >>> from unihpr.models import get_config, register_model, create_model
        >>> entry = register_model("my-lifter", get_config("unihpr-tiny", decoder="mlp"))
        >>> create_model("my-lifter").config.name
        'my-lifter'
    """
    for arg, value in (("name", name), ("hub_id", hub_id), ("description", description)):
        if not isinstance(value, str) and (value is not None or arg == "name"):
            raise TypeError(f"{arg} must be a str, got {type(value).__name__} {value!r}")
    if not name or "/" in name or name != name.strip():
        raise ValueError(f"name must be a non-empty string without '/', got {name!r}")
    if not isinstance(config, UniHPRConfig):
        raise TypeError(f"config must be a UniHPRConfig, got {type(config).__name__}")
    if hub_id is not None and (hub_id.count("/") != 1 or hub_id.startswith((".", "/", "~"))):
        raise ValueError(f"hub_id must look like 'org/name', got {hub_id!r}")
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be a path or a package:// URI, got {type(weights).__name__}")
    if isinstance(weights, str) and weights.startswith(PACKAGE_SCHEME):
        split_package_uri(weights)
    check_bool("published", published)
    check_bool("overwrite", overwrite)
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"model {name!r} is already registered; pass overwrite=True to replace it")
    local = None if weights is None else os.fspath(weights)
    entry = ModelEntry(name, config.replace(name=name), hub_id, local, published, description)
    _REGISTRY[name] = entry
    return entry


def list_models(filter: str | Sequence[str] | None = None, pretrained: bool = False) -> list[str]:
    """Registered names, sorted, as timm's ``list_models``.

    Args:
        filter: Wildcard pattern(s) of ``fnmatch`` (``"*w48*"``); a name is
            listed if it matches any of them. ``None``: all names.
        pretrained: Only models whose weights are shipped or published.

    Examples:
        >>> from unihpr.models import list_models
        >>> list_models("*w48*")
        ['unihpr-w48']
    """
    patterns = ["*"] if filter is None else [filter] if isinstance(filter, str) else filter
    if not isinstance(patterns, (list, tuple)) or not all(isinstance(p, str) for p in patterns):
        raise TypeError(
            f"filter must be a wildcard pattern or a list of them, got {type(filter).__name__} "
            f"{filter!r} (for models with weights pass pretrained=True)"
        )
    check_bool("pretrained", pretrained)
    names = [n for n in _REGISTRY if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    return sorted(n for n in names if _REGISTRY[n].pretrained or not pretrained)


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name`` (``ValueError`` listing the names if unknown)."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {list_models()}")
    return _REGISTRY[name]


def find_entry(name: object) -> ModelEntry | None:
    """The entry registered under ``name``, or ``None`` (also for paths and non-strings)."""
    return _REGISTRY.get(name) if isinstance(name, str) else None


def get_config(name: str, /, **overrides: Any) -> UniHPRConfig:
    """The named configuration with ``overrides`` applied (a checked copy)."""
    return get_entry(name).config.replace(**overrides)


def locate_weights(name_or_path: str | os.PathLike) -> WeightsLocation:
    """Where the weights of a registry name, a local folder or a Hub id are.

    Order: an existing folder; a registry name (its shipped ``weights`` first, then
    its ``hub_id``); a Hub repo id ``"org/name"``. A path that is clearly local
    (starts with ``.``, ``/`` or ``~``, or whose first component is an existing
    folder) and does not exist is reported as a missing folder without asking the Hub.

    Raises:
        PretrainedNotFoundError: In one line, naming what was looked for.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a str or path, got {type(name_or_path).__name__}")
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        return WeightsLocation(folder=path, label=text)
    if path.exists():
        raise PretrainedNotFoundError(
            f"{text} is a file; pass the folder holding config.json and model.safetensors"
        )
    if text in _REGISTRY:
        entry = _REGISTRY[text]
        weights = entry.weights
        if weights is not None:
            local = resolve_package_path(weights) if weights.startswith(PACKAGE_SCHEME) else None
            return WeightsLocation(folder=local or Path(weights), label=text)
        if entry.hub_id is not None:
            return WeightsLocation(repo_id=entry.hub_id, label=text, published=entry.published)
        raise PretrainedNotFoundError(
            f"{text!r} has no weights (a configuration only); create_model({text!r}) builds it "
            f"untrained. Models with weights: {list_models(pretrained=True)}"
        )
    first = Path(text).parts[0] if Path(text).parts else ""
    looks_local = text.startswith((".", "/", "~", os.sep)) or (
        len(Path(text).parts) > 1 and Path(first).expanduser().is_dir()
    )
    if looks_local:
        raise PretrainedNotFoundError(
            f"no such folder: {text} (resolved to {path.resolve()}); pass the folder written "
            "by save_pretrained(), or run from the directory that holds it"
        )
    if text.count("/") == 1 and all(text.split("/")):
        return WeightsLocation(repo_id=text, label=text)
    raise PretrainedNotFoundError(
        f"{text!r} is neither an existing folder, nor a registered model "
        f"({list_models()}), nor a Hub repo id of the form 'org/name'"
    )


# ------------------------------------------------------------------ the built-in entries
# 15 joints of the bundled pybullet humanoid motion data, 64x64 renders; small
# enough to train on 2 CPU cores in minutes.
register_model(
    "unihpr-tiny",
    UniHPRConfig(
        num_joints=15,
        embed_dim=128,
        image_size=(64, 64),
        image_backbone="hrnet_tiny",
        pose_width=64,
        pose_depth=2,
        pose_heads=4,
        pose_mlp_ratio=2.0,
        # all output tokens flattened: ~40 mm better lifting than [CLS] at this size
        # (docs/benchmarks.md); the paper's configurations keep [CLS]
        pose_readout="tokens",
        bbox_reference=64.0,
        decoder="mlp",
        decoder_width=256,
        decoder_depth=2,
        decoder_heads=4,
        diffusion_train_steps=200,
        diffusion_sampling_steps=8,
    ),
    hub_id="unihpr/unihpr-tiny",
    published=False,
    description="15-joint humanoid, 64x64 renders, HRNet-tiny; trains on a CPU in minutes",
)
# unihpr-tiny trained by `unihpr demo` on the bundled clips; the weights ship inside
# the package (unihpr/models/weights/unihpr-tiny-mocap/README.md is its model card).
register_model(
    "unihpr-tiny-mocap",
    _REGISTRY["unihpr-tiny"].config,
    weights="package://unihpr.models.weights/unihpr-tiny-mocap",
    description="unihpr-tiny trained on the bundled humanoid mocap; ships with the package, "
    "the default model of unihpr.lift",
)
# The paper's, which UniHPRConfig's defaults are: Human3.6M 17 joints, D = 512,
# 256x192 crops, HRNet-W32 / W48, diffusion decoders (its best). Their Hub ids are
# reserved; no weights are published yet.
for _name, _backbone in (("unihpr-w32", "hrnet_w32"), ("unihpr-w48", "hrnet_w48")):
    register_model(
        _name,
        UniHPRConfig(image_backbone=_backbone),
        hub_id=f"unihpr/{_name}",
        published=False,
        description=f"the paper's Human3.6M model, {_backbone}, diffusion decoders",
    )
