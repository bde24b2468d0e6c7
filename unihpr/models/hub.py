"""Save, load and share checkpoints (``config.json`` + ``model.safetensors``), for any model.

Like timm's ``_hub.py``, this module imports no architecture: it works for any
``nn.Module`` class that has

* a ``config_class`` with ``from_dict(dict)`` (validating every field) and whose
  instances have ``to_dict()`` (JSON-compatible),
* ``__init__(config)`` and a ``config`` attribute,
* optionally ``model_card(**kwargs) -> str`` (written as ``README.md``).

Where a name's files are (a folder, a folder inside an installed package, a
Hub repository) is the registry's business (`unihpr.models.registry`).

A checkpoint is data from elsewhere, so loading checks before it allocates:
``config.json`` is read only if it is small (`MAX_CONFIG_BYTES`, which also
bounds the parser's work) and every field is validated; the model is then built
on the ``meta`` device (no memory) and its parameter names, shapes and dtype
kinds are compared with the safetensors header; only a checkpoint that matches
is read, and its tensors must be finite. Weights are safetensors only, never
pickle.

Hub files are fetched with ``huggingface_hub`` (imported lazily), which
honours ``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` and the proxy variables.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from unihpr._validate import check_device

__all__ = [
    "CheckpointError",
    "PretrainedNotFoundError",
    "load_model",
    "push_to_hub",
    "save_pretrained",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FORMAT_VERSION = 1
# A config.json is a flat object of a few dozen fields (< 2 kB).
MAX_CONFIG_BYTES = 64 * 1024
# Seconds the reachability request may take before the Hub counts as unreachable.
HUB_PROBE_TIMEOUT = 5.0


class CheckpointError(ValueError):
    """A checkpoint exists but cannot be used (corrupt, truncated or another configuration)."""


class PretrainedNotFoundError(OSError):
    """No checkpoint could be found for a name or path."""


@dataclass(frozen=True)
class WeightsLocation:
    """Where a checkpoint lives: a local ``folder``, or else a Hub ``repo_id``.

    Attributes:
        folder: Local folder holding ``config.json`` and ``model.safetensors``.
        repo_id: Hub repository ``"org/name"`` (used when ``folder`` is ``None``).
        label: What the user asked for (a registry name, a path), for messages.
        published: ``False`` when the Hub id is reserved but holds no weights yet:
            only the local cache is then tried, and a failure says so.
    """

    folder: Path | None = None
    repo_id: str | None = None
    label: str = ""
    published: bool = True


# --------------------------------------------------------------------------- saving
def save_pretrained(
    model: nn.Module,
    directory: str | os.PathLike,
    *,
    model_card_kwargs: dict[str, Any] | None = None,
    push_to_hub: bool = False,
    repo_id: str | None = None,
    **push_to_hub_kwargs: Any,
) -> Path | str:
    """Write ``config.json``, ``model.safetensors`` and (if the model has one) a model card.

    Follows ``huggingface_hub.PyTorchModelHubMixin.save_pretrained``.

    Args:
        model: A module with a JSON-serialisable ``config`` (see the module docstring).
        directory: Target folder (created if needed).
        model_card_kwargs: Passed to ``model.model_card`` (e.g. ``license=``, ``datasets=``).
        push_to_hub: Upload the three files to ``repo_id`` after saving.
        repo_id: Hub repository, ``"org/name"`` or ``"name"`` in your namespace
            (default: the folder's name); created if needed.
        **push_to_hub_kwargs: ``private`` (create the repo private), ``token``
            (default: the logged-in user's, see ``hf auth login``), and keywords of
            ``HfApi.upload_folder`` such as ``commit_message`` and ``revision``.

    Returns:
        The folder, or with ``push_to_hub`` the URL of the upload commit.
    """
    from safetensors.torch import save_file

    if not callable(getattr(getattr(model, "config", None), "to_dict", None)):
        raise TypeError(f"model must have a config with to_dict(), got {type(model).__name__}")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config = {"format_version": FORMAT_VERSION, **model.config.to_dict()}
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    # safetensors refuses shared or non-contiguous storage: every tensor gets its own.
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    if callable(getattr(model, "model_card", None)):
        card = model.model_card(**(model_card_kwargs or {}))
        (out / CARD_NAME).write_text(card, encoding="utf-8")
    if not push_to_hub:
        return out
    from huggingface_hub import HfApi

    repo_id = repo_id or out.resolve().name
    api = HfApi(token=push_to_hub_kwargs.pop("token", None))
    private = push_to_hub_kwargs.pop("private", False)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    files = [CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]
    info = api.upload_folder(
        repo_id=repo_id, folder_path=out, allow_patterns=files, **push_to_hub_kwargs
    )
    return str(info.commit_url)


def push_to_hub(model: nn.Module, repo_id: str, **kwargs: Any) -> str:
    """Save ``model`` to a temporary folder and upload it to the Hub model repo ``repo_id``.

    Args:
        model: Model to upload (as for `save_pretrained`).
        repo_id: ``"org/name"``, or ``"name"`` in your namespace; created if needed.
        **kwargs: ``model_card_kwargs`` and the upload keywords of `save_pretrained`.

    Returns:
        The URL of the commit.
    """
    with tempfile.TemporaryDirectory() as tmp:
        return save_pretrained(model, tmp, push_to_hub=True, repo_id=repo_id, **kwargs)


# --------------------------------------------------------------------------- loading
def read_config_json(path: Path) -> dict[str, Any]:
    """The JSON object of a ``config.json`` without its ``format_version``.

    Raises:
        CheckpointError: Naming the file: over `MAX_CONFIG_BYTES`, not UTF-8,
            not JSON (nesting too deep included), not an object, another version.
    """
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise CheckpointError(
            f"{path} is {size} bytes; a config.json is at most {MAX_CONFIG_BYTES}"
        )
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError too
        why = "nests too deeply" if isinstance(err, RecursionError) else err
        raise CheckpointError(f"{path} is not valid UTF-8 JSON: {why}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(data).__name__}")
    version = data.pop("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format_version {version!r}, not {FORMAT_VERSION}")
    return data


def _safetensors(path: Path, read: Callable[[str], Any]) -> Any:
    from safetensors import SafetensorError

    try:
        return read(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{path} ({path.stat().st_size} bytes) is corrupt or truncated and cannot be read "
            f"as safetensors: {err}. Re-download it or re-save the model with save_pretrained()."
        ) from None


def _header(path: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{name: (shape, dtype)}`` from a safetensors header; reads no tensor."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        slices = {key: f.get_slice(key) for key in f.keys()}  # noqa: SIM118 (not a dict)
        return {k: (tuple(s.get_shape()), s.get_dtype()) for k, s in slices.items()}


class _SkipInit(TorchFunctionMode):
    """Skip the weight initialisers while a shape-only model is built on the meta device.

    ``normal_`` has no native meta kernel: its fallback imports torch's compiler
    stack on first use (seconds), for values nobody reads.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def _compare(model: nn.Module, header: dict, weights_path: Path, config_path: Path) -> None:
    expected = {k: (tuple(v.shape), v.is_floating_point()) for k, v in model.state_dict().items()}
    got = {k: (shape, dtype.startswith(("F", "BF"))) for k, (shape, dtype) in header.items()}
    bad = [f"{k}: file {header[k]} vs model {v}" for k, v in expected.items() if got.get(k, v) != v]
    missing, unexpected = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    if bad or missing or unexpected:
        raise CheckpointError(
            f"{weights_path} was saved for a different configuration than the one in "
            f"{config_path}: {len(bad)} shape or dtype mismatch(es) {bad[:5]}, "
            f"{len(missing)} missing key(s) {missing[:5]}, "
            f"{len(unexpected)} unexpected key(s) {unexpected[:5]}"
        )


def load_model(
    model_cls: type[nn.Module],
    config_path: Path,
    weights_path: Path,
    *,
    configure: Callable[[Any], Any] | None = None,
    map_location: Any = "cpu",
) -> nn.Module:
    """Build ``model_cls`` from a checkpoint's files, checking everything before allocating.

    Steps: read and validate ``config.json`` (via ``model_cls.config_class.from_dict``),
    apply ``configure`` (e.g. inference overrides), build the model on the
    ``meta`` device and compare its state dict with the safetensors header;
    only then read the weights, check that they are finite and load them
    (``strict``).

    Args:
        model_cls: The model class (see the module docstring).
        config_path: ``config.json``.
        weights_path: ``model.safetensors``.
        configure: ``config -> config`` applied after reading (errors propagate as raised).
        map_location: Device of the returned model.

    Returns:
        The model in eval mode.

    Raises:
        CheckpointError: An invalid config file, weights that do not fit it, or
            non-finite weights (naming the file and the tensor).
    """
    from safetensors.torch import load_file

    device = check_device("map_location", map_location)
    if device.type == "meta":
        raise ValueError("map_location='meta' would load no weights; use a real device")
    data = read_config_json(config_path)
    try:
        config = model_cls.config_class.from_dict(data)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{config_path} is not a valid model config: {err}") from None
    if configure is not None:
        config = configure(config)
    with torch.device("meta"), _SkipInit():
        skeleton = model_cls(config)
    _compare(skeleton, _safetensors(weights_path, _header), weights_path, config_path)
    weights = _safetensors(weights_path, load_file)
    for key, tensor in weights.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{weights_path}: tensor {key!r} holds NaN or infinite values")
    model = model_cls(config)
    model.load_state_dict(weights, strict=True)
    return model.to(device).eval()


# --------------------------------------------------------------------------- locating
def fetch_files(location: WeightsLocation, **hub_kwargs: Any) -> tuple[Path, Path]:
    """Paths of ``config.json`` and ``model.safetensors`` for a location (downloading if needed).

    Args:
        location: A local folder or a Hub repository.
        **hub_kwargs: For a Hub repository, passed to ``huggingface_hub.hf_hub_download``:
            ``revision``, ``token``, ``cache_dir``, ``local_files_only``, ``force_download``.

    Raises:
        PretrainedNotFoundError: Missing files, or a Hub repository that cannot be
            reached or holds no such files; one message says which and what to do.
    """
    if location.folder is None:
        return _hub_files(location, **hub_kwargs)
    paths = (location.folder / CONFIG_NAME, location.folder / WEIGHTS_NAME)
    if not all(p.is_file() for p in paths):
        raise PretrainedNotFoundError(
            f"{location.folder} lacks {[p.name for p in paths if not p.is_file()]}: a checkpoint "
            f"folder holds {CONFIG_NAME} and {WEIGHTS_NAME}, as written by save_pretrained()"
        )
    return paths


def _first_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {(str(err).strip() or 'no details').splitlines()[0]}"


def _why_cache_only(location: WeightsLocation, local_only: bool, revision: Any, token: Any):
    """Why only the local cache can be used, or ``None`` when the Hub answers.

    The one request is made without retries: ``hf_hub_download`` would retry a
    dead connection five times with backoff (~25 s) before using the cache.
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url

    if not location.published:
        return (
            f"no weights are published for {location.label!r} yet, its Hub id is only reserved "
            "(unihpr.models.list_models(pretrained=True) lists the models that load)"
        )
    if local_only or constants.HF_HUB_OFFLINE:
        return "offline (HF_HUB_OFFLINE=1 or local_files_only=True)"
    url = hf_hub_url(location.repo_id, CONFIG_NAME, revision=revision)
    try:
        get_hf_file_metadata(url, token=token, timeout=HUB_PROBE_TIMEOUT, retry_on_errors=False)
    except Exception as err:  # network errors come from whichever HTTP library is installed
        status = getattr(getattr(err, "response", None), "status_code", None)
        return (
            f"the Hub answered HTTP {status}" if status else f"Hub unreachable ({_first_line(err)})"
        )
    return None


def _hub_files(
    location: WeightsLocation,
    *,
    local_files_only: bool = False,
    force_download: bool = False,
    **kwargs: Any,
) -> tuple[Path, Path]:
    from huggingface_hub import constants, hf_hub_download

    revision = kwargs.get("revision")
    why = _why_cache_only(location, local_files_only, revision, kwargs.get("token"))
    try:
        config, weights = (
            hf_hub_download(location.repo_id, name, local_files_only=why is not None,
                            force_download=force_download and why is None, **kwargs)
            for name in (CONFIG_NAME, WEIGHTS_NAME)
        )  # fmt: skip
    except Exception as err:
        how = (
            f"{why}, and not in the local cache" if why else f"download failed ({_first_line(err)})"
        )
        # "org/name" may have been meant as a folder (e.g. "unihpr-demo/model" run from
        # another directory): say that it is not one either.
        cwd = f"no folder {location.label!r} in {Path.cwd()}, and "
        raise PretrainedNotFoundError(
            f"{cwd if location.label == location.repo_id else ''}could not load Hub repo "
            f"{location.repo_id!r} (revision {revision or 'main'}, cache "
            f"{kwargs.get('cache_dir') or constants.HF_HUB_CACHE}): {how}. To load "
            f"a local checkpoint, pass the folder written by save_pretrained() (it holds "
            f"{CONFIG_NAME} and {WEIGHTS_NAME})."
        ) from None
    return Path(config), Path(weights)
