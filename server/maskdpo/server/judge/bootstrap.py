"""Percentile bootstrap confidence intervals over responses, and the paired bootstrap for A-vs-B.

Every metric of :mod:`maskdpo.server.judge.metrics` is a ratio of sums over responses,
``sum(num_i) / sum(den_i)`` (a mean is the case ``den_i = 1``; an average over a subset puts ``den_i = 0``
outside it). Resampling responses with replacement and recomputing that ratio gives the bootstrap
distribution; this module does that for all metrics at once with one index matrix per chunk of resamples
(numpy, no Python loop over resamples). A resample whose denominator is zero has no value: it is left out
of the percentiles and counted in ``undefined``.

The paired bootstrap resamples the SAME response indices for both systems (they answered the same
prompts, in the same order) and reports the percentile interval of the difference A - B and a two-sided
bootstrap p-value, ``2 * min(P(delta* <= 0), P(delta* >= 0))`` capped at 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
RatioTerms = Mapping[str, tuple[FloatArray, FloatArray]]
"""metric name -> (numerator per response, denominator per response)."""

DEFAULT_RESAMPLES = 1000
_CHUNK_CELLS = 4_000_000  # index-matrix cells per chunk: bounds memory for large runs


@dataclass(frozen=True, slots=True)
class ConfidenceInterval:
    """A percentile bootstrap interval for one metric."""

    low: float
    high: float
    level: float
    resamples: int
    seed: int
    undefined: int = 0
    """Resamples in which the metric had no value (zero denominator); left out of the percentiles."""


@dataclass(frozen=True, slots=True)
class PairedComparison:
    """A minus B on one metric, with its paired bootstrap interval and p-value."""

    metric: str
    a: float | None
    b: float | None
    delta: float | None
    low: float | None
    high: float | None
    p_value: float | None
    level: float
    resamples: int
    seed: int


def _check(resamples: int, level: float) -> None:
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _resampled(
    terms_list: list[RatioTerms], n: int, resamples: int, seed: int
) -> list[dict[str, FloatArray]]:
    """Bootstrap distributions of every metric of every system, sharing the resampled indices."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, list[FloatArray]]] = [{name: [] for name in terms} for terms in terms_list]
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    done = 0
    while done < resamples:
        m = min(chunk, resamples - done)
        idx = rng.integers(0, n, size=(m, n))
        for terms, dists in zip(terms_list, out, strict=True):
            for name, (num, den) in terms.items():
                dists[name].append(_ratio(num[idx].sum(axis=1), den[idx].sum(axis=1)))
        done += m
    return [{name: np.concatenate(parts) for name, parts in dists.items()} for dists in out]


def _bounds(values: FloatArray, level: float) -> tuple[float, float] | None:
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        return None
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(defined, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_intervals(
    terms: RatioTerms, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95
) -> dict[str, ConfidenceInterval]:
    """Percentile intervals for every metric in ``terms``; a metric never defined gets no interval."""
    _check(resamples, level)
    n = _length(terms)
    if n == 0:
        return {}
    [dists] = _resampled([terms], n, resamples, seed)
    intervals: dict[str, ConfidenceInterval] = {}
    for name, values in dists.items():
        bounds = _bounds(values, level)
        if bounds is not None:
            undefined = int(np.isnan(values).sum())
            intervals[name] = ConfidenceInterval(bounds[0], bounds[1], level, resamples, seed, undefined)
    return intervals


def bootstrap_derived(
    terms: RatioTerms,
    derive: Callable[[Mapping[str, FloatArray]], FloatArray],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> ConfidenceInterval | None:
    """The percentile interval of a statistic derived from several ratios of the same resamples (e.g. a
    balanced accuracy, the mean of two recalls); None when it is never defined. ``derive`` maps the
    resampled ratios (arrays, NaN where undefined) to the statistic's resampled values."""
    _check(resamples, level)
    n = _length(terms)
    if n == 0:
        return None
    [dists] = _resampled([terms], n, resamples, seed)
    values = np.asarray(derive(dists), dtype=np.float64)
    bounds = _bounds(values, level)
    if bounds is None:
        return None
    return ConfidenceInterval(bounds[0], bounds[1], level, resamples, seed, int(np.isnan(values).sum()))


def paired_bootstrap(
    terms_a: RatioTerms,
    terms_b: RatioTerms,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, PairedComparison]:
    """A - B for every metric both systems have, resampling the same responses for both."""
    _check(resamples, level)
    n = _length(terms_a)
    if _length(terms_b) != n:
        raise ValueError(f"paired bootstrap needs the same responses: A has {n}, B has {_length(terms_b)}")
    names = [name for name in terms_a if name in terms_b]
    common_a = {name: terms_a[name] for name in names}
    common_b = {name: terms_b[name] for name in names}
    if n == 0:
        dists_a: dict[str, FloatArray] = {name: np.array([]) for name in names}
        dists_b = dists_a
    else:
        dists_a, dists_b = _resampled([common_a, common_b], n, resamples, seed)
    out: dict[str, PairedComparison] = {}
    for name in names:
        a = _point(*common_a[name])
        b = _point(*common_b[name])
        delta = None if a is None or b is None else a - b
        diffs = dists_a[name] - dists_b[name]
        bounds = _bounds(diffs, level) if delta is not None else None
        p_value = None
        if bounds is not None:
            defined = diffs[~np.isnan(diffs)]
            p_value = min(1.0, 2.0 * min(float(np.mean(defined <= 0)), float(np.mean(defined >= 0))))
        out[name] = PairedComparison(
            metric=name,
            a=a,
            b=b,
            delta=delta,
            low=None if bounds is None else bounds[0],
            high=None if bounds is None else bounds[1],
            p_value=p_value,
            level=level,
            resamples=resamples,
            seed=seed,
        )
    return out


def _point(num: FloatArray, den: FloatArray) -> float | None:
    total = float(den.sum())
    return float(num.sum()) / total if total > 0 else None


def _length(terms: RatioTerms) -> int:
    lengths = {len(num) for num, _ in terms.values()} | {len(den) for _, den in terms.values()}
    if len(lengths) > 1:
        raise ValueError(f"ratio terms have different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0
