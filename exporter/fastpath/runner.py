"""Batch by batch: parse, normalize and validate as columns; the rest through the per-record path.

`FastRunner.run_batch` turns one framed batch into one Arrow table of accepted records in the
batch's message order (what the per-record path would have appended), after handing every
message the columns cannot reproduce, or that fails the column checks, to `route` exactly as the
per-record path would: `message_item` on the message parsed with ijson, with the converter's
file-wide `Era` in the state the preceding messages left it.

Anything surprising that the per-record path would turn into an error (a message that is not
valid JSON, local dates without `--tz`) raises `FastPathAbort`: the caller then converts the whole
input per record, so errors are reported exactly as without the fast path.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import ijson
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..arrowbuild import records_to_table
from ..converters.base import ConvertOptions, Item
from ..converters.tdesktop_json import Chat, Era, LocalDatesError, message_item
from ..framing import Batch, ChatContext
from ..jsonstream import basic_events, build_value, next_event
from ..schema import arrow_schema
from . import checks, messages, records

Route = Callable[[Item, list], None]  # append an accepted, stamped record to the list, or reject


class FastPathAbort(Exception):
    """The input needs the per-record path from its start (errors, odd documents)."""


class FastRunner:
    """Converts batches of one input; keeps the per-input state (era, chats, timings)."""

    def __init__(self, stamp: records.Stamp, options: ConvertOptions, route: Route, era: Era | None = None) -> None:
        self.stamp, self.options, self.route = stamp, options, route
        self.era = era or Era()
        self.stages: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()

    def _chat(self, context: ChatContext) -> Chat:
        """The converter's view of the chat (a new one per batch: metadata may be unhashable)."""
        return Chat(context.pointer, context.name, context.raw_type, context.raw_id, era=self.era)

    def _lap(self, stage: str, started: float) -> float:
        now = time.perf_counter()
        self.stages[stage] += now - started
        return now

    def run_batch(self, batch: Batch) -> pa.Table:
        """Accepted records of the batch, in message order (rejects went through `route`)."""
        started = time.perf_counter()
        parsed = messages.parse(batch)
        if parsed is None and batch.repair():  # `\xHH` escapes: rewritten, then parsed again
            parsed = messages.parse(batch)
        started = self._lap("parse", started)
        if parsed is None:
            return self._all_per_record(batch, started)
        chat = self._chat(batch.chat)
        ok = records.eligible(parsed, messages.clean_rows(batch, parsed))
        fast = np.flatnonzero(ok)
        rows = parsed if len(fast) == batch.count else parsed.take(pa.array(fast))
        table = records.build(rows, chat, self._locators(batch, fast), self.stamp)
        started = self._lap("normalize", started)
        valid = checks.valid_rows(table)
        started = self._lap("validate", started)
        if not valid.all():
            table, fast = table.filter(pa.array(valid)), fast[valid]
        slow = np.setdiff1d(np.arange(batch.count), fast, assume_unique=True)
        self.rows["fast"] += len(fast)
        self.rows["per_record"] += len(slow)
        if not len(slow):
            self._observed(ok, 0, batch.count)
            return table
        accepted, positions = self._per_record(batch, slow, ok, chat)
        started = self._lap("per_record", started)
        merged = self._merge(table, fast, accepted, positions)
        self._lap("build", started)
        return merged

    def _locators(self, batch: Batch, rows: np.ndarray) -> pa.Array:
        indices = pa.array(rows + batch.first_index).cast(pa.string())
        return pc.binary_join_element_wise(f"{batch.chat.pointer}/messages/", indices, "")

    def _observed(self, eligible: np.ndarray, start: int, stop: int) -> None:
        """Eligible messages carry `date_unixtime`, so observing them sets the era to v2.7.2+."""
        if eligible[start:stop].any():
            self.era.legacy = False

    def _per_record(
        self, batch: Batch, slow: np.ndarray, eligible: np.ndarray, chat: Chat
    ) -> tuple[list[dict[str, Any]], list[int]]:
        accepted: list[dict[str, Any]] = []
        positions: list[int] = []
        previous = 0
        for row in slow.tolist():
            self._observed(eligible, previous, row)
            previous = row + 1
            item = self._item(_load(batch.message(row)), chat, batch, row)
            before = len(accepted)
            self.route(item, accepted)
            positions.extend([row] * (len(accepted) - before))
        self._observed(eligible, previous, batch.count)
        return accepted, positions

    def _item(self, message: Any, chat: Chat, batch: Batch, row: int) -> Item:
        locator = f"{batch.chat.pointer}/messages/{batch.first_index + row}"
        try:
            return message_item(message, chat, locator, self.options)
        except LocalDatesError as exc:
            raise FastPathAbort(str(exc)) from None

    def _merge(self, fast: pa.Table, rows: np.ndarray, accepted: list[dict], positions: list[int]) -> pa.Table:
        """Fast and per-record rows together, in message order (one `take` over both).

        Partitions then stay contiguous and sorted as the input was: no sort at write time.
        """
        if not accepted:
            return fast
        merged = pa.concat_tables([fast, records_to_table(accepted)])
        order = np.argsort(np.concatenate([rows, np.asarray(positions, np.int64)]), kind="stable")
        return merged.take(pa.array(order))

    def _all_per_record(self, batch: Batch, started: float) -> pa.Table:
        """pyarrow could not read the batch: every message through the per-record path."""
        chat = self._chat(batch.chat)
        accepted: list[dict[str, Any]] = []
        for row, message in enumerate(_load_all(batch)):
            self.route(self._item(message, chat, batch, row), accepted)
        self.rows["per_record"] += batch.count
        self._lap("per_record", started)
        return records_to_table(accepted) if accepted else arrow_schema().empty_table()


def _load(data: bytes) -> Any:
    """One message, parsed exactly as the per-record converter parses it (ijson, floats)."""
    try:
        events = basic_events(io.BytesIO(data))
        return build_value(events, next_event(events))
    except ijson.JSONError as exc:
        raise FastPathAbort(f"message is not valid JSON: {exc}") from None


def _load_all(batch: Batch) -> Iterator[Any]:
    data = b"[" + bytes(batch.padded[: batch.frames.end]) + b"]"
    try:
        events = basic_events(io.BytesIO(data))
        next_event(events)
        for _ in range(batch.count):
            yield build_value(events, next_event(events))
    except ijson.JSONError as exc:
        raise FastPathAbort(f"batch is not valid JSON: {exc}") from None
