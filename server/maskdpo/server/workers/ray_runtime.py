"""Starting or joining the Ray cluster the service's actors live in.

By default the server starts a local Ray instance (no dashboard); with ``--ray-address`` it joins an
existing cluster (``ray start --head`` on one machine, KubeRay on Kubernetes). The same code runs both.
:func:`remote_error` says what failed in an actor without Ray's wrapper (for the messages clients read).
"""

from __future__ import annotations

import logging
import os

import ray

log = logging.getLogger("maskdpo.server")


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
