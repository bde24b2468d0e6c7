"""Atomic checkpoint files and the random-number-generator state needed for exact resume."""

from __future__ import annotations

import os
import pickle
import random
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

_CKPT_RE = re.compile(r"^ckpt-(\d{8,})\.pt$")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically.

    The state is written to a temporary file in the same directory, flushed to
    disk and moved over ``path`` with `os.replace`, so a crash at any
    moment leaves either the old file or the complete new one, never a
    truncated checkpoint.

    Args:
        path: Destination file; its directory is created if needed.
        state: Anything `torch.save` can serialise.

    Returns:
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by [`save_checkpoint`][].

    Args:
        path: Checkpoint file.
        map_location: Passed to `torch.load`.

    Returns:
        The saved state dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not a readable checkpoint or lacks the ``"step"`` key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        # Full unpickling is needed for the Python/NumPy RNG states; checkpoints
        # are trusted files written by this module.
        state = torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as err:
        raise ValueError(
            f"checkpoint {str(path)!r} is corrupt or not a torch checkpoint: {err}"
        ) from err
    if not isinstance(state, dict) or "step" not in state:
        raise ValueError(
            f"checkpoint {str(path)!r} is not a unihpr training checkpoint (no 'step')"
        )
    return state


def checkpoint_path(directory: str | os.PathLike, step: int) -> Path:
    """Return the file name used for the checkpoint of ``step`` in ``directory``."""
    return Path(directory) / f"ckpt-{step:08d}.pt"


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """Return ``(step, path)`` of the step checkpoints in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _CKPT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """Return the newest step checkpoint in ``directory``, or ``None``."""
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def prune_checkpoints(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the ``keep`` newest step checkpoints in ``directory``."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    for _, p in list_checkpoints(directory)[:-keep]:
        p.unlink(missing_ok=True)


def capture_rng_state() -> dict[str, Any]:
    """Snapshot the global torch, CUDA, NumPy and Python random states."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore a snapshot taken by [`capture_rng_state`][]."""
    for key in ("torch", "numpy", "python"):
        if key not in state:
            raise ValueError(f"RNG state lacks the {key!r} entry (has {sorted(state)})")
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
