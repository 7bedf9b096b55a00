"""maskdpo.server: the gRPC service, its Ray actors, the factuality judge, generation and alignment rounds.

Needs the ``server`` extra: ``pip install 'maskdpo[server]'``.
"""

try:
    import pydantic  # noqa: F401
    import ray  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        f"maskdpo.server needs the 'server' extra ({exc.name} is missing): pip install 'maskdpo[server]'"
    ) from exc
