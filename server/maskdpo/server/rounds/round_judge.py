"""The judge a round labels its answers with: built in the controller, or on a Ray actor pinned to the judge
node group (when ``judge_resources`` are set).

:func:`build_round_judge` is the one rule both use: a prompt set with a judge of its own (the toy world's
claim-level kb judge) uses it when the round asks for ``kb`` or nothing; otherwise the named backend.
:class:`RemoteJudge` is a :class:`JudgeBackend` whose ``judge_batch`` runs on a :class:`RoundJudgeActor`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ray

from maskdpo.server.judge.registry import build_backend
from maskdpo.server.judge.types import JudgeBackend, JudgeIdentity, JudgeRequest, Judgment
from maskdpo.server.rounds import datasets
from maskdpo.server.workers.placement import Placement, node_id, wait_placed


def judge_key(requested: str, default: str, dataset: datasets.Dataset | None) -> tuple[str, str]:
    """("dataset", name) when the prompt set's own judge applies, else ("backend", backend name)."""
    if dataset is not None and dataset.judge is not None and requested in ("", "kb"):
        return "dataset", dataset.name
    return "backend", requested or default


def build_round_judge(key: tuple[str, str], options: Mapping[str, Mapping[str, Any]]) -> JudgeBackend:
    kind, name = key
    if kind == "dataset":
        factory = datasets.get(name).judge
        assert factory is not None, f"prompt set {name} has no judge"
        return factory()
    return build_backend(name, **dict(options.get(name, {})))


class RoundJudgeActorImpl:
    """Holds one judge backend on whichever node Ray placed the actor."""

    def __init__(self, key: tuple[str, str], options: Mapping[str, Mapping[str, Any]],
                 dataset_modules: Sequence[str]) -> None:
        datasets.load_modules(dataset_modules)
        self._backend = build_round_judge(key, options)

    def identity(self) -> JudgeIdentity:
        return self._backend.identity()

    def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[Judgment]:
        return self._backend.judge_batch(requests)

    def node_id(self) -> str:
        return node_id()


RoundJudgeActor = ray.remote(RoundJudgeActorImpl)


class RemoteJudge:
    """A :class:`JudgeBackend` whose calls run on a RoundJudgeActor (call it from a worker thread)."""

    def __init__(self, actor: Any, identity: JudgeIdentity, node: str) -> None:
        self.actor = actor
        self.name = identity.backend
        self.node = node
        self._identity = identity

    @classmethod
    async def start(cls, key: tuple[str, str], options: Mapping[str, Mapping[str, Any]],
                    dataset_modules: Sequence[str], placement: Placement, timeout_s: float) -> RemoteJudge:
        actor_class: Any = RoundJudgeActor
        actor = actor_class.options(**placement.ray_options(auto_gpus=0.0)).remote(
            key, options, list(dataset_modules))
        await wait_placed(actor, timeout_s, "round judge", placement.describe(auto_gpus=0.0))
        identity, node = await actor.identity.remote(), await actor.node_id.remote()
        return cls(actor, identity, node)

    def identity(self) -> JudgeIdentity:
        return self._identity

    def judge_batch(self, requests: Sequence[JudgeRequest]) -> list[Judgment]:
        result: list[Judgment] = ray.get(self.actor.judge_batch.remote(list(requests)))
        return result

    def close(self) -> None:
        ray.kill(self.actor)
