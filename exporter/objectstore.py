"""Object stores (`s3://bucket/prefix`) as inputs and outputs, through `pyarrow.fs`.

Outputs: the dataset is built in a local staging folder exactly as for a local output, then
published following the object-store protocol of DESIGN.md §4 — there is no rename on S3, so
order is the commit: immutable, uniquely named data files first, then the rejects, then
datapackage.json / croissant.json, then `_manifest.json`, and `_SUCCESS` last. A non-empty
prefix is refused unless --overwrite; then the old `_SUCCESS` is removed before the first new
object is written (readers waiting for `_SUCCESS` never see a half-replaced dataset) and keys
that are not part of the new dataset are deleted after publishing.

Inputs: objects are streamed (`open_input_stream`) by units whose openers are picklable, so
remote workers read them directly. Archives (zip, tar, gzip, zstd) on object stores are
skipped with a reason: download them first.

Credentials come from the standard AWS chain (environment, ~/.aws/config); they are never
recorded. `--s3-endpoint URL` (or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, which pyarrow does not
read by itself) points at an S3-compatible store.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow.fs as pafs

from .archives import HEAD_BYTES, container_kind
from .errors import InputError, OutputError
from .manifest import MANIFEST, SUCCESS
from .sources import InputUnit, Skipped, discover

SCHEMES = ("s3://",)
log = logging.getLogger(__name__)
UPLOAD_THREADS = 8
CHUNK = 1 << 20
CREDENTIALS_HINT = (
    "check the bucket name, the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or ~/.aws) "
    "and, for an S3-compatible store, --s3-endpoint URL"
)


def is_uri(value: str | Path | None) -> bool:
    return isinstance(value, str) and value.startswith(SCHEMES)


def location(value: str | Path | None) -> str | Path | None:
    """A command-line location: object-store URIs stay strings, everything else is a Path."""
    if value is None or is_uri(str(value)):
        return None if value is None else str(value)
    return Path(value)


def output_target(output: str | Path, endpoint: str | None, overwrite: bool) -> Target | None:
    """The object-store target for an `s3://` output, None for a local folder."""
    return Target(str(output), endpoint, overwrite) if is_uri(output) else None


def endpoint_from_env(endpoint: str | None) -> str | None:
    return endpoint or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


@lru_cache(maxsize=8)
def filesystem(endpoint: str | None) -> pafs.FileSystem:
    """A pyarrow S3 filesystem (one per process and endpoint)."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    options: dict[str, Any] = {"check_directory_existence_before_creation": True}  # no stray markers
    if endpoint:
        options["endpoint_override"] = endpoint
        options["scheme"] = "http" if endpoint.startswith("http://") else "https"
        options["region"] = region or "us-east-1"
    elif region:
        options["region"] = region
    return pafs.S3FileSystem(**options)


def deleter(endpoint: str | None) -> Any:
    """`delete(paths)` for bucket/key paths: s3fs bulk deletes (the extra tgexport[s3])."""
    try:
        import s3fs
    except ImportError:
        raise OutputError(
            "deleting objects (--overwrite of an s3:// prefix) needs s3fs, which is not installed",
            hint="install the optional extra: pip install 'tgexport[s3]'",
        ) from None
    store = s3fs.S3FileSystem(endpoint_url=endpoint) if endpoint else s3fs.S3FileSystem()
    return store.rm


def store_path(uri: str) -> str:
    """`s3://bucket/a/b/` -> `bucket/a/b` (the path pyarrow's S3 filesystem takes)."""
    return uri.split("://", 1)[1].strip("/")


# --- inputs ---------------------------------------------------------------------------------


class _RawObject(io.RawIOBase):
    """A pyarrow input stream as a plain Python raw stream (for io.BufferedReader)."""

    def __init__(self, native: Any) -> None:
        self._native = native

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._native.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._native.close()
        super().close()


@dataclass(frozen=True)
class ObjectOpener:
    """A picklable opener: streams the object `path` from the store at `endpoint`."""

    endpoint: str | None
    path: str

    def __call__(self) -> BinaryIO:
        native = filesystem(self.endpoint).open_input_stream(self.path)
        return io.BufferedReader(_RawObject(native), CHUNK)  # type: ignore[return-value]


def discover_inputs(
    inputs: list[str], skipped: list[Skipped] | None = None, endpoint: str | None = None
) -> Iterator[InputUnit]:
    """Input units for local paths (sources.discover) and object URIs, in the order given."""
    for given in inputs:
        if is_uri(given):
            yield from _object_units(given, skipped, endpoint_from_env(endpoint))
        else:
            yield from discover([given], skipped)


def _object_units(uri: str, skipped: list[Skipped] | None, endpoint: str | None) -> Iterator[InputUnit]:
    fs, path = filesystem(endpoint), store_path(uri)
    info = _info(fs, path, uri)
    if info.type == pafs.FileType.File:
        found, explicit = [info], True
    elif info.type == pafs.FileType.Directory:
        selector = pafs.FileSelector(path, recursive=True)
        found = sorted((i for i in _listing(fs, selector, uri) if i.type == pafs.FileType.File), key=lambda i: i.path)
        found = [i for i in found if not any(p.startswith(".") for p in i.path[len(path) :].split("/"))]
        explicit = False
    else:
        raise InputError(f"input not found: {uri}", hint=CREDENTIALS_HINT)
    scheme = uri.split("://", 1)[0]
    for item in found:
        display = f"{scheme}://{item.path}"
        with fs.open_input_file(item.path) as stream:
            kind = container_kind(stream.read_at(min(HEAD_BYTES, item.size), 0) if item.size else b"")
        if kind:
            if skipped is not None:
                skipped.append(Skipped(display, f"{kind} archives are not read from object stores; download it first"))
            continue
        yield InputUnit(display=display, opener=ObjectOpener(endpoint, item.path), size=item.size, explicit=explicit)


def _info(fs: pafs.FileSystem, path: str, uri: str) -> pafs.FileInfo:
    try:
        return fs.get_file_info(path)
    except OSError as exc:
        raise InputError(f"cannot read {uri}: {exc}", hint=CREDENTIALS_HINT) from None


def _listing(fs: pafs.FileSystem, selector: pafs.FileSelector, uri: str) -> list[pafs.FileInfo]:
    try:
        return fs.get_file_info(selector)
    except OSError as exc:
        raise OutputError(f"cannot list {uri}: {exc}", hint=CREDENTIALS_HINT) from None


# --- outputs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerUpload:
    """What a remote task needs to upload its files (picklable; credentials stay in each env)."""

    endpoint: str | None
    root: str  # bucket/prefix
    scratch_prefix: str  # for files the driver gathers and deletes (rejects parts)

    def put(self, local: Path, rel: str) -> None:
        fs = filesystem(self.endpoint)
        with open(local, "rb") as src, fs.open_output_stream(f"{self.root}/{rel}") as out:
            while chunk := src.read(CHUNK):
                out.write(chunk)

    def get(self, rel: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        with filesystem(self.endpoint).open_input_stream(f"{self.root}/{rel}") as src, open(local, "wb") as out:
            while chunk := src.read(CHUNK):
                out.write(chunk)

    def scratch(self, rel: str) -> str:
        return f"{self.scratch_prefix}/{rel}"


@dataclass
class Target:
    """An object-store output: `s3://bucket/prefix`."""

    uri: str
    endpoint: str | None = None
    overwrite: bool = False
    existing: set[str] = field(default_factory=set)  # keys (relative) present before the run
    scratch_prefix: str = field(default_factory=lambda: f"_tgexport-tmp-{uuid.uuid4().hex[:12]}")
    _retired: bool = False
    _scratch_dir: Path = Path("/nonexistent-tgexport-staging")

    def __post_init__(self) -> None:
        self.endpoint = endpoint_from_env(self.endpoint)
        self.root = store_path(self.uri)
        if not self.root:
            raise OutputError(f"{self.uri} names no bucket", hint="use -o s3://bucket/prefix")

    @property
    def fs(self) -> pafs.FileSystem:
        return filesystem(self.endpoint)

    def check(self) -> None:
        """Refuse a non-empty prefix unless --overwrite; remember what is there."""
        bucket = self.root.split("/", 1)[0]
        try:
            bucket_info = self.fs.get_file_info(bucket)
        except OSError as exc:
            raise OutputError(f"cannot reach {self.uri}: {exc}", hint=CREDENTIALS_HINT) from None
        if bucket_info.type != pafs.FileType.Directory:
            raise OutputError(f"bucket {bucket!r} of {self.uri} does not exist", hint="create it first")
        self.existing = set(self.list_keys())
        if self.existing and not self.overwrite:
            raise OutputError(
                f"output {self.uri} already holds {len(self.existing)} objects",
                hint="pass --overwrite to replace them, or choose another prefix",
            )
        if self.existing:
            deleter(self.endpoint)  # fail now, not after converting, when deletes are impossible

    def list_keys(self) -> list[str]:
        """Relative keys of the objects under the prefix (directory markers left out)."""
        selector = pafs.FileSelector(self.root, recursive=True, allow_not_found=True)
        infos = _listing(self.fs, selector, self.uri)
        return sorted(i.path[len(self.root) + 1 :] for i in infos if i.type == pafs.FileType.File)

    def retire_success(self) -> None:
        """Before the first write into an existing dataset: it is no longer complete."""
        if self._retired:
            return
        self._retired = True
        if SUCCESS in self.existing:
            self.delete([SUCCESS])

    def for_workers(self) -> WorkerUpload:
        return WorkerUpload(self.endpoint, self.root, self.scratch_prefix)

    def upload(self, local: Path, rel: str) -> None:
        WorkerUpload(self.endpoint, self.root, self.scratch_prefix).put(local, rel)

    def staging_anchor(self) -> Path:
        """Where the local staging folder goes: a private folder under $TMPDIR (room for the dataset)."""
        self._scratch_dir = Path(tempfile.mkdtemp(prefix="tgexport-s3-"))
        return self._scratch_dir / "dataset"

    def publish(self, staging: Path, results: Iterable[Any] = (), files: Iterable[dict] = ()) -> None:
        """Upload the finished staging folder in commit order; drop stale keys afterwards.

        Data files that remote workers already put at their final keys (results stamped
        `uploaded`) are not sent again unless merging rewrote them (`files`: the manifest's list).
        """
        self.retire_success()
        uploaded = {
            f.path: f.sha256 for r in results if (getattr(r, "worker", None) or {}).get("uploaded") for f in r.files
        }
        final = {f["path"]: f["sha256"] for f in files}
        names = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        posts = [n for n in names if n.startswith("posts/") and uploaded.get(n) != final.get(n, "?")]
        rejects = [n for n in names if n.startswith("rejects/")]
        documents = [n for n in names if "/" not in n and n not in (MANIFEST, SUCCESS)]
        for group in (posts, rejects, documents, [MANIFEST], [SUCCESS]):
            self._upload_all(staging, group)
        keep = set(names) | set(final)
        self.delete([k for k in self.list_keys() if k not in keep])
        shutil.rmtree(self._scratch_dir, ignore_errors=True)

    def _upload_all(self, staging: Path, names: list[str]) -> None:
        if len(names) == 1:
            self.upload(staging / names[0], names[0])
            return
        with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="tgexport-upload") as pool:
            for future in [pool.submit(self.upload, staging / n, n) for n in names]:
                future.result()

    def delete(self, rels: list[str]) -> None:
        """Delete keys in bulk, through s3fs: pyarrow's deletes leave "directory marker" keys
        (`posts/year=2024/`) behind, which polars and DuckDB would then try to read."""
        if rels:
            deleter(self.endpoint)(sorted(f"{self.root}/{rel}" for rel in rels))

    def abandon(self) -> None:
        """After a failed run: remove what this run wrote into a prefix that was empty before."""
        shutil.rmtree(self._scratch_dir, ignore_errors=True)
        if self.existing:
            return
        try:
            self.delete(self.list_keys())
        except (OSError, OutputError):
            log.warning("could not remove the partial upload under %s", self.uri)


# --- validation -----------------------------------------------------------------------------


def validate_uri(uri: str, endpoint: str | None = None, sample: int | None = None) -> Any:
    """`tgexport validate s3://…`: the checks of validate_dataset, reading through the store.

    The metadata documents are fetched once; every other object gets an empty stand-in (so
    unlisted objects are reported as for a folder); each listed file is fetched while it is
    checked and emptied again afterwards (local disk holds one data file at a time).
    """
    from .provenance import DOCUMENTS
    from .validate_dataset import validate_dataset

    target = Target(uri, endpoint)
    keys = set(target.list_keys())
    if MANIFEST not in keys:
        raise InputError(
            f"{uri} has no {MANIFEST}, so it is not a finished tgexport dataset",
            hint="pass the prefix given to `tgexport convert -o`; " + CREDENTIALS_HINT,
        )
    get = target.for_workers().get
    with tempfile.TemporaryDirectory(prefix="tgexport-validate-") as tmp:
        local = Path(tmp)
        for rel in sorted(keys):
            path = _inside(local, rel)
            if path is None:
                continue
            if rel in (MANIFEST, SUCCESS, *DOCUMENTS):
                get(rel, path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()

        @contextmanager
        def fetched(rel: str) -> Iterator[None]:
            path = _inside(local, rel)
            if path is not None and rel in keys:
                get(rel, path)
            try:
                yield
            finally:
                if path is not None and path.exists():
                    path.write_bytes(b"")

        try:
            report = validate_dataset(local, sample, fetch=fetched)
        except InputError as exc:
            raise InputError(exc.message.replace(str(local), uri), hint=exc.hint) from None
    report.root = uri
    return report


def _inside(local: Path, rel: str) -> Path | None:
    """`local/rel` for a well-formed relative key; None for keys with empty, `.` or `..` parts."""
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    return local.joinpath(*parts)
