"""One task = one input unit: stream items, validate, quarantine, partition, write.

Runs in a worker process (or inline with --jobs 1). It writes only its own uniquely named
files (names from the input's sha256), so tasks never collide and a retried task rewrites the
same bytes. Everything it reports back is plain data (`TaskResult`).
"""

from __future__ import annotations

import gc
import json
import logging
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from . import converters, fastpath, profile, validate, writers
from .arrowbuild import records_to_table
from .converters.base import ConvertOptions, Item, SourceRef
from .errors import TgExportError
from .executors import check_cancelled
from .fastpath.records import Stamp
from .fastpath.runner import FastPathAbort, FastRunner
from .framing import Batch, DocumentFramer, LayoutError, read_into
from .normalize import stamp_provenance
from .pseudonymize import PseudonymizeSpec, pseudonymizer_for
from .sink import PartitionSink
from .sources import InputUnit
from .writers.base import WriteJob, WrittenFile, make_dirs_below

BATCH_ROWS = 20_000
PROGRESS_STEP = 1 << 22
FAST_FORMAT = "tdesktop-json"
log = logging.getLogger(__name__)


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
    pseudonymize: PseudonymizeSpec | None = None  # the key, in memory only (--pseudonymize)

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
    stages: Counter = field(default_factory=Counter)  # seconds per stage (TGEXPORT_PROFILE)
    rows: Counter = field(default_factory=Counter)  # rows by path: fast / per_record
    worker: dict[str, Any] | None = None  # who ran it (Dask): address, seconds; set by the engine
    keys: dict[str, Any] | None = None  # arrowbuild.KeyCheck summary: lets the merge step skip


class _ProgressReader:
    """Counts bytes read and reports them in steps (after `skip` bytes already reported)."""

    def __init__(self, raw: Any, spec: TaskSpec, skip: int = 0) -> None:
        self._raw, self._spec, self._pending, self._skip = raw, spec, 0, skip
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._count(len(data))
        return data

    def readinto(self, buffer: memoryview) -> int:
        got = read_into(self._raw, buffer)
        self._count(got)
        return got

    def _count(self, size: int) -> None:
        self.total += size
        self._pending += size
        if self._pending >= PROGRESS_STEP or not size:
            self.flush()

    def flush(self) -> None:
        if self._skip:
            skipped = min(self._skip, self._pending)
            self._skip -= skipped
            self._pending -= skipped
        if self._pending and self._spec.progress is not None:
            self._spec.progress.put((self._spec.index, self._pending))
        self._pending = 0


_GC_LOCK = threading.Lock()
_GC_PAUSES = [0, True]  # tasks in progress in this process, was the collector on before the first


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The data is acyclic; the collector would only re-walk the live batches.

    Counted, so that tasks on a thread pool overlap safely: on again after the last one ends.
    """
    with _GC_LOCK:
        if _GC_PAUSES[0] == 0:
            _GC_PAUSES[1] = gc.isenabled()
            gc.disable()
        _GC_PAUSES[0] += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _GC_PAUSES[0] -= 1
            if _GC_PAUSES[0] == 0 and _GC_PAUSES[1]:
                gc.enable()


def run_task(spec: TaskSpec) -> TaskResult:
    """Convert one input unit into data files and a rejects file under `spec.root`."""
    work = spec.root / ".tasks" / spec.short
    shutil.rmtree(work, ignore_errors=True)
    make_dirs_below(spec.root, work)
    started = time.perf_counter()
    with _gc_paused():
        result, sink = _convert(spec, work)
        _finish(spec, result, sink, work)
    result.stages["total"] = time.perf_counter() - started
    profile.record(spec, result)
    return result


def _new_result(spec: TaskSpec) -> TaskResult:
    return TaskResult(spec.index, spec.unit.display, spec.fmt, spec.sha256, spec.unit.size, run_id=spec.run_id)


def new_sink(spec: TaskSpec, root: Path, work: Path) -> PartitionSink:
    """The partition writer of one task (or range): files `part-<sha16>-<i>` under `root/posts`."""
    job = WriteJob(root, f"part-{spec.short}", spec.footer)
    return PartitionSink(writers.get(spec.writer), job, spec.partition_by, work / "spill")


def _convert(spec: TaskSpec, work: Path) -> tuple[TaskResult, PartitionSink]:
    """Items -> written partitions; the columnar fast path when it applies, else per record."""
    reported = 0
    # Pseudonymized runs go per record until the fast path calls pseudonymize.pseudonymize_batch.
    if spec.fmt == FAST_FORMAT and fastpath.enabled() and spec.pseudonymize is None:
        result, sink = _new_result(spec), new_sink(spec, spec.root, work)
        try:
            reported = _convert_fast(spec, result, sink, work)
            return result, sink
        except (FastPathAbort, LayoutError) as exc:
            log.info("%s: per-record conversion (%s)", spec.unit.display, exc)
            reported = getattr(exc, "reported", 0)
            sink.discard()
    result, sink = _new_result(spec), new_sink(spec, spec.root, work)
    _convert_records(spec, result, sink, work, reported)
    return result, sink


def _convert_fast(spec: TaskSpec, result: TaskResult, sink: PartitionSink, work: Path) -> int:
    stamp = Stamp(spec.fmt, spec.unit.display, spec.sha256, spec.run_id)
    with spec.unit.open() as raw, open(work / "rejects.jsonl", "wb") as rejects:
        reader = _ProgressReader(raw, spec)

        def route(item: Item, accepted: list) -> None:
            _route(item, spec, result, accepted, rejects)

        runner = FastRunner(stamp, spec.options, route)
        try:
            run_batches(DocumentFramer(reader).batches(), runner, result, sink)
        except (FastPathAbort, LayoutError) as exc:
            reader.flush()
            exc.reported = reader.total  # type: ignore[attr-defined]
            raise
        reader.flush()
    return reader.total


def run_batches(batches: Iterator[Batch], runner: FastRunner, result: TaskResult, sink: PartitionSink) -> None:
    """Feed framed batches through the fast runner into the sink; fold timings into `result`."""
    started = time.perf_counter()
    for batch in batches:
        check_cancelled()
        runner.stages["read"] += time.perf_counter() - started
        if batch.chat.pointer:  # an account export: its chats share the year/month partitions,
            sink.eager = False  # so partitions are spilled and each written once, at the end
        table = runner.run_batch(batch)
        result.read += batch.count
        started = time.perf_counter()
        sink.add(table)
        runner.stages["write"] += time.perf_counter() - started
        started = time.perf_counter()
    runner.stages["read"] += time.perf_counter() - started
    result.stages.update(runner.stages)
    result.rows.update(runner.rows)


def _convert_records(spec: TaskSpec, result: TaskResult, sink: PartitionSink, work: Path, skip: int) -> None:
    source = SourceRef(spec.unit.display, spec.sha256, spec.unit.size)
    with spec.unit.open() as raw:
        reader = _ProgressReader(raw, spec, skip)
        items = converters.get(spec.fmt).iter_items(reader, source, spec.options)
        route_items(items, spec, result, sink, work / "rejects.jsonl")
        reader.flush()


def route_items(items: Iterator[Item], spec: TaskSpec, result: TaskResult, sink: PartitionSink, rejects: Path) -> None:
    """Items of the per-record path: records into the sink in batches, rejects into `rejects`."""
    started = time.perf_counter()
    read = 0
    with open(rejects, "wb") as out:
        batch: list[dict[str, Any]] = []
        for item in items:
            read += 1
            result.read += 1
            _route(item, spec, result, batch, out)
            if len(batch) >= BATCH_ROWS:
                check_cancelled()
                sink.add(records_to_table(batch))
                batch.clear()
        sink.add(records_to_table(batch))
    result.rows["per_record"] += read
    result.stages["per_record"] += time.perf_counter() - started


def _finish(spec: TaskSpec, result: TaskResult, sink: PartitionSink, work: Path) -> None:
    started = time.perf_counter()
    result.files = sink.close()
    result.keys = sink.key_check().summary()
    result.written = sum(f.rows for f in result.files)
    if result.quarantined:
        result.rejects = (work / "rejects.jsonl").relative_to(spec.root).as_posix()
    shutil.rmtree(work / "spill", ignore_errors=True)
    result.stages["write"] += time.perf_counter() - started


def _route(item: Item, spec: TaskSpec, result: TaskResult, batch: list, rejects: Any) -> None:
    """Append the stamped record of a valid item to `batch`; skip or reject the others."""
    if item.skip_reason:
        result.skipped[item.skip_reason] += 1
        return
    problems = list(item.problems)
    record = item.record
    pseudo, persons = pseudonymizer_for(spec.pseudonymize), None
    if record is not None:
        _stamp(record, item, spec)
        if pseudo is not None:
            persons = pseudo.record(record)
        if not problems and validate.is_valid(record):
            batch.append(record)
            return
        problems += validate.violations(record)
    if pseudo is not None:
        item.raw, problems = pseudo.reject(item.raw, problems, persons)
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
