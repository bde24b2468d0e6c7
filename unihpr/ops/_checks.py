"""Argument checks shared by the ops and the losses: fail early, name the argument.

Two kinds of checks, split by what they cost on a GPU:

* structural checks (types, shapes, dtypes, devices, Python scalars) read no
  tensor value and always run;
* value checks (index ranges, a tensor τ's sign) read tensor values on the
  host, which synchronises a GPU with the host. They run only with
  ``validate=True``; the training loop validates its first step and then
  switches them off.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

INDEX_DTYPES = (torch.int32, torch.int64)


def check_tensor(owner: str, name: str, x: object, *, floating: bool = True) -> Tensor:
    """``x`` itself if it is a (floating-point) tensor that holds data, else raise."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{owner}: {name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.is_meta:
        raise ValueError(
            f"{owner}: {name} is a meta tensor (shape {tuple(x.shape)}, no data); "
            "pass a tensor on a real device"
        )
    return x


def check_square(owner: str, name: str, x: object) -> Tensor:
    """A floating-point (B, B) matrix, e.g. the similarities of a pair loss."""
    x = check_tensor(owner, name, x)
    if x.dim() != 2 or x.shape[0] != x.shape[1]:
        raise ValueError(f"{owner}: {name} must be a square (B, B) matrix, got {tuple(x.shape)}")
    return x


def check_same(owner: str, what: str, named: dict[str, Tensor]) -> None:
    """All tensors share one dtype (``what="dtype"``) or one device (``"device"``)."""
    items = list(named.items())
    ref_name, ref = items[0]
    for name, t in items[1:]:
        if getattr(t, what) != getattr(ref, what):
            raise ValueError(
                f"{owner}: {name} has {what} {getattr(t, what)} but {ref_name} has "
                f"{getattr(ref, what)}; pass all of them with one {what}"
            )


def check_index(owner: str, name: str, idx: object, *, dim: int) -> Tensor:
    """``idx`` if it is an int32/int64 tensor of ``dim`` dimensions, else raise."""
    idx = check_tensor(owner, name, idx, floating=False)
    if idx.dtype not in INDEX_DTYPES or idx.dim() != dim:
        shape = "(A,)" if dim == 1 else "(A, N)"
        raise ValueError(
            f"{owner}: {name} must be an int32 or int64 tensor of shape {shape}, got "
            f"dtype {idx.dtype} and shape {tuple(idx.shape)}"
        )
    return idx


def check_range(owner: str, name: str, idx: Tensor, high: int) -> None:
    """Every entry of ``idx`` lies in [0, high) (reads the values: syncs a GPU)."""
    if idx.numel() == 0:
        return
    lo, hi = torch.stack([idx.min(), idx.max()]).tolist()
    if lo < 0 or hi >= high:
        bad = idx[(idx < 0) | (idx >= high)].flatten()[:8].tolist()
        raise ValueError(
            f"{owner}: {name} must lie in [0, {high}), got values {bad} "
            f"(min {lo}, max {hi}); negative indices are not wrapped"
        )


def check_tau(
    owner: str, tau: object, *, dtype: torch.dtype, device: torch.device, validate: bool
) -> Tensor:
    """τ as a 0-dim tensor of ``dtype`` on ``device``; must be finite and > 0.

    A Python number is checked always and becomes a tensor without a
    host-to-device copy; a tensor's value is checked only with ``validate``.
    """
    if isinstance(tau, bool) or not isinstance(tau, (int, float, Tensor)):
        raise TypeError(f"{owner}: tau must be a float or a 0-dim tensor, got {type(tau).__name__}")
    # Below the smallest normal number of the dtype, 1/τ overflows (or τ is 0 there).
    tiny = torch.finfo(dtype).tiny
    if not isinstance(tau, Tensor):
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"{owner}: tau must be finite and > 0, got {tau!r}")
        if not tiny <= tau <= torch.finfo(dtype).max:
            raise ValueError(
                f"{owner}: tau={tau!r} is not a normal {dtype} number (from {tiny:.3g} to "
                f"{torch.finfo(dtype).max:.3g}); the logits would overflow or vanish"
            )
        return torch.full((), float(tau), dtype=dtype, device=device)
    check_tensor(owner, "tau", tau)
    if tau.numel() != 1:
        raise ValueError(f"{owner}: tau must be a scalar, got shape {tuple(tau.shape)}")
    tau = tau.reshape(()).to(device=device, dtype=dtype)
    if validate and not bool(torch.isfinite(tau) & (tau >= tiny)):
        raise ValueError(
            f"{owner}: tau must be finite and > 0 (at least {tiny:.3g} in {dtype}), "
            f"got {tau.item()!r}"
        )
    return tau


def check_generator(owner: str, generator: object) -> None:
    """``generator`` is a ``torch.Generator`` or None."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{owner}: generator must be a torch.Generator or None, got "
            f"{type(generator).__name__} {generator!r}"
        )


def check_device(owner: str, name: str, device: object) -> torch.device:
    """``device`` as a ``torch.device`` that exists on this machine."""
    try:
        dev = torch.device(device)  # type: ignore[arg-type]
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"{owner}: {name} must be a torch.device or a device string, got {device!r}"
        ) from err
    if dev.type == "cuda" and (
        not torch.cuda.is_available()
        or (dev.index is not None and dev.index >= torch.cuda.device_count())
    ):
        raise ValueError(
            f"{owner}: {name}={device!r}, but this machine has "
            f"{torch.cuda.device_count() if torch.cuda.is_available() else 'no'} CUDA device(s)"
        )
    return dev


def check_positive_int(owner: str, name: str, value: object, *, allow_none: bool = True) -> None:
    """``value`` is an int >= 1 (or None when allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be an int >= 1, got {value!r}")


LABEL_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def check_labels(
    owner: str, labels: object, batch_size: int, device: torch.device, *, name: str = "labels"
) -> Tensor:
    """``labels`` as int64 if it is an integer ``(B,)`` tensor on ``device``, else raise.

    Labels say which samples are the same thing: every sample that shares a
    label with an anchor is one of its positives (see the losses' ``labels=``).
    """
    labels = check_tensor(owner, name, labels, floating=False)
    if labels.dtype not in LABEL_DTYPES:
        raise TypeError(f"{owner}: {name} must be an integer tensor, got dtype {labels.dtype}")
    if labels.dim() != 1 or labels.shape[0] != batch_size:
        raise ValueError(
            f"{owner}: {name} must have shape ({batch_size},), one label per sample, "
            f"got {tuple(labels.shape)}"
        )
    if labels.device != device:
        raise ValueError(
            f"{owner}: {name} is on {labels.device} but the embeddings are on {device}; "
            "pass them on one device"
        )
    return labels.long()


def same_label(labels: Tensor, rows: Tensor) -> Tensor:
    """``(A, B)`` bool: ``labels[rows[a]] == labels[b]``."""
    return labels[rows][:, None] == labels[None, :]


def check_label_smoothing(owner: str, value: object) -> float:
    """``value`` as a float if it is a number in [0, 1), else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{owner}: label_smoothing must be a float in [0, 1), got {value!r}")
    return float(value)
