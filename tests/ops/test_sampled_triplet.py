"""The sampled Triplet-InfoNCE op: float64 references, gradients, bad input, no host syncs."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from host_syncs import record_host_syncs
from hypothesis import given

from unihpr.ops import lambda1_from_cosines, sampled_triplet_info_nce


def _unit(n, d, g, dtype=torch.float64):
    return F.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1)


def _problem(B1, B2, B3, A, M, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x1, x2, x3 = _unit(B1, 5, g, dtype), _unit(B2, 5, g, dtype), _unit(B3, 5, g, dtype)
    sims = [x1 @ x2.T, x1 @ x3.T, x2 @ x3.T]
    idx = [torch.randint(b, (A, M), generator=g) for b in (B1, B2, B3)]
    return sims, idx


def reference(s12, s13, s23, i, j, k, tau, anchors=None):
    """float64: explicit Gram matrices of the indexed cosines, eigvalsh, log-softmax."""
    if anchors is not None:
        i, j, k = (torch.cat([anchors[:, None], t], dim=1) for t in (i, j, k))
    a, b, c = (t.double() for t in (s12[i, j], s13[i, k], s23[j, k]))
    one = torch.ones_like(a)
    G = torch.stack(
        [torch.stack(row, dim=-1) for row in ((one, a, b), (a, one, c), (b, c, one))], dim=-2
    )
    logits = torch.linalg.eigvalsh(G)[..., -1] / tau
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


@given(
    B=st.tuples(st.integers(2, 6), st.integers(2, 6), st.integers(2, 6)),
    A=st.integers(1, 5),
    M=st.integers(1, 7),
    seed=st.integers(0, 10_000),
    use_anchors=st.booleans(),
)
def test_matches_float64_eigvalsh_reference(B, A, M, seed, use_anchors):
    sims, idx = _problem(*B, A, M, seed)
    sims = [s.requires_grad_() for s in sims]
    tau = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    anchors = None
    if use_anchors:
        anchors = torch.randint(min(B), (A,), generator=torch.Generator().manual_seed(seed))
    loss, lam = sampled_triplet_info_nce(*sims, *idx, tau, anchors)
    ref = reference(*sims, *idx, tau, anchors)
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)
    assert lam.shape == (A, M + (1 if use_anchors else 0)) and not lam.requires_grad
    for g, r in zip(
        torch.autograd.grad(loss, [*sims, tau]), torch.autograd.grad(ref, [*sims, tau])
    ):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-11)


def test_gradcheck_with_temperature():
    sims, idx = _problem(4, 3, 5, 3, 4, seed=1)
    anchors = torch.tensor([0, 2, 1])
    tau = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)

    def fn(s12, s13, s23, t):
        return sampled_triplet_info_nce(s12, s13, s23, *idx, t, anchors)[0]

    assert torch.autograd.gradcheck(fn, (*[s.requires_grad_() for s in sims], tau))


def test_anchors_equal_positives_in_column_zero():
    sims, idx = _problem(5, 5, 5, 5, 6, seed=2)
    anchors = torch.arange(5)
    full = [torch.cat([anchors[:, None], t], dim=1) for t in idx]
    a, lam_a = sampled_triplet_info_nce(*sims, *idx, 0.2, anchors)
    b, lam_b = sampled_triplet_info_nce(*sims, *full, 0.2)
    # float64, λ1 in [1, 3]: the closed form is good to ~6e-16 (tests/ops/test_gram.py), and
    # the same value at another position of a tensor may take a SIMD or a scalar kernel, so
    # the two layouts agree to a few of those; 1e-13 leaves a wide margin.
    torch.testing.assert_close(a, b, rtol=0, atol=1e-13)
    torch.testing.assert_close(lam_a, lam_b, rtol=0, atol=1e-13)


def test_scores_are_lambda1_of_the_gathered_cosines():
    sims, idx = _problem(4, 4, 4, 4, 3, seed=3)
    _, lam = sampled_triplet_info_nce(*sims, *idx, 0.2)
    i, j, k = idx
    expected = lambda1_from_cosines(sims[0][i, j], sims[1][i, k], sims[2][j, k])
    torch.testing.assert_close(lam, expected, rtol=0, atol=1e-13)  # as above


@pytest.mark.parametrize(
    "variant", ["float32", "float64", "mixed_index_dtypes", "non_contiguous", "bfloat16"]
)
def test_every_input_path_agrees_and_checks_ranges(variant):
    """One implementation: every dtype/layout gives the reference and checks ranges."""
    sims, idx = _problem(6, 6, 6, 6, 5, seed=4)
    ref = reference(*sims, *idx, 0.25)
    tol = 1e-12
    if variant == "float32":
        sims, tol = [s.float() for s in sims], 2e-5
    elif variant == "bfloat16":
        sims, tol = [s.bfloat16() for s in sims], 0.1
    elif variant == "mixed_index_dtypes":
        idx = [idx[0].int(), idx[1], idx[2].int()]
    elif variant == "non_contiguous":
        sims = [s.T.contiguous().T for s in sims]
        idx = [t.T.contiguous().T for t in idx]
        assert not sims[0].is_contiguous()
    loss, _ = sampled_triplet_info_nce(*sims, *idx, 0.25)
    assert float(loss) == pytest.approx(float(ref), rel=tol, abs=tol)
    for pos, name in enumerate("ijk"):
        bad = list(idx)
        bad[pos] = bad[pos].clone()
        bad[pos][2, 1] = 6  # B = 6: one past the end
        with pytest.raises(ValueError, match=rf"{name} must lie in \[0, 6\), got values \[6\]"):
            sampled_triplet_info_nce(*sims, *bad, 0.25)
    with pytest.raises(ValueError, match=r"anchors must lie in \[0, 6\), got values \[-1\]"):
        sampled_triplet_info_nce(*sims, *idx, 0.25, torch.tensor([0, 1, 2, 3, 4, -1]))


@pytest.mark.parametrize("tau", [0.0, -0.2, float("nan"), float("inf")])
def test_temperature_must_be_finite_and_positive(tau):
    sims, idx = _problem(3, 3, 3, 3, 2, seed=5)
    with pytest.raises(ValueError, match="tau must be finite and > 0"):
        sampled_triplet_info_nce(*sims, *idx, tau)
    with pytest.raises(ValueError, match="tau must be finite and > 0"):
        sampled_triplet_info_nce(*sims, *idx, torch.tensor(tau, dtype=torch.float64))


@pytest.mark.parametrize(
    ("change", "exc", "match"),
    [
        ({"s12": torch.zeros(3, 4, dtype=torch.float64)}, ValueError, r"need s12 \(B1, B2\)"),
        ({"s13": torch.zeros(3, 3, dtype=torch.float32)}, ValueError, "s13 has dtype"),
        ({"s23": torch.zeros(3, 3, dtype=torch.long)}, TypeError, "s23 must be a floating-point"),
        ({"s12": torch.zeros(3, 3, 1)}, ValueError, r"s12 must have shape \(B1, B2\)"),
        ({"s12": torch.zeros(3, 3, device="meta")}, ValueError, "s12 is a meta tensor"),
        ({"i": torch.zeros(3, 2)}, TypeError, "i must be an int32 or int64 tensor"),
        ({"j": torch.zeros(3, 1, dtype=torch.long)}, ValueError, r"j has shape \(3, 1\) but i"),
        ({"k": [[0, 1]]}, TypeError, "k must be a torch.Tensor"),
        ({"anchors": torch.zeros(2, dtype=torch.long)}, ValueError, "anchors has 2 rows"),
        ({"tau": torch.ones(2)}, ValueError, "tau must be a scalar"),
        ({"tau": "0.1"}, TypeError, "tau must be a float or a 0-dim tensor"),
        ({"backend": "triton"}, ValueError, "not available for this computation"),
        ({"backend": "cuda"}, ValueError, "backend must be one of"),
    ],
)
def test_bad_input_names_the_argument(change, exc, match):
    args = dict(zip(["s12", "s13", "s23"], [torch.zeros(3, 3, dtype=torch.float64)] * 3))
    args.update(i=torch.zeros(3, 2, dtype=torch.long), j=torch.zeros(3, 2, dtype=torch.long))
    args.update(k=torch.zeros(3, 2, dtype=torch.long), tau=0.2, anchors=None)
    args.update(change)
    backend = args.pop("backend", "auto")
    with pytest.raises(exc, match=match):
        sampled_triplet_info_nce(**args, backend=backend)


def test_validate_false_reads_nothing_on_the_host():
    sims, idx = _problem(8, 8, 8, 8, 7, seed=6, dtype=torch.float32)
    sims = [s.requires_grad_() for s in sims]
    tau = torch.tensor(0.2, requires_grad=True)
    with record_host_syncs() as calls:
        loss, _ = sampled_triplet_info_nce(*sims, *idx, tau, torch.arange(8), validate=False)
        loss.backward()
    assert calls == []
    with record_host_syncs() as calls:
        sampled_triplet_info_nce(*sims, *idx, tau, torch.arange(8))
    assert calls, "validate=True reads the index ranges"


def test_no_gradient_work_without_grad():
    sims, idx = _problem(4, 4, 4, 4, 3, seed=7)
    with torch.no_grad():
        loss, lam = sampled_triplet_info_nce(*sims, *idx, 0.2)
    assert not loss.requires_grad and lam.shape == (4, 3)


def test_compile_backend_traces_as_one_graph(monkeypatch):
    """backend="compile": the body traces without a graph break (no data-dependent branch).

    Dynamo with the "eager" backend checks the tracing in seconds; the C++/Triton
    code generation of the default backend is left to benchmarks/gpu_check.py
    (on the CPU it compiles for minutes under load).
    """
    from unihpr.ops import sampled_triplet as module

    compiled = torch.compile(module._body, backend="eager", dynamic=True, fullgraph=True)
    monkeypatch.setattr(module, "_compiled_body", compiled)
    sims, idx = _problem(6, 6, 6, 6, 5, seed=8, dtype=torch.float32)
    eager = [s.clone().requires_grad_() for s in sims]
    comp = [s.clone().requires_grad_() for s in sims]
    anchors = torch.arange(6)
    loss_e, lam_e = sampled_triplet_info_nce(*eager, *idx, 0.2, anchors, backend="torch")
    loss_c, lam_c = sampled_triplet_info_nce(*comp, *idx, 0.2, anchors, backend="compile")
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(lam_c, lam_e, rtol=1e-6, atol=1e-7)
    for ge, gc in zip(torch.autograd.grad(loss_e, eager), torch.autograd.grad(loss_c, comp)):
        torch.testing.assert_close(gc, ge, rtol=1e-5, atol=1e-7)
