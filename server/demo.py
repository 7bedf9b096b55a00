"""The main job on the embedded defaults (offline, CPU): ``make demo`` / ``python -m maskdpo.server.demo``.

It starts the real service locally (a gRPC server on a free port, a local Ray cluster, the judge actors),
scores the bundled example answers through the SDK, and prints the per-sentence table and the aggregate
metrics; then it shuts the service down.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from importlib import resources
from pathlib import Path

from maskdpo.client import Client, Item, Knowledge
from maskdpo.client.cli import print_answer, print_batch
from maskdpo.server.app import start_server
from maskdpo.server.settings import ServerSettings


def _examples() -> list[dict[str, object]]:
    text = resources.files("maskdpo.server").joinpath("examples/answers.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _score(port: int) -> None:
    rows = _examples()
    with Client(f"127.0.0.1:{port}", timeout=300) as client:
        print(f"health: {client.health()}\n")
        for row in rows:
            result = client.score(str(row["response"]), knowledge=Knowledge(passages=row["passages"]),  # type: ignore[arg-type]
                                  topic=str(row["topic"]), prompt=str(row["prompt"]))
            print(f"== {row['topic']}")
            print_answer(result.answer)
            print()
        items = [Item(response=str(r["response"]), topic=str(r["topic"]),
                      knowledge=Knowledge(passages=r["passages"])) for r in rows]  # type: ignore[arg-type]
        batch = client.batch_score(items)
        print("== all examples")
        print_batch(batch)
        judge = batch.judge
        print(f"judge: {judge.backend} (heuristic={judge.heuristic}, model {judge.model}, splitter {judge.splitter})")


async def _main() -> None:
    started = time.perf_counter()
    data_dir = Path(os.environ.get("MASKDPO_DATA_DIR", tempfile.mkdtemp(prefix="maskdpo-demo-")))
    settings = ServerSettings(port=0, data_dir=data_dir, judges=["heuristic", "kb"], default_judge="heuristic")
    running = await start_server(settings)
    print(f"service up on 127.0.0.1:{running.port} in {time.perf_counter() - started:.1f} s\n")
    try:
        await asyncio.to_thread(_score, running.port)
    finally:
        await running.stop(grace=2)
    print(f"\ndemo finished in {time.perf_counter() - started:.1f} s")


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
