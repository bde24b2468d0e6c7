"""PairInfoNCE, TripletInfoNCE, ContrastiveLoss and LearnableTemperature."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from reference_losses import (
    pair_loss_reference,
    triplet_lambda_eigvalsh,
    triplet_loss_reference,
    with_positives,
)

from unihpr.losses import (
    ContrastiveLoss,
    LearnableTemperature,
    PairInfoNCE,
    ShuffleTripletSampler,
    SwapOneTripletSampler,
    TripletInfoNCE,
    UniformTripletSampler,
)

SAMPLERS = [UniformTripletSampler(), SwapOneTripletSampler(), ShuffleTripletSampler()]


def embeddings(B, D, seed, dtype=torch.float64, n=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, D, generator=g, dtype=dtype).requires_grad_() for _ in range(n)]


def indices_used(loss: TripletInfoNCE, B: int, seed: int):
    negatives = loss.sampler(B, loss.num_negatives, generator=torch.Generator().manual_seed(seed))
    return with_positives(torch.arange(B), negatives)


# ---------------------------------------------------------------- PairInfoNCE


@given(
    B=st.integers(2, 7), D=st.integers(1, 9), seed=st.integers(0, 10_000), tau=st.floats(0.05, 2.0)
)
def test_pair_matches_term_by_term_reference(B, D, seed, tau):
    x, y = embeddings(B, D, seed, n=2)
    got = PairInfoNCE(tau)(x, y)
    ref = pair_loss_reference(x, y, tau)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    gx, gy = torch.autograd.grad(got, (x, y))
    rx, ry = torch.autograd.grad(ref, (x, y))
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gy, ry)


def test_pair_gradcheck_with_learnable_temperature():
    x, y = embeddings(5, 4, 0, n=2)
    tau = LearnableTemperature(init=0.3, min=0.01, max=10).double()
    loss = PairInfoNCE(tau)
    assert torch.autograd.gradcheck(lambda a, b: loss(a, b), (x, y))
    loss(x, y).backward()
    assert tau.log_tau.grad is not None and math.isfinite(float(tau.log_tau.grad))


def test_pair_is_symmetric_and_scale_invariant():
    x, y = embeddings(6, 3, 1, n=2)
    loss = PairInfoNCE(0.1)
    torch.testing.assert_close(loss(x, y), loss(y, x))
    torch.testing.assert_close(loss(3 * x, 0.5 * y), loss(x, y))


def test_pair_perfect_alignment_gives_low_loss():
    x = torch.eye(8, dtype=torch.float64)
    assert float(PairInfoNCE(0.01)(x, x)) < 1e-10
    assert float(PairInfoNCE(0.01)(x, x.roll(1, 0))) > 50


# ------------------------------------------------------------- TripletInfoNCE


@pytest.mark.parametrize("sampler", SAMPLERS, ids=repr)
@given(
    B=st.integers(2, 9),
    D=st.integers(2, 12),
    N=st.one_of(st.none(), st.integers(1, 30)),
    seed=st.integers(0, 9999),
)
def test_triplet_matches_eigvalsh_reference(sampler, B, D, N, seed):
    x = embeddings(B, D, seed)
    loss_fn = TripletInfoNCE(0.2, sampler=sampler, num_negatives=N)
    got = loss_fn(*x, generator=torch.Generator().manual_seed(seed))
    ref = triplet_loss_reference(*x, indices_used(loss_fn, B, seed), 0.2)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    for g, r in zip(torch.autograd.grad(got, x), torch.autograd.grad(ref, x)):
        torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10)


def test_triplet_gradcheck_including_temperature():
    x = embeddings(6, 5, 3)
    tau = LearnableTemperature(init=0.2, min=0.01, max=10).double()
    loss_fn = TripletInfoNCE(tau)

    assert torch.autograd.gradcheck(
        lambda a, b, c: loss_fn(a, b, c, generator=torch.Generator().manual_seed(0)), tuple(x)
    )
    loss_fn(*x, generator=torch.Generator().manual_seed(0)).backward()
    # ∂L/∂log τ against a central difference
    g = float(tau.log_tau.grad)
    h = 1e-6
    with torch.no_grad():
        base = float(tau.log_tau)
        tau.log_tau.fill_(base + h)
        up = float(loss_fn(*x, generator=torch.Generator().manual_seed(0)))
        tau.log_tau.fill_(base - h)
        down = float(loss_fn(*x, generator=torch.Generator().manual_seed(0)))
    assert g == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-9)


def test_triplet_gradient_finite_for_identical_embeddings():
    """Positives with a = b = c = 1 are where naive autograd gives NaN."""
    base = torch.randn(8, 16, dtype=torch.float64)
    x = [base.clone().requires_grad_() for _ in range(3)]
    loss = TripletInfoNCE(0.2)(*x, generator=torch.Generator().manual_seed(0))
    loss.backward()
    for t in x:
        assert torch.isfinite(t.grad).all()


def test_triplet_is_sign_blind_pairwise_loss_is_not():
    x = embeddings(10, 6, 4)
    flipped = [x[0], -x[1], x[2]]
    tl = TripletInfoNCE(0.2)
    torch.testing.assert_close(
        tl(*x, generator=torch.Generator().manual_seed(0)),
        tl(*flipped, generator=torch.Generator().manual_seed(0)),
    )
    pl = PairInfoNCE(0.2)
    assert abs(float(pl(x[0], x[1]).detach() - pl(x[0], -x[1]).detach())) > 1e-3


def test_triplet_float32_close_to_float64():
    x = embeddings(32, 24, 5)
    loss_fn = TripletInfoNCE(0.1)
    l64 = loss_fn(*x, generator=torch.Generator().manual_seed(1))
    l32 = loss_fn(*(t.float() for t in x), generator=torch.Generator().manual_seed(1))
    assert l32.dtype == torch.float32
    assert float(l32.detach()) == pytest.approx(float(l64.detach()), rel=1e-5)


def test_triplet_half_precision_inputs_get_half_gradients():
    x = [t.detach().to(torch.bfloat16).requires_grad_() for t in embeddings(8, 8, 6)]
    TripletInfoNCE(0.2)(*x).backward()
    for t in x:
        assert t.grad.dtype == torch.bfloat16 and torch.isfinite(t.grad.float()).all()


def test_triplet_learns_alignment():
    """A few steps of gradient descent on free embeddings raise λ1 of positives."""
    torch.manual_seed(0)
    x = [torch.randn(16, 8, requires_grad=True) for _ in range(3)]
    positives = with_positives(torch.arange(16), UniformTripletSampler()(16, 1))

    def mean_positive_lambda():
        xs = [F.normalize(t.detach(), dim=1) for t in x]
        return float(triplet_lambda_eigvalsh(*xs, positives)[:, 0].mean())

    before = mean_positive_lambda()
    loss_fn = TripletInfoNCE(0.1)
    opt = torch.optim.SGD(x, lr=0.5)
    gen = torch.Generator().manual_seed(0)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = loss_fn(*x, generator=gen)
        first = float(loss.detach()) if first is None else first
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first
    assert mean_positive_lambda() > before + 0.6


# ------------------------------------------------------------ ContrastiveLoss


def test_contrastive_equals_sum_of_parts():
    x = embeddings(12, 7, 7)
    cl = ContrastiveLoss(PairInfoNCE(0.1), TripletInfoNCE(0.3), alpha=0.7)
    got = cl(*x, generator=torch.Generator().manual_seed(3))
    pair = PairInfoNCE(0.1)
    expected = pair(x[0], x[1]) + pair(x[0], x[2]) + pair(x[1], x[2])
    expected = expected + 0.7 * TripletInfoNCE(0.3)(*x, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, expected)
    for g, r in zip(torch.autograd.grad(got, x), torch.autograd.grad(expected, x)):
        torch.testing.assert_close(g, r)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_contrastive_backward_twice_with_retained_graph(alpha):
    # With α = 1 the triplet backward hands out its saved gradient tensors;
    # a second backward through the retained graph must see them unchanged.
    xs = embeddings(24, 16, seed=5, dtype=torch.float32)
    loss_fn = ContrastiveLoss(alpha=alpha)
    loss = loss_fn(*xs, generator=torch.Generator().manual_seed(0))
    loss.backward(retain_graph=True)
    first = [x.grad.clone() for x in xs]
    for x in xs:
        x.grad = None
    loss.backward()
    for g1, x in zip(first, xs):
        torch.testing.assert_close(x.grad, g1, rtol=0, atol=0)
    # and a fresh graph gives the same gradient as the first backward
    ys = [x.detach().clone().requires_grad_() for x in xs]
    loss_fn(*ys, generator=torch.Generator().manual_seed(0)).backward()
    for g1, y in zip(first, ys):
        torch.testing.assert_close(y.grad, g1, rtol=0, atol=0)


def test_contrastive_two_modalities_is_the_pair_loss():
    x = embeddings(9, 4, 8)
    cl = ContrastiveLoss(PairInfoNCE(0.2))
    torch.testing.assert_close(cl(pose2d=x[1], pose3d=x[2]), PairInfoNCE(0.2)(x[1], x[2]))


def test_contrastive_without_triplet():
    x = embeddings(9, 4, 9)
    cl = ContrastiveLoss(PairInfoNCE(0.2), use_triplet=False)
    pair = PairInfoNCE(0.2)
    torch.testing.assert_close(cl(*x), pair(x[0], x[1]) + pair(x[0], x[2]) + pair(x[1], x[2]))


def test_contrastive_diagnostics():
    base = torch.randn(10, 6, dtype=torch.float64)
    x = [base, base + 1e-3 * torch.randn_like(base), base.clone()]
    loss, info = ContrastiveLoss()(*x, return_diagnostics=True)
    assert torch.isfinite(loss)
    for key in ("cos/image-pose2d", "cos/image-pose3d", "cos/pose2d-pose3d"):
        assert info[key] == pytest.approx(1.0, abs=1e-4)
    for key in ("acc/image-pose2d", "acc/image-pose3d", "acc/pose2d-pose3d"):
        assert info[key] == 1.0
    assert info["lambda/pos"] == pytest.approx(3.0, abs=1e-4)
    assert 1.0 <= info["lambda/neg"] < info["lambda/pos"]
    assert info["tau/pair"] == pytest.approx(0.07) and info["tau/triplet"] == pytest.approx(0.2)
    assert info["loss/pair"] >= 0 and info["loss/triplet"] >= 0


# ------------------------------------------------------ LearnableTemperature


def test_temperature_init_clamp_and_log_parametrisation():
    t = LearnableTemperature(init=1 / 14, min=1 / 100, max=1e4)
    assert float(t().detach()) == pytest.approx(1 / 14, rel=1e-6)
    assert isinstance(t.log_tau, torch.nn.Parameter)
    with torch.no_grad():
        t.log_tau.fill_(math.log(1e-5))
    assert float(t()) == pytest.approx(1 / 100, rel=1e-6)


def test_temperature_gradient_flows_back_into_range_only():
    t = LearnableTemperature(init=0.1, min=0.1, max=1.0)
    with torch.no_grad():
        t.log_tau.fill_(math.log(0.05))  # below the range
    # loss decreasing in tau: descent increases tau -> gradient kept
    (-t()).backward()
    assert float(t.log_tau.grad) < 0
    t.log_tau.grad = None
    # loss increasing in tau: descent would push further out -> zero
    t().backward()
    assert float(t.log_tau.grad) == 0.0
    t.project_()
    assert float(t.log_tau) == pytest.approx(math.log(0.1))


def test_fixed_temperature_has_no_parameters():
    assert list(PairInfoNCE(0.1).parameters()) == []
    assert len(list(PairInfoNCE(LearnableTemperature()).parameters())) == 1


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: (torch.randn(4, 3), torch.randn(5, 3)),
            r"y has shape \(5, 3\) but x has \(4, 3\)",
        ),
        (
            lambda: (torch.randn(4, 3), torch.randn(4, 2)),
            r"y has shape \(4, 2\) but x has \(4, 3\)",
        ),
        (lambda: (torch.randn(1, 3), torch.randn(1, 3)), r"at least 2.*\(1, 3\)"),
        (
            lambda: (torch.randn(4), torch.randn(4)),
            r"x must have shape \(B, D\) = \(\*, \*\), got \(4,\)",
        ),
        (lambda: (torch.randn(2, 4, 3), torch.randn(2, 4, 3)), r"got \(2, 4, 3\)"),
        (
            lambda: (torch.full((4, 3), float("nan")), torch.randn(4, 3)),
            "x has a NaN or infinite row",
        ),
        (
            lambda: (torch.randn(4, 3), torch.tensor([[1.0, 0, 0]] * 3 + [[float("inf"), 0, 0]])),
            "y has a NaN or infinite row",
        ),
        (lambda: (torch.zeros(4, 3), torch.randn(4, 3)), "x has a zero row"),
        (lambda: (torch.empty(0, 3), torch.empty(0, 3)), r"at least 2.*\(0, 3\)"),
    ],
)
def test_pair_bad_input(make, message):
    with pytest.raises(ValueError, match=message):
        PairInfoNCE()(*make())


def test_type_errors():
    with pytest.raises(
        TypeError, match=r"x must be a floating-point tensor, got dtype torch\.int64"
    ):
        PairInfoNCE()(torch.ones(3, 2, dtype=torch.long), torch.randn(3, 2))
    with pytest.raises(TypeError, match=r"must be a torch\.Tensor"):
        PairInfoNCE()([[1.0, 2.0]], torch.randn(3, 2))
    with pytest.raises(TypeError, match="sampler must be a TripletSampler"):
        TripletInfoNCE(sampler="uniform")


def test_triplet_and_contrastive_bad_input():
    good = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"x_3d has shape \(5, 3\) but x_img has \(4, 3\)"):
        TripletInfoNCE()(good, good, torch.randn(5, 3))
    with pytest.raises(ValueError, match="x_2d has a NaN"):
        TripletInfoNCE()(good, good.clone().fill_(float("nan")), good)
    with pytest.raises(ValueError, match="needs at least two"):
        ContrastiveLoss()(image=good)
    with pytest.raises(ValueError, match=r"pose3d has shape \(4, 5\) but image has \(4, 3\)"):
        ContrastiveLoss()(image=good, pose3d=torch.randn(4, 5))
    with pytest.raises(ValueError, match="num_negatives must be an int >= 1"):
        TripletInfoNCE(num_negatives=0)
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        ContrastiveLoss(alpha=-1)


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperatures(value):
    with pytest.raises(ValueError, match="PairInfoNCE: temperature must be a finite number >= 1"):
        PairInfoNCE(value)
    with pytest.raises(ValueError, match="LearnableTemperature: init must be a finite number >= 1"):
        LearnableTemperature(init=value)


def test_temperature_range_check():
    with pytest.raises(ValueError, match="min <= init <= max"):
        LearnableTemperature(init=0.5, min=0.6, max=1.0)


# ------------------------------------------- scale invariance, validation (#12)


@given(
    scale=st.sampled_from([1e-30, 1e-13, 1e-6, 1e6, 1e30]),
    which=st.integers(0, 2),
    seed=st.integers(0, 1000),
)
def test_losses_are_invariant_to_the_scale_of_their_inputs(scale, which, seed):
    """Rows of any finite non-zero norm give the same unit vector (PairInfoNCE(x, y)
    used to be 7.677 and 1.786 for the same x, y × 1e-13)."""
    x = [t.detach() for t in embeddings(6, 5, seed)]
    scaled = list(x)
    scaled[which] = x[which] * scale
    gen = lambda: torch.Generator().manual_seed(seed)  # noqa: E731
    pair = PairInfoNCE(0.1)
    torch.testing.assert_close(pair(*scaled[:2]), pair(*x[:2]), rtol=1e-12, atol=1e-12)
    for fn in (TripletInfoNCE(0.2), ContrastiveLoss(), TripletInfoNCE(0.2, negatives="all")):
        torch.testing.assert_close(
            fn(*scaled, generator=gen()), fn(*x, generator=gen()), rtol=1e-12, atol=1e-12
        )


def test_tiny_rows_get_the_gradient_of_the_normalised_loss():
    x, y = (t.detach() for t in embeddings(5, 4, 1, n=2))
    a = (x * 1e-13).requires_grad_()
    b = x.clone().requires_grad_()
    PairInfoNCE(0.1)(a, y).backward()
    PairInfoNCE(0.1)(b, y).backward()
    # d/dx of f(x / |x|) scales with 1 / |x|
    torch.testing.assert_close(a.grad * 1e-13, b.grad, rtol=1e-10, atol=1e-20)


@pytest.mark.parametrize(
    ("alpha", "exc"),
    [(float("nan"), ValueError), (float("inf"), ValueError), (-1.0, ValueError),
     (1e308, ValueError), (1e4 + 1, ValueError), (True, TypeError), ("1", TypeError)],
)  # fmt: skip
def test_alpha_is_finite_and_in_its_documented_range(alpha, exc):
    with pytest.raises(exc, match="ContrastiveLoss: alpha must be a"):
        ContrastiveLoss(alpha=alpha)
    x = embeddings(6, 4, 3)
    loss = ContrastiveLoss(alpha=1e4)(*x, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan"), float("inf")])
def test_functional_forms_reject_bad_temperatures(tau):
    from unihpr.losses import pair_info_nce, triplet_info_nce

    s = torch.eye(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="tau must be finite and > 0"):
        pair_info_nce(s, tau)
    with pytest.raises(ValueError, match="tau must be finite and > 0"):
        pair_info_nce(s, torch.tensor(tau))
    idx = UniformTripletSampler()(4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="tau must be finite and > 0"):
        triplet_info_nce(s, s, s, idx, tau, anchors=torch.arange(4))


def test_functional_forms_accept_a_float_temperature():
    from unihpr.losses import pair_info_nce, triplet_info_nce

    x = [F.normalize(t.detach(), dim=1) for t in embeddings(5, 3, 2)]
    s12, s13, s23 = x[0] @ x[1].T, x[0] @ x[2].T, x[1] @ x[2].T
    idx = UniformTripletSampler()(5, generator=torch.Generator().manual_seed(0))
    a = triplet_info_nce(s12, s13, s23, idx, 0.2, anchors=torch.arange(5))[0]
    b = triplet_info_nce(s12, s13, s23, idx, torch.tensor(0.2, dtype=torch.float64),
                         anchors=torch.arange(5))[0]  # fmt: skip
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(pair_info_nce(s12, 0.1), pair_info_nce(s12, torch.tensor(0.1)))
    rows = torch.tensor([1, 3])
    expected = pair_loss_reference(x[0], x[1], 0.1)  # all rows
    halves = (
        pair_info_nce(s12, 0.1, anchors=torch.tensor([0, 2, 4])) * 3
        + pair_info_nce(s12, 0.1, anchors=rows) * 2
    )
    torch.testing.assert_close(halves / 5, expected)
    with pytest.raises(ValueError, match=r"anchors must lie in \[0, 5\), got values \[-1\]"):
        pair_info_nce(s12, 0.1, anchors=torch.tensor([-1]))
    with pytest.raises(TypeError, match="triplets must be a TripletIndices"):
        triplet_info_nce(s12, s13, s23, torch.zeros(5, 2, dtype=torch.long), 0.2)


@pytest.mark.parametrize("make", [PairInfoNCE, TripletInfoNCE, ContrastiveLoss])
def test_mixed_dtypes_devices_meta_and_generators_are_named(make):
    n = 2 if make is PairInfoNCE else 3
    names = ("x", "y") if make is PairInfoNCE else None
    fn = make()
    good = [torch.randn(4, 3) for _ in range(n)]
    mixed = [good[0], good[1].double(), *good[2:]]
    with pytest.raises(ValueError, match=r"has dtype torch\.float64 but .* has torch\.float32"):
        fn(*mixed)
    meta = [torch.empty(4, 3, device="meta"), *good[1:]]
    with pytest.raises(ValueError, match="is a meta tensor"):
        fn(*meta)
    if make is not PairInfoNCE:
        with pytest.raises(
            TypeError, match=r"generator must be a torch\.Generator or None, got int"
        ):
            fn(*good, generator=5)
    # half-precision sets next to float32 ones (autocast outputs) are promoted, not refused
    half = [good[0].bfloat16(), *good[1:]]
    assert torch.isfinite(fn(*half))
    if names:
        with pytest.raises(ValueError, match="y has dtype"):
            fn(good[0], good[1].double())


@pytest.mark.parametrize("negatives", ["sampled", "all"])
def test_validate_false_makes_no_host_sync(negatives):
    from host_syncs import record_host_syncs

    x = [t.detach().float().requires_grad_() for t in embeddings(8, 6, 3)]
    fn = ContrastiveLoss(
        PairInfoNCE(LearnableTemperature(0.1)),
        TripletInfoNCE(LearnableTemperature(0.2), negatives=negatives),
    )
    gen = torch.Generator().manual_seed(0)
    with record_host_syncs() as calls:
        fn(*x, generator=gen).backward()
    assert calls, "validate=True reads the inputs on the host"
    fn.validate = False
    with record_host_syncs() as calls:
        fn(*x, generator=gen).backward()
    assert calls == []
    # and validate=False changes nothing about the value
    fn.validate = True
    a = fn(*x, generator=torch.Generator().manual_seed(1))
    fn.validate = False
    b = fn(*x, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # the same ops in one process


def test_diagnostics_are_read_in_one_transfer():
    from host_syncs import record_host_syncs

    x = [t.detach() for t in embeddings(6, 4, 2)]
    fn = ContrastiveLoss(PairInfoNCE(validate=False), TripletInfoNCE(validate=False))
    with record_host_syncs() as calls:
        _, info = fn(*x, return_diagnostics=True)
    assert [name for name, _ in calls] == ["tolist"] and len(info) == 12


# ----------------------------------------------------- renames, samplers, repr


def test_module_compile_is_not_shadowed():
    loss_fn = TripletInfoNCE(0.2)
    assert loss_fn.compile() is None  # nn.Module.compile, not a bool attribute
    assert loss_fn._compiled_call_impl is not None
    assert callable(TripletInfoNCE(backend="compile").compile)


def test_any_sampler_subclass_is_only_asked_for_indices():
    """The loss never inspects the sampler's type: a custom sampler's indices are used as given."""
    from unihpr.losses import TripletSampler, triplet_info_nce

    class Fixed(TripletSampler):
        calls = 0

        def sample(self, batch_size, num_modalities, num_negatives, anchors, generator, device):
            Fixed.calls += 1
            base = (anchors[:, None] + torch.arange(1, num_negatives + 1)) % batch_size
            return tuple(base if m == 1 else anchors[:, None].expand_as(base) for m in range(3))

    x = embeddings(5, 4, 6)
    got = TripletInfoNCE(0.2, sampler=Fixed(), num_negatives=3)(*x)
    assert Fixed.calls == 1
    xs = [F.normalize(t, dim=1) for t in x]
    idx = Fixed()(5, 3)
    ref = triplet_info_nce(
        xs[0] @ xs[1].T, xs[0] @ xs[2].T, xs[1] @ xs[2].T, idx, 0.2, anchors=torch.arange(5)
    )[0]
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(
        got, triplet_loss_reference(*x, with_positives(torch.arange(5), idx), 0.2)
    )


def test_printing_a_loss_with_learnable_temperatures_warns_nothing():
    import warnings

    fn = ContrastiveLoss(PairInfoNCE(LearnableTemperature(init=0.1, min=0.01)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        text = repr(fn)
    assert "tau=0.1" in text and "learnable=True" in text
