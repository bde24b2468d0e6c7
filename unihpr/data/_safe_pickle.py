"""Reading the pickled parts of public dataset files without running code or bombs.

A pickle is a program: loading one calls whatever importable function it
names, so ``pickle.load`` on a downloaded file hands control to whoever made
the file. The 3DPW ``sequenceFiles/*.pkl`` and the object arrays of the
VideoPose3D / P-STMO ``.npz`` files do contain pickles, but only of dicts,
lists, tuples, strings, numbers and numpy arrays. [`restricted_load`][] reads
those and refuses every other global the stream names *before* calling it, so a
crafted file raises [`UnsafePickleError`][] and runs nothing.

Memory is bounded by the size of the stream: a pickle may *declare* sizes
(``BINBYTES8``, ``BYTEARRAY8``, an array's shape) that it does not hold.
[`restricted_load`][] therefore reads with Python's own unpickler (the C one
allocates a declared size before it reads), never reads more than the stream
holds, checks an array's shape against the data it carries before numpy
allocates it, and charges what every call and ``BUILD`` creates to a budget of
[`PICKLE_BUDGET`][] times the stream's size (plus 1 MiB).

[`read_npz`][] reads one key of an npz. ``np.load(..., allow_pickle=True)`` is
not safe even for the numeric keys: a file named ``.npz`` that is not a zip
archive is unpickled whole. The format is therefore checked first; a member
whose declared size is more than [`NPZ_RATIO`][] times its compressed size
(plus 1 MiB) is refused before it is decompressed, a numeric member whose
header declares more bytes than the member holds is refused before any array
is allocated, numeric arrays are read once, straight from the archive, and
object arrays go through [`restricted_load`][].
"""

from __future__ import annotations

import importlib
import io
import math
import os
import pickle
import struct
import sys
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np

__all__ = [
    "NPZ_RATIO",
    "PICKLE_BUDGET",
    "UnsafePickleError",
    "read_npy",
    "read_npz",
    "restricted_load",
]

#: Bytes a pickle may build, as a multiple of its own size (plus 1 MiB):
#: loading a numeric array needs about 2 (its bytes, then the array).
PICKLE_BUDGET = 4
#: Largest ratio of an npz member's size to its compressed size (plus 1 MiB);
#: pose data compresses by less than 10, deflate by at most about 1000.
NPZ_RATIO = 64
_MIB = 1 << 20

#: The globals numpy's array and scalar pickles name (numpy 1 spells the
#: private package ``numpy.core``, numpy 2 ``numpy._core``), plus the builtin
#: containers pickle cannot express with opcodes.
_NUMPY_PRIVATE = {
    ("multiarray", "_reconstruct"),
    ("multiarray", "scalar"),
    ("numeric", "_frombuffer"),
}
_ALLOWED_BUILTINS = {"set", "frozenset", "complex"}
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# What ``numpy.ndarray`` unpickles to: the subtype argument of _reconstruct,
# which it is in numpy's pickles, but nothing a stream can call to allocate.
_NDARRAY = object()


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


def _nbytes(shape: Any, dtype: Any) -> int:
    """Bytes of an array of ``shape`` and ``dtype`` (at least one per element), exactly."""
    if not isinstance(shape, tuple) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise ValueError(f"an array shape must be a tuple of ints >= 0, got {shape!r}")
    return math.prod(shape) * max(np.dtype(dtype).itemsize, 1)


def _charged(load: Any) -> Any:
    """An opcode of Python's unpickler that charges the object it pushes to the budget."""

    def charged(self: _RestrictedUnpickler) -> None:
        load(self)
        self.charge(self.stack[-1])

    return charged


class _RestrictedUnpickler(pickle._Unpickler):
    """Python's unpickler with an allow-list of globals and a memory budget."""

    dispatch: ClassVar[dict] = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: IO[bytes], source: str, size: int) -> None:
        super().__init__(file, encoding="latin1")
        self.source, self.size = source, size
        self.budget = PICKLE_BUDGET * size + _MIB
        read = file.read
        # a declared length never makes a read allocate more than the stream holds
        self._file_read = lambda n=-1: read(size if n is None or n < 0 else min(n, size))

    def charge(self, obj: Any) -> Any:
        self.budget -= sys.getsizeof(obj)
        if self.budget < 0:
            raise ValueError(
                f"{self.source}: the pickle builds more than {PICKLE_BUDGET} x its size "
                f"({self.size} bytes) + 1 MiB of objects"
            )
        return obj

    def find_class(self, module: str, name: str) -> Any:
        pkg, _, sub = module.rpartition(".")
        private = pkg in ("numpy.core", "numpy._core")
        array_module = module == "numpy" or (private and sub == "multiarray")
        if name in ("ndarray", "dtype") and array_module:
            return _NDARRAY if name == "ndarray" else np.dtype
        if private and (sub, name) in _NUMPY_PRIVATE:
            fn = _numpy_private(module, name)
            return self._reconstruct(fn) if name == "_reconstruct" else fn
        if module in ("builtins", "__builtin__") and name in _ALLOWED_BUILTINS:
            return getattr(__import__("builtins"), name)
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        raise UnsafePickleError(
            f"{self.source}: refusing to unpickle {module}.{name}: only numpy arrays, numbers, "
            "strings and builtin containers are allowed (loading any other global could run "
            "code from the file)"
        )

    def _reconstruct(self, fn: Any) -> Any:
        def reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
            # numpy writes an empty array here; its data and shape come with BUILD
            if subtype is not _NDARRAY or _nbytes(tuple(shape), dtype) > self.size:
                raise ValueError(f"an array of shape {shape} is larger than the file")
            return fn(np.ndarray, shape, dtype)

        return reconstruct

    def load_build(self) -> None:
        inst, state = self.stack[-2], self.stack[-1]
        if isinstance(inst, np.ndarray) and isinstance(state, tuple) and len(state) in (4, 5):
            shape, dtype, _, data = state[-4:]
            count = _nbytes(shape, dtype) // max(np.dtype(dtype).itemsize, 1)
            # numpy checks a byte payload's length; an object array's list it checks too late
            if np.dtype(dtype).hasobject and (not isinstance(data, list) or len(data) != count):
                raise ValueError(f"an object array of shape {shape} holds {type(data).__name__}")
        super().load_build()
        self.charge(inst)

    def load_bytearray8(self) -> None:
        (n,) = struct.unpack("<Q", self.read(8))
        data = self.read(n)  # Python's unpickler would allocate n bytes first
        if len(data) < n:
            raise ValueError("BYTEARRAY8 is longer than the stream")
        self.append(self.charge(bytearray(data)))

    dispatch[pickle.REDUCE[0]] = _charged(pickle._Unpickler.load_reduce)
    dispatch[pickle.NEWOBJ[0]] = _charged(pickle._Unpickler.load_newobj)
    dispatch[pickle.NEWOBJ_EX[0]] = _charged(pickle._Unpickler.load_newobj_ex)
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


def restricted_load(file: IO[bytes], source: str | os.PathLike, size: int | None = None) -> Any:
    """Unpickle ``file`` admitting only numpy arrays/scalars and builtin values.

    Args:
        file: A binary stream positioned at the start of a pickle.
        source: What the stream is (a file name), used in error messages.
        size: Bytes of the pickle (default: from the stream's position to its end).

    Returns:
        The unpickled object.

    Raises:
        UnsafePickleError: The pickle names a global outside the allow-list;
            nothing it names has been called.
        ValueError: The stream is not a readable pickle, or it would build more
            objects than its size allows (see the module docstring).
    """
    source = str(source)
    if size is None:
        start = file.tell()
        size = file.seek(0, io.SEEK_END) - start
        file.seek(start)
    try:
        return _RestrictedUnpickler(file, source, size).load()
    except UnsafePickleError:
        raise
    except Exception as err:  # a truncated or garbled stream raises almost any type
        raise ValueError(f"{source}: not a readable pickle ({type(err).__name__}: {err})") from err


def read_npy_stream(fh: IO[bytes], source: str, size: int, allow_pickle: bool = True) -> np.ndarray:
    """The array of an ``.npy`` stream of ``size`` bytes, its header checked before reading."""
    try:
        version = np.lib.format.read_magic(fh)
        reader = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = reader(fh)
    except Exception as err:  # numpy's header parser also lets tokenize.TokenError out
        raise ValueError(
            f"{source}: not a readable .npy header ({type(err).__name__}: {err})"
        ) from err
    left = size - fh.tell()
    try:
        if not dtype.hasobject:
            if _nbytes(shape, dtype) > left:  # before np.empty: (10**15,) is no MemoryError
                raise ValueError(
                    f"its header declares shape {shape} {dtype} ({_nbytes(shape, dtype)} bytes) "
                    f"but {left} bytes follow"
                )
            array = np.empty(shape[::-1] if fortran else shape, dtype=dtype)
            flat = array.reshape(-1)  # a view: filled in place, one copy of the data
            step = max(1, _MIB // max(dtype.itemsize, 1))
            for i in range(0, flat.size if dtype.itemsize else 0, step):
                chunk = fh.read((min(step, flat.size - i)) * dtype.itemsize)
                flat[i : i + step] = np.frombuffer(chunk, dtype=dtype)
            return array.T if fortran else array
    except (ValueError, EOFError) as err:
        raise ValueError(f"{source}: not a readable .npy member ({err})") from err
    if not allow_pickle:
        raise ValueError(f"{source}: holds Python objects (dtype {dtype}); expected numbers")
    arr = restricted_load(fh, source, left)
    if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
        raise ValueError(
            f"{source}: the pickled payload is a {type(arr).__name__}, not the object array "
            f"of shape {tuple(shape)} its header announces"
        )
    return arr


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """Read a numeric ``.npy`` file, its header checked against the file's size first.

    Raises:
        ValueError: The file is not a readable ``.npy`` of numbers (object arrays are refused).
    """
    p = Path(path)
    with open(p, "rb") as fh:
        return read_npy_stream(fh, str(p), os.fstat(fh.fileno()).st_size, allow_pickle=False)


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
            message lists the keys), its member is unreadable or larger than
            the caps of the module docstring allow (the message names the file
            and the member).
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
            info = zf.getinfo(f"{key}.npy")
            if info.file_size > NPZ_RATIO * info.compress_size + _MIB:
                raise ValueError(
                    f"{source}: the member declares {info.file_size} bytes compressed into "
                    f"{info.compress_size}, more than {NPZ_RATIO} x + 1 MiB (a zip bomb?)"
                )
            with zf.open(info) as member:
                return read_npy_stream(member, source, info.file_size)
    except ValueError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, zlib.error) as err:
        raise ValueError(f"{source}: not a readable npz member ({err})") from err
