"""One process and one configuration per run folder.

A run folder (a [`Trainer`][unihpr.train.Trainer]'s ``output_dir``, a
[`train_pipeline`][unihpr.train.train_pipeline] run, the output folder of
``unihpr demo``) belongs to one process at a time and to one configuration:

* [`lock_run_folder`][]: an exclusive lock on ``<folder>/.lock`` while the run
  trains. A second process on the folder fails at once with a
  ``BlockingIOError`` naming the holder's pid. The operating system drops the
  lock when its holder exits, however it exits, so a killed run leaves no
  stale lock behind.
* [`check_run_config`][] / [`config_differences`][]: a resume whose
  configuration differs from the stored one is refused with a ``ValueError``
  naming the differing fields, so that two runs are never mixed.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from unihpr.train.config import read_json

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None
    import msvcrt

# Folders this process holds, and how many nested lock_run_folder calls hold each:
# the demo holds its folder around train_pipeline, which locks the same folder.
_HELD: dict[Path, int] = {}


def _acquire(folder: Path) -> Any:
    folder.mkdir(parents=True, exist_ok=True)
    f = open(folder / ".lock", "a+")  # noqa: SIM115 - held open for the lock's lifetime
    f.seek(0)
    try:
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows: lock the first byte
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:
        holder = "another process"
        with contextlib.suppress(OSError):
            holder = f.read().strip() or holder
        f.close()
        raise BlockingIOError(
            f"run folder {str(folder)!r} is in use by {holder}; wait for it to finish or "
            "choose another folder"
        ) from None
    f.truncate(0)
    f.write(f"process {os.getpid()}\n")
    f.flush()
    return f


@contextlib.contextmanager
def lock_run_folder(directory: str | os.PathLike) -> Iterator[Path]:
    """Hold the run folder ``directory`` (created if needed) for the ``with`` block.

    Re-entrant within one process.

    Raises:
        BlockingIOError: Another process holds the folder.
    """
    folder = Path(directory).resolve()
    handle = None if folder in _HELD else _acquire(folder)
    _HELD[folder] = _HELD.get(folder, 0) + 1
    try:
        yield folder
    finally:
        _HELD[folder] -= 1
        if handle is not None:
            del _HELD[folder]
            handle.close()  # releases the lock


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        items = [(f"{prefix}.{k}" if prefix else str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(f"{prefix}[{i}]", v) for i, v in enumerate(value)]
    else:
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, v in items:
        out.update(_flatten(v, key))
    return out


def config_differences(
    stored: Mapping[str, Any], current: Mapping[str, Any], ignore: Collection[str] = ()
) -> list[str]:
    """The fields of two JSON-like configurations that differ, e.g. ``"seed (0 there, 7 here)"``.

    Nested fields are named by their path (``"stages[1].loss.alpha"``); the
    top-level keys in ``ignore`` are not compared.
    """
    a, b = (
        _flatten(json.loads(json.dumps({k: v for k, v in c.items() if k not in ignore})))
        for c in (stored, current)
    )
    missing = "<absent>"
    return [
        f"{key} ({a.get(key, missing)!r} there, {b.get(key, missing)!r} here)"
        for key in sorted(set(a) | set(b))
        if a.get(key, missing) != b.get(key, missing)
    ]


def check_run_config(
    path: str | os.PathLike,
    config: Mapping[str, Any],
    *,
    ignore: Collection[str] = (),
    hint: str = "",
) -> None:
    """Refuse ``config`` if the run configuration stored in the JSON file ``path`` differs.

    Nothing is checked when ``path`` does not exist (a new run).

    Args:
        path: The stored configuration of the run.
        config: The configuration of this run (JSON-like).
        ignore: Top-level keys that may differ (e.g. progress bars).
        hint: How to start over instead, appended to the message.

    Raises:
        ValueError: The stored configuration differs (the fields are named) or
            is not valid JSON.
    """
    path = Path(path)
    if not path.is_file():
        return
    stored = read_json(path, "run configuration")
    diff = config_differences(stored if isinstance(stored, dict) else {}, config, ignore)
    if diff:
        raise ValueError(
            f"{str(path.parent)!r} holds a run with another configuration ({path.name}): "
            f"{', '.join(diff)}; resume it with the same configuration, or {hint}"
        )
