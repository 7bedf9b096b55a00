"""AlignmentService: create, read, list, watch and cancel alignment rounds.

The server holds no round state. Creation and cancellation go to the RoundController actor (which owns
the store and runs the rounds); Get, List and Watch read the round store (SQLite, WAL) directly, so they
keep answering while the controller is busy or restarting. Watch sends the events after
``after_sequence`` in order and ends after ROUND_ENDED; a watcher that reconnects with the last sequence
it received misses none. The controller finds the generators and judges itself,
by their names, and resumes its rounds on its own after a restart.

Creation plans the round's memory first (:mod:`maskdpo.server.rounds.memory_check`) and refuses a plan that
does not fit the devices the cluster offers the trainer; ``validate_only`` answers with the plan and creates
nothing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from google.longrunning import operations_proto_pb2

from maskdpo.server.edge.names import ROUND_NAME
from maskdpo.server.edge.paging import page
from maskdpo.server.edge.prometheus import register_queue
from maskdpo.server.edge.rpc import Ctx, streaming, unary
from maskdpo.server.errors import FailedPrecondition, InvalidArgument
from maskdpo.server.rounds import datasets
from maskdpo.server.rounds.config import Promotion, validate_config
from maskdpo.server.rounds.controller import ControllerSettings
from maskdpo.server.rounds.controller_actor import get_or_create_controller
from maskdpo.server.rounds.memory_check import plan_round
from maskdpo.server.rounds.phase_train import check_runnable
from maskdpo.server.rounds.workers import Workers
from maskdpo.server.services.alignment_convert import plan_to_proto, validated_operation
from maskdpo.server.settings import ServerSettings
from maskdpo.server.store.layout import DataDir
from maskdpo.server.store.rounds import TERMINAL, RoundStore, round_id
from maskdpo.server.workers.cluster_devices import ray_trainer_devices
from maskdpo.server.workers.generator_pool import GeneratorPool
from maskdpo.server.workers.judge_pool import JudgePool
from maskdpo.server.workers.placement import GpuSharing
from maskdpo.trainer.memory_plan import Devices
from maskdpo.v1 import alignment_pb2, alignment_pb2_grpc

log = logging.getLogger("maskdpo.server")
WATCH_POLL_S = 0.25


def _rid(name: str, field: str = "name") -> str:
    if not ROUND_NAME.fullmatch(name):
        raise InvalidArgument(field, f"expected 'rounds/<id>', got {name[:80]!r}")
    return round_id(name)


class AlignmentServicer(alignment_pb2_grpc.AlignmentServiceServicer):
    def __init__(self, store: RoundStore, controller: Any, generators: Any, judges: frozenset[str],
                 devices: Callable[[], Devices], headroom: float, max_lora_rank: int = 0) -> None:
        """``devices`` says what the cluster offers the trainer now (the memory plan checks against it);
        ``max_lora_rank`` is the largest adapter rank the engines serve (0 = none)."""
        self.store = store
        self.controller = controller
        self.generators = generators
        self.judges = judges
        self.devices = devices
        self.headroom = headroom
        self.max_lora_rank = max_lora_rank

    @unary
    async def CreateAlignmentRound(
        self, request: alignment_pb2.CreateAlignmentRoundRequest, context: Ctx
    ) -> operations_proto_pb2.Operation:
        if not request.HasField("config"):
            raise InvalidArgument("config", "required")
        spec = validate_config(request.config, datasets.names(), self.judges)
        if len(request.request_id) > 128:
            raise InvalidArgument("request_id", "at most 128 characters")
        model = self.generators.get(spec.model_id)  # NotFound unless the model is served here
        if spec.training.lora and self.max_lora_rank < spec.training.lora_r:
            raise InvalidArgument("config.training.lora", f"this server's engines serve LoRA ranks up to "
                                  f"{self.max_lora_rank}; a round of rank {spec.training.lora_r} could not "
                                  "promote its adapter (raise generator_max_lora_rank)")
        devices = await asyncio.to_thread(self.devices)
        plan = await asyncio.to_thread(plan_round, spec, model.folder, devices, self.headroom)
        if not plan.fits:
            raise FailedPrecondition(f"the round's memory plan {plan.verdict}").with_details(plan_to_proto(plan))
        if request.validate_only:
            return validated_operation(request.config, plan)
        check_runnable(spec.training)
        operation: operations_proto_pb2.Operation = await self.controller.create.remote(
            request.config, request.request_id
        )
        return operation

    @unary
    async def GetAlignmentRound(
        self, request: alignment_pb2.GetAlignmentRoundRequest, context: Ctx
    ) -> alignment_pb2.AlignmentRound:
        return await asyncio.to_thread(self.store.get, _rid(request.name))

    @unary
    async def ListAlignmentRounds(
        self, request: alignment_pb2.ListAlignmentRoundsRequest, context: Ctx
    ) -> alignment_pb2.ListAlignmentRoundsResponse:
        size, offset = page(request.page_size, request.page_token)
        if request.model and not request.model.startswith("models/"):
            raise InvalidArgument("model", "expected 'models/{model}'")
        rounds, more = await asyncio.to_thread(self.store.page, request.state, request.model, offset, size)
        return alignment_pb2.ListAlignmentRoundsResponse(
            rounds=rounds, next_page_token=str(offset + size) if more else ""
        )

    @streaming
    async def WatchAlignmentRound(
        self, request: alignment_pb2.WatchAlignmentRoundRequest, context: Ctx
    ) -> AsyncIterator[alignment_pb2.RoundEvent]:
        rid = _rid(request.name)
        if request.after_sequence < 0:
            raise InvalidArgument("after_sequence", "must be >= 0")
        after = request.after_sequence
        await asyncio.to_thread(self.store.row, rid)  # NotFound early
        while True:
            events = await asyncio.to_thread(self.store.events, rid, after)
            for event in events:
                yield event
                after = event.sequence
                if event.kind == "ROUND_ENDED":
                    return
            if not events:
                row = await asyncio.to_thread(self.store.row, rid)
                if row["state"] in TERMINAL and row["last_sequence"] <= after:
                    return
                await asyncio.sleep(WATCH_POLL_S)

    @unary
    async def CancelAlignmentRound(
        self, request: alignment_pb2.CancelAlignmentRoundRequest, context: Ctx
    ) -> alignment_pb2.AlignmentRound:
        _rid(request.name)
        cancelled: alignment_pb2.AlignmentRound = await self.controller.cancel.remote(request.name)
        return cancelled


def controller_settings(settings: ServerSettings, judges: Sequence[str]) -> ControllerSettings:
    """What the round controller runs with, from the server's settings (the one settings model)."""
    return ControllerSettings(
        data_dir=settings.data_dir.resolve(),
        default_judge=settings.default_judge,
        judges=tuple(judges),
        judge_replicas=settings.judge_replicas,
        promotion=Promotion(settings.rounds_promotion_metric, settings.rounds_min_improvement,
                            settings.rounds_max_correct_drop, eval_prompts=settings.rounds_eval_prompts),
        workers=Workers(
            on_ray=settings.rounds_trainer_on_ray,
            trainer=settings.trainer_placement(settings.rounds_trainer_cpus),
            alternate_gpu=settings.gpu_sharing is GpuSharing.ALTERNATE,
            placement_timeout_s=settings.placement_timeout_s,
            engine=settings.engine_settings("", Path()),
        ),
        save_steps=settings.rounds_save_steps,
        keep_checkpoints=settings.rounds_keep_checkpoints,
        serving_dtype=settings.rounds_serving_dtype,
        max_attempts=settings.rounds_max_attempts,
        generator_replicas=settings.generator_replicas,
        generator_wait_s=settings.generator_start_timeout_s,
    )


async def build_alignment_servicer(settings: ServerSettings, generators: GeneratorPool,
                                   judges: JudgePool) -> AlignmentServicer | None:
    """Start (or find) the RoundController actor and the servicer that talks to it (None when disabled)."""
    if not settings.rounds_enabled:
        return None
    controller = await get_or_create_controller(controller_settings(settings, judges.backends))
    store = RoundStore(DataDir(settings.data_dir.resolve()).rounds_db)
    devices = functools.partial(ray_trainer_devices, settings.trainer_resources, settings.trainer_num_gpus != 0,
                                settings.trainer_gpu_memory_gib)
    servicer = AlignmentServicer(store, controller, generators, frozenset(judges.backends), devices,
                                 settings.trainer_memory_headroom, settings.generator_max_lora_rank)
    register_queue("rounds_active", lambda: len(servicer.store.active()))
    return servicer
