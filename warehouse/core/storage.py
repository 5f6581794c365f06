"""The one seam to the store: `Store`, an fsspec filesystem rooted at the warehouse URL.

Local paths use the local filesystem with atomic create-if-absent by `os.link`; other stores use
fsspec's `pipe_file(..., mode="create")` (a conditional PUT `If-None-Match: *` on S3), after a probe
that proves the store honours it. Every remote call is retried on transient failures (5xx, reset or
dropped connections, timeouts) with backoff; the store's own answers (not found, access denied,
precondition failed) are never retried. A failure that retrying cannot cure, and that says the store
itself is unusable (no such bucket, access denied, endpoint unreachable), becomes a `StorageError`
naming the URL and what to do.
"""

from __future__ import annotations

import errno
import os
import posixpath
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import fsspec
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

from warehouse.core.errors import ConditionalWritesUnsupported, StorageError, WarehouseError

# Partition paths, failure classification and the snapshot view live in their own modules; their
# names stay importable from here, where callers have always found them.
from warehouse.core.partition_paths import (  # noqa: F401
    MAX_PARTITION_VALUE_BYTES,
    escape_partition_value,
    new_data_file_name,
    parse_partition_path,
    partition_dir,
    unescape_partition_value,
)
from warehouse.core.snapshot_fs import SnapshotFileSystem  # noqa: F401
from warehouse.core.store_failures import (  # noqa: F401
    DISK_ERRORS,
    client_error,
    disk_error,
    disk_errors,
    is_transient,
    precondition_failed,
    unreachable,
)

T = TypeVar("T")

#: s3fs settings the warehouse relies on; a caller's storage_options win key by key.
#: No listings cache (other processes commit all the time). botocore does not retry: its backoff
#: sleeps about a second per retry; the store's own loop (`Store.retries`, also around DuckDB's
#: reads) retries what is worth retrying after 25 ms, 50 ms, 100 ms, ... and reports an endpoint
#: that is down at once.
S3_DEFAULTS: dict[str, Any] = {
    "use_listings_cache": False,
    "config_kwargs": {
        "retries": {"total_max_attempts": 1, "mode": "standard"},
        "connect_timeout": 5,
        "read_timeout": 60,
    },
}


def arrow_reader(data: bytes) -> pa.BufferReader:
    """`data` (a file's bytes, read from the store) as an Arrow reader over Arrow's own copy.

    Arrow buffers over Python `bytes` (`io.BytesIO`, `pa.BufferReader(data)`, `pa.py_buffer`) take
    the GIL when Arrow frees them, and Arrow's decode threads free them after the read has returned:
    if that happens while the interpreter exits, the thread dies inside C++ and the process aborts
    ("terminate called without an active exception", exit -6) after its work was done. A copy Arrow
    owns needs no GIL to free; it costs one memcpy of a file already in memory.
    """
    buf = pa.allocate_buffer(len(data))
    pa.FixedSizeBufferWriter(buf).write(data)
    return pa.BufferReader(buf)


def _merge_options(defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    for k, v in given.items():
        out[k] = _merge_options(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) else v
    return out


def file_mtime(info: Mapping[str, Any]) -> datetime | None:
    """The last-modified time in an fsspec info dict (local `mtime`, S3 `LastModified`, ...), UTC."""
    for key in ("mtime", "LastModified", "last_modified", "modified", "created"):
        v = info.get(key)
        if isinstance(v, datetime):
            return v if v.tzinfo is not None else v.replace(tzinfo=UTC)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return datetime.fromtimestamp(v, UTC)
    return None


@dataclass
class Store:
    """An fsspec filesystem plus the warehouse root; every path given to it is relative to the root.

    Remote calls are retried up to `retries` times on transient failures (see `is_transient`);
    `retried` counts those retries (for tests and benchmarks).
    """

    fs: fsspec.AbstractFileSystem
    root: str
    url: str
    retries: int = 8
    retried: int = 0
    _conditional_ok: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_url(cls, url: str, storage_options: Mapping[str, Any] | None = None) -> Store:
        """Open the store behind `url` (a local path or any fsspec URL)."""
        url = str(url)
        options = dict(storage_options or {})
        protocol = fsspec.core.split_protocol(url)[0]
        if protocol in ("s3", "s3a"):
            options = _merge_options(S3_DEFAULTS, options)
        try:
            fs, root = fsspec.core.url_to_fs(url, **options)
        except (ValueError, ImportError) as exc:  # an unknown protocol ("x::y" reads as one), or its package missing
            from warehouse.core.errors import InvalidArgument

            raise InvalidArgument(f"cannot open the warehouse URL {url!r}: {exc}") from None
        if isinstance(fs, LocalFileSystem):
            root = os.path.abspath(root)
        return cls(fs=fs, root=root.rstrip("/") or "/", url=url)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    @property
    def protocol(self) -> str:
        return self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]

    @property
    def is_s3(self) -> bool:
        return self.protocol in ("s3", "s3a")

    def full(self, rel: str) -> str:
        """The filesystem path of a root-relative path; refuses anything that would leave the root."""
        norm = posixpath.normpath(rel)
        if norm.startswith("../") or norm == ".." or norm.startswith("/"):
            raise ValueError(f"path {rel!r} escapes the warehouse root")
        return self.root if norm == "." else f"{self.root}/{norm}"

    # -- failures --------------------------------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)`, retried with jittered exponential backoff on transient failures."""
        if self.is_local:
            return fn(*args, **kwargs)
        refused = 0
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if attempt >= self.retries:
                    raise
                if not is_transient(exc):
                    # A refused connection is retried twice (a restarting proxy), then reported.
                    refused += 1
                    if not unreachable(exc) or refused > 2:
                        raise
                with self._lock:
                    self.retried += 1
                time.sleep(random.uniform(0.5, 1.0) * min(0.025 * 2**attempt, 2.0))
        raise AssertionError("unreachable")

    def endpoint(self) -> str:
        """The endpoint URL the store talks to (for messages)."""
        opts = getattr(self.fs, "storage_options", {}) or {}
        ep = opts.get("endpoint_url") or (opts.get("client_kwargs") or {}).get("endpoint_url")
        return (
            ep
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
            or "the default AWS endpoint"
        )

    def bucket(self) -> str:
        return self.root.lstrip("/").split("/", 1)[0]

    def storage_error(self, exc: BaseException) -> StorageError | None:
        """A one-line StorageError for failures that mean the store itself is unusable, else None."""
        if self.is_local:
            return None
        status, code = client_error(exc)
        if code == "NoSuchBucket" or (self.is_s3 and status == 404 and code in (None, "404")):
            return StorageError(
                f"{self.url}: the bucket {self.bucket()!r} does not exist at {self.endpoint()}; "
                f"create it first (e.g. `aws s3 mb s3://{self.bucket()}`) or fix the URL"
            )
        if (
            isinstance(exc, PermissionError)
            or status == 403
            or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken")
        ):
            why = code or "access denied"
            return StorageError(
                f"{self.url}: access denied ({why}) by {self.endpoint()}; check the credentials "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or storage_options key/secret) and that "
                "they may read and write this bucket and prefix"
            )
        if unreachable(exc):
            return StorageError(
                f"{self.url}: cannot connect to the endpoint {self.endpoint()}; check that it is "
                "running and that the endpoint URL (AWS_ENDPOINT_URL or storage_options endpoint_url) "
                "is right"
            )
        if is_transient(exc):
            return StorageError(
                f"{self.url}: the store kept failing after {self.retries} retries "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "try again later"
            )
        return None

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn failures that mean this store is unusable (no bucket, access denied, endpoint down,
        retries exhausted) into one-line StorageErrors naming the URL; everything else passes."""
        try:
            yield
        except WarehouseError:
            raise
        except Exception as exc:
            translated = self.storage_error(exc)
            if translated is None:
                raise
            raise translated from exc

    @contextmanager
    def writing(self, rel: str) -> Iterator[None]:
        """Turn a local disk failure while writing `rel` (full, read-only, over quota, permission
        denied, I/O error) into a StorageError naming the file; everything else passes."""
        if not self.is_local:
            yield
            return
        with disk_errors(self.full(rel)):
            yield

    # -- files -----------------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        found: bool = self.call(self.fs.exists, self.full(rel))
        return found

    def _whole_read(self) -> dict[str, Any]:
        # s3fs asks for the size (a HEAD, and a listing if absent) before reading a whole object
        # unless told to read it in one piece: one GET is all a commit or config file needs.
        return {"max_concurrency": 1} if self.is_s3 else {}

    def read_bytes(self, rel: str) -> bytes:
        """The bytes of `rel`; FileNotFoundError if it does not exist."""
        data: bytes = self.call(self.fs.cat_file, self.full(rel), **self._whole_read())
        return data

    def read_many(self, rels: list[str]) -> dict[str, bytes | None]:
        """The bytes of each of `rels` (None for those that do not exist), read concurrently."""
        if not rels:
            return {}
        if self.is_local or len(rels) == 1:
            out: dict[str, bytes | None] = {}
            for r in rels:
                try:
                    out[r] = self.read_bytes(r)
                except FileNotFoundError:
                    out[r] = None
            return out
        paths = {self.full(r): r for r in rels}
        # cat_ranges reads each path as it is (concurrently on an async store); `cat` would expand
        # '*', '?' and '[' in a root such as `runs[2025]/` as a pattern: listings, and other files.
        got = self.call(self.fs.cat_ranges, list(paths), None, None, on_error="return", **self._whole_read())
        blobs = dict(zip(paths, got))
        out = {}
        for p, r in paths.items():
            data = blobs.get(p)
            if isinstance(data, FileNotFoundError):
                out[r] = None
            elif isinstance(data, BaseException) or data is None:
                try:  # one by one, with retries, for those that failed
                    out[r] = self.read_bytes(r)
                except FileNotFoundError:
                    out[r] = None
            else:
                out[r] = data
        return out

    def write_bytes(self, rel: str, data: bytes | bytearray | memoryview) -> None:
        """Write (or overwrite) a file; used only for files that are not yet referenced by a commit."""
        path = self.full(rel)
        if self.is_local:
            # Beside it, then renamed into place: a crash never leaves a truncated file at `path`.
            directory = os.path.dirname(path)
            tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
            with self.writing(rel):
                os.makedirs(directory, exist_ok=True)
                try:
                    with open(tmp, "wb") as f:
                        f.write(data)
                    os.replace(tmp, path)
                except BaseException:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                    raise
            return
        self.call(self.fs.pipe_file, path, bytes(data) if not isinstance(data, bytes) else data)

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        """Atomically create `rel` holding `data`; False if it already exists (someone else won).

        Local: write a temp file beside it, then `os.link` it into place (atomic, fails if present),
        so that readers never see a half-written file. Elsewhere: a conditional create. A retry of a
        create whose answer was lost also returns False: the caller reads the file back to tell
        whether it was its own (the manifest compares idempotency tokens).
        Raises ConditionalWritesUnsupported if the store refuses conditional writes.
        """
        path = self.full(rel)
        if self.is_local:
            directory = os.path.dirname(path)
            tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
            with self.writing(rel):
                os.makedirs(directory, exist_ok=True)
                try:
                    with open(tmp, "wb") as f:
                        f.write(data)
                        f.flush()
                        os.fsync(f.fileno())
                    os.link(tmp, path)
                    return True
                except FileExistsError:
                    return False
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
        try:
            self.call(self.fs.pipe_file, path, data, mode="create")
            return True
        except FileExistsError:
            return False
        except (NotImplementedError, TypeError) as exc:
            raise self._no_conditional_writes(f"{type(exc).__name__}: {exc}") from None
        except OSError as exc:
            if precondition_failed(exc):
                return False
            status, code = client_error(exc)
            if status == 501 or code == "NotImplemented" or exc.errno == errno.ENOSYS:
                raise self._no_conditional_writes(f"the store answered {code or status}") from None
            raise

    def _no_conditional_writes(self, why: str) -> ConditionalWritesUnsupported:
        return ConditionalWritesUnsupported(
            f"{self.url}: the store does not support conditional writes (create-if-absent, `If-None-Match: *`; {why}), "
            "so commits cannot be made safely and writing is refused; use a store that supports them "
            "(AWS S3, MinIO, Cloudflare R2, ...) or a local path"
        )

    def check_conditional_writes(self, probe_dir: str) -> None:
        """Prove, once per store, that create-if-absent works: create a probe object, then check that
        a second create of it is refused. Local filesystems always qualify.

        Every request is retried like any other (`call`), and only a definite answer decides: a
        first create refused as if the object existed is our own create whose answer was lost
        (and retried) when the probe holds our bytes; only a store that refuses to create a new
        object, or that lets a second create succeed, is refused. Raises
        ConditionalWritesUnsupported then; a store that keeps failing raises its error
        (a StorageError through `errors()`), never ConditionalWritesUnsupported.
        """
        if self.is_local or self._conditional_ok:
            return
        probe = f"{probe_dir}/.probe-{uuid.uuid4().hex}"
        mine = f"probe {uuid.uuid4().hex}".encode()
        try:
            if not self.put_if_absent(probe, mine):
                try:
                    there = self.read_bytes(probe)
                except FileNotFoundError:
                    there = None
                if there != mine:
                    raise self._no_conditional_writes("a create of a new object was refused as if it existed")
            if self.put_if_absent(probe, b"again"):
                raise self._no_conditional_writes("a second create of the same object succeeded")
        finally:
            try:
                self.call(self.fs.rm_file, self.full(probe))
            except Exception:  # leaving a probe behind is harmless: it is not a commit name
                pass
        self._conditional_ok = True

    def remove(self, rel: str) -> None:
        """Delete a file (no error if it is already gone)."""
        with suppress(FileNotFoundError):
            self.call(self.fs.rm_file, self.full(rel))

    def list_names(self, rel: str) -> list[str]:
        """Base names of the entries directly under `rel` (empty if it does not exist).

        Raises StorageError if the bucket itself does not exist.
        """
        path = self.full(rel)
        try:
            entries = self.call(self.fs.ls, path, detail=False, **({} if self.is_local else {"refresh": True}))
        except FileNotFoundError as exc:
            status, code = client_error(exc)
            if code == "NoSuchBucket":
                raise self.storage_error(exc) from None  # type: ignore[misc]
            return []
        base = path.rstrip("/")
        return [posixpath.basename(e.rstrip("/")) for e in entries if e.rstrip("/") != base]

    def list_files(self, rel: str) -> dict[str, int]:
        """Every file under `rel`, recursively: root-relative path -> size in bytes."""
        return {p: size for p, (size, _) in self.list_file_info(rel).items()}

    def list_file_info(self, rel: str) -> dict[str, tuple[int, datetime | None]]:
        """Every file under `rel`, recursively: root-relative path -> (size in bytes, last
        modified, UTC, if the store says)."""
        path = self.full(rel)
        try:
            found = self.call(self.fs.find, path, detail=True, **({} if self.is_local else {"refresh": True}))
        except FileNotFoundError:
            return {}
        prefix = self.root.rstrip("/") + "/"
        out = {}
        for p, info in found.items():
            p = p if p.startswith("/") or not self.root.startswith("/") else "/" + p
            if p.startswith(prefix) and info.get("type", "file") == "file":
                out[p[len(prefix) :]] = (int(info.get("size") or 0), file_mtime(info))
        return out

    def reader_path(self, rel: str) -> str:
        """The path DuckDB and Polars should read `rel` from."""
        if self.is_local:
            return self.full(rel)
        return f"{self.protocol}://{self.full(rel).lstrip('/')}"

    def polars_storage_options(self) -> dict[str, str] | None:
        """fsspec/s3fs storage options translated for Polars' native (object_store) reader.

        Credentials that are not given explicitly are found by Polars itself (the AWS environment
        variables and config files), as they are by s3fs.
        """
        if self.is_local:
            return None
        opts = dict(getattr(self.fs, "storage_options", {}) or {})
        if not self.is_s3:
            return {k: str(v) for k, v in opts.items() if isinstance(v, (str, int, float, bool))} or None
        client = dict(opts.get("client_kwargs") or {})
        out: dict[str, str] = {}
        key = opts.get("key") or client.get("aws_access_key_id")
        secret = opts.get("secret") or client.get("aws_secret_access_key")
        token = opts.get("token") or client.get("aws_session_token")
        endpoint = (
            opts.get("endpoint_url")
            or client.get("endpoint_url")
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        region = client.get("region_name") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if key and secret:
            out["aws_access_key_id"], out["aws_secret_access_key"] = str(key), str(secret)
        if token:
            out["aws_session_token"] = str(token)
        if endpoint:
            out["aws_endpoint_url"] = str(endpoint)
            if str(endpoint).startswith("http://"):
                out["aws_allow_http"] = "true"
        out["aws_region"] = str(region or "us-east-1")
        if opts.get("anon"):
            out["aws_skip_signature"] = "true"
        return out

    def is_empty(self) -> bool:
        """True if the root does not exist or holds nothing."""
        return not self.list_names(".")
