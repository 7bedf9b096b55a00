"""Verified hot-swap of a running engine's weights, with rollback.

``deploy(checkpoint)``:
1. refuse a second deploy while one runs (:class:`DeployConflictError`);
2. check the folder against the served architecture (headers only) and score the probe with transformers
   on it (a checkpoint that does not load is refused here, before the engine is touched);
3. close admission and drain the running requests (they finish on the old weights and carry its version);
4. reload the weights in place (vLLM ``reload_weights`` on every worker: no restart, same KV cache);
5. score the probe on the served engine and compare (:mod:`.verify`); pass -> bump the version;
   fail -> reload the previous weights, re-verify them, raise;
6. reopen admission.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from maskdpo.server.generation import errors
from maskdpo.server.generation.engine import GenerationEngine
from maskdpo.server.generation.types import DeployReport, WeightVersion
from maskdpo.server.generation.verify import (
    ProbeCheck,
    compare,
    default_tolerance,
    is_full_precision,
    probe_token_ids,
    reference_logprobs,
)
from maskdpo.server.generation.weights import check_compatible


class Deployer:
    """Owns the weight versions of one engine."""

    def __init__(self, engine: GenerationEngine, tolerance: float | None = None) -> None:
        self.engine = engine
        self.tolerance = default_tolerance(engine.settings.dtype) if tolerance is None else tolerance
        self.statistic = "max" if is_full_precision(engine.settings.dtype) else "mean"
        self.probe = probe_token_ids(engine.tokenizer, engine.max_model_len)
        self._references: dict[Path, list[float]] = {}
        self._lock = asyncio.Lock()
        self.history: list[DeployReport] = []

    @property
    def deploying(self) -> bool:
        return self._lock.locked()

    async def _reference(self, checkpoint: Path) -> list[float]:
        if checkpoint not in self._references:
            self._references[checkpoint] = await asyncio.to_thread(reference_logprobs, checkpoint, self.probe)
        return self._references[checkpoint]

    async def verify_served(self) -> ProbeCheck:
        """Check the currently served weights against their checkpoint (e.g. right after start)."""
        expected = await self._reference(self.engine.version.checkpoint)
        return compare(await self.engine.score(self.probe), expected, self.tolerance, statistic=self.statistic)

    async def deploy(self, checkpoint: Path, tolerance: float | None = None,
                     version: int | None = None) -> DeployReport:
        """Deploy ``checkpoint``; ``tolerance`` overrides the engine's default for this deploy only.

        ``version`` restores a recorded weight version (a restarted server bringing back what it served)
        instead of taking the next one.
        """
        if self._lock.locked():
            raise errors.DeployConflictError(
                f"a deploy is already running on model {self.engine.settings.name}"
            )
        async with self._lock:
            return await self._deploy(checkpoint.resolve(), self.tolerance if tolerance is None else tolerance,
                                      version)

    async def _deploy(self, checkpoint: Path, tolerance: float, version: int | None = None) -> DeployReport:
        previous = self.engine.version
        t0 = time.perf_counter()
        await asyncio.to_thread(check_compatible, checkpoint, previous.checkpoint)
        expected = await self._reference(checkpoint)
        old_expected = await self._reference(previous.checkpoint)
        # The engine's scores on the weights it serves now, taken before admission closes (only a deploy
        # changes the weights, and this one holds the lock); the first probe on an engine is slow (4 s
        # measured on SmolLM2 in bfloat16), which would otherwise pause admission.
        before = await self.engine.score(self.probe)
        t_ref = time.perf_counter()
        load_s = verify_s = 0.0
        async with self.engine.swap_gate() as drain_s:
            t_paused = time.perf_counter()
            try:
                await self.engine.load_weights(checkpoint)
                load_s = time.perf_counter() - t_paused
                check = compare(
                    await self.engine.score(self.probe),
                    expected,
                    tolerance,
                    statistic=self.statistic,
                    previous_expected=old_expected,
                    served_before=before,
                )
                verify_s = time.perf_counter() - t_paused - load_s
                failure = "" if check.passed else check.reason
            except errors.EngineDeadError:
                raise
            except Exception as exc:  # the engine refused the weights: roll back below
                check, failure = ProbeCheck(float("inf"), float("inf"), float("nan"), False, ""), str(exc)
            if not failure:
                self.engine.set_version(WeightVersion(version or previous.version + 1, checkpoint))
            else:
                await self._rollback(previous, old_expected)
            paused_s = time.perf_counter() - t_paused + drain_s
        report = DeployReport(
            accepted=not failure,
            served=self.engine.version,
            candidate=checkpoint,
            max_abs_diff=check.max_abs_diff,
            tolerance=tolerance,
            probe_tokens=len(self.probe),
            load_s=load_s,
            verify_s=verify_s,
            paused_s=paused_s,
            error=failure,
            timings={"prepare_s": t_ref - t0, "drain_s": drain_s, "total_s": time.perf_counter() - t0},
            mean_abs_diff=check.mean_abs_diff,
            statistic=self.statistic,
        )
        self.history.append(report)
        if failure:
            message = (
                f"deploy of {checkpoint} rolled back to version {previous.version}: {failure} "
                f"(max |diff| {check.max_abs_diff:.3g}, mean {check.mean_abs_diff:.3g}; "
                f"tolerance {tolerance:.3g} on the {self.statistic})"
            )
            raise (
                errors.VerificationError(message)
                if check.max_abs_diff != float("inf")
                else errors.CheckpointError(message)
            )
        return report

    async def _rollback(self, previous: WeightVersion, expected: list[float]) -> None:
        try:
            await self.engine.load_weights(previous.checkpoint)
            check = compare(await self.engine.score(self.probe), expected, self.tolerance, statistic=self.statistic)
        except Exception as exc:
            raise errors.EngineDeadError(f"rollback to version {previous.version} failed: {exc}") from None
        if not check.passed:
            raise errors.EngineDeadError(
                f"rollback to version {previous.version} does not verify: {check.reason}"
            )
        self.engine.set_version(previous)
