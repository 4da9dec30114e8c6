"""`tgexport validate`: a clean dataset passes; every kind of tampering is found and reported."""

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import good_messages, write_export

from exporter.cli import main
from exporter.pipeline import ConvertRequest, convert
from exporter.validate_dataset import sample_indices, validate_dataset
from exporter.writers.jsonl import dumps, read_jsonl


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict[str, Path]:
    """One converted dataset per output format, copied by `build` for each test to tamper with."""
    base = tmp_path_factory.mktemp("pristine")
    src = write_export(base / "in" / "result.json", good_messages(40))
    out = {}
    for to in ("parquet", "jsonl", "jsonl.zst"):
        out[to] = base / to
        convert(ConvertRequest(inputs=[str(src)], output=out[to], to=to))
    return out


@pytest.fixture
def build(pristine, tmp_path):
    def copy(_tmp_path: Path, to: str = "parquet") -> Path:
        return Path(shutil.copytree(pristine[to], tmp_path / "ds"))

    return copy


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def manifest(root: Path) -> dict:
    return json.loads((root / "_manifest.json").read_text())


def data_files(root: Path) -> list[Path]:
    return [root / f["path"] for f in manifest(root)["files"]]


def kinds(root: Path, **kw) -> set[str]:
    return {f.kind for f in validate_dataset(root, **kw).findings}


def reseal(root: Path) -> None:
    """Re-record every file's hash, size and rows as a buggy writer would, so only the row content is wrong."""
    doc = manifest(root)
    for entry in doc["files"]:
        path = root / entry["path"]
        data = path.read_bytes()
        entry.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    text = json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
    (root / "_manifest.json").write_text(text, encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()
    for name, update in (
        ("_SUCCESS", lambda d: d["manifest"].update(sha256=digest)),
        ("datapackage.json", lambda d: d["resources"][-1].update(hash=f"sha256:{digest}")),
        ("croissant.json", lambda d: d["distribution"][0].update(sha256=digest)),
    ):
        doc = json.loads((root / name).read_text())
        update(doc)
        (root / name).write_text(json.dumps(doc))


def rewrite_parquet_row(path: Path, post_id: int, **changes) -> None:
    table = pq.ParquetFile(path).read()
    rows = table.to_pylist()
    for row in rows:
        if row["post_id"] == post_id:
            row.update(changes)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


@pytest.mark.parametrize("to", ["parquet", "jsonl", "jsonl.zst"])
def test_fresh_dataset_is_valid(tmp_path, build, to):
    root = build(tmp_path, to)
    report = validate_dataset(root)
    assert report.ok, report.findings
    assert report.rows_read == report.rows_validated == 40
    assert report.files_checked == len(manifest(root)["files"])


def test_cli_ok_exits_0_with_summary_on_stderr(tmp_path, build):
    root = build(tmp_path)
    result = run("validate", str(root))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "40 read, 40 re-validated" in result.stderr
    assert "OK: every file, hash, row count and partition matches the manifest." in result.stderr


def test_flipped_byte_is_an_altered_file(tmp_path, build):
    root = build(tmp_path)
    target = data_files(root)[1]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    report = validate_dataset(root)
    assert "altered-file" in {f.kind for f in report.findings}
    assert {f.path for f in report.findings} == {target.relative_to(root).as_posix()}


def test_deleted_file_is_missing(tmp_path, build):
    root = build(tmp_path)
    data_files(root)[0].unlink()
    assert kinds(root) == {"missing-file"}


def test_extra_files_are_reported(tmp_path, build):
    root = build(tmp_path)
    (root / "posts" / "year=2024" / "notes.txt").write_text("mine")
    (root / "posts" / "year=2024" / "month=1" / "part-ffffffffffffffff-0.parquet").write_bytes(b"PAR1")
    (root / "copy.parquet").write_bytes(b"x")
    report = validate_dataset(root)
    assert {(f.kind, f.path) for f in report.findings} == {
        ("extra-file", "posts/year=2024/notes.txt"),
        ("extra-file", "posts/year=2024/month=1/part-ffffffffffffffff-0.parquet"),
        ("extra-file", "copy.parquet"),
    }
    (notes,) = [f for f in report.findings if f.path.endswith("notes.txt")]
    assert notes.message == "not listed in the manifest; only Parquet/JSONL files may live under posts/"


def test_edited_row_count_in_manifest(tmp_path, build):
    root = build(tmp_path)
    doc = manifest(root)
    doc["files"][0]["rows"] += 1
    (root / "_manifest.json").write_text(json.dumps(doc, indent=2))
    report = validate_dataset(root)
    messages = {f.kind: f.message for f in report.findings}
    assert {"row-count", "manifest"} <= set(messages)
    assert f"the manifest says {doc['files'][0]['rows']}" in messages["row-count"]
    assert "changed after the run" in " ".join(f.message for f in report.findings if f.kind == "manifest")


def test_edited_sha_in_manifest(tmp_path, build):
    root = build(tmp_path)
    doc = manifest(root)
    doc["files"][2]["sha256"] = "0" * 64
    (root / "_manifest.json").write_text(json.dumps(doc, indent=2))
    assert kinds(root) == {"altered-file", "manifest"}


def test_row_in_the_wrong_partition(tmp_path, build):
    root = build(tmp_path)
    first = data_files(root)[0]  # year=2024/month=1
    post_id = pq.read_table(first, partitioning=None).column("post_id")[0].as_py()
    moved = pa.scalar(1717200000, pa.timestamp("s", tz="UTC")).cast(pa.timestamp("us", tz="UTC")).as_py()
    rewrite_parquet_row(first, post_id, date=moved)
    reseal(root)
    report = validate_dataset(root)
    assert {f.kind for f in report.findings} == {"partition"}
    assert f"(post_id {post_id}, date 2024-06-01T00:00:00Z) belongs in year=2024/month=6, not year=2024/month=1" in (
        report.findings[0].message
    )


def test_jsonl_row_that_violates_the_schema(tmp_path, build):
    root = build(tmp_path, "jsonl")
    target = data_files(root)[0]
    rows = read_jsonl(target)
    rows[1]["text"] = None
    rows[2]["chat_type"] = "planet"
    target.write_bytes(b"".join(dumps(r) for r in rows))
    reseal(root)
    findings = validate_dataset(root).findings
    assert [f.kind for f in findings] == ["schema", "schema"]
    assert "text: None is not of type 'string'" in findings[0].message
    assert "row 2" in findings[1].message and "planet" in findings[1].message


def test_sample_checks_fewer_rows_but_partitions_and_counts_all(tmp_path, build):
    root = build(tmp_path)
    report = validate_dataset(root, sample=2)
    assert report.ok
    assert report.rows_read == 40 and report.rows_validated == 2 * len(data_files(root))
    assert list(sample_indices(10, 3)) == [0, 3, 6] and list(sample_indices(2, 5)) == [0, 1]


def test_cli_reports_problems_and_exits_1(tmp_path, build):
    root = build(tmp_path)
    data_files(root)[0].unlink()
    result = run("validate", str(root))
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[1] == "1 problem(s):"
    assert lines[2].startswith("  missing-file  posts/year=2024/month=1/part-")
    assert lines[2].endswith(": listed in the manifest but missing")
    assert lines[-1] == "FAILED: the dataset does not match its manifest."


def test_cli_json_report_on_stdout(tmp_path, build):
    root = build(tmp_path)
    (root / "datapackage.json").unlink()
    result = run("validate", str(root), "--json", "--sample", "5")
    assert result.exit_code == 1 and result.stderr == ""
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["run_id"] == manifest(root)["run_id"]
    assert report["findings"] == [
        {"kind": "missing-file", "path": "datapackage.json", "message": report["findings"][0]["message"]}
    ]


def test_cli_not_a_dataset_is_an_error_with_hint(tmp_path):
    result = run("validate", str(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {tmp_path} has no _manifest.json")
    assert "Hint: " in result.stderr


def test_help_has_examples():
    result = run("validate", "--help")
    assert result.exit_code == 0
    assert "Examples:\n    tgexport validate dataset\n" in result.stdout
    assert "--sample N" in result.stdout and "--json" in result.stdout


def test_malformed_manifest_entries_are_findings_not_crashes(tmp_path, build):
    root = build(tmp_path)
    doc = manifest(root)
    doc["files"][0] = {"rows": 3}
    (root / "_manifest.json").write_text(json.dumps(doc, indent=2))
    report = validate_dataset(root)
    assert "1 entries of `files` have no path" in {f.message for f in report.findings}
    assert {"manifest", "extra-file"} == {f.kind for f in report.findings}


def test_a_parquet_file_missing_columns_is_a_finding_not_a_crash(tmp_path):
    import json

    import pyarrow.parquet as pq
    from click.testing import CliRunner
    from helpers import good_messages, write_export

    from exporter.cli import main
    from exporter.pipeline import ConvertRequest, convert

    src = write_export(tmp_path / "result.json", good_messages(6))
    out = tmp_path / "ds"
    convert(ConvertRequest(inputs=[str(src)], output=out))
    manifest = json.loads((out / "_manifest.json").read_text())
    target = out / manifest["files"][0]["path"]
    table = pq.read_table(target, partitioning=None)
    pq.write_table(table.drop_columns(["date", "chat_id"]), target)
    result = CliRunner().invoke(main, ["validate", str(out)])
    assert result.exit_code == 1
    assert "internal error" not in result.output + result.stderr
    assert "missing ['chat_id', 'date']" in result.output + result.stderr
