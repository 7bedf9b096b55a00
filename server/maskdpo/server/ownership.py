"""What a server owns alone: its data folder and its port, both claimed before anything starts.

The stores in the data folder assume one server: at start a server fails the deploys the last one left
unfinished, removes the hidden leftovers of interrupted writes and resumes rounds, which would break a
second server's live work on the same folder. :class:`DataDirLock` takes an exclusive ``flock`` on
``<data_dir>/server.lock`` for the server's lifetime; the kernel drops it when the process dies, so a crash
never leaves a stale lock, and the file records who holds it, so a refusal names the holder.

gRPC binds with ``SO_REUSEPORT`` by default on Linux: a second server on a taken port starts "fine" and the
kernel splits new connections between the two. :func:`bind` turns that off, so a taken port is refused;
:func:`probe_port` finds a taken port before Ray starts, so the refusal comes at once (the gRPC server
itself is created after Ray: created before, it had Ray fork its processes while gRPC threads ran, and the
local Ray node timed out at start).
Both refusals are :class:`StartupError`: ``maskdpo serve`` prints the message and exits 1, no traceback.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

import grpc

from maskdpo.server.store.layout import DataDir

NO_REUSEPORT = ("grpc.so_reuseport", 0)
"""Server option: a port another process listens on is an error, not a shared port."""


class StartupError(RuntimeError):
    """The server cannot start for a reason its operator can fix; the message says which."""


class DataDirLock:
    """An exclusive, process-lifetime claim on one data folder."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, data_dir: Path) -> DataDirLock:
        """Claim ``data_dir`` (created if missing); raise :class:`StartupError` naming the holder if taken."""
        path = DataDir(data_dir).lock
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by the processes we start
        except OSError as exc:
            raise StartupError(f"cannot use data folder {data_dir}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0))
            os.close(fd)
            raise StartupError(
                f"data folder {data_dir} is in use by another maskdpo server ({holder}); "
                "stop that server or give this one another --data-dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        lock = cls(fd)
        lock.record()
        return lock

    def record(self, port: int | None = None) -> None:
        """Write who holds the folder (process, host, start time, port once bound) into the lock file."""
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if port is not None:
            holder["port"] = port
        data = json.dumps(holder).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        """Give the folder up (idempotent). The file stays: removing it would race a process opening it."""
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


def _describe(raw: bytes) -> str:
    try:
        holder = json.loads(raw)
        where = f"process {holder['pid']} on {holder['host']} since {holder['since']}"
        return where + (f", port {holder['port']}" if "port" in holder else "")
    except (ValueError, KeyError, TypeError):
        return "a process that has not written its details yet"


def bind(server: grpc.aio.Server, address: str, credentials: grpc.ServerCredentials | None) -> int:
    """Add ``address`` to ``server`` (created with :data:`NO_REUSEPORT`); the bound port, or StartupError."""
    try:
        if credentials is None:
            port: int = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError:  # grpc reports every bind failure this way, without the cause
        raise _cannot_listen(address) from None
    return port


def _cannot_listen(address: str, cause: str = "") -> StartupError:
    return StartupError(
        f"cannot listen on {address}: {cause + '; ' if cause else ''}another process holds the port, or the "
        "host is not an address of this machine; choose another --port / --host"
    )


def probe_port(host: str, port: int) -> None:
    """StartupError if ``host:port`` cannot be bound now (another process listens there, or the host is
    not this machine's); port 0 (any free port) always passes. The probe socket is closed at once."""
    if port == 0:
        return
    try:
        addresses = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does: TIME_WAIT is no owner
            try:
                probe.bind(address)
            except OSError as exc:
                raise _cannot_listen(f"{host}:{port}", exc.strerror or str(exc)) from None
