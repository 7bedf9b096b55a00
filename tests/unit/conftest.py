"""Unit tests run in this process only: no Ray, no vLLM engine, no server process.

Starting any of them here raises at once, naming the rule, so a unit test cannot start one by accident
(and make the unit suite slow or dependent on a machine's resources). Such a test belongs in
tests/integration.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NoReturn

import pytest
import ray

from maskdpo.server.generation.engine import GenerationEngine
from maskdpo.server.launcher import ServerProcess


def _refuse(what: str) -> NoReturn:
    raise RuntimeError(
        f"a unit test tried to start {what}: tests under tests/unit run in-process only; "
        "a test that needs Ray, a vLLM engine or a server process belongs in tests/integration"
    )


@pytest.fixture(scope="package", autouse=True)
def _no_ray_engine_or_server() -> Iterator[None]:
    """Package-wide (tests/unit has an ``__init__.py`` for this), so it is in place before any module-scoped
    fixture of a unit test runs, and gone again for the integration tests of the same session."""

    def ray_init(*_args: object, **_kwargs: object) -> NoReturn:
        _refuse("Ray (ray.init, or a Ray call that starts it)")

    async def engine_start(*_args: object, **_kwargs: object) -> NoReturn:
        _refuse("a vLLM engine (GenerationEngine.start)")

    def server_start(*_args: object, **_kwargs: object) -> NoReturn:
        _refuse("a server process (ServerProcess.start)")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ray, "init", ray_init)
        patch.setattr(GenerationEngine, "start", engine_start)
        patch.setattr(ServerProcess, "start", server_start)
        yield
