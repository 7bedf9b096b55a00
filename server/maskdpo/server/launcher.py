"""Run ``maskdpo serve`` as a child process and wait until it listens (for scripts, tests and benchmarks).

    with ServerProcess.start(data_dir, args=["--judge", "kb"]) as server:
        client = Client(server.target)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType


@dataclass
class ServerProcess:
    """A running ``maskdpo serve`` child process."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls, workdir: Path, args: list[str] | None = None, env: dict[str, str] | None = None,
              timeout: float = 180.0) -> ServerProcess:
        """Start a server on a free port with its data under ``workdir``; raise with its log if it fails."""
        workdir.mkdir(parents=True, exist_ok=True)
        ready = workdir / "ready"
        ready.unlink(missing_ok=True)
        log = workdir / "server.log"
        cmd = [sys.executable, "-m", "maskdpo.server.cli", "--port", "0", "--data-dir", str(workdir / "data"),
               "--ready-file", str(ready), *(args or [])]
        with open(log, "wb") as out:
            process = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not ready.exists() or not ready.read_text().strip():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"maskdpo serve did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        return cls(process, int(ready.read_text()), log)

    def wait_serving(self, service: str = "maskdpo.v1.GenerationService", timeout: float = 900.0) -> float:
        """Block until ``service`` reports SERVING on the health service (e.g. once an engine has started);
        returns the seconds waited. Raises with the server's log if the process exits or time runs out."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        started = time.monotonic()
        request = health_pb2.HealthCheckRequest(service=service)
        with grpc.insecure_channel(self.target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    if health.Check(request, timeout=30).status == health_pb2.HealthCheckResponse.SERVING:
                        return time.monotonic() - started
                except grpc.RpcError:
                    pass  # not answering yet: keep waiting
                if self.process.poll() is not None or time.monotonic() - started > timeout:
                    raise RuntimeError(f"{service} did not turn SERVING:\n{self.log.read_text()[-4000:]}")
                time.sleep(1)

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (drain, then exit); SIGKILL the process group if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
