"""Silencing C libraries that print to the process's file descriptors."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from unihpr._quiet import silence_c_output


def test_silence_c_output_hides_fd_writes_and_restores_them(capfd):
    print("before", flush=True)
    with silence_c_output():
        os.write(1, b"c-level stdout\n")  # what a C library's printf reaches
        os.write(2, b"c-level stderr\n")
    os.write(1, b"after\n")
    with pytest.raises(KeyError), silence_c_output():  # fds restored on errors too
        raise KeyError("x")
    os.write(2, b"still there\n")
    out, err = capfd.readouterr()
    assert out == "before\nafter\n"
    assert err == "still there\n"


@pytest.mark.skipif(importlib.util.find_spec("pybullet") is None, reason="needs pybullet")
def test_humanoid_urdf_loads_without_pybullet_chatter():
    code = (
        "from unihpr.data.mocap import _Renderer, _pybullet_data_path\n"
        "r = _Renderer(_pybullet_data_path())\n"
        "print('body', r.body)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    assert proc.stdout == "body 0\n"
    assert "b3Warning" not in proc.stderr and "urdfdom" not in proc.stderr
    assert "pybullet build time" not in proc.stdout + proc.stderr
