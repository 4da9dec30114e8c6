"""Hash the input files named on the command line while the rest of the program loads.

`tgexport convert BIG.json` spends about 0.35 s importing pyarrow, numpy and the converters
before it reads a byte, and then hashes every input (sha256 on one core: 0.7 s per 800 MB)
before converting. The console script (`exporter.launch`) calls `start(sys.argv)` first: a
thread hashes the big regular files named after `convert` (hashlib releases the GIL while it
hashes), and `sources.InputUnit.sha256` takes a digest from here when the file is the same one
(same inode, size and modification time, before and after hashing). Anything else (folders,
archive members, object storage, small files, a file that changed) is hashed as usual.

Only the standard library is imported here: this runs before everything else.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading

MIN_BYTES = 32 << 20  # smaller files hash in a few milliseconds: not worth a guess
CHUNK = 32 << 20

_Key = tuple[str, int, int, int, int]
_lock = threading.Lock()
_ready: dict[_Key, threading.Event] = {}
_digests: dict[_Key, str] = {}


def _key(path: str, info: os.stat_result) -> _Key:
    return (os.path.realpath(path), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def start(argv: list[str]) -> None:
    """Begin hashing the big files among the arguments of `tgexport convert ...` (in argv order)."""
    if len(argv) < 3 or argv[1] != "convert":
        return
    files: list[tuple[str, _Key, threading.Event]] = []
    for arg in argv[2:]:
        if arg.startswith("-"):
            continue
        try:
            info = os.stat(arg)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(info.st_mode) and info.st_size >= MIN_BYTES and _looks_like_text(arg):
            key = _key(arg, info)
            with _lock:
                if key in _ready:
                    continue
                event = _ready[key] = threading.Event()
            files.append((arg, key, event))
    if files:
        threading.Thread(target=_hash_all, args=(files,), name="tgexport-prehash", daemon=True).start()


_CONTROL = frozenset(range(32)) - {9, 10, 13}


def _looks_like_text(path: str) -> bool:
    """JSON, JSONL or HTML (`{`, `[` or `<` first, no control bytes), not an archive or a
    compressed stream: those are converted member by member (hashed as members), so hashing the
    whole file early would be wasted work."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(512)
    except OSError:
        return False
    body = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    return body[:1] in (b"{", b"[", b"<") and not _CONTROL.intersection(head)


def _hash_all(files: list[tuple[str, _Key, threading.Event]]) -> None:
    for path, key, event in files:
        try:
            digest = _sha256(path)
            if _key(path, os.stat(path)) == key:  # unchanged while it was hashed
                _digests[key] = digest
        except OSError:
            pass  # the usual hashing reports the error
        finally:
            event.set()


def _sha256(path: str) -> str:
    """Big reads: the thread needs the GIL around each read and each update, and while the main
    thread imports it waits up to a switch interval (5 ms) for it every time."""
    hasher = hashlib.sha256()
    buffer = bytearray(CHUNK)
    with open(path, "rb", buffering=0) as stream, memoryview(buffer) as view:
        while got := stream.readinto(view):
            hasher.update(view[:got])
    return hasher.hexdigest()


def digest(path: str) -> str | None:
    """The file's sha256 if it was hashed at start-up and has not changed (waits for it)."""
    try:
        key = _key(path, os.stat(path))
    except (OSError, ValueError):
        return None
    with _lock:
        event = _ready.get(key)
    if event is None:
        return None
    event.wait()
    return _digests.get(key)


def forget() -> None:
    """Drop every digest (tests)."""
    with _lock:
        _ready.clear()
        _digests.clear()
