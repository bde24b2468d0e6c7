"""Native CPU kernels, compiled on first use.

The sampled Triplet-InfoNCE spends its time on random gathers and scatters of
millions of logits and on two transcendental functions per logit; as a chain
of PyTorch ops that is ~50 passes over ``(B, B)``-sized tensors. The C kernels
in ``_native/unihpr_native.c`` do it in one pass per anchor, with the
arithmetic in double and vectorised (glibc's libmvec).

The source is compiled with the system C compiler (``$CC``, else ``cc``) the
first time a kernel is needed, into ``$UNIHPR_CACHE_DIR`` (default
``~/.cache/unihpr``) under a key of the source, flags, compiler and CPU, and
loaded with `ctypes`; a later process reuses the library. The build takes
about a second and needs no PyTorch headers.

Without a working compiler, or with ``UNIHPR_NATIVE=0``, [`library`][]
returns None and every caller keeps its pure-PyTorch path, which computes the
same values (the tests compare the two).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["available", "build_error", "disabled", "library", "num_threads"]

#: The triplet kernel packs a matrix id and an offset into 32 bits.
MAX_CELLS = 2**30

_SOURCE = Path(__file__).with_name("_native") / "unihpr_native.c"
# -ffast-math lets gcc call glibc's vector math (libmvec): 8× faster λ1 here.
# It is a compile flag only: linked with it, the library would set the CPU's
# flush-to-zero mode for the whole process (crtfastmath.o). It also lets the
# compiler assume finite inputs: a NaN still gives a NaN λ1 and loss, but the
# gradient of a non-finite element may be finite. The losses reject non-finite
# embeddings before any kernel runs.
_BASE_FLAGS = ["-O3", "-ffast-math", "-fopenmp-simd", "-fPIC", "-std=c11"]
_LOCK = threading.Lock()
_state: dict[str, object] = {}

_i64, _int, _dbl, _ptr = ctypes.c_int64, ctypes.c_int, ctypes.c_double, ctypes.c_void_p
_SIGNATURES = {
    "unihpr_lambda1_f32": (None, [_ptr, _ptr, _ptr, _ptr, _i64, _int]),
    "unihpr_lambda1_grad_f32": (None, [*[_ptr] * 7, _i64, _int]),
    "unihpr_triplet_sampled_f32": (
        _dbl,
        [
            *[_ptr] * 3,
            *[_i64] * 6,
            *[_ptr] * 4,
            _i64,
            _int,
            _i64,
            _i64,
            _dbl,
            _int,
            *[_ptr] * 5,
            _int,
        ],
    ),
    "unihpr_uniform_decode": (None, [*[_ptr] * 5, _int, _i64, _i64, _i64, _int]),
    "unihpr_release_workspace": (None, []),
}


def _cache_dir() -> Path:
    root = os.environ.get("UNIHPR_CACHE_DIR")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "unihpr"


def _cpu_signature() -> str:
    # -march=native builds for this CPU; a cache shared between machines (a
    # network home directory) must not hand the library to another CPU.
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = next((ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return f"{platform.machine()} {platform.processor()} {flags}"


def _compile(compiler: str, flags: list[str], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".so")
    os.close(fd)
    try:
        obj = tmp + ".o"
        for cmd in (
            [compiler, *flags, "-c", str(_SOURCE), "-o", obj],
            [compiler, "-shared", "-pthread", obj, "-o", tmp, "-lm"],
        ):
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr.strip()[-2000:]}")
        # Atomic: concurrent processes (DDP ranks) never load a partial file.
        os.replace(tmp, out)
    finally:
        for leftover in (tmp, tmp + ".o"):
            if os.path.exists(leftover):
                os.unlink(leftover)


def _load() -> ctypes.CDLL:
    compiler = os.environ.get("CC") or "cc"
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C compiler found (tried {compiler!r}; set $CC)")
    version = subprocess.run(
        [compiler, "--version"], capture_output=True, text=True, timeout=30
    ).stdout
    source = _SOURCE.read_bytes()
    errors = []
    for flags in ([*_BASE_FLAGS, "-march=native"], _BASE_FLAGS):
        key = hashlib.sha256(
            b"\0".join(
                [source, " ".join(flags).encode(), version.encode(), _cpu_signature().encode()]
            )
        ).hexdigest()[:16]
        path = _cache_dir() / "native" / key / "libunihpr_native.so"
        try:
            if not path.exists():
                _compile(compiler, flags, path)
            lib = ctypes.CDLL(str(path))
        except (OSError, RuntimeError, subprocess.SubprocessError) as err:
            errors.append(str(err))
            continue
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        return lib
    raise RuntimeError("\n".join(errors))


def library() -> ctypes.CDLL | None:
    """The compiled kernels, building them on the first call; None if unavailable.

    Disabled by ``UNIHPR_NATIVE=0``. A failed build is reported once, as a
    warning, and not retried in this process.
    """
    if os.environ.get("UNIHPR_NATIVE", "1") == "0" or _state.get("disabled"):
        return None
    if "lib" not in _state:
        with _LOCK:
            if "lib" not in _state:
                try:
                    _state["lib"] = _load()
                except RuntimeError as err:
                    _state["lib"] = None
                    _state["error"] = str(err)
                    warnings.warn(
                        "unihpr: the native CPU kernels could not be built, so the slower "
                        f"pure-PyTorch path is used. Reason: {err}",
                        RuntimeWarning,
                        stacklevel=2,
                    )
    return _state["lib"]  # type: ignore[return-value]


@contextlib.contextmanager
def disabled():
    """Within the block every caller takes its pure-PyTorch path (for comparisons).

    Examples:
        >>> with native.disabled():
        ...     loss = loss_fn(x_img, x_2d, x_3d)
    """
    before = _state.get("disabled", False)
    _state["disabled"] = True
    try:
        yield
    finally:
        _state["disabled"] = before


def available() -> bool:
    """Whether the native CPU kernels can be used in this process."""
    return library() is not None


def build_error() -> str | None:
    """Why the last build failed, or None."""
    return _state.get("error")  # type: ignore[return-value]


def num_threads() -> int:
    """Threads a kernel may use: PyTorch's intra-op setting."""
    return max(1, torch.get_num_threads())


def usable(*tensors: Tensor) -> bool:
    """True when every tensor is a contiguous CPU tensor and the kernels exist."""
    return all(t.device.type == "cpu" and t.is_contiguous() for t in tensors) and available()


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


# The kernels read raw memory: every wrapper checks what the C code assumes,
# so bad input raises here instead of reading out of bounds.


def _check_tensors(owner: str, dtypes: tuple[torch.dtype, ...], **tensors: Tensor) -> None:
    for name, t in tensors.items():
        if not isinstance(t, Tensor):
            raise TypeError(f"{owner}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in dtypes or t.device.type != "cpu" or not t.is_contiguous():
            raise ValueError(
                f"{owner}: {name} must be a contiguous CPU tensor of dtype "
                f"{' or '.join(map(str, dtypes))}, got {t.dtype} on {t.device}"
                + ("" if t.is_contiguous() else " (not contiguous)")
            )


def _check_range(owner: str, name: str, t: Tensor, high: int) -> None:
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= high):
        raise ValueError(
            f"{owner}: {name} must lie in [0, {high}), got values in "
            f"[{int(t.min())}, {int(t.max())}]"
        )


def _check_same_shape(owner: str, **tensors: Tensor) -> None:
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"{owner}: shapes must match, got {shapes}")


def lambda1(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    """λ1 of ``[[1, a, b], [a, 1, c], [b, c, 1]]`` for contiguous float32 ``(...)`` tensors."""
    _check_tensors("native.lambda1", (torch.float32,), a=a, b=b, c=c)
    _check_same_shape("native.lambda1", a=a, b=b, c=c)
    lam = torch.empty_like(a)
    library().unihpr_lambda1_f32(_ptr(a), _ptr(b), _ptr(c), _ptr(lam), a.numel(), num_threads())
    return lam


def lambda1_grad(a: Tensor, b: Tensor, c: Tensor, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``grad`` times (∂λ1/∂a, ∂λ1/∂b, ∂λ1/∂c), contiguous float32 ``(...)`` tensors."""
    _check_tensors("native.lambda1_grad", (torch.float32,), a=a, b=b, c=c, grad=grad)
    _check_same_shape("native.lambda1_grad", a=a, b=b, c=c, grad=grad)
    ga, gb, gc = (torch.empty_like(a) for _ in range(3))
    library().unihpr_lambda1_grad_f32(
        *map(_ptr, (a, b, c, grad, ga, gb, gc)), a.numel(), num_threads()
    )
    return ga, gb, gc


def triplet_sampled(
    s12: Tensor,
    s13: Tensor,
    s23: Tensor,
    i: Tensor,
    j: Tensor,
    k: Tensor,
    tau: float,
    need_grad: bool,
    anchors: Tensor | None = None,
) -> tuple[Tensor, ...]:
    """Sampled Triplet-InfoNCE and its gradient, in one pass per anchor.

    Args:
        s12, s13, s23: Contiguous float32 similarity matrices.
        i, j, k: Contiguous ``(A, N1)`` int32 or int64 indices of one dtype,
            column 0 each anchor's positive; or, with ``anchors``, ``(A, N)``
            negatives only.
        tau: Temperature.
        need_grad: Also return the gradient.
        anchors: ``(A,)`` indices of the indices' dtype: the positive of row
            r is then ``(anchors[r],) * 3`` and ``lam`` has N + 1 columns.

    Returns:
        ``(loss, lam)``, and with ``need_grad`` also ``(g12, g13, g23,
        grad_tau)``: d loss / d S per matrix and d loss / d τ (0-d float32).
    """
    return _triplet(s12, s13, s23, i, j, k, anchors, 0, tau, need_grad)


def triplet_sampled_uniform(
    s12: Tensor,
    s13: Tensor,
    s23: Tensor,
    draws: Tensor,
    anchors: Tensor,
    batch_size: int,
    tau: float,
    need_grad: bool,
) -> tuple[Tensor, ...]:
    """[`triplet_sampled`][] on the triplets of UniformTripletSampler draws.

    Decodes each draw inside the kernel (the map of
    [`unihpr.losses.UniformTripletSampler.decode`][]), so the ``(A, N)``
    index tensors are never written.

    Args:
        s12, s13, s23: Contiguous float32 ``(B, B)`` similarity matrices.
        draws: ``(A, N)`` int32 or int64 draws below 3B² − 3B.
        anchors: ``(A,)`` anchors of the draws' dtype.
        batch_size: B.
        tau: Temperature.
        need_grad: Also return the gradient.

    Returns:
        As [`triplet_sampled`][].
    """
    return _triplet(s12, s13, s23, draws, draws, draws, anchors, batch_size, tau, need_grad)


def _check_triplet_args(s12, s13, s23, i, j, k, anchors, uniform_b):
    owner = "native.triplet_sampled"
    _check_tensors(owner, (torch.float32,), s12=s12, s13=s13, s23=s23)
    if any(s.dim() != 2 for s in (s12, s13, s23)) or not (
        s12.shape[0] == s13.shape[0]
        and s12.shape[1] == s23.shape[0]
        and s13.shape[1] == s23.shape[1]
    ):
        raise ValueError(
            f"{owner}: need s12 (B1, B2), s13 (B1, B3), s23 (B2, B3), got "
            f"{tuple(s12.shape)}, {tuple(s13.shape)}, {tuple(s23.shape)}"
        )
    if max(s.numel() for s in (s12, s13, s23)) >= MAX_CELLS:
        raise ValueError(f"{owner}: similarity matrices must have fewer than {MAX_CELLS} cells")
    index = (
        {"i": i, "j": j, "k": k}
        if anchors is None
        else {"i": i, "j": j, "k": k, "anchors": anchors}
    )
    _check_tensors(
        owner,
        (i.dtype,) if i.dtype in (torch.int32, torch.int64) else (torch.int32, torch.int64),
        **index,
    )
    _check_same_shape(owner, i=i, j=j, k=k)
    if i.dim() != 2 or (anchors is not None and tuple(anchors.shape) != (i.shape[0],)):
        raise ValueError(
            f"{owner}: need (A, N) indices and (A,) anchors, got {tuple(i.shape)} and "
            f"{None if anchors is None else tuple(anchors.shape)}"
        )
    if i.shape[0] < 1 or (anchors is None and i.shape[1] < 1):
        raise ValueError(
            f"{owner}: need at least one anchor and one candidate, got {tuple(i.shape)}"
        )
    B1, B2, B3 = s12.shape[0], s12.shape[1], s13.shape[1]
    if uniform_b:
        if not B1 == B2 == B3 == uniform_b or uniform_b < 2:
            raise ValueError(
                f"{owner}: uniform draws need (B, B) matrices with B = {uniform_b}, got {B1}×{B2}×{B3}"
            )
        _check_range(owner, "draws", i, 3 * uniform_b * uniform_b - 3 * uniform_b)
    else:
        _check_range(owner, "i", i, B1)
        _check_range(owner, "j", j, B2)
        _check_range(owner, "k", k, B3)
    if anchors is not None:
        _check_range(owner, "anchors", anchors, min(B1, B2, B3))


def _triplet(s12, s13, s23, i, j, k, anchors, uniform_b, tau, need_grad):
    _check_triplet_args(s12, s13, s23, i, j, k, anchors, uniform_b)
    A, N1 = i.shape[0], i.shape[1] + (anchors is not None)
    lam = torch.empty(A, N1, dtype=torch.float32)
    grads = [torch.empty_like(s) if need_grad else None for s in (s12, s13, s23)]
    grad_tau = ctypes.c_double(0.0)
    loss = library().unihpr_triplet_sampled_f32(
        _ptr(s12),
        _ptr(s13),
        _ptr(s23),
        *s12.shape,
        *s13.shape,
        *s23.shape,
        _ptr(i),
        _ptr(j),
        _ptr(k),
        _ptr(anchors),
        uniform_b,
        int(i.dtype == torch.int64),
        A,
        N1,
        float(tau),
        int(need_grad),
        _ptr(lam),
        *map(_ptr, grads),
        ctypes.byref(grad_tau),
        num_threads(),
    )
    if loss < 0:
        raise MemoryError(
            "triplet_sampled: could not allocate the per-thread gradient buffers "
            f"({3 * num_threads()} × {tuple(s12.shape)} float32)"
        )
    out = (torch.tensor(loss, dtype=torch.float32), lam)
    if not need_grad:
        return out
    return (*out, *grads, torch.tensor(grad_tau.value, dtype=torch.float32))


def uniform_decode(u: Tensor, anchors: Tensor, batch_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """Decode ``(A, N)`` uniform draws below 3B² − 3B into triplet indices.

    The same map as [`unihpr.losses.UniformTripletSampler`][]'s PyTorch
    code; ``u`` and ``anchors`` share one dtype, int32 or int64.
    """
    owner = "native.uniform_decode"
    _check_tensors(owner, (torch.int32, torch.int64), u=u)
    _check_tensors(owner, (u.dtype,), anchors=anchors)
    if u.dim() != 2 or tuple(anchors.shape) != (u.shape[0],) or batch_size < 2:
        raise ValueError(
            f"{owner}: need (A, N) draws, (A,) anchors and batch_size >= 2, got "
            f"{tuple(u.shape)}, {tuple(anchors.shape)}, {batch_size}"
        )
    _check_range(owner, "u", u, 3 * batch_size * batch_size - 3 * batch_size)
    _check_range(owner, "anchors", anchors, batch_size)
    out = [torch.empty_like(u) for _ in range(3)]
    library().unihpr_uniform_decode(
        _ptr(u),
        _ptr(anchors),
        *map(_ptr, out),
        int(u.dtype == torch.int64),
        u.shape[0],
        u.shape[1],
        batch_size,
        num_threads(),
    )
    return out[0], out[1], out[2]
