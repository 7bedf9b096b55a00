"""A mixed scoring and generation load against a running maskdpo server, with every call's latency and status.

Used by tests/reliability/test_load.py (assertions) and bench/bench_load.py (the printed table).

:func:`run_load` keeps ``clients`` concurrent SDK clients (each with its own channel) busy for ``seconds``;
each call is one of Score with the kb judge against a registered knowledge source, Score with the
heuristic judge on an inline passage, or Generate on the served model with a few tokens (``Workload.mix``).
:func:`prepare` registers the knowledge source and :func:`warm_up` makes the first calls (model loading is
not what a load run measures). :func:`burst` sends ``calls`` calls at once, for the overload phase.
:meth:`LoadReport.table` prints p50/p95/p99 latency and calls/s per kind.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

from maskdpo.client import AsyncClient, Client, Knowledge
from maskdpo.client import errors as sdk_errors

CITIES = ("Oslo", "Bergen", "Lyon", "Porto", "Turku", "Ghent", "Split", "Cork")
JOBS = ("chemist", "painter", "architect", "surveyor", "composer", "botanist")
PEOPLE = 24
KINDS = ("score-kb", "score-heuristic", "generate")


@dataclass(frozen=True)
class Person:
    name: str
    city: str
    job: str
    year: int

    @property
    def facts(self) -> list[tuple[str, str, str]]:
        return [
            (self.name, "birthplace", self.city),
            (self.name, "birth_year", str(self.year)),
            (self.name, "occupation", self.job),
        ]

    @property
    def passage(self) -> str:
        return (
            f"{self.name} (born {self.year} in {self.city}) is a {self.job}. {self.name} studied in "
            f"{self.city} and received the Civic Prize in {self.year + 40}."
        )

    def answer(self, rng: random.Random) -> str:
        year = self.year if rng.random() < 0.7 else self.year + 3
        city = self.city if rng.random() < 0.7 else rng.choice(CITIES)
        return f"The birthplace of {self.name} is {city}. Her birth year was {year}. What a life!"


def people(seed: int = 0) -> list[Person]:
    rng = random.Random(seed)
    return [
        Person(f"Ada Lind {i}", rng.choice(CITIES), rng.choice(JOBS), rng.randint(1850, 1990))
        for i in range(PEOPLE)
    ]


@dataclass(frozen=True)
class Workload:
    """What the clients send."""

    model: str = "toy"
    knowledge_source: str = "load-people"
    max_tokens: int = 8
    mix: tuple[float, float, float] = (0.4, 0.3, 0.3)
    """Shares of score-kb, score-heuristic and generate calls."""
    timeout_s: float = 120.0


@dataclass(frozen=True)
class Call:
    kind: str
    latency_s: float
    status: str
    """The gRPC status name; "OK" for a successful call."""


@dataclass(frozen=True)
class KindStats:
    calls: int
    failed: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    per_second: float


@dataclass
class LoadReport:
    calls: list[Call] = field(default_factory=list)
    wall_s: float = 0.0

    def statuses(self, kind: str | None = None) -> Counter[str]:
        return Counter(c.status for c in self.calls if kind is None or c.kind == kind)

    def failures(self) -> Counter[str]:
        return Counter({status: n for status, n in self.statuses().items() if status != "OK"})

    def stats(self, kind: str | None = None) -> KindStats:
        chosen = [c for c in self.calls if kind is None or c.kind == kind]
        latencies = sorted(c.latency_s * 1000 for c in chosen)
        if len(latencies) < 2:
            latencies = latencies * 2 or [0.0, 0.0]
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        return KindStats(
            len(chosen),
            sum(c.status != "OK" for c in chosen),
            cuts[49],
            cuts[94],
            cuts[98],
            len(chosen) / self.wall_s if self.wall_s else 0.0,
        )

    def table(self, title: str) -> str:
        lines = [
            title,
            f"{'call':<16}{'calls':>7}{'failed':>8}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'calls/s':>9}",
        ]
        for kind in [*sorted({c.kind for c in self.calls}), None]:
            s = self.stats(kind)
            lines.append(
                f"{kind or 'all':<16}{s.calls:>7}{s.failed:>8}{s.p50_ms:>10.1f}{s.p95_ms:>10.1f}"
                f"{s.p99_ms:>10.1f}{s.per_second:>9.1f}"
            )
        lines.append(f"statuses {dict(self.statuses().most_common())} over {self.wall_s:.1f} s")
        return "\n".join(lines)


def prepare(target: str, operator_token: str | None, workload: Workload) -> None:
    """Register the kb judge's knowledge source (kept if it is already there)."""
    facts = [f for person in people() for f in person.facts]
    with Client(target, token=operator_token, timeout=workload.timeout_s) as client:
        try:
            client.create_knowledge_source(workload.knowledge_source, facts=facts)
        except sdk_errors.AlreadyExistsError:
            pass


async def one_call(client: AsyncClient, kind: str, rng: random.Random, workload: Workload) -> None:
    person = rng.choice(people())
    if kind == "score-kb":
        await client.score(
            person.answer(rng),
            topic=person.name,
            judge="kb",
            knowledge=Knowledge(source=workload.knowledge_source),
        )
    elif kind == "score-heuristic":
        await client.score(
            person.answer(rng),
            topic=person.name,
            judge="heuristic",
            knowledge=Knowledge(passages=[(person.name, person.passage)]),
        )
    else:
        await client.generate(
            [("user", f"Tell me a bio of {person.name}.")],
            model=workload.model,
            max_tokens=workload.max_tokens,
            seed=rng.randint(0, 2**31),
        )


async def timed_call(client: AsyncClient, kind: str, rng: random.Random, workload: Workload) -> Call:
    started = time.perf_counter()
    try:
        await one_call(client, kind, rng, workload)
        status = "OK"
    except sdk_errors.MaskdpoError as error:
        status = error.code.name
    return Call(kind, time.perf_counter() - started, status)


async def warm_up(target: str, token: str | None, workload: Workload) -> None:
    """One call of each kind, and a heuristic call per person: model loading and reference embedding
    happen once per server, and are not what a load run measures. Raises on any failure."""
    rng = random.Random(0)
    async with AsyncClient(target, token=token, timeout=workload.timeout_s) as client:
        for kind, share in zip(KINDS, workload.mix, strict=True):
            if share > 0:
                await one_call(client, kind, rng, workload)
        if workload.mix[1] > 0:
            for person in people():
                await client.score(
                    person.answer(rng),
                    topic=person.name,
                    judge="heuristic",
                    knowledge=Knowledge(passages=[(person.name, person.passage)]),
                )


def pick(rng: random.Random, workload: Workload) -> str:
    return rng.choices(KINDS, weights=workload.mix)[0]


async def run_load(
    target: str,
    token: str | None,
    clients: int,
    seconds: float,
    workload: Workload = Workload(),
    seed: int = 0,
) -> LoadReport:
    """``clients`` clients calling back to back for ``seconds``; the calls still running then finish."""
    report = LoadReport()
    stop_at = time.monotonic() + seconds

    async def client_loop(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        async with AsyncClient(target, token=token, timeout=workload.timeout_s) as client:
            while time.monotonic() < stop_at:
                report.calls.append(await timed_call(client, pick(rng, workload), rng, workload))

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(i) for i in range(clients)))
    report.wall_s = time.perf_counter() - started
    return report


async def burst(
    target: str,
    token: str | None,
    calls: int,
    channels: int = 8,
    workload: Workload = Workload(),
    seed: int = 0,
) -> LoadReport:
    """``calls`` calls started at once over ``channels`` connections."""
    rng = random.Random(seed)
    report = LoadReport()
    opened = [AsyncClient(target, token=token, timeout=workload.timeout_s) for _ in range(channels)]
    try:
        started = time.perf_counter()
        report.calls = list(
            await asyncio.gather(
                *(
                    timed_call(
                        opened[i % channels], pick(rng, workload), random.Random(rng.random()), workload
                    )
                    for i in range(calls)
                )
            )
        )
        report.wall_s = time.perf_counter() - started
    finally:
        await asyncio.gather(*(client.close() for client in opened))
    return report
