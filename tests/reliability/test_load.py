"""The service under load: concurrent clients mixing scoring and generation, then deliberate overload.

Normal load: ``scale.load_clients`` SDK clients call Score (kb judge on a registered knowledge source,
heuristic judge on an inline passage) and Generate (the toy model, a few tokens) back to back for
``scale.load_seconds`` on the shared toy server; every call must succeed. Overload: bursts far over the
server's limits -- generation past the toy server's engine queue, scoring past a second small server's
judge queue and concurrent-RPC cap -- may only be refused with RESOURCE_EXHAUSTED, some calls must still
be served, and afterwards the server is SERVING and answers a normal load without a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bench.load_driver import KINDS, LoadReport, Workload, burst, prepare, run_load, warm_up
from maskdpo.client import AsyncClient
from maskdpo.server.launcher import ServerProcess
from tests.reliability.conftest import GENERATION_QUEUE, OPERATOR, READER, TOKENS_ENV, Scale

SCORING_ONLY = Workload(mix=(0.5, 0.5, 0.0))
GENERATION_ONLY = Workload(mix=(0.0, 0.0, 1.0))
SMALL_LIMITS = {
    "MASKDPO_MAX_CONCURRENT_RPCS": "12",
    "MASKDPO_JUDGE_QUEUE_LIMIT": "3",
    "MASKDPO_JUDGE_MAX_BATCH": "2",
}


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A scoring-only server with small limits, so that overload is cheap to reach."""
    args = ["--judge", "kb", "--judge", "heuristic", "--default-judge", "heuristic"]
    with ServerProcess.start(
        tmp_path_factory.mktemp("small-server"),
        args,
        {**TOKENS_ENV, **SMALL_LIMITS},
    ) as server:
        prepare(server.target, OPERATOR, SCORING_ONLY)
        asyncio.run(warm_up(server.target, READER, SCORING_ONLY))
        yield server


async def assert_serving(target: str) -> None:
    async with AsyncClient(target, token=READER, timeout=30) as client:
        assert await client.health() == "SERVING"


def assert_only_refusals(report: LoadReport) -> None:
    statuses = report.statuses()
    assert set(statuses) <= {"OK", "RESOURCE_EXHAUSTED"}, statuses
    assert statuses["RESOURCE_EXHAUSTED"] > 0, f"the burst did not overload the server: {statuses}"
    assert statuses["OK"] > 0, f"nothing was served under overload: {statuses}"


async def test_normal_load_has_no_failures(serving_toy_server: ServerProcess, scale: Scale) -> None:
    workload = Workload()
    prepare(serving_toy_server.target, OPERATOR, workload)
    await warm_up(serving_toy_server.target, READER, workload)
    report = await run_load(
        serving_toy_server.target, READER, scale.load_clients, scale.load_seconds, workload
    )
    print(
        f"\n{report.table(f'load: {scale.load_clients} clients for {scale.load_seconds:.0f} s (toy server)')}"
    )
    assert not report.failures(), report.failures()
    assert {c.kind for c in report.calls} == set(KINDS)
    assert len(report.calls) >= scale.load_clients
    await assert_serving(serving_toy_server.target)


async def test_generation_overload_is_refused_with_resource_exhausted(
    serving_toy_server: ServerProcess,
) -> None:
    """Four times the engine's queue at once: the excess is refused, the rest served, nothing else fails."""
    target = serving_toy_server.target
    calls = 4 * GENERATION_QUEUE
    report = await burst(target, READER, calls=calls, workload=GENERATION_ONLY)
    print(f"\n{report.table(f'overload: {calls} Generate calls at once (queue {GENERATION_QUEUE})')}")
    assert_only_refusals(report)
    await assert_serving(target)
    after = await run_load(target, READER, clients=4, seconds=3, workload=GENERATION_ONLY)
    assert after.calls and not after.failures(), after.failures()


async def test_scoring_overload_is_refused_with_resource_exhausted(small_server: ServerProcess) -> None:
    """A burst over the concurrent-RPC cap and the judge queue of a small server."""
    calls = 8 * int(SMALL_LIMITS["MASKDPO_MAX_CONCURRENT_RPCS"])
    report = await burst(small_server.target, READER, calls=calls, workload=SCORING_ONLY)
    print(f"\n{report.table(f'overload: {calls} Score calls at once (small server: {SMALL_LIMITS})')}")
    assert_only_refusals(report)
    await assert_serving(small_server.target)
    after = await run_load(small_server.target, READER, clients=2, seconds=3, workload=SCORING_ONLY)
    assert after.calls and not after.failures(), after.failures()
