"""AlignmentService's conversions between internal values and v1 messages: the memory plan, and the
done Operation a ``validate_only`` CreateAlignmentRound answers with."""

from __future__ import annotations

from google.longrunning import operations_proto_pb2

from maskdpo.trainer.memory_plan import MemoryPlan
from maskdpo.v1 import alignment_pb2, memory_plan_pb2


def plan_to_proto(plan: MemoryPlan) -> memory_plan_pb2.MemoryPlan:
    return memory_plan_pb2.MemoryPlan(
        architecture=plan.shape.architecture,
        parameters=plan.shape.parameters,
        trainable_parameters=plan.trainable_parameters,
        recipe=plan.recipe.describe(),
        tokens_per_forward=plan.recipe.tokens,
        device_kind=plan.devices.kind,
        devices=plan.recipe.gpus,
        available_devices=plan.devices.count,
        device_memory_bytes=plan.devices.memory_bytes,
        device_memory_source=plan.devices.source,
        headroom=plan.headroom,
        components=[memory_plan_pb2.MemoryComponent(name=c.name, bytes=c.bytes, formula=c.formula)
                    for c in plan.components],
        total_bytes=plan.total_bytes,
        fits=plan.fits,
        verdict=plan.verdict,
    )


def validated_operation(config: alignment_pb2.RoundConfig, plan: MemoryPlan) -> operations_proto_pb2.Operation:
    """The answer to a validate_only CreateAlignmentRound: done, no name (nothing was created), the round
    that would run (its config and memory plan) as the response."""
    operation = operations_proto_pb2.Operation(done=True)
    operation.response.Pack(alignment_pb2.AlignmentRound(config=config, memory_plan=plan_to_proto(plan)))
    return operation
