"""Record validation against the post JSON Schema.

jsonschema-rs (formats on) decides on the hot path; the reference `jsonschema` package
explains the records that fail, so reasons are readable and identical whichever path found
the failure. Every violation of a record is reported, not just the first.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import jsonschema_rs

if TYPE_CHECKING:  # imported when a record fails (50 ms at start-up otherwise)
    import jsonschema

from .schema import load_schema


@cache
def _fast() -> Any:
    return jsonschema_rs.Draft202012Validator(load_schema(), validate_formats=True)


@cache
def _reference() -> jsonschema.Draft202012Validator:
    import jsonschema

    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def check_schema() -> None:
    """Raise if the schema itself is not a valid draft 2020-12 schema."""
    _reference()


def is_valid(record: dict[str, Any]) -> bool:
    return _fast().is_valid(record)


def _path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return "/".join(parts) if parts else "(record)"


def violations(record: dict[str, Any]) -> list[str]:
    """Every violation of `record`, as `field/path: message`, sorted for stable output."""
    errors = _reference().iter_errors(record)
    reasons = sorted({f"{_path(e)}: {_short(e)}" for e in errors})
    if not reasons and not is_valid(record):
        reasons = sorted(
            {f"{'/'.join(map(str, e.instance_path)) or '(record)'}: {e.message}" for e in _fast().iter_errors(record)}
        )
    return reasons


def _short(error: jsonschema.ValidationError) -> str:
    message = error.message
    return message if len(message) <= 300 else message[:297] + "..."


def reason_key(reason: str) -> str:
    """A coarse reason for counting: the field and the kind of violation."""
    field, _, message = reason.partition(": ")
    field = field.split("/")[0]
    if " is not of type " in message:
        kind = "wrong type"
    elif message.startswith("None is not"):
        kind = "missing"
    elif "is not a " in message or "does not match" in message:
        kind = "bad format"
    elif "is not one of" in message:
        kind = "unknown value"
    else:
        kind = "invalid"
    return f"{field}: {kind}"
