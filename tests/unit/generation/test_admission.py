"""Admission: the bound, the retry advice, the swap gate and the version each request runs on."""

from __future__ import annotations

import asyncio

import pytest

from maskdpo.server.generation.admission import Admission
from maskdpo.server.generation.errors import QueueFullError


async def test_refuses_beyond_limit_with_retry_advice() -> None:
    admission = Admission(2, lambda: 1)
    release = asyncio.Event()

    async def hold(rid: str) -> None:
        async with admission.slot(rid):
            await release.wait()

    tasks = [asyncio.create_task(hold(f"r{i}")) for i in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(QueueFullError) as info:
        async with admission.slot("r3"):
            pass
    assert 0.5 <= info.value.retry_after_s <= 30
    assert info.value.limit == 2
    release.set()
    await asyncio.gather(*tasks)
    assert admission.admitted == 0
    async with admission.slot("r4") as version:
        assert version == 1


async def test_closed_gate_holds_new_requests_and_drain_waits_for_running() -> None:
    version = [1]
    admission = Admission(4, lambda: version[0])
    finish = asyncio.Event()
    seen: list[int] = []

    async def run(rid: str, wait: bool) -> None:
        async with admission.slot(rid) as v:
            seen.append(v)
            if wait:
                await finish.wait()

    first = asyncio.create_task(run("old", True))
    await asyncio.sleep(0)
    admission.close()
    second = asyncio.create_task(run("new", False))
    assert not await admission.drain(0.05)  # "old" still runs
    finish.set()
    assert await admission.drain(1.0)
    assert seen == [1]  # "new" waits at the gate
    version[0] = 2
    admission.open()
    await asyncio.gather(first, second)
    assert seen == [1, 2]


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        Admission(0, lambda: 1)
