"""The reliability suite: fuzzing, load, auth and TLS, power cuts, against real ``maskdpo serve`` processes.

Two sizes. ``make test`` runs the short configuration (enough to catch a regression in a few minutes on
2 cores); ``make reliability`` sets ``MASKDPO_RELIABILITY=full`` and runs the same tests at the sizes whose
figures the README reports. Every test reads its sizes from the ``scale`` fixture, never from constants.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from maskdpo.server.launcher import ServerProcess

REPO = Path(__file__).resolve().parents[2]
TOY_MODEL = REPO / "toyworld" / "maskdpo" / "toyworld" / "model"
READER = "reader-token-for-reliability"
OPERATOR = "operator-token-for-reliability"
GENERATION_QUEUE = 48
TOKENS_ENV = {"MASKDPO_TOKENS": f'{{"{READER}": "reader", "{OPERATOR}": "operator"}}'}


@dataclass(frozen=True)
class Scale:
    """How hard the suite pushes; ``full`` is what ``make reliability`` runs and the README reports."""

    full: bool
    fuzz_examples: int       # hypothesis examples per RPC
    load_clients: int        # concurrent clients in the load run
    load_seconds: float      # how long the load run lasts
    power_cuts: int          # SIGKILLs in the store power-cut test


SHORT = Scale(full=False, fuzz_examples=25, load_clients=32, load_seconds=15.0, power_cuts=2)
FULL = Scale(full=True, fuzz_examples=300, load_clients=32, load_seconds=120.0, power_cuts=10)


@pytest.fixture(scope="session")
def scale() -> Scale:
    return FULL if os.environ.get("MASKDPO_RELIABILITY", "").lower() == "full" else SHORT


@pytest.fixture(scope="session")
def toy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the suite's scoring and generation traffic: kb + heuristic judges, the toy model,
    a reader and an operator token."""
    args = ["--judge", "kb", "--judge", "heuristic", "--default-judge", "heuristic",
            "--model", f"toy={TOY_MODEL}"]
    env = {**TOKENS_ENV, "MASKDPO_MAX_BATCH_ITEMS": "16", "MASKDPO_MAX_TEXT_CHARS": "5000",
           "MASKDPO_MAX_MESSAGE_BYTES": str(1024 * 1024),
           # Above the load test's clients (one call each in flight), below its overload burst.
           "MASKDPO_GENERATOR_MAX_QUEUED_REQUESTS": str(GENERATION_QUEUE)}
    with ServerProcess.start(tmp_path_factory.mktemp("reliability-server"), args, env, timeout=600) as server:
        yield server


@pytest.fixture(scope="session")
def serving_toy_server(toy_server: ServerProcess) -> ServerProcess:
    """``toy_server`` once its engine has started (GenerationService SERVING), for tests that generate."""
    toy_server.wait_serving()
    return toy_server
