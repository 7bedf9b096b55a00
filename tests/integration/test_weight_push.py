"""Weights pushed into a running engine through vLLM's weight-transfer API (the ``maskdpo-tcp`` backend),
with no disk read: the engine then scores exactly as the pushed model, once the probe has verified it; a
push that does not verify puts the served weights back.

The sender runs in a thread of this process (a trainer process in a round); the engine's workers receive
in their own processes, as on a server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from maskdpo.server.generation import errors
from maskdpo.server.generation.engine import GenerationEngine
from maskdpo.server.generation.engine_settings import EngineSettings
from maskdpo.server.generation.hotswap import Deployer
from maskdpo.server.generation.verify import reference_logprobs
from maskdpo.trainer import weight_push
from tests.helpers.tiny_model import build_tiny_model


class LoopTarget:
    """The engine's side of a push, called from the sender's thread into the engine's event loop."""

    def __init__(self, engine: GenerationEngine, loop: asyncio.AbstractEventLoop) -> None:
        self.engine, self.loop = engine, loop

    def step(self, name: str, payload: dict[str, Any] | None = None) -> Callable[[], Any]:
        return asyncio.run_coroutine_threadsafe(self.engine.push_step(name, payload), self.loop).result

    def workers(self) -> int:
        return 1


def test_pushed_weights_are_served_after_verification_and_refused_ones_roll_back(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    served, pushed, other = (build_tiny_model(tmp_path / name, seed=seed)
                             for name, seed in (("a", 0), ("b", 1), ("c", 2)))

    async def run() -> dict[str, Any]:
        engine = await GenerationEngine.start(EngineSettings(model=served, max_num_seqs=4, accept_pushed_weights=True))
        try:
            deployer = Deployer(engine)
            out: dict[str, Any] = {"before": await engine.score(deployer.probe)}
            target = LoopTarget(engine, asyncio.get_running_loop())
            model = AutoModelForCausalLM.from_pretrained(pushed)
            out["stats"] = await asyncio.to_thread(weight_push.push, model, target, host="127.0.0.1")
            out["probe"] = deployer.probe
            out["report"] = await deployer.adopt_pushed(pushed, pushed)
            out["after"] = await engine.score(deployer.probe)
            out["version"] = engine.version
            # weights that are not the ones the reference describes: refused, version 2 reloaded from its folder
            model = AutoModelForCausalLM.from_pretrained(other)
            await asyncio.to_thread(weight_push.push, model, target, host="127.0.0.1")
            with pytest.raises(errors.VerificationError, match="refused"):
                await deployer.adopt_pushed(served, tmp_path / "never")
            out["rolled_back"] = await engine.score(deployer.probe)
            out["version_after_refusal"] = engine.version
            return out
        finally:
            engine.shutdown()

    out = asyncio.run(run())
    expected = reference_logprobs(pushed, out["probe"])
    assert out["stats"]["bytes"] > 500_000
    assert out["report"].accepted and out["report"].max_abs_diff < 1e-4
    assert max(abs(a - b) for a, b in zip(out["after"], expected, strict=True)) < 1e-4
    assert max(abs(a - b) for a, b in zip(out["after"], out["before"], strict=True)) > 0.1  # it did change
    assert out["version"].version == 2 and out["version"].checkpoint == pushed.resolve()
    assert out["version_after_refusal"] == out["version"]
    assert max(abs(a - b) for a, b in zip(out["rolled_back"], expected, strict=True)) < 1e-4
