"""The one switch that picks how a loss kernel runs: ``backend=``.

Every loss and functional form with a kernel choice takes ``backend``:

``"auto"`` (default)
    The fused Triton kernels where the computation has one (the exact
    all-negatives triplet loss) and they can run (float32 CUDA tensors,
    ``triton`` installed); PyTorch ops otherwise (always on the CPU).
``"torch"``
    PyTorch ops on any device and dtype.
``"triton"``
    The Triton kernels; a ``ValueError`` says why when they cannot run here
    (no triton, not CUDA, not float32, or no Triton kernel for this
    computation). On the CPU they run only under ``TRITON_INTERPRET=1``, the
    interpreter the tests use.
``"compile"``
    The fused PyTorch-op body of the sampled triplet loss through
    ``torch.compile`` (one fused kernel instead of dozens of elementwise ones
    on a GPU; the first call of a new shape compiles, tens of seconds). Never
    chosen by ``"auto"``.

The environment variable ``UNIHPR_LOSS_BACKEND`` (one of ``torch``,
``triton``, ``compile``) replaces ``"auto"`` wherever the computation has
that implementation, e.g. ``UNIHPR_LOSS_BACKEND=torch`` keeps every loss on
PyTorch ops. An explicit ``backend=`` argument always wins over it.
"""

from __future__ import annotations

import importlib.util
import os

import torch

from unihpr._validate import check_choice

__all__ = ["BACKENDS", "ENV_VAR", "resolve_backend"]

BACKENDS = ("auto", "torch", "triton", "compile")
"""The values of every ``backend=`` argument."""
ENV_VAR = "UNIHPR_LOSS_BACKEND"
"""The environment variable that replaces ``"auto"`` (see the module docstring)."""


def _triton_problem(device: torch.device | None, dtype: torch.dtype | None) -> str | None:
    """Why the Triton kernels cannot run on this device/dtype, or None."""
    if importlib.util.find_spec("triton") is None:
        return 'triton is not installed (`pip install -e ".[triton]"` in the unihpr checkout)'
    interpret = os.environ.get("TRITON_INTERPRET") == "1"
    if device is None:
        if not (torch.cuda.is_available() or interpret):
            return "no CUDA device is available (the kernels run on the CPU only under TRITON_INTERPRET=1)"
        return None
    if device.type != "cuda" and not (device.type == "cpu" and interpret):
        return f"the kernels need CUDA tensors, got {device.type} tensors"
    if dtype is not None and dtype != torch.float32:
        return f"the kernels are float32 only, got {dtype}; use backend='torch'"
    return None


def resolve_backend(
    backend: str,
    *,
    owner: str,
    kernels: tuple[str, ...],
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> str:
    """Resolve a ``backend=`` argument to the implementation that runs.

    Called once when a loss is built (without ``device``/``dtype``: checks
    the name and that the computation has that implementation) and on every
    call (with them: checks that it can run on these tensors).

    Args:
        backend: One of [`BACKENDS`][unihpr.ops.backend.BACKENDS].
        owner: Name used in error messages.
        kernels: The implementations this computation has, among
            ``"torch"``, ``"triton"`` and ``"compile"``.
        device: Device of the inputs (None at construction).
        dtype: Computation dtype of the inputs (None at construction).

    Returns:
        ``"torch"``, ``"triton"`` or ``"compile"``.

    Raises:
        TypeError: ``backend`` is not a string.
        ValueError: Unknown name, an implementation this computation lacks,
            or Triton kernels that cannot run here (the message says why).
    """
    check_choice("backend", backend, BACKENDS, owner=owner)
    source = f"backend={backend!r}"
    if backend == "auto":
        env = os.environ.get(ENV_VAR, "").strip()
        if env:
            if env not in BACKENDS:
                raise ValueError(
                    f"{owner}: environment variable {ENV_VAR}={env!r} must be one of {BACKENDS}"
                )
            if env in kernels:
                backend, source = env, f"{ENV_VAR}={env!r}"
    if backend == "auto":
        # Only for CUDA tensors: the CPU interpreter is for tests, never a default.
        on_cuda = device is not None and device.type == "cuda"
        if "triton" in kernels and on_cuda and _triton_problem(device, dtype) is None:
            return "triton"
        return "torch"
    if backend not in kernels:
        raise ValueError(
            f"{owner}: {source} is not available for this computation; it has "
            f"{', '.join(repr(k) for k in kernels)} (and 'auto')"
        )
    if backend == "triton":
        problem = _triton_problem(device, dtype)
        if problem is not None:
            raise ValueError(f"{owner}: {source} cannot run: {problem}")
    return backend
