"""Save, load and share checkpoints (``config.json`` + ``model.safetensors``), for any model.

Like timm's ``_hub.py``, this module imports no architecture: it works for any
``nn.Module`` class that has

* a ``config_class`` with ``from_dict(dict)`` (validating every field) and whose
  instances have ``to_dict()`` (JSON-compatible),
* ``__init__(config)`` and a ``config`` attribute,
* optionally ``model_card() -> str`` (written as ``README.md``).

Weights are stored with safetensors only (never pickle). Loading checks before
it allocates: ``config.json`` is size- and depth-limited and validated, then the
model is built on the ``meta`` device (no memory) and its parameter shapes are
compared with the safetensors header; only a checkpoint that matches is built
for real and read.

Files come from a local folder, a folder inside an installed Python package
(``package://<package>/<path>``, for weights shipped with a library) or a Hub
repository. Hub access honours ``HF_HUB_OFFLINE`` (cache only), ``HF_ENDPOINT``
and the proxy variables (``HTTPS_PROXY``; all requests go through
``huggingface_hub``'s HTTP client), and fails within seconds when the Hub
cannot be reached: one metadata request without retries decides whether to go
online or to use the local cache only. ``huggingface_hub`` is imported lazily.
"""

from __future__ import annotations

import importlib.resources
import inspect
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

__all__ = [
    "CONFIG_NAME",
    "PACKAGE_SCHEME",
    "WEIGHTS_NAME",
    "CheckpointError",
    "PretrainedNotFoundError",
    "WeightsLocation",
    "expected_state_shapes",
    "fetch_files",
    "load_model",
    "push_to_hub",
    "read_config_json",
    "read_safetensors_header",
    "resolve_package_path",
    "save_pretrained",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FORMAT_VERSION = 1
PACKAGE_SCHEME = "package://"
# A config.json is a flat object of a few dozen fields (< 2 kB). Anything much
# larger or deeper is not a config and is refused before parsing.
MAX_CONFIG_BYTES = 1 << 20
MAX_JSON_DEPTH = 16
# Seconds the reachability request may take before the Hub counts as unreachable.
HUB_PROBE_TIMEOUT = 5.0


class CheckpointError(ValueError):
    """A checkpoint exists but cannot be used (corrupt, truncated or another configuration)."""


class PretrainedNotFoundError(OSError):
    """No checkpoint could be found for a name or path."""


@dataclass(frozen=True)
class WeightsLocation:
    """Where a checkpoint lives: a local folder or a Hub repository.

    Attributes:
        folder: Local folder holding ``config.json`` and ``model.safetensors``.
        repo_id: Hub repository ``"org/name"`` (used when ``folder`` is ``None``).
        label: What the user asked for (a registry name, a path), for messages.
        published: ``False`` when the Hub id is reserved but no weights have been
            uploaded yet; a failed download then says so.
    """

    folder: Path | None = None
    repo_id: str | None = None
    label: str = ""
    published: bool = True

    def __post_init__(self) -> None:
        if (self.folder is None) == (self.repo_id is None):
            raise ValueError("a WeightsLocation needs exactly one of folder= and repo_id=")


# --------------------------------------------------------------------------- saving
def _state_dict_for_saving(model: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage; clone to own every tensor.
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def _config_dict(model: nn.Module) -> dict[str, Any]:
    config = getattr(model, "config", None)
    if config is None or not callable(getattr(config, "to_dict", None)):
        raise TypeError(
            f"model must have a config with to_dict(), got {type(model).__name__} "
            f"with config {type(config).__name__}"
        )
    return config.to_dict()


def save_pretrained(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write ``config.json``, ``model.safetensors`` and (if the model has one) a model card.

    Args:
        model: A module with a JSON-serialisable ``config`` (see the module docstring).
        directory: Target folder (created if needed).

    Returns:
        The folder.
    """
    from safetensors.torch import save_file

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    config = {"format_version": FORMAT_VERSION, **_config_dict(model)}
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    save_file(
        _state_dict_for_saving(model),
        str(out / WEIGHTS_NAME),
        metadata={"format": "pt", "config_name": str(config.get("name", ""))},
    )
    card = getattr(model, "model_card", None)
    if callable(card):
        (out / CARD_NAME).write_text(card(), encoding="utf-8")
    return out


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload model",
    revision: str | None = None,
) -> str:
    """Save ``model`` to a temporary folder and upload it to a Hub model repo.

    Args:
        model: Model to upload (as for `save_pretrained`).
        repo_id: ``"org/name"``; created if it does not exist.
        private: Create the repo as private.
        token: Hub token (default: the logged-in user's).
        commit_message: Commit message.
        revision: Branch to commit to.

    Returns:
        The URL of the commit (or of the repo if the client does not report one).
    """
    from huggingface_hub import HfApi

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=tmp,
            commit_message=commit_message,
            revision=revision,
            repo_type="model",
        )
    return str(getattr(info, "commit_url", None) or f"https://huggingface.co/{repo_id}")


# --------------------------------------------------------------------------- reading
def _json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether brackets nest deeper than ``limit`` outside strings (without recursion)."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (non-finite numbers are refused)")


def read_config_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint's ``config.json`` defensively.

    Refuses files over 1 MiB, nesting deeper than 16 levels (checked before
    parsing, so a crafted file cannot exhaust the parser's recursion),
    non-UTF-8 text, ``NaN``/``Infinity``, duplicate keys, anything but a JSON
    object, and another ``format_version``.

    Args:
        path: The file.

    Returns:
        The object without its ``format_version`` key.

    Raises:
        CheckpointError: Naming the file and what is wrong with it.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise CheckpointError(
            f"{path} is {size} bytes; a config.json is at most {MAX_CONFIG_BYTES} bytes"
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{path} is not UTF-8 text: {err}") from None
    if _json_depth_exceeds(text, MAX_JSON_DEPTH):
        raise CheckpointError(
            f"{path} nests JSON deeper than {MAX_JSON_DEPTH} levels; a config.json is a flat object"
        )
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except ValueError as err:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(data).__name__}")
    version = data.pop("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {version!r}; this unihpr reads version {FORMAT_VERSION}"
        )
    return data


_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}


def _unreadable(path: Path, err: BaseException) -> CheckpointError:
    size = path.stat().st_size if path.exists() else 0
    return CheckpointError(
        f"{path} ({size} bytes) is corrupt or truncated and cannot be read as "
        f"safetensors: {err}. Re-download it or re-save the model with save_pretrained()."
    )


def read_safetensors_header(path: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], str]]:
    """Names, shapes and dtypes of the tensors in a safetensors file, reading only its header.

    Args:
        path: The file.

    Returns:
        ``{name: (shape, dtype)}`` with safetensors dtype names (``"F32"``, ``"I64"``, ...).

    Raises:
        CheckpointError: The file is not a readable safetensors file (naming it and its size).
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            out = {}
            for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                sl = f.get_slice(key)
                out[key] = (tuple(int(s) for s in sl.get_shape()), str(sl.get_dtype()))
            return out
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise _unreadable(path, err) from None


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise _unreadable(path, err) from None


def _compare_with_header(
    expected: dict[str, torch.Tensor],
    header: dict[str, tuple[tuple[int, ...], str]],
    weights_path: Path,
    config_path: Path,
    describe: str,
) -> None:
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    common = sorted(set(expected) & set(header))
    shapes = [k for k in common if tuple(expected[k].shape) != header[k][0]]
    kinds = [
        k
        for k in common
        if k not in shapes and expected[k].is_floating_point() != (header[k][1] in _FLOAT_DTYPES)
    ]
    if not (missing or unexpected or shapes or kinds):
        return
    lines = [
        f"{weights_path} was saved for a different configuration than the one in "
        f"{config_path} ({describe}):"
    ]
    if shapes:
        detail = ", ".join(
            f"{k}: file {header[k][0]} vs model {tuple(expected[k].shape)}" for k in shapes[:5]
        )
        lines.append(f"  {len(shapes)} shape mismatch(es), e.g. {detail}")
    if kinds:
        detail = ", ".join(f"{k}: file {header[k][1]} vs model {expected[k].dtype}" for k in kinds)
        lines.append(f"  {len(kinds)} dtype mismatch(es), e.g. {detail}")
    if missing:
        lines.append(f"  {len(missing)} missing key(s), e.g. {missing[:5]}")
    if unexpected:
        lines.append(f"  {len(unexpected)} unexpected key(s), e.g. {unexpected[:5]}")
    raise CheckpointError("\n".join(lines))


_RANDOM_FILLS = frozenset(
    {
        torch.Tensor.normal_,
        torch.Tensor.uniform_,
        torch.Tensor.bernoulli_,
        torch.Tensor.exponential_,
        torch.Tensor.random_,
        torch.Tensor.cauchy_,
        torch.Tensor.log_normal_,
        torch.Tensor.geometric_,
        torch.Tensor.erfinv_,
    }
)


class _SkipInit(TorchFunctionMode):
    """Skip weight initialisers while a shape-only model is built on the meta device.

    Only the shapes are wanted; some initialisers (``normal_``) have no native
    meta kernel and would import torch's compiler stack on first use (seconds).
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init" or func in _RANDOM_FILLS:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def expected_state_shapes(model_cls: type[nn.Module], config: Any) -> dict[str, torch.Tensor]:
    """State dict of ``model_cls(config)`` as meta tensors: shapes and dtypes, no memory.

    Args:
        model_cls: The model class.
        config: Its configuration.

    Returns:
        ``{key: meta tensor}``, the keys and shapes a checkpoint must have.
    """
    with torch.device("meta"), _SkipInit():
        skeleton = model_cls(config)
    return skeleton.state_dict()


def _check_map_location(map_location: Any) -> torch.device:
    try:
        device = torch.device(map_location)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"map_location must name a device, got {map_location!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"map_location={map_location!r} but CUDA is not available here")
    if device.type == "meta":
        raise ValueError("map_location='meta' would load no weights; use a real device")
    return device


def load_model(
    model_cls: type[nn.Module],
    config_path: str | os.PathLike,
    weights_path: str | os.PathLike,
    *,
    configure: Callable[[Any], Any] | None = None,
    map_location: Any = "cpu",
) -> nn.Module:
    """Build ``model_cls`` from a checkpoint's files, checking everything before allocating.

    Steps: read and validate ``config.json`` (via ``model_cls.config_class.from_dict``),
    apply ``configure`` (e.g. inference overrides), build the model on the
    ``meta`` device and compare its state-dict shapes with the safetensors
    header; only then build it for real and load the weights (``strict``).

    Args:
        model_cls: The model class (see the module docstring).
        config_path: ``config.json``.
        weights_path: ``model.safetensors``.
        configure: ``config -> config`` applied after reading (errors propagate as raised).
        map_location: Device of the returned model.

    Returns:
        The model in eval mode.

    Raises:
        CheckpointError: An invalid config file, or weights that do not fit it.
    """
    config_path, weights_path = Path(config_path), Path(weights_path)
    device = _check_map_location(map_location)
    config_class = getattr(model_cls, "config_class", None)
    if config_class is None:
        raise TypeError(f"{model_cls.__name__} has no config_class")
    data = read_config_json(config_path)
    try:
        config = config_class.from_dict(data)
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"{config_path} does not describe a valid {config_class.__name__}: {err}"
        ) from None
    if configure is not None:
        config = configure(config)
    header = read_safetensors_header(weights_path)
    describe = ", ".join(f"{k}={v!r}" for k, v in list(config.to_dict().items())[:6])
    expected = expected_state_shapes(model_cls, config)
    _compare_with_header(expected, header, weights_path, config_path, describe)
    weights = _read_weights(weights_path)
    model = model_cls(config)
    model.load_state_dict(weights, strict=True)
    return model.to(device).eval()


# --------------------------------------------------------------------------- locating
def resolve_package_path(uri: str) -> Path:
    """The folder named by ``package://<importable.package>/<relative/path>``.

    Used for weights shipped inside a Python package (found with
    ``importlib.resources``, so it works for any installed package).

    Raises:
        PretrainedNotFoundError: The package cannot be imported or has no such folder.
    """
    if not isinstance(uri, str) or not uri.startswith(PACKAGE_SCHEME):
        raise ValueError(f"expected '{PACKAGE_SCHEME}<package>/<path>', got {uri!r}")
    package, _, rel = uri[len(PACKAGE_SCHEME) :].partition("/")
    parts = [p for p in rel.split("/") if p]
    if not package or not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"expected '{PACKAGE_SCHEME}<package>/<path>' without '..', got {uri!r}")
    try:
        root = importlib.resources.files(package)
    except (ModuleNotFoundError, TypeError) as err:
        raise PretrainedNotFoundError(
            f"{uri}: package {package!r} not importable ({err})"
        ) from None
    folder = Path(str(root.joinpath(*parts)))
    if not folder.is_dir():
        raise PretrainedNotFoundError(f"{uri}: no folder {folder} in the installed package")
    return folder


def _hub_offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    return bool(getattr(constants, "HF_HUB_OFFLINE", False)) or env


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0].rstrip(".") if text else "no details"


def _status(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _probe_hub(repo_id: str, revision: str | None) -> tuple[str, str]:
    """One metadata request without retries: ("ok" | "missing" | "unreachable", detail).

    Without it, ``hf_hub_download`` retries a failed connection five times with
    backoff (~25 s) before falling back to the cache. The request goes through
    huggingface_hub's HTTP client, so proxies and ``HF_ENDPOINT`` apply.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    kwargs: dict[str, Any] = {"timeout": HUB_PROBE_TIMEOUT}
    if "retry_on_errors" in inspect.signature(get_hf_file_metadata).parameters:
        kwargs["retry_on_errors"] = False
    try:
        get_hf_file_metadata(hf_hub_url(repo_id, CONFIG_NAME, revision=revision), **kwargs)
    except Exception as err:  # network errors come from whichever HTTP library is installed
        status = _status(err)
        detail = f"{type(err).__name__}: {_first_line(err)}"
        if status in (401, 403, 404):
            return "missing", f"HTTP {status}, {detail}"
        return "unreachable", detail
    return "ok", ""


def fetch_files(
    location: WeightsLocation, *, revision: str | None = None, cache_dir: str | None = None
) -> tuple[Path, Path]:
    """Paths of ``config.json`` and ``model.safetensors`` for a location (downloading if needed).

    Args:
        location: A local folder or a Hub repository.
        revision: Hub revision (branch, tag or commit).
        cache_dir: Hub cache folder (default: ``HF_HUB_CACHE``).

    Raises:
        PretrainedNotFoundError: Missing files, or a Hub repository that cannot be
            reached or holds no such files; one message says which and what to do.
    """
    if location.folder is not None:
        folder = location.folder
        for path in (folder / CONFIG_NAME, folder / WEIGHTS_NAME):
            if not path.is_file():
                raise PretrainedNotFoundError(
                    f"{path} not found: a checkpoint folder holds {CONFIG_NAME} and "
                    f"{WEIGHTS_NAME}, as written by save_pretrained()"
                )
        return folder / CONFIG_NAME, folder / WEIGHTS_NAME
    return _hub_files(location, revision, cache_dir)


def _hub_files(
    location: WeightsLocation, revision: str | None, cache_dir: str | None
) -> tuple[Path, Path]:
    from huggingface_hub import hf_hub_download

    repo_id = location.repo_id
    assert repo_id is not None
    offline = _hub_offline()
    state, detail = ("offline", "") if offline else _probe_hub(repo_id, revision)
    if state == "missing":
        raise _not_found(location, revision, cache_dir, f"the Hub answered {detail}")
    local_only = state != "ok"
    paths = []
    for filename in (CONFIG_NAME, WEIGHTS_NAME):
        try:
            paths.append(
                Path(
                    hf_hub_download(
                        repo_id,
                        filename,
                        revision=revision,
                        cache_dir=cache_dir,
                        local_files_only=local_only,
                        etag_timeout=HUB_PROBE_TIMEOUT,
                    )
                )
            )
        except Exception as err:
            if offline:
                mode = "offline (HF_HUB_OFFLINE=1), and not in the local cache"
            elif local_only:
                mode = f"Hub unreachable ({detail}), and not in the local cache"
            else:
                mode = f"download failed ({type(err).__name__}: {_first_line(err)})"
            raise _not_found(location, revision, cache_dir, f"{filename}: {mode}") from None
    return paths[0], paths[1]


def _not_found(
    location: WeightsLocation, revision: str | None, cache_dir: str | None, why: str
) -> PretrainedNotFoundError:
    published = (
        f" No weights are published for {location.label!r} yet; its Hub id "
        f"{location.repo_id!r} is reserved for them (see unihpr.models.list_models(pretrained=True) "
        "for the models that load)."
        if not location.published
        else ""
    )
    from huggingface_hub import constants

    # A bare "org/name" may have been meant as a folder (e.g. "unihpr-demo/model" run
    # from another directory): say that it is not one either.
    folder = (
        f"no folder {location.label!r} in {Path.cwd()}, and "
        if location.label == location.repo_id
        else ""
    )
    cache = cache_dir or getattr(constants, "HF_HUB_CACHE", "the default cache")
    return PretrainedNotFoundError(
        f"{folder}could not load Hub repo {location.repo_id!r} (revision {revision or 'main'}, "
        f"cache {cache}): {why}.{published} To load a local checkpoint, pass the folder "
        f"written by save_pretrained() (it holds {CONFIG_NAME} and {WEIGHTS_NAME})."
    )
