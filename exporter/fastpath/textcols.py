"""Text, entities, hashtags, mentions and URLs of a batch, as Arrow columns.

Mirrors `tdesktop_json._fill_text` + `normalize.extract_*` exactly: the text is the concatenation
of the `text_entities` parts, entity offsets count code points, entity types go through
`normalize.entity_type`. Per-value Python helpers (`entity_type`, `absolute_url`,
`numeric_id`) run once per distinct value; the regular expressions of `normalize` run only on
the texts that can match them (a cheap Arrow prefilter finds those), so every list is built
by the very same code as on the per-record path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import normalize as norm

# A superset of what normalize.BARE_URL_RE can match (its letters have no special case folds).
URL_PREFILTER = r"://|(?i:www\.)|(?i:t\.me/)"


@dataclass
class Entities:
    """The kept entities of a batch, flat, with the row each belongs to."""

    rows: np.ndarray
    kind: pa.Array  # schema entity type
    text: pa.Array  # the part's text (= text[offset:offset+length])
    url: pa.Array
    counts: np.ndarray  # entities per row

    def where(self, kind: str) -> np.ndarray:
        return pc.equal(self.kind, kind).to_numpy(zero_copy_only=False)


def map_distinct(values: pa.Array, fn: Callable[[Any], Any], out_type: pa.DataType) -> pa.Array:
    """`fn` applied to every value, computed once per distinct value (nulls stay null)."""
    if len(values) == 0:
        return pa.array([], out_type)
    distinct = pc.unique(values)
    mapped = pa.array([None if v is None else fn(v) for v in distinct.to_pylist()], out_type)
    return mapped.take(pc.index_in(values, value_set=distinct))


def list_column(n: int, rows: np.ndarray, values: pa.Array, list_type: pa.DataType) -> pa.Array:
    """A list array of `n` rows from values tagged with their row (rows ascending, stable)."""
    counts = np.bincount(rows, minlength=n)[:n] if len(rows) else np.zeros(n, np.int64)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=list_type)


def merge_lists(
    n: int, fast: tuple[np.ndarray, pa.Array], slow: dict[int, list[str]], list_type: pa.DataType
) -> pa.Array:
    """One list column from vectorized (rows, values) and per-row Python lists (disjoint rows)."""
    fast_rows, fast_values = fast
    slow_rows = np.fromiter((r for r, vals in slow.items() for _ in vals), np.int64)
    slow_values = pa.array([v for vals in slow.values() for v in vals], pa.string())
    rows = np.concatenate([fast_rows.astype(np.int64), slow_rows])
    values = pa.concat_arrays([fast_values.cast(pa.string()), slow_values])
    order = np.argsort(rows, kind="stable")
    return list_column(n, rows[order], values.take(pa.array(order)), list_type)


def text_and_entities(parts_list: pa.ListArray, entity_type: pa.DataType) -> tuple[pa.Array, pa.Array, Entities]:
    """`text` and `entities` columns from the `text_entities` lists (no null lists or parts)."""
    n = len(parts_list)
    offsets = parts_list.offsets.to_numpy().astype(np.int64)
    parts = parts_list.values
    part_kind, part_text = parts.field("type"), parts.field("text")
    text = pc.binary_join(pa.ListArray.from_arrays(parts_list.offsets, part_text), "")
    lengths = pc.utf8_length(part_text).to_numpy(zero_copy_only=False).astype(np.int64)
    row_of_part = np.repeat(np.arange(n), np.diff(offsets))
    before = np.cumsum(lengths) - lengths
    row_start = np.append(before, 0)[offsets[:-1]]
    part_offset = before - row_start[row_of_part] if len(before) else before
    keep = np.flatnonzero(pc.not_equal(part_kind, "plain").to_numpy(zero_copy_only=False) & (lengths > 0))
    take = pa.array(keep)
    kind = map_distinct(part_kind.take(take), norm.entity_type, pa.string())
    etext = part_text.take(take)
    is_link = pc.equal(kind, "text_link")
    is_url = pc.equal(kind, "url")
    url = pc.if_else(is_link, parts.field("href").take(take), pa.scalar(None, pa.string()))
    if pc.any(is_url).as_py():
        url = pc.replace_with_mask(url, is_url, map_distinct(etext.filter(is_url), norm.absolute_url, pa.string()))
    user_id = pc.if_else(pc.equal(kind, "text_mention"), parts.field("user_id").take(take), None)
    emoji = pc.if_else(
        pc.equal(kind, "custom_emoji"),
        map_distinct(parts.field("document_id").take(take), norm.numeric_id, pa.string()),
        pa.scalar(None, pa.string()),
    )
    fields = list(entity_type.value_type)
    struct = pa.StructArray.from_arrays(
        [kind, pa.array(part_offset[keep]), pa.array(lengths[keep]), url, user_id, emoji], fields=fields
    )
    rows = row_of_part[keep]
    entities = list_column(n, rows, struct, entity_type)
    counts = np.bincount(rows, minlength=n)[:n] if len(rows) else np.zeros(n, np.int64)
    return text, entities, Entities(rows, kind, etext, url, counts)


def _contains(text: pa.Array, needle: str) -> np.ndarray:
    return pc.match_substring(text, needle).to_numpy(zero_copy_only=False)


def hashtags(text: pa.Array, ents: Entities, list_type: pa.DataType) -> pa.Array:
    """`extract_hashtags`: hashtag entities (without `#`) when a row has any, else the regex."""
    n = len(text)
    is_tag = ents.where("hashtag")
    tag_rows = ents.rows[is_tag]
    tags = pc.utf8_ltrim(ents.text.filter(pa.array(is_tag)), characters="#")
    nonempty = pc.greater(pc.utf8_length(tags), 0).to_numpy(zero_copy_only=False)
    has_tag = np.zeros(n, bool)
    has_tag[tag_rows] = True
    regex_rows = np.flatnonzero(~has_tag & _contains(text, "#"))
    slow = {int(r): norm.HASHTAG_RE.findall(t) for r, t in zip(regex_rows, text.take(pa.array(regex_rows)).to_pylist())}
    return merge_lists(n, (tag_rows[nonempty], tags.filter(pa.array(nonempty))), slow, list_type)


def mentions(text: pa.Array, ents: Entities, list_type: pa.DataType) -> pa.Array:
    """`extract_mentions`: mention entities when a row has entities, else the regex."""
    n = len(text)
    is_mention = ents.where("mention")
    found: dict[int, list[str]] = {}
    for row, name in zip(ents.rows[is_mention], ents.text.filter(pa.array(is_mention)).to_pylist()):
        found.setdefault(int(row), []).append(name.lstrip("@"))
    regex_rows = np.flatnonzero((ents.counts == 0) & _contains(text, "@"))
    for row, value in zip(regex_rows, text.take(pa.array(regex_rows)).to_pylist()):
        found[int(row)] = norm.MENTION_RE.findall(value)
    slow = {row: norm.unique(name.lower() for name in names if name) for row, names in found.items()}
    return merge_lists(n, (np.zeros(0, np.int64), pa.array([], pa.string())), slow, list_type)


def urls(text: pa.Array, ents: Entities, list_type: pa.DataType) -> pa.Array:
    """`extract_urls`: link entities' URLs, then bare links in the text, without duplicates."""
    n = len(text)
    linkish = (ents.where("url") | ents.where("text_link")) & pc.fill_null(
        pc.greater(pc.utf8_length(ents.url), 0), False
    ).to_numpy(zero_copy_only=False)
    by_row: dict[int, list[dict[str, Any]]] = {}
    kinds = ents.kind.filter(pa.array(linkish)).to_pylist()
    for row, kind, url in zip(ents.rows[linkish], kinds, ents.url.filter(pa.array(linkish)).to_pylist()):
        by_row.setdefault(int(row), []).append({"type": kind, "url": url})
    candidates = pc.match_substring_regex(text, URL_PREFILTER).to_numpy(zero_copy_only=False)
    candidates[list(by_row)] = True
    rows = np.flatnonzero(candidates)
    slow = {
        int(r): norm.extract_urls(value, by_row.get(int(r)))
        for r, value in zip(rows, text.take(pa.array(rows)).to_pylist())
    }
    return merge_lists(n, (np.zeros(0, np.int64), pa.array([], pa.string())), slow, list_type)
