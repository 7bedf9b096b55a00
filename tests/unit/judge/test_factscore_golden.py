"""Golden test: the metric code reproduces FActScore's human-label scores (shared data, skipped if absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from maskdpo.server.judge.factscore_data import read_factscore_file, record_from_row
from maskdpo.server.judge.metrics import compute_metrics

# (file, FActScore without penalty, respond ratio, responses, scored) -- published / recomputed figures.
GOLDEN = [
    ("InstructGPT.jsonl", 42.8, 99.5, 183, 181),
    ("ChatGPT.jsonl", 58.3, 85.8, 183, 157),
]


@pytest.mark.parametrize(("name", "score", "respond", "rows", "scored"), GOLDEN)
def test_human_label_factscore_and_respond_ratio(
    factscore_dir: Path, name: str, score: float, respond: float, rows: int, scored: int
) -> None:
    records = read_factscore_file(factscore_dir / name)
    metrics = compute_metrics(records, gamma=0, resamples=0)
    assert metrics.n_responses == rows
    assert metrics.n_scored == scored
    assert metrics.factscore is not None and metrics.respond_ratio is not None
    assert abs(100 * metrics.factscore - score) <= 0.1
    assert metrics.factscore_no_penalty == metrics.factscore  # gamma = 0: no penalty, both reported
    assert round(100 * metrics.respond_ratio, 1) == respond
    assert metrics.gamma == 0.0


def test_instructgpt_unlabelled_answer_is_responding_but_not_scored(factscore_dir: Path) -> None:
    metrics = compute_metrics(read_factscore_file(factscore_dir / "InstructGPT.jsonl"), resamples=0)
    # One answer (about a different Taylor) was left unlabelled by the annotators: it is reported, not dropped.
    assert metrics.n_unjudged == 1
    assert metrics.n_refused == 1
    assert metrics.n_responding == 182


def test_chatgpt_beats_instructgpt_with_a_paired_bootstrap(factscore_dir: Path) -> None:
    from maskdpo.server.judge.metrics import compare_runs

    chatgpt = read_factscore_file(factscore_dir / "ChatGPT.jsonl")
    by_topic = {r.topic: r for r in read_factscore_file(factscore_dir / "InstructGPT.jsonl")}
    instruct = [by_topic[r.topic] for r in chatgpt]  # pair the two answers to the same prompt
    result = compare_runs(chatgpt, instruct, gamma=0, resamples=1000, seed=1)["factscore"]
    assert result.delta is not None and result.low is not None
    assert result.low > 0.05 and result.p_value is not None and result.p_value < 0.01


def test_row_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="fact label 'X'"):
        record_from_row({"topic": "t", "annotations": [{"human-atomic-facts": [{"label": "X"}]}]})
    with pytest.raises(ValueError, match="'cat'"):
        record_from_row({"topic": "t", "cat": "rare", "annotations": None})


def test_row_mapping_to_sentence_labels() -> None:
    row = {
        "topic": "A",
        "cat": ["rare", "Europe"],
        "annotations": [
            {"human-atomic-facts": [{"label": "S"}, {"label": "IR"}]},
            {"human-atomic-facts": [{"label": "S"}, {"label": "NS"}]},
            {"human-atomic-facts": [{"label": "IR"}]},
            {"human-atomic-facts": None},
        ],
    }
    record = record_from_row(row)
    assert (record.supported, record.unsupported) == (2, 3)
    assert (record.counts.ok, record.counts.unverifiable, record.counts.nofact) == (1, 1, 2)
    assert record.buckets == {"rarity": "rare", "region": "Europe"}
    assert record.judged and not record.abstained
