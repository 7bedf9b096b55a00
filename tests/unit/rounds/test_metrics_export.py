"""Prometheus export: calls are counted and timed by method and code; rounds and phases come from the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from prometheus_client import generate_latest

from maskdpo.server.edge import prometheus as metrics_export
from maskdpo.server.store.rounds import FAILED, RoundStore
from maskdpo.v1 import alignment_pb2
from tests.unit.rounds.conftest import tiny_config

CHECK = "/grpc.health.v1.Health/Check"


def test_interceptor_counts_ok_and_failed_calls() -> None:
    async def main() -> None:
        server = grpc.aio.server(interceptors=[metrics_export.MetricsInterceptor()])
        health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await health.set("", health_pb2.HealthCheckResponse.SERVING)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            await stub.Check(health_pb2.HealthCheckRequest())
            try:
                await stub.Check(health_pb2.HealthCheckRequest(service="nope"))
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND
        await server.stop(None)

    before_ok = metrics_export.REQUESTS.labels(CHECK, "OK")._value.get()
    before_missing = metrics_export.REQUESTS.labels(CHECK, "NOT_FOUND")._value.get()
    asyncio.run(main())
    assert metrics_export.REQUESTS.labels(CHECK, "OK")._value.get() == before_ok + 1
    assert metrics_export.REQUESTS.labels(CHECK, "NOT_FOUND")._value.get() == before_missing + 1


def test_collector_reads_rounds_phases_and_queues(tmp_path: Path) -> None:
    store = RoundStore(tmp_path / "rounds.sqlite")
    store.insert("a1", "operations/x", tiny_config())
    store.start_phase("a1", alignment_pb2.SAMPLE)
    store.finish_phase("a1", alignment_pb2.SAMPLE, {}, {})
    store.record("a1", "ROUND_ENDED", alignment_pb2.SAMPLE, "x", state=FAILED)
    metrics_export.register_queue("rounds_active", lambda: 3)
    registry = metrics_export.CollectorRegistry()
    registry.register(metrics_export._Collector(tmp_path / "rounds.sqlite"))
    text = generate_latest(registry).decode()
    assert 'maskdpo_rounds{state="FAILED"} 1.0' in text and 'maskdpo_rounds{state="RUNNING"} 0.0' in text
    assert 'maskdpo_round_phase_seconds_count{phase="SAMPLE"} 1.0' in text
    assert 'maskdpo_queue_depth{queue="rounds_active"} 3.0' in text
