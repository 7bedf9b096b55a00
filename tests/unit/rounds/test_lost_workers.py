"""A round that loses a worker (its node died, its process crashed) runs the phase again until its attempts
are spent; with ``gpu_sharing = "alternate"`` the engine sleeps exactly while the round trains.

In-process rounds on the tiny model; a lost worker is the Ray error a dead actor raises.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from ray.exceptions import ActorDiedError

from maskdpo.server.rounds import controller as controller_module
from maskdpo.server.rounds.controller import ControllerSettings, RoundController
from maskdpo.server.rounds.workers import LocalGenerator, LocalJudges, Workers
from maskdpo.server.store.rounds import FAILED, SUCCEEDED, round_id
from maskdpo.v1 import alignment_pb2
from tests.unit.rounds.conftest import tiny_config
from tests.unit.rounds.test_controller import round_of

P = alignment_pb2.RoundPhase


def _flaky_pair(monkeypatch: pytest.MonkeyPatch, failures: int) -> list[int]:
    """Make PAIR lose its worker ``failures`` times before it runs; returns the list of calls."""
    calls: list[int] = []
    real = dict(controller_module.ORDER)[P.PAIR]

    async def flaky(ctx: Any, work: Path) -> Any:
        calls.append(1)
        if len(calls) <= failures:
            raise ActorDiedError()
        return await real(ctx, work)

    order = tuple((phase, flaky if phase == P.PAIR else fn) for phase, fn in controller_module.ORDER)
    monkeypatch.setattr(controller_module, "ORDER", order)
    return calls


def _run(tmp_path: Path, model: Path, settings: ControllerSettings,
         generator: LocalGenerator | None = None) -> tuple[alignment_pb2.AlignmentRound, list[Any]]:
    async def main() -> tuple[alignment_pb2.AlignmentRound, list[Any]]:
        c = RoundController(settings, {"tiny": generator or LocalGenerator(model)}, LocalJudges())
        name = round_of(await c.create(tiny_config(promote=False)))
        r = await c.wait(name, timeout=300)
        events = c.store.events(round_id(name), 0)
        await c.close()
        return r, events

    return asyncio.run(main())


def test_a_lost_worker_runs_the_phase_again(tmp_path: Path, tiny_model: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _flaky_pair(monkeypatch, failures=1)
    r, events = _run(tmp_path, tiny_model, ControllerSettings(tmp_path, retry_pause_s=0))
    assert r.state == SUCCEEDED, r.reason
    assert len(calls) == 2
    lost = [e for e in events if "lost a worker during PAIR (ActorDiedError" in e.message]
    assert len(lost) == 1 and lost[0].phase == P.PAIR
    assert any("PAIR started (attempt 2" in e.message for e in events)
    assert [e.phase for e in events if e.kind == "PHASE_STARTED"].count(P.JUDGE) == 1  # earlier work kept


def test_losing_workers_on_every_attempt_ends_the_round_failed(tmp_path: Path, tiny_model: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _flaky_pair(monkeypatch, failures=99)
    r, events = _run(tmp_path, tiny_model, ControllerSettings(tmp_path, max_attempts=3, retry_pause_s=0))
    assert r.state == FAILED
    assert len(calls) == 3 and "PAIR: gave up after 3 attempts" in r.reason
    assert sum("lost a worker" in e.message for e in events) == 3


class SleepyGenerator(LocalGenerator):
    """Records when the engine was put to sleep and woken, relative to the round's TRAIN progress."""

    def __init__(self, model: Path) -> None:
        super().__init__(model)
        self.calls: list[str] = []
        self.asleep = False

    async def generate(self, prompt: Any, options: Any, weights: Any = None) -> Any:
        assert not self.asleep, "a sleeping engine must not be asked to generate"
        return await super().generate(prompt, options, weights)

    async def sleep(self) -> bool:
        self.calls.append("sleep")
        self.asleep = True
        return True

    async def wake_up(self) -> None:
        self.calls.append("wake_up")
        self.asleep = False


def test_alternate_gpu_sharing_sleeps_the_engine_exactly_during_train(tmp_path: Path, tiny_model: Path) -> None:
    generator = SleepyGenerator(tiny_model)
    settings = ControllerSettings(tmp_path, workers=Workers(alternate_gpu=True))
    r, events = _run(tmp_path, tiny_model, settings, generator)
    assert r.state == SUCCEEDED, r.reason
    assert generator.calls == ["sleep", "wake_up"] and not generator.asleep
    kinds = [(e.phase, e.message) for e in events if e.kind in ("LOG", "PROGRESS")]
    slept = kinds.index((P.TRAIN, "the engine sleeps while the trainer uses its GPU"))
    woke = kinds.index((P.TRAIN, "the engine is awake again"))
    trained = [i for i, (phase, message) in enumerate(kinds) if phase == P.TRAIN and message == "training steps"]
    assert trained and slept < min(trained) and max(trained) < woke


def test_separate_gpus_never_put_the_engine_to_sleep(tmp_path: Path, tiny_model: Path) -> None:
    generator = SleepyGenerator(tiny_model)
    r, _ = _run(tmp_path, tiny_model, ControllerSettings(tmp_path), generator)
    assert r.state == SUCCEEDED and generator.calls == []
