"""Probe comparison: tolerance, and the changed-across-the-swap test that catches a silent no-op reload."""

from __future__ import annotations

import math

from maskdpo.server.generation.verify import compare, default_tolerance


def test_match_within_tolerance_passes() -> None:
    check = compare([-1.0, -2.0], [-1.0002, -2.0], 1e-3)
    assert check.passed
    assert math.isclose(check.max_abs_diff, 2e-4, rel_tol=1e-6)


def test_mismatch_fails_with_reason() -> None:
    check = compare([-1.0, -2.0], [-1.0, -2.5], 1e-3)
    assert not check.passed
    assert "tolerance" in check.reason


def test_no_op_reload_caught_even_with_loose_tolerance() -> None:
    previous_ref, new_ref = [-1.0, -2.0, -3.0], [-1.02, -2.0, -3.01]
    before = [-1.05, -2.03, -2.96]  # a 16-bit engine on the previous weights
    check = compare(before, new_ref, 0.1, statistic="mean", previous_expected=previous_ref, served_before=before)
    assert not check.passed and "still serves the previous weights" in check.reason  # nothing changed
    # A real update in 16-bit: rounding moves the engine more than the update moves the references, and
    # in directions unrelated to it (the engine ends up nearer the PREVIOUS reference): still accepted.
    after = [-1.04, -2.06, -2.99]
    check = compare(after, new_ref, 0.1, statistic="mean", previous_expected=previous_ref, served_before=before)
    assert check.passed and math.isclose(check.changed_by, 0.03, rel_tol=1e-6)
    # The same weights from another folder: references equal, unchanged scores are right.
    assert compare(before, previous_ref, 0.1, statistic="mean", previous_expected=previous_ref,
                   served_before=before).passed


def test_nan_and_length_mismatch_fail() -> None:
    assert not compare([math.nan], [-1.0], 1e-3).passed
    assert not compare([-1.0], [-1.0, -2.0], 1e-3).passed


def test_default_tolerance_by_dtype() -> None:
    assert default_tolerance("float32") == 1e-3
    assert default_tolerance("bfloat16") == 0.1


def test_mean_statistic_tolerates_single_token_rounding() -> None:
    expected = [-1.0] * 10
    served = [-1.4] + [-1.0] * 9  # one token off by 0.4, as bfloat16 rounding does
    assert not compare(served, expected, 0.1, statistic="max").passed
    check = compare(served, expected, 0.1, statistic="mean")
    assert check.passed and abs(check.mean_abs_diff - 0.04) < 1e-9
