"""The one set of argument checks: fail early, name the argument and what was received.

One error policy everywhere: a wrong *type* raises ``TypeError``, a wrong
*value* (range, shape, NaN, mismatched devices) raises ``ValueError``. ``bool``
is never accepted as a number (``steps=True`` is a mistake, although Python
calls ``True`` an int), and numbers must be finite unless a check says
otherwise.

Every check takes the argument's ``name`` first and an optional ``owner=``
keyword (the function or class the user called), which prefixes the message:
``"TripletInfoNCE: tau must be ..."``.

Two kinds of tensor checks, split by what they cost on a GPU: structural
checks (type, shape, dtype, device) read no tensor value and always run; value
checks ([`check_range`][unihpr._validate.check_range], a tensor τ's sign,
[`check_finite`][unihpr._validate.check_finite]) read values on the host,
which synchronises a GPU, so the losses run them only with ``validate=True``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "check_bool",
    "check_choice",
    "check_device",
    "check_finite",
    "check_generator",
    "check_index",
    "check_int",
    "check_keys",
    "check_labels",
    "check_mask",
    "check_range",
    "check_real",
    "check_rows",
    "check_same",
    "check_shape",
    "check_square",
    "check_tau",
    "check_tensor",
]


def _who(name: str, owner: str) -> str:
    return f"{owner}: {name}" if owner else name


def _bounds(low, high, low_open: bool = False, high_open: bool = False, spec: str = "") -> str:
    """`` >= low and <= high`` for a range message (each bound optional, ``spec`` formats it)."""
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {format(low, spec)}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {format(high, spec)}")
    return f" {' and '.join(bounds)}" if bounds else ""


# ---------------------------------------------------------------- Python scalars
def check_int(
    name: str,
    value: Any,
    *,
    low: int | None = None,
    high: int | None = None,
    owner: str = "",
) -> int:
    """Return ``value`` as an ``int`` in ``[low, high]`` (either bound optional).

    Raises:
        TypeError: ``value`` is not an integer (``bool`` and ``float`` included).
        ValueError: ``value`` is out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{_who(name, owner)} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{_who(name, owner)} must be an int{_bounds(low, high)}, got {value}")
    return value


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
    owner: str = "",
) -> float:
    """Return ``value`` as a ``float`` in the given interval.

    Args:
        name: Argument name for the message.
        value: The value received.
        low: Lower bound (``None``: unbounded).
        high: Upper bound (``None``: unbounded).
        low_open: Exclude ``low`` itself (``> low`` instead of ``>= low``).
        high_open: Exclude ``high`` itself.
        finite: Reject ``inf`` (``NaN`` is always rejected).
        owner: Prefix of the message.

    Raises:
        TypeError: ``value`` is not a real number (``bool`` and strings included).
        ValueError: ``value`` is NaN, infinite (with ``finite``) or out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            f"{_who(name, owner)} must be a real number, got {type(value).__name__} {value!r}"
        )
    v = float(value)
    ok = not math.isnan(v) and (math.isfinite(v) or not finite)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        kind = "a finite number" if finite else "a number"
        rng = _bounds(low, high, low_open, high_open, spec="g")
        raise ValueError(f"{_who(name, owner)} must be {kind}{rng}, got {value!r}")
    return v


def check_bool(name: str, value: Any, *, owner: str = "") -> bool:
    """Return ``value`` if it is a ``bool``; ``TypeError`` otherwise (``0``/``1`` included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{_who(name, owner)} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Collection[str], *, owner: str = "") -> str:
    """Return ``value`` if it is one of the strings ``choices``.

    Raises:
        TypeError: ``value`` is not a string.
        ValueError: ``value`` is not one of ``choices``.
    """
    if not isinstance(value, str):
        raise TypeError(
            f"{_who(name, owner)} must be one of {tuple(choices)}, got "
            f"{type(value).__name__} {value!r}"
        )
    if value not in choices:
        raise ValueError(f"{_who(name, owner)} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_keys(name: str, data: Any, known: Collection[str], *, owner: str = "") -> dict:
    """Return ``data`` if it is a ``dict`` whose keys are all in ``known`` (e.g. a config file).

    Raises:
        TypeError: ``data`` is not a dict.
        ValueError: A key is not in ``known`` (the unknown and the known keys are listed).
    """
    if not isinstance(data, dict):
        raise TypeError(f"{_who(name, owner)} must be a dict, got {type(data).__name__}")
    unknown = sorted(map(str, set(data) - set(known)))
    if unknown:
        raise ValueError(
            f"{_who(name, owner)} has unknown field(s) {unknown}; known: {sorted(known)}"
        )
    return data


def check_generator(generator: Any, *, owner: str = "") -> torch.Generator | None:
    """Return ``generator`` if it is a ``torch.Generator`` or ``None``."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{_who('generator', owner)} must be a torch.Generator or None, got "
            f"{type(generator).__name__} {generator!r}"
        )
    return generator


def check_device(name: str, device: Any, *, owner: str = "") -> torch.device:
    """``device`` as a ``torch.device`` that exists on this machine.

    Raises:
        TypeError: Not a device or a string.
        ValueError: A string that names no device, or a CUDA device this machine lacks.
    """
    if not isinstance(device, (str, torch.device)):
        raise TypeError(
            f"{_who(name, owner)} must be a torch.device or a device string, got "
            f"{type(device).__name__} {device!r}"
        )
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"{_who(name, owner)}={device!r} names no device ({err})") from None
    if dev.type == "cuda" and (
        not torch.cuda.is_available()
        or (dev.index is not None and dev.index >= torch.cuda.device_count())
    ):
        count = torch.cuda.device_count() if torch.cuda.is_available() else "no"
        raise ValueError(
            f"{_who(name, owner)}={device!r}, but this machine has {count} CUDA device(s)"
        )
    return dev


# ---------------------------------------------------------------- tensors
def check_tensor(name: str, x: Any, *, floating: bool = False, owner: str = "") -> Tensor:
    """``x`` itself if it is a tensor that holds data (floating-point when asked).

    Raises:
        TypeError: Not a tensor, or not floating-point with ``floating=True``.
        ValueError: A meta tensor (it has a shape but no data).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{_who(name, owner)} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{_who(name, owner)} must be a floating-point tensor, got dtype {x.dtype}")
    if x.is_meta:
        raise ValueError(
            f"{_who(name, owner)} is a meta tensor (shape {tuple(x.shape)}, no data); "
            "pass a tensor on a real device"
        )
    return x


def check_shape(
    name: str, x: Tensor, shape: tuple[int | None, ...], layout: str, *, owner: str = ""
) -> Tensor:
    """``x`` if ``x.shape`` matches ``shape`` (``None`` matches any size), else ``ValueError``.

    Args:
        name: Argument name for the message.
        x: Tensor to check.
        shape: Expected sizes; ``None`` matches anything.
        layout: Human-readable layout for the message, e.g. ``"(B, J, 2)"``.
        owner: Prefix of the message.
    """
    ok = x.ndim == len(shape) and all(s is None or s == v for s, v in zip(shape, x.shape))
    if not ok:
        want = ", ".join("*" if s is None else str(s) for s in shape)
        raise ValueError(
            f"{_who(name, owner)} must have shape {layout} = ({want}), got {tuple(x.shape)}"
        )
    return x


def check_square(name: str, x: Any, *, owner: str = "") -> Tensor:
    """``x`` if it is a floating-point ``(B, B)`` matrix, e.g. the similarities of a pair loss.

    Raises:
        TypeError: Not a floating-point tensor.
        ValueError: Not a square matrix.
    """
    check_tensor(name, x, floating=True, owner=owner)
    if x.dim() != 2 or x.shape[0] != x.shape[1]:
        raise ValueError(
            f"{_who(name, owner)} must be a square (B, B) matrix, got {tuple(x.shape)}"
        )
    return x


def check_mask(
    name: str, mask: Any, shape: tuple[int | None, ...], layout: str, *, owner: str = ""
) -> Tensor | None:
    """``mask`` if it is ``None`` or a bool tensor of ``shape`` (``True`` = visible).

    Raises:
        TypeError: Not a tensor, or not ``torch.bool``.
        ValueError: Another shape (see [`check_shape`][unihpr._validate.check_shape]).
    """
    if mask is None:
        return None
    check_tensor(name, mask, owner=owner)
    if mask.dtype != torch.bool:
        raise TypeError(
            f"{_who(name, owner)} must be a bool tensor (True = visible), got dtype {mask.dtype}"
        )
    return check_shape(name, mask, shape, layout, owner=owner)


def check_same(what: str, named: Mapping[str, Tensor], *, owner: str = "") -> None:
    """All tensors share one ``what``: ``"dtype"``, ``"device"`` or ``"shape"``."""
    items = list(named.items())
    ref_name, ref = items[0]
    for name, t in items[1:]:
        if getattr(t, what) != getattr(ref, what):
            got, want = getattr(t, what), getattr(ref, what)
            if what == "shape":
                got, want = tuple(got), tuple(want)
            raise ValueError(
                f"{_who(name, owner)} has {what} {got} but {ref_name} has {want}; "
                f"pass all of them with one {what}"
            )


def check_finite(name: str, x: Tensor, *, owner: str = "") -> Tensor:
    """``x`` if every value is finite (reads the values: syncs a GPU)."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{_who(name, owner)} has {bad} NaN or infinite value(s) (shape {tuple(x.shape)})"
        )
    return x


_INDEX_DTYPES = (torch.int32, torch.int64)
_LABEL_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def check_index(name: str, idx: Any, *, dim: int, owner: str = "") -> Tensor:
    """``idx`` if it is an int32/int64 tensor of ``dim`` dimensions.

    Raises:
        TypeError: Not a tensor, or not int32/int64.
        ValueError: Wrong number of dimensions.
    """
    idx = check_tensor(name, idx, owner=owner)
    shape = "(A,)" if dim == 1 else "(A, N)"
    if idx.dtype not in _INDEX_DTYPES:
        raise TypeError(
            f"{_who(name, owner)} must be an int32 or int64 tensor of shape {shape}, got "
            f"dtype {idx.dtype}"
        )
    if idx.dim() != dim:
        raise ValueError(f"{_who(name, owner)} must have shape {shape}, got {tuple(idx.shape)}")
    return idx


def check_range(name: str, idx: Tensor, high: int, *, owner: str = "") -> Tensor:
    """``idx`` if every entry lies in [0, high) (reads the values: syncs a GPU)."""
    if idx.numel() == 0:
        return idx
    lo, hi = torch.stack([idx.min(), idx.max()]).tolist()
    if lo < 0 or hi >= high:
        bad = idx[(idx < 0) | (idx >= high)].flatten()[:8].tolist()
        raise ValueError(
            f"{_who(name, owner)} must lie in [0, {high}), got values {bad} "
            f"(min {lo}, max {hi}); negative indices are not wrapped"
        )
    return idx


def check_rows(
    name: str, rows: Any, size: int, *, device: torch.device, validate: bool, owner: str = ""
) -> Tensor:
    """Rows of a batch of ``size`` as int64: all ``arange(size)`` when ``rows`` is None.

    Otherwise ``rows`` must be a non-empty int32/int64 ``(A,)`` tensor on
    ``device`` (an empty selection would average over nothing: NaN); with
    ``validate`` its values must lie in [0, size) (reads them: syncs a GPU).

    Raises:
        TypeError: Not an int32/int64 tensor.
        ValueError: Wrong shape, empty, another device, or out of range.
    """
    if rows is None:
        return torch.arange(size, device=device)
    check_index(name, rows, dim=1, owner=owner)
    if rows.numel() == 0:
        raise ValueError(f"{_who(name, owner)} must select at least one row, got shape (0,)")
    if rows.device != device:
        raise ValueError(
            f"{_who(name, owner)} is on {rows.device} but the inputs are on {device}; "
            "pass them on one device"
        )
    if validate:
        check_range(name, rows, size, owner=owner)
    return rows.long()


def check_labels(
    labels: Any, batch_size: int, device: torch.device, *, name: str = "labels", owner: str = ""
) -> Tensor:
    """``labels`` as int64 if it is an integer ``(B,)`` tensor on ``device``.

    Labels say which samples are the same thing: every sample that shares a
    label with an anchor is one of its positives (see the losses' ``labels=``).
    """
    labels = check_tensor(name, labels, owner=owner)
    if labels.dtype not in _LABEL_DTYPES:
        raise TypeError(f"{_who(name, owner)} must be an integer tensor, got dtype {labels.dtype}")
    if labels.dim() != 1 or labels.shape[0] != batch_size:
        raise ValueError(
            f"{_who(name, owner)} must have shape ({batch_size},), one label per sample, "
            f"got {tuple(labels.shape)}"
        )
    if labels.device != device:
        raise ValueError(
            f"{_who(name, owner)} is on {labels.device} but the embeddings are on {device}; "
            "pass them on one device"
        )
    return labels.long()


def check_tau(
    tau: Any, *, dtype: torch.dtype, device: torch.device, validate: bool, owner: str = ""
) -> Tensor:
    """τ as a 0-dim tensor of ``dtype`` on ``device``; must be finite and > 0.

    A Python number is checked always and becomes a tensor without a
    host-to-device copy; a tensor's value is checked only with ``validate``.
    """
    who = _who("tau", owner)
    if isinstance(tau, bool) or not isinstance(tau, (int, float, Tensor)):
        raise TypeError(f"{who} must be a float or a 0-dim tensor, got {type(tau).__name__}")
    # Below the smallest normal number of the dtype, 1/τ overflows (or τ is 0 there).
    tiny, big = torch.finfo(dtype).tiny, torch.finfo(dtype).max
    if not isinstance(tau, Tensor):
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"{who} must be finite and > 0, got {tau!r}")
        if not tiny <= tau <= big:
            raise ValueError(
                f"{who}={tau!r} is not a normal {dtype} number (from {tiny:.3g} to "
                f"{big:.3g}); the logits would overflow or vanish"
            )
        return torch.full((), float(tau), dtype=dtype, device=device)
    check_tensor("tau", tau, floating=True, owner=owner)
    if tau.numel() != 1:
        raise ValueError(f"{who} must be a scalar, got shape {tuple(tau.shape)}")
    tau = tau.reshape(()).to(device=device, dtype=dtype)
    if validate and not bool(torch.isfinite(tau) & (tau >= tiny)):
        raise ValueError(
            f"{who} must be finite and > 0 (at least {tiny:.3g} in {dtype}), got {tau.item()!r}"
        )
    return tau
