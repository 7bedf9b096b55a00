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

``deploy(adapter folder)`` (a LoRA adapter, on an engine started with ``max_lora_rank`` > 0) swaps without
pausing anyone: the adapter is checked (rank, files) and scored with transformers + peft on the base
weights, loaded into the running engine beside the served one, scored there and compared the same way;
pass -> new requests run on it under the next version (requests already admitted finish on the adapter
they started with); fail -> it is unloaded and the previous weights keep serving. Milliseconds to seconds,
instead of a reload of every weight.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from maskdpo.server.generation import errors
from maskdpo.server.generation.engine import GenerationEngine
from maskdpo.server.generation.types import DeployReport, Weights, WeightVersion
from maskdpo.server.generation.verify import (
    ProbeCheck,
    compare,
    default_tolerance,
    is_full_precision,
    probe_token_ids,
    reference_logprobs,
    trained_reference,
)
from maskdpo.server.generation.weights import check_adapter, check_compatible, is_adapter


class Deployer:
    """Owns the weight versions of one engine."""

    def __init__(self, engine: GenerationEngine, tolerance: float | None = None) -> None:
        self.engine = engine
        self.tolerance = default_tolerance(engine.settings.dtype) if tolerance is None else tolerance
        self.statistic = "max" if is_full_precision(engine.settings.dtype) else "mean"
        self.probe = probe_token_ids(engine.tokenizer, engine.max_model_len)
        self._references: dict[tuple[Path, Path | None], list[float]] = {}
        self._lock = asyncio.Lock()
        self.history: list[DeployReport] = []

    @property
    def deploying(self) -> bool:
        return self._lock.locked()

    async def _reference(self, checkpoint: Path, adapter: Path | None = None) -> list[float]:
        """The probe's reference log-probs of these weights: the ones their trainer saved beside them when
        they fit this probe and this engine's precision, else computed with transformers here."""
        key = (checkpoint, adapter)
        if key not in self._references:
            saved = trained_reference(adapter or checkpoint, self.probe, self.statistic == "max")
            self._references[key] = saved if saved is not None else await asyncio.to_thread(
                reference_logprobs, checkpoint, self.probe, adapter)
        return self._references[key]

    async def verify_served(self) -> ProbeCheck:
        """Check the currently served weights against their checkpoint (e.g. right after start)."""
        served = self.engine.version
        expected = await self._reference(served.checkpoint, served.adapter)
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
            tolerance = self.tolerance if tolerance is None else tolerance
            if is_adapter(checkpoint):
                return await self._deploy_adapter(checkpoint.resolve(), tolerance, version)
            return await self._deploy(checkpoint.resolve(), tolerance, version)

    async def _deploy_adapter(self, adapter: Path, tolerance: float, version: int | None) -> DeployReport:
        previous = self.engine.version
        t0 = time.perf_counter()
        await asyncio.to_thread(check_adapter, adapter, self.engine.settings.max_lora_rank)
        expected = await self._reference(previous.checkpoint, adapter)
        old_expected = await self._reference(previous.checkpoint, previous.adapter)
        before = await self.engine.score(self.probe)
        t_ref = time.perf_counter()
        await self.engine.adapter_request(adapter)
        load_s = time.perf_counter() - t_ref
        check = compare(await self.engine.score(self.probe, Weights(adapter)), expected, tolerance,
                        statistic=self.statistic, previous_expected=old_expected, served_before=before)
        verify_s = time.perf_counter() - t_ref - load_s
        if check.passed:
            self.engine.set_version(WeightVersion(version or previous.version + 1, previous.checkpoint, adapter))
        report = DeployReport(
            accepted=check.passed,
            served=self.engine.version,
            candidate=adapter,
            max_abs_diff=check.max_abs_diff,
            tolerance=tolerance,
            probe_tokens=len(self.probe),
            load_s=load_s,
            verify_s=verify_s,
            paused_s=0.0,
            error=check.reason,
            timings={"prepare_s": t_ref - t0, "total_s": time.perf_counter() - t0},
            mean_abs_diff=check.mean_abs_diff,
            statistic=self.statistic,
        )
        self.history.append(report)
        if not check.passed:
            raise errors.VerificationError(
                f"adapter {adapter} refused; version {previous.version} keeps serving: {check.reason} "
                f"(max |diff| {check.max_abs_diff:.3g}, mean {check.mean_abs_diff:.3g}; tolerance "
                f"{tolerance:.3g} on the {self.statistic})"
            )
        return report

    async def _deploy(self, checkpoint: Path, tolerance: float, version: int | None = None) -> DeployReport:
        previous = self.engine.version
        t0 = time.perf_counter()
        await asyncio.to_thread(check_compatible, checkpoint, previous.checkpoint)
        expected = await self._reference(checkpoint)
        old_expected = await self._reference(previous.checkpoint, previous.adapter)
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
                    await self.engine.score(self.probe, Weights(None)),  # the new weights, no adapter on them
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

    async def adopt_pushed(self, reference: Path, served_as: Path, tolerance: float | None = None) -> DeployReport:
        """Verify weights just pushed into the engine (:meth:`GenerationEngine.push_finish`) against the probe
        reference of ``reference`` (the folder the trainer saved them to), then serve them as the next version,
        named ``served_as`` (where that folder will be kept). A mismatch reloads the previous version from its
        checkpoint and raises VerificationError."""
        async with self._lock:
            previous, t0 = self.engine.version, time.perf_counter()
            tolerance = self.tolerance if tolerance is None else tolerance
            await asyncio.to_thread(check_compatible, reference, previous.checkpoint)
            expected = await self._reference(reference)
            check = compare(await self.engine.score(self.probe, Weights(None)), expected, tolerance,
                            statistic=self.statistic)
            verify_s = time.perf_counter() - t0
            if check.passed:
                self.engine.set_version(WeightVersion(previous.version + 1, served_as))
            else:
                await self._rollback(previous, await self._reference(previous.checkpoint, previous.adapter))
            report = DeployReport(
                accepted=check.passed, served=self.engine.version, candidate=served_as,
                max_abs_diff=check.max_abs_diff, tolerance=tolerance, probe_tokens=len(self.probe), load_s=0.0,
                verify_s=verify_s, paused_s=0.0, error=check.reason, timings={"total_s": verify_s},
                mean_abs_diff=check.mean_abs_diff, statistic=self.statistic,
            )
            self.history.append(report)
            if not check.passed:
                raise errors.VerificationError(
                    f"pushed weights of {reference} refused; version {previous.version} is back: {check.reason} "
                    f"(max |diff| {check.max_abs_diff:.3g}; tolerance {tolerance:.3g} on the {self.statistic})"
                )
            return report

    async def _rollback(self, previous: WeightVersion, expected: list[float]) -> None:
        try:
            await self.engine.load_weights(previous.checkpoint)
            self.engine.set_version(previous)  # its adapter (if any) again, for the check below
            check = compare(await self.engine.score(self.probe), expected, self.tolerance, statistic=self.statistic)
        except Exception as exc:
            raise errors.EngineDeadError(f"rollback to version {previous.version} failed: {exc}") from None
        if not check.passed:
            raise errors.EngineDeadError(
                f"rollback to version {previous.version} does not verify: {check.reason}"
            )
        self.engine.set_version(previous)
