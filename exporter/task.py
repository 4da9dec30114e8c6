"""One task = one input unit: stream items, validate, quarantine, partition, write.

Runs in a worker process (or inline with --jobs 1). It writes only its own uniquely named
files (names from the input's sha256), so tasks never collide and a retried task rewrites the
same bytes. Everything it reports back is plain data (`TaskResult`).
"""

from __future__ import annotations

import gc
import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from . import converters, validate, writers
from .arrowbuild import records_to_table
from .converters.base import ConvertOptions, Item, SourceRef
from .errors import TgExportError
from .normalize import stamp_provenance
from .sources import InputUnit
from .spill import PartitionSpill
from .writers.base import WriteJob, WrittenFile

BATCH_ROWS = 20_000
PROGRESS_STEP = 1 << 22


class InvalidItemError(TgExportError):
    """An item failed validation under `--on-invalid fail`."""


@dataclass
class TaskSpec:
    index: int
    unit: InputUnit
    fmt: str
    sha256: str
    root: Path  # staging dataset root
    writer: str
    partition_by: tuple[str, ...]
    options: ConvertOptions
    on_invalid: str
    run_id: str
    footer: dict[str, Any]
    progress: Any = None  # a queue accepting (index, bytes) or None

    @property
    def short(self) -> str:
        return self.sha256[:16]


@dataclass
class TaskResult:
    index: int
    display: str
    fmt: str
    sha256: str
    bytes: int
    read: int = 0
    written: int = 0
    quarantined: int = 0
    merged: int = 0
    run_id: str = ""
    skipped: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    files: list[WrittenFile] = field(default_factory=list)
    rejects: str | None = None  # temp rejects file, relative to the root


class _ProgressReader:
    """Counts bytes read and reports them in steps."""

    def __init__(self, raw: Any, spec: TaskSpec) -> None:
        self._raw, self._spec, self._pending = raw, spec, 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._pending += len(data)
        if self._pending >= PROGRESS_STEP or not data:
            self.flush()
        return data

    def flush(self) -> None:
        if self._pending and self._spec.progress is not None:
            self._spec.progress.put((self._spec.index, self._pending))
        self._pending = 0


def run_task(spec: TaskSpec) -> TaskResult:
    """Convert one input unit into data files and a rejects file under `spec.root`."""
    work = spec.root / ".tasks" / spec.short
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result = TaskResult(spec.index, spec.unit.display, spec.fmt, spec.sha256, spec.unit.size, run_id=spec.run_id)
    spill = PartitionSpill(work / "spill", spec.partition_by)
    source = SourceRef(spec.unit.display, spec.sha256, spec.unit.size)
    rejects_path = work / "rejects.jsonl"
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the data is acyclic; the collector would only re-walk live batches
    try:
        with spec.unit.open() as raw, open(rejects_path, "wb") as rejects:
            reader = _ProgressReader(raw, spec)
            batch: list[dict[str, Any]] = []
            for item in converters.get(spec.fmt).iter_items(reader, source, spec.options):
                _route(item, spec, result, batch, rejects)
                if len(batch) >= BATCH_ROWS:
                    spill.add(records_to_table(batch))
                    batch.clear()
            spill.add(records_to_table(batch))
            reader.flush()
        job = WriteJob(spec.root, f"part-{spec.short}", spec.footer)
        result.files = writers.get(spec.writer).write(job, spill.partitions())
        result.written = sum(f.rows for f in result.files)
        if result.quarantined:
            result.rejects = rejects_path.relative_to(spec.root).as_posix()
    finally:
        if gc_was_enabled:
            gc.enable()
    shutil.rmtree(work / "spill", ignore_errors=True)
    return result


def _route(item: Item, spec: TaskSpec, result: TaskResult, batch: list, rejects: Any) -> None:
    result.read += 1
    if item.skip_reason:
        result.skipped[item.skip_reason] += 1
        return
    problems = list(item.problems)
    record = item.record
    if record is not None:
        _stamp(record, item, spec)
        if not problems and validate.is_valid(record):
            batch.append(record)
            return
        problems += validate.violations(record)
    _reject(item, problems, spec, result, rejects)


def _stamp(record: dict[str, Any], item: Item, spec: TaskSpec) -> None:
    stamp_provenance(record, spec.fmt, spec.unit.display, spec.sha256, item.locator, spec.run_id)


def _reject(item: Item, problems: list[str], spec: TaskSpec, result: TaskResult, rejects: Any) -> None:
    if spec.on_invalid == "fail":
        raise InvalidItemError(
            f"{spec.unit.display} {item.locator}: " + "; ".join(problems),
            hint="use --on-invalid quarantine to set such items aside and convert the rest",
        )
    keys = sorted({validate.reason_key(p) for p in problems}) or ["unreadable item"]
    if spec.on_invalid == "skip":
        result.skipped["invalid item (--on-invalid skip): " + ", ".join(keys)] += 1
        return
    result.quarantined += 1
    for key in keys:
        result.reasons[key] += 1
    line = {
        "run_id": spec.run_id,
        "source_format": spec.fmt,
        "source_file": spec.unit.display,
        "source_sha256": spec.sha256,
        "source_locator": item.locator,
        "reasons": problems,
        "raw": item.raw,
    }
    rejects.write(dump_line(line))


def dump_line(obj: dict[str, Any]) -> bytes:
    """One JSON line; falls back to the stdlib for values orjson refuses (ints past 64 bits)."""
    try:
        return orjson.dumps(obj, default=repr) + b"\n"
    except TypeError:
        return json.dumps(obj, default=repr, ensure_ascii=False).encode("utf-8") + b"\n"
