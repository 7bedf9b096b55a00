"""Publishing files so that they survive a power cut, not only a crash of the process.

It lives in the trainer (a library that imports nothing else of ours) so that the trainer's checkpoints
and the server's stores (knowledge sources, round phase folders, reports) share it.

A folder written in a temporary place and renamed into place is atomic for readers, but after a power cut
the rename may be on disk while the files' contents are not (empty files under a visible name), or the
rename itself may be lost. So: :func:`flush_tree` on the temporary folder before the rename, and
:func:`flush` on the parent folder after it, before the write is reported done.
"""

from __future__ import annotations

import os
import shutil
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


def replace_file(tmp: Path, path: Path) -> None:
    """Move a fully written ``tmp`` file over ``path``: contents on disk first, then the rename."""
    flush(tmp)
    os.replace(tmp, path)
    flush(path.parent)


def remove_leftovers(folder: Path, prefixes: tuple[str, ...]) -> list[Path]:
    """Delete the entries of ``folder`` whose names start with one of ``prefixes`` (the staging and trash
    folders an interrupted write leaves behind); returns what was removed."""
    removed = []
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.startswith(prefixes):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed
