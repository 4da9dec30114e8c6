"""`tgexport validate DATASET`: check a dataset against its manifest.

Recomputes every listed file's sha256, size and row count; re-validates rows against the JSON
Schema (all, or an evenly spaced sample per file); checks that every row belongs to the
partition its path names; reports missing, extra and altered files and a manifest that no
longer matches `_SUCCESS`, `datapackage.json` or `croissant.json`. Findings are data
(`Finding`); the CLI renders them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from . import validate
from .arrowbuild import NULL_PARTITION
from .errors import InputError
from .manifest import MANIFEST, SUCCESS
from .normalize import iso_utc
from .provenance import CROISSANT, DATAPACKAGE
from .schema import PARTITION_TYPES, arrow_schema, timestamp_fields
from .writers.jsonl import read_jsonl

DATA_SUFFIXES = (".parquet", ".jsonl", ".jsonl.zst")
MAX_ROW_FINDINGS = 5  # per file and kind; the rest are counted


@dataclass(frozen=True)
class Finding:
    kind: str  # missing-file, extra-file, altered-file, unreadable-file, row-count, schema, partition, manifest
    path: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class DatasetReport:
    root: str
    run_id: str | None = None
    files_checked: int = 0
    rows_read: int = 0
    rows_validated: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, kind: str, path: str, message: str) -> None:
        self.findings.append(Finding(kind, path, message))

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "run_id": self.run_id,
            "ok": self.ok,
            "files_checked": self.files_checked,
            "rows_read": self.rows_read,
            "rows_validated": self.rows_validated,
            "findings": [f.to_dict() for f in self.findings],
        }


def validate_dataset(
    root: Path, sample: int | None = None, fetch: Callable[[str], AbstractContextManager] | None = None
) -> DatasetReport:
    """Check `root` against its `_manifest.json`; `sample` = rows re-validated per file (None: all).

    `fetch(relpath)`, when given, makes each listed file present under `root` while it is checked
    (object stores: exporter/objectstore.py fetches one file at a time).
    """
    fetch = fetch or (lambda rel: nullcontext())
    manifest, manifest_bytes = load_manifest(root)
    report = DatasetReport(root=str(root), run_id=manifest.get("run_id"))
    check_metadata(root, manifest, manifest_bytes, report)
    files = well_formed(manifest, "files", report)
    check_totals(manifest, files, report)
    for entry in files:
        with fetch(entry["path"]):
            check_data_file(root, entry, sample, report)
    for entry in rejects_entries(manifest):
        with fetch(entry["path"]):
            check_plain_file(root, entry, report)
    check_extra_files(root, files, rejects_entries(manifest), report)
    return report


def well_formed(manifest: dict[str, Any], key: str, report: DatasetReport) -> list[dict[str, Any]]:
    """The entries of a manifest list that name a path; the others are reported."""
    entries = manifest.get(key)
    if not isinstance(entries, list):
        report.add("manifest", MANIFEST, f"`{key}` is missing or not a list")
        return []
    good = [e for e in entries if isinstance(e, dict) and isinstance(e.get("path"), str)]
    if len(good) != len(entries):
        report.add("manifest", MANIFEST, f"{len(entries) - len(good)} entries of `{key}` have no path")
    return good


def load_manifest(root: Path) -> tuple[dict[str, Any], bytes]:
    path = root / MANIFEST
    if not root.is_dir():
        raise InputError(f"{root} is not a folder", hint="pass the dataset folder written by `tgexport convert`")
    if not path.is_file():
        raise InputError(
            f"{root} has no {MANIFEST}, so it is not a finished tgexport dataset",
            hint="pass the folder given to `tgexport convert -o`; an interrupted run leaves no dataset",
        )
    data = path.read_bytes()
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}", hint="restore it from a backup or convert again") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "tgexport-manifest":
        raise InputError(f"{path} is not a tgexport manifest", hint="restore it from a backup or convert again")
    return manifest, data


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --- the metadata documents -----------------------------------------------------------------


def check_metadata(root: Path, manifest: dict[str, Any], manifest_bytes: bytes, report: DatasetReport) -> None:
    """`_SUCCESS`, datapackage.json and croissant.json must all name the manifest's sha256."""
    actual = hashlib.sha256(manifest_bytes).hexdigest()
    recorded = {
        SUCCESS: lambda doc: doc["manifest"]["sha256"],
        DATAPACKAGE: lambda doc: _resource(doc, "manifest")["hash"].removeprefix("sha256:"),
        CROISSANT: lambda doc: _file_object(doc, "manifest")["sha256"],
    }
    for name, read in recorded.items():
        path = root / name
        if not path.is_file():
            report.add("missing-file", name, f"{name} is missing (the run did not finish, or it was deleted)")
            continue
        try:
            expected = read(json.loads(path.read_bytes()))
        except (ValueError, KeyError, TypeError, StopIteration):
            report.add("unreadable-file", name, f"{name} is not valid JSON or does not name the manifest's sha256")
            continue
        if expected != actual:
            report.add(
                "manifest",
                MANIFEST,
                f"{MANIFEST} was changed after the run: {name} records sha256 {expected[:12]}…, "
                f"the file has {actual[:12]}…",
            )


def _resource(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in doc["resources"] if r.get("name") == name)


def _file_object(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(d for d in doc["distribution"] if d.get("@id") == name)


def check_totals(manifest: dict[str, Any], files: list[dict[str, Any]], report: DatasetReport) -> None:
    rows = sum(f.get("rows") or 0 for f in files)
    totals = manifest.get("totals", {})
    if totals.get("rows") != rows or totals.get("files") != len(files):
        report.add(
            "manifest",
            MANIFEST,
            f"totals say {totals.get('rows')} rows in {totals.get('files')} files, "
            f"the file list adds up to {rows} rows in {len(files)} files",
        )


def rejects_entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The quarantine files of the last run and of earlier (appended) runs."""
    found = [run.get("rejects") for run in manifest.get("runs", []) if isinstance(run, dict)]
    found.append(manifest.get("rejects"))
    return list({r["path"]: r for r in found if isinstance(r, dict) and isinstance(r.get("path"), str)}.values())


# --- files ----------------------------------------------------------------------------------


def check_plain_file(root: Path, entry: dict[str, Any], report: DatasetReport) -> bool:
    """Existence, size and sha256 of one listed file; False when it is missing or altered."""
    rel = entry["path"]
    path = root / rel
    report.files_checked += 1
    if not path.is_file():
        report.add("missing-file", rel, "listed in the manifest but missing")
        return False
    size, digest = path.stat().st_size, sha256_of(path)
    if size != entry.get("bytes") or digest != entry.get("sha256"):
        report.add(
            "altered-file",
            rel,
            f"content differs from the manifest: {size} bytes, sha256 {digest[:12]}… "
            f"(manifest: {entry.get('bytes')} bytes, sha256 {str(entry.get('sha256'))[:12]}…)",
        )
        return False
    return True


def check_data_file(root: Path, entry: dict[str, Any], sample: int | None, report: DatasetReport) -> None:
    rel = entry["path"]
    check_plain_file(root, entry, report)
    if not (root / rel).is_file():
        return
    try:
        rows = DataRows(root / rel)
    except Exception as exc:  # a damaged file can fail in many ways inside pyarrow / zstd / orjson
        report.add("unreadable-file", rel, f"cannot be read: {type(exc).__name__}: {exc}")
        return
    report.rows_read += len(rows)
    if len(rows) != entry.get("rows"):
        report.add("row-count", rel, f"holds {len(rows)} rows, the manifest says {entry.get('rows')}")
    if rel.endswith(".parquet") and (problem := parquet_schema_problem(root / rel)):
        report.add("schema", rel, problem)
    check_partition(rel, entry.get("partition", {}), rows.key_values(), report)
    check_rows(rel, rows, sample, report)


def parquet_schema_problem(path: Path) -> str | None:
    """How the file's columns differ from the Arrow schema derived from the JSON Schema, if they do."""
    actual = pq.read_schema(path)
    if actual.equals(arrow_schema(), check_metadata=False):
        return None
    expected = {f.name: f for f in arrow_schema()}
    found = {f.name: f for f in actual}
    missing = [n for n in expected if n not in found]
    extra = [n for n in found if n not in expected]
    changed = [n for n in expected if n in found and not found[n].equals(expected[n])]
    return f"columns differ from the schema: missing {missing}, extra {extra}, other type or nullability {changed}"


class DataRows:
    """A data file's rows: Parquet stays columnar until records are asked for; JSONL is parsed once."""

    KEY_COLUMNS = ("post_id", "date", "chat_id", "chat_username")

    def __init__(self, path: Path) -> None:
        self.table: pa.Table | None = None
        self.rows: list[dict[str, Any]] = []
        if path.name.endswith(".parquet"):
            self.table = pq.ParquetFile(path).read()
        else:
            self.rows = read_jsonl(path)

    def __len__(self) -> int:
        return self.table.num_rows if self.table is not None else len(self.rows)

    def key_values(self) -> list[dict[str, Any]]:
        """Post id, date (RFC 3339) and chat of every row: what its partition depends on."""
        if self.table is None:
            return [{k: row.get(k) for k in self.KEY_COLUMNS} for row in self.rows]
        present = [k for k in self.KEY_COLUMNS if k in self.table.column_names]  # a damaged file may lack some
        rows = self.table.select(present).to_pylist()
        return [_json_row({k: row.get(k) for k in self.KEY_COLUMNS}) for row in rows]

    def records(self, indices: Sequence[int]) -> Iterator[tuple[int, dict[str, Any]]]:
        """(index, record as a JSON-like dict) for each index, timestamps as RFC 3339 `Z` strings."""
        if self.table is None:
            yield from ((i, self.rows[i]) for i in indices)
        elif len(indices) == self.table.num_rows:
            index = 0
            for batch in self.table.to_batches(max_chunksize=10_000):
                for row in batch.to_pylist():
                    yield index, _json_row(row)
                    index += 1
        else:
            yield from zip(indices, map(_json_row, self.table.take(list(indices)).to_pylist()), strict=True)


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    for name in timestamp_fields():
        value = row.get(name)
        if isinstance(value, datetime):
            row[name] = iso_utc(value)
    return row


def sample_indices(total: int, sample: int | None) -> Sequence[int]:
    """All rows, or `sample` evenly spaced ones (deterministic)."""
    if sample is None or sample >= total:
        return range(total)
    return sorted({i * total // sample for i in range(sample)})


def check_rows(rel: str, rows: DataRows, sample: int | None, report: DatasetReport) -> None:
    bad = 0
    for index, record in rows.records(sample_indices(len(rows), sample)):
        report.rows_validated += 1
        if validate.is_valid(record):
            continue
        bad += 1
        if bad <= MAX_ROW_FINDINGS:
            reasons = "; ".join(validate.violations(record)[:3])
            report.add("schema", rel, f"row {index} (post_id {record.get('post_id')}) violates the schema: {reasons}")
    if bad > MAX_ROW_FINDINGS:
        report.add("schema", rel, f"… and {bad - MAX_ROW_FINDINGS} more rows that violate the schema")


# --- partitions -----------------------------------------------------------------------------


def path_partition(rel: str) -> dict[str, Any]:
    """Partition values named by the `key=value` folders of a data file's path."""
    values: dict[str, Any] = {}
    for segment in rel.split("/")[1:-1]:
        key, eq, raw = segment.partition("=")
        if not eq:
            continue
        if raw == NULL_PARTITION:
            values[key] = None
        elif key in PARTITION_TYPES:
            values[key] = int(raw) if raw.lstrip("-").isdigit() else raw
        else:
            values[key] = unquote(raw)  # the writers percent-encode strings like pyarrow
    return values


def row_partition(row: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """The partition a row belongs in, from its UTC date and its chat."""
    date = row.get("date")
    known: dict[str, Any] = {"year": None, "month": None}
    if date is not None:
        try:
            moment = datetime.fromisoformat(str(date).replace("Z", "+00:00")).astimezone(UTC)
            known = {"year": moment.year, "month": moment.month}
        except ValueError:
            known = {"year": "?", "month": "?"}  # not a date: the schema check reports it too
    known["chat"] = row.get("chat_username") or (f"c{row['chat_id']}" if row.get("chat_id") is not None else None)
    return {k: known.get(k) for k in keys}


def check_partition(rel: str, listed: dict[str, Any], rows: list[dict[str, Any]], report: DatasetReport) -> None:
    named = path_partition(rel)
    if named != listed:
        report.add("partition", rel, f"the path names partition {named}, the manifest lists {listed}")
    keys = list(named)
    misplaced = [(i, row) for i, row in enumerate(rows) if row_partition(row, keys) != named]
    for index, row in misplaced[:MAX_ROW_FINDINGS]:
        report.add(
            "partition",
            rel,
            f"row {index} (post_id {row.get('post_id')}, date {row.get('date')}) belongs in "
            f"{_label(row_partition(row, keys))}, not {_label(named)}",
        )
    if len(misplaced) > MAX_ROW_FINDINGS:
        report.add("partition", rel, f"… and {len(misplaced) - MAX_ROW_FINDINGS} more rows in the wrong partition")


def _label(values: dict[str, Any]) -> str:
    return "/".join(f"{k}={NULL_PARTITION if v is None else v}" for k, v in values.items())


# --- extra files ----------------------------------------------------------------------------


def check_extra_files(
    root: Path, files: list[dict[str, Any]], rejects: list[dict[str, Any]], report: DatasetReport
) -> None:
    known = {MANIFEST, SUCCESS, DATAPACKAGE, CROISSANT}
    known |= {f["path"] for f in files} | {r["path"] for r in rejects}
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if rel in known:
            continue
        if rel.startswith("posts/") and not rel.endswith(DATA_SUFFIXES):
            report.add("extra-file", rel, "not listed in the manifest; only Parquet/JSONL files may live under posts/")
        else:
            report.add("extra-file", rel, "not listed in the manifest")
