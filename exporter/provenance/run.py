"""What every rendering says about one run: names, formats, inputs, files, time span.

All of it is read from the `RunModel` (the one internal model); nothing here touches the
file system, the clock or the environment, so the documents are reproducible.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from typing import Any

from .. import __version__
from ..manifest import MANIFEST, RunModel, relative_name, rfc3339
from ..schema import load_schema, schema_id


@dataclass(frozen=True)
class DataFormat:
    """How one output format is named in each standard."""

    extension: str
    package_format: str  # Data Package `format`
    mediatype: str  # Data Package `mediatype` (IANA where there is one)
    croissant: str  # Croissant `encodingFormat` (the value mlcroissant reads)
    compression: str | None = None


DATA_FORMATS = {
    "parquet": DataFormat("parquet", "parquet", "application/vnd.apache.parquet", "application/x-parquet"),
    "jsonl": DataFormat("jsonl", "jsonl", "application/jsonl", "application/jsonlines"),
    "jsonl.zst": DataFormat("jsonl.zst", "jsonl", "application/jsonl", "application/jsonlines", "zstd"),
}


def data_format(model: RunModel) -> DataFormat:
    return DATA_FORMATS[model.output_format]


def dataset_name(model: RunModel) -> str:
    """A lowercase slug (Data Package `name` rules); `--name` may set it, else from the run id."""
    return str(model.options.get("name") or f"tgexport-{model.run_id}")


def title(model: RunModel) -> str:
    return str(model.options.get("title") or f"Telegram posts (tgexport run {model.run_id})")


def dataset_version(model: RunModel) -> str:
    """Semantic version of the data (Croissant rules: MINOR = additions): 1.0.0, +1 minor per append."""
    return str(model.options.get("version") or f"1.{len(model.history)}.0")


def schema_version() -> str:
    return str(load_schema()["x-tgexport"]["version"])


def input_formats(model: RunModel) -> list[str]:
    return sorted({i.format for i in model.inputs if i.format})


def description(model: RunModel) -> str:
    totals = model.totals()
    return (
        f"{totals['rows']} Telegram posts converted by tgexport {__version__} from {len(model.inputs)} "
        f"archive dump(s) ({', '.join(input_formats(model)) or 'none'}), normalized to the post record "
        f"JSON Schema {schema_id()} and validated against it; {totals['quarantined']} item(s) quarantined, "
        f"{totals['merged']} duplicate(s) merged. The reproducibility record is {MANIFEST}."
    )


def created(model: RunModel) -> str:
    """When the dataset was finished (SOURCE_DATE_EPOCH when set)."""
    return rfc3339(model.finished_at)


def inputs(model: RunModel) -> list[dict[str, Any]]:
    """Every input with its relative name, size, sha256 and format."""
    return [
        {"path": relative_name(i.path), "bytes": i.bytes, "sha256": i.sha256, "format": i.format} for i in model.inputs
    ]


def data_paths(model: RunModel) -> list[str]:
    return [f["path"] for f in model.files]


def rejects_files(model: RunModel) -> list[dict[str, Any]]:
    """The quarantine files of this run and of earlier (appended) runs."""
    found = [run["rejects"] for run in model.history if run.get("rejects")]
    if model.rejects:
        found.append(model.rejects)
    unique = {r["path"]: r for r in found}
    return [unique[p] for p in sorted(unique)]


def date_span(model: RunModel) -> tuple[str, str] | None:
    """First and last day of the months that hold posts (from the year/month partitions), if known."""
    months = sorted(
        (p["year"], p["month"]) for p in model.partitions() if p.get("year") is not None and p.get("month") is not None
    )
    if not months:
        return None
    (first_year, first_month), (last_year, last_month) = months[0], months[-1]
    last_day = calendar.monthrange(last_year, last_month)[1]
    return f"{first_year:04d}-{first_month:02d}-01", f"{last_year:04d}-{last_month:02d}-{last_day:02d}"


def command_line(model: RunModel) -> str:
    return " ".join(model.command) or "tgexport convert"
