"""Parsed tdesktop messages (Arrow) -> post records (Arrow, `schema.arrow_schema()`).

Column for column the same decisions as `tdesktop_json.message_item` for the messages that
`eligible` lets through; every other message is left to the per-record path.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import normalize as norm
from ..arrowbuild import to_numpy
from ..converters.tdesktop_json import MEDIA_TYPES, PLACEHOLDER_PREFIXES, SERVICE_REPLY_KEYS, Chat, _basename
from ..schema import arrow_schema
from . import textcols

MAX_EPOCH = 253_402_300_799  # 9999-12-31T23:59:59Z
KINDS = ("message", "service")
REACTION_KINDS = ("emoji", "custom_emoji", "paid")


@dataclass(frozen=True)
class Stamp:
    """The provenance the pipeline stamps on every record of one input."""

    fmt: str
    file: str
    sha256: str
    run_id: str


@cache
def _null_str() -> pa.Scalar:
    return pa.scalar(None, pa.string())  # not at import: pa.scalar imports pandas


@cache
def _types() -> dict[str, pa.DataType]:
    return {f.name: f.type for f in arrow_schema()}


def _valid(array: pa.Array) -> np.ndarray:
    return to_numpy(array.is_valid())


def _epoch_ok(array: pa.Array, required: bool) -> np.ndarray:
    """Unix seconds as a plain decimal string that `normalize.utc_from_epoch` turns into a date."""
    if array.null_count == len(array):
        return np.full(len(array), not required)
    short = pc.less_equal(pc.binary_length(array), 12)
    digits = pc.fill_null(pc.and_(pc.ascii_is_decimal(array), short), False)
    seconds = pc.cast(pc.if_else(digits, array, pa.scalar("0")), pa.int64())
    ok = pc.and_(digits, pc.less_equal(seconds, MAX_EPOCH))
    return to_numpy(pc.if_else(array.is_null(), not required, ok))


def eligible(msgs: pa.Table, clean: np.ndarray) -> np.ndarray:
    """Messages the columnar path reproduces exactly (see module docstring of `fastpath`)."""
    ok = clean & _valid(msgs["id"].chunk(0))
    kind = msgs["type"].chunk(0)
    ok &= to_numpy(pc.fill_null(pc.is_in(kind, pa.array(KINDS)), True))
    ok &= _epoch_ok(msgs["date_unixtime"].chunk(0), required=True)
    ok &= _epoch_ok(msgs["edited_unixtime"].chunk(0), required=False)
    parts_list = msgs["text_entities"].chunk(0)
    ok &= _valid(parts_list)
    parts = parts_list.values
    bad = pc.or_(pc.or_(parts.is_null(), parts.field("type").is_null()), parts.field("text").is_null())
    if pc.any(bad).as_py():
        parents = to_numpy(pc.list_parent_indices(parts_list))
        ok[parents[to_numpy(bad)]] = False
    return ok


def _empty(type_: pa.DataType, n: int, nullable: bool) -> pa.Array:
    """`n` "absent" values; non-nullable children (of absent structs) get placeholders instead."""
    if nullable and not pa.types.is_struct(type_):
        return pa.nulls(n, type_)
    if pa.types.is_struct(type_):
        children = [_empty(f.type, n, f.nullable) for f in type_]
        mask = pa.array(np.ones(n, bool)) if nullable else None
        return pa.StructArray.from_arrays(children, fields=list(type_), mask=mask)
    if pa.types.is_list(type_):
        return pa.ListArray.from_arrays(
            pa.array(np.zeros(n + 1, np.int32)), _empty(type_.value_type, 0, False), type=type_
        )
    return pa.repeat(
        pa.scalar(False if pa.types.is_boolean(type_) else "" if pa.types.is_string(type_) else 0, type_), n
    )


def _const(value: object, type_: pa.DataType, n: int) -> pa.Array:
    return pa.nulls(n, type_) if value is None else pa.repeat(pa.scalar(value, type_), n)


def _timestamps(seconds_text: pa.Array) -> pa.Array:
    micros = pc.multiply(pc.cast(seconds_text, pa.int64()), 1_000_000)
    return pc.cast(micros, pa.timestamp("us", tz="UTC"))


def build(msgs: pa.Table, chat: Chat, locators: pa.Array, stamp: Stamp) -> pa.Table:
    """Records for eligible messages (a table of `arrow_schema()`)."""
    n = msgs.num_rows
    m = {name: msgs[name].chunk(0) for name in msgs.column_names}
    types = _types()
    cols: dict[str, pa.Array] = {}
    kind = pc.fill_null(m["type"], "message")
    service = pc.equal(kind, "service")
    cols.update(_ids(m["id"], chat, n))
    cols["date"] = _timestamps(m["date_unixtime"])
    cols["edit_date"] = _timestamps(m["edited_unixtime"])
    cols["is_edited"] = pc.or_(cols["edit_date"].is_valid(), m["edited"].is_valid())
    cols["kind"] = kind
    action = m["action"]
    has_action = pc.fill_null(pc.greater(pc.utf8_length(action), 0), False)
    cols["service_action"] = pc.if_else(pc.and_(service, has_action), action, _null_str())
    cols["sender_id"] = pc.if_else(service, m["actor_id"], m["from_id"])
    cols["sender_name"] = pc.if_else(service, m["actor"], m["from"])
    cols["author_signature"] = m["author"]
    text, entities, ents = textcols.text_and_entities(m["text_entities"], types["entities"])
    cols["text"], cols["entities"] = text, entities
    lists = textcols.vectorized_lists if textcols.semantics_hold() else textcols.derived_lists
    cols.update(lists(text, entities, ents, types))
    cols["reply_to_post_id"] = _reply_to(m, service)
    cols["forward_from_name"] = m["forwarded_from"]
    cols["counts_rounded"] = _const(False, pa.bool_(), n)
    cols["reactions"], cols["reactions_total"] = _reactions(m["reactions"], types["reactions"])
    cols["media_type"], cols["media"], cols["poll"] = _media(m, types["media"], types["poll"])
    cols["content_omitted"] = _const(False, pa.bool_(), n)
    cols.update(_provenance(stamp, locators, types["sources"]))
    schema = arrow_schema()
    arrays = [cols[f.name] if f.name in cols else _empty(f.type, n, f.nullable) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _ids(post_id: pa.Array, chat: Chat, n: int) -> dict[str, pa.Array]:
    chat_id = chat.chat_id(False)  # every eligible message has `date_unixtime`: a v2.7.2+ export
    chat_type = chat.chat_type
    cols = {
        "post_id": post_id,
        "chat_id": _const(chat_id, pa.int64(), n),
        "chat_title": _const(chat.name if isinstance(chat.name, str) else None, pa.string(), n),
        "chat_type": _const(chat_type, pa.string(), n),
    }
    if chat_id is not None and norm.post_url(None, chat_id, chat_type, 1) is not None:
        link = pc.binary_join_element_wise(f"https://t.me/c/{chat_id}/", pc.cast(post_id, pa.string()), "")
        cols["url"] = pc.if_else(pc.greater(post_id, 0), link, _null_str())
    return cols


def _reply_to(m: dict[str, pa.Array], service: pa.Array) -> pa.Array:
    """`tdesktop_json._reply_to`: pinned/target message of service actions, no cross-chat ids."""
    by_message_id = pa.array([a for a, key in SERVICE_REPLY_KEYS.items() if key == "message_id"])
    other = pa.array([a for a, key in SERVICE_REPLY_KEYS.items() if key != "message_id"])
    action = m["action"]
    none = pa.scalar(None, pa.int64())
    target = pc.if_else(pc.and_(service, pc.is_in(action, other)), none, m["reply_to_message_id"])
    target = pc.if_else(pc.and_(service, pc.is_in(action, by_message_id)), m["message_id"], target)
    return pc.if_else(m["reply_to_peer_id"].is_valid(), none, target)


def _reactions(raw: pa.ListArray, list_type: pa.DataType) -> tuple[pa.Array, pa.Array]:
    n = len(raw)
    flat = raw.values
    parents = to_numpy(pc.list_parent_indices(raw)) if len(flat) else np.zeros(0, np.int64)
    kind = flat.field("type")
    keep = pc.and_(flat.is_valid(), pc.fill_null(pc.is_in(kind, pa.array(REACTION_KINDS)), False))
    kind, count = kind.filter(keep), flat.field("count").filter(keep)
    emoji = pc.if_else(
        pc.equal(kind, "emoji"),
        textcols.map_distinct(flat.field("emoji").filter(keep), norm.normalize_emoji, pa.string()),
        _null_str(),
    )
    emoji_id = pc.if_else(
        pc.equal(kind, "custom_emoji"),
        textcols.map_distinct(flat.field("document_id").filter(keep), norm.numeric_id, pa.string()),
        _null_str(),
    )
    struct = pa.StructArray.from_arrays([kind, emoji, emoji_id, count], fields=list(list_type.value_type))
    rows = parents[to_numpy(keep)]
    reactions = textcols.list_column(n, rows, struct, list_type)
    totals = np.zeros(n, np.int64)
    np.add.at(totals, rows, to_numpy(pc.fill_null(count, 0)).astype(np.int64))
    unknown = ~_valid(raw)
    unknown[rows[to_numpy(count.is_null())]] = True
    return reactions, pa.array(totals, mask=unknown)


def _placeholder(path: pa.Array) -> pa.Array:
    hit = pc.starts_with(path, PLACEHOLDER_PREFIXES[0])
    for prefix in PLACEHOLDER_PREFIXES[1:]:
        hit = pc.or_(hit, pc.starts_with(path, prefix))
    return hit


def _media(m: dict[str, pa.Array], struct_type: pa.DataType, poll_type: pa.DataType) -> tuple[pa.Array, ...]:
    """`tdesktop_json._fill_media` for photos, files and polls (other payloads are per-record)."""
    photo, file, raw_type = m["photo"], m["file"], m["media_type"]
    has_photo = photo.is_valid()
    has_file = pc.and_(pc.invert(has_photo), pc.or_(file.is_valid(), raw_type.is_valid()))
    has_poll = pc.and_(pc.invert(pc.or_(has_photo, has_file)), m["poll"].is_valid())
    mapped = textcols.map_distinct(raw_type, lambda t: MEDIA_TYPES.get(t, "other"), pa.string())
    file_kind = pc.fill_null(mapped, "document")
    other = pc.if_else(has_file, file_kind, pc.if_else(has_poll, "poll", _null_str()))
    media_type = pc.if_else(has_photo, "photo", other)
    file_name = m["file_name"]
    guess = pc.and_(has_file, pc.and_(file_name.is_null(), file.is_valid()))
    if pc.any(guess).as_py():
        names = textcols.map_distinct(file.filter(guess), _basename, pa.string())
        file_name = pc.replace_with_mask(file_name, guess, names)
    path = pc.if_else(has_photo, photo, file)
    children = {
        "file_name": pc.if_else(has_photo, _null_str(), file_name),
        "mime_type": m["mime_type"],
        "file_size": pc.if_else(has_photo, m["photo_file_size"], m["file_size"]),
        "width": m["width"],
        "height": m["height"],
        "duration_s": m["duration_seconds"],
        "sticker_emoji": m["sticker_emoji"],
        "available": pc.invert(_placeholder(path)),
    }
    fields = list(struct_type)
    present = pc.or_(has_photo, has_file)
    media = pa.StructArray.from_arrays([children[f.name] for f in fields], fields=fields, mask=pc.invert(present))
    return media_type, media, _poll(m["poll"], has_poll, poll_type)


def _poll(raw: pa.StructArray, present: pa.Array, poll_type: pa.DataType) -> pa.Array:
    """`tdesktop_json._poll`: question and answer texts ("" when missing), answers that are objects."""
    n = len(raw)
    answers = raw.field("answers")
    flat = answers.values
    parents = to_numpy(pc.list_parent_indices(answers)) if len(flat) else np.zeros(0, np.int64)
    keep = to_numpy(pc.and_(flat.is_valid(), pa.array(to_numpy(present)[parents] if len(parents) else [], pa.bool_())))
    answer_type = poll_type.field("answers").type
    fields = list(answer_type.value_type)
    kept = flat.filter(pa.array(keep))
    answer = pa.StructArray.from_arrays([pc.fill_null(kept.field("text"), ""), kept.field("voters")], fields=fields)
    children = {
        "question": pc.fill_null(raw.field("question"), ""),
        "answers": textcols.list_column(n, parents[keep], answer, answer_type),
        "total_voters": raw.field("total_voters"),
        "closed": raw.field("closed"),
        "quiz": pa.nulls(n, pa.bool_()),
    }
    fields = list(poll_type)
    return pa.StructArray.from_arrays([children[f.name] for f in fields], fields=fields, mask=pc.invert(present))


def _provenance(stamp: Stamp, locators: pa.Array, sources_type: pa.DataType) -> dict[str, pa.Array]:
    n = len(locators)
    fmt, file, sha = (_const(v, pa.string(), n) for v in (stamp.fmt, stamp.file, stamp.sha256))
    struct = pa.StructArray.from_arrays([fmt, file, sha, locators], fields=list(sources_type.value_type))
    return {
        "source_format": fmt,
        "source_file": file,
        "source_sha256": sha,
        "source_locator": locators,
        "run_id": _const(stamp.run_id, pa.string(), n),
        "sources": pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), struct, type=sources_type),
    }
