"""The grpc.aio application: builds the server, its servicers, health and reflection, and runs it.

Start-up: settings -> the data folder claimed and the port checked (``ownership``: refused at once if
another server holds either) -> Ray (local or joined) -> Judge actors (and Generator actors when models are
configured) -> servicers -> the gRPC server starts. Engines start in the background: ModelService is
SERVING at once (models show LOADING), GenerationService once the engines are ready.
Shutdown (SIGTERM / SIGINT): health turns NOT_SERVING for every service, new calls are refused, calls in
flight get ``drain_seconds`` to finish, then the actors are released.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from typing import Any

import grpc
from google.longrunning import operations_pb2_grpc, operations_proto_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from maskdpo.server.edge.auth import AuthInterceptor
from maskdpo.server.edge.decode_guard import DecodeGuard
from maskdpo.server.edge.prometheus import MetricsInterceptor, start_metrics
from maskdpo.server.ownership import NO_REUSEPORT, DataDirLock, StartupError, bind, probe_port
from maskdpo.server.rounds import datasets
from maskdpo.server.services.alignment import build_alignment_servicer
from maskdpo.server.services.factuality import FactualityServicer
from maskdpo.server.services.generation import GenerationServicer
from maskdpo.server.services.judging import AnswerJudge
from maskdpo.server.services.longrunning import OperationsServicer
from maskdpo.server.services.models import ModelServicer
from maskdpo.server.services.pending import pending_servicer
from maskdpo.server.settings import ServerSettings
from maskdpo.server.store.checkpoints import CheckpointStore
from maskdpo.server.store.knowledge_sources import KnowledgeStore
from maskdpo.server.store.layout import DataDir
from maskdpo.server.store.operations import OperationStore
from maskdpo.server.workers.deploys import DeployManager
from maskdpo.server.workers.generator_pool import GeneratorPool, resolve_folder
from maskdpo.server.workers.judge_pool import JudgePool
from maskdpo.server.workers.ray_runtime import start_ray
from maskdpo.v1 import (
    alignment_pb2,
    alignment_pb2_grpc,
    factuality_pb2,
    factuality_pb2_grpc,
    generation_pb2,
    generation_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    policies,
)

log = logging.getLogger("maskdpo.server")

FACTUALITY = factuality_pb2.DESCRIPTOR.services_by_name["FactualityService"].full_name
GENERATION = generation_pb2.DESCRIPTOR.services_by_name["GenerationService"].full_name
MODELS = models_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name
ALIGNMENT = alignment_pb2.DESCRIPTOR.services_by_name["AlignmentService"].full_name
OPERATIONS = operations_proto_pb2.DESCRIPTOR.services_by_name["Operations"].full_name
# Services that answer real work at once; the others answer UNIMPLEMENTED and report NOT_SERVING until
# models (generation, models, alignment) are configured and ready.
LIVE_SERVICES = (FACTUALITY, OPERATIONS)


def service_names() -> tuple[str, ...]:
    """The full names of the services the server offers (``maskdpo.v1.policies.SERVICES``)."""
    return tuple(service.full_name for service in policies.SERVICES)


def check_policies() -> None:
    """Refuse to start while an offered method declares no role: auth would have no rule for it."""
    missing = policies.undeclared(policies.SERVICES)
    if missing:
        raise StartupError(f"cannot start: {len(missing)} offered method(s) declare no role: "
                           f"{', '.join(missing)} (annotate them with option (maskdpo.v1.policy))")


@dataclass
class RunningServer:
    """A started server: its port, and what to stop."""

    server: grpc.aio.Server
    port: int
    health: HealthServicer
    judges: JudgePool
    settings: ServerSettings
    lock: DataDirLock
    generators: GeneratorPool | None = None
    deploys: DeployManager | None = None
    background: asyncio.Task[None] | None = None

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING everywhere, drain calls in flight for ``grace`` seconds, release the actors."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.settings.drain_seconds if grace is None else grace)
        if self.background is not None:
            self.background.cancel()
        if self.deploys is not None:
            await self.deploys.stop()
        if self.generators is not None:
            await asyncio.to_thread(self.generators.shutdown)
        self.judges.shutdown()
        self.lock.release()


def _server_options(settings: ServerSettings) -> list[tuple[str, Any]]:
    return [
        NO_REUSEPORT,
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]


def _bind(server: grpc.aio.Server, settings: ServerSettings) -> int:
    address = f"{settings.host}:{settings.port}"
    if settings.tls_cert is None or settings.tls_key is None:
        if settings.host not in ("127.0.0.1", "localhost", "::1") and not settings.auth_enabled:
            log.warning("listening on %s without TLS and without tokens: anyone who reaches it can call it",
                        address)
        return bind(server, address, None)
    client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    credentials = grpc.ssl_server_credentials(
        [(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )
    return bind(server, address, credentials)


def hosted_judges(settings: ServerSettings) -> list[str]:
    """The configured judges, plus those the registered round datasets label with when rounds are served."""
    extra = sorted(datasets.judges() - set(settings.judges)) if settings.models and settings.rounds_enabled else []
    return [*settings.judges, *extra]


async def start_server(settings: ServerSettings) -> RunningServer:
    """Claim the data folder and check the port, start Ray (or join it), the Judge actors and the gRPC
    server; return once it listens. Raises :class:`StartupError` (before Ray starts where it can) when
    another server holds the folder or the port, or when an offered method declares no role."""
    check_policies()
    lock = DataDirLock.acquire(settings.data_dir)
    try:
        probe_port(settings.host, settings.port)
    except BaseException:
        lock.release()
        raise
    # gRPC objects only after Ray: created before, Ray forked its processes while gRPC threads ran and
    # the local Ray node timed out at start
    start_ray(settings.ray_address, settings.ray_num_cpus)
    judges = await JudgePool.start(settings.data_dir, hosted_judges(settings), settings.default_judge,
                                   settings.judge_replicas, settings.judge_options, settings.judge_batch_window_ms,
                                   settings.judge_max_batch, settings.judge_queue_limit,
                                   settings.judge_placement, settings.placement_timeout_s)
    interceptors: list[Any] = [AuthInterceptor(settings.tokens)] if settings.auth_enabled else []
    interceptors.append(DecodeGuard())
    if metrics_port := settings.metrics_port:
        interceptors.insert(0, MetricsInterceptor())
    server = grpc.aio.server(interceptors=interceptors, options=_server_options(settings),
                             maximum_concurrent_rpcs=settings.max_concurrent_rpcs)
    try:
        port = _bind(server, settings)  # taken since the probe: still refused (no SO_REUSEPORT)
        if metrics_port:
            try:
                start_metrics(metrics_port, settings.data_dir.resolve(), settings.host)
            except OSError as exc:
                raise StartupError(f"cannot serve metrics on {settings.host}:{metrics_port}: {exc}") from None
    except BaseException:
        await server.stop(None)  # while the loop runs: a server left to the collector warns at exit
        judges.shutdown()
        lock.release()
        raise
    lock.record(port)
    judging = AnswerJudge(settings, judges, KnowledgeStore(settings.data_dir))
    factuality_pb2_grpc.add_FactualityServiceServicer_to_server(FactualityServicer(settings, judging), server)
    operations = OperationStore(DataDir(settings.data_dir).operations)
    generators, deploys = None, None
    if settings.models:
        engines = {name: (source, settings.engine_settings(name, resolve_folder(name, source, settings.models_dir)))
                   for name, source in settings.models.items()}
        generators = GeneratorPool.create(engines, settings.default_model, settings.data_dir,
                                          CheckpointStore(DataDir(settings.data_dir).models),
                                          settings.generator_placement, settings.verify_tolerance,
                                          settings.generator_start_timeout_s, settings.generator_replicas)
        deploys = DeployManager(generators, operations)
        deploys.fail_leftovers()
        generation = GenerationServicer(settings, generators, judging)
        generation_pb2_grpc.add_GenerationServiceServicer_to_server(generation, server)
        models_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(generators, deploys), server)
    else:
        generation_pb2_grpc.add_GenerationServiceServicer_to_server(
            pending_servicer(generation_pb2, generation_pb2_grpc, "GenerationService"), server)
        models_pb2_grpc.add_ModelServiceServicer_to_server(
            pending_servicer(models_pb2, models_pb2_grpc, "ModelService"), server)
    alignment = await build_alignment_servicer(settings, generators, judges) if generators else None
    alignment_pb2_grpc.add_AlignmentServiceServicer_to_server(
        alignment or pending_servicer(alignment_pb2, alignment_pb2_grpc, "AlignmentService"), server)
    operations_pb2_grpc.add_OperationsServicer_to_server(OperationsServicer(operations), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    offered = service_names()
    reflection.enable_server_reflection((*offered, reflection.SERVICE_NAME,
                                         health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
    await server.start()
    live = set(LIVE_SERVICES) | ({MODELS} if generators else set()) | ({ALIGNMENT} if alignment else set())
    for name in offered:
        status = health_pb2.HealthCheckResponse.SERVING if name in live \
            else health_pb2.HealthCheckResponse.NOT_SERVING
        await health.set(name, status)
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("maskdpo serving on %s:%d (judges: %s; models: %s)", settings.host, port,
             ", ".join(settings.judges), ", ".join(settings.models) or "none")
    background = asyncio.create_task(_start_engines(generators, health)) if generators else None
    return RunningServer(server, port, health, judges, settings, lock, generators, deploys, background)


async def _start_engines(generators: GeneratorPool, health: HealthServicer) -> None:
    """Wait for the engines; GenerationService turns SERVING when at least one model is ready."""
    ready = await generators.start()
    if ready:
        await health.set(GENERATION, health_pb2.HealthCheckResponse.SERVING)
    log.info("generation: %d of %d models ready", ready, len(generators.models))


async def serve_forever(settings: ServerSettings, ready_file: str | None = None) -> None:
    """Run until SIGTERM / SIGINT, then drain and stop."""
    running = await start_server(settings)
    print(f"maskdpo listening on {settings.host}:{running.port}", flush=True)
    if ready_file:
        with open(ready_file, "w") as fh:
            fh.write(str(running.port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: NOT_SERVING, draining calls for up to %.1f s", settings.drain_seconds)
    await running.stop()
