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

Big JSON-lines files of Telethon messages are split the same way (`linesplit`: ranges of whole
lines), and big TGDataset files too (`channelsplit`: ranges of whole channels); their ranges go
through the per-record converter, on a process pool.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from . import channelsplit, converters, fastpath, linesplit, profile, splitting, writers
from .arrowbuild import KeyCheck
from .converters.base import SourceRef
from .converters.tdesktop_json import Era
from .converters.telethon_json import splits_in_lines
from .errors import TgExportError
from .executors import release_free_memory
from .fastpath.records import Stamp
from .fastpath.runner import FastPathAbort, FastRunner
from .framing import BATCH_BYTES, LayoutError, RangeFramer
from .sink import PartitionSink, Piece, read_pieces, write_partition
from .task import (
    FAST_FORMAT,
    TaskResult,
    TaskSpec,
    _gc_paused,
    _new_result,
    _ProgressReader,
    _route,
    new_sink,
    route_items,
    run_batches,
    run_task,
)
from .writers.base import WriteJob, make_dirs_below


@dataclass
class RangeResult:
    part: int
    result: TaskResult | None = None  # counts, stages
    pieces: dict = field(default_factory=dict)  # partition key -> (values, [sink.Piece]) in arrival order
    keys: KeyCheck | None = None  # what the range's rows say about repeated record keys
    rejects: str | None = None  # the range's rejects file, absolute
    aborted: str | None = None  # why the range needs the per-record path


def fast_path_input(fmt: str, unit: Any, pseudonymize: Any = None) -> bool:
    """Will this input be converted by the columnar fast path (and can it be split in ranges)?

    Telegram Desktop JSON in a plain local file, fast path on, no pseudonymization.
    """
    if fmt != FAST_FORMAT or not fastpath.enabled() or pseudonymize is not None:
        return False
    try:
        with unit.open() as stream:
            return _plain_file(stream)
    except (OSError, AttributeError, TypeError):
        return False


def _plain_file(stream: Any) -> bool:
    """A local file opened as is (not an archive member, a decompressed or a remote stream)."""
    return isinstance(stream, io.BufferedReader) and Path(stream.name).is_file()


HEAD_BYTES = 8 << 20
LINE_FORMATS = ("telethon-json",)  # JSON lines whose items carry no state from line to line


def line_input(fmt: str, unit: Any) -> bool:
    """A plain local file of JSON lines whose first line is a Telethon object (`linesplit`)."""
    if fmt not in LINE_FORMATS:
        return False
    try:
        with unit.open() as stream:
            return _plain_file(stream) and splits_in_lines(stream.read(1 << 20))
    except (OSError, AttributeError, TypeError):
        return False


CHANNEL_FORMATS = ("tgdataset",)  # one object of channels that carry no state from one to the next


def channel_input(fmt: str, unit: Any) -> bool:
    """A plain local TGDataset file (`channelsplit`: ranges of whole channels)."""
    if fmt not in CHANNEL_FORMATS:
        return False
    try:
        with unit.open() as stream:
            return _plain_file(stream) and channelsplit.ROOT_RE.match(stream.read(channelsplit.HEAD_BYTES)) is not None
    except (OSError, AttributeError, TypeError):
        return False


def _planner(fmt: str, unit: Any, pseudonymize: Any) -> Any:
    """How the input is cut into ranges (`splitting.plan`, `linesplit.plan_lines`,
    `channelsplit.plan_channels`), or None."""
    if fast_path_input(fmt, unit, pseudonymize):
        return _plan_document
    if line_input(fmt, unit):
        return linesplit.plan_lines
    return channelsplit.plan_channels if channel_input(fmt, unit) else None


def _plan_document(stream: Any, chunk: int) -> Iterator[splitting.Range]:
    return splitting.plan(stream, chunk)  # looked up at each call (tests wrap it)


def native_work(fmt: str, unit: Any, pseudonymize: Any = None) -> bool:
    """Will this input's conversion be native code (fit for worker threads)?

    A fast-path input, unless its first 8 MiB show what sends every message per record (pure
    Python, which threads would run one at a time): messages without `date_unixtime` (exports
    before tdesktop 2.7.2), or no line breaks (a re-saved, minified result.json).
    """
    if not fast_path_input(fmt, unit, pseudonymize):
        return False
    try:
        with unit.open() as stream:
            head = stream.read(HEAD_BYTES)
    except OSError:
        return False
    if b"\n" not in head[:65536]:
        return False
    return not (b'"date": "' in head and b'"date_unixtime"' not in head)


def _splittable(spec: TaskSpec, executor: Executor) -> Any:
    """The input's planner when it can be split and the executor can run its ranges, else None."""
    # Ranges meet in the shared staging folder: a local pool, or a Dask cluster whose workers see it.
    if not (isinstance(executor, ProcessPoolExecutor) or getattr(executor, "shares_staging", False)):
        return None
    return _planner(spec.fmt, spec.unit, spec.pseudonymize)


def expected_tasks(planned: list[Any], jobs: int) -> int:
    """How many tasks the inputs may become (to size the worker pool)."""
    total = 0
    for item in planned:
        chunk = splitting.range_bytes(item.unit.size, jobs)
        if chunk is not None and not (
            item.fmt == FAST_FORMAT or line_input(item.fmt, item.unit) or channel_input(item.fmt, item.unit)
        ):
            chunk = None  # (a Telethon array or pretty-printed file is read by one task)
        total += 1 if chunk is None else -(-item.unit.size // chunk)
    return total


class PlanFeed:
    """The byte ranges of one input, planned on a thread of their own (`splitting.plan`).

    Started as soon as the input is known, before its sha256 is computed (`pipeline._plan`): the
    hash and the plan then share the cores while nothing else runs, instead of the plan taking
    CPU from the range workers later (0.7 s of CPU at 1M messages). `_RangedRun` submits the
    ranges as they come; a feed that ends up unused is cancelled.
    """

    def __init__(self, unit: Any, chunk: int, planner: Any = _plan_document) -> None:
        self.unit, self.chunk, self.planner = unit, chunk, planner
        self.error: BaseException | None = None
        self._ranges: list[splitting.Range] = []
        self._done = self._cancelled = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="tgexport-plan", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self.unit.open() as stream:
                for part in self.planner(stream, self.chunk):
                    with self._cond:
                        if self._cancelled:
                            return
                        self._ranges.append(part)
                        self._cond.notify_all()
        except Exception as exc:  # noqa: BLE001 - any failure means: convert the input in one task
            self.error = exc
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[splitting.Range]:
        """The ranges in order, each as soon as it is planned (then `error` tells how it ended)."""
        taken = 0
        while True:
            with self._cond:
                while taken == len(self._ranges) and not (self._done or self._cancelled):
                    self._cond.wait()
                if taken == len(self._ranges) or self._cancelled:
                    return
                part = self._ranges[taken]
            taken += 1
            yield part

    def cancel(self) -> None:
        """Stop planning (at the next range) and let the thread end."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


def start_planning(fmt: str, unit: Any, jobs: int, pseudonymize: Any = None) -> PlanFeed | None:
    """A PlanFeed for an input that `submit_task` is likely to split (it checks again)."""
    chunk = splitting.range_bytes(unit.size, jobs)
    planner = None if chunk is None else _planner(fmt, unit, pseudonymize)
    return None if planner is None else PlanFeed(unit, chunk, planner)


def submit_task(executor: Executor, spec: TaskSpec, jobs: int, feed: PlanFeed | None = None) -> Any:
    """A future-like for the TaskResult of one input (`.result()`, `.cancel()`); `feed`: its ranges
    if they are already being planned (cancelled when the input is not split after all)."""
    chunk = splitting.range_bytes(spec.unit.size, jobs)
    if feed is not None and feed.chunk != chunk:
        feed.cancel()
        feed = None
    planner = None if chunk is None else _splittable(spec, executor)
    if planner is None:
        if feed is not None:
            feed.cancel()
        return executor.submit(run_task, spec)
    return _RangedRun(executor, spec, feed or PlanFeed(spec.unit, chunk, planner), jobs)


class _RangedRun:
    def __init__(self, executor: Executor, spec: TaskSpec, feed: PlanFeed, jobs: int) -> None:
        self._executor, self._spec, self._jobs, self._feed = executor, spec, jobs, feed
        self._futures: list[Future] = []
        self._error: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._submit, daemon=True)
        self._thread.start()

    def _submit(self) -> None:
        for part in self._feed:
            if self._cancelled:
                self._feed.cancel()
                return
            self._futures.append(self._executor.submit(run_range, self._spec, part))
        self._error = self._feed.error

    def cancel(self) -> bool:
        self._cancelled = True
        self._feed.cancel()
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
        return finalize_ranges(self._executor, self._spec, ranges, self._jobs)


def _range_work(spec: TaskSpec, part: int) -> Path:
    return spec.root / ".tasks" / f"{spec.short}-r{part:04d}"


def _discard(spec: TaskSpec, ranges: list[RangeResult]) -> None:
    for outcome in ranges:
        shutil.rmtree(_range_work(spec, outcome.part), ignore_errors=True)


def run_range(spec: TaskSpec, part: splitting.Range | linesplit.LineRange | channelsplit.ChannelRange) -> RangeResult:
    """Convert the messages of one range; its partitions are written under the range's folder."""
    work = _range_work(spec, part.part)
    shutil.rmtree(work, ignore_errors=True)
    make_dirs_below(spec.root, work)
    result = _new_result(spec)
    sink = new_sink(spec, work, work)
    started = time.perf_counter()
    try:
        with _gc_paused():
            if isinstance(part, (linesplit.LineRange, channelsplit.ChannelRange)):
                _convert_per_record(spec, part, result, sink, work)
            else:
                _convert_range(spec, part, result, sink, work)
            sink.close(defer=True)
    except (FastPathAbort, LayoutError) as exc:
        return RangeResult(part.part, aborted=str(exc) or type(exc).__name__)
    except TgExportError as exc:
        if not isinstance(part, channelsplit.ChannelRange):
            raise
        # A cut that was not between channels, a broken file, or --on-invalid fail: one task
        # over the whole file gives the dataset or the error of --jobs 1.
        return RangeResult(part.part, aborted=str(exc))
    result.stages["total"] = time.perf_counter() - started
    profile.record(spec, result, part=part.part)
    rejects = str(work / "rejects.jsonl") if result.quarantined else None
    return RangeResult(part.part, result, sink.pieces(), sink.key_check(), rejects)


def _convert_range(spec: TaskSpec, part: splitting.Range, result: TaskResult, sink: PartitionSink, work: Path) -> None:
    stamp = Stamp(spec.fmt, spec.unit.display, spec.sha256, spec.run_id)
    with spec.unit.open() as raw, open(work / "rejects.jsonl", "wb") as rejects:

        def route(item: Any, accepted: list) -> None:
            _route(item, spec, result, accepted, rejects)

        runner = FastRunner(stamp, spec.options, route, era=Era(part.era))
        read = 0
        for segment in part.segments:
            reader = _ProgressReader(splitting.SegmentReader(raw, segment), spec)
            framer = RangeFramer(reader, segment.chat, segment.pad, segment.first_index, BATCH_BYTES)
            run_batches(framer.batches(), runner, result, sink)
            reader.flush()
            read += reader.total
        skeleton = part.owned[1] - part.owned[0] - read  # the bytes between arrays it owns
        if skeleton > 0 and spec.progress is not None:
            spec.progress.put((spec.index, skeleton))
        result.stages.clear()
        result.rows.clear()
        result.stages.update(runner.stages)
        result.rows.update(runner.rows)


def _convert_per_record(
    spec: TaskSpec,
    part: linesplit.LineRange | channelsplit.ChannelRange,
    result: TaskResult,
    sink: PartitionSink,
    work: Path,
) -> None:
    """The items of one range, per record, into the range's sink: whole lines of a JSON-lines
    file, or whole channels of a TGDataset file (read as `{` + them + `}`)."""
    source = SourceRef(spec.unit.display, spec.sha256, spec.unit.size)
    converter = converters.get(spec.fmt)
    with spec.unit.open() as raw:
        reader = _ProgressReader(splitting.SegmentReader(raw, part), spec)
        if isinstance(part, linesplit.LineRange):
            items = converter.iter_line_range(reader, source, spec.options, part.first_line)
        else:
            items = converter.iter_channel_range(channelsplit.FramedRange(reader), source, spec.options, part.part == 0)
        route_items(items, spec, result, sink, work / "rejects.jsonl")
        reader.flush()
        between = part.owned[1] - part.owned[0] - reader.total  # commas, the root's braces
        if between > 0 and spec.progress is not None:
            spec.progress.put((spec.index, between))


def finalize_ranges(executor: Executor, spec: TaskSpec, ranges: list[RangeResult], jobs: int) -> TaskResult:
    """Place every partition's file: renamed when one range wrote it whole, else joined.

    A partition whose rows all sit in one range was written by that range exactly as
    `run_task` writes it (all its rows, sorted): the file is renamed into the dataset. The other
    partitions are joined on the workers (`join_partitions`): the pieces in range order, each in
    arrival order, stable-sorted, written once.
    """
    started = time.perf_counter()
    if getattr(executor, "shares_memory", False):
        release_free_memory()
    work = spec.root / ".tasks" / spec.short
    shutil.rmtree(work, ignore_errors=True)
    make_dirs_below(spec.root, work)
    result = _new_result(spec)
    stages: Counter = Counter()
    for outcome in ranges:
        _add_counts(result, outcome.result)
        stages.update(outcome.result.stages)
    _join_rejects(ranges, work / "rejects.jsonl")
    if result.quarantined:
        result.rejects = (work / "rejects.jsonl").relative_to(spec.root).as_posix()
    placed, joins = _place_whole_files(spec, ranges)
    futures = [executor.submit(join_partitions, spec, group) for group in _groups(joins, jobs)]
    for future in futures:
        placed += future.result()
    result.files = sorted(placed, key=lambda f: f.path)
    result.written = sum(f.rows for f in result.files)
    keys = KeyCheck()
    for outcome in ranges:  # in range order: the order of the rows in the input
        keys.join(outcome.keys)
    result.keys = keys.summary()
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


def _place_whole_files(spec: TaskSpec, ranges: list[RangeResult]) -> tuple[list, list]:
    """Rename the files ranges wrote whole; list the partitions to join, with their pieces."""
    by_key: dict[tuple, list[tuple[int, dict, Piece]]] = {}
    for outcome in ranges:
        for key, (values, pieces) in outcome.pieces.items():
            by_key.setdefault(tuple(key), []).extend((outcome.part, values, piece) for piece in pieces)
    placed, joins = [], []
    for pieces in by_key.values():
        part, values, piece = pieces[0]
        if len(pieces) == 1 and piece.written is not None:
            target = spec.root / piece.written.path
            make_dirs_below(spec.root, target.parent)
            os.replace(_range_work(spec, part) / piece.written.path, target)
            placed.append(piece.written)
        else:
            joins.append((values, [(p, pc) for p, _, pc in pieces]))
    return placed, joins


def _groups(joins: list[tuple], count: int) -> list[list[tuple]]:
    """Partitions to join, dealt into at most `count` groups of about equal size."""
    groups: list[list[tuple]] = [[] for _ in range(max(1, min(count, len(joins))))]
    load = [0] * len(groups)
    for entry in sorted(joins, key=lambda e: -len(e[1])):
        lightest = load.index(min(load))
        groups[lightest].append(entry)
        load[lightest] += len(entry[1])
    return [g for g in groups if g]


def join_partitions(spec: TaskSpec, joins: list[tuple]) -> list:
    """Write partitions whose rows are spread over ranges (a worker's share of the finalize)."""
    job = WriteJob(spec.root, f"part-{spec.short}", spec.footer)
    writer = writers.get(spec.writer)
    written = []
    with _gc_paused():
        for values, pieces in joins:
            tables: list[pa.Table] = []
            for part, piece in pieces:
                tables += read_pieces(_range_work(spec, part), [piece])
            written.append(write_partition(writer, job, values, tables))  # within the write budget
    return written


def _add_counts(total: TaskResult, part: TaskResult) -> None:
    total.read += part.read
    total.quarantined += part.quarantined
    total.skipped.update(part.skipped)
    total.reasons.update(part.reasons)
    total.rows.update(part.rows)
