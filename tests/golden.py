"""Golden-record helpers shared by the converter tests.

A fixture `tests/fixtures/<format>/<case>.<ext>` has its expected records next to it in
`<case>.expected.json`: a JSON list of records, each without the provenance fields the
pipeline stamps (`source_*`, `run_id`), in the converter's output order. Items that the
converter rejects appear as {"problems": [...]} and skipped items as {"skip_reason": "..."}.

Set TGEXPORT_REGEN_GOLDEN=1 to (re)write expected files — then read every diff by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from exporter.converters import get
from exporter.converters.base import ConvertOptions, SourceRef

FIXTURES = Path(__file__).parent / "fixtures"
PROVENANCE = ("source_format", "source_file", "source_sha256", "source_locator", "run_id", "sources")


def convert_fixture(fmt: str, path: Path, options: ConvertOptions | None = None) -> list[dict[str, Any]]:
    """Run converter `fmt` over one fixture file and return comparable outcomes."""
    data = path.read_bytes()
    source = SourceRef(display=path.name, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    outcomes = []
    with open(path, "rb") as stream:
        for item in get(fmt).iter_items(stream, source, options or ConvertOptions()):
            if item.skip_reason:
                outcomes.append({"locator": item.locator, "skip_reason": item.skip_reason})
            elif item.record is None or item.problems:
                outcomes.append({"locator": item.locator, "problems": item.problems})
            else:
                rec = {k: v for k, v in item.record.items() if k not in PROVENANCE}
                outcomes.append({"locator": item.locator, **rec})
    return outcomes


def check_golden(fmt: str, path: Path, options: ConvertOptions | None = None) -> list[dict[str, Any]]:
    """Compare a fixture's outcomes with its `.expected.json`; return the outcomes."""
    got = convert_fixture(fmt, path, options)
    expected_path = path.with_name(path.name.split(".")[0] + ".expected.json")
    if os.environ.get("TGEXPORT_REGEN_GOLDEN") == "1":
        expected_path.write_text(json.dumps(got, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    assert got == expected, f"{path.name}: converter output differs from {expected_path.name}"
    return got
