"""jsonstream: the `\\xHH`-repairing reader (formats.md §1.12) and the event helpers."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import ijson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.jsonstream import (
    MAX_DEPTH,
    EscapeFixingReader,
    NestingError,
    basic_events,
    build_value,
    next_event,
    skip_value,
)

BOM = b"\xef\xbb\xbf"
HEX = frozenset(b"0123456789abcdefABCDEF")


def reference_fix(data: bytes) -> bytes:
    """Whole-buffer reference: a `\\xHH` whose backslash run (its own included) is odd -> `\\u00HH`."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    out, i = bytearray(), 0
    while i < len(data):
        if data[i] != 0x5C:
            out.append(data[i])
            i += 1
            continue
        j = i
        while j < len(data) and data[j] == 0x5C:
            j += 1
        run, digits = j - i, data[j + 1 : j + 3]
        if run % 2 and data[j : j + 1] == b"x" and len(digits) == 2 and all(c in HEX for c in digits):
            out += b"\\" * (run - 1) + b"\\u00" + digits
            i = j + 3
        else:
            out += data[i:j]
            i = j
    return bytes(out)


def tdesktop_string(text: str) -> bytes:
    """A JSON string literal exactly as Telegram Desktop's SerializeString writes it."""
    out = bytearray(b'"')
    for char in text:
        code = ord(char)
        if char in "\n\r\t":
            out += {"\n": b"\\n", "\r": b"\\r", "\t": b"\\t"}[char]
        elif char in '"\\':
            out += b"\\" + char.encode()
        elif code < 0x20:
            out += b"\\x%02X" % code
        elif char in "\u2028\u2029":
            out += b"\\u%04x" % code
        else:
            out += char.encode("utf-8")
    return bytes(out + b'"')


class Trickle(io.RawIOBase):
    """An underlying stream that hands out at most `step` bytes per read (short reads)."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self.step if size is None or size < 0 else min(size, self.step)
        chunk = self.data[self.pos : self.pos + size]
        self.pos += len(chunk)
        return chunk


def read_all(reader: EscapeFixingReader, sizes: list[int]) -> bytes:
    """Read with a cycle of request sizes, checking that no read returns more than asked."""
    parts, turn = [], 0
    while True:
        size = sizes[turn % len(sizes)]
        turn += 1
        part = reader.read(size)
        assert len(part) <= size
        if not part:
            return b"".join(parts)
        parts.append(part)


TRICKY_BYTES = st.lists(
    st.sampled_from([b"\\", b"\\", b"\\\\", b"x", b"x4", b"0", b"1", b"A", b"f", b"g", b'"', b"a", b"\n", b"\xc3\xa9"]),
    max_size=60,
).map(b"".join)
READ_SIZES = st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=5)


# --- EscapeFixingReader ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(data=TRICKY_BYTES, sizes=READ_SIZES, step=st.integers(min_value=1, max_value=9), bom=st.booleans())
def test_reader_equals_the_reference_transform(data: bytes, sizes: list[int], step: int, bom: bool) -> None:
    raw = (BOM if bom else b"") + data
    reader = EscapeFixingReader(Trickle(raw, step))
    assert read_all(reader, sizes) == reference_fix(raw)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(list('\\x41Ff"é😀\u2028\u2029 ') + [chr(c) for c in range(32)])
        | st.characters(exclude_categories=["Cs"]),
        max_size=40,
    ),
    sizes=READ_SIZES,
    step=st.integers(min_value=1, max_value=50),
)
def test_tdesktop_strings_parse_back_to_the_original_text(text: str, sizes: list[int], step: int) -> None:
    document = b'{"text": ' + tdesktop_string(text) + b"}"
    reader = EscapeFixingReader(Trickle(document, step))
    assert json.loads(read_all(reader, sizes)) == {"text": text}
    assert reader.fixed == sum(1 for ch in text if ord(ch) < 0x20 and ch not in "\n\r\t")


def test_literal_backslash_x_is_not_an_escape() -> None:
    raw = rb'["\\x41", "\\\x41", "\\\\x41", "\x41", "\xzz", "\x4"]'
    fixed = EscapeFixingReader(io.BytesIO(raw)).read()
    assert fixed == rb'["\\x41", "\\\u0041", "\\\\x41", "\u0041", "\xzz", "\x4"]'
    assert fixed == reference_fix(raw)


def test_reader_read_sizes() -> None:
    reader = EscapeFixingReader(io.BytesIO(BOM + b'"\\x01abc"'))
    assert reader.read(0) == b""
    assert reader.read(3) == b'"\\u'
    assert reader.read() == b'0001abc"'
    assert reader.read(10) == b"" and reader.read() == b""
    assert reader.fixed == 1


def test_bom_split_across_short_reads_and_bom_only_at_start() -> None:
    assert read_all(EscapeFixingReader(Trickle(BOM + b"[1]", 1)), [7]) == b"[1]"
    assert read_all(EscapeFixingReader(Trickle(b"\xef\xbb", 1)), [7]) == b"\xef\xbb"
    assert EscapeFixingReader(io.BytesIO(b"[" + BOM + b"]")).read() == b"[" + BOM + b"]"


def test_long_backslash_runs_are_linear_not_carried_whole() -> None:
    raw = b'"' + b"\\" * 200_000 + b'x41"'
    assert EscapeFixingReader(Trickle(raw, 64)).read() == raw  # an even run: all literal backslashes
    odd = b'"' + b"\\" * 200_001 + b'x41"'
    assert EscapeFixingReader(Trickle(odd, 64)).read() == b'"' + b"\\" * 200_000 + b'\\u0041"'


def test_reader_feeds_ijson() -> None:
    raw = b'{"text": "bell\\x07", "n": [1, 2.5]}'
    events = list(basic_events(EscapeFixingReader(io.BytesIO(raw))))
    assert ("string", "bell\x07") in events and ("number", 2.5) in events and ("number", 1) in events


# --- build_value / skip_value / next_event ------------------------------------------------------

INT64 = st.integers(min_value=1 - 2**63, max_value=2**63 - 1)  # yajl2_c: "integer overflow" beyond
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | INT64 | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


def events_of(value: Any) -> Any:
    return ijson.basic_parse(io.BytesIO(json.dumps(value).encode()), use_float=True)


@settings(max_examples=100, deadline=None)
@given(JSON_VALUES)
def test_build_value_round_trips_and_stops_at_the_end_of_the_value(value: Any) -> None:
    events = events_of([value, "after"])
    assert next_event(events) == ("start_array", None)
    assert build_value(events, next_event(events)) == value
    assert list(events) == [("string", "after"), ("end_array", None)]


@settings(max_examples=100, deadline=None)
@given(JSON_VALUES)
def test_skip_value_consumes_exactly_one_value(value: Any) -> None:
    events = events_of({"skip": value, "keep": 1})
    assert next_event(events) == ("start_map", None) and next_event(events) == ("map_key", "skip")
    skip_value(events, next_event(events))
    assert list(events) == [("map_key", "keep"), ("number", 1), ("end_map", None)]


def test_big_integers_stay_exact() -> None:
    events = events_of({"id": 2**63 - 1, "f": 0.1})
    assert build_value(events, next_event(events)) == {"id": 2**63 - 1, "f": 0.1}


def test_nesting_limit() -> None:
    ok = json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    events = events_of(ok)
    assert build_value(events, next_event(events)) == ok
    too_deep = events_of(json.loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)))
    with pytest.raises(NestingError, match="nested deeper"):
        build_value(too_deep, next_event(too_deep))
    assert issubclass(NestingError, ijson.JSONError)


@pytest.mark.parametrize(
    "events",
    [
        [("start_map", None), ("map_key", "a")],
        [("start_map", None), ("map_key", "a"), ("number", 1)],
        [("start_array", None), ("number", 1)],
    ],
)
def test_events_ending_inside_a_value_raise_incomplete_json(events: list) -> None:
    stream = iter(events)
    with pytest.raises(ijson.IncompleteJSONError):
        build_value(stream, next_event(stream))
    stream = iter(events)
    with pytest.raises(ijson.IncompleteJSONError):
        skip_value(stream, next_event(stream))


def test_next_event_at_the_end() -> None:
    with pytest.raises(ijson.IncompleteJSONError):
        next_event(iter([]))


def test_bad_escape_regex_matches_tdesktop_uppercase_hex() -> None:
    assert tdesktop_string("\x1b") == b'"\\x1B"'
    assert re.fullmatch(rb'"\\u001B"', EscapeFixingReader(io.BytesIO(tdesktop_string("\x1b"))).read())
