"""Publishing files so that they survive a power cut, not only a crash of the process.

A folder written in a temporary place and renamed into place is atomic for readers, but after a power cut
the rename may be on disk while the files' contents are not (empty files under a visible name), or the
rename itself may be lost. So: :func:`flush_tree` on the temporary folder before the rename, and
:func:`flush` on the parent folder after it, before the write is reported done.
"""

from __future__ import annotations

import os
from pathlib import Path


def flush(path: Path) -> None:
    """fsync a file's contents or a folder's entries (the names in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def flush_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (files and subfolders before the folder holding them),
    then ``root`` itself."""
    for folder, _subfolders, files in os.walk(root, topdown=False):  # bottom-up: subfolders come first
        for name in files:
            if not os.path.islink(os.path.join(folder, name)):
                flush(Path(folder, name))
        flush(Path(folder))
