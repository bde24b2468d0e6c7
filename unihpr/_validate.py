"""Checks of scalar arguments that name the argument and the value received.

A wrong type raises ``TypeError``, a value out of range ``ValueError``. ``bool``
is never accepted as a number (``True`` is an ``int`` to Python, but
``steps=True`` is a mistake), and numbers must be finite unless a check says
otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np

__all__ = ["check_bool", "check_choice", "check_int", "check_real"]


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an ``int`` in ``[low, high]`` (either bound optional).

    Raises:
        TypeError: ``value`` is not an integer (``bool`` and ``float`` included).
        ValueError: ``value`` is out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "" if low is None else f">= {low}"
        hi = "" if high is None else f"<= {high}"
        raise ValueError(
            f"{name} must be an int {' and '.join(s for s in (lo, hi) if s)}, got {value}"
        )
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

    Raises:
        TypeError: ``value`` is not a real number (``bool`` and strings included).
        ValueError: ``value`` is NaN, infinite (with ``finite``) or out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    ok = not math.isnan(v) and (math.isfinite(v) or not finite)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        kind = "a finite number" if finite else "a number"
        rng = f" {' and '.join(bounds)}" if bounds else ""
        raise ValueError(f"{name} must be {kind}{rng}, got {value!r}")
    return v


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a ``bool``; ``TypeError`` otherwise (``0``/``1`` included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Collection[str]) -> str:
    """Return ``value`` if it is one of the strings ``choices``.

    Raises:
        TypeError: ``value`` is not a string.
        ValueError: ``value`` is not one of ``choices``.
    """
    if not isinstance(value, str):
        raise TypeError(
            f"{name} must be one of {tuple(choices)}, got {type(value).__name__} {value!r}"
        )
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value
