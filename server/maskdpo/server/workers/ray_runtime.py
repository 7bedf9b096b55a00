"""Starting or joining the Ray cluster the service's actors live in.

By default the server starts a local Ray instance (no dashboard); with ``--ray-address`` it joins an
existing cluster (``ray start --head`` on one machine, KubeRay on Kubernetes). The same code runs both.
:func:`remote_error` says what failed in an actor without Ray's wrapper (for the messages clients read);
:func:`call_error` is what a failed actor call means to its caller; :func:`await_ray` awaits a call with the
caller's deadline. The actors of one server are named after its data folder (:func:`actor_name`), so a
process that outlives the server (the round controller) finds the current ones by name.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import ray

from maskdpo.server.errors import Cancelled, DeadlineExceeded, ServiceError, Unavailable, raised_by_actor

log = logging.getLogger("maskdpo.server")
NAMESPACE = "maskdpo"
"""The Ray namespace of every named actor of the service."""


def actor_name(data_dir: Path, role: str) -> str:
    """The name of a server's actor: its role (``round-controller``, ``generator-toy``, ``judge-kb-0``) and
    a hash of the server's data folder (resolved), so two servers on one cluster never share actors."""
    folder = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:12]
    return f"maskdpo-{role}-{folder}"


def find_actor(name: str) -> Any | None:
    """The live actor called ``name`` in the service's namespace, or None."""
    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return None


async def wait_name_free(name: str, timeout_s: float) -> None:
    """Wait until no live actor holds ``name`` (a killed actor frees its name shortly after)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while find_actor(name) is not None and loop.time() < deadline:
        await asyncio.sleep(0.2)


def start_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Connect to ``address`` or start a local instance; idempotent."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # Actors import maskdpo from the same installation; keep Ray from shipping the working tree.
    kwargs: dict[str, object] = {"include_dashboard": False, "log_to_driver": True,
                                 "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)  # type: ignore[arg-type]
        log.info("joined Ray cluster at %s", address)
    else:
        # "local": never attach to whatever cluster /tmp/ray/ray_current_cluster names (another user's).
        ray.init(address="local", num_cpus=num_cpus, **kwargs)  # type: ignore[arg-type]
        log.info("started a local Ray instance")


def stop_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()


def remote_error(exc: BaseException) -> str:
    """What a client is told of a failure in an actor: the remote error itself (not Ray's wrapper with the
    worker's traceback), first line only; the log keeps the whole of it."""
    if isinstance(exc, ray.exceptions.RayTaskError) and exc.cause is not None:
        exc = exc.cause
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


LOST = "lost"
"""``metadata["actor"]`` of the UNAVAILABLE error for a call whose actor is gone."""


def actor_lost(exc: BaseException) -> bool:
    """True when a call failed because its actor (or the actor's node) is gone."""
    return isinstance(exc, ray.exceptions.RayActorError | ray.exceptions.ActorUnavailableError)


def worker_lost(exc: BaseException) -> bool:
    """True for work lost with its process or node (worth running again elsewhere), as opposed to an error
    of the work itself: Ray's errors for that, or the UNAVAILABLE :func:`call_error` made of one."""
    rx = ray.exceptions
    lost = (rx.RayActorError, rx.ActorUnavailableError, rx.WorkerCrashedError, rx.NodeDiedError,
            rx.ObjectLostError)
    return isinstance(exc, lost) or (isinstance(exc, Unavailable) and exc.metadata.get("actor") == LOST)


def call_error(exc: BaseException, what: str) -> BaseException:
    """What a failed actor call means to its caller: the ServiceError the actor raised; UNAVAILABLE when the
    actor is gone; CANCELLED when the call was cancelled; anything else unchanged (a bug, which the edge
    reports as an internal error with an incident id)."""
    original = raised_by_actor(exc)
    if isinstance(original, ServiceError):
        return original
    if actor_lost(exc):
        return Unavailable(f"{what} is not reachable ({type(exc).__name__}); retry later", actor=LOST)
    if isinstance(exc, ray.exceptions.TaskCancelledError):
        return Cancelled(f"the call to {what} was cancelled")
    return exc


async def await_ray(ref: Any, timeout: float | None, what: str) -> Any:
    """Await a Ray ObjectRef with a deadline; cancel the task on timeout or caller cancellation."""
    try:
        return await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout)
    except TimeoutError:
        ray.cancel(ref)
        raise DeadlineExceeded(f"{what} did not finish before the call's deadline; it was cancelled") from None
    except asyncio.CancelledError:
        ray.cancel(ref)
        raise
