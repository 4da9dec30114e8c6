"""The post JSON Schema (single source of truth) and everything derived from it."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa

from .errors import SchemaError

SCHEMA_FILE = "post.v1.schema.json"
PARTITION_TYPES = {"year": pa.int16(), "month": pa.int8()}


def schemas_dir() -> Path:
    """Where the schema files are: inside the wheel (exporter/schemas) or the source tree."""
    packaged = resources.files("exporter") / "schemas"
    if packaged.is_dir():
        return Path(str(packaged))
    source_tree = Path(__file__).resolve().parent.parent / "schemas"
    if source_tree.is_dir():
        return source_tree
    raise SchemaError("the schema files are missing from this installation", hint="reinstall tgexport")


@cache
def load_schema() -> dict[str, Any]:
    """The post record JSON Schema as a dict (cached; do not mutate)."""
    with open(schemas_dir() / SCHEMA_FILE, encoding="utf-8") as f:
        return json.load(f)


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, compact, UTF-8) used for hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@cache
def schema_sha256() -> str:
    return hashlib.sha256(canonical_json(load_schema())).hexdigest()


def schema_id() -> str:
    return load_schema()["$id"]


def field_names() -> tuple[str, ...]:
    """Record fields in schema order."""
    return tuple(load_schema()["properties"])


def _non_null_type(node: dict[str, Any], pointer: str) -> tuple[str, bool]:
    kind = node.get("type")
    if isinstance(kind, str):
        return kind, False
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        if len(rest) == 1:
            return rest[0], len(rest) != len(kind)
    raise SchemaError(f"unsupported type at {pointer}: {kind!r}", hint="keep the schema in the supported subset")


def arrow_type(node: dict[str, Any], pointer: str = "#") -> pa.DataType:
    """Arrow type of one schema node (DESIGN.md §4 type rules)."""
    kind, _ = _non_null_type(node, pointer)
    if kind == "integer":
        return pa.int64()
    if kind == "number":
        return pa.float64()
    if kind == "boolean":
        return pa.bool_()
    if kind == "string":
        return pa.timestamp("us", tz="UTC") if node.get("format") == "date-time" else pa.string()
    if kind == "array":
        item = node["items"]
        is_struct = _non_null_type(item, pointer + "/items")[0] == "object"
        return pa.list_(pa.field("element", arrow_type(item, pointer + "/items"), nullable=not is_struct))
    if kind == "object":
        return pa.struct(_arrow_fields(node, pointer))
    raise SchemaError(f"unsupported type at {pointer}: {kind!r}", hint="keep the schema in the supported subset")


def _arrow_fields(node: dict[str, Any], pointer: str) -> list[pa.Field]:
    required = set(node.get("required", ()))
    fields = []
    for name, child in node["properties"].items():
        child_pointer = f"{pointer}/properties/{name}"
        _, nullable = _non_null_type(child, child_pointer)
        meta = {"description": child.get("description", "")}
        fields.append(
            pa.field(name, arrow_type(child, child_pointer), nullable=nullable or name not in required, metadata=meta)
        )
    return fields


@cache
def arrow_schema() -> pa.Schema:
    """The Arrow schema of the data files, derived from the JSON Schema."""
    return pa.schema(_arrow_fields(load_schema(), "#"))


def timestamp_fields() -> tuple[str, ...]:
    props = load_schema()["properties"]
    return tuple(k for k, v in props.items() if v.get("format") == "date-time")


def enum_values(name: str) -> list[str] | None:
    node = load_schema()["properties"][name]
    values = node.get("enum")
    return [v for v in values if v is not None] if values else None


def pii_fields() -> dict[str, str]:
    """Fields annotated `x-pii` (top-level and nested), as dotted path -> kind."""
    found: dict[str, str] = {}

    def walk(node: dict[str, Any], path: str) -> None:
        if "x-pii" in node:
            found[path] = node["x-pii"]
        for name, child in node.get("properties", {}).items():
            walk(child, f"{path}.{name}" if path else name)
        if "items" in node:
            walk(node["items"], path)

    walk(load_schema(), "")
    return found
