"""telethon-json: golden records, schema validity, sniffing, malformed input."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from golden import FIXTURES, check_golden
from jsonschema import Draft202012Validator
from kit import ODD_VALUES, Trickle, paths, replaced

from exporter.converters import get
from exporter.converters.base import ConvertOptions, Item, SourceRef
from exporter.errors import InputError
from exporter.normalize import stamp_provenance
from exporter.schema import load_schema

FMT = "telethon-json"
CASES = sorted(p for p in (FIXTURES / FMT).iterdir() if ".expected." not in p.name)
OTHER_FIXTURES = sorted(
    p for p in FIXTURES.glob("*/*") if p.parent.name != FMT and ".expected." not in p.name and p.is_file()
)
VALIDATOR = Draft202012Validator(load_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)
SOURCE = SourceRef(display="x", sha256="0" * 64, size=0)
MESSAGE = (
    '{"_": "Message", "id": %d, "peer_id": {"_": "PeerChannel", "channel_id": 1234567890}, '
    '"date": "%s", "message": "m", "post": true, "from_id": null}'
)


def convert(data: bytes, options: ConvertOptions | None = None, stream: io.RawIOBase | None = None) -> list[Item]:
    return list(get(FMT).iter_items(stream or io.BytesIO(data), SOURCE, options or ConvertOptions()))


def stamped(item: Item) -> dict:
    record = dict(item.record)
    stamp_provenance(record, FMT, "x", "0" * 64, item.locator, "0" * 16)
    return record


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_golden(path: Path) -> None:
    check_golden(FMT, path)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_good_records_are_schema_valid(path: Path) -> None:
    for item in convert(path.read_bytes()):
        if item.record is not None and not item.problems and not item.skip_reason:
            errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(stamped(item))]
            assert not errors, f"{path.name} {item.locator}: {errors}"


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_chunked_reads_give_the_same_items(path: Path) -> None:
    data = path.read_bytes()
    whole = [(i.locator, i.record, i.problems, i.skip_reason) for i in convert(data)]
    trickled = [(i.locator, i.record, i.problems, i.skip_reason) for i in convert(b"", stream=Trickle(data))]
    assert trickled == whole


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_sniff_accepts_own_fixtures(path: Path) -> None:
    assert get(FMT).sniff(path.read_bytes()[: 1 << 16], path.name) >= 0.5


@pytest.mark.parametrize("path", OTHER_FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sniff_rejects_other_formats(path: Path) -> None:
    assert get(FMT).sniff(path.read_bytes()[: 1 << 16], path.name) == 0.0


def test_sniff_rejects_tdesktop_export() -> None:
    head = b'{\n "name": "Example Channel",\n "type": "public_channel",\n "id": 1234567890,\n "messages": [\n'
    assert get(FMT).sniff(head, "result.json") == 0.0


def test_ids_above_2_53_stay_exact() -> None:
    items = convert((FIXTURES / FMT / "big-ids.jsonl").read_bytes())
    assert items[0].record["grouped_id"] == 13889431281234567
    reactions = convert((FIXTURES / FMT / "reactions-objects.jsonl").read_bytes())[0].record["reactions"]
    assert reactions[1]["custom_emoji_id"] == "5368324170671202286"
    line = b'{"_": "Message", "id": 1, "peer_id": {"_": "PeerChannel", "channel_id": 9007199254740993}, "date": 0}'
    assert convert(line)[0].record["chat_id"] == 9007199254740993


def test_ids_beyond_int64_are_refused_not_wrapped() -> None:
    line = b'{"_": "Message", "id": 9223372036854775808, "peer_id": {"_": "PeerChannel", "channel_id": 1}, "date": 0, '
    [item] = convert(line + b'"grouped_id": 18446744073709551615}')
    assert item.problems == ["id: expected an integer message id, got 9223372036854775808"]
    assert item.record["grouped_id"] is None


def test_naive_dates_need_a_time_zone() -> None:
    line = (MESSAGE % (1, "2024-01-01 12:00:00")).encode()
    with pytest.raises(InputError) as err:
        convert(line)
    assert "--tz" in err.value.hint
    [item] = convert(line, ConvertOptions(tz=ZoneInfo("Europe/Berlin"), tz_name="Europe/Berlin"))
    assert item.record["date"] == "2024-01-01T11:00:00Z"


def test_bad_date_is_a_problem_on_that_item_only() -> None:
    data = "\n".join([MESSAGE % (1, "yesterday"), MESSAGE % (2, "2024-01-01T00:00:00+00:00")]).encode()
    bad, good = convert(data)
    assert bad.problems and "date" in bad.problems[0]
    assert not good.problems and good.record["date"] == "2024-01-01T00:00:00Z"


@pytest.mark.parametrize(
    "data",
    [b"", b"  \n\n", b"\x00\x01\x02garbage\xff\xfe", b"not json at all\nstill not\n", b"[]", b"[1, 2, 3]"],
    ids=["empty", "blank", "binary", "text", "empty-array", "array-of-numbers"],
)
def test_whole_file_failures_raise_input_error_with_hint(data: bytes) -> None:
    with pytest.raises(InputError) as err:
        convert(data)
    assert err.value.hint


def test_wrong_shape_snscrape_lines() -> None:
    line = b'{"_type": "snscrape.modules.telegram.TelegramPost", "url": "https://t.me/s/examplechannel/1"}\n'
    with pytest.raises(InputError, match="no Telethon message"):
        convert(line * 3)


def test_truncated_array_yields_what_it_read_then_fails() -> None:
    data = ("[" + MESSAGE % (1, "2024-01-01T00:00:00+00:00") + ", " + MESSAGE[:40]).encode()
    stream = get(FMT).iter_items(io.BytesIO(data), SOURCE, ConvertOptions())
    assert next(stream).record["post_id"] == 1
    with pytest.raises(InputError, match="truncated") as err:
        next(stream)
    assert err.value.hint


def test_bad_line_is_one_problem_and_reading_continues() -> None:
    data = "\n".join([MESSAGE % (1, "2024-01-01T00:00:00Z"), "{broken", MESSAGE % (3, "2024-01-01T00:00:00Z")])
    first, broken, last = convert(data.encode())
    assert broken.record is None and broken.locator == "line 2" and broken.problems[0].startswith("json: ")
    assert (first.record["post_id"], last.record["post_id"]) == (1, 3)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_truncation_anywhere_raises_only_input_error(path: Path) -> None:
    data = path.read_bytes()
    for cut in range(1, len(data), max(1, len(data) // 40)):
        with contextlib.suppress(InputError):  # any other exception type fails the test
            convert(data[:cut])


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_odd_value_types_never_raise_anything_but_input_error(path: Path) -> None:
    for obj in [item.raw for item in convert(path.read_bytes()) if isinstance(item.raw, dict)]:
        for where in paths(obj):
            for odd in ODD_VALUES:
                with contextlib.suppress(InputError):
                    convert(json.dumps(replaced(obj, where, odd)).encode())
