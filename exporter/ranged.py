"""One big input, several workers: byte ranges converted in parallel, one finalize step writes.

`submit_task` is what the pipeline calls per input. Small inputs, other formats, inline and Dask
executors get one `run_task` as before. A big Telegram Desktop JSON file on the local process
pool is planned into ranges (`splitting.plan`, in a driver thread, so the first workers start
while the rest is planned); each `run_range` converts its messages through the fast path into
its own spill folder and rejects file; `finalize_ranges` then joins the spill files in range order and
has the workers write the input's data files (partitions dealt between them) exactly as
`run_task` would: same names `part-<sha16>-<i>`, same rows in the same order, so the same bytes
as `--jobs 1`.

If anything in any range needs the per-record path (an abort, a layout surprise, a plan that
could not be made), the whole input is converted by `run_task` instead.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
import time
from collections import Counter
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from . import fastpath, profile, splitting
from .arrowbuild import KeyCheck, sort_table
from .converters.tdesktop_json import Era
from .errors import TgExportError
from .fastpath.records import Stamp
from .fastpath.runner import FastPathAbort, FastRunner
from .framing import BATCH_BYTES, LayoutError, RangeFramer
from .schema import arrow_schema
from .sink import PartitionSink
from .task import (
    FAST_FORMAT,
    TaskResult,
    TaskSpec,
    _gc_paused,
    _new_result,
    _ProgressReader,
    _route,
    new_sink,
    run_batches,
    run_task,
)


@dataclass
class RangeResult:
    part: int
    result: TaskResult | None = None  # counts, stages; `files` are under the range's own root
    written: list = field(default_factory=list)  # (partition key, partition values, WrittenFile)
    hashes: Any = None  # arrowbuild.KeyCheck hashes of the rows written
    chats: list[int] = field(default_factory=list)
    usernames: bool = False
    rejects: str | None = None  # the range's rejects file, absolute
    aborted: str | None = None  # why the range needs the per-record path


def _splittable(spec: TaskSpec, executor: Executor) -> bool:
    if spec.fmt != FAST_FORMAT or not fastpath.enabled() or spec.pseudonymize is not None:
        return False
    if not isinstance(executor, ProcessPoolExecutor):
        return False
    try:
        with spec.unit.open() as stream:
            return isinstance(stream, io.BufferedReader) and Path(stream.name).is_file()
    except (OSError, AttributeError, TypeError):
        return False


def expected_tasks(planned: list[Any], jobs: int) -> int:
    """How many tasks the inputs may become (to size the worker pool)."""
    total = 0
    for item in planned:
        chunk = splitting.range_bytes(item.unit.size, jobs) if item.fmt == FAST_FORMAT else None
        total += 1 if chunk is None else -(-item.unit.size // chunk)
    return total


def submit_task(executor: Executor, spec: TaskSpec, jobs: int) -> Any:
    """A future-like for the TaskResult of one input (`.result()`, `.cancel()`)."""
    chunk = splitting.range_bytes(spec.unit.size, jobs)
    if chunk is None or not _splittable(spec, executor):
        return executor.submit(run_task, spec)
    return _RangedRun(executor, spec, chunk, jobs)


class _RangedRun:
    def __init__(self, executor: Executor, spec: TaskSpec, chunk: int, jobs: int) -> None:
        self._executor, self._spec, self._jobs = executor, spec, jobs
        self._futures: list[Future] = []
        self._error: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._plan, args=(chunk,), daemon=True)
        self._thread.start()

    def _plan(self, chunk: int) -> None:
        try:
            with self._spec.unit.open() as stream:
                for part in splitting.plan(stream, chunk):
                    if self._cancelled:
                        return
                    self._futures.append(self._executor.submit(run_range, self._spec, part))
        except Exception as exc:  # noqa: BLE001 - any failure means: convert the input in one task
            self._error = exc

    def cancel(self) -> bool:
        self._cancelled = True
        for future in list(self._futures):
            future.cancel()
        return True

    def result(self) -> TaskResult:
        self._thread.join()
        outcomes: list[Any] = []
        for future in self._futures:
            try:
                outcomes.append(future.result())
            except TgExportError as exc:
                outcomes.append(exc)
        ranges = [o for o in outcomes if isinstance(o, RangeResult)]
        if self._error is not None or len(outcomes) < 2 or any(r.aborted for r in ranges):
            _discard(self._spec, ranges)
            return self._executor.submit(run_task, self._spec).result()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                _discard(self._spec, ranges)
                raise outcome
        return finalize_ranges(self._spec, ranges)


def _range_work(spec: TaskSpec, part: int) -> Path:
    return spec.root / ".tasks" / f"{spec.short}-r{part:04d}"


def _discard(spec: TaskSpec, ranges: list[RangeResult]) -> None:
    for outcome in ranges:
        shutil.rmtree(_range_work(spec, outcome.part), ignore_errors=True)


def run_range(spec: TaskSpec, part: splitting.Range) -> RangeResult:
    """Convert the messages of one range; its partitions are written under the range's folder."""
    work = _range_work(spec, part.part)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result = _new_result(spec)
    sink = new_sink(spec, work, work)
    started = time.perf_counter()
    try:
        with _gc_paused():
            _convert_range(spec, part, result, sink, work)
            result.files = sink.close()
    except (FastPathAbort, LayoutError) as exc:
        return RangeResult(part.part, aborted=str(exc) or type(exc).__name__)
    result.stages["total"] = time.perf_counter() - started
    profile.record(spec, result, part=part.part)
    keys = sink.key_check()
    written = [(key, sink.values_of(key), f) for key, f in sink.files_by_key().items()]
    rejects = str(work / "rejects.jsonl") if result.quarantined else None
    return RangeResult(part.part, result, written, keys.all_hashes(), sorted(keys.chats), keys.usernames, rejects)


def _convert_range(spec: TaskSpec, part: splitting.Range, result: TaskResult, sink: PartitionSink, work: Path) -> None:
    stamp = Stamp(spec.fmt, spec.unit.display, spec.sha256, spec.run_id)
    with spec.unit.open() as raw, open(work / "rejects.jsonl", "wb") as rejects:

        def route(item: Any, accepted: list) -> None:
            _route(item, spec, result, accepted, rejects)

        runner = FastRunner(stamp, spec.options, route, era=Era(part.era))
        for segment in part.segments:
            reader = _ProgressReader(splitting.SegmentReader(raw, segment), spec)
            framer = RangeFramer(reader, segment.chat, segment.pad, segment.first_index, BATCH_BYTES)
            run_batches(framer.batches(), runner, result, sink)
            reader.flush()
        result.stages.clear()
        result.rows.clear()
        result.stages.update(runner.stages)
        result.rows.update(runner.rows)


def finalize_ranges(spec: TaskSpec, ranges: list[RangeResult]) -> TaskResult:
    """Move each range's files into place; a partition written by several ranges is joined.

    A partition with rows in one range only was written by that range exactly as `run_task`
    would write it (all of its rows, sorted): its file is renamed into the dataset. A partition
    whose rows span ranges is read back from each range, in range order, sorted and written once.
    """
    started = time.perf_counter()
    work = spec.root / ".tasks" / spec.short
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result = _new_result(spec)
    stages: Counter = Counter()
    for outcome in ranges:
        _add_counts(result, outcome.result)
        stages.update(outcome.result.stages)
    _join_rejects(ranges, work / "rejects.jsonl")
    if result.quarantined:
        result.rejects = (work / "rejects.jsonl").relative_to(spec.root).as_posix()
    with _gc_paused():
        result.files = _place_files(spec, ranges, work)
    result.written = sum(f.rows for f in result.files)
    keys = KeyCheck()
    keys.chats = {c for o in ranges for c in o.chats}
    keys.usernames = any(o.usernames for o in ranges)
    result.keys = keys.summary(np.concatenate([o.hashes for o in ranges]))
    stages["finalize"] = time.perf_counter() - started
    result.stages = stages
    profile.record(spec, result, part=-1)
    _discard(spec, ranges)
    return result


def _join_rejects(ranges: list[RangeResult], target: Path) -> None:
    with open(target, "wb") as out:
        for outcome in ranges:
            if outcome.rejects:
                with open(outcome.rejects, "rb") as part_rejects:
                    shutil.copyfileobj(part_rejects, out, 1 << 20)


def _place_files(spec: TaskSpec, ranges: list[RangeResult], work: Path) -> list:
    by_key: dict[tuple, list[tuple[RangeResult, dict, Any]]] = {}
    for outcome in ranges:
        for key, values, written in outcome.written:
            by_key.setdefault(tuple(key), []).append((outcome, values, written))
    sink = new_sink(spec, spec.root, work)
    files = []
    for pieces in by_key.values():
        if len(pieces) == 1:
            outcome, _, written = pieces[0]
            target = spec.root / written.path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(_range_work(spec, outcome.part) / written.path, target)
            files.append(written)
            continue
        tables = [_read_back(spec, outcome, written) for outcome, _, written in pieces]
        table = sort_table(pa.concat_tables(tables)).combine_chunks()
        (joined,) = sink.writer.write(sink.job, [(pieces[0][1], table)])
        files.append(joined)
    return sorted(files, key=lambda f: f.path)


def _read_back(spec: TaskSpec, outcome: RangeResult, written: Any) -> pa.Table:
    from .merge import read_data_file

    table = read_data_file(_range_work(spec, outcome.part) / written.path)
    return table.select(arrow_schema().names).cast(arrow_schema())


def _add_counts(total: TaskResult, part: TaskResult) -> None:
    total.read += part.read
    total.quarantined += part.quarantined
    total.skipped.update(part.skipped)
    total.reasons.update(part.reasons)
    total.rows.update(part.rows)
