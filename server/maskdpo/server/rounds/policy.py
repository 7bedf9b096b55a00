"""The weights a round works with: full weights, or a LoRA adapter on the base it was trained on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maskdpo.server.generation.types import Weights


@dataclass(frozen=True)
class Policy:
    """Weights a round works with: full weights (``base``), or ``base`` with a LoRA ``adapter``."""

    base: Path
    adapter: Path | None = None

    @property
    def folder(self) -> Path:
        return self.adapter or self.base

    def weights(self) -> Weights:
        """The same weights, named per request on an engine that holds ``base``."""
        return Weights(self.adapter)

    def as_dict(self) -> dict[str, str]:
        return {"policy": str(self.folder), "policy_base": str(self.base),
                "policy_adapter": str(self.adapter or "")}

    @classmethod
    def of(cls, summary: dict[str, Any]) -> Policy:
        """The policy a phase summary recorded (:meth:`as_dict`)."""
        adapter = summary.get("policy_adapter") or ""
        return cls(Path(summary.get("policy_base") or summary["policy"]), Path(adapter) if adapter else None)
