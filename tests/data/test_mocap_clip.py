import doctest

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from mocap_files import intrinsic

from unihpr.data import mocap_clip
from unihpr.data.mocap_clip import (
    LENGTH_UNITS,
    euler_to_matrix,
    guess_length_unit,
    resample_motion,
    resolve_length_unit,
    to_y_up,
    tree_diameter,
)

angles_st = st.floats(-7.0, 7.0, allow_nan=False)


@given(st.text(alphabet="XYZ", max_size=5).flatmap(
    lambda axes: st.tuples(st.just(axes), st.lists(angles_st, min_size=len(axes),
                                                   max_size=len(axes)))))  # fmt: skip
def test_euler_matches_axis_angle_product(case):
    axes, angles = case
    r = euler_to_matrix(np.array(angles, dtype=np.float64), axes)
    np.testing.assert_allclose(r, intrinsic(axes, angles), atol=1e-12)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)


@given(arrays(np.float64, (4, 3), elements=angles_st), st.permutations("XYZ"))
def test_euler_batches_and_lower_case(angles, perm):
    axes = "".join(perm)
    batched = euler_to_matrix(angles, axes.lower())
    for k in range(4):
        np.testing.assert_allclose(batched[k], intrinsic(axes, angles[k]), atol=1e-12)


def test_euler_right_handed_quarter_turns():
    x, y, z = np.eye(3)
    q = np.pi / 2
    np.testing.assert_allclose(euler_to_matrix([q], "X") @ y, z, atol=1e-15)
    np.testing.assert_allclose(euler_to_matrix([q], "Y") @ z, x, atol=1e-15)
    np.testing.assert_allclose(euler_to_matrix([q], "Z") @ x, y, atol=1e-15)
    np.testing.assert_allclose(
        euler_to_matrix(np.zeros((2, 0)), ""), np.broadcast_to(np.eye(3), (2, 3, 3))
    )


def test_euler_rejects_bad_input():
    with pytest.raises(ValueError, match="letters of 'XYZ'"):
        euler_to_matrix([0.0], "W")
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        euler_to_matrix([0.0, 1.0, 2.0], "XY")


def test_tree_diameter_is_the_longest_path():
    # root -> a (3) -> b (4); root -> c (10): longest path b..c = 4 + 3 + 10
    offsets = np.array([[0, 0, 0], [3, 0, 0], [0, 4, 0], [0, 0, -10]], dtype=float)
    assert tree_diameter(offsets, [-1, 0, 1, 0]) == pytest.approx(17.0)
    # the longest path need not pass through the root
    offsets = np.array([[0, 0, 0], [1, 0, 0], [5, 0, 0], [0, 6, 0]], dtype=float)
    assert tree_diameter(offsets, [-1, 0, 1, 1]) == pytest.approx(11.0)
    assert tree_diameter(np.zeros((1, 3)), [-1]) == 0.0


@pytest.mark.parametrize("unit", sorted(LENGTH_UNITS))
@pytest.mark.parametrize("metres", [1.5, 2.0, 2.8])
def test_auto_unit_recovers_every_unit_for_adult_sizes(unit, metres):
    assert guess_length_unit(metres / LENGTH_UNITS[unit]) == unit
    scale, name = resolve_length_unit("auto", metres / LENGTH_UNITS[unit])
    assert (scale, name) == (LENGTH_UNITS[unit], unit)


def test_resolve_length_unit_numbers_and_errors():
    assert resolve_length_unit(0.5, 123.0) == (0.5, "0.5 m")
    assert resolve_length_unit("cm", 0.0) == (0.01, "cm")
    with pytest.raises(ValueError, match=r"walk\.bvh: cannot guess"):
        resolve_length_unit("auto", 0.0, "walk.bvh")
    with pytest.raises(ValueError, match=r"unit must be one of \('auto', 'm', "):
        resolve_length_unit("feet", 1.0)
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        resolve_length_unit(float("nan"), 1.0)
    with pytest.raises(TypeError, match="must be a real number, got bool"):
        resolve_length_unit(True, 1.0)


def test_z_up_to_y_up_is_a_rotation():
    pts = np.random.default_rng(0).normal(size=(5, 3))
    out = to_y_up(pts, "z")
    np.testing.assert_allclose(out, pts @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(pts, axis=1))
    np.testing.assert_allclose(to_y_up(np.array([0.0, 0, 1]), "z"), [0, 1, 0])
    assert to_y_up(pts, "y") is pts
    with pytest.raises(ValueError, match="up_axis"):
        to_y_up(pts, "x")


def test_resample_integer_ratio_picks_frames_exactly():
    motion = np.random.default_rng(1).normal(size=(121, 4, 3))
    out = resample_motion(motion, 120.0, 30.0)
    np.testing.assert_array_equal(out, motion[::4])
    np.testing.assert_array_equal(resample_motion(motion, 30.0, 30.0), motion)


@given(st.integers(2, 50), st.floats(5.0, 240.0), st.floats(5.0, 240.0))
def test_resample_interpolates_linear_motion_exactly(t, fps_in, fps_out):
    # a joint moving at constant velocity is reproduced exactly at the new times
    step = fps_in / fps_out
    assume(round(step) < 1 or abs(step - round(step)) > 1e-4 * step)  # not snapped
    times = np.arange(t) / fps_in
    motion = (np.array([1.0, -2.0, 0.5]) * times[:, None])[:, None, :]
    out = resample_motion(motion, fps_in, fps_out)
    new_times = np.arange(len(out)) / fps_out
    assert new_times[-1] <= times[-1] + 1e-9 and new_times[-1] + 1 / fps_out > times[-1] - 1e-9
    np.testing.assert_allclose(
        out[:, 0], np.array([1.0, -2.0, 0.5]) * new_times[:, None], atol=1e-9
    )


def test_resample_rejects_bad_rates():
    with pytest.raises(ValueError, match="fps_out"):
        resample_motion(np.zeros((3, 1, 3)), 30.0, 0.0)
    with pytest.raises(ValueError, match="no frames"):
        resample_motion(np.zeros((0, 1, 3)), 30.0, 30.0)


def test_docstring_examples_run():
    assert doctest.testmod(mocap_clip).failed == 0


def test_resample_snaps_rates_written_with_few_digits():
    motion = np.random.default_rng(2).normal(size=(9, 2, 3))
    np.testing.assert_array_equal(resample_motion(motion, 1 / 0.0083333, 30.0), motion[::4])
    np.testing.assert_array_equal(resample_motion(motion, 1 / 0.0333333, 30.0), motion)
    # a genuinely different rate is interpolated
    assert len(resample_motion(motion, 25.0, 30.0)) == 10


def test_auto_unit_warns_when_the_guess_is_implausible():
    with pytest.warns(UserWarning, match=r"walk\.bvh: unit='auto' chose 'm'.* 0\.30 m across"):
        resolve_length_unit("auto", 0.3, "walk.bvh")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_length_unit("auto", 180.0, "ok.bvh")  # 1.8 m in cm: no warning
        resolve_length_unit("m", 0.3, "doll.bvh")  # an explicit unit is never questioned
