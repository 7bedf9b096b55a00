"""Judge accuracy against human labels: the metrics on constructed data, the set loaders, the command."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from maskdpo.client import cli as client_cli
from maskdpo.server.judge import registry
from maskdpo.server.judge.agreement import measure, text_verdict
from maskdpo.server.judge.judge_eval import evaluate, format_run, main
from maskdpo.server.judge.labelled_sets import NoPassages, load_set, split_of
from maskdpo.server.judge.types import JudgeIdentity, JudgeRequest, Judgment, SentenceVerdict
from maskdpo.trainer.labels import LabeledSentence, SentenceLabel
from maskdpo.trainer.sentences import split_sentences

OK, CON, UNV, NOF = SentenceLabel.OK, SentenceLabel.CONTRADICTORY, SentenceLabel.UNVERIFIABLE, SentenceLabel.NOFACT


def test_balanced_accuracy_recalls_and_agreement_on_constructed_verdicts() -> None:
    gold = ["supported"] * 4 + ["not_supported"] * 2 + ["partially_supported"]
    verdicts = [OK, OK, OK, UNV, CON, OK, OK]
    a = measure(gold, verdicts, resamples=0)
    assert (a.supported_ok, a.supported, a.not_supported_flagged, a.not_supported) == (3, 4, 1, 2)
    assert a.supported_recall == 0.75 and a.not_supported_recall == 0.5
    assert a.balanced_accuracy == pytest.approx(0.625)
    assert a.agreement == pytest.approx(4 / 6)
    assert a.exact is None, "gold labels of a claims set are not the judge's labels"
    assert a.intervals == {}
    assert a.verdicts_of("supported") == {OK: 3, UNV: 1}
    assert a.verdicts_of("partially_supported") == {OK: 1}, "partial claims are kept apart"


def test_a_judge_that_flags_everything_scores_one_half_whatever_the_class_sizes() -> None:
    for n_supported, n_not in ((10, 90), (90, 10)):
        gold = ["supported"] * n_supported + ["not_supported"] * n_not
        a = measure(gold, [CON] * len(gold), resamples=0)
        assert a.balanced_accuracy == 0.5
        assert a.agreement == n_not / len(gold)


def test_exact_agreement_and_confusion_where_gold_labels_are_the_judges_own() -> None:
    gold = ["ok", "ok", "contradictory", "unverifiable", "nofact"]
    verdicts = [OK, UNV, CON, CON, NOF]
    a = measure(gold, verdicts, resamples=0)
    assert (a.exact_hits, a.exact_total) == (3, 5)
    assert (a.supported, a.not_supported) == (2, 2), "nofact is outside the binary task"
    assert a.not_supported_flagged == 2 and a.supported_ok == 1
    assert a.confusion[("unverifiable", CON)] == 1


def test_bootstrap_interval_brackets_the_estimate_narrows_with_data_and_is_seeded() -> None:
    gold = ["supported"] * 6 + ["not_supported"] * 4
    verdicts = [OK, OK, OK, OK, UNV, CON, CON, CON, CON, OK]
    small = measure(gold, verdicts, resamples=2000, seed=1)
    large = measure(gold * 20, verdicts * 20, resamples=2000, seed=1)
    for run in (small, large):
        interval = run.intervals["balanced_accuracy"]
        assert run.balanced_accuracy is not None
        assert 0.0 <= interval.low <= run.balanced_accuracy <= interval.high <= 1.0
        assert interval.resamples == 2000 and interval.level == 0.95
    width = {id(r): r.intervals["balanced_accuracy"].high - r.intervals["balanced_accuracy"].low
             for r in (small, large)}
    assert width[id(large)] < width[id(small)] / 2
    assert measure(gold, verdicts, resamples=500, seed=3).intervals == \
        measure(gold, verdicts, resamples=500, seed=3).intervals
    perfect = measure(gold, [OK] * 6 + [CON] * 4, resamples=500)
    assert (perfect.intervals["balanced_accuracy"].low, perfect.intervals["balanced_accuracy"].high) == (1.0, 1.0)


def test_text_verdict_is_the_worst_fact_label() -> None:
    assert text_verdict([OK, NOF, UNV]) is UNV
    assert text_verdict([UNV, CON, OK]) is CON
    assert text_verdict([NOF, OK]) is OK
    assert text_verdict([NOF]) is NOF and text_verdict([]) is NOF


# --- sets ----------------------------------------------------------------------------------------------


def _write(path: Path, rows: Sequence[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _claims(tmp_path: Path) -> Path:
    evidence = [f"Sentence {i} says the bridge is {i} metres long." for i in range(12)]
    return _write(tmp_path / "claims.jsonl", [
        {"claim": "The bridge is TRUE.", "evidence": evidence, "label": "supported", "meta": {"id": "c1"}},
        {"claim": "The bridge is TRUE. It is FALSE.", "evidence": evidence, "label": "not_supported",
         "meta": {"id": "c2"}},
        {"claim": "The bridge is FALSE.", "evidence": evidence, "label": "not_supported", "meta": {"id": "c3"}},
        {"claim": "The bridge is TRUE.", "evidence": evidence, "label": "partially_supported",
         "meta": {"id": "c4"}},
    ])


def test_claims_set_gives_passages_of_n_sentences_and_a_stable_half(tmp_path: Path) -> None:
    kind, items = load_set(_claims(tmp_path), passage_sentences=5)
    assert kind == "claims" and [i.id for i in items] == ["c1", "c2", "c3", "c4"]
    assert [len(p.text.split(". ")) for p in items[0].passages] == [5, 5, 2]
    assert items[0].passages[0].text.startswith("Sentence 0 says") and "Sentence 4 says" in items[0].passages[0].text
    assert [i.gold_class for i in items] == ["supported", "not_supported", "not_supported", "partial"]
    assert {split_of(f"id{n}") for n in range(40)} == {"a", "b"}
    assert [i.split for i in items] == [split_of(i.id) for i in items]


def test_factscore_file_without_passages_says_why_it_cannot_be_judged(tmp_path: Path) -> None:
    row = {"topic": "Ada Lind", "annotations": [{"text": "Ada Lind is a chemist.",
                                                "human-atomic-facts": [{"text": "Ada Lind is a chemist.",
                                                                        "label": "S"}]}]}
    with pytest.raises(NoPassages, match=r"no 'passages'.*2023 Wikipedia dump"):
        load_set(_write(tmp_path / "fs.jsonl", [row]))
    kind, items = load_set(_write(tmp_path / "fs2.jsonl", [{**row, "passages": ["Ada Lind is a chemist."]}]))
    assert kind == "facts" and [(i.text, i.gold, i.topic) for i in items] == [
        ("Ada Lind is a chemist.", "S", "Ada Lind")]


def test_bad_records_name_the_line_and_the_field(tmp_path: Path) -> None:
    good = {"id": "a", "title": "t", "passage": "p", "sentence": "s", "label": "ok"}
    with pytest.raises(ValueError, match=r"bad.jsonl:2: unknown sentence label 'maybe'"):
        load_set(_write(tmp_path / "bad.jsonl", [good, {**good, "label": "maybe"}]))
    with pytest.raises(ValueError, match=r"bad.jsonl:2: field 'title'"):
        load_set(_write(tmp_path / "bad.jsonl", [good, {**good, "title": ""}]))
    with pytest.raises(ValueError, match="unknown labelled-set format"):
        load_set(_write(tmp_path / "bad.jsonl", [{"x": 1}]))


# --- the command ---------------------------------------------------------------------------------------


class WordJudge:
    """A test backend: each sentence is ok when it says TRUE, contradictory when it says FALSE."""

    name = "words"

    def identity(self) -> JudgeIdentity:
        return JudgeIdentity(backend=self.name, model="words")

    def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[Judgment]:
        out = []
        for r in requests:
            verdicts = []
            for span in split_sentences(r.response):
                text = span.text_of(r.response)
                label = OK if "TRUE" in text else CON if "FALSE" in text else NOF
                verdicts.append(SentenceVerdict(LabeledSentence(span, label, text)))
            out.append(Judgment(r.response, tuple(verdicts), self.identity()))
        return out


@pytest.fixture
def words_judge() -> Iterator[None]:
    registry.register("words", WordJudge)
    yield
    registry._REGISTERED.pop("words", None)


def test_evaluate_takes_the_worst_sentence_of_each_text(tmp_path: Path, words_judge: None) -> None:
    kind, items = load_set(_claims(tmp_path))
    run = evaluate(WordJudge(), items, kind, batch=3, resamples=0)
    assert run.verdicts == [OK, CON, CON, OK]
    assert run.agreement.balanced_accuracy == 1.0
    assert run.sentences == 5
    text = format_run(run, WordJudge())
    assert "balanced accuracy (supported vs not supported): 1.000" in text
    assert "partially supported (apart, 1 texts): judged ok 100.0%" in text


def test_command_prints_json_figures(tmp_path: Path, words_judge: None,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(_claims(tmp_path)), "--judge", "words", "--json", "--resamples", "200"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["balanced_accuracy"] == 1.0 and figures["texts"] == 4
    assert figures["confusion"]["not_supported/contradictory"] == 2
    assert figures["intervals"]["balanced_accuracy"] == [1.0, 1.0]


def test_command_refuses_what_it_cannot_measure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert client_cli.main(["judge-eval", str(_claims(tmp_path)), "--judge", "kb"]) == 2, \
        "the maskdpo command finds judge-eval lazily"
    assert "reads structured facts" in capsys.readouterr().err
    row = {"topic": "Ada", "annotations": [{"text": "x", "human-atomic-facts": [{"text": "x", "label": "S"}]}]}
    assert main([str(_write(tmp_path / "fs.jsonl", [row]))]) == 2
    assert "no 'passages'" in capsys.readouterr().err
