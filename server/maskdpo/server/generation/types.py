"""Request and result shapes of the generation layer (plain dataclasses; picklable across Ray)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from maskdpo.server.generation.errors import InvalidRequestError

MAX_N = 64
"""Most samples one request may ask an engine for."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class SamplingOptions:
    """How to sample. ``choices`` constrains the answer to one of the given strings (structured output)."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    """0 means no top-k cut."""
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = True
    """Return the log-prob of every sampled token."""
    choices: tuple[str, ...] = ()
    ignore_eos: bool = False
    """Keep generating past the end-of-sequence token (benchmarks and tests use it for fixed lengths)."""

    def validate(self) -> None:
        """Raise InvalidRequestError naming the first field out of range."""
        checks = [
            (1 <= self.n <= MAX_N, "n", f"must be between 1 and {MAX_N}"),
            (self.n == 1 or self.temperature > 0, "n", "must be 1 with greedy sampling (temperature 0)"),
            (0.0 <= self.temperature <= 10.0, "temperature", "must be between 0 and 10"),
            (0.0 < self.top_p <= 1.0, "top_p", "must be in (0, 1]"),
            (self.top_k >= 0, "top_k", "must be >= 0 (0: no cut)"),
            (self.max_tokens >= 1, "max_tokens", "must be >= 1"),
            (all(self.stop), "stop", "must not contain empty strings"),
            (all(self.choices), "choices", "must not contain empty strings"),
        ]
        for ok, name, rule in checks:
            if not ok:
                raise InvalidRequestError(f"sampling.{name}", f"{getattr(self, name)!r} {rule}")


@dataclass(frozen=True, slots=True)
class Prompt:
    """Either a raw text prompt or chat messages (the model's chat template is applied to those)."""

    text: str = ""
    messages: tuple[ChatMessage, ...] = ()

    @classmethod
    def chat(cls, messages: Sequence[tuple[str, str]]) -> Prompt:
        return cls(messages=tuple(ChatMessage(role, content) for role, content in messages))


@dataclass(frozen=True, slots=True)
class Sample:
    """One generated completion and the weight version that produced it."""

    index: int
    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    """Log-prob of each sampled token under the served weights (empty when not requested)."""
    finish_reason: str
    """"stop" (end of sequence or a stop string), "length" (max tokens) or "abort"."""
    weight_version: int


@dataclass(frozen=True, slots=True)
class GenerationResult:
    """All samples of one prompt."""

    request_id: str
    prompt_tokens: int
    samples: tuple[Sample, ...]
    weight_version: int


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """New tokens of one sample since the previous delta; ``finished`` marks that sample's last delta."""

    request_id: str
    index: int
    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    finished: bool
    finish_reason: str
    weight_version: int


@dataclass(frozen=True, slots=True)
class WeightVersion:
    """A served set of weights: a number (1 = the model folder the engine started on), the folder of the
    base weights and, when a LoRA adapter is served on top of them, the adapter's folder."""

    version: int
    checkpoint: Path
    adapter: Path | None = None

    @property
    def folder(self) -> Path:
        """The folder that names these weights: the adapter's when one is served, else the checkpoint's."""
        return self.adapter or self.checkpoint


@dataclass(frozen=True, slots=True)
class Weights:
    """Weights a request names instead of the served ones, on the same engine (EVALUATE decodes a round's
    start and its candidate side by side this way): the base weights the engine holds, alone (``adapter``
    None) or with a LoRA adapter folder. Samples of such a request carry weight version 0 unless they
    name exactly what is served."""

    adapter: Path | None = None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    max_model_len: int
    version: WeightVersion
    dtype: str


@dataclass(frozen=True, slots=True)
class DeployReport:
    """What a deploy did: the version now served, the verification figures and the timings."""

    accepted: bool
    served: WeightVersion
    candidate: Path
    max_abs_diff: float
    tolerance: float
    probe_tokens: int
    load_s: float
    verify_s: float
    paused_s: float
    error: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    mean_abs_diff: float = 0.0
    statistic: str = "max"
    """Which difference the tolerance bounds: "max" (float32 engines) or "mean" (16-bit engines)."""
