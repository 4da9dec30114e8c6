"""Archives read as streams: magic-byte detection, member listing, re-openable member chains.

A member is addressed by the outer file's path plus a chain of `Step`s (a gzip or zstd layer,
or member #i of a zip or tar); `open_chain` re-opens that chain from the outer file each time,
so a member opens the same way in any process (the address is plain picklable data). Nothing
is ever extracted: member names are only shown (sanitized), never used as paths, and links
inside archives are not followed. Every decompressing layer counts what it produces and stops
a decompression bomb while streaming (`Limits`, overridable through environment variables).

Costs: a zip on disk is random access; a tar (or anything under gzip/zstd) is read from its
start each time a member is opened, so the scan hashes tar members on the way; a zip inside
another archive is made seekable by re-opening its chain (two passes per open).
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from typing import Any, BinaryIO

import zstandard

from .archive_streams import Counter, Guard, Limits, Prefixed, Reopening, Top, ZstdFrames, damaged, read_full
from .errors import InputError

__all__ = ["Leaf", "Limits", "MemberOpener", "Skip", "Step", "container_kind", "open_chain", "walk"]

HEAD_BYTES = 1 << 16
MAX_LAYERS = 8  # containers and compression layers inside one file on disk
COMPRESSORS = ("gzip", "zstd")
ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
LINK_HINT = "links are not followed"


@dataclass(frozen=True)
class Step:
    """One step into a file: a `gzip`/`zstd` layer, or member number `index` of a `zip`/`tar`."""

    kind: str
    index: int = -1
    name: str = ""  # the member name as stored (checked on re-open, shown sanitized)


@dataclass
class Leaf:
    """Something to convert: a file, or an archive member that is not itself an archive."""

    display: str
    steps: tuple[Step, ...]
    head: bytes  # the first HEAD_BYTES of its (decompressed) bytes
    size: int  # bytes; for members under gzip/zstd the compressed size until hashed
    size_exact: bool
    sha256: str | None = None  # known when the scan had to read it all anyway
    note: str | None = None


@dataclass
class Skip:
    display: str
    reason: str


@dataclass(frozen=True)
class MemberOpener:
    """A picklable opener: re-opens the chain `steps` from the file at `path`."""

    path: str
    steps: tuple[Step, ...]
    limits: Limits
    root: str  # how the outer file is shown

    def __call__(self) -> BinaryIO:
        return open_chain(self.path, self.steps, self.limits, self.root)


def container_kind(head: bytes) -> str | None:
    """`zip`, `tar`, `gzip` or `zstd` when the bytes start like one, else None (by magic only)."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08PK\x03\x04")):
        return "zip"
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if len(head) >= 512 and (head[257:262] == b"ustar" or _tar_checksum_ok(head[:512])):
        return "tar"
    return None


def _tar_checksum_ok(block: bytes) -> bool:
    try:  # an old (v7) tar has no magic; its header checksum still has to match
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def clean_member_name(name: str) -> tuple[str, bool]:
    """A member name made safe to show, and whether it was unsafe (absolute, `..`, control chars)."""
    parts = name.replace("\\", "/").split("/")
    unsafe = name.startswith(("/", "\\"))
    if parts and re.fullmatch(r"[A-Za-z]:", parts[0]):
        parts, unsafe = parts[1:], True
    kept = []
    for part in parts:
        if part == "..":
            unsafe = True
        elif part not in ("", "."):
            kept.append(part)
    shown = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", "/".join(kept))
    return shown or "(unnamed)", unsafe or shown != "/".join(kept)


def member_display(parent: str, name: str) -> tuple[str, str | None]:
    shown, unsafe = clean_member_name(name)
    note = f"unsafe member name {name!r} shown as {shown!r} (members are never extracted)" if unsafe else None
    return f"{parent}!/{shown}", note


def chain_display(root: str, steps: tuple[Step, ...]) -> str:
    """`outer.tar.gz!/inner.zip!/result.json`: compression layers are not shown."""
    return root + "".join(f"!/{clean_member_name(s.name)[0]}" for s in steps if s.kind not in COMPRESSORS)


def _junk(name: str) -> bool:
    """Hidden files and macOS resource forks, ignored like hidden files in folders."""
    return name.rstrip("/").rsplit("/", 1)[-1].startswith(".") or name.startswith("__MACOSX/")


def zip_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member cannot be read as-is, or None."""
    if info.flag_bits & 0x1 or info.compress_type == 99:
        return "encrypted zip member (password-protected); decrypt the archive first, then pass the files"
    if stat.S_ISLNK(info.external_attr >> 16):
        return f"symbolic link inside a zip archive; {LINK_HINT}"
    if info.compress_type not in ZIP_METHODS:
        return f"zip compression method {info.compress_type} is not supported; re-create the archive with deflate"
    return None


def _decompress(kind: str, source: Any, label: str, limits: Limits) -> tuple[Guard, Counter]:
    frames = ZstdFrames() if kind == "zstd" else None
    counter = Counter(source, frames)
    if kind == "gzip":
        raw: Any = gzip.GzipFile(fileobj=counter, mode="rb")
    else:
        raw = zstandard.ZstdDecompressor().stream_reader(counter, read_across_frames=True, closefd=False)
    return Guard(raw, label, limits, f"{kind} data", counter.consumed, frames), counter


def _open_zip(source: Any, label: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise damaged(label, "zip archive", exc) from None


def _zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, limits: Limits) -> Guard:
    problem = zip_problem(info)
    if problem:
        raise InputError(f"{label}: {problem}", hint="decrypt or re-create the archive")
    limits.check(label, info.file_size, info.compress_size, declared=True)
    try:
        member = zf.open(info)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError, zlib.error) as exc:
        raise damaged(label, "zip member", exc) from None
    return Guard(member, label, limits, "zip member", lambda: info.compress_size)


def _open_tar(source: Any, label: str) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=source, mode="r|")
    except tarfile.TarError as exc:
        raise damaged(label, "tar archive", exc) from None


def _tar_member(tf: tarfile.TarFile, info: tarfile.TarInfo, label: str, limits: Limits) -> Guard:
    return Guard(tf.extractfile(info), label, limits, "tar member", lambda: info.size)


def _tar_members(tf: tarfile.TarFile, label: str) -> Iterator[tuple[int, tarfile.TarInfo]]:
    """(index, member) in stream order; tarfile's list of seen members is emptied as we go."""
    index = 0
    while True:
        try:
            info = tf.next()
        except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise damaged(label, "tar archive", exc) from None
        if info is None:
            return
        del tf.members[:]  # links are never resolved, so nothing needs the earlier members
        yield index, info
        index += 1


def _changed(label: str) -> InputError:
    return InputError(f"{label} changed while tgexport was reading it", hint="run the command again on a stable copy")


def _last_nested_zip(steps: tuple[Step, ...]) -> int:
    """Index of the last zip step that is not the file itself (it needs a re-opening reader)."""
    return max((i for i, s in enumerate(steps) if s.kind == "zip" and i > 0), default=0)


def open_chain(path: str, steps: tuple[Step, ...], limits: Limits, root: str) -> BinaryIO:
    """Open the bytes that `steps` lead to inside the file at `path`, as a fresh stream."""
    stack = ExitStack()
    try:
        start = _last_nested_zip(steps)
        stream: Any
        size: int | None
        if start:
            stream = stack.enter_context(Reopening(MemberOpener(path, steps[:start], limits, root)))
            size = None
        else:
            stream = stack.enter_context(open(path, "rb"))  # noqa: SIM115 (closed by the stack)
            size = os.fstat(stream.fileno()).st_size
        progress = None
        for depth in range(start, len(steps)):
            step, label = steps[depth], chain_display(root, steps[: depth + 1])
            parent = chain_display(root, steps[:depth])
            if step.kind in COMPRESSORS:
                stream, counter = _decompress(step.kind, stream, label, limits)
                stack.callback(stream.close)
                progress, size = ((counter, size) if size else None), None
                continue
            progress = None
            if step.kind == "zip":
                zf = stack.enter_context(_open_zip(stream, parent))
                infos = zf.infolist()
                if step.index >= len(infos) or infos[step.index].filename != step.name:
                    raise _changed(parent)
                info = infos[step.index]
                stream, size = stack.enter_context(_zip_member(zf, info, label, limits)), info.file_size
            else:
                tf = stack.enter_context(_open_tar(stream, parent))
                found = next((i for n, i in _tar_members(tf, parent) if n == step.index), None)
                if found is None or found.name != step.name or not found.isreg():
                    raise _changed(parent)
                stream, size = stack.enter_context(_tar_member(tf, found, label, limits)), found.size
        return Top(stream, stack, chain_display(root, steps), progress)
    except BaseException:
        stack.close()
        raise


def walk(path: str, display: str, limits: Limits) -> Iterator[Leaf | Skip]:
    """The file at `path` as one `Leaf`, or, when it is an archive, its members (recursively)."""
    try:
        with open(path, "rb") as file:
            head = read_full(file, HEAD_BYTES)
            kind = container_kind(head)
            size = os.fstat(file.fileno()).st_size
            if kind is None:
                yield _Walker.leaf(file, head, (), display, size, True, False, None)
                return
            walker = _Walker(path, display, limits)
            if kind == "zip":
                yield from walker.zip(file, (), display, hash_now=False)
            elif kind == "tar":
                yield from walker.tar(Prefixed(head, file), (), display)
            else:
                yield from walker.compressed(Prefixed(head, file), kind, (), display, size, False, None)
    except OSError as exc:
        raise InputError(f"cannot read {display}: {exc.strerror or exc}", hint="check file permissions") from None


class _Walker:
    """One scan of one file on disk; counts members against `limits.max_members`."""

    def __init__(self, path: str, root: str, limits: Limits) -> None:
        self.path, self.root, self.limits, self.members = path, root, limits, 0

    def _count(self) -> None:
        self.members += 1
        if self.limits.max_members and self.members > self.limits.max_members:
            raise InputError(
                f"{self.root} holds more than {self.limits.max_members} archive members; stopped",
                hint="if the archive is genuine, raise the limit: TGEXPORT_MAX_MEMBERS=<number> (0 = no limit)",
            )

    def entity(self, stream: Any, steps: tuple[Step, ...], display: str, size: int, exact: bool, hash_now: bool,
               note: str | None) -> Iterator[Leaf | Skip]:  # fmt: skip
        head = read_full(stream, HEAD_BYTES)
        kind = container_kind(head)
        if kind and len(steps) >= MAX_LAYERS:
            yield Skip(display, f"archive nested more than {MAX_LAYERS} levels deep; unpack the outer levels first")
        elif kind == "zip":  # needs random access: re-open its chain instead of this stream
            with Reopening(MemberOpener(self.path, steps, self.limits, self.root)) as source:
                yield from self.zip(source, steps, display, hash_now=True)
        elif kind == "tar":
            yield from self.tar(Prefixed(head, stream), steps, display)
        elif kind:
            yield from self.compressed(Prefixed(head, stream), kind, steps, display, size, hash_now, note)
        else:
            yield self.leaf(stream, head, steps, display, size, exact, hash_now, note)

    @staticmethod
    def leaf(stream: Any, head: bytes, steps: tuple[Step, ...], display: str, size: int, exact: bool,
             hash_now: bool, note: str | None) -> Leaf:  # fmt: skip
        if len(head) < HEAD_BYTES:  # all of it is in the head
            return Leaf(display, steps, head, len(head), True, hashlib.sha256(head).hexdigest(), note)
        if not hash_now:
            return Leaf(display, steps, head, size, exact, None, note)
        digest, total = hashlib.sha256(head), len(head)
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            total += len(chunk)
        return Leaf(display, steps, head, total, True, digest.hexdigest(), note)

    def compressed(self, source: Any, kind: str, steps: tuple[Step, ...], display: str, size: int, hash_now: bool,
                   note: str | None) -> Iterator[Leaf | Skip]:  # fmt: skip
        stream, _ = _decompress(kind, source, display, self.limits)
        with closing(stream):
            yield from self.entity(stream, (*steps, Step(kind)), display, size, False, hash_now, note)

    def tar(self, source: Any, steps: tuple[Step, ...], display: str) -> Iterator[Leaf | Skip]:
        with _open_tar(source, display) as tf:
            for index, info in _tar_members(tf, display):
                self._count()
                shown, note = member_display(display, info.name)
                if info.isdir() or _junk(info.name):
                    continue
                if info.issym() or info.islnk():
                    kind = "symbolic" if info.issym() else "hard"
                    yield Skip(shown, f"{kind} link inside a tar archive (to {info.linkname!r}); {LINK_HINT}")
                elif not info.isreg():
                    yield Skip(shown, "special file (device or fifo) inside a tar archive; not read")
                else:
                    with _tar_member(tf, info, shown, self.limits) as member:
                        step = Step("tar", index, info.name)
                        yield from self.entity(member, (*steps, step), shown, info.size, True, True, note)

    def zip(self, source: Any, steps: tuple[Step, ...], display: str, hash_now: bool) -> Iterator[Leaf | Skip]:
        with _open_zip(source, display) as zf:
            infos = zf.infolist()
            for index in sorted(range(len(infos)), key=lambda i: (infos[i].header_offset, i)):
                info = infos[index]
                self._count()
                shown, note = member_display(display, info.filename)
                if info.is_dir() or _junk(info.filename):
                    continue
                problem = zip_problem(info)
                if problem:
                    yield Skip(shown, problem)
                    continue
                step = Step("zip", index, info.filename)
                with _zip_member(zf, info, shown, self.limits) as member:
                    yield from self.entity(member, (*steps, step), shown, info.file_size, True, hash_now, note)
