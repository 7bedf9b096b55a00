"""Internal values as ``maskdpo.v1`` messages where more than one layer needs them (the servicers, the round
store and the round phases): judge identities, label counts, timestamps. Servicer-specific conversions live
beside their servicer (``services/*_convert.py``).
"""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from maskdpo.server.judge.types import JudgeIdentity
from maskdpo.trainer.labels import LabelCounts
from maskdpo.v1 import common_pb2


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    """A time in seconds since the epoch (``time.time()``) as a protobuf Timestamp."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def label_counts(counts: LabelCounts) -> common_pb2.LabelCounts:
    return common_pb2.LabelCounts(ok=counts.ok, contradictory=counts.contradictory,
                                  unverifiable=counts.unverifiable, nofact=counts.nofact)


def judge_identity(identity: JudgeIdentity, knowledge_source: str = "") -> common_pb2.JudgeIdentity:
    return common_pb2.JudgeIdentity(
        backend=identity.backend, model=identity.model, prompt_version=identity.prompt_version,
        knowledge_source=knowledge_source or identity.knowledge_source, splitter=identity.splitter,
        heuristic=identity.heuristic, settings=dict(identity.settings),
    )
