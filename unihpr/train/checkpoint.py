"""Atomic, checksummed checkpoint files and the RNG state needed for exact resume.

A checkpoint is an ordinary ``torch.save`` zip archive whose content loads
with ``torch.load(weights_only=True)``: tensors, numbers, strings and
containers only (the NumPy RNG state is stored as a tensor), so loading one
never unpickles arbitrary objects. The archive's comment (the free-text field
at the end of every zip file, which zip readers ignore) holds
``unihpr-sha256:<hex>``, the SHA-256 of every byte before it, verified before
anything is loaded: a truncated, zeroed or bit-flipped file is reported as
corrupt instead of loading wrong values.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import re
import struct
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unihpr._validate import check_device

_CKPT_RE = re.compile(r"^ckpt-(\d{8,})\.pt$")
# tempfile.mkstemp names of save_checkpoint: ".ckpt-00000010.pt.<random>.tmp"
_TMP_RE = re.compile(r"^\.ckpt-\d{8,}\.pt\..+\.tmp$")
_EOCD = b"PK\x05\x06"  # zip end-of-central-directory signature; the record is 22 bytes
_TAG = b"unihpr-sha256:"
_COMMENT_LEN = len(_TAG) + 64
_CHUNK = 1 << 20


class CorruptCheckpointError(ValueError):
    """A checkpoint file is damaged: truncated, empty, not a zip, or its checksum fails."""


def _sha256(f, size: int) -> str:
    h = hashlib.sha256()
    f.seek(0)
    left = size
    while left:
        chunk = f.read(min(_CHUNK, left))
        if not chunk:
            break
        h.update(chunk)
        left -= len(chunk)
    return h.hexdigest()


def _append_checksum(f) -> None:
    """Put ``unihpr-sha256:<hex>`` into the zip comment of the archive in ``f``."""
    size = f.seek(0, os.SEEK_END)
    f.seek(size - 22)
    tail = f.read(22)
    if size < 22 or tail[:4] != _EOCD or tail[20:] != b"\x00\x00":
        raise RuntimeError("torch.save did not end its archive with a comment-free zip record")
    f.seek(size - 2)
    f.write(struct.pack("<H", _COMMENT_LEN))
    f.flush()
    digest = _sha256(f, size)
    f.seek(size)
    f.write(_TAG + digest.encode())


def _verify_checksum(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size < 22 + _COMMENT_LEN:
            raise CorruptCheckpointError(
                f"checkpoint {str(path)!r} is corrupt: {size} bytes is too short for a checkpoint"
            )
        f.seek(size - 22 - _COMMENT_LEN)
        tail = f.read()
        body = size - _COMMENT_LEN
        comment = tail[22:]
        if tail[:4] != _EOCD or tail[20:22] != struct.pack("<H", _COMMENT_LEN):
            raise CorruptCheckpointError(
                f"checkpoint {str(path)!r} is corrupt or was not written by save_checkpoint "
                "(no checksummed zip record at its end)"
            )
        if not comment.startswith(_TAG):
            raise CorruptCheckpointError(f"checkpoint {str(path)!r} has no unihpr checksum")
        expected = comment[len(_TAG) :].decode("ascii", "replace")
        actual = _sha256(f, body)
    if actual != expected:
        raise CorruptCheckpointError(
            f"checkpoint {str(path)!r} is corrupt: SHA-256 {actual} does not match the "
            f"stored {expected}"
        )


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically, with a checksum.

    The state is written to a temporary file in the same directory, flushed to
    disk and moved over ``path`` with `os.replace`, so a crash at any
    moment leaves either the old file or the complete new one, never a
    truncated checkpoint (an interrupted save leaves a temporary
    ``.<name>.<random>.tmp``, removed by ``remove_stale_temporaries`` when a trainer starts).

    Args:
        path: Destination file; its directory is created if needed.
        state: Tensors, numbers, strings, ``None`` and lists / tuples / dicts of
            them (what ``torch.load(weights_only=True)`` reads back).

    Returns:
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w+b") as f:
            torch.save(state, f)
            f.flush()
            _append_checksum(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by [`save_checkpoint`][], checksum first.

    Args:
        path: Checkpoint file.
        map_location: Passed to `torch.load`; a device this machine lacks
            (e.g. CUDA without CUDA) is refused with a ``ValueError``.

    Returns:
        The saved state dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CorruptCheckpointError: The file is truncated, empty, not a zip
            archive, lacks its checksum or fails it (a ``ValueError``).
        ValueError: The file holds objects other than tensors and plain values
            (they are refused, never unpickled), or lacks the ``"step"`` key.
    """
    path = Path(path)
    if not (map_location is None or callable(map_location) or isinstance(map_location, dict)):
        check_device("map_location", map_location)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    _verify_checksum(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = found.group(1) if found else str(err).splitlines()[0]
        raise ValueError(
            f"checkpoint {str(path)!r} holds an object other than tensors and plain values "
            f"({what}); refusing to unpickle it (that could run code from the file)"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CorruptCheckpointError(
            f"checkpoint {str(path)!r} is corrupt or not a torch checkpoint: {err}"
        ) from err
    if not isinstance(state, dict) or "step" not in state:
        raise ValueError(
            f"checkpoint {str(path)!r} is not a unihpr training checkpoint (no 'step')"
        )
    return state


def checkpoint_path(directory: str | os.PathLike, step: int) -> Path:
    """Return the file name used for the checkpoint of ``step`` in ``directory``."""
    return Path(directory) / f"ckpt-{step:08d}.pt"


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """Return ``(step, path)`` of the step checkpoints in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _CKPT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """Return the newest step checkpoint in ``directory``, or ``None``."""
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def prune_checkpoints(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the ``keep`` newest step checkpoints in ``directory``."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    for _, p in list_checkpoints(directory)[:-keep]:
        p.unlink(missing_ok=True)


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files an interrupted [`save_checkpoint`][] left in ``directory``.

    Only call it when no save is in progress (the trainer does at start-up).

    Returns:
        The removed paths.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for p in sorted(directory.iterdir()):
        if _TMP_RE.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def load_latest_checkpoint(
    directory: str | os.PathLike, map_location: Any = "cpu", *, quarantine: bool = True
) -> tuple[dict[str, Any], Path] | None:
    """Load the newest intact step checkpoint of ``directory``.

    A checkpoint that fails to load because it is damaged
    ([`CorruptCheckpointError`][]: truncated, empty, bad checksum) is
    reported with a warning and the next older one is tried; with
    ``quarantine`` the damaged file is renamed to ``<name>.corrupt`` so that
    it is neither listed nor kept by pruning again.

    Returns:
        ``(state, path)``, or ``None`` when the directory holds no checkpoint.

    Raises:
        CorruptCheckpointError: Every checkpoint in ``directory`` is damaged.
        ValueError: A checkpoint is refused for its content (see [`load_checkpoint`][]).
    """
    found = list_checkpoints(directory)
    errors = []
    for _, path in reversed(found):
        try:
            return load_checkpoint(path, map_location), path
        except (CorruptCheckpointError, FileNotFoundError) as err:
            # FileNotFoundError: another rank quarantined it after our listing.
            errors.append(str(err))
            note = ""
            if quarantine and path.is_file():
                try:
                    path.replace(path.with_name(path.name + ".corrupt"))
                    note = f"; renamed it to {path.name}.corrupt"
                except OSError:
                    pass
            warnings.warn(f"skipping a damaged checkpoint: {err}{note}", stacklevel=2)
    if errors:
        raise CorruptCheckpointError(
            f"every checkpoint in {str(directory)!r} is damaged: " + "; ".join(errors)
        )
    return None


def capture_rng_state() -> dict[str, Any]:
    """Snapshot the global torch, CUDA, NumPy and Python random states."""
    kind, key, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        # a tensor, not numpy's tuple with an array: torch.load(weights_only=True) reads it
        "numpy": {
            "kind": str(kind),
            "key": torch.from_numpy(np.asarray(key, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore a snapshot taken by [`capture_rng_state`][]."""
    for key in ("torch", "numpy", "python"):
        if key not in state:
            raise ValueError(f"RNG state lacks the {key!r} entry (has {sorted(state)})")
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
         n["cached_gaussian"])
    )  # fmt: skip
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
