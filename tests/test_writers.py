"""Writers by round trip: Parquet read back by pyarrow, polars and DuckDB; JSONL parsed back."""

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from helpers import good_messages, message, write_export

from exporter.pipeline import ConvertRequest, convert
from exporter.schema import arrow_schema
from exporter.writers.jsonl import read_jsonl

PART = ds.partitioning(pa.schema([("year", pa.int16()), ("month", pa.int8())]), flavor="hive")


def build(tmp_path: Path, to: str = "parquet", name: str = "ds", **kw) -> Path:
    msgs = good_messages(40)
    undated = message(41)
    del undated["date"]
    undated["date_unixtime"] = None
    src = write_export(tmp_path / "in" / "result.json", msgs)
    out = tmp_path / name
    convert(ConvertRequest(inputs=[str(src)], output=out, to=to, **kw))
    return out


def test_parquet_round_trip_pyarrow_polars_duckdb_agree(tmp_path):
    out = build(tmp_path)
    table = ds.dataset(out / "posts", format="parquet", partitioning=PART).to_table()
    assert table.num_rows == 40
    data_schema = arrow_schema()
    for field in data_schema:
        assert table.schema.field(field.name).type == field.type, field.name
    assert table.schema.field("year").type == pa.int16() and table.schema.field("month").type == pa.int8()
    lf = pl.scan_parquet(out / "posts", hive_schema={"year": pl.Int16, "month": pl.Int8})
    frame = lf.collect()
    assert frame.height == 40
    assert frame.schema["date"] == pl.Datetime("us", "UTC")
    assert frame.schema["entities"] == pl.List(
        pl.Struct(
            {
                "type": pl.String,
                "offset": pl.Int64,
                "length": pl.Int64,
                "url": pl.String,
                "user_id": pl.Int64,
                "custom_emoji_id": pl.String,
            }
        )
    )
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT post_id, typeof(date), typeof(year), typeof(month), typeof(post_id) FROM read_parquet("
        f"'{out}/posts/**/*.parquet', hive_partitioning = true, hive_types = {{'year': SMALLINT, 'month': TINYINT}})"
        " ORDER BY post_id"
    ).fetchall()
    assert [r[0] for r in rows] == list(range(1, 41))
    assert set(r[1:] for r in rows) == {("TIMESTAMP WITH TIME ZONE", "SMALLINT", "TINYINT", "BIGINT")}
    by_arrow = sorted(table.column("post_id").to_pylist())
    assert by_arrow == sorted(frame["post_id"].to_list()) == [r[0] for r in rows]
    first = table.filter(pa.compute.equal(table.column("post_id"), 3)).to_pylist()[0]
    assert first["hashtags"] == ["news"] and first["urls"] == ["http://example.org/x"]
    assert first["date"] == datetime.fromtimestamp(1704067200 + 9 * 86400, UTC)


def test_parquet_files_are_sorted_and_carry_the_footer_key(tmp_path):
    out = build(tmp_path)
    files = sorted((out / "posts").rglob("*.parquet"))
    assert files and all(f.name.startswith("part-") for f in files)
    for path in files:
        table = pq.read_table(path, partitioning=None)
        ids = table.column("post_id").to_pylist()
        assert ids == sorted(ids)
        footer = json.loads(pq.read_metadata(path).metadata[b"tgexport"])
        assert footer["version"] == "1.0" and len(footer["input"]["sha256"]) == 64
        assert len(json.dumps(footer)) < 16 * 1024
        assert "year" not in table.column_names
    kv = duckdb.sql(f"SELECT count(*) FROM parquet_kv_metadata('{out}/posts/**/*.parquet') WHERE key = 'tgexport'")
    assert kv.fetchall()[0][0] == len(files)
    assert "tgexport" in pl.read_parquet_metadata(files[0])


@pytest.mark.parametrize("to", ["jsonl", "jsonl.zst"])
def test_jsonl_round_trip_matches_parquet(tmp_path, to):
    parquet_out = build(tmp_path, name="p")
    jsonl_out = build(tmp_path, to=to, name="j")
    files = sorted((jsonl_out / "posts").rglob(f"*.{to}"))
    assert files
    rows = [row for f in files for row in read_jsonl(f)]
    assert len(rows) == 40
    first_line = files[0].read_bytes()
    if to == "jsonl":
        assert first_line.startswith(b'{"post_id":')
    assert all(r["date"].endswith("Z") for r in rows)
    assert all(isinstance(r["chat_id"], int) for r in rows)
    table = ds.dataset(parquet_out / "posts", format="parquet", partitioning=PART).to_table()
    by_id = {r["post_id"]: r for r in table.to_pylist()}
    for row in rows:
        expected = by_id[row["post_id"]]
        assert row["text"] == expected["text"]
        assert row["entities"] == expected["entities"]
        assert row["date"] == expected["date"].strftime("%Y-%m-%dT%H:%M:%SZ")


def test_jsonl_partitions_read_by_duckdb_and_polars(tmp_path):
    out = build(tmp_path, to="jsonl")
    count = duckdb.sql(f"SELECT count(*) FROM read_json_auto('{out}/posts/**/*.jsonl', hive_partitioning = true)")
    assert count.fetchall()[0][0] == 40
    assert pl.read_ndjson(sorted((out / "posts").rglob("*.jsonl"))).height == 40


def test_undated_posts_land_in_the_partition_every_reader_reads_as_null(tmp_path):
    mirror_page = Path(__file__).parent / "fixtures" / "mirror" / "post.txt"  # mirror pages carry no post date
    desktop = write_export(tmp_path / "result.json", good_messages(3))
    out = tmp_path / "ds"
    convert(ConvertRequest(inputs=[str(desktop), str(mirror_page)], output=out))
    null_dir = out / "posts" / "year=__HIVE_DEFAULT_PARTITION__" / "month=__HIVE_DEFAULT_PARTITION__"
    assert len(list(null_dir.glob("*.parquet"))) == 1
    table = ds.dataset(out / "posts", format="parquet", partitioning=PART).to_table()
    undated = table.filter(pa.compute.is_null(table.column("date")))
    assert undated.num_rows >= 1 and undated.column("year").null_count == undated.num_rows
    frame = pl.scan_parquet(out / "posts", hive_schema={"year": pl.Int16, "month": pl.Int8}).collect()
    assert frame.filter(pl.col("date").is_null())["year"].null_count() == undated.num_rows
    nulls = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{out}/posts/**/*.parquet', hive_partitioning = true, "
        "hive_types = {'year': SMALLINT, 'month': TINYINT}) WHERE year IS NULL AND month IS NULL"
    ).fetchall()[0][0]
    assert nulls == undated.num_rows


def test_chat_partitioning(tmp_path):
    out = build(tmp_path, partition_by=("chat", "year", "month"))
    dirs = {p.name for p in (out / "posts").iterdir()}
    assert dirs == {"chat=c1234567890"}
    frame = pl.scan_parquet(out / "posts", hive_schema={"chat": pl.String, "year": pl.Int16, "month": pl.Int8})
    assert frame.select(pl.len()).collect().item() == 40


def test_make_dirs_below_never_brings_back_a_removed_root(tmp_path):
    """A task still running after its run was abandoned must not re-create the staging folder."""
    from exporter.writers.base import make_dirs_below

    root = tmp_path / ".ds.staging-x"
    (root / "posts").mkdir(parents=True)
    make_dirs_below(root, root / "posts" / "year=2024" / "month=3")
    assert (root / "posts" / "year=2024" / "month=3").is_dir()
    make_dirs_below(root, root / "posts" / "year=2024" / "month=3")  # already there: fine
    shutil.rmtree(root)
    with pytest.raises(FileNotFoundError):
        make_dirs_below(root, root / "posts" / "year=2024" / "month=4")
    assert not root.exists()


def test_discard_folder_wins_the_race_with_a_writer_still_running(tmp_path):
    """An abandoned staging folder goes away even while a task keeps writing files into it.

    The writer does what a Dask task does after its run failed: create the partition folders
    below the staging root, then a file, over and over. A plain rmtree leaves the folder behind
    when a file lands after rmtree listed its folder; `discard_folder` must not.
    """
    import threading

    from exporter.writers.base import discard_folder, make_dirs_below

    halt = threading.Event()  # so that a wrong `discard_folder` cannot leave a writer running
    try:
        for attempt in range(20):
            root = tmp_path / f".ds.staging-{attempt}"
            (root / "posts").mkdir(parents=True)
            started, stopped = threading.Event(), []

            def write_until_it_fails(root=root, stopped=stopped, started=started):
                i = 0
                while not halt.is_set():
                    folder = root / "posts" / f"year=2024/month={i % 12 + 1}"
                    try:
                        make_dirs_below(root, folder)
                        (folder / f"part-{i}.parquet").write_bytes(b"x" * 64)
                    except FileNotFoundError as exc:
                        stopped.append(exc)
                        return
                    started.set()
                    i += 1

            writer = threading.Thread(target=write_until_it_fails, daemon=True)
            writer.start()
            assert started.wait(5)
            discard_folder(root)
            writer.join(5)
            assert stopped and not writer.is_alive()  # the writer's next write failed: it stopped
            assert list(tmp_path.iterdir()) == []  # neither the folder nor its renamed copy is left
    finally:
        halt.set()


def test_discard_folder_of_a_missing_folder_is_a_no_op(tmp_path):
    from exporter.writers.base import discard_folder

    discard_folder(tmp_path / "absent")
    assert list(tmp_path.iterdir()) == []
