"""The one backend switch: names, availability, reasons, the environment override."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from unihpr.ops.backend import BACKENDS, ENV_VAR, resolve_backend

CPU = torch.device("cpu")
EXACT = ("torch", "triton")
SAMPLED = ("torch", "compile")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


def test_auto_is_torch_on_the_cpu():
    for kernels in (EXACT, SAMPLED, ("torch",)):
        assert resolve_backend("auto", owner="x", kernels=kernels, device=CPU) == "torch"
        assert resolve_backend("auto", owner="x", kernels=kernels) == "torch"
    assert resolve_backend("compile", owner="x", kernels=SAMPLED, device=CPU) == "compile"
    assert resolve_backend("torch", owner="x", kernels=EXACT, device=CPU) == "torch"


def test_unknown_name_and_missing_kernel():
    with pytest.raises(ValueError, match=r"owner: backend must be one of \('auto', 'torch'"):
        resolve_backend("cuda", owner="owner", kernels=EXACT)
    with pytest.raises(ValueError, match="backend='triton' is not available for this computation"):
        resolve_backend("triton", owner="owner", kernels=SAMPLED)
    with pytest.raises(ValueError, match="backend='compile' is not available"):
        resolve_backend("compile", owner="owner", kernels=EXACT)


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")
def test_explicit_triton_says_why_it_cannot_run(monkeypatch):
    with pytest.raises(ValueError, match="cannot run: the kernels need CUDA tensors, got cpu"):
        resolve_backend("triton", owner="o", kernels=EXACT, device=CPU, dtype=torch.float32)
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the interpreter runs them on the CPU
    assert resolve_backend("triton", owner="o", kernels=EXACT, device=CPU, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"float32 only, got torch\.float64"):
        resolve_backend("triton", owner="o", kernels=EXACT, device=CPU, dtype=torch.float64)
    # auto never picks the interpreter: the kernels are a default on CUDA only
    assert resolve_backend("auto", owner="o", kernels=EXACT, device=CPU, dtype=torch.float32) == (
        "torch"
    )


def test_explicit_triton_without_triton_installed(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real(name, *a)
    )
    with pytest.raises(
        ValueError,
        match=r'triton is not installed \(`pip install -e "\.\[triton\]"` in the unihpr checkout',
    ):
        resolve_backend("triton", owner="o", kernels=EXACT)


def test_environment_variable_replaces_auto_only(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "compile")
    assert resolve_backend("auto", owner="o", kernels=SAMPLED, device=CPU) == "compile"
    assert resolve_backend("torch", owner="o", kernels=SAMPLED, device=CPU) == "torch"
    # a computation without that implementation keeps its auto choice
    assert resolve_backend("auto", owner="o", kernels=EXACT, device=CPU) == "torch"
    monkeypatch.setenv(ENV_VAR, "triton")
    if importlib.util.find_spec("triton") is not None:
        with pytest.raises(ValueError, match=f"{ENV_VAR}='triton' cannot run"):
            resolve_backend("auto", owner="o", kernels=EXACT, device=CPU, dtype=torch.float32)
    monkeypatch.setenv(ENV_VAR, "fast")
    with pytest.raises(ValueError, match=f"environment variable {ENV_VAR}='fast' must be one of"):
        resolve_backend("auto", owner="o", kernels=EXACT)
    assert set(BACKENDS) == {"auto", "torch", "triton", "compile"}


def test_losses_check_the_backend_when_built():
    from unihpr.losses import MultimodalInfoNCE, TripletInfoNCE

    with pytest.raises(
        ValueError, match=r"TripletInfoNCE\(negatives='sampled'\): backend='triton'"
    ):
        TripletInfoNCE(backend="triton")
    with pytest.raises(ValueError, match=r"negatives='all'\): backend='compile' is not available"):
        TripletInfoNCE(negatives="all", backend="compile")
    with pytest.raises(ValueError, match="MultimodalInfoNCE: backend='triton'"):
        MultimodalInfoNCE(backend="triton")
    with pytest.raises(
        ValueError, match=r"MultimodalInfoNCE\(K=4, score='lambda'\): backend='compile'"
    ):
        MultimodalInfoNCE(backend="compile")(*[torch.randn(4, 3) for _ in range(4)])
