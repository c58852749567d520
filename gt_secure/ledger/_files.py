"""Durable file writes for the ledger: append one line, replace a file atomically, fsync dirs."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (a created or renamed file) durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_line(path: Path, line: bytes) -> None:
    """One ``O_APPEND`` write of ``line`` (newline included), then fsync; undo a short write."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        written = os.write(fd, line)
        if written != len(line):
            os.ftruncate(fd, size)
            raise OSError(f"short write to ledger {path} ({written}/{len(line)} bytes)")
        os.fsync(fd)
    finally:
        os.close(fd)


def truncate(path: Path, size: int) -> None:
    """Cut ``path`` to ``size`` bytes, durably."""
    with open(path, "r+b") as handle:
        handle.truncate(size)
        handle.flush()
        os.fsync(handle.fileno())


def _write_tmp(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def replace_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file, fsync, rename over ``path``, fsync the directory."""
    os.replace(_write_tmp(path, data), path)
    fsync_dir(path.parent)


def create_exclusively(path: Path, data: bytes) -> None:
    """Create ``path`` holding ``data`` in one step; ``FileExistsError`` if it exists."""
    tmp = _write_tmp(path, data)
    try:
        os.link(tmp, path)
    finally:
        os.unlink(tmp)
    fsync_dir(path.parent)
