"""Typed errors of the generation layer (plain exceptions; the service maps them to status codes).

Every error pickles with its fields intact, so it crosses Ray actor boundaries unchanged.
"""

from __future__ import annotations


class GenerationError(Exception):
    """Base class of every error this package raises on purpose."""

    def __reduce__(self) -> tuple[type[GenerationError], tuple[str]]:
        return (type(self), (str(self),))


class InvalidRequestError(GenerationError, ValueError):
    """A request field is out of range: ``field`` names it (``prompt``, ``sampling.top_p``, ``request``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message

    def __reduce__(self) -> tuple[type[InvalidRequestError], tuple[str, str]]:  # type: ignore[override]
        return (type(self), (self.field, self.reason))


class PromptTooLongError(InvalidRequestError):
    """The prompt leaves no room to generate within the model's maximum length."""

    def __init__(self, prompt_tokens: int, max_model_len: int) -> None:
        super().__init__(
            "prompt",
            f"{prompt_tokens} tokens; the model's maximum length is {max_model_len} tokens "
            "(prompt plus at least one generated token)",
        )
        self.prompt_tokens = prompt_tokens
        self.max_model_len = max_model_len

    def __reduce__(self) -> tuple[type[PromptTooLongError], tuple[int, int]]:  # type: ignore[override]
        return (type(self), (self.prompt_tokens, self.max_model_len))


class QueueFullError(GenerationError):
    """The admission queue is full; retry after ``retry_after_s`` seconds."""

    def __init__(self, retry_after_s: float, limit: int = 0) -> None:
        super().__init__(
            f"generation queue is full ({limit} requests admitted); retry in {retry_after_s:.1f} s"
        )
        self.retry_after_s = retry_after_s
        self.limit = limit

    def __reduce__(self) -> tuple[type[QueueFullError], tuple[float, int]]:  # type: ignore[override]
        return (type(self), (self.retry_after_s, self.limit))


class RequestAbortedError(GenerationError):
    """The request was aborted by the server (shutdown, or a weight swap that could not wait for it)."""


class EngineAsleepError(GenerationError):
    """The engine sleeps while a round trains on its GPU; retry when the round has trained."""


class EngineDeadError(GenerationError):
    """The engine stopped working; nothing more can be served until it is restarted."""


class CheckpointError(GenerationError):
    """A checkpoint folder is missing, unreadable, or does not fit the served architecture."""


class VerificationError(GenerationError):
    """The served engine's probe log-probs do not match the checkpoint's (weights were rolled back)."""


class DeployConflictError(GenerationError):
    """A deploy is already running on this model."""
