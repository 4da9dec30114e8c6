"""Column descriptions derived from the JSON Schema: Table Schema fields and Croissant fields.

The JSON Schema (schemas/) is the single source of truth; these are projections of it, in the
same order as the Arrow schema, plus the hive partition keys (directory names, not columns of
the files).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..schema import PARTITION_TYPES, arrow_schema, load_schema

PARTITION_NOTES = {
    "year": "Partition key, read from the directory name `year=YYYY` (UTC year of `date`); int16.",
    "month": "Partition key from the directory name `month=M` (UTC month of `date`, 1-12, no zero padding); int8.",
    "chat": "Partition key, read from the directory name `chat=...`: the lowercase username, else `c<chat_id>`.",
}
NULL_NOTE = "`__HIVE_DEFAULT_PARTITION__` in the path means null (posts without a date or chat)."


def non_null_type(node: dict[str, Any]) -> tuple[str, bool]:
    """(JSON type without null, whether null is allowed)."""
    kind = node.get("type")
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        return rest[0], len(rest) != len(kind)
    return str(kind), False


def arrow_type_name(name: str) -> str:
    if name in PARTITION_TYPES:
        return str(PARTITION_TYPES[name])
    if name == "chat":
        return "string"
    return str(arrow_schema().field(name).type)


# --- Frictionless Table Schema (Data Package v2) -------------------------------------------

_TABLE_TYPES = {"integer": "integer", "number": "number", "boolean": "boolean", "array": "array", "object": "object"}


def _table_type(node: dict[str, Any]) -> dict[str, Any]:
    kind, _ = non_null_type(node)
    if kind == "string":
        if node.get("format") == "date-time":
            return {"type": "datetime"}
        if node.get("format") == "uri":
            return {"type": "string", "format": "uri"}
        return {"type": "string"}
    return {"type": _TABLE_TYPES[kind]}


def table_field(name: str, node: dict[str, Any], required: bool) -> dict[str, Any]:
    """One Table Schema field: type, description, categories for enums, constraints."""
    field: dict[str, Any] = {"name": name, **_table_type(node), "description": node.get("description", "")}
    values = [v for v in node.get("enum", ()) if v is not None]
    if values:
        field["categories"] = values
    constraints: dict[str, Any] = {}
    if required and not non_null_type(node)[1]:
        constraints["required"] = True
    for bound in ("minimum", "maximum"):
        if bound in node:
            constraints[bound] = node[bound]
    if constraints:
        field["constraints"] = constraints
    field["tgexport:arrowType"] = arrow_type_name(name)
    if "x-pii" in node:
        field["tgexport:pii"] = node["x-pii"]
    return field


def partition_table_field(key: str) -> dict[str, Any]:
    kind = "string" if key == "chat" else "integer"
    return {
        "name": key,
        "type": kind,
        "description": f"{PARTITION_NOTES[key]} {NULL_NOTE}",
        "tgexport:arrowType": arrow_type_name(key),
        "tgexport:partitionKey": True,
    }


def table_schema(partition_by: tuple[str, ...]) -> dict[str, Any]:
    """The posts resource's Table Schema: every record field, then the partition keys."""
    schema = load_schema()
    required = set(schema.get("required", ()))
    fields = [table_field(name, node, name in required) for name, node in schema["properties"].items()]
    fields += [partition_table_field(key) for key in partition_by]
    return {
        "fields": fields,
        "missingValues": [],
        "tgexport:recordKey": schema["x-tgexport"]["record_key"],
    }


# --- Croissant ------------------------------------------------------------------------------

_CR_SCALARS = {
    pa.int8(): "cr:Int8",
    pa.int16(): "cr:Int16",
    pa.int64(): "cr:Int64",
    pa.float64(): "cr:Float64",
    pa.bool_(): "sc:Boolean",
    pa.string(): "sc:Text",
}


def _cr_type(arrow: pa.DataType) -> str:
    if pa.types.is_timestamp(arrow):
        return "sc:DateTime"
    return _CR_SCALARS[arrow]


def _source(file_set: str, column: str, json_path: str | None = None) -> dict[str, Any]:
    source: dict[str, Any] = {"fileSet": {"@id": file_set}, "extract": {"column": column}}
    if json_path:
        source["transform"] = {"jsonPath": json_path}
    return source


def croissant_field(
    record_set: str, file_set: str, field: pa.Field, node: dict[str, Any], column: str, path: str = ""
) -> dict[str, Any]:
    """A Croissant field for one Arrow field; structs get subFields read with jsonPath."""
    field_id = f"{record_set}/{path}{field.name}"
    out: dict[str, Any] = {
        "@type": "cr:Field",
        "@id": field_id,
        "name": field.name,
        "description": node.get("description", ""),
    }
    arrow = field.type
    if pa.types.is_list(arrow):
        out["isArray"] = True
        out["arrayShape"] = "-1"
        arrow, node = arrow.value_type, node.get("items", {})
    if pa.types.is_struct(arrow):
        out["subField"] = [
            croissant_field(record_set, file_set, sub, node["properties"][sub.name], column, f"{path}{field.name}/")
            for sub in arrow
            if _croissant_readable(sub.type)
        ]
        return out
    out["dataType"] = _cr_type(arrow)
    out["source"] = _source(file_set, column, field.name if path else None)
    return out


def _croissant_readable(arrow: pa.DataType) -> bool:
    """mlcroissant cannot read a list of structs nested inside a struct (poll.answers)."""
    return not (pa.types.is_list(arrow) and pa.types.is_struct(arrow.value_type))


def croissant_fields(record_set: str, file_set: str, partition_by: tuple[str, ...]) -> list[dict[str, Any]]:
    props = load_schema()["properties"]
    fields = [croissant_field(record_set, file_set, f, props[f.name], f.name) for f in arrow_schema()]
    return fields + [croissant_partition_field(record_set, file_set, key) for key in partition_by]


def croissant_partition_field(record_set: str, file_set: str, key: str) -> dict[str, Any]:
    """A partition key read from the file path: `fullpath` + a regex capturing the value."""
    value = "[^/]+" if key == "chat" else "[0-9]+"
    return {
        "@type": "cr:Field",
        "@id": f"{record_set}/{key}",
        "name": key,
        "description": PARTITION_NOTES[key],
        "dataType": "sc:Text" if key == "chat" else _cr_type(PARTITION_TYPES[key]),
        "source": {
            "fileSet": {"@id": file_set},
            "extract": {"fileProperty": "fullpath"},
            "transform": {"regex": f"^(?:.*/)?{key}=({value})/.*$"},
        },
    }
