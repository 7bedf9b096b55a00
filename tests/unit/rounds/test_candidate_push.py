"""What TRAIN does with the candidate's engine after a push: serve the pushed candidate once verified, keep
the start weights when nothing was pushed, and mark the engine's weights unknown after a push that broke off
(EVALUATE then reloads the candidate from its checkpoint)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from maskdpo.server.rounds.candidate_engine import adopt_pushed
from maskdpo.server.rounds.decoding import RoundEngine
from maskdpo.server.workers.engine_push import EnginePush


def fixture(tmp_path: Path, refuse: bool = False) -> tuple[Any, RoundEngine, list[tuple[str, str]]]:
    calls: list[tuple[str, str]] = []

    async def adopt(reference: str, served_as: str) -> None:
        calls.append((reference, served_as))
        if refuse:
            raise RuntimeError("max |diff| 0.4 > tolerance")

    messages: list[str] = []
    ctx = SimpleNamespace(log=messages.append, messages=messages)
    actor = SimpleNamespace(adopt_pushed=SimpleNamespace(remote=adopt))
    return ctx, RoundEngine(actor, "e", "toy", tmp_path / "start", "here"), calls


def test_a_verified_push_is_what_the_engine_holds(tmp_path: Path) -> None:
    ctx, engine, calls = fixture(tmp_path)
    asyncio.run(adopt_pushed(ctx, engine, {"bytes": 2.0 * 2**20, "seconds": 0.5}, tmp_path / "work" / "final",
                             tmp_path / "TRAIN" / "final"))
    assert calls == [(str(tmp_path / "work" / "final"), str(tmp_path / "TRAIN" / "final"))]
    assert engine.holds == tmp_path / "TRAIN" / "final"
    assert "2.0 MiB in 0.50 s, verified by the probe" in ctx.messages[-1]


def test_a_refused_push_leaves_the_start_weights(tmp_path: Path) -> None:
    ctx, engine, calls = fixture(tmp_path, refuse=True)
    asyncio.run(adopt_pushed(ctx, engine, {"bytes": 1.0, "seconds": 0.1}, tmp_path / "final", tmp_path / "kept"))
    assert calls and engine.holds == tmp_path / "start"
    assert "did not verify" in ctx.messages[-1] and "loads it from disk" in ctx.messages[-1]


def test_no_push_keeps_the_start_and_a_broken_push_makes_the_weights_unknown(tmp_path: Path) -> None:
    ctx, engine, calls = fixture(tmp_path)
    asyncio.run(adopt_pushed(ctx, engine, {"error": "engine e was not placed beside the trainer"}, tmp_path, tmp_path))
    assert engine.holds == tmp_path / "start" and not calls
    assert "not placed beside the trainer" in ctx.messages[-1]
    asyncio.run(adopt_pushed(ctx, engine, {"error": "the push failed: timeout", "attempted": True}, tmp_path,
                            tmp_path))
    assert engine.holds is None and not calls


def test_the_trainer_does_not_push_into_an_engine_that_was_not_placed(tmp_path: Path) -> None:
    push = EnginePush("e", "maskdpo", tmp_path / "placed")
    assert push(object(), None) == {"error": "engine e was not placed beside the trainer"}
