"""The run model and its `_manifest.json` rendering (the reproducibility record).

One model (`RunModel`) describes a finished run; the manifest (and, later, datapackage.json
and croissant.json) are renderings of it. Times honour SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import json
import os
import platform
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pyarrow as pa

from . import __version__
from .schema import PARTITION_TYPES, load_schema, schema_id, schema_sha256
from .writers.jsonl import ZSTD_LEVEL
from .writers.parquet import ROW_GROUP

MANIFEST = "_manifest.json"
SUCCESS = "_SUCCESS"
FORMAT_VERSION = "1.0"
DEPENDENCIES = ("pyarrow", "polars", "jsonschema-rs", "jsonschema", "ijson", "orjson", "click", "zstandard")
SECRET_OPTIONS = ("--key", "--key-file", "--password", "--token", "--secret")


def now_utc() -> datetime:
    """Wall-clock time, or SOURCE_DATE_EPOCH when set (reproducible builds convention)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.strip().isdigit():
        return datetime.fromtimestamp(int(epoch), UTC)
    return datetime.now(UTC).replace(microsecond=0)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dependency_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in DEPENDENCIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def redact_command(argv: list[str], cwd: Path | None = None) -> list[str]:
    """The command line with absolute paths made relative and secrets blanked."""
    cwd = cwd or Path.cwd()
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("<redacted>")
            hide_next = False
            continue
        option, eq, value = arg.partition("=")
        if option in SECRET_OPTIONS:
            out.append(f"{option}=<redacted>" if eq else option)
            hide_next = not eq
            continue
        arg = re.sub(r"(?<=://)[^/@\s]+:[^/@\s]+@", "<redacted>@", arg)
        if option.startswith("--") and eq and os.path.isabs(value):
            arg = f"{option}={relative_name(value, cwd)}"
        out.append(relative_name(arg, cwd))
    return out


def relative_name(path: str, cwd: Path | None = None) -> str:
    """A path as recorded in metadata: absolute local paths made relative to the working folder."""
    if not os.path.isabs(path):
        return path
    try:
        return os.path.relpath(path, cwd or Path.cwd())
    except ValueError:
        return Path(path).name


@dataclass
class InputRecord:
    path: str
    sha256: str
    bytes: int
    format: str | None
    read: int = 0
    written: int = 0
    merged: int = 0
    quarantined: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    run_id: str = ""

    @classmethod
    def from_dict(cls, entry: dict[str, Any]) -> InputRecord:
        items = entry["items"]
        return cls(
            path=entry["path"],
            sha256=entry["sha256"],
            bytes=entry["bytes"],
            format=entry["format"],
            read=items["read"],
            written=items["written"],
            merged=items["merged"],
            quarantined=items["quarantined"],
            skipped=dict(entry.get("skipped_by_reason", {})),
            quarantined_by_reason=dict(entry.get("quarantined_by_reason", {})),
            run_id=entry.get("run_id", ""),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": relative_name(self.path),
            "run_id": self.run_id,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "format": self.format,
            "items": {
                "read": self.read,
                "written": self.written,
                "merged": self.merged,
                "quarantined": self.quarantined,
                "skipped": sum(self.skipped.values()),
            },
            "skipped_by_reason": dict(sorted(self.skipped.items())),
            "quarantined_by_reason": dict(sorted(self.quarantined_by_reason.items())),
        }


@dataclass
class RunModel:
    run_id: str
    command: list[str]
    options: dict[str, Any]
    started_at: datetime
    finished_at: datetime
    output_format: str
    partition_by: tuple[str, ...]
    inputs: list[InputRecord]
    files: list[dict[str, Any]]
    rejects: dict[str, Any] | None
    skipped_inputs: list[dict[str, str]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier runs of an appended dataset
    pseudonymization: dict[str, Any] | None = None  # pseudonymize.describe(): method, key fingerprint, fields

    def run_entry(self) -> dict[str, Any]:
        """This run as one entry of the manifest's `runs` history."""
        return {
            "run_id": self.run_id,
            "command": self.command,
            "started_at": rfc3339(self.started_at),
            "finished_at": rfc3339(self.finished_at),
            "inputs": [i.sha256 for i in self.inputs if i.run_id == self.run_id],
            "rejects": self.rejects,
        }

    def partitions(self) -> list[dict[str, Any]]:
        rows: Counter = Counter()
        files: Counter = Counter()
        for f in self.files:
            key = tuple(f["partition"].items())
            rows[key] += f["rows"]
            files[key] += 1
        return [{**dict(k), "rows": rows[k], "files": files[k]} for k in sorted(rows, key=_partition_order)]

    def totals(self) -> dict[str, int]:
        return {
            "read": sum(i.read for i in self.inputs),
            "written": sum(i.written for i in self.inputs),
            "merged": sum(i.merged for i in self.inputs),
            "quarantined": sum(i.quarantined for i in self.inputs),
            "skipped": sum(sum(i.skipped.values()) for i in self.inputs),
            "rows": sum(f["rows"] for f in self.files),
            "files": len(self.files),
        }


def _partition_order(key: tuple) -> tuple:
    return tuple((v is None, v if v is not None else 0) for _, v in key)


def writer_settings(output_format: str) -> dict[str, Any]:
    """How the data files were written (engine, compression, row groups), for byte-level reruns."""
    if output_format == "parquet":
        return {
            "engine": "pyarrow",
            "created_by": f"parquet-cpp-arrow version {pa.__version__}",
            "compression": "zstd",
            "max_rows_per_group": ROW_GROUP,
        }
    zst = output_format.endswith(".zst")
    return {"engine": "orjson", "compression": "zstd" if zst else None, "level": ZSTD_LEVEL if zst else None}


def manifest_dict(model: RunModel) -> dict[str, Any]:
    schema = load_schema()
    return {
        "format": "tgexport-manifest",
        "format_version": FORMAT_VERSION,
        "run_id": model.run_id,
        "tool": {"name": "tgexport", "version": __version__, "dependencies": dependency_versions()},
        "command": model.command,
        "options": model.options,
        "started_at": rfc3339(model.started_at),
        "finished_at": rfc3339(model.finished_at),
        "schema": {"id": schema_id(), "version": schema["x-tgexport"]["version"], "sha256": schema_sha256()},
        "output": {"format": model.output_format, "root": "posts"},
        "partitioning": {
            "flavor": "hive",
            "fields": [{"name": k, "type": str(PARTITION_TYPES.get(k, "string"))} for k in model.partition_by],
            "null_value": "__HIVE_DEFAULT_PARTITION__",
        },
        "sort_keys": ["chat_id", "chat_username", "post_id"],
        "writer": writer_settings(model.output_format),
        "inputs": [i.to_dict() for i in model.inputs],
        "skipped_inputs": [{**s, "path": relative_name(s["path"])} for s in model.skipped_inputs],
        "files": model.files,
        "partitions": model.partitions(),
        "rejects": model.rejects,
        "pseudonymization": model.pseudonymization,
        "runs": [*model.history, model.run_entry()],
        "totals": model.totals(),
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Stable JSON: sorted keys off (readable order), UTF-8, 2-space indent, trailing newline."""
    path.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
