"""``maskdpo round create --validate-only`` and the memory check of CreateAlignmentRound, through gRPC: the
real AlignmentServicer in an in-process server planning Llama-3.1-8B (its config.json in tests/data) on a
cluster of two nodes of eight H100s as Ray would list them. Stand-ins: the served model (only its folder
is read) and the round controller (it records creations; a refused round must never reach it)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from google.longrunning import operations_proto_pb2

import tests.helpers.round_world  # noqa: F401  (registers tiny/train and tiny/eval)
from maskdpo.client import Client, planned_round
from maskdpo.client import cli as maskdpo_cli
from maskdpo.client.errors import FailedPreconditionError, NotImplementedByServerError
from maskdpo.server.errors import NotFound
from maskdpo.server.services.alignment import AlignmentServicer
from maskdpo.server.store.rounds import RoundStore
from maskdpo.server.workers.cluster_devices import trainer_devices
from maskdpo.v1 import alignment_pb2, alignment_pb2_grpc, memory_plan_pb2
from tests.conftest import LLAMA_8B

H100_NODES = [{"Alive": True, "Resources": {"GPU": 8, "accelerator_type:H100": 1}}] * 2


class Models:
    def get(self, name: str) -> Any:
        if name != "llama":
            raise NotFound(f"models/{name}")
        return SimpleNamespace(folder=LLAMA_8B)


class Controller:
    def __init__(self) -> None:
        self.created: list[alignment_pb2.RoundConfig] = []
        self.create = SimpleNamespace(remote=self._create)

    async def _create(self, config: alignment_pb2.RoundConfig, request_id: str) -> operations_proto_pb2.Operation:
        self.created.append(config)
        return operations_proto_pb2.Operation(name="operations/1")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Controller]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    controller = Controller()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        servicer = AlignmentServicer(RoundStore(tmp_path / "rounds.sqlite"), controller, Models(), frozenset({"kb"}),
                                     lambda: trainer_devices(H100_NODES, {}, True, None), 0.05, max_lora_rank=16)
        alignment_pb2_grpc.add_AlignmentServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    yield f"127.0.0.1:{port}", controller
    asyncio.run_coroutine_threadsafe(server.stop(None), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def cli(target: str, *flags: str) -> list[str]:
    return ["round", "create", "--target", target, "--model", "llama", "--dataset", "tiny/train",
            "--eval-dataset", "tiny/eval", "--batch-size", "8", "--validate-only", *flags]


def test_cli_prints_the_refused_float32_plan(served: tuple[str, Controller],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    target, controller = served
    assert maskdpo_cli.main(cli(target, "--precision", "float32")) == 1
    out, err = capsys.readouterr()
    assert "8,030,261,248 parameters (8.03 B)" in out and "2 of 16 GPU(s)" not in out
    assert "1 of 16 GPU(s) offered, 74.5 GiB each (accelerator_type:H100)" in out
    for row in ("weights          29.9 GiB", "optimizer        59.8 GiB", "reference        29.9 GiB",
                "total           166.0 GiB"):
        assert row in out
    assert "does not fit: needs 166.0 GiB per GPU, more than the 70.8 GiB usable of 74.5 GiB" in out
    assert "FAILED_PRECONDITION" in err and "166.0 GiB" in err
    assert controller.created == []


def test_cli_prints_the_accepted_fsdp_plan(served: tuple[str, Controller],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    target, controller = served
    flags = ("--precision", "bf16_mixed", "--precompute-ref", "--gpus", "8", "--fsdp")
    assert maskdpo_cli.main(cli(target, *flags)) == 0
    out = capsys.readouterr().out
    assert "full, bf16_mixed; reference precomputed; FSDP over 8 GPUs" in out
    assert "optimizer        11.2 GiB  8,030,261,248 x 12 B / 8 GPUs" in out and "total            19.8 GiB" in out
    assert "fits: 19.8 GiB of the 70.8 GiB usable per GPU" in out
    assert controller.created == []  # validate_only creates nothing


def test_create_refuses_before_any_work_and_validate_only_answers_done(served: tuple[str, Controller]) -> None:
    target, controller = served
    config = alignment_pb2.RoundConfig(model="models/llama")
    config.prompts.dataset, config.eval_prompts.dataset = "tiny/train", "tiny/eval"
    with Client(target) as client:
        with pytest.raises(FailedPreconditionError) as refused:  # float32, resident reference, one GPU
            client.create_round(config)
        plan = refused.value.detail(memory_plan_pb2.MemoryPlan)
        assert plan is not None and not plan.fits and plan.total_bytes == 178_275_827_712
        config.training.precision = memory_plan_pb2.PRECISION_BF16
        config.training.precompute_ref = True
        config.training.batch_size = 2
        op = client.create_round(config, validate_only=True)
        assert op.done and not op.name
        round_ = planned_round(op)
        assert round_.config == config and round_.memory_plan.fits and round_.memory_plan.devices == 1
        with pytest.raises(NotImplementedByServerError) as unsupported:  # fits, but TRAIN trains full weights
            client.create_round(config)                                  # in bf16 only as mixed precision
        assert unsupported.value.metadata["field"] == "config.training.precision"
        assert controller.created == []
        config.training.lora = True  # an adapter on the bf16 base: what one GPU trains at 8B
        assert client.create_round(config).name == "operations/1"
    assert controller.created == [config]
