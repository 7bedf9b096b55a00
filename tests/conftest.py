"""Settings every test shares: offline, no Ray dashboard or auth token, few threads; the markers each
folder gives its tests; and the tiny model that trainer tests, unit and integration, build once per
session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
SHARED_DATA = REPO.parent / "shared" / "data"
LLAMA_8B = TESTS / "data" / "llama-3.1-8b"
"""Llama-3.1-8B's config.json (no weights): the model the memory plan's tests plan for."""

FOLDER_MARKS = {
    "integration": ("integration",),
    "reliability": ("reliability", "integration"),  # every reliability test starts real servers
    "gpu": ("gpu",),  # a GPU test that starts an engine or a server also says integration itself
}
"""Markers by the folder under tests/ a test lives in (tests/unit: none; its conftest keeps it in-process)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if TESTS not in item.path.parents:
            continue
        for mark in FOLDER_MARKS.get(item.path.relative_to(TESTS).parts[0], ()):
            item.add_marker(mark)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), seed=0)


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or skip the test with a message saying what is missing."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"shared data {path} is absent (tests read it from ../shared/data next to the checkout)")
    return path
