"""`datapackage.json`: Frictionless Data Package v2 with a Table Schema derived from the JSON Schema."""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..manifest import MANIFEST, RunModel, dependency_versions, rfc3339
from ..schema import schema_id, schema_sha256
from . import run
from .fields import arrow_type_name, table_schema

PROFILE = "https://datapackage.org/profiles/2.0/datapackage.json"


def datapackage_dict(model: RunModel, manifest_sha256: str) -> dict[str, Any]:
    """The Data Package of the dataset described by `model` (deterministic for a given model)."""
    resources = [posts_resource(model)]
    resources += [rejects_resource(r) for r in run.rejects_files(model)]
    resources.append(manifest_resource(manifest_sha256))
    return {
        "$schema": PROFILE,
        "name": run.dataset_name(model),
        "id": f"urn:tgexport:run:{model.run_id}",
        "title": run.title(model),
        "description": run.description(model),
        "version": run.dataset_version(model),
        "created": run.created(model),
        "keywords": ["telegram", "social media", "tgexport"],
        "contributors": [{"title": f"tgexport {__version__}", "roles": ["software"]}],
        "sources": [_source(i) for i in run.inputs(model)],
        "resources": resources,
        "tgexport:tool": {"name": "tgexport", "version": __version__, "dependencies": dependency_versions()},
        "tgexport:run": {
            "run_id": model.run_id,
            "command": model.command,
            "started_at": rfc3339(model.started_at),
            "finished_at": run.created(model),
            "options": model.options,
            "totals": model.totals(),
            "pseudonymization": model.pseudonymization,
        },
        "tgexport:schema": {"id": schema_id(), "version": run.schema_version(), "sha256": schema_sha256()},
    }


def _source(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": f"{entry['path']} ({entry['format']})",
        "path": entry["path"],
        "tgexport:sha256": entry["sha256"],
        "tgexport:bytes": entry["bytes"],
        "tgexport:format": entry["format"],
    }


def posts_resource(model: RunModel) -> dict[str, Any]:
    fmt = run.data_format(model)
    paths = run.data_paths(model)
    resource: dict[str, Any] = {
        "name": "posts",
        "type": "table",
        "title": "Posts",
        "description": (
            "One row per post, hive-partitioned under posts/. The partition keys are directory names, "
            "not columns of the files; read them with explicit types (see tgexport:partitioning). "
            f"Per-file sha256 and row counts are in {MANIFEST}."
        ),
    }
    if paths:
        resource.update(path=paths, format=fmt.package_format, mediatype=fmt.mediatype)
        if fmt.package_format == "jsonl":
            resource["encoding"] = "utf-8"
        if fmt.compression:
            resource["compression"] = fmt.compression
    else:
        resource["data"] = []  # nothing was written (every item quarantined or skipped)
    resource["schema"] = table_schema(model.partition_by)
    resource["tgexport:partitioning"] = {
        "flavor": "hive",
        "fields": [{"name": k, "arrowType": arrow_type_name(k)} for k in model.partition_by],
        "null_value": "__HIVE_DEFAULT_PARTITION__",
    }
    resource["tgexport:rows"] = model.totals()["rows"]
    return resource


def rejects_resource(rejects: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "rejects-" + rejects["path"].rsplit("/", 1)[-1].split(".", 1)[0],
        "path": rejects["path"],
        "title": "Quarantined input items",
        "description": "One JSON object per line: source reference, every violation, the raw fragment.",
        "format": "jsonl",
        "mediatype": "application/jsonl",
        "encoding": "utf-8",
        "bytes": rejects["bytes"],
        "hash": f"sha256:{rejects['sha256']}",
        "tgexport:rows": rejects["rows"],
    }


def manifest_resource(manifest_sha256: str) -> dict[str, Any]:
    return {
        "name": "manifest",
        "path": MANIFEST,
        "title": "tgexport manifest",
        "description": "The reproducibility record: inputs, options, versions and every file's sha256.",
        "format": "json",
        "mediatype": "application/json",
        "hash": f"sha256:{manifest_sha256}",
    }
