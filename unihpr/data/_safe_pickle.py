"""Reading the pickled parts of public dataset files without running code.

A pickle is a program: loading one calls whatever importable function it
names, so ``pickle.load`` on a downloaded file hands control to whoever made
the file. The 3DPW ``sequenceFiles/*.pkl`` and the object arrays of the
VideoPose3D / P-STMO ``.npz`` files do contain pickles, but only of dicts,
lists, tuples, strings, numbers and numpy arrays. [`restricted_load`][] reads
those and refuses every other global the stream names *before* calling it, so a
crafted file raises [`UnsafePickleError`][] and runs nothing.

[`read_npz`][] reads one key of an npz. ``np.load(..., allow_pickle=True)`` is
not safe even for the numeric keys: a file named ``.npz`` that is not a zip
archive is unpickled whole. The format is therefore checked first, numeric
arrays are read with ``allow_pickle=False`` and object arrays go through
[`restricted_load`][].
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["UnsafePickleError", "read_npz", "restricted_load"]

#: The globals numpy's array and scalar pickles name (numpy 1 spells the
#: private package ``numpy.core``, numpy 2 ``numpy._core``), plus the builtin
#: containers pickle cannot express with opcodes.
_NUMPY_PRIVATE = {
    ("multiarray", "_reconstruct"),
    ("multiarray", "scalar"),
    ("numeric", "_frombuffer"),
}
_ALLOWED_BUILTINS = {"set", "frozenset", "complex", "bytearray"}
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class UnsafePickleError(ValueError):
    """A pickle names a global outside the allow-list (it could run code)."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles made by Python 3 spell ``bytes`` as _codecs.encode(str, "latin1").
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise UnsafePickleError(f"_codecs.encode is only allowed with 'latin1', got {encoding!r}")
    return text.encode("latin1")


def _numpy_private(module: str, name: str) -> Any:
    # Resolve under whichever private package this numpy has; the file may
    # come from either major version.
    sub = module.rsplit(".", 1)[-1]
    for pkg in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{pkg}.{sub}"), name)
        except (ImportError, AttributeError):
            continue
    raise UnsafePickleError(f"numpy has no {module}.{name}")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray") and name in (
            "ndarray",
            "dtype",
        ):
            return getattr(np, name)
        parts = module.split(".")
        if (
            len(parts) == 3
            and parts[0] == "numpy"
            and parts[1] in ("core", "_core")
            and (parts[2], name) in _NUMPY_PRIVATE
        ):
            return _numpy_private(module, name)
        if module in ("builtins", "__builtin__") and name in _ALLOWED_BUILTINS:
            return getattr(__import__("builtins"), name)
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        raise UnsafePickleError(
            f"{self.source}: refusing to unpickle {module}.{name}: only numpy arrays, numbers, "
            "strings and builtin containers are allowed (loading any other global could run "
            "code from the file)"
        )


def restricted_load(file: IO[bytes], source: str | os.PathLike) -> Any:
    """Unpickle ``file`` admitting only numpy arrays/scalars and builtin values.

    Args:
        file: A binary stream positioned at the start of a pickle.
        source: What the stream is (a file name), used in error messages.

    Returns:
        The unpickled object.

    Raises:
        UnsafePickleError: The pickle names a global outside the allow-list;
            nothing it names has been called.
        ValueError: The stream is not a readable pickle.
    """
    source = str(source)
    try:
        return _RestrictedUnpickler(file, source).load()
    except UnsafePickleError:
        raise
    except MemoryError as err:
        raise ValueError(f"{source}: pickle asks for more memory than is available") from err
    except Exception as err:  # a truncated or garbled stream raises almost any type
        raise ValueError(f"{source}: not a readable pickle ({type(err).__name__}: {err})") from err


def _read_npy(fh: IO[bytes], source: str) -> np.ndarray:
    try:
        version = np.lib.format.read_magic(fh)
        reader = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = reader(fh)
    except (ValueError, EOFError) as err:
        raise ValueError(f"{source}: not a readable .npy member ({err})") from err
    if not dtype.hasobject:
        fh.seek(0)
        try:
            return np.lib.format.read_array(fh, allow_pickle=False)
        except (ValueError, EOFError) as err:
            raise ValueError(f"{source}: not a readable .npy member ({err})") from err
    arr = restricted_load(fh, source)
    if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
        raise ValueError(
            f"{source}: the pickled payload is a {type(arr).__name__}, not the object array "
            f"of shape {tuple(shape)} its header announces"
        )
    return arr


def read_npz(path: str | os.PathLike, key: str, expected: str = "an array") -> np.ndarray:
    """Read array ``key`` of the npz file ``path``; object arrays through [`restricted_load`][].

    Args:
        path: An ``.npz`` file (a zip archive of ``.npy`` members).
        key: Member name without ``.npy``.
        expected: What ``key`` should hold, for the missing-key message.

    Returns:
        The array (an object array for pickled values).

    Raises:
        ValueError: The file is not a zip archive, ``key`` is missing (the
            message lists the keys) or its member is unreadable.
        UnsafePickleError: A member's pickle names a global outside the allow-list.
    """
    p = Path(path)
    with open(p, "rb") as fh:
        head = fh.read(4)
    if head not in _ZIP_MAGIC:
        raise ValueError(
            f"{p}: not an npz (zip) archive (it starts with {head!r}); refusing to read it "
            "(numpy would unpickle such a file, which can run code)"
        )
    source = f"{p}[{key!r}]"
    try:
        with zipfile.ZipFile(p) as zf:
            keys = sorted(n[: -len(".npy")] for n in zf.namelist() if n.endswith(".npy"))
            if key not in keys:
                raise ValueError(f"{p}: missing key {key!r} (expected {expected}); keys are {keys}")
            with zf.open(f"{key}.npy") as member:
                # ZipExtFile seeks by re-reading: buffer the member once instead.
                return _read_npy(io.BytesIO(member.read()), source)
    except ValueError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, zlib.error) as err:
        raise ValueError(f"{source}: not a readable npz member ({err})") from err
