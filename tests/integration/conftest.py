"""A real maskdpo server for integration tests: ``maskdpo serve`` in its own process, on a free port, with
a real local Ray cluster, the kb and heuristic judges, and two tokens (a reader and an operator)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from maskdpo.server.launcher import ServerProcess

READER = "reader-token-for-tests"
OPERATOR = "operator-token-for-tests"
ENV = {
    "MASKDPO_TOKENS": f'{{"{READER}": "reader", "{OPERATOR}": "operator"}}',
    "MASKDPO_MAX_TEXT_CHARS": "5000",
    "MASKDPO_MAX_BATCH_ITEMS": "16",
    "MASKDPO_MAX_MESSAGE_BYTES": str(1024 * 1024),
    "MASKDPO_DRAIN_SECONDS": "20",
}
ARGS = ["--judge", "kb", "--judge", "heuristic", "--default-judge", "heuristic"]


def start_server_process(workdir: Path) -> ServerProcess:
    return ServerProcess.start(workdir, ARGS, ENV)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with start_server_process(tmp_path_factory.mktemp("server")) as running:
        yield running
