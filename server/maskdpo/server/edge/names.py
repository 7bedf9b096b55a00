"""Resource names of the contract and the ids inside them: the one definition of each pattern.

``models/{model}`` (a served model id: 1-63 of a-z, 0-9, '-', '_', '.', starting alphanumeric),
``rounds/{round}`` (hex), ``models/{model}/checkpoints/{checkpoint}``.
"""

from __future__ import annotations

import re

from maskdpo.server.errors import InvalidArgument

MODEL_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
MODEL_ID_RULE = "1-63 of a-z, 0-9, '-', '_', '.', starting alphanumeric"
MODEL_NAME = re.compile(rf"models/({MODEL_ID.pattern})")
ROUND_NAME = re.compile(r"rounds/([a-f0-9]{1,64})")
CHECKPOINT_NAME = re.compile(r"models/([^/]+)/checkpoints/([^/]+)")


def parse_checkpoint_name(name: str, field: str) -> tuple[str, str]:
    """(model, checkpoint id) of ``models/{model}/checkpoints/{id}``."""
    match = CHECKPOINT_NAME.fullmatch(name)
    if match is None:
        raise InvalidArgument(field, f"expected 'models/<model>/checkpoints/<id>', got {name[:80]!r}")
    return match.group(1), match.group(2)
