"""A one-CPU local Ray cluster for the tests that drive server actors directly, without a server process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(address="local", num_cpus=1, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()
