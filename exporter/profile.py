"""Per-task stage timings for benchmarks: `TGEXPORT_PROFILE=FILE` appends one JSON line per task.

Cheap by design: the tasks always keep `TaskResult.stages` (a few `perf_counter` calls per
batch); only the file write depends on the variable.
"""

from __future__ import annotations

import json
import os
from typing import Any


def record(spec: Any, result: Any, part: int | None = None) -> None:
    path = os.environ.get("TGEXPORT_PROFILE")
    if not path:
        return
    line = {
        "input": spec.unit.display,
        "part": part,
        "pid": os.getpid(),
        "read": result.read,
        "rows": dict(result.rows),
        "stages": {k: round(v, 4) for k, v in sorted(result.stages.items())},
    }
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")
