"""jsonlines.iter_lines: the lines of JSON-lines files, read in chunks."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter import jsonlines


def _iter_lines_reference(stream, chunk_size, max_line):
    """Lines by the plain definition: split at new lines, blank ones dropped, BOM off line 1,
    a line past `max_line` bytes cut there and the rest of it dropped."""
    number, line, overflow = 0, bytearray(), False
    while chunk := stream.read(chunk_size):
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            number += 1
            if not overflow:
                line += chunk[start:end]
                if line.strip(b" \t\r\n"):
                    yield number, bytes(line[3:] if number == 1 and line.startswith(b"\xef\xbb\xbf") else line)
            line.clear()
            overflow, start = False, end + 1
        if not overflow:
            line += chunk[start:]
            if len(line) > max_line:
                yield number + 1, bytes(line[:max_line])
                line.clear()
                overflow = True
    if line.strip(b" \t\r\n") and not overflow:
        yield number + 1, bytes(line[3:] if number == 0 and line.startswith(b"\xef\xbb\xbf") else line)


@settings(max_examples=500, deadline=None)
@given(
    data=st.lists(
        st.sampled_from([b"{}", b"\n", b" ", b"\r", b"\t", b"ab", b"\xef\xbb\xbf", b"x" * 9]), max_size=30
    ).map(b"".join),
    chunk=st.integers(1, 16),
    max_line=st.integers(4, 40),
)
def test_iter_lines_matches_the_plain_definition(data, chunk, max_line):
    saved = jsonlines.MAX_LINE
    jsonlines.MAX_LINE = max_line
    try:
        got = list(jsonlines.iter_lines(io.BytesIO(data), chunk_size=chunk))
    finally:
        jsonlines.MAX_LINE = saved
    assert got == list(_iter_lines_reference(io.BytesIO(data), chunk, max_line))
