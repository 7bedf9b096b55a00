"""Bootstrap intervals: coverage of a known mean, determinism, and the paired test's power and null."""

from __future__ import annotations

import numpy as np
import pytest

from maskdpo.server.judge.bootstrap import bootstrap_derived, bootstrap_intervals, paired_bootstrap
from maskdpo.server.judge.metrics import compare_runs, compute_metrics, ratio_terms
from maskdpo.server.judge.records import ResponseFacts


def sample_run(rng: np.random.Generator, n: int, p: float, facts: int = 10) -> list[ResponseFacts]:
    supported = rng.binomial(facts, p, size=n)
    return [ResponseFacts(int(s), facts - int(s)) for s in supported]


def test_interval_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(7)
    hits = 0
    trials = 200
    for trial in range(trials):
        terms = ratio_terms(sample_run(rng, 60, 0.6), gamma=0)
        ci = bootstrap_intervals({"factscore": terms["factscore"]}, resamples=1000, seed=trial)["factscore"]
        hits += ci.low <= 0.6 <= ci.high
    assert 0.88 <= hits / trials <= 0.99


def test_intervals_are_seeded_and_bracket_the_estimate() -> None:
    records = sample_run(np.random.default_rng(0), 100, 0.5)
    first = compute_metrics(records, resamples=1000, seed=3)
    again = compute_metrics(records, resamples=1000, seed=3)
    other = compute_metrics(records, resamples=1000, seed=4)
    ci = first.intervals["factscore"]
    assert ci == again.intervals["factscore"]
    assert ci != other.intervals["factscore"]
    assert first.factscore is not None and ci.low < first.factscore < ci.high
    assert (ci.resamples, ci.level, ci.seed) == (1000, 0.95, 3)
    assert "respond_ratio" in first.intervals and "f1_at_k" in first.intervals


def test_paired_bootstrap_detects_a_real_difference() -> None:
    rng = np.random.default_rng(1)
    a = sample_run(rng, 150, 0.65)
    b = [ResponseFacts(max(r.supported - 1, 0), r.facts - max(r.supported - 1, 0)) for r in a]
    result = compare_runs(a, b, gamma=0, resamples=1000, seed=0)["factscore"]
    assert result.delta is not None and result.delta > 0.05
    assert result.low is not None and result.low > 0
    assert result.p_value is not None and result.p_value < 0.01


def test_paired_bootstrap_does_not_flag_a_null_difference() -> None:
    rng = np.random.default_rng(2)
    a = sample_run(rng, 150, 0.6)
    b = sample_run(rng, 150, 0.6)
    result = compare_runs(a, b, gamma=0, resamples=1000, seed=0)["factscore"]
    assert result.low is not None and result.high is not None
    assert result.low < 0 < result.high
    assert result.p_value is not None and result.p_value > 0.05
    same = compare_runs(a, a, resamples=200)["micro_precision"]
    assert (same.delta, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_paired_needs_equal_lengths_and_valid_settings() -> None:
    with pytest.raises(ValueError, match="equal-length"):
        compare_runs([ResponseFacts(1, 0)], [])
    terms = ratio_terms([ResponseFacts(1, 0)])
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_intervals(terms, resamples=0)
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap(terms, terms, level=1.5)


def test_bootstrap_of_a_large_run_is_fast() -> None:
    import time

    records = sample_run(np.random.default_rng(3), 5000, 0.5)
    start = time.perf_counter()
    compute_metrics(records, resamples=1000)
    assert time.perf_counter() - start < 20.0


def test_derived_statistic_uses_the_same_resamples_as_the_ratios() -> None:
    rng = np.random.default_rng(5)
    num_a, num_b = rng.integers(0, 2, 40).astype(float), rng.integers(0, 2, 40).astype(float)
    ones = np.ones(40)
    terms = {"a": (num_a, ones), "b": (num_b, ones)}
    ratios = bootstrap_intervals(terms, resamples=400, seed=9)
    same = bootstrap_derived(terms, lambda r: r["a"], resamples=400, seed=9)
    assert same is not None and (same.low, same.high) == (ratios["a"].low, ratios["a"].high)
    mean = bootstrap_derived(terms, lambda r: (r["a"] + r["b"]) / 2, resamples=400, seed=9)
    assert mean is not None and mean.low <= (num_a.mean() + num_b.mean()) / 2 <= mean.high
    never = bootstrap_derived({"a": (num_a, np.zeros(40))}, lambda r: r["a"], resamples=50)
    assert never is None, "a statistic never defined has no interval"
