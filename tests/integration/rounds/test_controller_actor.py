"""One round controller per data folder, and one that follows the server's settings: a server started with
other settings (or other code) than the detached controller it finds replaces it instead of silently
running rounds with the old ones. Real Ray (local), real controllers on temporary folders."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from maskdpo.server.rounds.controller import ControllerSettings
from maskdpo.server.rounds.controller_actor import CODE_VERSION, controller_name, get_or_create_controller
from maskdpo.server.workers.ray_runtime import NAMESPACE


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(address="local", num_cpus=1, include_dashboard=False, configure_logging=False, namespace=NAMESPACE)
    yield
    ray.shutdown()


def controller(settings: ControllerSettings) -> tuple[int, tuple[str, ControllerSettings]]:
    async def get() -> tuple[Any, ...]:
        handle = await get_or_create_controller(settings, timeout_s=60)
        return await handle.pid.remote(), await handle.settings.remote()

    pid, current = asyncio.run(get())
    return pid, current


def test_same_settings_reattach_other_settings_replace(local_ray: None, tmp_path: Path) -> None:
    first = ControllerSettings(data_dir=tmp_path.resolve(), save_steps=5)
    pid, current = controller(first)
    assert current == (CODE_VERSION, first)
    assert controller(first)[0] == pid  # a restarted server with the same settings keeps the controller
    changed = ControllerSettings(data_dir=tmp_path.resolve(), save_steps=7)
    new_pid, current = controller(changed)
    assert new_pid != pid and current == (CODE_VERSION, changed)
    alive = ray.get_actor(controller_name(tmp_path.resolve()), namespace=NAMESPACE)
    assert ray.get(alive.pid.remote()) == new_pid  # one controller for the folder, the new one


def test_each_data_folder_has_its_own_controller(local_ray: None, tmp_path: Path) -> None:
    a, b = (tmp_path / "a").resolve(), (tmp_path / "b").resolve()
    pid_a, current_a = controller(ControllerSettings(data_dir=a))
    pid_b, current_b = controller(ControllerSettings(data_dir=b))
    assert pid_a != pid_b and controller_name(a) != controller_name(b)
    assert current_a[1].data_dir == a and current_b[1].data_dir == b
    assert (a / "rounds.sqlite").is_file() and (b / "rounds.sqlite").is_file()
