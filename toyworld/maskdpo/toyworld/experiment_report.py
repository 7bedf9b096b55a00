"""Metrics, verdict and summary of the toy-world experiment (``experiment.py``); ``experiment_markdown``
renders and writes them.

Every number is a ratio of sums over answers, so point estimates, bootstrap intervals and paired
comparisons share one code path (:mod:`maskdpo.server.judge.metrics` and ``bootstrap``). Seeds are pooled
per person: a person's numerator and denominator are summed over the seeds' greedy answers, and people are
resampled (the seeds' models answer the same people, so this is a cluster bootstrap over people). The
per-seed values stand next to the pooled ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maskdpo.server.judge.answer_metrics import answer_terms as shared_terms
from maskdpo.server.judge.answer_metrics import value_of
from maskdpo.server.judge.bootstrap import (
    FloatArray,
    PairedComparison,
    bootstrap_intervals,
    paired_bootstrap,
)
from maskdpo.server.judge.metrics import choose_k
from maskdpo.server.judge.records import ResponseFacts, from_judgment
from maskdpo.server.judge.types import Judgment
from maskdpo.toyworld.world import ATTRIBUTES, Person
from maskdpo.trainer.labels import LabelCounts

METHODS = ("base", "dpo", "maskdpo")
LABELS = {"base": "base", "dpo": "DPO", "maskdpo": "Mask-DPO"}
SHOWN = (
    ("anah_score", "ANAH", True),
    ("anah_score_released", "ANAH (all sent.)", True),
    ("correct_per_answer", "correct / ans", False),
    ("incorrect_per_answer", "incorrect / ans", False),
    ("nofact_per_answer", "fact-free / ans", False),
    ("correct_facts_per_answer", "correct facts / ans", False),
    ("incorrect_facts_per_answer", "wrong facts / ans", False),
    ("mean_length", "length (chars)", False),
    ("factscore", "FActScore (γ)", True),
    ("f1_at_k", "F1@K", True),
    ("respond_ratio", "answers with a fact", True),
)
BY_ATTRIBUTE = "correct_facts:"
"""Prefix of the per-attribute metrics: ``correct_facts:<attribute>`` = supported claims of it per answer."""
Records = dict[str, dict[str, dict[int, list["EvalRecord"]]]]
"""group -> method -> seed -> one record per person (same people, same order, in every cell)."""


@dataclass(frozen=True)
class EvalRecord:
    """One greedy answer about one person, judged."""

    name: str
    bucket: str
    proximity: str
    answer: str
    labels: tuple[str, ...]
    counts: LabelCounts
    """Sentence labels (ANAH)."""
    facts: ResponseFacts
    """Atomic facts (claims) the kb judge checked: FActScore and facts per answer."""
    by_attribute: Mapping[str, int] = field(default_factory=dict)
    """Supported claims per world attribute."""

    @classmethod
    def of(
        cls, person: Person, answer: str, judgment: Judgment, by_attribute: Mapping[str, int] | None = None
    ) -> EvalRecord:
        buckets = {"bucket": person.bucket, "proximity": person.proximity or "-"}
        return cls(
            person.name,
            person.bucket,
            person.proximity or "-",
            answer,
            tuple(s.label.value for s in judgment.sentences),
            judgment.counts,
            from_judgment(judgment, topic=person.name, buckets=buckets, unit="fact"),
            dict(by_attribute or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bucket": self.bucket,
            "proximity": self.proximity,
            "answer": self.answer,
            "labels": list(self.labels),
        }


def answer_terms(
    records: Sequence[EvalRecord], gamma: float, k: float | None = None
) -> dict[str, tuple[FloatArray, FloatArray]]:
    """Per-answer numerators / denominators of every reported metric: the service's comparison metrics
    (:mod:`maskdpo.server.judge.answer_metrics`; F1@K with ``k``) plus correct facts per answer of each world
    attribute."""
    terms = shared_terms([r.facts for r in records], [r.answer for r in records], gamma=gamma, k=k)
    ones = np.ones(len(records))
    for attribute in ATTRIBUTES:
        counts = [r.by_attribute.get(attribute, 0) for r in records]
        terms[BY_ATTRIBUTE + attribute] = (np.array(counts, dtype=float), ones)
    return terms


def pooled_terms(
    per_seed: Mapping[int, Sequence[EvalRecord]],
    gamma: float,
    keep: Sequence[bool] | None = None,
    k: float | None = None,
) -> dict[str, tuple[FloatArray, FloatArray]]:
    """Per-person sums over seeds (optionally only the people where ``keep`` is true)."""
    pooled: dict[str, tuple[FloatArray, FloatArray]] = {}
    for records in per_seed.values():
        for name, (num, den) in answer_terms(records, gamma, k).items():
            if name in pooled:
                pooled[name] = (pooled[name][0] + num, pooled[name][1] + den)
            else:
                pooled[name] = (num.copy(), den.copy())
    if keep is not None:
        mask = np.asarray(keep, dtype=bool)
        pooled = {k: (n[mask], d[mask]) for k, (n, d) in pooled.items()}
    return pooled


def summarise(terms: Mapping[str, tuple[FloatArray, FloatArray]], resamples: int) -> dict[str, Any]:
    intervals = bootstrap_intervals(terms, resamples=resamples, seed=0) if resamples else {}
    out: dict[str, Any] = {}
    for name in terms:
        ci = intervals.get(name)
        out[name] = {
            "value": value_of(terms, name),
            "low": ci.low if ci else None,
            "high": ci.high if ci else None,
        }
    return out


def subgroups(records: Sequence[EvalRecord]) -> dict[str, list[bool]]:
    out = {"all": [True] * len(records)}
    for key in ("near", "far", "frequent", "medium", "rare"):
        mask = [key in (r.proximity, r.bucket) for r in records]
        if any(mask):
            out[key] = mask
    return out


def analyse(records: Records, gamma: float, resamples: int) -> dict[str, Any]:
    """Pooled metrics with CIs per group / subgroup / method, per-seed values, and paired comparisons."""
    result: dict[str, Any] = {}
    for group, by_method in records.items():
        first = next(iter(by_method["base"].values()))
        k, _ = choose_k([r.facts for r in first])  # F1@K: K = the base model's median facts per answer
        g: dict[str, Any] = {"people": len(first), "f1_k": k, "subgroups": {}, "per_seed": {}, "paired": {}}
        for sub, keep in subgroups(first).items():
            g["subgroups"][sub] = {
                m: summarise(
                    pooled_terms(by_method[m], gamma, keep, k), resamples if sub == "all" else resamples // 4
                )
                for m in METHODS
            }
        for m in METHODS:
            g["per_seed"][m] = {
                seed: {k: value_of(terms, k) for k in terms}
                for seed, recs in by_method[m].items()
                for terms in (answer_terms(recs, gamma, k),)
            }
        for a, b in (("maskdpo", "dpo"), ("dpo", "base"), ("maskdpo", "base")):
            comparisons = paired_bootstrap(
                pooled_terms(by_method[a], gamma, k=k), pooled_terms(by_method[b], gamma, k=k), resamples=resamples
            )
            g["paired"][f"{a}-{b}"] = {k: _comparison(v) for k, v in comparisons.items()}
        result[group] = g
    return result


def _comparison(c: PairedComparison) -> dict[str, float | None]:
    return {"delta": c.delta, "low": c.low, "high": c.high, "p": c.p_value}


def honest_win(paired: Mapping[str, Mapping[str, float | None]]) -> tuple[bool, list[str]]:
    """A higher ANAH score counts only if it is not bought by saying less (see the report's rules).

    FActScore is reported next to it but is not a criterion: its length penalty also punishes dropping a
    WRONG sentence (2 of 3 correct beats 2 of 2 at gamma 5), which is what alignment should do.
    """
    reasons = []

    def bound(metric: str, side: str) -> float:
        value = paired[metric][side]
        return float("nan") if value is None else float(value)

    if not bound("anah_score", "low") > 0:
        reasons.append("the ANAH gain's 95 % CI includes 0 (or it is a loss)")
    if bound("correct_facts_per_answer", "high") < 0:
        reasons.append("significantly fewer correct facts per answer (dropping facts)")
    if bound("nofact_per_answer", "low") > 0:
        reasons.append("significantly more fact-free sentences per answer (padding)")
    return not reasons, reasons


def verdict(analysis: Mapping[str, Any], split: str) -> dict[str, Any]:
    g = analysis[split]
    anah = {m: g["subgroups"]["all"][m]["anah_score"]["value"] for m in METHODS}
    out: dict[str, Any] = {"split": split, "anah": anah}
    out["ordering_point_estimates"] = bool(anah["maskdpo"] > anah["dpo"] > anah["base"])
    for pair in ("maskdpo-dpo", "dpo-base", "maskdpo-base"):
        won, reasons = honest_win(g["paired"][pair])
        out[pair] = {"honest_win": won, "why_not": reasons}
    out["claim_holds"] = all(out[pair]["honest_win"] for pair in ("maskdpo-dpo", "dpo-base", "maskdpo-base"))
    out["target"] = target(g["paired"])
    return out


TARGET = {
    "maskdpo_above_dpo": "Mask-DPO above DPO on ANAH (paired 95 % CI above 0)",
    "dpo_above_base": "DPO above base on ANAH (paired 95 % CI above 0)",
    "maskdpo_keeps_facts": "Mask-DPO's correct facts per answer not significantly below base",
}
"""The target of the levers experiment, part by part (what each part means, in words)."""


def target(paired: Mapping[str, Mapping[str, Mapping[str, float | None]]]) -> dict[str, bool]:
    """Mask-DPO > DPO > base on ANAH with paired intervals excluding 0, without Mask-DPO losing correct facts."""

    def low(pair: str, metric: str) -> float:
        value = paired[pair][metric]["low"]
        return float("nan") if value is None else float(value)

    high = paired["maskdpo-base"]["correct_facts_per_answer"]["high"]
    parts = {
        "maskdpo_above_dpo": low("maskdpo-dpo", "anah_score") > 0,
        "dpo_above_base": low("dpo-base", "anah_score") > 0,
        "maskdpo_keeps_facts": high is not None and high >= 0,
    }
    return {**parts, "met": all(parts.values())}


def build_summary(
    config: dict[str, Any],
    records: Records,
    seeds_info: Mapping[int, Any],
    timing: Mapping[str, Any],
    n_prompts: int,
) -> dict[str, Any]:
    """Everything the report shows: the settings, the analysis, the verdict and the seeds' own figures."""
    analysis = analyse(records, config["gamma"], config["resamples"])
    return {
        "config": config,
        "timing": dict(timing),
        "alignment_prompts": n_prompts,
        "verdict": verdict(analysis, config["split"]),
        "analysis": analysis,
        "seeds": {str(k): v for k, v in seeds_info.items()},
    }
