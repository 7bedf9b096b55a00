"""The round store: events numbered 1, 2, ... with the state change they report; one active round per
model; phases and artifacts; a second process sees the same rounds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from maskdpo.server.errors import Conflict
from maskdpo.server.store.rounds import CANCELLED, PENDING, RUNNING, RoundStore
from maskdpo.v1 import alignment_pb2
from tests.unit.rounds.conftest import tiny_config

P = alignment_pb2.RoundPhase


def test_events_are_sequential_and_carry_state(tmp_path: Path) -> None:
    store = RoundStore(tmp_path / "rounds.sqlite")
    store.insert("a1", "operations/x", tiny_config())
    assert store.start_phase("a1", P.SAMPLE, total=4) == 1
    store.record("a1", "PROGRESS", P.SAMPLE, "2 of 4", done=2, total=4, metrics={"m": 1.5})
    (tmp_path / "s.jsonl").write_text("{}\n")
    store.finish_phase("a1", P.SAMPLE, {"samples": 8}, {"samples": tmp_path / "s.jsonl"}, start_version=3)
    events = store.events("a1", 0)
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert [e.kind for e in events] == ["LOG", "PHASE_STARTED", "PROGRESS", "PHASE_DONE"]
    assert events[0].state == PENDING and events[1].state == RUNNING
    assert events[2].metrics["m"] == 1.5 and events[2].progress_done == 2
    assert [e.sequence for e in store.events("a1", 2)] == [3, 4]
    r = store.get("a1")
    assert r.done_phases == [P.SAMPLE] and r.start_weight_version == 3 and r.state == RUNNING
    assert store.metadata("a1").last_sequence == 4 and store.metadata("a1").metrics["m"] == 1.5
    assert store.phase_summary("a1", P.SAMPLE) == {"samples": 8}
    assert store.artifacts("a1") == {"SAMPLE/samples": str(tmp_path / "s.jsonl")}
    with pytest.raises(ValueError, match="already done"):
        store.start_phase("a1", P.SAMPLE)


def test_second_active_round_on_a_model_conflicts(tmp_path: Path) -> None:
    store = RoundStore(tmp_path / "rounds.sqlite")
    store.insert("a1", "operations/x", tiny_config())
    with pytest.raises(Conflict, match="rounds/a1"):
        store.insert("b2", "operations/y", tiny_config())
    other = tiny_config()
    other.model = "models/other"
    store.insert("c3", "operations/z", other)  # another model is fine
    store.record("a1", "ROUND_ENDED", 0, "done", state=CANCELLED)
    store.insert("b2", "operations/y", tiny_config())  # the first one ended
    assert sorted(store.active()) == ["b2", "c3"]


def test_restart_of_a_phase_counts_attempts_and_other_processes_read(tmp_path: Path) -> None:
    path = tmp_path / "rounds.sqlite"
    store = RoundStore(path)
    store.insert("a1", "operations/x", tiny_config())
    store.start_phase("a1", P.TRAIN)
    assert store.start_phase("a1", P.TRAIN) == 2
    reader = RoundStore(path)
    assert reader.get("a1").phase == P.TRAIN
    assert "attempt 2" in reader.events("a1", 0)[-1].message
    page, more = reader.page(RUNNING, "models/tiny", 0, 10)
    assert [r.name for r in page] == ["rounds/a1"] and not more
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
