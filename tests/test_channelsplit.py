"""Big TGDataset files split into ranges of whole channels give the dataset of --jobs 1.

`TGEXPORT_SPLIT_BYTES` forces tiny ranges so that small inputs are split too; the ranges run on
the process pool (per-record Python), which is what `--jobs N` picks for these inputs.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import ijson
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fastpath_ranges import RecordingReporter
from test_linesplit import SPLIT_OPTIONS, first_invalid_item_errors, planned, run, split_items_equal_jobs_one

from exporter.channelsplit import FramedRange, plan_channels
from exporter.errors import InputError
from exporter.pipeline import ConvertRequest, convert

FIXTURES = Path(__file__).parent / "fixtures" / "tgdataset"


def fixture_channels() -> list[tuple[str, Any]]:
    """Every channel of the TGDataset fixtures (markdown, media, duplicates, bad entries...)."""
    channels = []
    for path in sorted(FIXTURES.glob("*.json")):
        if ".expected." not in path.name:
            channels += list(json.loads(path.read_text(encoding="utf-8")).items())
    return channels


def dump(tmp_path: Path, rounds: int = 10, indent: int | None = None, name: str = "tg.json") -> Path:
    """The fixture channels over and over under fresh channel ids, as one TGDataset object."""
    doc: dict[str, Any] = {}
    for r in range(rounds):
        for number, (key, channel) in enumerate(fixture_channels()):
            fresh = str(int(key) + r * 1000 + number) if key.lstrip("-").isdigit() else f"{key}{r}"
            doc[fresh] = channel
    path = tmp_path / "in" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = orjson.dumps(doc) if indent is None else json.dumps(doc, indent=indent, ensure_ascii=False).encode()
    path.write_bytes(text)
    return path


@pytest.mark.parametrize("kw", SPLIT_OPTIONS)
@pytest.mark.parametrize("indent", [None, 1])
def test_split_tgdataset_equals_jobs_one(tmp_path, monkeypatch, kw, indent) -> None:
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "3000")
    items = split_items_equal_jobs_one(tmp_path, dump(tmp_path, indent=indent), **kw)
    assert items["written"] > 50 and items["quarantined"] + items["skipped"] > 0


def test_split_tgdataset_fails_like_jobs_one_on_the_first_invalid_item(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "3000")
    one, two = first_invalid_item_errors(tmp_path, dump(tmp_path))
    assert one == two and ("/text_messages/" in one or "/generic_media/" in one)


@pytest.mark.parametrize("damage", ["truncated", "invalid UTF-8"])
def test_a_broken_tgdataset_file_fails_like_jobs_one(tmp_path, monkeypatch, damage) -> None:
    src = dump(tmp_path)
    data = src.read_bytes()
    if damage == "truncated":
        src.write_bytes(data[:-40])
    else:
        at = data.index(b'"message":"', len(data) // 2) + len(b'"message":"')
        src.write_bytes(data[:at] + b"\xff\xfe" + data[at:])
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "3000")
    messages = []
    for jobs in (1, 2):
        with pytest.raises(InputError) as caught:
            run(tmp_path, src, f"broken{jobs}", jobs)
        messages.append((str(caught.value), caught.value.hint))
        assert not (tmp_path / f"broken{jobs}").exists()
    assert messages[0] == messages[1]
    assert "\n" not in messages[0][0] and "b'" not in messages[0][0]  # yajl's bytes message, first line only


def test_messages_that_look_like_channels_fall_back_to_one_task(tmp_path, monkeypatch) -> None:
    """Messages whose first key is `username` make the planner cut inside a channel: the
    workers' parsers see the unbalanced ranges and the whole file is converted in one task."""
    messages = {
        str(i): {"username": "x", "message": f"post {i} " + "w" * 40, "date": 1600000000.0 + i} for i in range(1, 200)
    }
    doc = {"1234567890": {"username": "chan", "title": "One big channel", "text_messages": messages}}
    src = tmp_path / "in" / "tg.json"
    src.parent.mkdir()
    src.write_bytes(orjson.dumps(doc))
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "3000")
    with open(src, "rb") as raw:
        assert len(list(plan_channels(raw, 3000))) > 1  # the planner was fooled
    one = run(tmp_path, src, "one", 1)
    two = run(tmp_path, src, "two", 2)
    assert "finalize" not in two["stages"][0]
    assert two["outputs"] == one["outputs"]
    assert one["outputs"]["manifest"]["inputs"][0]["items"]["written"] == 199


def test_progress_adds_up_to_the_input_bytes_on_split_tgdataset(tmp_path, monkeypatch) -> None:
    src = dump(tmp_path, rounds=6, indent=2)
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "3000")
    reporter = RecordingReporter()
    report = convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "ds", jobs=2, tz_name="UTC"), reporter)
    assert "finalize" in report.results[0].stages
    total, done = reporter.stages["converting"]
    assert total == done == src.stat().st_size


# --- the planner ------------------------------------------------------------------------------

TRAPS = [
    '},"12":{"username":"trap"',  # a channel start inside a string: its quotes are escaped
    '}, "-5": {"creation_date": 1}',
    "\\",
    '"}',
    "plain",
]
message_st = st.fixed_dictionaries(
    {"message": st.one_of(st.sampled_from(TRAPS), st.text(max_size=30)), "date": st.floats(0, 2e9)}
)
channel_st = st.fixed_dictionaries(
    {"text_messages": st.dictionaries(st.integers(1, 10**6).map(str), message_st, max_size=6)},
    optional={
        "creation_date": st.floats(0, 2e9),
        "username": st.sampled_from(TRAPS),
        "generic_media": st.just({}),
    },
)


@settings(max_examples=120, deadline=None)
@given(
    channels=st.dictionaries(st.integers(-(10**12), 10**12).map(str), channel_st, min_size=1, max_size=12),
    chunk=st.integers(1, 2000),
    indent=st.sampled_from([None, 1, 2]),
)
def test_ranges_hold_every_channel_once_in_order(channels, chunk, indent) -> None:
    data = json.dumps(channels, indent=indent).encode() if indent else orjson.dumps(channels)
    ranges = planned(plan_channels, data, chunk)
    assert len(ranges) != 1  # one range would be converted twice (planned, then as the whole file)
    if not ranges:
        return
    assert ranges[0].owned[0] == 0 and ranges[-1].owned[1] == len(data)
    assert all(a.owned[1] == b.owned[0] for a, b in zip(ranges, ranges[1:], strict=False))
    seen: list[tuple[str, Any]] = []
    for part in ranges:
        assert part.owned[0] <= part.start < part.stop <= part.owned[1]
        document = FramedRange(io.BytesIO(data[part.start : part.stop]))
        chunks = []
        while piece := document.read(7):
            chunks.append(piece)
        seen += list(json.loads(b"".join(chunks)).items())
    assert seen == list(channels.items())


def test_files_that_are_no_object_of_channels_are_not_split(tmp_path) -> None:
    """Not an object of channels, or one channel: no ranges (one task reads the file), whatever the chunk."""
    one_channel = orjson.dumps({"1": {"username": "a", "text_messages": {str(i): {"message": "m"} for i in range(99)}}})
    for data in (b"[1, 2]", b"", b'{"1": {"username": "a"} trailing', b'{"1": {"a": 1},', b'"1"', one_channel):
        path = tmp_path / "x.json"
        path.write_bytes(data)
        with open(path, "rb") as raw:
            assert list(plan_channels(raw, 1)) == [], data
    # A truncated file that ends with a channel's brace is planned (its last range then fails to
    # parse: test_a_truncated_tgdataset_file_fails_like_jobs_one).
    truncated = b'{"1": {"username": "a"}, "2": {"username": "b"}'
    path.write_bytes(truncated)
    with open(path, "rb") as raw:
        assert [(r.start, r.stop) for r in plan_channels(raw, 1)] == [(1, 23), (25, 46)]


def test_framed_range_reads_whole_or_in_pieces() -> None:
    assert FramedRange(io.BytesIO(b'"1":{}')).read() == b'{"1":{}}'
    document = FramedRange(io.BytesIO(b'"1":{}'))
    assert document.read(0) == b""
    pieces = [document.read(3) for _ in range(5)]
    assert all(len(piece) <= 3 for piece in pieces) and b"".join(pieces) == b'{"1":{}}' and pieces[-1] == b""
    events = list(ijson.basic_parse(FramedRange(io.BytesIO(b'"1": {"a": 1}')), buf_size=2))
    assert events[0] == ("start_map", None) and events[-1] == ("end_map", None)
