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
from functools import cache, lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import normalize as norm
from ..arrowbuild import to_numpy

_SLASH, _HASH, _AT, _DOT = 47, 35, 64, 46
_w = 119  # `w`; only W (87 = 119 & ~32) folds to it, so normalize.BARE_URL_RE needs one of the two


@dataclass
class Entities:
    """The kept entities of a batch, flat, with the row each belongs to."""

    rows: np.ndarray
    kind: pa.Array  # schema entity type
    text: pa.Array  # the part's text (= text[offset:offset+length])
    url: pa.Array
    counts: np.ndarray  # entities per row

    def where(self, kind: str) -> np.ndarray:
        return to_numpy(pc.equal(self.kind, kind))


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
    lengths = to_numpy(pc.utf8_length(part_text)).astype(np.int64)
    row_of_part = np.repeat(np.arange(n), np.diff(offsets))
    before = np.cumsum(lengths) - lengths
    row_start = np.append(before, 0)[offsets[:-1]]
    part_offset = before - row_start[row_of_part] if len(before) else before
    keep = np.flatnonzero(to_numpy(pc.not_equal(part_kind, "plain")) & (lengths > 0))
    take = pa.array(keep)
    kind = map_distinct(part_kind.take(take), norm.entity_type, pa.string())
    etext = part_text.take(take)
    is_link = pc.equal(kind, "text_link")
    is_url = pc.equal(kind, "url")
    url = pc.if_else(is_link, parts.field("href").take(take), pa.scalar(None, pa.string()))
    if pc.any(is_url).as_py():
        url = pc.replace_with_mask(url, is_url, absolute_urls(etext.filter(is_url)))
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


def _text_bytes(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 bytes of all texts, offsets) of a string array, without copies."""
    _, offsets_buffer, data_buffer = text.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int32)[text.offset : text.offset + len(text) + 1]
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    return data, offsets


def _rows_at(positions: np.ndarray, offsets: np.ndarray, n: int) -> np.ndarray:
    mask = np.zeros(n, bool)
    if len(positions):
        mask[np.searchsorted(offsets, positions, side="right") - 1] = True
    return mask


def _contains_byte(text: pa.Array, byte: int) -> np.ndarray:
    """Rows whose text contains the ASCII character `byte` (a prefilter for the regexes)."""
    data, offsets = _text_bytes(text)
    return _rows_at(np.flatnonzero(data == byte), offsets, len(text))


def url_candidates(text: pa.Array) -> np.ndarray:
    """Rows where normalize.BARE_URL_RE may match: a `/` (`https://`, `t.me/`) or `www.` in any case."""
    data, offsets = _text_bytes(text)
    rows = _rows_at(np.flatnonzero(data == _SLASH), offsets, len(text))
    dots = np.flatnonzero(data == _DOT)
    dots = dots[dots >= 3]
    www = ((data[dots - 1] | 32) == _w) & ((data[dots - 2] | 32) == _w) & ((data[dots - 3] | 32) == _w)
    return rows | _rows_at(dots[www], offsets, len(text))


# Entity types that can feed `normalize.extract_*`, and the text bytes that can trigger its regexes.
LIST_TRIGGERS = {
    "hashtags": (("hashtag",), (_HASH,)),
    "mentions": (("mention",), (_AT,)),
    "urls": (("url", "text_link"), ()),  # plus `url_candidates`
}


def derived_lists(text: pa.Array, entities: pa.Array, ents: Entities, types: dict[str, pa.DataType]) -> dict:
    """`hashtags`, `mentions`, `urls`: `normalize.extract_*` itself, on the rows where it can find any.

    A row whose entities hold none of the relevant types and whose text holds none of the
    characters the regexes need gets `[]` without a call; every other row gets exactly what the
    per-record converter computes, from the same text and the same entity dicts.
    """
    n = len(text)
    functions = {"hashtags": norm.extract_hashtags, "mentions": norm.extract_mentions, "urls": norm.extract_urls}
    wanted = {}
    for name, (kinds, trigger_bytes) in LIST_TRIGGERS.items():
        rows = np.zeros(n, bool)
        for kind in kinds:
            rows[ents.rows[ents.where(kind)]] = True
        for byte in trigger_bytes:
            rows |= _contains_byte(text, byte)
        if name == "urls":
            rows |= url_candidates(text)
        wanted[name] = rows
    union = np.flatnonzero(wanted["hashtags"] | wanted["mentions"] | wanted["urls"])
    picked = pa.array(union)
    texts = text.take(picked).to_pylist()
    entity_lists = entities.take(picked).to_pylist()
    columns = {}
    for name, fn in functions.items():
        slow = {}
        for row, value, found in zip(union.tolist(), texts, entity_lists, strict=True):
            if wanted[name][row]:
                result = fn(value, found)
                if result:
                    slow[row] = result
        columns[name] = merge_lists(n, (np.zeros(0, np.int64), pa.array([], pa.string())), slow, types[name])
    return columns


# --- the same lists, vectorized (used while `normalize` keeps the semantics the probe checks) -------


def vectorized_lists(text: pa.Array, entities: pa.Array, ents: Entities, types: dict[str, pa.DataType]) -> dict:
    """`hashtags` and `mentions` from the entities alone, `urls` from them plus the bare-link regex.

    This is what `normalize.extract_*` compute when given an entity list (as the tdesktop
    converter always passes); `semantics_hold()` checks that on sample inputs first.
    """
    n = len(text)
    columns = {"hashtags": _entity_texts(ents, "hashtag", "#", None, n, types["hashtags"])}
    columns["mentions"] = _entity_texts(ents, "mention", "@", str.lower, n, types["mentions"])
    columns["urls"] = _urls(text, ents, n, types["urls"])
    return columns


def _entity_texts(ents: Entities, kind: str, strip: str, fold: Any, n: int, list_type: pa.DataType) -> pa.Array:
    mask = ents.where(kind)
    rows = ents.rows[mask]
    names = pc.utf8_ltrim(ents.text.filter(pa.array(mask)), characters=strip)
    keep = to_numpy(pc.greater(pc.utf8_length(names), 0))
    rows, names = rows[keep], names.filter(pa.array(keep))
    if fold is not None:
        names = map_distinct(names, fold, pa.string())
    counts = np.bincount(rows, minlength=n)[:n] if len(rows) else np.zeros(n, np.int64)
    if fold is None or not (counts > 1).any():
        return list_column(n, rows, names, list_type)
    repeated = counts[rows] > 1  # rows with several names: drop repeats, keep the first
    slow: dict[int, list[str]] = {}
    for row, name in zip(rows[repeated].tolist(), names.filter(pa.array(repeated)).to_pylist(), strict=True):
        slow.setdefault(row, []).append(name)
    slow = {row: norm.unique(found) for row, found in slow.items()}
    return merge_lists(n, (rows[~repeated], names.filter(pa.array(~repeated))), slow, list_type)


def _urls(text: pa.Array, ents: Entities, n: int, list_type: pa.DataType) -> pa.Array:
    has_url = to_numpy(pc.fill_null(pc.greater(pc.utf8_length(ents.url), 0), False))
    linkish = (ents.where("url") | ents.where("text_link")) & has_url
    rows, links = ents.rows[linkish], ents.url.filter(pa.array(linkish))
    per_row = np.bincount(rows, minlength=n)[:n] if len(rows) else np.zeros(n, np.int64)
    python = url_candidates(text) | (per_row > 1)
    single = ~python[rows]
    absolute = absolute_urls(links)
    fast = (rows[single], absolute.filter(pa.array(single)))
    found: dict[int, list[str]] = {}
    for row, url in zip(rows[~single].tolist(), absolute.filter(pa.array(~single)).to_pylist(), strict=True):
        found.setdefault(row, []).append(url)
    slow_rows = np.flatnonzero(python)
    for row, urls in _bare_urls(text, slow_rows).items():
        found.setdefault(row, []).extend(urls)
    slow = {row: norm.unique(urls) for row, urls in found.items() if urls}
    return merge_lists(n, fast, slow, list_type)


URL_TAIL = ".,;:!?)]}…"  # what normalize.extract_urls strips from a bare link


def _bare_urls(text: pa.Array, rows: np.ndarray) -> dict[int, list[str]]:
    """`normalize.BARE_URL_RE` over the texts of `rows`, in one regex pass over them joined by new
    lines (a new line ends a match and is a word boundary, as the end of a text is)."""
    texts = text.take(pa.array(rows)).to_pylist()
    starts = np.cumsum([0] + [len(t) + 1 for t in texts])
    matches = [(m.start(), m.group(0)) for m in norm.BARE_URL_RE.finditer("\n".join(texts))]
    owners = rows[np.searchsorted(starts, [start for start, _ in matches], side="right") - 1].tolist()
    out: dict[int, list[str]] = {}
    for row, (_, link) in zip(owners, matches, strict=True):
        out.setdefault(row, []).append(absolute_url(link.rstrip(URL_TAIL)))
    return out


@lru_cache(maxsize=1 << 16)
def absolute_url(link: str) -> str:
    """`normalize.absolute_url`, remembered across batches (channels repeat their links)."""
    return norm.absolute_url(link)


# Links that `normalize.absolute_url` returns as they are: a scheme (its own regular expression,
# ASCII only, so RE2 reads it the same), and nothing for `str.strip` to remove (the first
# character is a letter, the last one visible ASCII). Conservative: "a://" goes through Python.
ABSOLUTE = r"(?s)^[a-zA-Z][a-zA-Z0-9+.-]*://.*[!-~]$"


def absolute_urls(links: pa.Array) -> pa.Array:
    """`normalize.absolute_url` of every link (nulls stay null); Python only for the others."""
    other = pc.invert(pc.fill_null(pc.match_substring_regex(links, ABSOLUTE), True))
    if not pc.any(other).as_py():
        return links
    return pc.replace_with_mask(links, other, map_distinct(links.filter(other), absolute_url, pa.string()))


PROBES: list[tuple[str, list[tuple[str, str, str | None]]]] = [
    ("#tag and @User and https://a.b/c www.x.y", []),
    ("#one #one @Dup @dup @other", [("hashtag", "#one", None), ("mention", "@Dup", None), ("mention", "@dup", None)]),
    ("see example.org/x now", [("url", "example.org/x", None)]),
    ("read more", [("text_link", "read", "https://r.example/1"), ("text_link", "more", "https://r.example/1")]),
    ("go t.me/chan ok. https://x.y/z. (https://q.r/s)…", [("bold", "go", None)]),
    ("a\nhttps://x.y\nwww.z.w/", [("url", "x.y", None)]),
    ("# @ x", [("hashtag", "#", None), ("mention", "@", None)]),
    ("ASCII #Ünïcode @ŁUKASZ_x", [("hashtag", "#Ünïcode", None), ("mention", "@ŁUKASZ_x", None)]),
]


@cache
def semantics_hold() -> bool:
    """Do `normalize.extract_*` still compute what `vectorized_lists` assumes? (else: call them)"""
    types = dict.fromkeys(("hashtags", "mentions", "urls"), pa.list_(pa.string()))
    for text, parts in PROBES:
        entities = [norm.make_entity(kind, text.find(part), len(part), url) for kind, part, url in parts]
        ents = Entities(
            rows=np.zeros(len(entities), np.int64),
            kind=pa.array([e["type"] for e in entities], pa.string()),
            text=pa.array([text[e["offset"] : e["offset"] + e["length"]] for e in entities], pa.string()),
            url=pa.array([e["url"] for e in entities], pa.string()),
            counts=np.array([len(entities)]),
        )
        want = {
            "hashtags": norm.extract_hashtags(text, entities),
            "mentions": norm.extract_mentions(text, entities),
            "urls": norm.extract_urls(text, entities),
        }
        got = vectorized_lists(pa.array([text]), pa.array([entities]), ents, types)
        if {name: column.to_pylist()[0] for name, column in got.items()} != want:
            return False
    return True
