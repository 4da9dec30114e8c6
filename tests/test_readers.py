"""The reader snippets of docs/reading.md and README.md, executed against a real converted dataset.

Every Python block that starts with `# reader: NAME` runs with `dataset/` in the working folder;
each engine must see every row and exactly the declared column types (the Arrow schema derived
from the JSON Schema, plus `year` int16 and `month` int8). Spark needs a JVM: only compiled here.
"""

import re
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from exporter.pipeline import ConvertRequest, convert
from exporter.schema import arrow_schema

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "harbor_city_dispatch"
DOCS = (ROOT / "docs" / "reading.md", ROOT / "README.md")
ROWS = 120
DECLARED = pa.schema([*arrow_schema(), pa.field("year", pa.int16()), pa.field("month", pa.int8())])


def snippets() -> dict[str, str]:
    """`# reader: NAME` python blocks of the docs, by name."""
    found: dict[str, str] = {}
    for doc in DOCS:
        for block in re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
            if match := re.match(r"# reader: (\S+)", block):
                assert match.group(1) not in found, f"two snippets named {match.group(1)}"
                found[match.group(1)] = block
    return found


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory) -> dict[str, Path]:
    """Folders that each hold `dataset/`: one converted to Parquet, one to JSONL."""
    dirs = {}
    for to in ("parquet", "jsonl.zst"):
        dirs[to] = tmp_path_factory.mktemp(to.replace(".", "-"))
        report = convert(ConvertRequest(inputs=[str(EXAMPLE)], output=dirs[to] / "dataset", to=to))
        assert report.exit_code == 0
    return dirs


def run_snippet(name: str, workdir: Path, monkeypatch) -> dict:
    monkeypatch.chdir(workdir)
    namespace: dict = {}
    exec(compile(snippets()[name], f"<reader: {name}>", "exec"), namespace)
    return namespace


def expected_ids() -> list[int]:
    return list(range(1, ROWS + 1))


def test_every_engine_has_a_snippet():
    assert set(snippets()) == {"pyarrow", "pandas", "polars", "duckdb", "spark", "duckdb-jsonl", "readme"}
    text = DOCS[0].read_text(encoding="utf-8")
    assert "```r\nlibrary(arrow)" in text and "hive_partition(year = int16(), month = int8())" in text


def test_pyarrow_snippet(workdirs, monkeypatch):
    table = run_snippet("pyarrow", workdirs["parquet"], monkeypatch)["table"]
    assert table.num_rows == ROWS
    assert table.schema.equals(DECLARED, check_metadata=False)
    assert sorted(table.column("post_id").to_pylist()) == expected_ids()


def test_pandas_snippet(workdirs, monkeypatch):
    df = run_snippet("pandas", workdirs["parquet"], monkeypatch)["df"]
    assert len(df) == ROWS
    assert {name: df[name].dtype for name in DECLARED.names} == {f.name: pd.ArrowDtype(f.type) for f in DECLARED}
    assert sorted(df["post_id"].tolist()) == expected_ids()


def test_polars_snippet(workdirs, monkeypatch):
    posts = run_snippet("polars", workdirs["parquet"], monkeypatch)["posts"]
    assert posts.height == ROWS
    assert posts.schema == pl.from_arrow(DECLARED.empty_table()).schema
    assert sorted(posts["post_id"].to_list()) == expected_ids()


def test_duckdb_snippet(workdirs, monkeypatch):
    posts = run_snippet("duckdb", workdirs["parquet"], monkeypatch)["posts"]
    declared = duckdb.from_arrow(DECLARED.empty_table())
    assert dict(zip(posts.columns, map(str, posts.types), strict=True)) == dict(
        zip(declared.columns, map(str, declared.types), strict=True)
    )
    ids = [row[0] for row in posts.query("posts", "SELECT post_id FROM posts ORDER BY post_id").fetchall()]
    assert ids == expected_ids()


def test_duckdb_jsonl_snippet_reads_compressed_jsonl_with_partition_types(workdirs, monkeypatch):
    posts = run_snippet("duckdb-jsonl", workdirs["jsonl.zst"], monkeypatch)["posts"]
    types = dict(zip(posts.columns, map(str, posts.types), strict=True))
    assert (types["year"], types["month"], types["post_id"]) == ("SMALLINT", "TINYINT", "BIGINT")
    assert types["date"] == "TIMESTAMP WITH TIME ZONE"
    ids = [row[0] for row in posts.query("posts", "SELECT post_id FROM posts ORDER BY post_id").fetchall()]
    assert ids == expected_ids()


def test_readme_snippet(workdirs, monkeypatch):
    namespace = run_snippet("readme", workdirs["parquet"], monkeypatch)
    assert namespace["table"].schema.equals(DECLARED, check_metadata=False)
    assert len(namespace["df"]) == namespace["lf"].collect().height == ROWS
    assert namespace["lf"].collect_schema() == pl.from_arrow(DECLARED.empty_table()).schema


def test_spark_snippet_compiles():
    compile(snippets()["spark"], "<reader: spark>", "exec")
