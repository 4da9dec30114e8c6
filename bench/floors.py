"""Floors: how fast the machine can merely read the export, and parse it with pyarrow's reader.

    python bench/floors.py read FILE
    python bench/floors.py pyarrow FILE THREADS      (THREADS: 1 = use_threads off, else on)

Prints one JSON line {"seconds": ..., "messages": ...}. For `pyarrow`, the single chat's
`messages` array is first cut out of the file and the commas between messages are dropped
(untimed, into a temporary file); then `pyarrow.json.read_json` parses it with an explicit schema
of 12 message fields (`text_entities` instead of the mixed-type `text`), as in
/work/shared/reference/performance.md.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

CHUNK = 1 << 20


def read_floor(path: str) -> dict:
    started = time.perf_counter()
    total = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        while chunk := os.read(fd, CHUNK):
            total += len(chunk)
    finally:
        os.close(fd)
    return {"seconds": time.perf_counter() - started, "bytes": total}


def _cut_messages(path: str, out_path: str) -> int:
    with open(path, "rb") as f:
        data = f.read()
    start = data.index(b'"messages": [') + len(b'"messages": [')
    end = data.rindex(b"\n ]")
    body = data[start:end]
    del data
    count = body.count(b"\n  },\n  {") + 1
    with open(out_path, "wb") as out:
        out.write(body.replace(b"\n  },\n  {", b"\n  }\n  {"))
    return count


def pyarrow_floor(path: str, threads: int) -> dict:
    import pyarrow as pa
    import pyarrow.json as pj

    s, i = pa.string(), pa.int64()
    schema = pa.schema(
        [
            ("id", i),
            ("type", s),
            ("date", s),
            ("date_unixtime", s),
            ("edited_unixtime", s),
            ("from", s),
            ("from_id", s),
            ("author", s),
            ("forwarded_from", s),
            ("reply_to_message_id", i),
            ("media_type", s),
            ("text_entities", pa.list_(pa.struct([("type", s), ("text", s)]))),
        ]
    )
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(path))) as tmp:
        cut = os.path.join(tmp, "messages.ndjson")
        count = _cut_messages(path, cut)
        options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore", newlines_in_values=True)
        read = pj.ReadOptions(use_threads=threads > 1, block_size=16 << 20)
        started = time.perf_counter()
        table = pj.read_json(cut, read_options=read, parse_options=options)
        seconds = time.perf_counter() - started
    assert table.num_rows == count, (table.num_rows, count)
    return {"seconds": seconds, "messages": count}


def main(argv: list[str]) -> None:
    kind, path = argv[0], argv[1]
    result = read_floor(path) if kind == "read" else pyarrow_floor(path, int(argv[2]))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
