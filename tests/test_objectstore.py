"""Object-store outputs and inputs against a local S3 server (moto, loopback only).

The dataset is published in commit order, reads back with pyarrow, polars and DuckDB,
passes `tgexport validate s3://…` and fails it after tampering.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import good_messages, write_export

from exporter import objectstore
from exporter.cli import main
from exporter.errors import OutputError
from exporter.manifest import MANIFEST, SUCCESS
from exporter.pipeline import ConvertRequest, convert

moto_server = pytest.importorskip("moto.server")

pytestmark = pytest.mark.xdist_group("objectstore")

FIXTURES = Path(__file__).parent / "fixtures"
BUCKET = "tgx-test"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
MIXED_FIXTURES = (
    "telethon-json/bad-lines.jsonl",
    "telethon-json/media-kinds.jsonl",
    "snscrape-jsonl/with-entity.jsonl",
    "tme-html/reactions.html",
    "tdesktop-html/forwarded.html",
    "tgdataset/two-channels.json",
)


def mixed_inputs(folder: Path) -> list[str]:
    """Two overlapping Desktop exports (duplicates to merge) plus one fixture of several formats."""
    write_export(folder / "a" / "result.json", good_messages(40))
    write_export(folder / "b" / "result.json", good_messages(30, start_ts=1704067200 + 86400 * 60))
    write_export(folder / "c" / "result.json", good_messages(25), chat_id=42, name="Other")
    for name in MIXED_FIXTURES:
        target = folder / "fixtures" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / name, target)
    return [str(folder / "a"), str(folder / "b"), str(folder / "c"), str(folder / "fixtures")]


def local_files(root: Path, under: str = "") -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).as_posix().startswith(under)
    }


@dataclass
class S3:
    endpoint: str
    fs: pafs.FileSystem

    def uri(self, prefix: str) -> str:
        return f"s3://{BUCKET}/{prefix}"

    def objects(self, prefix: str) -> dict[str, bytes]:
        found = self.fs.get_file_info(pafs.FileSelector(f"{BUCKET}/{prefix}", recursive=True, allow_not_found=True))
        out = {}
        for info in found:
            if info.type == pafs.FileType.File:
                with self.fs.open_input_stream(info.path) as f:
                    out[info.path[len(BUCKET) + len(prefix) + 2 :]] = f.read()
        return out

    def raw_keys(self, prefix: str) -> list[str]:
        """Every key, directory markers included (what polars and DuckDB would list)."""
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint)
        listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/")
        return sorted(o["Key"] for o in listing.get("Contents", []))

    def put(self, key: str, data: bytes) -> None:
        with self.fs.open_output_stream(f"{BUCKET}/{key}") as out:
            out.write(data)


@pytest.fixture(scope="module")
def s3():
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", allow_bucket_creation=True).create_dir(BUCKET)
        fs = objectstore.filesystem(endpoint)
        try:
            yield S3(endpoint, fs)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return mixed_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(scope="module")
def local_dataset(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "ds"
    convert(ConvertRequest(inputs=inputs, output=out, jobs=1))
    return out


@pytest.fixture(scope="module")
def published(s3, inputs, local_dataset):
    """The mixed inputs converted by the CLI straight to s3://…/published, with the upload order."""
    order: list[str] = []
    original = objectstore.Target.upload

    def spy(self, local, rel):
        order.append(rel)
        original(self, local, rel)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(objectstore.Target, "upload", spy)
        result = CliRunner().invoke(
            main, ["convert", *inputs, "-o", s3.uri("published"), "--s3-endpoint", s3.endpoint, "-j", "1"]
        )
    assert result.exit_code == 3, result.output  # the mixed set has quarantined items
    return order, result


def test_publish_order_is_data_then_rejects_then_metadata_then_success(published):
    order, result = published
    kinds = ["posts" if n.startswith("posts/") else "rejects" if n.startswith("rejects/") else n for n in order]
    first_meta = min(i for i, k in enumerate(kinds) if k not in ("posts", "rejects"))
    assert set(kinds[:first_meta]) == {"posts", "rejects"}
    assert kinds.index("rejects") > max(i for i, k in enumerate(kinds) if k == "posts")
    assert kinds[-2:] == [MANIFEST, SUCCESS]
    assert "s3://tgx-test/published/posts" in result.output


def test_published_objects_equal_a_local_run(s3, published, local_dataset):
    objects = s3.objects("published")
    local = local_files(local_dataset)
    assert {k: v for k, v in objects.items() if k.startswith(("posts/", "rejects/"))} == {
        k: v for k, v in local.items() if k.startswith(("posts/", "rejects/"))
    }
    assert set(objects) == set(local)
    assert all(not key.endswith("/") for key in s3.raw_keys("published"))


def expected_rows(local_dataset: Path) -> list[tuple]:
    table = ds.dataset(local_dataset / "posts", format="parquet", partitioning="hive").to_table()
    return sorted(zip(table["chat_id"].to_pylist(), table["post_id"].to_pylist(), strict=True), key=repr)


def test_pyarrow_reads_the_published_dataset(s3, published, local_dataset):
    dataset = ds.dataset(f"{BUCKET}/published/posts", filesystem=s3.fs, format="parquet", partitioning="hive")
    table = dataset.to_table()
    rows = sorted(zip(table["chat_id"].to_pylist(), table["post_id"].to_pylist(), strict=True), key=repr)
    assert rows == expected_rows(local_dataset)


def test_polars_reads_the_published_dataset(s3, published, local_dataset):
    pl = pytest.importorskip("polars")
    options = {
        "aws_endpoint_url": s3.endpoint,
        "aws_allow_http": "true",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
        "aws_region": "us-east-1",
    }
    frame = pl.scan_parquet(
        f"s3://{BUCKET}/published/posts/**/*.parquet", hive_partitioning=True, storage_options=options
    ).collect()
    rows = sorted(zip(frame["chat_id"].to_list(), frame["post_id"].to_list(), strict=True), key=repr)
    assert rows == expected_rows(local_dataset)
    assert frame["month"].dtype == pl.Int64 or frame["month"].dtype.is_integer()


def test_duckdb_reads_the_published_dataset(s3, published, local_dataset):
    """DuckDB reads s3:// through an fsspec (s3fs) filesystem registered with the connection.

    Its own httpfs extension would have to be downloaded, which this offline machine cannot do.
    """
    duckdb = pytest.importorskip("duckdb")
    s3fs = pytest.importorskip("s3fs")
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.register_filesystem(s3fs.S3FileSystem(endpoint_url=s3.endpoint, key="testing", secret="testing"))
    rows = con.sql(
        f"SELECT chat_id, post_id, year, month FROM read_parquet('s3://{BUCKET}/published/posts/**/*.parquet', "
        "hive_partitioning = true)"
    ).fetchall()
    assert sorted(((c, p) for c, p, _, _ in rows), key=repr) == expected_rows(local_dataset)
    assert {type(m) for _, _, _, m in rows if m is not None} == {int}


def test_validate_passes_on_the_store_and_fails_after_tampering(s3, inputs, tmp_path):
    uri = s3.uri("tamper")
    convert(ConvertRequest(inputs=inputs, output=uri, s3_endpoint=s3.endpoint))
    runner = CliRunner()
    ok = runner.invoke(main, ["validate", uri, "--s3-endpoint", s3.endpoint])
    assert ok.exit_code == 0, ok.output
    assert "OK: every file" in ok.output
    objects = s3.objects("tamper")
    victim, donor = [k for k in sorted(objects) if k.startswith("posts/")][:2]
    s3.put(f"tamper/{victim}", objects[donor])  # a valid data file, but not the one the manifest lists
    s3.put("tamper/posts/notes.txt", b"not data")
    bad = runner.invoke(main, ["validate", uri, "--s3-endpoint", s3.endpoint, "--json"])
    assert bad.exit_code == 1, bad.stderr
    findings = {(f["kind"], f["path"]) for f in json.loads(bad.stdout)["findings"]}
    assert {("altered-file", victim), ("extra-file", "posts/notes.txt")} <= findings


def test_non_empty_prefix_is_refused_and_overwrite_replaces_it(s3, inputs):
    uri = s3.uri("again")
    convert(ConvertRequest(inputs=inputs, output=uri, s3_endpoint=s3.endpoint, partition_by=("chat", "year", "month")))
    with pytest.raises(OutputError) as refused:
        convert(ConvertRequest(inputs=inputs, output=uri, s3_endpoint=s3.endpoint))
    assert "already holds" in refused.value.message and "--overwrite" in refused.value.hint
    report = convert(ConvertRequest(inputs=inputs, output=uri, s3_endpoint=s3.endpoint, overwrite=True))
    keys = s3.raw_keys("again")
    assert all("chat=" not in k and not k.endswith("/") for k in keys)  # old files gone, no markers
    assert sorted(k.removeprefix("again/") for k in keys if "/posts/" in "/" + k) == sorted(
        f["path"] for f in report.model.files
    )
    assert objectstore.validate_uri(uri, s3.endpoint).ok


def test_s3_inputs_are_streamed_and_archives_skipped(s3, tmp_path):
    source = write_export(tmp_path / "result.json", good_messages(12))
    s3.put("inputs/chat/result.json", source.read_bytes())
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as zf:
        zf.writestr("result.json", source.read_bytes())
    s3.put("inputs/chat/export.zip", packed.getvalue())
    report = convert(ConvertRequest(inputs=[s3.uri("inputs")], output=tmp_path / "ds", s3_endpoint=s3.endpoint, jobs=2))
    assert report.model.totals()["written"] == 12
    assert [i.path for i in report.model.inputs] == [f"s3://{BUCKET}/inputs/chat/result.json"]
    assert report.model.inputs[0].sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert report.model.skipped_inputs == [
        {
            "path": f"s3://{BUCKET}/inputs/chat/export.zip",
            "reason": "zip archives are not read from object stores; download it first",
        }
    ]
    table = pq.read_table(next((tmp_path / "ds" / "posts").rglob("*.parquet")))
    assert set(table["source_file"].to_pylist()) == {f"s3://{BUCKET}/inputs/chat/result.json"}


def test_append_to_an_object_store_is_refused(s3, tmp_path):
    source = write_export(tmp_path / "result.json", good_messages(3))
    result = CliRunner().invoke(main, ["convert", str(source), "--append", s3.uri("published")])
    assert result.exit_code == 2
    assert "Error: --append to an object store is not supported" in result.output


def test_missing_input_object_is_an_input_error(s3, tmp_path):
    result = CliRunner().invoke(
        main, ["convert", s3.uri("nothing-here.json"), "-o", str(tmp_path / "ds"), "--s3-endpoint", s3.endpoint]
    )
    assert result.exit_code == 1
    assert f"Error: input not found: s3://{BUCKET}/nothing-here.json" in result.output


def test_a_missing_bucket_is_an_output_error(s3, tmp_path):
    source = write_export(tmp_path / "result.json", good_messages(2))
    result = CliRunner().invoke(
        main, ["convert", str(source), "-o", "s3://no-such-bucket/x", "--s3-endpoint", s3.endpoint]
    )
    assert result.exit_code == 1
    assert (
        result.stderr
        == "Error: bucket 'no-such-bucket' of s3://no-such-bucket/x does not exist\nHint: create it first\n"
    )
