"""A whole round whose TRAIN runs on two Ray Train workers (real Ray on CPU, gloo; the rest of the round
in-process on the tiny model), asking for bf16 mixed precision, precomputed reference log-probs and
gradient accumulation: the round config reaches every worker's training arguments, the round reports where
it trained, keeps the last checkpoint and deletes its optimizer state once TRAIN is done. With engine settings
(as a server gives them), the candidate's vLLM engine starts beside the workers and rank 0 pushes the
candidate into it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.helpers.round_world  # noqa: F401  (registers tiny/train and tiny/eval)
from maskdpo.server.generation.engine_settings import EngineSettings
from maskdpo.server.rounds.controller import ControllerSettings, RoundController
from maskdpo.server.rounds.workers import LocalGenerator, LocalJudges, Workers
from maskdpo.server.store.rounds import SUCCEEDED, round_id
from maskdpo.server.workers.placement import Placement
from maskdpo.trainer.checkpoint import read_training_info
from maskdpo.v1 import alignment_pb2, memory_plan_pb2

P = alignment_pb2.RoundPhase


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", include_dashboard=False, num_cpus=3)  # 2 workers + a round's engine beside them
    yield
    ray.shutdown()


def _config() -> alignment_pb2.RoundConfig:
    cfg = alignment_pb2.RoundConfig(model="models/tiny", seed=1, samples_per_prompt=4)
    cfg.prompts.dataset, cfg.eval_prompts.dataset = "tiny/train", "tiny/eval"
    cfg.sampling.max_tokens = 32
    t = cfg.training
    t.batch_size, t.epochs, t.learning_rate = 4, 2, 1e-5
    t.precision, t.precompute_ref, t.grad_accum, t.gpus = memory_plan_pb2.PRECISION_BF16_MIXED, True, 2, 2
    cfg.promotion.min_improvement, cfg.promotion.max_correct_drop = -1.0, 1.0  # promote whatever comes out
    return cfg


def run_round(workers: Workers, model: Path, folder: Path) -> tuple[Any, list[Any], list[str]]:
    """Run :func:`_config`'s round to its end: (the round, its events, its LOG messages); it succeeded and
    trained on two Ray Train workers."""
    settings = ControllerSettings(folder, workers=workers, save_steps=1, keep_checkpoints=1)

    async def main() -> Any:
        c = RoundController(settings, {"tiny": LocalGenerator(model)}, LocalJudges())
        op = await c.create(_config(), "")
        meta = alignment_pb2.AlignmentRoundMetadata()
        op.metadata.Unpack(meta)
        r = await c.wait(meta.round, timeout=900)
        return r, c.store.events(round_id(r.name), 0)

    r, events = asyncio.run(main())
    assert r.state == SUCCEEDED, r.reason
    logs = [e.message for e in events if e.kind == "LOG"]
    assert any(m.startswith("trainer runs on 2 of 2 Ray Train worker(s)") for m in logs), logs
    return r, events, logs


def test_a_round_trains_on_two_ray_train_workers(local_ray: None, tiny_model_dir: Path, tmp_path: Path) -> None:
    workers = Workers(on_ray=True, trainer=Placement(1.0, 0.0))  # the round's training.gpus says 2 workers
    r, events, _ = run_round(workers, tiny_model_dir, tmp_path)
    assert r.promoted, r.reason
    train = tmp_path / "rounds" / round_id(r.name) / "TRAIN"
    args = read_training_info(train / "final")["dpo_config"]
    # 4 pairs per step = 2 workers x 2 micro-batches x 1 pair
    assert (args["per_device_train_batch_size"], args["gradient_accumulation_steps"]) == (1, 2)
    assert args["bf16"] and args["precompute_ref_log_probs"] and args["save_total_limit"] == 1
    steps = [e.progress_done for e in events if e.kind == "PROGRESS" and e.phase == P.TRAIN]
    checkpoints = list((train / "checkpoints").glob("checkpoint-*"))
    assert [c.name for c in checkpoints] == [f"checkpoint-{steps[-1]}"]
    assert not [f for f in checkpoints[0].iterdir() if f.name.startswith(("optimizer", "rng_state", "scheduler"))]


def test_ray_train_rank_0_pushes_the_candidate_into_the_engine_started_beside_the_workers(
    local_ray: None, tiny_model_dir: Path, tmp_path: Path
) -> None:
    engine = EngineSettings(model=Path(), max_num_seqs=4, cpu_kv_cache_gib=1)
    _, _, logs = run_round(Workers(on_ray=True, trainer=Placement(1.0, 0.0), engine=engine), tiny_model_dir, tmp_path)
    assert any(m.startswith("pushed the candidate into engine") and "verified by the probe" in m for m in logs), logs
    assert any(m.startswith("EVALUATE decodes after") and "an engine of the round's" in m for m in logs), logs
    assert not any(m.startswith("the round's engine now holds") for m in logs), logs
