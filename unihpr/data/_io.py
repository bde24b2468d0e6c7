"""Shared helpers for loaders: file checks that name the file, key and shape."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unihpr.data._safe_pickle import read_npz


def check_file(path: str | os.PathLike, what: str) -> Path:
    """Return ``path`` as a Path or raise ``FileNotFoundError`` naming it."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{what} file not found: {p}")
    return p


def write_npz_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Save ``arrays`` as the npz ``path`` so that readers only ever see a complete file."""
    # A name unique to this call: concurrent writers of one file never share a temporary.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_npz_object(path: Path, key: str, expected: str) -> Any:
    """Load ``key`` from an npz whose value is a pickled object (``.item()``).

    Pickled values go through the restricted unpickler of
    `unihpr.data._safe_pickle`: only numpy arrays and builtin values load.
    """
    arr = read_npz(path, key, expected)
    try:
        return arr.item() if arr.dtype == object else arr
    except ValueError as err:
        raise ValueError(f"{path}: key {key!r} must hold a single object ({expected})") from err


def check_array(
    value: Any, path: Path | str, key: str, shape: Sequence[int | None], dims: str
) -> np.ndarray:
    """Validate an array's rank and fixed dimensions; ``None`` matches any size."""
    try:
        arr = np.asarray(value) if not isinstance(value, np.ndarray) else value
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise ValueError(f"{path}: {key} is not an array of shape {dims} ({err})") from err
    ok = arr.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, arr.shape))
    real = np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    if not ok or not real:
        raise ValueError(
            f"{path}: {key} has shape {getattr(arr, 'shape', None)} and dtype "
            f"{getattr(arr, 'dtype', None)}, expected a real-valued array of shape {dims}"
        )
    return arr


def read_text_lines(path: Path, what: str) -> list[str]:
    """The lines of a text file (UTF-8, else Latin-1); ``ValueError`` for binary data."""
    data = path.read_bytes()
    if b"\x00" in data:
        raise ValueError(f"{path}: not a {what} text file (it contains NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # never fails; joint names may then look odd
    return text.splitlines()


def is_count(token: str) -> bool:
    """Whether ``token`` is a whole number of at most 18 ASCII digits (``int()`` also
    takes ``"²"``-like digits and 5,000-digit strings, with errors that name no file)."""
    return token.isascii() and token.isdigit() and len(token) <= 18


def is_float(token: str) -> bool:
    """Whether ``float(token)`` succeeds."""
    try:
        float(token)
    except ValueError:
        return False
    return True


def parse_float(token: str, path: Path, line: int, what: str) -> float:
    """``float(token)``, finite, or a ``ValueError`` naming the file, line and field."""
    try:
        value = float(token)
    except ValueError:
        raise ValueError(f"{path}:{line}: {what} must be a number, got {token!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}:{line}: {what} must be finite, got {token!r}")
    return value
