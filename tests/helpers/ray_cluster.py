"""A Ray cluster of several nodes on one machine, for tests: each node is its own ``ray start --block``
process group (its own raylet, with its own CPUs and custom resources), so a node can be killed like a
machine that loses power.

    with LocalRayCluster(tmp) as cluster:
        cluster.start_head(num_cpus=0)
        trainer = cluster.add_node("trainer", num_cpus=1, resources={"maskdpo-trainer": 1})
        ...  # maskdpo serve --ray-address cluster.address
        cluster.kill(trainer)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

RAY = Path(sys.executable).with_name("ray")
# the head notices a dead node within a few seconds instead of the default half minute
FAST_FAILURE_DETECTION = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


@dataclass
class RayNode:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    resources: dict[str, float]

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRayCluster:
    def __init__(self, root: Path, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.env = {**os.environ, "RAY_AUTH_MODE": "disabled", **FAST_FAILURE_DETECTION, **(env or {})}
        self.port = free_port()
        self.nodes: list[RayNode] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start_head(self, num_cpus: int = 1, resources: dict[str, float] | None = None) -> RayNode:
        return self._start("head", ["--head", f"--port={self.port}", "--include-dashboard=false"],
                           num_cpus, resources or {})

    def add_node(self, name: str, num_cpus: int = 1, resources: dict[str, float] | None = None) -> RayNode:
        return self._start(name, [f"--address={self.address}"], num_cpus, resources or {})

    def _start(self, name: str, args: list[str], num_cpus: int, resources: dict[str, float]) -> RayNode:
        log = self.root / f"ray-{name}-{len(self.nodes)}.log"
        cmd = [str(RAY), "start", "--block", "--disable-usage-stats", f"--num-cpus={num_cpus}", *args]
        if resources:
            cmd.append(f"--resources={json.dumps(resources)}")
        with open(log, "wb") as out:
            process = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        node = RayNode(name, process, log, resources)
        self.nodes.append(node)
        deadline = time.monotonic() + 120
        while b"Ray runtime started" not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                self.kill(node)
                raise RuntimeError(f"ray start of node {name} failed:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        return node

    def kill(self, node: RayNode) -> None:
        """SIGKILL the node's whole process group (raylet, its workers and agents): a power cut."""
        if node.alive:
            os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait(30)

    def stop(self) -> None:
        for node in reversed(self.nodes):  # workers first, the head last
            if node.alive:
                os.killpg(node.process.pid, signal.SIGTERM)
                try:
                    node.process.wait(30)
                except subprocess.TimeoutExpired:
                    self.kill(node)

    def __enter__(self) -> LocalRayCluster:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
