"""Which store failures are worth retrying, and which mean the store itself is unusable.

A remote store's answer is read from the botocore/aiohttp exception chain: 5xx and throttling
answers, resets, dropped connections and timeouts are transient (`is_transient`); the store's own
answers (not found, access denied, precondition failed) are not. A local disk failure that only a
person can cure (full, read-only, over quota) becomes a `StorageError` naming the file (`disk_errors`).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

from warehouse.core.errors import StorageError, WarehouseError

# HTTP statuses and S3 error codes worth retrying: the server or the network, not the request.
_RETRY_STATUS = frozenset({500, 502, 503, 504})
_RETRY_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "OperationAborted",
        "ThrottlingException",
        "Throttling",
    }
)


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and its causes/contexts, and the `error` wrapped by botocore connection errors."""
    out: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is o for o in out) or len(out) > 20:
            continue
        out.append(e)
        todo += [e.__cause__, e.__context__]
        inner = getattr(e, "kwargs", None)
        if isinstance(inner, dict) and isinstance(inner.get("error"), BaseException):
            todo.append(inner["error"])
    return out


def client_error(exc: BaseException) -> tuple[int | None, str | None]:
    """(HTTP status, S3 error code) of the server's answer behind `exc`, if it was one."""
    for e in _chain(exc):
        resp = getattr(e, "response", None)
        if isinstance(resp, dict) and "Error" in resp:
            status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return (int(status) if status else None), resp["Error"].get("Code")
    return None, None


def unreachable(exc: BaseException) -> bool:
    """True if no connection to the endpoint could be made at all (refused, no such host)."""
    for e in _chain(exc):
        name = type(e).__name__
        if name in ("ClientConnectorError", "ClientConnectorDNSError", "ConnectionRefusedError", "gaierror"):
            return True
    return False


def is_transient(exc: BaseException) -> bool:
    """True for failures that retrying may cure: 5xx/throttling answers, resets, timeouts, lost answers."""
    if isinstance(
        exc,
        (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError, WarehouseError),
    ):
        return False
    status, code = client_error(exc)
    if status is not None or code is not None:
        return (status in _RETRY_STATUS) or (code in _RETRY_CODES)
    if unreachable(exc):
        return False
    if isinstance(exc, OSError) and exc.errno in (errno.EINVAL, errno.ENOSYS, errno.EACCES, errno.EPERM, errno.ENOSPC):
        return False
    names = {type(e).__name__ for e in _chain(exc)}
    return bool(
        names
        & {
            "ConnectionClosedError",
            "EndpointConnectionError",
            "ReadTimeoutError",
            "ConnectTimeoutError",
            "HTTPClientError",
            "IncompleteRead",
            "ResponseParserError",
            "ClientPayloadError",
            "ServerDisconnectedError",
            "ClientOSError",
            "ConnectionResetError",
            "BrokenPipeError",
            "TimeoutError",
            "FSTimeoutError",
            "timeout",
        }
    ) or (isinstance(exc, OSError) and exc.errno in (errno.EIO, errno.EBUSY, getattr(errno, "EREMOTEIO", 121)))


#: Failures of a local disk that no retry in place cures, but a person can (free space, remount
#: read-write, fix permissions): errno -> what it means.
DISK_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EFBIG: "the file is too large for the file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "an I/O error of the device",
}


def disk_error(exc: BaseException, path: str) -> StorageError | None:
    """A StorageError naming the file `exc` names (else `path`) for a local disk failure (see
    DISK_ERRORS), else None."""
    code = getattr(exc, "errno", None)
    if not isinstance(exc, OSError) or code not in DISK_ERRORS:
        return None
    path = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes, os.PathLike)) else path
    return StorageError(
        f"{path}: {DISK_ERRORS[code]} ({errno.errorcode.get(code, code)}); fix that "
        "(free space, remount read-write, fix permissions) and try again: nothing committed was "
        "changed, and a writer keeps the rows it could not write for its next flush() or close()"
    )


@contextmanager
def disk_errors(path: str) -> Iterator[None]:
    """Turn a local disk failure while writing the local file `path` into a StorageError naming it."""
    try:
        yield
    except OSError as exc:
        translated = disk_error(exc, path)
        if translated is None:
            raise
        raise translated from exc


def precondition_failed(exc: BaseException) -> bool:
    """A conditional write lost: the object exists (412), or a concurrent one is in flight (409)."""
    status, code = client_error(exc)
    return status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict")
