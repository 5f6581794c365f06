"""The one seam to the store: an fsspec filesystem rooted at the warehouse URL, plus partition paths.

Local paths use the local filesystem with atomic create-if-absent by `os.link`; other stores use
fsspec's `pipe_file(..., mode="create")` (a conditional PUT `If-None-Match: *` on S3).
"""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from .errors import InvalidPartitionValue

#: Longest escaped partition value, in bytes; longer values are refused (file-name limits are 255).
MAX_PARTITION_VALUE_BYTES = 200

_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def escape_partition_value(value: str, *, column: str = "partition") -> str:
    """Percent-encode `value` (hive style) so that it is one safe path segment.

    Everything but ASCII letters, digits, `-`, `_` and `.` is encoded as the `%XX` of its UTF-8
    bytes; a value made only of dots, and the hive null marker `__HIVE_DEFAULT_PARTITION__`, are
    encoded too. The result can never contain `/`, `\\`, `=`, `%` (other than as an escape), NUL or
    non-ASCII, and never equals `.` or `..`.

    Raises InvalidPartitionValue for an empty value, a non-string, a string that is not valid
    UTF-8, or an escaped form longer than MAX_PARTITION_VALUE_BYTES.
    """
    if not isinstance(value, str):
        raise InvalidPartitionValue(f"{column} must be a string, got {type(value).__name__} {value!r}")
    if value == "":
        raise InvalidPartitionValue(f"{column} must not be empty")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidPartitionValue(f"{column} {value!r} is not valid UTF-8: {exc.reason}") from None
    if value.isascii() and all(c in _SAFE for c in value) and value.strip(".") and not value.startswith("__"):
        escaped = value
    else:
        escaped = "".join(chr(b) if chr(b) in _SAFE else f"%{b:02X}" for b in raw)
        if not escaped.strip("."):
            escaped = escaped.replace(".", "%2E")
        if escaped.startswith("__"):
            escaped = "%5F" + escaped[1:]
    if len(escaped) > MAX_PARTITION_VALUE_BYTES:
        raise InvalidPartitionValue(
            f"{column} {value[:60]!r}... is {len(escaped)} bytes once escaped; "
            f"the limit is {MAX_PARTITION_VALUE_BYTES}: use a shorter type name"
        )
    return escaped


def unescape_partition_value(escaped: str) -> str:
    """Invert `escape_partition_value`."""
    from urllib.parse import unquote

    return unquote(escaped, encoding="utf-8", errors="strict")


def partition_dir(table: str, partition: Mapping[str, str], columns: list[str]) -> str:
    """The relative directory of one (table, partition): `table/col=value/...`, values escaped."""
    parts = [table] + [f"{c}={escape_partition_value(partition[c], column=c)}" for c in columns]
    return "/".join(parts)


def parse_partition_path(path: str) -> dict[str, str]:
    """The partition values encoded in a relative data-file path (`table/k=v/.../part-x.parquet`)."""
    out: dict[str, str] = {}
    for seg in path.split("/")[1:-1]:
        key, _, val = seg.partition("=")
        out[key] = unescape_partition_value(val)
    return out


def new_data_file_name() -> str:
    """A unique, immutable data-file name."""
    return f"part-{uuid.uuid4().hex}.parquet"


@dataclass
class Store:
    """An fsspec filesystem plus the warehouse root; every path given to it is relative to the root."""

    fs: fsspec.AbstractFileSystem
    root: str
    url: str

    @classmethod
    def from_url(cls, url: str, storage_options: Mapping[str, Any] | None = None) -> "Store":
        """Open the store behind `url` (a local path or any fsspec URL)."""
        url = str(url)
        fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
        if isinstance(fs, LocalFileSystem):
            root = os.path.abspath(root)
        return cls(fs=fs, root=root.rstrip("/") or "/", url=url)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def full(self, rel: str) -> str:
        """The filesystem path of a root-relative path; refuses anything that would leave the root."""
        norm = posixpath.normpath(rel)
        if norm.startswith("../") or norm == ".." or norm.startswith("/"):
            raise ValueError(f"path {rel!r} escapes the warehouse root")
        return f"{self.root}/{norm}"

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.full(rel))

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self.full(rel))

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write (or overwrite) a file; used only for files that are not yet referenced by a commit."""
        path = self.full(rel)
        if self.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        self.fs.pipe_file(path, data)

    def put_if_absent(self, rel: str, data: bytes) -> bool:
        """Atomically create `rel` holding `data`; False if it already exists (someone else won).

        Local: write a temp file beside it, then `os.link` it into place (atomic, fails if present),
        so that readers never see a half-written file. Elsewhere: a conditional create.
        """
        path = self.full(rel)
        if self.is_local:
            directory = os.path.dirname(path)
            os.makedirs(directory, exist_ok=True)
            tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}")
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
                return True
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        try:
            self.fs.pipe_file(path, data, mode="create")
            return True
        except FileExistsError:
            return False

    def list_names(self, rel: str) -> list[str]:
        """Base names of the entries directly under `rel` (empty if it does not exist)."""
        path = self.full(rel)
        try:
            entries = self.fs.ls(path, detail=False)
        except FileNotFoundError:
            return []
        return [posixpath.basename(e.rstrip("/")) for e in entries]

    def open_output(self, rel: str):
        """A binary file object to write a new data file."""
        path = self.full(rel)
        if self.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        return self.fs.open(path, "wb")

    def reader_path(self, rel: str) -> str:
        """The path DuckDB and Polars should read `rel` from."""
        if self.is_local:
            return self.full(rel)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{protocol}://{self.full(rel).lstrip('/')}"

    def is_empty(self) -> bool:
        """True if the root does not exist or holds nothing."""
        try:
            return not self.fs.ls(self.root, detail=False)
        except FileNotFoundError:
            return True
