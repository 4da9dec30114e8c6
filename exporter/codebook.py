"""The data dictionary (codebook) of the post record, rendered from the JSON Schema.

Everything comes from schemas/post.v1.schema.json: types, meanings, allowed values, the `x-pii`
annotations and the `x-tgexport-formats` annotations (which input formats fill a field). The Arrow
types are derived exactly as the writers derive them. `docs/data-dictionary.md` is this output.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from .schema import PARTITION_TYPES, arrow_schema, load_schema, schema_id, schema_sha256

FORMATS_KEY = "x-tgexport-formats"
REGENERATE = "tgexport schema --markdown > docs/data-dictionary.md"
PARTITION_KEYS = {
    "year": "UTC year of `date`, from the directory name `year=YYYY`.",
    "month": "UTC month of `date` (1-12, no zero padding), from the directory name `month=M`.",
    "chat": "Lowercase chat username, else `c<chat_id>` (only with `--partition-by chat,...`).",
}


def json_type(node: dict[str, Any]) -> str:
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " | ".join(str(k) for k in kinds)
    if node.get("format"):
        text += f" ({node['format']})"
    return text


def nullable(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return isinstance(kind, list) and "null" in kind


def null_semantics(node: dict[str, Any]) -> str:
    """What null (or the empty value) means for this field."""
    if nullable(node):
        return "null when the source does not provide it"
    kind = node.get("type")
    if kind == "array":
        return "never null; empty list when there are none"
    if kind == "boolean":
        return "never null; false unless the source says so"
    return "never null"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _arrow(field: pa.Field) -> str:
    return f"`{field.type}`"


def _short_arrow(field: pa.Field) -> str:
    """The Arrow type with nested structs abbreviated (the field's section has the details)."""
    arrow = field.type
    if pa.types.is_list(arrow) and pa.types.is_struct(arrow.value_type):
        return "`list<struct>`"
    if pa.types.is_struct(arrow):
        return "`struct`"
    return f"`{arrow}`"


def _pii(node: dict[str, Any]) -> str:
    return f"yes (`{node['x-pii']}`)" if "x-pii" in node else "no"


def _values(node: dict[str, Any]) -> str:
    values = [v for v in node.get("enum", ()) if v is not None]
    return ", ".join(f"`{v}`" for v in values)


def all_formats() -> list[str]:
    """Every input format name (the `source_format` enum)."""
    return list(load_schema()["properties"]["source_format"]["enum"])


def _formats(node: dict[str, Any]) -> str:
    formats = list(node.get(FORMATS_KEY, ()))
    if formats and sorted(formats) == sorted(all_formats()):
        return "all formats"
    return ", ".join(formats) or "none"


def summary_table() -> list[str]:
    props = load_schema()["properties"]
    lines = [
        "| field | JSON type | Arrow type | null | provided by | PII |",
        "|---|---|---|---|---|---|",
    ]
    for field in arrow_schema():
        node = props[field.name]
        lines.append(
            f"| [`{field.name}`](#{field.name}) | {_cell(json_type(node))} | {_short_arrow(field)} "
            f"| {'yes' if nullable(node) else 'no'} | {_cell(_formats(node))} | {_pii(node)} |"
        )
    return lines


def _struct_of(field: pa.Field, node: dict[str, Any]) -> tuple[pa.StructType, dict[str, Any]] | None:
    arrow, json_node = field.type, node
    if pa.types.is_list(arrow):
        arrow, json_node = arrow.value_type, node.get("items", {})
    if pa.types.is_struct(arrow):
        return arrow, json_node
    return None


def sub_field_rows(field: pa.Field, node: dict[str, Any], prefix: str) -> list[str]:
    found = _struct_of(field, node)
    if found is None:
        return []
    struct, json_node = found
    rows = []
    for sub in struct:
        child = json_node["properties"][sub.name]
        name = f"{prefix}{sub.name}"
        rows.append(
            f"| `{name}` | {_cell(json_type(child))} | {_arrow(sub)} | {_cell(null_semantics(child))} "
            f"| {_cell(child.get('description', ''))} | {_pii(child)} |"
        )
        rows += sub_field_rows(sub, child, f"{name}.")
    return rows


def field_section(field: pa.Field, node: dict[str, Any]) -> list[str]:
    lines = [f"### {field.name}", "", _cell(node.get("description", "")), ""]
    lines.append(f"- JSON type: `{json_type(node)}`; Arrow type: {_arrow(field)}")
    lines.append(f"- Null: {null_semantics(node)}")
    if _values(node):
        lines.append(f"- Allowed values: {_values(node)}")
    lines.append(f"- Provided by: {_formats(node)}")
    lines.append(f"- PII: {_pii(node)}")
    rows = sub_field_rows(field, node, f"{field.name}.")
    if rows:
        lines += ["", "| sub-field | JSON type | Arrow type | null | meaning | PII |", "|---|---|---|---|---|---|"]
        lines += rows
    return [*lines, ""]


def partition_section() -> list[str]:
    lines = [
        "## Partition keys",
        "",
        "Directory names under `posts/`, not columns inside the files. Read them with explicit types "
        "(see `docs/reading.md`); `__HIVE_DEFAULT_PARTITION__` means null (posts without a date).",
        "",
        "| key | Arrow type | meaning |",
        "|---|---|---|",
    ]
    for key, meaning in PARTITION_KEYS.items():
        lines.append(f"| `{key}` | `{PARTITION_TYPES.get(key, pa.string())}` | {meaning} |")
    return [*lines, ""]


def render_markdown() -> str:
    """The whole codebook as Markdown (ends with a newline)."""
    schema = load_schema()
    version = schema["x-tgexport"]["version"]
    lines = [
        f"# Data dictionary: tgexport post record {version}",
        "",
        f"<!-- Generated from schemas/post.v1.schema.json by `{REGENERATE}`; do not edit by hand. -->",
        "",
        _cell(schema.get("description", "")),
        "",
        f"- Schema: `{schema_id()}` (sha256 `{schema_sha256()}`)",
        "- Every field is present in every record. Timestamps are UTC instants: `timestamp[us, tz=UTC]` in "
        "Parquet, RFC 3339 with `Z` in JSONL. Ids are int64 (JSON integers in JSONL).",
        "- *Provided by* lists the input formats whose dumps carry the field; records from other formats hold "
        "null (or the empty list / false for fields that are never null).",
        "- *PII* marks fields that can identify a private person (`x-pii` in the schema; the pseudonymizer reads it).",
        "",
        "## Fields",
        "",
        *summary_table(),
        "",
    ]
    props = schema["properties"]
    for field in arrow_schema():
        lines += field_section(field, props[field.name])
    lines += partition_section()
    return "\n".join(lines).rstrip("\n") + "\n"
