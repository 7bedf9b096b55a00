"""Shared fixtures of the judge tests: where the project's shared data lives."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


def shared_data_dir() -> Path:
    """``<repo>/../shared/data``: data sets that are not part of the repository."""
    return REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def factscore_dir() -> Path:
    folder = shared_data_dir() / "factscore-labeled"
    if not (folder / "InstructGPT.jsonl").is_file() or not (folder / "ChatGPT.jsonl").is_file():
        pytest.skip(f"FActScore labelled data not found under {folder} (shared data absent)")
    return folder
