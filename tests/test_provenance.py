"""datapackage.json, croissant.json and _manifest.json: three renderings of one run model.

The documents are checked with the standards' own tools (frictionless descriptor validation,
mlcroissant loading records from local files only) and against the data pyarrow reads.
"""

import hashlib
import json
import socket
from pathlib import Path

import frictionless
import mlcroissant as mlc
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from helpers import good_messages, message, write_export

from exporter.pipeline import ConvertRequest, convert
from exporter.schema import enum_values, load_schema

ROOT = Path(__file__).resolve().parent.parent
MIRROR_POST = ROOT / "tests" / "fixtures" / "mirror" / "post.txt"  # a post without any date
METADATA = ("_manifest.json", "datapackage.json", "croissant.json", "_SUCCESS")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """The validators must work offline: any connection attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def build(tmp_path: Path, to: str = "parquet", name: str = "ds", inputs=None, **kw) -> Path:
    if inputs is None:
        inputs = [str(write_export(tmp_path / "in" / "result.json", good_messages(40)))]
    out = tmp_path / name
    convert(
        ConvertRequest(inputs=inputs, output=out, to=to, command=["tgexport", "convert", *inputs, "-o", "ds"], **kw)
    )
    return out


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pyarrow_rows(root: Path, keys=("year", "month"), fmt: str = "parquet") -> pa.Table:
    types = {"year": pa.int16(), "month": pa.int8(), "chat": pa.string()}
    part = ds.partitioning(pa.schema([(k, types[k]) for k in keys]), flavor="hive")
    return ds.dataset(root / "posts", format=fmt, partitioning=part).to_table()


def croissant_records(root: Path, record_set: str = "posts") -> list[dict]:
    dataset = mlc.Dataset(jsonld=str(root / "croissant.json"))
    assert not dataset.metadata.ctx.issues.errors and not dataset.metadata.ctx.issues.warnings
    return list(dataset.records(record_set))


@pytest.fixture(scope="module")
def parquet_ds(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("prov"))


# --- datapackage.json -----------------------------------------------------------------------


def test_datapackage_is_a_valid_data_package_v2(parquet_ds):
    descriptor = read_json(parquet_ds / "datapackage.json")
    report = frictionless.Package.validate_descriptor(descriptor)
    assert report.valid, report.flatten(["type", "note"])
    assert descriptor["$schema"] == "https://datapackage.org/profiles/2.0/datapackage.json"


def test_frictionless_does_reject_a_broken_descriptor(parquet_ds):
    descriptor = read_json(parquet_ds / "datapackage.json")
    descriptor["resources"][0]["schema"]["fields"][0]["type"] = "not-a-type"
    assert not frictionless.Package.validate_descriptor(descriptor).valid


def test_datapackage_table_schema_is_derived_from_the_json_schema(parquet_ds):
    posts = read_json(parquet_ds / "datapackage.json")["resources"][0]
    fields = {f["name"]: f for f in posts["schema"]["fields"]}
    assert list(fields) == [*load_schema()["properties"], "year", "month"]
    assert fields["post_id"]["type"] == "integer" and fields["post_id"]["constraints"]["required"] is True
    assert fields["date"]["type"] == "datetime" and fields["date"]["tgexport:arrowType"] == "timestamp[us, tz=UTC]"
    assert fields["chat_type"]["categories"] == enum_values("chat_type")
    assert fields["media_type"]["categories"] == enum_values("media_type")
    assert fields["entities"]["type"] == "array" and fields["media"]["type"] == "object"
    assert fields["views"]["constraints"]["minimum"] == 0 and "required" not in fields["views"]["constraints"]
    assert fields["sender_name"]["tgexport:pii"] == "person_name"
    assert (fields["year"]["tgexport:arrowType"], fields["month"]["tgexport:arrowType"]) == ("int16", "int8")
    assert "directory name" in fields["year"]["description"]
    assert all(f["description"] for f in fields.values())


def test_datapackage_lists_files_sources_tool_and_run(parquet_ds):
    package = read_json(parquet_ds / "datapackage.json")
    manifest = read_json(parquet_ds / "_manifest.json")
    posts, manifest_resource = package["resources"][0], package["resources"][-1]
    assert posts["path"] == [f["path"] for f in manifest["files"]]
    assert posts["format"] == "parquet" and posts["mediatype"] == "application/vnd.apache.parquet"
    assert all(not Path(p).is_absolute() and p.startswith("posts/") for p in posts["path"])
    assert manifest_resource["hash"] == "sha256:" + sha(parquet_ds / "_manifest.json")
    assert [s["tgexport:sha256"] for s in package["sources"]] == [i["sha256"] for i in manifest["inputs"]]
    assert package["tgexport:tool"]["version"] == manifest["tool"]["version"]
    assert package["tgexport:run"]["run_id"] == manifest["run_id"]
    assert package["tgexport:schema"] == {k: manifest["schema"][k] for k in ("id", "version", "sha256")}
    assert package["created"] == manifest["finished_at"]


# --- croissant.json -------------------------------------------------------------------------


def test_croissant_loads_the_same_rows_as_pyarrow(parquet_ds):
    records = croissant_records(parquet_ds)
    table = pyarrow_rows(parquet_ds)
    assert len(records) == table.num_rows == 40
    assert sorted(r["posts/post_id"] for r in records) == sorted(table.column("post_id").to_pylist())
    by_id = {r["posts/post_id"]: r for r in records}
    for row in table.to_pylist():
        record = by_id[row["post_id"]]
        assert (record["posts/year"], record["posts/month"]) == (row["year"], row["month"])
        assert record["posts/date"].to_pydatetime() == row["date"]
        assert record["posts/text"] == row["text"].encode()  # mlcroissant gives text as bytes
        assert [h.decode() for h in record["posts/hashtags"]] == row["hashtags"]
        assert len(record["posts/entities"]) == len(row["entities"])
    assert str(by_id[1]["posts/year"].dtype) == "int16" and str(by_id[1]["posts/month"].dtype) == "int8"


def test_croissant_fields_match_the_columns(parquet_ds):
    doc = read_json(parquet_ds / "croissant.json")
    (record_set,) = doc["recordSet"]
    names = [f["name"] for f in record_set["field"]]
    assert names == [*load_schema()["properties"], "year", "month"]
    year = record_set["field"][-2]
    assert year["dataType"] == "cr:Int16" and year["source"]["extract"] == {"fileProperty": "fullpath"}
    entities = next(f for f in record_set["field"] if f["name"] == "entities")
    assert entities["isArray"] is True
    assert [s["name"] for s in entities["subField"]] == list(
        load_schema()["properties"]["entities"]["items"]["properties"]
    )


def test_croissant_carries_checksums_rai_and_provenance(parquet_ds):
    doc = read_json(parquet_ds / "croissant.json")
    manifest = read_json(parquet_ds / "_manifest.json")
    assert doc["conformsTo"] == ["http://mlcommons.org/croissant/1.1", "http://mlcommons.org/croissant/RAI/1.0"]
    objects = {d["contentUrl"]: d for d in doc["distribution"] if d["@type"] == "cr:FileObject"}
    assert objects.pop("_manifest.json")["sha256"] == sha(parquet_ds / "_manifest.json")
    assert {p: o["sha256"] for p, o in objects.items()} == {f["path"]: f["sha256"] for f in manifest["files"]}
    (file_set,) = [d for d in doc["distribution"] if d["@type"] == "cr:FileSet"]
    assert file_set["encodingFormat"] == "application/x-parquet"
    for key in ("rai:dataCollection", "rai:dataCollectionType", "rai:dataPreprocessingProtocol"):
        assert doc[key]
    assert "sender_name" in doc["rai:personalSensitiveInformation"]
    assert doc["prov:wasGeneratedBy"]["@id"] == f"urn:tgexport:run:{manifest['run_id']}"
    assert [e["@id"] for e in doc["prov:wasDerivedFrom"]] == [f"urn:sha256:{i['sha256']}" for i in manifest["inputs"]]
    assert doc["temporalCoverage"] == "2024-01-01/2024-04-30"


def test_croissant_validates_without_errors_or_warnings(parquet_ds):
    """What `mlcroissant validate --jsonld croissant.json` does: build the Dataset, report issues."""
    issues = mlc.Dataset(jsonld=str(parquet_ds / "croissant.json")).metadata.ctx.issues
    assert not issues.errors and not issues.warnings, issues.report()


def test_chat_partition_and_undated_posts_load_through_croissant(tmp_path):
    src = write_export(tmp_path / "in" / "result.json", good_messages(12))
    out = build(tmp_path, inputs=[str(src), str(MIRROR_POST)], partition_by=("chat", "year", "month"))
    table = pyarrow_rows(out, ("chat", "year", "month"))
    dated = croissant_records(out, "posts")
    undated = croissant_records(out, "posts_null_partition")
    assert len(dated) + len(undated) == table.num_rows == 13
    assert {(r["posts/chat"].decode(), int(r["posts/year"])) for r in dated} == {("c1234567890", 2024)}
    assert [r["posts_null_partition/post_id"] for r in undated] == [345]
    assert frictionless.Package.validate_descriptor(read_json(out / "datapackage.json")).valid


def test_quarantined_items_are_a_resource_with_a_hash(tmp_path):
    src = write_export(tmp_path / "in" / "result.json", [message(1, text=42), message(2, text=43)])
    out = build(tmp_path, inputs=[str(src)])
    manifest = read_json(out / "_manifest.json")
    package = read_json(out / "datapackage.json")
    assert frictionless.Package.validate_descriptor(package).valid
    posts, rejects = package["resources"][:2]
    assert posts["data"] == [] and "path" not in posts  # nothing written
    assert rejects["path"] == manifest["rejects"]["path"]
    assert rejects["hash"] == "sha256:" + sha(out / manifest["rejects"]["path"])
    doc = read_json(out / "croissant.json")
    objects = {d["contentUrl"]: d["sha256"] for d in doc["distribution"] if d["@type"] == "cr:FileObject"}
    assert objects[manifest["rejects"]["path"]] == manifest["rejects"]["sha256"]
    assert croissant_records(out) == []


def test_appending_bumps_the_minor_version_and_keeps_the_documents_valid(tmp_path):
    first = str(write_export(tmp_path / "a" / "result.json", good_messages(10)))
    second = str(write_export(tmp_path / "b" / "result.json", good_messages(10), chat_id=42))
    out = build(tmp_path, inputs=[first])
    assert read_json(out / "croissant.json")["version"] == "1.0.0"
    convert(ConvertRequest(inputs=[second], output=out, append=True))
    package = read_json(out / "datapackage.json")
    assert package["version"] == read_json(out / "croissant.json")["version"] == "1.1.0"
    assert frictionless.Package.validate_descriptor(package).valid
    assert len(package["sources"]) == 2
    assert len(croissant_records(out)) == pyarrow_rows(out).num_rows == 20


# --- JSONL ----------------------------------------------------------------------------------


def test_jsonl_dataset_documents_validate_and_load(tmp_path):
    out = build(tmp_path, to="jsonl")
    package = read_json(out / "datapackage.json")
    assert frictionless.Package.validate_descriptor(package).valid
    assert package["resources"][0]["format"] == "jsonl"
    doc = read_json(out / "croissant.json")
    assert {d["encodingFormat"] for d in doc["distribution"] if d["@type"] == "cr:FileSet"} == {"application/jsonlines"}
    records = croissant_records(out)
    table = pyarrow_rows(build(tmp_path, name="p"))
    assert sorted(r["posts/post_id"] for r in records) == sorted(table.column("post_id").to_pylist())


def test_jsonl_zst_documents_validate_but_mlcroissant_cannot_decompress(tmp_path):
    """Documented limitation: mlcroissant 1.1.1 only decompresses gzip. Fails loudly when that changes."""
    out = build(tmp_path, to="jsonl.zst")
    package = read_json(out / "datapackage.json")
    assert frictionless.Package.validate_descriptor(package).valid
    assert package["resources"][0]["compression"] == "zstd"
    dataset = mlc.Dataset(jsonld=str(out / "croissant.json"))
    assert not dataset.metadata.ctx.issues.errors
    with pytest.raises(mlc.GenerationError):
        list(dataset.records("posts"))


# --- _manifest.json and reproducibility -----------------------------------------------------


def test_manifest_is_complete(parquet_ds):
    manifest = read_json(parquet_ds / "_manifest.json")
    assert manifest["run_id"] and manifest["command"][:2] == ["tgexport", "convert"]
    assert {"python", "pyarrow", "jsonschema-rs"} <= set(manifest["tool"]["dependencies"])
    assert manifest["schema"]["id"] == load_schema()["$id"] and len(manifest["schema"]["sha256"]) == 64
    assert manifest["writer"]["compression"] == "zstd" and manifest["writer"]["created_by"].startswith("parquet-cpp")
    (entry,) = manifest["inputs"]
    assert not Path(entry["path"]).is_absolute()
    assert {"sha256", "bytes", "format", "items", "quarantined_by_reason", "skipped_by_reason"} <= set(entry)
    assert set(entry["items"]) == {"read", "written", "merged", "quarantined", "skipped"}
    for file in manifest["files"]:
        assert set(file) == {"path", "partition", "rows", "bytes", "sha256"}
    assert manifest["totals"]["rows"] == 40


def test_metadata_documents_hold_no_absolute_paths(tmp_path):
    out = build(tmp_path, inputs=[str(write_export(tmp_path / "in" / "result.json", good_messages(3)))])

    def strings(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    for name in METADATA:
        absolute = [s for s in strings(read_json(out / name)) if s.startswith(str(tmp_path))]
        assert absolute == [], name


def test_success_is_written_last_and_names_the_manifest(parquet_ds):
    success = read_json(parquet_ds / "_SUCCESS")
    assert success["manifest"]["sha256"] == sha(parquet_ds / "_manifest.json")


@pytest.mark.parametrize("to", ["parquet", "jsonl"])
def test_reruns_are_byte_identical_including_metadata(tmp_path, monkeypatch, to):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    src = str(write_export(tmp_path / "in" / "result.json", good_messages(30)))
    first, second = build(tmp_path, to, "a", [src]), build(tmp_path, to, "b", [src])

    def digests(root: Path) -> dict[str, str]:
        return {p.relative_to(root).as_posix(): sha(p) for p in sorted(root.rglob("*")) if p.is_file()}

    assert digests(first) == digests(second)
    assert set(METADATA) <= set(digests(first))
    assert read_json(first / "_manifest.json")["finished_at"] == "2023-11-14T22:13:20Z"
