"""Run a file reader in a worker process whose address space is capped.

The worker imports the readers first, then lowers its own ``RLIMIT_AS`` to
what it has mapped plus ``CAP_BYTES``: any allocation beyond that fails with a
``MemoryError`` inside the reader, which `CappedWorker.call` reports as such.
A reader that stays under the cap returns its result kind: ``"ok"`` or the
exception's type and message.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import multiprocessing
import os
import resource
import sys
from pathlib import Path

import pytest

#: Extra memory a reader may map for one file (the red team's goal was 200 MB).
CAP_BYTES = 200 << 20
_READERS = "unihpr.data"


def _mapped_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _start() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # no thread pools mapping memory after the cap is set
    importlib.import_module(_READERS)
    importlib.import_module("unihpr.data._safe_pickle")
    limit = _mapped_bytes() + CAP_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def _run(target: str, args: tuple, kwargs: dict) -> tuple[str, str]:
    module, name = target.rsplit(".", 1)
    fn = getattr(importlib.import_module(module), name)
    try:
        fn(*args, **kwargs)
    except MemoryError:
        return "MemoryError", f"{target} allocated more than {CAP_BYTES >> 20} MB"
    except BaseException as err:  # reported to the test, which judges it
        return type(err).__name__, str(err)
    return "ok", ""


class CappedWorker:
    """One worker process; `call` runs ``target(*args, **kwargs)`` under the cap."""

    def __init__(self) -> None:
        self.pool = concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn"), initializer=_start
        )

    def call(self, target: str, *args, **kwargs) -> tuple[str, str]:
        return self.pool.submit(_run, target, args, kwargs).result()

    def close(self) -> None:
        self.pool.shutdown()


def capped_worker_fixture():
    """Body of the ``capped`` fixture (Linux only: RLIMIT_AS and /proc)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the memory cap uses RLIMIT_AS and /proc (Linux)")
    worker = CappedWorker()
    yield worker
    worker.close()
