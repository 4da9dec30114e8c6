"""`croissant.json`: MLCommons Croissant 1.1 with Responsible-AI (RAI 1.0) and PROV-O terms.

Loadable with `mlcroissant.Dataset(jsonld="croissant.json").records("posts")`: a FileSet points at
the data files under posts/, every column is a Field (structs as subFields read with jsonPath),
and the hive partition keys are read from each file's path with a regex.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..manifest import MANIFEST, RunModel, rfc3339
from ..schema import pii_fields, schema_id
from . import run
from .fields import croissant_fields

CROISSANT_1_1 = "http://mlcommons.org/croissant/1.1"
RAI_1_0 = "http://mlcommons.org/croissant/RAI/1.0"
RECORD_SET = "posts"
FILE_SET = "post-files"
NULL_RECORD_SET = "posts_null_partition"
NULL_FILE_SET = "post-files-null-partition"
MAX_FILE_OBJECTS = 1000  # beyond this, per-file sha256 live in the manifest only

CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/",
    "prov": "http://www.w3.org/ns/prov#",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileObject": "cr:fileObject",
    "fileProperty": "cr:fileProperty",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sdVersion": "cr:sdVersion",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}

# How the data behind each input format was collected (RAI `dataCollectionType` vocabulary).
COLLECTION_TYPES = {
    "tdesktop-json": "Software Collection",
    "tdesktop-html": "Software Collection",
    "telethon-json": "Web API",
    "tme-html": "Web Scraping",
    "mirror": "Web Scraping",
    "snscrape-jsonl": "Web Scraping",
    "tgdataset": "Secondary Data analysis",
}


def croissant_dict(model: RunModel, manifest_sha256: str) -> dict[str, Any]:
    """The Croissant description of the dataset described by `model` (deterministic for a given model)."""
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": [CROISSANT_1_1, RAI_1_0],
        "name": run.dataset_name(model),
        "description": run.description(model),
        "url": str(model.options.get("url") or f"urn:tgexport:run:{model.run_id}"),
        "license": str(model.options.get("license") or "NOASSERTION"),
        "creator": {"@type": "sc:Organization", "name": str(model.options.get("creator") or "unspecified")},
        "datePublished": run.created(model),
        "version": run.dataset_version(model),
        "citeAs": cite_as(model),
        "keywords": ["telegram", "social media", "tgexport"],
        "isAccessibleForFree": True,
    }
    span = run.date_span(model)
    if span:
        doc["temporalCoverage"] = f"{span[0]}/{span[1]}"  # months that hold posts (UTC)
    doc.update(rai_fields(model))
    doc.update(prov_fields(model))
    doc["distribution"] = distribution(model, manifest_sha256)
    doc["recordSet"] = record_sets(model)
    return doc


def cite_as(model: RunModel) -> str:
    year = model.finished_at.year
    return (
        f"@misc{{{run.dataset_name(model).replace('-', '_')}, title={{{run.title(model)}}}, year={{{year}}}, "
        f"note={{Converted with tgexport {__version__}, run {model.run_id}}}}}"
    )


def rai_fields(model: RunModel) -> dict[str, Any]:
    formats = run.input_formats(model)
    totals = model.totals()
    return {
        "rai:dataCollection": (
            f"Telegram archive dumps supplied by the dataset creator ({', '.join(formats) or 'none'}), "
            f"converted with tgexport {__version__}. Inputs are identified by sha256 in {MANIFEST}."
        ),
        "rai:dataCollectionType": sorted({COLLECTION_TYPES.get(f, "Others") for f in formats}) or ["Others"],
        "rai:dataCollectionRawData": "; ".join(
            f"{i['path']} ({i['format']}, sha256 {i['sha256']})" for i in run.inputs(model)
        ),
        "rai:dataCollectionMissingData": (
            "Every field is present in every record; null means the input format does not provide the field "
            "(see the data dictionary), never zero. Posts deleted before the dump was made are absent."
        ),
        "rai:dataPreprocessingProtocol": (
            f"Each item was normalized into the post record and validated against JSON Schema {schema_id()}; "
            f"invalid items were handled with --on-invalid {model.options.get('on_invalid', 'quarantine')} "
            f"({totals['quarantined']} quarantined in rejects/ with every violation and the raw fragment, "
            f"{totals['skipped']} skipped with a reason). Duplicates of the same post were merged "
            f"({totals['merged']}). Timestamps were converted to UTC."
        ),
        "rai:dataManipulationProtocol": "Command line: " + run.command_line(model),
        "rai:personalSensitiveInformation": (
            "Post text and these fields can identify private persons: "
            + ", ".join(sorted(pii_fields()))
            + "."
            + _pseudonymized(model)
        ),
        "rai:dataLimitations": (
            "Coverage is whatever the dumps contain; counts (views, forwards, reactions) are snapshots at dump "
            "time and may be rounded (counts_rounded); web-preview and mirror pages omit fields."
        ),
    }


def prov_fields(model: RunModel) -> dict[str, Any]:
    return {
        "prov:wasDerivedFrom": [
            {"@id": f"urn:sha256:{i['sha256']}", "@type": "prov:Entity", "name": i["path"]} for i in run.inputs(model)
        ],
        "prov:wasGeneratedBy": {
            "@id": f"urn:tgexport:run:{model.run_id}",
            "@type": "prov:Activity",
            "prov:label": run.command_line(model),
            "prov:startedAtTime": rfc3339(model.started_at),
            "prov:endedAtTime": rfc3339(model.finished_at),
            "prov:wasAssociatedWith": {
                "@type": "prov:SoftwareAgent",
                "name": "tgexport",
                "softwareVersion": __version__,
            },
        },
    }


def distribution(model: RunModel, manifest_sha256: str) -> list[dict[str, Any]]:
    fmt = run.data_format(model)
    files: list[dict[str, Any]] = [_file_object("manifest", MANIFEST, "application/json", manifest_sha256)]
    for rejects in run.rejects_files(model):
        name = "rejects-" + rejects["path"].rsplit("/", 1)[-1].split(".", 1)[0]
        files.append(_file_object(name, rejects["path"], "application/jsonlines", rejects["sha256"]))
    if len(model.files) <= MAX_FILE_OBJECTS:
        files += [_file_object(f["path"], f["path"], fmt.croissant, f["sha256"]) for f in model.files]
    keys = "/".join(f"{key}=[!_]*" for key in model.partition_by)
    files.append(_file_set(FILE_SET, [f"posts/{keys}/*.{fmt.extension}"], model))
    if null_partition_files(model):
        files.append(_file_set(NULL_FILE_SET, null_partition_files(model), model))
    return files


def null_partition_files(model: RunModel) -> list[str]:
    """Files in a partition with a null key (`__HIVE_DEFAULT_PARTITION__`), e.g. posts without a date."""
    return [f["path"] for f in model.files if any(v is None for v in f["partition"].values())]


def _file_set(name: str, includes: list[str], model: RunModel) -> dict[str, Any]:
    fmt = run.data_format(model)
    note = f"Data files; each one's sha256 and row count are in {MANIFEST}."
    if fmt.compression:
        note += (
            f" Compressed with {fmt.compression}: mlcroissant 1.1.1 cannot decompress it; use --to jsonl or parquet."
        )
    return {
        "@type": "cr:FileSet",
        "@id": name,
        "name": name,
        "description": note,
        "encodingFormat": fmt.croissant,
        "includes": includes,
    }


def _file_object(name: str, path: str, encoding: str, sha256: str) -> dict[str, Any]:
    return {
        "@type": "cr:FileObject",
        "@id": name,
        "name": name,
        "contentUrl": path,
        "encodingFormat": encoding,
        "sha256": sha256,
    }


def record_sets(model: RunModel) -> list[dict[str, Any]]:
    """`posts` (partition keys read from the paths) and, when some partition key is null, `posts_null_partition`."""
    sets = [
        {
            "@type": "cr:RecordSet",
            "@id": RECORD_SET,
            "name": RECORD_SET,
            "description": "One record per post: every column of the data files plus the partition keys.",
            "field": croissant_fields(RECORD_SET, FILE_SET, model.partition_by),
        }
    ]
    if null_partition_files(model):
        sets.append(
            {
                "@type": "cr:RecordSet",
                "@id": NULL_RECORD_SET,
                "name": NULL_RECORD_SET,
                "description": (
                    "Posts in a partition with a null key (`__HIVE_DEFAULT_PARTITION__`, e.g. posts without a date); "
                    f"same columns as `{RECORD_SET}`, without the partition keys."
                ),
                "field": croissant_fields(NULL_RECORD_SET, NULL_FILE_SET, ()),
            }
        )
    return sets


def _pseudonymized(model: RunModel) -> str:
    info = model.pseudonymization
    if not info:
        return " They are not pseudonymized."
    return (
        f" Persons are pseudonymized with keyed {info['method']} (key fingerprint {info['key_fingerprint']}) "
        f"in: {', '.join(info['fields'])}; see the manifest's `pseudonymization` entry."
    )
