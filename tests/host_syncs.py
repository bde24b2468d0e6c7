"""Detect host synchronisations on the CPU, where there is no GPU to catch them.

On a GPU, reading a tensor's value on the host (``bool(t)``, ``float(t)``,
``t.item()``, ``t.tolist()``, ...) waits for every queued kernel: a host
sync. ``torch.cuda.set_sync_debug_mode("error")`` catches them there
(``benchmarks/gpu_check.py``); on the CPU ``record_host_syncs`` records
every such call made *directly by unihpr code* (PyTorch's own internals, e.g.
optimisers reading CPU step counters, are not counted), so tests can assert
that a code path performs none. A test tool, not thread-safe: it patches
``torch.Tensor`` methods while active.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

import unihpr

PACKAGE = str(Path(unihpr.__file__).resolve().parent)
METHODS = ("__bool__", "__float__", "__int__", "__index__", "item", "tolist", "numpy")


@contextlib.contextmanager
def record_host_syncs() -> Iterator[list[tuple[str, str]]]:
    """Yield a list that collects ``(method, "file:line")`` of host reads by unihpr code."""
    calls: list[tuple[str, str]] = []
    originals = {name: getattr(torch.Tensor, name) for name in METHODS}
    original_equal = torch.equal

    def wrap(name, fn):
        def wrapper(*args, **kwargs):
            frame = sys._getframe(1)
            path = str(Path(frame.f_code.co_filename).resolve())
            if path.startswith(PACKAGE):
                calls.append((name, f"{path}:{frame.f_lineno}"))
            return fn(*args, **kwargs)

        return wrapper

    try:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, wrap(name, fn))
        torch.equal = wrap("torch.equal", original_equal)
        yield calls
    finally:
        for name, fn in originals.items():
            setattr(torch.Tensor, name, fn)
        torch.equal = original_equal
