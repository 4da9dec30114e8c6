"""Whole-batch validation of record tables, derived from the JSON Schema.

`batch_checks()` walks `schemas/post.v1.schema.json` and turns every validation keyword into a
check on Arrow columns: `required` + a `type` without `null` -> not null, `enum` -> membership,
`pattern` -> RE2 search (the schema's patterns mean the same in ECMA-262 and RE2), `minimum` /
`maximum`, `minItems`, `format` (`date-time` on timestamp columns: the year the record's RFC 3339
text would need; `uri`: a conservative subset). `type` itself, `properties` and
`additionalProperties: false` hold by construction: the table has exactly `arrow_schema()`,
which is derived from the same schema. A keyword this module does not know raises, so a schema
change cannot silently weaken the checks.

A row the checks reject is re-derived by the per-record path, which decides with jsonschema-rs
and writes the reasons; so the checks must never accept what jsonschema-rs rejects, and may
(rarely) reject more — the `uri` subset does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..arrowbuild import to_numpy
from ..errors import SchemaError
from ..schema import arrow_schema, load_schema

# Keywords that do not constrain values (plus every `x-...` extension keyword of this project).
ANNOTATIONS = {"description", "title", "$schema", "$id", "$comment", "examples", "default", "deprecated"}
STRUCTURAL = {"type", "properties", "required", "additionalProperties", "items"}
VALUE_KEYWORDS = {"enum", "pattern", "minimum", "maximum", "format", "minItems"}
# RFC 3986 URIs made of unreserved and sub-delimiter characters only (no `%`, no brackets).
URI_SUBSET = r"^https?://[A-Za-z0-9.-]+(/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?$"
# The years whose RFC 3339 text (normalize.iso_utc) has four digits.
TIMESTAMP_RANGE = ("1000-01-01T00:00:00", "9999-12-31T23:59:59.999999")


@dataclass(frozen=True)
class Check:
    """One keyword at one place in the record: `path` like `entities/*/type`."""

    path: str
    keyword: str
    argument: Any


def _types(node: dict[str, Any]) -> set[str]:
    kind = node.get("type")
    return {kind} if isinstance(kind, str) else set(kind or ())


@cache
def batch_checks() -> tuple[Check, ...]:
    """Every check the schema asks for, in schema order."""
    found: list[Check] = []
    _derive(load_schema(), "", True, found)
    return tuple(found)


def _derive(node: dict[str, Any], path: str, required: bool, found: list[Check]) -> None:
    unknown = {k for k in node if not k.startswith("x-")} - ANNOTATIONS - STRUCTURAL - VALUE_KEYWORDS
    if unknown:
        raise SchemaError(f"batch validation does not know the keywords {sorted(unknown)} at {path or '#'}")
    if node.get("additionalProperties", False) is not False and "properties" in node:
        raise SchemaError(f"batch validation needs additionalProperties: false at {path or '#'}")
    if path and required and "null" not in _types(node):
        found.append(Check(path, "not_null", None))
    for keyword in sorted(VALUE_KEYWORDS & set(node)):
        if keyword == "format" and node[keyword] not in ("date-time", "uri"):
            raise SchemaError(f"batch validation does not know format {node[keyword]!r} at {path}")
        found.append(Check(path, keyword, node[keyword]))
    needed = set(node.get("required", ()))
    for name, child in node.get("properties", {}).items():
        _derive(child, f"{path}/{name}" if path else name, name in needed, found)
    if "items" in node:
        _derive(node["items"], f"{path}/*", True, found)


# --- applying the checks ---------------------------------------------------------------------------


@dataclass
class _Values:
    """The values at one path of the batch, and the row each value belongs to."""

    array: pa.Array
    rows: np.ndarray | None  # None: value i belongs to row i


def _child(values: _Values, step: str) -> _Values:
    array = values.array
    if step == "*":
        if len(array.values) and (array.offsets[0].as_py() != 0 or len(array.values) != array.offsets[-1].as_py()):
            array = array.take(pa.array(np.arange(len(array))))
        parents = to_numpy(pc.list_parent_indices(array)) if len(array.values) else np.zeros(0, np.int64)
        rows = parents if values.rows is None else values.rows[parents]
        return _Values(array.values, rows)
    child = array.field(step)
    if array.null_count:  # children of an absent object are not values
        keep = to_numpy(array.is_valid())
        rows = np.flatnonzero(keep) if values.rows is None else values.rows[keep]
        return _Values(child.filter(pa.array(keep)), rows)
    return _Values(child, values.rows)


def _resolve(table: pa.Table, path: str, cache_: dict[str, _Values]) -> _Values:
    if path in cache_:
        return cache_[path]
    head, _, step = path.rpartition("/")
    if not head:
        column = table.column(path)  # one chunk (records.build): no copy
        values = _Values(column.chunk(0) if column.num_chunks == 1 else column.combine_chunks(), None)
    else:
        values = _child(_resolve(table, head, cache_), step)
    cache_[path] = values
    return values


@cache
def _timestamp_limits(type_: pa.DataType) -> tuple[pa.Scalar, pa.Scalar]:
    low, high = (pa.scalar(np.datetime64(t, "us"), pa.timestamp("us")).cast(type_) for t in TIMESTAMP_RANGE)
    return low, high


@cache
def _enum_values(argument: tuple, type_: pa.DataType) -> pa.Array:
    return pa.array([v for v in argument if v is not None], type_)


@cache
def _limit(argument: Any, type_: pa.DataType) -> pa.Scalar:
    return pa.scalar(argument).cast(type_)


def _timestamp_bounds(array: pa.Array) -> pa.Array:
    low, high = _timestamp_limits(array.type)
    return pc.and_(pc.greater_equal(array, low), pc.less_equal(array, high))


def _failing(check: Check, array: pa.Array) -> pa.Array:
    """True where a value breaks the check (null where the check does not apply)."""
    keyword, argument = check.keyword, check.argument
    if keyword == "not_null":
        return array.is_null()
    if keyword == "enum":
        inside = pc.is_in(array, _enum_values(tuple(argument), array.type))
        return pc.invert(pc.if_else(array.is_null(), None in argument, inside))
    if pa.types.is_timestamp(array.type) and keyword in ("pattern", "format"):
        return pc.invert(_timestamp_bounds(array))
    tests: dict[str, Callable[[], pa.Array]] = {
        "pattern": lambda: pc.invert(pc.match_substring_regex(array, argument)),
        "format": lambda: _format_failing(argument, array),
        "minimum": lambda: pc.less(array, _limit(argument, array.type)),
        "maximum": lambda: pc.greater(array, _limit(argument, array.type)),
        "minItems": lambda: pc.less(pc.list_value_length(array), argument),
    }
    return tests[keyword]()


def _format_failing(name: str, array: pa.Array) -> pa.Array:
    if name != "uri":
        raise SchemaError(f"batch validation checks format {name!r} only on timestamp columns")
    return pc.invert(pc.match_substring_regex(array, URI_SUBSET))


def _implied(check: Check, type_: pa.DataType) -> bool:
    """The Arrow type alone guarantees the check (int64 bounds at the int64 limits)."""
    if check.keyword not in ("minimum", "maximum") or not pa.types.is_int64(type_):
        return False
    limit = np.iinfo(np.int64).min if check.keyword == "minimum" else np.iinfo(np.int64).max
    return check.argument == limit


def _constant(array: pa.Array) -> bool:
    """A string array without nulls whose values are all the same (provenance: one per input)."""
    if array.null_count or not len(array):
        return False
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int32)[array.offset : array.offset + len(array) + 1]
    sizes = np.diff(offsets)
    if (sizes != sizes[0]).any():
        return False
    if sizes[0] == 0:
        return True
    data = np.frombuffer(data_buffer, np.uint8)[offsets[0] : offsets[-1]].reshape(len(array), int(sizes[0]))
    return bool((data == data[0]).all())


def _uri_failing(check: Check, array: pa.Array) -> np.ndarray | None:
    """`format: uri` once per distinct value with its trailing digits folded, or None.

    Post links differ only in their trailing digits (`https://t.me/name/123`). Every ASCII digit
    is allowed both in URI_SUBSET's host and in its path, and a run of trailing digits never
    holds the `/` that ends the host; so a value that ends in digits passes exactly when its
    stem (trailing digits removed) plus "0" passes. Values without trailing digits are checked
    as they are. None: the stems do not repeat enough to pay.
    """
    stems = pc.ascii_rtrim(array, characters="0123456789")
    distinct = pc.unique(stems)
    if len(distinct) * 4 >= len(array):
        return None
    bare = to_numpy(pc.fill_null(_failing(check, distinct), False))
    folded = to_numpy(pc.fill_null(_failing(check, pc.binary_join_element_wise(distinct, "0", "")), False))
    index = to_numpy(pc.index_in(stems, value_set=distinct))  # nulls too: unique() keeps one null
    digits = to_numpy(pc.fill_null(pc.less(pc.binary_length(stems), pc.binary_length(array)), False))
    return np.where(digits, folded[index], bare[index])


_VERDICTS: dict[tuple[str, str, str, str], bool] = {}  # a constant column's verdict, per check and value


def _constant_failing(check: Check, array: pa.Array) -> bool:
    """Whether the one value of a constant column fails the check; remembered across batches
    (provenance columns hold one value per input, and each RE2 check compiles its pattern)."""
    key = (check.path, check.keyword, repr(check.argument), array[0].as_py())
    verdict = _VERDICTS.get(key)
    if verdict is None:
        if len(_VERDICTS) >= 4096:
            _VERDICTS.clear()
        verdict = _VERDICTS[key] = bool(pc.fill_null(_failing(check, array.slice(0, 1)), False)[0].as_py())
    return verdict


def _failing_values(check: Check, array: pa.Array) -> np.ndarray:
    """Like `_failing`, evaluated once per distinct value when strings repeat a lot."""
    if check.keyword in ("pattern", "enum", "format") and pa.types.is_string(array.type) and len(array) > 64:
        if _constant(array):
            return np.full(len(array), _constant_failing(check, array))
        if check.keyword == "format" and check.argument == "uri":
            failing = _uri_failing(check, array)
            return failing if failing is not None else to_numpy(pc.fill_null(_failing(check, array), False))
        distinct = pc.unique(array)
        if len(distinct) * 4 < len(array):
            bad = distinct.filter(pc.fill_null(_failing(check, distinct), False))
            return to_numpy(pc.is_in(array, value_set=bad)) if len(bad) else np.zeros(len(array), bool)
    return to_numpy(pc.fill_null(_failing(check, array), False))


def _holds_for_all(check: Check, array: pa.Array) -> bool:
    """A proof from the whole column that no value breaks the check (one call, not a mask):
    no nulls for `not_null`, the column's minimum or maximum for the bounds."""
    if check.keyword == "not_null":
        return array.null_count == 0
    if check.keyword in ("minimum", "maximum") and (
        pa.types.is_integer(array.type) or pa.types.is_floating(array.type)
    ):
        if array.null_count == len(array):
            return True
        bounds = pc.min_max(array)
        if check.keyword == "minimum":
            return bounds["min"].as_py() >= check.argument
        return bounds["max"].as_py() <= check.argument
    return False


def valid_rows(table: pa.Table) -> np.ndarray:
    """Boolean mask of the rows that pass every schema check."""
    if table.schema != arrow_schema():
        raise SchemaError("batch validation needs a table of exactly arrow_schema()")
    bad = np.zeros(table.num_rows, bool)
    resolved: dict[str, _Values] = {}
    for check in batch_checks():
        values = _resolve(table, check.path, resolved)
        if not len(values.array) or _implied(check, values.array.type) or _holds_for_all(check, values.array):
            continue
        failing = _failing_values(check, values.array)
        if failing.any():
            hits = np.flatnonzero(failing)
            bad[hits if values.rows is None else values.rows[hits]] = True
    return ~bad
