"""RoundController: owns the round store and runs rounds, in this process or as a detached Ray actor.

Creation validates the config, makes the operation (idempotent by ``request_id``, kind ``round``), inserts
the round (one active round per model: a second one is refused with ABORTED / Conflict -- not queued, so a
caller never waits behind work it cannot see) and starts it. A round runs its phases in order; each phase
works in ``<round>/.<PHASE>.work``, which is flushed to disk and renamed to ``<round>/<PHASE>`` before the
phase is marked done in the same transaction as its artifacts and results (so a power cut never leaves a
phase marked done with empty artifact files). On start the controller resumes every unfinished
round at its first unfinished phase (TRAIN from its last checkpoint) and finishes operations whose round
already ended. A phase tried ``max_attempts`` times ends the round FAILED.

Ray: :func:`get_or_create_controller` starts the actor detached (it outlives the server process) and
restartable (``max_restarts=-1``); the restarted actor resumes on its first call.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskdpo.server.errors import Cancelled, Conflict, FailedPrecondition, InvalidArgument, ServiceError
from maskdpo.server.rounds import (
    datasets,
    phase_evaluate,
    phase_judge,
    phase_pair,
    phase_promote,
    phase_sample,
    phase_train,
)
from maskdpo.server.rounds.config import Promotion, RoundSpec, validate_config
from maskdpo.server.rounds.context import PhaseFailed, PhaseOutput, RoundCancelled, RoundContext
from maskdpo.server.rounds.workers import Generator, Judges, NamedGenerator, Workers
from maskdpo.server.store.checkpoints import CheckpointStore
from maskdpo.server.store.layout import DataDir
from maskdpo.server.store.operations import OperationStore
from maskdpo.server.store.rounds import (
    ACTIVE,
    CANCELLED,
    FAILED,
    PREFIX,
    SUCCEEDED,
    TERMINAL,
    RoundStore,
    phase_name,
    round_id,
    state_name,
)
from maskdpo.server.workers.generator_actor import generator_names
from maskdpo.server.workers.judge_pool import JudgePool
from maskdpo.server.workers.ray_runtime import remote_error, worker_lost
from maskdpo.trainer import durable
from maskdpo.trainer.retention import drop_resume_state
from maskdpo.v1 import alignment_pb2

log = logging.getLogger("maskdpo.rounds")


P = alignment_pb2.RoundPhase
PhaseFn = Callable[[RoundContext, Path], Awaitable[PhaseOutput]]
ORDER: tuple[tuple[int, PhaseFn], ...] = (
    (P.SAMPLE, phase_sample.sample),
    (P.JUDGE, phase_judge.judge),
    (P.PAIR, phase_pair.pair),
    (P.TRAIN, phase_train.train),
    (P.EVALUATE, phase_evaluate.evaluate),
    (P.PROMOTE, phase_promote.promote),
)
KIND = "round"


@dataclass(frozen=True)
class ControllerSettings:
    data_dir: Path
    default_judge: str = "kb"
    judges: tuple[str, ...] = ()
    """The judge backends the server hosts (its Judge actors, found by name)."""
    judge_replicas: int = 1
    promotion: Promotion = field(default_factory=Promotion)
    workers: Workers = field(default_factory=Workers)
    save_steps: int = 0
    """Trainer checkpoint interval in steps; 0 = a quarter of the round's steps."""
    keep_checkpoints: int = 2
    """TRAIN keeps its last N checkpoints."""
    serving_dtype: str = "auto"
    """dtype of the candidate's weights (``maskdpo.trainer.serving_weights``)."""
    max_attempts: int = 3
    generator_replicas: int = 1
    """Generator actors per model (the server's ``generator_replicas``)."""
    generator_wait_s: float = 900.0
    """How long a round waits for the server's generator or judges to exist (a server still starting)."""
    report: bool = True
    retry_pause_s: float = 2.0
    """Pause before a phase runs again after a lost worker."""


class RoundController:
    def __init__(self, settings: ControllerSettings, generators: dict[str, Generator] | None = None,
                 judges: Judges | None = None) -> None:
        """``generators`` and ``judges`` default to the server's actors, found by name."""
        self.settings = settings
        self.judges = judges or JudgePool.named(settings.data_dir, settings.judges, settings.judge_replicas,
                                                settings.generator_wait_s)
        self.store = RoundStore(DataDir(settings.data_dir).rounds_db)
        self.ops = OperationStore(DataDir(settings.data_dir).operations)
        self.checkpoints = CheckpointStore(DataDir(settings.data_dir).models)
        self._generators: dict[str, Generator] = dict(generators or {})
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancel: set[str] = set()
        self._create_lock = asyncio.Lock()
        self._started = False
        self.store.listener = self.sync_metadata

    # -- public -----------------------------------------------------------------------------------------
    async def start(self) -> list[str]:
        """Resume unfinished rounds (once); returns their names."""
        if self._started:
            return []
        self._started = True
        for name in self.ops.unfinished(KIND):
            rid = self._round_of_operation(name)
            if rid is None or not self.store.exists(rid):  # crashed between the two inserts
                self.ops.finish(
                    name, error=FailedPrecondition("the round was never created; create it again")
                )
            elif self.store.row(rid)["state"] in TERMINAL:
                self._finish_operation(rid)
        resumed = self.store.active()
        for rid in resumed:
            self.store.record(rid, "LOG", self.store.row(rid)["phase"], "controller (re)started: resuming")
            self._launch(rid)
        return [PREFIX + r for r in resumed]

    def spec_of(self, config: alignment_pb2.RoundConfig) -> RoundSpec:
        return validate_config(config, datasets.names(), None, self.settings.promotion)

    async def create(self, config: alignment_pb2.RoundConfig, request_id: str = "") -> Any:
        """The round's Operation (an existing one for a known request_id); InvalidArgument / Conflict."""
        await self.start()
        async with self._create_lock:
            spec = self.spec_of(config)
            if spec.start_from_round:
                self._check_start_round(spec)
            rid = uuid.uuid4().hex[:16]
            meta = alignment_pb2.AlignmentRoundMetadata(
                round=PREFIX + rid, state=alignment_pb2.AlignmentRound.PENDING
            )
            op, created = self.ops.create(KIND, meta, request_id)
            if not created:
                return self.ops.get(op)
            try:
                self.store.insert(rid, op, config)
            except Conflict as exc:
                self.ops.finish(op, error=exc)
                raise
            self._launch(rid)
            return self.ops.get(op)

    async def cancel(self, name: str) -> alignment_pb2.AlignmentRound:
        await self.start()
        rid = round_id(name)
        row = self.store.row(rid)
        if row["state"] not in TERMINAL:
            self._cancel.add(rid)
            self.ops.request_cancel(row["operation"])
            self.store.record(rid, "LOG", row["phase"], "cancellation requested")
        return self.store.get(rid)

    async def wait(self, name: str, timeout: float | None = None) -> alignment_pb2.AlignmentRound:
        task = self._tasks.get(round_id(name))
        if task is not None:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        return self.store.get(round_id(name))

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self.store.close()
        self.ops.close()
        self.checkpoints.close()

    # -- running ------------------------------------------------------------------------------------------
    def _check_start_round(self, spec: RoundSpec) -> None:
        field_name = "config.start_from_round"
        try:
            row = self.store.row(round_id(spec.start_from_round))
        except ServiceError:
            raise InvalidArgument(field_name, f"{spec.start_from_round} does not exist") from None
        if row["state"] != SUCCEEDED:
            raise InvalidArgument(field_name, f"{spec.start_from_round} has not succeeded")
        if row["model"] != spec.model:
            raise InvalidArgument(
                field_name, f"{spec.start_from_round} aligned {row['model']}, not {spec.model}"
            )

    def _launch(self, rid: str) -> None:
        if rid not in self._tasks or self._tasks[rid].done():
            self._tasks[rid] = asyncio.get_running_loop().create_task(self._run(rid), name=f"round-{rid}")

    def _cancel_requested(self, rid: str, operation: str) -> bool:
        if rid in self._cancel:
            return True
        if self.ops.cancel_requested(operation):
            self._cancel.add(rid)
            return True
        return False

    def _generator(self, model_id: str) -> Generator:
        """The model's Generator actor, found by its name (given ones first: tests, in-process use)."""
        if model_id not in self._generators:
            names = generator_names(self.settings.data_dir, model_id, self.settings.generator_replicas)
            self._generators[model_id] = NamedGenerator(names, model_id, self.settings.generator_wait_s)
        return self._generators[model_id]

    async def _run(self, rid: str) -> None:
        row = self.store.row(rid)
        phase = row["phase"]
        ctx: RoundContext | None = None
        try:
            spec = self.spec_of(self.store.config(rid))
            ctx = RoundContext(
                rid,
                spec,
                DataDir(self.settings.data_dir).round_folder(rid),
                self.store,
                self._generator(spec.model_id),
                self.checkpoints,
                lambda: self._cancel_requested(rid, row["operation"]),
                self.judges,
                self.settings.default_judge,
                self.settings.workers,
                self.settings.save_steps,
                self.settings.keep_checkpoints,
                self.settings.serving_dtype,
            )
            done = set(self.store.done_phases(rid))
            for phase, fn in ORDER:
                if phase in done:
                    continue
                ctx.check_cancel()
                await self._run_phase_retrying(ctx, phase, fn)
            reason = self.store.row(rid)["reason"]
            await self._end(rid, SUCCEEDED, reason, phase)
        except asyncio.CancelledError:
            raise
        except RoundCancelled as exc:
            await self._end(rid, CANCELLED, f"{exc}; nothing was promoted", phase)
        except (PhaseFailed, ServiceError) as exc:
            await self._end(rid, FAILED, f"{phase_name(phase)}: {exc}", phase)
        except Exception as exc:
            log.exception("round %s failed in %s", rid, phase_name(phase))
            await self._end(rid, FAILED, f"{phase_name(phase)}: {remote_error(exc)}", phase)
        finally:
            if ctx is not None:
                ctx.close()
                try:
                    await ctx.release()
                except Exception:  # a lost engine: nothing left to stop
                    log.warning("round %s: stopping its spare engine failed", rid, exc_info=True)

    async def _run_phase_retrying(self, ctx: RoundContext, phase: int, fn: PhaseFn) -> None:
        """Run the phase; when a worker is lost (its node died, its process crashed) run it again, from its
        last checkpoint for TRAIN, until the phase's attempts are spent (then the round ends FAILED)."""
        while True:
            try:
                await self._run_phase(ctx, phase, fn)
                return
            except Exception as exc:
                if not worker_lost(exc):
                    raise
                ctx.close()  # actors on the lost node are gone; the next attempt starts new ones
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                self.store.record(
                    ctx.rid, "LOG", phase,
                    f"lost a worker during {phase_name(phase)} ({type(exc).__name__}: {first_line[:200]}); "
                    "trying the phase again",
                )
                await asyncio.sleep(self.settings.retry_pause_s)

    async def _run_phase(self, ctx: RoundContext, phase: int, fn: PhaseFn) -> None:
        name = phase_name(phase)
        attempts = self.store.start_phase(ctx.rid, phase)
        if attempts > self.settings.max_attempts:
            raise PhaseFailed(f"gave up after {attempts - 1} attempts")
        final, work = _phase_folders(ctx.root, name)
        if final.exists():  # renamed before a crash, never marked done: its work is redone
            if phase == P.TRAIN and not work.exists():
                os.rename(final, work)
            else:
                shutil.rmtree(final)
        if work.exists() and phase != P.TRAIN:  # TRAIN keeps its checkpoints to resume from
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        out = await fn(ctx, work)
        await asyncio.to_thread(durable.flush_tree, work)  # on disk before the store calls the phase done
        os.rename(work, final)
        durable.flush(ctx.root)
        artifacts = {key: final / rel for key, rel in out.artifacts.items()}
        self.store.finish_phase(ctx.rid, phase, out.summary, artifacts, out.metrics, **out.updates)

    async def _end(self, rid: str, state: int, reason: str, phase: int) -> None:
        for folder in _phase_folders(DataDir(self.settings.data_dir).round_folder(rid), phase_name(P.TRAIN)):
            drop_resume_state(folder / "checkpoints")  # nothing resumes an ended round
        report = ""
        if self.settings.report:
            try:
                from maskdpo.server.rounds.report import write_report

                report = str(
                    await asyncio.to_thread(
                        write_report, self.store, rid, self.settings.data_dir, reason, state
                    )
                )
            except Exception:
                log.exception("report of round %s could not be written", rid)
        word = state_name(state)
        self.store.record(
            rid,
            "ROUND_ENDED",
            phase,
            f"{word}: {reason}",
            state=state,
            reason=reason,
            end_time=time.time(),
            report_path=report,
        )
        self._finish_operation(rid)
        self._cancel.discard(rid)

    def _finish_operation(self, rid: str) -> None:
        row = self.store.row(rid)
        meta = self.store.metadata(rid)
        if row["state"] == SUCCEEDED:
            self.ops.finish(row["operation"], response=self.store.get(rid), metadata=meta)
        elif row["state"] == CANCELLED:
            self.ops.finish(row["operation"], error=Cancelled(row["reason"]), metadata=meta)
        else:
            self.ops.finish(row["operation"], error=FailedPrecondition(row["reason"]), metadata=meta)

    def _round_of_operation(self, operation: str) -> str | None:
        meta = alignment_pb2.AlignmentRoundMetadata()
        self.ops.get(operation).metadata.Unpack(meta)
        return round_id(meta.round) if meta.round else None

    def sync_metadata(self, rid: str) -> None:
        row = self.store.row(rid)
        if row["state"] in ACTIVE:
            self.ops.update_metadata(row["operation"], self.store.metadata(rid))


__all__ = ["ControllerSettings", "RoundController"]


def _phase_folders(root: Path, name: str) -> tuple[Path, Path]:
    """A phase's folder and the one it works in until it is done."""
    return root / name, root / f".{name}.work"
