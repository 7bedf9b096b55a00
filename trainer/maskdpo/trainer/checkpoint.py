"""Atomic checkpoint folders and the ``training_info.json`` every checkpoint carries.

A checkpoint is written into a hidden staging folder next to its final place and renamed into place with
one ``os.rename``, so a reader (a resuming run, the promotion step) sees either no checkpoint or a complete
one. ``training_info.json`` records the configuration, the seeds, the library versions and a fingerprint
of the training data, so a checkpoint says exactly how it was made.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from maskdpo.trainer import durable

TRAINING_INFO = "training_info.json"
_LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers", "safetensors")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def data_fingerprint(rows: Iterable[Mapping[str, Any]]) -> str:
    """sha256 over the rows' canonical JSON, in order (``sha256:<hex>``)."""
    digest = hashlib.sha256()
    n = 0
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode())
        digest.update(b"\n")
        n += 1
    return f"sha256:{digest.hexdigest()}:{n}"


STAGING_PREFIXES = (".staging-", ".old-")
"""Names of the folders :func:`publish` works with; an interrupted run may leave them behind."""


def staging_dir_for(final: Path, token: str | None = None) -> Path:
    """The staging folder of ``final``: named by ``token`` (default: this process's pid)."""
    return final.parent / f"{STAGING_PREFIXES[0]}{final.name}-{token or os.getpid()}"


def publish(staging: Path, final: Path) -> Path:
    """Move a complete staging folder into place atomically; an older folder of that name is replaced.
    The staging tree is on disk before the rename and the rename before this returns, so a power cut
    leaves either the old folder or the complete new one."""
    durable.flush_tree(staging)
    if final.exists():
        old = final.parent / f"{STAGING_PREFIXES[1]}{final.name}-{time.monotonic_ns()}"
        os.rename(final, old)
        os.rename(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, final)
    durable.flush(final.parent)
    return final


def write_training_info(folder: Path, info: Mapping[str, Any]) -> None:
    payload = {"written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **info}
    (folder / TRAINING_INFO).write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def read_training_info(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(folder) / TRAINING_INFO).read_text())
    return data
