"""Prometheus metrics of the service, served on their own HTTP port (the ``metrics_port`` setting; 0 = off).

- ``maskdpo_requests_total{method, code}`` and ``maskdpo_request_seconds{method}``: every gRPC call
  (a server interceptor; streaming calls are timed until their last message);
- ``maskdpo_queue_depth{queue}``: the depth of every queue registered with :func:`register_queue`
  (callbacks read on each scrape), e.g. ``rounds_active``;
- ``maskdpo_rounds{state}``, ``maskdpo_round_phase_seconds_sum|_count{phase}``: round outcomes and phase
  durations, read from the round store at scrape time, so they survive restarts and never double count.

    MASKDPO_METRICS_PORT=9464 maskdpo serve ...      # then: curl 127.0.0.1:9464/metrics
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from maskdpo.server.store.layout import DataDir
from maskdpo.server.store.rounds import phase_name
from maskdpo.v1 import alignment_pb2

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "maskdpo_requests", "gRPC calls by method and status code", ["method", "code"], registry=REGISTRY
)
LATENCY = Histogram(
    "maskdpo_request_seconds",
    "gRPC call latency",
    ["method"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
_QUEUES: dict[str, Callable[[], float]] = {}


def register_queue(name: str, depth: Callable[[], float]) -> None:
    """Report ``depth()`` as ``maskdpo_queue_depth{queue=name}`` on every scrape."""
    _QUEUES[name] = depth


class _Collector(Collector):
    def __init__(self, rounds_db: Path | None) -> None:
        self.rounds_db = rounds_db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queues = GaugeMetricFamily(
            "maskdpo_queue_depth", "items waiting or running per queue", labels=["queue"]
        )
        for name, depth in sorted(_QUEUES.items()):
            try:
                queues.add_metric([name], float(depth()))
            except Exception:  # a queue that cannot report now is left out of this scrape
                continue
        yield queues
        if self.rounds_db is None or not self.rounds_db.is_file():
            return
        with sqlite3.connect(f"file:{self.rounds_db}?mode=ro", uri=True, timeout=5) as db:
            by_state = dict(db.execute("SELECT state, COUNT(*) FROM rounds GROUP BY state").fetchall())
            phases = db.execute(
                "SELECT phase, SUM(finished - started), COUNT(*) FROM phases "
                "WHERE state = 'done' GROUP BY phase"
            ).fetchall()
        rounds = GaugeMetricFamily("maskdpo_rounds", "alignment rounds by state", labels=["state"])
        for name, code in alignment_pb2.AlignmentRound.State.items():
            if code:
                rounds.add_metric([name], float(by_state.get(code, 0)))
        yield rounds
        total = GaugeMetricFamily(
            "maskdpo_round_phase_seconds_sum", "seconds spent in finished phases", labels=["phase"]
        )
        count = GaugeMetricFamily("maskdpo_round_phase_seconds_count", "finished phases", labels=["phase"])
        for phase, seconds, n in phases:
            total.add_metric([phase_name(phase)], float(seconds or 0.0))
            count.add_metric([phase_name(phase)], float(n))
        yield total
        yield count


def start_metrics(port: int, data_dir: Path | None, host: str = "127.0.0.1") -> None:
    """Serve /metrics on ``host:port`` (a daemon thread)."""
    REGISTRY.register(_Collector(DataDir(data_dir).rounds_db if data_dir else None))
    start_http_server(port, addr=host, registry=REGISTRY)


def _code_of(context: Any) -> str:
    code = context.code() if hasattr(context, "code") else None
    return code.name if isinstance(code, grpc.StatusCode) else "OK"


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc,unused-ignore]
    """Counts and times every unary and server-streaming call."""

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request: Any, context: Any) -> Any:
                started = time.perf_counter()
                code = "UNKNOWN"
                try:
                    result = await inner(request, context)
                    code = _code_of(context)
                    return result
                except BaseException:
                    code = _code_of(context) if _code_of(context) != "OK" else "UNKNOWN"
                    raise
                finally:
                    REQUESTS.labels(method, code).inc()
                    LATENCY.labels(method).observe(time.perf_counter() - started)

            return grpc.unary_unary_rpc_method_handler(unary, **kwargs)
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
                started = time.perf_counter()
                code = "UNKNOWN"
                try:
                    async for item in inner_stream(request, context):
                        yield item
                    code = _code_of(context)
                except BaseException:
                    code = _code_of(context) if _code_of(context) != "OK" else "UNKNOWN"
                    raise
                finally:
                    REQUESTS.labels(method, code).inc()
                    LATENCY.labels(method).observe(time.perf_counter() - started)

            return grpc.unary_stream_rpc_method_handler(stream, **kwargs)
        return handler
