"""jsonlines.iter_lines: the lines of JSON-lines files, read in chunks."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import jsonlines


def _lines(data: bytes) -> list[tuple[int, bytes]]:
    """The plain definition: split at new lines, blank ones dropped, a BOM taken off line 1."""
    out = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if line.strip(b" \t\r\n"):
            out.append((number, line[3:] if number == 1 and line.startswith(b"\xef\xbb\xbf") else line))
    return out


@settings(max_examples=500, deadline=None)
@given(
    data=st.lists(
        st.sampled_from([b"{}", b"\n", b" ", b"\r", b"\t", b"ab", b"\xef\xbb\xbf", b"x" * 9]), max_size=30
    ).map(b"".join),
    chunk=st.integers(1, 16),
    first=st.integers(1, 5),
)
def test_iter_lines_matches_the_plain_definition(data, chunk, first):
    """Whatever the chunks the stream comes in; numbered from `first_line` (ranges, linesplit)."""
    got = list(jsonlines.iter_lines(io.BytesIO(data), chunk_size=chunk, first_line=first))
    # A stream that starts at a later line of the file has no BOM to take off.
    shifted = [(number + first - 2, line) for number, line in _lines(b"\n" + data)]
    want = _lines(data) if first == 1 else shifted
    assert got == want


def test_a_line_past_max_line_is_cut_where_a_chunk_ends():
    saved = jsonlines.MAX_LINE
    jsonlines.MAX_LINE = 8
    try:
        got = list(jsonlines.iter_lines(io.BytesIO(b"{}\n" + b"y" * 20 + b"\n{1}\n"), chunk_size=4))
    finally:
        jsonlines.MAX_LINE = saved
    assert got == [(1, b"{}"), (2, b"y" * 8), (3, b"{1}")]
