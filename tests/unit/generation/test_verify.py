"""Probe comparison: tolerance, and the closer-to-previous test that catches a silent no-op reload."""

from __future__ import annotations

import math

from maskdpo.server.generation.verify import compare, default_tolerance


def test_match_within_tolerance_passes() -> None:
    check = compare([-1.0, -2.0], [-1.0002, -2.0], 1e-3, None)
    assert check.passed
    assert math.isclose(check.max_abs_diff, 2e-4, rel_tol=1e-6)


def test_mismatch_fails_with_reason() -> None:
    check = compare([-1.0, -2.0], [-1.0, -2.5], 1e-3, None)
    assert not check.passed
    assert "tolerance" in check.reason


def test_no_op_reload_caught_even_with_loose_tolerance() -> None:
    previous = [-1.0, -2.0, -3.0]
    new = [-1.1, -2.1, -3.1]
    assert not compare(previous, new, 0.25, previous).passed  # engine still serves the old weights
    assert compare(new, new, 0.25, previous).passed
    assert not compare(previous, new, 0.2, previous, "mean").passed


def test_nan_and_length_mismatch_fail() -> None:
    assert not compare([math.nan], [-1.0], 1e-3, None).passed
    assert not compare([-1.0], [-1.0, -2.0], 1e-3, None).passed


def test_default_tolerance_by_dtype() -> None:
    assert default_tolerance("float32") == 1e-3
    assert default_tolerance("bfloat16") == 0.1


def test_mean_statistic_tolerates_single_token_rounding() -> None:
    expected = [-1.0] * 10
    served = [-1.4] + [-1.0] * 9  # one token off by 0.4, as bfloat16 rounding does
    assert not compare(served, expected, 0.1, None, "max").passed
    check = compare(served, expected, 0.1, None, "mean")
    assert check.passed and abs(check.mean_abs_diff - 0.04) < 1e-9
