"""Inputs for tests that train the tiny model: a small judged-samples file, options for a run long enough
to cancel, and a wait for its step events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maskdpo.trainer.run import TrainOptions
from maskdpo.trainer.sentences import split_sentences

NAMES = ["Ada Lovelace", "Alan Turing", "Marie Curie", "Émile Zola"]
PLACES = ["London", "Paris", "Zürich", "東京"]


def write_judged(path: Path) -> Path:
    """Two judged samples per prompt: a correct biography and one with a wrong job and birthplace."""
    rows = []
    for i, name in enumerate(NAMES):
        good = f"{name} was a writer born in {PLACES[i]} in 1815. I think {name} is great 😀! {name} lived in {PLACES[i]}."
        bad = f"{name} was a coach born in {PLACES[(i + 1) % 4]} in 1967. I think {name} is great 😀! {name} lived in {PLACES[i]}."
        for sid, (text, labels) in enumerate(
            [(good, ["ok", "nofact", "ok"]), (bad, ["contradictory", "nofact", "ok"])]
        ):
            spans = split_sentences(text)
            rows.append(
                {
                    "prompt": [{"role": "user", "content": f"Tell me a bio of {name}."}],
                    "response": text,
                    "prompt_id": f"p{i}",
                    "sample_id": f"p{i}-s{sid}",
                    "sentences": [
                        {"start": s.start, "end": s.end, "label": lab}
                        for s, lab in zip(spans, labels, strict=True)
                    ],
                }
            )
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return path


def cancellable_options(model: Path, tmp: Path) -> TrainOptions:
    """A 200-step run on :func:`write_judged`'s data: long enough to cancel in its first steps."""
    return TrainOptions(
        data=write_judged(tmp / "judged.jsonl"),
        model=model,
        out=tmp / "run",
        steps=200,
        learning_rate=1e-3,
        batch_size=2,
        progress_bar=False,
    )


def wait_for_step(
    events: Callable[[], list[dict[str, Any]]], step: int, timeout: float = 240
) -> list[dict[str, Any]]:
    """Poll ``events`` until a step event at ``step`` or later appears; return the events."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = events()
        if any(e["kind"] == "step" and e["step"] >= step for e in got):
            return got
        time.sleep(0.2)
    raise AssertionError(f"no step {step} event within {timeout} s")
