"""Big Telethon JSON-lines files split into ranges of whole lines give the dataset of --jobs 1.

`TGEXPORT_SPLIT_BYTES` forces tiny ranges so that small inputs are split too; the ranges run on
the process pool (per-record Python), which is what `--jobs N` picks for these inputs.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fastpath_ranges import RecordingReporter, outputs

from exporter.converters.telethon_json import splits_in_lines
from exporter.linesplit import plan_lines
from exporter.pipeline import ConvertRequest, convert
from exporter.task import InvalidItemError

FIXTURES = Path(__file__).parent / "fixtures" / "telethon-json"


def fixture_lines() -> list[bytes]:
    """Every line of the JSON-lines fixtures: eras, media, polls, big ids, broken lines."""
    lines = []
    for path in sorted(FIXTURES.glob("*.jsonl")) + [FIXTURES / "pushshift-rows.ndjson"]:
        lines += path.read_bytes().splitlines()
    return lines


def dump(tmp_path: Path, rounds: int = 12, first: bytes | None = None) -> Path:
    """The fixture lines over and over with fresh ids (blank lines and a CRLF line among them)."""
    good = FIXTURES / "to-json-current.jsonl"
    out = [first if first is not None else good.read_bytes().strip()]
    for r in range(rounds):
        for number, line in enumerate(fixture_lines()):
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                out.append(line)  # the broken lines stay broken
                continue
            if isinstance(obj, dict) and isinstance(obj.get("id"), int):
                obj["id"] += (r + 1) * 10_000
            out.append(orjson.dumps(obj, option=orjson.OPT_PASSTHROUGH_SUBCLASS))
            if number % 9 == 0:
                out.append(b"")
            if number % 13 == 0:
                out[-1] += b"\r"
    path = tmp_path / "in" / "dump.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(out) + b"\n")
    return path


def run(tmp_path: Path, src: Path, name: str, jobs: int, **kw: Any) -> dict[str, Any]:
    report = convert(ConvertRequest(inputs=[str(src)], output=tmp_path / name, jobs=jobs, tz_name="UTC", **kw))
    return {"outputs": outputs(tmp_path / name), "stages": [dict(r.stages) for r in report.results]}


SPLIT_OPTIONS = [{}, {"to": "jsonl"}, {"on_invalid": "skip"}, {"partition_by": ("chat", "year", "month")}]


def split_items_equal_jobs_one(tmp_path: Path, src: Path, **kw: Any) -> dict[str, int]:
    """Convert with --jobs 1, then split between two workers: same dataset; the item counts."""
    one = run(tmp_path, src, "one", 1, **kw)
    two = run(tmp_path, src, "two", 2, **kw)
    assert "finalize" in two["stages"][0], "the input was not split"
    assert two["outputs"] == one["outputs"]
    return one["outputs"]["manifest"]["inputs"][0]["items"]


@pytest.mark.parametrize("kw", SPLIT_OPTIONS)
def test_split_json_lines_equal_jobs_one(tmp_path, monkeypatch, kw) -> None:
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "9000")
    items = split_items_equal_jobs_one(tmp_path, dump(tmp_path), **kw)
    assert items["quarantined"] + items["skipped"] > 0  # the broken lines went through too


def first_invalid_item_errors(tmp_path: Path, src: Path) -> list[str]:
    """The error of `--on-invalid fail` with --jobs 1, then split between two workers."""
    messages = []
    for jobs in (1, 2):
        with pytest.raises(InvalidItemError) as caught:
            run(tmp_path, src, f"fail{jobs}", jobs, on_invalid="fail")
        messages.append(str(caught.value))
    return messages


def test_split_json_lines_fail_like_jobs_one_on_the_first_invalid_item(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "9000")
    one, two = first_invalid_item_errors(tmp_path, dump(tmp_path))
    assert one == two and " line " in one


def test_json_lines_whose_first_line_is_no_message_go_in_one_task(tmp_path, monkeypatch) -> None:
    """The format gate looks at the first lines: a file that opens with a broken line is read whole."""
    src = dump(tmp_path, first=b'{"_": "Message", "id": 1, "broken')
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "9000")
    one = run(tmp_path, src, "one", 1)
    two = run(tmp_path, src, "two", 2)
    assert "finalize" not in two["stages"][0]
    assert two["outputs"] == one["outputs"]


def test_progress_adds_up_to_the_input_bytes_on_split_json_lines(tmp_path, monkeypatch) -> None:
    src = dump(tmp_path, rounds=6)
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "9000")
    reporter = RecordingReporter()
    convert(ConvertRequest(inputs=[str(src)], output=tmp_path / "ds", jobs=2, tz_name="UTC"), reporter)
    total, done = reporter.stages["converting"]
    assert total == done == src.stat().st_size


@pytest.mark.parametrize(
    ("head", "splits"),
    [
        (b'{"_": "Message", "id": 1}\n{"_": "Message", "id": 2}\n', True),
        (b'\xef\xbb\xbf\n  {"data": "{\\"_\\": \\"Message\\"}", "message_id": 1}\n', True),  # BOM, Pushshift row
        (b'[{"_": "Message", "id": 1}]\n', False),  # a JSON array
        (b'{\n "_": "Message",\n "id": 1\n}\n', False),  # pretty-printed values
        (b'{"_": "Message", "id": 1}', False),  # no whole first line in the head
        (b'{"id": 1, "message": "no type"}\n', False),  # not recognisably Telethon
        (b"not json\n", False),
    ],
)
def test_which_files_split_in_lines(head, splits) -> None:
    assert splits_in_lines(head) is splits


lines_st = st.lists(
    st.one_of(st.just(b""), st.just(b"\r"), st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" "))),
    min_size=0,
    max_size=60,
)


def planned(planner: Any, data: bytes, chunk: int) -> list[Any]:
    """The ranges `planner` makes of `data` written to a real file (planners map the file)."""
    target = Path("/dev/shm" if Path("/dev/shm").is_dir() else "/tmp") / f"tgexport-plan-{id(data)}"
    target.write_bytes(data)
    try:
        with open(target, "rb") as raw:
            return list(planner(raw, chunk))
    finally:
        target.unlink()


@settings(max_examples=150, deadline=None)
@given(lines=lines_st, chunk=st.integers(1, 300), final_newline=st.booleans())
def test_ranges_hold_every_line_once_with_its_number(lines, chunk, final_newline) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    ranges = planned(plan_lines, data, chunk)
    assert b"".join(data[r.start : r.stop] for r in ranges) == data
    assert [r.part for r in ranges] == list(range(len(ranges)))
    for r in ranges:
        assert r.start == 0 or data[r.start - 1 : r.start] == b"\n"  # cut just after a new line
        assert r.first_line == data[: r.start].count(b"\n") + 1
        assert r.stop > r.start


def test_a_range_numbers_its_lines_like_the_whole_file(tmp_path) -> None:
    """Locators (`line N`) and rejects of a range are those of the whole file at the same lines."""
    from exporter.converters.base import ConvertOptions, SourceRef
    from exporter.converters.telethon_json import CONVERTER

    src = dump(tmp_path, rounds=2)
    data = src.read_bytes()
    source = SourceRef("dump.jsonl", "0" * 64, len(data))
    options = ConvertOptions()
    whole = [(i.locator, i.problems) for i in CONVERTER.iter_items(io.BytesIO(data), source, options)]
    with open(src, "rb") as raw:
        ranges = list(plan_lines(raw, 3000))
    assert len(ranges) > 3
    pieces = []
    for r in ranges:
        items = CONVERTER.iter_line_range(io.BytesIO(data[r.start : r.stop]), source, options, r.first_line)
        pieces += [(i.locator, i.problems) for i in items]
    assert pieces == whole and any(problems for _, problems in whole)  # broken lines among them


def test_split_json_lines_pseudonymized_equal_jobs_one(tmp_path, monkeypatch) -> None:
    """Keyed pseudonyms do not depend on which worker computes them."""
    from exporter import pseudonymize as pz

    src = dump(tmp_path, rounds=4)
    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "9000")
    spec = pz.PseudonymizeSpec(bytes(range(32)))
    one = run(tmp_path, src, "one", 1, pseudonymize=spec)
    two = run(tmp_path, src, "two", 2, pseudonymize=spec)
    assert "finalize" in two["stages"][0]
    assert two["outputs"] == one["outputs"]


def test_pool_is_sized_for_the_ranges_only_when_the_file_splits(tmp_path, monkeypatch) -> None:
    """A big Telethon file that is not JSON lines is one task: no pool of idle workers for it."""
    from functools import partial

    from exporter.pipeline import Planned
    from exporter.ranged import expected_tasks
    from exporter.sources import InputUnit

    monkeypatch.setenv("TGEXPORT_SPLIT_BYTES", "9000")
    lines = dump(tmp_path, rounds=3)
    array = tmp_path / "in" / "array.json"
    array.write_bytes(b"[" + b",\n".join(line for line in lines.read_bytes().splitlines() if line.strip()) + b"]\n")
    for path, split in ((lines, True), (array, False)):
        unit = InputUnit(str(path), partial(open, path, "rb"), path.stat().st_size, path=str(path))
        planned = [Planned(unit, "telethon-json", "0" * 64)]
        assert (expected_tasks(planned, 2) > 1) is split
