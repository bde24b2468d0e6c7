"""Silence what C libraries print straight to the process's stdout and stderr."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def silence_c_output() -> Iterator[None]:
    """Send file descriptors 1 and 2 to the null device for the ``with`` block.

    For C libraries that print to the process's stdout/stderr directly
    (pybullet's import banner and its ``b3Warning ... urdfdom`` lines when it
    loads the humanoid URDF), which ``sys.stdout`` redirection cannot catch.
    Python's own streams are flushed first so that nothing of ours is lost.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
