"""A real maskdpo server for integration tests: ``maskdpo serve`` in its own process, on a free port, with
a real local Ray cluster, the kb and heuristic judges, and two tokens (a reader and an operator)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

READER = "reader-token-for-tests"
OPERATOR = "operator-token-for-tests"


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_server_process(tmp: Path, extra_env: dict[str, str] | None = None,
                         extra_args: list[str] | None = None) -> ServerProcess:
    ready = tmp / "ready"
    log = tmp / "server.log"
    env = dict(os.environ, MASKDPO_TOKENS=f'{{"{READER}": "reader", "{OPERATOR}": "operator"}}',
               MASKDPO_MAX_TEXT_CHARS="5000", MASKDPO_MAX_BATCH_ITEMS="16",
               MASKDPO_MAX_MESSAGE_BYTES=str(1024 * 1024), MASKDPO_DRAIN_SECONDS="20", **(extra_env or {}))
    cmd = [sys.executable, "-m", "maskdpo.client.cli", "serve", "--port", "0", "--data-dir", str(tmp / "data"),
           "--judge", "kb", "--judge", "heuristic", "--default-judge", "heuristic", "--ready-file", str(ready),
           *(extra_args or [])]
    process = subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 180
    while not ready.exists() or not ready.read_text().strip():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)
    return ServerProcess(process, int(ready.read_text()), log)


def stop_server_process(server: ServerProcess) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(10)
    return server.process.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    running = start_server_process(tmp_path_factory.mktemp("server"))
    yield running
    stop_server_process(running)
