"""The streaming partition writer gives the same files as writing every partition at the end.

Rows arrive in batches; partitions are written as soon as the input moves on, rewritten when late
rows turn up, and spilled when the open ones outgrow the memory budget. Whatever the order of the
rows, every file must be byte-identical to a write of all its rows at once (stable-sorted).
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import writers
from exporter.arrowbuild import partition_columns, records_to_table, sort_table
from exporter.normalize import empty_record, stamp_provenance
from exporter.sink import PartitionSink
from exporter.spill import group_slices
from exporter.writers.base import WriteJob

FOOTER = {"test": 1}


def record(post_id: int, month: int, text: str) -> dict[str, Any]:
    rec = empty_record()
    rec.update(
        post_id=post_id,
        chat_id=77 if post_id % 5 else 78,
        chat_type="channel",
        date=f"2024-{month:02d}-01T00:00:00Z" if month else None,
        text=text,
    )
    stamp_provenance(rec, "tdesktop-json", "in.json", "a" * 64, f"/messages/{post_id}", "0" * 16)
    return rec


def reference(root: Path, table: pa.Table, partition_by: tuple[str, ...], to: str) -> dict[str, str]:
    parts = list(group_slices(table, partition_columns(table, partition_by)))
    root.mkdir(exist_ok=True)
    job = WriteJob(root, "part-x", FOOTER)
    for _, values, rows in parts:
        writers.get(to).write(job, [(values, sort_table(rows).combine_chunks())])
    return digests(root)


def digests(root: Path) -> dict[str, str]:
    files = [p for p in root.rglob("*") if p.is_file() and "posts" in p.relative_to(root).parts]
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def streamed(root: Path, batches: list[pa.Table], partition_by: tuple[str, ...], to: str, budget: int) -> Any:
    root.mkdir(exist_ok=True)
    sink = PartitionSink(writers.get(to), WriteJob(root, "part-x", FOOTER), partition_by, root / ".work", budget)
    for batch in batches:
        sink.add(batch)
    files = sink.close()
    return sink, files


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 40), st.integers(0, 4)), min_size=1, max_size=120),
    st.integers(1, 30),
    st.sampled_from([0, 2000, 1 << 30]),
    st.sampled_from([("year", "month"), ("chat", "year", "month")]),
)
def test_any_arrival_order_gives_the_files_of_one_final_write(tmp_path_factory, rows, batch, budget, partition_by):
    records = [record(post_id, month, f"row {i}") for i, (post_id, month) in enumerate(rows)]
    table = records_to_table(records)
    batches = [table.slice(i, batch) for i in range(0, table.num_rows, batch)]
    want = reference(tmp_path_factory.mktemp("ref"), table, partition_by, "parquet")
    root = tmp_path_factory.mktemp("sink")
    sink, files = streamed(root, batches, partition_by, "parquet", budget)
    assert {k: v for k, v in digests(root).items() if k.startswith("posts/")} == want
    assert [f.path for f in files] == sorted(want)
    assert sum(f.rows for f in files) == table.num_rows


@pytest.mark.parametrize("to", ["parquet", "jsonl"])
def test_late_rows_rewrite_the_partition(tmp_path, to):
    rng = random.Random(2)
    records = [record(i, 1 + i // 100, "x" * rng.randint(0, 50)) for i in range(300)]
    records += [record(1000 + i, 1, "late") for i in range(10)]  # month 1 again, long after it was written
    table = records_to_table(records)
    want = reference(tmp_path / "ref", table, ("year", "month"), to)
    sink, _ = streamed(
        tmp_path / "sink", [table.slice(i, 40) for i in range(0, 310, 40)], ("year", "month"), to, 1 << 30
    )
    assert sink.rewrites == 1
    assert {k: v for k, v in digests(tmp_path / "sink").items() if k.startswith("posts/")} == want


def test_key_check_sees_every_row_once(tmp_path):
    table = records_to_table([record(i, 1 + i % 2, "") for i in range(50)] + [record(3, 1, "dup")])
    sink, _ = streamed(tmp_path, [table.slice(i, 7) for i in range(0, 51, 7)], ("year", "month"), "parquet", 1 << 30)
    summary = sink.key_check().summary()
    assert summary["unique"] is False and summary["chats"] == [77, 78]


def test_sorted_contiguous_matches_concat_sort_combine_and_takes_the_pieces() -> None:
    """The column-by-column join that lets pieces go early gives the very table (and bytes) of
    concat + stable sort + combine_chunks."""
    from exporter.arrowbuild import sorted_contiguous

    rng = random.Random(3)
    rows = [record(rng.randint(1, 60), 1 + i % 3, f"t{i} " * rng.randint(0, 5)) for i in range(200)]
    table = records_to_table(rows)
    cuts = sorted(rng.sample(range(1, 200), 9))
    pieces = [table.slice(a, b - a) for a, b in zip([0, *cuts], [*cuts, 200], strict=True)]
    expected = sort_table(pa.concat_tables(pieces)).combine_chunks()
    handed = list(pieces)
    got = sorted_contiguous(handed)
    assert handed == []
    assert got.equals(expected) and got.schema == expected.schema
    assert all(column.num_chunks == 1 for column in got.columns)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([77, 78, 5, None]),
            st.lists(st.integers(1, 30), min_size=1, max_size=6),
            st.sampled_from(["ascending", "as drawn", "two chats"]),
        ),
        min_size=2,
        max_size=7,
    ),
    st.booleans(),
)
def test_pieces_of_one_chat_each_are_joined_like_a_stable_sort(pieces: list, username: bool) -> None:
    """An account export's partition arrives chat after chat; putting the pieces in chat order
    first must give the table of concat + stable sort (duplicates, unsorted ids, null chats)."""
    from exporter.arrowbuild import sorted_contiguous

    tables = []
    for n, (chat, posts, shape) in enumerate(pieces):
        rows = []
        for i, post in enumerate(sorted(posts) if shape == "ascending" else posts):
            rec = record(post, 1, f"p{n}.{i}")
            rec["chat_id"] = 5 if shape == "two chats" and i % 2 else chat
            rec["chat_username"] = "someone" if username and n == 0 else None
            rows.append(rec)
        tables.append(records_to_table(rows))
    expected = sort_table(pa.concat_tables(tables)).combine_chunks()
    got = sorted_contiguous(list(tables))
    assert got.equals(expected)


def test_a_piece_with_two_chats_keeps_its_place() -> None:
    """Moving a two-chat piece by its smaller chat would put its rows of the other chat before
    earlier rows with the same key."""
    from exporter.arrowbuild import sorted_contiguous

    def rows(*spec: tuple[int, int, str]) -> pa.Table:
        out = []
        for chat, post, text in spec:
            rec = record(post, 1, text)
            rec["chat_id"] = chat
            out.append(rec)
        return records_to_table(out)

    tables = [rows((77, 1, "first")), rows((77, 1, "second"), (5, 2, "other chat"))]
    got = sorted_contiguous(list(tables))
    assert got.column("text").to_pylist() == ["other chat", "first", "second"]


def test_write_budget_lets_small_partitions_overlap_and_big_ones_run_alone() -> None:
    import threading

    from exporter.sink import WriteBudget

    budget = WriteBudget(100)
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def hold(name: str, nbytes: int) -> None:
        with budget.hold(nbytes):
            order.append(f"{name}+")
            inside.set()
            release.wait(5)
            order.append(f"{name}-")

    first = threading.Thread(target=hold, args=("a", 40))
    first.start()
    assert inside.wait(5)
    with budget.hold(50):  # 40 + 50 fit: no wait while `a` is inside
        assert budget.used == 90
    big = threading.Thread(target=hold, args=("big", 10_000))  # more than the budget: waits for `a`
    big.start()
    threading.Event().wait(0.2)
    assert order == ["a+"] and budget.used == 40
    release.set()
    first.join(5)
    big.join(5)
    assert order == ["a+", "a-", "big+", "big-"] and budget.used == 0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.sampled_from([5, 6, None]), st.integers(1, 12)), min_size=1, max_size=6),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from(["as drawn", "ascending", "descending"]),
    st.integers(1, 3),
)
def test_key_check_says_unique_only_for_unique_keys_and_for_ids_running_either_way(batches, order, cut) -> None:
    """Sound: "unique" never hides a repeated (chat id, post id). Complete enough: ids that run
    strictly up (Desktop exports) or down (Telethon dumps) per chat, in any batches, are unique."""
    from exporter.arrowbuild import KeyCheck

    rows = [row for batch in batches for row in batch]
    if order != "as drawn":  # distinct ids per chat, strictly one way
        seen: set = set()
        rows = [r for r in rows if not (r in seen or seen.add(r))]
        rows.sort(key=lambda r: r[1], reverse=order == "descending")
    check, whole = KeyCheck(), KeyCheck()
    for start in range(0, len(rows), cut):
        part = rows[start : start + cut]
        table = records_to_table([{**record(p, 1, "x"), "chat_id": c} for c, p in part])
        check.add(table)
    if rows:
        whole.add(records_to_table([{**record(p, 1, "x"), "chat_id": c} for c, p in rows]))
    keys = [r for r in rows if r[0] is not None]
    unique = check.summary()["unique"]
    if len(set(keys)) != len(keys):
        assert not unique
    if order != "as drawn":
        assert unique and whole.summary()["unique"]
    split = KeyCheck()
    halves = [rows[: len(rows) // 2], rows[len(rows) // 2 :]]
    for half in halves:  # ranges of an input: each checked alone, then joined in order
        part = KeyCheck()
        if half:
            part.add(records_to_table([{**record(p, 1, "x"), "chat_id": c} for c, p in half]))
        split.join(part)
    assert split.summary()["unique"] == whole.summary()["unique"] or not rows


def test_batches_split_into_many_partitions_are_not_held_beyond_the_budget(tmp_path) -> None:
    """Open rows are slices that keep their whole batch alive. A batch that goes to many partitions
    (a TGDataset file of many channels, each going through every month) must count whole, so the
    Arrow memory held stays within the budget however long the input is."""
    rng = random.Random(5)
    batches = [
        records_to_table([record(b * 1000 + i, 1 + (i % 12), "x" * rng.randint(200, 400)) for i in range(240)])
        for b in range(40)
    ]
    batch_bytes = max(t.get_total_buffer_size() for t in batches)
    budget = 3 * batch_bytes
    root = tmp_path / "sink"
    root.mkdir()
    sink = PartitionSink(
        writers.get("parquet"), WriteJob(root, "part-x", FOOTER), ("year", "month"), root / ".w", budget
    )
    start, peak = pa.total_allocated_bytes(), 0
    for batch in batches:
        sink.add(batch)
        assert sink.held_bytes <= budget
        peak = max(peak, pa.total_allocated_bytes() - start)
    del batch
    assert peak <= budget + 2 * batch_bytes, (peak, batch_bytes)
    sink.close()
    want = reference(tmp_path / "ref", pa.concat_tables(batches), ("year", "month"), "parquet")
    assert {k: v for k, v in digests(root).items() if k.startswith("posts/")} == want
