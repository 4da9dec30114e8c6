"""JSONL writer (optionally zstd-compressed): one record per line, RFC 3339 `Z` timestamps."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow as pa
import zstandard

from ..arrowbuild import partition_label
from ..normalize import iso_utc
from .base import WriteJob, WrittenFile, describe, make_dirs_below

ZSTD_LEVEL = 10


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value.astimezone(UTC))
    raise TypeError(f"cannot serialize {type(value).__name__}")


def dumps(record: dict[str, Any]) -> bytes:
    """One JSONL line: keys in schema order, timestamps as RFC 3339 with Z."""
    return orjson.dumps(record, default=_default, option=orjson.OPT_PASSTHROUGH_DATETIME) + b"\n"


class JsonlWriter:
    name = "jsonl"
    extension = "jsonl"
    compressed = False

    def write(self, job: WriteJob, partitions: Iterable[tuple[dict[str, Any], pa.Table]]) -> list[WrittenFile]:
        written = []
        for values, table in partitions:
            folder = job.root / "posts" / partition_label(values)
            make_dirs_below(job.root, folder)
            path = folder / f"{job.stem}-0.{self.extension}"
            with open(path, "wb") as raw:
                self._write_rows(raw, table)
            written.append(describe(job.root, path, values, table.num_rows))
        return written

    def _write_rows(self, raw: IO[bytes], table: pa.Table) -> None:
        if self.compressed:
            params = zstandard.ZstdCompressionParameters.from_level(ZSTD_LEVEL, threads=0, write_checksum=1)
            with zstandard.ZstdCompressor(compression_params=params).stream_writer(raw, closefd=False) as out:
                self._lines(out, table)
        else:
            self._lines(raw, table)

    @staticmethod
    def _lines(out: IO[bytes], table: pa.Table) -> None:
        for batch in table.to_batches(max_chunksize=10_000):
            out.write(b"".join(dumps(row) for row in batch.to_pylist()))


class JsonlZstWriter(JsonlWriter):
    name = "jsonl.zst"
    extension = "jsonl.zst"
    compressed = True


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read back a `.jsonl` or `.jsonl.zst` file (for validation and tests)."""
    with open(path, "rb") as raw:
        data = raw.read()
    if path.name.endswith(".zst"):
        data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]
