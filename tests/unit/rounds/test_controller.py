"""Whole rounds in-process on the tiny model: real trainer, real kb judge, transformers generator.

Covers: every phase in order with artifacts; forced promote (new served version) and forced no-promote;
request_id idempotency; a second round on a busy model (Conflict); cancel during TRAIN; a crash in the
middle of TRAIN resumed by a new controller, matching an uninterrupted run; iterative rounds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from maskdpo.server.errors import Conflict
from maskdpo.server.rounds import phase_train
from maskdpo.server.rounds.controller import ControllerSettings, RoundController
from maskdpo.server.rounds.workers import LocalGenerator, LocalJudges, run_trainer
from maskdpo.server.store.rounds import CANCELLED, SUCCEEDED, round_id
from maskdpo.trainer.run import TrainOptions
from maskdpo.v1 import alignment_pb2, memory_plan_pb2
from tests.unit.rounds.conftest import tiny_config

P = alignment_pb2.RoundPhase
ALL = [P.SAMPLE, P.JUDGE, P.PAIR, P.TRAIN, P.EVALUATE, P.PROMOTE]


def controller(data: Path, model: Path, generator: LocalGenerator | None = None) -> RoundController:
    return RoundController(
        ControllerSettings(data, save_steps=1), {"tiny": generator or LocalGenerator(model)}, LocalJudges()
    )


def round_of(op: Any) -> str:
    meta = alignment_pb2.AlignmentRoundMetadata()
    op.metadata.Unpack(meta)
    return meta.round


async def run(
    c: RoundController, cfg: alignment_pb2.RoundConfig, request_id: str = ""
) -> alignment_pb2.AlignmentRound:
    op = await c.create(cfg, request_id)
    return await c.wait(round_of(op), timeout=300)


def test_round_runs_every_phase_and_promotes(tmp_path: Path, tiny_model: Path) -> None:
    async def main() -> None:
        gen = LocalGenerator(tiny_model)
        c = controller(tmp_path, tiny_model, gen)
        r = await run(c, tiny_config(promote=True))
        assert r.state == SUCCEEDED, r.reason
        assert list(r.done_phases) == ALL and r.promoted and r.promoted_weight_version == 2
        assert gen.version.version == 2 and gen.deploys == [
            str(tmp_path / "rounds" / round_id(r.name) / "TRAIN" / "final")
        ]
        assert r.before.answers == 6 and r.after.HasField("anah_score") and r.judge.backend == "kb"
        served = c.checkpoints.current("tiny")  # recorded where DeployCheckpoint records (one deploy path)
        assert served is not None and (served.weight_version, served.round) == (2, r.name)
        assert served.path == tmp_path.resolve() / "rounds" / round_id(r.name) / "TRAIN" / "final"
        events = c.store.events(round_id(r.name), 0)
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        started = [e.phase for e in events if e.kind == "PHASE_STARTED"]
        assert started == ALL and events[-1].kind == "ROUND_ENDED" and events[-1].state == SUCCEEDED
        root = tmp_path / "rounds" / round_id(r.name)
        for name in (
            "SAMPLE/samples.jsonl",
            "JUDGE/judged.jsonl",
            "PAIR/pairs.jsonl",
            "TRAIN/final/config.json",
            "EVALUATE/evaluation.json",
            "PROMOTE/decision.json",
            "report.md",
            "report.png",
        ):
            assert (root / name).is_file(), name
        assert not list(root.glob(".*.work")), "work folders are renamed into place"
        assert "promoted" in Path(r.report_path).read_text()
        op = c.ops.get(r.operation)
        done = alignment_pb2.AlignmentRound()
        assert op.done and op.response.Unpack(done) and done.promoted
        await c.close()

    asyncio.run(main())


def test_failing_rule_promotes_nothing_and_request_id_is_idempotent(tmp_path: Path, tiny_model: Path) -> None:
    async def main() -> None:
        gen = LocalGenerator(tiny_model)
        c = controller(tmp_path, tiny_model, gen)
        first = await c.create(tiny_config(promote=False), "same-id")
        again = await c.create(tiny_config(promote=False), "same-id")
        assert again.name == first.name and round_of(again) == round_of(first)
        with pytest.raises(Conflict):  # a different request on the busy model
            await c.create(tiny_config(promote=False), "other-id")
        r = await c.wait(round_of(first), timeout=300)
        assert r.state == SUCCEEDED and not r.promoted and "not promoted" in r.reason
        assert gen.version.version == 1 and gen.deploys == []
        assert len(c.store.page(0, "", 0, 10)[0]) == 1
        await c.close()

    asyncio.run(main())


def test_cancel_during_train_stops_within_a_step(tmp_path: Path, tiny_model: Path) -> None:
    async def main() -> None:
        gen = LocalGenerator(tiny_model)
        c = controller(tmp_path, tiny_model, gen)
        name = round_of(await c.create(tiny_config(promote=True, epochs=40)))
        rid = round_id(name)
        while not any(e.kind == "PROGRESS" and e.phase == P.TRAIN for e in c.store.events(rid, 0)):
            await asyncio.sleep(0.05)
        seen = max(e.progress_done for e in c.store.events(rid, 0) if e.phase == P.TRAIN)
        await c.cancel(name)
        r = await c.wait(name, timeout=120)
        assert r.state == CANCELLED and not r.promoted and gen.deploys == [] and gen.version.version == 1
        stopped = max(e.progress_done for e in c.store.events(rid, 0) if e.phase == P.TRAIN)
        assert stopped <= seen + 2 < 40  # the step running at the cancel (+ one poll of latency)
        assert P.TRAIN not in r.done_phases and "cancelled during TRAIN" in r.reason
        assert c.ops.get(r.operation).error.code == 1  # CANCELLED
        await c.close()

    asyncio.run(main())


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing records it."""


def test_crash_in_train_resumes_from_checkpoint_like_an_uninterrupted_run(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config(promote=True, epochs=3)

    async def reference() -> alignment_pb2.AlignmentRound:
        c = controller(tmp_path / "ref", tiny_model)
        r = await run(c, cfg)
        await c.close()
        return r

    async def crashing() -> str:
        async def dies_after_two_steps(options: Any, should_cancel: Any, on_event: Any, *a: Any) -> Any:
            polls = []

            def stop_after_two_steps() -> bool:  # the trainer asks after every optimizer step
                polls.append(1)
                return len(polls) >= 2

            await run_trainer(options, stop_after_two_steps, on_event)
            raise Crash()

        monkeypatch.setattr(phase_train, "run_trainer", dies_after_two_steps)
        c = controller(tmp_path / "crash", tiny_model)
        name = round_of(await c.create(cfg))
        with pytest.raises(Crash):
            await c.wait(name, timeout=300)
        monkeypatch.undo()
        return name

    async def resume(name: str) -> alignment_pb2.AlignmentRound:
        c = controller(tmp_path / "crash", tiny_model)  # a new controller on the same store
        assert await c.start() == [name]
        r = await c.wait(name, timeout=300)
        await c.close()
        return r

    ref = asyncio.run(reference())
    name = asyncio.run(crashing())
    work = tmp_path / "crash" / "rounds" / round_id(name) / ".TRAIN.work" / "checkpoints"
    assert [p.name for p in work.iterdir() if p.name.startswith("checkpoint")] == ["checkpoint-1"]
    r = asyncio.run(resume(name))
    assert r.state == SUCCEEDED and r.promoted, r.reason
    events = RoundController(ControllerSettings(tmp_path / "crash"), judges=LocalJudges()).store.events(round_id(name), 0)
    assert any("resumed from checkpoint step 1" in e.message for e in events)
    assert any("TRAIN started (attempt 2" in e.message for e in events)
    assert [e.phase for e in events if e.kind == "PHASE_STARTED"].count(P.SAMPLE) == 1  # only TRAIN redone
    weights = [
        load_file(d / "rounds" / round_id(x.name) / "TRAIN" / "final" / "model.safetensors")
        for d, x in ((tmp_path / "ref", ref), (tmp_path / "crash", r))
    ]
    assert all((weights[0][k] - weights[1][k]).abs().max() < 1e-6 for k in weights[0])
    assert r.after == alignment_pb2.Evaluation(**{**_fields(ref.after), "weights": r.after.weights})


def _fields(e: alignment_pb2.Evaluation) -> dict[str, Any]:
    return {f.name: v for f, v in e.ListFields()}


def test_iterative_round_starts_from_the_previous_candidate(tmp_path: Path, tiny_model: Path) -> None:
    async def main() -> None:
        gen = LocalGenerator(tiny_model)
        c = controller(tmp_path, tiny_model, gen)
        first = await run(c, tiny_config(promote=False))
        cfg = tiny_config(promote=True, seed=2)
        cfg.start_from_round = first.name
        second = await run(c, cfg)
        assert second.state == SUCCEEDED, second.reason
        sampled = c.store.phase_summary(round_id(second.name), P.SAMPLE)
        assert sampled["policy"].endswith(f"{round_id(first.name)}/TRAIN/final")
        assert sampled["sampler"] == "transformers"  # the first candidate was not promoted, so not served
        assert second.before.weights == sampled["policy"]  # the reference / start policy is round 1's result
        assert gen.version.version == 2
        # the candidate is also judged against the chain's start: round 1's start, the served base model
        assert second.chain_start.weights == str(tiny_model) == first.before.weights
        assert second.chain_start.answers == second.after.answers > 0
        decision = second.decision
        assert decision.outcome == alignment_pb2.PromotionDecision.PROMOTED and decision.chain_round == first.name
        facts = {d.metric: d for d in decision.versus_chain_start}["correct_facts_per_answer"]
        assert facts.baseline == second.chain_start.correct_facts_per_answer
        assert facts.candidate == second.after.correct_facts_per_answer
        assert any("against the chain's start" in f for f in decision.findings)
        assert first.decision.outcome == alignment_pb2.PromotionDecision.REFUSED
        assert first.chain_start == first.before  # not chained: its own start
        report = Path(second.report_path).read_text()
        assert "## Promotion decision" in report and "Candidate against the chain's start:" in report
        assert "| chain start | before | after |" in report
        await c.close()

    asyncio.run(main())


def test_train_runs_the_rounds_recipe(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recipe fields TRAIN honours reach the trainer: bf16, a precomputed reference, gradient
    accumulation (pairs per optimiser step stay batch_size)."""
    cfg = tiny_config()
    cfg.training.precision = memory_plan_pb2.PRECISION_BF16_MIXED
    cfg.training.precompute_ref, cfg.training.batch_size, cfg.training.grad_accum = True, 4, 2
    seen: list[TrainOptions] = []

    async def records(options: TrainOptions, *_: Any) -> Any:
        seen.append(options)
        raise Crash()

    async def main() -> int:
        monkeypatch.setattr(phase_train, "run_trainer", records)
        c = controller(tmp_path, tiny_model)
        name = round_of(await c.create(cfg))
        with pytest.raises(Crash):
            await c.wait(name, timeout=300)
        return int(c.store.phase_summary(round_id(name), P.PAIR)["pairs"])

    pairs = asyncio.run(main())
    [options] = seen
    per_step = min(4, pairs)  # the pairs of one optimiser step, over 2 micro-batches
    assert (options.bf16, options.precompute_ref, options.grad_accum) == (True, True, 2)
    assert options.batch_size == -(-per_step // 2)
