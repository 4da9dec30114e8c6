"""Columnar fast path for Telegram Desktop JSON (issue #4).

Messages are framed in batches straight from the byte stream (`exporter.framing`), parsed by
pyarrow's native JSON reader into Arrow columns (`messages`), normalized with Arrow compute
expressions (`records`, `textcols`) and validated as whole columns against checks derived from
the JSON Schema (`checks`). Every row the columnar code cannot reproduce exactly — odd keys,
nulls, old exports without `date_unixtime`, rows that fail validation — goes to the per-record
converter, so both paths give identical records, rejects and counts (`runner`).

Set `TGEXPORT_FASTPATH=0` to use the per-record path only.
"""

from __future__ import annotations

import os


def enabled() -> bool:
    return os.environ.get("TGEXPORT_FASTPATH", "1") != "0"
