"""Property-based fuzzing of the public entry points.

Every generated input must either work or raise a ``ValueError`` /
``TypeError`` whose message names the offending argument (or, for files, the
file). Anything else fails: a raw torch ``RuntimeError``, an ``IndexError``, a
``RecursionError``, a crash. Where the domain of an argument is known (τ > 0
and finite, indices in range, finite poses), the tests also check that a
call that "works" was given valid input and returns finite numbers, so a
silently wrong result fails as well.

Tests that fail on code whose validation is owned by another branch are marked
``xfail(strict=False)`` with that branch named in the reason; the shrink phase
is skipped for them so that an expected failure stays cheap.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st
from payloads import CreatesFile

from unihpr import metrics
from unihpr.data import Human36M, MPIInf3DHP, ThreeDPW
from unihpr.losses import (
    ContrastiveLoss,
    LearnableTemperature,
    MultimodalInfoNCE,
    PairInfoNCE,
    ShuffleTripletSampler,
    SwapOneTripletSampler,
    TripletIndices,
    TripletInfoNCE,
    UniformTripletSampler,
    pair_info_nce,
    triplet_info_nce,
)
from unihpr.models import UniHPRConfig, create_model
from unihpr.models import from_pretrained as load_pretrained
from unihpr.models.hub import save_pretrained
from unihpr.ops import exact_triplet_info_nce, lambda1_from_cosines, lambda1_from_gram
from unihpr.train import StageConfig, TrainConfig, load_checkpoint, read_metrics, save_checkpoint

# nonfinite="mask" is fuzzed on purpose: its warning is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:.*nonfinite='mask':UserWarning")


def fuzz(*, needs: str | None = None, examples: int | None = None, files: bool = False):
    """One ``settings`` object per test (they do not stack) and the xfail mark.

    Args:
        needs: The branch whose validation the test waits for: the test is
            ``xfail(strict=False)`` on current code and skips shrinking.
        examples: Fewer examples for an expensive test.
        files: The test uses the function-scoped ``tmp_path`` fixture.
    """
    kwargs = {}
    if needs:
        kwargs["phases"] = (Phase.explicit, Phase.reuse, Phase.generate)
    if examples:
        kwargs["max_examples"] = examples
    if files:
        kwargs["suppress_health_check"] = [
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
        ]

    def mark(fn):
        fn = settings(**kwargs)(fn)
        if needs:
            fn = pytest.mark.xfail(strict=False, reason=f"needs validation from branch {needs}")(fn)
        return fn

    return mark


NAN, INF = math.nan, math.inf


def _names_one_of(err: BaseException, names) -> bool:
    msg = str(err)
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", msg) for n in names)


def attempt(names, fn, *args, **kwargs):
    """``(True, result)``, or ``(False, error)`` for a ValueError/TypeError naming one of ``names``.

    Any other exception propagates and fails the test. Each outcome is
    recorded as a hypothesis event (``pytest --hypothesis-show-statistics``);
    with ``FUZZ_DEBUG=1`` the events include the error messages.
    """
    label = getattr(fn, "__qualname__", type(fn).__name__)
    try:
        result = fn(*args, **kwargs)
    except (ValueError, TypeError) as err:
        assert _names_one_of(err, names), f"{type(err).__name__} names none of {list(names)}: {err}"
        event(
            f"{label}: {type(err).__name__}"
            + (f" {str(err)[:90]}" if os.environ.get("FUZZ_DEBUG") else "")
        )
        return False, err
    event(f"{label}: accepted")
    return True, result


# --------------------------------------------------------------------- values
WILD_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 5),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 5e-324, 1e300, NAN, INF, -INF, 0.2, 1.0]),
    st.text(max_size=3),
    st.just([0.1, 0.2]),
    st.just(torch.tensor(0.5)),
    st.just(torch.tensor([0.1, 0.2])),
    st.just(np.float64(0.3)),
)
#: The same without huge integers: for sizes and counts, where a huge but
#: well-typed value is a resource limit (memory, time), not a validation case.
WILD_SIZES = WILD_SCALARS.filter(
    lambda v: not (isinstance(v, int) and not isinstance(v, bool) and abs(v) > 64)
)


#: Invalid values every numeric argument must reject, drawn often.
BAD_NUMBERS = st.sampled_from([NAN, INF, -INF, -1.0, True, None, "1", [1.0]])


def mostly(valid, wild):
    """``valid`` three times in four: a call with several arguments then often
    reaches the one argument under test with the others valid."""
    # (st.one_of(valid, valid, valid, wild) would not weight: hypothesis
    # spreads its draws over distinct values, not over branches.)
    return st.integers(0, 3).flatmap(lambda i: wild if i == 0 else valid)


def pick(valid, *bad):
    """``valid`` three times in four, else one of ``bad``."""
    return mostly(st.just(valid), st.sampled_from(bad))


def _valid_tau(value, dtype=torch.float32) -> bool:
    """A valid temperature: finite, > 0 and a normal number of the logits' dtype
    (below that 1/τ overflows and the loss cannot be finite)."""
    info = torch.finfo(dtype)
    return _valid_positive(value) and info.tiny <= float(value) <= info.max


def _valid_positive(value) -> bool:
    """A finite real > 0 (a Python/numpy number or a one-element float tensor)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, torch.Tensor):
        return (
            value.numel() == 1 and value.is_floating_point() and bool(torch.isfinite(value).all())
        ) and float(value) > 0
    return (
        isinstance(value, (int, float, np.floating, np.integer))
        and math.isfinite(value)
        and value > 0
    )


@st.composite
def matrices(draw, rows=None, cols=None, dtypes=(torch.float32, torch.float64), damage=True):
    """A float matrix, sometimes damaged (NaN/inf entry, zero row, tiny or huge scale)."""
    r = draw(st.integers(0, 5)) if rows is None else rows
    c = draw(st.integers(0, 4)) if cols is None else cols
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**16))
    x = torch.randn(r, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    kind = draw(pick("none", "nan", "inf", "zero_row", "scale")) if damage else "none"
    if x.numel() and kind in ("nan", "inf"):
        x[draw(st.integers(0, r - 1)), draw(st.integers(0, c - 1))] = NAN if kind == "nan" else INF
    elif r and kind == "zero_row":
        x[draw(st.integers(0, r - 1))] = 0.0
    elif kind == "scale":
        x = x * draw(st.sampled_from([1e-30, 1e-13, 1e13, 1e30]))
    x = x.to(dtype)
    if draw(st.booleans()) and x.dim() == 2:
        x = x.T.contiguous().T  # same values, non-contiguous
    note(f"matrix {tuple(x.shape)} {dtype} damage={kind}")
    return x


def _finite_rows(*xs) -> bool:
    return all(bool(torch.isfinite(x).all()) and bool((x.abs().amax(dim=1) > 0).all()) for x in xs)


# --------------------------------------------------------------------- losses
@given(data=st.data())
def test_pair_info_nce_module_same_dtype(data):
    b, d = data.draw(st.integers(0, 5)), data.draw(st.integers(0, 4))
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))
    x = data.draw(matrices(b, d, dtypes=(dtype,)))
    y = data.draw(matrices(b if data.draw(st.booleans()) else None, d, dtypes=(dtype,)))
    # (temperatures are fuzzed in test_contrastive_loss_arguments)
    ok, loss = attempt(["x", "y"], PairInfoNCE(0.1), x, y)
    if ok:
        assert loss.ndim == 0 and torch.isfinite(loss)
        assert x.shape == y.shape and x.shape[0] >= 2 and _finite_rows(x, y)


@fuzz()
@given(data=st.data())
def test_pair_info_nce_module_mixed_dtypes_and_devices(data):
    x = data.draw(matrices(4, 3, dtypes=(torch.float32,), damage=False))
    y = data.draw(
        matrices(4, 3, dtypes=(torch.float64, torch.float16, torch.bfloat16), damage=False)
    )
    if data.draw(st.booleans()):
        y = torch.empty(4, 3, device="meta")
    ok, loss = attempt(["x", "y"], PairInfoNCE(0.1), x, y)
    if ok:
        assert torch.isfinite(loss)


@fuzz()
@given(data=st.data())
def test_pair_loss_is_invariant_to_the_scale_of_its_inputs(data):
    x = data.draw(matrices(4, 5, dtypes=(torch.float64,), damage=False))
    y = data.draw(matrices(4, 5, dtypes=(torch.float64,), damage=False))
    scale = data.draw(st.sampled_from([1e-300, 1e-100, 1e-13, 1e-6, 1e6, 1e100]))
    ref = PairInfoNCE(0.1)(x, y)
    ok, scaled = attempt(["x"], PairInfoNCE(0.1), x * scale, y)
    if ok:  # rejecting tiny norms (below a documented epsilon) is also acceptable
        torch.testing.assert_close(scaled, ref)


@fuzz()
@given(
    b=st.integers(1, 5),
    tau=st.one_of(BAD_NUMBERS, WILD_SCALARS, st.floats(-1.0, 1.0)),
    seed=st.integers(0, 99),
)
def test_pair_info_nce_functional_checks_tau(b, tau, seed):
    s = torch.rand(b, b, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    ok, loss = attempt(["tau"], pair_info_nce, s, tau)
    assert ok == _valid_tau(tau), f"tau={tau!r} was {'accepted' if ok else 'rejected'}"
    if ok:
        assert torch.isfinite(loss)


@given(data=st.data())
def test_contrastive_loss_inputs(data):
    b, d = data.draw(st.integers(0, 5)), data.draw(st.integers(0, 4))
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))
    present = data.draw(st.sampled_from([(1, 1, 1), (0, 1, 1), (1, 0, 1), (1, 1, 0), (0, 0, 1)]))
    xs = [data.draw(matrices(b, d, dtypes=(dtype,))) if p else None for p in present]
    triplet = TripletInfoNCE(
        num_negatives=data.draw(st.sampled_from([None, 1, 3])),
        negatives=data.draw(st.sampled_from(["sampled", "all"])),
    )
    loss_fn = ContrastiveLoss(triplet=triplet, use_triplet=data.draw(st.booleans()))
    g = torch.Generator().manual_seed(0)
    ok, loss = attempt(["image", "pose2d", "pose3d"], loss_fn, *xs, generator=g)
    if ok:
        assert torch.isfinite(loss)
        given_xs = [x for x in xs if x is not None]
        assert len(given_xs) >= 2 and b >= 2 and _finite_rows(*given_xs)


def _int_at_least(one):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= one


_CONTRASTIVE_ARGS = {  # name: (a valid value, the domain)
    "alpha": (1.0, lambda v: _real(v) and math.isfinite(v) and 0 <= v <= 1e4),
    "pair_temperature": (0.1, lambda v: _maybe_tensor_positive(v)),
    "triplet_temperature": (0.2, lambda v: _maybe_tensor_positive(v)),
    "num_negatives": (None, lambda v: v is None or _int_at_least(1)(v)),
    "negatives": ("sampled", lambda v: v in ("sampled", "all")),
    "chunk_size": (None, lambda v: v is None or _int_at_least(1)(v)),
}


def _contrastive(alpha, pair_temperature, triplet_temperature, **triplet):
    pair = PairInfoNCE(pair_temperature)
    return ContrastiveLoss(pair, TripletInfoNCE(triplet_temperature, **triplet), alpha)


def _maybe_tensor_positive(v) -> bool | None:
    # A tensor τ may be taken or refused by a module; a number must be > 0 and finite.
    return None if isinstance(v, torch.Tensor) else _valid_tau(v)


def _real(v) -> bool:
    return isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(
        v, (bool, np.bool_)
    )


@fuzz()
@given(
    name=st.sampled_from(sorted(_CONTRASTIVE_ARGS)),
    value=st.one_of(BAD_NUMBERS, WILD_SIZES, st.sampled_from([0.0, 2, 0.5, "all", 1e30])),
)
def test_contrastive_loss_arguments(name, value):
    kwargs = {k: v for k, (v, _) in _CONTRASTIVE_ARGS.items()}
    kwargs[name] = value
    ok, loss_fn = attempt([name, "temperature"], _contrastive, **kwargs)
    valid = _CONTRASTIVE_ARGS[name][1](value)
    assert valid is None or ok == valid, f"{name}={value!r} was {'accepted' if ok else 'rejected'}"
    if ok:
        xs = [torch.randn(4, 6, generator=torch.Generator().manual_seed(i)) for i in range(3)]
        loss = loss_fn(*xs, generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(loss)


@fuzz()
@given(data=st.data())
def test_triplet_info_nce_functional_indices_and_dtypes(data):
    b = data.draw(st.integers(2, 6))
    n = data.draw(st.integers(1, 4))
    a = data.draw(st.integers(1, b))
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))
    sims = [data.draw(matrices(b, b, dtypes=(dtype,), damage=False)).clamp(-1, 1) for _ in range(3)]
    idx_dtypes = [data.draw(st.sampled_from([torch.int32, torch.int64])) for _ in range(4)]
    lo, hi = data.draw(st.sampled_from([(0, b - 1), (0, b - 1), (-2, b + 1)]))
    triplets = TripletIndices(
        *(torch.tensor(data.draw(st.lists(st.lists(st.integers(lo, hi), min_size=n, max_size=n), min_size=a, max_size=a)), dtype=idx_dtypes[i]) for i in range(3))
    )  # fmt: skip
    anchors = torch.tensor(
        data.draw(st.lists(st.integers(lo, hi), min_size=a, max_size=a)), dtype=idx_dtypes[3]
    )
    tau = data.draw(st.one_of(st.just(torch.tensor(0.2)), st.just(0.2), WILD_SCALARS))
    names = ["s12", "s13", "s23", "triplets", "tau", "anchors", "image", "pose2d", "pose3d"]
    ok, out = attempt(names, triplet_info_nce, *sims, triplets, tau, anchors=anchors)
    in_range = all(bool(((t >= 0) & (t < b)).all()) for t in (*triplets, anchors))
    if ok:
        assert in_range, "out-of-range indices were accepted"
        assert _valid_positive(tau), f"tau={tau!r} accepted"
        assert torch.isfinite(out[0])


@fuzz()
@given(b=st.integers(2, 6), anchors=st.lists(st.integers(-3, 8), min_size=1, max_size=4))
def test_triplet_from_similarities_anchor_range(b, anchors):
    s = torch.eye(b)
    ok, _out = attempt(
        ["anchors"], TripletInfoNCE(0.2).from_similarities, s, s, s,
        generator=torch.Generator().manual_seed(0), anchors=torch.tensor(anchors),
    )  # fmt: skip
    if ok:
        assert all(0 <= x < b for x in anchors), f"anchors {anchors} accepted for B={b}"


SAMPLERS = [UniformTripletSampler(), SwapOneTripletSampler(), ShuffleTripletSampler()]


def _check_sampler_call(sampler, batch_size, num_negatives, anchors, anchor_dtype, dtype):
    a = None if anchors is None else torch.tensor(anchors, dtype=anchor_dtype)
    ok, out = attempt(
        ["batch_size", "num_negatives", "anchors", "dtype"], sampler, batch_size, num_negatives,
        anchors=a, generator=torch.Generator().manual_seed(0), dtype=dtype,
    )  # fmt: skip
    if ok:
        assert all(bool(((t >= 0) & (t < batch_size)).all()) for t in out)
        if anchors is not None:
            assert all(0 <= x < batch_size for x in anchors)


@given(
    sampler=st.sampled_from(SAMPLERS),
    batch_size=st.integers(-1, 6),
    num_negatives=st.one_of(st.none(), st.integers(-1, 7)),
    anchors=st.one_of(st.none(), st.lists(st.integers(-3, 8), max_size=4)),
    anchor_dtype=st.sampled_from([torch.int64, torch.int32, torch.float32]),
    dtype=st.sampled_from([torch.int64, torch.int32, torch.float32]),
)
def test_samplers_with_integer_sizes(
    sampler, batch_size, num_negatives, anchors, anchor_dtype, dtype
):
    _check_sampler_call(sampler, batch_size, num_negatives, anchors, anchor_dtype, dtype)


@fuzz()
@given(
    sampler=st.sampled_from(SAMPLERS),
    batch_size=st.one_of(st.integers(2, 6), BAD_NUMBERS, WILD_SIZES),
    num_negatives=st.one_of(st.none(), st.integers(1, 4), BAD_NUMBERS, WILD_SIZES),
    dtype=st.sampled_from([torch.int64, torch.int32]),
)
def test_samplers_with_wild_sizes(sampler, batch_size, num_negatives, dtype):
    _check_sampler_call(sampler, batch_size, num_negatives, None, torch.int64, dtype)


@fuzz()
@given(
    sampler=st.sampled_from(SAMPLERS),
    generator=st.sampled_from([None, 5, "seed", 2.5]),
    device=st.sampled_from(["cpu", "gpu", 3, "cuda:7"]),
)
def test_samplers_generator_and_device(sampler, generator, device):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        return
    ok, _out = attempt(["generator", "device"], sampler, 4, 3, generator=generator, device=device)
    if ok:
        assert generator is None or isinstance(generator, torch.Generator)


def _check_tuples(batch_size, k, n, anchors, sampler):
    a = None if anchors is None else torch.tensor(anchors, dtype=torch.int64)
    ok, out = attempt(
        ["batch_size", "num_modalities", "num_negatives", "anchors", "anchor_modality"],
        sampler.tuples, batch_size, k, n, anchors=a, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    if ok:
        out = torch.stack(out, dim=-1)
        assert out.shape[-1] == k and bool(((out >= 0) & (out < batch_size)).all())


@given(
    batch_size=st.integers(-1, 5),
    k=st.integers(0, 5),
    n=st.integers(-1, 4),
    anchors=st.one_of(st.none(), st.lists(st.integers(0, 1), max_size=3)),
    sampler=st.sampled_from(SAMPLERS),
)
def test_sampler_tuples_with_low_anchors(batch_size, k, n, anchors, sampler):
    _check_tuples(batch_size, k, n, anchors, sampler)


@fuzz()
@given(
    batch_size=st.integers(2, 5),
    anchors=st.lists(st.integers(-3, 8), min_size=1, max_size=3),
    sampler=st.sampled_from(SAMPLERS),
)
def test_sampler_tuples_anchor_range(batch_size, anchors, sampler):
    _check_tuples(batch_size, 3, 2, anchors, sampler)


@given(data=st.data())
def test_multimodal_info_nce(data):
    k = data.draw(st.integers(0, 4))
    b, d = data.draw(st.integers(0, 4)), data.draw(st.integers(1, 3))
    xs = [data.draw(matrices(b, d, dtypes=(torch.float32,))) for _ in range(k)]
    loss_fn = MultimodalInfoNCE(score=data.draw(st.sampled_from(["lambda", "volume"])))
    ok, loss = attempt(
        ["embeddings", "embedding"], loss_fn, *xs, generator=torch.Generator().manual_seed(0)
    )
    if ok:
        assert torch.isfinite(loss) and k >= 2 and b >= 2 and _finite_rows(*xs)


@fuzz()
@given(
    name=st.sampled_from(["init", "min", "max"]),
    value=st.one_of(BAD_NUMBERS, WILD_SCALARS, st.floats(1e-3, 1.0)),
)
def test_learnable_temperature(name, value):
    kwargs = {"init": 0.07, "min": 0.01, "max": 1e4, name: value}
    ok, t = attempt([name, "min", "init", "max"], LearnableTemperature, **kwargs)
    if ok:
        assert _valid_positive(value) and not isinstance(value, torch.Tensor), f"{name}={value!r}"
        tau = t().detach()
        assert torch.isfinite(tau) and float(tau) > 0


# ------------------------------------------------------------------------ ops
@given(data=st.data())
def test_lambda1_from_cosines(data):
    shapes = [data.draw(st.sampled_from([(), (3,), (1,), (2, 3), (4,)])) for _ in range(3)]
    dtypes = [
        data.draw(st.sampled_from([torch.float32, torch.float64, torch.int64])) for _ in range(3)
    ]
    vals = [
        (torch.rand(s, generator=torch.Generator().manual_seed(i)) * 2.4 - 1.2).to(dt)
        for i, (s, dt) in enumerate(zip(shapes, dtypes))
    ]
    if data.draw(st.booleans()):
        vals[0] = vals[0].to(torch.float64).fill_(NAN)
    ok, lam = attempt(["a", "b", "c"], lambda1_from_cosines, *vals)
    if ok and all(bool((v.abs() <= 1).all()) for v in vals):
        assert bool(((lam >= 1 - 1e-5) & (lam <= 3 + 1e-5)).all())


@given(data=st.data())
def test_lambda1_from_gram_of_valid_grams(data):
    k = data.draw(st.integers(2, 5))
    n = data.draw(st.integers(1, 4))
    x = torch.nn.functional.normalize(
        torch.randn(n, k, 6, generator=torch.Generator().manual_seed(data.draw(st.integers(0, 999))),
                    dtype=torch.float64), dim=-1)  # fmt: skip
    lam = lambda1_from_gram(x @ x.transpose(-1, -2))
    assert bool(((lam >= 1 - 1e-9) & (lam <= k + 1e-9)).all())


@fuzz()
@given(
    shape=st.sampled_from([(3, 3), (1, 1), (2, 4, 4), (3,), (2, 3), (0, 3, 3)]),
    fill=st.sampled_from([0.5, NAN, 2.0]),
)
def test_lambda1_from_gram_bad_input(shape, fill):
    g = torch.full(shape, fill, dtype=torch.float64)
    if len(shape) >= 2 and shape[-1] == shape[-2]:
        g = g + torch.eye(shape[-1], dtype=torch.float64) * (1 - fill)
    ok, lam = attempt(["gram"], lambda1_from_gram, g)
    if ok:
        assert bool(torch.isfinite(lam).all())


@fuzz()
@given(data=st.data())
def test_exact_triplet_info_nce(data):
    b = data.draw(st.integers(1, 5))
    dtype = data.draw(st.sampled_from([torch.float32, torch.float64]))
    sims = [data.draw(matrices(b, b, dtypes=(dtype,), damage=False)).clamp(-1, 1) for _ in range(3)]
    if data.draw(st.booleans()):
        sims[2] = sims[2][:, : max(b - 1, 0)]
    tau = data.draw(st.one_of(st.just(0.2), WILD_SCALARS))
    anchors = data.draw(st.one_of(st.none(), st.lists(st.integers(-2, 6), min_size=1, max_size=3)))
    a = None if anchors is None else torch.tensor(anchors)
    chunk = data.draw(st.one_of(st.none(), st.integers(-1, 4)))
    backend = data.draw(st.sampled_from(["auto", "torch", "cuda-only", "triton"]))
    ok, out = attempt(
        ["s12", "s13", "s23", "tau", "anchors", "chunk_size", "backend"], exact_triplet_info_nce,
        *sims, tau, anchors=a, chunk_size=chunk, backend=backend,
    )  # fmt: skip
    if ok:
        assert _valid_positive(tau) and torch.isfinite(out[0])
        assert anchors is None or all(0 <= x < b for x in anchors)


# --------------------------------------------------------------------- models
CONFIG_FIELDS = {
    "num_joints": st.one_of(st.integers(-1, 20), st.just(2.5), st.just(True)),
    "embed_dim": st.one_of(st.integers(-1, 40), st.just(True), st.just(8.0)),
    "image_size": st.one_of(st.just((32, 32)), st.just((32.5, 32)), st.just((8, 8)), st.just(32)),
    "root_joint": st.one_of(st.integers(-1, 20), st.just(0.5)),
    "pose_width": st.one_of(st.integers(-1, 24), st.just(16.0)),
    "pose_depth": st.one_of(st.integers(-1, 2), st.just(1.5)),
    "pose_heads": st.one_of(st.integers(-1, 5)),
    "pose_mlp_ratio": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(0), st.just(2.0)),
    "dropout": st.one_of(st.floats(-1, 2), st.just(NAN)),
    "bbox_reference": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(0.0), st.just(64.0)),
    "decoder": st.sampled_from(["mlp", "transformer", "diffusion", "gan", 3]),
    "decoder_width": st.one_of(st.integers(-1, 24), st.just(16.5)),
    "decoder_depth": st.one_of(st.integers(-1, 2)),
    "decoder_heads": st.one_of(st.integers(-1, 5)),
    "diffusion_train_steps": st.one_of(st.integers(-1, 50), st.just(10.0)),
    "diffusion_sampling_steps": st.one_of(st.integers(-1, 5), st.just(2.5)),
    "num_hypotheses": st.one_of(st.integers(-1, 3), st.just(2.5)),
    "hypothesis_aggregation": st.sampled_from(["mean", "median", "max", None]),
    "target_scale_3d": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(0.0), st.just(0.5)),
}  # fmt: skip
TINY = {"num_joints": 5, "embed_dim": 16, "image_size": (32, 32), "pose_width": 16,
        "pose_depth": 1, "pose_heads": 2, "decoder": "mlp", "decoder_width": 16,
        "decoder_depth": 1, "decoder_heads": 2, "bbox_reference": 64.0}  # fmt: skip


@st.composite
def config_overrides(draw):
    keys = draw(
        st.lists(st.sampled_from(sorted(CONFIG_FIELDS)), min_size=1, max_size=3, unique=True)
    )
    return {k: draw(CONFIG_FIELDS[k]) for k in keys}


def _check_built_model(model, cfg):
    g = torch.Generator().manual_seed(0)
    pose2d = torch.rand(2, cfg.num_joints, 2, generator=g) * 64
    pose3d = torch.randn(2, cfg.num_joints, 3, generator=g) * 0.3
    e2, e3 = model.encode_pose2d(pose2d), model.encode_pose3d(pose3d)
    assert torch.isfinite(e2).all() and torch.isfinite(e3).all()
    assert e2.shape == (2, cfg.embed_dim)


@fuzz(examples=25)
@given(overrides=config_overrides())
def test_unihpr_config_and_create_model(overrides):
    names = [*list(CONFIG_FIELDS), "image_size"]
    ok, cfg = attempt(names, UniHPRConfig, **{**TINY, **overrides})
    if not ok:
        return
    ok, model = attempt(names, create_model, "unihpr-tiny", **{**TINY, **overrides})
    if ok:
        _check_built_model(model.eval(), cfg)


@fuzz(examples=25)
@given(
    embed_dim=st.integers(1, 24),
    heads=st.sampled_from([1, 2, 4]),
    joints=st.integers(2, 8),
    decoder=st.sampled_from(["mlp", "transformer", "diffusion"]),
)
def test_valid_configs_build_and_encode(embed_dim, heads, joints, decoder):
    cfg = {**TINY, "embed_dim": embed_dim, "pose_heads": heads, "num_joints": joints,
           "decoder": decoder, "pose_width": 8 * heads}  # fmt: skip
    ok, model = attempt(list(CONFIG_FIELDS), create_model, "unihpr-tiny", **cfg)
    if ok:
        _check_built_model(model.eval(), UniHPRConfig(**cfg))


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    save_pretrained(create_model("unihpr-tiny", **TINY), folder)
    return folder


@fuzz(examples=25, files=True)
@given(data=st.data())
def test_from_pretrained_with_a_tampered_config(saved_tiny, data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tampered")
    for f in saved_tiny.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((folder / "config.json").read_text())
    kind = data.draw(st.sampled_from(["field", "field", "deep", "not_a_dict", "huge"]))
    if kind == "field":
        cfg.update(data.draw(config_overrides()))
        text = json.dumps(cfg)
    elif kind == "deep":
        text = "[" * 50_000 + "]" * 50_000
    elif kind == "not_a_dict":
        text = json.dumps([cfg])
    else:
        cfg["embed_dim"] = data.draw(st.sampled_from([800_000, 2**40]))
        text = json.dumps(cfg)
    (folder / "config.json").write_text(text)
    names = [*CONFIG_FIELDS, "config.json", "config", str(folder)]
    ok, model = attempt(names, load_pretrained, folder)
    if ok:
        _check_built_model(model, model.config)


# -------------------------------------------------------------------- metrics
METRIC_FAULTS = ("empty_batch", "no_joints", "coords", "shape_mismatch", "nan", "inf",
                 "threshold", "steps", "joints", "list_input", "int_input")  # fmt: skip
POSE_METRICS = [metrics.mpjpe, metrics.pa_mpjpe, metrics.n_mpjpe, metrics.pck, metrics.auc]


@given(data=st.data())
def test_pose_metrics(data):
    fault = data.draw(pick("none", *METRIC_FAULTS))
    fn = data.draw(st.sampled_from(POSE_METRICS))
    n = 0 if fault == "empty_batch" else data.draw(st.integers(1, 3))
    j = 0 if fault == "no_joints" else data.draw(st.integers(1, 4))
    c = data.draw(st.sampled_from([1, 4])) if fault == "coords" else 3
    seed = data.draw(st.integers(0, 999))
    pred = torch.randn(n, j, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    target = pred.flip(0) if data.draw(st.booleans()) else torch.zeros_like(pred)
    if fault == "shape_mismatch":
        target = target[:, :-1]
    if fault in ("nan", "inf") and pred.numel():
        pred[data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, j - 1)), 0] = (
            NAN if fault == "nan" else INF
        )
    kwargs = {}
    if fn is metrics.pck:
        kwargs["threshold"] = (
            data.draw(BAD_NUMBERS | WILD_SCALARS)
            if fault == "threshold"
            else data.draw(st.floats(0, 5))
        )
    if fn is metrics.auc:
        kwargs["max_threshold"] = (
            data.draw(BAD_NUMBERS | WILD_SCALARS) if fault == "threshold" else 3.0
        )
        kwargs["steps"] = data.draw(WILD_SIZES | st.integers(-1, 1)) if fault == "steps" else 11
    if fault == "joints":
        kwargs["joints"] = data.draw(
            st.one_of(st.lists(st.integers(-2, 6), max_size=3), WILD_SCALARS)
        )
    p, t = pred, target
    if data.draw(st.booleans()):
        p, t = pred.numpy(), target.numpy()
    if fault == "list_input":
        p = pred.tolist()
    if fault == "int_input":
        p = pred.round().long()
    names = ["pred", "target", "threshold", "max_threshold", "steps", "joints", "joints[0]",
             "joints[1]", "joints[2]"]  # fmt: skip
    event(f"metrics fault: {fault}")
    ok, value = attempt(names, fn, p, t, **kwargs)
    if fault in ("none", "int_input", "inf", "nan"):
        assert ok, f"{fn.__name__} rejected {fault!r} input: {value}"
    if ok:
        assert fault in ("none", "nan", "inf", "int_input", "threshold", "steps", "joints")
        v = float(value)
        if fault == "nan":
            assert math.isnan(v), f"{fn.__name__} scored NaN input as {v}"
        elif fault == "none":
            assert math.isfinite(v) and v >= 0
        if fault == "threshold":
            assert math.isfinite(kwargs.get("threshold", kwargs.get("max_threshold", 0)))
        if fn in (metrics.pck, metrics.auc):
            assert math.isnan(v) or 0 <= v <= 100


@given(data=st.data())
def test_retrieval(data):
    fault = data.draw(pick("none", "empty", "dim", "nan", "inf", "zero", "k", "ks", "targets"))
    q_rows = 0 if fault == "empty" else data.draw(st.integers(1, 5))
    g_rows = data.draw(st.integers(1, 6))
    d = data.draw(st.integers(1, 4))
    q = data.draw(matrices(q_rows, d, damage=False))
    g = data.draw(matrices(g_rows, d + 1 if fault == "dim" else d, damage=False))
    if fault in ("nan", "inf", "zero") and q_rows:
        victim = data.draw(st.sampled_from([q, g]))
        if fault == "zero":
            victim[0] = 0.0
        else:
            victim[0, 0] = NAN if fault == "nan" else INF
    bad_k = st.sampled_from([-1, 0, g_rows + 1, 1.0, True, None, "1", NAN])
    k = data.draw(bad_k) if fault == "k" else data.draw(st.integers(1, g_rows))
    event(f"retrieval fault: {fault}")
    ok, idx = attempt(["queries", "gallery", "k"], metrics.retrieve_nearest, q, g, k=k)
    assert ok == (fault in ("none", "ks", "targets")), f"retrieve_nearest with {fault!r}: {idx}"
    if ok:
        assert idx.shape == (q_rows, k) and bool(((idx >= 0) & (idx < g_rows)).all())
        cos = (
            torch.nn.functional.normalize(q.double(), dim=1)
            @ torch.nn.functional.normalize(g.double(), dim=1).T
        )
        best = cos.gather(1, idx[:, :1])
        assert bool((best >= cos.max(dim=1, keepdim=True).values - 1e-6).all())
    ks = data.draw(st.sampled_from([(), (0,), ("1",), 3])) if fault == "ks" else (1, 3)
    targets = (
        data.draw(st.sampled_from([[0.5] * q_rows, [g_rows] * q_rows, [0] * (q_rows + 1)]))
        if fault == "targets"
        else None
    )
    ok, top = attempt(
        ["query_embeddings", "gallery_embeddings", "ks", "ks[0]", "targets"],
        metrics.image_retrieval_topk, q, g, ks=ks, targets=targets,
    )  # fmt: skip
    if fault == "none" and q_rows <= g_rows:
        assert ok, top
    if ok:
        assert fault in ("none", "k") and all(0 <= v <= 100 for v in top.values())


# -------------------------------------------------------------------- loaders
def _array(draw, n, shape_tail, nan_ok=True):
    dtype = draw(pick(np.float32, np.float64, np.int64, np.bool_, object))
    arr = np.random.default_rng(draw(st.integers(0, 99))).normal(size=(n, *shape_tail))
    if nan_ok and arr.size and draw(st.integers(0, 9)) == 0:
        arr.flat[draw(st.integers(0, arr.size - 1))] = draw(st.sampled_from([NAN, INF]))
    with np.errstate(invalid="ignore"):  # NaN -> int64 is part of the garbage
        return arr.astype(dtype)


H36M_FAULTS = ("dtype", "nan", "frames", "joints3d", "coords3d", "joints2d", "coords2d",
               "cameras", "short2d", "metadata", "bytes", "payload", "raw_pickle", "missing_key")  # fmt: skip


def _poses(rng, n, shape_tail, dtype=np.float32):
    return rng.normal(size=(n, *shape_tail)).astype(dtype)


@st.composite
def h36m_files(draw, folder, marker):
    """Valid VideoPose3D files with (three times in four) one fault injected."""
    fault = draw(pick("none", *H36M_FAULTS))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    subjects = draw(
        st.lists(st.sampled_from(["S1", "S5", "S9"]), min_size=1, max_size=2, unique=True)
    )
    n = 0 if fault == "frames" else draw(st.integers(1, 4))
    j3 = draw(st.sampled_from([17, 31, 33])) if fault == "joints3d" else 32
    c3 = draw(st.sampled_from([2, 4])) if fault == "coords3d" else 3
    j2 = draw(st.sampled_from([16, 18])) if fault == "joints2d" else 17
    c2 = draw(st.sampled_from([1, 2, 3])) if fault == "coords2d" else 2
    cams = draw(st.sampled_from([3, 5])) if fault == "cameras" else 4
    n2 = n - 1 if fault == "short2d" else n + draw(st.integers(0, 2))
    p3 = {s: {"Walking": _poses(rng, n, (j3, c3))} for s in subjects}
    p2 = {
        s: {"Walking": [_poses(rng, max(n2, 0), (j2, c2)) for _ in range(cams)]} for s in subjects
    }
    victim_subject = subjects[0]
    if fault == "dtype":
        bad = draw(st.sampled_from([np.bool_, object, np.complex64]))
        p3[victim_subject]["Walking"] = p3[victim_subject]["Walking"].astype(bad)
    if fault == "nan" and n:
        which = draw(st.sampled_from(["3d", "2d"]))
        arr = p3[victim_subject]["Walking"] if which == "3d" else p2[victim_subject]["Walking"][1]
        arr[draw(st.integers(0, n - 1)), 0, 0] = draw(
            st.sampled_from([NAN, INF])
        )  # joint 0 is kept
    meta = {"num_joints": 17}
    if fault == "metadata":
        meta = draw(st.sampled_from([{"num_joints": 16}, {"num_joints": "17"}, [1], None]))
    f3, f2 = folder / "d3.npz", folder / "d2.npz"
    np.savez(f3, positions_3d=np.array(p3, dtype=object))
    np.savez(f2, positions_2d=np.array(p2, dtype=object), metadata=np.array(meta, dtype=object))
    victim = draw(st.sampled_from([f3, f2]))
    if fault == "bytes":
        blob = victim.read_bytes()
        cut = draw(st.integers(0, len(blob)))
        victim.write_bytes(blob[:cut] + draw(st.binary(max_size=8)))
    elif fault == "payload":
        np.savez(victim, positions_3d=np.array({"S1": CreatesFile(marker)}, dtype=object),
                 positions_2d=np.array(CreatesFile(marker), dtype=object),
                 metadata=np.array(meta, dtype=object))  # fmt: skip
    elif fault == "raw_pickle":
        victim.write_bytes(pickle.dumps({"positions_3d": CreatesFile(marker)}))
    elif fault == "missing_key":
        np.savez(victim, other=np.zeros(2))
    note(f"h36m fault={fault} subjects={subjects} n={n}")
    event(f"h36m fault: {fault}")
    return f3, f2, subjects, fault


@fuzz(files=True)
@given(data=st.data())
def test_h36m_loader_on_generated_files(tmp_path, data):
    marker = tmp_path / "pwned"
    f3, f2, subjects, fault = data.draw(h36m_files(tmp_path, marker))
    nonfinite = data.draw(st.sampled_from(["raise", "mask"]))
    ok, ds = attempt(["d3.npz", "d2.npz", "subjects", "nonfinite"], Human36M, f3, f2,
                     subjects=subjects, nonfinite=nonfinite)  # fmt: skip
    assert not marker.exists()
    # a (N, 17, 3) 2D file is accepted: the third column is a detector's confidence
    harmless = ("none", "coords2d") if fault != "coords2d" else ("coords2d",)
    if fault in ("none",) or (fault == "nan" and nonfinite == "mask" and len(subjects) > 1):
        assert ok, f"valid files were rejected: {ds}"
    if ok:
        assert fault in (*harmless, "nan", "bytes"), f"fault {fault!r} was accepted"
        a = ds.arrays
        assert len(ds) > 0 and a["pose3d"].shape[1:] == (17, 3) and a["pose2d"].shape[1:] == (17, 2)
        assert np.isfinite(a["pose3d"]).all() and np.isfinite(a["pose2d"]).all()
        assert ds[len(ds) - 1]["pose2d"].shape == (17, 2)


THREEDHP_FAULTS = ("frames", "joints", "coords2d", "short2d", "valid", "dtype", "nan",
                   "layout", "payload")  # fmt: skip


@fuzz(files=True)
@given(data=st.data())
def test_3dhp_loader_on_generated_files(tmp_path, data):
    marker = tmp_path / "pwned"
    fault = data.draw(pick("none", *THREEDHP_FAULTS))
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    n = 0 if fault == "frames" else data.draw(st.integers(1, 4))
    rec = {
        "data_3d": _poses(rng, n, (16 if fault == "joints" else 17, 3)) * 300,
        "data_2d": _poses(rng, n - (fault == "short2d"), (17, data.draw(st.sampled_from([1, 3])) if fault == "coords2d" else 2)),
    }  # fmt: skip
    if fault == "valid" or data.draw(st.booleans()):
        rec["valid"] = np.ones(n + (fault == "valid"), dtype=bool)
    if fault == "dtype":
        rec["data_3d"] = rec["data_3d"].astype(
            data.draw(st.sampled_from([np.bool_, object, np.complex64]))
        )
    if fault == "nan" and n:
        rec["data_2d"][data.draw(st.integers(0, n - 1)), 3, 1] = NAN
    train = fault != "valid" and data.draw(st.booleans())  # only the test layout has "valid"
    content = {"S1 Seq1": [{0: rec}]} if train else {"TS1": rec}
    if fault == "layout":
        content = data.draw(st.sampled_from([{}, {"TS1": [1, 2]}, [1], {"S1 Seq1": [5]}]))
    if fault == "payload":
        content = {"S1 Seq1": [{0: CreatesFile(marker)}]}
    f = tmp_path / "d.npz"
    np.savez(f, data=np.array(content, dtype=object))
    event(f"3dhp fault: {fault}")
    nonfinite = data.draw(st.sampled_from(["raise", "mask"]))
    ok, ds = attempt(["d.npz", "nonfinite"], MPIInf3DHP, f, nonfinite=nonfinite)
    assert not marker.exists()
    harmless = ("none", "coords2d") if fault != "coords2d" else ("coords2d",)
    if fault == "none":
        assert ok, f"a valid file was rejected: {ds}"
    if ok:
        assert fault in (*harmless, "nan"), f"fault {fault!r} was accepted"
        assert fault != "coords2d" or rec["data_2d"].shape[-1] == 3  # x, y, confidence
        assert np.isfinite(ds.arrays["pose3d"]).all() and np.isfinite(ds.arrays["pose2d"]).all()
        assert ds.arrays["pose3d"].shape[1:] == (17, 3) and len(ds) > 0


PW3D_FAULTS = ("frames", "actors", "joints", "cam_poses", "campose_valid_count",
               "campose_valid_length", "campose_valid_dtype", "missing_key", "nan",
               "payload", "truncated", "sequence")  # fmt: skip


@fuzz(files=True)
@given(data=st.data())
def test_3dpw_loader_on_generated_files(tmp_path, data):
    marker = tmp_path / "pwned"
    fault = data.draw(pick("none", *PW3D_FAULTS))
    rng = np.random.default_rng(data.draw(st.integers(0, 99)))
    n = 0 if fault == "frames" else data.draw(st.integers(1, 4))
    actors = 0 if fault == "actors" else data.draw(st.integers(1, 2))
    ext = np.tile(np.eye(4), (n, 1, 1))
    ext[:, 2, 3] = 4.0
    raw = {
        "sequence": 5 if fault == "sequence" else "seq",
        "jointPositions": [_poses(rng, n, (69 if fault == "joints" else 72,), np.float64) * 0.3 for _ in range(actors)],
        "cam_poses": ext[:, :3] if fault == "cam_poses" else ext,
        "cam_intrinsics": np.array([[1000.0, 0, 500], [0, 1000, 500], [0, 0, 1]]),
        "campose_valid": [np.ones(n - (fault == "campose_valid_length"), dtype=object if fault == "campose_valid_dtype" else bool)
                          for _ in range(actors - (fault == "campose_valid_count"))],
    }  # fmt: skip
    if fault == "missing_key":
        del raw[data.draw(st.sampled_from(["cam_poses", "campose_valid", "jointPositions"]))]
    if fault == "nan" and n:
        raw["jointPositions"][0][data.draw(st.integers(0, n - 1)), 0] = NAN
    if fault == "payload":
        raw["genders"] = [CreatesFile(marker)]
    f = tmp_path / "seq.pkl"
    f.write_bytes(pickle.dumps(raw, protocol=data.draw(st.sampled_from([2, 4]))))
    if fault == "truncated":
        f.write_bytes(f.read_bytes()[: data.draw(st.integers(0, 40))])
    event(f"3dpw fault: {fault}")
    nonfinite = data.draw(st.sampled_from(["raise", "mask"]))
    ok, ds = attempt(["seq.pkl", "nonfinite"], ThreeDPW, f, nonfinite=nonfinite)
    assert not marker.exists()
    if fault in ("none", "sequence"):
        assert ok, f"a readable sequence was rejected: {ds}"
    if ok:
        assert fault in ("none", "sequence", "nan"), f"{fault!r} accepted"
        assert np.isfinite(ds.arrays["pose3d"]).all() and np.isfinite(ds.arrays["pose2d"]).all()
        assert len(ds) == actors * n - ds.num_masked


# -------------------------------------------------------- configs and resume
STAGE_FIELDS = ["name", "steps", "batch_size", "lr", "weight_decay", "betas", "grad_clip",
                "checkpoint_every", "keep_checkpoints", "log_every"]  # fmt: skip


@given(
    fields=st.dictionaries(
        st.sampled_from(STAGE_FIELDS),
        st.one_of(WILD_SCALARS, st.just((0.9, 0.999)), st.just([0.9, NAN]), st.just("finetune")),
        max_size=3,
    )
)
def test_stage_config_from_json_like_dicts(fields):
    ok, cfg = attempt([f"StageConfig.{k}" for k in STAGE_FIELDS] + ["StageConfig.betas[0]", "StageConfig.betas[1]"],
                      StageConfig.from_dict, fields)  # fmt: skip
    if ok:
        for key in ("lr", "weight_decay"):
            assert math.isfinite(getattr(cfg, key))
        assert all(math.isfinite(b) for b in cfg.betas)
        assert StageConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@given(
    fields=st.dictionaries(
        st.sampled_from(["model", "model_overrides", "stages", "output_dir", "seed", "device",
                         "amp", "num_workers", "tensorboard", "progress", "deterministic"]),
        st.one_of(WILD_SCALARS, st.just({}), st.just([]), st.just("cuda:1"), st.just([{"name": "finetune"}])),
        max_size=3,
    )
)  # fmt: skip
def test_train_config_from_json_like_dicts(fields):
    ok, cfg = attempt([f"TrainConfig.{k}" for k in ("model", "model_overrides", "stages", "output_dir", "seed", "device", "amp", "num_workers", "tensorboard", "progress", "deterministic")] + ["StageConfig.name", "TrainConfig.stages[0]", "TrainConfig.stages[1]"], TrainConfig.from_dict, fields)  # fmt: skip
    if ok:
        assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@fuzz(files=True)
@given(
    cut=st.integers(0, 10_000),
    flip=st.one_of(st.none(), st.integers(0, 10_000)),
    extra=st.binary(max_size=4),
    map_location=st.sampled_from(["cpu", None, "gpu", "cuda:3", torch.device("cpu")]),
)
def test_damaged_checkpoints(tmp_path, cut, flip, extra, map_location):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 3, "w": torch.arange(50.0)})
    blob = bytearray(path.read_bytes())
    if flip is not None:
        blob[flip % len(blob)] ^= 0x20
    blob = bytes(blob[: cut % (len(blob) + 1)]) + extra
    path.write_bytes(blob)
    ok, state = attempt(["c.pt", "map_location"], load_checkpoint, path, map_location=map_location)
    if ok:
        assert torch.equal(state["w"], torch.arange(50.0)) and state["step"] == 3


_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


@fuzz(files=True)
@given(
    tail=st.one_of(
        st.text(max_size=30), st.binary(max_size=30).map(lambda b: b.decode("latin1"))
    ).map(lambda s: _LINE_BREAKS.sub("", s))
)
def test_metrics_file_with_any_last_line(tmp_path, tail):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"stage": "s", "step": 1}) + "\n" + tail, encoding="utf-8")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok, rows = attempt(["metrics.jsonl"], read_metrics, path)
    assert ok, rows  # the damage is in the last line: never an error
    assert rows[0] == {"stage": "s", "step": 1}
