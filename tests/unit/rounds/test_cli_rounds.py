"""The round CLI's progress output and table, and the toy-world config helper (no server needed)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from maskdpo.client import _cli_rounds, display
from maskdpo.client._rounds import toy_round_config
from maskdpo.v1 import alignment_pb2, common_pb2

State = alignment_pb2.AlignmentRound.State


class FakeClient:
    def __init__(self, events: list[alignment_pb2.RoundEvent], final: alignment_pb2.AlignmentRound) -> None:
        self.events, self.final = events, final
        self.after: list[int] = []

    def watch_round(self, name: str, *, after_sequence: int = 0) -> Iterator[alignment_pb2.RoundEvent]:
        self.after.append(after_sequence)
        return iter([e for e in self.events if e.sequence > after_sequence])

    def get_round(self, name: str) -> alignment_pb2.AlignmentRound:
        return self.final


def _event(seq: int, kind: str, phase: int, **kw: Any) -> alignment_pb2.RoundEvent:
    return alignment_pb2.RoundEvent(sequence=seq, kind=kind, phase=phase, **kw)


def test_follow_prints_a_progress_bar_and_phase_lines() -> None:
    events = [
        _event(1, "PHASE_STARTED", alignment_pb2.TRAIN, message="TRAIN started"),
        _event(2, "PROGRESS", alignment_pb2.TRAIN, progress_done=3, progress_total=12, message="steps"),
        _event(3, "METRICS", alignment_pb2.TRAIN, message="step 3"),
        _event(4, "ROUND_ENDED", alignment_pb2.TRAIN, message="CANCELLED: on request"),
    ]
    final = alignment_pb2.AlignmentRound(name="rounds/ab", state=State.CANCELLED)
    client, out = FakeClient(events, final), io.StringIO()
    assert display.follow(client, "rounds/ab", after=1, out=out) is final  # type: ignore[arg-type]
    text = out.getvalue()
    assert client.after == [1] and "TRAIN started" not in text
    assert "[######..................] 3/12" in text and "#4    TRAIN    ROUND_ENDED" in text
    assert "step 3" not in text  # metrics events are not printed


def test_table_and_toy_config() -> None:
    r = alignment_pb2.AlignmentRound(
        name="rounds/ab", state=State.SUCCEEDED, promoted=True, promoted_weight_version=3
    )
    r.before.anah_score, r.after.anah_score = 0.5, 0.625
    r.before.correct_facts_per_answer, r.after.correct_facts_per_answer = 2.5, 2.4
    r.decision.versus_chain_start.add(metric="correct_facts_per_answer", delta=-0.1).interval.CopyFrom(
        common_pb2.ConfidenceInterval(low=-0.3, high=0.1, level=0.95))
    undecided = alignment_pb2.AlignmentRound(name="rounds/cd", state=State.SUCCEEDED)
    undecided.decision.outcome = alignment_pb2.PromotionDecision.UNDECIDED
    out = io.StringIO()
    display.rounds_table([r, undecided], out)
    text = out.getvalue()
    assert "0.500" in text and "0.625" in text and "v3" in text and "undecided" in text
    assert "2.50    2.40" in text and "-0.10 [-0.30,+0.10]" in text
    config = toy_round_config("toy", prompts=5, steps=7, start_from_round="rounds/ab")
    assert config.model == "models/toy" and config.prompts.limit == 5 and config.training.max_steps == 7
    assert (
        config.prompts.dataset == "toyworld/alignment"
        and config.eval_prompts.dataset == "toyworld/validation"
    )
    assert config.start_from_round == "rounds/ab"


def _round_parser() -> Any:
    import argparse

    parser = argparse.ArgumentParser()
    _cli_rounds.add_parsers(parser.add_subparsers(dest="command"), lambda p: None)
    return parser


def test_round_create_lora_flag_asks_for_an_adapter() -> None:
    parser = _round_parser()
    plain = parser.parse_args(["round", "create"])
    lora = parser.parse_args(["round", "create", "--lora"])
    assert not _cli_rounds._config(plain, "", 0).training.lora
    assert _cli_rounds._config(lora, "", 0).training.lora


def test_create_flags_set_the_levers_and_the_rule() -> None:
    args = _round_parser().parse_args(["round", "create", "--nll-alpha", "0.5", "--mask-unit", "claim",
                                       "--pair-rule", "no_fewer_correct", "--metric", "f1_at_k",
                                       "--max-correct-drop", "0.05"])
    config = _cli_rounds._config(args, "", 0)
    assert config.training.nll_alpha == 0.5 and config.mask_unit == alignment_pb2.MASK_UNIT_CLAIM
    assert config.pairs.rule == alignment_pb2.PAIR_RULE_NO_FEWER_CORRECT
    assert config.promotion.metric == "f1_at_k" and config.promotion.max_correct_drop == 0.05
    assert config.eval_prompts.limit == 0  # the server's evaluation set size
    assert set(_cli_rounds.MASK_UNITS) == {"sentence", "claim"}
