"""The writer interface: sorted partition tables in, files under `posts/` out."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pyarrow as pa


@dataclass(frozen=True)
class WrittenFile:
    path: str  # relative to the dataset root, with `/`
    partition: dict[str, Any]
    rows: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "partition": self.partition,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class WriteJob:
    """Where and how one task writes: the dataset root, a unique file stem, the footer JSON.

    `root` must exist: writers create the folders below it, never it (`make_dirs_below`).
    """

    root: Path
    stem: str  # e.g. `part-0123456789abcdef`; files are `<stem>-<i>.<ext>`
    footer: dict[str, Any]


class Writer(Protocol):
    name: ClassVar[str]
    extension: ClassVar[str]

    def write(self, job: WriteJob, partitions: Iterable[tuple[dict[str, Any], pa.Table]]) -> list[WrittenFile]:
        """Write each (partition values, sorted table) under `posts/` and describe the files."""


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def make_dirs_below(root: Path, folder: Path) -> None:
    """`mkdir -p folder`, for a folder inside `root`, without ever creating `root` itself.

    Tasks write into the driver's staging folder. When a run is abandoned (an error, Ctrl-C),
    the driver removes that folder while tasks it cannot interrupt (Dask workers) may still be
    running: their next write must fail, not bring back a half-written staging folder.
    """
    current = root
    for part in folder.relative_to(root).parts:
        current = current / part
        try:  # not Path.mkdir(exist_ok=True): it says FileExistsError if the folder goes meanwhile
            os.mkdir(current)  # FileNotFoundError if `root` is gone
        except FileExistsError:
            continue


def discard_folder(folder: Path, *, attempts: int = 50, pause: float = 0.02) -> None:
    """Remove an abandoned staging folder that tasks the driver cannot stop may still write into.

    A plain `rmtree` loses that race: a file created in a folder after rmtree listed it makes
    the folder's `rmdir` fail, and the half-written staging folder stays. So the folder is first
    renamed away (every later write by path, and `make_dirs_below`, then fails), and whatever a
    write already under way put there is swept again, for up to `attempts` x `pause` seconds.
    """
    grave = folder.with_name(f"{folder.name}.discarded-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(folder, grave)
    except FileNotFoundError:
        return
    except OSError:  # cannot rename (permissions, a mount point): sweep it where it is
        grave = folder
    for _ in range(attempts):
        shutil.rmtree(grave, ignore_errors=True)
        if not os.path.lexists(grave):
            return
        time.sleep(pause)


def describe(root: Path, path: Path, partition: dict[str, Any], rows: int) -> WrittenFile:
    return WrittenFile(
        path=path.relative_to(root).as_posix(),
        partition=partition,
        rows=rows,
        bytes=path.stat().st_size,
        sha256=file_digest(path),
    )
