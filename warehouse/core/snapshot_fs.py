"""A read-only fsspec view of one snapshot's data files, for DuckDB: sizes come from the manifest."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

import fsspec


class SnapshotFileSystem(fsspec.AbstractFileSystem):  # type: ignore[misc]  # fsspec ships no types
    """A read-only view of a remote filesystem, for DuckDB: the data files of one snapshot are
    answered from the manifest (they are immutable, and their sizes are recorded), so that listing,
    `info` and `open` cost no request and a query reads only the files it scans. Anything else is
    passed to the underlying filesystem.
    """

    cachable = False  # one per snapshot; never shared through fsspec's instance cache

    def __init__(
        self, fs: fsspec.AbstractFileSystem, sizes: Mapping[str, int], call: Callable[..., Any] | None = None
    ) -> None:
        super().__init__()
        self.fs = fs
        self.call = call  # runs a read with the store's retries
        self.protocol = fs.protocol
        self.sizes = {fs._strip_protocol(p): n for p, n in sizes.items()}

    def _known(self, path: str) -> int | None:
        return self.sizes.get(self.fs._strip_protocol(path))

    def glob(self, path: str, **kwargs: Any) -> Any:
        if self._known(path) is not None:
            name = self.fs._strip_protocol(path)
            return {name: self.info(name)} if kwargs.get("detail") else [name]
        return self.fs.glob(path, **kwargs)

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        size = self._known(path)
        if size is None:
            info: dict[str, Any] = self.fs.info(path, **kwargs)
            return info
        return {"name": self.fs._strip_protocol(path), "size": size, "type": "file"}

    def size(self, path: str) -> int:
        size = self._known(path)
        return self.fs.size(path) if size is None else size

    def exists(self, path: str, **kwargs: Any) -> bool:
        return self._known(path) is not None or self.fs.exists(path, **kwargs)

    def isfile(self, path: str) -> bool:
        return self._known(path) is not None or self.fs.isfile(path)

    def isdir(self, path: str) -> bool:
        return self._known(path) is None and self.fs.isdir(path)

    def modified(self, path: str) -> Any:
        if self._known(path) is not None:
            from datetime import datetime

            return datetime(2000, 1, 1, tzinfo=UTC)  # immutable: any fixed time will do
        return self.fs.modified(path)

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "r" not in mode or "+" in mode:
            raise PermissionError(f"{path}: the warehouse's readers never write")
        size = self._known(path)
        if size is not None and type(self.fs).__name__ == "S3FileSystem":
            kwargs.setdefault("size", size)
        f = self.fs.open(path, mode, **kwargs)
        if size is not None and isinstance(f, fsspec.spec.AbstractBufferedFile):
            f.details = self.info(path)  # else s3fs asks the server (HEAD) before the first read
        cache = getattr(f, "cache", None)
        if self.call is not None and cache is not None and callable(getattr(cache, "fetcher", None)):
            fetch, call = cache.fetcher, self.call
            cache.fetcher = lambda start, end: call(fetch, start, end)
        return f

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        return self.fs.ls(path, detail=detail, **kwargs)
