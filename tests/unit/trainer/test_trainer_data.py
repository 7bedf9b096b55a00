"""Data import: FActScore human labels -> pairs with aligned masks; Mask-DPO records; clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from maskdpo.trainer.data import DataError, factscore_label, load_factscore, load_training_data, write_pairs
from maskdpo.trainer.joint import completion_mask
from maskdpo.trainer.labels import SentenceLabel
from maskdpo.trainer.pairs import PairConfig, PairRule
from maskdpo.trainer.token_masks import MaskConfig, Role
from tests.helpers import shared_data_dir

FACTSCORE = shared_data_dir() / "factscore-labeled"


def test_factscore_sentence_labels() -> None:
    assert factscore_label([{"label": "S"}, {"label": "IR"}]) is SentenceLabel.OK
    assert factscore_label([{"label": "S"}, {"label": "NS"}]) is SentenceLabel.CONTRADICTORY
    assert factscore_label([{"label": "IR"}]) is SentenceLabel.NOFACT
    assert factscore_label(None) is SentenceLabel.NOFACT


def test_factscore_import_gives_pairs_with_aligned_masks(tiny_tokenizer: Any, tmp_path: Path) -> None:
    if not FACTSCORE.exists():
        pytest.skip(f"FActScore labelled data not found at {FACTSCORE}")
    pairs, stats = load_factscore(FACTSCORE)
    print("FActScore import:", stats.summary())
    assert stats.prompts == 183
    assert stats.pairs == len(pairs) > 100
    assert stats.pairs + sum(stats.dropped.values()) == stats.prompts  # every prompt accounted for
    assert stats.skipped_samples["abstained"] == 27  # 1 InstructGPT + 26 ChatGPT abstentions
    for pair in pairs:
        assert pair.chosen_score is not None and pair.rejected_score is not None
        assert pair.chosen_score > pair.rejected_score
    # sentences sit where the text is, and the kept tokens of each kept sentence decode back to it
    for pair in pairs[:10]:
        for role, text, sents in (
            (Role.CHOSEN, pair.chosen, pair.chosen_sentences),
            (Role.REJECTED, pair.rejected, pair.rejected_sentences),
        ):
            joint, result = completion_mask(tiny_tokenizer, pair.prompt, text, sents, role, MaskConfig())
            ids = joint.ids[joint.prompt_len :]
            for i, s in enumerate(sents):
                assert text[s.span.start : s.span.end] == s.text
                kept = [t for t, o, m in zip(ids, result.owner, result.mask, strict=True) if o == i and m]
                if kept:
                    assert tiny_tokenizer.decode(kept).strip() == s.text
    # export -> re-import round trip keeps every pair
    write_pairs(tmp_path / "pairs.jsonl", pairs)
    again, again_stats = load_training_data(tmp_path / "pairs.jsonl")
    assert [p.chosen for p in again] == [p.chosen for p in pairs] and again_stats.pairs == len(pairs)


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_maskdpo_records_import_and_errors(tmp_path: Path) -> None:
    good = {
        "prompt": [{"role": "user", "content": "Who was Ada Lovelace?"}],
        "chosen": [{"role": "assistant", "content": "Ada Lovelace was a mathematician. Hello there."}],
        "rejected": [{"role": "assistant", "content": "Ada Lovelace was a painter. She was born in 東京."}],
        "chosen_item": {
            "sents": ["Ada Lovelace was a mathematician.", "Hello there."],
            "type": ["no_hallucination", "other"],
        },
        "rejected_item": {
            "sents": ["Ada Lovelace was a painter.", "She was born in 東京."],
            "type": ["hallucination", "hallucination"],
        },
    }
    pairs, stats = load_training_data(_write(tmp_path / "ok.jsonl", [good]))
    assert stats.pairs == 1
    labels = [s.label for s in pairs[0].chosen_sentences]
    assert labels == [SentenceLabel.OK, SentenceLabel.NOFACT]
    assert pairs[0].rejected_sentences[1].text == "She was born in 東京."

    missing = dict(good)
    del missing["rejected_item"]
    with pytest.raises(DataError, match=r"bad\.jsonl:2: field 'rejected_item': missing"):
        load_training_data(_write(tmp_path / "bad.jsonl", [good, missing]), "maskdpo")
    wrong = json.loads(json.dumps(good))
    wrong["chosen_item"]["sents"][1] = "Not in the text."
    with pytest.raises(DataError, match=r"wrong\.jsonl:1: field 'chosen_item\.sents\[1\]'"):
        load_training_data(_write(tmp_path / "wrong.jsonl", [wrong]), "maskdpo")
    (tmp_path / "broken.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match=r"broken\.jsonl:1"):
        load_training_data(tmp_path / "broken.jsonl", "maskdpo")


def test_judged_samples_carry_the_judges_fact_counts_to_the_pair_rule(tmp_path: Path) -> None:
    def row(response: str, labels: list[str], correct: int, incorrect: int) -> dict[str, Any]:
        spans = [{"start": 4 * i, "end": 4 * i + 3, "label": lab} for i, lab in enumerate(labels)]
        return {
            "prompt": "Q",
            "response": response,
            "sentences": spans,
            "facts": {"correct": correct, "incorrect": incorrect},
        }

    rows = [
        row("Aa. ", ["ok"], 1, 0),  # precision 1.0, one fact
        row("Bb. Cc.", ["ok", "ok"], 4, 0),  # precision 1.0, four facts in two sentences
        row("Dd. Ee.", ["ok", "contradictory"], 2, 1),
    ]
    path = _write(tmp_path / "j.jsonl", rows)
    [pair], _ = load_training_data(path, "judged", PairConfig(rule=PairRule.NET_CORRECT))
    assert pair.chosen == "Bb. Cc." and pair.rejected == "Dd. Ee."
    # the rejected answer's one ok sentence states two facts ("X is a lawyer at Y."), and its wrong one
    # states one more true fact: by sentences "Aa." states as many true things, by facts it states fewer
    rows = [
        row("Aa.", ["ok"], 1, 0),
        row("Bb. Cc. Dd. Ee.", ["ok", "ok", "ok", "contradictory"], 3, 1),
        row("Ff. Gg.", ["ok", "contradictory"], 3, 1),
    ]
    rule = PairConfig(rule=PairRule.NO_FEWER_CORRECT)
    [pair], _ = load_training_data(_write(path, rows), "judged", rule)
    assert pair.chosen == "Bb. Cc. Dd. Ee." and pair.rejected == "Ff. Gg."
    for r in rows:
        del r["facts"]
    [pair], _ = load_training_data(_write(path, rows), "judged", rule)
    assert pair.chosen == "Aa."
    rows[0]["facts"] = {"correct": "many"}
    with pytest.raises(DataError, match=r"j\.jsonl:1: field 'facts'"):
        load_training_data(_write(path, rows), "judged")


def test_judged_samples_bad_label_names_the_record(tmp_path: Path) -> None:
    rows = [
        {"prompt": "Q", "response": "A b.", "sentences": [{"start": 0, "end": 4, "label": "ok"}]},
        {"prompt": "Q", "response": "A c.", "sentences": [{"start": 0, "end": 4, "label": "wrongish"}]},
    ]
    with pytest.raises(DataError, match=r"j\.jsonl:2: field 'sentences': unknown sentence label 'wrongish'"):
        load_training_data(_write(tmp_path / "j.jsonl", rows), "judged")
