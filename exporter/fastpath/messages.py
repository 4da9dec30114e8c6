"""pyarrow's JSON reader over framed batches, and the key census that finds odd messages.

The reader is given an explicit schema and ignores every other key, so on its own it cannot tell
"absent" from `null`, nor see keys it was not told about. The census can: `frame_region` lists
every top-level key line of every message (tdesktop's layout puts each key on its own line at
the message's depth), and a message is "clean" when its key lines are exactly its non-null
declared columns plus the `framing.UNPARSED_KEYS`, which are never parsed: keys the per-record
converter ignores, such as `text` (beside `text_entities`; it has no single type), `date` (beside
`date_unixtime`, which `records.eligible` requires) and `thumbnail`. Building their columns took
7% of the parse. Messages with unknown keys, `null` values or repeated keys are left to the
per-record path.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.json as pj

from ..arrowbuild import to_numpy
from ..framing import Batch

S, I64, BOOL = pa.string(), pa.int64(), pa.bool_()
PART = pa.struct([("type", S), ("text", S), ("href", S), ("user_id", I64), ("document_id", S)])
REACTION = pa.struct([("type", S), ("count", I64), ("emoji", S), ("document_id", S)])
# A poll question/answer given as a list of text parts (formatted, tdesktop 5.16+) does not fit:
# pyarrow then rejects the batch and it goes per record.
POLL = pa.struct(
    [
        ("question", S),
        ("closed", BOOL),
        ("total_voters", I64),
        ("answers", pa.list_(pa.struct([("text", S), ("voters", I64)]))),
    ]
)
# Keys the columnar normalization reads, with the types tdesktop writes.
USED = [
    ("id", I64),
    ("type", S),
    ("date_unixtime", S),
    ("edited", S),
    ("edited_unixtime", S),
    ("from", S),
    ("from_id", S),
    ("actor", S),
    ("actor_id", S),
    ("action", S),
    ("author", S),
    ("forwarded_from", S),
    ("reply_to_message_id", I64),
    ("reply_to_peer_id", S),
    ("message_id", I64),
    ("photo", S),
    ("photo_file_size", I64),
    ("width", I64),
    ("height", I64),
    ("file", S),
    ("file_name", S),
    ("file_size", I64),
    ("media_type", S),
    ("mime_type", S),
    ("duration_seconds", I64),
    ("sticker_emoji", S),
    ("text_entities", pa.list_(PART)),
    ("reactions", pa.list_(REACTION)),
    ("poll", POLL),
]
# Every other top-level key the per-record converter accepts is in framing.UNPARSED_KEYS: never
# parsed, only counted by the census.
MESSAGE_SCHEMA = pa.schema(USED)
_PARSE = pj.ParseOptions(explicit_schema=MESSAGE_SCHEMA, unexpected_field_behavior="ignore", newlines_in_values=True)


def parse(batch: Batch) -> pa.Table | None:
    """The batch's messages as a table of MESSAGE_SCHEMA, or None if pyarrow cannot read it.

    Turns the commas between messages into spaces (in the batch's own buffer; they are never part
    of a message's bytes).
    """
    frames = batch.frames
    view = np.frombuffer(batch.padded, np.uint8)
    view[frames.closes[:-1] + batch.pad + 2] = 32
    longest = int(np.max(frames.closes - frames.opens)) + batch.pad + 8
    options = pj.ReadOptions(use_threads=False, block_size=max(frames.end + 1, longest, 1 << 16))
    data = pa.py_buffer(memoryview(batch.padded)[: frames.end])
    try:
        table = pj.read_json(pa.BufferReader(data), read_options=options, parse_options=_PARSE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    finally:
        view[frames.closes[:-1] + batch.pad + 2] = 44
    if table.num_rows != frames.count:
        return None
    return table.combine_chunks()


def clean_rows(batch: Batch, table: pa.Table) -> np.ndarray:
    """Boolean mask: the message's keys are exactly its non-null declared columns (+ UNPARSED_KEYS)."""
    frames, n = batch.frames, batch.count
    declared = np.zeros(n, np.int64)
    for column in table.columns:
        nulls = column.null_count
        if nulls == 0:
            declared += 1
        elif nulls < n:
            declared += to_numpy(column.is_valid())
    return frames.keys - frames.unparsed == declared
