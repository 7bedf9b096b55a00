"""Per-step kept-token fractions, held as the batches' count tensors until the trainer logs.

Reading a device tensor's value (``.item()``) in the middle of a step makes the host wait for the device.
The collator counts each row's completion tokens before and after masking on the host
(:data:`maskdpo.trainer.collator.TOKEN_COUNTS_KEY`); the trainer only keeps a reference to that small
tensor per step and turns the lot into fractions when it logs, with one copy to the host.
"""

from __future__ import annotations

import torch

ROLES = ("chosen", "rejected")


def metric_name(role: str) -> str:
    return f"mask/kept_fraction_{role}"


class KeptTokenMetrics:
    """Kept-token fractions per step and role, materialised only when asked for."""

    def __init__(self) -> None:
        self._pending: dict[str, list[torch.Tensor]] = {"train": [], "eval": []}

    def record(self, mode: str, token_counts: torch.Tensor) -> None:
        """Remember one step's ``(2 * pairs, 2)`` counts (completion tokens, kept tokens per row)."""
        self._pending[mode].append(token_counts.detach())

    def drain(self, mode: str) -> dict[str, list[float]]:
        """The fractions of every step recorded in ``mode`` since the last drain, per metric name.

        A step's fraction for a role is its kept tokens over its completion tokens, over all rows of that
        role (0 when a side has no completion token).
        """
        pending, self._pending[mode] = self._pending[mode], []
        if not pending:
            return {}
        # per step: (role, [completion, kept]) summed over the role's rows; one host copy for all steps
        sums = torch.stack([counts.view(2, -1, 2).sum(dim=1) for counts in pending]).cpu()
        fractions = sums[..., 1].double() / sums[..., 0].clamp(min=1).double()
        return {metric_name(role): fractions[:, i].tolist() for i, role in enumerate(ROLES)}
