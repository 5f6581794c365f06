"""Partition directories and data-file names: how a (table, partition) becomes one safe path.

Partition values are percent-encoded hive style (`escape_partition_value`), so a value can never
leave its directory, collide with another, or break a file-name limit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from warehouse.core.errors import InvalidPartitionValue

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
