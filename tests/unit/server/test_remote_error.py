"""What clients read of a failure in an actor: the remote error's type and first line, never Ray's
wrapper with the worker's traceback."""

from __future__ import annotations

import ray

from maskdpo.server.workers.ray_runtime import remote_error


def test_the_cause_of_a_ray_task_error_is_reported_without_the_traceback() -> None:
    wrapped = ray.exceptions.RayTaskError(
        "ready", "Traceback (most recent call last):\n  File \"actor.py\", line 1\nValueError: no GPU",
        ValueError("no GPU left on node n1\nsee the raylet log"),
    ).as_instanceof_cause()
    assert remote_error(wrapped) == "ValueError: no GPU left on node n1"


def test_other_errors_keep_their_type_and_first_line() -> None:
    assert remote_error(RuntimeError("engine died\n  details")) == "RuntimeError: engine died"
    assert remote_error(TimeoutError()) == "TimeoutError"
