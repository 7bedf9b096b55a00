"""A server owns its data folder and its port alone: a second claim is refused, naming the holder; a dead
holder's claim is gone; a taken port is refused instead of shared through SO_REUSEPORT."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from maskdpo.server.ownership import NO_REUSEPORT, DataDirLock, StartupError, bind, probe_port


def test_a_second_claim_on_a_folder_is_refused_and_names_the_holder(tmp_path: Path) -> None:
    first = DataDirLock.acquire(tmp_path / "data")
    first.record(port=50123)
    with pytest.raises(StartupError) as refused:
        DataDirLock.acquire(tmp_path / "data")
    assert f"process {os.getpid()}" in str(refused.value)
    assert "port 50123" in str(refused.value)
    first.release()
    DataDirLock.acquire(tmp_path / "data").release()  # free again once released
    first.release()  # idempotent


def test_a_killed_holder_leaves_no_stale_claim(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from maskdpo.server.ownership import DataDirLock; "
         "DataDirLock.acquire(Path(sys.argv[1])); print('held', flush=True); time.sleep(600)",
         str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StartupError, match=f"process {holder.pid} "):
            DataDirLock.acquire(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    DataDirLock.acquire(tmp_path).release()


def test_an_unusable_folder_is_a_startup_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StartupError, match="cannot use data folder"):
        DataDirLock.acquire(tmp_path / "file" / "data")


def test_a_taken_port_is_refused_not_shared() -> None:
    async def run() -> None:
        first = grpc.aio.server(options=[NO_REUSEPORT])
        port = bind(first, "127.0.0.1:0", None)
        await first.start()
        second = grpc.aio.server(options=[NO_REUSEPORT])
        try:
            with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}"):
                bind(second, f"127.0.0.1:{port}", None)
        finally:
            await second.stop(None)
            await first.stop(None)

    asyncio.run(run())


def test_the_probe_finds_a_taken_port_before_anything_starts() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"):
            probe_port("127.0.0.1", port)
    probe_port("127.0.0.1", port)  # free again once closed
    probe_port("127.0.0.1", 0)  # any free port


def test_the_probe_sees_a_server_that_shares_ports() -> None:
    async def run() -> None:
        sharing = grpc.aio.server()  # gRPC's default: SO_REUSEPORT, e.g. an older maskdpo server
        port = sharing.add_insecure_port("127.0.0.1:0")
        await sharing.start()
        try:
            with pytest.raises(StartupError, match="another process holds the port"):
                probe_port("127.0.0.1", port)
        finally:
            await sharing.stop(None)

    asyncio.run(run())
